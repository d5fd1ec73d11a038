//! The `fasten` binary end to end: emit, dump, verify, exit codes.

// Helpers outside #[test] fns panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn fasten(dir: &Path, args: &[&str]) -> Output {
    fasten_with(dir, args, &[])
}

/// Runs the binary with the test's environment, `env` added or overriding.
fn fasten_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fasten"));
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FASTEN_SERVICE_ID", "cli-test")
        .env("FASTEN_NODE_ID", "node-cli")
        .env("FASTEN_AUDIT_DSN", "sqlite:///audit.db")
        .env("FASTEN_CODES", "shop.codes.yaml");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run fasten")
}

/// `fasten keygen`; returns the verifier key it prints.
fn keygen(dir: &Path, name: &str, out: &str) -> String {
    let o = fasten(dir, &["keygen", "--name", name, "--out", out]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.codes.yaml"),
        "domain: shop\ncodes:\n  ORDER_PLACED:\n    category: order\n    action: create\n    severity: warn\n  AUTH_LOGIN:\n    category: auth\n    action: login\n",
    )
    .unwrap();
    dir
}

#[test]
fn emit_prints_the_durable_row_and_verify_is_green() {
    let dir = setup();
    let out = fasten(
        dir.path(),
        &[
            "emit",
            "--code",
            "ORDER_PLACED",
            "--target",
            "order/42",
            "--actor",
            "ops",
            "--detail",
            r#"{"qty":3,"token":"abc"}"#,
            "--request-id",
            "req-7",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let row: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(row["method"], "cli");
    assert_eq!(row["request_id"], "req-7");
    assert_eq!(row["actor"], "ops");
    assert_eq!(row["actor_kind"], "user");
    assert_eq!(row["severity"], "warn");
    assert_eq!(row["monotonic_seq"], 1);
    assert_eq!(row["detail"]["qty"], 3);
    assert_ne!(row["detail"]["token"], "abc", "secrets are redacted");

    let out = fasten(dir.path(), &["emit", "--code", "AUTH_LOGIN"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let row: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(row["monotonic_seq"], 2);
    assert_eq!(row["request_id"].as_str().unwrap().len(), 32);

    let out = fasten(dir.path(), &["verify", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"ok": true, "nodes": [{"source_node_id": "node-cli", "rows": 2, "erased": 0, "first_break_seq": null, "reason": null}]})
    );
    let out = fasten(dir.path(), &["verify"]);
    assert_eq!(stdout(&out), "ok node-cli: 2 rows, 0 erased\n");
}

#[test]
fn request_id_falls_back_to_the_environment() {
    let dir = setup();
    let out = fasten_with(
        dir.path(),
        &["emit", "--code", "AUTH_LOGIN"],
        &[("FASTEN_REQUEST_ID", "from-script")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let row: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(row["request_id"], "from-script");
}

#[test]
fn tampering_fails_verify_with_the_node_seq_and_reason() {
    let dir = setup();
    for _ in 0..3 {
        assert!(
            fasten(dir.path(), &["emit", "--code", "AUTH_LOGIN"])
                .status
                .success()
        );
    }
    tamper(dir.path());
    let out = fasten(dir.path(), &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["nodes"][0]["first_break_seq"], 2);
    assert_eq!(report["nodes"][0]["reason"], "hash does not match the row");
    let out = fasten(dir.path(), &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("BROKEN node-cli: seq 2: hash does not match the row"));
}

/// Changes who did seq 2, as someone with write access to the file could.
fn tamper(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join("audit.db")).unwrap();
    conn.execute(
        "UPDATE audit_log SET actor = 'mallory' WHERE monotonic_seq = 2",
        [],
    )
    .unwrap();
}

#[test]
fn dump_lists_codes_sorted() {
    let dir = setup();
    let out = fasten(dir.path(), &["dump"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "AUTH_LOGIN,shop,info\nORDER_PLACED,shop,warn\n"
    );
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = setup();
    let cases: [(&[&str], &str); 4] = [
        (&["emit", "--code", "NOPE"], "unknown code \"NOPE\""),
        (
            &["emit", "--code", "AUTH_LOGIN", "--detail", "[1,2]"],
            "detail: must be a JSON object",
        ),
        (
            &["emit", "--code", "AUTH_LOGIN", "--detail", "{\"x\": NaN}"],
            "invalid --detail",
        ),
        (
            &["emit", "--code", "AUTH_LOGIN", "--request-id", "a b"],
            "invalid --request-id",
        ),
    ];
    for (args, message) in cases {
        let out = fasten(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let out = fasten(
        dir.path(),
        &["emit", "--code", "AUTH_LOGIN", "--actor-kind", "admin"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("actor_kind"), "{}", stderr(&out));
    let out = fasten(dir.path(), &["verify", "--dsn", "sqlite:/bad"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid FASTEN_AUDIT_DSN"),
        "{}",
        stderr(&out)
    );
    // Nothing refused reached the store.
    let out = fasten(dir.path(), &["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["nodes"], serde_json::json!([]));
}

/// The test PostgreSQL (`FASTEN_TEST_PG`, else the local one) and an admin
/// connection to it. Under `CI` a missing server fails the test; elsewhere
/// it says so loudly and the test returns.
fn pg_admin() -> Option<(String, postgres::Client)> {
    let url = std::env::var("FASTEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(c) => Some((url, c)),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but PostgreSQL is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL at {url} is unreachable: {e}");
            None
        }
    }
}

/// A schema of the test's own, dropped with everything in it when the
/// test ends, passed or failed.
struct PgSchema {
    name: String,
    admin: postgres::Client,
}

impl PgSchema {
    fn new(admin: postgres::Client) -> Self {
        let name = format!("fasten_cli_{:016x}", rand::random::<u64>());
        Self { name, admin }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

#[test]
fn emit_and_verify_against_postgres() {
    let Some((url, admin)) = pg_admin() else {
        return;
    };
    let guard = PgSchema::new(admin);
    let schema = &guard.name;
    let dsn = format!("{url}?table={schema}.audit_log");
    let dir = setup();
    let run = |args: &[&str]| {
        fasten_with(
            dir.path(),
            args,
            &[("FASTEN_NODE_ID", "node-pg"), ("FASTEN_AUDIT_DSN", &dsn)],
        )
    };
    for _ in 0..3 {
        let out = run(&[
            "emit",
            "--code",
            "ORDER_PLACED",
            "--detail",
            r#"{"price":12.5,"note":"dépôt €"}"#,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run(&["verify", "--json", "--dsn", &dsn]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["nodes"][0]["rows"], 3);
}

#[test]
fn signed_checkpoints_catch_truncation_and_resealing() {
    let dir = setup();
    let verifier = keygen(dir.path(), "audit.example/node-cli", "signing.key");
    assert!(
        verifier.starts_with("audit.example/node-cli+"),
        "{verifier}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("signing.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // Never overwrites a key.
    let again = fasten(
        dir.path(),
        &["keygen", "--name", "x", "--out", "signing.key"],
    );
    assert_eq!(again.status.code(), Some(2));

    for _ in 0..5 {
        assert!(
            fasten(dir.path(), &["emit", "--code", "AUTH_LOGIN"])
                .status
                .success()
        );
    }
    let cp = fasten(
        dir.path(),
        &["checkpoint", "--key", "signing.key", "--dir", "published"],
    );
    assert!(cp.status.success(), "{}", stderr(&cp));
    assert!(dir.path().join("published/node-cli/5.checkpoint").exists());
    let verify = |dir: &Path| {
        fasten(
            dir,
            &[
                "verify",
                "--json",
                "--key",
                &verifier,
                "--checkpoints",
                "published",
            ],
        )
    };
    // More rows later: the checkpoint is still a prefix.
    for _ in 0..2 {
        assert!(
            fasten(dir.path(), &["emit", "--code", "AUTH_LOGIN"])
                .status
                .success()
        );
    }
    let out = verify(dir.path());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["checkpoints"][0]["ok"], true);

    // Cut off the newest rows: the chain alone still verifies, the checkpoint does not.
    let conn = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
    conn.execute("DELETE FROM audit_log WHERE monotonic_seq >= 5", [])
        .unwrap();
    drop(conn);
    assert!(fasten(dir.path(), &["verify"]).status.success());
    let out = verify(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["checkpoints"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("fewer than the 5"),
        "{report}"
    );

    // Re-seal from scratch with as many rows: a valid chain, a different history.
    std::fs::remove_file(dir.path().join("audit.db")).unwrap();
    for _ in 0..5 {
        assert!(
            fasten(dir.path(), &["emit", "--code", "AUTH_LOGIN"])
                .status
                .success()
        );
    }
    assert!(fasten(dir.path(), &["verify"]).status.success());
    let out = fasten(
        dir.path(),
        &["verify", "--key", &verifier, "--checkpoints", "published"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("history was rewritten"),
        "{}",
        stdout(&out)
    );

    // A key that did not sign it proves nothing.
    let other = keygen(dir.path(), "someone-else", "other.key");
    let out = fasten(
        dir.path(),
        &["verify", "--key", &other, "--checkpoints", "published"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not a valid checkpoint"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn proofs_verify_offline_and_fail_when_altered() {
    let dir = setup();
    let verifier = keygen(dir.path(), "audit.example/node-cli", "signing.key");
    let emit = |dir: &Path| {
        let out = fasten_with(
            dir,
            &["emit", "--code", "AUTH_LOGIN"],
            &[("FASTEN_SIGNING_KEY", "signing.key")],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let row: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        row["id"].as_str().unwrap().to_owned()
    };
    // Each emitting process signs at its shutdown: checkpoints of sizes 1, 2, 3.
    let ids: Vec<String> = (0..3).map(|_| emit(dir.path())).collect();
    let out = fasten(dir.path(), &["prove", &ids[1], "-o", "row.proof"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fasten(
        dir.path(),
        &["verify-proof", "row.proof", "--key", &verifier],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("seq 2) is in the tree of size 3"),
        "{}",
        stdout(&out)
    );

    // Any change to the row breaks it, and so does another key.
    let text = std::fs::read_to_string(dir.path().join("row.proof")).unwrap();
    std::fs::write(
        dir.path().join("bad.proof"),
        text.replacen("\"actor\": \"", "\"actor\": \"x", 1),
    )
    .unwrap();
    let out = fasten(
        dir.path(),
        &["verify-proof", "bad.proof", "--key", &verifier],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("INVALID"), "{}", stdout(&out));
    let other = fasten(
        dir.path(),
        &["keygen", "--name", "other", "--out", "other.key"],
    );
    let out = fasten(
        dir.path(),
        &["verify-proof", "row.proof", "--key", stdout(&other).trim()],
    );
    assert_eq!(out.status.code(), Some(1));

    let out = fasten(
        dir.path(),
        &[
            "prove",
            "--consistency",
            "1",
            "3",
            "--node",
            "node-cli",
            "-o",
            "c.proof",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fasten(dir.path(), &["verify-proof", "c.proof", "--key", &verifier]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("size 3 extends its tree of size 1"),
        "{}",
        stdout(&out)
    );
    let out = fasten(
        dir.path(),
        &["prove", "--consistency", "1", "9", "--node", "node-cli"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no checkpoint of size 9"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn evidence_packs_prove_one_tenant_and_catch_any_change() {
    let dir = setup();
    let verifier = keygen(dir.path(), "audit.example/node-cli", "signing.key");
    for (tenant, code) in [
        ("acme", "AUTH_LOGIN"),
        ("globex", "AUTH_LOGIN"),
        ("acme", "ORDER_PLACED"),
        ("acme", "AUTH_LOGIN"),
    ] {
        let out = fasten_with(
            dir.path(),
            &["emit", "--code", code, "--detail", r#"{"n":1}"#],
            &[
                ("FASTEN_TENANT_ID", tenant),
                ("FASTEN_SIGNING_KEY", "signing.key"),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = fasten(
        dir.path(),
        &[
            "export",
            "--tenant",
            "acme",
            "--code",
            "AUTH_LOGIN",
            "--since",
            "2000-01-01T00:00:00Z",
            "--key",
            &verifier,
            "-o",
            "pack",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("2 rows, 1 checkpoints"),
        "{}",
        stdout(&out)
    );
    let rows = std::fs::read_to_string(dir.path().join("pack/rows.jsonl")).unwrap();
    assert!(!rows.contains("globex"), "another tenant's row leaked");

    // No database needed: move the store away first.
    std::fs::rename(dir.path().join("audit.db"), dir.path().join("gone.db")).unwrap();
    // Without a trusted key, a pack only vouches for itself: refused.
    let out = fasten(dir.path(), &["verify-pack", "pack"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("UNTRUSTED") && !stdout(&out).contains("ok:"),
        "{}",
        stdout(&out)
    );
    let out = fasten(dir.path(), &["verify-pack", "pack", "--trust-pack-keys"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ok: 2 rows proven"),
        "{}",
        stdout(&out)
    );
    // Pinned to the trusted key, and refused under another.
    assert!(
        fasten(dir.path(), &["verify-pack", "pack", "--key", &verifier])
            .status
            .success()
    );
    let other = fasten(
        dir.path(),
        &["keygen", "--name", "other", "--out", "other.key"],
    );
    let out = fasten(
        dir.path(),
        &["verify-pack", "pack", "--key", stdout(&other).trim()],
    );
    assert_eq!(out.status.code(), Some(1));

    // Change a row: the manifest catches it; fix the manifest too and the proof does.
    let tampered = rows.replacen("\"actor\":\"", "\"actor\":\"x", 1);
    std::fs::write(dir.path().join("pack/rows.jsonl"), &tampered).unwrap();
    let out = fasten(dir.path(), &["verify-pack", "pack"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("rows.jsonl does not match its hash"),
        "{}",
        stdout(&out)
    );
    let manifest = std::fs::read_to_string(dir.path().join("pack/manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    use sha2::Digest as _;
    m["files"]["rows.jsonl"] = hex::encode(sha2::Sha256::digest(tampered.as_bytes())).into();
    std::fs::write(dir.path().join("pack/manifest.json"), m.to_string()).unwrap();
    let out = fasten(dir.path(), &["verify-pack", "pack"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("hash does not match its columns"),
        "{}",
        stdout(&out)
    );
}

/// Three rows of request `req-a`, one of `req-b`, as an operator would
/// write them.
fn seed_rows(dir: &Path) {
    for (code, target, req, outcome) in [
        ("ORDER_PLACED", "order/1", "req-a", "success"),
        ("AUTH_LOGIN", "user/7", "req-a", "denied"),
        ("ORDER_PLACED", "order/2", "req-b", "success"),
        ("ORDER_PLACED", "order/3", "req-a", "success"),
    ] {
        let o = fasten(
            dir,
            &[
                "emit",
                "--code",
                code,
                "--target",
                target,
                "--actor",
                "ops",
                "--request-id",
                req,
                "--outcome",
                outcome,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

#[test]
fn tail_and_correlate_print_one_row_a_line() {
    let dir = setup();
    seed_rows(dir.path());
    let o = fasten(dir.path(), &["tail", "-n", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    // Oldest of the three first; `<time>Z CODE actor target=… req=…`.
    let shape = |l: &str, code: &str, target: &str, req: &str| {
        let (ts, rest) = l.split_once(' ').unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 20, "{l}");
        assert!(
            rest.starts_with(&format!("{code} ops target={target} req={req}")),
            "{l}"
        );
    };
    shape(&lines[0], "AUTH_LOGIN", "user/7", "req-a");
    assert!(lines[0].ends_with("outcome=denied"), "{}", lines[0]);
    shape(&lines[1], "ORDER_PLACED", "order/2", "req-b");
    shape(&lines[2], "ORDER_PLACED", "order/3", "req-a");

    let o = fasten(dir.path(), &["tail", "--request-id", "req-b", "--json"]);
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["target"], "order/2");

    let o = fasten(dir.path(), &["correlate", "req-a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("audit ") && l.contains("req=req-a")),
        "{text}"
    );
    let o = fasten(dir.path(), &["correlate", "req-none"]);
    assert_eq!(stdout(&o).trim(), "no rows for request req-none");

    for (args, needle) in [
        (
            vec!["tail", "--since", "yesterday"],
            "invalid since \"yesterday\"",
        ),
        (vec!["tail", "-n", "0"], "invalid --limit 0"),
        (vec!["correlate", "a b"], "invalid request id"),
        (vec!["tail", "--url", "ftp://x"], "invalid --url"),
    ] {
        let o = fasten(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line, no backtrace: {err}");
    }
}

#[test]
fn tail_follow_prints_rows_as_they_land() {
    let dir = setup();
    seed_rows(dir.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fasten"))
        .current_dir(dir.path())
        .args(["tail", "-n", "1", "--follow", "--interval", "100ms"])
        .env("FASTEN_AUDIT_DSN", "sqlite:///audit.db")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead as _;
    out.read_line(&mut line).unwrap();
    assert!(line.contains("target=order/3"), "{line}");
    let o = fasten(
        dir.path(),
        &["emit", "--code", "AUTH_LOGIN", "--target", "user/late"],
    );
    assert!(o.status.success());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(
        line.contains("AUTH_LOGIN") && line.contains("target=user/late"),
        "{line}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn doctor_says_what_holds_and_fails_on_a_broken_chain() {
    let dir = setup();
    seed_rows(dir.path());
    let o = fasten(dir.path(), &["doctor", "--probe"]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    for needle in [
        "✓ env: service cli-test, node node-cli",
        "✓ codes: 2 codes from shop.codes.yaml",
        "✓ audit store: sqlite:///audit.db reachable",
        "✓ round trip: FASTEN_DOCTOR_PROBE",
        "✓ chain: node-cli: newest 5 of 5 rows intact",
        "⚠ sys store: FASTEN_SYS_DSN is not set",
        "doctor: 5 ok, 2 warnings, 0 failed",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    tamper(dir.path());
    let o = fasten(dir.path(), &["doctor", "--json", "--no-probe"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["ok"], false);
    let chain = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "chain")
        .unwrap();
    assert_eq!(chain["status"], "fail");
    assert!(
        chain["detail"]
            .as_str()
            .unwrap()
            .contains("seq 2: hash does not match"),
        "{chain}"
    );

    let o = fasten_with(
        dir.path(),
        &["doctor"],
        &[(
            "FASTEN_AUDIT_DSN",
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
        )],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("✗ audit store: postgres://nobody@127.0.0.1:1/none"),
        "{}",
        stdout(&o)
    );
}

/// A health check creates nothing unless asked, never shows ✓ for what
/// just failed, and names unknown variables and a missing registry.
#[test]
fn doctor_without_a_store_changes_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fasten"))
        .arg("doctor")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("FASTEN_SERVICE_ID", "svc")
        .env("FASTEN_NODE_ID", "node-1")
        .env("FASTEN_AUDIT_DNS", "sqlite:///typo.db")
        .output()
        .unwrap();
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    for needle in [
        "✗ env: unknown variable FASTEN_AUDIT_DNS (did you mean FASTEN_AUDIT_DSN?)",
        "✗ codes: no code registry: FASTEN_CODES is not set",
        "✗ audit store: sqlite:///fasten_audit.db: sqlite: fasten_audit.db does not exist",
        "doctor: 1 ok, 0 warnings, 3 failed",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    assert!(
        !text.contains("round trip") && !text.contains("chain"),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "doctor created {left:?}");
}

#[test]
fn serve_needs_an_auth_decision_and_then_answers_over_http() {
    let dir = setup();
    seed_rows(dir.path());
    let o = fasten(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("refuses to start without an auth decision"),
        "{}",
        stderr(&o)
    );

    let token = "cli-test-token-0123456789";
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fasten"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FASTEN_AUDIT_DSN", "sqlite:///audit.db")
        .env(
            "FASTEN_READER_TOKENS",
            format!("old-token-abcdefghijkl,{token}"),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    use std::io::BufRead as _;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("fasten: serving ")
        .unwrap()
        .to_owned();
    assert!(url.ends_with("/api/v1/logs"), "{first}");

    let o = fasten_with(
        dir.path(),
        &[
            "tail",
            "--url",
            &url,
            "--token",
            token,
            "--request-id",
            "req-a",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
    let o = fasten_with(
        dir.path(),
        &[
            "correlate",
            "req-b",
            "--url",
            &url,
            "--token",
            token,
            "--json",
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    let o = fasten_with(
        dir.path(),
        &["tail", "--url", &url, "--token", "wrong-token-000000000"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("401") && stderr(&o).contains("hint"),
        "{}",
        stderr(&o)
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `--since` takes an RFC 3339 time, a date or an age, as the reader does.
#[test]
fn tail_since_takes_dates_and_ages() {
    let dir = setup();
    seed_rows(dir.path());
    for since in ["1h", "2000-01-01", "2000-01-01T00:00:00Z"] {
        let o = fasten(dir.path(), &["tail", "--since", since]);
        assert!(o.status.success(), "{since}: {}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), 4, "{since}");
    }
    let o = fasten(dir.path(), &["tail", "--since", "2999-01-01"]);
    assert_eq!(stdout(&o).lines().count(), 0);
    let o = fasten(dir.path(), &["tail", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(r#"invalid since "yesterday": expected an RFC 3339 time"#),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dump_prints_json_when_asked() {
    let dir = setup();
    let o = fasten(dir.path(), &["dump", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let codes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["AUTH_LOGIN", "ORDER_PLACED"]);
    assert_eq!(v[1]["severity"], "warn");

    // Personal data with an explicit long class loads, kept short; both show.
    std::fs::write(
        dir.path().join("crm.codes.yaml"),
        "domain: crm\ncodes:\n  CONTACT_SAVED:\n    category: contact\n    action: update\n    pii_in_detail: true\n    retention_class: long\n",
    )
    .unwrap();
    let o = fasten_with(
        dir.path(),
        &["dump", "--format", "json"],
        &[("FASTEN_CODES", "crm.codes.yaml")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["code"], "CONTACT_SAVED");
    assert_eq!(v[0]["retention_class"], "short");
    assert_eq!(v[0]["declared_retention_class"], "long");
}

// === Attacks by someone with write access to the store ===
//
// Each attack leaves a hash chain that verifies on its own; the published
// checkpoints must catch it. The same scenario runs on SQLite and on
// PostgreSQL through the `Attacked` seam, so the two cannot drift apart.

/// A store as an attacker sees it: plain SQL, no fasten.
trait Attacked {
    /// The DSN fasten opens it with.
    fn dsn(&self) -> String;
    /// The audit table's name in SQL (`{t}` in [`Attacked::exec`]).
    fn table(&self) -> String;
    /// The `timestamp` column as the contract's text form.
    fn timestamp_text(&self) -> &'static str;
    /// Runs statements; `{t}` stands for the audit table.
    fn exec(&mut self, sql: &str);
    /// Every value of `sql`'s result as text (NULL as `None`).
    fn texts(&mut self, sql: &str) -> Vec<Vec<Option<String>>>;
}

struct SqliteAttacked(std::path::PathBuf);

impl Attacked for SqliteAttacked {
    fn dsn(&self) -> String {
        format!("sqlite:///{}", self.0.display())
    }
    fn table(&self) -> String {
        "audit_log".to_owned()
    }
    fn timestamp_text(&self) -> &'static str {
        "timestamp"
    }
    fn exec(&mut self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        conn.execute_batch(&sql.replace("{t}", &self.table()))
            .unwrap();
    }
    fn texts(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        let mut stmt = conn.prepare(&sql.replace("{t}", &self.table())).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

struct PostgresAttacked {
    url: String,
    schema: String,
    admin: postgres::Client,
}

impl Drop for PostgresAttacked {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}

impl Attacked for PostgresAttacked {
    fn dsn(&self) -> String {
        format!("{}?table={}", self.url, self.table())
    }
    fn table(&self) -> String {
        format!("{}.audit_log", self.schema)
    }
    fn timestamp_text(&self) -> &'static str {
        r#"to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#
    }
    fn exec(&mut self, sql: &str) {
        let sql = sql.replace("{t}", &self.table());
        self.admin.batch_execute(&sql).unwrap();
    }
    fn texts(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        let sql = sql.replace("{t}", &self.table());
        self.admin
            .query(&sql, &[])
            .unwrap()
            .iter()
            .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
            .collect()
    }
}

/// The 23 hashed members (row contract §2), in the order selected below.
const HASHED: [&str; 23] = [
    "id",
    "origin_id",
    "monotonic_seq",
    "timestamp",
    "code",
    "action",
    "severity",
    "outcome",
    "service_id",
    "source_node_id",
    "tenant_id",
    "actor",
    "actor_kind",
    "target",
    "category",
    "domain",
    "method",
    "request_id",
    "detail_commitment",
    "pii_in_detail",
    "wire_version",
    "canonical_form_id",
    "prev_hash",
];

/// Changes the target of row `from_seq` and re-seals it and every later
/// row, as an attacker who knows the (public) hashing rule would: a chain
/// that verifies on its own. Written from the row contract, not with
/// fasten's code.
fn reseal_from(store: &mut dyn Attacked, from_seq: i64) {
    // Aliased, or PostgreSQL's ORDER BY would sort the text casts.
    let select: Vec<String> = HASHED
        .iter()
        .enumerate()
        .map(|(i, c)| match *c {
            "timestamp" => format!("{} AS c{i}", store.timestamp_text()),
            other => format!("CAST({other} AS TEXT) AS c{i}"),
        })
        .collect();
    let rows = store.texts(&format!(
        "SELECT {}, hash FROM {{t}} ORDER BY monotonic_seq",
        select.join(", ")
    ));
    let mut prev: Option<String> = None;
    for row in rows {
        let mut members = serde_json::Map::new();
        for (name, value) in HASHED.iter().zip(&row) {
            let value = match (*name, value) {
                ("monotonic_seq", Some(v)) => v.parse::<i64>().unwrap().into(),
                ("pii_in_detail", Some(v)) => matches!(v.as_str(), "1" | "true").into(),
                (_, Some(v)) => v.clone().into(),
                (_, None) => serde_json::Value::Null,
            };
            members.insert((*name).to_owned(), value);
        }
        let seq = members["monotonic_seq"].as_i64().unwrap();
        let mut hash = row[23].clone().unwrap();
        if seq >= from_seq {
            if seq == from_seq {
                members.insert("target".to_owned(), "forged".into());
            }
            if let Some(p) = &prev {
                members.insert("prev_hash".to_owned(), p.clone().into());
            }
            // Member names are ASCII and the values plain ASCII, so
            // serde_json's sorted output is the JCS form here.
            let canonical = serde_json::to_string(&members).unwrap();
            hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(canonical));
            store.exec(&format!(
                "UPDATE {{t}} SET target = {}, prev_hash = '{}', hash = '{hash}' WHERE id = '{}'",
                if seq == from_seq {
                    "'forged'"
                } else {
                    "target"
                },
                members["prev_hash"].as_str().unwrap(),
                members["id"].as_str().unwrap(),
            ));
        }
        prev = Some(hash);
    }
}

/// Copies the audit table and its checkpoints aside as `name`.
fn backup(store: &mut dyn Attacked, name: &str) {
    store.exec(&format!(
        "DROP TABLE IF EXISTS {{t}}_{name}; CREATE TABLE {{t}}_{name} AS SELECT * FROM {{t}};
         DROP TABLE IF EXISTS {{t}}_cp_{name}; CREATE TABLE {{t}}_cp_{name} AS SELECT * FROM {{t}}_checkpoints;"
    ));
}

/// Puts back what [`backup`] copied, checkpoints kept in the store included.
fn restore(store: &mut dyn Attacked, name: &str) {
    store.exec(&format!(
        "DELETE FROM {{t}}; INSERT INTO {{t}} SELECT * FROM {{t}}_{name};
         DELETE FROM {{t}}_checkpoints; INSERT INTO {{t}}_checkpoints SELECT * FROM {{t}}_cp_{name};"
    ));
}

/// Writes 12 rows through `fasten emit` (each process signs a checkpoint
/// at its shutdown, so sizes 1 to 12 are published), plays each attack on a
/// fresh copy, and checks that `fasten verify` alone is fooled while
/// `fasten verify --key … --checkpoints …` names every checkpoint the attack
/// contradicts and passes the ones it does not.
fn attacks_are_caught_by_checkpoints(store: &mut dyn Attacked) {
    let dir = setup();
    let verifier = keygen(dir.path(), "audit.example/attacks", "signing.key");
    let dsn = store.dsn();
    let env = [
        ("FASTEN_AUDIT_DSN", dsn.as_str()),
        ("FASTEN_NODE_ID", "node-attacked"),
        ("FASTEN_SIGNING_KEY", "signing.key"),
        ("FASTEN_CHECKPOINT_DIR", "published"),
    ];
    for i in 1..=12 {
        let out = fasten_with(dir.path(), &["emit", "--code", "AUTH_LOGIN"], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        if i == 8 {
            backup(store, "older");
        }
    }
    backup(store, "pristine");
    let verify = |with_checkpoints: bool| {
        let mut args = vec!["verify", "--json"];
        if with_checkpoints {
            args.extend(["--key", &verifier, "--checkpoints", "published"]);
        }
        let out = fasten_with(dir.path(), &args, &env);
        let report: serde_json::Value = serde_json::from_str(stdout(&out).trim())
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        assert_eq!(out.status.success(), report["ok"] == true, "{report}");
        report
    };
    assert_eq!(verify(true)["ok"], true);

    /// (name, the attack, sizes up to which checkpoints still hold, what the rest say)
    type Attack = (&'static str, fn(&mut dyn Attacked), u64, &'static str);
    let attacks: [Attack; 4] = [
        (
            "re-seal the whole table",
            |s| reseal_from(s, 1),
            0,
            "history was rewritten",
        ),
        (
            "delete the newest 4 rows",
            |s| s.exec("DELETE FROM {t} WHERE monotonic_seq > 8"),
            8,
            "rows were cut off or the store was rolled back",
        ),
        (
            "replace row 5 and re-seal from there",
            |s| reseal_from(s, 5),
            4,
            "history was rewritten",
        ),
        (
            "restore the backup taken at 8 rows",
            |s| restore(s, "older"),
            8,
            "rows were cut off or the store was rolled back",
        ),
    ];
    for (name, attack, holds_up_to, reason) in attacks {
        restore(store, "pristine");
        attack(store);
        let alone = verify(false);
        assert_eq!(
            alone["ok"], true,
            "{name}: the chain alone is fooled: {alone}"
        );
        let report = verify(true);
        assert_eq!(report["ok"], false, "{name}: {report}");
        let checks = report["checkpoints"].as_array().unwrap();
        assert_eq!(checks.len(), 12, "{name}: {report}");
        for check in checks {
            let size = check["size"].as_u64().unwrap();
            if size <= holds_up_to {
                assert_eq!(check["ok"], true, "{name}: {check}");
            } else {
                assert!(
                    check["reason"].as_str().unwrap().contains(reason),
                    "{name}: {check}"
                );
            }
        }
    }
}

#[test]
fn sqlite_attacks_are_caught_by_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    attacks_are_caught_by_checkpoints(&mut SqliteAttacked(dir.path().join("attacked.db")));
}

#[test]
fn postgres_attacks_are_caught_by_checkpoints() {
    let Some((url, admin)) = pg_admin() else {
        return;
    };
    attacks_are_caught_by_checkpoints(&mut PostgresAttacked {
        url,
        schema: format!("fasten_attack_{:016x}", rand::random::<u64>()),
        admin,
    });
}

/// `fasten sweep` and `fasten erase` end to end: what they say, what they
/// erase, and that `fasten verify` stays green and counts the erased rows.
#[test]
fn sweep_and_erase_keep_verify_green() {
    let dir = setup();
    std::fs::write(
        dir.path().join("cart.codes.yaml"),
        "domain: cart\ncodes:\n  CART_TOUCHED:\n    category: cart\n    action: update\n    retention_class: short\n",
    )
    .unwrap();
    let codes = [("FASTEN_CODES", "shop.codes.yaml,cart.codes.yaml")];
    for (code, actor) in [
        ("CART_TOUCHED", "jane"),
        ("ORDER_PLACED", "jane"),
        ("AUTH_LOGIN", "joe"),
    ] {
        let out = fasten_with(
            dir.path(),
            &[
                "emit",
                "--code",
                code,
                "--actor",
                actor,
                "--detail",
                r#"{"email":"x@y.example"}"#,
            ],
            &codes,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let in_days = |days: i64| {
        (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * days)).to_string()
    };
    // Dry: says what would go, erases nothing, appends nothing.
    let out = fasten_with(
        dir.path(),
        &["sweep", "--dry-run", "--now", &in_days(31)],
        &codes,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "would erase the detail of 1 rows (dry run: nothing erased)\n  CART_TOUCHED (short): 1 rows on node-cli in seq 1..=1\n"
    );
    assert_eq!(
        stdout(&fasten(dir.path(), &["verify"])),
        "ok node-cli: 3 rows, 0 erased\n"
    );
    // Real: erases the short row, appends its event (seq 4).
    let out = fasten_with(
        dir.path(),
        &["sweep", "--json", "--now", &in_days(31)],
        &codes,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["erased"], 1);
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["codes"][0]["code"], "CART_TOUCHED");
    assert!(report["event_id"].as_str().unwrap().starts_with("evt-"));
    assert_eq!(
        stdout(&fasten(dir.path(), &["verify"])),
        "ok node-cli: 4 rows, 1 erased\n"
    );
    // On request: jane's other row goes; joe's stays.
    let out = fasten(
        dir.path(),
        &[
            "erase",
            "--actor",
            "jane",
            "--reason",
            "GDPR art. 17 request #1",
            "--requested-by",
            "dpo",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("erased the detail of 1 rows by actor (event evt-"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stdout(&fasten(dir.path(), &["verify"])),
        "ok node-cli: 5 rows, 2 erased\n"
    );
    let conn = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
    let (actor, target, method, detail): (String, String, String, String) = conn
        .query_row(
            "SELECT actor, target, method, detail FROM audit_log WHERE code = 'AUDIT_SUBJECT_ERASED'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (actor.as_str(), target.as_str(), method.as_str()),
        ("dpo", "jane", "cli")
    );
    assert!(detail.contains("GDPR art. 17 request #1"), "{detail}");
    assert!(!detail.contains("x@y.example"), "{detail}");
}

#[test]
fn sweep_and_erase_refuse_bad_input() {
    let dir = setup();
    let cases: [(&[&str], &str); 4] = [
        (
            &["sweep", "--now", "tomorrow"],
            "invalid now \"tomorrow\": expected an RFC 3339 time",
        ),
        (
            &["erase", "--reason", "x"],
            "--actor <ACTOR>|--target <TARGET>",
        ),
        (
            &["erase", "--actor", "jane", "--reason", " "],
            "invalid reason",
        ),
        (
            &[
                "erase", "--actor", "jane", "--target", "jane", "--reason", "x",
            ],
            "cannot be used with",
        ),
    ];
    for (args, message) in cases {
        let out = fasten(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let out = fasten_with(
        dir.path(),
        &["sweep"],
        &[("FASTEN_AUDIT_RETENTION_OVERRIDE", "long=forever")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid FASTEN_AUDIT_RETENTION_OVERRIDE \"long=forever\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn issue_8_run_gives_a_scripts_steps_one_request_id() {
    let dir = setup();
    let bin = env!("CARGO_BIN_EXE_fasten");
    let script = r#"set -e
"$FASTEN_TEST_BIN" emit --code AUTH_LOGIN
"$FASTEN_TEST_BIN" emit --code ORDER_PLACED --target order-1
echo "child=$FASTEN_REQUEST_ID"
exit 3"#;
    let out = fasten_with(
        dir.path(),
        &["run", "--print-id", "--", "sh", "-c", script],
        &[("FASTEN_TEST_BIN", bin)],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "the child's exit code: {}",
        stderr(&out)
    );
    let id = stderr(&out)
        .lines()
        .find_map(|l| l.strip_prefix("request_id="))
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32, "a fresh id: {id}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines[..2] {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["request_id"], id.as_str());
        assert_eq!(row["method"], "cli");
    }
    assert_eq!(lines[2], format!("child={id}"));

    // A given id; a safe inherited one nests; a hostile inherited one is replaced.
    let echo = ["sh", "-c", "echo $FASTEN_REQUEST_ID"];
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.push("--");
        all.extend_from_slice(&echo);
        let out = fasten_with(dir.path(), &all, env);
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out).trim().to_owned(), stderr(&out))
    };
    assert_eq!(run(&["--request-id", "nightly-7"], &[]).0, "nightly-7");
    assert_eq!(run(&[], &[("FASTEN_REQUEST_ID", "outer-1")]).0, "outer-1");
    let (id, err) = run(&[], &[("FASTEN_REQUEST_ID", "evil\u{1b}[2J")]);
    assert_eq!(id.len(), 32, "{id}");
    assert!(err.contains("ignoring FASTEN_REQUEST_ID"), "{err}");

    let out = fasten(dir.path(), &["run", "--request-id", "a b", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid --request-id"),
        "{}",
        stderr(&out)
    );
    let out = fasten(dir.path(), &["run", "--", "/nonexistent/cmd"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot start"), "{}", stderr(&out));
}

// Issue 13, the attacks that only the binary shows.

/// A node whose chain no checkpoint covers is named, and
/// `--require-checkpoints` fails on it.
#[test]
fn adversary_a_node_without_a_checkpoint_is_named_and_can_be_required() {
    let dir = setup();
    let verifier = keygen(dir.path(), "audit.example/node-cli", "signing.key");
    assert!(
        fasten(dir.path(), &["emit", "--code", "AUTH_LOGIN"])
            .status
            .success()
    );
    let cp = fasten(
        dir.path(),
        &["checkpoint", "--key", "signing.key", "--dir", "published"],
    );
    assert!(cp.status.success(), "{}", stderr(&cp));
    // A second node appears later, with no checkpoint of its own.
    let out = fasten_with(
        dir.path(),
        &["emit", "--code", "AUTH_LOGIN"],
        &[("FASTEN_NODE_ID", "node-new")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let args = ["verify", "--key", &verifier, "--checkpoints", "published"];
    let out = fasten(dir.path(), &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("uncovered node-new"),
        "{}",
        stdout(&out)
    );
    let out = fasten(
        dir.path(),
        &[&args[..], &["--require-checkpoints"]].concat(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("UNCOVERED node-new"),
        "{}",
        stdout(&out)
    );
    let out = fasten(
        dir.path(),
        &[&args[..], &["--require-checkpoints", "--json"]].concat(),
    );
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["uncovered_nodes"], serde_json::json!(["node-new"]));
    assert_eq!(report["ok"], false);
}

/// A pack re-signed by an attacker's key of the same name is consistent
/// with itself; without `--key` it is not ok.
#[test]
fn adversary_a_pack_signed_by_any_key_of_the_name_is_not_trusted_without_key() {
    let dir = setup();
    let verifier = keygen(dir.path(), "audit.example/node-cli", "signing.key");
    // The attacker's key has the same name.
    let forged = keygen(dir.path(), "audit.example/node-cli", "forged.key");
    assert_ne!(verifier, forged);
    let out = fasten_with(
        dir.path(),
        &["emit", "--code", "AUTH_LOGIN"],
        &[("FASTEN_SIGNING_KEY", "forged.key")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fasten(dir.path(), &["export", "--key", &forged, "-o", "pack"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fasten(dir.path(), &["verify-pack", "pack"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("not against a key you trust"),
        "{}",
        stdout(&out)
    );
    let out = fasten(dir.path(), &["verify-pack", "pack", "--key", &verifier]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

/// A client that sends half a request head is dropped after the header
/// read timeout instead of holding a connection open for minutes.
#[test]
fn adversary_serve_drops_a_half_sent_request() {
    let dir = setup();
    seed_rows(dir.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fasten"))
        .current_dir(dir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-unauthenticated",
        ])
        .env("FASTEN_AUDIT_DSN", "sqlite:///audit.db")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    use std::io::{BufRead as _, Read as _, Write as _};
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("fasten: serving http://")
        .and_then(|u| u.split('/').next())
        .unwrap()
        .to_owned();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /api/v1/logs/audit HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // A server that held the connection would run into the read timeout.
    let mut rest = Vec::new();
    let read = conn.read_to_end(&mut rest);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        read.is_ok(),
        "the server kept the connection open: {read:?}"
    );
    drop(rest);
}

/// Stored data is not trusted by `fasten tail`: a non-ASCII request id does
/// not panic, and escape sequences come out escaped.
#[test]
fn adversary_tail_survives_and_escapes_hostile_stored_text() {
    let dir = setup();
    let out = fasten(dir.path(), &["emit", "--code", "AUTH_LOGIN"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let conn = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
    conn.execute(
        "UPDATE audit_log SET request_id = ?1, target = ?2",
        ["aéééééééééééé", "\u{1b}]0;pwned\u{7}\u{1b}[2J"],
    )
    .unwrap();
    drop(conn);
    let out = fasten(dir.path(), &["tail"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("\\u{1b}"), "{text:?}");
    assert!(text.contains("req=aéééééé"), "{text:?}");
}

/// A refused PostgreSQL connection says where (host, port, user, database)
/// and the server's reason, once, on one line, and never the password.
#[test]
fn a_refused_connection_says_where_and_why_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let o = fasten_with(
        dir.path(),
        &[
            "verify",
            "--dsn",
            "postgres://nobody:s3cr%2Fet@127.0.0.1:5432/test?connect_timeout=5",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(!err.contains("s3cr"), "{err}");
    if std::env::var_os("CI").is_some() || err.contains("FATAL") {
        let err = err.trim();
        assert!(
            err.starts_with("fasten: verifying the audit store postgres://nobody:***@127.0.0.1:5432/test?connect_timeout=5 (from --dsn; working directory "),
            "{err}"
        );
        assert!(
            err.ends_with(r#"): postgres: cannot connect to 127.0.0.1:5432 as user nobody to database test (sslmode=prefer): db error: FATAL: role "nobody" does not exist"#),
            "{err}"
        );
    }
}

/// The README's "Fleet" walk-through: two edges on SQLite, one shipping
/// straight to PostgreSQL, one through `fasten serve`'s ingest route; one
/// request correlated across both on the central store.
#[test]
fn issue_18_two_edges_ship_to_a_central_store_and_correlate() {
    let Some((url, admin)) = pg_admin() else {
        return;
    };
    let guard = PgSchema::new(admin);
    let schema = &guard.name;
    let central = format!("{url}?table={schema}.audit_log");
    let dir = setup();
    for node in ["edge-a", "edge-b"] {
        let db = format!("sqlite:///{node}.db");
        for _ in 0..3 {
            let o = fasten_with(
                dir.path(),
                &[
                    "emit",
                    "--code",
                    "ORDER_PLACED",
                    "--request-id",
                    "req-fleet",
                ],
                &[("FASTEN_NODE_ID", node), ("FASTEN_AUDIT_DSN", &db)],
            );
            assert!(o.status.success(), "{}", stderr(&o));
        }
    }
    // Edge a ships straight into the central table.
    let o = fasten(
        dir.path(),
        &[
            "ship",
            "--once",
            "--dsn",
            "sqlite:///edge-a.db",
            "--to",
            &central,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "edge-a: 3 rows shipped, 0 already there, 0 pending, 0 checkpoints\n"
    );
    // With --streams the same command ships the sys and api tables too
    // (empty here; the library's fleet tests ship rows), and a bad list or
    // a stream without its table is refused naming the setting.
    let streams = |list: &str, extra: &[&str]| {
        let mut args = vec![
            "ship",
            "--once",
            "--dsn",
            "sqlite:///edge-a.db",
            "--to",
            &central,
            "--streams",
            list,
        ];
        args.extend_from_slice(extra);
        fasten(dir.path(), &args)
    };
    let o = streams(
        "sys,api",
        &[
            "--sys-dsn",
            "sqlite:///edge-a-sys.db",
            "--api-dsn",
            "sqlite:///edge-a-api.db",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "edge-a: 0 rows shipped, 0 already there, 0 pending, 0 checkpoints\nsys: 0 rows shipped\napi: 0 rows shipped\n"
    );
    let o = streams("sys,audit", &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("FASTEN_SHIP_STREAMS"), "{}", stderr(&o));
    let o = streams("api", &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("FASTEN_API_DSN"), "{}", stderr(&o));

    // Edge b ships through the central reader, with a token bound to it.
    let ship_token = "ship-edge-b-0123456789";
    let read_token = "read-token-0123456789";
    let mut serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_fasten"))
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("FASTEN_AUDIT_DSN", &central)
            .env("FASTEN_READER_TOKENS", read_token)
            .env("FASTEN_INGEST_TOKENS", format!("edge-b={ship_token}"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    use std::io::BufRead as _;
    std::io::BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let reader = first
        .trim()
        .strip_prefix("fasten: serving ")
        .unwrap()
        .to_owned();
    let ship_b = |token: &str| {
        fasten(
            dir.path(),
            &[
                "ship",
                "--once",
                "--dsn",
                "sqlite:///edge-b.db",
                "--to",
                &reader,
                "--token",
                token,
            ],
        )
    };
    // A token may ship only its own nodes.
    let o = ship_b(read_token);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    let o = ship_b(ship_token);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("edge-b: 3 rows shipped"),
        "{}",
        stdout(&o)
    );
    // Again: nothing left to ship.
    let o = ship_b(ship_token);
    assert!(
        stdout(&o).starts_with("edge-b: 0 rows shipped"),
        "{}",
        stdout(&o)
    );

    let o = fasten(dir.path(), &["fleet", "status", "--dsn", &central]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert_eq!(table.lines().count(), 3, "{table}");
    for node in ["edge-a", "edge-b"] {
        let line = table.lines().find(|l| l.starts_with(node)).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cols[1..4], ["edge", "3", "0"], "{line}");
        assert!(line.ends_with("ok"), "{line}");
    }
    let o = fasten(
        dir.path(),
        &[
            "fleet", "status", "--url", &reader, "--token", read_token, "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 2);

    // One request, its rows from both edges.
    let o = fasten(
        dir.path(),
        &["correlate", "req-fleet", "--json", "--dsn", &central],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let mut nodes: Vec<String> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["row"]["source_node_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes, ["edge-a", "edge-b"], "{v}");
    let o = fasten(dir.path(), &["verify", "--dsn", &central]);
    drop(serve);
    assert!(o.status.success(), "{}", stdout(&o));
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// === Issue #12 item 5: another implementation's table ===

/// The original fasten column set (no `outcome`, `detail_salt`,
/// `detail_commitment`) with two form-2 rows of request `req-up`: `verify`
/// and `emit` refuse it with one message, `tail` and `correlate` print its
/// rows and the same message on stderr.
fn foreign_table_through_the_cli(store: &mut dyn Attacked, pg: bool) {
    let (seq, ts, detail, pii, no) = if pg {
        ("BIGINT", "TIMESTAMPTZ", "JSONB", "BOOLEAN", "false")
    } else {
        ("INTEGER", "TEXT", "TEXT", "INTEGER", "0")
    };
    if pg {
        let schema = store.table().split('.').next().unwrap().to_owned();
        store.exec(&format!("CREATE SCHEMA {schema}"));
    }
    store.exec(&format!(
        "CREATE TABLE {{t}} (id TEXT PRIMARY KEY, origin_id TEXT NOT NULL, monotonic_seq {seq} NOT NULL, timestamp {ts} NOT NULL, code TEXT NOT NULL, action TEXT NOT NULL, severity TEXT NOT NULL, service_id TEXT NOT NULL, source_node_id TEXT NOT NULL, tenant_id TEXT NULL, actor TEXT NOT NULL, actor_kind TEXT NOT NULL, target TEXT NOT NULL, category TEXT NOT NULL, domain TEXT NOT NULL, method TEXT NOT NULL, request_id TEXT NOT NULL, detail {detail} NULL, pii_in_detail {pii} NOT NULL DEFAULT {no}, shipped_at {ts} NULL, wire_version TEXT NOT NULL DEFAULT '1', canonical_form_id TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    ));
    for s in 1..=2 {
        store.exec(&format!(
            "INSERT INTO {{t}} (id, origin_id, monotonic_seq, timestamp, code, action, severity, service_id, source_node_id, actor, actor_kind, target, category, domain, method, request_id, detail, canonical_form_id, prev_hash, hash) VALUES ('evt-up-{s}', 'evt-up-{s}', {s}, '2026-04-20T10:00:0{s}.000000Z', 'ORDER_PLACED', 'create', 'info', 'shop', 'node-cli', 'ops', 'user', 'order/{s}', 'order', 'shop', 'http', 'req-up', '{{}}', '2', 'h{s}', 'h{}')",
            s + 1
        ));
    }
    let dsn = store.dsn();
    let shown = if pg {
        let (schema, table) = store
            .table()
            .split_once('.')
            .map(|(s, t)| (s.to_owned(), t.to_owned()))
            .unwrap();
        format!("\"{schema}\".\"{table}\"")
    } else {
        "\"audit_log\"".to_owned()
    };
    let found = format!(
        "table {shown} was written by another fasten implementation: it lacks the columns outcome, detail_salt, detail_commitment of canonical form 3 and its rows are canonical form 2"
    );
    let dir = setup();
    let run = |args: &[&str]| fasten_with(dir.path(), args, &[("FASTEN_AUDIT_DSN", &dsn)]);

    let o = run(&["verify"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.trim_end().ends_with(&format!("{found}; fasten verifies canonical form 3 only: verify this table with the implementation that wrote it (fasten tail and correlate still read its rows)")),
        "{err}"
    );

    let o = run(&["emit", "--code", "ORDER_PLACED"]);
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{found}; fasten never writes to it or appends form-3 rows to a chain of another form: set FASTEN_AUDIT_DSN to a new table (e.g. ?table=audit_log_v3)")),
        "{err}"
    );

    let warning = format!(
        "warning: {found}; its rows are shown as stored, with outcome, detail_salt, detail_commitment absent, and fasten cannot verify them: verify them with the implementation that wrote them\n"
    );
    let o = run(&["tail"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), warning);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("ORDER_PLACED ops target=order/1 req=req-up"),
        "{lines:?}"
    );
    assert!(!lines[0].contains("outcome="), "{lines:?}");

    let o = run(&["correlate", "req-up"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // After the notes on the streams it could not search.
    assert!(stderr(&o).ends_with(&warning), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
}

#[test]
fn issue_12_foreign_table_through_the_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    foreign_table_through_the_cli(&mut SqliteAttacked(dir.path().join("foreign.db")), false);
}

#[test]
fn issue_12_foreign_table_through_the_cli_on_postgres() {
    let Some((url, admin)) = pg_admin() else {
        return;
    };
    foreign_table_through_the_cli(
        &mut PostgresAttacked {
            url,
            schema: format!("fasten_foreign_{:016x}", rand::random::<u64>()),
            admin,
        },
        true,
    );
}

#[test]
fn issue_20_report_sums_a_detail_field_per_group() {
    let dir = setup();
    for (actor, detail) in [
        ("agent-b", r#"{"tool":"search_web","cost_usd":0.25}"#),
        ("agent-b", r#"{"tool":"fetch_page","cost_usd":0.5}"#),
        ("agent-c", r#"{"tool":"crashy","cost_usd":"free"}"#),
        ("agent-c", r#"{"tool":"delete_repo","cost_usd":1}"#),
    ] {
        let o = fasten(
            dir.path(),
            &[
                "emit",
                "--code",
                "TOOL_CALLED",
                "--actor",
                actor,
                "--actor-kind",
                "agent",
                "--detail",
                detail,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = fasten(
        dir.path(),
        &[
            "emit",
            "--code",
            "ORDER_PLACED",
            "--detail",
            r#"{"cost_usd":99}"#,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let o = fasten(
        dir.path(),
        &[
            "report",
            "--code",
            "TOOL_CALLED",
            "--sum",
            "detail.cost_usd",
            "--by",
            "actor",
            "--since",
            "1h",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "actor    rows  summed  sum(detail.cost_usd)\n\
         agent-c     2       1  1\n\
         agent-b     2       2  0.75\n\
         total       4       3  1.75\n"
    );
    let o = fasten(
        dir.path(),
        &["report", "--sum", "detail.cost_usd", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["total"]["rows"], 5);
    assert_eq!(v["total"]["sum"], 100.75);
    assert_eq!(v["groups"].as_array().unwrap().len(), 1);

    for (args, needle) in [
        (
            vec!["report", "--sum", "cost_usd"],
            "invalid sum \"cost_usd\": expected a detail field",
        ),
        (vec!["report", "--by", "hash"], "invalid by \"hash\""),
        (
            vec!["report", "--since", "yesterday"],
            "invalid since \"yesterday\"",
        ),
        (vec!["report", "--limit", "0"], "invalid limit \"0\""),
    ] {
        let o = fasten(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

// === fasten gen, fasten lint (#19) ===

/// The repository root, where the examples and fixtures are.
fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn issue_19_gen_rust_matches_the_checked_in_example() {
    let yaml = "crates/fasten/examples/codes/sales.codes.yaml";
    let out = fasten(&repo(), &["gen", "--lang", "rust", yaml]);
    assert!(out.status.success(), "{}", stderr(&out));
    let checked_in =
        std::fs::read_to_string(repo().join("crates/fasten/examples/codes/sales.rs")).unwrap();
    assert!(
        stdout(&out) == checked_in,
        "crates/fasten/examples/codes/sales.rs is stale: run fasten gen --lang rust --out crates/fasten/examples/codes/sales.rs {yaml}"
    );
}

#[test]
fn issue_19_gen_is_sorted_deterministic_and_names_its_yaml() {
    let dir = setup();
    for lang in ["rust", "python", "typescript", "go", "cpp"] {
        let once = fasten(dir.path(), &["gen", "--lang", lang, "shop.codes.yaml"]);
        assert!(once.status.success(), "{lang}: {}", stderr(&once));
        let text = stdout(&once);
        assert!(text.contains("fasten gen --lang"), "{lang}: {text}");
        assert!(text.contains("from shop.codes.yaml"), "{lang}: {text}");
        let a = text.find("\"AUTH_LOGIN\"").unwrap();
        let o = text.find("\"ORDER_PLACED\"").unwrap();
        assert!(a < o, "{lang}: codes are sorted");
        assert!(
            text.contains("warn") || text.contains("Warn"),
            "{lang}: the severity is data"
        );
        let twice = fasten(dir.path(), &["gen", "--lang", lang, "shop.codes.yaml"]);
        assert_eq!(text, stdout(&twice), "{lang}: deterministic");
    }
    let out = fasten(dir.path(), &["gen", "--lang", "cobol", "shop.codes.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The EXPECT_CODES text of a generated TypeScript file.
fn expect_codes(dir: &Path) -> String {
    let out = fasten(dir, &["gen", "--lang", "typescript", "shop.codes.yaml"]);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("export const EXPECT_CODES"))
        .unwrap();
    let literal = line.split_once(" = ").unwrap().1.trim_end_matches(';');
    serde_json::from_str(literal).unwrap()
}

#[test]
fn issue_19_boot_fails_when_the_generated_codes_differ() {
    let dir = setup();
    let expected = expect_codes(dir.path());
    let emit = ["emit", "--code", "ORDER_PLACED"];
    let ok = fasten_with(dir.path(), &emit, &[("FASTEN_EXPECT_CODES", &expected)]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // The YAML changes after the code was generated.
    std::fs::write(
        dir.path().join("shop.codes.yaml"),
        "domain: shop\ncodes:\n  ORDER_PLACED:\n    category: order\n    action: create\n  ORDER_SHIPPED:\n    category: order\n    action: ship\n",
    )
    .unwrap();
    let bad = fasten_with(dir.path(), &emit, &[("FASTEN_EXPECT_CODES", &expected)]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        stderr(&bad),
        "fasten: the generated codes do not match the loaded registry (3 differences; run fasten gen again or fix FASTEN_CODES): code AUTH_LOGIN: generated but not in the loaded registry; code ORDER_PLACED: severity generated \"warn\", loaded \"info\" (shop.codes.yaml:3); code ORDER_SHIPPED: loaded (shop.codes.yaml:6) but not generated\n"
    );

    let garbage = fasten_with(dir.path(), &emit, &[("FASTEN_EXPECT_CODES", "nope")]);
    assert_eq!(garbage.status.code(), Some(2));
    assert!(
        stderr(&garbage).contains("invalid FASTEN_EXPECT_CODES"),
        "{}",
        stderr(&garbage)
    );
}

#[test]
fn issue_19_lint_exits_1_on_uncovered_sites_and_writes_sarif() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = repo().join("crates/fasten-lint/tests/fixtures");
    let sarif = dir.path().join("out.sarif");
    let out = fasten(
        &fixtures,
        &["lint", "--sarif", sarif.to_str().unwrap(), "billing.py"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .starts_with("billing.py:11:5  UPDATE without an audit event (in fn update_plan)\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stderr(&out),
        "fasten lint: 1 file, 11 sites: 5 covered, 2 waived, 4 uncovered\n"
    );
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 6);

    // Clean code exits 0; --unused lists the codes nothing mentions.
    std::fs::write(
        dir.path().join("app.py"),
        "import fasten\n\ndef place(cur):\n    cur.execute(\"INSERT INTO orders VALUES (1)\")\n    fasten.emit(\"ORDER_PLACED\")\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("shop.codes.yaml"),
        "domain: shop\ncodes:\n  ORDER_PLACED:\n    category: order\n    action: create\n  ORDER_LOST:\n    category: order\n    action: lose\n",
    )
    .unwrap();
    let out = fasten(dir.path(), &["lint", "app.py"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = fasten(
        dir.path(),
        &["lint", "--unused", "--codes", "shop.codes.yaml", "app.py"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "shop.codes.yaml:6:1  code ORDER_LOST is declared but no source emits it\n"
    );
}

/// Issue 22: a code file that does not parse is reported with its file,
/// line and column, then the parser's reason, each once.
#[test]
fn issue_22_a_bad_code_file_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.codes.yaml"),
        "domain: shop\ncodes:\n  ORDER_PLACED:\n    category: order\n    action: create\n    severity: loud\n",
    )
    .unwrap();
    let out = fasten(dir.path(), &["dump"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "fasten: loading codes from shop.codes.yaml: shop.codes.yaml:6:15: cannot parse the code file: codes.ORDER_PLACED.severity: invalid severity \"loud\": expected one of debug, info, warn, error, critical at line 6 column 15\n"
    );
}
