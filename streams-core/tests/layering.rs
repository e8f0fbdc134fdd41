//! The module layering that `lib.rs` states, checked against the sources: each top-level module
//! of streams-core uses only modules of the levels below its own, so the modules form no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The levels of `lib.rs`'s "Layering" list, lowest first.
const LEVELS: &[&[&str]] = &[
    &["metrics", "record", "task_id", "time", "window"],
    &["serde", "assignment"],
    &["error"],
    &["handlers"],
    &["config", "collector"],
    &["state"],
    &["processor"],
    &["topology"],
    &["task"],
    &["query"],
    &["runtime", "test_driver", "internals"],
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The top-level modules that the code (not the comments) of `module` names through `crate::`.
fn uses(src: &Path, module: &str) -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&src.join(format!("{module}.rs")), &mut files);
    rust_files(&src.join(module), &mut files);
    let mut used = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::X, b};`: each item's first segment.
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let first = item.trim().split("::").next().unwrap_or("");
                    used.insert(first.trim().to_string());
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                used.insert(name);
            }
        }
    }
    used.remove(module);
    used
}

#[test]
fn each_module_uses_only_the_levels_below_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let level: BTreeMap<&str, usize> = LEVELS
        .iter()
        .enumerate()
        .flat_map(|(i, ms)| ms.iter().map(move |m| (*m, i)))
        .collect();
    // Every module of the crate has a level: a new module must be placed in the list.
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        let module = name.strip_suffix(".rs").unwrap_or(&name).to_string();
        if module != "lib" {
            assert!(
                level.contains_key(module.as_str()),
                "module `{module}` is missing from the layering list (lib.rs and this test)"
            );
        }
    }
    let mut wrong = Vec::new();
    for (module, own) in &level {
        for used in uses(&src, module) {
            match level.get(used.as_str()) {
                Some(l) if l < own => {}
                Some(_) => wrong.push(format!("{module} uses {used}")),
                None => {} // crate-root items (re-exports, `Result`)
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken: {wrong:?}");
}
