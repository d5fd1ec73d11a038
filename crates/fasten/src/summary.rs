//! Sums over audit rows: how much each actor's tool calls cost, how many
//! tokens each model used. The HTTP reader's `/audit/summary` and
//! `fasten report` are thin layers over [`Reader::summary`].
//!
//! ```no_run
//! use fasten::summary::SummaryQuery;
//! let reader = fasten::Reader::from_env()?;
//! let q = SummaryQuery::new()
//!     .filter("code", "TOOL_CALLED")?
//!     .sum("detail.cost_usd")?
//!     .by("actor")?;
//! for g in reader.summary(&q)?.groups {
//!     println!("{:?} {} calls, ${}", g.key, g.rows, g.sum);
//! }
//! # Ok::<(), fasten::Error>(())
//! ```
//!
//! Only numbers are added: a row whose field is missing, text, or erased by
//! retention counts in `rows` but not in `summed`. Both stores run one
//! `GROUP BY` with every value bound as a parameter; column names come from
//! a fixed list and detail paths must match [`DETAIL_PATH_RULE`].

use serde::Serialize;

use crate::error::{Error, Result};
use crate::query::{AUDIT_FILTERS, AsyncReader, AuditQuery, Reader, parse_time};
use crate::store::{GroupBy, Summarize, SummaryRow};

/// The most groups one summary returns.
pub const MAX_GROUPS: usize = 1000;
/// Groups a summary returns when `limit` is not given.
pub const DEFAULT_GROUPS: usize = 100;
/// The columns a summary may group by, besides a detail path.
pub const BY_COLUMNS: [&str; 12] = [
    "actor",
    "actor_kind",
    "code",
    "domain",
    "target",
    "outcome",
    "severity",
    "method",
    "service_id",
    "source_node_id",
    "tenant_id",
    "request_id",
];
/// The rule a detail path (`sum`, or `by` over the detail) follows, as
/// errors show it.
pub const DETAIL_PATH_RULE: &str =
    "detail. then 1 to 4 names of a-z, 0-9 and _ joined by dots, each starting with a letter or _";
/// Parameters [`SummaryQuery::from_params`] takes besides [`AUDIT_FILTERS`].
pub const SUMMARY_PARAMS: [&str; 5] = ["sum", "by", "since", "until", "limit"];

fn bad(field: &'static str, message: String) -> Error {
    Error::invalid(field, message)
}

/// Parses `detail.a.b` into its segments.
fn detail_path(field: &'static str, text: &str) -> Result<Vec<String>> {
    let fail = || {
        bad(
            field,
            format!(
                "invalid {field} {text:?}: expected a detail field such as detail.cost_usd ({DETAIL_PATH_RULE})"
            ),
        )
    };
    let rest = text.strip_prefix("detail.").ok_or_else(fail)?;
    let segments: Vec<String> = rest.split('.').map(str::to_owned).collect();
    let name_ok = |s: &String| {
        let mut b = s.bytes();
        s.len() <= 64
            && b.next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
            && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    };
    if segments.is_empty() || segments.len() > 4 || !segments.iter().all(name_ok) {
        return Err(fail());
    }
    Ok(segments)
}

/// What to sum, grouped by what, over which rows.
///
/// # Defaults
///
/// | setter | default |
/// |---|---|
/// | [`sum`](Self::sum) | nothing: rows are only counted |
/// | [`by`](Self::by) | one group of every row |
/// | [`limit`](Self::limit) | [`DEFAULT_GROUPS`] groups |
/// | filters, [`since`](Self::since), [`until`](Self::until) | every row |
#[derive(Debug, Clone)]
#[must_use]
pub struct SummaryQuery {
    rows: AuditQuery,
    sum: Option<(String, Vec<String>)>,
    by: Option<(String, GroupBy)>,
    limit: usize,
}

impl Default for SummaryQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl SummaryQuery {
    /// Every row, counted in one group.
    pub fn new() -> Self {
        Self {
            rows: AuditQuery::new(1),
            sum: None,
            by: None,
            limit: DEFAULT_GROUPS,
        }
    }

    /// Sums a numeric detail field, e.g. `detail.cost_usd`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) with
    /// field `sum` when the path breaks [`DETAIL_PATH_RULE`].
    pub fn sum(mut self, path: &str) -> Result<Self> {
        self.sum = Some((path.to_owned(), detail_path("sum", path)?));
        Ok(self)
    }

    /// Groups by one of [`BY_COLUMNS`] or a detail field (`detail.model`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) with
    /// field `by` naming what is accepted.
    pub fn by(mut self, by: &str) -> Result<Self> {
        let group = if let Some(&col) = BY_COLUMNS.iter().find(|c| **c == by) {
            GroupBy::Column(col)
        } else if by.starts_with("detail.") {
            GroupBy::Detail(detail_path("by", by)?)
        } else {
            return Err(bad(
                "by",
                format!(
                    "invalid by {by:?}: expected one of {} or a detail field such as detail.model",
                    BY_COLUMNS.join(", ")
                ),
            ));
        };
        self.by = Some((by.to_owned(), group));
        Ok(self)
    }

    /// At most this many groups, 1 to [`MAX_GROUPS`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) with
    /// field `limit`.
    pub fn limit(mut self, text: &str) -> Result<Self> {
        self.limit = text
            .parse()
            .ok()
            .filter(|n| (1..=MAX_GROUPS).contains(n))
            .ok_or_else(|| {
                bad(
                    "limit",
                    format!(
                        "invalid limit {text:?}: expected a whole number from 1 to {MAX_GROUPS}"
                    ),
                )
            })?;
        Ok(self)
    }

    /// Only rows where `name = value`, for one of [`AUDIT_FILTERS`]
    /// (as [`AuditQuery::filter`]).
    ///
    /// # Errors
    ///
    /// As [`AuditQuery::filter`].
    pub fn filter(mut self, name: &str, value: &str) -> Result<Self> {
        self.rows = self.rows.filter(name, value)?;
        Ok(self)
    }

    /// Only rows at or after `t`.
    pub fn since(mut self, t: jiff::Timestamp) -> Self {
        self.rows = self.rows.since(t);
        self
    }

    /// Only rows before `t`.
    pub fn until(mut self, t: jiff::Timestamp) -> Self {
        self.rows = self.rows.until(t);
        self
    }

    /// Confines the summary to one tenant, replacing any tenant filter.
    pub fn tenant_scope(mut self, tenant: &str) -> Self {
        self.rows = self.rows.tenant_scope(tenant);
        self
    }

    /// A query from `name=value` parameters, as `/audit/summary` takes
    /// them: [`AUDIT_FILTERS`] and [`SUMMARY_PARAMS`], each at most once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`](crate::ErrorKind::InvalidEvent) naming the
    /// parameter (`query` for an unknown or repeated one).
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::summary::SummaryQuery;
    /// let q = SummaryQuery::from_params(&[("code", "TOOL_CALLED"), ("sum", "detail.cost_usd"), ("by", "actor")])?;
    /// let err = SummaryQuery::from_params(&[("sum", "cost_usd")]).unwrap_err();
    /// assert!(err.to_string().starts_with("invalid sum \"cost_usd\""));
    /// # let _ = q;
    /// # Ok::<(), fasten::Error>(())
    /// ```
    pub fn from_params(params: &[(&str, &str)]) -> Result<Self> {
        let known = || AUDIT_FILTERS.iter().chain(&SUMMARY_PARAMS);
        let mut q = Self::new();
        for (i, (name, value)) in params.iter().enumerate() {
            let Some(&name) = known().find(|k| *k == name) else {
                let expected: Vec<&str> = known().copied().collect();
                return Err(bad(
                    "query",
                    format!(
                        "unknown parameter {name:?}: expected one of {}",
                        expected.join(", ")
                    ),
                ));
            };
            if params[..i].iter().any(|(n, _)| *n == name) {
                return Err(bad(name, format!("parameter {name} is given twice")));
            }
            q = match name {
                "sum" => q.sum(value)?,
                "by" => q.by(value)?,
                "limit" => q.limit(value)?,
                "since" => q.since(parse_time("since", value)?),
                "until" => q.until(parse_time("until", value)?),
                other => q.filter(other, value)?,
            };
        }
        Ok(q)
    }

    fn spec(&self, by: GroupBy, limit: usize) -> Summarize {
        let mut filter = self.rows.q.clone();
        filter.before = None;
        Summarize {
            filter,
            sum: self.sum.as_ref().map(|(_, s)| s.clone()),
            by,
            limit,
        }
    }
}

/// One group of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Group {
    /// The group's value of `by` (`null` when rows have none, or without `by`).
    pub key: Option<String>,
    /// Rows in the group.
    pub rows: u64,
    /// Rows whose summed field is a number.
    pub summed: u64,
    /// The sum of those numbers (0 without `sum`).
    pub sum: f64,
}

/// The answer of [`Reader::summary`]: groups, largest sum first (then most
/// rows), and the total over every selected row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// The summed field, as given (`detail.cost_usd`).
    pub sum: Option<String>,
    /// What the rows are grouped by, as given (`actor`).
    pub by: Option<String>,
    /// The groups.
    pub groups: Vec<Group>,
    /// Every selected row in one group (its key `null`), including groups
    /// left out by `limit`.
    pub total: Group,
    /// More groups exist than `limit` let through.
    pub truncated: bool,
}

fn group(r: SummaryRow) -> Group {
    Group {
        key: r.key,
        rows: r.rows,
        summed: r.summed,
        sum: r.sum,
    }
}

impl Reader {
    /// Counts the rows a [`SummaryQuery`] selects and sums its field, per
    /// group.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`](crate::ErrorKind::Store) when the store cannot
    /// be read.
    pub fn summary(&self, q: &SummaryQuery) -> Result<Summary> {
        let by = q.by.as_ref().map_or(GroupBy::Nothing, |(_, g)| g.clone());
        let (mut rows, total) = self.with_audit(|s| {
            let rows = s.summarize(&q.spec(by.clone(), q.limit + 1))?;
            let total = if rows.len() > q.limit || by != GroupBy::Nothing {
                s.summarize(&q.spec(GroupBy::Nothing, 1))?
                    .into_iter()
                    .next()
            } else {
                rows.first().cloned()
            };
            Ok((rows, total))
        })?;
        let truncated = rows.len() > q.limit;
        rows.truncate(q.limit);
        let total = total.map_or(
            Group {
                key: None,
                rows: 0,
                summed: 0,
                sum: 0.0,
            },
            group,
        );
        Ok(Summary {
            sum: q.sum.as_ref().map(|(s, _)| s.clone()),
            by: q.by.as_ref().map(|(b, _)| b.clone()),
            groups: rows.into_iter().map(group).collect(),
            total,
            truncated,
        })
    }
}

impl AsyncReader {
    /// [`Reader::summary`], off the executor.
    ///
    /// # Errors
    ///
    /// As [`Reader::summary`].
    pub async fn summary(&self, q: SummaryQuery) -> Result<Summary> {
        self.call(move |r| r.summary(&q)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_groups_are_checked() {
        assert_eq!(
            detail_path("sum", "detail.usage.cost_usd").unwrap(),
            ["usage", "cost_usd"]
        );
        for bad in [
            "cost_usd",
            "detail.",
            "detail.Cost",
            "detail.a.b.c.d.e",
            "detail.a b",
            "detail.a'--",
            "detail.1a",
            "detail..a",
        ] {
            assert!(detail_path("sum", bad).is_err(), "{bad}");
        }
        let err = SummaryQuery::new().sum("actor").unwrap_err();
        insta::assert_snapshot!(err, @r#"invalid sum "actor": expected a detail field such as detail.cost_usd (detail. then 1 to 4 names of a-z, 0-9 and _ joined by dots, each starting with a letter or _)"#);
        let err = SummaryQuery::new().by("hash").unwrap_err();
        insta::assert_snapshot!(err, @r#"invalid by "hash": expected one of actor, actor_kind, code, domain, target, outcome, severity, method, service_id, source_node_id, tenant_id, request_id or a detail field such as detail.model"#);
        let err = SummaryQuery::from_params(&[("group", "actor")]).unwrap_err();
        insta::assert_snapshot!(err, @r#"unknown parameter "group": expected one of request_id, code, domain, actor, actor_kind, target, outcome, severity, source_node_id, tenant_id, sum, by, since, until, limit"#);
        let err = SummaryQuery::from_params(&[("by", "actor"), ("by", "code")]).unwrap_err();
        insta::assert_snapshot!(err, @"parameter by is given twice");
        let err = SummaryQuery::from_params(&[("limit", "0")]).unwrap_err();
        insta::assert_snapshot!(err, @r#"invalid limit "0": expected a whole number from 1 to 1000"#);
    }
}
