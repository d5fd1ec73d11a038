//! Shared helpers: a pipeline over a temp file, and child processes that
//! re-run this test binary in a role.

#[cfg(feature = "mqtt")]
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fasten::code::{Meta, Registry};
use fasten::{Config, Dsn, Fasten};

/// How long [`wait_until`] waits: only a guard against a hang, generous
/// for a loaded machine, never a timing assertion.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(60);

/// Waits until `cond` holds, looking again every few milliseconds (the
/// look is the synchronisation, not the pause); fails naming `what` if it
/// still does not hold after [`HANG_GUARD`].
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn registry() -> Registry {
    let r = Registry::new();
    r.register(
        "iam",
        [
            ("USER_CREATED", Meta::new("user", "create")),
            ("USER_UPDATED", Meta::new("user", "update")),
            ("PROFILE_VIEWED", Meta::new("user", "read").pii(["user_id"])),
        ],
    )
    .expect("valid codes");
    r
}

pub(crate) fn dsn(path: &Path) -> Dsn {
    Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display())).expect("valid dsn")
}

pub(crate) fn config(path: &Path, node: &str) -> Config {
    Config::new()
        .service_id("it")
        .node_id(node)
        .audit_dsn(dsn(path))
        .registry(registry())
}

#[cfg(any(feature = "tracing", feature = "postgres"))]
/// The sys and api tables (`sys_log`, `api_log`) beside the audit rows
/// in the file at `path`.
pub(crate) fn stream_dsns(path: &Path) -> (Dsn, Dsn) {
    let file = format!("sqlite:///{}", path.display());
    (
        Dsn::parse_for("FASTEN_SYS_DSN", &file, "sys_log").expect("valid dsn"),
        Dsn::parse_for("FASTEN_API_DSN", &file, "api_log").expect("valid dsn"),
    )
}

#[cfg(any(feature = "tracing", feature = "postgres"))]
/// [`config`] with the sys and api rows stored in [`stream_dsns`], and
/// nothing on stdout.
pub(crate) fn streams_config(path: &Path) -> Config {
    let (sys, api) = stream_dsns(path);
    config(path, "node-1")
        .stdout(fasten::Stdout::NONE)
        .sys_dsn(sys)
        .api_dsn(api)
}

pub(crate) fn pipeline(path: &Path) -> Fasten {
    config(path, "node-1").build().expect("pipeline starts")
}

/// Runs the test named `test` of this binary as a child process with `env`:
/// the child's test body checks `FASTEN_IT_ROLE` and acts out its part.
/// Entry points are `#[ignore]`d (so a normal run reports them as ignored,
/// not as tests that passed doing nothing); the child runs its one with
/// `--exact --ignored`.
pub(crate) fn child(test: &str, env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .stdin(Stdio::null())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub(crate) fn role() -> Option<String> {
    std::env::var("FASTEN_IT_ROLE").ok()
}

pub(crate) fn db_path(env: &str) -> PathBuf {
    PathBuf::from(std::env::var(env).expect("parent sets the path"))
}

/// Every stored id, for checking against what was acknowledged.
pub(crate) fn stored_ids(path: &Path) -> std::collections::HashSet<String> {
    let conn = rusqlite::Connection::open(path).expect("open db");
    let mut stmt = conn.prepare("SELECT id FROM audit_log").expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// The golden vectors (the repo's `spec/vectors/form3.json`), read as data.
pub(crate) fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/vectors/form3.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[cfg(feature = "mqtt")]
/// True when the broker answers; under `CI` a missing one panics.
pub(crate) fn broker(name: &str, port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {name} at {addr} is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: {name} at {addr} is unreachable: {e}");
            false
        }
    }
}

#[cfg(feature = "mqtt")]
/// A current-thread runtime for a test body or a child process.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
