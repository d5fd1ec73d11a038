//! SIGKILL in `raise` mode: every acknowledged row is in the store and the
//! chain verifies.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fasten::{Event, FailureStrategy};

use super::support::{child, config, db_path, dsn, role, stored_ids};

/// Entry point of the child process: emits from four threads until killed,
/// printing `ACK <id>` for each row `emit` acknowledged.
#[test]
#[ignore = "child-process entry point, run by its parent test"]
fn child_acknowledger() {
    if role().as_deref() != Some("acknowledger") {
        return;
    }
    let path = db_path("FASTEN_IT_DB");
    let fasten = config(&path, "node-crash")
        .audit_store_failure_strategy(FailureStrategy::Raise)
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let fasten = fasten.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let id = fasten
                        .emit(Event::new("USER_UPDATED").target(format!("t{t}-{i}")))
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {id}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn sigkill_in_raise_mode_loses_no_acknowledged_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut proc = child(
        "crash::child_acknowledger",
        &[
            ("FASTEN_IT_ROLE", "acknowledger".to_owned()),
            ("FASTEN_IT_DB", path.display().to_string()),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = proc.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 400 {
        assert!(Instant::now() < deadline, "child too slow");
        let line = lines.next().expect("child alive").unwrap();
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.push(id.to_owned());
        }
    }
    // SIGKILL: no destructor, no flush, no goodbye.
    proc.kill().unwrap();
    // Lines already written before the kill were acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.push(id.to_owned());
        }
    }
    proc.wait().unwrap();
    let stored = stored_ids(&path);
    let missing: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let report = fasten::verify(&dsn(&path)).unwrap();
    assert!(report.ok, "{report:#?}");
    assert!(report.nodes[0].rows as usize >= acked.len());
}
