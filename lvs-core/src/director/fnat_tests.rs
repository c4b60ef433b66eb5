//! FullNAT through the director, packet by packet: both ends rewritten each way with
//! checksums checked by etherparse's own routines, the TOA as DPVS lays it out and on the
//! packets DPVS puts it on, the PROXY header in front of the stream with the sequence offsets
//! kept both ways (retransmissions, SACK, FIN), ports freed on expiry, and the refusals.

use alloc::vec::Vec;
use core::net::IpAddr;

use etherparse::PacketBuilder;

use super::*;
use crate::director::segs::{seen, seg, Seen};
use crate::laddr::ClientAddr;
use crate::proto::tcp::flags::{ACK, FIN, SYN};
use crate::testkit::{self, verify_checksums, DIRECTOR_MAC, GW_MAC};
use crate::wire::proxy::ProxyVersion;
use crate::wire::DEFAULT_HEADROOM;
use crate::{DirectorConfig, FwdMethod, MacAddr, Neighbour, PortConfig, RealServer, ServiceConfig};

const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A director with one FullNAT service `vip:80` → `rs:8080` and local address `lip`.
fn director(vip: &str, rs: &str, lip: &str, client: ClientAddr) -> (Director, ServiceKey) {
    let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
    let mut d = Director::new(cfg, testkit::factory);
    let gw = Neighbour { mac: MacAddr(GW_MAC), port: 0 };
    d.set_gateway(crate::Af::V4, gw);
    d.set_gateway(crate::Af::V6, gw);
    d.set_neighbour(ip(rs), Neighbour { mac: MacAddr(RS_MAC), port: 0 });
    let key = ServiceKey::tcp(ip(vip), 80);
    d.add_service(ServiceConfig { client_addr: client, ..ServiceConfig::new(key, "first") }).unwrap();
    d.add_dest(&key, RealServer::new(ip(rs), 8080, FwdMethod::FullNat, 1)).unwrap();
    d.add_laddr(&key, ip(lip)).unwrap();
    (d, key)
}

/// Sends a frame through the director, expecting it to be transmitted.
fn pass(d: &mut Director, mut f: Frame) -> Seen {
    let v = d.process(Instant::from_secs(1), &mut f);
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    seen(&f)
}

const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

#[test]
fn toa_and_translation_both_ways_v4() {
    let (mut d, key) = director("203.0.113.100", "192.0.2.11", "192.0.2.200", ClientAddr::Toa);
    let (cip, vip, rs, lip) = (ip("198.51.100.2"), ip("203.0.113.100"), ip("192.0.2.11"), ip("192.0.2.200"));
    let c = (cip, 40000);
    let syn = pass(&mut d, seg(c, (vip, 80), SYN, 1000, 0, &MSS_1460, b""));
    assert_eq!((syn.src.0, syn.dst, syn.seq), (lip, (rs, 8080), 1000));
    assert!(syn.src.1 >= crate::laddr::FIRST_PORT);
    assert_eq!(syn.raw_opts, MSS_1460, "no TOA on the SYN");
    let l = syn.src;
    // The server's SYN-ACK goes back from the VIP to the client, its MSS cut by the TOA's 8.
    let sa = pass(&mut d, seg((rs, 8080), l, SYN | ACK, 5000, 1001, &MSS_1460, b""));
    assert_eq!((sa.src, sa.dst, sa.seq, sa.ack), ((vip, 80), c, 5000, 1001));
    assert_eq!(sa.raw_opts, [2, 4, 0x05, 0xac]);
    // Client packets that acknowledge the server's first byte carry the TOA, first among the
    // options: kind 254, length 8, port 40000, 198.51.100.2.
    let toa = [254, 8, 0x9c, 0x40, 198, 51, 100, 2];
    let a = pass(&mut d, seg(c, (vip, 80), ACK, 1001, 5001, &[], b""));
    assert_eq!((a.src, a.dst, a.seq, a.ack, a.raw_opts.as_slice()), (l, (rs, 8080), 1001, 5001, &toa[..]));
    let ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let g = pass(&mut d, seg(c, (vip, 80), ACK, 1001, 5001, &ts, b"GET / HTTP/1.0\r\n\r\n"));
    let mut want = toa.to_vec();
    want.extend_from_slice(&ts);
    assert_eq!((g.raw_opts, g.payload.as_slice()), (want, &b"GET / HTTP/1.0\r\n\r\n"[..]));
    // Sequence numbers are untouched with a TOA; once the server has sent, no more TOA.
    let r = pass(&mut d, seg((rs, 8080), l, ACK, 5001, 1019, &[], b"HTTP/1.0 200 OK\r\n"));
    assert_eq!((r.src, r.dst, r.seq, r.ack), ((vip, 80), c, 5001, 1019));
    let a2 = pass(&mut d, seg(c, (vip, 80), ACK | FIN, 1019, 5018, &[], b""));
    assert!(a2.raw_opts.is_empty());
    assert_eq!(d.fnat_stats().toa_added, 2);
    // The director never shows the server the client, nor the client the server.
    assert_eq!(d.laddrs(&key).unwrap()[0].conns, 1);
}

#[test]
fn toa_without_option_room_is_counted_and_the_packet_goes() {
    let (mut d, _) = director("203.0.113.100", "192.0.2.11", "192.0.2.200", ClientAddr::Toa);
    let (cip, vip, rs) = (ip("198.51.100.2"), ip("203.0.113.100"), ip("192.0.2.11"));
    let l = pass(&mut d, seg((cip, 40000), (vip, 80), SYN, 1000, 0, &[], b"")).src;
    pass(&mut d, seg((rs, 8080), l, SYN | ACK, 5000, 1001, &[], b""));
    // 36 bytes of options leave 4: no room for 8.
    let full = [1u8; 36];
    let a = pass(&mut d, seg((cip, 40000), (vip, 80), ACK, 1001, 5001, &full, b"x"));
    assert_eq!((a.raw_opts.as_slice(), a.payload.as_slice()), (&full[..], &b"x"[..]));
    assert_eq!((d.fnat_stats().toa_added, d.fnat_stats().toa_no_room), (0, 1));
}

#[test]
fn toa_v6_is_twenty_bytes() {
    let (mut d, _) = director("2001:db8:1::100", "2001:db8:2::11", "2001:db8:2::200", ClientAddr::Toa);
    let (cip, vip, rs, lip) = (ip("2001:db8:9::2"), ip("2001:db8:1::100"), ip("2001:db8:2::11"), ip("2001:db8:2::200"));
    let syn = pass(&mut d, seg((cip, 443), (vip, 80), SYN, 7, 0, &MSS_1460, b""));
    assert_eq!((syn.src.0, syn.dst), (lip, (rs, 8080)));
    let sa = pass(&mut d, seg((rs, 8080), syn.src, SYN | ACK, 70, 8, &MSS_1460, b""));
    assert_eq!((sa.src, sa.dst, sa.raw_opts.as_slice()), ((vip, 80), (cip, 443), &[2, 4, 0x05, 0xa0][..]));
    let a = pass(&mut d, seg((cip, 443), (vip, 80), ACK, 8, 71, &[], b"hi"));
    let mut toa = alloc::vec![254, 20, 0x01, 0xbb];
    toa.extend_from_slice(&cip_octets(cip));
    assert_eq!((a.raw_opts, a.payload.as_slice()), (toa, &b"hi"[..]));
}

fn cip_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => unreachable!(),
    }
}

#[test]
fn proxy_v1_in_front_of_the_stream_with_offsets_both_ways() {
    let (mut d, _) = director("203.0.113.100", "192.0.2.11", "192.0.2.200", ClientAddr::Proxy(ProxyVersion::V1));
    let (cip, vip, rs) = (ip("198.51.100.2"), ip("203.0.113.100"), ip("192.0.2.11"));
    let c = (cip, 40000);
    let hdr = b"PROXY TCP4 198.51.100.2 203.0.113.100 40000 80\r\n";
    let h = hdr.len() as u32;
    let l = pass(&mut d, seg(c, (vip, 80), SYN, 1000, 0, &MSS_1460, b"")).src;
    let sa = pass(&mut d, seg((rs, 8080), l, SYN | ACK, 5000, 1001, &MSS_1460, b""));
    assert_eq!(
        sa.raw_opts,
        (1460 - h as u16).to_be_bytes().iter().fold(alloc::vec![2, 4], |mut v, b| {
            v.push(*b);
            v
        })
    );
    // The handshake's ACK carries the header at the start of the stream.
    let a = pass(&mut d, seg(c, (vip, 80), ACK, 1001, 5001, &[], b""));
    assert_eq!((a.seq, a.ack, a.payload.as_slice()), (1001, 5001, &hdr[..]));
    // The first data segment starts at the same place: header again in front, so whichever
    // of the two the server gets first, the stream is the same.
    let g = pass(&mut d, seg(c, (vip, 80), ACK, 1001, 5001, &[], b"GET /"));
    let mut want = hdr.to_vec();
    want.extend_from_slice(b"GET /");
    assert_eq!((g.seq, g.payload.as_slice()), (1001, want.as_slice()));
    // Its retransmission is byte for byte the same.
    let g2 = pass(&mut d, seg(c, (vip, 80), ACK, 1001, 5001, &[], b"GET /"));
    assert_eq!(g, g2);
    // Later client bytes move by the header's length.
    let n = pass(&mut d, seg(c, (vip, 80), ACK, 1006, 5001, &[], b" HTTP/1.0\r\n\r\n"));
    assert_eq!((n.seq, n.payload.as_slice()), (1006 + h, &b" HTTP/1.0\r\n\r\n"[..]));
    // The server's acknowledgements and SACK edges come back without it.
    let sack = |a: u32, b: u32| {
        let mut o = alloc::vec![1, 1, 5, 10];
        o.extend_from_slice(&a.to_be_bytes());
        o.extend_from_slice(&b.to_be_bytes());
        o
    };
    let r = pass(&mut d, seg((rs, 8080), l, ACK, 5001, 1006 + h, &sack(1030 + h, 1040 + h), b"HTTP/1.0 200 OK\r\n"));
    assert_eq!((r.seq, r.ack, r.raw_opts), (5001, 1006, sack(1030, 1040)));
    // An acknowledgement of the header alone is the client's first byte.
    let r0 = pass(&mut d, seg((rs, 8080), l, ACK, 5001, 1001 + h, &[], b""));
    assert_eq!(r0.ack, 1001);
    // FIN from the client moves too.
    let f = pass(&mut d, seg(c, (vip, 80), ACK | FIN, 1019, 5018, &[], b""));
    assert_eq!((f.seq, f.ack), (1019 + h, 5018));
    assert_eq!(d.fnat_stats().proxy_added, 3);
}

#[test]
fn proxy_v2_header_bytes() {
    let (mut d, _) = director("203.0.113.100", "192.0.2.11", "192.0.2.200", ClientAddr::Proxy(ProxyVersion::V2));
    let (cip, vip, rs) = (ip("198.51.100.2"), ip("203.0.113.100"), ip("192.0.2.11"));
    let l = pass(&mut d, seg((cip, 40000), (vip, 80), SYN, 1000, 0, &[], b"")).src;
    pass(&mut d, seg((rs, 8080), l, SYN | ACK, 5000, 1001, &[], b""));
    let a = pass(&mut d, seg((cip, 40000), (vip, 80), ACK, 1001, 5001, &[], b"Q"));
    let mut want = crate::wire::proxy::V2_SIGNATURE.to_vec();
    want.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 2, 203, 0, 113, 100, 0x9c, 0x40, 0, 80, b'Q']);
    assert_eq!(a.payload, want);
}

#[test]
fn ports_are_freed_when_connections_expire() {
    let (mut d, key) = director("203.0.113.100", "192.0.2.11", "192.0.2.200", ClientAddr::Toa);
    let (cip, vip) = (ip("198.51.100.2"), ip("203.0.113.100"));
    let mut ports = Vec::new();
    for p in 0..50u16 {
        ports.push(pass(&mut d, seg((cip, 30000 + p), (vip, 80), SYN, 1, 0, &[], b"")).src);
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 50, "every connection has its own local port");
    assert_eq!(d.laddrs(&key).unwrap()[0].conns, 50);
    d.tick(Instant::from_secs(1000));
    assert_eq!((d.conn_count(), d.laddrs(&key).unwrap()[0].conns), (0, 0));
    // A reply for an expired connection is not ours.
    let mut f = seg((ip("192.0.2.11"), 8080), ports[0], ACK, 1, 1, &[], b"");
    assert_eq!(d.process(Instant::from_secs(1001), &mut f), Verdict::NotMine);
}

#[test]
fn a_service_without_local_address_drops_and_counts() {
    let (mut d, key) = director("203.0.113.100", "192.0.2.11", "192.0.2.200", ClientAddr::Toa);
    d.del_laddr(&key, &ip("192.0.2.200")).unwrap();
    let mut f = seg((ip("198.51.100.2"), 40000), (ip("203.0.113.100"), 80), SYN, 1, 0, &[], b"");
    assert_eq!(d.process(Instant::from_secs(1), &mut f), Verdict::Drop(Reason::NoLocalPort));
    assert_eq!((d.drops()[Reason::NoLocalPort.index()], d.conn_count()), (1, 0));
    assert_eq!(d.dest(crate::DestId(0)).map(|v| v.inactive()), Some(0));
    assert_eq!(d.add_laddr(&ServiceKey::tcp(ip("203.0.113.1"), 80), ip("192.0.2.200")), Err(Error::NoSuchService));
}

/// An ICMPv4 "fragmentation needed" from `src` to `dst` quoting the first 28 bytes of `quoted`
/// (an IPv4 packet).
fn frag_needed(src: IpAddr, dst: IpAddr, quoted: &[u8]) -> Frame {
    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::Icmpv4Type;
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else { unreachable!() };
    let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 });
    let mut out = Vec::new();
    PacketBuilder::ethernet2(GW_MAC, DIRECTOR_MAC)
        .ipv4(s.octets(), d.octets(), 64)
        .icmpv4(t)
        .write(&mut out, &quoted[..28])
        .unwrap();
    Frame::new(DEFAULT_HEADROOM, &out)
}

/// Outer (src, dst), quoted (src:sport, dst:dport) of an ICMPv4 error, its ICMP checksum
/// checked by summing the message's words here.
fn icmp_seen(f: &Frame) -> ((IpAddr, IpAddr), (IpAddr, u16), (IpAddr, u16)) {
    let d = f.data();
    let sum = d[34..].chunks(2).fold(0u32, |s, w| s + u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])));
    assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "ICMP checksum");
    let a = |o: usize| IpAddr::from([d[o], d[o + 1], d[o + 2], d[o + 3]]);
    let p = |o: usize| u16::from_be_bytes([d[o], d[o + 1]]);
    // Ethernet 14 + IPv4 20 + ICMP 8 = 42: the quoted header, then its ports at 62.
    ((a(26), a(30)), (a(54), p(62)), (a(58), p(64)))
}

#[test]
fn icmp_errors_are_translated_both_ways() {
    let (mut d, _) = director("203.0.113.100", "192.0.2.11", "192.0.2.200", ClientAddr::Toa);
    let (cip, vip, rs, lip) = (ip("198.51.100.2"), ip("203.0.113.100"), ip("192.0.2.11"), ip("192.0.2.200"));
    let mut syn = seg((cip, 40000), (vip, 80), SYN, 1000, 0, &[], b"");
    assert!(matches!(d.process(Instant::from_secs(1), &mut syn), Verdict::Transmit { .. }));
    let l = seen(&syn).src;
    // From the server's side, about LIP → RIP: to the client, about client → VIP.
    let mut e = frag_needed(rs, lip, &syn.data()[14..]);
    assert!(matches!(d.process(Instant::from_secs(1), &mut e), Verdict::Transmit { port: 0, dest: None }));
    assert_eq!(&e.data()[..6], &GW_MAC);
    assert_eq!(icmp_seen(&e), ((vip, cip), (cip, 40000), (vip, 80)));
    verify_checksums(e.data()).unwrap();
    // From beyond the client, about VIP → client: to the server, from the local address,
    // about RIP → LIP.
    let mut sa = seg((rs, 8080), l, SYN | ACK, 5000, 1001, &[], b"");
    assert!(matches!(d.process(Instant::from_secs(1), &mut sa), Verdict::Transmit { .. }));
    let mut e = frag_needed(ip("198.51.100.254"), vip, &sa.data()[14..]);
    assert!(matches!(d.process(Instant::from_secs(1), &mut e), Verdict::Transmit { port: 0, dest: Some(_) }));
    assert_eq!(&e.data()[..6], &RS_MAC);
    assert_eq!(icmp_seen(&e), ((lip, rs), (rs, 8080), l));
}

#[test]
fn side_entries_are_small_and_fixed() {
    assert_eq!(core::mem::size_of::<super::FnatConn>(), 36);
    assert_eq!(core::mem::size_of::<crate::conn::Conn>(), 48, "the connection entry did not grow");
}

#[path = "fnat64_tests.rs"]
mod fnat64;
