//! kspin's modules import one way: IRQL levels and lock classes, then the
//! platform and backend traits, then the validator, then the locks and the
//! scopes, then the backends that implement them. This reads every source
//! file's references to `crate::…` (in `use` lines and in paths) and fails
//! on any that points up a layer, or on a cycle within one.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// The layer of each top-level module (a file `src/x.rs` or a directory
/// `src/x/`); `lib` re-exports everything.
const LAYERS: &[(&str, u32)] = &[
    ("level", 0),
    ("class", 0),
    ("sync", 0),
    ("platform", 1),
    ("backend", 1),
    ("checked", 2),
    ("scope", 3),
    ("lock", 3),
    ("host", 4),
    ("kernel", 4),
    ("lib", 5),
];

fn layer(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|&(_, layer)| layer)
        .unwrap_or_else(|| panic!("module `{module}` has no layer in tests/layering.rs"))
}

/// The code of a file without its comments (doc links are not imports).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `text` refers to through `crate::`.
fn references(text: &str) -> BTreeSet<String> {
    let code = code(text);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b, c::{y, z}}`: the names at depth 1.
            let (mut depth, mut expect_name, mut name) = (1, true, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && (c.is_alphanumeric() || c == '_') && expect_name {
                    name.push(c);
                    continue;
                }
                if !name.is_empty() {
                    found.insert(module_or_lib(std::mem::take(&mut name), true));
                    expect_name = false;
                }
                if depth == 1 && c == ',' {
                    expect_name = true;
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // (`crate::f::<T>` is a function at the root, not a module.)
            let is_path = rest[name.len()..]
                .strip_prefix("::")
                .is_some_and(|after| !after.starts_with('<'));
            found.insert(module_or_lib(name, is_path));
        }
    }
    found
}

/// A lower-case name followed by `::` is a module; anything else
/// (`crate::Lock`, `crate::at_dispatch_level::<…>`) is an item at the crate
/// root, which `lib.rs` re-exports from the module that defines it.
fn module_or_lib(name: String, is_path: bool) -> String {
    if is_path && name.starts_with(|c: char| c.is_lowercase()) {
        return name;
    }
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        if items
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|item| item == name)
        {
            return module.to_owned();
        }
    }
    // `lock_class!` is exported at the root by `#[macro_export]`.
    if name == "lock_class" {
        return "class".to_owned();
    }
    panic!("crate::{name} is neither a module nor re-exported by lib.rs")
}

fn sources(dir: &Path, module: Option<&str>, into: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let owner = module.map_or_else(|| stem.clone(), str::to_owned);
        if path.is_dir() {
            sources(&path, Some(&owner), into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push((owner, fs::read_to_string(&path).expect("read")));
        }
    }
}

#[test]
fn references_parse() {
    let text = "use crate::{\n    backend::{Backend, Mode},\n    class::LockClass, // crate::lock::x\n    scope::DispatchLevel,\n};\nfn f() { crate::checked::g(); crate::Lock::new(); }";
    let names: Vec<_> = references(text).into_iter().collect();
    assert_eq!(names, ["backend", "checked", "class", "lock", "scope"]);
}

#[test]
fn modules_import_one_way() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
        &mut files,
    );
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (module, text) in &files {
        for target in references(text) {
            if target == *module {
                continue;
            }
            if layer(&target) > layer(module) {
                upward.push(format!(
                    "{module} (layer {}) imports {target} (layer {})",
                    layer(module),
                    layer(&target)
                ));
            }
            graph.entry(module.clone()).or_default().insert(target);
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up a layer:\n  {}",
        upward.join("\n  ")
    );
    // No cycle within a layer either.
    fn reaches(
        graph: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        graph
            .get(from)
            .into_iter()
            .flatten()
            .any(|next| next == to || (seen.insert(next.clone()) && reaches(graph, next, to, seen)))
    }
    for module in graph.keys() {
        assert!(
            !reaches(&graph, module, module, &mut BTreeSet::new()),
            "{module} imports itself through a cycle"
        );
    }
}
