//! Which shard a frame goes to when several sockets share a port (AF_PACKET fanout): the
//! kernel's flow hash, or a classic BPF program (`PACKET_FANOUT_CBPF`) that hashes the
//! *client's* side of the frame, so that both directions of a NAT connection, and with
//! [`Steer::Client`] every connection and persistence template of one client, meet on the
//! shard that owns them. The kernel's `fanout_demux_bpf` takes the program's return value
//! modulo the number of sockets in the group.
//!
//! The client's side of a frame: its source, except on a frame from a NAT (or FullNAT) real
//! server — a reply, whose destination is the client — and on an ICMP error from anywhere
//! else, which is about a packet the director sent to a client (`VIP → client`), so its
//! embedded destination is the client. A FullNAT reply comes to a local address and port
//! instead: it goes by that port, which the director took from its shard's share of the ports
//! (`DirectorConfig::fnat_port_share`), so shard `i` of `n` must be the `i`-th socket to join
//! the group (as [`crate::runtime::Shards`] opens them). Frames neither IPv4 nor IPv6 (or VLAN-tagged frames
//! the driver left tagged) all go to the first socket.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use lvs_core::service::Netmask;
use lvs_core::Director;

use crate::bpf::{
    Cbpf, SockFilter, BPF_ADD, BPF_AND, BPF_B, BPF_H, BPF_MUL, BPF_RSH, BPF_W, BPF_XOR, SKF_AD_PROTOCOL, SKF_NET_OFF,
};
use crate::filter::{Dir, Filter};

/// How the frames of a port are spread over the sockets of its fanout group (the shards).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Steer {
    /// The kernel's flow hash (`PACKET_FANOUT_HASH`): the same in both directions of one
    /// address and port pair, so a NAT reply, whose pair differs from its request's, lands on
    /// any shard (where it is `NotMine` unless it is the owner).
    #[default]
    FlowHash,
    /// The client's address and port: both directions of every NAT connection on one shard,
    /// and one client's connections spread over all of them. Fragmented IPv4 datagrams, and
    /// protocols without ports, go by the client's address alone, so a fragmented datagram
    /// may reach another shard than the rest of its connection; persistence templates are per
    /// shard, so a persistent client may get another server on another shard.
    ClientFlow,
    /// The client's address under a mask: every frame of one client network on one shard —
    /// its connections, fragments, ICMP errors and persistence templates. [`Steer::client_of`]
    /// takes the masks from the services' persistence netmasks (`-M`).
    Client {
        /// Bits of an IPv4 client address that count.
        v4_mask: Ipv4Addr,
        /// Leading bits of an IPv6 client address that count.
        v6_prefix: u8,
    },
}

/// The shard that owns a frame among `shards`, found as a fanout group of that many sockets
/// would find it: [`Steer::program`] run on the frame (the crate's classic BPF interpreter,
/// which runs what the kernel runs) and its value taken modulo the shards (the kernel's
/// `fanout_demux_bpf`). For shards that each take one receive queue and hand each frame to
/// its owner ([`crate::runtime::Runtime::with_handoff`]).
#[derive(Clone, Debug)]
pub struct Owner {
    program: Vec<SockFilter>,
    shards: usize,
}

impl Owner {
    /// The owner of an untagged Ethernet frame: 0 to `shards - 1`. A frame neither IPv4 nor
    /// IPv6 (a VLAN-tagged one among them) goes to shard 0, as it would in a fanout group.
    pub fn of(&self, frame: &[u8]) -> usize {
        // The program ends every path with a return; `None` (an instruction the interpreter
        // does not know) cannot come from what `Steer::program` writes.
        crate::bpf::run(&self.program, frame, ETH_HLEN).map_or(0, |v| v as usize % self.shards)
    }
}

/// Where a fanout program's data starts in an untagged Ethernet frame: the network header.
const ETH_HLEN: usize = 14;

/// EtherTypes, as `skb->protocol` gives them.
const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86dd;
/// IP protocol numbers whose first four bytes are the source and destination ports.
const PORTED: [u32; 3] = [6, 17, 132];
/// IPv4: the flags and fragment offset half-word; a fragment has MF or an offset.
const V4_FRAG_OFF: u32 = 6;
const V4_MF_OR_OFFSET: u32 = 0x3fff;
const V4_PROTO: u32 = 9;
const V4_SRC: u32 = 12;
const V4_DST: u32 = 16;
/// ICMP: where the embedded packet starts after the ICMP header (from the IP payload).
const ICMP_HDR: u32 = 8;
/// ICMP error types (destination unreachable, source quench, redirect, time exceeded,
/// parameter problem) and ICMPv6's (unreachable, too big, time exceeded, parameter problem).
const ICMP_ERRORS: [u32; 5] = [3, 4, 5, 11, 12];
const ICMPV6_ERRORS: [u32; 4] = [1, 2, 3, 4];
const IPPROTO_ICMP: u32 = 1;
const IPPROTO_ICMPV6: u32 = 58;
/// IPv6: next header, addresses, and the fixed header's length.
const V6_NEXT: u32 = 6;
const V6_SRC: u32 = 8;
const V6_DST: u32 = 24;
const V6_HDR: u32 = 40;
/// The multiplier of the final mix (2^32 / golden ratio, Knuth's multiplicative hashing).
const GOLDEN: u32 = 0x9e37_79b1;
/// Scratch slots: the port, and the IPv6 address being folded.
const M_PORT: u32 = 0;
const M_FOLD: u32 = 1;

/// Where a field is, from the network header: at a fixed offset, after the IPv4 header (`X`
/// holding its length), or after the IPv4 header an ICMP error embeds, options and all.
#[derive(Clone, Copy)]
enum Loc {
    Abs(u32),
    Ind(u32),
    /// An offset into the embedded packet's transport header.
    Embedded(u32),
}

/// The client's side of a frame: its address words and, when the mode hashes ports, its port.
struct Side {
    addr: [Loc; 4],
    words: usize,
    port: Option<Loc>,
}

impl Steer {
    /// Client steering whose masks keep every persistence template of `director` whole: the
    /// common bits of its IPv4 services' persistence netmasks, the shortest of its IPv6
    /// services' prefixes (the whole address when no service is persistent), so two clients
    /// that share a template always share a shard.
    pub fn client_of(director: &Director) -> Steer {
        let (mut v4_mask, mut v6_prefix) = (u32::MAX, 128u8);
        for svc in director.services().filter(|s| s.config.persistent.is_some()) {
            match svc.config.netmask {
                Netmask::V4(m) => v4_mask &= u32::from(m),
                Netmask::V6(p) => v6_prefix = v6_prefix.min(p),
            }
        }
        Steer::Client { v4_mask: Ipv4Addr::from(v4_mask), v6_prefix }
    }

    /// The fanout program for a port that receives what `filter` lists (its NAT servers tell
    /// replies apart); `None` for [`Steer::FlowHash`], which needs none. Too many NAT servers
    /// for one program (4096 instructions) give a program that reads every frame's source
    /// side, which keeps requests steered but not the replies.
    ///
    /// DoS warning: grows with the number of NAT servers.
    pub fn program(&self, filter: &Filter) -> Option<Vec<SockFilter>> {
        if *self == Steer::FlowHash {
            return None;
        }
        let servers: BTreeSet<IpAddr> = filter.matches().filter(|m| m.dir == Dir::From).map(|m| m.addr).collect();
        let servers: Vec<IpAddr> = servers.into_iter().collect();
        let locals: Vec<IpAddr> = filter.local_addrs().copied().collect();
        self.write(&servers, &locals).or_else(|| self.write(&[], &[]))
    }

    /// Who owns each frame among `shards` shards receiving what `filter` lists: `None` for
    /// [`Steer::FlowHash`] (no program: a frame stays where it arrived) or no shards.
    ///
    /// DoS warning: as [`Steer::program`].
    pub fn owner(&self, filter: &Filter, shards: usize) -> Option<Owner> {
        (shards > 0).then_some(())?;
        Some(Owner { program: self.program(filter)?, shards })
    }

    /// The program with `servers` as the NAT servers and `locals` as the FullNAT local
    /// addresses; `None` when it does not fit.
    fn write(&self, servers: &[IpAddr], locals: &[IpAddr]) -> Option<Vec<SockFilter>> {
        let mut p = Cbpf::default();
        p.ld(BPF_H, SKF_AD_PROTOCOL);
        p.jeq_else(ETH_P_IP, 2, 0);
        let to_v6 = p.code.len();
        p.jeq_else(ETH_P_IPV6, 0, 1); // true branch patched to the IPv6 block
        p.ret(0);
        let mut to_mix = Vec::new();
        // IPv4: X = header length.
        p.ldx_msh(net(0));
        p.ld(BPF_W, net(V4_SRC));
        let mut from_server = Vec::new();
        for a in servers.iter().filter_map(|a| v4_of(*a)) {
            p.jeq_else(a, 0, 1);
            from_server.push(p.ja());
        }
        let abs4 =
            |addr: u32, port: u32| Side { addr: [Loc::Abs(net(addr)); 4], words: 1, port: Some(Loc::Ind(net(port))) };
        let emb4 = |addr: u32, port: u32| Side {
            addr: [Loc::Ind(net(ICMP_HDR + addr)); 4],
            words: 1,
            port: Some(Loc::Embedded(port)),
        };
        self.side(&mut p, false, &abs4(V4_SRC, 0), &emb4(V4_DST, 2), &mut to_mix);
        let server = p.code.len();
        from_server.drain(..).for_each(|at| p.patch_ja(at, server));
        // To a FullNAT local address: the local port names the shard.
        p.ld(BPF_W, net(V4_DST));
        let mut to_local = Vec::new();
        for a in locals.iter().filter_map(|a| v4_of(*a)) {
            p.jeq_else(a, 0, 1);
            to_local.push(p.ja());
        }
        self.side(&mut p, false, &abs4(V4_DST, 2), &emb4(V4_SRC, 0), &mut to_mix);
        let local = p.code.len();
        to_local.drain(..).for_each(|at| p.patch_ja(at, local));
        local_port(&mut p, false);
        // IPv6.
        let v6 = p.code.len();
        p.patch(to_v6, v6, true);
        for a in servers.iter().filter_map(|a| v6_of(*a)) {
            let mut misses = Vec::new();
            for (i, w) in a.iter().enumerate() {
                p.ld(BPF_W, net(V6_SRC + 4 * i as u32));
                misses.push(p.code.len());
                p.jeq_else(*w, 0, 0);
            }
            from_server.push(p.ja());
            p.patch_misses(misses);
        }
        let v6 = |addr: u32, port: u32| Side { addr: v6_words(net(addr)), words: 4, port: Some(Loc::Abs(net(port))) };
        let inner = V6_HDR + ICMP_HDR;
        self.side(&mut p, true, &v6(V6_SRC, V6_HDR), &v6(inner + V6_DST, inner + V6_HDR + 2), &mut to_mix);
        let server = p.code.len();
        from_server.drain(..).for_each(|at| p.patch_ja(at, server));
        for a in locals.iter().filter_map(|a| v6_of(*a)) {
            let mut misses = Vec::new();
            for (i, w) in a.iter().enumerate() {
                p.ld(BPF_W, net(V6_DST + 4 * i as u32));
                misses.push(p.code.len());
                p.jeq_else(*w, 0, 0);
            }
            to_local.push(p.ja());
            p.patch_misses(misses);
        }
        self.side(&mut p, true, &v6(V6_DST, V6_HDR + 2), &v6(inner + V6_SRC, inner + V6_HDR), &mut to_mix);
        let local = p.code.len();
        to_local.drain(..).for_each(|at| p.patch_ja(at, local));
        local_port(&mut p, true);
        // The mix: fold the key's halves together, multiply, keep the well-mixed high half.
        let mix = p.code.len();
        for at in to_mix {
            p.patch_ja(at, mix);
        }
        p.tax();
        p.alu_k(BPF_RSH, 16);
        p.alu_x(BPF_XOR);
        p.alu_k(BPF_MUL, GOLDEN);
        p.alu_k(BPF_RSH, 16);
        p.ret_a();
        p.finish()
    }

    /// One side of a family: an ICMP error goes by the client's side of the packet it
    /// embeds (`embedded`), anything else by `plain`.
    fn side(&self, p: &mut Cbpf, v6: bool, plain: &Side, embedded: &Side, to_mix: &mut Vec<usize>) {
        let (proto, icmp, errors): (u32, u32, &[u32]) =
            if v6 { (V6_NEXT, IPPROTO_ICMPV6, &ICMPV6_ERRORS) } else { (V4_PROTO, IPPROTO_ICMP, &ICMP_ERRORS) };
        p.ld(BPF_B, net(proto));
        // Not ICMP: over the type load and its comparisons.
        p.jeq_else(icmp, 0, 1 + errors.len() as u8);
        if v6 {
            p.ld(BPF_B, net(V6_HDR));
        } else {
            p.ld_ind(BPF_B, net(0));
        }
        let mut to_embedded = Vec::new();
        for t in errors {
            to_embedded.push(p.code.len());
            p.jeq_else(*t, 0, 0);
        }
        self.key(p, plain, true, to_mix);
        let here = p.code.len();
        to_embedded.into_iter().for_each(|at| p.patch(at, here, true));
        self.key(p, embedded, false, to_mix);
    }

    /// Leaves the key of `side` in A and jumps to the mix: the masked address, and in
    /// [`Steer::ClientFlow`] its port XORed in when the frame has ports (`check`: a TCP, UDP
    /// or SCTP packet that is not an IPv4 fragment; without `check` the port is taken as
    /// there).
    fn key(&self, p: &mut Cbpf, side: &Side, check: bool, to_mix: &mut Vec<usize>) {
        let v6 = side.words == 4;
        let masks = self.masks(v6);
        let port = match (self, side.port) {
            (Steer::ClientFlow, Some(port)) => Some(port),
            _ => None,
        };
        let (mut fragment, mut portless) = (None, None);
        if let Some(port) = port {
            if check {
                if !v6 {
                    p.ld(BPF_H, net(V4_FRAG_OFF));
                    fragment = Some(p.code.len());
                    p.jset_else(V4_MF_OR_OFFSET, 0, 0); // true branch patched
                }
                p.ld(BPF_B, net(if v6 { V6_NEXT } else { V4_PROTO }));
                let mut ported = Vec::new();
                for proto in PORTED {
                    ported.push(p.code.len());
                    p.jeq_else(proto, 0, 0);
                }
                portless = Some(p.ja());
                let here = p.code.len();
                for at in ported {
                    p.patch(at, here, true);
                }
            }
            load(p, BPF_H, port);
            p.st(M_PORT);
            address(p, side, &masks);
            p.ldx_mem(M_PORT);
            p.alu_x(BPF_XOR);
            to_mix.push(p.ja());
        }
        let here = p.code.len();
        fragment.into_iter().for_each(|at| p.patch(at, here, true));
        portless.into_iter().for_each(|at| p.patch_ja(at, here));
        if port.is_none() || check {
            address(p, side, &masks);
            to_mix.push(p.ja());
        }
    }

    /// The masks of an address's words.
    fn masks(&self, v6: bool) -> [u32; 4] {
        match (self, v6) {
            (Steer::Client { v4_mask, .. }, false) => [u32::from(*v4_mask), 0, 0, 0],
            (Steer::Client { v6_prefix, .. }, true) => {
                let bits = |i: u32| {
                    let n = u32::from(*v6_prefix).saturating_sub(32 * i).min(32);
                    u32::MAX.checked_shl(32 - n).unwrap_or(0)
                };
                [bits(0), bits(1), bits(2), bits(3)]
            }
            _ => [u32::MAX; 4],
        }
    }
}

/// Returns the local port of a FullNAT reply (or of the packet an ICMP error about one
/// carries): the director took it from its shard's [`lvs_core::laddr::PortShare`], so the
/// port modulo the number of shards is the shard. X holds the IPv4 header's length.
fn local_port(p: &mut Cbpf, v6: bool) {
    let (proto, icmp) = if v6 { (V6_NEXT, IPPROTO_ICMPV6) } else { (V4_PROTO, IPPROTO_ICMP) };
    p.ld(BPF_B, net(proto));
    let not_icmp = p.code.len();
    // Not ICMP: the false branch, patched below to the plain packet's port.
    p.jeq_else(icmp, 0, 0);
    // The embedded packet left from the local address: its source port.
    if v6 {
        p.ld(BPF_H, net(V6_HDR + ICMP_HDR + V6_HDR));
    } else {
        load(p, BPF_H, Loc::Embedded(0));
    }
    p.ret_a();
    let here = p.code.len();
    p.patch(not_icmp, here, false);
    if v6 {
        p.ld(BPF_H, net(V6_HDR + 2));
    } else {
        p.ld_ind(BPF_H, net(2));
    }
    p.ret_a();
}

/// An offset from the network header, as a load's operand.
fn net(off: u32) -> u32 {
    SKF_NET_OFF.wrapping_add(off)
}

/// `A = [loc]`, X left as it was.
fn load(p: &mut Cbpf, size: u16, loc: Loc) {
    match loc {
        Loc::Abs(off) => p.ld(size, off),
        Loc::Ind(off) => p.ld_ind(size, off),
        Loc::Embedded(off) => {
            // X = the outer header's length plus the embedded one's (its IHL, after the ICMP
            // header), the field, then X back to the outer header's length.
            p.ld_ind(BPF_B, net(ICMP_HDR));
            p.alu_k(BPF_AND, 0xf);
            p.alu_k(BPF_MUL, 4);
            p.alu_x(BPF_ADD);
            p.tax();
            p.ld_ind(size, net(ICMP_HDR + off));
            p.ldx_msh(net(0));
        }
    }
}

/// A = the side's address words, masked and folded with XOR (scratch slot [`M_FOLD`]; X is
/// left as it was for a one-word address).
fn address(p: &mut Cbpf, side: &Side, masks: &[u32; 4]) {
    for (i, (loc, mask)) in side.addr.iter().zip(masks).take(side.words).enumerate() {
        load(p, BPF_W, *loc);
        p.alu_k(BPF_AND, *mask);
        if side.words > 1 {
            if i > 0 {
                p.ldx_mem(M_FOLD);
                p.alu_x(BPF_XOR);
            }
            p.st(M_FOLD);
        }
    }
}

/// The four words of an IPv6 address at `off`.
fn v6_words(off: u32) -> [Loc; 4] {
    [Loc::Abs(off), Loc::Abs(off + 4), Loc::Abs(off + 8), Loc::Abs(off + 12)]
}

/// An IPv4 address as the word `ld` loads (an IPv4-mapped IPv6 address too).
fn v4_of(a: IpAddr) -> Option<u32> {
    match a {
        IpAddr::V4(a) => Some(u32::from(a)),
        IpAddr::V6(a) => a.to_ipv4_mapped().map(u32::from),
    }
}

/// An IPv6 address as the four words `ld` loads.
fn v6_of(a: IpAddr) -> Option<[u32; 4]> {
    match a {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            Some([w(0), w(4), w(8), w(12)])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{icmpv4, Icmpv4Type, Icmpv6Type, PacketBuilder};
    use lvs_core::neigh::MacAddr;
    use lvs_core::proto::tcp::flags;
    use lvs_core::testkit::{udp, Tcp, DIRECTOR_MAC};
    use lvs_core::{DirectorConfig, PortConfig};

    use super::*;

    /// Where a fanout program's data starts in an untagged Ethernet frame: the network header.
    const NET: usize = 14;

    /// A NAT director: `203.0.113.100:80` served by 192.0.2.12:8080 and `[2001:db8::100]:80`
    /// by `[2001:db8:1::11]:80`, both masquerading, plus a DR server; `rules` adds to it.
    fn director(rules: &str) -> Director {
        let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr("192.0.2.1".parse().unwrap());
        let mut d = Director::new(DirectorConfig::default().port(port), lvs_core::testkit::factory);
        let base = "-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.12:8080 -m\n\
                    -a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n-A -t [2001:db8::100]:80 -s first\n\
                    -a -t [2001:db8::100]:80 -r [2001:db8:1::11]:80 -m\n";
        lvs_core::config::restore(&mut d, &format!("{base}{rules}")).unwrap();
        d
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The shard value of a frame: what `fanout_demux_bpf` takes modulo the group's size.
    fn value(prog: &[SockFilter], frame: &[u8]) -> u32 {
        crate::bpf::run(prog, frame, NET).expect("only instructions the interpreter knows")
    }

    /// An ICMP error from `src` to `dst` (unreachable, or ICMPv6's) about the IP packet
    /// `about` (an Ethernet frame).
    fn icmp_error(src: IpAddr, dst: IpAddr, about: &[u8]) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 9, 9], DIRECTOR_MAC);
        let mut out = Vec::new();
        let payload = &about[NET..];
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let t = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Host);
                eth.ipv4(s.octets(), d.octets(), 64).icmpv4(t).write(&mut out, payload).unwrap();
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let t = Icmpv6Type::PacketTooBig { mtu: 1280 };
                eth.ipv6(s.octets(), d.octets(), 64).icmpv6(t).write(&mut out, payload).unwrap();
            }
            _ => unreachable!("one family"),
        }
        out
    }

    /// Every pair of frames that belongs to one NAT connection of client `c`, port `cp`:
    /// the request, the server's reply, an ICMP error a router sends to the VIP about the
    /// director's reply to the client, and one the server sends about the forwarded request.
    fn one_connection(c: IpAddr, cp: u16) -> Vec<Vec<u8>> {
        let (vip, rs, rport) = if c.is_ipv4() {
            (ip("203.0.113.100"), ip("192.0.2.12"), 8080)
        } else {
            (ip("2001:db8::100"), ip("2001:db8:1::11"), 80)
        };
        let router = if c.is_ipv4() { ip("198.51.100.254") } else { ip("2001:db8:ff::1") };
        let request = Tcp::new((c, cp), (vip, 80), flags::SYN).build();
        let reply = Tcp::new((rs, rport), (c, cp), flags::SYN | flags::ACK).build();
        let to_client = Tcp::new((vip, 80), (c, cp), flags::SYN | flags::ACK).build();
        let forwarded = Tcp::new((c, cp), (rs, rport), flags::SYN).build();
        vec![request, reply, icmp_error(router, vip, &to_client), icmp_error(rs, c, &forwarded)]
    }

    #[test]
    fn both_directions_of_a_nat_connection_meet() {
        let d = director("");
        let filter = Filter::from_director(&d);
        for steer in [Steer::ClientFlow, Steer::client_of(&d)] {
            let prog = steer.program(&filter).unwrap();
            for c in [ip("198.51.100.2"), ip("198.51.100.77"), ip("2001:db8:5::2"), ip("2001:db8:5::9")] {
                for cp in [1024u16, 40000, 40001, 65535] {
                    let values: Vec<u32> = one_connection(c, cp).iter().map(|f| value(&prog, f)).collect();
                    assert!(values.iter().all(|v| *v == values[0]), "{steer:?} {c}:{cp}: {values:?}");
                }
            }
        }
    }

    /// `frame` (IPv4) with four bytes of options (NOPs) in its IP header.
    fn with_ip_options(frame: &[u8]) -> Vec<u8> {
        let mut f = frame.to_vec();
        f.splice(NET + 20..NET + 20, [1, 1, 1, 1]);
        f[NET] = 0x46;
        let total = u16::from_be_bytes([f[NET + 2], f[NET + 3]]) + 4;
        f[NET + 2..NET + 4].copy_from_slice(&total.to_be_bytes());
        f
    }

    #[test]
    fn icmp_errors_about_packets_with_ip_options_meet_their_connection() {
        let d = director("");
        let filter = Filter::from_director(&d);
        let (vip, rs, router) = (ip("203.0.113.100"), ip("192.0.2.12"), ip("198.51.100.254"));
        for steer in [Steer::ClientFlow, Steer::client_of(&d)] {
            let prog = steer.program(&filter).unwrap();
            for cp in [1024u16, 40000, 40001, 65535] {
                let c = ip("198.51.100.2");
                let request = value(&prog, &Tcp::new((c, cp), (vip, 80), flags::SYN).build());
                let to_client = with_ip_options(&Tcp::new((vip, 80), (c, cp), flags::SYN | flags::ACK).build());
                let forwarded = with_ip_options(&Tcp::new((c, cp), (rs, 8080), flags::SYN).build());
                for error in [icmp_error(router, vip, &to_client), icmp_error(rs, c, &forwarded)] {
                    assert_eq!(value(&prog, &error), request, "{steer:?} {cp}: the embedded header's options");
                    assert_eq!(value(&prog, &with_ip_options(&error)), request, "{steer:?} {cp}: and the error's own");
                }
            }
        }
    }

    #[test]
    fn client_flow_spreads_one_clients_ports_and_client_keeps_them_together() {
        let d = director("");
        let filter = Filter::from_director(&d);
        for c in [ip("198.51.100.2"), ip("2001:db8:5::2")] {
            let vip = if c.is_ipv4() { ip("203.0.113.100") } else { ip("2001:db8::100") };
            let values = |steer: Steer| -> Vec<u32> {
                let prog = steer.program(&filter).unwrap();
                (0..64u16).map(|p| value(&prog, &Tcp::new((c, 30000 + p), (vip, 80), flags::SYN).build())).collect()
            };
            let flow = values(Steer::ClientFlow);
            for n in [2, 3, 4] {
                let shards: std::collections::BTreeSet<u32> = flow.iter().map(|v| v % n).collect();
                assert_eq!(shards.len(), n as usize, "{c}: 64 ports over {n} shards: {flow:?}");
            }
            let client = values(Steer::client_of(&d));
            assert!(client.iter().all(|v| *v == client[0]), "{c}: {client:?}");
        }
    }

    #[test]
    fn client_steering_masks_as_the_widest_persistence_netmask() {
        let d = director(
            "-A -t 203.0.113.100:443 -s first -p 300 -M 255.255.255.0\n-A -u 203.0.113.100:53 -s first -p 60 -M 255.255.0.0\n\
             -A -t [2001:db8::100]:443 -s first -p 300 -M 64\n",
        );
        let steer = Steer::client_of(&d);
        assert_eq!(steer, Steer::Client { v4_mask: Ipv4Addr::new(255, 255, 0, 0), v6_prefix: 64 });
        let prog = steer.program(&Filter::from_director(&d)).unwrap();
        let syn = |c: &str, port: u16| {
            let vip = if c.contains(':') { ip("2001:db8::100") } else { ip("203.0.113.100") };
            value(&prog, &Tcp::new((ip(c), port), (vip, 443), flags::SYN).build())
        };
        // One /16 (one /64): one template key for the UDP service (the IPv6 one), one shard.
        assert_eq!(syn("10.1.2.3", 1000), syn("10.1.200.9", 2000));
        assert_eq!(syn("2001:db8:7:1::5", 1000), syn("2001:db8:7:1:ffff::1", 2000));
        // Without persistence, the whole address counts.
        let whole = Steer::client_of(&director(""));
        assert_eq!(whole, Steer::Client { v4_mask: Ipv4Addr::BROADCAST, v6_prefix: 128 });
        // Clients of different networks spread over two shards.
        let spread: std::collections::BTreeSet<u32> =
            (0..32u8).map(|i| syn(&format!("10.{i}.0.1"), 1000) % 2).collect();
        assert_eq!(spread.len(), 2);
    }

    #[test]
    fn fragments_go_with_their_client() {
        let d = director("-A -u 203.0.113.100:53 -s first\n-a -u 203.0.113.100:53 -r 192.0.2.13:53 -m\n");
        let filter = Filter::from_director(&d);
        let c = ip("198.51.100.2");
        let request = udp((c, 5353), (ip("203.0.113.100"), 53), &[0; 64]);
        let fragment = |first: bool| {
            let mut f = request.clone();
            // Flags and offset (RFC 791): MF on the first fragment, an offset on a later one.
            let word: u16 = if first { 0x2000 } else { 0x0004 };
            f[NET + 6..NET + 8].copy_from_slice(&word.to_be_bytes());
            f
        };
        // Client steering: every fragment with the rest of the client's traffic.
        let prog = Steer::client_of(&d).program(&filter).unwrap();
        assert_eq!(value(&prog, &fragment(true)), value(&prog, &request));
        assert_eq!(value(&prog, &fragment(false)), value(&prog, &request));
        // Client-flow steering: the fragments of one datagram together, by the address alone.
        let prog = Steer::ClientFlow.program(&filter).unwrap();
        assert_eq!(value(&prog, &fragment(true)), value(&prog, &fragment(false)));
        let other_port = udp((c, 5354), (ip("203.0.113.100"), 53), &[0; 64]);
        let mut later = other_port.clone();
        later[NET + 6..NET + 8].copy_from_slice(&0x0004u16.to_be_bytes());
        assert_eq!(value(&prog, &later), value(&prog, &fragment(false)), "the port does not count");
    }

    #[test]
    fn a_fullnat_reply_goes_to_the_shard_whose_share_holds_its_local_port() {
        use lvs_core::laddr::PortShare;
        use lvs_core::neigh::Neighbour;
        use lvs_core::{Instant, Verdict};

        for (v4, rs, lip) in [(true, "192.0.2.12", "192.0.2.200"), (false, "2001:db8:1::12", "2001:db8:1::200")] {
            let (vip, c) = if v4 { ("203.0.113.100", "198.51.100.2") } else { ("2001:db8::100", "2001:db8:5::2") };
            let svc = if v4 { format!("{vip}:80") } else { format!("[{vip}]:80") };
            let rsa = if v4 { format!("{rs}:8080") } else { format!("[{rs}]:8080") };
            for index in 0..3u16 {
                // Shard `index` of three: its FullNAT connections leave from its ports only.
                let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(ip("192.0.2.1"));
                let mut cfg = DirectorConfig::default().port(port);
                cfg.fnat_port_share = PortShare::new(index, 3).unwrap();
                let mut d = Director::new(cfg, lvs_core::testkit::factory);
                let rules = format!("-A -t {svc} -s first\n-a -t {svc} -r {rsa} -b\n-P -t {svc} -z {lip}\n");
                lvs_core::config::restore(&mut d, &rules).unwrap();
                d.set_neighbour(ip(rs), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 2]), port: 0 });
                let prog = Steer::ClientFlow.program(&Filter::from_director(&d)).unwrap();
                for cp in [40000u16, 40001, 40002] {
                    let mut syn = Tcp::new((ip(c), cp), (ip(vip), 80), flags::SYN).frame();
                    let verdict = d.process(Instant::ZERO, &mut syn);
                    assert!(matches!(verdict, Verdict::Transmit { .. }), "{verdict:?}");
                    let out = syn.data();
                    let l4 = if v4 { NET + 20 } else { NET + 40 };
                    let lport = u16::from_be_bytes([out[l4], out[l4 + 1]]);
                    let reply = Tcp::new((ip(rs), 8080), (ip(lip), lport), flags::SYN | flags::ACK).build();
                    let forwarded = Tcp::new((ip(lip), lport), (ip(rs), 8080), flags::SYN).build();
                    let mut frames = vec![reply, icmp_error(ip(rs), ip(lip), &forwarded)];
                    if v4 {
                        frames.push(icmp_error(ip(rs), ip(lip), &with_ip_options(&forwarded)));
                    }
                    for frame in frames {
                        assert_eq!(value(&prog, &frame) % 3, u32::from(index), "{lip}:{lport}");
                    }
                }
            }
        }
    }

    #[test]
    fn other_frames_go_to_the_first_shard_and_flow_hash_needs_no_program() {
        let d = director("");
        let prog = Steer::ClientFlow.program(&Filter::from_director(&d)).unwrap();
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        arp.resize(42, 0);
        assert_eq!(value(&prog, &arp), 0);
        assert_eq!(Steer::FlowHash.program(&Filter::from_director(&d)), None);
    }
}
