//! Shipping (#18) against a plain baseline measured in the same run.
//!
//! `cargo bench -p fasten --features postgres,http-reader,ship-http --bench fleet` prints:
//! - rows/s shipping one edge's SQLite rows to PostgreSQL over the ingest
//!   route (loopback HTTP) and over a direct DSN, each verified on arrival,
//!   beside a plain loop reading the same rows from the SQLite file and
//!   inserting them into a table of the same shape, one `INSERT … SELECT FROM
//!   unnest(…)` per batch of the same size;
//! - replication lag (p50, p99: central arrival minus the row's timestamp)
//!   with three edge pipelines each emitting 1,000 rows/s for
//!   `FASTEN_BENCH_SECS` (10) seconds, shipping with the default interval.
//!
//! `FASTEN_TEST_PG` names the server (default the local `test` database);
//! `FASTEN_BENCH_ROWS` the throughput run's size (20,000). Works in a schema
//! of its own, dropped at the end.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use fasten::code::{Meta, Registry};
use fasten::http_reader::{self, Auth, Ingest, Options};
use fasten::ship::{Central, Shipper};
use fasten::{Config, Dsn, Event, Reader};

const BATCH: usize = 1000;
const TOKEN: &str = "bench-ship-token-0123456789";

fn registry() -> Registry {
    let registry = Registry::new();
    registry
        .register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])
        .expect("valid code");
    registry
}

fn config(path: &Path, node: &str) -> Config {
    Config::new()
        .service_id("bench")
        .node_id(node)
        .audit_dsn(sqlite(path))
        .registry(registry())
}

fn sqlite(path: &Path) -> Dsn {
    Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display())).unwrap()
}

fn base_url() -> String {
    std::env::var("FASTEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn pg(schema: &str, table: &str) -> String {
    format!("{}?table={schema}.{table}", base_url())
}

/// The rows of an edge file as text columns, in the contract's order.
fn read_rows(conn: &rusqlite::Connection) -> Vec<Vec<Option<String>>> {
    let mut stmt = conn
        .prepare(
            "SELECT id, origin_id, CAST(monotonic_seq AS TEXT), timestamp, code, action, severity, outcome, service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id, detail, detail_salt, detail_commitment, CASE pii_in_detail WHEN 0 THEN 'false' ELSE 'true' END, shipped_at, wire_version, canonical_form_id, prev_hash, hash FROM audit_log ORDER BY monotonic_seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        (0..27)
            .map(|i| r.get::<_, Option<String>>(i))
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The baseline: read the rows, insert them in batches, no checks.
fn plain(edge: &Path, client: &mut postgres::Client, table: &str) -> f64 {
    let arrays: Vec<String> = (1..=27).map(|i| format!("${i}::text[]")).collect();
    let casts: Vec<String> = (0..27)
        .map(|i| match i {
            2 => format!("c{i}::int8"),
            3 | 22 => format!("c{i}::timestamptz"),
            18 => format!("c{i}::jsonb"),
            21 => format!("c{i}::boolean"),
            _ => format!("c{i}"),
        })
        .collect();
    let aliases: Vec<String> = (0..27).map(|i| format!("c{i}")).collect();
    let sql = format!(
        "INSERT INTO {table} SELECT {} FROM unnest({}) AS u({})",
        casts.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    );
    let start = Instant::now();
    let conn = rusqlite::Connection::open(edge).unwrap();
    let rows = read_rows(&conn);
    for batch in rows.chunks(BATCH) {
        let columns: Vec<Vec<Option<&str>>> = (0..27)
            .map(|c| batch.iter().map(|r| r[c].as_deref()).collect())
            .collect();
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = columns
            .iter()
            .map(|c| c as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let mut tx = client.transaction().unwrap();
        tx.execute(&sql, &params).unwrap();
        tx.commit().unwrap();
    }
    rows.len() as f64 / start.elapsed().as_secs_f64()
}

fn ship(edge: &Path, to: &str, token: Option<&str>, rows: usize) -> f64 {
    let start = Instant::now();
    let report = Shipper::with_token(&sqlite(edge), to, token.map(str::to_owned))
        .unwrap()
        .batch_size(BATCH)
        .ship_once()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(report.nodes[0].inserted as usize, rows);
    rows as f64 / secs
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

fn main() {
    let rows: usize = std::env::var("FASTEN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let secs: u64 = std::env::var("FASTEN_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut admin = postgres::Client::connect(&base_url(), postgres::NoTls)
        .expect("PostgreSQL (FASTEN_TEST_PG)");
    let schema = format!("fasten_bench_{:016x}", rand::random::<u64>());
    let dir = tempfile::tempdir().unwrap();

    // One edge file, copied for each way of shipping it.
    let edge = dir.path().join("edge.db");
    let fasten = config(&edge, "edge-1").build().unwrap();
    for i in 0..rows {
        fasten
            .emit(
                Event::new("ORDER_PLACED")
                    .target(format!("order/{i}"))
                    .detail(serde_json::json!({ "qty": i, "sku": "WIDGET" })),
            )
            .unwrap();
    }
    fasten.shutdown(Duration::from_secs(60)).unwrap();
    drop(fasten);
    // Merge the WAL so one file copy holds every row.
    rusqlite::Connection::open(&edge)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    for t in ["plain_log", "direct_log", "ingest_log", "lag_log"] {
        drop(Central::open(&Dsn::parse("FASTEN_AUDIT_DSN", &pg(&schema, t)).unwrap()).unwrap());
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ingest_dsn = Dsn::parse("FASTEN_AUDIT_DSN", &pg(&schema, "ingest_log")).unwrap();
    let app = axum::Router::new().nest(
        "/api/v1/logs",
        http_reader::router(
            Reader::new(ingest_dsn),
            Options::new(Auth::allow_unauthenticated())
                .ingest(Ingest::tokens([("edge-1", TOKEN)]).unwrap()),
        ),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/api/v1/logs", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });

    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    copy(&edge, &a);
    copy(&edge, &b);
    let base = plain(&edge, &mut admin, &format!("{schema}.plain_log"));
    let direct = ship(&a, &pg(&schema, "direct_log"), None, rows);
    let ingest = ship(&b, &url, Some(TOKEN), rows);
    println!("shipping {rows} rows in batches of {BATCH}, edge SQLite → PostgreSQL over loopback:");
    println!("  plain read + batched INSERT: {base:>9.0} rows/s");
    println!(
        "  ship, direct DSN:            {direct:>9.0} rows/s  ({:.0}% of plain)",
        100.0 * direct / base
    );
    println!(
        "  ship, ingest route (HTTP):   {ingest:>9.0} rows/s  ({:.0}% of plain)",
        100.0 * ingest / base
    );

    // Replication lag: three edges at 1,000 rows/s each.
    let to = pg(&schema, "lag_log");
    let edges: Vec<_> = (1..=3)
        .map(|i| {
            let path = dir.path().join(format!("lag-{i}.db"));
            let to = to.clone();
            std::thread::spawn(move || {
                let fasten = config(&path, &format!("lag-{i}"))
                    .ship_to(to)
                    .build()
                    .unwrap();
                let start = Instant::now();
                let total = secs * 1000;
                for n in 0..total {
                    // 1,000 rows/s, paced in 10 ms steps of 10 rows.
                    if n % 10 == 0 {
                        let due = start + Duration::from_millis(n);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    fasten
                        .emit(Event::new("ORDER_PLACED").target(format!("order/{n}")))
                        .unwrap();
                }
                fasten.flush(Duration::from_secs(30)).unwrap();
                // Let the shipper drain, then stop.
                let deadline = Instant::now() + Duration::from_secs(60);
                let conn = rusqlite::Connection::open(&path).unwrap();
                while Instant::now() < deadline {
                    let left: i64 = conn
                        .query_row(
                            "SELECT count(*) FROM audit_log WHERE shipped_at IS NULL",
                            [],
                            |r| r.get(0),
                        )
                        .unwrap();
                    if left == 0 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                fasten.shutdown(Duration::from_secs(30)).unwrap();
            })
        })
        .collect();
    for e in edges {
        e.join().unwrap();
    }
    let row = admin
        .query_one(
            &format!(
                "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l) FROM (SELECT extract(epoch FROM shipped_at - timestamp)::float8 AS l FROM {schema}.lag_log) s"
            ),
            &[],
        )
        .unwrap();
    let (n, p50, p99, max): (i64, f64, f64, f64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    println!(
        "replication lag, 3 edges × 1,000 rows/s × {secs} s ({n} rows), direct DSN, default interval:"
    );
    println!("  p50 {p50:.3} s, p99 {p99:.3} s, max {max:.3} s (goal: p99 < 2 s)");
    let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
}
