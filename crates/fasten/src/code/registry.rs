//! The [`Registry`] of codes, its process-wide instance and the built-in `audit` and `agent` codes.

use super::*;

// === built-in codes ===

/// The domain of fasten's own codes.
pub const BUILTIN_DOMAIN: &str = "audit";
/// Built-in code: a retention sweep erased the detail of rows past their
/// class's age (retention `long`).
pub const AUDIT_RETENTION_SWEPT: &str = "AUDIT_RETENTION_SWEPT";
/// Built-in code: the detail of every row about one subject was erased on
/// request (retention `long`).
pub const AUDIT_SUBJECT_ERASED: &str = "AUDIT_SUBJECT_ERASED";

/// Built-in code: the central store of a fleet refused a shipped row or
/// checkpoint that does not continue its node's chain there; shipping for
/// that node stopped (retention `long`).
pub const FLEET_FORK_DETECTED: &str = "FLEET_FORK_DETECTED";

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
pub(super) static BUILTIN: LazyLock<[Arc<CodeInfo>; 6]> = LazyLock::new(|| {
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
            BUILTIN_DOMAIN,
            FLEET_FORK_DETECTED,
            Meta::new("fleet", "refuse")
                .retention(RetentionClass::Long)
                .description(
                    "The central store refused a shipped row or checkpoint that forks its node's chain",
                ),
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

pub(super) fn builtin(code: &str) -> Option<Arc<CodeInfo>> {
    BUILTIN.iter().find(|i| i.code == code).cloned()
}

// === Registry ===

/// The codes by name. `Box<str>` keys let `get` look up by `&str`.
pub(super) type Codes = HashMap<Box<str>, Arc<CodeInfo>, BuildHasherDefault<FxHasher>>;

/// The multiply-xor hash of rustc (`FxHasher`), which halves the cost of a
/// lookup against the default SipHash on keys as short as codes. SipHash's
/// resistance to flooding buys nothing here: only declared codes are ever
/// inserted, so a lookup of a hostile string costs at most one probe
/// sequence through a table of trusted keys.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

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
pub(super) static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

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
                "cannot read file".to_owned(),
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
    /// code (the YAML parser's error is its
    /// [`source`](std::error::Error::source)), when the text is not valid YAML, a field is unknown, missing or of
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
                        info.code,
                        builtin.domain()
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
pub(super) struct Pending {
    info: CodeInfo,
    at: Where,
}
