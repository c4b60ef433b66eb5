//! fnat64: the IP header of a FullNAT packet replaced by one of the other family (DPVS
//! `mbuf_6to4` and `mbuf_4to6`, used by `dp_vs_xmit_fnat` / `dp_vs_out_xmit_fnat` when the
//! connection's `af` and `daf` differ) — an IPv6 client's packet leaves for an IPv4 real
//! server as IPv4, and the server's IPv4 reply goes back as IPv6. RFC 7915's header mapping:
//! TTL from the hop limit and back, TOS from the traffic class and back, IPv4 ID 0 with DF set,
//! no flow label; IPv6 extension headers and IPv4 options are not carried over (where DPVS
//! writes TOS 0 and refuses packets that have them).

use core::net::IpAddr;

use super::{ok, XmitError};
use crate::addr::{raw, Af};
use crate::wire::{csum, ethertype, field, ipproto, Frag, Frame, PacketMeta};

/// An IPv4 header without options.
const V4_HDR: usize = 20;
/// An IPv6 header.
const V6_HDR: usize = 40;

/// Replaces the IP header of the TCP or UDP packet `meta` describes with one of the family of
/// `src` and `dst`, from `src` to `dst`, moving the link header with it (the frame shrinks into
/// its headroom or grows out of it), and returns the packet's new description. The transport
/// checksum is updated incrementally for the new pseudo-header (the ports are left to the
/// caller); an IPv4 UDP datagram without a checksum gets one computed, as IPv6 requires.
///
/// # Errors
/// [`XmitError::Fragment`] for a fragment, [`XmitError::Bounds`] when the frame does not hold
/// what `meta` says, the addresses are of different families, the protocol is neither TCP nor
/// UDP, or there is no headroom to grow into.
pub(crate) fn translate(
    frame: &mut Frame,
    meta: &PacketMeta,
    src: IpAddr,
    dst: IpAddr,
) -> Result<PacketMeta, XmitError> {
    let to = Af::of(&src);
    if Af::of(&dst) != to {
        return Err(XmitError::Bounds);
    }
    if to == meta.af {
        return Ok(*meta);
    }
    if meta.frag != Frag::None {
        return Err(XmitError::Fragment);
    }
    let csum_at = match meta.proto {
        ipproto::TCP => field::TCP_CSUM,
        ipproto::UDP => field::UDP_CSUM,
        _ => return Err(XmitError::Bounds),
    };
    let (l3, l4) = (usize::from(meta.l3), usize::from(meta.l4));
    let data = frame.data();
    let old_hdr = l4.checked_sub(l3).ok_or(XmitError::Bounds)?;
    let seg = usize::from(meta.ip_len).checked_sub(old_hdr).ok_or(XmitError::Bounds)?;
    let b0 = field::byte(data, l3).ok_or(XmitError::Bounds)?;
    let b1 = field::byte(data, l3 + 1).ok_or(XmitError::Bounds)?;
    let (ttl, tos) = match meta.af {
        Af::V4 => (field::byte(data, l3 + field::V4_TTL).ok_or(XmitError::Bounds)?, b1),
        Af::V6 => (field::byte(data, l3 + field::V6_HOPS).ok_or(XmitError::Bounds)?, (b0 << 4) | (b1 >> 4)),
    };
    let old_csum = field::be16(data, l4 + csum_at).ok_or(XmitError::Bounds)?;

    // Move the link header so the new IP header ends where the old one did.
    let new_hdr = if to == Af::V4 { V4_HDR } else { V6_HDR };
    if new_hdr < old_hdr {
        let n = old_hdr - new_hdr;
        frame.data_mut().copy_within(0..l3, n);
        if !frame.pull_front(n) {
            return Err(XmitError::Bounds);
        }
    } else {
        // Into the headroom when there is enough, else the frame's buffer grows.
        let n = new_hdr - old_hdr;
        if frame.push_front(n) {
            frame.data_mut().copy_within(n..n + l3, 0);
        } else if !frame.insert(l3, [0; V6_HDR].get(..n).ok_or(XmitError::Bounds)?) {
            return Err(XmitError::Bounds);
        }
    }
    let l4 = l3 + new_hdr;
    let ip_len = u16::try_from(new_hdr + seg).map_err(|_| XmitError::Bounds)?;
    let data = frame.data_mut();
    let (s, d) = (raw(&src), raw(&dst));
    let etype = l3.checked_sub(2).ok_or(XmitError::Bounds)?;
    match to {
        Af::V4 => {
            ok(field::set_be16(data, etype, ethertype::IPV4))?;
            let [len0, len1] = ip_len.to_be_bytes();
            let mut h = [0x45, tos, len0, len1, 0, 0, 0x40, 0, ttl, meta.proto, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            for (o, v) in h.iter_mut().skip(12).zip(s.iter().take(4).chain(d.iter().take(4))) {
                *o = *v;
            }
            ok(field::set_bytes(data, l3..l4, &h))?;
            ok(field::set_be16(data, l3 + field::V4_CSUM, csum::checksum(&h)))?;
        }
        Af::V6 => {
            ok(field::set_be16(data, etype, ethertype::IPV6))?;
            let [len0, len1] = u16::try_from(seg).map_err(|_| XmitError::Bounds)?.to_be_bytes();
            let head = [0x60 | (tos >> 4), tos << 4, 0, 0, len0, len1, meta.proto, ttl];
            ok(field::set_bytes(data, l3..l3 + 8, &head))?;
            ok(field::set_bytes(data, l3 + 8..l3 + 24, &s))?;
            ok(field::set_bytes(data, l3 + 24..l4, &d))?;
        }
    }
    let m = PacketMeta { l4: l4 as u16, ip_len, af: to, src, dst, df: true, ..*meta };
    if meta.proto == ipproto::UDP && old_csum == 0 {
        return crate::wire::write_l4_checksum(data, &m).map(|()| m).ok_or(XmitError::Bounds);
    }
    // The pseudo-header's length and protocol sum the same in both families; only the
    // addresses differ. Unused address bytes are zero and add nothing.
    let (mut old, mut new) = ([0u8; 32], [0u8; 32]);
    let n = if meta.af == Af::V4 { 4 } else { 16 };
    let (os, od) = (raw(&meta.src), raw(&meta.dst));
    for (a, b) in os.iter().take(n).chain(od.iter().take(n)).zip(old.iter_mut()) {
        *b = *a;
    }
    let k = if to == Af::V4 { 4 } else { 16 };
    for (a, b) in s.iter().take(k).chain(d.iter().take(k)).zip(new.iter_mut()) {
        *b = *a;
    }
    let mut c = csum::update_bytes(old_csum, &old, &new);
    if meta.proto == ipproto::UDP && c == 0 {
        c = 0xffff;
    }
    ok(field::set_be16(data, l4 + csum_at, c))?;
    Ok(m)
}
