//! `SMTP_CHECK` (keepalived): read the server's 220 greeting, say `HELO`, expect 250, say
//! `QUIT`. Multi-line replies (`250-…` lines before `250 …`) are read to their last line.

use alloc::string::String;
use alloc::vec::Vec;

use super::outcome::{Detail, Outcome, Step};

/// The most bytes one reply may take before it is [`Detail::Malformed`].
const MAX_REPLY: usize = 4096;

/// An SMTP greeting check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpCheck {
    /// The name sent with `HELO` (`helo_name`).
    pub helo_name: String,
}

impl Default for SmtpCheck {
    fn default() -> Self {
        SmtpCheck { helo_name: "localhost".into() }
    }
}

impl SmtpCheck {
    /// A check saying `HELO name`.
    pub fn new(helo_name: &str) -> Self {
        SmtpCheck { helo_name: helo_name.into() }
    }

    /// Why the check cannot be used, if it cannot: a HELO name that is empty or would break the
    /// command line.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.helo_name.is_empty() || self.helo_name.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err("smtp helo_name must be a non-empty word");
        }
        Ok(())
    }

    /// The conversation of one probe.
    pub fn exchange(&self) -> SmtpExchange {
        SmtpExchange {
            helo: alloc::format!("HELO {}\r\n", self.helo_name).into_bytes(),
            phase: Phase::Banner,
            buf: Vec::new(),
        }
    }
}

/// Where the conversation stands: which reply it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Banner,
    Helo,
    Quit,
    Done,
}

/// One SMTP probe's conversation, fed the server's bytes as they arrive.
#[derive(Clone, Debug)]
pub struct SmtpExchange {
    helo: Vec<u8>,
    phase: Phase,
    buf: Vec<u8>,
}

impl SmtpExchange {
    /// The opening move: wait for the greeting.
    pub fn start(&mut self) -> Step {
        Step::Wait
    }

    /// Bytes from the server (any split).
    pub fn received(&mut self, data: &[u8]) -> Step {
        if self.phase == Phase::Done {
            return Step::Wait;
        }
        self.buf.extend_from_slice(data);
        let Some(code) = self.reply_code() else {
            return if self.buf.len() > MAX_REPLY { self.done(Outcome::down(Detail::Malformed)) } else { Step::Wait };
        };
        match (self.phase, code) {
            (Phase::Banner, Some(220)) => {
                self.phase = Phase::Helo;
                Step::Send(core::mem::take(&mut self.helo))
            }
            (Phase::Helo, Some(250)) => {
                self.phase = Phase::Quit;
                Step::Send(b"QUIT\r\n".to_vec())
            }
            (Phase::Quit, _) => self.done(Outcome::up(Detail::Status(250))),
            (_, Some(code)) => self.done(Outcome::down(Detail::Status(code))),
            (_, None) => self.done(Outcome::down(Detail::Malformed)),
        }
    }

    /// The server closed the stream. After a good `HELO` that is a pass (a server may close
    /// without answering `QUIT`); before it, a failure.
    pub fn closed(&mut self) -> Outcome {
        if self.phase == Phase::Quit {
            Outcome::up(Detail::Status(250))
        } else {
            Outcome::down(Detail::Closed)
        }
    }

    fn done(&mut self, o: Outcome) -> Step {
        self.phase = Phase::Done;
        Step::Done(o)
    }

    /// Takes one complete reply off the buffer: `None` while its last line has not come,
    /// `Some(None)` for a reply that does not parse, `Some(Some(code))` otherwise.
    fn reply_code(&mut self) -> Option<Option<u16>> {
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let line = &self.buf[start..start + nl];
            start += nl + 1;
            let code = line.get(..3).and_then(|c| core::str::from_utf8(c).ok()).and_then(|c| c.parse::<u16>().ok());
            let last = !matches!(line.get(3), Some(b'-'));
            if code.is_none() || last {
                self.buf.drain(..start);
                return Some(code);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a conversation where the server says `lines` in order, one per step, and returns
    /// what the client sent and the verdict.
    fn run(lines: &[&[u8]]) -> (Vec<Vec<u8>>, Option<Outcome>) {
        let mut x = SmtpCheck::new("director.example").exchange();
        assert_eq!(x.start(), Step::Wait);
        let mut sent = Vec::new();
        for l in lines {
            match x.received(l) {
                Step::Send(b) => sent.push(b),
                Step::Wait => {}
                Step::Done(o) => return (sent, Some(o)),
            }
        }
        (sent, None)
    }

    #[test]
    fn greeting_helo_quit() {
        let (sent, done) = run(&[b"220 mx ESMTP\r\n", b"250-mx hello\r\n250 SIZE\r\n", b"221 bye\r\n"]);
        assert_eq!(sent, [b"HELO director.example\r\n".to_vec(), b"QUIT\r\n".to_vec()]);
        assert_eq!(done, Some(Outcome::up(Detail::Status(250))));
    }

    #[test]
    fn replies_split_anywhere() {
        let (sent, done) = run(&[b"22", b"0 mx\r", b"\n", b"250", b" ok\r\n", b"221\r\n"]);
        assert_eq!(sent.len(), 2);
        assert_eq!(done, Some(Outcome::up(Detail::Status(250))));
    }

    #[test]
    fn wrong_codes_and_garbage_fail() {
        assert_eq!(run(&[b"554 go away\r\n"]).1, Some(Outcome::down(Detail::Status(554))));
        assert_eq!(run(&[b"220 mx\r\n", b"501 bad helo\r\n"]).1, Some(Outcome::down(Detail::Status(501))));
        assert_eq!(run(&[b"HTTP/1.1 400\r\n"]).1, Some(Outcome::down(Detail::Malformed)));
        let long = [b'2'; MAX_REPLY + 1];
        assert_eq!(run(&[&long]).1, Some(Outcome::down(Detail::Malformed)));
    }

    #[test]
    fn close_after_helo_passes_before_it_fails() {
        let mut x = SmtpCheck::default().exchange();
        assert_eq!(x.closed(), Outcome::down(Detail::Closed));
        let _ = x.received(b"220 mx\r\n");
        let _ = x.received(b"250 ok\r\n");
        assert_eq!(x.closed(), Outcome::up(Detail::Status(250)));
        assert!(SmtpCheck::new("a b").validate().is_err());
        assert!(SmtpCheck::default().validate().is_ok());
    }
}
