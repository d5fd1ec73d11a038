//! `fasten ship`: ship an edge store's audit rows (and, with `--streams`,
//! its sys and api rows) to a central store.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fasten::ship::Shipper;
use fasten::{Dsn, ShipStreams};

/// Arguments of `fasten ship`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The edge store whose rows to ship.
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::env::FASTEN_AUDIT_DSN_DEFAULT)]
    dsn: String,
    /// The central store: postgres://… or an ingest URL https://host/api/v1/logs.
    #[arg(long, env = "FASTEN_SHIP_TO")]
    to: String,
    /// The bearer token for an ingest URL.
    #[arg(long, env = "FASTEN_SHIP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Ship what is there now, then exit (0 when everything arrived).
    #[arg(long)]
    once: bool,
    /// Ship only this node (repeatable); default every node in the store.
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// Most rows per batch.
    #[arg(long, env = "FASTEN_SHIP_BATCH_SIZE", default_value_t = fasten::env::FASTEN_SHIP_BATCH_SIZE_DEFAULT)]
    batch_size: usize,
    /// How long to wait between rounds without --once (e.g. 500ms, 5s).
    #[arg(long, default_value = "500ms")]
    interval: String,
    /// Also ship these streams' rows (sys, api, or sys,api) into `sys_log`
    /// and `api_log` beside a postgres:// central table.
    #[arg(long, env = "FASTEN_SHIP_STREAMS")]
    streams: Option<String>,
    /// The edge's sys table, for --streams sys.
    #[arg(long, env = "FASTEN_SYS_DSN")]
    sys_dsn: Option<String>,
    /// The edge's api table, for --streams api.
    #[arg(long, env = "FASTEN_API_DSN")]
    api_dsn: Option<String>,
}

/// Adds a leg for each stream `args.streams` names; the library refuses an
/// ingest URL and a bad list, naming `FASTEN_SHIP_STREAMS`.
fn with_streams(mut shipper: Shipper, args: &Args) -> anyhow::Result<Shipper> {
    let Some(list) = args.streams.as_deref().filter(|s| !s.trim().is_empty()) else {
        return Ok(shipper);
    };
    let streams: ShipStreams = list.parse()?;
    let dsn = |name: &'static str, value: &Option<String>| -> anyhow::Result<Dsn> {
        let value = value.as_deref().with_context(|| {
            format!("FASTEN_SHIP_STREAMS names a stream whose table is not set: set {name} (or its flag)")
        })?;
        Ok(Dsn::parse(name, value)?)
    };
    if streams.sys {
        shipper = shipper.sys(&dsn("FASTEN_SYS_DSN", &args.sys_dsn)?)?;
    }
    if streams.api {
        shipper = shipper.api(&dsn("FASTEN_API_DSN", &args.api_dsn)?)?;
    }
    Ok(shipper)
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let edge = Dsn::parse("FASTEN_AUDIT_DSN", &args.dsn)?;
    let token = args.token.clone().filter(|t| !t.trim().is_empty());
    let mut shipper = Shipper::with_token(&edge, &args.to, token)?.batch_size(args.batch_size);
    if !args.nodes.is_empty() {
        shipper = shipper.nodes(args.nodes.clone());
    }
    let mut shipper = with_streams(shipper, args)?;
    let interval = parse_interval(&args.interval)?;
    let mut out = std::io::stdout().lock();
    let mut failures = 0u32;
    loop {
        match shipper.ship_once() {
            Ok(report) => {
                failures = 0;
                let mut forked = false;
                for n in &report.nodes {
                    if args.once || n.inserted > 0 || n.fork.is_some() {
                        writeln!(
                            out,
                            "{}: {} rows shipped, {} already there, {} pending, {} checkpoints",
                            n.node, n.inserted, n.duplicates, n.pending, n.checkpoints
                        )?;
                    }
                    if let Some(why) = &n.checkpoint_error {
                        writeln!(out, "{}: checkpoint refused: {why}", n.node)?;
                    }
                    if let Some(fork) = &n.fork {
                        writeln!(out, "{}: FORK: {fork}; shipping for it stopped", n.node)?;
                        forked = true;
                    }
                }
                for s in &report.streams {
                    if args.once || s.shipped > 0 {
                        writeln!(out, "{}: {} rows shipped", s.stream, s.shipped)?;
                    }
                }
                out.flush()?;
                if forked {
                    return Ok(ExitCode::from(1));
                }
                if args.once {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(e) if args.once => return Err(e.into()),
            Err(e) => {
                if matches!(e.kind(), fasten::ErrorKind::Fleet { .. }) {
                    return Err(e.into());
                }
                failures = failures.saturating_add(1);
                eprintln!("fasten: shipping failed (attempt {failures}), retrying: {e}");
            }
        }
        let wait = interval
            .saturating_mul(1 << failures.min(6))
            .min(Duration::from_secs(60));
        std::thread::sleep(wait);
    }
}

fn parse_interval(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (n, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t, "s"), |i| t.split_at(i));
    let n: u64 = n
        .parse()
        .with_context(|| format!("invalid --interval {text:?}: expected e.g. 500ms, 5s, 1m"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => anyhow::bail!("invalid --interval {text:?}: expected e.g. 500ms, 5s, 1m"),
    })
}
