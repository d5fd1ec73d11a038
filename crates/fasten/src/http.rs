//! Request ids over HTTP and the api stream, as tower layers (axum, hyper,
//! tonic: anything built on `tower::Service`).
//!
//! ```no_run
//! # async fn handler() -> &'static str { "ok" }
//! use axum::{routing::get, Router};
//! let _fasten = fasten::init()?;
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(handler))
//!     .layer(fasten::http::layer()); // the request id, then one api row per request
//! # Ok::<(), fasten::Error>(())
//! ```
//!
//! [`layer`] stacks the two layers below in the right order; used
//! separately, their order does not change the id either.
//!
//! [`RequestIdLayer`] takes the request id from an inbound `X-Request-ID`
//! when it is safe (1–128 characters of `[A-Za-z0-9._:-]`; anything else is
//! replaced, never trusted verbatim), else (feature `otel`) the trace id of
//! an active OpenTelemetry span, else the trace-id of a well-formed W3C
//! `traceparent`, else mints one. It makes the id ambient for the handler
//! (so `emit` and the sys layer pick it up; carry it into spawned tasks
//! with [`FutureExt::in_current_context`](crate::context::FutureExt)),
//! stores it in the request's extensions, and echoes it on the response.
//! [`outbound_headers`] / [`inject`] carry it on calls to other services.
//!
//! ## `X-Request-ID` and `traceparent`
//!
//! The request also has a W3C trace ([`TraceContext`]): the active
//! OpenTelemetry span's (feature `otel`), else the inbound `traceparent`'s,
//! else one derived from the request id (the id itself when it is 32 hex,
//! as minted ids are). When both headers arrive and disagree, **the
//! `X-Request-ID` wins as the request id** (it is the caller's correlation
//! key, and may name a request that spans several traces) and **the
//! `traceparent`'s trace is kept** as the request's trace: it is the api
//! and sys rows' `trace_id` and `span_id`, the remote parent of
//! OpenTelemetry spans started inside (feature `otel`), and what the
//! response echoes. The response always carries both headers: the request
//! id in `X-Request-ID` and the request's trace in `traceparent`, and so
//! does every outbound call made with [`inject`] / [`outbound_headers`].
//!
//! [`ApiLogLayer`] pushes one [`ApiRow`] per request once the response head
//! is ready: method, route template (axum's `MatchedPath`, else the path),
//! status, duration, request id, bytes in and out when the `Content-Length`
//! says, and the actor and target a handler sets with [`set_actor`] and
//! [`set_target`]. A request whose client goes away first is recorded with
//! status 499. Paths in `FASTEN_API_SKIP_PATHS` get no row.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::context::{self, TraceContext};
use crate::pipeline::{Fasten, WeakFasten};
use crate::record::ApiRecord;
use crate::request_id::RequestId;
#[doc(no_inline)]
pub use crate::stream::ApiRow;

/// `x-request-id`: the header the id travels in, both ways.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Where an inbound request's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdSource {
    /// A safe `X-Request-ID` header.
    Header,
    /// The trace-id of a valid `traceparent` header.
    Traceparent,
    /// The trace id of the active OpenTelemetry span (feature `otel`).
    Span,
    /// Neither was usable: minted here.
    Minted,
}

/// The request id for an inbound request's headers, and where it came from.
///
/// An `X-Request-ID` that fails [`RequestId::parse`] is ignored, as is a
/// `traceparent` that is not well-formed W3C Trace Context (version `00`
/// exactly 55 characters, lowercase hex, trace-id and parent-id not all
/// zero; version `ff` refused).
///
/// ```
/// use fasten::http::{request_id_from, IdSource};
/// let mut h = http::HeaderMap::new();
/// h.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
/// let (id, source) = request_id_from(&h);
/// assert_eq!((id.as_str(), source), ("4bf92f3577b34da6a3ce929d0e0e4736", IdSource::Traceparent));
/// h.insert("x-request-id", "<script>".parse().unwrap());
/// assert_eq!(request_id_from(&h).1, IdSource::Traceparent);
/// ```
pub fn request_id_from(headers: &HeaderMap) -> (RequestId, IdSource) {
    let (id, source, _) = inbound(headers);
    (id, source)
}

/// The request id, where it came from, and the request's trace (see the
/// [module docs](self#x-request-id-and-traceparent)).
///
/// ```
/// use fasten::http::{inbound, IdSource};
/// let mut h = http::HeaderMap::new();
/// h.insert("x-request-id", "order-7".parse().unwrap());
/// h.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
/// let (id, source, trace) = inbound(&h);
/// assert_eq!((id.as_str(), source), ("order-7", IdSource::Header));
/// assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// ```
pub fn inbound(headers: &HeaderMap) -> (RequestId, IdSource, TraceContext) {
    let header_id = headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| RequestId::parse(v.trim()).ok());
    let active = active_span();
    let traced = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse_traceparent);
    match (header_id, active.or(traced)) {
        (Some(id), Some(trace)) => (id, IdSource::Header, trace),
        (Some(id), None) => {
            let trace = TraceContext::for_request(&id);
            (id, IdSource::Header, trace)
        }
        (None, Some(trace)) => {
            let source = if active.is_some() {
                IdSource::Span
            } else {
                IdSource::Traceparent
            };
            (trace.request_id(), source, trace)
        }
        (None, None) => {
            let id = RequestId::mint();
            let trace = TraceContext::for_request(&id);
            (id, IdSource::Minted, trace)
        }
    }
}

/// The active OpenTelemetry span's context (feature `otel`).
fn active_span() -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    {
        crate::trace_context::otel::active()
    }
    #[cfg(not(feature = "otel"))]
    {
        None
    }
}

/// Sets `X-Request-ID` and `traceparent` for the ambient request id (none
/// when there is no ambient id), for a call to another service: the
/// `traceparent` names the request's trace ([`context::trace`]: the active
/// OpenTelemetry span's, else the fasten scope's) with the current span
/// as the parent.
///
/// ```
/// use fasten::{context, RequestId};
/// let mut headers = http::HeaderMap::new();
/// context::with(RequestId::parse("req-7")?, || fasten::http::inject(&mut headers));
/// assert_eq!(headers["x-request-id"], "req-7");
/// assert!(headers["traceparent"].to_str().unwrap().starts_with("00-"));
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn inject(headers: &mut HeaderMap) {
    let Some(id) = context::current() else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        headers.insert(X_REQUEST_ID, v);
    }
    let trace = context::trace().unwrap_or_else(|| TraceContext::for_request(&id));
    if let Ok(v) = HeaderValue::from_str(&trace.traceparent()) {
        headers.insert(TRACEPARENT, v);
    }
}

/// Writes both headers: the id and the trace, checked, replacing what came.
fn set_both(headers: &mut HeaderMap, id: &RequestId, trace: &TraceContext) {
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        headers.insert(X_REQUEST_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&trace.traceparent()) {
        headers.insert(TRACEPARENT, v);
    }
}

/// [`inject`] into a fresh map: `client.get(url).headers(outbound_headers())`
/// with reqwest, or any client that takes an `http::HeaderMap`.
pub fn outbound_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    inject(&mut headers);
    headers
}

/// Both layers in the right order, for the process-wide pipeline: the
/// request id outermost, then one api row per request. The order of the
/// two separate layers does not matter either (see [`ApiLogLayer`]); this
/// is the one-line way.
///
/// ```no_run
/// # async fn handler() -> &'static str { "ok" }
/// use axum::{routing::get, Router};
/// let _fasten = fasten::init()?;
/// let app: Router = Router::new().route("/", get(handler)).layer(fasten::http::layer());
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn layer() -> tower_layer::Stack<ApiLogLayer, RequestIdLayer> {
    tower_layer::Stack::new(ApiLogLayer::new(), RequestIdLayer::new())
}

impl Fasten {
    /// [`layer`] for this pipeline rather than the process-wide one.
    pub fn http_layer(&self) -> tower_layer::Stack<ApiLogLayer, RequestIdLayer> {
        tower_layer::Stack::new(self.api_layer(), RequestIdLayer::new())
    }
}

/// Sets the request id for every request inside it; see the [module
/// docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer {
    _private: (),
}

impl RequestIdLayer {
    /// The layer.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service made by [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let (id, _, trace) = inbound(req.headers());
        // Replace whatever came in, so handlers that read the headers see
        // the checked id and trace and never the hostile original; a
        // tracing layer inside that extracts `traceparent` joins the trace.
        set_both(req.headers_mut(), &id, &trace);
        req.extensions_mut().insert(id.clone());
        req.extensions_mut().insert(trace);
        // Audit rows emitted inside take `method=http` unless they say.
        let via = context::Via::new(crate::kind::Method::Http, req.uri().path());
        let frame = context::Frame::traced(id.clone(), Some(via), trace);
        // `call` itself may do work (axum routes, runs extractors' setup):
        // it runs inside the id too.
        let inner = context::with_frame(frame.clone(), || self.inner.call(req));
        RequestIdFuture {
            inner: context::scope_frame(frame, inner),
            id: Some((id, trace)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestIdService`].
    #[derive(Debug)]
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: context::Scoped<F>,
        id: Option<(RequestId, TraceContext)>,
    }
}

impl<F, R, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some((id, trace))) = (&mut res, this.id.take()) {
            set_both(response.headers_mut(), &id, &trace);
        }
        Poll::Ready(res)
    }
}

/// What a handler says about its request, for the api row.
#[derive(Debug, Default)]
struct Notes {
    actor: Option<String>,
    target: Option<String>,
}

/// The handle a handler uses to annotate its api row; in the request's
/// extensions (`axum::Extension<ApiNote>`) and ambient for [`set_actor`]
/// and [`set_target`]. Clone it into spawned tasks if they annotate.
#[derive(Debug, Clone, Default)]
pub struct ApiNote(Arc<Mutex<Notes>>);

impl ApiNote {
    /// Who made the request (e.g. the authenticated user).
    pub fn set_actor(&self, actor: impl Into<String>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).actor = Some(clean(actor.into()));
    }

    /// Whom or what the request was about (e.g. `customer/42`).
    pub fn set_target(&self, target: impl Into<String>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).target = Some(clean(target.into()));
    }
}

/// Anchors are bounded and printable, as on audit rows.
fn clean(mut s: String) -> String {
    s.retain(|c| !c.is_control());
    if s.len() > 1024 {
        let mut end = 1024;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

thread_local! {
    static NOTE: RefCell<Option<ApiNote>> = const { RefCell::new(None) };
}

/// Names the authenticated user of the current request: its api row and
/// every audit row it emits without an actor of its own (as
/// [`ActorKind::User`](crate::ActorKind::User); use
/// [`crate::context::set_actor`] for another kind).
/// Returns `false` when there is no [`ApiLogLayer`] request on this task,
/// for example in a task started with a plain `tokio::spawn` (use
/// `fasten::spawn`).
#[must_use = "`false` means no request is in scope here and the actor was not recorded"]
pub fn set_actor(actor: impl Into<String>) -> bool {
    let actor = actor.into();
    let in_request = crate::context::set_actor(actor.clone(), crate::ActorKind::User);
    NOTE.with(|n| match &*n.borrow() {
        Some(note) => {
            note.set_actor(actor);
            true
        }
        None => in_request,
    })
}

/// Sets the target of the current request's api row. Returns `false` when
/// there is no [`ApiLogLayer`] request on this task.
#[must_use = "`false` means no request is in scope here and the target was not recorded"]
pub fn set_target(target: impl Into<String>) -> bool {
    NOTE.with(|n| match &*n.borrow() {
        Some(note) => {
            note.set_target(target);
            true
        }
        None => false,
    })
}

/// Writes one api row per request; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct ApiLogLayer {
    /// `None`: the process-wide pipeline, looked up per request.
    pipeline: Option<WeakFasten>,
}

impl ApiLogLayer {
    /// The layer for the process-wide pipeline ([`crate::init`]).
    pub const fn new() -> Self {
        Self { pipeline: None }
    }
}

impl Fasten {
    /// An [`ApiLogLayer`] that writes into this pipeline.
    pub fn api_layer(&self) -> ApiLogLayer {
        ApiLogLayer {
            pipeline: Some(self.downgrade()),
        }
    }
}

impl<S> Layer<S> for ApiLogLayer {
    type Service = ApiLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiLogService {
            inner,
            pipeline: self.pipeline.clone(),
        }
    }
}

/// The service made by [`ApiLogLayer`].
#[derive(Debug, Clone)]
pub struct ApiLogService<S> {
    inner: S,
    pipeline: Option<WeakFasten>,
}

/// What is known of a request before its response.
#[derive(Debug)]
struct Pending {
    fasten: Fasten,
    start: Instant,
    timestamp: jiff::Timestamp,
    request_id: RequestId,
    trace: TraceContext,
    method: String,
    route: String,
    path: String,
    bytes_in: Option<u64>,
    note: ApiNote,
}

impl Pending {
    fn finish(self, status: u16, bytes_out: Option<u64>) {
        let notes =
            std::mem::take(&mut *self.note.0.lock().unwrap_or_else(PoisonError::into_inner));
        let Ok(mut record) = ApiRecord::new(
            self.request_id,
            &self.method,
            &self.path,
            status,
            self.start.elapsed(),
        ) else {
            return; // http::Method and http::StatusCode are valid by construction
        };
        record = record.route(self.route).trace(self.trace);
        if let Some(n) = self.bytes_in {
            record = record.bytes_in(n);
        }
        if let Some(n) = bytes_out {
            record = record.bytes_out(n);
        }
        if let Some(actor) = notes.actor {
            record = record.actor(actor);
        }
        if let Some(target) = notes.target {
            record = record.target(target);
        }
        self.fasten.record_api_at(record, self.timestamp);
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

impl<S, B, R> Service<Request<B>> for ApiLogService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    R: Body,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ApiLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let fasten = match &self.pipeline {
            Some(weak) => weak.upgrade(),
            None => crate::global::current(),
        };
        let path = req.uri().path();
        let Some(fasten) = fasten.filter(|f| !f.skips_api_path(path)) else {
            return ApiLogFuture {
                inner: context::maybe_scope(None, self.inner.call(req)),
                note: None,
                pending: None,
            };
        };
        // The id of an outer RequestIdLayer, else the ambient one, else the
        // one a RequestIdLayer would choose from the headers. Written back
        // to the header, so a RequestIdLayer inside this one (the wrong
        // order) chooses the same id, and the row, the handler and the
        // response all agree whichever order the layers are in.
        let outer = req.extensions().get::<RequestId>().cloned().map(|id| {
            let trace = req
                .extensions()
                .get::<TraceContext>()
                .copied()
                .unwrap_or_else(|| TraceContext::for_request(&id));
            (id, trace)
        });
        let (request_id, trace) = outer
            .or_else(|| {
                let id = context::request_scoped()?;
                let trace = context::trace().unwrap_or_else(|| TraceContext::for_request(&id));
                Some((id, trace))
            })
            .unwrap_or_else(|| {
                let (id, _, trace) = inbound(req.headers());
                (id, trace)
            });
        set_both(req.headers_mut(), &request_id, &trace);
        req.extensions_mut().insert(request_id.clone());
        req.extensions_mut().insert(trace);
        let path = req.uri().path();
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| path.to_owned(), |m| m.as_str().to_owned());
        let note = ApiNote::default();
        let pending = Pending {
            fasten,
            start: Instant::now(),
            timestamp: jiff::Timestamp::now(),
            method: req.method().as_str().to_owned(),
            route,
            path: path.to_owned(),
            bytes_in: content_length(req.headers()),
            note: note.clone(),
            request_id: request_id.clone(),
            trace,
        };
        // Keep an outer layer's transport; without one this is HTTP.
        let via = context::via()
            .unwrap_or_else(|| context::Via::new(crate::kind::Method::Http, path.to_owned()));
        req.extensions_mut().insert(note.clone());
        let frame = context::Frame::traced(request_id, Some(via), trace);
        let inner = context::with_frame(frame.clone(), || {
            with_note(Some(&note), || self.inner.call(req))
        });
        ApiLogFuture {
            inner: context::scope_frame(frame, inner),
            note: Some(note),
            pending: Some(pending),
        }
    }
}

/// Runs `f` with `note` as the ambient [`ApiNote`], restoring the previous.
fn with_note<T>(note: Option<&ApiNote>, f: impl FnOnce() -> T) -> T {
    let Some(note) = note else { return f() };
    let previous = NOTE.with(|n| n.replace(Some(note.clone())));
    let out = f();
    NOTE.with(|n| *n.borrow_mut() = previous);
    out
}

pin_project_lite::pin_project! {
    /// The response future of [`ApiLogService`]. Dropped before the
    /// response (the client went away), it records status 499.
    #[derive(Debug)]
    pub struct ApiLogFuture<F> {
        #[pin]
        inner: context::Scoped<F>,
        note: Option<ApiNote>,
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for ApiLogFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.finish(499, None);
            }
        }
    }
}

impl<F, R, E> Future for ApiLogFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
    R: Body,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let res = std::task::ready!(with_note(this.note.as_ref(), || inner.poll(cx)));
        if let Some(pending) = this.pending.take() {
            match &res {
                Ok(response) => {
                    let bytes_out = response
                        .body()
                        .size_hint()
                        .exact()
                        .or_else(|| content_length(response.headers()));
                    pending.finish(response.status().as_u16(), bytes_out);
                }
                Err(_) => pending.finish(0, None),
            }
        }
        Poll::Ready(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_safe_header_id_is_kept() {
        let (id, src) = request_id_from(&headers(&[("x-request-id", " req-42:a.b_c ")]));
        assert_eq!((id.as_str(), src), ("req-42:a.b_c", IdSource::Header));
    }

    #[test]
    fn hostile_header_ids_are_replaced() {
        let long = "a".repeat(129);
        for bad in [
            "",
            "a b",
            "a\tb",
            "<script>alert(1)</script>",
            "1' OR '1'='1",
            "../../etc/passwd",
            "req%0d%0aSet-Cookie:x",
            long.as_str(),
        ] {
            let (id, src) = request_id_from(&headers(&[("x-request-id", bad)]));
            assert_eq!(src, IdSource::Minted, "{bad:?}");
            assert_eq!(id.as_str().len(), 32);
        }
        // Non-UTF-8 bytes in the header.
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_bytes(b"r\xffq").unwrap());
        assert_eq!(request_id_from(&h).1, IdSource::Minted);
    }

    #[test]
    fn traceparent_is_used_only_when_well_formed() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (id, src) = request_id_from(&headers(&[("traceparent", good)]));
        assert_eq!(
            (id.as_str(), src),
            ("4bf92f3577b34da6a3ce929d0e0e4736", IdSource::Traceparent)
        );
        // A later version may carry more fields.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(
            request_id_from(&headers(&[("traceparent", v1)])).1,
            IdSource::Traceparent
        );
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "garbage",
            "",
        ] {
            assert_eq!(
                request_id_from(&headers(&[("traceparent", bad)])).1,
                IdSource::Minted,
                "{bad:?}"
            );
        }
        // A safe X-Request-ID wins over traceparent.
        let (id, _) = request_id_from(&headers(&[("traceparent", good), ("x-request-id", "mine")]));
        assert_eq!(id.as_str(), "mine");
    }

    #[test]
    fn outbound_trace_ids_are_valid_for_any_request_id() {
        for raw in ["req-7", "4bf92f3577b34da6a3ce929d0e0e4736", "A.B:C"] {
            let id = RequestId::parse(raw).unwrap();
            let (h, scope_trace) =
                context::with(id.clone(), || (outbound_headers(), context::trace()));
            assert_eq!(h[X_REQUEST_ID], raw);
            let tp = h[TRACEPARENT].to_str().unwrap();
            let trace = TraceContext::parse_traceparent(tp).expect("our own traceparent parses");
            assert_eq!(trace.trace_id(), TraceContext::for_request(&id).trace_id());
            assert_eq!(Some(trace), scope_trace, "the scope's span is the parent");
        }
        assert!(outbound_headers().is_empty(), "no ambient id, no headers");
    }

    #[test]
    fn issue_20_a_disagreeing_traceparent_is_kept_beside_the_header_id() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (id, source, trace) = inbound(&headers(&[
            ("x-request-id", "order-7"),
            ("traceparent", tp),
        ]));
        assert_eq!((id.as_str(), source), ("order-7", IdSource::Header));
        assert_eq!(trace.traceparent(), tp);
        // A hostile traceparent is not kept: the trace comes from the id.
        let (id, _, trace) = inbound(&headers(&[
            ("x-request-id", "order-7"),
            ("traceparent", "00-zz"),
        ]));
        assert_eq!(trace.trace_id(), TraceContext::for_request(&id).trace_id());
    }

    #[test]
    fn notes_are_cleaned() {
        let note = ApiNote::default();
        note.set_actor("u-1\n");
        note.set_target("t".repeat(2000));
        let n = note.0.lock().unwrap();
        assert_eq!(n.actor.as_deref(), Some("u-1"));
        assert_eq!(n.target.as_ref().unwrap().len(), 1024);
        drop(n);
        assert!(!set_actor("nobody"), "no request on this thread");
    }
}
