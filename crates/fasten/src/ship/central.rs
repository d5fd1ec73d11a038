//! The central side: accepting edges' batches into a PostgreSQL store.

use std::collections::HashMap;

use serde_json::json;

use super::{Ack, Batch, ForkEvidence, Judged, MAX_CHECKPOINTS, NodeStatus, judge};
use crate::chain::{self, Row};
use crate::checkpoint::{Checkpoint, VerifierKey};
use crate::dsn::{Dsn, Repr};
use crate::error::{Error, ErrorKind, Result};
use crate::event::format_timestamp;
use crate::merkle::MerkleLog;
use crate::store::Access;
use crate::store::Store as _;
use crate::store::postgres::{Judgement, PostgresStore};

/// The node the central store writes its own rows ([`super::FLEET_FORK_DETECTED`])
/// with, unless [`Central::node_id`] names another. No edge may ship it.
pub const FLEET_NODE_DEFAULT: &str = "fasten-fleet";

/// The service of the central store's own rows.
const FLEET_SERVICE: &str = "fasten";

/// The central store of a fleet: accepts edges' batches, verified.
pub struct Central {
    store: PostgresStore,
    node_id: String,
    keys: Option<HashMap<String, VerifierKey>>,
    /// Each node's Merkle tree over the rows held here, extended as rows
    /// arrive, so checking a checkpoint reads only the rows since the last.
    trees: HashMap<String, MerkleLog>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Central {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Central")
            .field("node_id", &self.node_id)
            .field("keys", &self.keys.as_ref().map(HashMap::len))
            .finish_non_exhaustive()
    }
}

/// Reads `FASTEN_FLEET_KEYS`: comma-separated `node=verifier key` pairs
/// (the verifier key as `fasten keygen` prints it).
///
/// # Errors
///
/// [`ErrorKind::Config`] naming `FASTEN_FLEET_KEYS` for a pair without `=`
/// or a malformed key.
pub fn parse_fleet_keys(text: &str) -> Result<Vec<(String, String)>> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (node, key) = pair.split_once('=').ok_or_else(|| {
                Error::config(
                    crate::env::FASTEN_FLEET_KEYS,
                    format!("invalid FASTEN_FLEET_KEYS entry {pair:?}: expected node=verifier key, e.g. edge-1=edge-1+1a2b3c4d+AbC…"),
                )
            })?;
            VerifierKey::parse(key).map_err(|e| {
                Error::config(
                    crate::env::FASTEN_FLEET_KEYS,
                    format!("invalid FASTEN_FLEET_KEYS key of node {node:?}: {e}"),
                )
            })?;
            Ok((node.trim().to_owned(), key.trim().to_owned()))
        })
        .collect()
}

impl Central {
    /// Opens (creating and migrating) the central store `dsn` names, which
    /// must be PostgreSQL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when `dsn` is not PostgreSQL;
    /// [`ErrorKind::Store`] when it cannot be opened.
    pub fn open(dsn: &Dsn) -> Result<Self> {
        let Repr::Postgres { url, schema, table } = dsn.repr() else {
            return Err(Error::config(
                crate::env::FASTEN_SHIP_TO,
                format!("the central store of a fleet is PostgreSQL, not {dsn}"),
            ));
        };
        Ok(Self {
            store: PostgresStore::open(url, schema.as_deref(), table, Access::Write)?,
            node_id: FLEET_NODE_DEFAULT.to_owned(),
            keys: None,
            trees: HashMap::new(),
            buf: Vec::with_capacity(1024),
        })
    }

    /// The central store's own node, which writes [`super::FLEET_FORK_DETECTED`]
    /// and which no edge may ship. Default [`FLEET_NODE_DEFAULT`].
    #[must_use]
    pub fn node_id(mut self, node: impl Into<String>) -> Self {
        self.node_id = node.into();
        self
    }

    /// Verifies each shipped checkpoint with its node's key (`(node,
    /// verifier key)` pairs, as [`parse_fleet_keys`] reads them); a node
    /// with no key gets its checkpoints refused.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed key.
    pub fn fleet_keys(mut self, keys: &[(String, String)]) -> Result<Self> {
        let mut map = HashMap::new();
        for (node, key) in keys {
            let key = VerifierKey::parse(key).map_err(|e| {
                Error::config(
                    crate::env::FASTEN_FLEET_KEYS,
                    format!("invalid FASTEN_FLEET_KEYS key of node {node:?}: {e}"),
                )
            })?;
            map.insert(node.clone(), key);
        }
        self.keys = Some(map);
        Ok(self)
    }

    /// Accepts what of `batch` continues its node's chain here, in one
    /// transaction, and keeps its checkpoints. A fork is not an error: it
    /// is recorded and reported in [`Ack::fork`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Fleet`] when the batch mixes nodes or names the central
    /// store's own node; [`ErrorKind::Store`] when the store fails.
    pub fn accept(&mut self, batch: &Batch) -> Result<Ack> {
        let node = batch.node.as_str();
        let refused = |why: String| {
            Error::new(
                ErrorKind::Fleet {
                    node: node.to_owned(),
                },
                why,
            )
        };
        if node.is_empty() {
            return Err(refused("a batch names no node".to_owned()));
        }
        if let Some(r) = batch.rows.iter().find(|r| r.source_node_id != node) {
            return Err(refused(format!(
                "a batch of node {node} holds a row of node {}",
                r.source_node_id
            )));
        }
        if node == self.node_id {
            return Err(refused(format!(
                "node {node} is the central store's own node; an edge cannot ship it"
            )));
        }
        let first = batch.rows.first().map_or(0, |r| r.monotonic_seq);
        let mut ack = Ack {
            node: node.to_owned(),
            stored_upto: first.saturating_sub(1),
            ..Ack::default()
        };
        let now = format_timestamp(jiff::Timestamp::now());
        if let Some(fork) = self.store.fleet_fork(node)? {
            ack.fork = Some(fork);
            return Ok(ack);
        }
        let buf = &mut self.buf;
        let imported =
            self.store
                .import(node, &batch.rows, &now, &mut |held, tip, row| match judge(
                    held, tip, row, buf,
                ) {
                    Judged::Insert => Judgement::Insert,
                    Judged::Skip => Judgement::Skip,
                    Judged::Refuse(why) => Judgement::Refuse(why),
                })?;
        if imported.own {
            return Err(refused(format!(
                "node {node} is written by the central store itself (its rows did not arrive by shipping); an edge cannot ship it"
            )));
        }
        ack.inserted = imported.inserted as u64;
        ack.duplicates = imported.skipped as u64;
        let accepted = imported.inserted + imported.skipped;
        if let Some(last) = accepted.checked_sub(1).and_then(|i| batch.rows.get(i)) {
            ack.stored_upto = last.monotonic_seq;
        }
        if let Some((index, reason, held)) = imported.refused {
            let offered = &batch.rows[index];
            self.fork(node, offered.monotonic_seq, &reason, held.as_ref(), offered)?;
            ack.fork = Some(reason);
            return Ok(ack);
        }
        let pending = batch.pending.saturating_sub(accepted as u64);
        let oldest = if pending == 0 {
            None
        } else {
            batch
                .rows
                .get(accepted)
                .map(|r| r.timestamp.as_str())
                .or(batch.oldest_pending.as_deref())
        };
        self.store.fleet_report(node, pending, oldest, &now)?;
        self.checkpoints(batch, imported.tip.seq, &mut ack)?;
        Ok(ack)
    }

    /// Checks and keeps the batch's checkpoints of at most `tip` rows.
    fn checkpoints(&mut self, batch: &Batch, tip: i64, ack: &mut Ack) -> Result<()> {
        let node = batch.node.as_str();
        let tip = u64::try_from(tip).unwrap_or(0);
        for shipped in batch.checkpoints.iter().take(MAX_CHECKPOINTS) {
            let opened = match &self.keys {
                Some(keys) => match keys.get(node) {
                    Some(key) => Checkpoint::open(&shipped.note, std::slice::from_ref(key))
                        .map(|(c, _)| c)
                        .map_err(|e| format!("checkpoint of {} rows refused: {e}", shipped.size)),
                    None => Err(format!(
                        "checkpoint of {} rows refused: FASTEN_FLEET_KEYS has no key for node {node}",
                        shipped.size
                    )),
                },
                None => Checkpoint::parse_unverified(&shipped.note).ok_or_else(|| {
                    format!(
                        "checkpoint of {} rows refused: not a checkpoint note",
                        shipped.size
                    )
                }),
            };
            let checkpoint = match opened {
                Ok(c) => c,
                Err(why) => {
                    let now = format_timestamp(jiff::Timestamp::now());
                    self.store.fleet_error(node, &why, &now)?;
                    ack.checkpoint_error = Some(why);
                    continue;
                }
            };
            if checkpoint.origin() != node || checkpoint.size() != shipped.size {
                let why = format!(
                    "checkpoint of {} rows refused: it signs node {} at {} rows",
                    shipped.size,
                    checkpoint.origin(),
                    checkpoint.size()
                );
                let now = format_timestamp(jiff::Timestamp::now());
                self.store.fleet_error(node, &why, &now)?;
                ack.checkpoint_error = Some(why);
                continue;
            }
            if checkpoint.size() > tip {
                // Its rows have not arrived yet: sent again later.
                continue;
            }
            let log = self.tree(node, tip)?;
            let root = log.root_at(checkpoint.size()).ok();
            if root.as_ref() != Some(checkpoint.root()) {
                let reason = format!(
                    "the checkpoint of {} rows of node {node} has a root the shipped rows do not have: the edge signed a different history",
                    checkpoint.size()
                );
                let offered = json!({ "checkpoint": shipped.note }).to_string();
                self.fork_evidence(
                    node,
                    i64::try_from(checkpoint.size()).unwrap_or(i64::MAX),
                    &reason,
                    None,
                    &offered,
                )?;
                ack.fork = Some(reason);
                return Ok(());
            }
            self.store
                .save_checkpoint(node, checkpoint.size(), &shipped.note)?;
            self.store.fleet_checkpoint(node, checkpoint.size())?;
            ack.checkpoint = Some(ack.checkpoint.unwrap_or(0).max(checkpoint.size()));
        }
        if ack.checkpoint.is_none() {
            ack.checkpoint = self.store.checkpoints(node)?.last().map(|(size, _)| *size);
        }
        Ok(())
    }

    /// The Merkle tree of the first `tip` rows of `node` held here: the
    /// cached one, extended with the rows since.
    fn tree(&mut self, node: &str, tip: u64) -> Result<&MerkleLog> {
        let log = self.trees.entry(node.to_owned()).or_default();
        if log.len() > tip {
            *log = MerkleLog::new();
        }
        let mut bad = None;
        self.store.scan_hashes(
            node,
            i64::try_from(log.len()).unwrap_or(i64::MAX),
            i64::try_from(tip).unwrap_or(i64::MAX),
            &mut |seq, hash| {
                let mut raw = [0u8; 32];
                match hex::decode_to_slice(hash, &mut raw) {
                    Ok(()) if bad.is_none() => log.push(&raw),
                    Ok(()) => {}
                    Err(_) => bad = bad.or(Some(seq)),
                }
                Ok(())
            },
        )?;
        if let Some(seq) = bad {
            self.trees.remove(node);
            return Err(Error::new(
                ErrorKind::Store,
                format!("the central row {seq} of node {node} has a hash that is not hex"),
            ));
        }
        Ok(&self.trees[node])
    }

    /// Keeps the evidence of a refused row and writes the fork row.
    fn fork(
        &mut self,
        node: &str,
        seq: i64,
        reason: &str,
        held: Option<&Row>,
        offered: &Row,
    ) -> Result<()> {
        let central = held.map(|r| serde_json::to_string(r).unwrap_or_default());
        let offered = serde_json::to_string(offered).unwrap_or_default();
        self.fork_evidence(node, seq, reason, central.as_deref(), &offered)
    }

    fn fork_evidence(
        &mut self,
        node: &str,
        seq: i64,
        reason: &str,
        central: Option<&str>,
        offered: &str,
    ) -> Result<()> {
        let now = format_timestamp(jiff::Timestamp::now());
        tracing::error!(target: "fasten::store", node, seq, reason, "fleet: fork detected; shipping for the node stops");
        self.store
            .fleet_record_fork(node, seq, reason, central, offered, &now)?;
        let mut rows = vec![self.fork_row(node, seq, reason)];
        self.store.append(&mut rows, false)?;
        Ok(())
    }

    /// The central node's `FLEET_FORK_DETECTED` row about `node`.
    fn fork_row(&mut self, node: &str, seq: i64, reason: &str) -> Row {
        let salt = chain::fresh_salt();
        let detail = json!({ "node": node, "seq": seq, "reason": reason });
        let detail_commitment = chain::commitment(&salt, &detail, &mut self.buf);
        let id = crate::event::EventId::remint(jiff::Timestamp::now()).to_string();
        Row {
            origin_id: id.clone(),
            id,
            monotonic_seq: 0,
            timestamp: format_timestamp(jiff::Timestamp::now()),
            code: super::FLEET_FORK_DETECTED.to_owned(),
            action: "refuse".to_owned(),
            severity: crate::Severity::Critical.as_str().to_owned(),
            outcome: crate::Outcome::Denied.as_str().to_owned(),
            service_id: FLEET_SERVICE.to_owned(),
            source_node_id: self.node_id.clone(),
            tenant_id: None,
            actor: self.node_id.clone(),
            actor_kind: crate::ActorKind::Service.as_str().to_owned(),
            target: node.to_owned(),
            category: "fleet".to_owned(),
            domain: crate::code::BUILTIN_DOMAIN.to_owned(),
            method: crate::Method::Sdk.as_str().to_owned(),
            request_id: crate::RequestId::mint().as_str().to_owned(),
            detail: Some(detail),
            detail_salt: Some(salt),
            detail_commitment,
            pii_in_detail: false,
            shipped_at: None,
            wire_version: chain::WIRE_VERSION.to_owned(),
            canonical_form_id: chain::CANONICAL_FORM_ID.to_owned(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Every node the central store knows, as [`status`] reports it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the store cannot be read.
    pub fn status(&mut self) -> Result<Vec<NodeStatus>> {
        let nodes = self.store.fleet_status()?;
        Ok(nodes
            .into_iter()
            .map(|n| {
                let lag_seconds =
                    n.reported_at
                        .as_ref()
                        .map(|at| match (&n.oldest_pending, n.pending) {
                            (Some(oldest), Some(p)) if p > 0 => seconds_between(oldest, at),
                            _ => 0.0,
                        });
                NodeStatus {
                    role: if n.shipped { "edge" } else { "central" }.to_owned(),
                    rows: n.rows,
                    tip_seq: n.tip_seq,
                    newest: n.newest,
                    pending: n.pending,
                    lag_seconds,
                    reported_at: n.reported_at,
                    last_checkpoint: n.last_checkpoint,
                    last_error: n.last_error,
                    fork: n.fork,
                    node: n.node,
                }
            })
            .collect())
    }

    /// The evidence kept for `node`'s forks, oldest first.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the store cannot be read.
    pub fn forks(&mut self, node: &str) -> Result<Vec<ForkEvidence>> {
        Ok(self
            .store
            .fleet_forks(node)?
            .into_iter()
            .map(|f| ForkEvidence {
                seq: f.seq,
                reason: f.reason,
                central_row: f.central,
                offered: f.offered,
            })
            .collect())
    }
}

/// Seconds from `from` to `to` (contract timestamps), 0 when unreadable.
fn seconds_between(from: &str, to: &str) -> f64 {
    match (
        from.parse::<jiff::Timestamp>(),
        to.parse::<jiff::Timestamp>(),
    ) {
        (Ok(a), Ok(b)) => (b.as_microsecond() - a.as_microsecond()).max(0) as f64 / 1e6,
        _ => 0.0,
    }
}

/// Each node the central store `dsn` names knows: rows, the pending rows
/// and lag its edge last reported, last checkpoint, last error, fork.
///
/// # Errors
///
/// As [`Central::open`] and [`Central::status`].
pub fn status(dsn: &Dsn) -> Result<Vec<NodeStatus>> {
    Central::open(dsn)?.status()
}
