//! Least connection, as net/netfilter/ipvs/ip_vs_lc.c (`ip_vs_lc_schedule`): the server with
//! the least `active * 256 + inactive`; weight only matters in that 0 excludes a server. The
//! first minimum in list order wins.

use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::util::conn_overhead;

/// The `lc` scheduler.
#[derive(Debug, Default)]
pub struct LeastConn;

impl Scheduler for LeastConn {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        let mut best: Option<(DestId, i64)> = None;
        for d in svc.dests() {
            if d.is_overloaded() || d.weight() == 0 {
                continue;
            }
            let oh = conn_overhead(&d);
            if best.is_none_or(|(_, b)| oh < b) {
                best = Some((d.id(), oh));
            }
        }
        best.map(|(id, _)| id)
    }
}
