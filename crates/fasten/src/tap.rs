//! Copies of rows for outside consumers (OTLP export, audit rows as JSON
//! lines on stdout): a queue bounded in rows, drained by one background
//! thread in batches. Pushing never blocks: past the bound the copy is
//! dropped and counted. The rows themselves are already where they belong
//! (audit rows committed, stream rows in their lane), so a tap only ever
//! loses a copy.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, ErrorKind, Result};

/// The counters of one copy of the rows: the OTLP export
/// ([`Fasten::otlp_stats`](crate::Fasten::otlp_stats)) or audit rows on
/// stdout ([`Fasten::audit_stdout_stats`](crate::Fasten::audit_stdout_stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Rows waiting for the background thread now.
    pub queued: usize,
    /// The most rows that may wait before copies are dropped.
    pub capacity: usize,
    /// Rows handed over (exported, or written to stdout).
    pub exported: u64,
    /// Rows dropped because the queue was full: emit never waits for a copy.
    pub dropped: u64,
    /// Rows the consumer refused (an OTLP request that failed).
    pub failed: u64,
    /// The consumer's last error, if it ever failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicUsize,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

enum Msg<T> {
    Item(T, usize),
    Flush(Sender<()>),
}

/// What a tap's thread does with a batch: `Ok(rows)` handed over, or the
/// rows that failed and why.
pub(crate) type Outcome = std::result::Result<u64, (u64, String)>;

/// One copy of the rows: its queue and the thread that drains it.
pub(crate) struct Tap<T> {
    name: &'static str,
    tx: Sender<Msg<T>>,
    /// Woken by [`Tap::flush`] while it lingers over a batch.
    thread: std::thread::Thread,
    counters: Arc<Counters>,
    capacity: usize,
}

impl<T> std::fmt::Debug for Tap<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Tap<T> {
    /// Starts the thread. `consume` gets batches of at most `batch_rows`
    /// rows (an item may hold several) in push order. After the first item
    /// of a batch the thread waits up to `linger` for more (sleeping, so
    /// pushes never pay for waking it), unless the batch is full or a flush
    /// asks: few large batches rather than many small ones, as
    /// OpenTelemetry's batch processor does.
    pub(crate) fn start(
        name: &'static str,
        capacity: usize,
        batch_rows: usize,
        linger: Duration,
        mut consume: impl FnMut(Vec<T>) -> Outcome + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<Msg<T>>();
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let handle = std::thread::Builder::new()
            .name(format!("fasten-{name}"))
            .spawn(move || {
                crate::quiet::mark_thread();
                run(&rx, &c, batch_rows.max(1), linger, &mut consume);
            })
            .map_err(|e| {
                Error::new(ErrorKind::Store, format!("cannot start the {name} thread"))
                    .with_source(e)
            })?;
        Ok(Self {
            name,
            thread: handle.thread().clone(),
            tx,
            counters,
            capacity: capacity.max(1),
        })
    }

    /// Queues `item`, which holds `rows` rows, unless that would pass the
    /// bound: then it is dropped and counted. Never blocks.
    pub(crate) fn push(&self, item: T, rows: usize) {
        let c = &self.counters;
        let before = c.queued.fetch_add(rows, Ordering::Relaxed);
        if before + rows > self.capacity || self.tx.send(Msg::Item(item, rows)).is_err() {
            c.queued.fetch_sub(rows, Ordering::Relaxed);
            let first = c.dropped.fetch_add(rows as u64, Ordering::Relaxed) == 0;
            if first {
                tracing::warn!(target: "fasten::export", tap = self.name, capacity = self.capacity, "a copy of the rows was dropped: the consumer cannot keep up (counted in its stats)");
            }
        }
    }

    /// Waits until every row pushed before the call is handed over (or
    /// failed).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        let (ack, done) = crossbeam_channel::bounded(1);
        let timed_out = || {
            Error::new(
                ErrorKind::Timeout,
                format!("the {} copy did not drain within {timeout:?}", self.name),
            )
        };
        self.tx.send(Msg::Flush(ack)).map_err(|_| timed_out())?;
        self.thread.unpark();
        match Instant::now().checked_add(timeout) {
            Some(deadline) => done.recv_deadline(deadline).map_err(|_| timed_out()),
            None => done.recv().map_err(|_| timed_out()),
        }
    }

    pub(crate) fn stats(&self) -> ExportStats {
        let c = &self.counters;
        ExportStats {
            queued: c.queued.load(Ordering::Relaxed),
            capacity: self.capacity,
            exported: c.exported.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// Block for the first message, take what else comes up to the batch
/// size or for `linger`, hand the batch over, answer flushes; until every
/// sender is gone.
fn run<T>(
    rx: &Receiver<Msg<T>>,
    c: &Counters,
    batch_rows: usize,
    linger: Duration,
    consume: &mut impl FnMut(Vec<T>) -> Outcome,
) {
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + linger;
        let mut batch = Vec::new();
        let mut rows = 0;
        let mut next = Some(first);
        loop {
            while let Some(msg) = next {
                match msg {
                    Msg::Item(item, n) => {
                        batch.push(item);
                        rows += n;
                    }
                    Msg::Flush(ack) => acks.push(ack),
                }
                next = if rows < batch_rows && acks.is_empty() {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            let now = Instant::now();
            if rows >= batch_rows || !acks.is_empty() || now >= deadline {
                break;
            }
            // Sleep rather than wait on the channel: a sender finds no
            // waiter to wake. A flush unparks.
            std::thread::park_timeout(deadline - now);
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            match consume(batch) {
                Ok(n) => {
                    c.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err((n, error)) => {
                    c.failed.fetch_add(n, Ordering::Relaxed);
                    let first = c
                        .last_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .replace(error.clone())
                        .is_none();
                    if first {
                        tracing::warn!(target: "fasten::export", %error, rows = n, "a copy of the rows could not be handed over (counted in its stats)");
                    }
                }
            }
            c.queued.fetch_sub(rows, Ordering::Relaxed);
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_tap_drops_and_counts_without_blocking() -> Result<()> {
        let (gate_tx, gate) = crossbeam_channel::bounded::<()>(0);
        let tap = Tap::start("test", 3, 10, Duration::ZERO, move |batch: Vec<u32>| {
            let _ = gate.recv();
            Ok(batch.len() as u64)
        })?;
        // Rows count as queued until handed over, wherever they wait.
        tap.push(1, 1);
        tap.push(2, 2);
        tap.push(3, 1); // 1 + 2 + 1 > 3: dropped
        assert_eq!(tap.stats().dropped, 1);
        drop(gate_tx); // opens the gate for good
        tap.flush(Duration::from_secs(10))?;
        let stats = tap.stats();
        assert_eq!((stats.exported, stats.queued, stats.dropped), (2, 0, 1));
        Ok(())
    }
}
