//! The query parameters every page takes (the audit query's and the
//! streams'), and the time forms they accept.

use crate::error::{Error, Result};

/// The most rows one page holds.
pub const MAX_LIMIT: usize = 1000;

fn bad(field: &'static str, message: String) -> Error {
    Error::invalid(field, message)
}

/// Parameters every page takes.
const PAGE_PARAMS: [&str; 4] = ["since", "until", "limit", "cursor"];

/// Refuses a parameter outside `filters`, `extra` and [`PAGE_PARAMS`], and
/// one given twice: nothing a caller sends is silently ignored.
pub(crate) fn check_params(
    params: &[(&str, &str)],
    filters: &[&'static str],
    extra: &[&'static str],
) -> Result<()> {
    let known = || filters.iter().chain(extra).chain(&PAGE_PARAMS);
    for (i, (name, _)) in params.iter().enumerate() {
        if !known().any(|k| k == name) {
            let expected: Vec<&str> = known().copied().collect();
            return Err(bad(
                "query",
                format!(
                    "unknown parameter {name:?}: expected one of {}",
                    expected.join(", ")
                ),
            ));
        }
        if params[..i].iter().any(|(n, _)| n == name) {
            let field = known().find(|k| *k == name).copied().unwrap_or("query");
            return Err(bad(field, format!("parameter {name} is given twice")));
        }
    }
    Ok(())
}

/// Parses a time parameter (`since`, `until`), naming it in the error. It
/// accepts an RFC 3339 time (`2026-04-22T12:34:56Z`), a date (`2026-04-20`:
/// that day's start, UTC), or an age back from now: a whole number and a
/// unit `s`, `m`, `h`, `d` or `w` (`15m`, `24h`, `7d`).
///
/// # Errors
///
/// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming the
/// field and the accepted forms.
///
/// # Examples
///
/// ```
/// use fasten::query::parse_time;
/// assert_eq!(parse_time("since", "2026-04-20")?.to_string(), "2026-04-20T00:00:00Z");
/// let day_ago = parse_time("since", "24h")?;
/// assert!(jiff::Timestamp::now().duration_since(day_ago).as_secs() >= 86_400);
/// assert!(parse_time("since", "yesterday").is_err());
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn parse_time(field: &'static str, text: &str) -> Result<jiff::Timestamp> {
    parse_time_at(field, text, jiff::Timestamp::now())
}

/// [`parse_time`] with ages counted back from `now`.
pub(crate) fn parse_time_at(
    field: &'static str,
    text: &str,
    now: jiff::Timestamp,
) -> Result<jiff::Timestamp> {
    let fail = || {
        bad(
            field,
            format!(
                "invalid {field} {text:?}: expected an RFC 3339 time (2026-04-22T12:34:56Z), a date (2026-04-22, its start in UTC) or an age such as 15m, 24h or 7d"
            ),
        )
    };
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        // A valid date's start in UTC is always a valid instant.
        return format!("{date}T00:00:00Z").parse().map_err(|_| fail());
    }
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(fail)?;
    let (number, unit) = text.split_at(unit_at);
    let number: i64 = number.parse().map_err(|_| fail())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(fail()),
    };
    let age = number
        .checked_mul(secs)
        .map(jiff::SignedDuration::from_secs)
        .ok_or_else(fail)?;
    now.checked_sub(age).map_err(|_| fail())
}
