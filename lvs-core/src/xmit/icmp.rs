//! ICMP and ICMPv6 errors the director sends itself (`icmp_send` / `icmpv6_send` as IPVS calls
//! them): port unreachable when no real server is available, fragmentation needed / packet too
//! big when a tunnelled packet would not fit, time exceeded when the TTL runs out.
//!
//! The error is built in place: the offending datagram stays where it is and becomes the quoted
//! payload (cut to 576 bytes in all for IPv4, 1280 for IPv6), and the new headers go into the
//! frame's headroom. The Ethernet header (VLAN tags included) moves to the front.

use core::net::IpAddr;

use super::{ok, set_macs, trim_padding, XmitError};
use crate::addr::Af;
use crate::neigh::MacAddr;
use crate::wire::{csum, field, ipproto, Frame, PacketMeta};

/// Which error to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpKind {
    /// Destination unreachable, port unreachable.
    PortUnreachable,
    /// Fragmentation needed (IPv4) / packet too big (IPv6), with the MTU to advertise.
    FragNeeded(u16),
    /// Time exceeded in transit.
    TimeExceeded,
}

impl IcmpKind {
    fn type_code(self, af: Af) -> (u8, u8) {
        match (self, af) {
            (IcmpKind::PortUnreachable, Af::V4) => (3, 3),
            (IcmpKind::FragNeeded(_), Af::V4) => (3, 4),
            (IcmpKind::TimeExceeded, Af::V4) => (11, 0),
            (IcmpKind::PortUnreachable, Af::V6) => (1, 4),
            (IcmpKind::FragNeeded(_), Af::V6) => (2, 0),
            (IcmpKind::TimeExceeded, Af::V6) => (3, 0),
        }
    }
}

/// Largest Ethernet header we keep in front (two VLAN tags).
const MAX_L2: usize = 22;

/// Grows the frame by `n` bytes between its Ethernet header and its IP datagram; returns the
/// Ethernet header length. Bytes `l2..l2 + n` are then free for new headers.
pub(crate) fn open_gap(frame: &mut Frame, meta: &PacketMeta, n: usize) -> Result<usize, XmitError> {
    let l2 = usize::from(meta.l3);
    let mut saved = [0u8; MAX_L2];
    let saved = saved.get_mut(..l2).ok_or(XmitError::Bounds)?;
    saved.copy_from_slice(frame.data().get(..l2).ok_or(XmitError::Bounds)?);
    if !frame.push_front(n) {
        return Err(XmitError::Bounds);
    }
    ok(field::set_bytes(frame.data_mut(), 0..l2, saved))?;
    Ok(l2)
}

/// Sets the EtherType of an Ethernet header of length `l2` (the last two bytes).
pub(crate) fn set_ethertype(data: &mut [u8], l2: usize, et: u16) -> Result<(), XmitError> {
    ok(field::set_be16(data, l2.checked_sub(2).ok_or(XmitError::Bounds)?, et))
}

/// Writes a 20-byte IPv4 header without options at `off` and fills in its checksum.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_v4_header(
    data: &mut [u8],
    off: usize,
    tos: u8,
    total: u16,
    id: u16,
    df: bool,
    ttl: u8,
    proto: u8,
    src: &[u8],
    dst: &[u8],
) -> Result<(), XmitError> {
    let h = data.get_mut(off..off + 20).ok_or(XmitError::Bounds)?;
    h.fill(0);
    ok(field::set_byte(h, 0, 0x45))?;
    ok(field::set_byte(h, 1, tos))?;
    ok(field::set_be16(h, field::V4_TOTAL_LEN, total))?;
    ok(field::set_be16(h, field::V4_ID, id))?;
    ok(field::set_be16(h, field::V4_FLAGS, if df { 0x4000 } else { 0 }))?;
    ok(field::set_be16(h, field::V4_TTL, (u16::from(ttl) << 8) | u16::from(proto)))?;
    ok(field::set_bytes(h, field::V4_SRC, src))?;
    ok(field::set_bytes(h, field::V4_DST, dst))?;
    let c = csum::checksum(h);
    ok(field::set_be16(h, field::V4_CSUM, c))
}

/// Writes a 40-byte IPv6 header at `off`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_v6_header(
    data: &mut [u8],
    off: usize,
    tclass: u8,
    payload: u16,
    next: u8,
    hops: u8,
    src: &[u8],
    dst: &[u8],
) -> Result<(), XmitError> {
    let h = data.get_mut(off..off + 40).ok_or(XmitError::Bounds)?;
    h.fill(0);
    ok(field::set_be16(h, 0, 0x6000 | (u16::from(tclass) << 4)))?;
    ok(field::set_be16(h, field::V6_PAYLOAD_LEN, payload))?;
    ok(field::set_byte(h, field::V6_NEXT, next))?;
    ok(field::set_byte(h, field::V6_HOPS, hops))?;
    ok(field::set_bytes(h, field::V6_SRC, src))?;
    ok(field::set_bytes(h, field::V6_DST, dst))
}

/// The address bytes of the family's length.
pub(crate) fn addr_bytes(a: &IpAddr) -> ([u8; 16], usize) {
    match a {
        IpAddr::V4(_) => (crate::addr::raw(a), 4),
        IpAddr::V6(_) => (crate::addr::raw(a), 16),
    }
}

/// Turns the frame into an ICMP error about the datagram it holds, sent from the address the
/// client spoke to, toward the client through `dst_mac`.
///
/// # Errors
/// [`XmitError::Bounds`] without enough headroom or with a frame that does not hold `meta`.
pub(crate) fn error(
    frame: &mut Frame,
    meta: &PacketMeta,
    kind: IcmpKind,
    dst_mac: MacAddr,
    src_mac: MacAddr,
    ip_id: u16,
) -> Result<(), XmitError> {
    trim_padding(frame, meta);
    let (hdr, max_total) = match meta.af {
        Af::V4 => (20 + 8, 576),
        Af::V6 => (40 + 8, 1280),
    };
    let l3 = usize::from(meta.l3);
    let quoted = usize::from(meta.ip_len).min(max_total - hdr);
    frame.truncate(l3 + quoted);
    let l2 = open_gap(frame, meta, hdr)?;
    let (type_, code) = kind.type_code(meta.af);
    let (src, n) = addr_bytes(&meta.dst);
    let (dst, _) = addr_bytes(&meta.src);
    let (src, dst) = (src.get(..n).ok_or(XmitError::Bounds)?, dst.get(..n).ok_or(XmitError::Bounds)?);
    let data = frame.data_mut();
    let icmp_len = 8 + quoted;
    let icmp_off = match meta.af {
        Af::V4 => {
            set_ethertype(data, l2, crate::wire::ethertype::IPV4)?;
            write_v4_header(data, l2, 0xc0, (20 + icmp_len) as u16, ip_id, false, 64, ipproto::ICMP, src, dst)?;
            l2 + 20
        }
        Af::V6 => {
            set_ethertype(data, l2, crate::wire::ethertype::IPV6)?;
            write_v6_header(data, l2, 0, icmp_len as u16, ipproto::ICMPV6, 64, src, dst)?;
            l2 + 40
        }
    };
    let extra: u32 = match kind {
        IcmpKind::FragNeeded(mtu) => u32::from(mtu),
        _ => 0,
    };
    let icmp = data.get_mut(icmp_off..icmp_off + icmp_len).ok_or(XmitError::Bounds)?;
    ok(field::set_byte(icmp, 0, type_))?;
    ok(field::set_byte(icmp, 1, code))?;
    ok(field::set_be16(icmp, field::ICMP_CSUM, 0))?;
    ok(field::set_bytes(icmp, 4..8, &extra.to_be_bytes()))?;
    let c = match meta.af {
        Af::V4 => csum::checksum(icmp),
        Af::V6 => {
            let mut s = csum::add(0, src);
            s = csum::add(s, dst);
            s = csum::add(s, &(icmp_len as u32).to_be_bytes());
            s = csum::add(s, &[0, 0, 0, ipproto::ICMPV6]);
            csum::finish(csum::add(s, icmp))
        }
    };
    ok(field::set_be16(icmp, field::ICMP_CSUM, c))?;
    set_macs(data, dst_mac, src_mac)
}
