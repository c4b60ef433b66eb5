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

/// An eligible server as the tree compares it: key, then list position (a later link is
/// nearer the head), and the handle.
type Entry<K> = (K, Reverse<u64>, DestId);

/// The better of two match results (`None`: nobody eligible).
fn better<K: Ord + Copy>(a: Option<Entry<K>>, b: Option<Entry<K>>) -> Option<Entry<K>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x <= y { x } else { y }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The linked servers of one service in a tournament tree: `cap` leaf slots (a power of two)
/// and above them one node per pair holding the better of its two children, so the root is
/// the pick. A change re-plays only the matches on one leaf's path to the root (log2 `cap`),
/// each reading two neighbouring nodes, and nothing is allocated unless the slots run out.
#[derive(Debug)]
pub(crate) struct Ranking<K> {
    /// `nodes[1]` is the root, node `n`'s children are `2n` and `2n + 1`, and leaf slot `i` is
    /// `nodes[cap + i]`: the server there when it is eligible, else `None`.
    nodes: Vec<Option<Entry<K>>>,
    /// Link stamp of each leaf slot's server (kept while it is not eligible).
    stamps: Vec<u64>,
    /// Free leaf slots.
    free: Vec<u32>,
    /// Every linked server's leaf slot, sorted by handle (found by binary search).
    index: Vec<(DestId, u32)>,
    next_stamp: u64,
    key: KeyFn<K>,
}

impl<K: Ord + Copy> Ranking<K> {
    /// An empty ranking by `key`.
    pub(crate) fn new(key: KeyFn<K>) -> Self {
        let mut r =
            Ranking { nodes: Vec::new(), stamps: Vec::new(), free: Vec::new(), index: Vec::new(), next_stamp: 0, key };
        r.reset(2);
        r
    }

    /// Empties the ranking with `cap` leaf slots (a power of two).
    fn reset(&mut self, cap: usize) {
        self.nodes = alloc::vec![None; 2 * cap];
        self.stamps = alloc::vec![0; cap];
        self.free = (0..cap as u32).rev().collect();
        self.index.clear();
        self.next_stamp = 0;
    }

    fn cap(&self) -> usize {
        self.stamps.len()
    }

    /// The server the kernel's walk picks: the best key, the first in list order among equals.
    pub(crate) fn first(&self) -> Option<DestId> {
        self.nodes.get(1).copied().flatten().map(|e| e.2)
    }

    /// Plays the match of node `n`.
    fn play(&mut self, n: usize) {
        let w = better(self.nodes.get(2 * n).copied().flatten(), self.nodes.get(2 * n + 1).copied().flatten());
        if let Some(x) = self.nodes.get_mut(n) {
            *x = w;
        }
    }

    /// Sets leaf slot `i` and re-plays the matches from it up to the root.
    fn set_leaf(&mut self, i: u32, e: Option<Entry<K>>) {
        let mut n = self.cap() + i as usize;
        if let Some(x) = self.nodes.get_mut(n) {
            *x = e;
        }
        while n > 1 {
            n /= 2;
            self.play(n);
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
        let cap = self.cap();
        let mut nodes = alloc::vec![None; 4 * cap];
        if let (Some(new), Some(old)) = (nodes.get_mut(2 * cap..3 * cap), self.nodes.get(cap..2 * cap)) {
            new.copy_from_slice(old);
        }
        self.nodes = nodes;
        self.stamps.resize(2 * cap, 0);
        self.free.extend((cap as u32..2 * cap as u32).rev());
        for n in (1..2 * cap).rev() {
            self.play(n);
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
        let stamp = self.next_stamp;
        if let Some(s) = self.stamps.get_mut(i as usize) {
            *s = stamp;
        }
        let at = self.index.partition_point(|(d, _)| *d < id);
        self.index.insert(at, (id, i));
        let key = svc.get(id).and_then(|d| (self.key)(&d));
        self.set_leaf(i, key.map(|k| (k, Reverse(stamp), id)));
    }

    /// Server `id` was unlinked (`del_dest`).
    pub(crate) fn unlink(&mut self, id: DestId) {
        let Ok(at) = self.index.binary_search_by_key(&id, |(d, _)| *d) else { return };
        let (_, i) = self.index.remove(at);
        self.free.push(i);
        self.set_leaf(i, None);
    }

    /// Server `id`'s weight, counters or flags changed (`upd_dest`, `counts_moved`): re-rank
    /// it. Nothing for a server not linked.
    pub(crate) fn refresh(&mut self, svc: &ServiceView<'_>, id: DestId) {
        let Ok(at) = self.index.binary_search_by_key(&id, |(d, _)| *d) else { return };
        let Some(&(_, i)) = self.index.get(at) else { return };
        let key = svc.get(id).and_then(|d| (self.key)(&d));
        let Some(&old) = self.nodes.get(self.cap() + i as usize) else { return };
        if old.map(|e| e.0) == key {
            return;
        }
        let stamp = self.stamps.get(i as usize).copied().unwrap_or(0);
        self.set_leaf(i, key.map(|k| (k, Reverse(stamp), id)));
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
