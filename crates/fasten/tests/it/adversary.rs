//! The attacks of issue 13, one test per item: each plays the attacker
//! against a real store (SQLite, and PostgreSQL where the item touches the
//! store) and checks that fasten notices or refuses.

use std::path::PathBuf;
use std::time::Duration;

use fasten::{Config, Dsn, Event, transparency};
use serde_json::json;

use super::support::registry;

const SECS: Duration = Duration::from_secs(20);

/// A store the attacker can write to directly.
enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    #[cfg(feature = "postgres")]
    Pg(Box<super::postgres::Schema>),
}

impl Db {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        Self::Sqlite { _dir: dir, path }
    }

    /// Every store this build can test: SQLite, and PostgreSQL when the
    /// feature is on (under `CI` a missing server fails the test).
    fn all() -> Vec<Self> {
        #[allow(unused_mut)]
        let mut dbs = vec![Self::sqlite()];
        #[cfg(feature = "postgres")]
        if let Some(schema) = super::postgres::Schema::new() {
            dbs.push(Self::Pg(Box::new(schema)));
        }
        dbs
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            #[cfg(feature = "postgres")]
            Self::Pg(_) => "postgres",
        }
    }

    fn dsn(&self) -> Dsn {
        match self {
            Self::Sqlite { path, .. } => super::support::dsn(path),
            #[cfg(feature = "postgres")]
            Self::Pg(schema) => schema.dsn("audit_log"),
        }
    }

    fn table(&self) -> String {
        match self {
            Self::Sqlite { .. } => "audit_log".to_owned(),
            #[cfg(feature = "postgres")]
            Self::Pg(schema) => format!("{}.audit_log", schema.name),
        }
    }

    fn config(&self, node: &str) -> Config {
        Config::new()
            .service_id("it-adv")
            .node_id(node)
            .audit_dsn(self.dsn())
            .registry(registry())
            .stdout(fasten::Stdout::NONE)
    }

    /// The attacker's write access: plain SQL against the table.
    fn sql(&mut self, sql: &str) {
        let sql = sql.replace("{t}", &self.table());
        match self {
            Self::Sqlite { path, .. } => {
                rusqlite::Connection::open(&*path)
                    .unwrap()
                    .execute_batch(&sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            #[cfg(feature = "postgres")]
            Self::Pg(schema) => schema.sql(&sql),
        }
    }

    /// Copies the row `id` as a new row `new_id` with the given seq, the
    /// way an attacker plants a row: every other column as the original.
    fn plant(&mut self, id: &str, new_id: &str, seq: &str) {
        let cols = "origin_id, timestamp, code, action, severity, outcome, service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id, detail, detail_salt, detail_commitment, pii_in_detail, shipped_at, wire_version, canonical_form_id, prev_hash, hash";
        self.sql(&format!(
            "INSERT INTO {{t}} (id, monotonic_seq, {cols}) SELECT '{new_id}', {seq}, {cols} FROM {{t}} WHERE id = '{id}'"
        ));
    }
}

/// Writes `n` rows on `node` and returns them as sealed.
fn write(db: &Db, node: &str, n: usize) -> Vec<fasten::Row> {
    let fasten = db.config(node).build().unwrap();
    let rows = (0..n)
        .map(|i| {
            fasten
                .emit_durable(Event::new("USER_CREATED").detail(json!({ "i": i })))
                .unwrap()
        })
        .collect();
    fasten.shutdown(SECS).unwrap();
    rows
}

// 1. Rows outside the verified range.
#[test]
fn rows_outside_the_verified_range_fail_verification_naming_the_row() {
    for mut db in Db::all() {
        let rows = write(&db, "n1", 3);
        // A copy of a good row, any content, at a seq below the chain.
        let mut planted: Vec<(&str, &str)> = vec![("planted-zero", "0"), ("planted-neg", "-5")];
        if db.kind() == "sqlite" {
            // SQLite keeps whatever type it is given.
            planted.extend([("planted-real", "1.5"), ("planted-text", "'seven'")]);
        }
        for (id, seq) in planted {
            db.plant(&rows[0].id, id, seq);
            let report = fasten::verify(&db.dsn()).unwrap();
            assert!(!report.ok, "{}: seq {seq} passed: {report:?}", db.kind());
            assert!(
                format!("{report:?}").contains(id),
                "{}: the verdict does not name {id}: {report:?}",
                db.kind()
            );
            // verify --checkpoints reads the same pass.
            let (report, _) =
                transparency::verify_with_checkpoints(&db.dsn(), &[], &[], |_| {}).unwrap();
            assert!(
                !report.ok,
                "{}: seq {seq} passed with checkpoints",
                db.kind()
            );
            // The reader's verify is the same verdict.
            let reader = fasten::Reader::new(db.dsn());
            assert!(!reader.verify().unwrap().ok, "{}: /audit/verify", db.kind());
            db.sql(&format!("DELETE FROM {{t}} WHERE id = '{id}'"));
            assert!(fasten::verify(&db.dsn()).unwrap().ok, "{}", db.kind());
        }
        // A row whose node has no chain start: a node made only of a row
        // that claims to continue some chain.
        db.plant(&rows[2].id, "orphan", "4");
        db.sql("UPDATE {t} SET source_node_id = 'n2' WHERE id = 'orphan'");
        let report = fasten::verify(&db.dsn()).unwrap();
        assert!(!report.ok, "{}: {report:?}", db.kind());
        let n2 = report
            .nodes
            .iter()
            .find(|n| n.source_node_id == "n2")
            .unwrap();
        assert_eq!(n2.first_break_seq, Some(1), "{}: {report:?}", db.kind());
    }
}

// 2. Sequence overflow.
#[test]
fn a_tip_at_i64_max_is_a_counted_store_error_that_never_wedges_the_writer() {
    for mut db in Db::all() {
        let rows = write(&db, "n1", 1);
        db.plant(&rows[0].id, "planted-max", &i64::MAX.to_string());
        let fasten = db.config("n1").build().unwrap();
        // It returns (an error, not a retry loop); no wall-clock bound.
        let err = fasten.emit_durable(Event::new("USER_CREATED")).unwrap_err();
        assert!(
            err.to_string().contains("cannot be continued"),
            "{}: {err}",
            db.kind()
        );
        let stats = fasten.queue_stats();
        assert_eq!(stats.chain_exhausted, 1, "{}: {stats:?}", db.kind());
        assert_eq!(stats.failed, 1, "{}: {stats:?}", db.kind());
        // The writer is not wedged: once the planted row is gone it writes on.
        db.sql("DELETE FROM {t} WHERE id = 'planted-max'");
        let row = fasten.emit_durable(Event::new("USER_CREATED")).unwrap();
        assert_eq!(row.monotonic_seq, 2, "{}", db.kind());
        fasten.shutdown(SECS).unwrap();
        assert!(fasten::verify(&db.dsn()).unwrap().ok, "{}", db.kind());
    }
}

// 3. Duplicate JSON keys.
#[test]
fn a_detail_with_a_repeated_key_fails_verification_and_is_not_served() {
    // SQLite keeps the text as written; PostgreSQL's JSONB keeps one value
    // (the last), so there the text every reader sees is the one verified.
    let mut db = Db::sqlite();
    let rows = write(&db, "n1", 2);
    // The verifier (serde_json) keeps the last "i", json_extract the first.
    db.sql(&format!(
        "UPDATE {{t}} SET detail = '{{\"i\":999999,\"i\":0}}' WHERE id = '{}'",
        rows[0].id
    ));
    let report = fasten::verify(&db.dsn()).unwrap();
    assert!(!report.ok, "{report:?}");
    assert!(
        format!("{report:?}").contains("duplicate key"),
        "{report:?}"
    );
    let reader = fasten::Reader::new(db.dsn());
    assert!(reader.audit_row(&rows[0].id).is_err());
    // Incoming JSON too: the contract's parser refuses it.
    assert!(fasten::contract::parse_json(r#"{"i":999999,"i":5}"#).is_err());
}

// 4. Nodes with no checkpoint.
#[test]
fn a_node_no_checkpoint_covers_is_reported() {
    for db in Db::all() {
        write(&db, "covered", 3);
        let keys = transparency::generate_key("it.example/adv").unwrap();
        let signed = transparency::sign_checkpoints(&db.dsn(), &keys.signing_key).unwrap();
        let notes: Vec<(String, String)> = signed
            .iter()
            .map(|c| (c.node.clone(), c.note.clone()))
            .collect();
        write(&db, "uncovered", 2);
        let (report, checks) = transparency::verify_with_checkpoints(
            &db.dsn(),
            &notes,
            std::slice::from_ref(&keys.verifier_key),
            |_| {},
        )
        .unwrap();
        assert!(checks.iter().all(|c| c.reason.is_none()), "{checks:?}");
        assert_eq!(
            report.uncovered_nodes,
            vec!["uncovered".to_owned()],
            "{}",
            db.kind()
        );
    }
}

// 6. Path traversal through node ids.
#[test]
fn node_ids_cannot_climb_out_of_the_checkpoint_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("published");
    std::fs::create_dir(&dir).unwrap();
    let live = Db::sqlite();
    for node in [
        "z/../n1",
        "../escaped",
        "..",
        ".",
        "/tmp/abs",
        ".hidden",
        "a\\b",
    ] {
        let err = transparency::publish(&dir, node, 1, "note\n").unwrap_err();
        assert!(err.to_string().contains("node"), "{node}: {err}");
        let err = Config::new()
            .service_id("s")
            .node_id(node)
            .audit_dsn(live.dsn())
            .registry(registry())
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                fasten::ErrorKind::Config {
                    var: "FASTEN_NODE_ID"
                }
            ),
            "{node}: {err}"
        );
    }
    assert!(!root.path().join("escaped").exists());
    assert!(!dir.join("n1").exists());
    // A planted row with such a node id fails verification.
    for mut db in Db::all() {
        let rows = write(&db, "n1", 1);
        db.plant(&rows[0].id, "planted-dots", "2");
        db.sql("UPDATE {t} SET source_node_id = '..' WHERE id = 'planted-dots'");
        let report = fasten::verify(&db.dsn()).unwrap();
        let bad = report
            .nodes
            .iter()
            .find(|n| n.source_node_id == "..")
            .unwrap();
        assert!(
            bad.reason
                .as_deref()
                .is_some_and(|r| r.contains("not a valid node id")),
            "{}: {report:?}",
            db.kind()
        );
    }
}

// 7. The witness on the writer's thread.
#[cfg(feature = "witness")]
#[test]
fn an_unreachable_witness_never_holds_up_rows() {
    // A witness that takes the connection and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Holds the connections it takes until the test ends (the sender is
    // dropped), not for a fixed time.
    let (done, until_done) = std::sync::mpsc::channel::<()>();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4) {
            held.push(stream);
        }
        let _ = until_done.recv();
    });
    let db = Db::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let keys = transparency::generate_key("it.example/adv").unwrap();
    std::fs::write(dir.path().join("signing.key"), &keys.signing_key).unwrap();
    let fasten = db
        .config("n1")
        .signing_key(dir.path().join("signing.key"))
        .checkpoint_every(1)
        .audit_batch_size(1)
        .checkpoint_witness_url(format!("http://{addr}/add-checkpoint"))
        .build()
        .unwrap();
    // The witness never answers: had rows waited for it, these durable
    // emits would not return before the holder thread lets go.
    for _ in 0..5 {
        fasten.emit_durable(Event::new("USER_CREATED")).unwrap();
    }
    fasten.flush(SECS).unwrap();
    // The witness's failures are counted, off the writer's thread.
    super::support::wait_until("a witness failure to be counted", || {
        fasten.queue_stats().witness_failures > 0
    });
    fasten.shutdown(SECS).unwrap();
    drop(done);
    drop(hold);
}

// 8. DSN passwords.
#[test]
fn dsn_passwords_never_show_in_errors_health_or_json() {
    // Characters that used to end the masked part early, and an uppercase
    // parameter that a parse error echoed.
    for (dsn, secret) in [
        ("postgres://app:Zq9pa/ss@127.0.0.1:1/db", "Zq9pa/ss"),
        ("postgres://app:Zq9pa?ss@127.0.0.1:1/db", "Zq9pa?ss"),
        ("postgres://app:Zq9p@ss@127.0.0.1:1/db", "Zq9p@ss"),
        ("postgres://app:Zq9p%2Fss@127.0.0.1:1/db", "Zq9p%2Fss"),
        (
            "postgres://app@127.0.0.1:1/db?PASSWORD=Zq9hunter",
            "Zq9hunter",
        ),
        (
            "postgres://app@127.0.0.1:1/db?PASSWORD=Zq9hunter&sslmode=require",
            "Zq9hunter",
        ),
    ] {
        let started = Config::from_pairs([
            ("FASTEN_SERVICE_ID", "s"),
            ("FASTEN_NODE_ID", "n1"),
            ("FASTEN_AUDIT_DSN", dsn),
        ])
        .and_then(|c| c.registry(registry()).build());
        let shown = match started {
            Ok(_) => panic!("{dsn}: no server listens on port 1"),
            Err(e) => format!("{e} {e:?}"),
        };
        assert!(!shown.contains(secret), "{dsn}: {shown}");
        if let Ok(parsed) = Dsn::parse("FASTEN_AUDIT_DSN", dsn) {
            let health = fasten::Reader::new(parsed.clone()).health();
            let json = serde_json::to_string(&health).unwrap();
            assert!(!json.contains(secret), "{dsn}: {json}");
            assert!(!format!("{parsed} {parsed:?}").contains(secret), "{dsn}");
        }
    }
}

// 9. Redaction gaps.
#[test]
fn secrets_never_reach_a_row() {
    let jwt = [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    ]
    .join(".");
    let db = Db::sqlite();
    let fasten = db.config("n1").build().unwrap();
    // actor and target are hashed: a secret there is refused, naming the field.
    for (event, field) in [
        (
            Event::new("USER_CREATED").actor(jwt.clone(), fasten::ActorKind::User),
            "actor",
        ),
        (
            Event::new("USER_CREATED").target(format!("Bearer%20{jwt}")),
            "target",
        ),
        (
            Event::new("USER_CREATED").target("https://u:Zq9pass@host/x"),
            "target",
        ),
    ] {
        let err = fasten.emit(event).unwrap_err();
        assert_eq!(
            err.kind(),
            &fasten::ErrorKind::InvalidEvent { field },
            "{err}"
        );
    }
    let row = fasten
        .emit_durable(Event::new("USER_CREATED").detail(json!({
            jwt.clone(): "as a key",
            "card": 4_111_111_111_111_111_u64,
            "url": "postgres://app:Zq9hunter@db/app",
            "note": format!("Bearer%20{}", jwt.replace('.', "%2E")),
            "pin": "Zq9-1234", "otpCode": "Zq9-5678", "pwd": "Zq9-pwd", "pass": "Zq9-pass",
            "passphrase": "Zq9-phrase", "auth": "Zq9-auth", "signing_key": "Zq9-sk",
            "database_url": "Zq9-db", "api:key": "Zq9-apikey",
        })))
        .unwrap();
    let stored = serde_json::to_string(&row.detail).unwrap();
    for secret in ["eyJ", "4111111111111111", "Zq9"] {
        assert!(!stored.contains(secret), "{secret} in {stored}");
    }
    // sys messages and api paths are scanned like values.
    fasten.log(fasten::record::LogLine::new("warn", format!("login with {jwt}")).unwrap());
    let api = fasten::record::ApiRecord::new(
        fasten::RequestId::mint(),
        "GET",
        &format!("/reset/{jwt}"),
        200,
        Duration::from_millis(1),
    )
    .unwrap();
    fasten.record_api(api);
    let sys = fasten.sys_rows(&fasten::StreamQuery::new(10)).unwrap();
    let api = fasten.api_rows(&fasten::StreamQuery::new(10)).unwrap();
    let text = format!("{:?} {:?}", sys.rows, api.rows);
    assert!(!text.contains("eyJ"), "{text}");
    assert!(
        sys.rows.iter().any(|r| r.message == "[REDACTED:jwt]"),
        "{text}"
    );
    fasten.shutdown(SECS).unwrap();
}

// 10. The reader under load.
#[cfg(all(feature = "http-reader", feature = "tracing"))]
#[test]
fn the_reader_bounds_pages_says_no_store_and_logs_failed_auth() {
    use fasten::http_reader::{self, Auth, Options};
    const TOKEN: &str = "tok-adversary-0123456789";
    let db = Db::sqlite();
    let fasten = db.config("n1").max_detail_bytes(300_000).build().unwrap();
    // 40 rows of about 200 KB each: 8 MB in one page of 1,000 rows before.
    let big = "x".repeat(200_000);
    for i in 0..40 {
        fasten
            .emit(Event::new("USER_CREATED").detail(json!({ "i": i, "blob": big })))
            .unwrap();
    }
    fasten.flush(SECS).unwrap();
    let reader = fasten::Reader::from_pipeline(&fasten);
    let mut seen = std::collections::HashSet::new();
    let mut q = fasten::AuditQuery::new(1000);
    loop {
        let page = reader.audit(&q).unwrap();
        let bytes: usize = page
            .rows
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len())
            .sum();
        assert!(
            bytes <= fasten::query::MAX_PAGE_BYTES + 210_000,
            "a page of {bytes} bytes"
        );
        seen.extend(page.rows.iter().map(|r| r.id.clone()));
        match page.next {
            Some(next) => q = fasten::AuditQuery::new(1000).cursor(&next).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 40, "paging by bytes loses no row");

    let router = http_reader::router(
        fasten::Reader::from_pipeline(&fasten),
        Options::new(Auth::bearer_tokens([TOKEN]).unwrap()),
    );
    let served = super::reader::Served::start(axum::Router::new().nest("/logs", router));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |auth: &str| {
        let res = agent
            .get(format!("{}/audit?limit=1", served.base()))
            .header("authorization", auth)
            .call()
            .unwrap();
        let h = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            res.status().as_u16(),
            h("cache-control"),
            h("x-content-type-options"),
        )
    };
    // Any case of the scheme.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (status, cache, sniff) = get(&format!("{scheme} {TOKEN}"));
        assert_eq!(status, 200, "{scheme}");
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert_eq!(sniff.as_deref(), Some("nosniff"));
    }
    let wrong = "tok-wrong-Zq9Zq9Zq9Zq9Zq9";
    let (status, cache, sniff) = get(&format!("Bearer {wrong}"));
    assert_eq!(status, 401);
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(sniff.as_deref(), Some("nosniff"));
    // The failure is a sys row, without the token.
    let sys = fasten.sys_rows(&fasten::StreamQuery::new(100)).unwrap();
    let failed: Vec<_> = sys
        .rows
        .iter()
        .filter(|r| r.message.contains("authentication failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", sys.rows);
    assert!(!format!("{:?}", sys.rows).contains("Zq9Zq9"));
    fasten.shutdown(SECS).unwrap();
}

// Smaller items: proofs refuse rows outside the chain.
#[test]
fn proofs_refuse_a_row_outside_the_chain() {
    for mut db in Db::all() {
        let rows = write(&db, "n1", 3);
        let keys = transparency::generate_key("it.example/adv").unwrap();
        transparency::sign_checkpoints(&db.dsn(), &keys.signing_key).unwrap();
        assert!(transparency::prove_row(&db.dsn(), &rows[1].id).is_ok());
        for (id, seq) in [("planted-zero", "0"), ("planted-neg", "-7")] {
            db.plant(&rows[0].id, id, seq);
            let err = transparency::prove_row(&db.dsn(), id).unwrap_err();
            assert!(
                err.to_string().contains("outside its chain"),
                "{}: {err}",
                db.kind()
            );
        }
    }
}

// Smaller items: PostgreSQL table names whose index names pass 63 bytes.
#[test]
fn a_postgres_table_name_that_would_lose_its_unique_index_is_refused() {
    let table = "t".repeat(55);
    let err = Dsn::parse(
        "FASTEN_AUDIT_DSN",
        &format!("postgres://postgres@127.0.0.1:5432/test?table={table}"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            fasten::ErrorKind::Config {
                var: "FASTEN_AUDIT_DSN"
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("too long for PostgreSQL"), "{err}");
}

// Smaller items: new files are the owner's alone; a loose key is warned about.
#[cfg(unix)]
#[test]
fn new_store_and_checkpoint_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    // A permissive umask must not make them readable by others.
    let db = root.path().join("new/dir/audit.db");
    let keys = transparency::generate_key("it.example/adv").unwrap();
    let key = root.path().join("signing.key");
    std::fs::write(&key, &keys.signing_key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let published = root.path().join("published");
    let fasten = super::support::config(&db, "n1")
        .signing_key(&key)
        .checkpoint_dir(&published)
        .stdout(fasten::Stdout::NONE)
        .build()
        .unwrap();
    fasten.emit_durable(Event::new("USER_CREATED")).unwrap();
    fasten.flush(SECS).unwrap();
    let sys = fasten.sys_rows(&fasten::StreamQuery::new(100)).unwrap();
    assert!(
        sys.rows
            .iter()
            .any(|r| r.message.contains("can be read by others")),
        "{:?}",
        sys.rows
    );
    fasten.shutdown(SECS).unwrap();
    assert_eq!(mode(&db), 0o600, "database");
    assert_eq!(mode(db.parent().unwrap()), 0o700, "its new directory");
    let node_dir = published.join("n1");
    assert_eq!(mode(&node_dir), 0o700, "checkpoint directory");
    for file in std::fs::read_dir(&node_dir).unwrap() {
        let path = file.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}
