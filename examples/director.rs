//! A director on named interfaces: this library on AF_PACKET or AF_XDP, set up from an ipvsadm rule file,
//! a keepalived.conf or an ldirectord.cf, driven over a control socket by `lvsadm` as the
//! kernel's director is by `ipvsadm`.
//!
//! ```text
//! director (--rules FILE | --keepalived FILE | --ldirectord FILE) --port IF [--port IF ...]
//!          [--neigh IP=MAC@IF ...] [--gateway MAC@IF] [--no-kernel-neigh]
//!          [--backend afpacket|afxdp] [--control PATH] [--procfs DIR] [--refresh SECS] [--metrics ADDR:PORT]
//!          [--config-id ID] [--midflow-hash] [--announce-cmd CMD] [--announce-file PATH]
//!          [--drain SECS] [--shards N] [--busy-poll USECS] [--coalesce USECS]
//! ```
//!
//! - `--port IF`: an interface the director sends and receives on (port 0, 1, ... in order).
//! - Next hops come from the kernel's tables: every second (every 100 ms while one is being
//!   resolved) the route to each real server and the default routes, and their MACs from the
//!   neighbour table, the kernel asked to resolve those it lacks (`lvs_dataplane::neigh`); a
//!   server the kernel has no route to through one of the ports (for direct routing: on a link
//!   of one) is reported once. `--neigh IP=MAC@IF`: a next hop given by hand (a real server, a
//!   client), which the kernel's tables no longer change; `--gateway MAC@IF`: the router for
//!   every other address (NAT replies, ICMP errors), likewise; `--no-kernel-neigh`: only what
//!   is given by hand.
//! - With keepalived.conf: its health checks, its VRRP instances (a thread beside the packet
//!   loop; the virtual addresses go on the kernel's interface while master) and the sync
//!   daemons `lvs_sync_daemon` asks for. With ldirectord.cf: its health checks.
//! - `--control PATH` (default `/run/lvs/director.sock`): `lvsadm`'s socket (see
//!   `common/control.rs`); commands run between two bursts of the packet loop.
//! - `--procfs DIR`: `DIR/net/ip_vs*` rewritten every `--refresh` seconds (default 2, the
//!   kernel's estimator period), for node_exporter's `--path.procfs=DIR`.
//! - `--metrics ADDR:PORT`: `GET /metrics` answered with the Prometheus exposition
//!   (node_exporter's `node_ipvs_*` families, then drops, health, VRRP and sync), served between
//!   two bursts of the packet loop.
//!
//! - Rule files may carry `--start-daemon master|backup` lines: the daemons start with the
//!   rules and their sockets open with the packet loop (connection sync among directors).
//! - `--midflow-hash`: every service schedules a mid-flow TCP segment without a connection by
//!   its `mh`/`sh` hash (`ServiceConfig::midflow_hash`), for directors behind ECMP routing; a
//!   service that cannot (another scheduler, a server other than DR or TUN) stops the start
//!   with its error. For some services only, a rule file says `--midflow-hash` on their `-A`
//!   lines (keepalived.conf: `midflow-hash` in their `virtual_server`).
//! - `--announce-cmd CMD`: `sh -c CMD` runs on each change of what the director announces
//!   (`health::Announcer`: a VIP while the director is up and every checked service on it holds
//!   its quorum), with `LVS_ACTION=announce|withdraw`, `LVS_VIP` and `LVS_PREFIX` (`VIP/32`,
//!   `VIP/128`) in its environment, for a BGP daemon (`vtysh -c ...`, `birdc ...`) to announce
//!   or withdraw the route; `--announce-file PATH`: the announced prefixes, one a line,
//!   rewritten (atomically) on each change before the command runs, so that the command may
//!   rebuild a daemon's whole list from it (BIRD: a `protocol static` include, then
//!   `birdc configure`; see the README's scale-out section).
//! - `--drain SECS`: a graceful leave on SIGTERM — withdraw every VIP first, keep forwarding
//!   for SECS seconds while the routers move flows elsewhere, then stop. A second SIGTERM, or
//!   SIGINT, stops at once.
//!
//! - `--shards N` (default 1): N packet loops, one thread each, sharing every port through an
//!   AF_PACKET fanout group steered by the client's side (`Steer::client_of`: a NAT reply meets
//!   its connection, a persistent client its template), FullNAT local ports split in N shares.
//!   The control socket, SIGHUP and the health checks change every shard; the `--stats` table
//!   and the metrics are summed. With `--backend afxdp` shard `i` takes receive queue `i` of
//!   every port (each port needs N queues) and hands a frame that arrived on another shard's
//!   queue to the shard that owns it (`Runtime::with_handoff`, the same `Steer::client_of`
//!   rule). `--procfs`, VRRP and sync daemons own one runtime: asked for with N > 1, the
//!   director refuses to start.
//! - `--coalesce USECS` (default 50, 0 for none): after a pass that took some frames but less
//!   than a quarter of a burst the loop sleeps USECS before the next instead of waking for
//!   every frame (`Runtime::with_coalescing`, the interrupt coalescing of a NIC's `rx-usecs`).
//! - `--busy-poll USECS` (AF_XDP): the sockets busy-poll their queues (`SO_PREFER_BUSY_POLL`,
//!   `SO_BUSY_POLL`); where the kernel refuses, a warning says why and interrupts serve.
//!
//! SIGUSR1 prints `ipvsadm -Ln --stats`; SIGHUP reloads the file and applies the difference
//! (a bad file is refused whole and the running configuration stays); SIGTERM and SIGINT stop it,
//! printing the table last. Logs go to standard error through `log` (`RUST_LOG=debug` for more).

#[path = "common/control.rs"]
#[allow(dead_code)] // the server half: requests in, responses out
mod control;
#[path = "common/vrrp_loop.rs"]
mod vrrp_loop;

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use log::{error, info, warn};

use lvs::core::addr::Af;
use lvs::core::addr::{Endpoint, ServiceKey};
use lvs::core::config::keepalived::{self, Interface, SyncFollow};
use lvs::core::config::prometheus::{Snapshot, VrrpInstance};
use lvs::core::config::{
    diff, ldirectord, list, parse_request, parse_rules, run_ipvsadm, IpvsadmOutput, ListOptions, Listing,
    Request as Invocation,
};
use lvs::core::dest::RealServer;
use lvs::core::health::Control;
use lvs::core::health::{Announcer, Change, Monitor};
use lvs::core::laddr::PortShare;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::sync::Role;
use lvs::core::vrrp::{AddressChange, Event as VrrpEvent, Group, InstanceId, State as VrrpState, TrackerId};
use lvs::core::Command;
use lvs::core::{Director, DirectorConfig, Instant, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::afxdp::{open_or_afpacket, rx_queue_count, AfXdpConfig};
use lvs::dataplane::filter::Filter;
use lvs::dataplane::handoff::{Handoff, DEFAULT_INBOX};
use lvs::dataplane::health::HealthChecker;
use lvs::dataplane::io::PacketIo;
use lvs::dataplane::metrics::MetricsServer;
use lvs::dataplane::neigh::{self, KernelNeighbours, Learned};
use lvs::dataplane::runtime::{MonotonicClock, Runtime};
use lvs::dataplane::runtime::{Shards, StopHandle};
use lvs::dataplane::steer::Steer;
use lvs::dataplane::vrrp::{interface_addr, Hooks, KernelAddresses, LvsSyncDaemon, Origin, VrrpIo};

use control::{Request, Response};

/// How long the control thread waits for the packet loop to answer one request.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// How long a client may take to send its request.
const READ_WITHIN: Duration = Duration::from_secs(5);

/// Where the configuration comes from, and in which format.
#[derive(Clone, Debug)]
enum Source {
    Rules(PathBuf),
    Keepalived(PathBuf),
    Ldirectord(PathBuf),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Source::Rules(p) | Source::Keepalived(p) | Source::Ldirectord(p) => p,
        }
    }
}

/// The packet I/O backend (`--backend`).
#[derive(Clone, Copy, Debug)]
enum Backend {
    AfPacket,
    /// AF_XDP on queue 0 (queue `i` for shard `i`), or AF_PACKET with a warning when AF_XDP
    /// cannot start.
    AfXdp,
}

/// The command line.
#[derive(Clone)]
struct Args {
    source: Source,
    ports: Vec<String>,
    neigh: Vec<(IpAddr, MacAddr, String)>,
    gateway: Option<(MacAddr, String)>,
    kernel_neigh: bool,
    backend: Backend,
    control: PathBuf,
    procfs: Option<PathBuf>,
    refresh: Duration,
    metrics: Option<SocketAddr>,
    config_id: Option<String>,
    midflow_hash: bool,
    announce_cmd: Option<String>,
    announce_file: Option<PathBuf>,
    drain: Option<Duration>,
    shards: u16,
    busy_poll: Option<u32>,
    coalesce: Duration,
}

const USAGE: &str = "usage: director (--rules FILE | --keepalived FILE | --ldirectord FILE) --port IF [--port IF ...]
                [--neigh IP=MAC@IF ...] [--gateway MAC@IF] [--no-kernel-neigh]
                [--backend afpacket|afxdp] [--control PATH] [--procfs DIR] [--refresh SECS] [--metrics ADDR:PORT]
                [--config-id ID] [--midflow-hash] [--announce-cmd CMD] [--announce-file PATH]
                [--drain SECS] [--shards N] [--busy-poll USECS] [--coalesce USECS]";

/// `MAC@IF`.
fn mac_at(v: &str) -> Result<(MacAddr, String), String> {
    let (mac, ifname) = v.split_once('@').ok_or_else(|| format!("{v:?}: expected MAC@IF"))?;
    let mac = mac.parse().map_err(|_| format!("{mac:?}: not a MAC address"))?;
    Ok((mac, ifname.to_string()))
}

/// A positive number of seconds, for `flag`.
fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag} {v:?}: a positive number of seconds"))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut source, mut ports, mut neigh, mut gateway) = (None, Vec::new(), Vec::new(), None);
    let (mut control, mut procfs, mut refresh, mut config_id) = (None, None, Duration::from_secs(2), None);
    let (mut backend, mut metrics) = (Backend::AfPacket, None);
    let (mut midflow_hash, mut announce_cmd, mut announce_file, mut drain) = (false, None, None, None);
    let (mut shards, mut busy_poll, mut kernel_neigh) = (1, None, true);
    let mut coalesce = DEFAULT_COALESCE;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--rules" | "--keepalived" | "--ldirectord" if source.is_some() => {
                return Err(format!("one of --rules, --keepalived, --ldirectord\n{USAGE}"))
            }
            "--rules" => source = Some(Source::Rules(value()?.into())),
            "--keepalived" => source = Some(Source::Keepalived(value()?.into())),
            "--ldirectord" => source = Some(Source::Ldirectord(value()?.into())),
            "--port" => ports.push(value()?),
            "--neigh" => {
                let v = value()?;
                let (ip, rest) = v.split_once('=').ok_or_else(|| format!("{v:?}: expected IP=MAC@IF"))?;
                let ip = ip.parse().map_err(|_| format!("{ip:?}: not an IP address"))?;
                let (mac, ifname) = mac_at(rest)?;
                neigh.push((ip, mac, ifname));
            }
            "--gateway" => gateway = Some(mac_at(&value()?)?),
            "--no-kernel-neigh" => kernel_neigh = false,
            "--backend" => {
                backend = match value()?.as_str() {
                    "afpacket" => Backend::AfPacket,
                    "afxdp" => Backend::AfXdp,
                    other => return Err(format!("backend {other:?}: this build has afpacket and afxdp")),
                }
            }
            "--control" => control = Some(value()?.into()),
            "--procfs" => procfs = Some(value()?.into()),
            "--refresh" => refresh = seconds(&flag, &value()?)?,
            "--drain" => drain = Some(seconds(&flag, &value()?)?),
            "--midflow-hash" => midflow_hash = true,
            "--announce-cmd" => announce_cmd = Some(value()?),
            "--announce-file" => announce_file = Some(value()?.into()),
            "--metrics" => {
                let v = value()?;
                metrics = Some(v.parse().map_err(|_| format!("--metrics {v:?}: expected ADDR:PORT"))?);
            }
            "--config-id" => config_id = Some(value()?),
            "--shards" => {
                let v = value()?;
                shards = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("--shards {v:?}: 1 or more"))?;
            }
            "--busy-poll" => {
                let v = value()?;
                let usecs = v.parse().ok().filter(|n| *n > 0);
                busy_poll = Some(usecs.ok_or_else(|| format!("--busy-poll {v:?}: microseconds, 1 or more"))?);
            }
            "--coalesce" => {
                let v = value()?;
                let usecs = v.parse().map_err(|_| format!("--coalesce {v:?}: microseconds, 0 for none"))?;
                coalesce = Duration::from_micros(usecs);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    let source = source.ok_or_else(|| format!("a configuration is needed\n{USAGE}"))?;
    if ports.is_empty() {
        return Err(format!("at least one --port is needed\n{USAGE}"));
    }
    let control = control.unwrap_or_else(|| control::DEFAULT_SOCKET.into());
    Ok(Args {
        source,
        ports,
        neigh,
        gateway,
        kernel_neigh,
        backend,
        control,
        procfs,
        refresh,
        metrics,
        config_id,
        midflow_hash,
        announce_cmd,
        announce_file,
        drain,
        shards,
        busy_poll,
        coalesce,
    })
}

/// The director's ports: each interface's MAC and IPv4 address, as the kernel has them.
fn port_configs(ports: &[String]) -> Result<Vec<PortConfig>, String> {
    ports
        .iter()
        .map(|ifname| {
            let sys = Path::new("/sys/class/net").join(ifname);
            if !sys.exists() {
                return Err(format!("no interface {ifname:?} here (see `ip link`)"));
            }
            let mac = std::fs::read_to_string(sys.join("address")).map_err(|e| format!("{ifname}: {e}"))?;
            let mac: MacAddr = mac.trim().parse().map_err(|_| format!("{ifname}: MAC address {:?}", mac.trim()))?;
            let mut port = PortConfig::new(mac);
            if let Some(addr) = interface_addr(ifname, Af::V4).map_err(|e| format!("{ifname}: {e}"))? {
                port = port.with_addr(addr);
            }
            Ok(port)
        })
        .collect()
}

/// A port's number by interface name.
fn port_of(ports: &[String], ifname: &str) -> Result<u16, String> {
    let i = ports.iter().position(|p| p == ifname).ok_or_else(|| format!("{ifname:?} is not a --port"))?;
    u16::try_from(i).map_err(|_| "too many ports".to_string())
}

/// Opens a port on the backend, with what went wrong said plainly; with AF_XDP, receive queue
/// `queue`. AF_XDP that cannot start falls back to AF_PACKET, and the log says why.
fn open_port(args: &Args, ifname: &str, queue: u32, afp: AfPacketConfig) -> Result<Box<dyn PacketIo + Send>, String> {
    let opened = match args.backend {
        Backend::AfPacket => AfPacket::open(ifname, afp).map(|p| Box::new(p) as Box<_>),
        Backend::AfXdp => {
            let xdp = AfXdpConfig { queue, busy_poll: args.busy_poll, ..AfXdpConfig::default() };
            open_or_afpacket(ifname, xdp, afp).map(|(p, _)| p)
        }
    };
    opened.map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => format!("{ifname}: a packet socket needs CAP_NET_RAW (run as root): {e}"),
        _ => format!("{ifname}: {e}"),
    })
}

/// A parsed configuration, before it is applied.
enum Loaded {
    Rules(Vec<lvs::core::Command>),
    Keepalived(Box<keepalived::Keepalived>),
    Ldirectord(Box<ldirectord::Ldirectord>),
}

/// Reads and parses the configuration; warnings are logged. An error names the file and line.
fn load(source: &Source, config_id: Option<&str>) -> Result<Loaded, String> {
    let path = source.path();
    let name = path.display().to_string();
    let read = || std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"));
    match source {
        Source::Rules(_) => match parse_rules(&read()?) {
            Ok(c) => Ok(Loaded::Rules(c)),
            Err(lvs::core::Error::Parse { line, msg }) => Err(format!("{name}:{line}: {msg}")),
            Err(e) => Err(format!("{name}: {e}")),
        },
        Source::Keepalived(_) => {
            let opts = keepalived::Options { config_id: config_id.map(String::from), ..keepalived::Options::default() };
            let parsed = keepalived::parse(&mut lvs::files::FsSource, &name, &opts).map_err(|e| e.to_string())?;
            parsed.warnings.iter().for_each(|w| warn!("{w}"));
            Ok(Loaded::Keepalived(Box::new(parsed.config)))
        }
        Source::Ldirectord(_) => {
            let parsed = ldirectord::parse(&read()?, &name).map_err(|e| e.to_string())?;
            parsed.warnings.iter().for_each(|w| warn!("{w}"));
            Ok(Loaded::Ldirectord(Box::new(parsed.config)))
        }
    }
}

/// What VRRP reports, shared by its thread, the control channel and the metrics: each
/// instance's name and where it stands.
type VrrpStates = Arc<Mutex<BTreeMap<InstanceId, (String, VrrpInstance)>>>;

/// The director's VRRP hooks: the virtual addresses on the kernel's interface, and every
/// transition logged and recorded for `lvsadm --vrrp`.
struct DirectorHooks {
    states: VrrpStates,
}

impl Hooks for DirectorHooks {
    fn add_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        KernelAddresses.add_addresses(at, change)
    }

    fn remove_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        KernelAddresses.remove_addresses(at, change)
    }

    fn notify(&mut self, at: &Origin<'_>, event: VrrpEvent, priority: u8) {
        let state = match event {
            VrrpEvent::Master => VrrpState::Master,
            VrrpEvent::Backup => VrrpState::Backup,
            VrrpEvent::Fault => VrrpState::Fault,
            VrrpEvent::Stop => VrrpState::Init,
            VrrpEvent::MasterRxLowerPri => return info!("vrrp: VRID {} heard a lower priority", at.vrid),
        };
        let mut states = self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((name, i)) = states.get_mut(&at.instance) {
            info!("vrrp: {name} (VRID {} on {}) entering {} state", at.vrid, at.ifname, state.name());
            i.became_master += u64::from(state == VrrpState::Master);
            (i.state, i.priority) = (state, priority);
        }
    }
}

/// The `lvsadm --vrrp` listing.
fn vrrp_listing(states: &VrrpStates) -> String {
    let states = states.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = format!("{:<20} {:>4}  {:<12} {:<7} {:>8}\n", "Instance", "VRID", "Interface", "State", "Priority");
    for (name, i) in states.values() {
        out += &format!("{name:<20} {:>4}  {:<12} {:<7} {:>8}\n", i.vrid, i.interface, i.state.name(), i.priority);
    }
    out
}

/// What runs beside the packet loop for a keepalived.conf: the VRRP thread and the sync
/// daemons that follow an instance.
struct Cluster {
    vrrp: Option<std::thread::JoinHandle<io::Result<()>>>,
    follow: Option<LvsSyncDaemon>,
    states: VrrpStates,
}

/// Starts the VRRP group (when the file has instances) and the sync daemons.
fn start_cluster(
    rt: &mut Runtime,
    applied: keepalived::Applied,
    ports: &[String],
    clock: &MonotonicClock,
) -> Result<Cluster, String> {
    let states = VrrpStates::default();
    let group: Group = applied.vrrp.group;
    let mut cluster = Cluster { vrrp: None, follow: None, states: states.clone() };
    let mut links: Vec<(TrackerId, String)> = Vec::new();
    for t in &applied.vrrp.trackers {
        match &t.kind {
            keepalived::TrackKind::Interface(ifname) => links.push((t.id, ifname.clone())),
            keepalived::TrackKind::Script(name) => {
                warn!("vrrp_script {name}: this director does not run scripts; it counts as passing")
            }
        }
    }
    match applied.sync {
        Some(SyncFollow { config, instance: Some(vr) }) => {
            let follow = LvsSyncDaemon::new(&group, vr, &config.ifname).map_err(|e| e.to_string())?;
            cluster.follow = Some(follow.with_config(config));
        }
        Some(SyncFollow { config, instance: None }) => {
            for role in [Role::Master, Role::Backup] {
                rt.start_sync(role, &config).map_err(|e| format!("sync {} daemon: {e}", role.name()))?;
                info!("sync: {} daemon started on {} (syncid {})", role.name(), config.ifname, config.syncid);
            }
        }
        None => {}
    }
    if applied.vrrp.instances.is_empty() {
        return Ok(cluster);
    }
    {
        let mut s = states.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (name, id) in &applied.vrrp.instances {
            if let Some(i) = group.instance(*id) {
                let c = i.config();
                let interface = ports.get(usize::from(c.port)).cloned().unwrap_or_default();
                let instance = VrrpInstance {
                    interface,
                    vrid: c.vrid,
                    family: Af::of(&c.primary),
                    state: i.state(),
                    priority: i.priority(),
                    became_master: 0,
                };
                s.insert(*id, (name.clone(), instance));
            }
        }
    }
    let names: Vec<&str> = ports.iter().map(String::as_str).collect();
    let hooks = DirectorHooks { states };
    let (stop, clock) = (rt.stop_handle(), *clock);
    let thread = match &cluster.follow {
        Some(f) => {
            let io = VrrpIo::open(group, &names, f.hooks(hooks)).map_err(|e| format!("vrrp: {e}"))?;
            std::thread::spawn(move || vrrp_loop::run(io, &links, &clock, &stop))
        }
        None => {
            let io = VrrpIo::open(group, &names, hooks).map_err(|e| format!("vrrp: {e}"))?;
            std::thread::spawn(move || vrrp_loop::run(io, &links, &clock, &stop))
        }
    };
    cluster.vrrp = Some(thread);
    Ok(cluster)
}

/// Sets the first configuration up on a fresh director and monitor.
fn apply_first(
    loaded: &Loaded,
    d: &mut Director,
    m: &mut Monitor,
    clock: &MonotonicClock,
    ports: &[String],
) -> Result<Option<keepalived::Applied>, String> {
    let now = clock.now();
    match loaded {
        Loaded::Rules(cmds) => d.execute_all(cmds).map(|()| None).map_err(|e| e.to_string()),
        Loaded::Ldirectord(cfg) => cfg.apply(d, m, now).map(|_| None).map_err(|e| e.to_string()),
        Loaded::Keepalived(cfg) => {
            let interfaces = |name: &str| {
                let port = port_of(ports, name).ok()?;
                let v4 = interface_addr(name, Af::V4).ok().flatten();
                let v6 = interface_addr(name, Af::V6).ok().flatten();
                Some(Interface { port, v4, v6 })
            };
            cfg.apply(d, m, now, &interfaces).map(Some).map_err(|e| e.to_string())
        }
    }
}

/// Brings `d` (and its monitor, for a file with health checks) to a reloaded configuration:
/// the difference, or nothing. Returns how many changes it made.
fn reload_into(
    d: &mut Director,
    monitor: Option<&mut Monitor>,
    loaded: &Loaded,
    now: Instant,
    midflow_hash: bool,
) -> Result<usize, String> {
    let deployment = match loaded {
        Loaded::Rules(cmds) => {
            let cmds = diff(d, cmds, &|_, _| false).map_err(|e| e.to_string())?;
            d.execute_all(&cmds).map_err(|e| e.to_string())?;
            if midflow_hash {
                set_midflow_hash(d)?;
            }
            return Ok(cmds.len());
        }
        Loaded::Ldirectord(c) => c.deployment(),
        Loaded::Keepalived(c) => {
            warn!("reload: VRRP instances and sync daemons stay as they started; restart to change them");
            c.deployment()
        }
    };
    let m = monitor.ok_or("no health checker")?;
    let r = deployment.reload(d, m, now).map_err(|e| e.to_string())?;
    for (k, e) in &r.checks_stopped {
        info!("reload: {k}: stopped checking {e}");
    }
    for (k, e) in &r.checks_started {
        info!("reload: {k}: checking {e}");
    }
    if midflow_hash {
        set_midflow_hash(d)?;
    }
    Ok(r.commands.len() + r.checks_started.len() + r.checks_stopped.len())
}

/// The packet loops behind the operator's verbs: one [`Runtime`] on the main thread, or
/// [`Sharded`] loops. Everything the director does between two passes (signals, `lvsadm`,
/// announcements, metrics) goes through this, so one code path serves both.
trait Engine {
    /// The configuration in force.
    fn config(&self) -> &Director;
    /// The health checker, when the configuration has checks.
    fn health(&self) -> Option<&HealthChecker>;
    /// One `ipvsadm` invocation from the control socket.
    fn ipvsadm(&mut self, now: Instant, args: &[String], stdin: &str) -> IpvsadmOutput;
    /// `ipvsadm -Ln --stats` over all the traffic.
    fn stats_table(&self, now: Instant) -> String;
    /// The Prometheus exposition's director part, over all the traffic.
    fn snapshot(&self) -> Snapshot;
    /// Applies a reloaded configuration (see [`reload_into`]).
    fn reload(&mut self, loaded: &Loaded, now: Instant, midflow_hash: bool) -> Result<usize, String>;
    /// Tells every director the next hops learned from the kernel.
    fn learn(&mut self, learned: &Learned);
    /// The one runtime, for what needs it whole (the sync daemons VRRP starts and stops).
    fn runtime(&mut self) -> Option<&mut Runtime>;
    /// What stops [`Engine::drive`].
    fn stop_handle(&self) -> StopHandle;
    /// Runs the loops until stopped, calling `between` after every pass.
    fn drive(&mut self, clock: &MonotonicClock, between: &mut dyn FnMut(&mut dyn Engine)) -> io::Result<()>;
    /// Stops whatever still runs once [`Engine::drive`] has returned.
    fn shut(self: Box<Self>) -> io::Result<()>;
}

impl Engine for Runtime {
    fn config(&self) -> &Director {
        self.director()
    }

    fn health(&self) -> Option<&HealthChecker> {
        Runtime::health(self)
    }

    fn ipvsadm(&mut self, now: Instant, args: &[String], stdin: &str) -> IpvsadmOutput {
        run_ipvsadm(self.director_mut(), now, args, stdin)
    }

    fn stats_table(&self, now: Instant) -> String {
        list(self.director(), now, ListOptions::Stats)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::of(self.director())
    }

    fn reload(&mut self, loaded: &Loaded, now: Instant, midflow_hash: bool) -> Result<usize, String> {
        if Runtime::health(self).is_none() {
            return reload_into(self.director_mut(), None, loaded, now, midflow_hash);
        }
        let (h, d) = self.health_mut().ok_or("no health checker")?;
        reload_into(d, Some(h.monitor_mut()), loaded, now, midflow_hash)
    }

    fn learn(&mut self, learned: &Learned) {
        learned.apply(self.director_mut());
    }

    fn runtime(&mut self) -> Option<&mut Runtime> {
        Some(self)
    }

    fn stop_handle(&self) -> StopHandle {
        Runtime::stop_handle(self)
    }

    fn drive(&mut self, clock: &MonotonicClock, between: &mut dyn FnMut(&mut dyn Engine)) -> io::Result<()> {
        self.run_with(clock, |rt| between(rt))
    }

    fn shut(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

/// `--shards N`: the shards' loops on their threads, and on the main thread the configuration
/// they share — a director without traffic that every change goes to first (`lvsadm`, a
/// reload, a health check's reaction), then to every shard — and its health checker.
struct Sharded {
    shards: Shards,
    config: Director,
    health: Option<HealthChecker>,
    stop: StopHandle,
}

/// How long the main thread of [`Sharded`] waits between two passes when no health check is
/// due sooner.
const SHARDED_PASS: Duration = Duration::from_millis(10);

/// The health checks' reactions, applied to the shared configuration and then to every shard.
struct Everywhere<'a> {
    config: &'a mut Director,
    shards: &'a mut Shards,
}

impl Control for Everywhere<'_> {
    fn add_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), lvs::core::Error> {
        Control::add_dest(self.config, key, rs)?;
        self.shards.add_dest(key, rs)
    }

    fn edit_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), lvs::core::Error> {
        Control::edit_dest(self.config, key, rs)?;
        self.shards.edit_dest(key, rs)
    }

    fn del_dest(&mut self, key: &ServiceKey, endpoint: &Endpoint) -> Result<(), lvs::core::Error> {
        Control::del_dest(self.config, key, endpoint)?;
        self.shards.del_dest(key, endpoint)
    }
}

impl Sharded {
    /// Brings every shard's table to the shared configuration's (`diff` against its
    /// commands), after a change that may have touched it in several steps (a reload).
    fn align(&self) -> Result<(), String> {
        let target = self.config.config_commands();
        let aligned = self.shards.each(move |rt| {
            let cmds = diff(rt.director(), &target, &|_, _| false).map_err(|e| e.to_string())?;
            rt.director_mut().execute_all(&cmds).map_err(|e| e.to_string())
        });
        aligned.into_iter().collect()
    }
}

impl Engine for Sharded {
    fn config(&self) -> &Director {
        &self.config
    }

    fn health(&self) -> Option<&HealthChecker> {
        self.health.as_ref()
    }

    /// `--stats` listings are summed over the shards; other listings (connection counts,
    /// rates, `-c`) are shard 0's; a change runs on the shared configuration, and when it
    /// passes, on every shard.
    fn ipvsadm(&mut self, now: Instant, args: &[String], stdin: &str) -> IpvsadmOutput {
        match parse_request(args, false) {
            Ok(Invocation::List(Listing::Services(f))) if f.stats => {
                IpvsadmOutput { stdout: self.shards.stats().0, ..IpvsadmOutput::default() }
            }
            Ok(Invocation::List(_) | Invocation::Laddrs(_)) => {
                let (args, stdin) = (args.to_vec(), stdin.to_string());
                let out = self.shards.first(move |rt| run_ipvsadm(rt.director_mut(), now, &args, &stdin));
                out.unwrap_or_else(|| IpvsadmOutput {
                    status: 1,
                    stderr: "director: no shard runs\n".into(),
                    ..Default::default()
                })
            }
            Ok(Invocation::Apply(Command::StartDaemon(..))) => IpvsadmOutput {
                status: 1,
                stderr: "director: sync daemons need --shards 1\n".into(),
                ..IpvsadmOutput::default()
            },
            _ => {
                let out = run_ipvsadm(&mut self.config, now, args, stdin);
                if out.status == 0 {
                    let (args, stdin) = (args.to_vec(), stdin.to_string());
                    for o in self.shards.each(move |rt| run_ipvsadm(rt.director_mut(), now, &args, &stdin)) {
                        if o.status != 0 {
                            error!("control: a shard refused what the configuration took: {}", o.stderr.trim());
                        }
                    }
                } else if let Err(e) = self.align() {
                    // ipvsadm's -R stops at its first bad line, the lines before it applied.
                    error!("control: a shard refused the configuration's table: {e}");
                }
                out
            }
        }
    }

    fn stats_table(&self, _now: Instant) -> String {
        self.shards.stats().0
    }

    fn snapshot(&self) -> Snapshot {
        self.shards.snapshot()
    }

    fn reload(&mut self, loaded: &Loaded, now: Instant, midflow_hash: bool) -> Result<usize, String> {
        let monitor = self.health.as_mut().map(HealthChecker::monitor_mut);
        let n = reload_into(&mut self.config, monitor, loaded, now, midflow_hash)?;
        self.align().map_err(|e| format!("a shard refused the reloaded table: {e}"))?;
        Ok(n)
    }

    fn learn(&mut self, learned: &Learned) {
        learned.apply(&mut self.config);
        let learned = learned.clone();
        self.shards.each(move |rt| learned.apply(rt.director_mut()));
    }

    fn runtime(&mut self) -> Option<&mut Runtime> {
        None
    }

    fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The health checks run here, their reactions going to every shard; the passes wait
    /// for the prober's sockets or its next deadline, at most [`SHARDED_PASS`].
    fn drive(&mut self, clock: &MonotonicClock, between: &mut dyn FnMut(&mut dyn Engine)) -> io::Result<()> {
        while !self.stop.is_stopped() {
            let now = clock.now();
            if let Some(h) = self.health.as_mut() {
                h.poll(now, &mut Everywhere { config: &mut self.config, shards: &mut self.shards })?;
            }
            between(self);
            let due = self.health.as_ref().and_then(|h| h.next_deadline(now));
            let wait = due.map_or(SHARDED_PASS, |t| t.saturating_since(now).min(SHARDED_PASS));
            match &self.health {
                Some(h) => h.prober().wait(wait)?,
                None => std::thread::sleep(wait),
            }
        }
        Ok(())
    }

    /// The shards keep forwarding until here, after the last table is taken; their loops'
    /// counters are logged.
    fn shut(self: Box<Self>) -> io::Result<()> {
        let s = self.shards.stats().1;
        info!(
            "shards: {} frames received, {} forwarded, {} handed to the shard that owns them ({} lost to a full inbox)",
            s.rx, s.tx, s.handed_off, s.handoff_lost
        );
        self.shards.stop()
    }
}

/// One control request, run between passes.
fn answer(e: &mut dyn Engine, req: &Request, states: &VrrpStates, now: Instant) -> Response {
    match req.args.first().map(String::as_str) {
        Some(control::HEALTH) => match e.health() {
            Some(h) => Response { stdout: lvs::core::health::status(h.monitor(), now), ..Response::default() },
            None => Response {
                status: 1,
                stderr: "no health checks: the configuration has none\n".into(),
                ..Response::default()
            },
        },
        Some(control::VRRP) => Response { stdout: vrrp_listing(states), ..Response::default() },
        first => {
            let IpvsadmOutput { stdout, stderr, status } = e.ipvsadm(now, &req.args, &req.stdin);
            let reads = matches!(first, None | Some("-S" | "--save" | "-Sn" | "-nS"))
                || first.is_some_and(|a| a.starts_with("-L") || a.starts_with("-l") || a == "--list");
            if status == 0 && !reads {
                info!("control: ipvsadm {}", req.args.join(" "));
            }
            Response { status, stdout, stderr }
        }
    }
}

/// A request from the control socket and where its answer goes.
type Pending = (Request, mpsc::Sender<Response>);

/// Listens on `path`: each connection's request goes to the packet loop, its answer back.
fn listen(path: &Path, to_loop: mpsc::Sender<Pending>) -> Result<(), String> {
    if UnixStream::connect(path).is_ok() {
        return Err(format!("{}: another director is listening there", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // A socket left by a director that is gone.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(READ_WITHIN));
            let req = match Request::read(&mut s) {
                Ok(r) => r,
                Err(e) => {
                    warn!("control: {e}");
                    continue;
                }
            };
            let (tx, rx) = mpsc::channel();
            if to_loop.send((req, tx)).is_err() {
                break;
            }
            let resp = rx.recv_timeout(ANSWER_WITHIN).unwrap_or_else(|_| Response {
                status: 1,
                stderr: "director: no answer from the packet loop\n".into(),
                ..Response::default()
            });
            if let Err(e) = resp.write(&mut s) {
                warn!("control: {e}");
            }
        }
    });
    Ok(())
}

/// How often the announcements are brought in line with the services and their quorums.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(100);

/// Turns `ServiceConfig::midflow_hash` on for every service that lacks it (`--midflow-hash`).
fn set_midflow_hash(d: &mut Director) -> Result<(), String> {
    let lacking: Vec<_> = d.services().filter(|s| !s.config.midflow_hash).map(|s| s.config.clone()).collect();
    for cfg in lacking {
        d.edit_service(cfg.midflow_hash()).map_err(|e| format!("--midflow-hash: {e}"))?;
    }
    Ok(())
}

/// What the director announces, told to a routing daemon (`--announce-cmd`, `--announce-file`).
/// Commands run one after another on a thread of their own, in the order of the changes, so
/// that the packet loop never waits for them.
struct Announce {
    announcer: Announcer,
    file: Option<PathBuf>,
    commands: Option<(mpsc::Sender<Change>, std::thread::JoinHandle<()>)>,
}

impl Announce {
    fn new(cmd: Option<String>, file: Option<PathBuf>) -> Announce {
        let commands = cmd.map(|cmd| {
            let (tx, rx) = mpsc::channel::<Change>();
            let thread = std::thread::spawn(move || {
                for change in rx {
                    let (action, vip) = match change {
                        Change::Announce(v) => ("announce", v),
                        Change::Withdraw(v) => ("withdraw", v),
                    };
                    let prefix = format!("{vip}/{}", if vip.is_ipv4() { 32 } else { 128 });
                    let status = std::process::Command::new("sh")
                        .args(["-c", &cmd])
                        .env("LVS_ACTION", action)
                        .env("LVS_VIP", vip.to_string())
                        .env("LVS_PREFIX", &prefix)
                        .status();
                    match status {
                        Ok(s) if s.success() => {}
                        Ok(s) => warn!("announce: --announce-cmd for {action} {prefix}: {s}"),
                        Err(e) => warn!("announce: --announce-cmd for {action} {prefix}: {e}"),
                    }
                }
            });
            (tx, thread)
        });
        Announce { announcer: Announcer::new(), file, commands }
    }

    /// Brings the announcements in line, and tells the daemon of any change.
    fn update(&mut self, e: &dyn Engine) {
        let changes = self.announcer.update(e.config(), e.health().map(HealthChecker::monitor));
        if changes.is_empty() {
            return;
        }
        // The file first, so that a command may read the whole set from it.
        if let Some(path) = &self.file {
            let tmp = path.with_extension("tmp");
            let written = std::fs::write(&tmp, self.announcer.render()).and_then(|()| std::fs::rename(&tmp, path));
            if let Err(e) = written {
                warn!("announce: {}: {e}", path.display());
            }
        }
        for c in &changes {
            info!("announce: {c:?}");
            if let Some((tx, _)) = &self.commands {
                let _ = tx.send(*c);
            }
        }
    }

    /// Withdraws everything and waits for the commands to have run.
    fn finish(mut self, e: &dyn Engine) {
        self.announcer.leave();
        self.update(e);
        if let Some((tx, thread)) = self.commands.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

/// The signals the loop acts on, each a flag set by its handler.
struct Signals {
    term: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    show: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
        let s = Signals { term: Arc::default(), stop: Arc::default(), reload: Arc::default(), show: Arc::default() };
        signal_hook::flag::register(SIGTERM, s.term.clone())?;
        signal_hook::flag::register(SIGINT, s.stop.clone())?;
        signal_hook::flag::register(SIGHUP, s.reload.clone())?;
        signal_hook::flag::register(SIGUSR1, s.show.clone())?;
        Ok(s)
    }
}

/// A director on `args`' ports, with their next hops, taking FullNAT local ports of `share`.
fn new_director(args: &Args, health: bool, share: PortShare) -> Result<Director, String> {
    let mut cfg = DirectorConfig::default().with_random_seeds();
    for p in port_configs(&args.ports)? {
        cfg = cfg.port(p);
    }
    // A health-checked director lets a removed server's connections go at their next packet,
    // so that a client port coming round is scheduled afresh (see the README).
    cfg.expire_nodest_conn = health;
    cfg.fnat_port_share = share;
    let mut d = lvs::director(cfg);
    for (ip, mac, ifname) in &args.neigh {
        d.set_neighbour(*ip, Neighbour { mac: *mac, port: port_of(&args.ports, ifname)? });
    }
    if let Some((mac, ifname)) = &args.gateway {
        let gw = Neighbour { mac: *mac, port: port_of(&args.ports, ifname)? };
        d.set_gateway(Af::V4, gw);
        d.set_gateway(Af::V6, gw);
    }
    Ok(d)
}

/// The health checker of `monitor`, its events logged.
fn checker(monitor: Monitor) -> Result<HealthChecker, String> {
    let checker = HealthChecker::new(monitor).map_err(|e| format!("health checker: {e}"))?;
    Ok(checker.on_event(|e| info!("health: {e}")))
}

/// The ports receive only the services' frames: the kernel keeps ARP, its own traffic and the
/// DR servers' replies, and AF_XDP hands it back everything else.
fn runtime(args: &Args, d: Director, ports: Vec<Box<dyn PacketIo + Send>>) -> Runtime {
    Runtime::new(d, ports).with_local_capacity(0).with_port_filter(Filter::default()).with_coalescing(args.coalesce)
}

/// `--shards 1`: one runtime on this thread, with the VRRP thread and sync daemons a
/// keepalived.conf asks for.
fn single(
    args: &Args,
    d: Director,
    monitor: Option<Monitor>,
    applied: Option<keepalived::Applied>,
    clock: &MonotonicClock,
) -> Result<(Runtime, Option<Cluster>), String> {
    let open = |p: &String| open_port(args, p, 0, AfPacketConfig::default());
    let ports = args.ports.iter().map(open).collect::<Result<Vec<_>, String>>()?;
    let mut rt = runtime(args, d, ports);
    if let Some(m) = monitor {
        rt = rt.with_health(checker(m)?);
    }
    let cluster = match applied {
        Some(a) => Some(start_cluster(&mut rt, a, &args.ports, clock)?),
        None => None,
    };
    Ok((rt, cluster))
}

/// Refuses, before any port opens, what one runtime owns and `--shards` above 1 cannot share.
fn refuse_with_shards(args: &Args, applied: Option<&keepalived::Applied>, d: &Director) -> Result<(), String> {
    let n = args.shards;
    if matches!(args.backend, Backend::AfXdp) {
        for ifname in &args.ports {
            let queues = rx_queue_count(ifname).map_err(|e| format!("{ifname}: {e}"))?;
            if let Some(q) = queues.filter(|q| *q < u32::from(n)) {
                return Err(format!(
                    "--shards {n}: AF_XDP takes one receive queue per shard and {ifname} has {q} \
                     (ethtool -L {ifname} combined {n}; a veth: numrxqueues {n})"
                ));
            }
        }
    }
    if args.procfs.is_some() {
        return Err(format!("--shards {n}: --procfs writes one director's files; use --metrics for summed counters"));
    }
    if applied.is_some_and(|a| !a.vrrp.instances.is_empty()) {
        return Err(format!("--shards {n}: VRRP instances run beside one runtime; use --shards 1"));
    }
    if applied.is_some_and(|a| a.sync.is_some())
        || [Role::Master, Role::Backup].iter().any(|r| d.sync_daemon(*r).is_some())
    {
        return Err(format!("--shards {n}: sync daemons run on one runtime; use --shards 1"));
    }
    Ok(())
}

/// `--shards N`: N shards, each a director built afresh with `config`'s table and its share of
/// the FullNAT local ports, its ports joined to one fanout group per interface (in shard order,
/// see `Shards::spawn`) steered by the client's side with `config`'s persistence masks; with
/// AF_XDP, shard `i` on receive queue `i` of each port, handing frames to their owners by the
/// same steering.
fn sharded(args: &Args, config: Director, monitor: Option<Monitor>) -> Result<Sharded, String> {
    let (n, health) = (args.shards, monitor.is_some());
    let table = config.config_commands();
    let steer = Steer::client_of(&config);
    // One group per interface; the ids are the namespace's, so this process takes its own.
    let group = (std::process::id() & 0x7fff) as u16;
    let handoff = match args.backend {
        Backend::AfXdp => Some(Arc::new(Handoff::new(usize::from(n), DEFAULT_INBOX).map_err(|e| e.to_string())?)),
        Backend::AfPacket => None,
    };
    let args = args.clone();
    let make = Arc::new(move |i: usize| -> io::Result<Runtime> {
        let share = u16::try_from(i).ok().and_then(|i| PortShare::new(i, n));
        let share = share.ok_or_else(|| io::Error::other(format!("no shard {i} of {n}")))?;
        let mut d = new_director(&args, health, share).map_err(io::Error::other)?;
        d.execute_all(&table).map_err(|e| io::Error::other(e.to_string()))?;
        let open = |(ifname, k): (&String, u16)| {
            let afp = AfPacketConfig { fanout: Some(group.wrapping_add(k)), steer, ..AfPacketConfig::default() };
            open_port(&args, ifname, u32::from(share.index()), afp)
        };
        let ports = args.ports.iter().zip(0..).map(open).collect::<Result<Vec<_>, String>>();
        let rt = runtime(&args, d, ports.map_err(io::Error::other)?);
        Ok(match &handoff {
            Some(h) => rt.with_handoff(h.clone(), i, steer),
            None => rt,
        })
    });
    let shards = Shards::spawn(usize::from(n), make).map_err(|e| format!("shards: {e}"))?;
    info!("{n} shards, steered by {steer:?}");
    let health = monitor.map(checker).transpose()?;
    Ok(Sharded { shards, config, health, stop: StopHandle::default() })
}

/// What the director does between two passes of its packet loops, whichever they are:
/// signals, `lvsadm`'s requests, the announcements, the sync daemons VRRP follows, metrics
/// and procfs.
struct Operator<'a> {
    args: &'a Args,
    signals: &'a Signals,
    clock: MonotonicClock,
    stop: StopHandle,
    states: VrrpStates,
    requests: mpsc::Receiver<Pending>,
    follow: Option<LvsSyncDaemon>,
    metrics: Option<MetricsServer>,
    announce: Announce,
    next_announce: Instant,
    leave_at: Option<Instant>,
    next_procfs: Instant,
    next_hops: Option<NextHops>,
    failed: Option<String>,
}

/// Next hops from the kernel's tables, for the servers and gateways not given by hand.
struct NextHops {
    kernel: KernelNeighbours,
    next: Instant,
    by_hand: Vec<IpAddr>,
    gateway_by_hand: bool,
    /// The servers reported unreachable, so each is reported once while it stays so.
    unreachable: Vec<IpAddr>,
    /// Since when the kernel has been resolving a next hop (fast refreshes for a while).
    resolving_since: Option<Instant>,
}

impl NextHops {
    fn open(args: &Args, now: Instant) -> Result<Option<NextHops>, String> {
        if !args.kernel_neigh {
            return Ok(None);
        }
        let kernel = KernelNeighbours::open(&args.ports).map_err(|e| format!("kernel neighbours: {e}"))?;
        let by_hand = args.neigh.iter().map(|(ip, ..)| *ip).collect();
        Ok(Some(NextHops {
            kernel,
            next: now,
            by_hand,
            gateway_by_hand: args.gateway.is_some(),
            unreachable: Vec::new(),
            resolving_since: None,
        }))
    }

    fn poll(&mut self, e: &mut dyn Engine, ports: &[String], now: Instant) {
        if now < self.next {
            return;
        }
        let servers: Vec<_> =
            neigh::servers(e.config()).into_iter().filter(|(ip, _)| !self.by_hand.contains(ip)).collect();
        let learned = match self.kernel.refresh(&servers, self.gateway_by_hand) {
            Ok(l) => l,
            Err(err) => {
                warn!("kernel neighbours: {err}");
                self.next = now + NEIGH_EVERY;
                return;
            }
        };
        let on = |port: u16| ports.get(usize::from(port)).map_or("?", String::as_str);
        for (ip, n) in &learned.neighbours {
            info!("next hop of {ip}: {} on {}", n.mac, on(n.port));
        }
        for (af, n) in &learned.gateways {
            info!("{af:?} gateway: {} on {}", n.mac, on(n.port));
        }
        for ip in learned.unreachable.iter().filter(|ip| !self.unreachable.contains(ip)) {
            warn!("{ip}: the kernel has no route to it on a link of a --port (give it with --neigh)");
        }
        self.unreachable = learned.unreachable.clone();
        e.learn(&learned);
        self.resolving_since = if learned.resolving.is_empty() { None } else { self.resolving_since.or(Some(now)) };
        // A host that does not answer stays unresolved: the kernel's own retries pace its
        // ARP requests, and after a while the lookups go back to once a second.
        let fast = self.resolving_since.is_some_and(|t| now.saturating_since(t) < NEIGH_FAST_FOR);
        self.next = now + if fast { NEIGH_RESOLVING } else { NEIGH_EVERY };
    }
}

/// The default of `--coalesce`: what many NICs wait before an interrupt.
const DEFAULT_COALESCE: Duration = Duration::from_micros(50);

/// How often the kernel's routes and neighbours are read, how often while one resolves, and
/// for how long at that pace.
const NEIGH_EVERY: Duration = Duration::from_secs(1);
const NEIGH_RESOLVING: Duration = Duration::from_millis(100);
const NEIGH_FAST_FOR: Duration = Duration::from_secs(3);

impl Operator<'_> {
    fn pass(&mut self, e: &mut dyn Engine) {
        let (args, signals, clock) = (self.args, self.signals, self.clock);
        let now = clock.now();
        if signals.stop.load(Ordering::Relaxed) {
            self.stop.stop();
        }
        if signals.term.swap(false, Ordering::Relaxed) {
            match (args.drain, self.leave_at) {
                (Some(drain), None) => {
                    info!("leaving: every VIP withdrawn, forwarding for {drain:?} more");
                    self.announce.announcer.leave();
                    self.next_announce = now;
                    self.leave_at = Some(now + drain);
                }
                _ => self.stop.stop(),
            }
        }
        if self.leave_at.is_some_and(|t| now >= t) {
            self.stop.stop();
        }
        if now >= self.next_announce {
            self.announce.update(e);
            self.next_announce = now + ANNOUNCE_EVERY;
        }
        if signals.show.swap(false, Ordering::Relaxed) {
            print!("{}", e.stats_table(clock.now()));
        }
        if signals.reload.swap(false, Ordering::Relaxed) {
            let reloaded = load(&args.source, args.config_id.as_deref())
                .and_then(|loaded| e.reload(&loaded, clock.now(), args.midflow_hash));
            match reloaded {
                Ok(n) => info!("configuration reloaded from {}: {n} changes", args.source.path().display()),
                Err(err) => error!("reload refused, the running configuration stays: {err}"),
            }
        }
        if let Some(h) = self.next_hops.as_mut() {
            h.poll(e, &args.ports, now);
        }
        while let Ok((req, reply)) = self.requests.try_recv() {
            let _ = reply.send(answer(e, &req, &self.states, clock.now()));
        }
        if let (Some(f), Some(rt)) = (self.follow.as_mut(), e.runtime()) {
            match f.apply(rt) {
                Ok(true) => info!("sync: daemon now {}", f.wanted().map_or("none", Role::name)),
                Ok(false) => {}
                Err(err) => {
                    self.failed = Some(format!("sync daemons: {err}"));
                    self.stop.stop();
                }
            }
        }
        if let Some(m) = self.metrics.as_mut() {
            if let Err(err) = m.poll(clock.now(), || exposition(e, &self.states)) {
                warn!("metrics: {err}");
            }
        }
        if let Some(dir) = &args.procfs {
            let now = clock.now();
            if now >= self.next_procfs {
                if let Err(err) = lvs::procfs::write(dir, e.config(), now) {
                    warn!("procfs {}: {err}", dir.display());
                }
                self.next_procfs = now + args.refresh;
            }
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let signals = Signals::register().map_err(|e| format!("signals: {e}"))?;
    let loaded = load(&args.source, args.config_id.as_deref())?;
    let health = !matches!(loaded, Loaded::Rules(_));
    let mut d = new_director(&args, health, PortShare::WHOLE)?;
    let clock = MonotonicClock::default();
    let mut monitor = Monitor::new(rand_seed());
    let applied = apply_first(&loaded, &mut d, &mut monitor, &clock, &args.ports)?;
    if args.midflow_hash {
        set_midflow_hash(&mut d)?;
    }
    info!("configuration loaded from {}: {} services", args.source.path().display(), d.services().count());
    let monitor = health.then_some(monitor);
    let (mut engine, mut cluster): (Box<dyn Engine>, Option<Cluster>) = if args.shards == 1 {
        let (rt, cluster) = single(&args, d, monitor, applied, &clock)?;
        (Box::new(rt), cluster)
    } else {
        refuse_with_shards(&args, applied.as_ref(), &d)?;
        (Box::new(sharded(&args, d, monitor)?), None)
    };
    let states = cluster.as_ref().map(|c| c.states.clone()).unwrap_or_default();
    let metrics = match args.metrics {
        Some(addr) => {
            let server = MetricsServer::bind(addr).map_err(|e| format!("--metrics {addr}: {e}"))?;
            info!("serving metrics on http://{addr}/metrics");
            Some(server)
        }
        None => None,
    };
    let (to_loop, requests) = mpsc::channel::<Pending>();
    listen(&args.control, to_loop)?;
    info!("listening on {} for lvsadm; ports {}", args.control.display(), args.ports.join(", "));
    let mut op = Operator {
        args: &args,
        signals: &signals,
        clock,
        stop: engine.stop_handle(),
        states,
        requests,
        follow: cluster.as_mut().and_then(|c| c.follow.take()),
        metrics,
        announce: Announce::new(args.announce_cmd.clone(), args.announce_file.clone()),
        next_announce: clock.now(),
        leave_at: None,
        next_procfs: clock.now(),
        next_hops: NextHops::open(&args, clock.now())?,
        failed: None,
    };
    let ran = engine.drive(&clock, &mut |e| op.pass(e));
    let Operator { stop, announce, failed, .. } = op;
    stop.stop();
    announce.finish(&*engine);
    if let Some(t) = cluster.and_then(|c| c.vrrp) {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!("vrrp: {e}"),
            Err(_) => error!("vrrp: the thread panicked"),
        }
    }
    let _ = std::fs::remove_file(&args.control);
    print!("{}", engine.stats_table(clock.now()));
    let shut = engine.shut();
    ran.and(shut).map_err(|e| format!("packet loop: {e}"))?;
    info!("stopped");
    failed.map_or(Ok(()), Err)
}

/// The Prometheus exposition of the director, its health checks and its VRRP instances.
fn exposition(e: &dyn Engine, states: &VrrpStates) -> String {
    let mut snap = e.snapshot();
    if let Some(h) = e.health() {
        snap = snap.with_health(h.monitor());
    }
    let states = states.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    snap.vrrp = states.values().map(|(_, i)| i.clone()).collect();
    snap.render()
}

/// A seed for the monitor's warmup spread and probe nonces, from the system's randomness.
fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = parse_args(std::env::args().skip(1)).and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
