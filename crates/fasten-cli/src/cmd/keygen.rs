//! `fasten keygen`: a new checkpoint signing key.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Arguments of `fasten keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key's name, shown on its signatures (e.g. audit.example/node-1).
    #[arg(long)]
    name: String,
    /// Where to write the signing key (created readable by its owner only;
    /// an existing file is never overwritten).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let keys = fasten::transparency::generate_key(&args.name)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    writeln!(file, "{}", keys.signing_key)?;
    file.sync_all()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", keys.verifier_key)?;
    Ok(ExitCode::SUCCESS)
}
