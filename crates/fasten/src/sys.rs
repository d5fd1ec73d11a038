//! The sys stream: a `tracing_subscriber` layer that turns each `tracing`
//! event into a [`SysRow`] carrying the ambient request id.
//!
//! Install it beside your own layers; fasten never replaces your logger:
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! let _fasten = fasten::init()?;
//! tracing_subscriber::registry()
//!     .with(fasten::sys::layer())
//!     // .with(tracing_subscriber::fmt::layer())   // your own output, unchanged
//!     .init();
//! tracing::info!(order = 42, "order placed"); // a sys row with the request's id
//! # Ok::<(), fasten::Error>(())
//! ```
//!
//! Each row holds the level, target, message, the innermost span's name,
//! the event's other fields (redacted like audit detail: a `password` field
//! never reaches a row), service, node and timestamp. The request id is the
//! innermost fasten scope's, else the nearest span's `request_id` field (so
//! the layer also does what `context::SpanLayer`
//! does). Events below `FASTEN_SYS_LEVEL` (default `INFO`) are skipped.

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::context;
use crate::pipeline::{Fasten, WeakFasten};
#[doc(no_inline)]
pub use crate::stream::SysRow;

/// The sys stream's layer; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct SysLayer {
    /// `None`: whatever pipeline [`crate::init`] installed, looked up per
    /// event. A layer of one pipeline holds it weakly, so a subscriber that
    /// outlives the pipeline never keeps its writer alive.
    pipeline: Option<WeakFasten>,
}

/// The layer for the process-wide pipeline. Events before [`crate::init`]
/// or after its guard is dropped are not recorded.
pub fn layer() -> SysLayer {
    SysLayer { pipeline: None }
}

impl Fasten {
    /// A sys layer that writes into this pipeline rather than the global one.
    pub fn sys_layer(&self) -> SysLayer {
        SysLayer {
            pipeline: Some(self.downgrade()),
        }
    }
}

impl SysLayer {
    fn pipeline(&self) -> Option<Fasten> {
        match &self.pipeline {
            Some(weak) => weak.upgrade(),
            None => crate::global::current(),
        }
    }
}

/// Collects an event's fields as JSON, the message apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    map: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.map.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: keep them as text, never fail the event.
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl<S> Layer<S> for SysLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        context::remember_span_id(&|v| attrs.record(v), id, &ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        context::remember_span_id(&|v| values.record(v), id, &ctx);
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if crate::quiet::active() {
            return;
        }
        let meta = event.metadata();
        let Some(fasten) = self.pipeline() else {
            return;
        };
        if !fasten.sys_enabled(meta.level()) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // A `log` record bridged by tracing-log arrives with target "log"
        // and its real target, module and place as `log.*` fields.
        let target = match fields.map.remove("log.target") {
            Some(Value::String(real)) => real,
            _ => meta.target().to_owned(),
        };
        fields.map.retain(|k, _| !k.starts_with("log."));
        let request_id = context::scoped()
            .or_else(|| context::from_span_scope(ctx.event_scope(event)))
            .or_else(context::otel_request_id)
            .or_else(context::process_default);
        let trace = context::trace();
        let span = ctx
            .event_scope(event)
            .and_then(|mut scope| scope.next())
            .map(|s| s.name().to_owned());
        fasten.push_sys(crate::pipeline::SysEvent {
            level: meta.level().as_str(),
            target: target.into(),
            message: fields.message.unwrap_or_default(),
            fields: fields.map,
            span,
            request_id,
            trace,
        });
    }
}
