//! The store seam: the writer and the verifier see only [`Store`]; each
//! backend is one file. Backends are chosen by DSN.

use crate::chain::Row;
use crate::dsn::Dsn;
use crate::error::Result;

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// Whether opening a store may create or migrate its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The writer: create the table and add missing columns and indexes.
    Write,
    /// Readers and verifiers: touch nothing, fail if the table is missing.
    Read,
}

/// One node's chain length, as the store counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeCount {
    pub(crate) node: String,
    pub(crate) rows: u64,
}

/// What every backend provides. Rows are sealed with
/// [`chain::link`](crate::chain::link) inside the backend's transaction, so
/// the chain logic lives in one place.
pub(crate) trait Store: Send {
    /// `sqlite`, `postgres` …, for stats and diagnostics.
    fn kind(&self) -> &'static str;

    /// Appends `rows` (all of one node) at the tip of that node's chain in
    /// one transaction: reads the tip under the backend's per-node lock,
    /// links and seals each row, inserts, commits. On success every row in
    /// `rows` carries its `monotonic_seq`, `prev_hash` and `hash`.
    ///
    /// With `recheck`, rows whose `id` is already stored (a previous attempt
    /// that committed although it reported failure) are removed from `rows`
    /// instead of inserted again, so a retry never duplicates or gaps.
    /// Returns how many rows were inserted.
    fn append(&mut self, rows: &mut Vec<Row>, recheck: bool) -> Result<usize>;

    /// Every node with rows, and how many each has.
    fn nodes(&mut self) -> Result<Vec<NodeCount>>;

    /// Calls `f` with each row of `node` in `monotonic_seq` order, stopping
    /// at the first error `f` returns.
    fn scan_chain(&mut self, node: &str, f: &mut dyn FnMut(Row) -> Result<()>) -> Result<()>;

    /// One row by `id`.
    fn get(&mut self, id: &str) -> Result<Option<Row>>;
}

/// Opens the store a DSN names.
pub(crate) fn open(dsn: &Dsn, access: Access) -> Result<Box<dyn Store>> {
    match dsn {
        #[cfg(feature = "sqlite")]
        Dsn::Sqlite { path, table } => {
            Ok(Box::new(sqlite::SqliteStore::open(path, table, access)?))
        }
        #[cfg(not(feature = "sqlite"))]
        Dsn::Sqlite { .. } => {
            let _ = access;
            Err(crate::Error::config(
                crate::config::FASTEN_AUDIT_DSN,
                "FASTEN_AUDIT_DSN names a sqlite store but fasten was built without the `sqlite` feature",
            ))
        }
    }
}
