//! `fasten-lint.toml`: which calls emit, which calls mutate data, which
//! routes are handlers. Every list extends the defaults ([`DEFAULTS`]) unless
//! the file says `defaults = false`.

use regex::Regex;
use serde::Deserialize;

use crate::Lang;

/// The default rules, in the file format: what a `fasten-lint.toml` extends.
pub const DEFAULTS: &str = r#"
# Calls that write an audit event, by the name of the function or method,
# in any binding's spelling: fasten::emit, fasten.emit, fasten.Emit, …; and
# the agent helpers, which write a TOOL_CALLED / MODEL_CALLED /
# AGENT_HANDOFF row whatever the call does.
emit = [
  "emit", "emit_durable", "emit_async", "emitDurable", "emitAsync", "Emit", "EmitDurable", "EmitContext",
  "tool_call", "model_call", "handoff", "toolCall", "modelCall", "wrapTool", "wrapModel", "wrapHandoff",
  "ToolCall", "ModelCall", "Handoff",
]
# The receiver an emit method is called on must match this (a bare emit()
# always counts): fasten.emit, pipeline.emit, codes.emit, but not socket.emit.
emit_receiver = "(?i)fasten|audit|pipeline|engine|codes"

# Calls whose SQL string argument starts with INSERT, UPDATE, DELETE or MERGE
# (after a WITH clause, too).
sql_calls = [
  "execute", "execute_batch", "executemany", "executescript", "execute_many", "query", "query_one",
  "query_opt", "query_row", "query_as", "query_scalar", "sql_query", "raw", "exec", "run", "prepare",
  "Exec", "ExecContext", "Query", "QueryContext", "QueryRow", "QueryRowContext", "Raw",
  "$executeRaw", "$executeRawUnsafe", "$queryRaw", "$queryRawUnsafe", "none", "one", "any", "many",
]

# HTTP methods whose handlers change data: axum post(h), Express and Fastify
# app.post('/x', h), chi r.Post("/x", h), FastAPI and Flask @app.post("/x").
route_methods = ["post", "put", "patch", "delete"]
# Go's net/http patterns with a method: mux.HandleFunc("POST /x", h); Flask's
# @app.route("/x", methods=["POST"]).
route_patterns = ["HandleFunc", "Handle", "route", "api_route", "add_url_rule"]

[[orm]]
name = "SQLAlchemy"
lang = "python"
methods = ["add", "add_all", "delete", "merge", "commit", "bulk_save_objects", "bulk_insert_mappings", "bulk_update_mappings"]
receiver = "(?i)session$"

# A model's save() and delete() take no positional argument, unlike
# requests.delete(url) or cache.delete(key).
[[orm]]
name = "Django"
lang = "python"
methods = ["save", "delete"]
receiver = "."
max_args = 0

[[orm]]
name = "Django"
lang = "python"
methods = ["bulk_create", "bulk_update", "update_or_create", "get_or_create"]
receiver = "\\bobjects$"

[[orm]]
name = "Django"
lang = "python"
methods = ["create", "update"]
receiver = "\\bobjects$"

[[orm]]
name = "Diesel"
lang = "rust"
methods = ["insert_into", "update", "delete", "replace_into"]
receiver = "^diesel$"

[[orm]]
name = "SeaORM"
lang = "rust"
methods = ["insert", "insert_many", "update_many", "delete_many", "delete_by_id"]
receiver = "(^|::)Entity$|^[A-Z][A-Za-z0-9_]*$"

[[orm]]
name = "SeaORM"
lang = "rust"
methods = ["insert", "update", "save", "delete"]
receiver = "(?i)active_?model$|_am$"

[[orm]]
name = "GORM"
lang = "go"
methods = ["Create", "CreateInBatches", "Save", "Delete", "Update", "Updates", "UpdateColumn", "UpdateColumns"]
receiver = "(?i)(^|\\.)(db|tx|gorm|orm|gdb)$|\\)$"

[[orm]]
name = "Prisma"
lang = "typescript"
methods = ["create", "createMany", "update", "updateMany", "upsert", "delete", "deleteMany"]
receiver = "^(this\\.)?(prisma|tx|db)\\.\\w+$"
"#;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    defaults: Option<bool>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    emit: Vec<String>,
    emit_receiver: Option<String>,
    #[serde(default)]
    sql_calls: Vec<String>,
    #[serde(default)]
    route_methods: Vec<String>,
    #[serde(default)]
    route_patterns: Vec<String>,
    #[serde(default)]
    orm: Vec<OrmFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrmFile {
    name: String,
    lang: Option<String>,
    methods: Vec<String>,
    receiver: String,
    max_args: Option<usize>,
}

/// One ORM rule: a method on a matching receiver writes data.
#[derive(Debug, Clone)]
pub(crate) struct Orm {
    pub(crate) name: String,
    pub(crate) lang: Option<Lang>,
    pub(crate) methods: Vec<String>,
    pub(crate) receiver: Regex,
    /// The most positional arguments a matching call has.
    pub(crate) max_args: Option<usize>,
}

/// The rules the lint applies.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) exclude: Vec<String>,
    pub(crate) emit: Vec<String>,
    pub(crate) emit_receiver: Regex,
    pub(crate) sql_calls: Vec<String>,
    pub(crate) route_methods: Vec<String>,
    pub(crate) route_patterns: Vec<String>,
    pub(crate) orm: Vec<Orm>,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_toml("").expect("the default rules parse")
    }
}

impl Config {
    /// The defaults extended (or, with `defaults = false`, replaced) by a
    /// `fasten-lint.toml`.
    ///
    /// # Errors
    ///
    /// A message naming the key when the text is not valid TOML, has an
    /// unknown key, a bad regex or an unknown language.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let user: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let base: File = if user.defaults == Some(false) {
            File::default()
        } else {
            toml::from_str(DEFAULTS).map_err(|e| format!("default rules: {e}"))?
        };
        let regex = |key: &str, r: &str| {
            Regex::new(r).map_err(|e| format!("invalid regex in {key} {r:?}: {e}"))
        };
        let mut orm = Vec::new();
        for o in base.orm.into_iter().chain(user.orm) {
            let lang = match o.lang.as_deref() {
                None => None,
                Some(l) => Some(Lang::from_name(l).ok_or_else(|| {
                    format!(
                        "unknown lang {l:?} in [[orm]] {}: expected rust, python, go, typescript or javascript",
                        o.name
                    )
                })?),
            };
            orm.push(Orm {
                receiver: regex("[[orm]] receiver", &o.receiver)?,
                name: o.name,
                lang,
                methods: o.methods,
                max_args: o.max_args,
            });
        }
        let cat = |a: Vec<String>, b: Vec<String>| a.into_iter().chain(b).collect::<Vec<_>>();
        let emit_receiver = user
            .emit_receiver
            .or(base.emit_receiver)
            .unwrap_or_else(|| "(?i)fasten".to_owned());
        Ok(Self {
            exclude: cat(base.exclude, user.exclude),
            emit: cat(base.emit, user.emit),
            emit_receiver: regex("emit_receiver", &emit_receiver)?,
            sql_calls: cat(base.sql_calls, user.sql_calls),
            route_methods: cat(base.route_methods, user.route_methods),
            route_patterns: cat(base.route_patterns, user.route_patterns),
            orm,
        })
    }
}
