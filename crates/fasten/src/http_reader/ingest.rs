//! `POST /ingest`: edges ship their batches here (feature `postgres`: the
//! central store is PostgreSQL), and `GET /fleet`: each node's state.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use super::{Caller, MIN_TOKEN_LEN, Problem, Shared, blocking, digest, operator_only, params};
use crate::env::FASTEN_INGEST_TOKENS;
use crate::error::{Error, ErrorKind};
use crate::ship::{Batch, Central};

/// Who may ship which nodes to the `/ingest` route, and how shipped
/// checkpoints are checked. See [`super::Options::ingest`].
#[derive(Clone)]
pub struct Ingest {
    /// Token digests, each with the nodes it may ship.
    tokens: Arc<Vec<([u8; 32], HashSet<String>)>>,
    keys: Option<Vec<(String, String)>>,
    central: Arc<Mutex<Option<Central>>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("tokens", &self.tokens.len())
            .field("keys", &self.keys.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// `(node, token)` pairs: each token may ship the nodes it is paired
    /// with (pair one token with several nodes to let it ship them all).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming `FASTEN_INGEST_TOKENS` when there is no
    /// pair, or a token is shorter than 16 characters or not printable ASCII.
    pub fn tokens<I, N, T>(pairs: I) -> crate::Result<Self>
    where
        I: IntoIterator<Item = (N, T)>,
        N: AsRef<str>,
        T: AsRef<str>,
    {
        let mut tokens: Vec<([u8; 32], HashSet<String>)> = Vec::new();
        for (node, token) in pairs {
            let (node, token) = (node.as_ref().trim(), token.as_ref().trim());
            if node.is_empty()
                || token.len() < MIN_TOKEN_LEN
                || !token.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(Error::config(
                    FASTEN_INGEST_TOKENS,
                    format!(
                        "invalid {FASTEN_INGEST_TOKENS} entry for node {node:?}: expected node=token with a token of at least {MIN_TOKEN_LEN} printable ASCII characters, e.g. edge-1=$(openssl rand -hex 32)"
                    ),
                ));
            }
            let d = digest(token);
            match tokens.iter_mut().find(|(t, _)| *t == d) {
                Some((_, nodes)) => {
                    nodes.insert(node.to_owned());
                }
                None => tokens.push((d, HashSet::from([node.to_owned()]))),
            }
        }
        if tokens.is_empty() {
            return Err(Error::config(
                FASTEN_INGEST_TOKENS,
                format!("missing {FASTEN_INGEST_TOKENS}: give node=token pairs, comma-separated"),
            ));
        }
        Ok(Self {
            tokens: Arc::new(tokens),
            keys: None,
            central: Arc::new(Mutex::new(None)),
        })
    }

    /// `FASTEN_INGEST_TOKENS` (`node=token,…`) and, when set,
    /// `FASTEN_FLEET_KEYS` (`node=verifier key,…`).
    ///
    /// # Errors
    ///
    /// As [`Ingest::tokens`] (also when the variable is not set) and
    /// [`crate::ship::parse_fleet_keys`].
    pub fn from_env() -> crate::Result<Self> {
        let raw = std::env::var(FASTEN_INGEST_TOKENS).unwrap_or_default();
        let mut pairs = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (node, token) = entry.split_once('=').ok_or_else(|| {
                Error::config(
                    FASTEN_INGEST_TOKENS,
                    format!("invalid {FASTEN_INGEST_TOKENS} entry: expected node=token, e.g. edge-1=$(openssl rand -hex 32)"),
                )
            })?;
            pairs.push((node.to_owned(), token.to_owned()));
        }
        let mut ingest = Self::tokens(pairs)?;
        if let Some(keys) = std::env::var(crate::env::FASTEN_FLEET_KEYS)
            .ok()
            .filter(|k| !k.trim().is_empty())
        {
            ingest = ingest.fleet_keys(crate::ship::parse_fleet_keys(&keys)?);
        }
        Ok(ingest)
    }

    /// Checks each shipped checkpoint with its node's key (`(node, verifier
    /// key)` pairs); nodes without one get their checkpoints refused.
    #[must_use]
    pub fn fleet_keys(mut self, keys: Vec<(String, String)>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The nodes the bearer token in `headers` may ship, if it is one.
    fn nodes(&self, headers: &HeaderMap) -> Option<&HashSet<String>> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| digest(token.trim()))?;
        // Compared with every token, in constant time each.
        let mut found = None;
        for (d, nodes) in self.tokens.iter() {
            if bool::from(d.ct_eq(&presented)) {
                found = Some(nodes);
            }
        }
        found
    }
}

pub(super) async fn ingest(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let Some(ingest) = shared.options.ingest.clone() else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "this reader takes no shipped rows (no FASTEN_INGEST_TOKENS)",
        ));
    };
    let Some(nodes) = ingest.nodes(&headers) else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "a bearer token of FASTEN_INGEST_TOKENS is required",
        ));
    };
    let batch: Batch = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("not a batch: {e}")))?;
    if !nodes.contains(&batch.node) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!("this token may not ship node {}", batch.node),
        ));
    }
    let dsn = shared.reader.audit_dsn().clone();
    let out = blocking(super::EXPENSIVE_TIMEOUT, move || {
        let mut slot = ingest
            .central
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let central = match slot.as_mut() {
            Some(c) => c,
            None => {
                let mut c = Central::open(&dsn)?;
                if let Some(keys) = &ingest.keys {
                    c = c.fleet_keys(keys)?;
                }
                slot.insert(c)
            }
        };
        let out = central.accept(&batch);
        if out.is_err() {
            *slot = None;
        }
        out
    })
    .await;
    match out {
        Ok(ack) => Ok(Json(super::body(&ack)?)),
        Err(p) => Err(p),
    }
}

pub(super) async fn fleet(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    let query = params(raw.as_deref(), Some(&[]))?;
    operator_only(&caller)?;
    let dsn = shared.reader.audit_dsn().clone();
    let nodes = blocking(super::QUERY_TIMEOUT, move || crate::ship::status(&dsn)).await?;
    shared.record(&caller, "/fleet", &query, nodes.len())?;
    Ok(Json(json!({ "nodes": nodes })))
}

/// A refusal of the central store as the HTTP status it is.
pub(super) fn fleet_problem(e: &Error) -> Option<Problem> {
    match e.kind() {
        ErrorKind::Fleet { .. } => Some(Problem::new(StatusCode::FORBIDDEN, e.to_string())),
        // Not an outage: this reader's store can hold no fleet (it is
        // not PostgreSQL), so there is nothing here to find.
        ErrorKind::Config { .. } => Some(Problem::new(StatusCode::NOT_FOUND, e.to_string())),
        _ => None,
    }
}
