//! NAT (`ip_vs_nat_xmit`, `handle_response`): destination rewritten toward the real server on the
//! way in, source rewritten back to the virtual service on the way out, with incremental IP and
//! TCP/UDP checksum updates (pseudo-header included). An IPv4 UDP checksum of zero stays zero.
//! SCTP's CRC32c is computed afresh when a port changes (`sctp_nat_csum`).

use core::net::IpAddr;

use super::{decrement_ttl, ok, set_macs, XmitError};
use crate::addr::Af;
use crate::neigh::MacAddr;
use crate::wire::{csum, field, ipproto, Frag, Frame, IcmpError, PacketMeta};

/// Which end of the packet is rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The destination (client → real server).
    Dst,
    /// The source (real server → client).
    Src,
}

/// Rewrites one IP address of the header at `l3`, fixing the IPv4 header checksum; returns the
/// change's [`csum::delta`], for the transport checksum whose pseudo-header covers the address.
/// The old address is read from the frame where it lies, not copied aside first: a copy would
/// be read back whole straight after it was written, which stalls the processor.
pub(crate) fn rewrite_addr(data: &mut [u8], l3: usize, af: Af, side: Side, addr: &IpAddr) -> Result<u32, XmitError> {
    let (range, n) = match (af, side) {
        (Af::V4, Side::Dst) => (field::at(l3, field::V4_DST), 4),
        (Af::V4, Side::Src) => (field::at(l3, field::V4_SRC), 4),
        (Af::V6, Side::Dst) => (field::at(l3, field::V6_DST), 16),
        (Af::V6, Side::Src) => (field::at(l3, field::V6_SRC), 16),
    };
    let new_full = crate::addr::raw(addr);
    let new_addr = new_full.get(..n).ok_or(XmitError::Bounds)?;
    let delta = csum::delta(field::bytes(data, range.clone()).ok_or(XmitError::Bounds)?, new_addr);
    ok(field::set_bytes(data, range, new_addr))?;
    if af == Af::V4 {
        let c = field::be16(data, l3 + field::V4_CSUM).ok_or(XmitError::Bounds)?;
        ok(field::set_be16(data, l3 + field::V4_CSUM, csum::apply(c, delta)))?;
    }
    Ok(delta)
}

/// Rewrites one address and port of the packet, fixing every checksum that covers them.
///
/// # Errors
/// [`XmitError::Bounds`] when the frame does not hold the headers `meta` describes.
pub(crate) fn rewrite(
    data: &mut [u8],
    meta: &PacketMeta,
    side: Side,
    addr: &IpAddr,
    port: u16,
) -> Result<(), XmitError> {
    if meta.proto == ipproto::SCTP {
        return rewrite_sctp(data, meta, side, addr, port);
    }
    let l4 = usize::from(meta.l4);
    let delta = rewrite_addr(data, usize::from(meta.l3), meta.af, side, addr)?;
    if matches!(meta.frag, Frag::Later(_)) {
        return Ok(());
    }
    let csum_off = match meta.proto {
        ipproto::TCP => l4 + field::TCP_CSUM,
        ipproto::UDP => l4 + field::UDP_CSUM,
        _ => return Ok(()),
    };
    let port_off = match side {
        Side::Dst => field::L4_DPORT,
        Side::Src => field::L4_SPORT,
    };
    let old_port = field::be16(data, l4 + port_off).ok_or(XmitError::Bounds)?;
    ok(field::set_be16(data, l4 + port_off, port))?;
    let c = field::be16(data, csum_off).ok_or(XmitError::Bounds)?;
    if meta.proto == ipproto::UDP && c == 0 && meta.af == Af::V4 {
        return Ok(());
    }
    let mut c = csum::apply(c, delta);
    c = csum::update16(c, old_port, port);
    if meta.proto == ipproto::UDP && c == 0 {
        c = 0xffff;
    }
    ok(field::set_be16(data, csum_off, c))
}

/// The SCTP rewrite (`sctp_dnat_handler`, `sctp_snat_handler`): the CRC32c covers no
/// pseudo-header, so a new address leaves it alone; only when the port changes is the port
/// written and the checksum computed afresh over the packet (`sctp_nat_csum`), without checking
/// the old one, as the kernel does for a connection without an application helper.
///
/// # Errors
/// [`XmitError::Fragment`] for a first fragment whose port would change (nothing is written),
/// [`XmitError::Bounds`] when the frame does not hold the headers `meta` describes.
fn rewrite_sctp(data: &mut [u8], meta: &PacketMeta, side: Side, addr: &IpAddr, port: u16) -> Result<(), XmitError> {
    let (l3, l4) = (usize::from(meta.l3), usize::from(meta.l4));
    let port_off = l4
        + match side {
            Side::Dst => field::L4_DPORT,
            Side::Src => field::L4_SPORT,
        };
    let new_port = match meta.frag {
        Frag::Later(_) => false,
        _ => field::be16(data, port_off).ok_or(XmitError::Bounds)? != port,
    };
    if new_port && meta.frag != Frag::None {
        return Err(XmitError::Fragment);
    }
    rewrite_addr(data, l3, meta.af, side, addr)?;
    if !new_port {
        return Ok(());
    }
    ok(field::set_be16(data, port_off, port))?;
    let end = l3 + usize::from(meta.ip_len);
    let crc = csum::sctp(data.get(l4..end).ok_or(XmitError::Bounds)?).ok_or(XmitError::Bounds)?;
    let at = l4 + field::SCTP_CSUM;
    ok(field::set_bytes(data, at..at + 4, &crc))
}

/// Translates an ICMP error of a NAT connection (`ip_vs_nat_icmp`). Inbound (from beyond the
/// client): the outer destination and the quoted source become `addr:port` (the real server).
/// Outbound (from the real server): the outer source and the quoted destination become
/// `addr:port` (the virtual service). The quoted transport checksum is left alone, as the
/// kernel does; the ICMP checksum is computed afresh.
///
/// # Errors
/// [`XmitError::TtlExpired`] when the TTL would reach zero.
#[allow(clippy::too_many_arguments)]
pub(crate) fn xmit_icmp(
    frame: &mut Frame,
    meta: &PacketMeta,
    e: &IcmpError,
    addr: &IpAddr,
    port: u16,
    inbound: bool,
    dst: MacAddr,
    src: MacAddr,
) -> Result<(), XmitError> {
    let data = frame.data_mut();
    decrement_ttl(data, meta)?;
    let (outer, inner) = if inbound { (Side::Dst, Side::Src) } else { (Side::Src, Side::Dst) };
    rewrite_addr(data, usize::from(meta.l3), meta.af, outer, addr)?;
    rewrite_addr(data, usize::from(e.inner_l3), meta.af, inner, addr)?;
    let port_off = match inner {
        Side::Dst => field::L4_DPORT,
        Side::Src => field::L4_SPORT,
    };
    ok(field::set_be16(data, usize::from(e.inner_l4) + port_off, port))?;
    icmp_checksum(data, meta)?;
    set_macs(data, dst, src)
}

/// Computes the ICMP (IPv4) or ICMPv6 (with its pseudo-header) checksum of the message `meta`
/// describes afresh and writes it.
///
/// # Errors
/// [`XmitError::Bounds`] when the frame does not hold what `meta` says.
pub(crate) fn icmp_checksum(data: &mut [u8], meta: &PacketMeta) -> Result<(), XmitError> {
    let (l3, l4) = (usize::from(meta.l3), usize::from(meta.l4));
    let end = l3 + usize::from(meta.ip_len);
    ok(field::set_be16(data, l4 + field::ICMP_CSUM, 0))?;
    let body = data.get(l4..end).ok_or(XmitError::Bounds)?;
    let c = match meta.af {
        Af::V4 => csum::checksum(body),
        Af::V6 => {
            let pseudo_src = field::bytes(data, field::at(l3, field::V6_SRC)).ok_or(XmitError::Bounds)?;
            let pseudo_dst = field::bytes(data, field::at(l3, field::V6_DST)).ok_or(XmitError::Bounds)?;
            let mut s = csum::add(0, pseudo_src);
            s = csum::add(s, pseudo_dst);
            s = csum::add(s, &(body.len() as u32).to_be_bytes());
            s = csum::add(s, &[0, 0, 0, ipproto::ICMPV6]);
            csum::finish(csum::add(s, body))
        }
    };
    ok(field::set_be16(data, l4 + field::ICMP_CSUM, c))
}

/// Client → real server: destination becomes `rs:rport`, TTL decremented, frame to `dst`.
///
/// # Errors
/// [`XmitError::TtlExpired`] when the TTL would reach zero.
pub(crate) fn xmit_in(
    frame: &mut Frame,
    meta: &PacketMeta,
    rs: &IpAddr,
    rport: u16,
    dst: MacAddr,
    src: MacAddr,
) -> Result<(), XmitError> {
    let data = frame.data_mut();
    decrement_ttl(data, meta)?;
    rewrite(data, meta, Side::Dst, rs, rport)?;
    set_macs(data, dst, src)
}

/// Real server → client: source becomes `vip:vport`, TTL decremented, frame to `dst`.
///
/// # Errors
/// [`XmitError::TtlExpired`] when the TTL would reach zero.
pub(crate) fn xmit_out(
    frame: &mut Frame,
    meta: &PacketMeta,
    vip: &IpAddr,
    vport: u16,
    dst: MacAddr,
    src: MacAddr,
) -> Result<(), XmitError> {
    let data = frame.data_mut();
    decrement_ttl(data, meta)?;
    rewrite(data, meta, Side::Src, vip, vport)?;
    set_macs(data, dst, src)
}
