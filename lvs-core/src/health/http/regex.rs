//! keepalived's HTTP `regex` (`check_http.c`, built there on PCRE2): a pattern the body of a
//! `url` must match — or, with `regex_no_match`, must not — with the match starting between
//! `regex_min_offset` and `regex_max_offset`, and the `regex_options` that have a meaning here.
//!
//! Matching is `regex-automata`'s meta engine, which runs in time linear in the body (no
//! backtracking, so no pattern can make a probe spin), in byte mode as PCRE2 is without `utf`.
//! The exchange keeps at most [`MAX_REGEX_BODY`] bytes of the body and matches once, when the
//! body ends or that much has come.

use alloc::string::{String, ToString};
use core::fmt;

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::Input;

/// The most bytes of a body a regex is matched against (from its start); the rest is not
/// searched. It bounds each HTTP probe's memory.
pub const MAX_REGEX_BODY: usize = 64 * 1024;

/// The most memory (bytes) the compiled pattern may take: a configuration cannot make the
/// checker build an oversized automaton.
const MAX_COMPILED: usize = 1 << 20;

/// The `regex_options` with a meaning for this engine; the others of PCRE2 are warned about
/// by the configuration reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegexOptions {
    /// `caseless`: letters match either case.
    pub caseless: bool,
    /// `multiline`: `^` and `$` match at line starts and ends.
    pub multiline: bool,
    /// `dotall`: `.` matches a newline too.
    pub dotall: bool,
    /// `extended`: whitespace and `#` comments in the pattern are ignored.
    pub extended: bool,
    /// `ungreedy`: quantifiers are lazy unless followed by `?`.
    pub ungreedy: bool,
    /// `utf` (or `ucp`): the body is UTF-8 text and classes are Unicode's.
    pub utf: bool,
}

impl RegexOptions {
    /// Sets the option PCRE2 and keepalived call `name`; `false` for a name this engine does
    /// not honour.
    pub fn set(&mut self, name: &str) -> bool {
        let flag = match name {
            "caseless" => &mut self.caseless,
            "multiline" => &mut self.multiline,
            "dotall" => &mut self.dotall,
            "extended" => &mut self.extended,
            "ungreedy" => &mut self.ungreedy,
            "utf" | "ucp" => &mut self.utf,
            _ => return false,
        };
        *flag = true;
        true
    }
}

/// A pattern that does not compile, or compiles too big.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad regex: {0}")]
pub struct RegexError(String);

/// A compiled `regex` with its settings.
#[derive(Clone)]
pub struct BodyRegex {
    pattern: String,
    options: RegexOptions,
    /// `regex_no_match`: the body must not match.
    pub no_match: bool,
    /// `regex_min_offset`: the match starts at this byte of the body or later.
    pub min_offset: usize,
    /// `regex_max_offset`: the match starts at this byte of the body or earlier.
    pub max_offset: Option<usize>,
    compiled: Regex,
}

impl BodyRegex {
    /// Compiles `pattern` with `options`: a body passes when it matches anywhere.
    ///
    /// # Errors
    /// [`RegexError`] for a pattern this engine cannot compile (PCRE2-only syntax such as
    /// back-references or look-around among them) or one over its size limit.
    pub fn new(pattern: &str, options: RegexOptions) -> Result<Self, RegexError> {
        let syntax = syntax::Config::new()
            .case_insensitive(options.caseless)
            .multi_line(options.multiline)
            .dot_matches_new_line(options.dotall)
            .ignore_whitespace(options.extended)
            .swap_greed(options.ungreedy)
            .unicode(options.utf)
            .utf8(options.utf);
        let config = meta::Config::new().utf8_empty(options.utf).nfa_size_limit(Some(MAX_COMPILED));
        let compiled =
            Regex::builder().syntax(syntax).configure(config).build(pattern).map_err(|e| RegexError(e.to_string()))?;
        Ok(BodyRegex { pattern: pattern.into(), options, no_match: false, min_offset: 0, max_offset: None, compiled })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The options it was compiled with.
    pub fn options(&self) -> RegexOptions {
        self.options
    }

    /// Whether `body` (its first [`MAX_REGEX_BODY`] bytes) has a match starting within the
    /// offsets — keepalived's `check_regex`, over the whole kept body at once.
    pub fn matches(&self, body: &[u8]) -> bool {
        let end = body.len().min(MAX_REGEX_BODY);
        if self.min_offset > end {
            return false;
        }
        let input = Input::new(&body[..end]).range(self.min_offset..);
        self.compiled.search(&input).is_some_and(|m| self.max_offset.is_none_or(|max| m.start() <= max))
    }

    /// The verdict on a body: whether it passes (a match, or none with `regex_no_match`).
    pub fn passes(&self, body: &[u8]) -> bool {
        self.matches(body) != self.no_match
    }
}

impl PartialEq for BodyRegex {
    fn eq(&self, o: &Self) -> bool {
        (&self.pattern, self.options, self.no_match, self.min_offset, self.max_offset)
            == (&o.pattern, o.options, o.no_match, o.min_offset, o.max_offset)
    }
}

impl Eq for BodyRegex {}

impl fmt::Debug for BodyRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyRegex")
            .field("pattern", &self.pattern)
            .field("options", &self.options)
            .field("no_match", &self.no_match)
            .field("min_offset", &self.min_offset)
            .field("max_offset", &self.max_offset)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> BodyRegex {
        BodyRegex::new(p, RegexOptions::default()).unwrap()
    }

    #[test]
    fn matches_anywhere_within_the_offsets() {
        let body = b"<html><body>status: OK, 3 workers</body></html>";
        assert!(re("status: (OK|DEGRADED)").passes(body));
        assert!(!re("status: DOWN").passes(body));
        assert!(re(r"\d+ workers").matches(body));
        // regex_min_offset / regex_max_offset bound where the match may start.
        let at = 12; // "status" starts at byte 12
        let mut r = re("status");
        r.min_offset = at;
        r.max_offset = Some(at);
        assert!(r.matches(body));
        r.min_offset = at + 1;
        assert!(!r.matches(body), "starts before the min offset");
        r.min_offset = 0;
        r.max_offset = Some(at - 1);
        assert!(!r.matches(body), "starts after the max offset");
        r.min_offset = body.len() + 1;
        r.max_offset = None;
        assert!(!r.matches(body), "the body ends before the min offset");
    }

    #[test]
    fn no_match_inverts_the_verdict() {
        let mut r = re("(?i)error");
        r.no_match = true;
        assert!(r.passes(b"all good"));
        assert!(!r.passes(b"internal ERROR"));
    }

    #[test]
    fn options_follow_pcre2() {
        let mut o = RegexOptions::default();
        assert!(!BodyRegex::new("^ok$", o).unwrap().matches(b"x\nok\ny"));
        for name in ["multiline", "caseless"] {
            assert!(o.set(name));
        }
        assert!(!o.set("firstline"), "not honoured: the reader warns");
        assert!(BodyRegex::new("^OK$", o).unwrap().matches(b"x\nok\ny"));
        let dot = RegexOptions { dotall: true, ..RegexOptions::default() };
        assert!(BodyRegex::new("a.b", dot).unwrap().matches(b"a\nb"));
        assert!(!re("a.b").matches(b"a\nb"));
        let x = RegexOptions { extended: true, ..RegexOptions::default() };
        assert!(BodyRegex::new("o k  # a comment", x).unwrap().matches(b"ok"));
        // Byte mode by default: any bytes, no UTF-8 needed.
        assert!(re(r"\xff\x00").matches(b"a\xff\x00b"));
    }

    #[test]
    fn bad_and_oversized_patterns_are_errors() {
        assert!(BodyRegex::new("(unclosed", RegexOptions::default()).is_err());
        assert!(BodyRegex::new(r"(a)\1", RegexOptions::default()).is_err(), "no back-references");
        let e = BodyRegex::new("(?:a{1000}){1000}", RegexOptions::default()).unwrap_err();
        assert!(e.to_string().starts_with("bad regex: "), "{e}");
    }

    #[test]
    fn equal_by_settings() {
        assert_eq!(re("a+"), re("a+"));
        assert_ne!(re("a+"), re("a*"));
        let mut r = re("a+");
        r.no_match = true;
        assert_ne!(r, re("a+"));
    }
}
