//! Forwarding methods (`ip_vs_xmit.c`): one function per method, chosen when the connection is
//! created, each rewriting the frame in place.
//!
//! Every method decrements the TTL / hop limit (`decrement_ttl`), as the recorded traces show;
//! a packet whose TTL would reach zero gets ICMP time exceeded instead.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod dr;
pub(crate) mod fnat;
pub(crate) mod fnat64;
pub(crate) mod fragment;
pub(crate) mod icmp;
pub(crate) mod nat;
pub(crate) mod rst;
pub(crate) mod seqadj;
pub(crate) mod synproxy;
pub(crate) mod tcpopt;
pub(crate) mod tun;

use crate::addr::Af;
use crate::neigh::MacAddr;
use crate::wire::{csum, field, Frame, PacketMeta};

/// A rewrite failed: the frame's bytes did not hold what the parser said (cannot happen for a
/// frame parsed by [`crate::wire::parse`] and not changed since), or a TTL ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XmitError {
    /// A header field was out of the frame's bounds.
    Bounds,
    /// TTL / hop limit is 1 or 0.
    TtlExpired,
    /// An SCTP fragment whose port NAT must change: SCTP's CRC32c covers the whole packet, and
    /// this director does not reassemble (the kernel's defragmentation runs before IPVS).
    Fragment,
}

pub(crate) fn ok(o: Option<()>) -> Result<(), XmitError> {
    o.ok_or(XmitError::Bounds)
}

/// Rewrites the Ethernet addresses.
pub(crate) fn set_macs(data: &mut [u8], dst: MacAddr, src: MacAddr) -> Result<(), XmitError> {
    ok(field::set_bytes(data, field::ETH_DST, &dst.0))?;
    ok(field::set_bytes(data, field::ETH_SRC, &src.0))
}

/// Decrements the IPv4 TTL (with an incremental header checksum update) or the IPv6 hop limit.
pub(crate) fn decrement_ttl(data: &mut [u8], meta: &PacketMeta) -> Result<(), XmitError> {
    let l3 = usize::from(meta.l3);
    match meta.af {
        Af::V4 => {
            let word = field::be16(data, l3 + field::V4_TTL).ok_or(XmitError::Bounds)?;
            if word >> 8 <= 1 {
                return Err(XmitError::TtlExpired);
            }
            let new = word - 0x100;
            ok(field::set_be16(data, l3 + field::V4_TTL, new))?;
            let c = field::be16(data, l3 + field::V4_CSUM).ok_or(XmitError::Bounds)?;
            ok(field::set_be16(data, l3 + field::V4_CSUM, csum::update16(c, word, new)))
        }
        Af::V6 => {
            let h = field::byte(data, l3 + field::V6_HOPS).ok_or(XmitError::Bounds)?;
            if h <= 1 {
                return Err(XmitError::TtlExpired);
            }
            ok(field::set_byte(data, l3 + field::V6_HOPS, h - 1))
        }
    }
}

/// Drops bytes after the IP datagram (Ethernet padding), so added headers measure right.
pub(crate) fn trim_padding(frame: &mut Frame, meta: &PacketMeta) {
    frame.truncate(usize::from(meta.l3) + usize::from(meta.ip_len));
}
