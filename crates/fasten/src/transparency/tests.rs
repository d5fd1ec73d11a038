use std::time::Duration;

use super::*;
use crate::chain::Tip;
use crate::code::{Meta, Registry};
use crate::{Config, Event};

/// A pipeline on node `n` of the store in `dir`, signing with `dir/k`
/// and publishing to `dir/pub`.
fn pipeline(dir: &Path, dsn: &Dsn) -> crate::Fasten {
    let registry = Registry::new();
    registry
        .register("t", [("THING_DONE", Meta::new("thing", "do"))])
        .unwrap();
    Config::new()
        .service_id("s")
        .node_id("n")
        .audit_dsn(dsn.clone())
        .registry(registry)
        .signing_key(dir.join("k"))
        .checkpoint_every(10)
        .audit_batch_size(5)
        .checkpoint_dir(dir.join("pub"))
        .build()
        .unwrap()
}

fn published(dir: &Path) -> Vec<(String, String)> {
    let mut notes: Vec<(String, String)> = std::fs::read_dir(dir.join("pub/n"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    notes.sort();
    notes
}

/// A store of `rows` rows on node `n`, signed as it was written, the
/// published checkpoints, and the verifier key.
fn signed_store(dir: &Path, rows: usize) -> (Dsn, Vec<(String, String)>, String) {
    let keys = generate_key("test.example/n").unwrap();
    std::fs::write(dir.join("k"), &keys.signing_key).unwrap();
    let dsn = Dsn::parse(
        "FASTEN_AUDIT_DSN",
        &format!("sqlite:///{}", dir.join("a.db").display()),
    )
    .unwrap();
    let fasten = pipeline(dir, &dsn);
    for i in 0..rows {
        fasten
            .emit(Event::new("THING_DONE").target(format!("t-{i}")))
            .unwrap();
    }
    fasten.shutdown(Duration::from_secs(60)).unwrap();
    (dsn, published(dir), keys.verifier_key)
}

#[test]
fn replacing_an_old_row_and_resealing_from_there_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (dsn, notes, key) = signed_store(dir.path(), 50);
    assert!(
        check_checkpoints(&dsn, &notes, std::slice::from_ref(&key))
            .unwrap()
            .iter()
            .all(|c| c.reason.is_none())
    );
    // The attacker changes row 10 and re-seals rows 10..50, so the hash
    // chain is whole again.
    let mut store = store::open(&dsn, Access::Read).unwrap();
    let mut rows = Vec::new();
    store
        .scan_chain("n", 0, &mut |r| {
            rows.push(r.unwrap());
            Ok(())
        })
        .unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("a.db")).unwrap();
    let mut tip = Tip {
        seq: 9,
        hash: rows[8].hash.clone(),
    };
    let mut buf = Vec::new();
    rows[9].target = "forged".to_owned();
    for row in &mut rows[9..] {
        chain::link(row, &mut tip, &mut buf).unwrap();
        conn.execute(
            "UPDATE audit_log SET target = ?1, prev_hash = ?2, hash = ?3 WHERE id = ?4",
            rusqlite::params![row.target, row.prev_hash, row.hash, row.id],
        )
        .unwrap();
    }
    assert!(crate::verify(&dsn).unwrap().ok, "the chain alone is fooled");
    let checks = check_checkpoints(&dsn, &notes, &[key]).unwrap();
    // Checkpoints before row 10 still hold; every later one names the rewrite.
    for c in &checks {
        let size = c.size.unwrap();
        if size < 10 {
            assert_eq!(c.reason, None, "{c:?}");
        } else {
            assert!(
                c.reason
                    .as_deref()
                    .unwrap()
                    .contains("history was rewritten"),
                "{c:?}"
            );
        }
    }
    assert!(checks.iter().any(|c| c.size.unwrap() >= 10));
}

#[test]
fn proofs_read_kept_roots_and_fall_back_when_they_are_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (dsn, _, key) = signed_store(dir.path(), 2100);
    let keys = std::slice::from_ref(&key);
    let conn = rusqlite::Connection::open(dir.path().join("a.db")).unwrap();
    // Blocks 0 and 1 of 1024 rows are complete, and the 2048 above them.
    let kept: Vec<(i64, i64)> = conn
            .prepare("SELECT level, idx FROM audit_log_merkle WHERE source_node_id = 'n' ORDER BY level, idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    assert_eq!(kept, [(10, 0), (10, 1), (11, 0)]);
    let id = |seq: i64| -> String {
        conn.query_row(
            "SELECT id FROM audit_log WHERE monotonic_seq = ?1",
            [seq],
            |r| r.get(0),
        )
        .unwrap()
    };
    let proves = |seq: i64| {
        prove_row(&dsn, &id(seq))
            .and_then(|p| verify_proof(&p, keys))
            .map_err(|e| e.to_string())
    };
    for seq in [1, 5, 1024, 1025, 2048, 2049, 2100] {
        proves(seq).unwrap();
    }
    verify_proof(&prove_consistency(&dsn, "n", 1030, 2100).unwrap(), keys).unwrap();

    // A wrong kept root leads elsewhere than the signed root: the proof
    // is rebuilt from the rows and still holds.
    let good: String = conn
        .query_row(
            "SELECT hash FROM audit_log_merkle WHERE level = 10 AND idx = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let set_root = |hash: &str| {
        conn.execute(
            "UPDATE audit_log_merkle SET hash = ?1 WHERE level = 10 AND idx = 1",
            [hash],
        )
        .unwrap()
    };
    set_root(&"00".repeat(32));
    proves(5).unwrap();
    verify_proof(&prove_consistency(&dsn, "n", 1030, 2100).unwrap(), keys).unwrap();
    set_root(&good);

    // With the roots kept, proving row 5 never reads the rows of block 1:
    // hashes there that no rebuild could read do not stop it, while a
    // row of that block, which needs them, can no longer be proven.
    conn.execute(
        "UPDATE audit_log SET hash = 'not hex' WHERE monotonic_seq BETWEEN 1100 AND 1200",
        [],
    )
    .unwrap();
    proves(5).unwrap();
    proves(2100).unwrap();
    assert!(proves(1150).unwrap_err().contains("not 64 hex"));
}

#[test]
fn restoring_an_older_backup_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (dsn, _, key) = signed_store(dir.path(), 20);
    // A backup of the first 20 rows, then 20 more rows are written and signed.
    std::fs::copy(dir.path().join("a.db"), dir.path().join("backup.db")).unwrap();
    std::fs::remove_dir_all(dir.path().join("pub")).unwrap();
    let fasten = pipeline(dir.path(), &dsn);
    for _ in 0..20 {
        fasten.emit(Event::new("THING_DONE")).unwrap();
    }
    fasten.shutdown(Duration::from_secs(60)).unwrap();
    let notes = published(dir.path());
    assert!(!notes.is_empty());
    // Roll the database back to the backup.
    let _ = std::fs::remove_file(dir.path().join("a.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("a.db-shm"));
    std::fs::copy(dir.path().join("backup.db"), dir.path().join("a.db")).unwrap();
    assert!(crate::verify(&dsn).unwrap().ok, "the chain alone is fooled");
    let checks = check_checkpoints(&dsn, &notes, &[key]).unwrap();
    assert!(
        checks
            .iter()
            .all(|c| c.reason.as_deref().unwrap().contains("rolled back")),
        "{checks:?}"
    );
}
