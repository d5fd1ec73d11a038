//! PostgreSQL: the store for fleets, many processes on many nodes writing
//! one table.
//!
//! A batch is one transaction: `pg_advisory_xact_lock` keyed by table and
//! node serialises writers of one node (other nodes go on in parallel), the
//! chain tip is read under that lock, and the rows go in with one `INSERT …
//! SELECT FROM unnest(…)` of column arrays however large the batch.
//! Timestamps cross as the contract's text form and detail as JSON text, so
//! what is read back hashes exactly as it was sealed.
//!
//! The writer is one plain thread, but it drives `tokio-postgres` on a
//! current-thread runtime of its own rather than the blocking `postgres`
//! wrapper, for one reason: pipelining. `BEGIN`, the lock and the tip read go
//! out together, then the `INSERT` and `COMMIT` together, so a batch costs
//! two network round trips instead of five. In `raise` mode, where a caller
//! waits for each commit, that is most of the latency. The server still runs
//! the statements one after another, so the tip is read after the lock is
//! held, in a snapshot taken after it.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

mod fleet;
pub(crate) use fleet::Judgement;

use super::{
    Access, CHECKPOINT_COLUMNS, COLUMNS, Candidate, Erased, Foreign, INDEXED, Intent,
    LEASE_COLUMNS, MERKLE_COLUMNS, NodeCount, OWN_SUFFIXES, Scope, Store, UNERASED_INDEX,
    UNSHIPPED_INDEX, Unreadable,
};
use crate::chain::{self, Row, RowRef, Tip};
use crate::dsn::SslMode;
use crate::error::{Error, ErrorKind, Result};

/// Used when the DSN does not set `connect_timeout`: a writer must not hang
/// forever on a host that does not answer.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The contract's text form of a `TIMESTAMPTZ` column.
pub(crate) fn ts_text(col: &str) -> String {
    format!(r#"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#)
}

pub(crate) struct PostgresStore {
    rt: ClientRuntime,
    client: Client,
    /// `"schema"."table"` or `"table"`, quoted after the DSN parser checked
    /// each part against `^[A-Za-z_][A-Za-z0-9_]*$`.
    qualified: String,
    /// The quoted `<table>_checkpoints` beside it.
    checkpoints: String,
    /// The quoted `<table>_merkle` beside it.
    merkle: String,
    /// The quoted `<table>_leases` beside it.
    leases: String,
    /// The quoted `<table>_fleet` beside it: each shipping node's state.
    fleet: String,
    /// The quoted `<table>_forks` beside it: the evidence of each fork.
    forks: String,
    /// Prefix of the advisory-lock key; the node is appended.
    lock_prefix: String,
    select_sql: String,
    /// The form-3 columns a foreign table (opened for reading) lacks.
    missing: Vec<&'static str>,
    /// Prepared once per connection: a one-row batch in `raise` mode is
    /// round-trip bound, and an unprepared statement costs a second round
    /// trip (and a fresh plan) every time.
    statements: Option<Prepared>,
    buf: Vec<u8>,
}

struct Prepared {
    lock: tokio_postgres::Statement,
    tip: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.qualified)
            .finish_non_exhaustive()
    }
}

/// The client's own runtime: one worker thread that owns the socket and
/// drives the connection, whoever calls.
///
/// Callers wait for the client's futures with a plain executor
/// ([`Self::block_on`]) instead of entering a tokio runtime: the client's
/// futures only exchange messages with the connection task over channels, so
/// they need no reactor, and waiting this way works from synchronous code
/// and from inside any async runtime, `current_thread` included (where
/// entering a second runtime panics). Dropped without waiting, so a store
/// may be dropped anywhere, even on a thread of an async server.
pub(crate) struct ClientRuntime(Option<Runtime>);

impl ClientRuntime {
    fn start() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fasten-postgres")
            .on_thread_start(crate::quiet::mark_thread)
            .enable_all()
            .build()
            .map_err(|e| Error::store("postgres: cannot start the client runtime", e))?;
        Ok(Self(Some(rt)))
    }

    fn runtime(&self) -> &Runtime {
        self.0.as_ref().expect("present until dropped")
    }

    /// Waits for a client future on the calling thread. The future must not
    /// do I/O itself (connecting does: see [`Self::run`]).
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        crate::quiet::within(|| futures_executor::block_on(f))
    }

    /// Runs a future that does its own I/O on the client's runtime thread
    /// and waits for it.
    fn run<F>(&self, f: F) -> Result<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::quiet::within(|| futures_executor::block_on(self.runtime().spawn(f)))
            .map_err(|e| Error::store("postgres: the client runtime stopped", e))
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Connects on a runtime of the store's own, whose thread then drives the
/// connection for as long as the client lives.
pub(crate) fn connect(url: &str) -> Result<(ClientRuntime, Client)> {
    // `sslmode` and `sslrootcert` are read here (libpq's rules, on
    // rustls); the client parses the rest.
    let (client_url, tls) = crate::dsn::split_tls(url)
        .map_err(|why| Error::new(ErrorKind::Store, format!("postgres: {why}")))?;
    let mut config: tokio_postgres::Config = client_url
        .parse()
        .map_err(|e| Error::store("postgres: invalid connection string", e))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    config.ssl_mode(match tls.mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    // Host, port, user and database: what a person needs to act on a
    // refused connection. Never the password.
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let where_ = format!(
        "{host}:{port} as user {} to database {} (sslmode={})",
        config.get_user().unwrap_or("(none)"),
        config.get_dbname().unwrap_or("(default)"),
        tls.mode.as_str()
    );
    let connector = super::tls::client_config(&tls)
        .map(super::tls::Rustls::new)
        .map_err(|why| {
            Error::new(
                ErrorKind::Store,
                format!("postgres: cannot connect to {where_}: {why}"),
            )
        })?;
    let rt = ClientRuntime::start()?;
    let (client, connection) = rt
        .run(async move { config.connect(connector).await })?
        .map_err(|e| {
            let message = match super::tls::explain(&e, &tls, &host) {
                Some(why) => format!("postgres: cannot connect to {where_}: {why}"),
                None => format!("postgres: cannot connect to {where_}"),
            };
            Error::store(message, e)
        })?;
    // Ends (and requests fail) when the server goes away.
    rt.runtime().spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(target: "fasten::store", error = %e, "postgres connection closed");
        }
    });
    Ok((rt, client))
}

pub(crate) fn pg_err(what: &str) -> impl FnOnce(tokio_postgres::Error) -> Error + '_ {
    move |e| Error::store(format!("postgres: {what}"), e)
}

/// Column `i` of a row read from `from` (the table, or what the query
/// reads), decoded with `try_get`: stored data holding a NULL or a foreign
/// type is an error naming the column, never a panic in the caller.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    r: &'a tokio_postgres::Row,
    i: usize,
    from: &str,
) -> Result<T> {
    r.try_get(i).map_err(|e| {
        let name = r.columns().get(i).map_or("?", |c| c.name());
        Error::store(format!("postgres: read column {name} of {from}"), e)
    })
}

/// A count or size read from the store as `int8`, which is never negative
/// when the store holds what fasten wrote: a negative one is an error, not
/// a silent 0.
pub(crate) fn stored_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|e| Error::store(format!("postgres: {what} {v} is negative"), e))
}

impl PostgresStore {
    pub(crate) fn open(
        url: &str,
        schema: Option<&str>,
        table: &str,
        access: Access,
    ) -> Result<Self> {
        let (rt, client) = connect(url)?;
        let quote = |name: &str| match schema {
            Some(s) => format!("\"{s}\".\"{name}\""),
            None => format!("\"{name}\""),
        };
        let qualified = quote(table);
        let checkpoints = quote(&format!("{table}_checkpoints"));
        let merkle = quote(&format!("{table}_merkle"));
        let leases = quote(&format!("{table}_leases"));
        let fleet = quote(&format!("{table}_fleet"));
        let forks = quote(&format!("{table}_forks"));
        let have = rt
            .block_on(table_columns(&client, schema, table))
            .map_err(pg_err("read columns"))?;
        let missing = match access {
            Access::Read => super::readable_columns(&have, "postgres", &qualified)?,
            Access::Write | Access::Maintain => {
                // Checked before migrating: adding the form-3 columns to
                // another implementation's table would let form-3 rows
                // follow its rows.
                let lacking = super::lacking_form3(&have);
                if !lacking.is_empty() {
                    let forms = if have.iter().any(|c| c == "canonical_form_id") {
                        rt.block_on(client.query(&forms_sql(&qualified), &[]))
                            .map_err(pg_err("read canonical forms"))?
                            .iter()
                            .map(|r| col(r, 0, &qualified))
                            .collect::<Result<_>>()?
                    } else {
                        Vec::new()
                    };
                    return Err(Foreign {
                        missing: lacking,
                        forms,
                        node: None,
                    }
                    .error(&qualified, Intent::Write));
                }
                Vec::new()
            }
        };
        let names: Vec<&str> = COLUMNS.iter().map(|(n, _, _)| *n).collect();
        let selected: Vec<String> = COLUMNS
            .iter()
            .map(|(n, _, _)| match *n {
                n if missing.contains(&n) => format!("{}::text AS {n}", super::absent_column(n)),
                "timestamp" | "shipped_at" => ts_text(n),
                "detail" => "detail::text".to_owned(),
                other => other.to_owned(),
            })
            .collect();
        // Each column crosses as an array of its wire type; the casts turn
        // the contract's text forms into TIMESTAMPTZ and JSONB server-side.
        let (arrays, casts): (Vec<String>, Vec<String>) = COLUMNS
            .iter()
            .enumerate()
            .map(|(i, (n, _, _))| {
                let (array, cast) = match *n {
                    "monotonic_seq" => ("int8[]", format!("c{i}")),
                    "pii_in_detail" => ("bool[]", format!("c{i}")),
                    "timestamp" | "shipped_at" => ("text[]", format!("c{i}::timestamptz")),
                    "detail" => ("text[]", format!("c{i}::jsonb")),
                    _ => ("text[]", format!("c{i}")),
                };
                (format!("${}::{array}", i + 1), cast)
            })
            .unzip();
        let aliases: Vec<String> = (0..COLUMNS.len()).map(|i| format!("c{i}")).collect();
        let insert_sql = format!(
            "INSERT INTO {qualified} ({}) SELECT {} FROM unnest({}) AS u({})",
            names.join(", "),
            casts.join(", "),
            arrays.join(", "),
            aliases.join(", ")
        );
        let tip_sql = format!(
            "SELECT monotonic_seq, hash, canonical_form_id::text FROM {qualified} WHERE source_node_id = $1 ORDER BY monotonic_seq DESC LIMIT 1"
        );
        let mut store = Self {
            select_sql: format!("SELECT {} FROM {qualified}", selected.join(", ")),
            lock_prefix: format!("fasten chain {qualified} "),
            qualified,
            checkpoints,
            merkle,
            leases,
            fleet,
            forks,
            rt,
            client,
            statements: None,
            missing,
            buf: Vec::with_capacity(1024),
        };
        match access {
            Access::Write | Access::Maintain => {
                store.migrate(schema, table, &have)?;
                if access == Access::Maintain {
                    // As on SQLite: a sweep's erasures need no WAL flush of
                    // their own, since the writer's commit of the sweep's
                    // event flushes the WAL they precede. Each flush they
                    // skip is one the writer's commits do not queue behind.
                    store
                        .rt
                        .block_on(store.client.batch_execute("SET synchronous_commit = off"))
                        .map_err(pg_err("set synchronous_commit"))?;
                }
                let client = &store.client;
                let (lock, tip, insert) = store
                    .rt
                    .block_on(async {
                        tokio::try_join!(
                            client.prepare(LOCK_SQL),
                            client.prepare(&tip_sql),
                            client.prepare(&insert_sql),
                        )
                    })
                    .map_err(pg_err("prepare statements"))?;
                store.statements = Some(Prepared { lock, tip, insert });
            }
            Access::Read => {}
        }
        Ok(store)
    }

    /// Creates schema, table, missing columns and indexes, in one
    /// transaction, unless [`schema_complete`] finds nothing missing in the
    /// table's columns `have` (read by `open`) and its relations. Many
    /// processes start at once in a fleet, and concurrent `CREATE … IF NOT
    /// EXISTS` can still collide in the catalog, so migrations take an
    /// advisory lock.
    fn migrate(&mut self, schema: Option<&str>, table: &str, have: &[String]) -> Result<()> {
        let columns: Vec<&str> = COLUMNS.iter().map(|(n, _, _)| *n).collect();
        let relations: Vec<String> = OWN_SUFFIXES
            .into_iter()
            .chain(INDEXED.iter().map(|(name, _)| *name))
            .map(|suffix| format!("{table}_{suffix}"))
            .collect();
        let complete = self
            .rt
            .block_on(schema_complete(
                &self.client,
                schema,
                have,
                &columns,
                &relations,
            ))
            .map_err(pg_err("read the schema"))?;
        if complete {
            return Ok(());
        }
        let t = self.qualified.clone();
        let checkpoints = self.checkpoints.clone();
        let merkle = self.merkle.clone();
        let leases = self.leases.clone();
        let fleet = self.fleet.clone();
        let forks = self.forks.clone();
        let lock_key = format!("fasten migrate {t}");
        let defs: Vec<String> = COLUMNS
            .iter()
            .map(|(n, _, ty)| format!("{n} {ty}"))
            .collect();
        let client = &mut self.client;
        self.rt.block_on(async {
            let tx = client
                .transaction()
                .await
                .map_err(pg_err("begin migration"))?;
            tx.execute(LOCK_SQL, &[&lock_key])
                .await
                .map_err(pg_err("lock migration"))?;
            if let Some(s) = schema {
                tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
                    .await
                    .map_err(pg_err("create schema"))?;
            }
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {t} ({})",
                defs.join(", ")
            ))
            .await
            .map_err(pg_err("create table"))?;
            // Read again under the lock, after CREATE TABLE: the table may
            // be new, or another process may have migrated it meanwhile.
            let have = table_columns(&tx, schema, table)
                .await
                .map_err(pg_err("read columns"))?;
            for (name, _, ty) in COLUMNS {
                if !have.iter().any(|h| h == name) {
                    tx.batch_execute(&format!(
                        "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {name} {ty}"
                    ))
                    .await
                    .map_err(|e| Error::store(format!("postgres: add column {name} to {t}"), e))?;
                }
            }
            tx.batch_execute(&format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS \"{table}_node_seq\" ON {t} (source_node_id, monotonic_seq)"
            ))
            .await
            .map_err(pg_err("create chain index"))?;
            for (name, cols) in INDEXED {
                tx.batch_execute(&format!(
                    "CREATE INDEX IF NOT EXISTS \"{table}_{name}\" ON {t} ({cols})"
                ))
                .await
                .map_err(pg_err("create index"))?;
            }
            tx.batch_execute(&format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_unerased\" ON {t} {UNERASED_INDEX}"
            ))
            .await
            .map_err(pg_err("create unerased index"))?;
            tx.batch_execute(&format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_unshipped\" ON {t} {UNSHIPPED_INDEX}"
            ))
            .await
            .map_err(pg_err("create unshipped index"))?;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {checkpoints} ({CHECKPOINT_COLUMNS})"
            ))
            .await
            .map_err(pg_err("create checkpoints table"))?;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {merkle} ({MERKLE_COLUMNS})"
            ))
            .await
            .map_err(pg_err("create merkle table"))?;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {leases} ({LEASE_COLUMNS})"
            ))
            .await
            .map_err(pg_err("create leases table"))?;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {fleet} ({})",
                fleet::FLEET_COLUMNS
            ))
            .await
            .map_err(pg_err("create fleet table"))?;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {forks} ({})",
                fleet::FORK_COLUMNS
            ))
            .await
            .map_err(pg_err("create forks table"))?;
            tx.commit().await.map_err(pg_err("commit migration"))
        })
    }
}

/// The `canonical_form_id` values other than `3` in `qualified`, sorted.
fn forms_sql(qualified: &str) -> String {
    format!(
        "SELECT DISTINCT coalesce(canonical_form_id::text, 'NULL') AS f FROM {qualified} WHERE canonical_form_id::text IS DISTINCT FROM '3' ORDER BY f"
    )
}

/// The columns of `table` in `schema` (the search path's first when
/// `None`); none when the table does not exist.
pub(crate) async fn table_columns(
    client: &impl tokio_postgres::GenericClient,
    schema: Option<&str>,
    table: &str,
) -> std::result::Result<Vec<String>, tokio_postgres::Error> {
    client
        .query(COLUMNS_SQL, &[&schema, &table])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// Whether a table with the columns `have` has every column in `columns`,
/// and every relation in `relations` exists beside it in `schema`: then a
/// migration has nothing to do and must not run, because
/// `CREATE INDEX IF NOT EXISTS` takes a SHARE lock on the table even when the
/// index exists (and `ADD COLUMN IF NOT EXISTS` an exclusive one), held to
/// the end of the migration: every other writer's `INSERT` waits for it,
/// so each sweep, CLI command or new process stalled the running writers.
pub(crate) async fn schema_complete(
    client: &Client,
    schema: Option<&str>,
    have: &[String],
    columns: &[&str],
    relations: &[String],
) -> std::result::Result<bool, tokio_postgres::Error> {
    if !columns.iter().all(|c| have.iter().any(|h| h == c)) {
        return Ok(false);
    }
    let found: i64 = client
        .query_one(RELATIONS_SQL, &[&schema, &relations])
        .await?
        .try_get(0)?;
    Ok(usize::try_from(found).is_ok_and(|n| n == relations.len()))
}

const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
const RELATIONS_SQL: &str =
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = coalesce($1, current_schema()) AND c.relname = ANY($2)";
const COLUMNS_SQL: &str = "SELECT column_name::text FROM information_schema.columns
     WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2";

fn read_row(r: &tokio_postgres::Row) -> Result<Row> {
    let detail: Option<String> = r.try_get(18).map_err(pg_err("read detail"))?;
    let detail = match detail {
        Some(text) => Some(
            crate::canonical::parse_strict(&text)
                .map_err(|e| Error::store("postgres: stored detail is not JSON", e))?,
        ),
        None => None,
    };
    let get = |i: usize| -> Result<String> { col(r, i, "the audit table") };
    let opt = |i: usize| -> Result<Option<String>> { col(r, i, "the audit table") };
    Ok(Row {
        id: get(0)?,
        origin_id: get(1)?,
        monotonic_seq: col(r, 2, "the audit table")?,
        timestamp: get(3)?,
        code: get(4)?,
        action: get(5)?,
        severity: get(6)?,
        outcome: get(7)?,
        service_id: get(8)?,
        source_node_id: get(9)?,
        tenant_id: opt(10)?,
        actor: get(11)?,
        actor_kind: get(12)?,
        target: get(13)?,
        category: get(14)?,
        domain: get(15)?,
        method: get(16)?,
        request_id: get(17)?,
        detail,
        detail_salt: opt(19)?,
        detail_commitment: get(20)?,
        pii_in_detail: col(r, 21, "the audit table")?,
        shipped_at: opt(22)?,
        wire_version: get(23)?,
        canonical_form_id: get(24)?,
        prev_hash: get(25)?,
        hash: get(26)?,
    })
}

/// The row `r` borrowed from the client's buffer, with no allocation; the
/// error names the column that does not decode.
fn read_ref(r: &tokio_postgres::Row) -> std::result::Result<RowRef<'_>, String> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        r: &'a tokio_postgres::Row,
        i: usize,
    ) -> std::result::Result<T, String> {
        r.try_get(i)
            .map_err(|e| format!("column {}: {e}", COLUMNS[i].0))
    }
    Ok(RowRef {
        id: get(r, 0)?,
        origin_id: get(r, 1)?,
        monotonic_seq: get(r, 2)?,
        timestamp: get(r, 3)?,
        code: get(r, 4)?,
        action: get(r, 5)?,
        severity: get(r, 6)?,
        outcome: get(r, 7)?,
        service_id: get(r, 8)?,
        source_node_id: get(r, 9)?,
        tenant_id: get(r, 10)?,
        actor: get(r, 11)?,
        actor_kind: get(r, 12)?,
        target: get(r, 13)?,
        category: get(r, 14)?,
        domain: get(r, 15)?,
        method: get(r, 16)?,
        request_id: get(r, 17)?,
        detail: get(r, 18)?,
        detail_salt: get(r, 19)?,
        detail_commitment: get(r, 20)?,
        pii_in_detail: get(r, 21)?,
        shipped_at: get(r, 22)?,
        wire_version: get(r, 23)?,
        canonical_form_id: get(r, 24)?,
        prev_hash: get(r, 25)?,
        hash: get(r, 26)?,
    })
}

impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn table_name(&self) -> &str {
        &self.qualified
    }

    fn missing_columns(&self) -> &[&'static str] {
        &self.missing
    }

    fn foreign_forms(&mut self) -> Result<Vec<String>> {
        self.rt
            .block_on(self.client.query(&forms_sql(&self.qualified), &[]))
            .map_err(pg_err("read canonical forms"))?
            .iter()
            .map(|r| col(r, 0, &self.qualified))
            .collect()
    }

    fn tip_form(&mut self, node: &str) -> Result<Option<String>> {
        let sql = format!(
            "SELECT coalesce(canonical_form_id::text, 'NULL') FROM {} WHERE source_node_id = $1 ORDER BY monotonic_seq DESC LIMIT 1",
            self.qualified
        );
        self.rt
            .block_on(self.client.query_opt(&sql, &[&node]))
            .map_err(pg_err("read the chain tip's form"))?
            .map(|r| col(&r, 0, &self.qualified))
            .transpose()
    }

    fn append(&mut self, rows: &mut Vec<Row>, recheck: bool) -> Result<usize> {
        let node = super::batch_node(rows)?;
        let Some(prepared) = &self.statements else {
            return Err(Error::new(
                ErrorKind::Store,
                "postgres: store opened read-only",
            ));
        };
        let lock_key = format!("{}{node}", self.lock_prefix);
        let client = &self.client;
        let rt = &self.rt;
        // Round trip 1: BEGIN, the node's lock, (on a retry) which rows an
        // earlier attempt stored, and the chain tip, pipelined. The server
        // runs them in order, so the tip's statement starts after the lock
        // is held and its snapshot sees every earlier commit of the node.
        let (stored, tip) = rt
            .block_on(async {
                let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
                let recheck_sql = format!(
                    "SELECT id, source_node_id, detail_salt FROM {} WHERE id = ANY($1)",
                    self.qualified
                );
                let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&lock_key];
                let tip_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&node];
                let (begin, lock, stored, tip) = tokio::join!(
                    client.batch_execute("BEGIN"),
                    client.execute(&prepared.lock, &lock_params),
                    async {
                        if recheck {
                            client.query(&recheck_sql, &[&ids]).await.map(Some)
                        } else {
                            Ok(None)
                        }
                    },
                    client.query_opt(&prepared.tip, &tip_params),
                );
                begin.map_err(pg_err("begin"))?;
                lock.map_err(pg_err("lock chain"))?;
                let stored: HashMap<String, super::StoredIdentity> = stored
                    .map_err(pg_err("recheck ids"))?
                    .unwrap_or_default()
                    .iter()
                    .map(|r| {
                        Ok((
                            r.try_get(0)?,
                            super::StoredIdentity {
                                node: r.try_get(1)?,
                                salt: r.try_get(2)?,
                            },
                        ))
                    })
                    .collect::<std::result::Result<_, tokio_postgres::Error>>()
                    .map_err(pg_err("recheck ids"))?;
                let tip = tip.map_err(pg_err("read chain tip"))?;
                // Never continue a chain of another canonical form.
                if let Some(r) = &tip {
                    let form: Option<String> = r.try_get(2).map_err(pg_err("read chain tip"))?;
                    super::check_tip_form(
                        &self.qualified,
                        &node,
                        Some(form.as_deref().unwrap_or("NULL")),
                    )?;
                }
                // The tip is stored data: a NULL or a foreign type is an
                // error to surface, never a panic in the writer.
                let tip = match &tip {
                    Some(r) => Tip {
                        seq: r.try_get(0).map_err(pg_err("read chain tip"))?,
                        hash: r.try_get(1).map_err(pg_err("read chain tip"))?,
                    },
                    None => Tip::genesis(),
                };
                Ok::<_, Error>((stored, tip))
            })
            .inspect_err(|_| self.rollback())?;
        let mut tip = tip;
        let mut stored = stored;
        let already = super::settle_recheck(rows, |id| Ok(stored.remove(id)))?;
        for row in rows.iter_mut() {
            if let Err(e) = chain::link(row, &mut tip, &mut self.buf) {
                self.rollback();
                return Err(e);
            }
        }
        if !rows.is_empty() {
            let details: Vec<Option<String>> = rows
                .iter()
                .map(|r| r.detail.as_ref().map(Value::to_string))
                .collect();
            let text = |f: fn(&Row) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
            let maybe =
                |f: fn(&Row) -> Option<&str>| rows.iter().map(f).collect::<Vec<Option<&str>>>();
            let id = text(|r| &r.id);
            let origin_id = text(|r| &r.origin_id);
            let seq: Vec<i64> = rows.iter().map(|r| r.monotonic_seq).collect();
            let timestamp = text(|r| &r.timestamp);
            let code = text(|r| &r.code);
            let action = text(|r| &r.action);
            let severity = text(|r| &r.severity);
            let outcome = text(|r| &r.outcome);
            let service_id = text(|r| &r.service_id);
            let node_id = text(|r| &r.source_node_id);
            let tenant_id = maybe(|r| r.tenant_id.as_deref());
            let actor = text(|r| &r.actor);
            let actor_kind = text(|r| &r.actor_kind);
            let target = text(|r| &r.target);
            let category = text(|r| &r.category);
            let domain = text(|r| &r.domain);
            let method = text(|r| &r.method);
            let request_id = text(|r| &r.request_id);
            let salt = maybe(|r| r.detail_salt.as_deref());
            let commitment = text(|r| &r.detail_commitment);
            let pii: Vec<bool> = rows.iter().map(|r| r.pii_in_detail).collect();
            let shipped_at = maybe(|r| r.shipped_at.as_deref());
            let wire = text(|r| &r.wire_version);
            let form = text(|r| &r.canonical_form_id);
            let prev = text(|r| &r.prev_hash);
            let hash = text(|r| &r.hash);
            // Round trip 2: the rows and the COMMIT, pipelined. If the
            // INSERT fails, the server answers the COMMIT with a ROLLBACK.
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 27] = [
                &id,
                &origin_id,
                &seq,
                &timestamp,
                &code,
                &action,
                &severity,
                &outcome,
                &service_id,
                &node_id,
                &tenant_id,
                &actor,
                &actor_kind,
                &target,
                &category,
                &domain,
                &method,
                &request_id,
                &details,
                &salt,
                &commitment,
                &pii,
                &shipped_at,
                &wire,
                &form,
                &prev,
                &hash,
            ];
            let (insert, commit) = rt.block_on(async {
                tokio::join!(
                    client.execute(&prepared.insert, &params,),
                    client.batch_execute("COMMIT"),
                )
            });
            insert.map_err(pg_err("insert rows"))?;
            commit.map_err(pg_err("commit"))?;
        } else {
            rt.block_on(client.batch_execute("COMMIT"))
                .map_err(pg_err("commit"))?;
        }
        Ok(rows.len() + already)
    }

    fn nodes(&mut self) -> Result<Vec<NodeCount>> {
        let sql = format!(
            "SELECT source_node_id, count(*) FROM {} GROUP BY source_node_id ORDER BY source_node_id",
            self.qualified
        );
        let rows = self
            .rt
            .block_on(self.client.query(&sql, &[]))
            .map_err(pg_err("list nodes"))?;
        rows.iter()
            .map(|r| {
                Ok(NodeCount {
                    node: col(r, 0, &self.qualified)?,
                    rows: stored_u64(col(r, 1, &self.qualified)?, "row count")?,
                })
            })
            .collect()
    }

    fn scan_rows(
        &mut self,
        node: &str,
        after_seq: i64,
        f: &mut dyn FnMut(std::result::Result<RowRef<'_>, Unreadable>) -> Result<()>,
    ) -> Result<()> {
        // The whole chain has no bound on seq: a NULL seq compares false
        // with `>` and would be skipped.
        let bound = if after_seq == super::WHOLE_CHAIN {
            "$2::int8 IS NOT NULL"
        } else {
            "monotonic_seq > $2"
        };
        let sql = format!(
            "{} WHERE source_node_id = $1 AND {bound} ORDER BY monotonic_seq",
            self.select_sql
        );
        self.scan(&sql, &[&node, &after_seq], &mut |r| {
            f(read_ref(r).map_err(|reason| Unreadable {
                seq: r.try_get(2).ok(),
                id: r.try_get(0).ok(),
                reason,
            }))
        })
    }

    fn scan_table(
        &mut self,
        f: &mut dyn FnMut(std::result::Result<RowRef<'_>, Unreadable>) -> Result<()>,
    ) -> Result<()> {
        let sql = self.select_sql.clone();
        self.scan(&sql, &[], &mut |r| {
            f(read_ref(r).map_err(|reason| Unreadable {
                seq: r.try_get(2).ok(),
                id: r.try_get(0).ok(),
                reason,
            }))
        })
    }

    fn scan_hashes(
        &mut self,
        node: &str,
        after_seq: i64,
        upto_seq: i64,
        f: &mut dyn FnMut(i64, &str) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT monotonic_seq, hash FROM {} WHERE source_node_id = $1 AND monotonic_seq > $2 AND monotonic_seq <= $3 ORDER BY monotonic_seq",
            self.qualified
        );
        self.scan(&sql, &[&node, &after_seq, &upto_seq], &mut |r| {
            let seq: i64 = r.try_get(0).map_err(pg_err("scan hashes"))?;
            let hash: &str = r.try_get(1).map_err(pg_err("scan hashes"))?;
            f(seq, hash)
        })
    }

    fn save_merkle_nodes(&mut self, node: &str, nodes: &[(u32, u64, [u8; 32])]) -> Result<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let levels: Vec<i32> = nodes
            .iter()
            .map(|n| i32::try_from(n.0).unwrap_or(i32::MAX))
            .collect();
        let indexes: Vec<i64> = nodes
            .iter()
            .map(|n| i64::try_from(n.1).unwrap_or(i64::MAX))
            .collect();
        let roots: Vec<String> = nodes.iter().map(|n| hex::encode(n.2)).collect();
        let sql = format!(
            "INSERT INTO {} (source_node_id, level, idx, hash) SELECT $1, l, i, h FROM unnest($2::int4[], $3::int8[], $4::text[]) AS u(l, i, h) ON CONFLICT DO NOTHING",
            self.merkle
        );
        self.rt
            .block_on(
                self.client
                    .execute(&sql, &[&node, &levels, &indexes, &roots]),
            )
            .map_err(pg_err("save merkle nodes"))?;
        Ok(())
    }

    fn merkle_node(&mut self, node: &str, level: u32, index: u64) -> Result<Option<String>> {
        let exists = self
            .rt
            .block_on(
                self.client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.merkle]),
            )
            .map_err(pg_err("read merkle node"))?
            .try_get::<_, bool>(0)
            .map_err(pg_err("read merkle node"))?;
        if !exists {
            return Ok(None);
        }
        let level = i32::try_from(level).unwrap_or(i32::MAX);
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT hash FROM {} WHERE source_node_id = $1 AND level = $2 AND idx = $3",
            self.merkle
        );
        self.rt
            .block_on(self.client.query_opt(&sql, &[&node, &level, &index]))
            .map_err(pg_err("read merkle node"))?
            .map(|r| col(&r, 0, &self.merkle))
            .transpose()
    }

    fn save_checkpoint(&mut self, node: &str, size: u64, note: &str) -> Result<()> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let sql = format!(
            "INSERT INTO {} (source_node_id, tree_size, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            self.checkpoints
        );
        let created = crate::event::format_timestamp(jiff::Timestamp::now());
        self.rt
            .block_on(self.client.execute(&sql, &[&node, &size, &note, &created]))
            .map_err(pg_err("save checkpoint"))?;
        Ok(())
    }

    fn checkpoints(&mut self, node: &str) -> Result<Vec<(u64, String)>> {
        let exists = self
            .rt
            .block_on(
                self.client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.checkpoints]),
            )
            .map_err(pg_err("read checkpoints"))?
            .try_get::<_, bool>(0)
            .map_err(pg_err("read checkpoints"))?;
        if !exists {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT tree_size, note FROM {} WHERE source_node_id = $1 ORDER BY tree_size",
            self.checkpoints
        );
        let rows = self
            .rt
            .block_on(self.client.query(&sql, &[&node]))
            .map_err(pg_err("read checkpoints"))?;
        rows.iter()
            .map(|r| {
                let size = stored_u64(col(r, 0, &self.checkpoints)?, "checkpoint tree_size")?;
                Ok((size, col(r, 1, &self.checkpoints)?))
            })
            .collect()
    }

    fn get(&mut self, id: &str) -> Result<Option<Row>> {
        let sql = format!("{} WHERE id = $1", self.select_sql);
        self.rt
            .block_on(self.client.query_opt(&sql, &[&id]))
            .map_err(pg_err("read row"))?
            .as_ref()
            .map(read_row)
            .transpose()
    }

    fn query(&mut self, q: &super::stream::Query) -> Result<Vec<Row>> {
        // A column another implementation's table lacks is absent on every
        // row: no row has the value asked for.
        if super::filters_absent_column(q, &self.missing) {
            return Ok(Vec::new());
        }
        use super::stream::postgres::{param, wire};
        let (filter, cells) =
            super::stream::filter_sql(q, &super::stream::AUDIT_FILTERS, |i, ty| {
                let (t, cast) = wire(ty);
                format!("${i}::{t}{cast}")
            });
        let boxed: Vec<_> = cells.into_iter().map(param).collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let sql = format!("{}{filter}", self.select_sql);
        self.rt
            .block_on(self.client.query(&sql, &params))
            .map_err(pg_err("query audit rows"))?
            .iter()
            .map(read_row)
            .collect()
    }

    fn summarize(&mut self, s: &super::Summarize) -> Result<Vec<super::SummaryRow>> {
        use super::stream::Cell;
        use super::stream::postgres::{param, wire};
        let (filter, mut cells) =
            super::stream::where_sql(&s.filter, &super::stream::AUDIT_FILTERS, |i, ty| {
                let (t, cast) = wire(ty);
                format!("${i}::{t}{cast}")
            });
        let mut path = |segments: &[String]| {
            cells.push(Cell::Text(Some(format!("{{{}}}", segments.join(",")))));
            format!("${}::text::text[]", cells.len())
        };
        let value = match &s.sum {
            Some(segments) => {
                let p = path(segments);
                format!(
                    "CASE WHEN jsonb_typeof(detail #> {p}) = 'number' THEN (detail #>> {p})::float8 END"
                )
            }
            None => "NULL::float8".to_owned(),
        };
        let key = match &s.by {
            super::GroupBy::Nothing => "NULL::text".to_owned(),
            super::GroupBy::Column(c) => format!("{c}::text"),
            super::GroupBy::Detail(segments) => {
                let p = path(segments);
                format!("detail #>> {p}")
            }
        };
        let sql = format!(
            "SELECT k, COUNT(*)::int8, COUNT(v)::int8, COALESCE(SUM(v), 0)::float8 FROM (SELECT {key} AS k, {value} AS v FROM {}{filter}) s GROUP BY k ORDER BY 4 DESC, 2 DESC, 1 LIMIT {}",
            self.qualified,
            s.limit.max(1)
        );
        let boxed: Vec<_> = cells.into_iter().map(param).collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        self.rt
            .block_on(self.client.query(&sql, &params))
            .map_err(pg_err("query audit summary"))?
            .iter()
            .map(|r| {
                Ok(super::SummaryRow {
                    key: r.try_get(0).map_err(pg_err("read audit summary"))?,
                    rows: stored_u64(
                        r.try_get::<_, i64>(1)
                            .map_err(pg_err("read audit summary"))?,
                        "summary row count",
                    )?,
                    summed: stored_u64(
                        r.try_get::<_, i64>(2)
                            .map_err(pg_err("read audit summary"))?,
                        "summary summed count",
                    )?,
                    sum: r.try_get(3).map_err(pg_err("read audit summary"))?,
                })
            })
            .collect()
    }

    fn unerased_groups(&mut self) -> Result<Vec<(String, bool)>> {
        // One index seek per group: `SELECT DISTINCT` would read the whole
        // index.
        let sql = format!(
            "SELECT code, pii_in_detail FROM {} WHERE detail_salt IS NOT NULL AND (code, pii_in_detail) > ($1, $2) ORDER BY code, pii_in_detail LIMIT 1",
            self.qualified
        );
        let mut groups = Vec::new();
        let mut after = (String::new(), false);
        loop {
            let rows = self
                .in_index_order(&sql, &[&after.0, &after.1])
                .map_err(pg_err("list unerased codes"))?;
            let Some(r) = rows.first() else { break };
            let group: (String, bool) = (col(r, 0, &self.qualified)?, col(r, 1, &self.qualified)?);
            groups.push(group.clone());
            after = group;
        }
        Ok(groups)
    }

    fn page(
        &mut self,
        scope: Scope<'_>,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let head = format!(
            "SELECT id, {}, code, source_node_id, monotonic_seq, tenant_id, shipped_at IS NOT NULL FROM {} WHERE detail_salt IS NOT NULL AND (timestamp, id) > ($1::text::timestamptz, $2::text)",
            ts_text("timestamp"),
            self.qualified
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match scope {
            Scope::Due {
                code,
                pii,
                due,
                service,
            } => self.in_index_order(
                &format!(
                    "{head} AND code = $4 AND pii_in_detail = $5 AND timestamp <= $6::text::timestamptz AND ($7::text IS NULL OR service_id = $7::text) ORDER BY code, pii_in_detail, timestamp, id LIMIT $3"
                ),
                &[&after.0, &after.1, &limit, &code, &pii, &due, &service],
            ),
            Scope::Actor(who) | Scope::Target(who) => {
                let column = if matches!(scope, Scope::Actor(_)) {
                    "actor"
                } else {
                    "target"
                };
                self.rt.block_on(self.client.query(
                    &format!("{head} AND {column} = $4 ORDER BY timestamp, id LIMIT $3"),
                    &[&after.0, &after.1, &limit, &who],
                ))
            }
        }
        .map_err(pg_err("read rows to erase"))?;
        rows.iter().map(read_candidate).collect()
    }

    fn erase(&mut self, ids: &[&str]) -> Result<Erased> {
        // One statement, its own short transaction; row locks only, so the
        // writer's inserts never wait on it.
        let sql = format!(
            "UPDATE {} SET detail = NULL, detail_salt = NULL WHERE id = ANY($1) AND detail_salt IS NOT NULL RETURNING source_node_id, monotonic_seq",
            self.qualified
        );
        let started = std::time::Instant::now();
        let rows = self
            .rt
            .block_on(self.client.query(&sql, &[&ids]))
            .map_err(pg_err("erase"))?;
        Ok(Erased {
            rows: rows
                .iter()
                .map(|r| Ok((col(r, 0, &self.qualified)?, col(r, 1, &self.qualified)?)))
                .collect::<Result<_>>()?,
            held: started.elapsed(),
        })
    }

    fn lease(&mut self, name: &str, holder: &str, now: &str, until: &str) -> Result<bool> {
        let t = &self.leases;
        let sql = format!(
            "INSERT INTO {t} (name, holder, expires_at) VALUES ($1, $2, $4) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at WHERE {t}.holder = excluded.holder OR {t}.expires_at <= $3"
        );
        let changed = self
            .rt
            .block_on(self.client.execute(&sql, &[&name, &holder, &now, &until]))
            .map_err(pg_err("take a lease"))?;
        Ok(changed == 1)
    }

    fn release(&mut self, name: &str, holder: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE name = $1 AND holder = $2",
            self.leases
        );
        self.rt
            .block_on(self.client.execute(&sql, &[&name, &holder]))
            .map_err(pg_err("release a lease"))?;
        Ok(())
    }

    fn unshipped(&mut self, node: &str) -> Result<Option<super::Unshipped>> {
        // Index seeks only, never a count (see the SQLite store).
        let t = &self.qualified;
        let sql = format!(
            "SELECT monotonic_seq, {}, (SELECT max(monotonic_seq) FROM {t} WHERE source_node_id = $1) FROM {t} WHERE source_node_id = $1 AND shipped_at IS NULL ORDER BY monotonic_seq LIMIT 1",
            ts_text("timestamp")
        );
        let row = self
            .rt
            .block_on(self.client.query_opt(&sql, &[&node]))
            .map_err(pg_err("find unshipped rows"))?;
        row.map(|r| {
            let first_seq: i64 = col(&r, 0, t)?;
            let tip: i64 = col(&r, 2, t)?;
            Ok(super::Unshipped {
                first_seq,
                count: super::seq_span(first_seq, tip),
                oldest: col(&r, 1, t)?,
            })
        })
        .transpose()
    }

    fn mark_shipped(&mut self, node: &str, upto_seq: i64, at: &str) -> Result<u64> {
        let sql = format!(
            "UPDATE {} SET shipped_at = $3::text::timestamptz WHERE source_node_id = $1 AND monotonic_seq <= $2 AND shipped_at IS NULL",
            self.qualified
        );
        self.rt
            .block_on(self.client.execute(&sql, &[&node, &upto_seq, &at]))
            .map_err(pg_err("mark rows shipped"))
    }

    fn shipping_nodes(&mut self) -> Result<Vec<String>> {
        // Each next node's first row, one seek in the chain index: `WHERE
        // shipped_at IS NOT NULL` has no index and read the whole table
        // (a second for a million rows, stalling the writer's commits).
        let sql = format!(
            "SELECT source_node_id, shipped_at IS NOT NULL FROM {} WHERE source_node_id > $1 ORDER BY source_node_id, monotonic_seq LIMIT 1",
            self.qualified
        );
        let mut nodes = Vec::new();
        let mut after = String::new();
        while let Some(r) = self
            .rt
            .block_on(self.client.query_opt(&sql, &[&after]))
            .map_err(pg_err("list shipping nodes"))?
        {
            after = col(&r, 0, &self.qualified)?;
            if col(&r, 1, &self.qualified)? {
                nodes.push(after.clone());
            }
        }
        Ok(nodes)
    }

    fn time_of(&mut self, node: &str, code: Option<&str>) -> Result<Option<String>> {
        let t = &self.qualified;
        let row = match code {
            Some(code) => self.rt.block_on(self.client.query_opt(
                &format!(
                    "SELECT {} FROM {t} WHERE code = $1 AND source_node_id = $2 ORDER BY timestamp DESC LIMIT 1",
                    ts_text("timestamp")
                ),
                &[&code, &node],
            )),
            None => self.rt.block_on(self.client.query_opt(
                &format!(
                    "SELECT {} FROM {t} WHERE source_node_id = $1 ORDER BY monotonic_seq LIMIT 1",
                    ts_text("timestamp")
                ),
                &[&node],
            )),
        }
        .map_err(pg_err("read a row's time"))?;
        row.map(|r| col(&r, 0, t)).transpose()
    }
}

fn read_candidate(r: &tokio_postgres::Row) -> Result<Candidate> {
    let err = pg_err("read rows to erase");
    (|| {
        Ok::<_, tokio_postgres::Error>(Candidate {
            id: r.try_get(0)?,
            timestamp: r.try_get(1)?,
            code: r.try_get(2)?,
            node: r.try_get(3)?,
            seq: r.try_get(4)?,
            tenant_id: r.try_get(5)?,
            shipped: r.try_get(6)?,
        })
    })()
    .map_err(err)
}

/// See [`super::prune`]. The `timestamp` column may be `TIMESTAMPTZ` or
/// contract-form text: both compare as `timestamptz`.
pub(crate) fn prune(
    url: &str,
    schema: Option<&str>,
    table: &str,
    cutoff: &str,
    batch: usize,
) -> Result<u64> {
    let (rt, client) = connect(url)?;
    let t = match schema {
        Some(s) => format!("\"{s}\".\"{table}\""),
        None => format!("\"{table}\""),
    };
    let chained = rt
        .block_on(client.query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2 AND column_name = 'prev_hash')",
            &[&schema, &table],
        ))
        .map_err(pg_err("read the table's columns"))?
        .try_get::<_, bool>(0)
        .map_err(pg_err("read the table's columns"))?;
    if chained {
        return Err(super::chained_table(table));
    }
    let sql = format!(
        "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t} WHERE timestamp::timestamptz <= $1::text::timestamptz LIMIT $2)"
    );
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let mut deleted = 0u64;
    loop {
        let n = rt
            .block_on(client.execute(&sql, &[&cutoff, &limit]))
            .map_err(|e| Error::store(format!("postgres: prune {t}"), e))?;
        deleted += n;
        if n < batch as u64 {
            return Ok(deleted);
        }
    }
}

impl PostgresStore {
    /// Runs `sql` with `params` and calls `f` with each row, through a
    /// streaming portal: a chain of millions of rows is never held in memory.
    fn scan(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        f: &mut dyn FnMut(&tokio_postgres::Row) -> Result<()>,
    ) -> Result<()> {
        let client = &mut self.client;
        self.rt.block_on(async {
            let tx = client.transaction().await.map_err(pg_err("scan chain"))?;
            let portal = tx.bind(sql, params).await.map_err(pg_err("scan chain"))?;
            loop {
                let rows = tx
                    .query_portal(&portal, 4096)
                    .await
                    .map_err(pg_err("scan chain"))?;
                if rows.is_empty() {
                    break;
                }
                for r in &rows {
                    f(r)?;
                }
            }
            tx.commit().await.map_err(pg_err("scan chain"))
        })
    }

    /// Runs a query whose `ORDER BY` is the unerased index's order, with
    /// sorts and bitmap scans off for its transaction, so the plan reads that
    /// index's range whatever the table's statistics say. (Before the first
    /// `ANALYZE` of a freshly filled table, the planner otherwise joins two
    /// bitmap scans and sorts a million rows for each page of a sweep.)
    fn in_index_order(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> std::result::Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let client = &mut self.client;
        self.rt.block_on(async {
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off")
                .await?;
            let rows = tx.query(sql, params).await?;
            tx.commit().await?;
            Ok(rows)
        })
    }

    /// Ends a transaction that failed half-way, so the connection can be
    /// used again (the writer reopens after a failure anyway; this keeps a
    /// healthy connection healthy).
    fn rollback(&self) {
        let _ = self.rt.block_on(self.client.batch_execute("ROLLBACK"));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::store::sqlite::tests::row;

    /// The server the integration tests use; under `CI` a missing one fails.
    fn server() -> Option<(ClientRuntime, Client, String)> {
        let url = std::env::var("FASTEN_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        match connect(&url) {
            Ok((rt, client)) => Some((rt, client, url)),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("CI is set but PostgreSQL at {url} is unreachable: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: PostgreSQL at {url} is unreachable: {e}");
                None
            }
        }
    }

    /// Runs `body` with the server's URL, a fresh schema named
    /// `<prefix>_<random>` and a runner of admin SQL, then drops the schema
    /// whether `body` passed or not. Without a server (outside CI) it runs
    /// nothing.
    fn in_schema(
        prefix: &str,
        body: impl FnOnce(&str, &str, &dyn Fn(&str) -> Result<()>) -> Result<()>,
    ) -> Result<()> {
        let Some((rt, admin, url)) = server() else {
            return Ok(());
        };
        let schema = format!("{prefix}_{:08x}", rand::random::<u32>());
        let sql = |s: &str| {
            rt.block_on(admin.batch_execute(s))
                .map_err(pg_err("run admin SQL"))
        };
        sql(&format!("CREATE SCHEMA {schema}"))?;
        let outcome = body(&url, &schema, &sql);
        sql(&format!("DROP SCHEMA {schema} CASCADE"))?;
        outcome
    }

    #[test]
    fn a_retry_skips_its_own_rows_and_reids_a_colliding_one() -> Result<()> {
        in_schema("recheck", |url, schema, _| {
            let mut store = PostgresStore::open(url, Some(schema), "audit_log", Access::Write)?;
            let mut first = vec![row("n1", "evt-a")];
            store.append(&mut first, false)?;
            let mut again = vec![row("n1", "evt-a")];
            assert_eq!(store.append(&mut again, true)?, 1);
            assert!(again.is_empty());
            let mut other = vec![row("n2", "evt-a")];
            assert!(
                store.append(&mut other, false).is_err(),
                "the key refuses it"
            );
            assert_eq!(store.append(&mut other, true)?, 1);
            assert_ne!(other[0].id, "evt-a");
            assert_eq!(store.get(&other[0].id)?, Some(other[0].clone()));
            assert_eq!(store.get("evt-a")?, Some(first[0].clone()));
            Ok(())
        })
    }

    /// A sweep's or an erasure's session commits without waiting for its
    /// WAL flush; the writer's waits (its rows are acknowledged on commit).
    #[test]
    fn only_the_writer_waits_for_its_wal_flush() -> Result<()> {
        in_schema("flush", |url, schema, _| {
            let setting = |access| -> Result<String> {
                let store = PostgresStore::open(url, Some(schema), "audit_log", access)?;
                let row = store
                    .rt
                    .block_on(store.client.query_one("SHOW synchronous_commit", &[]))
                    .map_err(pg_err("show synchronous_commit"))?;
                col(&row, 0, "synchronous_commit")
            };
            assert_eq!(setting(Access::Write)?, "on");
            assert_eq!(setting(Access::Maintain)?, "off");
            Ok(())
        })
    }

    /// Issue 22: stored data holding a NULL or a foreign type is an `Err`
    /// naming what could not be read, never a panic.
    #[test]
    fn issue_22_null_and_foreign_stored_values_are_errors() -> Result<()> {
        in_schema("foreign", |url, schema, admin| {
            let sql = |s: &str| admin(&s.replace("{s}", schema));
            let mut store = PostgresStore::open(url, Some(schema), "audit_log", Access::Write)?;
            store.append(&mut vec![row("n1", "evt-a")], false)?;

            // A NULL hash at the chain tip: the writer's next batch fails.
            sql("ALTER TABLE {s}.audit_log ALTER COLUMN hash DROP NOT NULL;
                 UPDATE {s}.audit_log SET hash = NULL")?;
            let err = store
                .append(&mut vec![row("n1", "evt-b")], false)
                .expect_err("a NULL tip hash is an error");
            assert!(err.to_string().contains("chain tip"), "{err}");

            // A NULL timestamp on the oldest unshipped row.
            sql(
                "ALTER TABLE {s}.audit_log ALTER COLUMN timestamp DROP NOT NULL;
                 UPDATE {s}.audit_log SET timestamp = NULL",
            )?;
            let err = store.unshipped("n1").expect_err("a NULL timestamp");
            assert!(err.to_string().contains("column"), "{err}");

            // A hand-made checkpoints table whose tree_size is text.
            sql("DROP TABLE IF EXISTS {s}.audit_log_checkpoints;
                 CREATE TABLE {s}.audit_log_checkpoints
                     (source_node_id text, tree_size text, note text, created_at text);
                 INSERT INTO {s}.audit_log_checkpoints VALUES ('n1', 'seven', 'n', 'x')")?;
            let err = store.checkpoints("n1").expect_err("a text tree_size");
            assert!(err.to_string().contains("column tree_size"), "{err}");

            // A negative size is an error, not a silent 0.
            sql("ALTER TABLE {s}.audit_log_checkpoints
                     ALTER COLUMN tree_size TYPE int8 USING -7")?;
            let err = store.checkpoints("n1").expect_err("a negative tree_size");
            assert!(err.to_string().contains("negative"), "{err}");

            // A NULL node id: listing nodes names the column.
            sql(
                "ALTER TABLE {s}.audit_log ALTER COLUMN source_node_id DROP NOT NULL;
                 UPDATE {s}.audit_log SET source_node_id = NULL",
            )?;
            let err = store.nodes().expect_err("a NULL source_node_id");
            assert!(err.to_string().contains("column source_node_id"), "{err}");
            Ok(())
        })
    }
}
