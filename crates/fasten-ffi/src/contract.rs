//! `verify` and the row contract's functions, so every language's tests
//! reproduce the golden vectors through the same code that seals rows.

use std::ffi::c_char;

use fasten::Dsn;
use serde_json::Value;

use crate::abi::{Failure, Str, call, give};

fn json(text: &str, field: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::invalid(field, format!("invalid {field}: not JSON ({e})")))
}

/// Verifies every chain in the audit store at `dsn` (`sqlite:///a.db`,
/// `postgres://…`). Returns `FASTEN_OK` when the store could be read; the
/// verdict is in the report, `{"ok":bool,"nodes":[…]}` (what `fasten verify
/// --json` prints), freed with `fasten_free`.
///
/// # Safety
///
/// `dsn` is valid; `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_verify(
    dsn: Str,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let text = unsafe { dsn.required("dsn") }?;
        let report = fasten::verify(&Dsn::parse("FASTEN_AUDIT_DSN", text)?)?;
        let bytes = serde_json::to_vec(&report)
            .map_err(|e| Failure::invalid("report", format!("report to JSON: {e}")))?;
        // SAFETY: the caller's promise.
        unsafe { give(&bytes, out, out_len) }
    })
}

/// The RFC 8785 canonical form of the JSON text `json` (what fasten hashes),
/// freed with `fasten_free`.
///
/// # Safety
///
/// `json` is valid; `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_canonical_json(
    json: Str,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let value = self::json(unsafe { json.required("json") }?, "json")?;
        let text = fasten::contract::canonical_json(&value);
        // SAFETY: the caller's promise.
        unsafe { give(text.as_bytes(), out, out_len) }
    })
}

/// A row's `detail_commitment` for `salt` (64 hex) and the detail's JSON
/// text, as hex, freed with `fasten_free`.
///
/// # Safety
///
/// The strings are valid; `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_detail_commitment(
    salt: Str,
    detail_json: Str,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let (salt, detail) = unsafe { (salt.required("salt")?, detail_json.required("detail")?) };
        let text = fasten::contract::detail_commitment(salt, &json(detail, "detail")?);
        // SAFETY: the caller's promise.
        unsafe { give(text.as_bytes(), out, out_len) }
    })
}

/// The `hash` of a row given as JSON (all the row contract's columns, as
/// `fasten_emit_durable` returns them), as hex, freed with `fasten_free`.
///
/// # Safety
///
/// `row_json` is valid; `out` and `out_len` are valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fasten_row_hash(
    row_json: Str,
    out: *mut *mut c_char,
    out_len: *mut usize,
) -> i32 {
    call(|| {
        // SAFETY: the caller's promise.
        let text = unsafe { row_json.required("row") }?;
        let row: fasten::Row = serde_json::from_str(text)
            .map_err(|e| Failure::invalid("row", format!("invalid row: {e}")))?;
        let hash = fasten::contract::row_hash(&row);
        // SAFETY: the caller's promise.
        unsafe { give(hash.as_bytes(), out, out_len) }
    })
}
