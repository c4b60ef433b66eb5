//! Weighted overflow, as net/netfilter/ipvs/ip_vs_ovf.c (`ip_vs_ovf_schedule`): the first
//! server with the highest weight among those not overloaded, with weight > 0 and with no more
//! active connections than their weight — kept ranked by (weight descending, list position) as
//! counters, weights and overload flags change (`rank.rs`).

use core::cmp::Reverse;

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::rank::{ranked_ops, Ranking};

/// `ovf`'s rank of a server: its weight, highest first, when it may take a connection.
fn key(d: &DestView<'_>) -> Option<Reverse<u32>> {
    let w = d.weight();
    (!d.is_overloaded() && d.active() <= w && w > 0).then_some(Reverse(w))
}

/// The `ovf` scheduler.
#[derive(Debug)]
pub struct WeightedOverflow {
    rank: Ranking<Reverse<u32>>,
}

impl Default for WeightedOverflow {
    fn default() -> Self {
        WeightedOverflow { rank: Ranking::new(key) }
    }
}

impl Scheduler for WeightedOverflow {
    fn name(&self) -> &'static str {
        "ovf"
    }

    ranked_ops!();

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, _svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        self.rank.first()
    }
}
