//! Request ids over MQTT, on `rumqttc`'s MQTT v5 client.
//!
//! [`publish`] carries the ambient request id (or a fresh one) with a
//! message twice: as the v5 user property `request-id` ([`USER_PROPERTY`]),
//! so binary payloads work too, and, when the payload is a JSON object, as
//! its reserved key `_req` ([`REQ_KEY`]) for consumers that see only the
//! payload (MQTT 3.1.1 bridges, rule engines, a `mosquitto_sub`).
//!
//! The W3C trace travels beside it as the user property `traceparent`
//! ([`TRACEPARENT`]): the request's trace ([`context::trace`]) on the way
//! out; on the way in, a well-formed one becomes the handler's trace (the
//! rows' `trace_id` and `span_id`, and with feature `otel` the remote
//! parent of spans started inside), else the trace is derived from the id.
//!
//! [`handle`] runs a subscriber's handler with the message's id as the
//! ambient id and `Via { method: mqtt, channel: topic }` (see
//! [`context::via`]): audit rows emitted inside get
//! `method=mqtt`. Ids are read from the user property, else `_req`, and
//! each must pass [`RequestId::parse`]: an oversized or control-character
//! id is replaced by a fresh one, never trusted. A message without a usable
//! id (none, a malformed `_req`, a payload that is not JSON) still reaches
//! the handler, with a fresh id: nothing is dropped.
//!
//! ```no_run
//! use rumqttc::v5::{mqttbytes::QoS, AsyncClient, Event, MqttOptions};
//! use rumqttc::v5::mqttbytes::v5::Packet;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, mut events) = AsyncClient::new(MqttOptions::new("svc-b", "127.0.0.1", 1883), 16);
//! client.subscribe("plant/+/setpoint", QoS::AtLeastOnce).await?;
//! // Publishing, inside a request: the setpoint carries its id.
//! fasten::mqtt::publish(&client, "plant/line-1/setpoint", QoS::AtLeastOnce, false,
//!     br#"{"celsius": 21.5}"#.to_vec()).await?;
//! // Subscribing: each message's handler runs under the sender's id.
//! loop {
//!     if let Event::Incoming(Packet::Publish(msg)) = events.poll().await? {
//!         tokio::spawn(fasten::mqtt::handle(msg, |msg| async move {
//!             let _ = fasten::emit(fasten::Event::new("SETPOINT_CHANGED").target("line-1"));
//!             drop(msg);
//!         }));
//!     }
//! }
//! # }
//! ```

use std::future::Future;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, ClientError};

use crate::context::{self, TraceContext, Via};
use crate::kind::Method;
use crate::request_id::RequestId;

/// `request-id`: the MQTT v5 user property the id travels in.
pub const USER_PROPERTY: &str = "request-id";

/// `_req`: the reserved key of a JSON object payload that carries the id.
pub const REQ_KEY: &str = "_req";

/// `traceparent`: the MQTT v5 user property the W3C trace travels in.
pub const TRACEPARENT: &str = "traceparent";

/// Where an inbound message's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdSource {
    /// A safe `request-id` user property.
    UserProperty,
    /// A safe `_req` key of a JSON object payload.
    Payload,
    /// Neither was usable: minted here.
    Minted,
}

/// Publishes `payload` on `topic` carrying the ambient request id (a fresh
/// one when there is none, so every subscriber of the message shares it).
/// See [`stamp`] for what is added.
///
/// # Errors
///
/// `rumqttc`'s [`ClientError`] when the request cannot be queued.
pub async fn publish(
    client: &AsyncClient,
    topic: impl Into<String>,
    qos: QoS,
    retain: bool,
    payload: impl Into<Vec<u8>>,
) -> Result<(), ClientError> {
    let (payload, properties) = stamp(payload.into(), None);
    client
        .publish_with_properties(topic, qos, retain, payload, properties)
        .await
}

/// Adds the ambient request id (or a fresh one) to an outgoing message:
/// the user properties `request-id` and `traceparent` (the request's
/// trace; replacing any), and the key `_req` when `payload` is a JSON
/// object (replacing any; other payloads are left byte for byte). For clients other than [`publish`]'s, such as
/// `rumqttc::v5::Client` or `try_publish_with_properties`.
///
/// # Examples
///
/// ```
/// use fasten::{context, RequestId};
/// let (payload, props) = context::with(RequestId::parse("req-1")?, || {
///     fasten::mqtt::stamp(br#"{"celsius":21.5}"#.to_vec(), None)
/// });
/// assert_eq!(payload, br#"{"_req":"req-1","celsius":21.5}"#);
/// assert_eq!(props.user_properties[0], ("request-id".to_owned(), "req-1".to_owned()));
/// assert_eq!(props.user_properties[1].0, "traceparent");
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn stamp(
    payload: Vec<u8>,
    properties: Option<PublishProperties>,
) -> (Vec<u8>, PublishProperties) {
    let id = context::current().unwrap_or_else(RequestId::mint);
    let trace = context::trace().unwrap_or_else(|| TraceContext::for_request(&id));
    let mut properties = properties.unwrap_or_default();
    properties
        .user_properties
        .retain(|(k, _)| k != USER_PROPERTY && k != TRACEPARENT);
    properties
        .user_properties
        .push((USER_PROPERTY.to_owned(), id.as_str().to_owned()));
    properties
        .user_properties
        .push((TRACEPARENT.to_owned(), trace.traceparent()));
    (stamp_payload(payload, &id), properties)
}

/// `payload` with `_req` set, when it is a JSON object.
fn stamp_payload(payload: Vec<u8>, id: &RequestId) -> Vec<u8> {
    let Some(first) = payload.iter().position(|b| !b.is_ascii_whitespace()) else {
        return payload;
    };
    if payload[first] != b'{' {
        return payload;
    }
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(&payload) else {
        return payload;
    };
    if map.contains_key(REQ_KEY) {
        // Replace the old id; the object is rewritten (key order may change).
        map.insert(REQ_KEY.to_owned(), id.as_str().into());
        return serde_json::to_vec(&map).unwrap_or(payload);
    }
    // Splice the key in after `{`, keeping the rest byte for byte. The id's
    // alphabet needs no JSON escaping.
    let sep = if map.is_empty() { "" } else { "," };
    let mut out = Vec::with_capacity(payload.len() + id.as_str().len() + 10);
    out.extend_from_slice(&payload[..=first]);
    out.extend_from_slice(format!("\"{REQ_KEY}\":\"{id}\"{sep}").as_bytes());
    out.extend_from_slice(&payload[first + 1..]);
    out
}

/// The id of an inbound message, and where it came from: the `request-id`
/// user property, else the payload's `_req`, each only when it passes
/// [`RequestId::parse`]; else a fresh id.
///
/// # Examples
///
/// ```
/// use fasten::mqtt::{request_id_of, IdSource};
/// use rumqttc::v5::mqttbytes::{v5::Publish, QoS};
/// let msg = Publish::new("t", QoS::AtMostOnce, br#"{"_req":"bad id\n"}"#.to_vec(), None);
/// let (id, source) = request_id_of(&msg);
/// assert_eq!((id.as_str().len(), source), (32, IdSource::Minted));
/// ```
pub fn request_id_of(publish: &Publish) -> (RequestId, IdSource) {
    let from_property = publish.properties.as_ref().and_then(|p| {
        p.user_properties
            .iter()
            .filter(|(k, _)| k == USER_PROPERTY)
            .find_map(|(_, v)| RequestId::parse(v).ok())
    });
    if let Some(id) = from_property {
        return (id, IdSource::UserProperty);
    }
    if let Some(id) = from_payload(&publish.payload) {
        return (id, IdSource::Payload);
    }
    (RequestId::mint(), IdSource::Minted)
}

fn from_payload(payload: &[u8]) -> Option<RequestId> {
    let first = payload.iter().position(|b| !b.is_ascii_whitespace())?;
    if payload[first] != b'{' {
        return None;
    }
    // Only the one key is wanted: skip everything else without building it.
    #[derive(serde::Deserialize)]
    struct Req<'a> {
        #[serde(rename = "_req", borrow, default)]
        req: Option<std::borrow::Cow<'a, str>>,
    }
    let req: Req<'_> = serde_json::from_slice(payload).ok()?;
    RequestId::parse(&req.req?).ok()
}

/// Runs `handler` for an inbound message with the message's id (see
/// [`request_id_of`]) as the ambient id, and the topic as its channel with
/// method `mqtt`. Both building the handler's future and each poll of it
/// run in that context. Spawn the result, or await it in the event loop.
///
/// # Examples
///
/// ```
/// # async fn demo() {
/// use rumqttc::v5::mqttbytes::{v5::Publish, QoS};
/// let msg = Publish::new("plant/line-1/setpoint", QoS::AtMostOnce, br#"{"_req":"req-7"}"#.to_vec(), None);
/// let (id, via) = fasten::mqtt::handle(msg, |_msg| async {
///     (fasten::context::current(), fasten::context::via())
/// }).await;
/// assert_eq!(id.unwrap().as_str(), "req-7");
/// assert_eq!(via.unwrap().channel(), "plant/line-1/setpoint");
/// # }
/// ```
pub fn handle<F, Fut>(publish: Publish, handler: F) -> context::Scoped<Fut>
where
    F: FnOnce(Publish) -> Fut,
    Fut: Future,
{
    let (id, source) = request_id_of(&publish);
    let via = Via::new(Method::Mqtt, String::from_utf8_lossy(&publish.topic));
    if source == IdSource::Minted {
        tracing::debug!(target: "fasten::mqtt", request_id = %id, topic = via.channel(), "no usable request id on the message: minted one");
    }
    let trace = trace_of(&publish).unwrap_or_else(|| TraceContext::for_request(&id));
    let frame = context::Frame::traced(id, Some(via), trace);
    let future = context::with_frame(frame.clone(), || handler(publish));
    context::scope_frame(frame, future)
}

/// The W3C trace of an inbound message: its `traceparent` user property,
/// when well-formed.
///
/// # Examples
///
/// ```
/// use rumqttc::v5::mqttbytes::{v5::{Publish, PublishProperties}, QoS};
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let props = PublishProperties { user_properties: vec![("traceparent".into(), tp.into())], ..Default::default() };
/// let msg = Publish::new("t", QoS::AtMostOnce, Vec::new(), Some(props));
/// assert_eq!(fasten::mqtt::trace_of(&msg).unwrap().traceparent(), tp);
/// ```
pub fn trace_of(publish: &Publish) -> Option<TraceContext> {
    publish.properties.as_ref().and_then(|p| {
        p.user_properties
            .iter()
            .filter(|(k, _)| k == TRACEPARENT)
            .find_map(|(_, v)| TraceContext::parse_traceparent(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &[u8], property: Option<&str>) -> Publish {
        let properties = property.map(|v| PublishProperties {
            user_properties: vec![(USER_PROPERTY.to_owned(), v.to_owned())],
            ..PublishProperties::default()
        });
        Publish::new("t/1", QoS::AtMostOnce, payload.to_vec(), properties)
    }

    #[test]
    fn stamping_keeps_payload_bytes_and_replaces_old_ids() {
        let id = RequestId::parse("req-1").unwrap();
        let stamped = |p: &[u8]| context::with(id.clone(), || stamp(p.to_vec(), None).0);
        assert_eq!(stamped(b" {}"), br#" {"_req":"req-1"}"#);
        assert_eq!(
            stamped(br#"{"b":1,"a":2}"#),
            br#"{"_req":"req-1","b":1,"a":2}"#
        );
        assert_eq!(
            stamped(br#"{"_req":"old","a":1}"#),
            br#"{"_req":"req-1","a":1}"#
        );
        for untouched in [&b"\x00\x01binary"[..], b"[1,2]", b"{not json", b"", b"42"] {
            assert_eq!(stamped(untouched), untouched);
        }
        let old = PublishProperties {
            user_properties: vec![
                (USER_PROPERTY.to_owned(), "old".to_owned()),
                ("other".to_owned(), "kept".to_owned()),
            ],
            ..PublishProperties::default()
        };
        let (props, trace) = context::with(id.clone(), || {
            (stamp(Vec::new(), Some(old)).1, context::trace())
        });
        assert_eq!(
            props.user_properties,
            vec![
                ("other".to_owned(), "kept".to_owned()),
                (USER_PROPERTY.to_owned(), "req-1".to_owned()),
                (TRACEPARENT.to_owned(), trace.unwrap().traceparent()),
            ]
        );
        // Without an ambient id, a fresh one still goes out.
        let props = stamp(Vec::new(), None).1;
        assert_eq!(props.user_properties[0].1.len(), 32);
    }

    #[test]
    fn issue_8_hostile_ids_are_replaced_not_trusted() {
        let long = "x".repeat(129);
        let control = "a\u{1b}[2Jb";
        for bad in [long.as_str(), control, "", "a b", "<script>"] {
            let (id, source) = request_id_of(&msg(b"\x00bin", Some(bad)));
            assert_eq!(source, IdSource::Minted, "{bad:?}");
            assert_eq!(id.as_str().len(), 32);
            let payload = serde_json::to_vec(&serde_json::json!({ REQ_KEY: bad })).unwrap();
            assert_eq!(request_id_of(&msg(&payload, None)).1, IdSource::Minted);
        }
        // A hostile property does not hide a good `_req`.
        let (id, source) = request_id_of(&msg(br#"{"_req":"good-1"}"#, Some(&long)));
        assert_eq!((id.as_str(), source), ("good-1", IdSource::Payload));
        // A property wins over `_req`; non-string `_req` is ignored.
        let (id, source) = request_id_of(&msg(br#"{"_req":"p"}"#, Some("prop-1")));
        assert_eq!((id.as_str(), source), ("prop-1", IdSource::UserProperty));
        assert_eq!(
            request_id_of(&msg(br#"{"_req":7}"#, None)).1,
            IdSource::Minted
        );
        assert_eq!(request_id_of(&msg(b"{\"_req\":", None)).1, IdSource::Minted);
    }
}
