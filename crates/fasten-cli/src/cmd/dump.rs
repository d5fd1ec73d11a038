//! `fasten dump`: the code registry, one code a line.

use std::io::Write as _;
use std::process::ExitCode;

/// Arguments of `fasten dump`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Code files to load (comma separated).
    #[arg(long, env = "FASTEN_CODES", required = true)]
    codes: String,
    /// `csv` (`code,domain,severity` a line) or `json` (one array).
    #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
    format: String,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let registry = super::load_codes(&super::code_paths(Some(&args.codes)))?;
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        let codes: Vec<serde_json::Value> = registry
            .codes()
            .iter()
            .map(|info| {
                let m = info.meta();
                serde_json::json!({
                    "code": info.code(), "domain": info.domain(), "category": m.category,
                    "action": m.action, "severity": m.severity.as_str(),
                    // In force, and as declared (they differ when personal
                    // data forced a declared `long` or `medium` to `short`).
                    "retention_class": m.retention_class.as_str(),
                    "declared_retention_class": info
                        .declared_retention_class()
                        .unwrap_or(m.retention_class)
                        .as_str(),
                    "pii_in_detail": m.pii_in_detail,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &codes)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for info in registry.codes() {
        writeln!(
            out,
            "{},{},{}",
            info.code(),
            info.domain(),
            info.meta().severity
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
