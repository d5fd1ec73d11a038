//! The row contract's functions (`spec/row-contract.md`), for the language
//! bindings and for anyone who checks fasten's rows with code of their own:
//! canonical JSON, the detail commitment and the row hash. The writer and
//! the verifier use the same functions, so what these return is what
//! fasten seals.

use serde_json::Value;

use crate::chain::{self, Row};

/// The RFC 8785 canonical form of `value`, the bytes fasten hashes.
///
/// # Examples
///
/// ```
/// let v = serde_json::json!({"b": 75.0, "a": [1e21, "é"]});
/// assert_eq!(fasten::contract::canonical_json(&v), r#"{"a":[1e+21,"é"],"b":75}"#);
/// ```
pub fn canonical_json(value: &Value) -> String {
    let mut buf = Vec::with_capacity(128);
    chain::detail_text(value, &mut buf)
}

/// A row's `detail_commitment`: hex SHA-256 of the salt's 64 ASCII bytes
/// followed by the canonical JSON of the detail.
pub fn detail_commitment(salt: &str, detail: &Value) -> String {
    chain::commitment(salt, detail, &mut Vec::new())
}

/// A row's `hash`: hex SHA-256 of the canonical JSON of its 23 hashed
/// members. Compare it with `row.hash` to check a row by itself; the chain
/// (`prev_hash`) is [`verify`](crate::verify)'s business.
pub fn row_hash(row: &Row) -> String {
    chain::row_hash(row, &mut Vec::new())
}

/// Parses JSON text, refusing an object that repeats a key (at any depth).
/// serde_json alone keeps the last value and SQLite's `json_extract` the
/// first, so a repeated key lets one stored text mean two things; fasten
/// parses every stored or incoming JSON text with this.
///
/// # Errors
///
/// The text is not JSON, or repeats a key (the message names it).
///
/// # Examples
///
/// ```
/// assert!(fasten::contract::parse_json(r#"{"i":999999,"i":5}"#).is_err());
/// assert_eq!(fasten::contract::parse_json(r#"{"i":5}"#).unwrap()["i"], 5);
/// ```
pub fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    crate::canonical::parse_strict(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public functions reproduce every golden vector's commitment,
    /// canonical detail and hash.
    #[test]
    fn golden_vectors_through_the_public_functions() {
        let v = chain::tests::vectors();
        let mut checked = 0;
        for row in chain::tests::vector_chain() {
            assert_eq!(row_hash(&row), row.hash);
            if let (Some(detail), Some(salt)) = (&row.detail, &row.detail_salt) {
                assert_eq!(detail_commitment(salt, detail), row.detail_commitment);
            }
            checked += 1;
        }
        assert!(checked >= 3);
        for case in v["single_rows"].as_object().expect("single rows").values() {
            let row: Row = serde_json::from_value(case["row"].clone()).expect("row");
            assert_eq!(row_hash(&row), row.hash);
            if let Some(jcs) = case.get("detail_jcs").and_then(Value::as_str) {
                assert_eq!(canonical_json(row.detail.as_ref().expect("detail")), jcs);
            }
        }
    }
}
