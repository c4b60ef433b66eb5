//! Locality-based least connection, as net/netfilter/ipvs/ip_vs_lblc.c (`ip_vs_lblc_schedule`,
//! `__ip_vs_lblc_schedule`, `is_overloaded`): a cache from destination address to server. A hit
//! is used while its server is available, has weight > 0 and is not "overloaded" in lblc's own
//! sense (more active connections than its weight while another server has fewer than half its
//! weight; the threshold flag is not consulted on a hit). Otherwise a weighted least-connection
//! pick replaces or creates the entry. Entries keep deleted servers (see [`Lblc::holds`]).

use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, SchedError, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::time::Instant;
use lvs_core::wire::PacketMeta;

use crate::cache::{is_overloaded, Cache};
use crate::util::{conn_overhead, weighted_least};

/// The `lblc` scheduler.
pub struct Lblc {
    cache: Cache<DestId>,
}

impl Default for Lblc {
    fn default() -> Self {
        Lblc { cache: Cache::new() }
    }
}

impl Lblc {
    /// Sets `lblc_expiration` (default 24 h).
    pub fn with_expiration(mut self, d: core::time::Duration) -> Self {
        self.cache.expiration_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self
    }
}

impl Scheduler for Lblc {
    fn name(&self) -> &'static str {
        "lblc"
    }

    fn init_service(&mut self, _svc: &ServiceView<'_>) -> Result<(), SchedError> {
        self.cache.clear();
        Ok(())
    }

    /// An entry holds its server (`ip_vs_lblc_new` takes a reference): a deleted server stays
    /// in the trash while an entry names it, is passed over while deleted (not available), and
    /// is found again by those entries when it is added back.
    fn holds(&self, d: DestId) -> bool {
        self.cache.any(|v| *v == d)
    }

    fn schedule(&mut self, cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, pkt: &PacketMeta) -> Option<DestId> {
        let now = cx.now.as_nanos();
        let hit = self.cache.get_mut(&pkt.dst).map(|e| {
            e.lastuse = now;
            e.val
        });
        if let Some(d) = hit.and_then(|id| svc.get(id)) {
            if d.is_available() && d.weight() > 0 && !is_overloaded(svc, &d) {
                return Some(d.id());
            }
        }
        let pick = weighted_least(svc, conn_overhead)?;
        match self.cache.get_mut(&pkt.dst) {
            Some(e) => {
                e.val = pick;
                e.lastuse = now;
            }
            None => self.cache.insert(pkt.dst, cx.now, pick),
        }
        Some(pick)
    }

    fn tick(&mut self, now: Instant) {
        self.cache.tick(now);
    }
}
