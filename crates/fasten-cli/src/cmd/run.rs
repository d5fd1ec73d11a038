//! `fasten run -- COMMAND…`: one request id for a script's steps.

use std::process::{Command, ExitCode};

use anyhow::Context as _;
use fasten::RequestId;
use fasten::env::FASTEN_REQUEST_ID;

/// Arguments of `fasten run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The id to export (default: a safe inherited $FASTEN_REQUEST_ID, else
    /// a fresh one).
    #[arg(long)]
    request_id: Option<String>,
    /// Print `request_id=ID` on stderr before the command starts.
    #[arg(long)]
    print_id: bool,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let id = match &args.request_id {
        Some(given) => RequestId::parse(given)
            .context("invalid --request-id: expected 1-128 characters of [A-Za-z0-9._:-]")?,
        None => inherited().unwrap_or_else(RequestId::mint),
    };
    if args.print_id {
        eprintln!("request_id={id}");
    }
    let (program, rest) = args
        .command
        .split_first()
        .context("missing COMMAND: fasten run -- ./nightly.sh")?;
    let status = Command::new(program)
        .args(rest)
        .env(FASTEN_REQUEST_ID, id.as_str())
        .status()
        .with_context(|| format!("cannot start {program:?}"))?;
    Ok(exit_code(status))
}

/// A safe inherited `FASTEN_REQUEST_ID`, so `fasten run` nests; an unsafe
/// one is replaced, never passed on.
fn inherited() -> Option<RequestId> {
    let value = std::env::var(FASTEN_REQUEST_ID).ok()?;
    if value.trim().is_empty() {
        return None;
    }
    match RequestId::parse(value.trim()) {
        Ok(id) => Some(id),
        Err(e) => {
            eprintln!("fasten: warning: ignoring {FASTEN_REQUEST_ID}: {e}; using a fresh id");
            None
        }
    }
}

/// The child's exit code; 128 + the signal's number when a signal ended it,
/// as shells report it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return ExitCode::from(u8::try_from((128 + signal) & 0xff).unwrap_or(1));
        }
    }
    ExitCode::FAILURE
}
