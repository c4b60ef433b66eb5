//! FullNAT connections (Alibaba LVS `ip_vs_fnat_xmit`, DPVS `fnat_laddr_bind`,
//! `tcp_fnat_in_handler`, `tcp_fnat_out_handler`): the side table that holds what only a
//! FullNAT connection needs — its local address and port, the sequence offsets of a PROXY
//! header, the server's first sequence number for the TOA — with its own reply index
//! (RIP:rport → LIP:lport), and the control calls for local addresses.
//!
//! The connection entry itself stays as it is: FullNAT state lives here, one fixed-size
//! [`FnatConn`] per FullNAT connection, keyed by the connection's handle.

use alloc::vec::Vec;
use core::net::IpAddr;

use hashbrown::HashMap;

use super::{Director, Verdict};
use crate::addr::{from_raw, raw, ServiceKey};
use crate::conn::table::OutKey;
use crate::conn::ConnId;
use crate::error::{Error, Reason};
use crate::laddr::{ClientAddr, LaddrInfo, Laddrs, PortShare};
use crate::proto::tcp::flags;
use crate::time::Instant;
use crate::wire::proxy::{ProxyHeader, ProxyRepr};
use crate::wire::{ipproto, Frame, IcmpError, PacketMeta};
use crate::xmit::fnat::{self, Added, Extra, Fnat, FnatIcmp};
use crate::xmit::seqadj::{self, SeqAdj};
use crate::xmit::XmitError;

/// [`FnatConn::flags`]: the client's SYN was seen (`in_adj` is set).
const CLIENT_ISN: u8 = 0x1;
/// [`FnatConn::flags`]: the server's SYN-ACK was seen (`fdata` is set).
const SERVER_ISN: u8 = 0x2;

/// What a FullNAT connection holds beyond its connection entry: 36 bytes, no heap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FnatConn {
    laddr: [u8; 16],
    lport: u16,
    flags: u8,
    client: ClientAddr,
    /// Offsets of the client's sequence numbers (a PROXY header in front of its stream).
    in_adj: SeqAdj,
    /// The server's first data sequence number (`fdata_seq`): client packets that
    /// acknowledge exactly it carry the TOA.
    fdata: u32,
}

/// Counters of what FullNAT added to packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FnatStats {
    /// Packets that got a TOA option.
    pub toa_added: u64,
    /// Packets that should have carried a TOA but had no option room (or would have exceeded
    /// the MTU) and went without.
    pub toa_no_room: u64,
    /// Segments that got a PROXY header in front of their payload.
    pub proxy_added: u64,
    /// Segments at the start of the stream that could not take the PROXY header (MTU) and
    /// went shifted past it.
    pub proxy_no_room: u64,
}

/// The FullNAT side table, its reply index, the local addresses and the counters.
pub(crate) struct FnatState {
    pub(crate) laddrs: Laddrs,
    conns: HashMap<u32, FnatConn, ahash::RandomState>,
    reply: HashMap<OutKey, u32, ahash::RandomState>,
    stats: FnatStats,
}

impl FnatState {
    pub(crate) fn new(hasher: impl Fn() -> ahash::RandomState, share: PortShare) -> Self {
        FnatState {
            laddrs: Laddrs::new(&hasher, share),
            conns: HashMap::with_hasher(hasher()),
            reply: HashMap::with_hasher(hasher()),
            stats: FnatStats::default(),
        }
    }

    /// The FullNAT connection a reply (RIP:rport → LIP:lport) belongs to.
    pub(crate) fn find_reply(&self, key: &OutKey) -> Option<ConnId> {
        if self.reply.is_empty() {
            return None;
        }
        self.reply.get(key).map(|i| ConnId(*i))
    }

    /// Whether any FullNAT connection lives (replies need a probe of the index).
    pub(crate) fn has_conns(&self) -> bool {
        !self.conns.is_empty()
    }
}

impl Director {
    /// `ipvsadm --add-laddr -z ADDR`: a local address that the service's FullNAT connections
    /// leave from. The director must receive what real servers send to it (own it on the
    /// servers' link, or be their route to it).
    ///
    /// # Errors
    /// [`Error::NoSuchService`], [`Error::LaddrExists`], [`Error::FamilyMismatch`] (an IPv6
    /// address for an IPv4 service; an IPv6 service takes IPv4 addresses for its IPv4 real
    /// servers, DPVS's fnat64).
    pub fn add_laddr(&mut self, key: &ServiceKey, addr: IpAddr) -> Result<(), Error> {
        self.svc_index.get(key).ok_or(Error::NoSuchService)?;
        self.fnat.laddrs.add(key, addr)
    }

    /// `ipvsadm --del-laddr -z ADDR`. Connections that use it keep their ports until they end.
    ///
    /// # Errors
    /// [`Error::NoSuchService`], [`Error::NoSuchLaddr`].
    pub fn del_laddr(&mut self, key: &ServiceKey, addr: &IpAddr) -> Result<(), Error> {
        self.svc_index.get(key).ok_or(Error::NoSuchService)?;
        self.fnat.laddrs.del(key, addr)
    }

    /// `ipvsadm --get-laddr`: a service's local addresses in the order they were added, with
    /// the connections using each.
    ///
    /// # Errors
    /// [`Error::NoSuchService`].
    pub fn laddrs(&self, key: &ServiceKey) -> Result<Vec<LaddrInfo>, Error> {
        self.svc_index.get(key).ok_or(Error::NoSuchService)?;
        Ok(self.fnat.laddrs.list(key))
    }

    /// What FullNAT added to packets.
    pub fn fnat_stats(&self) -> &FnatStats {
        &self.fnat.stats
    }

    /// Gives a new FullNAT connection of service `si` a local address and port
    /// (`fnat_laddr_bind`) and links its reply. `false` when there is none to give.
    pub(super) fn fnat_attach(&mut self, si: u32, id: ConnId) -> bool {
        let Some((key, client)) = self.svc(si).map(|s| (s.cfg.key, s.cfg.client_addr)) else { return false };
        let Some(c) = self.conns.get(id) else { return false };
        let (daf, daddr) = (c.daf(), self.conns.addrs(c).daddr);
        let Some((lip, lport)) = self.fnat.laddrs.take(&key, daf) else { return false };
        let laddr = raw(&lip);
        let ok = OutKey { v6: daf == crate::Af::V6, proto: c.proto, daddr, dport: c.dport, caddr: laddr, cport: lport };
        let fc = FnatConn { laddr, lport, flags: 0, client, in_adj: SeqAdj::NONE, fdata: 0 };
        self.fnat.conns.insert(id.0, fc);
        self.fnat.reply.insert(ok, id.0);
        true
    }

    /// Frees what a FullNAT connection held: its entry, its reply index entry, its port. `v6`
    /// is the real server's family (the local address's).
    pub(super) fn fnat_detach(&mut self, id: ConnId, daddr: &[u8; 16], dport: u16, proto: u8, v6: bool) {
        let Some(fc) = self.fnat.conns.remove(&id.0) else { return };
        let ok = OutKey { v6, proto, daddr: *daddr, dport, caddr: fc.laddr, cport: fc.lport };
        self.fnat.reply.remove(&ok);
        let af = if v6 { crate::Af::V6 } else { crate::Af::V4 };
        self.fnat.laddrs.put(&from_raw(af, &fc.laddr), fc.lport);
    }

    /// The PROXY header of connection `id`, if its service sends one.
    fn proxy_header(&self, id: ConnId, client: ClientAddr) -> Option<ProxyHeader> {
        let ClientAddr::Proxy(version) = client else { return None };
        let c = self.conns.get(id)?;
        let (af, a) = (c.af(), self.conns.addrs(c));
        let repr = ProxyRepr {
            version,
            stream: c.proto == ipproto::TCP,
            src: (from_raw(af, &a.caddr), c.cport),
            dst: (from_raw(af, &a.vaddr), c.vport),
        };
        Some(repr.emit())
    }

    /// Client → real server on FullNAT connection `id` (DPVS `tcp_fnat_in_handler`): the
    /// client's SYN fixes where a PROXY header goes; the segment at the start of the stream
    /// carries it (every time it is sent, so retransmissions agree), or packets acknowledging
    /// the server's first byte carry the TOA; then both ends are rewritten.
    pub(super) fn fnat_in(&mut self, frame: &mut Frame, meta: &PacketMeta, id: ConnId) -> Verdict {
        let Some(c) = self.conns.get(id) else { return self.drop(Reason::DestUnavailable) };
        let (af, daf, dest, a) = (c.af(), c.daf(), c.dest_id(), self.conns.addrs(c));
        let (client, rs) = ((from_raw(af, &a.caddr), c.cport), (from_raw(daf, &a.daddr), c.dport));
        let Some(fc) = self.fnat.conns.get(&id.0).copied() else { return self.drop(Reason::NoLocalPort) };
        let tcp = meta.proto == ipproto::TCP;
        let (seq, ack) = if tcp { seqadj::seq_ack(frame.data(), meta).unwrap_or((0, 0)) } else { (0, 0) };
        let f = meta.tcp_flags;
        let header = if tcp { self.proxy_header(id, fc.client) } else { None };
        let mut fc = fc;
        if tcp && f & flags::SYN != 0 && f & flags::ACK == 0 {
            let len = header.map_or(0, |h| h.as_bytes().len() as u32);
            fc.in_adj = SeqAdj { pos: seq.wrapping_add(1), before: 0, after: len };
            fc.flags |= CLIENT_ISN;
        }
        let later = tcp && f & flags::ACK != 0 && f & (flags::SYN | flags::RST) == 0;
        let (toa, toa_len) = fnat::toa(&client.0, client.1);
        let extra = match (fc.client, &header) {
            (ClientAddr::Proxy(_), Some(h)) if later && fc.flags & CLIENT_ISN != 0 && seq == fc.in_adj.pos => {
                Extra::Payload(h.as_bytes())
            }
            (ClientAddr::Toa, _) if later && fc.flags & SERVER_ISN != 0 && ack == fc.fdata => {
                Extra::Option(toa.get(..toa_len).unwrap_or_default())
            }
            _ => Extra::None,
        };
        if let Some(e) = self.fnat.conns.get_mut(&id.0) {
            *e = fc;
        }
        let Some(nh) = dest.and_then(|d| self.dests.get(d)).and_then(|d| d.nh) else {
            return self.drop(Reason::UnknownNeighbour);
        };
        let Some(me) = self.port_mac(nh.port) else { return self.drop(Reason::UnknownPort) };
        // fnat64: the server's segments grow by the IPv6 header's extra 20 bytes on their way
        // back, so the MSS the client offers is cut by as much.
        let syn = tcp && f & flags::SYN != 0 && f & flags::ACK == 0;
        let x = Fnat {
            src: (from_raw(daf, &fc.laddr), fc.lport),
            dst: rs,
            seq: fc.in_adj,
            ack: SeqAdj::NONE,
            extra,
            mss_cut: if syn && af != daf { fnat::V6_GROWTH } else { 0 },
            mtu: self.cfg.fnat_mtu,
            dst_mac: nh.mac,
            src_mac: me,
        };
        let r = fnat::xmit(frame, meta, &x);
        let s = &mut self.fnat.stats;
        match (r, extra) {
            (Ok(Added::Yes), Extra::Option(_)) => s.toa_added += 1,
            (Ok(Added::NoRoom), Extra::Option(_)) => s.toa_no_room += 1,
            (Ok(Added::Yes), Extra::Payload(_)) => s.proxy_added += 1,
            (Ok(Added::NoRoom), Extra::Payload(_)) => s.proxy_no_room += 1,
            _ => {}
        }
        self.fnat_verdict(r, nh.port, dest)
    }

    /// Real server → client on FullNAT connection `id` (DPVS `tcp_fnat_out_handler`): the
    /// server's SYN-ACK gives the TOA its trigger and has its MSS cut by what the director adds
    /// toward the server; acknowledgements are taken back past a PROXY header.
    pub(super) fn fnat_out(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, id: ConnId) -> Verdict {
        self.reply_seen(now, meta, id);
        let Some(c) = self.conns.get(id) else { return Verdict::NotMine };
        let (af, a) = (c.af(), self.conns.addrs(c));
        let (client, vip) = ((from_raw(af, &a.caddr), c.cport), (from_raw(af, &a.vaddr), c.vport));
        let Some(fc) = self.fnat.conns.get(&id.0).copied() else { return self.drop(Reason::NoLocalPort) };
        let tcp = meta.proto == ipproto::TCP;
        let syn = tcp && meta.tcp_flags & flags::SYN != 0;
        let mut mss_cut = 0;
        if syn && meta.tcp_flags & flags::ACK != 0 {
            self.fnat_server_isn(id, seqadj::seq_ack(frame.data(), meta).map_or(0, |s| s.0));
            mss_cut = match fc.client {
                ClientAddr::Toa => fnat::toa(&client.0, client.1).1 as u16,
                ClientAddr::Proxy(_) => fc.in_adj.after as u16,
            };
        }
        let Some(nh) = self.neigh.route(&client.0) else { return self.drop(Reason::UnknownNeighbour) };
        let Some(me) = self.port_mac(nh.port) else { return self.drop(Reason::UnknownPort) };
        let x = Fnat {
            src: vip,
            dst: client,
            seq: SeqAdj::NONE,
            ack: fc.in_adj,
            extra: Extra::None,
            mss_cut,
            mtu: self.cfg.fnat_mtu,
            dst_mac: nh.mac,
            src_mac: me,
        };
        let r = fnat::xmit(frame, meta, &x);
        self.fnat_verdict(r, nh.port, None)
    }

    /// The server's initial sequence number of FullNAT connection `id`, from its SYN-ACK:
    /// client packets acknowledging the byte after it carry the TOA.
    pub(super) fn fnat_server_isn(&mut self, id: ConnId, seq: u32) {
        if let Some(fc) = self.fnat.conns.get_mut(&id.0) {
            fc.fdata = seq.wrapping_add(1);
            fc.flags |= SERVER_ISN;
        }
    }

    /// An ICMP error about FullNAT connection `id`. From beyond the client (quoting VIP →
    /// client) it goes to the real server as if about LIP → RIP, from the local address;
    /// from the server's side (quoting LIP → RIP) it goes to the client as if about client →
    /// VIP, from the VIP.
    pub(super) fn fnat_icmp(
        &mut self,
        frame: &mut Frame,
        meta: &PacketMeta,
        e: &IcmpError,
        id: ConnId,
        toward_server: bool,
    ) -> Verdict {
        let Some(c) = self.conns.get(id) else { return Verdict::NotMine };
        let af = c.af();
        if af != c.daf() {
            // fnat64 would have to translate the quoted packet as well (RFC 7915 section 4.2
            // and 5.2); not done: such errors are dropped.
            return self.drop(Reason::Unsupported);
        }
        let a = self.conns.addrs(c);
        let (client, vip, rs, dest) = (
            (from_raw(af, &a.caddr), c.cport),
            (from_raw(af, &a.vaddr), c.vport),
            (from_raw(af, &a.daddr), c.dport),
            c.dest_id(),
        );
        let Some(fc) = self.fnat.conns.get(&id.0) else { return self.drop(Reason::NoLocalPort) };
        let local = (from_raw(af, &fc.laddr), fc.lport);
        if let Some(d) = dest {
            self.count(d, u32::from(meta.ip_len), !toward_server);
        }
        let (nh, x) = if toward_server {
            let nh = dest.and_then(|d| self.dests.get(d)).and_then(|d| d.nh);
            (nh, (local.0, rs.0, rs, local))
        } else {
            (self.neigh.route(&client.0), (vip.0, client.0, client, vip))
        };
        let Some(nh) = nh else { return self.drop(Reason::UnknownNeighbour) };
        let Some(me) = self.port_mac(nh.port) else { return self.drop(Reason::UnknownPort) };
        let t = FnatIcmp { outer: (x.0, x.1), inner_src: x.2, inner_dst: x.3, dst_mac: nh.mac, src_mac: me };
        let r = fnat::xmit_icmp(frame, meta, e, &t).map(|()| Added::Nothing);
        self.fnat_verdict(r, nh.port, if toward_server { dest } else { None })
    }

    fn fnat_verdict(&mut self, r: Result<Added, XmitError>, port: u16, dest: Option<crate::dest::DestId>) -> Verdict {
        match r {
            Ok(_) => Verdict::Transmit { port, dest },
            Err(XmitError::TtlExpired) => self.drop(Reason::TtlExpired),
            Err(XmitError::Bounds) => self.drop(Reason::Malformed),
            Err(XmitError::Fragment) => self.drop(Reason::Unsupported),
        }
    }
}

#[cfg(test)]
#[path = "fnat_tests.rs"]
mod tests;
