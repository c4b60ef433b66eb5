//! `UDP_CHECK` (keepalived): send one datagram and judge what comes back.
//!
//! Without `require_reply` the check passes when no ICMP error (port, host or network
//! unreachable) arrives within the timeout, so the core turns that probe's timeout into a pass
//! ([`Detail::Silence`]); a reply passes at once. With `require_reply` a reply must come, of a
//! length within the bounds, and starting with the expected bytes as far as both go (keepalived
//! compares up to the shorter of the two).

use alloc::vec::Vec;

use super::outcome::{Detail, Outcome};

/// A UDP request/reply check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpCheck {
    /// The datagram to send; empty sends the probe's nonce (keepalived sends random bytes).
    pub payload: Vec<u8>,
    /// A reply is required (`require_reply`).
    pub require_reply: bool,
    /// The reply must start with these bytes, compared up to the shorter length (`require_reply
    /// HEX`).
    pub expect: Option<Vec<u8>>,
    /// Shortest reply that passes (`min_reply_length`, default 0).
    pub min_reply: usize,
    /// Longest reply that passes (`max_reply_length`, default 255).
    pub max_reply: usize,
}

impl UdpCheck {
    /// A check sending `payload` and passing unless an ICMP error comes back.
    pub fn new(payload: &[u8]) -> Self {
        UdpCheck { payload: payload.to_vec(), require_reply: false, expect: None, min_reply: 0, max_reply: 255 }
    }

    /// The same check requiring a reply starting with `expect` (any reply when empty).
    pub fn with_reply(mut self, expect: &[u8]) -> Self {
        self.require_reply = true;
        self.expect = (!expect.is_empty()).then(|| expect.to_vec());
        self
    }

    /// The same check passing only replies of `min..=max` bytes.
    pub fn with_reply_length(mut self, min: usize, max: usize) -> Self {
        self.min_reply = min;
        self.max_reply = max;
        self
    }

    /// The datagram of the probe with this nonce.
    pub fn datagram(&self, nonce: u64) -> Vec<u8> {
        if self.payload.is_empty() {
            nonce.to_be_bytes().to_vec()
        } else {
            self.payload.clone()
        }
    }

    /// The verdict on a reply.
    pub fn judge(&self, reply: &[u8]) -> Outcome {
        if !self.require_reply {
            return Outcome::up(Detail::Passed);
        }
        let len_ok = (self.min_reply..=self.max_reply).contains(&reply.len());
        let n = self.expect.as_ref().map_or(0, |e| e.len().min(reply.len()));
        let bytes_ok = self.expect.as_ref().is_none_or(|e| e[..n] == reply[..n]);
        if len_ok && bytes_ok {
            Outcome::up(Detail::Passed)
        } else {
            Outcome::down(Detail::NoMatch)
        }
    }

    /// The verdict when the timeout passes with neither a reply nor an ICMP error.
    pub fn on_timeout(&self) -> Outcome {
        if self.require_reply {
            Outcome::down(Detail::Timeout)
        } else {
            Outcome::up(Detail::Silence)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_passes_unless_a_reply_is_required() {
        let plain = UdpCheck::new(b"ping");
        assert_eq!(plain.on_timeout(), Outcome::up(Detail::Silence));
        assert_eq!(plain.judge(b"anything"), Outcome::up(Detail::Passed));
        let strict = UdpCheck::new(b"ping").with_reply(b"");
        assert_eq!(strict.on_timeout(), Outcome::down(Detail::Timeout));
        assert_eq!(strict.judge(b"pong"), Outcome::up(Detail::Passed));
    }

    #[test]
    fn reply_bytes_compare_up_to_the_shorter() {
        let c = UdpCheck::new(b"ping").with_reply(b"PONG-OK");
        assert_eq!(c.judge(b"PONG"), Outcome::up(Detail::Passed));
        assert_eq!(c.judge(b"PONG-OK and more"), Outcome::up(Detail::Passed));
        assert_eq!(c.judge(b"PING"), Outcome::down(Detail::NoMatch));
        let sized = c.with_reply_length(5, 8);
        assert_eq!(sized.judge(b"PONG"), Outcome::down(Detail::NoMatch));
        assert_eq!(sized.judge(b"PONG-OK"), Outcome::up(Detail::Passed));
        assert_eq!(sized.judge(b"PONG-OK!!"), Outcome::down(Detail::NoMatch));
    }

    #[test]
    fn empty_payload_sends_the_nonce() {
        assert_eq!(UdpCheck::new(b"").datagram(7), [0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(UdpCheck::new(b"x").datagram(7), b"x");
    }
}
