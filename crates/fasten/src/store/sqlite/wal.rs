//! Copying the writer's WAL back into the database file, off the commit
//! path.
//!
//! By default the SQLite commit that takes the WAL past 1000 pages runs the
//! checkpoint itself: it copies those pages into the database file and
//! fsyncs it before returning. With the writer committing one batch at a
//! time, about one commit in a hundred paid for that, and a `raise`-mode
//! emit waiting on such a commit stalled for as long as the fsync took.
//! The writer's connection therefore checkpoints nothing
//! (`wal_autocheckpoint=0`); this thread does it, with a connection of its
//! own, every [`EVERY`]. PASSIVE never waits for, nor blocks, the writer: it
//! copies what no reader still needs (nothing, and no fsync, when no commit
//! came since), and the WAL restarts from its beginning once everything is
//! copied.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, OpenFlags};

use super::{sql_err, wait_for_lock};
use crate::error::{Error, Result};

/// How often the WAL is copied back: at the writer's fastest, about the
/// 1000 pages SQLite would copy at once.
const EVERY: Duration = Duration::from_millis(100);

/// The thread that checkpoints one database file's WAL; it stops when
/// dropped.
pub(super) struct WalCheckpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WalCheckpointer {
    /// Opens a second connection to `path` and starts the thread.
    pub(super) fn start(path: &Path) -> Result<Self> {
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::store(format!("sqlite: cannot open {}", path.display()), e))?;
        conn.busy_handler(Some(wait_for_lock))
            .map_err(sql_err("set busy handler"))?;
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let thread = std::thread::Builder::new()
            .name("fasten-sqlite-wal".to_owned())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| Error::store("sqlite: start the WAL checkpoint thread", e))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for WalCheckpointer {
    /// Stops the thread and waits for it, so no connection to the file
    /// outlives the store.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, stopped: &Receiver<()>) {
    let mut failing = false;
    loop {
        match stopped.recv_timeout(EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // A failure is reported once until a checkpoint works again: the
        // WAL then only grows, which loses nothing, and the next try may
        // succeed.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(target: "fasten::store", error = %e, "sqlite: checkpointing the WAL failed; it grows until a checkpoint succeeds");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteStore, tests::row};
    use crate::store::{Access, Store};

    /// The writer's commits leave every page in the WAL; the thread copies
    /// them into the database file, which grows from its empty schema.
    #[test]
    fn commits_are_copied_back_by_the_thread_not_the_writer() -> crate::Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::store("tempdir", e))?;
        let path = dir.path().join("a.db");
        let mut store = SqliteStore::open(&path, "audit_log", Access::Write)?;
        let autocheckpoint: i64 = store
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .map_err(super::sql_err("read wal_autocheckpoint"))?;
        assert_eq!(autocheckpoint, 0, "the writer's commits checkpoint nothing");
        let empty = std::fs::metadata(&path).map_or(0, |m| m.len());
        for batch in 0..20 {
            let mut rows: Vec<_> = (0..50)
                .map(|i| row("n1", &format!("evt-{batch}-{i}")))
                .collect();
            store.append(&mut rows, false)?;
        }
        // Polled, with a bound far past the thread's 100 ms so a loaded
        // machine cannot fail it.
        let copied = || std::fs::metadata(&path).is_ok_and(|m| m.len() > empty + 100 * 1024);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !copied() {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not copied into the database file within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(store);
        Ok(())
    }
}
