//! `fasten fleet status`: each node of a central store.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use fasten::Dsn;
use fasten::ship::NodeStatus;

/// Arguments of `fasten fleet`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Each node: rows here, rows pending on the edge, lag, last checkpoint, last error, fork.
    Status(StatusArgs),
}

/// Arguments of `fasten fleet status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The central store (PostgreSQL).
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::env::FASTEN_AUDIT_DSN_DEFAULT)]
    dsn: String,
    /// Read through a remote reader instead, e.g. http://host:8080/api/v1/logs.
    #[arg(long, env = "FASTEN_READER_URL")]
    url: Option<String>,
    /// The bearer token for --url.
    #[arg(
        long,
        env = "FASTEN_READER_TOKEN",
        requires = "url",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Status(a) => status(a),
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let nodes: Vec<NodeStatus> = match &args.url {
        Some(url) => {
            let url = format!("{}/fleet", url.trim_end_matches('/'));
            let mut req = ureq::get(&url);
            if let Some(t) = &args.token {
                req = req.header("authorization", &format!("Bearer {t}"));
            }
            let body = req
                .call()
                .with_context(|| format!("cannot read {url}"))?
                .body_mut()
                .read_to_string()?;
            let v: serde_json::Value = serde_json::from_str(&body)?;
            serde_json::from_value(v["nodes"].clone()).context("not a fleet status")?
        }
        None => fasten::ship::status(&Dsn::parse("FASTEN_AUDIT_DSN", &args.dsn)?)?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &serde_json::json!({ "nodes": nodes }))?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<20} {:<7} {:>9} {:>9} {:>8} {:>9}  state",
        "node", "role", "rows", "pending", "lag_s", "last_ckpt"
    )?;
    let mut forked = false;
    for n in &nodes {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        let state = match (&n.fork, &n.last_error) {
            (Some(f), _) => {
                forked = true;
                format!("FORK: {f}")
            }
            (None, Some(e)) => format!("error: {e}"),
            (None, None) => "ok".to_owned(),
        };
        writeln!(
            out,
            "{:<20} {:<7} {:>9} {:>9} {:>8} {:>9}  {state}",
            n.node,
            n.role,
            n.rows,
            opt(n.pending.map(|p| p.to_string())),
            opt(n.lag_seconds.map(|s| format!("{s:.1}"))),
            opt(n.last_checkpoint.map(|c| c.to_string())),
        )?;
    }
    Ok(if forked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
