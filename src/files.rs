//! Configuration files from the filesystem: [`FsSource`] gives the core's configuration
//! readers (keepalived.conf with its `include`s) what they cannot read themselves.
//!
//! ```no_run
//! use lvs::core::config::keepalived::{self, Options};
//!
//! let parsed = keepalived::parse(&mut lvs::files::FsSource, "/etc/keepalived/keepalived.conf", &Options::default())?;
//! for w in &parsed.warnings {
//!     eprintln!("warning: {w}");
//! }
//! # Ok::<(), lvs::core::config::source::ConfigError>(())
//! ```

use std::fs;
use std::path::Path;

use lvs_core::config::source::{component_matches, expand_braces, Source};

/// The filesystem as a [`Source`]: files read whole as UTF-8; globs matched component by
/// component as `glob(3)` with `GLOB_BRACE` matches them — each `{a,b}` alternative in turn,
/// the matches of each sorted, hidden names only for a pattern starting with `.`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsSource;

impl Source for FsSource {
    fn read(&mut self, path: &str) -> Result<String, String> {
        fs::read_to_string(path).map_err(|e| e.to_string())
    }

    fn glob(&mut self, pattern: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in expand_braces(pattern) {
            for m in matches(&p) {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }
}

/// The existing paths matching one brace-free pattern, sorted.
fn matches(pattern: &str) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let mut paths = vec![String::from(if absolute { "/" } else { "" })];
    for part in pattern.split('/').filter(|c| !c.is_empty()) {
        let wild = part.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &paths {
            let join = |name: &str| {
                if base.is_empty() || base.ends_with('/') {
                    format!("{base}{name}")
                } else {
                    format!("{base}/{name}")
                }
            };
            if !wild {
                next.push(join(part));
                continue;
            }
            let dir = if base.is_empty() { "." } else { base.as_str() };
            let Ok(entries) = fs::read_dir(dir) else { continue };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| component_matches(part, n))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| join(n)));
        }
        paths = next;
    }
    paths.retain(|p| !p.is_empty() && Path::new(p).exists());
    paths
}
