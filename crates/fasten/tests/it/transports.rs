//! One request id beyond HTTP, against the real Mosquitto (127.0.0.1:1883)
//! and NATS (127.0.0.1:4222): service A takes an HTTP request and publishes
//! a setpoint; service B's handler applies it; the rows of both services
//! come back under one id. Under `CI` a missing broker fails the test;
//! elsewhere the test says SKIPPED and returns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use fasten::code::{Meta, Registry};
use fasten::http::{RequestIdLayer, X_REQUEST_ID};
use fasten::{Config, Dsn, Event, Fasten, Method, RequestId, Stdout};
use serde_json::json;
use tokio::sync::mpsc;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

use super::support::{broker, runtime};

const SECS: Duration = Duration::from_secs(10);

/// Two services writing one SQLite file (their own nodes), with their sys
/// and api rows in its tables, as a fleet shares one store.
pub(crate) struct Plant {
    _dir: tempfile::TempDir,
    pub(crate) path: PathBuf,
    pub(crate) a: Fasten,
    pub(crate) b: Fasten,
}

pub(crate) fn plant() -> Plant {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plant.db");
    let codes = Registry::new();
    codes
        .register(
            "plant",
            [
                ("SETPOINT_REQUESTED", Meta::new("setpoint", "request")),
                ("SETPOINT_APPLIED", Meta::new("setpoint", "apply")),
                ("REPORT_BUILT", Meta::new("report", "create")),
            ],
        )
        .unwrap();
    let file = format!("sqlite:///{}", path.display());
    let build = |service: &str| {
        Config::new()
            .service_id(service)
            .node_id(format!("{service}-1"))
            .audit_dsn(Dsn::parse("FASTEN_AUDIT_DSN", &file).unwrap())
            .registry(codes.clone())
            .stdout(Stdout::NONE)
            .sys_dsn(Dsn::parse_for("FASTEN_SYS_DSN", &file, "sys_log").unwrap())
            .api_dsn(Dsn::parse_for("FASTEN_API_DSN", &file, "api_log").unwrap())
            .build()
            .unwrap()
    };
    let a = build("plant-api");
    let b = build("line-controller");
    Plant {
        _dir: dir,
        path,
        a,
        b,
    }
}

impl Plant {
    /// Each service's sys layer sees only its own events (targets `svc_a`
    /// and `svc_b`), as if they ran in two processes.
    pub(crate) fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::registry()
            .with(
                self.a
                    .sys_layer()
                    .with_filter(filter_fn(|m| m.target() == "svc_a")),
            )
            .with(
                self.b
                    .sys_layer()
                    .with_filter(filter_fn(|m| m.target() == "svc_b")),
            )
    }

    pub(crate) fn flush(&self) {
        for f in [&self.a, &self.b] {
            f.flush(SECS).unwrap();
            f.flush_streams(SECS).unwrap();
        }
    }

    /// One correlate query (what `/correlate` and `fasten correlate`
    /// answer) for one id, split by stream: audit rows (service, code,
    /// method), sys rows (service, message) and api rows (service, route),
    /// each sorted. Both services share the tables, so either pipeline's
    /// reader sees both.
    #[allow(clippy::type_complexity)]
    pub(crate) fn correlate(
        &self,
        id: &str,
    ) -> (
        Vec<(String, String, String)>,
        Vec<(String, String)>,
        Vec<(String, String)>,
    ) {
        let rid = RequestId::parse(id).unwrap();
        let timeline = fasten::Reader::from_pipeline(&self.a)
            .correlate(&rid)
            .unwrap();
        assert!(
            timeline
                .entries
                .windows(2)
                .all(|w| w[0].timestamp() <= w[1].timestamp()),
            "a timeline is in time order"
        );
        let (mut audit, mut sys, mut api) = (Vec::new(), Vec::new(), Vec::new());
        for entry in timeline.entries {
            match entry {
                fasten::query::Entry::Audit(r) => {
                    audit.push((r.service_id.clone(), r.code.clone(), r.method.clone()));
                }
                // fasten's warning that a handler named no actor is not
                // one of the request's own rows.
                fasten::query::Entry::Sys(r) if r.target == "fasten::attribution" => {}
                fasten::query::Entry::Sys(r) => sys.push((r.service_id.to_string(), r.message)),
                fasten::query::Entry::Api(r) => api.push((
                    r.service_id.to_string(),
                    format!("{} {}", r.method, r.route),
                )),
                _ => unreachable!("three streams"),
            }
        }
        audit.sort();
        sys.sort();
        api.sort();
        (audit, sys, api)
    }
}

pub(crate) fn audit_of(path: &Path, id: &str) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT service_id, code, method FROM audit_log WHERE request_id = ?1 ORDER BY service_id, code")
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn t(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_owned(), b.to_owned(), c.to_owned())
}

fn p(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// How service A sends a setpoint.
#[derive(Clone)]
enum Bus {
    Mqtt(rumqttc::v5::AsyncClient, String),
    Nats(async_nats::Client, String),
}

#[derive(Clone)]
struct ServiceA {
    fasten: Fasten,
    bus: Bus,
}

async fn request_setpoint(
    State(svc): State<ServiceA>,
    UrlPath(line): UrlPath<String>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    tracing::info!(target: "svc_a", %line, "setpoint requested");
    svc.fasten
        .emit(
            Event::new("SETPOINT_REQUESTED")
                .target(format!("line/{line}"))
                .method(Method::Http),
        )
        .unwrap();
    let payload = serde_json::to_vec(&json!({ "line": line, "celsius": body["celsius"] })).unwrap();
    match &svc.bus {
        Bus::Mqtt(client, prefix) => fasten::mqtt::publish(
            client,
            format!("{prefix}/{line}/setpoint"),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            payload,
        )
        .await
        .unwrap(),
        Bus::Nats(client, prefix) => {
            fasten::nats::publish(client, format!("{prefix}.{line}.setpoint"), payload)
                .await
                .unwrap();
        }
    }
    StatusCode::ACCEPTED
}

/// Service B's handler: runs under the message's id.
async fn apply_setpoint(b: Fasten, payload: Vec<u8>, done: mpsc::UnboundedSender<RequestId>) {
    let line = serde_json::from_slice::<serde_json::Value>(&payload)
        .ok()
        .and_then(|v| v["line"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    tracing::info!(target: "svc_b", %line, "setpoint applied");
    // No `.method(..)`: the transport's, from the context.
    b.emit(Event::new("SETPOINT_APPLIED").target(format!("line/{line}")))
        .unwrap();
    done.send(fasten::context::current().unwrap()).unwrap();
}

/// Serves service A on loopback; returns its base URL.
async fn serve_a(svc: ServiceA) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let layer = svc.fasten.api_layer();
    let app = Router::new()
        .route("/setpoint/{line}", post(request_setpoint))
        .with_state(svc)
        .layer(layer)
        .layer(RequestIdLayer::new());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Two HTTP requests to service A: one with a client's id, one without.
/// Returns the ids A echoed.
async fn two_requests(base: &str) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for (line, header) in [("line-1", Some("plant-req-1")), ("line-2", None)] {
        let mut req = client
            .post(format!("{base}/setpoint/{line}"))
            .json(&json!({ "celsius": 21.5 }));
        if let Some(h) = header {
            req = req.header("x-request-id", h);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 202);
        ids.push(res.headers()[X_REQUEST_ID].to_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], "plant-req-1");
    ids
}

async fn recv(done: &mut mpsc::UnboundedReceiver<RequestId>) -> RequestId {
    tokio::time::timeout(SECS, done.recv())
        .await
        .expect("service B handled the message within 10 s")
        .unwrap()
}

/// Rows of both services under each id A echoed.
fn assert_joined(plant: &Plant, ids: &[String], method: &str) {
    for id in ids {
        let (audit, sys, api) = plant.correlate(id);
        assert_eq!(
            audit,
            vec![
                t("line-controller", "SETPOINT_APPLIED", method),
                t("plant-api", "SETPOINT_REQUESTED", "http"),
            ],
            "audit rows of {id}"
        );
        assert_eq!(
            sys,
            vec![
                p("line-controller", "setpoint applied"),
                p("plant-api", "setpoint requested"),
            ],
            "sys rows of {id}"
        );
        assert_eq!(
            api,
            vec![p("plant-api", "POST /setpoint/{line}")],
            "api rows of {id}"
        );
    }
}

#[test]
fn issue_8_http_to_mqtt_joins_both_services_on_one_id() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};

    if !broker("Mosquitto", 1883) {
        return;
    }
    let plant = plant();
    let prefix = format!("fasten-it/{:016x}", rand::random::<u64>());
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let (ids, hostile) = tracing::subscriber::with_default(plant.subscriber(), || {
        runtime().block_on(async {
            // Service B subscribes, and handles each message under its id.
            let (client_b, mut events_b) = AsyncClient::new(
                MqttOptions::new(format!("{prefix}-b"), "127.0.0.1", 1883),
                64,
            );
            client_b
                .subscribe(format!("{prefix}/+/setpoint"), QoS::AtLeastOnce)
                .await
                .unwrap();
            loop {
                if let MqttEvent::Incoming(Packet::SubAck(_)) = events_b.poll().await.unwrap() {
                    break;
                }
            }
            let b = plant.b.clone();
            tokio::spawn(async move {
                while let Ok(event) = events_b.poll().await {
                    if let MqttEvent::Incoming(Packet::Publish(msg)) = event {
                        let (b, done) = (b.clone(), done_tx.clone());
                        tokio::spawn(fasten::mqtt::handle(msg, move |msg| {
                            apply_setpoint(b, msg.payload.to_vec(), done)
                        }));
                    }
                }
            });
            let (client_a, mut events_a) = AsyncClient::new(
                MqttOptions::new(format!("{prefix}-a"), "127.0.0.1", 1883),
                64,
            );
            tokio::spawn(async move { while events_a.poll().await.is_ok() {} });

            // Hostile or id-less messages straight from a raw client: each
            // is handled, under a fresh id.
            let raw = |props: Option<(&str, String)>| PublishProperties {
                user_properties: props
                    .map(|(k, v)| vec![(k.to_owned(), v)])
                    .unwrap_or_default(),
                ..PublishProperties::default()
            };
            let topic = format!("{prefix}/raw/setpoint");
            let hostile: Vec<(Vec<u8>, PublishProperties)> = vec![
                (b"\x00\x01\x02binary".to_vec(), raw(None)),
                (br#"{"_req":"a\u001b[2Jb","line":"x"}"#.to_vec(), raw(None)),
                (
                    serde_json::to_vec(&json!({ "_req": "x".repeat(500) })).unwrap(),
                    raw(Some(("request-id", "y".repeat(500)))),
                ),
                (
                    b"not json".to_vec(),
                    raw(Some(("request-id", "a b".to_owned()))),
                ),
            ];
            for (payload, props) in hostile {
                client_a
                    .publish_with_properties(&topic, QoS::AtLeastOnce, false, payload, props)
                    .await
                    .unwrap();
            }
            let mut fresh = Vec::new();
            for _ in 0..4 {
                fresh.push(recv(&mut done).await);
            }

            let base = serve_a(ServiceA {
                fasten: plant.a.clone(),
                bus: Bus::Mqtt(client_a, prefix.clone()),
            })
            .await;
            let ids = two_requests(&base).await;
            let mut handled = vec![
                recv(&mut done).await.to_string(),
                recv(&mut done).await.to_string(),
            ];
            handled.sort();
            let mut sent = ids.clone();
            sent.sort();
            assert_eq!(handled, sent, "B ran under the ids A's requests had");
            (ids, fresh)
        })
    });
    plant.flush();
    assert_joined(&plant, &ids, "mqtt");
    for id in &hostile {
        assert_eq!(
            id.as_str().len(),
            32,
            "a fresh id, not the hostile one: {id}"
        );
        assert_eq!(
            audit_of(&plant.path, id.as_str()),
            vec![t("line-controller", "SETPOINT_APPLIED", "mqtt")]
        );
    }
    let distinct: std::collections::HashSet<_> = hostile.iter().collect();
    assert_eq!(distinct.len(), 4);
}

#[test]
fn issue_8_http_to_nats_and_jetstream_join_on_one_id() {
    use async_nats::jetstream;
    use futures_util::StreamExt as _;

    if !broker("NATS", 4222) {
        return;
    }
    let plant = plant();
    let token = format!("{:016x}", rand::random::<u64>());
    let prefix = format!("fasten-it.{token}");
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let ids = tracing::subscriber::with_default(plant.subscriber(), || {
        runtime().block_on(async {
            let client = async_nats::connect("127.0.0.1:4222").await.unwrap();
            let mut setpoints = client
                .subscribe(format!("{prefix}.*.setpoint"))
                .await
                .unwrap();
            client.flush().await.unwrap();
            let (b, tx) = (plant.b.clone(), done_tx.clone());
            tokio::spawn(async move {
                while let Some(msg) = setpoints.next().await {
                    let (b, done) = (b.clone(), tx.clone());
                    tokio::spawn(fasten::nats::handle(msg, move |msg| {
                        apply_setpoint(b, msg.payload.to_vec(), done)
                    }));
                }
            });

            // Hostile headers and no headers: handled under fresh ids.
            for bad in [Some("z".repeat(300)), Some("a\u{1}b".to_owned()), None] {
                let mut headers = async_nats::HeaderMap::new();
                if let Some(bad) = &bad {
                    headers.insert(fasten::nats::HEADER, bad.as_str());
                }
                client
                    .publish_with_headers(format!("{prefix}.raw.setpoint"), headers, "{}".into())
                    .await
                    .unwrap();
            }
            for _ in 0..3 {
                let id = recv(&mut done).await;
                assert_eq!(id.as_str().len(), 32, "{id}");
            }

            let base = serve_a(ServiceA {
                fasten: plant.a.clone(),
                bus: Bus::Nats(client.clone(), prefix.clone()),
            })
            .await;
            let mut ids = two_requests(&base).await;
            for _ in 0..2 {
                recv(&mut done).await;
            }

            // JetStream: the same header through a stream and a pull consumer.
            let js = jetstream::new(client.clone());
            let stream_name = format!("FASTEN_IT_{token}");
            let stream = js
                .create_stream(jetstream::stream::Config {
                    name: stream_name.clone(),
                    subjects: vec![format!("fasten-js.{token}.>")],
                    ..Default::default()
                })
                .await
                .unwrap();
            let js_id = RequestId::parse(&format!("js-{token}")).unwrap();
            fasten::context::scope(js_id.clone(), async {
                let payload = serde_json::to_vec(&json!({ "line": "line-3" })).unwrap();
                js.publish_with_headers(
                    format!("fasten-js.{token}.line-3.setpoint"),
                    fasten::nats::headers(),
                    payload.into(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            })
            .await;
            let consumer: jetstream::consumer::PullConsumer = stream
                .create_consumer(jetstream::consumer::pull::Config::default())
                .await
                .unwrap();
            let mut messages = consumer.fetch().max_messages(1).messages().await.unwrap();
            let msg = messages.next().await.unwrap().unwrap();
            let b = plant.b.clone();
            let (tx, js_done) = (done_tx.clone(), &mut done);
            fasten::nats::handle(msg, move |msg| async move {
                msg.ack().await.unwrap();
                apply_setpoint(b, msg.payload.to_vec(), tx).await;
            })
            .await;
            assert_eq!(recv(js_done).await, js_id);
            js.delete_stream(&stream_name).await.unwrap();
            ids.push(js_id.to_string());
            ids
        })
    });
    plant.flush();
    assert_joined(&plant, &ids[..2], "nats");
    assert_eq!(
        audit_of(&plant.path, &ids[2]),
        vec![t("line-controller", "SETPOINT_APPLIED", "nats")]
    );
}
