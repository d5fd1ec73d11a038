use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SALES: &str = "\
domain: sales
emitter: order-service
codes:
  ORDER_PLACED:
    category: order
    action: create
    severity: warn
    description: An order was placed
    retention_class: long
    detail_passthrough_keys: [order_id]
    domain: sales

  # A comment between codes.
  ORDER_CANCELLED:
    category: order
    action: delete
";

fn fails<T: fmt::Debug>(r: Result<T, CodeError>) -> CodeError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// The error of loading `yaml` as `sales.codes.yaml` into a new registry,
/// which must stay empty.
fn load_err(yaml: &str) -> CodeError {
    let registry = Registry::new();
    let err = fails(registry.load_str("sales.codes.yaml", yaml));
    assert!(registry.is_empty(), "a failed load added codes");
    err
}

/// The error and each cause after it, `a: b: c`, as a reporter that walks
/// [`source`](std::error::Error::source) prints it (anyhow's `{:#}`).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn one_code(fields: &str) -> String {
    format!(
        "domain: sales\ncodes:\n  ORDER_PLACED:\n    category: order\n    action: create\n{fields}"
    )
}

#[test]
fn good_file_loads_and_get_returns_the_metadata() -> TestResult {
    let registry = Registry::new();
    assert_eq!(registry.load_str("sales.codes.yaml", SALES)?, 2);
    assert_eq!(registry.len(), 2);

    let info = registry.get("ORDER_PLACED").ok_or("missing")?;
    assert_eq!(info.code(), "ORDER_PLACED");
    assert_eq!(info.domain(), "sales");
    assert_eq!(info.emitter(), Some("order-service"));
    assert_eq!(
        *info.meta(),
        Meta::new("order", "create")
            .severity(Severity::Warn)
            .description("An order was placed")
            .retention(RetentionClass::Long)
            .with_keys(["order_id"])
    );
    assert_eq!(
        *info.origin(),
        Origin::File {
            path: "sales.codes.yaml".into(),
            line: 4
        }
    );

    // Absent optional fields take their defaults.
    let info = registry.get("ORDER_CANCELLED").ok_or("missing")?;
    assert_eq!(*info.meta(), Meta::new("order", "delete"));
    assert_eq!(info.origin().to_string(), "sales.codes.yaml:14");
    assert!(registry.get("ORDER_LOST").is_none());
    Ok(())
}

impl Meta {
    fn with_keys(mut self, keys: impl IntoIterator<Item = &'static str>) -> Self {
        self.detail_passthrough_keys = keys.into_iter().map(Into::into).collect();
        self
    }
}

#[test]
fn meta_builders_set_fields() {
    let meta = Meta::new("user", "update")
        .retention(RetentionClass::Long)
        .pii(["user_id"]);
    assert!(meta.pii_in_detail);
    assert_eq!(meta.retention_class, RetentionClass::Short);
    assert_eq!(meta.detail_passthrough_keys, ["user_id"]);
    assert_eq!(meta.severity, Severity::Info);
    assert_eq!(meta.description, "");
}

#[test]
fn origin_displays_as_path_line_or_code() {
    let file = Origin::File {
        path: "codes/sales.codes.yaml".into(),
        line: 12,
    };
    assert_eq!(file.to_string(), "codes/sales.codes.yaml:12");
    assert_eq!(Origin::Code.to_string(), "code");
}

#[test]
fn rejects_malformed_codes() {
    let err = load_err(&SALES.replace("ORDER_PLACED:", "order-placed:"));
    insta::assert_snapshot!(err, @r#"sales.codes.yaml:4: code "order-placed" must match ^[A-Z][A-Z0-9_]*$ (e.g. ORDER_PLACED)"#);
    assert_eq!(err.line(), Some(4));
    assert_eq!(err.code(), Some("order-placed"));

    let err = load_err(&SALES.replace("ORDER_CANCELLED:", "orderCancelled:"));
    insta::assert_snapshot!(err, @r#"sales.codes.yaml:14: code "orderCancelled" must match ^[A-Z][A-Z0-9_]*$ (e.g. ORDER_CANCELLED)"#);

    // No suggestion when there is no obvious one.
    let err = load_err(&SALES.replace("ORDER_PLACED:", "'9LIVES':"));
    insta::assert_snapshot!(err, @r#"sales.codes.yaml:4: code "9LIVES" must match ^[A-Z][A-Z0-9_]*$"#);

    let err = fails(Registry::new().register("sales", [("", Meta::new("a", "b"))]));
    insta::assert_snapshot!(err, @r#"register(sales): code "" must match ^[A-Z][A-Z0-9_]*$"#);
}

#[test]
fn rejects_duplicate_codes_in_one_file_naming_both_lines() {
    let yaml = format!("{SALES}  ORDER_PLACED:\n    category: order\n    action: create\n");
    let err = load_err(&yaml);
    insta::assert_snapshot!(err, @"sales.codes.yaml:17: code ORDER_PLACED: duplicate, first declared at sales.codes.yaml:4");
    assert_eq!(err.line(), Some(17));
    assert_eq!(err.path(), Some(Path::new("sales.codes.yaml")));
}

#[test]
fn rejects_duplicate_codes_across_files() -> TestResult {
    let registry = Registry::new();
    registry.load_str("sales.codes.yaml", SALES)?;
    let billing = "\
domain: billing
codes:
  INVOICE_SENT:
    category: invoice
    action: create
  ORDER_PLACED:
    category: order
    action: create
";
    let err = fails(registry.load_str("billing.codes.yaml", billing));
    insta::assert_snapshot!(err, @"billing.codes.yaml:6: code ORDER_PLACED: duplicate, first declared at sales.codes.yaml:4");
    // All or nothing: the good code of the failed file is not there.
    assert!(registry.get("INVOICE_SENT").is_none());
    assert_eq!(registry.len(), 2);

    // Loading the same file twice is a duplicate too.
    let err = fails(registry.load_str("sales.codes.yaml", SALES));
    insta::assert_snapshot!(err, @"sales.codes.yaml:4: code ORDER_PLACED: duplicate, first declared at sales.codes.yaml:4");
    Ok(())
}

#[test]
fn rejects_duplicates_between_code_and_files() -> TestResult {
    let registry = Registry::new();
    registry.register("sales", [("ORDER_PLACED", Meta::new("order", "create"))])?;
    let err = fails(registry.load_str("sales.codes.yaml", SALES));
    insta::assert_snapshot!(err, @"sales.codes.yaml:4: code ORDER_PLACED: duplicate, first declared in rust code (domain sales)");

    let registry = Registry::new();
    registry.load_str("sales.codes.yaml", SALES)?;
    let err = fails(registry.register(
        "shop",
        [
            ("CART_FILLED", Meta::new("cart", "update")),
            ("ORDER_CANCELLED", Meta::new("order", "delete")),
        ],
    ));
    insta::assert_snapshot!(err, @"register(shop): code ORDER_CANCELLED: duplicate, first declared at sales.codes.yaml:14");
    assert!(registry.get("CART_FILLED").is_none());
    assert_eq!(err.code(), Some("ORDER_CANCELLED"));
    assert_eq!(err.path(), None);
    Ok(())
}

#[test]
fn rejects_duplicates_within_one_register_call() {
    let registry = Registry::new();
    let err = fails(registry.register(
        "sales",
        [
            ("ORDER_PLACED", Meta::new("order", "create")),
            ("ORDER_PLACED", Meta::new("order", "create")),
        ],
    ));
    insta::assert_snapshot!(err, @"register(sales): code ORDER_PLACED: duplicate, first declared earlier in this register call");
    assert!(registry.is_empty());
}

#[test]
fn builtin_codes_are_known_to_every_registry_and_reserved() {
    let registry = Registry::new();
    for code in [AUDIT_RETENTION_SWEPT, AUDIT_SUBJECT_ERASED] {
        let info = registry.get(code).expect("built in");
        assert_eq!(info.domain(), "audit");
        assert_eq!(info.meta().retention_class, RetentionClass::Long);
    }
    for code in [TOOL_CALLED, MODEL_CALLED, AGENT_HANDOFF] {
        let info = registry.get(code).expect("built in");
        assert_eq!(info.domain(), "agent");
        assert_eq!(info.meta().retention_class, RetentionClass::Medium);
    }
    assert!(registry.is_empty(), "built-ins are not listed");
    let err = fails(registry.register("tools", [(TOOL_CALLED, Meta::new("tool", "call"))]));
    insta::assert_snapshot!(err, @"register(tools): code TOOL_CALLED: reserved, a built-in code of fasten (domain agent); choose another name");
    let err = fails(registry.register(
        "audit",
        [(AUDIT_RETENTION_SWEPT, Meta::new("retention", "erase"))],
    ));
    insta::assert_snapshot!(err, @"register(audit): code AUDIT_RETENTION_SWEPT: reserved, a built-in code of fasten (domain audit); choose another name");
    assert!(registry.is_empty());
}

#[test]
fn rejects_malformed_domains() {
    let err = load_err(&SALES.replace("domain: sales\nemitter", "domain: Sales\nemitter"));
    insta::assert_snapshot!(err, @r#"sales.codes.yaml:1: domain "Sales" must match ^[a-z][a-z0-9_]*$ (e.g. sales)"#);

    let err = fails(Registry::new().register("order-service", [("A", Meta::new("a", "b"))]));
    insta::assert_snapshot!(err, @r#"register(order-service): domain "order-service" must match ^[a-z][a-z0-9_]*$ (e.g. order_service)"#);
}

#[test]
fn domain_must_match_the_file_name() -> TestResult {
    let registry = Registry::new();
    let err = fails(registry.load_str("codes/billing.codes.yaml", SALES));
    insta::assert_snapshot!(err, @r#"codes/billing.codes.yaml:1: domain "sales" must match the file name (expected "billing")"#);
    // Other names are not checked.
    assert_eq!(registry.load_str("codes/shop.yaml", SALES)?, 2);
    Ok(())
}

#[test]
fn code_domain_must_equal_the_files() {
    let err = load_err(&one_code("    domain: billing\n"));
    insta::assert_snapshot!(err, @r#"sales.codes.yaml:6: code ORDER_PLACED: domain "billing" must equal the file's domain "sales""#);
}

#[test]
fn rejects_empty_required_values() {
    let err =
        load_err("domain: sales\ncodes:\n  ORDER_PLACED:\n    category: ''\n    action: create\n");
    insta::assert_snapshot!(err, @"sales.codes.yaml:4: code ORDER_PLACED: category must not be empty");

    let err =
        load_err("domain: sales\ncodes:\n  ORDER_PLACED:\n    category: order\n    action: ' '\n");
    insta::assert_snapshot!(err, @"sales.codes.yaml:5: code ORDER_PLACED: action must not be empty");

    let err = load_err(&one_code("    detail_passthrough_keys: [id, '']\n"));
    insta::assert_snapshot!(err, @"sales.codes.yaml:6: code ORDER_PLACED: detail_passthrough_keys must not hold an empty key");

    let err = load_err(&SALES.replace("emitter: order-service", "emitter: ''"));
    insta::assert_snapshot!(err, @"sales.codes.yaml:2: emitter must not be empty");

    let err = fails(Registry::new().register("sales", [("ORDER_PLACED", Meta::new("order", ""))]));
    insta::assert_snapshot!(err, @"register(sales): code ORDER_PLACED: action must not be empty");
}

#[test]
fn rejects_missing_and_unknown_fields() {
    let err = load_err("domain: sales\ncodes:\n  ORDER_PLACED:\n    action: create\n");
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:4:5: cannot parse the code file: codes.ORDER_PLACED: missing field `category` at line 4 column 5");

    let err = load_err(&one_code("    colour: red\n"));
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:6:5: cannot parse the code file: codes.ORDER_PLACED: unknown field `colour`, expected one of `category`, `action`, `severity`, `description`, `retention_class`, `pii_in_detail`, `detail_passthrough_keys`, `domain` at line 6 column 5");

    let err = load_err(&format!("owner: team\n{SALES}"));
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:1:1: cannot parse the code file: unknown field `owner`, expected one of `domain`, `emitter`, `codes`");

    let err = load_err("domain: sales\n");
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:1:1: cannot parse the code file: missing field `codes`");

    let err = load_err(&one_code("    category: user\n"));
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:4:5: cannot parse the code file: codes.ORDER_PLACED: duplicate field `category` at line 4 column 5");
}

#[test]
fn rejects_bad_values_showing_the_good_ones() {
    let err = load_err(&one_code("    severity: loud\n"));
    insta::assert_snapshot!(chain(&err), @r#"sales.codes.yaml:6:15: cannot parse the code file: codes.ORDER_PLACED.severity: invalid severity "loud": expected one of debug, info, warn, error, critical at line 6 column 15"#);

    let err = load_err(&one_code("    retention_class: forever\n"));
    insta::assert_snapshot!(chain(&err), @r#"sales.codes.yaml:6:22: cannot parse the code file: codes.ORDER_PLACED.retention_class: invalid retention_class "forever": expected one of short, medium, long at line 6 column 22"#);

    let err = load_err(&one_code("    pii_in_detail: maybe\n"));
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:6:20: cannot parse the code file: codes.ORDER_PLACED.pii_in_detail: invalid type: string \"maybe\", expected a boolean at line 6 column 20");

    let err = load_err(
        "domain: sales\ncodes:\n  ORDER_PLACED:\n    category: [order]\n    action: create\n",
    );
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:4:15: cannot parse the code file: codes.ORDER_PLACED.category: invalid type: sequence, expected a string at line 4 column 15");

    let err = load_err("domain: sales\ncodes: [ORDER_PLACED]\n");
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:2:8: cannot parse the code file: codes: invalid type: sequence, expected a mapping from code to its metadata at line 2 column 8");
}

/// Issue 22: `Display` says what failed and `source()` carries the cause,
/// so a reporter that walks the chain says the cause once.
#[test]
fn issue_22_code_error_prints_its_cause_once() -> TestResult {
    let err = load_err(&one_code("    severity: loud\n"));
    assert_eq!(
        err.to_string(),
        "sales.codes.yaml:6:15: cannot parse the code file"
    );
    let cause = std::error::Error::source(&err).ok_or("a yaml error has a source")?;
    let cause = cause.to_string();
    assert!(cause.contains(r#"invalid severity "loud""#), "{cause}");
    assert_eq!(chain(&err).matches(&cause).count(), 1, "{}", chain(&err));
    assert_eq!(chain(&err).matches("invalid severity").count(), 1);
    // What the bindings show: the same one line.
    assert_eq!(err.report(), chain(&err));

    // Wrapped in the crate's error (FASTEN_CODES at start-up), whose
    // Display prints each cause after its own message: still once.
    let dir = tempfile::tempdir()?;
    #[cfg(feature = "sqlite")]
    {
        let path = dir.path().join("sales.codes.yaml");
        std::fs::write(&path, one_code("    severity: loud\n"))?;
        let dsn = format!("sqlite:///{}", dir.path().join("a.db").display());
        let err = crate::Config::new()
            .service_id("svc")
            .node_id("node-1")
            .audit_dsn(crate::Dsn::parse("FASTEN_AUDIT_DSN", &dsn)?)
            .codes([path])
            .build()
            .err()
            .ok_or("a bad code file fails start-up")?;
        assert_eq!(err.kind(), &crate::ErrorKind::Codes);
        assert_eq!(
            err.to_string().matches("invalid severity").count(),
            1,
            "{err}"
        );
        assert_eq!(
            err.to_string()
                .matches("cannot parse the code file")
                .count(),
            1,
            "{err}"
        );
    }

    // An unreadable file: the I/O error once.
    let err = fails(Registry::new().load_file(dir.path().join("gone.codes.yaml")));
    assert_eq!(
        chain(&err).matches("No such file or directory").count(),
        1,
        "{}",
        chain(&err)
    );
    Ok(())
}

#[test]
fn yaml_syntax_errors_name_the_file_and_keep_the_source() {
    let err = load_err(
        "domain: sales\ncodes:\n  ORDER_PLACED:\n    category: order\n      action: create\n",
    );
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:5:13: cannot parse the code file: mapping values are not allowed in this context at line 5 column 13");
    let source =
        std::error::Error::source(&err).and_then(|s| s.downcast_ref::<serde_norway::Error>());
    assert!(source.is_some(), "source is the yaml error");
    assert_eq!(err.line(), Some(5));

    // The parser's context keeps its own position.
    let err = load_err("domain: sales\ncodes:\n  ORDER_PLACED: {category: order\n");
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:4:1: cannot parse the code file: did not find expected ',' or '}' at line 4 column 1, while parsing a flow mapping at line 3 column 17");

    let err = load_err("");
    insta::assert_snapshot!(chain(&err), @"sales.codes.yaml:1:1: cannot parse the code file: missing field `domain`");
}

#[test]
fn pii_forces_short_retention() -> TestResult {
    let registry = Registry::new();
    registry.load_str("sales.codes.yaml", &one_code("    pii_in_detail: true\n"))?;
    let info = registry.get("ORDER_PLACED").ok_or("missing")?;
    assert_eq!(info.meta().retention_class, RetentionClass::Short);
    assert!(info.meta().pii_in_detail);

    let ok = Registry::new();
    ok.load_str(
        "sales.codes.yaml",
        &one_code("    pii_in_detail: true\n    retention_class: short\n"),
    )?;

    assert_eq!(info.declared_retention_class(), None);

    // An explicit longer class is accepted and kept short: what the
    // file declared stays visible (`fasten dump --format json`).
    for (yaml, declared) in [
        (
            "    pii_in_detail: true\n    retention_class: long\n",
            RetentionClass::Long,
        ),
        (
            "    retention_class: medium\n    pii_in_detail: true\n",
            RetentionClass::Medium,
        ),
    ] {
        let registry = Registry::new();
        registry.load_str("sales.codes.yaml", &one_code(yaml))?;
        let info = registry.get("ORDER_PLACED").ok_or("missing")?;
        assert_eq!(info.meta().retention_class, RetentionClass::Short);
        assert_eq!(info.declared_retention_class(), Some(declared));
    }

    // In Rust too, whatever the order of `pii` and `retention`.
    let registry = Registry::new();
    registry.register(
        "sales",
        [
            (
                "A",
                Meta::new("a", "b")
                    .retention(RetentionClass::Long)
                    .pii(["id"]),
            ),
            (
                "B",
                Meta::new("a", "b")
                    .pii(["id"])
                    .retention(RetentionClass::Long),
            ),
        ],
    )?;
    for code in ["A", "B"] {
        let info = registry.get(code).ok_or("missing")?;
        assert_eq!(info.meta().retention_class, RetentionClass::Short, "{code}");
    }
    assert_eq!(
        registry
            .get("B")
            .ok_or("missing")?
            .declared_retention_class(),
        Some(RetentionClass::Long)
    );
    Ok(())
}

#[test]
fn codes_are_sorted_by_code() -> TestResult {
    let registry = Registry::new();
    registry.register(
        "z",
        [("ZED", Meta::new("a", "b")), ("ALPHA", Meta::new("a", "b"))],
    )?;
    registry.load_str("sales.codes.yaml", SALES)?;
    let codes: Vec<_> = registry
        .codes()
        .iter()
        .map(|c| c.code().to_owned())
        .collect();
    assert_eq!(codes, ["ALPHA", "ORDER_CANCELLED", "ORDER_PLACED", "ZED"]);
    assert_eq!(registry.len(), 4);
    assert!(!registry.is_empty());
    assert!(Registry::new().codes().is_empty());
    Ok(())
}

#[test]
fn empty_code_map_loads_nothing() -> TestResult {
    let registry = Registry::new();
    assert_eq!(
        registry.load_str("sales.codes.yaml", "domain: sales\ncodes: {}\n")?,
        0
    );
    // A bare `codes:` (null) reads as an empty mapping too.
    assert_eq!(
        registry.load_str("sales.codes.yaml", "domain: sales\ncodes:\n")?,
        0
    );
    assert!(registry.is_empty());
    Ok(())
}

#[test]
fn flow_style_codes_load_with_the_codes_line() -> TestResult {
    let registry = Registry::new();
    let yaml = "domain: sales\ncodes: {ORDER_PLACED: {category: order, action: create}}\n";
    registry.load_str("sales.codes.yaml", yaml)?;
    let info = registry.get("ORDER_PLACED").ok_or("missing")?;
    assert_eq!(info.origin().to_string(), "sales.codes.yaml:2");

    // Errors about such a code go without a line rather than a wrong one.
    let err = fails(registry.load_str(
        "shop.codes.yaml",
        "domain: shop\ncodes: {ORDER_PLACED: {category: order, action: create}}\n",
    ));
    insta::assert_snapshot!(err, @"shop.codes.yaml: code ORDER_PLACED: duplicate, first declared at sales.codes.yaml:2");
    Ok(())
}

#[test]
fn quoted_and_commented_keys_are_found() -> TestResult {
    let registry = Registry::new();
    let yaml = "\
# Sales codes.
---
domain: sales   # the domain
codes:

    \"ORDER_PLACED\":   # quoted
        category: order
        action: create
    'ORDER_CANCELLED' :
        category: order
        action: delete
";
    registry.load_str("sales.codes.yaml", yaml)?;
    let line = |code| registry.get(code).map(|c| c.origin().to_string());
    assert_eq!(line("ORDER_PLACED").as_deref(), Some("sales.codes.yaml:6"));
    assert_eq!(
        line("ORDER_CANCELLED").as_deref(),
        Some("sales.codes.yaml:9")
    );
    Ok(())
}

#[test]
fn registry_is_shared_across_threads() -> TestResult {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Registry>();
    assert_send_sync::<CodeError>();

    let registry = Registry::new();
    registry.load_str("sales.codes.yaml", SALES)?;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let registry = registry.clone();
                s.spawn(move || {
                    let code = format!("THREAD_{t}");
                    registry
                        .register("threads", [(code.clone(), Meta::new("thread", "run"))])
                        .map_err(|e| e.to_string())?;
                    for _ in 0..1000 {
                        let found =
                            registry.get("ORDER_PLACED").is_some() && registry.get(&code).is_some();
                        if !found {
                            return Err("lookup failed".to_owned());
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "thread panicked".to_owned())?)
    })?;
    assert_eq!(registry.len(), 6);
    Ok(())
}

#[test]
fn global_is_one_registry() {
    assert!(std::ptr::eq(Registry::global(), Registry::global()));
}

#[test]
fn load_file_checks_the_domain_against_the_file_name() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sales.codes.yaml");
    std::fs::write(
        &path,
        SALES
            .replace("domain: sales\n", "domain: billing\n")
            .replace("domain: sales", "domain: billing"),
    )?;
    let registry = Registry::new();
    let err = fails(registry.load_file(&path));
    let text = err
        .to_string()
        .replace(&dir.path().display().to_string(), "$DIR");
    insta::assert_snapshot!(text, @r#"$DIR/sales.codes.yaml:1: domain "billing" must match the file name (expected "sales")"#);
    assert!(registry.is_empty());

    std::fs::write(&path, SALES)?;
    assert_eq!(registry.load_file(&path)?, 2);
    let info = registry.get("ORDER_PLACED").ok_or("missing")?;
    assert_eq!(*info.origin(), Origin::File { path, line: 4 });
    Ok(())
}

#[test]
fn load_file_reports_unreadable_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err = fails(Registry::new().load_file(dir.path().join("gone.codes.yaml")));
    let path = dir.path().display().to_string();
    insta::assert_snapshot!(err.to_string().replace(&path, "$DIR"), @"$DIR/gone.codes.yaml: cannot read file");
    insta::assert_snapshot!(chain(&err).replace(&path, "$DIR"), @"$DIR/gone.codes.yaml: cannot read file: No such file or directory (os error 2)");
    let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        source.map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
    Ok(())
}
