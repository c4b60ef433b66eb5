//! Real advertisements through the VRRP room: the captures of tcpdump's test suite
//! (`tests/data/corpus/tcpdump-tests/vrrp.pcap`, BSD licence, see the corpus README; tcpdump's
//! reading of them is its `tests/vrrp-v.out`). 165 frames from five routers 10.0.0.91-95
//! (priority 191-195) and their IPv6 link-local twins: VRRPv2 with a simple password (VRID 42)
//! and without (43), VRRPv3 over IPv4 (44) and IPv6 (45, 46), all at 10 s. Every one must
//! decode to what tcpdump prints, re-encode byte for byte, and keep a lower-priority lvs
//! instance of the same virtual router a backup of whoever sent it. The deliberately malformed
//! `vrrp-vrrp_print-oobr-2.pcap` must be refused without a panic.
//!
//! Then keepalived's own advertisements, recorded in the interop tests (`tests/data/vrrp/`, see
//! its README): each decodes to the configuration keepalived ran with, re-encodes byte for byte,
//! and keeps an lvs backup of the same virtual router following keepalived until its
//! priority-0 advertisement, after which the backup takes over a Skew_Time later.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use lvs::core::vrrp::{Auth, Config, Group, IpHeader, Repr, State, Version};
use lvs::core::wire;
use lvs::core::Instant;
use lvs::dataplane::pcap::read_capture;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Every IP protocol 112 frame of a capture of `tests/data/corpus/tcpdump-tests`.
fn vrrp_frames(name: &str) -> Vec<(Instant, IpHeader, Vec<u8>)> {
    capture_frames(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus/tcpdump-tests").join(name))
}

/// Every IP protocol 112 frame of a capture: capture time, the IP header fields VRRP checks,
/// the VRRP message as the IP header bounds it.
fn capture_frames(path: &Path) -> Vec<(Instant, IpHeader, Vec<u8>)> {
    let mut out = Vec::new();
    for c in read_capture(path).unwrap() {
        let Ok(m) = wire::parse(&c.data) else { continue };
        if m.proto != lvs::core::vrrp::PROTO {
            continue;
        }
        let l3 = usize::from(m.l3);
        let ttl = c.data[l3 + if m.src.is_ipv6() { 7 } else { 8 }];
        let payload = c.data[usize::from(m.l4)..l3 + usize::from(m.ip_len)].to_vec();
        out.push((Instant::from_nanos(c.ts_ns), IpHeader { src: m.src, dst: m.dst, ttl }, payload));
    }
    out
}

#[test]
fn tcpdump_vrrp_capture_decodes_as_tcpdump_reads_it() {
    let frames = vrrp_frames("vrrp.pcap");
    assert_eq!(frames.len(), 165);
    let mut per_vrid = [0usize; 256];
    for (_, h, bytes) in &frames {
        assert_eq!(h.ttl, 255);
        let r = Repr::parse(bytes, h.src, h.dst).unwrap_or_else(|e| panic!("{h:?}: {}", e.as_str()));
        per_vrid[usize::from(r.vrid)] += 1;
        assert_eq!(r.to_bytes(h.src, h.dst), *bytes, "re-encoded byte for byte");
        let addrs: Vec<IpAddr> = r.addrs.iter().collect();
        if let IpAddr::V4(src) = h.src {
            // tcpdump: "prio 191" from 10.0.0.91, ... "prio 195" from 10.0.0.95.
            assert_eq!(r.priority, 100 + src.octets()[3]);
        }
        match r.vrid {
            42 => {
                assert_eq!((r.version, r.interval, r.auth), (Version::V2, 10, Auth::password("abcdefgh")));
                assert_eq!(addrs, [ip("10.4.42.1"), ip("10.4.42.2"), ip("10.4.42.3")]);
            }
            43 => {
                assert_eq!((r.version, r.interval, r.auth), (Version::V2, 10, Auth::None));
                assert_eq!(addrs, [ip("10.4.43.150")]);
            }
            44 => {
                assert_eq!((r.version, r.interval), (Version::V3, 1000));
                assert_eq!(addrs, [ip("10.4.44.100"), ip("10.4.44.200")]);
            }
            45 => assert_eq!(addrs, [ip("fe80::200:5eff:fe00:22d"), ip("2001::abcd:a")]),
            46 => {
                assert_eq!(addrs.len(), 5);
                assert_eq!(addrs[0], ip("fe80::200:5eff:fe00:22e"));
            }
            v => panic!("unexpected VRID {v}"),
        }
    }
    assert_eq!(&per_vrid[42..47], &[34, 34, 33, 32, 32]);
}

#[test]
fn tcpdump_vrrp_capture_keeps_a_lower_priority_instance_backup() {
    let frames = vrrp_frames("vrrp.pcap");
    let mut g = Group::new();
    let v4 = |vrid: u8, version: Version, vips: &[&str]| {
        let mut c = Config::new(vrid, ip("10.0.0.1"), vips.iter().map(|a| ip(a)).collect());
        c.version = version;
        c.advert_int = Duration::from_secs(10);
        c
    };
    let mut pass = v4(42, Version::V2, &["10.4.42.1", "10.4.42.2", "10.4.42.3"]);
    pass.auth = Auth::password("abcdefgh");
    let mut ids = vec![
        g.add_instance(pass).unwrap(),
        g.add_instance(v4(43, Version::V2, &["10.4.43.150"])).unwrap(),
        g.add_instance(v4(44, Version::V3, &["10.4.44.200", "10.4.44.100"])).unwrap(),
    ];
    let six = |vrid: u8, vips: &[&str]| {
        let mut c = Config::new(vrid, ip("fe80::1"), vips.iter().map(|a| ip(a)).collect());
        c.advert_int = Duration::from_secs(10);
        c
    };
    ids.push(g.add_instance(six(45, &["fe80::200:5eff:fe00:22d", "2001::abcd:a"])).unwrap());
    let forty_six = ["fe80::200:5eff:fe00:22e", "2001::eeff:a", "2001::eeff:b", "2001::eeff:c", "2001::eeff:d"];
    ids.push(g.add_instance(six(46, &forty_six)).unwrap());
    let start = frames[0].0;
    g.start(start);
    for (t, h, bytes) in &frames {
        while g.poll(*t).is_some() {}
        g.handle(*t, 0, h, bytes).unwrap_or_else(|r| panic!("{h:?} refused: {}", r.as_str()));
        let vrid = bytes[1];
        let (_, vr) = g.instances().find(|(_, i)| i.config().vrid == vrid).unwrap();
        assert_eq!(vr.state(), State::Backup);
        assert_eq!(vr.master(), Some(h.src));
    }
    for (id, heard) in ids.into_iter().zip([34, 34, 33, 32, 32]) {
        let vr = g.instance(id).unwrap();
        assert_eq!(vr.drops().iter().sum::<u64>(), 0);
        assert_eq!(vr.stats().addr_list_err, 0, "VRID {}", vr.config().vrid);
        assert_eq!(vr.stats().adverts_rx, heard);
    }
}

#[test]
fn malformed_vrrp_capture_is_refused_without_panic() {
    let frames = vrrp_frames("vrrp-vrrp_print-oobr-2.pcap");
    assert!(!frames.is_empty());
    for (_, h, bytes) in &frames {
        assert!(Repr::parse(bytes, h.src, h.dst).is_err());
        let mut g = Group::new();
        let mut c = Config::new(bytes.get(1).copied().unwrap_or(1).max(1), ip("10.0.0.1"), vec![ip("10.0.0.100")]);
        c.version = Version::V3;
        g.add_instance(c).unwrap();
        g.start(Instant::ZERO);
        let r = g.handle(Instant::from_secs(1), 0, h, bytes);
        assert!(r.is_err());
        let counted: u64 = g.drops().iter().chain(g.instances().flat_map(|(_, i)| i.drops())).sum();
        assert_eq!(counted, 1, "{r:?} counted once");
    }
}

/// One recorded keepalived capture: its file, version, interval (as the wire carries it), the
/// IP destination, and the virtual address.
struct Recorded {
    file: &'static str,
    version: Version,
    interval: u16,
    dst: &'static str,
    vip: &'static str,
}

const RECORDED: [Recorded; 4] = [
    Recorded {
        file: "keepalived-v2-ipv4-1000ms.pcap",
        version: Version::V2,
        interval: 1,
        dst: "224.0.0.18",
        vip: "10.112.0.100",
    },
    Recorded {
        file: "keepalived-v2-ipv4-unicast-1000ms.pcap",
        version: Version::V2,
        interval: 1,
        dst: "10.112.0.11",
        vip: "10.112.0.100",
    },
    Recorded {
        file: "keepalived-v3-ipv4-100ms.pcap",
        version: Version::V3,
        interval: 10,
        dst: "224.0.0.18",
        vip: "10.112.0.100",
    },
    Recorded {
        file: "keepalived-v3-ipv6-100ms.pcap",
        version: Version::V3,
        interval: 10,
        dst: "ff02::12",
        vip: "fd00:112::100",
    },
];

fn recorded(r: &Recorded) -> Vec<(Instant, IpHeader, Vec<u8>)> {
    capture_frames(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vrrp").join(r.file))
}

#[test]
fn keepalived_advertisements_decode_as_configured() {
    for r in &RECORDED {
        let frames = recorded(r);
        assert_eq!(frames.len(), 5, "{}", r.file);
        let priorities: Vec<u8> = frames.iter().map(|(_, _, b)| b[2]).collect();
        assert_eq!(priorities, [150, 150, 150, 150, 0], "{}", r.file);
        for (_, h, bytes) in &frames {
            assert_eq!(h.ttl, 255);
            assert_eq!(h.dst, ip(r.dst));
            if h.src.is_ipv4() {
                assert_eq!(h.src, ip("10.112.0.10"));
            }
            let a = Repr::parse(bytes, h.src, h.dst).unwrap_or_else(|e| panic!("{}: {}", r.file, e.as_str()));
            assert_eq!((a.version, a.vrid, a.interval, a.auth), (r.version, 51, r.interval, Auth::None), "{}", r.file);
            assert_eq!(a.addrs.iter().collect::<Vec<_>>(), [ip(r.vip)]);
            assert_eq!(a.to_bytes(h.src, h.dst), *bytes, "{}: re-encoded byte for byte", r.file);
        }
    }
}

#[test]
fn keepalived_advertisements_lead_an_lvs_backup() {
    for r in &RECORDED {
        let frames = recorded(r);
        let (_, first, _) = &frames[0];
        let primary = if first.src.is_ipv6() { ip("fe80::1") } else { ip("10.112.0.11") };
        let mut c = Config::new(51, primary, vec![ip(r.vip)]);
        c.version = r.version;
        c.advert_int = if r.version == Version::V2 {
            Duration::from_secs(u64::from(r.interval))
        } else {
            Duration::from_millis(u64::from(r.interval) * 10)
        };
        if !first.dst.is_multicast() {
            c.unicast_peers = vec![first.src];
        }
        let mut g = Group::new();
        let id = g.add_instance(c).unwrap();
        let start = frames[0].0;
        g.start(start);
        for (t, h, bytes) in &frames {
            while g.poll(*t).is_some() {}
            g.handle(*t, 0, h, bytes).unwrap_or_else(|e| panic!("{}: refused: {}", r.file, e.as_str()));
            assert_eq!(g.instance(id).unwrap().state(), State::Backup, "{}", r.file);
        }
        let vr = g.instance(id).unwrap();
        assert_eq!((vr.stats().adverts_rx, vr.stats().pri_zero_rx, vr.stats().addr_list_err), (5, 1, 0));
        // After priority 0 the backup waits Skew_Time only, then takes over.
        let (last, _, _) = frames[4];
        let due = g.next_deadline().unwrap();
        assert_eq!(due - last, vr.skew_time(), "{}", r.file);
        while g.poll(due).is_some() {}
        assert_eq!(g.instance(id).unwrap().state(), State::Master, "{}", r.file);
    }
}
