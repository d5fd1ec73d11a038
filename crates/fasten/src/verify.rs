//! Chain verification (row contract §3): per node, in `monotonic_seq`
//! order, stop at the first failure and name it.

use serde::Serialize;

use crate::chain::{self, GENESIS, Row};
use crate::dsn::Dsn;
use crate::error::Result;
use crate::store::{self, Access, Store};

/// The verdict over every node of a store; `--json` prints exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Every chain holds.
    pub ok: bool,
    /// One verdict per node, sorted by node.
    pub nodes: Vec<NodeReport>,
}

/// One node's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NodeReport {
    /// The node (chain key).
    pub source_node_id: String,
    /// Rows checked before the first failure (all rows when it holds).
    pub rows: u64,
    /// Rows checked whose detail was erased (detail and salt NULL).
    pub erased: u64,
    /// The first sequence number that fails.
    pub first_break_seq: Option<i64>,
    /// Why it fails.
    pub reason: Option<String>,
}

/// How far a verification has come, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Rows checked so far, over all nodes.
    pub checked: u64,
    /// Rows in the store when verification started.
    pub total: u64,
}

/// Verifies every node's chain in the store `dsn` names. The store is
/// opened read-only; any table with the contract's columns will do,
/// including one written by another implementation.
///
/// # Errors
///
/// [`ErrorKind::Store`](crate::ErrorKind::Store) when the store cannot be
/// read. A broken chain is not an error: it is a [`Report`] with `ok` false.
///
/// # Examples
///
/// ```no_run
/// let dsn = fasten::Dsn::parse("FASTEN_AUDIT_DSN", "sqlite:///fasten_audit.db")?;
/// let report = fasten::verify(&dsn)?;
/// assert!(report.ok);
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn verify(dsn: &Dsn) -> Result<Report> {
    verify_with_progress(dsn, |_| {})
}

/// [`verify`], calling `progress` every few thousand rows and at the end.
///
/// # Errors
///
/// As [`verify`].
pub fn verify_with_progress(dsn: &Dsn, progress: impl FnMut(Progress)) -> Result<Report> {
    let mut store = store::open(dsn, Access::Read)?;
    verify_store(store.as_mut(), progress)
}

pub(crate) fn verify_store(
    store: &mut dyn Store,
    mut progress: impl FnMut(Progress),
) -> Result<Report> {
    let nodes = store.nodes()?;
    let total = nodes.iter().map(|n| n.rows).sum();
    let mut checked = 0u64;
    let mut reports = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut chain = ChainCheck::new(node.node.clone());
        store.scan_chain(&node.node, &mut |row| {
            if chain.failure.is_none() {
                chain.check(&row);
                checked += 1;
                if checked % 4096 == 0 {
                    progress(Progress { checked, total });
                }
            }
            Ok(())
        })?;
        reports.push(chain.into_report());
    }
    progress(Progress { checked, total });
    Ok(Report {
        ok: reports.iter().all(|r| r.first_break_seq.is_none()),
        nodes: reports,
    })
}

/// Checks one node's rows as they stream past in `monotonic_seq` order.
pub(crate) struct ChainCheck {
    node: String,
    expected_seq: i64,
    prev_hash: String,
    rows: u64,
    erased: u64,
    failure: Option<(i64, String)>,
    buf: Vec<u8>,
}

impl ChainCheck {
    pub(crate) fn new(node: String) -> Self {
        Self {
            node,
            expected_seq: 1,
            prev_hash: GENESIS.to_owned(),
            rows: 0,
            erased: 0,
            failure: None,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Checks the next row; after the first failure it ignores the rest.
    pub(crate) fn check(&mut self, row: &Row) {
        if self.failure.is_some() {
            return;
        }
        match self.reason(row) {
            Ok(erased) => {
                self.rows += 1;
                self.erased += u64::from(erased);
                self.expected_seq = row.monotonic_seq + 1;
                self.prev_hash.clone_from(&row.hash);
            }
            Err((seq, reason)) => self.failure = Some((seq, reason)),
        }
    }

    /// `Ok(erased)` when the row holds, else the failing seq and why.
    fn reason(&mut self, row: &Row) -> std::result::Result<bool, (i64, String)> {
        let seq = row.monotonic_seq;
        if seq < self.expected_seq {
            return Err((seq, format!("duplicate monotonic_seq {seq}")));
        }
        if seq > self.expected_seq {
            return Err((
                self.expected_seq,
                format!(
                    "gap in monotonic_seq: {} is missing (next row has {seq})",
                    self.expected_seq
                ),
            ));
        }
        match row.canonical_form_id.as_str() {
            chain::CANONICAL_FORM_ID => {}
            "1" | "2" => {
                return Err((
                    seq,
                    format!("canonical form {} is not supported yet", row.canonical_form_id),
                ));
            }
            other => return Err((seq, format!("unknown canonical form {other:?}"))),
        }
        let erased = match (&row.detail, &row.detail_salt) {
            (Some(_), None) => return Err((seq, "detail present without salt".to_owned())),
            (Some(detail), Some(salt)) => {
                if chain::commitment(salt, detail, &mut self.buf) != row.detail_commitment {
                    return Err((seq, "detail_commitment does not match detail".to_owned()));
                }
                false
            }
            (None, _) => true,
        };
        if chain::row_hash(row, &mut self.buf) != row.hash {
            return Err((seq, "hash does not match the row".to_owned()));
        }
        if row.prev_hash != self.prev_hash {
            return Err((
                seq,
                if seq == 1 {
                    "prev_hash of the first row is not \"genesis\"".to_owned()
                } else {
                    format!("prev_hash does not equal the hash of seq {}", seq - 1)
                },
            ));
        }
        Ok(erased)
    }

    pub(crate) fn into_report(self) -> NodeReport {
        let (first_break_seq, reason) = match self.failure {
            Some((seq, reason)) => (Some(seq), Some(reason)),
            None => (None, None),
        };
        NodeReport {
            source_node_id: self.node,
            rows: self.rows,
            erased: self.erased,
            first_break_seq,
            reason,
        }
    }
}
