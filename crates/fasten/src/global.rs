//! The process-wide pipeline behind the free functions, as `tracing`'s
//! global dispatcher is behind its macros.

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use crate::chain::Row;
use crate::code::{CodeError, Meta, Registry};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::event::EventId;
use crate::pipeline::Fasten;
use crate::writer::{QueueStats, ShutdownReport};

static GLOBAL: RwLock<Option<Fasten>> = RwLock::new(None);

/// How long dropping the [`Guard`] waits for the queue to drain.
pub const GUARD_DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the `FASTEN_*` environment and installs the process-wide pipeline.
///
/// # Errors
///
/// As [`Config::from_env`] and [`Config::init`].
///
/// # Examples
///
/// ```no_run
/// let _fasten = fasten::init()?;
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn init() -> Result<Guard> {
    Config::from_env()?.init()
}

impl Config {
    /// Starts the pipeline and installs it as the process-wide one, with
    /// [`Registry::global`] unless a registry was set.
    ///
    /// # Errors
    ///
    /// As [`Config::build`], and [`ErrorKind::AlreadyInitialised`] when a
    /// process-wide pipeline is already installed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let file = format!("sqlite:///{}", dir.path().join("a.db").display());
    /// let config = || -> fasten::Result<fasten::Config> {
    ///     Ok(fasten::Config::new()
    ///         .service_id("svc")
    ///         .node_id("node-1")
    ///         .audit_dsn(fasten::Dsn::parse("FASTEN_AUDIT_DSN", &file)?))
    /// };
    /// let _guard = config()?.init()?;
    /// let err = config()?.init().unwrap_err();
    /// assert_eq!(err.kind(), &fasten::ErrorKind::AlreadyInitialised);
    /// assert!(!err.to_string().contains("FASTEN_"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn init(self) -> Result<Guard> {
        let registry = self
            .registry
            .clone()
            .unwrap_or_else(|| Registry::global().clone());
        let already = || {
            Error::new(
                ErrorKind::AlreadyInitialised,
                "fasten is already initialised in this process: keep the first guard, or build a separate pipeline with Config::build",
            )
        };
        if GLOBAL
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Err(already());
        }
        // Opening the store can take seconds (a busy file, a remote
        // database): do it without holding the lock every emit reads.
        let fasten = self.start(registry)?;
        let mut slot = GLOBAL.write().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            drop(slot);
            let _ = fasten.shutdown(GUARD_DROP_TIMEOUT);
            return Err(already());
        }
        *slot = Some(fasten.clone());
        drop(slot);
        Ok(Guard {
            fasten: Some(fasten),
        })
    }
}

/// Keeps the process-wide pipeline running. Dropping it flushes the queue
/// and stops the writer (waiting up to [`GUARD_DROP_TIMEOUT`]); call
/// [`Guard::shutdown`] to choose the timeout and see the result.
#[must_use = "dropping the guard flushes the audit queue and stops the writer; bind it to a named variable"]
#[derive(Debug)]
pub struct Guard {
    fasten: Option<Fasten>,
}

impl Guard {
    /// The pipeline this guard keeps, for code that wants a handle.
    pub fn fasten(&self) -> &Fasten {
        self.fasten
            .as_ref()
            .expect("present until shutdown or drop")
    }

    /// Uninstalls the pipeline, writes what is queued, and stops the writer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when the queue did not drain in time.
    pub fn shutdown(mut self, timeout: Duration) -> Result<ShutdownReport> {
        let fasten = self.fasten.take().expect("present until shutdown or drop");
        uninstall();
        fasten.shutdown(timeout)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(fasten) = self.fasten.take() {
            uninstall();
            match fasten.shutdown(GUARD_DROP_TIMEOUT) {
                Ok(report) if report.unwritten == 0 => {}
                Ok(report) => {
                    tracing::error!(target: "fasten::writer", unwritten = report.unwritten, "fasten guard dropped: audit rows were never written");
                }
                Err(e) => {
                    tracing::error!(target: "fasten::writer", error = %e, "fasten guard dropped before the audit queue drained");
                }
            }
        }
    }
}

fn uninstall() {
    GLOBAL
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
}

fn with_global<R>(f: impl FnOnce(&Fasten) -> Result<R>) -> Result<R> {
    let slot = GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
    match slot.as_ref() {
        Some(fasten) => f(fasten),
        None => Err(Error::new(
            ErrorKind::Closed,
            "fasten is not initialised: call fasten::init() first and keep its guard",
        )),
    }
}

/// The process-wide pipeline, if installed.
pub(crate) fn current() -> Option<Fasten> {
    with_global(|f| Ok(f.clone())).ok()
}

/// Emits an event through the process-wide pipeline. See [`Fasten::emit`].
///
/// # Errors
///
/// As [`Fasten::emit`], and [`ErrorKind::Closed`] before [`init`].
pub fn emit(event: Event) -> Result<EventId> {
    // Clone the handle out so a blocking emit never holds the lock that
    // `init` and guard drops need.
    let fasten = with_global(|f| Ok(f.clone()))?;
    fasten.emit(event)
}

/// Emits and waits until the row is committed. See [`Fasten::emit_durable`].
///
/// # Errors
///
/// As [`Fasten::emit_durable`], and [`ErrorKind::Closed`] before [`init`].
pub fn emit_durable(event: Event) -> Result<Row> {
    let fasten = with_global(|f| Ok(f.clone()))?;
    fasten.emit_durable(event)
}

/// Waits until everything emitted before the call is durable.
///
/// # Errors
///
/// As [`Fasten::flush`], and [`ErrorKind::Closed`] before [`init`].
pub fn flush(timeout: Duration) -> Result<()> {
    let fasten = with_global(|f| Ok(f.clone()))?;
    fasten.flush(timeout)
}

/// Runs one retention sweep through the process-wide pipeline. See
/// [`Fasten::sweep`].
///
/// # Errors
///
/// As [`Fasten::sweep`], and [`ErrorKind::Closed`] before [`init`].
pub fn sweep(options: &crate::retention::SweepOptions) -> Result<crate::retention::SweepReport> {
    let fasten = with_global(|f| Ok(f.clone()))?;
    fasten.sweep(options)
}

/// Erases the detail of every row about one subject through the
/// process-wide pipeline. See [`Fasten::erase_subject`].
///
/// # Errors
///
/// As [`Fasten::erase_subject`], and [`ErrorKind::Closed`] before [`init`].
pub fn erase_subject(
    request: &crate::retention::Erasure,
) -> Result<crate::retention::ErasureReport> {
    let fasten = with_global(|f| Ok(f.clone()))?;
    fasten.erase_subject(request)
}

/// The process-wide pipeline's counters, or `None` before [`init`].
pub fn queue_stats() -> Option<QueueStats> {
    with_global(|f| Ok(f.queue_stats())).ok()
}

/// Declares codes of one domain in [`Registry::global`], before or after
/// [`init`].
///
/// # Errors
///
/// [`CodeError`] when a code breaks a rule or is already declared.
///
/// # Examples
///
/// ```
/// use fasten::code::Meta;
/// fasten::register("billing", [("INVOICE_SENT", Meta::new("invoice", "send"))])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn register<I, S>(domain: &str, codes: I) -> Result<(), CodeError>
where
    I: IntoIterator<Item = (S, Meta)>,
    S: Into<String>,
{
    Registry::global().register(domain, codes)
}
