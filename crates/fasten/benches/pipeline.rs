//! The audit pipeline against plain baselines measured in the same run.
//!
//! `cargo bench -p fasten --bench pipeline` prints:
//! - caller-side `emit` latency (p50, p99) at a steady rate, beside a bare
//!   bounded-channel send of a row of the same size to a consumer that
//!   blocks (what a naive writer does) and to one that polls (fasten's
//!   design); the ratio against the polling consumer is the fair one;
//! - sustained rows/s from the first emit to a completed flush, beside a
//!   plain rusqlite loop inserting rows of the same shape into the same
//!   schema, same batch size, WAL and `synchronous=FULL`.
//!
//! Set `FASTEN_BENCH_ROWS` to change the throughput run's size.

#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use fasten::code::{Meta, Registry};
use fasten::{Config, Dsn, Event, Fasten};

use serde_json::json;

const BATCH: usize = 2048;

fn pipeline(path: &Path, capacity: usize) -> Fasten {
    config(path, capacity).build().expect("pipeline starts")
}

fn config(path: &Path, capacity: usize) -> Config {
    let registry = Registry::new();
    registry
        .register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])
        .expect("valid code");
    Config::new()
        .service_id("bench")
        .node_id("node-1")
        .audit_dsn(
            Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display()))
                .expect("valid dsn"),
        )
        .audit_queue_capacity(capacity)
        .audit_batch_size(BATCH)
        .registry(registry)
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

/// A row-sized payload for the bare channel baselines.
#[derive(Clone)]
struct Payload {
    _id: String,
    _code: &'static str,
    _target: String,
    _detail: serde_json::Value,
}

fn payload(i: u64) -> Payload {
    Payload {
        _id: format!("evt-{i:020x}"),
        _code: "ORDER_PLACED",
        _target: "order/42".to_owned(),
        _detail: json!({ "qty": i, "sku": "WIDGET" }),
    }
}

fn bare_send(n: usize, rate: f64, polling: bool) -> (Duration, Duration) {
    let (tx, rx) = crossbeam_channel::bounded::<Payload>(16_384);
    let consumer = std::thread::spawn(move || {
        if polling {
            loop {
                match rx.try_recv() {
                    Ok(p) => drop(black_box(p)),
                    Err(crossbeam_channel::TryRecvError::Empty) => {
                        std::thread::park_timeout(Duration::from_millis(1));
                    }
                    Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                }
            }
        } else {
            while let Ok(p) = rx.recv() {
                drop(black_box(p));
            }
        }
    });
    let result = paced(n, rate, |i| tx.send(payload(i)).expect("consumer alive"));
    drop(tx);
    consumer.join().expect("consumer");
    result
}

fn plain_rusqlite(path: &Path, rows: usize) -> f64 {
    // The schema fasten creates, so indexes and column types match.
    pipeline(path, 16)
        .shutdown(Duration::from_secs(10))
        .expect("schema");
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    let start = Instant::now();
    let mut i = 0;
    while i < rows {
        let tx = conn.transaction().expect("begin");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO audit_log (id, origin_id, monotonic_seq, timestamp, code, action, severity, outcome, service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id, detail, detail_salt, detail_commitment, pii_in_detail, shipped_at, wire_version, canonical_form_id, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)",
                )
                .expect("prepare");
            for _ in 0..BATCH.min(rows - i) {
                let id = format!("evt-{:020x}", rand::random::<u128>() >> 48);
                let ts = format!("{:.6}", jiff::Timestamp::now());
                let req = fasten::RequestId::mint().to_string();
                let detail = json!({ "qty": i, "sku": "WIDGET" }).to_string();
                let h = format!("{:064x}", rand::random::<u128>());
                // Every column bound, as fasten binds them.
                stmt.execute(rusqlite::params![
                    id,
                    id,
                    i as i64 + 1,
                    ts,
                    "ORDER_PLACED",
                    "create",
                    "info",
                    "success",
                    "bench",
                    "node-1",
                    None::<String>,
                    "system",
                    "service",
                    "order/42",
                    "order",
                    "sales",
                    "sdk",
                    req,
                    detail,
                    h,
                    h,
                    false,
                    None::<String>,
                    "1",
                    "3",
                    h,
                    h
                ])
                .expect("insert");
                i += 1;
            }
        }
        tx.commit().expect("commit");
    }
    rows as f64 / start.elapsed().as_secs_f64()
}

fn fasten_throughput(config: Config, rows: usize) -> f64 {
    let fasten = config.build().expect("pipeline starts");
    let start = Instant::now();
    for i in 0..rows as u64 {
        fasten.emit(event(i)).expect("emit");
    }
    fasten.flush(Duration::from_secs(600)).expect("flush");
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    let stats = fasten.queue_stats();
    assert_eq!(stats.written as usize, rows);
    rate
}

fn main() {
    let rows: usize = std::env::var("FASTEN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");

    let n = 50_000;
    let rate = 20_000.0;
    println!("caller latency, {n} calls paced at {rate} calls/s:");
    let blocking = bare_send(n, rate, false);
    let polling = bare_send(n, rate, true);
    let emit = {
        let fasten = pipeline(&dir.path().join("latency.db"), 65_536);
        let r = paced(n, rate, |i| {
            fasten.emit(event(i)).expect("emit");
        });
        fasten.shutdown(Duration::from_secs(60)).expect("shutdown");
        r
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "  bare send, blocking consumer   p50 {:>7.2} µs  p99 {:>7.2} µs",
        us(blocking.0),
        us(blocking.1)
    );
    println!(
        "  bare send, polling consumer    p50 {:>7.2} µs  p99 {:>7.2} µs",
        us(polling.0),
        us(polling.1)
    );
    println!(
        "  fasten emit (retry mode)       p50 {:>7.2} µs  p99 {:>7.2} µs",
        us(emit.0),
        us(emit.1)
    );
    println!(
        "  ratio emit / polling send      p50 {:>7.2}x    p99 {:>7.2}x",
        us(emit.0) / us(polling.0),
        us(emit.1) / us(polling.1)
    );
    println!(
        "  ratio emit / blocking send     p50 {:>7.2}x    p99 {:>7.2}x",
        us(emit.0) / us(blocking.0),
        us(emit.1) / us(blocking.1)
    );

    println!("sustained throughput, {rows} rows, batches of {BATCH}, WAL, synchronous=FULL:");
    let plain = plain_rusqlite(&dir.path().join("plain.db"), rows);
    let ours = fasten_throughput(config(&dir.path().join("fasten.db"), 65_536), rows);
    println!("  plain rusqlite loop   {plain:>10.0} rows/s");
    println!("  fasten emit→flush     {ours:>10.0} rows/s");
    println!("  ratio fasten / plain  {:>10.2}", ours / plain);

    // Signed checkpoints at the defaults (every 1000 rows, every second),
    // against the run above without them.
    let keys = fasten::transparency::generate_key("bench.example/node-1").expect("key");
    let key = dir.path().join("signing.key");
    std::fs::write(&key, &keys.signing_key).expect("key file");
    let signed_db = dir.path().join("signed.db");
    let signed = fasten_throughput(
        config(&signed_db, 65_536)
            .signing_key(&key)
            .checkpoint_dir(dir.path().join("checkpoints")),
        rows,
    );
    println!("  with signed checkpoints {signed:>8.0} rows/s");
    println!("  ratio signed / unsigned {:>8.2}", signed / ours);

    let dsn = Dsn::parse(
        "FASTEN_AUDIT_DSN",
        &format!("sqlite:///{}", signed_db.display()),
    )
    .expect("dsn");
    let start = Instant::now();
    let report = fasten::verify(&dsn).expect("verify");
    let secs = start.elapsed().as_secs_f64();
    assert!(report.ok);
    println!(
        "verify (read, re-hash, chain) of {rows} rows: {:.0} rows/s",
        rows as f64 / secs
    );
    let start = Instant::now();
    let published: Vec<(String, String)> = std::fs::read_dir(dir.path().join("checkpoints/node-1"))
        .expect("checkpoints")
        .map(|e| {
            let path = e.expect("entry").path();
            (
                path.display().to_string(),
                std::fs::read_to_string(&path).expect("note"),
            )
        })
        .collect();
    let checks = fasten::transparency::check_checkpoints(
        &dsn,
        &published,
        std::slice::from_ref(&keys.verifier_key),
    )
    .expect("check");
    assert!(checks.iter().all(|c| c.reason.is_none()));
    println!(
        "verify against {} checkpoints (tree rebuilt from the store): {:.2} s",
        checks.len(),
        start.elapsed().as_secs_f64()
    );
    let conn = rusqlite::Connection::open(&signed_db).expect("open");
    let id: String = conn
        .query_row(
            "SELECT id FROM audit_log WHERE monotonic_seq = 1",
            [],
            |r| r.get(0),
        )
        .expect("a row");
    let start = Instant::now();
    let proof = fasten::transparency::prove_row(&dsn, &id).expect("prove");
    let prove_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    fasten::transparency::verify_proof(&proof, &[keys.verifier_key]).expect("proof holds");
    let verify_us = start.elapsed().as_secs_f64() * 1e6;
    let size = serde_json::to_vec(&proof).expect("json").len();
    if let fasten::transparency::Proof::Inclusion { path, .. } = &proof {
        println!(
            "inclusion proof of seq 1 of {rows}: {} hashes, {size} bytes as JSON; prove {prove_secs:.2} s (tree from the store), verify {verify_us:.0} µs",
            path.len()
        );
    }
}
