#![allow(missing_docs, clippy::print_stdout)]
use std::time::{Duration, Instant};
use fasten::code::{Meta, Registry};
use fasten::{Config, Dsn, Event};
use serde_json::json;
fn main() {
    let registry = Registry::new();
    registry.register("sales", [("ORDER_PLACED", Meta::new("order", "create"))]).unwrap();
    let f = Config::new().service_id("b").node_id("n").audit_dsn(Dsn::parse("X", "sqlite:////tmp/prof/p.db").unwrap())
        .audit_queue_capacity(400_000).registry(registry).build().unwrap();
    let n = 300_000u64;
    let t = Instant::now();
    for i in 0..n {
        f.emit(Event::new("ORDER_PLACED").target("order/42").detail(json!({"qty": i, "sku": "WIDGET"}))).unwrap();
    }
    let e = t.elapsed();
    println!("avg emit {:.0} ns", e.as_nanos() as f64 / n as f64);
    f.flush(Duration::from_secs(300)).unwrap();
    println!("total {:?}", t.elapsed());
}
