//! Virtual services (`struct ip_vs_service`, `ip_vs_ctl.c`) as they are configured — key,
//! scheduler name, persistence and flags — and [`ServiceView`], what a scheduler sees of a
//! service's real servers in the kernel's order (newest first). The live service, which owns
//! its scheduler, belongs to the director.

use alloc::string::String;
use core::net::{IpAddr, Ipv4Addr};

use crate::addr::{mask_addr, Af, ServiceKey};
use crate::dest::{DestId, DestView, Dests};
use crate::laddr::ClientAddr;

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

/// Default persistence timeout of `ipvsadm -p` without a value (seconds): libipvs's
/// `IPVS_SVC_PERSISTENT_TIMEOUT`, six minutes.
pub const DEFAULT_PERSIST_TIMEOUT: u32 = 360;

/// The persistence granularity (`-M`) as the kernel keeps it in `ip_vs_service.netmask`: an
/// IPv4 mask word taken as given (contiguous or not, the kernel ANDs it with the client
/// address), or an IPv6 prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Netmask {
    /// An IPv4 mask.
    V4(Ipv4Addr),
    /// An IPv6 prefix length (1..=128 for the kernel to take it).
    V6(u8),
}

impl Netmask {
    /// The whole address: `255.255.255.255` or `/128`, what a service has unless `-M` says.
    pub fn full(af: Af) -> Netmask {
        Netmask::prefix(af, af.max_prefix())
    }

    /// The mask of a prefix length (an IPv4 prefix above 32 is taken as 32).
    pub fn prefix(af: Af, prefix: u8) -> Netmask {
        match af {
            Af::V4 => Netmask::V4(Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0))),
            Af::V6 => Netmask::V6(prefix),
        }
    }

    /// Whether the mask keeps the whole address (ipvsadm then prints no `-M`).
    pub fn is_full(self) -> bool {
        match self {
            Netmask::V4(m) => m == Ipv4Addr::BROADCAST,
            Netmask::V6(p) => p == 128,
        }
    }

    /// `client & mask`, the address a persistence template keys on (`ip_vs_sched_persist`).
    pub fn apply(self, addr: &IpAddr) -> IpAddr {
        match (self, addr) {
            (Netmask::V4(m), IpAddr::V4(a)) => IpAddr::V4(Ipv4Addr::from(u32::from(*a) & u32::from(m))),
            (Netmask::V6(p), a) => mask_addr(a, p),
            (Netmask::V4(m), a) => mask_addr(a, u32::from(m).leading_ones() as u8),
        }
    }
}
/// A persistence engine a service may use (`--pe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PersistEngine {
    /// `sip`: templates by SIP Call-ID ([`persist::sip`](crate::persist::sip)).
    Sip,
}

impl PersistEngine {
    /// The engine called `name` (`ip_vs_pe_getbyname`), if this library has it.
    pub fn by_name(name: &str) -> Option<PersistEngine> {
        (name == "sip").then_some(PersistEngine::Sip)
    }

    /// The engine's name, as `-Ln` prints it after `pe`.
    pub fn name(self) -> &'static str {
        match self {
            PersistEngine::Sip => "sip",
        }
    }
}

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
    /// Persistence netmask `-M` (the whole address unless set).
    pub netmask: Netmask,
    /// Persistence engine (`--pe`): with [`PersistEngine::Sip`], a persistent service keys its
    /// templates by SIP Call-ID as well ([`persist::sip`](crate::persist::sip)). Unused by a
    /// service that is not persistent, as in the kernel.
    pub pe: Option<PersistEngine>,
    /// One-packet scheduling (`-o`, UDP only).
    pub one_packet: bool,
    /// Scheduler flags (`-b`).
    pub sched_flags: SchedFlags,
    /// How FullNAT connections tell real servers the client's address: a TOA, or a PROXY
    /// header (DPVS's `--proxy-protocol disable|v1|v2`). Other methods ignore it.
    pub client_addr: ClientAddr,
    /// DPVS's `-j`/`--synproxy`: the director answers SYNs with cookies and opens connections
    /// to real servers only for clients that complete the handshake (NAT and FullNAT only).
    pub synproxy: bool,
    /// Beyond the kernel: most connections the service's real servers hold together; a new
    /// connection beyond it is dropped ([`Reason::ServiceConnLimit`]). Named after DPVS's
    /// per-server `max_conn`: DPVS's services only limit a proportion of packets
    /// (`limit_proportion`). 0 = none.
    ///
    /// [`Reason::ServiceConnLimit`]: crate::Reason::ServiceConnLimit
    pub max_conn: u32,
    /// Beyond the kernel: a TCP segment that finds no connection and is neither a SYN nor a
    /// RST is scheduled by the hash of an `mh` or `sh` service (Katran's and Maglev's
    /// behaviour; the kernel needs the global `sloppy_tcp` for it). Several directors behind
    /// ECMP with the same configuration then send a flow that the routers move from one to
    /// another to the server the first one chose. Only for DR and TUN servers, whose replies
    /// bypass the director, and for `mh` and `sh`: the control calls refuse it with anything
    /// else ([`Error::MidflowHash`]; other schedulers choose by each director's own counters,
    /// so a moved flow needs connection sync instead). Spelt `--midflow-hash` in ipvsadm rule
    /// files and `midflow-hash` in keepalived.conf's `virtual_server`, both lvs's own.
    ///
    /// [`Error::MidflowHash`]: crate::Error::MidflowHash
    pub midflow_hash: bool,
}

impl ServiceConfig {
    /// A non-persistent service with the given key and scheduler.
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        ServiceConfig {
            key,
            scheduler: String::from(scheduler),
            persistent: None,
            netmask: Netmask::full(key.af()),
            pe: None,
            one_packet: false,
            sched_flags: SchedFlags::default(),
            client_addr: ClientAddr::Toa,
            synproxy: false,
            max_conn: 0,
            midflow_hash: false,
        }
    }

    /// The same service scheduling mid-flow TCP segments by its hash
    /// ([`ServiceConfig::midflow_hash`]).
    pub fn midflow_hash(mut self) -> Self {
        self.midflow_hash = true;
        self
    }

    /// The same service, persistent for `timeout` seconds.
    pub fn persistent(mut self, timeout: u32) -> Self {
        self.persistent = Some(timeout);
        self
    }

    /// The same service with persistence engine `pe` (`--pe`).
    pub fn pe(mut self, pe: PersistEngine) -> Self {
        self.pe = Some(pe);
        self
    }

    /// The same service holding at most `n` connections ([`ServiceConfig::max_conn`]).
    pub fn max_conn(mut self, n: u32) -> Self {
        self.max_conn = n;
        self
    }

    /// The same service with persistence netmask of length `prefix` (`-M`).
    pub fn netmask(mut self, prefix: u8) -> Self {
        self.netmask = Netmask::prefix(self.key.af(), prefix);
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
