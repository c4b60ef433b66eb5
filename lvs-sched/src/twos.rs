//! Power of two choices, as net/netfilter/ipvs/ip_vs_twos.c (`ip_vs_twos_schedule`, 6.5+): two
//! servers drawn at random in proportion to their weights, and of the two the one with the
//! lower `(active * 256 + inactive) / weight` — compared by cross-multiplication, the first draw
//! kept on a tie. Overloaded and weight-0 servers take no part.
//!
//! Each draw is a number in `0..=total` (the kernel adds one to the total weight), walked down
//! the list in order by subtracting weights: the server at which it reaches zero or below is
//! drawn, so a draw of 0 lands on the first eligible server and one of `total` on the last.
//! The random numbers come from the director's seeded generator, never from the system.

use lvs_core::dest::{DestId, DestView};
use lvs_core::sched::{SchedCx, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::util::conn_overhead;

/// The `twos` scheduler.
#[derive(Debug, Default)]
pub struct PowerOfTwo;

fn eligible(d: &DestView<'_>) -> bool {
    !d.is_overloaded() && d.weight() > 0
}

impl Scheduler for PowerOfTwo {
    fn name(&self) -> &'static str {
        "twos"
    }

    fn schedule(&mut self, cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        let total: u64 = svc.dests().filter(eligible).map(|d| u64::from(d.weight())).sum();
        if total == 0 {
            return None;
        }
        let span = total + 1;
        let mut left = [u64::from(cx.rng.next_u32()) % span, u64::from(cx.rng.next_u32()) % span];
        let mut picks: [Option<(DestId, i64, i64)>; 2] = [None, None];
        for d in svc.dests().filter(eligible) {
            let w = u64::from(d.weight());
            for (rest, pick) in left.iter_mut().zip(picks.iter_mut()) {
                if pick.is_none() && *rest <= w {
                    *pick = Some((d.id(), i64::from(d.weight()), conn_overhead(&d)));
                }
                *rest = rest.saturating_sub(w);
            }
            if picks.iter().all(Option::is_some) {
                break;
            }
        }
        // A draw never exceeds the total, so both always land on a server.
        let [(first, w1, o1), (second, w2, o2)] = [picks[0]?, picks[1]?];
        Some(if w2 * o1 > w1 * o2 { second } else { first })
    }
}
