//! The library's layers: data flows one way (config → data/nn → methods → train → launch →
//! report), so a module may name only modules below it. Fails, naming the file and the line,
//! when a file imports from a higher layer — for example `src/config/` reading the method
//! registry, the circle the registry's `methods::validate` replaced.

use std::path::{Path, PathBuf};

/// Modules by layer: a module may use modules of a strictly lower layer (and its own).
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("rng", 1),
    ("logging", 1),
    ("provenance", 1),
    ("device", 1),
    ("eval", 1),
    ("store", 2),
    ("config", 3),
    ("data", 4),
    ("nn", 4),
    ("methods", 5),
    ("features", 5),
    ("train", 6),
    ("launch", 7),
    ("report", 8),
    ("tools", 9),
    ("ui", 9),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a line names through `crate::x` or `crate::{x, y::z}`.
fn named_modules(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        } else {
            found.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs");
        // The binary's side (main.rs, cli.rs, commands/) may call anything in the library.
        let Some(own) = layer(top) else { continue };
        checked += 1;
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for m in named_modules(line) {
                if let Some(l) = layer(&m) {
                    if m != top && l >= own {
                        violations.push(format!(
                            "src/{}:{}: `{top}` (layer {own}) uses `crate::{m}` (layer {l})",
                            rel.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} library files found under src/"
    );
    assert!(
        violations.is_empty(),
        "imports from a higher layer:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_check_sees_grouped_and_plain_imports() {
    assert_eq!(named_modules("use crate::methods::spec;"), ["methods"]);
    assert_eq!(
        named_modules("use crate::{config::RunConfig, methods};"),
        ["config", "methods"]
    );
    assert_eq!(named_modules("let x = 1;"), Vec::<String>::new());
}
