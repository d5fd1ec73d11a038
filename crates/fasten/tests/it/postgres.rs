//! The same pipeline on the real PostgreSQL at 127.0.0.1:5432 (override
//! with `FASTEN_TEST_PG`). Each test works in a schema (or database) of its
//! own and drops it. Under `CI` a missing server fails the test; elsewhere
//! the test says so loudly and returns.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fasten::{Config, Dsn, ErrorKind, Event, FailureStrategy};
use serde_json::json;

use super::support::{child, registry, role};

pub(crate) fn base_url() -> String {
    std::env::var("FASTEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of the test's own, dropped at the end.
pub(crate) struct Schema {
    pub(crate) name: String,
    admin: postgres::Client,
}

impl Schema {
    pub(crate) fn new() -> Option<Self> {
        let admin = match postgres::Client::connect(&base_url(), postgres::NoTls) {
            Ok(c) => c,
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!(
                    "CI is set but PostgreSQL at {} is unreachable: {e}",
                    base_url()
                )
            }
            Err(e) => {
                eprintln!("SKIPPED: PostgreSQL at {} is unreachable: {e}", base_url());
                return None;
            }
        };
        let name = format!("fasten_it_{:016x}", rand::random::<u64>());
        Some(Self { name, admin })
    }

    pub(crate) fn dsn(&self, table: &str) -> Dsn {
        Dsn::parse(
            "FASTEN_AUDIT_DSN",
            &format!("{}?table={}.{table}", base_url(), self.name),
        )
        .unwrap()
    }

    pub(crate) fn sql(&mut self, sql: &str) {
        self.admin.batch_execute(sql).unwrap();
    }
}

impl Drop for Schema {
    /// Runs whether the test passed or failed: the schema, the tables a
    /// test made in the default schema with the schema's name as prefix,
    /// and a database of that name.
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        let prefixed = self.admin.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND starts_with(tablename, $1)",
            &[&name],
        );
        for row in prefixed.into_iter().flatten() {
            let table: String = row.get(0);
            let _ = self
                .admin
                .batch_execute(&format!("DROP TABLE IF EXISTS {table} CASCADE"));
        }
        let _ = self
            .admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

fn config(dsn: Dsn, node: &str) -> Config {
    Config::new()
        .service_id("it-pg")
        .node_id(node)
        .audit_dsn(dsn)
        .registry(registry())
}

const SECS: Duration = Duration::from_secs(20);

#[test]
fn rows_written_through_postgres_verify_byte_for_byte() -> fasten::Result<()> {
    let Some(schema) = Schema::new() else {
        return Ok(());
    };
    let dsn = schema.dsn("audit_log");
    let fasten = config(dsn.clone(), "node-pg").build()?;
    let odd = json!({
        "setpoint": 75.0, "tolerance": 12.5, "big": 1e21, "tiny": 1e-7, "micro": 1e-6,
        "neg": -2.5, "zero": -0.0, "max_int": 9_007_199_254_740_991_u64, "huge": u64::MAX,
        "third": 1.0 / 3.0, "min": f64::MIN_POSITIVE,
        "é": "dépôt/ü€𝄞\"q\"\\", "ctl": "line1\nline2\u{1}\t", "nested": {"b": [true, null, {}]}
    });
    let mut written = Vec::new();
    for i in 0..300 {
        let row = if i % 100 == 0 {
            fasten.emit_durable(Event::new("USER_UPDATED").target("dépôt/€").detail(&odd))?
        } else {
            fasten.emit(Event::new("USER_CREATED").detail(json!({ "i": i })))?;
            continue;
        };
        written.push(row);
    }
    fasten.flush(SECS)?;
    assert_eq!(fasten.queue_stats().store_kind, "postgres");
    let report = fasten::verify(&dsn)?;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes[0].rows, 300);
    // The CLI reads back what was sealed, exactly.
    let mut client = postgres::Client::connect(&base_url(), postgres::NoTls).unwrap();
    for row in &written {
        let (ts, detail): (String, String) = {
            let r = client
                .query_one(
                    &format!(
                        r#"SELECT to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), detail::text FROM {}.audit_log WHERE id = $1"#,
                        schema.name
                    ),
                    &[&row.id],
                )
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!(ts, row.timestamp);
        let back: serde_json::Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(Some(back), row.detail);
    }
    Ok(())
}

#[test]
fn golden_vectors_verify_through_postgres() -> fasten::Result<()> {
    let Some(mut schema) = Schema::new() else {
        return Ok(());
    };
    let vectors = super::support::vectors();
    // fasten creates the tables, then rows sealed elsewhere are inserted raw.
    let mut cases: Vec<(String, Vec<serde_json::Value>)> = vectors["single_rows"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, case)| (name.clone(), vec![case["row"].clone()]))
        .collect();
    let mut chain = vectors["chain"].as_array().unwrap().clone();
    cases.push(("chain".into(), chain.clone()));
    chain[1] = vectors["chain_row_2_redacted"].clone();
    cases.push(("chain_erased".into(), chain));
    for (name, rows) in &cases {
        let dsn = schema.dsn(name);
        drop(config(dsn.clone(), "setup").build()?);
        for row in rows {
            let s = |k: &str| row[k].as_str().map(str::to_owned);
            let detail = (!row["detail"].is_null()).then(|| row["detail"].to_string());
            schema
                .admin
                .execute(
                    &format!(
                        "INSERT INTO {}.{name} (id, origin_id, monotonic_seq, timestamp, code, action, severity, outcome, service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id, detail, detail_salt, detail_commitment, pii_in_detail, wire_version, canonical_form_id, prev_hash, hash)
                         VALUES ($1, $2, $3, $4::text::timestamptz, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19::text::jsonb, $20, $21, $22, $23, $24, $25, $26)",
                        schema.name
                    ),
                    &[
                        &s("id"), &s("origin_id"), &row["monotonic_seq"].as_i64(), &s("timestamp"),
                        &s("code"), &s("action"), &s("severity"), &s("outcome"), &s("service_id"),
                        &s("source_node_id"), &s("tenant_id"), &s("actor"), &s("actor_kind"),
                        &s("target"), &s("category"), &s("domain"), &s("method"), &s("request_id"),
                        &detail, &s("detail_salt"), &s("detail_commitment"),
                        &row["pii_in_detail"].as_bool(), &s("wire_version"),
                        &s("canonical_form_id"), &s("prev_hash"), &s("hash"),
                    ],
                )
                .unwrap();
        }
        let report = fasten::verify(&dsn)?;
        assert!(report.ok, "{name}: {report:?}");
        assert_eq!(report.nodes[0].rows as usize, rows.len(), "{name}");
        assert_eq!(
            report.nodes[0].erased,
            u64::from(name == "chain_erased"),
            "{name}"
        );
    }
    schema.sql("SELECT 1");
    Ok(())
}

#[test]
fn three_ways_to_name_the_table() -> fasten::Result<()> {
    let Some(mut schema) = Schema::new() else {
        return Ok(());
    };
    // Shared database, own schema (created if missing).
    let in_schema = schema.dsn("audit_log");
    // Shared database, prefix only, in the default schema.
    let prefix = format!("{}_audit_log", schema.name);
    let prefixed = Dsn::parse(
        "FASTEN_AUDIT_DSN",
        &format!("{}?table={prefix}", base_url()),
    )?;
    // Dedicated database, default table name.
    let db = schema.name.clone();
    schema.sql(&format!("CREATE DATABASE {db}"));
    let dedicated_url = match base_url().rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => unreachable!("the base URL names a database"),
    };
    let dedicated = Dsn::parse("FASTEN_AUDIT_DSN", &dedicated_url)?;
    for dsn in [&in_schema, &prefixed, &dedicated] {
        let fasten = config(dsn.clone(), "node-t").build()?;
        fasten.emit_durable(Event::new("USER_CREATED"))?;
        fasten.shutdown(SECS)?;
        // Opening again migrates nothing and keeps the chain.
        let fasten = config(dsn.clone(), "node-t").build()?;
        assert_eq!(
            fasten
                .emit_durable(Event::new("USER_CREATED"))?
                .monotonic_seq,
            2
        );
        fasten.shutdown(SECS)?;
        assert!(fasten::verify(dsn)?.ok, "{dsn}");
    }
    // The prefixed tables and the database go when `schema` drops.
    Ok(())
}

#[test]
fn the_password_never_appears_in_errors() {
    let dsn = Dsn::parse(
        "FASTEN_AUDIT_DSN",
        "postgres://fasten:sup3r-secret@127.0.0.1:1/none?connect_timeout=2",
    )
    .unwrap();
    assert_eq!(
        dsn.to_string(),
        "postgres://fasten:***@127.0.0.1:1/none?connect_timeout=2"
    );
    let err = config(dsn, "n").build().unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Store);
    let mut chain = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(!chain.contains("sup3r-secret"), "{chain}");
}

/// Child-process entry: emits into Postgres as `FASTEN_IT_NODE`.
#[test]
#[ignore = "child-process entry point, run by its parent test"]
fn child_pg_emitter() {
    if role().as_deref() != Some("pg_emitter") {
        return;
    }
    let dsn = Dsn::parse("FASTEN_AUDIT_DSN", &std::env::var("FASTEN_IT_DSN").unwrap()).unwrap();
    let node = std::env::var("FASTEN_IT_NODE").unwrap();
    let fasten = config(dsn, &node).audit_batch_size(128).build().unwrap();
    for i in 0..PG_PER_CHILD {
        fasten
            .emit(Event::new("USER_CREATED").target(format!("u-{i}")))
            .unwrap();
        if i % 250 == 0 {
            // Not synchronisation: spreads the emits so the processes'
            // commits interleave.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let report = fasten.shutdown(Duration::from_secs(120)).unwrap();
    assert_eq!(report.written, PG_PER_CHILD);
}

const PG_PER_CHILD: u64 = 2000;

#[test]
fn sixteen_processes_eight_on_one_node_never_fork_or_gap() -> fasten::Result<()> {
    let Some(schema) = Schema::new() else {
        return Ok(());
    };
    let dsn = schema.dsn("audit_log");
    drop(config(dsn.clone(), "setup").build()?);
    let raw = format!("{}?table={}.audit_log", base_url(), schema.name);
    let nodes: Vec<String> = (0..16)
        .map(|i| {
            if i < 8 {
                "node-shared".to_owned()
            } else {
                format!("node-{i}")
            }
        })
        .collect();
    let mut children: Vec<_> = nodes
        .iter()
        .map(|node| {
            child(
                "postgres::child_pg_emitter",
                &[
                    ("FASTEN_IT_ROLE", "pg_emitter".to_owned()),
                    ("FASTEN_IT_DSN", raw.clone()),
                    ("FASTEN_IT_NODE", node.clone()),
                ],
            )
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let report = fasten::verify(&dsn)?;
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.nodes.len(), 9);
    for node in &report.nodes {
        let expected = if node.source_node_id == "node-shared" {
            8
        } else {
            1
        } * PG_PER_CHILD;
        assert_eq!(node.rows, expected, "{}", node.source_node_id);
    }
    Ok(())
}

/// A TCP proxy to the real server that a test can cut and restore.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (u, c, upstream) = (Arc::clone(&up), Arc::clone(&conns), upstream.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !u.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut conns = c.lock().unwrap();
                conns.push(client.try_clone().unwrap());
                conns.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn proxied_dsn(schema: &Schema, proxy: &Proxy) -> Dsn {
    let url = base_url().replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    Dsn::parse(
        "FASTEN_AUDIT_DSN",
        &format!("{url}?connect_timeout=2&table={}.audit_log", schema.name),
    )
    .unwrap()
}

#[test]
fn an_outage_loses_nothing_in_retry_mode_and_fails_fast_in_raise_mode() -> fasten::Result<()> {
    let Some(schema) = Schema::new() else {
        return Ok(());
    };
    let proxy = Proxy::start("127.0.0.1:5432");
    let dsn = proxied_dsn(&schema, &proxy);
    let fasten = config(dsn.clone(), "node-outage").build()?;
    for i in 0..100 {
        fasten.emit(Event::new("USER_CREATED").detail(json!({ "i": i })))?;
    }
    fasten.flush(SECS)?;
    proxy.cut();
    // Emits keep succeeding while the database is away.
    for i in 100..300 {
        fasten.emit(Event::new("USER_CREATED").detail(json!({ "i": i })))?;
    }
    assert_eq!(
        fasten.flush(Duration::from_millis(500)).unwrap_err().kind(),
        &ErrorKind::Timeout
    );
    let stats = fasten.queue_stats();
    assert!(stats.retries >= 1, "{stats:?}");
    assert!(
        !stats
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("password")
    );

    // Raise mode, same outage: the error comes back, promptly.
    let raise = config(dsn.clone(), "node-raise")
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .audit_max_retries(2);
    assert_eq!(raise.build().unwrap_err().kind(), &ErrorKind::Store);

    proxy.restore();
    fasten.flush(Duration::from_secs(60))?;
    assert_eq!(fasten.queue_stats().written, 300);
    // Raise mode against a pipeline already running when the cut comes.
    let raise = config(dsn.clone(), "node-raise")
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .audit_max_retries(2)
        .build()?;
    raise.emit(Event::new("USER_CREATED"))?;
    proxy.cut();
    let err = raise.emit(Event::new("USER_CREATED")).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Store);
    proxy.restore();
    raise.emit(Event::new("USER_CREATED"))?;

    let direct = schema.dsn("audit_log");
    let report = fasten::verify(&direct)?;
    assert!(report.ok, "{report:?}");
    let rows: Vec<(&str, u64)> = report
        .nodes
        .iter()
        .map(|n| (n.source_node_id.as_str(), n.rows))
        .collect();
    assert_eq!(rows, [("node-outage", 300), ("node-raise", 2)]);
    Ok(())
}

#[test]
fn a_terminated_backend_is_reconnected_without_loss_or_duplicates() -> fasten::Result<()> {
    let Some(mut schema) = Schema::new() else {
        return Ok(());
    };
    let app = format!("fasten_it_{}", &schema.name[10..]);
    let dsn = Dsn::parse(
        "FASTEN_AUDIT_DSN",
        &format!(
            "{}?application_name={app}&table={}.audit_log",
            base_url(),
            schema.name
        ),
    )?;
    let fasten = config(dsn.clone(), "node-kill").build()?;
    let emitter = {
        let fasten = fasten.clone();
        std::thread::spawn(move || -> fasten::Result<()> {
            for i in 0..3000 {
                fasten.emit(Event::new("USER_CREATED").detail(json!({ "i": i })))?;
                if i % 100 == 0 {
                    // Not synchronisation: spreads the emits so the kills
                    // land while rows are still coming.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Ok(())
        })
    };
    for _ in 0..5 {
        // Each kill lands after the writer made progress since the last
        // (or the emitter is done), not after a fixed sleep.
        let before = fasten.queue_stats().written;
        super::support::wait_until("the writer to make progress", || {
            fasten.queue_stats().written != before || emitter.is_finished()
        });
        schema.sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
        ));
    }
    emitter.join().unwrap()?;
    fasten.flush(Duration::from_secs(60))?;
    let report = fasten::verify(&dsn)?;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes[0].rows, 3000);
    Ok(())
}

#[test]
fn checkpoints_are_kept_in_postgres_and_hold() -> fasten::Result<()> {
    let Some(mut schema) = Schema::new() else {
        return Ok(());
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = fasten::transparency::generate_key("it.example/pg")?;
    std::fs::write(dir.path().join("k"), &keys.signing_key).unwrap();
    let dsn = schema.dsn("audit_log");
    let fasten = config(dsn.clone(), "node-cp")
        .signing_key(dir.path().join("k"))
        .checkpoint_every(10)
        .audit_batch_size(5)
        .build()?;
    for _ in 0..25 {
        fasten.emit(Event::new("USER_CREATED"))?;
    }
    fasten.shutdown(SECS)?;
    let notes: Vec<(String, String)> = schema
        .admin
        .query(
            &format!(
                "SELECT tree_size::text, note FROM {}.audit_log_checkpoints ORDER BY tree_size",
                schema.name
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(notes.len() >= 3, "{notes:?}");
    assert_eq!(notes.last().map(|n| n.0.as_str()), Some("25"));
    let checks = fasten::transparency::check_checkpoints(&dsn, &notes, &[keys.verifier_key])?;
    assert!(checks.iter().all(|c| c.reason.is_none()), "{checks:?}");
    schema.sql("SELECT 1");
    Ok(())
}

#[cfg(feature = "tracing")]
/// Opening a store whose tables and indexes all exist runs no DDL:
/// `CREATE INDEX IF NOT EXISTS` takes a SHARE lock even when the index
/// exists, so it waits for every inserting writer and every later insert
/// waits for it (a sweep's open stalled emits for 170 ms so). Here another
/// session holds ROW EXCLUSIVE on each table, as a writer mid-batch does,
/// while a second pipeline starts, sweeps and reads both streams.
#[test]
fn opening_a_migrated_store_waits_for_no_writer() -> fasten::Result<()> {
    use fasten::StreamQuery;
    use fasten::retention::SweepOptions;
    let Some(schema) = Schema::new() else {
        return Ok(());
    };
    let dsns = |name: &str| -> (Dsn, Dsn, Dsn) {
        let stream = |var, table: &str| {
            Dsn::parse_for(
                var,
                &format!("{}?table={name}.{table}", base_url()),
                "unused",
            )
            .unwrap()
        };
        (
            Dsn::parse(
                "FASTEN_AUDIT_DSN",
                &format!("{}?table={name}.audit_log", base_url()),
            )
            .unwrap(),
            stream("FASTEN_SYS_DSN", "sys_log"),
            stream("FASTEN_API_DSN", "api_log"),
        )
    };
    let start = |(audit, sys, api): (Dsn, Dsn, Dsn)| -> fasten::Result<fasten::Fasten> {
        let fasten = config(audit, "pg-migrated")
            .stdout(fasten::Stdout::NONE)
            .sys_dsn(sys)
            .api_dsn(api)
            .build()?;
        fasten.emit(Event::new("USER_CREATED").target("u-1"))?;
        fasten.sweep(&SweepOptions::new())?;
        fasten.sys_rows(&StreamQuery::new(7))?;
        fasten.api_rows(&StreamQuery::new(7))?;
        Ok(fasten)
    };
    start(dsns(&schema.name))?.shutdown(SECS)?;

    let mut writer = postgres::Client::connect(&base_url(), postgres::NoTls).unwrap();
    let mut mid_batch = writer.transaction().unwrap();
    let s = &schema.name;
    mid_batch
        .batch_execute(&format!(
            "LOCK TABLE {s}.audit_log, {s}.sys_log, {s}.api_log IN ROW EXCLUSIVE MODE"
        ))
        .unwrap();
    let (done, started) = std::sync::mpsc::channel();
    let name = schema.name.clone();
    std::thread::spawn(move || {
        let _ = done.send(start(dsns(&name)).and_then(|f| f.shutdown(SECS)));
    });
    let outcome = started.recv_timeout(Duration::from_secs(60));
    mid_batch.rollback().unwrap();
    match outcome {
        Ok(result) => result.map(|_| ()),
        Err(_) => {
            panic!("a second pipeline's start, sweep and reads waited 60 s on a writer's lock")
        }
    }
}

#[test]
fn sys_and_api_rows_are_stored_in_postgres_and_read_back() -> fasten::Result<()> {
    use fasten::{RequestId, Source, Stdout, StreamQuery};
    use tracing_subscriber::prelude::*;
    let Some(mut schema) = Schema::new() else {
        return Ok(());
    };
    let stream_dsn = |var: &'static str, table: &str| {
        Dsn::parse_for(
            var,
            &format!("{}?table={}.{table}", base_url(), schema.name),
            "unused",
        )
        .unwrap()
    };
    let fasten = config(schema.dsn("audit_log"), "pg-streams")
        .stdout(Stdout::NONE)
        .sys_dsn(stream_dsn("FASTEN_SYS_DSN", "sys_log"))
        .api_dsn(stream_dsn("FASTEN_API_DSN", "api_log"))
        .build()?;
    let id = RequestId::parse("pg-req-1")?;
    let subscriber = tracing_subscriber::registry().with(fasten.sys_layer());
    tracing::subscriber::with_default(subscriber, || {
        fasten::context::with(id.clone(), || {
            for i in 0..30 {
                tracing::warn!(i, token = "sk_live_abcdefghijklmnopqrstuvwx", "step");
            }
        });
        tracing::info!("other");
    });
    fasten.flush_streams(SECS)?;
    let mut seen = Vec::new();
    let mut q = StreamQuery::new(7).request_id(id.clone()).level("warn");
    loop {
        let page = fasten.sys_rows(&q)?;
        assert_eq!(page.source, Source::Store);
        seen.extend(page.rows.iter().map(|r| r.fields["i"].as_u64().unwrap()));
        assert!(
            page.rows
                .iter()
                .all(|r| r.fields["token"] != "sk_live_abcdefghijklmnopqrstuvwx")
        );
        match page.next {
            Some(c) => {
                q = StreamQuery::new(7)
                    .request_id(id.clone())
                    .level("WARN")
                    .cursor(&c)?
            }
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..30).collect::<Vec<u64>>());
    let stored: i64 = schema
        .admin
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.sys_log WHERE fields ? 'i' AND timestamp > now() - interval '1 hour'",
                schema.name
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 30, "JSONB fields and TIMESTAMPTZ timestamps");

    #[cfg(feature = "http")]
    {
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route(
                "/users/{id}",
                axum::routing::get(|| async {
                    assert!(fasten::http::set_actor("admin"));
                    "ok"
                }),
            )
            .layer(fasten.api_layer())
            .layer(fasten::http::RequestIdLayer::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let res = rt
            .block_on(
                app.oneshot(
                    axum::http::Request::get("/users/42")
                        .header("x-request-id", "pg-req-2")
                        .body(axum::body::Body::empty())
                        .unwrap(),
                ),
            )
            .unwrap();
        assert_eq!(res.status(), 200);
        fasten.flush_streams(SECS)?;
        let page = fasten.api_rows(
            &StreamQuery::new(5)
                .request_id(RequestId::parse("pg-req-2")?)
                .status(200)
                .route("/users/{id}"),
        )?;
        assert_eq!(page.source, Source::Store);
        assert_eq!(page.rows.len(), 1);
        let row = &page.rows[0];
        assert_eq!(
            (row.method.as_str(), row.path.as_str()),
            ("GET", "/users/42")
        );
        assert_eq!(row.actor.as_deref(), Some("admin"));
        assert_eq!(row.bytes_out, Some(2));
    }
    schema.sql("SELECT 1");
    Ok(())
}

#[cfg(feature = "tracing")]
#[test]
fn issue_20_old_postgres_stream_tables_gain_the_trace_columns() -> fasten::Result<()> {
    use fasten::Stdout;
    let Some(mut schema) = Schema::new() else {
        return Ok(());
    };
    let pg = |cols: &str| {
        cols.replace(
            "TEXT NOT NULL, service_id",
            "TIMESTAMPTZ NOT NULL, service_id",
        )
        .replace("fields TEXT NOT NULL", "fields JSONB NOT NULL")
        .replace("INTEGER", "BIGINT")
        .replace("REAL", "DOUBLE PRECISION")
    };
    let name = schema.name.clone();
    schema.sql(&format!(
        "CREATE SCHEMA {name};
         CREATE TABLE {name}.sys_log ({sys});
         CREATE TABLE {name}.api_log ({api});
         INSERT INTO {name}.sys_log VALUES ('s1', '2026-01-01T00:00:00Z', 'it', 'node-1', NULL, NULL, 'INFO', 't', 'old', NULL, '{{}}', NULL);
         INSERT INTO {name}.api_log VALUES ('a1', '2026-01-01T00:00:00Z', 'it', 'node-1', NULL, 'r1', 'GET', '/old', '/old', 200, 1.0, NULL, NULL, NULL, NULL, NULL);",
        sys = pg(super::streams::OLD_SYS),
        api = pg(super::streams::OLD_API),
    ));
    let stream_dsn = |var: &'static str, table: &str| {
        Dsn::parse_for(
            var,
            &format!("{}?table={name}.{table}", base_url()),
            "unused",
        )
        .unwrap()
    };
    let fasten = config(schema.dsn("audit_log"), "pg-trace")
        .stdout(Stdout::NONE)
        .sys_dsn(stream_dsn("FASTEN_SYS_DSN", "sys_log"))
        .api_dsn(stream_dsn("FASTEN_API_DSN", "api_log"))
        .build()?;
    super::streams::trace_columns_round_trip(&fasten);
    Ok(())
}

/// A reader touches no store: a stream table (and schema) no writer has
/// made yet reads as no rows and is not made; an older fasten's table is
/// read as it is, not migrated, until a writer migrates it.
#[cfg(feature = "tracing")]
#[test]
fn a_stream_reader_creates_and_migrates_nothing() -> fasten::Result<()> {
    use fasten::StreamQuery;
    let Some(mut schema) = Schema::new() else {
        return Ok(());
    };
    let name = schema.name.clone();
    let sys = Dsn::parse_for(
        "FASTEN_SYS_DSN",
        &format!("{}?table={name}.sys_log", base_url()),
        "unused",
    )?;
    let reader = fasten::Reader::new(schema.dsn("audit_log")).sys_dsn(sys.clone());
    let query = StreamQuery::new(10);
    assert!(reader.sys(&query)?.rows.is_empty());
    let mut admin = postgres::Client::connect(&base_url(), postgres::NoTls).unwrap();
    let columns = |admin: &mut postgres::Client| -> Vec<String> {
        admin
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'sys_log' ORDER BY ordinal_position",
                &[&name],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let schema_exists = admin
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&name],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(schema_exists, 0, "the reader made the schema");

    let old = super::streams::OLD_SYS
        .replace("timestamp TEXT NOT NULL", "timestamp TIMESTAMPTZ NOT NULL")
        .replace("fields TEXT NOT NULL", "fields JSONB NOT NULL")
        .replace("INTEGER", "BIGINT");
    schema.sql(&format!(
        "CREATE SCHEMA {name};
         CREATE TABLE {name}.sys_log ({old});
         INSERT INTO {name}.sys_log VALUES ('s1', '2026-01-01T00:00:00Z', 'it', 'node-1', NULL, NULL, 'INFO', 't', 'old', NULL, '{{}}', NULL);"
    ));
    let before = columns(&mut admin);
    let rows = reader.sys(&query)?.rows;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].message.as_str(), rows[0].trace_id.as_deref()),
        ("old", None)
    );
    assert_eq!(columns(&mut admin), before, "the reader migrated the table");

    let fasten = config(schema.dsn("audit_log"), "pg-reader")
        .stdout(fasten::Stdout::NONE)
        .sys_dsn(sys)
        .build()?;
    let id = fasten::RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736")?;
    fasten::context::with(id.clone(), || {
        assert!(fasten.log(fasten::record::LogLine::new("info", "new").unwrap()));
    });
    fasten.flush_streams(SECS)?;
    assert!(
        columns(&mut admin).len() > before.len(),
        "the writer migrates"
    );
    // The same reader now reads the columns the writer added.
    let rows = reader.sys(&query)?.rows;
    let new = rows.iter().find(|r| r.message == "new").unwrap();
    assert_eq!(new.trace_id.as_deref(), Some(id.as_str()));
    assert_eq!(rows.len(), 2);
    fasten.shutdown(SECS)?;
    Ok(())
}
