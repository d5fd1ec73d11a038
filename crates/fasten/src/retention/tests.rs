use super::*;
use std::collections::HashMap;

fn from(vars: &[(&str, &str)]) -> Result<Retention> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Retention::from_vars(&|k| map.get(k).cloned())
}

#[test]
fn defaults_are_30_180_and_3_years_sweeping_every_6h() {
    let r = from(&[]).unwrap();
    assert_eq!(r.days(RetentionClass::Short), 30);
    assert_eq!(r.days(RetentionClass::Medium), 180);
    assert_eq!(r.days(RetentionClass::Long), 1095);
    assert_eq!(r.sweep_interval(), Some(Duration::from_secs(6 * 3600)));
    assert_eq!((r.api_days(), r.sys_days()), (None, None));
}

#[test]
fn class_variables_and_override_apply() {
    let r = from(&[
        ("FASTEN_AUDIT_RETENTION_CLASS_SHORT", "7"),
        ("FASTEN_AUDIT_RETENTION_OVERRIDE", " long=7y , medium=2m"),
        ("FASTEN_RETENTION_SWEEP_INTERVAL", "30m"),
        ("FASTEN_AUDIT_LEGAL_HOLD", "ORDER_PLACED, USER_DELETED"),
        ("FASTEN_AUDIT_LEGAL_HOLD_TENANTS", "t-1"),
        ("FASTEN_API_RETENTION_DAYS", "14"),
        ("FASTEN_SYS_RETENTION_DAYS", "3"),
    ])
    .unwrap();
    assert_eq!(r.days(RetentionClass::Short), 7);
    assert_eq!(r.days(RetentionClass::Medium), 60);
    assert_eq!(r.days(RetentionClass::Long), 7 * 365);
    assert_eq!(r.sweep_interval(), Some(Duration::from_secs(1800)));
    assert_eq!(r.legal_hold_codes, ["ORDER_PLACED", "USER_DELETED"]);
    assert_eq!(r.legal_hold_tenants, ["t-1"]);
    assert_eq!((r.api_days(), r.sys_days()), (Some(14), Some(3)));
    for (spec, days) in [("short=2w", 14), ("short=1d", 1), ("short=3m", 90)] {
        let r = from(&[("FASTEN_AUDIT_RETENTION_OVERRIDE", spec)]).unwrap();
        assert_eq!(r.days(RetentionClass::Short), days, "{spec}");
    }
    let off = from(&[("FASTEN_RETENTION_SWEEP_INTERVAL", "off")]).unwrap();
    assert_eq!(off.sweep_interval(), None);
    let day = from(&[("FASTEN_RETENTION_SWEEP_INTERVAL", "1d")]).unwrap();
    assert_eq!(day.sweep_interval(), Some(Duration::from_secs(DAY)));
}

#[test]
fn override_errors_name_the_variable_and_the_rule() {
    let err = |spec: &str| {
        let e = from(&[("FASTEN_AUDIT_RETENTION_OVERRIDE", spec)]).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::Config {
                var: FASTEN_AUDIT_RETENTION_OVERRIDE
            },
            "{spec}"
        );
        e.to_string()
    };
    insta::assert_snapshot!(err("long=7x"), @r#"invalid FASTEN_AUDIT_RETENTION_OVERRIDE "long=7x": unknown unit "x" in "long=7x"; expected CLASS=AGE[,CLASS=AGE…] with CLASS short, medium or long and AGE a whole number and a unit d, w, m (30 days) or y (365 days), e.g. long=7y,medium=1y"#);
    insta::assert_snapshot!(err("forever=1y"), @r#"invalid FASTEN_AUDIT_RETENTION_OVERRIDE "forever=1y": unknown class "forever" in "forever=1y"; expected CLASS=AGE[,CLASS=AGE…] with CLASS short, medium or long and AGE a whole number and a unit d, w, m (30 days) or y (365 days), e.g. long=7y,medium=1y"#);
    assert!(err("long=7").contains(r#"age "7" of long has no unit"#));
    assert!(err("long=y").contains(r#"age "y" of long has no number"#));
    assert!(err("long").contains(r#"entry "long" has no "=""#));
    assert!(err("long=1y,,short=1d").contains("empty entry"));
    assert!(err("long=1y,long=2y").contains("class long is given twice"));
    assert!(err("short=0d").contains("must be at least 1d"));
    assert!(err("long=101y").contains("longer than 36500 days"));
    assert!(err("long = 1y").contains(r#"unknown class "long ""#));
    assert!(err("long=-1y").contains("has no number"));
    assert!(err("long=1.5y").contains(r#"unknown unit ".5y""#));
    // Both naming one class: the override wins, and that is said once.
    let both = from(&[
        ("FASTEN_AUDIT_RETENTION_CLASS_LONG", "2555"),
        ("FASTEN_AUDIT_RETENTION_OVERRIDE", "long=7y,medium=1y"),
    ])
    .unwrap();
    assert_eq!(both.days(RetentionClass::Long), 7 * 365);
    assert_eq!(both.days(RetentionClass::Medium), 365);
    assert_eq!(
        both.shadowed,
        [
            "FASTEN_AUDIT_RETENTION_CLASS_LONG is ignored: FASTEN_AUDIT_RETENTION_OVERRIDE also sets class long, and the override wins (2555 days)"
        ]
    );
}

#[test]
fn other_variables_are_strict_too() {
    insta::assert_snapshot!(from(&[("FASTEN_AUDIT_RETENTION_CLASS_SHORT", "30d")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_RETENTION_CLASS_SHORT "30d": expected a whole number of days, e.g. 30"#);
    insta::assert_snapshot!(from(&[("FASTEN_AUDIT_RETENTION_CLASS_MEDIUM", "0")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_RETENTION_CLASS_MEDIUM "0": must be at least 1 day"#);
    insta::assert_snapshot!(from(&[("FASTEN_SYS_RETENTION_DAYS", "99999")]).unwrap_err(), @r#"invalid FASTEN_SYS_RETENTION_DAYS "99999": at most 36500 days (100 years)"#);
    for bad in ["6", "h", "0h", "1.5h", "6 h", "1w", "-1h"] {
        let e = from(&[("FASTEN_RETENTION_SWEEP_INTERVAL", bad)]).unwrap_err();
        assert_eq!(
            e.kind(),
            &ErrorKind::Config {
                var: FASTEN_RETENTION_SWEEP_INTERVAL
            },
            "{bad}"
        );
    }
    insta::assert_snapshot!(from(&[("FASTEN_RETENTION_SWEEP_INTERVAL", "1w")]).unwrap_err(), @r#"invalid FASTEN_RETENTION_SWEEP_INTERVAL "1w": expected a positive whole number and a unit (s, m, h, d), e.g. 6h, or off"#);
    insta::assert_snapshot!(from(&[("FASTEN_AUDIT_LEGAL_HOLD", "ORDER_PLACED,order_lost")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_LEGAL_HOLD entry "order_lost": a code must match ^[A-Z][A-Z0-9_]*$, e.g. ORDER_PLACED,USER_DELETED"#);
    insta::assert_snapshot!(from(&[("FASTEN_AUDIT_LEGAL_HOLD_TENANTS", "a b")]).unwrap_err(), @r#"invalid FASTEN_AUDIT_LEGAL_HOLD_TENANTS entry "a b": expected 1-128 characters of [A-Za-z0-9._:-], e.g. tenant-a,tenant-b"#);
}

#[test]
fn batches_shrink_while_slow_and_grow_back() {
    let ms = Duration::from_millis;
    // Aimed at TARGET_HOLD (10 ms) from the rate seen.
    assert_eq!(next_batch(1000, ms(30), 1000), 333);
    assert_eq!(next_batch(500, ms(20), 1000), 250);
    assert_eq!(next_batch(400, ms(10), 1000), 400);
    // Never below MIN_BATCH, never above max, at most double.
    assert_eq!(next_batch(60, ms(30), 1000), 50);
    assert_eq!(next_batch(100, ms(1), 1000), 200);
    assert_eq!(next_batch(100, Duration::ZERO, 1000), 200);
    assert_eq!(next_batch(1000, ms(1), 1000), 1000);
    assert_eq!(next_batch(1000, ms(30), 10), 10);
}

#[test]
fn setters_are_validated_at_build() {
    let err = Config::new()
        .service_id("s")
        .node_id("n")
        .audit_retention_class(RetentionClass::Short, 0)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::Config {
            var: FASTEN_AUDIT_RETENTION_CLASS_SHORT
        }
    );
    let c = Config::new()
        .audit_retention_override("medium=1y")
        .unwrap()
        .retention_sweep_interval(None);
    assert_eq!(c.retention.days(RetentionClass::Medium), 365);
    assert_eq!(c.retention.sweep_interval(), None);
}
