//! fasten: a typed, hash-chained, tamper-evident audit trail that lives in
//! your process.
//!
//! Call [`init`] once (configured by `FASTEN_*` environment variables) and
//! [`emit`] at each change that matters. fasten checks the event against a
//! registry of codes, redacts secrets from its detail, queues it, and a
//! background writer seals it into a per-node hash chain (form 3 of the row
//! contract) in one SQLite file, in batches, one transaction each.
//!
//! ```no_run
//! use fasten::{code::Meta, ActorKind, Event};
//! fasten::register("iam", [("USER_UPDATED", Meta::new("user", "update"))])?;
//! let _fasten = fasten::init()?; // FASTEN_SERVICE_ID, FASTEN_NODE_ID, FASTEN_AUDIT_DSN …
//! fasten::emit(Event::new("USER_UPDATED").actor("u-1", ActorKind::User).target("cust-42")
//!     .detail(serde_json::json!({ "plan": "pro" })))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Environment
//!
//! Every `FASTEN_*` variable, its default and its meaning are listed once,
//! in [`env::VARIABLES`] (printed in `docs/environment.md`). [`Config`]
//! reads them from the process ([`Config::from_env`]) or from explicit
//! pairs ([`Config::from_pairs`]), and [`env::unknown`] names the ones that
//! look like typos.
//!
//! # Feature flags
//!
//! - `sqlite` (default): the embedded SQLite store.
//! - `postgres`: PostgreSQL, for many nodes writing one table.
//! - `tracing` (default): the sys stream's layer (`fasten::sys::layer`)
//!   and `fasten::context::SpanLayer`, so a `request_id` field on a
//!   `tracing` span becomes the ambient request id.
//! - `http`: tower layers for request ids over HTTP and the api stream
//!   (the `fasten::http` module).
//! - `mqtt`: request ids over MQTT v5 on rumqttc (the `fasten::mqtt` module).
//! - `nats`: request ids over NATS headers on async-nats, core and JetStream
//!   (the `fasten::nats` module).
//! - `http-reader`: the mountable HTTP reader (the `fasten::http_reader`
//!   module), with `http`.
//! - `tokio`: `fasten::spawn`, a `tokio::spawn` that keeps the request's
//!   context (on with `http` and `postgres`).
//! - `otel`: OpenTelemetry's context (the `opentelemetry` API crate): an
//!   active span's trace id is the ambient request id, and spans started
//!   inside a fasten scope join its trace (see [`context::trace`]).
//! - `otlp`: export the three streams as OpenTelemetry log records over
//!   OTLP/HTTP (`FASTEN_OTLP_ENDPOINT`), from a background thread that
//!   never blocks emit ([`Fasten::otlp_stats`]).
//! - `witness`: POST each signed checkpoint to the HTTP witness named by
//!   `FASTEN_CHECKPOINT_WITNESS_URL` (ureq). Off by default, so a build
//!   without a witness compiles no HTTP or TLS client; without it, setting
//!   the URL is a configuration error.
//! - `ship-http`: ship to a central store's ingest URL (`FASTEN_SHIP_TO=https://…`,
//!   see [`ship`]), on ureq. Shipping straight to PostgreSQL needs `postgres`.
//!
//! fasten turns on `serde_json`'s `float_roundtrip` feature, and Cargo
//! unifies features, so it is on for every crate of your build that uses
//! `serde_json`. fasten needs it: a detail's numbers are hashed in their
//! canonical (RFC 8785) form, and a float that did not parse back to the
//! same `f64` would give a stored row a different hash when verified. It
//! makes float parsing exact and somewhat slower; it changes no output.
//!
//! Scheduled jobs ([`scheduler`]) need no feature; a custom transport is a
//! few lines over [`context::scope_via`] (see `examples/amqp_shim.rs` in the repository's unpublished `fasten-it` crate).
//!
//! # Three streams
//!
//! Audit rows are chained and durable. The sys and api streams carry the
//! same request id but are neither: each keeps a ring in memory, writes
//! JSON lines to stdout and, opt-in, a table, from a background thread,
//! shedding (counted and reported) rather than slowing a request. Read them
//! back with [`Fasten::sys_rows`] and [`Fasten::api_rows`].
//!
//! # Durability
//!
//! In the default `retry` mode, `emit` returns once the row is queued and
//! the writer retries the store until it commits; [`flush`] returns once
//! everything emitted before it is committed with `synchronous=FULL`. In
//! `raise` mode (`FASTEN_AUDIT_STORE_FAILURE_STRATEGY=raise`) `emit` itself
//! returns only after the commit, so an acknowledged row survives a crash.
//!
//! # Async code
//!
//! Every call works from synchronous code and from any async runtime,
//! `current_thread` included, on both stores. What may block:
//!
//! | call | on an executor thread |
//! |---|---|
//! | [`emit`], [`Fasten::emit`] in `retry` mode (the default) | fine: it queues; it waits only while the queue is full, at most `FASTEN_AUDIT_QUEUE_TIMEOUT_MS` |
//! | `emit` in `raise` mode, [`emit_durable`], [`flush`], [`Fasten::shutdown`] | blocks until a commit: use [`Fasten::emit_async`], [`Fasten::emit_durable_async`], [`Fasten::flush_async`], [`Fasten::shutdown_async`] |
//! | [`Reader`] calls | block on the store: use [`AsyncReader`] |
//! | `fasten::http_reader::router` (feature `http-reader`) | already runs reads off the executor |
//!
//! Work spawned from a request keeps its id, actor and tenant with
//! `fasten::spawn` (feature `tokio`) or `.in_current_context()`
//! ([`context::FutureExt`]); a plain `tokio::spawn` starts without them.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.89.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod agent;
mod canonical;
mod chain;
mod checkpoint;
mod checkpointer;
pub mod code;
mod config;
pub mod context;
pub mod contract;
mod detail;
mod dsn;
pub mod env;
mod error;
mod event;
mod global;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "http-reader")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-reader")))]
pub mod http_reader;
mod kind;
#[cfg(test)]
mod layering;
mod merkle;
#[cfg(feature = "mqtt")]
#[cfg_attr(docsrs, doc(cfg(feature = "mqtt")))]
pub mod mqtt;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
mod offload;
#[cfg(feature = "otlp")]
mod otlp;
mod pipeline;
pub mod query;
mod quiet;
pub mod record;
mod redact;
mod request_id;
pub mod retention;
pub mod scheduler;
pub mod ship;
mod store;
mod stream;
pub mod summary;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod sys;
mod tap;
mod trace_context;
pub mod transparency;
mod typed;
mod verify;
mod writer;

pub use chain::Row;
pub use config::{Config, FailureStrategy, ShipStreams, Stdout};
#[cfg(feature = "tokio")]
pub use context::spawn;
pub use dsn::Dsn;
pub use error::{Error, ErrorKind, Result};
pub use event::{Event, EventId};
pub use global::{
    GUARD_DROP_TIMEOUT, Guard, emit, emit_durable, erase_subject, flush, init, queue_stats,
    register, sweep,
};
pub use kind::{ActorKind, Method, Outcome, ParseKindError, RetentionClass, Severity};
pub use pipeline::Fasten;
pub use query::{AsyncReader, AuditPage, AuditQuery, Reader};
pub use request_id::RequestId;
pub use stream::{ApiRow, Source, StreamPage, StreamQuery, StreamStats, SysRow};
pub use tap::ExportStats;
pub use typed::CodeSpec;
pub use verify::{NodeReport, Progress, Report, verify, verify_with_progress};
pub use writer::{QueueStats, ShutdownReport, StoreHealth};
