//! fasten's own work never feeds fasten's own streams.
//!
//! The sys stream records `tracing` events (and `log` records bridged into
//! `tracing`). fasten's store clients log too: `tokio_postgres` logs every
//! statement with its parameters at debug level. If those records reached
//! the sys stream, writing one sys row would log a statement holding the
//! previous row, which becomes a sys row holding it again: rows double each
//! round. So events raised on fasten's own threads (the writers, the
//! sweeper, the PostgreSQL client runtime) and inside its store calls made
//! on a caller's thread are never recorded, at any level.

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Marks the calling thread as fasten's own for the rest of its life.
pub(crate) fn mark_thread() {
    DEPTH.with(|d| d.set(d.get().saturating_add(1)));
}

/// Whether the calling thread is doing fasten's own work now.
#[cfg_attr(
    not(any(test, feature = "tracing")),
    expect(dead_code, reason = "read by the sys layer")
)]
pub(crate) fn active() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// Runs `f` as fasten's own work.
#[cfg_attr(
    not(any(test, feature = "postgres")),
    expect(dead_code, reason = "used by the PostgreSQL client")
)]
pub(crate) fn within<R>(f: impl FnOnce() -> R) -> R {
    let _guard = Guard::enter();
    f()
}

/// Marks the calling thread as doing fasten's own work until dropped.
struct Guard(PhantomData<*const ()>);

impl Guard {
    fn enter() -> Self {
        mark_thread();
        Self(PhantomData)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_work_ends_where_it_began() {
        assert!(!active());
        within(|| {
            assert!(active());
            within(|| assert!(active()));
            assert!(active());
        });
        assert!(!active());
        std::thread::spawn(|| {
            mark_thread();
            assert!(active());
        })
        .join()
        .expect("thread");
        assert!(!active());
    }
}
