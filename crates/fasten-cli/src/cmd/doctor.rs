//! `fasten doctor`: is this node's audit trail set up and healthy? One
//! line per check (✓ ok, ⚠ worth a look, ✗ failed), a summary, and exit 1
//! when anything failed.
//!
//! A health check reads; it creates or changes nothing unless asked: the
//! round trip that writes a probe row (and would create a missing SQLite
//! file) runs only with `--probe`, and then before the store checks, so
//! every line describes the store as it is when the summary prints.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fasten::code::Meta;
use fasten::{
    Config, Dsn, Event, FailureStrategy, Method, Reader, RetentionClass, Stdout, StreamQuery,
};
use serde_json::json;

/// The code of the row the round-trip check writes.
const PROBE: &str = "FASTEN_DOCTOR_PROBE";

/// Arguments of `fasten doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print the checks as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write one `FASTEN_DOCTOR_PROBE` row and read it back (creates
    /// a missing SQLite store).
    #[arg(long)]
    probe: bool,
    /// The default since the probe became opt-in; accepted so existing
    /// scripts keep working.
    #[arg(long, hide = true, conflicts_with = "probe")]
    no_probe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

struct Checks(Vec<(Status, &'static str, String)>);

impl Checks {
    fn add(&mut self, status: Status, name: &'static str, detail: impl Into<String>) {
        self.0.push((status, name, detail.into()));
    }

    fn count(&self, s: Status) -> usize {
        self.0.iter().filter(|(st, _, _)| *st == s).count()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut c = Checks(Vec::new());
    let service = env("FASTEN_SERVICE_ID");
    let node = env("FASTEN_NODE_ID");
    match (&service, &node) {
        (Some(s), Some(n)) => c.add(Status::Ok, "env", format!("service {s}, node {n}")),
        _ => c.add(
            Status::Fail,
            "env",
            "FASTEN_SERVICE_ID and FASTEN_NODE_ID must both be set, e.g. FASTEN_SERVICE_ID=billing-api FASTEN_NODE_ID=node-1",
        ),
    }
    let config = Config::from_env();
    let audit =
        env("FASTEN_AUDIT_DSN").unwrap_or_else(|| fasten::env::FASTEN_AUDIT_DSN_DEFAULT.to_owned());
    let dsn = match Dsn::parse("FASTEN_AUDIT_DSN", audit.trim()) {
        Ok(d) => d,
        Err(e) => {
            c.add(Status::Fail, "audit store", e.to_string());
            return finish(args, &c);
        }
    };
    if let Err(e) = &config {
        c.add(Status::Fail, "config", e.to_string());
    }
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    for unknown in fasten::env::unknown(names.iter().map(String::as_str)) {
        c.add(Status::Fail, "env", unknown.to_string());
    }

    match env("FASTEN_CODES") {
        Some(list) => {
            let paths = super::code_paths(Some(&list));
            match super::load_codes(&paths) {
                Ok(r) if r.is_empty() => c.add(
                    Status::Fail,
                    "codes",
                    format!("{} declares no code: every emit would fail", list.trim()),
                ),
                Ok(r) => c.add(
                    Status::Ok,
                    "codes",
                    format!("{} codes from {}", r.codes().len(), list.trim()),
                ),
                Err(e) => c.add(Status::Fail, "codes", format!("{e:#}")),
            }
        }
        None => c.add(
            Status::Fail,
            "codes",
            "no code registry: FASTEN_CODES is not set, so every emit of a service configured like this fails (codes declared in Rust with fasten::register are not visible to this check)",
        ),
    }

    // Before the store checks, so they describe the store the probe left.
    if args.probe {
        probe(&mut c, config, &dsn)?;
    }

    let reader = Reader::new(dsn.clone());
    let health = reader.health();
    if health.reachable {
        c.add(
            Status::Ok,
            "audit store",
            format!(
                "{} reachable ({}), schema has the contract's columns",
                health.store, health.store_kind
            ),
        );
    } else {
        c.add(
            Status::Fail,
            "audit store",
            format!(
                "{}: {}",
                health.store,
                health.error.clone().unwrap_or_default()
            ),
        );
    }

    if !health.reachable {
        return finish(args, &c);
    }
    for chain in health.chains {
        match (&chain.first_break_seq, &chain.reason) {
            (Some(seq), Some(reason)) => c.add(
                Status::Fail,
                "chain",
                format!(
                    "{}: seq {seq}: {reason} (run `fasten verify`)",
                    chain.source_node_id
                ),
            ),
            _ => c.add(
                Status::Ok,
                "chain",
                format!(
                    "{}: newest {} of {} rows intact",
                    chain.source_node_id, chain.checked, chain.rows
                ),
            ),
        }
    }

    for (var, table, name) in [
        ("FASTEN_SYS_DSN", "sys_log", "sys store"),
        ("FASTEN_API_DSN", "api_log", "api store"),
    ] {
        match env(var) {
            None => c.add(
                Status::Warn,
                name,
                format!("{var} is not set: rows stay in the process's memory and stdout"),
            ),
            Some(v) => {
                let result = Dsn::parse_for(
                    if var == "FASTEN_SYS_DSN" {
                        "FASTEN_SYS_DSN"
                    } else {
                        "FASTEN_API_DSN"
                    },
                    v.trim(),
                    table,
                )
                .and_then(|d| {
                    let shown = d.to_string();
                    let r = Reader::new(dsn.clone());
                    let q = StreamQuery::new(1);
                    if var == "FASTEN_SYS_DSN" {
                        r.sys_dsn(d).sys(&q).map(|_| shown)
                    } else {
                        r.api_dsn(d).api(&q).map(|_| shown)
                    }
                });
                match result {
                    Ok(shown) => c.add(Status::Ok, name, format!("{shown} reachable")),
                    Err(e) => c.add(Status::Fail, name, e.to_string()),
                }
            }
        }
    }
    finish(args, &c)
}

/// The opt-in round trip: a probe row written through a real pipeline in
/// `raise` mode and read back.
fn probe(c: &mut Checks, config: fasten::Result<Config>, dsn: &Dsn) -> anyhow::Result<()> {
    let Ok(cfg) = config else {
        c.add(
            Status::Fail,
            "round trip",
            "not run: the configuration is invalid",
        );
        return Ok(());
    };
    let reader = Reader::new(dsn.clone());
    let registry = fasten::code::Registry::new();
    registry.register(
        "fasten",
        [(
            PROBE,
            Meta::new("doctor", "probe").retention(RetentionClass::Short),
        )],
    )?;
    let start = Instant::now();
    let probe = cfg
        .registry(registry)
        .stdout(Stdout::NONE)
        // A health check must not start a retention sweep as a side effect.
        .retention_sweep_interval(None)
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .build()
        .and_then(|f| {
            let row = f.emit_durable(
                Event::new(PROBE)
                    .target("fasten doctor")
                    .method(Method::Cli),
            )?;
            f.shutdown(Duration::from_secs(10))?;
            Ok(row)
        })
        .and_then(|row| Ok((reader.audit_row(&row.id)?, row)));
    match probe {
        Ok((Some(back), row)) if back.hash == row.hash => c.add(
            Status::Ok,
            "round trip",
            format!(
                "{PROBE} {} written and read back at seq {} in {:.1} ms",
                row.id,
                row.monotonic_seq,
                start.elapsed().as_secs_f64() * 1000.0
            ),
        ),
        Ok((_, row)) => c.add(
            Status::Fail,
            "round trip",
            format!("{} was written but does not read back as written", row.id),
        ),
        Err(e) => c.add(Status::Fail, "round trip", e.to_string()),
    }
    Ok(())
}

fn finish(args: &Args, c: &Checks) -> anyhow::Result<ExitCode> {
    let failed = c.count(Status::Fail);
    let mut out = std::io::stdout().lock();
    if args.json {
        let checks: Vec<_> = c
            .0
            .iter()
            .map(|(s, name, detail)| {
                json!({
                    "check": name,
                    "status": match s { Status::Ok => "ok", Status::Warn => "warn", Status::Fail => "fail" },
                    "detail": detail,
                })
            })
            .collect();
        serde_json::to_writer(&mut out, &json!({ "ok": failed == 0, "checks": checks }))?;
        writeln!(out)?;
    } else {
        for (s, name, detail) in &c.0 {
            let mark = match s {
                Status::Ok => "✓",
                Status::Warn => "⚠",
                Status::Fail => "✗",
            };
            writeln!(out, "{mark} {name}: {detail}")?;
        }
        writeln!(
            out,
            "doctor: {} ok, {} warnings, {failed} failed",
            c.count(Status::Ok),
            c.count(Status::Warn)
        )?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
