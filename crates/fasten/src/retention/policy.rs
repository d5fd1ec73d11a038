//! The retention policy read from `FASTEN_AUDIT_RETENTION_*` and `FASTEN_AUDIT_LEGAL_HOLD_*`, and its `Config` setters.

use super::*;

/// The longest age a class or stream may be given, in days (100 years).
pub(super) const MAX_DAYS: u32 = 36_500;
/// The shortest pause between two erase transactions of a sweep.
pub(super) const MIN_PAUSE: Duration = Duration::from_millis(2);
/// How long one erase transaction should hold the store. An emit that
/// arrives during one waits for it and then for its own commit, so this is
/// well under the 25 ms a `raise`-mode emit may stall during a sweep.
pub(super) const TARGET_HOLD: Duration = Duration::from_millis(10);
/// The smallest batch the sweep shrinks to.
pub(super) const MIN_BATCH: usize = 50;
/// The first transaction's batch: small, since nothing is known yet of how
/// fast this store erases; later ones follow [`next_batch`].
pub(super) const FIRST_BATCH: usize = 100;

/// The next batch size after a transaction of `rows` rows held the store
/// for `held`: the size that would have held it for [`TARGET_HOLD`] at the
/// rate just seen, at most double the last (one quick transaction on a
/// warm cache must not leap to one that stalls writers), between
/// [`MIN_BATCH`] and `max`.
pub(super) fn next_batch(rows: usize, held: Duration, max: usize) -> usize {
    let aimed = if held.is_zero() {
        rows.saturating_mul(2)
    } else {
        // Float: the ratio of two durations; truncation is the intent.
        (rows as f64 * TARGET_HOLD.as_secs_f64() / held.as_secs_f64()) as usize
    };
    aimed.min(rows.saturating_mul(2)).max(MIN_BATCH).min(max)
}
/// Rows per stream-prune transaction.
pub(super) const PRUNE_BATCH: usize = 1000;
pub(super) const DAY: u64 = 86_400;

// === Retention (configuration) ===

/// The retention settings of a pipeline, read from `FASTEN_*` or set on
/// [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retention {
    short_days: u32,
    medium_days: u32,
    long_days: u32,
    /// `None`: no background sweep.
    sweep_interval: Option<Duration>,
    pub(super) legal_hold_codes: Vec<String>,
    pub(super) legal_hold_tenants: Vec<String>,
    api_days: Option<u32>,
    sys_days: Option<u32>,
    /// Classes set both by their own variable and by the override (the
    /// override wins): said once when the pipeline starts.
    pub(crate) shadowed: Vec<String>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            short_days: FASTEN_AUDIT_RETENTION_CLASS_SHORT_DEFAULT,
            medium_days: FASTEN_AUDIT_RETENTION_CLASS_MEDIUM_DEFAULT,
            long_days: FASTEN_AUDIT_RETENTION_CLASS_LONG_DEFAULT,
            sweep_interval: Some(FASTEN_RETENTION_SWEEP_INTERVAL_DEFAULT),
            legal_hold_codes: Vec::new(),
            legal_hold_tenants: Vec::new(),
            api_days: None,
            sys_days: None,
            shadowed: Vec::new(),
        }
    }
}

impl Retention {
    /// Reads the retention variables; `get` already treats blank as unset.
    pub(crate) fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let mut r = Self::default();
        let mut set_by_var = Vec::new();
        for (var, class) in [
            (FASTEN_AUDIT_RETENTION_CLASS_SHORT, RetentionClass::Short),
            (FASTEN_AUDIT_RETENTION_CLASS_MEDIUM, RetentionClass::Medium),
            (FASTEN_AUDIT_RETENTION_CLASS_LONG, RetentionClass::Long),
        ] {
            if let Some(v) = get(var) {
                *r.days_mut(class) = parse_days(var, v.trim())?;
                set_by_var.push((class, var));
            }
        }
        if let Some(v) = get(FASTEN_AUDIT_RETENTION_OVERRIDE) {
            for (class, days) in parse_override(&v)? {
                if let Some((_, var)) = set_by_var.iter().find(|(c, _)| *c == class) {
                    r.shadowed.push(format!(
                        "{var} is ignored: {FASTEN_AUDIT_RETENTION_OVERRIDE} also sets class {class}, and the override wins ({days} days)"
                    ));
                }
                *r.days_mut(class) = days;
            }
        }
        if let Some(v) = get(FASTEN_RETENTION_SWEEP_INTERVAL) {
            r.sweep_interval = parse_interval(v.trim())?;
        }
        if let Some(v) = get(FASTEN_AUDIT_LEGAL_HOLD) {
            r.legal_hold_codes = list(&v);
        }
        if let Some(v) = get(FASTEN_AUDIT_LEGAL_HOLD_TENANTS) {
            r.legal_hold_tenants = list(&v);
        }
        if let Some(v) = get(FASTEN_API_RETENTION_DAYS) {
            r.api_days = Some(parse_days(FASTEN_API_RETENTION_DAYS, v.trim())?);
        }
        if let Some(v) = get(FASTEN_SYS_RETENTION_DAYS) {
            r.sys_days = Some(parse_days(FASTEN_SYS_RETENTION_DAYS, v.trim())?);
        }
        r.validate()?;
        Ok(r)
    }

    /// The rules the setters cannot enforce by type.
    pub(crate) fn validate(&self) -> Result<()> {
        for (var, days) in [
            (FASTEN_AUDIT_RETENTION_CLASS_SHORT, Some(self.short_days)),
            (FASTEN_AUDIT_RETENTION_CLASS_MEDIUM, Some(self.medium_days)),
            (FASTEN_AUDIT_RETENTION_CLASS_LONG, Some(self.long_days)),
            (FASTEN_API_RETENTION_DAYS, self.api_days),
            (FASTEN_SYS_RETENTION_DAYS, self.sys_days),
        ] {
            if let Some(days) = days {
                check_days(var, &days.to_string(), u64::from(days))?;
            }
        }
        if self.sweep_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::config(
                FASTEN_RETENTION_SWEEP_INTERVAL,
                format!(
                    "invalid {FASTEN_RETENTION_SWEEP_INTERVAL} 0s: must be positive, e.g. 6h, or off"
                ),
            ));
        }
        for code in &self.legal_hold_codes {
            if !crate::code::is_code(code) {
                return Err(Error::config(
                    FASTEN_AUDIT_LEGAL_HOLD,
                    format!(
                        "invalid {FASTEN_AUDIT_LEGAL_HOLD} entry {code:?}: a code must match ^[A-Z][A-Z0-9_]*$, e.g. ORDER_PLACED,USER_DELETED"
                    ),
                ));
            }
        }
        for tenant in &self.legal_hold_tenants {
            let ok = !tenant.is_empty()
                && tenant.len() <= 128
                && tenant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
            if !ok {
                return Err(Error::config(
                    FASTEN_AUDIT_LEGAL_HOLD_TENANTS,
                    format!(
                        "invalid {FASTEN_AUDIT_LEGAL_HOLD_TENANTS} entry {tenant:?}: expected 1-128 characters of [A-Za-z0-9._:-], e.g. tenant-a,tenant-b"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn days_mut(&mut self, class: RetentionClass) -> &mut u32 {
        match class {
            RetentionClass::Short => &mut self.short_days,
            RetentionClass::Long => &mut self.long_days,
            _ => &mut self.medium_days,
        }
    }

    /// How many days rows of `class` keep their detail.
    pub(crate) fn days(&self, class: RetentionClass) -> u32 {
        match class {
            RetentionClass::Short => self.short_days,
            RetentionClass::Long => self.long_days,
            _ => self.medium_days,
        }
    }

    pub(crate) fn sweep_interval(&self) -> Option<Duration> {
        self.sweep_interval
    }

    /// `FASTEN_API_RETENTION_DAYS`, if set.
    pub(crate) fn api_days(&self) -> Option<u32> {
        self.api_days
    }

    /// `FASTEN_SYS_RETENTION_DAYS`, if set.
    pub(crate) fn sys_days(&self) -> Option<u32> {
        self.sys_days
    }
}

pub(super) fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn check_days(var: &'static str, v: &str, days: u64) -> Result<u32> {
    if days == 0 {
        return Err(Error::config(
            var,
            format!("invalid {var} {v:?}: must be at least 1 day"),
        ));
    }
    u32::try_from(days)
        .ok()
        .filter(|d| *d <= MAX_DAYS)
        .ok_or_else(|| {
            Error::config(
                var,
                format!("invalid {var} {v:?}: at most {MAX_DAYS} days (100 years)"),
            )
        })
}

/// A whole number of days, e.g. `30`.
pub(super) fn parse_days(var: &'static str, v: &str) -> Result<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::config(
            var,
            format!("invalid {var} {v:?}: expected a whole number of days, e.g. 30"),
        ));
    }
    let days: u64 = v.parse().unwrap_or(u64::MAX);
    check_days(var, v, days)
}

/// The grammar in the module docs.
pub(super) fn parse_override(v: &str) -> Result<Vec<(RetentionClass, u32)>> {
    const VAR: &str = FASTEN_AUDIT_RETENTION_OVERRIDE;
    const RULE: &str = "expected CLASS=AGE[,CLASS=AGE…] with CLASS short, medium or long and AGE a whole number and a unit d, w, m (30 days) or y (365 days), e.g. long=7y,medium=1y";
    let bad = |why: String| Error::config(VAR, format!("invalid {VAR} {v:?}: {why}; {RULE}"));
    let mut out: Vec<(RetentionClass, u32)> = Vec::new();
    for entry in v.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(bad("empty entry".to_owned()));
        }
        let Some((class, age)) = entry.split_once('=') else {
            return Err(bad(format!("entry {entry:?} has no \"=\"")));
        };
        let class: RetentionClass = class
            .parse()
            .map_err(|_| bad(format!("unknown class {class:?} in {entry:?}")))?;
        if out.iter().any(|(c, _)| *c == class) {
            return Err(bad(format!("class {class} is given twice")));
        }
        let split = age.find(|c: char| !c.is_ascii_digit()).unwrap_or(age.len());
        let (number, unit) = age.split_at(split);
        if number.is_empty() {
            return Err(bad(format!("age {age:?} of {class} has no number")));
        }
        let per = match unit {
            "d" => 1,
            "w" => 7,
            "m" => 30,
            "y" => 365,
            "" => return Err(bad(format!("age {age:?} of {class} has no unit"))),
            _ => return Err(bad(format!("unknown unit {unit:?} in {entry:?}"))),
        };
        let n: u64 = number.parse().unwrap_or(u64::MAX);
        let days = n.saturating_mul(per);
        if days == 0 {
            return Err(bad(format!("age {age:?} of {class} must be at least 1d")));
        }
        if days > u64::from(MAX_DAYS) {
            return Err(bad(format!(
                "age {age:?} of {class} is longer than {MAX_DAYS} days"
            )));
        }
        out.push((class, u32::try_from(days).unwrap_or(MAX_DAYS)));
    }
    Ok(out)
}

/// `30m`, `6h`, `1d` (also `s`), or `off`.
pub(super) fn parse_interval(v: &str) -> Result<Option<Duration>> {
    const VAR: &str = FASTEN_RETENTION_SWEEP_INTERVAL;
    if v == "off" {
        return Ok(None);
    }
    let bad = || {
        Error::config(
            VAR,
            format!(
                "invalid {VAR} {v:?}: expected a positive whole number and a unit (s, m, h, d), e.g. 6h, or off"
            ),
        )
    };
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(DAY),
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(Some(Duration::from_secs(secs)))
}

// === Config setters ===

impl Config {
    /// `FASTEN_AUDIT_RETENTION_CLASS_SHORT|MEDIUM|LONG`: days the detail of
    /// rows of `class` is kept (1 to 36500).
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::{Config, RetentionClass};
    /// let config = Config::new().audit_retention_class(RetentionClass::Long, 7 * 365);
    /// # let _ = config;
    /// ```
    pub fn audit_retention_class(mut self, class: RetentionClass, days: u32) -> Self {
        *self.retention.days_mut(class) = days;
        self
    }

    /// `FASTEN_AUDIT_RETENTION_OVERRIDE`: `long=7y,medium=1y` (the grammar
    /// is in [`retention`](crate::retention)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming `FASTEN_AUDIT_RETENTION_OVERRIDE` when
    /// `spec` breaks the grammar.
    pub fn audit_retention_override(mut self, spec: &str) -> Result<Self> {
        for (class, days) in parse_override(spec)? {
            *self.retention.days_mut(class) = days;
        }
        Ok(self)
    }

    /// `FASTEN_RETENTION_SWEEP_INTERVAL`: how often the pipeline sweeps in
    /// the background; `None` turns the background sweep off.
    pub fn retention_sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.retention.sweep_interval = interval;
        self
    }

    /// `FASTEN_AUDIT_LEGAL_HOLD`: codes whose rows are never erased.
    pub fn audit_legal_hold(mut self, codes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.retention.legal_hold_codes = codes.into_iter().map(Into::into).collect();
        self
    }

    /// `FASTEN_AUDIT_LEGAL_HOLD_TENANTS`: tenants whose rows are never erased.
    pub fn audit_legal_hold_tenants(
        mut self,
        tenants: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.retention.legal_hold_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// `FASTEN_API_RETENTION_DAYS`: days api stream rows stay in their store.
    pub fn api_retention_days(mut self, days: u32) -> Self {
        self.retention.api_days = Some(days);
        self
    }

    /// `FASTEN_SYS_RETENTION_DAYS`: days sys stream rows stay in their store.
    pub fn sys_retention_days(mut self, days: u32) -> Self {
        self.retention.sys_days = Some(days);
        self
    }
}
