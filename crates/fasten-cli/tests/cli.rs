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

#[test]
fn emit_and_verify_against_postgres() {
    let url = std::env::var("FASTEN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut admin = match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but PostgreSQL is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL at {url} is unreachable: {e}");
            return;
        }
    };
    let schema = format!("fasten_cli_{:016x}", rand::random::<u64>());
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
    let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
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
    let out = fasten(dir.path(), &["verify-pack", "pack"]);
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

#[test]
fn issue_8_run_gives_a_scripts_steps_one_request_id() {
    let dir = setup();
    let bin = env!("CARGO_BIN_EXE_fasten");
    let script = r#"set -e
"$FASTEN_BIN" emit --code AUTH_LOGIN
"$FASTEN_BIN" emit --code ORDER_PLACED --target order-1
echo "child=$FASTEN_REQUEST_ID"
exit 3"#;
    let out = fasten_with(
        dir.path(),
        &["run", "--print-id", "--", "sh", "-c", script],
        &[("FASTEN_BIN", bin)],
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
