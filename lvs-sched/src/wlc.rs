//! Weighted least connection, as net/netfilter/ipvs/ip_vs_wlc.c (`ip_vs_wlc_schedule`): the
//! least `(active * 256 + inactive) / weight`, compared by cross-multiplication; the first best
//! in list order wins. The default scheduler of ipvsadm.

use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::util::{conn_overhead, weighted_least};

/// The `wlc` scheduler.
#[derive(Debug, Default)]
pub struct WeightedLeastConn;

impl Scheduler for WeightedLeastConn {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        weighted_least(svc, conn_overhead)
    }
}
