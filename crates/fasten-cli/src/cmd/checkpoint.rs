//! `fasten checkpoint`: sign each node's chain and publish it to a directory.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fasten::Dsn;

/// Arguments of `fasten checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The store to checkpoint.
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::env::FASTEN_AUDIT_DSN_DEFAULT)]
    dsn: String,
    /// The signing key file (from `fasten keygen`).
    #[arg(long, env = "FASTEN_SIGNING_KEY")]
    key: PathBuf,
    /// Where to publish: one file per node and size, `DIR/<node>/<size>.checkpoint`.
    #[arg(long, env = "FASTEN_CHECKPOINT_DIR")]
    dir: PathBuf,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let dsn = Dsn::parse("FASTEN_AUDIT_DSN", &args.dsn)?;
    let key = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read the signing key {}", args.key.display()))?;
    let mut out = std::io::stdout().lock();
    for checkpoint in fasten::transparency::sign_checkpoints(&dsn, &key)? {
        let path = fasten::transparency::publish(
            &args.dir,
            &checkpoint.node,
            checkpoint.size,
            &checkpoint.note,
        )?;
        writeln!(
            out,
            "{}: {} rows -> {}",
            checkpoint.node,
            checkpoint.size,
            path.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
