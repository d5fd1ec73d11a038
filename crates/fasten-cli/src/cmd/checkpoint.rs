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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(&args.key)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "fasten: warning: the signing key {} can be read by others (mode {:o}): anyone who reads it can sign checkpoints; chmod 600 it",
                args.key.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
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
