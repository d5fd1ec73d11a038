//! `Pipeline`: one engine handle, built from `FASTEN_*` pairs.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use fasten::code::{Meta, Registry};
use fasten::record::{ApiRecord, LogLine};
use fasten::{
    ActorKind, Config, Dsn, Event, Fasten, Method, Outcome, RequestId, RetentionClass, Severity,
    StreamQuery,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{self, Detail};
use crate::error::new_err;
use crate::to_py_err;

/// Bumped in the child after each `os.fork()`: a pipeline remembers the
/// value it was built under, and one from an older generation belongs to a
/// parent whose threads the child does not have.
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

/// The `os.register_at_fork(after_in_child=…)` hook, run by the thread that
/// forked, the only one the child has.
#[pyfunction]
pub(crate) fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::SeqCst);
    // The engine mints event ids, request ids and detail salts from this
    // thread's generator, which the child inherited mid-stream: unreseeded,
    // parent and children mint the same "random" ids, and a store keeps
    // only the first row of an id (measured: a forked child's row lost).
    // Threads started after the fork seed their own generators.
    let _ = rand::rng().reseed();
}

pub(crate) fn fork_gen() -> u64 {
    FORK_GEN.load(Ordering::Relaxed)
}

pub(crate) fn forked_err(py: Python<'_>) -> PyErr {
    new_err(
        py,
        "forked",
        None,
        None,
        "this fasten pipeline was built before os.fork() and its writer thread stayed in the parent: call fasten.init() in the child (fasten's module functions do it for you)".to_owned(),
    )
}

/// An engine handle: the audit writer, the sys and api streams.
#[pyclass(module = "fasten._native", frozen)]
pub(crate) struct Pipeline {
    inner: Option<Fasten>,
    generation: u64,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.generation != fork_gen() {
            // The writer thread this handle would wait for exists only in
            // the parent: never run its destructor here.
            std::mem::forget(self.inner.take());
        }
    }
}

/// Builds a pipeline from `FASTEN_*` name/value pairs (unknown names are
/// errors naming the nearest known one); codes registered with `register`
/// and the files of `FASTEN_CODES` are loaded into it.
#[pyfunction]
pub(crate) fn build(py: Python<'_>, pairs: Vec<(String, String)>) -> PyResult<Pipeline> {
    let generation = fork_gen();
    let fasten = py
        .allow_threads(|| {
            Config::from_pairs(pairs)?
                .registry(Registry::global().clone())
                .build()
        })
        .map_err(|e| to_py_err(py, &e))?;
    Ok(Pipeline {
        inner: Some(fasten),
        generation,
    })
}

fn kind<T: FromStr<Err = fasten::ParseKindError>>(py: Python<'_>, text: &str) -> PyResult<T> {
    T::from_str(text).map_err(|e| new_err(py, "invalid_event", Some(e.field), None, e.to_string()))
}

fn request_id(py: Python<'_>, text: &str) -> PyResult<RequestId> {
    RequestId::parse(text).map_err(|e| to_py_err(py, &e))
}

impl Pipeline {
    pub(crate) fn fasten(&self, py: Python<'_>) -> PyResult<&Fasten> {
        match &self.inner {
            Some(f) if self.generation == fork_gen() => Ok(f),
            _ => Err(forked_err(py)),
        }
    }
}

#[pymethods]
impl Pipeline {
    /// Queues one audit row; returns its event id. Blocks (GIL released)
    /// only when the queue is full or in `raise` mode.
    #[pyo3(signature = (code, *, target=None, actor=None, actor_kind=None, outcome=None, method=None, severity=None, tenant=None, request_id=None, detail=None))]
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        py: Python<'_>,
        code: &str,
        target: Option<&str>,
        actor: Option<&str>,
        actor_kind: Option<&str>,
        outcome: Option<&str>,
        method: Option<&str>,
        severity: Option<&str>,
        tenant: Option<&str>,
        request_id: Option<&str>,
        detail: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let fasten = self.fasten(py)?;
        let event = event(
            py, code, target, actor, actor_kind, outcome, method, severity, tenant, request_id,
            detail,
        )?;
        py.allow_threads(|| fasten.emit(event))
            .map(|id| id.to_string())
            .map_err(|e| to_py_err(py, &e))
    }

    /// Writes one audit row and returns it, sealed, as JSON text, once it
    /// is committed (GIL released while waiting).
    #[pyo3(signature = (code, *, target=None, actor=None, actor_kind=None, outcome=None, method=None, severity=None, tenant=None, request_id=None, detail=None))]
    #[allow(clippy::too_many_arguments)]
    fn emit_durable(
        &self,
        py: Python<'_>,
        code: &str,
        target: Option<&str>,
        actor: Option<&str>,
        actor_kind: Option<&str>,
        outcome: Option<&str>,
        method: Option<&str>,
        severity: Option<&str>,
        tenant: Option<&str>,
        request_id: Option<&str>,
        detail: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let fasten = self.fasten(py)?;
        let event = event(
            py, code, target, actor, actor_kind, outcome, method, severity, tenant, request_id,
            detail,
        )?;
        let row = py
            .allow_threads(|| fasten.emit_durable(event))
            .map_err(|e| to_py_err(py, &e))?;
        serde_json::to_string(&row)
            .map_err(|e| new_err(py, "other", None, None, format!("row to JSON: {e}")))
    }

    /// Records one finished agent call (`kind`: tool, model, handoff) that
    /// took `duration_ms`; the engine picks the code, the detail fields and
    /// the outcome. `usage_json` is a JSON object (`cost_usd`,
    /// `input_tokens`, `output_tokens`, `model`, `denied`). Returns the
    /// event id.
    #[pyo3(signature = (kind, name, duration_ms, *, error=None, usage_json=None, actor=None, actor_kind=None, target=None, tenant=None, request_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn agent_call(
        &self,
        py: Python<'_>,
        kind: &str,
        name: &str,
        duration_ms: u64,
        error: Option<&str>,
        usage_json: Option<&str>,
        actor: Option<&str>,
        actor_kind: Option<&str>,
        target: Option<&str>,
        tenant: Option<&str>,
        request_id: Option<&str>,
    ) -> PyResult<String> {
        let fasten = self.fasten(py)?;
        let err = |e: fasten::Error| to_py_err(py, &e);
        let mut call = fasten::agent::Call::parse(kind, name).map_err(err)?;
        match (actor, actor_kind) {
            (Some(a), k) => call = call.actor_text(a, k).map_err(err)?,
            (None, Some(_)) => {
                return Err(new_err(
                    py,
                    "invalid_event",
                    Some("actor_kind"),
                    None,
                    "invalid actor_kind: it needs an actor, e.g. actor=\"agent-b\", actor_kind=\"agent\""
                        .to_owned(),
                ));
            }
            (None, None) => {}
        }
        if let Some(t) = target {
            call = call.target(t);
        }
        if let Some(t) = tenant {
            call = call.tenant(t);
        }
        if let Some(r) = request_id {
            call = call.request_id(self::request_id(py, r)?);
        }
        let usage = usage_json
            .map(|text| {
                serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                    new_err(
                        py,
                        "invalid_event",
                        Some("usage"),
                        None,
                        format!("invalid usage: not JSON ({e})"),
                    )
                })
            })
            .transpose()?;
        let event = call
            .finish_json(duration_ms, usage.as_ref(), error)
            .map_err(err)?;
        py.allow_threads(|| fasten.emit(event))
            .map(|id| id.to_string())
            .map_err(err)
    }

    /// Waits until everything emitted before is committed.
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let fasten = self.fasten(py)?;
        let timeout = Duration::from_secs_f64(timeout.max(0.0));
        py.allow_threads(|| {
            fasten.flush(timeout)?;
            fasten.flush_streams(timeout)
        })
        .map_err(|e| to_py_err(py, &e))
    }

    /// Flushes and stops the writer: `(written, unwritten)`.
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<(u64, u64)> {
        let fasten = self.fasten(py)?;
        let timeout = Duration::from_secs_f64(timeout.max(0.0));
        let report = py
            .allow_threads(|| fasten.shutdown(timeout))
            .map_err(|e| to_py_err(py, &e))?;
        Ok((report.written, report.unwritten))
    }

    /// The audit queue's counters.
    fn queue_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.fasten(py)?.queue_stats();
        let d = PyDict::new(py);
        d.set_item("depth", s.depth)?;
        d.set_item("capacity", s.capacity)?;
        d.set_item("high_water", s.high_water)?;
        d.set_item("enqueued", s.enqueued)?;
        d.set_item("written", s.written)?;
        d.set_item("batches", s.batches)?;
        d.set_item("retries", s.retries)?;
        d.set_item("queue_full", s.queue_full)?;
        d.set_item("failed", s.failed)?;
        d.set_item("redactions", s.redactions)?;
        d.set_item("truncated", s.truncated)?;
        d.set_item("last_error", s.last_error)?;
        d.set_item("store_kind", s.store_kind)?;
        Ok(d)
    }

    /// One sys row from a Python logger; `False` when its level is below
    /// `FASTEN_SYS_LEVEL`.
    #[pyo3(signature = (level, message, *, target="", fields=None, request_id=None, tenant=None))]
    #[allow(clippy::too_many_arguments)]
    fn log(
        &self,
        py: Python<'_>,
        level: &str,
        message: String,
        target: &str,
        fields: Option<&Bound<'_, PyDict>>,
        request_id: Option<&str>,
        tenant: Option<&str>,
    ) -> PyResult<bool> {
        let fasten = self.fasten(py)?;
        let mut line = LogLine::new(level, message)
            .map_err(|e| to_py_err(py, &e))?
            .target(target);
        if let Some(f) = fields {
            line = line.fields(convert::fields(f));
        }
        let id = request_id.map(|r| self::request_id(py, r)).transpose()?;
        Ok(match (id, tenant) {
            // The engine takes a sys row's tenant from the request's
            // context: give it that context for this one call.
            (Some(id), Some(tenant)) => {
                let _scope = fasten::context::enter(id.clone());
                let _ = fasten::context::set_tenant(tenant);
                fasten.log(line.request_id(id))
            }
            (Some(id), None) => fasten.log(line.request_id(id)),
            (None, _) => fasten.log(line),
        })
    }

    /// One api row for a request served by a Python framework.
    #[pyo3(signature = (request_id, method, path, status, duration_s, *, route=None, bytes_in=None, bytes_out=None, actor=None, target=None, tenant=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_api(
        &self,
        py: Python<'_>,
        request_id: &str,
        method: &str,
        path: &str,
        status: u16,
        duration_s: f64,
        route: Option<String>,
        bytes_in: Option<u64>,
        bytes_out: Option<u64>,
        actor: Option<String>,
        target: Option<String>,
        tenant: Option<&str>,
    ) -> PyResult<()> {
        let fasten = self.fasten(py)?;
        let id = self::request_id(py, request_id)?;
        let duration = Duration::try_from_secs_f64(duration_s).unwrap_or_default();
        let mut record = ApiRecord::new(id.clone(), method, path, status, duration)
            .map_err(|e| to_py_err(py, &e))?;
        if let Some(r) = route {
            record = record.route(r);
        }
        if let Some(b) = bytes_in {
            record = record.bytes_in(b);
        }
        if let Some(b) = bytes_out {
            record = record.bytes_out(b);
        }
        if let Some(a) = actor {
            record = record.actor(a);
        }
        if let Some(t) = target {
            record = record.target(t);
        }
        match tenant {
            Some(tenant) => {
                let _scope = fasten::context::enter(id);
                let _ = fasten::context::set_tenant(tenant);
                fasten.record_api(record);
            }
            None => fasten.record_api(record),
        }
        Ok(())
    }

    /// Sys rows, newest first, as JSON text (a list).
    #[pyo3(signature = (request_id=None, limit=100))]
    fn sys_rows(&self, py: Python<'_>, request_id: Option<&str>, limit: usize) -> PyResult<String> {
        let fasten = self.fasten(py)?;
        let q = query(py, request_id, limit)?;
        let page = py
            .allow_threads(|| fasten.sys_rows(&q))
            .map_err(|e| to_py_err(py, &e))?;
        Ok(serde_json::to_string(&page.rows).unwrap_or_else(|_| "[]".to_owned()))
    }

    /// Api rows, newest first, as JSON text (a list).
    #[pyo3(signature = (request_id=None, limit=100))]
    fn api_rows(&self, py: Python<'_>, request_id: Option<&str>, limit: usize) -> PyResult<String> {
        let fasten = self.fasten(py)?;
        let q = query(py, request_id, limit)?;
        let page = py
            .allow_threads(|| fasten.api_rows(&q))
            .map_err(|e| to_py_err(py, &e))?;
        Ok(serde_json::to_string(&page.rows).unwrap_or_else(|_| "[]".to_owned()))
    }

    /// The audit DSN, as configured.
    fn dsn(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.fasten(py)?.dsn().to_string())
    }

    /// Starts one run of a scheduled job: mints `scheduler-<run_id>` and
    /// writes the `job started` sys row; the returned run writes
    /// `job finished` or `job failed` when `finish` is called (or when it
    /// is dropped unfinished).
    fn start_job(&self, py: Python<'_>, name: String) -> PyResult<JobRun> {
        let job = self.fasten(py)?.job(name);
        let (id_tx, id_rx) = mpsc::channel::<String>();
        let (done_tx, done_rx) = mpsc::channel::<Option<String>>();
        // The engine's run record (id, start and end rows, duration) lives
        // in `Job::run_blocking`: one short-lived thread holds it open
        // while Python runs the job, sync or async.
        let thread = std::thread::Builder::new()
            .name("fasten-job".to_owned())
            .spawn(move || {
                let _ = job.run_blocking(|| {
                    let id = fasten::context::current()
                        .map(|id| id.as_str().to_owned())
                        .unwrap_or_default();
                    let _ = id_tx.send(id);
                    match done_rx.recv() {
                        Ok(None) => Ok(()),
                        Ok(Some(error)) => Err(error),
                        Err(_) => Err("the run was dropped before it ended".to_owned()),
                    }
                });
            })
            .map_err(|e| new_err(py, "other", None, None, format!("start a job thread: {e}")))?;
        let id = py.allow_threads(move || id_rx.recv()).map_err(|_| {
            new_err(
                py,
                "other",
                None,
                None,
                "the job thread ended early".to_owned(),
            )
        })?;
        Ok(JobRun {
            request_id: id,
            done: std::sync::Mutex::new(Some((done_tx, thread))),
        })
    }
}

fn query(py: Python<'_>, request_id: Option<&str>, limit: usize) -> PyResult<StreamQuery> {
    let mut q = StreamQuery::new(limit);
    if let Some(id) = request_id {
        q = q.request_id(self::request_id(py, id)?);
    }
    Ok(q)
}

#[allow(clippy::too_many_arguments)]
fn event(
    py: Python<'_>,
    code: &str,
    target: Option<&str>,
    actor: Option<&str>,
    actor_kind: Option<&str>,
    outcome: Option<&str>,
    method: Option<&str>,
    severity: Option<&str>,
    tenant: Option<&str>,
    request_id: Option<&str>,
    detail: Option<&Bound<'_, PyAny>>,
) -> PyResult<Event> {
    let mut e = Event::new(code.to_owned());
    if let Some(t) = target {
        e = e.target(t);
    }
    match (actor, actor_kind) {
        (Some(a), kind_text) => {
            let k = match kind_text {
                Some(k) => kind::<ActorKind>(py, k)?,
                None => ActorKind::User,
            };
            e = e.actor(a, k);
        }
        (None, Some(_)) => {
            return Err(new_err(
                py,
                "invalid_event",
                Some("actor_kind"),
                None,
                "invalid actor_kind: it needs an actor, e.g. actor=\"u-1\", actor_kind=\"user\""
                    .to_owned(),
            ));
        }
        (None, None) => {}
    }
    if let Some(o) = outcome {
        e = e.outcome(kind::<Outcome>(py, o)?);
    }
    if let Some(m) = method {
        e = e.method(kind::<Method>(py, m)?);
    }
    if let Some(s) = severity {
        e = e.severity(kind::<Severity>(py, s)?);
    }
    if let Some(t) = tenant {
        e = e.tenant(t);
    }
    if let Some(r) = request_id {
        e = e.request_id(self::request_id(py, r)?);
    }
    if let Some(d) = detail {
        e = e.detail(Detail { obj: d, depth: 0 });
    }
    Ok(e)
}

/// One run of a scheduled job, started by `Pipeline.start_job`.
#[pyclass(module = "fasten._native", frozen)]
pub(crate) struct JobRun {
    /// `scheduler-<run_id>`.
    #[pyo3(get)]
    request_id: String,
    done: std::sync::Mutex<Option<Pending>>,
}

/// How a run is ended: its result goes down the channel, then the thread
/// that holds the engine's run record is joined.
type Pending = (mpsc::Sender<Option<String>>, std::thread::JoinHandle<()>);

#[pymethods]
impl JobRun {
    /// Ends the run: `None` for success, else the error's text. Returns
    /// once the end record is written (GIL released while waiting).
    #[pyo3(signature = (error=None))]
    fn finish(&self, py: Python<'_>, error: Option<String>) {
        let pending = self
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((sender, thread)) = pending {
            let _ = sender.send(error);
            let _ = py.allow_threads(move || thread.join());
        }
    }
}

/// Registers codes of one domain in the process registry: a list of
/// `(code, category, action, severity, description, retention_class,
/// pii_in_detail, detail_passthrough_keys)`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub(crate) fn register(
    py: Python<'_>,
    domain: &str,
    codes: Vec<(
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
        Vec<String>,
    )>,
) -> PyResult<()> {
    let mut metas = Vec::with_capacity(codes.len());
    for (code, category, action, severity, description, retention, pii, keys) in codes {
        let mut meta = Meta::new(category, action);
        if let Some(s) = severity {
            meta = meta.severity(kind::<Severity>(py, &s)?);
        }
        if let Some(d) = description {
            meta = meta.description(d);
        }
        if let Some(r) = retention {
            meta = meta.retention(kind::<RetentionClass>(py, &r)?);
        }
        if pii {
            meta = meta.pii(keys);
        }
        metas.push((code, meta));
    }
    Registry::global()
        .register(domain, metas)
        .map_err(|e| code_err(py, &e))
}

/// A code error's message and its cause ([`fasten::code::CodeError::report`]).
fn code_err(py: Python<'_>, e: &fasten::code::CodeError) -> PyErr {
    let message = e.report();
    new_err(py, "codes", None, None, message)
}

/// Loads a `*.codes.yaml` file into the process registry; the number of codes.
#[pyfunction]
pub(crate) fn load_codes_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<usize> {
    Registry::global()
        .load_file(path)
        .map_err(|e| code_err(py, &e))
}

/// Loads codes from YAML text (`origin` names it in errors).
#[pyfunction]
pub(crate) fn load_codes_str(py: Python<'_>, origin: &str, yaml: &str) -> PyResult<usize> {
    Registry::global()
        .load_str(origin, yaml)
        .map_err(|e| code_err(py, &e))
}

/// Verifies every chain of a store; the report as JSON text.
#[pyfunction]
pub(crate) fn verify(py: Python<'_>, dsn: &str) -> PyResult<String> {
    let dsn = Dsn::parse("dsn", dsn).map_err(|e| to_py_err(py, &e))?;
    let report = py
        .allow_threads(|| fasten::verify(&dsn))
        .map_err(|e| to_py_err(py, &e))?;
    serde_json::to_string(&report)
        .map_err(|e| new_err(py, "other", None, None, format!("report to JSON: {e}")))
}
