//! What a port must receive for a director: the frames `ip_vs_in` would look at (to a virtual
//! address), the NAT replies `ip_vs_out` would look at (from a masqueraded real server), and
//! nothing else. A [`Filter`] is built from the director's services and compiled into a classic
//! BPF program for AF_PACKET (`SO_ATTACH_FILTER`) or into the entries of the AF_XDP program's
//! map, so that the kernel keeps ARP, management traffic and the replies of DR and TUN servers
//! to itself instead of copying every frame to the director.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use lvs_core::addr::ServiceKey;
use lvs_core::dest::FwdMethod;
use lvs_core::Director;

pub use crate::bpf::SockFilter;
use crate::bpf::{Cbpf, BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_K, BPF_LD, BPF_RET, BPF_W};

/// IP protocol numbers of ICMP and ICMPv6: errors about a connection travel with them.
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// Which address of a frame a [`Match`] looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// The destination: a virtual address (and port).
    To,
    /// The source: a NAT real server's replies (to anyone but the director's own addresses).
    From,
    /// The destination is the director host's own address: never the director's, so replies
    /// to the host's own connections (health checks) stay with the kernel even from a NAT
    /// server.
    Own,
}

/// One class of frames a port receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Match {
    /// Which address is compared.
    pub dir: Dir,
    /// IP protocol number; 0 for any.
    pub proto: u8,
    /// The address.
    pub addr: IpAddr,
    /// Transport port (destination for [`Dir::To`], source for [`Dir::From`]); 0 for any.
    pub port: u16,
}

impl Match {
    /// Frames to `addr` (any protocol, any port): an application's fwmark class, for instance.
    pub fn to_addr(addr: IpAddr) -> Match {
        Match { dir: Dir::To, proto: 0, addr, port: 0 }
    }

    /// The 20-byte key of the XDP program's `lvs_matches` map (`struct lvs_match` in
    /// `bpf/lvs_xdp.c`): the address as IPv6 (IPv4 mapped), the port in network order, the
    /// protocol, the direction.
    #[cfg(all(feature = "afxdp", target_os = "linux"))]
    pub(crate) fn key(&self) -> [u8; 20] {
        let mut k = [0u8; 20];
        let v6 = match self.addr {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        k[..16].copy_from_slice(&v6.octets());
        k[16..18].copy_from_slice(&self.port.to_be_bytes());
        k[18] = self.proto;
        k[19] = match self.dir {
            Dir::To => 0,
            Dir::From => 1,
            Dir::Own => 2,
        };
        k
    }
}

/// The classes of frames a director's ports must receive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    matches: BTreeSet<Match>,
    /// The FullNAT services' local addresses: their replies are already let in by their
    /// servers' classes; the fanout program steers them by their destination port.
    locals: BTreeSet<IpAddr>,
}

impl Filter {
    /// The frames `director` handles: for each `proto VIP:port` service, that protocol and
    /// port to the VIP and ICMP errors to the VIP; for each NAT (masquerading) real server,
    /// its replies from its port and its ICMP errors, except those to the director's own port
    /// addresses. Fwmark services match what the application's classifier marks, which a
    /// filter cannot know: declare their classes with [`Filter::add`].
    ///
    /// DoS warning: grows with the number of services and NAT servers.
    pub fn from_director(director: &Director) -> Filter {
        let mut f = Filter::default();
        for svc in director.services() {
            let proto = match svc.config.key {
                ServiceKey::Inet { proto, addr, port } => {
                    f.add(Match { dir: Dir::To, proto: proto.number(), addr, port });
                    f.add(Match { dir: Dir::To, proto: icmp_of(addr), addr, port: 0 });
                    proto.number()
                }
                ServiceKey::Fwmark { .. } => 0,
            };
            if let Ok(locals) = director.laddrs(&svc.config.key) {
                f.locals.extend(locals.iter().map(|l| canonical(l.addr)));
            }
            // FullNAT replies come from the server too (to a local address, never the host's own).
            for d in svc.dests.dests().filter(|d| matches!(d.fwd(), FwdMethod::Masq | FwdMethod::FullNat)) {
                let addr = d.addr();
                f.add(Match { dir: Dir::From, proto, addr, port: if proto == 0 { 0 } else { d.port() } });
                f.add(Match { dir: Dir::From, proto: icmp_of(addr), addr, port: 0 });
            }
        }
        if f.matches.iter().any(|m| m.dir == Dir::From) {
            for p in &director.config().ports {
                let own = p.addr4.map(IpAddr::V4).into_iter().chain(p.addr6.map(IpAddr::V6));
                for addr in own {
                    f.add(Match { dir: Dir::Own, proto: 0, addr, port: 0 });
                }
            }
        }
        f
    }

    /// Adds a class of frames (an application's fwmark class, say).
    pub fn add(&mut self, m: Match) {
        self.matches.insert(m);
    }

    /// The FullNAT local addresses of the director's services (`ipvsadm --get-laddr`), in a
    /// stable order.
    pub fn local_addrs(&self) -> impl Iterator<Item = &IpAddr> {
        self.locals.iter()
    }

    /// The classes, in a stable order.
    pub fn matches(&self) -> impl Iterator<Item = &Match> {
        self.matches.iter()
    }

    /// Whether a frame with these addresses, protocol and ports is one the director must see:
    /// what both the classic BPF program and the XDP program decide (`lookup` in
    /// `bpf/lvs_xdp.c`), for tests and for backends that filter in user space.
    pub fn wants(&self, src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> bool {
        let hit = |dir: Dir, addr: IpAddr, port: u16| {
            [(proto, port), (proto, 0), (0, 0)]
                .into_iter()
                .any(|(proto, port)| self.matches.contains(&Match { dir, proto, addr, port }))
        };
        let (src, dst) = (canonical(src), canonical(dst));
        hit(Dir::To, dst, dport) || (!hit(Dir::Own, dst, 0) && hit(Dir::From, src, sport))
    }

    /// The classic BPF program (`struct sock_filter` entries) that accepts what
    /// [`Filter::wants`] accepts on an Ethernet `SOCK_RAW` packet socket, and also every
    /// frame it cannot judge: VLAN-tagged frames, later IPv4 fragments, IPv6 with extension
    /// headers. Other frames (ARP, other hosts' traffic) are refused, so the kernel never
    /// copies them to the socket. Too many classes for one program (a classic program jumps
    /// at most 255 instructions ahead and holds at most 4096) give a program that accepts
    /// everything.
    pub fn classic_bpf(&self) -> Vec<SockFilter> {
        let mut p = Cbpf::default();
        let v4 = self.matches.iter().filter(|m| m.addr.is_ipv4()).copied().collect::<Vec<_>>();
        let v6 = self.matches.iter().filter(|m| m.addr.is_ipv6()).copied().collect::<Vec<_>>();
        p.ld(BPF_H, 12);
        // Ethertype: IPv4 and IPv6 go to their blocks; tags are accepted unjudged.
        p.jeq_else(0x8100, 0, 1);
        p.ret(ACCEPT);
        p.jeq_else(0x88a8, 0, 1);
        p.ret(ACCEPT);
        let v6_jump = p.code.len();
        p.jeq_else(0x86dd, 0, 0); // patched to the IPv6 block
        p.jeq_else(0x0800, 1, 0);
        p.ret(REFUSE);
        // IPv4: later fragments are accepted; X = header length.
        p.ld(BPF_H, 20);
        p.jset_else(0x1fff, 0, 1);
        p.ret(ACCEPT);
        p.ldx_msh(14);
        for own in v4.iter().filter(|m| m.dir == Dir::Own) {
            p.ld(BPF_W, 30);
            p.jeq_else(v4_word(own.addr), 0, 1);
            let at = p.ja(); // patched past the From blocks
            p.pending.push(at);
        }
        for m in v4.iter().filter(|m| m.dir == Dir::To) {
            v4_block(&mut p, m, 30, 16);
        }
        for m in v4.iter().filter(|m| m.dir == Dir::From) {
            v4_block(&mut p, m, 26, 14);
        }
        p.patch_pending();
        p.ret(REFUSE);
        let v6_start = p.code.len();
        p.patch(v6_jump, v6_start, true);
        // IPv6: no extension headers is judged, anything else accepted.
        p.ld(BPF_B, 20);
        let judged = [6, 17, 132, ICMPV6];
        for (i, proto) in judged.iter().enumerate() {
            // A match jumps over the comparisons left and the acceptance after them.
            p.jeq_else(u32::from(*proto), (judged.len() - i) as u8, 0);
        }
        p.ret(ACCEPT);
        for own in v6.iter().filter(|m| m.dir == Dir::Own) {
            let words = v6_words(own.addr);
            for (i, w) in words.iter().enumerate() {
                p.ld(BPF_W, 38 + 4 * i as u32);
                p.jeq_else(*w, 0, (2 * (3 - i) + 1) as u8);
            }
            let at = p.ja();
            p.pending.push(at);
        }
        for m in v6.iter().filter(|m| m.dir == Dir::To) {
            v6_block(&mut p, m, 38, 56);
        }
        for m in v6.iter().filter(|m| m.dir == Dir::From) {
            v6_block(&mut p, m, 22, 54);
        }
        p.patch_pending();
        p.ret(REFUSE);
        p.finish().unwrap_or_else(|| vec![SockFilter { code: BPF_RET | BPF_K, jt: 0, jf: 0, k: ACCEPT }])
    }
}

/// Accept the whole frame.
const ACCEPT: u32 = 0x0004_0000;
/// Refuse it.
const REFUSE: u32 = 0;

/// One IPv4 class: address word at `addr_off`, port at X + `port_off`; a miss skips to
/// the next block, a hit accepts.
fn v4_block(p: &mut Cbpf, m: &Match, addr_off: u32, port_off: u32) {
    let mut misses = Vec::new();
    p.ld(BPF_W, addr_off);
    misses.push(p.code.len());
    p.jeq_else(v4_word(m.addr), 0, 0);
    proto_port(p, m, 23, BPF_IND, port_off, &mut misses);
    p.ret(ACCEPT);
    p.patch_misses(misses);
}

/// One IPv6 class: four address words from `addr_off`, port at absolute `port_off`.
fn v6_block(p: &mut Cbpf, m: &Match, addr_off: u32, port_off: u32) {
    let mut misses = Vec::new();
    for (i, w) in v6_words(m.addr).iter().enumerate() {
        p.ld(BPF_W, addr_off + 4 * i as u32);
        misses.push(p.code.len());
        p.jeq_else(*w, 0, 0);
    }
    proto_port(p, m, 20, BPF_ABS, port_off, &mut misses);
    p.ret(ACCEPT);
    p.patch_misses(misses);
}

fn proto_port(p: &mut Cbpf, m: &Match, proto_off: u32, mode: u16, port_off: u32, misses: &mut Vec<usize>) {
    if m.proto != 0 {
        p.ld(BPF_B, proto_off);
        misses.push(p.code.len());
        p.jeq_else(u32::from(m.proto), 0, 0);
    }
    if m.port != 0 {
        p.push(BPF_LD | BPF_H | mode, 0, 0, port_off);
        misses.push(p.code.len());
        p.jeq_else(u32::from(m.port), 0, 0);
    }
}

/// An IPv4 address as the big-endian word `ld [k]` loads.
fn v4_word(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(_) => 0,
    }
}

/// An IPv6 address as the four words `ld [k]` loads.
fn v6_words(a: IpAddr) -> [u32; 4] {
    let o = match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED.octets(),
    };
    let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// ICMP's protocol number for the address family.
fn icmp_of(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        ICMP
    } else {
        ICMPV6
    }
}

/// An IPv4-mapped IPv6 address as IPv4, so both spellings compare equal.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use lvs_core::neigh::MacAddr;
    use lvs_core::proto::tcp::flags;
    use lvs_core::testkit::{udp, Tcp, DIRECTOR_MAC};
    use lvs_core::{DirectorConfig, PortConfig};

    use super::*;

    /// The port filter's verdict on a frame, as the kernel's socket filter gives it.
    fn run(prog: &[SockFilter], pkt: &[u8]) -> Option<u32> {
        crate::bpf::run(prog, pkt, 0)
    }

    /// A director with `proto VIP:80` services on IPv4 and IPv6, each with one DR and one NAT
    /// server, and the host's own addresses on its port.
    fn director() -> Director {
        let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr("192.0.2.1".parse().unwrap());
        let mut d = Director::new(DirectorConfig::default().port(port), lvs_core::testkit::factory);
        let rules = "-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n\
                     -a -t 203.0.113.100:80 -r 192.0.2.12:8080 -m\n-A -u 203.0.113.100:53 -s first\n\
                     -a -u 203.0.113.100:53 -r 192.0.2.13:53 -m\n-A -t [2001:db8::100]:80 -s first\n\
                     -a -t [2001:db8::100]:80 -r [2001:db8:1::11]:80 -m\n";
        lvs_core::config::restore(&mut d, rules).unwrap();
        d
    }

    #[test]
    fn from_director_lists_vips_nat_servers_and_own_addresses() {
        let f = Filter::from_director(&director());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // ip_vs_in: a frame to a service's VIP:port; ip_vs_out: one from a NAT server's port.
        assert!(f.wants(ip("198.51.100.2"), ip("203.0.113.100"), 6, 40000, 80));
        assert!(f.wants(ip("198.51.100.2"), ip("203.0.113.100"), 1, 0, 0), "ICMP to the VIP");
        assert!(f.wants(ip("192.0.2.12"), ip("198.51.100.2"), 6, 8080, 40000), "NAT reply");
        assert!(f.wants(ip("192.0.2.13"), ip("198.51.100.2"), 17, 53, 40000), "NAT reply (UDP)");
        assert!(f.wants(ip("2001:db8:1::11"), ip("2001:db8::2"), 6, 80, 40000), "NAT reply (IPv6)");
        assert!(!f.wants(ip("203.0.113.100"), ip("198.51.100.2"), 6, 80, 40000), "DR reply");
        assert!(!f.wants(ip("192.0.2.11"), ip("198.51.100.2"), 6, 80, 40000), "DR server");
        assert!(!f.wants(ip("198.51.100.2"), ip("203.0.113.100"), 6, 40000, 443), "other port");
        assert!(!f.wants(ip("198.51.100.2"), ip("203.0.113.100"), 17, 40000, 80), "other protocol");
        assert!(!f.wants(ip("192.0.2.12"), ip("192.0.2.1"), 6, 8080, 50000), "answer to the host");
    }

    #[test]
    fn classic_bpf_decides_as_wants() {
        let f = Filter::from_director(&director());
        let prog = f.classic_bpf();
        let addrs = ["198.51.100.2", "203.0.113.100", "192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.1"];
        let addrs6 = ["2001:db8::2", "2001:db8::100", "2001:db8:1::11"];
        let ports = [80u16, 8080, 53, 443, 40000];
        let mut checked = 0;
        for set in [&addrs[..], &addrs6[..]] {
            for (s, d) in set.iter().flat_map(|s| set.iter().map(move |d| (s, d))) {
                let (src, dst): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
                for (sp, dp) in ports.iter().flat_map(|a| ports.iter().map(move |b| (*a, *b))) {
                    for (proto, frame) in
                        [(6, Tcp::new((src, sp), (dst, dp), flags::SYN).build()), (17, udp((src, sp), (dst, dp), b"x"))]
                    {
                        let accepted = run(&prog, &frame).unwrap() != 0;
                        assert_eq!(accepted, f.wants(src, dst, proto, sp, dp), "{src}:{sp} > {dst}:{dp} proto {proto}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, (36 + 9) * 25 * 2);
        // ARP is refused; VLAN-tagged frames are accepted unjudged.
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        arp.resize(42, 0);
        assert_eq!(run(&prog, &arp), Some(REFUSE));
        let mut tagged = Tcp::new(("198.51.100.2".parse().unwrap(), 1), ("192.0.2.99".parse().unwrap(), 1), flags::SYN);
        tagged.vlan = Some(7);
        assert_eq!(run(&prog, &tagged.build()), Some(ACCEPT));
    }
}
