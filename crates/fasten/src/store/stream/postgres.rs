//! Stream tables in PostgreSQL: one `INSERT … SELECT FROM unnest(…)` of
//! column arrays per batch, as the audit store does.

use serde_json::Value;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::{
    Cell, Col, ColType, INDEXED, Query, SHIPPED_AT, StreamStore, UNSHIPPED, filter_sql, object,
    unshipped_sql,
};
use crate::error::Result;
use crate::store::postgres::{
    ClientRuntime, col, connect, pg_err, schema_complete, table_columns, ts_text,
};

pub(super) struct PostgresStreams {
    rt: ClientRuntime,
    client: Client,
    qualified: String,
    cols: &'static [Col],
    insert_sql: String,
    select_list: String,
    /// The table lacks some of `cols` (an older fasten's, read as it is):
    /// its schema and name, to look again.
    incomplete: Option<(Option<String>, String)>,
}

/// The select list of `cols` from a table with the columns `have`: a
/// column an older fasten's table lacks reads as NULL (then `true`).
fn select_list(cols: &[Col], have: &[String]) -> (String, bool) {
    let mut incomplete = false;
    let list: Vec<String> = cols
        .iter()
        .map(|c| match c.ty {
            _ if !have.iter().any(|h| h == c.name) => {
                incomplete = true;
                format!("NULL::{} AS {}", wire(c.ty).0, c.name)
            }
            ColType::Time => ts_text(c.name),
            ColType::Json => format!("{}::text", c.name),
            _ => c.name.to_owned(),
        })
        .collect();
    (list.join(", "), incomplete)
}

fn qualify(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(s) => format!("\"{s}\".\"{table}\""),
        None => format!("\"{table}\""),
    }
}

/// The array type a column crosses as, and the cast back to its own type.
pub(crate) fn wire(ty: ColType) -> (&'static str, &'static str) {
    match ty {
        ColType::Key | ColType::Text | ColType::NullText => ("text", ""),
        ColType::Time => ("text", "::timestamptz"),
        ColType::Json => ("text", "::jsonb"),
        ColType::Int | ColType::NullInt => ("int8", ""),
        ColType::Float => ("float8", ""),
    }
}

impl PostgresStreams {
    pub(super) fn open(
        url: &str,
        schema: Option<&str>,
        table: &str,
        cols: &'static [Col],
    ) -> Result<Self> {
        let (rt, mut client) = connect(url)?;
        let qualified = qualify(schema, table);
        let defs: Vec<String> = cols
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty.ddl().1))
            .collect();
        let mut ddl = String::new();
        if let Some(s) = schema {
            ddl.push_str(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\";"));
        }
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {qualified} ({});",
            defs.join(", ")
        ));
        // Additive migration: a table made by an older fasten gets the
        // nullable columns added since (`trace_id`, `span_id`, `shipped_at`).
        let (shipped, _, shipped_ddl) = SHIPPED_AT;
        let added = cols
            .iter()
            .filter(|c| c.ty.nullable())
            .map(|c| (c.name, c.ty.ddl().1))
            .chain([(shipped, shipped_ddl)]);
        for (name, def) in added {
            ddl.push_str(&format!(
                "ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {name} {def};"
            ));
        }
        for (name, cols) in INDEXED {
            ddl.push_str(&format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_{name}\" ON {qualified} ({cols});"
            ));
        }
        let (suffix, def) = UNSHIPPED;
        ddl.push_str(&format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_{suffix}\" ON {qualified} {def};"
        ));
        let columns: Vec<&str> = cols.iter().map(|c| c.name).chain([shipped]).collect();
        let relations: Vec<String> = INDEXED
            .iter()
            .map(|(name, _)| *name)
            .chain([suffix])
            .map(|s| format!("{table}_{s}"))
            .collect();
        // Concurrent first starts can collide in the catalog even with
        // IF NOT EXISTS; an advisory lock keyed by the table serialises them.
        let lock = format!("fasten migrate {qualified}");
        rt.block_on(async {
            // The DDL locks the table even when it changes nothing.
            let have = table_columns(&client, schema, table).await?;
            if schema_complete(&client, schema, &have, &columns, &relations).await? {
                return Ok(());
            }
            let tx = client.transaction().await?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&lock],
            )
            .await?;
            tx.batch_execute(&ddl).await?;
            tx.commit().await
        })
        .map_err(pg_err("create stream table"))?;
        let names: Vec<String> = cols.iter().map(|c| c.name.to_owned()).collect();
        Ok(Self::new(rt, client, (schema, table), cols, &names))
    }

    /// Opens `table` for reading, creating and migrating nothing; `None`
    /// while it does not exist.
    pub(super) fn open_existing(
        url: &str,
        schema: Option<&str>,
        table: &str,
        cols: &'static [Col],
    ) -> Result<Option<Self>> {
        let (rt, client) = connect(url)?;
        let have = rt
            .block_on(table_columns(&client, schema, table))
            .map_err(pg_err("read stream table columns"))?;
        Ok((!have.is_empty()).then(|| Self::new(rt, client, (schema, table), cols, &have)))
    }

    /// A store over `table` in `schema`, which has the columns `have`.
    fn new(
        rt: ClientRuntime,
        client: Client,
        (schema, table): (Option<&str>, &str),
        cols: &'static [Col],
        have: &[String],
    ) -> Self {
        let qualified = qualify(schema, table);
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        let (arrays, casts): (Vec<String>, Vec<String>) = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (array, cast) = wire(c.ty);
                (format!("${}::{array}[]", i + 1), format!("c{i}{cast}"))
            })
            .unzip();
        let aliases: Vec<String> = (0..cols.len()).map(|i| format!("c{i}")).collect();
        let (select_list, incomplete) = select_list(cols, have);
        Self {
            insert_sql: format!(
                "INSERT INTO {qualified} ({}) SELECT {} FROM unnest({}) AS u({}) ON CONFLICT (id) DO NOTHING",
                names.join(", "),
                casts.join(", "),
                arrays.join(", "),
                aliases.join(", ")
            ),
            select_list,
            incomplete: incomplete.then(|| (schema.map(str::to_owned), table.to_owned())),
            rt,
            client,
            qualified,
            cols,
        }
    }

    /// The rows `SELECT`ed with `tail` (its `WHERE … ORDER BY … LIMIT …`)
    /// and its parameters, as JSON objects.
    fn select(&mut self, tail: &str, cells: Vec<Cell>) -> Result<Vec<Value>> {
        if let Some((schema, table)) = &self.incomplete {
            // A reader of an older fasten's table: a writer may have added
            // the missing columns since.
            let have = self
                .rt
                .block_on(table_columns(&self.client, schema.as_deref(), table))
                .map_err(pg_err("read stream table columns"))?;
            let (list, incomplete) = select_list(self.cols, &have);
            self.select_list = list;
            if !incomplete {
                self.incomplete = None;
            }
        }
        let sql = format!("SELECT {} FROM {}{tail}", self.select_list, self.qualified);
        let boxed: Vec<Box<dyn ToSql + Sync + Send>> = cells.into_iter().map(param).collect();
        let params: Vec<&(dyn ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = self
            .rt
            .block_on(self.client.query(&sql, &params))
            .map_err(pg_err("query stream"))?;
        let cols = self.cols;
        let t = &self.qualified;
        rows.iter()
            .map(|r| {
                let cells = cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        Ok(match wire(c.ty).0 {
                            "int8" => Cell::Int(col(r, i, t)?),
                            "float8" => Cell::Float(col(r, i, t)?),
                            _ => Cell::Text(col(r, i, t)?),
                        })
                    })
                    .collect::<Result<Vec<Cell>>>()?;
                Ok(object(cols, cells))
            })
            .collect()
    }
}

/// One column's values as the array PostgreSQL receives.
enum Column {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
}

impl Column {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Text(v) => v,
            Self::Int(v) => v,
            Self::Float(v) => v,
        }
    }
}

pub(crate) fn param(cell: Cell) -> Box<dyn ToSql + Sync + Send> {
    match cell {
        Cell::Text(v) => Box::new(v),
        Cell::Int(v) => Box::new(v),
        Cell::Float(v) => Box::new(v),
    }
}

impl StreamStore for PostgresStreams {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn insert(&mut self, rows: &[Value]) -> Result<()> {
        let columns: Vec<Column> = self
            .cols
            .iter()
            .map(|c| {
                let cells = rows.iter().map(|r| Cell::of(c, r));
                match wire(c.ty).0 {
                    "int8" => Column::Int(
                        cells
                            .map(|x| if let Cell::Int(i) = x { i } else { None })
                            .collect(),
                    ),
                    "float8" => Column::Float(
                        cells
                            .map(|x| if let Cell::Float(f) = x { f } else { None })
                            .collect(),
                    ),
                    _ => Column::Text(
                        cells
                            .map(|x| if let Cell::Text(t) = x { t } else { None })
                            .collect(),
                    ),
                }
            })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(Column::as_sql).collect();
        self.rt
            .block_on(self.client.execute(&self.insert_sql, &params))
            .map_err(pg_err("insert stream rows"))?;
        Ok(())
    }

    fn query(&mut self, q: &Query) -> Result<Vec<Value>> {
        let (filter, cells) = filter_sql(q, self.cols, |i, ty| {
            let (t, cast) = wire(ty);
            format!("${i}::{t}{cast}")
        });
        self.select(&filter, cells)
    }

    fn unshipped(&mut self, limit: usize) -> Result<Vec<Value>> {
        self.select(&unshipped_sql(limit), Vec::new())
    }

    fn mark_shipped(&mut self, ids: &[String], at: &str) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET shipped_at = $1::text::timestamptz WHERE id = ANY($2::text[])",
            self.qualified
        );
        self.rt
            .block_on(self.client.execute(&sql, &[&at, &ids]))
            .map_err(pg_err("mark stream rows shipped"))?;
        Ok(())
    }
}
