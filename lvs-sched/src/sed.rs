//! Shortest expected delay, as net/netfilter/ipvs/ip_vs_sed.c (`ip_vs_sed_schedule`): the least
//! `(active + 1) / weight`; inactive connections do not count.

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::util::weighted_least;

/// `ip_vs_sed_dest_overhead`: active + 1.
pub fn sed_overhead(d: &DestView<'_>) -> i64 {
    i64::from(d.active()) + 1
}

/// The `sed` scheduler.
#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        weighted_least(svc, sed_overhead)
    }
}
