//! The embedded default: one SQLite file in WAL mode, `synchronous=FULL`.
//!
//! Several processes may write one file: each batch runs in `BEGIN
//! IMMEDIATE`, which takes SQLite's write lock before the chain tip is read,
//! so two writers of one node can never read the same tip.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{
    Access, CHECKPOINT_COLUMNS, COLUMNS, Candidate, Erased, Foreign, INDEXED, Intent,
    LEASE_COLUMNS, MERKLE_COLUMNS, NodeCount, Scope, Store, UNERASED_INDEX, UNSHIPPED_INDEX,
    Unreadable,
};
use crate::chain::{self, Row, RowRef, Tip};
use crate::error::{Error, Result};

/// How long one statement waits on another process's lock before it reports
/// busy and the writer's own backoff takes over.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's busy handler: retry every millisecond for [`BUSY_TIMEOUT`].
///
/// `busy_timeout` sleeps in growing steps (1, 2, 5 … 100 ms), so a waiter
/// keeps missing the short gaps between another connection's transactions:
/// a writer emitting non-stop starved a retention sweep past the timeout,
/// and a sweep's 20 ms transaction cost the writer up to 100 ms. Polling
/// every millisecond takes the lock within about a millisecond of its release.
fn wait_for_lock(attempt: i32) -> bool {
    if u128::try_from(attempt).unwrap_or(0) >= BUSY_TIMEOUT.as_millis() {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
}

/// How much of the file a reader maps into memory (SQLite's default cap).
const READ_MMAP_BYTES: i64 = 0x7fff_0000;

pub(crate) struct SqliteStore {
    conn: Connection,
    table: String,
    /// `"table"`, for messages.
    shown: String,
    /// The form-3 columns a foreign table (opened for reading) lacks.
    missing: Vec<&'static str>,
    insert_sql: String,
    select_sql: String,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Opens the file (creating it and its directory for [`Access::Write`]).
pub(crate) fn connect(path: &Path, access: Access) -> Result<Connection> {
    let flags = match access {
        Access::Write | Access::Maintain => {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        }
        Access::Read => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if access == Access::Read && !path.exists() {
        return Err(Error::new(
            crate::ErrorKind::Store,
            format!("sqlite: {} does not exist", path.display()),
        ));
    }
    if access != Access::Read
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        super::create_private_dir_all(dir).map_err(|e| {
            Error::store(
                format!("sqlite: cannot create directory {}", dir.display()),
                e,
            )
        })?;
    }
    // A new database is created owner-only (SQLite gives its -wal and -shm
    // files the database's permissions); an existing one keeps its own.
    if access != Access::Read && !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(_) => {}
            // Another process created it first: fine, open theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::store(
                    format!("sqlite: cannot create {}", path.display()),
                    e,
                ));
            }
        }
    }
    Connection::open_with_flags(path, flags)
        .map_err(|e| Error::store(format!("sqlite: cannot open {}", path.display()), e))
}

pub(crate) fn sql_err(what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::store(format!("sqlite: {what}"), e)
}

impl SqliteStore {
    /// Opens (and with [`Access::Write`], creates and migrates) `table` in
    /// the file at `path`. `table` has been checked by the DSN parser.
    pub(crate) fn open(path: &Path, table: &str, access: Access) -> Result<Self> {
        Self::with_connection(connect(path, access)?, table, access)
    }

    /// An in-memory store, for tests.
    #[cfg(test)]
    pub(crate) fn memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(sql_err("open in memory"))?;
        Self::with_connection(conn, crate::dsn::DEFAULT_AUDIT_TABLE, Access::Write)
    }

    fn with_connection(mut conn: Connection, table: &str, access: Access) -> Result<Self> {
        conn.busy_handler(Some(wait_for_lock))
            .map_err(sql_err("set busy handler"))?;
        if access != Access::Read {
            // WAL lets readers run beside the writer; FULL makes each commit
            // durable (fsync of the WAL), which "nothing lost" needs.
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(sql_err("enable WAL"))?;
            // Tests use in-memory databases; a DSN cannot name one.
            let durable = mode.eq_ignore_ascii_case("wal")
                || (cfg!(test) && mode.eq_ignore_ascii_case("memory"));
            if !durable {
                return Err(Error::new(
                    crate::ErrorKind::Store,
                    format!("sqlite: journal_mode is {mode}, expected wal"),
                ));
            }
            // A sweep's erasures need no fsync of their own: the writer's
            // FULL commit of the sweep's event syncs the WAL they are in.
            let sync = if access == Access::Maintain {
                "NORMAL"
            } else {
                "FULL"
            };
            conn.pragma_update(None, "synchronous", sync)
                .map_err(sql_err("set synchronous"))?;
            // SQLite's default page cache (2 MiB), deliberately: a large one
            // stalls commits. The cache rehashes every page it holds each
            // time it doubles, and drops them all when another connection
            // (a sweep) commits; pages idle for seconds are slow to touch, so
            // a 64 MiB cache held single-row commits for hundreds of ms. The
            // OS page cache serves the re-reads; a 1M-row fill was no slower
            // with the default (docs/performance.md).
        }
        if access == Access::Read {
            // Readers scan whole chains: mapping the file spares a pread and
            // a copy out of the page cache per page, which was a quarter of
            // a verify's profile. SQLite caps it at its compile-time maximum.
            conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)
                .map_err(sql_err("set mmap_size"))?;
        }
        let names: Vec<&str> = COLUMNS.iter().map(|(n, _, _)| *n).collect();
        let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("?{i}")).collect();
        let shown = format!("\"{table}\"");
        let have = table_columns(&conn, table)?;
        let missing = match access {
            Access::Read => super::readable_columns(&have, "sqlite", &shown)?,
            Access::Write | Access::Maintain => {
                // Checked before migrating: adding the form-3 columns to
                // another implementation's table would let form-3 rows
                // follow its rows.
                let lacking = super::lacking_form3(&have);
                if !lacking.is_empty() {
                    let forms = if have.iter().any(|c| c == "canonical_form_id") {
                        foreign_forms(&conn, table)?
                    } else {
                        Vec::new()
                    };
                    return Err(Foreign {
                        missing: lacking,
                        forms,
                        node: None,
                    }
                    .error(&shown, Intent::Write));
                }
                Vec::new()
            }
        };
        let selected: Vec<String> = names
            .iter()
            .map(|n| {
                if missing.contains(n) {
                    format!("{} AS {n}", super::absent_column(n))
                } else {
                    (*n).to_owned()
                }
            })
            .collect();
        let mut store = Self {
            insert_sql: format!(
                "INSERT INTO \"{table}\" ({}) VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            ),
            select_sql: format!("SELECT {} FROM \"{table}\"", selected.join(", ")),
            conn,
            table: table.to_owned(),
            shown,
            missing,
            buf: Vec::with_capacity(1024),
        };
        if access != Access::Read {
            store.migrate()?;
        }
        Ok(store)
    }

    /// Creates the table, then adds whatever columns and indexes are
    /// missing; running it again changes nothing.
    fn migrate(&mut self) -> Result<()> {
        let t = &self.table;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err("begin migration"))?;
        let defs: Vec<String> = COLUMNS
            .iter()
            .map(|(n, ty, _)| format!("{n} {ty}"))
            .collect();
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{t}\" ({})",
            defs.join(", ")
        ))
        .map_err(sql_err("create table"))?;
        let have: Vec<String> = {
            let mut stmt = tx
                .prepare(&format!("PRAGMA table_info(\"{t}\")"))
                .map_err(sql_err("read table_info"))?;
            stmt.query_map([], |r| r.get::<_, String>(1))
                .map_err(sql_err("read table_info"))?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql_err("read table_info"))?
        };
        for (name, ty, _) in COLUMNS {
            if !have.iter().any(|h| h == name) {
                // SQLite cannot add a PRIMARY KEY or a NOT NULL column without
                // a default: such a table is not a contract table to begin with.
                tx.execute_batch(&format!("ALTER TABLE \"{t}\" ADD COLUMN {name} {ty}"))
                    .map_err(|e| Error::store(format!("sqlite: add column {name} to {t:?}"), e))?;
            }
        }
        // The chain key as a named index rather than a table constraint, so
        // tables made by other implementations get exactly one such index.
        tx.execute_batch(&format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS \"{t}_node_seq\" ON \"{t}\" (source_node_id, monotonic_seq)"
        ))
        .map_err(sql_err("create chain index"))?;
        for (name, cols) in INDEXED {
            tx.execute_batch(&format!(
                "CREATE INDEX IF NOT EXISTS \"{t}_{name}\" ON \"{t}\" ({cols})"
            ))
            .map_err(sql_err("create index"))?;
        }
        tx.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS \"{t}_unerased\" ON \"{t}\" {UNERASED_INDEX}"
        ))
        .map_err(sql_err("create unerased index"))?;
        tx.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS \"{t}_unshipped\" ON \"{t}\" {UNSHIPPED_INDEX}"
        ))
        .map_err(sql_err("create unshipped index"))?;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{t}_checkpoints\" ({CHECKPOINT_COLUMNS})"
        ))
        .map_err(sql_err("create checkpoints table"))?;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{t}_merkle\" ({MERKLE_COLUMNS})"
        ))
        .map_err(sql_err("create merkle table"))?;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{t}_leases\" ({LEASE_COLUMNS})"
        ))
        .map_err(sql_err("create leases table"))?;
        tx.commit().map_err(sql_err("commit migration"))
    }
}

/// The columns of `table`; none when it does not exist.
fn table_columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info(\"{table}\")"))
        .map_err(sql_err("read table_info"))?;
    stmt.query_map([], |r| r.get::<_, String>(1))
        .map_err(sql_err("read table_info"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err("read table_info"))
}

/// The `canonical_form_id` values other than `3` in `table`, sorted.
fn foreign_forms(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT DISTINCT CAST(canonical_form_id AS TEXT) AS f FROM \"{table}\" WHERE f IS NOT '3' ORDER BY f"
        ))
        .map_err(sql_err("read canonical forms"))?;
    stmt.query_map([], |r| r.get::<_, Option<String>>(0))
        .map_err(sql_err("read canonical forms"))?
        .map(|f| f.map(|f| f.unwrap_or_else(|| "NULL".to_owned())))
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err("read canonical forms"))
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let detail: Option<String> = r.get(18)?;
    let detail = match detail {
        Some(text) => Some(crate::canonical::parse_strict(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(18, rusqlite::types::Type::Text, Box::new(e))
        })?),
        None => None,
    };
    Ok(Row {
        id: r.get(0)?,
        origin_id: r.get(1)?,
        monotonic_seq: r.get(2)?,
        timestamp: r.get(3)?,
        code: r.get(4)?,
        action: r.get(5)?,
        severity: r.get(6)?,
        outcome: r.get(7)?,
        service_id: r.get(8)?,
        source_node_id: r.get(9)?,
        tenant_id: r.get(10)?,
        actor: r.get(11)?,
        actor_kind: r.get(12)?,
        target: r.get(13)?,
        category: r.get(14)?,
        domain: r.get(15)?,
        method: r.get(16)?,
        request_id: r.get(17)?,
        detail,
        detail_salt: r.get(19)?,
        detail_commitment: r.get(20)?,
        pii_in_detail: r.get::<_, i64>(21)? != 0,
        shipped_at: r.get(22)?,
        wire_version: r.get(23)?,
        canonical_form_id: r.get(24)?,
        prev_hash: r.get(25)?,
        hash: r.get(26)?,
    })
}

/// The row `r` borrowed, column by index, with no allocation; the error
/// names the column that does not decode.
fn read_ref<'a>(r: &'a rusqlite::Row<'_>) -> std::result::Result<RowRef<'a>, String> {
    let col = |i: usize| r.get_ref(i).map_err(|e| e.to_string()).map(|v| (i, v));
    let text = |i: usize| -> std::result::Result<&'a str, String> {
        let (i, v) = col(i)?;
        v.as_str()
            .map_err(|e| format!("column {}: {e}", COLUMNS[i].0))
    };
    let maybe = |i: usize| -> std::result::Result<Option<&'a str>, String> {
        let (i, v) = col(i)?;
        v.as_str_or_null()
            .map_err(|e| format!("column {}: {e}", COLUMNS[i].0))
    };
    let int = |i: usize| -> std::result::Result<i64, String> {
        let (i, v) = col(i)?;
        v.as_i64()
            .map_err(|e| format!("column {}: {e}", COLUMNS[i].0))
    };
    Ok(RowRef {
        id: text(0)?,
        origin_id: text(1)?,
        monotonic_seq: int(2)?,
        timestamp: text(3)?,
        code: text(4)?,
        action: text(5)?,
        severity: text(6)?,
        outcome: text(7)?,
        service_id: text(8)?,
        source_node_id: text(9)?,
        tenant_id: maybe(10)?,
        actor: text(11)?,
        actor_kind: text(12)?,
        target: text(13)?,
        category: text(14)?,
        domain: text(15)?,
        method: text(16)?,
        request_id: text(17)?,
        detail: maybe(18)?,
        detail_salt: maybe(19)?,
        detail_commitment: text(20)?,
        pii_in_detail: int(21)? != 0,
        shipped_at: maybe(22)?,
        wire_version: text(23)?,
        canonical_form_id: text(24)?,
        prev_hash: text(25)?,
        hash: text(26)?,
    })
}

/// Where [`SqliteStore::append_observed`] is inside its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// The transaction is open; nothing is read or written yet.
    Begun,
    /// This many rows of the batch are inserted (1, 2, …).
    Inserted(usize),
    /// Every row is inserted; `COMMIT` is next.
    Committing,
}

impl SqliteStore {
    /// [`Store::append`], calling `at` at each [`Point`] of the transaction:
    /// an error from `at` ends the attempt there and the transaction rolls
    /// back (the writer's fault tests fail a batch half-way with it).
    pub(crate) fn append_observed(
        &mut self,
        rows: &mut Vec<Row>,
        recheck: bool,
        at: &mut dyn FnMut(Point) -> Result<()>,
    ) -> Result<usize> {
        let node = super::batch_node(rows)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err("begin immediate"))?;
        at(Point::Begun)?;
        let mut already = 0;
        if recheck {
            let mut exists = tx
                .prepare_cached(&format!(
                    "SELECT source_node_id, detail_salt FROM \"{}\" WHERE id = ?1",
                    self.table
                ))
                .map_err(sql_err("prepare recheck"))?;
            already = super::settle_recheck(rows, |id| {
                exists
                    .query_row([id], |r| {
                        Ok(super::StoredIdentity {
                            node: r.get(0)?,
                            salt: r.get(1)?,
                        })
                    })
                    .optional()
                    .map_err(sql_err("recheck id"))
            })?;
        }
        let tip = tx
            .query_row(
                &format!(
                    "SELECT monotonic_seq, hash, CAST(canonical_form_id AS TEXT) FROM \"{}\" WHERE source_node_id = ?1 ORDER BY monotonic_seq DESC LIMIT 1",
                    self.table
                ),
                [&node],
                |r| {
                    Ok((
                        Tip {
                            seq: r.get(0)?,
                            hash: r.get(1)?,
                        },
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(sql_err("read chain tip"))?;
        // Never continue a chain of another canonical form.
        if let Some((_, form)) = &tip {
            super::check_tip_form(&self.shown, &node, Some(form.as_deref().unwrap_or("NULL")))?;
        }
        let mut tip = tip.map_or_else(Tip::genesis, |(tip, _)| tip);
        {
            let mut insert = tx
                .prepare_cached(&self.insert_sql)
                .map_err(sql_err("prepare insert"))?;
            let mut inserted = 0;
            for row in rows.iter_mut() {
                chain::link(row, &mut tip, &mut self.buf)?;
                // JCS text: valid JSON for any reader, and what the
                // verifier can hash without parsing (chain::commitment_of_text).
                let detail = row
                    .detail
                    .as_ref()
                    .map(|d| chain::detail_text(d, &mut self.buf));
                insert
                    .execute(params![
                        row.id,
                        row.origin_id,
                        row.monotonic_seq,
                        row.timestamp,
                        row.code,
                        row.action,
                        row.severity,
                        row.outcome,
                        row.service_id,
                        row.source_node_id,
                        row.tenant_id,
                        row.actor,
                        row.actor_kind,
                        row.target,
                        row.category,
                        row.domain,
                        row.method,
                        row.request_id,
                        detail,
                        row.detail_salt,
                        row.detail_commitment,
                        row.pii_in_detail,
                        row.shipped_at,
                        row.wire_version,
                        row.canonical_form_id,
                        row.prev_hash,
                        row.hash,
                    ])
                    .map_err(sql_err("insert row"))?;
                inserted += 1;
                at(Point::Inserted(inserted))?;
            }
        }
        at(Point::Committing)?;
        tx.commit().map_err(sql_err("commit"))?;
        Ok(rows.len() + already)
    }
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn table_name(&self) -> &str {
        &self.shown
    }

    fn missing_columns(&self) -> &[&'static str] {
        &self.missing
    }

    fn foreign_forms(&mut self) -> Result<Vec<String>> {
        foreign_forms(&self.conn, &self.table)
    }

    fn tip_form(&mut self, node: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT CAST(canonical_form_id AS TEXT) FROM \"{}\" WHERE source_node_id = ?1 ORDER BY monotonic_seq DESC LIMIT 1",
                    self.table
                ),
                [node],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(|f| f.map(|f| f.unwrap_or_else(|| "NULL".to_owned())))
            .map_err(sql_err("read the chain tip's form"))
    }

    fn append(&mut self, rows: &mut Vec<Row>, recheck: bool) -> Result<usize> {
        self.append_observed(rows, recheck, &mut |_| Ok(()))
    }

    fn nodes(&mut self) -> Result<Vec<NodeCount>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT source_node_id, COUNT(*) FROM \"{}\" GROUP BY source_node_id ORDER BY source_node_id",
                self.table
            ))
            .map_err(sql_err("list nodes"))?;
        let nodes = stmt
            .query_map([], |r| {
                Ok(NodeCount {
                    node: r.get(0)?,
                    rows: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                })
            })
            .map_err(sql_err("list nodes"))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err("list nodes"))?;
        Ok(nodes)
    }

    fn scan_rows(
        &mut self,
        node: &str,
        after_seq: i64,
        f: &mut dyn FnMut(std::result::Result<RowRef<'_>, Unreadable>) -> Result<()>,
    ) -> Result<()> {
        // The whole chain has no bound on seq: a NULL, text or real seq
        // compares false with `>` and would be skipped.
        let bound = if after_seq == super::WHOLE_CHAIN {
            "?2 = ?2"
        } else {
            "monotonic_seq > ?2"
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{} WHERE source_node_id = ?1 AND {bound} ORDER BY monotonic_seq",
                self.select_sql
            ))
            .map_err(sql_err("scan chain"))?;
        let mut rows = stmt
            .query(params![node, after_seq])
            .map_err(sql_err("scan chain"))?;
        while let Some(r) = rows.next().map_err(sql_err("scan chain"))? {
            f(read_ref(r).map_err(|reason| Unreadable {
                seq: r.get(2).ok(),
                id: r.get(0).ok(),
                reason,
            }))?;
        }
        Ok(())
    }

    fn scan_table(
        &mut self,
        f: &mut dyn FnMut(std::result::Result<RowRef<'_>, Unreadable>) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare(&self.select_sql)
            .map_err(sql_err("scan table"))?;
        let mut rows = stmt.query([]).map_err(sql_err("scan table"))?;
        while let Some(r) = rows.next().map_err(sql_err("scan table"))? {
            f(read_ref(r).map_err(|reason| Unreadable {
                seq: r.get(2).ok(),
                id: r.get(0).ok(),
                reason,
            }))?;
        }
        Ok(())
    }

    fn scan_hashes(
        &mut self,
        node: &str,
        after_seq: i64,
        upto_seq: i64,
        f: &mut dyn FnMut(i64, &str) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT monotonic_seq, hash FROM \"{}\" WHERE source_node_id = ?1 AND monotonic_seq > ?2 AND monotonic_seq <= ?3 ORDER BY monotonic_seq",
                self.table
            ))
            .map_err(sql_err("scan hashes"))?;
        let mut rows = stmt
            .query(params![node, after_seq, upto_seq])
            .map_err(sql_err("scan hashes"))?;
        while let Some(r) = rows.next().map_err(sql_err("scan hashes"))? {
            let seq = r.get_ref(0).and_then(|v| Ok(v.as_i64()?));
            let hash = r.get_ref(1).and_then(|v| Ok(v.as_str()?));
            match (seq, hash) {
                (Ok(seq), Ok(hash)) => f(seq, hash)?,
                (seq, _) => {
                    return Err(Error::new(
                        crate::ErrorKind::Store,
                        format!(
                            "sqlite: a row of node {node} after seq {} has no readable monotonic_seq and hash",
                            seq.unwrap_or(after_seq)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn save_merkle_nodes(&mut self, node: &str, nodes: &[(u32, u64, [u8; 32])]) -> Result<()> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql_err("begin saving merkle nodes"))?;
        {
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO \"{}_merkle\" (source_node_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    self.table
                ))
                .map_err(sql_err("save merkle nodes"))?;
            for (level, index, root) in nodes {
                let index = i64::try_from(*index).unwrap_or(i64::MAX);
                insert
                    .execute(params![node, level, index, hex::encode(root)])
                    .map_err(sql_err("save merkle nodes"))?;
            }
        }
        tx.commit().map_err(sql_err("commit merkle nodes"))
    }

    fn merkle_node(&mut self, node: &str, level: u32, index: u64) -> Result<Option<String>> {
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        let stmt = self.conn.prepare_cached(&format!(
            "SELECT hash FROM \"{}_merkle\" WHERE source_node_id = ?1 AND level = ?2 AND idx = ?3",
            self.table
        ));
        match stmt {
            Ok(mut stmt) => stmt
                .query_row(params![node, level, index], |r| r.get(0))
                .optional()
                .map_err(sql_err("read merkle node")),
            // A table written before `<table>_merkle` existed, opened read-only.
            Err(e) if e.to_string().contains("no such table") => Ok(None),
            Err(e) => Err(sql_err("read merkle node")(e)),
        }
    }

    fn save_checkpoint(&mut self, node: &str, size: u64, note: &str) -> Result<()> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        self.conn
            .execute(
                &format!(
                    "INSERT INTO \"{}_checkpoints\" (source_node_id, tree_size, note, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    self.table
                ),
                params![node, size, note, crate::event::format_timestamp(jiff::Timestamp::now())],
            )
            .map_err(sql_err("save checkpoint"))?;
        Ok(())
    }

    fn checkpoints(&mut self, node: &str) -> Result<Vec<(u64, String)>> {
        let table = format!("{}_checkpoints", self.table);
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [&table],
                |r| r.get(0),
            )
            .map_err(sql_err("read checkpoints"))?;
        if !exists {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT tree_size, note FROM \"{table}\" WHERE source_node_id = ?1 ORDER BY tree_size"
            ))
            .map_err(sql_err("read checkpoints"))?;
        let rows = stmt
            .query_map([node], |r| {
                Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?))
            })
            .map_err(sql_err("read checkpoints"))?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err("read checkpoints"))?;
        Ok(rows)
    }

    fn get(&mut self, id: &str) -> Result<Option<Row>> {
        self.conn
            .query_row(
                &format!("{} WHERE id = ?1", self.select_sql),
                [id],
                read_row,
            )
            .optional()
            .map_err(sql_err("read row"))
    }

    fn query(&mut self, q: &super::stream::Query) -> Result<Vec<Row>> {
        // A column another implementation's table lacks is absent on every
        // row: no row has the value asked for.
        if super::filters_absent_column(q, &self.missing) {
            return Ok(Vec::new());
        }
        let (filter, params) =
            super::stream::filter_sql(q, &super::stream::AUDIT_FILTERS, |i, _| format!("?{i}"));
        let mut stmt = self
            .conn
            .prepare(&format!("{}{filter}", self.select_sql))
            .map_err(sql_err("prepare audit query"))?;
        let params = params.into_iter().map(super::stream::sqlite::bind);
        stmt.query_map(rusqlite::params_from_iter(params), read_row)
            .map_err(sql_err("query audit rows"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err("read audit rows"))
    }

    fn summarize(&mut self, s: &super::Summarize) -> Result<Vec<super::SummaryRow>> {
        use super::stream::Cell;
        let (filter, mut params) =
            super::stream::where_sql(&s.filter, &super::stream::AUDIT_FILTERS, |i, _| {
                format!("?{i}")
            });
        let mut path = |segments: &[String]| {
            params.push(Cell::Text(Some(format!("$.{}", segments.join(".")))));
            format!("?{}", params.len())
        };
        let value = match &s.sum {
            Some(segments) => {
                let p = path(segments);
                format!(
                    "CASE WHEN json_type(detail, {p}) IN ('integer', 'real') THEN json_extract(detail, {p}) END"
                )
            }
            None => "NULL".to_owned(),
        };
        let key = match &s.by {
            super::GroupBy::Nothing => "NULL".to_owned(),
            super::GroupBy::Column(c) => (*c).to_owned(),
            super::GroupBy::Detail(segments) => {
                let p = path(segments);
                format!("CAST(json_extract(detail, {p}) AS TEXT)")
            }
        };
        let sql = format!(
            "SELECT k, COUNT(*), COUNT(v), TOTAL(v) FROM (SELECT {key} AS k, {value} AS v FROM \"{}\"{filter}) GROUP BY k ORDER BY 4 DESC, 2 DESC, 1 LIMIT {}",
            self.table,
            s.limit.max(1)
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(sql_err("prepare audit summary"))?;
        let params = params.into_iter().map(super::stream::sqlite::bind);
        stmt.query_map(rusqlite::params_from_iter(params), |r| {
            Ok(super::SummaryRow {
                key: r.get(0)?,
                rows: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                summed: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                sum: r.get(3)?,
            })
        })
        .map_err(sql_err("query audit summary"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err("read audit summary"))
    }

    fn unerased_groups(&mut self) -> Result<Vec<(String, bool)>> {
        // One index seek per group: `SELECT DISTINCT` would read the whole
        // index.
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT code, pii_in_detail FROM \"{}\" WHERE detail_salt IS NOT NULL AND code >= ?1 AND (code > ?1 OR pii_in_detail > ?2) ORDER BY code, pii_in_detail LIMIT 1",
                self.table
            ))
            .map_err(sql_err("list unerased codes"))?;
        let mut groups = Vec::new();
        let mut after = (String::new(), -1i64);
        while let Some((code, pii)) = stmt
            .query_row(params![after.0, after.1], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
            .map_err(sql_err("list unerased codes"))?
        {
            groups.push((code.clone(), pii != 0));
            after = (code, pii);
        }
        Ok(groups)
    }

    fn page(
        &mut self,
        scope: Scope<'_>,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let t = &self.table;
        let head = format!(
            "SELECT id, timestamp, code, source_node_id, monotonic_seq, tenant_id, shipped_at IS NOT NULL FROM \"{t}\" WHERE detail_salt IS NOT NULL AND timestamp >= ?1 AND (timestamp > ?1 OR id > ?2)"
        );
        let tail = "ORDER BY timestamp, id LIMIT ?3";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Due rows: ordered as the unerased index is (code and pii are
        // fixed), so the planner reads exactly that index's range.
        let rows = match scope {
            Scope::Due {
                code,
                pii,
                due,
                service,
            } => self
                .conn
                .prepare_cached(&format!(
                    "{head} AND code = ?4 AND pii_in_detail = ?5 AND timestamp <= ?6 AND (?7 IS NULL OR service_id = ?7) ORDER BY code, pii_in_detail, timestamp, id LIMIT ?3"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map(
                        params![after.0, after.1, limit, code, pii, due, service],
                        read_candidate,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()
                }),
            Scope::Actor(who) | Scope::Target(who) => {
                let column = if matches!(scope, Scope::Actor(_)) {
                    "actor"
                } else {
                    "target"
                };
                self.conn
                    .prepare_cached(&format!("{head} AND {column} = ?4 {tail}"))
                    .and_then(|mut stmt| {
                        stmt.query_map(params![after.0, after.1, limit, who], read_candidate)?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
            }
        };
        rows.map_err(sql_err("read rows to erase"))
    }

    fn erase(&mut self, ids: &[&str]) -> Result<Erased> {
        let ids = serde_json::to_string(ids)
            .map_err(|e| Error::store("sqlite: encode ids to erase", e))?;
        // IMMEDIATE: take the write lock up front (waiting out the writer's
        // batch) rather than fail half-way on a lock upgrade.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err("begin erase"))?;
        let locked = std::time::Instant::now();
        let rows = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "UPDATE \"{}\" SET detail = NULL, detail_salt = NULL WHERE id IN (SELECT value FROM json_each(?1)) AND detail_salt IS NOT NULL RETURNING source_node_id, monotonic_seq",
                    self.table
                ))
                .map_err(sql_err("prepare erase"))?;
            stmt.query_map([&ids], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql_err("erase"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err("erase"))?
        };
        tx.commit().map_err(sql_err("commit erase"))?;
        let held = locked.elapsed();
        // Copy the erasures' WAL pages back on the sweep's own time:
        // otherwise the writer's commit that crosses the auto-checkpoint
        // threshold does it, and a `raise`-mode emit waits for the copy
        // and its fsync. PASSIVE never waits for, nor blocks, the writer.
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(sql_err("checkpoint the WAL after an erase"))?;
        Ok(Erased { rows, held })
    }

    fn lease(&mut self, name: &str, holder: &str, now: &str, until: &str) -> Result<bool> {
        let t = &self.table;
        let changed = self
            .conn
            .execute(
                &format!(
                    "INSERT INTO \"{t}_leases\" (name, holder, expires_at) VALUES (?1, ?2, ?4) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at WHERE \"{t}_leases\".holder = excluded.holder OR \"{t}_leases\".expires_at <= ?3"
                ),
                params![name, holder, now, until],
            )
            .map_err(sql_err("take a lease"))?;
        Ok(changed == 1)
    }

    fn release(&mut self, name: &str, holder: &str) -> Result<()> {
        self.conn
            .execute(
                &format!(
                    "DELETE FROM \"{}_leases\" WHERE name = ?1 AND holder = ?2",
                    self.table
                ),
                params![name, holder],
            )
            .map_err(sql_err("release a lease"))?;
        Ok(())
    }

    fn unshipped(&mut self, node: &str) -> Result<Option<super::Unshipped>> {
        // Two index seeks (the unshipped index, the chain index), never a
        // count: an edge that buffered a million rows must not read them all
        // for every batch it ships.
        let t = &self.table;
        let found: Option<(i64, String, i64)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT monotonic_seq, timestamp, (SELECT max(monotonic_seq) FROM \"{t}\" WHERE source_node_id = ?1) FROM \"{t}\" WHERE source_node_id = ?1 AND shipped_at IS NULL ORDER BY monotonic_seq LIMIT 1"
                ),
                params![node],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql_err("find unshipped rows"))?;
        Ok(found.map(|(first_seq, oldest, tip)| super::Unshipped {
            first_seq,
            count: super::seq_span(first_seq, tip),
            oldest,
        }))
    }

    fn mark_shipped(&mut self, node: &str, upto_seq: i64, at: &str) -> Result<u64> {
        let n = self
            .conn
            .execute(
                &format!(
                    "UPDATE \"{}\" SET shipped_at = ?3 WHERE source_node_id = ?1 AND monotonic_seq <= ?2 AND shipped_at IS NULL",
                    self.table
                ),
                params![node, upto_seq, at],
            )
            .map_err(sql_err("mark rows shipped"))?;
        Ok(n as u64)
    }

    fn shipping_nodes(&mut self) -> Result<Vec<String>> {
        // Each next node's first row, one seek in the chain index; see the
        // PostgreSQL store.
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT source_node_id, shipped_at IS NOT NULL FROM \"{}\" WHERE source_node_id > ?1 ORDER BY source_node_id, monotonic_seq LIMIT 1",
                self.table
            ))
            .map_err(sql_err("list shipping nodes"))?;
        let mut nodes = Vec::new();
        let mut after = String::new();
        while let Some((node, shipped)) = stmt
            .query_row([&after], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
            })
            .optional()
            .map_err(sql_err("list shipping nodes"))?
        {
            if shipped {
                nodes.push(node.clone());
            }
            after = node;
        }
        Ok(nodes)
    }

    fn time_of(&mut self, node: &str, code: Option<&str>) -> Result<Option<String>> {
        let t = &self.table;
        let found = match code {
            Some(code) => self.conn.query_row(
                &format!("SELECT max(timestamp) FROM \"{t}\" WHERE code = ?1 AND source_node_id = ?2"),
                params![code, node],
                |r| r.get(0),
            ),
            None => self
                .conn
                .query_row(
                    &format!("SELECT timestamp FROM \"{t}\" WHERE source_node_id = ?1 ORDER BY monotonic_seq LIMIT 1"),
                    params![node],
                    |r| r.get(0),
                )
                .optional()
                .map(Option::flatten),
        };
        found.map_err(sql_err("read a row's time"))
    }
}

fn read_candidate(r: &rusqlite::Row<'_>) -> rusqlite::Result<Candidate> {
    Ok(Candidate {
        id: r.get(0)?,
        timestamp: r.get(1)?,
        code: r.get(2)?,
        node: r.get(3)?,
        seq: r.get(4)?,
        tenant_id: r.get(5)?,
        shipped: r.get(6)?,
    })
}

/// See [`super::prune`].
pub(crate) fn prune(path: &Path, table: &str, cutoff: &str, batch: usize) -> Result<u64> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::store(format!("sqlite: cannot open {}", path.display()), e))?;
    conn.busy_handler(Some(wait_for_lock))
        .map_err(sql_err("set busy handler"))?;
    let chained: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'prev_hash')",
            [table],
            |r| r.get(0),
        )
        .map_err(sql_err("read the table's columns"))?;
    if chained {
        return Err(super::chained_table(table));
    }
    let sql = format!(
        "DELETE FROM \"{table}\" WHERE rowid IN (SELECT rowid FROM \"{table}\" WHERE timestamp <= ?1 LIMIT ?2)"
    );
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let mut deleted = 0u64;
    loop {
        let n = conn
            .execute(&sql, params![cutoff, limit])
            .map_err(|e| Error::store(format!("sqlite: prune {table:?}"), e))?;
        deleted += n as u64;
        if n < batch {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(node: &str, id: &str) -> Row {
        let mut buf = Vec::new();
        let salt = "00".repeat(32);
        let detail = serde_json::json!({"k": id});
        Row {
            id: id.to_owned(),
            origin_id: id.to_owned(),
            monotonic_seq: 0,
            timestamp: "2026-06-15T10:30:00.000000Z".to_owned(),
            code: "USER_CREATED".to_owned(),
            action: "create".to_owned(),
            severity: "info".to_owned(),
            outcome: "success".to_owned(),
            service_id: "svc".to_owned(),
            source_node_id: node.to_owned(),
            tenant_id: None,
            actor: "system".to_owned(),
            actor_kind: "service".to_owned(),
            target: String::new(),
            category: "user".to_owned(),
            domain: "iam".to_owned(),
            method: "sdk".to_owned(),
            request_id: "r1".to_owned(),
            detail_commitment: chain::commitment(&salt, &detail, &mut buf),
            detail: Some(detail),
            detail_salt: Some(salt),
            pii_in_detail: false,
            shipped_at: None,
            wire_version: "1".to_owned(),
            canonical_form_id: "3".to_owned(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn appends_link_across_batches_and_nodes() -> Result<()> {
        let mut store = SqliteStore::memory()?;
        let mut a = vec![row("n1", "evt-a"), row("n1", "evt-b")];
        assert_eq!(store.append(&mut a, false)?, 2);
        let mut b = vec![row("n1", "evt-c")];
        store.append(&mut b, false)?;
        let mut c = vec![row("n2", "evt-d")];
        store.append(&mut c, false)?;
        assert_eq!(
            (a[0].monotonic_seq, a[1].monotonic_seq, b[0].monotonic_seq),
            (1, 2, 3)
        );
        assert_eq!(a[0].prev_hash, "genesis");
        assert_eq!(b[0].prev_hash, a[1].hash);
        assert_eq!(c[0].monotonic_seq, 1);
        assert_eq!(store.get("evt-c")?, Some(b[0].clone()));
        let nodes = store.nodes()?;
        assert_eq!(
            nodes
                .iter()
                .map(|n| (n.node.as_str(), n.rows))
                .collect::<Vec<_>>(),
            [("n1", 3), ("n2", 1)]
        );
        Ok(())
    }

    #[test]
    fn the_shipping_nodes_are_those_whose_first_rows_shipped() -> Result<()> {
        let mut store = SqliteStore::memory()?;
        for node in ["n1", "n2", "n3"] {
            let mut rows: Vec<Row> = (0..3)
                .map(|i| row(node, &format!("evt-{node}-{i}")))
                .collect();
            store.append(&mut rows, false)?;
        }
        assert!(store.shipping_nodes()?.is_empty());
        let at = "2026-06-15T10:31:00.000000Z";
        assert_eq!(store.mark_shipped("n1", 2, at)?, 2);
        assert_eq!(store.mark_shipped("n3", 3, at)?, 3);
        assert_eq!(store.shipping_nodes()?, ["n1", "n3"]);
        Ok(())
    }

    #[test]
    fn the_writer_keeps_sqlites_default_page_cache() -> Result<()> {
        // A large cache stalls commits while SQLite walks it (see
        // with_connection); -2000 is SQLITE_DEFAULT_CACHE_SIZE, 2 MiB.
        let store = SqliteStore::memory()?;
        let kib: i64 = store
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .map_err(sql_err("read cache_size"))?;
        assert_eq!(kib, -2000);
        Ok(())
    }

    #[test]
    fn a_retry_skips_its_own_rows_and_reids_a_colliding_one() -> Result<()> {
        let mut store = SqliteStore::memory()?;
        let mut first = vec![row("n1", "evt-a")];
        store.append(&mut first, false)?;
        // A retry of the batch that landed: recognised, not inserted again.
        let mut again = vec![row("n1", "evt-a")];
        assert_eq!(store.append(&mut again, true)?, 1);
        assert!(again.is_empty());
        // Another node's row minted the same id: a different row, so it
        // is stored under a fresh id instead of passing for stored.
        let mut other = vec![row("n2", "evt-a")];
        assert!(
            store.append(&mut other, false).is_err(),
            "the key refuses it"
        );
        assert_eq!(store.append(&mut other, true)?, 1);
        assert_eq!(other.len(), 1);
        assert_ne!(other[0].id, "evt-a");
        assert_eq!(other[0].origin_id, other[0].id);
        assert_eq!(store.get(&other[0].id)?, Some(other[0].clone()));
        assert_eq!(store.get("evt-a")?, Some(first[0].clone()));
        // The same id on the same node with another salt is another row too.
        let mut same_node = vec![row("n1", "evt-a")];
        let salt = "11".repeat(32);
        let detail = same_node[0].detail.clone().expect("detail");
        same_node[0].detail_commitment = chain::commitment(&salt, &detail, &mut Vec::new());
        same_node[0].detail_salt = Some(salt);
        assert_eq!(store.append(&mut same_node, true)?, 1);
        assert_ne!(same_node[0].id, "evt-a");
        assert_eq!(
            verdicts(&mut store)?
                .iter()
                .filter(|v| v.2.is_some())
                .count(),
            0
        );
        Ok(())
    }

    /// `(node, rows verified, first failing seq, reason)`.
    type Verdict = (String, u64, Option<i64>, Option<String>);

    /// Verifies the memory store; one [`Verdict`] per node.
    /// Also checks that the trees verify builds on the way are the ones
    /// built from the hash column alone, whatever order the rows come in.
    fn verdicts(store: &mut SqliteStore) -> Result<Vec<Verdict>> {
        let (report, trees) = crate::verify::verify_store_and_trees(store, |_| {}, true)?;
        assert_eq!(trees.len(), report.nodes.len());
        for (node, tree) in &trees {
            let alone = crate::verify::node_log(store, node)?;
            assert_eq!(
                (tree.len(), tree.root()),
                (alone.len(), alone.root()),
                "{node}"
            );
        }
        Ok(report
            .nodes
            .into_iter()
            .map(|n| (n.source_node_id, n.rows, n.first_break_seq, n.reason))
            .collect())
    }

    /// Moves seq `seq` of node `n1` to the end of the table (a new rowid),
    /// as an import or a restore might, optionally changing its target.
    fn move_to_end(store: &SqliteStore, seq: i64, target: &str) -> Result<()> {
        store
            .conn
            .execute_batch(&format!(
                "CREATE TEMP TABLE moved AS SELECT * FROM audit_log WHERE source_node_id = 'n1' AND monotonic_seq = {seq};
                 DELETE FROM audit_log WHERE source_node_id = 'n1' AND monotonic_seq = {seq};
                 UPDATE moved SET target = '{target}';
                 INSERT INTO audit_log SELECT * FROM moved;
                 DROP TABLE moved;"
            ))
            .map_err(sql_err("move row"))
    }

    #[test]
    fn verify_gives_the_chain_order_verdict_whatever_the_table_order() -> Result<()> {
        let mut store = SqliteStore::memory()?;
        // Two nodes interleaved batch by batch, as two pipelines write.
        for i in 0..4 {
            for node in ["n1", "n2"] {
                let mut batch = vec![
                    row(node, &format!("evt-{node}-{i}a")),
                    row(node, &format!("evt-{node}-{i}b")),
                ];
                store.append(&mut batch, false)?;
            }
        }
        let all_ok = vec![
            ("n1".to_owned(), 8, None, None),
            ("n2".to_owned(), 8, None, None),
        ];
        assert_eq!(verdicts(&mut store)?, all_ok);
        // Out of table order but intact: still verifies, by the ordered walk.
        move_to_end(&store, 3, "")?;
        assert_eq!(verdicts(&mut store)?, all_ok);
        // Out of order and changed: named at its seq, with the rows before it.
        move_to_end(&store, 5, "forged")?;
        assert_eq!(
            verdicts(&mut store)?,
            [
                (
                    "n1".to_owned(),
                    4,
                    Some(5),
                    Some("hash does not match the row".to_owned())
                ),
                ("n2".to_owned(), 8, None, None),
            ]
        );
        // A row that does not decode sends every node to the ordered walk.
        store
            .conn
            .execute_batch("UPDATE audit_log SET actor = X'00ff' WHERE source_node_id = 'n2' AND monotonic_seq = 2")
            .map_err(sql_err("blob actor"))?;
        let got = verdicts(&mut store)?;
        assert_eq!((got[0].1, got[0].2), (4, Some(5)));
        assert_eq!((got[1].1, got[1].2), (1, Some(2)));
        assert!(
            got[1].3.as_deref().is_some_and(|r| r
                .starts_with("row cannot be read: row evt-n2-0b (monotonic_seq 2): column actor")),
            "{got:?}"
        );
        Ok(())
    }

    #[test]
    fn recheck_skips_rows_already_stored_without_gaps() -> Result<()> {
        let mut store = SqliteStore::memory()?;
        let mut first = vec![row("n1", "evt-a")];
        store.append(&mut first, false)?;
        let mut retry = vec![row("n1", "evt-a"), row("n1", "evt-b")];
        // Both are stored now: one by this attempt, one by the earlier one.
        assert_eq!(store.append(&mut retry, true)?, 2);
        assert_eq!(retry.len(), 1);
        assert_eq!(retry[0].monotonic_seq, 2);
        // Without recheck the duplicate id is refused and nothing of the batch lands.
        let mut dup = vec![row("n1", "evt-c"), row("n1", "evt-a")];
        assert!(store.append(&mut dup, false).is_err());
        assert_eq!(store.get("evt-c")?, None);
        Ok(())
    }

    #[test]
    fn migration_is_idempotent_and_additive() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::store("tempdir", e))?;
        let path = dir.path().join("a.db");
        {
            // An older table without the bookkeeping column `shipped_at`.
            let conn = Connection::open(&path).map_err(sql_err("open"))?;
            let defs: Vec<String> = COLUMNS
                .iter()
                .filter(|(n, _, _)| *n != "shipped_at")
                .map(|(n, ty, _)| format!("{n} {ty}"))
                .collect();
            conn.execute_batch(&format!("CREATE TABLE audit_log ({})", defs.join(", ")))
                .map_err(sql_err("create"))?;
        }
        assert!(SqliteStore::open(&path, "audit_log", Access::Read).is_err());
        SqliteStore::open(&path, "audit_log", Access::Write)?;
        let mut store = SqliteStore::open(&path, "audit_log", Access::Write)?;
        let mut rows = vec![row("n1", "evt-a")];
        store.append(&mut rows, false)?;
        SqliteStore::open(&path, "audit_log", Access::Read)?;
        Ok(())
    }

    /// Issue #12 item 5: a table without a column of canonical form 3
    /// (here `outcome`, as the original schema) is another
    /// implementation's: read with the column absent, never migrated.
    #[test]
    fn issue_12_tables_without_form_3_columns_are_read_not_migrated() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::store("tempdir", e))?;
        let path = dir.path().join("a.db");
        {
            let conn = Connection::open(&path).map_err(sql_err("open"))?;
            let defs: Vec<String> = COLUMNS
                .iter()
                .filter(|(n, _, _)| *n != "outcome")
                .map(|(n, ty, _)| format!("{n} {ty}"))
                .collect();
            conn.execute_batch(&format!("CREATE TABLE audit_log ({})", defs.join(", ")))
                .map_err(sql_err("create"))?;
        }
        let store = SqliteStore::open(&path, "audit_log", Access::Read)?;
        assert_eq!(store.missing_columns(), ["outcome"]);
        let err = SqliteStore::open(&path, "audit_log", Access::Write).unwrap_err();
        insta::assert_snapshot!(err, @r#"table "audit_log" was written by another fasten implementation: it lacks the column outcome of canonical form 3; fasten never writes to it or appends form-3 rows to a chain of another form: set FASTEN_AUDIT_DSN to a new table (e.g. ?table=audit_log_v3) and keep this one for reading (fasten tail and correlate read it)"#);
        assert!(SqliteStore::open(&path, "audit_log", Access::Maintain).is_err());
        assert_eq!(
            SqliteStore::open(&path, "audit_log", Access::Read)?.missing_columns(),
            ["outcome"]
        );
        Ok(())
    }
}
