//! The code registry: every audit event names a registered code that types it.
//!
//! A code (`ORDER_PLACED`) belongs to a domain (`sales`) and carries its
//! [`Meta`]: category, action, default severity, retention class and whether
//! the event's detail holds personal data. `emit` looks the code up on every
//! call and rejects codes that no registry declares, so the set of things an
//! audit trail can say is fixed and reviewable.
//!
//! Codes are declared in Rust with [`Registry::register`] or in YAML files
//! (`<domain>.codes.yaml`, usually listed in `FASTEN_CODES`) loaded with
//! [`Registry::load_file`]:
//!
//! ```yaml
//! domain: sales            # required, ^[a-z][a-z0-9_]*$, equals <name> of <name>.codes.yaml
//! emitter: order-service   # optional
//! codes:
//!   ORDER_PLACED:          # ^[A-Z][A-Z0-9_]*$, unique across every file and register call
//!     category: order       # required, non-empty
//!     action: create        # required, non-empty
//!     severity: info        # debug info warn error critical (default info)
//!     description: An order was placed
//!     retention_class: medium             # short medium long (default medium)
//!     pii_in_detail: false                # true forces retention_class short
//!     detail_passthrough_keys: [order_id]
//!     domain: sales                       # optional; must equal the file's domain
//! ```
//!
//! Every load or registration is all or nothing: one bad code and none of the
//! batch is added. Errors ([`CodeError`]) name the file and line, the code,
//! the field and the rule.
//!
//! # Lines of codes
//!
//! The YAML parser reports positions for syntax and type errors but not for
//! mapping keys, so the line of a code (used in [`Origin`] and in errors about
//! rules the parser cannot check, such as duplicates) is found by scanning the
//! text for the key at the first indentation level under the top-level
//! `codes:` line. Block-style YAML, which is what these files are written in,
//! is always found; for flow-style mappings (`codes: {A: {...}}`) errors go
//! without a line and [`Origin::File`] falls back to the line of `codes:`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, PoisonError, RwLock, RwLockReadGuard};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::kind::{RetentionClass, Severity};

/// The pattern a code must match, as shown in errors.
const CODE_PATTERN: &str = "^[A-Z][A-Z0-9_]*$";
/// The pattern a domain must match, as shown in errors.
const DOMAIN_PATTERN: &str = "^[a-z][a-z0-9_]*$";
/// The file-name suffix whose stem must equal the file's domain.
const FILE_SUFFIX: &str = ".codes.yaml";

// === Meta ===

/// Metadata of one code (what the caller declares).
///
/// Build it with [`Meta::new`] and the chained setters; the fields are public
/// for reading.
///
/// # Examples
///
/// ```
/// use fasten::code::Meta;
/// use fasten::{RetentionClass, Severity};
///
/// let meta = Meta::new("order", "create")
///     .severity(Severity::Warn)
///     .description("An order was placed")
///     .pii(["order_id"]);
/// assert_eq!(meta.retention_class, RetentionClass::Short);
/// assert!(meta.pii_in_detail);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Meta {
    /// What the event is about (`order`, `user`, `session` …); non-empty.
    pub category: String,
    /// What happened to it (`create`, `delete`, `login` …); non-empty.
    pub action: String,
    /// The default severity of the code's events. Default `info`.
    pub severity: Severity,
    /// A human description of the code.
    pub description: String,
    /// How long the events' detail is kept. Default `medium`; always `short`
    /// when [`pii_in_detail`](Self::pii_in_detail) is set.
    pub retention_class: RetentionClass,
    /// Whether the events' detail holds personal data.
    pub pii_in_detail: bool,
    /// The detail keys that are kept as they are when the detail holds
    /// personal data.
    pub detail_passthrough_keys: Vec<String>,
}

impl Meta {
    /// Metadata with a category and an action: severity `info`, retention
    /// `medium`, no description, no personal data.
    pub fn new(category: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            category: category.into(),
            action: action.into(),
            severity: Severity::default(),
            description: String::new(),
            retention_class: RetentionClass::default(),
            pii_in_detail: false,
            detail_passthrough_keys: Vec::new(),
        }
    }

    /// Sets the default severity.
    #[must_use]
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }

    /// Sets the retention class.
    ///
    /// On a code with personal data anything but `short` is replaced by
    /// `short` when the code is registered, with a warning naming the code
    /// ([`CodeInfo::declared_retention_class`] keeps what was declared).
    #[must_use]
    pub fn retention(mut self, r: RetentionClass) -> Self {
        self.retention_class = r;
        self
    }

    /// Marks the detail as holding personal data, which forces retention
    /// `short`, and sets the detail keys that pass through unchanged.
    ///
    /// With no passthrough keys, name the item type: `.pii(Vec::<String>::new())`.
    #[must_use]
    pub fn pii(mut self, passthrough_keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.pii_in_detail = true;
        self.retention_class = RetentionClass::Short;
        self.detail_passthrough_keys = passthrough_keys.into_iter().map(Into::into).collect();
        self
    }
}

// === CodeInfo, Origin ===

/// A registered code: its name, domain, optional emitter and metadata
/// (retention already forced to short for pii codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeInfo {
    code: String,
    domain: String,
    emitter: Option<String>,
    meta: Meta,
    origin: Origin,
    /// The class the declaration gave when fasten changed it (a code with
    /// personal data is always `short`).
    declared_retention: Option<RetentionClass>,
}

impl CodeInfo {
    /// The code (`ORDER_PLACED`).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The domain the code belongs to (`sales`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The emitting service the file declared, if any (`order-service`).
    pub fn emitter(&self) -> Option<&str> {
        self.emitter.as_deref()
    }

    /// The code's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Where the code was declared.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The retention class as declared, when it differs from the one in
    /// force ([`Meta::retention_class`]): a code with personal data that
    /// declared `medium` or `long` is kept `short`.
    pub fn declared_retention_class(&self) -> Option<RetentionClass> {
        self.declared_retention
    }

    fn new(
        code: String,
        domain: String,
        emitter: Option<String>,
        mut meta: Meta,
        origin: Origin,
    ) -> Self {
        let declared = meta.retention_class;
        let declared_retention =
            (meta.pii_in_detail && declared != RetentionClass::Short).then(|| {
                tracing::warn!(
                    target: "fasten::codes",
                    code,
                    %origin,
                    declared = %declared,
                    "pii_in_detail forces retention_class short: the declared class is not used"
                );
                meta.retention_class = RetentionClass::Short;
                declared
            });
        Self {
            code,
            domain,
            emitter,
            meta,
            origin,
            declared_retention,
        }
    }
}

/// Where a code was declared: a YAML file and line, or Rust code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A YAML file.
    File {
        /// The file's path, as it was given to the loader.
        path: PathBuf,
        /// The 1-based line of the code's key (of `codes:` when the key could
        /// not be found, as in flow-style YAML).
        line: usize,
    },
    /// A [`Registry::register`] call.
    Code,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Code => f.write_str("code"),
        }
    }
}

// === built-in codes ===

/// The domain of fasten's own codes.
pub const BUILTIN_DOMAIN: &str = "audit";
/// Built-in code: a retention sweep erased the detail of rows past their
/// class's age (retention `long`).
pub const AUDIT_RETENTION_SWEPT: &str = "AUDIT_RETENTION_SWEPT";
/// Built-in code: the detail of every row about one subject was erased on
/// request (retention `long`).
pub const AUDIT_SUBJECT_ERASED: &str = "AUDIT_SUBJECT_ERASED";

/// The domain of the agent codes ([`TOOL_CALLED`], [`MODEL_CALLED`],
/// [`AGENT_HANDOFF`]), which `fasten::agent` emits.
pub const AGENT_DOMAIN: &str = "agent";
/// Built-in code: an agent called a tool (written by `fasten::agent::tool_call`).
///
/// Detail fields: `tool` (text), `duration_ms` (integer), `error` (text, on
/// failure or denial), and what the call reported: `cost_usd` (number),
/// `input_tokens`, `output_tokens` (integers), `model` (text).
pub const TOOL_CALLED: &str = "TOOL_CALLED";
/// Built-in code: an agent called a model (written by
/// `fasten::agent::model_call`). Detail fields as [`TOOL_CALLED`], with
/// `model` always set and no `tool`.
pub const MODEL_CALLED: &str = "MODEL_CALLED";
/// Built-in code: an agent handed work to another agent (written by
/// `fasten::agent::handoff`); the target is the receiving agent. Detail
/// fields as [`TOOL_CALLED`], without `tool`.
pub const AGENT_HANDOFF: &str = "AGENT_HANDOFF";

/// fasten's own codes, known to every registry without being declared.
static BUILTIN: LazyLock<[Arc<CodeInfo>; 5]> = LazyLock::new(|| {
    let info = |domain: &str, code: &str, meta: Meta| {
        Arc::new(CodeInfo::new(
            code.to_owned(),
            domain.to_owned(),
            None,
            meta,
            Origin::Code,
        ))
    };
    [
        info(
            BUILTIN_DOMAIN,
            AUDIT_RETENTION_SWEPT,
            Meta::new("retention", "erase")
                .retention(RetentionClass::Long)
                .description("A retention sweep erased the detail of rows past their class's age"),
        ),
        info(
            BUILTIN_DOMAIN,
            AUDIT_SUBJECT_ERASED,
            Meta::new("retention", "erase")
                .retention(RetentionClass::Long)
                .description("The detail of every row about one subject was erased on request"),
        ),
        info(
            AGENT_DOMAIN,
            TOOL_CALLED,
            Meta::new("tool", "call").description("An agent called a tool"),
        ),
        info(
            AGENT_DOMAIN,
            MODEL_CALLED,
            Meta::new("model", "call").description("An agent called a model"),
        ),
        info(
            AGENT_DOMAIN,
            AGENT_HANDOFF,
            Meta::new("agent", "handoff").description("An agent handed work to another agent"),
        ),
    ]
});

fn builtin(code: &str) -> Option<Arc<CodeInfo>> {
    BUILTIN.iter().find(|i| i.code == code).cloned()
}

// === Registry ===

/// The codes by name. `Box<str>` keys let `get` look up by `&str`.
type Codes = HashMap<Box<str>, Arc<CodeInfo>, BuildHasherDefault<FxHasher>>;

/// The multiply-xor hash of rustc (`FxHasher`), which halves the cost of a
/// lookup against the default SipHash on keys as short as codes. SipHash's
/// resistance to flooding buys nothing here: only declared codes are ever
/// inserted, so a lookup of a hostile string costs at most one probe
/// sequence through a table of trusted keys.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    const SEED: u64 = 0xf135_7aea_2e62_a9c5;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some((word, rest)) = bytes.split_first_chunk::<8>() {
            self.add(u64::from_le_bytes(*word));
            bytes = rest;
        }
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the mixed bits at the top; the table picks
        // buckets with the low ones.
        self.0.rotate_left(26)
    }
}

/// A set of codes. Cheap to clone (Arc inside); readers never block each other.
///
/// Clones share the same codes. Lookups take a read lock, so concurrent
/// `get`s proceed in parallel; only loading and registering take the write
/// lock, briefly, after all validation is done.
///
/// # Examples
///
/// ```
/// use fasten::code::{Meta, Registry};
///
/// let registry = Registry::new();
/// registry.register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])?;
/// let info = registry.get("ORDER_PLACED").ok_or("not registered")?;
/// assert_eq!(info.domain(), "sales");
/// assert!(registry.get("ORDER_LOST").is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    codes: Arc<RwLock<Codes>>,
}

/// The registry behind [`Registry::global`].
static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry used by `fasten::init()` and `fasten::register`.
    pub fn global() -> &'static Self {
        &GLOBAL
    }

    /// Registers codes of one domain declared in Rust; all or nothing.
    ///
    /// A [`Meta`] with personal data must keep retention `short`, which
    /// [`Meta::pii`] sets.
    ///
    /// # Errors
    ///
    /// [`CodeError`] when the domain does not match `^[a-z][a-z0-9_]*$`, a
    /// code does not match `^[A-Z][A-Z0-9_]*$`, a code is given twice or is
    /// already registered, a category or action is empty, a passthrough key
    /// is empty, or a pii code has a retention class other than `short`.
    /// Nothing is registered then.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::code::{Meta, Registry};
    /// use fasten::Severity;
    ///
    /// let registry = Registry::new();
    /// registry.register(
    ///     "auth",
    ///     [
    ///         ("LOGIN_SUCCEEDED", Meta::new("session", "create")),
    ///         ("LOGIN_FAILED", Meta::new("session", "create").severity(Severity::Warn)),
    ///     ],
    /// )?;
    /// assert_eq!(registry.len(), 2);
    /// // Registering a code twice is an error.
    /// assert!(registry.register("auth", [("LOGIN_FAILED", Meta::new("session", "create"))]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register<I, S>(&self, domain: &str, codes: I) -> Result<(), CodeError>
    where
        I: IntoIterator<Item = (S, Meta)>,
        S: Into<String>,
    {
        let at = || Where::Register {
            domain: domain.to_owned(),
        };
        check_domain(domain).map_err(|message| CodeError::new(at(), None, message))?;

        let mut batch = Vec::new();
        let mut seen = HashSet::new();
        for (code, meta) in codes {
            let code = code.into();
            let fail = |message| CodeError::new(at(), Some(&code), message);
            check_code(&code).map_err(fail)?;
            if !seen.insert(code.clone()) {
                return Err(fail(format!(
                    "code {code}: duplicate, first declared earlier in this register call"
                )));
            }
            check_meta(&code, &meta).map_err(|(_, message)| fail(message))?;
            batch.push(Pending {
                info: CodeInfo::new(code, domain.to_owned(), None, meta, Origin::Code),
                at: at(),
            });
        }
        self.insert(batch).map(drop)
    }

    /// Loads one YAML file; all or nothing. Returns the number of codes added.
    ///
    /// A file named `<name>.codes.yaml` must declare `domain: <name>`.
    ///
    /// # Errors
    ///
    /// [`CodeError`] when the file cannot be read (the I/O error is its
    /// [`source`](std::error::Error::source)), or on any error of
    /// [`load_str`](Self::load_str). Nothing is added then.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::code::Registry;
    ///
    /// let registry = Registry::new();
    /// let err = registry.load_file("no/such/sales.codes.yaml").err().ok_or("loaded")?;
    /// assert!(err.to_string().starts_with("no/such/sales.codes.yaml: cannot read file"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<usize, CodeError> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path).map_err(|e| {
            CodeError::new(
                Where::file(path, None, None),
                None,
                format!("cannot read file: {e}"),
            )
            .with_source(e)
        })?;
        self.load_str(path, &yaml)
    }

    /// Loads YAML text; `origin` is the name used in error messages (a path).
    /// All or nothing; returns the number of codes added.
    ///
    /// When `origin`'s file name is `<name>.codes.yaml`, the domain must be
    /// `<name>`.
    ///
    /// # Errors
    ///
    /// [`CodeError`] naming `origin`, the line and, where there is one, the
    /// code, when the text is not valid YAML, a field is unknown, missing or of
    /// the wrong type, the domain or a code is malformed, the domain does not
    /// match the file name, a code's own `domain` differs from the file's, a
    /// code is declared twice (in this text or already in the registry), a
    /// category, action, emitter or passthrough key is empty, or a pii code
    /// says a retention class other than `short`. Nothing is added then.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::code::Registry;
    /// use fasten::RetentionClass;
    ///
    /// let registry = Registry::new();
    /// let yaml = "
    /// domain: sales
    /// codes:
    ///   CUSTOMER_CREATED:
    ///     category: customer
    ///     action: create
    ///     pii_in_detail: true
    /// ";
    /// assert_eq!(registry.load_str("sales.codes.yaml", yaml)?, 1);
    /// let info = registry.get("CUSTOMER_CREATED").ok_or("not loaded")?;
    /// assert_eq!(info.meta().retention_class, RetentionClass::Short);
    /// assert_eq!(info.origin().to_string(), "sales.codes.yaml:4");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_str(&self, origin: impl AsRef<Path>, yaml: &str) -> Result<usize, CodeError> {
        let path = origin.as_ref();
        let file: RawFile = serde_norway::from_str(yaml).map_err(|e| CodeError::yaml(path, e))?;
        let layout = Layout::scan(yaml);

        let at_domain = || Where::file(path, layout.domain_line, None);
        check_domain(&file.domain).map_err(|m| CodeError::new(at_domain(), None, m))?;
        if let Some(expected) = domain_from_file_name(path)
            && expected != file.domain
        {
            return Err(CodeError::new(
                at_domain(),
                None,
                format!(
                    "domain {:?} must match the file name (expected {expected:?})",
                    file.domain
                ),
            ));
        }
        if file.emitter.as_deref().is_some_and(|e| e.trim().is_empty()) {
            return Err(CodeError::new(
                Where::file(path, layout.emitter_line, None),
                None,
                "emitter must not be empty".to_owned(),
            ));
        }

        let mut batch: Vec<Pending> = Vec::with_capacity(file.codes.0.len());
        // How often each code was seen so far: the nth repeat of a key is
        // reported with its own line and that of the first.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (code, raw) in &file.codes.0 {
            let nth = {
                let count = seen.entry(code).or_insert(0);
                *count += 1;
                *count - 1
            };
            let key_line = layout.key_line(code, nth);
            let fail = |line: Option<usize>, message| {
                CodeError::new(Where::file(path, line, None), Some(code), message)
            };
            check_code(code).map_err(|m| fail(key_line, m))?;
            if nth > 0 {
                let first = layout.key_line(code, 0).map_or_else(
                    || format!("earlier in {}", path.display()),
                    |line| format!("at {}:{line}", path.display()),
                );
                return Err(fail(
                    key_line,
                    format!("code {code}: duplicate, first declared {first}"),
                ));
            }
            let field_line = |field| layout.field_line(code, field).or(key_line);
            if let Some(domain) = &raw.domain
                && *domain != file.domain
            {
                return Err(fail(
                    field_line("domain"),
                    format!(
                        "code {code}: domain {domain:?} must equal the file's domain {:?}",
                        file.domain
                    ),
                ));
            }
            let meta = raw.to_meta();
            check_meta(code, &meta).map_err(|(field, m)| fail(field_line(field), m))?;
            batch.push(Pending {
                info: CodeInfo::new(
                    code.clone(),
                    file.domain.clone(),
                    file.emitter.clone(),
                    meta,
                    Origin::File {
                        path: path.to_owned(),
                        line: key_line.or(layout.codes_line).unwrap_or(1),
                    },
                ),
                at: Where::file(path, key_line, None),
            });
        }
        self.insert(batch)
    }

    /// Looks a code up.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::code::{Meta, Registry};
    ///
    /// let registry = Registry::new();
    /// registry.register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])?;
    /// let info = registry.get("ORDER_PLACED").ok_or("not registered")?;
    /// assert_eq!(info.meta().action, "create");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, code: &str) -> Option<Arc<CodeInfo>> {
        self.read().get(code).cloned().or_else(|| builtin(code))
    }

    /// Every declared code, sorted by code. The built-in codes
    /// ([`AUDIT_RETENTION_SWEPT`], [`AUDIT_SUBJECT_ERASED`] and the agent
    /// codes [`TOOL_CALLED`], [`MODEL_CALLED`], [`AGENT_HANDOFF`]) are known to
    /// [`get`](Self::get) but not listed or counted here.
    pub fn codes(&self) -> Vec<Arc<CodeInfo>> {
        let mut all: Vec<_> = self.read().values().cloned().collect();
        all.sort_unstable_by(|a, b| a.code.cmp(&b.code));
        all
    }

    /// The number of codes.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no code is registered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> RwLockReadGuard<'_, Codes> {
        // A writer only holds the lock to check and insert already validated
        // codes, which cannot panic half-way, so a poisoned map is consistent.
        self.codes.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a validated batch unless one of its codes is already registered.
    /// Checking and inserting under one write lock keeps two concurrent loads
    /// of the same code from both succeeding.
    fn insert(&self, batch: Vec<Pending>) -> Result<usize, CodeError> {
        let mut codes = self.codes.write().unwrap_or_else(PoisonError::into_inner);
        for Pending { info, at } in &batch {
            if let Some(builtin) = builtin(&info.code) {
                return Err(CodeError::new(
                    at.clone(),
                    Some(&info.code),
                    format!(
                        "code {}: reserved, a built-in code of fasten (domain {}); choose another name",
                        info.code, builtin.domain
                    ),
                ));
            }
            if let Some(first) = codes.get(info.code.as_str()) {
                let first = match &first.origin {
                    Origin::File { .. } => format!("at {}", first.origin),
                    Origin::Code => format!("in rust code (domain {})", first.domain),
                };
                return Err(CodeError::new(
                    at.clone(),
                    Some(&info.code),
                    format!("code {}: duplicate, first declared {first}", info.code),
                ));
            }
        }
        codes.reserve(batch.len());
        let added = batch.len();
        for Pending { info, .. } in batch {
            codes.insert(info.code.as_str().into(), Arc::new(info));
        }
        Ok(added)
    }
}

/// A validated code waiting for the write lock, with where to point an error.
struct Pending {
    info: CodeInfo,
    at: Where,
}

// === validation ===

/// `^[A-Z][A-Z0-9_]*$`, by hand.
pub(crate) fn is_code(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `^[a-z][a-z0-9_]*$`, by hand.
fn is_domain(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_code(code: &str) -> Result<(), String> {
    if is_code(code) {
        return Ok(());
    }
    Err(with_example(
        format!("code {code:?} must match {CODE_PATTERN}"),
        suggest(code, true),
    ))
}

fn check_domain(domain: &str) -> Result<(), String> {
    if is_domain(domain) {
        return Ok(());
    }
    Err(with_example(
        format!("domain {domain:?} must match {DOMAIN_PATTERN}"),
        suggest(domain, false),
    ))
}

fn with_example(message: String, example: Option<String>) -> String {
    match example {
        Some(example) => format!("{message} (e.g. {example})"),
        None => message,
    }
}

/// A valid spelling of a malformed code (`upper`) or domain: `order-placed`
/// and `orderPlaced` become `ORDER_PLACED`. `None` when no obvious one exists.
fn suggest(s: &str, upper: bool) -> Option<String> {
    let mut out = String::with_capacity(s.len() + 4);
    let mut after_lower = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && after_lower {
                out.push('_');
            }
            after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            after_lower = false;
        }
    }
    let out = out.trim_end_matches('_');
    let valid = if upper { is_code(out) } else { is_domain(out) };
    (valid && out != s).then(|| out.to_owned())
}

/// The rules on a code's metadata shared by YAML and Rust declarations.
/// On failure returns the YAML field to point at and the message.
fn check_meta(code: &str, meta: &Meta) -> Result<(), (&'static str, String)> {
    if meta.category.trim().is_empty() {
        return Err((
            "category",
            format!("code {code}: category must not be empty"),
        ));
    }
    if meta.action.trim().is_empty() {
        return Err(("action", format!("code {code}: action must not be empty")));
    }
    if meta
        .detail_passthrough_keys
        .iter()
        .any(|k| k.trim().is_empty())
    {
        return Err((
            "detail_passthrough_keys",
            format!("code {code}: detail_passthrough_keys must not hold an empty key"),
        ));
    }
    Ok(())
}

/// `<name>` of a file named `<name>.codes.yaml`.
fn domain_from_file_name(path: &Path) -> Option<&str> {
    let stem = path.file_name()?.to_str()?.strip_suffix(FILE_SUFFIX)?;
    (!stem.is_empty()).then_some(stem)
}

// === YAML ===

/// A `*.codes.yaml` file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    domain: String,
    #[serde(default)]
    emitter: Option<String>,
    codes: RawCodes,
}

/// The `codes:` mapping in file order, repeated keys included, so that a
/// duplicate is reported by us with both lines whatever the parser does.
struct RawCodes(Vec<(String, RawCode)>);

impl<'de> Deserialize<'de> for RawCodes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodesVisitor;

        impl<'de> Visitor<'de> for CodesVisitor {
            type Value = RawCodes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from code to its metadata")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCodes, A::Error> {
                let mut codes = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    codes.push(entry);
                }
                Ok(RawCodes(codes))
            }
        }

        deserializer.deserialize_map(CodesVisitor)
    }
}

/// One code as written. Severity and retention are parsed while
/// deserializing so that a bad value gets the parser's line and column.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCode {
    category: String,
    action: String,
    #[serde(default, deserialize_with = "parse_opt")]
    severity: Option<Severity>,
    #[serde(default)]
    description: Option<String>,
    /// `None` when absent: a pii code then gets `short`, while an explicit
    /// `medium` or `long` on a pii code is kept as declared and forced to
    /// `short` (with a warning).
    #[serde(default, deserialize_with = "parse_opt")]
    retention_class: Option<RetentionClass>,
    #[serde(default)]
    pii_in_detail: bool,
    #[serde(default)]
    detail_passthrough_keys: Vec<String>,
    #[serde(default)]
    domain: Option<String>,
}

impl RawCode {
    fn to_meta(&self) -> Meta {
        let default_retention = if self.pii_in_detail {
            RetentionClass::Short
        } else {
            RetentionClass::default()
        };
        Meta {
            category: self.category.clone(),
            action: self.action.clone(),
            severity: self.severity.unwrap_or_default(),
            description: self.description.clone().unwrap_or_default(),
            retention_class: self.retention_class.unwrap_or(default_retention),
            pii_in_detail: self.pii_in_detail,
            detail_passthrough_keys: self.detail_passthrough_keys.clone(),
        }
    }
}

/// Deserializes an optional string through `T::from_str`, whose error lists
/// the accepted values. The string is parsed inside the parser's own
/// `deserialize_str` so that a bad value's error carries its line, column
/// and path (`codes.ORDER_PLACED.severity`), not those of the enclosing code.
fn parse_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct Parse<T>(PhantomData<T>);

    impl<T> Visitor<'_> for Parse<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            s.parse().map(Some).map_err(E::custom)
        }
    }

    struct ParseOpt<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for ParseOpt<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Parse(PhantomData))
        }
    }

    deserializer.deserialize_option(ParseOpt(PhantomData))
}

/// Where the keys of a codes file sit, found by scanning its text (the parser
/// gives no positions for mapping keys). Lines are 1-based.
struct Layout<'a> {
    lines: Vec<&'a str>,
    domain_line: Option<usize>,
    emitter_line: Option<usize>,
    codes_line: Option<usize>,
    /// The keys directly under `codes:`, in order, with their 0-based index
    /// into `lines`.
    keys: Vec<(&'a str, usize)>,
}

impl<'a> Layout<'a> {
    fn scan(yaml: &'a str) -> Self {
        let lines: Vec<&str> = yaml.lines().collect();
        let mut layout = Layout {
            lines: Vec::new(),
            domain_line: None,
            emitter_line: None,
            codes_line: None,
            keys: Vec::new(),
        };
        let mut in_codes = false;
        let mut key_indent = None;
        for (i, line) in lines.iter().enumerate() {
            let Some((indent, content)) = significant(line) else {
                continue;
            };
            if indent == 0 {
                if content.starts_with("---") || content.starts_with('%') {
                    continue;
                }
                let key = key_of(content);
                in_codes = key == Some("codes");
                // The first occurrence wins, as does the parser's error on a
                // repeated top-level key.
                let slot = match key {
                    Some("domain") => &mut layout.domain_line,
                    Some("emitter") => &mut layout.emitter_line,
                    Some("codes") => &mut layout.codes_line,
                    _ => continue,
                };
                slot.get_or_insert(i + 1);
            } else if in_codes {
                let key_indent = *key_indent.get_or_insert(indent);
                if indent == key_indent
                    && let Some(key) = key_of(content)
                {
                    layout.keys.push((key, i));
                }
            }
        }
        layout.lines = lines;
        layout
    }

    /// The line of the `nth` (0-based) occurrence of `code` under `codes:`.
    fn key_line(&self, code: &str, nth: usize) -> Option<usize> {
        self.key_index(code, nth).map(|i| i + 1)
    }

    fn key_index(&self, code: &str, nth: usize) -> Option<usize> {
        self.keys
            .iter()
            .filter(|(key, _)| *key == code)
            .nth(nth)
            .map(|&(_, i)| i)
    }

    /// The line of `field` directly inside the first declaration of `code`.
    fn field_line(&self, code: &str, field: &str) -> Option<usize> {
        let start = self.key_index(code, 0)?;
        let (key_indent, _) = significant(self.lines[start])?;
        let mut field_indent = None;
        for (i, line) in self.lines.iter().enumerate().skip(start + 1) {
            let Some((indent, content)) = significant(line) else {
                continue;
            };
            if indent <= key_indent {
                break;
            }
            if *field_indent.get_or_insert(indent) == indent && key_of(content) == Some(field) {
                return Some(i + 1);
            }
        }
        None
    }
}

/// The indentation and content of a line that holds more than blanks or a
/// comment.
fn significant(line: &str) -> Option<(usize, &str)> {
    let content = line.trim_start_matches(' ');
    if content.trim().is_empty() || content.starts_with('#') {
        return None;
    }
    Some((line.len() - content.len(), content))
}

/// The key of a `key: value` line: plain, `"quoted"` or `'quoted'`.
fn key_of(content: &str) -> Option<&str> {
    let (key, rest) = match content.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => {
            let inner = &content[1..];
            let end = inner.find(char::from(q))?;
            (&inner[..end], &inner[end + 1..])
        }
        _ => {
            // A plain key ends at the first `:` followed by a blank or the
            // end of the line (`a:b` is a scalar, not a key).
            let end = content.match_indices(':').map(|(i, _)| i).find(|&i| {
                content[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
            })?;
            (content[..end].trim_end(), &content[end..])
        }
    };
    let after = rest.trim_start_matches(' ').strip_prefix(':')?;
    after
        .chars()
        .next()
        .is_none_or(char::is_whitespace)
        .then_some(key)
}

// === CodeError ===

/// Where a [`CodeError`] points.
#[derive(Debug, Clone)]
enum Where {
    File {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
    },
    Register {
        domain: String,
    },
}

impl Where {
    fn file(path: &Path, line: Option<usize>, column: Option<usize>) -> Self {
        Self::File {
            path: path.to_owned(),
            line,
            column,
        }
    }
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line, column } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                    if let Some(column) = column {
                        write!(f, ":{column}")?;
                    }
                }
                Ok(())
            }
            Self::Register { domain } => write!(f, "register({domain})"),
        }
    }
}

/// A code declaration that breaks a rule.
///
/// `Display` names the file and line (`path:line:`, when from YAML) or the
/// register call (`register(domain):`), then the code, the field and the
/// rule, in lowercase with no trailing period, showing a good value where
/// that helps:
///
/// ```text
/// sales.codes.yaml:7: code ORDER_PLACED: category must not be empty
/// ```
///
/// [`source`](std::error::Error::source) is the YAML parse error or the I/O
/// error when there is one; its text is part of this message too.
#[derive(Debug)]
pub struct CodeError {
    at: Where,
    code: Option<String>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CodeError {
    fn new(at: Where, code: Option<&str>, message: String) -> Self {
        Self {
            at,
            code: code.map(str::to_owned),
            message,
            source: None,
        }
    }

    fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// A parse or type error, keeping the parser's position but putting it
    /// first, after the file, like every other error.
    fn yaml(path: &Path, err: serde_norway::Error) -> Self {
        let mut message = err.to_string();
        let location = err.location();
        if let Some(loc) = &location {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
        }
        let at = Where::file(
            path,
            location.as_ref().map(serde_norway::Location::line),
            location.as_ref().map(serde_norway::Location::column),
        );
        Self::new(at, None, message).with_source(err)
    }

    /// The file at fault, when the declaration came from one.
    pub fn path(&self) -> Option<&Path> {
        match &self.at {
            Where::File { path, .. } => Some(path),
            Where::Register { .. } => None,
        }
    }

    /// The 1-based line at fault, when the declaration came from a file and
    /// the line is known.
    pub fn line(&self) -> Option<usize> {
        match &self.at {
            Where::File { line, .. } => *line,
            Where::Register { .. } => None,
        }
    }

    /// The code at fault, when the rule is about one code. `None` for YAML
    /// syntax and type errors, whose message names it through the YAML path
    /// (`codes.ORDER_PLACED.severity`).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl fmt::Display for CodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl std::error::Error for CodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const SALES: &str = "\
domain: sales
emitter: order-service
codes:
  ORDER_PLACED:
    category: order
    action: create
    severity: warn
    description: An order was placed
    retention_class: long
    detail_passthrough_keys: [order_id]
    domain: sales

  # A comment between codes.
  ORDER_CANCELLED:
    category: order
    action: delete
";

    fn fails<T: fmt::Debug>(r: Result<T, CodeError>) -> CodeError {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e,
        }
    }

    /// The error of loading `yaml` as `sales.codes.yaml` into a new registry,
    /// which must stay empty.
    fn load_err(yaml: &str) -> CodeError {
        let registry = Registry::new();
        let err = fails(registry.load_str("sales.codes.yaml", yaml));
        assert!(registry.is_empty(), "a failed load added codes");
        err
    }

    fn one_code(fields: &str) -> String {
        format!(
            "domain: sales\ncodes:\n  ORDER_PLACED:\n    category: order\n    action: create\n{fields}"
        )
    }

    #[test]
    fn good_file_loads_and_get_returns_the_metadata() -> TestResult {
        let registry = Registry::new();
        assert_eq!(registry.load_str("sales.codes.yaml", SALES)?, 2);
        assert_eq!(registry.len(), 2);

        let info = registry.get("ORDER_PLACED").ok_or("missing")?;
        assert_eq!(info.code(), "ORDER_PLACED");
        assert_eq!(info.domain(), "sales");
        assert_eq!(info.emitter(), Some("order-service"));
        assert_eq!(
            *info.meta(),
            Meta::new("order", "create")
                .severity(Severity::Warn)
                .description("An order was placed")
                .retention(RetentionClass::Long)
                .with_keys(["order_id"])
        );
        assert_eq!(
            *info.origin(),
            Origin::File {
                path: "sales.codes.yaml".into(),
                line: 4
            }
        );

        // Absent optional fields take their defaults.
        let info = registry.get("ORDER_CANCELLED").ok_or("missing")?;
        assert_eq!(*info.meta(), Meta::new("order", "delete"));
        assert_eq!(info.origin().to_string(), "sales.codes.yaml:14");
        assert!(registry.get("ORDER_LOST").is_none());
        Ok(())
    }

    impl Meta {
        fn with_keys(mut self, keys: impl IntoIterator<Item = &'static str>) -> Self {
            self.detail_passthrough_keys = keys.into_iter().map(Into::into).collect();
            self
        }
    }

    #[test]
    fn meta_builders_set_fields() {
        let meta = Meta::new("user", "update")
            .retention(RetentionClass::Long)
            .pii(["user_id"]);
        assert!(meta.pii_in_detail);
        assert_eq!(meta.retention_class, RetentionClass::Short);
        assert_eq!(meta.detail_passthrough_keys, ["user_id"]);
        assert_eq!(meta.severity, Severity::Info);
        assert_eq!(meta.description, "");
    }

    #[test]
    fn origin_displays_as_path_line_or_code() {
        let file = Origin::File {
            path: "codes/sales.codes.yaml".into(),
            line: 12,
        };
        assert_eq!(file.to_string(), "codes/sales.codes.yaml:12");
        assert_eq!(Origin::Code.to_string(), "code");
    }

    #[test]
    fn rejects_malformed_codes() {
        let err = load_err(&SALES.replace("ORDER_PLACED:", "order-placed:"));
        insta::assert_snapshot!(err, @r#"sales.codes.yaml:4: code "order-placed" must match ^[A-Z][A-Z0-9_]*$ (e.g. ORDER_PLACED)"#);
        assert_eq!(err.line(), Some(4));
        assert_eq!(err.code(), Some("order-placed"));

        let err = load_err(&SALES.replace("ORDER_CANCELLED:", "orderCancelled:"));
        insta::assert_snapshot!(err, @r#"sales.codes.yaml:14: code "orderCancelled" must match ^[A-Z][A-Z0-9_]*$ (e.g. ORDER_CANCELLED)"#);

        // No suggestion when there is no obvious one.
        let err = load_err(&SALES.replace("ORDER_PLACED:", "'9LIVES':"));
        insta::assert_snapshot!(err, @r#"sales.codes.yaml:4: code "9LIVES" must match ^[A-Z][A-Z0-9_]*$"#);

        let err = fails(Registry::new().register("sales", [("", Meta::new("a", "b"))]));
        insta::assert_snapshot!(err, @r#"register(sales): code "" must match ^[A-Z][A-Z0-9_]*$"#);
    }

    #[test]
    fn rejects_duplicate_codes_in_one_file_naming_both_lines() {
        let yaml = format!("{SALES}  ORDER_PLACED:\n    category: order\n    action: create\n");
        let err = load_err(&yaml);
        insta::assert_snapshot!(err, @"sales.codes.yaml:17: code ORDER_PLACED: duplicate, first declared at sales.codes.yaml:4");
        assert_eq!(err.line(), Some(17));
        assert_eq!(err.path(), Some(Path::new("sales.codes.yaml")));
    }

    #[test]
    fn rejects_duplicate_codes_across_files() -> TestResult {
        let registry = Registry::new();
        registry.load_str("sales.codes.yaml", SALES)?;
        let billing = "\
domain: billing
codes:
  INVOICE_SENT:
    category: invoice
    action: create
  ORDER_PLACED:
    category: order
    action: create
";
        let err = fails(registry.load_str("billing.codes.yaml", billing));
        insta::assert_snapshot!(err, @"billing.codes.yaml:6: code ORDER_PLACED: duplicate, first declared at sales.codes.yaml:4");
        // All or nothing: the good code of the failed file is not there.
        assert!(registry.get("INVOICE_SENT").is_none());
        assert_eq!(registry.len(), 2);

        // Loading the same file twice is a duplicate too.
        let err = fails(registry.load_str("sales.codes.yaml", SALES));
        insta::assert_snapshot!(err, @"sales.codes.yaml:4: code ORDER_PLACED: duplicate, first declared at sales.codes.yaml:4");
        Ok(())
    }

    #[test]
    fn rejects_duplicates_between_code_and_files() -> TestResult {
        let registry = Registry::new();
        registry.register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])?;
        let err = fails(registry.load_str("sales.codes.yaml", SALES));
        insta::assert_snapshot!(err, @"sales.codes.yaml:4: code ORDER_PLACED: duplicate, first declared in rust code (domain sales)");

        let registry = Registry::new();
        registry.load_str("sales.codes.yaml", SALES)?;
        let err = fails(registry.register(
            "shop",
            [
                ("CART_FILLED", Meta::new("cart", "update")),
                ("ORDER_CANCELLED", Meta::new("order", "delete")),
            ],
        ));
        insta::assert_snapshot!(err, @"register(shop): code ORDER_CANCELLED: duplicate, first declared at sales.codes.yaml:14");
        assert!(registry.get("CART_FILLED").is_none());
        assert_eq!(err.code(), Some("ORDER_CANCELLED"));
        assert_eq!(err.path(), None);
        Ok(())
    }

    #[test]
    fn rejects_duplicates_within_one_register_call() {
        let registry = Registry::new();
        let err = fails(registry.register(
            "sales",
            [
                ("ORDER_PLACED", Meta::new("order", "create")),
                ("ORDER_PLACED", Meta::new("order", "create")),
            ],
        ));
        insta::assert_snapshot!(err, @"register(sales): code ORDER_PLACED: duplicate, first declared earlier in this register call");
        assert!(registry.is_empty());
    }

    #[test]
    fn builtin_codes_are_known_to_every_registry_and_reserved() {
        let registry = Registry::new();
        for code in [AUDIT_RETENTION_SWEPT, AUDIT_SUBJECT_ERASED] {
            let info = registry.get(code).expect("built in");
            assert_eq!(info.domain(), "audit");
            assert_eq!(info.meta().retention_class, RetentionClass::Long);
        }
        for code in [TOOL_CALLED, MODEL_CALLED, AGENT_HANDOFF] {
            let info = registry.get(code).expect("built in");
            assert_eq!(info.domain(), "agent");
            assert_eq!(info.meta().retention_class, RetentionClass::Medium);
        }
        assert!(registry.is_empty(), "built-ins are not listed");
        let err = fails(registry.register("tools", [(TOOL_CALLED, Meta::new("tool", "call"))]));
        insta::assert_snapshot!(err, @"register(tools): code TOOL_CALLED: reserved, a built-in code of fasten (domain agent); choose another name");
        let err = fails(registry.register(
            "audit",
            [(AUDIT_RETENTION_SWEPT, Meta::new("retention", "erase"))],
        ));
        insta::assert_snapshot!(err, @"register(audit): code AUDIT_RETENTION_SWEPT: reserved, a built-in code of fasten (domain audit); choose another name");
        assert!(registry.is_empty());
    }

    #[test]
    fn rejects_malformed_domains() {
        let err = load_err(&SALES.replace("domain: sales\nemitter", "domain: Sales\nemitter"));
        insta::assert_snapshot!(err, @r#"sales.codes.yaml:1: domain "Sales" must match ^[a-z][a-z0-9_]*$ (e.g. sales)"#);

        let err = fails(Registry::new().register("order-service", [("A", Meta::new("a", "b"))]));
        insta::assert_snapshot!(err, @r#"register(order-service): domain "order-service" must match ^[a-z][a-z0-9_]*$ (e.g. order_service)"#);
    }

    #[test]
    fn domain_must_match_the_file_name() -> TestResult {
        let registry = Registry::new();
        let err = fails(registry.load_str("codes/billing.codes.yaml", SALES));
        insta::assert_snapshot!(err, @r#"codes/billing.codes.yaml:1: domain "sales" must match the file name (expected "billing")"#);
        // Other names are not checked.
        assert_eq!(registry.load_str("codes/shop.yaml", SALES)?, 2);
        Ok(())
    }

    #[test]
    fn code_domain_must_equal_the_files() {
        let err = load_err(&one_code("    domain: billing\n"));
        insta::assert_snapshot!(err, @r#"sales.codes.yaml:6: code ORDER_PLACED: domain "billing" must equal the file's domain "sales""#);
    }

    #[test]
    fn rejects_empty_required_values() {
        let err = load_err(
            "domain: sales\ncodes:\n  ORDER_PLACED:\n    category: ''\n    action: create\n",
        );
        insta::assert_snapshot!(err, @"sales.codes.yaml:4: code ORDER_PLACED: category must not be empty");

        let err = load_err(
            "domain: sales\ncodes:\n  ORDER_PLACED:\n    category: order\n    action: ' '\n",
        );
        insta::assert_snapshot!(err, @"sales.codes.yaml:5: code ORDER_PLACED: action must not be empty");

        let err = load_err(&one_code("    detail_passthrough_keys: [id, '']\n"));
        insta::assert_snapshot!(err, @"sales.codes.yaml:6: code ORDER_PLACED: detail_passthrough_keys must not hold an empty key");

        let err = load_err(&SALES.replace("emitter: order-service", "emitter: ''"));
        insta::assert_snapshot!(err, @"sales.codes.yaml:2: emitter must not be empty");

        let err =
            fails(Registry::new().register("sales", [("ORDER_PLACED", Meta::new("order", ""))]));
        insta::assert_snapshot!(err, @"register(sales): code ORDER_PLACED: action must not be empty");
    }

    #[test]
    fn rejects_missing_and_unknown_fields() {
        let err = load_err("domain: sales\ncodes:\n  ORDER_PLACED:\n    action: create\n");
        insta::assert_snapshot!(err, @"sales.codes.yaml:4:5: codes.ORDER_PLACED: missing field `category`");

        let err = load_err(&one_code("    colour: red\n"));
        insta::assert_snapshot!(err, @"sales.codes.yaml:6:5: codes.ORDER_PLACED: unknown field `colour`, expected one of `category`, `action`, `severity`, `description`, `retention_class`, `pii_in_detail`, `detail_passthrough_keys`, `domain`");

        let err = load_err(&format!("owner: team\n{SALES}"));
        insta::assert_snapshot!(err, @"sales.codes.yaml:1:1: unknown field `owner`, expected one of `domain`, `emitter`, `codes`");

        let err = load_err("domain: sales\n");
        insta::assert_snapshot!(err, @"sales.codes.yaml:1:1: missing field `codes`");

        let err = load_err(&one_code("    category: user\n"));
        insta::assert_snapshot!(err, @"sales.codes.yaml:4:5: codes.ORDER_PLACED: duplicate field `category`");
    }

    #[test]
    fn rejects_bad_values_showing_the_good_ones() {
        let err = load_err(&one_code("    severity: loud\n"));
        insta::assert_snapshot!(err, @r#"sales.codes.yaml:6:15: codes.ORDER_PLACED.severity: invalid severity "loud": expected one of debug, info, warn, error, critical"#);

        let err = load_err(&one_code("    retention_class: forever\n"));
        insta::assert_snapshot!(err, @r#"sales.codes.yaml:6:22: codes.ORDER_PLACED.retention_class: invalid retention_class "forever": expected one of short, medium, long"#);

        let err = load_err(&one_code("    pii_in_detail: maybe\n"));
        insta::assert_snapshot!(err, @"sales.codes.yaml:6:20: codes.ORDER_PLACED.pii_in_detail: invalid type: string \"maybe\", expected a boolean");

        let err = load_err(
            "domain: sales\ncodes:\n  ORDER_PLACED:\n    category: [order]\n    action: create\n",
        );
        insta::assert_snapshot!(err, @"sales.codes.yaml:4:15: codes.ORDER_PLACED.category: invalid type: sequence, expected a string");

        let err = load_err("domain: sales\ncodes: [ORDER_PLACED]\n");
        insta::assert_snapshot!(err, @"sales.codes.yaml:2:8: codes: invalid type: sequence, expected a mapping from code to its metadata");
    }

    #[test]
    fn yaml_syntax_errors_name_the_file_and_keep_the_source() {
        let err = load_err(
            "domain: sales\ncodes:\n  ORDER_PLACED:\n    category: order\n      action: create\n",
        );
        insta::assert_snapshot!(err, @"sales.codes.yaml:5:13: mapping values are not allowed in this context");
        let source =
            std::error::Error::source(&err).and_then(|s| s.downcast_ref::<serde_norway::Error>());
        assert!(source.is_some(), "source is the yaml error");
        assert_eq!(err.line(), Some(5));

        // The parser's context keeps its own position.
        let err = load_err("domain: sales\ncodes:\n  ORDER_PLACED: {category: order\n");
        insta::assert_snapshot!(err, @"sales.codes.yaml:4:1: did not find expected ',' or '}', while parsing a flow mapping at line 3 column 17");

        let err = load_err("");
        insta::assert_snapshot!(err, @"sales.codes.yaml:1:1: missing field `domain`");
    }

    #[test]
    fn pii_forces_short_retention() -> TestResult {
        let registry = Registry::new();
        registry.load_str("sales.codes.yaml", &one_code("    pii_in_detail: true\n"))?;
        let info = registry.get("ORDER_PLACED").ok_or("missing")?;
        assert_eq!(info.meta().retention_class, RetentionClass::Short);
        assert!(info.meta().pii_in_detail);

        let ok = Registry::new();
        ok.load_str(
            "sales.codes.yaml",
            &one_code("    pii_in_detail: true\n    retention_class: short\n"),
        )?;

        assert_eq!(info.declared_retention_class(), None);

        // An explicit longer class is accepted and kept short: what the
        // file declared stays visible (`fasten dump --format json`).
        for (yaml, declared) in [
            (
                "    pii_in_detail: true\n    retention_class: long\n",
                RetentionClass::Long,
            ),
            (
                "    retention_class: medium\n    pii_in_detail: true\n",
                RetentionClass::Medium,
            ),
        ] {
            let registry = Registry::new();
            registry.load_str("sales.codes.yaml", &one_code(yaml))?;
            let info = registry.get("ORDER_PLACED").ok_or("missing")?;
            assert_eq!(info.meta().retention_class, RetentionClass::Short);
            assert_eq!(info.declared_retention_class(), Some(declared));
        }

        // In Rust too, whatever the order of `pii` and `retention`.
        let registry = Registry::new();
        registry.register(
            "sales",
            [
                (
                    "A",
                    Meta::new("a", "b")
                        .retention(RetentionClass::Long)
                        .pii(["id"]),
                ),
                (
                    "B",
                    Meta::new("a", "b")
                        .pii(["id"])
                        .retention(RetentionClass::Long),
                ),
            ],
        )?;
        for code in ["A", "B"] {
            let info = registry.get(code).ok_or("missing")?;
            assert_eq!(info.meta().retention_class, RetentionClass::Short, "{code}");
        }
        assert_eq!(
            registry
                .get("B")
                .ok_or("missing")?
                .declared_retention_class(),
            Some(RetentionClass::Long)
        );
        Ok(())
    }

    #[test]
    fn codes_are_sorted_by_code() -> TestResult {
        let registry = Registry::new();
        registry.register(
            "z",
            [("ZED", Meta::new("a", "b")), ("ALPHA", Meta::new("a", "b"))],
        )?;
        registry.load_str("sales.codes.yaml", SALES)?;
        let codes: Vec<_> = registry
            .codes()
            .iter()
            .map(|c| c.code().to_owned())
            .collect();
        assert_eq!(codes, ["ALPHA", "ORDER_CANCELLED", "ORDER_PLACED", "ZED"]);
        assert_eq!(registry.len(), 4);
        assert!(!registry.is_empty());
        assert!(Registry::new().codes().is_empty());
        Ok(())
    }

    #[test]
    fn empty_code_map_loads_nothing() -> TestResult {
        let registry = Registry::new();
        assert_eq!(
            registry.load_str("sales.codes.yaml", "domain: sales\ncodes: {}\n")?,
            0
        );
        // A bare `codes:` (null) reads as an empty mapping too.
        assert_eq!(
            registry.load_str("sales.codes.yaml", "domain: sales\ncodes:\n")?,
            0
        );
        assert!(registry.is_empty());
        Ok(())
    }

    #[test]
    fn flow_style_codes_load_with_the_codes_line() -> TestResult {
        let registry = Registry::new();
        let yaml = "domain: sales\ncodes: {ORDER_PLACED: {category: order, action: create}}\n";
        registry.load_str("sales.codes.yaml", yaml)?;
        let info = registry.get("ORDER_PLACED").ok_or("missing")?;
        assert_eq!(info.origin().to_string(), "sales.codes.yaml:2");

        // Errors about such a code go without a line rather than a wrong one.
        let err = fails(registry.load_str(
            "shop.codes.yaml",
            "domain: shop\ncodes: {ORDER_PLACED: {category: order, action: create}}\n",
        ));
        insta::assert_snapshot!(err, @"shop.codes.yaml: code ORDER_PLACED: duplicate, first declared at sales.codes.yaml:2");
        Ok(())
    }

    #[test]
    fn quoted_and_commented_keys_are_found() -> TestResult {
        let registry = Registry::new();
        let yaml = "\
# Sales codes.
---
domain: sales   # the domain
codes:

    \"ORDER_PLACED\":   # quoted
        category: order
        action: create
    'ORDER_CANCELLED' :
        category: order
        action: delete
";
        registry.load_str("sales.codes.yaml", yaml)?;
        let line = |code| registry.get(code).map(|c| c.origin().to_string());
        assert_eq!(line("ORDER_PLACED").as_deref(), Some("sales.codes.yaml:6"));
        assert_eq!(
            line("ORDER_CANCELLED").as_deref(),
            Some("sales.codes.yaml:9")
        );
        Ok(())
    }

    #[test]
    fn registry_is_shared_across_threads() -> TestResult {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Registry>();
        assert_send_sync::<CodeError>();

        let registry = Registry::new();
        registry.load_str("sales.codes.yaml", SALES)?;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let registry = registry.clone();
                    s.spawn(move || {
                        let code = format!("THREAD_{t}");
                        registry
                            .register("threads", [(code.clone(), Meta::new("thread", "run"))])
                            .map_err(|e| e.to_string())?;
                        for _ in 0..1000 {
                            let found = registry.get("ORDER_PLACED").is_some()
                                && registry.get(&code).is_some();
                            if !found {
                                return Err("lookup failed".to_owned());
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().map_err(|_| "thread panicked".to_owned())?)
        })?;
        assert_eq!(registry.len(), 6);
        Ok(())
    }

    #[test]
    fn global_is_one_registry() {
        assert!(std::ptr::eq(Registry::global(), Registry::global()));
    }

    #[test]
    fn load_file_checks_the_domain_against_the_file_name() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sales.codes.yaml");
        std::fs::write(
            &path,
            SALES
                .replace("domain: sales\n", "domain: billing\n")
                .replace("domain: sales", "domain: billing"),
        )?;
        let registry = Registry::new();
        let err = fails(registry.load_file(&path));
        let text = err
            .to_string()
            .replace(&dir.path().display().to_string(), "$DIR");
        insta::assert_snapshot!(text, @r#"$DIR/sales.codes.yaml:1: domain "billing" must match the file name (expected "sales")"#);
        assert!(registry.is_empty());

        std::fs::write(&path, SALES)?;
        assert_eq!(registry.load_file(&path)?, 2);
        let info = registry.get("ORDER_PLACED").ok_or("missing")?;
        assert_eq!(*info.origin(), Origin::File { path, line: 4 });
        Ok(())
    }

    #[test]
    fn load_file_reports_unreadable_files() -> TestResult {
        let dir = tempfile::tempdir()?;
        let err = fails(Registry::new().load_file(dir.path().join("gone.codes.yaml")));
        let text = err
            .to_string()
            .replace(&dir.path().display().to_string(), "$DIR");
        insta::assert_snapshot!(text, @"$DIR/gone.codes.yaml: cannot read file: No such file or directory (os error 2)");
        let source =
            std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            source.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
        Ok(())
    }
}
