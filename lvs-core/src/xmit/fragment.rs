//! Fragmentation of a tunnel's outer packet, as the kernel's stack does it after
//! `ip_vs_tunnel_xmit` hands a too-long non-DF packet to `ip_local_out` with `ignore_df` set:
//! `ip_do_fragment` for an IPv4 outer header, `ip6_fragment` for an IPv6 one.
//!
//! Whatever header the tunnel wrote (IP-in-IP, or the UDP and GRE encapsulations behind it) is
//! payload to this step: only the outer IP header is repeated. The first fragment stays in the
//! frame; the others go into [`FragOut`], a pool of frames the director keeps and reuses, so
//! nothing is allocated once the pool has grown to the largest burst of fragments.

use alloc::vec::Vec;

use super::XmitError;
use crate::wire::{csum, field, ipproto, Frame};

/// IPv4 "don't fragment" flag in the flags/offset word.
const V4_DF: u16 = 0x4000;
/// IPv4 "more fragments" flag in the flags/offset word.
const V4_MF: u16 = 0x2000;
/// The IPv6 fragment header's length.
const V6_FRAG_LEN: usize = 8;
/// IPv6 "more fragments" flag in the fragment header's offset word.
const V6_MF: u16 = 1;
/// Largest link header kept in front of each fragment (two VLAN tags).
const MAX_L2: usize = 22;
/// The fixed IPv6 header.
const V6_LEN: usize = 40;

/// Extra fragments written for the caller to send after the frame that holds the first: a pool
/// of frames, of which the first `len` are in use.
#[derive(Debug, Default)]
pub(crate) struct FragOut {
    frames: Vec<Frame>,
    len: usize,
}

impl FragOut {
    /// Forgets the fragments in use; their buffers stay for the next ones.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// The fragments in use, in the order they were written.
    pub(crate) fn frames(&self) -> &[Frame] {
        self.frames.get(..self.len).unwrap_or_default()
    }

    /// The fragments in use, mutably (a caller may swap its own buffers in).
    pub(crate) fn frames_mut(&mut self) -> &mut [Frame] {
        self.frames.get_mut(..self.len).unwrap_or_default()
    }

    /// Takes the next frame of the pool (growing it on first use) loaded with `head` and `body`.
    fn push(&mut self, headroom: usize, head: &[u8], body: &[u8]) -> Result<&mut Frame, XmitError> {
        if self.len == self.frames.len() {
            self.frames.push(Frame::with_capacity(headroom + head.len() + body.len()));
        }
        let f = self.frames.get_mut(self.len).ok_or(XmitError::Bounds)?;
        self.len += 1;
        f.load(headroom, head);
        if !f.insert(head.len(), body) {
            return Err(XmitError::Bounds);
        }
        Ok(f)
    }

    /// Drops the fragments pushed after the first `keep` (a datagram that failed halfway).
    fn truncate(&mut self, keep: usize) {
        self.len = self.len.min(keep);
    }

    /// How many fragments were pushed after the first `start` (at most 8 191: a 64 KiB
    /// datagram in 8-byte pieces), or, should that not fit, none.
    fn count_since(&mut self, start: usize) -> Result<u16, XmitError> {
        let n = u16::try_from(self.len.saturating_sub(start));
        if n.is_err() {
            self.truncate(start);
        }
        n.map_err(|_| XmitError::Bounds)
    }
}

/// Payload bytes of the next fragment (`ip_frag_next`, `ip6_frag_next`): as many as fit, cut to
/// a multiple of 8 unless they are the last.
fn chunk(left: usize, room: usize) -> usize {
    if left > room {
        room & !7
    } else {
        left
    }
}

/// Splits the IPv4 datagram at offset `l3` of `frame` into fragments of at most `mtu` bytes, as
/// `ip_do_fragment` does: payload cut at multiples of 8 bytes, the header repeated with the same
/// ID and DF bit, MF on all but the last, the offset in 8-byte units, the total length and
/// checksum of each fragment. The first fragment replaces the datagram in `frame`; the others
/// are appended to `out`, whose frames get the same link header. Returns how many went to `out`.
///
/// # Errors
/// [`XmitError::Bounds`] when the header has options (the tunnel writes none), the MTU leaves no
/// room for 8 bytes of payload, or the frame does not hold the datagram; `out` is then as it was.
pub(crate) fn fragment_v4(frame: &mut Frame, l3: usize, mtu: u16, out: &mut FragOut) -> Result<u16, XmitError> {
    let data = frame.data();
    let ihl = usize::from(field::byte(data, l3).ok_or(XmitError::Bounds)? & 0x0f) * 4;
    let total = usize::from(field::be16(data, l3 + field::V4_TOTAL_LEN).ok_or(XmitError::Bounds)?);
    let flags = field::be16(data, l3 + field::V4_FLAGS).ok_or(XmitError::Bounds)?;
    let room = usize::from(mtu).checked_sub(ihl).filter(|r| *r >= 8).ok_or(XmitError::Bounds)?;
    if ihl != 20 || total < ihl || data.len() < l3 + total || l3 > MAX_L2 {
        return Err(XmitError::Bounds);
    }
    let mut head = [0u8; MAX_L2 + 20];
    let head = head.get_mut(..l3 + ihl).ok_or(XmitError::Bounds)?;
    head.copy_from_slice(data.get(..l3 + ihl).ok_or(XmitError::Bounds)?);
    let (df, last_flags) = (flags & V4_DF, flags & V4_MF);
    let first = chunk(total - ihl, room);
    let start = out.len;
    let mut offset = first;
    while offset < total - ihl {
        let len = chunk(total - ihl - offset, room);
        let body = frame.data().get(l3 + ihl + offset..l3 + ihl + offset + len).ok_or(XmitError::Bounds);
        let more = if offset + len < total - ihl { V4_MF } else { last_flags };
        let word = df | more | (offset >> 3) as u16;
        let written = body.and_then(|b| out.push(frame.headroom(), head, b)).and_then(|f| {
            f.port = frame.port;
            set_v4_fields(f.data_mut(), l3, (ihl + len) as u16, word)
        });
        if let Err(e) = written {
            out.truncate(start);
            return Err(e);
        }
        offset += len;
    }
    let more = if first < total - ihl { V4_MF } else { last_flags };
    frame.truncate(l3 + ihl + first);
    if let Err(e) = set_v4_fields(frame.data_mut(), l3, (ihl + first) as u16, df | more) {
        out.truncate(start);
        return Err(e);
    }
    out.count_since(start)
}

/// Writes a fragment's total length and flags/offset word, then its header checksum.
fn set_v4_fields(data: &mut [u8], l3: usize, total: u16, word: u16) -> Result<(), XmitError> {
    super::ok(field::set_be16(data, l3 + field::V4_TOTAL_LEN, total))?;
    super::ok(field::set_be16(data, l3 + field::V4_FLAGS, word))?;
    super::ok(field::set_be16(data, l3 + field::V4_CSUM, 0))?;
    let c = csum::checksum(data.get(l3..l3 + 20).ok_or(XmitError::Bounds)?);
    super::ok(field::set_be16(data, l3 + field::V4_CSUM, c))
}

/// Splits the IPv6 packet at offset `l3` of `frame` (a fixed header and its payload, as the
/// tunnel writes it) into fragments of at most `mtu` bytes, as `ip6_fragment` does: each gets the
/// header with next header 44 and a fragment header carrying the original next header, the
/// offset, MF on all but the last and identification `id`; payload cut at multiples of 8 bytes.
/// The first fragment replaces the packet in `frame`; the others are appended to `out`. Returns
/// how many went to `out`.
///
/// # Errors
/// [`XmitError::Bounds`] when the MTU leaves no room for 8 bytes of payload, the frame lacks 8
/// bytes of headroom or does not hold the packet; `out` is then as it was.
pub(crate) fn fragment_v6(
    frame: &mut Frame,
    l3: usize,
    mtu: u16,
    id: u32,
    out: &mut FragOut,
) -> Result<u16, XmitError> {
    let data = frame.data();
    let payload = usize::from(field::be16(data, l3 + field::V6_PAYLOAD_LEN).ok_or(XmitError::Bounds)?);
    let next = field::byte(data, l3 + field::V6_NEXT).ok_or(XmitError::Bounds)?;
    let room = usize::from(mtu).checked_sub(V6_LEN + V6_FRAG_LEN).filter(|r| *r >= 8).ok_or(XmitError::Bounds)?;
    if data.len() < l3 + V6_LEN + payload || l3 > MAX_L2 || frame.headroom() < V6_FRAG_LEN {
        return Err(XmitError::Bounds);
    }
    let mut head = [0u8; MAX_L2 + V6_LEN + V6_FRAG_LEN];
    let head = head.get_mut(..l3 + V6_LEN + V6_FRAG_LEN).ok_or(XmitError::Bounds)?;
    super::ok(field::set_bytes(head, 0..l3 + V6_LEN, data.get(..l3 + V6_LEN).ok_or(XmitError::Bounds)?))?;
    super::ok(field::set_byte(head, l3 + field::V6_NEXT, ipproto::FRAGMENT))?;
    super::ok(field::set_byte(head, l3 + V6_LEN, next))?;
    super::ok(field::set_be32(head, l3 + V6_LEN + 4, id))?;
    let first = chunk(payload, room);
    let start = out.len;
    let mut offset = first;
    while offset < payload {
        let len = chunk(payload - offset, room);
        let body = frame.data().get(l3 + V6_LEN + offset..l3 + V6_LEN + offset + len).ok_or(XmitError::Bounds);
        let more = if offset + len < payload { V6_MF } else { 0 };
        let written = body.and_then(|b| out.push(frame.headroom(), head, b)).and_then(|f| {
            f.port = frame.port;
            set_v6_fields(f.data_mut(), l3, len, offset as u16 | more)
        });
        if let Err(e) = written {
            out.truncate(start);
            return Err(e);
        }
        offset += len;
    }
    // The first fragment: the link and IPv6 headers move 8 bytes to the front, the fragment
    // header goes between them and the payload.
    let word = if first < payload { V6_MF } else { 0 };
    let done = if frame.push_front(V6_FRAG_LEN) {
        frame.truncate(l3 + V6_LEN + V6_FRAG_LEN + first);
        super::ok(field::set_bytes(frame.data_mut(), 0..head.len(), head))
            .and_then(|()| set_v6_fields(frame.data_mut(), l3, first, word))
    } else {
        Err(XmitError::Bounds)
    };
    if let Err(e) = done {
        out.truncate(start);
        return Err(e);
    }
    out.count_since(start)
}

/// Writes a fragment's payload length (fragment header included) and offset word.
fn set_v6_fields(data: &mut [u8], l3: usize, len: usize, word: u16) -> Result<(), XmitError> {
    super::ok(field::set_be16(data, l3 + field::V6_PAYLOAD_LEN, (V6_FRAG_LEN + len) as u16))?;
    super::ok(field::set_be16(data, l3 + V6_LEN + 2, word))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used)]

    use super::*;

    /// An Ethernet frame holding an IPv4 datagram (no DF, ID 0x1234, protocol 4) with `n`
    /// payload bytes counting up.
    fn v4(n: usize) -> Frame {
        let mut b = alloc::vec![0u8; 14 + 20 + n];
        b[12..14].copy_from_slice(&[8, 0]);
        b[14] = 0x45;
        b[16..18].copy_from_slice(&((20 + n) as u16).to_be_bytes());
        b[18..20].copy_from_slice(&[0x12, 0x34]);
        b[22] = 64;
        b[23] = ipproto::IPIP;
        b[26..30].copy_from_slice(&[192, 0, 2, 1]);
        b[30..34].copy_from_slice(&[192, 0, 2, 11]);
        let c = csum::checksum(&b[14..34]);
        b[24..26].copy_from_slice(&c.to_be_bytes());
        for (i, x) in b[34..].iter_mut().enumerate() {
            *x = i as u8;
        }
        Frame::new(64, &b)
    }

    #[test]
    fn the_chunk_rule_of_ip_frag_next() {
        assert_eq!(chunk(1500, 1480), 1480);
        assert_eq!(chunk(20, 1480), 20);
        assert_eq!(chunk(100, 51), 48, "cut to a multiple of 8 unless it is the last");
        assert_eq!(chunk(51, 51), 51);
    }

    #[test]
    fn an_ipv4_datagram_is_cut_at_multiples_of_8_with_its_id_repeated() {
        let mut f = v4(1000);
        let original = f.data().to_vec();
        let mut out = FragOut::default();
        assert_eq!(fragment_v4(&mut f, 14, 300, &mut out), Ok(3));
        // 1000 payload bytes, 280 per fragment: 280, 280, 280, 160.
        let all: Vec<&[u8]> = core::iter::once(f.data()).chain(out.frames().iter().map(Frame::data)).collect();
        let mut payload = Vec::new();
        for (i, d) in all.iter().enumerate() {
            let h = &d[14..34];
            assert_eq!(&d[..14], &original[..14], "the link header on every fragment");
            assert_eq!(csum::checksum(h), 0, "a valid header checksum");
            assert_eq!(&h[4..6], &[0x12, 0x34], "the same ID");
            let word = u16::from_be_bytes([h[6], h[7]]);
            assert_eq!(usize::from(word & 0x1fff) * 8, i * 280);
            assert_eq!(word & V4_MF != 0, i < 3);
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            assert_eq!(total, d.len() - 14);
            assert!(total <= 300);
            payload.extend_from_slice(&d[34..]);
        }
        assert_eq!(payload, &original[34..], "the payload in order");
    }

    #[test]
    fn what_fits_or_cannot_be_cut_is_refused_and_leaves_the_pool_alone() {
        let mut out = FragOut::default();
        assert_eq!(fragment_v4(&mut v4(1000), 14, 27, &mut out), Err(XmitError::Bounds), "no room for 8 bytes");
        let mut f = v4(1000);
        f.truncate(500);
        assert_eq!(fragment_v4(&mut f, 14, 300, &mut out), Err(XmitError::Bounds), "a truncated datagram");
        assert!(out.frames().is_empty());
    }
}
