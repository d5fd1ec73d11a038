//! `fasten`: verify, emit and inspect audit trails from a shell.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Audit trails that an auditor accepts as-is.
#[derive(Debug, Parser)]
#[command(name = "fasten", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every node's hash chain; exit 0 only when all hold.
    Verify(cmd::verify::Args),
    /// Write one durable audit row (method `cli`) and print it as JSON.
    Emit(cmd::emit::Args),
    /// Run a command with FASTEN_REQUEST_ID exported, so its steps share one request id.
    Run(cmd::run::Args),
    /// Print every registered code as `id,domain,severity`, sorted.
    Dump(cmd::dump::Args),
    /// Make a checkpoint signing key; print its verifier key.
    Keygen(cmd::keygen::Args),
    /// Sign each node's chain as it is now and publish it to a directory.
    Checkpoint(cmd::checkpoint::Args),
    /// Prove a row is in a signed checkpoint, or that one checkpoint extends another.
    Prove(cmd::prove::ProveArgs),
    /// Check a proof from `fasten prove` offline, with only a verifier key.
    VerifyProof(cmd::prove::VerifyArgs),
    /// Write an evidence pack: rows, their proofs, checkpoints and keys.
    Export(cmd::pack::ExportArgs),
    /// Check an evidence pack with nothing else.
    VerifyPack(cmd::pack::VerifyArgs),
    /// The newest rows of a stream, one a line; --follow for new ones.
    Tail(cmd::tail::Args),
    /// The audit, api and sys rows of one request, as a timeline.
    Correlate(cmd::correlate::Args),
    /// Count audit rows and sum a numeric detail field per group (cost per agent).
    Report(cmd::report::Args),
    /// Check the setup: env, store, schema, codes, a write round trip, chains.
    Doctor(cmd::doctor::Args),
    /// Serve the HTTP reader at /api/v1/logs over the configured stores.
    Serve(cmd::serve::Args),
    /// Erase the detail of rows past their retention class's age, once.
    Sweep(cmd::sweep::Args),
    /// Erase the detail of every row about one subject (GDPR art. 17).
    Erase(cmd::erase::Args),
    /// Ship this edge's audit rows and checkpoints to a central store.
    Ship(cmd::ship::Args),
    /// The fleet as the central store sees it.
    Fleet(cmd::fleet::Args),
    /// Write typed code constants for a language from *.codes.yaml files.
    Gen(cmd::generate::Args),
    /// Fail when a data mutation does not emit an audit event.
    Lint(cmd::lint::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => cmd::verify::run(&args),
        Command::Emit(args) => cmd::emit::run(args),
        Command::Run(args) => cmd::run::run(&args),
        Command::Dump(args) => cmd::dump::run(&args),
        Command::Keygen(args) => cmd::keygen::run(&args),
        Command::Checkpoint(args) => cmd::checkpoint::run(&args),
        Command::Prove(args) => cmd::prove::prove(&args),
        Command::VerifyProof(args) => cmd::prove::verify(&args),
        Command::Export(args) => cmd::pack::export(&args),
        Command::VerifyPack(args) => cmd::pack::verify(&args),
        Command::Tail(args) => cmd::tail::run(&args),
        Command::Correlate(args) => cmd::correlate::run(&args),
        Command::Report(args) => cmd::report::run(&args),
        Command::Doctor(args) => cmd::doctor::run(&args),
        Command::Serve(args) => cmd::serve::run(&args),
        Command::Sweep(args) => cmd::sweep::run(&args),
        Command::Erase(args) => cmd::erase::run(&args),
        Command::Ship(args) => cmd::ship::run(&args),
        Command::Fleet(args) => cmd::fleet::run(&args),
        Command::Gen(args) => cmd::generate::run(&args),
        Command::Lint(args) => cmd::lint::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fasten: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each said once: a fasten error's
/// text already holds its own causes, so the walk stops there.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        if cause.downcast_ref::<fasten::Error>().is_some() {
            break;
        }
    }
    out
}
