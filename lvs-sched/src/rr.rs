//! Round robin, as net/netfilter/ipvs/ip_vs_rr.c (`ip_vs_rr_schedule`, `ip_vs_rr_del_dest`).
//!
//! A cursor remembers the last pick (or the list head). A pick scans the servers after the
//! cursor to the end of the list, then — unless the cursor was at the head — from the start up
//! to and including the cursor, taking the first server with weight > 0 that is not
//! overloaded.

use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, SchedError, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::PacketMeta;

/// The `rr` scheduler.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// List position of the last pick; `None` is the list head.
    cursor: Option<usize>,
}

fn usable(svc: &ServiceView<'_>, i: usize) -> bool {
    svc.at(i).is_some_and(|d| !d.is_overloaded() && d.weight() > 0)
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn init_service(&mut self, _svc: &ServiceView<'_>) -> Result<(), SchedError> {
        self.cursor = None;
        Ok(())
    }

    fn add_dest(&mut self, _svc: &ServiceView<'_>, _d: DestId) -> Result<(), SchedError> {
        // The new server went in at the head: the cursor's server moved one place down.
        if let Some(c) = self.cursor.as_mut() {
            *c += 1;
        }
        Ok(())
    }

    fn del_dest(&mut self, _svc: &ServiceView<'_>, _d: DestId, pos: usize) {
        self.cursor = match self.cursor {
            // The cursor's server left: resume from its predecessor.
            Some(c) if c == pos => pos.checked_sub(1),
            Some(c) if c > pos => Some(c - 1),
            other => other,
        };
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, _pkt: &PacketMeta) -> Option<DestId> {
        let n = svc.len();
        let start = self.cursor.map_or(0, |c| c + 1);
        let second = self.cursor.map_or(0..0, |c| 0..(c + 1).min(n));
        let pick = (start..n).chain(second).find(|&i| usable(svc, i))?;
        self.cursor = Some(pick);
        svc.at(pick).map(|d| d.id())
    }
}
