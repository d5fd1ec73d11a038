//! Form-3 sealing: the detail commitment, the row hash and the link to the
//! previous row (row contract §2 and §3).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical;

/// The `prev_hash` of the first row of every node's chain.
pub(crate) const GENESIS: &str = "genesis";
/// The canonical form this crate seals with.
pub(crate) const CANONICAL_FORM_ID: &str = "3";
/// The wire version this crate writes.
pub(crate) const WIRE_VERSION: &str = "1";

/// One audit row with every column of the row contract.
///
/// Text columns hold exactly what the store holds, so a row read back from
/// any conforming store hashes the same as when it was sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Row {
    /// `evt-` + 20 lowercase hex.
    pub id: String,
    /// The `id` given where the row was first written.
    pub origin_id: String,
    /// 1, 2, 3 … per `source_node_id`.
    pub monotonic_seq: i64,
    /// UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub timestamp: String,
    /// The registered code (WHAT).
    pub code: String,
    /// The code's action (WHAT).
    pub action: String,
    /// `debug` … `critical`.
    pub severity: String,
    /// `success`, `failure`, `denied` or `unknown`; empty (and left out of
    /// the JSON) on a row read from another implementation's table,
    /// which has no such column.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outcome: String,
    /// The emitting service (WHERE).
    pub service_id: String,
    /// The emitting node; the chain key (WHERE).
    pub source_node_id: String,
    /// The tenant, if any (WHERE).
    pub tenant_id: Option<String>,
    /// Who did it (WHO).
    pub actor: String,
    /// `user`, `service`, `schedule` or `agent` (WHO).
    pub actor_kind: String,
    /// What it was done to (WHOM); may be empty.
    pub target: String,
    /// The code's category (WHOM).
    pub category: String,
    /// The code's domain (WHOM).
    pub domain: String,
    /// The channel it came through (HOW).
    pub method: String,
    /// The correlation key.
    pub request_id: String,
    /// The redacted detail object; `None` once erased.
    pub detail: Option<Value>,
    /// 64 lowercase hex; `None` once erased.
    pub detail_salt: Option<String>,
    /// SHA-256 of salt ‖ JCS(detail); empty (and left out of the JSON) on
    /// a row read from another implementation's table.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail_commitment: String,
    /// Whether the code declares personal data in its detail.
    pub pii_in_detail: bool,
    /// Store bookkeeping, not hashed.
    pub shipped_at: Option<String>,
    /// Always `1` today.
    pub wire_version: String,
    /// `3` for rows this crate seals.
    pub canonical_form_id: String,
    /// The previous row's `hash`, or `genesis`.
    pub prev_hash: String,
    /// SHA-256 of JCS of the 23 hashed members.
    pub hash: String,
}

/// One stored row borrowed from the store's read buffer: every column, and
/// the detail as the JSON text the store holds. Verification reads rows in
/// this form, so a scan of a million rows allocates nothing per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowRef<'a> {
    pub(crate) id: &'a str,
    pub(crate) origin_id: &'a str,
    pub(crate) monotonic_seq: i64,
    pub(crate) timestamp: &'a str,
    pub(crate) code: &'a str,
    pub(crate) action: &'a str,
    pub(crate) severity: &'a str,
    pub(crate) outcome: &'a str,
    pub(crate) service_id: &'a str,
    pub(crate) source_node_id: &'a str,
    pub(crate) tenant_id: Option<&'a str>,
    pub(crate) actor: &'a str,
    pub(crate) actor_kind: &'a str,
    pub(crate) target: &'a str,
    pub(crate) category: &'a str,
    pub(crate) domain: &'a str,
    pub(crate) method: &'a str,
    pub(crate) request_id: &'a str,
    /// The stored JSON text; `None` once erased.
    pub(crate) detail: Option<&'a str>,
    pub(crate) detail_salt: Option<&'a str>,
    pub(crate) detail_commitment: &'a str,
    pub(crate) pii_in_detail: bool,
    pub(crate) shipped_at: Option<&'a str>,
    pub(crate) wire_version: &'a str,
    pub(crate) canonical_form_id: &'a str,
    pub(crate) prev_hash: &'a str,
    pub(crate) hash: &'a str,
}

impl RowRef<'_> {
    /// The owned row, with the detail parsed.
    pub(crate) fn to_row(self) -> Result<Row, serde_json::Error> {
        let detail = self.detail.map(canonical::parse_strict).transpose()?;
        let own = |s: &str| s.to_owned();
        Ok(Row {
            id: own(self.id),
            origin_id: own(self.origin_id),
            monotonic_seq: self.monotonic_seq,
            timestamp: own(self.timestamp),
            code: own(self.code),
            action: own(self.action),
            severity: own(self.severity),
            outcome: own(self.outcome),
            service_id: own(self.service_id),
            source_node_id: own(self.source_node_id),
            tenant_id: self.tenant_id.map(own),
            actor: own(self.actor),
            actor_kind: own(self.actor_kind),
            target: own(self.target),
            category: own(self.category),
            domain: own(self.domain),
            method: own(self.method),
            request_id: own(self.request_id),
            detail,
            detail_salt: self.detail_salt.map(own),
            detail_commitment: own(self.detail_commitment),
            pii_in_detail: self.pii_in_detail,
            shipped_at: self.shipped_at.map(own),
            wire_version: own(self.wire_version),
            canonical_form_id: own(self.canonical_form_id),
            prev_hash: own(self.prev_hash),
            hash: own(self.hash),
        })
    }
}

impl Row {
    /// The row borrowed, for hashing: `detail` is left out (`None`) because
    /// the row hash never reads it; the commitment stands in for it.
    pub(crate) fn hashed(&self) -> RowRef<'_> {
        RowRef {
            id: &self.id,
            origin_id: &self.origin_id,
            monotonic_seq: self.monotonic_seq,
            timestamp: &self.timestamp,
            code: &self.code,
            action: &self.action,
            severity: &self.severity,
            outcome: &self.outcome,
            service_id: &self.service_id,
            source_node_id: &self.source_node_id,
            tenant_id: self.tenant_id.as_deref(),
            actor: &self.actor,
            actor_kind: &self.actor_kind,
            target: &self.target,
            category: &self.category,
            domain: &self.domain,
            method: &self.method,
            request_id: &self.request_id,
            detail: None,
            detail_salt: self.detail_salt.as_deref(),
            detail_commitment: &self.detail_commitment,
            pii_in_detail: self.pii_in_detail,
            shipped_at: self.shipped_at.as_deref(),
            wire_version: &self.wire_version,
            canonical_form_id: &self.canonical_form_id,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// `detail_commitment`: hex SHA-256 of the salt's 64 ASCII bytes followed by
/// JCS(detail). An event emitted without detail is sealed with `{}`, so a
/// NULL detail always means "erased", never "there was none".
pub(crate) fn commitment(salt: &str, detail: &Value, buf: &mut Vec<u8>) -> String {
    buf.clear();
    buf.extend_from_slice(salt.as_bytes());
    canonical::write_value(detail, buf);
    hex64(&Sha256::digest(&buf[..]).into())
}

/// The commitment of a detail stored as JSON `text`, as raw bytes, without
/// building a `Value` when the text is already in JCS form (as this crate
/// stores it, see [`detail_text`]): then JCS(parse(text)) is the text itself,
/// so hashing it directly gives exactly what [`commitment`] gives.
pub(crate) fn commitment_of_text(
    salt: &str,
    text: &str,
    buf: &mut Vec<u8>,
) -> Result<[u8; 32], serde_json::Error> {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    if canonical::is_canonical(text) {
        h.update(text.as_bytes());
    } else {
        let value: Value = canonical::parse_strict(text)?;
        buf.clear();
        canonical::write_value(&value, buf);
        h.update(&buf[..]);
    }
    Ok(h.finalize().into())
}

/// The text a store keeps in `detail`: the JCS form, which is plain JSON to
/// any reader and lets the verifier hash it as stored. (PostgreSQL keeps
/// JSONB, which has a form of its own, so only SQLite uses it.)
pub(crate) fn detail_text(detail: &Value, buf: &mut Vec<u8>) -> String {
    buf.clear();
    canonical::write_value(detail, buf);
    String::from_utf8_lossy(buf).into_owned()
}

/// Whether `stored` is the lowercase hex of `digest`, as every hash column
/// holds it (uppercase does not match, as with a string comparison).
pub(crate) fn hex_matches(digest: &[u8; 32], stored: &str) -> bool {
    let mut out = [0u8; 64];
    hex::encode_to_slice(digest, &mut out).expect("64 bytes hold 32 in hex");
    out == stored.as_bytes()
}

/// A fresh 32-byte salt as 64 lowercase hex.
pub(crate) fn fresh_salt() -> String {
    hex64(&rand::random::<[u8; 32]>())
}

/// 32 bytes as 64 lowercase hex, without `hex::encode`'s per-char iterator
/// (it showed in the writer's profile).
fn hex64(bytes: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    hex::encode_to_slice(bytes, &mut out).expect("64 bytes hold 32 in hex");
    String::from_utf8_lossy(&out).into_owned()
}

/// The row's `hash` (row contract §2). `buf` is scratch space reused
/// across rows so sealing a batch does not allocate per row.
pub(crate) fn row_hash(row: &Row, buf: &mut Vec<u8>) -> String {
    hex64(&row_digest(&row.hashed(), buf))
}

/// [`row_hash`] as raw bytes, from a borrowed row.
pub(crate) fn row_digest(row: &RowRef<'_>, buf: &mut Vec<u8>) -> [u8; 32] {
    let mut seq_buf = [0u8; 20];
    let seq = format_i64(row.monotonic_seq, &mut seq_buf);
    let pii = if row.pii_in_detail { "true" } else { "false" };
    let tenant = match row.tenant_id {
        Some(t) => Member::Str(t),
        None => Member::Raw("null"),
    };
    // The 23 member names are ASCII, so their JCS order is plain byte order:
    // fixed here once rather than sorted per row.
    let members: [(&str, Member<'_>); 23] = [
        ("action", Member::Str(row.action)),
        ("actor", Member::Str(row.actor)),
        ("actor_kind", Member::Str(row.actor_kind)),
        ("canonical_form_id", Member::Str(row.canonical_form_id)),
        ("category", Member::Str(row.category)),
        ("code", Member::Str(row.code)),
        ("detail_commitment", Member::Str(row.detail_commitment)),
        ("domain", Member::Str(row.domain)),
        ("id", Member::Str(row.id)),
        ("method", Member::Str(row.method)),
        ("monotonic_seq", Member::Raw(seq)),
        ("origin_id", Member::Str(row.origin_id)),
        ("outcome", Member::Str(row.outcome)),
        ("pii_in_detail", Member::Raw(pii)),
        ("prev_hash", Member::Str(row.prev_hash)),
        ("request_id", Member::Str(row.request_id)),
        ("service_id", Member::Str(row.service_id)),
        ("severity", Member::Str(row.severity)),
        ("source_node_id", Member::Str(row.source_node_id)),
        ("target", Member::Str(row.target)),
        ("tenant_id", tenant),
        ("timestamp", Member::Str(row.timestamp)),
        ("wire_version", Member::Str(row.wire_version)),
    ];
    buf.clear();
    buf.push(b'{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'"');
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\":");
        match value {
            Member::Str(s) => canonical::write_str(s, buf),
            Member::Raw(r) => buf.extend_from_slice(r.as_bytes()),
        }
    }
    buf.push(b'}');
    Sha256::digest(&buf[..]).into()
}

/// `n` in decimal, as JSON and `to_string` print it, into `out`, without
/// allocating.
fn format_i64(n: i64, out: &mut [u8; 20]) -> &str {
    let mut u = n.unsigned_abs();
    let mut start = out.len();
    loop {
        start -= 1;
        out[start] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if n < 0 {
        start -= 1;
        out[start] = b'-';
    }
    std::str::from_utf8(&out[start..]).expect("ASCII digits")
}

/// A hashed member's value: a string to escape, or a literal already in JCS form.
enum Member<'a> {
    Str(&'a str),
    Raw(&'a str),
}

/// The newest row of one node's chain, as read inside an insert transaction.
// Only stores use it; a build with no store feature has none.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tip {
    pub(crate) seq: i64,
    pub(crate) hash: String,
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
impl Tip {
    /// The tip of a chain with no rows yet.
    pub(crate) fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
/// Gives `row` the next place after `tip` and seals it; `tip` moves on to
/// the row. Every store calls this inside its insert transaction, after
/// reading the tip there, so all backends seal identically.
///
/// # Errors
///
/// [`ErrorKind::ChainExhausted`](crate::ErrorKind::ChainExhausted) when the
/// tip's seq has no successor (a row planted at `i64::MAX`): the chain
/// cannot be continued, and retrying cannot help.
pub(crate) fn link(row: &mut Row, tip: &mut Tip, buf: &mut Vec<u8>) -> crate::Result<()> {
    let Some(seq) = tip.seq.checked_add(1) else {
        return Err(crate::Error::new(
            crate::ErrorKind::ChainExhausted {
                node: row.source_node_id.clone(),
            },
            format!(
                "the chain of node {} cannot be continued: its tip monotonic_seq {} has no successor (a row was planted at the end of the range; verify the store)",
                row.source_node_id, tip.seq
            ),
        ));
    };
    row.monotonic_seq = seq;
    row.prev_hash.clone_from(&tip.hash);
    row.hash = row_hash(row, buf);
    tip.seq = row.monotonic_seq;
    tip.hash.clone_from(&row.hash);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The golden vectors, read as data (never copied into literals).
    pub(crate) fn vectors() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/vectors/form3.json");
        let text = std::fs::read_to_string(path).expect("spec/vectors/form3.json in the repo");
        serde_json::from_str(&text).expect("vectors parse")
    }

    pub(crate) fn vector_chain() -> Vec<Row> {
        serde_json::from_value(vectors()["chain"].clone()).expect("chain rows")
    }

    #[test]
    fn single_row_vectors_reproduce_commitment_canonical_json_and_hash() {
        let v = vectors();
        let singles = v["single_rows"].as_object().expect("single_rows");
        assert!(singles.len() >= 3);
        let mut buf = Vec::new();
        for (name, case) in singles {
            let row: Row = serde_json::from_value(case["row"].clone()).expect("row");
            let detail = row.detail.as_ref().expect("detail");
            let salt = row.detail_salt.as_deref().expect("salt");
            assert_eq!(
                commitment(salt, detail, &mut buf),
                row.detail_commitment,
                "{name}: commitment"
            );
            assert_eq!(
                std::str::from_utf8(&buf[64..]).expect("utf-8"),
                case["detail_jcs"].as_str().expect("detail_jcs"),
                "{name}: detail JCS"
            );
            assert_eq!(row_hash(&row, &mut buf), row.hash, "{name}: hash");
            assert_eq!(
                std::str::from_utf8(&buf).expect("utf-8"),
                case["canonical_json"].as_str().expect("canonical_json"),
                "{name}: canonical json"
            );
        }
    }

    #[test]
    fn seq_digits_are_printed_as_to_string_does() {
        for n in [0, 1, -1, 9, 10, 1_000_000, i64::MAX, i64::MIN, i64::MIN + 1] {
            let mut out = [0u8; 20];
            assert_eq!(format_i64(n, &mut out), n.to_string());
        }
    }

    #[test]
    fn stored_detail_text_commits_like_the_value_it_holds() {
        let v = vectors();
        let mut buf = Vec::new();
        for (name, case) in v["single_rows"].as_object().expect("single_rows") {
            let row: Row = serde_json::from_value(case["row"].clone()).expect("row");
            let detail = row.detail.as_ref().expect("detail");
            let salt = row.detail_salt.as_deref().expect("salt");
            // As this crate stores it (JCS, hashed as is), and as another
            // writer might (serde_json's form, parsed and re-canonicalised).
            for text in [detail_text(detail, &mut buf), detail.to_string()] {
                let digest = commitment_of_text(salt, &text, &mut buf).expect("JSON");
                assert!(
                    hex_matches(&digest, &row.detail_commitment),
                    "{name}: {text}"
                );
            }
            assert!(canonical::is_canonical(&detail_text(detail, &mut buf)));
            assert!(commitment_of_text(salt, "{", &mut buf).is_err());
            let digest = commitment_of_text(salt, r#"{"x":1}"#, &mut buf).expect("JSON");
            assert!(!hex_matches(&digest, &row.detail_commitment), "{name}");
        }
        assert!(!hex_matches(&[0xab; 32], &"AB".repeat(32)));
        assert!(hex_matches(&[0xab; 32], &"ab".repeat(32)));
    }

    #[test]
    fn chain_vector_is_reproduced_by_linking_from_genesis() {
        let expected = vector_chain();
        assert_eq!(expected.len(), 7);
        let mut tip = Tip::genesis();
        let mut buf = Vec::new();
        for want in &expected {
            let mut row = want.clone();
            row.monotonic_seq = 0;
            row.prev_hash.clear();
            row.hash.clear();
            link(&mut row, &mut tip, &mut buf).unwrap();
            assert_eq!(&row, want);
        }
    }
}
