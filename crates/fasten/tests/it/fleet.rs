//! The fleet (#18): edges on SQLite, some as separate processes, shipping
//! to the real PostgreSQL, verified on arrival. Each test works in a schema
//! of its own and drops it; under `CI` a missing server fails the test.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fasten::ship::{Central, Shipper};
use fasten::{ErrorKind, Event, Reader, RequestId};

use super::postgres::{Schema, base_url};
use super::support::{child, config, db_path, dsn, role};

const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `f` until it is true or the deadline passes.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A PostgreSQL client for checking what the central store holds.
fn admin() -> postgres::Client {
    postgres::Client::connect(&base_url(), postgres::NoTls).unwrap()
}

fn count(schema: &Schema, node: &str) -> i64 {
    admin()
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.audit_log WHERE source_node_id = $1",
                schema.name
            ),
            &[&node],
        )
        .unwrap()
        .get(0)
}

/// Rows of the edge file not shipped yet.
fn unshipped(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT count(*) FROM audit_log WHERE shipped_at IS NULL",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn central_url(schema: &Schema) -> String {
    format!("{}?table={}.audit_log", base_url(), schema.name)
}

/// Entry point of the edge processes: emits with `FASTEN_SHIP_TO` set (the
/// pipeline's own background shipper), some rows under a request id the
/// parent passes along, then waits until everything has shipped.
#[test]
#[ignore = "child-process entry point, run by its parent test"]
fn child_fleet_edge() {
    if role().as_deref() != Some("fleet-edge") {
        return;
    }
    let path = db_path("FASTEN_IT_DB");
    let node = std::env::var("FASTEN_IT_NODE").unwrap();
    let rows: usize = std::env::var("FASTEN_IT_ROWS").unwrap().parse().unwrap();
    let fasten = config(&path, &node)
        .ship_to(std::env::var("FASTEN_IT_SHIP_TO").unwrap())
        .ship_interval(Duration::from_millis(50))
        .ship_batch_size(200)
        .build()
        .unwrap();
    let shared = std::env::var("FASTEN_IT_REQUEST").ok();
    for i in 0..rows {
        let mut event = Event::new("USER_UPDATED").target(format!("{node}/u-{i}"));
        if i % 100 == 0
            && let Some(id) = &shared
        {
            event = event.request_id(RequestId::parse(id).unwrap());
        }
        fasten.emit(event).unwrap();
    }
    fasten.flush(Duration::from_secs(30)).unwrap();
    wait_until("the edge to ship everything", || unshipped(&path) == 0);
    fasten.shutdown(Duration::from_secs(30)).unwrap();
}

#[test]
fn three_edges_ship_concurrently_and_one_request_correlates_across_two() {
    let Some(schema) = Schema::new() else {
        return;
    };
    // The central table first, so the edges race on rows, not on DDL.
    drop(Central::open(&schema.dsn("audit_log")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let request = RequestId::mint();
    let per_edge = 1000;
    let mut children: Vec<_> = (1..=3)
        .map(|i| {
            let mut env = vec![
                ("FASTEN_IT_ROLE", "fleet-edge".to_owned()),
                (
                    "FASTEN_IT_DB",
                    dir.path()
                        .join(format!("edge-{i}.db"))
                        .display()
                        .to_string(),
                ),
                ("FASTEN_IT_NODE", format!("edge-{i}")),
                ("FASTEN_IT_ROWS", per_edge.to_string()),
                ("FASTEN_IT_SHIP_TO", central_url(&schema)),
            ];
            // One request crossing edges 1 and 2 (its id passed along, as a
            // gateway would in a header or an MQTT user property).
            if i < 3 {
                env.push(("FASTEN_IT_REQUEST", request.as_str().to_owned()));
            }
            child("fleet::child_fleet_edge", &env).spawn().unwrap()
        })
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let central = schema.dsn("audit_log");
    for i in 1..=3 {
        assert_eq!(count(&schema, &format!("edge-{i}")), per_edge as i64);
    }
    let report = fasten::verify(&central).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.nodes.len(), 3);
    // One request, rows from both edges it crossed, none from the third.
    let timeline = Reader::new(central.clone()).correlate(&request).unwrap();
    let nodes: HashSet<String> = timeline
        .entries
        .iter()
        .filter_map(|e| match e {
            fasten::query::Entry::Audit(r) => Some(r.source_node_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        nodes,
        HashSet::from(["edge-1".to_owned(), "edge-2".to_owned()])
    );
    assert_eq!(timeline.entries.len(), 2 * per_edge / 100);
    let status = fasten::ship::status(&central).unwrap();
    assert_eq!(status.len(), 3);
    for n in &status {
        assert_eq!(n.role, "edge");
        assert_eq!(n.rows, per_edge as u64);
        assert_eq!(n.pending, Some(0), "{n:?}");
        assert_eq!(n.fork, None);
    }
}

/// A TCP proxy to PostgreSQL that cuts every connection once `budget`
/// bytes have gone from the client to the server, and refuses new ones
/// until restored.
struct CuttingProxy {
    port: u16,
    up: Arc<AtomicBool>,
    budget: Arc<AtomicI64>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl CuttingProxy {
    fn start(budget: i64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let budget = Arc::new(AtomicI64::new(budget));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (u, b, c) = (Arc::clone(&up), Arc::clone(&budget), Arc::clone(&conns));
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !u.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect("127.0.0.1:5432") else {
                    continue;
                };
                c.lock().unwrap().push(client.try_clone().unwrap());
                c.lock().unwrap().push(server.try_clone().unwrap());
                for (mut from, mut to, counted) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let (u, b, c) = (Arc::clone(&u), Arc::clone(&b), Arc::clone(&c));
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            if counted && b.fetch_sub(n as i64, Ordering::SeqCst) < n as i64 {
                                // Over budget: cut the link mid-message.
                                u.store(false, Ordering::SeqCst);
                                for s in c.lock().unwrap().drain(..) {
                                    let _ = s.shutdown(Shutdown::Both);
                                }
                                break;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self {
            port,
            up,
            budget,
            conns,
        }
    }

    fn is_cut(&self) -> bool {
        !self.up.load(Ordering::SeqCst)
    }

    fn restore(&self) {
        self.budget.store(i64::MAX, Ordering::SeqCst);
        self.conns.lock().unwrap().clear();
        self.up.store(true, Ordering::SeqCst);
    }

    fn url(&self, schema: &Schema) -> String {
        let url = base_url().replace("127.0.0.1:5432", &format!("127.0.0.1:{}", self.port));
        format!("{url}?connect_timeout=2&table={}.audit_log", schema.name)
    }
}

fn central_ids(schema: &Schema, node: &str) -> Vec<String> {
    admin()
        .query(
            &format!(
                "SELECT id FROM {}.audit_log WHERE source_node_id = $1 ORDER BY monotonic_seq",
                schema.name
            ),
            &[&node],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn edge_ids(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT id FROM audit_log ORDER BY monotonic_seq")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn fill_edge(path: &Path, node: &str, rows: usize) {
    let fasten = config(path, node).build().unwrap();
    for i in 0..rows {
        fasten
            .emit(Event::new("USER_CREATED").target(format!("u-{i}")))
            .unwrap();
    }
    fasten.shutdown(Duration::from_secs(30)).unwrap();
}

#[test]
fn a_link_cut_mid_batch_loses_and_duplicates_nothing() {
    let Some(schema) = Schema::new() else {
        return;
    };
    drop(Central::open(&schema.dsn("audit_log")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.db");
    fill_edge(&path, "edge-cut", 3000);
    // About 400 KB in: past the connection setup and the first batches,
    // inside a later batch's INSERT.
    let proxy = CuttingProxy::start(400_000);
    let mut shipper = Shipper::new(&dsn(&path), &proxy.url(&schema))
        .unwrap()
        .batch_size(500);
    let err = shipper.ship_once().unwrap_err();
    assert!(proxy.is_cut(), "the link was not cut: {err}");
    assert_eq!(err.kind(), &ErrorKind::Store, "{err}");
    let arrived = count(&schema, "edge-cut");
    assert!(arrived > 0 && arrived < 3000, "{arrived} rows arrived");
    // While the link is down, rounds fail and change nothing.
    assert!(shipper.ship_once().is_err());
    proxy.restore();
    let report = shipper.ship_once().unwrap();
    assert_eq!(report.nodes[0].pending, 0);
    assert_eq!(central_ids(&schema, "edge-cut"), edge_ids(&path));
    assert_eq!(unshipped(&path), 0);
    assert!(fasten::verify(&schema.dsn("audit_log")).unwrap().ok);
}

/// Entry point of the shipper process the next test kills.
#[test]
#[ignore = "child-process entry point, run by its parent test"]
fn child_fleet_shipper() {
    if role().as_deref() != Some("fleet-shipper") {
        return;
    }
    let path = db_path("FASTEN_IT_DB");
    let mut shipper = Shipper::new(&dsn(&path), &std::env::var("FASTEN_IT_SHIP_TO").unwrap())
        .unwrap()
        .batch_size(25);
    loop {
        shipper.ship_once().unwrap();
    }
}

#[test]
fn an_edge_shipper_killed_mid_ship_resumes_without_loss_or_duplicates() {
    let Some(schema) = Schema::new() else {
        return;
    };
    drop(Central::open(&schema.dsn("audit_log")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.db");
    fill_edge(&path, "edge-kill", 4000);
    let mut shipper = child(
        "fleet::child_fleet_shipper",
        &[
            ("FASTEN_IT_ROLE", "fleet-shipper".to_owned()),
            ("FASTEN_IT_DB", path.display().to_string()),
            ("FASTEN_IT_SHIP_TO", central_url(&schema)),
        ],
    )
    .spawn()
    .unwrap();
    wait_until("some rows to arrive", || count(&schema, "edge-kill") >= 500);
    // SIGKILL, mid-ship: between a central commit and the edge's marks,
    // or inside either.
    shipper.kill().unwrap();
    shipper.wait().unwrap();
    let arrived = count(&schema, "edge-kill");
    assert!(arrived < 4000, "it finished before it was killed");
    let report = Shipper::new(&dsn(&path), &central_url(&schema))
        .unwrap()
        .ship_once()
        .unwrap();
    assert_eq!(report.nodes[0].pending, 0);
    assert_eq!(central_ids(&schema, "edge-kill"), edge_ids(&path));
    assert!(fasten::verify(&schema.dsn("audit_log")).unwrap().ok);
}

/// Runs SQL on an edge file, as an attacker with the disk would.
fn tamper(path: &Path, sql: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

fn fork_rows(schema: &Schema) -> Vec<(String, String)> {
    admin()
        .query(
            &format!(
                "SELECT target, detail->>'reason' FROM {}.audit_log WHERE code = 'FLEET_FORK_DETECTED' ORDER BY monotonic_seq",
                schema.name
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn forged_and_resealed_rows_are_forks_with_evidence_and_other_nodes_keep_shipping() {
    let Some(schema) = Schema::new() else {
        return;
    };
    let central = schema.dsn("audit_log");
    let to = central_url(&schema);
    let dir = tempfile::tempdir().unwrap();
    let (changed, resealed, honest) = (
        dir.path().join("changed.db"),
        dir.path().join("resealed.db"),
        dir.path().join("honest.db"),
    );
    fill_edge(&changed, "edge-changed", 10);
    fill_edge(&resealed, "edge-resealed", 10);
    fill_edge(&honest, "edge-honest", 10);
    for path in [&resealed, &honest] {
        Shipper::new(&dsn(path), &to).unwrap().ship_once().unwrap();
    }

    // A row changed after sealing, before it shipped.
    tamper(
        &changed,
        "UPDATE audit_log SET actor = 'mallory' WHERE monotonic_seq = 4",
    );
    let report = Shipper::new(&dsn(&changed), &to)
        .unwrap()
        .ship_once()
        .unwrap();
    let fork = report.nodes[0].fork.clone().expect("a fork");
    assert!(
        fork.contains("seq 4") && fork.contains("changed after sealing"),
        "{fork}"
    );
    // The rows before it arrived; nothing after.
    assert_eq!(count(&schema, "edge-changed"), 3);
    assert_eq!(report.nodes[0].pending, 7);

    // A chain re-sealed from seq 5 after it shipped: rows 5.. replaced by
    // new ones the writer seals validly on row 4.
    tamper(&resealed, "DELETE FROM audit_log WHERE monotonic_seq >= 5");
    fill_edge(&resealed, "edge-resealed", 6);
    let report = Shipper::new(&dsn(&resealed), &to)
        .unwrap()
        .ship_once()
        .unwrap();
    let fork = report.nodes[0].fork.clone().expect("a fork");
    assert!(
        fork.contains("seq 5") && fork.contains("rewritten"),
        "{fork}"
    );
    assert_eq!(count(&schema, "edge-resealed"), 10);

    // Evidence: both rows kept; the fork rows chained on the central node.
    let mut c = Central::open(&central).unwrap();
    let evidence = c.forks("edge-resealed").unwrap();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].seq, 5);
    let held: fasten::Row =
        serde_json::from_str(evidence[0].central_row.as_deref().unwrap()).unwrap();
    let offered: fasten::Row = serde_json::from_str(&evidence[0].offered).unwrap();
    assert_eq!(held.monotonic_seq, 5);
    assert_ne!(held.hash, offered.hash);
    assert_eq!(
        fork_rows(&schema)
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>(),
        ["edge-changed", "edge-resealed"]
    );
    let report = fasten::verify(&central).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(
        report
            .nodes
            .iter()
            .any(|n| n.source_node_id == fasten::ship::FLEET_NODE_DEFAULT && n.rows == 2)
    );

    // Shipping for a forked node stays stopped, even with honest rows.
    let report = Shipper::new(&dsn(&resealed), &to)
        .unwrap()
        .ship_once()
        .unwrap();
    assert!(report.nodes[0].fork.is_some());
    assert_eq!(count(&schema, "edge-resealed"), 10);
    let status = c.status().unwrap();
    let forked: Vec<&str> = status
        .iter()
        .filter(|n| n.fork.is_some())
        .map(|n| n.node.as_str())
        .collect();
    assert_eq!(forked, ["edge-changed", "edge-resealed"]);

    // Other nodes keep shipping.
    fill_edge(&honest, "edge-honest", 5);
    let report = Shipper::new(&dsn(&honest), &to)
        .unwrap()
        .ship_once()
        .unwrap();
    assert_eq!(report.nodes[0].fork, None);
    assert_eq!(count(&schema, "edge-honest"), 15);

    // An edge named like the central store's own node cannot ship.
    let own = dir.path().join("own.db");
    fill_edge(&own, fasten::ship::FLEET_NODE_DEFAULT, 2);
    let err = Shipper::new(&dsn(&own), &to)
        .unwrap()
        .ship_once()
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Fleet { .. }), "{err}");
}

#[test]
fn the_central_writers_own_nodes_cannot_be_shipped_over() {
    let Some(schema) = Schema::new() else {
        return;
    };
    let central = schema.dsn("audit_log");
    // The central service writes node "hq" itself.
    let fasten = fasten::Config::new()
        .service_id("hq")
        .node_id("hq")
        .audit_dsn(central.clone())
        .registry(super::support::registry())
        .build()
        .unwrap();
    fasten.emit(Event::new("USER_CREATED").target("x")).unwrap();
    fasten.shutdown(Duration::from_secs(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.db");
    fill_edge(&path, "hq", 3);
    let err = Shipper::new(&dsn(&path), &central_url(&schema))
        .unwrap()
        .ship_once()
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Fleet { .. }), "{err}");
    insta::assert_snapshot!(err, @"node hq is written by the central store itself (its rows did not arrive by shipping); an edge cannot ship it");
    assert_eq!(count(&schema, "hq"), 1);
}

#[cfg(all(feature = "http-reader", feature = "ship-http", feature = "tracing"))]
mod over_http {
    use fasten::http_reader::{self, Auth, Ingest, Options};

    use super::*;
    use crate::reader::Served;

    const READER: &str = "tok-operator-0123456789";
    const TOKEN_H: &str = "tok-ship-edge-h-0123456789";
    const TOKEN_K: &str = "tok-ship-edge-k-0123456789";

    fn key_file(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
        let pair = fasten::transparency::generate_key(name).unwrap();
        let path = dir.join(format!("{name}.key"));
        std::fs::write(&path, &pair.signing_key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        (path, pair.verifier_key)
    }

    fn signed_edge(path: &Path, node: &str, key: &Path, rows: usize) {
        let fasten = config(path, node)
            .signing_key(key)
            .checkpoint_every(5)
            .build()
            .unwrap();
        for i in 0..rows {
            fasten
                .emit(Event::new("USER_CREATED").target(format!("u-{i}")))
                .unwrap();
        }
        fasten.shutdown(Duration::from_secs(30)).unwrap();
    }

    #[test]
    fn edges_ship_over_http_with_node_bound_tokens_and_checked_checkpoints() {
        let Some(schema) = Schema::new() else {
            return;
        };
        let central = schema.dsn("audit_log");
        drop(Central::open(&central).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let (key_h, verifier_h) = key_file(dir.path(), "edge-h");
        let (key_k, verifier_k) = key_file(dir.path(), "edge-k");
        let ingest = Ingest::tokens([("edge-h", TOKEN_H), ("edge-k", TOKEN_K)])
            .unwrap()
            .fleet_keys(vec![
                ("edge-h".to_owned(), verifier_h),
                ("edge-k".to_owned(), verifier_k),
            ]);
        let served = Served::start(axum::Router::new().nest(
            "/logs",
            http_reader::router(
                Reader::new(central.clone()),
                Options::new(Auth::bearer_tokens([READER]).unwrap()).ingest(ingest),
            ),
        ));
        let url = served.base().to_owned();

        // An edge with a signing key: rows and checkpoints arrive, verified.
        let edge_h = dir.path().join("edge-h.db");
        signed_edge(&edge_h, "edge-h", &key_h, 12);
        let report = Shipper::with_token(&dsn(&edge_h), &url, Some(TOKEN_H.to_owned()))
            .unwrap()
            .batch_size(5)
            .ship_once()
            .unwrap();
        let n = &report.nodes[0];
        assert_eq!((n.inserted, n.pending, n.fork.as_deref()), (12, 0, None));
        assert!(n.checkpoints > 0 && n.checkpoint_error.is_none(), "{n:?}");
        let (status, body) =
            served.get("/fleet", &[("authorization", &format!("Bearer {READER}"))]);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["nodes"][0]["node"], "edge-h");
        assert_eq!(body["nodes"][0]["rows"], 12);
        assert_eq!(body["nodes"][0]["last_checkpoint"], 12);
        assert_eq!(body["nodes"][0]["pending"], 0);

        // A token ships only its own nodes: 403 for another's, 401 without one.
        let err = Shipper::with_token(&dsn(&edge_h), &url, Some(TOKEN_K.to_owned()))
            .unwrap()
            .ship_once()
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Fleet { .. }), "{err}");
        assert!(err.to_string().contains("(403)"), "{err}");
        let err = Shipper::with_token(&dsn(&edge_h), &url, None)
            .unwrap()
            .ship_once()
            .unwrap_err();
        assert!(err.to_string().contains("(401)"), "{err}");
        // Plain http:// only to loopback.
        let err = Shipper::with_token(&dsn(&edge_h), "http://fleet.example/api/v1/logs", None)
            .unwrap_err();
        insta::assert_snapshot!(err, @r#"invalid FASTEN_SHIP_TO "http://fleet.example/api/v1/logs": plain http:// only to a loopback address; use https://host/api/v1/logs"#);

        // A checkpoint the shipped rows contradict: edge-k ships six rows,
        // then a checkpoint its key signed over six other rows.
        let edge_k = dir.path().join("edge-k.db");
        fill_edge(&edge_k, "edge-k", 6);
        let other = dir.path().join("edge-k-other.db");
        signed_edge(&other, "edge-k", &key_k, 6);
        Shipper::with_token(&dsn(&edge_k), &url, Some(TOKEN_K.to_owned()))
            .unwrap()
            .ship_once()
            .unwrap();
        let note: String = rusqlite::Connection::open(&other)
            .unwrap()
            .query_row(
                "SELECT note FROM audit_log_checkpoints WHERE tree_size = 6",
                [],
                |r| r.get(0),
            )
            .unwrap();
        rusqlite::Connection::open(&edge_k)
            .unwrap()
            .execute(
                "INSERT INTO audit_log_checkpoints (source_node_id, tree_size, note, created_at) VALUES ('edge-k', 6, ?1, '2026-01-01T00:00:00.000000Z')",
                [&note],
            )
            .unwrap();
        let report = Shipper::with_token(&dsn(&edge_k), &url, Some(TOKEN_K.to_owned()))
            .unwrap()
            .ship_once()
            .unwrap();
        let fork = report.nodes[0].fork.clone().expect("a fork");
        assert!(fork.contains("different history"), "{fork}");
        assert_eq!(
            super::fork_rows(&schema)
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>(),
            ["edge-k"]
        );
        let status = Central::open(&central).unwrap().status().unwrap();
        let k = status.iter().find(|n| n.node == "edge-k").unwrap();
        assert!(k.fork.is_some() && k.last_checkpoint.is_none(), "{k:?}");
        assert!(fasten::verify(&central).unwrap().ok);
    }
}
