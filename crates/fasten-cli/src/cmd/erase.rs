//! `fasten erase`: erase the detail of every row about one subject.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use fasten::retention::Erasure;
use fasten::{ActorKind, Config, FailureStrategy, Method};

/// Arguments of `fasten erase`. Service, node, DSN and legal holds come
/// from the `FASTEN_*` environment, as for a service.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["actor", "target"])))]
pub(crate) struct Args {
    /// Erase every row this actor did.
    #[arg(long)]
    actor: Option<String>,
    /// Erase every row done to this target.
    #[arg(long)]
    target: Option<String>,
    /// Why, recorded in the chained AUDIT_SUBJECT_ERASED event
    /// (e.g. "GDPR art. 17 request #4711").
    #[arg(long)]
    reason: String,
    /// Who asked (default: $USER, else `system`).
    #[arg(long)]
    requested_by: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let fasten = Config::from_env()?
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .retention_sweep_interval(None)
        .build()?;
    let request = match (&args.actor, &args.target) {
        (Some(actor), _) => Erasure::actor(actor),
        (None, Some(target)) => Erasure::target(target),
        (None, None) => anyhow::bail!("give --actor or --target"),
    };
    let (who, kind) = match args
        .requested_by
        .clone()
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
    {
        Some(who) => (who, ActorKind::User),
        None => ("system".to_owned(), ActorKind::Service),
    };
    let report = fasten.erase_subject(
        &request
            .reason(&args.reason)
            .requested_by(who, kind)
            .method(Method::Cli),
    )?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "erased the detail of {} rows by {} (event {})",
            report.erased, report.subject, report.event_id
        )?;
        for held in &report.held {
            writeln!(
                out,
                "  held back: {} rows of {} (legal hold)",
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
