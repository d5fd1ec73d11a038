//! The Rust side of the cross-language tests: emits one `ORDER_PLACED` row
//! (actor alice/user, target order/42, detail `{"qty":3,"sku":"WIDGET"}`)
//! durably into a store and prints the sealed row as JSON. The C++ and Go
//! tests emit the same event through the ABI into the same store and
//! compare.
//!
//! `cargo run -p fasten-ffi --example emit_one -- <dsn> <node id> <request id>`

#![allow(clippy::print_stdout, missing_docs)]

use fasten::{ActorKind, Config, Event, RequestId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dsn, node, request_id] = args.as_slice() else {
        return Err("usage: emit_one <dsn> <node id> <request id>".into());
    };
    let fasten = Config::from_pairs([
        ("FASTEN_SERVICE_ID", "xlang"),
        ("FASTEN_NODE_ID", node.as_str()),
        ("FASTEN_AUDIT_DSN", dsn.as_str()),
        ("FASTEN_STDOUT", "none"),
    ])?
    .build()?;
    fasten.registry().load_str(
        "sales.codes.yaml",
        "domain: sales\ncodes:\n  ORDER_PLACED: { category: order, action: create }\n",
    )?;
    let row = fasten.emit_durable(
        Event::new("ORDER_PLACED")
            .actor("alice", ActorKind::User)
            .target("order/42")
            .request_id(RequestId::parse(request_id)?)
            .detail(serde_json::json!({ "qty": 3, "sku": "WIDGET" })),
    )?;
    println!("{}", serde_json::to_string(&row)?);
    fasten.shutdown(std::time::Duration::from_secs(10))?;
    Ok(())
}
