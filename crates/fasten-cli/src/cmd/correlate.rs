//! `fasten correlate R`: the audit, api and sys rows of one request as a
//! timeline.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use fasten::RequestId;

use super::line::{self, Paint};
use super::source::SourceArgs;

/// Arguments of `fasten correlate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The request id.
    request_id: String,
    /// The whole timeline as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let id = RequestId::parse(&args.request_id).context("invalid request id")?;
    let timeline = args.source.open()?.correlate(&id)?;
    for (stream, key) in [("sys", "sys_source"), ("api", "api_source")] {
        if let Some(note) = super::source::unsearched(stream, &timeline[key]) {
            eprintln!("{note}");
        }
    }
    if let Some(warning) = timeline["warning"].as_str() {
        eprintln!("warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &timeline)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let paint = Paint::detect();
    let entries = timeline["entries"].as_array().cloned().unwrap_or_default();
    for e in &entries {
        let stream = e["stream"].as_str().unwrap_or("?");
        writeln!(out, "{stream:<5} {}", line::of(paint, stream, &e["row"]))?;
    }
    if entries.is_empty() {
        writeln!(out, "no rows for request {id}")?;
    }
    if timeline["truncated"] == true {
        writeln!(
            out,
            "(truncated: a stream holds more rows of this request than one answer carries)"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
