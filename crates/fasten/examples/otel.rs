//! OpenTelemetry both ways (issue 20): an axum service under
//! `tracing-opentelemetry` whose span, api row, sys row and audit row share
//! one id, with the three streams exported as OTLP log records.
//!
//! ```sh
//! cargo run -p fasten --features http,otel,otlp --example otel
//! # or against your own collector (OpenTelemetry Collector, Jaeger, …):
//! FASTEN_OTLP_ENDPOINT=http://localhost:4318 cargo run -p fasten --features http,otel,otlp --example otel
//! ```
//!
//! Without `FASTEN_OTLP_ENDPOINT` it starts a small collector of its own on
//! loopback that counts the records it receives.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use fasten::code::{Meta, Registry};
use fasten::{Config, Event, Stdout, StreamQuery};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use prost::Message as _;
use tracing::Instrument as _;
use tracing_subscriber::prelude::*;

/// A loopback OTLP/HTTP collector that decodes each request and counts
/// its records.
// fasten:no-audit the example's stand-in collector counts records; it changes no data
async fn own_collector(records: Arc<AtomicU64>) -> String {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/v1/logs",
        post(move |body: axum::body::Bytes| async move {
            let req = ExportLogsServiceRequest::decode(body).unwrap();
            let n: usize = req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum();
            records.fetch_add(n as u64, Ordering::Relaxed);
            ""
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn place_order(fasten: fasten::Fasten) -> String {
    let span = tracing::info_span!("place_order");
    async move {
        assert!(fasten::http::set_actor("u-42"));
        tracing::info!(order = 7, "placing order");
        fasten
            .emit(Event::new("ORDER_PLACED").target("order/7"))
            .unwrap();
        let cx = opentelemetry::Context::current();
        format!("span trace id {}", cx.span().span_context().trace_id())
    }
    .instrument(span)
    .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records = Arc::new(AtomicU64::new(0));
    let endpoint = match std::env::var("FASTEN_OTLP_ENDPOINT") {
        Ok(url) => url,
        Err(_) => own_collector(Arc::clone(&records)).await,
    };
    let dir = tempfile::tempdir()?;
    let codes = Registry::new();
    codes.register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])?;
    let fasten = Config::new()
        .service_id("shop")
        .node_id("node-1")
        .audit_dsn(fasten::Dsn::parse(
            "FASTEN_AUDIT_DSN",
            &format!("sqlite:///{}", dir.path().join("audit.db").display()),
        )?)
        .registry(codes)
        .stdout(Stdout::NONE)
        .otlp_endpoint(endpoint)
        .build()?;

    // Your tracer provider, with whatever span exporter you run.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    tracing_subscriber::registry()
        .with(fasten.sys_layer())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("shop")))
        .init();

    let f = fasten.clone();
    let app = Router::new()
        .route("/orders", post(move || place_order(f.clone())))
        .layer(fasten.http_layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let res = reqwest::Client::new()
        .post(format!("{base}/orders"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await?;
    let id = res.headers()["x-request-id"].to_str()?.to_owned();
    println!("X-Request-ID  {id}");
    println!("traceparent   {}", res.headers()["traceparent"].to_str()?);
    println!("handler       {}", res.text().await?);

    fasten.flush_async(Duration::from_secs(10)).await?;
    fasten.flush_streams(Duration::from_secs(10))?;
    let rid = fasten::RequestId::parse(&id)?;
    for row in fasten
        .api_rows(&StreamQuery::new(5).request_id(rid.clone()))?
        .rows
    {
        println!(
            "api row       {} {} {} trace_id={}",
            row.method,
            row.route,
            row.status,
            row.trace_id.unwrap_or_default()
        );
    }
    for row in fasten.sys_rows(&StreamQuery::new(5).request_id(rid))?.rows {
        println!(
            "sys row       {:?} trace_id={} span_id={}",
            row.message,
            row.trace_id.unwrap_or_default(),
            row.span_id.unwrap_or_default()
        );
    }
    let copies = fasten.clone();
    tokio::task::spawn_blocking(move || copies.flush_copies(Duration::from_secs(10))).await??;
    let stats = fasten.otlp_stats().unwrap();
    println!(
        "OTLP export   {} records exported, {} dropped, {} failed",
        stats.exported, stats.dropped, stats.failed
    );
    if std::env::var("FASTEN_OTLP_ENDPOINT").is_err() {
        println!(
            "collector     received {} records",
            records.load(Ordering::Relaxed)
        );
    }
    Ok(())
}
