//! Tables for the sys and api streams (`sys_log`, `api_log`): plain rows,
//! not chained, one insert per batch. A row type lists its columns once
//! ([`Col`]); rows cross as their serde JSON form, so each backend needs no
//! code per stream.

use serde_json::{Map, Value};

use crate::dsn::Dsn;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::dsn::Repr;
use crate::error::{Error, ErrorKind, Result};

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// A row type with a stream table: its name and its columns. Rows cross
/// to and from the table as their serde JSON form.
pub(crate) trait Table: for<'de> serde::Deserialize<'de> {
    /// `sys` or `api`: the `stream` field of a stdout line.
    const STREAM: &'static str;
    /// The table's columns; their names are the row's field names.
    const COLUMNS: &'static [Col];
}

/// A column's type, mapped per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColType {
    /// The row id: text primary key.
    Key,
    /// The contract's timestamp text; `TIMESTAMPTZ` on PostgreSQL.
    Time,
    Text,
    NullText,
    /// A JSON object; `JSONB` on PostgreSQL.
    Json,
    Int,
    NullInt,
    Float,
}

impl ColType {
    /// Whether the column may hold NULL, so an older table can gain it.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    fn nullable(self) -> bool {
        matches!(self, Self::NullText | Self::NullInt)
    }

    /// `(SQLite, PostgreSQL)` column definitions.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    fn ddl(self) -> (&'static str, &'static str) {
        match self {
            Self::Key => ("TEXT PRIMARY KEY", "TEXT PRIMARY KEY"),
            Self::Time => ("TEXT NOT NULL", "TIMESTAMPTZ NOT NULL"),
            Self::Text => ("TEXT NOT NULL", "TEXT NOT NULL"),
            Self::NullText => ("TEXT NULL", "TEXT NULL"),
            Self::Json => ("TEXT NOT NULL", "JSONB NOT NULL"),
            Self::Int => ("INTEGER NOT NULL", "BIGINT NOT NULL"),
            Self::NullInt => ("INTEGER NULL", "BIGINT NULL"),
            Self::Float => ("REAL NOT NULL", "DOUBLE PRECISION NOT NULL"),
        }
    }
}

/// One column: its name is the row's field name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Col {
    pub(crate) name: &'static str,
    pub(crate) ty: ColType,
}

impl Col {
    pub(crate) const fn new(name: &'static str, ty: ColType) -> Self {
        Self { name, ty }
    }
}

/// The audit columns a reader may filter on with `=`.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const AUDIT_FILTERS: [Col; 10] = [
    Col::new("request_id", ColType::Text),
    Col::new("code", ColType::Text),
    Col::new("domain", ColType::Text),
    Col::new("actor", ColType::Text),
    Col::new("actor_kind", ColType::Text),
    Col::new("target", ColType::Text),
    Col::new("outcome", ColType::Text),
    Col::new("severity", ColType::Text),
    Col::new("source_node_id", ColType::Text),
    Col::new("tenant_id", ColType::Text),
];

/// Columns that get an index: the correlation key and the time order.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const INDEXED: [(&str, &str); 2] = [
    ("request_id_time", "request_id, timestamp"),
    ("timestamp", "timestamp"),
];

/// The edge's marker of a row the central store has (`FASTEN_SHIP_STREAMS`):
/// a nullable column beside the row's own, with its DDL as `(SQLite,
/// PostgreSQL)`, and a partial index of the rows still waiting, so a
/// shipper reads only those. A marker per row rather than a high-water mark
/// of `(timestamp, id)`: rows are timed when pushed but committed later, by
/// any of the processes sharing the table, so a row can land behind one
/// that already shipped; a mark would skip it, the column cannot.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const SHIPPED_AT: (&str, &str, &str) = ("shipped_at", "TEXT NULL", "TIMESTAMPTZ NULL");

/// The partial index of [`SHIPPED_AT`]: its name suffix and definition.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const UNSHIPPED: (&str, &str) =
    ("unshipped", "(timestamp, id) WHERE shipped_at IS NULL");

/// ` WHERE shipped_at IS NULL ORDER BY timestamp, id LIMIT n`: the oldest
/// rows not shipped yet, in the order they ship.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn unshipped_sql(limit: usize) -> String {
    format!(
        " WHERE shipped_at IS NULL ORDER BY timestamp, id LIMIT {}",
        limit.max(1)
    )
}

/// A newest-first page of stream rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    /// `column = value` conditions; columns are the row type's own.
    pub(crate) eq: Vec<(&'static str, Value)>,
    /// `timestamp >= since`.
    pub(crate) since: Option<String>,
    /// `timestamp < until`.
    pub(crate) until: Option<String>,
    /// Keyset cursor: rows strictly older than this `(timestamp, id)`.
    pub(crate) before: Option<(String, String)>,
    pub(crate) limit: usize,
}

/// What both backends provide.
pub(crate) trait StreamStore: Send {
    fn kind(&self) -> &'static str;
    /// Inserts rows (serde JSON objects of the row type) in one transaction.
    fn insert(&mut self, rows: &[Value]) -> Result<()>;
    /// Rows as JSON objects, newest first.
    fn query(&mut self, q: &Query) -> Result<Vec<Value>>;
    /// Up to `limit` rows not shipped yet, oldest first (by timestamp,
    /// then id), as JSON objects.
    fn unshipped(&mut self, limit: usize) -> Result<Vec<Value>>;
    /// Sets `shipped_at` to `at` (the contract's text form) on the rows
    /// with these ids, in one statement.
    fn mark_shipped(&mut self, ids: &[String], at: &str) -> Result<()>;
}

/// Opens (creating if needed) the table a stream DSN names.
pub(crate) fn open<T: Table>(dsn: &Dsn) -> Result<Box<dyn StreamStore>> {
    match dsn.repr() {
        #[cfg(feature = "sqlite")]
        Repr::Sqlite { path, table } => Ok(Box::new(sqlite::SqliteStreams::open(
            path,
            table,
            T::COLUMNS,
        )?)),
        #[cfg(feature = "postgres")]
        Repr::Postgres { url, schema, table } => Ok(Box::new(postgres::PostgresStreams::open(
            url,
            schema.as_deref(),
            table,
            T::COLUMNS,
        )?)),
        #[allow(unreachable_patterns)]
        _ => Err(Error::new(
            ErrorKind::Store,
            format!(
                "{dsn} needs a store feature this build of fasten lacks (`sqlite` or `postgres`)"
            ),
        )),
    }
}

/// Opens the table a stream DSN names for reading: read-only, creating and
/// migrating nothing (a reader touches no store). `None` while the file or
/// the table does not exist: no writer has made it yet, so it holds no rows.
pub(crate) fn open_existing<T: Table>(dsn: &Dsn) -> Result<Option<Box<dyn StreamStore>>> {
    match dsn.repr() {
        #[cfg(feature = "sqlite")]
        Repr::Sqlite { path, table } => {
            Ok(
                sqlite::SqliteStreams::open_existing(path, table, T::COLUMNS)?
                    .map(|s| Box::new(s) as Box<dyn StreamStore>),
            )
        }
        #[cfg(feature = "postgres")]
        Repr::Postgres { url, schema, table } => Ok(postgres::PostgresStreams::open_existing(
            url,
            schema.as_deref(),
            table,
            T::COLUMNS,
        )?
        .map(|s| Box::new(s) as Box<dyn StreamStore>)),
        #[allow(unreachable_patterns)]
        _ => open::<T>(dsn).map(Some),
    }
}

/// Reads rows of `T` from its table, newest first.
pub(crate) fn read<T: Table>(store: &mut dyn StreamStore, q: &Query) -> Result<Vec<T>> {
    for (col, _) in &q.eq {
        if !T::COLUMNS.iter().any(|c| c.name == *col) {
            return Err(Error::new(
                ErrorKind::Store,
                format!("the {} stream has no column {col}", T::STREAM),
            ));
        }
    }
    store
        .query(q)?
        .into_iter()
        .map(|v| {
            serde_json::from_value(v).map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    format!("a stored {} row does not decode", T::STREAM),
                )
                .with_source(e)
            })
        })
        .collect()
}

/// The SQL text of a cell, or `None` for NULL, as each backend binds it.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
impl Cell {
    fn of(col: &Col, row: &Value) -> Self {
        let v = row.get(col.name).unwrap_or(&Value::Null);
        match col.ty {
            ColType::Key | ColType::Time | ColType::Text | ColType::NullText => {
                Self::Text(v.as_str().map(str::to_owned))
            }
            ColType::Json => Self::Text(Some(v.to_string())),
            ColType::Int | ColType::NullInt => Self::Int(v.as_i64()),
            ColType::Float => Self::Float(v.as_f64()),
        }
    }

    /// Back to the row's JSON form.
    fn into_value(self, ty: ColType) -> Value {
        match self {
            Self::Text(None) | Self::Int(None) | Self::Float(None) => Value::Null,
            Self::Text(Some(s)) if ty == ColType::Json => {
                crate::canonical::parse_strict(&s).unwrap_or(Value::String(s))
            }
            Self::Text(Some(s)) => Value::String(s),
            Self::Int(Some(i)) => Value::from(i),
            Self::Float(Some(f)) => Value::from(f),
        }
    }
}

/// A row object from its cells, in column order.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn object(cols: &[Col], cells: impl IntoIterator<Item = Cell>) -> Value {
    let map: Map<String, Value> = cols
        .iter()
        .zip(cells)
        .map(|(c, cell)| (c.name.to_owned(), cell.into_value(c.ty)))
        .collect();
    Value::Object(map)
}

/// `WHERE … ORDER BY … LIMIT …` for a query, and its parameters in order.
/// `param(i, ty)` writes the backend's placeholder for parameter `i`
/// (1-based) of column type `ty`, cast as the backend needs.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn filter_sql(
    q: &Query,
    cols: &[Col],
    param: impl Fn(usize, ColType) -> String,
) -> (String, Vec<Cell>) {
    let (mut sql, params) = where_sql(q, cols, param);
    sql.push_str(&format!(
        " ORDER BY timestamp DESC, id DESC LIMIT {}",
        q.limit.max(1)
    ));
    (sql, params)
}

/// The ` WHERE …` part of [`filter_sql`] (empty without conditions), and
/// its parameters in order.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn where_sql(
    q: &Query,
    cols: &[Col],
    param: impl Fn(usize, ColType) -> String,
) -> (String, Vec<Cell>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    let push = |ty: ColType, cell: Cell, params: &mut Vec<Cell>| {
        params.push(cell);
        param(params.len(), ty)
    };
    for (name, value) in &q.eq {
        let col = cols
            .iter()
            .find(|c| c.name == *name)
            .copied()
            .unwrap_or(Col::new("id", ColType::Key));
        let cell = Cell::of(&col, &serde_json::json!({ col.name: value }));
        let p = push(col.ty, cell, &mut params);
        clauses.push(format!("{} = {p}", col.name));
    }
    if let Some(since) = &q.since {
        let p = push(ColType::Time, Cell::Text(Some(since.clone())), &mut params);
        clauses.push(format!("timestamp >= {p}"));
    }
    if let Some(until) = &q.until {
        let p = push(ColType::Time, Cell::Text(Some(until.clone())), &mut params);
        clauses.push(format!("timestamp < {p}"));
    }
    if let Some((ts, id)) = &q.before {
        let a = push(ColType::Time, Cell::Text(Some(ts.clone())), &mut params);
        let b = push(ColType::Key, Cell::Text(Some(id.clone())), &mut params);
        clauses.push(format!("(timestamp, id) < ({a}, {b})"));
    }
    let mut sql = String::new();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    (sql, params)
}
