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
//! (1000; fewer, down to 50, while a transaction holds the store for longer
//! than 25 ms), pausing after each for as long as it held the store, so the
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

/// The longest age a class or stream may be given, in days (100 years).
const MAX_DAYS: u32 = 36_500;
/// The shortest pause between two erase transactions of a sweep.
const MIN_PAUSE: Duration = Duration::from_millis(2);
/// How long one erase transaction should hold the store at most: batches
/// shrink (halve, down to [`MIN_BATCH`]) while they take longer, and grow
/// back (up to the batch size) while they take less than half of it.
const TARGET_HOLD: Duration = Duration::from_millis(25);
/// The smallest batch the sweep shrinks to.
const MIN_BATCH: usize = 50;

/// The next batch size after a transaction of `rows` rows held the store
/// for `held`.
fn next_batch(rows: usize, held: Duration, max: usize) -> usize {
    if held > TARGET_HOLD {
        (rows / 2).max(MIN_BATCH).min(max)
    } else if held < TARGET_HOLD / 2 {
        rows.saturating_mul(2).min(max)
    } else {
        rows
    }
}
/// Rows per stream-prune transaction.
const PRUNE_BATCH: usize = 1000;
const DAY: u64 = 86_400;

// === Retention (configuration) ===

/// The retention settings of a pipeline, read from `FASTEN_*` or set on
/// [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retention {
    short_days: u32,
    medium_days: u32,
    long_days: u32,
    /// `None`: no background sweep.
    sweep_interval: Option<Duration>,
    legal_hold_codes: Vec<String>,
    legal_hold_tenants: Vec<String>,
    api_days: Option<u32>,
    sys_days: Option<u32>,
    /// Classes set both by their own variable and by the override (the
    /// override wins): said once when the pipeline starts.
    pub(crate) shadowed: Vec<String>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            short_days: FASTEN_AUDIT_RETENTION_CLASS_SHORT_DEFAULT,
            medium_days: FASTEN_AUDIT_RETENTION_CLASS_MEDIUM_DEFAULT,
            long_days: FASTEN_AUDIT_RETENTION_CLASS_LONG_DEFAULT,
            sweep_interval: Some(FASTEN_RETENTION_SWEEP_INTERVAL_DEFAULT),
            legal_hold_codes: Vec::new(),
            legal_hold_tenants: Vec::new(),
            api_days: None,
            sys_days: None,
            shadowed: Vec::new(),
        }
    }
}

impl Retention {
    /// Reads the retention variables; `get` already treats blank as unset.
    pub(crate) fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let mut r = Self::default();
        let mut set_by_var = Vec::new();
        for (var, class) in [
            (FASTEN_AUDIT_RETENTION_CLASS_SHORT, RetentionClass::Short),
            (FASTEN_AUDIT_RETENTION_CLASS_MEDIUM, RetentionClass::Medium),
            (FASTEN_AUDIT_RETENTION_CLASS_LONG, RetentionClass::Long),
        ] {
            if let Some(v) = get(var) {
                *r.days_mut(class) = parse_days(var, v.trim())?;
                set_by_var.push((class, var));
            }
        }
        if let Some(v) = get(FASTEN_AUDIT_RETENTION_OVERRIDE) {
            for (class, days) in parse_override(&v)? {
                if let Some((_, var)) = set_by_var.iter().find(|(c, _)| *c == class) {
                    r.shadowed.push(format!(
                        "{var} is ignored: {FASTEN_AUDIT_RETENTION_OVERRIDE} also sets class {class}, and the override wins ({days} days)"
                    ));
                }
                *r.days_mut(class) = days;
            }
        }
        if let Some(v) = get(FASTEN_RETENTION_SWEEP_INTERVAL) {
            r.sweep_interval = parse_interval(v.trim())?;
        }
        if let Some(v) = get(FASTEN_AUDIT_LEGAL_HOLD) {
            r.legal_hold_codes = list(&v);
        }
        if let Some(v) = get(FASTEN_AUDIT_LEGAL_HOLD_TENANTS) {
            r.legal_hold_tenants = list(&v);
        }
        if let Some(v) = get(FASTEN_API_RETENTION_DAYS) {
            r.api_days = Some(parse_days(FASTEN_API_RETENTION_DAYS, v.trim())?);
        }
        if let Some(v) = get(FASTEN_SYS_RETENTION_DAYS) {
            r.sys_days = Some(parse_days(FASTEN_SYS_RETENTION_DAYS, v.trim())?);
        }
        r.validate()?;
        Ok(r)
    }

    /// The rules the setters cannot enforce by type.
    pub(crate) fn validate(&self) -> Result<()> {
        for (var, days) in [
            (FASTEN_AUDIT_RETENTION_CLASS_SHORT, Some(self.short_days)),
            (FASTEN_AUDIT_RETENTION_CLASS_MEDIUM, Some(self.medium_days)),
            (FASTEN_AUDIT_RETENTION_CLASS_LONG, Some(self.long_days)),
            (FASTEN_API_RETENTION_DAYS, self.api_days),
            (FASTEN_SYS_RETENTION_DAYS, self.sys_days),
        ] {
            if let Some(days) = days {
                check_days(var, &days.to_string(), u64::from(days))?;
            }
        }
        if self.sweep_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::config(
                FASTEN_RETENTION_SWEEP_INTERVAL,
                format!(
                    "invalid {FASTEN_RETENTION_SWEEP_INTERVAL} 0s: must be positive, e.g. 6h, or off"
                ),
            ));
        }
        for code in &self.legal_hold_codes {
            if !crate::code::is_code(code) {
                return Err(Error::config(
                    FASTEN_AUDIT_LEGAL_HOLD,
                    format!(
                        "invalid {FASTEN_AUDIT_LEGAL_HOLD} entry {code:?}: a code must match ^[A-Z][A-Z0-9_]*$, e.g. ORDER_PLACED,USER_DELETED"
                    ),
                ));
            }
        }
        for tenant in &self.legal_hold_tenants {
            let ok = !tenant.is_empty()
                && tenant.len() <= 128
                && tenant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
            if !ok {
                return Err(Error::config(
                    FASTEN_AUDIT_LEGAL_HOLD_TENANTS,
                    format!(
                        "invalid {FASTEN_AUDIT_LEGAL_HOLD_TENANTS} entry {tenant:?}: expected 1-128 characters of [A-Za-z0-9._:-], e.g. tenant-a,tenant-b"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn days_mut(&mut self, class: RetentionClass) -> &mut u32 {
        match class {
            RetentionClass::Short => &mut self.short_days,
            RetentionClass::Long => &mut self.long_days,
            _ => &mut self.medium_days,
        }
    }

    /// How many days rows of `class` keep their detail.
    pub(crate) fn days(&self, class: RetentionClass) -> u32 {
        match class {
            RetentionClass::Short => self.short_days,
            RetentionClass::Long => self.long_days,
            _ => self.medium_days,
        }
    }

    pub(crate) fn sweep_interval(&self) -> Option<Duration> {
        self.sweep_interval
    }

    /// `FASTEN_API_RETENTION_DAYS`, if set.
    pub(crate) fn api_days(&self) -> Option<u32> {
        self.api_days
    }

    /// `FASTEN_SYS_RETENTION_DAYS`, if set.
    pub(crate) fn sys_days(&self) -> Option<u32> {
        self.sys_days
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check_days(var: &'static str, v: &str, days: u64) -> Result<u32> {
    if days == 0 {
        return Err(Error::config(
            var,
            format!("invalid {var} {v:?}: must be at least 1 day"),
        ));
    }
    u32::try_from(days)
        .ok()
        .filter(|d| *d <= MAX_DAYS)
        .ok_or_else(|| {
            Error::config(
                var,
                format!("invalid {var} {v:?}: at most {MAX_DAYS} days (100 years)"),
            )
        })
}

/// A whole number of days, e.g. `30`.
fn parse_days(var: &'static str, v: &str) -> Result<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::config(
            var,
            format!("invalid {var} {v:?}: expected a whole number of days, e.g. 30"),
        ));
    }
    let days: u64 = v.parse().unwrap_or(u64::MAX);
    check_days(var, v, days)
}

/// The grammar in the module docs.
fn parse_override(v: &str) -> Result<Vec<(RetentionClass, u32)>> {
    const VAR: &str = FASTEN_AUDIT_RETENTION_OVERRIDE;
    const RULE: &str = "expected CLASS=AGE[,CLASS=AGE…] with CLASS short, medium or long and AGE a whole number and a unit d, w, m (30 days) or y (365 days), e.g. long=7y,medium=1y";
    let bad = |why: String| Error::config(VAR, format!("invalid {VAR} {v:?}: {why}; {RULE}"));
    let mut out: Vec<(RetentionClass, u32)> = Vec::new();
    for entry in v.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(bad("empty entry".to_owned()));
        }
        let Some((class, age)) = entry.split_once('=') else {
            return Err(bad(format!("entry {entry:?} has no \"=\"")));
        };
        let class: RetentionClass = class
            .parse()
            .map_err(|_| bad(format!("unknown class {class:?} in {entry:?}")))?;
        if out.iter().any(|(c, _)| *c == class) {
            return Err(bad(format!("class {class} is given twice")));
        }
        let split = age.find(|c: char| !c.is_ascii_digit()).unwrap_or(age.len());
        let (number, unit) = age.split_at(split);
        if number.is_empty() {
            return Err(bad(format!("age {age:?} of {class} has no number")));
        }
        let per = match unit {
            "d" => 1,
            "w" => 7,
            "m" => 30,
            "y" => 365,
            "" => return Err(bad(format!("age {age:?} of {class} has no unit"))),
            _ => return Err(bad(format!("unknown unit {unit:?} in {entry:?}"))),
        };
        let n: u64 = number.parse().unwrap_or(u64::MAX);
        let days = n.saturating_mul(per);
        if days == 0 {
            return Err(bad(format!("age {age:?} of {class} must be at least 1d")));
        }
        if days > u64::from(MAX_DAYS) {
            return Err(bad(format!(
                "age {age:?} of {class} is longer than {MAX_DAYS} days"
            )));
        }
        out.push((class, u32::try_from(days).unwrap_or(MAX_DAYS)));
    }
    Ok(out)
}

/// `30m`, `6h`, `1d` (also `s`), or `off`.
fn parse_interval(v: &str) -> Result<Option<Duration>> {
    const VAR: &str = FASTEN_RETENTION_SWEEP_INTERVAL;
    if v == "off" {
        return Ok(None);
    }
    let bad = || {
        Error::config(
            VAR,
            format!(
                "invalid {VAR} {v:?}: expected a positive whole number and a unit (s, m, h, d), e.g. 6h, or off"
            ),
        )
    };
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(DAY),
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(Some(Duration::from_secs(secs)))
}

// === Config setters ===

impl Config {
    /// `FASTEN_AUDIT_RETENTION_CLASS_SHORT|MEDIUM|LONG`: days the detail of
    /// rows of `class` is kept (1 to 36500).
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::{Config, RetentionClass};
    /// let config = Config::new().audit_retention_class(RetentionClass::Long, 7 * 365);
    /// # let _ = config;
    /// ```
    pub fn audit_retention_class(mut self, class: RetentionClass, days: u32) -> Self {
        *self.retention.days_mut(class) = days;
        self
    }

    /// `FASTEN_AUDIT_RETENTION_OVERRIDE`: `long=7y,medium=1y` (the grammar
    /// is in [`retention`](crate::retention)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming `FASTEN_AUDIT_RETENTION_OVERRIDE` when
    /// `spec` breaks the grammar.
    pub fn audit_retention_override(mut self, spec: &str) -> Result<Self> {
        for (class, days) in parse_override(spec)? {
            *self.retention.days_mut(class) = days;
        }
        Ok(self)
    }

    /// `FASTEN_RETENTION_SWEEP_INTERVAL`: how often the pipeline sweeps in
    /// the background; `None` turns the background sweep off.
    pub fn retention_sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.retention.sweep_interval = interval;
        self
    }

    /// `FASTEN_AUDIT_LEGAL_HOLD`: codes whose rows are never erased.
    pub fn audit_legal_hold(mut self, codes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.retention.legal_hold_codes = codes.into_iter().map(Into::into).collect();
        self
    }

    /// `FASTEN_AUDIT_LEGAL_HOLD_TENANTS`: tenants whose rows are never erased.
    pub fn audit_legal_hold_tenants(
        mut self,
        tenants: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.retention.legal_hold_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// `FASTEN_API_RETENTION_DAYS`: days api stream rows stay in their store.
    pub fn api_retention_days(mut self, days: u32) -> Self {
        self.retention.api_days = Some(days);
        self
    }

    /// `FASTEN_SYS_RETENTION_DAYS`: days sys stream rows stay in their store.
    pub fn sys_retention_days(mut self, days: u32) -> Self {
        self.retention.sys_days = Some(days);
        self
    }
}

// === reports ===

impl Serialize for RetentionClass {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Erased rows of one node: how many, and the seq range they lie in (every
/// erased row is in `first_seq..=last_seq`; not every row in it was erased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SeqRange {
    /// The node (chain key).
    pub source_node_id: String,
    /// Rows erased.
    pub rows: u64,
    /// The lowest `monotonic_seq` erased.
    pub first_seq: i64,
    /// The highest `monotonic_seq` erased.
    pub last_seq: i64,
}

/// What a sweep erased of one code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CodeErasure {
    /// The code.
    pub code: String,
    /// The class its rows were swept under (`short` for rows with personal data).
    pub retention_class: RetentionClass,
    /// Rows erased.
    pub rows: u64,
    /// Per node, the seq range of the erased rows.
    pub ranges: Vec<SeqRange>,
}

/// Why due rows were kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HoldReason {
    /// The code is under legal hold (`FASTEN_AUDIT_LEGAL_HOLD`).
    LegalHoldCode,
    /// The row's tenant is under legal hold (`FASTEN_AUDIT_LEGAL_HOLD_TENANTS`).
    LegalHoldTenant,
    /// The node ships its rows and this one is not shipped yet.
    Unshipped,
    /// No registry of the sweeping pipeline declares the code, so it does
    /// not know the rows' retention class: they are never erased (another
    /// service sharing the store may keep them for years).
    UnknownCode,
}

/// Due rows a sweep or an erasure kept, of one code, for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HeldBack {
    /// The code.
    pub code: String,
    /// Why.
    pub reason: HoldReason,
    /// How many rows.
    pub rows: u64,
}

/// What one sweep did (or, dry, would do). The event it appends carries the
/// same fields, except `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SweepReport {
    /// Nothing was erased and no event appended: this is what would be.
    pub dry_run: bool,
    /// The clock the sweep judged ages by.
    pub now: String,
    /// Per class, the newest `timestamp` that was due.
    pub cutoffs: BTreeMap<RetentionClass, String>,
    /// Rows erased, over all codes.
    pub erased: u64,
    /// Per code, what was erased, sorted by code.
    pub codes: Vec<CodeErasure>,
    /// Due rows that were kept, sorted by code and reason.
    pub held: Vec<HeldBack>,
    /// Rows deleted from the sys and api stream tables
    /// (`FASTEN_SYS_RETENTION_DAYS`, `FASTEN_API_RETENTION_DAYS`), by stream.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub streams: BTreeMap<&'static str, u64>,
    /// The store failure that stopped the sweep early, if one did. The
    /// event still records what was erased before it; `sweep` then returns
    /// the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The longest one erase transaction held the store (SQLite's write
    /// lock; on PostgreSQL, which locks only the rows, how long it ran).
    /// Not part of the event.
    #[serde(skip)]
    pub longest_batch: Duration,
    /// The [`AUDIT_RETENTION_SWEPT`] row the sweep appended (none when dry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Why the sweep did nothing: another node holds the sweep of the same
    /// rows (the store's lease), so the work is not done twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// What an erasure on request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ErasureReport {
    /// `actor` or `target`: which anchor named the subject.
    pub subject: &'static str,
    /// Rows whose detail was erased.
    pub erased: u64,
    /// Per node, the seq range of the erased rows.
    pub ranges: Vec<SeqRange>,
    /// Rows about the subject kept under legal hold.
    pub held: Vec<HeldBack>,
    /// The [`AUDIT_SUBJECT_ERASED`] row appended.
    pub event_id: String,
}

// === options ===

/// How to run a [`Fasten::sweep`].
///
/// ## Defaults
///
/// | setter | default |
/// |---|---|
/// | [`now`](Self::now) | the system clock |
/// | [`dry_run`](Self::dry_run) | false |
/// | [`batch_size`](Self::batch_size) | 1000 rows per transaction |
/// | [`method`](Self::method) | `sdk` (the background sweep says `scheduler`) |
#[derive(Debug, Clone)]
#[must_use = "SweepOptions do nothing until passed to Fasten::sweep"]
pub struct SweepOptions {
    now: Option<SystemTime>,
    dry_run: bool,
    batch_size: usize,
    method: Method,
    all_services: bool,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SweepOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self {
            now: None,
            dry_run: false,
            batch_size: 1000,
            method: Method::Sdk,
            all_services: false,
        }
    }

    /// Also sweeps rows other services wrote into the same store (an
    /// operator's sweep). By default a pipeline sweeps only its own
    /// `service_id`'s rows. Either way, rows of codes the pipeline's
    /// registry does not declare are never erased, only counted as held.
    pub fn all_services(mut self, all: bool) -> Self {
        self.all_services = all;
        self
    }

    /// Judges ages as if it were `now` (tests, or catching up with a
    /// backlog by date).
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Counts what would be erased; erases nothing, appends no event.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Most rows erased per transaction (at least 1). The sweep also
    /// shrinks its batches (down to 50 rows) while a transaction holds the
    /// store for longer than 25 ms, and pauses after each for as long as it
    /// held the store, so the writer always gets its turn soon.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// The method of the sweep's event (`cli` from `fasten sweep`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}

/// Who an erasure is about, why, and who asked: see [`Fasten::erase_subject`].
#[derive(Debug, Clone)]
#[must_use = "an Erasure does nothing until passed to Fasten::erase_subject"]
pub struct Erasure {
    by_actor: bool,
    subject: String,
    reason: String,
    requested_by: Option<(String, ActorKind)>,
    method: Method,
}

impl Erasure {
    /// Every row whose actor is `actor`.
    pub fn actor(actor: impl Into<String>) -> Self {
        Self::new(true, actor.into())
    }

    /// Every row whose target is `target`.
    pub fn target(target: impl Into<String>) -> Self {
        Self::new(false, target.into())
    }

    fn new(by_actor: bool, subject: String) -> Self {
        Self {
            by_actor,
            subject,
            reason: String::new(),
            requested_by: None,
            method: Method::Sdk,
        }
    }

    /// Why (required): `GDPR art. 17 request #4711`. Recorded in the event.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Who asked: the event's actor. Default `system`, kind `service`.
    pub fn requested_by(mut self, who: impl Into<String>, kind: ActorKind) -> Self {
        self.requested_by = Some((who.into(), kind));
        self
    }

    /// The method of the event (`cli` from `fasten erase`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}

// === impl Fasten ===

impl Fasten {
    /// Runs one retention sweep over the whole store (every node): erases
    /// the detail of every due row, then appends one [`AUDIT_RETENTION_SWEPT`]
    /// event through this pipeline and waits until it is committed. See the
    /// [`retention`](crate::retention) module for what is due and what is kept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the store fails (what was erased before
    /// stays erased; the next sweep goes on), and the errors of
    /// [`emit_durable`](Self::emit_durable) for the event.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dsn = fasten::Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", dir.path().join("a.db").display()))?;
    /// let fasten = fasten::Config::new().service_id("api").node_id("node-1").audit_dsn(dsn).build()?;
    /// let report = fasten.sweep(&fasten::retention::SweepOptions::new())?;
    /// assert_eq!(report.erased, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sweep(&self, options: &SweepOptions) -> Result<SweepReport> {
        let _one_at_a_time = self.sweep_lock();
        self.sweep_now(options, None)
    }

    fn sweep_now(&self, options: &SweepOptions, stop: Option<&AtomicBool>) -> Result<SweepReport> {
        let now = jiff::Timestamp::try_from(options.now.unwrap_or_else(SystemTime::now))
            .map_err(|e| Error::new(ErrorKind::Store, "sweep clock out of range").with_source(e))?;
        let policy = self.retention();
        let mut store = store::open(self.dsn(), Access::Maintain)?;
        let service = (!options.all_services).then(|| self.service_id());
        // One node at a time sweeps the same rows: the others find the
        // lease held and skip. A dry run changes nothing and needs none.
        let lease = (!options.dry_run).then(|| Lease::new(service, self.node_id()));
        if let Some(lease) = &lease
            && !lease.hold(store.as_mut())?
        {
            let mut report = SweepReport::new(options.dry_run, now, cutoffs(policy, now));
            report.skipped = Some(format!(
                "another node holds the lease {:?}: it is sweeping these rows",
                lease.name
            ));
            tracing::info!(target: "fasten::store", lease = %lease.name, "retention sweep skipped: another node is sweeping");
            return Ok(report);
        }
        let (mut report, failed) = sweep_store(
            store.as_mut(),
            self.registry(),
            policy,
            now,
            options,
            Reach {
                service,
                lease: lease.as_ref(),
                stop,
            },
        );
        if let Some(lease) = &lease
            && let Err(e) = store.release(&lease.name, &lease.holder)
        {
            tracing::warn!(target: "fasten::store", error = %e, "could not release the sweep lease; it expires by itself");
        }
        drop(store);
        if !options.dry_run && failed.is_none() {
            // Stream rows are not chained: old ones are deleted outright.
            for (stream, dsn, days) in [
                ("sys", self.stream_dsn(false), policy.sys_days()),
                ("api", self.stream_dsn(true), policy.api_days()),
            ] {
                if let (Some(dsn), Some(days)) = (dsn, days) {
                    let now = options.now.unwrap_or_else(SystemTime::now);
                    match prune_stream(dsn, dsn.table(), days, now) {
                        Ok(n) => {
                            report.streams.insert(stream, n);
                        }
                        Err(e) => {
                            tracing::warn!(target: "fasten::store", stream, error = %e, "pruning the stream table failed; the next sweep retries");
                        }
                    }
                }
            }
        }
        // A sweep that failed half-way still records what it erased.
        if !options.dry_run && (failed.is_none() || report.erased > 0) {
            let detail = serde_json::to_value(&report)
                .map_err(|e| Error::new(ErrorKind::Store, "encode sweep report").with_source(e))?;
            let row = self.emit_durable(
                Event::new(AUDIT_RETENTION_SWEPT)
                    .actor("fasten-retention", ActorKind::Schedule)
                    .method(options.method)
                    .detail(detail),
            )?;
            report.event_id = Some(row.id);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        tracing::info!(target: "fasten::store", erased = report.erased, dry_run = options.dry_run, "retention sweep done");
        Ok(report)
    }

    /// Erases the detail of every row about one subject (GDPR art. 17), on
    /// every node of the store, then appends one [`AUDIT_SUBJECT_ERASED`]
    /// event and waits until it is committed. Rows under legal hold are
    /// kept and reported. See the [`retention`](crate::retention) module.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`] naming `reason` when the reason is empty,
    /// or `actor`/`target` when the subject is empty; [`ErrorKind::Store`]
    /// when the store fails (rows erased before stay erased; run it again);
    /// the errors of [`emit_durable`](Self::emit_durable) for the event.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::retention::Erasure;
    /// # let dir = tempfile::tempdir()?;
    /// # let dsn = fasten::Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", dir.path().join("a.db").display()))?;
    /// let fasten = fasten::Config::new().service_id("api").node_id("node-1").audit_dsn(dsn).build()?;
    /// let report = fasten.erase_subject(&Erasure::actor("u-42").reason("GDPR art. 17 request #7"))?;
    /// assert_eq!(report.erased, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn erase_subject(&self, request: &Erasure) -> Result<ErasureReport> {
        let field = if request.by_actor { "actor" } else { "target" };
        if request.subject.trim().is_empty() {
            return Err(Error::invalid(
                field,
                format!("invalid {field}: the subject to erase must not be empty"),
            ));
        }
        if request.reason.trim().is_empty() {
            return Err(Error::invalid(
                "reason",
                "invalid reason: say why the subject is erased, e.g. \"GDPR art. 17 request #4711\"",
            ));
        }
        let policy = self.retention();
        let mut store = store::open(self.dsn(), Access::Maintain)?;
        let scope = if request.by_actor {
            Scope::Actor(&request.subject)
        } else {
            Scope::Target(&request.subject)
        };
        let mut tally = Tally::default();
        let mut run = |tally: &mut Tally| -> Result<()> {
            let mut cursor = (PAGE_START.0.to_owned(), PAGE_START.1.to_owned());
            let max = SweepOptions::new().batch_size;
            let mut batch = max;
            loop {
                let page = store.page(scope, (&cursor.0, &cursor.1), batch)?;
                let Some(last) = page.last() else { break };
                cursor = (last.timestamp.clone(), last.id.clone());
                let full = page.len() == batch;
                let mut ids = Vec::with_capacity(page.len());
                for c in &page {
                    if c.code == AUDIT_RETENTION_SWEPT || c.code == AUDIT_SUBJECT_ERASED {
                        continue;
                    }
                    match hold(policy, c, None) {
                        Some(reason) => tally.hold(&c.code, reason, 1),
                        None => ids.push(c.id.as_str()),
                    }
                }
                if !ids.is_empty() {
                    let held =
                        erase_paced(store.as_mut(), &ids, &page, RetentionClass::Short, tally)?;
                    batch = next_batch(ids.len(), held, max);
                }
                if !full {
                    break;
                }
            }
            Ok(())
        };
        let failed = run(&mut tally).err();
        drop(store);
        // Rows erased before a failure are recorded all the same.
        let failed = match failed {
            Some(e) if tally.erased == 0 => return Err(e),
            other => other,
        };
        let ranges = tally.all_ranges();
        let held = tally.held();
        let erased = tally.erased;
        let (who, kind) = request
            .requested_by
            .clone()
            .unwrap_or_else(|| ("system".to_owned(), ActorKind::Service));
        let row = self.emit_durable(
            Event::new(AUDIT_SUBJECT_ERASED)
                .actor(who.clone(), kind)
                .target(request.subject.clone())
                .method(request.method)
                .detail(serde_json::json!({
                    "subject": field,
                    "reason": request.reason,
                    "requested_by": who,
                    "erased": erased,
                    "ranges": ranges,
                    "held": held,
                    "error": failed.as_ref().map(|e| e.to_string()),
                })),
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(ErasureReport {
            subject: field,
            erased,
            ranges,
            held,
            event_id: row.id,
        })
    }
}

impl Fasten {
    /// `FASTEN_API_RETENTION_DAYS`: how many days api stream rows stay in
    /// their store, if set (pass it to [`prune_stream`]).
    pub fn api_retention_days(&self) -> Option<u32> {
        self.retention().api_days()
    }

    /// `FASTEN_SYS_RETENTION_DAYS`: how many days sys stream rows stay in
    /// their store, if set (pass it to [`prune_stream`]).
    pub fn sys_retention_days(&self) -> Option<u32> {
        self.retention().sys_days()
    }
}

// === the sweep ===

/// Erased and held rows, as a sweep or an erasure goes.
#[derive(Default)]
struct Tally {
    erased: u64,
    /// code → (class, node → range)
    codes: BTreeMap<String, (RetentionClass, BTreeMap<String, SeqRange>)>,
    held: BTreeMap<(String, HoldReason), u64>,
    longest_batch: Duration,
}

impl Tally {
    fn erased(&mut self, code: &str, class: RetentionClass, node: &str, seq: i64) {
        self.erased += 1;
        let (_, nodes) = self
            .codes
            .entry(code.to_owned())
            .or_insert_with(|| (class, BTreeMap::new()));
        let range = nodes.entry(node.to_owned()).or_insert_with(|| SeqRange {
            source_node_id: node.to_owned(),
            rows: 0,
            first_seq: seq,
            last_seq: seq,
        });
        range.rows += 1;
        range.first_seq = range.first_seq.min(seq);
        range.last_seq = range.last_seq.max(seq);
    }

    fn hold(&mut self, code: &str, reason: HoldReason, rows: u64) {
        *self.held.entry((code.to_owned(), reason)).or_default() += rows;
    }

    fn held(&self) -> Vec<HeldBack> {
        self.held
            .iter()
            .map(|((code, reason), rows)| HeldBack {
                code: code.clone(),
                reason: *reason,
                rows: *rows,
            })
            .collect()
    }

    fn codes(&self) -> Vec<CodeErasure> {
        self.codes
            .iter()
            .map(|(code, (class, nodes))| CodeErasure {
                code: code.clone(),
                retention_class: *class,
                rows: nodes.values().map(|r| r.rows).sum(),
                ranges: nodes.values().cloned().collect(),
            })
            .collect()
    }

    /// Per node, over every code.
    fn all_ranges(&self) -> Vec<SeqRange> {
        let mut nodes: BTreeMap<&str, SeqRange> = BTreeMap::new();
        for (_, per_node) in self.codes.values() {
            for (node, r) in per_node {
                nodes
                    .entry(node)
                    .and_modify(|a| {
                        a.rows += r.rows;
                        a.first_seq = a.first_seq.min(r.first_seq);
                        a.last_seq = a.last_seq.max(r.last_seq);
                    })
                    .or_insert_with(|| r.clone());
            }
        }
        nodes.into_values().collect()
    }
}

/// Why `c` must be kept, if it must. `shipping` is `None` for erasure on
/// request, which does not wait for shipping.
fn hold(
    policy: &Retention,
    c: &Candidate,
    shipping: Option<&HashSet<String>>,
) -> Option<HoldReason> {
    if policy.legal_hold_codes.contains(&c.code) {
        Some(HoldReason::LegalHoldCode)
    } else if c
        .tenant_id
        .as_ref()
        .is_some_and(|t| policy.legal_hold_tenants.contains(t))
    {
        Some(HoldReason::LegalHoldTenant)
    } else if !c.shipped && shipping.is_some_and(|s| s.contains(&c.node)) {
        Some(HoldReason::Unshipped)
    } else {
        None
    }
}

/// Erases `ids` (of `page`) in one transaction and tallies what it erased,
/// then pauses as long as the transaction held the store (at least
/// [`MIN_PAUSE`]), so the writer gets the store at least half the time.
fn erase_paced(
    store: &mut dyn Store,
    ids: &[&str],
    page: &[Candidate],
    class: RetentionClass,
    tally: &mut Tally,
) -> Result<Duration> {
    if ids.is_empty() {
        return Ok(Duration::ZERO);
    }
    let erased = store.erase(ids)?;
    let codes: std::collections::HashMap<(&str, i64), &str> = page
        .iter()
        .map(|c| ((c.node.as_str(), c.seq), c.code.as_str()))
        .collect();
    for (node, seq) in &erased.rows {
        let code = codes.get(&(node.as_str(), *seq)).copied().unwrap_or("");
        tally.erased(code, class, node, *seq);
    }
    tally.longest_batch = tally.longest_batch.max(erased.held);
    tracing::debug!(target: "fasten::store", rows = erased.rows.len(), held_us = erased.held.as_micros() as u64, "erase batch committed");
    std::thread::sleep(erased.held.max(MIN_PAUSE));
    Ok(erased.held)
}

/// Per class, the newest `timestamp` that is due at `now`.
fn cutoffs(policy: &Retention, now: jiff::Timestamp) -> BTreeMap<RetentionClass, String> {
    let cutoff = |class: RetentionClass| {
        let age = jiff::SignedDuration::from_secs(i64::from(policy.days(class)) * DAY as i64);
        format_timestamp(now.checked_sub(age).unwrap_or(jiff::Timestamp::MIN))
    };
    [
        RetentionClass::Short,
        RetentionClass::Medium,
        RetentionClass::Long,
    ]
    .into_iter()
    .map(|c| (c, cutoff(c)))
    .collect()
}

impl SweepReport {
    /// A report of nothing done yet.
    fn new(dry_run: bool, now: jiff::Timestamp, cutoffs: BTreeMap<RetentionClass, String>) -> Self {
        Self {
            dry_run,
            now: format_timestamp(now),
            cutoffs,
            erased: 0,
            codes: Vec::new(),
            held: Vec::new(),
            streams: BTreeMap::new(),
            error: None,
            longest_batch: Duration::ZERO,
            event_id: None,
            skipped: None,
        }
    }
}

/// The store's lease on one sweep's rows: `retention sweep <service>` (or
/// `*` for every service), held by one node at a time, renewed at each page
/// and given back at the end; a crashed holder's lease expires.
struct Lease {
    name: String,
    holder: String,
}

/// How long a lease lasts without renewal: far longer than one page takes.
const LEASE_TTL: Duration = Duration::from_secs(10 * 60);

impl Lease {
    fn new(service: Option<&str>, node: &str) -> Self {
        Self {
            name: format!("retention sweep {}", service.unwrap_or("*")),
            holder: format!("{node}/{:016x}", rand::random::<u64>()),
        }
    }

    /// Takes or renews the lease by the wall clock (not the sweep's clock,
    /// which tests set to the future).
    fn hold(&self, store: &mut dyn Store) -> Result<bool> {
        let now = jiff::Timestamp::now();
        let until = now
            .checked_add(jiff::SignedDuration::try_from(LEASE_TTL).unwrap_or_default())
            .unwrap_or(now);
        store.lease(
            &self.name,
            &self.holder,
            &format_timestamp(now),
            &format_timestamp(until),
        )
    }
}

/// Whose rows one sweep covers and what bounds it.
#[derive(Clone, Copy)]
struct Reach<'a> {
    /// Only this service's rows, when given.
    service: Option<&'a str>,
    /// The lease to renew at each page, when not dry.
    lease: Option<&'a Lease>,
    /// Set when the pipeline shuts down.
    stop: Option<&'a AtomicBool>,
}

/// Sweeps the store. A store failure stops the sweep; what it erased until
/// then is in the report, and the error beside it.
fn sweep_store(
    store: &mut dyn Store,
    registry: &Registry,
    policy: &Retention,
    now: jiff::Timestamp,
    options: &SweepOptions,
    reach: Reach<'_>,
) -> (SweepReport, Option<Error>) {
    let Reach {
        service,
        lease,
        stop,
    } = reach;
    let cutoffs = cutoffs(policy, now);
    let mut tally = Tally::default();
    let mut run = |tally: &mut Tally| -> Result<()> {
        let groups = store.unerased_groups()?;
        let shipping: HashSet<String> = if groups.is_empty() {
            HashSet::new()
        } else {
            store.shipping_nodes()?.into_iter().collect()
        };
        let mut batch = options.batch_size;
        for (code, pii) in &groups {
            // Only a registry that declares the code decides its rows' age
            // limit. An unknown code's rows are counted (as due as they
            // could be: under the shortest class) and kept.
            let (class, known) = match registry.get(code) {
                Some(_) if *pii => (RetentionClass::Short, true),
                Some(info) => (info.meta().retention_class, true),
                None => (RetentionClass::Short, false),
            };
            let due = &cutoffs[&class];
            let scope = Scope::Due {
                code,
                pii: *pii,
                due,
                service,
            };
            let mut cursor = (PAGE_START.0.to_owned(), PAGE_START.1.to_owned());
            loop {
                if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    tracing::info!(target: "fasten::store", "retention sweep stopped early: the pipeline is shutting down");
                    return Ok(());
                }
                if let Some(lease) = lease
                    && !lease.hold(store)?
                {
                    return Err(Error::new(
                        ErrorKind::Store,
                        format!(
                            "lost the lease {:?} to another node; it goes on with the sweep",
                            lease.name
                        ),
                    ));
                }
                let page = store.page(scope, (&cursor.0, &cursor.1), batch)?;
                let Some(last) = page.last() else { break };
                cursor = (last.timestamp.clone(), last.id.clone());
                let full = page.len() == batch;
                let mut ids = Vec::with_capacity(page.len());
                if !known {
                    tally.hold(code, HoldReason::UnknownCode, page.len() as u64);
                    if !full {
                        break;
                    }
                    continue;
                }
                for c in &page {
                    match hold(policy, c, Some(&shipping)) {
                        Some(reason) => tally.hold(code, reason, 1),
                        None if options.dry_run => tally.erased(code, class, &c.node, c.seq),
                        None => ids.push(c.id.as_str()),
                    }
                }
                if !ids.is_empty() {
                    let held = erase_paced(store, &ids, &page, class, tally)?;
                    batch = next_batch(ids.len(), held, options.batch_size);
                }
                if !full {
                    break;
                }
            }
        }
        Ok(())
    };
    let failed = run(&mut tally).err();
    let mut report = SweepReport::new(options.dry_run, now, cutoffs);
    report.erased = tally.erased;
    report.codes = tally.codes();
    report.held = tally.held();
    report.error = failed.as_ref().map(|e| e.to_string());
    report.longest_batch = tally.longest_batch;
    (report, failed)
}

// === the background sweeper ===

/// The pipeline's side of its background sweeper.
#[derive(Debug)]
pub(crate) struct Sweeper {
    stop: Arc<AtomicBool>,
    thread: Thread,
    /// Held while a sweep runs; `Fasten::sweep` takes it too, so sweeps of
    /// one pipeline never overlap, and shutdown waits on it.
    pub(crate) running: Arc<Mutex<()>>,
}

impl Sweeper {
    /// Starts the thread that sweeps `fasten` every `interval`. It holds the
    /// pipeline only while it sweeps, and ends when the pipeline is gone or
    /// [`stop`](Self::stop) is called.
    pub(crate) fn start(
        fasten: WeakFasten,
        interval: Duration,
        running: Arc<Mutex<()>>,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let lock = Arc::clone(&running);
        let join = std::thread::Builder::new()
            .name("fasten-retention".into())
            .spawn(move || {
                crate::quiet::mark_thread();
                background(&fasten, interval, &flag, &lock);
            })
            .map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    "cannot start the retention sweeper thread",
                )
                .with_source(e)
            })?;
        Ok(Self {
            stop,
            thread: join.thread().clone(),
            running,
        })
    }

    /// Asks the thread to end (a running sweep stops after its current batch
    /// and still records what it erased), and waits up to `timeout` for a
    /// running sweep to finish.
    pub(crate) fn stop(&self, timeout: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
        // A timeout too long to represent waits as long as it takes.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            match self.running.try_lock() {
                Ok(_) | Err(std::sync::TryLockError::Poisoned(_)) => return,
                Err(std::sync::TryLockError::WouldBlock)
                    if deadline.is_none_or(|d| Instant::now() < d) =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    tracing::warn!(target: "fasten::store", "a retention sweep is still running at shutdown");
                    return;
                }
            }
        }
    }
}

/// When the first background sweep is due: one interval after the node's
/// last sweep event, or after its first row, or after now.
fn first_due(fasten: &Fasten, interval: Duration) -> Instant {
    let last = store::open(fasten.dsn(), Access::Read).and_then(|mut s| {
        match s.time_of(fasten.node_id(), Some(AUDIT_RETENTION_SWEPT))? {
            Some(t) => Ok(Some(t)),
            None => s.time_of(fasten.node_id(), None),
        }
    });
    let since = match last {
        Ok(Some(text)) => text
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| Duration::try_from(jiff::Timestamp::now().duration_since(t)).ok())
            .unwrap_or_default(),
        Ok(None) => Duration::ZERO,
        Err(e) => {
            tracing::warn!(target: "fasten::store", error = %e, "cannot read when the last retention sweep ran; the next is due in one interval");
            Duration::ZERO
        }
    };
    Instant::now() + interval.saturating_sub(since)
}

fn background(fasten: &WeakFasten, interval: Duration, stop: &AtomicBool, running: &Mutex<()>) {
    let mut due = match fasten.upgrade() {
        Some(f) => first_due(&f, interval),
        None => return,
    };
    loop {
        let now = Instant::now();
        if now < due {
            std::thread::park_timeout(due - now);
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if Instant::now() < due {
            continue;
        }
        let Some(f) = fasten.upgrade() else { return };
        {
            let _one_at_a_time = running.lock().unwrap_or_else(PoisonError::into_inner);
            let options = SweepOptions::new().method(Method::Scheduler);
            if let Err(e) = f.sweep_now(&options, Some(stop)) {
                tracing::error!(target: "fasten::store", error = %e, "retention sweep failed; the next one retries");
            }
        }
        drop(f);
        due = Instant::now() + interval;
    }
}

// === stream stores ===

/// Deletes the rows of the stream table `table` (in the database `dsn`
/// names, e.g. `FASTEN_API_DSN`) whose `timestamp` is `days` days or more
/// before `now`, in transactions of at most 1000 rows. Returns how many it
/// deleted. Stream rows are not chained, so they are deleted, not erased.
///
/// # Errors
///
/// [`ErrorKind::Config`] naming `FASTEN_API_RETENTION_DAYS` when `days` is 0
/// or more than 36500; [`ErrorKind::Store`] when `table` is not a plain
/// identifier, is the DSN's audit table, or the store fails.
///
/// # Examples
///
/// ```no_run
/// let dsn = fasten::Dsn::parse("FASTEN_API_DSN", "sqlite:///fasten_api.db")?;
/// let deleted = fasten::retention::prune_stream(&dsn, "api_log", 30, std::time::SystemTime::now())?;
/// # let _ = deleted;
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn prune_stream(dsn: &Dsn, table: &str, days: u32, now: SystemTime) -> Result<u64> {
    check_days(
        FASTEN_API_RETENTION_DAYS,
        &days.to_string(),
        u64::from(days),
    )?;
    let now = jiff::Timestamp::try_from(now)
        .map_err(|e| Error::new(ErrorKind::Store, "prune clock out of range").with_source(e))?;
    let age = jiff::SignedDuration::from_secs(i64::from(days) * DAY as i64);
    let cutoff = format_timestamp(now.checked_sub(age).unwrap_or(jiff::Timestamp::MIN));
    store::prune(dsn, table, &cutoff, PRUNE_BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Retention> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Retention::from_vars(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_30_180_and_3_years_sweeping_every_6h() {
        let r = from(&[]).unwrap();
        assert_eq!(r.days(RetentionClass::Short), 30);
        assert_eq!(r.days(RetentionClass::Medium), 180);
        assert_eq!(r.days(RetentionClass::Long), 1095);
        assert_eq!(r.sweep_interval(), Some(Duration::from_secs(6 * 3600)));
        assert_eq!((r.api_days(), r.sys_days()), (None, None));
    }

    #[test]
    fn class_variables_and_override_apply() {
        let r = from(&[
            ("FASTEN_AUDIT_RETENTION_CLASS_SHORT", "7"),
            ("FASTEN_AUDIT_RETENTION_OVERRIDE", " long=7y , medium=2m"),
            ("FASTEN_RETENTION_SWEEP_INTERVAL", "30m"),
            ("FASTEN_AUDIT_LEGAL_HOLD", "ORDER_PLACED, USER_DELETED"),
            ("FASTEN_AUDIT_LEGAL_HOLD_TENANTS", "t-1"),
            ("FASTEN_API_RETENTION_DAYS", "14"),
            ("FASTEN_SYS_RETENTION_DAYS", "3"),
        ])
        .unwrap();
        assert_eq!(r.days(RetentionClass::Short), 7);
        assert_eq!(r.days(RetentionClass::Medium), 60);
        assert_eq!(r.days(RetentionClass::Long), 7 * 365);
        assert_eq!(r.sweep_interval(), Some(Duration::from_secs(1800)));
        assert_eq!(r.legal_hold_codes, ["ORDER_PLACED", "USER_DELETED"]);
        assert_eq!(r.legal_hold_tenants, ["t-1"]);
        assert_eq!((r.api_days(), r.sys_days()), (Some(14), Some(3)));
        for (spec, days) in [("short=2w", 14), ("short=1d", 1), ("short=3m", 90)] {
            let r = from(&[("FASTEN_AUDIT_RETENTION_OVERRIDE", spec)]).unwrap();
            assert_eq!(r.days(RetentionClass::Short), days, "{spec}");
        }
        let off = from(&[("FASTEN_RETENTION_SWEEP_INTERVAL", "off")]).unwrap();
        assert_eq!(off.sweep_interval(), None);
        let day = from(&[("FASTEN_RETENTION_SWEEP_INTERVAL", "1d")]).unwrap();
        assert_eq!(day.sweep_interval(), Some(Duration::from_secs(DAY)));
    }

    #[test]
    fn override_errors_name_the_variable_and_the_rule() {
        let err = |spec: &str| {
            let e = from(&[("FASTEN_AUDIT_RETENTION_OVERRIDE", spec)]).unwrap_err();
            assert_eq!(
                e.kind(),
                &ErrorKind::Config {
                    var: FASTEN_AUDIT_RETENTION_OVERRIDE
                },
                "{spec}"
            );
            e.to_string()
        };
        insta::assert_snapshot!(err("long=7x"), @r#"invalid FASTEN_AUDIT_RETENTION_OVERRIDE "long=7x": unknown unit "x" in "long=7x"; expected CLASS=AGE[,CLASS=AGE…] with CLASS short, medium or long and AGE a whole number and a unit d, w, m (30 days) or y (365 days), e.g. long=7y,medium=1y"#);
        insta::assert_snapshot!(err("forever=1y"), @r#"invalid FASTEN_AUDIT_RETENTION_OVERRIDE "forever=1y": unknown class "forever" in "forever=1y"; expected CLASS=AGE[,CLASS=AGE…] with CLASS short, medium or long and AGE a whole number and a unit d, w, m (30 days) or y (365 days), e.g. long=7y,medium=1y"#);
        assert!(err("long=7").contains(r#"age "7" of long has no unit"#));
        assert!(err("long=y").contains(r#"age "y" of long has no number"#));
        assert!(err("long").contains(r#"entry "long" has no "=""#));
        assert!(err("long=1y,,short=1d").contains("empty entry"));
        assert!(err("long=1y,long=2y").contains("class long is given twice"));
        assert!(err("short=0d").contains("must be at least 1d"));
        assert!(err("long=101y").contains("longer than 36500 days"));
        assert!(err("long = 1y").contains(r#"unknown class "long ""#));
        assert!(err("long=-1y").contains("has no number"));
        assert!(err("long=1.5y").contains(r#"unknown unit ".5y""#));
        // Both naming one class: the override wins, and that is said once.
        let both = from(&[
            ("FASTEN_AUDIT_RETENTION_CLASS_LONG", "2555"),
            ("FASTEN_AUDIT_RETENTION_OVERRIDE", "long=7y,medium=1y"),
        ])
        .unwrap();
        assert_eq!(both.days(RetentionClass::Long), 7 * 365);
        assert_eq!(both.days(RetentionClass::Medium), 365);
        assert_eq!(
            both.shadowed,
            [
                "FASTEN_AUDIT_RETENTION_CLASS_LONG is ignored: FASTEN_AUDIT_RETENTION_OVERRIDE also sets class long, and the override wins (2555 days)"
            ]
        );
    }

    #[test]
    fn other_variables_are_strict_too() {
        insta::assert_snapshot!(from(&[("FASTEN_AUDIT_RETENTION_CLASS_SHORT", "30d")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_RETENTION_CLASS_SHORT "30d": expected a whole number of days, e.g. 30"#);
        insta::assert_snapshot!(from(&[("FASTEN_AUDIT_RETENTION_CLASS_MEDIUM", "0")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_RETENTION_CLASS_MEDIUM "0": must be at least 1 day"#);
        insta::assert_snapshot!(from(&[("FASTEN_SYS_RETENTION_DAYS", "99999")]).unwrap_err(), @r#"invalid FASTEN_SYS_RETENTION_DAYS "99999": at most 36500 days (100 years)"#);
        for bad in ["6", "h", "0h", "1.5h", "6 h", "1w", "-1h"] {
            let e = from(&[("FASTEN_RETENTION_SWEEP_INTERVAL", bad)]).unwrap_err();
            assert_eq!(
                e.kind(),
                &ErrorKind::Config {
                    var: FASTEN_RETENTION_SWEEP_INTERVAL
                },
                "{bad}"
            );
        }
        insta::assert_snapshot!(from(&[("FASTEN_RETENTION_SWEEP_INTERVAL", "1w")]).unwrap_err(), @r#"invalid FASTEN_RETENTION_SWEEP_INTERVAL "1w": expected a positive whole number and a unit (s, m, h, d), e.g. 6h, or off"#);
        insta::assert_snapshot!(from(&[("FASTEN_AUDIT_LEGAL_HOLD", "ORDER_PLACED,order_lost")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_LEGAL_HOLD entry "order_lost": a code must match ^[A-Z][A-Z0-9_]*$, e.g. ORDER_PLACED,USER_DELETED"#);
        insta::assert_snapshot!(from(&[("FASTEN_AUDIT_LEGAL_HOLD_TENANTS", "a b")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_LEGAL_HOLD_TENANTS entry "a b": expected 1-128 characters of [A-Za-z0-9._:-], e.g. tenant-a,tenant-b"#);
    }

    #[test]
    fn batches_shrink_while_slow_and_grow_back() {
        let ms = Duration::from_millis;
        assert_eq!(next_batch(1000, ms(30), 1000), 500);
        assert_eq!(next_batch(60, ms(30), 1000), 50);
        assert_eq!(next_batch(500, ms(20), 1000), 500);
        assert_eq!(next_batch(500, ms(5), 1000), 1000);
        assert_eq!(next_batch(1000, ms(1), 1000), 1000);
        assert_eq!(next_batch(1000, ms(30), 10), 10);
    }

    #[test]
    fn setters_are_validated_at_build() {
        let err = Config::new()
            .service_id("s")
            .node_id("n")
            .audit_retention_class(RetentionClass::Short, 0)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Config {
                var: FASTEN_AUDIT_RETENTION_CLASS_SHORT
            }
        );
        let c = Config::new()
            .audit_retention_override("medium=1y")
            .unwrap()
            .retention_sweep_interval(None);
        assert_eq!(c.retention.days(RetentionClass::Medium), 365);
        assert_eq!(c.retention.sweep_interval(), None);
    }
}
