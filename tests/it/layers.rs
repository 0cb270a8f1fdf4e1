//! Arrows point down: the top-level modules of `src/` must not import each other in a
//! circle. The graph is read the way the repository's before-stop hook reads it: every
//! `crate::<module>` path in a module's non-test code (each file up to its first
//! `#[cfg(test)]`) is an edge from the file's top-level module to `<module>`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One `crate::<to>` mention: where it is.
#[derive(Debug, Clone)]
struct Site {
    file: PathBuf,
    line: usize,
    text: String,
}

type Graph = BTreeMap<String, BTreeMap<String, Vec<Site>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file belongs to: `src/plan/desired.rs` → `plan`, `src/lib.rs` → `lib`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// `crate::name` occurrences in `line`: the identifiers after each `crate::` that does not
/// continue another identifier (`foo_crate::x` is not one).
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(i) = line[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let name: String = line[from..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
            out.push(name);
        }
    }
    out
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let from = top_module(src, &f);
        if from == "main" || from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, line) in code.lines().enumerate() {
            for to in crate_paths(line) {
                if to != from {
                    g.entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_default()
                        .push(Site {
                            file: f.strip_prefix(src.parent().unwrap()).unwrap().into(),
                            line: i + 1,
                            text: line.trim().to_string(),
                        });
                }
            }
        }
    }
    g
}

/// A shortest path of modules from `from` to `to` (both included), if any.
fn path(g: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut prev: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from.to_string()]);
    let mut seen = BTreeSet::from([from.to_string()]);
    while let Some(m) = queue.pop_front() {
        if m == to {
            let mut p = vec![m];
            while let Some(b) = prev.get(p.last().unwrap()) {
                p.push(b.clone());
            }
            p.reverse();
            return Some(p);
        }
        for n in g.get(&m).into_iter().flat_map(|e| e.keys()) {
            if seen.insert(n.clone()) {
                prev.insert(n.clone(), m.clone());
                queue.push_back(n.clone());
            }
        }
    }
    None
}

/// Every cycle, one per edge that closes one (`a → b` where `b` reaches `a`), each told as
/// its modules and the `use` lines of each of its arrows.
fn cycles(g: &Graph) -> Vec<String> {
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut out = Vec::new();
    for (a, edges) in g {
        for b in edges.keys() {
            let Some(back) = path(g, b, a) else { continue };
            let mut cycle = vec![a.clone()];
            cycle.extend(back);
            // The same cycle found from another of its edges: report it once.
            let mut key = cycle[..cycle.len() - 1].to_vec();
            key.sort();
            if !reported.insert(key) {
                continue;
            }
            let mut text = format!("cycle: {}\n", cycle.join(" -> "));
            for w in cycle.windows(2) {
                text += &format!("  {} -> {}:\n", w[0], w[1]);
                for s in &g[&w[0]][&w[1]] {
                    text += &format!("    {}:{}: {}\n", s.file.display(), s.line, s.text);
                }
            }
            out.push(text);
        }
    }
    out
}

#[test]
fn top_level_modules_import_each_other_in_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    // The graph is really read: the executor's module uses the plan it executes.
    assert!(
        g.get("provider").is_some_and(|e| e.contains_key("plan")),
        "the module graph read from {} misses provider -> plan: {g:?}",
        src.display()
    );
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "modules of src/ import each other in a circle (arrows must point down: cli -> ops \
         -> plan/provider/consensus -> state/topology/chain/crypto/rpc/render; move what \
         both sides need to the lower one):\n{}",
        found.join("\n")
    );
}

#[test]
fn a_cycle_is_found_and_located() {
    let site = |line| Site {
        file: "src/x.rs".into(),
        line,
        text: "use crate::y;".into(),
    };
    let mut g = Graph::new();
    g.entry("a".into())
        .or_default()
        .insert("b".into(), vec![site(3)]);
    g.entry("b".into())
        .or_default()
        .insert("c".into(), vec![site(5)]);
    g.entry("c".into())
        .or_default()
        .insert("d".into(), vec![site(7)]);
    assert!(cycles(&g).is_empty());
    g.entry("c".into())
        .or_default()
        .insert("a".into(), vec![site(9)]);
    let found = cycles(&g);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("cycle: a -> b -> c -> a\n"),
        "{}",
        found[0]
    );
    for l in [3, 5, 9] {
        assert!(
            found[0].contains(&format!("src/x.rs:{l}: use crate::y;")),
            "{}",
            found[0]
        );
    }
    assert!(!found[0].contains("src/x.rs:7:"), "{}", found[0]);
    assert_eq!(
        crate_paths("y_crate::b, crate::Foo crate::c_d(crate::e)"),
        ["c_d", "e"]
    );
}
