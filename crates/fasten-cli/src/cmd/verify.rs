//! `fasten verify`: the chain verdict per node.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fasten::Dsn;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `fasten verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The store to verify.
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::env::FASTEN_AUDIT_DSN_DEFAULT)]
    dsn: String,
    /// Print `{"ok", "nodes": [...]}` instead of text (with `checkpoints`
    /// when `--checkpoints` is given).
    #[arg(long)]
    json: bool,
    /// Verifier keys (`name+id+base64`) trusted to sign checkpoints; repeat
    /// for rotated keys.
    #[arg(long = "key", requires = "checkpoints")]
    keys: Vec<String>,
    /// A directory of published checkpoints (`fasten checkpoint`): the store
    /// must contain every one of them.
    #[arg(long, requires = "keys")]
    checkpoints: Option<PathBuf>,
    /// Fail when a node's chain has no valid checkpoint covering it (nodes
    /// without one are reported either way).
    #[arg(long, requires = "checkpoints")]
    require_checkpoints: bool,
}

/// Every `*.checkpoint` file under `dir`, sorted, as (path, text).
fn read_checkpoints(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "checkpoint") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                found.push((path.display().to_string(), text));
            }
        }
    }
    found.sort();
    Ok(found)
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
    let progress = |p: fasten::Progress| {
        bar.set_length(p.total);
        bar.set_position(p.checked);
    };
    // With checkpoints, one pass over the store does both.
    let (report, checks) = match &args.checkpoints {
        Some(dir) => {
            let notes = read_checkpoints(dir)?;
            if notes.is_empty() {
                anyhow::bail!("no *.checkpoint files under {}", dir.display());
            }
            fasten::transparency::verify_with_checkpoints(&dsn, &notes, &args.keys, progress)
                .with_context(|| {
                    format!("verifying the {}", super::store_origin(&dsn, &args.dsn))
                })?
        }
        None => (
            fasten::verify_with_progress(&dsn, progress).with_context(|| {
                format!("verifying the {}", super::store_origin(&dsn, &args.dsn))
            })?,
            Vec::new(),
        ),
    };
    bar.finish_and_clear();
    let covered = !args.require_checkpoints || report.uncovered_nodes.is_empty();
    let checkpoints_ok = covered && checks.iter().all(|c| c.reason.is_none());
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if args.checkpoints.is_some() {
            value["ok"] = (report.ok && checkpoints_ok).into();
            value["checkpoints"] = checks
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "file": c.label, "source_node_id": c.node, "size": c.size,
                        "ok": c.reason.is_none(), "reason": c.reason,
                    })
                })
                .collect();
        }
        serde_json::to_writer(&mut out, &value)?;
        writeln!(out)?;
    } else {
        for c in &checks {
            match &c.reason {
                None => writeln!(out, "ok checkpoint {}", c.label)?,
                Some(reason) => writeln!(out, "CONTRADICTED checkpoint {}: {reason}", c.label)?,
            }
        }
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
        for node in &report.uncovered_nodes {
            let word = if args.require_checkpoints {
                "UNCOVERED"
            } else {
                "warning: uncovered"
            };
            writeln!(
                out,
                "{word} {node}: no valid checkpoint covers this node's chain"
            )?;
        }
        if let Some(why) = &report.unaccounted {
            writeln!(out, "BROKEN: {why}")?;
        }
        if report.nodes.is_empty() && report.unaccounted.is_none() {
            writeln!(out, "ok: the store holds no rows")?;
        }
    }
    Ok(if report.ok && checkpoints_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
