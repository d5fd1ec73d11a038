//! fasten's integration tests that need dependencies the published `fasten`
//! crate should not carry, even as dev-dependencies: `lapin` (the AMQP
//! request-id shim, `examples/amqp_shim.rs`, against RabbitMQ) and
//! `tokio-cron-scheduler` (runs fired by a cron scheduler). Not published;
//! `cargo test --workspace --all-features` runs them with the rest. The
//! library itself is empty.
