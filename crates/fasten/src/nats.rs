//! Request ids over NATS message headers, on `async-nats`: core NATS and
//! JetStream.
//!
//! The id travels in the `Fasten-Request-Id` header ([`HEADER`]), and the
//! request's W3C trace beside it in `traceparent` ([`TRACEPARENT`]): on
//! the way in, a well-formed one becomes the handler's trace (the rows'
//! `trace_id` and `span_id`, and with feature `otel` the remote parent of
//! spans started inside), else the trace is derived from the id. On the
//! way out, [`publish`] (core NATS) or [`headers`] / [`inject`] (JetStream,
//! requests, your own publish call) add the ambient request id, or a fresh
//! one so every subscriber of a message shares it. On the way in,
//! [`handle`] runs a subscriber's handler with the message's id as the
//! ambient id and `Via { method: nats, channel: subject }`: audit rows
//! emitted inside get `method=nats`. An id that fails [`RequestId::parse`]
//! (oversized, control characters, outside `[A-Za-z0-9._:-]`) is replaced
//! by a fresh one, never trusted; a message without one is handled too.
//!
//! ```no_run
//! use futures_util::StreamExt as _;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = async_nats::connect("127.0.0.1:4222").await?;
//! let mut orders = client.subscribe("orders.created").await?;
//! fasten::nats::publish(&client, "orders.created", br#"{"order":7}"#.to_vec()).await?;
//! while let Some(msg) = orders.next().await {
//!     tokio::spawn(fasten::nats::handle(msg, |msg| async move {
//!         let _ = fasten::emit(fasten::Event::new("ORDER_SEEN").target("order/7"));
//!         drop(msg);
//!     }));
//! }
//! // JetStream: the same header, and `handle` takes its messages too.
//! let js = async_nats::jetstream::new(client);
//! js.publish_with_headers("orders.created", fasten::nats::headers(), "{}".into()).await?.await?;
//! # Ok(()) }
//! ```

use std::future::Future;

use async_nats::{Client, HeaderMap, Message, PublishError, ToSubject};

use crate::context::{self, TraceContext, Via};
use crate::kind::Method;
use crate::request_id::RequestId;

/// `Fasten-Request-Id`: the header the id travels in.
pub const HEADER: &str = "Fasten-Request-Id";

/// `traceparent`: the header the W3C trace travels in.
pub const TRACEPARENT: &str = "traceparent";

/// Where an inbound message's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdSource {
    /// A safe `Fasten-Request-Id` header.
    Header,
    /// None was usable: minted here.
    Minted,
}

/// Sets `Fasten-Request-Id` to the ambient request id, or a fresh one,
/// and `traceparent` to the request's trace ([`context::trace`]).
///
/// # Examples
///
/// ```
/// use fasten::{context, RequestId};
/// let mut headers = async_nats::HeaderMap::new();
/// context::with(RequestId::parse("req-7")?, || fasten::nats::inject(&mut headers));
/// assert_eq!(headers.get(fasten::nats::HEADER).unwrap().as_str(), "req-7");
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn inject(headers: &mut HeaderMap) {
    let id = context::current().unwrap_or_else(RequestId::mint);
    let trace = context::trace().unwrap_or_else(|| TraceContext::for_request(&id));
    headers.insert(HEADER, id.as_str());
    headers.insert(TRACEPARENT, trace.traceparent().as_str());
}

/// The W3C trace of inbound headers: a well-formed `traceparent`.
pub fn trace_from(headers: Option<&HeaderMap>) -> Option<TraceContext> {
    headers?
        .get_all(TRACEPARENT)
        .find_map(|v| TraceContext::parse_traceparent(v.as_str()))
}

/// New headers holding only `Fasten-Request-Id` (see [`inject`]), for
/// `publish_with_headers`, `request_with_headers` and JetStream.
pub fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    inject(&mut headers);
    headers
}

/// Publishes `payload` on `subject` (core NATS) with `Fasten-Request-Id`.
///
/// # Errors
///
/// `async-nats`'s [`PublishError`].
pub async fn publish<S: ToSubject>(
    client: &Client,
    subject: S,
    payload: impl Into<Vec<u8>>,
) -> Result<(), PublishError> {
    client
        .publish_with_headers(subject, headers(), payload.into().into())
        .await
}

/// The id of inbound headers, and where it came from.
///
/// # Examples
///
/// ```
/// use fasten::nats::{request_id_from, IdSource};
/// let mut headers = async_nats::HeaderMap::new();
/// headers.insert(fasten::nats::HEADER, "x".repeat(500).as_str());
/// assert_eq!(request_id_from(Some(&headers)).1, IdSource::Minted);
/// ```
pub fn request_id_from(headers: Option<&HeaderMap>) -> (RequestId, IdSource) {
    let found = headers.and_then(|h| {
        h.get_all(HEADER)
            .find_map(|v| RequestId::parse(v.as_str()).ok())
    });
    match found {
        Some(id) => (id, IdSource::Header),
        None => (RequestId::mint(), IdSource::Minted),
    }
}

/// A message [`handle`] accepts: core NATS's and JetStream's.
pub trait Inbound: sealed::Sealed {
    /// The NATS message underneath.
    fn message(&self) -> &Message;
}

impl Inbound for Message {
    fn message(&self) -> &Message {
        self
    }
}

impl Inbound for async_nats::jetstream::Message {
    fn message(&self) -> &Message {
        self
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for async_nats::Message {}
    impl Sealed for async_nats::jetstream::Message {}
}

/// Runs `handler` for an inbound message (core or JetStream) with the
/// message's id (see [`request_id_from`]) as the ambient id, and the
/// subject as its channel with method `nats`. Both building the handler's
/// future and each poll of it run in that context.
///
/// # Examples
///
/// ```
/// # async fn demo(msg: async_nats::Message) {
/// let seen = fasten::nats::handle(msg, |_msg| async { fasten::context::via() }).await;
/// assert_eq!(seen.unwrap().method(), fasten::Method::Nats);
/// # }
/// ```
pub fn handle<M, F, Fut>(message: M, handler: F) -> context::Scoped<Fut>
where
    M: Inbound,
    F: FnOnce(M) -> Fut,
    Fut: Future,
{
    let inner = message.message();
    let (id, source) = request_id_from(inner.headers.as_ref());
    let via = Via::new(Method::Nats, inner.subject.as_str());
    if source == IdSource::Minted {
        tracing::debug!(target: "fasten::nats", request_id = %id, subject = via.channel(), "no usable request id on the message: minted one");
    }
    let trace =
        trace_from(inner.headers.as_ref()).unwrap_or_else(|| TraceContext::for_request(&id));
    let frame = context::Frame::traced(id, Some(via), trace);
    let future = context::with_frame(frame.clone(), || handler(message));
    context::scope_frame(frame, future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_8_hostile_header_ids_are_replaced_not_trusted() {
        let long = "x".repeat(129);
        for bad in [long.as_str(), "a\u{7f}b", "a\tb", "", "<script>"] {
            let mut h = HeaderMap::new();
            h.insert(HEADER, bad);
            let (id, source) = request_id_from(Some(&h));
            assert_eq!(source, IdSource::Minted, "{bad:?}");
            assert_eq!(id.as_str().len(), 32);
        }
        assert_eq!(request_id_from(None).1, IdSource::Minted);
        let mut h = HeaderMap::new();
        h.insert(HEADER, "req-9");
        assert_eq!(request_id_from(Some(&h)).0.as_str(), "req-9");
        assert_eq!(headers().get(HEADER).unwrap().as_str().len(), 32);
        let h = headers();
        let trace = trace_from(Some(&h)).expect("a traceparent goes out too");
        assert_eq!(trace.trace_id(), h.get(HEADER).unwrap().as_str());
    }
}
