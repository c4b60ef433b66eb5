//! Virtual services (`struct ip_vs_service`, `ip_vs_ctl.c`) as they are configured — key,
//! scheduler name, persistence and flags — and [`ServiceView`], what a scheduler sees of a
//! service's real servers in the kernel's order (newest first). The live service, which owns
//! its scheduler, belongs to the director.

use alloc::string::String;

use crate::addr::ServiceKey;
use crate::dest::{DestId, DestView, Dests};

/// Scheduler flags `-b` (`IP_VS_SVC_F_SCHED1..3`). `sh` and `mh` read the first as *fallback*
/// and the second as *port*.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags(pub u8);

impl SchedFlags {
    /// `flag-1`, `sh-fallback`, `mh-fallback` (`IP_VS_SVC_F_SCHED1`).
    pub const FLAG1: u8 = 0x1;
    /// `flag-2`, `sh-port`, `mh-port` (`IP_VS_SVC_F_SCHED2`).
    pub const FLAG2: u8 = 0x2;
    /// `flag-3` (`IP_VS_SVC_F_SCHED3`).
    pub const FLAG3: u8 = 0x4;

    /// The fallback flag (`sh-fallback`, `mh-fallback`).
    pub fn fallback(self) -> bool {
        self.0 & Self::FLAG1 != 0
    }
    /// The port flag (`sh-port`, `mh-port`).
    pub fn port(self) -> bool {
        self.0 & Self::FLAG2 != 0
    }
}

/// Default persistence timeout of `ipvsadm -p` without a value (seconds).
pub const DEFAULT_PERSIST_TIMEOUT: u32 = 300;
/// Longest persistence timeout ipvsadm accepts: 31 days.
pub const MAX_PERSIST_TIMEOUT: u32 = 31 * 24 * 3600;

/// A virtual service's configuration, as `ipvsadm -A|-E` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// What the service is reached by.
    pub key: ServiceKey,
    /// Scheduler name, as `-s` spells it (`wlc` by default).
    pub scheduler: String,
    /// Persistence timeout in seconds (`-p`); `None` = not persistent.
    pub persistent: Option<u32>,
    /// Persistence netmask `-M` as a prefix length (32 or 128 = the whole address).
    pub netmask: u8,
    /// One-packet scheduling (`-o`, UDP only).
    pub one_packet: bool,
    /// Scheduler flags (`-b`).
    pub sched_flags: SchedFlags,
    /// Beyond the kernel: most connections the service's real servers hold together; a new
    /// connection beyond it is dropped ([`Reason::ServiceConnLimit`]). Named after DPVS's
    /// per-server `max_conn`: DPVS's services only limit a proportion of packets
    /// (`limit_proportion`). 0 = none.
    ///
    /// [`Reason::ServiceConnLimit`]: crate::Reason::ServiceConnLimit
    pub max_conn: u32,
}

impl ServiceConfig {
    /// A non-persistent service with the given key and scheduler.
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        ServiceConfig {
            key,
            scheduler: String::from(scheduler),
            persistent: None,
            netmask: key.af().max_prefix(),
            one_packet: false,
            sched_flags: SchedFlags::default(),
            max_conn: 0,
        }
    }

    /// The same service, persistent for `timeout` seconds.
    pub fn persistent(mut self, timeout: u32) -> Self {
        self.persistent = Some(timeout);
        self
    }

    /// The same service holding at most `n` connections ([`ServiceConfig::max_conn`]).
    pub fn max_conn(mut self, n: u32) -> Self {
        self.max_conn = n;
        self
    }

    /// The same service with persistence netmask `prefix` (`-M`).
    pub fn netmask(mut self, prefix: u8) -> Self {
        self.netmask = prefix;
        self
    }
}

/// What a scheduler sees of a service: its flags and its real servers in the kernel's order.
#[derive(Clone, Copy)]
pub struct ServiceView<'a> {
    order: &'a [DestId],
    dests: &'a Dests,
    flags: SchedFlags,
}

impl<'a> ServiceView<'a> {
    /// A view over `order` (newest first) with servers looked up in `dests`.
    pub(crate) fn new(order: &'a [DestId], dests: &'a Dests, flags: SchedFlags) -> Self {
        ServiceView { order, dests, flags }
    }

    /// Scheduler flags (`-b`).
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    /// Number of real servers.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when the service has no real server.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The handles in list order.
    pub fn ids(&self) -> &'a [DestId] {
        self.order
    }

    /// The server at list position `i`.
    pub fn at(&self, i: usize) -> Option<DestView<'a>> {
        self.order.get(i).and_then(|id| self.dests.view(*id))
    }

    /// A server by handle.
    pub fn get(&self, id: DestId) -> Option<DestView<'a>> {
        self.dests.view(id)
    }

    /// The servers in list order (newest first), as every kernel scheduler walks them.
    pub fn dests(&self) -> impl Iterator<Item = DestView<'a>> + 'a {
        let dests = self.dests;
        self.order.iter().filter_map(move |id| dests.view(*id))
    }
}
