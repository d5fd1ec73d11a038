//! The ambient request id: set it once where a request enters, and every
//! `emit` beneath picks it up.
//!
//! The id lives in a thread-local slot. [`scope`] wraps a future so the slot
//! holds the id during each poll (so it survives `.await` and works on any
//! executor), [`enter`] sets it for a block of synchronous code, and
//! [`propagate`] / [`FutureExt::in_current_context`] carry it into spawned
//! threads and tasks, the way `tracing`'s `Instrument::in_current_span` does.
//! With the `tracing` feature, a `request_id` field on an enclosing span
//! counts too, once `SpanLayer` is installed.
//!
//! A scope may also say how the request came in ([`Via`]: a transport and
//! its channel, such as an MQTT topic); rows emitted inside it take the
//! transport as their `method` unless the event sets one.
//!
//! Lookup order in [`current`]: the innermost fasten scope, then the nearest
//! span with a `request_id` field, then the process's id from
//! `FASTEN_REQUEST_ID` (see [`Config::request_id`](crate::Config::request_id)),
//! else none (and `emit` mints a fresh id). Entry points start a request of
//! their own instead of joining the process's: an inbound HTTP request
//! without an id gets a fresh one, and a message handler takes the
//! message's id or a fresh one.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use crate::kind::{ActorKind, Method};
use crate::request_id::RequestId;
pub use crate::trace_context::TraceContext;

/// How the ambient request came in: a transport and the channel it came
/// through (an MQTT topic, a NATS subject, a scheduled job's name).
///
/// # Examples
///
/// ```
/// use fasten::{context::{self, Via}, Method, RequestId};
/// let via = Via::new(Method::Mqtt, "plant/line-1/setpoint");
/// let _guard = context::enter_via(RequestId::parse("req-1")?, via.clone());
/// assert_eq!(context::via(), Some(via));
/// # Ok::<(), fasten::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    method: Method,
    channel: Arc<str>,
}

impl Via {
    /// A transport and its channel.
    pub fn new(method: Method, channel: impl Into<Arc<str>>) -> Self {
        Self {
            method,
            channel: channel.into(),
        }
    }

    /// The transport, the `method` of rows emitted inside the scope.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The topic, subject or job name.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

/// What a scope sets: the id, how it came in, and who acts for which
/// tenant. The attribution is shared by every clone of the frame (the
/// copies a [`Scoped`] future enters at each poll, and the work
/// [`propagate`]d from it), so [`set_actor`] in a handler holds across its
/// `.await`s and for the tasks it spawned.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    id: RequestId,
    via: Option<Via>,
    /// The trace the request belongs to: an inbound `traceparent`'s or an
    /// active OpenTelemetry span's; `None`: derived from the id when asked
    /// (a scope per call, as the language bindings make, costs nothing).
    trace: Option<TraceContext>,
    attribution: Arc<Mutex<Attribution>>,
}

impl Frame {
    fn new(id: RequestId, via: Option<Via>) -> Self {
        Self {
            id,
            via,
            trace: None,
            attribution: Arc::default(),
        }
    }

    /// A frame whose trace is known (an inbound `traceparent`).
    pub(crate) fn traced(id: RequestId, via: Option<Via>, trace: TraceContext) -> Self {
        Self {
            id,
            via,
            trace: Some(trace),
            attribution: Arc::default(),
        }
    }

    fn trace(&self) -> TraceContext {
        self.trace
            .unwrap_or_else(|| TraceContext::for_request(&self.id))
    }
}

/// Who acts, for which tenant, as far as the request's context knows.
#[derive(Debug, Default)]
struct Attribution {
    actor: Option<(String, ActorKind)>,
    tenant: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<Frame>> = const { RefCell::new(None) };
}

/// The process's default id (`FASTEN_REQUEST_ID`), set once at start-up.
static PROCESS: OnceLock<RequestId> = OnceLock::new();

/// Makes `id` the process's default ambient id if none is set yet; returns
/// the one in force.
pub(crate) fn set_process_default(id: RequestId) -> &'static RequestId {
    PROCESS.get_or_init(|| id)
}

/// The process's default ambient id, from `FASTEN_REQUEST_ID` at start-up.
///
/// # Examples
///
/// ```
/// // Without FASTEN_REQUEST_ID in the environment at init, there is none.
/// assert_eq!(fasten::context::process_default(), None);
/// ```
pub fn process_default() -> Option<RequestId> {
    PROCESS.get().cloned()
}

/// The ambient request id of this thread or task, if any.
///
/// # Examples
///
/// ```
/// use fasten::{context, RequestId};
/// let id = RequestId::parse("req-1")?;
/// let seen = context::with(id.clone(), context::current);
/// assert_eq!(seen, Some(id));
/// assert_eq!(context::current(), None);
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn current() -> Option<RequestId> {
    // One atomic load when nothing else is set: the fallback costs `emit`
    // next to nothing.
    request_scoped().or_else(|| PROCESS.get().cloned())
}

/// The innermost scope's id, else the nearest span's, without the process
/// default: an entry point (an inbound HTTP request) starts a request of
/// its own rather than joining the process's.
pub(crate) fn request_scoped() -> Option<RequestId> {
    if let Some(id) = scoped() {
        return Some(id);
    }
    #[cfg(feature = "tracing")]
    if let Some(id) = span::current() {
        return Some(id);
    }
    otel_request_id()
}

/// The active OpenTelemetry span's trace id as a request id (feature
/// `otel`).
pub(crate) fn otel_request_id() -> Option<RequestId> {
    #[cfg(feature = "otel")]
    {
        crate::trace_context::otel::active().map(|t| t.request_id())
    }
    #[cfg(not(feature = "otel"))]
    {
        None
    }
}

/// The trace the current row belongs to: the active OpenTelemetry span's
/// (feature `otel`), else the innermost fasten scope's (an inbound
/// `traceparent`'s, or derived from its request id). `None` outside both.
///
/// # Examples
///
/// ```
/// use fasten::{context, RequestId};
/// let id = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736")?;
/// let trace = context::with(id, context::trace).unwrap();
/// assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(context::trace(), None);
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn trace() -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    if let Some(active) = crate::trace_context::otel::active() {
        return Some(active);
    }
    CURRENT.with(|c| c.borrow().as_ref().map(Frame::trace))
}

/// How the innermost fasten scope's request came in, if it says.
///
/// # Examples
///
/// ```
/// use fasten::{context, Method, RequestId};
/// assert_eq!(context::via(), None);
/// let via = context::Via::new(Method::Scheduler, "nightly-report");
/// let method = context::with_via(RequestId::mint(), via, || context::via().map(|v| v.method()));
/// assert_eq!(method, Some(Method::Scheduler));
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn via() -> Option<Via> {
    CURRENT.with(|c| c.borrow().as_ref().and_then(|f| f.via.clone()))
}

/// The transport of the innermost scope, for an event's default `method`.
pub(crate) fn method() -> Option<Method> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|f| f.via.as_ref().map(|v| v.method))
    })
}

/// The id of the innermost fasten scope only, without looking at spans
/// (inside a `tracing` layer the current span is not reachable) or the
/// process default.
pub(crate) fn scoped() -> Option<RequestId> {
    CURRENT.with(|c| c.borrow().as_ref().map(|f| f.id.clone()))
}

fn with_attribution<R>(f: impl FnOnce(&mut Attribution) -> R) -> Option<R> {
    CURRENT.with(|c| {
        c.borrow().as_ref().map(|frame| {
            f(&mut frame
                .attribution
                .lock()
                .unwrap_or_else(PoisonError::into_inner))
        })
    })
}

/// Names who acts in the current request: rows emitted in it without an
/// actor of their own take this one. Returns `false`, recording nothing,
/// outside any request scope (a plain `tokio::spawn`ed task has none: spawn
/// with [`FutureExt::in_current_context`] or `fasten::spawn`).
///
/// # Examples
///
/// ```
/// use fasten::{context, ActorKind, RequestId};
/// assert!(!context::set_actor("u-1", ActorKind::User)); // no request here
/// context::with(RequestId::mint(), || {
///     assert!(context::set_actor("u-1", ActorKind::User));
///     assert_eq!(context::actor(), Some(("u-1".to_owned(), ActorKind::User)));
/// });
/// ```
#[must_use = "`false` means there is no request scope here and the actor was not recorded"]
pub fn set_actor(actor: impl Into<String>, kind: ActorKind) -> bool {
    let actor = actor.into();
    with_attribution(|a| a.actor = Some((actor, kind))).is_some()
}

/// Names the tenant of the current request: its audit, sys and api rows
/// take it unless they name one. Returns `false` outside any request scope,
/// like [`set_actor`].
#[must_use = "`false` means there is no request scope here and the tenant was not recorded"]
pub fn set_tenant(tenant: impl Into<String>) -> bool {
    let tenant = tenant.into();
    with_attribution(|a| a.tenant = Some(tenant)).is_some()
}

/// The actor set in the current request, if any.
pub fn actor() -> Option<(String, ActorKind)> {
    with_attribution(|a| a.actor.clone()).flatten()
}

/// The tenant set in the current request, if any.
pub fn tenant() -> Option<String> {
    with_attribution(|a| a.tenant.clone()).flatten()
}

fn replace(frame: Option<Frame>) -> Option<Frame> {
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), frame))
}

/// What [`propagate`] and [`FutureExt::in_current_context`] carry: the
/// whole innermost frame, else the id found in a span.
fn capture() -> Option<Frame> {
    CURRENT.with(|c| c.borrow().clone()).or_else(|| {
        let id = current()?;
        Some(match trace() {
            Some(trace) => Frame::traced(id, None, trace),
            None => Frame::new(id, None),
        })
    })
}

/// Sets the ambient id for this thread until the guard drops; the previous
/// id comes back then, so scopes nest.
///
/// The guard is not `Send`: across an `.await` use [`scope`] instead.
///
/// # Examples
///
/// ```
/// use fasten::{context, RequestId};
/// let _guard = context::enter(RequestId::parse("job-7")?);
/// assert_eq!(context::current().unwrap().as_str(), "job-7");
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn enter(id: RequestId) -> ContextGuard {
    enter_frame(Frame::new(id, None))
}

/// [`enter`], saying how the request came in.
pub fn enter_via(id: RequestId, via: Via) -> ContextGuard {
    enter_frame(Frame::new(id, Some(via)))
}

pub(crate) fn enter_frame(frame: Frame) -> ContextGuard {
    #[cfg(feature = "otel")]
    let otel = crate::trace_context::otel::attach(&frame.trace());
    ContextGuard {
        previous: replace(Some(frame)),
        #[cfg(feature = "otel")]
        _otel: otel.map(OtelGuard),
        _not_send: PhantomData,
    }
}

/// Restores the previous ambient id when dropped. Made by [`enter`].
#[must_use = "the id is ambient only while the guard lives"]
#[derive(Debug)]
pub struct ContextGuard {
    previous: Option<Frame>,
    /// With `otel`: the fasten trace attached as OpenTelemetry's remote
    /// parent, detached on drop.
    #[cfg(feature = "otel")]
    _otel: Option<OtelGuard>,
    _not_send: PhantomData<*const ()>,
}

#[cfg(feature = "otel")]
struct OtelGuard(#[allow(dead_code, reason = "held for its Drop")] opentelemetry::ContextGuard);

#[cfg(feature = "otel")]
impl std::fmt::Debug for OtelGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtelGuard")
    }
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        replace(self.previous.take());
    }
}

/// Runs `f` with `id` as the ambient id.
pub fn with<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    let _guard = enter(id);
    f()
}

/// [`with`], saying how the request came in.
pub fn with_via<R>(id: RequestId, via: Via, f: impl FnOnce() -> R) -> R {
    let _guard = enter_via(id, via);
    f()
}

/// Wraps `future` so `id` is the ambient id whenever it runs.
///
/// # Examples
///
/// ```
/// # async fn handle() {}
/// # async fn run() {
/// use fasten::{context, RequestId};
/// context::scope(RequestId::mint(), handle()).await;
/// # }
/// ```
pub fn scope<F: Future>(id: RequestId, future: F) -> Scoped<F> {
    Scoped {
        frame: Some(Frame::new(id, None)),
        inner: future,
    }
}

/// [`scope`], saying how the request came in: rows emitted inside take
/// `via`'s transport as their `method`.
///
/// # Examples
///
/// ```
/// # async fn handle() {}
/// # async fn run() {
/// use fasten::{context::{self, Via}, Method, RequestId};
/// let via = Via::new(Method::Nats, "orders.created");
/// context::scope_via(RequestId::mint(), via, handle()).await;
/// # }
/// ```
pub fn scope_via<F: Future>(id: RequestId, via: Via, future: F) -> Scoped<F> {
    Scoped {
        frame: Some(Frame::new(id, Some(via))),
        inner: future,
    }
}

/// [`scope`] for a frame made by a transport (an inbound `traceparent`).
#[cfg_attr(
    not(any(feature = "http", feature = "mqtt", feature = "nats")),
    allow(dead_code)
)]
pub(crate) fn scope_frame<F: Future>(frame: Frame, future: F) -> Scoped<F> {
    Scoped {
        frame: Some(frame),
        inner: future,
    }
}

/// [`with`] for a frame made by a transport.
#[cfg_attr(
    not(any(feature = "http", feature = "mqtt", feature = "nats")),
    allow(dead_code)
)]
pub(crate) fn with_frame<R>(frame: Frame, f: impl FnOnce() -> R) -> R {
    let _guard = enter_frame(frame);
    f()
}

/// [`scope`] when there is an id, else a transparent wrapper: one future
/// type for layers that sometimes set an id.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn maybe_scope<F: Future>(id: Option<RequestId>, future: F) -> Scoped<F> {
    Scoped {
        frame: id.map(|id| Frame::new(id, None)),
        inner: future,
    }
}

/// Wraps a closure so it runs with the caller's ambient id, for
/// `std::thread::spawn` and thread pools.
///
/// # Examples
///
/// ```
/// use fasten::{context, RequestId};
/// let id = RequestId::parse("req-9")?;
/// let seen = context::with(id.clone(), || {
///     std::thread::spawn(context::propagate(context::current)).join().unwrap()
/// });
/// assert_eq!(seen, Some(id));
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn propagate<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let frame = capture();
    move || match frame {
        Some(frame) => {
            let _guard = enter_frame(frame);
            f()
        }
        None => f(),
    }
}

pin_project_lite::pin_project! {
    /// A future that runs with an ambient request id. Made by [`scope`] and
    /// [`FutureExt::in_current_context`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F> {
        frame: Option<Frame>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.frame.clone() {
            Some(frame) => {
                let _guard = enter_frame(frame);
                this.inner.poll(cx)
            }
            None => this.inner.poll(cx),
        }
    }
}

/// `tokio::spawn` that keeps the caller's request: its id, transport,
/// actor and tenant ride into the task, so rows emitted there belong to the
/// same request. A plain `tokio::spawn` loses them (the task starts with no
/// context), and its rows get a fresh request id and no attribution.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use fasten::{context, RequestId};
/// let id = RequestId::mint();
/// let seen = context::scope(id.clone(), async {
///     fasten::spawn(async { context::current() }).await.unwrap()
/// })
/// .await;
/// assert_eq!(seen, Some(id));
/// # }
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_context())
}

/// Carries the ambient id into futures that run elsewhere.
pub trait FutureExt: Future + Sized {
    /// Captures the caller's ambient id (if any) for this future, as
    /// `tracing::Instrument::in_current_span` does for spans:
    /// `tokio::spawn(work.in_current_context())`.
    fn in_current_context(self) -> Scoped<Self> {
        Scoped {
            frame: capture(),
            inner: self,
        }
    }
}

impl<F: Future> FutureExt for F {}

#[cfg(feature = "tracing")]
pub use span::SpanLayer;
#[cfg(feature = "tracing")]
pub(crate) use span::{from_span_scope, remember_span_id};

#[cfg(feature = "tracing")]
mod span {
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    use crate::request_id::RequestId;

    /// A `tracing_subscriber` layer that makes a span's `request_id` field
    /// the ambient id of everything inside the span.
    ///
    /// Ids that fail [`RequestId::parse`] are ignored, never trusted.
    /// The layer needs `tracing_subscriber::Registry` underneath.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    /// let subscriber = tracing_subscriber::registry().with(fasten::context::SpanLayer::default());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let _span = tracing::info_span!("job", request_id = "job-42").entered();
    ///     assert_eq!(fasten::context::current().unwrap().as_str(), "job-42");
    /// });
    /// ```
    #[derive(Debug, Default, Clone, Copy)]
    pub struct SpanLayer {
        _private: (),
    }

    struct Find(Option<RequestId>);

    impl Visit for Find {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "request_id" {
                self.0 = RequestId::parse(value).ok();
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "request_id" {
                // `%id` arrives here as Display-through-Debug, without quotes.
                self.0 = RequestId::parse(&format!("{value:?}")).ok();
            }
        }
    }

    /// Keeps a valid `request_id` field of a new or recorded span in its
    /// extensions. `replace`, not `insert`: both [`SpanLayer`] and the sys
    /// layer may be installed, and `insert` panics on a second value.
    pub(crate) fn remember_span_id<S>(
        values: &dyn Fn(&mut dyn Visit),
        id: &Id,
        ctx: &Context<'_, S>,
    ) where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut find = Find(None);
        values(&mut find);
        if let (Some(found), Some(span)) = (find.0, ctx.span(id)) {
            span.extensions_mut().replace(found);
        }
    }

    /// The nearest `request_id` among the spans around an event.
    pub(crate) fn from_span_scope<S>(
        scope: Option<tracing_subscriber::registry::Scope<'_, S>>,
    ) -> Option<RequestId>
    where
        S: for<'a> LookupSpan<'a>,
    {
        scope?.find_map(|s| s.extensions().get::<RequestId>().cloned())
    }

    impl<S> Layer<S> for SpanLayer
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            remember_span_id(&|v| attrs.record(v), id, &ctx);
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            remember_span_id(&|v| values.record(v), id, &ctx);
        }
    }

    pub(super) fn current() -> Option<RequestId> {
        tracing::Span::current()
            .with_subscriber(|(id, dispatch)| {
                let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
                let span = registry.span(id)?;
                span.scope()
                    .find_map(|s| s.extensions().get::<RequestId>().cloned())
            })
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RequestId {
        RequestId::parse(s).unwrap()
    }

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!(current(), None);
        with(id("outer"), || {
            assert_eq!(current(), Some(id("outer")));
            with(id("inner"), || assert_eq!(current(), Some(id("inner"))));
            assert_eq!(current(), Some(id("outer")));
        });
        assert_eq!(current(), None);
    }

    #[test]
    fn survives_await_and_spawned_tasks() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let (a, b) = rt.block_on(scope(id("req-async"), async {
            // An await point the context must survive.
            tokio::task::yield_now().await;
            let a = current();
            let b = tokio::spawn(async { current() }.in_current_context())
                .await
                .unwrap();
            (a, b)
        }));
        assert_eq!(a, Some(id("req-async")));
        assert_eq!(b, Some(id("req-async")));
        // A task spawned without propagation does not inherit it.
        let c = rt.block_on(scope(id("req-async"), async {
            tokio::spawn(async { current() }).await.unwrap()
        }));
        assert_eq!(c, None);
    }

    #[cfg(feature = "tracing")]
    #[test]
    fn span_field_is_ambient_and_scope_wins() {
        use tracing_subscriber::prelude::*;
        let subscriber = tracing_subscriber::registry().with(SpanLayer::default());
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("req", request_id = "span-1").entered();
            let inner = tracing::info_span!("step").entered();
            assert_eq!(current(), Some(id("span-1")));
            with(id("scoped"), || assert_eq!(current(), Some(id("scoped"))));
            let hostile = tracing::info_span!("bad", request_id = "a b").entered();
            assert_eq!(current(), Some(id("span-1")));
            drop((hostile, inner, outer));
            assert_eq!(current(), None);
        });
    }
}
