//! Shared helpers: a pipeline over a temp file, and whether a broker is up.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use fasten::code::{Meta, Registry};
use fasten::{Config, Dsn};

fn registry() -> Registry {
    let r = Registry::new();
    r.register(
        "iam",
        [
            ("USER_CREATED", Meta::new("user", "create")),
            ("USER_UPDATED", Meta::new("user", "update")),
        ],
    )
    .expect("valid codes");
    r
}

pub(crate) fn config(path: &Path, node: &str) -> Config {
    let dsn = Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", path.display()))
        .expect("valid dsn");
    Config::new()
        .service_id("it")
        .node_id(node)
        .audit_dsn(dsn)
        .registry(registry())
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

/// Whether the broker `name` listens on 127.0.0.1:`port`; under `CI` a
/// missing broker fails the test instead of skipping it.
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
