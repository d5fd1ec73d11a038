//! `fasten verify`: the chain verdict per node.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use fasten::Dsn;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `fasten verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The store to verify.
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::FASTEN_AUDIT_DSN_DEFAULT)]
    dsn: String,
    /// Print `{"ok", "nodes": [...]}` instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let dsn = Dsn::parse("FASTEN_AUDIT_DSN", &args.dsn)?;
    let bar = if std::io::stderr().is_terminal() && !args.json {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} verifying {pos}/{len} rows {wide_bar} {per_sec} eta {eta}",
            )
            .expect("the template is valid"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let report = fasten::verify_with_progress(&dsn, |p| {
        bar.set_length(p.total);
        bar.set_position(p.checked);
    })?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        for node in &report.nodes {
            match (&node.first_break_seq, &node.reason) {
                (Some(seq), Some(reason)) => writeln!(
                    out,
                    "BROKEN {}: seq {seq}: {reason} ({} rows verified before it, {} erased)",
                    node.source_node_id, node.rows, node.erased
                )?,
                _ => writeln!(
                    out,
                    "ok {}: {} rows, {} erased",
                    node.source_node_id, node.rows, node.erased
                )?,
            }
        }
        if report.nodes.is_empty() {
            writeln!(out, "ok: the store holds no rows")?;
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
