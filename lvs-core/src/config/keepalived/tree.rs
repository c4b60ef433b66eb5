//! keepalived.conf's grammar: words (quoted strings with their escapes), `{ }` blocks, one
//! statement per line — a keyword, its arguments, and a block that opens on the same line or
//! the next. Out comes a tree of [`Node`]s, and [`Cx`], the helpers every section's reader
//! uses to take values from them and to warn about what it does not act on.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::IpAddr;
use core::str::FromStr;
use core::time::Duration;

use super::read::Line;
use crate::config::source::{ConfigError, ErrorKind, Files, Origin, Warning};

/// One statement: a keyword, its arguments, and its block if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) origin: Origin,
    pub(crate) key: String,
    pub(crate) args: Vec<String>,
    pub(crate) block: Option<Vec<Node>>,
}

impl Node {
    /// The `i`th argument.
    pub(crate) fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    /// The statement as one line of words (a list block's entry).
    pub(crate) fn words(&self) -> impl Iterator<Item = &str> {
        core::iter::once(self.key.as_str()).chain(self.args.iter().map(String::as_str))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

/// The words of a line: whitespace separates them; `"…"` and `'…'` keep whitespace and lose
/// their quotes (`ab"c d"e` is one word `abc de`), with escapes inside them; a `{` or `}` that
/// begins a word is a brace of its own.
fn tokens(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None => return Ok(out),
            Some('{') => {
                chars.next();
                out.push(Tok::Open);
                continue;
            }
            Some('}') => {
                chars.next();
                out.push(Tok::Close);
                continue;
            }
            Some(_) => {}
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c != '"' && c != '\'' {
                word.push(c);
                continue;
            }
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted string".into()),
                    Some(q) if q == c => break,
                    Some('\\') => escape(&mut chars, &mut word)?,
                    Some(x) => word.push(x),
                }
            }
        }
        out.push(Tok::Word(word));
    }
}

/// One escape inside a quoted string, after its `\`: `\a \b \E \f \n \r \t \v`, `\nnn` (octal),
/// `\xXX` (hex), `\cC` (control), and `\C` for any other `C`.
fn escape(chars: &mut core::iter::Peekable<core::str::Chars<'_>>, word: &mut String) -> Result<(), String> {
    let Some(c) = chars.next() else { return Err("unterminated quoted string".into()) };
    let simple = match c {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'E' => Some('\x1b'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        _ => None,
    };
    if let Some(s) = simple {
        word.push(s);
        return Ok(());
    }
    let mut number = |radix: u32, first: Option<char>, max: usize| {
        let mut v: u32 = first.and_then(|f| f.to_digit(radix)).unwrap_or(0);
        let mut n = usize::from(first.is_some());
        while n < max {
            match chars.peek().and_then(|d| d.to_digit(radix)) {
                Some(d) => {
                    v = v * radix + d;
                    chars.next();
                    n += 1;
                }
                None => break,
            }
        }
        char::from_u32(v & 0xff).unwrap_or('\0')
    };
    match c {
        '0'..='7' => word.push(number(8, Some(c), 3)),
        'x' => word.push(number(16, None, 2)),
        'c' => match chars.next() {
            Some(k) => word.push(char::from(k.to_ascii_uppercase() as u8 ^ 0x40)),
            None => return Err("unterminated quoted string".into()),
        },
        other => word.push(other),
    }
    Ok(())
}

/// The statements of the lines, blocks nested at most `max_nesting` deep.
pub(crate) fn parse(lines: &[Line], files: &Files, max_nesting: usize) -> Result<Vec<Node>, ConfigError> {
    // Each open block: its owner statement and the statements read into it so far.
    let mut open: Vec<(Node, Vec<Node>)> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    for line in lines {
        let toks = tokens(&line.text).map_err(|m| files.error(line.origin, ErrorKind::Syntax, m))?;
        let mut current: Option<Node> = None;
        for tok in toks {
            let list = open.last_mut().map_or(&mut top, |(_, l)| l);
            match tok {
                Tok::Word(w) => match current.as_mut() {
                    Some(n) => n.args.push(w),
                    None => current = Some(Node { origin: line.origin, key: w, args: Vec::new(), block: None }),
                },
                Tok::Open => {
                    // The block belongs to this line's statement, or to the one before when
                    // the brace stands on a line of its own.
                    let owner = match current.take() {
                        Some(n) => n,
                        None => match list.pop() {
                            Some(n) if n.block.is_none() => n,
                            _ => return Err(files.error(line.origin, ErrorKind::Syntax, "'{' without a keyword")),
                        },
                    };
                    if open.len() >= max_nesting {
                        return Err(files.error(
                            line.origin,
                            ErrorKind::Limit,
                            format!("blocks nested deeper than {max_nesting}"),
                        ));
                    }
                    open.push((owner, Vec::new()));
                }
                Tok::Close => {
                    if let Some(n) = current.take() {
                        list.push(n);
                    }
                    let Some((mut owner, children)) = open.pop() else {
                        return Err(files.error(line.origin, ErrorKind::Syntax, "'}' without a block to close"));
                    };
                    owner.block = Some(children);
                    open.last_mut().map_or(&mut top, |(_, l)| l).push(owner);
                }
            }
        }
        if let Some(n) = current {
            open.last_mut().map_or(&mut top, |(_, l)| l).push(n);
        }
    }
    match open.first() {
        Some((owner, _)) => {
            Err(files.error(owner.origin, ErrorKind::Syntax, format!("block of '{}' is not closed", owner.key)))
        }
        None => Ok(top),
    }
}

/// What every section's reader shares: the file names for errors, and the warnings so far.
pub(crate) struct Cx {
    pub(crate) files: Files,
    pub(crate) warnings: Vec<Warning>,
}

impl Cx {
    /// A bad value in statement `n`.
    pub(crate) fn err(&self, n: &Node, msg: impl core::fmt::Display) -> ConfigError {
        self.fault(n, ErrorKind::Value, msg)
    }

    /// An error of `kind` about statement `n`.
    pub(crate) fn fault(&self, n: &Node, kind: ErrorKind, msg: impl core::fmt::Display) -> ConfigError {
        self.files.error(n.origin, kind, format!("{}: {msg}", n.key))
    }

    /// A warning about statement `n`.
    pub(crate) fn warn(&mut self, n: &Node, msg: impl Into<String>) {
        let w = self.files.warning(n.origin, &n.key, msg);
        self.warnings.push(w);
    }

    /// A warning about an entry of a list block, named by the block's keyword.
    pub(crate) fn warn_entry(&mut self, e: &Node, block: &str, msg: impl Into<String>) {
        let w = self.files.warning(e.origin, block, msg);
        self.warnings.push(w);
    }

    /// The warning for a keyword the library does not implement.
    pub(crate) fn ignored(&mut self, n: &Node) {
        self.warn(n, "not implemented by this library; ignored");
    }

    /// Argument `i`, which must be there.
    pub(crate) fn need<'n>(&self, n: &'n Node, i: usize) -> Result<&'n str, ConfigError> {
        n.arg(i).ok_or_else(|| self.fault(n, ErrorKind::Syntax, "missing value"))
    }

    /// Argument `i` as a number.
    pub(crate) fn num<T: FromStr>(&self, n: &Node, i: usize) -> Result<T, ConfigError> {
        let s = self.need(n, i)?;
        s.parse().map_err(|_| self.err(n, format!("bad number '{s}'")))
    }

    /// Argument `i` as a number within `lo..=hi`.
    pub(crate) fn num_in<T: TryFrom<i64>>(&self, n: &Node, i: usize, lo: i64, hi: i64) -> Result<T, ConfigError> {
        let v: i64 = self.num(n, i)?;
        if v < lo || v > hi {
            return Err(self.err(n, format!("{v} is outside {lo}..={hi}")));
        }
        T::try_from(v).map_err(|_| self.err(n, format!("{v} is out of range")))
    }

    /// Argument `i` as a TIMER: seconds with an optional fraction, to the microsecond.
    pub(crate) fn timer(&self, n: &Node, i: usize) -> Result<Duration, ConfigError> {
        let s = self.need(n, i)?;
        parse_timer(s).ok_or_else(|| self.err(n, format!("bad time '{s}'")))
    }

    /// Argument `i` as an IP address.
    pub(crate) fn ip(&self, n: &Node, i: usize) -> Result<IpAddr, ConfigError> {
        let s = self.need(n, i)?;
        s.parse().map_err(|_| self.err(n, format!("bad address '{s}'")))
    }

    /// An optional BOOL argument (on|off|true|false|yes|no); a bare keyword is true.
    pub(crate) fn flag(&self, n: &Node) -> Result<bool, ConfigError> {
        match n.arg(0) {
            None => Ok(true),
            Some(s) => parse_bool(s).ok_or_else(|| self.err(n, format!("bad boolean '{s}'"))),
        }
    }

    /// The statement's block, which it must have.
    pub(crate) fn block<'n>(&self, n: &'n Node) -> Result<&'n [Node], ConfigError> {
        n.block.as_deref().ok_or_else(|| self.fault(n, ErrorKind::Syntax, "needs a { } block"))
    }

    /// A notify command: its first argument; `username [groupname]` after it are warned about.
    pub(crate) fn script(&mut self, n: &Node) -> Result<String, ConfigError> {
        let c = self.need(n, 0)?.to_string();
        if n.args.len() > 1 {
            self.warn(n, "scripts run as the application's user; username and groupname ignored");
        }
        Ok(c)
    }

    /// The arguments joined into one command line (a script given unquoted in several words).
    pub(crate) fn command(&self, n: &Node) -> Result<String, ConfigError> {
        self.need(n, 0)?;
        Ok(n.args.join(" "))
    }
}

/// `on|off|true|false|yes|no`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Seconds with an optional fraction of up to six digits.
pub(crate) fn parse_timer(s: &str) -> Option<Duration> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.len() > 6 {
        return None;
    }
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) {
        return None;
    }
    let secs: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let micros: u32 = if frac.is_empty() { 0 } else { alloc::format!("{frac:0<6}").parse().ok()? };
    Some(Duration::from_secs(secs) + Duration::from_micros(u64::from(micros)))
}

/// A script line split into program and arguments as keepalived splits it: at unquoted
/// whitespace, with `'…'` keeping a word together.
pub(crate) fn split_command(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(w) = word.take() {
                    out.push(w);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(word);
    out
}
