//! The fleet: edges ship their sealed chains to a central PostgreSQL store,
//! which verifies every row on arrival.
//!
//! An edge writes locally as always (no network on the emit path). A
//! [`Shipper`] reads the rows whose `shipped_at` is not set yet, in
//! `monotonic_seq` order, sends them in batches ([`Batch`]) with the
//! node's signed checkpoints, and sets `shipped_at` only on the rows the
//! central store says it has committed ([`Ack`]). It resumes from the first
//! unshipped row after any interruption; rows the central store already
//! holds are accepted again only when identical, so nothing is lost or
//! duplicated.
//!
//! The central side (`Central`, feature `postgres`) accepts a node's row
//! only if it continues that node's chain there: the next `monotonic_seq`,
//! `prev_hash` equal to the central tip, a correct hash and detail
//! commitment (or an erased detail). Anything else is a **fork**: the row
//! is refused, both rows are kept in `<table>_forks`, shipping for the node
//! stops, and a chained [`FLEET_FORK_DETECTED`] row is written by the
//! central store's own node. With verifier keys (`FASTEN_FLEET_KEYS`) each
//! shipped checkpoint must be signed by its node's key; one the rows
//! contradict is a fork too.
//!
//! Two transports, chosen by `FASTEN_SHIP_TO`: `postgres://…` writes into
//! the central table directly (feature `postgres`); `https://…` (or
//! `http://` to a loopback address) posts to the `/ingest` route of a
//! central `fasten serve` or mounted reader (feature `ship-http`), with a
//! token bound to the node ids it may ship (`FASTEN_INGEST_TOKENS`), so
//! edges need no database credentials.
//!
//! With `FASTEN_SHIP_STREAMS` (or [`Shipper::sys`], [`Shipper::api`]) the
//! sys and api rows of the edge's stream tables ship as well, into the
//! `sys_log` and `api_log` tables beside the central audit table, so a
//! central `correlate` shows them. They are not chained: they go oldest
//! first, in batches, each marked on the edge (`shipped_at`) once the
//! central store has committed it; the central insert skips ids it holds,
//! so a batch sent again after an interruption lands once. `postgres://`
//! only: the ingest route takes audit rows.

use serde::{Deserialize, Serialize};

use crate::chain::{self, Row, Tip};

#[cfg(feature = "postgres")]
mod central;
mod edge;

pub use crate::code::FLEET_FORK_DETECTED;
#[cfg(feature = "postgres")]
pub use central::{Central, FLEET_NODE_DEFAULT, parse_fleet_keys, status};
pub(crate) use edge::Background;
pub use edge::{NodeShipped, ShipReport, Shipper, StreamShipped};

/// Most checkpoints one batch carries (the newest).
pub(crate) const MAX_CHECKPOINTS: usize = 64;

/// One batch of one node's rows on its way to the central store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Batch {
    /// The node every row belongs to.
    pub node: String,
    /// Consecutive sealed rows, in `monotonic_seq` order.
    pub rows: Vec<Row>,
    /// Signed checkpoints of the node, covering rows the central store has.
    #[serde(default)]
    pub checkpoints: Vec<ShippedCheckpoint>,
    /// Rows of the node the edge has not shipped yet, this batch's included.
    pub pending: u64,
    /// The oldest unshipped row's `timestamp`, if any.
    #[serde(default)]
    pub oldest_pending: Option<String>,
}

impl Batch {
    /// A batch of `rows` of `node`.
    #[must_use]
    pub fn new(node: impl Into<String>, rows: Vec<Row>) -> Self {
        Self {
            node: node.into(),
            pending: rows.len() as u64,
            rows,
            checkpoints: Vec::new(),
            oldest_pending: None,
        }
    }
}

/// A signed checkpoint note of `size` rows, as the edge keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippedCheckpoint {
    /// The tree size it signs.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// The central store's answer to a [`Batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Ack {
    /// The node.
    pub node: String,
    /// The highest `monotonic_seq` of the batch the central store now holds
    /// (inserted or found identical); the edge marks the rows up to it as
    /// shipped. The batch's first seq minus one when none.
    pub stored_upto: i64,
    /// Rows inserted now.
    pub inserted: u64,
    /// Rows the central store already held, identical.
    pub duplicates: u64,
    /// The newest checkpoint size the central store holds for the node.
    pub checkpoint: Option<u64>,
    /// Set when the node's chain forked: the first refusal's reason.
    /// Shipping for the node has stopped.
    pub fork: Option<String>,
    /// A checkpoint that was refused without a fork (a bad signature, no
    /// key for the node), and why.
    pub checkpoint_error: Option<String>,
}

/// One node as `fasten fleet status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// `edge` when its rows arrive by shipping, `central` for the central
    /// store's own nodes.
    pub role: String,
    /// Rows the central store has.
    pub rows: u64,
    /// The central tip's `monotonic_seq`.
    pub tip_seq: i64,
    /// The newest row's `timestamp` here.
    pub newest: Option<String>,
    /// Rows the edge reported still waiting there, at its last report.
    pub pending: Option<u64>,
    /// How far the central store is behind the edge's oldest waiting row,
    /// in seconds, at the edge's last report (0 when nothing waits).
    pub lag_seconds: Option<f64>,
    /// When the edge last reported.
    pub reported_at: Option<String>,
    /// The newest checkpoint size accepted.
    pub last_checkpoint: Option<u64>,
    /// The last error of the node's shipping, if any.
    pub last_error: Option<String>,
    /// Set when the node forked: why. Shipping for it has stopped.
    pub fork: Option<String>,
}

/// The evidence kept for one fork (`<table>_forks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ForkEvidence {
    /// The seq (of the refused row, or the checkpoint's size).
    pub seq: i64,
    /// Why it was refused.
    pub reason: String,
    /// The row the central store holds at that seq, as JSON, if any.
    pub central_row: Option<String>,
    /// What the edge offered (the row, or the checkpoint note), as JSON.
    pub offered: String,
}

/// Whether `row` is sealed as its columns say: its hash is the hash of its
/// contents and its detail matches its commitment (or is erased, detail and
/// salt both gone).
pub(crate) fn check_sealed(row: &Row, buf: &mut Vec<u8>) -> Result<(), String> {
    if row.canonical_form_id != chain::CANONICAL_FORM_ID {
        return Err(format!(
            "canonical_form_id {:?} is not {:?}, the form fasten seals with",
            row.canonical_form_id,
            chain::CANONICAL_FORM_ID
        ));
    }
    if chain::row_hash(row, buf) != row.hash {
        return Err(
            "its hash is not the hash of its contents: the row was changed after sealing"
                .to_owned(),
        );
    }
    match (&row.detail, &row.detail_salt) {
        (Some(detail), Some(salt)) => {
            if chain::commitment(salt, detail, buf) != row.detail_commitment {
                return Err("its detail does not match its detail_commitment: the detail was changed after sealing".to_owned());
            }
        }
        (None, None) => {}
        _ => {
            return Err("detail and detail_salt must be both present or both erased".to_owned());
        }
    }
    Ok(())
}

/// What the central store does with an offered row, given the row it holds
/// at that seq (if any) and its tip of the node's chain.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn judge(held: Option<&Row>, tip: &Tip, row: &Row, buf: &mut Vec<u8>) -> Judged {
    let seq = row.monotonic_seq;
    if let Some(held) = held {
        if held.id == row.id && held.hash == row.hash && check_sealed(row, buf).is_ok() {
            return Judged::Skip;
        }
        return Judged::Refuse(format!(
            "seq {seq} differs from the row the central store holds there (central {} hash {}, offered {} hash {}): the edge's history was rewritten",
            held.id, held.hash, row.id, row.hash
        ));
    }
    if seq <= tip.seq {
        return Judged::Refuse(format!(
            "seq {seq} is at or below the central tip {} but the central store holds no such row",
            tip.seq
        ));
    }
    if Some(seq) != tip.seq.checked_add(1) {
        return Judged::Refuse(format!(
            "seq {seq} does not follow the central tip {}: rows {}..{} are missing",
            tip.seq,
            tip.seq + 1,
            seq - 1
        ));
    }
    if row.prev_hash != tip.hash {
        return Judged::Refuse(format!(
            "seq {seq}: prev_hash {} is not the hash of the central row {} ({}): the chain was re-sealed",
            row.prev_hash, tip.seq, tip.hash
        ));
    }
    match check_sealed(row, buf) {
        Ok(()) => Judged::Insert,
        Err(why) => Judged::Refuse(format!("seq {seq}: {why}")),
    }
}

/// [`judge`]'s verdict.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Judged {
    Insert,
    Skip,
    Refuse(String),
}

/// Whether `url`'s host is a loopback address (or `localhost`), where
/// plain `http://` is allowed.
pub(crate) fn is_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(is_loopback("http://127.0.0.1:8080/api/v1/logs"));
        assert!(is_loopback("http://localhost/api"));
        assert!(is_loopback("http://[::1]:9/x"));
        assert!(!is_loopback("http://example.com/api"));
        assert!(!is_loopback("http://127.0.0.1.example.com/api"));
        assert!(!is_loopback("https://127.0.0.1/api"));
    }

    #[test]
    fn the_vector_chain_continues_and_forks_are_named() {
        let rows = crate::chain::tests::vector_chain();
        let mut buf = Vec::new();
        let mut tip = Tip::genesis();
        for row in &rows {
            assert_eq!(judge(None, &tip, row, &mut buf), Judged::Insert);
            tip = Tip {
                seq: row.monotonic_seq,
                hash: row.hash.clone(),
            };
        }
        // Re-sent, identical: skipped.
        assert_eq!(
            judge(Some(&rows[2]), &tip, &rows[2], &mut buf),
            Judged::Skip
        );
        // Changed after sealing.
        let mut changed = rows[2].clone();
        changed.actor = "mallory".into();
        let Judged::Refuse(why) = judge(Some(&rows[2]), &tip, &changed, &mut buf) else {
            panic!("accepted a changed row")
        };
        assert!(why.contains("differs"), "{why}");
        let mut fresh = Tip {
            seq: 2,
            hash: rows[1].hash.clone(),
        };
        let Judged::Refuse(why) = judge(None, &fresh, &changed, &mut buf) else {
            panic!("accepted a changed row")
        };
        assert!(why.contains("changed after sealing"), "{why}");
        fresh.hash = "0".repeat(64);
        let Judged::Refuse(why) = judge(None, &fresh, &rows[2], &mut buf) else {
            panic!("accepted a row on another tip")
        };
        assert!(why.contains("re-sealed"), "{why}");
        let Judged::Refuse(why) = judge(None, &Tip::genesis(), &rows[2], &mut buf) else {
            panic!("accepted a gap")
        };
        assert!(why.contains("missing"), "{why}");
    }
}
