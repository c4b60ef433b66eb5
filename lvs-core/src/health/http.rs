//! `HTTP_GET` and `SSL_GET` (keepalived), ldirectord's `checktype = negotiate` for `http` and
//! `https`: fetch a path and judge the status code (default 2xx), the MD5 of the body (`digest`),
//! a text the body must contain (ldirectord `receive`) and a regular expression it must match
//! or not (keepalived `regex`, [`regex`]).
//!
//! Sans-IO: [`HttpCheck::exchange`] gives the request to write and judges the reply as its bytes
//! arrive, so the prober never buffers a page. The request is HTTP/1.0 with `Connection: close`,
//! so the reply is never chunked and its end is the end of the stream (or `Content-Length`).
//! With neither a digest nor an expected text the check is decided by the status line alone.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::RangeInclusive;

pub mod regex;

pub use self::regex::{BodyRegex, RegexError, RegexOptions, MAX_REGEX_BODY};

use super::md5::Md5;
use super::outcome::{Detail, Outcome, Step};
use crate::addr::Endpoint;

/// The most bytes a status line and headers may take; a longer head is [`Detail::Malformed`].
pub const MAX_HEAD: usize = 16 * 1024;

/// An HTTP (or HTTPS) GET check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// `SSL_GET`: speak TLS to the server (the prober's TLS client does it).
    pub tls: bool,
    /// The path to fetch (`url { path }`, ldirectord `request`); starts with `/`.
    pub path: String,
    /// Status codes that pass (`status_code 200-299 503`); empty means 200–299, keepalived's
    /// default.
    pub status: Vec<RangeInclusive<u16>>,
    /// MD5 of the body (`digest`, as `genhash` prints it).
    pub digest: Option<[u8; 16]>,
    /// Bytes the body must contain (ldirectord `receive`, as a plain text rather than a regex).
    pub expect: Option<Vec<u8>>,
    /// The `Host` header (`virtualhost`); the target address and port when unset.
    pub virtualhost: Option<String>,
    /// A pattern the body must match, or must not (keepalived `regex`, `regex_no_match`).
    pub regex: Option<BodyRegex>,
}

impl HttpCheck {
    /// A GET of `path` that passes on 2xx.
    pub fn get(path: &str) -> Self {
        HttpCheck {
            tls: false,
            path: path.into(),
            status: Vec::new(),
            digest: None,
            expect: None,
            virtualhost: None,
            regex: None,
        }
    }

    /// The same check over TLS (`SSL_GET`).
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// The same check passing on these status codes only.
    pub fn with_status(mut self, codes: &[RangeInclusive<u16>]) -> Self {
        self.status = codes.to_vec();
        self
    }

    /// The same check requiring the body's MD5 to be `digest`.
    pub fn with_digest(mut self, digest: [u8; 16]) -> Self {
        self.digest = Some(digest);
        self
    }

    /// The same check requiring the body to contain `text`.
    pub fn with_expect(mut self, text: &[u8]) -> Self {
        self.expect = Some(text.to_vec());
        self
    }

    /// The same check judging the body by `regex` too.
    pub fn with_regex(mut self, regex: BodyRegex) -> Self {
        self.regex = Some(regex);
        self
    }

    /// The same check sending `Host: host`.
    pub fn with_virtualhost(mut self, host: &str) -> Self {
        self.virtualhost = Some(host.into());
        self
    }

    /// A digest from the 32 hex digits keepalived's `digest` and `genhash` use.
    pub fn parse_digest(hex: &str) -> Option<[u8; 16]> {
        let hex = hex.as_bytes();
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16);
            *o = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(out)
    }

    /// Why the check cannot be used, if it cannot: a path that is not an absolute path, or a
    /// path or host that would break the request line.
    pub fn validate(&self) -> Result<(), &'static str> {
        let clean = |s: &str| !s.bytes().any(|b| b.is_ascii_control() || b == b' ');
        if !self.path.starts_with('/') || !clean(&self.path) {
            return Err("http path must start with / and hold no spaces or control characters");
        }
        if self.virtualhost.as_deref().is_some_and(|h| h.is_empty() || !clean(h)) {
            return Err("http virtualhost must be a non-empty name without spaces");
        }
        Ok(())
    }

    /// The request bytes for a server at `target`.
    pub fn request(&self, target: Endpoint) -> Vec<u8> {
        let default_port = if self.tls { 443 } else { 80 };
        let host = match (&self.virtualhost, target.port == default_port, target.addr) {
            (Some(h), _, _) => h.clone(),
            (None, true, core::net::IpAddr::V4(a)) => alloc::format!("{a}"),
            (None, true, core::net::IpAddr::V6(a)) => alloc::format!("[{a}]"),
            (None, false, _) => alloc::format!("{target}"),
        };
        alloc::format!(
            "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lvs-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path
        )
        .into_bytes()
    }

    /// The conversation of one probe against `target`: its first [`Step`] sends the request.
    pub fn exchange(&self, target: Endpoint) -> HttpExchange {
        let status = if self.status.is_empty() { alloc::vec![200..=299] } else { self.status.clone() };
        HttpExchange {
            request: Some(self.request(target)),
            status,
            digest: self.digest.map(|d| (d, Md5::new())),
            expect: self.expect.clone().map(|needle| Search { needle, carry: Vec::new(), found: false }),
            regex: self.regex.clone().map(|re| (re, Vec::new())),
            head: Vec::new(),
            body: None,
            decided: false,
        }
    }
}

/// A streaming substring search: the bytes that may start a match across a chunk boundary are
/// carried to the next chunk.
#[derive(Clone, Debug)]
struct Search {
    needle: Vec<u8>,
    carry: Vec<u8>,
    found: bool,
}

impl Search {
    fn feed(&mut self, chunk: &[u8]) {
        if self.found || self.needle.is_empty() {
            self.found = true;
            return;
        }
        let mut window = core::mem::take(&mut self.carry);
        window.extend_from_slice(chunk);
        self.found = window.windows(self.needle.len()).any(|w| w == self.needle.as_slice());
        let keep = (self.needle.len() - 1).min(window.len());
        self.carry = window.split_off(window.len() - keep);
    }
}

/// The body as it streams: its status code and the bytes `Content-Length` says are still due.
#[derive(Clone, Copy, Debug)]
struct Body {
    code: u16,
    remaining: Option<u64>,
}

/// One HTTP probe's conversation, fed the reply as it arrives.
#[derive(Clone, Debug)]
pub struct HttpExchange {
    request: Option<Vec<u8>>,
    status: Vec<RangeInclusive<u16>>,
    digest: Option<([u8; 16], Md5)>,
    expect: Option<Search>,
    /// The regex and the body kept for it (at most [`MAX_REGEX_BODY`] bytes).
    regex: Option<(BodyRegex, Vec<u8>)>,
    head: Vec<u8>,
    body: Option<Body>,
    decided: bool,
}

impl HttpExchange {
    /// The opening move: the request to write.
    pub fn start(&mut self) -> Step {
        match self.request.take() {
            Some(r) => Step::Send(r),
            None => Step::Wait,
        }
    }

    /// Bytes of the reply (any split).
    pub fn received(&mut self, data: &[u8]) -> Step {
        if self.decided {
            return Step::Wait;
        }
        let step = match self.body {
            Some(_) => self.feed_body(data),
            None => self.feed_head(data),
        };
        if matches!(step, Step::Done(_)) {
            self.decided = true;
        }
        step
    }

    /// The server closed the stream: the verdict on what came.
    pub fn closed(&mut self) -> Outcome {
        match self.body {
            None => Outcome::down(Detail::Closed),
            Some(Body { remaining: Some(n), .. }) if n > 0 => Outcome::down(Detail::Closed),
            Some(Body { code, .. }) => self.verdict(code),
        }
    }

    fn feed_head(&mut self, data: &[u8]) -> Step {
        let scan_from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(data);
        let Some(end) = self.head[scan_from..].windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + scan_from + 4)
        else {
            return if self.head.len() > MAX_HEAD { Step::Done(Outcome::down(Detail::Malformed)) } else { Step::Wait };
        };
        if end > MAX_HEAD {
            return Step::Done(Outcome::down(Detail::Malformed));
        }
        let rest = self.head.split_off(end);
        let Some((code, remaining)) = parse_head(&self.head) else {
            return Step::Done(Outcome::down(Detail::Malformed));
        };
        if !self.status.iter().any(|r| r.contains(&code)) {
            return Step::Done(Outcome::down(Detail::Status(code)));
        }
        if self.digest.is_none() && self.expect.is_none() && self.regex.is_none() {
            return Step::Done(Outcome::up(Detail::Status(code)));
        }
        self.body = Some(Body { code, remaining });
        self.feed_body(&rest)
    }

    fn feed_body(&mut self, data: &[u8]) -> Step {
        let Some(body) = self.body.as_mut() else { return Step::Wait };
        let take = match body.remaining {
            Some(n) => usize::try_from(n).map_or(data.len(), |n| n.min(data.len())),
            None => data.len(),
        };
        let data = &data[..take];
        if let Some(n) = body.remaining.as_mut() {
            *n -= take as u64;
        }
        let (code, complete) = (body.code, body.remaining == Some(0));
        if let Some((_, md5)) = self.digest.as_mut() {
            md5.update(data);
        }
        if let Some(s) = self.expect.as_mut() {
            s.feed(data);
        }
        if let Some((_, kept)) = self.regex.as_mut() {
            let room = MAX_REGEX_BODY.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..room.min(data.len())]);
        }
        // Without a digest (which needs the whole body), the verdict comes as soon as the
        // text is found and the regex has all the body it will look at.
        let early = self.digest.is_none()
            && self.expect.as_ref().is_none_or(|s| s.found)
            && self.regex.as_ref().is_none_or(|(_, kept)| kept.len() >= MAX_REGEX_BODY);
        if complete || early {
            Step::Done(self.verdict(code))
        } else {
            Step::Wait
        }
    }

    fn verdict(&mut self, code: u16) -> Outcome {
        if let Some((want, md5)) = self.digest.take() {
            if md5.finish() != want {
                return Outcome::down(Detail::DigestMismatch);
            }
        }
        if self.expect.as_ref().is_some_and(|s| !s.found) {
            return Outcome::down(Detail::NoMatch);
        }
        if let Some((re, kept)) = &self.regex {
            if !re.passes(kept) {
                return Outcome::down(if re.no_match { Detail::UnwantedMatch } else { Detail::NoMatch });
            }
        }
        Outcome::up(Detail::Status(code))
    }
}

/// The status code and `Content-Length` of a reply head (status line and headers, ending in
/// an empty line).
fn parse_head(head: &[u8]) -> Option<(u16, Option<u64>)> {
    let text = core::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut status = lines.next()?.splitn(3, ' ');
    if !status.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = status.next()?;
    if code.len() != 3 {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse().ok()?);
            }
        }
    }
    Some((code, length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::IpAddr;

    fn target() -> Endpoint {
        Endpoint::new(IpAddr::from([192, 0, 2, 11]), 8080)
    }

    /// Feeds `reply` in chunks of `chunk` bytes, then a close if undecided.
    fn run(check: &HttpCheck, reply: &[u8], chunk: usize) -> Outcome {
        let mut x = check.exchange(target());
        assert!(matches!(x.start(), Step::Send(_)));
        for c in reply.chunks(chunk.max(1)) {
            if let Step::Done(o) = x.received(c) {
                return o;
            }
        }
        x.closed()
    }

    const PAGE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>served by rs1</html>";

    #[test]
    fn request_is_http10_with_host_and_close() {
        let r = HttpCheck::get("/health").request(target());
        assert_eq!(
            r,
            b"GET /health HTTP/1.0\r\nHost: 192.0.2.11:8080\r\nUser-Agent: lvs-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let r = HttpCheck::get("/").with_virtualhost("www.example.org").request(target());
        assert!(r.windows(22).any(|w| w == b"Host: www.example.org\r"));
        let v6 = Endpoint::new("2001:db8::1".parse().unwrap(), 443);
        let r = HttpCheck::get("/").with_tls().request(v6);
        assert!(r.windows(21).any(|w| w == b"Host: [2001:db8::1]\r\n"));
    }

    #[test]
    fn status_decides_without_body() {
        assert_eq!(run(&HttpCheck::get("/"), PAGE, 4096), Outcome::up(Detail::Status(200)));
        let not_found = b"HTTP/1.0 404 Not Found\r\n\r\n";
        assert_eq!(run(&HttpCheck::get("/"), not_found, 3), Outcome::down(Detail::Status(404)));
        let ok_404 = HttpCheck::get("/").with_status(&[404..=404]);
        assert_eq!(run(&ok_404, not_found, 3), Outcome::up(Detail::Status(404)));
        assert_eq!(run(&ok_404, PAGE, 7), Outcome::down(Detail::Status(200)));
    }

    #[test]
    fn digest_of_the_body() {
        let mut h = Md5::new();
        h.update(b"<html>served by rs1</html>");
        let good = HttpCheck::get("/").with_digest(h.finish());
        for chunk in [1, 5, 64, 4096] {
            assert_eq!(run(&good, PAGE, chunk), Outcome::up(Detail::Status(200)), "chunk {chunk}");
        }
        let bad = HttpCheck::get("/").with_digest([0; 16]);
        assert_eq!(run(&bad, PAGE, 9), Outcome::down(Detail::DigestMismatch));
    }

    #[test]
    fn expected_text_across_chunks() {
        let check = HttpCheck::get("/").with_expect(b"served by");
        for chunk in 1..=PAGE.len() {
            assert_eq!(run(&check, PAGE, chunk), Outcome::up(Detail::Status(200)), "chunk {chunk}");
        }
        let missing = HttpCheck::get("/").with_expect(b"served by rs2");
        assert_eq!(run(&missing, PAGE, 10), Outcome::down(Detail::NoMatch));
    }

    #[test]
    fn regex_judges_the_body_across_chunks() {
        let ok = HttpCheck::get("/").with_regex(BodyRegex::new(r"served by rs\d", RegexOptions::default()).unwrap());
        for chunk in 1..=PAGE.len() {
            assert_eq!(run(&ok, PAGE, chunk), Outcome::up(Detail::Status(200)), "chunk {chunk}");
        }
        let missing = HttpCheck::get("/").with_regex(BodyRegex::new("rs[2-9]", RegexOptions::default()).unwrap());
        assert_eq!(run(&missing, PAGE, 7), Outcome::down(Detail::NoMatch));
        let mut unwanted = BodyRegex::new("served", RegexOptions::default()).unwrap();
        unwanted.no_match = true;
        assert_eq!(run(&HttpCheck::get("/").with_regex(unwanted), PAGE, 7), Outcome::down(Detail::UnwantedMatch));
        // A body bigger than the kept part: decided once that much came, the rest unread.
        let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        big.extend(core::iter::repeat_n(b'x', MAX_REGEX_BODY));
        big.extend_from_slice(b"needle");
        let late = HttpCheck::get("/").with_regex(BodyRegex::new("needle", RegexOptions::default()).unwrap());
        let mut x = late.exchange(target());
        x.start();
        let steps: Vec<Step> = big.chunks(1000).map(|c| x.received(c)).collect();
        assert!(steps.contains(&Step::Done(Outcome::down(Detail::NoMatch))), "decided at the cap");
    }

    #[test]
    fn content_length_ends_the_body_and_a_short_one_fails() {
        let check = HttpCheck::get("/").with_expect(b"zzz");
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhellozzz";
        // The body is "hello": "zzz" after it is not part of the page.
        assert_eq!(run(&check, reply, 100), Outcome::down(Detail::NoMatch));
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nhello";
        assert_eq!(run(&check, short, 100), Outcome::down(Detail::Closed));
    }

    #[test]
    fn broken_replies() {
        let check = HttpCheck::get("/");
        assert_eq!(run(&check, b"", 1), Outcome::down(Detail::Closed));
        assert_eq!(run(&check, b"HTTP/1.0 200", 1), Outcome::down(Detail::Closed));
        assert_eq!(run(&check, b"SSH-2.0-OpenSSH\r\n\r\n", 4), Outcome::down(Detail::Malformed));
        assert_eq!(run(&check, b"HTTP/1.0 2000 OK\r\n\r\n", 4), Outcome::down(Detail::Malformed));
        let endless: Vec<u8> = b"HTTP/1.0 200 OK\r\n".iter().chain([b'x'; MAX_HEAD].iter()).copied().collect();
        assert_eq!(run(&check, &endless, 1000), Outcome::down(Detail::Malformed));
    }

    #[test]
    fn digest_hex_and_validation() {
        let d = HttpCheck::parse_digest("9b3a0c85a887a256d6939da88aabd8cd").unwrap();
        assert_eq!(d[0], 0x9b);
        assert_eq!(d[15], 0xcd);
        assert_eq!(HttpCheck::parse_digest("9b3a"), None);
        assert_eq!(HttpCheck::parse_digest("zz3a0c85a887a256d6939da88aabd8cd"), None);
        assert!(HttpCheck::get("/ok").validate().is_ok());
        assert!(HttpCheck::get("ok").validate().is_err());
        assert!(HttpCheck::get("/a b").validate().is_err());
        assert!(HttpCheck::get("/a\r\nX: y").validate().is_err());
        assert!(HttpCheck::get("/").with_virtualhost("").validate().is_err());
    }
}
