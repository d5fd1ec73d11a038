//! One file: its functions, the calls in them, and which mutation sites a
//! fasten emit covers.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use tree_sitter::Node;

use crate::Lang;
use crate::config::Config;
use crate::report::{Site, Status};

/// SQL that changes data: the first keyword, or the one after a `WITH`.
static SQL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)^\s*(?:--[^\n]*\n\s*)*(?:WITH\b.*?\b)?(INSERT|UPDATE|DELETE|MERGE)\b")
        .expect("the SQL pattern is valid")
});

/// The waiver marker in a comment.
const WAIVER: &str = "fasten:no-audit";

pub(crate) struct Scanned {
    pub(crate) sites: Vec<Site>,
    /// Identifiers and string contents that could be codes.
    pub(crate) words: BTreeSet<String>,
}

/// A function-like node: a named function or method, or a closure.
struct Func {
    name: Option<String>,
    /// The row its waiver comment sits above (decorators and attributes included).
    row: usize,
    /// Where the node starts: row and 1-based column.
    start: (usize, usize),
    parent: Option<usize>,
    emits: bool,
    /// Names of the functions it calls (nested closures' calls included).
    calls: Vec<String>,
}

/// A site found during the walk; its function is known, its status is not.
struct Found {
    row: usize,
    column: usize,
    label: String,
    rule: String,
    func: Option<usize>,
}

/// A handler registered by a route, resolved once every function is known.
enum Handler {
    /// An inline function: its node id.
    Node(usize),
    /// A function named in the route (`post(create_order)`).
    Name(String),
}

struct Walk<'a> {
    lang: Lang,
    text: &'a str,
    config: &'a Config,
    funcs: Vec<Func>,
    by_node: HashMap<usize, usize>,
    found: Vec<Found>,
    handlers: Vec<(Handler, String)>,
    waivers: HashMap<usize, String>,
    words: BTreeSet<String>,
}

pub(crate) fn scan(path: &str, lang: Lang, text: &str, config: &Config) -> Result<Scanned, String> {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&lang.grammar())
        .map_err(|e| format!("{path}: {e}"))?;
    let tree = parser
        .parse(text, None)
        .ok_or_else(|| format!("{path}: the parser gave up"))?;
    let mut w = Walk {
        lang,
        text,
        config,
        funcs: Vec::new(),
        by_node: HashMap::new(),
        found: Vec::new(),
        handlers: Vec::new(),
        waivers: HashMap::new(),
        words: BTreeSet::new(),
    };
    // Depth first, with an explicit stack: deep expressions do not overflow.
    let mut stack = vec![(tree.root_node(), None::<usize>)];
    while let Some((node, mut current)) = stack.pop() {
        if let Some(name) = w.function_name(node) {
            let row = match node.parent() {
                Some(p) if p.kind() == "decorated_definition" => p.start_position().row,
                _ => node.start_position().row,
            };
            let start = (node.start_position().row, w.column(node.start_position()));
            w.funcs.push(Func {
                name,
                row,
                start,
                parent: current,
                emits: false,
                calls: Vec::new(),
            });
            current = Some(w.funcs.len() - 1);
            w.by_node.insert(node.id(), w.funcs.len() - 1);
        }
        w.visit(node, current);
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        for child in children.into_iter().rev() {
            stack.push((child, current));
        }
    }
    Ok(w.finish(path))
}

impl<'a> Walk<'a> {
    fn text_of(&self, node: Node<'_>) -> &'a str {
        node.utf8_text(self.text.as_bytes()).unwrap_or("")
    }

    /// `Some(name)` when the node is a function (`Some(None)` when anonymous).
    #[allow(clippy::option_option)]
    fn function_name(&self, node: Node<'_>) -> Option<Option<String>> {
        let named = |field: &str| {
            node.child_by_field_name(field)
                .map(|n| self.text_of(n).to_owned())
        };
        match (self.lang.family(), node.kind()) {
            (Lang::Rust, "function_item")
            | (Lang::Python, "function_definition")
            | (Lang::Go, "function_declaration" | "method_declaration")
            | (
                Lang::TypeScript,
                "function_declaration" | "generator_function_declaration" | "method_definition",
            ) => Some(named("name")),
            (Lang::Rust, "closure_expression")
            | (Lang::Python, "lambda")
            | (Lang::Go, "func_literal") => Some(None),
            (Lang::TypeScript, "arrow_function" | "function_expression" | "function") => {
                if let Some(name) = named("name") {
                    return Some(Some(name));
                }
                // `const create = async () => {}`, `{ create: () => {} }`
                let parent = node.parent()?;
                let name = match parent.kind() {
                    "variable_declarator" => parent.child_by_field_name("name"),
                    "pair" => parent.child_by_field_name("key"),
                    "public_field_definition" | "field_definition" => {
                        parent.child_by_field_name("name")
                    }
                    _ => None,
                };
                Some(name.map(|n| self.text_of(n).to_owned()))
            }
            _ => None,
        }
    }

    fn visit(&mut self, node: Node<'_>, current: Option<usize>) {
        let kind = node.kind();
        if kind.contains("comment") {
            let text = self.text_of(node);
            if let Some(at) = text.find(WAIVER) {
                let reason = text[at + WAIVER.len()..]
                    .trim()
                    .trim_end_matches("*/")
                    .trim()
                    .to_owned();
                self.waivers.insert(node.start_position().row, reason);
            }
            return;
        }
        if matches!(
            kind,
            "identifier"
                | "field_identifier"
                | "property_identifier"
                | "type_identifier"
                | "string_content"
                | "string_fragment"
                | "interpreted_string_literal_content"
                | "raw_string_literal_content"
        ) {
            let word = self.text_of(node);
            if word.starts_with(|c: char| c.is_ascii_uppercase()) {
                self.words.insert(word.to_owned());
            }
            return;
        }
        if kind == "decorated_definition" {
            self.decorators(node);
            return;
        }
        let (callee, args) = match (self.lang.family(), kind) {
            (Lang::Python, "call") | (_, "call_expression") => (
                node.child_by_field_name("function"),
                node.child_by_field_name("arguments"),
            ),
            (Lang::Rust, "macro_invocation") => {
                let tokens = node
                    .children(&mut node.walk())
                    .find(|c| c.kind() == "token_tree");
                (node.child_by_field_name("macro"), tokens)
            }
            _ => return,
        };
        let (Some(callee), Some(args)) = (callee, args) else {
            return;
        };
        let (receiver, name) = self.split_callee(callee);
        if let Some(f) = current {
            self.funcs[f].calls.push(name.clone());
        }
        let config = self.config;
        let positional = args
            .named_children(&mut args.walk())
            .filter(|a| !a.kind().contains("comment") && a.kind() != "keyword_argument")
            .count();
        let args: Vec<Node<'_>> = args
            .named_children(&mut args.walk())
            .filter(|a| !a.kind().contains("comment"))
            .map(|a| {
                if a.kind() == "keyword_argument" {
                    a.child_by_field_name("value").unwrap_or(a)
                } else {
                    a
                }
            })
            .collect();

        // An emit.
        if config.emit.contains(&name)
            && (receiver.is_empty() || config.emit_receiver.is_match(&receiver))
        {
            if let Some(f) = current {
                self.funcs[f].emits = true;
            }
            return;
        }
        // SQL that writes.
        if config.sql_calls.contains(&name) {
            let sql = args.iter().find_map(|a| {
                let text = self.string_of(*a)?;
                SQL.captures(&text).map(|c| c[1].to_ascii_uppercase())
            });
            if let Some(keyword) = sql {
                self.site(node, keyword, "sql", current);
                return;
            }
        }
        // An ORM write.
        let family = self.lang.family();
        let orm = config.orm.iter().find(|o| {
            o.lang.is_none_or(|l| l == family)
                && o.methods.contains(&name)
                && !receiver.is_empty()
                && o.receiver.is_match(&receiver)
                && o.max_args.is_none_or(|n| positional <= n)
        });
        if let Some(orm) = orm {
            let short = receiver
                .rsplit(['.', ':'])
                .next()
                .filter(|s| !s.is_empty() && !s.ends_with(')'))
                .unwrap_or("");
            let sep = if callee.kind() == "scoped_identifier" {
                "::"
            } else {
                "."
            };
            let label = if short.is_empty() {
                format!("{name} ({})", orm.name)
            } else {
                format!("{short}{sep}{name} ({})", orm.name)
            };
            self.site(node, label, "orm", current);
            return;
        }
        // A route to a handler.
        self.route(node, &receiver, &name, &args);
    }

    /// `(receiver, name)` of a callee: `conn.execute` → (`conn`, `execute`).
    fn split_callee(&self, callee: Node<'_>) -> (String, String) {
        let callee = if callee.kind() == "generic_function" {
            callee.child_by_field_name("function").unwrap_or(callee)
        } else {
            callee
        };
        let (object, name) = match callee.kind() {
            "field_expression" => ("value", "field"),
            "scoped_identifier" => ("path", "name"),
            "attribute" => ("object", "attribute"),
            "selector_expression" => ("operand", "field"),
            "member_expression" => ("object", "property"),
            _ => return (String::new(), self.text_of(callee).to_owned()),
        };
        let receiver = callee
            .child_by_field_name(object)
            .map(|n| squash(self.text_of(n)))
            .unwrap_or_default();
        let name = callee
            .child_by_field_name(name)
            .map(|n| self.text_of(n).to_owned())
            .unwrap_or_default();
        (receiver, name)
    }

    /// The text of a string literal (the first piece of a concatenation),
    /// without its quotes and prefix.
    fn string_of(&self, node: Node<'_>) -> Option<String> {
        match node.kind() {
            "string_literal"
            | "raw_string_literal"
            | "string"
            | "interpreted_string_literal"
            | "template_string" => {
                let text = self.text_of(node);
                // A prefix (r#, b, f, u, rb …) then the quotes.
                let quote = text.find(['"', '\'', '`'])?;
                let prefix_ok = text[..quote].chars().all(|c| "rRbBfFuU#".contains(c));
                let body = if prefix_ok { &text[quote..] } else { text };
                Some(body.trim_start_matches(['"', '\'', '`']).to_owned())
            }
            "concatenated_string" | "binary_expression" => self.string_of(node.named_child(0)?),
            // Rust macros: the literal inside the token tree.
            "token_tree" => node
                .named_children(&mut node.walk())
                .find_map(|c| self.string_of(c)),
            _ => None,
        }
    }

    fn site(&mut self, node: Node<'_>, label: String, rule: &str, func: Option<usize>) {
        let pos = node.start_position();
        self.found.push(Found {
            row: pos.row,
            column: self.column(pos),
            label,
            rule: rule.to_owned(),
            func,
        });
    }

    /// 1-based column in characters.
    fn column(&self, pos: tree_sitter::Point) -> usize {
        let line = self.text.lines().nth(pos.row).unwrap_or("");
        line.get(..pos.column)
            .map_or(pos.column, |p| p.chars().count())
            + 1
    }

    fn is_route_method(&self, name: &str) -> Option<String> {
        self.config
            .route_methods
            .iter()
            .find(|m| m.eq_ignore_ascii_case(name))
            .map(|m| m.to_ascii_uppercase())
    }

    /// `post(h)`, `app.post('/x', h)`, `r.Post("/x", h)`, `mux.HandleFunc("POST /x", h)`.
    fn route(&mut self, node: Node<'_>, receiver: &str, name: &str, args: &[Node<'_>]) {
        let Some(handler) = args.last().copied() else {
            return;
        };
        let first = args.first().and_then(|a| self.string_of(*a));
        let first = first.map(|s| s.trim_end_matches(['"', '\'', '`']).to_owned());
        let (method, path) = if let Some(method) = self.is_route_method(name) {
            match self.lang.family() {
                // axum: `post(h)`, `get(a).post(b)`, `routing::post(h)`; the path is the `.route` call's.
                Lang::Rust => {
                    if !(receiver.is_empty()
                        || receiver.ends_with(')')
                        || receiver.ends_with("routing"))
                    {
                        return;
                    }
                    (method, self.enclosing_route_path(node))
                }
                _ => match first {
                    Some(path) if args.len() >= 2 && path.starts_with('/') => (method, Some(path)),
                    _ => return,
                },
            }
        } else if self.config.route_patterns.iter().any(|p| p == name)
            && self.lang.family() == Lang::Go
        {
            let Some(pattern) = first else { return };
            let Some((verb, path)) = pattern.split_once(' ') else {
                return;
            };
            match self.is_route_method(verb) {
                Some(method) if verb.chars().all(|c| c.is_ascii_uppercase()) => {
                    (method, Some(path.trim().to_owned()))
                }
                _ => return,
            }
        } else {
            return;
        };
        let label = match path {
            Some(p) => format!("{method} {p} handler"),
            None => format!("{method} handler"),
        };
        if self.function_name(handler).is_some() {
            self.handlers.push((Handler::Node(handler.id()), label));
        } else if matches!(
            handler.kind(),
            "identifier"
                | "field_expression"
                | "scoped_identifier"
                | "selector_expression"
                | "member_expression"
                | "attribute"
        ) {
            let text = self.text_of(handler);
            let name = text.rsplit(['.', ':']).next().unwrap_or(text).to_owned();
            self.handlers.push((Handler::Name(name), label));
        }
    }

    fn enclosing_route_path(&self, node: Node<'_>) -> Option<String> {
        let mut at = node.parent();
        while let Some(n) = at {
            if n.kind() == "call_expression"
                && let Some(callee) = n.child_by_field_name("function")
                && self.split_callee(callee).1 == "route"
            {
                let args = n.child_by_field_name("arguments")?;
                let first = args.named_child(0)?;
                return self
                    .string_of(first)
                    .map(|s| s.trim_end_matches('"').to_owned());
            }
            at = n.parent();
        }
        None
    }

    /// FastAPI and Flask: `@app.post("/x")`, `@app.route("/x", methods=["POST"])`.
    fn decorators(&mut self, node: Node<'_>) {
        let Some(def) = node.child_by_field_name("definition") else {
            return;
        };
        if def.kind() != "function_definition" {
            return;
        }
        for dec in node.named_children(&mut node.walk()) {
            if dec.kind() != "decorator" {
                continue;
            }
            let Some(call) = dec.named_child(0).filter(|c| c.kind() == "call") else {
                continue;
            };
            let (Some(callee), Some(args)) = (
                call.child_by_field_name("function"),
                call.child_by_field_name("arguments"),
            ) else {
                continue;
            };
            let (_, name) = self.split_callee(callee);
            let path = args
                .named_child(0)
                .and_then(|a| self.string_of(a))
                .map(|s| s.trim_end_matches(['"', '\'']).to_owned());
            let methods: Vec<String> = if let Some(m) = self.is_route_method(&name) {
                vec![m]
            } else if self.config.route_patterns.contains(&name) {
                args.named_children(&mut args.walk())
                    .filter(|a| a.kind() == "keyword_argument")
                    .filter(|a| {
                        a.child_by_field_name("name")
                            .is_some_and(|n| self.text_of(n) == "methods")
                    })
                    .filter_map(|a| a.child_by_field_name("value"))
                    .flat_map(|list| {
                        list.named_children(&mut list.walk())
                            .filter_map(|s| self.string_of(s))
                            .collect::<Vec<_>>()
                    })
                    .filter_map(|s| self.is_route_method(s.trim_end_matches(['"', '\''])))
                    .collect()
            } else {
                continue;
            };
            if let Some(method) = methods.first() {
                let label = match &path {
                    Some(p) => format!("{} {p} handler", methods.join("/")),
                    None => format!("{method} handler"),
                };
                self.handlers.push((Handler::Node(def.id()), label));
                return;
            }
        }
    }

    /// The waiver's reason on `row` or in the comments, attributes and
    /// decorators right above it.
    fn waiver(&self, row: usize) -> Option<&String> {
        if let Some(r) = self.waivers.get(&row) {
            return Some(r);
        }
        let lines: Vec<&str> = self.text.lines().collect();
        let mut r = row;
        while r > 0 {
            r -= 1;
            let line = lines.get(r).map_or("", |l| l.trim_start());
            let above = ["//", "#", "/*", "*", "@"]
                .iter()
                .any(|p| line.starts_with(p));
            if !above {
                return None;
            }
            if let Some(reason) = self.waivers.get(&r) {
                return Some(reason);
            }
        }
        None
    }

    fn finish(mut self, path: &str) -> Scanned {
        // Handlers become sites at their function.
        let mut named: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, f) in self.funcs.iter().enumerate() {
            if let Some(n) = &f.name {
                named.entry(n.clone()).or_default().push(i);
            }
        }
        for (handler, label) in std::mem::take(&mut self.handlers) {
            let func = match handler {
                Handler::Node(id) => self.by_node.get(&id).copied(),
                Handler::Name(name) => named.get(&name).and_then(|v| v.first().copied()),
            };
            let Some(func) = func else { continue };
            // Point at the function's name (its first line when anonymous).
            let (row, column) = self
                .handler_position(func)
                .unwrap_or(self.funcs[func].start);
            self.found.push(Found {
                row,
                column,
                label,
                rule: "http".to_owned(),
                func: Some(func),
            });
        }

        // Nested closures' emits and calls count for the functions around them.
        for i in (0..self.funcs.len()).rev() {
            if let Some(p) = self.funcs[i].parent {
                if self.funcs[i].emits {
                    self.funcs[p].emits = true;
                }
                let calls = self.funcs[i].calls.clone();
                self.funcs[p].calls.extend(calls);
            }
        }
        // Covered: emits, or calls a covered function of this file.
        let mut covered: Vec<bool> = self.funcs.iter().map(|f| f.emits).collect();
        loop {
            let mut changed = false;
            for (i, f) in self.funcs.iter().enumerate() {
                if covered[i] {
                    continue;
                }
                let via = f.calls.iter().any(|c| {
                    named
                        .get(c)
                        .is_some_and(|v| v.iter().any(|&j| j != i && covered[j]))
                });
                if via {
                    covered[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }

        let mut sites = Vec::new();
        for found in &self.found {
            let chain: Vec<usize> =
                std::iter::successors(found.func, |&f| self.funcs[f].parent).collect();
            let function = chain.iter().find_map(|&f| self.funcs[f].name.clone());
            let waiver = std::iter::once(found.row)
                .chain(chain.iter().map(|&f| self.funcs[f].row))
                .find_map(|row| self.waiver(row));
            let status = if chain.iter().any(|&f| covered[f]) {
                Status::Covered
            } else {
                match waiver {
                    Some(reason) if !reason.is_empty() => Status::Waived {
                        reason: reason.clone(),
                    },
                    Some(_) => Status::Uncovered {
                        note: Some("the fasten:no-audit waiver needs a reason".to_owned()),
                    },
                    None => Status::Uncovered { note: None },
                }
            };
            sites.push(Site {
                path: path.to_owned(),
                line: found.row + 1,
                column: found.column,
                label: found.label.clone(),
                rule: found.rule.clone(),
                anonymous: function.is_none() && !chain.is_empty(),
                function,
                status,
            });
        }
        Scanned {
            sites,
            words: self.words,
        }
    }

    /// Where a handler function's name is, as (row, 1-based column).
    fn handler_position(&self, func: usize) -> Option<(usize, usize)> {
        let row = self.funcs[func].row;
        let name = self.funcs[func].name.as_deref()?;
        // The name on the function's first lines (after its decorators).
        let lines: Vec<&str> = self.text.lines().collect();
        for (r, line) in lines.iter().enumerate().skip(row).take(8) {
            let trimmed = line.trim_start();
            if trimmed.starts_with('@') || trimmed.starts_with("#[") {
                continue;
            }
            if let Some(at) = find_word(line, name) {
                return Some((r, line[..at].chars().count() + 1));
            }
        }
        None
    }
}

/// The byte offset of `word` in `line` as a whole word.
fn find_word(line: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut start = 0;
    while let Some(at) = line[start..].find(word) {
        let at = start + at;
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return Some(at);
        }
        start = at + word.len();
    }
    None
}

/// Whitespace runs become nothing, so receivers compare as written on one line.
fn squash(text: &str) -> String {
    text.split_whitespace().collect()
}
