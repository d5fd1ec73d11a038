//! Scheduled jobs: every row of a run shares `scheduler-<run_id>`, also the
//! api rows of the services it calls; the run's start, end, duration and
//! outcome are sys rows.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use fasten::context::Via;
use fasten::http::RequestIdLayer;
use fasten::{Event, Fasten, Method, RequestId, Stdout, StreamQuery, SysRow};
use serde_json::json;
use tracing_subscriber::prelude::*;

use super::support::config;

const SECS: Duration = Duration::from_secs(10);

fn pipeline(path: &std::path::Path, service: &str) -> Fasten {
    let file = format!("sqlite:///{}", path.display());
    config(path, &format!("{service}-1"))
        .service_id(service)
        .stdout(Stdout::NONE)
        .sys_dsn(fasten::Dsn::parse_for("FASTEN_SYS_DSN", &file, "sys_log").unwrap())
        .api_dsn(fasten::Dsn::parse_for("FASTEN_API_DSN", &file, "api_log").unwrap())
        .build()
        .unwrap()
}

fn audit_of(path: &std::path::Path, id: &str) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT service_id, code, method FROM audit_log WHERE request_id = ?1 ORDER BY service_id")
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn run_rows(fasten: &Fasten, id: &RequestId) -> Vec<SysRow> {
    let mut rows = fasten
        .sys_rows(&StreamQuery::new(100).request_id(id.clone()))
        .unwrap()
        .rows;
    rows.reverse(); // oldest first
    // The downstream service's handler names no actor; fasten says so once
    // (pipeline::warn_if_unattributed). Not one of the job's own rows.
    rows.retain(|r| r.target != "fasten::attribution");
    rows
}

#[test]
fn issue_8_a_scheduled_run_shares_one_id_across_services_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let jobs = pipeline(&path, "reports");
    let stock = pipeline(&path, "stock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(jobs.sys_layer());
    let (ok_id, failed_id) = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            // The service the job calls.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let s = stock.clone();
            let app = Router::new()
                .route(
                    "/stock",
                    get(move || async move {
                        s.emit(Event::new("PROFILE_VIEWED").target("stock"))
                            .unwrap();
                        Json(json!({ "left": 3 }))
                    }),
                )
                .layer(stock.api_layer())
                .layer(RequestIdLayer::new());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

            let job = jobs.job("nightly-report");
            let f = jobs.clone();
            let ok_id = job
                .run(async move {
                    let via = fasten::context::via().unwrap();
                    assert_eq!(
                        (via.method(), via.channel()),
                        (Method::Scheduler, "nightly-report")
                    );
                    tracing::info!("building report");
                    // Not synchronisation: the job's own work, an await
                    // point its context must survive, and the 5 ms its
                    // recorded duration_ms is checked against below.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    reqwest::Client::new()
                        .get(format!("{base}/stock"))
                        .headers(fasten::http::outbound_headers())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    f.emit(Event::new("USER_UPDATED").target("report/nightly"))
                        .unwrap();
                    Ok::<_, String>(fasten::context::current().unwrap())
                })
                .await
                .unwrap();
            let failed = job
                .run(async {
                    Err::<(), _>(format!(
                        "disk full, run {}",
                        fasten::context::current().unwrap()
                    ))
                })
                .await
                .unwrap_err();
            let failed_id = RequestId::parse(failed.rsplit(' ').next().unwrap()).unwrap();
            (ok_id, failed_id)
        })
    });
    jobs.flush(SECS).unwrap();
    stock.flush(SECS).unwrap();
    jobs.flush_streams(SECS).unwrap();
    stock.flush_streams(SECS).unwrap();

    assert!(ok_id.as_str().starts_with("scheduler-"), "{ok_id}");
    assert_eq!(ok_id.as_str().len(), "scheduler-".len() + 32);
    assert_eq!(
        audit_of(&path, ok_id.as_str()),
        vec![
            ("reports".into(), "USER_UPDATED".into(), "scheduler".into()),
            // The downstream service's handler runs inside its HTTP request.
            ("stock".into(), "PROFILE_VIEWED".into(), "http".into()),
        ]
    );
    let api = stock
        .api_rows(&StreamQuery::new(10).request_id(ok_id.clone()))
        .unwrap()
        .rows;
    assert_eq!(
        api.len(),
        1,
        "the downstream call's api row has the run's id"
    );
    assert_eq!(
        (&*api[0].service_id, api[0].route.as_str()),
        ("stock", "/stock")
    );

    let rows = run_rows(&jobs, &ok_id);
    let messages: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["job started", "building report", "job finished"]);
    let end = &rows[2];
    assert_eq!(
        (end.level.as_str(), end.target.as_str()),
        ("INFO", "fasten::scheduler")
    );
    assert_eq!(end.fields["job"], "nightly-report");
    assert_eq!(end.fields["outcome"], "success");
    assert!(
        end.fields["duration_ms"].as_f64().unwrap() >= 5.0,
        "{end:?}"
    );
    let started_at = end.fields["started_at"].as_str().unwrap();
    assert!(started_at <= rows[0].timestamp.as_str() && started_at.len() == 27);

    assert_ne!(failed_id, ok_id, "each run has its own id");
    let rows = run_rows(&jobs, &failed_id);
    let end = rows.last().unwrap();
    assert_eq!(
        (end.level.as_str(), end.message.as_str()),
        ("ERROR", "job failed")
    );
    assert_eq!(end.fields["outcome"], "failure");
    assert!(
        end.fields["error"]
            .as_str()
            .unwrap()
            .starts_with("disk full")
    );
}

#[test]
fn issue_8_plain_loop_runs_panics_and_cancelled_runs_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let jobs = pipeline(&path, "reports");
    let job = jobs.job("compact");
    // A plain loop of synchronous runs: one id each, method scheduler.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = job
            .run_blocking(|| {
                jobs.emit(Event::new("USER_UPDATED").target("db")).unwrap();
                Ok::<_, std::io::Error>(fasten::context::current().unwrap())
            })
            .unwrap();
        ids.push(id);
    }
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 3);
    // What tokio-cron-scheduler's `Job::new_async` needs: a `Send` boxed
    // future from a closure called at each firing.
    let cron_like = {
        let job = job.clone();
        move || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
            let job = job.clone();
            Box::pin(async move {
                let _ = job.run(async { Ok::<_, String>(()) }).await;
            })
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    rt.block_on(async { tokio::spawn(cron_like()).await.unwrap() });
    // A panicking run is recorded as failed, and the panic goes on.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        job.run_blocking(|| -> Result<(), String> { panic!("boom") })
    }));
    assert!(panicked.is_err());
    // A run dropped before it ends (a cancelled task) too.
    let run = job.run(async { Ok::<_, String>(()) });
    drop(run);
    // Nesting: a run inside a scope takes its own id, and the scope's comes back.
    let outer = RequestId::parse("outer-1").unwrap();
    fasten::context::with_via(outer.clone(), Via::new(Method::Cli, "script"), || {
        let inner = job
            .run_blocking(|| Ok::<_, String>(fasten::context::current()))
            .unwrap();
        assert_ne!(inner, Some(outer.clone()));
        assert_eq!(fasten::context::current(), Some(outer.clone()));
    });
    jobs.flush(SECS).unwrap();
    jobs.flush_streams(SECS).unwrap();

    for id in &ids {
        let audit = audit_of(&path, id.as_str());
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].2, "scheduler");
    }
    let all = jobs.sys_rows(&StreamQuery::new(100)).unwrap().rows;
    let failures: Vec<&str> = all
        .iter()
        .filter(|r| r.message == "job failed")
        .map(|r| r.fields["error"].as_str().unwrap())
        .collect();
    assert_eq!(failures.len(), 2, "{all:?}");
    assert!(failures.contains(&"the job panicked"));
    assert!(failures.iter().any(|e| e.contains("cancelled")));
    let finished = all.iter().filter(|r| r.message == "job finished").count();
    assert_eq!(finished, 5);
}
