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

fn s<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key].as_str().unwrap_or("-")
}

/// Seconds are enough on a terminal; `--json` keeps the microseconds.
fn when(row: &Value) -> String {
    let ts = s(row, "timestamp");
    match ts.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => ts.to_owned(),
    }
}

/// A value as one shell-like word: as is when plain, else quoted, with
/// control characters escaped, so a stored value can neither split a line
/// into misleading words nor send escape sequences to the terminal.
pub(crate) fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\\');
    if plain {
        text.to_owned()
    } else {
        format!("{text:?}")
    }
}

/// Free text (a log message): spaces stay, control characters are escaped.
fn text(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

pub(crate) fn audit(p: Paint, row: &Value) -> String {
    let mut line = format!(
        "{} {} {} target={} req={}",
        when(row),
        p.wrap("1;36", &word(s(row, "code"))),
        word(s(row, "actor")),
        word(s(row, "target")),
        // Whole: minted ids share their leading (time) digits within a
        // minute, so a prefix would not tell requests apart.
        word(s(row, "request_id")),
    );
    match row["outcome"].as_str() {
        // Absent on rows of another implementation's table.
        Some("success") | None => {}
        Some(other) => line.push_str(&format!(" outcome={}", p.wrap("31", &word(other)))),
    }
    // An agent's call says what it called, how long it took, what it cost
    // and why it failed (the `agent` codes' documented detail fields).
    if s(row, "domain") == "agent" {
        for key in ["tool", "model", "duration_ms", "cost_usd", "error"] {
            match &row["detail"][key] {
                Value::String(v) => line.push_str(&format!(" {key}={}", word(v))),
                Value::Number(n) => line.push_str(&format!(" {key}={n}")),
                _ => {}
            }
        }
    }
    line
}

pub(crate) fn sys(p: Paint, row: &Value) -> String {
    let level = s(row, "level");
    let colour = match level {
        "ERROR" => "31",
        "WARN" => "33",
        "INFO" => "32",
        _ => "2",
    };
    let mut line = format!(
        "{} {:5} {} {}",
        when(row),
        p.wrap(colour, &word(level)),
        word(s(row, "target")),
        text(s(row, "message"))
    );
    if let Some(id) = row["request_id"].as_str() {
        line.push_str(&format!(" req={}", word(id)));
    }
    push_trace(&mut line, row);
    line
}

/// ` trace=…` when the row's trace id is not its request id (an
/// `X-Request-ID` that disagreed with `traceparent`), so a Jaeger search
/// finds it.
fn push_trace(line: &mut String, row: &Value) {
    if let Some(trace) = row["trace_id"].as_str()
        && row["request_id"].as_str() != Some(trace)
    {
        line.push_str(&format!(" trace={}", word(trace)));
    }
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
    let mut line = format!(
        "{} {} {} {} {:.1}ms req={}",
        when(row),
        word(s(row, "method")),
        word(s(row, "route")),
        p.wrap(colour, &status.to_string()),
        row["duration_ms"].as_f64().unwrap_or(0.0),
        word(s(row, "request_id"))
    );
    push_trace(&mut line, row);
    line
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

    #[test]
    fn an_audit_row_reads_as_the_issue_shows() {
        let row = serde_json::json!({
            "timestamp": "2026-04-22T12:34:56.123456Z", "code": "USER_CREATED", "actor": "admin",
            "target": "u-42", "request_id": "3a7b1c9d2e4f5a6b7c8d", "outcome": "success"
        });
        assert_eq!(
            audit(Paint(false), &row),
            "2026-04-22T12:34:56Z USER_CREATED admin target=u-42 req=3a7b1c9d2e4f5a6b7c8d"
        );
    }

    /// Requests minted in the same minute share their first digits: the
    /// whole id is printed. Values with spaces are quoted, control
    /// characters never reach the terminal, and non-ASCII never panics.
    #[test]
    fn ids_are_whole_and_stored_text_cannot_forge_a_line() {
        let row = serde_json::json!({
            "timestamp": "2026-04-22T12:34:56.123456Z", "code": "USER_CREATED",
            "actor": "Ann Lee", "target": "evil\u{1b}[31m", "request_id": "01a2322b3342c93deec1a2be9a03de03é",
            "outcome": "success"
        });
        assert_eq!(
            audit(Paint(false), &row),
            r#"2026-04-22T12:34:56Z USER_CREATED "Ann Lee" target="evil\u{1b}[31m" req=01a2322b3342c93deec1a2be9a03de03é"#
        );
        let sys = serde_json::json!({
            "timestamp": "2026-04-22T12:34:56Z", "level": "INFO", "target": "app",
            "message": "two\nlines", "request_id": null
        });
        assert_eq!(sys_line(&sys), r"2026-04-22T12:34:56Z INFO  app two\nlines");
    }

    #[test]
    fn issue_20_a_trace_that_is_not_the_request_id_is_shown() {
        let row = serde_json::json!({
            "timestamp": "2026-04-22T12:34:56Z", "method": "GET", "route": "/o", "status": 200,
            "duration_ms": 1.5, "request_id": "order-3",
            "trace_id": "0af7651916cd43dd8448eb211c80319c"
        });
        assert_eq!(
            api(Paint(false), &row),
            "2026-04-22T12:34:56Z GET /o 200 1.5ms req=order-3 trace=0af7651916cd43dd8448eb211c80319c"
        );
        let same = serde_json::json!({
            "timestamp": "2026-04-22T12:34:56Z", "level": "INFO", "target": "app", "message": "m",
            "request_id": "0af7651916cd43dd8448eb211c80319c",
            "trace_id": "0af7651916cd43dd8448eb211c80319c"
        });
        assert!(!sys_line(&same).contains("trace="));
    }

    fn sys_line(row: &Value) -> String {
        sys(Paint(false), row)
    }
}
