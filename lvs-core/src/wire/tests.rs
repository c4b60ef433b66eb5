//! Parser tests with hex fixtures, smoltcp style.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

/// A SYN from 198.51.100.2:40000 to 203.0.113.100:80 as the kernel traces carry it (TTL 63, DF,
/// MSS option), taken from `mode-dr-wrr`'s input capture.
const SYN_V4: [u8; 74] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x08, 0x00, 0x45, 0x00, 0x00, 0x3c, 0xdb,
    0x11, 0x40, 0x00, 0x3f, 0x06, 0xfa, 0x0f, 0xc6, 0x33, 0x64, 0x02, 0xcb, 0x00, 0x71, 0x64, 0x9c, 0x40, 0x00, 0x50,
    0x38, 0x92, 0x97, 0x22, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0xc6, 0x4a, 0x00, 0x00, 0x02, 0x04, 0x05,
    0xb4, 0x04, 0x02, 0x08, 0x0a, 0x1e, 0x8c, 0x95, 0x58, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
];

#[test]
fn parse_syn_v4() {
    let m = parse(&SYN_V4).unwrap();
    assert_eq!((m.l3, m.l4, m.ip_len, m.af, m.proto), (14, 34, 60, Af::V4, ipproto::TCP));
    assert_eq!(m.src, "198.51.100.2".parse::<IpAddr>().unwrap());
    assert_eq!(m.dst, "203.0.113.100".parse::<IpAddr>().unwrap());
    assert_eq!((m.sport, m.dport, m.tcp_flags), (40000, 80, 0x02));
    assert_eq!((m.frag, m.df, m.icmp), (Frag::None, true, None));
    assert_eq!(csum::checksum(&SYN_V4[14..34]), 0, "fixture header checksum is valid");
}

#[test]
fn truncated_frames_are_malformed_at_every_length() {
    for n in 0..SYN_V4.len() {
        let r = parse(&SYN_V4[..n]);
        assert!(r.is_err(), "prefix of {n} bytes parsed");
    }
}

#[test]
fn trailing_padding_is_ignored() {
    let mut f = SYN_V4.to_vec();
    f.extend_from_slice(&[0; 6]);
    assert_eq!(parse(&f).unwrap().ip_len, 60);
}

#[test]
fn other_ethertypes_are_not_ip() {
    let mut f = SYN_V4;
    f[12] = 0x08;
    f[13] = 0x06;
    assert_eq!(parse(&f), Err(ParseError::NotIp));
}

#[test]
fn bad_header_lengths_are_malformed() {
    let mut f = SYN_V4;
    f[14] = 0x44; // IHL 4
    assert_eq!(parse(&f), Err(ParseError::Malformed));
    let mut f = SYN_V4;
    f[16] = 0x01; // total length beyond the frame
    assert_eq!(parse(&f), Err(ParseError::Malformed));
    let mut f = SYN_V4;
    f[34 + 12] = 0x40; // TCP data offset 16 < 20
    assert_eq!(parse(&f), Err(ParseError::Malformed));
}

#[test]
fn vlan_and_qinq_tags_are_walked() {
    let mut f = SYN_V4[..12].to_vec();
    f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x07, 0x81, 0x00, 0x00, 0x2a]);
    f.extend_from_slice(&SYN_V4[12..]);
    let m = parse(&f).unwrap();
    assert_eq!((m.l3, m.l4, m.dport), (22, 42, 80));
}

#[test]
fn fragments_are_classified() {
    let mut f = SYN_V4;
    f[20] = 0x20; // MF, offset 0
    f[21] = 0x00;
    assert_eq!(parse(&f).unwrap().frag, Frag::First(0xdb11));
    f[21] = 0x10; // offset 16 * 8
    let m = parse(&f).unwrap();
    assert_eq!((m.frag, m.sport, m.dport), (Frag::Later(0xdb11), 0, 0));
}

#[test]
fn complete_checksum_repairs_a_partial_one() {
    let mut f = SYN_V4;
    let good = [f[34 + 16], f[34 + 17]];
    // What a veth hands over under CHECKSUM_PARTIAL: only the pseudo-header sum.
    f[34 + 16] = 0x12;
    f[34 + 17] = 0x34;
    assert!(complete_l4_checksum(&mut f));
    assert_eq!([f[34 + 16], f[34 + 17]], good);
    let mut arp = SYN_V4;
    arp[13] = 0x06;
    assert!(!complete_l4_checksum(&mut arp));
}
