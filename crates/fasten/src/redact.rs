//! Redaction of an event's detail before it is queued.
//!
//! Audit rows are hash-chained: once a row is sealed, changing a byte of it
//! breaks verification of everything after it. A secret that reaches the
//! store therefore cannot be scrubbed later without the chain reporting
//! tampering, so secrets have to be removed on the emitting thread, before
//! the row exists. Callers put whatever they like into `detail`; this module
//! is the one place that decides what of it may be kept.
//!
//! The rules, in order:
//!
//! 1. A value whose key looks like it names a secret (`X-Api-Key`,
//!    `client_secret`, …) becomes [`MARKER`], whatever its type.
//! 2. Any other string that is or contains a credential of a known shape
//!    (JWT, PEM private key, cloud and SaaS API keys, card numbers) becomes
//!    `"[REDACTED:<kind>]"`.
//! 3. For codes that declare personal data in their detail, only the
//!    declared top-level keys survive.
//! 4. A detail whose compact JSON is longer than the cap becomes a small
//!    summary of what it held, so one careless event cannot bloat the store.
//!
//! It runs on the emitting thread of every event, so the common case (a few
//! short keys, short or no strings) allocates nothing and costs on the order
//! of a hundred nanoseconds.

use std::fmt;
use std::io;
use std::ops::ControlFlow;

use serde_json::{Map, Value};

/// What replaces the value of a key that names a secret.
pub(crate) const MARKER: &str = "[REDACTED]";

/// Key fragments that name secrets, in readable form; [`normalise`] turns
/// them into what is actually matched (`apikey`, `privatekey`, …).
const BUILTIN_NEEDLES: [&str; 17] = [
    "api key",
    "password",
    "passwd",
    "passphrase",
    "signing key",
    "database url",
    "connection string",
    "client key",
    "token",
    "secret",
    "authorization",
    "bearer",
    "private key",
    "access key",
    "session id",
    "cookie",
    "credential",
];

/// Key words that name a secret only as a whole word of the key (`pin`,
/// `user_pin`, `otpCode`), since as substrings they are everywhere
/// (`shipping`, `author`, `hotpot`, `passport`).
const BUILTIN_WORDS: [&str; 6] = ["pass", "pwd", "auth", "pin", "otp", "dsn"];

/// Keys that count tokens of a model call (`fasten::agent` writes the first
/// two): their key holds `token`, but a whole number under one of exactly
/// these names is a count, not a secret, and is kept. Any other value under
/// them is redacted as usual.
const TOKEN_COUNT_KEYS: [&str; 5] = [
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
];

/// The single top-level key of a detail that was too large.
const TRUNCATED_KEY: &str = "_fasten_truncated";

/// How many key names a summary lists: enough to tell what the event was
/// carrying, few enough that the summary itself stays small.
const SUMMARY_MAX_KEYS: usize = 32;

/// Longest key name a summary lists whole. Without it a single enormous key
/// name would carry the oversized payload straight past the cap.
const SUMMARY_MAX_NAME_BYTES: usize = 128;

/// Appended to a key name cut to [`SUMMARY_MAX_NAME_BYTES`].
const ELLIPSIS: &str = "…";

/// Normalised keys up to this length are matched in a stack buffer; longer
/// ones are rare enough to allocate.
const KEY_BUF_BYTES: usize = 64;

/// No recognised secret is shorter than this (`a://u:p@` with a host), so
/// shorter strings skip the scan altogether.
const MIN_SECRET_BYTES: usize = 8;

/// Upper bound of a JSON number's compact text: 20 characters for any
/// `i64`/`u64`, 24 for the longest shortest-round-trip `f64`
/// (`-1.2345678901234567e-308`). It relies on `serde_json` being built
/// without `arbitrary_precision`, which a test pins.
const NUMBER_BOUND: usize = 24;

/// What redaction changed in one detail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Redacted {
    /// Values replaced with [`MARKER`] because of their key (a value that
    /// already was the marker does not count).
    pub(crate) keys: u32,
    /// Strings replaced with `"[REDACTED:<kind>]"` because of their content.
    pub(crate) values: u32,
    /// Top-level keys removed because the code declares personal data and
    /// they are not among its passthrough keys.
    pub(crate) dropped: u32,
    /// Whether the detail was replaced with a size summary.
    pub(crate) truncated: bool,
}

/// The redaction rules in force for a pipeline (built once at init, shared
/// read-only).
#[derive(Clone)]
pub(crate) struct Policy {
    /// Normalised key needles, bucketed by first byte (256 buckets) so each
    /// position of a key is compared only with needles that can start there.
    by_first: Box<[Vec<Box<[u8]>>]>,
    /// Bit `256 * a + b` is set when a needle starts with bytes `a`, `b`
    /// (every `b` for a one-byte needle). Most positions of most keys fail
    /// this one lookup and never reach a comparison.
    pairs: Box<[u64]>,
    /// Length of the shortest needle: shorter keys cannot match.
    min_needle: usize,
    /// `FASTEN_MAX_DETAIL_BYTES`.
    max_detail_bytes: usize,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buckets are an index; the needles are what a reader wants.
        let needles: Vec<_> = self
            .by_first
            .iter()
            .flatten()
            .map(|n| String::from_utf8_lossy(n))
            .collect();
        f.debug_struct("Policy")
            .field("needles", &needles)
            .field("max_detail_bytes", &self.max_detail_bytes)
            .finish()
    }
}

impl Policy {
    /// Builds the rules from the user's extra key needles
    /// (`FASTEN_REDACT_KEYS`, already split on commas; empty ones are
    /// ignored) and the detail size cap.
    pub(crate) fn new(extra_keys: &[String], max_detail_bytes: usize) -> Policy {
        let mut needles: Vec<String> = BUILTIN_NEEDLES
            .iter()
            .map(|n| normalise(n))
            .chain(extra_keys.iter().map(|n| normalise(n.trim())))
            // An empty needle would be a substring of every key.
            .filter(|n| !n.is_empty())
            .collect();
        needles.sort_unstable_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        // A needle that contains a shorter one can never be what decides a
        // match, so it would only cost comparisons.
        let mut kept: Vec<String> = Vec::with_capacity(needles.len());
        for n in needles {
            if !kept.iter().any(|k| n.contains(k.as_str())) {
                kept.push(n);
            }
        }
        let mut by_first: Box<[Vec<Box<[u8]>>]> = vec![Vec::new(); 256].into_boxed_slice();
        let mut pairs: Box<[u64]> = vec![0; 65536 / 64].into_boxed_slice();
        for n in &kept {
            let bytes = n.as_bytes();
            by_first[usize::from(bytes[0])].push(bytes.into());
            let seconds = match bytes.get(1) {
                Some(&second) => second..=second,
                None => 0..=u8::MAX,
            };
            for second in seconds {
                let (word, bit) = pair_bit(bytes[0], second);
                pairs[word] |= bit;
            }
        }
        Policy {
            by_first,
            pairs,
            min_needle: kept.iter().map(String::len).min().unwrap_or(usize::MAX),
            max_detail_bytes,
        }
    }

    /// Redacts `detail` in place. `passthrough` is `Some(keys)` for PII codes.
    pub(crate) fn apply(
        &self,
        detail: &mut Map<String, Value>,
        passthrough: Option<&[String]>,
    ) -> Redacted {
        let mut out = Redacted::default();
        // Our own summary must come back unchanged, or redaction would not
        // be idempotent: a second pass would drop its key for a PII code or
        // summarise the summary under a tiny cap.
        if is_summary(detail, passthrough) {
            rescan_summary(detail, &mut out);
            return out;
        }
        if let Some(keep) = passthrough {
            // Dropping before walking is equivalent to walking first and
            // saves scanning values that are about to go.
            let before = detail.len();
            detail.retain(|k, _| keep.iter().any(|p| p == k));
            out.dropped = u32::try_from(before - detail.len()).unwrap_or(u32::MAX);
        }
        let bound = self.visit_map(detail, &mut out);
        // The bound is cheap and almost always far under the cap; only a
        // detail that might be too large pays for measuring exactly.
        if bound > self.max_detail_bytes {
            let bytes = serialised_len(detail);
            if bytes > self.max_detail_bytes {
                summarise(detail, bytes, self.max_detail_bytes, &mut out);
                out.truncated = true;
            }
        }
        out
    }

    /// Steps 1 and 2 on an object. Returns an upper bound of its compact
    /// JSON length after redaction.
    fn visit_map(&self, map: &mut Map<String, Value>, out: &mut Redacted) -> usize {
        // A secret used as a key (`{"eyJ…": true}`) is renamed; keys are
        // rarely long enough to scan, so this is one length check a key.
        if map
            .keys()
            .any(|k| k.len() >= MIN_SECRET_BYTES && scan(k).is_some())
        {
            let old = std::mem::take(map);
            for (n, (key, value)) in old.into_iter().enumerate() {
                let key = match scan(&key) {
                    Some(kind) => {
                        out.values = out.values.saturating_add(1);
                        format!("{}#{n}", kind.marker())
                    }
                    None => key,
                };
                map.insert(key, value);
            }
        }
        let mut size: usize = 2;
        for (key, value) in map.iter_mut() {
            // Key, colon and a comma that the last entry does not need.
            size = size.saturating_add(str_bound(key)).saturating_add(2);
            let count = value.is_u64() && TOKEN_COUNT_KEYS.contains(&key.as_str());
            let value_size = if !count && self.key_matches(key) {
                if !matches!(value, Value::String(s) if s == MARKER) {
                    *value = Value::String(MARKER.to_owned());
                    out.keys = out.keys.saturating_add(1);
                }
                str_bound(MARKER)
            } else {
                self.visit_value(value, out)
            };
            size = size.saturating_add(value_size);
        }
        size
    }

    /// Step 2 on a value whose key did not match (or an array element).
    /// Returns an upper bound of its compact JSON length after redaction.
    fn visit_value(&self, value: &mut Value, out: &mut Redacted) -> usize {
        match value {
            Value::Null => 4,
            Value::Bool(_) => 5,
            Value::Number(n) => {
                // A card number sent as a JSON number is still one.
                if let Some(digits) = n.as_u64().map(|u| u.to_string())
                    && (13..=19).contains(&digits.len())
                    && card_from(digits.as_bytes(), false)
                {
                    *value = Value::String(Kind::CardNumber.marker().to_owned());
                    out.values = out.values.saturating_add(1);
                }
                NUMBER_BOUND
            }
            Value::String(s) => {
                if let Some(kind) = scan(s) {
                    // Reuses the string's buffer, which is usually big enough.
                    s.clear();
                    s.push_str(kind.marker());
                    out.values = out.values.saturating_add(1);
                }
                str_bound(s)
            }
            Value::Array(items) => items.iter_mut().fold(2, |size: usize, item| {
                size.saturating_add(self.visit_value(item, out))
                    .saturating_add(1)
            }),
            Value::Object(map) => self.visit_map(map, out),
        }
    }

    /// Whether `key` names a secret: its normalised form contains a needle,
    /// or one of its words is a [`BUILTIN_WORDS`] entry.
    fn key_matches(&self, key: &str) -> bool {
        self.key_contains_needle(key) || has_secret_word(key)
    }

    fn key_contains_needle(&self, key: &str) -> bool {
        let mut buf = [0u8; KEY_BUF_BYTES];
        let mut len = 0;
        for &c in key.as_bytes() {
            if is_separator(c) {
                continue;
            }
            if !c.is_ascii() || len == KEY_BUF_BYTES {
                return self.contains_needle(normalise(key).as_bytes());
            }
            buf[len] = c.to_ascii_lowercase();
            len += 1;
        }
        self.contains_needle(&buf[..len])
    }

    /// Whether the normalised `key` contains one of the needles.
    fn contains_needle(&self, key: &[u8]) -> bool {
        let Some(last) = key.len().checked_sub(self.min_needle) else {
            return false;
        };
        key[..=last].iter().enumerate().any(|(i, &c)| {
            // Past the end counts as byte 0, which only a one-byte needle's
            // row has set (a false hit is settled by the comparison).
            let (word, bit) = pair_bit(c, key.get(i + 1).copied().unwrap_or(0));
            if self.pairs[word] & bit == 0 {
                return false;
            }
            // A byte loop rather than `starts_with`: keys and needles are a
            // few bytes long, and most candidates fail on their second byte,
            // which a `memcmp` call would spend longer getting to.
            self.by_first[usize::from(c)].iter().any(|n| {
                key.len() - i >= n.len() && key[i..].iter().zip(n.iter()).all(|(a, b)| a == b)
            })
        })
    }
}

/// The form keys and needles are compared in: lowercase, without `_`, `-`,
/// `.`, `:`, `/` and spaces (`api:key` too), so `X-Api-Key`, `api_key` and `apiKey` are all `apikey`.
/// Full Unicode lowercasing, because a few non-ASCII letters lowercase to
/// ASCII ones (KELVIN SIGN to `k`).
fn normalise(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' ' | ':' | '/'))
        .collect()
}

/// Whether a word of `key` (split at separators and lower-to-upper case
/// changes: `user_pin`, `otpCode`, `X-Auth`) is one of [`BUILTIN_WORDS`].
fn has_secret_word(key: &str) -> bool {
    let b = key.as_bytes();
    let mut start = 0;
    for i in 0..=b.len() {
        let boundary = i == b.len()
            || is_separator(b[i])
            || (i > start && b[i].is_ascii_uppercase() && b[i - 1].is_ascii_lowercase());
        if boundary {
            let word = &b[start..i];
            if BUILTIN_WORDS
                .iter()
                .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
            {
                return true;
            }
            start = if i < b.len() && is_separator(b[i]) {
                i + 1
            } else {
                i
            };
        }
    }
    false
}

/// Where the bit for the byte pair `a`, `b` is in [`Policy::pairs`].
fn pair_bit(a: u8, b: u8) -> (usize, u64) {
    let index = usize::from(a) << 8 | usize::from(b);
    (index / 64, 1 << (index % 64))
}

/// The bytes [`normalise`] drops, for keys normalised on the fly.
fn is_separator(c: u8) -> bool {
    matches!(c, b'_' | b'-' | b'.' | b' ' | b':' | b'/')
}

/// Upper bound of a string's compact JSON length: quotes, and every byte
/// escaped as `\u00XX` at worst.
fn str_bound(s: &str) -> usize {
    s.len().saturating_mul(6).saturating_add(2)
}

/// An `io::Write` that only counts, so measuring a detail allocates nothing.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The exact length of `detail` as compact JSON.
fn serialised_len(detail: &Map<String, Value>) -> usize {
    let mut counter = ByteCounter(0);
    // Serialising a `Value` into a writer that never fails cannot fail; if
    // it somehow did, treating the detail as too large is the safe side.
    match serde_json::to_writer(&mut counter, detail) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// Replaces `detail` with `{"_fasten_truncated": {"bytes", "limit", "keys"}}`.
fn summarise(detail: &mut Map<String, Value>, bytes: usize, limit: usize, out: &mut Redacted) {
    let mut names: Vec<&String> = detail.keys().collect();
    // The map is sorted already unless some crate in the build turns on
    // serde_json's `preserve_order`; sort anyway, and only what is kept.
    if names.len() > SUMMARY_MAX_KEYS {
        names.select_nth_unstable(SUMMARY_MAX_KEYS - 1);
        names.truncate(SUMMARY_MAX_KEYS);
    }
    names.sort_unstable();
    let keys = names
        .into_iter()
        .map(|name| {
            let (listed, redacted) = summary_name(name);
            if redacted {
                out.values = out.values.saturating_add(1);
            }
            Value::String(listed)
        })
        .collect();
    let mut summary = Map::new();
    summary.insert("bytes".to_owned(), Value::from(bytes));
    summary.insert("limit".to_owned(), Value::from(limit));
    summary.insert("keys".to_owned(), Value::Array(keys));
    detail.clear();
    detail.insert(TRUNCATED_KEY.to_owned(), Value::Object(summary));
}

/// How a key name is listed in a summary: there it is a string value, so
/// it is scanned like one, and it is cut to [`SUMMARY_MAX_NAME_BYTES`].
/// Applying it to its own output changes nothing. The flag says whether
/// the name was redacted (cutting alone is not a redaction).
fn summary_name(name: &str) -> (String, bool) {
    if let Some(kind) = scan(name) {
        return (kind.marker().to_owned(), true);
    }
    if name.len() <= SUMMARY_MAX_NAME_BYTES {
        return (name.to_owned(), false);
    }
    let mut end = SUMMARY_MAX_NAME_BYTES - ELLIPSIS.len();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = format!("{}{ELLIPSIS}", &name[..end]);
    // Cutting can expose a shape the whole name did not have (digits that
    // were glued to a letter now end at the ellipsis).
    match scan(&cut) {
        Some(kind) => (kind.marker().to_owned(), true),
        None => (cut, false),
    }
}

/// Whether `detail` is a summary as [`summarise`] makes them. The check is
/// strict so that a caller cannot smuggle data past the cap or past a PII
/// code's passthrough list by imitating one: the shape bounds its size, and
/// for a PII code every listed name must be one of the passthrough keys.
fn is_summary(detail: &Map<String, Value>, passthrough: Option<&[String]>) -> bool {
    if detail.len() != 1 {
        return false;
    }
    let Some(Value::Object(summary)) = detail.get(TRUNCATED_KEY) else {
        return false;
    };
    let Some(Value::Array(names)) = summary.get("keys") else {
        return false;
    };
    summary.len() == 3
        && summary.get("bytes").is_some_and(Value::is_u64)
        && summary.get("limit").is_some_and(Value::is_u64)
        && names.len() <= SUMMARY_MAX_KEYS
        && names.iter().all(|name| match name {
            Value::String(name) => {
                name.len() <= SUMMARY_MAX_NAME_BYTES
                    && passthrough
                        .is_none_or(|keep| keep.iter().any(|k| summary_name(k).0 == *name))
            }
            _ => false,
        })
}

/// Step 2 on the names of a summary that came in as one, since a caller
/// could have built it.
fn rescan_summary(detail: &mut Map<String, Value>, out: &mut Redacted) {
    let Some(Value::Object(summary)) = detail.get_mut(TRUNCATED_KEY) else {
        return;
    };
    let Some(Value::Array(names)) = summary.get_mut("keys") else {
        return;
    };
    for name in names {
        if let Value::String(name) = name {
            let (listed, redacted) = summary_name(name);
            if redacted {
                *name = listed;
                out.values = out.values.saturating_add(1);
            }
        }
    }
}

/// The shapes of secret that a string value is scanned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jwt,
    PrivateKey,
    AwsKey,
    GithubToken,
    StripeKey,
    OpenaiKey,
    CardNumber,
    UrlCredentials,
}

impl Kind {
    /// What replaces a string holding a secret of this kind.
    fn marker(self) -> &'static str {
        match self {
            Kind::Jwt => "[REDACTED:jwt]",
            Kind::PrivateKey => "[REDACTED:private_key]",
            Kind::AwsKey => "[REDACTED:aws_key]",
            Kind::GithubToken => "[REDACTED:github_token]",
            Kind::StripeKey => "[REDACTED:stripe_key]",
            Kind::OpenaiKey => "[REDACTED:openai_key]",
            Kind::CardNumber => "[REDACTED:card_number]",
            Kind::UrlCredentials => "[REDACTED:url_credentials]",
        }
    }
}

/// The first secret that `s` is or contains, if any.
///
/// One pass over the bytes. Apart from PEM headers, every shape must start
/// a token (at the start or after a byte that is not ASCII alphanumeric), so
/// prefixes inside words (`task-…`, `risk-…`) are never candidates, and the
/// scan jumps over the rest of each word: ordinary text costs about a
/// comparison per byte.
fn scan(s: &str) -> Option<Kind> {
    let b = s.as_bytes();
    if b.len() < MIN_SECRET_BYTES {
        return None;
    }
    // Shapes that may sit glued inside a word or behind an escape
    // (`token=eyJ…`, `Bearer%20eyJ…`, `%2E` for the dots): found anywhere.
    if let Some(kind) = jwt_anywhere(b).or_else(|| url_credentials(b)) {
        return Some(kind);
    }
    let mut memo = Memo::default();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !c.is_ascii_alphanumeric() {
            if c == b'-'
                && let Some(kind) = private_key_at(b, i)
            {
                return Some(kind);
            }
            i += 1;
            continue;
        }
        let mut word_from = i + 1;
        let found = match c {
            b'0'..=b'9' => match card_at(b, i) {
                ControlFlow::Break(kind) => Some(kind),
                ControlFlow::Continue(end) => {
                    // Nothing else can start inside a run of digit groups,
                    // nor in letters glued to its end.
                    word_from = end;
                    None
                }
            },
            b'A' => aws_key_at(b, i),
            b'g' => github_token_at(b, i, &mut memo.github_pat),
            b's' | b'r' => sk_key_at(b, i, &mut memo.openai),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
        i = word_from + run(&b[word_from..], |c| c.is_ascii_alphanumeric());
    }
    None
}

/// For the shapes whose body may contain their own prefix, the end of the
/// last body that failed: a match starting inside it would have the same
/// end, a shorter body and so fail too. Skipping those keeps adversarial
/// strings such as `eyJ-eyJ-eyJ-…` linear; other shapes inside the body are
/// still looked for.
#[derive(Default)]
struct Memo {
    /// For `sk-…` bodies.
    openai: usize,
    /// For `github_pat_…` bodies.
    github_pat: usize,
}

/// Length of the leading run of bytes in `b` that satisfy `pred`.
fn run(b: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    b.iter().take_while(|&&c| pred(c)).count()
}

/// The alphabet of JWT segments (and, by chance, of OpenAI key bodies).
fn is_base64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// `eyJ…` `.` payload `.` signature, anywhere in `b` (also glued to a
/// prefix), with each dot written as `.` or URL-encoded `%2E`. The
/// signature may be empty (an unsigned token still carries its claims).
/// Linear: a failed header is never looked at again from inside.
fn jwt_anywhere(b: &[u8]) -> Option<Kind> {
    let dot = |rest: &[u8]| -> Option<usize> {
        match rest {
            [b'.', ..] => Some(1),
            [b'%', b'2', b'e' | b'E', ..] => Some(3),
            _ => None,
        }
    };
    let mut i = 0;
    while let Some(at) = b[i..].windows(3).position(|w| w == b"eyJ") {
        let start = i + at;
        let rest = &b[start..];
        let header = run(rest, is_base64url);
        // The shortest real header, `{"alg":"none"}`, is 19 characters.
        if header >= 10
            && let Some(d) = dot(&rest[header..])
        {
            let payload = &rest[header + d..];
            let len = run(payload, is_base64url);
            if len >= 2 && dot(&payload[len..]).is_some() {
                return Some(Kind::Jwt);
            }
        }
        i = start + header.max(3);
    }
    None
}

/// `scheme://user:password@host`: credentials inside a URL. The userinfo
/// runs from `://` to an `@` with no `/`, space or quote before it, and
/// holds a `:` with something after it.
fn url_credentials(b: &[u8]) -> Option<Kind> {
    let mut i = 0;
    while let Some(at) = b[i..].windows(3).position(|w| w == b"://") {
        let from = i + at + 3;
        let userinfo_len = run(&b[from..], |c| {
            !matches!(c, b'/' | b'@' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>')
                && !c.is_ascii_whitespace()
        });
        let userinfo = &b[from..from + userinfo_len];
        if b.get(from + userinfo_len) == Some(&b'@')
            && let Some(colon) = userinfo.iter().position(|&c| c == b':')
            && colon + 1 < userinfo.len()
        {
            return Some(Kind::UrlCredentials);
        }
        i = from;
    }
    None
}

/// The marker for a text that is or holds a secret of a known shape, for
/// single text fields (a log message, a request path, an actor): `None`
/// when it holds none.
pub(crate) fn secret_in(text: &str) -> Option<&'static str> {
    scan(text).map(Kind::marker)
}

/// `-----BEGIN <LABEL>PRIVATE KEY-----`, including `RSA`, `EC`, `OPENSSH`,
/// `ENCRYPTED` and PGP's `PRIVATE KEY BLOCK`; the header alone is enough,
/// since a key cut anywhere after it is still key material.
fn private_key_at(b: &[u8], i: usize) -> Option<Kind> {
    let rest = b[i..].strip_prefix(b"-----BEGIN ")?;
    let label_len = rest
        .iter()
        .take(64)
        .take_while(|&&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ')
        .count();
    let label = &rest[..label_len];
    let label = label.strip_suffix(b" BLOCK").unwrap_or(label);
    (label.ends_with(b"PRIVATE KEY") && rest[label_len..].starts_with(b"-----"))
        .then_some(Kind::PrivateKey)
}

/// `AKIA`/`ASIA` and exactly 16 upper-case letters or digits, not glued to
/// more alphanumerics (a longer upper-case run is not cut into a key).
fn aws_key_at(b: &[u8], i: usize) -> Option<Kind> {
    let rest = &b[i..];
    let body = rest
        .strip_prefix(b"AKIA")
        .or_else(|| rest.strip_prefix(b"ASIA"))?;
    let len = run(body, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
    (len == 16 && !body.get(16).is_some_and(u8::is_ascii_alphanumeric)).then_some(Kind::AwsKey)
}

/// `gh[pousr]_` and 30+ alphanumerics, or `github_pat_` and 22+ of
/// `[A-Za-z0-9_]`.
fn github_token_at(b: &[u8], i: usize, pat_failed_until: &mut usize) -> Option<Kind> {
    let rest = &b[i..];
    if let Some(body) = rest.strip_prefix(b"github_pat_") {
        if i < *pat_failed_until {
            return None;
        }
        let len = run(body, |c| c.is_ascii_alphanumeric() || c == b'_');
        if len >= 22 {
            return Some(Kind::GithubToken);
        }
        *pat_failed_until = i + 11 + len;
        return None;
    }
    match rest {
        [
            b'g',
            b'h',
            b'p' | b'o' | b'u' | b's' | b'r',
            b'_',
            body @ ..,
        ] if run(body, |c| c.is_ascii_alphanumeric()) >= 30 => Some(Kind::GithubToken),
        _ => None,
    }
}

/// Stripe secret and restricted keys (`sk_live_`, `sk_test_`, `rk_live_`,
/// `rk_test_` and 16+ alphanumerics; publishable `pk_` keys are meant to be
/// public) and OpenAI-style keys (`sk-`, `sk-proj-` and 20+ of
/// `[A-Za-z0-9_-]`).
fn sk_key_at(b: &[u8], i: usize, openai_failed_until: &mut usize) -> Option<Kind> {
    match &b[i..] {
        [b's' | b'r', b'k', b'_', tail @ ..] => {
            let body = tail
                .strip_prefix(b"live_")
                .or_else(|| tail.strip_prefix(b"test_"))?;
            (run(body, |c| c.is_ascii_alphanumeric()) >= 16).then_some(Kind::StripeKey)
        }
        [b's', b'k', b'-', tail @ ..] if i >= *openai_failed_until => {
            let body = &tail[..run(tail, is_base64url)];
            // Real keys are long random strings, which all but never lack a
            // digit; kebab-case words after `sk-` ("sk-learn-…") do.
            if body.len() >= 20 && body.iter().any(u8::is_ascii_digit) {
                return Some(Kind::OpenaiKey);
            }
            *openai_failed_until = i + 3 + body.len();
            None
        }
        _ => None,
    }
}

/// A card number in the run of digit groups (joined by single spaces or
/// dashes) that starts at `start`. Any span of whole groups with 13 to 19
/// digits is a candidate, so a card number followed by another number
/// (`4111 1111 1111 1111 2 items`) is still found; spans that include a group
/// glued to a letter or to a decimal point (at either end of the run) are not
/// delimited and are skipped.
/// To keep phone-number lists, version strings and epoch milliseconds from
/// tripping the 1-in-10 Luhn odds, a candidate must also start with 2–6 (the
/// payment networks' ranges) and have groups of 4+ digits but the last (3+).
fn card_at(b: &[u8], start: usize) -> ControlFlow<Kind, usize> {
    // A fractional part (`3.14159…`, `1,234…`) is not a number of its own.
    let glued_before =
        start >= 2 && matches!(b[start - 1], b'.' | b',') && b[start - 2].is_ascii_digit();
    let mut end = start;
    loop {
        end += run(&b[end..], |c| c.is_ascii_digit());
        match b.get(end..end + 2) {
            Some([b' ' | b'-', d]) if d.is_ascii_digit() => end += 1,
            _ => break,
        }
    }
    let glued_after = match b.get(end..) {
        Some([c, ..]) if c.is_ascii_alphanumeric() => true,
        Some([b'.' | b',', d, ..]) => d.is_ascii_digit(),
        _ => false,
    };
    let run_bytes = &b[start..end];
    let found = run_bytes
        .split(|&c| c == b' ' || c == b'-')
        .scan(0, |offset, group| {
            let at = *offset;
            *offset += group.len() + 1;
            Some(at)
        })
        .skip(usize::from(glued_before))
        .any(|at| card_from(&run_bytes[at..], glued_after));
    if found {
        ControlFlow::Break(Kind::CardNumber)
    } else {
        ControlFlow::Continue(end)
    }
}

/// Whether some prefix of whole groups of `groups` (a digit-group run that
/// starts at a group) is a card number. `last_glued` says the run's last
/// group touches a letter or decimal point.
fn card_from(groups: &[u8], last_glued: bool) -> bool {
    if !matches!(groups.first(), Some(b'2'..=b'6')) {
        return false;
    }
    let mut digits = [0u8; 19];
    let mut count = 0;
    let mut parts = groups.split(|&c| c == b' ' || c == b'-').peekable();
    while let Some(group) = parts.next() {
        let is_last = parts.peek().is_none();
        if count + group.len() > digits.len() || (is_last && last_glued) {
            return false;
        }
        for &d in group {
            digits[count] = d - b'0';
            count += 1;
        }
        if count >= 13 && group.len() >= 3 && luhn(&digits[..count]) {
            return true;
        }
        if group.len() < 4 {
            // Only a final group may be this short.
            return false;
        }
    }
    false
}

/// The Luhn checksum that every payment card number satisfies.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn policy() -> Policy {
        Policy::new(&[], crate::env::FASTEN_MAX_DETAIL_BYTES_DEFAULT)
    }

    /// Redacts `v` with the default policy.
    fn redact(v: Value) -> (Value, Redacted) {
        let mut m = object(v);
        let r = policy().apply(&mut m, None);
        (Value::Object(m), r)
    }

    // Samples are assembled at run time so that secret scanners pointed at
    // this repository do not flag the source. All are fake or published
    // documentation examples.
    fn jwt() -> String {
        [
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ]
        .join(".")
    }

    fn samples() -> Vec<(&'static str, String)> {
        vec![
            ("jwt", jwt()),
            (
                "jwt",
                format!("Authorization header was Bearer {}; rejected", jwt()),
            ),
            (
                "jwt",
                format!("{}.", jwt().rsplit_once('.').map_or("", |(h, _)| h)),
            ),
            (
                "private_key",
                format!(
                    "-----BEGIN RSA {}-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
                    "PRIVATE KEY"
                ),
            ),
            (
                "private_key",
                format!("-----BEGIN {}-----\nMIIEvQIBADANBg", "PRIVATE KEY"),
            ),
            (
                "private_key",
                format!("loaded: -----BEGIN OPENSSH {}-----", "PRIVATE KEY"),
            ),
            (
                "private_key",
                format!("x-----BEGIN EC {}-----", "PRIVATE KEY"),
            ),
            (
                "private_key",
                format!("-----BEGIN ENCRYPTED {}-----", "PRIVATE KEY"),
            ),
            (
                "private_key",
                format!("-----BEGIN PGP {} BLOCK-----", "PRIVATE KEY"),
            ),
            ("aws_key", format!("AKIA{}", "IOSFODNN7EXAMPLE")),
            (
                "aws_key",
                format!(
                    "AWS_ACCESS_KEY_ID=ASIA{}, region=eu-west-1",
                    "Y34FZKBOKMUTVV7A"
                ),
            ),
            ("github_token", format!("ghp_{}", "a1B2".repeat(9))),
            (
                "github_token",
                format!("pushed with gho_{} ok", "Zz09".repeat(8)),
            ),
            ("github_token", format!("ghs_{}", "x".repeat(30))),
            (
                "github_token",
                format!("github_pat_11ABCDEFG0_{}", "aZ9_".repeat(14)),
            ),
            (
                "stripe_key",
                format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc"),
            ),
            ("stripe_key", format!("key: sk_test_{}", "4eC39HqLyjWDarjt")),
            ("stripe_key", format!("rk_live_{}", "51Hx9aBcDeFgHiJkLmN")),
            ("stripe_key", format!("rk_test_{}", "0123456789abcdef")),
            ("openai_key", format!("sk-{}", "T3BlbkFJ".repeat(6))),
            (
                "openai_key",
                format!("OPENAI_API_KEY=sk-proj-{}", "Ab3_-x".repeat(10)),
            ),
            ("card_number", "4111 1111 1111 1111".to_owned()),
            ("card_number", "5555-5555-5555-4444".to_owned()),
            ("card_number", "4111111111111111".to_owned()),
            ("card_number", "378282246310005".to_owned()),
            ("card_number", "3782 822463 10005".to_owned()),
            ("card_number", "6011111111111117".to_owned()),
            ("card_number", "4222222222222".to_owned()),
            (
                "card_number",
                "paid with 4111-1111-1111-1111, thanks".to_owned(),
            ),
            ("card_number", "card 4111 1111 1111 1111 2 items".to_owned()),
            ("card_number", "ref 12 5555 5555 5555 4444".to_owned()),
            ("card_number", "(4111111111111111)".to_owned()),
            ("card_number", "pi is 3.14 4111 1111 1111 1111".to_owned()),
            // Issue 13: JWTs glued to a prefix or URL-encoded.
            ("jwt", format!("Bearer%20{}", jwt())),
            ("jwt", format!("access_token{}", jwt())),
            ("jwt", jwt().replace('.', "%2E")),
            (
                "jwt",
                format!("/callback?id_token={}", jwt().replace('.', "%2e")),
            ),
            // Credentials inside URLs.
            (
                "url_credentials",
                format!("postgres://app:{}@db.internal/app", "hunter2"),
            ),
            (
                "url_credentials",
                format!("fetching https://deploy:{}@git.example/x.git", "p4ss"),
            ),
            (
                "url_credentials",
                format!("redis://:{}@cache:6379", "s3cr3t"),
            ),
        ]
    }

    #[test]
    fn every_value_kind_is_detected() {
        for (kind, sample) in samples() {
            let (out, r) = redact(json!({ "note": sample, "list": ["fine", sample] }));
            let marker = format!("[REDACTED:{kind}]");
            assert_eq!(out["note"], marker, "{sample:?}");
            assert_eq!(out["list"], json!(["fine", marker]), "{sample:?}");
            assert_eq!(
                r,
                Redacted {
                    values: 2,
                    ..Redacted::default()
                },
                "{sample:?}"
            );
        }
    }

    #[test]
    fn secrets_used_as_keys_are_renamed() {
        let (out, r) = redact(json!({ jwt(): true, "ok": { "4111 1111 1111 1111": 1 } }));
        let text = out.to_string();
        assert!(!text.contains("eyJ") && !text.contains("4111"), "{text}");
        assert!(out.get("[REDACTED:jwt]#0").is_some(), "{text}");
        assert_eq!(r.values, 2);
    }

    #[test]
    fn card_numbers_sent_as_json_numbers_are_redacted() {
        let (out, r) = redact(
            json!({ "n": 4_111_111_111_111_111_u64, "qty": 4_111_111_111_111_112_u64, "id": 1_700_000_000_007_u64 }),
        );
        assert_eq!(out["n"], "[REDACTED:card_number]");
        assert_eq!(out["qty"], 4_111_111_111_111_112_u64);
        assert_eq!(out["id"], 1_700_000_000_007_u64);
        assert_eq!(r.values, 1);
    }

    #[test]
    fn ordinary_strings_survive() {
        let keep = [
            "hello world",
            "The quick brown fox jumps over the lazy dog, twice.",
            "WIDGET-42",
            "550e8400-e29b-41d4-a716-446655440000",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "2024-01-15T10:30:00.123456789Z",
            "2024-01-15 10:30:00",
            "+1 (555) 123-4567",
            "+44 20 7946 0958",
            "555-123-4567 or 555 765 4321",
            // Order numbers and the like that fail Luhn.
            "4111111111111112",
            "order 5555-5555-5555-4445 shipped",
            "ORD-2024-0001234567891",
            // Luhn-valid, but not a payment network's range or not delimited.
            "1700000000007",
            "4111111111111111x",
            "x4111111111111111",
            "v4111 1111 1111 1111x",
            "3.4111111111111111",
            "3.4111 1111 1111 1111",
            "4111111111111111.25",
            "12345678901234567890123",
            "readings 42 17 88 93 61 27 55",
            "pk_live_51HdK9aBcDeFgHiJkLmNoPqRsTuV",
            "pk_test_TYooMQauvdEDq54NiTphI7jx",
            "sk_live_short",
            "sk-short",
            "sk-learn-classification-tutorial",
            "task-1234567890abcdefghijklmnop",
            "risk_live_0123456789abcdefgh",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq",
            "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE",
            "eyJhbGciOiJIUzI1NiJ9 alone",
            "AKIAIOSFODNN7EXAMPLEX",
            "TAKIAIOSFODNN7EXAMPLE",
            "ghp_tooShort123",
            "github_pat_short",
            "see https://example.com/docs/getting-started?lang=en",
            "naïve café déjà vu — ünïcödé",
            "[REDACTED:jwt]",
            "mailto:someone@example.com",
            "https://user@example.com/profile",
            "ssh://git@github.com:22/org/repo",
            "https://example.com:8443/a@b",
            "the eyJ prefix alone eyJhbGciOi",
        ];
        for s in keep {
            let (out, r) = redact(json!({ "note": s }));
            assert_eq!(out["note"], s);
            assert_eq!(r, Redacted::default(), "{s:?}");
        }
    }

    #[test]
    fn builtin_key_needles_match_any_casing_and_separator() {
        let secret_keys = [
            "api_key",
            "X-Api-Key",
            "APIKEY",
            "apiKey",
            "password",
            "userPassword",
            "DB_PASSWORD_HASH",
            "passwd",
            "Passwd-File",
            "token",
            "refresh.token",
            "AccessToken",
            "secret",
            "client_secret",
            "SECRET KEY",
            "AUTHORIZATION",
            "Proxy-Authorization",
            "bearer",
            "Bearer Value",
            "private_key",
            "privateKey",
            "ssh.private.key",
            "access_key",
            "AWS-Access-Key-Id",
            "session_id",
            "SessionID",
            "jsessionid",
            "cookie",
            "Set-Cookie",
            "credential",
            "Credentials",
            "google_application_credentials",
            // Full Unicode lowercasing: KELVIN SIGN is `k`.
            "to\u{212A}en",
            "пароль_token",
            // Longer than the stack buffer.
            &format!("{}_token", "x".repeat(80)),
            // Issue 13: the short names, as whole words of the key.
            "pwd",
            "pass",
            "Pass",
            "passphrase",
            "auth",
            "X-Auth",
            "auth_header",
            "pin",
            "user_pin",
            "cardPin",
            "otp",
            "otpCode",
            "signing_key",
            "signingKey",
            "database_url",
            "DATABASE_URL",
            "dsn",
            "audit-dsn",
            "connection_string",
            // Separators beyond `_-. `.
            "api:key",
            "api/key",
            "x:password",
        ];
        let plain_keys = [
            "user",
            "qty",
            "sku",
            "note",
            "api",
            "key",
            "session",
            "author",
            "authored_by",
            "cook",
            "tokn",
            "passport",
            "shipping",
            "spinner",
            "option",
            "hotpot",
            "url",
            "database",
        ];
        let mut detail = Map::new();
        for k in secret_keys.iter().chain(&plain_keys) {
            detail.insert((*k).to_owned(), json!("value"));
        }
        let r = policy().apply(&mut detail, None);
        for k in secret_keys {
            assert_eq!(detail[k], MARKER, "{k}");
        }
        for k in plain_keys {
            assert_eq!(detail[k], "value", "{k}");
        }
        assert_eq!(r.keys as usize, secret_keys.len());
    }

    #[test]
    fn matching_key_replaces_any_value_whole() {
        let (out, r) = redact(json!({
            "token": {"nested": {"deep": 1}},
            "password": [1, 2, 3],
            "secret": 42,
            "cookie": null,
            "bearer": true,
            "api_key": "[REDACTED]",
        }));
        for k in ["token", "password", "secret", "cookie", "bearer", "api_key"] {
            assert_eq!(out[k], MARKER);
        }
        // The one that already was the marker changed nothing.
        assert_eq!(
            r,
            Redacted {
                keys: 5,
                ..Redacted::default()
            }
        );
    }

    #[test]
    fn nested_objects_and_arrays_are_walked() {
        let (out, r) = redact(json!({
            "request": {
                "headers": [
                    {"name": "accept", "value": "json"},
                    {"Authorization": "Basic dXNlcjpwYXNz"},
                ],
                "body": {"user": {"login": "ann", "password": "hunter2"}},
            },
            "batches": [[{"client_secret": "s"}, jwt()], [1, 2]],
            "qty": 3,
        }));
        assert_eq!(
            out,
            json!({
                "request": {
                    "headers": [
                        {"name": "accept", "value": "json"},
                        {"Authorization": MARKER},
                    ],
                    "body": {"user": {"login": "ann", "password": MARKER}},
                },
                "batches": [[{"client_secret": MARKER}, "[REDACTED:jwt]"], [1, 2]],
                "qty": 3,
            })
        );
        assert_eq!(
            r,
            Redacted {
                keys: 3,
                values: 1,
                ..Redacted::default()
            }
        );
    }

    #[test]
    fn extra_keys_are_normalised_and_empty_ones_ignored() {
        let extra = [
            "SSN".to_owned(),
            " national-id ".to_owned(),
            String::new(),
            "  ".to_owned(),
            "Пароль".to_owned(),
        ];
        let p = Policy::new(&extra, crate::env::FASTEN_MAX_DETAIL_BYTES_DEFAULT);
        let mut detail = object(json!({
            "customer_ssn": "078-05-1120",
            "National_ID": "AB123456C",
            "items": [{"nationalId": 1}],
            "name": "Ann",
            "password": "x",
            "USER_ПАРОЛЬ": "x",
        }));
        let r = p.apply(&mut detail, None);
        assert_eq!(
            Value::Object(detail),
            json!({
                "customer_ssn": MARKER,
                "National_ID": MARKER,
                "items": [{"nationalId": MARKER}],
                "name": "Ann",
                "password": MARKER,
                "USER_ПАРОЛЬ": MARKER,
            })
        );
        assert_eq!(r.keys, 5);
    }

    #[test]
    fn pii_codes_keep_only_passthrough_keys_still_redacted() {
        let keep = [
            "order_id".to_owned(),
            "note".to_owned(),
            "password".to_owned(),
            "absent".to_owned(),
        ];
        let mut detail = object(json!({
            "order_id": 17,
            "note": format!("token {}", jwt()),
            "password": "hunter2",
            "email": "ann@example.com",
            "address": {"city": "Oslo"},
        }));
        let r = policy().apply(&mut detail, Some(&keep));
        assert_eq!(
            Value::Object(detail),
            json!({"order_id": 17, "note": "[REDACTED:jwt]", "password": MARKER})
        );
        assert_eq!(
            r,
            Redacted {
                keys: 1,
                values: 1,
                dropped: 2,
                truncated: false
            }
        );

        let mut detail = object(json!({"email": "ann@example.com"}));
        let r = policy().apply(&mut detail, Some(&[]));
        assert!(detail.is_empty());
        assert_eq!(r.dropped, 1);
    }

    #[test]
    fn oversized_detail_becomes_a_summary() {
        let mut detail = object(json!({
            "zeta": "z".repeat(100),
            "alpha": 1,
            "api_key": "k",
            "mid": {"deep": [1, 2, 3]},
        }));
        let p = Policy::new(&[], 64);
        let r = p.apply(&mut detail, None);
        assert_eq!(
            r,
            Redacted {
                keys: 1,
                values: 0,
                dropped: 0,
                truncated: true
            }
        );
        insta::assert_snapshot!(serde_json::to_string_pretty(&detail).unwrap(), @r#"
        {
          "_fasten_truncated": {
            "bytes": 167,
            "keys": [
              "alpha",
              "api_key",
              "mid",
              "zeta"
            ],
            "limit": 64
          }
        }
        "#);
    }

    #[test]
    fn exactly_at_the_limit_is_kept() {
        let original = object(json!({"note": "x".repeat(200), "n": [1, 2.5, null, true]}));
        let len = serde_json::to_string(&original).unwrap().len();
        assert_eq!(serialised_len(&original), len);

        let mut detail = original.clone();
        let r = Policy::new(&[], len).apply(&mut detail, None);
        assert_eq!(detail, original);
        assert!(!r.truncated);

        let mut detail = original.clone();
        let r = Policy::new(&[], len - 1).apply(&mut detail, None);
        assert!(r.truncated);
        assert_eq!(detail[TRUNCATED_KEY]["bytes"], len);
        assert_eq!(detail[TRUNCATED_KEY]["limit"], len - 1);
    }

    #[test]
    fn the_cap_measures_the_redacted_detail() {
        // 200 bytes of secret become a short marker, which fits.
        let mut detail = object(json!({"password": "p".repeat(200)}));
        let r = Policy::new(&[], 40).apply(&mut detail, None);
        assert_eq!(Value::Object(detail), json!({"password": MARKER}));
        assert!(!r.truncated);
    }

    #[test]
    fn summary_lists_32_sorted_names_cut_and_scanned() {
        let mut detail = Map::new();
        for i in (0..40).rev() {
            detail.insert(format!("k{i:02}"), json!(i));
        }
        Policy::new(&[], 10).apply(&mut detail, None);
        let names: Vec<String> = (0..32).map(|i| format!("k{i:02}")).collect();
        assert_eq!(detail[TRUNCATED_KEY]["keys"], json!(names));

        let long = format!("{}é{}", "a".repeat(124), "b".repeat(100));
        let aws = format!("AKIA{}", "IOSFODNN7EXAMPLE");
        let mut detail = object(json!({ long.clone(): 1, aws: 2 }));
        let r = Policy::new(&[], 10).apply(&mut detail, None);
        let listed = detail[TRUNCATED_KEY]["keys"].as_array().unwrap().clone();
        assert_eq!(listed[0], "[REDACTED:aws_key]#0");
        let cut = listed[1].as_str().unwrap();
        assert!(cut.len() <= SUMMARY_MAX_NAME_BYTES);
        // The cut falls inside `é` and moves back to a character boundary.
        assert_eq!(cut, format!("{}…", "a".repeat(124)));
        assert_eq!(
            r,
            Redacted {
                values: 1,
                truncated: true,
                ..Redacted::default()
            }
        );
    }

    #[test]
    fn a_summary_comes_back_unchanged_but_an_imitation_does_not() {
        let keep = ["note".to_owned()];
        let p = Policy::new(&[], 16);
        let mut detail = object(json!({"note": "n".repeat(100), "email": "ann@example.com"}));
        p.apply(&mut detail, Some(&keep));
        let once = detail.clone();
        assert_eq!(p.apply(&mut detail, Some(&keep)), Redacted::default());
        assert_eq!(detail, once);

        // Names a PII code does not pass through are not let in by imitation.
        let mut fake = object(
            json!({"_fasten_truncated": {"bytes": 1, "limit": 1, "keys": ["ann@example.com"]}}),
        );
        let r = p.apply(&mut fake, Some(&keep));
        assert!(fake.is_empty());
        assert_eq!(r.dropped, 1);

        // Secrets in a hand-made summary are still scanned.
        let aws = format!("AKIA{}", "IOSFODNN7EXAMPLE");
        let mut fake =
            object(json!({"_fasten_truncated": {"bytes": 1, "limit": 1, "keys": [aws]}}));
        let r = p.apply(&mut fake, None);
        assert_eq!(fake[TRUNCATED_KEY]["keys"], json!(["[REDACTED:aws_key]"]));
        assert_eq!(r.values, 1);

        // An imitation carrying a payload is capped like anything else.
        let mut fake = object(
            json!({"_fasten_truncated": {"bytes": 1, "limit": 1, "keys": ["k"], "x": "y".repeat(50)}}),
        );
        assert!(p.apply(&mut fake, None).truncated);
    }

    #[test]
    fn counts_add_up() {
        let p = Policy::new(&["pin".to_owned()], 4096);
        let keep: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut detail = object(json!({
            "a": {"token": 1, "Card-PIN": 1234, "memo": "5555-5555-5555-4444"},
            "b": ["4111111111111111", jwt(), "ok"],
            "c": {"secret": MARKER},
            "d": 1,
            "e": 2,
        }));
        let r = p.apply(&mut detail, Some(&keep));
        assert_eq!(
            r,
            Redacted {
                keys: 2,
                values: 3,
                dropped: 2,
                truncated: false
            }
        );
    }

    #[test]
    fn small_details_never_measure_exactly() {
        // The bound must be far under the default cap for typical details,
        // or every emit would pay for a full serialisation.
        let mut detail = object(json!({"qty": 3, "sku": "WIDGET", "note": "hello world"}));
        let bound = policy().visit_map(&mut detail, &mut Redacted::default());
        assert!(bound < 1000);
    }

    #[test]
    fn number_bound_holds_for_this_serde_json() {
        // Fails if serde_json's `arbitrary_precision` gets enabled somewhere
        // in the build: numbers would then be as long as their input.
        let big: Value = serde_json::from_str("123456789012345678901234567890123").unwrap();
        for n in [
            big,
            json!(u64::MAX),
            json!(i64::MIN),
            json!(-2.225_073_858_507_201_4e-308),
            json!(-1.797_693_134_862_315_7e308),
            json!(f64::MIN_POSITIVE),
            json!(-1.234_567_890_123_456_7e-5),
            json!(-1.234_567_890_123_456_7e20),
        ] {
            assert!(n.to_string().len() <= NUMBER_BOUND, "{n}");
        }
    }

    #[test]
    fn luhn_reference_values() {
        let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(&digits("79927398713")));
        assert!(!luhn(&digits("79927398710")));
        assert!(luhn(&digits("4111111111111111")));
        assert!(luhn(&digits("5555555555554444")));
        assert!(!luhn(&digits("4111111111111112")));
    }

    #[test]
    fn adversarial_strings_stay_linear() {
        // Linear: a fraction of a second even unoptimised. Quadratic: minutes.
        let inputs = [
            "eyJ-".repeat(50_000),
            "sk-".repeat(60_000),
            "github_pat_-".repeat(20_000),
            "4111 ".repeat(40_000),
            "-----BEGIN ".repeat(20_000),
            "AKIA".repeat(50_000),
        ];
        let start = std::time::Instant::now();
        for s in inputs {
            assert_eq!(scan(&s), None);
        }
        // A body that repeats its own prefix is still a long enough body.
        assert_eq!(scan(&"github_pat_".repeat(20_000)), Some(Kind::GithubToken));
        // A guard against a quadratic scan (minutes), generous for a loaded
        // machine; not a timing assertion (timings belong in benches).
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn shapes_inside_a_failed_body_are_still_found() {
        let aws = format!("AKIA{}", "IOSFODNN7EXAMPLE");
        assert_eq!(scan(&format!("eyJab-{aws}")), Some(Kind::AwsKey));
        assert_eq!(scan(&format!("github_pat__{aws}")), Some(Kind::AwsKey));
        assert_eq!(scan(&format!("eyJ-{}", jwt())), Some(Kind::Jwt));
    }

    // Property tests.

    const KEY_POOL: &[&str] = &[
        "password",
        "X-Api-Key",
        "userPassword",
        "refresh.token",
        "Set-Cookie",
        "client_secret",
        "qty",
        "note",
        "sku",
        "items",
        "user",
        "ssn",
        "customer_SSN",
        "_fasten_truncated",
        "bytes",
        "keys",
        "limit",
    ];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(KEY_POOL).prop_map(str::to_owned),
            "[a-zA-Z_. -]{0,12}",
            "\\PC{0,6}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        let pool: Vec<String> = samples()
            .into_iter()
            .map(|(_, s)| s)
            .chain(
                [
                    "hello world",
                    "4111111111111112",
                    "[REDACTED]",
                    "2024-01-15T10:30:00Z",
                ]
                .map(String::from),
            )
            .collect();
        let pick = prop::sample::select(pool);
        prop_oneof![
            pick.clone(),
            "\\PC{0,40}",
            "[0-9 .,-]{0,40}",
            "[a-zA-Z0-9_.-]{0,60}",
            (pick, "\\PC{0,3}", "[a-z0-9 _-]{0,40}")
                .prop_map(|(a, b, c)| format!("{c}{b}{a}{b}{c}")),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn detail() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map(key(), value(), 0..8).prop_map(|m| m.into_iter().collect())
    }

    fn any_policy() -> impl Strategy<Value = (Policy, Option<Vec<String>>)> {
        let extras =
            prop::sample::subsequence(vec!["ssn", "Iban", "", "national-id", " pin "], 0..=5);
        let cap = prop::sample::select(vec![
            0,
            16,
            64,
            256,
            1024,
            crate::env::FASTEN_MAX_DETAIL_BYTES_DEFAULT,
        ]);
        let passthrough = prop::option::of(prop::sample::subsequence(KEY_POOL.to_vec(), 0..=6));
        (extras, cap, passthrough).prop_map(|(extras, cap, passthrough)| {
            let extras: Vec<String> = extras.into_iter().map(String::from).collect();
            let passthrough = passthrough.map(|p| p.into_iter().map(String::from).collect());
            (Policy::new(&extras, cap), passthrough)
        })
    }

    /// Every object at any depth, with its key-value pairs.
    fn each_entry(v: &Value, f: &mut impl FnMut(&str, &Value)) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    f(k, v);
                    each_entry(v, f);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| each_entry(v, f)),
            _ => {}
        }
    }

    fn each_string(v: &Value, f: &mut impl FnMut(&str)) {
        match v {
            Value::String(s) => f(s),
            Value::Object(m) => m.values().for_each(|v| each_string(v, f)),
            Value::Array(items) => items.iter().for_each(|v| each_string(v, f)),
            _ => {}
        }
    }

    proptest! {
        #[test]
        fn redaction_is_idempotent((p, keep) in any_policy(), d in detail()) {
            let mut once = d;
            p.apply(&mut once, keep.as_deref());
            let mut twice = once.clone();
            let again = p.apply(&mut twice, keep.as_deref());
            prop_assert_eq!(&twice, &once);
            prop_assert_eq!(again, Redacted::default());
        }

        #[test]
        fn nothing_secret_is_left((p, keep) in any_policy(), d in detail()) {
            let mut out = d.clone();
            let r = p.apply(&mut out, keep.as_deref());
            let summary = is_summary(&out, keep.as_deref());
            let out = Value::Object(out);
            if !summary {
                let mut bad = Vec::new();
                each_entry(&out, &mut |k, v| {
                    if p.key_matches(k) && v != MARKER {
                        bad.push(k.to_owned());
                    }
                });
                prop_assert!(bad.is_empty(), "unredacted keys {:?}", bad);
                let mut secret_keys = Vec::new();
                each_entry(&out, &mut |k, _| {
                    if scan(k).is_some() {
                        secret_keys.push(k.to_owned());
                    }
                });
                prop_assert!(secret_keys.is_empty(), "secrets as keys {:?}", secret_keys);
            }
            let mut leaked = Vec::new();
            each_string(&out, &mut |s| {
                if let Some(kind) = scan(s) {
                    leaked.push((kind, s.to_owned()));
                }
            });
            prop_assert!(leaked.is_empty(), "leaked {:?}", leaked);
            if !r.truncated && !is_summary(&d, keep.as_deref()) {
                prop_assert!(serialised_len(out.as_object().unwrap()) <= p.max_detail_bytes);
            }
        }

        #[test]
        fn size_bound_is_an_upper_bound(d in detail(), f in any::<f64>()) {
            let mut d = d;
            d.insert("f".to_owned(), Value::from(f));
            let bound = policy().visit_map(&mut d, &mut Redacted::default());
            prop_assert!(bound >= serialised_len(&d), "bound {} < {}", bound, serialised_len(&d));
        }
    }

    #[test]
    fn token_counts_are_kept_and_token_values_are_not() {
        let policy = Policy::new(&[], 1 << 20);
        let mut d = serde_json::json!({
            "input_tokens": 120, "output_tokens": 0, "total_tokens": "sk-1",
            "prompt_tokens": -1, "my_tokens": 5, "token": 7
        });
        let Value::Object(map) = &mut d else {
            unreachable!()
        };
        policy.apply(map, None);
        assert_eq!(
            d,
            serde_json::json!({
                "input_tokens": 120, "output_tokens": 0, "total_tokens": MARKER,
                "prompt_tokens": MARKER, "my_tokens": MARKER, "token": MARKER
            })
        );
    }
}
