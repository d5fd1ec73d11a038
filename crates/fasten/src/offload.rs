//! Awaiting blocking work without blocking an executor thread, on any
//! async runtime: the work runs on a thread of its own and the caller
//! awaits a oneshot channel. Used by the `_async` calls and the HTTP
//! reader, so neither ties fasten to one runtime.

use crate::error::{Error, ErrorKind, Result};

/// Runs `f` on a new thread and awaits its result.
///
/// A thread per call costs tens of microseconds, noise beside what is
/// offloaded here (a commit, a flush, a store read), and needs no pool to
/// size or shut down.
pub(crate) async fn run<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = futures_channel::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("fasten-{what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::Closed,
                format!("cannot start a thread for {what}"),
            )
            .with_source(e)
        })?;
    rx.await.map_err(|_| {
        Error::new(
            ErrorKind::Closed,
            format!("the thread running {what} stopped without an answer (it panicked)"),
        )
    })?
}
