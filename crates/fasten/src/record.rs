//! Stream rows that do not come through `tracing` or fasten's tower layers:
//! a log line from another language's logger, an api row from another
//! language's HTTP server. The language bindings build these; the rules
//! (levels, redaction, the request's tenant, field caps) are the same as for
//! rows made in Rust.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::pipeline::{Fasten, SysEvent};
use crate::request_id::RequestId;
use crate::stream::ApiRow;
pub use crate::stream::{MAX_FIELD_BYTES, MAX_RING_BYTES};

/// One application log line for the sys stream.
///
/// # Examples
///
/// ```
/// use fasten::record::LogLine;
/// let line = LogLine::new("warning", "disk almost full")?
///     .target("app.storage")
///     .field("free_mb", 12);
/// # Ok::<(), fasten::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogLine {
    level: tracing::Level,
    target: String,
    message: String,
    fields: Map<String, Value>,
    request_id: Option<RequestId>,
}

impl LogLine {
    /// A line at `level`: `trace`, `debug`, `info`, `warn` (or `warning`),
    /// `error` (or `critical`, `fatal`), in any case, as the loggers of
    /// other languages name them.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming
    /// `level` for any other level.
    pub fn new(level: &str, message: impl Into<String>) -> Result<Self> {
        let level = match level.to_ascii_lowercase().as_str() {
            "trace" => tracing::Level::TRACE,
            "debug" => tracing::Level::DEBUG,
            "info" => tracing::Level::INFO,
            "warn" | "warning" => tracing::Level::WARN,
            "error" | "critical" | "fatal" => tracing::Level::ERROR,
            _ => {
                return Err(Error::invalid(
                    "level",
                    format!("invalid level {level:?}: expected trace, debug, info, warn or error"),
                ));
            }
        };
        Ok(Self {
            level,
            target: String::new(),
            message: message.into(),
            fields: Map::new(),
            request_id: None,
        })
    }

    /// The logger's name (the module path in Rust); empty by default.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// One structured field; redacted like audit detail.
    #[must_use]
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// Structured fields, replacing any set before.
    #[must_use]
    pub fn fields(mut self, fields: Map<String, Value>) -> Self {
        self.fields = fields;
        self
    }

    /// The request the line belongs to; by default the ambient one.
    #[must_use]
    pub fn request_id(mut self, id: RequestId) -> Self {
        self.request_id = Some(id);
        self
    }
}

/// One served HTTP request for the api stream, from a server fasten's tower
/// layers do not wrap.
#[derive(Debug, Clone)]
pub struct ApiRecord {
    request_id: RequestId,
    method: String,
    route: Option<String>,
    path: String,
    status: u16,
    duration: Duration,
    bytes_in: Option<u64>,
    bytes_out: Option<u64>,
    actor: Option<String>,
    target: Option<String>,
    trace: Option<crate::context::TraceContext>,
}

impl ApiRecord {
    /// A request with its id, method, path (a query string is cut off: it
    /// may carry secrets), response status and how long it took.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming
    /// `method` when it is not an HTTP token, or `status` when it is not
    /// 100-999 (0 stands for "failed without a response").
    pub fn new(
        request_id: RequestId,
        method: &str,
        path: &str,
        status: u16,
        duration: Duration,
    ) -> Result<Self> {
        if method.is_empty()
            || method.len() > 32
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(Error::invalid(
                "method",
                format!("invalid HTTP method {method:?}: expected a token such as GET"),
            ));
        }
        if status != 0 && !(100..=999).contains(&status) {
            return Err(Error::invalid(
                "status",
                format!("invalid status {status}: expected 100-999, or 0 for no response"),
            ));
        }
        let path = path.split(['?', '#']).next().unwrap_or_default();
        Ok(Self {
            request_id,
            method: method.to_ascii_uppercase(),
            route: None,
            path: crate::stream::cap_field(path.to_owned()),
            status,
            duration,
            bytes_in: None,
            bytes_out: None,
            actor: None,
            target: None,
            trace: None,
        })
    }

    /// The W3C trace the request belongs to (the api row's `trace_id` and
    /// `span_id`); by default the context's when the record is for the
    /// ambient request.
    #[must_use]
    pub fn trace(mut self, trace: crate::context::TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The route template (`/users/{id}`), when the framework knows it.
    #[must_use]
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(crate::stream::cap_field(route.into()));
        self
    }

    /// The request body's length.
    #[must_use]
    pub fn bytes_in(mut self, bytes: u64) -> Self {
        self.bytes_in = Some(bytes);
        self
    }

    /// The response body's length.
    #[must_use]
    pub fn bytes_out(mut self, bytes: u64) -> Self {
        self.bytes_out = Some(bytes);
        self
    }

    /// Who made the request.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(crate::stream::cap_field(actor.into()));
        self
    }

    /// Whom or what the request was about.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(crate::stream::cap_field(target.into()));
        self
    }
}

impl Fasten {
    /// Writes a log line to the sys stream, if its level passes
    /// `FASTEN_SYS_LEVEL`; returns whether it was recorded. Never blocks:
    /// under overload the stream sheds rows and counts them.
    pub fn log(&self, line: LogLine) -> bool {
        if !self.sys_enabled(&line.level) {
            return false;
        }
        let ambient = crate::context::current();
        // The context's trace belongs to the line only when the line
        // belongs to the context's request.
        let trace = match &line.request_id {
            Some(id) if ambient.as_ref() != Some(id) => None,
            _ => crate::context::trace(),
        };
        self.push_sys(SysEvent {
            level: line.level.as_str(),
            target: line.target.into(),
            message: line.message,
            fields: line.fields,
            span: None,
            request_id: line.request_id.or(ambient),
            trace,
        });
        true
    }

    /// Writes one api row. Never blocks, like [`Self::log`].
    pub fn record_api(&self, record: ApiRecord) {
        let started = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(record.duration).unwrap_or_default())
            .unwrap_or_else(|_| jiff::Timestamp::now());
        self.record_api_at(record, started);
    }

    /// [`Self::record_api`] for a request that arrived at `started`.
    pub(crate) fn record_api_at(&self, mut record: ApiRecord, started: jiff::Timestamp) {
        if record.trace.is_none() && crate::context::current().as_ref() == Some(&record.request_id)
        {
            record.trace = crate::context::trace();
        }
        // A token in a path segment (`/reset/eyJ…`), an actor or a target
        // goes whole: these rows are not hashed, so redacting is enough.
        for text in [
            Some(&mut record.path),
            record.route.as_mut(),
            record.actor.as_mut(),
            record.target.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(marker) = crate::redact::secret_in(text) {
                marker.clone_into(text);
            }
        }
        let origin = self.origin();
        let row = ApiRow {
            id: crate::stream::row_id(),
            timestamp: crate::event::format_timestamp(started),
            service_id: Arc::clone(&origin.service_id),
            source_node_id: Arc::clone(&origin.node_id),
            tenant_id: crate::context::tenant()
                .map(Arc::from)
                .or_else(|| origin.tenant_id.clone()),
            request_id: record.request_id,
            route: record.route.unwrap_or_else(|| record.path.clone()),
            method: record.method,
            path: record.path,
            status: record.status,
            // Microseconds are what a clock measures here; more digits are
            // float noise.
            duration_ms: (record.duration.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            actor: record.actor,
            target: record.target,
            bytes_in: record.bytes_in,
            bytes_out: record.bytes_out,
            dropped: None,
            trace_id: record.trace.map(|t| t.trace_id()),
            span_id: record.trace.map(|t| t.span_id()),
        };
        self.push_api(row);
    }
}
