//! The service of the README's "Add fasten to your service", in full.

use std::time::Duration;

use axum::{Router, extract::Path, http::StatusCode, routing::post};
use fasten::Event;
use tracing_subscriber::{EnvFilter, prelude::*};

async fn change_plan(Path(customer): Path<String>) -> Result<StatusCode, (StatusCode, String)> {
    // Who is calling: set it once, in your authentication layer or here.
    // It applies to this request's api row and to every audit row it emits.
    if !fasten::http::set_actor("alice") {
        tracing::warn!("no request scope: is fasten::http::layer() installed?");
    }
    tracing::info!(%customer, "changing plan"); // a sys row with the request's id
    fasten::emit(
        Event::new("PLAN_CHANGED")
            .target(format!("customer/{customer}"))
            .detail(serde_json::json!({ "plan": "pro" })),
    )
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // FASTEN_SERVICE_ID, FASTEN_NODE_ID, FASTEN_CODES, FASTEN_AUDIT_DSN …
    // Keep the guard: dropping it flushes and stops the writer.
    let guard = fasten::init()?;
    tracing_subscriber::registry()
        .with(fasten::sys::layer()) // the sys stream, at FASTEN_SYS_LEVEL
        .with(tracing_subscriber::fmt::layer().with_filter(EnvFilter::from_default_env())) // your console, at RUST_LOG
        .init();

    let app = Router::new()
        .route("/customers/{id}/plan", post(change_plan))
        .layer(fasten::http::layer()); // request ids, then one api row per request
    let addr = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;

    // Every row emitted so far is committed before the process exits.
    guard
        .fasten()
        .shutdown_async(Duration::from_secs(5))
        .await?;
    Ok(())
}
