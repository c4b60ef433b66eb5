//! The [`Monitor`]: every checked server's plan, health and place in the table, the probes in
//! flight, and the reactions — keepalived's checker core (`check_api.c`, `ipwrapper.c`), the
//! same loop as ldirectord's and mon's, sans-IO and driven like the director: it is told the
//! time, hands out [`Probe`]s with [`Monitor::poll`], takes results with [`Monitor::report`],
//! fails probes at their deadline in [`Monitor::tick`], and says when to come back with
//! [`Monitor::next_deadline`].

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::check::Check;
use super::control::{apply, Control};
use super::event::Event;
use super::outcome::{Detail, Outcome};
use super::plan::{CheckPlan, CheckedServer, ServicePolicy};
use super::probe::{Probe, ProbeId, ServerId};
use super::rules::{self, Health, Streak};
use super::HealthError;
use crate::addr::{Endpoint, ServiceKey};
use crate::dest::{RealServer, MAX_WEIGHT};
use crate::sched::SeededRng;
use crate::time::{duration_nanos, Instant};

/// An operator's override of what the checks say (maintenance), shown in the listing. Checks
/// go on underneath, so the health is known when the override is lifted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Override {
    /// In service whatever the checks say.
    Up,
    /// Out of service whatever the checks say (removed, or weight 0 with `inhibit_on_failure`).
    Down,
    /// In the table with weight 0: no new connections, established ones go on.
    Drain,
}

/// A server's state in force: its health, unless an operator overrides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// In service, at its weight (or on its slow-start ramp).
    Up,
    /// Out of service.
    Down,
    /// Drained by the operator: weight 0.
    Drain,
}

impl State {
    /// The word the status listing prints.
    pub fn name(self) -> &'static str {
        match self {
            State::Up => "UP",
            State::Down => "DOWN",
            State::Drain => "DRAIN",
        }
    }
}

/// What the data path saw of a server, for [`Monitor::suspect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Symptom {
    /// The server answered a SYN with a reset.
    SynReset,
    /// A SYN to the server went unanswered (or was retransmitted).
    SynUnanswered,
}

/// A slow start in progress: when it began and when the weight moves next.
#[derive(Clone, Copy, Debug)]
struct Ramp {
    start: Instant,
    next: Instant,
}

/// One check of a server: its plan, its own rise/fall state and timers.
#[derive(Debug)]
struct Probed {
    plan: CheckPlan,
    health: Health,
    streak: Streak,
    last: Option<(Instant, Detail)>,
    due: Option<Instant>,
    probe: Option<(ProbeId, Instant)>,
    issued: Option<Instant>,
}

/// A check's place in the monitor's timer sets: its server and its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    server: ServerId,
    check: u32,
}

/// One checked server.
#[derive(Debug)]
struct Server {
    svc: usize,
    rs: RealServer,
    checks: Vec<Probed>,
    /// Its own `inhibit_on_failure`, over the service's.
    inhibit: Option<bool>,
    /// Up while every check is up (keepalived: no failed checker).
    health: Health,
    over: Option<Override>,
    /// The state in force, as last acted on.
    state: State,
    since: Instant,
    /// The weight a `misc_dynamic` check set, replacing the configured one.
    dyn_weight: Option<u32>,
    ramp: Option<Ramp>,
    /// The weight the table holds for it (`None` = not in the table).
    installed: Option<u32>,
    unanswered: u32,
}

/// Up while every check is up.
fn all_up(checks: &[Probed]) -> Health {
    if checks.iter().all(|c| c.health == Health::Up) {
        Health::Up
    } else {
        Health::Down
    }
}

impl Server {
    fn effective(&self) -> State {
        match (self.over, self.health) {
            (Some(Override::Up), _) | (None, Health::Up) => State::Up,
            (Some(Override::Down), _) | (None, Health::Down) => State::Down,
            (Some(Override::Drain), _) => State::Drain,
        }
    }

    /// The configured weight, or the one a `misc_dynamic` check set.
    fn weight(&self) -> u32 {
        self.dyn_weight.unwrap_or(self.rs.weight)
    }

    fn ramp_weight(&self, now: Instant, length: Duration) -> u32 {
        match self.ramp {
            Some(r) => rules::ramp_weight(self.weight(), now.saturating_since(r.start), length),
            None => self.weight(),
        }
    }

    /// The table entry this server should have.
    fn want(&self, now: Instant, policy: &ServicePolicy, sorry_active: bool) -> Option<u32> {
        match self.state {
            State::Up if !sorry_active => Some(self.ramp_weight(now, policy.slow_start)),
            State::Drain => Some(0),
            _ => self.inhibit.unwrap_or(policy.inhibit_on_failure).then_some(0),
        }
    }

    fn check(&self, i: u32) -> Option<&Probed> {
        self.checks.get(i as usize)
    }

    fn check_mut(&mut self, i: u32) -> Option<&mut Probed> {
        self.checks.get_mut(i as usize)
    }

    /// How an event names the check at `i`: only among several.
    fn event_label(&self, i: u32) -> Option<String> {
        (self.checks.len() > 1).then(|| self.check(i).map(|c| c.plan.label())).flatten()
    }
}

/// One monitored virtual service.
#[derive(Debug)]
struct Svc {
    key: ServiceKey,
    policy: ServicePolicy,
    members: Vec<ServerId>,
    quorum_up: bool,
    sorry_active: bool,
    sorry_installed: Option<u32>,
}

impl Svc {
    fn sorry_want(&self) -> Option<u32> {
        let sorry = self.policy.sorry_server.as_ref()?;
        if self.sorry_active {
            Some(sorry.weight)
        } else {
            self.policy.sorry_server_inhibit.then_some(0)
        }
    }
}

/// The health checker of a set of virtual services. It changes the director only through
/// [`Control`] calls, and only for the servers it was given.
///
/// ```
/// # use lvs_core::health::{Check, CheckPlan, Event, Monitor, Outcome, Detail, ServicePolicy, TcpCheck};
/// # use lvs_core::{Director, DirectorConfig, FwdMethod, Instant, Proto, RealServer, ServiceConfig, ServiceKey};
/// # use core::time::Duration;
/// # use lvs_core::{DestId, PacketMeta, SchedCx, SchedError, Scheduler, ServiceView};
/// # struct First;
/// # impl Scheduler for First {
/// #     fn name(&self) -> &'static str { "first" }
/// #     fn schedule(&mut self, _: &mut SchedCx<'_>, s: &ServiceView<'_>, _: &PacketMeta) -> Option<DestId> {
/// #         s.dests().next().map(|d| d.id())
/// #     }
/// # }
/// # fn factory(_: &str) -> Result<Box<dyn Scheduler>, SchedError> { Ok(Box::new(First)) }
/// let mut d = Director::new(DirectorConfig::default(), factory);
/// let key = ServiceKey::Inet { proto: Proto::Tcp, addr: "203.0.113.100".parse()?, port: 80 };
/// d.add_service(ServiceConfig::new(key, "first"))?;
/// let rs = RealServer::new("192.0.2.11".parse()?, 80, FwdMethod::Route, 1);
/// let plan = CheckPlan::new(Check::Tcp(TcpCheck)).with_interval(Duration::from_secs(1)).with_warmup(Duration::ZERO);
///
/// let mut m = Monitor::new(7);
/// let mut now = Instant::from_secs(0);
/// m.add_service(&mut d, now, key, ServicePolicy::default(), [(rs, plan)])?;
/// assert_eq!(d.service(&key).unwrap().dests.len(), 1); // starts up (no alpha)
///
/// for _ in 0..2 {
///     // The loop: hand due probes to the prober, report what it found, tick at deadlines.
///     while let Some(p) = m.poll(now) {
///         m.report(&mut d, now, p.id, Outcome::down(Detail::Refused))?;
///     }
///     now = m.next_deadline().unwrap();
///     m.tick(&mut d, now);
/// }
/// assert_eq!(d.service(&key).unwrap().dests.len(), 0); // removed after fall = 2 failures
/// assert!(matches!(m.poll_event(), Some(Event::ServerDown { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Monitor {
    services: Vec<Option<Svc>>,
    servers: Vec<Option<Server>>,
    due: BTreeSet<(Instant, Slot)>,
    in_flight: BTreeMap<ProbeId, Slot>,
    deadlines: BTreeSet<(Instant, ProbeId)>,
    ramps: BTreeSet<(Instant, ServerId)>,
    events: VecDeque<Event>,
    next_probe: u64,
    rng: SeededRng,
}

impl Monitor {
    /// A monitor with nothing to check. `seed` drives the warmup spread and the probes'
    /// nonces; take it from a random source where replies could be forged.
    pub fn new(seed: u64) -> Self {
        Monitor {
            services: Vec::new(),
            servers: Vec::new(),
            due: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            ramps: BTreeSet::new(),
            events: VecDeque::new(),
            next_probe: 0,
            rng: SeededRng::new(seed),
        }
    }

    // ----- configuration -----

    fn svc_idx(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|s| s.as_ref().is_some_and(|s| s.key == *key))
    }

    fn svc(&self, i: usize) -> Option<&Svc> {
        self.services.get(i).and_then(Option::as_ref)
    }

    fn svc_mut(&mut self, i: usize) -> Option<&mut Svc> {
        self.services.get_mut(i).and_then(Option::as_mut)
    }

    fn srv(&self, id: ServerId) -> Option<&Server> {
        self.servers.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn srv_mut(&mut self, id: ServerId) -> Option<&mut Server> {
        self.servers.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    /// Starts checking a virtual service (which the application added to the director) and
    /// its real servers — each a [`CheckedServer`], or a `(RealServer, CheckPlan)` pair for a
    /// server with one check — and puts them in the table: up unless one of its checks starts
    /// with `alpha`, the sorry server in when the service starts without quorum.
    ///
    /// A change the director refuses is reported as [`Event::ControlFailed`].
    ///
    /// # Errors
    /// [`HealthError::ServiceExists`], [`HealthError::ServerExists`] (two servers with one
    /// address, or the sorry server among them), [`HealthError::BadPlan`],
    /// [`HealthError::BadPolicy`]; then nothing was changed.
    pub fn add_service(
        &mut self,
        ctl: &mut dyn Control,
        now: Instant,
        key: ServiceKey,
        policy: ServicePolicy,
        servers: impl IntoIterator<Item = impl Into<CheckedServer>>,
    ) -> Result<Vec<ServerId>, HealthError> {
        if self.svc_idx(&key).is_some() {
            return Err(HealthError::ServiceExists);
        }
        if policy.sorry_server.is_some_and(|s| s.weight > MAX_WEIGHT) {
            return Err(HealthError::BadPolicy("sorry server weight over 65535"));
        }
        let servers: Vec<CheckedServer> = servers.into_iter().map(Into::into).collect();
        for (i, c) in servers.iter().enumerate() {
            c.validate().map_err(HealthError::BadPlan)?;
            let rs = &c.server;
            let dup = servers[..i].iter().any(|o| o.server.endpoint == rs.endpoint);
            if dup || policy.sorry_server.is_some_and(|s| s.endpoint == rs.endpoint) {
                return Err(HealthError::ServerExists);
            }
        }
        let svc = self.services.len();
        self.services.push(Some(Svc {
            key,
            policy,
            members: Vec::new(),
            quorum_up: false,
            sorry_active: false,
            sorry_installed: None,
        }));
        let ids = servers.into_iter().map(|c| self.link(now, svc, c)).collect();
        // The starting quorum is taken as it is, without an event (keepalived's
        // set_quorum_states); a sorry server going in is a table change and is told.
        let live = self.live_weight(svc);
        if let Some(s) = self.svc_mut(svc) {
            s.quorum_up = rules::quorum(false, live, s.policy.quorum, s.policy.hysteresis);
        }
        self.settle(ctl, now, svc);
        Ok(ids)
    }

    /// Starts checking one more real server of a monitored service (a [`CheckedServer`], or a
    /// `(RealServer, CheckPlan)` pair).
    ///
    /// # Errors
    /// [`HealthError::NoSuchService`], [`HealthError::ServerExists`],
    /// [`HealthError::BadPlan`]; then nothing was changed.
    pub fn add_server(
        &mut self,
        ctl: &mut dyn Control,
        now: Instant,
        key: &ServiceKey,
        server: impl Into<CheckedServer>,
    ) -> Result<ServerId, HealthError> {
        let server = server.into();
        let svc = self.svc_idx(key).ok_or(HealthError::NoSuchService)?;
        server.validate().map_err(HealthError::BadPlan)?;
        let rs = server.server;
        if self.find(key, &rs.endpoint).is_some()
            || self.svc(svc).and_then(|s| s.policy.sorry_server).is_some_and(|s| s.endpoint == rs.endpoint)
        {
            return Err(HealthError::ServerExists);
        }
        let id = self.link(now, svc, server);
        self.settle(ctl, now, svc);
        Ok(id)
    }

    /// A new server's record, each check's first probe scheduled within its warmup. A check
    /// with `alpha` (its own, else the service's) starts down, and so does its server
    /// (keepalived marks such a checker failed at startup).
    fn link(&mut self, now: Instant, svc: usize, c: CheckedServer) -> ServerId {
        let alpha = self.svc(svc).is_some_and(|s| s.policy.alpha);
        let checks: Vec<Probed> = c
            .checks
            .into_iter()
            .map(|plan| Probed {
                health: if plan.alpha.unwrap_or(alpha) { Health::Down } else { Health::Up },
                plan,
                streak: Streak::default(),
                last: None,
                due: None,
                probe: None,
                issued: None,
            })
            .collect();
        let health = all_up(&checks);
        let firsts: Vec<Instant> = checks
            .iter()
            .map(|p| {
                let warmup = duration_nanos(p.plan.warmup());
                if warmup == 0 {
                    now
                } else {
                    now + Duration::from_nanos(self.random() % (warmup + 1))
                }
            })
            .collect();
        let id = ServerId(self.servers.len() as u32);
        self.servers.push(Some(Server {
            svc,
            rs: c.server,
            checks,
            inhibit: c.inhibit_on_failure,
            health,
            over: None,
            state: if health == Health::Up { State::Up } else { State::Down },
            since: now,
            dyn_weight: None,
            ramp: None,
            installed: None,
            unanswered: 0,
        }));
        if let Some(s) = self.svc_mut(svc) {
            s.members.push(id);
        }
        for (i, first) in firsts.into_iter().enumerate() {
            self.schedule(Slot { server: id, check: i as u32 }, first);
        }
        id
    }

    /// Stops checking a server and takes it out of the table.
    ///
    /// # Errors
    /// [`HealthError::NoSuchServer`].
    pub fn remove_server(&mut self, ctl: &mut dyn Control, now: Instant, id: ServerId) -> Result<(), HealthError> {
        let svc = self.srv(id).ok_or(HealthError::NoSuchServer)?.svc;
        let key = self.svc(svc).ok_or(HealthError::NoSuchServer)?.key;
        self.unlink(ctl, &key, id);
        if let Some(s) = self.svc_mut(svc) {
            s.members.retain(|m| *m != id);
        }
        self.settle(ctl, now, svc);
        Ok(())
    }

    /// Stops checking a service: its servers and its sorry server leave the table. With
    /// `omega`, the servers in service are reported down and a held quorum lost.
    ///
    /// # Errors
    /// [`HealthError::NoSuchService`].
    pub fn remove_service(&mut self, ctl: &mut dyn Control, key: &ServiceKey) -> Result<(), HealthError> {
        let i = self.svc_idx(key).ok_or(HealthError::NoSuchService)?;
        let Some(svc) = self.services.get_mut(i).and_then(Option::take) else {
            return Err(HealthError::NoSuchService);
        };
        for id in &svc.members {
            if svc.policy.omega {
                if let Some(s) = self.srv(*id).filter(|s| s.state == State::Up) {
                    let endpoint = s.rs.endpoint;
                    self.events.push_back(Event::ServerDown {
                        server: *id,
                        service: svc.key,
                        endpoint,
                        reason: Detail::Shutdown,
                        check: None,
                    });
                }
            }
            self.unlink(ctl, &svc.key, *id);
        }
        if svc.policy.omega && svc.quorum_up {
            let threshold = u64::from(svc.policy.quorum.saturating_sub(svc.policy.hysteresis));
            self.events.push_back(Event::QuorumLost { service: svc.key, live_weight: 0, threshold });
        }
        if let Some(sorry) = svc.policy.sorry_server {
            self.install_entry(ctl, &svc.key, sorry, svc.sorry_installed, None);
        }
        Ok(())
    }

    /// Drops a server's record, its timers and its table entry.
    fn unlink(&mut self, ctl: &mut dyn Control, key: &ServiceKey, id: ServerId) {
        let Some(s) = self.servers.get_mut(id.0 as usize).and_then(Option::take) else { return };
        for (i, c) in s.checks.iter().enumerate() {
            if let Some(t) = c.due {
                self.due.remove(&(t, Slot { server: id, check: i as u32 }));
            }
            if let Some((pid, deadline)) = c.probe {
                self.in_flight.remove(&pid);
                self.deadlines.remove(&(deadline, pid));
            }
        }
        if let Some(r) = s.ramp {
            self.ramps.remove(&(r.next, id));
        }
        self.install_entry(ctl, key, s.rs, s.installed, None);
    }

    /// Forces a server's state (`Some`) or gives it back to its checks (`None`).
    ///
    /// # Errors
    /// [`HealthError::NoSuchServer`].
    pub fn set_override(
        &mut self,
        ctl: &mut dyn Control,
        now: Instant,
        id: ServerId,
        over: Option<Override>,
    ) -> Result<(), HealthError> {
        let s = self.srv_mut(id).ok_or(HealthError::NoSuchServer)?;
        s.over = over;
        let svc = s.svc;
        self.transition(now, id, Detail::Operator, None);
        self.settle(ctl, now, svc);
        Ok(())
    }

    // ----- the probe loop -----

    /// The next probe due at `now`, if any; call until `None`. A prober at its concurrency
    /// limit may stop calling: due probes wait, in order.
    pub fn poll(&mut self, now: Instant) -> Option<Probe> {
        let &(t, slot) = self.due.first()?;
        if t > now {
            return None;
        }
        self.due.pop_first();
        let pid = ProbeId(self.next_probe);
        self.next_probe += 1;
        let nonce = self.random();
        let s = self.servers.get_mut(slot.server.0 as usize).and_then(Option::as_mut)?;
        let target = s.rs;
        let c = s.check_mut(slot.check)?;
        let deadline = now + c.plan.timeout;
        c.due = None;
        c.probe = Some((pid, deadline));
        c.issued = Some(now);
        self.in_flight.insert(pid, slot);
        self.deadlines.insert((deadline, pid));
        Some(Probe {
            id: pid,
            server: slot.server,
            check_index: slot.check,
            target: c.plan.target(&target),
            bindto: c.plan.bindto,
            bind_port: c.plan.bind_port,
            due: t,
            deadline,
            nonce,
            check: c.plan.check.clone(),
        })
    }

    /// Takes a probe's result and reacts to it. A result after the probe's deadline counts as
    /// its timeout.
    ///
    /// # Errors
    /// [`HealthError::UnknownProbe`] for a probe not in flight: already failed at its deadline,
    /// or its server removed. Harmless; nothing changes.
    pub fn report(
        &mut self,
        ctl: &mut dyn Control,
        now: Instant,
        id: ProbeId,
        outcome: Outcome,
    ) -> Result<(), HealthError> {
        let slot = self.in_flight.remove(&id).ok_or(HealthError::UnknownProbe)?;
        let c = self.srv_mut(slot.server).and_then(|s| s.check_mut(slot.check)).ok_or(HealthError::UnknownProbe)?;
        let deadline = c.probe.take().map_or(now, |(_, d)| d);
        let outcome = if now > deadline { c.plan.check.on_timeout() } else { outcome };
        self.deadlines.remove(&(deadline, id));
        self.result(ctl, now, slot, outcome);
        Ok(())
    }

    /// Fails the probes whose deadline has come and moves slow-start ramps. Call it by
    /// [`Monitor::next_deadline`] (then [`Monitor::poll`] for the probes that came due).
    ///
    /// DoS warning: the work grows with the number of probes timing out at once.
    pub fn tick(&mut self, ctl: &mut dyn Control, now: Instant) {
        while let Some(&(deadline, pid)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(slot) = self.in_flight.remove(&pid) else { continue };
            let Some(c) = self.srv_mut(slot.server).and_then(|s| s.check_mut(slot.check)) else { continue };
            c.probe = None;
            let outcome = c.plan.check.on_timeout();
            self.result(ctl, deadline, slot, outcome);
        }
        while let Some(&(t, id)) = self.ramps.first() {
            if t > now {
                break;
            }
            self.ramps.pop_first();
            self.ramp_step(ctl, now, id);
        }
    }

    /// When [`Monitor::tick`] or [`Monitor::poll`] has something to do next: a check comes
    /// due, a probe's deadline, a slow-start step. `None` when nothing is monitored.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.due.first().map(|e| e.0), self.deadlines.first().map(|e| e.0), self.ramps.first().map(|e| e.0)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Passive detection: the data path saw `symptom` on a server. With the service's
    /// [`Passive`](super::Passive) detection on, a reset (or enough unanswered SYNs since the
    /// last check result) brings each of the server's checks not in flight forward to now, or
    /// to `min_gap` after its last probe. Returns whether it did for any.
    pub fn suspect(&mut self, now: Instant, id: ServerId, symptom: Symptom) -> bool {
        let Some(s) = self.srv(id) else { return false };
        let Some(passive) = self.svc(s.svc).map(|v| v.policy.passive) else { return false };
        if !passive.enabled {
            return false;
        }
        let Some(s) = self.srv_mut(id) else { return false };
        if symptom == Symptom::SynUnanswered {
            s.unanswered = s.unanswered.saturating_add(1);
            if s.unanswered < passive.unanswered_syns {
                return false;
            }
        }
        let moved: Vec<(Slot, Instant)> = s
            .checks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.probe.is_none())
            .filter_map(|(i, c)| {
                let at = c.issued.map_or(now, |t| (t + passive.min_gap).max(now));
                c.due.is_none_or(|d| d > at).then_some((Slot { server: id, check: i as u32 }, at))
            })
            .collect();
        for (slot, at) in &moved {
            self.schedule(*slot, *at);
        }
        !moved.is_empty()
    }

    // ----- reactions -----

    /// One result (a report or a timeout) of one check through its rise/fall; the server's
    /// health is up while every check's is (keepalived's `update_svr_checker_state`: the
    /// first checker to fail takes the server out, the last to recover brings it back); then
    /// the reactions.
    fn result(&mut self, ctl: &mut dyn Control, now: Instant, slot: Slot, outcome: Outcome) {
        let id = slot.server;
        let Some(s) = self.srv_mut(id) else { return };
        s.unanswered = 0;
        let mut weight_changed = false;
        if let Some(w) = outcome.weight.filter(|_| outcome.up) {
            let w = w.min(MAX_WEIGHT);
            weight_changed = s.dyn_weight != Some(w);
            s.dyn_weight = Some(w);
        }
        let Some(c) = s.check_mut(slot.check) else { return };
        c.health = rules::step(c.health, &mut c.streak, outcome.up, c.plan.rise, c.plan.fall);
        let next = now + c.plan.next_interval(c.health, c.streak);
        c.last = Some((now, outcome.reason.clone()));
        let before = s.health;
        s.health = all_up(&s.checks);
        let (svc, changed) = (s.svc, s.health != before);
        let label = s.event_label(slot.check);
        self.schedule(slot, next);
        if changed {
            self.transition(now, id, outcome.reason, label);
        }
        if changed || weight_changed {
            self.settle(ctl, now, svc);
        }
    }

    /// Brings a server's state in force up to date with its health and override: the event,
    /// the time in state, the slow-start ramp.
    fn transition(&mut self, now: Instant, id: ServerId, reason: Detail, check: Option<String>) {
        let Some(s) = self.srv(id) else { return };
        let new = s.effective();
        if new == s.state {
            return;
        }
        let Some(svc) = self.svc(s.svc) else { return };
        let (service, endpoint, slow_start) = (svc.key, s.rs.endpoint, svc.policy.slow_start);
        let (old, old_ramp) = (s.state, s.ramp);
        // Up and down are told; a move between down and drained (out of service both) is not.
        if new == State::Up {
            self.events.push_back(Event::ServerUp { server: id, service, endpoint, reason, check });
        } else if old == State::Up {
            self.events.push_back(Event::ServerDown { server: id, service, endpoint, reason, check });
        }
        if let Some(r) = old_ramp {
            self.ramps.remove(&(r.next, id));
        }
        let ramp = (new == State::Up && !slow_start.is_zero())
            .then(|| Ramp { start: now, next: now + rules::ramp_step(slow_start) });
        if let Some(r) = ramp {
            self.ramps.insert((r.next, id));
        }
        if let Some(s) = self.srv_mut(id) {
            s.state = new;
            s.since = now;
            s.ramp = ramp;
        }
    }

    /// A slow-start step: the next weight into the table, the next step scheduled (or the
    /// ramp ended).
    fn ramp_step(&mut self, ctl: &mut dyn Control, now: Instant, id: ServerId) {
        let Some(s) = self.srv(id) else { return };
        let Some(svc) = self.svc(s.svc) else { return };
        let (length, key, sorry_active) = (svc.policy.slow_start, svc.key, svc.sorry_active);
        let Some(r) = s.ramp else { return };
        let elapsed = now.saturating_since(r.start);
        let ramp = if elapsed >= length {
            None
        } else {
            let step = duration_nanos(rules::ramp_step(length)).max(1);
            let k = duration_nanos(elapsed) / step + 1;
            let next = (r.start + Duration::from_nanos(step.saturating_mul(k))).min(r.start + length);
            self.ramps.insert((next, id));
            Some(Ramp { next, ..r })
        };
        let Some(s) = self.srv_mut(id) else { return };
        s.ramp = ramp;
        if s.state == State::Up && !sorry_active {
            let want = Some(s.ramp_weight(now, length));
            let (rs, installed) = (s.rs, s.installed);
            self.install(ctl, &key, id, rs, installed, want);
        }
    }

    /// The sum of the weights of a service's servers in service (their full weights: a slow
    /// start shapes traffic, not capacity).
    fn live_weight(&self, svc: usize) -> u64 {
        let Some(v) = self.svc(svc) else { return 0 };
        v.members
            .iter()
            .filter_map(|id| self.srv(*id))
            .filter(|s| s.state == State::Up)
            .map(|s| u64::from(s.weight()))
            .sum()
    }

    /// After any change in a service: quorum (with its events), the sorry server, and every
    /// server's table entry. When the sorry server goes in, the servers leave first; when it
    /// goes out, it leaves first (keepalived's order).
    fn settle(&mut self, ctl: &mut dyn Control, now: Instant, svc: usize) {
        let live = self.live_weight(svc);
        let Some(v) = self.svc_mut(svc) else { return };
        let (q, h) = (v.policy.quorum, v.policy.hysteresis);
        let had = v.quorum_up;
        v.quorum_up = rules::quorum(had, live, q, h);
        let service = v.key;
        if v.quorum_up != had {
            self.events.push_back(if had {
                Event::QuorumLost { service, live_weight: live, threshold: u64::from(q.saturating_sub(h)) }
            } else {
                Event::QuorumGained { service, live_weight: live, threshold: u64::from(q) + u64::from(h) }
            });
        }
        let Some(v) = self.svc_mut(svc) else { return };
        let sorry = v.policy.sorry_server;
        let was_active = v.sorry_active;
        v.sorry_active = sorry.is_some() && !v.quorum_up;
        let now_active = v.sorry_active;
        if let (Some(s), true) = (sorry, was_active != now_active) {
            let endpoint = s.endpoint;
            self.events.push_back(if now_active {
                Event::SorryServerIn { service, endpoint }
            } else {
                Event::SorryServerOut { service, endpoint }
            });
        }
        if !now_active {
            self.settle_sorry(ctl, svc);
        }
        let members = self.svc(svc).map(|v| v.members.clone()).unwrap_or_default();
        for id in members {
            let Some(v) = self.svc(svc) else { return };
            let Some(s) = self.srv(id) else { continue };
            let want = s.want(now, &v.policy, v.sorry_active);
            let (rs, installed) = (s.rs, s.installed);
            self.install(ctl, &service, id, rs, installed, want);
        }
        if now_active {
            self.settle_sorry(ctl, svc);
        }
    }

    /// Puts the sorry server's entry where the service's state wants it.
    fn settle_sorry(&mut self, ctl: &mut dyn Control, svc: usize) {
        let Some(v) = self.svc(svc) else { return };
        let Some(sorry) = v.policy.sorry_server else { return };
        let (key, installed, want) = (v.key, v.sorry_installed, v.sorry_want());
        let now = self.install_entry(ctl, &key, sorry, installed, want);
        if let Some(v) = self.svc_mut(svc) {
            v.sorry_installed = now;
        }
    }

    /// Puts one server's entry at `want`.
    fn install(
        &mut self,
        ctl: &mut dyn Control,
        key: &ServiceKey,
        id: ServerId,
        rs: RealServer,
        installed: Option<u32>,
        want: Option<u32>,
    ) {
        let now = self.install_entry(ctl, key, rs, installed, want);
        if let Some(s) = self.srv_mut(id) {
            s.installed = now;
        }
    }

    /// Puts a table entry at `want` and returns what is installed; a refusal becomes an
    /// [`Event::ControlFailed`] and leaves the entry as it was.
    fn install_entry(
        &mut self,
        ctl: &mut dyn Control,
        key: &ServiceKey,
        rs: RealServer,
        installed: Option<u32>,
        want: Option<u32>,
    ) -> Option<u32> {
        apply(ctl, key, rs, installed, want).unwrap_or_else(|error| {
            self.events.push_back(Event::ControlFailed { service: *key, endpoint: rs.endpoint, error });
            installed
        })
    }

    /// (Re)schedules one check's next probe at `at`.
    fn schedule(&mut self, slot: Slot, at: Instant) {
        let Some(c) =
            self.servers.get_mut(slot.server.0 as usize).and_then(Option::as_mut).and_then(|s| s.check_mut(slot.check))
        else {
            return;
        };
        if let Some(old) = c.due.replace(at) {
            self.due.remove(&(old, slot));
        }
        self.due.insert((at, slot));
    }

    fn random(&mut self) -> u64 {
        (u64::from(self.rng.next_u32()) << 32) | u64::from(self.rng.next_u32())
    }

    // ----- reading state -----

    /// The server of a service at `endpoint` (the data path's way from a `DestView` to a
    /// [`ServerId`]).
    pub fn find(&self, key: &ServiceKey, endpoint: &Endpoint) -> Option<ServerId> {
        let svc = self.svc(self.svc_idx(key)?)?;
        svc.members.iter().copied().find(|id| self.srv(*id).is_some_and(|s| s.rs.endpoint == *endpoint))
    }

    /// One server's status.
    pub fn server(&self, id: ServerId) -> Option<ServerStatus<'_>> {
        let s = self.srv(id)?;
        Some(ServerStatus { id, s, svc: self.svc(s.svc)? })
    }

    /// One service's status.
    pub fn service(&self, key: &ServiceKey) -> Option<ServiceStatus<'_>> {
        Some(ServiceStatus { svc: self.svc(self.svc_idx(key)?)?, m: self })
    }

    /// Every monitored service, in the order they were added.
    pub fn services(&self) -> impl Iterator<Item = ServiceStatus<'_>> {
        self.services.iter().flatten().map(|svc| ServiceStatus { svc, m: self })
    }
}

/// What the monitor knows of one server.
#[derive(Clone, Copy, Debug)]
pub struct ServerStatus<'a> {
    id: ServerId,
    s: &'a Server,
    svc: &'a Svc,
}

impl<'a> ServerStatus<'a> {
    /// Its handle.
    pub fn id(&self) -> ServerId {
        self.id
    }
    /// Its service.
    pub fn service(&self) -> ServiceKey {
        self.svc.key
    }
    /// Its configuration as given (the weight is the configured one).
    pub fn real_server(&self) -> RealServer {
        self.s.rs
    }
    /// The state in force.
    pub fn state(&self) -> State {
        self.s.state
    }
    /// What the checks say: up while every one of them is up.
    pub fn health(&self) -> Health {
        self.s.health
    }
    /// Its own `inhibit_on_failure`, over the service's (`None`: the service's).
    pub fn inhibit_on_failure(&self) -> Option<bool> {
        self.s.inhibit
    }
    /// Its checks, in the order they were given.
    pub fn checks(&self) -> impl ExactSizeIterator<Item = CheckStatus<'a>> + 'a {
        self.s.checks.iter().map(|c| CheckStatus { c })
    }
    /// What it was given: the server, its checks and its own settings (the weight is the
    /// configured one).
    pub fn checked(&self) -> CheckedServer {
        CheckedServer {
            server: self.s.rs,
            checks: self.s.checks.iter().map(|c| c.plan.clone()).collect(),
            inhibit_on_failure: self.s.inhibit,
        }
    }
    /// The operator's override, if any.
    pub fn override_state(&self) -> Option<Override> {
        self.s.over
    }
    /// When the state in force last changed (or the server was added).
    pub fn since(&self) -> Instant {
        self.s.since
    }
    /// The latest result of any of its checks: when, and why.
    pub fn last_result(&self) -> Option<(Instant, &'a Detail)> {
        self.checks().filter_map(|c| c.last_result()).max_by_key(|(t, _)| *t)
    }
    /// Its full weight: the configured one, or the one a `misc_dynamic` check set.
    pub fn weight(&self) -> u32 {
        self.s.weight()
    }
    /// The weight in the director's table (`None`: not in the table), on a slow-start ramp
    /// below [`weight`](Self::weight).
    pub fn weight_in_force(&self) -> Option<u32> {
        self.s.installed
    }
    /// A slow start is under way.
    pub fn ramping(&self) -> bool {
        self.s.ramp.is_some()
    }
    /// A probe of one of its checks is in flight.
    pub fn probing(&self) -> bool {
        self.s.checks.iter().any(|c| c.probe.is_some())
    }
}

/// What the monitor knows of one check of a server.
#[derive(Clone, Copy, Debug)]
pub struct CheckStatus<'a> {
    c: &'a Probed,
}

impl<'a> CheckStatus<'a> {
    /// Its plan.
    pub fn plan(&self) -> &'a CheckPlan {
        &self.c.plan
    }
    /// What it checks with.
    pub fn check(&self) -> &'a Check {
        &self.c.plan.check
    }
    /// What this check says.
    pub fn health(&self) -> Health {
        self.c.health
    }
    /// Its counters toward rise and fall.
    pub fn streak(&self) -> Streak {
        self.c.streak
    }
    /// Its last result: when, and why.
    pub fn last_result(&self) -> Option<(Instant, &'a Detail)> {
        self.c.last.as_ref().map(|(t, d)| (*t, d))
    }
    /// A probe of it is in flight.
    pub fn probing(&self) -> bool {
        self.c.probe.is_some()
    }
}

/// What the monitor knows of one service.
#[derive(Clone, Copy, Debug)]
pub struct ServiceStatus<'a> {
    svc: &'a Svc,
    m: &'a Monitor,
}

impl<'a> ServiceStatus<'a> {
    /// The service.
    pub fn key(&self) -> ServiceKey {
        self.svc.key
    }
    /// Its policy.
    pub fn policy(&self) -> &'a ServicePolicy {
        &self.svc.policy
    }
    /// It has quorum.
    pub fn quorum_up(&self) -> bool {
        self.svc.quorum_up
    }
    /// The sum of the weights of its servers in service.
    pub fn live_weight(&self) -> u64 {
        self.servers().filter(|s| s.state() == State::Up).map(|s| u64::from(s.weight())).sum()
    }
    /// The sorry server is in service.
    pub fn sorry_active(&self) -> bool {
        self.svc.sorry_active
    }
    /// The sorry server's weight in the table (`None`: not in the table, or none configured).
    pub fn sorry_weight_in_force(&self) -> Option<u32> {
        self.svc.sorry_installed
    }
    /// Its servers, in the order they were added.
    pub fn servers(&self) -> impl Iterator<Item = ServerStatus<'a>> + 'a {
        let (m, svc) = (self.m, self.svc);
        svc.members.iter().filter_map(move |id| Some(ServerStatus { id: *id, s: m.srv(*id)?, svc }))
    }
}
