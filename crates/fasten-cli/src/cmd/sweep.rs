//! `fasten sweep`: one retention sweep, or what it would do.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fasten::retention::SweepOptions;
use fasten::{Config, FailureStrategy, Method};

/// Arguments of `fasten sweep`. Service, node, DSN, retention classes and
/// legal holds come from the `FASTEN_*` environment, as for a service.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Say what would be erased; erase nothing, append no event.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Judge ages as if it were this instant (RFC 3339 such as
    /// 2027-01-01T00:00:00Z, or a date such as 2027-01-01), e.g. to see with
    /// --dry-run what a date will erase.
    #[arg(long)]
    now: Option<String>,
    /// Code files to load (comma separated): they give each code its class.
    /// Rows of codes no file declares are never erased, only counted as held.
    #[arg(long, env = "FASTEN_CODES")]
    codes: Option<String>,
    /// Sweep the rows of every service in the store, not only those of
    /// FASTEN_SERVICE_ID (still only codes the code files declare).
    #[arg(long)]
    all_services: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut options = SweepOptions::new()
        .dry_run(args.dry_run)
        .all_services(args.all_services)
        .method(Method::Cli);
    if let Some(now) = &args.now {
        let ts = fasten::query::parse_time("now", now)?;
        let micros = u64::try_from(ts.as_microsecond())
            .with_context(|| format!("invalid --now {now:?}: must be after 1970"))?;
        options = options.now(std::time::UNIX_EPOCH + Duration::from_micros(micros));
    }
    let fasten = Config::from_env()?
        .codes(super::code_paths(args.codes.as_deref()))
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .retention_sweep_interval(None)
        .build()?;
    let report = fasten.sweep(&options)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        if let Some(why) = &report.skipped {
            writeln!(out, "skipped: {why}")?;
        }
        let verb = if report.dry_run {
            "would erase"
        } else {
            "erased"
        };
        write!(out, "{verb} the detail of {} rows", report.erased)?;
        match &report.event_id {
            Some(id) => writeln!(out, " (event {id})")?,
            None => writeln!(out, " (dry run: nothing erased)")?,
        }
        for code in &report.codes {
            for r in &code.ranges {
                writeln!(
                    out,
                    "  {} ({}): {} rows on {} in seq {}..={}",
                    code.code,
                    code.retention_class,
                    r.rows,
                    r.source_node_id,
                    r.first_seq,
                    r.last_seq
                )?;
            }
        }
        for held in &report.held {
            let why = match held.reason {
                fasten::retention::HoldReason::LegalHoldCode => "legal hold on the code",
                fasten::retention::HoldReason::LegalHoldTenant => "legal hold on the tenant",
                fasten::retention::HoldReason::Unshipped => "not shipped yet",
                fasten::retention::HoldReason::UnknownCode => {
                    "no code file declares it, so its retention class is unknown"
                }
                _ => "held",
            };
            writeln!(
                out,
                "  held back: {} rows of {} ({why})",
                held.rows, held.code
            )?;
        }
    }
    out.flush()?;
    if let Err(e) = fasten.shutdown(Duration::from_secs(10)) {
        eprintln!("fasten: warning: {e}");
    }
    Ok(ExitCode::SUCCESS)
}
