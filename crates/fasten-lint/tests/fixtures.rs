//! The fixtures: one file per language with covered, uncovered and waived
//! sites, and the exact output expected for them (`UPDATE_EXPECT=1`
//! rewrites the expected files).

use std::path::PathBuf;

use fasten_lint::{Config, Unused, lint_paths};

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).expect("write the expected file");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("read the expected file");
    assert!(
        expected == actual,
        "{} differs (UPDATE_EXPECT=1 rewrites it); actual:\n{actual}",
        path.display()
    );
}

fn report() -> fasten_lint::Report {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("cd to the crate");
    let unused = ["PLAN_CANCELLED", "PLAN_CHANGED", "PLAN_FORGOTTEN"]
        .iter()
        .enumerate()
        .map(|(i, code)| Unused {
            code: (*code).to_owned(),
            path: "billing.codes.yaml".to_owned(),
            line: 3 + 4 * i,
        })
        .collect::<Vec<_>>();
    lint_paths(
        &[PathBuf::from("tests/fixtures")],
        &Config::default(),
        &unused,
    )
    .expect("the fixtures lint")
}

#[test]
fn human_output_is_exact() {
    let report = report();
    assert!(report.failed());
    check(
        "human.txt",
        &format!("{}{}\n", report.human(), report.summary()),
    );
}

#[test]
fn json_output_is_exact() {
    let json = serde_json::to_string_pretty(&report().json()).expect("json");
    check("report.json", &(json + "\n"));
}

#[test]
fn sarif_output_is_exact() {
    let sarif = report().sarif("0.0.0-test");
    assert_eq!(sarif["version"], "2.1.0");
    let text = serde_json::to_string_pretty(&sarif).expect("json");
    check("report.sarif", &(text + "\n"));
}

#[test]
fn a_config_file_extends_the_defaults() -> Result<(), String> {
    let config = Config::from_toml(
        r#"
emit = ["record_audit"]
sql_calls = ["run_sql"]

[[orm]]
name = "Repo"
lang = "python"
methods = ["persist"]
receiver = "repo$"
"#,
    )?;
    let source = "\
def a(db):
    db.run_sql(\"DELETE FROM t\")

def b(repo):
    repo.persist(x)
    record_audit()

def c(cur):
    cur.execute(\"UPDATE t SET a = 1\")
";
    let report = fasten_lint::lint_source("x.py", source, &config)?;
    assert_eq!(
        report.human(),
        "x.py:2:5  DELETE without an audit event (in fn a)\nx.py:9:5  UPDATE without an audit event (in fn c)\n"
    );
    assert_eq!(
        report.summary(),
        "1 file, 3 sites: 1 covered, 0 waived, 2 uncovered"
    );

    let only = Config::from_toml("defaults = false\nsql_calls = [\"run_sql\"]\n")?;
    let report = fasten_lint::lint_source("x.py", source, &only)?;
    assert_eq!(report.sites.len(), 1);

    let err = Config::from_toml("emit_reciever = \"x\"").unwrap_err();
    assert!(err.contains("unknown field `emit_reciever`"), "{err}");
    let err = Config::from_toml(
        "[[orm]]\nname = \"x\"\nlang = \"cobol\"\nmethods = []\nreceiver = \"x\"\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "unknown lang \"cobol\" in [[orm]] x: expected rust, python, go, typescript or javascript"
    );
    Ok(())
}
