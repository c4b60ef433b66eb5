//! A burst through a director with this processor's prefetch hook
//! (`lvs::dataplane::prefetch::hook`) answers as its frames sent one at a time through
//! `process`, as the kernel takes one skb after another, though a burst parses, hashes, looks up
//! and prefetches all its frames (in both indexes, for NAT) before processing any: random bursts
//! of requests and replies — SYNs, data, FINs and resets of DR or NAT connections, strays and
//! frames that are no IP, IPv4 and IPv6 — give the same verdicts, rewritten frames, connections,
//! drops and counters, burst after burst over time that passes. (The hook itself only issues
//! prefetch instructions, which change no memory.)

use std::net::IpAddr;

use lvs::core::addr::{Af, ServiceKey};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::service::ServiceConfig;
use lvs::core::testkit::{Tcp, DIRECTOR_MAC, GW_MAC};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::PortConfig;
use lvs::{Director, DirectorConfig, Instant, Verdict};
use proptest::prelude::*;

/// The virtual address of family `af`.
fn vip(af: Af) -> IpAddr {
    match af {
        Af::V4 => IpAddr::from([203, 0, 113, 100]),
        Af::V6 => "2001:db8:100::100".parse().unwrap(),
    }
}

/// Real server `i` of family `af`.
fn rip(af: Af, i: u8) -> IpAddr {
    match af {
        Af::V4 => IpAddr::from([192, 0, 2, 11 + i]),
        Af::V6 => IpAddr::from([0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11 + u16::from(i)]),
    }
}

/// Client `c` of family `af`.
fn client(af: Af, c: u8) -> IpAddr {
    match af {
        Af::V4 => IpAddr::from([198, 51, 100, c]),
        Af::V6 => IpAddr::from([0x2001, 0xdb8, 2, 0, 0, 0, 0, u16::from(c)]),
    }
}

/// A director with one TCP service per family on port 80, three servers each, DR or NAT.
fn director(nat: bool, prefetch: bool) -> Director {
    let port = PortConfig::new(MacAddr(DIRECTOR_MAC))
        .with_addr(IpAddr::from([192, 0, 2, 1]))
        .with_addr("2001:db8:1::1".parse().unwrap());
    let prefetch = if prefetch { lvs::dataplane::prefetch::hook() } else { None };
    let cfg = DirectorConfig { prefetch, ..DirectorConfig::default().port(port).port(port) };
    let mut d = Director::new(cfg, lvs::sched::by_name);
    let fwd = if nat { FwdMethod::Masq } else { FwdMethod::Route };
    for af in [Af::V4, Af::V6] {
        d.set_gateway(af, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
        let key = ServiceKey::tcp(vip(af), 80);
        d.add_service(ServiceConfig::new(key, "rr")).unwrap();
        for i in 0..3 {
            d.set_neighbour(rip(af, i), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 11 + i]), port: 1 });
            d.add_dest(&key, RealServer::new(rip(af, i), 8080, fwd, 1)).unwrap();
        }
    }
    d
}

/// One frame of a burst.
#[derive(Clone, Debug)]
enum Pkt {
    /// Client `c` (of 8), source port `p` (of 4), to the service, with TCP flags.
    Request { v6: bool, c: u8, p: u8, fl: u8 },
    /// Server `s` answering client `c`'s port `p` (a reply only NAT expects).
    Reply { v6: bool, s: u8, c: u8, p: u8, fl: u8 },
    /// Bytes that are no IP packet.
    Junk(u8),
}

impl Pkt {
    fn frame(&self) -> Frame {
        let af = |v6: bool| if v6 { Af::V6 } else { Af::V4 };
        match *self {
            Pkt::Request { v6, c, p, fl } => {
                Tcp::new((client(af(v6), c), 40_000 + u16::from(p)), (vip(af(v6)), 80), fl).frame()
            }
            Pkt::Reply { v6, s, c, p, fl } => {
                let mut t = Tcp::new((rip(af(v6), s), 8080), (client(af(v6), c), 40_000 + u16::from(p)), fl);
                t.src_mac = [2, 0, 0, 0, 1, 11 + s];
                t.frame()
            }
            Pkt::Junk(b) => Frame::new(DEFAULT_HEADROOM, &[b; 60]),
        }
    }
}

fn tcp_flags() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(flags::SYN),
        6 => Just(flags::ACK),
        2 => Just(flags::FIN | flags::ACK),
        1 => Just(flags::RST),
        2 => Just(flags::SYN | flags::ACK),
    ]
}

fn pkt() -> impl Strategy<Value = Pkt> {
    prop_oneof![
        8 => (any::<bool>(), 1..9u8, 0..4u8, tcp_flags()).prop_map(|(v6, c, p, fl)| Pkt::Request { v6, c, p, fl }),
        4 => (any::<bool>(), 0..3u8, 1..9u8, 0..4u8, tcp_flags())
            .prop_map(|(v6, s, c, p, fl)| Pkt::Reply { v6, s, c, p, fl }),
        1 => any::<u8>().prop_map(Pkt::Junk),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_burst_with_the_prefetch_hook_answers_as_its_frames_one_at_a_time(
        nat in any::<bool>(),
        bursts in prop::collection::vec((prop::collection::vec(pkt(), 0..80), 0..200u64), 1..8),
    ) {
        let (mut with, mut single) = (director(nat, true), director(nat, false));
        let mut now = 1;
        for (i, (pkts, pause)) in bursts.iter().enumerate() {
            now += pause;
            let t = Instant::from_secs(now);
            let frames: Vec<Frame> = pkts.iter().map(Pkt::frame).collect();
            let (mut a, mut c) = (frames.clone(), frames);
            let mut va = vec![Verdict::NotMine; a.len()];
            with.tick(t);
            single.tick(t);
            with.process_burst(t, &mut a, &mut va);
            let vc: Vec<Verdict> = c.iter_mut().map(|f| single.process(t, f)).collect();
            prop_assert_eq!(&va, &vc, "verdicts of burst {} and of its frames one by one", i);
            prop_assert_eq!(&a, &c, "frames of burst {} and of its frames one by one", i);
            prop_assert_eq!(with.connections(t), single.connections(t), "connections after burst {}, one by one", i);
            prop_assert_eq!(with.drops(), single.drops(), "drops after burst {}, one by one", i);
            prop_assert_eq!(with.stats().counters(), single.stats().counters(), "counters after burst {}, one by one", i);
        }
    }
}
