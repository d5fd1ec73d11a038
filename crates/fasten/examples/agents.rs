//! Two AI agents, one request id: agent A plans with a model and hands the
//! work to agent B over HTTP; B calls two tools (one fails) and a model.
//! Every call is a typed audit row with its duration, outcome, error and
//! cost, and the request id threads them all.
//!
//! ```sh
//! cargo run -p fasten --features http --example agents
//! export FASTEN_AUDIT_DSN=sqlite:///agents.db FASTEN_API_DSN=sqlite:///agents.db
//! fasten correlate <the request id it prints>
//! fasten report --code TOOL_CALLED --sum detail.cost_usd --by actor
//! fasten report --sum detail.cost_usd --by actor
//! ```
//!
//! The models and tools are stand-ins that report made-up costs; swap in
//! your own client calls. `tests/agents.rs` of the CLI runs [`demo`] and
//! checks what `fasten correlate` and `fasten report` print.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use fasten::{ActorKind, Fasten, RequestId};

/// What the agents' calls return when they fail.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Agent B's HTTP endpoint: research a question with two tools and a model.
async fn research(State(fasten): State<Fasten>, question: String) -> String {
    let agent = |call: fasten::agent::Call| call.actor("agent-b", ActorKind::Agent).via(&fasten);
    let hits: Result<Vec<String>, BoxError> =
        agent(fasten::agent::tool_call("search_web").target("web"))
            .run(|usage| async move {
                usage.cost_usd(0.003);
                Ok(vec![format!("https://example.org/{}", question.len())])
            })
            .await;
    let url = hits
        .as_ref()
        .ok()
        .and_then(|h| h.first().cloned())
        .unwrap_or_default();
    // The page fetch fails; B carries on with what it has. Its row says
    // failure, with the error, and the cost that was still charged.
    let page: Result<String, BoxError> = agent(fasten::agent::tool_call("fetch_page").target(url))
        .run(|usage| async move {
            usage.cost_usd(0.001);
            Err("timed out after 2000 ms".into())
        })
        .await;
    let answer: Result<String, BoxError> = agent(fasten::agent::model_call("small-model"))
        .run(|usage| async move {
            usage.cost_usd(0.004).tokens(900, 150);
            Ok(format!(
                "{} hits, page {}",
                hits.map_or(0, |h| h.len()),
                if page.is_ok() { "read" } else { "unavailable" }
            ))
        })
        .await;
    answer.unwrap_or_else(|e| format!("no answer: {e}"))
}

/// Agent B as an axum service on a free port, with fasten's HTTP layers
/// (the request id from `X-Request-ID`, one api row a request). Returns its
/// URL.
///
/// # Errors
///
/// When the port cannot be bound.
pub async fn start_agent_b(fasten: &Fasten) -> Result<String, BoxError> {
    let app = Router::new()
        .route("/research", post(research))
        .layer(fasten.http_layer())
        .with_state(fasten.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Agent A: one request from start to end. It plans with a model, then
/// hands the question to agent B over HTTP (the request id goes along in
/// `X-Request-ID`). Returns the request id.
///
/// # Errors
///
/// When agent B cannot be started or reached, or a row cannot be written.
pub async fn demo(fasten: &Fasten) -> Result<RequestId, BoxError> {
    let b = start_agent_b(fasten).await?;
    let id = RequestId::mint();
    let agent = |call: fasten::agent::Call| call.actor("agent-a", ActorKind::Agent).via(fasten);
    fasten::context::scope(id.clone(), async move {
        let plan: String = agent(fasten::agent::model_call("large-model"))
            .run(|usage| async move {
                usage.cost_usd(0.012).tokens(1200, 80);
                Ok::<_, BoxError>("ask agent-b to research fasten".to_owned())
            })
            .await?;
        let client = reqwest::Client::new();
        let answer: String = agent(fasten::agent::handoff("agent-b"))
            .run(|_| async move {
                let res = client
                    .post(format!("{b}/research"))
                    .headers(fasten::http::outbound_headers())
                    .body(plan)
                    .send()
                    .await?
                    .error_for_status()?;
                Ok::<_, BoxError>(res.text().await?)
            })
            .await?;
        eprintln!("agent-b answered: {answer}");
        Ok::<_, BoxError>(())
    })
    .await?;
    fasten.flush(Duration::from_secs(5))?;
    fasten.flush_streams(Duration::from_secs(5))?;
    Ok(id)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let db =
        |var: &'static str, table: &str| fasten::Dsn::parse_for(var, "sqlite:///agents.db", table);
    let guard = fasten::Config::from_env()?
        .service_id("agents")
        .node_id("node-1")
        .audit_dsn(db("FASTEN_AUDIT_DSN", "audit_log")?)
        .api_dsn(db("FASTEN_API_DSN", "api_log")?)
        .stdout(fasten::Stdout::NONE)
        .init()?;
    let id = demo(guard.fasten()).await?;
    guard.shutdown(Duration::from_secs(5))?;
    eprintln!("request {id}: see it with");
    eprintln!("  export FASTEN_AUDIT_DSN=sqlite:///agents.db FASTEN_API_DSN=sqlite:///agents.db");
    eprintln!("  fasten correlate {id}");
    eprintln!("  fasten report --code TOOL_CALLED --sum detail.cost_usd --by actor");
    Ok(())
}
