//! The engine's module layering, checked on the source text: every `crate::` path in a
//! module points at a module listed below it in `LAYERS` (or at itself), and no two
//! sibling files of a folder import each other, directly or round a cycle. Test modules
//! (from the first `#[cfg(test)]` line on) are left out: tests may use the whole crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, lowest first; a module may use only those on earlier lines. Modules
/// on one line do not use each other.
const LAYERS: &[&[&str]] = &[
    &["secret", "model", "telemetry", "retry", "scaffold"],
    &["mapping"],
    &["config"],
    &["template", "merge", "plugin", "insights"],
    &["kinds"],
    &["derived"],
    &["load", "cache", "history"],
    &["hub"],
    &["api"],
    &["cli"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` with its module path (`["hub", "fanout"]`).
fn files(dir: &Path, prefix: &[String], out: &mut Vec<(PathBuf, Vec<String>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut module = prefix.to_vec();
        if path.is_dir() {
            module.push(name);
            files(&path, &module, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if !matches!(name.as_str(), "mod" | "lib" | "main") {
                module.push(name);
            }
            out.push((path, module));
        }
    }
}

/// The code of a file before its tests, without comment lines (doc links such as
/// [`crate::load`] name a module without using it).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file names from the crate root, as segments (`crate::kinds::SourceSpec`,
/// `crate::{hub, kinds}` and `super::x` resolved against the file's module).
fn references(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let ident = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(0)];
            for item in group.split(',') {
                let path: Vec<String> = item.trim().split("::").map(str::to_owned).collect();
                if path.first().is_some_and(|p| !p.is_empty() && ident(p)) {
                    found.push(path);
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            found.push(rest[..end].split("::").map(str::to_owned).collect());
        }
    }
    for (at, _) in code.match_indices("super::") {
        // Only the first `super::` of a path; `super::super::` is not used here.
        if code[..at].ends_with("super::") || module.is_empty() {
            continue;
        }
        let rest = &code[at + "super::".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let mut path = module[..module.len() - 1].to_vec();
        path.push(rest[..end].to_owned());
        found.push(path);
    }
    found
}

fn all_files() -> Vec<(PathBuf, Vec<String>)> {
    let mut all = Vec::new();
    files(&src(), &[], &mut all);
    all.sort();
    all
}

#[test]
fn imports_point_down() {
    let mut wrong = Vec::new();
    for (path, module) in all_files() {
        let Some(top) = module.first() else { continue };
        let own = rank(top).unwrap_or_else(|| panic!("{top} is not in LAYERS"));
        for reference in references(&code(&path), &module) {
            let target = &reference[0];
            match rank(target) {
                Some(other) if target == top || other < own => {}
                Some(_) => wrong.push(format!("{}: uses crate::{target}", path.display())),
                // Not a module: an item at the crate root (there are none) or a macro.
                None => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn sibling_modules_form_no_cycle() {
    let all = all_files();
    let modules: BTreeSet<Vec<String>> = all.iter().map(|(_, m)| m.clone()).collect();
    // Edges between siblings: a/b uses a/c (through super::c or crate::a::c).
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (path, module) in &all {
        if module.is_empty() {
            continue;
        }
        let parent = &module[..module.len() - 1];
        for reference in references(&code(path), module) {
            if reference.len() <= parent.len() || reference[..parent.len()] != *parent {
                continue;
            }
            let sibling: Vec<String> = reference[..=parent.len()].to_vec();
            if sibling != *module && modules.contains(&sibling) {
                edges.entry(module.clone()).or_default().insert(sibling);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            return Some(stack[at..].to_vec());
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("modules import each other: {}", names.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_what_it_checks() {
    // A mutation check of the checker itself: the paths it reads off real text.
    let code = "use crate::{hub, kinds::SourceSpec};\nuse super::report::Outcome;\nlet x = crate::model::Dataset::Daily;";
    let found = references(code, &["hub".into(), "fanout".into()]);
    let heads: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        heads,
        [
            "hub",
            "kinds::SourceSpec",
            "model::Dataset::Daily",
            "hub::report"
        ]
    );
    assert!(all_files().len() > 40, "the walk finds the engine's files");
}
