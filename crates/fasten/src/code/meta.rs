//! A code's metadata ([`Meta`]), what the registry keeps about it ([`CodeInfo`]) and where it was declared ([`Origin`]).

use super::*;

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
    pub(super) code: String,
    pub(super) domain: String,
    emitter: Option<String>,
    meta: Meta,
    pub(super) origin: Origin,
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

    pub(super) fn new(
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
