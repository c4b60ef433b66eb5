//! Internet checksums: full computation and RFC 1624 incremental updates (`HC' = ~(~HC + ~m + m')`);
//! and SCTP's CRC32c (RFC 9260 appendix A), which has no incremental form.

/// Adds `data` as big-endian 16-bit words to a 32-bit one's-complement accumulator.
pub(crate) fn add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let [a, b] = c {
            sum = sum.wrapping_add(u32::from(u16::from_be_bytes([*a, *b])));
        }
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    // Keep the accumulator from overflowing on long inputs.
    (sum & 0xffff) + (sum >> 16)
}

/// Folds an accumulator to 16 bits and complements it: the checksum field's value.
pub(crate) fn finish(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum of `data` alone.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    finish(add(0, data))
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word changed from `old` to `new`.
#[inline]
pub(crate) fn update16(check: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    finish(sum)
}

/// The checksum after a run of bytes (even length: an address) changed from `old` to `new`.
#[inline]
pub(crate) fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    apply(check, delta(old, new))
}

/// What a run of bytes (even length, at most an IPv6 address) changing from `old` to `new` adds
/// to every checksum covering it: `~m + m'` of RFC 1624 eqn. 3 over its 16-bit words, unfolded.
/// A rewrite that fixes several checksums for one change computes it once.
#[inline]
pub(crate) fn delta(old: &[u8], new: &[u8]) -> u32 {
    let mut sum = 0u32;
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        if let ([o0, o1], [n0, n1]) = (o, n) {
            sum += u32::from(!u16::from_be_bytes([*o0, *o1]));
            sum += u32::from(u16::from_be_bytes([*n0, *n1]));
        }
    }
    sum
}

/// The checksum `check` after a change whose [`delta`] is `delta`.
#[inline]
pub(crate) fn apply(check: u16, delta: u32) -> u16 {
    finish(u32::from(!check) + delta)
}

/// The CRC32c (Castagnoli, as iSCSI) the `crc` crate computes: SCTP's checksum.
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// SCTP's checksum of a whole SCTP packet `sctp` (common header and chunks) as
/// `sctp_compute_cksum` computes it: the CRC32c of the packet with its checksum field read as
/// zero, in the byte order the field holds it (little-endian). `None` when the packet is shorter
/// than its common header.
pub(crate) fn sctp(sctp: &[u8]) -> Option<[u8; 4]> {
    let (head, rest) = (sctp.get(..8)?, sctp.get(12..)?);
    let mut d = CRC32C.digest();
    d.update(head);
    d.update(&[0; 4]);
    d.update(rest);
    Some(d.finalize().to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn incremental_equals_full() {
        let mut data = [0x45u8, 0, 0, 0x2c, 0x10, 0x01, 0x40, 0, 0x3f, 6, 0, 0, 198, 51, 100, 2, 203, 0, 113, 100];
        let c0 = checksum(&data);
        let old = [data[16], data[17], data[18], data[19]];
        let new = [192u8, 0, 2, 13];
        data[16..20].copy_from_slice(&new);
        assert_eq!(update_bytes(c0, &old, &new), checksum(&data));
        let c1 = checksum(&data);
        data[8] = 0x3e;
        assert_eq!(update16(c1, 0x3f06, 0x3e06), checksum(&data));
    }

    /// RFC 3720 appendix B.4: the CRC32c of 32 zero bytes is stored as `aa 36 91 8a`.
    #[test]
    fn crc32c_of_32_zero_bytes() {
        assert_eq!(sctp(&[0; 32]), Some([0xaa, 0x36, 0x91, 0x8a]));
        assert_eq!(sctp(&[0; 11]), None);
    }
}
