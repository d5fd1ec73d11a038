//! The event a caller emits, and the pending row it becomes on its way to the
//! writer.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::chain::{self, Row};
use crate::code::CodeInfo;
use crate::detail::{self, DetailError};
use crate::kind::{ActorKind, Method, Outcome, Severity};
use crate::request_id::RequestId;

/// An audit event: a registered code and the anchors that say who did what to
/// whom, how, and with what outcome.
///
/// Only the code is required. Everything else has the row contract's default:
/// actor `system` of kind `service`, empty target, outcome `success`, method
/// `sdk`, the code's severity, the pipeline's tenant, the ambient request id
/// (see [`context`](crate::context)) and an empty detail.
///
/// # Examples
///
/// ```
/// use fasten::{ActorKind, Event, Outcome};
/// let event = Event::new("USER_UPDATED")
///     .actor("u-1", ActorKind::User)
///     .target("cust-42")
///     .outcome(Outcome::Success)
///     .detail(serde_json::json!({ "plan": "pro" }));
/// # let _ = event;
/// ```
#[derive(Debug, Clone)]
#[must_use = "an event does nothing until it is emitted"]
pub struct Event {
    pub(crate) code: Cow<'static, str>,
    pub(crate) actor: Option<(String, ActorKind)>,
    pub(crate) target: String,
    pub(crate) outcome: Outcome,
    pub(crate) method: Option<Method>,
    pub(crate) severity: Option<Severity>,
    pub(crate) tenant: Option<String>,
    pub(crate) request_id: Option<RequestId>,
    pub(crate) detail: Option<Result<Map<String, Value>, DetailError>>,
}

impl Event {
    /// An event of a registered code.
    pub fn new(code: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: code.into(),
            actor: None,
            target: String::new(),
            outcome: Outcome::Success,
            method: None,
            severity: None,
            tenant: None,
            request_id: None,
            detail: None,
        }
    }

    /// Who did it (WHO). Default `system`, kind `service`.
    pub fn actor(mut self, actor: impl Into<String>, kind: ActorKind) -> Self {
        self.actor = Some((actor.into(), kind));
        self
    }

    /// What it was done to (WHOM). Default empty.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// How it ended. Default [`Outcome::Success`].
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// The channel it came through (HOW). Default [`Method::Sdk`].
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Overrides the code's severity for this event.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    /// Overrides the pipeline's tenant for this event.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the request id explicitly instead of taking the ambient one.
    pub fn request_id(mut self, id: RequestId) -> Self {
        self.request_id = Some(id);
        self
    }

    /// The event's detail: anything that serialises to a JSON object.
    ///
    /// A value that is not an object, or that holds NaN or an infinite
    /// number (which `serde_json` would quietly turn into `null`), makes
    /// `emit` fail with [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent)
    /// naming the path, e.g. `detail.readings[2]`. Secrets in it are redacted
    /// before it is queued.
    pub fn detail<T: Serialize>(mut self, detail: T) -> Self {
        self.detail = Some(detail::to_object(&detail));
        self
    }

    /// The event's code.
    pub fn code(&self) -> &str {
        &self.code
    }
}

/// A validated, redacted event waiting in the queue for the writer to give
/// it a place in the chain. Expensive work that does not have to happen on
/// the caller's thread (salt, commitment, timestamp text) waits for the
/// writer.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) id: EventId,
    pub(crate) timestamp: jiff::Timestamp,
    pub(crate) info: Arc<CodeInfo>,
    pub(crate) severity: Severity,
    pub(crate) outcome: Outcome,
    pub(crate) service_id: Arc<str>,
    pub(crate) node_id: Arc<str>,
    pub(crate) tenant_id: Option<String>,
    /// `None` for the default actor, `system`.
    pub(crate) actor: Option<String>,
    pub(crate) actor_kind: ActorKind,
    pub(crate) target: String,
    pub(crate) method: Method,
    /// `None` when the caller had no ambient id: the writer mints one, so
    /// the caller's thread does not pay for it.
    pub(crate) request_id: Option<RequestId>,
    pub(crate) detail: Map<String, Value>,
    /// The caller's trace, for copies of the row (OTLP export); taken only
    /// when there is a copy to make. Not part of the row.
    pub(crate) trace: Option<crate::context::TraceContext>,
}

/// The id of an emitted row: 80 bits, written `evt-` + 20 lowercase hex as
/// the contract says. The first 48 bits are the creation time in Unix
/// milliseconds and the last 32 a per-pipeline counter started at a random point,
/// so ids sort by creation time and primary-key inserts append instead of
/// scattering across the index. Kept as bits until the writer needs the
/// text, so `emit` returns it without formatting or allocating.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u128);

/// Mints the [`EventId`]s of one pipeline.
///
/// Within a pipeline the low 32 bits count up from a point drawn from the
/// operating system's generator when the pipeline starts, so two ids of one
/// pipeline never collide (short of 2^32 emits in one millisecond) and ids
/// of one millisecond keep emit order. Seeding from the OS, not from the
/// thread-local generator, keeps a forked child that builds its own
/// pipeline off its parent's sequence. Ids of different pipelines created
/// in the same millisecond collide only when their counters overlap, and
/// the writer turns such a collision into a fresh id rather than a lost row
/// (see `store::Store::append`).
#[derive(Debug)]
pub(crate) struct IdMinter {
    next: AtomicU32,
}

impl IdMinter {
    pub(crate) fn new() -> Self {
        use rand::TryRngCore;
        let start = rand::rngs::OsRng
            .try_next_u32()
            .unwrap_or_else(|_| rand::random());
        Self {
            next: AtomicU32::new(start),
        }
    }

    /// The next id, stamped with `at`.
    pub(crate) fn mint(&self, at: jiff::Timestamp) -> EventId {
        let low = self.next.fetch_add(1, Ordering::Relaxed);
        EventId::from_parts(at, low)
    }
}

impl EventId {
    const MILLIS_MASK: u128 = (1 << 48) - 1;

    fn from_parts(at: jiff::Timestamp, low: u32) -> Self {
        // Before 1970 (a badly set clock) counts as 0 rather than wrapping.
        let ms = u128::try_from(at.as_millisecond()).unwrap_or(0) & Self::MILLIS_MASK;
        Self((ms << 32) | u128::from(low))
    }

    /// A fresh id at `at` with random low bits: the writer's replacement
    /// for an id that another row already holds.
    pub(crate) fn remint(at: jiff::Timestamp) -> Self {
        Self::from_parts(at, rand::random())
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "evt-{:020x}", self.0)
    }
}

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// The contract's 27-character UTC form, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) fn format_timestamp(ts: jiff::Timestamp) -> String {
    // Truncate, not round, so the text never claims a later instant.
    let micros = ts.as_microsecond();
    let ts = jiff::Timestamp::from_microsecond(micros).unwrap_or(ts);
    // Display with a fixed precision always prints six digits and `Z`.
    format!("{ts:.6}")
}

impl Pending {
    /// The full row, still without its place in the chain (`monotonic_seq`
    /// 0, empty `prev_hash` and `hash`): the store assigns those inside its
    /// insert transaction.
    ///
    /// Leaves the salt and the canonical detail in `buf`: the writer sizes
    /// its batches by their length.
    pub(crate) fn into_row(self, buf: &mut Vec<u8>) -> Row {
        let salt = chain::fresh_salt();
        let detail = Value::Object(self.detail);
        let detail_commitment = chain::commitment(&salt, &detail, buf);
        let meta = self.info.meta();
        let id = self.id.to_string();
        Row {
            origin_id: id.clone(),
            id,
            monotonic_seq: 0,
            timestamp: format_timestamp(self.timestamp),
            code: self.info.code().to_owned(),
            action: meta.action.clone(),
            severity: self.severity.as_str().to_owned(),
            outcome: self.outcome.as_str().to_owned(),
            service_id: self.service_id.to_string(),
            source_node_id: self.node_id.to_string(),
            tenant_id: self.tenant_id,
            actor: self.actor.unwrap_or_else(|| "system".to_owned()),
            actor_kind: self.actor_kind.as_str().to_owned(),
            target: self.target,
            category: meta.category.clone(),
            domain: self.info.domain().to_owned(),
            method: self.method.as_str().to_owned(),
            request_id: match self.request_id {
                Some(id) => id.as_str().to_owned(),
                None => RequestId::mint().as_str().to_owned(),
            },
            detail: Some(detail),
            detail_salt: Some(salt),
            detail_commitment,
            pii_in_detail: meta.pii_in_detail,
            shipped_at: None,
            wire_version: chain::WIRE_VERSION.to_owned(),
            canonical_form_id: chain::CANONICAL_FORM_ID.to_owned(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_the_contract_form() {
        let ts: jiff::Timestamp = "2026-06-15T10:30:45.123456789Z".parse().unwrap();
        assert_eq!(format_timestamp(ts), "2026-06-15T10:30:45.123456Z");
        let ts: jiff::Timestamp = "2026-06-15T10:30:00Z".parse().unwrap();
        assert_eq!(format_timestamp(ts), "2026-06-15T10:30:00.000000Z");
        assert_eq!(format_timestamp(jiff::Timestamp::now()).len(), 27);
    }

    #[test]
    fn event_ids_have_the_contract_form() {
        let id = IdMinter::new().mint(jiff::Timestamp::now()).to_string();
        assert_eq!(id.len(), 24);
        assert!(id.starts_with("evt-"));
        assert!(
            id[4..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn event_ids_carry_the_millisecond_and_sort_by_it() {
        let minter = IdMinter::new();
        let at: jiff::Timestamp = "2026-06-15T10:30:45.123Z".parse().unwrap();
        let id = minter.mint(at).to_string();
        assert_eq!(
            u64::from_str_radix(&id[4..16], 16).unwrap(),
            at.as_millisecond() as u64
        );
        let later = minter.mint(at + jiff::SignedDuration::from_millis(1));
        assert!(later.to_string() > id, "{later} sorts after {id}");
    }

    #[test]
    fn ids_of_one_millisecond_are_distinct_and_in_emit_order() {
        let minter = IdMinter::new();
        let at = jiff::Timestamp::now();
        let ids: Vec<EventId> = (0..10_000).map(|_| minter.mint(at)).collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // In order except across the one wrap of the 32-bit counter.
        let descents = ids.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(descents <= 1, "{descents} descents");
    }
}
