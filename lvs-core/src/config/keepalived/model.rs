//! What keepalived.conf says, typed: the global settings, the virtual servers with their
//! real servers and check plans, and the VRRP scripts, instances and sync groups. Every item
//! keeps its [`Origin`]; names are resolved (groups into services, sync group members and
//! tracked scripts into what they name) and defaults filled in as keepalived fills them.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;

use crate::addr::ServiceKey;
use crate::config::source::{Files, Origin};
use crate::dest::{FwdMethod, RealServer, TunConfig};
use crate::health::{CheckPlan, ServicePolicy};
use crate::service::{PersistEngine, SchedFlags, ServiceConfig};
use crate::vrrp::{Auth, Garp, Version};

/// A whole keepalived configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keepalived {
    /// The files read, the main one first ([`Origin::file`] indexes them).
    pub files: Files,
    /// `global_defs`.
    pub global: GlobalDefs,
    /// `virtual_server` blocks, in order.
    pub virtual_servers: Vec<VirtualServer>,
    /// `vrrp_script` blocks.
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `vrrp_instance` blocks.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// `vrrp_sync_group` blocks.
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
}

/// `global_defs`, the parts the library acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalDefs {
    /// `router_id`.
    pub router_id: Option<String>,
    /// `lvs_sync_daemon` (or an instance's `lvs_sync_daemon_interface`).
    pub sync_daemon: Option<SyncDaemon>,
    /// `vrrp_garp_*` and `vrrp_min_garp`: the instances' defaults.
    pub garp: GarpSettings,
    /// `vrrp_version`.
    pub vrrp_version: Option<Version>,
    /// `vrrp_lower_prio_no_advert`.
    pub lower_prio_no_advert: Option<bool>,
    /// `lvs_timeouts tcp tcpfin udp` (0 leaves one unchanged), with where it was given.
    pub lvs_timeouts: Option<(Origin, [u32; 3])>,
    /// `lvs_flush`: clear the table before the configuration goes in, with where it was given.
    pub lvs_flush: Option<Origin>,
}

/// Gratuitous ARP settings as given, global or per instance; unset ones come from the level
/// above and then keepalived's defaults ([`Garp::default`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GarpSettings {
    /// `garp_master_delay`.
    pub master_delay: Option<Duration>,
    /// `garp_master_repeat`.
    pub master_repeat: Option<u32>,
    /// `garp_master_refresh`.
    pub master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`.
    pub master_refresh_repeat: Option<u32>,
    /// `garp_lower_prio_delay`.
    pub lower_prio_delay: Option<Duration>,
    /// `garp_lower_prio_repeat`.
    pub lower_prio_repeat: Option<u32>,
}

impl GarpSettings {
    /// These settings where given, `base` where not.
    pub fn over(&self, base: &GarpSettings) -> GarpSettings {
        GarpSettings {
            master_delay: self.master_delay.or(base.master_delay),
            master_repeat: self.master_repeat.or(base.master_repeat),
            master_refresh: self.master_refresh.or(base.master_refresh),
            master_refresh_repeat: self.master_refresh_repeat.or(base.master_refresh_repeat),
            lower_prio_delay: self.lower_prio_delay.or(base.lower_prio_delay),
            lower_prio_repeat: self.lower_prio_repeat.or(base.lower_prio_repeat),
        }
    }

    /// The timing in force: keepalived's defaults for what is unset, and the lower-priority
    /// burst following the master one when not given.
    pub fn resolve(&self) -> Garp {
        let d = Garp::default();
        let master_delay = self.master_delay.unwrap_or(d.master_delay);
        let master_repeat = self.master_repeat.unwrap_or(d.master_repeat);
        Garp {
            master_delay,
            master_repeat,
            master_refresh: self.master_refresh.unwrap_or(d.master_refresh),
            master_refresh_repeat: self.master_refresh_repeat.unwrap_or(d.master_refresh_repeat),
            lower_prio_delay: self.lower_prio_delay.unwrap_or(master_delay),
            lower_prio_repeat: self.lower_prio_repeat.unwrap_or(master_repeat),
        }
    }
}

/// `lvs_sync_daemon <INTERFACE> [[inst] <VRRP_INSTANCE>] [id <SYNC_ID>] [maxlen <LEN>]
/// [port <PORT>] [ttl <TTL>] [group <IP ADDR>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncDaemon {
    /// Where it was given.
    pub origin: Origin,
    /// The interface sync traffic uses.
    pub interface: String,
    /// The VRRP instance whose state the daemon follows (master daemon while it is master,
    /// backup daemon otherwise); without one both run all the time.
    pub instance: Option<String>,
    /// `id` (default: the instance's VRID, or 0 without an instance).
    pub syncid: Option<u8>,
    /// `maxlen` (0: the kernel's default).
    pub maxlen: u16,
    /// `port` (0: 8848).
    pub port: u16,
    /// `ttl` (0: 1).
    pub ttl: u8,
    /// `group` (default 224.0.0.81).
    pub group: Option<IpAddr>,
}

/// One `virtual_server` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    /// Where it starts.
    pub origin: Origin,
    /// The IPVS services it stands for: one for `IP PORT` or `fwmark N`, one per address,
    /// range member and fwmark of its `group`.
    pub keys: Vec<ServiceKey>,
    /// The `virtual_server_group` it names, if any.
    pub group: Option<String>,
    /// `lvs_sched` / `lb_algo` (default `wlc`).
    pub scheduler: String,
    /// `lvs_method` / `lb_kind` (default NAT): the real servers' default.
    pub fwd: FwdMethod,
    /// The tunnel settings of `lvs_method TUN type ...`: the real servers' default.
    pub tun: TunConfig,
    /// `persistence_timeout` (the keyword alone: 360 s).
    pub persistence: Option<u32>,
    /// `persistence_granularity` as a prefix length.
    pub granularity: Option<u8>,
    /// `persistence_engine` (`sip`).
    pub pe: Option<PersistEngine>,
    /// `ops`.
    pub one_packet: bool,
    /// `flag-1`, `sh-port`, … .
    pub sched_flags: SchedFlags,
    /// `midflow-hash`: lvs's own keyword, which keepalived does not know
    /// ([`ServiceConfig::midflow_hash`], ipvsadm rule files' `--midflow-hash`).
    pub midflow_hash: bool,
    /// `sorry_server`, `sorry_server_inhibit`, `quorum`, `hysteresis`, `alpha`, `omega` and
    /// `inhibit_on_failure`, as the virtual server gives them: its real servers and checkers
    /// may give their own `inhibit_on_failure` and `alpha` ([`RealServerConf`]).
    pub policy: ServicePolicy,
    /// `quorum_up`: the command the application runs when the monitor reports quorum gained.
    pub quorum_up: Option<String>,
    /// `quorum_down`: likewise for quorum lost.
    pub quorum_down: Option<String>,
    /// `real_server` blocks.
    pub real_servers: Vec<RealServerConf>,
}

impl VirtualServer {
    /// The `ipvsadm -A` of one of its services.
    pub fn service_config(&self, key: ServiceKey) -> ServiceConfig {
        let mut s = ServiceConfig::new(key, &self.scheduler);
        s.persistent = self.persistence;
        if let Some(p) = self.granularity {
            s = s.netmask(p);
        }
        s.pe = self.pe;
        s.one_packet = self.one_packet;
        s.sched_flags = self.sched_flags;
        s.midflow_hash = self.midflow_hash;
        s
    }
}

/// One `real_server` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServerConf {
    /// Where it starts.
    pub origin: Origin,
    /// Address, port (the service's when not given), method, weight, thresholds.
    pub server: RealServer,
    /// Its checks, one per checker block in order, each with the settings of the checker,
    /// the real server and the virtual server in that order of precedence (`alpha`
    /// included). It is in service only while every one passes; without any it is always in
    /// service.
    pub checks: Vec<CheckPlan>,
    /// Its own `inhibit_on_failure`; `None`: the virtual server's.
    pub inhibit_on_failure: Option<bool>,
    /// `notify_up`: the command the application runs when the monitor reports it up.
    pub notify_up: Option<String>,
    /// `notify_down`: likewise, down.
    pub notify_down: Option<String>,
}

/// One `vrrp_script` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpScript {
    /// Where it starts.
    pub origin: Origin,
    /// Its name.
    pub name: String,
    /// `script`: the command line.
    pub script: String,
    /// `interval` (default 1 s).
    pub interval: Duration,
    /// `timeout`: the run is a failure past it (default: the interval).
    pub timeout: Option<Duration>,
    /// `weight` (default 0: FAULT on failure).
    pub weight: i16,
    /// `weight … reverse`.
    pub reverse: bool,
    /// `rise` (default 1).
    pub rise: u32,
    /// `fall` (default 1).
    pub fall: u32,
    /// `init_fail`: failing until it first succeeds.
    pub init_fail: bool,
}

/// An entry of a `track_interface` or `track_script` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// Where it is.
    pub origin: Origin,
    /// The interface or script name.
    pub name: String,
    /// `weight N` (for a script, its own weight when not given).
    pub weight: Option<i16>,
    /// `reverse`.
    pub reverse: bool,
}

/// `notify_*` commands: the application runs them on the VRRP group's state events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// `notify_master`.
    pub master: Option<String>,
    /// `notify_backup`.
    pub backup: Option<String>,
    /// `notify_fault`.
    pub fault: Option<String>,
    /// `notify_stop`.
    pub stop: Option<String>,
    /// `notify` (any transition, with the group or instance, its name, state and priority
    /// appended).
    pub any: Option<String>,
}

/// One `vrrp_instance` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpInstance {
    /// Where it starts.
    pub origin: Origin,
    /// Its name.
    pub name: String,
    /// `interface`.
    pub interface: Option<String>,
    /// `state MASTER`: with priority 255 it takes over at once, as it would anyway; otherwise
    /// it waits for the election like a backup (keepalived does the same).
    pub state_master: bool,
    /// `virtual_router_id`.
    pub vrid: u8,
    /// `priority` (default 100).
    pub priority: u8,
    /// `advert_int` (default 1 s).
    pub advert_int: Duration,
    /// `version` (else `vrrp_version`, else 2 for IPv4 and 3 for IPv6).
    pub version: Option<Version>,
    /// Preemption (`nopreempt` turns it off).
    pub preempt: bool,
    /// `preempt_delay`.
    pub preempt_delay: Duration,
    /// `accept` / `no_accept` (default accept).
    pub accept: Option<bool>,
    /// `authentication { auth_type PASS auth_pass … }`.
    pub auth: Auth,
    /// `virtual_ipaddress` addresses (prefix lengths and options dropped, with a warning for
    /// the options).
    pub vips: Vec<IpAddr>,
    /// `mcast_src_ip` / `unicast_src_ip`: the source instead of the interface's address.
    pub src_ip: Option<IpAddr>,
    /// `unicast_peer` addresses.
    pub unicast_peers: Vec<IpAddr>,
    /// `use_vmac`.
    pub use_vmac: bool,
    /// `garp_*` settings over the global ones.
    pub garp: GarpSettings,
    /// `lower_prio_no_advert`.
    pub lower_prio_no_advert: Option<bool>,
    /// `dont_track_primary`: the instance's own interface going down does not make it FAULT.
    pub dont_track_primary: bool,
    /// `track_interface` entries.
    pub track_interfaces: Vec<Tracked>,
    /// `track_script` entries.
    pub track_scripts: Vec<Tracked>,
    /// `notify_*`.
    pub notify: Notify,
}

/// One `vrrp_sync_group` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpSyncGroup {
    /// Where it starts.
    pub origin: Origin,
    /// Its name.
    pub name: String,
    /// The instances (`group { … }`, or listed directly as older files do).
    pub members: Vec<String>,
    /// `track_interface` entries, acting on every member.
    pub track_interfaces: Vec<Tracked>,
    /// `track_script` entries, acting on every member.
    pub track_scripts: Vec<Tracked>,
    /// `notify_*`.
    pub notify: Notify,
    /// `sync_group_tracking_weight` (or the deprecated `global_tracking`): weighted tracks on
    /// members count.
    pub tracking_weight: bool,
}
