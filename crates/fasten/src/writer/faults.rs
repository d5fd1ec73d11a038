//! A `Store` that fails on schedule, for the writer's fault tests (redb's
//! crash-consistency idea): it wraps one in-memory SQLite store that every
//! handle the writer opens shares, and counts `append` calls across those
//! handles, so "the N-th append" means the same thing however often the
//! writer reopens. A fault can also land inside the append's transaction
//! ([`Fault::FailAt`]): the real SQLite transaction is opened, rows are
//! inserted, and it rolls back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::{Receiver, Sender};

use crate::chain::{Row, RowRef};
use crate::error::{Error, ErrorKind, Result};
use crate::store::sqlite::{Point, SqliteStore};
use crate::store::{
    Candidate, Erased, NodeCount, Scope, Store, Summarize, SummaryRow, Unreadable, Unshipped,
    stream,
};

/// What the N-th `append` does instead of (or besides) appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Fails before touching the store.
    Fail,
    /// Fails with a fatal (foreign table) error before touching the store.
    Fatal,
    /// Appends and commits, then reports failure.
    FailAfterCommit,
    /// Panics before touching the store.
    Panic,
    /// Blocks until the test sends on the release channel, then appends.
    Hang,
    /// Opens the transaction, fails at `Step`, and rolls back: nothing of
    /// the batch may persist.
    FailAt(Step),
}

/// Where inside the append's transaction a [`Fault::FailAt`] lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Right after `BEGIN`.
    Begin,
    /// After the k-th row insert (k ≥ 1); at commit if the batch is
    /// shorter.
    Insert(usize),
    /// After every insert, at `COMMIT`, which does not land.
    Commit,
}

/// The faults by `append` call (0-based, counted over every handle), and
/// what happened.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    faults: BTreeMap<u64, Fault>,
    appends: u64,
    /// Batches that reached the database and committed (each once).
    pub(crate) committed: u64,
    /// Store handles opened (the first included).
    pub(crate) opened: u64,
    /// Rows a rolled-back [`Fault::FailAt`] transaction left stored (must
    /// stay 0).
    pub(crate) leaked: u64,
}

impl Schedule {
    /// How many `append` calls the writer made.
    pub(crate) fn appends(&self) -> u64 {
        self.appends
    }
}

/// The shared database and schedule behind every [`FaultStore`] handle.
#[derive(Clone)]
pub(crate) struct Faults {
    db: Arc<Mutex<SqliteStore>>,
    pub(crate) schedule: Arc<Mutex<Schedule>>,
    /// Signals that a `Hang` fault is blocking.
    hung_tx: Sender<()>,
    pub(crate) hung: Receiver<()>,
    /// Releases a blocked `Hang` fault.
    pub(crate) release: Sender<()>,
    release_rx: Receiver<()>,
}

impl Faults {
    pub(crate) fn new(faults: impl IntoIterator<Item = (u64, Fault)>) -> Result<Self> {
        let (hung_tx, hung) = crossbeam_channel::unbounded();
        let (release, release_rx) = crossbeam_channel::unbounded();
        Ok(Self {
            db: Arc::new(Mutex::new(SqliteStore::memory()?)),
            schedule: Arc::new(Mutex::new(Schedule {
                faults: faults.into_iter().collect(),
                ..Schedule::default()
            })),
            hung_tx,
            hung,
            release,
            release_rx,
        })
    }

    /// A new handle on the shared database.
    pub(crate) fn open(&self) -> Box<dyn Store> {
        self.schedule().opened += 1;
        Box::new(FaultStore {
            faults: self.clone(),
            table: self.db().table_name().to_owned(),
        })
    }

    pub(crate) fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The real store, bypassing the schedule (for checks after the run).
    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, SqliteStore> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn injected(what: &str) -> Error {
    Error::new(ErrorKind::Store, format!("injected fault: {what}"))
}

fn stored_rows(db: &mut SqliteStore) -> Result<u64> {
    Ok(db.nodes()?.iter().map(|n| n.rows).sum())
}

/// One handle on [`Faults`]' database.
pub(crate) struct FaultStore {
    faults: Faults,
    table: String,
}

impl Store for FaultStore {
    fn kind(&self) -> &'static str {
        "faulty"
    }

    fn table_name(&self) -> &str {
        &self.table
    }

    fn missing_columns(&self) -> &[&'static str] {
        &[]
    }

    fn foreign_forms(&mut self) -> Result<Vec<String>> {
        self.faults.db().foreign_forms()
    }

    fn tip_form(&mut self, node: &str) -> Result<Option<String>> {
        self.faults.db().tip_form(node)
    }

    fn append(&mut self, rows: &mut Vec<Row>, recheck: bool) -> Result<usize> {
        let fault = {
            let mut s = self.faults.schedule();
            let n = s.appends;
            s.appends += 1;
            s.faults.get(&n).copied()
        };
        match fault {
            None => {}
            Some(Fault::Fail) => return Err(injected("append failed")),
            Some(Fault::Fatal) => {
                return Err(Error::new(
                    ErrorKind::ForeignTable {
                        table: self.table.clone(),
                    },
                    "injected fault: the table is another implementation's",
                ));
            }
            Some(Fault::Panic) => panic!("injected fault: panic inside a batch"),
            Some(Fault::Hang) => {
                let _ = self.faults.hung_tx.send(());
                let _ = self.faults.release_rx.recv();
            }
            Some(Fault::FailAt(step)) => {
                let mut db = self.faults.db();
                let before = stored_rows(&mut db)?;
                let out = db.append_observed(rows, recheck, &mut |point| match (step, point) {
                    (Step::Begin, Point::Begun) => Err(injected("begin failed")),
                    (Step::Insert(k), Point::Inserted(n)) if n >= k => {
                        Err(injected(&format!("insert {n} failed")))
                    }
                    (Step::Insert(_) | Step::Commit, Point::Committing) => {
                        Err(injected("commit failed"))
                    }
                    _ => Ok(()),
                });
                let after = stored_rows(&mut db)?;
                drop(db);
                self.faults.schedule().leaked += after.saturating_sub(before);
                // It fires by COMMIT at the latest, so `out` is an error.
                return out.and_then(|_| Err(injected("COMMIT landed despite the fault")));
            }
            Some(Fault::FailAfterCommit) => {
                self.faults.db().append(rows, recheck)?;
                self.faults.schedule().committed += 1;
                return Err(injected("connection lost after COMMIT"));
            }
        }
        let n = self.faults.db().append(rows, recheck)?;
        self.faults.schedule().committed += 1;
        Ok(n)
    }

    fn nodes(&mut self) -> Result<Vec<NodeCount>> {
        self.faults.db().nodes()
    }

    fn scan_rows(
        &mut self,
        node: &str,
        after_seq: i64,
        f: &mut dyn FnMut(std::result::Result<RowRef<'_>, Unreadable>) -> Result<()>,
    ) -> Result<()> {
        self.faults.db().scan_rows(node, after_seq, f)
    }

    fn scan_table(
        &mut self,
        f: &mut dyn FnMut(std::result::Result<RowRef<'_>, Unreadable>) -> Result<()>,
    ) -> Result<()> {
        self.faults.db().scan_table(f)
    }

    fn scan_hashes(
        &mut self,
        node: &str,
        after_seq: i64,
        upto_seq: i64,
        f: &mut dyn FnMut(i64, &str) -> Result<()>,
    ) -> Result<()> {
        self.faults.db().scan_hashes(node, after_seq, upto_seq, f)
    }

    fn save_merkle_nodes(&mut self, node: &str, nodes: &[(u32, u64, [u8; 32])]) -> Result<()> {
        self.faults.db().save_merkle_nodes(node, nodes)
    }

    fn merkle_node(&mut self, node: &str, level: u32, index: u64) -> Result<Option<String>> {
        self.faults.db().merkle_node(node, level, index)
    }

    fn save_checkpoint(&mut self, node: &str, size: u64, note: &str) -> Result<()> {
        self.faults.db().save_checkpoint(node, size, note)
    }

    fn checkpoints(&mut self, node: &str) -> Result<Vec<(u64, String)>> {
        self.faults.db().checkpoints(node)
    }

    fn get(&mut self, id: &str) -> Result<Option<Row>> {
        self.faults.db().get(id)
    }

    fn query(&mut self, q: &stream::Query) -> Result<Vec<Row>> {
        self.faults.db().query(q)
    }

    fn unerased_groups(&mut self) -> Result<Vec<(String, bool)>> {
        self.faults.db().unerased_groups()
    }

    fn page(
        &mut self,
        scope: Scope<'_>,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        self.faults.db().page(scope, after, limit)
    }

    fn erase(&mut self, ids: &[&str]) -> Result<Erased> {
        self.faults.db().erase(ids)
    }

    fn shipping_nodes(&mut self) -> Result<Vec<String>> {
        self.faults.db().shipping_nodes()
    }

    fn unshipped(&mut self, node: &str) -> Result<Option<Unshipped>> {
        self.faults.db().unshipped(node)
    }

    fn mark_shipped(&mut self, node: &str, upto_seq: i64, at: &str) -> Result<u64> {
        self.faults.db().mark_shipped(node, upto_seq, at)
    }

    fn lease(&mut self, name: &str, holder: &str, now: &str, until: &str) -> Result<bool> {
        self.faults.db().lease(name, holder, now, until)
    }

    fn release(&mut self, name: &str, holder: &str) -> Result<()> {
        self.faults.db().release(name, holder)
    }

    fn time_of(&mut self, node: &str, code: Option<&str>) -> Result<Option<String>> {
        self.faults.db().time_of(node, code)
    }

    fn summarize(&mut self, s: &Summarize) -> Result<Vec<SummaryRow>> {
        self.faults.db().summarize(s)
    }
}
