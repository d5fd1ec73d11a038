//! The sys and api streams: application log rows and HTTP access rows that
//! carry the same `request_id` as the audit rows of a request.
//!
//! Unlike audit rows, stream rows are **not** hash-chained and never
//! presented as tamper-evident, and a stream sheds load rather than block
//! the request path. Each stream is a [`Lane`]:
//!
//! - a ring buffer in memory (`FASTEN_SYS_RING_SIZE`,
//!   `FASTEN_API_RING_SIZE`), always current, for the reader;
//! - a bounded queue to one background thread that writes JSON lines to
//!   stdout (`FASTEN_STDOUT`) and, when `FASTEN_SYS_DSN` / `FASTEN_API_DSN`
//!   is set, inserts batches into a table (`sys_log`, `api_log`).
//!
//! Pushing a row costs a mutex-guarded ring insert and a non-blocking
//! channel send. When the queue is full the row is counted as dropped (it
//! is still in the ring), and the thread writes one explicit
//! `"N rows dropped"` row into the stream as soon as it catches up.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dsn::Dsn;
use crate::error::{Error, ErrorKind, Result};
use crate::request_id::RequestId;
use crate::store::stream::{self as table, Col, ColType, StreamStore};

/// Rows written to a stream store in one transaction, at most.
const BATCH: usize = 1024;

/// One application log event (the sys stream), made by the
/// [`tracing` layer](crate::sys::SysLayer).
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
pub(crate) trait Record:
    Keyed + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static
{
    /// `sys` or `api`: the `stream` field of a stdout line.
    const STREAM: &'static str;
    /// The table's columns; their names are the row's field names.
    const COLUMNS: &'static [Col];
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

impl Record for SysRow {
    type Stored = PackedSys;
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

impl Record for ApiRow {
    type Stored = Self;
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

/// A stream's counters, from [`Fasten::sys_stats`](crate::Fasten::sys_stats) and
/// [`Fasten::api_stats`](crate::Fasten::api_stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Rows in the ring now.
    pub ring_len: usize,
    /// The ring's size (`FASTEN_SYS_RING_SIZE` / `FASTEN_API_RING_SIZE`).
    pub ring_capacity: usize,
    /// Rows pushed into the stream since start.
    pub pushed: u64,
    /// Rows waiting for the writer thread.
    pub queue_depth: usize,
    /// Rows handed to stdout and the store.
    pub written: u64,
    /// Rows shed because the writer could not keep up (each shed run is
    /// reported by a `dropped` row in the stream).
    pub dropped: u64,
    /// Rows the store refused (after one reconnect).
    pub failed: u64,
    /// The store's last error, if it ever failed.
    pub last_error: Option<String>,
    /// `sqlite` or `postgres` when the stream has a store.
    pub store: Option<&'static str>,
}

/// Takes a copy of each row a lane is pushed (OTLP export); must not
/// block.
pub(crate) type RowCopy<S> = Arc<dyn Fn(&Arc<S>) + Send + Sync>;

/// The copies each stream's rows go to, besides the lane.
#[derive(Default)]
pub(crate) struct Copies {
    pub(crate) sys: Option<RowCopy<PackedSys>>,
    pub(crate) api: Option<RowCopy<ApiRow>>,
}

/// Both streams of a pipeline.
#[derive(Debug)]
pub(crate) struct Streams {
    pub(crate) origin: Origin,
    pub(crate) sys: Lane<SysRow>,
    pub(crate) api: Lane<ApiRow>,
    pub(crate) sys_level: tracing::Level,
    skip_paths: Vec<String>,
}

impl Streams {
    pub(crate) fn start(config: &crate::Config, origin: Origin, copies: Copies) -> Result<Self> {
        let lane = |ring, stdout, dsn: &Option<Dsn>, dsn_var| LaneSettings {
            ring,
            queue: config.stream_queue_capacity,
            stdout,
            dsn: dsn.clone(),
            dsn_var,
        };
        Ok(Self {
            sys: Lane::start(
                lane(
                    config.sys_ring_size,
                    config.stdout.sys,
                    &config.sys_dsn,
                    crate::env::FASTEN_SYS_DSN,
                ),
                origin.clone(),
                copies.sys,
            )?,
            api: Lane::start(
                lane(
                    config.api_ring_size,
                    config.stdout.api,
                    &config.api_dsn,
                    crate::env::FASTEN_API_DSN,
                ),
                origin.clone(),
                copies.api,
            )?,
            origin,
            sys_level: config.sys_level,
            skip_paths: config.api_skip_paths.clone(),
        })
    }

    /// Whether `path` gets no api row: an exact entry, or a prefix entry
    /// ending in `*`.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn skips(&self, path: &str) -> bool {
        self.skip_paths.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => p == path,
        })
    }

    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        self.sys.flush(timeout)?;
        self.api.flush(timeout.saturating_sub(start.elapsed()))
    }
}

/// Which stream rows to read: newest first, filtered, one page at a time.
///
/// ```
/// use fasten::{RequestId, StreamQuery};
/// let q = StreamQuery::new(50).request_id(RequestId::parse("req-1")?).level("ERROR");
/// # Ok::<(), fasten::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct StreamQuery {
    request_id: Option<RequestId>,
    since: Option<String>,
    until: Option<String>,
    eq: Vec<(&'static str, Value)>,
    before: Option<(String, String)>,
    limit: usize,
}

impl StreamQuery {
    /// At most `limit` rows (at least one).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            ..Self::default()
        }
    }

    /// Only rows of this request.
    pub fn request_id(mut self, id: RequestId) -> Self {
        self.request_id = Some(id);
        self
    }

    /// Only rows at or after `t`.
    pub fn since(mut self, t: jiff::Timestamp) -> Self {
        self.since = Some(crate::event::format_timestamp(t));
        self
    }

    /// Only rows before `t`.
    pub fn until(mut self, t: jiff::Timestamp) -> Self {
        self.until = Some(crate::event::format_timestamp(t));
        self
    }

    /// Sys rows of this level (`ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`).
    pub fn level(self, level: &str) -> Self {
        self.eq("level", level.to_ascii_uppercase().into())
    }

    /// Api rows of this HTTP method.
    pub fn method(self, method: &str) -> Self {
        self.eq("method", method.to_ascii_uppercase().into())
    }

    /// Api rows of this route template.
    pub fn route(self, route: &str) -> Self {
        self.eq("route", route.into())
    }

    /// Api rows with this status.
    pub fn status(self, status: u16) -> Self {
        self.eq("status", status.into())
    }

    /// A query from `name=value` parameters, as the HTTP reader's `/sys` and
    /// `/api` and `fasten tail` take them: `request_id`, `since`, `until`,
    /// `limit` (default `default_limit`), `cursor`, and `level` for `sys`,
    /// `method`, `route` and `status` for `api`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`] naming the parameter (or `query` for an
    /// unknown or repeated one).
    pub fn from_params(
        stream: &str,
        params: &[(&str, &str)],
        default_limit: usize,
    ) -> Result<Self> {
        let extra: &[&str] = match stream {
            "sys" => &["level"],
            "api" => &["method", "route", "status"],
            other => {
                return Err(Error::invalid(
                    "stream",
                    format!("unknown stream {other:?}: expected sys or api"),
                ));
            }
        };
        crate::read::check_params(params, &["request_id"], extra)?;
        let limit = match params.iter().find(|(k, _)| *k == "limit") {
            Some((_, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=crate::read::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::invalid(
                        "limit",
                        format!(
                            "invalid limit {v:?}: expected a whole number from 1 to {}",
                            crate::read::MAX_LIMIT
                        ),
                    )
                })?,
            None => default_limit,
        };
        let mut q = Self::new(limit);
        for &(name, value) in params {
            let bad = |field: &'static str, rule: &str| {
                Error::invalid(field, format!("invalid {field} {value:?}: expected {rule}"))
            };
            let printable =
                !value.is_empty() && value.len() <= 1024 && !value.chars().any(char::is_control);
            q = match name {
                "limit" => q,
                "request_id" => q.request_id(RequestId::parse(value)?),
                "since" => q.since(crate::read::parse_time("since", value)?),
                "until" => q.until(crate::read::parse_time("until", value)?),
                "cursor" => q.cursor(value)?,
                "level" => match value.to_ascii_uppercase().as_str() {
                    l @ ("TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR") => q.level(l),
                    _ => return Err(bad("level", "trace, debug, info, warn or error")),
                },
                "method"
                    if !value.is_empty()
                        && value.len() <= 16
                        && value.bytes().all(|b| b.is_ascii_alphabetic()) =>
                {
                    q.method(value)
                }
                "method" => return Err(bad("method", "an HTTP method such as GET")),
                "route" if printable => q.route(value),
                "route" => {
                    return Err(bad(
                        "route",
                        "1 to 1024 printable characters, e.g. /users/{id}",
                    ));
                }
                "status" => match value.parse::<u16>() {
                    Ok(s) if s <= 999 => q.status(s),
                    _ => return Err(bad("status", "a number from 0 to 999")),
                },
                _ => q,
            };
        }
        Ok(q)
    }

    /// Continues after the last row of a previous page (its
    /// [`StreamPage::next`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`] with field `cursor` when the text is not
    /// a cursor this crate made.
    pub fn cursor(mut self, cursor: &str) -> Result<Self> {
        self.before = Some(decode_cursor(cursor)?);
        Ok(self)
    }

    /// Confines the query to one tenant's rows, replacing any tenant filter.
    pub fn tenant_scope(mut self, tenant: &str) -> Self {
        self.eq.retain(|(c, _)| *c != "tenant_id");
        self.eq("tenant_id", tenant.into())
    }

    fn eq(mut self, col: &'static str, v: Value) -> Self {
        self.eq.push((col, v));
        self
    }

    fn table_query(&self) -> table::Query {
        let mut eq = self.eq.clone();
        if let Some(id) = &self.request_id {
            eq.push(("request_id", id.as_str().into()));
        }
        table::Query {
            eq,
            since: self.since.clone(),
            until: self.until.clone(),
            before: self.before.clone(),
            limit: self.limit,
        }
    }

    /// The same filter on a row in memory.
    fn matches<T: Record>(&self, row: &T::Stored) -> bool {
        let ts = row.timestamp();
        if self.request_id.is_some() && row.request_id() != self.request_id.as_ref() {
            return false;
        }
        if self.since.as_deref().is_some_and(|s| ts < s)
            || self.until.as_deref().is_some_and(|u| ts >= u)
        {
            return false;
        }
        if let Some((bts, bid)) = &self.before
            && (ts, row.id()) >= (bts.as_str(), bid.as_str())
        {
            return false;
        }
        if self.eq.is_empty() {
            return true;
        }
        let Ok(Value::Object(v)) = serde_json::to_value(T::unpack(row)) else {
            return false;
        };
        self.eq.iter().all(|(k, want)| v.get(*k) == Some(want))
    }
}

/// Where a page of stream rows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Source {
    /// The stream's table (`FASTEN_SYS_DSN` / `FASTEN_API_DSN`).
    Store,
    /// The in-memory ring: the stream has no store.
    Ring,
    /// Neither: a reader without the stream's table or a pipeline.
    Unavailable,
}

/// One page of stream rows, newest first.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamPage<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// Where they came from.
    pub source: Source,
    /// Pass to [`StreamQuery::cursor`] for the next page; `None` on the last.
    pub next: Option<String>,
}

impl<T> StreamPage<T> {
    pub(crate) fn empty() -> Self {
        Self {
            rows: Vec::new(),
            source: Source::Unavailable,
            next: None,
        }
    }
}

pub(crate) fn encode_cursor(ts: &str, id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{ts}|{id}"))
}

pub(crate) fn decode_cursor(c: &str) -> Result<(String, String)> {
    use base64::Engine as _;
    let bad = || {
        Error::invalid(
            "cursor",
            "invalid cursor: pass the `next` value of a previous page unchanged",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (ts, id) = text.split_once('|').ok_or_else(bad)?;
    // Only the contract's fixed-width form: it sorts as text, which keyset
    // paging in SQLite relies on.
    if ts.len() != 27
        || !ts.ends_with('Z')
        || ts.parse::<jiff::Timestamp>().is_err()
        || id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad());
    }
    Ok((ts.to_owned(), id.to_owned()))
}

/// Reads a stream's table over one kept connection.
pub(crate) struct TableReader<T> {
    dsn: Dsn,
    conn: crate::store::Cached<dyn StreamStore>,
    _rows: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for TableReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("dsn", &self.dsn)
            .finish_non_exhaustive()
    }
}

impl<T: Record> TableReader<T> {
    pub(crate) fn new(dsn: Dsn) -> Self {
        Self {
            dsn,
            conn: crate::store::Cached::default(),
            _rows: std::marker::PhantomData,
        }
    }

    pub(crate) fn read(&self, q: &StreamQuery) -> Result<StreamPage<T>> {
        let rows = self.conn.with(
            || table::open::<T>(&self.dsn),
            |store| table::read::<T>(store, &q.table_query()),
        )?;
        Ok(page(rows, Source::Store, q.limit))
    }
}

/// A page with the cursor of its last row when it is full.
fn page<T: Keyed>(rows: Vec<T>, source: Source, limit: usize) -> StreamPage<T> {
    let next = (rows.len() >= limit)
        .then(|| rows.last().map(|r| encode_cursor(r.timestamp(), r.id())))
        .flatten();
    StreamPage { rows, source, next }
}

/// How a lane starts.
#[derive(Debug, Clone)]
pub(crate) struct LaneSettings {
    pub(crate) ring: usize,
    pub(crate) queue: usize,
    pub(crate) stdout: bool,
    pub(crate) dsn: Option<Dsn>,
    pub(crate) dsn_var: &'static str,
}

/// The most bytes one ring holds (by an estimate of
/// each row's heap size): rows past it evict the oldest, as rows past the
/// ring's row count do. Each field is capped at [`MAX_FIELD_BYTES`] and a
/// sys row's fields at `FASTEN_MAX_DETAIL_BYTES`, so without this a ring
/// of 10,000 large rows could hold hundreds of MiB.
pub const MAX_RING_BYTES: usize = 32 * 1024 * 1024;

/// The newest rows, oldest first; pushes past the capacity (rows or
/// bytes) evict the oldest.
#[derive(Debug)]
struct Ring<T> {
    rows: Mutex<RingRows<T>>,
    capacity: usize,
    max_bytes: usize,
}

#[derive(Debug)]
struct RingRows<T> {
    rows: VecDeque<(Arc<T>, usize)>,
    bytes: usize,
}

impl<T> Ring<T> {
    fn new(capacity: usize) -> Self {
        Self::with_max_bytes(capacity, MAX_RING_BYTES)
    }

    fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        // Allocate up front (bounded by the capacity, itself bounded at
        // config time), so pushes never reallocate on the request path.
        Self {
            rows: Mutex::new(RingRows {
                rows: VecDeque::with_capacity(capacity),
                bytes: 0,
            }),
            capacity,
            max_bytes,
        }
    }

    /// Keeps `row`, which weighs `bytes`, evicting the oldest rows until
    /// both the row count and the bytes fit.
    fn push(&self, row: Arc<T>, bytes: usize) {
        if self.capacity == 0 || bytes > self.max_bytes {
            return;
        }
        let mut ring = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        while ring.rows.len() >= self.capacity || ring.bytes + bytes > self.max_bytes {
            match ring.rows.pop_front() {
                Some((_, b)) => ring.bytes -= b,
                None => break,
            }
        }
        ring.bytes += bytes;
        ring.rows.push_back((row, bytes));
    }

    fn len(&self) -> usize {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rows
            .len()
    }

    /// Up to `limit` rows, newest first, that `keep` accepts.
    fn newest(&self, limit: usize, mut keep: impl FnMut(&T) -> bool) -> Vec<Arc<T>> {
        let ring = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        ring.rows
            .iter()
            .rev()
            .map(|(r, _)| r)
            .filter(|r| keep(r))
            .take(limit)
            .cloned()
            .collect()
    }
}

enum Msg<T> {
    Row(Arc<T>),
    Flush(Sender<()>),
}

#[derive(Debug, Default)]
struct Counters {
    pushed: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    /// Dropped since the last `dropped` row was written.
    unreported: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// One stream: ring, queue and writer thread.
pub(crate) struct Lane<T: Record> {
    ring: Ring<T::Stored>,
    tx: Option<Sender<Msg<T::Stored>>>,
    counters: Arc<Counters>,
    store_kind: Option<&'static str>,
    /// The stream's table, for reads.
    table: Option<TableReader<T>>,
    /// Where a copy of each row goes (OTLP export).
    copy: Option<RowCopy<T::Stored>>,
}

impl<T: Record> std::fmt::Debug for Lane<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("stream", &T::STREAM)
            .field("ring_capacity", &self.ring.capacity)
            .field("store", &self.store_kind)
            .finish_non_exhaustive()
    }
}

impl<T: Record> Lane<T> {
    /// Opens the stream's store now, so a bad DSN or an unreachable server
    /// fails `init` rather than the first request.
    pub(crate) fn start(
        settings: LaneSettings,
        origin: Origin,
        copy: Option<RowCopy<T::Stored>>,
    ) -> Result<Self> {
        let store = match &settings.dsn {
            Some(dsn) => Some(table::open::<T>(dsn).map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    format!(
                        "cannot open the {} stream store {dsn} ({})",
                        T::STREAM,
                        settings.dsn_var
                    ),
                )
                .with_source(e)
            })?),
            None => None,
        };
        let store_kind = store.as_ref().map(|s| s.kind());
        let counters = Arc::new(Counters::default());
        // Without stdout or a store there is nothing to write: no thread,
        // and pushes only touch the ring.
        let tx = if settings.stdout || store.is_some() {
            let (tx, rx) = crossbeam_channel::bounded(settings.queue.max(1));
            let worker = Worker::<T> {
                rx,
                counters: Arc::clone(&counters),
                stdout: settings.stdout,
                store,
                dsn: settings.dsn.clone(),
                origin,
                line: Vec::with_capacity(512),
            };
            // Detached: it ends when the lane (its only sender) is dropped,
            // after writing what is still queued.
            std::thread::Builder::new()
                .name(format!("fasten-{}", T::STREAM))
                .spawn(move || {
                    crate::quiet::mark_thread();
                    worker.run();
                })
                .map_err(|e| {
                    Error::new(ErrorKind::Store, "cannot start a stream writer").with_source(e)
                })?;
            Some(tx)
        } else {
            None
        };
        Ok(Self {
            ring: Ring::new(settings.ring),
            tx,
            counters,
            store_kind,
            table: settings.dsn.map(TableReader::new),
            copy,
        })
    }

    /// Never blocks on the writer: a full queue sheds the row (counted).
    pub(crate) fn push(&self, row: T) {
        let row = Arc::new(row.pack());
        self.counters.pushed.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = &self.tx {
            match tx.try_send(Msg::Row(Arc::clone(&row))) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    self.counters.unreported.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(copy) = &self.copy {
            copy(&row);
        }
        let bytes = T::weight(&row);
        self.ring.push(row, bytes);
    }

    /// A page from the store when the stream has one, else from the ring.
    pub(crate) fn read(&self, q: &StreamQuery) -> Result<StreamPage<T>> {
        match &self.table {
            Some(table) => table.read(q),
            None => Ok(page(
                self.ring
                    .newest(q.limit, |r| q.matches::<T>(r))
                    .into_iter()
                    .map(|r| T::unpack(&r))
                    .collect(),
                Source::Ring,
                q.limit,
            )),
        }
    }

    /// Waits until every row pushed before the call is written.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (ack, done) = crossbeam_channel::bounded(1);
        let timed_out = || {
            Error::new(
                ErrorKind::Timeout,
                format!("the {} stream did not drain within {timeout:?}", T::STREAM),
            )
        };
        // `Duration::MAX` means wait for ever; it does not fit an Instant.
        match Instant::now().checked_add(timeout) {
            Some(deadline) => {
                tx.send_deadline(Msg::Flush(ack), deadline)
                    .map_err(|_| timed_out())?;
                done.recv_deadline(deadline).map_err(|_| timed_out())
            }
            None => {
                tx.send(Msg::Flush(ack)).map_err(|_| timed_out())?;
                done.recv().map_err(|_| timed_out())
            }
        }
    }

    /// The stream's table, when it has one.
    pub(crate) fn table_dsn(&self) -> Option<&Dsn> {
        self.table.as_ref().map(|t| &t.dsn)
    }

    pub(crate) fn stats(&self) -> StreamStats {
        let c = &self.counters;
        StreamStats {
            ring_len: self.ring.len(),
            ring_capacity: self.ring.capacity,
            pushed: c.pushed.load(Ordering::Relaxed),
            queue_depth: self.tx.as_ref().map_or(0, Sender::len),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            store: self.store_kind,
        }
    }
}

struct Worker<T: Record> {
    rx: Receiver<Msg<T::Stored>>,
    counters: Arc<Counters>,
    stdout: bool,
    store: Option<Box<dyn StreamStore>>,
    dsn: Option<Dsn>,
    origin: Origin,
    line: Vec<u8>,
}

impl<T: Record> Worker<T> {
    fn run(mut self) {
        let mut batch: Vec<Arc<T::Stored>> = Vec::with_capacity(BATCH);
        let mut acks: Vec<Sender<()>> = Vec::new();
        loop {
            // Block for the first message, then take what else is there. The
            // timeout bounds how late a `dropped` row is when shedding
            // happened and then the stream went quiet.
            let first = match self.rx.recv_timeout(Duration::from_millis(250)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut next = first;
            while let Some(msg) = next {
                match msg {
                    Msg::Row(r) => batch.push(r),
                    Msg::Flush(ack) => acks.push(ack),
                }
                next = if batch.len() < BATCH {
                    self.rx.try_recv().ok()
                } else {
                    None
                };
            }
            let shed = self.counters.unreported.swap(0, Ordering::Relaxed);
            if shed > 0 {
                batch.push(Arc::new(T::dropped(shed, &self.origin).pack()));
            }
            if !batch.is_empty() {
                self.write(&batch);
                batch.clear();
            }
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
        }
        if !batch.is_empty() {
            self.write(&batch);
        }
    }

    fn write(&mut self, batch: &[Arc<T::Stored>]) {
        let batch: Vec<T> = batch.iter().map(|r| T::unpack(r)).collect();
        if self.stdout {
            self.line.clear();
            for row in &batch {
                write_line(&mut self.line, T::STREAM, row);
            }
            // A closed stdout (a daemon, a pipe whose reader left) must not
            // stop the store; there is nowhere to report it but the counter.
            let _ = std::io::stdout().lock().write_all(&self.line);
        }
        let n = batch.len() as u64;
        if self.store.is_none() {
            self.counters.written.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let values: Vec<Value> = batch
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        let mut result = self.insert(&values);
        if result.is_err() {
            // One reconnect: a restarted server or a dropped connection.
            self.store = self.dsn.as_ref().and_then(|d| table::open::<T>(d).ok());
            result = self.insert(&values);
        }
        match result {
            Ok(()) => {
                self.counters.written.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.failed.fetch_add(n, Ordering::Relaxed);
                let first = self
                    .counters
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .replace(e.to_string())
                    .is_none();
                if first {
                    tracing::warn!(target: "fasten::stream", stream = T::STREAM, error = %e, rows = n, "stream store failed; rows shed (counted in stream_stats().failed)");
                }
            }
        }
    }

    fn insert(&mut self, values: &[Value]) -> Result<()> {
        match self.store.as_mut() {
            Some(store) => store.insert(values),
            None => Err(Error::new(ErrorKind::Store, "stream store unavailable")),
        }
    }
}

/// One JSON object and a newline, with `"stream"` first.
pub(crate) fn write_line<T: Serialize>(out: &mut Vec<u8>, stream: &str, row: &T) {
    out.extend_from_slice(b"{\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",");
    let start = out.len();
    if serde_json::to_writer(&mut *out, row).is_err() || out.get(start) != Some(&b'{') {
        out.truncate(start - 1);
        out.extend_from_slice(b"}\n");
        return;
    }
    // Splice the row's object after our `"stream":…,` prefix.
    out.remove(start);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            service_id: "svc".into(),
            node_id: "n1".into(),
            tenant_id: None,
        }
    }

    #[test]
    fn ring_keeps_the_newest() {
        let ring = Ring::new(3);
        for i in 0..5 {
            ring.push(Arc::new(i), 1);
        }
        let got: Vec<i32> = ring.newest(10, |_| true).iter().map(|v| **v).collect();
        assert_eq!(got, vec![4, 3, 2]);
        assert_eq!(ring.newest(1, |v| *v < 4).len(), 1);
        let off = Ring::new(0);
        off.push(Arc::new(1), 1);
        assert_eq!(off.len(), 0);
    }

    #[test]
    fn ring_bytes_bound_as_well_as_rows() {
        // 1,000 rows allowed, 100 bytes: rows of 30 bytes keep three.
        let ring = Ring::with_max_bytes(1000, 100);
        for i in 0..10 {
            ring.push(Arc::new(i), 30);
        }
        let got: Vec<i32> = ring.newest(10, |_| true).iter().map(|v| **v).collect();
        assert_eq!(got, vec![9, 8, 7]);
        // A row larger than the whole bound is not kept (nor evicts others).
        ring.push(Arc::new(99), 101);
        assert_eq!(ring.len(), 3);
        // The real rows weigh what they hold: 10,000 api rows of 4 KiB
        // paths stay under the bound.
        let ring = Ring::new(10_000);
        let row = api_row_with_path(&"p".repeat(MAX_FIELD_BYTES));
        let weight = ApiRow::weight(&row);
        assert!(weight > MAX_FIELD_BYTES);
        let row = Arc::new(row);
        for _ in 0..10_000 {
            ring.push(Arc::clone(&row), weight);
        }
        assert!(ring.len() * weight <= MAX_RING_BYTES);
        assert_eq!(ring.len(), MAX_RING_BYTES / weight);
    }

    fn api_row_with_path(path: &str) -> ApiRow {
        let mut row = ApiRow::dropped(0, &origin());
        row.path = path.to_owned();
        row
    }

    #[test]
    fn stdout_lines_are_one_object_with_the_stream_first() {
        let mut out = Vec::new();
        write_line(&mut out, "sys", &SysRow::dropped(3, &origin()));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"stream\":\"sys\",\"id\":"), "{text}");
        assert!(text.ends_with("}\n"));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["dropped"], 3);
        assert_eq!(v["level"], "WARN");
    }

    #[test]
    fn a_full_queue_sheds_and_reports_the_count() {
        // A queue of one that nobody drains: the first row fits, the rest shed.
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let lane = Lane::<SysRow> {
            ring: Ring::new(10),
            tx: Some(tx),
            counters: Arc::default(),
            store_kind: None,
            table: None,
            copy: None,
        };
        for _ in 0..4 {
            lane.push(SysRow::dropped(0, &origin()));
        }
        let stats = lane.stats();
        assert_eq!((stats.pushed, stats.dropped, stats.ring_len), (4, 3, 4));
    }
}
