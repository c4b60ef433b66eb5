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
}
