//! The writer signs checkpoints as it goes, and the store is checked
//! against them.

use std::time::Duration;

use fasten::{Event, transparency};

use super::support::{config, dsn};

fn published(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut notes = Vec::new();
    for node in std::fs::read_dir(dir).unwrap() {
        for file in std::fs::read_dir(node.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "checkpoint") {
                notes.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    notes.sort();
    notes
}

fn sizes(notes: &[(String, String)]) -> Vec<u64> {
    let mut sizes: Vec<u64> = notes
        .iter()
        .map(|(path, _)| {
            let name = std::path::Path::new(path)
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap();
            name.parse().unwrap()
        })
        .collect();
    sizes.sort_unstable();
    sizes
}

#[test]
fn the_writer_signs_every_n_rows_at_flush_and_after_the_interval() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let keys = transparency::generate_key("it.example/node-cp")?;
    std::fs::write(dir.path().join("signing.key"), &keys.signing_key).unwrap();
    let out = dir.path().join("published");
    let setup = |node: &str| {
        config(&path, node)
            .signing_key(dir.path().join("signing.key"))
            .checkpoint_every(100)
            .audit_batch_size(50)
            .checkpoint_interval(Duration::from_millis(200))
            .checkpoint_dir(&out)
    };
    let fasten = setup("node-cp").build()?;
    for _ in 0..250 {
        fasten.emit(Event::new("USER_CREATED"))?;
    }
    fasten.flush(Duration::from_secs(10))?;
    // Signed at the first batch boundary past every 100 rows, and at the flush.
    let got = sizes(&published(&out));
    assert!(got.len() >= 3 && got.last() == Some(&250), "{got:?}");
    assert!(got.windows(2).all(|w| w[1] - w[0] < 150), "{got:?}");
    assert!(got[0] >= 100 && got[0] < 150, "{got:?}");

    // Another process of the same node writes in between: the tree covers its rows too.
    let other = setup("node-cp").build()?;
    for _ in 0..10 {
        other.emit(Event::new("USER_CREATED"))?;
    }
    other.shutdown(Duration::from_secs(10))?;
    fasten.emit(Event::new("USER_CREATED"))?;
    // No flush: the interval alone signs it.
    super::support::wait_until("a checkpoint at 261", || {
        sizes(&published(&out)).contains(&261)
    });
    fasten.shutdown(Duration::from_secs(10))?;
    assert_eq!(fasten.queue_stats().checkpoint_errors, 0);

    let checks = transparency::check_checkpoints(
        &dsn(&path),
        &published(&out),
        std::slice::from_ref(&keys.verifier_key),
    )?;
    assert!(checks.len() >= 5, "{checks:?}");
    for check in &checks {
        assert_eq!(check.reason, None, "{check:?}");
    }
    // The same checkpoints are kept beside the rows.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let kept: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log_checkpoints WHERE source_node_id = 'node-cp'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(kept >= 5);

    // Re-seal the store from scratch: every published checkpoint now fails.
    drop(conn);
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let resealed = config(&path, "node-cp").build()?;
    for _ in 0..300 {
        resealed.emit(Event::new("USER_CREATED"))?;
    }
    resealed.shutdown(Duration::from_secs(10))?;
    assert!(fasten::verify(&dsn(&path))?.ok);
    let checks =
        transparency::check_checkpoints(&dsn(&path), &published(&out), &[keys.verifier_key])?;
    assert!(checks.iter().all(|c| c.reason.is_some()), "{checks:?}");
    Ok(())
}

#[test]
fn a_bad_signing_key_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    std::fs::write(dir.path().join("k"), "not a key").unwrap();
    let err = config(&path, "n")
        .signing_key(dir.path().join("k"))
        .build()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &fasten::ErrorKind::Config {
            var: "FASTEN_SIGNING_KEY"
        }
    );
    let err = config(&path, "n")
        .signing_key(dir.path().join("missing"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("fasten keygen"), "{err}");
}

/// A witness on loopback that records every body POSTed to it.
fn witness() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/add-checkpoint", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(String::from_utf8(body).unwrap());
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, rx)
}

#[test]
fn checkpoints_go_to_an_http_witness() -> fasten::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let keys = transparency::generate_key("it.example/witnessed")?;
    std::fs::write(dir.path().join("k"), &keys.signing_key).unwrap();
    let (url, received) = witness();
    let fasten = config(&path, "node-w")
        .signing_key(dir.path().join("k"))
        .checkpoint_witness_url(url)
        .build()?;
    for _ in 0..3 {
        fasten.emit(Event::new("USER_CREATED"))?;
    }
    fasten.flush(Duration::from_secs(10))?;
    let note = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(note.starts_with("fasten/node-w\n3\n"), "{note}");
    let checks = transparency::check_checkpoints(
        &dsn(&path),
        &[("witness".into(), note)],
        &[keys.verifier_key],
    )?;
    assert_eq!(checks[0].reason, None);
    assert_eq!(fasten.queue_stats().checkpoint_errors, 0);
    let err = config(&path, "n")
        .checkpoint_witness_url("ftp://x")
        .build()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &fasten::ErrorKind::Config {
            var: "FASTEN_CHECKPOINT_WITNESS_URL"
        }
    );
    Ok(())
}
