//! The sys and api streams: application log rows and HTTP access rows that
//! carry the same `request_id` as the audit rows of a request.
//!
//! Unlike audit rows, stream rows are **not** hash-chained and never
//! presented as tamper-evident, and a stream sheds load rather than block
//! the request path. Each stream is a [`Lane`]:
//!
//! - a ring buffer in memory (`FASTEN_SYS_RING_SIZE`,
//!   `FASTEN_API_RING_SIZE`), always current, for the reader;
//! - a bounded queue to one background thread that writes JSON lines to
//!   stdout (`FASTEN_STDOUT`) and, when `FASTEN_SYS_DSN` / `FASTEN_API_DSN`
//!   is set, inserts batches into a table (`sys_log`, `api_log`).
//!
//! Pushing a row costs a mutex-guarded ring insert and a non-blocking
//! channel send. When the queue is full the row is counted as dropped (it
//! is still in the ring), and the thread writes one explicit
//! `"N rows dropped"` row into the stream as soon as it catches up.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dsn::Dsn;
use crate::error::{Error, ErrorKind, Result};
use crate::request_id::RequestId;
use crate::store::stream::{self as table, Col, ColType, StreamStore};

/// Rows written to a stream store in one transaction, at most.
const BATCH: usize = 1024;

mod lane;
mod lanes;
mod query;
mod row;
#[cfg(test)]
mod tests;

pub use self::lane::*;
pub use self::lanes::*;
pub use self::query::*;
pub use self::row::*;
