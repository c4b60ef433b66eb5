//! The tagged hash index of the connection table: the buckets of `ip_vs_conn_tab` (looked up by
//! `__ip_vs_conn_in_get` after `ip_vs_conn_hashkey_param`), kept as one memory access per probe.
//!
//! The kernel chains `ip_vs_conn`s through `hlist` buckets, so every step of a probe is a
//! pointer to follow. Here the index is an array of 64-byte groups, each one cache line of 16
//! `u32` words:
//!
//! - word 0 counts the entries that probed past this group because it was full (the
//!   "outbound overflow count" of Facebook's F14 tables);
//! - words 1..16 are slots: 0 when empty, else `tag << hbits | (handle + 1)`, where the tag is
//!   the top `32 - hbits` bits of the key's 64-bit hash and `hbits` is the fewest bits that
//!   hold every handle plus one for the table's maximum ([`MAX_ENTRIES`] keeps at least 8 tag
//!   bits).
//!
//! A probe takes the group the hash's low 32 bits name (multiply-shift range reduction,
//! `hv · n >> 32` for `n` groups, so `n` need not be a power of two), compares the tags of its
//! 15 slots at once, and only for a matching tag reads the entry (a false match costs one
//! entry read in 2^tag-bits per slot compared). When the group's overflow count is 0 the probe
//! ends there: a miss in a group that never overflowed reads one cache line and no entry.
//! Otherwise it goes on to the group `1, 3, 6, 10, …` groups past the home one (triangular
//! steps), at most [`MAX_PROBE`] groups in all. Those steps visit distinct groups in any array
//! of more than 120 groups (the 16 steps differ by at most 120) and in a power-of-two array of
//! any size, which is why an index of up to 128 groups keeps a power of two.
//!
//! Why this shape:
//!
//! - **One line per probe.** A bucket holds the tag beside the handle, so the line read before
//!   the entry is the only index access (`hashbrown` reads its control bytes, then the handle
//!   stored apart from them, then the entry).
//! - **Fewer bytes.** 4 bytes per slot plus a sixteenth for the overflow word, where
//!   `hashbrown` keeps a control byte beside each 4-byte handle.
//! - **Deletion without tombstones.** Removing an entry clears its slot and decrements the
//!   overflow counts of the groups its insertion passed, so lookups never meet dead slots and
//!   the index never needs a rehash to clean up. Backward-shift deletion would need each
//!   moved word's home group, which a word does not keep (it would mean reading entries).
//! - **Triangular steps, not the next line.** With linear steps, groups that overflow merge
//!   into runs (primary clustering): measured with the seeded hash, 200,000 keys at 3/4 of the
//!   slots already put one key 8 groups past its home. Triangular steps keep the runs of
//!   different homes apart, so a key lands `k` groups on only when `k` groups of its own
//!   sequence were full.
//! - **Sized to fit, grown by doubling.** [`TagIndex::reserve`] makes just the groups that
//!   hold its count at 5/6 of their slots (room for 1,065,536 entries: 85,243 groups, 5.5
//!   bytes an entry at a million, where the next power of two took 8.4). An index grows by doubling when an insert
//!   would fill more than 7/8 of the slots, and by an eighth when it finds no free slot
//!   within [`MAX_PROBE`] groups of its home. The hash is ahash seeded by
//!   the caller, so a client cannot aim keys at one group; if one ever did, probes stay bounded
//!   anyway: growth stops at four times the size the table's maximum needs at 7/8, and beyond
//!   that an insert that finds no room fails (the table reports itself full, a counted drop).
//!   Growing rehashes every entry (reading each once); [`TagIndex::reserve`] does it up front.

use alloc::vec;
use alloc::vec::Vec;

/// The most entries a table can address: handles need `hbits` ≤ 24 bits so that at least 8
/// bits of each word are left for the tag, and the entry's 24-bit timer links keep the 8,193
/// values above the handles for "none" and the wheel's slot marks.
pub(crate) const MAX_ENTRIES: usize = (1 << 24) - 1 - 8192;

/// The most groups a probe visits, and how many steps from its home group an insert may place
/// an entry.
pub(crate) const MAX_PROBE: usize = 16;

/// Slots in a group (word 0 is the overflow count).
const SLOTS: usize = 15;

/// One cache line of the index: the overflow count, then 15 slots.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Group([u32; SLOTS + 1]);

impl Group {
    /// A bit per slot whose word carries `tag` (bit `i` for word `i`; bit 0, the overflow
    /// count, never set). Written as one pass over the line so the compiler can compare all
    /// 16 words together.
    #[inline]
    fn matching(&self, tag: u32, hbits: u32) -> u32 {
        let mut m = 0u32;
        for (i, w) in self.0.iter().enumerate() {
            m |= u32::from(*w != 0 && *w >> hbits == tag) << i;
        }
        m & !1
    }

    /// The first empty slot, if any.
    fn vacant(&self) -> Option<usize> {
        self.0.iter().skip(1).position(|w| *w == 0).map(|i| i + 1)
    }
}

/// What the home group alone says about a key (a burst's first pass reads only that line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peek {
    /// The first handle in the home group whose tag matches: the entry to compare first.
    Candidate(u32),
    /// No slot of the home group matches and nothing overflowed past it: the key is absent.
    Absent,
    /// No slot of the home group matches but entries overflowed past it: probe on.
    Farther,
}

/// A hash index of `u32` handles with tags (see the module doc).
pub(crate) struct TagIndex {
    /// The groups (see [`groups_for`]), or none before the first insert.
    groups: Vec<Group>,
    /// Handles filed.
    live: usize,
    /// Bits of a word that hold `handle + 1`.
    hbits: u32,
    /// The most groups growth may reach.
    ceiling: usize,
}

impl TagIndex {
    /// An empty index for handles below `max` (at most [`MAX_ENTRIES`]; larger is capped).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.min(MAX_ENTRIES);
        let hbits = (usize::BITS - max.leading_zeros()).max(1);
        TagIndex { groups: Vec::new(), live: 0, hbits, ceiling: groups_for(max).saturating_mul(4) }
    }

    /// Handles filed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether the index has no groups yet (nothing filed, nothing reserved).
    pub(crate) fn is_unsized(&self) -> bool {
        self.groups.is_empty()
    }

    /// Bytes held.
    pub(crate) fn allocation_size(&self) -> usize {
        self.groups.capacity() * core::mem::size_of::<Group>()
    }

    /// The tag a word keeps of hash `hv`.
    #[inline]
    fn tag(&self, hv: u64) -> u32 {
        (hv >> (32 + self.hbits)) as u32
    }

    /// The home group of `hv`, if the index has any groups.
    #[inline]
    fn home(&self, hv: u64) -> Option<&Group> {
        self.groups.get(home_of(hv, self.groups.len()))
    }

    /// The address of `hv`'s home group, for a prefetch: nothing is read.
    #[inline]
    pub(crate) fn home_line(&self, hv: u64) -> Option<*const u8> {
        self.home(hv).map(|g| core::ptr::from_ref(g).cast())
    }

    /// Reads the home group of `hv`: the first candidate handle, or whether to look farther.
    #[inline]
    pub(crate) fn peek(&self, hv: u64) -> Peek {
        let Some(g) = self.home(hv) else { return Peek::Absent };
        let m = g.matching(self.tag(hv), self.hbits);
        if m != 0 {
            let w = g.0.get(m.trailing_zeros() as usize).copied().unwrap_or(0);
            Peek::Candidate(self.handle(w))
        } else if g.0[0] == 0 {
            Peek::Absent
        } else {
            Peek::Farther
        }
    }

    /// The handle in word `w` (a filled slot).
    #[inline]
    fn handle(&self, w: u32) -> u32 {
        (w & ((1 << self.hbits) - 1)).wrapping_sub(1)
    }

    /// The first handle filed under hash `hv` for which `is` holds; `is` is asked only about
    /// handles whose tag matches.
    #[inline]
    pub(crate) fn find(&self, hv: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = self.tag(hv);
        for at in steps(hv, self.groups.len()) {
            let g = self.groups.get(at)?;
            let mut m = g.matching(tag, self.hbits);
            while m != 0 {
                let w = g.0.get(m.trailing_zeros() as usize).copied().unwrap_or(0);
                let id = self.handle(w);
                if is(id) {
                    return Some(id);
                }
                m &= m - 1;
            }
            if g.0[0] == 0 {
                return None;
            }
        }
        None
    }

    /// Where handle `id` filed under `hv` sits: steps taken past its home, group and slot.
    fn locate(&self, hv: u64, id: u32) -> Option<(usize, usize, usize)> {
        let want = self.tag(hv) << self.hbits | (id.wrapping_add(1));
        for (k, at) in steps(hv, self.groups.len()).enumerate() {
            let g = self.groups.get(at)?;
            if let Some(slot) = g.0.iter().skip(1).position(|w| *w == want) {
                return Some((k, at, slot + 1));
            }
            if g.0[0] == 0 {
                return None;
            }
        }
        None
    }

    /// How many steps past its home group handle `id` filed under `hv` sits (0 in its home
    /// group).
    #[cfg(test)]
    pub(crate) fn distance(&self, hv: u64, id: u32) -> Option<usize> {
        self.locate(hv, id).map(|(steps, _, _)| steps)
    }

    /// Files handle `id` (below the index's maximum, not yet filed) under hash `hv`, growing
    /// as needed; `rehash` gives the hash of any handle already filed. `false` when the index
    /// can grow no further and finds no room within [`MAX_PROBE`] groups (nothing changes).
    pub(crate) fn insert(&mut self, hv: u64, id: u32, rehash: impl Fn(u32) -> u64) -> bool {
        let word = self.tag(hv) << self.hbits | id.wrapping_add(1);
        if (self.live + 1) * 8 > self.groups.len() * SLOTS * 7 {
            let grown = (self.groups.len() * 2).max(1);
            if grown <= self.ceiling {
                self.rebuild(grown, &rehash);
            }
        }
        loop {
            if place(&mut self.groups, hv, word) {
                self.live += 1;
                return true;
            }
            let grown = roomier(self.groups.len());
            if grown > self.ceiling || !self.rebuild(grown, &rehash) {
                return false;
            }
        }
    }

    /// Takes handle `id` filed under `hv` out; `false` if it was not there.
    pub(crate) fn remove(&mut self, hv: u64, id: u32) -> bool {
        let Some((k, at, slot)) = self.locate(hv, id) else { return false };
        if let Some(w) = self.groups.get_mut(at).and_then(|g| g.0.get_mut(slot)) {
            *w = 0;
        }
        for g in steps(hv, self.groups.len()).take(k) {
            if let Some(c) = self.groups.get_mut(g) {
                c.0[0] = c.0[0].saturating_sub(1);
            }
        }
        self.live -= 1;
        true
    }

    /// Grows so that `n` handles fit without growing again (up to the ceiling).
    pub(crate) fn reserve(&mut self, n: usize, rehash: impl Fn(u32) -> u64) {
        let want = groups_reserved(n).min(self.ceiling);
        if want > self.groups.len() {
            self.rebuild(want, &rehash);
        }
    }

    /// Refiles every handle in `groups` groups, growing again ([`roomier`]) while one does
    /// not fit within [`MAX_PROBE`] groups of its home; `false` (and nothing changed) past
    /// the ceiling.
    fn rebuild(&mut self, mut groups: usize, rehash: &impl Fn(u32) -> u64) -> bool {
        'size: while groups <= self.ceiling {
            let mut fresh = vec![Group::default(); groups];
            for g in &self.groups {
                for w in g.0.iter().skip(1).filter(|w| **w != 0) {
                    let hv = rehash(self.handle(*w));
                    let word = self.tag(hv) << self.hbits | (*w & ((1 << self.hbits) - 1));
                    if !place(&mut fresh, hv, word) {
                        groups = roomier(groups);
                        continue 'size;
                    }
                }
            }
            self.groups = fresh;
            return true;
        }
        false
    }
}

/// Puts `word` in the first empty slot within [`MAX_PROBE`] groups of `hv`'s home in `groups`,
/// counting the overflow in each full group passed; `false` (and
/// nothing changed) when there is none.
fn place(groups: &mut [Group], hv: u64, word: u32) -> bool {
    let n = groups.len();
    for (k, at) in steps(hv, n).enumerate() {
        let Some(g) = groups.get_mut(at) else { return false };
        if let Some(slot) = g.vacant() {
            g.0[slot] = word;
            for p in steps(hv, n).take(k) {
                if let Some(c) = groups.get_mut(p) {
                    c.0[0] = c.0[0].saturating_add(1);
                }
            }
            return true;
        }
    }
    false
}

/// The home group of hash `hv` among `n` groups: its low 32 bits scaled to `0..n`
/// (multiply-shift range reduction, Lemire 2019), no division.
#[inline]
fn home_of(hv: u64, n: usize) -> usize {
    (((hv & 0xffff_ffff) * n as u64) >> 32) as usize
}

/// The groups a probe for hash `hv` visits in an array of `n` groups (or 0 for none): its
/// home, then 1, 3, 6, … groups on (modulo `n`), [`MAX_PROBE`] in all.
#[inline]
fn steps(hv: u64, n: usize) -> impl Iterator<Item = usize> {
    let home = home_of(hv, n);
    (0..if n == 0 { 0 } else { MAX_PROBE }).map(move |k| {
        let at = home + k * (k + 1) / 2;
        // A division only where the step wraps around the array.
        if at < n {
            at
        } else {
            at % n
        }
    })
}

/// The next size of an index of `n` groups that found no room within [`MAX_PROBE`] groups of
/// a key's home while under 7/8 full: an eighth more (twice as many up to 128 groups, which
/// stay a power of two). At 7/8 of the slots about one key in 200,000 finds its 16 groups
/// full; doubling for it would double the index for one key.
fn roomier(n: usize) -> usize {
    if n < 128 {
        (n * 2).max(1)
    } else {
        n + n / 8
    }
}

/// The groups that hold `n` handles at no more than 7/8 of their slots (the most an index
/// fills before it grows): exactly that many beyond 128 (where triangular steps visit distinct
/// groups in an array of any size), the next power of two up to it.
fn groups_for(n: usize) -> usize {
    groups_at(n, 7, 8)
}

/// The groups [`TagIndex::reserve`] makes for `n` handles: enough that they fill no more than
/// 5/6 of the slots. At 7/8 about one key in 200,000 (seeded hash, measured) finds all 16
/// groups of its probe full and makes the index grow; at 5/6 the longest probe of 200,000 keys
/// went 8 groups past home, so a reserved index is not expected to grow.
fn groups_reserved(n: usize) -> usize {
    groups_at(n, 5, 6)
}

/// The groups that hold `n` handles at no more than `num/den` of their slots (see
/// [`groups_for`]).
fn groups_at(n: usize, num: usize, den: usize) -> usize {
    let g = n.saturating_mul(den) / num / SLOTS + 1;
    if g <= 128 {
        g.next_power_of_two()
    } else {
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    /// One step of a history run against the index and a model.
    #[derive(Clone, Debug)]
    enum Op {
        /// File the next fresh handle under a hash built from a tag and a home.
        Insert { tag: u64, home: u64 },
        /// Take out the filed handle at this position of the model (modulo its size).
        Remove(usize),
        /// Look up a hash built from a tag and a home for every handle, filed or not.
        Lookup { tag: u64, home: u64 },
    }

    /// Handles below this; `hbits` is 11, so the tag is bits 43.. of the hash.
    const MAX: usize = 2047;

    /// A hash whose tag is `tag` and whose home group is the `home`/256th part of the array
    /// (bits 24..32); few distinct values of each, so that tags and homes collide often.
    fn hv(tag: u64, home: u64) -> u64 {
        tag << 43 | home << 24
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..4, 0u64..256).prop_map(|(tag, home)| Op::Insert { tag, home }),
            2 => any::<usize>().prop_map(Op::Remove),
            2 => (0u64..4, 0u64..256).prop_map(|(tag, home)| Op::Lookup { tag, home }),
        ]
    }

    proptest! {
        /// Under random inserts, removals (growth included) and lookups with colliding tags and
        /// homes, the index files exactly what a map of handle → hash holds: every filed handle
        /// is found under its hash and no other handle is, and the count agrees.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec(op(), 1..1500)) {
            let mut idx = TagIndex::new(MAX);
            let mut model: BTreeMap<u32, u64> = BTreeMap::new();
            let mut next = 0u32;
            for op in ops {
                match op {
                    Op::Insert { tag, home } => {
                        if next as usize >= MAX {
                            continue;
                        }
                        let h = hv(tag, home);
                        let m = &model;
                        prop_assert!(idx.insert(h, next, |i| m[&i]));
                        model.insert(next, h);
                        next += 1;
                    }
                    Op::Remove(i) => {
                        let Some((&id, &h)) = model.iter().nth(i % model.len().max(1)) else { continue };
                        prop_assert!(idx.remove(h, id));
                        prop_assert!(!idx.remove(h, id), "a handle leaves once");
                        model.remove(&id);
                    }
                    Op::Lookup { tag, home } => {
                        // As the table does: the predicate compares the entry's whole key.
                        let h = hv(tag, home);
                        let want: Vec<u32> = model.iter().filter(|(_, v)| **v == h).map(|(k, _)| *k).collect();
                        let got = idx.find(h, |i| model.get(&i) == Some(&h));
                        prop_assert_eq!(got.is_some(), !want.is_empty());
                        prop_assert!(got.is_none_or(|g| want.contains(&g)));
                        for id in 0..next {
                            let filed = want.contains(&id);
                            prop_assert_eq!(idx.find(h, |i| i == id && filed), filed.then_some(id));
                        }
                    }
                }
                prop_assert_eq!(idx.len(), model.len());
            }
            for (&id, &h) in &model {
                prop_assert_eq!(idx.find(h, |i| i == id), Some(id));
                prop_assert!(idx.distance(h, id).is_some_and(|d| d < MAX_PROBE));
            }
        }
    }

    /// A home group names the first handle whose tag matches, says "absent" only when nothing
    /// overflowed past it, and "farther" when a key may sit beyond it.
    #[test]
    fn peek_reads_the_home_group() {
        let mut idx = TagIndex::new(MAX);
        assert_eq!(idx.peek(hv(1, 0)), Peek::Absent);
        let hashes: Vec<u64> = (0..16).map(|i| hv(i, 0)).collect();
        for (id, h) in hashes.iter().enumerate() {
            assert!(idx.insert(*h, id as u32, |i| hashes[i as usize]));
        }
        // One group of 15 slots (16 entries grew it to two groups: home 0 holds 15, the 16th
        // overflowed into group 1).
        assert_eq!(idx.peek(hv(3, 0)), Peek::Candidate(3));
        assert_eq!(idx.peek(hv(15, 0)), Peek::Farther);
        assert_eq!(idx.distance(hv(15, 0), 15), Some(1));
        assert_eq!(idx.peek(hv(99, 128)), Peek::Absent, "group 1 of 2");
        assert!(idx.remove(hv(15, 0), 15));
        assert_eq!(idx.peek(hv(15, 0)), Peek::Absent, "the overflow count went back to 0");
    }

    /// Keys that all share one hash (a flood aimed at one bucket, possible only against a
    /// known seed) fill at most the 15 slots of the [`MAX_PROBE`] groups of their sequence; the next insert fails
    /// without changing anything, growth stops at its ceiling, and every filed key is still
    /// found.
    #[test]
    fn one_hash_fills_a_bounded_run() {
        let mut idx = TagIndex::new(MAX);
        let h = hv(2, 5);
        let filed = (0..300u32).take_while(|id| idx.insert(h, *id, |_| h)).count();
        assert_eq!(filed, SLOTS * MAX_PROBE);
        assert_eq!(idx.len(), filed);
        assert!(idx.allocation_size() <= groups_for(MAX) * 4 * 64);
        for id in 0..filed as u32 {
            assert_eq!(idx.find(h, |i| i == id), Some(id));
        }
        assert_eq!(idx.find(h, |i| i == filed as u32), None);
    }

    /// With the seeded hash of the table, random keys fill an index grown by doubling (to a
    /// power of two) for load alone, and one reserved to the size `groups_reserved` gives
    /// without growing; a probe for a filed key stays short.
    #[test]
    fn seeded_hash_keeps_probes_short() {
        let hasher = ahash::RandomState::with_seeds(11, 22, 33, 44);
        let n: u32 = 200_000;
        let hash = |i: u32| hasher.hash_one(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for reserved in [false, true] {
            let mut idx = TagIndex::new(n as usize);
            if reserved {
                idx.reserve(n as usize, hash);
            }
            for id in 0..n {
                assert!(idx.insert(hash(id), id, hash));
            }
            // Grown: 2^14 groups (load 0.81, 12.2 keys a group). Reserved: 16,001 groups (load
            // 0.83, 12.5 keys a group), not grown.
            let groups = if reserved { groups_reserved(n as usize) } else { 1 << 14 };
            assert_eq!(idx.allocation_size(), groups * 64);
            let mut longest = 0;
            let mut far = 0;
            for id in 0..n {
                let d = idx.distance(hash(id), id).unwrap();
                longest = longest.max(d);
                far += usize::from(d > 0);
            }
            // The Poisson tail of keys a group (P(X > 15) ≈ 0.17 at 12.2, ≈ 0.26 at 13.1)
            // makes some groups overflow, and a few percent of the keys land past their home
            // group; a key lands k steps on only where k groups of its sequence were full, so
            // the longest stays well under the bound.
            assert!(longest < MAX_PROBE, "longest probe {longest} groups past home");
            assert!(far * 10 < n as usize, "{far} keys past their home group");
        }
    }

    /// Beyond 128 groups an index is sized to its count, not to a power of two, and the
    /// steps of a probe visit distinct groups; up to 128 it keeps a power of two.
    #[test]
    fn sizes_fit_the_count() {
        assert_eq!(groups_for(1_065_536), 81_184);
        assert_eq!(groups_reserved(1_065_536), 85_243);
        assert_eq!(groups_for(1000), 128);
        assert_eq!(groups_for(10), 1);
        for n in [1, 2, 8, 64, 128, 129, 1000, 81_184] {
            for hv in [0, 0xffff_ffff, 0x8000_0000, 12_345_678] {
                let mut seen: Vec<usize> = steps(hv, n).collect();
                assert!(seen.iter().all(|g| *g < n));
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), n.min(MAX_PROBE), "{n} groups");
            }
        }
    }
}
