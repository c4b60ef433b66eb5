//! Reading keepalived.conf the way keepalived's reader does before any keyword is looked at:
//! the files (`include` with globs, relative to the including file), comments (`#` and `!`
//! outside quotes), conditional lines (`@id`, `@^id`), and parameters (`$NAME=VALUE`, one line
//! or continued with `\`, substituted as `$NAME` or `${NAME}` when the line is used). Out come
//! logical lines, each with the file and line it came from.
//!
//! DoS warning: the work is bounded by [`Limits`]: the bytes read and produced by
//! substitution, the number of files, the include depth and the length of a line.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::config::source::{dir_of, join, ConfigError, ErrorKind, Files, Origin, Source, Warning};

/// Bounds on what reading one configuration may cost; past any of them the configuration is
/// refused with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes read from files plus bytes produced by parameter substitution (default 16 MiB).
    pub max_bytes: usize,
    /// Files read, the main one included (default 256).
    pub max_files: usize,
    /// Files open at once through nested includes, the main one included (default 16).
    pub max_include_depth: usize,
    /// Blocks open at once (default 16; keepalived's deepest is 4).
    pub max_nesting: usize,
    /// Bytes in one line after substitution (default 64 KiB).
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 16 << 20, max_files: 256, max_include_depth: 16, max_nesting: 16, max_line: 64 << 10 }
    }
}

/// How to read a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// keepalived's config id (`-i`, by default the host name's first part): `@id` lines are
    /// read only when it matches, `@^id` lines only when it does not. `None` matches nothing.
    pub config_id: Option<String>,
    /// Bounds on the work.
    pub limits: Limits,
}

/// One logical line: conditionals resolved, parameters substituted, comment removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) origin: Origin,
    pub(crate) text: String,
}

/// An `include` waiting its turn: the path, whether a failure to read it is an error, and
/// where it was asked for.
struct Queued {
    path: String,
    strict: bool,
    at: Origin,
}

/// A file being read.
struct Frame {
    file: u32,
    path: String,
    text: String,
    pos: usize,
    line: u32,
    /// Lines produced by substituting a multi-line parameter, read before the next line.
    pending: VecDeque<(Origin, String)>,
    /// Files this one included, read before its next line.
    queue: VecDeque<Queued>,
}

impl Frame {
    fn next_line(&mut self) -> Option<(Origin, String)> {
        if self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let end = rest.find('\n').unwrap_or(rest.len());
        let line = rest[..end].trim_end_matches('\r').to_string();
        self.pos += (end + 1).min(rest.len());
        self.line += 1;
        Some((Origin { file: self.file, line: self.line }, line))
    }
}

struct Reader<'a> {
    src: &'a mut dyn Source,
    opts: &'a Options,
    files: Files,
    warnings: Vec<Warning>,
    frames: Vec<Frame>,
    params: BTreeMap<String, String>,
    bytes: usize,
    out: Vec<Line>,
}

/// Reads `path` and everything it includes into logical lines.
pub(crate) fn read(
    src: &mut dyn Source,
    path: &str,
    opts: &Options,
) -> Result<(Vec<Line>, Files, Vec<Warning>), ConfigError> {
    let mut r = Reader {
        src,
        opts,
        files: Files::default(),
        warnings: Vec::new(),
        frames: Vec::new(),
        params: BTreeMap::new(),
        bytes: 0,
        out: Vec::new(),
    };
    r.open(path, true, Origin::default())?;
    r.run()?;
    Ok((r.out, r.files, r.warnings))
}

impl Reader<'_> {
    fn run(&mut self) -> Result<(), ConfigError> {
        while let Some(top) = self.frames.last_mut() {
            if let Some(q) = top.queue.pop_front() {
                self.open(&q.path, q.strict, q.at)?;
            } else if let Some((origin, text)) = top.pending.pop_front() {
                self.logical(origin, text, false)?;
            } else if let Some((origin, raw)) = top.next_line() {
                self.logical(origin, strip_comment(&raw).to_string(), true)?;
            } else {
                self.frames.pop();
            }
        }
        Ok(())
    }

    fn err(&self, o: Origin, kind: ErrorKind, msg: impl Into<String>) -> ConfigError {
        self.files.error(o, kind, msg)
    }

    /// Opens a file and makes it the one read next.
    fn open(&mut self, path: &str, strict: bool, at: Origin) -> Result<(), ConfigError> {
        let limits = self.opts.limits;
        if self.frames.iter().any(|f| f.path == path) {
            let chain: Vec<&str> = self.frames.iter().map(|f| f.path.as_str()).chain([path]).collect();
            return Err(self.err(at, ErrorKind::Reference, format!("include cycle: {}", chain.join(" -> "))));
        }
        if self.frames.len() >= limits.max_include_depth {
            return Err(self.err(
                at,
                ErrorKind::Limit,
                format!("includes nested deeper than {}", limits.max_include_depth),
            ));
        }
        if self.files.0.len() >= limits.max_files {
            return Err(self.err(at, ErrorKind::Limit, format!("more than {} files", limits.max_files)));
        }
        let text = match self.src.read(path) {
            Ok(t) => t,
            Err(why) if strict || self.frames.is_empty() => {
                let msg = format!("cannot read {path}: {why}");
                return Err(match self.frames.is_empty() {
                    true => ConfigError { file: path.to_string(), line: 0, kind: ErrorKind::Read, message: msg },
                    false => self.err(at, ErrorKind::Read, msg),
                });
            }
            Err(why) => {
                self.warnings.push(self.files.warning(at, "include", format!("cannot read {path}: {why}; skipped")));
                return Ok(());
            }
        };
        let file = self.files.0.len() as u32;
        self.files.0.push(path.to_string());
        self.spend(at, text.len())?;
        self.frames.push(Frame {
            file,
            path: path.to_string(),
            text,
            pos: 0,
            line: 0,
            pending: VecDeque::new(),
            queue: VecDeque::new(),
        });
        Ok(())
    }

    /// Counts bytes against [`Limits::max_bytes`].
    fn spend(&mut self, at: Origin, n: usize) -> Result<(), ConfigError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.opts.limits.max_bytes {
            return Err(self.err(
                at,
                ErrorKind::Limit,
                format!("configuration larger than {} bytes", self.opts.limits.max_bytes),
            ));
        }
        Ok(())
    }

    /// One line, comment already removed: conditional, definition, substitution, include, or
    /// a line for the parser.
    fn logical(&mut self, origin: Origin, text: String, from_file: bool) -> Result<(), ConfigError> {
        if text.len() > self.opts.limits.max_line {
            return Err(self.err(
                origin,
                ErrorKind::Limit,
                format!("line longer than {} bytes", self.opts.limits.max_line),
            ));
        }
        let Some(t) = conditional(text.trim(), self.opts.config_id.as_deref()) else { return Ok(()) };
        if t.is_empty() {
            return Ok(());
        }
        if let Some((name, value)) = definition(t) {
            let value = self.definition_value(value, from_file)?;
            self.params.insert(name.to_string(), value);
            return Ok(());
        }
        if t.starts_with("~SEQ") || t.starts_with("~LST") {
            return Err(self.err(origin, ErrorKind::Unsupported, "~SEQ and ~LST blocks are not supported"));
        }
        if let Some(expanded) = self.substitute(t) {
            self.spend(origin, expanded.len())?;
            if let Some(top) = self.frames.last_mut() {
                for piece in expanded.split('\n').rev() {
                    top.pending.push_front((origin, piece.to_string()));
                }
            }
            return Ok(());
        }
        let mut words = t.split_whitespace();
        let strict = match words.next() {
            Some("include" | "includer") => Some(false),
            Some("includem" | "includew" | "includeb" | "includea") => Some(true),
            _ => None,
        };
        if let Some(strict) = strict {
            return self.include(origin, t, strict);
        }
        self.out.push(Line { origin, text: t.to_string() });
        Ok(())
    }

    /// The value of a definition: one line, or (from a file, ending in `\`) the following
    /// lines up to one that does not, joined with newlines.
    fn definition_value(&mut self, value: &str, from_file: bool) -> Result<String, ConfigError> {
        let Some(first) = value.trim_end().strip_suffix('\\') else { return Ok(value.to_string()) };
        let mut lines: Vec<String> = Vec::new();
        if !first.trim().is_empty() {
            lines.push(first.trim().to_string());
        }
        if !from_file {
            return Ok(lines.join("\n"));
        }
        while let Some((origin, raw)) = self.frames.last_mut().and_then(Frame::next_line) {
            self.spend(origin, raw.len())?;
            let line = strip_comment(&raw).trim();
            match line.strip_suffix('\\') {
                Some(more) => lines.push(more.trim().to_string()),
                None => {
                    lines.push(line.to_string());
                    break;
                }
            }
        }
        Ok(lines.join("\n"))
    }

    /// One round of substitution of the line: each `${NAME}`, and each `$NAME` followed by
    /// whitespace or the end, that is defined. `None` when nothing was replaced; otherwise the
    /// result goes through the reader again, so substitution is done at use (`$A=x${B}`
    /// takes `B` as it is where `$A` is used) and definitions inside a multi-line value take
    /// effect in order.
    fn substitute(&self, t: &str) -> Option<String> {
        let mut out = String::new();
        let mut changed = false;
        let mut rest = t;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, used, braced) = match after.strip_prefix('{') {
                Some(b) => match b.find('}') {
                    Some(end) => (&b[..end], end + 2, true),
                    None => ("", 0, true),
                },
                None => {
                    let n = after.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count();
                    (&after[..n], n, false)
                }
            };
            let followed = braced || after[used..].chars().next().is_none_or(char::is_whitespace);
            match self.param(name).filter(|_| is_name(name) && followed) {
                Some(value) => {
                    out.push_str(&value);
                    changed = true;
                    rest = &after[used..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        changed.then_some(out)
    }

    /// A parameter's value: the predefined ones, then the file's own.
    fn param(&self, name: &str) -> Option<String> {
        match name {
            "_PWD" => self.frames.last().map(|f| dir_of(&f.path).to_string()),
            "_INSTANCE" => Some(self.opts.config_id.clone().unwrap_or_default()),
            "_HASH" => Some("#".into()),
            "_BANG" => Some("!".into()),
            _ => self.params.get(name).cloned(),
        }
    }

    /// `include PATTERN`: the matching files, relative to the including file, queued in order.
    fn include(&mut self, origin: Origin, t: &str, strict: bool) -> Result<(), ConfigError> {
        let (keyword, pattern) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let pattern = unquote(pattern.trim());
        if pattern.is_empty() {
            return Err(self.err(origin, ErrorKind::Syntax, format!("{keyword}: no file named")));
        }
        let dir = self.frames.last().map(|f| dir_of(&f.path).to_string()).unwrap_or_default();
        let full = join(&dir, pattern);
        let matches = self.src.glob(&full);
        if matches.is_empty() {
            if strict {
                return Err(self.err(origin, ErrorKind::Read, format!("{keyword}: no file matches {full}")));
            }
            self.warnings.push(self.files.warning(
                origin,
                keyword,
                format!("no file matches {full}; nothing included"),
            ));
        }
        if let Some(top) = self.frames.last_mut() {
            top.queue.extend(matches.into_iter().map(|path| Queued { path, strict, at: origin }));
        }
        Ok(())
    }
}

/// A parameter name: letters, digits and `_`, not starting with a digit.
fn is_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `$NAME=VALUE` (no space before `=`): the name and the value.
fn definition(t: &str) -> Option<(&str, &str)> {
    let rest = t.strip_prefix('$')?;
    let (name, value) = rest.split_once('=')?;
    is_name(name).then_some((name, value))
}

/// The line without an `@id` / `@^id` prefix when it is to be read, `None` when not.
fn conditional<'t>(t: &'t str, id: Option<&str>) -> Option<&'t str> {
    let Some(cond) = t.strip_prefix('@') else { return Some(t) };
    let (word, rest) = cond.split_once(char::is_whitespace).unwrap_or((cond, ""));
    let (negated, name) = match word.strip_prefix('^') {
        Some(n) => (true, n),
        None => (false, word),
    };
    ((id == Some(name)) != negated).then_some(rest.trim_start())
}

/// The line up to its comment: the first `#` or `!` outside a quoted string.
pub(crate) fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' || c == '!' => return &line[..i],
            None => {}
        }
    }
    line
}

/// A value without its surrounding double or single quotes.
fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}
