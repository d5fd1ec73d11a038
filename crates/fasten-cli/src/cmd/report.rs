//! `fasten report`: audit rows counted and a numeric detail field summed per
//! group, e.g. the cost of each agent's tool calls.

use std::io::Write as _;
use std::process::ExitCode;

use serde_json::Value;

use super::source::SourceArgs;

/// Arguments of `fasten report`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The numeric detail field to sum, e.g. detail.cost_usd.
    #[arg(long)]
    sum: Option<String>,
    /// Group by a column (actor, actor_kind, code, domain, target, outcome,
    /// severity, method, service_id, source_node_id, tenant_id, request_id)
    /// or a detail field (detail.model).
    #[arg(long)]
    by: Option<String>,
    /// Only rows of this code, e.g. TOOL_CALLED.
    #[arg(long)]
    code: Option<String>,
    /// Only rows of this actor.
    #[arg(long)]
    actor: Option<String>,
    /// Only rows with this outcome.
    #[arg(long)]
    outcome: Option<String>,
    /// Only rows of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only rows of this request.
    #[arg(long)]
    request_id: Option<String>,
    /// Only rows at or after this time: RFC 3339, a date (2026-04-20) or an
    /// age (15m, 24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only rows before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// At most this many groups, largest sum first (1-1000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// The summary as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut params: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    for (name, value) in [
        ("sum", &args.sum),
        ("by", &args.by),
        ("code", &args.code),
        ("actor", &args.actor),
        ("outcome", &args.outcome),
        ("tenant_id", &args.tenant),
        ("request_id", &args.request_id),
    ] {
        if let Some(v) = value {
            params.push((name, v.clone()));
        }
    }
    // Ages are pinned here, so a remote reader counts from the same instant.
    for (name, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(v) = value {
            params.push((name, fasten::query::parse_time(name, v)?.to_string()));
        }
    }
    let summary = args.source.open()?.summary(&params)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let by = summary["by"].as_str().unwrap_or("all");
    let sum = summary["sum"].as_str();
    let mut lines: Vec<[String; 4]> = vec![[
        by.to_owned(),
        "rows".to_owned(),
        "summed".to_owned(),
        sum.map_or_else(String::new, |s| format!("sum({s})")),
    ]];
    let cells = |key: String, g: &Value| {
        [
            key,
            g["rows"].to_string(),
            g["summed"].to_string(),
            if sum.is_some() {
                number(g["sum"].as_f64().unwrap_or(0.0))
            } else {
                String::new()
            },
        ]
    };
    if summary["by"].is_string() {
        for g in summary["groups"].as_array().into_iter().flatten() {
            let key = g["key"]
                .as_str()
                .map_or_else(|| "(none)".to_owned(), super::line::word);
            lines.push(cells(key, g));
        }
    }
    lines.push(cells("total".to_owned(), &summary["total"]));
    let width = |i: usize| {
        lines
            .iter()
            .map(|l| l[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for l in &lines {
        let text = format!("{:<w0$}  {:>w1$}  {:>w2$}  {}", l[0], l[1], l[2], l[3]);
        writeln!(out, "{}", text.trim_end())?;
    }
    if summary["truncated"] == true {
        writeln!(
            out,
            "(more groups than --limit {}: the total counts them all)",
            args.limit
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A sum without float noise: at most 6 decimals, trailing zeros dropped.
fn number(x: f64) -> String {
    let text = format!("{x:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_print_without_float_noise() {
        assert_eq!(super::number(0.1 + 0.2), "0.3");
        assert_eq!(super::number(1.75), "1.75");
        assert_eq!(super::number(0.0), "0");
        assert_eq!(super::number(300.0), "300");
    }
}
