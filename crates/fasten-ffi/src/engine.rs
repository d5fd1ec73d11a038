//! The engine handle: init, emit, flush, shutdown, codes and the streams.

use std::ffi::c_char;
use std::fmt::Write as _;
use std::time::Duration;

use fasten::record::{ApiRecord, LogLine};
use fasten::{ActorKind, Config, Event, Fasten, Method, Outcome, RequestId, Severity};
use serde_json::{Map, Value};

use crate::abi::{FASTEN_EVENT_ID_SIZE, Failure, Str, arg, call, give, out};

/// An engine: one audit pipeline with its sys and api streams. Made by
/// `fasten_init` or `fasten_init_from_env`, released by
/// `fasten_engine_free`. Any number of threads may use one engine at once.
#[derive(Debug)]
pub struct Engine {
    pub(crate) fasten: Fasten,
}

/// One audit event. Every string is optional except `code`; a zero length
/// means "not given" and the engine's rules pick the default (actor
/// `system`, the ambient request id, tenant and actor of the calling
/// thread, the code's severity …).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EventFields {
    /// The registered code (`USER_CREATED`).
    pub code: Str,
    /// Whom or what the action was about.
    pub target: Str,
    /// Who acted.
    pub actor: Str,
    /// `user`, `service`, `system` … (default `service` when `actor` is given).
    pub actor_kind: Str,
    /// `success` (default), `failure`, `denied`, `unknown`.
    pub outcome: Str,
    /// How the request came in: `http`, `sdk` …
    pub method: Str,
    /// Overrides the code's severity: `debug`, `info`, `warning` …
    pub severity: Str,
    /// The tenant.
    pub tenant: Str,
    /// The request id (1-128 of `[A-Za-z0-9._:-]`); default the ambient one.
    pub request_id: Str,
    /// The detail as JSON text: an object.
    pub detail_json: Str,
}

/// One log line for the sys stream.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LogFields {
    /// `trace`, `debug`, `info`, `warn`/`warning`, `error`/`critical`/`fatal`.
    pub level: Str,
    /// The logger's name.
    pub target: Str,
    /// The message.
    pub message: Str,
    /// Structured fields as a JSON object (redacted like audit detail).
    pub fields_json: Str,
    /// The request id; default the ambient one.
    pub request_id: Str,
    /// The tenant; needs a request id (given or ambient).
    pub tenant: Str,
}

/// One served HTTP request for the api stream.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ApiFields {
    /// The request id; default the ambient one, and one of the two is required.
    pub request_id: Str,
    /// The HTTP method (`GET`).
    pub method: Str,
    /// The route template (`/users/{id}`), if the framework knows it.
    pub route: Str,
    /// The path; a query string is cut off (it may carry secrets).
    pub path: Str,
    /// The response status, 100-999, or 0 for "no response".
    pub status: u16,
    /// How long the request took, in microseconds.
    pub duration_us: u64,
    /// The request body's length, or -1 when unknown.
    pub bytes_in: i64,
    /// The response body's length, or -1 when unknown.
    pub bytes_out: i64,
    /// Who made the request.
    pub actor: Str,
    /// Whom or what the request was about.
    pub target: Str,
    /// The tenant.
    pub tenant: Str,
}

fn parse_kind<T: std::str::FromStr<Err = fasten::ParseKindError>>(
    text: Option<&str>,
) -> Result<Option<T>, Failure> {
    text.map(str::parse::<T>)
        .transpose()
        .map_err(|e| Failure::invalid(e.field, e.to_string()))
}

fn detail_object(text: &str, field: &str) -> Result<Map<String, Value>, Failure> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Failure::invalid(
            field,
            format!(
                "invalid {field}: expected a JSON object, got {}",
                match other {
                    Value::Null => "null",
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::String(_) => "a string",
                    Value::Array(_) => "an array",
                    Value::Object(_) => "an object",
                }
            ),
        )),
        Err(e) => Err(Failure::invalid(
            field,
            format!(
                "invalid {field}: not JSON ({e}); pass a JSON object such as {{\"plan\":\"pro\"}}"
            ),
        )),
    }
}

fn not_json(e: &serde_json::Error) -> String {
    format!("invalid detail: not JSON ({e}); pass a JSON object such as {{\"plan\":\"pro\"}}")
}

/// How `event` hands the detail's JSON text to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Straight into the core's detail serializer, without an intermediate
    /// `Value`: the emit hot path.
    Transcode,
    /// Through a `Value`: slower, but a refusal names the core's exact rule
    /// and path (through the transcoder the core sees only an interruption).
    Value,
}

/// Emits with the fast detail path; when the core refuses the detail, once
/// more through `Detail::Value` so the error names the exact rule. A refused
/// event was never queued, so at most one row is written.
///
/// # Safety
///
/// Every `Str` in `fields` is valid as `Str::get` requires.
unsafe fn emit_with<T>(
    fields: &EventFields,
    emit: impl Fn(Event) -> fasten::Result<T>,
) -> Result<T, Failure> {
    // SAFETY: the caller's promise.
    match emit(unsafe { event(fields, Detail::Transcode) }?) {
        Err(e)
            if matches!(
                e.kind(),
                fasten::ErrorKind::InvalidEvent { field: "detail" }
            ) =>
        {
            // SAFETY: the caller's promise.
            Ok(emit(unsafe { event(fields, Detail::Value) }?)?)
        }
        other => Ok(other?),
    }
}

/// Builds the core's event from the C fields; every rule is the core's.
///
/// # Safety
///
/// Every `Str` in `fields` is valid as `Str::get` requires.
unsafe fn event(fields: &EventFields, how: Detail) -> Result<Event, Failure> {
    // SAFETY: the caller promises every string in `fields` is valid.
    let code = unsafe { fields.code.required("code") }?;
    let mut event = Event::new(code.to_owned());
    // SAFETY: the caller promises every string in the struct is valid.
    let kind = parse_kind::<ActorKind>(unsafe { fields.actor_kind.get("actor_kind") }?)?;
    // SAFETY: the caller promises every string in the struct is valid.
    match (unsafe { fields.actor.get("actor") }?, kind) {
        (Some(actor), kind) => event = event.actor(actor, kind.unwrap_or_default()),
        (None, Some(_)) => {
            return Err(Failure::invalid(
                "actor_kind",
                "invalid actor_kind: given without an actor; set actor too",
            ));
        }
        (None, None) => {}
    }
    // SAFETY: the caller promises every string in the struct is valid.
    if let Some(target) = unsafe { fields.target.get("target") }? {
        event = event.target(target);
    }
    // SAFETY: the caller promises every string in the struct is valid.
    if let Some(outcome) = parse_kind::<Outcome>(unsafe { fields.outcome.get("outcome") }?)? {
        event = event.outcome(outcome);
    }
    // SAFETY: the caller promises every string in the struct is valid.
    if let Some(method) = parse_kind::<Method>(unsafe { fields.method.get("method") }?)? {
        event = event.method(method);
    }
    // SAFETY: the caller promises every string in the struct is valid.
    if let Some(severity) = parse_kind::<Severity>(unsafe { fields.severity.get("severity") }?)? {
        event = event.severity(severity);
    }
    // SAFETY: the caller promises every string in the struct is valid.
    if let Some(tenant) = unsafe { fields.tenant.get("tenant") }? {
        event = event.tenant(tenant);
    }
    // SAFETY: the caller promises every string in the struct is valid.
    if let Some(id) = unsafe { fields.request_id.get("request_id") }? {
        event = event.request_id(RequestId::parse(id)?);
    }
    // SAFETY: the caller promises every string in `fields` is valid.
    let Some(detail) = unsafe { fields.detail_json.get("detail") }? else {
        return Ok(event);
    };
    if how == Detail::Value {
        let value: Value =
            serde_json::from_str(detail).map_err(|e| Failure::invalid("detail", not_json(&e)))?;
        return Ok(event.detail(value));
    }
    let mut json = serde_json::Deserializer::from_str(detail);
    event = event.detail(serde_transcode::Transcoder::new(&mut json));
    // Text after the value: garbage after an object, or the rest of a
    // document the core refused part-way (an array; `emit_with` reports
    // that with the core's rule). Only the first is this layer's to report.
    if json.end().is_err()
        && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(detail)
    {
        return Err(Failure::invalid("detail", not_json(&e)));
    }
    Ok(event)
}

/// Writes a short string into a caller's fixed buffer without allocating.
pub(crate) struct Fixed<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) len: usize,
}

impl std::fmt::Write for Fixed<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        // Keep one byte for the NUL.
        if end >= self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn pairs_config(keys: &[Str], values: &[Str]) -> Result<Config, Failure> {
    let mut pairs = Vec::with_capacity(keys.len());
    for (k, v) in keys.iter().zip(values) {
        // SAFETY: the caller promises `n` valid key and value strings.
        let key = unsafe { k.required("key") }?;
        // SAFETY: as above.
        let value = unsafe { v.get(key) }?.unwrap_or_default();
        pairs.push((key, value));
    }
    Ok(Config::from_pairs(pairs)?)
}

fn start(config: Config, engine: *mut *mut Engine) -> Result<(), Failure> {
    let fasten = config.build()?;
    let boxed = Box::into_raw(Box::new(Engine { fasten }));
    // SAFETY: `engine` was checked non-NULL by the caller of `start`.
    unsafe { *engine = boxed };
    Ok(())
}

/// Starts an engine configured by the `FASTEN_*` environment variables
/// (see docs/environment.md), with the codes listed in `FASTEN_CODES`.
/// On success `*engine` is a new handle the caller releases with
/// `fasten_engine_free`.
///
/// # Safety
///
/// `engine` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_init_from_env(engine: *mut *mut Engine) -> i32 {
    call(|| {
        out(engine, "engine")?;
        start(Config::from_env()?, engine)
    })
}

/// Starts an engine from `n` explicit settings, named like the `FASTEN_*`
/// variables (`FASTEN_SERVICE_ID`, `FASTEN_NODE_ID`, `FASTEN_AUDIT_DSN` …);
/// the process environment is not read. An unknown name is an error naming
/// the nearest known one. `*engine` is released with `fasten_engine_free`.
///
/// # Safety
///
/// `keys` and `values` point to `n` valid strings each (or are NULL with
/// `n` 0); `engine` is valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_init(
    keys: *const Str,
    values: *const Str,
    n: usize,
    engine: *mut *mut Engine,
) -> i32 {
    call(|| {
        out(engine, "engine")?;
        let (keys, values) = if n == 0 {
            (&[][..], &[][..])
        } else {
            // SAFETY: the caller promises `n` elements behind each.
            unsafe {
                (
                    std::slice::from_raw_parts(arg(keys, "keys")?, n),
                    std::slice::from_raw_parts(arg(values, "values")?, n),
                )
            }
        };
        start(pairs_config(keys, values)?, engine)
    })
}

/// Releases an engine handle. The pipeline stops when the last handle goes
/// (waiting up to 10 s for queued rows): call `fasten_shutdown` first to
/// choose the timeout and see the outcome. NULL is a no-op.
///
/// # Safety
///
/// `engine` is NULL or a handle from `fasten_init*` not yet freed, and no
/// other thread uses it any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_engine_free(engine: *mut Engine) {
    if engine.is_null() {
        return;
    }
    // A panic in a drop must not cross the boundary either.
    let _ = call(|| {
        // SAFETY: made by `Box::into_raw` in `start`, freed once.
        drop(unsafe { Box::from_raw(engine) });
        Ok(())
    });
}

/// Checks an event against the registry, redacts its detail and queues it
/// for the chain. On success writes the event id (`evt-` + 20 hex, NUL
/// terminated) into `id_out`, which holds at least `FASTEN_EVENT_ID_SIZE`
/// bytes (or is NULL to skip it).
///
/// # Safety
///
/// `engine` and `event` are valid; `id_out` is NULL or holds
/// `FASTEN_EVENT_ID_SIZE` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_emit(
    engine: *const Engine,
    event: *const EventFields,
    id_out: *mut c_char,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises, checked for NULL.
        let (engine, fields) = unsafe { (arg(engine, "engine")?, arg(event, "event")?) };
        // SAFETY: as above.
        let id = unsafe { emit_with(fields, |event| engine.fasten.emit(event)) }?;
        if !id_out.is_null() {
            // SAFETY: the caller promises FASTEN_EVENT_ID_SIZE writable bytes.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(id_out.cast::<u8>(), FASTEN_EVENT_ID_SIZE)
            };
            let mut w = Fixed { buf, len: 0 };
            write!(w, "{id}").map_err(|_| Failure {
                status: crate::abi::FASTEN_ERR_OTHER,
                field: String::new(),
                message: "event id longer than FASTEN_EVENT_ID_SIZE".to_owned(),
            })?;
            let len = w.len;
            w.buf[len] = 0;
        }
        Ok(())
    })
}

/// Emits and waits until the row is committed; `*out` gets the sealed row
/// as JSON (every column of the row contract), freed with `fasten_free`.
///
/// # Safety
///
/// `engine` and `event` are valid; `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_emit_durable(
    engine: *const Engine,
    event: *const EventFields,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises, checked for NULL.
        let (engine, fields) = unsafe { (arg(engine, "engine")?, arg(event, "event")?) };
        crate::abi::out(out, "out")?;
        // SAFETY: as above.
        let row = unsafe { emit_with(fields, |event| engine.fasten.emit_durable(event)) }?;
        let json = serde_json::to_vec(&row).map_err(|e| Failure {
            status: crate::abi::FASTEN_ERR_OTHER,
            field: String::new(),
            message: format!("row to JSON: {e}"),
        })?;
        // SAFETY: the caller promises valid out-pointers.
        unsafe { give(&json, out, out_len) }
    })
}

/// Waits until everything emitted before is committed, at most
/// `timeout_ms` milliseconds (`FASTEN_ERR_TIMEOUT` after that).
///
/// # Safety
///
/// `engine` is a valid handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_flush(engine: *const Engine, timeout_ms: u64) -> i32 {
    call(|| {
        // SAFETY: the caller's promise, checked for NULL.
        let engine = unsafe { arg(engine, "engine") }?;
        engine.fasten.flush(Duration::from_millis(timeout_ms))?;
        engine
            .fasten
            .flush_streams(Duration::from_millis(timeout_ms))?;
        Ok(())
    })
}

/// Stops the engine: drains the queue (at most `timeout_ms`), stops the
/// writer and the streams. Later emits fail with `FASTEN_ERR_CLOSED`. If
/// `out` is not NULL it gets `{"written":N,"unwritten":M}` (free with
/// `fasten_free`). The handle itself is still released with
/// `fasten_engine_free`.
///
/// # Safety
///
/// `engine` is valid; `out`/`out_len` are both NULL or both valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_shutdown(
    engine: *const Engine,
    timeout_ms: u64,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promise, checked for NULL.
        let engine = unsafe { arg(engine, "engine") }?;
        let report = engine.fasten.shutdown(Duration::from_millis(timeout_ms))?;
        if !out.is_null() {
            let json = serde_json::json!({
                "written": report.written,
                "unwritten": report.unwritten,
            });
            // SAFETY: the caller promises valid out-pointers.
            unsafe { give(json.to_string().as_bytes(), out, out_len) }?;
        }
        Ok(())
    })
}

/// The audit queue's counters as a JSON object (`depth`, `capacity`,
/// `high_water`, `enqueued`, `written`, `batches`, `retries`,
/// `queue_full` …), freed with `fasten_free`.
///
/// # Safety
///
/// `engine` is valid; `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_queue_stats(
    engine: *const Engine,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promise, checked for NULL.
        let engine = unsafe { arg(engine, "engine") }?;
        let s = engine.fasten.queue_stats();
        let json = serde_json::json!({
            "depth": s.depth,
            "capacity": s.capacity,
            "high_water": s.high_water,
            "enqueued": s.enqueued,
            "written": s.written,
            "batches": s.batches,
            "retries": s.retries,
            "queue_full": s.queue_full,
            "failed": s.failed,
            "redactions": s.redactions,
            "truncated": s.truncated,
            "checkpoint_errors": s.checkpoint_errors,
            "last_error": s.last_error,
            "store_health": format!("{:?}", s.store_health).to_lowercase(),
            "store_kind": s.store_kind,
        });
        // SAFETY: the caller promises valid out-pointers.
        unsafe { give(json.to_string().as_bytes(), out, out_len) }
    })
}

/// Declares the codes in `yaml` (the `*.codes.yaml` format); `origin` names
/// the text in error messages (a file name). `*count` (if not NULL) gets
/// the number of codes declared.
///
/// # Safety
///
/// `engine` is valid; the strings are valid; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_register_yaml(
    engine: *const Engine,
    origin: Str,
    yaml: Str,
    count: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises.
        let (engine, origin, yaml) = unsafe {
            (
                arg(engine, "engine")?,
                origin.get("origin")?.unwrap_or("<yaml>"),
                yaml.required("yaml")?,
            )
        };
        let n = engine.fasten.registry().load_str(origin, yaml)?;
        if !count.is_null() {
            // SAFETY: non-NULL and writable by the caller's promise.
            unsafe { *count = n };
        }
        Ok(())
    })
}

/// Declares the codes in a `*.codes.yaml` file.
///
/// # Safety
///
/// As `fasten_register_yaml`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_register_file(
    engine: *const Engine,
    path: Str,
    count: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises.
        let (engine, path) = unsafe { (arg(engine, "engine")?, path.required("path")?) };
        let n = engine.fasten.registry().load_file(path)?;
        if !count.is_null() {
            // SAFETY: non-NULL and writable by the caller's promise.
            unsafe { *count = n };
        }
        Ok(())
    })
}

/// Runs `f` with `tenant` as the request's tenant, in a scope of the given
/// (or ambient) request id: the streams take the tenant from the context.
fn with_tenant<R>(
    tenant: Option<&str>,
    id: Option<RequestId>,
    f: impl FnOnce() -> R,
) -> Result<R, Failure> {
    let Some(tenant) = tenant else {
        return Ok(f());
    };
    let id = id.or_else(fasten::context::current).ok_or_else(|| {
        Failure::invalid(
            "tenant",
            "invalid tenant: a tenant needs a request id (given, or ambient with fasten_context_enter)",
        )
    })?;
    Ok(fasten::context::with(id, || {
        let recorded = fasten::context::set_tenant(tenant);
        debug_assert!(recorded, "inside a scope");
        f()
    }))
}

/// Writes a log line to the sys stream. `*recorded` (if not NULL) says
/// whether it passed `FASTEN_SYS_LEVEL`. Never blocks: under overload the
/// stream sheds rows and counts them.
///
/// # Safety
///
/// `engine` and `line` are valid; `recorded` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_log(
    engine: *const Engine,
    line: *const LogFields,
    recorded: *mut bool,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises, checked for NULL.
        let (engine, f) = unsafe { (arg(engine, "engine")?, arg(line, "line")?) };
        // SAFETY: the caller promises every string in `line` is valid.
        let level = unsafe { f.level.get("level") }?.unwrap_or("info");
        // SAFETY: the caller promises every string in the struct is valid.
        let message = unsafe { f.message.get("message") }?.unwrap_or_default();
        let mut log = LogLine::new(level, message)?;
        // SAFETY: the caller promises every string in the struct is valid.
        if let Some(target) = unsafe { f.target.get("target") }? {
            log = log.target(target);
        }
        // SAFETY: the caller promises every string in the struct is valid.
        if let Some(fields) = unsafe { f.fields_json.get("fields") }? {
            log = log.fields(detail_object(fields, "fields")?);
        }
        // SAFETY: the caller promises every string in the struct is valid.
        let id = unsafe { f.request_id.get("request_id") }?
            .map(RequestId::parse)
            .transpose()?;
        if let Some(id) = &id {
            log = log.request_id(id.clone());
        }
        // SAFETY: the caller promises every string in the struct is valid.
        let tenant = unsafe { f.tenant.get("tenant") }?;
        let done = with_tenant(tenant, id, || engine.fasten.log(log))?;
        if !recorded.is_null() {
            // SAFETY: non-NULL and writable by the caller's promise.
            unsafe { *recorded = done };
        }
        Ok(())
    })
}

/// Writes one api row. Never blocks.
///
/// # Safety
///
/// `engine` and `record` are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_record_api(engine: *const Engine, record: *const ApiFields) -> i32 {
    call(|| {
        // SAFETY: the caller's promises, checked for NULL.
        let (engine, f) = unsafe { (arg(engine, "engine")?, arg(record, "record")?) };
        // SAFETY: the caller promises every string in `record` is valid.
        let id = match unsafe { f.request_id.get("request_id") }? {
            Some(text) => RequestId::parse(text)?,
            None => fasten::context::current().ok_or_else(|| {
                Failure::invalid(
                    "request_id",
                    "missing request_id: give one, or enter a request scope first",
                )
            })?,
        };
        // SAFETY: the caller promises every string in the struct is valid.
        let method = unsafe { f.method.required("method") }?;
        // SAFETY: the caller promises every string in the struct is valid.
        let path = unsafe { f.path.get("path") }?.unwrap_or("/");
        let mut rec = ApiRecord::new(
            id.clone(),
            method,
            path,
            f.status,
            Duration::from_micros(f.duration_us),
        )?;
        // SAFETY: the caller promises every string in the struct is valid.
        if let Some(route) = unsafe { f.route.get("route") }? {
            rec = rec.route(route);
        }
        if let Ok(n) = u64::try_from(f.bytes_in) {
            rec = rec.bytes_in(n);
        }
        if let Ok(n) = u64::try_from(f.bytes_out) {
            rec = rec.bytes_out(n);
        }
        // SAFETY: the caller promises every string in the struct is valid.
        if let Some(actor) = unsafe { f.actor.get("actor") }? {
            rec = rec.actor(actor);
        }
        // SAFETY: the caller promises every string in the struct is valid.
        if let Some(target) = unsafe { f.target.get("target") }? {
            rec = rec.target(target);
        }
        // SAFETY: the caller promises every string in the struct is valid.
        let tenant = unsafe { f.tenant.get("tenant") }?;
        with_tenant(tenant, Some(id), || engine.fasten.record_api(rec))
    })
}
