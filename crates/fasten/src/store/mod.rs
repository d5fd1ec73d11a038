//! The store seam: the writer and the verifier see only [`Store`]; each
//! backend is one file. Backends are chosen by DSN.

use crate::chain::{Row, RowRef};
use crate::dsn::{Dsn, Repr};
use crate::error::Result;

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
pub(crate) mod stream;
#[cfg(feature = "postgres")]
mod tls;

/// The contract's columns in a fixed order shared by every backend's insert
/// and select, with their SQLite and PostgreSQL types (row contract §1).
/// Existing tables missing a column (an older or upstream schema) get it
/// added with `ALTER TABLE … ADD COLUMN`.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const COLUMNS: [(&str, &str, &str); 27] = [
    ("id", "TEXT PRIMARY KEY", "TEXT PRIMARY KEY"),
    ("origin_id", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("monotonic_seq", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("timestamp", "TEXT NOT NULL", "TIMESTAMPTZ NOT NULL"),
    ("code", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("action", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("severity", "TEXT NOT NULL", "TEXT NOT NULL"),
    (
        "outcome",
        "TEXT NOT NULL DEFAULT 'success'",
        "TEXT NOT NULL DEFAULT 'success'",
    ),
    ("service_id", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("source_node_id", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("tenant_id", "TEXT NULL", "TEXT NULL"),
    ("actor", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("actor_kind", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("target", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("category", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("domain", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("method", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("request_id", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("detail", "TEXT NULL", "JSONB NULL"),
    ("detail_salt", "TEXT NULL", "TEXT NULL"),
    ("detail_commitment", "TEXT NOT NULL", "TEXT NOT NULL"),
    (
        "pii_in_detail",
        "INTEGER NOT NULL DEFAULT 0",
        "BOOLEAN NOT NULL DEFAULT false",
    ),
    ("shipped_at", "TEXT NULL", "TIMESTAMPTZ NULL"),
    (
        "wire_version",
        "TEXT NOT NULL DEFAULT '1'",
        "TEXT NOT NULL DEFAULT '1'",
    ),
    ("canonical_form_id", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("prev_hash", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("hash", "TEXT NOT NULL", "TEXT NOT NULL"),
];

/// The columns canonical form 3 added to the original fasten schema. A
/// table without them was written by another implementation: the writer
/// and the verifier refuse it, and the reader reads its rows with these
/// columns absent.
pub(crate) const FORM3_COLUMNS: [&str; 3] = ["outcome", "detail_salt", "detail_commitment"];

/// What a reader selects in place of a form-3 column the table lacks: the
/// empty string for the NOT NULL ones (`Row` leaves them out of its JSON
/// then), NULL for `detail_salt`.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn absent_column(name: &str) -> &'static str {
    if name == "detail_salt" { "NULL" } else { "''" }
}

/// Whether `q` asks for a value of one of the `missing` columns.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn filters_absent_column(q: &stream::Query, missing: &[&str]) -> bool {
    q.eq.iter().any(|(name, _)| missing.contains(name))
}

/// How a table differs from canonical form 3: what the messages about a
/// foreign table say was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Foreign {
    /// The [`FORM3_COLUMNS`] the table lacks.
    pub(crate) missing: Vec<&'static str>,
    /// The `canonical_form_id` values other than `3` found, sorted.
    pub(crate) forms: Vec<String>,
    /// The node whose chain the forms were found on, when only one was looked at.
    pub(crate) node: Option<String>,
}

/// What the caller meant to do with a foreign table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Append rows, migrate, sweep or erase.
    Write,
    /// Verify its chains.
    Verify,
    /// Read its rows (tail, correlate, the reader).
    Read,
}

impl Foreign {
    pub(crate) fn is_foreign(&self) -> bool {
        !self.missing.is_empty() || !self.forms.is_empty()
    }

    /// `table "t" was written by another fasten implementation: …; <what
    /// fasten does>: <what to do>`.
    pub(crate) fn message(&self, table: &str, intent: Intent) -> String {
        let mut found = Vec::new();
        if !self.missing.is_empty() {
            let plural = if self.missing.len() > 1 { "s" } else { "" };
            found.push(format!(
                "it lacks the column{plural} {} of canonical form 3",
                self.missing.join(", ")
            ));
        }
        if !self.forms.is_empty() {
            let forms = self.forms.join(" and ");
            let plural = if self.forms.len() > 1 { "s" } else { "" };
            found.push(match &self.node {
                Some(node) => format!("node {node:?}'s chain is canonical form{plural} {forms}"),
                None => format!("its rows are canonical form{plural} {forms}"),
            });
        }
        let found = found.join(" and ");
        let todo = match intent {
            Intent::Write => {
                let bare = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
                format!(
                    "fasten never writes to it or appends form-3 rows to a chain of another form: set FASTEN_AUDIT_DSN to a new table (e.g. ?table={bare}_v3) and keep this one for reading (fasten tail and correlate read it)"
                )
            }
            Intent::Verify => "fasten verifies canonical form 3 only: verify this table with the implementation that wrote it (fasten tail and correlate still read its rows)".to_owned(),
            Intent::Read => {
                let absent = if self.missing.is_empty() {
                    String::new()
                } else {
                    format!(", with {} absent", self.missing.join(", "))
                };
                format!(
                    "its rows are shown as stored{absent}, and fasten cannot verify them: verify them with the implementation that wrote them"
                )
            }
        };
        format!("table {table} was written by another fasten implementation: {found}; {todo}")
    }

    /// [`Foreign::message`] as an error of kind
    /// [`ErrorKind::ForeignTable`](crate::ErrorKind::ForeignTable).
    pub(crate) fn error(&self, table: &str, intent: Intent) -> crate::Error {
        crate::Error::new(
            crate::ErrorKind::ForeignTable {
                table: table.to_owned(),
            },
            self.message(table, intent),
        )
    }
}

/// The columns a table opened for reading must have, given the columns
/// `have` it has (none: it does not exist): every contract column but the
/// [`FORM3_COLUMNS`], which a foreign table lacks. Returns the form-3
/// columns it lacks. `prefix` (`sqlite`, `postgres`) starts the messages.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn readable_columns(
    have: &[String],
    prefix: &str,
    table: &str,
) -> Result<Vec<&'static str>> {
    if have.is_empty() {
        return Err(crate::Error::new(
            crate::ErrorKind::Store,
            format!("{prefix}: table {table} does not exist"),
        ));
    }
    let lacks = |n: &&str| !have.iter().any(|h| h == n);
    let missing: Vec<&str> = COLUMNS
        .iter()
        .map(|(n, _, _)| *n)
        .filter(|n| lacks(n) && !FORM3_COLUMNS.contains(n))
        .collect();
    if !missing.is_empty() {
        return Err(crate::Error::new(
            crate::ErrorKind::Store,
            format!(
                "{prefix}: table {table} lacks the contract's columns {}",
                missing.join(", ")
            ),
        ));
    }
    Ok(FORM3_COLUMNS.iter().copied().filter(|n| lacks(n)).collect())
}

/// The [`FORM3_COLUMNS`] an existing table lacks: a writer refuses such a
/// table rather than add them (form-3 rows would follow another form's).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn lacking_form3(have: &[String]) -> Vec<&'static str> {
    if have.is_empty() {
        return Vec::new();
    }
    FORM3_COLUMNS
        .iter()
        .copied()
        .filter(|n| !have.iter().any(|h| h == n))
        .collect()
}

/// What the writer refuses when the tip of its node's chain (`form`) is
/// not canonical form 3.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn check_tip_form(table: &str, node: &str, form: Option<&str>) -> Result<()> {
    match form {
        None | Some(crate::chain::CANONICAL_FORM_ID) => Ok(()),
        Some(other) => Err(Foreign {
            missing: Vec::new(),
            forms: vec![other.to_owned()],
            node: Some(node.to_owned()),
        }
        .error(table, Intent::Write)),
    }
}

/// `<table>_checkpoints`: every checkpoint the writer signed, beside the rows
/// (the copies outside the store are the ones that protect it).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const CHECKPOINT_COLUMNS: &str = "source_node_id TEXT NOT NULL, tree_size BIGINT NOT NULL, note TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (source_node_id, tree_size)";

/// `<table>_leases`: who does a store-wide job (a retention sweep) until
/// when, so the nodes of one service do not repeat each other's work.
/// `expires_at` is the contract's text form, which sorts as time does.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const LEASE_COLUMNS: &str =
    "name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TEXT NOT NULL";

/// `<table>_merkle`: the roots of the node's complete perfect Merkle
/// subtrees of 2^[`STORED_FROM_LEVEL`](crate::merkle::STORED_FROM_LEVEL)
/// leaves and more, hex, so a proof reads O(log n) of them instead of
/// rebuilding the tree from every row. Only proofs read it, and they check
/// what they build against the signed root, so a wrong or stale entry costs
/// a rebuild, never a false proof; the checks of a store against its
/// checkpoints never read it.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const MERKLE_COLUMNS: &str = "source_node_id TEXT NOT NULL, level INTEGER NOT NULL, idx BIGINT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (source_node_id, level, idx)";

/// Columns that get an index, besides the primary key and the chain key.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const INDEXED: [(&str, &str); 6] = [
    // Each filter the reader offers, with the time after it: `WHERE col = ?
    // ORDER BY timestamp DESC LIMIT n` then reads only the rows it returns.
    // With a lone `col` index PostgreSQL may walk the timestamp index
    // backwards instead and filter a million rows (seen: 1.2 s a query).
    ("request_id_time", "request_id, timestamp"),
    ("timestamp", "timestamp"),
    ("code_time", "code, timestamp"),
    ("actor_time", "actor, timestamp"),
    ("target_time", "target, timestamp"),
    ("tenant_time", "tenant_id, timestamp"),
];

/// What a store names `<table>_<suffix>` beside its audit table, besides
/// the [`INDEXED`] indexes: its chain, sweep and shipping indexes and its
/// side tables (the fleet's two on PostgreSQL only).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const OWN_SUFFIXES: [&str; 8] = [
    "node_seq",
    "unerased",
    "unshipped",
    "checkpoints",
    "merkle",
    "leases",
    "fleet",
    "forks",
];

/// Creates `dir` and its missing parents, each new one `0700` on Unix
/// (owner only), whatever the umask; directories that exist keep their
/// permissions. See `docs/security.md` for the choice.
pub(crate) fn create_private_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens `path` for writing, creating it `0600` on Unix (owner only)
/// whatever the umask when it is new; an existing file keeps its
/// permissions.
pub(crate) fn create_private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Warns (once per call) when the key file at `path` can be read by its
/// group or by anyone: a signing key is what makes checkpoints mean
/// anything. Returns the warning, if any.
pub(crate) fn loose_key_permissions(path: &std::path::Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "the signing key {} can be read by others (mode {:o}): anyone who reads it can sign checkpoints; chmod 600 it",
                path.display(),
                mode & 0o777
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Rows whose detail is still there, by code, personal data and age: what a
/// retention sweep reads, so each sweep visits only rows that are due (erased
/// rows leave this partial index). Keyed to end in `timestamp, id`, the
/// sweep's page cursor.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const UNERASED_INDEX: &str =
    "(code, pii_in_detail, timestamp, id) WHERE detail_salt IS NOT NULL";

/// Whether opening a store may create or migrate its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The writer: create the table and add missing columns and indexes.
    Write,
    /// A retention sweep or an erasure: migrates like [`Access::Write`], but
    /// commits without their own fsync (SQLite `synchronous=NORMAL`,
    /// PostgreSQL `synchronous_commit = off`); the writer's commit of the
    /// sweep's audit event syncs the log they are in.
    Maintain,
    /// Readers and verifiers: touch nothing, fail if the table is missing.
    Read,
}

/// A stored row that does not decode into the contract's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    /// Its `monotonic_seq`, when that much could be read.
    pub(crate) seq: Option<i64>,
    /// Its `id`, when that much could be read, so a verdict names the row.
    pub(crate) id: Option<String>,
    pub(crate) reason: String,
}

impl Unreadable {
    /// The row by id and seq as far as they could be read, and why it
    /// cannot be.
    pub(crate) fn describe(&self) -> String {
        let id = self.id.as_deref().unwrap_or("(id unreadable)");
        match self.seq {
            Some(seq) => format!("row {id} (monotonic_seq {seq}): {}", self.reason),
            None => format!("row {id} (monotonic_seq unreadable): {}", self.reason),
        }
    }
}

/// `after_seq` for [`Store::scan_rows`] meaning every row of the node,
/// whatever its `monotonic_seq` (zero, negative, not an integer, NULL), so
/// verification accounts for rows outside `1..` instead of skipping them.
pub(crate) const WHOLE_CHAIN: i64 = i64::MIN;

/// One node's chain length, as the store counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeCount {
    pub(crate) node: String,
    pub(crate) rows: u64,
}

/// A node's rows not shipped yet, as [`Store::unshipped`] counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unshipped {
    /// The lowest `monotonic_seq` not shipped.
    pub(crate) first_seq: i64,
    /// Rows from it to the node's tip (rows ship in seq order, so the
    /// shipped ones are a prefix): read from two index seeks, never counted.
    pub(crate) count: u64,
    /// That first unshipped row's `timestamp`, the contract's text form.
    pub(crate) oldest: String,
}

/// Rows not shipped yet, by node and seq: what a shipper reads, so each
/// round visits only the rows it ships (shipped rows leave this partial
/// index).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const UNSHIPPED_INDEX: &str = "(source_node_id, monotonic_seq) WHERE shipped_at IS NULL";

/// A row whose detail a sweep or an erasure may erase, with what decides it.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) id: String,
    /// The contract's text form.
    pub(crate) timestamp: String,
    pub(crate) code: String,
    pub(crate) node: String,
    pub(crate) seq: i64,
    pub(crate) tenant_id: Option<String>,
    /// `shipped_at` is set.
    pub(crate) shipped: bool,
}

/// Which rows (with their detail still there) a page reads.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Rows of `code` with this `pii_in_detail`, sealed at or before `due`
    /// (the contract's text form), of `service` only when it is given.
    Due {
        code: &'a str,
        pii: bool,
        due: &'a str,
        service: Option<&'a str>,
    },
    /// Rows whose `actor` is this.
    Actor(&'a str),
    /// Rows whose `target` is this.
    Target(&'a str),
}

/// What one erase transaction did.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Erased {
    /// `(source_node_id, monotonic_seq)` of each row it erased.
    pub(crate) rows: Vec<(String, i64)>,
    /// How long it held the store's write lock (SQLite), or ran (PostgreSQL,
    /// which locks only the rows): waiting for the lock is not counted.
    pub(crate) held: std::time::Duration,
}

/// Where a page starts: after this `(timestamp, id)`.
pub(crate) const PAGE_START: (&str, &str) = ("0001-01-01T00:00:00.000000Z", "");

/// What every backend provides. Rows are sealed with
/// [`chain::link`](crate::chain::link) inside the backend's transaction, so
/// the chain logic lives in one place.
pub(crate) trait Store: Send {
    /// `sqlite`, `postgres` …, for stats and diagnostics.
    fn kind(&self) -> &'static str;

    /// The table as messages name it: `"audit_log"`, `"schema"."audit_log"`.
    fn table_name(&self) -> &str;

    /// The [`FORM3_COLUMNS`] the table lacks (only a store opened
    /// [`Access::Read`] opens such a table); rows read from it have them
    /// absent.
    fn missing_columns(&self) -> &[&'static str];

    /// The `canonical_form_id` values other than `3` on any row, sorted: a
    /// scan of the whole table, for the messages about a foreign one.
    fn foreign_forms(&mut self) -> Result<Vec<String>>;

    /// The `canonical_form_id` of the tip of `node`'s chain, if it has rows.
    fn tip_form(&mut self, node: &str) -> Result<Option<String>>;

    /// How the table differs from canonical form 3, scanning for forms
    /// (see [`Store::foreign_forms`]).
    fn foreign(&mut self) -> Result<Foreign> {
        Ok(Foreign {
            missing: self.missing_columns().to_vec(),
            forms: self.foreign_forms()?,
            node: None,
        })
    }

    /// Appends `rows` (all of one node) at the tip of that node's chain in
    /// one transaction: reads the tip under the backend's per-node lock,
    /// links and seals each row, inserts, commits. On success every row in
    /// `rows` carries its `monotonic_seq`, `prev_hash` and `hash`.
    ///
    /// With `recheck`, rows whose `id` is already stored (a previous attempt
    /// that committed although it reported failure) are removed from `rows`
    /// instead of inserted again, so a retry never duplicates or gaps.
    /// Returns how many of the rows are now stored (inserted by this call
    /// or found already there).
    fn append(&mut self, rows: &mut Vec<Row>, recheck: bool) -> Result<usize>;

    /// Every node with rows, and how many each has.
    fn nodes(&mut self) -> Result<Vec<NodeCount>>;

    /// Calls `f` with each row of `node` after `after_seq` (0 for the
    /// chain's rows from seq 1, [`WHOLE_CHAIN`] for every row of the node)
    /// in `monotonic_seq` order, borrowed from the backend's read
    /// buffer, stopping at the first error `f` returns. A row that cannot be
    /// decoded (a NULL where the contract forbids one, a number where text
    /// belongs) comes as [`Unreadable`], so verification can name it instead
    /// of aborting. The detail comes as the stored text, unparsed.
    fn scan_rows(
        &mut self,
        node: &str,
        after_seq: i64,
        f: &mut dyn FnMut(std::result::Result<RowRef<'_>, Unreadable>) -> Result<()>,
    ) -> Result<()>;

    /// Calls `f` with every row of every node in the order the store reads
    /// fastest (SQLite: rowid order, a plain walk of the table; Postgres: a
    /// sequential scan), with no promise about that order. A writer appends
    /// each node's rows in `monotonic_seq` order, so that is usually chain
    /// order already; the verifier checks that it is, node by node, and
    /// reads any node where it is not again with [`Store::scan_rows`].
    fn scan_table(
        &mut self,
        f: &mut dyn FnMut(std::result::Result<RowRef<'_>, Unreadable>) -> Result<()>,
    ) -> Result<()>;

    /// [`Store::scan_rows`] with owned rows and the detail parsed; a detail
    /// that is not JSON makes its row [`Unreadable`].
    fn scan_chain(
        &mut self,
        node: &str,
        after_seq: i64,
        f: &mut dyn FnMut(std::result::Result<Row, Unreadable>) -> Result<()>,
    ) -> Result<()> {
        self.scan_rows(node, after_seq, &mut |row| {
            f(row.and_then(|row| {
                row.to_row().map_err(|e| Unreadable {
                    seq: Some(row.monotonic_seq),
                    id: Some(row.id.to_owned()),
                    reason: format!("stored detail is not JSON: {e}"),
                })
            }))
        })
    }

    /// Calls `f` with `(monotonic_seq, hash)` of each row of `node` with
    /// `after_seq < monotonic_seq <= upto_seq`, in order: all a Merkle tree
    /// needs, without reading or decoding the other columns.
    fn scan_hashes(
        &mut self,
        node: &str,
        after_seq: i64,
        upto_seq: i64,
        f: &mut dyn FnMut(i64, &str) -> Result<()>,
    ) -> Result<()>;

    /// Keeps Merkle subtree roots `(level, index, root)` of `node` in
    /// `<table>_merkle`; ones already kept are left as they are.
    fn save_merkle_nodes(&mut self, node: &str, nodes: &[(u32, u64, [u8; 32])]) -> Result<()>;

    /// One kept subtree root of `node`, hex; `None` when it is not kept (or
    /// the table predates `<table>_merkle`).
    fn merkle_node(&mut self, node: &str, level: u32, index: u64) -> Result<Option<String>>;

    /// Keeps a signed checkpoint beside the rows (in `<table>_checkpoints`).
    /// Saving one that is already there changes nothing.
    fn save_checkpoint(&mut self, node: &str, size: u64, note: &str) -> Result<()>;

    /// The checkpoints kept for `node`, as `(tree size, signed note)` by
    /// size. A table made before checkpoints existed reads as none.
    fn checkpoints(&mut self, node: &str) -> Result<Vec<(u64, String)>>;

    /// One row by `id`.
    fn get(&mut self, id: &str) -> Result<Option<Row>>;

    /// A page of rows across nodes, newest first (`timestamp`, then `id`,
    /// descending), filtered by `=` on [`stream::AUDIT_FILTERS`] columns.
    fn query(&mut self, q: &stream::Query) -> Result<Vec<Row>>;
    /// Every `(code, pii_in_detail)` pair with rows whose detail is still
    /// there, sorted (a skip scan of the unerased index).
    fn unerased_groups(&mut self) -> Result<Vec<(String, bool)>>;

    /// Up to `limit` rows of `scope` whose detail is still there, ordered by
    /// `(timestamp, id)` and strictly after `after`.
    fn page(
        &mut self,
        scope: Scope<'_>,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<Candidate>>;

    /// Erases the detail of the rows with these ids (row contract §2: sets
    /// `detail` and `detail_salt` to NULL) in one short transaction. Rows
    /// already erased are left alone.
    fn erase(&mut self, ids: &[&str]) -> Result<Erased>;

    /// The nodes with at least one row whose `shipped_at` is set: nodes
    /// that ship their rows to an aggregator. Shipping marks a prefix of a
    /// node's chain ([`Store::mark_shipped`]), so these are the nodes whose
    /// first row has shipped: one index seek per node, never a table scan.
    fn shipping_nodes(&mut self) -> Result<Vec<String>>;

    /// The rows of `node` whose `shipped_at` is not set yet, or `None` when
    /// every row has shipped (or there are none).
    fn unshipped(&mut self, node: &str) -> Result<Option<Unshipped>>;

    /// Sets `shipped_at` to `at` (the contract's text form) on the rows of
    /// `node` up to `upto_seq` that have none; returns how many it set.
    fn mark_shipped(&mut self, node: &str, upto_seq: i64, at: &str) -> Result<u64>;

    /// Takes or renews the lease `name` for `holder` until `until`, unless
    /// another holder has it past `now` (times in the contract's text
    /// form). Returns whether `holder` holds it now.
    fn lease(&mut self, name: &str, holder: &str, now: &str, until: &str) -> Result<bool>;

    /// Gives the lease `name` back, if `holder` holds it.
    fn release(&mut self, name: &str, holder: &str) -> Result<()>;

    /// The `timestamp` of the newest row of `node` with `code`, or with no
    /// code given, of the node's first row.
    fn time_of(&mut self, node: &str, code: Option<&str>) -> Result<Option<String>>;

    /// Groups the rows `s.filter` selects and sums a numeric detail field
    /// per group: at most `s.limit` groups, largest sum first.
    fn summarize(&mut self, s: &Summarize) -> Result<Vec<SummaryRow>>;
}

/// What [`Store::summarize`] groups and sums. Column names and detail
/// paths are checked by the caller (`crate::summary`) against allow lists;
/// path segments match `^[a-z_][a-z0-9_]*$`, so they are safe inside a
/// JSON path or a text array, and are still bound as parameters.
// Read only by the stores; without one it is built and never read.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct Summarize {
    pub(crate) filter: stream::Query,
    /// The detail path to sum, as segments; `None` only counts.
    pub(crate) sum: Option<Vec<String>>,
    pub(crate) by: GroupBy,
    pub(crate) limit: usize,
}

/// What [`Store::summarize`] groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupBy {
    /// One group of every row.
    Nothing,
    /// A text column from an allow list.
    Column(&'static str),
    /// A detail path, as segments; its value as text.
    Detail(Vec<String>),
}

/// One group: its key, its rows, the rows whose field is a number, and
/// their sum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SummaryRow {
    pub(crate) key: Option<String>,
    pub(crate) rows: u64,
    pub(crate) summed: u64,
    pub(crate) sum: f64,
}

/// One connection kept between reads: opened on first use, dropped after
/// an error so the next read reconnects (a restarted server, a dropped
/// connection).
pub(crate) struct Cached<C: ?Sized> {
    conn: std::sync::Mutex<Option<Box<C>>>,
}

impl<C: ?Sized> std::fmt::Debug for Cached<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").finish_non_exhaustive()
    }
}

impl<C: ?Sized> Default for Cached<C> {
    fn default() -> Self {
        Self {
            conn: std::sync::Mutex::new(None),
        }
    }
}

impl<C: ?Sized> Cached<C> {
    pub(crate) fn with<R>(
        &self,
        open: impl FnOnce() -> Result<Box<C>>,
        f: impl FnOnce(&mut C) -> Result<R>,
    ) -> Result<R> {
        let slot = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::use_slot(slot, open, f)
    }

    /// [`Cached::with`] for a table that may not exist yet: `open` gives
    /// `None` then, and so does this. Nothing is kept, so the next call
    /// looks again and finds the table once a writer has made it.
    pub(crate) fn with_existing<R>(
        &self,
        open: impl FnOnce() -> Result<Option<Box<C>>>,
        f: impl FnOnce(&mut C) -> Result<R>,
    ) -> Result<Option<R>> {
        let mut slot = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => match open()? {
                Some(conn) => slot.insert(conn),
                None => return Ok(None),
            },
        };
        let out = f(conn);
        if out.is_err() {
            *slot = None;
        }
        out.map(Some)
    }

    /// [`Cached::with`] if the connection is free now, else `Err(f)` back.
    #[allow(clippy::type_complexity)]
    fn try_with<R, F: FnOnce(&mut C) -> Result<R>>(
        &self,
        open: impl FnOnce() -> Result<Box<C>>,
        f: F,
    ) -> std::result::Result<Result<R>, F> {
        match self.conn.try_lock() {
            Ok(slot) => Ok(Self::use_slot(slot, open, f)),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                Ok(Self::use_slot(p.into_inner(), open, f))
            }
            Err(std::sync::TryLockError::WouldBlock) => Err(f),
        }
    }

    fn use_slot<R>(
        mut slot: std::sync::MutexGuard<'_, Option<Box<C>>>,
        open: impl FnOnce() -> Result<Box<C>>,
        f: impl FnOnce(&mut C) -> Result<R>,
    ) -> Result<R> {
        let conn = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(open()?),
        };
        let out = f(conn);
        if out.is_err() {
            *slot = None;
        }
        out
    }
}

/// A few [`Cached`] connections shared by concurrent readers: a read takes
/// a free one, so one long read (a full verification) never queues the
/// short ones behind it; when all are busy it waits for one. Bounded, so
/// concurrent requests cannot open connections without limit.
pub(crate) struct Pool<C: ?Sized> {
    slots: Box<[Cached<C>]>,
    next: std::sync::atomic::AtomicUsize,
}

impl<C: ?Sized> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connections", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<C: ?Sized> Pool<C> {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            slots: (0..size.max(1)).map(|_| Cached::default()).collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub(crate) fn with<R>(
        &self,
        open: impl Fn() -> Result<Box<C>>,
        f: impl FnOnce(&mut C) -> Result<R>,
    ) -> Result<R> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        let mut f = f;
        for i in 0..n {
            match self.slots[(start + i) % n].try_with(&open, f) {
                Ok(out) => return out,
                Err(back) => f = back,
            }
        }
        self.slots[start].with(&open, f)
    }
}

/// The node of a batch. A pipeline writes one node, so a batch that mixes
/// nodes is a bug; refuse it rather than chain one node's rows on another's
/// tip.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn batch_node(rows: &[Row]) -> Result<String> {
    let node = rows
        .first()
        .map(|r| r.source_node_id.clone())
        .unwrap_or_default();
    if rows.iter().any(|r| r.source_node_id != node) {
        return Err(crate::Error::new(
            crate::ErrorKind::Store,
            "a batch mixes rows of several nodes",
        ));
    }
    Ok(node)
}

/// The identity a retry's recheck reads back for an `id` already stored:
/// its node and its detail salt (32 fresh random bytes per row).
pub(crate) struct StoredIdentity {
    pub(crate) node: String,
    pub(crate) salt: Option<String>,
}

/// Settles a retry's recheck: rows that an earlier attempt stored (same
/// id, node and salt) leave `rows`; a row whose id another row holds (two
/// pipelines minted one id) keeps its place with a fresh id, so a collision
/// never passes for "already stored" and loses the row. Returns how many
/// rows were already stored.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn settle_recheck(
    rows: &mut Vec<Row>,
    mut stored: impl FnMut(&str) -> Result<Option<StoredIdentity>>,
) -> Result<usize> {
    let before = rows.len();
    let mut keep = Vec::with_capacity(rows.len());
    for mut row in rows.drain(..) {
        match stored(&row.id)? {
            None => keep.push(row),
            Some(found) if found.node == row.source_node_id && found.salt == row.detail_salt => {
                tracing::warn!(target: "fasten::store", id = %row.id, "row already stored by an earlier attempt; not inserted again");
            }
            Some(found) => {
                let at = row
                    .timestamp
                    .parse()
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                let fresh = crate::event::EventId::remint(at).to_string();
                tracing::error!(
                    target: "fasten::store",
                    id = %row.id,
                    holder = %found.node,
                    fresh = %fresh,
                    "event id already held by another row; this row is stored under a fresh id"
                );
                row.id.clone_from(&fresh);
                row.origin_id = fresh;
                keep.push(row);
            }
        }
    }
    *rows = keep;
    Ok(before - rows.len())
}

/// Whether a store error is one no retry can change: another
/// implementation's table ([`ErrorKind::ForeignTable`]), a chain with no
/// successor seq ([`ErrorKind::ChainExhausted`]), a table or column that is
/// not there, missing privileges, a read-only or non-database file. Anything
/// else (busy, locked, connection lost, I/O) is transient.
///
/// [`ErrorKind::ForeignTable`]: crate::ErrorKind::ForeignTable
/// [`ErrorKind::ChainExhausted`]: crate::ErrorKind::ChainExhausted
pub(crate) fn is_permanent(e: &crate::Error) -> bool {
    use crate::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ForeignTable { .. } | ErrorKind::ChainExhausted { .. }
    ) {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        #[cfg(feature = "sqlite")]
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = c.downcast_ref::<rusqlite::Error>() {
            use rusqlite::ErrorCode as C;
            return matches!(
                f.code,
                C::ReadOnly
                    | C::PermissionDenied
                    | C::AuthorizationForStatementDenied
                    | C::NotADatabase
            );
        }
        #[cfg(feature = "postgres")]
        if let Some(code) = c
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
        {
            use tokio_postgres::error::SqlState as S;
            return [
                S::INSUFFICIENT_PRIVILEGE,
                S::UNDEFINED_TABLE,
                S::UNDEFINED_COLUMN,
                S::DATATYPE_MISMATCH,
            ]
            .contains(code);
        }
        cause = c.source();
    }
    false
}

/// How many seqs `first..=tip` holds, in arithmetic that cannot overflow
/// on stored values (a planted `i64::MAX` tip, a negative first seq); 0
/// when `tip` is before `first`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn seq_span(first: i64, tip: i64) -> u64 {
    u64::try_from(i128::from(tip) - i128::from(first) + 1).unwrap_or(0)
}

/// Opens the store a DSN names.
pub(crate) fn open(dsn: &Dsn, access: Access) -> Result<Box<dyn Store>> {
    match dsn.repr() {
        #[cfg(feature = "sqlite")]
        Repr::Sqlite { path, table } => {
            Ok(Box::new(sqlite::SqliteStore::open(path, table, access)?))
        }
        #[cfg(not(feature = "sqlite"))]
        Repr::Sqlite { .. } => Err(missing_feature(access, "sqlite")),
        #[cfg(feature = "postgres")]
        Repr::Postgres { url, schema, table } => Ok(Box::new(postgres::PostgresStore::open(
            url,
            schema.as_deref(),
            table,
            access,
        )?)),
        #[cfg(not(feature = "postgres"))]
        Repr::Postgres { .. } => Err(missing_feature(access, "postgres")),
    }
}

/// Deletes the rows of `table` (any table with a contract-form `timestamp`
/// column, in the database `dsn` names, beside its audit table) sealed at or
/// before `cutoff` (the contract's text form), at most `batch` rows per
/// transaction. Returns how many rows it deleted. For the stream stores,
/// which are not chained: never point it at an audit table.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(unused_variables)
)]
/// Refusal to prune a chained table (one with `prev_hash`): audit rows are
/// only ever erased, never deleted.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn chained_table(table: &str) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::Store,
        format!(
            "refusing to prune {table:?}: it is the audit table, whose rows are chained and only ever erased"
        ),
    )
}

#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(unused_variables)
)]
pub(crate) fn prune(dsn: &Dsn, table: &str, cutoff: &str, batch: usize) -> Result<u64> {
    crate::dsn::check_identifier(table).map_err(|rule| {
        crate::Error::new(
            crate::ErrorKind::Store,
            format!("invalid table name {table:?} to prune: {rule}"),
        )
    })?;
    match dsn.repr() {
        #[cfg(feature = "sqlite")]
        Repr::Sqlite { path, .. } => sqlite::prune(path, table, cutoff, batch),
        #[cfg(not(feature = "sqlite"))]
        Repr::Sqlite { .. } => Err(missing_feature(Access::Write, "sqlite")),
        #[cfg(feature = "postgres")]
        Repr::Postgres { url, schema, .. } => {
            postgres::prune(url, schema.as_deref(), table, cutoff, batch)
        }
        #[cfg(not(feature = "postgres"))]
        Repr::Postgres { .. } => Err(missing_feature(Access::Write, "postgres")),
    }
}

#[cfg(any(not(feature = "sqlite"), not(feature = "postgres")))]
fn missing_feature(_: Access, feature: &str) -> crate::Error {
    crate::Error::config(
        crate::env::FASTEN_AUDIT_DSN,
        format!(
            "FASTEN_AUDIT_DSN names a {feature} store but fasten was built without its `{feature}` feature"
        ),
    )
}

#[cfg(test)]
mod derived_name_tests {
    use super::{INDEXED, OWN_SUFFIXES, stream};

    /// `dsn` refuses PostgreSQL table names too long for the longest name
    /// derived from them; that suffix must be the longest this store makes.
    #[test]
    fn dsn_knows_the_longest_derived_suffix() {
        let longest = INDEXED
            .iter()
            .chain(stream::INDEXED.iter())
            .map(|(name, _)| *name)
            .chain(OWN_SUFFIXES)
            .map(|name| format!("_{name}"))
            .max_by_key(String::len)
            .unwrap_or_default();
        assert_eq!(longest, crate::dsn::LONGEST_DERIVED_SUFFIX);
    }
}

#[cfg(test)]
mod pool_tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_busy_connection_does_not_hold_up_the_next_read() {
        let pool: Arc<Pool<u32>> = Arc::new(Pool::new(2));
        let (started_tx, started) = crossbeam_channel::bounded(1);
        let (release, released) = crossbeam_channel::bounded::<()>(1);
        let long = {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                pool.with(
                    || Ok(Box::new(1)),
                    |_| {
                        started_tx.send(()).unwrap();
                        released.recv().unwrap();
                        Ok(())
                    },
                )
            })
        };
        started.recv().unwrap();
        // Answered on the other connection while the first is held.
        let got = pool.with(|| Ok(Box::new(2)), |c| Ok(*c));
        assert_eq!(got.unwrap(), 2);
        release.send(()).unwrap();
        long.join().unwrap().unwrap();
    }
}
