//! The ports that receive only what the director needs (root; CI runs as root), each test in a
//! namespace of its own with a veth pair: AF_XDP behind its XDP program takes the frames to
//! the VIP while ARP and the host's own traffic still reach the kernel (which answers them),
//! and the program is gone after; in NAT it takes the servers' replies to clients but not
//! their answers to the host, and follows a new filter; AF_XDP that cannot start falls back to AF_PACKET; the classic
//! BPF filter keeps DR replies (and the NAT servers' answers to the host's own health checks)
//! out of an AF_PACKET socket while NAT replies still come in.

#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/root.rs"]
mod root;

use std::time::{Duration, Instant as StdInstant};

use lvs::core::addr::Af;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::{udp, Tcp, DIRECTOR_MAC, GW_MAC};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, Instant, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::afxdp::{open_or_afpacket, AfXdp, AfXdpConfig};
use lvs::dataplane::filter::Filter;
use lvs::dataplane::io::PacketIo;
use netns::Netns;

const VIP: &str = "203.0.113.100";
const CLIENT: &str = "198.51.100.2";
/// The real server, and the director host's own address on its side.
const RS: &str = "192.0.2.11";
const OWN: &str = "192.0.2.1";

fn can_run() -> bool {
    root::can_run(true, &["ip", "sysctl"])
}

/// A namespace with veth `a` (the wire, MAC `GW_MAC`, no address: 10.8.0.1 is a host out
/// there, not the namespace's own) and `b` (the director's port, MAC `DIRECTOR_MAC`,
/// 10.8.0.2/24), both up, IPv6 off, each end with one queue each way.
fn wire(name: &str, a: &str, b: &str) -> Netns {
    wire_with_queues(name, a, b, 1)
}

/// [`wire`] with `queues` receive and transmit queues on each end.
fn wire_with_queues(name: &str, a: &str, b: &str, queues: u8) -> Netns {
    let ns = Netns::create(name).unwrap();
    for k in ["all", "default"] {
        ns.exec("sysctl", &["-qw", &format!("net.ipv6.conf.{k}.disable_ipv6=1")]).unwrap();
    }
    let q = queues.to_string();
    let link = ["link", "add", a, "numtxqueues", &q, "numrxqueues", &q, "type", "veth", "peer", "name", b];
    ns.exec("ip", &[&link[..], &["numtxqueues", &q, "numrxqueues", &q]].concat()).unwrap();
    for (dev, mac) in [(a, GW_MAC), (b, DIRECTOR_MAC)] {
        ns.exec("ip", &["link", "set", dev, "address", &MacAddr(mac).to_string(), "up"]).unwrap();
    }
    ns.exec("ip", &["addr", "add", "10.8.0.2/24", "dev", b]).unwrap();
    ns
}

/// A director for `VIP:80` whose one server is `RS:80`, by DR (`-g`) or NAT (`-m`), with the
/// host's own address `OWN` on its port.
fn director(method: &str) -> lvs::Director {
    let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(OWN.parse().unwrap());
    let mut d = lvs::director(DirectorConfig::default().port(port));
    d.set_neighbour(RS.parse().unwrap(), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
    let rules = format!("-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r {RS}:80 {method} -w 1\n");
    lvs::core::config::restore(&mut d, &rules).unwrap();
    d
}

/// A TCP segment between two `addr:port`s, from the wire's MAC to the director's.
fn tcp(src: (&str, u16), dst: (&str, u16), fl: u8) -> Vec<u8> {
    Tcp::new((src.0.parse().unwrap(), src.1), (dst.0.parse().unwrap(), dst.1), fl).build()
}

/// An ARP request from 10.8.0.1 (the wire) for `target`.
fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&GW_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&GW_MAC);
    f.extend_from_slice(&[10, 8, 0, 1, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&target);
    f
}

fn send(io: &mut dyn PacketIo, frames: &[Vec<u8>]) {
    let frames: Vec<Frame> = frames.iter().map(|f| Frame::new(DEFAULT_HEADROOM, f)).collect();
    let (mut sent, start) = (0, StdInstant::now());
    while sent < frames.len() && start.elapsed() < Duration::from_secs(2) {
        sent += io.send(Instant::ZERO, &frames[sent..]).unwrap();
    }
    assert_eq!(sent, frames.len());
}

/// Everything `io` receives in `wait` (the loop is bounded by it).
fn receive(io: &mut dyn PacketIo, wait: Duration) -> Vec<Vec<u8>> {
    let mut pool: Vec<Frame> = (0..64).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 2048)).collect();
    let (mut got, start) = (Vec::new(), StdInstant::now());
    while start.elapsed() < wait {
        let n = io.recv(Instant::ZERO, &mut pool).unwrap();
        got.extend(pool[..n].iter().map(|f| f.data().to_vec()));
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

/// Whether an XDP program is attached to `dev` (`ip link` shows `xdp`, `xdpgeneric`, ...).
fn has_xdp(ns: &Netns, dev: &str) -> bool {
    ns.exec("ip", &["link", "show", "dev", dev]).unwrap().contains("prog/xdp")
}

#[test]
fn afxdp_takes_vip_traffic_and_leaves_the_rest_to_the_kernel() {
    if !can_run() {
        return;
    }
    let ns = wire("lvs-t-xdp", "lvsxa", "lvsxb");
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let mut port = AfXdp::open("lvsxb", AfXdpConfig::default()).unwrap();
            assert!(has_xdp(&ns, "lvsxb"));
            assert!(!port.zero_copy(), "veth has no zero-copy: copy mode");
            port.set_filter(&Filter::from_director(&director("-g"))).unwrap();
            let mut peer = AfPacket::open("lvsxa", AfPacketConfig::default()).unwrap();
            let syn = tcp((CLIENT, 40000), (VIP, 80), flags::SYN);
            // The ARP request first, so that the kernel knows the wire's MAC for its answers.
            send(&mut peer, &[arp_request([10, 8, 0, 2])]);
            std::thread::sleep(Duration::from_millis(50));
            let closed_port = udp(("10.8.0.1".parse().unwrap(), 5000), ("10.8.0.2".parse().unwrap(), 9), b"x");
            let other_port = tcp((CLIENT, 40001), (VIP, 22), flags::SYN);
            send(&mut peer, &[syn.clone(), closed_port, other_port]);
            let got = receive(&mut port, Duration::from_millis(500));
            assert_eq!(got, [syn], "only the SYN for VIP:80 reaches the socket");
            let back = receive(&mut peer, Duration::from_millis(300));
            // The kernel answered: ARP reply (opcode 2) and ICMP port unreachable (3/3).
            assert!(back.iter().any(|f| f[12..14] == [0x08, 0x06] && f[21] == 2), "ARP reached the kernel: {back:?}");
            assert!(
                back.iter().any(|f| f[12..14] == [0x08, 0x00] && f[23] == 1 && f[34] == 3 && f[35] == 3),
                "the UDP datagram to the host reached the kernel: {back:?}"
            );
            assert!(port.kernel_drops().unwrap() == 0);
            drop(port);
            assert!(!has_xdp(&ns, "lvsxb"), "the program is detached with the port");
        });
    });
}

/// Everything each of `ports` receives in `wait`, polled in turn (the loop is bounded by it).
fn receive_each(ports: &mut [&mut AfXdp], wait: Duration) -> Vec<Vec<Vec<u8>>> {
    let mut pool: Vec<Frame> = (0..64).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 2048)).collect();
    let (mut got, start) = (vec![Vec::new(); ports.len()], StdInstant::now());
    while start.elapsed() < wait {
        let mut any = 0;
        for (port, got) in ports.iter_mut().zip(&mut got) {
            let n = port.recv(Instant::ZERO, &mut pool).unwrap();
            got.extend(pool[..n].iter().map(|f| f.data().to_vec()));
            any += n;
        }
        if any == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

/// UDP datagrams to `VIP:53` from `n` sockets of the namespace's own stack, through veth `a`
/// (the kernel picks each one's transmit queue by its flow hash, and veth delivers it on the
/// peer's receive queue of that number); returns each one's payload.
fn udp_through(ns: &Netns, a: &str, n: u16) -> Vec<Vec<u8>> {
    ns.exec("ip", &["addr", "add", "10.8.1.1/32", "dev", a]).unwrap();
    ns.exec("ip", &["route", "add", VIP, "dev", a, "src", "10.8.1.1"]).unwrap();
    let mac = MacAddr(DIRECTOR_MAC).to_string();
    ns.exec("ip", &["neigh", "add", VIP, "lladdr", &mac, "dev", a, "nud", "permanent"]).unwrap();
    (0..n)
        .map(|i| {
            let s = std::net::UdpSocket::bind(("10.8.1.1", 0)).unwrap();
            let payload = format!("datagram {i}").into_bytes();
            s.send_to(&payload, (VIP, 53)).unwrap();
            payload
        })
        .collect()
}

#[test]
fn two_queues_share_one_program_and_each_socket_gets_its_queue() {
    if !can_run() {
        return;
    }
    let ns = wire_with_queues("lvs-t-xq", "lvsqa", "lvsqb", 2);
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let queue = |q: u32| AfXdp::open("lvsqb", AfXdpConfig { queue: q, ..AfXdpConfig::default() });
            let mut q0 = queue(0).unwrap();
            // Queue 1 busy-polls (Linux 5.11 and later, as root); it receives all the same.
            let polled = AfXdpConfig { queue: 1, busy_poll: Some(50), ..AfXdpConfig::default() };
            let mut q1 = AfXdp::open("lvsqb", polled).unwrap();
            assert_eq!((q0.queue(), q1.queue()), (0, 1));
            assert!(q1.busy_poll() && !q0.busy_poll());
            assert!(q0.driver_mode() && q1.driver_mode(), "veth has native XDP; one program for both");
            let busy = queue(0).err().unwrap();
            assert_eq!(busy.kind(), std::io::ErrorKind::AddrInUse, "{busy}");
            let missing = queue(2).err().unwrap();
            assert_eq!(missing.kind(), std::io::ErrorKind::InvalidInput, "{missing}");
            assert!(missing.to_string().contains("has 2 receive queue(s), so no queue 2"), "{missing}");
            // One filter, set through one port, serves both queues: the program's map is shared.
            let mut d = lvs::director(DirectorConfig::default());
            lvs::core::config::restore(&mut d, &format!("-A -u {VIP}:53 -s rr\n-a -u {VIP}:53 -r {RS}:53 -g\n"))
                .unwrap();
            q1.set_filter(&Filter::from_director(&d)).unwrap();
            let sent = udp_through(&ns, "lvsqa", 64);
            let got = receive_each(&mut [&mut q0, &mut q1], Duration::from_millis(500));
            // The payload of a 14 + 20 + 8 byte header datagram.
            let payloads = |frames: &[Vec<u8>]| -> Vec<Vec<u8>> { frames.iter().map(|f| f[42..].to_vec()).collect() };
            let (on0, on1) = (payloads(&got[0]), payloads(&got[1]));
            assert!(!on0.is_empty() && !on1.is_empty(), "both queues carried some: {} and {}", on0.len(), on1.len());
            let mut all = [on0, on1].concat();
            all.sort();
            let mut want = sent;
            want.sort();
            assert_eq!(all, want, "every datagram once, on one queue or the other");
            // Queue 0's port goes: the program stays for queue 1, and goes with it.
            drop(q0);
            assert!(has_xdp(&ns, "lvsqb"), "queue 1 still has its socket");
            drop(q1);
            assert!(!has_xdp(&ns, "lvsqb"), "the program is detached with the last port");
        });
    });
}

#[test]
fn afxdp_takes_nat_replies_but_not_answers_to_the_host() {
    if !can_run() {
        return;
    }
    let ns = wire("lvs-t-xnat", "lvsna", "lvsnb");
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let mut port = AfXdp::open("lvsnb", AfXdpConfig::default()).unwrap();
            port.set_filter(&Filter::from_director(&director("-m"))).unwrap();
            let mut peer = AfPacket::open("lvsna", AfPacketConfig::default()).unwrap();
            let nat_reply = tcp((RS, 80), (CLIENT, 40000), flags::SYN | flags::ACK);
            let check_reply = tcp((RS, 80), (OWN, 50000), flags::SYN | flags::ACK);
            let dr_reply = tcp((VIP, 80), (CLIENT, 40000), flags::SYN | flags::ACK);
            send(&mut peer, &[check_reply, dr_reply, nat_reply.clone()]);
            assert_eq!(receive(&mut port, Duration::from_millis(300)), [nat_reply], "only the reply to the client");
            // A DR director's filter replaces the NAT one: the reply is the kernel's now.
            port.set_filter(&Filter::from_director(&director("-g"))).unwrap();
            send(&mut peer, &[tcp((RS, 80), (CLIENT, 40001), flags::SYN | flags::ACK)]);
            assert!(receive(&mut port, Duration::from_millis(300)).is_empty());
        });
    });
}

#[test]
fn afxdp_that_cannot_start_falls_back_to_afpacket() {
    if !can_run() {
        return;
    }
    let ns = wire("lvs-t-xfb", "lvsfa", "lvsfb");
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            // A veth pair has one queue: binding to queue 7 fails.
            let cfg = AfXdpConfig { queue: 7, ..AfXdpConfig::default() };
            let (mut port, why) = open_or_afpacket("lvsfb", cfg, AfPacketConfig::default()).unwrap();
            assert!(why.is_some(), "AF_XDP should not have started");
            assert!(!has_xdp(&ns, "lvsfb"), "nothing stays attached after the failed start");
            let mut peer = AfPacket::open("lvsfa", AfPacketConfig::default()).unwrap();
            let syn = tcp((CLIENT, 40000), (VIP, 80), flags::SYN);
            send(&mut peer, std::slice::from_ref(&syn));
            let got = receive(port.as_mut(), Duration::from_millis(300));
            assert!(got.contains(&syn), "the AF_PACKET fallback receives");
        });
    });
}

#[test]
fn classic_bpf_keeps_dr_replies_out_and_lets_nat_replies_in() {
    if !can_run() {
        return;
    }
    let ns = wire("lvs-t-bpf", "lvsba", "lvsbb");
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let mut peer = AfPacket::open("lvsba", AfPacketConfig::default()).unwrap();
            let syn = tcp((CLIENT, 40000), (VIP, 80), flags::SYN);
            let dr_reply = tcp((VIP, 80), (CLIENT, 40000), flags::SYN | flags::ACK);
            let nat_reply = tcp((RS, 80), (CLIENT, 40000), flags::SYN | flags::ACK);
            let check_reply = tcp((RS, 80), (OWN, 50000), flags::SYN | flags::ACK);
            let other = tcp((CLIENT, 40000), (VIP, 443), flags::SYN);
            let all =
                [arp_request([10, 8, 0, 2]), dr_reply.clone(), syn.clone(), nat_reply.clone(), check_reply, other];

            let mut dr = AfPacket::open("lvsbb", AfPacketConfig::default()).unwrap();
            dr.set_filter(&Filter::from_director(&director("-g"))).unwrap();
            // Whatever arrived before the filter was attached is not the filter's doing.
            receive(&mut dr, Duration::from_millis(50));
            send(&mut peer, &all);
            assert_eq!(receive(&mut dr, Duration::from_millis(300)), std::slice::from_ref(&syn), "DR: only the SYN");

            let mut nat = AfPacket::open("lvsbb", AfPacketConfig::default()).unwrap();
            nat.set_filter(&Filter::from_director(&director("-m"))).unwrap();
            receive(&mut nat, Duration::from_millis(50));
            send(&mut peer, &all);
            assert_eq!(
                receive(&mut nat, Duration::from_millis(300)),
                [syn, nat_reply],
                "NAT: the SYN and the server's reply to the client, not its answer to the host"
            );
        });
    });
}
