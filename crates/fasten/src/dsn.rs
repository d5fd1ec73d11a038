//! Where rows go: the `FASTEN_*_DSN` grammar.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The default audit table.
pub(crate) const DEFAULT_AUDIT_TABLE: &str = "audit_log";

/// A parsed store address. `Display` and `Debug` never show a password.
///
/// Built only by [`Dsn::parse`] and [`Dsn::parse_for`], which check every
/// SQL identifier (table, schema) the stores later splice into SQL: its
/// parts are private, so no unchecked name can reach a store.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn(Repr);

/// The parts of a [`Dsn`], checked by its parser.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Repr {
    /// One SQLite file (`sqlite:///relative.db`, `sqlite:////abs/path.db`).
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The table, checked against `^[A-Za-z_][A-Za-z0-9_]*$`.
        table: String,
    },
    /// A PostgreSQL database (`postgres://user:pw@host:5432/db?table=schema.name`).
    Postgres {
        /// The connection string without fasten's own `table` parameter:
        /// what libpq-style parsers accept (`sslmode`, `application_name`,
        /// `connect_timeout` …). Holds the password: never print it.
        url: String,
        /// The schema, when the table was given as `schema.table`.
        schema: Option<String>,
        /// The table, checked against `^[A-Za-z_][A-Za-z0-9_]*$`.
        table: String,
    },
}

/// The longest name PostgreSQL keeps (NAMEDATALEN - 1): a longer one is cut
/// without an error, so two derived names could collide and an index (the
/// UNIQUE one on `(source_node_id, monotonic_seq)` among them) be lost.
pub(crate) const PG_NAME_MAX: usize = 63;

/// The longest suffix the store appends to a table's name for the tables
/// and indexes beside it (audit and stream tables alike); a store test
/// checks it against the store's own list.
pub(crate) const LONGEST_DERIVED_SUFFIX: &str = "_request_id_time";

const EXPECTED: &str = "expected sqlite:///relative.db, sqlite:////abs/path.db or postgres://user:pw@host/db, optionally ?table=NAME";

impl Dsn {
    /// Parses a DSN; `var` names the setting in error messages.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming `var` when the
    /// scheme is unknown, the path is missing, a table name is not a plain
    /// identifier, or a query parameter is unknown or malformed. The
    /// message shows the DSN with its password masked.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::Dsn;
    /// let dsn = Dsn::parse("FASTEN_AUDIT_DSN", "sqlite:///var/audit.db?table=trail")?;
    /// assert_eq!(dsn.to_string(), "sqlite:///var/audit.db?table=trail");
    /// let pg = Dsn::parse("FASTEN_AUDIT_DSN", "postgres://app:s3cret@db/app?table=fasten.audit_log")?;
    /// assert_eq!(pg.to_string(), "postgres://app:***@db/app?table=fasten.audit_log");
    /// # Ok::<(), fasten::Error>(())
    /// ```
    pub fn parse(var: &'static str, s: &str) -> Result<Self> {
        Self::parse_for(var, s, DEFAULT_AUDIT_TABLE)
    }

    /// Parses a DSN whose table defaults to `default_table` (`sys_log` for
    /// `FASTEN_SYS_DSN`, `api_log` for `FASTEN_API_DSN`).
    ///
    /// # Errors
    ///
    /// As [`Dsn::parse`], and when `default_table` is not a plain identifier.
    ///
    /// # Examples
    ///
    /// ```
    /// let dsn = fasten::Dsn::parse_for("FASTEN_API_DSN", "sqlite:///streams.db", "api_log")?;
    /// assert_eq!(dsn.table(), "api_log");
    /// # Ok::<(), fasten::Error>(())
    /// ```
    pub fn parse_for(var: &'static str, s: &str, default_table: &str) -> Result<Self> {
        let shown = mask_password(s);
        // The reason may quote the DSN (a parameter it cannot read, the
        // PostgreSQL parser's own message): its secrets are taken out too.
        let bad = |why: &str| {
            Error::config(
                var,
                format!("invalid {var} {shown:?}: {}; {EXPECTED}", scrub(why, s)),
            )
        };
        check_identifier(default_table)
            .map_err(|why| bad(&format!("default table {default_table:?} {why}")))?;
        if let Some(rest) = s.strip_prefix("sqlite://") {
            return Self::parse_sqlite(rest, default_table, &bad);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Self::parse_postgres(s, default_table, &bad);
        }
        Err(match s.split_once("://") {
            Some((scheme, _)) => bad(&format!("unsupported scheme {scheme:?}")),
            None => bad("missing scheme"),
        })
    }

    fn parse_sqlite(rest: &str, default_table: &str, bad: &dyn Fn(&str) -> Error) -> Result<Self> {
        let Some(rest) = rest.strip_prefix('/') else {
            return Err(bad("the path must start after a third slash"));
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() || path == "/" {
            return Err(bad("the database path is empty"));
        }
        if path.ends_with('/') {
            return Err(bad("the database path names a directory"));
        }
        // An audit trail that vanishes at exit is no audit trail.
        if path == ":memory:" || path.starts_with("file:") {
            return Err(bad(
                "in-memory and URI databases are not durable; name a file",
            ));
        }
        let mut table = default_table.to_owned();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("table", name)) => {
                    check_identifier(name).map_err(|why| bad(&format!("table {name:?} {why}")))?;
                    name.clone_into(&mut table);
                }
                _ => return Err(bad(&format!("unknown parameter {pair:?}"))),
            }
        }
        Ok(Self(Repr::Sqlite {
            path: PathBuf::from(path),
            table,
        }))
    }

    fn parse_postgres(s: &str, default_table: &str, bad: &dyn Fn(&str) -> Error) -> Result<Self> {
        let (base, query) = match s.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (s, None),
        };
        let mut schema = None;
        let mut table = default_table.to_owned();
        let mut passed = Vec::new();
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            match pair.split_once('=') {
                Some(("table", name)) => {
                    let (s, t) = match name.split_once('.') {
                        Some((s, t)) => (Some(s), t),
                        None => (None, name),
                    };
                    for part in s.into_iter().chain([t]) {
                        check_identifier(part)
                            .map_err(|why| bad(&format!("table {name:?}: {part:?} {why}")))?;
                    }
                    schema = s.map(str::to_owned);
                    t.clone_into(&mut table);
                }
                Some(_) => passed.push(pair),
                None => return Err(bad(&format!("parameter {pair:?} has no value"))),
            }
        }
        let suffix = LONGEST_DERIVED_SUFFIX;
        if table.len() + suffix.len() > PG_NAME_MAX {
            return Err(bad(&format!(
                "table {table:?} is too long for PostgreSQL: the index {table}{suffix} would pass {} bytes and be cut silently (losing an index); use at most {} bytes",
                PG_NAME_MAX,
                PG_NAME_MAX - suffix.len()
            )));
        }
        let url = if passed.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", passed.join("&"))
        };
        // `sslmode` and `sslrootcert` are fasten's to read (on rustls);
        // the rest goes to the PostgreSQL client's own parser.
        #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
        let (client_url, _) = split_tls(&url).map_err(|why| bad(&why))?;
        #[cfg(feature = "postgres")]
        if let Err(e) = client_url.parse::<tokio_postgres::Config>() {
            return Err(bad(&format!("{e}")));
        }
        Ok(Self(Repr::Postgres { url, schema, table }))
    }

    /// The table rows go to (without its schema).
    pub fn table(&self) -> &str {
        match &self.0 {
            Repr::Sqlite { table, .. } | Repr::Postgres { table, .. } => table,
        }
    }

    /// The PostgreSQL schema, when the table was given as `schema.table`;
    /// `None` for SQLite.
    ///
    /// # Examples
    ///
    /// ```
    /// let dsn = fasten::Dsn::parse("FASTEN_AUDIT_DSN", "postgres://u@h/app?table=fasten.audit_log")?;
    /// assert_eq!(dsn.schema(), Some("fasten"));
    /// # Ok::<(), fasten::Error>(())
    /// ```
    pub fn schema(&self) -> Option<&str> {
        match &self.0 {
            Repr::Sqlite { .. } => None,
            Repr::Postgres { schema, .. } => schema.as_deref(),
        }
    }

    /// The backend: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match &self.0 {
            Repr::Sqlite { .. } => "sqlite",
            Repr::Postgres { .. } => "postgres",
        }
    }

    /// The checked parts, for the stores.
    pub(crate) fn repr(&self) -> &Repr {
        &self.0
    }

    /// The table `table` beside this DSN's: same database (and schema).
    /// `table` is one of fasten's own names, a plain identifier.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn with_table(&self, table: &str) -> Self {
        debug_assert!(check_identifier(table).is_ok(), "{table}");
        let mut repr = self.0.clone();
        match &mut repr {
            Repr::Sqlite { table: t, .. } | Repr::Postgres { table: t, .. } => {
                table.clone_into(t);
            }
        }
        Self(repr)
    }
}

// === TLS settings of a PostgreSQL DSN ===

/// libpq's `sslmode`, as fasten applies it (on rustls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, without checking its certificate;
    /// plaintext when it does not. The default, as in libpq.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, and the server's certificate chain must end at a trusted CA.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate chain is checked.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

/// The CA certificates a verifying mode trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    /// The system's CA certificates (`sslrootcert=system`, or no
    /// `sslrootcert` at all).
    System,
    /// The PEM file `sslrootcert` names.
    File(PathBuf),
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("the system's CA certificates"),
            Self::File(path) => write!(f, "sslrootcert={}", path.display()),
        }
    }
}

/// How a PostgreSQL connection is encrypted: the effective mode after
/// libpq's rules, and the roots it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgTls {
    pub(crate) mode: SslMode,
    /// What `sslmode` said (`None` when absent), for messages.
    pub(crate) given: Option<SslMode>,
    pub(crate) roots: Roots,
}

/// Takes `sslmode` and `sslrootcert` out of a PostgreSQL URL: returns the
/// URL the client parses and the TLS settings, or why they are wrong.
///
/// libpq's rules: no `sslmode` means `prefer`; `require` with a
/// `sslrootcert` file checks the chain like `verify-ca`;
/// `sslrootcert=system` needs `verify-full` (and implies it when `sslmode`
/// is absent). Unlike libpq, a verifying mode without `sslrootcert`
/// trusts the system's CA certificates rather than `~/.postgresql/root.crt`.
pub(crate) fn split_tls(url: &str) -> std::result::Result<(String, PgTls), String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut given = None;
    let mut rootcert: Option<String> = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => {
                given = Some(match value {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    "allow" => {
                        return Err("sslmode=allow is not supported: use sslmode=prefer (TLS when the server offers it) or disable".to_owned());
                    }
                    other => {
                        return Err(format!(
                            "unknown sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
                        ));
                    }
                });
            }
            Some(("sslrootcert", value)) => {
                let path = percent_decode(value);
                if path.is_empty() {
                    return Err(
                        "sslrootcert is empty: name a PEM file of CA certificates, or system"
                            .to_owned(),
                    );
                }
                rootcert = Some(path);
            }
            _ => rest.push(pair),
        }
    }
    let roots = match rootcert.as_deref() {
        None | Some("system") => Roots::System,
        Some(path) => Roots::File(PathBuf::from(path)),
    };
    let mode = match (given, &roots, rootcert.is_some()) {
        (None, Roots::System, true) => SslMode::VerifyFull,
        (Some(weak), Roots::System, true) if weak != SslMode::VerifyFull => {
            return Err(format!(
                "sslmode={} may not be used with sslrootcert=system: use sslmode=verify-full",
                weak.as_str()
            ));
        }
        (Some(SslMode::Require), Roots::File(_), _) => SslMode::VerifyCa,
        (Some(mode), _, _) => mode,
        (None, _, _) => SslMode::Prefer,
    };
    let client_url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((client_url, PgTls { mode, given, roots }))
}

/// `scheme://user:***@host…`: the DSN as it may be shown in errors, logs and
/// `doctor` output. It masks by taking the DSN apart, not by pattern: the
/// userinfo runs to the *last* `@` (a password may hold `/`, `?`, `@`, `:`
/// or `%`-escapes unescaped; a host never holds `@`), everything after the
/// user's first `:` there is the password, and a query parameter whose
/// name (any case, `%`-decoded) names a secret has its value masked.
pub(crate) fn mask_password(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return mask_params(s);
    };
    let rest = match rest.rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{user}:***@{}", &rest[at + 1..]),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    };
    // Over the whole rest: a parameter value may hold an `@` too.
    format!("{scheme}://{}", mask_params(&rest))
}

/// `host/db?k=v&…` with the values of secret parameters masked.
fn mask_params(s: &str) -> String {
    let Some((base, query)) = s.split_once('?') else {
        return s.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if secret_key(k) => format!("{k}=***"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// Whether a query parameter's name names a secret: `password`,
/// `PASSWORD`, `sslpassword`, `pass`, `pwd`, `p%61ssword` …
fn secret_key(key: &str) -> bool {
    let key = percent_decode(key).to_ascii_lowercase();
    key.contains("pass") || key.contains("pwd") || key.contains("secret") || key.contains("token")
}

/// `%XX` escapes decoded (lossily); anything else kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(Ok(b)) = s.get(i + 1..i + 3).map(|hex| u8::from_str_radix(hex, 16))
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every secret the DSN text holds, as written and `%`-decoded: the
/// userinfo password and the values of secret parameters. An error whose
/// reason quotes part of the DSN (a parser's message, a parameter it
/// cannot read) has these replaced before it is shown.
fn secrets(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    if let Some(at) = rest.rfind('@')
        && let Some((_, password)) = rest[..at].split_once(':')
    {
        out.push(password.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split('&') {
            if let Some((k, v)) = pair.split_once('=')
                && secret_key(k)
            {
                out.push(v.to_owned());
            }
        }
    }
    let decoded: Vec<String> = out.iter().map(|v| percent_decode(v)).collect();
    out.extend(decoded);
    out.retain(|v| !v.is_empty());
    // Longest first, so a secret that contains another is replaced whole.
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out
}

/// `text` with every secret of the DSN `dsn` replaced by `***`.
fn scrub(text: &str, dsn: &str) -> String {
    let mut text = text.to_owned();
    for secret in secrets(dsn) {
        text = text.replace(&secret, "***");
    }
    text
}

/// Checks a table name from configuration before it is ever spliced into SQL.
pub(crate) fn check_identifier(name: &str) -> std::result::Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return Err("must match ^[A-Za-z_][A-Za-z0-9_]*$"),
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("must match ^[A-Za-z_][A-Za-z0-9_]*$")
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Sqlite { path, table } => {
                write!(f, "sqlite:///{}", path.display())?;
                if table != DEFAULT_AUDIT_TABLE {
                    write!(f, "?table={table}")?;
                }
                Ok(())
            }
            Repr::Postgres { url, schema, table } => {
                f.write_str(&mask_password(url))?;
                let qualified = match schema {
                    Some(s) => format!("{s}.{table}"),
                    None => table.clone(),
                };
                if qualified != DEFAULT_AUDIT_TABLE {
                    let sep = if mask_password(url).contains('?') {
                        '&'
                    } else {
                        '?'
                    };
                    write!(f, "{sep}table={qualified}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Display never holds a secret, so Debug can show it.
        write!(f, "Dsn({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Dsn> {
        Dsn::parse("FASTEN_AUDIT_DSN", s)
    }

    #[test]
    fn relative_and_absolute_paths() {
        assert_eq!(
            parse("sqlite:///data/a.db").unwrap(),
            Dsn(Repr::Sqlite {
                path: "data/a.db".into(),
                table: "audit_log".into()
            })
        );
        assert_eq!(
            parse("sqlite:////var/lib/a.db?table=trail_1").unwrap(),
            Dsn(Repr::Sqlite {
                path: "/var/lib/a.db".into(),
                table: "trail_1".into()
            })
        );
        for s in ["sqlite:///data/a.db", "sqlite:////var/a.db?table=t"] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn postgres_tables_three_ways() {
        let dedicated = parse("postgres://u:pw@db.example:5432/fasten_audit").unwrap();
        assert_eq!(
            dedicated,
            Dsn(Repr::Postgres {
                url: "postgres://u:pw@db.example:5432/fasten_audit".into(),
                schema: None,
                table: "audit_log".into()
            })
        );
        let schema = parse(
            "postgresql://u@h/app?sslmode=disable&table=fasten.audit_log&application_name=api",
        )
        .unwrap();
        assert_eq!(
            schema,
            Dsn(Repr::Postgres {
                url: "postgresql://u@h/app?sslmode=disable&application_name=api".into(),
                schema: Some("fasten".into()),
                table: "audit_log".into()
            })
        );
        let prefix = parse("postgres://u@h/app?table=fasten_audit_log").unwrap();
        assert_eq!(prefix.table(), "fasten_audit_log");
        assert_eq!(
            prefix.to_string(),
            "postgres://u@h/app?table=fasten_audit_log"
        );
    }

    #[test]
    fn passwords_never_show() {
        let dsn = parse("postgres://app:hunter2@db/app?table=x.y").unwrap();
        assert_eq!(dsn.to_string(), "postgres://app:***@db/app?table=x.y");
        assert!(!format!("{dsn:?}").contains("hunter2"));
        let err = parse("postgres://app:hunter2@db/app?table=x;y").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = parse("postgres://app@db/app?password=hunter2&sslmode=bogus").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        insta::assert_snapshot!(err, @r#"invalid FASTEN_AUDIT_DSN "postgres://app@db/app?password=***&sslmode=bogus": unknown sslmode "bogus": expected disable, prefer, require, verify-ca or verify-full; expected sqlite:///relative.db, sqlite:////abs/path.db or postgres://user:pw@host/db, optionally ?table=NAME"#);
    }

    /// The review's cases: a password holding `/`, `?`, `@` or escapes, and
    /// an uppercase `PASSWORD=` parameter echoed by a parse error.
    #[test]
    fn passwords_with_url_characters_never_show() {
        for (dsn, secret) in [
            ("postgres://app:pa/ss@db/app", "pa/ss"),
            ("postgres://app:pa?ss@db/app", "pa?ss"),
            ("postgres://app:p@ss@db/app", "p@ss"),
            ("postgres://app:p%40ss%2Fw@db/app", "p%40ss%2Fw"),
            ("postgres://app@db/app?PASSWORD=hunter2", "hunter2"),
            (
                "postgres://app@db/app?PassWord=hunter2&sslmode=require",
                "hunter2",
            ),
            ("sqlite:///a.db?password=hunter2", "hunter2"),
        ] {
            let shown = match parse(dsn) {
                Ok(d) => format!("{d} {d:?}"),
                Err(e) => format!("{e} {e:?}"),
            };
            assert!(!shown.contains(secret), "{dsn}: {shown}");
        }
    }

    proptest::proptest! {
        /// Masking holds for any password over the characters a URL gives
        /// meaning to, in the userinfo and as a parameter, in Display,
        /// Debug and every parse error.
        #[test]
        fn generated_passwords_never_show(
            pw in "Zq9[A-Za-z0-9/?@%:=#!$&*+;,. ~-]{4,24}",
            param in "Zq9[A-Za-z0-9/?@%:=#!$*+;,. ~-]{4,24}",
            key in "(password|PASSWORD|Password|sslpassword)",
            tail in "(|\\?sslmode=require|\\?table=x.y|\\?table=1bad|\\?flag)",
        ) {
            for dsn in [
                format!("postgres://app:{pw}@db:5432/app{tail}"),
                format!("postgresql://app:{pw}@db/app?table=s.t&{key}={param}"),
                format!("postgres://app@db/app?{key}={param}&sslmode=require"),
                format!("postgres://app@db/app?{key}={param}"),
            ] {
                let shown = match parse(&dsn) {
                    Ok(d) => format!("{d} {d:?}"),
                    Err(e) => format!("{e} {e:?}"),
                };
                proptest::prop_assert!(!shown.contains(&pw), "{dsn} -> {shown}");
                proptest::prop_assert!(!shown.contains(&param), "{dsn} -> {shown}");
            }
        }
    }

    /// Issue #12 item 6: libpq's `sslmode` values and `sslrootcert`, with
    /// its rules for combining them.
    #[test]
    fn issue_12_sslmode_and_sslrootcert() {
        let tls = |q: &str| {
            split_tls(&format!("postgres://u:pw@h/db?{q}")).map(|(url, t)| (url, t.mode, t.roots))
        };
        let file = || Roots::File("/etc/ca.pem".into());
        assert_eq!(
            tls("").unwrap(),
            (
                "postgres://u:pw@h/db".into(),
                SslMode::Prefer,
                Roots::System
            )
        );
        assert_eq!(
            tls("sslmode=disable&application_name=a").unwrap(),
            (
                "postgres://u:pw@h/db?application_name=a".into(),
                SslMode::Disable,
                Roots::System
            )
        );
        assert_eq!(tls("sslmode=require").unwrap().1, SslMode::Require);
        // libpq: require with a root file checks the chain like verify-ca.
        assert_eq!(
            tls("sslmode=require&sslrootcert=/etc/ca.pem").unwrap(),
            ("postgres://u:pw@h/db".into(), SslMode::VerifyCa, file())
        );
        assert_eq!(tls("sslmode=verify-ca").unwrap().1, SslMode::VerifyCa);
        assert_eq!(
            tls("sslrootcert=%2Fetc%2Fca.pem&sslmode=verify-full")
                .unwrap()
                .2,
            file()
        );
        assert_eq!(tls("sslrootcert=system").unwrap().1, SslMode::VerifyFull);
        insta::assert_snapshot!(tls("sslmode=require&sslrootcert=system").unwrap_err(), @"sslmode=require may not be used with sslrootcert=system: use sslmode=verify-full");
        insta::assert_snapshot!(tls("sslmode=verify_full").unwrap_err(), @r#"unknown sslmode "verify_full": expected disable, prefer, require, verify-ca or verify-full"#);
        insta::assert_snapshot!(tls("sslmode=allow").unwrap_err(), @"sslmode=allow is not supported: use sslmode=prefer (TLS when the server offers it) or disable");
        // Through the DSN parser: the variable, the masked DSN and the rule.
        insta::assert_snapshot!(parse("postgres://app:hunter2@db/app?sslmode=verify").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "postgres://app:***@db/app?sslmode=verify": unknown sslmode "verify": expected disable, prefer, require, verify-ca or verify-full; expected sqlite:///relative.db, sqlite:////abs/path.db or postgres://user:pw@host/db, optionally ?table=NAME"#);
        let dsn = parse(
            "postgres://app:hunter2@db/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&table=s.t",
        )
        .unwrap();
        assert_eq!(
            dsn.to_string(),
            "postgres://app:***@db/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&table=s.t"
        );
    }

    #[test]
    fn postgres_tables_whose_index_names_pass_63_bytes_are_refused() {
        let longest = 63 - LONGEST_DERIVED_SUFFIX.len();
        let ok = format!("postgres://u@h/db?table=s.{}", "t".repeat(longest));
        assert!(parse(&ok).is_ok(), "{ok}");
        let long = format!("postgres://u@h/db?table=s.{}", "t".repeat(longest + 1));
        let err = parse(&long).unwrap_err();
        assert!(err.to_string().contains("too long for PostgreSQL"), "{err}");
        // Any name of up to 63 bytes is still a fine SQLite table.
        assert!(parse(&format!("sqlite:///a.db?table={}", "t".repeat(63))).is_ok());
    }

    #[test]
    fn malformed_dsns_name_the_variable_and_the_rule() {
        insta::assert_snapshot!(parse("sqlite:/a.db").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "sqlite:/a.db": missing scheme; expected sqlite:///relative.db, sqlite:////abs/path.db or postgres://user:pw@host/db, optionally ?table=NAME"#);
        insta::assert_snapshot!(parse("sqlite://a.db").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "sqlite://a.db": the path must start after a third slash; expected sqlite:///relative.db, sqlite:////abs/path.db or postgres://user:pw@host/db, optionally ?table=NAME"#);
        insta::assert_snapshot!(parse("sqlite:///a.db?table=x;drop").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "sqlite:///a.db?table=x;drop": table "x;drop" must match ^[A-Za-z_][A-Za-z0-9_]*$; expected sqlite:///relative.db, sqlite:////abs/path.db or postgres://user:pw@host/db, optionally ?table=NAME"#);
        insta::assert_snapshot!(parse("mysql://h/db").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "mysql://h/db": unsupported scheme "mysql"; expected sqlite:///relative.db, sqlite:////abs/path.db or postgres://user:pw@host/db, optionally ?table=NAME"#);
        insta::assert_snapshot!(parse("postgres://u@h/db?table=a.b.c").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "postgres://u@h/db?table=a.b.c": table "a.b.c": "b.c" must match ^[A-Za-z_][A-Za-z0-9_]*$; expected sqlite:///relative.db, sqlite:////abs/path.db or postgres://user:pw@host/db, optionally ?table=NAME"#);
        for bad in [
            "",
            "sqlite:///",
            "sqlite:////",
            "sqlite:///dir/",
            "sqlite:///a.db?x=1",
            "sqlite:///a.db?table=",
            "sqlite:///a.db?table=1a",
            "sqlite:///:memory:",
            "sqlite:///file::memory:?cache=shared",
            "postgres://u@h/db?table=",
            "postgres://u@h/db?table=\"x\"",
            "postgres://u@h/db?flag",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(
                err.kind(),
                &crate::ErrorKind::Config {
                    var: "FASTEN_AUDIT_DSN"
                },
                "{bad}"
            );
        }
    }
}
