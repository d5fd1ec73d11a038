//! Where `tail` and `correlate` read: the stores named by `FASTEN_*_DSN`
//! (the default), or a remote reader (`--url`, as `fasten serve` or a
//! service's mounted router answers).

use anyhow::{Context as _, bail};
use fasten::{AuditQuery, Dsn, Reader, RequestId, StreamQuery};
use serde_json::{Value, json};

/// The stores to read, from `FASTEN_*_DSN` or flags.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// The audit store.
    #[arg(long, env = "FASTEN_AUDIT_DSN", default_value = fasten::env::FASTEN_AUDIT_DSN_DEFAULT)]
    dsn: String,
    /// The sys stream's store, if any.
    #[arg(long, env = "FASTEN_SYS_DSN")]
    sys_dsn: Option<String>,
    /// The api stream's store, if any.
    #[arg(long, env = "FASTEN_API_DSN")]
    api_dsn: Option<String>,
}

impl StoreArgs {
    pub(crate) fn reader(&self) -> anyhow::Result<Reader> {
        let mut reader = Reader::new(Dsn::parse("FASTEN_AUDIT_DSN", &self.dsn)?);
        if let Some(d) = self.sys_dsn.as_deref().filter(|d| !d.is_empty()) {
            reader = reader.sys_dsn(Dsn::parse_for("FASTEN_SYS_DSN", d, "sys_log")?);
        }
        if let Some(d) = self.api_dsn.as_deref().filter(|d| !d.is_empty()) {
            reader = reader.api_dsn(Dsn::parse_for("FASTEN_API_DSN", d, "api_log")?);
        }
        Ok(reader)
    }
}

/// Store or remote reader flags, shared by the reading commands.
#[derive(Debug, clap::Args)]
pub(crate) struct SourceArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Read through a remote reader instead, e.g. http://host:8080/api/v1/logs.
    #[arg(long, env = "FASTEN_READER_URL")]
    url: Option<String>,
    /// The bearer token for --url.
    #[arg(
        long,
        env = "FASTEN_READER_TOKEN",
        requires = "url",
        hide_env_values = true
    )]
    token: Option<String>,
}

pub(crate) enum Source {
    /// The reader and, for errors, which store it reads and why.
    Local(Box<Reader>, String),
    Remote {
        base: String,
        token: Option<String>,
        agent: ureq::Agent,
    },
}

impl SourceArgs {
    pub(crate) fn open(&self) -> anyhow::Result<Source> {
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!(
                    "invalid --url {url:?}: expected http(s)://host:port/prefix, e.g. http://127.0.0.1:8080/api/v1/logs"
                );
            }
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(std::time::Duration::from_secs(30)))
                .build()
                .into();
            return Ok(Source::Remote {
                base: url.trim_end_matches('/').to_owned(),
                token: self.token.clone(),
                agent,
            });
        }
        let reader = self.store.reader()?;
        let origin = super::store_origin(reader.audit_dsn(), &self.store.dsn);
        Ok(Source::Local(Box::new(reader), origin))
    }
}

impl Source {
    /// One page of `stream` (`audit`, `sys`, `api`) with the reader's query
    /// parameters, as the HTTP reader answers it: `{"rows", "next"}`.
    pub(crate) fn page(&self, stream: &str, params: &[(&str, String)]) -> anyhow::Result<Value> {
        match self {
            Self::Remote { .. } => self.get(&format!("/{stream}"), params),
            Self::Local(reader, origin) => {
                local_page(reader, stream, params).with_context(|| format!("reading the {origin}"))
            }
        }
    }

    /// The rows of one request across the three streams.
    pub(crate) fn correlate(&self, id: &RequestId) -> anyhow::Result<Value> {
        match self {
            Self::Remote { .. } => self.get("/correlate", &[("request_id", id.to_string())]),
            Self::Local(reader, origin) => Ok(serde_json::to_value(
                reader
                    .correlate(id)
                    .with_context(|| format!("reading the {origin}"))?,
            )?),
        }
    }

    fn get(&self, path: &str, params: &[(&str, String)]) -> anyhow::Result<Value> {
        let Self::Remote { base, token, agent } = self else {
            unreachable!("only remote sources GET");
        };
        let mut req = agent.get(format!("{base}{path}"));
        for (k, v) in params {
            req = req.query(*k, v);
        }
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut res = req
            .call()
            .with_context(|| format!("cannot reach the reader at {base}"))?;
        let status = res.status();
        let body: Value = fasten::contract::parse_json(&res.body_mut().read_to_string()?)
            .with_context(|| format!("the reader at {base} did not answer JSON"))?;
        if !status.is_success() {
            let msg = body["error"].as_str().unwrap_or("no message");
            let hint = match status.as_u16() {
                401 => " (hint: pass --token or set FASTEN_READER_TOKEN)",
                403 => " (hint: this token may not read that)",
                _ => "",
            };
            bail!("the reader answered {status}: {msg}{hint}");
        }
        Ok(body)
    }
}

fn local_page(reader: &Reader, stream: &str, params: &[(&str, String)]) -> anyhow::Result<Value> {
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(match stream {
        "audit" => {
            let page = reader.audit(&AuditQuery::from_params(&params, 100)?)?;
            serde_json::to_value(page)?
        }
        "sys" => {
            let page = reader.sys(&StreamQuery::from_params("sys", &params, 100)?)?;
            json!({ "rows": page.rows, "next": page.next, "source": page.source })
        }
        "api" => {
            let page = reader.api(&StreamQuery::from_params("api", &params, 100)?)?;
            json!({ "rows": page.rows, "next": page.next, "source": page.source })
        }
        other => bail!("unknown stream {other:?}: expected audit, sys or api"),
    })
}

/// What to say when a stream was not searched: its rows exist only in the
/// memory of the process that wrote them. `None` when it was searched.
pub(crate) fn unsearched(stream: &str, source: &Value) -> Option<String> {
    (source == "unavailable").then(|| {
        let var = if stream == "sys" { "FASTEN_SYS_DSN" } else { "FASTEN_API_DSN" };
        format!(
            "note: {stream} rows were not searched: they have no store here ({var} is not set), so they live only in the memory of the process that wrote them; read through its reader with --url, or set {var} in both"
        )
    })
}
