//! `fasten prove` and `fasten verify-proof`: proofs a third party checks
//! offline, with nothing but a verifier key.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fasten::Dsn;
use fasten::transparency::{self, Proof};

/// Arguments of `fasten prove`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    /// The store.
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::env::FASTEN_AUDIT_DSN_DEFAULT)]
    dsn: String,
    /// The row to prove (inclusion in the newest checkpoint that covers it).
    #[arg(
        required_unless_present = "consistency",
        conflicts_with = "consistency"
    )]
    row_id: Option<String>,
    /// Prove that the checkpoint of size NEW extends the one of size OLD.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], requires = "node")]
    consistency: Option<Vec<u64>>,
    /// The node, with --consistency.
    #[arg(long)]
    node: Option<String>,
    /// Write the proof here instead of to stdout.
    #[arg(short, long)]
    out: Option<PathBuf>,
}

pub(crate) fn prove(args: &ProveArgs) -> anyhow::Result<ExitCode> {
    let dsn = Dsn::parse("FASTEN_AUDIT_DSN", &args.dsn)?;
    let proof = match (&args.row_id, &args.consistency, &args.node) {
        (Some(id), None, _) => transparency::prove_row(&dsn, id)?,
        (None, Some(sizes), Some(node)) => {
            transparency::prove_consistency(&dsn, node, sizes[0], sizes[1])?
        }
        _ => anyhow::bail!("give a ROW_ID, or --consistency OLD NEW with --node"),
    };
    let text = serde_json::to_string_pretty(&proof)?;
    match &args.out {
        Some(path) => std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => writeln!(std::io::stdout().lock(), "{text}")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `fasten verify-proof`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// A proof written by `fasten prove`.
    file: PathBuf,
    /// Verifier keys trusted to sign checkpoints; repeat for rotated keys.
    #[arg(long = "key", required = true)]
    keys: Vec<String>,
}

pub(crate) fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let proof: Proof = fasten::contract::parse_json(&text)
        .and_then(serde_json::from_value)
        .with_context(|| format!("{} is not a fasten proof", args.file.display()))?;
    let mut out = std::io::stdout().lock();
    match transparency::verify_proof(&proof, &args.keys) {
        Ok(what) => {
            writeln!(out, "ok: {what}")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            writeln!(out, "INVALID: {e}")?;
            Ok(ExitCode::FAILURE)
        }
    }
}
