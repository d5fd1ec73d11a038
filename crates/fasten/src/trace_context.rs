//! W3C Trace Context beside the request id: the trace a request belongs
//! to, so a fasten timeline and a tracing backend's trace are the same
//! request. Feature-free: `traceparent` is read and written over HTTP,
//! MQTT and NATS without OpenTelemetry; with the `otel` feature the
//! OpenTelemetry API's active span is read too ([`otel`]).

use std::fmt;

use sha2::Digest as _;

use crate::request_id::RequestId;

/// A W3C trace context: a 16-byte trace id, an 8-byte span id and the
/// sampled flag. What fasten knows of the trace a row belongs to, from an
/// inbound `traceparent`, from an active OpenTelemetry span (feature
/// `otel`), or derived from a request id fasten minted or accepted.
///
/// # Examples
///
/// ```
/// use fasten::context::TraceContext;
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let trace = TraceContext::parse_traceparent(tp).unwrap();
/// assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(trace.span_id(), "00f067aa0ba902b7");
/// assert_eq!(trace.traceparent(), tp);
/// assert!(TraceContext::parse_traceparent("garbage").is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub(crate) trace: u128,
    pub(crate) span: u64,
    pub(crate) sampled: bool,
}

impl TraceContext {
    /// The trace of a request id: the id itself as trace id when it is 32
    /// lowercase hex (minted ids are), else the first 16 bytes of its
    /// SHA-256, so any id maps to the same trace everywhere; and a span id
    /// derived from the trace id, standing for the request's fasten scope
    /// (the same wherever it is asked for).
    pub fn for_request(id: &RequestId) -> Self {
        let trace = trace_id_for(id);
        Self {
            trace,
            span: scope_span_id(trace),
            sampled: true,
        }
    }

    /// A well-formed W3C `traceparent` (version `00` exactly 55
    /// characters, lowercase hex, trace id and parent id not all zero;
    /// version `ff` refused; later versions may append fields).
    pub fn parse_traceparent(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.splitn(5, '-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let rest = parts.next();
        let shape_ok = version.len() == 2
            && trace.len() == 32
            && parent.len() == 16
            && flags.len() == 2
            && [version, trace, parent, flags]
                .iter()
                .all(|p| is_lower_hex(p));
        if !shape_ok || version == "ff" {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && rest.is_some() {
            return None;
        }
        let trace = u128::from_str_radix(trace, 16).ok()?;
        let span = u64::from_str_radix(parent, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace == 0 || span == 0 {
            return None;
        }
        Some(Self {
            trace,
            span,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header value: `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace,
            self.span,
            u8::from(self.sampled)
        )
    }

    /// The trace id, 32 lowercase hex characters.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace)
    }

    /// The span id, 16 lowercase hex characters.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span)
    }

    /// Whether the trace is sampled (the `01` flag).
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// The trace id as a request id (32 hex characters are always a valid
    /// one).
    pub fn request_id(&self) -> RequestId {
        RequestId::parse(&self.trace_id()).expect("32 hex characters are a valid request id")
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({})", self.traceparent())
    }
}

/// SplitMix64 of the trace id's halves: a well-spread, never-zero span id.
fn scope_span_id(trace: u128) -> u64 {
    let mut z = (trace as u64) ^ ((trace >> 64) as u64);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The W3C trace id of a request id; see [`TraceContext::for_request`].
pub(crate) fn trace_id_for(id: &RequestId) -> u128 {
    trace_id_of_text(id.as_str())
}

/// [`trace_id_for`] of a stored request id's text.
pub(crate) fn trace_id_of_text(s: &str) -> u128 {
    if s.len() == 32
        && is_lower_hex(s)
        && let Ok(v) = u128::from_str_radix(s, 16)
        && v != 0
    {
        return v;
    }
    let digest = sha2::Sha256::digest(s.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // Never all zero, as W3C requires.
    u128::from_be_bytes(bytes).max(1)
}

/// The OpenTelemetry API side (feature `otel`): the active span's context,
/// and a fasten trace attached as the remote parent of spans started
/// inside a fasten scope.
#[cfg(feature = "otel")]
pub(crate) mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };

    use super::TraceContext;

    /// The active OpenTelemetry span's context, when there is a valid one
    /// (through the API, or a `tracing` span entered under
    /// `tracing-opentelemetry`, which activates its context on entry).
    pub(crate) fn active() -> Option<TraceContext> {
        opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            sc.is_valid().then(|| TraceContext {
                trace: u128::from_be_bytes(sc.trace_id().to_bytes()),
                span: u64::from_be_bytes(sc.span_id().to_bytes()),
                sampled: sc.is_sampled(),
            })
        })
    }

    /// Makes `trace` the remote parent of OpenTelemetry spans started
    /// while the guard lives, unless a span of the same trace is already
    /// active (a real local span is the better parent).
    pub(crate) fn attach(trace: &TraceContext) -> Option<opentelemetry::ContextGuard> {
        if active().is_some_and(|a| a.trace == trace.trace) {
            return None;
        }
        let remote = SpanContext::new(
            TraceId::from_bytes(trace.trace.to_be_bytes()),
            SpanId::from_bytes(trace.span.to_be_bytes()),
            if trace.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        );
        Some(opentelemetry::Context::map_current(|cx| cx.with_remote_span_context(remote)).attach())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_used_only_when_well_formed() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::parse_traceparent(good).unwrap();
        assert_eq!(t.traceparent(), good);
        assert!(
            TraceContext::parse_traceparent(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
            )
            .is_some()
        );
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(
            !TraceContext::parse_traceparent(unsampled)
                .unwrap()
                .is_sampled()
        );
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
            "",
        ] {
            assert!(TraceContext::parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn any_request_id_has_a_stable_valid_trace() {
        let hex = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(
            TraceContext::for_request(&hex).trace_id(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let other = RequestId::parse("req-7").unwrap();
        let a = TraceContext::for_request(&other);
        let b = TraceContext::for_request(&other);
        assert_eq!(a, b, "the same wherever it is asked for");
        assert_ne!(a.span_id(), TraceContext::for_request(&hex).span_id());
        let again = TraceContext::parse_traceparent(&a.traceparent()).unwrap();
        assert_eq!(again, a);
    }
}
