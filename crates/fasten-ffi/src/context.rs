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
