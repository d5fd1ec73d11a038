//! A running audit pipeline: emit → validate → redact → queue → writer.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use crate::chain::Row;
use crate::code::Registry;
use crate::config::{Config, FailureStrategy};
use crate::context;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventId, Pending};
use crate::kind::ActorKind;
use crate::redact;
use crate::request_id::RequestId;
use crate::store::{self, Access};
use crate::stream::{ApiRow, Origin, StreamPage, StreamQuery, StreamStats, Streams, SysRow};
use crate::writer::{Committed, QueueStats, Settings, ShutdownReport, Writer};

// The pipeline's retention: the sweep and erasure as its methods, and its
// background sweeper thread.
mod retention;
mod sweeper;

/// The longest actor or target accepted, in bytes.
const MAX_ANCHOR_LEN: usize = 1024;

/// A running audit pipeline. Cheap to clone; the writer stops when the last
/// clone is dropped (or at [`Fasten::shutdown`]).
///
/// Tests and services that want more than one pipeline build their own with
/// [`Config::build`]; [`crate::init`] installs one as the process-wide
/// pipeline behind the free functions.
#[derive(Debug, Clone)]
pub struct Fasten {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    service_id: Arc<str>,
    node_id: Arc<str>,
    tenant_id: Option<String>,
    registry: Registry,
    policy: redact::Policy,
    strategy: FailureStrategy,
    dsn: crate::dsn::Dsn,
    writer: Writer,
    streams: Streams,
    retention: crate::config::Retention,
    /// Held while a sweep runs, so sweeps of one pipeline never overlap.
    sweep_running: Arc<Mutex<()>>,
    sweeper: OnceLock<sweeper::Sweeper>,
    /// The background shipper, with `FASTEN_SHIP_TO`.
    shipper: Option<crate::ship::Background>,
    /// Codes already reported as emitted in an HTTP request without an
    /// actor: one warning each, not one per row.
    unattributed: Mutex<std::collections::HashSet<Arc<str>>>,
    /// The OTLP exporter (`FASTEN_OTLP_ENDPOINT`, feature `otlp`).
    #[cfg(feature = "otlp")]
    otlp: Option<Arc<crate::tap::Tap<crate::otlp::Item>>>,
    /// Committed audit rows as JSON lines (`FASTEN_STDOUT=audit`).
    audit_stdout: Option<Arc<crate::tap::Tap<Arc<Committed>>>>,
    /// Whether emit takes the caller's trace for the audit row's copies.
    trace_audit: bool,
    ids: crate::event::IdMinter,
}

/// Committed audit rows on stdout, one JSON object a line with
/// `"stream":"audit"` first, from a thread of their own.
fn audit_stdout(capacity: usize) -> Result<crate::tap::Tap<Arc<Committed>>> {
    let mut line = Vec::with_capacity(4096);
    crate::tap::Tap::start(
        "stdout-audit",
        capacity,
        crate::env::FASTEN_AUDIT_BATCH_SIZE_DEFAULT,
        Duration::ZERO,
        move |batches: Vec<Arc<Committed>>| {
            use std::io::Write as _;
            line.clear();
            let mut n = 0u64;
            for batch in &batches {
                for row in &batch.rows {
                    crate::stream::write_line(&mut line, "audit", row);
                    n += 1;
                }
            }
            // The one sink that prints (like the sys and api streams').
            std::io::stdout()
                .lock()
                .write_all(&line)
                .map(|()| n)
                .map_err(|e| (n, format!("stdout: {e}")))
        },
    )
}

/// A handle that does not keep the pipeline running; see
/// [`Fasten::downgrade`].
#[derive(Debug, Clone)]
pub(crate) struct WeakFasten(Weak<Inner>);

impl WeakFasten {
    pub(crate) fn upgrade(&self) -> Option<Fasten> {
        self.0.upgrade().map(|inner| Fasten { inner })
    }
}

/// A `tracing` event on its way to the sys stream, before redaction.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct SysEvent {
    pub(crate) level: &'static str,
    pub(crate) target: std::borrow::Cow<'static, str>,
    pub(crate) message: String,
    pub(crate) fields: serde_json::Map<String, serde_json::Value>,
    pub(crate) span: Option<String>,
    pub(crate) request_id: Option<RequestId>,
    /// The trace the event belongs to ([`context::trace`]).
    pub(crate) trace: Option<crate::context::TraceContext>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.get() {
            sweeper.stop(Duration::ZERO);
        }
        if let Some(shipper) = &self.shipper {
            // No last round: the rows stay marked unshipped for next time.
            shipper.shutdown(Duration::ZERO);
        }
        if let Err(e) = self.writer.shutdown(DROP_TIMEOUT) {
            tracing::error!(target: "fasten::writer", error = %e, "audit pipeline dropped before its rows were written");
        }
    }
}

/// How long dropping the last handle waits for the queue to drain.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

impl Config {
    /// Starts a pipeline that is not installed globally.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a missing or malformed setting,
    /// [`ErrorKind::Codes`] when a code file breaks a rule, and
    /// [`ErrorKind::Store`] when the store cannot be opened or migrated.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::{code::{Meta, Registry}, Config, Dsn, Event};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("audit.db");
    /// let codes = Registry::new();
    /// codes.register("iam", [("USER_CREATED", Meta::new("user", "create"))])?;
    /// let fasten = Config::new()
    ///     .service_id("api")
    ///     .node_id("node-1")
    ///     .audit_dsn(Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display()))?)
    ///     .registry(codes)
    ///     .build()?;
    /// fasten.emit(Event::new("USER_CREATED").target("u-1"))?;
    /// fasten.flush(std::time::Duration::from_secs(5))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Fasten> {
        let registry = self.registry.clone().unwrap_or_default();
        self.start(registry)
    }

    pub(crate) fn start(mut self, registry: Registry) -> Result<Fasten> {
        let (service_id, node_id) = self.validate()?;
        for path in &self.codes {
            registry.load_file(path).map_err(|e| {
                Error::new(
                    ErrorKind::Codes,
                    format!("invalid code file {} in FASTEN_CODES", path.display()),
                )
                .with_source(e)
            })?;
        }
        if !self.expected_codes.is_empty() {
            let diffs = crate::typed::differences(&self.expected_codes, &registry);
            if !diffs.is_empty() {
                return Err(Error::new(
                    ErrorKind::Codes,
                    format!(
                        "the generated codes do not match the loaded registry ({} difference{}; run fasten gen again or fix FASTEN_CODES): {}",
                        diffs.len(),
                        if diffs.len() == 1 { "" } else { "s" },
                        diffs.join("; ")
                    ),
                ));
            }
        }
        let dsn = self.audit_dsn.clone();
        let mut store = store::open(&dsn, Access::Write)?;
        // Another implementation's chain of this node is never continued.
        let tip_form = store.tip_form(&node_id)?;
        store::check_tip_form(store.table_name(), &node_id, tip_form.as_deref())?;
        let mut key_warning = None;
        let checkpointer = match &self.signing_key {
            Some(path) => {
                key_warning = store::loose_key_permissions(path);
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::config(
                        crate::env::FASTEN_SIGNING_KEY,
                        format!("cannot read FASTEN_SIGNING_KEY {}: make one with `fasten keygen --name NAME --out PATH`", path.display()),
                    )
                    .with_source(e)
                })?;
                let signer = crate::checkpoint::Signer::parse(&text).map_err(|e| {
                    Error::config(
                        crate::env::FASTEN_SIGNING_KEY,
                        format!("invalid FASTEN_SIGNING_KEY {}: {e}", path.display()),
                    )
                })?;
                Some(crate::checkpointer::Checkpointer::load(
                    store.as_mut(),
                    &node_id,
                    crate::checkpointer::Settings {
                        signer,
                        every: self.checkpoint_every,
                        interval: self.checkpoint_interval,
                        dir: self.checkpoint_dir.clone(),
                        #[cfg(feature = "witness")]
                        witness: self
                            .checkpoint_witness_url
                            .clone()
                            .map(crate::checkpointer::Witness::new)
                            .transpose()?,
                    },
                )?)
            }
            None => None,
        };
        let origin = Origin {
            service_id: service_id.as_str().into(),
            node_id: node_id.as_str().into(),
            tenant_id: self.tenant_id.as_deref().map(Into::into),
        };
        #[cfg(feature = "otlp")]
        let otlp = match &self.otlp_endpoint {
            Some(endpoint) => Some(Arc::new(crate::otlp::start(
                crate::otlp::Settings {
                    endpoint: endpoint.clone(),
                    headers: self.otlp_headers.0.clone(),
                    capacity: self.otlp_queue_capacity,
                },
                &origin,
            )?)),
            None => None,
        };
        let audit_stdout = if self.stdout.audit {
            Some(Arc::new(audit_stdout(self.stream_queue_capacity)?))
        } else {
            None
        };
        #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
        let mut copies = crate::stream::Copies::default();
        let mut taps: Vec<crate::writer::AuditTap> = Vec::new();
        #[cfg(feature = "otlp")]
        if let Some(tap) = &otlp {
            use crate::otlp::Item;
            let t = Arc::clone(tap);
            copies.sys = Some(Arc::new(move |row| t.push(Item::Sys(Arc::clone(row)), 1)));
            let t = Arc::clone(tap);
            copies.api = Some(Arc::new(move |row| t.push(Item::Api(Arc::clone(row)), 1)));
            let t = Arc::clone(tap);
            taps.push(Box::new(move |batch| {
                t.push(Item::Audit(Arc::clone(batch)), batch.rows.len());
            }));
        }
        if let Some(tap) = &audit_stdout {
            let t = Arc::clone(tap);
            taps.push(Box::new(move |batch| {
                t.push(Arc::clone(batch), batch.rows.len());
            }));
        }
        let trace_audit = taps.len() > usize::from(audit_stdout.is_some());
        let streams = Streams::start(&self, origin, copies)?;
        let writer = Writer::start(
            store,
            Settings {
                capacity: self.audit_queue_capacity,
                batch_size: self.audit_batch_size,
                batch_bytes: self.audit_batch_bytes,
                block: self.audit_queue_timeout,
                strategy: self.audit_store_failure_strategy,
                max_retries: self.audit_max_retries,
                backoff: crate::writer::BACKOFF_BASE,
                reopen: Box::new(move || store::open(&dsn, Access::Write)),
                checkpointer,
                taps,
            },
        )?;
        let interval = self.retention.sweep_interval();
        let shipper = match &self.ship_to {
            Some(to) => {
                let mut shipper =
                    crate::ship::Shipper::with_token(&self.audit_dsn, to, self.ship_token.clone())?
                        .nodes(vec![node_id.clone()])
                        .batch_size(self.ship_batch_size);
                // `validate` has checked that each stream shipped has a table.
                if let (true, Some(dsn)) = (self.ship_streams.sys, &self.sys_dsn) {
                    shipper = shipper.sys(dsn)?;
                }
                if let (true, Some(dsn)) = (self.ship_streams.api, &self.api_dsn) {
                    shipper = shipper.api(dsn)?;
                }
                Some(crate::ship::Background::start(shipper, self.ship_interval)?)
            }
            None => None,
        };
        if let Some(id) = self.request_id.clone() {
            let in_force = context::set_process_default(id.clone());
            if *in_force != id {
                tracing::warn!(target: "fasten::context", kept = %in_force, ignored = %id, "the process already has a default request id");
            }
        }
        let rejected = self.rejected_request_id.clone();
        let unknown_vars = std::mem::take(&mut self.unknown_vars);
        let fasten = Fasten {
            inner: Arc::new(Inner {
                service_id: service_id.into(),
                node_id: node_id.into(),
                tenant_id: self.tenant_id,
                registry,
                policy: redact::Policy::new(&self.redact_keys, self.max_detail_bytes),
                strategy: self.audit_store_failure_strategy,
                dsn: self.audit_dsn,
                writer,
                streams,
                retention: self.retention,
                sweep_running: Arc::new(Mutex::new(())),
                sweeper: OnceLock::new(),
                shipper,
                unattributed: Mutex::default(),
                #[cfg(feature = "otlp")]
                otlp,
                audit_stdout,
                trace_audit,
                ids: crate::event::IdMinter::new(),
            }),
        };
        if let Some(interval) = interval {
            let sweeper = sweeper::Sweeper::start(
                fasten.downgrade(),
                interval,
                Arc::clone(&fasten.inner.sweep_running),
            )?;
            let _ = fasten.inner.sweeper.set(sweeper);
        }
        if let Some(reason) = rejected {
            let mut fields = serde_json::Map::new();
            fields.insert("reason".to_owned(), reason.into());
            fasten.warn_at_start(
                "fasten::context",
                format!(
                    "{} ignored: not a safe request id",
                    crate::env::FASTEN_REQUEST_ID
                ),
                fields,
            );
        }
        for notice in &fasten.inner.retention.shadowed {
            fasten.warn_at_start("fasten::config", notice.clone(), serde_json::Map::new());
        }
        for unknown in &unknown_vars {
            let mut fields = serde_json::Map::new();
            fields.insert("variable".to_owned(), unknown.name.clone().into());
            if let Some(near) = unknown.nearest {
                fields.insert("nearest".to_owned(), near.into());
            }
            fasten.warn_at_start("fasten::config", unknown.to_string(), fields);
        }
        if let Some(warning) = key_warning {
            fasten.warn_at_start("fasten::config", warning, serde_json::Map::new());
        }
        if fasten.inner.registry.is_empty() {
            fasten.warn_at_start(
                "fasten::config",
                "the code registry is empty: every emit will fail with an unknown code; declare codes with fasten::register or list *.codes.yaml files in FASTEN_CODES".to_owned(),
                serde_json::Map::new(),
            );
        }
        Ok(fasten)
    }
}

impl Fasten {
    /// A row emitted while serving an HTTP request with no actor anywhere
    /// would silently say `system`: warn once per code, in the sys stream,
    /// so the missing attribution shows.
    fn warn_if_unattributed(&self, code: &str) {
        if context::method() != Some(crate::kind::Method::Http) {
            return;
        }
        let first = self
            .inner
            .unattributed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(Arc::from(code));
        if !first {
            return;
        }
        let mut fields = serde_json::Map::new();
        fields.insert("code".to_owned(), code.into());
        if let Some(via) = context::via() {
            fields.insert("path".to_owned(), via.channel().into());
        }
        self.push_sys(SysEvent {
            level: "WARN",
            target: "fasten::attribution".into(),
            message: format!(
                "{code} was emitted while serving an HTTP request with no actor: its rows say actor=system. Name the caller with fasten::http::set_actor (in the handler or an auth layer) or Event::actor"
            ),
            fields,
            span: None,
            request_id: context::current(),
            trace: context::trace(),
        });
    }

    /// A problem found while starting that does not stop the pipeline: a
    /// `tracing` warning and a sys row, so it shows wherever the service's
    /// logs go.
    fn warn_at_start(
        &self,
        target: &'static str,
        message: String,
        fields: serde_json::Map<String, serde_json::Value>,
    ) {
        tracing::warn!(target: "fasten::config", %message, "fasten start-up warning");
        self.push_sys(SysEvent {
            level: "WARN",
            target: target.into(),
            message,
            fields,
            span: None,
            request_id: None,
            trace: None,
        });
    }

    /// Emits an audit event.
    ///
    /// In the default `retry` mode this returns once the row is queued: the
    /// caller never waits on disk, and [`flush`](Self::flush) makes
    /// everything emitted before it durable. In `raise` mode it returns once
    /// the row is committed.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::UnknownCode`]: no registry declares the code.
    /// - [`ErrorKind::InvalidEvent`]: the detail is not a JSON object or holds
    ///   NaN/infinity, or actor/target is empty or too long.
    /// - [`ErrorKind::QueueFull`]: the queue stayed full for the configured
    ///   time (counted in [`QueueStats::queue_full`]).
    /// - [`ErrorKind::Store`]: `raise` mode, and the store kept failing.
    /// - [`ErrorKind::Closed`]: the pipeline is shut down.
    pub fn emit(&self, event: Event) -> Result<EventId> {
        let pending = self.prepare(event)?;
        let id = pending.id;
        match self.inner.strategy {
            FailureStrategy::Raise => self.inner.writer.enqueue_durable(pending).map(|_| id),
            FailureStrategy::Retry => self.inner.writer.enqueue(pending).map(|()| id),
        }
    }

    /// Emits an event and waits until it is committed, whatever the
    /// failure strategy; returns the sealed row as stored.
    ///
    /// # Errors
    ///
    /// As [`emit`](Self::emit), plus [`ErrorKind::Store`] when the store
    /// keeps failing past the configured attempts.
    pub fn emit_durable(&self, event: Event) -> Result<Row> {
        let pending = self.prepare(event)?;
        self.inner.writer.enqueue_durable(pending)
    }

    /// Everything the caller's thread does: cheap checks, the context
    /// lookup and redaction. Sealing happens on the writer.
    fn prepare(&self, event: Event) -> Result<Pending> {
        let inner = &*self.inner;
        let info = inner.registry.get(&event.code).ok_or_else(|| {
            Error::new(
                ErrorKind::UnknownCode,
                format!(
                    "unknown code {:?}: declare it with fasten::register or in a *.codes.yaml file listed in FASTEN_CODES",
                    event.code
                ),
            )
        })?;
        let mut detail = match event.detail {
            None => serde_json::Map::new(),
            Some(Ok(map)) => map,
            Some(Err(e)) => return Err(Error::invalid("detail", e.to_string())),
        };
        // The event's own attribution first, then its request's, then the
        // defaults. `None` stands for the default actor, `system`, filled in
        // by the writer.
        let (actor, actor_kind) = match event.actor.or_else(context::actor) {
            Some((actor, kind)) => {
                check_anchor("actor", &actor, false)?;
                (Some(actor), kind)
            }
            None => {
                self.warn_if_unattributed(&event.code);
                (None, ActorKind::Service)
            }
        };
        check_anchor("target", &event.target, true)?;
        // actor and target are hashed into the chain: a secret there could
        // never be erased, so it is refused rather than sealed.
        for (field, value) in [
            ("actor", actor.as_deref().unwrap_or_default()),
            ("target", event.target.as_str()),
        ] {
            if let Some(marker) = redact::secret_in(value) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "invalid {field}: it holds what looks like a secret ({marker}); {field} is hashed into the chain and can never be erased, so put a stable id there and secrets nowhere"
                    ),
                ));
            }
        }
        let tenant_id = match event.tenant.or_else(context::tenant) {
            Some(t) => {
                check_anchor("tenant_id", &t, false)?;
                Some(t)
            }
            None => inner.tenant_id.clone(),
        };
        let meta = info.meta();
        if !detail.is_empty() || meta.pii_in_detail {
            let passthrough = meta
                .pii_in_detail
                .then_some(meta.detail_passthrough_keys.as_slice());
            let done = inner.policy.apply(&mut detail, passthrough);
            inner.writer.count_redaction(&done);
        }
        let request_id = event.request_id.or_else(context::current);
        let timestamp = jiff::Timestamp::now();
        Ok(Pending {
            id: inner.ids.mint(timestamp),
            timestamp,
            severity: event.severity.unwrap_or(meta.severity),
            outcome: event.outcome,
            service_id: Arc::clone(&inner.service_id),
            node_id: Arc::clone(&inner.node_id),
            tenant_id,
            actor,
            actor_kind,
            target: event.target,
            method: event.method.or_else(context::method).unwrap_or_default(),
            request_id,
            detail,
            info,
            trace: if inner.trace_audit {
                context::trace()
            } else {
                None
            },
        })
    }

    /// [`Self::emit`] for async code. In the default `retry` mode `emit`
    /// only queues (it waits, at most `FASTEN_AUDIT_QUEUE_TIMEOUT_MS`, only
    /// when the queue is full) and this calls it directly; in `raise` mode
    /// `emit` waits for the commit, so this waits on a thread of its own and
    /// the executor thread stays free.
    ///
    /// # Errors
    ///
    /// As [`Self::emit`].
    pub async fn emit_async(&self, event: Event) -> Result<EventId> {
        match self.inner.strategy {
            FailureStrategy::Retry => self.emit(event),
            FailureStrategy::Raise => {
                // Checked here, so the caller's context counts.
                let pending = self.prepare(event)?;
                let id = pending.id;
                let fasten = self.clone();
                crate::offload::run("emit", move || {
                    fasten.inner.writer.enqueue_durable(pending).map(|_| id)
                })
                .await
            }
        }
    }

    /// [`Self::emit_durable`] for async code: waits for the commit on a
    /// thread of its own, never on the executor's.
    ///
    /// # Errors
    ///
    /// As [`Self::emit_durable`].
    pub async fn emit_durable_async(&self, event: Event) -> Result<Row> {
        // Checked on the caller's thread, so the caller's context counts.
        let pending = self.prepare(event)?;
        let fasten = self.clone();
        crate::offload::run("emit", move || fasten.inner.writer.enqueue_durable(pending)).await
    }

    /// [`Self::flush`] for async code, on a thread of its own.
    ///
    /// # Errors
    ///
    /// As [`Self::flush`].
    pub async fn flush_async(&self, timeout: Duration) -> Result<()> {
        let fasten = self.clone();
        crate::offload::run("flush", move || fasten.flush(timeout)).await
    }

    /// [`Self::shutdown`] for async code, on a thread of its own.
    ///
    /// # Errors
    ///
    /// As [`Self::shutdown`].
    pub async fn shutdown_async(&self, timeout: Duration) -> Result<ShutdownReport> {
        let fasten = self.clone();
        crate::offload::run("shutdown", move || fasten.shutdown(timeout)).await
    }

    /// Waits until every event emitted before the call is durable.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when that takes longer than `timeout` (the
    /// rows stay queued), [`ErrorKind::Store`] when a `raise`-mode batch
    /// failed, [`ErrorKind::Closed`] after shutdown.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.inner.writer.flush(timeout)
    }

    /// The pipeline's counters: queue depth, capacity, high-water mark,
    /// rows written, retries, the last error and the store's health.
    pub fn queue_stats(&self) -> QueueStats {
        self.inner.writer.stats()
    }

    /// The audit store this pipeline writes to (for [`crate::verify`]).
    pub fn dsn(&self) -> &crate::dsn::Dsn {
        &self.inner.dsn
    }

    /// The code registry this pipeline checks codes against.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Writes everything queued and stops the writer. Emits after this
    /// fail with [`ErrorKind::Closed`]. The sys and api streams are
    /// flushed too. With `FASTEN_SHIP_TO`, the shipper then ships what is
    /// left within what remains of `timeout`, and stops (a central store
    /// that does not answer in time does not fail the shutdown: its rows
    /// stay unshipped for next time).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when the queue did not drain in time.
    pub fn shutdown(&self, timeout: Duration) -> Result<ShutdownReport> {
        // One budget for the three steps, so the call returns within
        // `timeout`, not within a multiple of it.
        let start = std::time::Instant::now();
        let left = || timeout.saturating_sub(start.elapsed());
        if let Some(sweeper) = self.inner.sweeper.get() {
            // A running sweep stops after its batch and records what it
            // erased, through the writer, before the writer stops.
            sweeper.stop(timeout);
        }
        let report = self.inner.writer.shutdown(left())?;
        self.flush_streams(left())?;
        // A last round with what is left of the budget, once the rows (and
        // the stream rows it may ship) are stored. Best effort too: what
        // does not ship now stays marked unshipped and ships next time.
        if let Some(shipper) = &self.inner.shipper
            && !shipper.shutdown(left())
        {
            tracing::warn!(target: "fasten::store", "the shipper's last round did not end within the shutdown timeout; it stops after its current batch");
        }
        // Copies are best effort: a slow collector never fails a shutdown
        // whose audit rows are all stored.
        if let Err(e) = self.flush_copies(left()) {
            tracing::warn!(target: "fasten::export", error = %e, "copies of rows (OTLP export, audit rows on stdout) were not all handed over before shutdown");
        }
        Ok(report)
    }

    /// Waits until every sys and api row pushed before the call has been
    /// written to stdout and the stream stores.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when that takes longer than `timeout`.
    pub fn flush_streams(&self, timeout: Duration) -> Result<()> {
        self.inner.streams.flush(timeout)
    }

    /// Waits until the copies of every row committed or pushed before the
    /// call are handed over: the OTLP export (`FASTEN_OTLP_ENDPOINT`) and
    /// audit rows on stdout. Call [`flush`](Self::flush) first for audit
    /// rows still queued for their store.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when that takes longer than `timeout`.
    pub fn flush_copies(&self, timeout: Duration) -> Result<()> {
        let start = std::time::Instant::now();
        #[cfg(feature = "otlp")]
        if let Some(tap) = &self.inner.otlp {
            tap.flush(timeout)?;
        }
        if let Some(tap) = &self.inner.audit_stdout {
            tap.flush(timeout.saturating_sub(start.elapsed()))?;
        }
        Ok(())
    }

    /// The OTLP exporter's counters (`None` when `FASTEN_OTLP_ENDPOINT` is
    /// not set): rows queued, exported, dropped because the queue was full
    /// (emit never waits for export), and failed requests.
    pub fn otlp_stats(&self) -> Option<crate::tap::ExportStats> {
        #[cfg(feature = "otlp")]
        {
            self.inner.otlp.as_ref().map(|t| t.stats())
        }
        #[cfg(not(feature = "otlp"))]
        {
            None
        }
    }

    /// The counters of audit rows on stdout (`None` unless
    /// `FASTEN_STDOUT` names `audit`).
    pub fn audit_stdout_stats(&self) -> Option<crate::tap::ExportStats> {
        self.inner.audit_stdout.as_ref().map(|t| t.stats())
    }

    /// The sys stream's counters: ring, queue, written, dropped, failed.
    pub fn sys_stats(&self) -> StreamStats {
        self.inner.streams.sys.stats()
    }

    /// The api stream's counters.
    pub fn api_stats(&self) -> StreamStats {
        self.inner.streams.api.stats()
    }

    /// Sys rows, newest first: from `FASTEN_SYS_DSN`'s table when set
    /// (rows still queued for it are not there yet), else from the ring.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the stream's store cannot be read.
    pub fn sys_rows(&self, query: &StreamQuery) -> Result<StreamPage<SysRow>> {
        self.inner.streams.sys.read(query)
    }

    /// Api rows, newest first: from `FASTEN_API_DSN`'s table when set,
    /// else from the ring.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the stream's store cannot be read.
    pub fn api_rows(&self, query: &StreamQuery) -> Result<StreamPage<ApiRow>> {
        self.inner.streams.api.read(query)
    }

    /// A handle that does not keep the pipeline running: layers and the
    /// background sweeper hold one, so they never keep a writer alive.
    pub(crate) fn downgrade(&self) -> WeakFasten {
        WeakFasten(Arc::downgrade(&self.inner))
    }

    pub(crate) fn origin(&self) -> &Origin {
        &self.inner.streams.origin
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn sys_enabled(&self, level: &tracing::Level) -> bool {
        *level <= self.inner.streams.sys_level
    }

    /// Redacts the event's fields like audit detail and pushes the row.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn push_sys(&self, e: SysEvent) {
        let inner = &*self.inner;
        let mut fields = e.fields;
        if !fields.is_empty() {
            let done = inner.policy.apply(&mut fields, None);
            inner.writer.count_redaction(&done);
        }
        // The message is free text: a secret in it goes whole.
        let mut message = e.message;
        if let Some(marker) = redact::secret_in(&message) {
            message = marker.to_owned();
            inner.writer.count_redaction(&redact::Redacted {
                values: 1,
                ..redact::Redacted::default()
            });
        }
        let origin = &inner.streams.origin;
        inner.streams.sys.push(SysRow {
            id: crate::stream::row_id(),
            timestamp: crate::event::format_timestamp(jiff::Timestamp::now()),
            service_id: Arc::clone(&origin.service_id),
            source_node_id: Arc::clone(&origin.node_id),
            tenant_id: context::tenant()
                .map(Arc::from)
                .or_else(|| origin.tenant_id.clone()),
            request_id: e.request_id,
            level: e.level.to_owned(),
            target: crate::stream::cap_field(e.target.into_owned()),
            message: crate::stream::cap_field(message),
            span: e.span,
            fields,
            dropped: None,
            trace_id: e.trace.map(|t| t.trace_id()),
            span_id: e.trace.map(|t| t.span_id()),
        });
    }

    pub(crate) fn push_api(&self, row: ApiRow) {
        self.inner.streams.api.push(row);
    }

    /// The api (`true`) or sys stream's table, when it has one.
    pub(crate) fn stream_dsn(&self, api: bool) -> Option<&crate::dsn::Dsn> {
        if api {
            self.inner.streams.api.table_dsn()
        } else {
            self.inner.streams.sys.table_dsn()
        }
    }

    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn skips_api_path(&self, path: &str) -> bool {
        self.inner.streams.skips(path)
    }

    /// The service this pipeline writes as.
    pub(crate) fn service_id(&self) -> &str {
        &self.inner.service_id
    }

    /// The node this pipeline writes as.
    pub(crate) fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub(crate) fn retention(&self) -> &crate::config::Retention {
        &self.inner.retention
    }

    /// Taken by every sweep of this pipeline, manual or background.
    pub(crate) fn sweep_lock(&self) -> MutexGuard<'_, ()> {
        self.inner
            .sweep_running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn check_anchor(field: &'static str, value: &str, may_be_empty: bool) -> Result<()> {
    if value.is_empty() && !may_be_empty {
        return Err(Error::invalid(
            field,
            format!("invalid {field}: must not be empty"),
        ));
    }
    if value.len() > MAX_ANCHOR_LEN {
        return Err(Error::invalid(
            field,
            format!(
                "invalid {field}: {} bytes is longer than {MAX_ANCHOR_LEN}; put long text in the detail",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("invalid {field}: control characters are not allowed"),
        ));
    }
    Ok(())
}
