//! What a daemon's configuration becomes on a director: the control [`Command`]s for its
//! virtual services and the real servers nobody checks, and the [`HealthService`]s the
//! [`Monitor`] checks and puts in the table. keepalived.conf and ldirectord.cf both turn into
//! a [`Deployment`], applied all or nothing.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::net::IpAddr;

use crate::addr::{Af, Endpoint, Proto, ServiceKey};
use crate::config::source::{ConfigError, ErrorKind, Files, Origin};
use crate::dest::{FwdMethod, RealServer, MAX_WEIGHT};
use crate::director::{Command, Director};
use crate::error::Error;
use crate::health::{CheckedServer, Control, Monitor, ServerId, ServicePolicy};
use crate::time::Instant;

/// The most real servers one virtual service of a configuration may have: the director and
/// the monitor look servers up by walking a service's list, so a configuration's setup costs
/// the square of this per service.
pub const MAX_SERVERS_PER_SERVICE: usize = 4096;

/// The most table entries (services, and each service's real and sorry servers) a
/// configuration may stand for once groups and ranges are expanded.
pub const MAX_ENTRIES: usize = 1 << 18;

/// A total order on service keys, to find one configured twice without comparing every pair.
pub(crate) fn key_order(k: &ServiceKey) -> (Option<u32>, Af, Option<Proto>, Option<IpAddr>, u16) {
    match *k {
        ServiceKey::Inet { proto, addr, port } => (None, k.af(), Some(proto), Some(addr), port),
        ServiceKey::Fwmark { mark, af } => (Some(mark), af, None, None, 0),
    }
}

/// A virtual service the health checker looks after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthService {
    /// Where it was configured.
    pub origin: Origin,
    /// The service.
    pub key: ServiceKey,
    /// How it reacts to its servers' health (sorry server, quorum, inhibit, alpha, …).
    pub policy: ServicePolicy,
    /// Its checked servers, each with where it was configured.
    pub servers: Vec<(Origin, CheckedServer)>,
}

/// The director's side of a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployment {
    /// The files the configuration came from, for error messages.
    pub files: Files,
    /// Control commands in order, each with the statement it comes from: services, servers
    /// without checks, timeouts, sync daemons.
    pub commands: Vec<(Origin, Command)>,
    /// Services whose servers the monitor checks and puts in the table.
    pub health: Vec<HealthService>,
}

/// What applying a [`Deployment`] made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployed {
    /// Each checked service with the monitor's handles of its servers, in configuration order.
    pub servers: Vec<(ServiceKey, Vec<ServerId>)>,
}

impl Deployment {
    /// The commands alone, for [`Director::execute_all`] or to diff against a running table.
    pub fn command_list(&self) -> Vec<Command> {
        self.commands.iter().map(|(_, c)| c.clone()).collect()
    }

    /// Checks what the monitor and the director would refuse later, so that applying cannot
    /// stop half way: every check plan and policy, no server twice in a service (the sorry
    /// server included), weights, thresholds and address families as `ipvsadm -a` checks them,
    /// and no service the monitor already has.
    ///
    /// # Errors
    /// The first problem, at the statement it comes from.
    pub fn check(&self, m: &Monitor) -> Result<(), ConfigError> {
        for (o, c) in &self.commands {
            if let Command::AddDest(k, rs) = c {
                check_dest(&self.files, *o, k, rs)?;
            }
        }
        for h in &self.health {
            if m.service(&h.key).is_some() {
                return Err(self.files.error(h.origin, ErrorKind::Duplicate, "service is already health-checked"));
            }
            let mut seen = BTreeSet::new();
            if let Some(s) = &h.policy.sorry_server {
                check_dest(&self.files, h.origin, &h.key, s)?;
                seen.insert((s.endpoint.addr, s.endpoint.port));
            }
            for (o, c) in &h.servers {
                let rs = &c.server;
                check_dest(&self.files, *o, &h.key, rs)?;
                c.validate().map_err(|e| self.files.error(*o, ErrorKind::Value, e))?;
                if !seen.insert((rs.endpoint.addr, rs.endpoint.port)) {
                    return Err(self.files.error(
                        *o,
                        ErrorKind::Duplicate,
                        format!("real server {} given twice", rs.endpoint),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies everything to `d` and `m` at `now`, all or nothing: after [`Deployment::check`],
    /// the commands go through [`Director::execute_all`], then the checked services to the
    /// monitor, which puts their servers in (all of them, or none with `alpha`) and the sorry
    /// server when the service starts without quorum.
    ///
    /// # Errors
    /// What `check` finds, or the first command the director refuses (at its statement);
    /// then nothing was changed.
    pub fn apply(&self, d: &mut Director, m: &mut Monitor, now: Instant) -> Result<Deployed, ConfigError> {
        self.check(m)?;
        d.execute_all(&self.command_list()).map_err(|e| {
            let origin = e.index.and_then(|i| self.commands.get(i)).map_or(Origin::default(), |(o, _)| *o);
            self.files.error(origin, ErrorKind::Refused, e.error.to_string())
        })?;
        let mut out = Deployed::default();
        for h in &self.health {
            let servers = h.servers.iter().map(|(_, c)| c.clone());
            // `check` ruled out every refusal of `add_service`.
            let ids = m
                .add_service(d, now, h.key, h.policy.clone(), servers)
                .map_err(|e| self.files.error(h.origin, ErrorKind::Refused, e.to_string()))?;
            out.servers.push((h.key, ids));
        }
        Ok(out)
    }
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// The director commands it ran ([`diff`](super::diff::diff)'s), in order.
    pub commands: Vec<Command>,
    /// Checked servers that left the monitor (gone, or edited and started afresh).
    pub checks_stopped: Vec<(ServiceKey, Endpoint)>,
    /// Checked servers the monitor started checking (new, or edited and started afresh).
    pub checks_started: Vec<(ServiceKey, Endpoint)>,
}

/// A [`Control`] that changes nothing: for the monitor letting go of servers whose table
/// entries a reload already removed with their service, or kept as unchecked servers.
struct Untouched;

impl Control for Untouched {
    fn add_dest(&mut self, _: &ServiceKey, _: RealServer) -> Result<(), Error> {
        Ok(())
    }

    fn edit_dest(&mut self, _: &ServiceKey, _: RealServer) -> Result<(), Error> {
        Ok(())
    }

    fn del_dest(&mut self, _: &ServiceKey, _: &Endpoint) -> Result<(), Error> {
        Ok(())
    }
}

impl Deployment {
    /// Moves a running director and monitor, set up from an earlier configuration, to this
    /// one without clearing anything, as keepalived's reload does (`reload_check_data` in
    /// keepalived's `check/check_data.c` keeps what did not change): the table through
    /// [`diff`](super::diff::diff) (real servers the monitor checks in both configurations
    /// are left to it), then the monitor. A checked server whose address, weight, method,
    /// thresholds, checks and own settings are unchanged keeps its check state and its place in the table; an
    /// edited one starts afresh (as a new server: up unless `alpha`); a service whose policy
    /// (quorum, sorry server, alpha, …) changed starts afresh with all its servers.
    ///
    /// # Errors
    /// What [`Deployment::check`] finds (against an empty monitor), a table the commands do
    /// not build, or a command the director refuses; then nothing was changed.
    pub fn reload(&self, d: &mut Director, m: &mut Monitor, now: Instant) -> Result<Reloaded, ConfigError> {
        self.check(&Monitor::new(0))?;
        let wanted = |k: &ServiceKey| self.health.iter().find(|h| h.key == *k);
        // Which checks go: a service gone or with a new policy goes whole; otherwise the
        // servers gone or changed.
        let mut restart = Vec::new();
        let mut stop: Vec<(ServerId, ServiceKey, Endpoint)> = Vec::new();
        for svc in m.services() {
            let key = svc.key();
            match wanted(&key) {
                Some(h) if h.policy == *svc.policy() => {
                    for s in svc.servers() {
                        let rs = s.real_server();
                        let same = h.servers.iter().any(|(_, c)| *c == s.checked());
                        if !same {
                            stop.push((s.id(), key, rs.endpoint));
                        }
                    }
                }
                _ => restart.push(key),
            }
        }
        // The monitor's entries that stay its own; the diff leaves them alone.
        let kept = |k: &ServiceKey, e: &Endpoint| {
            !restart.contains(k)
                && !stop.iter().any(|(_, sk, se)| sk == k && se == e)
                && m.service(k).is_some_and(|s| {
                    s.servers().any(|x| x.real_server().endpoint == *e)
                        || s.policy().sorry_server.is_some_and(|sorry| sorry.endpoint == *e)
                })
        };
        let commands = super::diff::diff(d, &self.command_list(), &kept)
            .map_err(|e| self.files.error(Origin::default(), ErrorKind::Refused, e.to_string()))?;
        // The diff's commands come from no one statement: a refusal names the file alone.
        d.execute_all(&commands).map_err(|e| self.files.error(Origin::default(), ErrorKind::Refused, e.to_string()))?;
        // The table now has what the commands give; the monitor lets go of what it no longer
        // checks — taking entries out only where the table still has them as its own.
        let mut out = Reloaded { commands, ..Reloaded::default() };
        let unchecked = |d: &Director, k: &ServiceKey, e: &Endpoint| {
            d.service(k).is_none()
                || self
                    .commands
                    .iter()
                    .any(|(_, c)| matches!(c, Command::AddDest(ck, rs) if ck == k && rs.endpoint == *e))
        };
        for key in &restart {
            if let Some(svc) = m.service(key) {
                out.checks_stopped.extend(svc.servers().map(|s| (*key, s.real_server().endpoint)));
            }
            let gone = d.service(key).is_none();
            let ctl: &mut dyn Control = if gone { &mut Untouched } else { &mut *d };
            // The service is the monitor's: this cannot fail.
            let _ = m.remove_service(ctl, key);
        }
        for (id, key, e) in stop {
            let ctl: &mut dyn Control = if unchecked(d, &key, &e) { &mut Untouched } else { &mut *d };
            let _ = m.remove_server(ctl, now, id);
            out.checks_stopped.push((key, e));
        }
        for h in &self.health {
            if m.service(&h.key).is_none() {
                let servers = h.servers.iter().map(|(_, c)| c.clone());
                m.add_service(d, now, h.key, h.policy.clone(), servers)
                    .map_err(|e| self.files.error(h.origin, ErrorKind::Refused, e.to_string()))?;
                out.checks_started.extend(h.servers.iter().map(|(_, c)| (h.key, c.server.endpoint)));
                continue;
            }
            for (o, c) in &h.servers {
                if m.find(&h.key, &c.server.endpoint).is_none() {
                    m.add_server(d, now, &h.key, c.clone())
                        .map_err(|e| self.files.error(*o, ErrorKind::Refused, e.to_string()))?;
                    out.checks_started.push((h.key, c.server.endpoint));
                }
            }
        }
        Ok(out)
    }
}

/// `ipvsadm -a`'s checks on a real server, at the statement it comes from.
fn check_dest(files: &Files, o: Origin, key: &ServiceKey, rs: &RealServer) -> Result<(), ConfigError> {
    if rs.weight > MAX_WEIGHT {
        return Err(files.error(o, ErrorKind::Value, format!("weight {} out of range (0..=65535)", rs.weight)));
    }
    if rs.l_threshold > rs.u_threshold {
        return Err(files.error(o, ErrorKind::Value, "lower threshold above upper threshold"));
    }
    if Af::of(&rs.endpoint.addr) != key.af() && rs.fwd != FwdMethod::Tunnel {
        return Err(files.error(
            o,
            ErrorKind::Value,
            format!("real server {} is not of the service's address family", rs.endpoint),
        ));
    }
    Ok(())
}
