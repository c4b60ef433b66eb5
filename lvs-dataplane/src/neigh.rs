//! Next hops from the kernel's own tables (Linux), so that a director whose ports are also the
//! kernel's interfaces needs no list of MAC addresses: the route the kernel takes to a real
//! server (`ip route get`: its interface and gateway), the default gateways (`ip route`), and
//! their link-layer addresses from the kernel's neighbour table (`ip neigh`). A next hop the
//! table does not hold yet is handed to the kernel to resolve (`RTM_NEWNEIGH` with `NTF_USE`,
//! what `neigh_event_send` does for a packet waiting on it: an ARP request or a neighbour
//! solicitation), so a later refresh finds it.
//!
//! This works wherever the kernel sees the link's ARP and neighbour discovery traffic: on
//! AF_PACKET ports (the kernel keeps its copy of every frame) and on AF_XDP ports (the XDP
//! program passes ARP and ICMPv6 to the kernel). The kernel's IPVS forwards through the same
//! tables (`ip_vs_dr_xmit` and the others route to the server and let the neighbour layer
//! resolve it).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_core::neigh::{MacAddr, Neighbour};
use lvs_core::{Af, Director, FwdMethod};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

/// What changed since the previous [`KernelNeighbours::refresh`], to give to every director
/// that shares the ports ([`Learned::apply`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// Real servers whose next hop is new or moved.
    pub neighbours: Vec<(IpAddr, Neighbour)>,
    /// Default gateways that are new or moved.
    pub gateways: Vec<(Af, Neighbour)>,
    /// Next hops the kernel does not know yet and was asked to resolve in this refresh
    /// (known by a later one if they answer).
    pub resolving: Vec<IpAddr>,
    /// Real servers the kernel has no route to through one of the director's ports (or, for
    /// direct routing, no route on a link of one), as of this refresh.
    pub unreachable: Vec<IpAddr>,
}

impl Learned {
    /// Tells `d` the new next hops.
    pub fn apply(&self, d: &mut Director) {
        for (ip, n) in &self.neighbours {
            d.set_neighbour(*ip, *n);
        }
        for (af, n) in &self.gateways {
            d.set_gateway(*af, *n);
        }
    }
}

/// The real servers of `d`'s services, each address once, with its forwarding method (direct
/// routing needs its server on a link; the others may go through a gateway).
pub fn servers(d: &Director) -> Vec<(IpAddr, FwdMethod)> {
    let mut v: Vec<(IpAddr, FwdMethod)> =
        d.services().flat_map(|s| s.dests.dests().map(|v| (v.addr(), v.fwd())).collect::<Vec<_>>()).collect();
    v.sort_unstable_by_key(|(ip, f)| (*ip, *f != FwdMethod::Route));
    v.dedup_by_key(|(ip, _)| *ip);
    v
}

/// A route's interface and next hop: the gateway, or the address itself on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hop {
    ifindex: u32,
    gateway: Option<IpAddr>,
}

/// An rtnetlink socket that reads routes and neighbours for a director.
pub struct KernelNeighbours {
    sock: Socket,
    seq: u32,
    /// The interface of each director port, by port number.
    ports: Vec<u32>,
    /// What the directors were told, so a refresh reports only changes.
    told: HashMap<IpAddr, Neighbour>,
    /// The IPv4 and the IPv6 default gateway told.
    told_gw: [Option<Neighbour>; 2],
}

impl KernelNeighbours {
    /// Opens the socket in the calling thread's network namespace for a director whose port
    /// `i` is interface `ports[i]`.
    ///
    /// # Errors
    /// An interface that does not exist; the socket cannot be opened.
    pub fn open(ports: &[impl AsRef<str>]) -> io::Result<KernelNeighbours> {
        let ports = ports
            .iter()
            .map(|p| {
                crate::sys::linux::ifindex(p.as_ref())
                    .map_err(|e| io::Error::new(e.kind(), format!("interface {:?}: {e}", p.as_ref())))
            })
            .collect::<io::Result<Vec<u32>>>()?;
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(KernelNeighbours { sock, seq: 0, ports, told: HashMap::new(), told_gw: [None, None] })
    }

    /// Looks up the next hop of every real server in `servers` ([`servers`] lists a
    /// director's), and the default gateways unless `fixed_gateway`, and returns what changed.
    ///
    /// # Errors
    /// The kernel's answers cannot be read.
    pub fn refresh(&mut self, servers: &[(IpAddr, FwdMethod)], fixed_gateway: bool) -> io::Result<Learned> {
        let table = self.neighbours()?;
        let mut out = Learned::default();
        for &(ip, fwd) in servers {
            // Direct routing rewrites only the MAC: the server must be on a link of ours.
            let hop = self.route(ip)?.filter(|h| fwd != FwdMethod::Route || h.gateway.is_none());
            let Some((hop, port)) = hop.and_then(|h| Some((h, self.port_of(h.ifindex)?))) else {
                out.unreachable.push(ip);
                continue;
            };
            let via = hop.gateway.unwrap_or(ip);
            match table.get(&(hop.ifindex, via)) {
                Some(mac) => {
                    let n = Neighbour { mac: *mac, port };
                    if self.told.get(&ip) != Some(&n) {
                        out.neighbours.push((ip, n));
                    }
                }
                None => {
                    self.solicit(hop.ifindex, via)?;
                    out.resolving.push(via);
                }
            }
        }
        if !fixed_gateway {
            for (i, af) in [Af::V4, Af::V6].into_iter().enumerate() {
                let Some(hop) = self.default_route(af)? else { continue };
                let (Some(gw), Some(port)) = (hop.gateway, self.port_of(hop.ifindex)) else { continue };
                match table.get(&(hop.ifindex, gw)) {
                    Some(mac) => {
                        let n = Neighbour { mac: *mac, port };
                        if self.told_gw[i] != Some(n) {
                            out.gateways.push((af, n));
                        }
                    }
                    None => {
                        self.solicit(hop.ifindex, gw)?;
                        out.resolving.push(gw);
                    }
                }
            }
        }
        // Only now, with every answer read: a refresh that fails half-way reports again what
        // it found before failing.
        self.told.extend(out.neighbours.iter().copied());
        for (af, n) in &out.gateways {
            self.told_gw[usize::from(*af == Af::V6)] = Some(*n);
        }
        Ok(out)
    }

    fn port_of(&self, ifindex: u32) -> Option<u16> {
        self.ports.iter().position(|i| *i == ifindex).and_then(|p| u16::try_from(p).ok())
    }

    /// The route the kernel takes to `to` (`RTM_GETROUTE`), if it has a unicast one.
    fn route(&mut self, to: IpAddr) -> io::Result<Option<Hop>> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(to);
        m.header.destination_prefix_length = if to.is_ipv4() { 32 } else { 128 };
        m.attributes.push(RouteAttribute::Destination(RouteAddress::from(to)));
        match self.ask(0, RouteNetlinkMessage::GetRoute(m)) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewRoute(r) => hop(&r),
                _ => None,
            })),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENETUNREACH | libc::EHOSTUNREACH)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The main table's default route of a family, if it has one.
    fn default_route(&mut self, af: Af) -> io::Result<Option<Hop>> {
        let mut m = RouteMessage::default();
        m.header.address_family = if af == Af::V4 { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let routes = self.ask(NLM_F_DUMP, RouteNetlinkMessage::GetRoute(m))?;
        Ok(routes.into_iter().find_map(|a| match a {
            RouteNetlinkMessage::NewRoute(r)
                if r.header.destination_prefix_length == 0 && r.header.table == RouteHeader::RT_TABLE_MAIN =>
            {
                hop(&r)
            }
            _ => None,
        }))
    }

    /// The neighbour table's usable entries (`NUD_VALID`: reachable, stale, delay, probe,
    /// permanent), by interface and address.
    fn neighbours(&mut self) -> io::Result<HashMap<(u32, IpAddr), MacAddr>> {
        let answers = self.ask(NLM_F_DUMP, RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()))?;
        let mut table = HashMap::new();
        for a in answers {
            let RouteNetlinkMessage::NewNeighbour(n) = a else { continue };
            let usable = matches!(
                n.header.state,
                NeighbourState::Reachable
                    | NeighbourState::Stale
                    | NeighbourState::Delay
                    | NeighbourState::Probe
                    | NeighbourState::Permanent
            );
            let ip = n.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                _ => None,
            });
            let mac = n.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
                _ => None,
            });
            if let (true, Some(ip), Some(mac)) = (usable, ip, mac) {
                table.insert((n.header.ifindex, ip), MacAddr(mac));
            }
        }
        Ok(table)
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (creating the entry if it has none).
    fn solicit(&mut self, ifindex: u32, ip: IpAddr) -> io::Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = family(ip);
        m.header.ifindex = ifindex;
        m.header.flags = NeighbourFlags::Use;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        self.ask(NLM_F_CREATE | NLM_F_ACK, RouteNetlinkMessage::NewNeighbour(m)).map(|_| ())
    }

    /// Sends one request and collects its answers: one message, a dump up to its end, or an
    /// acknowledgement.
    fn ask(&mut self, flags: u16, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut h = NetlinkHeader::default();
        h.flags = NLM_F_REQUEST | flags;
        h.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(h, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0; req.header.length as usize];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let (one, dump) = (flags & (NLM_F_DUMP | NLM_F_ACK) == 0, flags & NLM_F_DUMP != 0);
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut at = 0;
            while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::InnerMessage(inner) => {
                            out.push(inner);
                            if one {
                                return Ok(out);
                            }
                        }
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                        NetlinkPayload::Error(_) if !dump => return Ok(out),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// The interface and gateway of a unicast route.
fn hop(r: &RouteMessage) -> Option<Hop> {
    if r.header.kind != RouteType::Unicast {
        return None;
    }
    let ifindex = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })?;
    let gateway = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(v4)) if *v4 != Ipv4Addr::UNSPECIFIED => Some(IpAddr::V4(*v4)),
        RouteAttribute::Gateway(RouteAddress::Inet6(v6)) if *v6 != Ipv6Addr::UNSPECIFIED => Some(IpAddr::V6(*v6)),
        _ => None,
    });
    Some(Hop { ifindex, gateway })
}
