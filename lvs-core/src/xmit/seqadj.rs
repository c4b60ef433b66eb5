//! Sequence-number offsets of a TCP connection whose byte stream the director changed, as the
//! kernel's NAT keeps them (`struct nf_ct_seqadj`, `nf_ct_seq_adjust` and `nf_ct_sack_adjust`
//! in `net/netfilter/nf_conntrack_seqadj.c`): one [`SeqAdj`] per direction. A segment of that
//! direction has its sequence number moved by the offset; the other direction's
//! acknowledgement and SACK edges are moved back by it. FullNAT's PROXY header uses it (bytes
//! inserted at the start of the client's stream); a SYN proxy splicing two handshakes uses it
//! with the same offset before and after.

use super::{ok, tcpopt, XmitError};
use crate::proto::tcp::flags;
use crate::wire::{csum, field, PacketMeta};

/// The offsets of one direction: segments that start at or before `pos` move by `before`,
/// later ones by `after` (wrapping arithmetic, as sequence numbers are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SeqAdj {
    /// The sequence number where the stream was changed (`correction_pos`).
    pub(crate) pos: u32,
    /// Offset of segments starting at or before `pos` (`offset_before`).
    pub(crate) before: u32,
    /// Offset of segments starting after `pos` (`offset_after`).
    pub(crate) after: u32,
}

/// `after(a, b)` of the kernel: `a` comes later than `b` in sequence space.
pub(crate) fn seq_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

impl SeqAdj {
    /// No offset either side.
    pub(crate) const NONE: SeqAdj = SeqAdj { pos: 0, before: 0, after: 0 };

    /// Whether the offsets change nothing.
    pub(crate) fn is_none(&self) -> bool {
        self.before == 0 && self.after == 0
    }

    /// The sequence number the receiver sees for a segment that starts at `seq`.
    pub(crate) fn seq(&self, seq: u32) -> u32 {
        let off = if seq_after(seq, self.pos) { self.after } else { self.before };
        seq.wrapping_add(off)
    }

    /// The receiver's acknowledgement (or SACK edge) `ack` as the sender's numbers say it.
    pub(crate) fn ack(&self, ack: u32) -> u32 {
        let off = if seq_after(ack.wrapping_sub(self.before), self.pos) { self.after } else { self.before };
        ack.wrapping_sub(off)
    }
}

/// The sequence and acknowledgement numbers of the TCP segment `meta` describes.
pub(crate) fn seq_ack(data: &[u8], meta: &PacketMeta) -> Option<(u32, u32)> {
    let l4 = usize::from(meta.l4);
    Some((field::be32(data, l4 + field::TCP_SEQ)?, field::be32(data, l4 + field::TCP_ACK)?))
}

/// Moves a TCP segment's sequence number by `seq` (this direction's offsets) and its
/// acknowledgement and SACK blocks back by `ack` (the other direction's), keeping the TCP
/// checksum right incrementally. `seq_at_pos_after` sends a segment that starts exactly at
/// `seq.pos` with the `after` offset (the inserted bytes could not go in front of it).
///
/// # Errors
/// [`XmitError::Bounds`] when the frame does not hold the TCP header `meta` describes.
pub(crate) fn adjust(
    data: &mut [u8],
    meta: &PacketMeta,
    seq: &SeqAdj,
    ack: &SeqAdj,
    seq_at_pos_after: bool,
) -> Result<(), XmitError> {
    let l4 = usize::from(meta.l4);
    let mut sum = field::be16(data, l4 + field::TCP_CSUM).ok_or(XmitError::Bounds)?;
    if !seq.is_none() {
        let old = field::be32(data, l4 + field::TCP_SEQ).ok_or(XmitError::Bounds)?;
        let new = if seq_at_pos_after && old == seq.pos { old.wrapping_add(seq.after) } else { seq.seq(old) };
        sum = set32(data, l4 + field::TCP_SEQ, old, new, sum)?;
    }
    if !ack.is_none() && meta.tcp_flags & flags::ACK != 0 {
        let old = field::be32(data, l4 + field::TCP_ACK).ok_or(XmitError::Bounds)?;
        sum = set32(data, l4 + field::TCP_ACK, old, ack.ack(old), sum)?;
        sum = sack(data, l4, ack, sum)?;
    }
    ok(field::set_be16(data, l4 + field::TCP_CSUM, sum))
}

/// Writes a 32-bit field and returns the checksum updated for it.
fn set32(data: &mut [u8], off: usize, old: u32, new: u32, sum: u16) -> Result<u16, XmitError> {
    ok(field::set_be32(data, off, new))?;
    Ok(csum::update_bytes(sum, &old.to_be_bytes(), &new.to_be_bytes()))
}

/// `nf_ct_sack_adjust`: every edge of every SACK option moved back by `adj`. Options are
/// 16-bit aligned only by luck, so each edge is updated on its own bytes with the checksum
/// taken over the aligned words it touches.
fn sack(data: &mut [u8], l4: usize, adj: &SeqAdj, mut sum: u16) -> Result<u16, XmitError> {
    // The 40 bytes of option space hold at most four SACK options (10 bytes or more each).
    let mut found = [(0usize, 0usize); 4];
    let mut n = 0;
    tcpopt::walk(data, l4, |kind, i, len| {
        if kind == tcpopt::SACK && (len - 2) % 8 == 0 {
            if let Some(slot) = found.get_mut(n) {
                *slot = (i, len);
                n += 1;
            }
        }
    })?;
    for &(i, len) in found.get(..n).unwrap_or_default() {
        let mut e = i + 2;
        while e < i + len {
            sum = edge(data, l4, e, adj, sum)?;
            e += 4;
        }
    }
    Ok(sum)
}

/// One SACK edge at byte `e` of the frame (the TCP header starts at `l4`).
fn edge(data: &mut [u8], l4: usize, e: usize, adj: &SeqAdj, sum: u16) -> Result<u16, XmitError> {
    rewrite32(data, l4, e, |v| adj.ack(v), sum)
}

/// Replaces the 32-bit field at byte `e` of a TCP header starting at `l4` by `f` of it and
/// returns the checksum updated for it. Options are 16-bit aligned only by luck: at an odd
/// offset the update runs over the three aligned words that hold the field's four bytes.
pub(crate) fn rewrite32(
    data: &mut [u8],
    l4: usize,
    e: usize,
    f: impl Fn(u32) -> u32,
    sum: u16,
) -> Result<u16, XmitError> {
    let old = field::be32(data, e).ok_or(XmitError::Bounds)?;
    let new = f(old);
    if (e - l4) % 2 == 0 {
        return set32(data, e, old, new, sum);
    }
    let w = e - 1;
    let before = field::bytes(data, w..w + 6).ok_or(XmitError::Bounds)?;
    let mut old_words = [0u8; 6];
    old_words.copy_from_slice(before);
    ok(field::set_be32(data, e, new))?;
    let after = field::bytes(data, w..w + 6).ok_or(XmitError::Bounds)?;
    Ok(csum::update_bytes(sum, &old_words, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_before_and_after_the_position() {
        // 57 bytes inserted in front of the segment at 1001 (a PROXY header).
        let a = SeqAdj { pos: 1001, before: 0, after: 57 };
        assert_eq!(a.seq(1000), 1000);
        assert_eq!(a.seq(1001), 1001);
        assert_eq!(a.seq(1101), 1158);
        // The receiver's acks: up to the position untouched, beyond it moved back.
        assert_eq!(a.ack(1001), 1001);
        assert_eq!(a.ack(1058), 1001);
        assert_eq!(a.ack(1158), 1101);
        // Across the wrap of sequence space.
        let w = SeqAdj { pos: u32::MAX - 1, before: 0, after: 10 };
        assert_eq!(w.seq(3), 13);
        assert_eq!(w.ack(13), 3);
    }
}
