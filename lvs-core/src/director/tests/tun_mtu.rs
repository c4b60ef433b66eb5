//! TUN past the path MTU (issue 11, item 7), each expectation read from the kernel function its
//! test names: `__ip_vs_get_out_rt` / `ensure_mtu_is_adequate` decide between refusing and
//! sending, `ip_vs_tunnel_xmit` copies DF into the outer header and sets `ignore_df`, and the
//! stack's `ip_do_fragment` / `ip6_fragment` cut the outer packet.

use super::*;

/// A TCP segment of `payload` bytes from the client to the VIP, as a frame's bytes, with DF
/// cleared (and the header checksum fixed) when `df` is false.
fn segment(port: u16, payload: usize, df: bool) -> Vec<u8> {
    let body = alloc::vec![0x5a; payload];
    let mut t = Tcp::new(client(port), (vip(), 80), ACK);
    t.payload = &body;
    let mut b = t.build();
    if !df {
        let (old, new) = (u16::from_be_bytes([b[20], b[21]]), u16::from_be_bytes([b[20] & !0x40, b[21]]));
        let sum = crate::wire::csum::update16(u16::from_be_bytes([b[24], b[25]]), old, new);
        b[20] &= !0x40;
        b[24..26].copy_from_slice(&sum.to_be_bytes());
    }
    verify_checksums(&b).unwrap();
    b
}

/// A director with one TUN server at `rip` for the test service (tunnel MTU 1500), and the
/// connection of client port `port` opened by a SYN.
fn tun_director(rip: &str, port: u16) -> Director {
    let mut d = director_with(DirectorConfig { tun_mtu: 1500, ..DirectorConfig::default() });
    d.add_service(ServiceConfig::new(svc(), "first")).unwrap();
    d.add_dest(&svc(), RealServer::new(ip(rip), 80, FwdMethod::Tunnel, 1)).unwrap();
    assert!(matches!(send(&mut d, 1, Tcp::new(client(port), (vip(), 80), SYN)).0, Verdict::Transmit { port: 1, .. }));
    d
}

fn server_counters(d: &Director) -> crate::stats::Counters {
    d.service(&svc()).unwrap().dests.dests().next().unwrap().stats().counters()
}

/// The IPv4 fragments a verdict stands for: the frame, then `more` frames of `fragments()`.
fn all_fragments(d: &Director, v: Verdict, f: &Frame) -> Vec<Vec<u8>> {
    let Verdict::Fragmented { port: 1, dest: Some(_), more } = v else { panic!("not fragmented: {v:?}") };
    assert_eq!(d.fragments().len(), usize::from(more));
    core::iter::once(f.data().to_vec()).chain(d.fragments().iter().map(|g| g.data().to_vec())).collect()
}

/// `ip_vs_tunnel_xmit` sends a 1500-byte non-DF packet into a 1500-byte route whole (the MTU
/// check only refuses DF packets); `ip_finish_output` then hands the 1520-byte outer packet to
/// `ip_do_fragment`, which cuts its payload at 1500 − 20 = 1480 bytes (a multiple of 8): a
/// 1500-byte fragment (offset 0, MF) and a 40-byte one (offset 1480 / 8 = 185, no MF), both with
/// the outer header's ID and protocol 4, each with its own header checksum. The server
/// reassembles the IP-in-IP packet: the outer header and the inner packet, TTL decremented.
#[test]
fn a_large_non_df_packet_leaves_in_two_outer_fragments() {
    let mut d = tun_director("192.0.2.11", 1000);
    let before = server_counters(&d);
    let input = segment(1000, 1460, false);
    let mut f = Frame::new(DEFAULT_HEADROOM, &input);
    let v = d.process(Instant::from_secs(1), &mut f);
    let frags = all_fragments(&d, v, &f);
    assert_eq!(frags.len(), 2);
    let (a, b) = (&frags[0], &frags[1]);
    assert_eq!((a.len() - 14, b.len() - 14), (1500, 40));
    for (fr, offset, mf) in [(a, 0u16, true), (b, 185, false)] {
        assert_eq!(&fr[0..6], &rs_mac(1).0, "to the real server's MAC");
        assert_eq!(&fr[12..14], &[8, 0]);
        let h = &fr[14..34];
        assert_eq!(crate::wire::csum::checksum(h), 0, "header checksum");
        assert_eq!(h[9], 4, "IP-in-IP");
        assert_eq!(&h[16..20], &[192, 0, 2, 11]);
        let word = u16::from_be_bytes([h[6], h[7]]);
        assert_eq!(word & 0x1fff, offset);
        assert_eq!(word & 0x2000 != 0, mf);
        assert_eq!(word & 0x4000, 0, "no DF: the inner packet had none");
        assert_eq!(usize::from(u16::from_be_bytes([h[2], h[3]])), fr.len() - 14);
    }
    assert_eq!(a[18..20], b[18..20], "the same ID on every fragment");
    assert_ne!(&a[18..20], &[0, 0], "a non-DF outer header gets an ID (`ip_select_ident`)");
    // Reassembled: 1480 + 20 payload bytes are the inner packet, its TTL one less.
    let inner = [&a[34..], &b[34..]].concat();
    assert_eq!(inner.len(), 1500);
    assert_eq!(inner[8], input[22] - 1, "inner TTL decremented");
    assert_eq!(&inner[12..], &input[14 + 12..], "inner addresses and payload untouched");
    // `ip_vs_in_stats` counts the inner skb once, before the transmitter.
    let after = server_counters(&d);
    assert_eq!((after.inpkts - before.inpkts, after.inbytes - before.inbytes), (1, 1500));
    assert_eq!(d.drops()[Reason::MtuExceeded.index()], 0);
}

/// With DF the packet never reaches the stack: `ensure_mtu_is_adequate` sends "fragmentation
/// needed" quoting the route MTU less the outer header (1500 − 20), and that error, leaving
/// through LOCAL_OUT, is booked as OutPkts on the TUN connection (`handle_response_icmp`):
/// `__icmp_send` quotes 576 − 28 = 548 bytes, a 576-byte datagram.
#[test]
fn a_large_df_packet_is_refused_with_the_tunnel_mtu_and_the_refusal_booked() {
    let mut d = tun_director("192.0.2.11", 1000);
    let before = server_counters(&d);
    let mut f = Frame::new(DEFAULT_HEADROOM, &segment(1000, 1460, true));
    assert_eq!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { port: 0, dest: None });
    let icmp = &f.data()[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1480);
    assert!(d.fragments().is_empty());
    let after = server_counters(&d);
    assert_eq!(after.inpkts - before.inpkts, 1, "counted in before the transmitter refused it");
    assert_eq!((after.outpkts - before.outpkts, after.outbytes - before.outbytes), (1, 576));
    assert_eq!(d.drops()[Reason::MtuExceeded.index()], 1);
}

/// IPv6 is never fragmented by the director: for an IPv6 packet `ensure_mtu_is_adequate` sends
/// "packet too big" with the tunnel MTU, the route MTU less the outer header: 1500 − 40 toward
/// an IPv6 server, 1500 − 20 toward an IPv4 one (a mixed-family tunnel).
#[test]
fn a_large_ipv6_packet_gets_packet_too_big() {
    for (rip, mtu) in [("2001:db8:2::11", 1460u32), ("192.0.2.11", 1480)] {
        let mut d = director_with(DirectorConfig { tun_mtu: 1500, ..DirectorConfig::default() });
        let vip6 = ip("2001:db8:1::100");
        let key = ServiceKey::tcp(vip6, 80);
        d.add_service(ServiceConfig::new(key, "first")).unwrap();
        d.add_dest(&key, RealServer::new(ip(rip), 80, FwdMethod::Tunnel, 1)).unwrap();
        let body = [0u8; 1440];
        let mut t = Tcp::new((ip("2001:db8:3::2"), 1000), (vip6, 80), SYN);
        t.payload = &body;
        let (v, f) = send(&mut d, 1, t);
        assert_eq!(v, Verdict::Transmit { port: 0, dest: None }, "{rip}");
        let icmp = &f.data()[14 + 40..];
        assert_eq!((icmp[0], icmp[1]), (2, 0), "packet too big");
        assert_eq!(u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]), mtu, "{rip}");
        assert!(d.fragments().is_empty());
    }
}

/// An IPv4 packet without DF to an IPv6 server: `__ip_vs_get_out_rt_v6` checks it as IPv4
/// (only DF is refused), and `ip6_fragment` (with `ignore_df`) cuts the IPv6 outer packet: room
/// 1500 − 40 − 8 = 1452, cut to 1448, so 1448 + 52 payload bytes, each fragment with a fragment
/// header (next header 4, the offset in bytes, MF on the first, one identification).
#[test]
fn a_large_non_df_packet_to_an_ipv6_server_is_fragmented_in_ipv6() {
    let mut d = tun_director("2001:db8:2::11", 1000);
    let input = segment(1000, 1460, false);
    let mut f = Frame::new(DEFAULT_HEADROOM, &input);
    let v = d.process(Instant::from_secs(1), &mut f);
    let frags = all_fragments(&d, v, &f);
    assert_eq!(frags.len(), 2);
    let mut inner = Vec::new();
    for (fr, offset, mf, len) in [(&frags[0], 0u16, 1u16, 1448usize), (&frags[1], 1448, 0, 52)] {
        assert_eq!(&fr[12..14], &[0x86, 0xdd]);
        let h = &fr[14..54];
        assert_eq!(h[6], 44, "a fragment header follows");
        assert_eq!(usize::from(u16::from_be_bytes([h[4], h[5]])), 8 + len);
        assert_eq!(&h[24..40], &ip_bytes("2001:db8:2::11"));
        let fh = &fr[54..62];
        assert_eq!(fh[0], 4, "carrying IPv4");
        let word = u16::from_be_bytes([fh[2], fh[3]]);
        assert_eq!((word & !7, word & 1), (offset, mf));
        assert!(fr.len() - 14 <= 1500);
        inner.extend_from_slice(&fr[62..]);
    }
    assert_eq!(frags[0][58..62], frags[1][58..62], "one identification");
    assert_eq!(inner.len(), 1500);
    assert_eq!(&inner[12..], &input[14 + 12..]);
}

/// Fragments of a burst follow their verdicts in order, and the next call starts afresh.
#[test]
fn a_bursts_fragments_follow_their_verdicts_in_order() {
    let mut d = tun_director("192.0.2.11", 1000);
    let _ = send(&mut d, 1, Tcp::new(client(1001), (vip(), 80), SYN));
    let mut frames = [
        Frame::new(DEFAULT_HEADROOM, &segment(1000, 2980, false)),
        Frame::new(DEFAULT_HEADROOM, &segment(1000, 10, false)),
        Frame::new(DEFAULT_HEADROOM, &segment(1001, 1460, false)),
    ];
    let mut verdicts = [Verdict::NotMine; 3];
    d.process_burst(Instant::from_secs(1), &mut frames, &mut verdicts);
    // Outer payloads of 3020 bytes: 1480 + 1480 + 60; of 1500: 1480 + 20.
    let more: Vec<u16> = verdicts
        .iter()
        .map(|v| match v {
            Verdict::Fragmented { more, .. } => *more,
            _ => 0,
        })
        .collect();
    assert_eq!(more, [2, 0, 1]);
    assert!(matches!(verdicts[1], Verdict::Transmit { port: 1, .. }));
    let sizes: Vec<usize> = d.fragments().iter().map(|f| f.len() - 14).collect();
    assert_eq!(sizes, [1500, 80, 40]);
    let _ = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), ACK));
    assert!(d.fragments().is_empty());
}
