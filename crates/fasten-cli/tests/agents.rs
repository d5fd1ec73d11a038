//! The library's two-agent example (`crates/fasten/examples/agents.rs`)
//! end to end: agent A hands work to agent B over HTTP, B calls two tools
//! (one fails) and a model; then `fasten correlate` shows the chain under
//! one request id and `fasten report` sums the cost per agent.

// Helpers outside #[test] fns panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::time::Duration;

#[path = "../../fasten/examples/agents.rs"]
#[allow(dead_code, unreachable_pub)]
mod agents;

fn fasten(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fasten"))
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FASTEN_AUDIT_DSN", "sqlite:///agents.db")
        .env("FASTEN_API_DSN", "sqlite:///agents.db")
        .env("FASTEN_SYS_DSN", "sqlite:///agents.db")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn issue_20_two_agents_one_request_id_correlate_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = |var: &'static str, table: &str| {
        let url = format!("sqlite:///{}", dir.path().join("agents.db").display());
        fasten::Dsn::parse_for(var, &url, table).unwrap()
    };
    let pipeline = fasten::Config::new()
        .service_id("agents")
        .node_id("node-1")
        .audit_dsn(db("FASTEN_AUDIT_DSN", "audit_log"))
        .api_dsn(db("FASTEN_API_DSN", "api_log"))
        .sys_dsn(db("FASTEN_SYS_DSN", "sys_log"))
        .stdout(fasten::Stdout::NONE)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(agents::demo(&pipeline)).unwrap();
    pipeline.shutdown(Duration::from_secs(10)).unwrap();
    drop(rt);

    let text = stdout(&fasten(dir.path(), &["correlate", id.as_str()]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().all(|l| l.contains(&format!("req={id}"))),
        "{text}"
    );
    let audit: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("audit "))
        .map(|l| l.split(' ').skip(1).take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        audit,
        [
            "MODEL_CALLED agent-a",
            "TOOL_CALLED agent-b",
            "TOOL_CALLED agent-b",
            "MODEL_CALLED agent-b",
            "AGENT_HANDOFF agent-a",
        ],
        "{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("api ")).count(),
        1,
        "agent B's HTTP request: {text}"
    );
    let failed = lines
        .iter()
        .find(|l| l.contains("tool=fetch_page"))
        .unwrap();
    assert!(
        failed.contains("outcome=failure") && failed.contains("error=\"timed out after 2000 ms\""),
        "{failed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("AGENT_HANDOFF agent-a target=agent-b"))
    );

    let report = stdout(&fasten(
        dir.path(),
        &[
            "report",
            "--code",
            "TOOL_CALLED",
            "--sum",
            "detail.cost_usd",
            "--by",
            "actor",
        ],
    ));
    assert_eq!(
        report,
        "actor    rows  summed  sum(detail.cost_usd)\n\
         agent-b     2       2  0.004\n\
         total       2       2  0.004\n"
    );
    let report = stdout(&fasten(
        dir.path(),
        &[
            "report",
            "--sum",
            "detail.cost_usd",
            "--by",
            "actor",
            "--request-id",
            id.as_str(),
        ],
    ));
    assert_eq!(
        report,
        "actor    rows  summed  sum(detail.cost_usd)\n\
         agent-a     2       1  0.012\n\
         agent-b     3       3  0.008\n\
         total       5       4  0.02\n"
    );
    assert!(stdout(&fasten(dir.path(), &["verify"])).starts_with("ok node-1: 5 rows"));
}
