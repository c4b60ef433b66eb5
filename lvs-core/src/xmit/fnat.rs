//! FullNAT (Alibaba LVS `ip_vs_fnat_xmit`, DPVS `dp_vs_xmit_fnat` and `tcp_fnat_in_handler` /
//! `tcp_fnat_out_handler`): both addresses and ports rewritten — client → local address on
//! the way in, real server → virtual service on the way out — the sequence offsets of an
//! inserted PROXY header applied both ways, the client's address added as a TOA option or a
//! PROXY header, and the MSS a real server offers cut by what the director will add.

use core::net::IpAddr;

use super::fnat64;
use super::nat::{icmp_checksum, rewrite, rewrite_addr, Side};
use super::seqadj::{self, SeqAdj};
use super::{decrement_ttl, ok, set_macs, tcpopt, trim_padding, XmitError};
use crate::addr::Af;
use crate::neigh::MacAddr;
use crate::proto::tcp::flags;
use crate::wire::{self, field, ipproto, Frame, IcmpError, PacketMeta};

/// TCP option kind of the client address (TOA), non-standard (DPVS `TCP_OPT_ADDR`).
pub(crate) const TOA_KIND: u8 = 254;
/// TOA length for an IPv4 client: kind, length, port, address (`TCP_OLEN_IP4_ADDR`).
pub(crate) const TOA_LEN_V4: usize = 8;
/// TOA length for an IPv6 client (`TCP_OLEN_IP6_ADDR`).
pub(crate) const TOA_LEN_V6: usize = 20;
/// The smallest MSS a cut leaves (RFC 879's default for IPv4).
const MIN_MSS: u16 = 536;
/// How much larger an IPv6 header is than an IPv4 one: what fnat64 takes off the MSS a client
/// offers, so the server's full segments still fit the client's link once they grow into IPv6.
pub(crate) const V6_GROWTH: u16 = 20;

/// The TOA option for a client at `addr:port`: kind 254, length 8 (IPv4) or 20 (IPv6), the
/// port and the address in network order (DPVS `struct tcpopt_ip4_addr`, `tcpopt_ip6_addr`).
pub(crate) fn toa(addr: &IpAddr, port: u16) -> ([u8; TOA_LEN_V6], usize) {
    let mut b = [0u8; TOA_LEN_V6];
    let [p0, p1] = port.to_be_bytes();
    let len = match addr {
        IpAddr::V4(a) => {
            let [a0, a1, a2, a3] = a.octets();
            b = [TOA_KIND, TOA_LEN_V4 as u8, p0, p1, a0, a1, a2, a3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            TOA_LEN_V4
        }
        IpAddr::V6(a) => {
            b[0] = TOA_KIND;
            b[1] = TOA_LEN_V6 as u8;
            b[2] = p0;
            b[3] = p1;
            for (d, s) in b.iter_mut().skip(4).zip(a.octets()) {
                *d = s;
            }
            TOA_LEN_V6
        }
    };
    (b, len)
}

/// What a FullNAT packet gets besides the rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extra<'a> {
    /// Nothing.
    None,
    /// This TCP option right after the fixed header (a TOA).
    Option(&'a [u8]),
    /// These bytes in front of the payload (a PROXY header), for the segment at the start of
    /// the client's stream.
    Payload(&'a [u8]),
}

/// One FullNAT rewrite, in either direction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnat<'a> {
    /// New source address and port.
    pub(crate) src: (IpAddr, u16),
    /// New destination address and port.
    pub(crate) dst: (IpAddr, u16),
    /// Offsets of this direction's sequence numbers.
    pub(crate) seq: SeqAdj,
    /// Offsets of the other direction, taken back out of acknowledgements and SACK blocks.
    pub(crate) ack: SeqAdj,
    /// What to add.
    pub(crate) extra: Extra<'a>,
    /// Bytes to take off the MSS option of a SYN (room for what the other direction adds).
    pub(crate) mss_cut: u16,
    /// Largest IP datagram the packet may grow to.
    pub(crate) mtu: u16,
    /// Next hop MAC.
    pub(crate) dst_mac: MacAddr,
    /// Our MAC on the way out.
    pub(crate) src_mac: MacAddr,
}

/// Whether the extra bytes went in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// Nothing was asked for.
    Nothing,
    /// The extra bytes are in the packet.
    Yes,
    /// They did not fit (TCP option space or the MTU): the packet went without them.
    NoRoom,
}

/// Rewrites a packet of a FullNAT connection in place; when the new addresses are of the
/// other family (fnat64) the IP header is translated first ([`fnat64::translate`]).
///
/// # Errors
/// [`XmitError::TtlExpired`] when the TTL would reach zero, [`XmitError::Bounds`] when the
/// frame does not hold what `meta` says, [`XmitError::Fragment`] for a fragment to translate.
pub(crate) fn xmit(frame: &mut Frame, meta: &PacketMeta, f: &Fnat<'_>) -> Result<Added, XmitError> {
    trim_padding(frame, meta);
    let meta = &fnat64::translate(frame, meta, f.src.0, f.dst.0)?;
    decrement_ttl(frame.data_mut(), meta)?;
    let tcp = meta.proto == ipproto::TCP && matches!(meta.frag, wire::Frag::None);
    let mut m = *meta;
    let added = match f.extra {
        Extra::None => Added::Nothing,
        _ if !tcp => Added::Nothing,
        Extra::Option(opt) => insert(frame, &mut m, opt, true, f.mtu)?,
        Extra::Payload(bytes) => insert(frame, &mut m, bytes, false, f.mtu)?,
    };
    let data = frame.data_mut();
    rewrite(data, &m, Side::Src, &f.src.0, f.src.1)?;
    rewrite(data, &m, Side::Dst, &f.dst.0, f.dst.1)?;
    if tcp {
        let shifted = matches!(f.extra, Extra::Payload(_)) && added == Added::NoRoom;
        seqadj::adjust(data, &m, &f.seq, &f.ack, shifted)?;
        if f.mss_cut > 0 && m.tcp_flags & flags::SYN != 0 {
            cut_mss(data, &m, f.mss_cut)?;
        }
    }
    if added == Added::Yes {
        ok(wire::write_l4_checksum(data, &m))?;
    }
    set_macs(data, f.dst_mac, f.src_mac)?;
    Ok(added)
}

/// An ICMP error about a FullNAT connection, rewritten whole (DPVS `dp_vs_fnat_icmp`): the
/// outer addresses and the quoted packet's addresses and ports all change sides at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FnatIcmp {
    /// New outer source and destination.
    pub(crate) outer: (IpAddr, IpAddr),
    /// New source address and port of the quoted packet.
    pub(crate) inner_src: (IpAddr, u16),
    /// New destination address and port of the quoted packet.
    pub(crate) inner_dst: (IpAddr, u16),
    /// Next hop MAC.
    pub(crate) dst_mac: MacAddr,
    /// Our MAC on the way out.
    pub(crate) src_mac: MacAddr,
}

/// Translates an ICMP error about a FullNAT connection in place. The quoted transport
/// checksum is left alone, as the kernel leaves it for NAT; the ICMP checksum is computed
/// afresh.
///
/// # Errors
/// [`XmitError::TtlExpired`] when the TTL would reach zero, [`XmitError::Bounds`] when the
/// frame does not hold what `meta` and `e` say.
pub(crate) fn xmit_icmp(frame: &mut Frame, meta: &PacketMeta, e: &IcmpError, x: &FnatIcmp) -> Result<(), XmitError> {
    let data = frame.data_mut();
    decrement_ttl(data, meta)?;
    let (l3, il3, il4) = (usize::from(meta.l3), usize::from(e.inner_l3), usize::from(e.inner_l4));
    rewrite_addr(data, l3, meta.af, Side::Src, &x.outer.0)?;
    rewrite_addr(data, l3, meta.af, Side::Dst, &x.outer.1)?;
    rewrite_addr(data, il3, meta.af, Side::Src, &x.inner_src.0)?;
    rewrite_addr(data, il3, meta.af, Side::Dst, &x.inner_dst.0)?;
    ok(field::set_be16(data, il4 + field::L4_SPORT, x.inner_src.1))?;
    ok(field::set_be16(data, il4 + field::L4_DPORT, x.inner_dst.1))?;
    icmp_checksum(data, meta)?;
    set_macs(data, x.dst_mac, x.src_mac)
}

/// Inserts `bytes` as the first TCP option (`option`) or in front of the payload, fixing the
/// data offset and the IP length; `m` then describes the longer packet. The transport checksum
/// is left for the caller to compute afresh.
fn insert(frame: &mut Frame, m: &mut PacketMeta, bytes: &[u8], option: bool, mtu: u16) -> Result<Added, XmitError> {
    let (l3, l4) = (usize::from(m.l3), usize::from(m.l4));
    let data = frame.data();
    let doff = usize::from(field::byte(data, l4 + field::TCP_DOFF).ok_or(XmitError::Bounds)? >> 4) * 4;
    let n = bytes.len();
    let Ok(grow) = u16::try_from(n) else { return Ok(Added::NoRoom) };
    if usize::from(m.ip_len) + n > usize::from(mtu) || (option && (doff + n > field::TCP_MAX_LEN || n % 4 != 0)) {
        return Ok(Added::NoRoom);
    }
    let at = if option { l4 + field::TCP_BASE_LEN } else { l4 + doff };
    if !frame.insert(at, bytes) {
        return Err(XmitError::Bounds);
    }
    let data = frame.data_mut();
    if option {
        let words = ((doff + n) / 4) as u8;
        let b = field::byte(data, l4 + field::TCP_DOFF).ok_or(XmitError::Bounds)?;
        ok(field::set_byte(data, l4 + field::TCP_DOFF, (words << 4) | (b & 0x0f)))?;
    }
    m.ip_len += grow;
    match m.af {
        Af::V4 => {
            ok(field::set_be16(data, l3 + field::V4_TOTAL_LEN, m.ip_len))?;
            ok(field::set_be16(data, l3 + field::V4_CSUM, 0))?;
            let hl = usize::from(field::byte(data, l3).ok_or(XmitError::Bounds)? & 0x0f) * 4;
            let c = wire::csum::checksum(field::bytes(data, l3..l3 + hl).ok_or(XmitError::Bounds)?);
            ok(field::set_be16(data, l3 + field::V4_CSUM, c))?;
        }
        Af::V6 => ok(field::set_be16(data, l3 + field::V6_PAYLOAD_LEN, m.ip_len - 40))?,
    }
    Ok(Added::Yes)
}

/// Lowers the MSS option of a SYN by `cut` (DPVS `tcp_out_adjust_mss`), so segments the
/// other side sends have room for what the director adds to them.
fn cut_mss(data: &mut [u8], m: &PacketMeta, cut: u16) -> Result<(), XmitError> {
    let l4 = usize::from(m.l4);
    let Some(i) = tcpopt::find(data, l4, tcpopt::MSS, 4)? else { return Ok(()) };
    // The checksum runs over 16-bit words of the header: take the aligned bytes that hold the
    // MSS (two, or four when the options before it are odd) before and after.
    let rel = i + 2 - l4;
    let (w, n) = if rel % 2 == 0 { (i + 2, 2) } else { (i + 1, 4) };
    let mut before = [0u8; 4];
    let old_b = before.get_mut(..n).ok_or(XmitError::Bounds)?;
    old_b.copy_from_slice(field::bytes(data, w..w + n).ok_or(XmitError::Bounds)?);
    let old = field::be16(data, i + 2).ok_or(XmitError::Bounds)?;
    ok(field::set_be16(data, i + 2, old.saturating_sub(cut).max(MIN_MSS)))?;
    let c = field::be16(data, l4 + field::TCP_CSUM).ok_or(XmitError::Bounds)?;
    let c = wire::csum::update_bytes(c, old_b, field::bytes(data, w..w + n).ok_or(XmitError::Bounds)?);
    ok(field::set_be16(data, l4 + field::TCP_CSUM, c))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn toa_bytes_as_dpvs_lays_them_out() {
        // struct tcpopt_ip4_addr: opcode 254, opsize 8, port, address, all network order.
        let (b, n) = toa(&"198.51.100.2".parse().unwrap(), 40000);
        assert_eq!(&b[..n], &[254, 8, 0x9c, 0x40, 198, 51, 100, 2]);
        // struct tcpopt_ip6_addr: opsize 20, port, 16-byte address.
        let (b, n) = toa(&"2001:db8::2".parse().unwrap(), 443);
        assert_eq!(&b[..n], &[254, 20, 0x01, 0xbb, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    }
}
