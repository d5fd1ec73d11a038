//! The native half of the `fasten` npm package: a napi-rs addon over the
//! Rust engine. Every rule (validation, redaction, hashing, the chain, the
//! reader, request-id parsing) stays in the `fasten` crate; this file only
//! converts values between JavaScript and Rust and keeps blocking work off
//! the event loop (`emitDurable`, `flush`, `shutdown`, `verify` and reader
//! requests run on napi's Tokio runtime, blocking calls in
//! `spawn_blocking`).
//!
//! The JavaScript wrapper (`index.js`) adds what is idiomatic in Node:
//! `AsyncLocalStorage` context, pino-style logging, Express and Fastify
//! middleware, MQTT.js helpers, and the `FastenError` class built from the
//! errors this file throws (a JSON payload after a marker prefix).
// napi converts each JavaScript argument into an owned Rust value, so
// exported functions take `String`, `Buffer` and objects by value.
#![allow(clippy::needless_pass_by_value)]

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use fasten::code::Meta;
use fasten::record::{ApiRecord, LogLine};
use fasten::{ActorKind, Config, ErrorKind, Event, Fasten, Method, Outcome, RequestId, Severity};
use napi::bindgen_prelude::{Buffer, Result};
use napi_derive::napi;
use serde_json::{Value, json};

/// The prefix of every error message this addon throws; the JavaScript
/// wrapper turns such errors into `FastenError`.
const MARK: &str = "\u{1}fasten-error:";

/// A `fasten::Error` as a JavaScript error whose message carries the kind,
/// the field (or variable) at fault and the engine's message, as JSON after
/// [`MARK`].
fn js_error(e: &fasten::Error) -> napi::Error {
    let (kind, field, var): (&str, Option<&str>, Option<&str>) = match e.kind() {
        ErrorKind::Config { var } => ("Config", None, Some(var)),
        ErrorKind::Codes => ("Codes", None, None),
        ErrorKind::UnknownCode => ("UnknownCode", Some("code"), None),
        ErrorKind::InvalidEvent { field } => ("InvalidEvent", Some(field), None),
        ErrorKind::QueueFull => ("QueueFull", None, None),
        ErrorKind::Timeout => ("Timeout", None, None),
        ErrorKind::Store => ("Store", None, None),
        ErrorKind::Closed => ("Closed", None, None),
        ErrorKind::Checkpoint => ("Checkpoint", None, None),
        _ => ("Other", None, None),
    };
    // Display carries the message and each cause once, on one line.
    tagged(kind, field, var, &e.to_string())
}

fn tagged(kind: &str, field: Option<&str>, var: Option<&str>, message: &str) -> napi::Error {
    let payload = json!({ "kind": kind, "field": field, "var": var, "message": message });
    napi::Error::from_reason(format!("{MARK}{payload}"))
}

/// An invalid argument of the binding's own API, reported like an invalid
/// event field.
fn invalid(field: &str, message: &str) -> napi::Error {
    tagged("InvalidEvent", Some(field), None, message)
}

fn parse_kind<T: FromStr>(field: &str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>()
        .map_err(|e| invalid(field, &e.to_string()))
}

fn request_id(field: &str, text: &str) -> Result<RequestId> {
    RequestId::parse(text).map_err(|e| match e.kind() {
        ErrorKind::InvalidEvent { .. } => js_error(&e),
        _ => invalid(field, &e.to_string()),
    })
}

fn join_error(e: &impl std::fmt::Display) -> napi::Error {
    tagged("Closed", None, None, &format!("worker task failed: {e}"))
}

fn millis(ms: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
        invalid(
            "timeout",
            &format!("invalid timeout {ms}: expected milliseconds >= 0"),
        )
    })
}

// === events ===

/// One audit event, as `emit` takes it from JavaScript.
#[napi(object)]
#[derive(Debug)]
pub struct EventInput {
    /// The registered code.
    pub code: String,
    /// Who did it.
    pub actor: Option<String>,
    /// `user`, `service`, `schedule` or `agent`.
    pub actor_kind: Option<String>,
    /// What it was done to.
    pub target: Option<String>,
    /// `success`, `failure`, `denied` or `unknown`.
    pub outcome: Option<String>,
    /// The channel (`http`, `mqtt`, `cli` …).
    pub method: Option<String>,
    /// `debug` … `critical`; default the code's.
    pub severity: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The correlation key.
    pub request_id: Option<String>,
    /// A JSON object.
    pub detail: Option<Value>,
    /// The same, as JSON text (cheaper to pass than an object converted
    /// key by key); give one of `detail` and `detail_json`.
    pub detail_json: Option<String>,
    /// The transport of the request being served (`http`, `mqtt` …), from
    /// the JavaScript context: the row's default method, as
    /// `fasten::context::Via` is in Rust (rows emitted while serving HTTP
    /// without an actor are then reported by the engine).
    pub via_method: Option<String>,
    /// The path, topic or job name of that request.
    pub via_channel: Option<String>,
}

/// An event and the request scope (id and transport) to emit it in.
struct Prepared {
    event: Event,
    scope: Option<(RequestId, fasten::context::Via)>,
}

impl Prepared {
    fn emit_with<R>(self, f: impl FnOnce(Event) -> R) -> R {
        match self.scope {
            Some((id, via)) => fasten::context::with_via(id, via, || f(self.event)),
            None => f(self.event),
        }
    }
}

fn prepare(mut input: EventInput) -> Result<Prepared> {
    let via = input
        .via_method
        .take()
        .map(|m| parse_kind::<Method>("method", &m))
        .transpose()?;
    let channel = input.via_channel.take().unwrap_or_default();
    let id = input
        .request_id
        .as_deref()
        .map(|id| request_id("request_id", id))
        .transpose()?;
    let event = event(input)?;
    let scope = via.map(|m| {
        (
            id.unwrap_or_else(RequestId::mint),
            fasten::context::Via::new(m, channel),
        )
    });
    Ok(Prepared { event, scope })
}

fn event(input: EventInput) -> Result<Event> {
    let mut e = Event::new(input.code);
    match (input.actor, input.actor_kind) {
        (Some(actor), kind) => {
            let kind = match kind {
                Some(k) => parse_kind::<ActorKind>("actor_kind", &k)?,
                None => ActorKind::User,
            };
            e = e.actor(actor, kind);
        }
        (None, Some(_)) => {
            return Err(invalid(
                "actor_kind",
                "actor_kind without actor: give the actor it describes",
            ));
        }
        (None, None) => {}
    }
    if let Some(t) = input.target {
        e = e.target(t);
    }
    if let Some(o) = input.outcome {
        e = e.outcome(parse_kind::<Outcome>("outcome", &o)?);
    }
    if let Some(m) = input.method {
        e = e.method(parse_kind::<Method>("method", &m)?);
    }
    if let Some(s) = input.severity {
        e = e.severity(parse_kind::<Severity>("severity", &s)?);
    }
    if let Some(t) = input.tenant {
        e = e.tenant(t);
    }
    if let Some(id) = input.request_id {
        e = e.request_id(request_id("request_id", &id)?);
    }
    match (input.detail, input.detail_json) {
        (Some(d), None) => e = e.detail(d),
        (None, Some(text)) => e = e.detail(json_arg("detail", &text)?),
        (None, None) => {}
        (Some(_), Some(_)) => {
            return Err(invalid("detail", "give detail or detail_json, not both"));
        }
    }
    Ok(e)
}

/// One finished agent call, as `agentCall` takes it from JavaScript: the
/// wrapper timed the call and caught what it threw; the engine picks the
/// code, the detail fields and the outcome (`fasten::agent`).
#[napi(object)]
#[derive(Debug)]
pub struct AgentCallInput {
    /// `tool`, `model` or `handoff`.
    pub kind: String,
    /// What was called: the tool, the model, or the agent handed to.
    pub name: String,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// Why it failed; absent for a success.
    pub error: Option<String>,
    /// What it reported, as a JSON object's text (`cost_usd`,
    /// `input_tokens`, `output_tokens`, `model`, `denied`).
    pub usage_json: Option<String>,
    /// Which agent called (kind `agent` unless `actor_kind` says otherwise).
    pub actor: Option<String>,
    /// `user`, `service`, `schedule` or `agent`.
    pub actor_kind: Option<String>,
    /// What the call acted on.
    pub target: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The correlation key.
    pub request_id: Option<String>,
}

fn agent_event(input: AgentCallInput) -> Result<Event> {
    let e = |e: fasten::Error| js_error(&e);
    let mut call = fasten::agent::Call::parse(&input.kind, &input.name).map_err(e)?;
    match (input.actor, input.actor_kind) {
        (Some(a), k) => call = call.actor_text(&a, k.as_deref()).map_err(e)?,
        (None, Some(_)) => {
            return Err(invalid(
                "actor_kind",
                "actor_kind without actor: give the actor it describes",
            ));
        }
        (None, None) => {}
    }
    if let Some(t) = input.target {
        call = call.target(t);
    }
    if let Some(t) = input.tenant {
        call = call.tenant(t);
    }
    if let Some(id) = input.request_id {
        call = call.request_id(request_id("request_id", &id)?);
    }
    let usage = input
        .usage_json
        .as_deref()
        .map(|text| json_arg("usage", text))
        .transpose()?;
    // A negative, NaN or huge duration is a clock's fault, not the call's.
    let ms = if input.duration_ms.is_finite() && input.duration_ms > 0.0 {
        input.duration_ms.round().min(9.0e15) as u64
    } else {
        0
    };
    call.finish_json(ms, usage.as_ref(), input.error.as_deref())
        .map_err(e)
}

/// A code declared from JavaScript, as `register` takes it.
#[napi(object)]
#[derive(Debug)]
pub struct CodeInput {
    /// The code (`USER_CREATED`).
    pub code: String,
    /// What kind of thing it acts on.
    pub category: String,
    /// The action (`create`, `update` …).
    pub action: String,
    /// The default severity.
    pub severity: Option<String>,
    /// A sentence for people.
    pub description: Option<String>,
    /// `short`, `standard` or `long`.
    pub retention: Option<String>,
    /// Set for codes whose detail carries personal data: the detail keys
    /// kept (all others are dropped).
    pub pii_passthrough_keys: Option<Vec<String>>,
}

fn meta(c: &CodeInput) -> Result<Meta> {
    let mut m = Meta::new(c.category.as_str(), c.action.as_str());
    if let Some(s) = &c.severity {
        m = m.severity(parse_kind("severity", s)?);
    }
    if let Some(d) = &c.description {
        m = m.description(d.as_str());
    }
    if let Some(r) = &c.retention {
        m = m.retention(parse_kind("retention", r)?);
    }
    if let Some(keys) = &c.pii_passthrough_keys {
        m = m.pii(keys.iter().cloned());
    }
    Ok(m)
}

/// A code error's message and its cause ([`fasten::code::CodeError::report`]).
fn codes_error(e: &fasten::code::CodeError) -> napi::Error {
    let message = e.report();
    tagged("Codes", None, None, &message)
}

// === impl Engine ===

/// One fasten pipeline (audit writer, sys and api streams) in this process.
#[napi]
#[derive(Debug)]
pub struct Engine {
    inner: Fasten,
}

#[napi]
impl Engine {
    /// Builds a pipeline from `FASTEN_*` pairs (the same names and rules as
    /// the environment variables); with `from_env`, the process environment
    /// is read first and the pairs override it.
    #[napi(factory)]
    pub fn open(pairs: HashMap<String, String>, from_env: bool) -> Result<Self> {
        let config = if from_env {
            let mut merged: HashMap<String, String> = std::env::vars()
                .filter(|(k, _)| k.starts_with("FASTEN_") && fasten::env::is_known(k))
                .collect();
            merged.extend(pairs);
            Config::from_pairs(merged)
        } else {
            Config::from_pairs(pairs)
        };
        let inner = config.and_then(Config::build).map_err(|e| js_error(&e))?;
        Ok(Self { inner })
    }

    /// Queues one audit row; returns its event id. Never waits on disk in
    /// the default `retry` mode.
    #[napi]
    pub fn emit(&self, input: EventInput) -> Result<String> {
        let fasten = &self.inner;
        let id = prepare(input)?
            .emit_with(|e| fasten.emit(e))
            .map_err(|e| js_error(&e))?;
        Ok(id.to_string())
    }

    /// Records one finished agent call; returns its event id.
    #[napi]
    pub fn agent_call(&self, input: AgentCallInput) -> Result<String> {
        let event = agent_event(input)?;
        let id = self.inner.emit(event).map_err(|e| js_error(&e))?;
        Ok(id.to_string())
    }

    /// Writes one audit row and resolves with the sealed row once it is
    /// committed.
    #[napi]
    pub async fn emit_durable(&self, input: EventInput) -> Result<Value> {
        let prepared = prepare(input)?;
        let fasten = self.inner.clone();
        let row = napi::tokio::task::spawn_blocking(move || {
            prepared.emit_with(|e| fasten.emit_durable(e))
        })
        .await
        .map_err(|e| join_error(&e))?
        .map_err(|e| js_error(&e))?;
        serde_json::to_value(row).map_err(|e| napi::Error::from_reason(e.to_string()))
    }

    /// Resolves once every row emitted before is committed, and the sys and
    /// api streams are written.
    #[napi]
    pub async fn flush(&self, timeout_ms: f64) -> Result<()> {
        let timeout = millis(timeout_ms)?;
        let fasten = self.inner.clone();
        napi::tokio::task::spawn_blocking(move || {
            fasten.flush(timeout)?;
            fasten.flush_streams(timeout)
        })
        .await
        .map_err(|e| join_error(&e))?
        .map_err(|e| js_error(&e))
    }

    /// Flushes and stops the writer; resolves with `{ written, unwritten }`.
    #[napi]
    pub async fn shutdown(&self, timeout_ms: f64) -> Result<Value> {
        let timeout = millis(timeout_ms)?;
        let fasten = self.inner.clone();
        let report = napi::tokio::task::spawn_blocking(move || fasten.shutdown(timeout))
            .await
            .map_err(|e| join_error(&e))?
            .map_err(|e| js_error(&e))?;
        Ok(json!({ "written": report.written, "unwritten": report.unwritten }))
    }

    /// The audit queue's counters.
    #[napi]
    pub fn queue_stats(&self) -> Value {
        let s = self.inner.queue_stats();
        json!({
            "depth": s.depth, "capacity": s.capacity, "highWater": s.high_water,
            "enqueued": s.enqueued, "written": s.written, "batches": s.batches,
            "retries": s.retries, "queueFull": s.queue_full, "failed": s.failed,
        })
    }

    /// Declares codes of `domain` in this pipeline's registry.
    #[napi]
    pub fn register(&self, domain: String, codes: Vec<CodeInput>) -> Result<()> {
        let metas = codes
            .iter()
            .map(|c| Ok((c.code.clone(), meta(c)?)))
            .collect::<Result<Vec<_>>>()?;
        self.inner
            .registry()
            .register(&domain, metas)
            .map_err(|e| codes_error(&e))
    }

    /// Loads a `*.codes.yaml` file; returns how many codes it declared.
    #[napi]
    pub fn load_codes_file(&self, path: String) -> Result<u32> {
        let n = self
            .inner
            .registry()
            .load_file(path)
            .map_err(|e| codes_error(&e))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Loads codes from YAML text; `origin` names it in errors.
    #[napi]
    pub fn load_codes_str(&self, origin: String, yaml: String) -> Result<u32> {
        let n = self
            .inner
            .registry()
            .load_str(origin, &yaml)
            .map_err(|e| codes_error(&e))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Writes one sys-stream line; returns whether its level was recorded.
    #[napi]
    pub fn log(&self, line: LogInput) -> Result<bool> {
        let mut l = LogLine::new(&line.level, line.message).map_err(|e| js_error(&e))?;
        if let Some(t) = line.target {
            l = l.target(t);
        }
        match line.fields {
            Some(Value::Object(map)) => l = l.fields(map),
            Some(Value::Null) | None => {}
            Some(_) => return Err(invalid("fields", "invalid fields: expected an object")),
        }
        let id = line
            .request_id
            .map(|id| request_id("request_id", &id))
            .transpose()?;
        let fasten = &self.inner;
        Ok(in_context(id, line.tenant, || fasten.log(l)))
    }

    /// Writes one api-stream row.
    #[napi]
    pub fn record_api(&self, rec: ApiInput) -> Result<()> {
        let id = request_id("request_id", &rec.request_id)?;
        let status = u16::try_from(rec.status).unwrap_or(u16::MAX);
        let mut r = ApiRecord::new(
            id.clone(),
            &rec.method,
            &rec.path,
            status,
            millis(rec.duration_ms)?,
        )
        .map_err(|e| js_error(&e))?;
        if let Some(route) = rec.route {
            r = r.route(route);
        }
        if let Some(b) = rec.bytes_in {
            r = r.bytes_in(b.max(0.0) as u64);
        }
        if let Some(b) = rec.bytes_out {
            r = r.bytes_out(b.max(0.0) as u64);
        }
        if let Some(a) = rec.actor {
            r = r.actor(a);
        }
        if let Some(t) = rec.target {
            r = r.target(t);
        }
        let fasten = &self.inner;
        in_context(Some(id), rec.tenant, || fasten.record_api(r));
        Ok(())
    }

    /// The mountable reader over this pipeline's stores.
    #[napi]
    pub fn reader(&self, options: ReaderOptions) -> Result<ReaderHandle> {
        let auth = match (
            options.tokens,
            options.delegated,
            options.allow_unauthenticated,
            options.tokens_from_env,
        ) {
            (Some(tokens), None | Some(false), None | Some(false), None | Some(false)) => {
                fasten::http_reader::Auth::bearer_tokens(tokens).map_err(|e| js_error(&e))?
            }
            (None, Some(true), None | Some(false), None | Some(false)) => {
                fasten::http_reader::Auth::delegated()
            }
            (None, None | Some(false), Some(true), None | Some(false)) => {
                fasten::http_reader::Auth::allow_unauthenticated()
            }
            (None, None | Some(false), None | Some(false), Some(true)) => {
                fasten::http_reader::Auth::from_env().map_err(|e| js_error(&e))?
            }
            _ => {
                return Err(tagged(
                    "Config",
                    Some("auth"),
                    Some("FASTEN_READER_TOKENS"),
                    "the reader needs exactly one auth decision: { tokens: [...] }, { tokensFromEnv: true }, { delegated: true } or { allowUnauthenticated: true }",
                ));
            }
        };
        let mut opts = fasten::http_reader::Options::new(auth);
        if let Some(header) = options.tenant_header {
            opts = opts.tenant_scope(move |parts| {
                parts
                    .headers
                    .get(header.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
        }
        if options.audit_reads == Some(true) {
            opts = opts.audit_reads(self.inner.clone());
        }
        let reader = fasten::Reader::from_pipeline(&self.inner);
        Ok(ReaderHandle {
            router: fasten::http_reader::router(reader, opts),
        })
    }
}

/// Runs `f` with `id` and `tenant` as the engine's ambient context, for
/// the stream rows that take the request's tenant from it.
fn in_context<R>(id: Option<RequestId>, tenant: Option<String>, f: impl FnOnce() -> R) -> R {
    match id {
        Some(id) => fasten::context::with(id, || {
            if let Some(t) = tenant {
                // Always inside the scope `with` just opened, so it records.
                let _recorded = fasten::context::set_tenant(t);
            }
            f()
        }),
        None => f(),
    }
}

/// One sys-stream line from JavaScript.
#[napi(object)]
#[derive(Debug)]
pub struct LogInput {
    /// `trace`, `debug`, `info`, `warn`, `error` or `fatal`.
    pub level: String,
    /// The message.
    pub message: String,
    /// The logger's name.
    pub target: Option<String>,
    /// Structured fields (an object); redacted like audit detail.
    pub fields: Option<Value>,
    /// The request the line belongs to.
    pub request_id: Option<String>,
    /// The request's tenant.
    pub tenant: Option<String>,
}

/// One served HTTP request from JavaScript.
#[napi(object)]
#[derive(Debug)]
pub struct ApiInput {
    /// The request's id.
    pub request_id: String,
    /// The HTTP method.
    pub method: String,
    /// The path (a query string is cut off by the engine).
    pub path: String,
    /// The route template, when the framework knows it.
    pub route: Option<String>,
    /// The response status (0: no response).
    pub status: u32,
    /// How long it took.
    pub duration_ms: f64,
    /// Request body length.
    pub bytes_in: Option<f64>,
    /// Response body length.
    pub bytes_out: Option<f64>,
    /// Who made the request.
    pub actor: Option<String>,
    /// Whom it was about.
    pub target: Option<String>,
    /// The request's tenant.
    pub tenant: Option<String>,
}

// === reader ===

/// Who may read, and how the reader behaves; exactly one auth decision.
#[napi(object)]
#[derive(Debug)]
pub struct ReaderOptions {
    /// Bearer tokens (at least 16 printable characters each).
    pub tokens: Option<Vec<String>>,
    /// The tokens in `FASTEN_READER_TOKENS`.
    pub tokens_from_env: Option<bool>,
    /// Your own middleware in front has already decided.
    pub delegated: Option<bool>,
    /// Anyone who reaches it may read: loopback tools and tests only.
    pub allow_unauthenticated: Option<bool>,
    /// Confine every read to the tenant this request header names.
    pub tenant_header: Option<String>,
    /// Write a `READER_QUERY` audit row per read.
    pub audit_reads: Option<bool>,
}

/// A reader's response, for the Express or Fastify adapter to send.
#[napi(object)]
pub struct ReaderResponse {
    /// HTTP status.
    pub status: u32,
    /// Response headers.
    pub headers: HashMap<String, String>,
    /// Response body.
    pub body: Buffer,
}

impl std::fmt::Debug for ReaderResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The Rust reader router (`fasten::http_reader::router`), called once per
/// request from the JavaScript adapters.
#[napi]
pub struct ReaderHandle {
    router: axum::Router,
}

impl std::fmt::Debug for ReaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReaderHandle")
    }
}

#[napi]
impl ReaderHandle {
    /// Serves one request: `path` is relative to the mount point and may
    /// carry a query string.
    #[napi]
    pub async fn handle(
        &self,
        method: String,
        path: String,
        headers: HashMap<String, String>,
    ) -> Result<ReaderResponse> {
        use tower::ServiceExt as _;
        let bad = |e: &dyn std::fmt::Display| invalid("request", &format!("invalid request: {e}"));
        let mut req = axum::http::Request::builder()
            .method(method.as_str())
            .uri(path.as_str());
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(axum::body::Body::empty()).map_err(|e| bad(&e))?;
        let resp = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = u32::from(resp.status().as_u16());
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map_err(|e| bad(&e))?;
        Ok(ReaderResponse {
            status,
            headers,
            body: body.to_vec().into(),
        })
    }
}

// === request ids ===

/// A request id and where it came from.
#[napi(object)]
#[derive(Debug)]
pub struct IdWithSource {
    /// The id.
    pub id: String,
    /// `header`, `traceparent`, `user_property`, `payload` or `minted`.
    pub source: String,
}

/// The id for an inbound request's `X-Request-ID` and `traceparent`
/// headers, by the engine's rules (`fasten::http::request_id_from`).
#[napi]
pub fn request_id_from_headers(
    x_request_id: Option<String>,
    traceparent: Option<String>,
) -> IdWithSource {
    use axum::http::{HeaderMap, HeaderValue};
    let mut h = HeaderMap::new();
    if let Some(v) = x_request_id.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert("x-request-id", v);
    }
    if let Some(v) = traceparent.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert("traceparent", v);
    }
    let (id, source) = fasten::http::request_id_from(&h);
    let source = match source {
        fasten::http::IdSource::Header => "header",
        fasten::http::IdSource::Traceparent => "traceparent",
        _ => "minted",
    };
    IdWithSource {
        id: id.as_str().to_owned(),
        source: source.to_owned(),
    }
}

/// `X-Request-ID` and `traceparent` for an outbound call made for the
/// request `id` (`fasten::http::outbound_headers`).
#[napi]
pub fn outbound_headers(id: String) -> Result<HashMap<String, String>> {
    let id = request_id("request_id", &id)?;
    let headers = fasten::context::with(id, fasten::http::outbound_headers);
    Ok(headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect())
}

/// Checks a request id by the engine's rules; returns it.
#[napi]
pub fn parse_request_id(id: String) -> Result<String> {
    Ok(request_id("request_id", &id)?.as_str().to_owned())
}

/// A fresh request id (a W3C trace-id).
#[napi]
pub fn mint_request_id() -> String {
    RequestId::mint().as_str().to_owned()
}

// === MQTT ===

/// An outgoing MQTT message with the request id added.
#[napi(object)]
pub struct Stamped {
    /// The payload (`_req` added when it is a JSON object).
    pub payload: Buffer,
    /// The v5 user properties, `request-id` among them.
    pub user_properties: Vec<Vec<String>>,
}

impl std::fmt::Debug for Stamped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stamped")
            .field("payload_len", &self.payload.len())
            .field("user_properties", &self.user_properties)
            .finish()
    }
}

/// Adds `id` to an outgoing MQTT message (`fasten::mqtt::stamp`).
#[napi]
pub fn mqtt_stamp(payload: Buffer, id: String) -> Result<Stamped> {
    let id = request_id("request_id", &id)?;
    let (payload, props) =
        fasten::context::with(id, || fasten::mqtt::stamp(payload.to_vec(), None));
    Ok(Stamped {
        payload: payload.into(),
        user_properties: props
            .user_properties
            .into_iter()
            .map(|(k, v)| vec![k, v])
            .collect(),
    })
}

/// The request id of an inbound MQTT message (`fasten::mqtt::request_id_of`):
/// the `request-id` user property, else the payload's `_req`, else fresh.
#[napi]
pub fn mqtt_request_id(
    topic: String,
    payload: Buffer,
    user_properties: Vec<Vec<String>>,
) -> IdWithSource {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
    let props = PublishProperties {
        user_properties: user_properties
            .into_iter()
            .filter_map(|kv| match <[String; 2]>::try_from(kv) {
                Ok([k, v]) => Some((k, v)),
                Err(_) => None,
            })
            .collect(),
        ..PublishProperties::default()
    };
    let msg = Publish::new(topic, QoS::AtMostOnce, payload.to_vec(), Some(props));
    let (id, source) = fasten::mqtt::request_id_of(&msg);
    let source = match source {
        fasten::mqtt::IdSource::UserProperty => "user_property",
        fasten::mqtt::IdSource::Payload => "payload",
        _ => "minted",
    };
    IdWithSource {
        id: id.as_str().to_owned(),
        source: source.to_owned(),
    }
}

// === contract and verify ===

fn json_arg(field: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| invalid(field, &format!("invalid JSON: {e}")))
}

/// RFC 8785 canonical JSON of the JSON text `json` (text, so that numbers
/// reach the engine exactly as written).
#[napi]
pub fn canonical_json(json: String) -> Result<String> {
    Ok(fasten::contract::canonical_json(&json_arg("json", &json)?))
}

/// A row's `detail_commitment` for `salt` and the JSON text `detail`.
#[napi]
pub fn detail_commitment(salt: String, detail: String) -> Result<String> {
    Ok(fasten::contract::detail_commitment(
        &salt,
        &json_arg("detail", &detail)?,
    ))
}

/// A row's `hash`, from the row as JSON text.
#[napi]
pub fn row_hash(row: String) -> Result<String> {
    let row: fasten::Row =
        serde_json::from_str(&row).map_err(|e| invalid("row", &format!("invalid row: {e}")))?;
    Ok(fasten::contract::row_hash(&row))
}

/// Verifies every chain in the store `dsn`; resolves with the report.
#[napi]
pub async fn verify(dsn: String) -> Result<Value> {
    let dsn = fasten::Dsn::parse("FASTEN_AUDIT_DSN", &dsn).map_err(|e| js_error(&e))?;
    let report = napi::tokio::task::spawn_blocking(move || fasten::verify(&dsn))
        .await
        .map_err(|e| join_error(&e))?
        .map_err(|e| js_error(&e))?;
    serde_json::to_value(report).map_err(|e| napi::Error::from_reason(e.to_string()))
}
