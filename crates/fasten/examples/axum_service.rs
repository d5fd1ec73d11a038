//! Three streams, one request id: an axum shop whose order handler logs,
//! emits audit events (one from a spawned task) and calls a downstream
//! inventory service over HTTP. Every api, sys and audit row of the request
//! carries the same id.
//!
//! ```sh
//! cargo run -p fasten --features http --example axum_service
//! ```
//!
//! With no `FASTEN_*` variables set it picks its own: service `shop`, node
//! `node-1`, all three streams in `shop.db`, the example's code file, and
//! no JSON lines on stdout. Each variable that is set wins.
//!
//! It places one order through its own HTTP port, prints the request's rows
//! from the three streams, and exits. With `--serve` it keeps serving on
//! `FASTEN_EXAMPLE_LISTEN` (default `127.0.0.1:3000`; the inventory service
//! takes any free port): `curl -i -X POST localhost:3000/orders/42`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use fasten::query::Entry;
use fasten::{ActorKind, Event, RequestId};
use serde_json::{Value, json};
use tracing_subscriber::prelude::*;

#[derive(Clone)]
struct Shop {
    inventory: String,
    client: reqwest::Client,
}

async fn place_order(
    State(shop): State<Shop>,
    Path(order): Path<u64>,
) -> Result<(StatusCode, Json<Value>), (StatusCode, String)> {
    let fail = |e: &dyn std::fmt::Display| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    assert!(fasten::http::set_actor("alice"));
    assert!(fasten::http::set_target(format!("order/{order}")));
    tracing::info!(order, "placing order");
    fasten::emit(
        Event::new("ORDER_PLACED")
            .actor("alice", ActorKind::User)
            .target(format!("order/{order}"))
            .detail(json!({ "sku": "WIDGET", "qty": 3 })),
    )
    .map_err(|e| fail(&e))?;
    // The downstream call carries the id in X-Request-ID and traceparent.
    let stock: Value = shop
        .client
        .post(format!("{}/reserve/WIDGET", shop.inventory))
        .headers(fasten::http::outbound_headers())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(&e))?
        .json()
        .await
        .map_err(|e| fail(&e))?;
    // Work handed to another task keeps the request (id, actor, tenant)
    // with fasten::spawn; a plain tokio::spawn would start without it.
    fasten::spawn(async move {
        tracing::info!(order, "sending confirmation mail");
    });
    Ok((
        StatusCode::CREATED,
        Json(json!({ "order": order, "stock": stock })),
    ))
}

async fn reserve(Path(sku): Path<String>) -> Result<Json<Value>, (StatusCode, String)> {
    tracing::info!(%sku, "reserving stock");
    fasten::emit(
        Event::new("ORDER_PLACED")
            .actor("inventory", ActorKind::Service)
            .target(format!("sku/{sku}"))
            .detail(json!({ "reserved": 3 })),
    )
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "sku": sku, "left": 39 })))
}

/// The same layers on both services: request ids, then one api row each.
fn with_layers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .route("/health", get(|| async { "ok" }))
        .layer(fasten::http::layer())
}

/// The environment's settings, with the example's own defaults for the
/// ones it does not set.
fn config() -> fasten::Result<fasten::Config> {
    let unset = |name: &str| std::env::var_os(name).is_none_or(|v| v.is_empty());
    let shop_db =
        |var: &'static str, table: &str| fasten::Dsn::parse_for(var, "sqlite:///shop.db", table);
    let mut config = fasten::Config::from_env()?;
    if unset("FASTEN_SERVICE_ID") {
        config = config.service_id("shop");
    }
    if unset("FASTEN_NODE_ID") {
        config = config.node_id("node-1");
    }
    if unset("FASTEN_CODES") {
        config = config.codes([concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/codes/sales.codes.yaml"
        )]);
    }
    if unset("FASTEN_AUDIT_DSN") {
        config = config.audit_dsn(shop_db("FASTEN_AUDIT_DSN", "audit_log")?);
    }
    if unset("FASTEN_SYS_DSN") {
        config = config.sys_dsn(shop_db("FASTEN_SYS_DSN", "sys_log")?);
    }
    if unset("FASTEN_API_DSN") {
        config = config.api_dsn(shop_db("FASTEN_API_DSN", "api_log")?);
    }
    if unset("FASTEN_STDOUT") {
        config = config.stdout(fasten::Stdout::NONE);
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = config()?.init()?;
    // fasten's layer beside your own logger, which it never replaces.
    tracing_subscriber::registry()
        .with(fasten::sys::layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .init();

    let inventory = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let inventory_url = format!("http://{}", inventory.local_addr()?);
    let inventory_app = with_layers(Router::new().route("/reserve/{sku}", post(reserve)));
    tokio::spawn(async move { axum::serve(inventory, inventory_app).await });

    let serve = std::env::args().any(|a| a == "--serve");
    let listen = match std::env::var("FASTEN_EXAMPLE_LISTEN") {
        Ok(addr) => addr,
        Err(_) if serve => "127.0.0.1:3000".to_owned(),
        Err(_) => "127.0.0.1:0".to_owned(),
    };
    let shop = tokio::net::TcpListener::bind(&listen).await?;
    let shop_url = format!("http://{}", shop.local_addr()?);
    let shop_app = with_layers(Router::new().route("/orders/{order}", post(place_order)))
        .with_state(Shop {
            inventory: inventory_url,
            client: reqwest::Client::new(),
        });
    if serve {
        eprintln!("shop on {shop_url}: curl -i -X POST {shop_url}/orders/42");
        axum::serve(shop, shop_app).await?;
        return Ok(());
    }
    tokio::spawn(async move { axum::serve(shop, shop_app).await });

    let response = reqwest::Client::new()
        .post(format!("{shop_url}/orders/42"))
        .send()
        .await?;
    let id = RequestId::parse(response.headers()["x-request-id"].to_str()?)?;
    eprintln!(
        "POST /orders/42 -> {} x-request-id: {id}",
        response.status()
    );
    // Let the spawned mail task log before reading back.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let fasten = guard.fasten().clone();
    fasten.flush(Duration::from_secs(5))?;
    fasten.flush_streams(Duration::from_secs(5))?;
    // The request's rows from the three streams, in time order: what
    // `GET /correlate?request_id=` and `fasten correlate` answer.
    let timeline = fasten::Reader::from_pipeline(&fasten).correlate(&id)?;
    eprintln!(
        "request {id}: sys rows from the {:?}, api rows from the {:?}",
        timeline.sys_source, timeline.api_source
    );
    for entry in &timeline.entries {
        match entry {
            Entry::Audit(r) => eprintln!(
                "  audit {} {} actor={} target={} method={}",
                r.timestamp, r.code, r.actor, r.target, r.method
            ),
            Entry::Api(r) => eprintln!(
                "  api   {} {} {} {} {:.2} ms actor={}",
                r.timestamp,
                r.method,
                r.route,
                r.status,
                r.duration_ms,
                r.actor.as_deref().unwrap_or("-")
            ),
            Entry::Sys(r) => eprintln!(
                "  sys   {} {} {} {}",
                r.timestamp, r.level, r.target, r.message
            ),
            _ => {}
        }
    }
    let dsn = fasten.dsn().clone();
    guard.shutdown(Duration::from_secs(5))?;
    let report = fasten::verify(&dsn)?;
    eprintln!(
        "audit chain in {dsn}: {} rows, {}; the same timeline: `fasten correlate {id}`",
        report.nodes.iter().map(|n| n.rows).sum::<u64>(),
        if report.ok { "intact" } else { "BROKEN" }
    );
    Ok(())
}
