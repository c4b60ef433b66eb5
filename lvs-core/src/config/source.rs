//! Where a daemon's configuration text comes from and how what is read points back at it:
//! the [`Source`] of files (the core reads none itself), glob and brace patterns as
//! keepalived's `include` takes them, the [`Origin`] of every item (file and line), and the
//! [`Warning`]s and [`ConfigError`]s that name them.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Where configuration files come from: the core cannot open files, so the caller hands it
/// their text. The facade's `lvs::files::FsSource` reads the filesystem; [`MemSource`] serves
/// files held in memory.
pub trait Source {
    /// The whole text of the file at `path`.
    ///
    /// # Errors
    /// Why it could not be read, in the caller's words.
    fn read(&mut self, path: &str) -> Result<String, String>;

    /// The paths matching `pattern` (`*`, `?`, `[...]` within a path component and `{a,b}`
    /// alternatives), sorted; empty when nothing matches.
    fn glob(&mut self, pattern: &str) -> Vec<String>;
}

/// Files held in memory, by path: for tests, fuzzing and firmware that carries its
/// configuration in flash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemSource {
    files: BTreeMap<String, String>,
}

impl MemSource {
    /// No files.
    pub fn new() -> Self {
        MemSource::default()
    }

    /// The same source with one more file.
    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.files.insert(path.to_string(), text.to_string());
        self
    }
}

impl Source for MemSource {
    fn read(&mut self, path: &str) -> Result<String, String> {
        self.files.get(path).cloned().ok_or_else(|| String::from("no such file"))
    }

    fn glob(&mut self, pattern: &str) -> Vec<String> {
        let patterns = expand_braces(pattern);
        self.files.keys().filter(|path| patterns.iter().any(|p| path_matches(p, path))).cloned().collect()
    }
}

/// The most alternatives one brace pattern may expand to; past it the rest are dropped, so a
/// pattern like `{a,b}{a,b}{a,b}…` cannot take unbounded memory.
pub const MAX_BRACE_EXPANSION: usize = 256;

/// `{a,b}` alternatives expanded as the C shell does, innermost groups included, in order:
/// `x{1,2{a,b}}y` gives `x1y`, `x2ay`, `x2by`. A brace without its partner is taken literally.
/// At most [`MAX_BRACE_EXPANSION`] patterns come back.
pub fn expand_braces(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out);
    out
}

fn expand_into(pattern: &str, out: &mut Vec<String>) {
    if out.len() >= MAX_BRACE_EXPANSION {
        return;
    }
    let Some((open, close, commas)) = first_group(pattern) else {
        out.push(pattern.to_string());
        return;
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut start = open + 1;
    for end in commas.into_iter().chain([close]) {
        expand_into(&format!("{head}{}{tail}", &pattern[start..end]), out);
        start = end + 1;
    }
}

/// The first balanced `{...}` group with a comma at its own level: its bounds and the commas.
fn first_group(p: &str) -> Option<(usize, usize, Vec<usize>)> {
    let bytes = p.as_bytes();
    for (open, _) in p.match_indices('{') {
        let (mut depth, mut commas) = (0usize, Vec::new());
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        if commas.is_empty() {
                            break;
                        }
                        return Some((open, i, commas));
                    }
                }
                b',' if depth == 1 => commas.push(i),
                _ => {}
            }
        }
    }
    None
}

/// Whether `path` matches a glob `pattern` (no braces) component by component: `*` and `?`
/// never match a `/`, and a leading `.` of a component is matched only by a literal `.`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let (mut ps, mut ns) = (pattern.split('/'), path.split('/'));
    loop {
        match (ps.next(), ns.next()) {
            (None, None) => return true,
            (Some(p), Some(n)) if component_matches(p, n) => {}
            _ => return false,
        }
    }
}

/// Whether one path component `name` matches `pattern` (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`).
pub fn component_matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point for the last `*` (linear in practice).
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => class_match(&p, pi, n[ni]),
            Some(c) if *c == n[ni] => Some(pi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A `[...]` class at `p[start]` against `c`: the index after the class when it matches.
/// An unterminated `[` is a literal.
fn class_match(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    // The class ends at the first `]` after its first member (a `]` first is a member).
    let end = match p.get(i + 1..).and_then(|rest| rest.iter().position(|x| *x == ']')) {
        Some(k) => i + 1 + k,
        None => return (c == '[').then_some(start + 1),
    };
    let set = &p[i..end];
    let (mut hit, mut j) = (false, 0);
    while j < set.len() {
        if j + 2 < set.len() && set[j + 1] == '-' {
            hit |= (set[j]..=set[j + 2]).contains(&c);
            j += 3;
        } else {
            hit |= set[j] == c;
            j += 1;
        }
    }
    (hit != negate).then_some(end + 1)
}

/// The directory part of a path (`a/b/c.conf` → `a/b`, `c.conf` → ``), as `include`
/// resolves relative names against.
pub fn dir_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| if i == 0 { "/" } else { &path[..i] })
}

/// `name` relative to directory `dir` (an absolute `name` stays as it is), with `.` and `..`
/// resolved as written (`/etc/k/conf.d/../x` is `/etc/k/x`).
pub fn join(dir: &str, name: &str) -> String {
    let full = if name.starts_with('/') || dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    };
    let absolute = full.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Where something was read: the index of its file in the configuration's file list and the
/// 1-based line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// Index into the file list of what was read (0 = the main file).
    pub file: u32,
    /// 1-based line number.
    pub line: u32,
}

/// A keyword or value read but not acted on: the library does not implement it (or not that
/// form of it), and says so instead of dropping it silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file it is in.
    pub file: String,
    /// The 1-based line.
    pub line: u32,
    /// The keyword.
    pub keyword: String,
    /// What the library does instead.
    pub message: String,
}

impl core::fmt::Display for Warning {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file, self.line, self.keyword, self.message)
    }
}

/// What kind of problem makes a configuration unusable: one per class of fault, so that an
/// application can tell a typo from a missing file or a refusal without reading the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed text: an unterminated string, a stray or missing brace, a missing or
    /// unexpected word, a required setting left out.
    Syntax,
    /// A value of the wrong form or out of its range.
    Value,
    /// A name that refers to nothing (a group, instance, script or interface), or an include
    /// that leads back to a file being read.
    Reference,
    /// Something defined or listed twice.
    Duplicate,
    /// A form the library does not implement and cannot ignore without changing what the file
    /// means (`~SEQ`, a tunnel type other than ipip, a host name to resolve).
    Unsupported,
    /// A file that cannot be read, or a checked `include` that matches nothing.
    Read,
    /// A bound passed: bytes, files, include depth, nesting, line length, table size.
    Limit,
    /// What the director, the health monitor or the VRRP group refuses.
    Refused,
}

impl ErrorKind {
    /// Number of kinds.
    pub const COUNT: usize = 8;

    /// All kinds, in order.
    pub const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::Syntax,
        ErrorKind::Value,
        ErrorKind::Reference,
        ErrorKind::Duplicate,
        ErrorKind::Unsupported,
        ErrorKind::Read,
        ErrorKind::Limit,
        ErrorKind::Refused,
    ];

    /// Its slot, for an application that counts errors by kind.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Value => "value",
            ErrorKind::Reference => "reference",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Read => "read",
            ErrorKind::Limit => "limit",
            ErrorKind::Refused => "refused",
        }
    }
}

/// A configuration that cannot be used, and where: a syntax error, a bad value, a reference
/// to nothing, a file that cannot be read, a limit passed, or a change the director refuses.
/// Nothing of a configuration that gives one is applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    /// The file (the main file for errors not tied to a line, with line 0).
    pub file: String,
    /// The 1-based line, 0 when none applies.
    pub line: u32,
    /// The class of problem.
    pub kind: ErrorKind,
    /// What is wrong.
    pub message: String,
}

/// The files a configuration was read from, indexed by [`Origin::file`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files(pub Vec<String>);

impl Files {
    /// The name of an origin's file (`?` for an index this list does not have).
    pub fn name(&self, o: Origin) -> &str {
        self.0.get(o.file as usize).map_or("?", String::as_str)
    }

    /// An error of `kind` at `o`.
    pub fn error(&self, o: Origin, kind: ErrorKind, message: impl Into<String>) -> ConfigError {
        ConfigError { file: self.name(o).to_string(), line: o.line, kind, message: message.into() }
    }

    /// A warning at `o` about `keyword`.
    pub fn warning(&self, o: Origin, keyword: &str, message: impl Into<String>) -> Warning {
        Warning { file: self.name(o).to_string(), line: o.line, keyword: keyword.to_string(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn error_kinds_are_dense_and_named() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert!(!k.as_str().is_empty());
            assert!(ErrorKind::ALL[..i].iter().all(|o| o.as_str() != k.as_str()));
        }
    }

    #[test]
    fn braces_expand_in_order_and_nest() {
        assert_eq!(expand_braces("x{1,2{a,b}}y"), vec!["x1y", "x2ay", "x2by"]);
        assert_eq!(expand_braces("{foo/{,cat,dog},bar}"), vec!["foo/", "foo/cat", "foo/dog", "bar"]);
        assert_eq!(expand_braces("a{b}c{"), vec!["a{b}c{"]);
        assert_eq!(expand_braces("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}").len(), MAX_BRACE_EXPANSION);
    }

    #[test]
    fn globs_match_components() {
        assert!(path_matches("/etc/k/*.conf", "/etc/k/a.conf"));
        assert!(!path_matches("/etc/k/*.conf", "/etc/k/sub/a.conf"));
        assert!(!path_matches("/etc/k/*", "/etc/k/.hidden"));
        assert!(path_matches("/etc/k/.*", "/etc/k/.hidden"));
        assert!(component_matches("v[0-9]?.c*f", "v1x.conf"));
        assert!(component_matches("[!a]*", "b"));
        assert!(!component_matches("[!a]*", "a"));
        assert!(component_matches("a[", "a["));
        assert!(component_matches("*a*a*a*b", "aaaaaaaaaaaaaaaaab"));
        assert!(!component_matches("*a*a*a*b", "aaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn paths_join_relative_to_the_including_file() {
        assert_eq!(dir_of("/etc/keepalived/keepalived.conf"), "/etc/keepalived");
        assert_eq!(dir_of("keepalived.conf"), "");
        assert_eq!(dir_of("/k.conf"), "/");
        assert_eq!(join("/etc/keepalived", "conf.d/*.conf"), "/etc/keepalived/conf.d/*.conf");
        assert_eq!(join("/etc/keepalived", "/abs.conf"), "/abs.conf");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/etc/k/conf.d", "../x/./y"), "/etc/k/x/y");
        assert_eq!(join("k", "../../y"), "../y");
        assert_eq!(join("/", "../y"), "/y");
        let mut m = MemSource::new().with("/k/a.conf", "a").with("/k/b.conf", "b").with("/k/c.txt", "c");
        assert_eq!(m.glob("/k/{a,c}.*"), vec!["/k/a.conf", "/k/c.txt"]);
        assert_eq!(m.read("/k/b.conf"), Ok("b".into()));
        assert!(m.read("/k/x").is_err());
    }
}
