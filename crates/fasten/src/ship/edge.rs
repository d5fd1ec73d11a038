//! The edge side: reading unshipped rows and sending them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{Ack, Batch, ShippedCheckpoint};
use crate::chain::Row;
use crate::dsn::Dsn;
use crate::error::{Error, ErrorKind, Result};
use crate::event::format_timestamp;
use crate::store::stream::{self as stream_table, StreamStore, Table};
use crate::store::{self, Access, Store};
use crate::stream::{ApiRow, SysRow};

/// Where batches go.
trait Transport: Send {
    fn send(&mut self, batch: &Batch) -> Result<Ack>;
    /// The central database, when this transport writes into it directly:
    /// sys and api rows ship only there (the ingest route takes audit rows).
    fn central(&self) -> Option<&Dsn>;
}

/// `postgres://…`: straight into the central table.
#[cfg(feature = "postgres")]
struct Direct {
    dsn: Dsn,
    central: Option<super::Central>,
}

#[cfg(feature = "postgres")]
impl Transport for Direct {
    fn send(&mut self, batch: &Batch) -> Result<Ack> {
        let central = match self.central.as_mut() {
            Some(c) => c,
            None => self.central.insert(super::Central::open(&self.dsn)?),
        };
        let out = central.accept(batch);
        if out
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), ErrorKind::Store))
        {
            // Reconnect next time: the server may have gone away.
            self.central = None;
        }
        out
    }

    fn central(&self) -> Option<&Dsn> {
        Some(&self.dsn)
    }
}

/// `https://…` (or `http://` to loopback): the central reader's `/ingest`.
#[cfg(feature = "ship-http")]
struct Http {
    url: String,
    token: Option<String>,
    agent: ureq::Agent,
}

#[cfg(feature = "ship-http")]
impl Transport for Http {
    fn send(&mut self, batch: &Batch) -> Result<Ack> {
        let body = serde_json::to_vec(batch)
            .map_err(|e| Error::new(ErrorKind::Store, "cannot encode a batch").with_source(e))?;
        let mut req = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut res = req.send(&body[..]).map_err(|e| {
            Error::new(ErrorKind::Store, format!("cannot ship to {}", self.url)).with_source(e)
        })?;
        let status = res.status().as_u16();
        let text = res
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        match status {
            200 => serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    format!("{} answered with something that is not an ack", self.url),
                )
                .with_source(e)
            }),
            401 | 403 => Err(Error::new(
                ErrorKind::Fleet {
                    node: batch.node.clone(),
                },
                format!(
                    "{} refused node {} ({status}): {}",
                    self.url,
                    batch.node,
                    message(&text)
                ),
            )),
            _ => Err(Error::new(
                ErrorKind::Store,
                format!("{} answered {status}: {}", self.url, message(&text)),
            )),
        }
    }

    fn central(&self) -> Option<&Dsn> {
        None
    }
}

#[cfg(feature = "ship-http")]
fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// The transport `to` names.
// Only the ingest transport keeps the token; without `ship-http` nothing
// consumes it.
#[cfg_attr(not(feature = "ship-http"), allow(clippy::needless_pass_by_value))]
fn transport(to: &str, token: Option<String>) -> Result<Box<dyn Transport>> {
    let to = to.trim();
    if to.starts_with("postgres://") || to.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let _ = token;
            let dsn = Dsn::parse(crate::env::FASTEN_SHIP_TO, to)?;
            return Ok(Box::new(Direct { dsn, central: None }));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(Error::config(
            crate::env::FASTEN_SHIP_TO,
            "FASTEN_SHIP_TO names a postgres:// store but fasten was built without its `postgres` feature",
        ));
    }
    if to.starts_with("https://") || to.starts_with("http://") {
        if to.starts_with("http://") && !super::is_loopback(to) {
            return Err(Error::config(
                crate::env::FASTEN_SHIP_TO,
                format!(
                    "invalid FASTEN_SHIP_TO {to:?}: plain http:// only to a loopback address; use https://host/api/v1/logs"
                ),
            ));
        }
        #[cfg(feature = "ship-http")]
        {
            let base = to.trim_end_matches('/');
            let url = if base.ends_with("/ingest") {
                base.to_owned()
            } else {
                format!("{base}/ingest")
            };
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(30)))
                .http_status_as_error(false)
                .build()
                .into();
            return Ok(Box::new(Http { url, token, agent }));
        }
        #[cfg(not(feature = "ship-http"))]
        {
            let _ = token;
            return Err(Error::config(
                crate::env::FASTEN_SHIP_TO,
                "FASTEN_SHIP_TO names an ingest URL but fasten was built without its `ship-http` feature",
            ));
        }
    }
    Err(Error::config(
        crate::env::FASTEN_SHIP_TO,
        format!(
            "invalid FASTEN_SHIP_TO {to:?}: expected postgres://user@host/db or https://host/api/v1/logs"
        ),
    ))
}

/// What one round of shipping did for one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeShipped {
    /// The node.
    pub node: String,
    /// Rows the central store inserted.
    pub inserted: u64,
    /// Rows it already held, identical.
    pub duplicates: u64,
    /// Checkpoints sent.
    pub checkpoints: u64,
    /// Rows still waiting after the round.
    pub pending: u64,
    /// Set when the node's chain forked at the central store: why.
    /// Shipping for it has stopped.
    pub fork: Option<String>,
    /// A checkpoint the central store refused without a fork, and why.
    pub checkpoint_error: Option<String>,
}

/// What one round of shipping did for one stream ([`Shipper::sys`],
/// [`Shipper::api`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamShipped {
    /// `sys` or `api`.
    pub stream: &'static str,
    /// Rows sent and marked shipped (the central table skips ids it holds).
    pub shipped: u64,
}

/// What [`Shipper::ship_once`] did, node by node and stream by stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShipReport {
    /// One entry per node shipped.
    pub nodes: Vec<NodeShipped>,
    /// One entry per stream shipped, after the nodes.
    pub streams: Vec<StreamShipped>,
}

/// One stream's rows on their way from the edge's table to the central
/// database's. Stream rows are not chained, so there is nothing to verify:
/// they go oldest first, in batches, and the edge marks each batch once the
/// central store has committed it.
struct Leg {
    stream: &'static str,
    edge: Dsn,
    central: Dsn,
    /// [`stream_table::open`] for the stream's row type.
    open: fn(&Dsn) -> Result<Box<dyn StreamStore>>,
    /// Both tables, opened on first use and dropped after an error, so the
    /// next round reconnects.
    tables: Option<(Box<dyn StreamStore>, Box<dyn StreamStore>)>,
}

impl Leg {
    fn new<T: Table>(edge: &Dsn, central: Dsn) -> Self {
        Self {
            stream: T::STREAM,
            edge: edge.clone(),
            central,
            open: stream_table::open::<T>,
            tables: None,
        }
    }

    /// Ships every row not marked yet, or until `stop_at` has passed;
    /// returns how many.
    fn ship(&mut self, batch_size: usize, stop_at: &OnceLock<Instant>) -> Result<u64> {
        let out = self.ship_all(batch_size, stop_at);
        if out.is_err() {
            self.tables = None;
        }
        out
    }

    fn ship_all(&mut self, batch_size: usize, stop_at: &OnceLock<Instant>) -> Result<u64> {
        let (edge, central) = match &mut self.tables {
            Some(t) => t,
            None => self
                .tables
                .insert(((self.open)(&self.edge)?, (self.open)(&self.central)?)),
        };
        let mut shipped = 0;
        loop {
            let rows = edge.unshipped(batch_size)?;
            if rows.is_empty() {
                return Ok(shipped);
            }
            // Committed there before marked here, and the central insert
            // skips ids it holds: a batch sent again after an interruption
            // between the two lands once.
            central.insert(&rows)?;
            let ids: Vec<String> = rows
                .iter()
                .filter_map(|r| r.get("id")?.as_str().map(str::to_owned))
                .collect();
            edge.mark_shipped(&ids, &format_timestamp(jiff::Timestamp::now()))?;
            shipped += rows.len() as u64;
            if rows.len() < batch_size || past(stop_at) {
                return Ok(shipped);
            }
        }
    }
}

/// Ships an edge store's rows to a central store.
///
/// ```no_run
/// use fasten::{Dsn, ship::Shipper};
/// let edge = Dsn::parse("FASTEN_AUDIT_DSN", "sqlite:///edge.db")?;
/// let mut shipper = Shipper::new(&edge, "postgres://fasten@central/fleet")?;
/// let report = shipper.ship_once()?;
/// # Ok::<(), fasten::Error>(())
/// ```
pub struct Shipper {
    edge: Dsn,
    store: Option<Box<dyn Store>>,
    transport: Box<dyn Transport>,
    batch_size: usize,
    nodes: Option<Vec<String>>,
    /// The newest checkpoint size the central store holds, per node.
    central_checkpoint: HashMap<String, u64>,
    /// The streams shipped besides audit rows.
    legs: Vec<Leg>,
    /// Set by [`Background::shutdown`]: rounds stop between batches once
    /// it has passed. Never set for a shipper used on its own.
    stop_at: Arc<OnceLock<Instant>>,
}

/// Whether `stop_at` is set and has passed.
fn past(stop_at: &OnceLock<Instant>) -> bool {
    stop_at.get().is_some_and(|d| Instant::now() >= *d)
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("edge", &self.edge)
            .field("batch_size", &self.batch_size)
            .field("nodes", &self.nodes)
            .field(
                "streams",
                &self.legs.iter().map(|l| l.stream).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Shipper {
    /// A shipper of the store `edge` to `to` (`postgres://…`, or an ingest
    /// URL `https://…/api/v1/logs`; the token is `FASTEN_SHIP_TOKEN` unless
    /// [`Shipper::with_token`] gives one).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming `FASTEN_SHIP_TO` for a URL it cannot
    /// ship to (plain `http://` off loopback, a feature not built).
    pub fn new(edge: &Dsn, to: &str) -> Result<Self> {
        let token = std::env::var(crate::env::FASTEN_SHIP_TOKEN)
            .ok()
            .filter(|t| !t.trim().is_empty());
        Self::with_token(edge, to, token)
    }

    /// [`Shipper::new`] with an explicit token for an ingest URL.
    ///
    /// # Errors
    ///
    /// As [`Shipper::new`].
    pub fn with_token(edge: &Dsn, to: &str, token: Option<String>) -> Result<Self> {
        Ok(Self {
            edge: edge.clone(),
            store: None,
            transport: transport(to, token)?,
            batch_size: crate::env::FASTEN_SHIP_BATCH_SIZE_DEFAULT,
            nodes: None,
            central_checkpoint: HashMap::new(),
            legs: Vec::new(),
            stop_at: Arc::default(),
        })
    }

    /// Most rows per batch. Default
    /// [`FASTEN_SHIP_BATCH_SIZE_DEFAULT`](crate::env::FASTEN_SHIP_BATCH_SIZE_DEFAULT).
    #[must_use]
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Ship only these nodes (default: every node in the edge store).
    #[must_use]
    pub fn nodes(mut self, nodes: Vec<String>) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// Also ships the sys rows of the table `edge` names (as
    /// `FASTEN_SYS_DSN` does) into the table `sys_log` beside the central
    /// audit table, after the audit rows of each round.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming `FASTEN_SHIP_STREAMS` when this shipper
    /// ships to an ingest URL: that route takes audit rows only.
    pub fn sys(self, edge: &Dsn) -> Result<Self> {
        self.leg::<SysRow>(edge, "sys_log")
    }

    /// As [`Shipper::sys`], for the api rows (`FASTEN_API_DSN`), into
    /// `api_log`.
    ///
    /// # Errors
    ///
    /// As [`Shipper::sys`].
    pub fn api(self, edge: &Dsn) -> Result<Self> {
        self.leg::<ApiRow>(edge, "api_log")
    }

    fn leg<T: Table>(mut self, edge: &Dsn, table: &str) -> Result<Self> {
        use crate::env::{FASTEN_SHIP_STREAMS, FASTEN_SHIP_TO};
        let Some(central) = self.transport.central() else {
            return Err(Error::config(
                FASTEN_SHIP_STREAMS,
                format!(
                    "{FASTEN_SHIP_STREAMS} names {}, but {FASTEN_SHIP_TO} is an ingest URL, which takes audit rows only: sys and api rows ship only to a postgres:// central store",
                    T::STREAM
                ),
            ));
        };
        let leg = Leg::new::<T>(edge, central.with_table(table));
        self.legs.push(leg);
        Ok(self)
    }

    /// Ships every row not shipped yet (and the checkpoints over them), in
    /// batches, and returns once the central store has acknowledged them
    /// all, or a node forked (reported, and that node is left); then the
    /// rows of the streams added with [`Shipper::sys`] and [`Shipper::api`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the edge store or the link fails (what was
    /// acknowledged stays marked; the next call resumes);
    /// [`ErrorKind::Fleet`] when the central store refuses a node.
    pub fn ship_once(&mut self) -> Result<ShipReport> {
        let out = self.round();
        if out.is_err() {
            self.store = None;
        }
        out
    }

    fn round(&mut self) -> Result<ShipReport> {
        if self.store.is_none() {
            self.store = Some(store::open(&self.edge, Access::Maintain)?);
        }
        let nodes = match &self.nodes {
            Some(n) => n.clone(),
            None => self
                .store
                .as_mut()
                .expect("opened above")
                .nodes()?
                .into_iter()
                .map(|n| n.node)
                .collect(),
        };
        let mut report = ShipReport::default();
        for node in nodes {
            report.nodes.push(self.ship_node(&node)?);
        }
        for leg in &mut self.legs {
            report.streams.push(StreamShipped {
                stream: leg.stream,
                shipped: leg.ship(self.batch_size, &self.stop_at)?,
            });
        }
        Ok(report)
    }

    fn ship_node(&mut self, node: &str) -> Result<NodeShipped> {
        let mut done = NodeShipped {
            node: node.to_owned(),
            ..NodeShipped::default()
        };
        let mut first = true;
        loop {
            let store = self.store.as_mut().expect("opened by round");
            let pending = store.unshipped(node)?;
            let rows = match &pending {
                Some(p) => read_batch(
                    store.as_mut(),
                    node,
                    p.first_seq,
                    self.batch_size,
                    MAX_SHIP_BATCH_BYTES,
                )?,
                None => Vec::new(),
            };
            // Checkpoints over rows the central store will hold once this
            // batch is in: it has every row below the first unshipped one.
            let covered = match (&pending, rows.last()) {
                (_, Some(last)) => last.monotonic_seq,
                (Some(p), None) => p.first_seq.saturating_sub(1),
                (None, None) => i64::MAX,
            };
            let known = self.central_checkpoint.get(node).copied().unwrap_or(0);
            let mut checkpoints: Vec<ShippedCheckpoint> = store
                .checkpoints(node)?
                .into_iter()
                .filter(|(size, _)| {
                    *size > known && i64::try_from(*size).is_ok_and(|s| s <= covered)
                })
                .map(|(size, note)| ShippedCheckpoint { size, note })
                .collect();
            if checkpoints.len() > super::MAX_CHECKPOINTS {
                checkpoints.drain(..checkpoints.len() - super::MAX_CHECKPOINTS);
            }
            // The first batch goes even when empty: it reports the node's
            // pending rows to the central store (a heartbeat).
            if !first && rows.is_empty() && checkpoints.is_empty() {
                return Ok(done);
            }
            first = false;
            let batch = Batch {
                node: node.to_owned(),
                pending: pending.as_ref().map_or(0, |p| p.count),
                oldest_pending: pending.as_ref().map(|p| p.oldest.clone()),
                checkpoints,
                rows,
            };
            let ack = self.transport.send(&batch)?;
            let store = self.store.as_mut().expect("opened by round");
            if let Some(last) = batch.rows.last() {
                let upto = ack.stored_upto.min(last.monotonic_seq);
                let at = format_timestamp(jiff::Timestamp::now());
                store.mark_shipped(node, upto, &at)?;
            }
            done.inserted += ack.inserted;
            done.duplicates += ack.duplicates;
            done.checkpoints += batch.checkpoints.len() as u64;
            let newest = ack.checkpoint.unwrap_or(0).max(known);
            self.central_checkpoint.insert(node.to_owned(), newest);
            if ack.checkpoint_error.is_some() {
                done.checkpoint_error = ack.checkpoint_error;
            }
            done.pending = store.unshipped(node)?.map_or(0, |p| p.count);
            if let Some(fork) = ack.fork {
                tracing::error!(target: "fasten::store", node, reason = %fork, "the central store refused the node's chain as a fork; shipping for it stops");
                done.fork = Some(fork);
                return Ok(done);
            }
            tracing::debug!(target: "fasten::store", node, inserted = ack.inserted, duplicates = ack.duplicates, "shipped a batch");
            if batch.rows.is_empty() || past(&self.stop_at) {
                return Ok(done);
            }
        }
    }
}

/// Most bytes of rows (as compact JSON) in one shipped batch, besides
/// `FASTEN_SHIP_BATCH_SIZE` rows (issue 22). The central's `POST /ingest`
/// reads at most 64 MiB: 1000 rows of 64 KiB details, escaped, could pass
/// it and be refused on every round. A quarter of that leaves room for the
/// checkpoints and keeps a retried request modest. A row larger than this
/// goes alone.
const MAX_SHIP_BATCH_BYTES: usize = 16 << 20;

/// Up to `limit` rows of `node` from `first_seq` on, in seq order, of at
/// most `max_bytes` of JSON unless the first row alone is larger.
fn read_batch(
    store: &mut dyn Store,
    node: &str,
    first_seq: i64,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<Row>> {
    let mut rows = Vec::with_capacity(limit.min(4096));
    let mut bytes = 0usize;
    let mut unreadable = None;
    let full = "fasten: batch full";
    // A stored seq: checked, a row planted at i64::MIN has no predecessor.
    let after = first_seq.checked_sub(1).ok_or_else(|| {
        Error::new(
            ErrorKind::Store,
            format!("cannot ship node {node}: stored monotonic_seq {first_seq} is below 1"),
        )
    })?;
    let out = store.scan_chain(node, after, &mut |row| {
        match row {
            Ok(row) => {
                let size = crate::canonical::json_len(&row)
                    .map_err(|e| Error::store("cannot encode a row to ship", e))?;
                if !rows.is_empty() && bytes.saturating_add(size) > max_bytes {
                    return Err(Error::new(ErrorKind::Store, full));
                }
                bytes = bytes.saturating_add(size);
                rows.push(row);
            }
            Err(u) => {
                unreadable = Some(u.describe());
                return Err(Error::new(ErrorKind::Store, full));
            }
        }
        if rows.len() >= limit {
            return Err(Error::new(ErrorKind::Store, full));
        }
        Ok(())
    });
    if let Some(why) = unreadable {
        if rows.is_empty() {
            return Err(Error::new(
                ErrorKind::Store,
                format!("cannot ship node {node}: {why}"),
            ));
        }
        return Ok(rows);
    }
    match out {
        Err(e) if e.to_string() != full => Err(e),
        _ => Ok(rows),
    }
}

// === the background shipper ===

/// The pipeline's shipper thread: ships its node every interval, and a
/// last time at shutdown. Never on the emit path.
#[derive(Debug)]
pub(crate) struct Background {
    /// When shutdown's last round must end (the shipper's own `stop_at`).
    stop_at: Arc<OnceLock<Instant>>,
    /// Wakes the thread from its wait. A channel, not `Thread::unpark`:
    /// the PostgreSQL client parks and unparks the thread inside a round,
    /// which can swallow an unpark meant for the wait after it.
    wake: Sender<()>,
    /// Never carries a message: it disconnects when the thread ends, so
    /// shutdown can wait for that with a deadline (a join cannot).
    ended: Receiver<Infallible>,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl Background {
    /// Starts the thread that runs `shipper` every `interval`.
    pub(crate) fn start(mut shipper: Shipper, interval: Duration) -> Result<Self> {
        let stop_at = Arc::clone(&shipper.stop_at);
        let (ending, ended) = crossbeam_channel::bounded::<Infallible>(0);
        let (wake, woken) = crossbeam_channel::bounded::<()>(1);
        let join = std::thread::Builder::new()
            .name("fasten-shipper".into())
            .spawn(move || {
                let _ending = ending;
                crate::quiet::mark_thread();
                let mut failures: u32 = 0;
                let mut stopped = false;
                loop {
                    // Read before the round: a stop asked for during it
                    // still gets one more round, the last, with its deadline.
                    let last = shipper.stop_at.get().is_some();
                    if past(&shipper.stop_at) || (last && stopped) {
                        return;
                    }
                    let wait = if stopped {
                        interval
                    } else {
                        match shipper.ship_once() {
                            Ok(report) => {
                                failures = 0;
                                if let Some(fork) = report.nodes.iter().find_map(|n| n.fork.clone()) {
                                    tracing::error!(target: "fasten::store", reason = %fork, "shipping stopped: the central store found a fork");
                                    stopped = true;
                                }
                                interval
                            }
                            Err(e) => {
                                failures = failures.saturating_add(1);
                                if matches!(e.kind(), ErrorKind::Fleet { .. }) {
                                    stopped = true;
                                }
                                tracing::error!(target: "fasten::store", error = %e, failures, "shipping failed; retrying");
                                // Backoff: interval × 2^failures, at most a minute.
                                interval
                                    .saturating_mul(1 << failures.min(6))
                                    .min(Duration::from_secs(60))
                            }
                        }
                    };
                    if last {
                        return;
                    }
                    match woken.recv_timeout(wait) {
                        // Woken by shutdown, or the interval passed: the
                        // loop's top decides.
                        Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                        // The handle is gone: nothing can stop it any more.
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(|e| {
                Error::new(ErrorKind::Store, "cannot start the shipper thread").with_source(e)
            })?;
        Ok(Self {
            stop_at,
            wake,
            ended,
            join: Mutex::new(Some(join)),
        })
    }

    /// Has the thread ship what is left, for at most `timeout` (it stops
    /// between batches once that has passed), then end; joins it. Returns
    /// whether it ended in time: a batch already on the wire (a central
    /// store that does not answer) is not cut, and the thread then ends
    /// after it, unjoined. `Duration::ZERO` asks it to end without a last
    /// round.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        // A timeout too long to represent (`Duration::MAX`) is a year: as
        // long as it takes.
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        // The first call's deadline stands.
        let _ = self.stop_at.set(deadline);
        // Full when already woken: once is enough.
        let _ = self.wake.try_send(());
        match self.ended.recv_deadline(deadline) {
            Ok(never) => match never {},
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                let handle = self
                    .join
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(handle) = handle {
                    // It has ended (or panicked, logged by the hook).
                    let _ = handle.join();
                }
                true
            }
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    /// The background thread at shutdown (a postgres:// central store).
    #[cfg(feature = "postgres")]
    mod background {
        use std::net::TcpListener;

        use super::*;

        /// A shipper of node `edge-t` of a fresh edge file to `to`, woken only
        /// by shutdown (its interval is far longer than the test).
        fn background(dir: &tempfile::TempDir, to: &str) -> Background {
            let path = dir.path().join("edge.db");
            let edge = Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display()))
                .expect("valid dsn");
            let shipper = Shipper::with_token(&edge, to, None)
                .expect("a postgres:// transport")
                .nodes(vec!["edge-t".to_owned()]);
            Background::start(shipper, Duration::from_secs(3600)).expect("thread starts")
        }

        fn joined(bg: &Background) -> bool {
            bg.join.lock().expect("not poisoned").is_none()
        }

        #[test]
        fn shutdown_joins_the_thread_when_the_central_store_refuses_connections() {
            let dir = tempfile::tempdir().expect("temp dir");
            // Nothing listens on port 1: every round fails at once.
            let bg = background(&dir, "postgres://fasten@127.0.0.1:1/fleet");
            assert!(bg.shutdown(Duration::from_secs(60)), "the thread ended");
            assert!(joined(&bg));
            // Again: nothing left to wait for.
            assert!(bg.shutdown(Duration::from_secs(60)));
        }

        #[test]
        fn shutdown_returns_by_its_deadline_when_the_central_store_never_answers() {
            let dir = tempfile::tempdir().expect("temp dir");
            // Accepts connections (in the kernel's backlog) and never answers:
            // a round blocks on its first batch.
            let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = silent.local_addr().expect("addr").port();
            let bg = background(&dir, &format!("postgres://fasten@127.0.0.1:{port}/fleet"));
            assert!(
                !bg.shutdown(Duration::from_millis(200)),
                "returned, thread still sending"
            );
            assert!(!joined(&bg));
            // Closing the listener resets the connection: the batch fails, and
            // the thread ends without another round.
            drop(silent);
            assert!(bg.shutdown(Duration::from_secs(60)), "the thread ended");
            assert!(joined(&bg));
        }
    }

    use super::*;
    use crate::store::sqlite::{SqliteStore, tests::row};

    /// Issue 22: shipped batches are bounded in bytes as well as rows; a
    /// row larger than the bound goes alone.
    #[test]
    fn issue_22_large_rows_ship_in_batches_within_the_byte_bound() -> Result<()> {
        const BOUND: usize = 16 * 1024;
        let mut store = SqliteStore::memory()?;
        let sizes = [4000, 4000, 4000, 4000, 4000, 3 * BOUND, 4000, 4000];
        for (i, len) in sizes.iter().enumerate() {
            let mut r = row("n1", &format!("evt-{i}"));
            r.detail = Some(serde_json::json!({ "blob": "x".repeat(*len) }));
            store.append(&mut vec![r], false)?;
        }
        let mut batches = Vec::new();
        let mut next = 1;
        while next <= sizes.len() as i64 {
            let rows = read_batch(&mut store, "n1", next, 1000, BOUND)?;
            let bytes: usize = rows
                .iter()
                .map(|r| serde_json::to_vec(r).map(|v| v.len()))
                .sum::<serde_json::Result<_>>()
                .map_err(|e| Error::store("encode", e))?;
            assert!(
                bytes <= BOUND || rows.len() == 1,
                "{bytes} bytes in {} rows",
                rows.len()
            );
            next = rows.last().map_or(i64::MAX, |r| r.monotonic_seq + 1);
            batches.push(rows.len());
        }
        // Three ~4 KiB rows fit in 16 KiB; the 48 KiB row goes alone.
        assert_eq!(batches, [3, 2, 1, 2]);
        Ok(())
    }
}
