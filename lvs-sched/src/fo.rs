//! Weighted failover, as net/netfilter/ipvs/ip_vs_fo.c (`ip_vs_fo_schedule`): the first
//! non-overloaded server with the highest weight (> 0).

use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

/// The `fo` scheduler.
#[derive(Debug, Default)]
pub struct WeightedFailover;

impl Scheduler for WeightedFailover {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        let mut best = None;
        let mut hw = 0;
        for d in svc.dests() {
            if !d.is_overloaded() && d.weight() > hw {
                best = Some(d.id());
                hw = d.weight();
            }
        }
        best
    }
}
