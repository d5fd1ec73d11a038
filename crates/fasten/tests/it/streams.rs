//! The sys and api streams: the tracing layer, the HTTP layers over real
//! loopback HTTP, and one request's rows joined across the three streams.

use std::time::Duration;

use fasten::{Config, Dsn, Event, Fasten, RequestId, Source, Stdout, StreamQuery};
use tracing_subscriber::prelude::*;

use super::support::{config, streams_config};

const SECS: Duration = Duration::from_secs(10);

/// Audit rows of one request, straight from the file.
#[cfg(feature = "http")]
fn audit_codes_of(path: &std::path::Path, id: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT code FROM audit_log WHERE request_id = ?1 ORDER BY timestamp")
        .unwrap();
    stmt.query_map([id], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn sys_rows_carry_the_ambient_id_and_redacted_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let fasten = streams_config(&path).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(fasten.sys_layer());
    let scoped = RequestId::parse("req-scoped").unwrap();
    tracing::subscriber::with_default(subscriber, || {
        fasten::context::with(scoped.clone(), || {
            tracing::info!(
                order = 42,
                password = "hunter2",
                ratio = 0.5,
                ok = true,
                "order placed"
            );
            tracing::debug!("below FASTEN_SYS_LEVEL: not recorded");
        });
        let span = tracing::info_span!("job", request_id = "req-span").entered();
        tracing::warn!(target: "billing", nan = f64::NAN, "inside a span");
        drop(span);
        tracing::error!("no request");
    });
    fasten.flush_streams(SECS).unwrap();

    let page = fasten
        .sys_rows(&StreamQuery::new(10).request_id(scoped))
        .unwrap();
    assert_eq!(page.source, Source::Store);
    assert_eq!(page.rows.len(), 1, "{:?}", page.rows);
    let row = &page.rows[0];
    assert_eq!(
        (row.level.as_str(), row.message.as_str()),
        ("INFO", "order placed")
    );
    assert_eq!(row.fields["order"], 42);
    assert_eq!(row.fields["ratio"], 0.5);
    assert_eq!(row.fields["ok"], true);
    assert_ne!(
        row.fields["password"], "hunter2",
        "secrets never reach a row"
    );
    assert_eq!(&*row.service_id, "it");

    let span_page = fasten
        .sys_rows(&StreamQuery::new(10).request_id(RequestId::parse("req-span").unwrap()))
        .unwrap();
    let row = &span_page.rows[0];
    assert_eq!(
        (row.target.as_str(), row.span.as_deref()),
        ("billing", Some("job"))
    );
    assert_eq!(row.fields["nan"], "NaN", "JSON has no NaN: kept as text");

    let all = fasten.sys_rows(&StreamQuery::new(10)).unwrap();
    assert_eq!(all.rows.len(), 3, "the debug event is below the level");
    assert_eq!(all.rows[0].level, "ERROR", "newest first");
    assert_eq!(all.rows[0].request_id, None);
    assert_eq!(fasten.sys_stats().written, 3);
    assert_eq!(fasten.sys_stats().dropped, 0);
}

#[test]
fn pages_follow_the_cursor_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    // The same reads from the ring (no store) and from the table.
    for with_store in [false, true] {
        let cfg = if with_store {
            streams_config(&path)
        } else {
            config(&path, "node-1").stdout(Stdout::NONE)
        };
        let fasten = cfg.build().unwrap();
        let subscriber = tracing_subscriber::registry().with(fasten.sys_layer());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..25 {
                tracing::info!(i, "row");
            }
        });
        fasten.flush_streams(SECS).unwrap();
        let mut seen = Vec::new();
        let mut q = StreamQuery::new(10);
        loop {
            let page = fasten.sys_rows(&q).unwrap();
            let expected = if with_store {
                Source::Store
            } else {
                Source::Ring
            };
            assert_eq!(page.source, expected);
            seen.extend(page.rows.iter().map(|r| r.fields["i"].as_u64().unwrap()));
            match page.next {
                Some(c) => q = StreamQuery::new(10).cursor(&c).unwrap(),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, (0..25).collect::<Vec<_>>(), "{seen:?}");
        assert_eq!(seen.len(), 25);
        fasten.shutdown(SECS).unwrap();
        std::fs::remove_file(&path).ok();
    }
    let err = StreamQuery::new(1).cursor("not-a-cursor").unwrap_err();
    assert_eq!(
        err.kind(),
        &fasten::ErrorKind::InvalidEvent { field: "cursor" }
    );
}

#[test]
fn a_stream_that_cannot_keep_up_sheds_and_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let fasten = streams_config(&path)
        .stream_queue_capacity(1)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(fasten.sys_layer());
    let n = 5_000u64;
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..n {
            tracing::info!(i, "burst");
        }
    });
    fasten.flush_streams(SECS).unwrap();
    let stats = fasten.sys_stats();
    assert_eq!(stats.pushed, n);
    assert!(stats.dropped > 0, "a queue of one cannot hold a burst");
    assert_eq!(stats.ring_len, stats.ring_capacity.min(n as usize));

    let conn = rusqlite::Connection::open(&path).unwrap();
    let (rows, reported): (i64, i64) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE dropped IS NULL), coalesce(sum(dropped), 0) FROM sys_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(reported as u64, stats.dropped, "every shed row is reported");
    assert_eq!(
        (rows + reported) as u64,
        n,
        "written + reported dropped = pushed"
    );
    let message: String = conn
        .query_row(
            "SELECT message FROM sys_log WHERE dropped IS NOT NULL LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(message.contains("sys rows dropped"), "{message}");
}

#[cfg(feature = "http")]
mod http {
    use super::*;
    use axum::extract::{Path as UrlPath, State};
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use fasten::context::FutureExt as _;
    use fasten::http::{RequestIdLayer, X_REQUEST_ID};
    use serde_json::json;

    use crate::support::stored_ids;

    #[derive(Clone)]
    struct App {
        fasten: Fasten,
        downstream: String,
    }

    async fn place_order(
        State(app): State<App>,
        UrlPath(id): UrlPath<String>,
    ) -> (StatusCode, Json<serde_json::Value>) {
        assert!(fasten::http::set_actor("u-42"));
        assert!(fasten::http::set_target(format!("order/{id}")));
        tracing::info!(order = %id, "placing order");
        app.fasten
            .emit(Event::new("USER_CREATED").target(format!("order/{id}")))
            .unwrap();
        // Work on another task keeps the id when spawned in context.
        let f = app.fasten.clone();
        tokio::spawn(
            async move {
                tracing::info!("background step");
                f.emit(Event::new("USER_UPDATED").target("order/bg"))
                    .unwrap();
            }
            .in_current_context(),
        )
        .await
        .unwrap();
        let stock: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/stock/widget", app.downstream))
            .headers(fasten::http::outbound_headers())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            StatusCode::CREATED,
            Json(json!({ "order": id, "stock": stock })),
        )
    }

    async fn stock(
        State(app): State<App>,
        UrlPath(sku): UrlPath<String>,
    ) -> Json<serde_json::Value> {
        tracing::info!(%sku, "stock checked");
        app.fasten
            .emit(Event::new("PROFILE_VIEWED").target(format!("sku/{sku}")))
            .unwrap();
        Json(json!({ "sku": sku, "left": 3 }))
    }

    fn router(app: App) -> Router {
        let layer = app.fasten.api_layer();
        Router::new()
            .route("/orders/{id}", post(place_order))
            .route("/stock/{sku}", get(stock))
            .route("/health", get(|| async { "ok" }))
            .with_state(app)
            .layer(layer)
            .layer(RequestIdLayer::new())
    }

    /// Serves the app on loopback and runs `client` against it, all on one
    /// current-thread runtime with the sys layer as the default subscriber.
    fn serve<F, Fut, T>(fasten: &Fasten, client: F) -> T
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(fasten.sys_layer());
        tracing::subscriber::with_default(subscriber, || {
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let base = format!("http://{}", listener.local_addr().unwrap());
                let app = App {
                    fasten: fasten.clone(),
                    downstream: base.clone(),
                };
                let server = tokio::spawn(async move {
                    axum::serve(listener, router(app)).await.unwrap();
                });
                let out = client(base).await;
                server.abort();
                out
            })
        })
    }

    #[test]
    fn one_request_joins_api_sys_and_audit_rows_on_one_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let fasten = streams_config(&path)
            .api_skip_paths(["/health"])
            .build()
            .unwrap();
        let ids = serve(&fasten, |base| async move {
            let mut ids = Vec::new();
            let client = reqwest::Client::new();
            // No inbound id: one is minted and echoed.
            let res = client
                .post(format!("{base}/orders/7"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            ids.push(res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned());
            // A safe inbound id is kept.
            let res = client
                .post(format!("{base}/orders/8"))
                .header("x-request-id", "client-req-8")
                .send()
                .await
                .unwrap();
            assert_eq!(res.headers()[X_REQUEST_ID], "client-req-8");
            ids.push("client-req-8".to_owned());
            // A hostile one is replaced, never echoed.
            let res = client
                .post(format!("{base}/orders/9"))
                .header("x-request-id", "evil\" OR 1=1 --")
                .send()
                .await
                .unwrap();
            let echoed = res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
            assert_eq!(echoed.len(), 32, "{echoed}");
            ids.push(echoed);
            // traceparent's trace-id becomes the id.
            let res = client
                .post(format!("{base}/orders/10"))
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.headers()[X_REQUEST_ID],
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            ids.push("4bf92f3577b34da6a3ce929d0e0e4736".to_owned());
            let res = client.get(format!("{base}/health")).send().await.unwrap();
            assert_eq!(res.status(), 200);
            ids
        });
        fasten.flush(SECS).unwrap();
        fasten.flush_streams(SECS).unwrap();

        for id in &ids {
            let rid = RequestId::parse(id).unwrap();
            let api = fasten
                .api_rows(&StreamQuery::new(10).request_id(rid.clone()))
                .unwrap();
            assert_eq!(api.source, Source::Store);
            let mut routes: Vec<(&str, u16)> = api
                .rows
                .iter()
                .map(|r| (r.route.as_str(), r.status))
                .collect();
            routes.sort_unstable();
            assert_eq!(
                routes,
                vec![("/orders/{id}", 201), ("/stock/{sku}", 200)],
                "the order and its downstream call, id {id}"
            );
            let order = api.rows.iter().find(|r| r.route == "/orders/{id}").unwrap();
            assert_eq!(order.method, "POST");
            assert_eq!(order.actor.as_deref(), Some("u-42"));
            assert!(order.target.as_deref().unwrap().starts_with("order/"));
            assert!(order.bytes_out.unwrap() > 0);
            assert!(order.duration_ms > 0.0);

            let sys = fasten
                .sys_rows(&StreamQuery::new(10).request_id(rid))
                .unwrap();
            // The stock service's handler names no actor: fasten's one
            // warning about it is not one of the request's own rows.
            let mut messages: Vec<&str> = sys
                .rows
                .iter()
                .filter(|r| r.target != "fasten::attribution")
                .map(|r| r.message.as_str())
                .collect();
            messages.sort_unstable();
            assert_eq!(
                messages,
                vec!["background step", "placing order", "stock checked"],
                "handler, spawned task and downstream service, id {id}"
            );

            let http_rows: i64 = rusqlite::Connection::open(&path)
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM audit_log WHERE request_id = ?1 AND method = 'http'",
                    [id],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                http_rows, 3,
                "rows emitted inside a request are method=http"
            );
            let mut codes = audit_codes_of(&path, id);
            codes.sort_unstable();
            assert_eq!(
                codes,
                vec!["PROFILE_VIEWED", "USER_CREATED", "USER_UPDATED"],
                "id {id}"
            );
        }
        assert_eq!(stored_ids(&path).len(), 12);
        let all = fasten.api_rows(&StreamQuery::new(100)).unwrap();
        assert!(
            all.rows.iter().all(|r| r.route != "/health"),
            "skipped paths get no row"
        );
        assert_eq!(all.rows.len(), 8);
    }

    #[test]
    fn a_request_abandoned_by_its_client_is_recorded_as_499() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let fasten = config(&path, "node-1")
            .stdout(Stdout::NONE)
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    // A handler that never answers.
                    std::future::pending::<()>().await;
                    "never"
                }),
            )
            .layer(fasten.api_layer())
            .layer(RequestIdLayer::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let req = axum::http::Request::get("/slow")
                .header("x-request-id", "gone-1")
                .body(axum::body::Body::empty())
                .unwrap();
            let fut = app.oneshot(req);
            // The client gives up after a moment.
            assert!(
                tokio::time::timeout(Duration::from_millis(20), fut)
                    .await
                    .is_err()
            );
        });
        let page = fasten
            .api_rows(&StreamQuery::new(5).request_id(RequestId::parse("gone-1").unwrap()))
            .unwrap();
        assert_eq!(page.source, Source::Ring);
        assert_eq!(page.rows.len(), 1);
        assert_eq!(
            (page.rows[0].status, page.rows[0].route.as_str()),
            (499, "/slow")
        );
    }

    #[test]
    fn without_a_request_id_layer_the_api_row_still_gets_an_id() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let fasten = config(&path, "node-1")
            .stdout(Stdout::NONE)
            .build()
            .unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen2 = seen.clone();
        let app = Router::new()
            .route(
                "/x",
                get(move || {
                    *seen2.lock().unwrap() = fasten::context::current();
                    async { "ok" }
                }),
            )
            .layer(fasten.api_layer());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let res = rt.block_on(
            app.oneshot(
                axum::http::Request::get("/x?secret=1")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            ),
        );
        assert_eq!(res.unwrap().status(), 200);
        let rows = fasten.api_rows(&StreamQuery::new(5)).unwrap().rows;
        assert_eq!(rows.len(), 1);
        assert_eq!(Some(&rows[0].request_id), seen.lock().unwrap().as_ref());
        assert_eq!(rows[0].path, "/x", "the query string is never stored");
    }
}

#[test]
fn the_retention_sweep_deletes_old_stream_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let fasten = streams_config(&path)
        .sys_retention_days(1)
        .retention_sweep_interval(None)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(fasten.sys_layer());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..5 {
            tracing::info!(i, "old enough soon");
        }
    });
    fasten.flush_streams(SECS).unwrap();
    let count = || -> i64 {
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM sys_log", [], |r| r.get(0))
            .unwrap()
    };
    // Not yet a day old: kept.
    let report = fasten
        .sweep(&fasten::retention::SweepOptions::new())
        .unwrap();
    assert_eq!(report.streams.get("sys"), Some(&0));
    assert_eq!(count(), 5);
    // Two days on: deleted, and the sweep's audit event says how many.
    let later = std::time::SystemTime::now() + Duration::from_secs(2 * 86_400);
    let report = fasten
        .sweep(&fasten::retention::SweepOptions::new().now(later))
        .unwrap();
    assert_eq!(report.streams.get("sys"), Some(&5));
    assert_eq!(
        report.streams.get("api"),
        None,
        "no api retention configured"
    );
    assert_eq!(count(), 0);
    fasten.flush(SECS).unwrap();
    let detail: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT detail FROM audit_log WHERE id = ?1",
            [report.event_id.unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(detail.contains(r#""streams":{"sys":5}"#), "{detail}");
}

/// Log lines and api rows from another language's logger and server (the
/// bindings' way in) follow the rules of rows made in Rust: levels checked,
/// fields redacted, the request's id and tenant, query strings cut off,
/// long fields capped.
#[test]
fn foreign_log_lines_and_api_rows() {
    use fasten::record::{ApiRecord, LogLine, MAX_FIELD_BYTES};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let fasten = streams_config(&path).build().unwrap();
    let err = LogLine::new("loud", "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid level "loud": expected trace, debug, info, warn or error"#
    );
    assert!(ApiRecord::new(RequestId::mint(), "GE T", "/", 200, SECS).is_err());
    assert!(ApiRecord::new(RequestId::mint(), "GET", "/", 42, SECS).is_err());

    let id = RequestId::mint();
    fasten::context::with(id.clone(), || {
        assert!(fasten::context::set_tenant("acme"));
        assert!(!fasten.log(LogLine::new("debug", "below the level").unwrap()));
        assert!(
            fasten.log(
                LogLine::new("WARNING", "user_created")
                    .unwrap()
                    .target("app.users")
                    .field("user_id", "u-42")
                    .field("password", "hunter2")
            )
        );
        fasten.record_api(
            ApiRecord::new(
                id.clone(),
                "post",
                &format!("/users/42?token=secret&pad={}", "x".repeat(10_000)),
                201,
                Duration::from_micros(1500),
            )
            .unwrap()
            .route("/users/{id}")
            .actor("x".repeat(10_000)),
        );
    });
    fasten.flush_streams(SECS).unwrap();
    let sys = fasten
        .sys_rows(&StreamQuery::new(10).request_id(id.clone()))
        .unwrap()
        .rows;
    assert_eq!(sys.len(), 1, "{sys:?}");
    assert_eq!(
        (sys[0].level.as_str(), sys[0].target.as_str()),
        ("WARN", "app.users")
    );
    assert_eq!(sys[0].tenant_id.as_deref(), Some("acme"));
    assert_eq!(sys[0].fields["user_id"], "u-42");
    assert_ne!(sys[0].fields["password"], "hunter2");
    let api = fasten
        .api_rows(&StreamQuery::new(10).request_id(id))
        .unwrap()
        .rows;
    assert_eq!(api.len(), 1, "{api:?}");
    let row = &api[0];
    assert_eq!(
        (row.method.as_str(), row.route.as_str(), row.path.as_str()),
        ("POST", "/users/{id}", "/users/42")
    );
    assert_eq!((row.status, row.duration_ms), (201, 1.5));
    assert_eq!(row.tenant_id.as_deref(), Some("acme"));
    let actor = row.actor.as_deref().unwrap();
    assert!(
        actor.len() <= MAX_FIELD_BYTES && actor.ends_with('…'),
        "{}",
        actor.len()
    );
    fasten.shutdown(SECS).unwrap();
}

/// fasten's own I/O never feeds its own streams, at any level: with the sys
/// stream at `trace`, `log` records bridged into `tracing`, and the sys rows
/// stored in the same kind of store as the audit rows, only the
/// application's own events become sys rows (tokio_postgres logs every
/// statement with its parameters; fed back, rows doubled every round).
/// A `log` record is stored under its real target.
fn own_io_stays_out_of_the_sys_stream(audit: &Dsn, sys: &Dsn) {
    static BRIDGE: std::sync::Once = std::sync::Once::new();
    BRIDGE.call_once(|| tracing_log::LogTracer::init().unwrap());

    let fasten = Config::new()
        .service_id("quiet")
        .node_id("node-1")
        .audit_dsn(audit.clone())
        .registry(super::support::registry())
        .stdout(Stdout::NONE)
        .sys_level(tracing::Level::TRACE)
        .sys_dsn(sys.clone())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(fasten.sys_layer());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..5 {
            tracing::info!(round = i, "app event");
            fasten.emit(Event::new("USER_CREATED")).unwrap();
            fasten.flush(SECS).unwrap();
            fasten.flush_streams(SECS).unwrap();
            // Reads run on this thread, inside the subscriber.
            let reader = fasten::Reader::from_pipeline(&fasten).sys_dsn(sys.clone());
            reader.sys(&StreamQuery::new(100)).unwrap();
            reader.audit(&fasten::AuditQuery::new(10)).unwrap();
        }
        log::warn!(target: "myapp::billing", "a log record");
    });
    fasten.flush_streams(SECS).unwrap();
    let rows = fasten::Reader::from_pipeline(&fasten)
        .sys_dsn(sys.clone())
        .sys(&StreamQuery::new(100))
        .unwrap()
        .rows;
    let targets: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(rows.len(), 6, "{targets:?}");
    assert!(
        targets
            .iter()
            .all(|t| t.starts_with("it::streams") || *t == "myapp::billing"),
        "{targets:?}"
    );
    let log_row = rows.iter().find(|r| r.target == "myapp::billing").unwrap();
    assert_eq!(log_row.message, "a log record");
    assert!(
        log_row.fields.keys().all(|k| !k.starts_with("log.")),
        "{:?}",
        log_row.fields
    );
    assert!(
        rows.iter().all(|r| r.message.len() < 100),
        "no row holds another"
    );
    fasten.shutdown(SECS).unwrap();
}

#[test]
fn sqlite_own_io_stays_out_of_the_sys_stream() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite:///{}", dir.path().join("q.db").display());
    own_io_stays_out_of_the_sys_stream(
        &Dsn::parse("FASTEN_AUDIT_DSN", &file).unwrap(),
        &Dsn::parse_for("FASTEN_SYS_DSN", &file, "sys_log").unwrap(),
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_own_io_stays_out_of_the_sys_stream() {
    let Some(schema) = super::postgres::Schema::new() else {
        return;
    };
    let sys = schema.dsn("sys_log").to_string();
    own_io_stays_out_of_the_sys_stream(
        &schema.dsn("audit_log"),
        &Dsn::parse_for("FASTEN_SYS_DSN", &sys, "sys_log").unwrap(),
    );
}

/// The api row, the handler's audit row and the response header carry one
/// id with the combined layer and with the two layers in either order.
#[cfg(feature = "http")]
#[test]
fn http_layers_agree_on_the_id_in_any_order() {
    use axum::{Router, routing::post};
    use tower::ServiceExt as _;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.db");
    let fasten = streams_config(&path).build().unwrap();
    let handler = {
        let fasten = fasten.clone();
        move || {
            let fasten = fasten.clone();
            async move {
                fasten.emit(Event::new("USER_CREATED")).unwrap();
                "ok"
            }
        }
    };
    let base = Router::new().route("/users", post(handler));
    let apps = [
        ("combined", base.clone().layer(fasten.http_layer())),
        (
            "right order",
            base.clone()
                .layer(fasten.api_layer())
                .layer(fasten::http::RequestIdLayer::new()),
        ),
        (
            "wrong order",
            base.layer(fasten::http::RequestIdLayer::new())
                .layer(fasten.api_layer()),
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (i, (name, app)) in apps.into_iter().enumerate() {
        let client = format!("client-id-{i}");
        for inbound in [None, Some(client.as_str()), Some("bad id <script>")] {
            let mut req = axum::http::Request::post("/users");
            if let Some(v) = inbound {
                req = req.header("x-request-id", v);
            }
            let res = rt
                .block_on(
                    app.clone()
                        .oneshot(req.body(axum::body::Body::empty()).unwrap()),
                )
                .unwrap();
            let echoed = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            if inbound == Some(client.as_str()) {
                assert_eq!(echoed, client, "{name}");
            }
            fasten.flush(SECS).unwrap();
            fasten.flush_streams(SECS).unwrap();
            let id = RequestId::parse(&echoed).unwrap();
            let api = fasten
                .api_rows(&StreamQuery::new(10).request_id(id))
                .unwrap()
                .rows;
            assert_eq!(
                api.len(),
                1,
                "{name} {inbound:?}: the api row has the echoed id"
            );
            assert_eq!(
                audit_codes_of(&path, &echoed),
                ["USER_CREATED"],
                "{name} {inbound:?}"
            );
        }
    }
    // The handler never named an actor: said once, not once per row.
    let warnings = fasten
        .sys_rows(&StreamQuery::new(100).level("WARN"))
        .unwrap()
        .rows;
    let unattributed: Vec<_> = warnings
        .iter()
        .filter(|r| r.target == "fasten::attribution")
        .collect();
    assert_eq!(unattributed.len(), 1, "{warnings:?}");
    assert!(
        unattributed[0]
            .message
            .starts_with("USER_CREATED was emitted while serving an HTTP request with no actor")
    );
    fasten.shutdown(SECS).unwrap();
}

/// The columns of the stream tables before issue 20 added `trace_id` and
/// `span_id`.
pub(crate) const OLD_SYS: &str = "id TEXT PRIMARY KEY, timestamp TEXT NOT NULL, service_id TEXT NOT NULL, source_node_id TEXT NOT NULL, tenant_id TEXT NULL, request_id TEXT NULL, level TEXT NOT NULL, target TEXT NOT NULL, message TEXT NOT NULL, span TEXT NULL, fields TEXT NOT NULL, dropped INTEGER NULL";
pub(crate) const OLD_API: &str = "id TEXT PRIMARY KEY, timestamp TEXT NOT NULL, service_id TEXT NOT NULL, source_node_id TEXT NOT NULL, tenant_id TEXT NULL, request_id TEXT NOT NULL, method TEXT NOT NULL, route TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, duration_ms REAL NOT NULL, actor TEXT NULL, target TEXT NULL, bytes_in INTEGER NULL, bytes_out INTEGER NULL, dropped INTEGER NULL";

/// Rows written into stream tables (possibly older ones), then read back:
/// the old row without a trace, the new one with the request's.
pub(crate) fn trace_columns_round_trip(fasten: &Fasten) {
    use fasten::record::{ApiRecord, LogLine};
    let id = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let trace = fasten::context::with(id.clone(), || {
        assert!(fasten.log(LogLine::new("info", "traced").unwrap()));
        fasten.record_api(ApiRecord::new(id.clone(), "GET", "/t", 200, SECS / 100).unwrap());
        fasten::context::trace().unwrap()
    });
    fasten.flush_streams(SECS).unwrap();
    let sys = fasten.sys_rows(&StreamQuery::new(10)).unwrap();
    assert_eq!(sys.source, Source::Store);
    let new = sys.rows.iter().find(|r| r.message == "traced").unwrap();
    assert_eq!(new.trace_id.as_deref(), Some(id.as_str()));
    assert_eq!(new.span_id, Some(trace.span_id()));
    let old = sys.rows.iter().find(|r| r.message == "old").unwrap();
    assert_eq!(
        (old.trace_id.as_deref(), old.span_id.as_deref()),
        (None, None)
    );
    let api = fasten.api_rows(&StreamQuery::new(10)).unwrap();
    let new = api.rows.iter().find(|r| r.path == "/t").unwrap();
    assert_eq!(new.trace_id.as_deref(), Some(id.as_str()));
    assert_eq!(new.span_id, Some(trace.span_id()));
    let old = api.rows.iter().find(|r| r.path == "/old").unwrap();
    assert_eq!(old.trace_id, None);
}

#[test]
fn issue_20_old_sqlite_stream_tables_gain_the_trace_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE sys_log ({OLD_SYS});
         CREATE TABLE api_log ({OLD_API});
         INSERT INTO sys_log VALUES ('s1', '2026-01-01T00:00:00.000000Z', 'it', 'node-1', NULL, NULL, 'INFO', 't', 'old', NULL, '{{}}', NULL);
         INSERT INTO api_log VALUES ('a1', '2026-01-01T00:00:00.000000Z', 'it', 'node-1', NULL, 'r1', 'GET', '/old', '/old', 200, 1.0, NULL, NULL, NULL, NULL, NULL);"
    ))
    .unwrap();
    drop(conn);
    let fasten = streams_config(&path).build().unwrap();
    trace_columns_round_trip(&fasten);
    // Opening again finds the columns there and changes nothing.
    drop(fasten);
    let again = streams_config(&path).build().unwrap();
    assert_eq!(again.sys_rows(&StreamQuery::new(10)).unwrap().rows.len(), 2);
}

/// Entry point of the child process of the next test.
#[test]
#[ignore = "child-process entry point, run by its parent test"]
fn child_stdout_audit() {
    use super::support::{db_path, role};
    if role().as_deref() == Some("stdout-audit") {
        let fasten = config(&db_path("FASTEN_IT_DB"), "node-1")
            .stdout("audit".parse().unwrap())
            .build()
            .unwrap();
        fasten
            .emit(Event::new("USER_CREATED").target("u-1"))
            .unwrap();
        // Shutdown writes the queue, then hands the copies over.
        fasten.shutdown(SECS).unwrap();
        assert_eq!(fasten.audit_stdout_stats().unwrap().exported, 1);
    }
}

#[test]
fn issue_20_committed_audit_rows_go_to_stdout_as_json_lines() {
    use super::support::child;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let out = child(
        "streams::child_stdout_audit",
        &[
            ("FASTEN_IT_ROLE", "stdout-audit".to_owned()),
            ("FASTEN_IT_DB", path.display().to_string()),
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        // The test harness writes its own words before it on the line.
        .filter_map(|l| l.find(r#"{"stream":"audit","#).map(|i| &l[i..]))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let [row] = lines.as_slice() else {
        panic!("one audit line in {stdout}")
    };
    assert_eq!(row["code"], "USER_CREATED");
    assert_eq!(row["monotonic_seq"], 1, "a committed row");
    assert_eq!(row["hash"].as_str().unwrap().len(), 64);
    assert!(
        !stdout.contains(r#"{"stream":"sys""#),
        "only the streams named"
    );
}

/// A reader touches no store: a stream whose file or table no writer has
/// made yet reads as no rows and is not made; an older fasten's table is
/// read as it is (its missing columns as null), not migrated. Once a
/// writer has made the table, the same reader sees its rows.
#[test]
fn a_stream_reader_creates_and_migrates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let (sys, _) = super::support::stream_dsns(&path);
    let reader = fasten::Reader::new(super::support::dsn(&path)).sys_dsn(sys);
    let query = StreamQuery::new(10);
    assert!(reader.sys(&query).unwrap().rows.is_empty());
    assert!(!path.exists(), "the reader made the file");

    config(&path, "node-1")
        .build()
        .unwrap()
        .shutdown(SECS)
        .unwrap();
    let sys_columns = || -> Vec<String> {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('sys_log')")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(reader.sys(&query).unwrap().rows.is_empty());
    assert!(sys_columns().is_empty(), "the reader made the table");

    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE sys_log ({OLD_SYS});
             INSERT INTO sys_log VALUES ('s1', '2026-01-01T00:00:00.000000Z', 'it', 'node-1', NULL, NULL, 'INFO', 't', 'old', NULL, '{{}}', NULL);"
        ))
        .unwrap();
    let before = sys_columns();
    let rows = reader.sys(&query).unwrap().rows;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].message, "old");
    assert_eq!(rows[0].trace_id, None);
    assert_eq!(sys_columns(), before, "the reader migrated the table");

    // The writer migrates the table; the same reader reads what it added.
    let fasten = streams_config(&path).build().unwrap();
    let id = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    fasten::context::with(id.clone(), || {
        assert!(fasten.log(fasten::record::LogLine::new("info", "new").unwrap()));
    });
    fasten.flush_streams(SECS).unwrap();
    assert!(sys_columns().len() > before.len(), "the writer migrates");
    let rows = reader.sys(&query).unwrap().rows;
    let seen: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.message.as_str(), r.trace_id.as_deref()))
        .collect();
    assert_eq!(seen, [("new", Some(id.as_str())), ("old", None)]);
    fasten.shutdown(SECS).unwrap();
}
