//! `FASTEN_REQUEST_ID`: a process started with it (by `fasten run`, a
//! scheduler, a script) uses it as its default ambient id; a hostile value
//! is ignored with a warning, never trusted. Each case is its own process.

use std::time::Duration;

use fasten::{Config, Event, RequestId, Stdout, StreamQuery};

use super::support::{child, db_path, registry, role};

const SECS: Duration = Duration::from_secs(10);

/// Entry point of the child processes (`FASTEN_IT_ROLE=env-id`).
#[test]
#[ignore = "child-process entry point, run by its parent test"]
fn child_env_id() {
    if role().as_deref() != Some("env-id") {
        return;
    }
    let path = db_path("FASTEN_IT_DB");
    let expected = std::env::var("FASTEN_IT_EXPECT").ok();
    let fasten = Config::from_env()
        .unwrap()
        .audit_dsn(super::support::dsn(&path))
        .registry(registry())
        .stdout(Stdout::NONE)
        .build()
        .unwrap();
    assert_eq!(
        fasten::context::current().map(|id| id.to_string()),
        expected,
        "the process default"
    );
    // Spawned threads without propagation see it too: it is the process's.
    let on_thread = std::thread::spawn(fasten::context::current).join().unwrap();
    assert_eq!(on_thread.map(|id| id.to_string()), expected);
    // A scope still wins inside it, and the default comes back after.
    let scoped = RequestId::parse("scoped-1").unwrap();
    fasten::context::with(scoped.clone(), || {
        assert_eq!(fasten::context::current(), Some(scoped.clone()));
    });
    let row = fasten
        .emit_durable(Event::new("USER_CREATED").target("u-1"))
        .unwrap();
    match &expected {
        Some(id) => assert_eq!(&row.request_id, id),
        None => assert_eq!(row.request_id.len(), 32, "minted"),
    }
    #[cfg(feature = "http")]
    {
        // An inbound HTTP request starts a request of its own, even without
        // a RequestIdLayer: it does not join the process's id.
        use tower::ServiceExt as _;
        let app = axum::Router::new()
            .route(
                "/x",
                axum::routing::get(|| async { fasten::context::current().unwrap().to_string() }),
            )
            .layer(fasten.api_layer());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt
            .block_on(
                app.oneshot(
                    axum::http::Request::get("/x")
                        .body(axum::body::Body::empty())
                        .unwrap(),
                ),
            )
            .unwrap();
        let body = rt
            .block_on(axum::body::to_bytes(res.into_body(), 1024))
            .unwrap();
        assert_eq!(body.len(), 32, "a fresh id, not the process's: {body:?}");
    }
    fasten.flush_streams(SECS).unwrap();
    let warnings = fasten
        .sys_rows(&StreamQuery::new(10).level("WARN"))
        .unwrap()
        .rows;
    let hostile = std::env::var("FASTEN_IT_HOSTILE").is_ok();
    assert_eq!(warnings.len(), usize::from(hostile), "{warnings:?}");
    if hostile {
        assert_eq!(warnings[0].target, "fasten::context");
        assert!(warnings[0].message.contains("FASTEN_REQUEST_ID ignored"));
        assert!(
            warnings[0].fields["reason"]
                .as_str()
                .unwrap()
                .starts_with("invalid FASTEN_REQUEST_ID: ")
        );
    }
    fasten.shutdown(SECS).unwrap();
}

#[test]
fn issue_8_fasten_request_id_is_the_default_ambient_id_of_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(129);
    let cases: [(&str, Option<&str>, bool); 4] = [
        ("script-42", Some("script-42"), false),
        ("evil\u{1b}[31mid", None, true),
        (long.as_str(), None, true),
        ("", None, false),
    ];
    for (i, (value, expect, hostile)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("env-{i}.db"));
        let mut env = vec![
            ("FASTEN_IT_ROLE", "env-id".to_owned()),
            ("FASTEN_IT_DB", path.display().to_string()),
            ("FASTEN_SERVICE_ID", "script-step".to_owned()),
            ("FASTEN_NODE_ID", "node-1".to_owned()),
            ("FASTEN_REQUEST_ID", value.to_owned()),
        ];
        if let Some(e) = expect {
            env.push(("FASTEN_IT_EXPECT", e.to_owned()));
        }
        if hostile {
            env.push(("FASTEN_IT_HOSTILE", "1".to_owned()));
        }
        let out = child("process_id::child_env_id", &env).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "case {i} ({value:?}): {stdout}");
        assert!(stdout.contains("1 passed"), "case {i} ran: {stdout}");
    }
}
