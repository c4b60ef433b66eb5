//! A director with FullNAT services (TOA over IPv4, PROXY v1 over IPv4, PROXY v2 over IPv6,
//! TOA from an IPv6 VIP to an IPv4 server — fnat64)
//! fed mutations of one connection's packets both ways: never a panic, every drop counted,
//! every forward parsable. The fixtures — a handshake, data each way with the server's reply
//! aimed at the first local port (1024), FIN — are built once and cloned per record, so the
//! fuzzer spends its effort on sequence numbers, options and flags rather than on headers.
//!
//! Input: records of `pick: u8, clock: u8, n: u8` then `n` times `offset: u16 (big-endian),
//! xor: u8`; `pick` chooses the fixture, `clock` how far time moves before it, and each pair
//! flips bits at `offset` (modulo the frame's length).
#![no_main]

mod common;

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lvs_core::addr::Af;
use lvs_core::neigh::{MacAddr, Neighbour};
use lvs_core::proto::tcp::flags::{ACK, FIN, SYN};
use lvs_core::testkit::Tcp;
use lvs_core::{DirectorConfig, PortConfig};

const RULES: &str = "\
-A -t 203.0.113.100:80 -s rr
-a -t 203.0.113.100:80 -r 192.0.2.11:8080 -b -w 1
-P -t 203.0.113.100:80 -z 192.0.2.200
-A -t 203.0.113.100:81 -s rr --proxy-protocol v1
-a -t 203.0.113.100:81 -r 192.0.2.11:8080 -b -w 1
-P -t 203.0.113.100:81 -z 192.0.2.201
-A -t [2001:db8::100]:80 -s rr --proxy-protocol v2
-a -t [2001:db8::100]:80 -r [2001:db8::11]:8080 -b -w 1
-P -t [2001:db8::100]:80 -z 2001:db8::200
-A -t [2001:db8::100]:81 -s rr
-a -t [2001:db8::100]:81 -r 192.0.2.12:8080 -b -w 1
-P -t [2001:db8::100]:81 -z 192.0.2.202
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One connection's packets per service: client SYN, server SYN-ACK to the first local port,
/// the handshake's ACK, a request, the server's answer, the client's FIN.
fn fixtures() -> &'static [Vec<u8>] {
    static F: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    F.get_or_init(|| {
        let mut out = Vec::new();
        for (vip, vport, rs, lip, client) in [
            ("203.0.113.100", 80, "192.0.2.11", "192.0.2.200", "198.51.100.2"),
            ("203.0.113.100", 81, "192.0.2.11", "192.0.2.201", "198.51.100.2"),
            ("2001:db8::100", 80, "2001:db8::11", "2001:db8::200", "2001:db8:9::2"),
            ("2001:db8::100", 81, "192.0.2.12", "192.0.2.202", "2001:db8:9::2"),
        ] {
            let c = (ip(client), 40000);
            let v = (ip(vip), vport);
            let (r, l) = ((ip(rs), 8080), (ip(lip), 1024));
            out.push(Tcp::new(c, v, SYN).build());
            out.push(Tcp::new(r, l, SYN | ACK).build());
            out.push(Tcp::new(c, v, ACK).build());
            out.push(Tcp { payload: b"GET / HTTP/1.0\r\n\r\n", ..Tcp::new(c, v, ACK) }.build());
            out.push(Tcp { payload: b"HTTP/1.0 200 OK\r\n\r\n", ..Tcp::new(r, l, ACK) }.build());
            out.push(Tcp::new(c, v, FIN | ACK).build());
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1]));
    let mut d =
        lvs::director(DirectorConfig { ports: vec![port], max_conns: 16, fnat_mtu: 600, ..DirectorConfig::default() });
    let gw = Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 };
    d.set_gateway(Af::V4, gw);
    d.set_gateway(Af::V6, gw);
    for a in ["192.0.2.11", "192.0.2.12", "2001:db8::11"] {
        d.set_neighbour(ip(a), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
    }
    lvs_core::config::restore(&mut d, RULES).unwrap();
    common::replay_mutated(&mut d, fixtures(), data);
});
