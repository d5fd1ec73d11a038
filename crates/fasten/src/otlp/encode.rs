//! Rows as OpenTelemetry log records (`opentelemetry.proto.logs.v1`).
//!
//! | stream | body | severity | attributes |
//! |---|---|---|---|
//! | audit | the code | `debug` 5, `info` 9, `warn` 13, `error` 17, `critical` 21 | `fasten.stream`, `fasten.event_id`, `fasten.seq`, the anchors (`fasten.code`, `fasten.action`, `fasten.outcome`, `fasten.actor`, `fasten.actor_kind`, `fasten.target`, `fasten.category`, `fasten.domain`, `fasten.method`), `fasten.request_id`, `fasten.tenant_id`, `fasten.hash`, and `fasten.detail` (JSON) unless the code declares personal data in its detail |
//! | sys | the message | `TRACE` 1, `DEBUG` 5, `INFO` 9, `WARN` 13, `ERROR` 17 | `fasten.stream`, `fasten.request_id`, `fasten.tenant_id`, `fasten.log_target`, `fasten.span`, and the event's fields by name |
//! | api | `GET /users/{id} 200` | 5xx and 0: 17, 4xx: 13, else 9 | `fasten.stream`, `fasten.request_id`, `fasten.tenant_id`, `http.request.method`, `http.route`, `url.path`, `http.response.status_code`, `fasten.duration_ms`, `fasten.actor`, `fasten.target`, `http.request.body.size`, `http.response.body.size` |
//!
//! Every record has its trace id: the row's, else the one derived from its
//! request id; and its span id when the row has one.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value as Any,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;

use super::Item;
use crate::chain::Row;
use crate::context::TraceContext;
use crate::request_id::RequestId;
use crate::stream::{ApiRow, Origin, Record as _, SysRow};

/// The process: `service.name`, `service.instance.id` (the node) and
/// `fasten.node_id`.
pub(super) fn resource(origin: &Origin) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", text(&origin.service_id)),
            kv("service.instance.id", text(&origin.node_id)),
            kv("fasten.node_id", text(&origin.node_id)),
        ],
        ..Resource::default()
    }
}

/// One request for a batch: one resource, one scope (`fasten`).
pub(super) fn request(resource: &Resource, items: &[Item]) -> ExportLogsServiceRequest {
    let observed = now_nanos();
    let mut records = Vec::new();
    for item in items {
        match item {
            Item::Audit(batch) => {
                for (i, row) in batch.rows.iter().enumerate() {
                    let trace = batch.traces.get(i).copied().flatten();
                    records.push(audit(row, trace, observed));
                }
            }
            Item::Sys(packed) => records.push(sys(&SysRow::unpack(packed), observed)),
            Item::Api(row) => records.push(api(row, observed)),
        }
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "fasten".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn audit(row: &Row, trace: Option<TraceContext>, observed: u64) -> LogRecord {
    let (number, _) = audit_severity(&row.severity);
    let mut attributes = vec![
        kv("fasten.stream", text("audit")),
        kv("fasten.event_id", text(&row.id)),
        kv("fasten.seq", Any::IntValue(row.monotonic_seq)),
        kv("fasten.code", text(&row.code)),
        kv("fasten.action", text(&row.action)),
        kv("fasten.outcome", text(&row.outcome)),
        kv("fasten.actor", text(&row.actor)),
        kv("fasten.actor_kind", text(&row.actor_kind)),
        kv("fasten.target", text(&row.target)),
        kv("fasten.category", text(&row.category)),
        kv("fasten.domain", text(&row.domain)),
        kv("fasten.method", text(&row.method)),
        kv("fasten.request_id", text(&row.request_id)),
        kv("fasten.hash", text(&row.hash)),
    ];
    if let Some(t) = &row.tenant_id {
        attributes.push(kv("fasten.tenant_id", text(t)));
    }
    if !row.pii_in_detail
        && let Some(detail) = &row.detail
    {
        attributes.push(kv("fasten.detail", Any::StringValue(detail.to_string())));
    }
    let (trace_id, span_id) = match trace {
        Some(t) => (
            t.trace.to_be_bytes().to_vec(),
            t.span.to_be_bytes().to_vec(),
        ),
        None => (derived_trace(&row.request_id), Vec::new()),
    };
    LogRecord {
        time_unix_nano: nanos(&row.timestamp).unwrap_or(observed),
        observed_time_unix_nano: observed,
        severity_number: number,
        severity_text: row.severity.clone(),
        body: Some(value(text(&row.code))),
        attributes,
        trace_id,
        span_id,
        event_name: row.code.clone(),
        ..LogRecord::default()
    }
}

fn sys(row: &SysRow, observed: u64) -> LogRecord {
    let number = match row.level.as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "WARN" => 13,
        "ERROR" => 17,
        _ => 9,
    };
    let mut attributes = vec![
        kv("fasten.stream", text("sys")),
        kv("fasten.log_target", text(&row.target)),
    ];
    if let Some(id) = &row.request_id {
        attributes.push(kv("fasten.request_id", text(id.as_str())));
    }
    if let Some(t) = &row.tenant_id {
        attributes.push(kv("fasten.tenant_id", text(t)));
    }
    if let Some(span) = &row.span {
        attributes.push(kv("fasten.span", text(span)));
    }
    if let Some(n) = row.dropped {
        attributes.push(kv("fasten.dropped", int(n)));
    }
    for (k, v) in &row.fields {
        attributes.push(kv(k, json(v)));
    }
    let (trace_id, span_id) = ids(
        row.trace_id.as_deref(),
        row.span_id.as_deref(),
        row.request_id.as_ref(),
    );
    LogRecord {
        time_unix_nano: nanos(&row.timestamp).unwrap_or(observed),
        observed_time_unix_nano: observed,
        severity_number: number,
        severity_text: row.level.clone(),
        body: Some(value(text(&row.message))),
        attributes,
        trace_id,
        span_id,
        ..LogRecord::default()
    }
}

fn api(row: &ApiRow, observed: u64) -> LogRecord {
    let (number, level) = match row.status {
        0 | 500.. => (17, "ERROR"),
        400..=499 => (13, "WARN"),
        _ => (9, "INFO"),
    };
    let mut attributes = vec![
        kv("fasten.stream", text("api")),
        kv("fasten.request_id", text(row.request_id.as_str())),
        kv("http.request.method", text(&row.method)),
        kv("http.route", text(&row.route)),
        kv("url.path", text(&row.path)),
        kv("http.response.status_code", int(u64::from(row.status))),
        kv("fasten.duration_ms", Any::DoubleValue(row.duration_ms)),
    ];
    for (key, v) in [
        ("fasten.tenant_id", row.tenant_id.as_deref()),
        ("fasten.actor", row.actor.as_deref()),
        ("fasten.target", row.target.as_deref()),
    ] {
        if let Some(v) = v {
            attributes.push(kv(key, text(v)));
        }
    }
    for (key, v) in [
        ("http.request.body.size", row.bytes_in),
        ("http.response.body.size", row.bytes_out),
        ("fasten.dropped", row.dropped),
    ] {
        if let Some(v) = v {
            attributes.push(kv(key, int(v)));
        }
    }
    let (trace_id, span_id) = ids(
        row.trace_id.as_deref(),
        row.span_id.as_deref(),
        Some(&row.request_id),
    );
    LogRecord {
        time_unix_nano: nanos(&row.timestamp).unwrap_or(observed),
        observed_time_unix_nano: observed,
        severity_number: number,
        severity_text: level.to_owned(),
        body: Some(value(text(&format!(
            "{} {} {}",
            row.method, row.route, row.status
        )))),
        attributes,
        trace_id,
        span_id,
        ..LogRecord::default()
    }
}

/// `(number, text)` of an audit severity.
fn audit_severity(severity: &str) -> (i32, &'static str) {
    match severity {
        "debug" => (5, "DEBUG"),
        "warn" => (13, "WARN"),
        "error" => (17, "ERROR"),
        "critical" => (21, "FATAL"),
        _ => (9, "INFO"),
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
    RequestId::parse(request_id)
        .map(|id| {
            crate::trace_context::trace_id_for(&id)
                .to_be_bytes()
                .to_vec()
        })
        .unwrap_or_default()
}

fn nanos(timestamp: &str) -> Option<u64> {
    let t: jiff::Timestamp = timestamp.parse().ok()?;
    u64::try_from(t.as_nanosecond()).ok()
}

fn now_nanos() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or_default()
}

fn text(s: &str) -> Any {
    Any::StringValue(s.to_owned())
}

fn int(n: u64) -> Any {
    Any::IntValue(i64::try_from(n).unwrap_or(i64::MAX))
}

fn json(v: &Value) -> Any {
    match v {
        Value::String(s) => Any::StringValue(s.clone()),
        Value::Bool(b) => Any::BoolValue(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Any::IntValue(i),
            (None, Some(f)) => Any::DoubleValue(f),
            _ => Any::StringValue(n.to_string()),
        },
        other => Any::StringValue(other.to_string()),
    }
}

fn value(v: Any) -> AnyValue {
    AnyValue { value: Some(v) }
}

fn kv(key: &str, v: Any) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value(v)),
        ..KeyValue::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map_to_otel_numbers() {
        assert_eq!(audit_severity("critical"), (21, "FATAL"));
        assert_eq!(audit_severity("info"), (9, "INFO"));
        assert_eq!(audit_severity("warn").0, 13);
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
