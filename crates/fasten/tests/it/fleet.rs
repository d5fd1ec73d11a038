//! The fleet (#18): edges on SQLite, some as separate processes, shipping
//! to the real PostgreSQL, verified on arrival. Each test works in a schema
//! of its own and drops it; under `CI` a missing server fails the test.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fasten::ship::{Central, Shipper};
use fasten::{ErrorKind, Event};

use super::postgres::{Schema, base_url};
use super::support::{
    HANG_GUARD, child, config, db_path, dsn, role, stream_dsns, streams_config, wait_until,
};

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

/// The three-edge fleet, one request crossing two edges over MQTT
/// (Mosquitto at 127.0.0.1:1883).
#[cfg(feature = "mqtt")]
mod over_mqtt {
    use std::collections::HashSet;

    use fasten::{Reader, RequestId};

    use super::*;
    use crate::support::{broker, runtime};

    /// Entry point of the edge processes: emits with `FASTEN_IT_SHIP_TO` set
    /// (the pipeline's own background shipper) in the part `FASTEN_IT_PART`
    /// names, then waits until everything has shipped. One request crosses
    /// two of them over MQTT (`FASTEN_IT_TOPIC`):
    ///
    /// - `gateway` emits every 100th row under the request the parent hands it
    ///   (as an HTTP header would), then publishes a message inside it;
    /// - `consumer` emits its other rows, then handles that message and emits
    ///   its every-100th rows in the handler, under the id the message carried;
    /// - `bystander` emits unrelated rows.
    ///
    /// Handshake, no sleeps: the consumer, once subscribed, publishes a
    /// retained `<topic>/ready`; the gateway publishes only after it has seen
    /// it, so the message cannot go out before anyone listens. The consumer
    /// clears the retained message once it is done with the handshake.
    #[test]
    #[ignore = "child-process entry point, run by its parent test"]
    fn child_fleet_edge() {
        use fasten::context;
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::{AsyncClient, MqttOptions};

        if role().as_deref() != Some("fleet-edge") {
            return;
        }
        let path = db_path("FASTEN_IT_DB");
        let node = std::env::var("FASTEN_IT_NODE").unwrap();
        let rows: usize = std::env::var("FASTEN_IT_ROWS").unwrap().parse().unwrap();
        let part = std::env::var("FASTEN_IT_PART").unwrap();
        let topic = std::env::var("FASTEN_IT_TOPIC").unwrap();
        let ready = format!("{topic}/ready");
        let fasten = config(&path, &node)
            .ship_to(std::env::var("FASTEN_IT_SHIP_TO").unwrap())
            .ship_interval(Duration::from_millis(50))
            .ship_batch_size(200)
            .build()
            .unwrap();
        let row = |i: usize| Event::new("USER_UPDATED").target(format!("{node}/u-{i}"));
        let correlated = |i: usize| i.is_multiple_of(100);
        let acked = |p| matches!(p, Packet::PubAck(_)).then_some(());
        let mqtt = || {
            AsyncClient::new(
                MqttOptions::new(format!("{topic}/{node}"), "127.0.0.1", 1883),
                16,
            )
        };
        runtime().block_on(async {
            match part.as_str() {
                "gateway" => {
                    let request = std::env::var("FASTEN_IT_REQUEST").unwrap();
                    let request = RequestId::parse(&request).unwrap();
                    for i in 0..rows {
                        if correlated(i) {
                            context::with(request.clone(), || fasten.emit(row(i))).unwrap();
                        } else {
                            fasten.emit(row(i)).unwrap();
                        }
                    }
                    let (client, mut events) = mqtt();
                    client.subscribe(&ready, QoS::AtLeastOnce).await.unwrap();
                    next(&mut events, |p| match p {
                        Packet::Publish(m)
                            if m.topic == ready.as_bytes() && !m.payload.is_empty() =>
                        {
                            Some(())
                        }
                        _ => None,
                    })
                    .await;
                    // Inside the request: the message carries its id.
                    let message = fasten::mqtt::publish(
                        &client,
                        &topic,
                        QoS::AtLeastOnce,
                        false,
                        b"{}".to_vec(),
                    );
                    context::scope(request, message).await.unwrap();
                    next(&mut events, acked).await;
                }
                "consumer" => {
                    let (client, mut events) = mqtt();
                    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
                    next(&mut events, |p| {
                        matches!(p, Packet::SubAck(_)).then_some(())
                    })
                    .await;
                    let set = client.publish(&ready, QoS::AtLeastOnce, true, b"1".to_vec());
                    set.await.unwrap();
                    next(&mut events, acked).await;
                    for i in (0..rows).filter(|&i| !correlated(i)) {
                        fasten.emit(row(i)).unwrap();
                    }
                    let msg = next(&mut events, |p| match p {
                        Packet::Publish(m) if m.topic == topic.as_bytes() => Some(m),
                        _ => None,
                    })
                    .await;
                    // No `.request_id(..)`: the handler's context has the message's.
                    fasten::mqtt::handle(msg, |_| async {
                        for i in (0..rows).filter(|&i| correlated(i)) {
                            fasten.emit(row(i)).unwrap();
                        }
                    })
                    .await;
                    // Clear the retained handshake off the broker.
                    let clear = client.publish(&ready, QoS::AtLeastOnce, true, Vec::new());
                    clear.await.unwrap();
                    next(&mut events, acked).await;
                }
                "bystander" => {
                    for i in 0..rows {
                        fasten.emit(row(i)).unwrap();
                    }
                }
                other => panic!("no edge part {other:?}"),
            }
        });
        fasten.flush(Duration::from_secs(30)).unwrap();
        wait_until("the edge to ship everything", || unshipped(&path) == 0);
        fasten.shutdown(Duration::from_secs(30)).unwrap();
    }

    /// Polls the MQTT event loop until `want` picks an incoming packet, and
    /// returns what it made of it; the deadline only guards against a hang.
    async fn next<T>(
        events: &mut rumqttc::v5::EventLoop,
        mut want: impl FnMut(rumqttc::v5::mqttbytes::v5::Packet) -> Option<T>,
    ) -> T {
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                if let rumqttc::v5::Event::Incoming(p) = events.poll().await.unwrap()
                    && let Some(t) = want(p)
                {
                    return t;
                }
            }
        })
        .await
        .expect("the MQTT packet arrived before the deadline")
    }

    #[test]
    fn three_edges_ship_concurrently_and_one_request_correlates_across_two() {
        if !broker("Mosquitto", 1883) {
            return;
        }
        let Some(schema) = Schema::new() else {
            return;
        };
        // The central table first, so the edges race on rows, not on DDL.
        drop(Central::open(&schema.dsn("audit_log")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let request = RequestId::mint();
        let topic = format!("fasten-it/fleet/{:016x}", rand::random::<u64>());
        let per_edge = 1000;
        let mut children: Vec<_> = ["gateway", "consumer", "bystander"]
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let i = i + 1;
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
                    ("FASTEN_IT_PART", part.to_owned()),
                    ("FASTEN_IT_TOPIC", topic.clone()),
                ];
                // Only the gateway is told the id (as by an inbound header);
                // edge 2 learns it from the MQTT message.
                if part == "gateway" {
                    env.push(("FASTEN_IT_REQUEST", request.as_str().to_owned()));
                }
                child("fleet::over_mqtt::child_fleet_edge", &env)
                    .spawn()
                    .unwrap()
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
        let nodes: HashSet<(String, String)> = timeline
            .entries
            .iter()
            .filter_map(|e| match e {
                fasten::query::Entry::Audit(r) => {
                    Some((r.source_node_id.clone(), r.method.clone()))
                }
                _ => None,
            })
            .collect();
        // Edge 2's rows came in through the MQTT handler's context.
        assert_eq!(
            nodes,
            HashSet::from([
                ("edge-1".to_owned(), "sdk".to_owned()),
                ("edge-2".to_owned(), "mqtt".to_owned())
            ])
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

/// Rows of an edge file's table, and how many of them are not shipped yet.
fn edge_stream(path: &Path, table: &str) -> (i64, i64) {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            &format!("SELECT count(*), count(*) - count(shipped_at) FROM {table}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// Rows of a central stream table.
fn central_stream(schema: &Schema, table: &str) -> i64 {
    admin()
        .query_one(
            &format!("SELECT count(*) FROM {}.{table}", schema.name),
            &[],
        )
        .unwrap()
        .get(0)
}

/// What each stream shipped in a round, as `(stream, rows)`.
fn streams_shipped(report: &fasten::ship::ShipReport) -> Vec<(&'static str, u64)> {
    report
        .streams
        .iter()
        .map(|s| (s.stream, s.shipped))
        .collect()
}

#[test]
fn sys_and_api_rows_ship_once_each_and_correlate_centrally() {
    use fasten::record::{ApiRecord, LogLine};

    let Some(schema) = Schema::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.db");
    let request = fasten::RequestId::mint();
    let log = |fasten: &fasten::Fasten, message: String, request: Option<&fasten::RequestId>| {
        let mut line = LogLine::new("info", message).unwrap();
        if let Some(id) = request {
            line = line.request_id(id.clone());
        }
        assert!(fasten.log(line));
    };
    let fasten = streams_config(&path).node_id("edge-s").build().unwrap();
    fasten
        .emit(
            Event::new("USER_UPDATED")
                .target("u-1")
                .request_id(request.clone()),
        )
        .unwrap();
    for i in 0..7 {
        log(&fasten, format!("step {i}"), Some(&request));
    }
    for i in 0..5 {
        log(&fasten, format!("unrelated {i}"), None);
    }
    for i in 0..3 {
        let api = ApiRecord::new(
            request.clone(),
            "GET",
            &format!("/orders/{i}"),
            200,
            Duration::from_millis(5),
        );
        fasten.record_api(api.unwrap());
    }
    fasten.shutdown(Duration::from_secs(30)).unwrap();

    let (sys, api) = stream_dsns(&path);
    let shipper = || {
        Shipper::new(&dsn(&path), &central_url(&schema))
            .unwrap()
            .batch_size(4)
            .sys(&sys)
            .unwrap()
            .api(&api)
            .unwrap()
    };
    let report = shipper().ship_once().unwrap();
    assert_eq!(streams_shipped(&report), [("sys", 12), ("api", 3)]);
    assert_eq!(edge_stream(&path, "sys_log"), (12, 0));
    assert_eq!(edge_stream(&path, "api_log"), (3, 0));
    assert_eq!(
        (
            central_stream(&schema, "sys_log"),
            central_stream(&schema, "api_log")
        ),
        (12, 3)
    );

    // Interrupted between the central commits and the edge's marks (a kill
    // there): the rows go again, and land once.
    tamper(
        &path,
        "UPDATE sys_log SET shipped_at = NULL; UPDATE api_log SET shipped_at = NULL",
    );
    let report = shipper().ship_once().unwrap();
    assert_eq!(streams_shipped(&report), [("sys", 12), ("api", 3)]);
    assert_eq!(
        (
            central_stream(&schema, "sys_log"),
            central_stream(&schema, "api_log")
        ),
        (12, 3)
    );
    // Rows written later: only they go.
    let fasten = streams_config(&path).node_id("edge-s").build().unwrap();
    log(&fasten, "later".to_owned(), Some(&request));
    fasten.shutdown(Duration::from_secs(30)).unwrap();
    let report = shipper().ship_once().unwrap();
    assert_eq!(streams_shipped(&report), [("sys", 1), ("api", 0)]);
    assert_eq!(central_stream(&schema, "sys_log"), 13);

    // The central reader's timeline of the request has the edge's rows of
    // all three streams.
    let reader = fasten::Reader::new(schema.dsn("audit_log"))
        .sys_dsn(schema.dsn("sys_log"))
        .api_dsn(schema.dsn("api_log"));
    let timeline = reader.correlate(&request).unwrap();
    let mut seen: Vec<(&str, &str)> = timeline
        .entries
        .iter()
        .map(|e| match e {
            fasten::query::Entry::Audit(r) => ("audit", r.source_node_id.as_str()),
            fasten::query::Entry::Sys(r) => ("sys", &*r.source_node_id),
            fasten::query::Entry::Api(r) => ("api", &*r.source_node_id),
            _ => ("other", ""),
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        [("api", "edge-s"), ("audit", "edge-s"), ("sys", "edge-s")]
    );
    assert_eq!(timeline.entries.len(), 1 + 8 + 3);
}

#[test]
fn shutdown_ships_the_last_audit_sys_and_api_rows() {
    use fasten::record::{ApiRecord, LogLine};

    let Some(schema) = Schema::new() else {
        return;
    };
    let central = schema.dsn("audit_log");
    drop(Central::open(&central).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.db");
    let request = fasten::RequestId::mint();
    let fasten = streams_config(&path)
        .node_id("edge-last")
        .ship_to(central_url(&schema))
        .ship_streams(fasten::ShipStreams {
            sys: true,
            api: true,
        })
        // The next round after the first is an hour away: only shutdown
        // ships what comes after it.
        .ship_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    wait_until("the shipper's first round (a heartbeat)", || {
        fasten::ship::status(&central)
            .unwrap()
            .iter()
            .any(|n| n.node == "edge-last")
    });
    for i in 0..5 {
        fasten
            .emit(Event::new("USER_CREATED").target(format!("u-{i}")))
            .unwrap();
    }
    let line = LogLine::new("info", "created five").unwrap();
    assert!(fasten.log(line.request_id(request.clone())));
    let api = ApiRecord::new(request, "POST", "/users", 201, Duration::from_millis(3));
    fasten.record_api(api.unwrap());
    fasten.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(count(&schema, "edge-last"), 5);
    assert_eq!(unshipped(&path), 0);
    assert_eq!(edge_stream(&path, "sys_log"), (1, 0));
    assert_eq!(edge_stream(&path, "api_log"), (1, 0));
    assert_eq!(
        (
            central_stream(&schema, "sys_log"),
            central_stream(&schema, "api_log")
        ),
        (1, 1)
    );
}

/// Shutdown with a central store that refuses connections: the last round
/// fails at once and shutdown returns, in its own thread so a hang fails
/// the test instead of stalling it.
#[test]
fn shutdown_returns_when_the_central_store_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.db");
    // Nothing listens on port 1.
    let fasten = config(&path, "edge-down")
        .ship_to("postgres://fasten@127.0.0.1:1/fleet")
        .build()
        .unwrap();
    fasten
        .emit(Event::new("USER_CREATED").target("u-1"))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(fasten.shutdown(Duration::from_secs(5))));
    let report = rx
        .recv_timeout(HANG_GUARD)
        .expect("shutdown returned (hang guard only)")
        .unwrap();
    assert_eq!(report.written, 1);
    assert_eq!(unshipped(&path), 1, "stays unshipped for next time");
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
    use fasten::Reader;
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
    fn streams_do_not_ship_over_http_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.db");
        let url = "https://central.example/api/v1/logs";
        let (sys, _) = stream_dsns(&path);
        let err = Shipper::with_token(&dsn(&path), url, None)
            .unwrap()
            .sys(&sys)
            .unwrap_err();
        insta::assert_snapshot!(err, @"FASTEN_SHIP_STREAMS names sys, but FASTEN_SHIP_TO is an ingest URL, which takes audit rows only: sys and api rows ship only to a postgres:// central store");
        let err = streams_config(&path)
            .ship_to(url)
            .ship_streams(fasten::ShipStreams {
                sys: true,
                api: false,
            })
            .build()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Config {
                var: fasten::env::FASTEN_SHIP_STREAMS
            },
            "{err}"
        );
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
