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

/// The workspace crates a manifest depends on for real (not dev or build): every
/// `[dependencies]` and `[target.*.dependencies]` table, keys, `[dependencies.NAME]` tables and
/// renames (`package = "…"`) alike.
fn workspace_deps(manifest: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(manifest).unwrap();
    let mut in_deps = false;
    let mut out = BTreeSet::new();
    let mut add = |name: &str| {
        if name.starts_with("lvs") {
            out.insert(name.to_string());
        }
    };
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']');
            let (table, named) = match header.split_once("dependencies") {
                Some((before, after)) => (before, after.strip_prefix('.')),
                None => (header, None),
            };
            in_deps = header.contains("dependencies")
                && (table.is_empty() || table.starts_with("target."))
                && !header.contains("dev-dependencies")
                && !header.contains("build-dependencies");
            if let (true, Some(name)) = (in_deps, named) {
                add(name);
            }
            continue;
        }
        if !in_deps {
            continue;
        }
        add(line.split(['.', '=', ' ']).next().unwrap_or(""));
        if let Some((_, rest)) = line.split_once("package") {
            add(rest.trim_start_matches([' ', '=', '"']).split('"').next().unwrap_or(""));
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

/// A source file as a module path (`["director", "input"]`) with its code: comments and the
/// test module left out.
struct Source {
    module: Vec<String>,
    text: String,
}

fn sources(dir: &Path, module: &[String], out: &mut Vec<Source>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() && name == "tests" {
            continue;
        } else if path.is_dir() {
            let mut m = module.to_vec();
            m.push(name);
            sources(&path, &m, out);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "tests" {
            let mut m = module.to_vec();
            if !matches!(name.as_str(), "mod" | "lib") {
                m.push(name);
            }
            let text = fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
            let code: Vec<&str> = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect();
            out.push(Source { module: m, text: code.join("\n") });
        }
    }
}

/// A use tree from `text` (what follows `crate::` or a `use `): its paths, each with the name
/// it is known by (the last segment, or an `as` alias).
fn use_tree(text: &[u8], i: &mut usize, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
    let skip_ws = |i: &mut usize| {
        while text.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    let ident = |i: &mut usize| {
        let start = *i;
        while text.get(*i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            *i += 1;
        }
        String::from_utf8_lossy(&text[start..*i]).to_string()
    };
    let mut path = prefix.to_vec();
    loop {
        skip_ws(i);
        if text.get(*i) == Some(&b'{') {
            *i += 1;
            loop {
                skip_ws(i);
                match text.get(*i) {
                    Some(b'}') | None => {
                        *i += 1;
                        return;
                    }
                    Some(b',') => *i += 1,
                    _ => use_tree(text, i, &path, out),
                }
            }
        }
        let seg = ident(i);
        if seg.is_empty() {
            break;
        }
        if seg != "self" {
            path.push(seg);
        }
        if text.get(*i..*i + 2) == Some(b"::") {
            *i += 2;
        } else {
            break;
        }
    }
    let mut name = path.last().cloned().unwrap_or_default();
    skip_ws(i);
    if text.get(*i..*i + 3) == Some(b"as ") {
        *i += 3;
        skip_ws(i);
        name = ident(i);
    }
    out.push((path, name));
}

/// Turns a path as written in module `module` (`super::x`, `self::x`, `crate::x`) into an
/// absolute one; `None` for a path that leaves the crate.
fn absolute(module: &[String], path: &[String], rooms: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let (mut base, mut rest) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("super") => (module[..module.len().saturating_sub(1)].to_vec(), &path[1..]),
        Some("self") => (module.to_vec(), &path[1..]),
        // A plain first segment names a child room of this module, or another crate.
        Some(first) => {
            let mut child = module.to_vec();
            child.push(first.to_string());
            if !rooms.contains(&child) {
                return None;
            }
            (module.to_vec(), path)
        }
        None => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Every absolute path a file names: `crate::…`, `super::…` and `self::…` wherever they stand,
/// with grouped imports opened up.
fn references(src: &Source, rooms: &BTreeSet<Vec<String>>) -> Vec<Vec<String>> {
    let text = src.text.as_bytes();
    let mut out = Vec::new();
    for key in ["crate::", "super::", "self::"] {
        for (start, _) in src.text.match_indices(key) {
            let before = src.text[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut trees = Vec::new();
            use_tree(text, &mut start.clone(), &[], &mut trees);
            out.extend(trees.iter().filter_map(|(p, _)| absolute(&src.module, p, rooms)));
        }
    }
    out
}

/// What each module re-exports: `pub use` (of any visibility) maps `module::name` to the item's
/// absolute path.
fn reexports(srcs: &[Source], rooms: &BTreeSet<Vec<String>>) -> BTreeMap<Vec<String>, Vec<String>> {
    let mut map = BTreeMap::new();
    for s in srcs {
        for (start, _) in s.text.match_indices("use ") {
            let head = s.text[..start].trim_end();
            if !(head.ends_with("pub") || head.ends_with(')') && head.contains("pub(")) {
                continue;
            }
            let mut trees = Vec::new();
            use_tree(s.text.as_bytes(), &mut (start + 4), &[], &mut trees);
            for (path, name) in trees {
                if let Some(target) = absolute(&s.module, &path, rooms) {
                    let mut key = s.module.clone();
                    key.push(name);
                    map.insert(key, target);
                }
            }
        }
    }
    map
}

/// A path with re-exports followed to where the item lives.
fn resolve(mut path: Vec<String>, reexports: &BTreeMap<Vec<String>, Vec<String>>) -> Vec<String> {
    for _ in 0..8 {
        let Some(k) = (1..=path.len()).rev().find(|k| reexports.contains_key(&path[..*k])) else { break };
        let mut target = reexports[&path[..k]].clone();
        target.extend(path[k..].iter().cloned());
        if target == path {
            break;
        }
        path = target;
    }
    path
}

/// Every module path a crate's sources define (files and folders).
fn rooms_of(srcs: &[Source]) -> BTreeSet<Vec<String>> {
    srcs.iter().flat_map(|s| (1..=s.module.len()).map(|k| s.module[..k].to_vec())).collect()
}

/// The cycles among the rooms of each folder of a crate's sources, as `folder: a -> b -> a`.
fn cycles(crate_dir: &str) -> Vec<String> {
    let mut srcs = Vec::new();
    sources(&root().join(crate_dir).join("src"), &[], &mut srcs);
    cycles_in(crate_dir, &srcs)
}

/// Folder → (room → the rooms of the same folder it names).
type Graphs = BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>>;

fn graphs(srcs: &[Source]) -> Graphs {
    let mut graphs = Graphs::new();
    let rooms = rooms_of(srcs);
    let reexports = reexports(srcs, &rooms);
    for s in srcs {
        for r in references(s, &rooms).into_iter().map(|r| resolve(r, &reexports)) {
            // The deepest folder both paths share; the rooms are the next element of each.
            let common = s.module.iter().zip(&r).take_while(|(a, b)| a == b).count();
            let (Some(from), Some(to)) = (s.module.get(common), r.get(common)) else { continue };
            let folder = s.module[..common].to_vec();
            if from != to && rooms.contains(&r[..=common]) {
                graphs.entry(folder).or_default().entry(from.clone()).or_default().insert(to.clone());
            }
        }
    }
    graphs
}

fn cycles_in(crate_dir: &str, srcs: &[Source]) -> Vec<String> {
    let graphs = graphs(srcs);
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
fn the_real_graph_is_seen() {
    let mut srcs = Vec::new();
    sources(&root().join("lvs-core/src"), &[], &mut srcs);
    let g = graphs(&srcs);
    let top = &g[&Vec::new()];
    // Edges the core is known to have: the check sees the real imports.
    for (from, to) in [("director", "conn"), ("config", "director"), ("persist", "conn"), ("sched", "time")] {
        assert!(top.get(from).is_some_and(|t| t.contains(to)), "{from} -> {to} not seen: {top:?}");
    }
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
        src(&[], "pub use director::{Director, Verdict as V};"),
        src(&["config", "rules"], "use super::listing::sorted;"),
        src(&["config", "listing"], "use crate::config::rules::netmask_text; // crate::addr"),
        src(&["director"], "use crate::wire::Frame;\nuse crate::stats::{Counters, est::{Rate, Ewma}};"),
        src(&["wire"], "fn f() -> crate::director::Verdict"),
        // Through the crate root's re-export, under an alias.
        src(&["stats"], "fn g(v: crate::V) {}"),
        src(&["stats", "est"], "use super::super::addr::Af;"),
        src(&["addr"], "use crate::wire::Frame;"),
    ];
    let found = cycles_in("x", &tree);
    for cycle in [
        "x/config: listing -> rules -> listing",
        "x/: director -> wire -> director",
        "x/: stats -> director -> stats",
        // stats::est names `super::super::addr`: stats -> addr.
        "x/: addr -> wire -> director -> stats -> addr",
    ] {
        assert!(found.contains(&cycle.to_string()), "{cycle} in {found:?}");
    }
}

#[test]
fn references_open_up_groups() {
    let tree =
        [src(&["config", "ipvsadm", "rules"], "use super::format::{a, b::{c, d}};\nuse crate::{dest::X, wire};")];
    let refs = references(&tree[0], &rooms_of(&tree));
    let refs: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(
        refs,
        [
            "dest::X",
            "wire",
            "config::ipvsadm::format::a",
            "config::ipvsadm::format::b::c",
            "config::ipvsadm::format::b::d"
        ]
    );
}

#[test]
fn dependencies_are_read_in_every_form() {
    let manifest = std::env::temp_dir().join(format!("lvs-house-{}.toml", std::process::id()));
    let text = "[dependencies]\nlvs-core.workspace = true\nlibc = \"0.2\"\nsched = { package = \"lvs-sched\", path = \"x\" }\n\
                [dev-dependencies]\nlvs-testing = \"1\"\n[target.'cfg(unix)'.dependencies]\nlvs-unix = \"1\"\n\
                [dependencies.lvs-table]\npath = \"y\"\n";
    fs::write(&manifest, text).unwrap();
    let deps = workspace_deps(&manifest);
    fs::remove_file(&manifest).unwrap();
    let want: BTreeSet<String> = ["lvs-core", "lvs-sched", "lvs-unix", "lvs-table"].map(String::from).into();
    assert_eq!(deps, want);
}
