//! A job fired by tokio-cron-scheduler gets its own request id per run
//! (moved from fasten's `tests/it/scheduler.rs` with its helpers).

use std::time::Duration;

use fasten::{Event, Fasten, RequestId, Stdout, StreamQuery, SysRow};

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
    rows.retain(|r| r.target != "fasten::attribution");
    rows
}

#[test]
fn issue_8_runs_fired_by_tokio_cron_scheduler_each_get_their_own_id() {
    use tokio_cron_scheduler::{Job, JobScheduler};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let jobs = pipeline(&path, "reports");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ids = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let job = jobs.job("every-second");
        let f = jobs.clone();
        let mut sched = JobScheduler::new().await.unwrap();
        sched
            .add(
                Job::new_async("* * * * * *", move |_uuid, _sched| {
                    let (job, f, tx) = (job.clone(), f.clone(), tx.clone());
                    Box::pin(async move {
                        let _ = job
                            .run(async move {
                                f.emit(Event::new("USER_UPDATED").target("tick")).unwrap();
                                tx.send(fasten::context::current().unwrap()).unwrap();
                                Ok::<_, String>(())
                            })
                            .await;
                    })
                })
                .unwrap(),
            )
            .await
            .unwrap();
        sched.start().await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..2 {
            ids.push(
                tokio::time::timeout(Duration::from_secs(5), rx.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        sched.shutdown().await.unwrap();
        ids
    });
    jobs.flush(SECS).unwrap();
    jobs.flush_streams(SECS).unwrap();
    assert_ne!(ids[0], ids[1], "one id per firing");
    for id in &ids {
        assert!(id.as_str().starts_with("scheduler-"), "{id}");
        assert_eq!(
            audit_of(&path, id.as_str()),
            vec![("reports".into(), "USER_UPDATED".into(), "scheduler".into())]
        );
        let messages: Vec<String> = run_rows(&jobs, id).into_iter().map(|r| r.message).collect();
        assert_eq!(messages, ["job started", "job finished"]);
    }
}
