//! The scheduler interface (`struct ip_vs_scheduler`, `ip_vs_sched.c`). Implementations live in
//! `lvs-sched`; the director is handed a factory that makes one by name.
//!
//! Call order mirrors the kernel: a new real server is linked at the head of the list and then
//! `add_dest` is called; an edit changes the server and then calls `upd_dest`; a delete unlinks
//! the server and then calls `del_dest` with the position it had. Beyond the kernel, every move
//! of a server's connection counters or overload flag is reported by `counts_moved`.

use alloc::boxed::Box;

use crate::dest::DestId;
use crate::service::ServiceView;
use crate::time::Instant;
use crate::wire::PacketMeta;

/// A scheduler refused a service configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedError {
    /// No scheduler of that name.
    Unknown,
    /// The scheduler cannot take this configuration (the kernel's `EINVAL`).
    Invalid(&'static str),
}

/// Makes a scheduler by its ipvsadm name (`lvs_sched::by_name`).
pub type SchedFactory = fn(&str) -> Result<Box<dyn Scheduler>, SchedError>;

/// A small deterministic generator (xorshift64*) seeded from the director's config; only
/// randomised schedulers draw from it.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator from a seed (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Self {
        SeededRng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

/// What a scheduler may use besides the service and the packet.
pub struct SchedCx<'a> {
    /// The current time.
    pub now: Instant,
    /// Randomness from the director's seed.
    pub rng: &'a mut SeededRng,
}

/// A connection scheduler: picks the real server of each new connection.
pub trait Scheduler: Send {
    /// The name `ipvsadm -s` uses (`"wlc"`).
    fn name(&self) -> &'static str;

    /// The service was created (with no real servers yet) or switched to this scheduler.
    ///
    /// # Errors
    /// [`SchedError::Invalid`] when the scheduler cannot serve this configuration.
    fn init_service(&mut self, _svc: &ServiceView<'_>) -> Result<(), SchedError> {
        Ok(())
    }

    /// Server `d` was linked at the head of the list.
    ///
    /// # Errors
    /// [`SchedError::Invalid`] when the new list cannot be served (then the add is undone).
    fn add_dest(&mut self, _svc: &ServiceView<'_>, _d: DestId) -> Result<(), SchedError> {
        Ok(())
    }

    /// Server `d`, which was at list position `pos`, was unlinked.
    fn del_dest(&mut self, _svc: &ServiceView<'_>, _d: DestId, _pos: usize) {}

    /// Server `d`'s weight or thresholds were edited.
    fn upd_dest(&mut self, _svc: &ServiceView<'_>, _d: DestId) {}

    /// Server `d`'s ActiveConn or InActConn counter or its overload flag may have moved: a
    /// connection or template was bound to it or released (`ip_vs_bind_dest`,
    /// `ip_vs_unbind_dest`), or a connection crossed between active and inactive
    /// (`set_tcp_state`, a sync record). The kernel's schedulers read the counters at each
    /// decision and have no such op; schedulers that keep their servers ranked by load
    /// (`lc wlc sed nq fo ovf`) re-rank `d` here instead of walking the whole list per decision.
    /// Called after the move, also for a server no longer linked (which is then to be ignored).
    fn counts_moved(&mut self, _svc: &ServiceView<'_>, _d: DestId) {}

    /// Picks a server for a new connection, or `None` when no server is available.
    fn schedule(&mut self, cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, pkt: &PacketMeta) -> Option<DestId>;

    /// Periodic work (cache expiry of `lblc`/`lblcr`).
    fn tick(&mut self, _now: Instant) {}

    /// Whether the scheduler's own state still refers to server `d`, as the kernel's `lblc` and
    /// `lblcr` cache entries hold their servers (`ip_vs_dest_hold`): a deleted server held so
    /// stays in the trash (`ip_vs_dest_trash_expire` frees only unreferenced ones), and added
    /// back it is the same server, found again by the entries that name it.
    fn holds(&self, _d: DestId) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_nonzero() {
        let mut a = SeededRng::new(0);
        let mut b = SeededRng::new(0);
        let xs: [u32; 4] = core::array::from_fn(|_| a.next_u32());
        let ys: [u32; 4] = core::array::from_fn(|_| b.next_u32());
        assert_eq!(xs, ys);
        assert!(xs.iter().any(|x| *x != 0));
    }
}
