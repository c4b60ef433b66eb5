//! A director with SYN-proxied services (NAT, and FullNAT with a TOA) fed mutations of one
//! connection's packets both ways: never a panic, every drop counted once, every forward
//! parsable. The fixtures — the client's SYN with Linux's options, its ACK carrying the
//! cookie the director answered with (and the same ACK with data), the server's SYN-ACK,
//! data each way, a server reset, the client's FIN — are built once (the cookie by a director
//! with the same secret at the same minute) and cloned per record, so the fuzzer works on
//! cookies, options, sequence numbers and flags rather than on headers.
//!
//! Input: records of `pick: u8, clock: u8, n: u8` then `n` times `offset: u16 (big-endian),
//! xor: u8`, as `fullnat_process` reads them.
#![no_main]

mod common;

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lvs_core::addr::Af;
use lvs_core::neigh::{MacAddr, Neighbour};
use lvs_core::proto::tcp::flags::{ACK, FIN, RST, SYN};
use lvs_core::testkit::Tcp;
use lvs_core::wire::{parse, Frame};
use lvs_core::{Director, DirectorConfig, Instant, PortConfig, Verdict};

const RULES: &str = "\
-A -t 203.0.113.100:80 -s rr -j enable
-a -t 203.0.113.100:80 -r 192.0.2.11:8080 -m -w 1
-A -t 203.0.113.100:81 -s rr -j enable
-a -t 203.0.113.100:81 -r 192.0.2.11:8080 -b -w 1
-P -t 203.0.113.100:81 -z 192.0.2.200
";

/// Linux's SYN options (mss 1460, sackOK, TS 100/0, nop, wscale 7).
const SYN_OPTS: [u8; 20] = [2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 100, 0, 0, 0, 0, 1, 3, 3, 7];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn director() -> Director {
    let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1]));
    let mut d = lvs::director(DirectorConfig { ports: vec![port], max_conns: 16, ..DirectorConfig::default() });
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 });
    d.set_neighbour(ip("192.0.2.11"), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
    lvs_core::config::restore(&mut d, RULES).unwrap();
    d
}

/// Sequence number and timestamp value of a cookie SYN-ACK.
fn cookie_of(f: &Frame) -> (u32, u32) {
    let m = parse(f.data()).unwrap();
    let t = &f.data()[usize::from(m.l4)..];
    let seq = u32::from_be_bytes(t[4..8].try_into().unwrap());
    // mss(4) sackOK(2) TS: kind, len, value.
    let tsval = u32::from_be_bytes(t[30..34].try_into().unwrap());
    (seq, tsval)
}

fn fixtures() -> &'static [Vec<u8>] {
    static F: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    F.get_or_init(|| {
        let mut out = Vec::new();
        let mut d = director();
        for (vport, server_side) in [(80, ("198.51.100.2", 40000)), (81, ("192.0.2.200", 1024))] {
            let c = (ip("198.51.100.2"), 40000);
            let v = (ip("203.0.113.100"), vport);
            let (r, s) = ((ip("192.0.2.11"), 8080), (ip(server_side.0), server_side.1));
            let syn = Tcp { options: &SYN_OPTS, ..Tcp::new(c, v, SYN) };
            let mut f = syn.frame();
            assert!(matches!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { .. }));
            let (cookie, tsval) = cookie_of(&f);
            let mut ts = [1, 1, 8, 10, 0, 0, 0, 101, 0, 0, 0, 0];
            ts[8..12].copy_from_slice(&tsval.to_be_bytes());
            let ack = Tcp { seq: 1001, ack: cookie.wrapping_add(1), options: &ts, ..Tcp::new(c, v, ACK) };
            out.push(syn.build());
            out.push(ack.build());
            out.push(Tcp { payload: b"GET / HTTP/1.0\r\n\r\n", ..ack }.build());
            let sts = [1, 1, 8, 10, 0, 0, 0x23, 0x28, 0, 0, 0, 101];
            out.push(Tcp { seq: 5000, ack: 1001, options: &SYN_OPTS, ..Tcp::new(r, s, SYN | ACK) }.build());
            out.push(
                Tcp { seq: 5001, ack: 1001, options: &sts, payload: b"HTTP/1.0 200 OK\r\n\r\n", ..Tcp::new(r, s, ACK) }
                    .build(),
            );
            out.push(Tcp { seq: 0, ack: 1001, ..Tcp::new(r, s, RST | ACK) }.build());
            out.push(
                Tcp { seq: 1019, ack: cookie.wrapping_add(20), options: &ts, ..Tcp::new(c, v, FIN | ACK) }.build(),
            );
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let mut d = director();
    common::replay_mutated(&mut d, fixtures(), data);
});
