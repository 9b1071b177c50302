//! House rules of docs/architecture.md that a test can check on the source tree.
//!
//! Files depend one way: within one crate no two files import each other, directly
//! or around a loop (`a.rs` uses `b.rs`, `b.rs` uses `c.rs`, `c.rs` uses `a.rs`). A
//! `crate::`, `super::` or `self::` path names the file of the longest module prefix
//! it spells; paths to the crate root (its re-exports) and test modules (after
//! `#[cfg(test)]`) do not count, nor do comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// A module path, `[]` for the crate root.
type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file: before its test module, without comment lines.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `crate::`/`super::`/`self::` path in `code`, as `(anchor, segments)`; a
/// brace group (`super::{a::b, c}`) gives one path per member, one level deep.
fn paths(code: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_ident(chars[i - 1]);
        let anchor = ["crate", "super", "self"].into_iter().find(|a| {
            starts_word
                && chars[i..].starts_with(&a.chars().collect::<Vec<_>>())
                && chars[i + a.len()..].starts_with(&[':', ':'])
        });
        let Some(anchor) = anchor else {
            i += 1;
            continue;
        };
        let mut j = i + anchor.len();
        let mut segments = Vec::new();
        while chars[j..].starts_with(&[':', ':']) {
            j += 2;
            if chars.get(j) == Some(&'{') {
                let end = chars[j..]
                    .iter()
                    .position(|&c| c == '}')
                    .map_or(chars.len(), |e| j + e);
                let group: String = chars[j + 1..end].iter().collect();
                for member in group.split(',') {
                    let member = member.split(" as ").next().unwrap_or_default().trim();
                    if member.is_empty() || member.contains('{') {
                        continue;
                    }
                    let mut path = segments.clone();
                    path.extend(member.split("::").map(|s| s.trim().to_owned()));
                    found.push((anchor.to_owned(), path));
                }
                j = end;
                segments.clear();
                break;
            }
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            segments.push(chars[start..j].iter().collect());
        }
        if !segments.is_empty() {
            found.push((anchor.to_owned(), segments));
        }
        i = j.max(i + 1);
    }
    found
}

/// The file-level dependency graph of the crate whose sources are `src`.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let texts: BTreeMap<Module, String> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("read source");
            (module_of(src, f), code(&text))
        })
        .collect();
    let modules: BTreeSet<&Module> = texts.keys().collect();
    let mut edges = BTreeMap::new();
    for (module, text) in &texts {
        let mut targets = BTreeSet::new();
        for (anchor, segments) in paths(text) {
            let mut path: Module = match anchor.as_str() {
                "crate" => Vec::new(),
                "self" => module.clone(),
                _ => module[..module.len().saturating_sub(1)].to_vec(),
            };
            let mut rest = segments.as_slice();
            while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
                path.pop();
                rest = tail;
            }
            path.extend(rest.iter().cloned());
            // The longest prefix naming a file; the root alone (re-exports) is no edge.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p));
            if let Some(target) = target.filter(|t| t != module) {
                targets.insert(target);
            }
        }
        edges.insert(module.clone(), targets);
    }
    edges
}

/// A loop through `graph`, as the modules on it, if there is one.
fn find_cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = stack.iter().position(|m| m == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn crate_sources() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut sources = Vec::new();
    for group in ["crates", "bins"] {
        let mut dirs: Vec<_> = std::fs::read_dir(root.join(group))
            .expect("crates and bins")
            .map(|e| e.expect("dir entry").path().join("src"))
            .filter(|src| src.is_dir())
            .collect();
        dirs.sort();
        sources.extend(dirs);
    }
    sources
}

#[test]
fn no_file_of_a_crate_imports_itself_around_a_loop() {
    let sources = crate_sources();
    assert!(sources.len() >= 10, "every crate and binary: {sources:?}");
    let mut loops = Vec::new();
    for src in &sources {
        if let Some(cycle) = find_cycle(&graph(src)) {
            let names: Vec<String> = cycle
                .iter()
                .map(|m| {
                    if m.is_empty() {
                        "lib".to_owned()
                    } else {
                        m.join("/")
                    }
                })
                .collect();
            loops.push(format!("{}: {}", src.display(), names.join(" -> ")));
        }
    }
    assert!(
        loops.is_empty(),
        "import loops between files:\n{}",
        loops.join("\n")
    );
}

#[test]
fn the_checker_sees_a_loop_and_the_paths_it_is_made_of() {
    let found =
        paths("use super::{conn::ConnInfo, shared::Address as A};\nlet x = crate::a::b(self::c);");
    let found: Vec<String> = found
        .into_iter()
        .map(|(anchor, path)| format!("{anchor}::{}", path.join("::")))
        .collect();
    assert_eq!(
        found,
        [
            "super::conn::ConnInfo",
            "super::shared::Address",
            "crate::a::b",
            "self::c"
        ]
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use a::A;\n").expect("lib");
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").expect("a");
    std::fs::write(
        src.join("b.rs"),
        "// crate::a in a comment is no edge\npub struct B;\n",
    )
    .expect("b");
    assert_eq!(find_cycle(&graph(src)), None);
    std::fs::write(src.join("b.rs"), "use super::a::A;\npub struct B;\n").expect("b");
    let cycle = find_cycle(&graph(src)).expect("a loop");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
}
