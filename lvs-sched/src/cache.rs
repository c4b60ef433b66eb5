//! The destination-address cache `lblc` and `lblcr` share (`ip_vs_lblc_table`,
//! `ip_vs_lblc_check_expire`, `ip_vs_lblc_full_check`): 1024 buckets by
//! `hash_32(fold(daddr), 10)`, new entries at the head of their bucket, and a collector that
//! runs every 60 s — a full sweep of entries unused for the expiration time every 30th run, and
//! in between, only when the table holds more than 16384 entries, a partial sweep of entries
//! unused for 6 minutes.

use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

use lvs_core::addr::fold;
use lvs_core::time::Instant;

use crate::util::hash_32;

/// `CONFIG_IP_VS_LBLC_TAB_BITS`.
const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
const MAX_SIZE: usize = TAB_SIZE * 16;
const CHECK_INTERVAL_NS: u64 = 60_000_000_000;
const ENTRY_TIMEOUT_NS: u64 = 6 * 60_000_000_000;
const FULL_EVERY: u32 = 30;
/// The default `lblc_expiration` / `lblcr_expiration`: 24 hours.
pub(crate) const DEFAULT_EXPIRATION_NS: u64 = 24 * 3600 * 1_000_000_000;

pub(crate) struct Entry<E> {
    pub(crate) addr: IpAddr,
    pub(crate) lastuse: u64,
    pub(crate) val: E,
}

pub(crate) struct Cache<E> {
    buckets: Vec<Vec<Entry<E>>>,
    entries: usize,
    counter: u32,
    rover: usize,
    next_check: Option<u64>,
    pub(crate) expiration_ns: u64,
}

fn bucket_of(addr: &IpAddr) -> usize {
    hash_32(fold(addr), TAB_BITS) as usize
}

impl<E> Cache<E> {
    pub(crate) fn new() -> Self {
        Cache {
            buckets: (0..TAB_SIZE).map(|_| Vec::new()).collect(),
            entries: 0,
            counter: 1,
            rover: 0,
            next_check: None,
            expiration_ns: DEFAULT_EXPIRATION_NS,
        }
    }

    pub(crate) fn get_mut(&mut self, addr: &IpAddr) -> Option<&mut Entry<E>> {
        self.buckets.get_mut(bucket_of(addr))?.iter_mut().find(|e| e.addr == *addr)
    }

    /// Adds an entry at the head of its bucket (the caller checked it is absent).
    pub(crate) fn insert(&mut self, addr: IpAddr, now: Instant, val: E) {
        if let Some(b) = self.buckets.get_mut(bucket_of(&addr)) {
            b.insert(0, Entry { addr, lastuse: now.as_nanos(), val });
            self.entries += 1;
        }
    }

    /// Applies `f` to every entry; entries for which it returns false are dropped.
    pub(crate) fn retain(&mut self, mut f: impl FnMut(&mut Entry<E>) -> bool) {
        for b in &mut self.buckets {
            let before = b.len();
            b.retain_mut(&mut f);
            self.entries -= before - b.len();
        }
    }

    /// Whether any entry satisfies `f`.
    pub(crate) fn any(&self, mut f: impl FnMut(&E) -> bool) -> bool {
        self.buckets.iter().flatten().any(|e| f(&e.val))
    }

    pub(crate) fn clear(&mut self) {
        self.buckets = vec![];
        self.buckets.resize_with(TAB_SIZE, Vec::new);
        self.entries = 0;
    }

    /// The periodic collector; call it often, it acts every 60 s.
    pub(crate) fn tick(&mut self, now: Instant) {
        let now = now.as_nanos();
        let Some(due) = self.next_check else {
            self.next_check = Some(now.saturating_add(CHECK_INTERVAL_NS));
            return;
        };
        if now < due {
            return;
        }
        self.next_check = Some(now.saturating_add(CHECK_INTERVAL_NS));
        if self.counter % FULL_EVERY == 0 {
            let exp = self.expiration_ns;
            self.retain(|e| now < e.lastuse.saturating_add(exp));
            self.counter = 1;
            return;
        }
        if self.entries <= MAX_SIZE {
            self.counter += 1;
            return;
        }
        let mut goal = ((self.entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2) as i64;
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & (TAB_SIZE - 1);
            if let Some(b) = self.buckets.get_mut(j) {
                let before = b.len();
                b.retain(|e| now < e.lastuse.saturating_add(ENTRY_TIMEOUT_NS));
                let removed = before - b.len();
                self.entries -= removed;
                goal -= removed as i64;
            }
            if goal <= 0 {
                break;
            }
        }
        self.rover = j;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
    }
}

/// `is_overloaded` of lblc/lblcr: the server has more active connections than its weight while
/// some server of the service has fewer than half its weight.
pub(crate) fn is_overloaded(svc: &lvs_core::service::ServiceView<'_>, d: &lvs_core::dest::DestView<'_>) -> bool {
    d.active() > d.weight() && svc.dests().any(|x| u64::from(x.active()) * 2 < u64::from(x.weight()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sweep_every_thirtieth_run_drops_stale_entries() {
        let mut c: Cache<u8> = Cache::new();
        c.expiration_ns = 10 * 60_000_000_000;
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        c.insert(a, Instant::ZERO, 1);
        let mut t = 0;
        c.tick(Instant(t));
        for _ in 0..29 {
            t += CHECK_INTERVAL_NS;
            c.tick(Instant(t));
            assert_eq!(c.len(), 1, "only a full sweep may drop an entry in a small table");
        }
        t += CHECK_INTERVAL_NS;
        c.tick(Instant(t));
        assert_eq!(c.len(), 0, "the 30th run is a full sweep; the entry is 30 min old, over 10");
    }
}
