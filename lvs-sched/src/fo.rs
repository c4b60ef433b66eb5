//! Weighted failover, as net/netfilter/ipvs/ip_vs_fo.c (`ip_vs_fo_schedule`): the first
//! non-overloaded server with the highest weight (> 0), kept ranked by (weight descending, list
//! position) as weights and overload flags change (`rank.rs`).

use core::cmp::Reverse;

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::rank::{ranked_ops, Ranking};

/// `fo`'s rank of a server: its weight, highest first, when it is not overloaded and not 0.
fn key(d: &DestView<'_>) -> Option<Reverse<u32>> {
    (!d.is_overloaded() && d.weight() > 0).then(|| Reverse(d.weight()))
}

/// The `fo` scheduler.
#[derive(Debug)]
pub struct WeightedFailover {
    rank: Ranking<Reverse<u32>>,
}

impl Default for WeightedFailover {
    fn default() -> Self {
        WeightedFailover { rank: Ranking::new(key) }
    }
}

impl Scheduler for WeightedFailover {
    fn name(&self) -> &'static str {
        "fo"
    }

    ranked_ops!();

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, _svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        self.rank.first()
    }
}
