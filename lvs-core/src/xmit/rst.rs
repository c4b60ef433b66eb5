//! The TCP reset the director's own stack sends for a segment to a virtual service that has no
//! connection and cannot start one (IPVS lets such a packet through to the local stack, which
//! has no socket there: `tcp_v4_send_reset` / `tcp_v6_send_reset`). Built in place: the reset is
//! never longer than the segment it answers.
//!
//! As Linux does: to a segment with ACK the reset carries `seq = ack` and no ACK; otherwise
//! `RST|ACK` with `ack = seq + SYN + FIN + payload`. No options, window 0, TTL / hop limit 64,
//! the IPv4 ID 0 with DF set, the incoming TOS without its ECN bits.

use super::icmp::{addr_bytes, write_v4_header, write_v6_header};
use super::{ok, set_macs, XmitError};
use crate::addr::Af;
use crate::neigh::MacAddr;
use crate::proto::tcp::flags;
use crate::wire::{csum, field, ipproto, Frame, PacketMeta};

/// Turns a TCP segment into the reset that answers it.
///
/// # Errors
/// [`XmitError::Bounds`] when the frame does not hold the segment `meta` describes.
pub(crate) fn reset(frame: &mut Frame, meta: &PacketMeta, dst_mac: MacAddr, src_mac: MacAddr) -> Result<(), XmitError> {
    let (l3, l4) = (usize::from(meta.l3), usize::from(meta.l4));
    let data = frame.data();
    let seq = u32::from_be_bytes(
        data.get(l4 + 4..l4 + 8).ok_or(XmitError::Bounds)?.try_into().map_err(|_| XmitError::Bounds)?,
    );
    let ack = u32::from_be_bytes(
        data.get(l4 + 8..l4 + 12).ok_or(XmitError::Bounds)?.try_into().map_err(|_| XmitError::Bounds)?,
    );
    let doff = usize::from(field::byte(data, l4 + 12).ok_or(XmitError::Bounds)? >> 4) * 4;
    let payload = (usize::from(meta.ip_len) + l3).saturating_sub(l4 + doff) as u32;
    let tos = match meta.af {
        Af::V4 => field::byte(data, l3 + 1).ok_or(XmitError::Bounds)?,
        Af::V6 => (field::be16(data, l3).ok_or(XmitError::Bounds)? >> 4) as u8,
    } & !3;
    let f = meta.tcp_flags;
    let (rseq, rack, rflags) = if f & flags::ACK != 0 {
        (ack, 0, flags::RST)
    } else {
        let len = payload + u32::from(f & flags::SYN != 0) + u32::from(f & flags::FIN != 0);
        (0, seq.wrapping_add(len), flags::RST | flags::ACK)
    };
    let (src, n) = addr_bytes(&meta.dst);
    let (dst, _) = addr_bytes(&meta.src);
    let (src, dst) = (src.get(..n).ok_or(XmitError::Bounds)?, dst.get(..n).ok_or(XmitError::Bounds)?);
    let ip_hdr = match meta.af {
        Af::V4 => 20,
        Af::V6 => 40,
    };
    let t = l3 + ip_hdr;
    frame.truncate(t + 20);
    let data = frame.data_mut();
    match meta.af {
        Af::V4 => write_v4_header(data, l3, tos, 40, 0, true, 64, ipproto::TCP, src, dst)?,
        Af::V6 => write_v6_header(data, l3, tos, 20, ipproto::TCP, 64, src, dst)?,
    }
    let tcp = data.get_mut(t..t + 20).ok_or(XmitError::Bounds)?;
    tcp.fill(0);
    ok(field::set_be16(tcp, field::L4_SPORT, meta.dport))?;
    ok(field::set_be16(tcp, field::L4_DPORT, meta.sport))?;
    ok(field::set_bytes(tcp, 4..8, &rseq.to_be_bytes()))?;
    ok(field::set_bytes(tcp, 8..12, &rack.to_be_bytes()))?;
    ok(field::set_byte(tcp, 12, 0x50))?;
    ok(field::set_byte(tcp, 13, rflags))?;
    let mut s = csum::add(0, src);
    s = csum::add(s, dst);
    s = csum::add(s, &[0, ipproto::TCP, 0, 20]);
    let c = csum::finish(csum::add(s, tcp));
    ok(field::set_be16(tcp, field::TCP_CSUM, c))?;
    set_macs(data, dst_mac, src_mac)
}
