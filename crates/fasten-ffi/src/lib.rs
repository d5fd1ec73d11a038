//! The C ABI of fasten: the one engine under the C++, Go and Swift
//! bindings. The header is `include/fasten.h`, generated from this crate by
//! cbindgen and checked in.
//!
//! The rules every entry point keeps:
//!
//! - It returns a status (`FASTEN_OK` or a `FASTEN_ERR_*` code); on failure
//!   `fasten_last_error` holds a message for this thread naming the field
//!   and the rule, and `fasten_last_error_field` the field.
//! - It catches panics: none crosses the boundary (`FASTEN_ERR_PANIC`).
//! - Strings in are `fasten_str`: UTF-8 with an explicit length, borrowed
//!   for the call only. Strings out are fresh NUL-terminated buffers with a
//!   length, owned by the caller and released with `fasten_free`.
//! - Handles (`fasten_engine`, `fasten_reader`) are opaque, thread-safe,
//!   and released with their own `*_free`.
//!
//! Every rule about rows (validation, redaction, hashing, the chain, the
//! reader's queries) is the `fasten` crate's; this crate only converts.

mod abi;
mod agent;
mod context;
mod contract;
mod engine;
mod mqtt;
mod reader;

pub use abi::*;
pub use agent::*;
pub use context::*;
pub use contract::*;
pub use engine::*;
pub use mqtt::*;
pub use reader::*;
