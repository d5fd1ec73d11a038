//! `fasten dump`: the code registry, one code a line.

use std::io::Write as _;
use std::process::ExitCode;

/// Arguments of `fasten dump`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Code files to load (comma separated).
    #[arg(long, env = "FASTEN_CODES", required = true)]
    codes: String,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let registry = super::load_codes(&super::code_paths(Some(&args.codes)))?;
    let mut out = std::io::stdout().lock();
    for info in registry.codes() {
        writeln!(
            out,
            "{},{},{}",
            info.code(),
            info.domain(),
            info.meta().severity
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
