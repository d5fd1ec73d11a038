//! The sys and api streams against baselines measured in the same run.
//!
//! `cargo bench -p fasten --features http --bench streams` prints:
//! - per-request latency (p50, p99) of an axum route called in-process
//!   (tower `oneshot`, no sockets, so the layers are not hidden by network
//!   noise) with and without `RequestIdLayer` + `ApiLogLayer`, and the
//!   difference (goal: under 5 µs at p50), with api rows kept in the ring
//!   only and with a SQLite api table;
//! - the cost of one `tracing::info!` through fasten's sys layer against
//!   `tracing_subscriber::fmt().json()` writing to a sink;
//! - the memory of 10,000 sys rows and 10,000 api rows in the rings
//!   (resident set growth while filling them).
//!
//! Set `FASTEN_BENCH_REQUESTS` to change the number of requests per side.

#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use fasten::code::Registry;
use fasten::{Config, Dsn, Fasten, Stdout};
use tower::ServiceExt;
use tracing_subscriber::prelude::*;

fn pipeline(dir: &Path, api_store: bool) -> Fasten {
    let file = format!("sqlite:///{}", dir.join("bench.db").display());
    let mut config = Config::new()
        .service_id("bench")
        .node_id("node-1")
        .audit_dsn(Dsn::parse("FASTEN_AUDIT_DSN", &file).expect("dsn"))
        .stdout(Stdout::NONE)
        .registry(Registry::new());
    if api_store {
        config = config.api_dsn(Dsn::parse_for("FASTEN_API_DSN", &file, "api_log").expect("dsn"));
    }
    config.build().expect("pipeline")
}

fn app() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Per-request times of `router`, `n` requests, in blocks alternating with
/// the bare router so both see the same machine.
fn requests(bare: &Router, layered: &Router, n: usize) -> [(Duration, Duration); 2] {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut times = [Vec::with_capacity(n), Vec::with_capacity(n)];
    rt.block_on(async {
        for block in 0..(n / 1000) * 2 {
            let side = block % 2;
            let router = if side == 0 { bare } else { layered };
            for i in 0..1000 {
                let req = axum::http::Request::get(format!("/users/{i}"))
                    .header("x-request-id", "bench-req-1")
                    .body(Body::empty())
                    .expect("request");
                let r = router.clone();
                let t = Instant::now();
                let res = r.oneshot(req).await.expect("infallible");
                black_box(res);
                times[side].push(t.elapsed());
            }
        }
    });
    times.map(|mut t| {
        t.sort();
        (percentile(&t, 0.5), percentile(&t, 0.99))
    })
}

fn ns_per_event(n: u64, dispatch: &tracing::Dispatch) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        let start = Instant::now();
        for i in 0..n {
            tracing::info!(order = i, sku = "WIDGET", user = "alice", "order placed");
        }
        start.elapsed().as_nanos() as f64 / n as f64
    })
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn main() {
    let n: usize = std::env::var("FASTEN_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let us = |d: Duration| d.as_secs_f64() * 1e6;

    println!("== HTTP layers, {n} requests per side (in-process, tower oneshot)");
    for api_store in [false, true] {
        let fasten = pipeline(dir.path(), api_store);
        let layered = app()
            .layer(fasten.api_layer())
            .layer(fasten::http::RequestIdLayer::new());
        let [(b50, b99), (l50, l99)] = requests(&app(), &layered, n);
        println!(
            "api rows to {:<12} bare p50 {:>6.2} µs p99 {:>6.2} µs | layered p50 {:>6.2} µs p99 {:>6.2} µs | added p50 {:>5.2} µs, p99 {:>5.2} µs (goal p50 < 5 µs)",
            if api_store { "ring+sqlite" } else { "ring" },
            us(b50),
            us(b99),
            us(l50),
            us(l99),
            us(l50) - us(b50),
            us(l99) - us(b99),
        );
        fasten.shutdown(Duration::from_secs(30)).expect("shutdown");
        let _ = std::fs::remove_file(dir.path().join("bench.db"));
    }

    println!("== one tracing::info! with three fields");
    let events = 200_000;
    let fmt_json = tracing::Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::sink),
        ),
    );
    let fasten = pipeline(dir.path(), false);
    let sys = tracing::Dispatch::new(tracing_subscriber::registry().with(fasten.sys_layer()));
    // Warm both, then measure each twice, interleaved.
    ns_per_event(10_000, &fmt_json);
    ns_per_event(10_000, &sys);
    let fmt_ns = (ns_per_event(events, &fmt_json) + ns_per_event(events, &fmt_json)) / 2.0;
    let sys_ns = (ns_per_event(events, &sys) + ns_per_event(events, &sys)) / 2.0;
    println!(
        "fmt().json() to a sink {fmt_ns:>7.0} ns | fasten sys layer (ring) {sys_ns:>7.0} ns | ratio {:.2}",
        sys_ns / fmt_ns
    );
    fasten.shutdown(Duration::from_secs(30)).expect("shutdown");

    println!("== memory of full rings (10,000 rows each)");
    let before = rss_kib();
    let fasten = pipeline(dir.path(), false);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(fasten.sys_layer()));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..10_000u64 {
            tracing::info!(order = i, sku = "WIDGET", user = "alice", "order placed");
        }
    });
    let after_sys = rss_kib();
    let layered = app()
        .layer(fasten.api_layer())
        .layer(fasten::http::RequestIdLayer::new());
    let _ = requests(&app(), &layered, 10_000);
    let after_api = rss_kib();
    let stats = (fasten.sys_stats(), fasten.api_stats());
    println!(
        "sys ring {} rows: +{:.1} MiB | api ring {} rows: +{:.1} MiB (goal < 8 MiB per 10k rows)",
        stats.0.ring_len,
        (after_sys.saturating_sub(before)) as f64 / 1024.0,
        stats.1.ring_len,
        (after_api.saturating_sub(after_sys)) as f64 / 1024.0,
    );
}
