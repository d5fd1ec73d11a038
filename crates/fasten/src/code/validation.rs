//! The rules on codes, domains and metadata, and the suggestions errors offer.

use super::*;

// === validation ===

/// `^[A-Z][A-Z0-9_]*$`, by hand.
pub(crate) fn is_code(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `^[a-z][a-z0-9_]*$`, by hand.
pub(super) fn is_domain(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

pub(super) fn check_code(code: &str) -> Result<(), String> {
    if is_code(code) {
        return Ok(());
    }
    Err(with_example(
        format!("code {code:?} must match {CODE_PATTERN}"),
        suggest(code, true),
    ))
}

pub(super) fn check_domain(domain: &str) -> Result<(), String> {
    if is_domain(domain) {
        return Ok(());
    }
    Err(with_example(
        format!("domain {domain:?} must match {DOMAIN_PATTERN}"),
        suggest(domain, false),
    ))
}

pub(super) fn with_example(message: String, example: Option<String>) -> String {
    match example {
        Some(example) => format!("{message} (e.g. {example})"),
        None => message,
    }
}

/// A valid spelling of a malformed code (`upper`) or domain: `order-placed`
/// and `orderPlaced` become `ORDER_PLACED`. `None` when no obvious one exists.
pub(super) fn suggest(s: &str, upper: bool) -> Option<String> {
    let mut out = String::with_capacity(s.len() + 4);
    let mut after_lower = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && after_lower {
                out.push('_');
            }
            after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            after_lower = false;
        }
    }
    let out = out.trim_end_matches('_');
    let valid = if upper { is_code(out) } else { is_domain(out) };
    (valid && out != s).then(|| out.to_owned())
}

/// The rules on a code's metadata shared by YAML and Rust declarations.
/// On failure returns the YAML field to point at and the message.
pub(super) fn check_meta(code: &str, meta: &Meta) -> Result<(), (&'static str, String)> {
    if meta.category.trim().is_empty() {
        return Err((
            "category",
            format!("code {code}: category must not be empty"),
        ));
    }
    if meta.action.trim().is_empty() {
        return Err(("action", format!("code {code}: action must not be empty")));
    }
    if meta
        .detail_passthrough_keys
        .iter()
        .any(|k| k.trim().is_empty())
    {
        return Err((
            "detail_passthrough_keys",
            format!("code {code}: detail_passthrough_keys must not hold an empty key"),
        ));
    }
    Ok(())
}

/// `<name>` of a file named `<name>.codes.yaml`.
pub(super) fn domain_from_file_name(path: &Path) -> Option<&str> {
    let stem = path.file_name()?.to_str()?.strip_suffix(FILE_SUFFIX)?;
    (!stem.is_empty()).then_some(stem)
}
