//! A [`Keepalived`] model turned into the library's pieces, as keepalived sets them up at
//! startup: the director's services and unchecked servers with the checked ones for the
//! health [`Monitor`] ([`Deployment`]), the VRRP [`Group`] with its sync groups and tracked
//! conditions ([`Vrrp`]), and the sync daemons ([`SyncFollow`]).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

use super::model::{Keepalived, Tracked, VirtualServer, VrrpScript};
use crate::addr::{Af, ServiceKey};
use crate::config::deploy::{Deployed, Deployment, HealthService};
use crate::config::source::{ConfigError, ErrorKind, Origin};
use crate::dest::RealServer;
use crate::director::{Command, Director};
use crate::health::{CheckedServer, Monitor};
use crate::sync::{DaemonConfig, Role};
use crate::time::Instant;
use crate::vrrp::{self, Config, Group, InstanceId, SyncId, Target, Track, TrackerId, Version};

/// What the application knows of a network interface, for the VRRP instances on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    /// The application's number for it ([`Config::port`]).
    pub port: u16,
    /// Its primary IPv4 address: the source of IPv4 advertisements.
    pub v4: Option<IpAddr>,
    /// Its IPv6 link-local address: the source of IPv6 advertisements.
    pub v6: Option<IpAddr>,
}

/// What a tracked condition stands for; the application reports it with
/// [`Group::set_tracker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackKind {
    /// An interface's link: OK while it is up. Each instance tracks its own interface (unless
    /// `dont_track_primary`) besides its `track_interface` entries.
    Interface(String),
    /// A `vrrp_script`, run by the application (every `interval`, failing after `timeout`,
    /// changing state after `rise` successes or `fall` failures): OK while it succeeds.
    Script(String),
}

/// A tracked condition of the [`Vrrp`] group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracker {
    /// Its handle.
    pub id: TrackerId,
    /// What it stands for.
    pub kind: TrackKind,
}

/// The VRRP side of a configuration: a [`Group`] not yet started ([`Group::start`]).
#[derive(Clone, Debug)]
pub struct Vrrp {
    /// The instances, sync groups and trackers.
    pub group: Group,
    /// Each `vrrp_instance` by name.
    pub instances: Vec<(String, InstanceId)>,
    /// Each `vrrp_sync_group` by name.
    pub sync_groups: Vec<(String, SyncId)>,
    /// The tracked conditions the application reports on.
    pub trackers: Vec<Tracker>,
}

impl Vrrp {
    /// An instance's handle by name.
    pub fn instance(&self, name: &str) -> Option<InstanceId> {
        self.instances.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }
}

/// The sync daemons `lvs_sync_daemon` asks for. With an instance, the master daemon runs
/// while the instance is master and the backup daemon otherwise (the configuration starts the
/// backup one); without, both run all the time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncFollow {
    /// The daemons' settings.
    pub config: DaemonConfig,
    /// The instance whose state they follow.
    pub instance: Option<InstanceId>,
}

impl SyncFollow {
    /// The commands that bring `d`'s daemons in line with the instance being master or not
    /// (none when the daemons follow no instance, or already match).
    pub fn commands(&self, d: &Director, master: bool) -> Vec<Command> {
        if self.instance.is_none() {
            return Vec::new();
        }
        let (stop, start) = if master { (Role::Backup, Role::Master) } else { (Role::Master, Role::Backup) };
        let mut out = Vec::new();
        if d.sync_daemon(stop).is_some() {
            out.push(Command::StopDaemon(stop));
        }
        if d.sync_daemon(start).is_none() {
            out.push(Command::StartDaemon(start, self.config.clone()));
        }
        out
    }
}

/// What [`Keepalived::apply`] set up.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The monitor's handles of the checked servers.
    pub deployed: Deployed,
    /// The VRRP group, ready to start.
    pub vrrp: Vrrp,
    /// The sync daemons, if configured.
    pub sync: Option<SyncFollow>,
}

impl Keepalived {
    /// Sets the configuration up: the VRRP group is built first (it touches nothing), then the
    /// [`Deployment`] is applied to `d` and `m` at `now`, all or nothing.
    ///
    /// # Errors
    /// What [`Keepalived::vrrp`] or [`Deployment::apply`] refuses; then nothing was changed.
    pub fn apply(
        &self,
        d: &mut Director,
        m: &mut Monitor,
        now: Instant,
        interfaces: &dyn Fn(&str) -> Option<Interface>,
    ) -> Result<Applied, ConfigError> {
        let vrrp = self.vrrp(now, interfaces)?;
        let deployed = self.deployment().apply(d, m, now)?;
        let sync = self.sync_follow(&vrrp);
        Ok(Applied { deployed, vrrp, sync })
    }

    /// The director's side, as keepalived programs it at startup: `lvs_flush`, then per
    /// service (one per group member) the `-A`, the real servers without a checker, and for
    /// those with one a [`HealthService`] (the monitor puts them in, or not with `alpha`, and
    /// the sorry server when quorum is lacking); a service without checked servers gets its
    /// sorry server instead of its servers when their weight misses the quorum. Then
    /// `lvs_timeouts` and the sync daemons.
    pub fn deployment(&self) -> Deployment {
        let mut out = Deployment { files: self.files.clone(), ..Deployment::default() };
        if let Some(o) = self.global.lvs_flush {
            out.commands.push((o, Command::Clear));
        }
        for vs in &self.virtual_servers {
            for key in &vs.keys {
                service(vs, *key, &mut out);
            }
        }
        if let Some((o, [tcp, tcpfin, udp])) = self.global.lvs_timeouts {
            out.commands.push((o, Command::SetTimeouts(tcp, tcpfin, udp)));
        }
        if let Some((o, cfg, follows)) = self.sync_config() {
            if !follows {
                out.commands.push((o, Command::StartDaemon(Role::Master, cfg.clone())));
            }
            out.commands.push((o, Command::StartDaemon(Role::Backup, cfg)));
        }
        out
    }

    /// The sync daemons' settings, where given, and whether they follow an instance.
    fn sync_config(&self) -> Option<(Origin, DaemonConfig, bool)> {
        let s = self.global.sync_daemon.as_ref()?;
        let inst = s.instance.as_ref().and_then(|n| self.vrrp_instances.iter().find(|i| i.name == *n));
        let mut cfg = DaemonConfig::new(&s.interface);
        cfg.syncid = s.syncid.or(inst.map(|i| i.vrid)).unwrap_or(0);
        cfg.maxlen = s.maxlen;
        cfg.port = s.port;
        cfg.ttl = s.ttl;
        cfg.group = s.group;
        Some((s.origin, cfg, inst.is_some()))
    }

    /// The sync daemons with the handle of the instance they follow.
    pub fn sync_follow(&self, vrrp: &Vrrp) -> Option<SyncFollow> {
        let (_, config, _) = self.sync_config()?;
        let instance = self.global.sync_daemon.as_ref()?.instance.as_deref().and_then(|n| vrrp.instance(n));
        Some(SyncFollow { config, instance })
    }

    /// The VRRP group: the instances on their interfaces (`interfaces` gives each one's port
    /// and addresses), the sync groups, and a tracked condition for every interface and
    /// script an instance or sync group tracks. Touches nothing outside what it returns.
    ///
    /// # Errors
    /// An interface `interfaces` does not know or that lacks an address of the instance's
    /// family, or what [`Group`] refuses (a VRID used twice on an interface, an interval the
    /// version cannot carry, …), at the statement it comes from.
    pub fn vrrp(&self, now: Instant, interfaces: &dyn Fn(&str) -> Option<Interface>) -> Result<Vrrp, ConfigError> {
        let files = &self.files;
        let mut v = Vrrp { group: Group::new(), instances: Vec::new(), sync_groups: Vec::new(), trackers: Vec::new() };
        let mut by_name = BTreeMap::new();
        let mut ifaces = Tracks::default();
        let mut scripts = Tracks::default();
        let defs: BTreeMap<&str, &VrrpScript> = self.vrrp_scripts.iter().map(|s| (s.name.as_str(), s)).collect();
        for i in &self.vrrp_instances {
            let af = i.vips.first().or(i.src_ip.as_ref()).map_or(Af::V4, Af::of);
            let iface = match &i.interface {
                Some(name) => Some(interfaces(name).ok_or_else(|| {
                    files.error(i.origin, ErrorKind::Reference, format!("unknown interface '{name}'"))
                })?),
                None => None,
            };
            let own = iface.and_then(|f| if af == Af::V4 { f.v4 } else { f.v6 });
            let primary = i.src_ip.or(own).ok_or_else(|| {
                let msg = format!(
                    "no {} address to send from: give an interface that has one, or unicast_src_ip",
                    af_name(af)
                );
                files.error(i.origin, ErrorKind::Reference, msg)
            })?;
            let mut cfg = Config::new(i.vrid, primary, i.vips.clone());
            if let Some(ver) = i.version.or(self.global.vrrp_version.filter(|_| af == Af::V4)) {
                cfg.version = ver;
            }
            if af == Af::V6 {
                cfg.version = Version::V3;
            }
            cfg.priority = i.priority;
            cfg.advert_int = i.advert_int;
            cfg.preempt = i.preempt;
            cfg.preempt_delay = i.preempt_delay;
            cfg.accept = i.accept.unwrap_or(true);
            cfg.auth = i.auth;
            cfg.unicast_peers = i.unicast_peers.clone();
            cfg.use_vmac = i.use_vmac;
            cfg.garp = i.garp.over(&self.global.garp).resolve();
            cfg.lower_prio_no_advert = i.lower_prio_no_advert.or(self.global.lower_prio_no_advert).unwrap_or(false);
            cfg.port = iface.map_or(0, |f| f.port);
            let id = v.group.add_instance(cfg).map_err(|e| files.error(i.origin, ErrorKind::Refused, vrrp_error(e)))?;
            v.instances.push((i.name.clone(), id));
            by_name.insert(i.name.as_str(), id);
            let target = Target::Instance(id);
            if let (Some(name), false) = (&i.interface, i.dont_track_primary) {
                ifaces.add(name, i.origin, Track { target, weight: 0, reverse: false });
            }
            Self::tracks(&defs, &i.track_interfaces, &i.track_scripts, target, &mut ifaces, &mut scripts);
        }
        for g in &self.vrrp_sync_groups {
            let members: Vec<InstanceId> = g.members.iter().filter_map(|m| by_name.get(m.as_str()).copied()).collect();
            let id = v
                .group
                .add_sync_group(now, &members, g.tracking_weight)
                .map_err(|e| files.error(g.origin, ErrorKind::Refused, vrrp_error(e)))?;
            v.sync_groups.push((g.name.clone(), id));
            Self::tracks(&defs, &g.track_interfaces, &g.track_scripts, Target::Sync(id), &mut ifaces, &mut scripts);
        }
        let failing: BTreeSet<&str> =
            self.vrrp_scripts.iter().filter(|s| s.init_fail).map(|s| s.name.as_str()).collect();
        for (script, list) in [(false, ifaces), (true, scripts)] {
            for (name, (origin, tracks)) in list.into_ordered() {
                let ok = !(script && failing.contains(name.as_str()));
                let id = v
                    .group
                    .add_tracker(now, ok, &tracks)
                    .map_err(|e| files.error(origin, ErrorKind::Refused, vrrp_error(e)))?;
                let kind = if script { TrackKind::Script(name) } else { TrackKind::Interface(name) };
                v.trackers.push(Tracker { id, kind });
            }
        }
        Ok(v)
    }

    /// The tracks of one instance or sync group: interfaces at their weight (0: FAULT),
    /// scripts at the entry's weight or else the script's own.
    fn tracks(
        defs: &BTreeMap<&str, &VrrpScript>,
        ifs: &[Tracked],
        scs: &[Tracked],
        target: Target,
        ifaces: &mut Tracks,
        scripts: &mut Tracks,
    ) {
        for t in ifs {
            ifaces.add(&t.name, t.origin, Track { target, weight: t.weight.unwrap_or(0), reverse: t.reverse });
        }
        for t in scs {
            let (weight, reverse) = match (t.weight, defs.get(t.name.as_str())) {
                (Some(w), _) => (w, t.reverse),
                (None, Some(s)) => (s.weight, s.reverse || t.reverse),
                (None, None) => (0, t.reverse),
            };
            scripts.add(&t.name, t.origin, Track { target, weight, reverse });
        }
    }
}

/// Tracks by the name of what they track, in the order the names first appear, each name with
/// where it was first tracked.
#[derive(Default)]
struct Tracks {
    order: Vec<String>,
    by_name: BTreeMap<String, (Origin, Vec<Track>)>,
}

impl Tracks {
    fn add(&mut self, name: &str, origin: Origin, t: Track) {
        match self.by_name.get_mut(name) {
            Some((_, tracks)) => tracks.push(t),
            None => {
                self.order.push(name.to_string());
                self.by_name.insert(name.to_string(), (origin, vec![t]));
            }
        }
    }

    fn into_ordered(mut self) -> Vec<(String, (Origin, Vec<Track>))> {
        let order = core::mem::take(&mut self.order);
        order.into_iter().filter_map(|n| self.by_name.remove(&n).map(|v| (n, v))).collect()
    }
}

fn af_name(af: Af) -> &'static str {
    match af {
        Af::V4 => "IPv4",
        Af::V6 => "IPv6",
    }
}

fn vrrp_error(e: vrrp::Error) -> String {
    format!("vrrp: {e}")
}

/// One IPVS service of a virtual server into `out`.
fn service(vs: &VirtualServer, key: ServiceKey, out: &mut Deployment) {
    // A real or sorry server given without a port takes the service's, as ipvsadm does.
    let port = |mut rs: RealServer| {
        if let (0, ServiceKey::Inet { port, .. }) = (rs.endpoint.port, key) {
            rs.endpoint.port = port;
        }
        rs
    };
    out.commands.push((vs.origin, Command::AddService(vs.service_config(key))));
    let mut policy = vs.policy.clone();
    policy.sorry_server = policy.sorry_server.map(port);
    let unchecked: Vec<_> = vs.real_servers.iter().filter(|r| r.checks.is_empty()).collect();
    let checked: Vec<_> = vs
        .real_servers
        .iter()
        .filter(|r| !r.checks.is_empty())
        .map(|r| {
            let c = CheckedServer {
                server: port(r.server),
                checks: r.checks.clone(),
                inhibit_on_failure: r.inhibit_on_failure,
            };
            (r.origin, c)
        })
        .collect();
    if checked.is_empty() {
        // Nothing is checked, so nothing changes: keepalived's quorum rule, applied once. The
        // sorry server stands in for the servers (which stay at weight 0 with their own or the
        // service's inhibit_on_failure), or waits at weight 0 with sorry_server_inhibit.
        let live: u64 = unchecked.iter().map(|r| u64::from(r.server.weight)).sum();
        let quorum = live > 0 && live >= u64::from(policy.quorum) + u64::from(policy.hysteresis);
        match (quorum, policy.sorry_server) {
            (false, Some(sorry)) => {
                out.commands.push((vs.origin, Command::AddDest(key, sorry)));
                let inhibited =
                    unchecked.into_iter().filter(|r| r.inhibit_on_failure.unwrap_or(policy.inhibit_on_failure));
                for r in inhibited {
                    out.commands.push((r.origin, Command::AddDest(key, RealServer { weight: 0, ..port(r.server) })));
                }
                return;
            }
            (true, Some(sorry)) if policy.sorry_server_inhibit => {
                out.commands.push((vs.origin, Command::AddDest(key, RealServer { weight: 0, ..sorry })));
            }
            _ => {}
        }
    } else {
        out.health.push(HealthService { origin: vs.origin, key, policy, servers: checked });
    }
    for r in unchecked {
        out.commands.push((r.origin, Command::AddDest(key, port(r.server))));
    }
}
