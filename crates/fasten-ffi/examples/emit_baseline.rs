//! The Rust side of the C++ emit benchmark: `Fasten::emit` called from Rust
//! with the same engine settings, event and detail as `bench_emit.cpp`.
//! Prints one line, `rust_emit p50_ns=… p99_ns=… n=…`, which the C++
//! benchmark reads to print its ratios in the same run.
//!
//! `cargo run --release -p fasten-ffi --example emit_baseline -- <db path> <n>`

#![allow(clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use fasten::{ActorKind, Config, Event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().ok_or("usage: emit_baseline <db path> <n>")?;
    let n: usize = args
        .next()
        .ok_or("usage: emit_baseline <db path> <n>")?
        .parse()?;
    let fasten = Config::from_pairs([
        ("FASTEN_SERVICE_ID", "bench"),
        ("FASTEN_NODE_ID", "node-rust"),
        ("FASTEN_AUDIT_DSN", &format!("sqlite:///{db}")),
        ("FASTEN_STDOUT", "none"),
        ("FASTEN_AUDIT_QUEUE_CAPACITY", "262144"),
    ])?
    .build()?;
    fasten.registry().load_str(
        "sales.codes.yaml",
        "domain: sales\ncodes:\n  ORDER_PLACED: { category: order, action: create }\n",
    )?;
    let warmup = n / 10;
    let mut times = Vec::with_capacity(n);
    for i in 0..(warmup + n) {
        let start = Instant::now();
        let event = Event::new("ORDER_PLACED")
            .actor("alice", ActorKind::User)
            .target("order/42")
            .detail(serde_json::json!({ "qty": i, "sku": "WIDGET" }));
        std::hint::black_box(fasten.emit(event)?);
        let took = start.elapsed();
        if i >= warmup {
            times.push(took);
        }
    }
    fasten.flush(Duration::from_secs(60))?;
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_nanos();
    println!("rust_emit p50_ns={} p99_ns={} n={n}", pct(0.50), pct(0.99));
    Ok(())
}
