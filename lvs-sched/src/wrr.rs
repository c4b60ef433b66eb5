//! Weighted round robin, as net/netfilter/ipvs/ip_vs_wrr.c (`ip_vs_wrr_schedule`,
//! `ip_vs_wrr_dest_changed`).
//!
//! State: the list position of the last pick `cl`, the current weight `cw`, `mw` = the largest
//! weight less (gcd − 1), and `di` = the gcd of the positive weights. Every change to the list
//! resets `cl` to the head and adjusts `cw` rather than resetting it: it stays where it was
//! unless it exceeds `mw` or is 0 (then `mw`), or, with a gcd above 1, it is rounded to a
//! multiple of the gcd plus one. A new service starts at `cw = mw = 0`, so the first server
//! added brings `cw` to 1, not to the largest weight.

use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, SchedError, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

use crate::util::gcd;

/// The `wrr` scheduler.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

impl WeightedRoundRobin {
    fn gcd_weight(svc: &ServiceView<'_>) -> i64 {
        let g = svc.dests().map(|d| d.weight()).filter(|w| *w > 0).fold(0, gcd);
        if g == 0 {
            1
        } else {
            i64::from(g)
        }
    }

    fn max_weight(svc: &ServiceView<'_>) -> i64 {
        i64::from(svc.dests().map(|d| d.weight()).max().unwrap_or(0))
    }

    fn dest_changed(&mut self, svc: &ServiceView<'_>) {
        self.cl = None;
        self.di = Self::gcd_weight(svc);
        self.mw = Self::max_weight(svc) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn init_service(&mut self, svc: &ServiceView<'_>) -> Result<(), SchedError> {
        self.cl = None;
        self.di = Self::gcd_weight(svc);
        self.mw = Self::max_weight(svc) - (self.di - 1);
        self.cw = self.mw;
        Ok(())
    }

    fn add_dest(&mut self, svc: &ServiceView<'_>, _d: DestId) -> Result<(), SchedError> {
        self.dest_changed(svc);
        Ok(())
    }

    fn del_dest(&mut self, svc: &ServiceView<'_>, _d: DestId, _pos: usize) {
        self.dest_changed(svc);
    }

    fn upd_dest(&mut self, svc: &ServiceView<'_>, _d: DestId) {
        self.dest_changed(svc);
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        if self.mw <= 0 {
            return None;
        }
        let n = svc.len();
        let last = self.cl;
        let mut from = self.cl;
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        // Each turn of the outer loop lowers cw by di; two full cycles of cw bound the walk.
        let max_turns = 2 * (self.mw / self.di.max(1) + 2);
        for _ in 0..max_turns {
            for i in from.map_or(0, |p| p + 1)..n {
                let d = svc.at(i)?;
                if !d.is_overloaded() && i64::from(d.weight()) >= self.cw {
                    self.cl = Some(i);
                    return Some(d.id());
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            from = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
        self.cl = None;
        None
    }
}
