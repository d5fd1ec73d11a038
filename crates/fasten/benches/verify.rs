//! `fasten verify` and the proof paths over a large SQLite store, against
//! baselines measured in the same run on the same file.
//!
//! `cargo bench -p fasten --bench verify` writes `FASTEN_BENCH_ROWS` rows
//! (default 1,000,000) through a signing pipeline, then prints rows/s of:
//! - a plain rusqlite scan of every column of the table, nothing hashed, in
//!   table order (what verify reads) and in chain order through the (node,
//!   seq) index (what verify read before): the store's ceiling;
//! - raw SHA-256 over the same byte volume verify hashes (two messages a
//!   row: salt ‖ detail, and the row's canonical JSON): hashing's ceiling;
//! - `fasten::verify` itself, and its ratio to each;
//!
//! then the time to check the published checkpoints and to prove one row.

#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use fasten::code::{Meta, Registry};
use fasten::{Config, Dsn, Event};
use serde_json::json;
use sha2::Digest as _;

/// The 23 hashed member names (row contract §2), for the byte volume of the
/// SHA-256 baseline.
const HASHED: [&str; 23] = [
    "action",
    "actor",
    "actor_kind",
    "canonical_form_id",
    "category",
    "code",
    "detail_commitment",
    "domain",
    "id",
    "method",
    "monotonic_seq",
    "origin_id",
    "outcome",
    "pii_in_detail",
    "prev_hash",
    "request_id",
    "service_id",
    "severity",
    "source_node_id",
    "target",
    "tenant_id",
    "timestamp",
    "wire_version",
];

const SELECT: &str = "SELECT id, origin_id, monotonic_seq, timestamp, code, action, severity, outcome, service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id, detail, detail_salt, detail_commitment, pii_in_detail, shipped_at, wire_version, canonical_form_id, prev_hash, hash FROM audit_log";
/// A node's chain through the (node, seq) index.
const BY_CHAIN: &str =
    " WHERE source_node_id = 'node-1' AND monotonic_seq > 0 ORDER BY monotonic_seq";

fn write_store(path: &Path, key: &Path, published: &Path, rows: u64) {
    let registry = Registry::new();
    registry
        .register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])
        .expect("valid code");
    let fasten = Config::new()
        .service_id("bench")
        .node_id("node-1")
        .audit_dsn(
            Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display()))
                .expect("valid dsn"),
        )
        .audit_queue_capacity(65_536)
        // The writer falls behind a loop that does nothing but emit: wait
        // for room rather than fail.
        .audit_queue_timeout(Duration::from_secs(600))
        .audit_batch_size(4096)
        .registry(registry)
        .signing_key(key)
        .checkpoint_every(100_000)
        .checkpoint_interval(Duration::from_secs(3600))
        .checkpoint_dir(published)
        .build()
        .expect("pipeline starts");
    for i in 0..rows {
        fasten
            .emit(
                Event::new("ORDER_PLACED")
                    .target(format!("order/{i}"))
                    .detail(json!({ "qty": i % 17, "sku": "WIDGET", "price": 12.5 })),
            )
            .expect("emit");
    }
    fasten.shutdown(Duration::from_secs(600)).expect("shutdown");
}

/// Reads every column of every row, in table order or (`by_chain`) in chain
/// order; returns rows/s and the bytes verify hashes per row, on average.
fn plain_scan(path: &Path, by_chain: bool) -> (f64, f64, f64) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    // As fasten's read-only store opens it.
    conn.pragma_update(None, "mmap_size", 0x7fff_0000_i64)
        .expect("mmap");
    let names: usize = HASHED.iter().map(|n| n.len() + 4).sum::<usize>() + 2;
    let start = Instant::now();
    let sql = format!("{SELECT}{}", if by_chain { BY_CHAIN } else { "" });
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let (mut n, mut row_bytes, mut detail_bytes) = (0u64, 0usize, 0usize);
    while let Some(r) = rows.next().expect("row") {
        let mut lens = 0;
        for i in 0..27 {
            let v = r.get_ref(i).expect("column");
            let len = match v {
                rusqlite::types::ValueRef::Text(t) => t.len(),
                rusqlite::types::ValueRef::Integer(i) => {
                    black_box(i).unsigned_abs().checked_ilog10().unwrap_or(0) as usize + 1
                }
                _ => 4,
            };
            match i {
                18 => detail_bytes += len + 64,
                19 | 22 | 26 => {}
                _ => lens += len + 2,
            }
        }
        row_bytes += lens + names;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    (
        n as f64 / secs,
        row_bytes as f64 / n as f64,
        detail_bytes as f64 / n as f64,
    )
}

/// SHA-256 of `rows` pairs of messages of the given sizes, as verify hashes
/// (the commitment input, then the row's canonical JSON).
fn raw_sha(rows: u64, row_bytes: usize, detail_bytes: usize) -> f64 {
    let data = vec![b'a'; row_bytes.max(detail_bytes) + 64];
    let start = Instant::now();
    for i in 0..rows {
        let at = (i % 64) as usize;
        black_box(sha2::Sha256::digest(&data[at..at + detail_bytes]));
        black_box(sha2::Sha256::digest(&data[at..at + row_bytes]));
    }
    rows as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rows: u64 = std::env::var("FASTEN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let trials: usize = std::env::var("FASTEN_BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // FASTEN_BENCH_DIR keeps the store between runs (written once, when the
    // directory has none yet), so runs can be repeated and profiled cheaply.
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = std::env::var_os("FASTEN_BENCH_DIR")
        .map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join("verify.db");
    let key = dir.join("signing.key");
    let verifier = dir.join("verifier.key");
    let published = dir.join("published");
    if !path.exists() {
        let keys = fasten::transparency::generate_key("bench.example/node-1").expect("key");
        std::fs::write(&key, &keys.signing_key).expect("key file");
        std::fs::write(&verifier, &keys.verifier_key).expect("key file");
        let start = Instant::now();
        write_store(&path, &key, &published, rows);
        println!(
            "wrote {rows} rows in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
    let verifier_key = std::fs::read_to_string(&verifier).expect("verifier key");
    let conn = rusqlite::Connection::open(&path).expect("open");
    let rows: u64 = conn
        .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get::<_, i64>(0))
        .expect("count") as u64;
    println!("{rows} rows; {trials} trials each, medians:");
    let dsn =
        Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display())).expect("dsn");

    let (mut scans, mut chain_scans, mut shas, mut verifies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut row_bytes, mut detail_bytes) = (0.0, 0.0);
    for _ in 0..trials {
        chain_scans.push(plain_scan(&path, true).0);
        let (rate, rb, db) = plain_scan(&path, false);
        scans.push(rate);
        (row_bytes, detail_bytes) = (rb, db);
        shas.push(raw_sha(rows, rb.round() as usize, db.round() as usize));
        let start = Instant::now();
        let report = fasten::verify(&dsn).expect("verify");
        verifies.push(rows as f64 / start.elapsed().as_secs_f64());
        assert!(report.ok && report.nodes[0].rows == rows, "{report:?}");
    }
    let (scan, sha, verify) = (median(scans), median(shas), median(verifies));
    let chain_scan = median(chain_scans);
    println!("  plain SELECT, chain order (index)     {chain_scan:>10.0} rows/s");
    println!("  plain SELECT, table order             {scan:>10.0} rows/s");
    println!("  raw SHA-256, {detail_bytes:.0} + {row_bytes:.0} B a row        {sha:>10.0} rows/s");
    println!("  fasten::verify                        {verify:>10.0} rows/s");
    println!(
        "  ratio verify / plain table scan       {:>10.2}",
        verify / scan
    );
    println!(
        "  ratio verify / raw SHA-256            {:>10.2}",
        verify / sha
    );

    let notes: Vec<(String, String)> = std::fs::read_dir(published.join("node-1"))
        .expect("published")
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).expect("note"),
            )
        })
        .collect();
    let start = Instant::now();
    let checks =
        fasten::transparency::check_checkpoints(&dsn, &notes, std::slice::from_ref(&verifier_key))
            .expect("check");
    assert!(checks.iter().all(|c| c.reason.is_none()), "{checks:?}");
    let check_secs = start.elapsed().as_secs_f64();
    println!(
        "check {} published checkpoints against the store: {check_secs:.3} s",
        checks.len()
    );
    let start = Instant::now();
    let (report, checks) = fasten::transparency::verify_with_checkpoints(
        &dsn,
        &notes,
        std::slice::from_ref(&verifier_key),
        |_| {},
    )
    .expect("verify with checkpoints");
    assert!(report.ok && checks.iter().all(|c| c.reason.is_none()));
    println!(
        "verify and check them in one pass (fasten verify --checkpoints): {:.3} s, beside verify {:.3} s + check {check_secs:.3} s apart",
        start.elapsed().as_secs_f64(),
        rows as f64 / verify
    );
    for seq in [1, rows / 2] {
        let id: String = conn
            .query_row(
                "SELECT id FROM audit_log WHERE monotonic_seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .expect("a row");
        let start = Instant::now();
        let proof = fasten::transparency::prove_row(&dsn, &id).expect("prove");
        let secs = start.elapsed().as_secs_f64();
        fasten::transparency::verify_proof(&proof, std::slice::from_ref(&verifier_key))
            .expect("proof holds");
        println!("prove seq {seq} of {rows}: {secs:.4} s");
    }
}
