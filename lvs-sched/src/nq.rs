//! Never queue, as net/netfilter/ipvs/ip_vs_nq.c (`ip_vs_nq_schedule`): the first server (in
//! list order) with no active connection, otherwise the `sed` choice.

use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::sed::sed_overhead;
use crate::util::beats;

/// The `nq` scheduler.
#[derive(Debug, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        let mut best = None;
        let mut loh = 0;
        for d in svc.dests() {
            if d.is_overloaded() || d.weight() == 0 {
                continue;
            }
            let doh = sed_overhead(&d);
            if d.active() == 0 {
                return Some(d.id());
            }
            match best {
                Some(b) if !beats(loh, &b, doh, &d) => {}
                _ => {
                    best = Some(d);
                    loh = doh;
                }
            }
        }
        best.map(|d| d.id())
    }
}
