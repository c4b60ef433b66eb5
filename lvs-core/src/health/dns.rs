//! `DNS_CHECK` (keepalived): send one query over UDP and pass on a reply without error.
//!
//! The reply must carry the query's ID and the QR bit; anything else is not the reply and is
//! ignored while the probe waits (as keepalived does). A reply with RCODE ≠ 0 fails; with
//! `require_answer`, so does one with no answer records. keepalived's defaults are type SOA and
//! name `.`.

use alloc::string::String;
use alloc::vec::Vec;

use super::outcome::{Detail, Outcome};

/// DNS query types keepalived names (`type A|NS|CNAME|SOA|MX|TXT|AAAA`); any other type number
/// works too.
pub mod qtype {
    /// An IPv4 address.
    pub const A: u16 = 1;
    /// A name server.
    pub const NS: u16 = 2;
    /// An alias.
    pub const CNAME: u16 = 5;
    /// Start of authority (keepalived's default).
    pub const SOA: u16 = 6;
    /// A mail exchanger.
    pub const MX: u16 = 15;
    /// Text.
    pub const TXT: u16 = 16;
    /// An IPv6 address.
    pub const AAAA: u16 = 28;
}

/// Length of the DNS header.
const HEADER: usize = 12;
/// Flags of a standard query asking for recursion.
const FLAGS_RD: u16 = 0x0100;
/// The QR bit: this is a response.
const FLAG_QR: u16 = 0x8000;
/// Class IN.
const CLASS_IN: u16 = 1;

/// A DNS query check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsCheck {
    /// The name to ask for (`name`, default `.`).
    pub name: String,
    /// The query type (`type`, default [`qtype::SOA`]).
    pub qtype: u16,
    /// Fail a reply that has no answer records (beyond keepalived, which takes any NOERROR).
    pub require_answer: bool,
}

impl Default for DnsCheck {
    fn default() -> Self {
        DnsCheck { name: ".".into(), qtype: qtype::SOA, require_answer: false }
    }
}

impl DnsCheck {
    /// A query for `name` of type `qtype`.
    pub fn new(name: &str, qtype: u16) -> Self {
        DnsCheck { name: name.into(), qtype, require_answer: false }
    }

    /// The same check failing replies without answers.
    pub fn with_answer_required(mut self) -> Self {
        self.require_answer = true;
        self
    }

    /// Why the name cannot be sent, if it cannot: an empty label, a label over 63 bytes, or a
    /// name over 255 bytes.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.encoded_name().map(|_| ())
    }

    fn encoded_name(&self) -> Result<Vec<u8>, &'static str> {
        let mut out = Vec::new();
        let trimmed = self.name.strip_suffix('.').unwrap_or(&self.name);
        if !trimmed.is_empty() {
            for label in trimmed.split('.') {
                let len = u8::try_from(label.len()).ok().filter(|l| (1..=63).contains(l));
                let len = len.ok_or("dns name has an empty label or one over 63 bytes")?;
                out.push(len);
                out.extend_from_slice(label.as_bytes());
            }
        }
        out.push(0);
        if out.len() > 255 {
            return Err("dns name is over 255 bytes");
        }
        Ok(out)
    }

    /// The query datagram with transaction ID `id` (an invalid name, which
    /// [`validate`](Self::validate) refuses, is sent as the root).
    pub fn query(&self, id: u16) -> Vec<u8> {
        let mut q = Vec::with_capacity(HEADER + self.name.len() + 6);
        for word in [id, FLAGS_RD, 1, 0, 0, 0] {
            q.extend_from_slice(&word.to_be_bytes());
        }
        q.extend_from_slice(&self.encoded_name().unwrap_or_else(|_| alloc::vec![0]));
        q.extend_from_slice(&self.qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    /// The verdict on a datagram that came back to query `id`; `None` when it is not the reply
    /// (too short, another ID, not a response) and the probe should keep waiting.
    pub fn judge(&self, id: u16, reply: &[u8]) -> Option<Outcome> {
        let word = |i: usize| reply.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        if reply.len() < HEADER || word(0)? != id {
            return None;
        }
        let flags = word(2)?;
        if flags & FLAG_QR == 0 {
            return None;
        }
        let rcode = (flags & 0x000f) as u8;
        Some(if rcode != 0 {
            Outcome::down(Detail::Rcode(rcode))
        } else if self.require_answer && word(6)? == 0 {
            Outcome::down(Detail::NoAnswer)
        } else {
            Outcome::up(Detail::Passed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply header to `id` with these flags and answer count, and the question after it.
    fn reply(id: u16, flags: u16, answers: u16) -> Vec<u8> {
        let mut r = Vec::new();
        for w in [id, flags, 1, answers, 0, 0] {
            r.extend_from_slice(&w.to_be_bytes());
        }
        r
    }

    #[test]
    fn query_bytes() {
        let q = DnsCheck::new("www.example.org", qtype::A).query(0xbeef);
        let mut want = alloc::vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"\x03www\x07example\x03org\x00");
        want.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(q, want);
        let root = DnsCheck::default().query(1);
        assert_eq!(&root[HEADER..], &[0, 0, 6, 0, 1]);
        assert_eq!(
            DnsCheck::new("example.org.", qtype::MX).query(1)[HEADER..],
            *b"\x07example\x03org\x00\x00\x0f\x00\x01"
        );
    }

    #[test]
    fn names_are_validated() {
        assert!(DnsCheck::new("a..b", qtype::A).validate().is_err());
        let long = "x".repeat(64);
        assert!(DnsCheck::new(&long, qtype::A).validate().is_err());
        let huge = alloc::vec!["abcdefgh"; 40].join(".");
        assert!(DnsCheck::new(&huge, qtype::A).validate().is_err());
        assert!(DnsCheck::new("ok.example", qtype::A).validate().is_ok());
    }

    #[test]
    fn replies_are_judged_as_keepalived_does() {
        let c = DnsCheck::default();
        assert_eq!(c.judge(7, &reply(7, 0x8180, 1)), Some(Outcome::up(Detail::Passed)));
        assert_eq!(c.judge(7, &reply(7, 0x8180, 0)), Some(Outcome::up(Detail::Passed)));
        assert_eq!(c.judge(7, &reply(7, 0x8183, 0)), Some(Outcome::down(Detail::Rcode(3))));
        // Not the reply: another ID, a query, too short.
        assert_eq!(c.judge(7, &reply(8, 0x8180, 1)), None);
        assert_eq!(c.judge(7, &reply(7, 0x0100, 1)), None);
        assert_eq!(c.judge(7, &reply(7, 0x8180, 1)[..11]), None);
        let strict = DnsCheck::default().with_answer_required();
        assert_eq!(strict.judge(7, &reply(7, 0x8180, 0)), Some(Outcome::down(Detail::NoAnswer)));
    }
}
