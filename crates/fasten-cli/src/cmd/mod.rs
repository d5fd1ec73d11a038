//! One module per verb.

pub(crate) mod dump;
pub(crate) mod emit;
pub(crate) mod verify;

use anyhow::Context as _;
use fasten::code::Registry;

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
