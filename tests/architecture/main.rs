//! The shape of the code, checked on every run: in each crate of the workspace, dependencies
//! among top-level modules point one way (no cycle); the core and the simulator use no HTTP; and
//! no function grows past 120 lines. See `ARCHITECTURE.md` for the layers these checks keep.

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The source roots of the workspace's crates: the server, the core, the simulator.
fn crate_roots() -> Vec<(&'static str, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    vec![
        ("taizhang", root.join("server/src")),
        ("taizhang-core", root.join("server/core/src")),
        ("taizhang-simulate", root.join("server/simulate/src")),
    ]
}

/// The longest a function may be. Tables the code generates or holds as data are not functions.
const MAX_FUNCTION_LINES: usize = 120;

/// Functions already over the limit when the check came in, with their length then. They may
/// shrink, not grow; once one is under the limit its entry must go.
const LONG_FUNCTIONS: &[(&str, usize)] = &[("bin/build-fixtures.rs::main", 190)];

/// Every `.rs` file under `root`, with its path relative to it.
fn rust_files(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.push((rel, text));
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to (`surveys/store.rs` → `surveys`), or `None` for the
/// crate roots and the extra binaries.
fn top_module(rel: &str) -> Option<String> {
    if rel == "lib.rs" || rel == "main.rs" || rel.starts_with("bin/") {
        return None;
    }
    let first = rel.split('/').next().unwrap_or(rel);
    Some(first.trim_end_matches(".rs").to_owned())
}

/// The top-level modules a source text names through `crate::`, outside comments: paths
/// (`crate::ledger::cache`), grouped imports (`use crate::{db, domain::Role}`) and paths inside
/// macro input and attributes, which a syntax tree would not show.
fn references(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded {
            continue; // `taizhang_crate::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if depth == 1 && item_start && (c.is_alphabetic() || c == '_') => {
                        found.insert(ident_at(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn ident_at(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Module → module → the files that make the edge.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn module_graph(root: &Path) -> Graph {
    let files = rust_files(root);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _)| top_module(rel))
        .collect();
    let mut graph = Graph::new();
    for (rel, text) in &files {
        let Some(from) = top_module(rel) else {
            continue;
        };
        let edges = graph.entry(from.clone()).or_default();
        for to in references(text) {
            if to != from && modules.contains(&to) {
                edges.entry(to).or_default().insert(rel.clone());
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

fn describe(graph: &Graph, component: &[String]) -> String {
    let mut lines = vec![format!(
        "{} modules: {}",
        component.len(),
        component.join(", ")
    )];
    for from in component {
        for (to, files) in graph.get(from).into_iter().flatten() {
            if component.contains(to) {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                lines.push(format!("  {from} -> {to}  ({})", files.join(", ")));
            }
        }
    }
    lines.join("\n")
}

#[test]
fn no_crate_s_top_level_modules_have_a_cycle() {
    let mut report = Vec::new();
    for (name, root) in crate_roots() {
        let graph = module_graph(&root);
        assert!(graph.len() > 5, "the module graph of {name} was not read");
        for cycle in cycles(&graph) {
            report.push(format!("{name}: {}", describe(&graph, &cycle)));
        }
    }
    assert!(
        report.is_empty(),
        "dependencies among top-level modules must point one way (ARCHITECTURE.md); cycles:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_core_and_the_simulator_know_nothing_of_http() {
    let mut problems = Vec::new();
    for (name, root) in crate_roots().into_iter().skip(1) {
        for (rel, text) in rust_files(&root) {
            // The error enum's mapping to problem+json is the one tie to actix in the core.
            if !(name == "taizhang-core" && rel == "error.rs") && text.contains("actix_web") {
                problems.push(format!("{name}: {rel} uses actix_web"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "services take typed values and return domain values; HTTP stays in the server:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_planted_back_edge_is_found() {
    let (_, core) = &crate_roots()[1];
    let mut graph = module_graph(core);
    assert!(cycles(&graph).is_empty());
    // The lowest module naming a capability that depends on it closes a loop.
    graph
        .entry("domain".into())
        .or_default()
        .entry("surveys".into())
        .or_default()
        .insert("planted.rs".into());
    let found = cycles(&graph);
    assert!(
        found
            .iter()
            .any(|c| c.contains(&"domain".to_owned()) && c.contains(&"surveys".to_owned())),
        "{found:?}"
    );
}

#[test]
fn references_are_read_from_paths_groups_and_macros_but_not_comments() {
    let text = "use crate::{db::{self, Db}, domain::Role};\n\
                use crate::ledger::cache;\n\
                #[schema(value_type = crate::surveys::Kind)]\n\
                // crate::console is only mentioned\n\
                let x = taizhang_crate::y;\n";
    let found: Vec<String> = references(text).into_iter().collect();
    assert_eq!(found, ["db", "domain", "ledger", "surveys"]);
}

/// Every function and method with a body, by `file::Type::name`, and its length in lines
/// from `fn` to the closing brace.
struct Lengths<'a> {
    file: &'a str,
    owner: Vec<String>,
    found: Vec<(String, usize)>,
}

impl Lengths<'_> {
    fn record(&mut self, name: &syn::Ident, start: proc_macro2::Span, block: &syn::Block) {
        let lines = block.brace_token.span.close().end().line + 1 - start.start().line;
        let mut path = vec![self.file.to_owned()];
        path.extend(self.owner.iter().cloned());
        path.push(name.to_string());
        self.found.push((path.join("::"), lines));
    }
}

impl<'ast> Visit<'ast> for Lengths<'_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.record(&f.sig.ident, f.sig.fn_token.span, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.record(&f.sig.ident, f.sig.fn_token.span, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.record(&f.sig.ident, f.sig.fn_token.span, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let owner = match &*i.self_ty {
            syn::Type::Path(p) => p
                .path
                .segments
                .last()
                .map_or_else(|| "impl".to_owned(), |s| s.ident.to_string()),
            _ => "impl".to_owned(),
        };
        self.owner.push(owner);
        syn::visit::visit_item_impl(self, i);
        self.owner.pop();
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.owner.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.owner.pop();
    }
}

fn function_lengths(root: &Path) -> Vec<(String, usize)> {
    let mut all = Vec::new();
    for (rel, text) in rust_files(root) {
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel} does not parse: {e}"));
        let mut lengths = Lengths {
            file: &rel,
            owner: Vec::new(),
            found: Vec::new(),
        };
        lengths.visit_file(&file);
        all.extend(lengths.found);
    }
    all
}

#[test]
fn no_function_grows_past_the_limit() {
    let mut problems = Vec::new();
    let lengths: Vec<(String, usize)> = crate_roots()
        .iter()
        .flat_map(|(_, root)| function_lengths(root))
        .collect();
    assert!(lengths.len() > 500, "the functions were not read");
    let known: BTreeMap<&str, usize> = LONG_FUNCTIONS.iter().copied().collect();
    for (name, lines) in &lengths {
        match known.get(name.as_str()) {
            _ if *lines <= MAX_FUNCTION_LINES => {}
            Some(&allowed) if *lines <= allowed => {}
            Some(&allowed) => problems.push(format!(
                "{name}: {lines} lines, longer than the {allowed} it had; split it"
            )),
            None => problems.push(format!(
                "{name}: {lines} lines, over the limit of {MAX_FUNCTION_LINES}; split it"
            )),
        }
    }
    for (name, allowed) in LONG_FUNCTIONS {
        let now = lengths.iter().find(|(n, _)| n == name).map(|(_, l)| *l);
        if now.is_none_or(|l| l <= MAX_FUNCTION_LINES) {
            problems.push(format!(
                "{name} (allowed {allowed}) is gone or within the limit: remove its entry"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
