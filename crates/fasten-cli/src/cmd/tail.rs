//! `fasten tail`: the newest rows of a stream, oldest first, and with
//! `--follow` every new one as it lands.

use std::collections::HashSet;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::line::{self, Paint};
use super::source::SourceArgs;

/// Arguments of `fasten tail`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// audit, sys or api.
    #[arg(long, default_value = "audit", value_parser = ["audit", "sys", "api"])]
    stream: String,
    /// Only rows of this request.
    #[arg(long)]
    request_id: Option<String>,
    /// Only rows at or after this time: RFC 3339, a date (2026-04-20) or an
    /// age (15m, 24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// How many of the newest rows to show first (1-1000).
    #[arg(long, short = 'n', default_value_t = 20)]
    limit: usize,
    /// Keep printing rows as they land (polls every --interval).
    #[arg(long, short = 'f')]
    follow: bool,
    /// How often --follow asks, e.g. 500ms, 2s.
    #[arg(long, default_value = "1s", value_parser = humantime_like)]
    interval: Duration,
    /// One JSON object a line, every column.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// `500ms`, `2s`, `1m`.
fn humantime_like(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 500ms, 2s, 1m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: expected e.g. 500ms, 2s, 1m")),
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if !(1..=1000).contains(&args.limit) {
        anyhow::bail!("invalid --limit {}: expected 1 to 1000", args.limit);
    }
    let source = args.source.open()?;
    let mut params: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    if let Some(r) = &args.request_id {
        params.push(("request_id", r.clone()));
    }
    // An age (`15m`) or a date is pinned once, so every poll of --follow
    // asks from the same instant.
    let since = args
        .since
        .as_deref()
        .map(|s| fasten::query::parse_time("since", s))
        .transpose()?
        .map(|t| t.to_string());
    if let Some(s) = &since {
        params.push(("since", s.clone()));
    }
    let paint = Paint::detect();
    let mut out = std::io::stdout().lock();
    let page = source.page(&args.stream, &params)?;
    if let Some(note) = super::source::unsearched(&args.stream, &page["source"]) {
        eprintln!("{note}");
    }
    if let Some(warning) = page["warning"].as_str() {
        eprintln!("warning: {warning}");
    }
    let mut rows: Vec<Value> = page["rows"].as_array().cloned().unwrap_or_default();
    rows.reverse();
    // The newest timestamp printed, and the ids printed at it: the next
    // poll asks from that instant on and skips those.
    let mut last = String::new();
    let mut at_last: HashSet<String> = HashSet::new();
    for row in &rows {
        print(&mut out, args, paint, row)?;
        remember(row, &mut last, &mut at_last);
    }
    out.flush()?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(args.interval);
        let mut params = params.clone();
        params.retain(|(k, _)| *k != "since" && *k != "limit");
        params.push(("limit", "1000".to_owned()));
        if !last.is_empty() {
            params.push(("since", last.clone()));
        } else if let Some(s) = &since {
            params.push(("since", s.clone()));
        }
        let page = source.page(&args.stream, &params)?;
        let mut fresh: Vec<Value> = page["rows"].as_array().cloned().unwrap_or_default();
        fresh.reverse();
        for row in fresh {
            let id = row["id"].as_str().unwrap_or_default().to_owned();
            if row["timestamp"].as_str() == Some(last.as_str()) && at_last.contains(&id) {
                continue;
            }
            print(&mut out, args, paint, &row)?;
            remember(&row, &mut last, &mut at_last);
        }
        out.flush()?;
    }
}

fn remember(row: &Value, last: &mut String, at_last: &mut HashSet<String>) {
    let ts = row["timestamp"].as_str().unwrap_or_default();
    if ts != last {
        ts.clone_into(last);
        at_last.clear();
    }
    at_last.insert(row["id"].as_str().unwrap_or_default().to_owned());
}

fn print(
    out: &mut impl std::io::Write,
    args: &Args,
    paint: Paint,
    row: &Value,
) -> anyhow::Result<()> {
    if args.json {
        serde_json::to_writer(&mut *out, row)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", line::of(paint, &args.stream, row))?;
    }
    Ok(())
}
