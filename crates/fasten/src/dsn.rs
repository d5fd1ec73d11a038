//! Where rows go: the `FASTEN_*_DSN` grammar.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The default audit table.
pub(crate) const DEFAULT_AUDIT_TABLE: &str = "audit_log";

/// A parsed store address.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dsn {
    /// One SQLite file (`sqlite:///relative.db`, `sqlite:////abs/path.db`).
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The table, checked against `^[A-Za-z_][A-Za-z0-9_]*$`.
        table: String,
    },
}

impl Dsn {
    /// Parses a DSN; `var` names the setting in error messages.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming `var` when the
    /// scheme is unknown, the path is missing, or a query parameter is
    /// unknown or malformed.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::Dsn;
    /// let dsn = Dsn::parse("FASTEN_AUDIT_DSN", "sqlite:///var/audit.db?table=trail")?;
    /// assert_eq!(dsn.to_string(), "sqlite:///var/audit.db?table=trail");
    /// # Ok::<(), fasten::Error>(())
    /// ```
    pub fn parse(var: &'static str, s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::config(
                var,
                format!(
                    "invalid {var} {s:?}: {why}; expected sqlite:///relative.db or sqlite:////abs/path.db, optionally ?table=NAME"
                ),
            )
        };
        let Some(rest) = s.strip_prefix("sqlite://") else {
            return Err(match s.split_once("://") {
                Some((scheme, _)) => bad(&format!("unsupported scheme {scheme:?}")),
                None => bad("missing scheme"),
            });
        };
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
        let mut table = DEFAULT_AUDIT_TABLE.to_owned();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("table", name)) => {
                    check_identifier(name).map_err(|why| bad(&format!("table {name:?} {why}")))?;
                    name.clone_into(&mut table);
                }
                _ => return Err(bad(&format!("unknown parameter {pair:?}"))),
            }
        }
        Ok(Self::Sqlite {
            path: PathBuf::from(path),
            table,
        })
    }

    /// The table rows go to.
    pub fn table(&self) -> &str {
        match self {
            Self::Sqlite { table, .. } => table,
        }
    }
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
        match self {
            Self::Sqlite { path, table } => {
                write!(f, "sqlite:///{}", path.display())?;
                if table != DEFAULT_AUDIT_TABLE {
                    write!(f, "?table={table}")?;
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
        let Dsn::Sqlite { path, table } = parse("sqlite:///data/a.db").unwrap();
        assert_eq!(path, PathBuf::from("data/a.db"));
        assert_eq!(table, "audit_log");
        let Dsn::Sqlite { path, table } = parse("sqlite:////var/lib/a.db?table=trail_1").unwrap();
        assert_eq!(path, PathBuf::from("/var/lib/a.db"));
        assert_eq!(table, "trail_1");
        for s in ["sqlite:///data/a.db", "sqlite:////var/a.db?table=t"] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn malformed_dsns_name_the_variable_and_the_rule() {
        insta::assert_snapshot!(parse("sqlite:/a.db").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "sqlite:/a.db": missing scheme; expected sqlite:///relative.db or sqlite:////abs/path.db, optionally ?table=NAME"#);
        insta::assert_snapshot!(parse("sqlite://a.db").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "sqlite://a.db": the path must start after a third slash; expected sqlite:///relative.db or sqlite:////abs/path.db, optionally ?table=NAME"#);
        insta::assert_snapshot!(parse("sqlite:///a.db?table=x;drop").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "sqlite:///a.db?table=x;drop": table "x;drop" must match ^[A-Za-z_][A-Za-z0-9_]*$; expected sqlite:///relative.db or sqlite:////abs/path.db, optionally ?table=NAME"#);
        insta::assert_snapshot!(parse("mysql://h/db").unwrap_err(), @r#"invalid FASTEN_AUDIT_DSN "mysql://h/db": unsupported scheme "mysql"; expected sqlite:///relative.db or sqlite:////abs/path.db, optionally ?table=NAME"#);
        for bad in [
            "",
            "sqlite:///",
            "sqlite:////",
            "sqlite:///dir/",
            "sqlite:///a.db?x=1",
            "sqlite:///a.db?table=",
            "sqlite:///a.db?table=1a",
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
