//! The HTTP reader as a function: a request in, a response out, so any
//! language's web framework mounts the same reader (same routes, same auth
//! rules, same queries) under its own router.

use std::ffi::c_char;

use fasten::http_reader::{self, Auth, Options};
use tower::ServiceExt as _;

use crate::abi::{FASTEN_ERR_OTHER, Failure, Str, arg, call, give, out};
use crate::engine::Engine;

/// `fasten_reader_new` flag: the host's own auth has already decided; the
/// reader checks no token.
pub const FASTEN_READER_DELEGATED: u32 = 1;
/// `fasten_reader_new` flag: write a `READER_QUERY` audit row per read.
pub const FASTEN_READER_AUDIT_READS: u32 = 2;

/// A mounted reader over an engine's stores. Thread-safe.
pub struct Reader {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

fn other(message: String) -> Failure {
    Failure {
        status: FASTEN_ERR_OTHER,
        field: String::new(),
        message,
    }
}

/// Makes a reader over `engine`'s audit store and streams. Auth is never
/// implicit: `tokens` (comma-separated bearer tokens, as
/// `FASTEN_READER_TOKENS`), or empty to read `FASTEN_READER_TOKENS` from
/// the environment, or the `FASTEN_READER_DELEGATED` flag. Released with
/// `fasten_reader_free`.
///
/// # Safety
///
/// `engine` is valid (the reader keeps its own handle on the pipeline, so
/// the engine may be freed first); `tokens` is valid; `reader` is valid for
/// writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_reader_new(
    engine: *const Engine,
    tokens: Str,
    flags: u32,
    reader: *mut *mut Reader,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises.
        let (engine, tokens) = unsafe { (arg(engine, "engine")?, tokens.get("tokens")?) };
        out(reader, "reader")?;
        let auth = if flags & FASTEN_READER_DELEGATED != 0 {
            Auth::delegated()
        } else if let Some(tokens) = tokens {
            Auth::bearer_tokens(tokens.split(',').filter(|t| !t.trim().is_empty()))?
        } else {
            Auth::from_env()?
        };
        let mut options = Options::new(auth);
        if flags & FASTEN_READER_AUDIT_READS != 0 {
            options = options.audit_reads(engine.fasten.clone());
        }
        let router = http_reader::router(fasten::Reader::from_pipeline(&engine.fasten), options);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| other(format!("reader runtime: {e}")))?;
        let boxed = Box::into_raw(Box::new(Reader { runtime, router }));
        // SAFETY: checked non-NULL above.
        unsafe { *reader = boxed };
        Ok(())
    })
}

/// Releases a reader. NULL is a no-op.
///
/// # Safety
///
/// `reader` is NULL or from `fasten_reader_new`, not yet freed, unused by
/// other threads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_reader_free(reader: *mut Reader) {
    if reader.is_null() {
        return;
    }
    let _ = call(|| {
        // SAFETY: made by `Box::into_raw` in `fasten_reader_new`, freed once.
        drop(unsafe { Box::from_raw(reader) });
        Ok(())
    });
}

/// Serves one request. `path` is the path below the mount point with its
/// query string (`/audit?limit=10`); `headers` holds `Name: value` lines
/// separated by `\n` (or `\r\n`). On success `*status` is the HTTP status,
/// `*headers_out` the response headers in the same form and `*body_out`
/// the body (JSON), both freed with `fasten_free`. A refused or malformed
/// request is still `FASTEN_OK` with a 4xx status: that is the reader's
/// answer, not a failure of the call.
///
/// # Safety
///
/// `reader` and the strings are valid; the out-pointers are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_reader_handle(
    reader: *const Reader,
    method: Str,
    path: Str,
    headers: Str,
    status: *mut u16,
    headers_out: *mut *mut c_char,
    headers_out_len: *mut usize,
    body_out: *mut *mut c_char,
    body_out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises.
        let (reader, method, path, headers) = unsafe {
            (
                arg(reader, "reader")?,
                method.get("method")?.unwrap_or("GET"),
                path.required("path")?,
                headers.get("headers")?.unwrap_or_default(),
            )
        };
        out(status, "status")?;
        let mut request = http::Request::builder().method(method).uri(path);
        for line in headers.lines().filter(|l| !l.trim().is_empty()) {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                Failure::argument(
                    "headers",
                    format!("invalid headers: line {line:?} is not `Name: value`"),
                )
            })?;
            request = request.header(name.trim(), value.trim());
        }
        let request = request
            .body(axum::body::Body::empty())
            .map_err(|e| Failure::argument("path", format!("invalid request: {e}")))?;
        let (parts, body) = reader
            .runtime
            .block_on(async {
                let response = match reader.router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let (parts, body) = response.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await?;
                Ok::<_, axum::Error>((parts, body))
            })
            .map_err(|e| other(format!("reader: {e}")))?;
        let mut head = String::new();
        for (name, value) in &parts.headers {
            head.push_str(name.as_str());
            head.push_str(": ");
            head.push_str(&String::from_utf8_lossy(value.as_bytes()));
            head.push('\n');
        }
        // SAFETY: the caller's promises.
        unsafe {
            *status = parts.status.as_u16();
            give(head.as_bytes(), headers_out, headers_out_len)?;
            give(&body, body_out, body_out_len)
        }
    })
}
