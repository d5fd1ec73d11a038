//! Agent calls recorded whatever happens, and summed back: on SQLite and
//! PostgreSQL, through the library and the HTTP reader (tenant-scoped).

use std::time::Duration;

use fasten::http_reader::{self, Auth, Options};
use fasten::summary::SummaryQuery;
use fasten::{ActorKind, Config, Dsn, Fasten, Reader, RequestId, Stdout};
use serde_json::Value;

use super::reader::Served;
use super::support::registry;

const SECS: Duration = Duration::from_secs(30);
const TOKEN: &str = "tok-agent-0123456789ab";

fn config(dsn: Dsn) -> Config {
    Config::new()
        .service_id("agent-it")
        .node_id("node-a")
        .audit_dsn(dsn)
        .registry(registry())
        .stdout(Stdout::NONE)
}

#[derive(Debug)]
struct Failed(String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<fasten::Error> for Failed {
    fn from(e: fasten::Error) -> Self {
        Self(e.to_string())
    }
}

/// Six calls of two agents in two tenants: successes with cost, a failure
/// whose message holds a secret, a denial, a panic, a model call and a
/// handoff.
fn record_calls(fasten: &Fasten) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let req = RequestId::parse("req-agents").unwrap();
    let call = |tool: &str, agent: &str, tenant: &str| {
        fasten::agent::tool_call(tool)
            .actor(agent, ActorKind::Agent)
            .tenant(tenant)
            .request_id(req.clone())
            .via(fasten)
    };
    let hits: Result<u32, Failed> = rt.block_on(call("search_web", "agent-b", "acme").run(
        |usage| async move {
            usage.cost_usd(0.25).tokens(100, 20).model("small-1");
            Ok(3)
        },
    ));
    assert_eq!(hits.unwrap(), 3);
    let failed: Result<(), Failed> = rt.block_on(call("fetch_page", "agent-b", "acme").run(
        |usage| async move {
            usage.cost_usd(0.5);
            Err(Failed(format!("upstream 500 for ghp_{}", "a1B2".repeat(9))))
        },
    ));
    assert!(failed.is_err());
    let denied: Result<(), Failed> = call("delete_repo", "agent-c", "globex").run_sync(|usage| {
        usage.deny(Some("policy: agents may not delete"));
        Err(Failed("refused".to_owned()))
    });
    assert!(denied.is_err());
    let panicked = std::panic::catch_unwind(|| {
        let _: Result<(), Failed> = call("crashy", "agent-c", "globex").run_sync(|usage| {
            usage.cost_usd(1.0);
            panic!("tool blew up")
        });
    });
    assert!(panicked.is_err(), "the panic goes on after it is recorded");
    let model: Result<(), Failed> = fasten::agent::model_call("large-2")
        .actor("agent-b", ActorKind::Agent)
        .tenant("acme")
        .request_id(req.clone())
        .via(fasten)
        .run_sync(|usage| {
            usage.cost_usd(2.0).tokens(1000, 300);
            Ok(())
        });
    model.unwrap();
    let handed: Result<(), Failed> = rt.block_on(
        fasten::agent::handoff("agent-b")
            .actor("agent-a", ActorKind::Agent)
            .tenant("acme")
            .request_id(req)
            .via(fasten)
            .run(|_| async { Ok(()) }),
    );
    handed.unwrap();
    fasten.flush(SECS).unwrap();
}

fn check(fasten: &Fasten) {
    let reader = Reader::from_pipeline(fasten);
    let rows = reader
        .audit(&fasten::AuditQuery::new(100).request_id(&RequestId::parse("req-agents").unwrap()))
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 6);
    let by_tool = |tool: &str| {
        rows.iter()
            .find(|r| r.detail.as_ref().is_some_and(|d| d["tool"] == tool))
            .unwrap()
    };
    let ok = by_tool("search_web");
    assert_eq!(
        (ok.code.as_str(), ok.domain.as_str()),
        ("TOOL_CALLED", "agent")
    );
    assert_eq!(
        (ok.outcome.as_str(), ok.method.as_str()),
        ("success", "agent_tool")
    );
    assert_eq!(ok.actor_kind, "agent");
    let d = ok.detail.as_ref().unwrap();
    assert_eq!(d["cost_usd"], 0.25);
    assert_eq!(d["input_tokens"], 100);
    assert!(d["duration_ms"].is_u64());
    let failed = by_tool("fetch_page");
    assert_eq!(failed.outcome, "failure");
    let error = failed.detail.as_ref().unwrap()["error"].as_str().unwrap();
    // Redacted like any detail: the text held a GitHub token.
    assert_eq!(error, "[REDACTED:github_token]");
    assert_eq!(by_tool("delete_repo").outcome, "denied");
    assert_eq!(
        by_tool("delete_repo").detail.as_ref().unwrap()["error"],
        "policy: agents may not delete"
    );
    let crashed = by_tool("crashy");
    assert_eq!(crashed.outcome, "failure");
    assert_eq!(
        crashed.detail.as_ref().unwrap()["error"],
        "panicked: tool blew up"
    );
    let handoff = rows.iter().find(|r| r.code == "AGENT_HANDOFF").unwrap();
    assert_eq!(
        (handoff.actor.as_str(), handoff.target.as_str()),
        ("agent-a", "agent-b")
    );

    // Cost of tool calls per actor: agent-b 0.25 + 0.5, agent-c 1.0.
    let q = SummaryQuery::from_params(&[
        ("code", "TOOL_CALLED"),
        ("sum", "detail.cost_usd"),
        ("by", "actor"),
        ("since", "1h"),
    ])
    .unwrap();
    let s = reader.summary(&q).unwrap();
    let groups: Vec<(Option<&str>, u64, u64, f64)> = s
        .groups
        .iter()
        .map(|g| (g.key.as_deref(), g.rows, g.summed, g.sum))
        .collect();
    assert_eq!(
        groups,
        [(Some("agent-c"), 2, 1, 1.0), (Some("agent-b"), 2, 2, 0.75)]
    );
    assert_eq!((s.total.rows, s.total.summed, s.total.sum), (4, 3, 1.75));
    assert!(!s.truncated);

    // By a detail field, every code; and a limit that truncates.
    let s = reader
        .summary(
            &SummaryQuery::new()
                .sum("detail.output_tokens")
                .unwrap()
                .by("detail.model")
                .unwrap()
                .limit("1")
                .unwrap(),
        )
        .unwrap();
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].key.as_deref(), Some("large-2"));
    assert_eq!(s.groups[0].sum, 300.0);
    assert!(s.truncated);
    assert_eq!((s.total.rows, s.total.sum), (6, 320.0));

    // Nothing matches: no groups, a zero total.
    let s = reader
        .summary(&SummaryQuery::new().filter("actor", "nobody").unwrap())
        .unwrap();
    assert!(s.groups.is_empty());
    assert_eq!(s.total.rows, 0);
}

fn over_http(fasten: &Fasten) {
    let scoped = Options::new(Auth::bearer_tokens([TOKEN]).unwrap()).tenant_scope(|parts| {
        parts
            .headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let s = Served::start(axum::Router::new().nest(
        "/logs",
        http_reader::router(Reader::from_pipeline(fasten), scoped),
    ));
    let auth = format!("Bearer {TOKEN}");
    let get =
        |path: &str, tenant: &str| s.get(path, &[("authorization", &auth), ("x-tenant", tenant)]);
    let (status, body) = get(
        "/audit/summary?code=TOOL_CALLED&sum=detail.cost_usd&by=actor&since=2020-01-01",
        "acme",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["groups"][0]["key"], "agent-b");
    assert_eq!(body["groups"][0]["sum"], 0.75);
    assert_eq!(body["total"]["rows"], 2);
    // The scope wins over a tenant filter in the query: acme's four rows.
    let (_, body) = get(
        "/audit/summary?sum=detail.cost_usd&tenant_id=globex",
        "acme",
    );
    assert_eq!(body["total"]["rows"], 4, "{body}");
    assert_eq!(body["total"]["sum"], 2.75, "{body}");
    let (_, body) = get("/audit/summary?sum=detail.cost_usd", "globex");
    assert_eq!(body["total"]["sum"], 1.0, "{body}");
    for (query, parameter) in [
        ("sum=cost_usd", "sum"),
        ("sum=detail.cost_usd'--", "sum"),
        ("by=hash", "by"),
        ("limit=0", "limit"),
        ("since=yesterday", "since"),
        ("group=actor", "query"),
        ("by=actor&by=code", "by"),
    ] {
        let (status, body): (u16, Value) = get(&format!("/audit/summary?{query}"), "acme");
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
    }
}

#[test]
fn agent_calls_are_recorded_and_summed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let fasten = config(super::support::dsn(&dir.path().join("a.db")))
        .build()
        .unwrap();
    record_calls(&fasten);
    check(&fasten);
    over_http(&fasten);
    fasten.shutdown(SECS).unwrap();
}

#[cfg(feature = "postgres")]
#[test]
fn agent_calls_are_recorded_and_summed_on_postgres() {
    let Some(schema) = super::postgres::Schema::new() else {
        return;
    };
    let fasten = config(schema.dsn("audit_log")).build().unwrap();
    record_calls(&fasten);
    check(&fasten);
    over_http(&fasten);
    fasten.shutdown(SECS).unwrap();
}

#[test]
fn a_call_whose_row_cannot_be_written_is_not_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let fasten = config(super::support::dsn(&dir.path().join("a.db")))
        .build()
        .unwrap();
    fasten.shutdown(SECS).unwrap();
    let out: Result<u8, Failed> = fasten::agent::tool_call("t")
        .via(&fasten)
        .run_sync(|_| Ok(1));
    let err = out.unwrap_err();
    assert!(
        err.0.contains("shut down") || err.0.contains("closed"),
        "{err}"
    );
}
