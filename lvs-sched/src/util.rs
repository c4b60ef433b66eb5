//! What several schedulers share (`include/net/ip_vs.h`, `lib/siphash.c`, `include/linux/hash.h`):
//! connection overhead, gcd, the kernel's hash functions and the weighted-least pick.

use lvs_core::dest::{DestId, DestView};
use lvs_core::service::ServiceView;

pub use lvs_core::addr::fold;

/// `ip_vs_dest_conn_overhead`: `active * 256 + inactive`.
pub fn conn_overhead(d: &DestView<'_>) -> i64 {
    (i64::from(d.active()) << 8) + i64::from(d.inactive())
}

/// Greatest common divisor.
pub fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `hash_32(val, bits)`: multiply by the 32-bit golden ratio and keep the top `bits`.
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// The kernel's `hsiphash` of a 4-byte value on 64-bit machines: SipHash-1-3 with a 32-bit
/// result (`lib/siphash.c`).
#[inline]
pub fn hsiphash_u32(v: u32, k: [u64; 2]) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575 ^ k[0],
        0x646f_7261_6e64_6f6d ^ k[1],
        0x6c79_6765_6e65_7261 ^ k[0],
        0x7465_6462_7974_6573 ^ k[1],
    ];
    fn round(s: &mut [u64; 4]) {
        s[0] = s[0].wrapping_add(s[1]);
        s[1] = s[1].rotate_left(13);
        s[1] ^= s[0];
        s[0] = s[0].rotate_left(32);
        s[2] = s[2].wrapping_add(s[3]);
        s[3] = s[3].rotate_left(16);
        s[3] ^= s[2];
        s[0] = s[0].wrapping_add(s[3]);
        s[3] = s[3].rotate_left(21);
        s[3] ^= s[0];
        s[2] = s[2].wrapping_add(s[1]);
        s[1] = s[1].rotate_left(17);
        s[1] ^= s[2];
        s[2] = s[2].rotate_left(32);
    }
    let b = (4u64 << 56) | u64::from(v);
    s[3] ^= b;
    round(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    round(&mut s);
    round(&mut s);
    round(&mut s);
    ((s[0] ^ s[1]) ^ (s[2] ^ s[3])) as u32
}

/// What a hash bucket of `sh`/`mh` yields (`is_unavailable`): `None` for an empty bucket (the
/// lookup stops), `Some(None)` for a server with weight 0 or overloaded, `Some(Some(id))` for a
/// usable one.
pub fn hashed_usable(svc: &ServiceView<'_>, id: Option<DestId>) -> Option<Option<DestId>> {
    let id = id?;
    let d = svc.get(id)?;
    Some((d.weight() > 0 && !d.is_overloaded()).then_some(id))
}

/// Is `d` (overhead `doh`) strictly better than `best` (overhead `loh`) by overhead/weight?
/// Cross-multiplied in 64 bits as the kernel does.
pub fn beats(loh: i64, best: &DestView<'_>, doh: i64, d: &DestView<'_>) -> bool {
    loh * i64::from(d.weight()) > doh * i64::from(best.weight())
}

/// The weighted least-connection pick `wlc` makes and `lblc`/`lblcr` use inside
/// (`ip_vs_wlc_schedule`, `__ip_vs_lblc_schedule`): the first usable server, then any later
/// non-overloaded server with a strictly lower `overhead / weight`.
pub fn weighted_least(svc: &ServiceView<'_>, overhead: impl Fn(&DestView<'_>) -> i64) -> Option<DestId> {
    let mut it = svc.dests();
    let mut best = it.by_ref().find(|d| !d.is_overloaded() && d.weight() > 0)?;
    let mut loh = overhead(&best);
    for d in it {
        if d.is_overloaded() {
            continue;
        }
        let doh = overhead(&d);
        if beats(loh, &best, doh, &d) {
            best = d;
            loh = doh;
        }
    }
    Some(best.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcd_and_hash32() {
        assert_eq!(gcd(4, 6), 2);
        assert_eq!(gcd(0, 5), 5);
        assert_eq!(gcd(7, 0), 7);
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 10), 0);
    }

    /// `lib/siphash_kunit.c` (64-bit): `test_key_hsiphash` and `test_vectors_hsiphash[4]`, the
    /// hash of the bytes 00 01 02 03, which is `hsiphash_1u32(0x03020100)` on little-endian.
    #[test]
    fn hsiphash_matches_the_kernel_test_vector() {
        let k = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        assert_eq!(hsiphash_u32(0x0302_0100, k), 0x88d3_8328);
    }

    proptest::proptest! {
        /// The kernel's 64-bit `hsiphash` is SipHash-1-3 of the value's little-endian bytes, cut
        /// to 32 bits: the same as `siphasher`'s independent implementation for any value and key.
        #[test]
        fn hsiphash_equals_siphasher_1_3(v: u32, k0: u64, k1: u64) {
            use core::hash::Hasher;
            let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
            h.write(&v.to_le_bytes());
            proptest::prop_assert_eq!(hsiphash_u32(v, [k0, k1]), h.finish() as u32);
        }
    }
}
