//! Reading rows back: audit pages, stream pages, the rows of one request
//! across the three streams, and a health check: the query facade. The HTTP
//! reader (`fasten::http_reader`, feature `http-reader`) and the CLI are thin
//! layers over [`Reader`].
//!
//! ```no_run
//! use fasten::{AuditQuery, Reader, RequestId};
//! let reader = Reader::from_env()?;
//! let page = reader.audit(&AuditQuery::new(100).filter("actor", "alice")?)?;
//! let timeline = reader.correlate(&RequestId::parse("3a7b1c")?)?;
//! # Ok::<(), fasten::Error>(())
//! ```

use serde::Serialize;

use crate::chain::Row;
use crate::dsn::Dsn;
use crate::env::{FASTEN_API_DSN, FASTEN_AUDIT_DSN, FASTEN_AUDIT_DSN_DEFAULT, FASTEN_SYS_DSN};
use crate::error::{Error, Result};
use crate::kind::{ActorKind, Outcome, Severity};
use crate::pipeline::Fasten;
use crate::request_id::RequestId;
use crate::store::stream::Query;
use crate::store::{self, Access, Pool, Store};
use crate::stream::{
    ApiRow, Source, StreamPage, StreamQuery, SysRow, TableReader, decode_cursor, encode_cursor,
};
use crate::verify::{ChainCheck, NodeReport, Report};

use crate::stream::check_params;
pub use crate::stream::{MAX_LIMIT, parse_time};

/// Rows per stream that [`Reader::correlate`] returns at most.
pub const CORRELATE_LIMIT: usize = 1000;
/// Newest rows per node that [`Reader::health`] checks.
pub const HEALTH_CHAIN_ROWS: i64 = 1000;
/// The most bytes of rows one page carries (as compact JSON), besides
/// [`MAX_LIMIT`] rows: a page stops early, with a `next` cursor, once its
/// rows pass it, so a page of large rows cannot take tens of MiB. A single
/// row larger than this still comes, alone.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Connections a [`Reader`] keeps to the audit store: concurrent reads use
/// different ones, so a long verification never holds up a page.
pub const READER_CONNECTIONS: usize = 4;

/// Parameters an audit page may filter on with `=`, by name.
pub const AUDIT_FILTERS: [&str; 10] = [
    "request_id",
    "code",
    "domain",
    "actor",
    "actor_kind",
    "target",
    "outcome",
    "severity",
    "source_node_id",
    "tenant_id",
];

/// Which audit rows to read: newest first (by timestamp, then id, across
/// nodes), filtered, one keyset page at a time.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuditQuery {
    pub(crate) q: Query,
}

fn bad(field: &'static str, message: String) -> Error {
    Error::invalid(field, message)
}

impl AuditQuery {
    /// At most `limit` rows (1 to [`MAX_LIMIT`]; outside that range it is
    /// clamped: use [`AuditQuery::limit`] to have it checked).
    pub fn new(limit: usize) -> Self {
        Self {
            q: Query {
                limit: limit.clamp(1, MAX_LIMIT),
                ..Query::default()
            },
        }
    }

    /// Parses a `limit` parameter: a whole number from 1 to 1000.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) with field
    /// `limit`.
    pub fn limit(self, text: &str) -> Result<Self> {
        let n: usize = text
            .parse()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad(
                    "limit",
                    format!(
                        "invalid limit {text:?}: expected a whole number from 1 to {MAX_LIMIT}"
                    ),
                )
            })?;
        Ok(Self::new(n))
    }

    /// Adds `name = value` for one of [`AUDIT_FILTERS`], checking closed
    /// sets (`actor_kind`, `outcome`, `severity`) and request ids.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming the
    /// parameter when it is unknown or its value breaks its rule.
    pub fn filter(mut self, name: &str, value: &str) -> Result<Self> {
        let Some(&col) = AUDIT_FILTERS.iter().find(|f| **f == name) else {
            return Err(bad(
                "filter",
                format!(
                    "unknown filter {name:?}: expected one of {}",
                    AUDIT_FILTERS.join(", ")
                ),
            ));
        };
        let checked: std::result::Result<(), String> = match col {
            "request_id" => RequestId::parse(value)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "actor_kind" => value
                .parse::<ActorKind>()
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "outcome" => value
                .parse::<Outcome>()
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "severity" => value
                .parse::<Severity>()
                .map(|_| ())
                .map_err(|e| e.to_string()),
            _ if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) => {
                Err("expected 1 to 1024 printable characters".to_owned())
            }
            _ => Ok(()),
        };
        checked.map_err(|why| bad(col, format!("invalid {col} {value:?}: {why}")))?;
        self.q.eq.push((col, value.into()));
        Ok(self)
    }

    /// A query from `name=value` parameters, as the HTTP reader's `/audit`
    /// and `fasten tail` take them: [`AUDIT_FILTERS`], `since`, `until`,
    /// `limit` (default `default_limit`) and `cursor`, each at most once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming the
    /// parameter (or `query` for an unknown or repeated one).
    pub fn from_params(params: &[(&str, &str)], default_limit: usize) -> Result<Self> {
        check_params(params, &AUDIT_FILTERS, &[])?;
        let mut q = match params.iter().find(|(k, _)| *k == "limit") {
            Some((_, v)) => Self::new(default_limit).limit(v)?,
            None => Self::new(default_limit),
        };
        for (name, value) in params {
            q = match *name {
                "limit" => q,
                "since" => q.since(parse_time("since", value)?),
                "until" => q.until(parse_time("until", value)?),
                "cursor" => q.cursor(value)?,
                other => q.filter(other, value)?,
            };
        }
        Ok(q)
    }

    /// Only rows of this request.
    pub fn request_id(mut self, id: &RequestId) -> Self {
        self.q.eq.push(("request_id", id.as_str().into()));
        self
    }

    /// Only rows at or after `t`.
    pub fn since(mut self, t: jiff::Timestamp) -> Self {
        self.q.since = Some(crate::event::format_timestamp(t));
        self
    }

    /// Only rows before `t`.
    pub fn until(mut self, t: jiff::Timestamp) -> Self {
        self.q.until = Some(crate::event::format_timestamp(t));
        self
    }

    /// Continues after the last row of a previous page ([`AuditPage::next`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) with field
    /// `cursor` when the text is not a cursor this crate made.
    pub fn cursor(mut self, cursor: &str) -> Result<Self> {
        self.q.before = Some(decode_cursor(cursor)?);
        Ok(self)
    }

    /// Confines the query to one tenant, replacing any tenant filter.
    pub fn tenant_scope(mut self, tenant: &str) -> Self {
        self.q.eq.retain(|(c, _)| *c != "tenant_id");
        self.q.eq.push(("tenant_id", tenant.into()));
        self
    }
}

/// What to tell a reader of `rows` from `store` when the table is another
/// implementation's: the form-3 columns it lacks, and the forms other than
/// 3 among these rows.
fn foreign_warning(store: &mut dyn Store, rows: &[Row]) -> Option<String> {
    let mut forms: Vec<String> = rows
        .iter()
        .map(|r| r.canonical_form_id.as_str())
        .filter(|f| *f != crate::chain::CANONICAL_FORM_ID)
        .map(str::to_owned)
        .collect();
    forms.sort();
    forms.dedup();
    let foreign = store::Foreign {
        missing: store.missing_columns().to_vec(),
        forms,
        node: None,
    };
    foreign
        .is_foreign()
        .then(|| foreign.message(store.table_name(), store::Intent::Read))
}

/// One page of audit rows, newest first.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AuditPage {
    /// The rows.
    pub rows: Vec<Row>,
    /// Pass to [`AuditQuery::cursor`] for the next page; `None` on the last.
    pub next: Option<String>,
    /// Set when the table was written by another fasten implementation
    /// (it lacks the columns of canonical form 3, or rows of this page are
    /// of form 1 or 2): names the table, what was found and what to do.
    /// The rows are still here, as stored, with the missing columns
    /// absent (empty). Left out of the JSON when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// One row of a request's timeline.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "stream", content = "row", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Entry {
    /// A chained audit row.
    Audit(Box<Row>),
    /// An HTTP request row.
    Api(ApiRow),
    /// An application log row.
    Sys(SysRow),
}

impl Entry {
    /// When it happened, in the contract's text form.
    pub fn timestamp(&self) -> &str {
        match self {
            Self::Audit(r) => &r.timestamp,
            Self::Api(r) => &r.timestamp,
            Self::Sys(r) => &r.timestamp,
        }
    }
}

/// Every row of one request, from the three streams, in time order.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Timeline {
    /// The request.
    pub request_id: RequestId,
    /// Its rows, oldest first.
    pub entries: Vec<Entry>,
    /// Where the sys rows came from.
    pub sys_source: Source,
    /// Where the api rows came from.
    pub api_source: Source,
    /// A stream had more than [`CORRELATE_LIMIT`] rows: the newest are shown.
    pub truncated: bool,
    /// As [`AuditPage::warning`], for the audit rows of the timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// One node's chain, as far as [`Reader::health`] checked it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ChainHealth {
    /// The node.
    pub source_node_id: String,
    /// Rows the node has.
    pub rows: u64,
    /// The newest rows checked ([`HEALTH_CHAIN_ROWS`] at most).
    pub checked: u64,
    /// The first failing seq among them, and why.
    pub first_break_seq: Option<i64>,
    /// Why.
    pub reason: Option<String>,
}

/// The audit store's state: reachable, and its newest rows intact.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// `sqlite` or `postgres`.
    pub store_kind: &'static str,
    /// The DSN with its password masked.
    pub store: String,
    /// Whether the store answered.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
    /// Per node.
    pub chains: Vec<ChainHealth>,
}

/// Where a reader takes sys or api rows from.
#[derive(Debug)]
enum Side<T> {
    /// A running pipeline: its table, else its ring.
    Pipeline(Fasten),
    Table(TableReader<T>),
    Nothing,
}

/// Reads the audit store and the streams. Cheap to share (`Arc`) between
/// request handlers: each store is read over one kept connection.
#[derive(Debug)]
pub struct Reader {
    audit_dsn: Dsn,
    audit: Pool<dyn Store>,
    sys: Side<SysRow>,
    api: Side<ApiRow>,
}

impl Reader {
    /// Reads the audit store `dsn` names; no stream stores until
    /// [`Reader::sys_dsn`] and [`Reader::api_dsn`].
    pub fn new(audit: Dsn) -> Self {
        Self {
            audit_dsn: audit,
            audit: Pool::new(READER_CONNECTIONS),
            sys: Side::Nothing,
            api: Side::Nothing,
        }
    }

    /// `FASTEN_AUDIT_DSN`, `FASTEN_SYS_DSN`, `FASTEN_API_DSN` from the
    /// environment, for a reader without a pipeline (`fasten serve`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming a malformed DSN.
    pub fn from_env() -> Result<Self> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let audit = var(FASTEN_AUDIT_DSN).unwrap_or_else(|| FASTEN_AUDIT_DSN_DEFAULT.to_owned());
        let mut reader = Self::new(Dsn::parse(FASTEN_AUDIT_DSN, audit.trim())?);
        if let Some(v) = var(FASTEN_SYS_DSN) {
            reader = reader.sys_dsn(Dsn::parse_for(FASTEN_SYS_DSN, v.trim(), "sys_log")?);
        }
        if let Some(v) = var(FASTEN_API_DSN) {
            reader = reader.api_dsn(Dsn::parse_for(FASTEN_API_DSN, v.trim(), "api_log")?);
        }
        Ok(reader)
    }

    /// A reader over a running pipeline: its audit store, and its streams'
    /// tables or, without them, its rings.
    pub fn from_pipeline(fasten: &Fasten) -> Self {
        Self {
            sys: Side::Pipeline(fasten.clone()),
            api: Side::Pipeline(fasten.clone()),
            ..Self::new(fasten.dsn().clone())
        }
    }

    /// Reads sys rows from this table.
    #[must_use]
    pub fn sys_dsn(mut self, dsn: Dsn) -> Self {
        self.sys = Side::Table(TableReader::new(dsn));
        self
    }

    /// Reads api rows from this table.
    #[must_use]
    pub fn api_dsn(mut self, dsn: Dsn) -> Self {
        self.api = Side::Table(TableReader::new(dsn));
        self
    }

    /// The pipeline this reader was made from, if any.
    pub fn pipeline(&self) -> Option<&Fasten> {
        match &self.sys {
            Side::Pipeline(f) => Some(f),
            _ => None,
        }
    }

    /// The audit store's DSN.
    pub fn audit_dsn(&self) -> &Dsn {
        &self.audit_dsn
    }

    pub(crate) fn with_audit<R>(
        &self,
        f: impl FnOnce(&mut (dyn Store + 'static)) -> Result<R>,
    ) -> Result<R> {
        self.audit
            .with(|| store::open(&self.audit_dsn, Access::Read), f)
    }

    /// A page of audit rows.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`](crate::ErrorKind::Store) when the store cannot
    /// be read.
    pub fn audit(&self, q: &AuditQuery) -> Result<AuditPage> {
        let (mut rows, warning) = self.with_audit(|s| {
            let rows = s.query(&q.q)?;
            let warning = foreign_warning(s, &rows);
            Ok((rows, warning))
        })?;
        let mut next = (rows.len() >= q.q.limit)
            .then(|| rows.last().map(|r| encode_cursor(&r.timestamp, &r.id)))
            .flatten();
        cap_page(&mut rows, &mut next, |r| (&r.timestamp, &r.id));
        Ok(AuditPage {
            rows,
            next,
            warning,
        })
    }

    /// One audit row by id.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`](crate::ErrorKind::Store) when the store cannot
    /// be read.
    pub fn audit_row(&self, id: &str) -> Result<Option<Row>> {
        self.with_audit(|s| s.get(id))
    }

    /// A page of sys rows.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`](crate::ErrorKind::Store) when the table cannot
    /// be read.
    pub fn sys(&self, q: &StreamQuery) -> Result<StreamPage<SysRow>> {
        let mut page = match &self.sys {
            Side::Pipeline(f) => f.sys_rows(q),
            Side::Table(t) => t.read(q),
            Side::Nothing => Ok(StreamPage::empty()),
        }?;
        cap_page(&mut page.rows, &mut page.next, |r| (&r.timestamp, &r.id));
        Ok(page)
    }

    /// A page of api rows.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`](crate::ErrorKind::Store) when the table cannot
    /// be read.
    pub fn api(&self, q: &StreamQuery) -> Result<StreamPage<ApiRow>> {
        let mut page = match &self.api {
            Side::Pipeline(f) => f.api_rows(q),
            Side::Table(t) => t.read(q),
            Side::Nothing => Ok(StreamPage::empty()),
        }?;
        cap_page(&mut page.rows, &mut page.next, |r| (&r.timestamp, &r.id));
        Ok(page)
    }

    /// Every row of one request across the three streams, oldest first,
    /// optionally confined to one tenant's audit rows.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`](crate::ErrorKind::Store) when a store cannot be
    /// read.
    pub fn correlate(&self, id: &RequestId) -> Result<Timeline> {
        self.correlate_scoped(id, None)
    }

    /// [`Reader::correlate`] for one tenant: audit rows of other tenants are
    /// left out, and stream rows of other tenants too.
    ///
    /// # Errors
    ///
    /// As [`Reader::correlate`].
    pub fn correlate_scoped(&self, id: &RequestId, tenant: Option<&str>) -> Result<Timeline> {
        let mut aq = AuditQuery::new(CORRELATE_LIMIT).request_id(id);
        if let Some(t) = tenant {
            aq = aq.tenant_scope(t);
        }
        let audit = self.audit(&aq)?;
        let sq = StreamQuery::new(CORRELATE_LIMIT).request_id(id.clone());
        let sys = self.sys(&sq)?;
        let api = self.api(&sq)?;
        let truncated =
            [audit.next.is_some(), sys.next.is_some(), api.next.is_some()].contains(&true);
        let in_scope = |row_tenant: Option<&str>| tenant.is_none() || row_tenant == tenant;
        let mut entries: Vec<Entry> = audit
            .rows
            .into_iter()
            .map(|r| Entry::Audit(Box::new(r)))
            .collect();
        entries.extend(
            api.rows
                .into_iter()
                .filter(|r| in_scope(r.tenant_id.as_deref()))
                .map(Entry::Api),
        );
        entries.extend(
            sys.rows
                .into_iter()
                .filter(|r| in_scope(r.tenant_id.as_deref()))
                .map(Entry::Sys),
        );
        entries.sort_by(|a, b| a.timestamp().cmp(b.timestamp()));
        Ok(Timeline {
            request_id: id.clone(),
            entries,
            sys_source: sys.source,
            api_source: api.source,
            truncated,
            warning: audit.warning,
        })
    }

    /// Verifies every chain in full (what `fasten verify --json` prints).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`](crate::ErrorKind::Store) when the store cannot
    /// be read.
    pub fn verify(&self) -> Result<Report> {
        self.with_audit(|s| crate::verify::verify_store(s, |_| {}))
    }

    /// Whether the audit store answers, and each node's newest
    /// [`HEALTH_CHAIN_ROWS`] rows link and hash correctly. Never fails: an
    /// unreachable store is reported as such.
    pub fn health(&self) -> Health {
        let store_kind = self.audit_dsn.backend();
        let chains = self.with_audit(|s| {
            let mut out = Vec::new();
            for node in s.nodes()? {
                let rows = i64::try_from(node.rows).unwrap_or(i64::MAX);
                let after = rows.saturating_sub(HEALTH_CHAIN_ROWS).max(0);
                let mut check = ChainCheck::anchored(node.node.clone(), after == 0);
                s.scan_rows(&node.node, after, &mut |row| {
                    match row {
                        Ok(row) => check.check_ref(&row),
                        Err(bad) => check.unreadable(&bad),
                    }
                    Ok(())
                })?;
                let NodeReport {
                    rows: checked,
                    first_break_seq,
                    reason,
                    ..
                } = check.into_report();
                out.push(ChainHealth {
                    source_node_id: node.node,
                    rows: node.rows,
                    checked,
                    first_break_seq,
                    reason,
                });
            }
            Ok(out)
        });
        let (reachable, error, chains) = match chains {
            Ok(c) => (true, None, c),
            Err(e) => (false, Some(e.to_string()), Vec::new()),
        };
        Health {
            store_kind,
            store: self.audit_dsn.to_string(),
            reachable,
            error,
            chains,
        }
    }
}

/// A [`Reader`] for async code: each read runs on a thread of its own and
/// is awaited, so a handler never stalls its executor on a store (SQLite
/// reads and PostgreSQL round trips block). Works on any async runtime.
/// Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # async fn handler() -> fasten::Result<()> {
/// use fasten::{AsyncReader, AuditQuery, Reader};
/// let reader = AsyncReader::new(Reader::from_env()?);
/// let page = reader.audit(AuditQuery::new(50).filter("actor", "alice")?).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncReader(std::sync::Arc<Reader>);

impl AsyncReader {
    /// Wraps a reader.
    pub fn new(reader: Reader) -> Self {
        Self(std::sync::Arc::new(reader))
    }

    /// Runs any read of [`Reader`] off the executor.
    ///
    /// # Errors
    ///
    /// Those of `f`.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reader = std::sync::Arc::clone(&self.0);
        crate::offload::run("reader", move || f(&reader)).await
    }

    /// [`Reader::audit`].
    ///
    /// # Errors
    ///
    /// As [`Reader::audit`].
    pub async fn audit(&self, q: AuditQuery) -> Result<AuditPage> {
        self.call(move |r| r.audit(&q)).await
    }

    /// [`Reader::audit_row`].
    ///
    /// # Errors
    ///
    /// As [`Reader::audit_row`].
    pub async fn audit_row(&self, id: impl Into<String>) -> Result<Option<Row>> {
        let id = id.into();
        self.call(move |r| r.audit_row(&id)).await
    }

    /// [`Reader::correlate`].
    ///
    /// # Errors
    ///
    /// As [`Reader::correlate`].
    pub async fn correlate(&self, id: RequestId) -> Result<Timeline> {
        self.call(move |r| r.correlate(&id)).await
    }

    /// [`Reader::sys`].
    ///
    /// # Errors
    ///
    /// As [`Reader::sys`].
    pub async fn sys(&self, q: StreamQuery) -> Result<StreamPage<SysRow>> {
        self.call(move |r| r.sys(&q)).await
    }

    /// [`Reader::api`].
    ///
    /// # Errors
    ///
    /// As [`Reader::api`].
    pub async fn api(&self, q: StreamQuery) -> Result<StreamPage<ApiRow>> {
        self.call(move |r| r.api(&q)).await
    }
}

/// Cuts `rows` (newest first) after the row that takes the page past
/// [`MAX_PAGE_BYTES`] of compact JSON, and points `next` after the last row
/// kept. The first row always stays, so paging always moves on.
fn cap_page<T: serde::Serialize>(
    rows: &mut Vec<T>,
    next: &mut Option<String>,
    key: impl Fn(&T) -> (&str, &str),
) {
    let mut bytes = 0usize;
    let cut = rows.iter().position(|row| {
        // A row that cannot be encoded counts as nothing here; the page's
        // own encoding reports it.
        bytes += crate::canonical::json_len(row).unwrap_or(0) + 1;
        bytes > MAX_PAGE_BYTES
    });
    if let Some(at) = cut {
        rows.truncate(at.max(1));
        if let Some(last) = rows.last() {
            let (ts, id) = key(last);
            *next = Some(encode_cursor(ts, id));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_dates_or_ages() {
        let now: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let at = |t| crate::stream::parse_time_at("since", t, now).map(|ts| ts.to_string());
        assert_eq!(at("2026-04-22T12:34:56Z").unwrap(), "2026-04-22T12:34:56Z");
        assert_eq!(at("2026-04-20").unwrap(), "2026-04-20T00:00:00Z");
        assert_eq!(at("15m").unwrap(), "2026-12-01T11:45:00Z");
        assert_eq!(at("24h").unwrap(), "2026-11-30T12:00:00Z");
        assert_eq!(at("7d").unwrap(), "2026-11-24T12:00:00Z");
        assert_eq!(at("2w").unwrap(), "2026-11-17T12:00:00Z");
        for bad in [
            "",
            "7",
            "d",
            "7y",
            "-7d",
            "7 d",
            "2026-13-01",
            "99999999999999999999d",
        ] {
            let err = at(bad).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid since {bad:?}: expected")),
                "{err}"
            );
        }
    }
}
