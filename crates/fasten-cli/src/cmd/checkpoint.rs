//! `fasten checkpoint`: sign each node's chain and publish it to a directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use fasten::Dsn;

/// Arguments of `fasten checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The store to checkpoint.
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::FASTEN_AUDIT_DSN_DEFAULT)]
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
        let dir = args.dir.join(&checkpoint.node);
        let path = dir.join(format!("{}.checkpoint", checkpoint.size));
        write_atomically(&dir, &path, checkpoint.note.as_bytes())?;
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

/// Temp file, fsync, rename, fsync the directory: a reader sees the whole
/// checkpoint or none, even across a crash.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
