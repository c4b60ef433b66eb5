//! GUE and GRE tunnels (`--tun-type gue|gre`, Linux 5.x and later), packet by packet. Each header byte
//! is read from the kernel's `ipvs_gue_encap` / `ipvs_gre_encap` / `gre_build_header`,
//! `struct guehdr` (draft-ietf-intarea-gue) and RFC 2784; checksums are checked by
//! etherparse's own routines or summed here from RFC 1071, never by the library's code.

use super::*;
use crate::dest::{TunConfig, TunCsum};

/// A TCP service on `vip` with one tunnelling server `rip` using `tun`.
fn tunnel_director(vip: IpAddr, rip: &str, tun: TunConfig) -> (Director, ServiceKey) {
    let mut d = director();
    let key = ServiceKey::tcp(vip, 80);
    d.add_service(ServiceConfig::new(key, "first")).unwrap();
    d.add_dest(&key, RealServer::new(ip(rip), 80, FwdMethod::Tunnel, 1).with_tunnel(tun)).unwrap();
    (d, key)
}

/// Sends `t` and returns the input frame and what left, checking it left toward the server.
fn tunnel(d: &mut Director, t: Tcp<'_>) -> (Vec<u8>, Vec<u8>) {
    let input = t.build();
    let (v, f) = send(d, 1, t);
    assert!(matches!(v, Verdict::Transmit { port: 1, .. }), "{v:?}");
    (input, f.data().to_vec())
}

/// The client's IP packet as the server must get it: unchanged but for the TTL (hop limit),
/// decremented as `__ip_vs_get_out_rt` does, and the IPv4 header checksum that follows it.
fn forwarded(input: &[u8]) -> Vec<u8> {
    let mut p = input[14..].to_vec();
    if p[0] >> 4 == 4 {
        p[8] -= 1;
        p[10..12].fill(0);
        let c = rfc1071(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        p[7] -= 1;
    }
    p
}

/// RFC 1071's checksum, summed here independently of the library's `csum` module.
fn rfc1071(b: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    for c in b.chunks(2) {
        sum += u64::from(c[0]) << 8 | u64::from(*c.get(1).unwrap_or(&0));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The UDP checksum etherparse computes for `udp` (header with its checksum field, payload)
/// between IPv4 or IPv6 `src` and `dst`.
fn udp_checksum(src: &[u8], dst: &[u8], udp: &[u8]) -> u16 {
    let (h, payload) = etherparse::UdpHeader::from_slice(udp).unwrap();
    let c = match src.len() {
        4 => h.calc_checksum_ipv4_raw(src.try_into().unwrap(), dst.try_into().unwrap(), payload),
        _ => h.calc_checksum_ipv6_raw(src.try_into().unwrap(), dst.try_into().unwrap(), payload),
    };
    c.unwrap()
}

#[test]
fn gue_over_ipv4_is_udp_then_a_four_byte_guehdr() {
    let (mut d, _) = tunnel_director(vip(), "192.0.2.11", TunConfig::gue(6080, TunCsum::NoCsum));
    let (input, out) = tunnel(&mut d, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(out.len(), input.len() + 20 + 8 + 4);
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    let ip4 = &out[14..34];
    assert_eq!(ip4[9], 17, "outer protocol UDP");
    assert_eq!(be16(ip4, 2) as usize, out.len() - 14);
    assert_eq!(&ip4[12..16], &[192, 0, 2, 1]);
    assert_eq!(&ip4[16..20], &[192, 0, 2, 11]);
    assert_eq!(ip4[6] & 0x40, 0x40, "DF copied as for ipip");
    assert_eq!(ip4[8], input[22] - 1, "outer TTL = decremented inner TTL");
    assert_eq!(rfc1071(ip4), 0, "outer header checksum");
    let udp = &out[34..42];
    let sport = be16(udp, 0);
    assert!((32768..60999).contains(&sport), "udp_flow_src_port's default range: {sport}");
    assert_eq!(be16(udp, 2), 6080, "--tun-port");
    assert_eq!(be16(udp, 4) as usize, out.len() - 34, "UDP length covers GUE and the packet");
    assert_eq!(be16(udp, 6), 0, "--tun-nocsum: udp_set_csum(nocheck)");
    // guehdr: version 0, C 0, hlen 0 | proto_ctype IPPROTO_IPIP | flags 0.
    assert_eq!(&out[42..46], &[0x00, 4, 0x00, 0x00]);
    assert_eq!(&out[46..], &forwarded(&input)[..]);
    // The same flow keeps its source port; the connection's next segment too.
    let (_, again) = tunnel(&mut d, Tcp::new(client(1000), (vip(), 80), ACK));
    assert_eq!(be16(&again, 34), sport);
}

#[test]
fn gue_checksums_with_csum_and_with_remcsum() {
    for csum in [TunCsum::Csum, TunCsum::RemCsum] {
        let (mut d, _) = tunnel_director(vip(), "192.0.2.11", TunConfig::gue(5555, csum));
        let payload = [0x5a; 33];
        let mut t = Tcp::new(client(1000), (vip(), 80), SYN);
        t.payload = &payload;
        let (input, out) = tunnel(&mut d, t);
        // A packet whose checksum is complete gets no remote-checksum option
        // (`skb->ip_summed != CHECKSUM_PARTIAL`): the same 12 bytes either way.
        assert_eq!(out.len(), input.len() + 20 + 12, "{csum:?}");
        assert_eq!(&out[42..46], &[0x00, 4, 0x00, 0x00], "{csum:?}: hlen 0, no GUE_FLAG_PRIV");
        let c = be16(&out, 40);
        assert_ne!(c, 0, "{csum:?}: checksum computed");
        assert_eq!(c, udp_checksum(&out[26..30], &out[30..34], &out[34..]), "{csum:?}");
        verify_checksums(&out).unwrap();
        assert_eq!(&out[46..], &forwarded(&input)[..]);
    }
}

#[test]
fn gue_over_ipv6_checksums_or_leaves_zero() {
    let v6vip = ip("2001:db8:113::100");
    for (csum, want_zero) in [(TunCsum::NoCsum, true), (TunCsum::Csum, false)] {
        let (mut d, _) = tunnel_director(v6vip, "2001:db8:2::11", TunConfig::gue(6080, csum));
        let (input, out) = tunnel(&mut d, Tcp::new((ip("2001:db8:51::2"), 1000), (v6vip, 80), SYN));
        assert_eq!(out.len(), input.len() + 40 + 12);
        let ip6 = &out[14..54];
        assert_eq!(ip6[6], 17, "next header UDP");
        assert_eq!(be16(ip6, 4) as usize, out.len() - 54);
        assert_eq!(ip6[7], input[21] - 1, "outer hop limit = decremented inner");
        let udp = &out[54..62];
        assert_eq!(be16(udp, 2), 6080);
        assert_eq!(be16(udp, 4) as usize, out.len() - 54);
        // `udp6_set_csum(nocheck)` leaves zero (RFC 6935 allows it for tunnels).
        let want = if want_zero { 0 } else { udp_checksum(&out[22..38], &out[38..54], &out[54..]) };
        assert_eq!(be16(udp, 6), want, "{csum:?}");
        assert_eq!(&out[62..66], &[0x00, 41, 0x00, 0x00], "proto_ctype IPPROTO_IPV6");
        assert_eq!(&out[66..], &forwarded(&input)[..]);
    }
}

#[test]
fn gue_to_an_ipv6_server_behind_an_ipv4_vip_names_ipip() {
    let (mut d, _) = tunnel_director(vip(), "2001:db8:2::11", TunConfig::gue(6080, TunCsum::Csum));
    let (input, out) = tunnel(&mut d, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    assert_eq!(out[14 + 6], 17);
    assert_eq!(&out[62..66], &[0x00, 4, 0x00, 0x00], "the inner packet is IPv4");
    assert_eq!(be16(&out, 60), udp_checksum(&out[22..38], &out[38..54], &out[54..]));
    assert_eq!(&out[66..], &forwarded(&input)[..]);
}

#[test]
fn gre_without_checksum_is_four_bytes() {
    let (mut d, _) = tunnel_director(vip(), "192.0.2.11", TunConfig::gre(TunCsum::NoCsum));
    let (input, out) = tunnel(&mut d, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(out.len(), input.len() + 20 + 4);
    assert_eq!(out[14 + 9], 47, "outer protocol GRE");
    assert_eq!(be16(&out, 16) as usize, out.len() - 14);
    assert_eq!(rfc1071(&out[14..34]), 0);
    // No flags, version 0, protocol ETH_P_IP.
    assert_eq!(&out[34..38], &[0x00, 0x00, 0x08, 0x00]);
    assert_eq!(&out[38..], &forwarded(&input)[..]);
}

#[test]
fn gre_with_checksum_sets_c_and_sums_header_and_packet() {
    let (mut d, _) = tunnel_director(vip(), "192.0.2.11", TunConfig::gre(TunCsum::Csum));
    let (input, out) = tunnel(&mut d, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(out.len(), input.len() + 20 + 8);
    assert_eq!(&out[34..38], &[0x80, 0x00, 0x08, 0x00], "GRE_CSUM, ETH_P_IP");
    assert_eq!(&out[40..42], &[0, 0], "reserved1");
    assert_eq!(rfc1071(&out[34..]), 0, "the checksum makes the GRE packet sum to zero");
    assert_eq!(&out[42..], &forwarded(&input)[..]);
}

#[test]
fn gre_carries_ipv6_as_86dd() {
    let v6vip = ip("2001:db8:113::100");
    for (tun, hlen) in [(TunConfig::gre(TunCsum::Csum), 8), (TunConfig::gre(TunCsum::RemCsum), 4)] {
        let (mut d, _) = tunnel_director(v6vip, "2001:db8:2::11", tun);
        let (input, out) = tunnel(&mut d, Tcp::new((ip("2001:db8:51::2"), 1000), (v6vip, 80), SYN));
        assert_eq!(out.len(), input.len() + 40 + hlen, "{tun:?}: remcsum is no GRE checksum");
        assert_eq!(out[14 + 6], 47);
        assert_eq!(&out[54..58], &[if hlen == 8 { 0x80 } else { 0 }, 0x00, 0x86, 0xdd]);
        if hlen == 8 {
            assert_eq!(rfc1071(&out[54..]), 0);
        }
        assert_eq!(&out[54 + hlen..], &forwarded(&input)[..]);
    }
}

#[test]
fn the_mtu_check_counts_the_encapsulation() {
    // `__ip_vs_get_out_rt`: the route's MTU less the outer IP header and, for GUE, the UDP
    // and GUE headers; for GRE, `gre_calc_hlen`. A DF packet that fits IP-in-IP (1480) but
    // not the larger tunnel is answered with the smaller MTU.
    for (tun, mtu) in [
        (TunConfig::gue(6080, TunCsum::NoCsum), 1468),
        (TunConfig::gre(TunCsum::NoCsum), 1476),
        (TunConfig::gre(TunCsum::Csum), 1472),
    ] {
        let (mut d, _) = tunnel_director(vip(), "192.0.2.11", tun);
        let payload = [0u8; 1440];
        let mut t = Tcp::new(client(1000), (vip(), 80), SYN);
        t.payload = &payload;
        assert_eq!(t.build().len() - 14, 1480);
        let (v, f) = send(&mut d, 1, t);
        assert_eq!(v, Verdict::Transmit { port: 0, dest: None }, "{tun:?}");
        let icmp = &f.data()[34..];
        assert_eq!((icmp[0], icmp[1]), (3, 4), "{tun:?}: fragmentation needed");
        assert_eq!(be16(icmp, 6), mtu, "{tun:?}");
        // One byte less than the quoted MTU fits.
        let fits = [0u8; 1440];
        let mut t = Tcp::new(client(1001), (vip(), 80), SYN);
        t.payload = &fits[..usize::from(mtu) - 40];
        let (v, _) = send(&mut d, 1, t);
        assert!(matches!(v, Verdict::Transmit { port: 1, .. }), "{tun:?}: {v:?}");
    }
}

#[test]
fn a_gue_server_needs_its_port() {
    // `ip_vs_add_dest` / `ip_vs_edit_dest`: "tunnel port is zero", -EINVAL.
    let mut d = director();
    d.add_service(ServiceConfig::new(svc(), "first")).unwrap();
    let gue0 =
        RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Tunnel, 1).with_tunnel(TunConfig::gue(0, TunCsum::Csum));
    let e = d.add_dest(&svc(), gue0).unwrap_err();
    assert_eq!((e.clone(), e.errno()), (Error::ZeroTunnelPort, 22));
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Tunnel, 1)).unwrap();
    assert_eq!(d.edit_dest(&svc(), gue0), Err(Error::ZeroTunnelPort));
    // An edit switches the encapsulation of the connections already there, as the kernel's
    // transmitter reads `cp->dest->tun_type` on every packet.
    let _ = tunnel(&mut d, Tcp::new(client(1000), (vip(), 80), SYN));
    d.edit_dest(&svc(), gue0.with_tunnel(TunConfig::gre(TunCsum::NoCsum))).unwrap();
    let (_, out) = tunnel(&mut d, Tcp::new(client(1000), (vip(), 80), ACK));
    assert_eq!(out[14 + 9], 47);
}
