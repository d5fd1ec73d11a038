//! Configuration: the builder of a pipeline, read from `FASTEN_*`
//! variables ([`Config::from_env`]), from explicit pairs of the same names
//! ([`Config::from_pairs`], for language bindings), or set in code. Every
//! variable, its default and its meaning are in [`crate::env`].

use std::path::PathBuf;
use std::time::Duration;

mod retention;

pub(crate) use self::retention::{DAY, Retention, check_days};
use crate::code::Registry;
use crate::dsn::Dsn;
#[allow(clippy::wildcard_imports, reason = "every name of the env table")]
use crate::env::*;
use crate::error::{Error, Result};
use crate::request_id::RequestId;

/// Which streams go to stdout ([`FASTEN_STDOUT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stdout {
    /// Sys rows.
    pub sys: bool,
    /// Api rows.
    pub api: bool,
    /// Audit rows, once committed: a copy for log shippers, written by a
    /// background thread that drops (and counts) lines rather than slow
    /// the writer.
    pub audit: bool,
}

impl Stdout {
    /// Nothing to stdout.
    pub const NONE: Self = Self {
        sys: false,
        api: false,
        audit: false,
    };
    /// The default: the sys and api streams.
    pub const DEFAULT: Self = Self {
        sys: true,
        api: true,
        audit: false,
    };
    /// All three streams.
    pub const ALL: Self = Self {
        sys: true,
        api: true,
        audit: true,
    };
}

impl std::str::FromStr for Stdout {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut out = Self::NONE;
        for part in s.split(',').map(str::trim) {
            match part {
                "all" => out = Self::ALL,
                "none" if s.trim() == "none" => {}
                "sys" => out.sys = true,
                "api" => out.api = true,
                "audit" => out.audit = true,
                _ => {
                    return Err(Error::config(
                        FASTEN_STDOUT,
                        format!(
                            "invalid {FASTEN_STDOUT} {s:?}: expected all, none, or a comma-separated list of sys, api and audit, e.g. sys,api"
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}
/// Which streams ship besides audit rows ([`FASTEN_SHIP_STREAMS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipStreams {
    /// Sys rows, from the `FASTEN_SYS_DSN` table.
    pub sys: bool,
    /// Api rows, from the `FASTEN_API_DSN` table.
    pub api: bool,
}

impl ShipStreams {
    /// Audit rows only (the default).
    pub const NONE: Self = Self {
        sys: false,
        api: false,
    };
}

impl std::str::FromStr for ShipStreams {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut out = Self::NONE;
        for part in s.split(',').map(str::trim) {
            match part {
                "sys" => out.sys = true,
                "api" => out.api = true,
                _ => {
                    return Err(Error::config(
                        FASTEN_SHIP_STREAMS,
                        format!(
                            "invalid {FASTEN_SHIP_STREAMS} {s:?}: expected a comma-separated list of sys and api, e.g. sys,api (audit rows always ship with {FASTEN_SHIP_TO})"
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// What `emit` promises when it returns `Ok`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureStrategy {
    /// The row is queued; the writer retries the store with backoff until it
    /// commits. The caller never waits on disk. Use [`flush`](crate::Fasten::flush)
    /// where a point must be durable.
    #[default]
    Retry,
    /// The row is committed (durable) before `emit` returns; concurrent
    /// callers share one commit. A store failure that outlasts
    /// `FASTEN_AUDIT_MAX_RETRIES` attempts is returned to the caller.
    Raise,
}

impl std::str::FromStr for FailureStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "retry" => Ok(Self::Retry),
            "raise" => Ok(Self::Raise),
            _ => Err(Error::config(
                FASTEN_AUDIT_STORE_FAILURE_STRATEGY,
                format!(
                    "invalid {FASTEN_AUDIT_STORE_FAILURE_STRATEGY} {s:?}: expected retry or raise"
                ),
            )),
        }
    }
}

/// Builds a pipeline. Start from [`Config::from_env`] or [`Config::new`].
///
/// ## Defaults
///
/// | setter | variable | default |
/// |---|---|---|
/// | [`service_id`](Self::service_id) | `FASTEN_SERVICE_ID` | required |
/// | [`node_id`](Self::node_id) | `FASTEN_NODE_ID` | required |
/// | [`tenant_id`](Self::tenant_id) | `FASTEN_TENANT_ID` | none |
/// | [`audit_dsn`](Self::audit_dsn) | `FASTEN_AUDIT_DSN` | `sqlite:///fasten_audit.db` |
/// | [`codes`](Self::codes) | `FASTEN_CODES` | none |
/// | [`expect_codes`](Self::expect_codes) | `FASTEN_EXPECT_CODES` | none |
/// | [`redact_keys`](Self::redact_keys) | `FASTEN_REDACT_KEYS` | none |
/// | [`max_detail_bytes`](Self::max_detail_bytes) | `FASTEN_MAX_DETAIL_BYTES` | 65536 |
/// | [`audit_queue_capacity`](Self::audit_queue_capacity) | `FASTEN_AUDIT_QUEUE_CAPACITY` | 16384 |
/// | [`audit_queue_timeout`](Self::audit_queue_timeout) | `FASTEN_AUDIT_QUEUE_TIMEOUT_MS` | 1 s |
/// | [`audit_batch_size`](Self::audit_batch_size) | `FASTEN_AUDIT_BATCH_SIZE` | 2048 |
/// | [`audit_batch_bytes`](Self::audit_batch_bytes) | `FASTEN_AUDIT_BATCH_BYTES` | 8388608 (8 MiB) |
/// | [`audit_store_failure_strategy`](Self::audit_store_failure_strategy) | `FASTEN_AUDIT_STORE_FAILURE_STRATEGY` | `retry` |
/// | [`audit_max_retries`](Self::audit_max_retries) | `FASTEN_AUDIT_MAX_RETRIES` | 5 |
/// | [`ship_to`](Self::ship_to) | `FASTEN_SHIP_TO` | none (no shipping) |
/// | [`ship_token`](Self::ship_token) | `FASTEN_SHIP_TOKEN` | none |
/// | [`ship_interval`](Self::ship_interval) | `FASTEN_SHIP_INTERVAL` | 500 ms |
/// | [`ship_batch_size`](Self::ship_batch_size) | `FASTEN_SHIP_BATCH_SIZE` | 1000 |
/// | [`ship_streams`](Self::ship_streams) | `FASTEN_SHIP_STREAMS` | none (audit rows only) |
/// | [`sys_ring_size`](Self::sys_ring_size) | `FASTEN_SYS_RING_SIZE` | 10000 |
/// | [`api_ring_size`](Self::api_ring_size) | `FASTEN_API_RING_SIZE` | 10000 |
/// | [`stdout`](Self::stdout) | `FASTEN_STDOUT` | `sys,api` |
/// | [`sys_dsn`](Self::sys_dsn) | `FASTEN_SYS_DSN` | none |
/// | [`api_dsn`](Self::api_dsn) | `FASTEN_API_DSN` | none |
/// | [`stream_queue_capacity`](Self::stream_queue_capacity) | `FASTEN_STREAM_QUEUE_CAPACITY` | 8192 |
/// | [`sys_level`](Self::sys_level) | `FASTEN_SYS_LEVEL` | `info` |
/// | [`api_skip_paths`](Self::api_skip_paths) | `FASTEN_API_SKIP_PATHS` | none |
/// | [`audit_retention_class`](Self::audit_retention_class) | `FASTEN_AUDIT_RETENTION_CLASS_SHORT`, `_MEDIUM`, `_LONG` | 30, 180, 1095 days |
/// | [`audit_retention_override`](Self::audit_retention_override) | `FASTEN_AUDIT_RETENTION_OVERRIDE` | none |
/// | [`retention_sweep_interval`](Self::retention_sweep_interval) | `FASTEN_RETENTION_SWEEP_INTERVAL` | 6 h |
/// | [`audit_legal_hold`](Self::audit_legal_hold) | `FASTEN_AUDIT_LEGAL_HOLD` | none |
/// | [`audit_legal_hold_tenants`](Self::audit_legal_hold_tenants) | `FASTEN_AUDIT_LEGAL_HOLD_TENANTS` | none |
/// | [`api_retention_days`](Self::api_retention_days) | `FASTEN_API_RETENTION_DAYS` | none |
/// | [`sys_retention_days`](Self::sys_retention_days) | `FASTEN_SYS_RETENTION_DAYS` | none |
/// | [`request_id`](Self::request_id) | `FASTEN_REQUEST_ID` | none |
/// | [`registry`](Self::registry) | — | [`Registry::global`] for `init`, a new one for `build` |
///
/// # Examples
///
/// ```no_run
/// let _fasten = fasten::Config::from_env()?.audit_queue_capacity(8192).init()?;
/// # Ok::<(), fasten::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Config does nothing until init() or build()"]
pub struct Config {
    pub(crate) service_id: Option<String>,
    pub(crate) node_id: Option<String>,
    pub(crate) tenant_id: Option<String>,
    pub(crate) audit_dsn: Dsn,
    pub(crate) codes: Vec<PathBuf>,
    /// The generated codes the program was built with (`fasten gen`),
    /// checked against the registry at start-up.
    pub(crate) expected_codes: Vec<crate::typed::Expected>,
    pub(crate) redact_keys: Vec<String>,
    pub(crate) max_detail_bytes: usize,
    pub(crate) audit_queue_capacity: usize,
    pub(crate) audit_queue_timeout: Duration,
    pub(crate) audit_batch_size: usize,
    pub(crate) audit_batch_bytes: usize,
    pub(crate) audit_store_failure_strategy: FailureStrategy,
    pub(crate) audit_max_retries: u32,
    pub(crate) registry: Option<Registry>,
    pub(crate) signing_key: Option<PathBuf>,
    pub(crate) checkpoint_every: u64,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) checkpoint_dir: Option<PathBuf>,
    pub(crate) checkpoint_witness_url: Option<String>,
    pub(crate) ship_to: Option<String>,
    pub(crate) ship_token: Option<String>,
    pub(crate) ship_interval: Duration,
    pub(crate) ship_batch_size: usize,
    pub(crate) ship_streams: ShipStreams,
    pub(crate) sys_ring_size: usize,
    pub(crate) api_ring_size: usize,
    pub(crate) stdout: Stdout,
    pub(crate) sys_dsn: Option<Dsn>,
    pub(crate) api_dsn: Option<Dsn>,
    pub(crate) stream_queue_capacity: usize,
    pub(crate) sys_level: tracing::Level,
    pub(crate) api_skip_paths: Vec<String>,
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) otlp_headers: Headers,
    pub(crate) otlp_queue_capacity: usize,
    pub(crate) retention: Retention,
    pub(crate) request_id: Option<RequestId>,
    /// A `FASTEN_REQUEST_ID` that failed [`RequestId::parse`]: never
    /// trusted, reported as a warning once the pipeline runs.
    pub(crate) rejected_request_id: Option<String>,
    /// `FASTEN_*` variables of the process that fasten does not read,
    /// reported once the pipeline starts.
    pub(crate) unknown_vars: Vec<crate::env::Unknown>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// Every default, nothing read from the environment.
    pub fn new() -> Self {
        Self {
            service_id: None,
            node_id: None,
            tenant_id: None,
            audit_dsn: Dsn::parse(FASTEN_AUDIT_DSN, FASTEN_AUDIT_DSN_DEFAULT)
                .expect("the default DSN parses"),
            codes: Vec::new(),
            expected_codes: Vec::new(),
            redact_keys: Vec::new(),
            max_detail_bytes: FASTEN_MAX_DETAIL_BYTES_DEFAULT,
            audit_queue_capacity: FASTEN_AUDIT_QUEUE_CAPACITY_DEFAULT,
            audit_queue_timeout: Duration::from_millis(FASTEN_AUDIT_QUEUE_TIMEOUT_MS_DEFAULT),
            audit_batch_size: FASTEN_AUDIT_BATCH_SIZE_DEFAULT,
            audit_batch_bytes: FASTEN_AUDIT_BATCH_BYTES_DEFAULT,
            audit_store_failure_strategy: FailureStrategy::Retry,
            audit_max_retries: FASTEN_AUDIT_MAX_RETRIES_DEFAULT,
            registry: None,
            signing_key: None,
            checkpoint_every: FASTEN_CHECKPOINT_EVERY_DEFAULT,
            checkpoint_interval: FASTEN_CHECKPOINT_INTERVAL_DEFAULT,
            checkpoint_dir: None,
            checkpoint_witness_url: None,
            ship_to: None,
            ship_token: None,
            ship_interval: crate::env::FASTEN_SHIP_INTERVAL_DEFAULT,
            ship_batch_size: crate::env::FASTEN_SHIP_BATCH_SIZE_DEFAULT,
            ship_streams: ShipStreams::NONE,
            sys_ring_size: FASTEN_RING_SIZE_DEFAULT,
            api_ring_size: FASTEN_RING_SIZE_DEFAULT,
            stdout: Stdout::DEFAULT,
            sys_dsn: None,
            api_dsn: None,
            stream_queue_capacity: FASTEN_STREAM_QUEUE_CAPACITY_DEFAULT,
            sys_level: tracing::Level::INFO,
            api_skip_paths: Vec::new(),
            otlp_endpoint: None,
            otlp_headers: Headers::default(),
            otlp_queue_capacity: FASTEN_OTLP_QUEUE_CAPACITY_DEFAULT,
            retention: Retention::default(),
            request_id: None,
            rejected_request_id: None,
            unknown_vars: Vec::new(),
        }
    }

    /// Reads every `FASTEN_*` variable.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the first
    /// malformed variable. Missing required variables are reported by
    /// [`init`](Self::init) / [`build`](Self::build), so a builder can still
    /// fill them in.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::from_vars(|name| std::env::var(name).ok())?;
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        config.unknown_vars = crate::env::unknown(names.iter().map(String::as_str));
        Ok(config)
    }

    /// Reads the names [`Self::from_env`] reads, from explicit pairs
    /// instead of the process environment: how a language binding or a test
    /// configures a pipeline. Names not given take their defaults, as unset
    /// variables do.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a name fasten
    /// does not read (naming the nearest known one, so a typo is caught),
    /// or naming the first malformed value.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = fasten::Config::from_pairs([
    ///     ("FASTEN_SERVICE_ID", "billing"),
    ///     ("FASTEN_NODE_ID", "node-1"),
    /// ])?;
    /// let err = fasten::Config::from_pairs([("FASTEN_AUDIT_DNS", "sqlite:///a.db")]).unwrap_err();
    /// assert!(err.to_string().contains("did you mean FASTEN_AUDIT_DSN?"));
    /// # Ok::<(), fasten::Error>(())
    /// ```
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let pairs: std::collections::HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        for name in pairs.keys() {
            if !crate::env::is_known(name) {
                let unknown = crate::env::Unknown {
                    name: name.clone(),
                    nearest: crate::env::nearest(name),
                };
                return Err(Error::config(
                    unknown.nearest.unwrap_or(""),
                    unknown.to_string(),
                ));
            }
        }
        Self::from_vars(|name| pairs.get(name).cloned())
    }

    pub(crate) fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        // An empty variable counts as unset, as shells make that easy to do by accident.
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut c = Self::new();
        c.service_id = get(FASTEN_SERVICE_ID);
        c.node_id = get(FASTEN_NODE_ID);
        c.tenant_id = get(FASTEN_TENANT_ID);
        if let Some(v) = get(FASTEN_AUDIT_DSN) {
            c.audit_dsn = Dsn::parse(FASTEN_AUDIT_DSN, v.trim())?;
        }
        if let Some(v) = get(FASTEN_CODES) {
            c.codes = split_list(&v).map(PathBuf::from).collect();
        }
        if let Some(v) = get(FASTEN_EXPECT_CODES) {
            c.expected_codes = crate::typed::parse_expected(&v)
                .map_err(|message| Error::config(FASTEN_EXPECT_CODES, message))?;
        }
        if let Some(v) = get(FASTEN_REDACT_KEYS) {
            c.redact_keys = split_list(&v).map(str::to_owned).collect();
        }
        if let Some(v) = get(FASTEN_MAX_DETAIL_BYTES) {
            c.max_detail_bytes = parse_number(FASTEN_MAX_DETAIL_BYTES, &v, "65536")?;
        }
        if let Some(v) = get(FASTEN_AUDIT_QUEUE_CAPACITY) {
            c.audit_queue_capacity = parse_number(FASTEN_AUDIT_QUEUE_CAPACITY, &v, "16384")?;
        }
        if let Some(v) = get(FASTEN_AUDIT_QUEUE_TIMEOUT_MS) {
            c.audit_queue_timeout =
                Duration::from_millis(parse_number(FASTEN_AUDIT_QUEUE_TIMEOUT_MS, &v, "1000")?);
        }
        if let Some(v) = get(FASTEN_AUDIT_BATCH_SIZE) {
            c.audit_batch_size = parse_number(FASTEN_AUDIT_BATCH_SIZE, &v, "2048")?;
        }
        if let Some(v) = get(FASTEN_AUDIT_BATCH_BYTES) {
            c.audit_batch_bytes = parse_number(FASTEN_AUDIT_BATCH_BYTES, &v, "8388608")?;
        }
        if let Some(v) = get(FASTEN_AUDIT_STORE_FAILURE_STRATEGY) {
            c.audit_store_failure_strategy = v.trim().parse()?;
        }
        if let Some(v) = get(FASTEN_AUDIT_MAX_RETRIES) {
            c.audit_max_retries = parse_number(FASTEN_AUDIT_MAX_RETRIES, &v, "5")?;
        }
        c.signing_key = get(FASTEN_SIGNING_KEY).map(|v| PathBuf::from(v.trim()));
        if let Some(v) = get(FASTEN_CHECKPOINT_EVERY) {
            c.checkpoint_every = parse_number(FASTEN_CHECKPOINT_EVERY, &v, "1000")?;
        }
        if let Some(v) = get(FASTEN_CHECKPOINT_INTERVAL) {
            c.checkpoint_interval = parse_duration(FASTEN_CHECKPOINT_INTERVAL, v.trim())?;
        }
        c.checkpoint_dir = get(FASTEN_CHECKPOINT_DIR).map(|v| PathBuf::from(v.trim()));
        c.checkpoint_witness_url = get(FASTEN_CHECKPOINT_WITNESS_URL).map(|v| v.trim().to_owned());
        c.ship_to = get(crate::env::FASTEN_SHIP_TO).map(|v| v.trim().to_owned());
        c.ship_token = get(crate::env::FASTEN_SHIP_TOKEN).map(|v| v.trim().to_owned());
        if let Some(v) = get(crate::env::FASTEN_SHIP_INTERVAL) {
            c.ship_interval = parse_duration(crate::env::FASTEN_SHIP_INTERVAL, v.trim())?;
        }
        if let Some(v) = get(crate::env::FASTEN_SHIP_BATCH_SIZE) {
            c.ship_batch_size = parse_number(crate::env::FASTEN_SHIP_BATCH_SIZE, &v, "1000")?;
        }
        if let Some(v) = get(FASTEN_SHIP_STREAMS) {
            c.ship_streams = v.trim().parse()?;
        }
        if let Some(v) = get(FASTEN_SYS_RING_SIZE) {
            c.sys_ring_size = parse_number(FASTEN_SYS_RING_SIZE, &v, "10000")?;
        }
        if let Some(v) = get(FASTEN_API_RING_SIZE) {
            c.api_ring_size = parse_number(FASTEN_API_RING_SIZE, &v, "10000")?;
        }
        if let Some(v) = get(FASTEN_STDOUT) {
            c.stdout = v.trim().parse()?;
        }
        if let Some(v) = get(FASTEN_SYS_DSN) {
            c.sys_dsn = Some(Dsn::parse_for(FASTEN_SYS_DSN, v.trim(), "sys_log")?);
        }
        if let Some(v) = get(FASTEN_API_DSN) {
            c.api_dsn = Some(Dsn::parse_for(FASTEN_API_DSN, v.trim(), "api_log")?);
        }
        if let Some(v) = get(FASTEN_STREAM_QUEUE_CAPACITY) {
            c.stream_queue_capacity = parse_number(FASTEN_STREAM_QUEUE_CAPACITY, &v, "8192")?;
        }
        if let Some(v) = get(FASTEN_SYS_LEVEL) {
            c.sys_level = parse_level(v.trim())?;
        }
        if let Some(v) = get(FASTEN_API_SKIP_PATHS) {
            c.api_skip_paths = split_list(&v).map(str::to_owned).collect();
        }
        c.otlp_endpoint = get(FASTEN_OTLP_ENDPOINT).map(|v| v.trim().to_owned());
        if let Some(v) = get(FASTEN_OTLP_HEADERS) {
            c.otlp_headers = Headers(parse_headers(&v)?);
        }
        if let Some(v) = get(FASTEN_OTLP_QUEUE_CAPACITY) {
            c.otlp_queue_capacity = parse_number(FASTEN_OTLP_QUEUE_CAPACITY, &v, "8192")?;
        }
        c.retention = Retention::from_vars(&get)?;
        if let Some(v) = get(FASTEN_REQUEST_ID) {
            // Outside input like a header: a hostile value is never trusted,
            // and does not stop the service either.
            match RequestId::parse(v.trim()) {
                Ok(id) => c.request_id = Some(id),
                Err(e) => {
                    c.rejected_request_id = Some(e.to_string().replacen(
                        "invalid request_id",
                        &format!("invalid {FASTEN_REQUEST_ID}"),
                        1,
                    ));
                }
            }
        }
        Ok(c)
    }

    /// `FASTEN_SERVICE_ID`: the emitting service.
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.service_id = Some(id.into());
        self
    }

    /// `FASTEN_NODE_ID`: the node; each node has its own hash chain.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// `FASTEN_TENANT_ID`: the default tenant of every row.
    pub fn tenant_id(mut self, id: impl Into<String>) -> Self {
        self.tenant_id = Some(id.into());
        self
    }

    /// `FASTEN_AUDIT_DSN`: where audit rows go.
    pub fn audit_dsn(mut self, dsn: Dsn) -> Self {
        self.audit_dsn = dsn;
        self
    }

    /// `FASTEN_CODES`: code files to load at start-up.
    pub fn codes(mut self, paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.codes = paths.into_iter().map(Into::into).collect();
        self
    }

    /// `FASTEN_EXPECT_CODES`: the codes `fasten gen` wrote for this program
    /// (the generated `ALL` table), added to any already expected.
    ///
    /// Start-up then fails with [`ErrorKind::Codes`](crate::ErrorKind::Codes)
    /// listing every difference between these codes and the loaded registry
    /// in their domains: a code generated but not loaded, loaded but not
    /// generated, or with other metadata. Regenerate after editing the YAML.
    ///
    /// # Examples
    ///
    /// ```
    /// mod codes {
    ///     // fasten gen --lang rust --out examples/codes/sales.rs examples/codes/sales.codes.yaml
    ///     include!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/codes/sales.rs"));
    /// }
    /// let dir = tempfile::tempdir()?;
    /// let dsn = format!("sqlite:///{}", dir.path().join("a.db").display());
    /// let err = fasten::Config::new()
    ///     .service_id("billing")
    ///     .node_id("node-1")
    ///     .audit_dsn(fasten::Dsn::parse("FASTEN_AUDIT_DSN", &dsn)?)
    ///     .expect_codes(codes::ALL) // built from sales.codes.yaml, which is not loaded
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), &fasten::ErrorKind::Codes);
    /// assert!(err.to_string().contains("code ORDER_PLACED: generated but not in the loaded registry"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expect_codes(mut self, codes: &[crate::typed::CodeSpec]) -> Self {
        self.expected_codes
            .extend(codes.iter().map(crate::typed::Expected::from));
        self
    }

    /// `FASTEN_REDACT_KEYS`: extra key names whose values are redacted.
    pub fn redact_keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.redact_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// `FASTEN_MAX_DETAIL_BYTES`: larger details are replaced by a summary.
    pub fn max_detail_bytes(mut self, bytes: usize) -> Self {
        self.max_detail_bytes = bytes;
        self
    }

    /// `FASTEN_AUDIT_QUEUE_CAPACITY`: rows the queue holds before emit blocks.
    pub fn audit_queue_capacity(mut self, rows: usize) -> Self {
        self.audit_queue_capacity = rows;
        self
    }

    /// `FASTEN_AUDIT_QUEUE_TIMEOUT_MS`: how long emit blocks on a full queue
    /// before it returns [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull).
    pub fn audit_queue_timeout(mut self, timeout: Duration) -> Self {
        self.audit_queue_timeout = timeout;
        self
    }

    /// `FASTEN_AUDIT_BATCH_SIZE`: most rows sealed in one transaction.
    pub fn audit_batch_size(mut self, rows: usize) -> Self {
        self.audit_batch_size = rows;
        self
    }

    /// `FASTEN_AUDIT_BATCH_BYTES`: most bytes of rows (text fields and
    /// canonical detail) sealed in one transaction, besides
    /// [`audit_batch_size`](Self::audit_batch_size) rows. A row larger than
    /// this goes alone in its batch.
    pub fn audit_batch_bytes(mut self, bytes: usize) -> Self {
        self.audit_batch_bytes = bytes;
        self
    }

    /// `FASTEN_AUDIT_STORE_FAILURE_STRATEGY`: what `emit` promises.
    pub fn audit_store_failure_strategy(mut self, strategy: FailureStrategy) -> Self {
        self.audit_store_failure_strategy = strategy;
        self
    }

    /// `FASTEN_AUDIT_MAX_RETRIES`: store attempts in `raise` mode.
    pub fn audit_max_retries(mut self, attempts: u32) -> Self {
        self.audit_max_retries = attempts;
        self
    }

    /// `FASTEN_SIGNING_KEY`: sign checkpoints with this `fasten keygen` key file.
    pub fn signing_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.signing_key = Some(path.into());
        self
    }

    /// `FASTEN_CHECKPOINT_EVERY`: sign after this many new rows.
    pub fn checkpoint_every(mut self, rows: u64) -> Self {
        self.checkpoint_every = rows;
        self
    }

    /// `FASTEN_CHECKPOINT_INTERVAL`: sign after this long with new rows.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// `FASTEN_CHECKPOINT_DIR`: also publish each checkpoint as a file here.
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    /// `FASTEN_CHECKPOINT_WITNESS_URL`: also POST each checkpoint to this
    /// `http://` or `https://` witness.
    pub fn checkpoint_witness_url(mut self, url: impl Into<String>) -> Self {
        self.checkpoint_witness_url = Some(url.into());
        self
    }

    /// `FASTEN_SHIP_TO`: ship this node's rows to a central store
    /// (`postgres://…`, or an ingest URL `https://host/api/v1/logs`) from a
    /// background thread. See [`crate::ship`].
    pub fn ship_to(mut self, to: impl Into<String>) -> Self {
        self.ship_to = Some(to.into());
        self
    }

    /// `FASTEN_SHIP_TOKEN`: the bearer token for an ingest URL.
    pub fn ship_token(mut self, token: impl Into<String>) -> Self {
        self.ship_token = Some(token.into());
        self
    }

    /// `FASTEN_SHIP_INTERVAL`: how often the shipper looks for new rows.
    pub fn ship_interval(mut self, interval: Duration) -> Self {
        self.ship_interval = interval;
        self
    }

    /// `FASTEN_SHIP_BATCH_SIZE`: most rows per shipped batch.
    pub fn ship_batch_size(mut self, rows: usize) -> Self {
        self.ship_batch_size = rows;
        self
    }

    /// `FASTEN_SHIP_STREAMS`: also ship the sys and/or api rows of this
    /// node's stream tables ([`sys_dsn`](Self::sys_dsn),
    /// [`api_dsn`](Self::api_dsn)) to the central database's `sys_log` and
    /// `api_log` tables. Needs a `postgres://` [`ship_to`](Self::ship_to).
    pub fn ship_streams(mut self, streams: ShipStreams) -> Self {
        self.ship_streams = streams;
        self
    }

    /// `FASTEN_SYS_RING_SIZE`: sys rows kept in memory (0: none).
    pub fn sys_ring_size(mut self, rows: usize) -> Self {
        self.sys_ring_size = rows;
        self
    }

    /// `FASTEN_API_RING_SIZE`: api rows kept in memory (0: none).
    pub fn api_ring_size(mut self, rows: usize) -> Self {
        self.api_ring_size = rows;
        self
    }

    /// `FASTEN_STDOUT`: which streams go to stdout as JSON lines.
    pub fn stdout(mut self, streams: Stdout) -> Self {
        self.stdout = streams;
        self
    }

    /// `FASTEN_OTLP_ENDPOINT`: export the three streams as OpenTelemetry
    /// log records over OTLP/HTTP (protobuf) to this collector, e.g.
    /// `http://localhost:4318` (records go to `/v1/logs` beneath it; a URL
    /// already ending in `/v1/logs` is used as it is). Needs the `otlp`
    /// feature.
    pub fn otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(url.into());
        self
    }

    /// `FASTEN_OTLP_HEADERS`: headers sent with every export request
    /// (`key=value,key2=value2` in the variable), such as an API key.
    pub fn otlp_headers(
        mut self,
        headers: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        self.otlp_headers = Headers(
            headers
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// `FASTEN_OTLP_QUEUE_CAPACITY`: rows waiting for the exporter before
    /// copies are dropped (counted in
    /// [`Fasten::otlp_stats`](crate::Fasten::otlp_stats)).
    pub fn otlp_queue_capacity(mut self, rows: usize) -> Self {
        self.otlp_queue_capacity = rows;
        self
    }

    /// `FASTEN_SYS_DSN`: also store sys rows (parse it with
    /// [`Dsn::parse_for`] and the default table `sys_log`).
    pub fn sys_dsn(mut self, dsn: Dsn) -> Self {
        self.sys_dsn = Some(dsn);
        self
    }

    /// `FASTEN_API_DSN`: also store api rows (default table `api_log`).
    pub fn api_dsn(mut self, dsn: Dsn) -> Self {
        self.api_dsn = Some(dsn);
        self
    }

    /// `FASTEN_STREAM_QUEUE_CAPACITY`: sys or api rows waiting for their
    /// writer before new ones are shed.
    pub fn stream_queue_capacity(mut self, rows: usize) -> Self {
        self.stream_queue_capacity = rows;
        self
    }

    /// `FASTEN_SYS_LEVEL`: least severe level the sys stream records.
    pub fn sys_level(mut self, level: tracing::Level) -> Self {
        self.sys_level = level;
        self
    }

    /// `FASTEN_API_SKIP_PATHS`: paths that get no api row; a trailing `*`
    /// matches a prefix.
    pub fn api_skip_paths(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.api_skip_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// `FASTEN_REQUEST_ID`: the process's default ambient request id.
    ///
    /// At [`init`](Self::init) or [`build`](Self::build) it becomes the id
    /// [`context::current`](crate::context::current) returns where no scope
    /// or span sets one, for the whole process (the first pipeline to start
    /// with one sets it; later ones keep it). `fasten run -- COMMAND` exports
    /// the variable, so a script's steps and the services they start share
    /// one id. From the environment, a value that fails [`RequestId::parse`]
    /// is ignored and reported as a `WARN` sys row (target `fasten::context`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use fasten::{Config, RequestId};
    /// let _fasten = Config::from_env()?.request_id(RequestId::parse("nightly-2026-01-31")?).init()?;
    /// # Ok::<(), fasten::Error>(())
    /// ```
    pub fn request_id(mut self, id: RequestId) -> Self {
        self.request_id = Some(id);
        self.rejected_request_id = None;
        self
    }

    /// The code registry to use instead of the default one.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Checks the settings that have rules beyond their type.
    pub(crate) fn validate(&self) -> Result<(String, String)> {
        let service = required(FASTEN_SERVICE_ID, self.service_id.as_deref(), "billing-api")?;
        let node = required(FASTEN_NODE_ID, self.node_id.as_deref(), "node-1")?;
        check_node_id(&node).map_err(|rule| {
            Error::config(
                FASTEN_NODE_ID,
                format!("invalid {FASTEN_NODE_ID} {node:?}: {rule}, e.g. node-1"),
            )
        })?;
        if let Some(t) = &self.tenant_id {
            check_name(FASTEN_TENANT_ID, t, "tenant-x")?;
        }
        for (var, value, example) in [
            (
                FASTEN_AUDIT_QUEUE_CAPACITY,
                self.audit_queue_capacity,
                "16384",
            ),
            (FASTEN_AUDIT_BATCH_SIZE, self.audit_batch_size, "2048"),
            (FASTEN_AUDIT_BATCH_BYTES, self.audit_batch_bytes, "8388608"),
            (FASTEN_MAX_DETAIL_BYTES, self.max_detail_bytes, "65536"),
            (
                FASTEN_STREAM_QUEUE_CAPACITY,
                self.stream_queue_capacity,
                "8192",
            ),
        ] {
            if value == 0 {
                return Err(Error::config(
                    var,
                    format!("invalid {var} 0: must be at least 1, e.g. {example}"),
                ));
            }
        }
        // Queues and rings are allocated up front: an absurd size would
        // abort the process on allocation instead of failing here.
        for (var, value, max) in [
            (
                FASTEN_AUDIT_QUEUE_CAPACITY,
                self.audit_queue_capacity,
                MAX_QUEUE_CAPACITY,
            ),
            (
                FASTEN_STREAM_QUEUE_CAPACITY,
                self.stream_queue_capacity,
                MAX_QUEUE_CAPACITY,
            ),
            (
                FASTEN_AUDIT_BATCH_SIZE,
                self.audit_batch_size,
                MAX_QUEUE_CAPACITY,
            ),
            (FASTEN_SYS_RING_SIZE, self.sys_ring_size, MAX_RING_SIZE),
            (FASTEN_API_RING_SIZE, self.api_ring_size, MAX_RING_SIZE),
        ] {
            if value > max {
                return Err(Error::config(
                    var,
                    format!("invalid {var} {value}: must be at most {max}"),
                ));
            }
        }
        if self.checkpoint_witness_url.is_some() && !cfg!(feature = "witness") {
            return Err(Error::config(
                FASTEN_CHECKPOINT_WITNESS_URL,
                format!(
                    "{FASTEN_CHECKPOINT_WITNESS_URL} is set, but this build of fasten has no witness client: enable the crate feature `witness`"
                ),
            ));
        }
        if let Some(url) = &self.checkpoint_witness_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::config(
                FASTEN_CHECKPOINT_WITNESS_URL,
                format!(
                    "invalid {FASTEN_CHECKPOINT_WITNESS_URL} {url:?}: expected an http:// or https:// URL, e.g. https://witness.example/add-checkpoint"
                ),
            ));
        }
        // Shipping a stream needs somewhere to ship to, and a table to ship
        // from: rows kept only in the ring and on stdout cannot be resumed.
        if self.ship_streams != ShipStreams::NONE && self.ship_to.is_none() {
            return Err(Error::config(
                FASTEN_SHIP_STREAMS,
                format!(
                    "{FASTEN_SHIP_STREAMS} is set but {FASTEN_SHIP_TO} is not: nowhere to ship to"
                ),
            ));
        }
        for (wanted, dsn, stream, var) in [
            (self.ship_streams.sys, &self.sys_dsn, "sys", FASTEN_SYS_DSN),
            (self.ship_streams.api, &self.api_dsn, "api", FASTEN_API_DSN),
        ] {
            if wanted && dsn.is_none() {
                return Err(Error::config(
                    FASTEN_SHIP_STREAMS,
                    format!(
                        "{FASTEN_SHIP_STREAMS} names {stream} but {var} is not set: {stream} rows ship from the table it names"
                    ),
                ));
            }
        }
        if self.ship_to.is_some() && self.ship_interval.is_zero() {
            return Err(Error::config(
                crate::env::FASTEN_SHIP_INTERVAL,
                format!(
                    "invalid {} 0: must be more than zero, e.g. 500ms",
                    crate::env::FASTEN_SHIP_INTERVAL
                ),
            ));
        }
        if self.otlp_endpoint.is_some() && !cfg!(feature = "otlp") {
            return Err(Error::config(
                FASTEN_OTLP_ENDPOINT,
                format!(
                    "{FASTEN_OTLP_ENDPOINT} is set, but this build of fasten has no OTLP exporter: enable the crate feature `otlp`"
                ),
            ));
        }
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::config(
                FASTEN_OTLP_ENDPOINT,
                format!(
                    "invalid {FASTEN_OTLP_ENDPOINT} {url:?}: expected an http:// or https:// URL, e.g. http://localhost:4318"
                ),
            ));
        }
        if self.otlp_queue_capacity == 0 || self.otlp_queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(Error::config(
                FASTEN_OTLP_QUEUE_CAPACITY,
                format!(
                    "invalid {FASTEN_OTLP_QUEUE_CAPACITY} {}: expected 1 to {MAX_QUEUE_CAPACITY}, e.g. 8192",
                    self.otlp_queue_capacity
                ),
            ));
        }
        if self.checkpoint_every == 0 {
            return Err(Error::config(
                FASTEN_CHECKPOINT_EVERY,
                format!("invalid {FASTEN_CHECKPOINT_EVERY} 0: must be at least 1, e.g. 1000"),
            ));
        }
        self.retention.validate()?;
        if self.audit_max_retries == 0 {
            return Err(Error::config(
                FASTEN_AUDIT_MAX_RETRIES,
                format!("invalid {FASTEN_AUDIT_MAX_RETRIES} 0: must be at least 1, e.g. 5"),
            ));
        }
        Ok((service, node))
    }
}

fn parse_level(v: &str) -> Result<tracing::Level> {
    v.parse().map_err(|_| {
        Error::config(
            FASTEN_SYS_LEVEL,
            format!(
                "invalid {FASTEN_SYS_LEVEL} {v:?}: expected trace, debug, info, warn or error, e.g. info"
            ),
        )
    })
}

/// Export request headers; `Debug` shows their names only, since values
/// are often API keys.
#[derive(Clone, Default)]
pub(crate) struct Headers(pub(crate) Vec<(String, String)>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=…")))
            .finish()
    }
}

/// `key=value,key2=value2` (OpenTelemetry's `OTEL_EXPORTER_OTLP_HEADERS`
/// form; values are taken as written, without percent-decoding).
fn parse_headers(v: &str) -> Result<Vec<(String, String)>> {
    split_list(v)
        .map(|pair| {
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, val) = (k.trim(), val.trim());
            let token = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let printable = !val.is_empty() && val.bytes().all(|b| (0x20..0x7f).contains(&b));
            if token && printable {
                Ok((k.to_owned(), val.to_owned()))
            } else {
                Err(Error::config(
                    FASTEN_OTLP_HEADERS,
                    format!(
                        "invalid {FASTEN_OTLP_HEADERS} entry {k:?}: expected comma-separated name=value pairs, e.g. api-key=secret123,x-team=ops"
                    ),
                ))
            }
        })
        .collect()
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_number<T: std::str::FromStr>(var: &'static str, v: &str, example: &str) -> Result<T> {
    v.trim().parse().map_err(|_| {
        Error::config(
            var,
            format!("invalid {var} {v:?}: expected a whole number, e.g. {example}"),
        )
    })
}

/// `500ms`, `1s`, `5m`, `1h`: a whole number and a unit, nothing else.
fn parse_duration(var: &'static str, v: &str) -> Result<Duration> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad_duration(var, v))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad_duration(var, v)),
    };
    if d.is_zero() {
        return Err(bad_duration(var, v));
    }
    Ok(d)
}

fn bad_duration(var: &'static str, v: &str) -> Error {
    Error::config(
        var,
        format!(
            "invalid {var} {v:?}: expected a positive whole number and a unit (ms, s, m, h), e.g. 1s"
        ),
    )
}

fn required(var: &'static str, value: Option<&str>, example: &str) -> Result<String> {
    let value = value.ok_or_else(|| {
        Error::config(
            var,
            format!("missing {var}: set it to a short name without spaces, e.g. {var}={example}"),
        )
    })?;
    check_name(var, value, example)?;
    Ok(value.to_owned())
}

/// Service, node and tenant ids key chains and filters: keep them printable.
fn check_name(var: &'static str, value: &str, example: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            var,
            format!(
                "invalid {var} {value:?}: expected 1-128 characters of [A-Za-z0-9._:-], e.g. {example}"
            ),
        ))
    }
}

/// The largest queue (`FASTEN_AUDIT_QUEUE_CAPACITY`,
/// `FASTEN_STREAM_QUEUE_CAPACITY`) or batch accepted: queues are allocated
/// whole at start.
pub(crate) const MAX_QUEUE_CAPACITY: usize = 1 << 20;

/// The largest ring (`FASTEN_SYS_RING_SIZE`, `FASTEN_API_RING_SIZE`)
/// accepted, in rows; rings are bounded in bytes too
/// ([`crate::record::MAX_RING_BYTES`]).
pub(crate) const MAX_RING_SIZE: usize = 1_000_000;

/// The one rule for node ids, wherever one comes from (configuration, a
/// stored row, a checkpoint to publish): 1-128 characters of
/// `[A-Za-z0-9._:-]`, not starting with a dot. A node id becomes a
/// directory name when checkpoints are published, so it can never be `.`,
/// `..`, hidden, absolute or hold a path separator.
///
/// # Errors
///
/// The rule the id breaks, for the caller to name the field.
pub(crate) fn check_node_id(id: &str) -> std::result::Result<(), &'static str> {
    if id.is_empty() || id.len() > 128 {
        return Err("a node id must be 1-128 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err("a node id may hold only [A-Za-z0-9._:-]");
    }
    if id.starts_with('.') {
        return Err("a node id must not start with a dot");
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    /// The witness URL needs the `witness` feature: without it the setting
    /// is refused at build time instead of being silently ignored.
    #[test]
    fn a_witness_url_needs_the_witness_feature() {
        let c = Config::new()
            .service_id("s")
            .node_id("n")
            .checkpoint_witness_url("https://witness.example/add");
        let checked = c.validate();
        if cfg!(feature = "witness") {
            assert!(checked.is_ok(), "{checked:?}");
        } else {
            let err = checked.unwrap_err().to_string();
            assert!(err.contains("enable the crate feature `witness`"), "{err}");
        }
    }

    use super::*;
    use std::collections::HashMap;

    #[test]
    fn absurd_queue_and_ring_sizes_are_refused_at_config_time() {
        for var in [
            "FASTEN_AUDIT_QUEUE_CAPACITY",
            "FASTEN_STREAM_QUEUE_CAPACITY",
            "FASTEN_AUDIT_BATCH_SIZE",
            "FASTEN_SYS_RING_SIZE",
            "FASTEN_API_RING_SIZE",
        ] {
            let err = from(&[
                ("FASTEN_SERVICE_ID", "s"),
                ("FASTEN_NODE_ID", "n"),
                (var, "1000000000000"),
            ])
            .and_then(|c| c.validate())
            .unwrap_err();
            assert!(
                matches!(err.kind(), crate::ErrorKind::Config { var: v } if *v == var),
                "{var}: {err}"
            );
            assert!(err.to_string().contains("at most"), "{err}");
        }
    }

    #[test]
    fn node_ids_that_could_name_another_path_are_refused() {
        for bad in [
            "", ".", "..", "../n1", "z/../n1", "/etc", "a/b", "a\\b", ".hidden", "n 1", "n\u{0}",
        ] {
            assert!(check_node_id(bad).is_err(), "{bad:?}");
            let err = from(&[("FASTEN_SERVICE_ID", "s"), ("FASTEN_NODE_ID", bad)])
                .and_then(|c| c.validate())
                .unwrap_err();
            assert_eq!(
                err.kind(),
                &crate::ErrorKind::Config {
                    var: FASTEN_NODE_ID
                },
                "{bad:?}"
            );
        }
        for good in ["node-1", "n.1", "eu-west:3", "a..b", &"n".repeat(128)] {
            assert!(check_node_id(good).is_ok(), "{good:?}");
        }
    }

    fn from(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn reads_every_variable() {
        let c = from(&[
            ("FASTEN_SERVICE_ID", "svc"),
            ("FASTEN_NODE_ID", "n1"),
            ("FASTEN_TENANT_ID", "t1"),
            ("FASTEN_AUDIT_DSN", "sqlite:///x.db?table=t"),
            ("FASTEN_CODES", "a.codes.yaml, b.codes.yaml,"),
            ("FASTEN_REDACT_KEYS", "ssn,dob"),
            ("FASTEN_MAX_DETAIL_BYTES", "100"),
            ("FASTEN_AUDIT_QUEUE_CAPACITY", "10"),
            ("FASTEN_AUDIT_QUEUE_TIMEOUT_MS", "5"),
            ("FASTEN_AUDIT_BATCH_SIZE", "7"),
            ("FASTEN_AUDIT_BATCH_BYTES", "4096"),
            ("FASTEN_AUDIT_STORE_FAILURE_STRATEGY", "raise"),
            ("FASTEN_AUDIT_MAX_RETRIES", "2"),
        ])
        .unwrap();
        assert_eq!(c.validate().unwrap(), ("svc".to_owned(), "n1".to_owned()));
        assert_eq!(
            c.codes,
            vec![PathBuf::from("a.codes.yaml"), PathBuf::from("b.codes.yaml")]
        );
        assert_eq!(c.redact_keys, vec!["ssn", "dob"]);
        assert_eq!(c.audit_dsn.table(), "t");
        assert_eq!(c.max_detail_bytes, 100);
        assert_eq!(c.audit_queue_capacity, 10);
        assert_eq!(c.audit_queue_timeout, Duration::from_millis(5));
        assert_eq!(c.audit_batch_size, 7);
        assert_eq!(c.audit_batch_bytes, 4096);
        assert_eq!(c.audit_store_failure_strategy, FailureStrategy::Raise);
        assert_eq!(c.audit_max_retries, 2);
    }

    #[test]
    fn reads_the_stream_variables() {
        let c = from(&[
            ("FASTEN_SYS_RING_SIZE", "5"),
            ("FASTEN_API_RING_SIZE", "0"),
            ("FASTEN_STDOUT", "api"),
            ("FASTEN_SYS_DSN", "sqlite:///s.db"),
            ("FASTEN_API_DSN", "sqlite:///s.db?table=http_rows"),
            ("FASTEN_STREAM_QUEUE_CAPACITY", "64"),
            ("FASTEN_SYS_LEVEL", "WARN"),
            ("FASTEN_API_SKIP_PATHS", "/health, /metrics"),
            ("FASTEN_REQUEST_ID", " script-42 "),
        ])
        .unwrap();
        assert_eq!(c.request_id.unwrap().as_str(), "script-42");
        assert_eq!((c.sys_ring_size, c.api_ring_size), (5, 0));
        assert_eq!(
            c.stdout,
            Stdout {
                sys: false,
                api: true,
                audit: false,
            }
        );
        assert_eq!(c.sys_dsn.unwrap().table(), "sys_log");
        assert_eq!(c.api_dsn.unwrap().table(), "http_rows");
        assert_eq!(c.stream_queue_capacity, 64);
        assert_eq!(c.sys_level, tracing::Level::WARN);
        assert_eq!(c.api_skip_paths, vec!["/health", "/metrics"]);
        assert_eq!("none".parse::<Stdout>().unwrap(), Stdout::NONE);
        assert_eq!("all".parse::<Stdout>().unwrap(), Stdout::ALL);
        assert_eq!(from(&[]).unwrap().stdout, Stdout::DEFAULT);
        assert_eq!(
            "audit, api".parse::<Stdout>().unwrap(),
            Stdout {
                sys: false,
                api: true,
                audit: true,
            }
        );
    }

    #[test]
    fn issue_8_hostile_fasten_request_id_is_ignored_not_fatal() {
        for bad in ["a b", "x\u{7}y", &"x".repeat(129)] {
            let c = from(&[("FASTEN_REQUEST_ID", bad)]).unwrap();
            assert_eq!(c.request_id, None);
            assert!(c.rejected_request_id.is_some());
        }
        let c = from(&[("FASTEN_REQUEST_ID", "evil\nid")]).unwrap();
        insta::assert_snapshot!(c.rejected_request_id.unwrap(), @r"invalid FASTEN_REQUEST_ID: character '\n' is not one of [A-Za-z0-9._:-], e.g. 4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn issue_20_otlp_headers_parse_and_never_show_their_values() {
        let c = from(&[
            ("FASTEN_OTLP_ENDPOINT", " http://collector:4318 "),
            ("FASTEN_OTLP_HEADERS", "api-key=sk-123, x-team = ops"),
            ("FASTEN_OTLP_QUEUE_CAPACITY", "100"),
        ])
        .unwrap();
        assert_eq!(c.otlp_endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(
            c.otlp_headers.0,
            vec![
                ("api-key".to_owned(), "sk-123".to_owned()),
                ("x-team".to_owned(), "ops".to_owned())
            ]
        );
        assert_eq!(c.otlp_queue_capacity, 100);
        let shown = format!("{c:?}");
        assert!(!shown.contains("sk-123"), "{shown}");
        assert!(shown.contains("api-key=…"), "{shown}");
    }

    #[test]
    fn errors_name_the_variable_and_show_a_good_value() {
        let err = from(&[]).unwrap().validate().unwrap_err();
        assert_eq!(
            err.kind(),
            &crate::ErrorKind::Config {
                var: FASTEN_SERVICE_ID
            }
        );
        insta::assert_snapshot!(err, @"missing FASTEN_SERVICE_ID: set it to a short name without spaces, e.g. FASTEN_SERVICE_ID=billing-api");
        let err = from(&[("FASTEN_SERVICE_ID", "s")])
            .unwrap()
            .validate()
            .unwrap_err();
        insta::assert_snapshot!(err, @"missing FASTEN_NODE_ID: set it to a short name without spaces, e.g. FASTEN_NODE_ID=node-1");
        let err = from(&[("FASTEN_SERVICE_ID", "s"), ("FASTEN_NODE_ID", "node 1")])
            .unwrap()
            .validate()
            .unwrap_err();
        insta::assert_snapshot!(err, @r#"invalid FASTEN_NODE_ID "node 1": expected 1-128 characters of [A-Za-z0-9._:-], e.g. node-1"#);
        insta::assert_snapshot!(from(&[("FASTEN_AUDIT_QUEUE_CAPACITY", "lots")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_QUEUE_CAPACITY "lots": expected a whole number, e.g. 16384"#);
        insta::assert_snapshot!(from(&[("FASTEN_AUDIT_STORE_FAILURE_STRATEGY", "drop")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_STORE_FAILURE_STRATEGY "drop": expected retry or raise"#);
        insta::assert_snapshot!(from(&[("FASTEN_STDOUT", "sys,logs")]).unwrap_err(), @r#"invalid FASTEN_STDOUT "sys,logs": expected all, none, or a comma-separated list of sys, api and audit, e.g. sys,api"#);
        insta::assert_snapshot!(from(&[("FASTEN_SYS_LEVEL", "loud")]).unwrap_err(), @r#"invalid FASTEN_SYS_LEVEL "loud": expected trace, debug, info, warn or error, e.g. info"#);
        insta::assert_snapshot!(from(&[("FASTEN_SHIP_STREAMS", "audit,foo")]).unwrap_err(), @r#"invalid FASTEN_SHIP_STREAMS "audit,foo": expected a comma-separated list of sys and api, e.g. sys,api (audit rows always ship with FASTEN_SHIP_TO)"#);
        assert_eq!(
            from(&[("FASTEN_SHIP_STREAMS", " api , sys")])
                .unwrap()
                .ship_streams,
            ShipStreams {
                sys: true,
                api: true
            }
        );
        let shipping = |pairs: &[(&str, &str)]| {
            let base = [("FASTEN_SERVICE_ID", "s"), ("FASTEN_NODE_ID", "n")];
            from(&[&base[..], pairs].concat())
                .unwrap()
                .validate()
                .unwrap_err()
        };
        insta::assert_snapshot!(shipping(&[("FASTEN_SHIP_STREAMS", "sys")]), @"FASTEN_SHIP_STREAMS is set but FASTEN_SHIP_TO is not: nowhere to ship to");
        let err = shipping(&[
            ("FASTEN_SHIP_STREAMS", "sys,api"),
            ("FASTEN_SHIP_TO", "postgres://fasten@central/fleet"),
            ("FASTEN_SYS_DSN", "sqlite:///edge.db"),
        ]);
        assert_eq!(
            err.kind(),
            &crate::ErrorKind::Config {
                var: FASTEN_SHIP_STREAMS
            }
        );
        insta::assert_snapshot!(err, @"FASTEN_SHIP_STREAMS names api but FASTEN_API_DSN is not set: api rows ship from the table it names");
        assert_eq!(
            from(&[("FASTEN_SYS_DSN", "mysql://x")]).unwrap_err().kind(),
            &crate::ErrorKind::Config {
                var: FASTEN_SYS_DSN
            }
        );
        assert_eq!(
            from(&[("FASTEN_STDOUT", "none,sys")]).unwrap_err().kind(),
            &crate::ErrorKind::Config { var: FASTEN_STDOUT }
        );
        for bad in ["1", "s", "1.5s", "0s", "1 s", "-1s", "1d"] {
            let err = from(&[("FASTEN_CHECKPOINT_INTERVAL", bad)]).unwrap_err();
            assert_eq!(
                err.kind(),
                &crate::ErrorKind::Config {
                    var: FASTEN_CHECKPOINT_INTERVAL
                },
                "{bad}"
            );
        }
        insta::assert_snapshot!(from(&[("FASTEN_CHECKPOINT_INTERVAL", "1d")]).unwrap_err(), @r#"invalid FASTEN_CHECKPOINT_INTERVAL "1d": expected a positive whole number and a unit (ms, s, m, h), e.g. 1s"#);
        assert_eq!(
            from(&[("FASTEN_CHECKPOINT_INTERVAL", "250ms")])
                .unwrap()
                .checkpoint_interval,
            Duration::from_millis(250)
        );
        assert_eq!(
            from(&[("FASTEN_CHECKPOINT_INTERVAL", "2m")])
                .unwrap()
                .checkpoint_interval,
            Duration::from_secs(120)
        );
        let err = from(&[
            ("FASTEN_SERVICE_ID", "s"),
            ("FASTEN_NODE_ID", "n"),
            ("FASTEN_AUDIT_BATCH_SIZE", "0"),
        ])
        .unwrap()
        .validate()
        .unwrap_err();
        insta::assert_snapshot!(err, @"invalid FASTEN_AUDIT_BATCH_SIZE 0: must be at least 1, e.g. 2048");
        assert_eq!(
            from(&[("FASTEN_AUDIT_DSN", "nope")]).unwrap_err().kind(),
            &crate::ErrorKind::Config {
                var: FASTEN_AUDIT_DSN
            }
        );
    }
}
