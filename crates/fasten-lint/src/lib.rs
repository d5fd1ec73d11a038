//! The coverage lint behind `fasten lint`: every change to data leaves an
//! audit event.
//!
//! Source is parsed with tree-sitter grammars (Rust, Python, Go,
//! TypeScript/JavaScript). A **mutation site** is a call that writes data (SQL
//! `INSERT`/`UPDATE`/`DELETE`/`MERGE` text passed to an execute or query
//! call, an ORM write) or an HTTP handler for `POST`/`PUT`/`PATCH`/`DELETE`.
//! A site is **covered** when a function around it, or a function it calls
//! that is defined in the same file, calls fasten's emit; a comment
//! `fasten:no-audit <reason>` on the site, or above it or its function,
//! waives it. The rules are in [`Config`] (`fasten-lint.toml`).
//!
//! ```
//! let report = fasten_lint::lint_source(
//!     "billing.py",
//!     "def cancel(db, id):\n    db.execute(\"UPDATE plans SET state = 'cancelled' WHERE id = ?\", (id,))\n",
//!     &fasten_lint::Config::default(),
//! )?;
//! assert_eq!(
//!     report.human(),
//!     "billing.py:2:5  UPDATE without an audit event (in fn cancel)\n"
//! );
//! # Ok::<(), String>(())
//! ```

mod config;
mod report;
mod scan;

use std::path::{Path, PathBuf};

pub use config::{Config, DEFAULTS};
pub use report::{Report, Site, Status, Unused};

/// A language the lint parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lang {
    /// `.rs`
    Rust,
    /// `.py`
    Python,
    /// `.go`
    Go,
    /// `.ts`, `.mts`, `.cts`
    TypeScript,
    /// `.tsx`
    Tsx,
    /// `.js`, `.mjs`, `.cjs`, `.jsx`
    JavaScript,
}

impl Lang {
    /// The language of a file, by its extension.
    pub fn of(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".d.ts") {
            return None;
        }
        Some(match path.extension()?.to_str()? {
            "rs" => Self::Rust,
            "py" | "pyi" => Self::Python,
            "go" => Self::Go,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "js" | "mjs" | "cjs" | "jsx" => Self::JavaScript,
            _ => return None,
        })
    }

    /// `rust`, `python`, `go`, `typescript` (also for TSX and JavaScript).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rust" => Self::Rust,
            "python" => Self::Python,
            "go" => Self::Go,
            "typescript" | "javascript" => Self::TypeScript,
            _ => return None,
        })
    }

    /// Rules written for `typescript` apply to TSX and JavaScript too.
    pub(crate) fn family(self) -> Self {
        match self {
            Self::Tsx | Self::JavaScript => Self::TypeScript,
            other => other,
        }
    }

    fn grammar(self) -> tree_sitter::Language {
        match self {
            Self::Rust => tree_sitter_rust::LANGUAGE.into(),
            Self::Python => tree_sitter_python::LANGUAGE.into(),
            Self::Go => tree_sitter_go::LANGUAGE.into(),
            Self::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Self::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Self::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
        }
    }
}

/// Directories never walked into.
const SKIP_DIRS: &[&str] = &[
    "target",
    "node_modules",
    "vendor",
    "__pycache__",
    "dist",
    "build",
];

/// Every source file under `paths` (files are taken as given), sorted.
///
/// # Errors
///
/// A message naming the path that cannot be read.
pub fn files(paths: &[PathBuf], config: &Config) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        walk(path, config, &mut out, true)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(path: &Path, config: &Config, out: &mut Vec<PathBuf>, given: bool) -> Result<(), String> {
    let text = path.to_string_lossy().replace('\\', "/");
    if config.exclude.iter().any(|e| text.contains(e.as_str())) {
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !given && (name.starts_with('.') || SKIP_DIRS.contains(&name)) {
            return Ok(());
        }
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            walk(&entry.path(), config, out, false)?;
        }
    } else if given || Lang::of(path).is_some() {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Lints the files under `paths`; with `codes`, also reports the codes no
/// source mentions (files made by `fasten gen` do not count).
///
/// # Errors
///
/// A message naming the file that cannot be read or is not a language the
/// lint parses.
pub fn lint_paths(paths: &[PathBuf], config: &Config, codes: &[Unused]) -> Result<Report, String> {
    let mut report = Report::default();
    let mut mentioned = std::collections::BTreeSet::new();
    for file in files(paths, config)? {
        let lang = Lang::of(&file).ok_or_else(|| {
            format!(
                "{}: not a Rust, Python, Go, TypeScript or JavaScript file",
                file.display()
            )
        })?;
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let shown = file.to_string_lossy().replace('\\', "/");
        let shown = shown.strip_prefix("./").unwrap_or(&shown).to_owned();
        let scanned = scan::scan(&shown, lang, &text, config)?;
        report.files += 1;
        report.sites.extend(scanned.sites);
        if !text.contains("@generated by fasten gen") {
            mentioned.extend(scanned.words);
        }
    }
    report.unused = codes
        .iter()
        .filter(|c| !mentioned.contains(&c.code) && !mentioned.contains(&camel(&c.code)))
        .cloned()
        .collect();
    report.sort();
    Ok(report)
}

/// Lints one file's text.
///
/// # Errors
///
/// A message when the path is not a language the lint parses.
pub fn lint_source(path: &str, text: &str, config: &Config) -> Result<Report, String> {
    let lang = Lang::of(Path::new(path))
        .ok_or_else(|| format!("{path}: not a Rust, Python, Go, TypeScript or JavaScript file"))?;
    let scanned = scan::scan(path, lang, text, config)?;
    let mut report = Report {
        files: 1,
        sites: scanned.sites,
        unused: Vec::new(),
    };
    report.sort();
    Ok(report)
}

/// `ORDER_PLACED` → `OrderPlaced`, the Go spelling `fasten gen` writes.
pub fn camel(code: &str) -> String {
    code.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}
