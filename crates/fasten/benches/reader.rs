//! The HTTP reader's latency on a large store, over real loopback HTTP.
//!
//! `cargo bench -p fasten --features http-reader,postgres --bench reader` fills
//! a SQLite file (and, when `FASTEN_TEST_PG` or the local server answers,
//! a PostgreSQL schema) with `FASTEN_BENCH_ROWS` audit rows (default
//! 1,000,000; ten rows per request id), serves the reader on loopback, and
//! prints p50 and p99 of `GET /audit?request_id=` and `GET /correlate`
//! for random request ids, beside the same store query made directly
//! through `Reader` in the same run (the HTTP and JSON share of the time).

#![allow(clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use fasten::code::{Meta, Registry};
use fasten::http_reader::{self, Auth, Options};
use fasten::{AuditQuery, Config, Dsn, Event, Reader, RequestId, Stdout};

const TOKEN: &str = "bench-token-0123456789";

fn fill(dsn: &Dsn, rows: usize) -> Duration {
    let registry = Registry::new();
    registry
        .register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])
        .expect("code");
    let fasten = Config::new()
        .service_id("bench")
        .node_id("node-1")
        .audit_dsn(dsn.clone())
        .registry(registry)
        .stdout(Stdout::NONE)
        .audit_queue_capacity(65_536)
        // A filling loop outruns any store; wait for room rather than fail.
        .audit_queue_timeout(Duration::from_secs(120))
        .build()
        .expect("pipeline");
    let start = Instant::now();
    for i in 0..rows {
        fasten
            .emit(
                Event::new("ORDER_PLACED")
                    .target(format!("order/{i}"))
                    .request_id(req(i / 10))
                    .detail(serde_json::json!({ "qty": i % 7 })),
            )
            .expect("emit");
    }
    fasten.shutdown(Duration::from_secs(600)).expect("drain");
    start.elapsed()
}

fn req(n: usize) -> RequestId {
    RequestId::parse(&format!("bench-req-{n:08}")).expect("id")
}

fn percentiles(mut t: Vec<Duration>) -> (f64, f64) {
    t.sort();
    let at = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99))
}

fn measure(label: &str, dsn: &Dsn, rows: usize) {
    print!("{label}: filling {rows} rows … ");
    let took = fill(dsn, rows);
    println!(
        "{:.1} s ({:.0} rows/s)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let router = axum::Router::new().nest(
        "/logs",
        http_reader::router(
            Reader::new(dsn.clone()),
            Options::new(Auth::bearer_tokens([TOKEN]).expect("token")),
        ),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}/logs", listener.local_addr().expect("addr"));
    rt.spawn(async move { axum::serve(listener, router).await });
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let requests = rows / 10;
    let n = 2000;
    let pick = |k: usize| req((k * 7919 + 13) % requests);
    let direct = Reader::new(dsn.clone());
    let mut times: [Vec<Duration>; 3] = Default::default();
    for k in 0..n {
        let id = pick(k);
        let t = Instant::now();
        let page = direct
            .audit(&AuditQuery::new(100).request_id(&id))
            .expect("query");
        times[0].push(t.elapsed());
        assert_eq!(page.rows.len(), 10);
        for (slot, path) in [(1, "audit?request_id="), (2, "correlate?request_id=")] {
            let t = Instant::now();
            let body = agent
                .get(format!("{base}/{path}{id}"))
                .header("authorization", &format!("Bearer {TOKEN}"))
                .call()
                .expect("200")
                .body_mut()
                .read_to_string()
                .expect("body");
            times[slot].push(t.elapsed());
            assert!(body.len() > 1000, "{body}");
        }
    }
    let [d, a, c] = times.map(percentiles);
    println!(
        "{label}: {n} random request ids over {rows} rows | Reader::audit p50 {:.2} ms p99 {:.2} ms | GET /audit?request_id= p50 {:.2} ms p99 {:.2} ms | GET /correlate p50 {:.2} ms p99 {:.2} ms (goal p99 < 10 ms)",
        d.0, d.1, a.0, a.1, c.0, c.1
    );
}

fn main() {
    let rows: usize = std::env::var("FASTEN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = format!("sqlite:///{}", dir.path().join("reader.db").display());
    measure(
        "sqlite",
        &Dsn::parse("FASTEN_AUDIT_DSN", &file).expect("dsn"),
        rows,
    );

    let base = std::env::var("FASTEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("fasten_bench_{:08x}", rand::random::<u32>());
    match postgres::Client::connect(&base, postgres::NoTls) {
        Ok(mut admin) => {
            let dsn = Dsn::parse(
                "FASTEN_AUDIT_DSN",
                &format!("{base}?table={schema}.audit_log"),
            )
            .expect("dsn");
            measure("postgres", &dsn, rows);
            let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
        Err(e) => println!("postgres: not measured, {base} is unreachable: {e}"),
    }
}
