//! Typed codes: what `fasten gen` writes, and the boot check that the codes a
//! program was built with are the codes it loads.
//!
//! `fasten gen --lang rust sales.codes.yaml` writes one [`CodeSpec`] constant
//! per code and an `ALL` table. [`Event::new`](crate::Event::new) takes a
//! `CodeSpec`, so a misspelt code is a compile error instead of an
//! `UnknownCode` at emit time; [`Config::expect_codes`](crate::Config::expect_codes)
//! takes the table, and `init` fails when the loaded registry disagrees with
//! it. The other languages' generated files carry the same table as the text
//! `EXPECT_CODES`, which they pass as `FASTEN_EXPECT_CODES`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::code::Registry;
use crate::kind::{RetentionClass, Severity};

/// One code as `fasten gen` saw it in a `*.codes.yaml` file: its name and
/// the metadata the boot check compares.
///
/// # Examples
///
/// ```
/// use fasten::{CodeSpec, Event, RetentionClass, Severity};
///
/// // What `fasten gen --lang rust` writes for each code.
/// pub const ORDER_PLACED: CodeSpec = CodeSpec {
///     code: "ORDER_PLACED",
///     domain: "sales",
///     category: "order",
///     action: "create",
///     severity: Severity::Info,
///     retention_class: RetentionClass::Long,
///     pii_in_detail: false,
///     source: "sales.codes.yaml",
/// };
/// let event = Event::new(ORDER_PLACED);
/// assert_eq!(event.code(), "ORDER_PLACED");
/// ```
///
/// With the module `fasten gen` wrote for the examples' `sales.codes.yaml`:
///
/// ```
/// mod codes {
///     include!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/codes/sales.rs"));
/// }
/// let event = fasten::Event::new(codes::ORDER_PLACED);
/// assert_eq!(event.code(), "ORDER_PLACED");
/// assert_eq!(codes::ORDER_PLACED.retention_class, fasten::RetentionClass::Long);
/// assert_eq!(codes::ALL.len(), 3);
/// ```
///
/// and a misspelt code does not compile:
///
/// ```compile_fail,E0425
/// mod codes {
///     include!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/codes/sales.rs"));
/// }
/// let event = fasten::Event::new(codes::ORDER_PLACD);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeSpec {
    /// The code (`ORDER_PLACED`).
    pub code: &'static str,
    /// Its domain (`sales`).
    pub domain: &'static str,
    /// Its category.
    pub category: &'static str,
    /// Its action.
    pub action: &'static str,
    /// Its default severity.
    pub severity: Severity,
    /// Its retention class in force (`short` for codes with personal data).
    pub retention_class: RetentionClass,
    /// Whether its detail holds personal data.
    pub pii_in_detail: bool,
    /// The YAML file it was generated from, as given to `fasten gen`.
    pub source: &'static str,
}

impl From<CodeSpec> for Cow<'static, str> {
    fn from(spec: CodeSpec) -> Self {
        Cow::Borrowed(spec.code)
    }
}

impl From<&CodeSpec> for Cow<'static, str> {
    fn from(spec: &CodeSpec) -> Self {
        Cow::Borrowed(spec.code)
    }
}

/// The owned form of a [`CodeSpec`]: what the boot check compares, and the
/// JSON of `FASTEN_EXPECT_CODES` (`source` is not compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expected {
    pub(crate) code: String,
    pub(crate) domain: String,
    pub(crate) category: String,
    pub(crate) action: String,
    pub(crate) severity: String,
    pub(crate) retention_class: String,
    pub(crate) pii_in_detail: bool,
}

impl From<&CodeSpec> for Expected {
    fn from(s: &CodeSpec) -> Self {
        Self {
            code: s.code.to_owned(),
            domain: s.domain.to_owned(),
            category: s.category.to_owned(),
            action: s.action.to_owned(),
            severity: s.severity.to_string(),
            retention_class: s.retention_class.to_string(),
            pii_in_detail: s.pii_in_detail,
        }
    }
}

/// Parses the JSON array of `FASTEN_EXPECT_CODES`.
pub(crate) fn parse_expected(text: &str) -> Result<Vec<Expected>, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "invalid FASTEN_EXPECT_CODES: {e}: expected the EXPECT_CODES text of a file written by fasten gen, a JSON array of {{\"code\",\"domain\",\"category\",\"action\",\"severity\",\"retention_class\",\"pii_in_detail\"}}"
        )
    })
}

/// Every difference between the generated codes and the registry, one line
/// each, sorted by code. Only the domains the generated codes name are
/// compared, so codes a program registers in other domains do not count.
pub(crate) fn differences(expected: &[Expected], registry: &Registry) -> Vec<String> {
    let domains: BTreeSet<&str> = expected.iter().map(|e| e.domain.as_str()).collect();
    let wanted: BTreeMap<&str, &Expected> = expected.iter().map(|e| (e.code.as_str(), e)).collect();
    let mut out = BTreeMap::new();
    for (code, want) in &wanted {
        let Some(info) = registry.get(code) else {
            out.insert(
                code.to_string(),
                format!("code {code}: generated but not in the loaded registry"),
            );
            continue;
        };
        let meta = info.meta();
        let have = Expected {
            code: info.code().to_owned(),
            domain: info.domain().to_owned(),
            category: meta.category.clone(),
            action: meta.action.clone(),
            severity: meta.severity.to_string(),
            retention_class: meta.retention_class.to_string(),
            pii_in_detail: meta.pii_in_detail,
        };
        let fields = [
            ("domain", &want.domain, &have.domain),
            ("category", &want.category, &have.category),
            ("action", &want.action, &have.action),
            ("severity", &want.severity, &have.severity),
            (
                "retention_class",
                &want.retention_class,
                &have.retention_class,
            ),
        ];
        let mut diffs: Vec<String> = fields
            .iter()
            .filter(|(_, w, h)| w != h)
            .map(|(field, w, h)| format!("{field} generated {w:?}, loaded {h:?}"))
            .collect();
        if want.pii_in_detail != have.pii_in_detail {
            diffs.push(format!(
                "pii_in_detail generated {}, loaded {}",
                want.pii_in_detail, have.pii_in_detail
            ));
        }
        if !diffs.is_empty() {
            out.insert(
                code.to_string(),
                format!("code {code}: {} ({})", diffs.join(", "), info.origin()),
            );
        }
    }
    for info in registry.codes() {
        if domains.contains(info.domain()) && !wanted.contains_key(info.code()) {
            out.insert(
                info.code().to_owned(),
                format!(
                    "code {}: loaded ({}) but not generated",
                    info.code(),
                    info.origin()
                ),
            );
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::Meta;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const PLACED: CodeSpec = CodeSpec {
        code: "ORDER_PLACED",
        domain: "sales",
        category: "order",
        action: "create",
        severity: Severity::Info,
        retention_class: RetentionClass::Long,
        pii_in_detail: false,
        source: "sales.codes.yaml",
    };

    #[test]
    fn differences_name_each_code_and_field() -> TestResult {
        let registry = Registry::new();
        registry.register(
            "sales",
            [
                (
                    "ORDER_PLACED",
                    Meta::new("order", "create")
                        .severity(Severity::Warn)
                        .retention(RetentionClass::Long),
                ),
                ("ORDER_SHIPPED", Meta::new("order", "ship")),
            ],
        )?;
        registry.register("other", [("UNRELATED", Meta::new("a", "b"))])?;
        let gone = CodeSpec {
            code: "ORDER_GONE",
            ..PLACED
        };
        let expected: Vec<Expected> = [PLACED, gone].iter().map(Expected::from).collect();
        let text = differences(&expected, &registry).join("\n");
        insta::assert_snapshot!(text, @r#"
        code ORDER_GONE: generated but not in the loaded registry
        code ORDER_PLACED: severity generated "info", loaded "warn" (code)
        code ORDER_SHIPPED: loaded (code) but not generated
        "#);

        let same = Registry::new();
        same.register(
            "sales",
            [(
                "ORDER_PLACED",
                Meta::new("order", "create").retention(RetentionClass::Long),
            )],
        )?;
        assert!(differences(&[Expected::from(&PLACED)], &same).is_empty());
        Ok(())
    }

    #[test]
    fn expect_codes_text_round_trips() -> TestResult {
        let json = serde_json::to_string(&[Expected::from(&PLACED)])?;
        assert_eq!(parse_expected(&json)?, [Expected::from(&PLACED)]);
        let err = parse_expected("[{\"code\": 1}]").err().ok_or("accepted")?;
        assert!(err.starts_with("invalid FASTEN_EXPECT_CODES: "), "{err}");
        Ok(())
    }
}
