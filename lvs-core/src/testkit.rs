//! Shared test harness: frame builders on etherparse's `PacketBuilder`, used by the tests of
//! every crate, the benches and the fuzz targets (feature `testkit`).

use alloc::vec::Vec;
use core::net::IpAddr;

use etherparse::{PacketBuilder, TcpHeader};

use crate::proto::tcp::flags;
use crate::wire::Frame;

/// The client-side MAC every built frame comes from (the gateway in the oracle topology).
pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// The director's MAC every built frame is sent to.
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// A TCP segment's description.
#[derive(Clone, Copy, Debug)]
pub struct Tcp<'a> {
    /// Source address and port.
    pub src: (IpAddr, u16),
    /// Destination address and port.
    pub dst: (IpAddr, u16),
    /// Flags byte (`flags::SYN | flags::ACK`, ...).
    pub flags: u8,
    /// Payload.
    pub payload: &'a [u8],
    /// Sequence number (1000 unless set).
    pub seq: u32,
    /// Acknowledgement number, written when the ACK flag is set (1 unless set).
    pub ack: u32,
    /// Raw TCP options (a multiple of 4 bytes, at most 40).
    pub options: &'a [u8],
    /// Optional 802.1Q tag.
    pub vlan: Option<u16>,
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
}

impl<'a> Tcp<'a> {
    /// A segment from the gateway to the director.
    pub fn new(src: (IpAddr, u16), dst: (IpAddr, u16), flags: u8) -> Self {
        Tcp {
            src,
            dst,
            flags,
            payload: &[],
            seq: 1000,
            ack: 1,
            options: &[],
            vlan: None,
            src_mac: GW_MAC,
            dst_mac: DIRECTOR_MAC,
        }
    }

    /// The Ethernet frame.
    pub fn build(&self) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        let mut tcp = TcpHeader::new(self.src.1, self.dst.1, self.seq, 64240);
        if tcp.set_options_raw(self.options).is_err() {
            return Vec::new();
        }
        tcp.fin = self.flags & flags::FIN != 0;
        tcp.syn = self.flags & flags::SYN != 0;
        tcp.rst = self.flags & flags::RST != 0;
        tcp.ack = self.flags & flags::ACK != 0;
        if tcp.ack {
            tcp.acknowledgment_number = self.ack;
        }
        let mut out = Vec::new();
        let (s, d) = (self.src.0, self.dst.0);
        let r = match self.vlan {
            Some(v) => {
                let b = eth.single_vlan(v.try_into().unwrap_or_default());
                b.ip_step(s, d).tcp_header(tcp).write(&mut out, self.payload)
            }
            None => eth.ip_step(s, d).tcp_header(tcp).write(&mut out, self.payload),
        };
        r.map(|_| out).unwrap_or_default()
    }

    /// The frame with default headroom.
    pub fn frame(&self) -> Frame {
        Frame::new(crate::wire::DEFAULT_HEADROOM, &self.build())
    }
}

/// A UDP datagram from the gateway to the director.
pub fn udp(src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(GW_MAC, DIRECTOR_MAC);
    let mut out = Vec::new();
    eth.ip_step(src.0, dst.0).udp(src.1, dst.1).write(&mut out, payload).map(|_| out).unwrap_or_default()
}

/// An SCTP packet from `src` to `dst` (from the gateway to the director) carrying `chunks`, each
/// `(type, value)` with flags 0, its length field and padding to 4 bytes; the verification tag
/// is 1 and the checksum a correct CRC32c ([`crc32c`]).
pub fn sctp(src: (IpAddr, u16), dst: (IpAddr, u16), chunks: &[(u8, &[u8])]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&src.1.to_be_bytes());
    l4.extend_from_slice(&dst.1.to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    for (kind, value) in chunks {
        l4.extend_from_slice(&[*kind, 0]);
        l4.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
        l4.extend_from_slice(value);
        while l4.len() % 4 != 0 {
            l4.push(0);
        }
    }
    let c = crc32c(&l4).to_le_bytes();
    l4[8..12].copy_from_slice(&c);
    let eth = PacketBuilder::ethernet2(GW_MAC, DIRECTOR_MAC);
    let mut out = Vec::new();
    eth.ip_step(src.0, dst.0).write(&mut out, etherparse::IpNumber(132), &l4).map(|_| out).unwrap_or_default()
}

/// The CRC32c of an SCTP packet (checksum field taken as zero), bit by bit as RFC 9260
/// appendix A describes it (reflected polynomial 0x82F63B78): an implementation independent of
/// the table-driven one the library uses.
pub fn crc32c(sctp: &[u8]) -> u32 {
    let mut crc = !0u32;
    for (i, b) in sctp.iter().enumerate() {
        let b = if (8..12).contains(&i) { 0 } else { *b };
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

use etherparse::PacketBuilderStep;

/// Builder steps that can take an IP header: IPv4 (TTL 63, DF) or IPv6 (hop limit 63), like the
/// oracle's crafted frames.
pub trait IpStep {
    /// Adds an IPv4 or IPv6 header.
    fn ip_step(self, src: IpAddr, dst: IpAddr) -> PacketBuilderStep<etherparse::IpHeaders>;
}

macro_rules! ip_step_for {
    ($t:ty) => {
        impl IpStep for PacketBuilderStep<$t> {
            fn ip_step(self, src: IpAddr, dst: IpAddr) -> PacketBuilderStep<etherparse::IpHeaders> {
                match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        let mut h = etherparse::Ipv4Header::new(0, 63, etherparse::IpNumber(0), s.octets(), d.octets())
                            .unwrap_or_default();
                        h.dont_fragment = true;
                        h.identification = 0x1001;
                        self.ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
                    }
                    (s, d) => {
                        let v6 = |a: IpAddr| match a {
                            IpAddr::V6(a) => a.octets(),
                            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                        };
                        let h = etherparse::Ipv6Header {
                            hop_limit: 63,
                            source: v6(s),
                            destination: v6(d),
                            ..Default::default()
                        };
                        self.ip(etherparse::IpHeaders::Ipv6(h, Default::default()))
                    }
                }
            }
        }
    };
}
ip_step_for!(etherparse::Ethernet2Header);
ip_step_for!(etherparse::VlanHeader);

/// What the parser makes of a client's TCP SYN from `src` to `dst` in an untagged Ethernet
/// frame with no options: the packet a scheduler is asked to place in tests and benches.
pub fn syn_meta(src: (IpAddr, u16), dst: (IpAddr, u16)) -> crate::wire::PacketMeta {
    let af = crate::addr::Af::of(&src.0);
    let ip_hdr: u16 = if af == crate::addr::Af::V4 { 20 } else { 40 };
    crate::wire::PacketMeta {
        l3: 14,
        l4: 14 + ip_hdr,
        ip_len: ip_hdr + 20,
        af,
        proto: crate::wire::ipproto::TCP,
        src: src.0,
        dst: dst.0,
        sport: src.1,
        dport: dst.1,
        tcp_flags: flags::SYN,
        sctp_chunk: 0,
        frag: crate::wire::Frag::None,
        df: true,
        icmp: None,
    }
}

/// A scheduler for the core's own tests: the first server in list order with weight > 0 that is
/// not overloaded (the real ones live in `lvs-sched`, which depends on this crate).
#[derive(Debug, Default)]
pub struct FirstAvailable;

impl crate::sched::Scheduler for FirstAvailable {
    fn name(&self) -> &'static str {
        "first"
    }

    fn schedule(
        &mut self,
        _cx: &mut crate::sched::SchedCx<'_>,
        svc: &crate::service::ServiceView<'_>,
        _pkt: &crate::wire::PacketMeta,
    ) -> Option<crate::dest::DestId> {
        svc.dests().find(|d| d.weight() > 0 && !d.is_overloaded()).map(|d| d.id())
    }
}

/// A factory that knows only [`FirstAvailable`], as `"first"`.
pub fn factory(name: &str) -> Result<alloc::boxed::Box<dyn crate::sched::Scheduler>, crate::sched::SchedError> {
    match name {
        "first" => Ok(alloc::boxed::Box::new(FirstAvailable)),
        _ => Err(crate::sched::SchedError::Unknown),
    }
}

/// A service's list of real servers without a director, for scheduler tests and benches:
/// servers are linked at the head as `ipvsadm -a` links them, and — what only a test may do —
/// their counters and overload flag are set directly instead of moving through connections.
/// Telling the scheduler about a change is the caller's part, in the kernel's order.
#[derive(Debug, Default)]
pub struct ServerList {
    dests: crate::dest::Dests,
    order: Vec<crate::dest::DestId>,
    flags: crate::service::SchedFlags,
}

impl ServerList {
    /// An empty list with scheduler flags `flags` (`-b`).
    pub fn new(flags: crate::service::SchedFlags) -> Self {
        ServerList { flags, ..Self::default() }
    }

    /// Links a server at the head of the list and returns its handle.
    pub fn link(&mut self, rs: crate::dest::RealServer) -> crate::dest::DestId {
        let vkey = crate::addr::ServiceKey::Fwmark { mark: 1, af: crate::addr::Af::of(&rs.endpoint.addr) };
        let id = self.dests.insert(rs, 0, vkey);
        self.order.insert(0, id);
        id
    }

    /// Unlinks a server; returns the list position it had.
    pub fn unlink(&mut self, id: crate::dest::DestId) -> Option<usize> {
        let pos = self.order.iter().position(|x| *x == id)?;
        self.order.remove(pos);
        Some(pos)
    }

    /// Changes a server's weight as `ipvsadm -e` does.
    pub fn set_weight(&mut self, id: crate::dest::DestId, w: u32) {
        if let Some(d) = self.dests.get_mut(id) {
            d.set_weight(w);
        }
    }

    /// Sets a server's ActiveConn and InActConn.
    pub fn set_counts(&mut self, id: crate::dest::DestId, active: u32, inactive: u32) {
        if let Some(d) = self.dests.get_mut(id) {
            d.active = active;
            d.inactive = inactive;
        }
    }

    /// Sets or clears a server's overload flag.
    pub fn set_overloaded(&mut self, id: crate::dest::DestId, on: bool) {
        if let Some(d) = self.dests.get_mut(id) {
            if on {
                d.flags |= crate::dest::F_OVERLOAD;
            } else {
                d.flags &= !crate::dest::F_OVERLOAD;
            }
        }
    }

    /// What a scheduler sees of the list.
    pub fn view(&self) -> crate::service::ServiceView<'_> {
        crate::service::ServiceView::new(&self.order, &self.dests, self.flags)
    }
}

/// Checks every checksum of an Ethernet frame by full recomputation with etherparse (an
/// implementation independent of ours): the IPv4 header, TCP, UDP, ICMP and ICMPv6, SCTP's
/// CRC32c (with [`crc32c`]), and the inner packet of an IP-in-IP frame.
///
/// # Errors
/// A description of the first wrong checksum.
pub fn verify_checksums(frame: &[u8]) -> Result<(), alloc::string::String> {
    use alloc::format;
    use etherparse::{NetSlice, SlicedPacket};
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| format!("parse: {e:?}"))?;
    verify_sliced(&p)?;
    // IP-in-IP: check the inner datagram too.
    if let Some(NetSlice::Ipv4(v4)) = &p.net {
        if v4.header().protocol() == etherparse::IpNumber(4) || v4.header().protocol() == etherparse::IpNumber(41) {
            let inner = v4.payload().payload;
            let q = SlicedPacket::from_ip(inner).map_err(|e| format!("inner parse: {e:?}"))?;
            verify_sliced(&q)?;
        }
    }
    Ok(())
}

fn verify_sliced(p: &etherparse::SlicedPacket<'_>) -> Result<(), alloc::string::String> {
    use alloc::format;
    use etherparse::{NetSlice, TransportSlice};
    let (src4, dst4, src6, dst6) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let want = h.to_header().calc_header_checksum();
            if h.header_checksum() != want {
                return Err(format!("ipv4 header checksum {:#06x}, want {want:#06x}", h.header_checksum()));
            }
            (Some(h.source()), Some(h.destination()), None, None)
        }
        Some(NetSlice::Ipv6(v6)) => (None, None, Some(v6.header().source()), Some(v6.header().destination())),
        _ => return Ok(()),
    };
    if let Some(NetSlice::Ipv4(v4)) = &p.net {
        if v4.header().protocol() == etherparse::IpNumber(132) && !v4.is_payload_fragmented() {
            verify_sctp(v4.payload().payload)?;
        }
    }
    if let Some(NetSlice::Ipv6(v6)) = &p.net {
        if v6.payload().ip_number == etherparse::IpNumber(132) && !v6.is_payload_fragmented() {
            verify_sctp(v6.payload().payload)?;
        }
    }
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let got = t.checksum();
            let want = match (src4, dst4, src6, dst6) {
                (Some(s), Some(d), _, _) => t.to_header().calc_checksum_ipv4_raw(s, d, t.payload()),
                (_, _, Some(s), Some(d)) => t.to_header().calc_checksum_ipv6_raw(s, d, t.payload()),
                _ => return Ok(()),
            }
            .map_err(|e| format!("{e:?}"))?;
            if got != want {
                return Err(format!("tcp checksum {got:#06x}, want {want:#06x}"));
            }
        }
        Some(TransportSlice::Udp(u)) => {
            let got = u.checksum();
            if got == 0 && src4.is_some() {
                return Ok(());
            }
            let want = match (src4, dst4, src6, dst6) {
                (Some(s), Some(d), _, _) => u.to_header().calc_checksum_ipv4_raw(s, d, u.payload()),
                (_, _, Some(s), Some(d)) => u.to_header().calc_checksum_ipv6_raw(s, d, u.payload()),
                _ => return Ok(()),
            }
            .map_err(|e| format!("{e:?}"))?;
            if got != want {
                return Err(format!("udp checksum {got:#06x}, want {want:#06x}"));
            }
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let got = i.checksum();
            let want = etherparse::Icmpv4Header::with_checksum(i.header().icmp_type, i.payload()).checksum;
            if got != want {
                return Err(format!("icmp checksum {got:#06x}, want {want:#06x}"));
            }
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let (Some(s), Some(d)) = (src6, dst6) else { return Ok(()) };
            let want = etherparse::Icmpv6Header::with_checksum(i.header().icmp_type, s, d, i.payload())
                .map_err(|e| format!("{e:?}"))?
                .checksum;
            if i.checksum() != want {
                return Err(format!("icmpv6 checksum {:#06x}, want {want:#06x}", i.checksum()));
            }
        }
        _ => {}
    }
    Ok(())
}

fn verify_sctp(l4: &[u8]) -> Result<(), alloc::string::String> {
    let got = l4.get(8..12).ok_or("sctp: truncated")?;
    let want = crc32c(l4).to_le_bytes();
    if got != want {
        return Err(alloc::format!("sctp checksum {got:02x?}, want {want:02x?}"));
    }
    Ok(())
}
