//! Tunnelling (`ip_vs_tunnel_xmit`): the packet, TTL decremented, is wrapped in an outer IPv4
//! or IPv6 header toward the real server — directly (ipip: protocol 4 / 41), or behind UDP and
//! GUE (`ipvs_gue_encap`) or GRE (`ipvs_gre_encap`) — written into the frame's headroom
//! without copying the payload.
//!
//! As the recorded traces show: the outer TTL is the inner (already decremented) TTL, the outer
//! TOS is the inner one with ECN encapsulated (CE becomes ECT(0)), DF is copied from the inner
//! header, and the outer ID is 0 when DF is set.

use core::net::IpAddr;

use super::icmp::{addr_bytes, open_gap, set_ethertype, write_v4_header, write_v6_header};
use super::{decrement_ttl, set_macs, trim_padding, XmitError};
use crate::addr::Af;
use crate::dest::{TunConfig, TunCsum, TunType};
use crate::neigh::MacAddr;
use crate::wire::tunnel::EncapRepr;
use crate::wire::{ethertype, field, ipproto, Frame, PacketMeta};

/// Bytes the outer headers add for a real server of family `af`: the outer IP header and the
/// encapsulation's own (`__ip_vs_get_out_rt` takes both off the route's MTU).
pub(crate) const fn overhead(af: Af, encap: Option<&EncapRepr>) -> usize {
    let ip = match af {
        Af::V4 => 20,
        Af::V6 => 40,
    };
    match encap {
        Some(e) => ip + e.len(),
        None => ip,
    }
}

/// The lowest port `udp_flow_src_port` picks from (the default `ip_local_port_range`).
const SRC_PORT_MIN: u32 = 32768;
/// The top of the default `ip_local_port_range`; as the kernel uses it, never picked itself.
const SRC_PORT_MAX: u32 = 60999;

/// GUE's UDP source port for a flow hash, as `udp_flow_src_port` maps one onto the default
/// local port range: the hash's low half folded into its high half, then scaled into
/// 32768..60999. The kernel's hash is `skb_get_hash` (a jhash keyed at boot, or the NIC's);
/// this director's is its own seeded hash of the same flow, so the port is stable per flow and
/// spread over the same range, but not the number a given kernel would pick.
pub(crate) fn gue_src_port(hash: u32) -> u16 {
    let h = hash ^ (hash << 16);
    ((u64::from(h) * u64::from(SRC_PORT_MAX - SRC_PORT_MIN)) >> 32) as u16 + SRC_PORT_MIN as u16
}

/// The encapsulation headers for a server's tunnel settings and a packet of family `inner`:
/// `None` for IP-in-IP. `sport` is GUE's UDP source port ([`gue_src_port`]).
pub(crate) fn encap(cfg: &TunConfig, inner: Af, sport: u16) -> Option<EncapRepr> {
    let csum = cfg.csum != TunCsum::NoCsum;
    match cfg.kind {
        TunType::Ipip => None,
        TunType::Gue => Some(EncapRepr::Gue { sport, dport: cfg.port, csum, proto: inner_proto(inner) }),
        // `ipvs_gre_encap` sets TUNNEL_CSUM for the csum flag alone.
        TunType::Gre => Some(EncapRepr::Gre {
            csum: cfg.csum == TunCsum::Csum,
            ethertype: match inner {
                Af::V4 => ethertype::IPV4,
                Af::V6 => ethertype::IPV6,
            },
        }),
    }
}

/// The IP protocol number of a packet of family `af` carried in IP: 4 or 41.
const fn inner_proto(af: Af) -> u8 {
    match af {
        Af::V4 => ipproto::IPIP,
        Af::V6 => ipproto::IPV6,
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
    /// GUE or GRE headers between the outer IP header and the packet (`None`: IP-in-IP).
    pub(crate) encap: Option<EncapRepr>,
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
    let over = overhead(outer_af, t.encap.as_ref());
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
    let proto = t.encap.as_ref().map_or(inner_proto(meta.af), EncapRepr::ip_proto);
    let l2 = open_gap(frame, meta, over)?;
    let (src, n) = addr_bytes(&t.src);
    let (dst, _) = addr_bytes(&t.dst);
    let (src, dst) = (src.get(..n).ok_or(XmitError::Bounds)?, dst.get(..n).ok_or(XmitError::Bounds)?);
    let data = frame.data_mut();
    let ip_len = over - t.encap.as_ref().map_or(0, EncapRepr::len);
    // The outer header's length field (IPv4's total length, IPv6's payload length) must hold
    // the packet: a non-DF IPv4 packet near 64 KiB does not fit once wrapped.
    let payload = u16::try_from(over - ip_len + inner_len).map_err(|_| TunError::TooLong)?;
    match outer_af {
        Af::V4 => {
            set_ethertype(data, l2, ethertype::IPV4)?;
            let id = if meta.df { 0 } else { t.id };
            write_v4_header(
                data,
                l2,
                tos,
                payload.checked_add(20).ok_or(TunError::TooLong)?,
                id,
                meta.df,
                ttl,
                proto,
                src,
                dst,
            )?;
        }
        Af::V6 => {
            set_ethertype(data, l2, ethertype::IPV6)?;
            write_v6_header(data, l2, tos, payload, proto, ttl, src, dst)?;
        }
    }
    if let Some(e) = &t.encap {
        let outer_payload = data.get_mut(l2 + ip_len..).ok_or(XmitError::Bounds)?;
        e.emit(outer_payload, src, dst).ok_or(XmitError::Bounds)?;
    }
    set_macs(data, t.dst_mac, t.src_mac)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gue_src_port_scales_the_folded_hash_into_the_local_port_range() {
        // `udp_flow_src_port` with the default range 32768..60999: hash ^= hash << 16, then
        // ((u64)hash * (60999 - 32768)) >> 32, plus 32768.
        assert_eq!(gue_src_port(0), 32768);
        // 0xffff0000 stays itself after the fold: 28231 * 0xffff0000 >> 32 = 28230.
        assert_eq!(gue_src_port(0xffff_0000), 60998);
        // 0x8000_0000 likewise: half the range, rounded down.
        assert_eq!(gue_src_port(0x8000_0000), 32768 + 14115);
        // The low half reaches the port through the fold: 0x8000 becomes 0x8000_8000.
        assert_eq!(gue_src_port(0x0000_8000), 32768 + 14115);
    }

    #[test]
    fn encap_follows_the_servers_setting_and_the_inner_family() {
        assert_eq!(encap(&TunConfig::IPIP, Af::V4, 0), None);
        assert_eq!(
            encap(&TunConfig::gue(6080, TunCsum::RemCsum), Af::V6, 40000),
            Some(EncapRepr::Gue { sport: 40000, dport: 6080, csum: true, proto: 41 })
        );
        assert_eq!(
            encap(&TunConfig::gre(TunCsum::RemCsum), Af::V4, 0),
            Some(EncapRepr::Gre { csum: false, ethertype: 0x0800 })
        );
        assert_eq!(overhead(Af::V6, encap(&TunConfig::gre(TunCsum::Csum), Af::V4, 0).as_ref()), 48);
    }
}
