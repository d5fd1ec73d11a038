//! Reading a stream: [`StreamQuery`], its pages and cursors, from the ring or the table.

use super::*;

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
    pub(super) limit: usize,
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
        check_params(params, &["request_id"], extra)?;
        let limit = match params.iter().find(|(k, _)| *k == "limit") {
            Some((_, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::invalid(
                        "limit",
                        format!(
                            "invalid limit {v:?}: expected a whole number from 1 to {MAX_LIMIT}"
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
                "since" => q.since(parse_time("since", value)?),
                "until" => q.until(parse_time("until", value)?),
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
    pub(super) fn matches<T: Record>(&self, row: &T::Stored) -> bool {
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
    pub(super) dsn: Dsn,
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
        // A table no writer has made yet holds no rows; a reader never
        // makes it.
        let rows = self
            .conn
            .with_existing(
                || table::open_existing::<T>(&self.dsn),
                |store| table::read::<T>(store, &q.table_query()),
            )?
            .unwrap_or_default();
        Ok(page(rows, Source::Store, q.limit))
    }
}

/// A page with the cursor of its last row when it is full.
pub(super) fn page<T: Keyed>(rows: Vec<T>, source: Source, limit: usize) -> StreamPage<T> {
    let next = (rows.len() >= limit)
        .then(|| rows.last().map(|r| encode_cursor(r.timestamp(), r.id())))
        .flatten();
    StreamPage { rows, source, next }
}
