//! `fasten export` and `fasten verify-pack`: evidence for an auditor that
//! checks with nothing else, no database, no network.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use fasten::Dsn;
use fasten::transparency::{self, Pack, PackFilter};

/// Arguments of `fasten export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The store.
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::env::FASTEN_AUDIT_DSN_DEFAULT)]
    dsn: String,
    /// Rows at or after this instant: RFC 3339 (2026-06-01T00:00:00Z), a
    /// date (2026-06-01, its start in UTC) or an age (15m, 24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Rows before this instant (the same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only this tenant's rows.
    #[arg(long)]
    tenant: Option<String>,
    /// Only these codes (repeat, or comma separated).
    #[arg(long, value_delimiter = ',')]
    code: Vec<String>,
    /// Verifier keys to include (the public halves of the signing keys).
    #[arg(long = "key", required = true)]
    keys: Vec<String>,
    /// The pack directory to create.
    #[arg(short, long)]
    out: PathBuf,
}

fn instant(flag: &'static str, value: Option<&String>) -> anyhow::Result<Option<jiff::Timestamp>> {
    Ok(value
        .map(|v| fasten::query::parse_time(flag, v))
        .transpose()?)
}

pub(crate) fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let dsn = Dsn::parse("FASTEN_AUDIT_DSN", &args.dsn)?;
    let mut filter = PackFilter::default();
    filter.since = instant("since", args.since.as_ref())?;
    filter.until = instant("until", args.until.as_ref())?;
    filter.tenant.clone_from(&args.tenant);
    filter.codes.clone_from(&args.code);
    let pack = transparency::export_pack(&dsn, &filter, &args.keys)?;
    pack.write_dir(&args.out)?;
    writeln!(
        std::io::stdout().lock(),
        "{} rows, {} checkpoints -> {}",
        pack.rows.len(),
        pack.checkpoints.len(),
        args.out.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `fasten verify-pack`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// A pack directory from `fasten export`.
    pack: PathBuf,
    /// Require every checkpoint to be signed by one of these keys, rather
    /// than only by a key the pack itself carries.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Accept the keys the pack carries itself. Anyone can make a key of any
    /// name, so this only shows the pack is consistent, not who signed it;
    /// without it (and without `--key`) the verdict is not ok.
    #[arg(long, conflicts_with = "keys")]
    trust_pack_keys: bool,
}

pub(crate) fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let checked = Pack::read_dir(&args.pack).and_then(|mut pack| {
        if !args.keys.is_empty() {
            pack.keys.clone_from(&args.keys);
        }
        transparency::verify_pack(&pack)
    });
    match checked {
        Ok(report) => {
            for (node, size, names) in &report.checkpoints {
                writeln!(
                    out,
                    "checkpoint {node} size {size} signed by {}",
                    names.join(", ")
                )?;
            }
            if args.keys.is_empty() && !args.trust_pack_keys {
                writeln!(
                    out,
                    "UNTRUSTED: {} rows are consistent with the pack's checkpoints, but their signatures were checked only against keys the pack carries itself, not against a key you trust: pass --key with the verifier key you expect (or --trust-pack-keys to accept the pack's own)",
                    report.rows
                )?;
                return Ok(ExitCode::FAILURE);
            }
            let trust = if args.keys.is_empty() {
                " (signatures checked only against the pack's own keys, as --trust-pack-keys asked)"
            } else {
                ""
            };
            writeln!(
                out,
                "ok: {} rows proven ({} erased){trust}",
                report.rows, report.erased
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            writeln!(out, "INVALID: {e}")?;
            Ok(ExitCode::FAILURE)
        }
    }
}
