//! The pipeline's background sweeper thread.

use super::*;

// === the background sweeper ===

/// The pipeline's side of its background sweeper.
#[derive(Debug)]
pub(crate) struct Sweeper {
    stop: Arc<AtomicBool>,
    thread: Thread,
    /// Held while a sweep runs; `Fasten::sweep` takes it too, so sweeps of
    /// one pipeline never overlap, and shutdown waits on it.
    pub(crate) running: Arc<Mutex<()>>,
}

impl Sweeper {
    /// Starts the thread that sweeps `fasten` every `interval`. It holds the
    /// pipeline only while it sweeps, and ends when the pipeline is gone or
    /// [`stop`](Self::stop) is called.
    pub(crate) fn start(
        fasten: WeakFasten,
        interval: Duration,
        running: Arc<Mutex<()>>,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let lock = Arc::clone(&running);
        let join = std::thread::Builder::new()
            .name("fasten-retention".into())
            .spawn(move || {
                crate::quiet::mark_thread();
                background(&fasten, interval, &flag, &lock);
            })
            .map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    "cannot start the retention sweeper thread",
                )
                .with_source(e)
            })?;
        Ok(Self {
            stop,
            thread: join.thread().clone(),
            running,
        })
    }

    /// Asks the thread to end (a running sweep stops after its current batch
    /// and still records what it erased), and waits up to `timeout` for a
    /// running sweep to finish.
    pub(crate) fn stop(&self, timeout: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
        // A timeout too long to represent waits as long as it takes.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.running.try_lock() {
                Ok(_) | Err(std::sync::TryLockError::Poisoned(_)) => return,
                Err(std::sync::TryLockError::WouldBlock)
                    if deadline.is_none_or(|d| Instant::now() < d) =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    tracing::warn!(target: "fasten::store", "a retention sweep is still running at shutdown");
                    return;
                }
            }
        }
    }
}

/// When the first background sweep is due: one interval after the node's
/// last sweep event, or after its first row, or after now.
pub(super) fn first_due(fasten: &Fasten, interval: Duration) -> Instant {
    let last = store::open(fasten.dsn(), Access::Read).and_then(|mut s| {
        match s.time_of(fasten.node_id(), Some(AUDIT_RETENTION_SWEPT))? {
            Some(t) => Ok(Some(t)),
            None => s.time_of(fasten.node_id(), None),
        }
    });
    let since = match last {
        Ok(Some(text)) => text
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| Duration::try_from(jiff::Timestamp::now().duration_since(t)).ok())
            .unwrap_or_default(),
        Ok(None) => Duration::ZERO,
        Err(e) => {
            tracing::warn!(target: "fasten::store", error = %e, "cannot read when the last retention sweep ran; the next is due in one interval");
            Duration::ZERO
        }
    };
    Instant::now() + interval.saturating_sub(since)
}

pub(super) fn background(
    fasten: &WeakFasten,
    interval: Duration,
    stop: &AtomicBool,
    running: &Mutex<()>,
) {
    let mut due = match fasten.upgrade() {
        Some(f) => first_due(&f, interval),
        None => return,
    };
    loop {
        let now = Instant::now();
        if now < due {
            std::thread::park_timeout(due - now);
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if Instant::now() < due {
            continue;
        }
        let Some(f) = fasten.upgrade() else { return };
        {
            let _one_at_a_time = running.lock().unwrap_or_else(PoisonError::into_inner);
            let options = SweepOptions::new().method(Method::Scheduler);
            if let Err(e) = f.sweep_now(&options, Some(stop)) {
                tracing::error!(target: "fasten::store", error = %e, "retention sweep failed; the next one retries");
            }
        }
        drop(f);
        due = Instant::now() + interval;
    }
}
