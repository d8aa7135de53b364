//! The layering that `src/lib.rs` declares in its module doc holds in the source: no module
//! imports from a higher layer, and no modules import each other in a circle. The layer table
//! is read from that doc, so it is written down once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, as the module doc names them.
const LAYERS: [&str; 3] = ["**Stages**", "**The engine**", "**The faces**"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules that `lib.rs` declares.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_string())
        })
        .collect()
}

/// Module name → layer index, from the bullets of the module doc. A backticked word counts
/// only when it names a declared module, so the doc may quote other words too.
fn layer_table(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let mut table = BTreeMap::new();
    let mut layer = None;
    for line in lib.lines().map_while(|line| line.strip_prefix("//!")) {
        let line = line.trim();
        if line.starts_with("- ") {
            layer = LAYERS.iter().position(|name| line.contains(name));
        }
        let Some(layer) = layer else { continue };
        for name in line.split('`').skip(1).step_by(2) {
            if modules.contains(name) {
                let previous = table.insert(name.to_string(), layer);
                assert!(
                    previous.is_none_or(|p| p == layer),
                    "`{name}` is named in two layers of the lib.rs doc"
                );
            }
        }
    }
    table
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/extract/markup/scan.rs` is `extract::markup::scan`.
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules a file names through `crate::` or enough `super::`s to reach the
/// crate root, comments left out.
fn imports(file: &Path, source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let depth = module_path(file).len();
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            found.extend(names_after(&code[at + "crate::".len()..]));
        }
        let mut rest = code;
        while let Some(at) = rest.find("super::") {
            let mut tail = &rest[at..];
            let mut climbs = 0;
            while let Some(next) = tail.strip_prefix("super::") {
                climbs += 1;
                tail = next;
            }
            if climbs >= depth {
                found.extend(names_after(tail));
            }
            rest = tail;
        }
    }
    found.retain(|name| modules.contains(name));
    found
}

/// The first path segment, or every first segment of a `{a, b::c}` group.
fn names_after(path: &str) -> Vec<String> {
    let word = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    match path.strip_prefix('{') {
        Some(group) => group
            .split(',')
            .map(|item| word(item.split("::").next().unwrap_or_default()))
            .collect(),
        None => vec![word(path)],
    }
}

fn import_graph(modules: &BTreeSet<String>) -> Graph {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph = Graph::new();
    for file in files {
        let path = module_path(&file);
        let Some(top) = path.first().filter(|top| modules.contains(*top)) else {
            continue;
        };
        let source = std::fs::read_to_string(&file).expect("read source");
        let targets = graph.entry(top.clone()).or_default();
        for name in imports(&file, &source, modules) {
            if name != *top {
                targets.insert(name);
            }
        }
    }
    graph
}

/// A circle in the graph, as the modules along it, if there is one.
fn find_circle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        trail: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = trail.iter().position(|n| n == node) {
            let mut circle = trail[start..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        trail.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, trail, done) {
                return Some(circle);
            }
        }
        trail.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn lib_rs() -> String {
    std::fs::read_to_string(src().join("lib.rs")).expect("read lib.rs")
}

#[test]
fn every_module_is_in_exactly_one_layer_of_the_lib_rs_doc() {
    let lib = lib_rs();
    let modules = declared_modules(&lib);
    let table = layer_table(&lib, &modules);
    let missing: Vec<_> = modules.iter().filter(|m| !table.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "lib.rs declares modules its doc puts in no layer: {missing:?}"
    );
    assert!(modules.len() > 10, "lib.rs was not read right: {modules:?}");
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let lib = lib_rs();
    let modules = declared_modules(&lib);
    let table = layer_table(&lib, &modules);
    let upward: Vec<String> = import_graph(&modules)
        .iter()
        .flat_map(|(from, targets)| {
            let table = &table;
            targets
                .iter()
                .filter(move |to| table[*to] > table[from])
                .map(move |to| format!("{from} -> {to}"))
        })
        .collect();
    assert!(upward.is_empty(), "imports from a higher layer: {upward:?}");
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let modules = declared_modules(&lib_rs());
    let graph = import_graph(&modules);
    assert!(
        graph.values().map(BTreeSet::len).sum::<usize>() > 20,
        "the import graph was not read right: {graph:?}"
    );
    assert_eq!(find_circle(&graph), None, "an import circle");
}

#[test]
fn the_checks_find_what_they_look_for() {
    let modules: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let file = src().join("a").join("inner.rs");
    let source = "use crate::{b::X, c};\n// crate::a in a comment\nuse super::super::b;\n";
    assert_eq!(
        imports(&file, source, &modules),
        ["b", "c"].map(String::from).into()
    );
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_circle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_circle(&graph),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
    let lib = "//! - **Stages**: `a`, `x`\n//!   and `b`.\n//! - **The engine**: `c`\n";
    let table = layer_table(lib, &modules);
    assert_eq!(table["b"], 0);
    assert_eq!(table["c"], 1);
}
