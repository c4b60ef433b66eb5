//! The control API (`ip_vs_ctl.c`): services and real servers added, edited and deleted in the
//! kernel's list order, counters zeroed, timeouts set, and [`Command`]s — one per `ipvsadm`
//! verb, the sync daemons' included — run singly or as an all-or-nothing batch.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::IpAddr;

use super::{midflow, Director, Service};
use crate::addr::{Af, Endpoint, ServiceKey};
use crate::dest::{Dest, DestId, FwdMethod, RealServer, TunType, F_AVAILABLE, F_OVERLOAD, MAX_WEIGHT, NO_SVC};
use crate::error::Error;
use crate::proto::Timeouts;
use crate::sched::{SchedError, Scheduler};
use crate::service::{Netmask, ServiceConfig, ServiceView, MAX_PERSIST_TIMEOUT};
use crate::stats::Stats;
use crate::sync::{DaemonConfig, Role};

/// `IP_VS_DEST_TRASH_PERIOD` (120 s): how long a deleted server stays in the trash once nothing
/// refers to it; the trash timer runs every half period.
pub(super) const DEST_TRASH_PERIOD_NS: u64 = 120_000_000_000;

/// The sync interface MTU [`Director::execute`] gives [`Director::start_sync`]: the core knows
/// no interfaces. It only matters to a backup started without `--sync-maxlen`, whose message
/// limit becomes 1472 bytes (1452 over IPv6); an application that knows the real MTU calls
/// `start_sync` itself.
const COMMAND_MTU: u16 = 1500;

/// One control command, as an `ipvsadm` verb (the kernel's `IP_VS_SO_SET_*`) gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService(ServiceConfig),
    /// `-E`.
    EditService(ServiceConfig),
    /// `-D`.
    DelService(ServiceKey),
    /// `-a`.
    AddDest(ServiceKey, RealServer),
    /// `-e`.
    EditDest(ServiceKey, RealServer),
    /// `-d`.
    DelDest(ServiceKey, Endpoint),
    /// `-C`.
    Clear,
    /// `-Z [service]`.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`.
    SetTimeouts(u32, u32, u32),
    /// `--start-daemon master|backup` with its daemon options; run as
    /// [`Director::start_sync`] on a 1500-byte MTU.
    StartDaemon(Role, DaemonConfig),
    /// `--stop-daemon master|backup`, run as [`Director::stop_sync`].
    StopDaemon(Role),
    /// `-P` / `--add-laddr -z ADDR` of DPVS's ipvsadm, run as [`Director::add_laddr`].
    AddLaddr(ServiceKey, IpAddr),
    /// `-Q` / `--del-laddr -z ADDR`, run as [`Director::del_laddr`].
    DelLaddr(ServiceKey, IpAddr),
}

/// A batch that was refused: which command failed, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {error}", match index { Some(i) => alloc::format!("command {i}"), None => "current configuration".into() })]
pub struct BatchError {
    /// Index of the failing command in the batch; `None` when the current configuration could
    /// not be rebuilt to try the batch on (a scheduler that now refuses it).
    pub index: Option<usize>,
    /// What the control call said.
    pub error: Error,
}

/// Why a SYN proxy and a server's method do not go together.
const SYNPROXY_SPLICES: &str = "SYN proxy with DR, TUN, local or fnat64 real servers (NAT or FullNAT of the \
                                service's family only)";

/// Whether a real server lets the SYN proxy of a service of family `af` splice: the director
/// sees both directions, and no fnat64 header translation is involved.
fn splices(af: Af, rs: &RealServer) -> bool {
    matches!(rs.fwd, FwdMethod::Masq | FwdMethod::FullNat) && Af::of(&rs.endpoint.addr) == af
}

impl Director {
    /// Runs one command.
    ///
    /// # Errors
    /// The error of the control call it makes.
    pub fn execute(&mut self, c: &Command) -> Result<(), Error> {
        match c {
            Command::AddService(s) => self.add_service(s.clone()),
            Command::EditService(s) => self.edit_service(s.clone()),
            Command::DelService(k) => self.del_service(k),
            Command::AddDest(k, d) => self.add_dest(k, *d).map(|_| ()),
            Command::EditDest(k, d) => self.edit_dest(k, *d),
            Command::DelDest(k, e) => self.del_dest(k, e),
            Command::Clear => {
                self.clear();
                Ok(())
            }
            Command::Zero(k) => self.zero(k.as_ref()),
            Command::SetTimeouts(a, b, c) => {
                self.set_timeouts(*a, *b, *c);
                Ok(())
            }
            Command::StartDaemon(role, cfg) => self.start_sync(*role, cfg, COMMAND_MTU),
            Command::StopDaemon(role) => self.stop_sync(*role),
            Command::AddLaddr(k, a) => self.add_laddr(k, *a),
            Command::DelLaddr(k, a) => self.del_laddr(k, a),
        }
    }

    /// Runs a batch of commands all or nothing (`ipvsadm -R`, which takes every verb, the daemon
    /// ones included): the batch is first tried on a scratch director rebuilt from the current
    /// configuration (services, servers in list order with their weights and thresholds,
    /// timeouts, the sync daemons that run), and applied only when every command passes there.
    /// So a batch may stop and restart a daemon, and one that starts a running daemon or stops
    /// one that does not run changes nothing.
    ///
    /// # Errors
    /// [`BatchError`] naming the first command that fails on the scratch director; then
    /// nothing was changed. Only a scheduler that accepts a list on the scratch director and
    /// refuses the same list here could fail a command after the ones before it were applied;
    /// the schedulers of `lvs-sched` judge a list by its servers alone, which are the same.
    pub fn execute_all(&mut self, cmds: &[Command]) -> Result<(), BatchError> {
        let mut scratch = Director::new(self.cfg.clone(), self.factory);
        for c in self.config_commands() {
            scratch.execute(&c).map_err(|error| BatchError { index: None, error })?;
        }
        for (index, c) in cmds.iter().enumerate() {
            scratch.execute(c).map_err(|error| BatchError { index: Some(index), error })?;
        }
        for (index, c) in cmds.iter().enumerate() {
            self.execute(c).map_err(|error| BatchError { index: Some(index), error })?;
        }
        Ok(())
    }

    /// The commands that rebuild the configuration on an empty director (services, their
    /// servers in the kernel's list order, their local addresses, timeouts, the sync daemons):
    /// what `config::diff` takes as its target to bring another director (a
    /// shard of the same configuration) in line with this one.
    ///
    /// DoS warning: grows with the numbers of services and servers.
    pub fn config_commands(&self) -> Vec<Command> {
        let mut out = Vec::new();
        for s in self.svcs.iter().flatten() {
            out.push(Command::AddService(s.cfg.clone()));
            // Servers are linked at the head: add the oldest first to keep the order.
            for id in s.order.iter().rev() {
                if let Some(d) = self.dests.get(*id) {
                    out.push(Command::AddDest(s.cfg.key, d.cfg));
                }
            }
            out.extend(self.fnat.laddrs.list(&s.cfg.key).into_iter().map(|l| Command::AddLaddr(s.cfg.key, l.addr)));
        }
        let (tcp, tcpfin, udp) = self.timeouts.listed();
        out.push(Command::SetTimeouts(tcp, tcpfin, udp));
        for role in [Role::Master, Role::Backup] {
            if let Some(cfg) = self.sync_daemon(role) {
                out.push(Command::StartDaemon(role, cfg.clone()));
            }
        }
        out
    }

    // ----- services -----

    fn validate_service(&self, cfg: &ServiceConfig) -> Result<(), Error> {
        match cfg.key {
            ServiceKey::Fwmark { mark: 0, .. } => return Err(Error::ZeroFwmark),
            ServiceKey::Inet { port: 0, .. } if cfg.persistent.is_none() => return Err(Error::PortZeroNotPersistent),
            _ => {}
        }
        if let Some(t) = cfg.persistent {
            if t == 0 || t > MAX_PERSIST_TIMEOUT {
                return Err(Error::BadTimeout(t));
            }
        }
        // `ip_vs_add_service`: an IPv6 prefix must be 1..=128; an IPv4 mask is taken as given.
        match (cfg.key.af(), cfg.netmask) {
            (Af::V4, Netmask::V4(_)) => {}
            (Af::V6, Netmask::V6(1..=128)) => {}
            _ => return Err(Error::BadNetmask),
        }
        midflow::check_scheduler(cfg)
    }

    fn make_scheduler(&self, cfg: &ServiceConfig) -> Result<Box<dyn Scheduler>, Error> {
        let s = (self.factory)(&cfg.scheduler).map_err(|e| match e {
            SchedError::Unknown => Error::UnknownScheduler(cfg.scheduler.clone()),
            SchedError::Invalid(m) => Error::SchedulerRejected(m),
        })?;
        Ok(s)
    }

    fn svc_idx(&self, key: &ServiceKey) -> Result<u32, Error> {
        self.svc_index.get(key).copied().ok_or(Error::NoSuchService)
    }

    /// `ipvsadm -A`: adds a virtual service.
    ///
    /// # Errors
    /// [`Error::ServiceExists`], [`Error::UnknownScheduler`], [`Error::BadNetmask`],
    /// [`Error::BadTimeout`], [`Error::PortZeroNotPersistent`], [`Error::ZeroFwmark`];
    /// [`Error::MidflowHash`] for `midflow_hash` with a scheduler other than `mh` or `sh`. Scheduler
    /// flags (`-b`) are kept whatever the scheduler, as the kernel keeps them; a scheduler reads
    /// the ones it knows.
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
    /// As [`Director::add_service`], [`Error::NoSuchService`], and [`Error::MidflowHash`] for
    /// `midflow_hash` on a service with a real server other than DR or TUN.
    pub fn edit_service(&mut self, cfg: ServiceConfig) -> Result<(), Error> {
        let i = self.svc_idx(&cfg.key)?;
        self.validate_service(&cfg)?;
        let svc = self.svc(i).ok_or(Error::NoSuchService)?;
        let af = svc.cfg.key.af();
        if cfg.synproxy && svc.order.iter().any(|d| self.dests.get(*d).is_some_and(|d| !splices(af, &d.cfg))) {
            return Err(Error::Unsupported(SYNPROXY_SPLICES));
        }
        for d in svc.order.iter().filter_map(|d| self.dests.get(*d)) {
            midflow::check_dest(&cfg, &d.cfg)?;
        }
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
            if let Some(d) = self.dests.get_mut(id) {
                d.svc = NO_SVC;
            }
        }
        self.svcs[i as usize] = None;
        self.svc_index.remove(key);
        self.fnat.laddrs.forget_service(key);
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
        // `ip_vs_add_dest`, `ip_vs_edit_dest`: GUE needs its UDP port, whatever the method.
        if rs.tun.kind == TunType::Gue && rs.tun.port == 0 {
            return Err(Error::ZeroTunnelPort);
        }
        // `ip_vs_genl_set_cmd`: a server of the other family only behind an IP-in-IP tunnel,
        // and not while a sync daemon runs (the sync protocol cannot carry it).
        let syncing = self.sync_daemon(Role::Master).is_some() || self.sync_daemon(Role::Backup).is_some();
        // DPVS's fnat64: an IPv6 service's FullNAT servers may be IPv4 (FullNAT connections
        // are never synced).
        let fnat64 = rs.fwd == FwdMethod::FullNat && svc.cfg.key.af() == Af::V6;
        if Af::of(&rs.endpoint.addr) != svc.cfg.key.af() && !fnat64 && (rs.fwd != FwdMethod::Tunnel || syncing) {
            return Err(Error::FamilyMismatch);
        }
        if svc.cfg.synproxy && !splices(svc.cfg.key.af(), rs) {
            return Err(Error::Unsupported(SYNPROXY_SPLICES));
        }
        midflow::check_dest(&svc.cfg, rs)
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
    /// [`Error::BadThreshold`], [`Error::ZeroTunnelPort`], [`Error::FamilyMismatch`],
    /// [`Error::SchedulerRejected`]; [`Error::MidflowHash`] for a server other than DR or TUN
    /// in a `midflow_hash` service.
    pub fn add_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<DestId, Error> {
        let i = self.svc_idx(key)?;
        let svc = self.svc(i).ok_or(Error::NoSuchService)?;
        self.validate_dest(svc, &rs)?;
        if self.find_dest(svc, &rs.endpoint).is_some() {
            return Err(Error::DestExists);
        }
        // `ip_vs_trash_get_dest`: the same server of a service with the same protocol, address
        // and port (or fwmark) — a deleted and re-created service's included.
        let trashed = self
            .dests
            .iter()
            .find(|(_, d)| d.flags & F_AVAILABLE == 0 && d.cfg.endpoint == rs.endpoint && d.vkey == *key)
            .map(|(id, _)| id);
        let nh = Self::next_hop(&self.neigh, &rs);
        let id = match trashed {
            Some(id) => {
                if let Some(d) = self.dests.get_mut(id) {
                    // `__ip_vs_update_dest` binding a server to a service it did not belong
                    // to (its own was deleted): its counters start from zero.
                    if d.svc != i {
                        d.stats = Stats::default();
                        d.svc = i;
                    }
                    update_dest(d, rs, true);
                    d.flags |= F_AVAILABLE;
                    d.idle_since = None;
                    d.nh = nh;
                }
                id
            }
            None => {
                let id = self.dests.insert(rs, i, *key);
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
            match trashed {
                Some(_) => self.retire_unlinked(id),
                None => self.dests.remove(id),
            }
            return Err(match e {
                SchedError::Invalid(m) => Error::SchedulerRejected(m),
                SchedError::Unknown => Error::SchedulerRejected("add"),
            });
        }
        Ok(id)
    }

    /// `ipvsadm -e`: changes a real server's weight, thresholds or method.
    ///
    /// # Errors
    /// [`Error::NoSuchService`], [`Error::NoSuchDest`], [`Error::WeightOutOfRange`],
    /// [`Error::BadThreshold`], [`Error::ZeroTunnelPort`], [`Error::FamilyMismatch`];
    /// [`Error::MidflowHash`] as [`Director::add_dest`].
    pub fn edit_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), Error> {
        let i = self.svc_idx(key)?;
        let svc = self.svc(i).ok_or(Error::NoSuchService)?;
        self.validate_dest(svc, &rs)?;
        let (_, id) = self.find_dest(svc, &rs.endpoint).ok_or(Error::NoSuchDest)?;
        let nh = Self::next_hop(&self.neigh, &rs);
        if let Some(d) = self.dests.get_mut(id) {
            update_dest(d, rs, false);
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

    /// Marks an unlinked server unavailable and throws it into the trash (`__ip_vs_del_dest`),
    /// starting the trash timer half a period from now when the trash was empty. The timer
    /// ([`Director::tick`]) frees it once it has been unreferenced for a whole period.
    fn retire_unlinked(&mut self, id: DestId) {
        let Some(d) = self.dests.get_mut(id) else { return };
        d.flags &= !F_AVAILABLE;
        d.idle_since = None;
        if self.trash_next.is_none() {
            self.trash_next = Some(self.clock.saturating_add(DEST_TRASH_PERIOD_NS / 2));
        }
    }
}

impl Director {
    /// Whether the scheduler of service `svc` still holds server `id` ([`Scheduler::holds`]).
    pub(super) fn held_by_scheduler(&self, id: DestId, svc: u32) -> bool {
        self.svc(svc).is_some_and(|s| s.sched.holds(id))
    }

    /// `ip_vs_dest_trash_expire`: a deleted server with no connection left (and no scheduler
    /// cache entry naming it) is first marked idle,
    /// and freed at a later run once it has been idle for a whole period; the timer re-arms
    /// every half period while the trash holds anything.
    pub(super) fn expire_trash(&mut self, now: u64) {
        let held: Vec<DestId> = self
            .dests
            .iter()
            .filter(|(id, d)| d.flags & F_AVAILABLE == 0 && self.held_by_scheduler(*id, d.svc))
            .map(|(id, _)| id)
            .collect();
        let mut free = Vec::new();
        let mut left = false;
        for (id, d) in self.dests.iter_mut_with_ids() {
            if d.flags & F_AVAILABLE != 0 {
                continue;
            }
            match d.idle_since {
                _ if d.refcnt > 0 || held.contains(&id) => left = true,
                Some(t) if now >= t.saturating_add(DEST_TRASH_PERIOD_NS) => free.push(id),
                Some(_) => left = true,
                None => {
                    d.idle_since = Some(now);
                    left = true;
                }
            }
        }
        for id in free {
            self.dests.remove(id);
        }
        self.trash_next = left.then(|| now.saturating_add(DEST_TRASH_PERIOD_NS / 2));
    }
}

/// `__ip_vs_update_dest`: applies a configuration to a server; `add` when it is (re)linked into
/// its service, which sets `last_weight` from the new weight even when that is 0.
fn update_dest(d: &mut Dest, rs: RealServer, add: bool) {
    if rs.u_threshold == 0 || rs.u_threshold > d.cfg.u_threshold {
        d.flags &= !F_OVERLOAD;
    }
    d.set_weight(rs.weight);
    if add {
        d.last_weight = rs.weight;
    }
    d.cfg = rs;
}
