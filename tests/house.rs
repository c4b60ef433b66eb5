//! The shape of the house, checked on every test run: dependencies point one way. Between the
//! crates, `lvs-sched` and `lvs-dataplane` use `lvs-core` and nothing else of ours, and the core
//! uses none of them. Inside each crate, the rooms of a folder (its files and sub-folders) never
//! name each other in a circle: `use crate::a` from room `b` and `use crate::b` from room `a` is
//! an import cycle, whatever depth the paths have. Test code (`tests.rs` files and everything
//! after a `#[cfg(test)]`) may reach anywhere and is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace crates named in a manifest's `[dependencies]` table.
fn workspace_deps(manifest: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(manifest).unwrap();
    let mut in_deps = false;
    let mut out = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        let name = line.split(['=', ' ']).next().unwrap_or("");
        if in_deps && name.starts_with("lvs") {
            out.insert(name.to_string());
        }
    }
    out
}

#[test]
fn crates_depend_one_way() {
    let deps = |c: &str| workspace_deps(&root().join(c).join("Cargo.toml"));
    assert_eq!(deps("lvs-core"), BTreeSet::new(), "lvs-core depends on none of ours");
    assert_eq!(deps("lvs-sched"), BTreeSet::from(["lvs-core".to_string()]));
    assert_eq!(deps("lvs-dataplane"), BTreeSet::from(["lvs-core".to_string()]), "an appliance links no test tooling");
}

/// A source file as a module path (`["director", "input"]`) with its non-test text.
struct Source {
    module: Vec<String>,
    text: String,
}

fn sources(dir: &Path, module: &[String], out: &mut Vec<Source>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut m = module.to_vec();
            m.push(name);
            sources(&path, &m, out);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "tests" {
            let mut m = module.to_vec();
            if !matches!(name.as_str(), "mod" | "lib") {
                m.push(name);
            }
            let text = fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            out.push(Source { module: m, text });
        }
    }
}

/// Every absolute module path a file names: `crate::a::b` and `super::x` / `self::x`, with
/// grouped imports (`crate::{a, b::c}`) opened up.
fn references(src: &Source) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let text = &src.text;
    for (start, _) in
        text.match_indices("crate::").chain(text.match_indices("super::")).chain(text.match_indices("self::"))
    {
        if start > 0 && text[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut base: Vec<String> = match &text[start..start + 4] {
            "crat" => Vec::new(),
            "supe" => src.module[..src.module.len().saturating_sub(1)].to_vec(),
            _ => src.module.clone(),
        };
        let rest = &text[start..].split_once("::").unwrap().1;
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        base.extend(path.split("::").filter(|s| !s.is_empty()).map(String::from));
        let group = rest[path.len()..].starts_with('{');
        if group {
            let inner: String = rest[path.len() + 1..].chars().take_while(|c| *c != '}').collect();
            for item in inner.split(',') {
                let mut p = base.clone();
                p.extend(item.trim().split("::").filter(|s| !s.is_empty() && *s != "self").map(String::from));
                out.push(p);
            }
        } else {
            out.push(base);
        }
    }
    out
}

/// The cycles among the rooms of each folder of a crate's sources, as `folder: a -> b -> a`.
fn cycles(crate_dir: &str) -> Vec<String> {
    let mut srcs = Vec::new();
    sources(&root().join(crate_dir).join("src"), &[], &mut srcs);
    cycles_in(crate_dir, &srcs)
}

fn cycles_in(crate_dir: &str, srcs: &[Source]) -> Vec<String> {
    // folder → (room → rooms it names)
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for s in srcs {
        for r in references(s) {
            // The deepest folder both paths share; the rooms are the next element of each.
            let common = s.module.iter().zip(&r).take_while(|(a, b)| a == b).count();
            let (Some(from), Some(to)) = (s.module.get(common), r.get(common)) else { continue };
            let folder = s.module[..common].to_vec();
            let is_room = srcs.iter().any(|x| x.module.len() > common && x.module[..=common] == r[..=common]);
            if from != to && is_room {
                graphs.entry(folder).or_default().entry(from.clone()).or_default().insert(to.clone());
            }
        }
    }
    let mut found = Vec::new();
    for (folder, g) in &graphs {
        for start in g.keys() {
            // Depth-first search for a path back to `start`.
            let mut stack = vec![vec![start.clone()]];
            let mut seen = BTreeSet::new();
            while let Some(path) = stack.pop() {
                let last = path.last().unwrap();
                for next in g.get(last).into_iter().flatten() {
                    if next == start {
                        found.push(format!("{crate_dir}/{}: {} -> {start}", folder.join("/"), path.join(" -> ")));
                    } else if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push(p);
                    }
                }
            }
        }
    }
    found
}

#[test]
fn rooms_import_one_way() {
    for c in ["lvs-core", "lvs-sched", "lvs-dataplane"] {
        let found = cycles(c);
        assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
    }
}

fn src(m: &[&str], text: &str) -> Source {
    Source { module: m.iter().map(|s| s.to_string()).collect(), text: text.into() }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let tree = [
        src(&["config", "rules"], "use super::listing::sorted;"),
        src(&["config", "listing"], "use crate::config::rules::netmask_text;"),
        src(&["director"], "use crate::wire::Frame;"),
        src(&["wire"], "fn f() -> crate::director::Verdict"),
        src(&["addr"], "use crate::wire::Frame;"),
    ];
    let found = cycles_in("x", &tree);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.contains(&"x/config: listing -> rules -> listing".to_string()), "{found:?}");
    assert!(found.contains(&"x/: director -> wire -> director".to_string()), "{found:?}");
}

#[test]
fn references_open_up_groups() {
    let refs =
        references(&src(&["config", "ipvsadm", "rules"], "use super::format::{a, b};\nuse crate::{dest::X, wire};"));
    let refs: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(refs, ["dest::X", "wire", "config::ipvsadm::format::a", "config::ipvsadm::format::b"]);
}
