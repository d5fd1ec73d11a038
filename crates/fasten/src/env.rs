//! Every `FASTEN_*` variable fasten reads, with its default: one table
//! ([`VARIABLES`]), the constants it is made of, and the check that
//! reports unknown names (a typo such as `FASTEN_AUDIT_DNS` would otherwise
//! be silently ignored).
//!
//! A leaf: it imports nothing from the crate, so every layer may use it.

use std::time::Duration;

/// `FASTEN_SERVICE_ID`: the emitting service. Required.
pub const FASTEN_SERVICE_ID: &str = "FASTEN_SERVICE_ID";
/// `FASTEN_NODE_ID`: the node, key of its own hash chain. Required.
pub const FASTEN_NODE_ID: &str = "FASTEN_NODE_ID";
/// `FASTEN_TENANT_ID`: default tenant of every row.
pub const FASTEN_TENANT_ID: &str = "FASTEN_TENANT_ID";
/// `FASTEN_AUDIT_DSN`: where audit rows go.
pub const FASTEN_AUDIT_DSN: &str = "FASTEN_AUDIT_DSN";
/// Default of [`FASTEN_AUDIT_DSN`]: a file in the working directory.
pub const FASTEN_AUDIT_DSN_DEFAULT: &str = "sqlite:///fasten_audit.db";
/// `FASTEN_CODES`: comma-separated code files to load.
pub const FASTEN_CODES: &str = "FASTEN_CODES";
/// `FASTEN_EXPECT_CODES`: the `EXPECT_CODES` text of a `fasten gen` file;
/// start-up fails when the loaded registry differs from it.
pub const FASTEN_EXPECT_CODES: &str = "FASTEN_EXPECT_CODES";
/// `FASTEN_REDACT_KEYS`: extra comma-separated key names to redact.
pub const FASTEN_REDACT_KEYS: &str = "FASTEN_REDACT_KEYS";
/// `FASTEN_MAX_DETAIL_BYTES`: larger details are replaced by a summary.
pub const FASTEN_MAX_DETAIL_BYTES: &str = "FASTEN_MAX_DETAIL_BYTES";
/// Default of [`FASTEN_MAX_DETAIL_BYTES`].
pub const FASTEN_MAX_DETAIL_BYTES_DEFAULT: usize = 64 * 1024;
/// `FASTEN_AUDIT_QUEUE_CAPACITY`: rows the queue holds before emit blocks.
pub const FASTEN_AUDIT_QUEUE_CAPACITY: &str = "FASTEN_AUDIT_QUEUE_CAPACITY";
/// Default of [`FASTEN_AUDIT_QUEUE_CAPACITY`]: about a quarter second of
/// the writer's throughput, a few MiB of memory.
pub const FASTEN_AUDIT_QUEUE_CAPACITY_DEFAULT: usize = 16_384;
/// `FASTEN_AUDIT_QUEUE_TIMEOUT_MS`: how long emit waits on a full queue.
pub const FASTEN_AUDIT_QUEUE_TIMEOUT_MS: &str = "FASTEN_AUDIT_QUEUE_TIMEOUT_MS";
/// Default of [`FASTEN_AUDIT_QUEUE_TIMEOUT_MS`].
pub const FASTEN_AUDIT_QUEUE_TIMEOUT_MS_DEFAULT: u64 = 1000;
/// `FASTEN_AUDIT_BATCH_SIZE`: most rows sealed in one transaction.
pub const FASTEN_AUDIT_BATCH_SIZE: &str = "FASTEN_AUDIT_BATCH_SIZE";
/// Default of [`FASTEN_AUDIT_BATCH_SIZE`]: past a few thousand rows a
/// transaction gains little throughput (PERF-NOTES) and only adds latency.
pub const FASTEN_AUDIT_BATCH_SIZE_DEFAULT: usize = 2048;
/// `FASTEN_AUDIT_BATCH_BYTES`: most bytes of rows (text fields and
/// canonical detail) sealed in one transaction; a larger row goes alone.
pub const FASTEN_AUDIT_BATCH_BYTES: &str = "FASTEN_AUDIT_BATCH_BYTES";
/// Default of [`FASTEN_AUDIT_BATCH_BYTES`]: 8 MiB. At the other defaults a
/// batch of 2048 rows with 64 KiB details would be 128 MiB in one
/// transaction and one PostgreSQL bind message, held in memory twice while
/// it is built; 8 MiB still lets 2048 rows of a typical ~1 KiB fill a
/// batch, so only batches of large details are cut.
pub const FASTEN_AUDIT_BATCH_BYTES_DEFAULT: usize = 8 << 20;
/// `FASTEN_AUDIT_STORE_FAILURE_STRATEGY`: `retry` or `raise`.
pub const FASTEN_AUDIT_STORE_FAILURE_STRATEGY: &str = "FASTEN_AUDIT_STORE_FAILURE_STRATEGY";
/// `FASTEN_AUDIT_MAX_RETRIES`: store attempts in `raise` mode.
pub const FASTEN_AUDIT_MAX_RETRIES: &str = "FASTEN_AUDIT_MAX_RETRIES";
/// Default of [`FASTEN_AUDIT_MAX_RETRIES`].
pub const FASTEN_AUDIT_MAX_RETRIES_DEFAULT: u32 = 5;

/// `FASTEN_SIGNING_KEY`: a `fasten keygen` key file; the writer signs
/// checkpoints with it.
pub const FASTEN_SIGNING_KEY: &str = "FASTEN_SIGNING_KEY";
/// `FASTEN_CHECKPOINT_EVERY`: sign after this many new rows.
pub const FASTEN_CHECKPOINT_EVERY: &str = "FASTEN_CHECKPOINT_EVERY";
/// Default of [`FASTEN_CHECKPOINT_EVERY`]: a signature (~50 µs) per
/// thousand rows is noise beside the inserts.
pub const FASTEN_CHECKPOINT_EVERY_DEFAULT: u64 = 1000;
/// `FASTEN_CHECKPOINT_INTERVAL`: sign after this long when there are new rows.
pub const FASTEN_CHECKPOINT_INTERVAL: &str = "FASTEN_CHECKPOINT_INTERVAL";
/// Default of [`FASTEN_CHECKPOINT_INTERVAL`]: at most a second of rows is
/// ever unwitnessed, at most one signature and file a second when quiet.
pub const FASTEN_CHECKPOINT_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// `FASTEN_CHECKPOINT_DIR`: also publish each checkpoint as a file here.
pub const FASTEN_CHECKPOINT_DIR: &str = "FASTEN_CHECKPOINT_DIR";

/// `FASTEN_CHECKPOINT_WITNESS_URL`: also POST each checkpoint here.
pub const FASTEN_CHECKPOINT_WITNESS_URL: &str = "FASTEN_CHECKPOINT_WITNESS_URL";

/// `FASTEN_SHIP_TO`: ship this node's rows to a central store
/// (`postgres://…` or an ingest URL `https://…/api/v1/logs`).
pub const FASTEN_SHIP_TO: &str = "FASTEN_SHIP_TO";
/// `FASTEN_SHIP_TOKEN`: the bearer token for an ingest URL.
pub const FASTEN_SHIP_TOKEN: &str = "FASTEN_SHIP_TOKEN";
/// `FASTEN_SHIP_INTERVAL`: how often the shipper looks for new rows.
pub const FASTEN_SHIP_INTERVAL: &str = "FASTEN_SHIP_INTERVAL";
/// Default of [`FASTEN_SHIP_INTERVAL`]: rows reach the central store
/// within about a second.
pub const FASTEN_SHIP_INTERVAL_DEFAULT: Duration = Duration::from_millis(500);
/// `FASTEN_SHIP_BATCH_SIZE`: most rows per shipped batch.
pub const FASTEN_SHIP_BATCH_SIZE: &str = "FASTEN_SHIP_BATCH_SIZE";
/// Default of [`FASTEN_SHIP_BATCH_SIZE`].
pub const FASTEN_SHIP_BATCH_SIZE_DEFAULT: usize = 1000;
/// `FASTEN_SHIP_STREAMS`: the streams shipped besides audit rows.
pub const FASTEN_SHIP_STREAMS: &str = "FASTEN_SHIP_STREAMS";
/// `FASTEN_INGEST_TOKENS`: `node=token` pairs the ingest route accepts.
pub const FASTEN_INGEST_TOKENS: &str = "FASTEN_INGEST_TOKENS";
/// `FASTEN_FLEET_KEYS`: `node=verifier key` pairs checkpoints are checked with.
pub const FASTEN_FLEET_KEYS: &str = "FASTEN_FLEET_KEYS";

/// `FASTEN_SYS_RING_SIZE`: sys rows kept in memory.
pub const FASTEN_SYS_RING_SIZE: &str = "FASTEN_SYS_RING_SIZE";
/// `FASTEN_API_RING_SIZE`: api rows kept in memory.
pub const FASTEN_API_RING_SIZE: &str = "FASTEN_API_RING_SIZE";
/// Default of [`FASTEN_SYS_RING_SIZE`] and [`FASTEN_API_RING_SIZE`]: the
/// last minutes of a busy service for the reader, a few MiB each (the
/// README gives the measured figure).
pub const FASTEN_RING_SIZE_DEFAULT: usize = 10_000;
/// `FASTEN_STDOUT`: streams written to stdout as JSON lines.
pub const FASTEN_STDOUT: &str = "FASTEN_STDOUT";
/// Default of [`FASTEN_STDOUT`]: both streams, one JSON object a line, as
/// container platforms collect them. Audit rows go to their store, never
/// here.
pub const FASTEN_STDOUT_DEFAULT: &str = "sys,api";
/// `FASTEN_SYS_DSN`: where sys rows are stored, if anywhere.
pub const FASTEN_SYS_DSN: &str = "FASTEN_SYS_DSN";
/// `FASTEN_API_DSN`: where api rows are stored, if anywhere.
pub const FASTEN_API_DSN: &str = "FASTEN_API_DSN";
/// `FASTEN_STREAM_QUEUE_CAPACITY`: sys or api rows queued for their writer.
pub const FASTEN_STREAM_QUEUE_CAPACITY: &str = "FASTEN_STREAM_QUEUE_CAPACITY";
/// Default of [`FASTEN_STREAM_QUEUE_CAPACITY`].
pub const FASTEN_STREAM_QUEUE_CAPACITY_DEFAULT: usize = 8192;
/// `FASTEN_SYS_LEVEL`: least severe level the sys stream records.
pub const FASTEN_SYS_LEVEL: &str = "FASTEN_SYS_LEVEL";
/// Default of [`FASTEN_SYS_LEVEL`].
pub const FASTEN_SYS_LEVEL_DEFAULT: &str = "info";
/// `FASTEN_API_SKIP_PATHS`: paths that get no api row.
pub const FASTEN_API_SKIP_PATHS: &str = "FASTEN_API_SKIP_PATHS";

/// `FASTEN_OTLP_ENDPOINT`: an OTLP/HTTP collector to export the three
/// streams to as log records (feature `otlp`).
pub const FASTEN_OTLP_ENDPOINT: &str = "FASTEN_OTLP_ENDPOINT";
/// `FASTEN_OTLP_HEADERS`: `key=value,…` headers for each export request.
pub const FASTEN_OTLP_HEADERS: &str = "FASTEN_OTLP_HEADERS";
/// `FASTEN_OTLP_QUEUE_CAPACITY`: rows waiting for the exporter before
/// copies are dropped (counted).
pub const FASTEN_OTLP_QUEUE_CAPACITY: &str = "FASTEN_OTLP_QUEUE_CAPACITY";
/// Default of [`FASTEN_OTLP_QUEUE_CAPACITY`].
pub const FASTEN_OTLP_QUEUE_CAPACITY_DEFAULT: usize = 8192;

/// `FASTEN_READER_TOKENS`: comma-separated bearer tokens the reader accepts.
pub const FASTEN_READER_TOKENS: &str = "FASTEN_READER_TOKENS";

/// `FASTEN_REQUEST_ID`: the process's default ambient request id, so a
/// script's steps (`fasten run -- …`) and the services it starts share one.
pub const FASTEN_REQUEST_ID: &str = "FASTEN_REQUEST_ID";

// Retention (see crate::retention).

/// `FASTEN_AUDIT_RETENTION_CLASS_SHORT`: days the detail of a `short` row is kept.
pub const FASTEN_AUDIT_RETENTION_CLASS_SHORT: &str = "FASTEN_AUDIT_RETENTION_CLASS_SHORT";
/// Default of [`FASTEN_AUDIT_RETENTION_CLASS_SHORT`]: 30 days.
pub const FASTEN_AUDIT_RETENTION_CLASS_SHORT_DEFAULT: u32 = 30;
/// `FASTEN_AUDIT_RETENTION_CLASS_MEDIUM`: days the detail of a `medium` row is kept.
pub const FASTEN_AUDIT_RETENTION_CLASS_MEDIUM: &str = "FASTEN_AUDIT_RETENTION_CLASS_MEDIUM";
/// Default of [`FASTEN_AUDIT_RETENTION_CLASS_MEDIUM`]: 180 days.
pub const FASTEN_AUDIT_RETENTION_CLASS_MEDIUM_DEFAULT: u32 = 180;
/// `FASTEN_AUDIT_RETENTION_CLASS_LONG`: days the detail of a `long` row is kept.
pub const FASTEN_AUDIT_RETENTION_CLASS_LONG: &str = "FASTEN_AUDIT_RETENTION_CLASS_LONG";
/// Default of [`FASTEN_AUDIT_RETENTION_CLASS_LONG`]: three years of 365 days.
pub const FASTEN_AUDIT_RETENTION_CLASS_LONG_DEFAULT: u32 = 3 * 365;
/// `FASTEN_AUDIT_RETENTION_OVERRIDE`: `long=7y,medium=1y` (units d, w, m, y).
pub const FASTEN_AUDIT_RETENTION_OVERRIDE: &str = "FASTEN_AUDIT_RETENTION_OVERRIDE";
/// `FASTEN_RETENTION_SWEEP_INTERVAL`: how often the background sweep runs, or `off`.
pub const FASTEN_RETENTION_SWEEP_INTERVAL: &str = "FASTEN_RETENTION_SWEEP_INTERVAL";
/// Default of [`FASTEN_RETENTION_SWEEP_INTERVAL`]: six hours.
pub const FASTEN_RETENTION_SWEEP_INTERVAL_DEFAULT: Duration = Duration::from_secs(6 * 3600);
/// `FASTEN_AUDIT_LEGAL_HOLD`: comma-separated codes whose rows are never erased.
pub const FASTEN_AUDIT_LEGAL_HOLD: &str = "FASTEN_AUDIT_LEGAL_HOLD";
/// `FASTEN_AUDIT_LEGAL_HOLD_TENANTS`: comma-separated tenants whose rows are never erased.
pub const FASTEN_AUDIT_LEGAL_HOLD_TENANTS: &str = "FASTEN_AUDIT_LEGAL_HOLD_TENANTS";
/// `FASTEN_API_RETENTION_DAYS`: days api stream rows are kept in their store.
pub const FASTEN_API_RETENTION_DAYS: &str = "FASTEN_API_RETENTION_DAYS";
/// `FASTEN_SYS_RETENTION_DAYS`: days sys stream rows are kept in their store.
pub const FASTEN_SYS_RETENTION_DAYS: &str = "FASTEN_SYS_RETENTION_DAYS";

/// One documented variable: its name, its default and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// The name, `FASTEN_…`.
    pub name: &'static str,
    /// The default, as the docs print it.
    pub default: &'static str,
    /// What it does, one line of Markdown.
    pub meaning: &'static str,
}

/// Every variable fasten reads, in the order the docs list them. The crate
/// docs, the README and `docs/` print this table; a test keeps them equal.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "FASTEN_SERVICE_ID",
        default: "required",
        meaning: "the emitting service (WHERE)",
    },
    Variable {
        name: "FASTEN_NODE_ID",
        default: "required",
        meaning: "the node; each node has its own hash chain",
    },
    Variable {
        name: "FASTEN_TENANT_ID",
        default: "none",
        meaning: "default tenant of every row",
    },
    Variable {
        name: "FASTEN_AUDIT_DSN",
        default: "`sqlite:///fasten_audit.db`",
        meaning: "`sqlite:///relative.db`, `sqlite:////abs/path.db`, or `postgres://user:pw@host/db` (also `postgresql://`, with libpq parameters such as `application_name`, `connect_timeout`, and TLS: `sslmode` = `disable`, `prefer` (default), `require`, `verify-ca` or `verify-full`, `sslrootcert` = a PEM file of CA certificates or `system`); optional `?table=NAME` or `?table=schema.NAME` (default `audit_log`)",
    },
    Variable {
        name: "FASTEN_CODES",
        default: "none",
        meaning: "comma-separated `*.codes.yaml` files to load",
    },
    Variable {
        name: "FASTEN_EXPECT_CODES",
        default: "none",
        meaning: "the `EXPECT_CODES` text of a `fasten gen` file; start-up fails listing every difference between it and the loaded codes",
    },
    Variable {
        name: "FASTEN_REDACT_KEYS",
        default: "none",
        meaning: "extra comma-separated key names to redact",
    },
    Variable {
        name: "FASTEN_MAX_DETAIL_BYTES",
        default: "`65536`",
        meaning: "larger details are replaced by a summary",
    },
    Variable {
        name: "FASTEN_AUDIT_QUEUE_CAPACITY",
        default: "`16384`",
        meaning: "rows the queue holds before emit blocks",
    },
    Variable {
        name: "FASTEN_AUDIT_QUEUE_TIMEOUT_MS",
        default: "`1000`",
        meaning: "how long emit blocks on a full queue before `QueueFull`",
    },
    Variable {
        name: "FASTEN_AUDIT_BATCH_SIZE",
        default: "`2048`",
        meaning: "most rows sealed in one transaction",
    },
    Variable {
        name: "FASTEN_AUDIT_BATCH_BYTES",
        default: "`8388608`",
        meaning: "most bytes of rows (text fields and canonical detail) sealed in one transaction; a larger row goes alone",
    },
    Variable {
        name: "FASTEN_AUDIT_STORE_FAILURE_STRATEGY",
        default: "`retry`",
        meaning: "`retry`: emit returns once queued and the writer retries the store until it succeeds; `raise`: emit returns once the row is durable, or the store's error",
    },
    Variable {
        name: "FASTEN_AUDIT_MAX_RETRIES",
        default: "`5`",
        meaning: "in `raise` mode, store attempts before the error goes back to the callers",
    },
    Variable {
        name: "FASTEN_SIGNING_KEY",
        default: "none",
        meaning: "a `fasten keygen` key file: the writer then signs checkpoints",
    },
    Variable {
        name: "FASTEN_CHECKPOINT_EVERY",
        default: "`1000`",
        meaning: "sign after this many new rows (checked at each batch)",
    },
    Variable {
        name: "FASTEN_CHECKPOINT_INTERVAL",
        default: "`1s`",
        meaning: "… or after this long with new rows (`500ms`, `1s`, `5m`, `1h`), and at flush and shutdown",
    },
    Variable {
        name: "FASTEN_CHECKPOINT_DIR",
        default: "none",
        meaning: "also publish each checkpoint as `DIR/<node>/<size>.checkpoint` (temp file, fsync, rename, fsync dir)",
    },
    Variable {
        name: "FASTEN_CHECKPOINT_WITNESS_URL",
        default: "none",
        meaning: "also POST each checkpoint to this `http(s)://` witness",
    },
    Variable {
        name: "FASTEN_SHIP_TO",
        default: "none",
        meaning: "ship this node's audit rows and checkpoints to a central store: `postgres://…` or an ingest URL `https://host/api/v1/logs` (`http://` only to loopback); a background thread, never on the emit path",
    },
    Variable {
        name: "FASTEN_SHIP_TOKEN",
        default: "none",
        meaning: "the bearer token for an ingest URL in `FASTEN_SHIP_TO` (one of the central's `FASTEN_INGEST_TOKENS`)",
    },
    Variable {
        name: "FASTEN_SHIP_INTERVAL",
        default: "`500ms`",
        meaning: "how often the shipper looks for rows to ship (backs off up to a minute while the central store is unreachable)",
    },
    Variable {
        name: "FASTEN_SHIP_BATCH_SIZE",
        default: "`1000`",
        meaning: "most rows per shipped batch (one central transaction each)",
    },
    Variable {
        name: "FASTEN_SHIP_STREAMS",
        default: "none",
        meaning: "also ship these streams' rows (a comma-separated list of `sys` and `api`, each needing its `FASTEN_SYS_DSN` / `FASTEN_API_DSN`) into the central database's `sys_log` and `api_log` tables; a `postgres://` `FASTEN_SHIP_TO` only",
    },
    Variable {
        name: "FASTEN_INGEST_TOKENS",
        default: "none",
        meaning: "`node=token` pairs (comma-separated, tokens of at least 16 characters) the reader's `POST /ingest` accepts: a token may ship only the nodes it is paired with; without it `/ingest` answers 404",
    },
    Variable {
        name: "FASTEN_FLEET_KEYS",
        default: "none",
        meaning: "`node=verifier key` pairs: the central store checks each shipped checkpoint with its node's key, and refuses those of nodes without one",
    },
    Variable {
        name: "FASTEN_SYS_RING_SIZE",
        default: "`10000`",
        meaning: "sys rows kept in memory for reading back (0: none)",
    },
    Variable {
        name: "FASTEN_API_RING_SIZE",
        default: "`10000`",
        meaning: "api rows kept in memory for reading back (0: none)",
    },
    Variable {
        name: "FASTEN_STDOUT",
        default: "`sys,api`",
        meaning: "streams written to stdout as JSON lines: a comma-separated list of `sys`, `api` and `audit` (committed audit rows, a copy for log shippers), or `all` or `none`",
    },
    Variable {
        name: "FASTEN_SYS_DSN",
        default: "none",
        meaning: "also store sys rows; same grammar as `FASTEN_AUDIT_DSN`, default table `sys_log`",
    },
    Variable {
        name: "FASTEN_API_DSN",
        default: "none",
        meaning: "also store api rows (default table `api_log`)",
    },
    Variable {
        name: "FASTEN_STREAM_QUEUE_CAPACITY",
        default: "`8192`",
        meaning: "sys or api rows waiting for their writer before new ones are shed (counted)",
    },
    Variable {
        name: "FASTEN_SYS_LEVEL",
        default: "`info`",
        meaning: "least severe `tracing` level recorded in the sys stream",
    },
    Variable {
        name: "FASTEN_API_SKIP_PATHS",
        default: "none",
        meaning: "comma-separated paths without api rows (`/health`; `/internal/*` for a prefix)",
    },
    Variable {
        name: "FASTEN_OTLP_ENDPOINT",
        default: "none",
        meaning: "export the audit, sys and api streams as OpenTelemetry log records over OTLP/HTTP protobuf to this collector (`http://localhost:4318`; records go to `/v1/logs` beneath it), in batches from a background thread that never blocks emit (feature `otlp`)",
    },
    Variable {
        name: "FASTEN_OTLP_HEADERS",
        default: "none",
        meaning: "headers sent with each export request: `name=value,name2=value2`",
    },
    Variable {
        name: "FASTEN_OTLP_QUEUE_CAPACITY",
        default: "`8192`",
        meaning: "rows waiting for the exporter before copies are dropped (counted in `otlp_stats().dropped`)",
    },
    Variable {
        name: "FASTEN_AUDIT_RETENTION_CLASS_SHORT",
        default: "`30`",
        meaning: "days the detail of `short` rows is kept",
    },
    Variable {
        name: "FASTEN_AUDIT_RETENTION_CLASS_MEDIUM",
        default: "`180`",
        meaning: "days for `medium` (the default class)",
    },
    Variable {
        name: "FASTEN_AUDIT_RETENTION_CLASS_LONG",
        default: "`1095`",
        meaning: "days for `long`",
    },
    Variable {
        name: "FASTEN_AUDIT_RETENTION_OVERRIDE",
        default: "none",
        meaning: "`long=7y,medium=1y` (units `d`, `w`, `m` = 30 d, `y` = 365 d); a class may not also be set by its own variable",
    },
    Variable {
        name: "FASTEN_RETENTION_SWEEP_INTERVAL",
        default: "`6h`",
        meaning: "background retention sweep (`30m`, `6h`, `1d`), or `off`",
    },
    Variable {
        name: "FASTEN_AUDIT_LEGAL_HOLD",
        default: "none",
        meaning: "comma-separated codes whose rows are never erased",
    },
    Variable {
        name: "FASTEN_AUDIT_LEGAL_HOLD_TENANTS",
        default: "none",
        meaning: "comma-separated tenants whose rows are never erased",
    },
    Variable {
        name: "FASTEN_API_RETENTION_DAYS",
        default: "none",
        meaning: "days api stream rows are kept",
    },
    Variable {
        name: "FASTEN_SYS_RETENTION_DAYS",
        default: "none",
        meaning: "days sys stream rows are kept",
    },
    Variable {
        name: "FASTEN_REQUEST_ID",
        default: "none",
        meaning: "the process's default ambient request id (`fasten run` exports it; `fasten emit` uses it when `--request-id` is not given); an unsafe value is ignored with a warning",
    },
    Variable {
        name: "FASTEN_READER_TOKENS",
        default: "none",
        meaning: "bearer tokens the HTTP reader accepts (comma-separated, at least 16 characters each); `Auth::from_env` and `fasten serve` refuse to start without them",
    },
    Variable {
        name: "FASTEN_READER_TOKEN",
        default: "none",
        meaning: "`fasten tail` / `correlate` read through this remote reader",
    },
    Variable {
        name: "FASTEN_READER_URL",
        default: "none",
        meaning: "`fasten tail` / `correlate` read through this remote reader",
    },
];

/// Prefixes of variables read by fasten's own tests, benchmarks and
/// examples, never reported as unknown.
const TOOLING_PREFIXES: &[&str] = &[
    "FASTEN_TEST_",
    "FASTEN_IT_",
    "FASTEN_BENCH_",
    "FASTEN_EXAMPLE_",
];

/// A `FASTEN_*` name that fasten does not read, probably a typo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// The name as given.
    pub name: String,
    /// The known name it most resembles, if one is close.
    pub nearest: Option<&'static str>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown variable {}", self.name)?;
        match self.nearest {
            Some(near) => write!(f, " (did you mean {near}?)"),
            None => write!(f, " (fasten::env::VARIABLES lists the known ones)"),
        }
    }
}

/// Whether fasten reads `name`.
pub fn is_known(name: &str) -> bool {
    VARIABLES.iter().any(|v| v.name == name) || TOOLING_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The names among `names` that start with `FASTEN_` and that fasten does
/// not read, each with the nearest known name (by edit distance, at most 3
/// edits) to suggest.
///
/// # Examples
///
/// ```
/// let unknown = fasten::env::unknown(["FASTEN_AUDIT_DNS", "FASTEN_NODE_ID", "HOME"]);
/// assert_eq!(unknown.len(), 1);
/// assert_eq!(unknown[0].nearest, Some("FASTEN_AUDIT_DSN"));
/// ```
pub fn unknown<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Unknown> {
    names
        .into_iter()
        .filter(|n| n.starts_with("FASTEN_") && !is_known(n))
        .map(|name| Unknown {
            name: name.to_owned(),
            nearest: nearest(name),
        })
        .collect()
}

/// The known name closest to `name` by edit distance, if at most 3 edits
/// away.
pub fn nearest(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .map(|v| (strsim::damerau_levenshtein(name, v.name), v.name))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| n)
}

/// The table as Markdown, the way the crate docs, the README and `docs/`
/// print it.
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for v in VARIABLES {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            v.name, v.default, v.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_listed_once_and_named_after_itself() {
        let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a variable is listed twice");
        for name in names {
            assert!(name.starts_with("FASTEN_"), "{name}");
        }
    }

    /// `docs/environment.md` prints exactly this table, so the docs never
    /// drift from what the code reads.
    #[test]
    fn the_docs_print_this_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/environment.md");
        let docs = std::fs::read_to_string(path).expect("docs/environment.md");
        let table = markdown_table();
        assert!(
            docs.contains(&table),
            "docs/environment.md does not hold the current table; replace it with:\n{table}"
        );
    }

    #[test]
    fn typos_are_reported_with_the_nearest_name() {
        let found = unknown([
            "FASTEN_AUDIT_DNS",
            "FASTEN_SERVCE_ID",
            "FASTEN_TOTALLY_DIFFERENT_THING",
            "FASTEN_TEST_PG",
            "FASTEN_CODES",
            "PATH",
        ]);
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "unknown variable FASTEN_AUDIT_DNS (did you mean FASTEN_AUDIT_DSN?)",
                "unknown variable FASTEN_SERVCE_ID (did you mean FASTEN_SERVICE_ID?)",
                "unknown variable FASTEN_TOTALLY_DIFFERENT_THING (fasten::env::VARIABLES lists the known ones)",
            ]
        );
    }
}
