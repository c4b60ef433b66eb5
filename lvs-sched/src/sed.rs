//! Shortest expected delay, as net/netfilter/ipvs/ip_vs_sed.c (`ip_vs_sed_schedule`): the least
//! `(active + 1) / weight`; inactive connections do not count. The first best in list order
//! wins, and weight 0 or the overload flag exclude a server, as in `wlc` — whose ranking
//! (`rank.rs`) this shares, by another overhead.

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::rank::{ranked_ops, Ranking, Ratio};

/// `ip_vs_sed_dest_overhead`: active + 1.
pub fn sed_overhead(d: &DestView<'_>) -> i64 {
    i64::from(d.active()) + 1
}

/// `sed`'s rank of a server: expected delay, when it is neither overloaded nor of weight 0.
fn key(d: &DestView<'_>) -> Option<Ratio> {
    (!d.is_overloaded() && d.weight() > 0).then(|| Ratio::new(sed_overhead(d), d.weight()))
}

/// The `sed` scheduler.
#[derive(Debug)]
pub struct ShortestExpectedDelay {
    rank: Ranking<Ratio>,
}

impl Default for ShortestExpectedDelay {
    fn default() -> Self {
        ShortestExpectedDelay { rank: Ranking::new(key) }
    }
}

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    ranked_ops!();

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, _svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        self.rank.first()
    }
}
