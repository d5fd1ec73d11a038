//! The mountable HTTP reader: JSON over GET, an axum router a service nests
//! wherever it likes, over the query facade ([`crate::query`]).
//!
//! ```no_run
//! use fasten::http_reader::{self, Auth, Options};
//! let guard = fasten::init()?;
//! let logs = http_reader::router(
//!     fasten::Reader::from_pipeline(guard.fasten()),
//!     Options::new(Auth::from_env()?), // FASTEN_READER_TOKENS
//! );
//! let app: axum::Router = axum::Router::new().nest("/api/v1/logs", logs);
//! # Ok::<(), fasten::Error>(())
//! ```
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /audit` | audit rows, newest first: `request_id`, `code`, `domain`, `actor`, `actor_kind`, `target`, `outcome`, `severity`, `source_node_id`, `tenant_id`, `since`, `until` (RFC 3339), `limit` (1–1000, default 100), `cursor` |
//! | `GET /sys` | sys rows: `request_id`, `level`, `since`, `until`, `limit`, `cursor`; says `source`: `store` or `ring` |
//! | `GET /api` | api rows: `request_id`, `method`, `route`, `status`, `since`, `until`, `limit`, `cursor` |
//! | `GET /correlate?request_id=` | the audit, api and sys rows of one request, in time order |
//! | `GET /audit/verify` | the chain verdict per node (as `fasten verify --json`) |
//! | `GET /audit/doctor` | store kind and reachability, newest rows of each chain checked, queue and ring counters |
//! | `GET /audit/proof?id=` | an inclusion proof of one row against the newest checkpoint covering it |
//! | `GET /audit/summary` | rows counted and a numeric detail field summed per group: `sum` (`detail.cost_usd`), `by` (`actor`, `code` … or `detail.model`), the `/audit` filters, `since`, `until`, `limit` (groups, 1–1000, default 100); see [`crate::summary`] |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of these endpoints |
//!
//! **Auth is not optional**: [`Options::new`] takes an [`Auth`] — bearer
//! tokens (kept as SHA-256 digests, compared in constant time, several at
//! once so they can rotate), your own tower auth layer around the router
//! ([`Auth::delegated`]), or the loudly named [`Auth::allow_unauthenticated`].
//! A [`tenant scope`](Options::tenant_scope) confines every endpoint to the
//! caller's tenant whatever the query says. A parameter the endpoint does
//! not know, or a value that breaks its rule, is a 400 naming it; nothing is
//! silently ignored.
//!
//! **Limits.** Reads share a few store connections
//! ([`READER_CONNECTIONS`](crate::query::READER_CONNECTIONS)), so a long
//! verification never queues a page behind it; a page stops at
//! [`MAX_PAGE_BYTES`](crate::query::MAX_PAGE_BYTES) as well as `limit` rows;
//! a page or correlation that takes longer than [`QUERY_TIMEOUT`] is a 503;
//! at most [`EXPENSIVE_CONCURRENCY`] verifications, proofs and doctor checks
//! run at once, more are a 429 with `Retry-After`. Every response carries
//! `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`. A failed
//! authentication is logged as a sys row (never the token). Header and body
//! read timeouts belong to the server you mount the router in (`fasten
//! serve` sets them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

#[cfg(feature = "postgres")]
mod ingest;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use ingest::Ingest;

/// The largest shipped batch `POST /ingest` reads.
#[cfg(feature = "postgres")]
const MAX_INGEST_BYTES: usize = 64 << 20;

use crate::env::FASTEN_READER_TOKENS;
use crate::error::{Error, ErrorKind};
use crate::event::Event;
use crate::kind::ActorKind;
use crate::pipeline::Fasten;
use crate::query::{AuditQuery, Reader};
use crate::request_id::RequestId;
use crate::stream::StreamQuery;

/// The shortest token accepted: guessing must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;
/// Rows a page holds when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// How long a page, correlation or row lookup may take before the caller
/// gets a 503 (the read itself finishes on its own thread).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a verification, proof or doctor check may take before a 503.
pub const EXPENSIVE_TIMEOUT: Duration = Duration::from_secs(600);
/// Verifications, proofs and doctor checks running at once; more are
/// answered 429 with `Retry-After`.
pub const EXPENSIVE_CONCURRENCY: usize = 2;

/// The code of the audit row written per read when
/// [`Options::audit_reads`] is on.
pub const READER_QUERY: &str = "READER_QUERY";

/// Who may read. There is no default: building a router takes one.
#[derive(Clone)]
pub struct Auth(AuthKind);

#[derive(Clone)]
enum AuthKind {
    Tokens(Arc<Vec<[u8; 32]>>),
    Delegated,
    Open,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            AuthKind::Tokens(t) => write!(f, "Auth::BearerTokens({} tokens)", t.len()),
            AuthKind::Delegated => f.write_str("Auth::Delegated"),
            AuthKind::Open => f.write_str("Auth::AllowUnauthenticated"),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// `Authorization: Bearer <token>` with any of `tokens`. Only their
    /// SHA-256 digests are kept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming `FASTEN_READER_TOKENS` when there is no
    /// token or one is shorter than [`MIN_TOKEN_LEN`] or not printable ASCII.
    pub fn bearer_tokens<I, T>(tokens: I) -> crate::Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut digests = Vec::new();
        for (i, t) in tokens.into_iter().enumerate() {
            let t = t.as_ref().trim();
            if t.len() < MIN_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::config(
                    FASTEN_READER_TOKENS,
                    format!(
                        "invalid {FASTEN_READER_TOKENS}: token {} must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces (e.g. from `openssl rand -hex 32`)",
                        i + 1
                    ),
                ));
            }
            digests.push(digest(t));
        }
        if digests.is_empty() {
            return Err(Error::config(
                FASTEN_READER_TOKENS,
                format!(
                    "missing {FASTEN_READER_TOKENS}: give at least one bearer token, comma-separated for rotation"
                ),
            ));
        }
        Ok(Self(AuthKind::Tokens(Arc::new(digests))))
    }

    /// The tokens in `FASTEN_READER_TOKENS` (comma-separated).
    ///
    /// # Errors
    ///
    /// As [`Auth::bearer_tokens`], also when the variable is not set.
    pub fn from_env() -> crate::Result<Self> {
        let raw = std::env::var(FASTEN_READER_TOKENS).unwrap_or_default();
        Self::bearer_tokens(raw.split(',').filter(|t| !t.trim().is_empty()))
    }

    /// Your own tower auth layer wraps the router and has already decided;
    /// the router checks nothing itself.
    pub fn delegated() -> Self {
        Self(AuthKind::Delegated)
    }

    /// Anyone who can reach the router may read everything it serves. Only
    /// for a loopback-only operator tool or a test.
    pub fn allow_unauthenticated() -> Self {
        Self(AuthKind::Open)
    }
}

type TenantHook = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// How the router behaves. See the [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct Options {
    auth: Auth,
    tenant: Option<Arc<TenantHook>>,
    audit_reads: Option<Fasten>,
    #[cfg(feature = "postgres")]
    ingest: Option<Ingest>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("auth", &self.auth)
            .field("tenant_scope", &self.tenant.is_some())
            .field("audit_reads", &self.audit_reads.is_some())
            .finish()
    }
}

impl Options {
    /// The one required choice: who may read.
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            tenant: None,
            audit_reads: None,
            #[cfg(feature = "postgres")]
            ingest: None,
        }
    }

    /// Takes edges' shipped batches at `POST /ingest` into the reader's
    /// audit store (PostgreSQL), verified on arrival, authenticated by the
    /// ingest tokens (not the reader's): see [`crate::ship`].
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn ingest(mut self, ingest: Ingest) -> Self {
        self.ingest = Some(ingest);
        self
    }

    /// Confines every endpoint to the tenant `hook` names for the request
    /// (after auth; e.g. from a header your gateway sets or a claim your
    /// auth layer put in the extensions). `None` refuses the request (403).
    /// A caller with a tenant scope cannot read other tenants' rows with
    /// any parameter, and the operator endpoints (`/audit/verify`,
    /// `/audit/doctor`) are refused to it.
    pub fn tenant_scope(
        mut self,
        hook: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.tenant = Some(Arc::new(hook));
        self
    }

    /// Writes a chained `READER_QUERY` audit row per successful read into
    /// `fasten` (endpoint, parameters, rows returned, and which token).
    pub fn audit_reads(mut self, fasten: Fasten) -> Self {
        let _ = fasten.registry().register(
            "audit",
            [(READER_QUERY, crate::code::Meta::new("audit_log", "read"))],
        );
        self.audit_reads = Some(fasten);
        self
    }
}

struct Shared {
    reader: Reader,
    options: Options,
    /// Expensive calls running now.
    expensive: AtomicUsize,
}

/// One of the [`EXPENSIVE_CONCURRENCY`] places, given back on drop.
struct Permit(Arc<Shared>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.expensive.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// A place for an expensive call, or a 429 when all are taken.
    fn expensive(self: &Arc<Self>) -> Result<Permit, Problem> {
        let taken = self.expensive.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(Arc::clone(self));
        if taken >= EXPENSIVE_CONCURRENCY {
            drop(permit);
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{EXPENSIVE_CONCURRENCY} verifications, proofs or doctor checks are running already; retry later"
                ),
            ));
        }
        Ok(permit)
    }

    /// Logs a failed authentication as a sys row (what failed and where,
    /// never the token), on the pipeline the reader or its audit rows use.
    fn auth_failed(&self, parts: &Parts, why: &str) {
        let fasten = self
            .options
            .audit_reads
            .as_ref()
            .or_else(|| self.reader.pipeline());
        let path = parts.uri.path();
        match fasten {
            Some(f) => {
                if let Ok(line) = crate::record::LogLine::new(
                    "warn",
                    format!("fasten reader: authentication failed: {why}"),
                ) {
                    f.log(
                        line.target("fasten::http_reader")
                            .field("path", crate::stream::cap_field(path.to_owned())),
                    );
                }
            }
            None => {
                tracing::warn!(target: "fasten::http_reader", path, "authentication failed: {why}");
            }
        }
    }
}

/// The reader's routes, to `nest` under a prefix of your choice.
pub fn router<S>(reader: Reader, options: Options) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let shared = Arc::new(Shared {
        reader,
        options,
        expensive: AtomicUsize::new(0),
    });
    let router = axum::Router::new()
        .route("/audit", get(audit))
        .route("/sys", get(sys))
        .route("/api", get(api))
        .route("/correlate", get(correlate))
        .route("/audit/verify", get(verify))
        .route("/audit/doctor", get(doctor))
        .route("/audit/proof", get(proof))
        .route("/audit/summary", get(summary))
        .route("/openapi.json", get(openapi));
    #[cfg(feature = "postgres")]
    let router = router
        .route(
            "/ingest",
            axum::routing::post(ingest::ingest)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_INGEST_BYTES)),
        )
        .route("/fleet", get(ingest::fleet));
    router
        .layer(axum::middleware::map_response(security_headers))
        .with_state(shared)
}

/// Reader answers hold audit data: never cached, never sniffed.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The OpenAPI 3.1 document the router serves.
pub fn openapi_document() -> Value {
    serde_json::from_str(include_str!("openapi.json")).expect("the bundled document is JSON")
}

/// A reader error as JSON: `{"error", "parameter"?}`.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    message: String,
    parameter: Option<&'static str>,
}

impl Problem {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            parameter: None,
        }
    }

    fn param(parameter: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            parameter: Some(parameter),
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        #[cfg(feature = "postgres")]
        if let Some(p) = ingest::fleet_problem(&e) {
            return p;
        }
        match e.kind() {
            ErrorKind::InvalidEvent { field } => Self::param(field, e.to_string()),
            ErrorKind::Store => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store cannot be read: {e}"),
            ),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(p) = self.parameter {
            body["parameter"] = p.into();
        }
        let mut res = (self.status, Json(body)).into_response();
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fasten\""),
            );
        }
        res
    }
}

/// The authorised caller of one request.
struct Caller {
    /// Set when a tenant scope applies.
    tenant: Option<String>,
    /// `token:<8 hex>` for bearer tokens, for `READER_QUERY` rows.
    who: String,
}

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let who = match &shared.options.auth.0 {
            AuthKind::Open => "anonymous".to_owned(),
            AuthKind::Delegated => "delegated".to_owned(),
            AuthKind::Tokens(digests) => {
                // The scheme is case-insensitive (RFC 9110 §11.1).
                let presented = parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim_start().split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .ok_or_else(|| {
                        shared.auth_failed(parts, "no bearer token");
                        Problem::new(
                            StatusCode::UNAUTHORIZED,
                            "missing bearer token: send Authorization: Bearer <token>",
                        )
                    })?;
                let d = digest(presented);
                // Compare with every token, so timing says nothing of which
                // (or whether one) matched.
                let matched = digests
                    .iter()
                    .fold(subtle::Choice::from(0), |acc, t| acc | t.ct_eq(&d));
                if !bool::from(matched) {
                    shared.auth_failed(parts, "invalid bearer token");
                    return Err(Problem::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid bearer token",
                    ));
                }
                format!("token:{}", hex::encode(&d[..4]))
            }
        };
        let tenant =
            match &shared.options.tenant {
                Some(hook) => Some(hook(parts).ok_or_else(|| {
                    Problem::new(StatusCode::FORBIDDEN, "no tenant for this caller")
                })?),
                None => None,
            };
        Ok(Self { tenant, who })
    }
}

/// The query string as pairs. With `known`, every name must be one of
/// them, once (the page endpoints leave that to the library's parsers).
fn params(
    raw: Option<&str>,
    known: Option<&[&'static str]>,
) -> Result<Vec<(&'static str, String)>, Problem> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Problem::param("query", format!("malformed query string: {e}")))?;
    let mut out: Vec<(&'static str, String)> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        // Names become 'static for the READER_QUERY row; unknown ones are
        // refused below or by the parsers, so leaking is never needed.
        let name: &'static str = match known {
            Some(known) => {
                let Some(&k) = known.iter().find(|k| **k == name) else {
                    return Err(Problem::param(
                        "query",
                        format!(
                            "unknown parameter {name:?}: expected one of {}",
                            known.join(", ")
                        ),
                    ));
                };
                if out.iter().any(|(n, _)| *n == k) {
                    return Err(Problem::param(
                        k,
                        format!("parameter {name} is given twice"),
                    ));
                }
                k
            }
            None => {
                let mut names = crate::query::AUDIT_FILTERS.iter().chain(&PAGE_NAMES);
                match names.find(|k| **k == name) {
                    Some(&k) => k,
                    None => {
                        return Err(Problem::param(
                            "query",
                            format!("unknown parameter {name:?}"),
                        ));
                    }
                }
            }
        };
        out.push((name, value));
    }
    Ok(out)
}

/// The names a page endpoint takes besides the audit filters; each
/// endpoint's parser narrows the set.
const PAGE_NAMES: [&str; 8] = [
    "level", "method", "route", "status", "since", "until", "limit", "cursor",
];

fn request_id(text: &str) -> Result<RequestId, Problem> {
    RequestId::parse(text).map_err(|e| Problem::param("request_id", e.to_string()))
}

impl Shared {
    /// The `READER_QUERY` row, when reads are audited. A failure to write it
    /// fails the read: an audited read that leaves no trace is no audit.
    fn record(
        &self,
        caller: &Caller,
        endpoint: &str,
        query: &[(&'static str, String)],
        rows: usize,
    ) -> Result<(), Problem> {
        let Some(fasten) = &self.options.audit_reads else {
            return Ok(());
        };
        let params: serde_json::Map<String, Value> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str())))
            .collect();
        let mut event = Event::new(READER_QUERY)
            .actor(caller.who.clone(), ActorKind::Service)
            .target(endpoint.to_owned())
            .detail(json!({ "params": params, "rows": rows }));
        if let Some(t) = &caller.tenant {
            event = event.tenant(t.clone());
        }
        fasten.emit(event).map(|_| ()).map_err(Problem::from)
    }
}

/// The pairs as `&str`, for the library's parsers.
fn borrowed<'a>(query: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    query.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn audit(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    let query = params(raw.as_deref(), None)?;
    let mut q = AuditQuery::from_params(&borrowed(&query), DEFAULT_LIMIT)?;
    if let Some(t) = &caller.tenant {
        q = q.tenant_scope(t);
    }
    let page = read(&shared, move |r| r.audit(&q)).await?;
    shared.record(&caller, "/audit", &query, page.rows.len())?;
    Ok(Json(body(&page)?))
}

/// A response body as JSON; a value that cannot be encoded is a 500, never
/// a silent `null`.
fn body<T: serde::Serialize>(value: &T) -> Result<Value, Problem> {
    serde_json::to_value(value)
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn sys(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    stream_page(&shared, &caller, raw.as_deref(), "sys", Reader::sys).await
}

async fn api(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    stream_page(&shared, &caller, raw.as_deref(), "api", Reader::api).await
}

/// `/sys` and `/api`: one page of a stream, confined to the caller's tenant.
async fn stream_page<T: serde::Serialize + Send + 'static>(
    shared: &Arc<Shared>,
    caller: &Caller,
    raw: Option<&str>,
    stream: &'static str,
    page_of: fn(&Reader, &StreamQuery) -> crate::Result<crate::stream::StreamPage<T>>,
) -> Result<Json<Value>, Problem> {
    let query = params(raw, None)?;
    let mut q = StreamQuery::from_params(stream, &borrowed(&query), DEFAULT_LIMIT)?;
    if let Some(t) = &caller.tenant {
        q = q.tenant_scope(t);
    }
    let page = read(shared, move |r| page_of(r, &q)).await?;
    let endpoint = if stream == "sys" { "/sys" } else { "/api" };
    shared.record(caller, endpoint, &query, page.rows.len())?;
    Ok(Json(
        json!({ "rows": page.rows, "next": page.next, "source": page.source }),
    ))
}

async fn correlate(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    let query = params(raw.as_deref(), Some(&["request_id"]))?;
    let id = match query.first() {
        Some((_, v)) => request_id(v)?,
        None => return Err(Problem::param("request_id", "missing request_id")),
    };
    let tenant = caller.tenant.clone();
    let timeline = read(&shared, move |r| r.correlate_scoped(&id, tenant.as_deref())).await?;
    shared.record(&caller, "/correlate", &query, timeline.entries.len())?;
    Ok(Json(body(&timeline)?))
}

async fn summary(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    let known: Vec<&'static str> = crate::query::AUDIT_FILTERS
        .iter()
        .chain(&crate::summary::SUMMARY_PARAMS)
        .copied()
        .collect();
    let query = params(raw.as_deref(), Some(&known))?;
    let mut q = crate::summary::SummaryQuery::from_params(&borrowed(&query))?;
    if let Some(t) = &caller.tenant {
        q = q.tenant_scope(t);
    }
    let summary = read(&shared, move |r| r.summary(&q)).await?;
    shared.record(&caller, "/audit/summary", &query, summary.groups.len())?;
    Ok(Json(body(&summary)?))
}

fn operator_only(caller: &Caller) -> Result<(), Problem> {
    match caller.tenant {
        Some(_) => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "an operator endpoint: not available to tenant-scoped callers",
        )),
        None => Ok(()),
    }
}

async fn verify(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    let query = params(raw.as_deref(), Some(&[]))?;
    operator_only(&caller)?;
    let _permit = shared.expensive()?;
    let report = read_within(&shared, EXPENSIVE_TIMEOUT, Reader::verify).await?;
    shared.record(&caller, "/audit/verify", &query, 0)?;
    Ok(Json(body(&report)?))
}

async fn doctor(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    let query = params(raw.as_deref(), Some(&[]))?;
    operator_only(&caller)?;
    let _permit = shared.expensive()?;
    let health = read_within(&shared, EXPENSIVE_TIMEOUT, |r| Ok(r.health())).await?;
    let mut body = body(&health)?;
    if let Some(f) = shared.reader.pipeline() {
        let s = f.queue_stats();
        body["queue"] = json!({
            "depth": s.depth, "capacity": s.capacity, "high_water": s.high_water,
            "enqueued": s.enqueued, "written": s.written, "retries": s.retries,
            "queue_full": s.queue_full, "failed": s.failed,
            "last_error": s.last_error, "store_health": format!("{:?}", s.store_health),
        });
        let ring = |st: crate::stream::StreamStats| {
            json!({
                "ring_len": st.ring_len, "ring_capacity": st.ring_capacity,
                "queue_depth": st.queue_depth, "written": st.written,
                "dropped": st.dropped, "failed": st.failed, "store": st.store,
            })
        };
        body["sys"] = ring(f.sys_stats());
        body["api"] = ring(f.api_stats());
    }
    body["ok"] =
        (health.reachable && health.chains.iter().all(|c| c.first_break_seq.is_none())).into();
    shared.record(&caller, "/audit/doctor", &query, 0)?;
    Ok(Json(body))
}

async fn proof(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    let query = params(raw.as_deref(), Some(&["id"]))?;
    let Some((_, id)) = query.first().cloned() else {
        return Err(Problem::param(
            "id",
            "missing id: the row's id, e.g. evt-0000000000000000002a",
        ));
    };
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Problem::param(
            "id",
            format!("invalid id {id:?}: expected a row id such as evt-0000000000000000002a"),
        ));
    }
    let _permit = shared.expensive()?;
    let not_found = || Problem::new(StatusCode::NOT_FOUND, format!("no row {id}"));
    let id2 = id.clone();
    let row = read(&shared, move |r| r.audit_row(&id2))
        .await?
        .ok_or_else(not_found)?;
    if caller.tenant.is_some() && row.tenant_id != caller.tenant {
        return Err(not_found());
    }
    let dsn = shared.reader.audit_dsn().clone();
    let id2 = id.clone();
    let proof = blocking(EXPENSIVE_TIMEOUT, move || {
        crate::transparency::prove_row(&dsn, &id2)
    })
    .await
    .map_err(|p| match p.status {
        StatusCode::INTERNAL_SERVER_ERROR => Problem::new(StatusCode::CONFLICT, p.message),
        _ => p,
    })?;
    shared.record(&caller, "/audit/proof", &query, 1)?;
    Ok(Json(body(&proof)?))
}

async fn openapi(caller: Caller) -> Result<Json<Value>, Problem> {
    let _ = caller;
    Ok(Json(openapi_document()))
}

/// Runs a read on its own thread: store clients block (PostgreSQL's drives
/// a runtime of its own, which must not run inside the server's).
async fn read<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Reader) -> crate::Result<T> + Send + 'static,
) -> Result<T, Problem> {
    read_within(shared, QUERY_TIMEOUT, f).await
}

/// [`read`] with its own time limit.
async fn read_within<T: Send + 'static>(
    shared: &Arc<Shared>,
    timeout: Duration,
    f: impl FnOnce(&Reader) -> crate::Result<T> + Send + 'static,
) -> Result<T, Problem> {
    let shared = Arc::clone(shared);
    blocking(timeout, move || f(&shared.reader)).await
}

/// Runs blocking work on its own thread and awaits it without tying the
/// reader to one async runtime; past `timeout` the caller gets a 503 (the
/// work cannot be cancelled, and finishes on its own).
async fn blocking<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, Problem> {
    let (tx, rx) = futures_channel::oneshot::channel::<()>();
    let deadline = Deadline::start(timeout, tx);
    let work = crate::offload::run("reader", f);
    let mut work = std::pin::pin!(work);
    let mut expired = rx;
    let out = std::future::poll_fn(|cx| {
        use std::future::Future as _;
        if let std::task::Poll::Ready(out) = work.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        match std::pin::Pin::new(&mut expired).poll(cx) {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(None),
            _ => std::task::Poll::Pending,
        }
    })
    .await;
    drop(deadline);
    match out {
        Some(out) => out.map_err(Problem::from),
        None => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the read took longer than {} s; try a narrower query",
                timeout.as_secs()
            ),
        )),
    }
}

/// A request's deadline on the one watchdog thread of the process: when it
/// passes, the request's channel fires. Dropping it (the read finished
/// first) takes it off the watch.
struct Deadline(Arc<Mutex<Option<futures_channel::oneshot::Sender<()>>>>);

impl Deadline {
    fn start(timeout: Duration, tx: futures_channel::oneshot::Sender<()>) -> Self {
        let slot = Arc::new(Mutex::new(Some(tx)));
        let at = Instant::now() + timeout;
        let _ = watchdog().send((at, Arc::downgrade(&slot)));
        Self(slot)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

type Watched = (
    Instant,
    std::sync::Weak<Mutex<Option<futures_channel::oneshot::Sender<()>>>>,
);

/// The watchdog: one thread, deadlines in a heap, so timeouts cost no
/// thread (and no timer of any one async runtime) per request.
fn watchdog() -> &'static crossbeam_channel::Sender<Watched> {
    static WATCHDOG: std::sync::OnceLock<crossbeam_channel::Sender<Watched>> =
        std::sync::OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded::<Watched>();
        let spawned = std::thread::Builder::new()
            .name("fasten-reader-deadlines".into())
            .spawn(move || {
                let mut heap = std::collections::BinaryHeap::new();
                let mut seq = 0u64;
                let mut slots = std::collections::HashMap::new();
                loop {
                    let next = heap
                        .peek()
                        .map(|std::cmp::Reverse((at, _)): &std::cmp::Reverse<(Instant, u64)>| *at);
                    let got = match next {
                        Some(at) => rx.recv_deadline(at),
                        None => rx.recv().map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
                    };
                    match got {
                        Ok((at, slot)) => {
                            seq += 1;
                            heap.push(std::cmp::Reverse((at, seq)));
                            slots.insert(seq, slot);
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                    }
                    let now = Instant::now();
                    while let Some(std::cmp::Reverse((at, id))) = heap.peek().copied() {
                        if at > now {
                            break;
                        }
                        heap.pop();
                        let slot: Option<std::sync::Weak<Mutex<Option<futures_channel::oneshot::Sender<()>>>>> = slots.remove(&id);
                        if let Some(tx) = slot
                            .and_then(|w| w.upgrade())
                            .and_then(|s| s.lock().unwrap_or_else(PoisonError::into_inner).take())
                        {
                            let _ = tx.send(());
                        }
                    }
                }
            });
        if spawned.is_err() {
            tracing::error!(target: "fasten::http_reader", "cannot start the reader's deadline thread: reads run without a time limit");
        }
        tx
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        let dir = std::env::temp_dir().join("fasten-reader-unit.db");
        Arc::new(Shared {
            reader: Reader::new(
                crate::Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", dir.display()))
                    .unwrap(),
            ),
            options: Options::new(Auth::allow_unauthenticated()),
            expensive: AtomicUsize::new(0),
        })
    }

    #[test]
    fn expensive_calls_beyond_the_limit_are_429_until_one_ends() {
        let s = shared();
        let held: Vec<Permit> = (0..EXPENSIVE_CONCURRENCY)
            .map(|_| s.expensive().unwrap())
            .collect();
        let refused = s.expensive().err().unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        let res = refused.into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        drop(held);
        assert!(s.expensive().is_ok());
        assert_eq!(s.expensive.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_read_past_its_time_is_a_503_at_once() {
        // The read never finishes until the test lets it go: an answer at
        // all shows the 503 did not wait for it (no wall-clock assertion;
        // the outer timeout only guards against a hang).
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let err = tokio::time::timeout(
            Duration::from_secs(60),
            blocking(Duration::from_millis(100), move || {
                let _ = hold.recv();
                Ok(())
            }),
        )
        .await
        .expect("the 503 came without waiting for the read")
        .unwrap_err();
        drop(release);
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        // A read inside its time is answered as usual.
        assert_eq!(blocking(Duration::from_secs(5), || Ok(7)).await.unwrap(), 7);
    }
}
