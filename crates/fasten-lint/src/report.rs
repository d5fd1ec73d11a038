//! What the lint found, and its three renderings: human lines, JSON and
//! SARIF 2.1.0.

use serde::Serialize;
use serde_json::json;

/// Whether a site leaves an audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// A function around it, or one it calls in the same file, emits.
    Covered,
    /// A `fasten:no-audit <reason>` comment accepts it.
    Waived {
        /// The comment's reason.
        reason: String,
    },
    /// Nothing emits: the build should fail.
    Uncovered {
        /// Why a waiver nearby did not count.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

/// A mutation site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    /// The file, as found under the paths given.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What it is: `UPDATE`, `session.add (SQLAlchemy)`, `POST /orders handler`.
    pub label: String,
    /// The kind of rule: `sql`, `orm` or `http`.
    pub rule: String,
    /// The nearest named function around it.
    pub function: Option<String>,
    /// Whether it is in a function without a name (a closure, an inline
    /// handler) that no named function encloses.
    #[serde(skip)]
    pub(crate) anonymous: bool,
    /// Covered, waived or uncovered.
    #[serde(flatten)]
    pub status: Status,
}

/// A declared code that no source mentions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unused {
    /// The code.
    pub code: String,
    /// The YAML file that declares it.
    pub path: String,
    /// Its line there.
    pub line: usize,
}

/// Everything one run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Files parsed.
    pub files: usize,
    /// Every mutation site, sorted by path, line and column.
    pub sites: Vec<Site>,
    /// Declared codes no source mentions (with `--unused`).
    pub unused: Vec<Unused>,
}

const RULE_SITE: &str = "fasten/unaudited-mutation";
const RULE_UNUSED: &str = "fasten/unused-code";

impl Site {
    fn where_(&self) -> String {
        match &self.function {
            Some(f) => format!("in fn {f}"),
            None if self.anonymous => "in an anonymous function".to_owned(),
            None => "at module level".to_owned(),
        }
    }

    /// The message of an uncovered site.
    pub fn message(&self) -> String {
        match &self.status {
            Status::Uncovered { note: Some(note) } => format!(
                "{} without an audit event ({}; {note})",
                self.label,
                self.where_()
            ),
            Status::Waived { reason } => {
                format!("{} waived: {reason} ({})", self.label, self.where_())
            }
            _ => format!("{} without an audit event ({})", self.label, self.where_()),
        }
    }
}

impl Report {
    pub(crate) fn sort(&mut self) {
        self.sites
            .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
        self.unused.sort_by(|a, b| a.code.cmp(&b.code));
    }

    /// Whether anything should fail the build: an uncovered site or an
    /// unused code.
    pub fn failed(&self) -> bool {
        !self.unused.is_empty() || self.uncovered().next().is_some()
    }

    fn uncovered(&self) -> impl Iterator<Item = &Site> {
        self.sites
            .iter()
            .filter(|s| matches!(s.status, Status::Uncovered { .. }))
    }

    /// One line per uncovered or waived site and per unused code.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for s in &self.sites {
            if s.status != Status::Covered {
                out.push_str(&format!(
                    "{}:{}:{}  {}\n",
                    s.path,
                    s.line,
                    s.column,
                    s.message()
                ));
            }
        }
        for u in &self.unused {
            out.push_str(&format!(
                "{}:{}:1  code {} is declared but no source emits it\n",
                u.path, u.line, u.code
            ));
        }
        out
    }

    /// `N files, N sites: N covered, N waived, N uncovered`.
    pub fn summary(&self) -> String {
        let count = |f: fn(&Status) -> bool| self.sites.iter().filter(|s| f(&s.status)).count();
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut out = format!(
            "{}, {}: {} covered, {} waived, {} uncovered",
            plural(self.files, "file", "files"),
            plural(self.sites.len(), "site", "sites"),
            count(|s| *s == Status::Covered),
            count(|s| matches!(s, Status::Waived { .. })),
            count(|s| matches!(s, Status::Uncovered { .. })),
        );
        if !self.unused.is_empty() {
            out.push_str(&format!(
                ", {}",
                plural(self.unused.len(), "unused code", "unused codes")
            ));
        }
        out
    }

    /// The report as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a report serialises")
    }

    /// The report as a SARIF 2.1.0 log: uncovered sites are errors, waived
    /// ones carry an in-source suppression with the reason, unused codes
    /// are warnings at their declaration.
    pub fn sarif(&self, version: &str) -> serde_json::Value {
        let location = |path: &str, line: usize, column: usize| {
            json!([{ "physicalLocation": {
                "artifactLocation": { "uri": path },
                "region": { "startLine": line, "startColumn": column },
            }}])
        };
        let mut results = Vec::new();
        for s in &self.sites {
            let mut r = json!({
                "ruleId": RULE_SITE,
                "level": "error",
                "message": { "text": s.message() },
                "locations": location(&s.path, s.line, s.column),
            });
            match &s.status {
                Status::Covered => continue,
                Status::Waived { reason } => {
                    r["suppressions"] = json!([{ "kind": "inSource", "justification": reason }]);
                }
                Status::Uncovered { .. } => {}
            }
            results.push(r);
        }
        for u in &self.unused {
            results.push(json!({
                "ruleId": RULE_UNUSED,
                "level": "warning",
                "message": { "text": format!("code {} is declared but no source emits it", u.code) },
                "locations": location(&u.path, u.line, 1),
            }));
        }
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": { "driver": {
                    "name": "fasten lint",
                    "version": version,
                    "informationUri": "https://example.invalid/fasten",
                    "rules": [
                        {
                            "id": RULE_SITE,
                            "name": "UnauditedMutation",
                            "shortDescription": { "text": "A data mutation that emits no audit event" },
                            "fullDescription": { "text": "SQL writes, ORM writes and POST/PUT/PATCH/DELETE handlers must call fasten's emit in their function or a function it calls in the same file, or carry a `fasten:no-audit <reason>` comment." },
                            "defaultConfiguration": { "level": "error" },
                        },
                        {
                            "id": RULE_UNUSED,
                            "name": "UnusedCode",
                            "shortDescription": { "text": "A declared code that no source emits" },
                            "defaultConfiguration": { "level": "warning" },
                        },
                    ],
                }},
                "results": results,
            }],
        })
    }
}
