//! A SYN flood against a SYN-proxied NAT service, simulated (sans-IO, simulated time, no
//! sockets): established flows first, then spoofed SYNs at 1 M/s from random sources with a
//! legitimate client opening a connection every `every` SYNs, then every established flow
//! sends a segment. Shared by `examples/synflood.rs` (the figures in the README) and
//! `tests/synflood.rs` (the goals of issue 16 at a smaller scale).

use std::net::{IpAddr, Ipv4Addr};

use lvs::core::proto::tcp::flags::{ACK, SYN};
use lvs::core::testkit::{Tcp, DIRECTOR_MAC, GW_MAC};
use lvs::core::wire::{self, Frame, DEFAULT_HEADROOM};
use lvs::core::{Af, FwdMethod, MacAddr, Neighbour, PortConfig, RealServer, ServiceConfig, ServiceKey};
use lvs::{Director, DirectorConfig, Instant, Verdict};

/// What the flood did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Spoofed SYNs sent.
    pub(crate) spoofed: u64,
    /// SYN-ACKs the director answered them with.
    pub(crate) cookies_sent: u64,
    /// Legitimate clients that tried during the flood, and those whose connection reached the
    /// real server (its handshake completed by the director).
    pub(crate) legit_tried: u64,
    pub(crate) legit_ok: u64,
    /// Flows established before the flood, and those that still pass a segment after it.
    pub(crate) established: u64,
    pub(crate) survived: u64,
    /// Connection-table entries at the end, and how many of them no legitimate client made.
    pub(crate) entries: u64,
    pub(crate) spoofed_entries: u64,
}

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const MSS: [u8; 4] = [2, 4, 0x05, 0xb4];
const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];

fn rs(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11 + (i % 4) as u8))
}

/// The director: one SYN-proxied NAT service on `VIP:80` with four real servers.
fn director() -> Director {
    let cfg = DirectorConfig::default().with_random_seeds().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
    let mut d = lvs::director(cfg);
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
    let key = ServiceKey::tcp(IpAddr::V4(VIP), 80);
    d.add_service(ServiceConfig { synproxy: true, ..ServiceConfig::new(key, "wlc") }).expect("service");
    for i in 0..4 {
        d.set_neighbour(rs(i), Neighbour { mac: MacAddr(RS_MAC), port: 0 });
        d.add_dest(&key, RealServer::new(rs(i), 8080, FwdMethod::Masq, 1)).expect("server");
    }
    d
}

/// The sequence number, flags and destination of a TCP frame the director sent.
fn tcp_of(f: &Frame) -> Option<(u32, u8, IpAddr, u16)> {
    let m = wire::parse(f.data()).ok()?;
    let l4 = usize::from(m.l4);
    let b = f.data();
    let seq = u32::from_be_bytes(b.get(l4 + 4..l4 + 8)?.try_into().ok()?);
    Some((seq, *b.get(l4 + 13)?, m.dst, m.dport))
}

/// A legitimate client's whole handshake through the SYN proxy at `now`; the client's
/// sequence state (`isn`, the cookie) when the real server got the director's final ACK.
fn connect(d: &mut Director, now: Instant, client: (IpAddr, u16), isn: u32) -> Option<u32> {
    let vip = (IpAddr::V4(VIP), 80);
    let mut f = Tcp { seq: isn, options: &MSS, ..Tcp::new(client, vip, SYN) }.frame();
    if !matches!(d.process(now, &mut f), Verdict::Transmit { dest: None, .. }) {
        return None;
    }
    let (cookie, fl, ..) = tcp_of(&f)?;
    if fl != SYN | ACK {
        return None;
    }
    let ack = Tcp { seq: isn.wrapping_add(1), ack: cookie.wrapping_add(1), ..Tcp::new(client, vip, ACK) };
    let mut f = ack.frame();
    if !matches!(d.process(now, &mut f), Verdict::Transmit { dest: Some(_), .. }) {
        return None;
    }
    let (_, fl, server, sport) = tcp_of(&f)?;
    if fl != SYN {
        return None;
    }
    let synack = Tcp {
        seq: 7_000_000,
        ack: isn.wrapping_add(1),
        src_mac: RS_MAC,
        dst_mac: DIRECTOR_MAC,
        ..Tcp::new((server, sport), client, SYN | ACK)
    };
    let mut f = synack.frame();
    if !matches!(d.process(now, &mut f), Verdict::Transmit { dest: Some(_), .. }) {
        return None;
    }
    let (seq, fl, to, _) = tcp_of(&f)?;
    (fl == ACK && to == server && seq == isn.wrapping_add(1)).then_some(cookie)
}

/// A small deterministic generator for spoofed sources (xorshift64*).
struct Rand(u64);

impl Rand {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Runs the flood: `established` flows first, then `spoofed` SYNs at one per simulated
/// microsecond with a legitimate client every `every` of them, then a segment on each
/// established flow.
pub(crate) fn run(established: u32, spoofed: u64, every: u64) -> Report {
    let mut d = director();
    let mut r = Report::default();
    let mut now = Instant::from_secs(1);
    let mut flows = Vec::new();
    for i in 0..established {
        let c = (IpAddr::V4(Ipv4Addr::new(100, 64, (i >> 8) as u8, i as u8)), 10_000 + (i % 50_000) as u16);
        if let Some(cookie) = connect(&mut d, now, c, i.wrapping_mul(7919)) {
            flows.push((c, i.wrapping_mul(7919), cookie));
        }
    }
    r.established = flows.len() as u64;
    let template =
        Tcp { options: &MSS, ..Tcp::new((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1), (IpAddr::V4(VIP), 80), SYN) }.build();
    let mut f = Frame::new(DEFAULT_HEADROOM, &template);
    let mut rng = Rand(0x9E37_79B9_7F4A_7C15);
    let mut legit = 0u32;
    for n in 0..spoofed {
        now = Instant::from_nanos(now.as_nanos() + 1_000);
        f.load(DEFAULT_HEADROOM, &template);
        let x = rng.next();
        let b = f.data_mut();
        // The IPv4 source (bytes 26..30) and the TCP source port (34..36): a random spoofed
        // client; checksums are not what the director looks at.
        b[26..30].copy_from_slice(&((x >> 16) as u32).to_be_bytes());
        b[34..36].copy_from_slice(&(x as u16 | 1024).to_be_bytes());
        b[38..42].copy_from_slice(&((x >> 32) as u32).to_be_bytes());
        let _ = d.process(now, &mut f);
        r.spoofed += 1;
        if n % every == every - 1 {
            let c = (IpAddr::V4(Ipv4Addr::new(100, 65, (legit >> 8) as u8, legit as u8)), 20_000 + legit as u16);
            r.legit_tried += 1;
            if connect(&mut d, now, c, legit.wrapping_mul(104_729)).is_some() {
                r.legit_ok += 1;
            }
            legit += 1;
        }
        if n % 4096 == 0 && d.next_deadline().is_some_and(|t| t <= now) {
            d.tick(now);
        }
    }
    d.tick(now);
    for (c, isn, cookie) in &flows {
        let data = Tcp {
            seq: isn.wrapping_add(1),
            ack: cookie.wrapping_add(1),
            payload: b"x",
            ..Tcp::new(*c, (IpAddr::V4(VIP), 80), ACK)
        };
        let mut f = data.frame();
        if matches!(d.process(now, &mut f), Verdict::Transmit { dest: Some(_), .. }) {
            r.survived += 1;
        }
    }
    r.cookies_sent = d.synproxy_stats().cookies_sent;
    r.entries = d.connections(now).len() as u64;
    r.spoofed_entries = r.entries.saturating_sub(r.established + r.legit_ok);
    r
}
