//! RFC 8785 JSON Canonicalization Scheme (JCS), the byte form every hash in form 3 is taken
//! over (row contract §2).
//!
//! Every store, verifier and language binding must reproduce these bytes exactly, so the
//! rules are RFC 8785's and nothing else: members sorted by UTF-16 code units, no
//! whitespace, minimal string escaping, numbers as ECMAScript's `Number.prototype.toString`.
//!
//! JCS models every number as an IEEE 754 double, as JavaScript does. An integer of
//! magnitude at most 2^53 is exactly representable and is printed as such; a larger
//! `i64`/`u64` is rounded to the nearest double and printed like any other double (so
//! `u64::MAX` becomes `18446744073709552000`). A verifier in any language that parses
//! numbers as doubles then computes the same bytes. Callers that need big integers kept
//! exactly must put them in strings.
//!
//! `serde_json::Value` cannot hold NaN or infinities, so nothing here can fail; refusing them
//! is the job of the code that builds the `Value` (see `detail`).

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// Largest integer magnitude that survives the trip through an IEEE double unchanged.
const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Appends the JCS form of a JSON string literal (with quotes) to `out`.
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    // Copy unescaped runs in one go: escapes are rare in audit details, and every byte that
    // needs one is ASCII, so a byte scan can never split a multi-byte character.
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run_start..i]);
        run_start = i + 1;
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0x0f)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

/// For each byte, 0 if it is copied as is, else the character after the backslash.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends the JCS form of `value` to `out`.
pub(crate) fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

/// JCS of `value` as a String (the tests' way in; the crate writes into
/// reused buffers instead).
#[cfg(test)]
pub(crate) fn to_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_value(value, &mut out);
    String::from_utf8(out).expect("JCS output is UTF-8: it copies &str data and adds only ASCII")
}

fn write_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(u) = n.as_u64()
        && u <= MAX_SAFE_INTEGER
    {
        return write_u64(u, false, out);
    }
    if let Some(i) = n.as_i64()
        && i.unsigned_abs() <= MAX_SAFE_INTEGER
    {
        return write_u64(i.unsigned_abs(), i < 0, out);
    }
    // Without serde_json's `arbitrary_precision` every Number has an f64 view; the integers
    // that reach this point are the large ones, which JCS rounds to a double on purpose.
    let f = n
        .as_f64()
        .expect("serde_json::Number always converts to f64");
    // Integral doubles (a `75.0` setpoint) are common in telemetry, and ECMAScript prints
    // those below 1e21 as plain digits; Ryū is slowest on exactly such short outputs.
    // -0.0 takes this path too and prints as `0`, as JCS requires.
    if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 {
        return write_u64(f.abs() as u64, f < 0.0, out);
    }
    // ryu-js follows Number.prototype.toString (exponent thresholds, `e+`, no `.0`).
    out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
}

/// Integers are most of the numbers in audit details; printing them directly skips the
/// shortest-round-trip search a float formatter does.
fn write_u64(mut u: u64, negative: bool, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[start..]);
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(b'{');
    // serde_json's default Map is a BTreeMap, iterated in UTF-8 byte order, which equals
    // UTF-16 order unless keys hold characters at or above U+E000. Checking costs one pass
    // and spares the allocation; it also keeps us correct if Cargo feature unification turns
    // on `preserve_order` and the Map iterates in insertion order instead.
    let sorted = map
        .keys()
        .zip(map.keys().skip(1))
        .all(|(a, b)| cmp_utf16(a, b) == Ordering::Less);
    if sorted {
        write_members(map.iter(), out);
    } else {
        let mut members: Vec<(&String, &Value)> = map.iter().collect();
        members.sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
        write_members(members.into_iter(), out);
    }
    out.push(b'}');
}

fn write_members<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_value(value, out);
    }
}

/// Orders strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
///
/// UTF-8 byte order is code point order, and so is UTF-16 order except in one case: a
/// supplementary character (UTF-8 lead byte F0..F4, UTF-16 D800..DBFF) against one in
/// U+E000..U+FFFF (lead byte EE or EF). So compare bytes and fix up only that case.
fn cmp_utf16(a: &str, b: &str) -> Ordering {
    cmp_utf16_bytes(a.as_bytes(), b.as_bytes())
}

/// [`cmp_utf16`] over the UTF-8 bytes of two strings.
fn cmp_utf16_bytes(ab: &[u8], bb: &[u8]) -> Ordering {
    let Some(i) = ab.iter().zip(bb).position(|(x, y)| x != y) else {
        return ab.len().cmp(&bb.len());
    };
    // If the differing bytes are continuation bytes, the two characters share a lead byte,
    // so have the same length and byte order holds. A byte of F0 or above is a lead byte,
    // and the shared prefix puts the other string's character boundary at the same index.
    let (x, y) = (ab[i], bb[i]);
    match (x >= 0xf0, y >= 0xf0) {
        (true, false) if y >= 0xee => Ordering::Less,
        (false, true) if x >= 0xee => Ordering::Greater,
        _ => x.cmp(&y),
    }
}

/// The length of `value` as compact (serde_json) JSON, counted without
/// building the text: what a page or a shipped batch will weigh.
pub(crate) fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value)?;
    Ok(count.0)
}

/// Parses JSON text as [`serde_json::from_str`] does, but refuses an object
/// with the same key twice (anywhere in the text). serde_json keeps the last
/// value of a repeated key, SQLite's `json_extract` the first: with both in
/// play, a stored `{"i":999999,"i":5}` would verify as one value and be read
/// as another. Every parse of stored or incoming JSON goes through here
/// (verification, the readers, evidence packs, `fasten emit --detail`).
///
/// # Errors
///
/// What serde_json refuses, and `duplicate key "k"` naming the key.
pub(crate) fn parse_strict(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Strict>(text).map(|s| s.0)
}

/// [`parse_strict`] over bytes.
pub(crate) fn parse_strict_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|s| s.0)
}

/// A `Value` deserialised with duplicate keys refused.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value without repeated keys")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key {key:?}"
                )));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Whether `text` is exactly the JCS form of the JSON value it holds, that is,
/// `JCS(parse(text)) == text` byte for byte, and it parses.
///
/// The verifier uses this to hash a stored detail as it is instead of parsing it into a
/// `Value` and printing it again, which was most of the cost of verifying a row. The check
/// is one pass over the bytes with no allocation. It is conservative: it says `false` for
/// anything it does not prove canonical (whitespace, an escaped key, a number it would
/// have to round, nesting deeper than [`MAX_CANONICAL_DEPTH`]), and the caller then takes
/// the slow path, parse and print, which gives the same bytes whenever both apply. So a
/// `false` costs time, never a verdict; only a wrong `true` could, and the properties in
/// the tests pin that every `true` round-trips through serde_json and `write_value`.
pub(crate) fn is_canonical(text: &str) -> bool {
    let mut checker = Checker {
        bytes: text.as_bytes(),
        at: 0,
    };
    checker.value(0) && checker.at == checker.bytes.len()
}

/// Nesting accepted by [`is_canonical`]: well below serde_json's recursion limit (128), so
/// every text it accepts also parses, and the check's own recursion stays shallow.
const MAX_CANONICAL_DEPTH: usize = 64;

/// The cursor of [`is_canonical`].
struct Checker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Checker<'a> {
    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.bytes.get(self.at) {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        if depth > MAX_CANONICAL_DEPTH {
            return false;
        }
        self.at += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if !self.eat(b',') {
                return self.eat(b']');
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        if depth > MAX_CANONICAL_DEPTH {
            return false;
        }
        self.at += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<&'a [u8]> = None;
        loop {
            let Some(key) = self.string() else {
                return false;
            };
            // An escaped key would have to be decoded before comparing; such keys are rare,
            // so leave them to the slow path. Strictly increasing also refuses a duplicate
            // key, which a parser would collapse to one.
            if key.contains(&b'\\')
                || previous.is_some_and(|p| cmp_utf16_bytes(p, key) != Ordering::Less)
            {
                return false;
            }
            previous = Some(key);
            if !self.eat(b':') || !self.value(depth) {
                return false;
            }
            if !self.eat(b',') {
                return self.eat(b'}');
            }
        }
    }

    /// A string literal exactly as [`write_str`] prints it; returns its raw content.
    fn string(&mut self) -> Option<&'a [u8]> {
        let bytes = self.bytes;
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let mut i = start;
        loop {
            let b = *bytes.get(i)?;
            match b {
                b'"' => {
                    self.at = i + 1;
                    return Some(&bytes[start..i]);
                }
                // Raw control characters are not JSON at all.
                0x00..=0x1f => return None,
                b'\\' => {
                    let e = *bytes.get(i + 1)?;
                    i += 2;
                    match e {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        // Only the control characters without a short escape, in lowercase
                        // hex: `\u00e9` or `\/` parse fine but JCS never prints them.
                        b'u' => {
                            let hex = bytes.get(i..i + 4)?;
                            let low = match hex[3] {
                                d @ b'0'..=b'9' => d - b'0',
                                d @ b'a'..=b'f' => d - b'a' + 10,
                                _ => return None,
                            };
                            let c = match hex[..3] {
                                [b'0', b'0', b'0'] => low,
                                [b'0', b'0', b'1'] => 0x10 + low,
                                _ => return None,
                            };
                            if ESCAPE[usize::from(c)] != b'u' {
                                return None;
                            }
                            i += 4;
                        }
                        _ => return None,
                    }
                }
                _ => i += 1,
            }
        }
    }

    /// A number exactly as [`write_number`] prints what serde_json parses from it.
    fn number(&mut self) -> bool {
        let bytes = self.bytes;
        let start = self.at;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        let negative = bytes.get(i) == Some(&b'-');
        i += usize::from(negative);
        let int_start = i;
        let int_len = digits(&mut i);
        if int_len == 0 || (int_len > 1 && bytes[int_start] == b'0') {
            return false;
        }
        let mut integral = true;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            integral = false;
            if digits(&mut i) == 0 {
                return false;
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            integral = false;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return false;
            }
        }
        self.at = i;
        let lexeme = &bytes[start..i];
        if integral && int_len <= 16 {
            // serde_json reads these as u64/i64, and JCS prints those up to 2^53 digit for
            // digit; `-0` becomes `0`.
            let magnitude = bytes[int_start..i]
                .iter()
                .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
            if magnitude <= MAX_SAFE_INTEGER {
                return !(negative && magnitude == 0);
            }
        }
        // A fraction, an exponent or an integer beyond 2^53 (printed as the rounded
        // double): parse it as the full parse would and print it back. Rare in audit
        // details, so the small cost here does not matter.
        let Ok(text) = std::str::from_utf8(lexeme) else {
            return false;
        };
        let Ok(n) = serde_json::from_str::<Number>(text) else {
            return false;
        };
        let mut out = Vec::with_capacity(lexeme.len());
        write_number(&n, &mut out);
        out == lexeme
    }
}

#[cfg(test)]
mod strict_tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        for text in [
            r#"{"i":999999,"i":5}"#,
            r#"{"a":{"b":1,"b":1}}"#,
            r#"[{"x":[{"k":true,"k":false}]}]"#,
        ] {
            let err = parse_strict(text).unwrap_err().to_string();
            assert!(err.contains("duplicate key"), "{text}: {err}");
            assert!(
                serde_json::from_str::<Value>(text).is_ok(),
                "serde_json alone accepts {text}"
            );
        }
        let text = r#"{"a":[1,-2,3.5,1e300,"s",null,true,{}],"b":{"c":18446744073709551615}}"#;
        assert_eq!(
            parse_strict(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/vectors/form3.json");

    fn load_vectors() -> Value {
        let text =
            std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("reading {VECTORS}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn golden_detail_jcs() {
        let vectors = load_vectors();
        let rows = vectors["single_rows"].as_object().unwrap();
        assert!(!rows.is_empty());
        for (name, case) in rows {
            let detail = &case["row"]["detail"];
            assert!(detail.is_object(), "{name}: detail is an object");
            let expected = case["detail_jcs"].as_str().unwrap();
            assert_eq!(to_string(detail), expected, "{name}");
        }
    }

    /// The row hash input (§2) is the JCS of 23 row members; this exercises the same code on
    /// the vector's `canonical_json` without depending on the row type.
    #[test]
    fn golden_row_canonical_json() {
        const NOT_HASHED: [&str; 4] = ["hash", "detail", "detail_salt", "shipped_at"];
        let vectors = load_vectors();
        for (name, case) in vectors["single_rows"].as_object().unwrap() {
            let mut row = case["row"].as_object().unwrap().clone();
            row.retain(|k, _| !NOT_HASHED.contains(&k.as_str()));
            assert_eq!(row.len(), 23, "{name}");
            let expected = case["canonical_json"].as_str().unwrap();
            assert_eq!(to_string(&Value::Object(row)), expected, "{name}");
        }
    }

    fn num(f: f64) -> String {
        to_string(&json!(f))
    }

    /// RFC 8785 §3.2.2.3 and Appendix B, plus the row contract's own examples.
    #[test]
    fn rfc8785_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000_0000_0000_0000, "0"),
            (0x8000_0000_0000_0000, "0"), // -0
            (0x0000_0000_0000_0001, "5e-324"),
            (0x8000_0000_0000_0001, "-5e-324"),
            (0x7fef_ffff_ffff_ffff, "1.7976931348623157e+308"),
            (0xffef_ffff_ffff_ffff, "-1.7976931348623157e+308"),
            (0x4340_0000_0000_0000, "9007199254740992"),
            (0xc340_0000_0000_0000, "-9007199254740992"),
            (0x4430_0000_0000_0000, "295147905179352830000"),
            (0x44b5_2d02_c7e1_4af5, "9.999999999999997e+22"),
            (0x44b5_2d02_c7e1_4af6, "1e+23"),
            (0x44b5_2d02_c7e1_4af7, "1.0000000000000001e+23"),
            (0x444b_1ae4_d6e2_ef4e, "999999999999999700000"),
            (0x444b_1ae4_d6e2_ef4f, "999999999999999900000"),
            (0x444b_1ae4_d6e2_ef50, "1e+21"),
            (0x3eb0_c6f7_a0b5_ed8c, "9.999999999999997e-7"),
            (0x3eb0_c6f7_a0b5_ed8d, "0.000001"),
            (0x41b3_de43_5555_5553, "333333333.3333332"),
            (0x41b3_de43_5555_5554, "333333333.33333325"),
            (0x41b3_de43_5555_5555, "333333333.3333333"),
            (0x41b3_de43_5555_5556, "333333333.3333334"),
            (0x41b3_de43_5555_5557, "333333333.33333343"),
            (0xbecb_f647_612f_3696, "-0.0000033333333333333333"),
            (0x4314_3ff3_c1cb_0959, "1424953923781206.2"),
        ];
        for &(bits, expected) in cases {
            assert_eq!(num(f64::from_bits(bits)), expected, "bits {bits:#018x}");
        }
        assert_eq!(num(75.0), "75");
        assert_eq!(num(1e21), "1e+21");
        assert_eq!(num(1e-7), "1e-7");
        assert_eq!(num(1e-6), "0.000001");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(num(1e20), "100000000000000000000");
        assert_eq!(num(123e-20), "1.23e-18");
    }

    #[test]
    fn integers_exact_up_to_2_pow_53_then_doubles() {
        let n = |v: Value| to_string(&v);
        assert_eq!(n(json!(0)), "0");
        assert_eq!(n(json!(-1)), "-1");
        assert_eq!(n(json!(9_007_199_254_740_991_u64)), "9007199254740991");
        assert_eq!(n(json!(9_007_199_254_740_992_u64)), "9007199254740992");
        assert_eq!(n(json!(-9_007_199_254_740_992_i64)), "-9007199254740992");
        // 2^53 + 1 is not a double; it rounds to 2^53 (ties to even).
        assert_eq!(n(json!(9_007_199_254_740_993_u64)), "9007199254740992");
        assert_eq!(n(json!(-9_007_199_254_740_993_i64)), "-9007199254740992");
        assert_eq!(n(json!(u64::MAX)), "18446744073709552000");
        assert_eq!(n(json!(i64::MIN)), "-9223372036854776000");
        assert_eq!(n(json!(i64::MAX)), "9223372036854776000");
        // Integers and integral doubles agree, as JCS needs.
        for i in [0_i64, 7, -7, 1 << 40, -(1 << 53), 1 << 53] {
            assert_eq!(n(json!(i)), num(i as f64), "{i}");
        }
    }

    /// RFC 8785 §3.2.3's sorting example.
    #[test]
    fn rfc8785_sort_example() {
        let v = json!({
            "\u{20ac}": "Euro Sign",
            "\r": "Carriage Return",
            "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\u{1f600}": "Emoji: Grinning Face",
            "\u{80}": "Control",
            "\u{f6}": "Latin Small Letter O With Diaeresis"
        });
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
            \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
            \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(to_string(&v), expected);
    }

    #[test]
    fn utf16_order_differs_from_utf8_order() {
        let v = json!({"\u{ff61}": 4, "\u{1d11e}": 3, "\u{20ac}": 2, "\u{e9}": 1, "z": 0});
        assert_eq!(
            to_string(&v),
            "{\"z\":0,\"\u{e9}\":1,\"\u{20ac}\":2,\"\u{1d11e}\":3,\"\u{ff61}\":4}"
        );
        assert_eq!(cmp_utf16("\u{1d11e}", "\u{ff61}"), Ordering::Less);
        assert_eq!(cmp_utf16("\u{ff61}", "\u{1d11e}"), Ordering::Greater);
        assert_eq!(cmp_utf16("a\u{10000}", "a\u{10001}"), Ordering::Less);
        assert_eq!(cmp_utf16("ab", "a"), Ordering::Greater);
        assert_eq!(cmp_utf16("", ""), Ordering::Equal);
    }

    #[test]
    #[expect(clippy::excessive_precision, reason = "RFC 8785's input, verbatim")]
    fn rfc8785_structure_example() {
        // RFC 8785 §3.2.4's input, with its numbers typed in as Rust values.
        let v = json!({
            "numbers": [333333333.33333329_f64, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u{20ac}$\u{000F}\u{000a}A'\u{0042}\u{0022}\u{005c}\\\"/",
            "literals": [null, true, false]
        });
        let expected = concat!(
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"#,
            "\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
        assert_eq!(to_string(&v), expected);
    }

    #[test]
    fn string_escapes() {
        let s = |t: &str| {
            let mut out = Vec::new();
            write_str(t, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(s(""), r#""""#);
        assert_eq!(s("\"\\/"), r#""\"\\/""#);
        assert_eq!(s("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(s("\u{0}\u{1}\u{b}\u{1f}"), r#""\u0000\u0001\u000b\u001f""#);
        // DEL, U+2028/2029, non-ASCII and astral characters stay raw.
        assert_eq!(
            s("\u{7f}\u{2028}\u{2029}\u{e9}\u{1d11e}"),
            "\"\u{7f}\u{2028}\u{2029}\u{e9}\u{1d11e}\""
        );
        assert_eq!(s("a\u{1}b\"c"), r#""a\u0001b\"c""#);
        assert_eq!(
            to_string(&json!({"a\nb": [1, {}, []]})),
            r#"{"a\nb":[1,{},[]]}"#
        );
    }

    #[test]
    fn write_appends() {
        let mut out = b"prefix".to_vec();
        write_value(&json!({"b": 1, "a": [true]}), &mut out);
        assert_eq!(out, br#"prefix{"a":[true],"b":1}"#);
    }

    /// Whether some object key in `v` needs an escape in JCS.
    fn has_escaped_key(v: &Value) -> bool {
        match v {
            Value::Array(items) => items.iter().any(has_escaped_key),
            Value::Object(map) => map
                .iter()
                .any(|(k, v)| k.bytes().any(|b| ESCAPE[usize::from(b)] != 0) || has_escaped_key(v)),
            _ => false,
        }
    }

    fn serde_json_exact(f: f64) -> bool {
        serde_json::from_str::<f64>(&num(f)).ok() == Some(f)
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Every finite double, including subnormals and -0, that serde_json reads back
            // exactly: without its `float_roundtrip` feature serde_json's parser may land
            // one ULP off, which is serde_json's error, not ours. `prop_floats_round_trip`
            // covers all doubles with std's correctly rounded parser.
            any::<u64>()
                .prop_map(f64::from_bits)
                .prop_filter("finite", |f| f.is_finite())
                .prop_filter("read back exactly by serde_json", |&f| serde_json_exact(f))
                .prop_map(Value::from),
            (-1e6..1e6_f64)
                .prop_filter("read back exactly by serde_json", |&f| serde_json_exact(f))
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x1f\"\\\\a\u{7f}\u{e9}\u{2028}\u{ff61}\u{1d11e}]{0,6}"
                .prop_map(Value::String),
        ];
        let key = prop_oneof![
            any::<String>(),
            "[a\u{e9}\u{20ac}\u{e000}\u{ff61}\u{1d11e}\u{10ffff}]{0,3}",
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The value a JSON parser must produce from our output: JCS prints every number as a
    /// double, so a large integer comes back as the rounded double (and -0 as 0), which
    /// serde_json then parses as an integer when it has no fraction or exponent.
    fn as_jcs_sees_it(v: &Value) -> Value {
        match v {
            Value::Number(n) => {
                let s = to_string(v);
                let reparsed: Value = serde_json::from_str(&s).unwrap();
                let (a, b) = (n.as_f64().unwrap(), reparsed.as_f64().unwrap());
                assert!(a == b, "{n} printed as {s} reads back as {b}, not {a}");
                reparsed
            }
            Value::Array(items) => Value::Array(items.iter().map(as_jcs_sees_it).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), as_jcs_sees_it(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Checks (c) and (d) by scanning the output with a tiny JSON tokenizer.
    fn check_layout(s: &str) {
        let mut stack: Vec<(bool, Option<String>)> = Vec::new();
        let mut expecting_key = false;
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    let mut lit = String::from('"');
                    loop {
                        let c = chars.next().expect("unterminated string");
                        lit.push(c);
                        match c {
                            '\\' => lit.push(chars.next().expect("dangling escape")),
                            '"' => break,
                            c => assert!(c >= ' ', "raw control char in {s:?}"),
                        }
                    }
                    if expecting_key {
                        let key: String = serde_json::from_str(&lit).unwrap();
                        let (is_obj, prev) = stack.last_mut().unwrap();
                        assert!(*is_obj);
                        if let Some(p) = prev {
                            assert_eq!(cmp_utf16(p, &key), Ordering::Less, "{p:?} !< {key:?}");
                            assert!(p.encode_utf16().lt(key.encode_utf16()), "{p:?} !< {key:?}");
                        }
                        *prev = Some(key);
                        expecting_key = false;
                    }
                }
                '{' => {
                    stack.push((true, None));
                    expecting_key = true;
                }
                '[' => stack.push((false, None)),
                '}' | ']' => {
                    stack.pop();
                    expecting_key = false;
                }
                ',' => expecting_key = stack.last().is_some_and(|(obj, _)| *obj),
                c => assert!(
                    !c.is_whitespace(),
                    "whitespace {c:?} outside strings in {s:?}"
                ),
            }
        }
        assert!(stack.is_empty());
    }

    /// What the verifier's fast path relies on: a text [`is_canonical`] accepts parses, and
    /// printing what it parses to gives the text back.
    fn accepted_round_trips(text: &str) -> Result<(), String> {
        if !is_canonical(text) {
            return Ok(());
        }
        let parsed: Value =
            serde_json::from_str(text).map_err(|e| format!("{text:?} accepted, fails: {e}"))?;
        let printed = to_string(&parsed);
        if printed == text {
            Ok(())
        } else {
            Err(format!("{text:?} accepted, prints as {printed:?}"))
        }
    }

    #[test]
    fn canonical_texts_are_recognised() {
        let accepted = [
            r#"{}"#,
            r#"{"qty":3,"sku":"WIDGET"}"#,
            r#"{"a":[true,false,null,{}],"b":-9007199254740992,"c":"d\u001fe\n\"\\"}"#,
            r#"{"big":1e+21,"price":12.5,"tiny":1e-7}"#,
            "{\"\u{e9}\":1,\"\u{1d11e}\":2,\"\u{ff61}\":3}",
            r#"[0,-1,9007199254740992,0.5]"#,
            "\"\u{7f}\"",
        ];
        for text in accepted {
            assert!(is_canonical(text), "{text}");
            accepted_round_trips(text).unwrap();
        }
        let refused = [
            r#"{"sku":"WIDGET","qty":3}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a": 1}"#,
            " {}",
            "{}\n",
            r#"["\/"]"#,
            r#"["\u00e9"]"#,
            r#"["\u0008"]"#,
            r#"["\u001F"]"#,
            r#"["\u0020"]"#,
            r#"[1.0]"#,
            r#"[-0]"#,
            r#"[1e2]"#,
            r#"[1E+21]"#,
            r#"[01]"#,
            r#"[9007199254740993]"#,
            r#"[18446744073709551615]"#,
            r#"{"a\n":1}"#,
            r#"[1,]"#,
            r#"{"a":1,}"#,
            r#"[tru]"#,
            "\"a",
            "\"\u{1}\"",
            "not json",
            "",
        ];
        for text in refused {
            assert!(!is_canonical(text), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(!is_canonical(&deep));
        let shallow = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(is_canonical(&shallow));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn prop_jcs_output_is_canonical_unless_a_key_is_escaped(v in arb_value()) {
            let s = to_string(&v);
            accepted_round_trips(&s).map_err(TestCaseError::fail)?;
            let escaped_key = has_escaped_key(&v);
            prop_assert!(is_canonical(&s) || escaped_key, "{}", s);
        }

        #[test]
        fn prop_any_accepted_text_round_trips(
            text in "[\\[\\]{}\":,0-9a-z.eE+\\- \\\\\u{e9}\u{1d11e}]{0,24}",
        ) {
            accepted_round_trips(&text).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn prop_accepted_after_a_byte_flip_round_trips(
            v in arb_value(), pos in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let mut bytes = to_string(&v).into_bytes();
            if !bytes.is_empty() {
                let i = pos.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            if let Ok(text) = String::from_utf8(bytes) {
                accepted_round_trips(&text).map_err(TestCaseError::fail)?;
            }
        }

        #[test]
        fn prop_round_trips(v in arb_value()) {
            let s = to_string(&v);
            let parsed: Value = serde_json::from_str(&s).unwrap();
            prop_assert_eq!(&parsed, &as_jcs_sees_it(&v));
        }

        #[test]
        fn prop_idempotent(v in arb_value()) {
            let s = to_string(&v);
            let parsed: Value = serde_json::from_str(&s).unwrap();
            prop_assert_eq!(to_string(&parsed), s);
        }

        #[test]
        fn prop_layout(v in arb_value()) {
            check_layout(&to_string(&v));
        }

        #[test]
        fn prop_cmp_matches_utf16(
            a in "[a\u{e9}\u{e000}\u{ff61}\u{1d11e}\u{10000}\u{10ffff}]{0,4}",
            b in "[a\u{e9}\u{e000}\u{ff61}\u{1d11e}\u{10000}\u{10ffff}]{0,4}",
        ) {
            prop_assert_eq!(cmp_utf16(&a, &b), a.encode_utf16().cmp(b.encode_utf16()));
        }

        #[test]
        fn prop_cmp_matches_utf16_any(a in any::<String>(), b in any::<String>()) {
            prop_assert_eq!(cmp_utf16(&a, &b), a.encode_utf16().cmp(b.encode_utf16()));
        }

        #[test]
        fn prop_fast_paths_agree_with_ryu_js(
            f in prop_oneof![
                any::<u64>().prop_map(f64::from_bits),
                any::<i64>().prop_map(|i| i as f64),
                (-1e7..1e7_f64).prop_map(f64::round),
            ]
        ) {
            prop_assume!(f.is_finite());
            let mut ryu = ryu_js::Buffer::new();
            prop_assert_eq!(num(f), ryu.format_finite(f));
        }

        #[test]
        fn prop_floats_round_trip(f in any::<u64>().prop_map(f64::from_bits)) {
            prop_assume!(f.is_finite());
            let s = num(f);
            let back: f64 = s.parse().unwrap();
            prop_assert!(back == f, "{} printed as {}", f, s);
        }
    }
}
