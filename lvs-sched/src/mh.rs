//! Maglev hashing, as net/netfilter/ipvs/ip_vs_mh.c (`ip_vs_mh_hashkey`, `ip_vs_mh_permutate`,
//! `ip_vs_mh_populate`, `ip_vs_mh_get`, `ip_vs_mh_get_fallback`).
//!
//! A lookup table of M = 4093 slots (`CONFIG_IP_VS_MH_TAB_INDEX` = 12) is filled from each
//! server's permutation `offset + k * skip (mod M)`, both derived from `hsiphash` of the server's
//! address and port. Servers weigh in through `last_weight` (so a server edited to weight 0 keeps
//! its slots and lookups landing there fail or fall back), scaled by the gcd and shifted so the
//! largest fits 6 bits; each takes that many consecutive picks per round.
//!
//! A decision is one dependent chain (fold, hash, modulo, table slot, server), so each link is
//! kept short: the client address is folded by a predicted branch rather than a select, the
//! fold and port are summed once for the whole fallback walk, the hash is inlined, and a slot is
//! a raw 4-byte handle (16 KiB for the table instead of 32 KiB of `Option<DestId>`).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use lvs_core::addr::fold;
use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, SchedError, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::sh::hash_input;
use crate::util::{gcd, hashed_usable, hsiphash_u32};

/// Table size: `primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]` with the default index 12.
pub const TAB_SIZE: usize = 4093;
/// `IP_VS_MH_TAB_BITS` = index / 2.
const TAB_BITS: i32 = 6;
const K1: [u64; 2] = [2_654_435_761, 2_654_435_761];
const K2: [u64; 2] = [2_654_446_892, 2_654_446_892];

/// A table slot no server took (the kernel's NULL `lookup[i].dest`). No server's handle is
/// this value: handles index the director's server arena.
const EMPTY: u32 = u32::MAX;

/// `ip_vs_mh_hashkey`.
pub fn hashkey(addr: &core::net::IpAddr, port: u16, key: [u64; 2], offset: u32) -> u32 {
    hashkey_folded(u32::from(port).wrapping_add(fold(addr)), key, offset)
}

/// `ip_vs_mh_hashkey` of `base` = port + `ip_vs_addr_fold(addr)`, computed once per decision
/// (the kernel's sum is `offset + port + fold`, all wrapping 32-bit).
#[inline]
fn hashkey_folded(base: u32, key: [u64; 2], offset: u32) -> u32 {
    hsiphash_u32(offset.wrapping_add(base), key)
}

/// The `mh` scheduler.
#[derive(Debug)]
pub struct Maglev {
    /// Per slot, the handle (`DestId.0`) of the server that took it, or [`EMPTY`].
    lookup: Box<[u32; TAB_SIZE]>,
}

impl Default for Maglev {
    fn default() -> Self {
        Maglev { lookup: Box::new([EMPTY; TAB_SIZE]) }
    }
}

impl Maglev {
    /// The server in slot `h` as `hashed_usable` sees it (`None`: an empty slot).
    #[inline]
    fn slot(&self, svc: &ServiceView<'_>, h: u32) -> Option<Option<DestId>> {
        let raw = *self.lookup.get(h as usize)?;
        hashed_usable(svc, (raw != EMPTY).then_some(DestId(raw)))
    }

    fn reassign(&mut self, svc: &ServiceView<'_>) -> Result<(), SchedError> {
        self.lookup.fill(EMPTY);
        if svc.len() > TAB_SIZE {
            return Err(SchedError::Invalid("more real servers than mh table slots"));
        }
        let g = svc.dests().map(|d| d.last_weight()).filter(|w| *w > 0).fold(0, gcd);
        if g < 1 {
            return Ok(());
        }
        let mw = svc.dests().map(|d| d.last_weight()).max().unwrap_or(0) / g;
        let fls = 32 - mw.leading_zeros() as i32;
        let shift = (fls - TAB_BITS).max(0) as u32;
        let m = TAB_SIZE as u32;
        // (perm, skip, turns) per server in list order.
        let mut setup: Vec<(u32, u32, u32)> = svc
            .dests()
            .map(|d| {
                let offset = hashkey(&d.addr(), d.port(), K1, 0) % m;
                let skip = hashkey(&d.addr(), d.port(), K2, 0) % (m - 1) + 1;
                let lw = d.last_weight();
                let t = (lw / g) >> shift;
                let turns = if t != 0 { t } else { u32::from(lw != 0) };
                (offset, skip, turns)
            })
            .collect();
        let mut taken = vec![false; TAB_SIZE];
        let ids = svc.ids();
        let mut n = 0usize;
        while n < TAB_SIZE {
            for (i, s) in setup.iter_mut().enumerate() {
                for _ in 0..s.2 {
                    while taken.get(s.0 as usize).copied().unwrap_or(true) {
                        s.0 += s.1;
                        if s.0 >= m {
                            s.0 -= m;
                        }
                    }
                    if let Some(t) = taken.get_mut(s.0 as usize) {
                        *t = true;
                    }
                    if let (Some(slot), Some(id)) = (self.lookup.get_mut(s.0 as usize), ids.get(i)) {
                        *slot = id.0;
                    }
                    n += 1;
                    if n == TAB_SIZE {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

impl Scheduler for Maglev {
    fn name(&self) -> &'static str {
        "mh"
    }

    fn init_service(&mut self, svc: &ServiceView<'_>) -> Result<(), SchedError> {
        self.reassign(svc)
    }

    fn add_dest(&mut self, svc: &ServiceView<'_>, _d: DestId) -> Result<(), SchedError> {
        self.reassign(svc)
    }

    fn del_dest(&mut self, svc: &ServiceView<'_>, _d: DestId, _pos: usize) {
        let _ = self.reassign(svc);
    }

    fn upd_dest(&mut self, svc: &ServiceView<'_>, _d: DestId) {
        let _ = self.reassign(svc);
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, pkt: &PacketMeta) -> Option<DestId> {
        let base = hash_input(pkt, svc.flags().port());
        let m = TAB_SIZE as u32;
        let h = hashkey_folded(base, K1, 0) % m;
        let first = self.slot(svc, h)?;
        if first.is_some() || !svc.flags().fallback() {
            return first;
        }
        for off in 0..m {
            let roff = (off + h) % m;
            if let Some(id) = self.slot(svc, hashkey_folded(base, K1, roff) % m)? {
                return Some(id);
            }
        }
        None
    }
}
