//! Every public call works whatever the caller runs on: plain synchronous
//! code, a multi-thread Tokio runtime and a `current_thread` one, on SQLite
//! and on PostgreSQL. (PostgreSQL used to panic inside a runtime: "Cannot
//! start a runtime from within a runtime".)

use std::time::Duration;

use fasten::{AuditQuery, Config, Dsn, Event, FailureStrategy, Reader, RequestId};

use super::support::{dsn, registry};

const SECS: Duration = Duration::from_secs(10);

/// init, emit, emit_durable, flush, the Reader (audit page, one row,
/// correlate), verify and shutdown, in that order, on `audit`.
fn lifecycle(audit: &Dsn, node: &str) {
    let fasten = Config::new()
        .service_id("runtimes")
        .node_id(node)
        .audit_dsn(audit.clone())
        .registry(registry())
        .build()
        .expect("init");
    let id = RequestId::mint();
    fasten
        .emit(
            Event::new("USER_CREATED")
                .target("u-1")
                .request_id(id.clone()),
        )
        .expect("emit");
    let durable = fasten
        .emit_durable(
            Event::new("USER_UPDATED")
                .target("u-1")
                .request_id(id.clone()),
        )
        .expect("emit_durable");
    fasten.flush(SECS).expect("flush");

    let reader = Reader::new(audit.clone());
    let page = reader
        .audit(&AuditQuery::new(10).request_id(&id))
        .expect("reader audit");
    assert_eq!(page.rows.len(), 2, "{node}");
    let row = reader.audit_row(&durable.id).expect("reader row");
    assert_eq!(row.map(|r| r.hash), Some(durable.hash));
    let timeline = reader.correlate(&id).expect("reader correlate");
    assert!(format!("{timeline:?}").contains("USER_UPDATED"));
    let report = fasten::verify(audit).expect("verify");
    assert!(report.ok, "{report:?}");
    fasten.shutdown(SECS).expect("shutdown");
}

fn each_context(audit: &Dsn, tag: &str) {
    lifecycle(audit, &format!("{tag}-sync"));

    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    multi.block_on(async { lifecycle(audit, &format!("{tag}-multi")) });

    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    current.block_on(async { lifecycle(audit, &format!("{tag}-current")) });

    // A raise-mode pipeline waits for each commit inside `emit` itself.
    current.block_on(async {
        let fasten = Config::new()
            .service_id("runtimes")
            .node_id(format!("{tag}-raise"))
            .audit_dsn(audit.clone())
            .audit_store_failure_strategy(FailureStrategy::Raise)
            .registry(registry())
            .build()
            .expect("init");
        fasten.emit(Event::new("USER_CREATED")).expect("emit");
        fasten.shutdown(SECS).expect("shutdown");
    });
}

#[test]
fn sqlite_from_sync_multi_thread_and_current_thread_callers() {
    let dir = tempfile::tempdir().expect("tempdir");
    each_context(&dsn(&dir.path().join("rt.db")), "sqlite");
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_from_sync_multi_thread_and_current_thread_callers() {
    let Some(schema) = super::postgres::Schema::new() else {
        return;
    };
    each_context(&schema.dsn("audit_log"), "pg");
}

/// The awaitable forms, on a `current_thread` runtime (one executor thread:
/// a blocking call there would stall everything): rows, the caller's
/// context and the reads all come through.
fn async_forms(audit: &Dsn, node: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fasten = Config::new()
            .service_id("runtimes")
            .node_id(node)
            .audit_dsn(audit.clone())
            .audit_store_failure_strategy(FailureStrategy::Raise)
            .registry(registry())
            .build()
            .expect("init");
        let id = RequestId::mint();
        let (queued, durable) = fasten::context::scope(id.clone(), async {
            assert!(fasten::context::set_actor("alice", fasten::ActorKind::User));
            let queued = fasten
                .emit_async(Event::new("USER_CREATED"))
                .await
                .expect("emit_async");
            let durable = fasten
                .emit_durable_async(Event::new("USER_UPDATED"))
                .await
                .expect("emit_durable_async");
            (queued, durable)
        })
        .await;
        assert_eq!(
            (durable.actor.as_str(), durable.request_id.as_str()),
            ("alice", id.as_str())
        );
        fasten.flush_async(SECS).await.expect("flush_async");
        let reader = fasten::AsyncReader::new(Reader::new(audit.clone()));
        let page = reader
            .audit(AuditQuery::new(10).request_id(&id))
            .await
            .expect("audit");
        assert_eq!(page.rows.len(), 2);
        let row = reader
            .audit_row(queued.to_string())
            .await
            .expect("row")
            .expect("stored");
        assert_eq!(row.actor, "alice");
        let timeline = reader.correlate(id).await.expect("correlate");
        assert!(format!("{timeline:?}").contains("USER_CREATED"));
        fasten.shutdown_async(SECS).await.expect("shutdown_async");
    });
}

#[test]
fn sqlite_async_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    async_forms(&dsn(&dir.path().join("async.db")), "sqlite-async");
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_async_forms() {
    let Some(schema) = super::postgres::Schema::new() else {
        return;
    };
    async_forms(&schema.dsn("audit_log"), "pg-async");
}
