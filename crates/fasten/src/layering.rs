//! The layering test: every `crate::` path in `src/` points down (or
//! sideways, within a layer without cycles), never up. Issue 22.
//!
//! A module's layer is its rank in [`LAYERS`]; `lib.rs` sits above them all.
//! Paths through the crate root's re-exports (`crate::Config`) count as
//! paths to the module that defines the name. Comments, doc comments and
//! `#[cfg(test)]` test modules are not read: tests may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may use modules of its own layer or below.
const LAYERS: &[&[&str]] = &[
    // Leaves: the crate's error and every `FASTEN_*` name.
    &["env", "error"],
    // The row contract: pure functions and types, no I/O.
    &[
        "canonical",
        "chain",
        "checkpoint",
        "contract",
        "detail",
        "kind",
        "merkle",
        "quiet",
    ],
    &[
        "code",
        "context",
        "dsn",
        "offload",
        "redact",
        "request_id",
        "tap",
        "trace_context",
    ],
    &["config", "event", "typed"],
    &["store"],
    &["checkpointer", "stream", "verify", "writer"],
    &["otlp", "retention", "ship", "transparency"],
    &["pipeline"],
    // Everything built on a pipeline.
    &[
        "agent",
        "global",
        "http",
        "http_reader",
        "mqtt",
        "nats",
        "query",
        "record",
        "scheduler",
        "summary",
        "sys",
    ],
];

fn rank(module: &str) -> Option<usize> {
    if module == "lib" {
        return Some(LAYERS.len());
    }
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("src/ entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path
                .file_name()
                .is_some_and(|n| n != "tests.rs" && n != "layering.rs")
        {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/code/yaml.rs` → `code`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src/");
    let first = rel
        .components()
        .next()
        .expect("a file")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The lines of a file that are code outside test modules, comments cut.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if line.starts_with("#[cfg(test)]") {
            // A test module is skipped to its closing brace; a test-only
            // `mod x;` file is skipped by name (tests.rs) or read as usual.
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                j += 1;
            }
            let next = lines.get(j).map_or("", |l| l.trim_start());
            if (next.starts_with("mod ") || next.starts_with("pub(crate) mod "))
                && next.ends_with('{')
            {
                let mut depth = 0i64;
                while j < lines.len() {
                    depth += lines[j].matches('{').count() as i64;
                    depth -= lines[j].matches('}').count() as i64;
                    j += 1;
                    if depth <= 0 {
                        break;
                    }
                }
                i = j;
                continue;
            }
        }
        if !line.starts_with("//") {
            out.push((i + 1, lines[i].to_owned()));
        }
        i += 1;
    }
    out
}

/// The names `lib.rs` re-exports, and the module each comes from.
fn root_names() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let mut names = BTreeMap::new();
    let mut statement = String::new();
    for (_, line) in code_lines(&text) {
        let line = line.trim();
        if statement.is_empty() && !line.starts_with("pub use ") {
            continue;
        }
        statement.push_str(line);
        statement.push(' ');
        if !line.ends_with(';') {
            continue;
        }
        let path = statement["pub use ".len()..].trim().trim_end_matches(';');
        if let Some((module, rest)) = path.split_once("::") {
            let rest = rest.trim().trim_start_matches('{').trim_end_matches('}');
            for name in rest.split(',') {
                let name = name.trim();
                let name = name.rsplit("::").next().unwrap_or(name);
                if !name.is_empty() {
                    names.insert(name.to_owned(), module.to_owned());
                }
            }
        }
        statement.clear();
    }
    names
}

/// Every module named after `crate::` in `code`, including each of a
/// `crate::{a, b::c}` group.
fn targets(code: &str, roots: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(ident(item.trim()));
        } else {
            out.push(ident(rest));
        }
    }
    out.into_iter()
        .filter(|m| !m.is_empty() && m != "self")
        .map(|m| roots.get(&m).cloned().unwrap_or(m))
        .collect()
}

#[test]
fn issue_22_imports_never_point_up() {
    let roots = root_names();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut upward = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let from = module_of(path);
        let from_rank =
            rank(&from).unwrap_or_else(|| panic!("module {from} has no layer in LAYERS"));
        let text = std::fs::read_to_string(path).expect("readable");
        for (line_no, line) in code_lines(&text) {
            for to in targets(&line, &roots) {
                if to == from {
                    continue;
                }
                let to_rank = rank(&to).unwrap_or_else(|| {
                    panic!(
                        "{}:{line_no}: crate::{to} has no layer in LAYERS",
                        path.display()
                    )
                });
                graph.entry(from.clone()).or_default().insert(to.clone());
                if to_rank > from_rank {
                    upward.push(format!(
                        "{}:{line_no}: {from} (layer {from_rank}) uses {to} (layer {to_rank})",
                        path.strip_prefix(src()).unwrap_or(path).display()
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up:\n{}",
        upward.join("\n")
    );
    // Within a layer, no cycle either.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            panic!("import cycle: {} -> {node}", stack[at..].join(" -> "));
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done);
        }
        stack.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_layering_test_reads_groups_and_root_names() {
    let roots: BTreeMap<String, String> = [("Config".to_owned(), "config".to_owned())].into();
    assert_eq!(
        targets(
            "use crate::{chain::Row, store::{self, Store}}; let c: crate::Config;",
            &roots
        ),
        ["chain", "store", "config"]
    );
    assert!(targets("let s = \"sqlite:///a.db\"; my_crate::x();", &roots).is_empty());
}
