//! PostgreSQL over loopback against plain baselines measured in the same run.
//!
//! `cargo bench -p fasten --features postgres --bench pg` prints:
//! - sustained rows/s from the first emit to a completed flush, beside a
//!   plain loop inserting rows of the same shape into the same schema with
//!   one `INSERT … SELECT FROM unnest(…)` per batch of the same size;
//! - `raise`-mode emit latency (p50, p99) from one thread, beside a plain
//!   single-row `INSERT` in its own transaction (autocommit).
//!
//! `FASTEN_TEST_PG` names the server (default the local `test` database);
//! `FASTEN_BENCH_ROWS` the throughput run's size. Works in a schema of its
//! own, dropped at the end.

#![allow(clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use fasten::code::{Meta, Registry};
use fasten::{Config, Dsn, Event, FailureStrategy, RequestId};
use serde_json::json;

const BATCH: usize = 2048;

fn config(dsn: &Dsn) -> Config {
    let registry = Registry::new();
    registry
        .register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])
        .expect("valid code");
    Config::new()
        .service_id("bench")
        .node_id("node-1")
        .audit_dsn(dsn.clone())
        .audit_queue_capacity(65_536)
        .audit_batch_size(BATCH)
        .registry(registry)
}

const INSERT: &str = "INSERT INTO {t} (id, origin_id, monotonic_seq, timestamp, code, action, severity, outcome, service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id, detail, detail_salt, detail_commitment, pii_in_detail, shipped_at, wire_version, canonical_form_id, prev_hash, hash)";

/// One row's values, as fasten would write them.
struct Plain {
    id: String,
    ts: String,
    req: String,
    detail: String,
    h: String,
}

fn plain_row(i: usize) -> Plain {
    Plain {
        id: format!("evt-{:020x}", rand::random::<u128>() >> 48),
        ts: format!("{:.6}", jiff::Timestamp::now()),
        req: RequestId::mint().to_string(),
        detail: json!({ "qty": i, "sku": "WIDGET" }).to_string(),
        h: format!("{:064x}", rand::random::<u128>()),
    }
}

fn plain_batches(client: &mut postgres::Client, table: &str, rows: usize) -> f64 {
    // Every column crosses as an array, as a plain implementation sending
    // whole rows would (and as fasten does).
    let arrays: Vec<String> = (1..=27)
        .map(|i| match i {
            3 => "$3::int8[]".to_owned(),
            22 => "$22::bool[]".to_owned(),
            _ => format!("${i}::text[]"),
        })
        .collect();
    let columns: Vec<String> = (0..27)
        .map(|i| match i {
            3 | 22 => format!("c{i}::timestamptz"),
            18 => format!("c{i}::jsonb"),
            _ => format!("c{i}"),
        })
        .collect();
    let aliases: Vec<String> = (0..27).map(|i| format!("c{i}")).collect();
    let sql = format!(
        "{} SELECT {} FROM unnest({}) AS u({})",
        INSERT.replace("{t}", table),
        columns.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    );
    let start = Instant::now();
    let mut done = 0;
    while done < rows {
        let n = BATCH.min(rows - done);
        let batch: Vec<Plain> = (done..done + n).map(plain_row).collect();
        let col = |f: fn(&Plain) -> &str| batch.iter().map(f).collect::<Vec<&str>>();
        let same = |v: &'static str| vec![v; n];
        let none: Vec<Option<&str>> = vec![None; n];
        let ids = col(|r| &r.id);
        let seqs: Vec<i64> = (done..done + n).map(|i| i as i64 + 1).collect();
        let ts = col(|r| &r.ts);
        let reqs = col(|r| &r.req);
        let details = col(|r| &r.detail);
        let hashes = col(|r| &r.h);
        let pii = vec![false; n];
        let (code, action, info, success) = (
            same("ORDER_PLACED"),
            same("create"),
            same("info"),
            same("success"),
        );
        let (svc, node, actor, kind) = (
            same("bench"),
            same("node-1"),
            same("system"),
            same("service"),
        );
        let (target, cat, dom, method) =
            (same("order/42"), same("order"), same("sales"), same("sdk"));
        let (wire, form) = (same("1"), same("3"));
        let mut tx = client.transaction().expect("begin");
        tx.execute(
            &sql,
            &[
                &ids, &ids, &seqs, &ts, &code, &action, &info, &success, &svc, &node, &none,
                &actor, &kind, &target, &cat, &dom, &method, &reqs, &details, &hashes, &hashes,
                &pii, &none, &wire, &form, &hashes, &hashes,
            ],
        )
        .expect("insert");
        tx.commit().expect("commit");
        done += n;
    }
    rows as f64 / start.elapsed().as_secs_f64()
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

fn main() {
    let url = std::env::var("FASTEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let rows: usize = std::env::var("FASTEN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("PostgreSQL reachable");
    let schema = format!("fasten_bench_{:08x}", rand::random::<u32>());
    let dsn = |table: &str| {
        Dsn::parse("FASTEN_AUDIT_DSN", &format!("{url}?table={schema}.{table}")).expect("dsn")
    };
    // fasten creates both tables, so the baseline has the same schema and indexes.
    for t in ["plain", "plain_single"] {
        config(&dsn(t))
            .build()
            .expect("schema")
            .shutdown(Duration::from_secs(10))
            .expect("shutdown");
    }

    println!("sustained throughput, {rows} rows, batches of {BATCH}, loopback:");
    let plain = plain_batches(&mut admin, &format!("{schema}.plain"), rows);
    let ours = {
        let fasten = config(&dsn("fasten")).build().expect("pipeline");
        let start = Instant::now();
        for i in 0..rows {
            fasten
                .emit(
                    Event::new("ORDER_PLACED")
                        .target("order/42")
                        .detail(json!({ "qty": i, "sku": "WIDGET" })),
                )
                .expect("emit");
        }
        fasten.flush(Duration::from_secs(600)).expect("flush");
        rows as f64 / start.elapsed().as_secs_f64()
    };
    println!("  plain unnest batch insert  {plain:>10.0} rows/s");
    println!("  fasten emit→flush          {ours:>10.0} rows/s");
    println!("  ratio fasten / plain       {:>10.2}", ours / plain);

    let n = 2000;
    println!("durable single-row latency, {n} rows one after another:");
    let single = {
        let sql = format!(
            "{} VALUES ($1, $1, $2, $3::text::timestamptz, 'ORDER_PLACED', 'create', 'info', 'success', 'bench', 'node-1', NULL, 'system', 'service', 'order/42', 'order', 'sales', 'sdk', $4, $5::text::jsonb, $6, $6, false, NULL, '1', '3', $6, $6)",
            INSERT.replace("{t}", &format!("{schema}.plain_single"))
        );
        let stmt = admin.prepare(&sql).expect("prepare");
        let times: Vec<Duration> = (0..n)
            .map(|i| {
                let r = plain_row(i);
                let t = Instant::now();
                admin
                    .execute(
                        &stmt,
                        &[&r.id, &(i as i64 + 1), &r.ts, &r.req, &r.detail, &r.h],
                    )
                    .expect("insert");
                t.elapsed()
            })
            .collect();
        percentiles(times)
    };
    let raise = {
        let fasten = config(&dsn("fasten_raise"))
            .audit_store_failure_strategy(FailureStrategy::Raise)
            .build()
            .expect("pipeline");
        let times: Vec<Duration> = (0..n)
            .map(|i| {
                let t = Instant::now();
                fasten
                    .emit(
                        Event::new("ORDER_PLACED")
                            .target("order/42")
                            .detail(json!({ "qty": i, "sku": "WIDGET" })),
                    )
                    .expect("emit");
                t.elapsed()
            })
            .collect();
        percentiles(times)
    };
    println!(
        "  plain autocommit INSERT    p50 {:>6.3} ms  p99 {:>6.3} ms",
        single.0, single.1
    );
    println!(
        "  fasten emit, raise mode    p50 {:>6.3} ms  p99 {:>6.3} ms",
        raise.0, raise.1
    );
    println!(
        "  ratio fasten / plain       p50 {:>6.2}x     p99 {:>6.2}x",
        raise.0 / single.0,
        raise.1 / single.1
    );

    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .expect("drop schema");
}
