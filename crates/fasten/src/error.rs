//! The one error type of the crate.

use std::fmt;

/// `Result` with fasten's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in fasten.
///
/// Match on [`Error::kind`]; the underlying cause, when there is one, is
/// available through [`std::error::Error::source`]. `Display` shows the
/// message and then each cause once, on one line (see its impl), so a
/// reporter that walks `source()` as well should stop at a `fasten::Error`,
/// as the CLI does.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting is missing or malformed; `var` names the environment variable
    /// (or the builder setter of the same name).
    Config {
        /// The `FASTEN_*` variable at fault.
        var: &'static str,
    },
    /// A code registry (YAML file or `register` call) broke a rule.
    Codes,
    /// `emit` named a code that no registry declares.
    UnknownCode,
    /// An event field broke a rule of the row contract.
    InvalidEvent {
        /// The event field at fault (`detail`, `request_id`, `actor_kind` …).
        field: &'static str,
    },
    /// The audit queue stayed full for longer than the configured block time.
    QueueFull,
    /// `flush` or `shutdown` did not finish within its timeout.
    Timeout,
    /// The store failed (open, migrate, insert, commit or read).
    Store,
    /// The pipeline is shut down, or its writer thread is gone.
    Closed,
    /// [`init`](crate::init) was called while a process-wide pipeline is
    /// installed.
    AlreadyInitialised,
    /// A signing key, verifier key or checkpoint note is malformed.
    Checkpoint,
    /// A node's chain cannot be continued: its tip's `monotonic_seq` has no
    /// successor. The writer fails such batches at once (counted in
    /// `QueueStats::chain_exhausted`) instead of retrying them forever.
    ChainExhausted {
        /// The node whose chain is exhausted.
        node: String,
    },
    /// The central store of a fleet refused a shipped batch: the node is
    /// not the shipper's to ship, or its chain forked there (shipping for
    /// it stops until an operator looks).
    Fleet {
        /// The node whose batch was refused.
        node: String,
    },
    /// The table was written by another fasten implementation: it lacks
    /// the columns of canonical form 3 (`outcome`, `detail_salt`,
    /// `detail_commitment`), or the chain to continue holds rows of
    /// canonical form 1 or 2. fasten never writes to such a table and does
    /// not verify it; the reader still reads its rows. The writer fails
    /// such batches at once instead of retrying them.
    ForeignTable {
        /// The table, as the store names it.
        table: String,
    },
}

// === impl Error ===

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn config(var: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config { var }, message)
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidEvent { field }, message)
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn store(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::new(ErrorKind::Store, message).with_source(source)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

/// The message and every cause after it on one line, `a: b: c`, so a log
/// line or a `main` that returns the error says what to act on (the file
/// and line of a bad code file, the host and port and the server's reason
/// of a failed connection). The causes stay reachable through
/// [`source`](std::error::Error::source) too.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut last = self.message.clone();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let text = s.to_string();
            // A cause that repeats what was already said adds nothing.
            if !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            source = s.source();
        }
        Ok(())
    }
}

/// What `fn main() -> Result<(), fasten::Error>` prints: the same line as
/// `Display`, then the kind.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} ({:?})", self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}
