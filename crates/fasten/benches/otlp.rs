//! What OTLP export costs the audit pipeline (issue 20): emit latency and
//! writer throughput with `FASTEN_OTLP_ENDPOINT` set against a local
//! collector, beside the same runs with export off, interleaved in one
//! process (off, on, on, off …) so drift hits both alike.
//!
//! `cargo bench -p fasten --features otlp --bench otlp` prints, per mode,
//! the median over the rounds of:
//! - caller-side `emit` p50 and p99, paced at a steady rate;
//! - sustained rows/s from the first emit to a completed flush;
//!
//! and the ratios on / off. Goal: emit p50 at most 5 % slower, throughput
//! at most 10 % lower. The collector answers `200` after reading each
//! request whole (it does not decode: the tests do that); the export
//! counters (exported, dropped) are printed too, since a copy that cannot
//! keep up is dropped, never waited for.
//!
//! `FASTEN_BENCH_ROWS` sets the throughput runs' size (default 200,000),
//! `FASTEN_BENCH_ROUNDS` the rounds (default 5; which mode goes first
//! alternates).

#![allow(clippy::print_stdout, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fasten::code::{Meta, Registry};
use fasten::{Config, Dsn, Event, ExportStats, Stdout};
use serde_json::json;

const BATCH: usize = 2048;

fn config(path: &Path, endpoint: Option<&str>) -> Config {
    let registry = Registry::new();
    registry
        .register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])
        .expect("valid code");
    let config = Config::new()
        .service_id("bench")
        .node_id("node-1")
        .stdout(Stdout::NONE)
        .audit_dsn(
            Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display()))
                .expect("valid dsn"),
        )
        .audit_queue_capacity(65_536)
        .audit_batch_size(BATCH)
        .registry(registry);
    match endpoint {
        Some(url) => config.otlp_endpoint(url),
        None => config,
    }
}

fn event(i: u64) -> Event {
    Event::new("ORDER_PLACED")
        .target("order/42")
        .detail(json!({ "qty": i, "sku": "WIDGET" }))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Calls `f` `n` times at `rate` calls/s, timing each call.
fn paced(n: usize, rate: f64, mut f: impl FnMut(u64)) -> (Duration, Duration) {
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut times = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let due = start + gap * i as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let t = Instant::now();
        f(i as u64);
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

struct Run {
    p50: Duration,
    p99: Duration,
    rows_per_s: f64,
    export: Option<ExportStats>,
}

fn run(dir: &Path, round: usize, endpoint: Option<&str>, n: usize, rate: f64, rows: usize) -> Run {
    let tag = if endpoint.is_some() { "on" } else { "off" };
    let fasten = config(&dir.join(format!("lat-{tag}-{round}.db")), endpoint)
        .build()
        .expect("pipeline starts");
    let (p50, p99) = paced(n, rate, |i| {
        fasten.emit(event(i)).expect("emit");
    });
    fasten.shutdown(Duration::from_secs(600)).expect("shutdown");

    let fasten = config(&dir.join(format!("tp-{tag}-{round}.db")), endpoint)
        .build()
        .expect("pipeline starts");
    let start = Instant::now();
    for i in 0..rows as u64 {
        fasten.emit(event(i)).expect("emit");
    }
    fasten.flush(Duration::from_secs(600)).expect("flush");
    let rows_per_s = rows as f64 / start.elapsed().as_secs_f64();
    assert_eq!(fasten.queue_stats().written as usize, rows);
    fasten
        .flush_copies(Duration::from_secs(600))
        .expect("copies");
    let export = fasten.otlp_stats();
    fasten.shutdown(Duration::from_secs(600)).expect("shutdown");
    Run {
        p50,
        p99,
        rows_per_s,
        export,
    }
}

/// A local collector: reads each `POST /v1/logs` whole, answers 200.
fn collector(bytes: Arc<AtomicU64>) -> String {
    use axum::routing::post;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(format!("http://{}", listener.local_addr().expect("addr")))
                .expect("send url");
            let app = axum::Router::new().route(
                "/v1/logs",
                post(move |body: axum::body::Bytes| {
                    let bytes = Arc::clone(&bytes);
                    async move {
                        bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                        ""
                    }
                }),
            );
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv().expect("collector url")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rows = env("FASTEN_BENCH_ROWS", 200_000);
    let rounds = env("FASTEN_BENCH_ROUNDS", 5).max(1);
    let (n, rate) = (50_000, 20_000.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let received = Arc::new(AtomicU64::new(0));
    let url = collector(Arc::clone(&received));

    println!(
        "OTLP export on vs off, {rounds} rounds interleaved; emit: {n} calls paced at {rate} calls/s; throughput: {rows} rows, batches of {BATCH}, WAL, synchronous=FULL"
    );
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 0..rounds {
        // Alternate which goes first, so drift in the machine's load
        // favours neither.
        if round % 2 == 0 {
            off.push(run(dir.path(), round, None, n, rate, rows));
            on.push(run(dir.path(), round, Some(&url), n, rate, rows));
        } else {
            on.push(run(dir.path(), round, Some(&url), n, rate, rows));
            off.push(run(dir.path(), round, None, n, rate, rows));
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let summary = |runs: &[Run]| {
        (
            median(runs.iter().map(|r| us(r.p50)).collect()),
            median(runs.iter().map(|r| us(r.p99)).collect()),
            median(runs.iter().map(|r| r.rows_per_s).collect()),
        )
    };
    let (off_p50, off_p99, off_tp) = summary(&off);
    let (on_p50, on_p99, on_tp) = summary(&on);
    for (i, (a, b)) in off.iter().zip(&on).enumerate() {
        println!(
            "  round {i}: off p50 {:>6.2} µs {:>9.0} rows/s | on p50 {:>6.2} µs {:>9.0} rows/s",
            us(a.p50),
            a.rows_per_s,
            us(b.p50),
            b.rows_per_s
        );
    }
    println!(
        "  export off   emit p50 {off_p50:>7.2} µs  p99 {off_p99:>7.2} µs  writer {off_tp:>9.0} rows/s"
    );
    println!(
        "  export on    emit p50 {on_p50:>7.2} µs  p99 {on_p99:>7.2} µs  writer {on_tp:>9.0} rows/s"
    );
    println!(
        "  on / off     emit p50 {:>+6.1} %             writer {:>+6.1} %   (goal: p50 ≤ +5 %, writer ≥ -10 %)",
        (on_p50 / off_p50 - 1.0) * 100.0,
        (on_tp / off_tp - 1.0) * 100.0
    );
    let exported: u64 = on
        .iter()
        .filter_map(|r| r.export.as_ref())
        .map(|s| s.exported)
        .sum();
    let dropped: u64 = on
        .iter()
        .filter_map(|r| r.export.as_ref())
        .map(|s| s.dropped)
        .sum();
    let failed: u64 = on
        .iter()
        .filter_map(|r| r.export.as_ref())
        .map(|s| s.failed)
        .sum();
    println!(
        "  throughput runs' export: {exported} records exported, {dropped} dropped (queue full), {failed} failed; collector read {:.1} MiB in all",
        received.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
    );
}
