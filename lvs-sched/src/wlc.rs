//! Weighted least connection, as net/netfilter/ipvs/ip_vs_wlc.c (`ip_vs_wlc_schedule`): the
//! least `(active * 256 + inactive) / weight`, compared by cross-multiplication; the first best
//! in list order wins. The default scheduler of ipvsadm.
//!
//! The kernel starts from the first server neither overloaded nor of weight 0 and then lets any
//! later non-overloaded server with a strictly lower ratio take over; a server of weight 0 can
//! never be strictly lower (`loh * 0 > doh * w` is false for overheads ≥ 0), so the pick is the
//! first least ratio among the eligible servers — kept ranked here (`rank.rs`) instead of
//! walked per decision.

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::rank::{ranked_ops, Ranking, Ratio};
use crate::util::conn_overhead;

/// `wlc`'s rank of a server: overhead by weight, when it is neither overloaded nor of weight 0.
fn key(d: &DestView<'_>) -> Option<Ratio> {
    (!d.is_overloaded() && d.weight() > 0).then(|| Ratio::new(conn_overhead(d), d.weight()))
}

/// The `wlc` scheduler.
#[derive(Debug)]
pub struct WeightedLeastConn {
    rank: Ranking<Ratio>,
}

impl Default for WeightedLeastConn {
    fn default() -> Self {
        WeightedLeastConn { rank: Ranking::new(key) }
    }
}

impl Scheduler for WeightedLeastConn {
    fn name(&self) -> &'static str {
        "wlc"
    }

    ranked_ops!();

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, _svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        self.rank.first()
    }
}
