//! Several OS processes writing one SQLite file at once: one gapless chain
//! per node, nothing lost.

use std::time::Duration;

use fasten::Event;

use super::support::{child, config, db_path, dsn, role, stored_ids};

const PER_CHILD: usize = 1500;

/// Entry point of the child processes: does nothing unless the parent
/// started this binary with `FASTEN_IT_ROLE=emitter`.
#[test]
#[ignore = "child-process entry point, run by its parent test"]
fn child_emitter() {
    if role().as_deref() != Some("emitter") {
        return;
    }
    let path = db_path("FASTEN_IT_DB");
    let node = std::env::var("FASTEN_IT_NODE").unwrap();
    let fasten = config(&path, &node).audit_batch_size(64).build().unwrap();
    for i in 0..PER_CHILD {
        fasten
            .emit(Event::new("USER_CREATED").target(format!("u-{i}")))
            .unwrap();
        if i % 20 == 0 {
            // Not synchronisation: spreads the emits over time so the
            // processes' commits interleave.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let report = fasten.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!(report.written as usize, PER_CHILD);
    assert_eq!(report.unwritten, 0);
}

#[test]
fn processes_sharing_one_file_and_one_node_never_fork_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    // Create the schema once so children race on rows, not on DDL.
    drop(config(&path, "setup").build().unwrap());
    let start = (now_ms() + 1500).to_string();
    let nodes = [
        "node-shared",
        "node-shared",
        "node-shared",
        "node-shared",
        "node-b",
        "node-c",
    ];
    let mut children: Vec<_> = nodes
        .iter()
        .map(|node| {
            child(
                "multiprocess::child_emitter",
                &[
                    ("FASTEN_IT_ROLE", "emitter".to_owned()),
                    ("FASTEN_IT_DB", path.display().to_string()),
                    ("FASTEN_IT_NODE", (*node).to_owned()),
                    ("FASTEN_IT_START", start.clone()),
                ],
            )
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in &mut children {
        let status = c.wait().unwrap();
        assert!(status.success(), "a child failed: {status}");
    }
    let report = fasten::verify(&dsn(&path)).unwrap();
    assert!(report.ok, "{report:#?}");
    let rows: Vec<(&str, u64)> = report
        .nodes
        .iter()
        .map(|n| (n.source_node_id.as_str(), n.rows))
        .collect();
    let per = PER_CHILD as u64;
    assert_eq!(
        rows,
        [("node-b", per), ("node-c", per), ("node-shared", 4 * per)]
    );
    assert_eq!(stored_ids(&path).len(), 6 * PER_CHILD);
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}
