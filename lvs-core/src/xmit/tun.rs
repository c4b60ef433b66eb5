//! IP-in-IP tunnelling (`ip_vs_tunnel_xmit`, ipip type): the packet, TTL decremented, is wrapped
//! in an outer IPv4 (protocol 4 / 41) or IPv6 header toward the real server, written into the
//! frame's headroom without copying the payload.
//!
//! As the recorded traces show: the outer TTL is the inner (already decremented) TTL, the outer
//! TOS is the inner one with ECN encapsulated (CE becomes ECT(0)), DF is copied from the inner
//! header, and the outer ID is 0 when DF is set.

use core::net::IpAddr;

use super::icmp::{addr_bytes, open_gap, set_ethertype, write_v4_header, write_v6_header};
use super::{decrement_ttl, set_macs, trim_padding, XmitError};
use crate::addr::Af;
use crate::neigh::MacAddr;
use crate::wire::{ethertype, field, ipproto, Frame, PacketMeta};

/// Bytes the outer header adds for a real server of family `af`.
pub(crate) const fn overhead(af: Af) -> usize {
    match af {
        Af::V4 => 20,
        Af::V6 => 40,
    }
}

/// The tunnel endpoints and link addresses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tunnel {
    /// Outer source: the director's address toward the real server.
    pub(crate) src: IpAddr,
    /// Outer destination: the real server.
    pub(crate) dst: IpAddr,
    /// The real server's MAC.
    pub(crate) dst_mac: MacAddr,
    /// The director's MAC.
    pub(crate) src_mac: MacAddr,
    /// The path MTU toward the real server.
    pub(crate) mtu: u16,
    /// Outer IPv4 ID when the inner packet lacks DF (with DF it is 0).
    pub(crate) id: u16,
}

/// Why a packet was not tunnelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TunError {
    /// A rewrite failed.
    Xmit(XmitError),
    /// The encapsulated packet would exceed the MTU and may not be fragmented (DF, or IPv6,
    /// which routers never fragment); the client should be told this MTU (already reduced by
    /// the tunnel overhead).
    TooBig {
        /// The MTU to advertise.
        mtu: u16,
    },
    /// The datagram is too long for an IPv4 outer header's 16-bit total length.
    TooLong,
}

impl From<XmitError> for TunError {
    fn from(e: XmitError) -> Self {
        TunError::Xmit(e)
    }
}

/// Encapsulates the frame's datagram toward the real server.
///
/// # Errors
/// [`TunError::TooBig`] when it would not fit the MTU and has DF set (IPv6 always has; a
/// longer packet without DF is encapsulated whole, for the caller to fragment);
/// [`TunError::TooLong`] when an IPv4 outer header cannot hold its length; [`TunError::Xmit`]
/// when the TTL runs out or the frame lacks headroom.
pub(crate) fn xmit(frame: &mut Frame, meta: &PacketMeta, t: &Tunnel) -> Result<(), TunError> {
    let outer_af = Af::of(&t.dst);
    let over = overhead(outer_af);
    let inner_len = usize::from(meta.ip_len);
    // `__ip_vs_get_out_rt`: the TTL is decremented (or the packet refused as expired) before
    // the MTU is checked, so an error quotes the decremented header.
    trim_padding(frame, meta);
    decrement_ttl(frame.data_mut(), meta)?;
    // `ensure_mtu_is_adequate`: only a packet that may not be fragmented is refused; any
    // other is encapsulated whole, and the outer packet is fragmented afterwards.
    if inner_len + over > usize::from(t.mtu) && meta.df {
        let mtu = usize::from(t.mtu).saturating_sub(over) as u16;
        return Err(TunError::TooBig { mtu });
    }
    let l3 = usize::from(meta.l3);
    let data = frame.data();
    let (tos, ttl) = match meta.af {
        Af::V4 => (
            field::byte(data, l3 + 1).ok_or(XmitError::Bounds)?,
            field::byte(data, l3 + field::V4_TTL).ok_or(XmitError::Bounds)?,
        ),
        Af::V6 => {
            let w = field::be16(data, l3).ok_or(XmitError::Bounds)?;
            ((w >> 4) as u8, field::byte(data, l3 + field::V6_HOPS).ok_or(XmitError::Bounds)?)
        }
    };
    let tos = if tos & 3 == 3 { (tos & !3) | 2 } else { tos };
    let proto = match meta.af {
        Af::V4 => ipproto::IPIP,
        Af::V6 => ipproto::IPV6,
    };
    let l2 = open_gap(frame, meta, over)?;
    let (src, n) = addr_bytes(&t.src);
    let (dst, _) = addr_bytes(&t.dst);
    let (src, dst) = (src.get(..n).ok_or(XmitError::Bounds)?, dst.get(..n).ok_or(XmitError::Bounds)?);
    let data = frame.data_mut();
    match outer_af {
        Af::V4 => {
            set_ethertype(data, l2, ethertype::IPV4)?;
            let total = u16::try_from(inner_len + over).map_err(|_| TunError::TooLong)?;
            let id = if meta.df { 0 } else { t.id };
            write_v4_header(data, l2, tos, total, id, meta.df, ttl, proto, src, dst)?;
        }
        Af::V6 => {
            set_ethertype(data, l2, ethertype::IPV6)?;
            write_v6_header(data, l2, tos, inner_len as u16, proto, ttl, src, dst)?;
        }
    }
    set_macs(data, t.dst_mac, t.src_mac)?;
    Ok(())
}
