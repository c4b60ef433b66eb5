//! An established packet allocates nothing (DESIGN.md: the core "never allocates on the
//! per-packet fast path of an established flow"), proved with a counting global allocator: DR,
//! TUN (IP-in-IP, and GUE and GRE with their checksums) and NAT in both directions, for IPv4
//! and IPv6, one packet at a time and in bursts; TUN packets over the MTU, once the director's
//! pool of fragment frames has grown; and the later datagrams of flows to a service with the
//! SIP persistence engine (whose Call-ID is read only when a flow is scheduled).
//! `stats_alloc` wraps the system allocator and counts.

#[path = "../examples/common/traffic.rs"]
mod traffic;

use std::alloc::System;
use std::net::IpAddr;

use lvs::core::addr::Af;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::{udp, Tcp};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, Instant, PortConfig, Verdict};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use traffic::{client, data, director, vip};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations and reallocations made while `f` runs. The counter is the process's, so this
/// binary holds a single test: no other thread allocates meanwhile.
fn allocations(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.allocations + change.reallocations
}

const FLOWS: u32 = 64;
const NOW: Instant = Instant::from_secs(2);

/// The destination address of a rewritten IPv4 or IPv6 frame (untagged Ethernet).
fn dst_addr(frame: &[u8]) -> IpAddr {
    match frame[14] >> 4 {
        4 => IpAddr::from(<[u8; 4]>::try_from(&frame[30..34]).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap()),
    }
}

/// Sends `templates` one at a time and as one burst, asserting that each is transmitted and
/// that processing them allocated nothing.
fn forward_without_allocating(d: &mut lvs::Director, what: &str, templates: &[Vec<u8>]) {
    process_without_allocating(d, what, templates, |v| matches!(v, Verdict::Transmit { .. }));
}

/// Sends `templates` one at a time and as one burst, asserting that each verdict is `want`ed
/// and that processing them allocated nothing.
fn process_without_allocating(d: &mut lvs::Director, what: &str, templates: &[Vec<u8>], want: fn(&Verdict) -> bool) {
    let mut frames: Vec<Frame> = templates.iter().map(|t| Frame::new(DEFAULT_HEADROOM, t)).collect();
    let mut verdicts = vec![Verdict::NotMine; frames.len()];
    for (f, t) in frames.iter_mut().zip(templates) {
        f.load(DEFAULT_HEADROOM, t);
        let mut v = Verdict::NotMine;
        let n = allocations(|| v = d.process(NOW, f));
        assert!(want(&v), "{what}: {v:?}");
        assert_eq!(n, 0, "{what}: allocations for one packet");
    }
    for (f, t) in frames.iter_mut().zip(templates) {
        f.load(DEFAULT_HEADROOM, t);
    }
    let n = allocations(|| d.process_burst(NOW, &mut frames, &mut verdicts));
    assert!(verdicts.iter().all(want), "{what}: {verdicts:?}");
    assert_eq!(n, 0, "{what}: allocations for a burst of {} packets", frames.len());
}

fn client_direction(af: Af, method: &str) -> lvs::Director {
    let mut d = director(af, method, 0..FLOWS, 1);
    let segments: Vec<Vec<u8>> = (0..FLOWS).map(|i| data(af, i)).collect();
    forward_without_allocating(&mut d, &format!("{method} {af:?} client"), &segments);
    d
}

fn nat_replies(af: Af, d: &mut lvs::Director) {
    // Each flow's real server, read from where its client segment was sent.
    let replies: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| {
            let mut f = Frame::new(DEFAULT_HEADROOM, &data(af, i));
            assert!(matches!(d.process(NOW, &mut f), Verdict::Transmit { .. }));
            let mut t = Tcp::new((dst_addr(f.data()), 80), client(af, i), flags::ACK);
            t.payload = &[0x66; 64];
            t.build()
        })
        .collect();
    forward_without_allocating(d, &format!("nat {af:?} reply"), &replies);
    let conns = d.connections(NOW);
    assert_eq!(conns.len(), FLOWS as usize, "the replies created nothing");
    assert!(conns.iter().all(|c| c.virt.addr == vip(af)));
}

/// Flows to `-u VIP:5060 -p 60 --pe sip`, each opened by an INVITE of its own call: the
/// next INVITE of each flow goes through without an allocation.
fn sip_flows() {
    let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1])).with_addr("192.0.2.1".parse().unwrap());
    let mut d = lvs::director(DirectorConfig { ports: vec![port; 2], ..DirectorConfig::default() });
    let mut rules = String::from("-A -u 203.0.113.100:5060 -s rr -p 60 --pe sip\n");
    for i in 1..=4u8 {
        d.set_neighbour(
            format!("192.0.2.1{i}").parse().unwrap(),
            Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i]), port: 1 },
        );
        rules.push_str(&format!("-a -u 203.0.113.100:5060 -r 192.0.2.1{i}:5060 -g -w 1\n"));
    }
    lvs::core::config::restore(&mut d, &rules).unwrap();
    let invites: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| {
            let msg = format!(
                "INVITE sip:bob@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\nCall-ID: call-{i}@example.com\r\n\r\n"
            );
            udp(client(Af::V4, i), (vip(Af::V4), 5060), msg.as_bytes())
        })
        .collect();
    for t in &invites {
        assert!(matches!(d.process(NOW, &mut Frame::new(DEFAULT_HEADROOM, t)), Verdict::Transmit { .. }));
    }
    forward_without_allocating(&mut d, "sip v4 client", &invites);
    assert_eq!(d.connections(NOW).iter().filter(|c| c.template).count(), FLOWS as usize, "a template per call");
}

/// A 2000-byte segment of flow `i` without DF: it leaves a 1500-byte tunnel in two fragments.
fn large_without_df(i: u32) -> Vec<u8> {
    let mut t = Tcp::new(client(Af::V4, i), (vip(Af::V4), 80), flags::ACK);
    let body = [0x55; 1960];
    t.payload = &body;
    let mut b = t.build();
    b[20] &= !0x40;
    b[24..26].fill(0);
    let sum: u32 = b[14..34].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    b[24..26].copy_from_slice(&(!(((sum & 0xffff) + (sum >> 16)) as u16)).to_be_bytes());
    b
}

/// Fragmenting reuses the director's pool: after one burst has grown it, neither single
/// packets nor bursts allocate.
fn fragments_without_allocating() {
    let mut d = director(Af::V4, "tun", 0..FLOWS, 1);
    let templates: Vec<Vec<u8>> = (0..FLOWS).map(large_without_df).collect();
    let mut frames: Vec<Frame> = templates.iter().map(|t| Frame::new(DEFAULT_HEADROOM, t)).collect();
    let mut verdicts = vec![Verdict::NotMine; frames.len()];
    d.process_burst(NOW, &mut frames, &mut verdicts);
    let fragmented = |v: &Verdict| matches!(v, Verdict::Fragmented { more: 1, .. });
    assert!(verdicts.iter().all(fragmented), "{verdicts:?}");
    process_without_allocating(&mut d, "tun v4 fragmented", &templates, fragmented);
    assert_eq!(d.fragments().len(), FLOWS as usize);
}

#[test]
fn established_packets_allocate_nothing() {
    for af in [Af::V4, Af::V6] {
        client_direction(af, "dr");
        client_direction(af, "tun");
        client_direction(af, "gue");
        client_direction(af, "gre");
        let mut d = client_direction(af, "nat");
        nat_replies(af, &mut d);
    }
    sip_flows();
    fragments_without_allocating();
}
