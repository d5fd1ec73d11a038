//! The entry points of fasten's fuzz targets, one function per target, so
//! that cargo-fuzz (`fuzz_targets/*.rs`, nightly) and the stable replay
//! (`tests/replay.rs`) run exactly the same code. Each takes arbitrary
//! bytes, feeds them to a parser that sees untrusted input, and checks
//! the properties that must hold whatever the input: no panic, and what
//! is noted per target.

use std::path::PathBuf;

use fasten::transparency::{Pack, Proof};

/// Every target, by name, for the replay and the script.
pub const TARGETS: [(&str, fn(&[u8])); 8] = [
    ("dsn", dsn),
    ("request_id", request_id),
    ("canonical_json", canonical_json),
    ("codes_yaml", codes_yaml),
    ("reader_query", reader_query),
    ("signed_note", signed_note),
    ("proof", proof),
    ("pack", pack),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `FASTEN_*_DSN` parsing: never panics, and a parsed DSN prints (Display,
/// Debug) without the password it was given in its userinfo.
pub fn dsn(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let shown = show_dsn(s);
    // A long enough password that cannot occur by chance elsewhere
    // (only PostgreSQL DSNs carry one; a SQLite path is just a path).
    if (s.starts_with("postgres://") || s.starts_with("postgresql://"))
        && let Some(rest) = s.split_once("://").map(|(_, r)| r)
        && let Some(at) = rest.rfind('@')
        && let Some((_, pw)) = rest[..at].split_once(':')
        && pw.len() >= 12
        && !pw.contains("***")
        // Not also written elsewhere in the DSN (as the user name, say).
        && s.matches(pw).count() == 1
        // A letter the password lacks, to stand in for it.
        && let Some(other) = ('a'..='z').find(|c| !pw.contains(*c))
    {
        // The messages' own text may contain the password's characters
        // (`postgres://u` is in "expected … postgres://user:pw@host/db"),
        // so compare with the same DSN under another password: the
        // password may appear no more often than it does there.
        let stand_in = other.to_string().repeat(pw.chars().count());
        let baseline = show_dsn(&s.replacen(pw, &stand_in, 1));
        assert!(
            shown.matches(pw).count() <= baseline.matches(pw).count(),
            "password shown: {shown}"
        );
    }
}

/// What parsing `s` as each kind of DSN prints: the DSN or the error, in
/// Display and Debug.
fn show_dsn(s: &str) -> String {
    [
        fasten::Dsn::parse("FASTEN_AUDIT_DSN", s),
        fasten::Dsn::parse_for("FASTEN_SYS_DSN", s, "sys_log"),
    ]
    .into_iter()
    .map(|result| match result {
        Ok(d) => format!("{d} {d:?} {}", d.table()),
        Err(e) => format!("{e} {e:?}"),
    })
    .collect::<Vec<_>>()
    .join(" ")
}

/// Request ids and `traceparent`: what is accepted round-trips, and what
/// the HTTP layer takes from any headers is always a valid id.
pub fn request_id(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(id) = fasten::RequestId::parse(s) {
        assert_eq!(id.as_str(), s);
        assert!(fasten::RequestId::parse(id.as_str()).is_ok());
    }
    let (x_request_id, traceparent) = s.split_once('\n').unwrap_or((s, s));
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(x_request_id) {
        headers.insert("x-request-id", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", v);
    }
    let (id, _) = fasten::http::request_id_from(&headers);
    assert!(
        fasten::RequestId::parse(id.as_str()).is_ok(),
        "the layer kept an unsafe id {:?}",
        id.as_str()
    );
}

/// The strict parser and the canonical printer: printing is idempotent
/// (`JCS(parse(JCS(v))) == JCS(v)`), and a repeated key is never accepted.
pub fn canonical_json(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let Ok(value) = fasten::contract::parse_json(s) else {
        return;
    };
    let once = fasten::contract::canonical_json(&value);
    let again = fasten::contract::parse_json(&once).expect("canonical JSON parses");
    assert_eq!(fasten::contract::canonical_json(&again), once);
}

/// `*.codes.yaml`: errors, never panics.
pub fn codes_yaml(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let registry = fasten::code::Registry::new();
    let _ = registry.load_str("fuzz.codes.yaml", s);
    for code in registry.codes() {
        assert!(registry.get(code.code()).is_some());
    }
}

/// The reader's query parameters and cursors (one `name=value` a line).
pub fn reader_query(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let pairs: Vec<(&str, &str)> = s
        .lines()
        .map(|l| l.split_once('=').unwrap_or((l, "")))
        .collect();
    let _ = fasten::AuditQuery::from_params(&pairs, 100);
    let _ = fasten::StreamQuery::from_params("sys", &pairs, 100);
    let _ = fasten::StreamQuery::from_params("api", &pairs, 100);
    let _ = fasten::AuditQuery::new(10).cursor(s);
    let _ = fasten::StreamQuery::new(10).cursor(s);
}

const PROOF: &str = include_str!("../seeds/proof.json");
const VERIFIER: &str = include_str!("../seeds/verifier.txt");

fn verifier() -> Vec<String> {
    vec![VERIFIER.trim().to_owned()]
}

/// A signed note (C2SP) in place of a valid proof's checkpoint: opening
/// it with the trusted key never panics, and an altered note never
/// verifies the seed row.
pub fn signed_note(data: &[u8]) {
    let Some(note) = text(data) else { return };
    let mut value: serde_json::Value = serde_json::from_str(PROOF).expect("seed proof");
    let seed_note = value["checkpoint"].as_str().unwrap_or_default().to_owned();
    value["checkpoint"] = note.into();
    let Ok(proof) = serde_json::from_value::<Proof>(value) else {
        return;
    };
    let verdict = fasten::transparency::verify_proof(&proof, &verifier());
    if verdict.is_ok() {
        // Only the signed text itself can vouch for the row: a note that
        // verifies says the same as the seed's (it may differ in what the
        // signature does not cover, such as extra signatures).
        let body = |n: &str| n.split("\n\n").next().unwrap_or_default().to_owned();
        assert_eq!(body(note), body(&seed_note), "a different note verified");
    }
}

/// Any JSON as a proof: verification never panics.
pub fn proof(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let Ok(value) = fasten::contract::parse_json(s) else {
        return;
    };
    if let Ok(proof) = serde_json::from_value::<Proof>(value) {
        let _ = fasten::transparency::verify_proof(&proof, &verifier());
    }
}

const ROWS: &str = include_str!("../seeds/rows.jsonl");
const KEYS: &str = include_str!("../seeds/keys.txt");
const CHECKPOINT: &str = include_str!("../seeds/checkpoint.txt");

/// Evidence packs. The first byte picks what the rest replaces: even, the
/// manifest (parsed strictly, file list and hashes checked); odd, the rows
/// (with a manifest that matches them, so the rows' own checks run). A
/// pack with an altered row never verifies with the trusted key.
pub fn pack(data: &[u8]) {
    use sha2::Digest as _;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("checkpoints")).expect("scratch dir");
    let rows = if mode % 2 == 1 { rest } else { ROWS.as_bytes() };
    let files: [(&str, &[u8]); 3] = [
        ("rows.jsonl", rows),
        ("keys.txt", KEYS.as_bytes()),
        ("checkpoints/0.checkpoint", CHECKPOINT.as_bytes()),
    ];
    let mut listed = serde_json::Map::new();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("scratch file");
        listed.insert(
            name.to_owned(),
            hex::encode(sha2::Sha256::digest(bytes)).into(),
        );
    }
    let manifest = if mode % 2 == 1 {
        serde_json::json!({ "files": listed, "format": "fasten-pack-1", "rows": 0 })
            .to_string()
            .into_bytes()
    } else {
        rest.to_vec()
    };
    std::fs::write(dir.join("manifest.json"), manifest).expect("scratch file");
    if let Ok(mut pack) = Pack::read_dir(&dir) {
        pack.keys = verifier();
        if let Ok(report) = fasten::transparency::verify_pack(&pack)
            && mode % 2 == 1
        {
            // Rows other than the seed's verify only if each is the seed's.
            let seed: Vec<&str> = ROWS.lines().collect();
            for line in std::str::from_utf8(rest).unwrap_or_default().lines() {
                let got: serde_json::Value =
                    serde_json::from_str(line).expect("read_dir parsed it");
                assert!(
                    seed.iter()
                        .any(|s| serde_json::from_str::<serde_json::Value>(s)
                            .is_ok_and(|v| v["row"]["hash"] == got["row"]["hash"])),
                    "a row not in the seed verified: {line} ({report:?})"
                );
            }
        }
    }
}

/// A directory of this process's own (targets run one at a time per
/// process).
fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("fasten-fuzz-pack-{}", std::process::id()))
}
