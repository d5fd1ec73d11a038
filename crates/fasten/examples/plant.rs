//! One request id beyond HTTP: a plant API (service A) takes setpoints over
//! HTTP and publishes them over MQTT or NATS; a line controller (service B)
//! applies them in its message handler; a scheduled job drives the API too.
//! Every audit, sys and api row of one setpoint, in both services, carries
//! one id, and one query per id returns them all.
//!
//! Needs Mosquitto on 127.0.0.1:1883 and NATS on 127.0.0.1:4222:
//!
//! ```sh
//! cargo run -p fasten --features http,mqtt,nats --example plant
//! ```
//!
//! The two services run in one process here for brevity; they write one
//! SQLite file (`PLANT_DB`, default a temporary file) as a fleet would
//! share one store, each with its own service and node id.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use fasten::code::{Meta, Registry};
use fasten::http::{RequestIdLayer, X_REQUEST_ID};
use fasten::{Config, Dsn, Event, Fasten, Method, RequestId, Stdout};
use futures_util::StreamExt as _;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Service A's state: its pipeline and both buses.
#[derive(Clone)]
struct PlantApi {
    fasten: Fasten,
    mqtt: AsyncClient,
    nats: async_nats::Client,
}

/// `POST /setpoint/{mqtt|nats}/{line}` with `{"celsius": 21.5}`.
async fn request_setpoint(
    State(api): State<PlantApi>,
    Path((bus, line)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<StatusCode, (StatusCode, String)> {
    let fail = |e: &dyn std::fmt::Display| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    tracing::info!(target: "plant_api", %line, "setpoint requested");
    api.fasten
        .emit(
            Event::new("SETPOINT_REQUESTED")
                .target(format!("line/{line}"))
                .method(Method::Http),
        )
        .map_err(|e| fail(&e))?;
    let payload = serde_json::to_vec(&json!({ "line": line, "celsius": body["celsius"] }))
        .map_err(|e| fail(&e))?;
    // Both helpers carry the ambient id: MQTT in a v5 user property and the
    // JSON payload's `_req`, NATS in the `Fasten-Request-Id` header.
    match bus.as_str() {
        "nats" => fasten::nats::publish(&api.nats, format!("plant.{line}.setpoint"), payload)
            .await
            .map_err(|e| fail(&e))?,
        _ => fasten::mqtt::publish(
            &api.mqtt,
            format!("plant/{line}/setpoint"),
            QoS::AtLeastOnce,
            false,
            payload,
        )
        .await
        .map_err(|e| fail(&e))?,
    }
    Ok(StatusCode::ACCEPTED)
}

/// Service B's handler, under the message's id (`method=mqtt` or `nats`).
async fn apply_setpoint(fasten: Fasten, payload: Vec<u8>, done: mpsc::UnboundedSender<()>) {
    let line = serde_json::from_slice::<Value>(&payload)
        .ok()
        .and_then(|v| v["line"].as_str().map(str::to_owned))
        .unwrap_or_default();
    tracing::info!(target: "line_controller", %line, "setpoint applied");
    if let Err(e) = fasten.emit(Event::new("SETPOINT_APPLIED").target(format!("line/{line}"))) {
        tracing::error!(target: "line_controller", error = %e, "audit failed");
    }
    let _ = done.send(());
}

fn pipeline(service: &str, db: &str, codes: &Registry) -> Result<Fasten, BoxError> {
    let file = format!("sqlite:///{db}");
    Ok(Config::new()
        .service_id(service)
        .node_id(format!("{service}-1"))
        .audit_dsn(Dsn::parse("FASTEN_AUDIT_DSN", &file)?)
        .sys_dsn(Dsn::parse_for("FASTEN_SYS_DSN", &file, "sys_log")?)
        .api_dsn(Dsn::parse_for("FASTEN_API_DSN", &file, "api_log")?)
        .stdout(Stdout::NONE)
        .registry(codes.clone())
        .build()?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let codes = Registry::new();
    codes.register(
        "plant",
        [
            ("SETPOINT_REQUESTED", Meta::new("setpoint", "request")),
            ("SETPOINT_APPLIED", Meta::new("setpoint", "apply")),
        ],
    )?;
    let tmp = tempfile::tempdir()?;
    let db = std::env::var("PLANT_DB")
        .unwrap_or_else(|_| tmp.path().join("plant.db").display().to_string());
    let a = pipeline("plant-api", &db, &codes)?;
    let b = pipeline("line-controller", &db, &codes)?;
    // Each service's sys layer takes its own events, as in two processes.
    tracing_subscriber::registry()
        .with(
            a.sys_layer()
                .with_filter(filter_fn(|m| m.target() == "plant_api")),
        )
        .with(
            b.sys_layer()
                .with_filter(filter_fn(|m| m.target() == "line_controller")),
        )
        .init();
    let (done_tx, mut done) = mpsc::unbounded_channel();

    // Service B: subscribe on both buses; each message runs its handler
    // under the sender's id.
    let tag = std::process::id();
    let (mqtt_b, mut events_b) = AsyncClient::new(
        MqttOptions::new(format!("line-controller-{tag}"), "127.0.0.1", 1883),
        64,
    );
    mqtt_b
        .subscribe("plant/+/setpoint", QoS::AtLeastOnce)
        .await?;
    loop {
        if let MqttEvent::Incoming(Packet::SubAck(_)) = events_b.poll().await? {
            break;
        }
    }
    let (fb, tx) = (b.clone(), done_tx.clone());
    tokio::spawn(async move {
        while let Ok(event) = events_b.poll().await {
            if let MqttEvent::Incoming(Packet::Publish(msg)) = event {
                let (fb, tx) = (fb.clone(), tx.clone());
                tokio::spawn(fasten::mqtt::handle(msg, move |m| {
                    apply_setpoint(fb, m.payload.to_vec(), tx)
                }));
            }
        }
    });
    let nats = async_nats::connect("127.0.0.1:4222").await?;
    let mut setpoints = nats.subscribe("plant.*.setpoint").await?;
    nats.flush().await?;
    let (fb, tx) = (b.clone(), done_tx.clone());
    tokio::spawn(async move {
        while let Some(msg) = setpoints.next().await {
            let (fb, tx) = (fb.clone(), tx.clone());
            tokio::spawn(fasten::nats::handle(msg, move |m| {
                apply_setpoint(fb, m.payload.to_vec(), tx)
            }));
        }
    });

    // Service A: the HTTP API.
    let (mqtt_a, mut events_a) = AsyncClient::new(
        MqttOptions::new(format!("plant-api-{tag}"), "127.0.0.1", 1883),
        64,
    );
    tokio::spawn(async move { while events_a.poll().await.is_ok() {} });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/setpoint/{bus}/{line}", post(request_setpoint))
        .with_state(PlantApi {
            fasten: a.clone(),
            mqtt: mqtt_a,
            nats,
        })
        .layer(a.api_layer())
        .layer(RequestIdLayer::new());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Two operators' requests, one per bus, and a scheduled job that calls
    // the API: its id is `scheduler-…`, and it reaches service B too.
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (line, bus) in [("line-1", "mqtt"), ("line-2", "nats")] {
        let res = http
            .post(format!("{base}/setpoint/{bus}/{line}"))
            .json(&json!({ "celsius": 21.5 }))
            .send()
            .await?
            .error_for_status()?;
        ids.push(res.headers()[X_REQUEST_ID].to_str()?.to_owned());
    }
    let job = a.job("nightly-setback");
    let run_id = job
        .run(async {
            http.post(format!("{base}/setpoint/mqtt/line-3"))
                .headers(fasten::http::outbound_headers())
                .json(&json!({ "celsius": 16.0 }))
                .send()
                .await?
                .error_for_status()?;
            Ok::<_, reqwest::Error>(fasten::context::current())
        })
        .await?;
    ids.extend(run_id.map(|id| id.to_string()));
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(10), done.recv())
            .await
            .map_err(|_| "service B did not get every setpoint within 10 s")?;
    }
    for f in [&a, &b] {
        f.flush(Duration::from_secs(5))?;
        f.flush_streams(Duration::from_secs(5))?;
    }

    // One correlate query per id (what `/correlate` and `fasten correlate`
    // answer): the rows of both services, from the shared tables.
    let reader = fasten::Reader::from_pipeline(&a);
    for id in &ids {
        eprintln!("\nrequest_id {id}");
        for entry in reader.correlate(&RequestId::parse(id)?)?.entries {
            match entry {
                fasten::query::Entry::Audit(r) => eprintln!(
                    "  audit {} {:<16} {:<19} method={}",
                    r.timestamp, r.service_id, r.code, r.method
                ),
                fasten::query::Entry::Sys(r) => eprintln!(
                    "  sys   {} {:<16} {} {}",
                    r.timestamp, r.service_id, r.level, r.message
                ),
                fasten::query::Entry::Api(r) => eprintln!(
                    "  api   {} {:<16} {} {} {}",
                    r.timestamp, r.service_id, r.method, r.route, r.status
                ),
                _ => {}
            }
        }
    }
    Ok(())
}
