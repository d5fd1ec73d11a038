//! The engine's HTTP reader (`fasten::http_reader::router`), served to an ASGI
//! app one request at a time: the reader's routes, auth and queries stay
//! in Rust, and Python only moves bytes.

use axum::body::Body;
use fasten::http_reader::{self, Auth, Options};
use http_body_util::BodyExt as _;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tower::ServiceExt as _;

use crate::error::new_err;
use crate::pipeline::{Pipeline, fork_gen, forked_err};
use crate::to_py_err;

/// A response for ASGI: status, headers, body.
type Response<'py> = (u16, Vec<(String, Vec<u8>)>, Bound<'py, PyBytes>);

/// The reader router and the runtime that drives it.
#[pyclass(module = "fasten._native", frozen)]
pub(crate) struct ReaderApp {
    router: Option<axum::Router>,
    runtime: Option<tokio::runtime::Runtime>,
    generation: u64,
}

impl Drop for ReaderApp {
    fn drop(&mut self) {
        if self.generation != fork_gen() {
            // Its runtime's threads are in the parent: do not join them.
            std::mem::forget(self.router.take());
            std::mem::forget(self.runtime.take());
        }
    }
}

/// The auth decision: exactly one of tokens, delegated, allow_unauthenticated,
/// or `FASTEN_READER_TOKENS` when none is given.
fn auth(
    py: Python<'_>,
    tokens: Option<Vec<String>>,
    delegated: bool,
    allow_unauthenticated: bool,
) -> PyResult<Auth> {
    let chosen =
        usize::from(tokens.is_some()) + usize::from(delegated) + usize::from(allow_unauthenticated);
    if chosen > 1 {
        return Err(new_err(
            py,
            "config",
            None,
            Some("FASTEN_READER_TOKENS"),
            "the reader takes one auth decision: tokens, delegated or allow_unauthenticated"
                .to_owned(),
        ));
    }
    if let Some(tokens) = tokens {
        Auth::bearer_tokens(tokens)
    } else if delegated {
        Ok(Auth::delegated())
    } else if allow_unauthenticated {
        Ok(Auth::allow_unauthenticated())
    } else {
        Auth::from_env()
    }
    .map_err(|e| to_py_err(py, &e))
}

#[pymethods]
impl ReaderApp {
    /// Raises as `ReaderApp(...)` would for the same auth arguments,
    /// without a pipeline: `router()` refuses at once.
    #[staticmethod]
    #[pyo3(signature = (*, tokens=None, delegated=false, allow_unauthenticated=false))]
    fn check_auth(
        py: Python<'_>,
        tokens: Option<Vec<String>>,
        delegated: bool,
        allow_unauthenticated: bool,
    ) -> PyResult<()> {
        auth(py, tokens, delegated, allow_unauthenticated).map(drop)
    }

    /// The reader over a pipeline's stores. Exactly one auth decision:
    /// `tokens` (bearer tokens), `delegated` (your own auth in front),
    /// `allow_unauthenticated`, or none of them to read
    /// `FASTEN_READER_TOKENS`, which must then be set.
    #[new]
    #[pyo3(signature = (pipeline, *, tokens=None, delegated=false, allow_unauthenticated=false))]
    fn new(
        py: Python<'_>,
        pipeline: &Pipeline,
        tokens: Option<Vec<String>>,
        delegated: bool,
        allow_unauthenticated: bool,
    ) -> PyResult<Self> {
        let fasten = pipeline.fasten(py)?;
        let auth = auth(py, tokens, delegated, allow_unauthenticated)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fasten-reader")
            .enable_all()
            .build()
            .map_err(|e| {
                new_err(
                    py,
                    "other",
                    None,
                    None,
                    format!("start the reader runtime: {e}"),
                )
            })?;
        let router = http_reader::router(fasten::Reader::from_pipeline(fasten), Options::new(auth));
        Ok(Self {
            router: Some(router),
            runtime: Some(runtime),
            generation: fork_gen(),
        })
    }

    /// Serves one request: `(status, headers, body)`. The GIL is released
    /// while the reader queries the store.
    fn handle<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path_and_query: &str,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        body: Vec<u8>,
    ) -> PyResult<Response<'py>> {
        let (Some(router), Some(runtime)) = (&self.router, &self.runtime) else {
            return Err(forked_err(py));
        };
        if self.generation != fork_gen() {
            return Err(forked_err(py));
        }
        let bad = |what: String| new_err(py, "other", None, None, what);
        let mut request = http::Request::builder().method(method).uri(path_and_query);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Body::from(body))
            .map_err(|e| bad(format!("invalid request: {e}")))?;
        let router = router.clone();
        let result = py.allow_threads(|| {
            runtime.block_on(async move {
                let response = match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await?.to_bytes();
                Ok::<_, axum::Error>((parts, bytes))
            })
        });
        let (parts, bytes) = result.map_err(|e| bad(format!("reader response: {e}")))?;
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        Ok((parts.status.as_u16(), headers, PyBytes::new(py, &bytes)))
    }
}
