//! OTLP/HTTP export (feature `otlp`): the three streams as OpenTelemetry
//! log records, a copy for the log store people already run.
//!
//! Audit rows are handed over after their commit (the store first, export
//! is a copy); sys and api rows as they are pushed. A [`Tap`] queues them
//! (bounded in rows, never blocking the caller: past the bound copies are
//! dropped and counted) for one background thread that encodes each batch
//! as one `ExportLogsServiceRequest` (written straight to the protobuf wire
//! format; the tests decode it with the official definitions from
//! `opentelemetry-proto`) and POSTs it with
//! `Content-Type: application/x-protobuf`. A failed request is counted in
//! [`ExportStats::failed`](crate::tap::ExportStats) with its error, not
//! retried: export never holds rows back.

mod encode;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::stream::{ApiRow, Origin, PackedSys};
use crate::tap::Tap;
use crate::writer::Committed;

/// Records sent in one request, at most.
const BATCH_ROWS: usize = 1024;
/// How long the exporter waits for a batch to fill: at most this late, and
/// a few requests a second rather than one per committed batch.
const LINGER: Duration = Duration::from_millis(200);
/// How long one export request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One queued copy.
pub(crate) enum Item {
    Audit(Arc<Committed>),
    Sys(Arc<PackedSys>),
    Api(Arc<ApiRow>),
}

/// Where records go and what identifies the process.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) capacity: usize,
}

/// The URL records are POSTed to: `/v1/logs` under the endpoint, unless
/// it already names it.
fn logs_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/logs") {
        base.to_owned()
    } else {
        format!("{base}/v1/logs")
    }
}

/// Starts the exporter's thread.
pub(crate) fn start(settings: Settings, origin: &Origin) -> Result<Tap<Item>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let url = logs_url(&settings.endpoint);
    let headers = settings.headers;
    let resource = encode::resource(origin);
    let mut encoder = encode::Encoder::default();
    let mut body = Vec::with_capacity(64 * 1024);
    Tap::start(
        "otlp",
        settings.capacity,
        BATCH_ROWS,
        LINGER,
        move |items: Vec<Item>| {
            body.clear();
            let n = encoder.request(&resource, &items, &mut body);
            let mut post = agent
                .post(&url)
                .header("content-type", "application/x-protobuf");
            for (k, v) in &headers {
                post = post.header(k, v);
            }
            match post.send(&body[..]) {
                Ok(_) => Ok(n),
                Err(e) => Err((n, format!("POST {url}: {e}"))),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_to_v1_logs() {
        assert_eq!(
            logs_url("http://localhost:4318"),
            "http://localhost:4318/v1/logs"
        );
        assert_eq!(logs_url("http://c:4318/"), "http://c:4318/v1/logs");
        assert_eq!(logs_url("http://c/otlp/v1/logs"), "http://c/otlp/v1/logs");
    }
}
