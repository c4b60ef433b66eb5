//! Parsing frames into a small [`PacketMeta`] and rewriting them in place (`ip_vs_iphdr`,
//! `skb_header_pointer`): Ethernet II, 802.1Q and QinQ, IPv4 with options, IPv6 with extension
//! headers, TCP, UDP, SCTP, ICMP and ICMPv6, on top of etherparse slices.
//!
//! # Panics
//!
//! Nothing in this module panics on any input: every byte access is checked (indexing,
//! `unwrap` and `expect` are denied here), and malformed input is an `Err`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod csum;
pub(crate) mod field;
mod frame;
pub mod proxy;
pub mod sip;
pub(crate) mod tunnel;

pub use frame::{Frame, DEFAULT_HEADROOM};

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{Ethernet2Slice, Ipv4HeaderSlice, Ipv6ExtensionSlice, Ipv6ExtensionsSlice, Ipv6HeaderSlice};

use crate::addr::Af;

/// EtherTypes this parser knows.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer).
    pub const QINQ: u16 = 0x88a8;
}

/// IP protocol numbers this parser knows.
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4-in-IP.
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6-in-IP.
    pub const IPV6: u8 = 41;
    /// The IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// SCTP chunk types (RFC 9260 §3.2) the parser and the state machine tell apart.
pub mod chunk {
    /// DATA.
    pub const DATA: u8 = 0;
    /// INIT: the only chunk that starts a connection (unless `sloppy_sctp`).
    pub const INIT: u8 = 1;
    /// INIT ACK.
    pub const INIT_ACK: u8 = 2;
    /// ABORT.
    pub const ABORT: u8 = 6;
    /// SHUTDOWN.
    pub const SHUTDOWN: u8 = 7;
    /// SHUTDOWN ACK.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// ERROR.
    pub const ERROR: u8 = 9;
    /// COOKIE ECHO.
    pub const COOKIE_ECHO: u8 = 10;
    /// COOKIE ACK.
    pub const COOKIE_ACK: u8 = 11;
    /// SHUTDOWN COMPLETE.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// Where a packet stands in fragmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag {
    /// Not a fragment.
    None,
    /// The first fragment (offset 0, more to come) of datagram `id`: it carries the ports.
    First(u32),
    /// A later fragment of datagram `id`: no transport header.
    Later(u32),
}

/// An ICMP or ICMPv6 error and the packet it quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// ICMP type.
    pub kind: u8,
    /// ICMP code.
    pub code: u8,
    /// Offset of the quoted IP header in the frame.
    pub inner_l3: u16,
    /// Offset of the quoted transport header in the frame.
    pub inner_l4: u16,
    /// Transport protocol of the quoted packet.
    pub proto: u8,
    /// Source of the quoted packet.
    pub src: IpAddr,
    /// Destination of the quoted packet.
    pub dst: IpAddr,
    /// Source port of the quoted packet.
    pub sport: u16,
    /// Destination port of the quoted packet.
    pub dport: u16,
}

/// What the director needs to know of a frame, parsed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Offset of the IP header in the frame.
    pub l3: u16,
    /// Offset of the transport header in the frame.
    pub l4: u16,
    /// The IP datagram's length (what the statistics count).
    pub ip_len: u16,
    /// Address family.
    pub af: Af,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 when the protocol has none).
    pub sport: u16,
    /// Destination port (0 when the protocol has none).
    pub dport: u16,
    /// TCP flags byte (0 for other protocols).
    pub tcp_flags: u8,
    /// SCTP: the type of the chunk that drives the state machine (`set_sctp_state`) — the first
    /// chunk's, or ABORT when an ABORT follows a leading COOKIE ECHO or COOKIE ACK. 0 for other
    /// protocols.
    pub sctp_chunk: u8,
    /// Fragmentation.
    pub frag: Frag,
    /// Whether the IPv4 DF bit is set (always true for IPv6, which routers never fragment).
    pub df: bool,
    /// The quoted packet, for ICMP errors.
    pub icmp: Option<IcmpError>,
}

impl PacketMeta {
    /// Every field zero (an IPv4 packet from 0.0.0.0 to 0.0.0.0 of protocol 0): the filler of
    /// an array that [`parse_into`] fills.
    pub const BLANK: PacketMeta = PacketMeta {
        l3: 0,
        l4: 0,
        ip_len: 0,
        af: Af::V4,
        proto: 0,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        sctp_chunk: 0,
        frag: Frag::None,
        df: false,
        icmp: None,
    };
}

/// Why a frame could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): not for a director.
    NotIp,
    /// Truncated or inconsistent headers.
    Malformed,
}

/// Offset of the IP header and the EtherType, after up to two VLAN tags.
fn link(data: &[u8]) -> Result<(usize, u16), ParseError> {
    let eth = Ethernet2Slice::from_slice_without_fcs(data).map_err(|_| ParseError::Malformed)?;
    let mut off = eth.header_slice().len();
    let mut et = eth.ether_type().0;
    for _ in 0..2 {
        if et != ethertype::VLAN && et != ethertype::QINQ {
            break;
        }
        let tag = data.get(off..off + 4).ok_or(ParseError::Malformed)?;
        et = field::be16(tag, 2).ok_or(ParseError::Malformed)?;
        off += 4;
    }
    Ok((off, et))
}

/// Parses an Ethernet frame.
///
/// # Errors
/// [`ParseError::NotIp`] for other EtherTypes, [`ParseError::Malformed`] for anything truncated
/// or inconsistent.
pub fn parse(data: &[u8]) -> Result<PacketMeta, ParseError> {
    let mut m = PacketMeta::BLANK;
    parse_into(data, &mut m)?;
    Ok(m)
}

/// [`parse`] into a `PacketMeta` the caller holds: a burst parses its frames into an array it
/// then reads in place, rather than moving each result (a move of a value just written
/// field by field makes the processor wait for those stores before it can load it whole).
/// After an error, `meta` holds no meaning.
///
/// # Errors
/// As [`parse`].
#[inline]
pub fn parse_into(data: &[u8], meta: &mut PacketMeta) -> Result<(), ParseError> {
    let (l3, et) = link(data)?;
    let ip = data.get(l3..).ok_or(ParseError::Malformed)?;
    match et {
        ethertype::IPV4 => parse_v4(ip, l3, meta),
        ethertype::IPV6 => parse_v6(ip, l3, meta),
        _ => Err(ParseError::NotIp),
    }
}

fn parse_v4(ip: &[u8], l3: usize, m: &mut PacketMeta) -> Result<(), ParseError> {
    let h = Ipv4HeaderSlice::from_slice(ip).map_err(|_| ParseError::Malformed)?;
    let hl = h.slice().len();
    let total = usize::from(h.total_len());
    if total < hl || total > ip.len() {
        return Err(ParseError::Malformed);
    }
    let off = h.fragments_offset().value();
    let id = u32::from(h.identification());
    let frag = if off != 0 {
        Frag::Later(id)
    } else if h.more_fragments() {
        Frag::First(id)
    } else {
        Frag::None
    };
    let payload = ip.get(hl..total).ok_or(ParseError::Malformed)?;
    *m = PacketMeta {
        l3: l3 as u16,
        l4: (l3 + hl) as u16,
        ip_len: total as u16,
        af: Af::V4,
        proto: h.protocol().0,
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        sctp_chunk: 0,
        frag,
        df: h.dont_fragment(),
        icmp: None,
    };
    if frag != Frag::Later(id) {
        transport(m, payload, l3 + hl)?;
    }
    Ok(())
}

fn parse_v6(ip: &[u8], l3: usize, m: &mut PacketMeta) -> Result<(), ParseError> {
    let h = Ipv6HeaderSlice::from_slice(ip).map_err(|_| ParseError::Malformed)?;
    let total = 40 + usize::from(h.payload_length());
    let body = ip.get(40..total).ok_or(ParseError::Malformed)?;
    let (exts, proto, rest) =
        Ipv6ExtensionsSlice::from_slice(h.next_header(), body).map_err(|_| ParseError::Malformed)?;
    let mut frag = Frag::None;
    for e in exts.clone().into_iter() {
        if let Ipv6ExtensionSlice::Fragment(f) = e {
            let id = f.identification();
            if f.fragment_offset().value() != 0 {
                frag = Frag::Later(id);
            } else if f.more_fragments() {
                frag = Frag::First(id);
            }
        }
    }
    let l4 = l3 + 40 + exts.slice().len();
    *m = PacketMeta {
        l3: l3 as u16,
        l4: l4 as u16,
        ip_len: total as u16,
        af: Af::V6,
        proto: proto.0,
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        sctp_chunk: 0,
        frag,
        df: true,
        icmp: None,
    };
    if !matches!(frag, Frag::Later(_)) {
        transport(m, rest, l4)?;
    }
    Ok(())
}

/// Reads ports and flags (or the quoted packet of an ICMP error).
fn transport(m: &mut PacketMeta, l4: &[u8], l4_off: usize) -> Result<(), ParseError> {
    let first_frag = matches!(m.frag, Frag::First(_));
    match m.proto {
        ipproto::TCP => {
            let min = if first_frag { 14 } else { 20 };
            if l4.len() < min {
                return Err(ParseError::Malformed);
            }
            if !first_frag {
                let doff = usize::from(field::byte(l4, 12).ok_or(ParseError::Malformed)? >> 4) * 4;
                if doff < 20 || doff > l4.len() {
                    return Err(ParseError::Malformed);
                }
            }
            m.sport = field::be16(l4, 0).ok_or(ParseError::Malformed)?;
            m.dport = field::be16(l4, 2).ok_or(ParseError::Malformed)?;
            m.tcp_flags = field::byte(l4, 13).ok_or(ParseError::Malformed)?;
        }
        ipproto::UDP => {
            if l4.len() < 8 {
                return Err(ParseError::Malformed);
            }
            m.sport = field::be16(l4, 0).ok_or(ParseError::Malformed)?;
            m.dport = field::be16(l4, 2).ok_or(ParseError::Malformed)?;
        }
        ipproto::SCTP => {
            m.sport = field::be16(l4, 0).ok_or(ParseError::Malformed)?;
            m.dport = field::be16(l4, 2).ok_or(ParseError::Malformed)?;
            m.sctp_chunk = sctp_chunk(l4).ok_or(ParseError::Malformed)?;
        }
        ipproto::ICMP | ipproto::ICMPV6 if !first_frag => {
            m.icmp = icmp_error(m, l4, l4_off);
        }
        _ => {}
    }
    Ok(())
}

/// The chunk type `set_sctp_state` reads from an SCTP packet: the first chunk's, unless that is
/// a COOKIE ECHO or COOKIE ACK followed by an ABORT (RFC 9260 §3.3.7 lets control chunks come
/// before an ABORT in one packet). `None` when the packet has no chunk header after its 12-byte
/// common header.
fn sctp_chunk(l4: &[u8]) -> Option<u8> {
    let header = l4.get(12..16)?;
    let first = field::byte(header, 0)?;
    if first == chunk::COOKIE_ECHO || first == chunk::COOKIE_ACK {
        let len = usize::from(field::be16(header, 2)?);
        if len >= 4 {
            let next = 12usize.saturating_add(len.saturating_add(3) & !3);
            if field::byte(l4, next) == Some(chunk::ABORT) {
                return Some(chunk::ABORT);
            }
        }
    }
    Some(first)
}

/// Is this ICMP type an error that quotes a packet IPVS tracks (`ip_vs_in_icmp`)?
fn is_tracked_error(af: Af, kind: u8) -> bool {
    match af {
        // Destination unreachable, source quench, time exceeded.
        Af::V4 => matches!(kind, 3 | 4 | 11),
        // Destination unreachable, packet too big, time exceeded, parameter problem.
        Af::V6 => matches!(kind, 1..=4),
    }
}

/// Parses the packet an ICMP error quotes: its IP header and the first 8 bytes after it.
fn icmp_error(m: &PacketMeta, l4: &[u8], l4_off: usize) -> Option<IcmpError> {
    let kind = field::byte(l4, 0)?;
    let code = field::byte(l4, 1)?;
    if !is_tracked_error(m.af, kind) {
        return None;
    }
    let inner = l4.get(8..)?;
    let inner_l3 = l4_off + 8;
    let (proto, src, dst, ihl) = match m.af {
        Af::V4 => {
            let v = field::byte(inner, 0)?;
            let ihl = usize::from(v & 0xf) * 4;
            if v >> 4 != 4 || ihl < 20 {
                return None;
            }
            let a = |o: usize| -> Option<IpAddr> {
                let b = inner.get(o..o + 4)?;
                Some(IpAddr::V4(Ipv4Addr::new(*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?)))
            };
            (field::byte(inner, 9)?, a(12)?, a(16)?, ihl)
        }
        Af::V6 => {
            if field::byte(inner, 0)? >> 4 != 6 {
                return None;
            }
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 16] = inner.get(o..o + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            };
            (field::byte(inner, 6)?, a(8)?, a(24)?, 40)
        }
    };
    let ports = inner.get(ihl..ihl + 4)?;
    Some(IcmpError {
        kind,
        code,
        inner_l3: inner_l3 as u16,
        inner_l4: (inner_l3 + ihl) as u16,
        proto,
        src,
        dst,
        sport: field::be16(ports, 0)?,
        dport: field::be16(ports, 2)?,
    })
}

/// Computes the TCP or UDP checksum of a frame from scratch (pseudo-header included) and writes
/// it. For frames a virtual NIC handed over with the checksum left to hardware that will never
/// see them (`CHECKSUM_PARTIAL` on veth, TPACKET's `TP_STATUS_CSUMNOTREADY`). Returns whether a
/// checksum was written; fragments and other protocols are left alone.
pub fn complete_l4_checksum(data: &mut [u8]) -> bool {
    let Ok(m) = parse(data) else { return false };
    if m.frag != Frag::None || !matches!(m.proto, ipproto::TCP | ipproto::UDP) {
        return false;
    }
    write_l4_checksum(data, &m).is_some()
}

/// Computes the TCP or UDP checksum of the segment `m` describes from scratch (pseudo-header
/// included) and writes it: for rewrites that changed too much for an incremental update
/// (bytes inserted into a segment). `None` when the frame does not hold what `m` says.
pub(crate) fn write_l4_checksum(data: &mut [u8], m: &PacketMeta) -> Option<()> {
    let off = match m.proto {
        ipproto::TCP => field::TCP_CSUM,
        ipproto::UDP => field::UDP_CSUM,
        _ => return Some(()),
    };
    let (l3, l4, end) = (usize::from(m.l3), usize::from(m.l4), usize::from(m.l3) + usize::from(m.ip_len));
    field::set_be16(data, l4 + off, 0)?;
    let (src, dst) = match m.af {
        Af::V4 => (field::at(l3, field::V4_SRC), field::at(l3, field::V4_DST)),
        Af::V6 => (field::at(l3, field::V6_SRC), field::at(l3, field::V6_DST)),
    };
    let (s, d, seg) = (data.get(src)?, data.get(dst)?, data.get(l4..end)?);
    let mut sum = csum::add(0, s);
    sum = csum::add(sum, d);
    sum = csum::add(sum, &[0, m.proto]);
    sum = csum::add(sum, &(seg.len() as u32).to_be_bytes()[2..]);
    let mut c = csum::finish(csum::add(sum, seg));
    if m.proto == ipproto::UDP && c == 0 {
        c = 0xffff;
    }
    field::set_be16(data, l4 + off, c)
}

#[cfg(test)]
mod tests;
