//! What every entry point shares: status codes, the per-thread last error,
//! panic catching, borrowed input strings and returned buffers.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use fasten::ErrorKind;

/// The call succeeded.
pub const FASTEN_OK: i32 = 0;
/// An argument broke an ABI rule: a NULL pointer where one is required,
/// a string that is not UTF-8, a length without a pointer.
pub const FASTEN_ERR_ARGUMENT: i32 = 1;
/// A setting is missing or malformed (`fasten_last_error_field` names the
/// `FASTEN_*` variable).
pub const FASTEN_ERR_CONFIG: i32 = 2;
/// A code registry (YAML text or file) broke a rule.
pub const FASTEN_ERR_CODES: i32 = 3;
/// The event names a code no registry declares.
pub const FASTEN_ERR_UNKNOWN_CODE: i32 = 4;
/// An event field broke a rule of the row contract
/// (`fasten_last_error_field` names it).
pub const FASTEN_ERR_INVALID_EVENT: i32 = 5;
/// The audit queue stayed full for longer than the configured block time.
pub const FASTEN_ERR_QUEUE_FULL: i32 = 6;
/// `flush` or `shutdown` did not finish within its timeout.
pub const FASTEN_ERR_TIMEOUT: i32 = 7;
/// The store failed.
pub const FASTEN_ERR_STORE: i32 = 8;
/// The engine is shut down.
pub const FASTEN_ERR_CLOSED: i32 = 9;
/// A signing key, verifier key or checkpoint note is malformed.
pub const FASTEN_ERR_CHECKPOINT: i32 = 10;
/// fasten panicked inside the call; the panic was caught at the boundary.
///
/// (11 is reserved and never returned: it was `FASTEN_ERR_CHAIN_BROKEN`,
/// which no call returned; a broken chain is a verify report, not an error.)
pub const FASTEN_ERR_PANIC: i32 = 12;
/// Any other failure.
pub const FASTEN_ERR_OTHER: i32 = 13;

/// The size of the buffer `fasten_emit` writes the event id into: 24
/// characters (`evt-` and 20 hex digits) and a NUL.
pub const FASTEN_EVENT_ID_SIZE: usize = 25;

/// A borrowed UTF-8 string with an explicit length; it need not end with a
/// NUL. `{NULL, 0}` (or any zero length) means "not given". fasten never
/// keeps the pointer after the call returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    /// The first byte, or NULL when `len` is 0.
    pub ptr: *const c_char,
    /// The length in bytes, without any NUL.
    pub len: usize,
}

/// A failure on its way to the caller: status, field and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: i32,
    pub(crate) field: String,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn argument(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: FASTEN_ERR_ARGUMENT,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: FASTEN_ERR_INVALID_EVENT,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<fasten::Error> for Failure {
    fn from(e: fasten::Error) -> Self {
        let (status, field) = match e.kind() {
            ErrorKind::Config { var } => (FASTEN_ERR_CONFIG, (*var).to_owned()),
            ErrorKind::Codes => (FASTEN_ERR_CODES, String::new()),
            ErrorKind::UnknownCode => (FASTEN_ERR_UNKNOWN_CODE, "code".to_owned()),
            ErrorKind::InvalidEvent { field } => (FASTEN_ERR_INVALID_EVENT, (*field).to_owned()),
            ErrorKind::QueueFull => (FASTEN_ERR_QUEUE_FULL, String::new()),
            ErrorKind::Timeout => (FASTEN_ERR_TIMEOUT, String::new()),
            // Another implementation's table: a store the bindings cannot use.
            ErrorKind::Store | ErrorKind::ForeignTable { .. } => (FASTEN_ERR_STORE, String::new()),
            ErrorKind::Closed => (FASTEN_ERR_CLOSED, String::new()),
            ErrorKind::Checkpoint => (FASTEN_ERR_CHECKPOINT, String::new()),
            _ => (FASTEN_ERR_OTHER, String::new()),
        };
        Self {
            status,
            field,
            message: chain(&e),
        }
    }
}

impl From<fasten::code::CodeError> for Failure {
    fn from(e: fasten::code::CodeError) -> Self {
        Self {
            status: FASTEN_ERR_CODES,
            field: String::new(),
            // Display says what failed; the YAML or I/O cause is its source.
            message: chain(&e),
        }
    }
}

/// The error and its causes, `a: b: c`: a C caller has no `source()`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

struct LastError {
    message: CString,
    field: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        message: CString::default(),
        field: CString::default(),
    });
}

fn c_string(text: String) -> CString {
    CString::new(text).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|b| *b != 0);
        CString::new(bytes).unwrap_or_default()
    })
}

fn remember(failure: Failure) -> i32 {
    LAST_ERROR.with(|last| {
        let mut last = last.borrow_mut();
        last.message = c_string(failure.message);
        last.field = c_string(failure.field);
    });
    failure.status
}

/// Runs one entry point: a panic becomes `FASTEN_ERR_PANIC`, a failure its
/// status, and either one the thread's last error.
pub(crate) fn call(f: impl FnOnce() -> Result<(), Failure>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => FASTEN_OK,
        Ok(Err(failure)) => remember(failure),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            remember(Failure {
                status: FASTEN_ERR_PANIC,
                field: String::new(),
                message: format!("fasten panicked inside the call: {what}"),
            })
        }
    }
}

/// Reads the last error's text and length; NULL-safe.
pub(crate) fn last(field: bool, len: *mut usize) -> *const c_char {
    LAST_ERROR.with(|last| {
        let last = last.borrow();
        let text = if field { &last.field } else { &last.message };
        if !len.is_null() {
            // SAFETY: the caller passes NULL or a pointer to a writable size_t.
            unsafe { *len = text.as_bytes().len() };
        }
        // The CString lives in this thread's slot until the next failure on
        // this thread replaces it, which is the lifetime the header documents.
        text.as_ptr()
    })
}

impl Str {
    /// The text, or `None` when not given (length 0).
    ///
    /// # Safety
    ///
    /// `ptr` must point to `len` readable bytes that stay valid for `'a`.
    pub(crate) unsafe fn get<'a>(self, field: &str) -> Result<Option<&'a str>, Failure> {
        if self.len == 0 {
            return Ok(None);
        }
        if self.ptr.is_null() {
            return Err(Failure::argument(
                field,
                format!(
                    "invalid {field}: NULL pointer with length {}; pass {{NULL, 0}} to leave it out",
                    self.len
                ),
            ));
        }
        // SAFETY: non-NULL, and the caller promises `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) };
        std::str::from_utf8(bytes).map(Some).map_err(|e| {
            Failure::argument(
                field,
                format!(
                    "invalid {field}: not UTF-8 (bad byte at offset {}); pass UTF-8 text",
                    e.valid_up_to()
                ),
            )
        })
    }

    /// The text, which must be given.
    ///
    /// # Safety
    ///
    /// As [`Str::get`].
    pub(crate) unsafe fn required<'a>(self, field: &str) -> Result<&'a str, Failure> {
        // SAFETY: forwarded from the caller.
        unsafe { self.get(field) }?.ok_or_else(|| {
            Failure::argument(
                field,
                format!("missing {field}: it is required and must not be empty"),
            )
        })
    }
}

/// Dereferences a pointer argument that must not be NULL.
///
/// # Safety
///
/// `ptr` is NULL or points to a valid `T` for `'a`.
pub(crate) unsafe fn arg<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller promises NULL or a valid pointer.
    unsafe { ptr.as_ref() }.ok_or_else(|| {
        Failure::argument(
            name,
            format!("invalid {name}: NULL pointer where one is required"),
        )
    })
}

/// Checks that an out-pointer is not NULL.
pub(crate) fn out<T>(ptr: *mut T, name: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        Err(Failure::argument(
            name,
            format!("invalid {name}: NULL out-pointer; pass the address of a variable"),
        ))
    } else {
        Ok(())
    }
}

/// Hands `bytes` to the caller as a fresh NUL-terminated buffer it frees
/// with `fasten_free`.
///
/// # Safety
///
/// `out` and `out_len` are NULL or valid for writes; NULL ones are errors.
pub(crate) unsafe fn give(
    bytes: &[u8],
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> Result<(), Failure> {
    self::out(out, "out")?;
    self::out(out_len, "out_len")?;
    // SAFETY: malloc of a non-zero size; NULL is checked below.
    let buf = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
    if buf.is_null() {
        return Err(Failure {
            status: FASTEN_ERR_OTHER,
            field: String::new(),
            message: format!("out of memory for a {}-byte result", bytes.len() + 1),
        });
    }
    // SAFETY: `buf` holds `len + 1` bytes and does not overlap `bytes`; the
    // out-pointers were checked above and the caller promises they are valid.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        *buf.add(bytes.len()) = 0;
        *out = buf.cast::<c_char>();
        *out_len = bytes.len();
    }
    Ok(())
}

/// Releases a buffer fasten returned (`char **out` results). NULL is a
/// no-op. Every buffer fasten hands out is released with this function and
/// no other; freeing one twice is undefined behaviour, as with `free`.
///
/// # Safety
///
/// `ptr` is NULL or a buffer returned by fasten and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_free(ptr: *mut c_char) {
    // SAFETY: every buffer fasten returns comes from `libc::malloc` in `give`.
    unsafe { libc::free(ptr.cast()) };
}

/// The message of the last failed call on this thread (lowercase, naming
/// the field and the rule, e.g. `invalid actor_kind "robot": expected one
/// of user, service, system, …`), NUL-terminated; `*len` (if not NULL)
/// gets its length. The text belongs to fasten and stays valid until the
/// next failing call on this thread. Empty before any failure. Successful
/// calls do not clear it: read it right after a non-zero status.
///
/// # Safety
///
/// `len` is NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_last_error(len: *mut usize) -> *const c_char {
    last(false, len)
}

/// The field or `FASTEN_*` variable the last failure on this thread is
/// about (`detail`, `request_id`, `FASTEN_AUDIT_DSN` …), or an empty string;
/// lifetime as for `fasten_last_error`.
///
/// # Safety
///
/// `len` is NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_last_error_field(len: *mut usize) -> *const c_char {
    last(true, len)
}

/// The version of the fasten engine, a static NUL-terminated string.
#[unsafe(no_mangle)]
pub extern "C" fn fasten_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
