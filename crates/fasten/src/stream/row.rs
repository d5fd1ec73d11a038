//! The rows of the sys and api streams ([`SysRow`], [`ApiRow`]) and how they are stored.

use super::*;

/// One application log event (the sys stream), made by the
/// `tracing` layer (`fasten::sys::SysLayer`, with the `tracing` feature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SysRow {
    /// 32 hex characters, unique.
    pub id: String,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC.
    pub timestamp: String,
    /// The emitting service.
    pub service_id: Arc<str>,
    /// The node.
    pub source_node_id: Arc<str>,
    /// The pipeline's default tenant.
    pub tenant_id: Option<Arc<str>>,
    /// The ambient request id, when the event happened inside a request.
    pub request_id: Option<RequestId>,
    /// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`.
    pub level: String,
    /// The event's target (its module path unless set).
    pub target: String,
    /// The event's message.
    pub message: String,
    /// The innermost span's name, if any.
    pub span: Option<String>,
    /// The event's other fields, redacted like audit detail.
    pub fields: Map<String, Value>,
    /// On the row the stream writes after shedding load: how many rows it
    /// could not write.
    pub dropped: Option<u64>,
    /// The W3C trace id (32 hex) of the active OpenTelemetry span, else of
    /// the request's fasten scope; see [`crate::context::trace`].
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The span id (16 hex) beside [`trace_id`](Self::trace_id).
    #[serde(default)]
    pub span_id: Option<String>,
}

/// One HTTP request (the api stream), made by
/// `fasten::http::ApiLogLayer` (feature `http`) after the response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiRow {
    /// 32 hex characters, unique.
    pub id: String,
    /// When the request arrived, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC.
    pub timestamp: String,
    /// The serving service.
    pub service_id: Arc<str>,
    /// The node.
    pub source_node_id: Arc<str>,
    /// The pipeline's default tenant.
    pub tenant_id: Option<Arc<str>>,
    /// The request's id, shared by every row it caused.
    pub request_id: RequestId,
    /// `GET`, `POST` …
    pub method: String,
    /// The route template where the router knows it (`/users/{id}`),
    /// else the path.
    pub route: String,
    /// The path as requested, without the query string.
    pub path: String,
    /// The response status; 499 when the client went away before the
    /// response, 0 when the service failed without one.
    pub status: u16,
    /// From the request to the response head, in milliseconds.
    pub duration_ms: f64,
    /// Set by the handler with `fasten::http::set_actor`.
    pub actor: Option<String>,
    /// Set by the handler with `fasten::http::set_target`.
    pub target: Option<String>,
    /// The request body's length, when its `Content-Length` says.
    pub bytes_in: Option<u64>,
    /// The response body's length, when known without reading it.
    pub bytes_out: Option<u64>,
    /// On the row the stream writes after shedding load: how many rows it
    /// could not write.
    pub dropped: Option<u64>,
    /// The request's W3C trace id (32 hex): the active OpenTelemetry
    /// span's, else the inbound `traceparent`'s, else derived from the
    /// request id. It differs from the request id when an `X-Request-ID`
    /// and a `traceparent` disagree (the request id wins; the trace is kept
    /// here).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The span id (16 hex) beside [`trace_id`](Self::trace_id): the
    /// active span's, else the caller's parent span from `traceparent`,
    /// else the one fasten made for the request.
    #[serde(default)]
    pub span_id: Option<String>,
}

/// The most bytes a stream row keeps of one text field (a path, a route,
/// a message, an actor): rows are held in memory rings and written as JSON
/// lines, so one hostile request must not cost megabytes. Longer text is
/// cut at a character boundary and marked with `…`.
pub const MAX_FIELD_BYTES: usize = 4096;

/// `text`, cut to [`MAX_FIELD_BYTES`].
pub(crate) fn cap_field(mut text: String) -> String {
    if text.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A 32-hex unique row id.
pub(crate) fn row_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Where a pipeline's stream rows come from: the identity stamped on each.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) service_id: Arc<str>,
    pub(crate) node_id: Arc<str>,
    pub(crate) tenant_id: Option<Arc<str>>,
}

/// What a stream row type tells its lane and its table.
pub(crate) trait Record: Table + Keyed + Serialize + Send + Sync + 'static {
    /// How the ring and the queue hold a row: as small as is cheap.
    type Stored: Keyed + Send + Sync + 'static;
    /// The row a lane writes after dropping `n` rows.
    fn dropped(n: u64, origin: &Origin) -> Self;
    fn pack(self) -> Self::Stored;
    fn unpack(stored: &Self::Stored) -> Self;
    /// An estimate of the heap bytes `stored` holds, for the ring's byte
    /// bound: its text, plus a fixed amount for the rest.
    fn weight(stored: &Self::Stored) -> usize;
}

/// What ring filters and cursors read without unpacking a row.
pub(crate) trait Keyed {
    fn request_id(&self) -> Option<&RequestId>;
    fn timestamp(&self) -> &str;
    fn id(&self) -> &str;
}

/// A sys row in the ring: its fields as JSON text. A field map costs a
/// B-tree node (over 600 bytes) however few fields it has; the text costs
/// what it says, which keeps 10,000 rows well under 8 MiB.
#[derive(Debug)]
pub(crate) struct PackedSys {
    /// The row with an empty (unallocated) field map.
    row: SysRow,
    fields: Box<str>,
}

impl Keyed for PackedSys {
    fn request_id(&self) -> Option<&RequestId> {
        self.row.request_id()
    }

    fn timestamp(&self) -> &str {
        self.row.timestamp()
    }

    fn id(&self) -> &str {
        self.row.id()
    }
}

impl Keyed for SysRow {
    fn request_id(&self) -> Option<&RequestId> {
        self.request_id.as_ref()
    }

    fn timestamp(&self) -> &str {
        &self.timestamp
    }

    fn id(&self) -> &str {
        &self.id
    }
}

impl Table for SysRow {
    const STREAM: &'static str = "sys";
    const COLUMNS: &'static [Col] = &[
        Col::new("id", ColType::Key),
        Col::new("timestamp", ColType::Time),
        Col::new("service_id", ColType::Text),
        Col::new("source_node_id", ColType::Text),
        Col::new("tenant_id", ColType::NullText),
        Col::new("request_id", ColType::NullText),
        Col::new("level", ColType::Text),
        Col::new("target", ColType::Text),
        Col::new("message", ColType::Text),
        Col::new("span", ColType::NullText),
        Col::new("fields", ColType::Json),
        Col::new("dropped", ColType::NullInt),
        Col::new("trace_id", ColType::NullText),
        Col::new("span_id", ColType::NullText),
    ];
}

impl Record for SysRow {
    type Stored = PackedSys;

    fn dropped(n: u64, origin: &Origin) -> Self {
        Self {
            id: row_id(),
            timestamp: crate::event::format_timestamp(jiff::Timestamp::now()),
            service_id: Arc::clone(&origin.service_id),
            source_node_id: Arc::clone(&origin.node_id),
            tenant_id: origin.tenant_id.clone(),
            request_id: None,
            level: "WARN".to_owned(),
            target: "fasten::stream".to_owned(),
            message: format!("{n} sys rows dropped: the sys stream's writer could not keep up"),
            span: None,
            fields: Map::new(),
            dropped: Some(n),
            trace_id: None,
            span_id: None,
        }
    }

    fn pack(mut self) -> PackedSys {
        let fields = std::mem::take(&mut self.fields);
        let text = if fields.is_empty() {
            String::new()
        } else {
            Value::Object(fields).to_string()
        };
        PackedSys {
            row: self,
            fields: text.into_boxed_str(),
        }
    }

    fn weight(stored: &PackedSys) -> usize {
        let r = &stored.row;
        256 + r.id.len()
            + r.timestamp.len()
            + r.level.len()
            + r.target.len()
            + r.message.len()
            + r.span.as_ref().map_or(0, String::len)
            + stored.fields.len()
            + r.trace_id.as_ref().map_or(0, String::len)
            + r.span_id.as_ref().map_or(0, String::len)
    }

    fn unpack(stored: &PackedSys) -> Self {
        let mut row = stored.row.clone();
        if !stored.fields.is_empty()
            && let Ok(Value::Object(map)) = crate::canonical::parse_strict(&stored.fields)
        {
            row.fields = map;
        }
        row
    }
}

impl Table for ApiRow {
    const STREAM: &'static str = "api";
    const COLUMNS: &'static [Col] = &[
        Col::new("id", ColType::Key),
        Col::new("timestamp", ColType::Time),
        Col::new("service_id", ColType::Text),
        Col::new("source_node_id", ColType::Text),
        Col::new("tenant_id", ColType::NullText),
        Col::new("request_id", ColType::Text),
        Col::new("method", ColType::Text),
        Col::new("route", ColType::Text),
        Col::new("path", ColType::Text),
        Col::new("status", ColType::Int),
        Col::new("duration_ms", ColType::Float),
        Col::new("actor", ColType::NullText),
        Col::new("target", ColType::NullText),
        Col::new("bytes_in", ColType::NullInt),
        Col::new("bytes_out", ColType::NullInt),
        Col::new("dropped", ColType::NullInt),
        Col::new("trace_id", ColType::NullText),
        Col::new("span_id", ColType::NullText),
    ];
}

impl Record for ApiRow {
    type Stored = Self;

    fn dropped(n: u64, origin: &Origin) -> Self {
        Self {
            id: row_id(),
            timestamp: crate::event::format_timestamp(jiff::Timestamp::now()),
            service_id: Arc::clone(&origin.service_id),
            source_node_id: Arc::clone(&origin.node_id),
            tenant_id: origin.tenant_id.clone(),
            // The marker belongs to no request; a fresh id keeps the column's
            // rule (always an id) without joining it to one.
            request_id: RequestId::mint(),
            method: "-".to_owned(),
            route: "fasten:dropped".to_owned(),
            path: "-".to_owned(),
            status: 0,
            duration_ms: 0.0,
            actor: None,
            target: None,
            bytes_in: None,
            bytes_out: None,
            dropped: Some(n),
            trace_id: None,
            span_id: None,
        }
    }

    fn pack(self) -> Self {
        self
    }

    fn unpack(stored: &Self) -> Self {
        stored.clone()
    }

    fn weight(r: &Self) -> usize {
        256 + r.id.len()
            + r.timestamp.len()
            + r.method.len()
            + r.route.len()
            + r.path.len()
            + r.actor.as_ref().map_or(0, String::len)
            + r.target.as_ref().map_or(0, String::len)
            + r.trace_id.as_ref().map_or(0, String::len)
            + r.span_id.as_ref().map_or(0, String::len)
    }
}

impl Keyed for ApiRow {
    fn request_id(&self) -> Option<&RequestId> {
        Some(&self.request_id)
    }

    fn timestamp(&self) -> &str {
        &self.timestamp
    }

    fn id(&self) -> &str {
        &self.id
    }
}
