//! One module per verb.

pub(crate) mod checkpoint;
pub(crate) mod correlate;
pub(crate) mod doctor;
pub(crate) mod dump;
pub(crate) mod emit;
pub(crate) mod erase;
pub(crate) mod fleet;
pub(crate) mod generate;
pub(crate) mod keygen;
mod line;
pub(crate) mod lint;
pub(crate) mod pack;
pub(crate) mod prove;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod ship;
pub(crate) mod source;
pub(crate) mod sweep;
pub(crate) mod tail;
pub(crate) mod verify;

use anyhow::Context as _;
use fasten::code::Registry;

/// Which audit store a command used and where that came from, for its
/// errors: the DSN (password masked), whether it came from the command
/// line, `FASTEN_AUDIT_DSN` or the default, and the working directory that
/// relative SQLite paths resolve against.
pub(crate) fn store_origin(dsn: &fasten::Dsn, given: &str) -> String {
    let var = fasten::env::FASTEN_AUDIT_DSN;
    let from = match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        Some(env) if env.trim() == given.trim() => format!("from {var}"),
        None if given == fasten::env::FASTEN_AUDIT_DSN_DEFAULT => {
            format!("the default: neither --dsn nor {var} is set")
        }
        _ => "from --dsn".to_owned(),
    };
    let cwd = std::env::current_dir()
        .map_or_else(|e| format!("unknown ({e})"), |d| d.display().to_string());
    format!("audit store {dsn} ({from}; working directory {cwd})")
}

/// `--codes` / `FASTEN_CODES` as the library reads it: comma separated,
/// spaces around entries and empty entries ignored.
pub(crate) fn code_paths(list: Option<&str>) -> Vec<std::path::PathBuf> {
    list.into_iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .collect()
}

/// Loads the code files named by `--codes` / `FASTEN_CODES`.
pub(crate) fn load_codes(paths: &[std::path::PathBuf]) -> anyhow::Result<Registry> {
    let registry = Registry::new();
    for path in paths {
        registry
            .load_file(path)
            .with_context(|| format!("loading codes from {}", path.display()))?;
    }
    Ok(registry)
}
