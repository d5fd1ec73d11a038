//! Stream tables in a SQLite file: WAL, `synchronous=NORMAL` (a stream row
//! survives the process crashing, not the machine losing power; audit rows
//! keep `FULL`).

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde_json::Value;

use super::{
    Cell, Col, ColType, INDEXED, Query, SHIPPED_AT, StreamStore, UNSHIPPED, filter_sql, object,
    unshipped_sql,
};
use crate::error::{Error, Result};
use crate::store::Access;
use crate::store::sqlite::{connect, sql_err};

pub(super) struct SqliteStreams {
    conn: Connection,
    table: String,
    cols: &'static [Col],
    insert_sql: String,
    select_sql: String,
    /// The table lacks some of `cols` (an older fasten's, read as it is).
    incomplete: bool,
}

impl SqliteStreams {
    pub(super) fn open(path: &Path, table: &str, cols: &'static [Col]) -> Result<Self> {
        let conn = connect(path, Access::Write)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql_err("set busy_timeout"))?;
        let _: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql_err("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err("set synchronous"))?;
        let (shipped, shipped_ddl, _) = SHIPPED_AT;
        let defs: Vec<String> = cols
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty.ddl().0))
            .chain([format!("{shipped} {shipped_ddl}")])
            .collect();
        let mut ddl = format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" ({});",
            defs.join(", ")
        );
        for (name, cols) in INDEXED {
            ddl.push_str(&format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_{name}\" ON \"{table}\" ({cols});"
            ));
        }
        conn.execute_batch(&ddl)
            .map_err(|e| Error::store(format!("sqlite: create stream table {table}"), e))?;
        // Additive migration: a table made by an older fasten gets the
        // nullable columns added since (`trace_id`, `span_id`, `shipped_at`).
        let have = columns(&conn, table)?;
        let added = cols
            .iter()
            .filter(|c| c.ty.nullable())
            .map(|c| (c.name, c.ty.ddl().0))
            .chain([(shipped, shipped_ddl)]);
        for (name, ddl) in added {
            if !have.iter().any(|h| h == name) {
                conn.execute_batch(&format!("ALTER TABLE \"{table}\" ADD COLUMN {name} {ddl}"))
                    .map_err(|e| {
                        Error::store(format!("sqlite: add column {name} to {table}"), e)
                    })?;
            }
        }
        // After the migration: the index needs the column.
        let (suffix, def) = UNSHIPPED;
        conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_{suffix}\" ON \"{table}\" {def}"
        ))
        .map_err(|e| Error::store(format!("sqlite: index {table}"), e))?;
        let names: Vec<String> = cols.iter().map(|c| c.name.to_owned()).collect();
        Ok(Self::new(conn, table, cols, &names))
    }

    /// Opens `table` read-only, creating and migrating nothing; `None` while
    /// the file or the table does not exist.
    pub(super) fn open_existing(
        path: &Path,
        table: &str,
        cols: &'static [Col],
    ) -> Result<Option<Self>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = connect(path, Access::Read)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql_err("set busy_timeout"))?;
        let have = columns(&conn, table)?;
        Ok((!have.is_empty()).then(|| Self::new(conn, table, cols, &have)))
    }

    /// A store over `table`, which has the columns `have`.
    fn new(conn: Connection, table: &str, cols: &'static [Col], have: &[String]) -> Self {
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let (select_sql, incomplete) = select_sql(table, cols, have);
        Self {
            insert_sql: format!(
                "INSERT OR IGNORE INTO \"{table}\" ({}) VALUES ({})",
                names.join(", "),
                marks.join(", ")
            ),
            select_sql,
            incomplete,
            conn,
            table: table.to_owned(),
            cols,
        }
    }

    /// The rows `SELECT`ed with `tail` (its `WHERE … ORDER BY … LIMIT …`)
    /// and its parameters, as JSON objects.
    fn select(&mut self, tail: &str, params: Vec<Cell>) -> Result<Vec<Value>> {
        if self.incomplete {
            // A reader of an older fasten's table: a writer may have added
            // the missing columns since.
            let have = columns(&self.conn, &self.table)?;
            (self.select_sql, self.incomplete) = select_sql(&self.table, self.cols, &have);
        }
        let sql = format!("{}{tail}", self.select_sql);
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(sql_err("prepare stream query"))?;
        let cols = self.cols;
        let rows = stmt
            .query_map(params_from_iter(params.into_iter().map(bind)), |r| {
                let mut cells = Vec::with_capacity(cols.len());
                for (i, c) in cols.iter().enumerate() {
                    cells.push(cell(r.get_ref(i)?, c.ty));
                }
                Ok(object(cols, cells))
            })
            .map_err(sql_err("query stream"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err("read stream rows"))
    }
}

/// The `SELECT` of `cols` from `table`, which has the columns `have`: a
/// column an older fasten's table lacks reads as NULL (then `true`).
fn select_sql(table: &str, cols: &[Col], have: &[String]) -> (String, bool) {
    let mut incomplete = false;
    let list: Vec<String> = cols
        .iter()
        .map(|c| {
            if have.iter().any(|h| h == c.name) {
                c.name.to_owned()
            } else {
                incomplete = true;
                format!("NULL AS {}", c.name)
            }
        })
        .collect();
    (
        format!("SELECT {} FROM \"{table}\"", list.join(", ")),
        incomplete,
    )
}

/// The columns `table` has; none when it does not exist.
fn columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(sql_err("read stream table columns"))?;
    stmt.query_map([table], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
        .map_err(sql_err("read stream table columns"))
}

pub(crate) fn bind(cell: Cell) -> SqlValue {
    match cell {
        Cell::Text(Some(s)) => SqlValue::Text(s),
        Cell::Int(Some(i)) => SqlValue::Integer(i),
        Cell::Float(Some(f)) => SqlValue::Real(f),
        Cell::Text(None) | Cell::Int(None) | Cell::Float(None) => SqlValue::Null,
    }
}

fn cell(v: ValueRef<'_>, ty: ColType) -> Cell {
    match (v, ty) {
        (ValueRef::Integer(i), ColType::Float) => Cell::Float(Some(i as f64)),
        (ValueRef::Integer(i), _) => Cell::Int(Some(i)),
        (ValueRef::Real(f), _) => Cell::Float(Some(f)),
        (ValueRef::Text(t) | ValueRef::Blob(t), _) => {
            Cell::Text(Some(String::from_utf8_lossy(t).into_owned()))
        }
        (ValueRef::Null, _) => Cell::Text(None),
    }
}

impl StreamStore for SqliteStreams {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn insert(&mut self, rows: &[Value]) -> Result<()> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql_err("begin stream batch"))?;
        {
            let mut stmt = tx
                .prepare_cached(&self.insert_sql)
                .map_err(sql_err("prepare stream insert"))?;
            for row in rows {
                let values = self.cols.iter().map(|c| bind(Cell::of(c, row)));
                stmt.execute(params_from_iter(values))
                    .map_err(|e| Error::store(format!("sqlite: insert into {}", self.table), e))?;
            }
        }
        tx.commit().map_err(sql_err("commit stream batch"))
    }

    fn query(&mut self, q: &Query) -> Result<Vec<Value>> {
        let (filter, params) = filter_sql(q, self.cols, |i, _| format!("?{i}"));
        self.select(&filter, params)
    }

    fn unshipped(&mut self, limit: usize) -> Result<Vec<Value>> {
        self.select(&unshipped_sql(limit), Vec::new())
    }

    fn mark_shipped(&mut self, ids: &[String], at: &str) -> Result<()> {
        // One statement: the ids travel as a JSON array, not one
        // placeholder each (SQLite caps the number of those).
        let ids = serde_json::to_string(ids).unwrap_or_default();
        self.conn
            .execute(
                &format!(
                    "UPDATE \"{}\" SET shipped_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))",
                    self.table
                ),
                [at, ids.as_str()],
            )
            .map_err(|e| Error::store(format!("sqlite: mark {} rows shipped", self.table), e))?;
        Ok(())
    }
}
