//! A service's real servers ranked by a scheduler's key and then by list position, kept current
//! by the scheduler ops (`add_dest`, `del_dest`, `upd_dest`, `counts_moved`), so that the
//! server the kernel's linear walk would pick (`ip_vs_lc_schedule`, `ip_vs_wlc_schedule`, ...:
//! the first best in list order) is read off the root of a tournament tree instead of walked
//! for, and a change costs one leaf-to-root path.
//!
//! A server's list position is represented by when it was linked: the kernel links every new
//! server at the head of the list (`list_add_rcu` in `__ip_vs_update_dest`) and never moves one,
//! so a later link means an earlier position.

use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

use lvs_core::dest::{DestId, DestView};
use lvs_core::service::ServiceView;

/// A scheduler's key of a server: `None` when the scheduler may not pick it (weight 0,
/// overloaded, ...), otherwise smaller is better.
pub(crate) type KeyFn<K> = fn(&DestView<'_>) -> Option<K>;

/// `num / den` with `den > 0`, ordered as the kernel compares overheads by weight: `a < b` when
/// `a.num * b.den < b.num * a.den`, in 64 bits (`(__s64)loh * atomic_read(&dest->weight)`).
/// Overheads stay below 2^41 and weights below 2^17, so the products cannot overflow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ratio {
    num: i64,
    den: i64,
}

impl Ratio {
    /// `num / den`; `den` must not be 0 (callers exclude weight 0 first).
    pub(crate) fn new(num: i64, den: u32) -> Self {
        Ratio { num, den: i64::from(den) }
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den))
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ratio {}

/// One linked server.
#[derive(Clone, Copy, Debug)]
struct Leaf<K> {
    id: DestId,
    /// Link stamp: larger is nearer the head of the list.
    stamp: u64,
    /// The key it is ranked under, `None` when it is not eligible.
    key: Option<K>,
}

/// No leaf: an empty or ineligible subtree.
const NONE: u32 = u32::MAX;

/// The linked servers of one service in a tournament tree: leaf slots in a power-of-two array,
/// and above them one node per pair holding the better of its two subtrees' winners by (key,
/// list position). The root is the pick; a change re-plays only the matches on one leaf's path
/// to the root (log2 of the slots), and nothing is allocated unless the slots run out.
#[derive(Debug)]
pub(crate) struct Ranking<K> {
    /// Leaf slots (a power of two, at least 2); `None` is a free slot.
    leaves: Vec<Option<Leaf<K>>>,
    /// `tree[n]` for `1 <= n < leaves.len()`: the winning leaf of node `n`'s subtree, or
    /// [`NONE`]. Node `n`'s children are `2n` and `2n + 1`; a child `c >= leaves.len()` is leaf
    /// `c - leaves.len()`.
    tree: Vec<u32>,
    /// Free leaf slots.
    free: Vec<u32>,
    /// Every linked server's leaf, sorted by handle (found by binary search).
    index: Vec<(DestId, u32)>,
    next_stamp: u64,
    key: KeyFn<K>,
}

impl<K: Ord + Copy> Ranking<K> {
    /// An empty ranking by `key`.
    pub(crate) fn new(key: KeyFn<K>) -> Self {
        let mut r =
            Ranking { leaves: Vec::new(), tree: Vec::new(), free: Vec::new(), index: Vec::new(), next_stamp: 0, key };
        r.reset(2);
        r
    }

    /// Empties the ranking with `cap` leaf slots (a power of two).
    fn reset(&mut self, cap: usize) {
        self.leaves = alloc::vec![None; cap];
        self.tree = alloc::vec![NONE; cap];
        self.free = (0..cap as u32).rev().collect();
        self.index.clear();
        self.next_stamp = 0;
    }

    /// The server the kernel's walk picks: the best key, the first in list order among equals.
    pub(crate) fn first(&self) -> Option<DestId> {
        let w = *self.tree.get(1)?;
        self.leaf(w).map(|l| l.id)
    }

    fn leaf(&self, i: u32) -> Option<&Leaf<K>> {
        self.leaves.get(i as usize).and_then(Option::as_ref)
    }

    /// The winner of node `n`: an eligible leaf itself, or what an inner node holds.
    fn winner(&self, n: usize) -> u32 {
        let cap = self.leaves.len();
        if n >= cap {
            let i = (n - cap) as u32;
            if self.leaf(i).is_some_and(|l| l.key.is_some()) {
                i
            } else {
                NONE
            }
        } else {
            self.tree.get(n).copied().unwrap_or(NONE)
        }
    }

    /// The better of two leaves: the lower key, and between equal keys the later link (the
    /// earlier list position).
    fn better(&self, a: u32, b: u32) -> u32 {
        match (self.leaf(a), self.leaf(b)) {
            (Some(x), Some(y)) => {
                if (x.key, Reverse(x.stamp)) <= (y.key, Reverse(y.stamp)) {
                    a
                } else {
                    b
                }
            }
            (Some(_), None) => a,
            _ => b,
        }
    }

    /// Re-plays the matches from node `n` up to the root.
    fn replay(&mut self, mut n: usize) {
        while n >= 1 {
            let w = self.better(self.winner(2 * n), self.winner(2 * n + 1));
            if let Some(t) = self.tree.get_mut(n) {
                *t = w;
            }
            n /= 2;
        }
    }

    /// Ranks the whole list afresh (`init_service`).
    pub(crate) fn rebuild(&mut self, svc: &ServiceView<'_>) {
        self.reset(svc.len().next_power_of_two().max(2));
        for id in svc.ids().iter().rev() {
            self.link(svc, *id);
        }
    }

    /// Doubles the leaf slots and replays every match.
    fn grow(&mut self) {
        let cap = self.leaves.len();
        self.leaves.resize(cap * 2, None);
        self.tree = alloc::vec![NONE; cap * 2];
        self.free.extend((cap as u32..2 * cap as u32).rev());
        for n in (1..cap * 2).rev() {
            let w = self.better(self.winner(2 * n), self.winner(2 * n + 1));
            if let Some(t) = self.tree.get_mut(n) {
                *t = w;
            }
        }
    }

    /// Server `id` was linked at the head of the list (`add_dest`).
    pub(crate) fn link(&mut self, svc: &ServiceView<'_>, id: DestId) {
        self.unlink(id);
        if self.free.is_empty() {
            self.grow();
        }
        let Some(i) = self.free.pop() else { return };
        self.next_stamp += 1;
        let key = svc.get(id).and_then(|d| (self.key)(&d));
        if let Some(slot) = self.leaves.get_mut(i as usize) {
            *slot = Some(Leaf { id, stamp: self.next_stamp, key });
        }
        let at = self.index.partition_point(|(d, _)| *d < id);
        self.index.insert(at, (id, i));
        self.replay((self.leaves.len() + i as usize) / 2);
    }

    /// Server `id` was unlinked (`del_dest`).
    pub(crate) fn unlink(&mut self, id: DestId) {
        let Ok(at) = self.index.binary_search_by_key(&id, |(d, _)| *d) else { return };
        let (_, i) = self.index.remove(at);
        if let Some(slot) = self.leaves.get_mut(i as usize) {
            *slot = None;
        }
        self.free.push(i);
        self.replay((self.leaves.len() + i as usize) / 2);
    }

    /// Server `id`'s weight, counters or flags changed (`upd_dest`, `counts_moved`): re-rank
    /// it. Nothing for a server not linked.
    pub(crate) fn refresh(&mut self, svc: &ServiceView<'_>, id: DestId) {
        let Ok(at) = self.index.binary_search_by_key(&id, |(d, _)| *d) else { return };
        let Some(&(_, i)) = self.index.get(at) else { return };
        let key = svc.get(id).and_then(|d| (self.key)(&d));
        let Some(Some(leaf)) = self.leaves.get_mut(i as usize) else { return };
        if leaf.key == key {
            return;
        }
        leaf.key = key;
        self.replay((self.leaves.len() + i as usize) / 2);
    }
}

/// The scheduler ops of a ranking scheduler: every op but `schedule` keeps the ranking current.
macro_rules! ranked_ops {
    () => {
        fn init_service(
            &mut self,
            svc: &lvs_core::service::ServiceView<'_>,
        ) -> Result<(), lvs_core::sched::SchedError> {
            self.rank.rebuild(svc);
            Ok(())
        }

        fn add_dest(
            &mut self,
            svc: &lvs_core::service::ServiceView<'_>,
            d: lvs_core::dest::DestId,
        ) -> Result<(), lvs_core::sched::SchedError> {
            self.rank.link(svc, d);
            Ok(())
        }

        fn del_dest(&mut self, _svc: &lvs_core::service::ServiceView<'_>, d: lvs_core::dest::DestId, _pos: usize) {
            self.rank.unlink(d);
        }

        fn upd_dest(&mut self, svc: &lvs_core::service::ServiceView<'_>, d: lvs_core::dest::DestId) {
            self.rank.refresh(svc, d);
        }

        fn counts_moved(&mut self, svc: &lvs_core::service::ServiceView<'_>, d: lvs_core::dest::DestId) {
            self.rank.refresh(svc, d);
        }
    };
}
pub(crate) use ranked_ops;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_compare_by_cross_multiplication() {
        assert_eq!(Ratio::new(512, 3).cmp(&Ratio::new(256, 1)), Ordering::Less);
        assert_eq!(Ratio::new(2, 2), Ratio::new(1, 1));
        assert!(Ratio::new(0, 7) < Ratio::new(1, 65535));
        // The largest overhead (u32::MAX active and inactive) by the largest weight.
        let big = (i64::from(u32::MAX) << 8) + i64::from(u32::MAX);
        assert!(Ratio::new(big, 65535) < Ratio::new(big, 65534));
    }
}
