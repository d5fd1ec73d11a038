//! Issue 20, OpenTelemetry: a real OTLP/HTTP receiver decoding with the
//! official protobuf definitions (opentelemetry-proto), and an axum service
//! under `tracing-opentelemetry` whose span, api row, sys rows and audit
//! rows share one id.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use fasten::record::{ApiRecord, LogLine};
use fasten::{Event, Fasten, RequestId, Stdout, StreamQuery, context};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message as _;
use tracing_subscriber::prelude::*;

use super::support::config;

const SECS: Duration = Duration::from_secs(10);

/// The requests a collector received, each with its headers.
type Received = Arc<Mutex<Vec<(Vec<(String, String)>, ExportLogsServiceRequest)>>>;

/// A collector: `POST /v1/logs` decoded with the official types. While
/// `hold` is true, requests wait (a stalled collector).
struct Collector {
    url: String,
    requests: Received,
    hold: tokio::sync::watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Shared = (Received, tokio::sync::watch::Receiver<bool>);

async fn logs(
    State((requests, mut hold)): State<Shared>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    let _ = hold.wait_for(|held| !held).await;
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let request = ExportLogsServiceRequest::decode(body).expect("a valid OTLP protobuf body");
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    requests.lock().unwrap().push((headers, request));
    (
        axum::http::StatusCode::OK,
        ExportLogsServiceResponse::default().encode_to_vec(),
    )
}

impl Collector {
    fn start() -> Self {
        let requests = Arc::default();
        let (hold, held) = tokio::sync::watch::channel(false);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let shared: Shared = (Arc::clone(&requests), held);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                url_tx
                    .send(format!("http://{}", listener.local_addr().unwrap()))
                    .unwrap();
                let app = Router::new()
                    .route("/v1/logs", post(logs))
                    .with_state(shared);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            url: url_rx.recv().unwrap(),
            requests,
            hold,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Every record received so far.
    fn records(&self) -> Vec<LogRecord> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, r)| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| s.log_records.clone())
            .collect()
    }

    /// Polls until `n` records arrived, up to a deadline.
    fn wait_for(&self, n: usize) -> Vec<LogRecord> {
        let deadline = Instant::now() + SECS;
        loop {
            let records = self.records();
            if records.len() >= n {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} records",
                records.len()
            );
            std::thread::yield_now();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.hold.send(false);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn attr(record: &LogRecord, key: &str) -> Option<Any> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn text(record: &LogRecord, key: &str) -> String {
    match attr(record, key) {
        Some(Any::StringValue(s)) => s,
        other => panic!("{key}: {other:?}"),
    }
}

fn body(record: &LogRecord) -> String {
    match record.body.clone().and_then(|b| b.value) {
        Some(Any::StringValue(s)) => s,
        other => panic!("body: {other:?}"),
    }
}

fn stream_of<'a>(records: &'a [LogRecord], stream: &str) -> Vec<&'a LogRecord> {
    records
        .iter()
        .filter(|r| text(r, "fasten.stream") == stream)
        .collect()
}

fn pipeline(path: &std::path::Path, collector: &Collector) -> Fasten {
    config(path, "node-1")
        .stdout(Stdout::NONE)
        .otlp_endpoint(&collector.url)
        .otlp_headers([("x-api-key", "k-123")])
        .build()
        .unwrap()
}

#[test]
fn issue_20_the_three_streams_arrive_as_otlp_log_records() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let fasten = pipeline(&dir.path().join("a.db"), &collector);
    let id = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let scope_trace = context::with(id.clone(), || {
        fasten
            .emit(
                Event::new("USER_UPDATED")
                    .actor("u-1", fasten::ActorKind::User)
                    .target("cust-42")
                    .severity(fasten::Severity::Warn)
                    .detail(serde_json::json!({ "plan": "pro" })),
            )
            .unwrap();
        assert!(
            fasten.log(
                LogLine::new("error", "payment failed")
                    .unwrap()
                    .target("app.billing")
                    .field("attempt", 3)
            )
        );
        fasten.record_api(
            ApiRecord::new(id.clone(), "GET", "/users/7?token=x", 404, SECS / 100)
                .unwrap()
                .route("/users/{id}"),
        );
        context::trace().unwrap()
    });
    fasten.flush(SECS).unwrap();
    fasten.flush_copies(SECS).unwrap();
    let records = collector.wait_for(3);
    assert_eq!(records.len(), 3);

    let requests = collector.requests.lock().unwrap();
    let (headers, first) = &requests[0];
    assert!(headers.contains(&("x-api-key".to_owned(), "k-123".to_owned())));
    let resource = first.resource_logs[0].resource.clone().unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.clone()?.value);
    assert_eq!(service, Some(Any::StringValue("it".to_owned())));
    assert_eq!(
        first.resource_logs[0].scope_logs[0]
            .scope
            .as_ref()
            .unwrap()
            .name,
        "fasten"
    );
    drop(requests);

    let want_trace = hex::decode(id.as_str()).unwrap();
    let want_span = hex::decode(scope_trace.span_id()).unwrap();

    let audit = stream_of(&records, "audit");
    let [audit] = audit.as_slice() else {
        panic!("{audit:?}")
    };
    assert_eq!(body(audit), "USER_UPDATED");
    assert_eq!(audit.event_name, "USER_UPDATED");
    assert_eq!(
        (audit.severity_number, audit.severity_text.as_str()),
        (13, "warn")
    );
    for (key, want) in [
        ("fasten.code", "USER_UPDATED"),
        ("fasten.actor", "u-1"),
        ("fasten.actor_kind", "user"),
        ("fasten.target", "cust-42"),
        ("fasten.request_id", id.as_str()),
        ("fasten.domain", "iam"),
        ("fasten.outcome", "success"),
    ] {
        assert_eq!(text(audit, key), want, "{key}");
    }
    assert_eq!(attr(audit, "fasten.seq"), Some(Any::IntValue(1)));
    assert_eq!(text(audit, "fasten.detail"), r#"{"plan":"pro"}"#);
    assert_eq!(text(audit, "fasten.hash").len(), 64);
    assert_eq!((&audit.trace_id, &audit.span_id), (&want_trace, &want_span));
    assert!(audit.time_unix_nano > 0);

    let sys = stream_of(&records, "sys");
    let [sys] = sys.as_slice() else {
        panic!("{sys:?}")
    };
    assert_eq!(body(sys), "payment failed");
    assert_eq!(
        (sys.severity_number, sys.severity_text.as_str()),
        (17, "ERROR")
    );
    assert_eq!(text(sys, "fasten.log_target"), "app.billing");
    assert_eq!(attr(sys, "attempt"), Some(Any::IntValue(3)));
    assert_eq!((&sys.trace_id, &sys.span_id), (&want_trace, &want_span));

    let api = stream_of(&records, "api");
    let [api] = api.as_slice() else {
        panic!("{api:?}")
    };
    assert_eq!(body(api), "GET /users/{id} 404");
    assert_eq!(api.severity_number, 13);
    assert_eq!(text(api, "http.route"), "/users/{id}");
    assert_eq!(text(api, "url.path"), "/users/7");
    assert_eq!(
        attr(api, "http.response.status_code"),
        Some(Any::IntValue(404))
    );
    assert_eq!((&api.trace_id, &api.span_id), (&want_trace, &want_span));

    let stats = fasten.otlp_stats().unwrap();
    assert_eq!((stats.exported, stats.dropped, stats.failed), (3, 0, 0));
}

#[test]
fn issue_20_a_stalled_collector_costs_copies_never_emits() {
    let collector = Collector::start();
    collector.hold.send(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fasten = config(&dir.path().join("a.db"), "node-1")
        .stdout(Stdout::NONE)
        .otlp_endpoint(format!("{}/v1/logs", collector.url))
        .otlp_queue_capacity(4)
        .build()
        .unwrap();
    // Rows count as queued until handed over, the one in flight too: past
    // four, copies are dropped while emit and log go on.
    for i in 0..10 {
        assert!(fasten.log(LogLine::new("info", format!("line {i}")).unwrap()));
        fasten.emit(Event::new("USER_CREATED").target("u")).unwrap();
    }
    fasten.flush(SECS).unwrap();
    let stats = fasten.otlp_stats().unwrap();
    assert!(stats.dropped >= 16, "{stats:?}");
    assert_eq!(
        fasten.queue_stats().written,
        10,
        "every audit row is stored"
    );
    collector.hold.send(false).unwrap();
    fasten.flush_copies(SECS).unwrap();
    let stats = fasten.otlp_stats().unwrap();
    assert_eq!(stats.exported + stats.dropped, 20, "{stats:?}");
    assert_eq!(collector.records().len() as u64, stats.exported);

    // A collector that is not there: requests fail, counted, and emit goes on.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let fasten = config(&dir.path().join("b.db"), "node-1")
        .stdout(Stdout::NONE)
        .otlp_endpoint(gone)
        .build()
        .unwrap();
    fasten.emit(Event::new("USER_CREATED").target("u")).unwrap();
    fasten.flush(SECS).unwrap();
    fasten.flush_copies(SECS).unwrap();
    let stats = fasten.otlp_stats().unwrap();
    assert_eq!(stats.failed, 1, "{stats:?}");
    assert!(stats.last_error.unwrap().contains("/v1/logs"));
}

#[test]
fn issue_20_an_endpoint_needs_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let err = config(&dir.path().join("a.db"), "node-1")
        .otlp_endpoint("localhost:4318")
        .build()
        .unwrap_err();
    insta::assert_snapshot!(err, @r#"invalid FASTEN_OTLP_ENDPOINT "localhost:4318": expected an http:// or https:// URL, e.g. http://localhost:4318"#);
    let err = fasten::Config::from_pairs([("FASTEN_OTLP_HEADERS", "api-key")]).unwrap_err();
    insta::assert_snapshot!(err, @r#"invalid FASTEN_OTLP_HEADERS entry "api-key": expected comma-separated name=value pairs, e.g. api-key=secret123,x-team=ops"#);
}

mod service {
    use super::*;
    use axum::extract::Path as UrlPath;
    use axum::routing::get;
    use fasten::http::{TRACEPARENT, X_REQUEST_ID};
    use tracing::Instrument as _;

    #[derive(Clone)]
    struct App {
        fasten: Fasten,
    }

    /// The handler's own span (under tracing-opentelemetry) and what it
    /// sees: the OpenTelemetry span's ids and fasten's ambient id.
    async fn order(
        State(app): State<App>,
        UrlPath(id): UrlPath<String>,
    ) -> axum::Json<serde_json::Value> {
        let span = tracing::info_span!("place_order", order = %id);
        async move {
            let otel = opentelemetry::Context::current();
            let sc = otel.span().span_context().clone();
            assert!(fasten::http::set_actor("u-42"));
            tracing::info!(order = %id, "placing order");
            app.fasten
                .emit(Event::new("USER_CREATED").target(format!("order/{id}")))
                .unwrap();
            axum::Json(serde_json::json!({
                "trace_id": sc.trace_id().to_string(),
                "span_id": sc.span_id().to_string(),
                "request_id": context::current().unwrap().as_str(),
            }))
        }
        .instrument(span)
        .await
    }

    struct Seen {
        request_id: String,
        traceparent: String,
        trace_id: String,
        span_id: String,
        ambient: String,
    }

    async fn call(base: &str, path: &str, headers: &[(&str, &str)]) -> Seen {
        let mut req = reqwest::Client::new().post(format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let request_id = res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
        let traceparent = res.headers()[TRACEPARENT].to_str().unwrap().to_owned();
        let v: serde_json::Value = res.json().await.unwrap();
        Seen {
            request_id,
            traceparent,
            trace_id: v["trace_id"].as_str().unwrap().to_owned(),
            span_id: v["span_id"].as_str().unwrap().to_owned(),
            ambient: v["request_id"].as_str().unwrap().to_owned(),
        }
    }

    #[test]
    fn issue_20_one_id_across_the_span_and_the_three_streams() {
        let collector = Collector::start();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let fasten = pipeline(&path, &collector);
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(fasten.sys_layer())
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("it")));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let (minted, joined, both, outside) = tracing::subscriber::with_default(subscriber, || {
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let base = format!("http://{}", listener.local_addr().unwrap());
                let app = Router::new()
                    .route("/orders/{id}", post(order))
                    .route("/health", get(|| async { "ok" }))
                    .with_state(App {
                        fasten: fasten.clone(),
                    })
                    .layer(fasten.http_layer());
                let server = tokio::spawn(async move {
                    axum::serve(listener, app).await.unwrap();
                });
                // No header: fasten mints the id, and the span joins it.
                let minted = call(&base, "/orders/1", &[]).await;
                // A traceparent: its trace is the id and the span's trace.
                let joined = call(&base, "/orders/2", &[("traceparent", tp)]).await;
                // Both, disagreeing: X-Request-ID is the id, the trace is kept.
                let both = call(
                    &base,
                    "/orders/3",
                    &[("x-request-id", "order-3"), ("traceparent", tp)],
                )
                .await;
                server.abort();
                // No fasten scope: an active span's trace id is the id.
                let span = tracing::info_span!("batch_job");
                let outside = async {
                    tracing::info!("batch started");
                    fasten
                        .emit(Event::new("USER_UPDATED").target("batch"))
                        .unwrap();
                    let cx = opentelemetry::Context::current();
                    let trace = cx.span().span_context().trace_id().to_string();
                    (trace, context::current().unwrap().as_str().to_owned())
                }
                .instrument(span)
                .await;
                (minted, joined, both, outside)
            })
        });

        // Minted: one id everywhere, the span's trace included.
        assert_eq!(minted.request_id.len(), 32);
        assert_eq!(minted.trace_id, minted.request_id);
        assert_eq!(minted.ambient, minted.request_id);
        assert!(minted.traceparent.contains(&minted.request_id));
        // Joined: the caller's trace id is the id; the span is its child.
        assert_eq!(joined.request_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(joined.trace_id, joined.request_id);
        assert_eq!(joined.traceparent, tp, "the response echoes the trace");
        // Both: the header's id wins, the traceparent's trace is kept.
        assert_eq!(
            (both.request_id.as_str(), both.ambient.as_str()),
            ("order-3", "order-3")
        );
        assert_eq!(both.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(both.traceparent, tp);
        // Outside any fasten scope, the active span's trace id is the id.
        assert_eq!(outside.0, outside.1);

        fasten.flush(SECS).unwrap();
        fasten.flush_streams(SECS).unwrap();
        fasten.flush_copies(SECS).unwrap();
        for seen in [&minted, &joined, &both] {
            let rid = RequestId::parse(&seen.request_id).unwrap();
            let api = fasten
                .api_rows(&StreamQuery::new(10).request_id(rid.clone()))
                .unwrap();
            let [api] = api.rows.as_slice() else {
                panic!("one api row for {}", seen.request_id)
            };
            assert_eq!(api.trace_id.as_deref(), Some(seen.trace_id.as_str()));
            assert_eq!(api.actor.as_deref(), Some("u-42"));
            let sys = fasten
                .sys_rows(&StreamQuery::new(10).request_id(rid))
                .unwrap();
            let placing = sys
                .rows
                .iter()
                .find(|r| r.message == "placing order")
                .unwrap();
            // The sys row has the handler span's own ids.
            assert_eq!(placing.trace_id.as_deref(), Some(seen.trace_id.as_str()));
            assert_eq!(placing.span_id.as_deref(), Some(seen.span_id.as_str()));
            let audit: Vec<(String, String)> = rusqlite::Connection::open(&path)
                .unwrap()
                .prepare("SELECT code, actor FROM audit_log WHERE request_id = ?1")
                .unwrap()
                .query_map([&seen.request_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(audit, vec![("USER_CREATED".to_owned(), "u-42".to_owned())]);
        }
        let outside_rows: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM audit_log WHERE request_id = ?1 AND code = 'USER_UPDATED'",
                [&outside.1],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(outside_rows, 1);

        // The exported audit records carry the handler span's ids.
        let records = collector.wait_for(1);
        for seen in [&minted, &joined, &both] {
            let audit = records
                .iter()
                .find(|r| {
                    text(r, "fasten.stream") == "audit"
                        && text(r, "fasten.request_id") == seen.request_id
                })
                .unwrap_or_else(|| panic!("an audit record for {}", seen.request_id));
            assert_eq!(hex::encode(&audit.trace_id), seen.trace_id);
            assert_eq!(hex::encode(&audit.span_id), seen.span_id);
        }
    }
}
