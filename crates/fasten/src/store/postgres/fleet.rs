//! The central store of a fleet: edges' sealed rows imported as they are
//! (never re-sealed), each node's shipping state in `<table>_fleet`, and
//! the evidence of every fork in `<table>_forks`.
//!
//! What makes a row acceptable is decided above the store (by
//! `crate::ship`): the import reads the node's tip and the rows already
//! held under the node's chain lock, asks the caller's judgement for each
//! offered row in turn, and inserts the accepted prefix in the same
//! transaction, so two shippers of one node can never interleave.

use std::collections::HashMap;

use serde_json::Value;

use super::{LOCK_SQL, PostgresStore, col, pg_err, read_row, stored_u64, ts_text};
use crate::chain::{Row, Tip};
use crate::error::{Error, ErrorKind, Result};

/// `<table>_fleet`: one row per node that ships here.
pub(super) const FLEET_COLUMNS: &str = "source_node_id TEXT PRIMARY KEY, pending BIGINT NULL, oldest_pending TEXT NULL, reported_at TEXT NULL, last_error TEXT NULL, last_error_at TEXT NULL, fork TEXT NULL, last_checkpoint BIGINT NULL";

/// `<table>_forks`: each refused row beside the row the central store holds
/// at its place (as JSON), kept as evidence.
pub(super) const FORK_COLUMNS: &str = "source_node_id TEXT NOT NULL, monotonic_seq BIGINT NOT NULL, reason TEXT NOT NULL, central_row TEXT NULL, offered_row TEXT NOT NULL, detected_at TEXT NOT NULL";

/// What to do with one offered row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Judgement {
    /// It continues the chain: insert it.
    Insert,
    /// The central store already holds it, identical: nothing to do.
    Skip,
    /// Refuse it, and every row after it, for this reason.
    Refuse(String),
}

/// What one import did.
#[derive(Debug)]
pub(crate) struct Imported {
    pub(crate) inserted: usize,
    pub(crate) skipped: usize,
    /// The tip after the import.
    pub(crate) tip: Tip,
    /// The first refused row's index in the batch, why, and the row the
    /// central store holds at its seq, if any.
    pub(crate) refused: Option<(usize, String, Option<Row>)>,
    /// The node's chain here was written by the central store itself
    /// (its newest row did not arrive by shipping): nothing was imported.
    pub(crate) own: bool,
}

/// One row of `<table>_forks`.
#[derive(Debug, Clone)]
pub(crate) struct ForkRecord {
    pub(crate) seq: i64,
    pub(crate) reason: String,
    pub(crate) central: Option<String>,
    pub(crate) offered: String,
}

/// One node as `<table>_fleet` and the rows describe it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetNode {
    pub(crate) node: String,
    pub(crate) rows: u64,
    pub(crate) tip_seq: i64,
    pub(crate) newest: Option<String>,
    /// Whether the node's newest row arrived by shipping.
    pub(crate) shipped: bool,
    pub(crate) pending: Option<u64>,
    pub(crate) oldest_pending: Option<String>,
    pub(crate) reported_at: Option<String>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_at: Option<String>,
    pub(crate) fork: Option<String>,
    pub(crate) last_checkpoint: Option<u64>,
}

impl PostgresStore {
    /// Imports `rows` of `node`, each already sealed by its edge, stamping
    /// `shipped_at` with `at`: under the node's chain lock, judges each row
    /// against the tip and the row held at its seq, inserts the accepted
    /// prefix up to the first refusal, and commits.
    pub(crate) fn import(
        &mut self,
        node: &str,
        rows: &[Row],
        at: &str,
        judge: &mut dyn FnMut(Option<&Row>, &Tip, &Row) -> Judgement,
    ) -> Result<Imported> {
        let Some(prepared) = &self.statements else {
            return Err(Error::new(
                ErrorKind::Store,
                "postgres: store opened read-only",
            ));
        };
        let lock_key = format!("{}{node}", self.lock_prefix);
        let tip_sql = format!(
            "SELECT monotonic_seq, hash, shipped_at IS NULL FROM {} WHERE source_node_id = $1 ORDER BY monotonic_seq DESC LIMIT 1",
            self.qualified
        );
        let held_sql = format!(
            "{} WHERE source_node_id = $1 AND monotonic_seq >= $2 AND monotonic_seq <= $3",
            self.select_sql
        );
        let first = rows.first().map_or(0, |r| r.monotonic_seq);
        let last = rows.last().map_or(0, |r| r.monotonic_seq);
        let (lo, hi) = (first.min(last), first.max(last));
        let client = &mut self.client;
        self.rt.block_on(async {
            let tx = client.transaction().await.map_err(pg_err("begin import"))?;
            tx.execute(LOCK_SQL, &[&lock_key])
                .await
                .map_err(pg_err("lock chain"))?;
            let tip_row = tx
                .query_opt(&tip_sql, &[&node])
                .await
                .map_err(pg_err("read chain tip"))?;
            let mut tip = Tip::genesis();
            if let Some(r) = tip_row {
                // The tip is stored data: a NULL or a foreign type is an
                // error, never a panic in the import.
                tip = Tip {
                    seq: col(&r, 0, "the chain tip")?,
                    hash: col(&r, 1, "the chain tip")?,
                };
                if col::<bool>(&r, 2, "the chain tip")? {
                    return Ok(Imported {
                        inserted: 0,
                        skipped: 0,
                        tip,
                        refused: None,
                        own: true,
                    });
                }
            }
            let mut held: HashMap<i64, Row> = HashMap::new();
            if !rows.is_empty() && lo <= tip.seq {
                for r in tx
                    .query(&held_sql, &[&node, &lo, &hi])
                    .await
                    .map_err(pg_err("read held rows"))?
                {
                    let row = read_row(&r)?;
                    held.insert(row.monotonic_seq, row);
                }
            }
            let mut accepted: Vec<Row> = Vec::new();
            let mut skipped = 0;
            let mut refused = None;
            for (i, row) in rows.iter().enumerate() {
                let at_seq = held.get(&row.monotonic_seq);
                match judge(at_seq, &tip, row) {
                    Judgement::Insert => {
                        let mut row = row.clone();
                        row.shipped_at = Some(at.to_owned());
                        tip = Tip {
                            seq: row.monotonic_seq,
                            hash: row.hash.clone(),
                        };
                        accepted.push(row);
                    }
                    Judgement::Skip => skipped += 1,
                    Judgement::Refuse(reason) => {
                        refused = Some((i, reason, at_seq.cloned()));
                        break;
                    }
                }
            }
            if !accepted.is_empty() {
                let cols = Columns::of(&accepted);
                tx.execute(&prepared.insert, &cols.params())
                    .await
                    .map_err(pg_err("insert shipped rows"))?;
            }
            tx.commit().await.map_err(pg_err("commit import"))?;
            Ok(Imported {
                inserted: accepted.len(),
                skipped,
                tip,
                refused,
                own: false,
            })
        })
    }

    /// The fork recorded for `node`, if shipping for it has stopped.
    pub(crate) fn fleet_fork(&mut self, node: &str) -> Result<Option<String>> {
        let sql = format!("SELECT fork FROM {} WHERE source_node_id = $1", self.fleet);
        Ok(self
            .rt
            .block_on(self.client.query_opt(&sql, &[&node]))
            .map_err(pg_err("read fleet state"))?
            .map(|r| col::<Option<String>>(&r, 0, &self.fleet))
            .transpose()?
            .flatten())
    }

    /// Records what the edge reports of `node`: rows still waiting there
    /// and the oldest one's time. A successful report clears the last error.
    pub(crate) fn fleet_report(
        &mut self,
        node: &str,
        pending: u64,
        oldest: Option<&str>,
        at: &str,
    ) -> Result<()> {
        let pending = i64::try_from(pending).unwrap_or(i64::MAX);
        let sql = format!(
            "INSERT INTO {t} (source_node_id, pending, oldest_pending, reported_at) VALUES ($1, $2, $3, $4) ON CONFLICT (source_node_id) DO UPDATE SET pending = excluded.pending, oldest_pending = excluded.oldest_pending, reported_at = excluded.reported_at",
            t = self.fleet
        );
        self.rt
            .block_on(self.client.execute(&sql, &[&node, &pending, &oldest, &at]))
            .map_err(pg_err("record fleet report"))?;
        Ok(())
    }

    /// Records the last error of `node`'s shipping.
    pub(crate) fn fleet_error(&mut self, node: &str, error: &str, at: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO {t} (source_node_id, last_error, last_error_at) VALUES ($1, $2, $3) ON CONFLICT (source_node_id) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            t = self.fleet
        );
        self.rt
            .block_on(self.client.execute(&sql, &[&node, &error, &at]))
            .map_err(pg_err("record fleet error"))?;
        Ok(())
    }

    /// Keeps the evidence of a fork of `node` at `seq` and stops its
    /// shipping (the first fork's reason is kept).
    pub(crate) fn fleet_record_fork(
        &mut self,
        node: &str,
        seq: i64,
        reason: &str,
        central: Option<&str>,
        offered: &str,
        at: &str,
    ) -> Result<()> {
        let evidence = format!(
            "INSERT INTO {} (source_node_id, monotonic_seq, reason, central_row, offered_row, detected_at) VALUES ($1, $2, $3, $4, $5, $6)",
            self.forks
        );
        let state = format!(
            "INSERT INTO {t} (source_node_id, fork, last_error, last_error_at) VALUES ($1, $2, $2, $3) ON CONFLICT (source_node_id) DO UPDATE SET fork = coalesce({t}.fork, excluded.fork), last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            t = self.fleet
        );
        let client = &mut self.client;
        self.rt.block_on(async {
            let tx = client.transaction().await.map_err(pg_err("begin fork"))?;
            tx.execute(&evidence, &[&node, &seq, &reason, &central, &offered, &at])
                .await
                .map_err(pg_err("keep fork evidence"))?;
            tx.execute(&state, &[&node, &reason, &at])
                .await
                .map_err(pg_err("record fork"))?;
            tx.commit().await.map_err(pg_err("commit fork"))
        })
    }

    /// Records that a checkpoint of `size` rows of `node` was accepted.
    pub(crate) fn fleet_checkpoint(&mut self, node: &str, size: u64) -> Result<()> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let sql = format!(
            "INSERT INTO {t} (source_node_id, last_checkpoint) VALUES ($1, $2) ON CONFLICT (source_node_id) DO UPDATE SET last_checkpoint = greatest({t}.last_checkpoint, excluded.last_checkpoint)",
            t = self.fleet
        );
        self.rt
            .block_on(self.client.execute(&sql, &[&node, &size]))
            .map_err(pg_err("record checkpoint"))?;
        Ok(())
    }

    /// The evidence kept for `node`'s forks, oldest first: `(seq, reason,
    /// central row JSON, offered row JSON)`.
    pub(crate) fn fleet_forks(&mut self, node: &str) -> Result<Vec<ForkRecord>> {
        let sql = format!(
            "SELECT monotonic_seq, reason, central_row, offered_row FROM {} WHERE source_node_id = $1 ORDER BY detected_at, monotonic_seq",
            self.forks
        );
        let t = &self.forks;
        self.rt
            .block_on(self.client.query(&sql, &[&node]))
            .map_err(pg_err("read forks"))?
            .iter()
            .map(|r| {
                Ok(ForkRecord {
                    seq: col(r, 0, t)?,
                    reason: col(r, 1, t)?,
                    central: col(r, 2, t)?,
                    offered: col(r, 3, t)?,
                })
            })
            .collect()
    }

    /// Every node with rows here or a fleet record, by node.
    pub(crate) fn fleet_status(&mut self) -> Result<Vec<FleetNode>> {
        let counts = format!(
            "SELECT source_node_id, count(*), max(monotonic_seq), max({}) FROM {} GROUP BY source_node_id",
            ts_text("timestamp"),
            self.qualified
        );
        let tips = format!(
            "SELECT DISTINCT ON (source_node_id) source_node_id, shipped_at IS NOT NULL FROM {} ORDER BY source_node_id, monotonic_seq DESC",
            self.qualified
        );
        let fleet = format!(
            "SELECT source_node_id, pending, oldest_pending, reported_at, last_error, last_error_at, fork, last_checkpoint FROM {}",
            self.fleet
        );
        let client = &self.client;
        let (counts, tips, fleet) = self
            .rt
            .block_on(async {
                tokio::try_join!(
                    client.query(&counts, &[]),
                    client.query(&tips, &[]),
                    client.query(&fleet, &[])
                )
            })
            .map_err(pg_err("read fleet status"))?;
        let mut nodes: std::collections::BTreeMap<String, FleetNode> = Default::default();
        let (t, f) = (&self.qualified, &self.fleet);
        for r in &counts {
            let node: String = col(r, 0, t)?;
            let n = nodes.entry(node.clone()).or_default();
            n.node = node;
            n.rows = stored_u64(col(r, 1, t)?, "row count")?;
            // max() of a node with rows is never NULL; a NULL seq is a
            // foreign row, shown as 0 as before.
            n.tip_seq = col::<Option<i64>>(r, 2, t)?.unwrap_or(0);
            n.newest = col(r, 3, t)?;
        }
        for r in &tips {
            let node: String = col(r, 0, t)?;
            if let Some(n) = nodes.get_mut(&node) {
                n.shipped = col(r, 1, t)?;
            }
        }
        for r in &fleet {
            let node: String = col(r, 0, f)?;
            let n = nodes.entry(node.clone()).or_default();
            n.node = node;
            n.shipped = true;
            n.pending = col::<Option<i64>>(r, 1, f)?
                .map(|p| stored_u64(p, "pending count"))
                .transpose()?;
            n.oldest_pending = col(r, 2, f)?;
            n.reported_at = col(r, 3, f)?;
            n.last_error = col(r, 4, f)?;
            n.last_error_at = col(r, 5, f)?;
            n.fork = col(r, 6, f)?;
            n.last_checkpoint = col::<Option<i64>>(r, 7, f)?
                .map(|p| stored_u64(p, "last checkpoint size"))
                .transpose()?;
        }
        Ok(nodes.into_values().collect())
    }
}

/// A batch of rows as one array per column, in [`super::COLUMNS`] order:
/// the parameters of the prepared `INSERT … SELECT FROM unnest(…)`.
struct Columns<'a> {
    text: Vec<Vec<&'a str>>,
    maybe: Vec<Vec<Option<&'a str>>>,
    seq: Vec<i64>,
    pii: Vec<bool>,
    details: Vec<Option<String>>,
}

impl<'a> Columns<'a> {
    const TEXT: [fn(&Row) -> &str; 20] = [
        |r| &r.id,
        |r| &r.origin_id,
        |r| &r.timestamp,
        |r| &r.code,
        |r| &r.action,
        |r| &r.severity,
        |r| &r.outcome,
        |r| &r.service_id,
        |r| &r.source_node_id,
        |r| &r.actor,
        |r| &r.actor_kind,
        |r| &r.target,
        |r| &r.category,
        |r| &r.domain,
        |r| &r.method,
        |r| &r.request_id,
        |r| &r.detail_commitment,
        |r| &r.wire_version,
        |r| &r.canonical_form_id,
        |r| &r.prev_hash,
    ];
    const MAYBE: [fn(&Row) -> Option<&str>; 3] = [
        |r| r.tenant_id.as_deref(),
        |r| r.detail_salt.as_deref(),
        |r| r.shipped_at.as_deref(),
    ];

    fn of(rows: &'a [Row]) -> Self {
        let mut text: Vec<Vec<&str>> = Self::TEXT
            .iter()
            .map(|f| rows.iter().map(f).collect())
            .collect();
        text.push(rows.iter().map(|r| r.hash.as_str()).collect());
        Self {
            text,
            maybe: Self::MAYBE
                .iter()
                .map(|f| rows.iter().map(f).collect())
                .collect(),
            seq: rows.iter().map(|r| r.monotonic_seq).collect(),
            pii: rows.iter().map(|r| r.pii_in_detail).collect(),
            details: rows
                .iter()
                .map(|r| r.detail.as_ref().map(Value::to_string))
                .collect(),
        }
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 27] {
        let t = &self.text;
        let m = &self.maybe;
        [
            &t[0], // id
            &t[1], // origin_id
            &self.seq,
            &t[2],  // timestamp
            &t[3],  // code
            &t[4],  // action
            &t[5],  // severity
            &t[6],  // outcome
            &t[7],  // service_id
            &t[8],  // source_node_id
            &m[0],  // tenant_id
            &t[9],  // actor
            &t[10], // actor_kind
            &t[11], // target
            &t[12], // category
            &t[13], // domain
            &t[14], // method
            &t[15], // request_id
            &self.details,
            &m[1],  // detail_salt
            &t[16], // detail_commitment
            &self.pii,
            &m[2],  // shipped_at
            &t[17], // wire_version
            &t[18], // canonical_form_id
            &t[19], // prev_hash
            &t[20], // hash
        ]
    }
}
