//! Retention sweeps, erasure on request and legal hold, on both stores,
//! with a controlled clock: `SweepOptions::now` sets what "now" is, rows
//! keep the real time they were sealed at.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use fasten::code::{Meta, Registry};
use fasten::retention::{Erasure, HoldReason, SweepOptions};
use fasten::{ActorKind, Config, Dsn, ErrorKind, Event, Fasten, RetentionClass, Row};
use serde_json::json;

const DAY: Duration = Duration::from_secs(86_400);
const MICRO: Duration = Duration::from_micros(1);
const SECS: Duration = Duration::from_secs(20);

fn registry() -> Registry {
    let r = Registry::new();
    r.register(
        "shop",
        [
            (
                "CART_TOUCHED",
                Meta::new("cart", "update").retention(RetentionClass::Short),
            ),
            ("ORDER_PLACED", Meta::new("order", "create")),
            (
                "INVOICE_ISSUED",
                Meta::new("invoice", "create").retention(RetentionClass::Long),
            ),
            ("CUSTOMER_SEEN", Meta::new("customer", "read").pii(["id"])),
        ],
    )
    .unwrap();
    r
}

/// A store the test can poke at directly, beside the pipeline.
enum Db {
    Sqlite(tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Pg(Box<super::postgres::Schema>),
}

impl Db {
    fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    #[cfg(feature = "postgres")]
    fn pg() -> Option<Self> {
        super::postgres::Schema::new().map(|s| Self::Pg(Box::new(s)))
    }

    fn dsn(&self) -> Dsn {
        match self {
            Self::Sqlite(dir) => super::support::dsn(&dir.path().join("audit.db")),
            #[cfg(feature = "postgres")]
            Self::Pg(schema) => schema.dsn("audit_log"),
        }
    }

    fn config(&self) -> Config {
        Config::new()
            .service_id("it-retention")
            .node_id("node-r")
            .audit_dsn(self.dsn())
            .registry(registry())
            .retention_sweep_interval(None)
    }

    /// Runs `sql` (with one text parameter) and returns the first column
    /// of each row as text.
    fn query(&self, sql: &str, param: &str) -> Vec<String> {
        match self {
            Self::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
                let sql = sql
                    .replace("$1", "?1")
                    .replace("audit_log", "\"audit_log\"");
                let mut stmt = conn.prepare(&sql).unwrap();
                stmt.query_map([param], |r| r.get::<_, String>(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            #[cfg(feature = "postgres")]
            Self::Pg(schema) => {
                let mut client =
                    postgres::Client::connect(&super::postgres::base_url(), postgres::NoTls)
                        .unwrap();
                let sql = sql.replace("audit_log", &format!("{}.audit_log", schema.name));
                client
                    .query(&sql, &[&param])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            }
        }
    }

    fn erased(&self) -> HashSet<String> {
        self.query(
            "SELECT id FROM audit_log WHERE detail IS NULL AND detail_salt IS NULL AND id <> $1",
            "",
        )
        .into_iter()
        .collect()
    }

    fn ship(&self, id: &str) {
        let sql = match self {
            Self::Sqlite(_) => {
                "UPDATE audit_log SET shipped_at = '2026-01-01T00:00:00.000000Z' WHERE id = $1 RETURNING id"
            }
            #[cfg(feature = "postgres")]
            Self::Pg(_) => "UPDATE audit_log SET shipped_at = now() WHERE id = $1 RETURNING id",
        };
        assert_eq!(self.query(sql, id).len(), 1);
    }

    /// The details of the rows of `code`, in chain order, as JSON text.
    fn details(&self, code: &str) -> Vec<serde_json::Value> {
        let cast = match self {
            Self::Sqlite(_) => "detail",
            #[cfg(feature = "postgres")]
            Self::Pg(_) => "detail::text",
        };
        self.query(
            &format!("SELECT {cast} FROM audit_log WHERE code = $1 ORDER BY monotonic_seq"),
            code,
        )
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
    }

    fn verify(&self, erased: u64) {
        let report = fasten::verify(&self.dsn()).unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.nodes[0].erased, erased, "{report:?}");
    }
}

fn at(row: &Row) -> SystemTime {
    sys(row.timestamp.parse().unwrap())
}

fn sys(ts: jiff::Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(ts.as_microsecond()).unwrap())
}

fn sweep_at(fasten: &Fasten, now: SystemTime) -> fasten::retention::SweepReport {
    fasten.sweep(&SweepOptions::new().now(now)).unwrap()
}

fn emit(fasten: &Fasten, code: &'static str, detail: serde_json::Value) -> Row {
    fasten
        .emit_durable(
            Event::new(code)
                .actor("u-1", ActorKind::User)
                .detail(detail),
        )
        .unwrap()
}

// === each class erased exactly when due ===

fn classes_are_erased_exactly_when_due(db: &Db) {
    let fasten = db.config().build().unwrap();
    let short = emit(&fasten, "CART_TOUCHED", json!({"items": 3}));
    let pii = emit(&fasten, "CUSTOMER_SEEN", json!({"email": "a@b.example"}));
    let medium = emit(&fasten, "ORDER_PLACED", json!({"total": 10}));
    let long = emit(&fasten, "INVOICE_ISSUED", json!({"number": "I-1"}));
    let mut erased = HashSet::new();
    let mut sweeps = 0;
    for (row, days) in [(&short, 30), (&pii, 30), (&medium, 180), (&long, 3 * 365)] {
        let due = at(row) + DAY * days;
        let before = sweep_at(&fasten, due - MICRO);
        sweeps += 1;
        assert_eq!(db.erased(), erased, "{} erased before it was due", row.code);
        assert_eq!(before.erased, 0);
        db.verify(erased.len() as u64);
        let report = sweep_at(&fasten, due);
        sweeps += 1;
        erased.insert(row.id.clone());
        assert_eq!(db.erased(), erased, "{} not erased when due", row.code);
        assert_eq!(report.erased, 1);
        assert_eq!(report.codes.len(), 1);
        assert_eq!(report.codes[0].code, row.code);
        let class = if days == 30 {
            RetentionClass::Short
        } else if days == 180 {
            RetentionClass::Medium
        } else {
            RetentionClass::Long
        };
        assert_eq!(report.codes[0].retention_class, class);
        assert_eq!(report.codes[0].ranges[0].first_seq, row.monotonic_seq);
        assert_eq!(report.codes[0].ranges[0].last_seq, row.monotonic_seq);
        db.verify(erased.len() as u64);
    }
    // One chained event per sweep, saying what it erased.
    let events = db.details("AUDIT_RETENTION_SWEPT");
    assert_eq!(events.len(), sweeps);
    let erased_per_event: Vec<u64> = events
        .iter()
        .map(|e| e["erased"].as_u64().unwrap())
        .collect();
    assert_eq!(erased_per_event, [0, 1, 0, 1, 0, 1, 0, 1]);
    assert_eq!(events[1]["codes"][0]["code"], "CART_TOUCHED");
    assert_eq!(
        events[1]["codes"][0]["ranges"][0]["source_node_id"],
        "node-r"
    );
    fasten.shutdown(SECS).unwrap();
    // Sweep events are long-lived rows of their own, chained like the rest.
    let report = fasten::verify(&db.dsn()).unwrap();
    assert_eq!(report.nodes[0].rows, 4 + sweeps as u64);
}

#[test]
fn sqlite_classes_are_erased_exactly_when_due() {
    classes_are_erased_exactly_when_due(&Db::sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_classes_are_erased_exactly_when_due() {
    if let Some(db) = Db::pg() {
        classes_are_erased_exactly_when_due(&db);
    }
}

// === overrides, unknown codes, personal data ===

#[test]
fn overrides_apply_and_pii_rows_are_short() {
    let db = Db::sqlite();
    let fasten = db
        .config()
        .audit_retention_override("medium=1y,short=1w")
        .unwrap()
        .build()
        .unwrap();
    let medium = emit(&fasten, "ORDER_PLACED", json!({"total": 1}));
    let short = emit(&fasten, "CART_TOUCHED", json!({"items": 1}));
    let pii = emit(&fasten, "CUSTOMER_SEEN", json!({"email": "x@y.example"}));
    assert_eq!(sweep_at(&fasten, at(&medium) + DAY * 364).erased, 2);
    assert_eq!(
        db.erased(),
        HashSet::from([short.id.clone(), pii.id.clone()])
    );
    assert_eq!(sweep_at(&fasten, at(&medium) + DAY * 365).erased, 1);
    fasten.shutdown(SECS).unwrap();
}

/// Two services with their own registries share one store: each one's
/// sweep erases only rows of its own service, by its own classes, and a
/// sweep that covers every service (an operator's) erases only codes its
/// registry declares; the others are counted as held, never erased.
fn two_services_share_a_store(db: &Db) {
    // A keeps orders for three years; B declares the same code as short.
    let a = db.config().service_id("svc-a").build().unwrap();
    let b_registry = Registry::new();
    b_registry
        .register(
            "shop",
            [(
                "ORDER_PLACED",
                Meta::new("order", "create").retention(RetentionClass::Short),
            )],
        )
        .unwrap();
    let b = Config::new()
        .service_id("svc-b")
        .node_id("node-b")
        .audit_dsn(db.dsn())
        .registry(b_registry)
        .retention_sweep_interval(None)
        .build()
        .unwrap();
    let a_order = emit(&a, "ORDER_PLACED", json!({"n": 1}));
    let a_invoice = emit(&a, "INVOICE_ISSUED", json!({"n": 2}));
    let b_order = emit(&b, "ORDER_PLACED", json!({"n": 3}));

    // B's own sweep, two years on: only B's row, though B thinks the code short.
    let report = sweep_at(&b, at(&a_order) + DAY * 730);
    assert_eq!(report.erased, 1, "{report:?}");
    assert_eq!(db.erased(), HashSet::from([b_order.id.clone()]));
    assert!(report.held.is_empty(), "{report:?}");

    // An operator's sweep as B over every service: A's INVOICE_ISSUED is
    // unknown to B, so it is counted and kept; ORDER_PLACED is B's to judge.
    let report = b
        .sweep(
            &SweepOptions::new()
                .now(at(&a_order) + DAY * 730)
                .all_services(true)
                .dry_run(true),
        )
        .unwrap();
    assert_eq!(report.erased, 1, "{report:?}");
    assert_eq!(
        report
            .held
            .iter()
            .map(|h| (h.code.as_str(), h.reason, h.rows))
            .collect::<Vec<_>>(),
        [("INVOICE_ISSUED", HoldReason::UnknownCode, 1)]
    );

    // A's own sweep judges A's rows by A's classes: the order is medium.
    sweep_at(&a, at(&a_order) + DAY * 179);
    assert!(!db.erased().contains(&a_order.id));
    sweep_at(&a, at(&a_order) + DAY * 181);
    assert!(db.erased().contains(&a_order.id));
    assert!(!db.erased().contains(&a_invoice.id), "long: three years");
    a.shutdown(SECS).unwrap();
    b.shutdown(SECS).unwrap();
    let report = fasten::verify(&db.dsn()).unwrap();
    assert!(report.ok, "{report:?}");
}

/// Another node's lease on the same sweep makes this node skip it (no
/// repeated work, no event); an expired lease is taken over.
fn a_held_lease_skips_the_sweep(db: &Db) {
    let fasten = db.config().build().unwrap();
    let row = emit(&fasten, "CART_TOUCHED", json!({"n": 1}));
    let later = at(&row) + DAY * 31;
    let hold = |expires: &str| {
        let sql = "INSERT INTO leases (name, holder, expires_at) VALUES ('retention sweep it-retention', 'node-x/1', $1) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at RETURNING name";
        match db {
            Db::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
                conn.query_row(
                    &sql.replace("leases", "\"audit_log_leases\"")
                        .replace("$1", "?1"),
                    [expires],
                    |r| r.get::<_, String>(0),
                )
                .unwrap();
            }
            #[cfg(feature = "postgres")]
            Db::Pg(schema) => {
                let mut client =
                    postgres::Client::connect(&super::postgres::base_url(), postgres::NoTls)
                        .unwrap();
                let sql = sql.replacen("leases", &format!("{}.audit_log_leases", schema.name), 1);
                client.query(&sql, &[&expires]).unwrap();
            }
        }
    };
    hold("9999-01-01T00:00:00.000000Z");
    let report = sweep_at(&fasten, later);
    assert_eq!(report.erased, 0, "{report:?}");
    assert!(
        report
            .skipped
            .as_deref()
            .unwrap()
            .contains("another node holds the lease"),
        "{report:?}"
    );
    assert!(report.event_id.is_none());
    assert!(db.erased().is_empty());
    hold("2000-01-01T00:00:00.000000Z");
    let report = sweep_at(&fasten, later);
    assert_eq!(
        (report.erased, report.skipped.as_deref()),
        (1, None),
        "{report:?}"
    );
    assert!(db.erased().contains(&row.id));
    fasten.shutdown(SECS).unwrap();
}

#[test]
fn sqlite_a_held_lease_skips_the_sweep() {
    a_held_lease_skips_the_sweep(&Db::sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_a_held_lease_skips_the_sweep() {
    if let Some(db) = Db::pg() {
        a_held_lease_skips_the_sweep(&db);
    }
}

#[test]
fn sqlite_two_services_share_a_store() {
    two_services_share_a_store(&Db::sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_two_services_share_a_store() {
    if let Some(db) = Db::pg() {
        two_services_share_a_store(&db);
    }
}

// === shipping and legal hold ===

fn unshipped_and_held_rows_are_kept(db: &Db) {
    let fasten = db
        .config()
        .audit_legal_hold(["INVOICE_ISSUED"])
        .audit_legal_hold_tenants(["t-held"])
        .build()
        .unwrap();
    let shipped = emit(&fasten, "ORDER_PLACED", json!({"n": 1}));
    let unshipped = emit(&fasten, "ORDER_PLACED", json!({"n": 2}));
    let held_code = emit(&fasten, "INVOICE_ISSUED", json!({"n": 3}));
    let held_tenant = fasten
        .emit_durable(
            Event::new("CART_TOUCHED")
                .tenant("t-held")
                .detail(json!({"n": 4})),
        )
        .unwrap();
    let free = fasten
        .emit_durable(
            Event::new("CART_TOUCHED")
                .tenant("t-free")
                .detail(json!({"n": 5})),
        )
        .unwrap();
    db.ship(&shipped.id);
    db.ship(&held_code.id);
    db.ship(&held_tenant.id);
    db.ship(&free.id);
    let far = at(&free) + DAY * 4000;
    let dry = fasten
        .sweep(&SweepOptions::new().now(far).dry_run(true))
        .unwrap();
    assert!(dry.dry_run && dry.event_id.is_none());
    assert_eq!(dry.erased, 2);
    assert!(db.erased().is_empty(), "a dry run erases nothing");
    let report = sweep_at(&fasten, far);
    assert_eq!(report.erased, 2);
    assert_eq!(db.erased(), HashSet::from([shipped.id, free.id]));
    let held: Vec<(String, HoldReason, u64)> = report
        .held
        .iter()
        .map(|h| (h.code.clone(), h.reason, h.rows))
        .collect();
    assert_eq!(
        held,
        [
            ("CART_TOUCHED".to_owned(), HoldReason::LegalHoldTenant, 1),
            ("INVOICE_ISSUED".to_owned(), HoldReason::LegalHoldCode, 1),
            ("ORDER_PLACED".to_owned(), HoldReason::Unshipped, 1),
        ]
    );
    assert_eq!(dry.held, report.held);
    let event = &db.details("AUDIT_RETENTION_SWEPT")[0];
    assert_eq!(event["held"][2]["reason"], "unshipped");
    db.verify(2);
    // Once shipped, the row goes at the next sweep.
    db.ship(&unshipped.id);
    assert_eq!(sweep_at(&fasten, far).erased, 1);
    assert!(db.erased().contains(&unshipped.id));
    db.verify(3);
    fasten.shutdown(SECS).unwrap();
}

#[test]
fn sqlite_unshipped_and_held_rows_are_kept() {
    unshipped_and_held_rows_are_kept(&Db::sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_unshipped_and_held_rows_are_kept() {
    if let Some(db) = Db::pg() {
        unshipped_and_held_rows_are_kept(&db);
    }
}

// === erasure on request ===

fn a_subject_is_erased_on_request(db: &Db) {
    let fasten = db
        .config()
        .audit_legal_hold(["INVOICE_ISSUED"])
        .build()
        .unwrap();
    let secret = "jane.doe@example.org";
    let mut about = Vec::new();
    for code in ["CUSTOMER_SEEN", "ORDER_PLACED", "CART_TOUCHED"] {
        let row = fasten
            .emit_durable(
                Event::new(code)
                    .actor("jane", ActorKind::User)
                    .detail(json!({"email": secret})),
            )
            .unwrap();
        about.push(row.id);
    }
    let held = fasten
        .emit_durable(
            Event::new("INVOICE_ISSUED")
                .actor("jane", ActorKind::User)
                .detail(json!({"email": secret})),
        )
        .unwrap();
    let as_target = fasten
        .emit_durable(
            Event::new("ORDER_PLACED")
                .target("jane")
                .detail(json!({"n": 1})),
        )
        .unwrap();
    let other = emit(&fasten, "ORDER_PLACED", json!({"n": 2}));

    let err = fasten
        .erase_subject(&Erasure::actor("jane").reason(" "))
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidEvent { field: "reason" });
    let err = fasten
        .erase_subject(&Erasure::target("").reason("r"))
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InvalidEvent { field: "target" });

    let report = fasten
        .erase_subject(
            &Erasure::actor("jane")
                .reason("GDPR art. 17 request #4711")
                .requested_by("dpo", ActorKind::User),
        )
        .unwrap();
    assert_eq!(report.erased, 3);
    assert_eq!(report.subject, "actor");
    assert_eq!(report.held.len(), 1);
    assert_eq!(report.held[0].reason, HoldReason::LegalHoldCode);
    assert_eq!(db.erased(), about.iter().cloned().collect());
    assert!(!db.erased().contains(&held.id));
    assert!(!db.erased().contains(&as_target.id));
    assert!(!db.erased().contains(&other.id));
    db.verify(3);

    // The event: who asked, why, how many; never the subject's data.
    let events = db.query(
        "SELECT actor || '|' || target || '|' || code FROM audit_log WHERE code = $1",
        "AUDIT_SUBJECT_ERASED",
    );
    assert_eq!(events, ["dpo|jane|AUDIT_SUBJECT_ERASED"]);
    let detail = &db.details("AUDIT_SUBJECT_ERASED")[0];
    assert_eq!(detail["erased"], 3);
    assert_eq!(detail["reason"], "GDPR art. 17 request #4711");
    assert_eq!(detail["requested_by"], "dpo");
    assert!(!detail.to_string().contains(secret), "{detail}");
    assert!(
        db.query(
            "SELECT id FROM audit_log WHERE detail IS NOT NULL AND id = $1",
            &about[0]
        )
        .is_empty()
    );

    let by_target = fasten
        .erase_subject(&Erasure::target("jane").reason("GDPR art. 17 request #4711"))
        .unwrap();
    // The erasure event targets jane too, but built-in events are never
    // erased on request: only the order row goes.
    assert_eq!(by_target.erased, 1);
    assert!(db.erased().contains(&as_target.id));
    let again = fasten
        .erase_subject(&Erasure::actor("jane").reason("again"))
        .unwrap();
    assert_eq!(again.erased, 0);
    db.verify(4);
    fasten.shutdown(SECS).unwrap();
}

#[test]
fn sqlite_a_subject_is_erased_on_request() {
    a_subject_is_erased_on_request(&Db::sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_a_subject_is_erased_on_request() {
    if let Some(db) = Db::pg() {
        a_subject_is_erased_on_request(&db);
    }
}

// === the background sweeper ===

#[test]
fn the_background_sweep_runs_every_interval_and_stops_at_shutdown() {
    let db = Db::sqlite();
    let fasten = db
        .config()
        .retention_sweep_interval(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    emit(&fasten, "ORDER_PLACED", json!({"n": 1}));
    super::support::wait_until("two background sweeps", || {
        db.details("AUDIT_RETENTION_SWEPT").len() >= 2
    });
    fasten.shutdown(SECS).unwrap();
    let after = db.details("AUDIT_RETENTION_SWEPT").len();
    // Not synchronisation: what is under test is that nothing happens, so
    // more than one sweep interval (1 s) passes after shutdown; a sweep
    // still scheduled would show up in it.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(db.details("AUDIT_RETENTION_SWEPT").len(), after);
    let methods = db.query(
        "SELECT method FROM audit_log WHERE code = $1",
        "AUDIT_RETENTION_SWEPT",
    );
    assert!(methods.iter().all(|m| m == "scheduler"), "{methods:?}");
    db.verify(0);
}

// === sweeping while emits go on ===

/// Emits in `raise` mode (each emit returns after its commit) while a sweep
/// erases `rows` rows; returns the longest emit and the sweep's rate (for
/// the log: timings are measured by the `retention` bench).
fn longest_stall_during_sweep(db: &Db, rows: usize) -> (Duration, f64) {
    let fill = db.config().build().unwrap();
    for i in 0..rows {
        fill.emit(Event::new("ORDER_PLACED").detail(json!({"i": i, "pad": "x".repeat(64)})))
            .unwrap();
    }
    fill.shutdown(Duration::from_secs(600)).unwrap();
    // Due: every filled row (medium), none emitted from here on.
    let due = SystemTime::now() + DAY * 180;
    let fasten = db
        .config()
        .audit_store_failure_strategy(fasten::FailureStrategy::Raise)
        .build()
        .unwrap();
    let emits = |until: &std::sync::atomic::AtomicBool| {
        let mut longest = Duration::ZERO;
        while !until.load(std::sync::atomic::Ordering::Relaxed) {
            let started = Instant::now();
            fasten
                .emit(Event::new("INVOICE_ISSUED").detail(json!({"n": 1})))
                .unwrap();
            longest = longest.max(started.elapsed());
        }
        longest
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let (stall, rate) = std::thread::scope(|s| {
        let h = s.spawn(|| emits(&done));
        let started = Instant::now();
        let report = fasten.sweep(&SweepOptions::new().now(due)).unwrap();
        let took = started.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(report.erased, rows as u64);
        (h.join().unwrap(), report.erased as f64 / took.as_secs_f64())
    });
    fasten.shutdown(SECS).unwrap();
    let report = fasten::verify(&db.dsn()).unwrap();
    assert!(report.ok);
    (stall, rate)
}

/// Rows to sweep under load: `FASTEN_IT_SWEEP_ROWS`, default 20000 (the
/// `retention` bench runs 1,000,000 in release mode).
fn sweep_rows() -> usize {
    std::env::var("FASTEN_IT_SWEEP_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

#[test]
fn emits_go_on_while_a_sweep_erases() {
    let db = Db::sqlite();
    let rows = sweep_rows();
    let (stall, rate) = longest_stall_during_sweep(&db, rows);
    eprintln!(
        "sqlite: longest emit during a sweep of {rows} rows {stall:?}, {rate:.0} rows/s erased"
    );
    // The stall is reported, not asserted: timings belong in the
    // `retention` bench, which measures 1,000,000 rows.
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_emits_go_on_while_a_sweep_erases() {
    if let Some(db) = Db::pg() {
        let rows = sweep_rows();
        let (stall, rate) = longest_stall_during_sweep(&db, rows);
        eprintln!(
            "postgres: longest emit during a sweep of {rows} rows {stall:?}, {rate:.0} rows/s erased"
        );
    }
}

// === stream stores ===

#[test]
fn stream_rows_older_than_their_days_are_deleted() {
    let db = Db::sqlite();
    let fasten = db.config().build().unwrap();
    fasten.shutdown(SECS).unwrap();
    // Irrefutable when the `postgres` feature is off.
    #[allow(irrefutable_let_patterns)]
    let Db::Sqlite(dir) = &db else { unreachable!() };
    let conn = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
    conn.execute_batch("CREATE TABLE api_log (id TEXT, timestamp TEXT NOT NULL)")
        .unwrap();
    let now: jiff::Timestamp = "2026-06-30T12:00:00Z".parse().unwrap();
    for (id, ts) in [
        ("old", "2026-06-15T11:59:59.999999Z"),
        ("due", "2026-06-16T12:00:00.000000Z"),
        ("kept", "2026-06-16T12:00:00.000001Z"),
        ("new", "2026-06-30T11:00:00.000000Z"),
    ] {
        conn.execute("INSERT INTO api_log VALUES (?1, ?2)", [id, ts])
            .unwrap();
    }
    let deleted = fasten::retention::prune_stream(&db.dsn(), "api_log", 14, sys(now)).unwrap();
    assert_eq!(deleted, 2);
    let left: Vec<String> = conn
        .prepare("SELECT id FROM api_log ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, ["kept", "new"]);
    let err = fasten::retention::prune_stream(&db.dsn(), "audit_log", 14, sys(now)).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Store);
    let err = fasten::retention::prune_stream(&db.dsn(), "api_log", 0, sys(now)).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Config { .. }));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_stream_rows_older_than_their_days_are_deleted() {
    let Some(db) = Db::pg() else { return };
    let Db::Pg(schema) = &db else { unreachable!() };
    let mut client =
        postgres::Client::connect(&super::postgres::base_url(), postgres::NoTls).unwrap();
    let fasten = db.config().build().unwrap();
    fasten.shutdown(SECS).unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE {s}.sys_log (id TEXT, timestamp TIMESTAMPTZ NOT NULL);
             INSERT INTO {s}.sys_log VALUES ('old', '2026-06-15T11:59:59.999999Z'), ('due', '2026-06-16T12:00:00Z'), ('kept', '2026-06-16T12:00:00.000001Z')",
            s = schema.name
        ))
        .unwrap();
    let now: jiff::Timestamp = "2026-06-30T12:00:00Z".parse().unwrap();
    let deleted = fasten::retention::prune_stream(&db.dsn(), "sys_log", 14, sys(now)).unwrap();
    assert_eq!(deleted, 2);
    let left: Vec<String> = client
        .query(&format!("SELECT id FROM {}.sys_log", schema.name), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["kept"]);
}

#[test]
fn a_sweep_that_fails_half_way_still_records_what_it_erased() {
    let db = Db::sqlite();
    let fasten = db.config().build().unwrap();
    let first = emit(&fasten, "ORDER_PLACED", json!({"n": 1}));
    let second = emit(&fasten, "ORDER_PLACED", json!({"n": 2}));
    // Irrefutable when the `postgres` feature is off.
    #[allow(irrefutable_let_patterns)]
    let Db::Sqlite(dir) = &db else { unreachable!() };
    let conn = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse BEFORE UPDATE ON audit_log WHEN old.id = '{}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        second.id
    ))
    .unwrap();
    let err = fasten
        .sweep(
            &SweepOptions::new()
                .now(at(&second) + DAY * 180)
                .batch_size(1),
        )
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Store);
    assert_eq!(db.erased(), HashSet::from([first.id.clone()]));
    let event = &db.details("AUDIT_RETENTION_SWEPT")[0];
    assert_eq!(event["erased"], 1);
    assert!(
        event["error"]
            .as_str()
            .unwrap()
            .contains("refused by the test"),
        "{event}"
    );
    db.verify(1);
    fasten.shutdown(SECS).unwrap();
}
