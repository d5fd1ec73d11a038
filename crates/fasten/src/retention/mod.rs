//! Retention, erasure on request and legal hold, without breaking the chain.
//!
//! Deleting an audit row's content means erasing its `detail` and
//! `detail_salt` (row contract §2): the hashed skeleton stays, so the chain
//! still verifies and [`verify`](crate::verify) counts the row as erased.
//! Who did what to whom stays provable; what the detail said is gone.
//!
//! # Retention classes
//!
//! Each code has a [`RetentionClass`] (declared in its [`Meta`](crate::code::Meta)):
//!
//! | class | default | variable |
//! |---|---|---|
//! | `short` | 30 days | `FASTEN_AUDIT_RETENTION_CLASS_SHORT` (whole days) |
//! | `medium` | 180 days | `FASTEN_AUDIT_RETENTION_CLASS_MEDIUM` |
//! | `long` | 3 × 365 days | `FASTEN_AUDIT_RETENTION_CLASS_LONG` |
//!
//! `FASTEN_AUDIT_RETENTION_OVERRIDE` sets several at once:
//!
//! ```text
//! override = entry *( "," entry )        ; spaces around entries are ignored
//! entry    = class "=" number unit       ; no spaces inside an entry
//! class    = "short" / "medium" / "long" ; each at most once
//! number   = 1*DIGIT                     ; at least 1
//! unit     = "d" / "w" / "m" / "y"       ; day, 7 days, 30 days, 365 days
//! ```
//!
//! e.g. `long=7y,medium=1y`. An age is at most 36500 days. When a class is
//! set both here and by its own `FASTEN_AUDIT_RETENTION_CLASS_*`, the
//! override wins, and the pipeline says so once when it starts.
//!
//! A stored row's class comes from its code in the sweeping pipeline's
//! registry. A row whose code that registry does not declare (another
//! service's, or a code since removed) is never erased: the sweep counts it
//! as held back ([`HoldReason::UnknownCode`]). A row with `pii_in_detail` is
//! always `short`. A pipeline's sweep covers only its own `service_id`'s
//! rows unless [`SweepOptions::all_services`] says otherwise (`fasten sweep
//! --all-services`), so two services sharing a store never judge each
//! other's rows.
//! A row is due when its `timestamp` plus its class's age is at or before the
//! sweep's clock: a `short` row sealed at noon on day 0 is erased by the first
//! sweep at or after noon on day 30, never before.
//!
//! # The sweep
//!
//! [`Fasten::sweep`] erases the detail of every due row of the store, all
//! nodes, in transactions of at most [`SweepOptions::batch_size`] rows
//! (1000). It starts at 100 and sizes each next batch to hold the store for
//! about 10 ms at the rate just seen (50 rows at least, at most double the
//! last), pausing after each for as long as it held the store, so the
//! writer waits at most one short transaction. Then it appends one chained [`AUDIT_RETENTION_SWEPT`] event
//! whose detail says how many rows of which codes and which seq ranges were
//! erased, and what was held back. It keeps:
//!
//! - rows of codes under legal hold (`FASTEN_AUDIT_LEGAL_HOLD=CODE,CODE`)
//!   and of tenants under legal hold (`FASTEN_AUDIT_LEGAL_HOLD_TENANTS=t1,t2`);
//! - on a node that ships its rows to an aggregator (a node with at least one
//!   row whose `shipped_at` is set), every row not shipped yet.
//!
//! A pipeline sweeps in the background every `FASTEN_RETENTION_SWEEP_INTERVAL`
//! (default `6h`; `30m`, `6h`, `1d` …; `off` turns it off). The first
//! background sweep is due one interval after the node's last
//! [`AUDIT_RETENTION_SWEPT`] event, or after its first row when it has none,
//! so services that restart often still sweep; a new, empty store waits one
//! interval. `fasten sweep [--dry-run]` runs one sweep from a shell.
//!
//! # Erasure on request
//!
//! [`Fasten::erase_subject`] (and `fasten erase --actor X | --target X`)
//! erases the detail of every row whose actor (or target) is the subject, on
//! every node, except rows under legal hold (GDPR art. 17(3)(e)) and the
//! built-in retention events themselves, whose detail holds no subject data.
//! Then it appends a chained [`AUDIT_SUBJECT_ERASED`] event: its actor is
//! who asked, its target the subject (the erased rows keep that anchor in
//! their hashed skeleton anyway), its detail the reason and the counts,
//! never what the erased details held. Unshipped rows are erased too: a
//! request is not deferred until an aggregator has a copy.
//!
//! # Stream stores
//!
//! `FASTEN_API_RETENTION_DAYS` and `FASTEN_SYS_RETENTION_DAYS` say how many
//! days rows stay in the (unchained) api and sys stream stores;
//! [`prune_stream`] deletes older rows from such a table.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use crate::code::Registry;
pub use crate::code::{AUDIT_RETENTION_SWEPT, AUDIT_SUBJECT_ERASED};
use crate::config::Config;
use crate::dsn::Dsn;
use crate::env::{
    FASTEN_API_RETENTION_DAYS, FASTEN_AUDIT_LEGAL_HOLD, FASTEN_AUDIT_LEGAL_HOLD_TENANTS,
    FASTEN_AUDIT_RETENTION_CLASS_LONG, FASTEN_AUDIT_RETENTION_CLASS_LONG_DEFAULT,
    FASTEN_AUDIT_RETENTION_CLASS_MEDIUM, FASTEN_AUDIT_RETENTION_CLASS_MEDIUM_DEFAULT,
    FASTEN_AUDIT_RETENTION_CLASS_SHORT, FASTEN_AUDIT_RETENTION_CLASS_SHORT_DEFAULT,
    FASTEN_AUDIT_RETENTION_OVERRIDE, FASTEN_RETENTION_SWEEP_INTERVAL,
    FASTEN_RETENTION_SWEEP_INTERVAL_DEFAULT, FASTEN_SYS_RETENTION_DAYS,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, format_timestamp};
use crate::kind::{ActorKind, Method, RetentionClass};
use crate::pipeline::{Fasten, WeakFasten};
use crate::store::{self, Access, Candidate, PAGE_START, Scope, Store};

mod fasten;
mod options;
mod policy;
mod prune;
mod report;
mod sweep;
mod sweeper;
#[cfg(test)]
mod tests;

pub use self::options::*;
pub(crate) use self::policy::*;
pub use self::prune::*;
pub use self::report::*;
use self::sweep::*;
pub(crate) use self::sweeper::*;
