//! The VRRP room alone: the advertisement codec against public captures, every truncation and
//! refusal, and round trips of both versions and families.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::wire::{encode_addrs, Addrs, Auth, Repr, Version};
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// Advertisements from tcpdump's test suite (`tests/vrrp.pcap`, BSD licence; also in
// tests/data/corpus/tcpdump-tests/ at the workspace root), the IP payload of each frame as its
// IP header bounds it. tcpdump's own reading of them is `tests/vrrp-v.out` in its repository.

/// VRRPv2, VRID 42, priority 191, simple password "abcdefgh", 10 s, 10.4.42.1-3;
/// 10.0.0.91 → 224.0.0.18.
const V2_PASS: [u8; 28] = [
    0x21, 0x2a, 0xbf, 0x03, 0x01, 0x0a, 0xf1, 0x1f, 0x0a, 0x04, 0x2a, 0x01, 0x0a, 0x04, 0x2a, 0x02, 0x0a, 0x04, 0x2a,
    0x03, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
];
/// VRRPv2, VRID 43, priority 191, no authentication, 10 s, 10.4.43.150.
const V2_NONE: [u8; 20] =
    [0x21, 0x2b, 0xbf, 0x01, 0x00, 0x0a, 0xea, 0x2e, 0x0a, 0x04, 0x2b, 0x96, 0, 0, 0, 0, 0, 0, 0, 0];
/// VRRPv3 over IPv4, VRID 44, priority 191, 1000 cs, 10.4.44.100 and 10.4.44.200.
const V3_V4: [u8; 16] =
    [0x31, 0x2c, 0xbf, 0x02, 0x03, 0xe8, 0xb3, 0xc6, 0x0a, 0x04, 0x2c, 0x64, 0x0a, 0x04, 0x2c, 0xc8];
/// VRRPv3 over IPv6, VRID 45, priority 191, 1000 cs, fe80::200:5eff:fe00:22d and 2001::abcd:a;
/// fe80::d6ca:6dff:fe66:cf60 → ff02::12.
const V3_V6: [u8; 40] = [
    0x31, 0x2d, 0xbf, 0x02, 0x03, 0xe8, 0xcf, 0xa0, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x5e, 0xff, 0xfe, 0x00,
    0x02, 0x2d, 0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0x00, 0x0a,
];

const SRC4: &str = "10.0.0.91";
const SRC6: &str = "fe80::d6ca:6dff:fe66:cf60";

fn g4() -> IpAddr {
    IpAddr::V4(GROUP_V4)
}

fn g6() -> IpAddr {
    IpAddr::V6(GROUP_V6)
}

fn addrs_of(r: &Repr<'_>) -> Vec<IpAddr> {
    r.addrs.iter().collect()
}

/// Recomputes the checksum of an edited advertisement.
fn refix(buf: &mut [u8], src: IpAddr, dst: IpAddr) {
    buf[6] = 0;
    buf[7] = 0;
    let v3 = buf[0] >> 4 == 3;
    let mut sum = 0;
    if v3 {
        for a in [src, dst] {
            sum = match a {
                IpAddr::V4(a) => crate::wire::csum::add(sum, &a.octets()),
                IpAddr::V6(a) => crate::wire::csum::add(sum, &a.octets()),
            };
        }
        sum = crate::wire::csum::add(sum, &[0, 0, 0, buf.len() as u8, 0, PROTO]);
    }
    let c = crate::wire::csum::finish(crate::wire::csum::add(sum, buf));
    buf[6..8].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn parse_v2_password() {
    let r = Repr::parse(&V2_PASS, ip(SRC4), g4()).unwrap();
    assert_eq!((r.version, r.vrid, r.priority, r.interval), (Version::V2, 42, 191, 10));
    assert_eq!(r.auth, Auth::password("abcdefgh"));
    assert_eq!(addrs_of(&r), [ip("10.4.42.1"), ip("10.4.42.2"), ip("10.4.42.3")]);
}

#[test]
fn parse_v2_none() {
    let r = Repr::parse(&V2_NONE, ip(SRC4), g4()).unwrap();
    assert_eq!((r.version, r.vrid, r.priority, r.interval, r.auth), (Version::V2, 43, 191, 10, Auth::None));
    assert_eq!(addrs_of(&r), [ip("10.4.43.150")]);
}

#[test]
fn parse_v3_ipv4_with_pseudo_header() {
    let r = Repr::parse(&V3_V4, ip(SRC4), g4()).unwrap();
    assert_eq!((r.version, r.vrid, r.priority, r.interval), (Version::V3, 44, 191, 1000));
    assert_eq!(addrs_of(&r), [ip("10.4.44.100"), ip("10.4.44.200")]);
    // The checksum covers the destination: to a unicast address it no longer verifies.
    assert_eq!(Repr::parse(&V3_V4, ip(SRC4), ip("10.0.0.92")), Err(Reason::Checksum));
}

#[test]
fn parse_v3_ipv6() {
    let r = Repr::parse(&V3_V6, ip(SRC6), g6()).unwrap();
    assert_eq!((r.version, r.vrid, r.priority, r.interval), (Version::V3, 45, 191, 1000));
    assert_eq!(addrs_of(&r), [ip("fe80::200:5eff:fe00:22d"), ip("2001::abcd:a")]);
    assert!(r.addrs.is_v6());
    assert_eq!(Repr::parse(&V3_V6, ip("fe80::1"), g6()), Err(Reason::Checksum));
}

#[test]
fn emit_reproduces_the_captures() {
    for (bytes, src, dst) in [
        (&V2_PASS[..], ip(SRC4), g4()),
        (&V2_NONE[..], ip(SRC4), g4()),
        (&V3_V4[..], ip(SRC4), g4()),
        (&V3_V6[..], ip(SRC6), g6()),
    ] {
        let r = Repr::parse(bytes, src, dst).unwrap();
        assert_eq!(r.buffer_len(), bytes.len());
        assert_eq!(r.to_bytes(src, dst), bytes, "{r:?}");
    }
}

#[test]
fn truncated() {
    for (bytes, src, dst) in [
        (&V2_PASS[..], ip(SRC4), g4()),
        (&V2_NONE[..], ip(SRC4), g4()),
        (&V3_V4[..], ip(SRC4), g4()),
        (&V3_V6[..], ip(SRC6), g6()),
    ] {
        for n in 0..bytes.len() {
            assert_eq!(Repr::parse(&bytes[..n], src, dst), Err(Reason::Length), "{n} of {}", bytes.len());
        }
        // A byte more than the count says is refused too (the I/O side strips padding).
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(Repr::parse(&long, src, dst), Err(Reason::Length));
    }
}

#[test]
fn every_byte_is_covered_by_the_checksum() {
    for (bytes, src, dst) in
        [(&V2_PASS[..], ip(SRC4), g4()), (&V3_V4[..], ip(SRC4), g4()), (&V3_V6[..], ip(SRC6), g6())]
    {
        // From the addresses on, a flipped bit reaches no other check.
        for i in 8..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] ^= 0x10;
            assert_eq!(Repr::parse(&b, src, dst), Err(Reason::Checksum), "byte {i}");
        }
        let mut b = bytes.to_vec();
        b[2] ^= 1;
        assert_eq!(Repr::parse(&b, src, dst), Err(Reason::Checksum), "priority");
    }
}

#[test]
fn refusals() {
    let (s, d) = (ip(SRC4), g4());
    let edit = |base: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.to_vec();
        f(&mut b);
        refix(&mut b, s, d);
        Repr::parse(&b, s, d).map(|r| (r.interval, r.auth))
    };
    assert_eq!(edit(&V3_V4, &|b| b[0] = 0x41), Err(Reason::Version));
    assert_eq!(edit(&V3_V4, &|b| b[0] = 0x11), Err(Reason::Version));
    assert_eq!(edit(&V3_V4, &|b| b[0] = 0x32), Err(Reason::Type));
    assert_eq!(edit(&V3_V4, &|b| b[3] = 3), Err(Reason::Length));
    assert_eq!(edit(&V2_PASS, &|b| b[4] = 2), Err(Reason::AuthAh));
    assert_eq!(edit(&V2_PASS, &|b| b[4] = 3), Err(Reason::AuthType));
    assert_eq!(edit(&V2_PASS, &|b| b[4] = 0), Ok((10, Auth::None)));
    // The reserved bits of VRRPv3 are ignored on reception (RFC 5798 §5.2.6).
    assert_eq!(edit(&V3_V4, &|b| b[4] |= 0xf0), Ok((1000, Auth::None)));
    // VRRPv2 is IPv4 only; the families of source and destination must agree.
    assert_eq!(Repr::parse(&V2_NONE, ip("fe80::1"), g6()), Err(Reason::Version));
    assert_eq!(Repr::parse(&V3_V4, s, g6()), Err(Reason::Family));
    assert!(Addrs::new(false, &[1, 2, 3]).is_none());
    assert!(Addrs::new(true, &[0; 32]).is_some_and(|a| a.len() == 2));
}

fn addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))).boxed()
    } else {
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))).boxed()
    }
}

/// A version and family, addresses of that family, source and destination.
fn setting() -> impl Strategy<Value = (Version, Vec<IpAddr>, IpAddr, IpAddr)> {
    prop_oneof![Just((Version::V2, false)), Just((Version::V3, false)), Just((Version::V3, true))]
        .prop_flat_map(|(v, v6)| (Just(v), proptest::collection::vec(addr(v6), 0..=255), addr(v6), addr(v6)))
}

proptest! {
    #[test]
    fn round_trip(
        (version, addrs, src, dst) in setting(),
        vrid in any::<u8>(),
        priority in any::<u8>(),
        interval in any::<u16>(),
        password in proptest::option::of(any::<[u8; 8]>()),
    ) {
        let raw = encode_addrs(&addrs);
        let addrs_view = Addrs::new(src.is_ipv6(), &raw).unwrap();
        let (interval, auth) = match version {
            Version::V2 => (interval & 0xff, password.map_or(Auth::None, Auth::Password)),
            Version::V3 => (interval & wire::MAX_INTERVAL_CS, Auth::None),
        };
        let r = Repr { version, vrid, priority, interval, auth, addrs: addrs_view };
        let bytes = r.to_bytes(src, dst);
        prop_assert_eq!(bytes.len(), r.buffer_len());
        let back = Repr::parse(&bytes, src, dst).unwrap();
        prop_assert_eq!(back, r);
        prop_assert_eq!(back.addrs.iter().collect::<Vec<_>>(), addrs);
        // The checksum verifies: any single flipped bit of the message is caught somewhere.
        let mut bad = bytes.clone();
        let i = (usize::from(vrid) * 7) % bad.len();
        bad[i] ^= 1 << (priority % 8);
        prop_assert!(Repr::parse(&bad, src, dst).is_err());
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), v6 in any::<bool>()) {
        let (src, dst) = if v6 { (ip(SRC6), g6()) } else { (ip(SRC4), g4()) };
        // Whatever decodes re-encodes to the same advertisement (reserved bits and unused
        // authentication data come back as zero).
        if let Ok(r) = Repr::parse(&bytes, src, dst) {
            let again = r.to_bytes(src, dst);
            prop_assert_eq!(Repr::parse(&again, src, dst), Ok(r));
        }
    }
}

#[test]
fn reason_slots_are_dense() {
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i, "{}", r.as_str());
    }
}

#[test]
fn virtual_macs_and_groups() {
    assert_eq!(alloc::format!("{}", virtual_mac(crate::addr::Af::V4, 51)), "00:00:5e:00:01:33");
    assert_eq!(alloc::format!("{}", virtual_mac(crate::addr::Af::V6, 1)), "00:00:5e:00:02:01");
    assert_eq!(group_addr(crate::addr::Af::V6), ip("ff02::12"));
    assert_eq!(State::Fault.name(), "FAULT");
}

// ---------------------------------------------------------------------------------------------
// One instance, rule by rule (RFC 5798 §6.4, §7.1; RFC 3768; keepalived's additions).

use core::time::Duration;

use super::instance::{Action, Config, Event, Instance, IpHeader};
use crate::time::Instant;

const VIP4: &str = "10.0.0.100";

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

/// A VRRPv3 IPv4 instance on 10.0.0.`me`, VRID 7, interval 1 s.
fn v3(me: u8, prio: u8) -> Config {
    let mut c = Config::new(7, IpAddr::V4(Ipv4Addr::new(10, 0, 0, me)), alloc::vec![ip(VIP4)]);
    c.version = Version::V3;
    c.priority = prio;
    c
}

/// The same over VRRPv2.
fn v2(me: u8, prio: u8) -> Config {
    let mut c = v3(me, prio);
    c.version = Version::V2;
    c
}

fn just_before(t: Instant) -> Instant {
    Instant(t.0 - 1)
}

/// An advertisement another router sends.
#[derive(Clone)]
struct Adv {
    version: Version,
    vrid: u8,
    prio: u8,
    interval: u16,
    vips: Vec<IpAddr>,
    auth: Auth,
}

impl Adv {
    fn v3(prio: u8) -> Self {
        Adv { version: Version::V3, vrid: 7, prio, interval: 100, vips: alloc::vec![ip(VIP4)], auth: Auth::None }
    }

    fn v2(prio: u8) -> Self {
        Adv { version: Version::V2, interval: 1, ..Adv::v3(prio) }
    }

    fn bytes(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let raw = encode_addrs(&self.vips);
        let addrs = Addrs::new(src.is_ipv6(), &raw).unwrap();
        Repr {
            version: self.version,
            vrid: self.vrid,
            priority: self.prio,
            interval: self.interval,
            auth: self.auth,
            addrs,
        }
        .to_bytes(src, dst)
    }
}

fn from(me: u8) -> IpHeader {
    IpHeader { src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, me)), dst: g4(), ttl: TTL }
}

/// Feeds `adv` from 10.0.0.`me` to the group address.
fn hear(vr: &mut Instance, now: Instant, me: u8, adv: &Adv) -> Result<(), Reason> {
    let h = from(me);
    vr.handle(now, &h, &adv.bytes(h.src, h.dst))
}

fn drain(vr: &mut Instance, now: Instant) -> Vec<Action> {
    core::iter::from_fn(|| vr.poll(now)).collect()
}

fn sent(actions: &[Action]) -> Vec<(IpAddr, u8)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(t) => Some((t.dst, Repr::parse(&t.bytes, t.src, t.dst).unwrap().priority)),
            _ => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify { event, .. } => Some(*event),
            _ => None,
        })
        .collect()
}

/// Started and past its first notification.
fn started(cfg: Config) -> Instance {
    let mut vr = Instance::new(cfg).unwrap();
    vr.start(Instant::ZERO);
    drain(&mut vr, Instant::ZERO);
    vr
}

/// Started, then master after its down timer.
fn master(cfg: Config) -> (Instance, Instant) {
    let mut vr = started(cfg);
    let t = vr.next_deadline().unwrap();
    drain(&mut vr, t);
    assert_eq!(vr.state(), State::Master);
    (vr, t)
}

#[test]
fn timers_follow_the_rfc_formulas() {
    // VRRPv3: Skew_Time = (256 − 200) × 100 cs / 256 = 21.875 cs.
    let vr = Instance::new(v3(1, 200)).unwrap();
    assert_eq!(vr.skew_time(), Duration::from_micros(218_750));
    assert_eq!(vr.master_down_interval(), Duration::from_micros(3_218_750));
    // VRRPv2: Skew_Time = (256 − 200) / 256 s whatever the interval.
    let mut c = v2(1, 200);
    c.advert_int = Duration::from_secs(3);
    let vr = Instance::new(c).unwrap();
    assert_eq!(vr.skew_time(), Duration::from_micros(218_750));
    assert_eq!(vr.master_down_interval(), Duration::from_micros(9_218_750));
}

#[test]
fn startup_waits_master_down_interval_then_takes_over() {
    let mut vr = Instance::new(v3(1, 100)).unwrap();
    assert_eq!(vr.state(), State::Init);
    vr.start(Instant::ZERO);
    assert_eq!(events(&drain(&mut vr, Instant::ZERO)), [Event::Backup]);
    let mdi = vr.master_down_interval();
    assert_eq!(vr.next_deadline(), Some(Instant::ZERO + mdi));
    assert!(drain(&mut vr, just_before(Instant::ZERO + mdi)).is_empty());
    let a = drain(&mut vr, Instant::ZERO + mdi);
    // Advertisement first (the old master drops the address before our announcements), then the
    // address, five gratuitous ARPs, the notification.
    assert!(matches!(&a[0], Action::Send(t) if t.dst == g4() && t.src == ip("10.0.0.1") && t.src_mac.is_none()));
    assert!(matches!(&a[1], Action::AddAddresses(c) if c.addrs == [ip(VIP4)] && c.accept && c.vmac.is_none()));
    assert!(matches!(&a[2], Action::Announce(n) if n.addr == ip(VIP4) && n.count == 5 && n.mac.is_none()));
    assert_eq!(events(&a), [Event::Master]);
    assert_eq!(a.len(), 4);
    assert_eq!(vr.stats().became_master, 1);
    // Adver_Timer: one advertisement a second.
    let t0 = Instant::ZERO + mdi;
    assert_eq!(vr.next_deadline(), Some(t0 + Duration::from_secs(1)));
    assert_eq!(sent(&drain(&mut vr, t0 + Duration::from_secs(1))), [(g4(), 100)]);
}

#[test]
fn gratuitous_arp_timing_as_keepalived() {
    let mut c = v3(1, 100);
    c.vips.push(ip("10.0.0.101"));
    c.garp.master_refresh = Duration::from_secs(60);
    c.garp.master_refresh_repeat = 2;
    let (mut vr, t0) = master(c);
    let announces = |a: &[Action]| a.iter().filter(|x| matches!(x, Action::Announce(_))).count();
    // garp_master_delay: the second burst of 5 per address at +5 s.
    let mut seen = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(130) {
        now = vr.next_deadline().unwrap();
        let a = drain(&mut vr, now);
        for x in &a {
            if let Action::Announce(n) = x {
                seen.push(((now - t0).as_secs(), n.count));
            }
        }
        assert!(announces(&a) % 2 == 0, "every burst covers both addresses");
    }
    assert_eq!(seen, [(5, 5), (5, 5), (65, 2), (65, 2), (125, 2), (125, 2)]);
    // Leaving master cancels the bursts.
    hear(&mut vr, now, 9, &Adv::v3(200)).unwrap();
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(announces(&drain(&mut vr, now)), 0);
    assert_eq!(vr.next_deadline(), Some(now + vr.master_down_interval()), "only the down timer is left");
}

#[test]
fn owner_takes_over_at_once_and_ignores_others() {
    let mut vr = Instance::new(v3(1, PRIO_OWNER)).unwrap();
    vr.start(Instant::ZERO);
    assert_eq!(vr.state(), State::Master);
    let a = drain(&mut vr, Instant::ZERO);
    assert_eq!(sent(&a), [(g4(), 255)]);
    assert_eq!(hear(&mut vr, at(10), 2, &Adv::v3(255)), Err(Reason::Owner));
    assert_eq!(vr.state(), State::Master);
}

#[test]
fn backup_accepts_higher_and_equal_and_learns_the_interval() {
    let mut vr = started(v3(5, 100));
    // A master at 50 cs: Master_Down_Interval follows its interval.
    let mut a = Adv::v3(150);
    a.interval = 50;
    hear(&mut vr, at(100), 9, &a).unwrap();
    assert_eq!(vr.master_adver_interval(), Duration::from_millis(500));
    assert_eq!(vr.master(), Some(ip("10.0.0.9")));
    assert_eq!(vr.stats().interval_mismatch, 1);
    let mdi = vr.master_down_interval();
    assert_eq!(mdi, Duration::from_nanos(1_500_000_000 + 156 * 500_000_000 / 256));
    assert_eq!(vr.next_deadline(), Some(at(100) + mdi));
    // Equal priority from a lower address is a master too (priority ≥ local).
    hear(&mut vr, at(200), 2, &Adv::v3(100)).unwrap();
    assert_eq!(vr.next_deadline(), Some(at(200) + vr.master_down_interval()));
    assert_eq!(vr.state(), State::Backup);
}

#[test]
fn preempting_backup_discards_lower_priority_and_takes_over() {
    let mut vr = started(v3(5, 100));
    let deadline = vr.next_deadline().unwrap();
    for ms in [100, 1100, 2100, 3100] {
        hear(&mut vr, at(ms), 9, &Adv::v3(50)).unwrap();
    }
    // The timer kept running from startup.
    assert_eq!(vr.next_deadline(), Some(deadline));
    drain(&mut vr, deadline);
    assert_eq!(vr.state(), State::Master);
}

#[test]
fn nopreempt_keeps_a_lower_master() {
    let mut c = v3(5, 100);
    c.preempt = false;
    let mut vr = started(c);
    for s in 0..10 {
        hear(&mut vr, Instant::from_secs(s), 9, &Adv::v3(50)).unwrap();
        drain(&mut vr, Instant::from_secs(s));
    }
    assert_eq!(vr.state(), State::Backup);
}

#[test]
fn preempt_delay_holds_the_takeover() {
    let mut c = v3(5, 100);
    c.preempt_delay = Duration::from_secs(5);
    let mut vr = started(c);
    // keepalived: the first lower-priority advertisement starts the delay; until it ends they
    // are accepted, then discarded, and the backup takes over a Master_Down_Interval later.
    let mut s = 0;
    while vr.state() == State::Backup {
        hear(&mut vr, Instant::from_secs(s), 9, &Adv::v3(50)).unwrap();
        s += 1;
        drain(&mut vr, just_before(Instant::from_secs(s)));
    }
    let took = vr.stats().became_master;
    assert_eq!(took, 1);
    // Accepted at 0..=4 s (the delay runs to 5 s), discarded from 5 s on: master at 4 s + MDI.
    assert_eq!(s, 8);
}

#[test]
fn priority_zero_makes_a_backup_take_over_after_skew_time() {
    let mut vr = started(v3(5, 200));
    hear(&mut vr, at(500), 9, &Adv::v3(250)).unwrap();
    hear(&mut vr, at(1500), 9, &Adv::v3(0)).unwrap();
    assert_eq!(vr.stats().pri_zero_rx, 1);
    assert_eq!(vr.next_deadline(), Some(at(1500) + vr.skew_time()));
    let skew = vr.skew_time();
    drain(&mut vr, at(1500) + skew);
    assert_eq!(vr.state(), State::Master);
}

#[test]
fn master_yields_to_higher_priority_and_to_a_higher_address() {
    let (mut vr, t) = master(v3(5, 100));
    hear(&mut vr, t, 9, &Adv::v3(101)).unwrap();
    assert_eq!(vr.state(), State::Backup);
    let a = drain(&mut vr, t);
    assert!(matches!(&a[0], Action::RemoveAddresses(c) if c.addrs == [ip(VIP4)]));
    assert_eq!(events(&a), [Event::Backup]);
    assert!(sent(&a).is_empty(), "no priority 0 when yielding");
    assert_eq!(vr.next_deadline(), Some(t + vr.master_down_interval()));
    // Equal priority: the higher primary address wins (network byte order).
    let (mut vr, t) = master(v3(5, 100));
    hear(&mut vr, t, 6, &Adv::v3(100)).unwrap();
    assert_eq!(vr.state(), State::Backup);
}

#[test]
fn master_answers_lower_priority_and_priority_zero() {
    let (mut vr, t) = master(v3(5, 100));
    drain(&mut vr, t);
    // A lower priority (or an equal one from a lower address): advertise at once (RFC 9568,
    // keepalived's default), announce again, tell the application.
    for (me, prio) in [(9, 50), (4, 100)] {
        hear(&mut vr, t, me, &Adv::v3(prio)).unwrap();
        let a = drain(&mut vr, t);
        assert_eq!(sent(&a), [(g4(), 100)]);
        assert_eq!(a.iter().filter(|x| matches!(x, Action::Announce(_))).count(), 1);
        assert_eq!(events(&a), [Event::MasterRxLowerPri]);
        assert_eq!(vr.state(), State::Master);
    }
    // Priority 0: advertise at once and restart Adver_Timer.
    let later = t + Duration::from_millis(300);
    hear(&mut vr, later, 9, &Adv::v3(0)).unwrap();
    assert_eq!(sent(&drain(&mut vr, later)), [(g4(), 100)]);
    assert_eq!(vr.next_deadline(), Some(later + Duration::from_secs(1)));
    // lower_prio_no_advert: the RFCs before 9568.
    let mut c = v3(5, 100);
    c.lower_prio_no_advert = true;
    let (mut vr, t) = master(c);
    hear(&mut vr, t, 9, &Adv::v3(50)).unwrap();
    assert!(sent(&drain(&mut vr, t)).is_empty());
}

#[test]
fn shutdown_sends_priority_zero_and_gives_the_addresses_up() {
    let (mut vr, t) = master(v3(5, 100));
    drain(&mut vr, t);
    vr.shutdown(t);
    let a = drain(&mut vr, t);
    assert_eq!(sent(&a), [(g4(), 0)]);
    assert!(matches!(&a[1], Action::RemoveAddresses(_)));
    assert_eq!(events(&a), [Event::Stop]);
    assert_eq!(vr.state(), State::Init);
    assert_eq!(vr.next_deadline(), None);
    assert_eq!(vr.stats().pri_zero_tx, 1);
    assert_eq!(hear(&mut vr, t, 9, &Adv::v3(100)), Err(Reason::Inactive));
}

#[test]
fn receive_checks_drop_and_count() {
    let mut vr = started(v3(5, 100));
    let ok = Adv::v3(100);
    let h = from(9);
    let bytes = ok.bytes(h.src, h.dst);
    let mut ttl = h;
    ttl.ttl = 254;
    assert_eq!(vr.handle(at(1), &ttl, &bytes), Err(Reason::Ttl));
    let v6 = IpHeader { src: ip("fe80::9"), dst: g6(), ttl: TTL };
    let six = Adv { vips: alloc::vec![ip("fe80::100")], ..Adv::v3(100) };
    assert_eq!(vr.handle(at(1), &v6, &six.bytes(v6.src, v6.dst)), Err(Reason::Family));
    assert_eq!(vr.handle(at(1), &h, &bytes[..10]), Err(Reason::Length));
    assert_eq!(hear(&mut vr, at(1), 9, &Adv { vrid: 8, ..Adv::v3(100) }), Err(Reason::Vrid));
    assert_eq!(hear(&mut vr, at(1), 9, &Adv::v2(100)), Err(Reason::Version));
    assert_eq!(hear(&mut vr, at(1), 9, &Adv { interval: 0, ..Adv::v3(100) }), Err(Reason::Interval));
    assert_eq!(hear(&mut vr, at(1), 5, &ok), Err(Reason::Looped));
    let uni = IpHeader { dst: ip("10.0.0.5"), ..h };
    assert_eq!(vr.handle(at(1), &uni, &ok.bytes(uni.src, uni.dst)), Err(Reason::Destination));
    let mut bad = bytes.clone();
    bad[2] ^= 1;
    assert_eq!(vr.handle(at(1), &h, &bad), Err(Reason::Checksum));
    // VRRPv3: another address list is counted, not dropped (RFC 5798 §7.1 makes it a MAY).
    let other = Adv { vips: alloc::vec![ip("10.0.0.200")], ..Adv::v3(100) };
    assert_eq!(hear(&mut vr, at(1), 9, &other), Ok(()));
    assert_eq!(vr.stats().addr_list_err, 1);
    for r in [Reason::Ttl, Reason::Family, Reason::Length, Reason::Vrid, Reason::Version, Reason::Interval] {
        assert_eq!(vr.drops()[r.index()], 1, "{}", r.as_str());
    }
    assert_eq!(vr.stats().adverts_rx, 1);
}

#[test]
fn v2_checks_interval_authentication_and_addresses() {
    let mut c = v2(5, 100);
    c.auth = Auth::password("secret");
    let mut vr = started(c);
    let good = Adv { auth: Auth::password("secret"), ..Adv::v2(100) };
    assert_eq!(hear(&mut vr, at(1), 9, &good), Ok(()));
    // RFC 3768 §7.1: the interval must be ours (keepalived drops too).
    assert_eq!(hear(&mut vr, at(1), 9, &Adv { interval: 2, ..good.clone() }), Err(Reason::Interval));
    assert_eq!(hear(&mut vr, at(1), 9, &Adv { auth: Auth::None, ..good.clone() }), Err(Reason::AuthType));
    assert_eq!(hear(&mut vr, at(1), 9, &Adv { auth: Auth::password("guess"), ..good.clone() }), Err(Reason::Password));
    // RFC 3768 §7.1: a different address list is dropped unless the owner sent it.
    let other = alloc::vec![ip("10.0.0.200")];
    assert_eq!(hear(&mut vr, at(1), 9, &Adv { vips: other.clone(), ..good.clone() }), Err(Reason::AddressList));
    assert_eq!(hear(&mut vr, at(1), 9, &Adv { vips: other, prio: 255, ..good.clone() }), Ok(()));
    assert_eq!(vr.stats().addr_list_err, 2);
    // IPsec AH advertisements are a counted drop.
    let h = from(9);
    let mut ah = good.bytes(h.src, h.dst);
    ah[4] = 2;
    refix(&mut ah, h.src, h.dst);
    assert_eq!(vr.handle(at(1), &h, &ah), Err(Reason::AuthAh));
}

#[test]
fn unicast_peers_get_one_advertisement_each_and_are_the_only_ones_heard() {
    let mut c = v3(5, 100);
    c.unicast_peers = alloc::vec![ip("10.0.0.6"), ip("10.0.1.7")];
    let (mut vr, t) = master(c.clone());
    let a = drain(&mut vr, t + Duration::from_secs(1));
    assert_eq!(sent(&a), [(ip("10.0.0.6"), 100), (ip("10.0.1.7"), 100)]);
    for x in &a {
        if let Action::Send(tx) = x {
            // Each copy's VRRPv3 checksum covers its own destination.
            assert!(Repr::parse(&tx.bytes, tx.src, tx.dst).is_ok());
        }
    }
    let mut vr = started(c);
    let to_me = |me: u8, ttl: u8| IpHeader { src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, me)), dst: ip("10.0.0.5"), ttl };
    let h = to_me(6, 64);
    assert_eq!(vr.handle(at(1), &h, &Adv::v3(150).bytes(h.src, h.dst)), Ok(()), "no TTL check in unicast");
    let h = to_me(9, 255);
    assert_eq!(vr.handle(at(1), &h, &Adv::v3(150).bytes(h.src, h.dst)), Err(Reason::Peer));
    let h = IpHeader { src: ip("10.0.0.6"), dst: g4(), ttl: 255 };
    assert_eq!(vr.handle(at(1), &h, &Adv::v3(150).bytes(h.src, h.dst)), Err(Reason::Destination));
}

#[test]
fn virtual_mac_rides_on_every_action() {
    let mut c = Config::new(9, ip("fe80::5"), alloc::vec![ip("fe80::1"), ip("2001:db8::1")]);
    c.use_vmac = true;
    c.accept = false;
    assert_eq!(c.version, Version::V3, "IPv6 defaults to VRRPv3");
    let mut vr = started(c);
    let t = vr.next_deadline().unwrap();
    let a = drain(&mut vr, t);
    let vmac = Some(virtual_mac(crate::addr::Af::V6, 9));
    assert!(matches!(&a[0], Action::Send(tx) if tx.src_mac == vmac && tx.dst == g6()));
    assert!(matches!(&a[1], Action::AddAddresses(c) if c.vmac == vmac && !c.accept));
    assert!(matches!(&a[2], Action::Announce(n) if n.mac == vmac));
}

#[test]
fn configurations_the_versions_cannot_carry_are_refused() {
    let bad = |f: &dyn Fn(&mut Config)| {
        let mut c = v3(1, 100);
        f(&mut c);
        Instance::new(c).err()
    };
    assert_eq!(bad(&|c| c.vrid = 0), Some(Error::BadVrid));
    assert_eq!(bad(&|c| c.priority = 0), Some(Error::BadPriority));
    assert_eq!(bad(&|c| c.advert_int = Duration::from_millis(5)), Some(Error::BadInterval));
    assert_eq!(bad(&|c| c.advert_int = Duration::from_secs(41)), Some(Error::BadInterval));
    assert_eq!(bad(&|c| c.advert_int = Duration::from_millis(10)), None);
    assert_eq!(
        bad(&|c| {
            c.version = Version::V2;
            c.advert_int = Duration::from_millis(1500);
        }),
        Some(Error::BadInterval)
    );
    assert_eq!(bad(&|c| c.vips.clear()), Some(Error::BadAddressCount));
    assert_eq!(bad(&|c| c.vips.push(ip("2001:db8::1"))), Some(Error::FamilyMismatch));
    assert_eq!(bad(&|c| c.unicast_peers.push(ip("2001:db8::1"))), Some(Error::FamilyMismatch));
    assert_eq!(bad(&|c| c.auth = Auth::password("x")), Some(Error::AuthNeedsV2));
    assert_eq!(
        bad(&|c| {
            *c = Config::new(1, ip("fe80::1"), alloc::vec![ip("fe80::2")]);
            c.version = Version::V2;
        }),
        Some(Error::V2Ipv6)
    );
}

// ---------------------------------------------------------------------------------------------
// A simulated segment: N routers, one VRID, a lossless bus with a fixed propagation delay, and
// simulated time that jumps from deadline to deadline.

/// Propagation delay on the bus: without one, two backups whose timers fire at the same instant
/// would not both become master, and the tie-break by address would never be exercised.
const LATENCY: Duration = Duration::from_micros(100);

struct Node {
    vr: Instance,
    alive: bool,
    start: Instant,
    /// When this router last accepted an advertisement.
    last_rx: Instant,
}

struct Segment {
    nodes: Vec<Node>,
    now: Instant,
    /// Advertisements on the wire: delivery time, sender, the transmission.
    wire: Vec<(Instant, usize, super::instance::Transmit)>,
    /// Every transition to master: when, which router, when it had last accepted an
    /// advertisement.
    masters: Vec<(Instant, usize, Instant)>,
}

impl Segment {
    fn new(cfgs: Vec<(Config, Instant)>) -> Self {
        let nodes = cfgs
            .into_iter()
            .map(|(c, start)| Node { vr: Instance::new(c).unwrap(), alive: true, start, last_rx: Instant::ZERO })
            .collect();
        Segment { nodes, now: Instant::ZERO, wire: Vec::new(), masters: Vec::new() }
    }

    fn next_event(&self) -> Option<Instant> {
        let timers = self.nodes.iter().filter(|n| n.alive).filter_map(|n| {
            if n.vr.state() == State::Init {
                Some(n.start.max(self.now))
            } else {
                n.vr.next_deadline()
            }
        });
        timers.chain(self.wire.iter().map(|w| w.0)).min()
    }

    /// Runs every event up to `end`.
    fn run_until(&mut self, end: Instant) {
        while let Some(t) = self.next_event().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            let now = self.now;
            for n in self.nodes.iter_mut().filter(|n| n.alive && n.vr.state() == State::Init && n.start <= now) {
                n.vr.start(now);
            }
            let due: Vec<_> = self.wire.iter().filter(|w| w.0 <= now).cloned().collect();
            self.wire.retain(|w| w.0 > now);
            for (_, from, tx) in due {
                self.deliver(from, &tx);
            }
            self.drain();
        }
        self.now = end;
    }

    fn deliver(&mut self, from: usize, tx: &super::instance::Transmit) {
        let now = self.now;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let addressed = tx.dst.is_multicast() || tx.dst == n.vr.config().primary;
            if i == from || !n.alive || !addressed {
                continue;
            }
            match n.vr.handle(now, &IpHeader { src: tx.src, dst: tx.dst, ttl: TTL }, &tx.bytes) {
                Ok(()) => n.last_rx = now,
                Err(r) => assert_eq!(r, Reason::Inactive, "only a stopped router refuses"),
            }
        }
    }

    /// Polls every live router until none has anything to do at `now`.
    fn drain(&mut self) {
        let now = self.now;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if !n.alive {
                continue;
            }
            while let Some(a) = n.vr.poll(now) {
                match a {
                    Action::Send(tx) => self.wire.push((now + LATENCY, i, tx)),
                    Action::Notify { event: Event::Master, .. } => self.masters.push((now, i, n.last_rx)),
                    _ => {}
                }
            }
        }
    }

    fn masters_now(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].alive && self.nodes[i].vr.state() == State::Master).collect()
    }

    /// The router the election must pick among the live ones: highest priority, then highest
    /// primary address.
    fn best(&self) -> usize {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .max_by_key(|&i| (self.nodes[i].vr.priority(), self.nodes[i].vr.config().primary))
            .unwrap()
    }

    /// Kills a router without a word (power cut): it sends nothing more.
    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        self.wire.retain(|w| w.1 != i);
    }
}

/// A segment's settings: version and family, interval, unicast or multicast.
#[derive(Clone, Copy, Debug)]
struct Kind {
    version: Version,
    v6: bool,
    interval: Duration,
    unicast: bool,
}

fn kind() -> impl Strategy<Value = Kind> {
    (
        prop_oneof![Just((Version::V2, false)), Just((Version::V3, false)), Just((Version::V3, true))],
        prop_oneof![Just(1000u64), Just(100), Just(370)],
        any::<bool>(),
    )
        .prop_map(|((version, v6), ms, unicast)| Kind {
            version,
            v6,
            // VRRPv2 carries whole seconds only.
            interval: Duration::from_millis(if version == Version::V2 { 1000 } else { ms }),
            unicast,
        })
}

fn addr_of(v6: bool, i: usize) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1 + i as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + i as u8))
    }
}

fn segment(k: Kind, routers: &[(u8, u64)]) -> Segment {
    let vip = if k.v6 { ip("2001:db8::100") } else { ip("198.51.100.1") };
    let n = routers.len();
    let cfgs = routers
        .iter()
        .enumerate()
        .map(|(i, &(prio, start_ms))| {
            let mut c = Config::new(42, addr_of(k.v6, i), alloc::vec![vip]);
            c.version = k.version;
            c.priority = prio;
            c.advert_int = k.interval;
            if k.unicast {
                c.unicast_peers = (0..n).filter(|&j| j != i).map(|j| addr_of(k.v6, j)).collect();
            }
            (c, at(start_ms))
        })
        .collect();
    Segment::new(cfgs)
}

/// Long enough for any election in these settings to settle: the last start, one
/// Master_Down_Interval (under 4 intervals) to take over, one more for a preemption.
fn settled(seg: &Segment, k: Kind) -> Instant {
    let last = seg.nodes.iter().map(|n| n.start).max().unwrap();
    last + k.interval * 10
}

fn routers() -> impl Strategy<Value = Vec<(u8, u64)>> {
    // Few distinct priorities, so ties are common.
    proptest::collection::vec((prop::sample::select(alloc::vec![50u8, 100, 100, 200, 254]), 0u64..5000), 2..=5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// After convergence there is exactly one master, and it has the highest priority.
    #[test]
    fn one_master_with_the_highest_priority(k in kind(), rs in routers()) {
        let mut seg = segment(k, &rs);
        let end = settled(&seg, k);
        seg.run_until(end);
        let m = seg.masters_now();
        prop_assert_eq!(m.len(), 1, "masters {:?}", m);
        let top = rs.iter().map(|r| r.0).max().unwrap();
        prop_assert_eq!(seg.nodes[m[0]].vr.priority(), top);
        // And it stays that way.
        seg.run_until(end + k.interval * 10);
        prop_assert_eq!(seg.masters_now(), m);
    }

    /// Routers that contend at once — same start, same priority — leave the higher primary
    /// address master (RFC 5798 §6.4.3).
    #[test]
    fn ties_go_to_the_higher_address(k in kind(), n in 2usize..=5, prio in 1u8..=254) {
        let rs: Vec<(u8, u64)> = (0..n).map(|_| (prio, 0)).collect();
        let mut seg = segment(k, &rs);
        let end = settled(&seg, k);
        seg.run_until(end);
        prop_assert_eq!(seg.masters_now(), [n - 1]);
    }

    /// A master that dies without a word is replaced by the best backup one
    /// Master_Down_Interval after that backup last heard it: within Master_Down_Interval of the
    /// death.
    #[test]
    fn takeover_after_master_death(k in kind(), rs in routers(), offset in 0u64..1000, revive in any::<bool>()) {
        let mut seg = segment(k, &rs);
        let end = settled(&seg, k);
        seg.run_until(end);
        let old = seg.masters_now()[0];
        let death = end + Duration::from_millis(offset);
        seg.run_until(death);
        seg.kill(old);
        let before = seg.masters.len();
        seg.run_until(death + k.interval * 10);
        let best = seg.best();
        let (t, first, heard) = seg.masters[before];
        let mdi = seg.nodes[best].vr.master_down_interval();
        prop_assert_eq!(seg.nodes[first].vr.priority(), seg.nodes[best].vr.priority());
        prop_assert!(t > death && t <= death + mdi + LATENCY, "took over {:?} after the death", t - death);
        prop_assert_eq!(t, heard + mdi);
        prop_assert_eq!(seg.masters_now(), [best]);
        if revive {
            // It comes back. With preempt on it takes over again if its priority is above
            // everyone else's; an equal priority does not displace a running master (a backup
            // accepts priority ≥ its own, RFC 5798 §6.4.2).
            let current = seg.masters_now()[0];
            seg.nodes[old] = Node {
                vr: Instance::new(seg.nodes[old].vr.config().clone()).unwrap(),
                alive: true,
                start: seg.now,
                last_rx: Instant::ZERO,
            };
            let later = seg.now + k.interval * 10;
            seg.run_until(later);
            let (po, pc) = (seg.nodes[old].vr.priority(), seg.nodes[current].vr.priority());
            prop_assert_eq!(seg.masters_now(), [if po > pc { old } else { current }]);
        }
    }

    /// A master that shuts down sends priority 0: the best backup takes over after its
    /// Skew_Time, not Master_Down_Interval.
    #[test]
    fn priority_zero_takeover_after_skew_time(k in kind(), rs in routers(), offset in 0u64..1000) {
        let mut seg = segment(k, &rs);
        let end = settled(&seg, k);
        seg.run_until(end);
        let old = seg.masters_now()[0];
        let stop = end + Duration::from_millis(offset);
        seg.run_until(stop);
        seg.nodes[old].vr.shutdown(stop);
        seg.drain();
        seg.nodes[old].alive = false;
        let before = seg.masters.len();
        seg.run_until(stop + k.interval * 10);
        let best = seg.best();
        let (t, first, _) = seg.masters[before];
        let skew = seg.nodes[first].vr.skew_time();
        prop_assert_eq!(seg.nodes[first].vr.priority(), seg.nodes[best].vr.priority());
        prop_assert_eq!(t, stop + LATENCY + skew);
        prop_assert!(skew < seg.nodes[first].vr.master_down_interval());
        prop_assert_eq!(seg.masters_now(), [best]);
    }
}

// ---------------------------------------------------------------------------------------------
// Groups: dispatch, tracking, sync groups.

use super::group::{Group, GroupAction, InstanceId, SyncId, Target, Track};

fn gdrain(g: &mut Group, now: Instant) -> Vec<GroupAction> {
    core::iter::from_fn(|| g.poll(now)).collect()
}

fn state(g: &Group, id: InstanceId) -> State {
    g.instance(id).unwrap().state()
}

fn prio(g: &Group, id: InstanceId) -> u8 {
    g.instance(id).unwrap().priority()
}

fn track(target: Target, weight: i16, reverse: bool) -> Track {
    Track { target, weight, reverse }
}

#[test]
fn group_dispatches_by_port_family_and_vrid() {
    let mut g = Group::new();
    let a = g.add_instance(v3(5, 100)).unwrap();
    let mut c = v3(5, 100);
    c.port = 1;
    let b = g.add_instance(c).unwrap();
    assert_eq!(g.add_instance(v3(6, 100)), Err(Error::DuplicateVrid));
    let mut six = Config::new(7, ip("fe80::5"), alloc::vec![ip("fe80::100")]);
    six.port = 1;
    g.add_instance(six).unwrap();
    g.start(Instant::ZERO);
    gdrain(&mut g, Instant::ZERO);
    let h = from(9);
    let bytes = Adv::v3(150).bytes(h.src, h.dst);
    g.handle(at(10), 1, &h, &bytes).unwrap();
    assert_eq!(g.instance(b).unwrap().master(), Some(ip("10.0.0.9")));
    assert_eq!(g.instance(a).unwrap().master(), None);
    assert_eq!(g.handle(at(10), 2, &h, &bytes), Err(Reason::Vrid));
    assert_eq!(g.handle(at(10), 1, &h, &bytes[..1]), Err(Reason::Length));
    assert_eq!(g.drops()[Reason::Vrid.index()], 1);
    assert_eq!(g.drops()[Reason::Length.index()], 1);
    assert_eq!(g.instances().count(), 3);
}

#[test]
fn tracking_weights_follow_keepalived_sign_rules() {
    // (weight, reverse, OK, failing): the priority over a base of 100.
    for (weight, reverse, ok, failing) in
        [(10, false, 110, 100), (-10, false, 100, 90), (10, true, 90, 100), (-10, true, 100, 110)]
    {
        let mut g = Group::new();
        let id = g.add_instance(v3(5, 100)).unwrap();
        let t = g.add_tracker(Instant::ZERO, true, &[track(Target::Instance(id), weight, reverse)]).unwrap();
        assert_eq!(prio(&g, id), ok, "weight {weight} reverse {reverse} OK");
        g.set_tracker(Instant::ZERO, t, false).unwrap();
        assert_eq!(prio(&g, id), failing, "weight {weight} reverse {reverse} failing");
    }
    // The priority stays within 1..=254; the owner's never moves.
    let mut g = Group::new();
    let id = g.add_instance(v3(5, 200)).unwrap();
    let owner = g.add_instance(Config { vrid: 8, ..v3(5, 255) }).unwrap();
    let up = [track(Target::Instance(id), 254, false), track(Target::Instance(owner), -254, true)];
    let t = g.add_tracker(Instant::ZERO, true, &up).unwrap();
    g.add_tracker(Instant::ZERO, false, &[track(Target::Instance(owner), -254, false)]).unwrap();
    assert_eq!((prio(&g, id), prio(&g, owner)), (254, 255));
    g.add_tracker(Instant::ZERO, false, &[track(Target::Instance(id), -254, false)]).unwrap();
    g.set_tracker(Instant::ZERO, t, false).unwrap();
    assert_eq!(prio(&g, id), 1);
    assert_eq!(g.add_tracker(Instant::ZERO, true, &[track(Target::Instance(id), 255, false)]), Err(Error::BadWeight));
    // Handles of another group.
    let (mut other, x, _, s) = synced(false);
    let mut last = None;
    for _ in 0..4 {
        last = Some(other.add_tracker(Instant::ZERO, true, &[track(Target::Instance(x), 1, false)]).unwrap());
    }
    assert_eq!(g.set_tracker(Instant::ZERO, last.unwrap(), true), Err(Error::NoSuchHandle));
    assert_eq!(g.add_tracker(Instant::ZERO, true, &[track(Target::Sync(s), 0, false)]), Err(Error::NoSuchHandle));
}

#[test]
fn a_lower_priority_moves_the_backups_down_timer() {
    let mut g = Group::new();
    let id = g.add_instance(v3(5, 200)).unwrap();
    let t = g.add_tracker(Instant::ZERO, true, &[track(Target::Instance(id), -100, false)]).unwrap();
    g.start(Instant::ZERO);
    let before = g.next_deadline().unwrap();
    let mdi200 = g.instance(id).unwrap().master_down_interval();
    g.set_tracker(at(100), t, false).unwrap();
    let mdi100 = g.instance(id).unwrap().master_down_interval();
    assert_eq!(g.next_deadline().unwrap(), before + (mdi100 - mdi200));
}

#[test]
fn weight_zero_forces_fault_and_a_master_resigns() {
    let mut g = Group::new();
    let id = g.add_instance(v3(5, 100)).unwrap();
    let link = g.add_tracker(Instant::ZERO, true, &[track(Target::Instance(id), 0, false)]).unwrap();
    g.start(Instant::ZERO);
    let t = g.next_deadline().unwrap();
    gdrain(&mut g, t);
    assert_eq!(state(&g, id), State::Master);
    g.set_tracker(t, link, false).unwrap();
    assert_eq!(state(&g, id), State::Fault);
    let a = gdrain(&mut g, t);
    let acts: Vec<&Action> =
        a.iter().filter_map(|x| if let GroupAction::Instance(_, a) = x { Some(a) } else { None }).collect();
    assert!(matches!(acts[0], Action::Send(tx) if Repr::parse(&tx.bytes, tx.src, tx.dst).unwrap().priority == 0));
    assert!(matches!(acts[1], Action::RemoveAddresses(_)));
    assert!(matches!(acts[2], Action::Notify { event: Event::Fault, .. }));
    assert_eq!(g.next_deadline(), None, "no timers in FAULT");
    assert_eq!(g.handle(t, 0, &from(9), &Adv::v3(100).bytes(from(9).src, g4())), Err(Reason::Inactive));
    // Back up: BACKUP, and master again a Master_Down_Interval later.
    g.set_tracker(at(10_000), link, true).unwrap();
    assert_eq!(state(&g, id), State::Backup);
    let mdi = g.instance(id).unwrap().master_down_interval();
    assert_eq!(g.next_deadline(), Some(at(10_000) + mdi));
    // A tracker failing before start: the instance starts in FAULT.
    let mut g = Group::new();
    let id = g.add_instance(v3(5, 100)).unwrap();
    g.add_tracker(Instant::ZERO, true, &[track(Target::Instance(id), 0, true)]).unwrap();
    assert_eq!(state(&g, id), State::Init);
    g.start(Instant::ZERO);
    assert_eq!(state(&g, id), State::Fault, "weight 0 reverse: FAULT while OK");
}

/// Two instances in a sync group, on two interfaces.
fn synced(tracking_weight: bool) -> (Group, InstanceId, InstanceId, SyncId) {
    let mut g = Group::new();
    let a = g.add_instance(v3(5, 100)).unwrap();
    let mut c = v3(5, 100);
    c.port = 1;
    let b = g.add_instance(c).unwrap();
    let s = g.add_sync_group(Instant::ZERO, &[a, b], tracking_weight).unwrap();
    (g, a, b, s)
}

#[test]
fn sync_group_becomes_master_only_when_every_member_wants_to() {
    let (mut g, a, b, s) = synced(false);
    assert_eq!(g.add_sync_group(Instant::ZERO, &[a], false), Err(Error::AlreadySynced));
    g.start(Instant::ZERO);
    assert_eq!(g.sync_state(s), Some(State::Backup));
    gdrain(&mut g, Instant::ZERO);
    // Member b keeps hearing a master on its link; a's timer fires but it is held back.
    let h = from(9);
    let adv = Adv::v3(150).bytes(h.src, h.dst);
    let mut now = Instant::ZERO;
    for s in 0..10 {
        now = Instant::from_secs(s);
        g.handle(now, 1, &h, &adv).unwrap();
        gdrain(&mut g, now);
    }
    assert_eq!((state(&g, a), state(&g, b)), (State::Backup, State::Backup));
    assert_eq!(g.instance(a).unwrap().stats().became_master, 0, "a was held back, never master");
    // b's master goes silent: once b's timer fires too, both become master together.
    let t = g.next_deadline().unwrap();
    let mut out = Vec::new();
    let mut t = t;
    while state(&g, b) != State::Master {
        out.extend(gdrain(&mut g, t));
        t = g.next_deadline().unwrap();
    }
    assert_eq!(state(&g, a), State::Master);
    assert!(out.contains(&GroupAction::Sync(s, State::Master)));
    assert!(now < t);
}

#[test]
fn sync_group_members_follow_each_other_back_and_into_fault() {
    let (mut g, a, b, s) = synced(false);
    g.start(Instant::ZERO);
    let mut t = Instant::ZERO;
    while state(&g, a) != State::Master || state(&g, b) != State::Master {
        gdrain(&mut g, t);
        t = g.next_deadline().unwrap();
    }
    gdrain(&mut g, t);
    // A higher priority on a's link: a yields, and b follows (no priority 0 from b).
    g.handle(t, 0, &from(9), &Adv::v3(200).bytes(from(9).src, g4())).unwrap();
    assert_eq!((state(&g, a), state(&g, b)), (State::Backup, State::Backup));
    let acts = gdrain(&mut g, t);
    assert!(acts.contains(&GroupAction::Sync(s, State::Backup)));
    assert!(acts.iter().any(|x| matches!(x, GroupAction::Instance(i, Action::RemoveAddresses(_)) if *i == b)));
    assert!(!acts.iter().any(|x| matches!(x, GroupAction::Instance(_, Action::Send(_)))));
    // A condition forcing FAULT on one member takes the group there, and out again.
    let link = g.add_tracker(t, false, &[track(Target::Instance(b), 0, false)]).unwrap();
    assert_eq!((state(&g, a), state(&g, b), g.sync_state(s)), (State::Fault, State::Fault, Some(State::Fault)));
    g.set_tracker(t, link, true).unwrap();
    assert_eq!((state(&g, a), state(&g, b), g.sync_state(s)), (State::Backup, State::Backup, Some(State::Backup)));
}

#[test]
fn sync_group_members_ignore_their_own_weights_unless_told() {
    for (tracking_weight, want) in [(false, 100), (true, 90)] {
        let (mut g, a, b, s) = synced(tracking_weight);
        g.add_tracker(Instant::ZERO, false, &[track(Target::Instance(a), -10, false)]).unwrap();
        assert_eq!(prio(&g, a), want);
        // A weight on the group itself applies to every member.
        g.add_tracker(Instant::ZERO, true, &[track(Target::Sync(s), 5, false)]).unwrap();
        assert_eq!((prio(&g, a), prio(&g, b)), (want + 5, 105));
    }
}

#[test]
fn shutdown_stops_every_instance() {
    let (mut g, a, b, s) = synced(false);
    g.start(Instant::ZERO);
    g.shutdown(at(1));
    assert_eq!((state(&g, a), state(&g, b), g.sync_state(s)), (State::Init, State::Init, Some(State::Init)));
    let acts = gdrain(&mut g, at(1));
    assert_eq!(
        acts.iter()
            .filter(|x| matches!(x, GroupAction::Instance(_, Action::Notify { event: Event::Stop, .. })))
            .count(),
        2
    );
}

#[test]
fn a_sync_group_formed_around_a_faulted_member_faults_whole() {
    let mut g = Group::new();
    let a = g.add_instance(v3(5, 100)).unwrap();
    let mut c = v3(5, 100);
    c.port = 1;
    let b = g.add_instance(c).unwrap();
    g.start(Instant::ZERO);
    g.add_tracker(Instant::ZERO, false, &[track(Target::Instance(a), 0, false)]).unwrap();
    assert_eq!((state(&g, a), state(&g, b)), (State::Fault, State::Backup));
    let s = g.add_sync_group(at(5), &[a, b], false).unwrap();
    assert_eq!((state(&g, a), state(&g, b), g.sync_state(s)), (State::Fault, State::Fault, Some(State::Fault)));
}
