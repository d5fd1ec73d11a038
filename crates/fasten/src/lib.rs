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
//! | variable | default | meaning |
//! |---|---|---|
//! | `FASTEN_SERVICE_ID` | required | the emitting service |
//! | `FASTEN_NODE_ID` | required | the node; each node has its own chain |
//! | `FASTEN_TENANT_ID` | none | default tenant of every row |
//! | `FASTEN_AUDIT_DSN` | `sqlite:///fasten_audit.db` | `sqlite:///relative.db`, `sqlite:////abs/path.db`, `postgres://user:pw@host/db`; `?table=[schema.]NAME` |
//! | `FASTEN_CODES` | none | comma-separated `*.codes.yaml` files |
//! | `FASTEN_REDACT_KEYS` | none | extra key names to redact |
//! | `FASTEN_MAX_DETAIL_BYTES` | 65536 | larger details become a summary |
//! | `FASTEN_AUDIT_QUEUE_CAPACITY` | 16384 | rows queued before emit blocks |
//! | `FASTEN_AUDIT_QUEUE_TIMEOUT_MS` | 1000 | how long emit blocks on a full queue |
//! | `FASTEN_AUDIT_BATCH_SIZE` | 2048 | most rows per transaction |
//! | `FASTEN_AUDIT_STORE_FAILURE_STRATEGY` | `retry` | `retry` or `raise` (emit returns once durable) |
//! | `FASTEN_AUDIT_MAX_RETRIES` | 5 | store attempts in `raise` mode |
//! | `FASTEN_SIGNING_KEY` | none | sign checkpoints with this `fasten keygen` key ([`transparency`]) |
//! | `FASTEN_CHECKPOINT_EVERY` | 1000 | sign after this many new rows |
//! | `FASTEN_CHECKPOINT_INTERVAL` | `1s` | or after this long with new rows, and at flush and shutdown |
//! | `FASTEN_CHECKPOINT_DIR` | none | also publish checkpoints as files here |
//! | `FASTEN_CHECKPOINT_WITNESS_URL` | none | also POST checkpoints to this witness |
//! | `FASTEN_SYS_RING_SIZE`, `FASTEN_API_RING_SIZE` | 10000 | stream rows kept in memory |
//! | `FASTEN_STDOUT` | `sys,api` | streams written to stdout as JSON lines (`all`, `none`, …) |
//! | `FASTEN_SYS_DSN`, `FASTEN_API_DSN` | none | also store stream rows (`sys_log`, `api_log`) |
//! | `FASTEN_STREAM_QUEUE_CAPACITY` | 8192 | stream rows queued before they are shed (counted) |
//! | `FASTEN_SYS_LEVEL` | `info` | least severe level of the sys stream |
//! | `FASTEN_API_SKIP_PATHS` | none | paths without api rows |
//! | `FASTEN_AUDIT_RETENTION_CLASS_SHORT` | 30 | days `short` rows keep their detail ([`retention`]) |
//! | `FASTEN_AUDIT_RETENTION_CLASS_MEDIUM` | 180 | days for `medium`, the default class |
//! | `FASTEN_AUDIT_RETENTION_CLASS_LONG` | 1095 | days for `long` |
//! | `FASTEN_AUDIT_RETENTION_OVERRIDE` | none | `long=7y,medium=1y` (units d, w, m, y) |
//! | `FASTEN_RETENTION_SWEEP_INTERVAL` | `6h` | background retention sweep (`30m`, `1d` …), or `off` |
//! | `FASTEN_AUDIT_LEGAL_HOLD` | none | codes whose rows are never erased |
//! | `FASTEN_AUDIT_LEGAL_HOLD_TENANTS` | none | tenants whose rows are never erased |
//! | `FASTEN_API_RETENTION_DAYS` | none | days api stream rows are kept |
//! | `FASTEN_SYS_RETENTION_DAYS` | none | days sys stream rows are kept |
//! | `FASTEN_REQUEST_ID` | none | the process's default ambient request id (`fasten run` sets it) |
//!
//! # Feature flags
//!
//! - `sqlite` (default): the embedded SQLite store.
//! - `postgres`: PostgreSQL, for many nodes writing one table.
//! - `tracing` (default): the sys stream's layer ([`sys::layer`]) and
//!   [`context::SpanLayer`], so a `request_id` field on a `tracing` span
//!   becomes the ambient request id.
//! - `http`: tower layers for request ids over HTTP and the api stream
//!   (the `fasten::http` module).
//! - `mqtt`: request ids over MQTT v5 on rumqttc (the `fasten::mqtt` module).
//! - `nats`: request ids over NATS headers on async-nats, core and JetStream
//!   (the `fasten::nats` module).
//!
//! Scheduled jobs ([`scheduler`]) need no feature; a custom transport is a
//! few lines over [`context::scope_via`] (see `examples/amqp_shim.rs`).
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
//! # Supported Rust versions
//!
//! The minimum supported Rust version is 1.89.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod canonical;
mod chain;
mod checkpoint;
mod checkpointer;
pub mod code;
mod config;
pub mod context;
mod detail;
mod dsn;
mod error;
mod event;
mod global;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod kind;
mod merkle;
#[cfg(feature = "mqtt")]
#[cfg_attr(docsrs, doc(cfg(feature = "mqtt")))]
pub mod mqtt;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
mod pipeline;
pub mod read;
#[cfg(feature = "reader")]
#[cfg_attr(docsrs, doc(cfg(feature = "reader")))]
pub mod reader;
mod redact;
mod request_id;
pub mod retention;
pub mod scheduler;
mod store;
mod stream;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod sys;
pub mod transparency;
mod verify;
mod writer;

pub use chain::Row;
pub use config::*;
pub use dsn::Dsn;
pub use error::{Error, ErrorKind, Result};
pub use event::{Event, EventId};
pub use global::{
    GUARD_DROP_TIMEOUT, Guard, emit, emit_durable, erase_subject, flush, init, queue_stats,
    register, sweep,
};
pub use kind::{ActorKind, Method, Outcome, ParseKindError, RetentionClass, Severity};
pub use pipeline::Fasten;
pub use read::{AuditPage, AuditQuery, Reader};
pub use request_id::RequestId;
pub use stream::{ApiRow, Source, StreamPage, StreamQuery, StreamStats, SysRow};
pub use verify::{NodeReport, Progress, Report, verify, verify_with_progress};
pub use writer::{QueueStats, ShutdownReport, StoreHealth};
