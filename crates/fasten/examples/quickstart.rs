//! The five-minute tour: configure from the environment, emit typed events
//! under one request id, flush, and verify the chain.
//!
//! ```sh
//! FASTEN_SERVICE_ID=shop FASTEN_NODE_ID=node-1 \
//! FASTEN_AUDIT_DSN=sqlite:///quickstart.db \
//! FASTEN_CODES=crates/fasten/examples/codes/sales.codes.yaml \
//!   cargo run -p fasten --example quickstart
//! ```

use std::time::Duration;

use fasten::{ActorKind, Event, Outcome, RequestId, context};
use serde_json::json;

/// The typed codes of sales.codes.yaml, written by
/// `fasten gen --lang rust --out crates/fasten/examples/codes/sales.rs crates/fasten/examples/codes/sales.codes.yaml`.
mod codes {
    include!("codes/sales.rs");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Start-up fails if sales.codes.yaml no longer matches the generated codes.
    let guard = fasten::Config::from_env()?
        .expect_codes(codes::ALL)
        .init()?;

    // One request: every row it produces shares this id.
    let request = RequestId::mint();
    context::with(request.clone(), || -> fasten::Result<()> {
        fasten::emit(
            Event::new(codes::ORDER_PLACED)
                .actor("alice", ActorKind::User)
                .target("order/42")
                .detail(json!({ "sku": "WIDGET", "qty": 3, "api_key": "never stored" })),
        )?;
        fasten::emit(
            Event::new(codes::CARD_UPDATED)
                .actor("alice", ActorKind::User)
                .target("customer/7")
                .detail(json!({ "last4": "4242", "holder": "Alice Example" })),
        )?;
        fasten::emit(
            Event::new(codes::ORDER_CANCELLED)
                .actor("alice", ActorKind::User)
                .target("order/42")
                .outcome(Outcome::Denied),
        )?;
        Ok(())
    })?;

    // Everything emitted so far is now durable.
    fasten::flush(Duration::from_secs(5))?;
    let stats = fasten::queue_stats().expect("initialised");
    eprintln!(
        "request {request}: {} rows written in {} batches, {} secrets redacted",
        stats.written, stats.batches, stats.redactions
    );
    let dsn = guard.fasten().dsn().clone();
    guard.shutdown(Duration::from_secs(5))?;

    let report = fasten::verify(&dsn)?;
    for node in &report.nodes {
        eprintln!(
            "chain {}: {} rows, {}",
            node.source_node_id,
            node.rows,
            if report.ok { "intact" } else { "BROKEN" }
        );
    }
    Ok(())
}
