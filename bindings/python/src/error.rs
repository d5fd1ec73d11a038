//! `fasten::Error` as `fasten.FastenError`, with `kind`, `field` and `var`.

use fasten::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    fasten,
    FastenError,
    PyException,
    "An error of the fasten engine; `kind` names its class, `field` the event field and `var` the variable at fault."
);

/// The exception for an engine error: its message (the engine's `Display`
/// already carries each cause once), and the kind as a lowercase name.
pub(crate) fn to_py_err(py: Python<'_>, e: &Error) -> PyErr {
    let (kind, field, var): (&str, Option<&str>, Option<&str>) = match e.kind() {
        ErrorKind::Config { var } => ("config", None, Some(var)),
        ErrorKind::Codes => ("codes", None, None),
        ErrorKind::UnknownCode => ("unknown_code", Some("code"), None),
        ErrorKind::InvalidEvent { field } => ("invalid_event", Some(field), None),
        ErrorKind::QueueFull => ("queue_full", None, None),
        ErrorKind::Timeout => ("timeout", None, None),
        ErrorKind::Store => ("store", None, None),
        ErrorKind::Closed => ("closed", None, None),
        ErrorKind::Checkpoint => ("checkpoint", None, None),
        ErrorKind::AlreadyInitialised => ("already_initialised", None, None),
        _ => ("other", None, None),
    };
    new_err(py, kind, field, var, e.to_string())
}

/// A `FastenError` made here, for conditions of the binding itself (a
/// kind string that does not parse, a pipeline from before a fork).
pub(crate) fn new_err(
    py: Python<'_>,
    kind: &str,
    field: Option<&str>,
    var: Option<&str>,
    message: String,
) -> PyErr {
    let err = FastenError::new_err(message);
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail short
    // of memory exhaustion, which Python reports on its own.
    let _ = value.setattr("kind", kind);
    let _ = value.setattr("field", field);
    let _ = value.setattr("var", var);
    err
}
