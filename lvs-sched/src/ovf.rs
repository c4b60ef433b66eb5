//! Weighted overflow, as net/netfilter/ipvs/ip_vs_ovf.c (`ip_vs_ovf_schedule`): the first
//! server with the highest weight among those not overloaded, with weight > 0 and with no more
//! active connections than their weight.

use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

/// The `ovf` scheduler.
#[derive(Debug, Default)]
pub struct WeightedOverflow;

impl Scheduler for WeightedOverflow {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        let mut best: Option<(DestId, u32)> = None;
        for d in svc.dests() {
            let w = d.weight();
            if d.is_overloaded() || d.active() > w || w == 0 {
                continue;
            }
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((d.id(), w));
            }
        }
        best.map(|(id, _)| id)
    }
}
