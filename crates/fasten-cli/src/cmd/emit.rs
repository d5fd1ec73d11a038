//! `fasten emit`: one durable row from a shell script.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fasten::{ActorKind, Config, Event, FailureStrategy, Method, Outcome, RequestId};

/// Arguments of `fasten emit`. Service, node, DSN and the rest come from
/// the `FASTEN_*` environment, as for a service.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The registered code.
    #[arg(long)]
    code: String,
    /// What it was done to.
    #[arg(long, default_value = "")]
    target: String,
    /// Who did it (default: $USER, else `system`).
    #[arg(long)]
    actor: Option<String>,
    /// user, service, schedule or agent (default: user when --actor or $USER is used).
    #[arg(long)]
    actor_kind: Option<ActorKind>,
    /// success, failure, denied or unknown.
    #[arg(long, default_value = "success")]
    outcome: Outcome,
    /// A JSON object.
    #[arg(long)]
    detail: Option<String>,
    /// The request id (default: $FASTEN_REQUEST_ID, else a fresh one).
    #[arg(long, env = "FASTEN_REQUEST_ID")]
    request_id: Option<String>,
    /// Code files to load (comma separated).
    #[arg(long, env = "FASTEN_CODES")]
    codes: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    // `raise`: a store that keeps failing is reported after the configured
    // attempts instead of hanging the shell.
    let fasten = Config::from_env()?
        .codes(super::code_paths(args.codes.as_deref()))
        .audit_store_failure_strategy(FailureStrategy::Raise)
        // A one-row command: sweeps are for services and `fasten sweep`.
        .retention_sweep_interval(None)
        .build()?;
    let (actor, default_kind) = match args.actor {
        Some(a) => (a, ActorKind::User),
        None => match std::env::var("USER").ok().filter(|u| !u.is_empty()) {
            Some(user) => (user, ActorKind::User),
            None => ("system".to_owned(), ActorKind::Service),
        },
    };
    let mut event = Event::new(args.code)
        .actor(actor, args.actor_kind.unwrap_or(default_kind))
        .target(args.target)
        .outcome(args.outcome)
        .method(Method::Cli);
    if let Some(detail) = &args.detail {
        let value: serde_json::Value = fasten::contract::parse_json(detail)
            .context("invalid --detail: expected a JSON object, e.g. '{\"plan\":\"pro\"}'")?;
        event = event.detail(value);
    }
    if let Some(id) = args.request_id.filter(|s| !s.is_empty()) {
        event = event
            .request_id(RequestId::parse(&id).context("invalid --request-id / FASTEN_REQUEST_ID")?);
    }
    let row = fasten.emit_durable(event)?;
    // The row is durable: print it before anything else can fail, so a
    // script never re-emits a row that was written.
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &row)?;
    writeln!(out)?;
    out.flush()?;
    if let Err(e) = fasten.shutdown(Duration::from_secs(10)) {
        eprintln!("fasten: warning: {e}");
    }
    Ok(ExitCode::SUCCESS)
}
