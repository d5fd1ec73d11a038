//! Tables written by another fasten implementation (issue #12 item 5): the
//! original column set (no `outcome`, `detail_salt`, `detail_commitment`)
//! and rows of canonical form 1 or 2, made by hand in SQL on SQLite and on
//! PostgreSQL. The writer and `verify` refuse them with one message naming
//! the table, what was found and what to do; the reader (tail, correlate)
//! still reads their rows and says the same. Nothing is ever written to
//! them and no form-3 row follows another form's.

use fasten::{AuditQuery, Config, Dsn, ErrorKind, Event, Reader, RequestId};

use super::support::registry;

/// A store the test builds by hand, as another implementation would have.
trait Hand {
    /// The DSN fasten opens the table with.
    fn dsn(&self) -> Dsn;
    /// The table as fasten's messages name it.
    fn shown(&self) -> String;
    /// Runs statements; `{t}` stands for the table.
    fn exec(&mut self, sql: &str);
    /// How many columns the table has.
    fn columns(&mut self) -> i64;
    /// The backend's column types: `(seq, timestamp, detail, pii,
    /// shipped_at)`, and the literal for false.
    fn types(&self) -> [&'static str; 6];
}

struct Sqlite(tempfile::TempDir);

impl Hand for Sqlite {
    fn dsn(&self) -> Dsn {
        Dsn::parse(
            "FASTEN_AUDIT_DSN",
            &format!("sqlite:///{}", self.0.path().join("audit.db").display()),
        )
        .unwrap()
    }
    fn shown(&self) -> String {
        "\"audit_log\"".to_owned()
    }
    fn exec(&mut self, sql: &str) {
        let conn = rusqlite::Connection::open(self.0.path().join("audit.db")).unwrap();
        conn.execute_batch(&sql.replace("{t}", "audit_log"))
            .unwrap();
    }
    fn columns(&mut self) -> i64 {
        let conn = rusqlite::Connection::open(self.0.path().join("audit.db")).unwrap();
        conn.query_row(
            "SELECT count(*) FROM pragma_table_info('audit_log')",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }
    fn types(&self) -> [&'static str; 6] {
        ["INTEGER", "TEXT", "TEXT", "INTEGER", "TEXT", "0"]
    }
}

#[cfg(feature = "postgres")]
struct Postgres(super::postgres::Schema);

#[cfg(feature = "postgres")]
impl Hand for Postgres {
    fn dsn(&self) -> Dsn {
        self.0.dsn("audit_log")
    }
    fn shown(&self) -> String {
        format!("\"{}\".\"audit_log\"", self.0.name)
    }
    fn exec(&mut self, sql: &str) {
        let t = format!("{}.audit_log", self.0.name);
        let schema = format!("CREATE SCHEMA IF NOT EXISTS {};", self.0.name);
        self.0.sql(&(schema + &sql.replace("{t}", &t)));
    }
    fn columns(&mut self) -> i64 {
        let url = super::postgres::base_url();
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'audit_log'",
            &[&self.0.name],
        )
        .unwrap()
        .get(0)
    }
    fn types(&self) -> [&'static str; 6] {
        [
            "BIGINT",
            "TIMESTAMPTZ",
            "JSONB",
            "BOOLEAN",
            "TIMESTAMPTZ",
            "false",
        ]
    }
}

/// The original column set: the contract's columns without `outcome`,
/// `detail_salt` and `detail_commitment`.
fn create_upstream(h: &mut dyn Hand) {
    let [seq, ts, detail, pii, shipped, no] = h.types();
    h.exec(&format!(
        "CREATE TABLE {{t}} (id TEXT PRIMARY KEY, origin_id TEXT NOT NULL, monotonic_seq {seq} NOT NULL, timestamp {ts} NOT NULL, code TEXT NOT NULL, action TEXT NOT NULL, severity TEXT NOT NULL, service_id TEXT NOT NULL, source_node_id TEXT NOT NULL, tenant_id TEXT NULL, actor TEXT NOT NULL, actor_kind TEXT NOT NULL, target TEXT NOT NULL, category TEXT NOT NULL, domain TEXT NOT NULL, method TEXT NOT NULL, request_id TEXT NOT NULL, detail {detail} NULL, pii_in_detail {pii} NOT NULL DEFAULT {no}, shipped_at {shipped} NULL, wire_version TEXT NOT NULL DEFAULT '1', canonical_form_id TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    ));
}

/// The contract's columns, as fasten creates them.
fn create_contract(h: &mut dyn Hand) {
    let [seq, ts, detail, pii, shipped, no] = h.types();
    h.exec(&format!(
        "CREATE TABLE {{t}} (id TEXT PRIMARY KEY, origin_id TEXT NOT NULL, monotonic_seq {seq} NOT NULL, timestamp {ts} NOT NULL, code TEXT NOT NULL, action TEXT NOT NULL, severity TEXT NOT NULL, outcome TEXT NOT NULL DEFAULT 'success', service_id TEXT NOT NULL, source_node_id TEXT NOT NULL, tenant_id TEXT NULL, actor TEXT NOT NULL, actor_kind TEXT NOT NULL, target TEXT NOT NULL, category TEXT NOT NULL, domain TEXT NOT NULL, method TEXT NOT NULL, request_id TEXT NOT NULL, detail {detail} NULL, detail_salt TEXT NULL, detail_commitment TEXT NOT NULL DEFAULT '', pii_in_detail {pii} NOT NULL DEFAULT {no}, shipped_at {shipped} NULL, wire_version TEXT NOT NULL DEFAULT '1', canonical_form_id TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    ));
}

/// Two rows of `node`'s chain in canonical `form`, of request `req`.
fn insert_rows(h: &mut dyn Hand, node: &str, form: &str, req: &RequestId) {
    let no = h.types()[5];
    for seq in 1..=2 {
        let prev = if seq == 1 {
            "genesis".to_owned()
        } else {
            format!("{:064x}", seq - 1)
        };
        h.exec(&format!(
            "INSERT INTO {{t}} (id, origin_id, monotonic_seq, timestamp, code, action, severity, service_id, source_node_id, tenant_id, actor, actor_kind, target, category, domain, method, request_id, detail, pii_in_detail, wire_version, canonical_form_id, prev_hash, hash) VALUES ('evt-{node}-{seq}', 'evt-{node}-{seq}', {seq}, '2026-04-20T10:00:0{seq}.000000Z', 'USER_CREATED', 'create', 'info', 'upstream', '{node}', NULL, 'u-{seq}', 'user', 'cust-{seq}', 'user', 'iam', 'http', '{req}', '{{\"plan\":\"pro\"}}', {no}, '1', '{form}', '{prev}', '{seq:064x}')"
        ));
    }
}

fn writer(dsn: Dsn, node: &str) -> fasten::Result<fasten::Fasten> {
    Config::new()
        .service_id("it-foreign")
        .node_id(node)
        .audit_dsn(dsn)
        .registry(registry())
        .build()
}

/// The original column set with form-2 rows: refused by the writer and
/// `verify` (the table is left as it was), read by tail and correlate.
fn upstream_columns(h: &mut dyn Hand) {
    let req = RequestId::mint();
    create_upstream(h);
    insert_rows(h, "node-up", "2", &req);
    let before = h.columns();
    let t = h.shown();
    let bare = "audit_log";

    for node in ["node-up", "node-other"] {
        let err = writer(h.dsn(), node).expect_err("the writer must refuse the table");
        assert_eq!(
            err.kind(),
            &ErrorKind::ForeignTable { table: t.clone() },
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "table {t} was written by another fasten implementation: it lacks the columns outcome, detail_salt, detail_commitment of canonical form 3 and its rows are canonical form 2; fasten never writes to it or appends form-3 rows to a chain of another form: set FASTEN_AUDIT_DSN to a new table (e.g. ?table={bare}_v3) and keep this one for reading (fasten tail and correlate read it)"
            )
        );
    }
    assert_eq!(h.columns(), before, "the writer added columns");

    let err = fasten::verify(&h.dsn()).expect_err("verify must refuse the table");
    assert_eq!(
        err.to_string(),
        format!(
            "table {t} was written by another fasten implementation: it lacks the columns outcome, detail_salt, detail_commitment of canonical form 3 and its rows are canonical form 2; fasten verifies canonical form 3 only: verify this table with the implementation that wrote it (fasten tail and correlate still read its rows)"
        )
    );

    let reader = Reader::new(h.dsn());
    let warning = format!(
        "table {t} was written by another fasten implementation: it lacks the columns outcome, detail_salt, detail_commitment of canonical form 3 and its rows are canonical form 2; its rows are shown as stored, with outcome, detail_salt, detail_commitment absent, and fasten cannot verify them: verify them with the implementation that wrote them"
    );
    let page = reader.audit(&AuditQuery::new(10)).unwrap();
    assert_eq!(page.rows.len(), 2);
    assert_eq!(page.warning.as_deref(), Some(warning.as_str()));
    let row = &page.rows[0];
    assert_eq!((row.id.as_str(), row.monotonic_seq), ("evt-node-up-2", 2));
    assert_eq!(row.detail, Some(serde_json::json!({ "plan": "pro" })));
    assert_eq!(
        (row.outcome.as_str(), row.detail_salt.as_deref()),
        ("", None)
    );
    let json = serde_json::to_value(row).unwrap();
    assert!(
        json.get("outcome").is_none() && json.get("detail_commitment").is_none(),
        "{json}"
    );
    let timeline = reader.correlate(&req).unwrap();
    assert_eq!(timeline.entries.len(), 2);
    assert_eq!(timeline.warning.as_deref(), Some(warning.as_str()));
    // An absent column holds no value: a filter on it finds nothing.
    let none = reader
        .audit(&AuditQuery::new(10).filter("outcome", "success").unwrap())
        .unwrap();
    assert!(none.rows.is_empty());
    assert_eq!(h.columns(), before, "the reader changed the table");
}

/// The contract's columns with rows of canonical form 1: the writer never
/// continues that chain (at init, and at append when such a tip appears
/// later); verify names it; the reader reads it.
fn older_forms(h: &mut dyn Hand) {
    let req = RequestId::mint();
    create_contract(h);
    insert_rows(h, "node-old", "1", &req);
    let t = h.shown();

    let err = writer(h.dsn(), "node-old").expect_err("the writer must refuse the chain");
    assert_eq!(
        err.to_string(),
        format!(
            "table {t} was written by another fasten implementation: node \"node-old\"'s chain is canonical form 1; fasten never writes to it or appends form-3 rows to a chain of another form: set FASTEN_AUDIT_DSN to a new table (e.g. ?table=audit_log_v3) and keep this one for reading (fasten tail and correlate read it)"
        )
    );

    // Another node's chain is its own: it starts at genesis in form 3.
    let fasten = writer(h.dsn(), "node-new").unwrap();
    let row = fasten.emit_durable(Event::new("USER_CREATED")).unwrap();
    assert_eq!((row.monotonic_seq, row.prev_hash.as_str()), (1, "genesis"));
    // A form-2 tip that appears under the running writer (another
    // implementation writing as this node): the batch is refused at once.
    h.exec(&format!(
        "UPDATE {{t}} SET canonical_form_id = '2' WHERE id = '{}'",
        row.id
    ));
    let err = fasten
        .emit_durable(Event::new("USER_CREATED"))
        .expect_err("the writer must not continue a form-2 tip");
    assert!(
        err.to_string().contains(&format!(
            "table {t} was written by another fasten implementation: node \"node-new\"'s chain is canonical form 2; fasten never writes to it"
        )),
        "{err}"
    );
    drop(fasten);
    h.exec(&format!(
        "UPDATE {{t}} SET canonical_form_id = '3' WHERE id = '{}'",
        row.id
    ));

    let report = fasten::verify(&h.dsn()).unwrap();
    assert!(!report.ok);
    let old = report
        .nodes
        .iter()
        .find(|n| n.source_node_id == "node-old")
        .unwrap();
    assert_eq!(old.first_break_seq, Some(1));
    assert_eq!(
        old.reason.as_deref(),
        Some(format!(
            "table {t} was written by another fasten implementation: node \"node-old\"'s chain is canonical form 1; fasten verifies canonical form 3 only: verify this table with the implementation that wrote it (fasten tail and correlate still read its rows)"
        ).as_str())
    );
    let new = report
        .nodes
        .iter()
        .find(|n| n.source_node_id == "node-new")
        .unwrap();
    assert_eq!((new.rows, new.first_break_seq), (1, None), "{new:?}");

    let reader = Reader::new(h.dsn());
    let page = reader.audit(&AuditQuery::new(10).request_id(&req)).unwrap();
    assert_eq!(page.rows.len(), 2);
    assert_eq!(
        page.warning.as_deref(),
        Some(format!(
            "table {t} was written by another fasten implementation: its rows are canonical form 1; its rows are shown as stored, and fasten cannot verify them: verify them with the implementation that wrote them"
        ).as_str())
    );
    let timeline = reader.correlate(&req).unwrap();
    assert_eq!(timeline.entries.len(), 2);
    assert!(timeline.warning.is_some());
    // Pages of form-3 rows only carry no warning.
    let mine = reader
        .audit(
            &AuditQuery::new(10)
                .filter("source_node_id", "node-new")
                .unwrap(),
        )
        .unwrap();
    assert_eq!((mine.rows.len(), mine.warning), (1, None));
}

#[test]
fn issue_12_upstream_columns_on_sqlite() {
    upstream_columns(&mut Sqlite(tempfile::tempdir().unwrap()));
}

#[test]
fn issue_12_older_forms_on_sqlite() {
    older_forms(&mut Sqlite(tempfile::tempdir().unwrap()));
}

#[cfg(feature = "postgres")]
#[test]
fn issue_12_upstream_columns_on_postgres() {
    let Some(schema) = super::postgres::Schema::new() else {
        return;
    };
    upstream_columns(&mut Postgres(schema));
}

#[cfg(feature = "postgres")]
#[test]
fn issue_12_older_forms_on_postgres() {
    let Some(schema) = super::postgres::Schema::new() else {
        return;
    };
    older_forms(&mut Postgres(schema));
}
