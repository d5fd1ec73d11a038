//! Integration tests: the public API against real SQLite files, several OS
//! processes, and SIGKILL.

// Helpers outside #[test] fns panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

mod adversary;
#[cfg(all(feature = "http-reader", feature = "tracing"))]
mod agent;
mod checkpoints;
mod crash;
#[cfg(feature = "postgres")]
mod fleet;
mod foreign;
mod multiprocess;
#[cfg(all(
    feature = "otel",
    feature = "otlp",
    feature = "http",
    feature = "tracing"
))]
mod otel;
#[cfg(feature = "postgres")]
mod pg_tls;
mod pipeline;
#[cfg(feature = "postgres")]
mod postgres;
mod process_id;
#[cfg(all(feature = "http-reader", feature = "tracing"))]
mod reader;
#[cfg(feature = "http")]
mod readme;
mod retention;
mod runtimes;
#[cfg(all(feature = "tracing", feature = "http"))]
mod scheduler;
#[cfg(feature = "tracing")]
mod streams;
mod support;
#[cfg(all(feature = "http", feature = "mqtt", feature = "nats"))]
mod transports;
