//! A service's real servers ranked by a scheduler's key and then by list position, kept current
//! by the scheduler ops (`add_dest`, `del_dest`, `upd_dest`, `counts_moved`), so that the
//! server the kernel's linear walk would pick (`ip_vs_lc_schedule`, `ip_vs_wlc_schedule`, ...:
//! the first best in list order) is the first of an ordered set instead of the result of a walk.
//!
//! A server's list position is represented by when it was linked: the kernel links every new
//! server at the head of the list (`list_add_rcu` in `__ip_vs_update_dest`) and never moves one,
//! so a later link means an earlier position.

use alloc::collections::BTreeSet;
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

/// What the ranking knows of one linked server.
#[derive(Clone, Copy, Debug)]
struct Slot<K> {
    /// Link stamp: larger is nearer the head of the list.
    stamp: u64,
    /// The key it is ranked under, `None` when it is not eligible.
    key: Option<K>,
}

/// The linked servers of one service, the eligible ones ordered by (key, list position).
#[derive(Debug)]
pub(crate) struct Ranking<K> {
    set: BTreeSet<(K, Reverse<u64>, DestId)>,
    /// Every linked server, sorted by handle (found by binary search).
    slots: Vec<(DestId, Slot<K>)>,
    next_stamp: u64,
    key: KeyFn<K>,
}

impl<K: Ord + Copy> Ranking<K> {
    /// An empty ranking by `key`.
    pub(crate) fn new(key: KeyFn<K>) -> Self {
        Ranking { set: BTreeSet::new(), slots: Vec::new(), next_stamp: 0, key }
    }

    /// The server the kernel's walk picks: the best key, the first in list order among equals.
    pub(crate) fn first(&self) -> Option<DestId> {
        self.set.first().map(|e| e.2)
    }

    /// Ranks the whole list afresh (`init_service`).
    pub(crate) fn rebuild(&mut self, svc: &ServiceView<'_>) {
        self.set.clear();
        self.slots.clear();
        self.next_stamp = 0;
        for id in svc.ids().iter().rev() {
            self.link(svc, *id);
        }
    }

    /// Server `id` was linked at the head of the list (`add_dest`).
    pub(crate) fn link(&mut self, svc: &ServiceView<'_>, id: DestId) {
        self.unlink(id);
        self.next_stamp += 1;
        let slot = Slot { stamp: self.next_stamp, key: svc.get(id).and_then(|d| (self.key)(&d)) };
        if let Some(k) = slot.key {
            self.set.insert((k, Reverse(slot.stamp), id));
        }
        let at = self.slots.partition_point(|(d, _)| *d < id);
        self.slots.insert(at, (id, slot));
    }

    /// Server `id` was unlinked (`del_dest`).
    pub(crate) fn unlink(&mut self, id: DestId) {
        if let Ok(at) = self.slots.binary_search_by_key(&id, |(d, _)| *d) {
            let (_, slot) = self.slots.remove(at);
            if let Some(k) = slot.key {
                self.set.remove(&(k, Reverse(slot.stamp), id));
            }
        }
    }

    /// Server `id`'s weight, counters or flags changed (`upd_dest`, `counts_moved`): re-rank
    /// it. Nothing for a server not linked.
    pub(crate) fn refresh(&mut self, svc: &ServiceView<'_>, id: DestId) {
        let Ok(at) = self.slots.binary_search_by_key(&id, |(d, _)| *d) else { return };
        let key = svc.get(id).and_then(|d| (self.key)(&d));
        let Some((_, slot)) = self.slots.get_mut(at) else { return };
        if slot.key == key {
            return;
        }
        if let Some(k) = slot.key {
            self.set.remove(&(k, Reverse(slot.stamp), id));
        }
        if let Some(k) = key {
            self.set.insert((k, Reverse(slot.stamp), id));
        }
        slot.key = key;
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
