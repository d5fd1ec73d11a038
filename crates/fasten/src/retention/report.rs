//! What a sweep or an erasure did: [`SweepReport`], [`ErasureReport`].

use super::*;

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
