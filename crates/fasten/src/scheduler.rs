//! Scheduled jobs: one request id per run, and a record of each run.
//!
//! Wrap a job's body with [`Job::run`] (a future) or [`Job::run_blocking`]
//! (a closure). Each run mints the id `scheduler-<run_id>` and makes it
//! ambient with [`Method::Scheduler`] and the job's name as its
//! [`Via`], so every row of the run shares it: audit
//! rows (`method=scheduler`), sys rows, and, through
//! `fasten::http::outbound_headers` (feature `http`) or the MQTT and NATS helpers,
//! the rows of the services it calls.
//!
//! Each run writes two sys rows (target `fasten::scheduler`, field `job`):
//! `job started` when it starts, and `job finished` (INFO) or `job failed`
//! (ERROR) when it ends, with `started_at`, `duration_ms`, `outcome`
//! (`success` or `failure`, from the job's `Result`) and the error's text.
//! A run that panics or is dropped before it ends (a cancelled task) is
//! recorded as failed too. Run records are sys rows rather than audit
//! rows: a run is operational history, not a change to anything, and the
//! audit registry holds the application's codes only; the job's own
//! changes are the audit rows it emits.
//!
//! It works with any scheduler; with a plain loop:
//!
//! ```no_run
//! # async fn rotate_keys() -> Result<(), std::io::Error> { Ok(()) }
//! # async fn run() -> Result<(), fasten::Error> {
//! let _fasten = fasten::init()?;
//! let job = fasten::scheduler::job("rotate-keys");
//! let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
//! loop {
//!     tick.tick().await;
//!     if let Err(e) = job.run(rotate_keys()).await {
//!         tracing::error!(error = %e, "key rotation failed; next try in an hour");
//!     }
//! }
//! # }
//! ```
//!
//! and with `tokio-cron-scheduler`, whose job closures are called once per
//! firing (not compiled here, so that `fasten` does not depend on it even for
//! its tests; the unpublished `fasten-it` crate runs the same shape in
//! `tests/it/cron.rs`):
//!
//! ```rust,ignore
//! # async fn build_report() -> Result<(), std::io::Error> { Ok(()) }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sched = tokio_cron_scheduler::JobScheduler::new().await?;
//! let job = fasten::scheduler::job("nightly-report");
//! sched.add(tokio_cron_scheduler::Job::new_async("0 0 2 * * *", move |_id, _sched| {
//!     let job = job.clone();
//!     Box::pin(async move { let _ = job.run(build_report()).await; })
//! })?).await?;
//! sched.start().await?;
//! # Ok(()) }
//! ```

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use serde_json::{Map, Value};

use crate::context::{self, Via};
use crate::kind::{Method, Outcome};
use crate::pipeline::{Fasten, SysEvent, WeakFasten};
use crate::request_id::RequestId;

/// The prefix of every run's request id.
pub const RUN_ID_PREFIX: &str = "scheduler-";

/// The sys stream target of run records.
pub const TARGET: &str = "fasten::scheduler";

/// A named job whose runs are recorded. Cheap to clone: clone it into a
/// scheduler's closure.
#[derive(Debug, Clone)]
pub struct Job {
    name: Arc<str>,
    /// `None`: the process-wide pipeline, looked up per run. Held weakly,
    /// like the sys layer, so a scheduler that outlives the pipeline never
    /// keeps its writer alive.
    pipeline: Option<WeakFasten>,
}

/// A job whose runs are recorded by the process-wide pipeline (runs before
/// [`crate::init`] still get their id; their records are not written).
///
/// # Examples
///
/// ```
/// let job = fasten::scheduler::job("cleanup");
/// let id = job.run_blocking(|| Ok::<_, std::io::Error>(fasten::context::current()))?;
/// assert!(id.unwrap().as_str().starts_with("scheduler-"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn job(name: impl Into<Arc<str>>) -> Job {
    Job {
        name: name.into(),
        pipeline: None,
    }
}

impl Fasten {
    /// A job whose runs are recorded by this pipeline rather than the
    /// global one. See [`scheduler`](crate::scheduler).
    pub fn job(&self, name: impl Into<Arc<str>>) -> Job {
        Job {
            name: name.into(),
            pipeline: Some(self.downgrade()),
        }
    }
}

impl Job {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn pipeline(&self) -> Option<Fasten> {
        match &self.pipeline {
            Some(weak) => weak.upgrade(),
            None => crate::global::current(),
        }
    }

    /// Runs one firing of the job: mints `scheduler-<run_id>`, makes it
    /// ambient for `run` (also across `.await`; carry it into spawned tasks
    /// with [`in_current_context`](crate::context::FutureExt)), and records
    /// the run's start, end, duration and outcome. The job's result is
    /// returned unchanged.
    ///
    /// # Errors
    ///
    /// The job's own error, after it is recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> Result<(), std::io::Error> {
    /// let job = fasten::scheduler::job("sync-prices");
    /// let id = job.run(async { Ok::<_, std::io::Error>(fasten::context::current()) }).await?;
    /// assert!(id.unwrap().as_str().starts_with("scheduler-"));
    /// # Ok(()) }
    /// ```
    pub fn run<F, T, E>(&self, run: F) -> Run<F>
    where
        F: Future<Output = Result<T, E>>,
        E: Display,
    {
        let record = self.start();
        Run {
            inner: context::scope_via(record.id.clone(), record.via(), run),
            record: Some(record),
        }
    }

    /// [`run`](Self::run) for a synchronous job.
    ///
    /// # Errors
    ///
    /// The job's own error, after it is recorded.
    pub fn run_blocking<T, E: Display>(&self, run: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut record = self.start();
        let result = context::with_via(record.id.clone(), record.via(), run);
        record.finish(result.as_ref().err().map(ToString::to_string));
        result
    }

    fn start(&self) -> Record {
        let id = RequestId::parse(&format!("{RUN_ID_PREFIX}{}", RequestId::mint()))
            .expect("the prefix and a minted id are in the alphabet and 42 bytes long");
        let record = Record {
            job: Arc::clone(&self.name),
            id,
            started: Instant::now(),
            started_at: jiff::Timestamp::now(),
            pipeline: self.pipeline(),
            done: false,
        };
        record.push("INFO", "job started", Map::new());
        record
    }
}

/// One run in flight; writes the end record once, even on panic or drop.
#[derive(Debug)]
struct Record {
    job: Arc<str>,
    id: RequestId,
    started: Instant,
    started_at: jiff::Timestamp,
    pipeline: Option<Fasten>,
    done: bool,
}

impl Record {
    fn via(&self) -> Via {
        Via::new(Method::Scheduler, Arc::clone(&self.job))
    }

    fn push(&self, level: &'static str, message: &str, mut fields: Map<String, Value>) {
        let Some(fasten) = &self.pipeline else {
            return;
        };
        fields.insert("job".to_owned(), Value::from(&*self.job));
        fasten.push_sys(SysEvent {
            level,
            target: TARGET.into(),
            message: message.to_owned(),
            fields,
            span: None,
            request_id: Some(self.id.clone()),
            trace: crate::context::trace()
                .filter(|_| crate::context::scoped().as_ref() == Some(&self.id)),
        });
    }

    fn finish(&mut self, error: Option<String>) {
        self.done = true;
        let duration = self.started.elapsed();
        let mut fields = Map::new();
        fields.insert(
            "started_at".to_owned(),
            crate::event::format_timestamp(self.started_at).into(),
        );
        fields.insert(
            "duration_ms".to_owned(),
            Value::from(duration.as_secs_f64() * 1000.0),
        );
        let (level, message, outcome) = match &error {
            None => ("INFO", "job finished", Outcome::Success),
            Some(_) => ("ERROR", "job failed", Outcome::Failure),
        };
        fields.insert("outcome".to_owned(), outcome.as_str().into());
        if let Some(e) = error {
            fields.insert("error".to_owned(), e.into());
        }
        self.push(level, message, fields);
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.done {
            let why = if std::thread::panicking() {
                "the job panicked"
            } else {
                "the run was dropped before it ended (cancelled)"
            };
            self.finish(Some(why.to_owned()));
        }
    }
}

pin_project_lite::pin_project! {
    /// One run of a [`Job`], made by [`Job::run`]: a future with the job's
    /// output.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Run<F> {
        #[pin]
        inner: context::Scoped<F>,
        record: Option<Record>,
    }
}

impl<F, T, E> Future for Run<F>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(mut record) = this.record.take() {
            record.finish(result.as_ref().err().map(ToString::to_string));
        }
        Poll::Ready(result)
    }
}
