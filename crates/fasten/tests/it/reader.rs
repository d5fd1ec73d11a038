//! The HTTP reader over real loopback HTTP, on SQLite and PostgreSQL:
//! every filter, paging while other nodes write, auth, tenant scope, bad
//! parameters, correlate, proofs and the OpenAPI document.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use fasten::http_reader::{self, Auth, Options};
use fasten::{ActorKind, Config, Dsn, Event, Fasten, Outcome, Reader, RequestId, Severity, Stdout};
use serde_json::{Value, json};

use super::support::registry;

const SECS: Duration = Duration::from_secs(30);
const TOKEN: &str = "tok-operator-0123456789";
const ROTATED: &str = "tok-rotated-abcdefghij";

/// A router served on loopback from a runtime of its own.
pub(crate) struct Served {
    base: String,
    agent: ureq::Agent,
    _rt: tokio::runtime::Runtime,
}

impl Served {
    pub(crate) fn start(router: axum::Router) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, router).await });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: format!("http://{addr}/logs"),
            agent,
            _rt: rt,
        }
    }

    /// GET `path` with `headers`; the status and the JSON body.
    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut res = req.call().unwrap();
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `http://127.0.0.1:PORT/logs`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn op(&self, path: &str) -> (u16, Value) {
        self.get(path, &[("authorization", &format!("Bearer {TOKEN}"))])
    }
}

fn nest(router: axum::Router) -> axum::Router {
    axum::Router::new().nest("/logs", router)
}

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

fn config(dsn: Dsn, node: &str) -> Config {
    Config::new()
        .service_id("reader-it")
        .node_id(node)
        // Stream rows carry the pipeline's tenant; audit rows here set their own.
        .tenant_id("acme")
        .audit_dsn(dsn)
        .registry(registry())
        .stdout(Stdout::NONE)
}

/// 600 rows with known anchors, 3 tenants, 3 request ids; returns the ids.
fn seed(fasten: &Fasten) -> Vec<RequestId> {
    let ids: Vec<RequestId> = (0..3)
        .map(|i| RequestId::parse(&format!("req-{i}")).unwrap())
        .collect();
    for i in 0..600usize {
        let code = ["USER_CREATED", "USER_UPDATED", "PROFILE_VIEWED"][i % 3];
        let (actor, kind) = if i % 2 == 0 {
            ("alice", ActorKind::User)
        } else {
            ("billing", ActorKind::Service)
        };
        let outcome = if i % 5 == 0 {
            Outcome::Denied
        } else {
            Outcome::Success
        };
        let severity = if i % 7 == 0 {
            Severity::Warn
        } else {
            Severity::Info
        };
        fasten
            .emit(
                Event::new(code)
                    .actor(actor, kind)
                    .target(format!("user/{}", i % 10))
                    .tenant(TENANTS[i % 3])
                    .outcome(outcome)
                    .severity(severity)
                    .request_id(ids[(i / 3) % 3].clone())
                    .detail(json!({ "i": i })),
            )
            .unwrap();
    }
    fasten.flush(SECS).unwrap();
    ids
}

fn rows(body: &Value) -> &Vec<Value> {
    body["rows"].as_array().unwrap()
}

/// Every page of `path` (which must hold a `?`), following `next`.
fn all_pages(s: &Served, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = path.to_owned();
    loop {
        let (status, body) = s.op(&url);
        assert_eq!(status, 200, "{url}: {body}");
        out.extend(rows(&body).iter().cloned());
        match body["next"].as_str() {
            Some(c) => url = format!("{path}&cursor={c}"),
            None => return out,
        }
    }
}

/// The whole scenario against one store.
fn scenario(dsn: &Dsn, second_node: impl Fn() -> Fasten + Send + Sync + 'static) {
    let fasten = config(dsn.clone(), "node-1").build().unwrap();
    let ids = seed(&fasten);
    let scoped =
        Options::new(Auth::bearer_tokens([TOKEN, ROTATED]).unwrap()).tenant_scope(|parts| {
            parts
                .headers
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let s = Served::start(nest(http_reader::router(
        Reader::from_pipeline(&fasten),
        Options::new(Auth::bearer_tokens([TOKEN, ROTATED]).unwrap()),
    )));
    let t = Served::start(nest(http_reader::router(
        Reader::from_pipeline(&fasten),
        scoped,
    )));

    // Auth: none, wrong, and both rotated tokens.
    let (status, body) = s.get("/audit", &[]);
    assert_eq!(status, 401, "{body}");
    let (status, _) = s.get(
        "/audit",
        &[("authorization", "Bearer tok-wrong-000000000000")],
    );
    assert_eq!(status, 401);
    let (status, _) = s.get("/audit", &[("authorization", "Basic dXNlcjpwdw==")]);
    assert_eq!(status, 401);
    let (status, _) = s.get(
        "/audit?limit=1",
        &[("authorization", &format!("Bearer {ROTATED}"))],
    );
    assert_eq!(status, 200);

    // Every filter returns exactly the rows it names.
    type Keep = Box<dyn Fn(&Value) -> bool>;
    let checks: Vec<(&str, Keep, usize)> = vec![
        // (i / 3) % 3 == 1 for 67 of the 200 values of i / 3, three rows each.
        (
            "request_id=req-1",
            Box::new(|r| r["request_id"] == "req-1"),
            201,
        ),
        (
            "code=USER_UPDATED",
            Box::new(|r| r["code"] == "USER_UPDATED"),
            200,
        ),
        ("domain=iam", Box::new(|r| r["domain"] == "iam"), 600),
        ("actor=alice", Box::new(|r| r["actor"] == "alice"), 300),
        (
            "actor_kind=service",
            Box::new(|r| r["actor_kind"] == "service"),
            300,
        ),
        ("target=user/3", Box::new(|r| r["target"] == "user/3"), 60),
        (
            "outcome=denied",
            Box::new(|r| r["outcome"] == "denied"),
            120,
        ),
        ("severity=warn", Box::new(|r| r["severity"] == "warn"), 86),
        (
            "source_node_id=node-1",
            Box::new(|r| r["source_node_id"] == "node-1"),
            600,
        ),
        (
            "tenant_id=globex",
            Box::new(|r| r["tenant_id"] == "globex"),
            200,
        ),
        (
            "tenant_id=globex&actor=alice&code=USER_UPDATED",
            Box::new(|r| {
                r["tenant_id"] == "globex" && r["actor"] == "alice" && r["code"] == "USER_UPDATED"
            }),
            100,
        ),
    ];
    for (q, keep, expected) in &checks {
        let got = all_pages(&s, &format!("/audit?limit=50&{q}"));
        assert!(got.iter().all(keep), "{q}");
        assert_eq!(got.len(), *expected, "{q}");
    }
    // Newest first; since/until bound by time.
    let newest = all_pages(&s, "/audit?limit=1000&source_node_id=node-1");
    let stamps: Vec<&str> = newest
        .iter()
        .map(|r| r["timestamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let mid = stamps[300];
    let since = all_pages(&s, &format!("/audit?limit=100&since={mid}"));
    assert!(
        since
            .iter()
            .all(|r| r["timestamp"].as_str().unwrap() >= mid)
    );
    let until = all_pages(&s, &format!("/audit?limit=100&until={mid}"));
    assert!(until.iter().all(|r| r["timestamp"].as_str().unwrap() < mid));
    assert_eq!(since.len() + until.len(), 600);

    // Paging 10,000 rows while two more nodes write: every row that was
    // there before paging started is seen exactly once.
    for i in 0..9_400usize {
        fasten
            .emit(
                Event::new("USER_UPDATED")
                    .target(format!("bulk/{i}"))
                    .tenant("acme"),
            )
            .unwrap();
    }
    fasten.flush(SECS).unwrap();
    let before: HashSet<String> = all_pages(&s, "/audit?limit=1000")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(before.len(), 10_000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let node = second_node();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    node.emit(Event::new("USER_CREATED").target("late"))
                        .unwrap();
                    n += 1;
                    if n % 50 == 0 {
                        node.flush(SECS).unwrap();
                    }
                }
                node.flush(SECS).unwrap();
                n
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut url = "/audit?limit=100".to_owned();
    loop {
        let (status, body) = s.op(&url);
        assert_eq!(status, 200);
        seen.extend(
            rows(&body)
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match body["next"].as_str() {
            Some(c) => url = format!("/audit?limit=100&cursor={c}"),
            None => break,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let late: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(late > 0, "the other nodes wrote while we paged");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row repeated");
    assert!(before.iter().all(|id| unique.contains(id)), "no row missed");

    // Bad parameters: 400 naming the parameter, never ignored.
    for (q, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("request_id=a%20b", "request_id"),
        ("actor_kind=robot", "actor_kind"),
        ("outcome=maybe", "outcome"),
        ("cursor=garbage", "cursor"),
        ("colour=red", "query"),
        ("actor=a&actor=b", "actor"),
        ("target=%00", "target"),
    ] {
        let (status, body) = s.op(&format!("/audit?{q}"));
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["parameter"], param, "{q}: {body}");
        assert!(body["error"].as_str().unwrap().len() > 10);
    }
    for (path, param) in [
        ("/sys?level=loud", "level"),
        ("/api?status=abc", "status"),
        ("/api?method=G%20T", "method"),
        ("/correlate", "request_id"),
        ("/correlate?request_id=%3Cscript%3E", "request_id"),
        ("/audit/proof", "id"),
        ("/audit/verify?x=1", "query"),
    ] {
        let (status, body) = s.op(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["parameter"], param, "{path}: {body}");
    }

    // Correlate: the request's audit rows in time order.
    let (status, body) = s.op(&format!("/correlate?request_id={}", ids[0]));
    assert_eq!(status, 200);
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 201);
    assert!(
        entries
            .iter()
            .all(|e| e["stream"] == "audit" && e["row"]["request_id"] == "req-0")
    );

    // Verify and doctor for the operator.
    let (status, body) = s.op("/audit/verify");
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true, "{body}");
    let (status, body) = s.op("/audit/doctor");
    assert_eq!(status, 200);
    assert_eq!(body["reachable"], true);
    assert_eq!(body["ok"], true, "{body}");
    assert!(body["queue"]["written"].as_u64().unwrap() >= 10_000);

    // Three sys rows of req-0, from the acme pipeline.
    {
        use tracing_subscriber::prelude::*;
        let subscriber = tracing_subscriber::registry().with(fasten.sys_layer());
        tracing::subscriber::with_default(subscriber, || {
            fasten::context::with(ids[0].clone(), || {
                for i in 0..3 {
                    tracing::info!(i, "step");
                }
            });
        });
    }
    let (_, body) = s.op("/sys?request_id=req-0&level=info");
    assert_eq!(rows(&body).len(), 3, "{body}");
    assert_eq!(body["source"], "ring");

    // Tenant scope holds everywhere, whatever the query says.
    let h = |tenant: &'static str| {
        [
            ("authorization", format!("Bearer {TOKEN}")),
            ("x-tenant", tenant.to_owned()),
        ]
    };
    let get = |path: &str, tenant: &'static str| {
        let hs = h(tenant);
        let hs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        t.get(path, &hs)
    };
    let (status, body) = get("/audit?tenant_id=globex&limit=1000", "initech");
    assert_eq!(status, 200);
    assert!(!rows(&body).is_empty());
    assert!(
        rows(&body).iter().all(|r| r["tenant_id"] == "initech"),
        "scope beats the query"
    );
    let (_, body) = get(&format!("/correlate?request_id={}", ids[1]), "acme");
    assert!(
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["row"]["tenant_id"] == "acme")
    );
    assert_eq!(body["entries"].as_array().unwrap().len(), 67);
    assert_eq!(get("/audit/verify", "acme").0, 403);
    assert_eq!(get("/audit/doctor", "acme").0, 403);
    let globex_row = all_pages(&s, "/audit?tenant_id=globex&limit=1")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(&format!("/audit/proof?id={globex_row}"), "acme").0,
        404,
        "another tenant's row does not exist for you"
    );
    let (status, body) = t.get("/audit", &[("authorization", &format!("Bearer {TOKEN}"))]);
    assert_eq!(status, 403, "no tenant for the caller: refused, {body}");
    let (status, body) = get("/sys", "acme");
    assert_eq!(status, 200);
    // Besides the three rows written here, the reader's own rows for the
    // failed authentications above (tenant: the pipeline's).
    let own: Vec<&Value> = rows(&body)
        .iter()
        .filter(|r| r["target"] != "fasten::http_reader")
        .collect();
    assert_eq!(own.len(), 3, "{body}");
    for path in ["/sys", "/api", "/sys?request_id=req-0"] {
        let (status, body) = get(path, "globex");
        assert_eq!(status, 200, "{path}");
        assert!(
            rows(&body).is_empty(),
            "{path}: another tenant's stream rows stay hidden"
        );
    }
    let (_, body) = get("/correlate?request_id=req-0", "globex");
    assert!(
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["stream"] == "audit" && e["row"]["tenant_id"] == "globex")
    );
    let (_, body) = get("/correlate?request_id=req-0", "acme");
    assert_eq!(
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["stream"] == "sys")
            .count(),
        3
    );

    // The OpenAPI document names every route the router serves.
    let (status, doc) = s.op("/openapi.json");
    assert_eq!(status, 200);
    for path in [
        "/audit",
        "/sys",
        "/api",
        "/correlate",
        "/audit/verify",
        "/audit/doctor",
        "/audit/proof",
        "/audit/summary",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
        let (status, _) = s.get(path, &[]);
        assert_eq!(status, 401, "{path} needs auth");
    }
    // The fleet's routes, served with `postgres` (tests/it/fleet.rs); the
    // ingest route is POST only, with an ingest token.
    assert!(doc["paths"]["/fleet"].get("get").is_some());
    assert!(doc["paths"]["/ingest"].get("post").is_some());
    if cfg!(feature = "postgres") {
        assert_eq!(s.get("/fleet", &[]).0, 401, "/fleet needs auth");
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), 11);

    // Reads through an audited router leave one READER_QUERY row each.
    let audited = Served::start(nest(http_reader::router(
        Reader::from_pipeline(&fasten),
        Options::new(Auth::bearer_tokens([TOKEN]).unwrap()).audit_reads(fasten.clone()),
    )));
    assert_eq!(audited.op("/audit?actor=alice&limit=3").0, 200);
    assert_eq!(audited.op("/sys").0, 200);
    assert_eq!(audited.get("/audit", &[]).0, 401);
    fasten.flush(SECS).unwrap();
    let (_, body) = s.op("/audit?code=READER_QUERY&limit=10");
    assert_eq!(rows(&body).len(), 2, "{body}");
    let newest = &rows(&body)[0];
    assert!(newest["actor"].as_str().unwrap().starts_with("token:"));
    assert_eq!(newest["target"], "/sys");
    fasten.shutdown(SECS).unwrap();
}

#[test]
fn the_reader_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reader.db");
    let dsn = super::support::dsn(&path);
    let counter = std::sync::atomic::AtomicUsize::new(2);
    let dsn2 = dsn.clone();
    scenario(&dsn, move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        config(dsn2.clone(), &format!("node-{n}")).build().unwrap()
    });
}

#[test]
fn the_reader_refuses_to_start_without_tokens() {
    let err = Auth::bearer_tokens(Vec::<String>::new()).unwrap_err();
    assert_eq!(
        err.kind(),
        &fasten::ErrorKind::Config {
            var: "FASTEN_READER_TOKENS"
        }
    );
    let err = Auth::bearer_tokens(["short"]).unwrap_err();
    assert!(err.to_string().contains("at least 16"), "{err}");
}

#[cfg(feature = "postgres")]
#[test]
fn the_reader_over_postgres() {
    let Some(schema) = super::postgres::Schema::new() else {
        return;
    };
    let dsn = schema.dsn("audit_log");
    let counter = std::sync::atomic::AtomicUsize::new(2);
    let dsn2 = dsn.clone();
    scenario(&dsn, move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        config(dsn2.clone(), &format!("node-{n}")).build().unwrap()
    });
}

#[test]
fn the_reader_serves_inclusion_proofs_that_verify_offline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proof.db");
    let keys = fasten::transparency::generate_key("it.example/reader").unwrap();
    std::fs::write(dir.path().join("signing.key"), &keys.signing_key).unwrap();
    let fasten = config(super::support::dsn(&path), "node-p")
        .signing_key(dir.path().join("signing.key"))
        .build()
        .unwrap();
    let id = fasten
        .emit_durable(Event::new("USER_CREATED").target("user/1"))
        .unwrap()
        .id;
    for _ in 0..40 {
        fasten.emit(Event::new("USER_UPDATED")).unwrap();
    }
    // Flush signs a checkpoint covering everything so far.
    fasten.flush(SECS).unwrap();
    let s = Served::start(nest(http_reader::router(
        Reader::from_pipeline(&fasten),
        Options::new(Auth::bearer_tokens([TOKEN]).unwrap()),
    )));
    let (status, body) = s.op(&format!("/audit/proof?id={id}"));
    assert_eq!(status, 200, "{body}");
    let proof: fasten::transparency::Proof = serde_json::from_value(body.clone()).unwrap();
    let checked =
        fasten::transparency::verify_proof(&proof, std::slice::from_ref(&keys.verifier_key));
    assert!(checked.is_ok(), "{checked:?}");
    // One altered byte of the path fails.
    let mut bad = body;
    let first = bad["path"][0].as_str().unwrap().to_owned();
    let mut chars: Vec<char> = first.chars().collect();
    chars[0] = if chars[0] == '0' { '1' } else { '0' };
    let flipped: String = chars.into_iter().collect();
    bad["path"][0] = flipped.into();
    let bad: fasten::transparency::Proof = serde_json::from_value(bad).unwrap();
    assert!(fasten::transparency::verify_proof(&bad, &[keys.verifier_key]).is_err());
    assert_eq!(s.op("/audit/proof?id=evt-00000000000000000000").0, 404);
    fasten.shutdown(SECS).unwrap();
}
