//! Destination hashing, as net/netfilter/ipvs/ip_vs_dh.c (`ip_vs_dh_hashkey`,
//! `ip_vs_dh_reassign`, `ip_vs_dh_schedule`): 256 buckets filled round-robin over the list
//! (weights are not used), indexed by `hash_32(fold(daddr), 8)` — the multiply-and-mask of older
//! kernels is gone; the 6.12 traces fit only `hash_32`.

use lvs_core::addr::fold;
use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, SchedError, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::util::hash_32;

/// `CONFIG_IP_VS_DH_TAB_BITS`.
pub const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;

/// The `dh` scheduler.
#[derive(Debug)]
pub struct DestHash {
    buckets: [Option<DestId>; TAB_SIZE],
}

impl Default for DestHash {
    fn default() -> Self {
        DestHash { buckets: [None; TAB_SIZE] }
    }
}

/// `ip_vs_dh_hashkey`.
pub fn hashkey(addr: &core::net::IpAddr) -> usize {
    hash_32(fold(addr), TAB_BITS) as usize
}

impl DestHash {
    fn reassign(&mut self, svc: &ServiceView<'_>) {
        let ids = svc.ids();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if ids.is_empty() { None } else { ids.get(i % ids.len()).copied() };
        }
    }
}

impl Scheduler for DestHash {
    fn name(&self) -> &'static str {
        "dh"
    }

    fn init_service(&mut self, svc: &ServiceView<'_>) -> Result<(), SchedError> {
        self.reassign(svc);
        Ok(())
    }

    fn add_dest(&mut self, svc: &ServiceView<'_>, _d: DestId) -> Result<(), SchedError> {
        self.reassign(svc);
        Ok(())
    }

    fn del_dest(&mut self, svc: &ServiceView<'_>, _d: DestId, _pos: usize) {
        self.reassign(svc);
    }

    fn upd_dest(&mut self, svc: &ServiceView<'_>, _d: DestId) {
        self.reassign(svc);
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, pkt: &PacketMeta) -> Option<DestId> {
        let id = (*self.buckets.get(hashkey(&pkt.dst))?)?;
        let d = svc.get(id)?;
        (d.is_available() && d.weight() > 0 && !d.is_overloaded()).then_some(id)
    }
}
