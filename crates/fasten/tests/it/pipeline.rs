//! The pipeline end to end over a real SQLite file.

use std::time::Duration;

use fasten::{ActorKind, ErrorKind, Event, FailureStrategy, Outcome, RequestId, context};
use serde_json::json;

use super::support::{config, dsn, pipeline};

const SECS: Duration = Duration::from_secs(10);

#[test]
fn emitted_rows_are_chained_and_verify() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let fasten = pipeline(&path);
    for i in 0..500 {
        fasten.emit(
            Event::new("USER_CREATED")
                .actor("alice", ActorKind::User)
                .target(format!("u-{i}"))
                .detail(json!({ "i": i, "api_key": "sk-should-not-be-stored" })),
        )?;
    }
    fasten.flush(SECS)?;
    let stats = fasten.queue_stats();
    assert_eq!(stats.written, 500);
    assert_eq!(stats.enqueued, 500);
    assert_eq!(stats.depth, 0);
    assert!(stats.batches >= 1);
    assert_eq!(stats.store_kind, "sqlite");
    assert_eq!(stats.redactions, 500);
    fasten.shutdown(SECS)?;
    let report = fasten::verify(&dsn(&path))?;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes.len(), 1);
    assert_eq!(report.nodes[0].rows, 500);
    // The secret never reached the file.
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
    for haystack in [&bytes, &wal] {
        assert!(
            !haystack
                .windows(b"sk-should-not-be-stored".len())
                .any(|w| w == b"sk-should-not-be-stored")
        );
    }
    Ok(())
}

#[test]
fn raise_mode_returns_the_durable_row() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let fasten = config(&path, "node-r")
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .build()?;
    let id = fasten.emit(Event::new("USER_UPDATED").target("u-1"))?;
    // Durable already: a second reader sees it without any flush.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let seq: i64 = conn
        .query_row(
            "SELECT monotonic_seq FROM audit_log WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(seq, 1);
    let row = fasten.emit_durable(Event::new("USER_UPDATED").outcome(Outcome::Denied))?;
    assert_eq!(row.monotonic_seq, 2);
    assert_eq!(row.outcome, "denied");
    assert_eq!(row.source_node_id, "node-r");
    assert_eq!(row.detail, Some(json!({})));
    Ok(())
}

#[test]
fn request_id_comes_from_the_context_or_is_minted() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let fasten = pipeline(&dir.path().join("audit.db"));
    let id = RequestId::parse("req-42")?;
    let scoped = context::with(id.clone(), || {
        fasten.emit_durable(Event::new("USER_CREATED"))
    })?;
    assert_eq!(scoped.request_id, "req-42");
    let explicit = context::with(id, || {
        fasten.emit_durable(Event::new("USER_CREATED").request_id(RequestId::parse("other")?))
    })?;
    assert_eq!(explicit.request_id, "other");
    let minted = fasten.emit_durable(Event::new("USER_CREATED"))?;
    assert_eq!(minted.request_id.len(), 32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let f = fasten.clone();
    let row = rt.block_on(context::scope(RequestId::parse("req-async")?, async move {
        tokio::task::yield_now().await;
        tokio::spawn(async move { f.emit_durable(Event::new("USER_CREATED")) }.in_current_context())
            .await
            .unwrap()
    }))?;
    assert_eq!(row.request_id, "req-async");
    Ok(())
}

use fasten::context::FutureExt as _;

#[test]
fn bad_input_is_refused_at_the_call_site() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let fasten = pipeline(&dir.path().join("audit.db"));
    let err = fasten.emit(Event::new("NOT_DECLARED")).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::UnknownCode);
    let err = fasten
        .emit(Event::new("USER_CREATED").detail(json!([1, 2])))
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidEvent { field: "detail" });
    #[derive(serde::Serialize)]
    struct Reading {
        celsius: Vec<f64>,
    }
    let err = fasten
        .emit(Event::new("USER_CREATED").detail(Reading {
            celsius: vec![1.0, f64::NAN],
        }))
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidEvent { field: "detail" });
    assert!(err.to_string().contains("celsius[1]"), "{err}");
    let err = fasten
        .emit(Event::new("USER_CREATED").actor("", ActorKind::User))
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidEvent { field: "actor" });
    let err = fasten
        .emit(Event::new("USER_CREATED").target("x".repeat(5000)))
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidEvent { field: "target" });
    // Nothing refused was written.
    fasten.flush(SECS)?;
    assert_eq!(fasten.queue_stats().written, 0);
    Ok(())
}

#[test]
fn pii_codes_keep_only_passthrough_keys() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let fasten = pipeline(&dir.path().join("audit.db"));
    let row = fasten.emit_durable(
        Event::new("PROFILE_VIEWED").detail(json!({ "user_id": "u-7", "email": "a@b.example" })),
    )?;
    assert_eq!(row.detail, Some(json!({ "user_id": "u-7" })));
    assert!(row.pii_in_detail);
    Ok(())
}

#[test]
fn oversized_details_become_a_summary() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let fasten = config(&dir.path().join("audit.db"), "node-big")
        .max_detail_bytes(1024)
        .build()?;
    let row = fasten.emit_durable(
        Event::new("USER_CREATED").detail(json!({ "blob": "x".repeat(5000), "name": "n" })),
    )?;
    let detail = row.detail.unwrap();
    assert!(detail.to_string().len() < 1024, "{detail}");
    assert_eq!(detail["_fasten_truncated"]["keys"], json!(["blob", "name"]));
    assert_eq!(fasten.queue_stats().truncated, 1);
    Ok(())
}

#[test]
fn a_full_queue_blocks_then_errors_and_is_counted() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let fasten = config(&path, "node-q")
        .audit_queue_capacity(4)
        .audit_batch_size(2)
        .audit_queue_timeout(Duration::from_millis(50))
        .build()?;
    // Another process-like connection holds the write lock, so the writer
    // cannot commit and the queue fills.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..40 {
        match fasten.emit(Event::new("USER_CREATED")) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.kind(), &ErrorKind::QueueFull);
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the queue never filled");
    assert_eq!(fasten.queue_stats().queue_full, refused);
    blocker.execute_batch("COMMIT").unwrap();
    fasten.flush(Duration::from_secs(30))?;
    let stats = fasten.queue_stats();
    assert_eq!(stats.written, accepted);
    assert_eq!(stats.high_water, 4);
    let report = fasten::verify(&dsn(&path))?;
    assert!(report.ok);
    assert_eq!(report.nodes[0].rows, accepted);
    Ok(())
}

#[test]
fn shutdown_writes_everything_and_refuses_later_emits() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let fasten = pipeline(&path);
    for _ in 0..1000 {
        fasten.emit(Event::new("USER_CREATED"))?;
    }
    let report = fasten.shutdown(SECS)?;
    assert_eq!((report.written, report.unwritten), (1000, 0));
    let err = fasten.emit(Event::new("USER_CREATED")).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Closed);
    assert_eq!(fasten::verify(&dsn(&path))?.nodes[0].rows, 1000);
    Ok(())
}

#[test]
fn tampering_is_detected_and_named() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let fasten = pipeline(&path);
    for i in 0..10 {
        fasten.emit(Event::new("USER_CREATED").detail(json!({ "i": i })))?;
    }
    fasten.shutdown(SECS)?;
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Erasure is not tampering.
    conn.execute(
        "UPDATE audit_log SET detail = NULL, detail_salt = NULL WHERE monotonic_seq = 3",
        [],
    )
    .unwrap();
    let report = fasten::verify(&dsn(&path))?;
    assert!(report.ok);
    assert_eq!(report.nodes[0].erased, 1);
    conn.execute(
        "UPDATE audit_log SET detail = '{\"i\":99}' WHERE monotonic_seq = 6",
        [],
    )
    .unwrap();
    let report = fasten::verify(&dsn(&path))?;
    assert!(!report.ok);
    let node = &report.nodes[0];
    assert_eq!(node.first_break_seq, Some(6));
    assert_eq!(node.rows, 5);
    assert_eq!(
        node.reason.as_deref(),
        Some("detail_commitment does not match detail")
    );
    // A row that no longer decodes is named, not a crash of the verifier.
    conn.execute(
        "UPDATE audit_log SET detail = 'not json' WHERE monotonic_seq = 2",
        [],
    )
    .unwrap();
    let report = fasten::verify(&dsn(&path))?;
    let node = &report.nodes[0];
    assert_eq!(node.first_break_seq, Some(2));
    assert!(
        node.reason
            .as_deref()
            .unwrap()
            .starts_with("row cannot be read"),
        "{node:?}"
    );
    Ok(())
}

#[test]
fn global_init_emit_flush_and_guard() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    fasten::register(
        "global_test",
        [("GLOBAL_THING", fasten::code::Meta::new("thing", "do"))],
    )?;
    assert_eq!(
        fasten::emit(Event::new("GLOBAL_THING")).unwrap_err().kind(),
        &ErrorKind::Closed
    );
    let guard = fasten::Config::new()
        .service_id("it")
        .node_id("node-g")
        .audit_dsn(dsn(&path))
        .init()?;
    assert!(
        fasten::Config::new()
            .service_id("a")
            .node_id("b")
            .audit_dsn(dsn(&path))
            .init()
            .is_err()
    );
    fasten::emit(Event::new("GLOBAL_THING"))?;
    fasten::flush(SECS)?;
    assert_eq!(fasten::queue_stats().map(|s| s.written), Some(1));
    let report = guard.shutdown(SECS)?;
    assert_eq!(report.written, 1);
    assert!(fasten::queue_stats().is_none());
    Ok(())
}

#[test]
fn store_failures_are_retried_then_raised_in_raise_mode() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let fasten = config(&path, "node-f")
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .audit_max_retries(2)
        .build()?;
    fasten.emit(Event::new("USER_CREATED"))?;
    // Someone renames the table under the writer: every insert fails, and
    // reopening (which would recreate it) is blocked by a view of that name.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "ALTER TABLE audit_log RENAME TO moved; CREATE VIEW audit_log AS SELECT * FROM moved",
    )
    .unwrap();
    let err = fasten.emit(Event::new("USER_CREATED")).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Store);
    let stats = fasten.queue_stats();
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.store_health, fasten::StoreHealth::Retrying);
    assert!(stats.last_error.is_some());
    // Once the store is back, the same pipeline writes again.
    conn.execute_batch("DROP VIEW audit_log; ALTER TABLE moved RENAME TO audit_log")
        .unwrap();
    let row = fasten.emit_durable(Event::new("USER_CREATED"))?;
    assert_eq!(row.monotonic_seq, 2);
    assert_eq!(
        fasten.queue_stats().store_health,
        fasten::StoreHealth::Healthy
    );
    Ok(())
}

#[test]
fn retry_mode_keeps_rows_through_a_store_outage() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let fasten = config(&path, "node-o").build()?;
    fasten.emit(Event::new("USER_CREATED"))?;
    fasten.flush(SECS)?;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "ALTER TABLE audit_log RENAME TO moved; CREATE VIEW audit_log AS SELECT * FROM moved",
    )
    .unwrap();
    for _ in 0..10 {
        fasten.emit(Event::new("USER_CREATED"))?;
    }
    // The writer keeps retrying; nothing is dropped while it does.
    let err = fasten.flush(Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert!(fasten.queue_stats().retries >= 1);
    conn.execute_batch("DROP VIEW audit_log; ALTER TABLE moved RENAME TO audit_log")
        .unwrap();
    fasten.flush(Duration::from_secs(30))?;
    assert_eq!(fasten.queue_stats().written, 11);
    let report = fasten::verify(&dsn(&path))?;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes[0].rows, 11);
    Ok(())
}

#[test]
fn verify_reads_a_table_written_by_another_implementation() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    let vectors = super::support::vectors();
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Another column order, an extra column, no fasten indexes.
    conn.execute_batch(
        "CREATE TABLE trail (hash TEXT, prev_hash TEXT, legacy_note TEXT, canonical_form_id TEXT,
         wire_version TEXT, shipped_at TEXT, pii_in_detail INTEGER, detail_commitment TEXT,
         detail_salt TEXT, detail TEXT, request_id TEXT, method TEXT, domain TEXT, category TEXT,
         target TEXT, actor_kind TEXT, actor TEXT, tenant_id TEXT, source_node_id TEXT,
         service_id TEXT, outcome TEXT, severity TEXT, action TEXT, code TEXT, timestamp TEXT,
         monotonic_seq INTEGER, origin_id TEXT, id TEXT PRIMARY KEY)",
    )
    .unwrap();
    let mut chain = vectors["chain"].as_array().unwrap().clone();
    chain[1] = vectors["chain_row_2_redacted"].clone();
    for row in &chain {
        let s = |k: &str| row[k].as_str().map(str::to_owned);
        let detail = (!row["detail"].is_null()).then(|| row["detail"].to_string());
        conn.execute(
            "INSERT INTO trail (hash, prev_hash, legacy_note, canonical_form_id, wire_version,
             pii_in_detail, detail_commitment, detail_salt, detail, request_id, method, domain,
             category, target, actor_kind, actor, tenant_id, source_node_id, service_id, outcome,
             severity, action, code, timestamp, monotonic_seq, origin_id, id)
             VALUES (?1, ?2, 'x', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
             ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
            rusqlite::params![
                s("hash"),
                s("prev_hash"),
                s("canonical_form_id"),
                s("wire_version"),
                row["pii_in_detail"].as_bool(),
                s("detail_commitment"),
                s("detail_salt"),
                detail,
                s("request_id"),
                s("method"),
                s("domain"),
                s("category"),
                s("target"),
                s("actor_kind"),
                s("actor"),
                s("tenant_id"),
                s("source_node_id"),
                s("service_id"),
                s("outcome"),
                s("severity"),
                s("action"),
                s("code"),
                s("timestamp"),
                row["monotonic_seq"].as_i64(),
                s("origin_id"),
                s("id")
            ],
        )
        .unwrap();
    }
    let dsn = fasten::Dsn::parse(
        "FASTEN_AUDIT_DSN",
        &format!("sqlite:///{}?table=trail", path.display()),
    )?;
    let report = fasten::verify(&dsn)?;
    assert!(report.ok, "{report:?}");
    assert_eq!((report.nodes[0].rows, report.nodes[0].erased), (7, 1));
    // Verification opened it read-only: no fasten index was added.
    let indexes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'trail_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0);
    Ok(())
}

#[test]
fn shutdown_under_load_writes_every_accepted_row() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let fasten = config(&path, "node-s")
        .audit_queue_capacity(32)
        .audit_batch_size(16)
        .build()?;
    let emitters: Vec<_> = (0..4)
        .map(|_| {
            let fasten = fasten.clone();
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                loop {
                    match fasten.emit(Event::new("USER_CREATED")) {
                        Ok(id) => accepted.push(id.to_string()),
                        Err(e) if e.kind() == &ErrorKind::Closed => return accepted,
                        Err(e) if e.kind() == &ErrorKind::QueueFull => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    // Shut down under load: once rows are flowing, not after a fixed sleep.
    super::support::wait_until("rows to be written", || fasten.queue_stats().written >= 64);
    let report = fasten.shutdown(Duration::from_secs(60))?;
    let accepted: Vec<String> = emitters
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(accepted.len() > 32, "only {} rows accepted", accepted.len());
    assert_eq!(report.unwritten, 0);
    assert_eq!(report.written as usize, accepted.len());
    let stored = super::support::stored_ids(&path);
    let lost: Vec<_> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "accepted but lost: {}", lost.len());
    // A second shutdown reports the same totals.
    assert_eq!(fasten.shutdown(SECS)?, report);
    Ok(())
}

#[test]
fn flush_and_shutdown_accept_a_timeout_of_forever() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let fasten = pipeline(&dir.path().join("audit.db"));
    fasten.emit(Event::new("USER_CREATED"))?;
    fasten.flush(Duration::MAX)?;
    assert_eq!(fasten.shutdown(Duration::MAX)?.written, 1);
    Ok(())
}

/// The actor and tenant ride in from the request's context like its id:
/// the event's own values first, then the context's, then the defaults;
/// work spawned with the context keeps them, a bare thread does not.
#[test]
fn attribution_comes_from_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let fasten = pipeline(&dir.path().join("audit.db"));
    assert!(
        !context::set_actor("nobody", ActorKind::User),
        "no request scope here"
    );
    let id = RequestId::mint();
    let (from_context, own, spawned, bare) = context::with(id.clone(), || {
        assert!(context::set_actor("alice", ActorKind::User));
        assert!(context::set_tenant("acme"));
        let from_context = fasten.emit_durable(Event::new("USER_CREATED")).unwrap();
        let own = fasten
            .emit_durable(
                Event::new("USER_CREATED")
                    .actor("batch", ActorKind::Service)
                    .tenant("globex"),
            )
            .unwrap();
        let spawned = std::thread::scope(|s| {
            s.spawn(context::propagate(|| {
                fasten.emit_durable(Event::new("USER_UPDATED")).unwrap()
            }))
            .join()
            .unwrap()
        });
        let bare = std::thread::scope(|s| {
            s.spawn(|| fasten.emit_durable(Event::new("USER_UPDATED")).unwrap())
                .join()
                .unwrap()
        });
        (from_context, own, spawned, bare)
    });
    assert_eq!(
        (
            from_context.actor.as_str(),
            from_context.actor_kind.as_str()
        ),
        ("alice", "user")
    );
    assert_eq!(from_context.tenant_id.as_deref(), Some("acme"));
    assert_eq!(from_context.request_id, id.as_str());
    assert_eq!(
        (own.actor.as_str(), own.tenant_id.as_deref()),
        ("batch", Some("globex"))
    );
    assert_eq!(
        (spawned.actor.as_str(), spawned.tenant_id.as_deref()),
        ("alice", Some("acme"))
    );
    assert_eq!(spawned.request_id, id.as_str());
    assert_eq!(
        (bare.actor.as_str(), bare.tenant_id.as_deref()),
        ("system", None)
    );
    assert_ne!(bare.request_id, id.as_str());
    fasten.shutdown(SECS).unwrap();
}
