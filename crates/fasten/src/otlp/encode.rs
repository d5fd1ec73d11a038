//! Rows as OpenTelemetry log records, written straight to the protobuf
//! wire format of `opentelemetry.proto.collector.logs.v1` (no message
//! structs: encoding from the rows' own fields allocates nothing per
//! record). The tests decode what this writes with the official generated
//! types (opentelemetry-proto), which keeps it honest.
//!
//! | stream | body | severity | attributes |
//! |---|---|---|---|
//! | audit | the code | `debug` 5, `info` 9, `warn` 13, `error` 17, `critical` 21 | `fasten.stream`, `fasten.event_id`, `fasten.seq`, the anchors (`fasten.code`, `fasten.action`, `fasten.outcome`, `fasten.actor`, `fasten.actor_kind`, `fasten.target`, `fasten.category`, `fasten.domain`, `fasten.method`), `fasten.request_id`, `fasten.tenant_id`, `fasten.hash`, and `fasten.detail` (JSON) unless the code declares personal data in its detail |
//! | sys | the message | `TRACE` 1, `DEBUG` 5, `INFO` 9, `WARN` 13, `ERROR` 17 | `fasten.stream`, `fasten.request_id`, `fasten.tenant_id`, `fasten.log_target`, `fasten.span`, and the event's fields by name |
//! | api | `GET /users/{id} 200` | 5xx and 0: 17, 4xx: 13, else 9 | `fasten.stream`, `fasten.request_id`, `fasten.tenant_id`, `http.request.method`, `http.route`, `url.path`, `http.response.status_code`, `fasten.duration_ms`, `fasten.actor`, `fasten.target`, `http.request.body.size`, `http.response.body.size` |
//!
//! Every record has its trace id: the row's, else the one derived from its
//! request id; and its span id when the row has one.

use serde_json::Value;

use super::Item;
use crate::chain::Row;
use crate::context::TraceContext;
use crate::request_id::RequestId;
use crate::stream::{ApiRow, Origin, Record as _, SysRow};

// === the wire format ===

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// A length-delimited field (string, bytes, message); empty ones are
/// left out, as proto3 does.
fn delimited(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, 1);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, 0);
        varint(out, v);
    }
}

/// An `AnyValue`'s one field.
#[derive(Clone, Copy)]
enum Any<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Any<'_> {
    /// The encoded `AnyValue` message's length.
    fn len(self) -> usize {
        match self {
            Self::Str(s) => 1 + varint_len(s.len() as u64) + s.len(),
            Self::Int(i) => 1 + varint_len(i as u64),
            Self::Double(_) => 9,
            Self::Bool(_) => 2,
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Self::Str(s) => {
                // Written even when empty: a oneof member is present.
                tag(out, 1, 2);
                varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Self::Bool(b) => {
                tag(out, 2, 0);
                out.push(u8::from(b));
            }
            Self::Int(i) => {
                tag(out, 3, 0);
                varint(out, i as u64);
            }
            Self::Double(f) => {
                tag(out, 4, 1);
                out.extend_from_slice(&f.to_le_bytes());
            }
        }
    }

    /// As field `field` of the enclosing message (`LogRecord.body`).
    fn field(self, out: &mut Vec<u8>, field: u32) {
        tag(out, field, 2);
        varint(out, self.len() as u64);
        self.write(out);
    }
}

/// A `KeyValue` as field `field` (attributes: 6 of `LogRecord`, 1 of
/// `Resource`).
fn kv(out: &mut Vec<u8>, field: u32, key: &str, value: Any<'_>) {
    let v = value.len();
    let len = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(v as u64) + v;
    tag(out, field, 2);
    varint(out, len as u64);
    tag(out, 1, 2);
    varint(out, key.len() as u64);
    out.extend_from_slice(key.as_bytes());
    value.field(out, 2);
}

const ATTR: u32 = 6;

// === the request ===

/// The encoded `Resource`: `service.name`, `service.instance.id` (the
/// node) and `fasten.node_id`.
pub(super) fn resource(origin: &Origin) -> Vec<u8> {
    let mut out = Vec::new();
    kv(&mut out, 1, "service.name", Any::Str(&origin.service_id));
    kv(
        &mut out,
        1,
        "service.instance.id",
        Any::Str(&origin.node_id),
    );
    kv(&mut out, 1, "fasten.node_id", Any::Str(&origin.node_id));
    out
}

/// Scratch buffers, kept between batches.
#[derive(Default)]
pub(super) struct Encoder {
    record: Vec<u8>,
    scope: Vec<u8>,
    resource_logs: Vec<u8>,
}

impl Encoder {
    /// One `ExportLogsServiceRequest` for a batch (one resource, one scope
    /// named `fasten`) into `out`; returns the number of records.
    pub(super) fn request(&mut self, resource: &[u8], items: &[Item], out: &mut Vec<u8>) -> u64 {
        let observed = now_nanos();
        let scope = &mut self.scope;
        scope.clear();
        // ScopeLogs.scope: InstrumentationScope { name, version }.
        let mut is = Vec::with_capacity(32);
        delimited(&mut is, 1, b"fasten");
        delimited(&mut is, 2, env!("CARGO_PKG_VERSION").as_bytes());
        delimited(scope, 1, &is);
        let mut n = 0;
        for item in items {
            match item {
                Item::Audit(batch) => {
                    for (i, row) in batch.rows.iter().enumerate() {
                        let trace = batch.traces.get(i).copied().flatten();
                        self.record.clear();
                        audit(&mut self.record, row, trace, observed);
                        delimited(scope, 2, &self.record);
                        n += 1;
                    }
                }
                Item::Sys(packed) => {
                    self.record.clear();
                    sys(&mut self.record, &SysRow::unpack(packed), observed);
                    delimited(scope, 2, &self.record);
                    n += 1;
                }
                Item::Api(row) => {
                    self.record.clear();
                    api(&mut self.record, row, observed);
                    delimited(scope, 2, &self.record);
                    n += 1;
                }
            }
        }
        let rl = &mut self.resource_logs;
        rl.clear();
        delimited(rl, 1, resource);
        delimited(rl, 2, scope);
        delimited(out, 1, rl);
        n
    }
}

/// The fields every record has, in field order: time (1), severity (2,
/// 3), body (5).
fn head(out: &mut Vec<u8>, time: Option<u64>, observed: u64, number: u64, text: &str, body: &str) {
    fixed64(out, 1, time.unwrap_or(observed));
    uint(out, 2, number);
    delimited(out, 3, text.as_bytes());
    Any::Str(body).field(out, 5);
}

/// The fields after the attributes: trace id (9), span id (10), observed
/// time (11).
fn tail(out: &mut Vec<u8>, trace: &[u8], span: &[u8], observed: u64) {
    delimited(out, 9, trace);
    delimited(out, 10, span);
    fixed64(out, 11, observed);
}

fn audit(out: &mut Vec<u8>, row: &Row, trace: Option<TraceContext>, observed: u64) {
    head(
        out,
        nanos(&row.timestamp),
        observed,
        audit_severity(&row.severity),
        &row.severity,
        &row.code,
    );
    for (key, value) in [
        ("fasten.stream", "audit"),
        ("fasten.event_id", row.id.as_str()),
        ("fasten.code", &row.code),
        ("fasten.action", &row.action),
        ("fasten.outcome", &row.outcome),
        ("fasten.actor", &row.actor),
        ("fasten.actor_kind", &row.actor_kind),
        ("fasten.target", &row.target),
        ("fasten.category", &row.category),
        ("fasten.domain", &row.domain),
        ("fasten.method", &row.method),
        ("fasten.request_id", &row.request_id),
        ("fasten.hash", &row.hash),
    ] {
        kv(out, ATTR, key, Any::Str(value));
    }
    kv(out, ATTR, "fasten.seq", Any::Int(row.monotonic_seq));
    if let Some(t) = &row.tenant_id {
        kv(out, ATTR, "fasten.tenant_id", Any::Str(t));
    }
    if !row.pii_in_detail
        && let Some(detail) = &row.detail
    {
        kv(out, ATTR, "fasten.detail", Any::Str(&detail.to_string()));
    }
    match trace {
        Some(t) => tail(out, &t.trace.to_be_bytes(), &t.span.to_be_bytes(), observed),
        None => tail(out, &derived_trace(&row.request_id), &[], observed),
    }
    // event_name (12): the code.
    delimited(out, 12, row.code.as_bytes());
}

fn sys(out: &mut Vec<u8>, row: &SysRow, observed: u64) {
    let number = match row.level.as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "WARN" => 13,
        "ERROR" => 17,
        _ => 9,
    };
    head(
        out,
        nanos(&row.timestamp),
        observed,
        number,
        &row.level,
        &row.message,
    );
    kv(out, ATTR, "fasten.stream", Any::Str("sys"));
    kv(out, ATTR, "fasten.log_target", Any::Str(&row.target));
    if let Some(id) = &row.request_id {
        kv(out, ATTR, "fasten.request_id", Any::Str(id.as_str()));
    }
    if let Some(t) = &row.tenant_id {
        kv(out, ATTR, "fasten.tenant_id", Any::Str(t));
    }
    if let Some(span) = &row.span {
        kv(out, ATTR, "fasten.span", Any::Str(span));
    }
    if let Some(n) = row.dropped {
        kv(out, ATTR, "fasten.dropped", int(n));
    }
    for (k, v) in &row.fields {
        match v {
            Value::String(s) => kv(out, ATTR, k, Any::Str(s)),
            Value::Bool(b) => kv(out, ATTR, k, Any::Bool(*b)),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => kv(out, ATTR, k, Any::Int(i)),
                (None, Some(f)) => kv(out, ATTR, k, Any::Double(f)),
                _ => kv(out, ATTR, k, Any::Str(&n.to_string())),
            },
            other => kv(out, ATTR, k, Any::Str(&other.to_string())),
        }
    }
    let (trace, span) = ids(
        row.trace_id.as_deref(),
        row.span_id.as_deref(),
        row.request_id.as_ref(),
    );
    tail(out, &trace, &span, observed);
}

fn api(out: &mut Vec<u8>, row: &ApiRow, observed: u64) {
    let (number, level) = match row.status {
        0 | 500.. => (17, "ERROR"),
        400..=499 => (13, "WARN"),
        _ => (9, "INFO"),
    };
    let body = format!("{} {} {}", row.method, row.route, row.status);
    head(out, nanos(&row.timestamp), observed, number, level, &body);
    for (key, value) in [
        ("fasten.stream", Some("api")),
        ("fasten.request_id", Some(row.request_id.as_str())),
        ("http.request.method", Some(row.method.as_str())),
        ("http.route", Some(row.route.as_str())),
        ("url.path", Some(row.path.as_str())),
        ("fasten.tenant_id", row.tenant_id.as_deref()),
        ("fasten.actor", row.actor.as_deref()),
        ("fasten.target", row.target.as_deref()),
    ] {
        if let Some(v) = value {
            kv(out, ATTR, key, Any::Str(v));
        }
    }
    kv(
        out,
        ATTR,
        "http.response.status_code",
        int(u64::from(row.status)),
    );
    kv(
        out,
        ATTR,
        "fasten.duration_ms",
        Any::Double(row.duration_ms),
    );
    for (key, value) in [
        ("http.request.body.size", row.bytes_in),
        ("http.response.body.size", row.bytes_out),
        ("fasten.dropped", row.dropped),
    ] {
        if let Some(v) = value {
            kv(out, ATTR, key, int(v));
        }
    }
    let (trace, span) = ids(
        row.trace_id.as_deref(),
        row.span_id.as_deref(),
        Some(&row.request_id),
    );
    tail(out, &trace, &span, observed);
}

// === values ===

/// The OpenTelemetry severity number of an audit severity.
fn audit_severity(severity: &str) -> u64 {
    match severity {
        "debug" => 5,
        "warn" => 13,
        "error" => 17,
        "critical" => 21,
        _ => 9,
    }
}

/// The row's trace and span ids as bytes; the trace derived from the
/// request id when the row has none.
fn ids(
    trace: Option<&str>,
    span: Option<&str>,
    request_id: Option<&RequestId>,
) -> (Vec<u8>, Vec<u8>) {
    let trace_id = trace
        .and_then(|t| hex::decode(t).ok())
        .filter(|b| b.len() == 16)
        .or_else(|| request_id.map(|id| derived_trace(id.as_str())))
        .unwrap_or_default();
    let span_id = span
        .and_then(|s| hex::decode(s).ok())
        .filter(|b| b.len() == 8)
        .unwrap_or_default();
    (trace_id, span_id)
}

fn derived_trace(request_id: &str) -> Vec<u8> {
    if request_id.is_empty() {
        return Vec::new();
    }
    crate::trace_context::trace_id_of_text(request_id)
        .to_be_bytes()
        .to_vec()
}

/// Unix nanoseconds of a row's timestamp. Rows carry the contract's one
/// form, `YYYY-MM-DDTHH:MM:SS.ffffffZ`: read by hand (the exporter does
/// this for every record), with jiff for anything else.
fn nanos(timestamp: &str) -> Option<u64> {
    fast_nanos(timestamp).or_else(|| {
        let t: jiff::Timestamp = timestamp.parse().ok()?;
        u64::try_from(t.as_nanosecond()).ok()
    })
}

fn fast_nanos(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    if b.len() != 27 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'.' || b[26] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        t.get(from..to)?.bytes().try_fold(0u64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
        })
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss, us) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 26)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(secs * 1_000_000_000 + us * 1000)
}

fn now_nanos() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or_default()
}

fn int(n: u64) -> Any<'static> {
    Any::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map_to_otel_numbers() {
        assert_eq!(audit_severity("critical"), 21);
        assert_eq!(audit_severity("info"), 9);
        assert_eq!(audit_severity("warn"), 13);
    }

    #[test]
    fn varints_and_their_lengths_agree() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        for value in [
            Any::Str("héllo"),
            Any::Int(-1),
            Any::Double(1.5),
            Any::Bool(true),
        ] {
            let mut out = Vec::new();
            value.write(&mut out);
            assert_eq!(out.len(), value.len());
        }
    }

    #[test]
    fn timestamps_read_by_hand_agree_with_jiff() {
        for t in [
            "1970-01-01T00:00:00.000000Z",
            "2000-02-29T12:34:56.789012Z",
            "2026-12-01T17:52:10.774223Z",
            "2100-03-01T23:59:59.999999Z",
        ] {
            let jiff: jiff::Timestamp = t.parse().unwrap();
            assert_eq!(
                fast_nanos(t),
                Some(u64::try_from(jiff.as_nanosecond()).unwrap()),
                "{t}"
            );
        }
        assert_eq!(fast_nanos("2026-12-01T17:52:10Z"), None);
        assert!(
            nanos("2026-12-01T17:52:10Z").is_some(),
            "jiff reads the rest"
        );
    }

    #[test]
    fn rows_without_a_trace_get_the_request_ids() {
        let id = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let (trace, span) = ids(None, None, Some(&id));
        assert_eq!(hex::encode(trace), id.as_str());
        assert!(span.is_empty());
        let (trace, span) = ids(
            Some("0af7651916cd43dd8448eb211c80319c"),
            Some("b7ad6b7169203331"),
            Some(&id),
        );
        assert_eq!(hex::encode(trace), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(hex::encode(span), "b7ad6b7169203331");
    }
}
