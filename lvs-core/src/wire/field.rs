//! Named header field offsets and checked byte access: the only place that does byte
//! arithmetic on headers.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use core::ops::Range;

/// Ethernet destination MAC.
pub(crate) const ETH_DST: Range<usize> = 0..6;
/// Ethernet source MAC.
pub(crate) const ETH_SRC: Range<usize> = 6..12;

/// IPv4: total length.
pub(crate) const V4_TOTAL_LEN: usize = 2;
/// IPv4: identification.
pub(crate) const V4_ID: usize = 4;
/// IPv4: flags and fragment offset.
pub(crate) const V4_FLAGS: usize = 6;
/// IPv4: TTL (high byte of the TTL/protocol word).
pub(crate) const V4_TTL: usize = 8;
/// IPv4: header checksum.
pub(crate) const V4_CSUM: usize = 10;
/// IPv4: source address.
pub(crate) const V4_SRC: Range<usize> = 12..16;
/// IPv4: destination address.
pub(crate) const V4_DST: Range<usize> = 16..20;

/// IPv6: payload length.
pub(crate) const V6_PAYLOAD_LEN: usize = 4;
/// IPv6: next header.
pub(crate) const V6_NEXT: usize = 6;
/// IPv6: hop limit.
pub(crate) const V6_HOPS: usize = 7;
/// IPv6: source address.
pub(crate) const V6_SRC: Range<usize> = 8..24;
/// IPv6: destination address.
pub(crate) const V6_DST: Range<usize> = 24..40;

/// TCP/UDP: source port.
pub(crate) const L4_SPORT: usize = 0;
/// TCP/UDP: destination port.
pub(crate) const L4_DPORT: usize = 2;
/// TCP: sequence number.
pub(crate) const TCP_SEQ: usize = 4;
/// TCP: acknowledgement number.
pub(crate) const TCP_ACK: usize = 8;
/// TCP: data offset (high nibble, in 32-bit words).
pub(crate) const TCP_DOFF: usize = 12;
/// TCP: the fixed header's length; options follow it.
pub(crate) const TCP_BASE_LEN: usize = 20;
/// TCP: the longest header (data offset 15).
pub(crate) const TCP_MAX_LEN: usize = 60;
/// TCP: checksum.
pub(crate) const TCP_CSUM: usize = 16;
/// UDP: checksum.
pub(crate) const UDP_CSUM: usize = 6;
/// SCTP checksum (CRC32c, little-endian) within the common header.
pub(crate) const SCTP_CSUM: usize = 8;
/// ICMP / ICMPv6: checksum.
pub(crate) const ICMP_CSUM: usize = 2;

/// One byte.
#[inline]
pub(crate) fn byte(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

/// A big-endian 16-bit field.
#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

/// Writes one byte.
#[inline]
pub(crate) fn set_byte(b: &mut [u8], off: usize, v: u8) -> Option<()> {
    *b.get_mut(off)? = v;
    Some(())
}

/// Writes a big-endian 16-bit field.
#[inline]
pub(crate) fn set_be16(b: &mut [u8], off: usize, v: u16) -> Option<()> {
    b.get_mut(off..off + 2)?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

/// A big-endian 32-bit field.
#[inline]
pub(crate) fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Writes a big-endian 32-bit field.
#[inline]
pub(crate) fn set_be32(b: &mut [u8], off: usize, v: u32) -> Option<()> {
    b.get_mut(off..off + 4)?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

/// A range of bytes.
#[inline]
pub(crate) fn bytes(b: &[u8], r: Range<usize>) -> Option<&[u8]> {
    b.get(r)
}

/// Copies `v` over a range of bytes of the same length.
#[inline]
pub(crate) fn set_bytes(b: &mut [u8], r: Range<usize>, v: &[u8]) -> Option<()> {
    let dst = b.get_mut(r)?;
    if dst.len() != v.len() {
        return None;
    }
    dst.copy_from_slice(v);
    Some(())
}

/// Shifts a range by `base` (a header's offset in the frame).
#[inline]
pub(crate) const fn at(base: usize, r: Range<usize>) -> Range<usize> {
    base + r.start..base + r.end
}
