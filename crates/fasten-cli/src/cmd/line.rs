//! One row, one line, for people: `2026-04-22T12:34:56Z USER_CREATED admin
//! target=u-42 req=3a7b1c…`, in colour on a terminal.

use serde_json::Value;

/// ANSI colours, or nothing when stdout is not a terminal or `NO_COLOR` is set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paint(bool);

impl Paint {
    pub(crate) fn detect() -> Self {
        use std::io::IsTerminal as _;
        Self(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// A stored text field, safe for a terminal: control characters (escape
/// sequences, carriage returns, bells) and bidirectional overrides come out
/// as `\u{1b}`, so stored data can never move the cursor, rewrite the
/// line before it or recolour the screen.
fn s(row: &Value, key: &str) -> String {
    clean(row[key].as_str().unwrap_or("-"))
}

pub(crate) fn clean(text: &str) -> String {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Seconds are enough on a terminal; `--json` keeps the microseconds.
fn when(row: &Value) -> String {
    let ts = s(row, "timestamp");
    match ts.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => ts,
    }
}

/// Long ids are abbreviated like git's; `--json` has them whole. By
/// characters: a stored id need not be ASCII.
fn short_id(id: &str) -> String {
    if id.chars().count() > 12 {
        format!("{}…", id.chars().take(8).collect::<String>())
    } else {
        id.to_owned()
    }
}

pub(crate) fn audit(p: Paint, row: &Value) -> String {
    let mut line = format!(
        "{} {} {} target={} req={}",
        when(row),
        p.wrap("1;36", &s(row, "code")),
        s(row, "actor"),
        s(row, "target"),
        short_id(&s(row, "request_id")),
    );
    match s(row, "outcome").as_str() {
        "success" => {}
        other => line.push_str(&format!(" outcome={}", p.wrap("31", other))),
    }
    line
}

pub(crate) fn sys(p: Paint, row: &Value) -> String {
    let level = s(row, "level");
    let colour = match level.as_str() {
        "ERROR" => "31",
        "WARN" => "33",
        "INFO" => "32",
        _ => "2",
    };
    let mut line = format!(
        "{} {:5} {} {}",
        when(row),
        p.wrap(colour, &level),
        s(row, "target"),
        s(row, "message")
    );
    if let Some(id) = row["request_id"].as_str() {
        line.push_str(&format!(" req={}", short_id(&clean(id))));
    }
    line
}

pub(crate) fn api(p: Paint, row: &Value) -> String {
    let status = row["status"].as_u64().unwrap_or(0);
    let colour = if status >= 500 || status == 0 {
        "31"
    } else if status >= 400 {
        "33"
    } else {
        "32"
    };
    format!(
        "{} {} {} {} {:.1}ms req={}",
        when(row),
        s(row, "method"),
        s(row, "route"),
        p.wrap(colour, &status.to_string()),
        row["duration_ms"].as_f64().unwrap_or(0.0),
        short_id(&s(row, "request_id"))
    )
}

/// A row of any stream.
pub(crate) fn of(p: Paint, stream: &str, row: &Value) -> String {
    match stream {
        "sys" => sys(p, row),
        "api" => api(p, row),
        _ => audit(p, row),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored data is whatever the store holds: never a panic, never a
    /// raw escape sequence on the terminal.
    #[test]
    fn hostile_stored_text_neither_panics_nor_reaches_the_terminal_raw() {
        let row = serde_json::json!({
            "timestamp": "2026-04-22T12:34:56.1Z", "code": "X\u{1b}[2J\u{1b}]0;pwned\u{7}",
            "actor": "a\rb", "target": "\u{202e}txt.exe", "request_id": "ééééééééééééé€",
            "outcome": "\u{1b}[31mfail", "level": "WARN\u{1b}[0m", "message": "m\u{9b}31m",
            "method": "GET", "route": "/\u{1b}]8;;http://evil\u{7}", "status": 200,
        });
        for stream in ["audit", "sys", "api"] {
            let line = of(Paint(false), stream, &row);
            assert!(
                !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{stream}: {line:?}"
            );
        }
        assert!(audit(Paint(false), &row).contains("req=éééééééé…"));
    }

    #[test]
    fn an_audit_row_reads_as_the_issue_shows() {
        let row = serde_json::json!({
            "timestamp": "2026-04-22T12:34:56.123456Z", "code": "USER_CREATED", "actor": "admin",
            "target": "u-42", "request_id": "3a7b1c9d2e4f5a6b7c8d", "outcome": "success"
        });
        assert_eq!(
            audit(Paint(false), &row),
            "2026-04-22T12:34:56Z USER_CREATED admin target=u-42 req=3a7b1c9d…"
        );
    }
}
