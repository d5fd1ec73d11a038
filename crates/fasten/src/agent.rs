//! Audit for AI agents: every tool call, model call and handoff as a typed
//! audit row, with its duration, outcome, error and the cost and tokens it
//! reported, whatever happens inside.
//!
//! ```no_run
//! # async fn search(q: &str) -> Result<String, std::io::Error> { Ok(q.to_owned()) }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use fasten::ActorKind;
//! let hits = fasten::agent::tool_call("search_web")
//!     .actor("agent-b", ActorKind::Agent)
//!     .target("web")
//!     .run(|usage| async move {
//!         let hits = search("fasten").await?;
//!         usage.cost_usd(0.002).tokens(120, 40);
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hits)
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Codes and detail fields
//!
//! The rows use fasten's built-in codes of the domain `agent`
//! ([`AGENT_DOMAIN`]), known to every registry without being declared:
//!
//! | code | written by | target | `detail` |
//! |---|---|---|---|
//! | [`TOOL_CALLED`] | [`tool_call`] | what the tool acted on (default empty) | `tool` |
//! | [`MODEL_CALLED`] | [`model_call`] | default empty | `model` |
//! | [`AGENT_HANDOFF`] | [`handoff`] | the receiving agent | |
//!
//! and in every one: `duration_ms` (integer, always), `error` (text, when the
//! call failed or was denied), and what the call reported on its [`Usage`]:
//! `cost_usd` (a finite number ≥ 0), `input_tokens` and `output_tokens`
//! (integers ≥ 0), `model` (text). The detail is redacted like any other,
//! so a secret in an error message is not kept.
//!
//! # Outcome
//!
//! | the call | `outcome` | `error` |
//! |---|---|---|
//! | returned `Ok` | `success` | |
//! | returned `Err(e)` | `failure` | `e.to_string()` |
//! | called [`Usage::deny`] | `denied` | the reason, or the error |
//! | panicked | `failure` | `panicked: <message>`; the panic then continues |
//!
//! Request id, actor, tenant and method come from the context like any
//! emit (a tool call's method is `agent_tool`); the builder's setters
//! override them.
//!
//! # When the row cannot be written
//!
//! The call's own error always wins. When the call succeeded but its row
//! could not be queued (the pipeline is closed, the queue stayed full, a
//! store failed in `raise` mode), `run` returns that error converted with
//! `From<fasten::Error>`: a call that leaves no trace is not reported as a
//! success.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub use crate::code::{AGENT_DOMAIN, AGENT_HANDOFF, MODEL_CALLED, TOOL_CALLED};
use crate::error::{Error, Result};
use crate::event::{Event, EventId};
use crate::kind::{ActorKind, Method, Outcome};
use crate::pipeline::Fasten;
use crate::request_id::RequestId;

/// The longest `error` text kept, in bytes; longer text is cut at a
/// character boundary and marked with `…`.
pub const MAX_ERROR_LEN: usize = 2048;

/// The detail fields the agent codes document, in the order the table
/// above lists them.
pub const DETAIL_FIELDS: [&str; 7] = [
    "tool",
    "duration_ms",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "model",
    "error",
];

/// What kind of call a [`Call`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallKind {
    /// A tool call: [`TOOL_CALLED`].
    Tool,
    /// A model call: [`MODEL_CALLED`].
    Model,
    /// A handoff to another agent: [`AGENT_HANDOFF`].
    Handoff,
}

impl CallKind {
    /// Every accepted string, as [`FromStr`](std::str::FromStr) takes them.
    pub const VALUES: &'static [&'static str] = &["tool", "model", "handoff"];

    /// The code this kind of call is recorded under.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Tool => TOOL_CALLED,
            Self::Model => MODEL_CALLED,
            Self::Handoff => AGENT_HANDOFF,
        }
    }

    /// `tool`, `model` or `handoff`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Model => "model",
            Self::Handoff => "handoff",
        }
    }
}

impl std::fmt::Display for CallKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CallKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tool" => Ok(Self::Tool),
            "model" => Ok(Self::Model),
            "handoff" => Ok(Self::Handoff),
            _ => Err(Error::invalid(
                "kind",
                format!(
                    "invalid kind {s:?}: expected one of {}",
                    Self::VALUES.join(", ")
                ),
            )),
        }
    }
}

// === Usage ===

#[derive(Debug, Default, Clone, PartialEq)]
struct Reported {
    cost_usd: Option<f64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    model: Option<String>,
    denied: Option<Option<String>>,
    invalid: Option<String>,
}

/// What a call reports about itself while it runs: cost, tokens, the model
/// it used, or that it was denied. A cheap handle: clones share one record.
#[derive(Debug, Clone, Default)]
pub struct Usage(Arc<Mutex<Reported>>);

impl Usage {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(&self, f: impl FnOnce(&mut Reported)) -> &Self {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
        self
    }

    /// The call's cost in US dollars (`detail.cost_usd`), added to what was
    /// reported before, so a call that pays twice can say so twice. NaN, an
    /// infinity or a negative amount is not recorded: the row's detail says
    /// so in `usage_error` instead.
    pub fn cost_usd(&self, usd: f64) -> &Self {
        self.with(|r| {
            if usd.is_finite() && usd >= 0.0 {
                r.cost_usd = Some(r.cost_usd.unwrap_or(0.0) + usd);
            } else {
                r.invalid = Some(format!(
                    "invalid cost_usd {usd}: expected a finite number of dollars, 0 or more"
                ));
            }
        })
    }

    /// Input and output tokens (`detail.input_tokens`, `detail.output_tokens`),
    /// added to what was reported before.
    pub fn tokens(&self, input: u64, output: u64) -> &Self {
        self.with(|r| {
            r.input_tokens = Some(r.input_tokens.unwrap_or(0).saturating_add(input));
            r.output_tokens = Some(r.output_tokens.unwrap_or(0).saturating_add(output));
        })
    }

    /// The model the call used (`detail.model`).
    pub fn model(&self, model: impl Into<String>) -> &Self {
        let model = model.into();
        self.with(|r| r.model = Some(model))
    }

    /// Marks the call denied by policy: its outcome is `denied` whatever it
    /// returns, and `reason` (if any) is its `error`.
    pub fn deny(&self, reason: Option<&str>) -> &Self {
        let reason = reason.map(str::to_owned);
        self.with(|r| r.denied = Some(reason))
    }

    /// Reads usage from a JSON object, as the language bindings pass it:
    /// `cost_usd` (number ≥ 0), `input_tokens`, `output_tokens` (integers
    /// ≥ 0), `model` (text), `denied` (boolean). Every key is optional.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming the
    /// field when a key is unknown or its value has the wrong type.
    ///
    /// # Examples
    ///
    /// ```
    /// let usage = fasten::agent::Usage::from_json(&serde_json::json!({
    ///     "cost_usd": 0.25, "input_tokens": 10, "output_tokens": 3
    /// }))?;
    /// assert!(fasten::agent::Usage::from_json(&serde_json::json!({ "cost_usd": "1" })).is_err());
    /// # let _ = usage;
    /// # Ok::<(), fasten::Error>(())
    /// ```
    pub fn from_json(value: &Value) -> Result<Self> {
        let usage = Self::new();
        let Value::Object(map) = value else {
            return Err(Error::invalid(
                "usage",
                "invalid usage: expected a JSON object such as {\"cost_usd\": 0.01, \"input_tokens\": 120}",
            ));
        };
        let bad = |field: &'static str, rule: &str| {
            Error::invalid(field, format!("invalid usage.{field}: expected {rule}"))
        };
        for (key, v) in map {
            match key.as_str() {
                "cost_usd" => match v.as_f64().filter(|c| c.is_finite() && *c >= 0.0) {
                    Some(c) => {
                        usage.cost_usd(c);
                    }
                    None => return Err(bad("cost_usd", "a number of dollars, 0 or more")),
                },
                "input_tokens" | "output_tokens" => {
                    let n = v.as_u64().ok_or_else(|| {
                        bad(
                            if key == "input_tokens" {
                                "input_tokens"
                            } else {
                                "output_tokens"
                            },
                            "a whole number, 0 or more",
                        )
                    })?;
                    if key == "input_tokens" {
                        usage.tokens(n, 0);
                    } else {
                        usage.tokens(0, n);
                    }
                }
                "model" => match v.as_str().filter(|m| !m.is_empty()) {
                    Some(m) => {
                        usage.model(m);
                    }
                    None => return Err(bad("model", "non-empty text")),
                },
                "denied" => match v {
                    Value::Bool(true) => {
                        usage.deny(None);
                    }
                    Value::Bool(false) => {}
                    _ => return Err(bad("denied", "true or false")),
                },
                other => {
                    return Err(Error::invalid(
                        "usage",
                        format!(
                            "unknown usage field {other:?}: expected cost_usd, input_tokens, output_tokens, model or denied"
                        ),
                    ));
                }
            }
        }
        Ok(usage)
    }

    fn snapshot(&self) -> Reported {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

// === Call ===

/// Starts a [`TOOL_CALLED`] record of a call to `tool`.
pub fn tool_call(tool: impl Into<String>) -> Call {
    Call::new(CallKind::Tool, tool)
}

/// Starts a [`MODEL_CALLED`] record of a call to `model`.
pub fn model_call(model: impl Into<String>) -> Call {
    Call::new(CallKind::Model, model)
}

/// Starts an [`AGENT_HANDOFF`] record of work handed to agent `to` (the
/// row's target).
pub fn handoff(to: impl Into<String>) -> Call {
    Call::new(CallKind::Handoff, to)
}

/// One agent call to record: built by [`tool_call`], [`model_call`] or
/// [`handoff`], finished by [`run`](Self::run) or
/// [`run_sync`](Self::run_sync), which run it and write its row whatever
/// happens.
///
/// # Defaults
///
/// | setter | default |
/// |---|---|
/// | [`actor`](Self::actor) | the context's actor, else `system` |
/// | [`target`](Self::target) | empty (a handoff: the receiving agent) |
/// | [`tenant`](Self::tenant) | the context's tenant, else the pipeline's |
/// | [`request_id`](Self::request_id) | the ambient request id |
/// | [`via`](Self::via) | the process-wide pipeline ([`crate::init`]) |
#[derive(Debug, Clone)]
#[must_use = "a call records nothing until it is run"]
pub struct Call {
    kind: CallKind,
    name: String,
    event: Event,
    fasten: Option<Fasten>,
}

impl Call {
    /// A call of `kind` to `name` (the tool, the model or the receiving agent).
    pub fn new(kind: CallKind, name: impl Into<String>) -> Self {
        let name = name.into();
        let mut event = Event::new(kind.code());
        match kind {
            CallKind::Tool => event = event.method(Method::AgentTool),
            CallKind::Handoff => event = event.target(name.clone()),
            CallKind::Model => {}
        }
        Self {
            kind,
            name,
            event,
            fasten: None,
        }
    }

    /// Which agent made the call.
    pub fn actor(mut self, actor: impl Into<String>, kind: ActorKind) -> Self {
        self.event = self.event.actor(actor, kind);
        self
    }

    /// What the call acted on.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.event = self.event.target(target);
        self
    }

    /// The tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.event = self.event.tenant(tenant);
        self
    }

    /// The request id, instead of the ambient one.
    pub fn request_id(mut self, id: RequestId) -> Self {
        self.event = self.event.request_id(id);
        self
    }

    /// Writes through this pipeline instead of the process-wide one.
    pub fn via(mut self, fasten: &Fasten) -> Self {
        self.fasten = Some(fasten.clone());
        self
    }

    /// A call from text, as the language bindings pass it: `kind` is
    /// `tool`, `model` or `handoff`; `name` is what was called.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming
    /// `kind` or `name` (empty, or over 256 bytes).
    pub fn parse(kind: &str, name: &str) -> Result<Self> {
        let kind: CallKind = kind.parse()?;
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                format!(
                    "invalid name {name:?}: expected what the {kind} call called, 1 to 256 printable characters (e.g. search_web)"
                ),
            ));
        }
        Ok(Self::new(kind, name))
    }

    /// The actor with its kind as text, as the language bindings pass it;
    /// without a kind the actor is an `agent`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming
    /// `actor_kind` when it is not one of [`ActorKind::VALUES`].
    pub fn actor_text(self, actor: &str, kind: Option<&str>) -> Result<Self> {
        let kind = match kind {
            Some(k) => k
                .parse::<ActorKind>()
                .map_err(|e| Error::invalid("actor_kind", e.to_string()))?,
            None => ActorKind::Agent,
        };
        Ok(self.actor(actor, kind))
    }

    /// [`finish`](Self::finish) for the language bindings: the duration in
    /// milliseconds and the usage as a JSON object ([`Usage::from_json`]);
    /// an empty `error` counts as none.
    ///
    /// # Errors
    ///
    /// As [`Usage::from_json`].
    pub fn finish_json(
        self,
        duration_ms: u64,
        usage: Option<&Value>,
        error: Option<&str>,
    ) -> Result<Event> {
        let usage = match usage {
            Some(u) if !u.is_null() => Usage::from_json(u)?,
            _ => Usage::new(),
        };
        let error = error.filter(|e| !e.is_empty());
        Ok(self.finish(Duration::from_millis(duration_ms), &usage, error))
    }

    /// The kind of call.
    pub fn kind(&self) -> CallKind {
        self.kind
    }

    /// The event that records the call, given how it ended: `error` is the
    /// failure's text (`None` for success), `usage` what it reported. This
    /// is what [`run`](Self::run) emits; the language bindings, which time
    /// and catch calls in their own language, emit it too, so the codes,
    /// fields and outcome rules live here.
    pub fn finish(self, elapsed: Duration, usage: &Usage, error: Option<&str>) -> Event {
        let reported = usage.snapshot();
        let mut detail = Map::new();
        match self.kind {
            CallKind::Tool => {
                detail.insert("tool".into(), self.name.into());
            }
            CallKind::Model => {
                detail.insert("model".into(), self.name.into());
            }
            CallKind::Handoff => {}
        }
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        detail.insert("duration_ms".into(), ms.into());
        if let Some(c) = reported.cost_usd {
            detail.insert("cost_usd".into(), c.into());
        }
        if let Some(n) = reported.input_tokens {
            detail.insert("input_tokens".into(), n.into());
        }
        if let Some(n) = reported.output_tokens {
            detail.insert("output_tokens".into(), n.into());
        }
        if let Some(m) = reported.model {
            detail.entry("model").or_insert(m.into());
        }
        if let Some(why) = reported.invalid {
            detail.insert("usage_error".into(), why.into());
        }
        let (outcome, error) = match (reported.denied, error) {
            (Some(reason), error) => (Outcome::Denied, reason.as_deref().or(error).map(cut)),
            (None, Some(e)) => (Outcome::Failure, Some(cut(e))),
            (None, None) => (Outcome::Success, None),
        };
        if let Some(e) = error {
            detail.insert("error".into(), e.into());
        }
        self.event.outcome(outcome).detail(detail)
    }

    fn emit(fasten: Option<&Fasten>, event: Event) -> Result<EventId> {
        match fasten {
            Some(f) => f.emit(event),
            None => crate::global::emit(event),
        }
    }

    /// Runs the call's future and writes its row when it ends: duration,
    /// outcome, error and what it reported on the [`Usage`] it is given.
    /// A panic inside is recorded as a failure and then resumed.
    ///
    /// # Errors
    ///
    /// The call's own error; or, when the call succeeded but its row could
    /// not be queued, that [`Error`] converted into `E`.
    pub async fn run<F, Fut, T, E>(self, f: F) -> Result<T, E>
    where
        F: FnOnce(Usage) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display + From<Error>,
    {
        let usage = Usage::new();
        let started = Instant::now();
        let out = CatchUnwind(std::pin::pin!(f(usage.clone()))).await;
        self.settle(started.elapsed(), &usage, out)
    }

    /// [`run`](Self::run) for a blocking call.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub fn run_sync<T, E>(self, f: impl FnOnce(&Usage) -> Result<T, E>) -> Result<T, E>
    where
        E: std::fmt::Display + From<Error>,
    {
        let usage = Usage::new();
        let started = Instant::now();
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(&usage)));
        self.settle(started.elapsed(), &usage, out)
    }

    fn settle<T, E>(
        self,
        elapsed: Duration,
        usage: &Usage,
        out: std::thread::Result<Result<T, E>>,
    ) -> Result<T, E>
    where
        E: std::fmt::Display + From<Error>,
    {
        let fasten = self.fasten.clone();
        match out {
            Ok(Ok(value)) => {
                Self::emit(fasten.as_ref(), self.finish(elapsed, usage, None))?;
                Ok(value)
            }
            Ok(Err(e)) => {
                let text = e.to_string();
                if let Err(audit) =
                    Self::emit(fasten.as_ref(), self.finish(elapsed, usage, Some(&text)))
                {
                    tracing::error!(target: "fasten::agent", error = %audit, "the failed call's audit row could not be written");
                }
                Err(e)
            }
            Err(panic) => {
                let text = format!("panicked: {}", panic_message(&*panic));
                if let Err(audit) =
                    Self::emit(fasten.as_ref(), self.finish(elapsed, usage, Some(&text)))
                {
                    tracing::error!(target: "fasten::agent", error = %audit, "the panicked call's audit row could not be written");
                }
                std::panic::resume_unwind(panic)
            }
        }
    }
}

/// Cuts an error text to [`MAX_ERROR_LEN`] bytes.
fn cut(text: &str) -> String {
    if text.len() <= MAX_ERROR_LEN {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-text panic payload")
}

/// Polls a future, catching a panic in any poll.
struct CatchUnwind<'a, F>(Pin<&'a mut F>);

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(move || inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(event: &Event) -> Value {
        Value::Object(match &event.detail {
            Some(Ok(m)) => m.clone(),
            _ => Map::new(),
        })
    }

    #[test]
    fn finish_maps_outcomes_and_fields() {
        let usage = Usage::new();
        usage
            .cost_usd(0.5)
            .cost_usd(0.25)
            .tokens(10, 2)
            .model("m-1");
        let e = tool_call("search_web").finish(Duration::from_millis(42), &usage, None);
        assert_eq!(e.code(), TOOL_CALLED);
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.method, Some(Method::AgentTool));
        assert_eq!(
            detail(&e),
            serde_json::json!({"tool": "search_web", "duration_ms": 42, "cost_usd": 0.75,
                "input_tokens": 10, "output_tokens": 2, "model": "m-1"})
        );
        let e = model_call("gpt").finish(Duration::ZERO, &Usage::new(), Some("boom"));
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(detail(&e)["error"], "boom");
        assert_eq!(detail(&e)["model"], "gpt");
        let denied = Usage::new();
        denied.deny(Some("policy"));
        let e = handoff("agent-b").finish(Duration::ZERO, &denied, Some("other"));
        assert_eq!(e.outcome, Outcome::Denied);
        assert_eq!(e.target, "agent-b");
        assert_eq!(detail(&e)["error"], "policy");
        let bad = Usage::new();
        bad.cost_usd(f64::NAN);
        let d = detail(&tool_call("t").finish(Duration::ZERO, &bad, None));
        assert!(d.get("cost_usd").is_none());
        insta::assert_snapshot!(d["usage_error"].as_str().unwrap(), @"invalid cost_usd NaN: expected a finite number of dollars, 0 or more");
    }

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let c = cut(&long);
        assert!(c.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert!(c.ends_with('…'));
    }

    #[test]
    fn usage_from_json_checks_types() {
        for (bad, msg) in [
            (
                serde_json::json!({"cost_usd": "1"}),
                "invalid usage.cost_usd: expected a number of dollars, 0 or more",
            ),
            (
                serde_json::json!({"cost_usd": -1}),
                "invalid usage.cost_usd: expected a number of dollars, 0 or more",
            ),
            (
                serde_json::json!({"input_tokens": 1.5}),
                "invalid usage.input_tokens: expected a whole number, 0 or more",
            ),
            (
                serde_json::json!({"model": 3}),
                "invalid usage.model: expected non-empty text",
            ),
            (
                serde_json::json!({"price": 3}),
                "unknown usage field \"price\": expected cost_usd, input_tokens, output_tokens, model or denied",
            ),
            (
                serde_json::json!([1]),
                "invalid usage: expected a JSON object such as {\"cost_usd\": 0.01, \"input_tokens\": 120}",
            ),
        ] {
            assert_eq!(Usage::from_json(&bad).unwrap_err().to_string(), msg);
        }
        let u = Usage::from_json(
            &serde_json::json!({"cost_usd": 1, "output_tokens": 4, "denied": true}),
        )
        .unwrap();
        let r = u.snapshot();
        assert_eq!(r.cost_usd, Some(1.0));
        assert_eq!(r.output_tokens, Some(4));
        assert_eq!(r.denied, Some(None));
    }
}
