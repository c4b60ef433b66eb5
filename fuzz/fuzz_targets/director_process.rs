//! A configured director (DR, NAT and TUN services, GUE and GRE tunnels with checksums, an SCTP
//! service, a persistent fwmark service, a UDP service with the SIP persistence engine) fed a
//! sequence of arbitrary frames: never a panic, every drop counted, every forward parsable.
//! Seeds 035 and 036 are SIP datagrams: calls with and without a Call-ID, compact and folded
//! headers, a 255-byte one.
//!
//! Input: records of `ctl: u8, len: u16 (big-endian), frame: [u8; len]`; `ctl` picks the mark
//! (for the fwmark service) and how far the clock moves before the frame.
#![no_main]

#[allow(dead_code)] // only `step`: this target feeds whole frames, not mutated fixtures
mod common;

use libfuzzer_sys::fuzz_target;
use lvs_core::addr::Af;
use lvs_core::neigh::{MacAddr, Neighbour};
use lvs_core::wire::{Frame, DEFAULT_HEADROOM};
use lvs_core::{DirectorConfig, PortConfig};

const RULES: &str = "\
-A -t 203.0.113.100:80 -s wrr
-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g -w 1
-a -t 203.0.113.100:80 -r 192.0.2.12:8080 -m -w 2
-a -t 203.0.113.100:80 -r 192.0.2.13:80 -i -w 3 -x 5
-A -u 203.0.113.100:53 -s sh -o
-a -u 203.0.113.100:53 -r 192.0.2.11:53 -m -w 1
-A -f 1 -s lblcr -p 30
-a -f 1 -r 192.0.2.12:0 -g -w 1
-A --sctp-service 203.0.113.100:9 -s rr
-a --sctp-service 203.0.113.100:9 -r 192.0.2.12:99 -m -w 1
-a --sctp-service 203.0.113.100:9 -r 192.0.2.11:9 -g -w 1
-A -u 203.0.113.100:5060 -s rr -p 60 --pe sip
-a -u 203.0.113.100:5060 -r 192.0.2.11:5060 -g -w 1
-a -u 203.0.113.100:5060 -r 192.0.2.12:5060 -g -w 1
-A -t [2001:db8::100]:80 -s mh -p 60
-a -t [2001:db8::100]:80 -r [2001:db8::11]:80 -m -w 1
-A -t 203.0.113.100:443 -s rr
-a -t 203.0.113.100:443 -r 192.0.2.11 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 203.0.113.100:443 -r 2001:db8::11 -i -w 1 --tun-type gre --tun-csum
";

fuzz_target!(|data: &[u8]| {
    let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1]))
        .with_addr("192.0.2.1".parse().unwrap())
        .with_addr("2001:db8::1".parse().unwrap());
    let mut d = lvs::director(DirectorConfig {
        ports: vec![port; 2],
        tun_mtu: 600,
        max_conns: 64,
        ..DirectorConfig::default()
    });
    let gw = Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 };
    d.set_gateway(Af::V4, gw);
    d.set_gateway(Af::V6, gw);
    for (i, a) in ["192.0.2.11", "192.0.2.12", "192.0.2.13", "2001:db8::11"].iter().enumerate() {
        d.set_neighbour(a.parse().unwrap(), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i as u8]), port: 1 });
    }
    lvs_core::config::restore(&mut d, RULES).unwrap();
    let mut now = 1_000_000_000u64;
    let mut frame = Frame::with_capacity(DEFAULT_HEADROOM + 2048);
    let mut rest = data;
    while let [ctl, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        now += u64::from(ctl >> 2) * 250_000_000;
        frame.load(DEFAULT_HEADROOM, bytes);
        frame.mark = u32::from(ctl & 1);
        common::step(&mut d, now, &mut frame);
    }
});
