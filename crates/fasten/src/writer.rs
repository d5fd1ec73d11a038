//! The background writer: a bounded queue drained by one thread that seals
//! and commits rows in batches, one transaction per batch.
//!
//! The loop follows tracing-appender's worker: take the first message, drain
//! what else is queued with `try_recv`, write it all in one transaction. Two
//! things differ. It never drops: a failed batch is retried with backoff
//! (forever in `retry` mode; up to the configured attempts in `raise` mode,
//! after which the waiting callers get the error). And it polls while busy:
//! waking a sleeping thread costs every sender a futex call (~15 µs), so
//! while rows keep arriving the writer parks for at most [`POLL`] and checks
//! the queue itself, and only blocks in `recv` after [`IDLE_POLLS`] empty
//! polls. Senders that need an answer soon (durable emits, flush) unpark it.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError};

use crate::chain::Row;
use crate::config::FailureStrategy;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Pending;
use crate::store::Store;

/// The longest the writer sleeps between looks at the queue while busy.
const POLL: Duration = Duration::from_millis(1);
/// Empty polls in a row before the writer blocks on the queue instead.
const IDLE_POLLS: u32 = 100;
/// First retry delay; doubles per attempt up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

type Ack = Sender<Result<Row>>;

enum Msg {
    Row(Box<Pending>, Option<Ack>),
    Flush(Sender<Result<()>>),
    Shutdown,
}

/// How the store looked at the last attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreHealth {
    /// The last batch committed (or nothing has been written yet).
    Healthy,
    /// The last attempt failed; the writer is retrying.
    Retrying,
    /// The store is closed: the writer has stopped.
    Closed,
}

/// A snapshot of the audit pipeline's counters. See
/// [`Fasten::queue_stats`](crate::Fasten::queue_stats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Rows waiting in the queue now.
    pub depth: usize,
    /// The queue's capacity.
    pub capacity: usize,
    /// The most rows ever seen waiting at once.
    pub high_water: usize,
    /// Rows accepted by `emit`.
    pub enqueued: u64,
    /// Rows committed to the store.
    pub written: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Failed store attempts that were retried.
    pub retries: u64,
    /// Emits refused because the queue stayed full.
    pub queue_full: u64,
    /// Rows whose store error went back to the caller (`raise` mode).
    pub failed: u64,
    /// Detail values replaced by redaction, and keys dropped from the
    /// detail of PII codes.
    pub redactions: u64,
    /// Details replaced by a summary for exceeding `FASTEN_MAX_DETAIL_BYTES`.
    pub truncated: u64,
    /// Checkpoint steps that failed (signing, saving or publishing).
    pub checkpoint_errors: u64,
    /// Batches refused because the node's chain cannot be continued
    /// ([`ErrorKind::ChainExhausted`]); their rows count in `failed`.
    pub chain_exhausted: u64,
    /// Signed checkpoints the HTTP witness did not take (a failed POST, or
    /// a full backlog while it was slow); the writer never waits for it.
    pub witness_failures: u64,
    /// The last store error, if any.
    pub last_error: Option<String>,
    /// The store's state at the last attempt.
    pub store_health: StoreHealth,
    /// The store's kind (`sqlite`, `postgres` …).
    pub store_kind: &'static str,
}

/// What a clean shutdown did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Rows committed over the pipeline's life.
    pub written: u64,
    /// Rows accepted but never committed (a race with shutdown, or a store
    /// that kept failing). Zero after a clean shutdown.
    pub unwritten: u64,
}

#[derive(Debug, Default)]
struct Counters {
    /// Set once shutdown begins; senders check it inside the in-flight gate.
    closed: AtomicBool,
    /// Senders between their `closed` check and the end of their send.
    /// The writer stops only when this is zero and the queue is empty, so a
    /// send that passed the check is never left in a queue nobody reads.
    in_flight: AtomicUsize,
    high_water: AtomicUsize,
    enqueued: AtomicU64,
    received: AtomicU64,
    written: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    queue_full: AtomicU64,
    failed: AtomicU64,
    redactions: AtomicU64,
    truncated: AtomicU64,
    checkpoint_errors: AtomicU64,
    chain_exhausted: AtomicU64,
    health: AtomicU8,
    last_error: Mutex<Option<String>>,
    /// The last store error itself, the cause of `QueueFull` while the
    /// store is failing.
    last_cause: Mutex<Option<Arc<Error>>>,
}

/// The caller's side of the writer.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: Sender<Msg>,
    thread: Thread,
    join: Mutex<Option<JoinHandle<()>>>,
    done: Receiver<ShutdownReport>,
    /// The `Shutdown` message is in the queue (a timed-out first attempt is
    /// retried by the next `shutdown` call).
    shutdown_sent: AtomicBool,
    counters: Arc<Counters>,
    capacity: usize,
    block: Duration,
    store_kind: &'static str,
    witness_failures: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// Committed audit rows on their way to copies (OTLP export, stdout), with
/// the trace each was emitted in (`None` where unknown).
#[derive(Debug)]
pub(crate) struct Committed {
    pub(crate) rows: Vec<Row>,
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) traces: Vec<Option<crate::context::TraceContext>>,
}

/// Takes each committed batch, after its commit; must not block.
pub(crate) type AuditTap = Box<dyn Fn(&Arc<Committed>) + Send>;

/// What the writer needs besides the store.
pub(crate) struct Settings {
    pub(crate) capacity: usize,
    pub(crate) batch_size: usize,
    /// Most bytes of rows per batch (`FASTEN_AUDIT_BATCH_BYTES`).
    pub(crate) batch_bytes: usize,
    pub(crate) block: Duration,
    pub(crate) strategy: FailureStrategy,
    pub(crate) max_retries: u32,
    /// The first retry's delay ([`BACKOFF_BASE`]; tests shorten it).
    pub(crate) backoff: Duration,
    /// Opens the store again after a failure, so a broken connection or
    /// handle is never reused.
    pub(crate) reopen: Box<dyn Fn() -> Result<Box<dyn Store>> + Send>,
    /// Signs checkpoints as rows commit, when a signing key is configured.
    pub(crate) checkpointer: Option<crate::checkpointer::Checkpointer>,
    /// Copies of committed rows: audit rows go to their store first.
    pub(crate) taps: Vec<AuditTap>,
}

impl Writer {
    /// Starts the writer thread over an opened store.
    pub(crate) fn start(store: Box<dyn Store>, settings: Settings) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(settings.capacity);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let counters = Arc::new(Counters::default());
        let store_kind = store.kind();
        let capacity = settings.capacity;
        let block = settings.block;
        let mut settings = settings;
        let witness_failures = settings
            .checkpointer
            .as_ref()
            .and_then(crate::checkpointer::Checkpointer::witness_failures);
        let mut worker = Worker {
            rx,
            store: Some(store),
            counters: Arc::clone(&counters),
            checkpointer: settings.checkpointer.take(),
            settings,
            buf: Vec::with_capacity(1024),
            failed_at_flush: 0,
            last_failure: None,
            held: None,
        };
        let join = thread::Builder::new()
            .name("fasten-writer".into())
            .spawn(move || {
                crate::quiet::mark_thread();
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run())) {
                    Ok(report) => {
                        let _ = done_tx.send(report);
                    }
                    // No report: `shutdown` tells callers the thread panicked.
                    Err(_) => worker.abandon(),
                }
            })
            .map_err(|e| {
                Error::new(ErrorKind::Store, "cannot start the writer thread").with_source(e)
            })?;
        Ok(Self {
            tx,
            thread: join.thread().clone(),
            join: Mutex::new(Some(join)),
            done,
            shutdown_sent: AtomicBool::new(false),
            counters,
            capacity,
            block,
            store_kind,
            witness_failures,
        })
    }

    /// Runs a send inside the in-flight gate (see [`Counters::in_flight`]).
    fn gated<R>(&self, send: impl FnOnce() -> Result<R>) -> Result<R> {
        let c = &self.counters;
        c.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = if c.closed.load(Ordering::SeqCst) {
            Err(closed())
        } else {
            send()
        };
        c.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn send(&self, msg: Msg) -> Result<()> {
        self.gated(|| {
            match self.tx.try_send(msg) {
                Ok(()) => {}
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(closed()),
                Err(crossbeam_channel::TrySendError::Full(msg)) => {
                    // The writer may be parked in a poll; let it know there is work.
                    self.thread.unpark();
                    match self.tx.send_timeout(msg, self.block) {
                        Ok(()) => {}
                        Err(SendTimeoutError::Disconnected(_)) => return Err(closed()),
                        Err(SendTimeoutError::Timeout(_)) => return Err(self.queue_full()),
                    }
                }
            }
            self.counters
                .high_water
                .fetch_max(self.tx.len(), Ordering::Relaxed);
            Ok(())
        })
    }

    fn queue_full(&self) -> Error {
        let c = &self.counters;
        let n = c.queue_full.fetch_add(1, Ordering::Relaxed) + 1;
        // While the writer retries a failing store the queue fills because
        // the store is down, not because emits come too fast: say so, with
        // the store's error as the cause.
        let cause = if c.health.load(Ordering::Relaxed) == 1 {
            c.last_cause
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        } else {
            None
        };
        if n == 1 {
            match &cause {
                Some(cause) => {
                    tracing::warn!(target: "fasten::writer", capacity = self.capacity, error = %cause, "audit queue full: emit is failing; the store is failing");
                }
                None => {
                    tracing::warn!(target: "fasten::writer", capacity = self.capacity, "audit queue full: emit is failing; the store is slower than the emit rate");
                }
            }
        }
        match cause {
            Some(cause) => Error::new(
                ErrorKind::QueueFull,
                format!(
                    "audit queue full: the store is failing and the writer is retrying; {} rows waited longer than {:?}",
                    self.capacity, self.block
                ),
            )
            .with_source(cause),
            None => Error::new(
                ErrorKind::QueueFull,
                format!(
                    "audit queue full: the store is slower than the emit rate; {} rows waited longer than {:?} (FASTEN_AUDIT_QUEUE_CAPACITY, FASTEN_AUDIT_QUEUE_TIMEOUT_MS)",
                    self.capacity, self.block
                ),
            ),
        }
    }

    /// Queues a row; returns once it is queued.
    pub(crate) fn enqueue(&self, pending: Pending) -> Result<()> {
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        self.send(Msg::Row(Box::new(pending), None))
            .inspect_err(|_| {
                self.counters.enqueued.fetch_sub(1, Ordering::Relaxed);
            })
    }

    /// Queues a row and waits until it is committed; returns it sealed. In
    /// `retry` mode that wait lasts as long as the store keeps failing.
    pub(crate) fn enqueue_durable(&self, pending: Pending) -> Result<Row> {
        let (ack, answer) = crossbeam_channel::bounded(1);
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        self.send(Msg::Row(Box::new(pending), Some(ack)))
            .inspect_err(|_| {
                self.counters.enqueued.fetch_sub(1, Ordering::Relaxed);
            })?;
        self.thread.unpark();
        answer.recv().map_err(|_| closed())?
    }

    /// Waits until every row queued before the call is committed.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = deadline(timeout);
        let (ack, answer) = crossbeam_channel::bounded(1);
        self.gated(|| match send_until(&self.tx, Msg::Flush(ack), deadline) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Disconnected(_)) => Err(closed()),
            Err(SendTimeoutError::Timeout(_)) => Err(flush_timeout(timeout)),
        })?;
        self.thread.unpark();
        match recv_until(&answer, deadline) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(flush_timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(closed()),
        }
    }

    /// Counts what redaction changed (emit redacts, on the caller's thread).
    pub(crate) fn count_redaction(&self, done: &crate::redact::Redacted) {
        let n = u64::from(done.keys) + u64::from(done.values) + u64::from(done.dropped);
        if n > 0 {
            self.counters.redactions.fetch_add(n, Ordering::Relaxed);
        }
        if done.truncated {
            self.counters.truncated.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let c = &self.counters;
        QueueStats {
            depth: self.tx.len(),
            capacity: self.capacity,
            high_water: c.high_water.load(Ordering::Relaxed),
            enqueued: c.enqueued.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            queue_full: c.queue_full.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            redactions: c.redactions.load(Ordering::Relaxed),
            truncated: c.truncated.load(Ordering::Relaxed),
            checkpoint_errors: c.checkpoint_errors.load(Ordering::Relaxed),
            chain_exhausted: c.chain_exhausted.load(Ordering::Relaxed),
            witness_failures: self
                .witness_failures
                .as_ref()
                .map_or(0, |f| f.load(Ordering::Relaxed)),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            store_health: match c.health.load(Ordering::Relaxed) {
                0 => StoreHealth::Healthy,
                1 => StoreHealth::Retrying,
                _ => StoreHealth::Closed,
            },
            store_kind: self.store_kind,
        }
    }

    /// Stops accepting rows, writes what is queued, and stops the thread.
    /// Safe to call again after a timeout (it picks up where the last call
    /// stopped) and from several threads (later callers wait for the first).
    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<ShutdownReport> {
        let deadline = deadline(timeout);
        self.counters.closed.store(true, Ordering::SeqCst);
        // Held while waiting, so a concurrent caller waits for the same end.
        let mut join = self.join.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(handle) = join.take() else {
            return Ok(self.final_report());
        };
        if !self.shutdown_sent.load(Ordering::SeqCst) {
            match send_until(&self.tx, Msg::Shutdown, deadline) {
                Ok(()) => self.shutdown_sent.store(true, Ordering::SeqCst),
                Err(SendTimeoutError::Disconnected(_)) => {}
                Err(SendTimeoutError::Timeout(_)) => {
                    *join = Some(handle);
                    return Err(shutdown_timeout(timeout));
                }
            }
        }
        self.thread.unpark();
        match recv_until(&self.done, deadline) {
            Ok(report) => {
                let _ = handle.join();
                if report.unwritten > 0 {
                    tracing::error!(target: "fasten::writer", unwritten = report.unwritten, "audit rows accepted but never written");
                }
                Ok(report)
            }
            Err(RecvTimeoutError::Disconnected) => {
                // The thread ended without a report: it panicked.
                let _ = handle.join();
                Err(Error::new(
                    ErrorKind::Closed,
                    "the audit writer thread panicked",
                ))
            }
            Err(RecvTimeoutError::Timeout) => {
                *join = Some(handle);
                Err(shutdown_timeout(timeout))
            }
        }
    }

    fn final_report(&self) -> ShutdownReport {
        let c = &self.counters;
        let written = c.written.load(Ordering::Relaxed);
        let enqueued = c.enqueued.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        ShutdownReport {
            written,
            unwritten: enqueued.saturating_sub(written + failed),
        }
    }
}

/// `now + timeout`, or none for a timeout too long to represent ("forever").
fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

fn send_until<T>(
    tx: &Sender<T>,
    msg: T,
    deadline: Option<Instant>,
) -> Result<(), SendTimeoutError<T>> {
    match deadline {
        Some(d) => tx.send_deadline(msg, d),
        None => tx
            .send(msg)
            .map_err(|e| SendTimeoutError::Disconnected(e.0)),
    }
}

fn recv_until<T>(rx: &Receiver<T>, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
    match deadline {
        Some(d) => rx.recv_deadline(d),
        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
    }
}

/// What a durable emit gets when its batch failed: the store's error,
/// shared by every row of the batch, as the cause (and its kind, so a
/// foreign table or an exhausted chain can be matched on).
fn not_written(cause: &Arc<Error>) -> Error {
    Error::new(cause.kind().clone(), "audit row not written").with_source(Arc::clone(cause))
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the audit pipeline is shut down")
}

fn flush_timeout(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("flush did not finish within {timeout:?}"),
    )
}

fn shutdown_timeout(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("shutdown did not finish within {timeout:?}; the writer goes on in the background"),
    )
}

// === impl Worker ===

struct Worker {
    rx: Receiver<Msg>,
    store: Option<Box<dyn Store>>,
    checkpointer: Option<crate::checkpointer::Checkpointer>,
    counters: Arc<Counters>,
    settings: Settings,
    buf: Vec<u8>,
    /// `counters.failed` when flushes were last answered: a flush reports
    /// rows that failed since then.
    failed_at_flush: u64,
    /// The cause of the last failed batch.
    last_failure: Option<Arc<Error>>,
    /// A row taken from the queue that would have taken its batch past
    /// `batch_bytes`: it starts the next batch.
    held: Option<Ready>,
}

/// A message taken from the queue, its row built and sized.
// One lives at a time and moves straight into a batch: boxing the row
// would cost an allocation per row for nothing.
#[allow(clippy::large_enum_variant)]
enum Ready {
    Row {
        row: Row,
        /// [`row_bytes`] of the row.
        bytes: usize,
        trace: Option<crate::context::TraceContext>,
        ack: Option<Ack>,
    },
    Flush(Sender<Result<()>>),
    Shutdown,
}

/// The bytes a row adds to a batch: its text fields and its canonical
/// detail, `detail` bytes (what the store binds and sends, to within the
/// fixed-size columns).
fn row_bytes(row: &Row, detail: usize) -> usize {
    let text = [
        &row.id,
        &row.origin_id,
        &row.timestamp,
        &row.code,
        &row.action,
        &row.severity,
        &row.outcome,
        &row.service_id,
        &row.source_node_id,
        &row.actor,
        &row.actor_kind,
        &row.target,
        &row.category,
        &row.domain,
        &row.method,
        &row.request_id,
        &row.detail_commitment,
        &row.wire_version,
        &row.canonical_form_id,
    ];
    text.iter().map(|t| t.len()).sum::<usize>()
        + row.tenant_id.as_ref().map_or(0, String::len)
        + row.detail_salt.as_ref().map_or(0, String::len)
        // prev_hash and hash, assigned by the store: 64 hex each.
        + 128
        + detail
}

/// One batch: rows in queue order, and who waits for what.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    /// Each row's trace, in queue order, when there are taps.
    traces: Vec<Option<crate::context::TraceContext>>,
    /// Index into `rows` as queued, the row's id, and the durable emit
    /// waiting for it.
    acks: Vec<(usize, String, Ack)>,
    flushes: Vec<Sender<Result<()>>>,
    shutdown: bool,
    /// [`row_bytes`] summed over `rows`.
    bytes: usize,
}

impl Batch {
    /// Whether `item` may join the batch: anything but a row always may; a
    /// row may if the batch stays within `max` bytes, or if the batch has
    /// no row yet (a row larger than `max` goes alone).
    fn fits(&self, item: &Ready, max: usize) -> bool {
        match item {
            Ready::Row { bytes, .. } => {
                self.rows.is_empty() || self.bytes.saturating_add(*bytes) <= max
            }
            Ready::Flush(_) | Ready::Shutdown => true,
        }
    }
}

impl Worker {
    fn run(&mut self) -> ShutdownReport {
        let mut idle = 0u32;
        loop {
            let first = if let Some(item) = self.held.take() {
                item
            } else if idle < IDLE_POLLS {
                match self.rx.try_recv() {
                    Ok(msg) => self.ready(msg),
                    Err(TryRecvError::Empty) => {
                        idle += 1;
                        self.checkpoint(|cp, store| cp.tick(store));
                        thread::park_timeout(POLL);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                // Idle: wake at the checkpoint interval if one is configured.
                let wait = self
                    .checkpointer
                    .as_ref()
                    .map_or(Duration::from_secs(3600), |_| Duration::from_millis(100));
                match self.rx.recv_timeout(wait) {
                    Ok(msg) => self.ready(msg),
                    Err(RecvTimeoutError::Timeout) => {
                        self.checkpoint(|cp, store| cp.tick(store));
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            idle = 0;
            let mut batch = Batch::default();
            self.add(&mut batch, first);
            self.fill(&mut batch, true);
            let shutdown = batch.shutdown;
            self.write(batch);
            if shutdown {
                self.drain_after_shutdown();
                self.checkpoint(|cp, store| cp.sign_pending(store));
                break;
            }
        }
        self.counters.health.store(2, Ordering::Relaxed);
        self.store = None;
        let c = &self.counters;
        let written = c.written.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        ShutdownReport {
            written,
            unwritten: c
                .enqueued
                .load(Ordering::Relaxed)
                .saturating_sub(written + failed),
        }
    }

    /// Runs a checkpoint step if checkpoints are configured and the store is
    /// open. A failure is logged and counted but never holds up audit rows;
    /// the next step tries again.
    fn checkpoint(
        &mut self,
        step: impl FnOnce(&mut crate::checkpointer::Checkpointer, &mut dyn Store) -> Result<()>,
    ) {
        if let (Some(cp), Some(store)) = (self.checkpointer.as_mut(), self.store.as_mut())
            && let Err(e) = step(cp, store.as_mut())
        {
            self.counters
                .checkpoint_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "fasten::writer", error = %e, "checkpoint failed");
        }
    }

    /// After a panic: stops accepting rows and drops every queued message,
    /// so durable emits and flushes waiting behind the panicked batch get
    /// `Closed` at once instead of waiting forever (a dropped receiver does
    /// not drop what is queued while senders are alive).
    fn abandon(&mut self) {
        let c = &self.counters;
        c.closed.store(true, Ordering::SeqCst);
        c.health.store(2, Ordering::Relaxed);
        *c.last_error.lock().unwrap_or_else(PoisonError::into_inner) =
            Some("the audit writer thread panicked".to_owned());
        tracing::error!(target: "fasten::writer", "the audit writer thread panicked; queued rows are dropped and the pipeline is closed");
        self.store = None;
        // Its durable emit, if any, gets `Closed` like the queued ones.
        self.held = None;
        loop {
            while self.rx.try_recv().is_ok() {}
            if c.in_flight.load(Ordering::SeqCst) == 0 && self.rx.is_empty() {
                return;
            }
            thread::yield_now();
        }
    }

    /// Writes what is still queued, until no sender that got past the
    /// closed check is still sending and the queue is empty.
    fn drain_after_shutdown(&mut self) {
        loop {
            let mut rest = Batch::default();
            if let Some(item) = self.held.take() {
                self.add(&mut rest, item);
            }
            self.fill(&mut rest, false);
            let idle = rest.rows.is_empty() && rest.flushes.is_empty();
            self.write(rest);
            if idle {
                if self.counters.in_flight.load(Ordering::SeqCst) == 0 && self.rx.is_empty() {
                    return;
                }
                thread::park_timeout(POLL);
            }
        }
    }

    /// Builds and sizes the row of a message taken from the queue.
    fn ready(&mut self, msg: Msg) -> Ready {
        match msg {
            Msg::Row(mut pending, ack) => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                let trace = pending.trace.take();
                let row = pending.into_row(&mut self.buf);
                // `into_row` leaves the salt and the canonical detail in
                // `buf` (it hashed them for the commitment).
                let bytes = row_bytes(&row, self.buf.len());
                Ready::Row {
                    row,
                    bytes,
                    trace,
                    ack,
                }
            }
            Msg::Flush(ack) => Ready::Flush(ack),
            Msg::Shutdown => Ready::Shutdown,
        }
    }

    /// Takes what is already queued into `batch`, without waiting, until
    /// it holds `batch_size` rows, the next row would take it past
    /// `batch_bytes` (that row is held for the next batch) or, with
    /// `until_flush`, a flush or shutdown joined it.
    fn fill(&mut self, batch: &mut Batch, until_flush: bool) {
        while batch.rows.len() < self.settings.batch_size
            && !(until_flush && (!batch.flushes.is_empty() || batch.shutdown))
        {
            let Ok(msg) = self.rx.try_recv() else { break };
            let item = self.ready(msg);
            if !batch.fits(&item, self.settings.batch_bytes) {
                self.held = Some(item);
                break;
            }
            self.add(batch, item);
        }
    }

    fn add(&self, batch: &mut Batch, item: Ready) {
        match item {
            Ready::Row {
                row,
                bytes,
                trace,
                ack,
            } => {
                if !self.settings.taps.is_empty() {
                    batch.traces.push(trace);
                }
                if let Some(ack) = ack {
                    batch.acks.push((batch.rows.len(), row.id.clone(), ack));
                }
                batch.bytes = batch.bytes.saturating_add(bytes);
                batch.rows.push(row);
            }
            Ready::Flush(ack) => batch.flushes.push(ack),
            Ready::Shutdown => batch.shutdown = true,
        }
    }

    fn write(&mut self, batch: Batch) {
        let Batch {
            mut rows,
            traces,
            acks,
            flushes,
            ..
        } = batch;
        let queued = rows.len();
        let outcome = if rows.is_empty() {
            Ok(())
        } else {
            self.commit(&mut rows)
        };
        match outcome {
            Ok(()) => {
                self.answer(&rows, queued, acks);
                if !self.settings.taps.is_empty() && !rows.is_empty() {
                    // A retry's recheck may have dropped rows: the traces no
                    // longer line up, so the copies go without them.
                    let traces = if traces.len() == rows.len() {
                        traces
                    } else {
                        vec![None; rows.len()]
                    };
                    let committed = Arc::new(Committed { rows, traces });
                    for tap in &self.settings.taps {
                        tap(&committed);
                    }
                }
                if !flushes.is_empty() {
                    self.checkpoint(|cp, store| cp.sign_pending(store));
                }
                self.answer_flushes(flushes);
            }
            Err(cause) => {
                for (_, _, ack) in acks {
                    let _ = ack.send(Err(not_written(&cause)));
                }
                self.last_failure = Some(cause);
                self.answer_flushes(flushes);
            }
        }
    }

    /// Answers flushes: `Ok` only if no row failed since flushes were last
    /// answered (rows queued before a flush that were dropped after their
    /// batch failed must not pass for written).
    fn answer_flushes(&mut self, flushes: Vec<Sender<Result<()>>>) {
        if flushes.is_empty() {
            return;
        }
        let failed = self.counters.failed.load(Ordering::Relaxed);
        let lost = failed - self.failed_at_flush;
        self.failed_at_flush = failed;
        for flush in flushes {
            let answer = match (&self.last_failure, lost) {
                (Some(cause), 1..) => Err(Error::new(
                    cause.kind().clone(),
                    format!("{lost} audit rows queued before this flush were not written"),
                )
                .with_source(Arc::clone(cause))),
                _ => Ok(()),
            };
            let _ = flush.send(answer);
        }
    }

    /// Sends each durable emit its sealed row. `rows` keeps queue order and
    /// loses entries only when a retry's recheck found them already stored
    /// (rare); then rows are matched by id and the missing ones read back.
    fn answer(&mut self, rows: &[Row], queued: usize, acks: Vec<(usize, String, Ack)>) {
        for (index, id, ack) in acks {
            let row = match rows.get(index) {
                Some(row) if rows.len() == queued => Ok(row.clone()),
                _ => match rows.iter().find(|r| r.id == id) {
                    Some(row) => Ok(row.clone()),
                    None => self.read_back(&id),
                },
            };
            let _ = ack.send(row);
        }
    }

    /// Whether the last attempt's transaction committed after all. A batch
    /// commits whole, so its first row tells.
    fn landed(&mut self, rows: &[Row]) -> Result<bool> {
        let Some(first) = rows.first() else {
            return Ok(true);
        };
        let store = match self.store.as_mut() {
            Some(store) => store,
            None => self.store.insert((self.settings.reopen)()?),
        };
        // The same id, node and salt: this batch's row, not another that
        // happens to hold its id (see `store::settle_recheck`).
        Ok(store.get(&first.id)?.is_some_and(|stored| {
            stored.source_node_id == first.source_node_id && stored.detail_salt == first.detail_salt
        }))
    }

    fn read_back(&mut self, id: &str) -> Result<Row> {
        let store = match self.store.as_mut() {
            Some(store) => store,
            None => self.store.insert((self.settings.reopen)()?),
        };
        store.get(id)?.ok_or_else(|| {
            Error::new(
                ErrorKind::Store,
                format!("row {id} vanished from the store after commit"),
            )
        })
    }

    /// Commits `rows`, retrying with backoff. In `retry` mode it returns only
    /// once they are committed; in `raise` mode it gives up after
    /// `max_retries` attempts and returns the error. A permanent error
    /// ([`crate::store::is_permanent`]) fails the batch at once in either
    /// mode.
    fn commit(&mut self, rows: &mut Vec<Row>) -> std::result::Result<(), Arc<Error>> {
        // A retry's recheck drops rows an earlier attempt stored although it
        // reported failure, so `rows` can shrink; a batch commits whole, so
        // once an attempt succeeds every row of the batch is stored.
        let total = rows.len();
        let mut attempt: u32 = 0;
        loop {
            let result = match self.store.as_mut() {
                Some(store) => store.append(rows, attempt > 0),
                None => (self.settings.reopen)().and_then(|mut store| {
                    let r = store.append(rows, attempt > 0);
                    self.store = Some(store);
                    r
                }),
            };
            match result {
                Ok(n) => {
                    self.checkpoint(|cp, store| cp.committed(store, rows));
                    let c = &self.counters;
                    c.written.fetch_add(total as u64, Ordering::Relaxed);
                    c.batches.fetch_add(1, Ordering::Relaxed);
                    c.health.store(0, Ordering::Relaxed);
                    tracing::debug!(target: "fasten::writer", rows = n, attempt, "batch committed");
                    return Ok(());
                }
                Err(e) => {
                    attempt += 1;
                    // Never reuse a handle that just failed.
                    self.store = None;
                    let message = e.to_string();
                    let e = Arc::new(e);
                    let c = Arc::clone(&self.counters);
                    c.health.store(1, Ordering::Relaxed);
                    *c.last_error.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(message.clone());
                    *c.last_cause.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(Arc::clone(&e));
                    if attempt > 1
                        && crate::store::is_permanent(&e)
                        && matches!(self.landed(rows), Ok(true))
                    {
                        // An earlier attempt committed although it reported
                        // failure: the batch is stored, whatever this one
                        // says.
                        c.written.fetch_add(total as u64, Ordering::Relaxed);
                        c.batches.fetch_add(1, Ordering::Relaxed);
                        c.health.store(0, Ordering::Relaxed);
                        return Ok(());
                    }
                    if let ErrorKind::ForeignTable { .. } = e.kind() {
                        // Another implementation's chain: no retry makes
                        // it continuable.
                        refuse(&c, total, rows.len());
                        tracing::error!(target: "fasten::writer", error = %message, rows = rows.len(), "audit batch refused: the table is another implementation's");
                        return Err(e);
                    }
                    if matches!(e.kind(), ErrorKind::ChainExhausted { .. }) {
                        // Nothing a retry can change: fail the batch now, so
                        // the writer goes on with the next one (and flush
                        // and durable emits get the error) instead of
                        // retrying this one forever.
                        c.chain_exhausted.fetch_add(1, Ordering::Relaxed);
                        refuse(&c, total, rows.len());
                        tracing::error!(target: "fasten::writer", error = %message, rows = rows.len(), "audit batch refused: the chain cannot be continued");
                        return Err(e);
                    }
                    if crate::store::is_permanent(&e) {
                        // Missing privileges, a missing table or column:
                        // retrying only delays the error the operator
                        // needs to see.
                        refuse(&c, total, rows.len());
                        tracing::error!(target: "fasten::writer", error = %message, rows = rows.len(), "audit batch refused: the store error is permanent");
                        return Err(e);
                    }
                    c.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(target: "fasten::writer", error = %message, attempt, rows = rows.len(), "audit batch failed; retrying");
                    if self.settings.strategy == FailureStrategy::Raise
                        && attempt >= self.settings.max_retries
                    {
                        // A commit can report failure yet land (the
                        // connection died after COMMIT). Telling callers
                        // "failed" then invites a duplicate, so look first.
                        return match self.landed(rows) {
                            Ok(true) => {
                                c.written.fetch_add(total as u64, Ordering::Relaxed);
                                c.batches.fetch_add(1, Ordering::Relaxed);
                                c.health.store(0, Ordering::Relaxed);
                                Ok(())
                            }
                            Ok(false) => {
                                refuse(&c, total, rows.len());
                                Err(e)
                            }
                            Err(unknown) => {
                                refuse(&c, total, rows.len());
                                Err(Arc::new(
                                    Error::new(
                                        ErrorKind::Store,
                                        format!(
                                            "{message}; whether the rows were stored is unknown (reading them back failed)"
                                        ),
                                    )
                                    .with_source(unknown),
                                ))
                            }
                        };
                    }
                    thread::sleep(backoff(self.settings.backoff, attempt));
                }
            }
        }
    }
}

/// Counts a batch given up on: the rows still in it failed; rows a
/// recheck dropped from it were stored by an earlier attempt.
fn refuse(c: &Counters, total: usize, left: usize) {
    c.failed.fetch_add(left as u64, Ordering::Relaxed);
    c.written
        .fetch_add((total - left) as u64, Ordering::Relaxed);
}

/// Exponential backoff with ±50 % jitter, so processes sharing a store do
/// not retry in lockstep.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(BACKOFF_MAX);
    capped.mul_f64(0.5 + rand::random::<f64>())
}

#[cfg(test)]
mod faults;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::faults::{Fault, Faults, Step as At};
    use super::*;
    use crate::event::IdMinter;

    static IDS: LazyLock<IdMinter> = LazyLock::new(IdMinter::new);

    /// Long enough never to be reached by a working writer; not a timing
    /// assertion, only a bound on a broken one.
    const LONG: Duration = Duration::from_secs(60);

    fn pending() -> Pending {
        let info = crate::code::Registry::new()
            .get(crate::code::TOOL_CALLED)
            .expect("a built-in code");
        let timestamp = jiff::Timestamp::now();
        Pending {
            id: IDS.mint(timestamp),
            timestamp,
            severity: info.meta().severity,
            outcome: crate::kind::Outcome::default(),
            service_id: Arc::from("svc"),
            node_id: Arc::from("node-1"),
            tenant_id: None,
            actor: None,
            actor_kind: crate::kind::ActorKind::default(),
            target: "t".to_owned(),
            method: crate::kind::Method::default(),
            request_id: None,
            detail: serde_json::Map::new(),
            info,
            trace: None,
        }
    }

    #[derive(Clone, Copy)]
    struct Options {
        strategy: FailureStrategy,
        max_retries: u32,
        batch_size: usize,
        batch_bytes: usize,
        capacity: usize,
        block: Duration,
    }

    impl Default for Options {
        fn default() -> Self {
            Self {
                strategy: FailureStrategy::Retry,
                max_retries: 3,
                batch_size: 64,
                batch_bytes: crate::env::FASTEN_AUDIT_BATCH_BYTES_DEFAULT,
                capacity: 1024,
                block: LONG,
            }
        }
    }

    fn start(faults: &Faults, o: Options) -> Result<Writer> {
        let reopen = faults.clone();
        Writer::start(
            faults.open(),
            Settings {
                capacity: o.capacity,
                batch_size: o.batch_size,
                batch_bytes: o.batch_bytes,
                block: o.block,
                strategy: o.strategy,
                max_retries: o.max_retries,
                backoff: Duration::from_micros(20),
                reopen: Box::new(move || Ok(reopen.open())),
                checkpointer: None,
                taps: Vec::new(),
            },
        )
    }

    /// Every stored row's id, checking that no row is stored twice (each
    /// row's salt is fresh, so a batch applied twice repeats salts even
    /// under fresh ids) and that the chain verifies.
    fn stored(faults: &Faults) -> Result<Vec<Row>> {
        let mut db = faults.db();
        let mut rows = Vec::new();
        for node in db.nodes()? {
            db.scan_chain(&node.node, 0, &mut |row| {
                rows.push(row.expect("a readable row"));
                Ok(())
            })?;
        }
        let salts: HashSet<_> = rows.iter().map(|r| r.detail_salt.clone()).collect();
        assert_eq!(salts.len(), rows.len(), "a row is stored twice");
        let report = crate::verify::verify_store(&mut *db, |_| {})?;
        assert!(report.ok, "{report:?}");
        Ok(rows)
    }

    fn id_set(rows: &[Row]) -> HashSet<String> {
        rows.iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn a_failed_append_is_retried_and_stored_once() -> Result<()> {
        let faults = Faults::new([(0, Fault::Fail), (1, Fault::Fail)])?;
        let writer = start(&faults, Options::default())?;
        let row = writer.enqueue_durable(pending())?;
        assert_eq!(row.monotonic_seq, 1);
        let stats = writer.stats();
        assert_eq!((stats.written, stats.batches, stats.retries), (1, 1, 2));
        assert_eq!(stats.store_health, StoreHealth::Healthy);
        assert!(stats.last_error.is_some_and(|e| e.contains("injected")));
        writer.shutdown(LONG)?;
        assert_eq!(id_set(&stored(&faults)?), HashSet::from([row.id]));
        Ok(())
    }

    #[test]
    fn a_commit_that_reported_failure_is_not_applied_twice() -> Result<()> {
        for (strategy, max_retries) in [(FailureStrategy::Retry, 3), (FailureStrategy::Raise, 1)] {
            let faults = Faults::new([(0, Fault::FailAfterCommit)])?;
            let options = Options {
                strategy,
                max_retries,
                ..Options::default()
            };
            let writer = start(&faults, options)?;
            let first = writer.enqueue_durable(pending())?;
            let second = writer.enqueue_durable(pending())?;
            assert_eq!((first.monotonic_seq, second.monotonic_seq), (1, 2));
            let stats = writer.stats();
            assert_eq!((stats.written, stats.failed), (2, 0), "{strategy:?}");
            writer.shutdown(LONG)?;
            let rows = stored(&faults)?;
            assert_eq!(rows.len(), 2, "{strategy:?}");
            assert_eq!(rows[0].hash, first.hash, "{strategy:?}");
        }
        Ok(())
    }

    #[test]
    fn raise_mode_gives_up_with_the_typed_cause() -> Result<()> {
        let faults = Faults::new([(0, Fault::Fail), (1, Fault::Fail)])?;
        let options = Options {
            strategy: FailureStrategy::Raise,
            max_retries: 2,
            ..Options::default()
        };
        let writer = start(&faults, options)?;
        let err = writer
            .enqueue_durable(pending())
            .expect_err("two failures in raise mode with two attempts");
        assert_eq!(err.kind(), &ErrorKind::Store);
        let cause = std::error::Error::source(&err).expect("the store's error as the cause");
        assert!(cause.to_string().contains("injected"), "{cause}");
        let row = writer.enqueue_durable(pending())?;
        assert_eq!(row.monotonic_seq, 1);
        let stats = writer.stats();
        assert_eq!((stats.written, stats.failed, stats.retries), (1, 1, 2));
        let report = writer.shutdown(LONG)?;
        assert_eq!(report.unwritten, 0);
        assert_eq!(stored(&faults)?.len(), 1);
        Ok(())
    }

    #[test]
    fn a_fatal_store_error_is_not_retried() -> Result<()> {
        let faults = Faults::new([(0, Fault::Fatal)])?;
        let writer = start(&faults, Options::default())?;
        let err = writer
            .enqueue_durable(pending())
            .expect_err("a foreign table fails the batch");
        assert!(
            matches!(err.kind(), ErrorKind::ForeignTable { .. }),
            "{err:?}"
        );
        assert!(std::error::Error::source(&err).is_some());
        let stats = writer.stats();
        assert_eq!((stats.retries, stats.failed, stats.written), (0, 1, 0));
        writer.enqueue_durable(pending())?;
        writer.shutdown(LONG)?;
        assert_eq!(stored(&faults)?.len(), 1);
        Ok(())
    }

    #[test]
    fn a_panic_inside_a_batch_loses_nothing_acknowledged() -> Result<()> {
        let faults = Faults::new([(1, Fault::Panic)])?;
        let writer = start(&faults, Options::default())?;
        let first = writer.enqueue_durable(pending())?;
        let err = writer
            .enqueue_durable(pending())
            .expect_err("the writer panicked in this batch");
        assert_eq!(err.kind(), &ErrorKind::Closed);
        let err = writer.enqueue_durable(pending()).expect_err("no writer");
        assert_eq!(err.kind(), &ErrorKind::Closed);
        assert_eq!(
            writer.flush(LONG).map_err(|e| e.kind().clone()),
            Err(ErrorKind::Closed)
        );
        assert!(writer.shutdown(LONG).is_err());
        assert_eq!(id_set(&stored(&faults)?), HashSet::from([first.id]));
        Ok(())
    }

    #[test]
    fn a_hung_store_fills_the_queue_then_writes_everything() -> Result<()> {
        let faults = Faults::new([(0, Fault::Hang)])?;
        let options = Options {
            capacity: 2,
            block: Duration::ZERO,
            ..Options::default()
        };
        let writer = Arc::new(start(&faults, options)?);
        let durable = {
            let writer = Arc::clone(&writer);
            thread::spawn(move || writer.enqueue_durable(pending()))
        };
        faults.hung.recv().expect("the writer reaches the hang");
        writer.enqueue(pending())?;
        writer.enqueue(pending())?;
        let err = writer.enqueue(pending()).expect_err("the queue is full");
        assert_eq!(err.kind(), &ErrorKind::QueueFull);
        assert!(
            err.to_string().contains("slower than the emit rate"),
            "{err}"
        );
        faults.release.send(()).expect("the store waits");
        let row = durable.join().expect("no panic")?;
        writer.flush(LONG)?;
        let stats = writer.stats();
        assert_eq!((stats.written, stats.queue_full, stats.enqueued), (3, 1, 3));
        writer.shutdown(LONG)?;
        let rows = stored(&faults)?;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].id, row.id);
        Ok(())
    }

    /// Issue 22: batches are bounded in bytes as well as rows; a row larger
    /// than the bound goes alone.
    #[test]
    fn issue_22_large_rows_are_split_into_batches_within_the_byte_bound() -> Result<()> {
        const BOUND: usize = 8 * 1024;
        let faults = Faults::new([(0, Fault::Hang)])?;
        let seen: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        let tap: AuditTap = {
            let seen = Arc::clone(&seen);
            Box::new(move |batch| {
                let mut buf = Vec::new();
                let bytes = batch
                    .rows
                    .iter()
                    .map(|row| {
                        buf.clear();
                        buf.extend_from_slice(row.detail_salt.as_deref().unwrap_or("").as_bytes());
                        if let Some(d) = &row.detail {
                            crate::canonical::write_value(d, &mut buf);
                        }
                        row_bytes(row, buf.len())
                    })
                    .sum();
                seen.lock().unwrap().push((batch.rows.len(), bytes));
            })
        };
        let reopen = faults.clone();
        let writer = Writer::start(
            faults.open(),
            Settings {
                capacity: 1024,
                batch_size: 64,
                batch_bytes: BOUND,
                block: LONG,
                strategy: FailureStrategy::Retry,
                max_retries: 3,
                backoff: Duration::from_micros(20),
                reopen: Box::new(move || Ok(reopen.open())),
                checkpointer: None,
                taps: vec![tap],
            },
        )?;
        let sized = |len: usize| {
            let mut p = pending();
            p.detail.insert("blob".to_owned(), "x".repeat(len).into());
            p
        };
        // The writer holds one small row in a hung append while the large
        // ones queue up behind it, so they are batched from a full queue.
        writer.enqueue(pending())?;
        faults.hung.recv().expect("the writer reaches the hang");
        for _ in 0..10 {
            writer.enqueue(sized(3000))?;
        }
        writer.enqueue(sized(3 * BOUND))?;
        for _ in 0..3 {
            writer.enqueue(sized(3000))?;
        }
        faults.release.send(()).expect("the store waits");
        writer.flush(LONG)?;
        writer.shutdown(LONG)?;
        assert_eq!(stored(&faults)?.len(), 15);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.iter().map(|b| b.0).sum::<usize>(), 15, "{seen:?}");
        // Past the first (hung) batch, 14 rows of ~3 KiB and one of 24 KiB
        // need at least 6 batches at 8 KiB; the row bound alone gives 1.
        assert!(seen.len() >= 7, "{seen:?}");
        for &(rows, bytes) in &seen {
            assert!(
                bytes <= BOUND || rows == 1,
                "a batch over the bound: {seen:?}"
            );
        }
        assert!(
            seen.iter()
                .any(|&(rows, bytes)| rows == 1 && bytes > 3 * BOUND),
            "{seen:?}"
        );
        Ok(())
    }

    /// Issue 22: a fault inside the transaction (at BEGIN, after the k-th
    /// insert, at COMMIT) rolls the batch back; the retry stores it once.
    #[test]
    fn issue_22_a_batch_failing_half_way_rolls_back_and_is_stored_once() -> Result<()> {
        for at in [At::Begin, At::Insert(1), At::Insert(3), At::Commit] {
            let faults = Faults::new([(0, Fault::Hang), (1, Fault::FailAt(at))])?;
            let writer = start(&faults, Options::default())?;
            // The first row holds the writer in a hung append while four
            // queue up behind it: they are the batch the fault lands in.
            writer.enqueue(pending())?;
            faults.hung.recv().expect("the writer reaches the hang");
            for _ in 0..4 {
                writer.enqueue(pending())?;
            }
            faults.release.send(()).expect("the store waits");
            writer.flush(LONG)?;
            let stats = writer.stats();
            assert_eq!((stats.written, stats.retries), (5, 1), "{at:?}");
            assert_eq!(stats.store_health, StoreHealth::Healthy, "{at:?}");
            writer.shutdown(LONG)?;
            let schedule = faults.schedule();
            assert_eq!((schedule.leaked, schedule.appends()), (0, 3), "{at:?}");
            drop(schedule);
            assert_eq!(stored(&faults)?.len(), 5, "{at:?}");
        }
        Ok(())
    }

    #[test]
    fn queue_full_during_an_outage_says_the_store_is_down() -> Result<()> {
        let faults = Faults::new([(0, Fault::Fail), (1, Fault::Hang)])?;
        let options = Options {
            capacity: 1,
            block: Duration::ZERO,
            ..Options::default()
        };
        let writer = start(&faults, options)?;
        writer.enqueue(pending())?;
        faults.hung.recv().expect("the writer reaches the hang");
        writer.enqueue(pending())?;
        let err = writer.enqueue(pending()).expect_err("the queue is full");
        assert_eq!(err.kind(), &ErrorKind::QueueFull);
        let text = err.to_string();
        assert!(text.contains("store is failing"), "{text}");
        assert!(text.contains("injected fault: append failed"), "{text}");
        faults.release.send(()).expect("the store waits");
        writer.flush(LONG)?;
        writer.shutdown(LONG)?;
        assert_eq!(stored(&faults)?.len(), 2);
        Ok(())
    }

    // === proptest over fault schedules ===

    #[derive(Debug, Clone, Copy)]
    enum Step {
        Emit,
        Durable,
        Flush,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![3 => Just(Step::Emit), 2 => Just(Step::Durable), 1 => Just(Step::Flush)]
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            6 => Just(Fault::Fail),
            2 => Just(Fault::FailAt(At::Begin)),
            3 => (1usize..5).prop_map(|k| Fault::FailAt(At::Insert(k))),
            2 => Just(Fault::FailAt(At::Commit)),
            4 => Just(Fault::FailAfterCommit),
            1 => Just(Fault::Fatal),
            1 => Just(Fault::Panic),
            2 => Just(Fault::Hang),
        ]
    }

    fn run(
        steps: &[Step],
        schedule: &[(u64, Fault)],
        strategy: FailureStrategy,
        batch_size: usize,
    ) -> Result<()> {
        let faults = Faults::new(schedule.iter().copied())?;
        // A hang is released at once: it still delays the batch while
        // later rows queue behind it.
        for (_, f) in schedule {
            if *f == Fault::Hang {
                faults.release.send(()).expect("the receiver is alive");
            }
        }
        let options = Options {
            strategy,
            max_retries: 2,
            batch_size,
            ..Options::default()
        };
        let writer = start(&faults, options)?;
        // Rows that must be stored: durable emits that returned their row,
        // and queued rows followed by a flush that returned Ok.
        let mut must: HashSet<String> = HashSet::new();
        let mut acked: Vec<Row> = Vec::new();
        let mut queued: Vec<String> = Vec::new();
        let mut accepted = 0u64;
        for step in steps {
            match step {
                Step::Emit => {
                    let p = pending();
                    let id = p.id.to_string();
                    if writer.enqueue(p).is_ok() {
                        accepted += 1;
                        queued.push(id);
                    }
                }
                Step::Durable => match writer.enqueue_durable(pending()) {
                    Ok(row) => {
                        accepted += 1;
                        must.insert(row.id.clone());
                        acked.push(row);
                    }
                    // Closed: the writer panicked, before or after the row
                    // was queued (`enqueued` is then not checked).
                    Err(e) if e.kind() == &ErrorKind::Closed => {}
                    Err(_) => accepted += 1,
                },
                Step::Flush => {
                    // A failed flush reported the loss of rows queued
                    // before it; which ones is not said, so they leave the
                    // model either way.
                    let before = queued.drain(..);
                    if writer.flush(LONG).is_ok() {
                        must.extend(before);
                    }
                }
            }
        }
        let clean = writer.shutdown(LONG);
        let appends = faults.schedule().appends();
        // A transaction that failed half-way left nothing behind.
        assert_eq!(faults.schedule().leaked, 0, "a rolled-back batch persisted");
        let panicked = schedule
            .iter()
            .any(|(n, f)| *f == Fault::Panic && *n < appends);
        let rows = stored(&faults)?;
        let ids = id_set(&rows);
        // Nothing acknowledged is lost, and each row as acknowledged.
        assert!(must.is_subset(&ids), "acknowledged rows lost");
        for row in &acked {
            let stored = rows.iter().find(|r| r.id == row.id).expect("stored");
            assert_eq!(stored.hash, row.hash);
        }
        let stats = writer.stats();
        if panicked {
            // A panic in the retry of a batch that had landed (committed,
            // reported failure) leaves its rows stored but never counted.
            assert!(stats.written <= rows.len() as u64, "{stats:?}");
        } else {
            assert_eq!(stats.written, rows.len() as u64, "{stats:?}");
        }
        let retried = schedule
            .iter()
            .filter(|(n, f)| {
                *n < appends && matches!(f, Fault::Fail | Fault::FailAfterCommit | Fault::FailAt(_))
            })
            .count() as u64;
        assert_eq!(stats.retries, retried, "{stats:?}");
        if panicked {
            assert!(clean.is_err());
        } else {
            let report = clean?;
            assert_eq!(stats.enqueued, accepted, "{stats:?}");
            assert_eq!(report.unwritten, 0, "{stats:?}");
            assert_eq!(stats.written + stats.failed, accepted, "{stats:?}");
            let fatal = schedule
                .iter()
                .any(|(n, f)| *f == Fault::Fatal && *n < appends);
            if strategy == FailureStrategy::Retry && !fatal {
                // Retry mode never gives up: every accepted row is stored.
                assert_eq!(stats.failed, 0, "{stats:?}");
                assert!(queued.iter().all(|id| ids.contains(id)));
                assert!(must.iter().all(|id| ids.contains(id)));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn any_fault_schedule_keeps_every_acknowledged_row_once(
            steps in prop::collection::vec(step(), 1..40),
            schedule in prop::collection::btree_map(0u64..30, fault(), 0..8),
            raise in any::<bool>(),
            batch_size in 1usize..8,
        ) {
            let strategy = if raise { FailureStrategy::Raise } else { FailureStrategy::Retry };
            let schedule: Vec<_> = schedule.into_iter().collect();
            run(&steps, &schedule, strategy, batch_size).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
}
