//! The calling thread's ambient request id, actor and tenant.
//!
//! A C or C++ thread enters a request scope, names who acts in it, and
//! every emit, log line and api row on that thread takes them. Languages
//! with a context of their own (Go's `context.Context`) pass the same
//! values per call in the event instead.

use std::cell::RefCell;
use std::ffi::c_char;

use fasten::context::{self, ContextGuard};
use fasten::{ActorKind, RequestId};

use crate::abi::{Failure, Str, call, give};

/// The scopes this thread entered through the ABI, innermost last.
struct Scopes(Vec<ContextGuard>);

impl Drop for Scopes {
    fn drop(&mut self) {
        // A thread that exits inside a scope: the core's own thread-local
        // may already be gone, so restoring it would panic in a TLS
        // destructor. The thread is ending; leak the few bytes instead.
        for guard in self.0.drain(..) {
            std::mem::forget(guard);
        }
    }
}

thread_local! {
    static SCOPES: RefCell<Scopes> = const { RefCell::new(Scopes(Vec::new())) };
}

fn no_scope(what: &str) -> Failure {
    Failure::invalid(
        what,
        format!("invalid {what}: no request scope on this thread; call fasten_context_enter first"),
    )
}

/// Enters a request scope on the calling thread with `request_id` (checked:
/// 1-128 of `[A-Za-z0-9._:-]`), or a freshly minted id when it is empty.
/// Scopes nest; `fasten_context_exit` leaves the innermost one.
///
/// # Safety
///
/// `request_id` is a valid string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_context_enter(request_id: Str) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let id = match unsafe { request_id.get("request_id") }? {
            Some(text) => RequestId::parse(text)?,
            None => RequestId::mint(),
        };
        let guard = context::enter(id);
        SCOPES.with(|s| s.borrow_mut().0.push(guard));
        Ok(())
    })
}

/// Leaves the innermost scope entered with `fasten_context_enter` on this
/// thread: the previous id, actor and tenant come back.
#[unsafe(no_mangle)]
pub extern "C" fn fasten_context_exit() -> i32 {
    call(|| {
        let guard = SCOPES
            .with(|s| s.borrow_mut().0.pop())
            .ok_or_else(|| no_scope("context"))?;
        drop(guard);
        Ok(())
    })
}

/// Names who acts in the current scope (`kind` empty: `service`). Rows
/// emitted in it without an actor of their own take this one.
///
/// # Safety
///
/// The strings are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_context_set_actor(actor: Str, kind: Str) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let (actor, kind) = unsafe { (actor.required("actor")?, kind.get("actor_kind")?) };
        let kind = match kind {
            Some(k) => k
                .parse::<ActorKind>()
                .map_err(|e| Failure::invalid(e.field, e.to_string()))?,
            None => ActorKind::default(),
        };
        if context::set_actor(actor, kind) {
            Ok(())
        } else {
            Err(no_scope("actor"))
        }
    })
}

/// Names the tenant of the current scope.
///
/// # Safety
///
/// `tenant` is a valid string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_context_set_tenant(tenant: Str) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let tenant = unsafe { tenant.required("tenant") }?;
        if context::set_tenant(tenant) {
            Ok(())
        } else {
            Err(no_scope("tenant"))
        }
    })
}

/// The calling thread's ambient request id: `*out` gets a buffer to free
/// with `fasten_free`, or NULL (length 0) when there is none.
///
/// # Safety
///
/// `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_context_request_id(
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    // SAFETY: the caller's promise.
    call(|| unsafe {
        give_opt(
            context::current().as_ref().map(RequestId::as_str),
            out,
            out_len,
        )
    })
}

/// The current scope's actor (`*out`, NULL when none) and its kind
/// (`*kind_out`, NULL when none); both freed with `fasten_free`.
///
/// # Safety
///
/// The out-pointers are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_context_actor(
    out: *mut *mut c_char,
    out_len: *mut usize,
    kind_out: *mut *mut c_char,
    kind_len: *mut usize,
) -> i32 {
    call(|| {
        let actor = context::actor();
        let kind = actor.as_ref().map(|(_, k)| k.to_string());
        // SAFETY: the caller's promise.
        unsafe {
            give_opt(actor.as_ref().map(|(a, _)| a.as_str()), out, out_len)?;
            give_opt(kind.as_deref(), kind_out, kind_len)
        }
    })
}

/// The current scope's tenant, NULL when none; freed with `fasten_free`.
///
/// # Safety
///
/// `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_context_tenant(out: *mut *mut c_char, out_len: *mut usize) -> i32 {
    // SAFETY: the caller's promise.
    call(|| unsafe { give_opt(context::tenant().as_deref(), out, out_len) })
}

/// `give`, or NULL and 0 for `None`.
///
/// # Safety
///
/// As `give`.
unsafe fn give_opt(
    text: Option<&str>,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> Result<(), Failure> {
    match text {
        // SAFETY: forwarded.
        Some(t) => unsafe { give(t.as_bytes(), out, out_len) },
        None => {
            crate::abi::out(out, "out")?;
            crate::abi::out(out_len, "out_len")?;
            // SAFETY: both checked non-NULL; the caller promises they are valid.
            unsafe {
                *out = std::ptr::null_mut();
                *out_len = 0;
            }
            Ok(())
        }
    }
}

/// The size of the buffer `fasten_request_id_from_headers` writes into: the
/// longest request id (128 bytes) and a NUL.
pub const FASTEN_REQUEST_ID_SIZE: usize = 129;

/// Checks a request id: 1-128 characters of `[A-Za-z0-9._:-]`.
/// `FASTEN_ERR_INVALID_EVENT` (field `request_id`) otherwise.
///
/// # Safety
///
/// `request_id` is a valid string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_request_id_check(request_id: Str) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let text = unsafe { request_id.get("request_id") }?.unwrap_or_default();
        RequestId::parse(text)?;
        Ok(())
    })
}

/// The request id an inbound HTTP request carries, by the same rules as
/// fasten's Rust HTTP layer: an `X-Request-ID` that passes the check, else
/// the trace-id of a well-formed W3C `traceparent`, else a fresh id. Either
/// header may be empty. Writes the id, NUL-terminated, into `id_out` (at
/// least `FASTEN_REQUEST_ID_SIZE` bytes) and its length into `*id_len`;
/// `*source` gets 0 (kept `X-Request-ID`), 1 (`traceparent`) or 2 (minted).
///
/// # Safety
///
/// The strings are valid; `id_out` holds `FASTEN_REQUEST_ID_SIZE` writable
/// bytes; `id_len` and `source` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_request_id_from_headers(
    x_request_id: Str,
    traceparent: Str,
    id_out: *mut c_char,
    id_len: *mut usize,
    source: *mut i32,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promises.
        let (x, tp) = unsafe {
            (
                x_request_id.get("x_request_id")?,
                traceparent.get("traceparent")?,
            )
        };
        crate::abi::out(id_out, "id_out")?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            (fasten::http::X_REQUEST_ID, x),
            (fasten::http::TRACEPARENT, tp),
        ] {
            // A value that is not a valid header value is treated as absent,
            // as the Rust layer never sees one.
            if let Some(value) = value.and_then(|v| http::HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        let (id, from) = fasten::http::request_id_from(&headers);
        let code = match from {
            fasten::http::IdSource::Header => 0,
            fasten::http::IdSource::Traceparent => 1,
            _ => 2,
        };
        let bytes = id.as_str().as_bytes();
        // SAFETY: the caller promises FASTEN_REQUEST_ID_SIZE writable bytes
        // at `id_out`; an id is at most 128 bytes; the other two are NULL or
        // writable.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), id_out.cast::<u8>(), bytes.len());
            *id_out.add(bytes.len()) = 0;
            if !id_len.is_null() {
                *id_len = bytes.len();
            }
            if !source.is_null() {
                *source = code;
            }
        }
        Ok(())
    })
}

/// The headers to put on an outbound call made for `request_id`
/// (`X-Request-ID` and a `traceparent` for it), as `Name: value` lines, freed
/// with `fasten_free`.
///
/// # Safety
///
/// `request_id` is valid; `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_outbound_headers(
    request_id: Str,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let id = RequestId::parse(unsafe { request_id.required("request_id") }?)?;
        let headers = context::with(id, fasten::http::outbound_headers);
        let mut text = String::new();
        for (name, value) in &headers {
            text.push_str(name.as_str());
            text.push_str(": ");
            text.push_str(&String::from_utf8_lossy(value.as_bytes()));
            text.push('\n');
        }
        // SAFETY: the caller's promise.
        unsafe { give(text.as_bytes(), out, out_len) }
    })
}
