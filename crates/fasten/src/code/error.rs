//! [`CodeError`]: what was wrong with a code, and where it was declared.

use super::*;

// === CodeError ===

/// Where a [`CodeError`] points.
#[derive(Debug, Clone)]
pub(super) enum Where {
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
    pub(super) fn file(path: &Path, line: Option<usize>, column: Option<usize>) -> Self {
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
/// When the file cannot be read or parsed, `Display` says only that
/// (`cannot read file`, `cannot parse the code file`) and
/// [`source`](std::error::Error::source) is the cause: the I/O error, or
/// the YAML parser's error naming the field (`codes.ORDER_PLACED.severity`)
/// and what is wrong with it. Each is said once, so print the chain (`{:#}`
/// with anyhow, or walk `source()`) to see both:
///
/// ```text
/// sales.codes.yaml:5:13: cannot parse the code file: mapping values are not allowed in this context at line 5 column 13
/// ```
#[derive(Debug)]
pub struct CodeError {
    at: Where,
    code: Option<String>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CodeError {
    pub(super) fn new(at: Where, code: Option<&str>, message: String) -> Self {
        Self {
            at,
            code: code.map(str::to_owned),
            message,
            source: None,
        }
    }

    pub(super) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// A parse or type error: the parser's position first, after the file,
    /// like every other error; the parser's message is the source only.
    pub(super) fn yaml(path: &Path, err: serde_norway::Error) -> Self {
        let location = err.location();
        let at = Where::file(
            path,
            location.as_ref().map(serde_norway::Location::line),
            location.as_ref().map(serde_norway::Location::column),
        );
        Self::new(at, None, "cannot parse the code file".to_owned()).with_source(err)
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
    /// syntax and type errors, whose source names it through the YAML path
    /// (`codes.ORDER_PLACED.severity`).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The message and each cause after it, `a: b`: one line for callers
    /// that cannot walk `source()`, such as the language bindings.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
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
