//! fnat64 through the director (DPVS's IPv6 VIP → IPv4 real servers): the IPv6 client's
//! packets leave as IPv4 from an IPv4 local address and the server's replies come back as IPv6
//! from the VIP, with the header fields RFC 7915 maps (TTL from the hop limit, TOS from the
//! traffic class, ID 0, DF set) and every checksum checked by etherparse's own routines; the
//! TOA and PROXY headers carry the IPv6 client; the refusals.

use alloc::vec;
use alloc::vec::Vec;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;

use super::*;

const VIP: &str = "2001:db8:1::100";
const CIP: &str = "2001:db8:9::2";
const RIP: &str = "192.0.2.11";
const LIP: &str = "192.0.2.200";
/// MSS 1440: what an IPv6 client on a 1500-byte link offers.
const MSS_1440: [u8; 4] = [2, 4, 0x05, 0xa0];

/// An IPv6 service whose FullNAT server and local address are IPv4.
fn director64(client: ClientAddr) -> (Director, ServiceKey) {
    director(VIP, RIP, LIP, client)
}

/// The IP header fields fnat64 maps, of a sent frame.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    V4 { ttl: u8, tos: u8, id: u16, df: bool, total: u16 },
    V6 { hops: u8, tclass: u8, flow: u32, payload: u16 },
}

fn head(f: &Frame) -> Head {
    let p = SlicedPacket::from_ethernet(f.data()).unwrap();
    match p.net.unwrap() {
        NetSlice::Ipv4(v4) => {
            let h = v4.header();
            let tos = (h.dcp().value() << 2) | h.ecn().value();
            Head::V4 { ttl: h.ttl(), tos, id: h.identification(), df: h.dont_fragment(), total: h.total_len() }
        }
        NetSlice::Ipv6(v6) => {
            let h = v6.header();
            Head::V6 {
                hops: h.hop_limit(),
                tclass: h.traffic_class(),
                flow: h.flow_label().value(),
                payload: h.payload_length(),
            }
        }
        _ => unreachable!(),
    }
}

/// Sends a frame through the director, expecting it to be transmitted; returns the frame.
fn send(d: &mut Director, mut f: Frame) -> Frame {
    let v = d.process(Instant::from_secs(1), &mut f);
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    verify_checksums(f.data()).unwrap();
    f
}

/// Sets the traffic class of an IPv6 frame (no checksum covers it).
fn set_tclass(f: &mut Frame, tc: u8) {
    let d = f.data_mut();
    d[14] = 0x60 | (tc >> 4);
    d[15] = (tc << 4) | (d[15] & 0x0f);
}

#[test]
fn tcp_v6_client_to_v4_server_and_back_with_toa() {
    let (mut d, key) = director64(ClientAddr::Toa);
    let (cip, vip, rs, lip) = (ip(CIP), ip(VIP), ip(RIP), ip(LIP));
    let c = (cip, 40000);
    let mut f = seg(c, (vip, 80), SYN, 1000, 0, &MSS_1440, b"");
    set_tclass(&mut f, 0xb8);
    let len6 = f.len();
    let f = send(&mut d, f);
    // 20 bytes shorter; TTL = hop limit 64 less this hop; TOS = traffic class; ID 0, DF.
    assert_eq!(f.len(), len6 - 20);
    assert_eq!(head(&f), Head::V4 { ttl: 63, tos: 0xb8, id: 0, df: true, total: 20 + 24 });
    let syn = seen(&f);
    assert_eq!((syn.src.0, syn.dst, syn.seq), (lip, (rs, 8080), 1000));
    // The client's MSS leaves room for the 20 bytes the server's segments grow by: 1420.
    assert_eq!(syn.raw_opts, [2, 4, 0x05, 0x8c]);
    let l = syn.src;
    // The SYN-ACK comes back as IPv6 from the VIP, its MSS cut by the 20-byte IPv6 TOA.
    let mut r = seg((rs, 8080), l, SYN | ACK, 5000, 1001, &MSS_1460, b"");
    r.data_mut()[15] = 0x28; // TOS
    fix_v4_header_checksum(&mut r);
    let len4 = r.len();
    let f = send(&mut d, r);
    assert_eq!(f.len(), len4 + 20);
    assert_eq!(head(&f), Head::V6 { hops: 63, tclass: 0x28, flow: 0, payload: 24 });
    let sa = seen(&f);
    assert_eq!((sa.src, sa.dst, sa.seq, sa.ack), ((vip, 80), c, 5000, 1001));
    assert_eq!(sa.raw_opts, [2, 4, 0x05, 0xa0]);
    // The client's ACK of the server's first byte carries the TOA with the IPv6 client
    // (DPVS `tcpopt_ip6_addr`: kind 254, length 20, port, address), in an IPv4 packet.
    let a = seen(&send(&mut d, seg(c, (vip, 80), ACK, 1001, 5001, &[], b"GET /")));
    let mut toa = vec![254, 20, 0x9c, 0x40];
    toa.extend_from_slice(&cip_octets(cip));
    assert_eq!((a.src, a.dst, a.raw_opts, a.payload.as_slice()), (l, (rs, 8080), toa, &b"GET /"[..]));
    let b = seen(&send(&mut d, seg((rs, 8080), l, ACK, 5001, 1006, &[], b"HTTP/1.0 200 OK\r\n")));
    assert_eq!((b.src, b.dst, b.payload.as_slice()), ((vip, 80), c, &b"HTTP/1.0 200 OK\r\n"[..]));
    assert_eq!(d.fnat_stats().toa_added, 1);
    assert_eq!(d.laddrs(&key).unwrap()[0].conns, 1);
}

/// Recomputes the IPv4 header checksum of an untagged frame after a test edited the header.
fn fix_v4_header_checksum(f: &mut Frame) {
    let d = f.data_mut();
    d[24] = 0;
    d[25] = 0;
    let c = crate::wire::csum::checksum(&d[14..34]);
    d[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn proxy_v1_and_v2_name_the_ipv6_client() {
    for (v, want) in [
        (ProxyVersion::V1, b"PROXY TCP6 2001:db8:9::2 2001:db8:1::100 40000 80\r\n".to_vec()),
        (ProxyVersion::V2, {
            // HAProxy's proxy-protocol.txt: signature, v2 PROXY, AF_INET6 STREAM, 36 bytes of
            // addresses and ports.
            let mut h = vec![0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x21, 0, 36];
            h.extend_from_slice(&cip_octets(ip(CIP)));
            h.extend_from_slice(&cip_octets(ip(VIP)));
            h.extend_from_slice(&[0x9c, 0x40, 0, 80]);
            h
        }),
    ] {
        let (mut d, _) = director64(ClientAddr::Proxy(v));
        let (cip, vip, rs) = (ip(CIP), ip(VIP), ip(RIP));
        let c = (cip, 40000);
        let syn = seen(&send(&mut d, seg(c, (vip, 80), SYN, 1000, 0, &[], b"")));
        let l = syn.src;
        send(&mut d, seg((rs, 8080), l, SYN | ACK, 5000, 1001, &[], b""));
        let a = seen(&send(&mut d, seg(c, (vip, 80), ACK, 1001, 5001, &[], b"")));
        assert_eq!((a.src, a.dst, a.seq), (l, (rs, 8080), 1001));
        assert_eq!(a.payload, want);
        // The server's acknowledgement of the header and a byte comes back past the header.
        let n = want.len() as u32;
        let r = seen(&send(&mut d, seg((rs, 8080), l, ACK, 5001, 1001 + n + 1, &[], b"")));
        assert_eq!((r.src, r.dst, r.ack), ((vip, 80), c, 1002));
    }
}

/// A UDP datagram; `zero_csum` leaves an IPv4 datagram's checksum out (0).
fn udp(src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8], zero_csum: bool) -> Frame {
    let eth = PacketBuilder::ethernet2(GW_MAC, DIRECTOR_MAC);
    let mut out = Vec::new();
    match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eth.ipv4(s.octets(), d.octets(), 64).udp(src.1, dst.1).write(&mut out, payload)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eth.ipv6(s.octets(), d.octets(), 64).udp(src.1, dst.1).write(&mut out, payload)
        }
        _ => unreachable!(),
    }
    .unwrap();
    if zero_csum {
        out[40] = 0;
        out[41] = 0;
    }
    Frame::new(DEFAULT_HEADROOM, &out)
}

/// Addresses, ports and payload of a sent UDP frame.
fn udp_seen(f: &Frame) -> ((IpAddr, u16), (IpAddr, u16), Vec<u8>) {
    let p = SlicedPacket::from_ethernet(f.data()).unwrap();
    let (s, d) = match p.net.as_ref().unwrap() {
        NetSlice::Ipv4(v4) => (IpAddr::V4(v4.header().source_addr()), IpAddr::V4(v4.header().destination_addr())),
        NetSlice::Ipv6(v6) => (IpAddr::V6(v6.header().source_addr()), IpAddr::V6(v6.header().destination_addr())),
        _ => unreachable!(),
    };
    let Some(TransportSlice::Udp(u)) = p.transport else { panic!("not udp") };
    ((s, u.source_port()), (d, u.destination_port()), u.payload().to_vec())
}

/// An IPv6 UDP service with an IPv4 FullNAT server.
fn udp_director() -> Director {
    let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
    let mut d = Director::new(cfg, testkit::factory);
    let gw = Neighbour { mac: MacAddr(GW_MAC), port: 0 };
    d.set_gateway(crate::Af::V6, gw);
    d.set_neighbour(ip(RIP), Neighbour { mac: MacAddr(RS_MAC), port: 0 });
    let key = ServiceKey::udp(ip(VIP), 53);
    d.add_service(ServiceConfig::new(key, "first")).unwrap();
    d.add_dest(&key, RealServer::new(ip(RIP), 5353, FwdMethod::FullNat, 1)).unwrap();
    d.add_laddr(&key, ip(LIP)).unwrap();
    d
}

#[test]
fn udp_both_ways_and_a_reply_without_checksum_gets_one() {
    let mut d = udp_director();
    let (cip, vip, rs, lip) = (ip(CIP), ip(VIP), ip(RIP), ip(LIP));
    let (s, t, p) = udp_seen(&send(&mut d, udp((cip, 5000), (vip, 53), b"query", false)));
    assert_eq!((s.0, t, p.as_slice()), (lip, (rs, 5353), &b"query"[..]));
    // IPv6 requires a UDP checksum (RFC 8200 8.1): an IPv4 reply without one gets one.
    let f = send(&mut d, udp((rs, 5353), s, b"answer", true));
    assert_ne!(&f.data()[60..62], &[0, 0]);
    assert_eq!(udp_seen(&f), ((vip, 53), (cip, 5000), b"answer".to_vec()));
    // A frame without headroom grows at its tail instead.
    let r = udp((rs, 5353), s, b"answer 2", false);
    let f = send(&mut d, Frame::new(0, r.data()));
    assert_eq!(udp_seen(&f), ((vip, 53), (cip, 5000), b"answer 2".to_vec()));
}

#[test]
fn refusals_and_what_is_not_translated() {
    // NAT across families stays refused, as does a SYN proxy with an fnat64 server; an IPv4
    // service takes no IPv6 local address.
    let (mut d, key) = director64(ClientAddr::Toa);
    assert_eq!(d.add_dest(&key, RealServer::new(ip("192.0.2.12"), 80, FwdMethod::Masq, 1)), Err(Error::FamilyMismatch));
    let cfg = ServiceConfig { synproxy: true, ..ServiceConfig::new(key, "first") };
    assert!(matches!(d.edit_service(cfg), Err(Error::Unsupported(_))));
    let (mut d4, key4) = director("203.0.113.100", RIP, LIP, ClientAddr::Toa);
    assert_eq!(d4.add_laddr(&key4, ip("2001:db8:2::200")), Err(Error::FamilyMismatch));
    // A server of a family the service has no local address of: the SYN is dropped, counted.
    d.del_laddr(&key, &ip(LIP)).unwrap();
    d.add_laddr(&key, ip("2001:db8:2::200")).unwrap();
    let mut f = seg((ip(CIP), 40000), (ip(VIP), 80), SYN, 1, 0, &[], b"");
    assert_eq!(d.process(Instant::from_secs(1), &mut f), Verdict::Drop(Reason::NoLocalPort));
    // ICMP errors about fnat64 connections are not translated (dropped as unsupported).
    let (mut d, _) = director64(ClientAddr::Toa);
    let syn = send(&mut d, seg((ip(CIP), 40000), (ip(VIP), 80), SYN, 1, 0, &[], b""));
    let quoted = syn.data()[14..].to_vec();
    let mut e = frag_needed(ip("192.0.2.1"), ip(LIP), &quoted);
    assert_eq!(d.process(Instant::from_secs(1), &mut e), Verdict::Drop(Reason::Unsupported));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any client port, server port and payload size up to a full IPv6 segment: the datagram
    /// arrives as IPv4 20 bytes shorter with its payload intact, the reply as IPv6 20 bytes
    /// longer, every checksum right (etherparse's).
    #[test]
    fn any_ports_and_sizes_translate_both_ways(
        cport in 1u16..,
        rport in 1u16..,
        len in 0usize..=1440,
        udp_too in any::<bool>(),
        fill in any::<u8>(),
    ) {
        let (cip, vip, rs) = (ip(CIP), ip(VIP), ip(RIP));
        let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
        let mut d = Director::new(cfg, testkit::factory);
        d.set_gateway(crate::Af::V6, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
        d.set_neighbour(rs, Neighbour { mac: MacAddr(RS_MAC), port: 0 });
        let key = if udp_too { ServiceKey::udp(vip, 80) } else { ServiceKey::tcp(vip, 80) };
        d.add_service(ServiceConfig::new(key, "first")).unwrap();
        d.add_dest(&key, RealServer::new(rs, rport, FwdMethod::FullNat, 1)).unwrap();
        d.add_laddr(&key, ip(LIP)).unwrap();
        let payload: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        let c = (cip, cport);
        let (first, reply) = if udp_too {
            (udp(c, (vip, 80), &payload, false), None)
        } else {
            (seg(c, (vip, 80), SYN, 7, 0, &[], &payload), Some(()))
        };
        let n = first.len();
        let out = send(&mut d, first);
        prop_assert_eq!(out.len(), n - 20);
        let (l, got) = if udp_too {
            let (s, t, p) = udp_seen(&out);
            prop_assert_eq!(t, (rs, rport));
            (s, p)
        } else {
            let s = seen(&out);
            prop_assert_eq!(s.dst, (rs, rport));
            (s.src, s.payload)
        };
        prop_assert_eq!(&got, &payload);
        let back = match reply {
            None => udp((rs, rport), l, &payload, false),
            Some(()) => seg((rs, rport), l, SYN | ACK, 9, 8, &[], &payload),
        };
        let n = back.len();
        let out = send(&mut d, back);
        prop_assert_eq!(out.len(), n + 20);
        let (s, t, p) = if udp_too {
            udp_seen(&out)
        } else {
            let s = seen(&out);
            (s.src, s.dst, s.payload)
        };
        prop_assert_eq!((s, t), ((vip, 80), c));
        prop_assert_eq!(p, payload);
    }
}
