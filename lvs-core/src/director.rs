//! The director (`ip_vs_core.c` for the packet path, `ip_vs_ctl.c` for the control API): owns
//! services, real servers, the connection table and the statistics.
//!
//! Data path, as the kernel's `ip_vs_in` / `ip_vs_out`: parse → NAT reply index → connection
//! index (with the SYN-reuse rule) → for a new flow: service lookup (fwmark, then
//! `proto VIP:port`, then `proto VIP:0`), persistence and the scheduler → statistics → state
//! transition → timer → the connection's forwarding method.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

use crate::addr::{raw, Af, Endpoint, ServiceKey};
use crate::conn::table::{InKey, OutKey};
use crate::conn::{cf, Conn, ConnId, ConnInfo, ConnTable, TableStats, NIL};
use crate::dest::{DestId, Dests, FwdMethod, RealServer, F_AVAILABLE, MAX_WEIGHT};
use crate::error::{Error, Reason};
use crate::neigh::{MacAddr, Neighbour, NeighbourTable};
use crate::persist::template_key;
use crate::proto::tcp::{self, flags, TcpDir, TcpState};
use crate::proto::Timeouts;
use crate::sched::{SchedCx, SchedError, SchedFactory, SeededRng};
use crate::service::{Service, ServiceConfig, ServiceView, MAX_PERSIST_TIMEOUT};
use crate::stats::{Stats, EST_INTERVAL_NS};
use crate::time::Instant;
use crate::wire::{self, ipproto, Frag, Frame, PacketMeta, ParseError};
use crate::xmit::icmp::IcmpKind;
use crate::xmit::tun::{TunError, Tunnel};
use crate::xmit::{dr, icmp, nat, tun, XmitError};

/// Maps a parsed packet to a firewall mark (0 = none): the application's stand-in for
/// iptables/nft marking, consulted for frames that arrive without a mark.
pub type Classifier = Box<dyn Fn(&PacketMeta) -> u32 + Send>;

/// How a director is set up. Hash and random seeds come from here, never from a constant.
#[derive(Clone, Debug)]
pub struct DirectorConfig {
    /// Most connections and templates the table holds; beyond it a new flow is dropped.
    pub max_conns: usize,
    /// Seeds of the connection-table hashes. The defaults are fixed constants, fine for tests
    /// but predictable: a director facing untrusted traffic takes random ones
    /// ([`DirectorConfig::with_random_seeds`] with `std`, or the platform's RNG without it), so
    /// an attacker cannot aim table collisions.
    pub hash_seeds: [u64; 4],
    /// Seed of the schedulers' random generator.
    pub rng_seed: u64,
    /// The director's MAC: the source of every frame it sends.
    pub mac: MacAddr,
    /// The director's IPv4 address (outer source of IPv4 tunnels).
    pub addr4: Option<Ipv4Addr>,
    /// The director's IPv6 address (outer source of IPv6 tunnels).
    pub addr6: Option<Ipv6Addr>,
    /// Path MTU toward tunnelled real servers.
    pub tun_mtu: u16,
    /// `sloppy_tcp`: any non-RST TCP packet may create a connection.
    pub sloppy_tcp: bool,
    /// `expire_nodest_conn`: drop a connection at its next packet once its server is deleted.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template`: a template whose server has weight 0 stops matching.
    pub expire_quiescent_template: bool,
    /// `conn_reuse_mode` (bit 1: reschedule a SYN on TIME_WAIT/CLOSE; bit 2: also FIN_WAIT of
    /// DR/TUN connections).
    pub conn_reuse_mode: u8,
    /// Answer refused packets with ICMP errors (port unreachable, fragmentation needed, time
    /// exceeded) as the kernel does.
    pub icmp_errors: bool,
    /// Answer a TCP segment to a virtual service that has no connection and cannot start one
    /// with a reset, as the kernel director's own TCP stack does (IPVS hands it such packets).
    pub tcp_resets: bool,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        DirectorConfig {
            max_conns: 1 << 20,
            hash_seeds: [0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344, 0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89],
            rng_seed: 0x4528_21E6_38D0_1377,
            mac: MacAddr::default(),
            addr4: None,
            addr6: None,
            tun_mtu: 1500,
            sloppy_tcp: false,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            icmp_errors: true,
            tcp_resets: true,
        }
    }
}

#[cfg(feature = "std")]
impl DirectorConfig {
    /// The same configuration with hash and scheduler seeds drawn from the operating system
    /// (through `std`'s randomly keyed hasher).
    pub fn with_random_seeds(mut self) -> Self {
        use core::hash::{BuildHasher, Hasher};
        let draw = |i: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.finish()
        };
        self.hash_seeds = [draw(0), draw(1), draw(2), draw(3)];
        self.rng_seed = draw(4);
        self
    }
}

/// What to do with a frame after [`Director::process`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place: send it out on `port`. `dest` is the real server it
    /// goes to (`None` for replies to clients and ICMP errors the director generated).
    Transmit {
        /// The application's port (interface) to send on.
        port: u16,
        /// The real server, if the frame goes to one.
        dest: Option<DestId>,
    },
    /// The frame was dropped; the reason was counted.
    Drop(Reason),
    /// Deliver the frame to the application's own stack (a `Local` real server).
    Local,
    /// Not for a virtual service: untouched, for the application to handle.
    NotMine,
}

/// One service, as listings see it.
pub struct ServiceInfo<'a> {
    /// Its configuration.
    pub config: &'a ServiceConfig,
    /// Its counters.
    pub stats: &'a Stats,
    /// Its real servers in list order.
    pub dests: ServiceView<'a>,
}

/// An entry of the small table that lets later fragments follow their first.
#[derive(Clone, Copy)]
struct FragEntry {
    conn: ConnId,
    key: InKey,
    expires: u64,
}

type FragKey = (bool, [u8; 16], [u8; 16], u32, u8);

/// How long a fragment entry lives (the kernel's `ipfrag_time`).
const FRAG_TIMEOUT_NS: u64 = 30_000_000_000;
/// Most datagrams in flight whose later fragments are tracked.
const FRAG_MAX: usize = 4096;

/// The director: the whole IPVS state of one shard.
pub struct Director {
    cfg: DirectorConfig,
    factory: SchedFactory,
    classifier: Option<Classifier>,
    svcs: Vec<Option<Service>>,
    svc_index: HashMap<ServiceKey, u32, ahash::RandomState>,
    dests: Dests,
    conns: ConnTable,
    nat_conns: usize,
    timeouts: Timeouts,
    stats: Stats,
    drops: [u64; Reason::COUNT],
    neigh: NeighbourTable,
    rng: SeededRng,
    due: Vec<ConnId>,
    next_est: Option<u64>,
    frags: HashMap<FragKey, FragEntry, ahash::RandomState>,
    ip_id: u16,
}

impl Director {
    /// A director with no services; `factory` makes schedulers by name (`lvs_sched::by_name`).
    pub fn new(cfg: DirectorConfig, factory: SchedFactory) -> Self {
        let [a, b, c, d] = cfg.hash_seeds;
        let hasher = || ahash::RandomState::with_seeds(a, b, c, d);
        Director {
            conns: ConnTable::new(cfg.max_conns, hasher()),
            svc_index: HashMap::with_hasher(hasher()),
            neigh: NeighbourTable::new(hasher()),
            frags: HashMap::with_hasher(hasher()),
            rng: SeededRng::new(cfg.rng_seed),
            cfg,
            factory,
            classifier: None,
            svcs: Vec::new(),
            dests: Dests::new(),
            nat_conns: 0,
            timeouts: Timeouts::default(),
            stats: Stats::default(),
            drops: [0; Reason::COUNT],
            due: Vec::new(),
            next_est: None,
            ip_id: 0,
        }
    }

    /// An empty director with the same configuration and scheduler factory (dry runs).
    pub(crate) fn scratch(&self) -> Director {
        Director::new(self.cfg.clone(), self.factory)
    }

    /// The configuration.
    pub fn config(&self) -> &DirectorConfig {
        &self.cfg
    }

    /// Installs the classifier that marks frames for fwmark services.
    pub fn set_classifier(&mut self, c: Classifier) {
        self.classifier = Some(c);
    }

    /// Reserves table room for `n` connections now, so the data path does not allocate later.
    pub fn reserve(&mut self, n: usize) {
        self.conns.reserve(n);
    }

    // ----- neighbours -----

    /// Tells the director the MAC (and port) of a host on a link: real servers and gateways.
    pub fn set_neighbour(&mut self, ip: IpAddr, n: Neighbour) {
        self.neigh.entries.insert(ip, n);
        self.refresh_next_hops();
    }

    /// Sets the default gateway of a family (the next hop toward clients).
    pub fn set_gateway(&mut self, af: Af, n: Neighbour) {
        match af {
            Af::V4 => self.neigh.gw4 = Some(n),
            Af::V6 => self.neigh.gw6 = Some(n),
        }
        self.refresh_next_hops();
    }

    fn next_hop(neigh: &NeighbourTable, rs: &RealServer) -> Option<Neighbour> {
        match rs.fwd {
            // Direct routing needs the server on a link of ours.
            FwdMethod::Route => neigh.entries.get(&rs.endpoint.addr).copied(),
            _ => neigh.route(&rs.endpoint.addr),
        }
    }

    fn refresh_next_hops(&mut self) {
        let neigh = &self.neigh;
        for d in self.dests.iter_mut() {
            d.nh = Self::next_hop(neigh, &d.cfg);
        }
    }

    // ----- services -----

    fn validate_service(&self, cfg: &ServiceConfig) -> Result<(), Error> {
        match cfg.key {
            ServiceKey::Fwmark { mark: 0, .. } => return Err(Error::ZeroFwmark),
            ServiceKey::Inet { proto: crate::addr::Proto::Sctp, .. } => {
                return Err(Error::Unsupported("SCTP services"))
            }
            ServiceKey::Inet { port: 0, .. } if cfg.persistent.is_none() => return Err(Error::PortZeroNotPersistent),
            _ => {}
        }
        if let Some(t) = cfg.persistent {
            if t == 0 || t > MAX_PERSIST_TIMEOUT {
                return Err(Error::BadTimeout(t));
            }
        }
        if cfg.netmask == 0 || cfg.netmask > cfg.key.af().max_prefix() {
            return Err(Error::BadNetmask);
        }
        Ok(())
    }

    fn make_scheduler(&self, cfg: &ServiceConfig) -> Result<Box<dyn crate::sched::Scheduler>, Error> {
        let s = (self.factory)(&cfg.scheduler).map_err(|e| match e {
            SchedError::Unknown => Error::UnknownScheduler(cfg.scheduler.clone()),
            SchedError::Invalid(m) => Error::SchedulerRejected(m),
        })?;
        if !s.accepts_flags(cfg.sched_flags) {
            return Err(Error::BadSchedFlags);
        }
        Ok(s)
    }

    fn svc_idx(&self, key: &ServiceKey) -> Result<u32, Error> {
        self.svc_index.get(key).copied().ok_or(Error::NoSuchService)
    }

    fn svc(&self, i: u32) -> Option<&Service> {
        self.svcs.get(i as usize).and_then(Option::as_ref)
    }

    fn svc_mut(&mut self, i: u32) -> Option<&mut Service> {
        self.svcs.get_mut(i as usize).and_then(Option::as_mut)
    }

    /// `ipvsadm -A`: adds a virtual service.
    ///
    /// # Errors
    /// [`Error::ServiceExists`], [`Error::UnknownScheduler`], [`Error::BadNetmask`],
    /// [`Error::BadTimeout`], [`Error::PortZeroNotPersistent`], [`Error::ZeroFwmark`],
    /// [`Error::BadSchedFlags`], [`Error::Unsupported`].
    pub fn add_service(&mut self, cfg: ServiceConfig) -> Result<(), Error> {
        if self.svc_index.contains_key(&cfg.key) {
            return Err(Error::ServiceExists);
        }
        self.validate_service(&cfg)?;
        let mut sched = self.make_scheduler(&cfg)?;
        sched
            .init_service(&ServiceView::new(&[], &self.dests, cfg.sched_flags))
            .map_err(|_| Error::SchedulerRejected("init"))?;
        let svc = Service { cfg: cfg.clone(), order: Vec::new(), sched, stats: Stats::default() };
        let idx = match self.svcs.iter().position(Option::is_none) {
            Some(i) => {
                self.svcs[i] = Some(svc);
                i
            }
            None => {
                self.svcs.push(Some(svc));
                self.svcs.len() - 1
            }
        };
        self.svc_index.insert(cfg.key, idx as u32);
        Ok(())
    }

    /// `ipvsadm -E`: changes a service's scheduler, persistence or flags.
    ///
    /// # Errors
    /// As [`Director::add_service`], and [`Error::NoSuchService`].
    pub fn edit_service(&mut self, cfg: ServiceConfig) -> Result<(), Error> {
        let i = self.svc_idx(&cfg.key)?;
        self.validate_service(&cfg)?;
        let svc = self.svc(i).ok_or(Error::NoSuchService)?;
        let new_sched = if svc.cfg.scheduler != cfg.scheduler || svc.cfg.sched_flags != cfg.sched_flags {
            let mut s = self.make_scheduler(&cfg)?;
            s.init_service(&ServiceView::new(&svc.order, &self.dests, cfg.sched_flags)).map_err(|e| match e {
                SchedError::Invalid(m) => Error::SchedulerRejected(m),
                SchedError::Unknown => Error::UnknownScheduler(cfg.scheduler.clone()),
            })?;
            Some(s)
        } else {
            None
        };
        let svc = self.svc_mut(i).ok_or(Error::NoSuchService)?;
        if let Some(s) = new_sched {
            svc.sched = s;
        }
        svc.cfg = cfg;
        Ok(())
    }

    /// `ipvsadm -D`: deletes a service. Its servers linger, unlisted, while connections use them.
    ///
    /// # Errors
    /// [`Error::NoSuchService`].
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        let i = self.svc_idx(key)?;
        let order = self.svc(i).map(|s| s.order.clone()).unwrap_or_default();
        for id in order {
            self.retire_dest(id);
        }
        self.svcs[i as usize] = None;
        self.svc_index.remove(key);
        Ok(())
    }

    /// `ipvsadm -C`: deletes every service.
    pub fn clear(&mut self) {
        let keys: Vec<ServiceKey> = self.svc_index.keys().copied().collect();
        for k in keys {
            let _ = self.del_service(&k);
        }
    }

    /// `ipvsadm -Z [service]`: zeroes counters (and restarts rate estimation) of one service and
    /// its servers, or of everything.
    ///
    /// # Errors
    /// [`Error::NoSuchService`].
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), Error> {
        let targets: Vec<u32> = match key {
            Some(k) => alloc::vec![self.svc_idx(k)?],
            None => {
                self.stats.zero();
                self.svc_index.values().copied().collect()
            }
        };
        for i in targets {
            let order = match self.svc_mut(i) {
                Some(s) => {
                    s.stats.zero();
                    s.order.clone()
                }
                None => continue,
            };
            for id in order {
                if let Some(d) = self.dests.get_mut(id) {
                    d.stats.zero();
                }
            }
        }
        Ok(())
    }

    /// `ipvsadm --set tcp tcpfin udp` (0 leaves a value unchanged).
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        self.timeouts.set(tcp, tcpfin, udp);
    }

    /// The current timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    // ----- real servers -----

    fn validate_dest(&self, svc: &Service, rs: &RealServer) -> Result<(), Error> {
        if rs.weight > MAX_WEIGHT {
            return Err(Error::WeightOutOfRange(rs.weight));
        }
        if rs.l_threshold > rs.u_threshold {
            return Err(Error::BadThreshold { upper: rs.u_threshold, lower: rs.l_threshold });
        }
        if Af::of(&rs.endpoint.addr) != svc.cfg.key.af() && rs.fwd != FwdMethod::Tunnel {
            return Err(Error::FamilyMismatch);
        }
        Ok(())
    }

    fn find_dest(&self, svc: &Service, ep: &Endpoint) -> Option<(usize, DestId)> {
        svc.order
            .iter()
            .enumerate()
            .find(|(_, id)| self.dests.get(**id).is_some_and(|d| d.cfg.endpoint == *ep))
            .map(|(p, id)| (p, *id))
    }

    /// `ipvsadm -a`: adds a real server at the head of the service's list (the kernel's order).
    /// A server deleted from this service that still lingers is taken back.
    ///
    /// # Errors
    /// [`Error::NoSuchService`], [`Error::DestExists`], [`Error::WeightOutOfRange`],
    /// [`Error::BadThreshold`], [`Error::FamilyMismatch`], [`Error::SchedulerRejected`].
    pub fn add_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<DestId, Error> {
        let i = self.svc_idx(key)?;
        let svc = self.svc(i).ok_or(Error::NoSuchService)?;
        self.validate_dest(svc, &rs)?;
        if self.find_dest(svc, &rs.endpoint).is_some() {
            return Err(Error::DestExists);
        }
        let trashed = self
            .dests
            .iter()
            .find(|(_, d)| d.svc == i && d.flags & F_AVAILABLE == 0 && d.cfg.endpoint == rs.endpoint)
            .map(|(id, _)| id);
        let nh = Self::next_hop(&self.neigh, &rs);
        let id = match trashed {
            Some(id) => {
                if let Some(d) = self.dests.get_mut(id) {
                    Self::update_dest(d, rs);
                    d.flags |= F_AVAILABLE;
                    d.nh = nh;
                }
                id
            }
            None => {
                let id = self.dests.insert(rs, i);
                if let Some(d) = self.dests.get_mut(id) {
                    d.nh = nh;
                }
                id
            }
        };
        let Some(svc) = self.svcs.get_mut(i as usize).and_then(Option::as_mut) else {
            return Err(Error::NoSuchService);
        };
        svc.order.insert(0, id);
        let view = ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags);
        if let Err(e) = svc.sched.add_dest(&view, id) {
            svc.order.remove(0);
            let view = ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags);
            svc.sched.del_dest(&view, id, 0);
            self.retire_unlinked(id);
            return Err(match e {
                SchedError::Invalid(m) => Error::SchedulerRejected(m),
                SchedError::Unknown => Error::SchedulerRejected("add"),
            });
        }
        Ok(id)
    }

    /// `__ip_vs_update_dest`: applies a configuration to a server.
    fn update_dest(d: &mut crate::dest::Dest, rs: RealServer) {
        if rs.u_threshold == 0 || rs.u_threshold > d.cfg.u_threshold {
            d.flags &= !crate::dest::F_OVERLOAD;
        }
        d.set_weight(rs.weight);
        d.cfg = rs;
    }

    /// `ipvsadm -e`: changes a real server's weight, thresholds or method.
    ///
    /// # Errors
    /// [`Error::NoSuchService`], [`Error::NoSuchDest`], [`Error::WeightOutOfRange`],
    /// [`Error::BadThreshold`], [`Error::FamilyMismatch`].
    pub fn edit_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), Error> {
        let i = self.svc_idx(key)?;
        let svc = self.svc(i).ok_or(Error::NoSuchService)?;
        self.validate_dest(svc, &rs)?;
        let (_, id) = self.find_dest(svc, &rs.endpoint).ok_or(Error::NoSuchDest)?;
        let nh = Self::next_hop(&self.neigh, &rs);
        if let Some(d) = self.dests.get_mut(id) {
            Self::update_dest(d, rs);
            d.nh = nh;
        }
        if let Some(svc) = self.svcs.get_mut(i as usize).and_then(Option::as_mut) {
            let view = ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags);
            svc.sched.upd_dest(&view, id);
        }
        Ok(())
    }

    /// `ipvsadm -d`: removes a real server. Its connections keep it alive, unlisted, until they
    /// expire; their packets are dropped (or the connections expired at once with
    /// `expire_nodest_conn`).
    ///
    /// # Errors
    /// [`Error::NoSuchService`], [`Error::NoSuchDest`].
    pub fn del_dest(&mut self, key: &ServiceKey, ep: &Endpoint) -> Result<(), Error> {
        let i = self.svc_idx(key)?;
        let svc = self.svc(i).ok_or(Error::NoSuchService)?;
        let (pos, id) = self.find_dest(svc, ep).ok_or(Error::NoSuchDest)?;
        if let Some(svc) = self.svcs.get_mut(i as usize).and_then(Option::as_mut) {
            svc.order.remove(pos);
            let view = ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags);
            svc.sched.del_dest(&view, id, pos);
        }
        self.retire_unlinked(id);
        Ok(())
    }

    /// Unlinks a server from its service's list and retires it (service deletion).
    fn retire_dest(&mut self, id: DestId) {
        let svc_i = self.dests.get(id).map(|d| d.svc);
        if let Some(svc) = svc_i.and_then(|i| self.svcs.get_mut(i as usize)).and_then(Option::as_mut) {
            svc.order.retain(|x| *x != id);
        }
        self.retire_unlinked(id);
    }

    /// Marks an unlinked server unavailable and frees it when nothing refers to it.
    fn retire_unlinked(&mut self, id: DestId) {
        let free = match self.dests.get_mut(id) {
            Some(d) => {
                d.flags &= !F_AVAILABLE;
                d.refcnt == 0
            }
            None => false,
        };
        if free {
            self.dests.remove(id);
        }
    }

    // ----- reading state -----

    /// The services with their servers, in no particular order (listings sort them).
    pub fn services(&self) -> impl Iterator<Item = ServiceInfo<'_>> {
        self.svcs.iter().flatten().map(|s| ServiceInfo {
            config: &s.cfg,
            stats: &s.stats,
            dests: ServiceView::new(&s.order, &self.dests, s.cfg.sched_flags),
        })
    }

    /// One service.
    pub fn service(&self, key: &ServiceKey) -> Option<ServiceInfo<'_>> {
        let s = self.svc(*self.svc_index.get(key)?)?;
        Some(ServiceInfo {
            config: &s.cfg,
            stats: &s.stats,
            dests: ServiceView::new(&s.order, &self.dests, s.cfg.sched_flags),
        })
    }

    /// A real server by handle (deleted ones that linger included).
    pub fn dest(&self, id: DestId) -> Option<crate::dest::DestView<'_>> {
        self.dests.view(id)
    }

    /// Global counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Drop counters, indexed by [`Reason::index`].
    pub fn drops(&self) -> &[u64; Reason::COUNT] {
        &self.drops
    }

    /// Live connections and templates.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Memory held by the connection table.
    pub fn table_stats(&self) -> TableStats {
        self.conns.stats()
    }

    /// Every connection and template, as `ipvsadm -Lc` lists them.
    pub fn connections(&self, now: Instant) -> Vec<ConnInfo> {
        self.conns.infos(now.as_nanos())
    }

    // ----- time -----

    fn start_clock(&mut self, now: Instant) {
        self.conns.wheel.start(now.as_nanos());
        if self.next_est.is_none() {
            self.next_est = Some(now.as_nanos() + EST_INTERVAL_NS);
        }
    }

    /// Expires connections whose time has come, runs the rate estimator every 2 s and lets
    /// schedulers age their caches. Call it by [`Director::next_deadline`].
    ///
    /// DoS warning: the work grows with the number of entries that expire at once.
    pub fn tick(&mut self, now: Instant) {
        self.start_clock(now);
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        self.conns.pop_due(now.as_nanos(), &mut due);
        for id in due.iter().copied() {
            self.expire(now, id);
        }
        self.due = due;
        if let Some(mut t) = self.next_est {
            if now.as_nanos() >= t {
                if now.as_nanos() - t > 10 * EST_INTERVAL_NS {
                    t = now.as_nanos() - EST_INTERVAL_NS;
                }
                while now.as_nanos() >= t {
                    self.estimate();
                    t += EST_INTERVAL_NS;
                }
                self.next_est = Some(t);
                for s in self.svcs.iter_mut().flatten() {
                    s.sched.tick(now);
                }
                let n = now.as_nanos();
                self.frags.retain(|_, e| e.expires > n);
            }
        }
    }

    fn estimate(&mut self) {
        self.stats.estimate();
        for s in self.svcs.iter_mut().flatten() {
            s.stats.estimate();
        }
        for d in self.dests.iter_mut() {
            d.stats.estimate();
        }
    }

    /// When [`Director::tick`] should next run, or `None` when nothing waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let wheel = self.conns.wheel.next_deadline();
        let est = if self.svc_index.is_empty() { None } else { self.next_est };
        match (wheel, est) {
            (Some(a), Some(b)) => Some(Instant(a.min(b))),
            (a, b) => a.or(b).map(Instant),
        }
    }

    /// `ip_vs_conn_expire`: a template that still controls connections waits another period;
    /// anything else is freed.
    fn expire(&mut self, now: Instant, id: ConnId) {
        let Some(c) = self.conns.get_mut(id) else { return };
        if c.n_control > 0 {
            c.expires = now.as_nanos() + u64::from(c.timeout_ms) * 1_000_000;
            self.conns.relink(id);
            return;
        }
        if let Some(c) = self.conns.remove_unarmed(id) {
            self.release(&c);
        }
    }

    /// Frees an entry that is still armed (expire-now).
    fn expire_now(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove_armed(id) {
            self.release(&c);
        }
    }

    /// What freeing an entry undoes: the controller's count and the server binding.
    fn release(&mut self, c: &Conn) {
        if c.flags & cf::OUT_HASHED != 0 {
            self.nat_conns = self.nat_conns.saturating_sub(1);
        }
        if c.control != NIL {
            if let Some(t) = self.conns.get_mut(ConnId(c.control)) {
                t.n_control = t.n_control.saturating_sub(1);
            }
        }
        self.unbind_dest(c);
    }

    /// `ip_vs_bind_dest`.
    fn bind_dest(&mut self, c: &Conn) {
        let Some(d) = c.dest_id().and_then(|id| self.dests.get_mut(id)) else { return };
        if c.is_template() {
            d.persist += 1;
        } else if c.flags & cf::INACTIVE != 0 {
            d.inactive += 1;
        } else {
            d.active += 1;
        }
        d.refcnt += 1;
        d.check_overload_on_bind();
    }

    /// `ip_vs_unbind_dest`.
    fn unbind_dest(&mut self, c: &Conn) {
        let Some(id) = c.dest_id() else { return };
        let Some(d) = self.dests.get_mut(id) else { return };
        if c.is_template() {
            d.persist = d.persist.saturating_sub(1);
        } else if c.flags & cf::INACTIVE != 0 {
            d.inactive = d.inactive.saturating_sub(1);
        } else {
            d.active = d.active.saturating_sub(1);
        }
        d.check_overload_on_unbind();
        d.refcnt = d.refcnt.saturating_sub(1);
        if d.refcnt == 0 && d.flags & F_AVAILABLE == 0 {
            self.dests.remove(id);
        }
    }

    // ----- the packet path -----

    /// Processes a burst: one verdict per frame.
    pub fn process_burst(&mut self, now: Instant, frames: &mut [Frame], verdicts: &mut [Verdict]) {
        for (f, v) in frames.iter_mut().zip(verdicts.iter_mut()) {
            *v = self.process(now, f);
        }
    }

    /// Processes one frame in place and says what to do with it.
    pub fn process(&mut self, now: Instant, frame: &mut Frame) -> Verdict {
        self.start_clock(now);
        let meta = match wire::parse(frame.data()) {
            Ok(m) => m,
            Err(ParseError::NotIp) => return Verdict::NotMine,
            Err(ParseError::Malformed) => return self.drop(Reason::Malformed),
        };
        self.process_meta(now, frame, &meta)
    }

    fn drop(&mut self, r: Reason) -> Verdict {
        self.drops[r.index()] += 1;
        Verdict::Drop(r)
    }

    fn process_meta(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta) -> Verdict {
        if let Some(e) = meta.icmp {
            return self.icmp_in(frame, meta, &e);
        }
        if meta.proto != ipproto::TCP && meta.proto != ipproto::UDP {
            return Verdict::NotMine;
        }
        if let Frag::Later(id) = meta.frag {
            return self.later_fragment(now, frame, meta, id);
        }
        let v6 = meta.af == Af::V6;
        let (src, dst) = (raw(&meta.src), raw(&meta.dst));
        let key =
            InKey { v6, tmpl: false, proto: meta.proto, caddr: src, cport: meta.sport, vaddr: dst, vport: meta.dport };
        let mut found = self.conns.find_in(&key);
        // A NAT reply can only miss the client-side index; probe the reply index only then.
        if found.is_none() && self.nat_conns > 0 {
            let ok = OutKey { v6, proto: meta.proto, daddr: src, dport: meta.sport, caddr: dst, cport: meta.dport };
            if let Some(id) = self.conns.find_out(&ok) {
                return self.out_path(now, frame, meta, id);
            }
        }
        if let Some(id) = found {
            if meta.proto == ipproto::TCP && meta.tcp_flags & flags::SYN != 0 && self.should_reschedule(id) {
                self.expire_now(id);
                found = None;
            }
        }
        let id = match found {
            Some(id) => {
                let dest = self.conns.get(id).and_then(Conn::dest_id);
                if !dest.is_some_and(|d| self.dest_available(d)) {
                    if self.cfg.expire_nodest_conn {
                        self.expire_now(id);
                    }
                    return self.drop(Reason::DestUnavailable);
                }
                id
            }
            None => match self.new_flow(now, frame, meta) {
                Ok(id) => id,
                Err(v) => return v,
            },
        };
        if let Frag::First(fid) = meta.frag {
            self.remember_fragment(now, meta, fid, id, key);
        }
        self.in_path(now, frame, meta, id)
    }

    /// Whether a server is still linked into its service (not deleted).
    fn dest_available(&self, id: DestId) -> bool {
        self.dests.get(id).is_some_and(|d| d.flags & F_AVAILABLE != 0)
    }

    /// The SYN-reuse rule of `ip_vs_in` (kernel 5.16+), without conntrack's drop.
    fn should_reschedule(&self, id: ConnId) -> bool {
        let Some(c) = self.conns.get(id) else { return false };
        if self.cfg.expire_nodest_conn {
            if let Some(d) = c.dest_id().and_then(|d| self.dests.get(d)) {
                if d.cfg.weight == 0 {
                    return true;
                }
            }
        }
        let mode = self.cfg.conn_reuse_mode;
        if mode == 0 || c.proto != ipproto::TCP {
            return false;
        }
        let st = TcpState::from_u8(c.state);
        matches!(st, Some(TcpState::TimeWait | TcpState::Close))
            || (mode & 2 != 0 && st == Some(TcpState::FinWait) && c.flags & cf::NOOUTPUT != 0)
    }

    /// Finds the service of a packet with no connection: fwmark, then `proto VIP:port`, then
    /// `proto VIP:0` (`ip_vs_service_find`).
    fn find_service(&self, frame: &Frame, meta: &PacketMeta) -> Option<u32> {
        let mark = if frame.mark != 0 { frame.mark } else { self.classifier.as_ref().map_or(0, |c| c(meta)) };
        if mark != 0 {
            if let Some(i) = self.svc_index.get(&ServiceKey::Fwmark { mark, af: meta.af }) {
                return Some(*i);
            }
        }
        let proto = crate::addr::Proto::from_number(meta.proto)?;
        let k = ServiceKey::Inet { proto, addr: meta.dst, port: meta.dport };
        if let Some(i) = self.svc_index.get(&k) {
            return Some(*i);
        }
        self.svc_index.get(&ServiceKey::Inet { proto, addr: meta.dst, port: 0 }).copied()
    }

    /// A packet without a connection: find its service, schedule it, create the connection.
    fn new_flow(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta) -> Result<ConnId, Verdict> {
        let Some(si) = self.find_service(frame, meta) else { return Err(Verdict::NotMine) };
        if meta.proto == ipproto::TCP {
            let f = meta.tcp_flags;
            let may = f & flags::RST == 0 && (f & flags::SYN != 0 || self.cfg.sloppy_tcp);
            if !may {
                return Err(self.reset(frame, meta));
            }
        }
        match self.schedule(now, si, meta) {
            Ok(id) => Ok(id),
            Err(Reason::NoDest) => Err(self.refuse(frame, meta, Reason::NoDest, IcmpKind::PortUnreachable)),
            Err(r) => Err(self.drop(r)),
        }
    }

    /// `ip_vs_schedule` and `ip_vs_sched_persist`.
    fn schedule(&mut self, now: Instant, si: u32, meta: &PacketMeta) -> Result<ConnId, Reason> {
        let Some(svc) = self.svcs.get_mut(si as usize).and_then(Option::as_mut) else { return Err(Reason::NoDest) };
        let key = svc.cfg.key;
        let one_packet = svc.cfg.one_packet && meta.proto == ipproto::UDP;
        let Some(ptimeout) = svc.cfg.persistent else {
            if key.fwmark().is_none() && meta.dport != key.port() {
                return Err(Reason::PortMismatch);
            }
            let view = ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags);
            let mut cx = SchedCx { now, rng: &mut self.rng };
            let dest = svc.sched.schedule(&mut cx, &view, meta).ok_or(Reason::NoDest)?;
            let dport = self.dests.get(dest).map_or(meta.dport, |d| d.cfg.endpoint.port);
            let dport = if dport == 0 { meta.dport } else { dport };
            return self.create_conn(now, meta, si, dest, dport, NIL, one_packet);
        };
        let tk = template_key(&key, svc.cfg.netmask, meta);
        let mut tmpl = self.conns.find_in(&tk.key);
        if let Some(t) = tmpl {
            if !self.check_template(t) {
                tmpl = None;
            }
        }
        let (tid, dest) = match tmpl {
            Some(t) => {
                let dest = self.conns.get(t).and_then(Conn::dest_id).ok_or(Reason::NoDest)?;
                (t, dest)
            }
            None => {
                let Some(svc) = self.svcs.get_mut(si as usize).and_then(Option::as_mut) else {
                    return Err(Reason::NoDest);
                };
                let view = ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags);
                let mut cx = SchedCx { now, rng: &mut self.rng };
                let dest = svc.sched.schedule(&mut cx, &view, meta).ok_or(Reason::NoDest)?;
                let d = self.dests.get(dest).ok_or(Reason::NoDest)?;
                let tport = if tk.on_svc_port { d.cfg.endpoint.port } else { 0 };
                let t = Conn {
                    caddr: tk.key.caddr,
                    vaddr: tk.key.vaddr,
                    daddr: raw(&d.cfg.endpoint.addr),
                    cport: 0,
                    vport: tk.key.vport,
                    dport: tport,
                    proto: tk.key.proto,
                    state: 0,
                    flags: self.conn_flags(dest, meta.af) | cf::TEMPLATE | cf::IN_HASHED,
                    dest: dest.0,
                    control: NIL,
                    n_control: 0,
                    timeout_ms: ptimeout.saturating_mul(1000),
                    expires: 0,
                    tprev: NIL,
                    tnext: NIL,
                    tick: 0,
                };
                let t = self.insert(t).ok_or(Reason::TableFull)?;
                (t, dest)
            }
        };
        // Using a template re-arms it (`ip_vs_conn_put` on the template).
        let ms = self.conns.get(tid).map_or(0, |t| t.timeout_ms);
        self.conns.arm(tid, now.as_nanos() + u64::from(ms) * 1_000_000);
        let dport = match self.dests.get(dest) {
            Some(d) if meta.dport == key.port() && d.cfg.endpoint.port != 0 => d.cfg.endpoint.port,
            _ => meta.dport,
        };
        let id = self.create_conn(now, meta, si, dest, dport, tid.0, one_packet)?;
        if let Some(t) = self.conns.get_mut(tid) {
            t.n_control += 1;
        }
        Ok(id)
    }

    /// `ip_vs_check_template`: a template whose server is gone (or quiesced, with
    /// `expire_quiescent_template`) stops matching; it lingers until it expires.
    fn check_template(&mut self, t: ConnId) -> bool {
        let d = self.conns.get(t).and_then(Conn::dest_id).and_then(|d| self.dests.get(d));
        let valid =
            d.is_some_and(|d| d.flags & F_AVAILABLE != 0 && !(self.cfg.expire_quiescent_template && d.cfg.weight == 0));
        if !valid {
            self.conns.unhash_in(t);
        }
        valid
    }

    /// The flags a connection to `dest` starts with (`dest->conn_flags`).
    fn conn_flags(&self, dest: DestId, af: Af) -> u16 {
        let fwd = self.dests.get(dest).map_or(FwdMethod::Route, |d| d.cfg.fwd);
        let mut f = Conn::fwd_bits(fwd) | cf::INACTIVE;
        if fwd != FwdMethod::Masq {
            f |= cf::NOOUTPUT;
        }
        if af == Af::V6 {
            f |= cf::V6;
        }
        f
    }

    fn insert(&mut self, c: Conn) -> Option<ConnId> {
        let id = self.conns.insert(c.clone())?;
        if c.flags & cf::OUT_HASHED != 0 {
            self.nat_conns += 1;
        }
        self.bind_dest(&c);
        Some(id)
    }

    /// `ip_vs_conn_new` + `ip_vs_conn_stats`.
    #[allow(clippy::too_many_arguments)]
    fn create_conn(
        &mut self,
        now: Instant,
        meta: &PacketMeta,
        si: u32,
        dest: DestId,
        dport: u16,
        control: u32,
        one_packet: bool,
    ) -> Result<ConnId, Reason> {
        let d = self.dests.get(dest).ok_or(Reason::NoDest)?;
        let mut flags = self.conn_flags(dest, meta.af);
        if one_packet {
            flags |= cf::ONE_PACKET;
        } else {
            flags |= cf::IN_HASHED;
            if d.cfg.fwd == FwdMethod::Masq {
                flags |= cf::OUT_HASHED;
            }
        }
        let c = Conn {
            caddr: raw(&meta.src),
            vaddr: raw(&meta.dst),
            daddr: raw(&d.cfg.endpoint.addr),
            cport: meta.sport,
            vport: meta.dport,
            dport,
            proto: meta.proto,
            state: TcpState::None as u8,
            flags,
            dest: dest.0,
            control,
            n_control: 0,
            timeout_ms: 3000,
            expires: now.as_nanos() + 3_000_000_000,
            tprev: NIL,
            tnext: NIL,
            tick: 0,
        };
        let id = self.insert(c).ok_or(Reason::TableFull)?;
        self.stats.conn();
        if let Some(s) = self.svc_mut(si) {
            s.stats.conn();
        }
        if let Some(d) = self.dests.get_mut(dest) {
            d.stats.conn();
        }
        Ok(id)
    }

    /// `set_tcp_state` / the UDP transition: moves the counters between ActiveConn and
    /// InActConn when the activity of the state changes, and sets the state's timeout.
    fn set_state(&mut self, id: ConnId, output: bool, tcp_flags: u8) {
        let Some(c) = self.conns.get_mut(id) else { return };
        let timeout_s = if c.proto == ipproto::TCP {
            let mut dir = if output { TcpDir::Output } else { TcpDir::Input };
            if c.flags & cf::NOOUTPUT != 0 {
                if output {
                    c.flags &= !cf::NOOUTPUT;
                } else {
                    dir = TcpDir::InputOnly;
                }
            }
            let cur = TcpState::from_u8(c.state).unwrap_or(TcpState::None);
            let new = tcp::next_state(dir, cur, tcp_flags);
            let inactive = c.flags & cf::INACTIVE != 0;
            if let Some(d) = c.dest_id().and_then(|d| self.dests.get_mut(d)) {
                if !inactive && !new.is_active() {
                    d.active = d.active.saturating_sub(1);
                    d.inactive += 1;
                    c.flags |= cf::INACTIVE;
                } else if inactive && new.is_active() {
                    d.inactive = d.inactive.saturating_sub(1);
                    d.active += 1;
                    c.flags &= !cf::INACTIVE;
                }
            }
            c.state = new as u8;
            self.timeouts.tcp[new as usize]
        } else {
            self.timeouts.udp
        };
        c.timeout_ms = timeout_s.saturating_mul(1000);
    }

    /// Counts a packet in the global, service and server statistics.
    fn count(&mut self, dest: DestId, bytes: u32, out: bool) {
        let svc = self.dests.get(dest).map(|d| d.svc);
        let apply = |s: &mut Stats| if out { s.packet_out(bytes) } else { s.packet_in(bytes) };
        apply(&mut self.stats);
        if let Some(d) = self.dests.get_mut(dest) {
            apply(&mut d.stats);
        }
        if let Some(s) = svc.and_then(|i| self.svc_mut(i)) {
            apply(&mut s.stats);
        }
    }

    /// Client → real server on connection `id`.
    fn in_path(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, id: ConnId) -> Verdict {
        let Some(c) = self.conns.get(id) else { return self.drop(Reason::DestUnavailable) };
        let Some(dest) = c.dest_id() else { return self.drop(Reason::DestUnavailable) };
        let (fwd, daddr, dport, one_packet) =
            (c.fwd(), crate::addr::from_raw(c.af(), &c.daddr), c.dport, c.flags & cf::ONE_PACKET != 0);
        self.count(dest, u32::from(meta.ip_len), false);
        self.set_state(id, false, meta.tcp_flags);
        let ms = self.conns.get(id).map_or(0, |c| c.timeout_ms);
        self.conns.arm(id, now.as_nanos() + u64::from(ms) * 1_000_000);
        let v = self.transmit(frame, meta, dest, fwd, &daddr, dport);
        if one_packet {
            self.expire_now(id);
        }
        v
    }

    /// Applies the forwarding method.
    fn transmit(
        &mut self,
        frame: &mut Frame,
        meta: &PacketMeta,
        dest: DestId,
        fwd: FwdMethod,
        daddr: &IpAddr,
        dport: u16,
    ) -> Verdict {
        if fwd == FwdMethod::Local {
            return Verdict::Local;
        }
        let Some(nh) = self.dests.get(dest).and_then(|d| d.nh) else { return self.drop(Reason::UnknownNeighbour) };
        let me = self.cfg.mac;
        let r = match fwd {
            FwdMethod::Route => dr::xmit(frame, meta, nh.mac, me),
            FwdMethod::Masq => nat::xmit_in(frame, meta, daddr, dport, nh.mac, me),
            FwdMethod::Tunnel => {
                let src = match Af::of(daddr) {
                    Af::V4 => self.cfg.addr4.map(IpAddr::V4),
                    Af::V6 => self.cfg.addr6.map(IpAddr::V6),
                };
                let Some(src) = src else { return self.drop(Reason::UnknownNeighbour) };
                self.ip_id = self.ip_id.wrapping_add(1);
                let t =
                    Tunnel { src, dst: *daddr, dst_mac: nh.mac, src_mac: me, mtu: self.cfg.tun_mtu, id: self.ip_id };
                match tun::xmit(frame, meta, &t) {
                    Ok(()) => Ok(()),
                    Err(TunError::Xmit(e)) => Err(e),
                    Err(TunError::TooBig { mtu, df: true }) => {
                        return self.refuse(frame, meta, Reason::MtuExceeded, IcmpKind::FragNeeded(mtu))
                    }
                    Err(TunError::TooBig { df: false, .. }) => return self.drop(Reason::MtuExceeded),
                }
            }
            FwdMethod::Local => Ok(()),
        };
        match r {
            Ok(()) => Verdict::Transmit { port: nh.port, dest: Some(dest) },
            Err(XmitError::TtlExpired) => self.refuse(frame, meta, Reason::TtlExpired, IcmpKind::TimeExceeded),
            Err(XmitError::Bounds) => self.drop(Reason::NoHeadroom),
        }
    }

    /// Drops the packet with `reason` and, when enabled, turns the frame into the ICMP error
    /// that tells the client (`ip_vs_leave`, `ip_vs_tunnel_xmit`'s PMTU branch, `decrement_ttl`).
    fn refuse(&mut self, frame: &mut Frame, meta: &PacketMeta, reason: Reason, kind: IcmpKind) -> Verdict {
        let v = self.drop(reason);
        if !self.cfg.icmp_errors || meta.icmp.is_some() || meta.proto == ipproto::ICMP || meta.proto == ipproto::ICMPV6
        {
            return v;
        }
        let Some(nh) = self.neigh.route(&meta.src) else { return v };
        self.ip_id = self.ip_id.wrapping_add(1);
        match icmp::error(frame, meta, kind, nh.mac, self.cfg.mac, self.ip_id) {
            Ok(()) => Verdict::Transmit { port: nh.port, dest: None },
            Err(_) => v,
        }
    }

    /// Drops a stray TCP segment and, unless it is itself a reset, answers it with one.
    fn reset(&mut self, frame: &mut Frame, meta: &PacketMeta) -> Verdict {
        let v = self.drop(Reason::NotSyn);
        if !self.cfg.tcp_resets || meta.tcp_flags & flags::RST != 0 {
            return v;
        }
        let Some(nh) = self.neigh.route(&meta.src) else { return v };
        match crate::xmit::rst::reset(frame, meta, nh.mac, self.cfg.mac) {
            Ok(()) => Verdict::Transmit { port: nh.port, dest: None },
            Err(_) => v,
        }
    }

    /// Real server → client on a NAT connection (`ip_vs_out` / `handle_response`).
    fn out_path(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, id: ConnId) -> Verdict {
        let Some(c) = self.conns.get(id) else { return Verdict::NotMine };
        let (vaddr, vport, dest) = (crate::addr::from_raw(c.af(), &c.vaddr), c.vport, c.dest_id());
        if let Some(d) = dest {
            self.count(d, u32::from(meta.ip_len), true);
        }
        self.set_state(id, true, meta.tcp_flags);
        let ms = self.conns.get(id).map_or(0, |c| c.timeout_ms);
        self.conns.arm(id, now.as_nanos() + u64::from(ms) * 1_000_000);
        let Some(nh) = self.neigh.route(&meta.dst) else { return self.drop(Reason::UnknownNeighbour) };
        match nat::xmit_out(frame, meta, &vaddr, vport, nh.mac, self.cfg.mac) {
            Ok(()) => Verdict::Transmit { port: nh.port, dest: None },
            Err(XmitError::TtlExpired) => self.drop(Reason::TtlExpired),
            Err(XmitError::Bounds) => self.drop(Reason::Malformed),
        }
    }

    // ----- fragments -----

    fn frag_key(meta: &PacketMeta, id: u32) -> FragKey {
        (meta.af == Af::V6, raw(&meta.src), raw(&meta.dst), id, meta.proto)
    }

    fn remember_fragment(&mut self, now: Instant, meta: &PacketMeta, fid: u32, conn: ConnId, key: InKey) {
        if self.frags.len() >= FRAG_MAX {
            let n = now.as_nanos();
            self.frags.retain(|_, e| e.expires > n);
            if self.frags.len() >= FRAG_MAX {
                return;
            }
        }
        let e = FragEntry { conn, key, expires: now.as_nanos() + FRAG_TIMEOUT_NS };
        self.frags.insert(Self::frag_key(meta, fid), e);
    }

    /// A non-first fragment follows the connection its first fragment used.
    fn later_fragment(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, fid: u32) -> Verdict {
        let fk = Self::frag_key(meta, fid);
        let live = self.frags.get(&fk).filter(|e| e.expires > now.as_nanos()).copied();
        let conn = live.and_then(|e| self.conns.find_in(&e.key).filter(|c| *c == e.conn));
        let Some(id) = conn else {
            // A fragment without ports can only be matched to a service by its address.
            let to_vip = self.svcs.iter().flatten().any(|s| match s.cfg.key {
                ServiceKey::Inet { addr, .. } => addr == meta.dst,
                ServiceKey::Fwmark { .. } => false,
            }) || self.find_service(frame, meta).is_some();
            return if to_vip { self.drop(Reason::StrayFragment) } else { Verdict::NotMine };
        };
        let Some(c) = self.conns.get(id) else { return self.drop(Reason::StrayFragment) };
        let Some(dest) = c.dest_id() else { return self.drop(Reason::StrayFragment) };
        let (fwd, daddr, dport) = (c.fwd(), crate::addr::from_raw(c.af(), &c.daddr), c.dport);
        if !self.dest_available(dest) {
            return self.drop(Reason::DestUnavailable);
        }
        self.count(dest, u32::from(meta.ip_len), false);
        self.transmit(frame, meta, dest, fwd, &daddr, dport)
    }

    // ----- ICMP errors -----

    /// `ip_vs_in_icmp` / `ip_vs_out_icmp`: an ICMP error quoting a packet of a known connection
    /// goes where that connection goes (translated for NAT); anything else is not ours.
    fn icmp_in(&mut self, frame: &mut Frame, meta: &PacketMeta, e: &wire::IcmpError) -> Verdict {
        let v6 = meta.af == Af::V6;
        let (qs, qd) = (raw(&e.src), raw(&e.dst));
        // An error from beyond the client about a packet we sent it (quoted VIP/RIP → client).
        let key = InKey { v6, tmpl: false, proto: e.proto, caddr: qd, cport: e.dport, vaddr: qs, vport: e.sport };
        if let Some(id) = self.conns.find_in(&key) {
            let Some(c) = self.conns.get(id) else { return Verdict::NotMine };
            let Some(dest) = c.dest_id() else { return Verdict::NotMine };
            let (fwd, daddr, dport) = (c.fwd(), crate::addr::from_raw(c.af(), &c.daddr), c.dport);
            if !self.dest_available(dest) {
                return self.drop(Reason::DestUnavailable);
            }
            self.count(dest, u32::from(meta.ip_len), false);
            if fwd == FwdMethod::Masq {
                return self.icmp_nat(frame, meta, e, dest, &daddr, dport, true);
            }
            return self.transmit(frame, meta, dest, fwd, &daddr, dport);
        }
        // An error from a NAT real server about a packet from the client (quoted client → RIP).
        if self.nat_conns > 0 {
            let ok = OutKey { v6, proto: e.proto, daddr: qd, dport: e.dport, caddr: qs, cport: e.sport };
            if let Some(id) = self.conns.find_out(&ok) {
                let Some(c) = self.conns.get(id) else { return Verdict::NotMine };
                let (vaddr, vport, dest) = (crate::addr::from_raw(c.af(), &c.vaddr), c.vport, c.dest_id());
                let Some(dest) = dest else { return Verdict::NotMine };
                self.count(dest, u32::from(meta.ip_len), true);
                return self.icmp_nat(frame, meta, e, dest, &vaddr, vport, false);
            }
        }
        Verdict::NotMine
    }

    /// Translates an ICMP error for a NAT connection, outer and quoted headers alike
    /// (`ip_vs_nat_icmp`): inbound, the outer destination and the quoted source become the real
    /// server; outbound, the outer source and the quoted destination become the virtual service.
    #[allow(clippy::too_many_arguments)]
    fn icmp_nat(
        &mut self,
        frame: &mut Frame,
        meta: &PacketMeta,
        e: &wire::IcmpError,
        dest: DestId,
        addr: &IpAddr,
        port: u16,
        inbound: bool,
    ) -> Verdict {
        let nh = if inbound { self.dests.get(dest).and_then(|d| d.nh) } else { self.neigh.route(&meta.dst) };
        let Some(nh) = nh else { return self.drop(Reason::UnknownNeighbour) };
        match crate::xmit::nat::xmit_icmp(frame, meta, e, addr, port, inbound, nh.mac, self.cfg.mac) {
            Ok(()) => Verdict::Transmit { port: nh.port, dest: inbound.then_some(dest) },
            Err(XmitError::TtlExpired) => self.drop(Reason::TtlExpired),
            Err(XmitError::Bounds) => self.drop(Reason::Malformed),
        }
    }
}

#[cfg(test)]
mod tests;
