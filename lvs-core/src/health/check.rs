//! What a probe checks: [`Check`], one variant per checker kind (keepalived's `TCP_CHECK`,
//! `HTTP_GET`/`SSL_GET`, `UDP_CHECK`, `DNS_CHECK`, `SMTP_CHECK`, `PING_CHECK`, `MISC_CHECK`),
//! and the uniform face the prober drives them through: the [`Transport`] to open, the bytes to
//! send, the stream [`Exchange`] or the datagram verdict, and what a timeout means.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::dns::DnsCheck;
use super::http::{HttpCheck, HttpExchange};
use super::icmp::PingCheck;
use super::misc::MiscCheck;
use super::outcome::{Detail, Outcome, Step};
use super::smtp::{SmtpCheck, SmtpExchange};
use super::tcp::TcpCheck;
use super::udp::UdpCheck;
use crate::addr::Endpoint;

/// One checker kind with its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A TCP connect.
    Tcp(TcpCheck),
    /// An HTTP or HTTPS GET.
    Http(HttpCheck),
    /// A UDP datagram and its reply (or the absence of an ICMP error).
    Udp(UdpCheck),
    /// A DNS query over UDP.
    Dns(DnsCheck),
    /// An SMTP greeting.
    Smtp(SmtpCheck),
    /// An ICMP echo.
    Ping(PingCheck),
    /// An external program.
    Misc(MiscCheck),
}

/// What the prober opens for a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection (TLS over it when `tls`); then the [`Exchange`], if the check has one.
    Tcp {
        /// Speak TLS (`SSL_GET`).
        tls: bool,
    },
    /// A connected UDP socket: send [`Check::datagram`], judge replies with
    /// [`Check::judge_datagram`]; an ICMP port unreachable is [`Detail::Refused`].
    Udp,
    /// An ICMP echo with [`Check::datagram`] as payload, replies judged by
    /// [`Check::judge_datagram`].
    Icmp,
    /// A child process ([`MiscCheck`]), judged by [`MiscCheck::judge`].
    Process,
}

impl Check {
    /// The kind's short name, as the status listing prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Check::Tcp(_) => "TCP",
            Check::Http(h) if h.tls => "HTTPS",
            Check::Http(_) => "HTTP",
            Check::Udp(_) => "UDP",
            Check::Dns(_) => "DNS",
            Check::Smtp(_) => "SMTP",
            Check::Ping(_) => "PING",
            Check::Misc(_) => "MISC",
        }
    }

    /// The kind's name and what it asks for, as the status listing and the events name a
    /// check among several: `HTTP GET /health`, `DNS example.com`, `MISC /usr/local/bin/check`,
    /// else the kind's [`name`](Self::name).
    pub fn describe(&self) -> String {
        match self {
            Check::Http(h) => alloc::format!("{} GET {}", self.name(), h.path),
            Check::Dns(d) => alloc::format!("DNS {}", d.name),
            Check::Misc(m) => alloc::format!("MISC {}", m.program),
            _ => String::from(self.name()),
        }
    }

    /// What the prober opens.
    pub fn transport(&self) -> Transport {
        match self {
            Check::Tcp(_) | Check::Smtp(_) => Transport::Tcp { tls: false },
            Check::Http(h) => Transport::Tcp { tls: h.tls },
            Check::Udp(_) | Check::Dns(_) => Transport::Udp,
            Check::Ping(_) => Transport::Icmp,
            Check::Misc(_) => Transport::Process,
        }
    }

    /// Why the check cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), &'static str> {
        match self {
            Check::Http(h) => h.validate(),
            Check::Dns(d) => d.validate(),
            Check::Smtp(s) => s.validate(),
            Check::Misc(m) => m.validate(),
            Check::Tcp(_) | Check::Udp(_) | Check::Ping(_) => Ok(()),
        }
    }

    /// The conversation over the connection, for the kinds that talk (HTTP, SMTP); `None` when
    /// the connect alone decides (TCP) or the transport is not a stream.
    pub fn exchange(&self, target: Endpoint) -> Option<Exchange> {
        match self {
            Check::Http(h) => Some(Exchange::Http(Box::new(h.exchange(target)))),
            Check::Smtp(s) => Some(Exchange::Smtp(s.exchange())),
            _ => None,
        }
    }

    /// The datagram (or echo payload) of the probe with this nonce, for UDP, DNS and PING.
    pub fn datagram(&self, nonce: u64) -> Option<Vec<u8>> {
        match self {
            Check::Udp(u) => Some(u.datagram(nonce)),
            Check::Dns(d) => Some(d.query(dns_id(nonce))),
            Check::Ping(_) => Some(PingCheck::payload(nonce).to_vec()),
            _ => None,
        }
    }

    /// The verdict on a datagram (or echo reply payload) that came back to the probe with this
    /// nonce; `None` when it is not the reply and the probe should keep waiting.
    pub fn judge_datagram(&self, nonce: u64, reply: &[u8]) -> Option<Outcome> {
        match self {
            Check::Udp(u) => Some(u.judge(reply)),
            Check::Dns(d) => d.judge(dns_id(nonce), reply),
            Check::Ping(_) => PingCheck::answers(nonce, reply).then(|| Outcome::up(Detail::Passed)),
            _ => None,
        }
    }

    /// What a probe that gets no result by its deadline means: a failure, except for a UDP
    /// check that needs no reply, where silence passes.
    pub fn on_timeout(&self) -> Outcome {
        match self {
            Check::Udp(u) => u.on_timeout(),
            _ => Outcome::down(Detail::Timeout),
        }
    }
}

/// The DNS transaction ID of a probe: the low 16 bits of its nonce.
fn dns_id(nonce: u64) -> u16 {
    (nonce & 0xffff) as u16
}

/// A stream check's conversation, fed what the server sends: start with
/// [`start`](Exchange::start), then call [`received`](Exchange::received) for each read and
/// [`closed`](Exchange::closed) at end of stream, until a [`Step::Done`].
#[derive(Clone, Debug)]
pub enum Exchange {
    /// An HTTP GET (boxed: it carries an MD5 state).
    Http(Box<HttpExchange>),
    /// An SMTP greeting.
    Smtp(SmtpExchange),
}

impl Exchange {
    /// The opening move once connected.
    pub fn start(&mut self) -> Step {
        match self {
            Exchange::Http(x) => x.start(),
            Exchange::Smtp(x) => x.start(),
        }
    }

    /// Bytes read from the server.
    pub fn received(&mut self, data: &[u8]) -> Step {
        match self {
            Exchange::Http(x) => x.received(data),
            Exchange::Smtp(x) => x.received(data),
        }
    }

    /// The server closed the stream before a [`Step::Done`].
    pub fn closed(&mut self) -> Outcome {
        match self {
            Exchange::Http(x) => x.closed(),
            Exchange::Smtp(x) => x.closed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::IpAddr;

    #[test]
    fn the_prober_drives_every_kind_through_one_face() {
        let target = Endpoint::new(IpAddr::from([192, 0, 2, 11]), 80);
        let tcp = Check::Tcp(TcpCheck);
        assert_eq!((tcp.name(), tcp.transport()), ("TCP", Transport::Tcp { tls: false }));
        assert!(tcp.exchange(target).is_none() && tcp.datagram(1).is_none());
        assert_eq!(tcp.on_timeout(), Outcome::down(Detail::Timeout));

        let https = Check::Http(HttpCheck::get("/").with_tls());
        assert_eq!((https.name(), https.transport()), ("HTTPS", Transport::Tcp { tls: true }));
        let mut x = https.exchange(target).unwrap();
        assert!(matches!(x.start(), Step::Send(_)));
        assert_eq!(x.received(b"HTTP/1.1 204 No Content\r\n\r\n"), Step::Done(Outcome::up(Detail::Status(204))));

        let dns = Check::Dns(DnsCheck::default());
        let q = dns.datagram(0x1_0203).unwrap();
        assert_eq!(&q[..2], &[0x02, 0x03]);
        let mut reply = q.clone();
        reply[2] = 0x81;
        assert_eq!(dns.judge_datagram(0x1_0203, &reply), Some(Outcome::up(Detail::Passed)));
        assert_eq!(dns.judge_datagram(0x1_0204, &reply), None);

        let ping = Check::Ping(PingCheck);
        assert_eq!(ping.transport(), Transport::Icmp);
        let payload = ping.datagram(42).unwrap();
        assert_eq!(ping.judge_datagram(42, &payload), Some(Outcome::up(Detail::Passed)));
        assert_eq!(ping.judge_datagram(43, &payload), None);

        let udp = Check::Udp(UdpCheck::new(b"hi"));
        assert_eq!(udp.on_timeout(), Outcome::up(Detail::Silence));
        assert_eq!(Check::Misc(MiscCheck::new("/bin/true", &[])).transport(), Transport::Process);
        assert!(Check::Misc(MiscCheck::new("", &[])).validate().is_err());
        assert_eq!(Check::Smtp(SmtpCheck::default()).exchange(target).unwrap().start(), Step::Wait);
    }
}
