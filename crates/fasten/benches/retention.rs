//! A retention sweep over a large store while emits go on.
//!
//! `cargo bench -p fasten --bench retention` fills a SQLite store with
//! `FASTEN_BENCH_ROWS` rows (default 1,000,000), then, in `raise` mode
//! (each emit returns after its commit), measures emit latency for
//! `FASTEN_BENCH_BASELINE_SECS` (default 30) with no sweep (the baseline)
//! and then while one sweep erases every row. It prints p99, p99.9, the
//! longest emit and the emits over 25 ms of both runs, the sweep's rows/s,
//! and checks that the chain still verifies with every row counted erased.
//! With `FASTEN_BENCH_PG=postgres://…` it does the same on PostgreSQL (in a
//! schema of its own, dropped at the end), and prints the WAL each phase
//! wrote, the checkpoints it forced and the server settings they depend
//! on; `FASTEN_BENCH_SKIP_SQLITE=1` skips the SQLite run.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use fasten::code::{Meta, Registry};
use fasten::retention::SweepOptions;
use fasten::{Config, Dsn, Event, FailureStrategy};
use serde_json::json;

fn config(dsn: &Dsn) -> Config {
    let registry = Registry::new();
    registry
        .register(
            "sales",
            [
                ("ORDER_PLACED", Meta::new("order", "create")),
                ("CART_TOUCHED", Meta::new("cart", "update")),
            ],
        )
        .unwrap();
    Config::new()
        .service_id("bench")
        .node_id("node-1")
        .audit_dsn(dsn.clone())
        .registry(registry)
        .retention_sweep_interval(None)
}

/// One emit: when it started (since the phase began) and how long it took.
type Emit = (Duration, Duration);

/// Emits until `until` is set; returns every emit.
fn emit_loop(fasten: &fasten::Fasten, until: &AtomicBool) -> Vec<Emit> {
    let phase = Instant::now();
    let mut emits = Vec::new();
    while !until.load(Ordering::Relaxed) {
        let started = Instant::now();
        fasten
            .emit(Event::new("CART_TOUCHED").detail(json!({"n": 1})))
            .unwrap();
        emits.push((started - phase, started.elapsed()));
    }
    emits
}

/// The stall the goal names: no emit during a sweep should wait
/// longer than this.
const GOAL: Duration = Duration::from_millis(25);

/// Percentiles, the emits over [`GOAL`] (and how many a minute: the
/// phases differ in length, and a longer one meets more of the machine's
/// own hiccups), and when in the phase the slowest began (every one over
/// the goal, at least five): a stall at +0 s belongs to the sweep's start,
/// one that recurs every half minute to the database's checkpoints.
fn summary(mut emits: Vec<Emit>) -> String {
    let phase = emits
        .last()
        .map_or(Duration::ZERO, |(when, took)| *when + *took);
    emits.sort_unstable_by_key(|(_, took)| *took);
    let at = |per_mille: usize| emits[(emits.len() * per_mille / 1000).min(emits.len() - 1)].1;
    let over = emits.iter().filter(|(_, took)| *took > GOAL).count();
    let per_minute = over as f64 * 60.0 / phase.as_secs_f64().max(1e-9);
    // Every emit over the goal, in the order they began (at most 60), so
    // they can be laid beside a sampler's timeline or the server's log.
    let mut slowest: Vec<&Emit> = emits.iter().rev().take(over.clamp(5, 60)).collect();
    slowest.sort_unstable_by_key(|(when, _)| *when);
    let slowest: Vec<String> = slowest
        .into_iter()
        .map(|(when, took)| {
            format!(
                "{:.1} ms at +{:.1} s",
                took.as_secs_f64() * 1e3,
                when.as_secs_f64()
            )
        })
        .collect();
    format!(
        "{} emits in {:.0} s, p99 {:?}, p99.9 {:?}, longest {:?}, {over} over {GOAL:?} ({per_minute:.1} a minute); slowest: {}",
        emits.len(),
        phase.as_secs_f64(),
        at(990),
        at(999),
        emits.last().unwrap().1,
        slowest.join(", ")
    )
}

/// PostgreSQL's WAL position and count of checkpoints forced by WAL
/// volume, to say what a phase cost the server: a sweep's commits stall
/// when its WAL forces checkpoints, whose fsyncs the writer's commits
/// queue behind.
struct Wal {
    at: Instant,
    lsn: i64,
    forced: i64,
}

impl Wal {
    const SQL: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8, checkpoints_req FROM pg_stat_bgwriter";

    fn new(admin: &mut postgres::Client) -> Self {
        let row = admin.query_one(Self::SQL, &[]).unwrap();
        Self {
            at: Instant::now(),
            lsn: row.get(0),
            forced: row.get(1),
        }
    }

    /// What was written since the last call (emits included), per
    /// erased row when given.
    fn since(&mut self, admin: &mut postgres::Client, erased: Option<u64>) -> String {
        let then = std::mem::replace(self, Self::new(admin));
        let bytes = (self.lsn - then.lsn) as f64;
        let per_row = erased
            .filter(|n| *n > 0)
            .map(|n| {
                format!(
                    ", {:.2} KB per erased row (the emits' WAL included)",
                    bytes / 1e3 / n as f64
                )
            })
            .unwrap_or_default();
        format!(
            "WAL {:.0} MB, {:.1} MB/s{per_row}; {} checkpoints forced by WAL volume",
            bytes / 1e6,
            bytes / 1e6 / (self.at - then.at).as_secs_f64(),
            self.forced - then.forced
        )
    }
}

/// `pg` is the server's URL and the table, on PostgreSQL.
fn run(label: &str, dsn: &Dsn, rows: usize, baseline: Duration, pg: Option<(&str, &str)>) {
    let started = Instant::now();
    let fill = config(dsn).audit_queue_capacity(65_536).build().unwrap();
    for i in 0..rows {
        fill.emit(Event::new("ORDER_PLACED").detail(json!({"i": i, "pad": "x".repeat(64)})))
            .unwrap();
    }
    fill.shutdown(Duration::from_secs(3600)).unwrap();
    // Due: every filled row (medium, 180 days), none emitted from here on.
    let due = SystemTime::now() + Duration::from_secs(180 * 86_400);
    println!("{label}: filled {rows} rows in {:?}", started.elapsed());
    let mut admin = pg.map(|(url, _)| postgres::Client::connect(url, postgres::NoTls).unwrap());
    if let Some(admin) = &mut admin {
        // The stalls below depend on these (docs/performance.md), so they
        // are printed beside them.
        let settings: Vec<String> = admin
            .query(
                "SELECT name || '=' || current_setting(name) FROM pg_settings \
                 WHERE name IN ('backend_flush_after', 'max_wal_size', 'shared_buffers', 'wal_compression') \
                 ORDER BY name",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        println!("{label}: server {}", settings.join(", "));
    }
    if let (Some(admin), Some((_, table))) = (&mut admin, pg) {
        // The fill wrote about a gigabyte of WAL per million rows and left
        // a million rows for autovacuum to visit; do both now, as a table
        // filled long ago has had them, or they land in whichever phase
        // below comes first and are charged to it.
        admin
            .batch_execute(&format!("VACUUM (ANALYZE) {table}"))
            .unwrap();
        match admin.batch_execute("CHECKPOINT") {
            Ok(()) => {}
            Err(e) => println!(
                "{label}: no CHECKPOINT after the fill ({e}); the phases below may pay for it"
            ),
        }
    }
    let mut wal = admin.as_mut().map(Wal::new);

    let fasten = config(dsn)
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .build()
        .unwrap();
    // Wall-clock starts, to line the stalls' offsets up with the server's
    // log or a sampler's timeline.
    println!("{label}: baseline begins at {}", jiff::Timestamp::now());
    let done = AtomicBool::new(false);
    let baseline = std::thread::scope(|s| {
        let h = s.spawn(|| emit_loop(&fasten, &done));
        std::thread::sleep(baseline);
        done.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    println!("{label}: without a sweep: {}", summary(baseline));
    if let (Some(admin), Some(wal)) = (&mut admin, &mut wal) {
        println!("{label}: without a sweep: {}", wal.since(admin, None));
    }
    println!("{label}: sweep begins at {}", jiff::Timestamp::now());
    let done = AtomicBool::new(false);
    let (during, report, took) = std::thread::scope(|s| {
        let h = s.spawn(|| emit_loop(&fasten, &done));
        let started = Instant::now();
        let report = fasten.sweep(&SweepOptions::new().now(due)).unwrap();
        let took = started.elapsed();
        done.store(true, Ordering::Relaxed);
        (h.join().unwrap(), report, took)
    });
    let emitted = during.len();
    println!("{label}: during the sweep: {}", summary(during));
    println!(
        "{label}: sweep erased {} rows in {took:?}: {:.0} rows/s; longest erase transaction {:?}",
        report.erased,
        report.erased as f64 / took.as_secs_f64(),
        report.longest_batch
    );
    if let (Some(admin), Some(wal)) = (&mut admin, &mut wal) {
        println!(
            "{label}: during the sweep: {}",
            wal.since(admin, Some(report.erased))
        );
    }
    assert_eq!(report.erased, rows as u64);
    fasten.shutdown(Duration::from_secs(60)).unwrap();
    let started = Instant::now();
    let verdict = fasten::verify(dsn).unwrap();
    assert!(verdict.ok, "{verdict:?}");
    println!(
        "{label}: verify ok in {:?}: {} rows, {} erased ({} emitted during the sweep)",
        started.elapsed(),
        verdict.nodes[0].rows,
        verdict.nodes[0].erased,
        emitted
    );
}

fn main() {
    let rows: usize = std::env::var("FASTEN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Long enough to meet the machine's own hiccups: the longest emit of
    // a window grows with the window, so a short baseline flatters it.
    let baseline = Duration::from_secs(
        std::env::var("FASTEN_BENCH_BASELINE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let dir = tempfile::tempdir().unwrap();
    let dsn = Dsn::parse(
        "FASTEN_AUDIT_DSN",
        &format!("sqlite:///{}", dir.path().join("audit.db").display()),
    )
    .unwrap();
    if std::env::var_os("FASTEN_BENCH_SKIP_SQLITE").is_none() {
        run("sqlite", &dsn, rows, baseline, None);
    }
    if let Ok(url) = std::env::var("FASTEN_BENCH_PG") {
        let schema = format!("retention_bench_{:08x}", rand::random::<u32>());
        let table = format!("{schema}.audit_log");
        let dsn = Dsn::parse("FASTEN_AUDIT_DSN", &format!("{url}?table={table}")).unwrap();
        run("postgres", &dsn, rows, baseline, Some((&url, &table)));
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
    }
}
