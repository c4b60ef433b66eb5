//! Never queue, as net/netfilter/ipvs/ip_vs_nq.c (`ip_vs_nq_schedule`): the first server (in
//! list order) with no active connection, otherwise the `sed` choice; weight 0 or the overload
//! flag exclude a server.
//!
//! Ranked (`rank.rs`) with every idle server ahead of every busy one: idle servers among
//! themselves by list position alone, busy ones by expected delay and then list position.

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::rank::{ranked_ops, Ranking, Ratio};
use crate::sed::sed_overhead;

/// `nq`'s rank of an eligible server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// No active connection: taken at once, in list order.
    Idle,
    /// Busy: by `(active + 1) / weight`.
    Busy(Ratio),
}

fn key(d: &DestView<'_>) -> Option<Rank> {
    if d.is_overloaded() || d.weight() == 0 {
        None
    } else if d.active() == 0 {
        Some(Rank::Idle)
    } else {
        Some(Rank::Busy(Ratio::new(sed_overhead(d), d.weight())))
    }
}

/// The `nq` scheduler.
#[derive(Debug)]
pub struct NeverQueue {
    rank: Ranking<Rank>,
}

impl Default for NeverQueue {
    fn default() -> Self {
        NeverQueue { rank: Ranking::new(key) }
    }
}

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    ranked_ops!();

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, _svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        self.rank.first()
    }
}
