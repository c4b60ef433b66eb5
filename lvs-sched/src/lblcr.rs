//! Locality-based least connection with replication, as net/netfilter/ipvs/ip_vs_lblcr.c
//! (`ip_vs_lblcr_schedule`, `ip_vs_dest_set_min`, `ip_vs_dest_set_max`): the cache maps a
//! destination address to a *set* of servers (new members at its head). The least loaded member
//! serves; a set of more than one that has not changed for the expiration time sheds its most
//! loaded member; when the chosen member is overloaded (lblc's rule) a weighted least-connection
//! pick joins the set. Sets keep deleted servers (see [`Lblcr::holds`]).

use alloc::vec::Vec;

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, SchedError, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::time::Instant;
use lvs_core::wire::PacketMeta;

use crate::cache::{is_overloaded, Cache};
use crate::util::{beats, conn_overhead, weighted_least};

/// A replica set.
struct DestSet {
    /// Members, head first.
    members: Vec<DestId>,
    lastmod: u64,
}

impl DestSet {
    fn insert(&mut self, d: DestId, now: u64) {
        if !self.members.contains(&d) {
            self.members.insert(0, d);
            self.lastmod = now;
        }
    }

    /// `ip_vs_dest_set_min`.
    fn min<'a>(&self, svc: &ServiceView<'a>) -> Option<DestView<'a>> {
        let mut it = self.members.iter().filter_map(|id| svc.get(*id));
        let mut best = it.by_ref().find(|d| !d.is_overloaded() && d.weight() > 0 && d.is_available())?;
        let mut loh = conn_overhead(&best);
        for d in it {
            if d.is_overloaded() {
                continue;
            }
            let doh = conn_overhead(&d);
            if beats(loh, &best, doh, &d) && d.is_available() {
                best = d;
                loh = doh;
            }
        }
        Some(best)
    }

    /// `ip_vs_dest_set_max` (the overload flag is not consulted).
    fn max(&self, svc: &ServiceView<'_>) -> Option<DestId> {
        let mut it = self.members.iter().filter_map(|id| svc.get(*id));
        let mut most = it.by_ref().find(|d| d.weight() > 0)?;
        let mut moh = conn_overhead(&most);
        for d in it {
            let doh = conn_overhead(&d);
            if moh * i64::from(d.weight()) < doh * i64::from(most.weight()) && d.weight() > 0 {
                most = d;
                moh = doh;
            }
        }
        Some(most.id())
    }
}

/// The `lblcr` scheduler.
pub struct Lblcr {
    cache: Cache<DestSet>,
}

impl Default for Lblcr {
    fn default() -> Self {
        Lblcr { cache: Cache::new() }
    }
}

impl Lblcr {
    /// Sets `lblcr_expiration` (default 24 h).
    pub fn with_expiration(mut self, d: core::time::Duration) -> Self {
        self.cache.expiration_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self
    }
}

impl Scheduler for Lblcr {
    fn name(&self) -> &'static str {
        "lblcr"
    }

    fn init_service(&mut self, _svc: &ServiceView<'_>) -> Result<(), SchedError> {
        self.cache.clear();
        Ok(())
    }

    /// A set holds its members (`ip_vs_dest_set_insert` takes a reference): a deleted server
    /// stays a member — never the least loaded (it is not available), but counted in the set's
    /// size and, with the weight it had, a candidate for `ip_vs_dest_set_max` — until it is
    /// shed or its entry expires; added back, it serves the sets that still name it.
    fn holds(&self, d: DestId) -> bool {
        self.cache.any(|s| s.members.contains(&d))
    }

    fn schedule(&mut self, cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, pkt: &PacketMeta) -> Option<DestId> {
        let now = cx.now.as_nanos();
        let exp = self.cache.expiration_ns;
        if let Some(e) = self.cache.get_mut(&pkt.dst) {
            e.lastuse = now;
            let set = &mut e.val;
            let chosen = set.min(svc).map(|d| d.id());
            if set.members.len() > 1 && now > set.lastmod.saturating_add(exp) {
                if let Some(m) = set.max(svc) {
                    set.members.retain(|x| *x != m);
                    set.lastmod = now;
                }
            }
            if let Some(d) = chosen.and_then(|id| svc.get(id)) {
                if !is_overloaded(svc, &d) {
                    return Some(d.id());
                }
            }
            let pick = weighted_least(svc, conn_overhead)?;
            set.insert(pick, now);
            return Some(pick);
        }
        let pick = weighted_least(svc, conn_overhead)?;
        let mut members = Vec::with_capacity(2);
        members.push(pick);
        self.cache.insert(pkt.dst, cx.now, DestSet { members, lastmod: now });
        Some(pick)
    }

    fn tick(&mut self, now: Instant) {
        self.cache.tick(now);
    }
}
