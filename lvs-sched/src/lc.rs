//! Least connection, as net/netfilter/ipvs/ip_vs_lc.c (`ip_vs_lc_schedule`): the server with
//! the least `active * 256 + inactive`; weight only matters in that 0 excludes a server, as the
//! overload flag does. The first minimum in list order wins.
//!
//! The kernel walks the whole list per decision; here the servers stay ranked by (overhead,
//! list position) as their counters move (`rank.rs`), and a decision takes the first.

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::rank::{ranked_ops, Ranking};
use crate::util::conn_overhead;

/// `lc`'s rank of a server: its overhead, when it is neither overloaded nor of weight 0.
fn key(d: &DestView<'_>) -> Option<i64> {
    (!d.is_overloaded() && d.weight() > 0).then(|| conn_overhead(d))
}

/// The `lc` scheduler.
#[derive(Debug)]
pub struct LeastConn {
    rank: Ranking<i64>,
}

impl Default for LeastConn {
    fn default() -> Self {
        LeastConn { rank: Ranking::new(key) }
    }
}

impl Scheduler for LeastConn {
    fn name(&self) -> &'static str {
        "lc"
    }

    ranked_ops!();

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, _svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        self.rank.first()
    }
}
