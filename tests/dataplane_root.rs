//! Tests that need root (CI runs as root): they build a network namespace of their own, with
//! veth pairs or a TAP device inside it, and only ever send frames inside it. The namespace and
//! everything in it are removed when the test ends, also on failure. Without root (or `ip`,
//! `sysctl`) they fail under CI and say they were skipped elsewhere.

#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/root.rs"]
mod root;

use std::time::{Duration, Instant as StdInstant};

use lvs::core::addr::Af;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, Instant, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::io::PacketIo;
use lvs::dataplane::neigh::{self, KernelNeighbours};
use lvs::dataplane::runtime::Runtime;
use lvs::dataplane::tap::Tap;
use netns::Netns;

/// Whether this test can run (root, `ip`, `sysctl`); see `root::can_run`.
fn can_run() -> bool {
    root::can_run(true, &["ip", "sysctl"])
}

/// The real server's MAC.
const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);

/// A DR director for 203.0.113.100:80 with two arms: clients (and their gateway) behind port 0
/// with MAC `client_side`, the real server 192.0.2.11 behind port 1 with MAC `server_side`.
fn two_armed_dr(client_side: MacAddr, server_side: MacAddr) -> lvs::Director {
    let ports = vec![PortConfig::new(client_side), PortConfig::new(server_side)];
    let mut d = lvs::director(DirectorConfig { ports, ..DirectorConfig::default() });
    d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: RS_MAC, port: 1 });
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 });
    lvs::core::config::restore(&mut d, "-A -t 203.0.113.100:80 -s rr\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n")
        .unwrap();
    d
}

/// A namespace with veth pairs `(a, b)` up and IPv6 off (no neighbour-discovery noise).
fn ns_with_veths(name: &str, pairs: &[(&str, &str)]) -> Netns {
    let ns = Netns::create(name).unwrap();
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"]).unwrap();
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"]).unwrap();
    for (a, b) in pairs {
        ns.exec("ip", &["link", "add", a, "type", "veth", "peer", "name", b]).unwrap();
        ns.exec("ip", &["link", "set", a, "up"]).unwrap();
        ns.exec("ip", &["link", "set", b, "up"]).unwrap();
    }
    ns
}

/// A frame of the local experimental EtherType carrying `seq`.
fn test_frame(dst: [u8; 6], seq: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[2, 0, 0, 0, 0xaa, 1]);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(60, 0x5a);
    f
}

/// Receives until `want` frames matching `keep` arrived or two seconds pass.
fn collect(io: &mut dyn PacketIo, want: usize, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut pool: Vec<Frame> = (0..64).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 2048)).collect();
    let start = StdInstant::now();
    while got.len() < want && start.elapsed() < Duration::from_secs(2) {
        let n = io.recv(Instant::ZERO, &mut pool).unwrap();
        for f in &pool[..n] {
            if keep(f.data()) {
                got.push(f.data().to_vec());
            }
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

fn send_all(io: &mut dyn PacketIo, frames: &[Frame]) {
    let mut sent = 0;
    let start = StdInstant::now();
    while sent < frames.len() && start.elapsed() < Duration::from_secs(2) {
        sent += io.send(Instant::ZERO, &frames[sent..]).unwrap();
    }
    assert_eq!(sent, frames.len());
}

#[test]
fn afpacket_moves_frames_across_a_veth_pair() {
    if !can_run() {
        return;
    }
    let ns = ns_with_veths("lvs-t-afp", &[("lvsa", "lvsb")]);
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let mut a = AfPacket::open("lvsa", AfPacketConfig::default()).unwrap();
            let mut b = AfPacket::open("lvsb", AfPacketConfig { promisc: true, ..AfPacketConfig::default() }).unwrap();
            // Not promiscuous: frames for another MAC are not its own, whatever the link
            // delivers (a veth delivers everything its peer sends).
            let mut own = AfPacket::open("lvsb", AfPacketConfig::default()).unwrap();
            let frames: Vec<Frame> =
                (0..200u32).map(|i| Frame::new(DEFAULT_HEADROOM, &test_frame([2, 0, 0, 0, 0xbb, 1], i))).collect();
            send_all(&mut a, &frames);
            let got = collect(&mut b, 200, |d| d.get(12..14) == Some(&[0x88, 0xb5]));
            assert_eq!(got.len(), 200, "every frame arrives once");
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g, &test_frame([2, 0, 0, 0, 0xbb, 1], i as u32), "in order, unchanged");
            }
            send_all(&mut a, &[Frame::new(DEFAULT_HEADROOM, &test_frame([0xff; 6], 200))]);
            let got = collect(&mut own, 1, |d| d.get(12..14) == Some(&[0x88, 0xb5]));
            assert_eq!(got, [test_frame([0xff; 6], 200)], "only the broadcast, none of the frames for another MAC");
            // PACKET_IGNORE_OUTGOING: the sender does not see its own frames.
            let echo = collect(&mut a, 1, |d| d.get(12..14) == Some(&[0x88, 0xb5]));
            assert!(echo.is_empty());
            // A frame longer than a receive slot (2 KiB) on a link that carries it: skipped and
            // counted, and the ring goes on with the frame after it.
            for dev in ["lvsa", "lvsb"] {
                ns.exec("ip", &["link", "set", dev, "mtu", "3000"]).unwrap();
            }
            let mut big = test_frame([2, 0, 0, 0, 0xbb, 1], 300);
            big.resize(2500, 0);
            let next = test_frame([2, 0, 0, 0, 0xbb, 1], 301);
            send_all(&mut a, &[Frame::new(DEFAULT_HEADROOM, &big), Frame::new(DEFAULT_HEADROOM, &next)]);
            let got = collect(&mut b, 1, |d| d.get(12..14) == Some(&[0x88, 0xb5]) && d.first() == Some(&2));
            assert_eq!(got, [next], "the frame after the long one arrives");
            assert_eq!(b.truncated(), 1, "the long frame, counted");
        });
    });
}

#[test]
fn tap_exchanges_frames_with_the_kernel() {
    if !can_run() {
        return;
    }
    let ns = Netns::create("lvs-t-tap").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let mut tap = Tap::open("lvstap0", false).unwrap();
            assert_eq!(tap.name(), "lvstap0");
            ns.exec("ip", &["link", "set", "lvstap0", "up"]).unwrap();
            ns.exec("ip", &["addr", "add", "10.9.0.1/24", "dev", "lvstap0"]).unwrap();
            // An ARP request for the TAP's address, from a host "on the wire".
            let mut arp = vec![0xff; 6];
            arp.extend_from_slice(&[2, 0, 0, 0, 0xcc, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            arp.extend_from_slice(&[2, 0, 0, 0, 0xcc, 1, 10, 9, 0, 2]);
            arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 9, 0, 1]);
            send_all(&mut tap, &[Frame::new(DEFAULT_HEADROOM, &arp)]);
            let replies = collect(&mut tap, 1, |d| d.get(12..14) == Some(&[0x08, 0x06]) && d.get(21) == Some(&2));
            assert_eq!(replies.len(), 1, "the kernel answered through the TAP");
            assert_eq!(&replies[0][0..6], &[2, 0, 0, 0, 0xcc, 1]);
            assert_eq!(&replies[0][28..32], &[10, 9, 0, 1]);
        });
    });
}

#[test]
fn runtime_forwards_dr_between_veth_pairs() {
    if !can_run() {
        return;
    }
    let ns = ns_with_veths("lvs-t-rt", &[("lvsc1", "lvsc2"), ("lvss1", "lvss2")]);
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            // Each arm with its own MAC.
            let d = two_armed_dr(MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
            let promisc = AfPacketConfig { promisc: true, ..AfPacketConfig::default() };
            let client_side = AfPacket::open("lvsc2", promisc).unwrap();
            let server_side = AfPacket::open("lvss2", AfPacketConfig::default()).unwrap();
            let mut rt = Runtime::new(d, vec![Box::new(client_side), Box::new(server_side)]);
            let mut client = AfPacket::open("lvsc1", AfPacketConfig::default()).unwrap();
            let mut server = AfPacket::open("lvss1", promisc).unwrap();
            let vip = "203.0.113.100".parse().unwrap();
            let syns: Vec<Frame> = (0..50u16)
                .map(|p| {
                    lvs::core::testkit::Tcp::new(("198.51.100.2".parse().unwrap(), 10_000 + p), (vip, 80), 2).frame()
                })
                .collect();
            send_all(&mut client, &syns);
            let start = StdInstant::now();
            while rt.stats().tx < 50 && start.elapsed() < Duration::from_secs(2) {
                rt.poll_once(Instant::from_secs(1)).unwrap();
            }
            let got = collect(&mut server, 50, |d| d.get(0..6) == Some(&RS_MAC.0[..]));
            assert_eq!(got.len(), 50, "runtime stats: {:?}", rt.stats());
            for g in &got {
                assert_eq!(&g[6..12], &[2, 0, 0, 0, 0, 2], "from the MAC of the server-side port");
                assert_eq!(&g[30..34], &[203, 0, 113, 100], "IP untouched in DR");
            }
            assert_eq!(rt.director().conn_count(), 50);
        });
    });
}

#[test]
fn fanout_spreads_flows_over_shards() {
    use std::sync::Arc;

    use lvs::dataplane::runtime::Shards;

    if !can_run() {
        return;
    }
    let ns = ns_with_veths("lvs-t-fan", &[("lvsf1", "lvsf2"), ("lvsg1", "lvsg2")]);
    let name = ns.name().to_string();
    let make = Arc::new(move |_: usize| {
        lvs::dataplane::netns::enter(&name)?;
        let d = two_armed_dr(MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 1]));
        let cfg = AfPacketConfig { promisc: true, fanout: Some(0x4c56), ..AfPacketConfig::default() };
        let client_side: Box<dyn PacketIo + Send> = Box::new(AfPacket::open("lvsf2", cfg)?);
        let server_side: Box<dyn PacketIo + Send> = Box::new(AfPacket::open("lvsg2", AfPacketConfig::default())?);
        Ok(Runtime::new(d, vec![client_side, server_side]))
    });
    let shards = Shards::spawn(2, make).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let mut client = AfPacket::open("lvsf1", AfPacketConfig::default()).unwrap();
            let mut server =
                AfPacket::open("lvsg1", AfPacketConfig { promisc: true, ..AfPacketConfig::default() }).unwrap();
            let vip = "203.0.113.100".parse().unwrap();
            let syns: Vec<Frame> = (0..400u16)
                .map(|p| {
                    lvs::core::testkit::Tcp::new(("198.51.100.2".parse().unwrap(), 20_000 + p), (vip, 80), 2).frame()
                })
                .collect();
            send_all(&mut client, &syns);
            let got = collect(&mut server, 400, |d| d.get(0..6) == Some(&RS_MAC.0[..]));
            assert_eq!(got.len(), 400);
        });
    });
    let (listing, totals) = shards.stats();
    let per_shard = shards.shard_stats();
    shards.stop().unwrap();
    assert_eq!(totals.tx, 400, "{totals:?}");
    // 400 flows hashed over two sockets: all on one shard would mean fanout did not spread them.
    assert_eq!(per_shard.len(), 2);
    for (i, s) in per_shard.iter().enumerate() {
        assert!(s.tx > 0, "shard {i} forwarded nothing: {per_shard:?}");
    }
    assert!(listing.contains("  -> 192.0.2.11:80                     400"), "{listing}");
}

/// The IPv4 header checksum over `h` (RFC 1071): 0 when the header's own checksum is right.
fn header_sum(h: &[u8]) -> u16 {
    let sum: u32 = h.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))).sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    !(((sum & 0xffff) + (sum >> 16)) as u16)
}

/// What a real server's kernel makes of a fragmented tunnel packet: the director sends a
/// 1500-byte non-DF segment to a TUN server over a 1500-byte link as two outer fragments, and
/// the server's stack (`ip_local_deliver` → `ip_defrag`) hands a raw IPPROTO_IPIP socket the
/// whole IP-in-IP packet — 1520 bytes, the director's outer header unfragmented, and the client's
/// packet with only its TTL decremented. Raw sockets get the packet before any protocol handler,
/// so this needs no ipip module.
#[test]
fn a_real_server_reassembles_a_fragmented_tunnel_packet() {
    use socket2::{Domain, Protocol, Socket, Type};

    if !can_run() {
        return;
    }
    let dir = ns_with_veths("lvs-t-frag", &[("lvsf1", "lvsf2")]);
    let rs = Netns::create("lvs-t-fragrs").unwrap();
    dir.exec("ip", &["link", "set", "lvsf2", "netns", rs.name()]).unwrap();
    rs.exec("ip", &["link", "set", "lvsf2", "address", &RS_MAC.to_string(), "up"]).unwrap();
    rs.exec("ip", &["addr", "add", "192.0.2.11/24", "dev", "lvsf2"]).unwrap();
    let client = "198.51.100.2".parse().unwrap();
    let vip = "203.0.113.100".parse().unwrap();
    let body = vec![0x5a; 1460];
    let mut seg = lvs::core::testkit::Tcp::new((client, 1000), (vip, 80), 0x10);
    seg.payload = &body;
    let mut input = seg.build();
    // No DF (the builder sets it): clear the bit, then the header checksum afresh.
    input[20] &= !0x40;
    input[24..26].fill(0);
    let c = header_sum(&input[14..34]);
    input[24..26].copy_from_slice(&c.to_be_bytes());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            rs.enter().unwrap();
            let mut sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(4))).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 4096];
            let start = StdInstant::now();
            while start.elapsed() < Duration::from_secs(3) {
                if let Ok(n) = std::io::Read::read(&mut sock, &mut buf) {
                    return Some(buf[..n].to_vec());
                }
            }
            None
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let sent = s
            .spawn(|| {
                dir.enter().unwrap();
                let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1])).with_addr("192.0.2.1".parse().unwrap());
                let mut d = lvs::director(DirectorConfig { tun_mtu: 1500, ..DirectorConfig::default() }.port(port));
                d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: RS_MAC, port: 0 });
                lvs::core::config::restore(
                    &mut d,
                    "-A -t 203.0.113.100:80 -s rr\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -i\n",
                )
                .unwrap();
                let mut io = AfPacket::open("lvsf1", AfPacketConfig::default()).unwrap();
                let mut syn = lvs::core::testkit::Tcp::new((client, 1000), (vip, 80), 2).frame();
                assert!(matches!(d.process(Instant::from_secs(1), &mut syn), lvs::Verdict::Transmit { .. }));
                let mut frame = Frame::new(DEFAULT_HEADROOM, &input);
                let v = d.process(Instant::from_secs(1), &mut frame);
                assert!(matches!(v, lvs::Verdict::Fragmented { port: 0, more: 1, .. }), "{v:?}");
                let all: Vec<Frame> = std::iter::once(frame).chain(d.fragments().iter().cloned()).collect();
                send_all(&mut io, &all);
                all.len()
            })
            .join()
            .unwrap();
        assert_eq!(sent, 2);
        let got = server.join().unwrap().expect("the reassembled packet reached the raw socket");
        assert_eq!(got.len(), 1520, "the whole IP-in-IP packet");
        assert_eq!(got[9], 4);
        assert_eq!(&got[12..20], &[192, 0, 2, 1, 192, 0, 2, 11]);
        let inner = &got[20..];
        assert_eq!(inner.len(), input.len() - 14);
        assert_eq!(inner[8], input[22] - 1, "inner TTL decremented once");
        assert_eq!(header_sum(&inner[..20]), 0, "inner header checksum updated");
        assert_eq!(&inner[..8], &input[14..22]);
        assert_eq!(&inner[9..10], &input[23..24]);
        assert_eq!(&inner[12..], &input[26..], "addresses, TCP header and payload unchanged");
    });
}

/// The namespace's UDP `InCsumErrors` (`/proc/net/snmp`): datagrams the kernel dropped for a
/// bad checksum.
fn udp_csum_errors(ns: &Netns) -> u64 {
    let snmp = ns.exec("cat", &["/proc/net/snmp"]).unwrap();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    let col = names.split_whitespace().position(|n| n == "InCsumErrors").unwrap();
    values.split_whitespace().nth(col).unwrap().parse().unwrap()
}

/// A namespace with veth `lvsx1`–`lvsx2`, `lvsx2` holding 10.9.0.2/24 and the MAC
/// `testkit::udp` frames are sent to, and a kernel UDP socket bound to 10.9.0.2:9000 in it.
fn udp_lab(name: &str) -> (Netns, std::net::UdpSocket) {
    let ns = ns_with_veths(name, &[("lvsx1", "lvsx2")]);
    let mac = lvs::core::testkit::DIRECTOR_MAC.map(|b| format!("{b:02x}")).join(":");
    ns.exec("ip", &["link", "set", "lvsx2", "address", &mac]).unwrap();
    ns.exec("ip", &["addr", "add", "10.9.0.2/24", "dev", "lvsx2"]).unwrap();
    let sock = std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            std::net::UdpSocket::bind("10.9.0.2:9000").unwrap()
        })
        .join()
        .unwrap()
    });
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    (ns, sock)
}

/// Datagram `seq` to 10.9.0.2:9000: its number, then up to 1,400 bytes derived from it (its
/// checksums computed by etherparse).
fn datagram(seq: u32) -> (Vec<u8>, Vec<u8>) {
    let mut payload = seq.to_be_bytes().to_vec();
    payload.extend((0..(seq * 37) % 1400).map(|i| (i as u8) ^ (seq as u8)));
    let src = ("10.9.0.1".parse().unwrap(), 5000 + (seq % 100) as u16);
    let frame = lvs::core::testkit::udp(src, ("10.9.0.2".parse().unwrap(), 9000), &payload);
    (frame, payload)
}

/// Reads datagrams until `want` arrived or the socket stays quiet for its timeout (200 ms).
fn read_datagrams(sock: &std::net::UdpSocket, want: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < want {
        match sock.recv(&mut buf) {
            Ok(n) => got.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn afpacket_frames_arrive_intact_and_refused_ones_are_counted() {
    if !can_run() {
        return;
    }
    let (ns, sock) = udp_lab("lvs-t-udp");
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let mut tx = AfPacket::open("lvsx1", AfPacketConfig::default()).unwrap();
            let errors_before = udp_csum_errors(&ns);
            let mut want = Vec::new();
            let mut got = Vec::new();
            for burst in 0..1000u32 / 50 {
                let mut frames = Vec::new();
                for seq in burst * 50..(burst + 1) * 50 {
                    let (frame, payload) = datagram(seq);
                    frames.push(Frame::new(DEFAULT_HEADROOM, &frame));
                    want.push(payload);
                }
                if burst == 7 {
                    // Inside the burst: two frames longer than the link's MTU (1,500), which
                    // `packet_snd` refuses (EMSGSIZE); one whose UDP checksum is wrong (a
                    // payload byte changed after it was computed), which goes out and the
                    // receiver's kernel drops.
                    let (mut jumbo, _) = datagram(0);
                    jumbo.resize(1600, 0);
                    frames.insert(10, Frame::new(DEFAULT_HEADROOM, &jumbo));
                    jumbo.resize(2100, 0);
                    frames.insert(20, Frame::new(DEFAULT_HEADROOM, &jumbo));
                    let (mut bad, _) = datagram(5000);
                    let last = bad.len() - 1;
                    bad[last] ^= 0xff;
                    frames.insert(30, Frame::new(DEFAULT_HEADROOM, &bad));
                }
                send_all(&mut tx, &frames);
                got.extend(read_datagrams(&sock, want.len() - got.len()));
            }
            got.extend(read_datagrams(&sock, want.len() - got.len()));
            assert_eq!(got.len(), want.len(), "every good datagram arrives once");
            assert!(got == want, "in order, with the payload sent");
            assert_eq!(tx.refused(), 2, "the frames over the MTU, counted");
            assert_eq!(udp_csum_errors(&ns) - errors_before, 1, "the receiver checked every checksum");
        });
    });
}

#[test]
fn kernel_neighbours_teach_the_director_its_next_hops() {
    if !can_run() {
        return;
    }
    // The director's namespace, with one port on a link to a "server" namespace that holds a
    // real server (10.77.0.11) and the default gateway (10.77.0.254) behind one MAC.
    let d_ns = Netns::create("lvs-t-ngd").unwrap();
    let s_ns = Netns::create("lvs-t-ngs").unwrap();
    let lan_mac = "02:00:00:00:77:11";
    d_ns.exec("ip", &["link", "add", "lvsn0", "type", "veth", "peer", "name", "lvsn1", "netns", s_ns.name()]).unwrap();
    d_ns.exec("ip", &["addr", "add", "10.77.0.1/24", "dev", "lvsn0"]).unwrap();
    d_ns.exec("ip", &["link", "set", "lvsn0", "up"]).unwrap();
    d_ns.exec("ip", &["route", "add", "default", "via", "10.77.0.254"]).unwrap();
    s_ns.exec("ip", &["link", "set", "lvsn1", "address", lan_mac]).unwrap();
    s_ns.exec("ip", &["addr", "add", "10.77.0.11/24", "dev", "lvsn1"]).unwrap();
    s_ns.exec("ip", &["addr", "add", "10.77.0.254/24", "dev", "lvsn1"]).unwrap();
    s_ns.exec("ip", &["link", "set", "lvsn1", "up"]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            d_ns.enter().unwrap();
            let mut d = lvs::director(DirectorConfig::default().port(PortConfig::new(MacAddr([2, 0, 0, 0, 0x77, 1]))));
            // DR to a server on the link, NAT to one behind the gateway, DR to one that is not
            // on a link (which direct routing cannot reach), and a server given by hand.
            let rules = "-A -t 203.0.113.100:80 -s rr\n-a -t 203.0.113.100:80 -r 10.77.0.11:80 -g\n\
                         -A -t 203.0.113.100:81 -s rr\n-a -t 203.0.113.100:81 -r 172.16.5.5:81 -m\n\
                         -a -t 203.0.113.100:81 -r 10.77.0.99:81 -m\n\
                         -A -t 203.0.113.100:82 -s rr\n-a -t 203.0.113.100:82 -r 172.16.5.6:82 -g\n";
            lvs::core::config::restore(&mut d, rules).unwrap();
            // The server given by hand is left out.
            let fixed: std::net::IpAddr = "10.77.0.99".parse().unwrap();
            let servers: Vec<_> = neigh::servers(&d).into_iter().filter(|(ip, _)| *ip != fixed).collect();
            let mut k = KernelNeighbours::open(&["lvsn0"]).unwrap();
            let first = k.refresh(&servers, false).unwrap();
            let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
            assert!(first.neighbours.is_empty() && first.gateways.is_empty(), "nothing known yet: {first:?}");
            assert_eq!(first.resolving, [ip("10.77.0.11"), ip("10.77.0.254"), ip("10.77.0.254")]);
            assert_eq!(first.unreachable, [ip("172.16.5.6")], "direct routing needs the server on a link");
            // The kernel resolves them (ARP): a later refresh knows them.
            let mac = MacAddr([2, 0, 0, 0, 0x77, 0x11]);
            let n = Neighbour { mac, port: 0 };
            let start = StdInstant::now();
            let mut learned = neigh::Learned::default();
            while learned.gateways.is_empty() && start.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(50));
                let l = k.refresh(&servers, false).unwrap();
                learned.neighbours.extend(l.neighbours);
                learned.gateways.extend(l.gateways);
            }
            learned.neighbours.sort_by_key(|(ip, _)| *ip);
            assert_eq!(learned.neighbours, [(ip("10.77.0.11"), n), (ip("172.16.5.5"), n)]);
            assert_eq!(learned.gateways, [(Af::V4, n)]);
            // Nothing changed since: nothing to tell, nothing to resolve, the same unreachable.
            let again = k.refresh(&servers, false).unwrap();
            assert!(again.neighbours.is_empty() && again.gateways.is_empty() && again.resolving.is_empty());
            assert_eq!(again.unreachable, [ip("172.16.5.6")]);
            // Told, the director forwards a client's SYN to the server's MAC.
            learned.apply(&mut d);
            let mut syn = Frame::new(
                DEFAULT_HEADROOM,
                &lvs::core::testkit::Tcp::new((ip("198.51.100.2"), 40000), (ip("203.0.113.100"), 80), 0x02).build(),
            );
            let v = d.process(Instant::ZERO, &mut syn);
            assert!(matches!(v, lvs::core::Verdict::Transmit { port: 0, .. }), "{v:?}");
            assert_eq!(&syn.data()[0..6], &mac.0, "to the server's MAC, learned from the kernel");
        });
    });
}
