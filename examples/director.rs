//! A director on named interfaces: this library on AF_PACKET or AF_XDP, set up from an ipvsadm rule file,
//! a keepalived.conf or an ldirectord.cf, driven over a control socket by `lvsadm` as the
//! kernel's director is by `ipvsadm`.
//!
//! ```text
//! director (--rules FILE | --keepalived FILE | --ldirectord FILE) --port IF [--port IF ...]
//!          [--neigh IP=MAC@IF ...] [--gateway MAC@IF] [--backend afpacket|afxdp]
//!          [--control PATH] [--procfs DIR] [--refresh SECS] [--metrics ADDR:PORT]
//!          [--config-id ID] [--midflow-hash] [--announce-cmd CMD] [--announce-file PATH]
//!          [--drain SECS]
//! ```
//!
//! - `--port IF`: an interface the director sends and receives on (port 0, 1, ... in order).
//! - `--neigh IP=MAC@IF`: a next hop the director forwards to (a real server, a client);
//!   `--gateway MAC@IF`: the router for every other address (NAT replies, ICMP errors).
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
use lvs::core::config::keepalived::{self, Interface, SyncFollow};
use lvs::core::config::prometheus::{Snapshot, VrrpInstance};
use lvs::core::config::{diff, ldirectord, list, parse_rules, run_ipvsadm, IpvsadmOutput, ListOptions};
use lvs::core::health::{Announcer, Change, Monitor};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::sync::Role;
use lvs::core::vrrp::{AddressChange, Event as VrrpEvent, Group, InstanceId, State as VrrpState, TrackerId};
use lvs::core::{Director, DirectorConfig, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::afxdp::{open_or_afpacket, AfXdpConfig};
use lvs::dataplane::filter::Filter;
use lvs::dataplane::health::HealthChecker;
use lvs::dataplane::io::PacketIo;
use lvs::dataplane::metrics::MetricsServer;
use lvs::dataplane::runtime::{MonotonicClock, Runtime};
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
    /// AF_XDP on queue 0, or AF_PACKET with a warning when AF_XDP cannot start.
    AfXdp,
}

/// The command line.
struct Args {
    source: Source,
    ports: Vec<String>,
    neigh: Vec<(IpAddr, MacAddr, String)>,
    gateway: Option<(MacAddr, String)>,
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
}

const USAGE: &str = "usage: director (--rules FILE | --keepalived FILE | --ldirectord FILE) --port IF [--port IF ...]
                [--neigh IP=MAC@IF ...] [--gateway MAC@IF] [--backend afpacket|afxdp]
                [--control PATH] [--procfs DIR] [--refresh SECS] [--metrics ADDR:PORT]
                [--config-id ID] [--midflow-hash] [--announce-cmd CMD] [--announce-file PATH]
                [--drain SECS]";

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

/// Opens a port on the backend, with what went wrong said plainly. AF_XDP that cannot start
/// falls back to AF_PACKET, and the log says why.
fn open_port(backend: Backend, ifname: &str) -> Result<Box<dyn PacketIo + Send>, String> {
    let opened = match backend {
        Backend::AfPacket => AfPacket::open(ifname, AfPacketConfig::default()).map(|p| Box::new(p) as Box<_>),
        Backend::AfXdp => open_or_afpacket(ifname, AfXdpConfig::default(), AfPacketConfig::default()).map(|(p, _)| p),
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

/// Reloads the configuration into the running director: the difference, or nothing.
fn reload(rt: &mut Runtime, source: &Source, config_id: Option<&str>, clock: &MonotonicClock) -> Result<usize, String> {
    let loaded = load(source, config_id)?;
    let now = clock.now();
    let deployment = match &loaded {
        Loaded::Rules(cmds) => {
            let d = rt.director_mut();
            let cmds = diff(d, cmds, &|_, _| false).map_err(|e| e.to_string())?;
            d.execute_all(&cmds).map_err(|e| e.to_string())?;
            return Ok(cmds.len());
        }
        Loaded::Ldirectord(c) => c.deployment(),
        Loaded::Keepalived(c) => {
            warn!("reload: VRRP instances and sync daemons stay as they started; restart to change them");
            c.deployment()
        }
    };
    let (checker, d) = rt.health_mut().ok_or("no health checker")?;
    let r = deployment.reload(d, checker.monitor_mut(), now).map_err(|e| e.to_string())?;
    for (k, e) in &r.checks_stopped {
        info!("reload: {k}: stopped checking {e}");
    }
    for (k, e) in &r.checks_started {
        info!("reload: {k}: checking {e}");
    }
    Ok(r.commands.len() + r.checks_started.len() + r.checks_stopped.len())
}

/// One control request, run between bursts.
fn answer(rt: &mut Runtime, req: &Request, states: &VrrpStates, clock: &MonotonicClock) -> Response {
    let now = clock.now();
    match req.args.first().map(String::as_str) {
        Some(control::HEALTH) => match rt.health() {
            Some(h) => Response { stdout: lvs::core::health::status(h.monitor(), now), ..Response::default() },
            None => Response {
                status: 1,
                stderr: "no health checks: the configuration has none\n".into(),
                ..Response::default()
            },
        },
        Some(control::VRRP) => Response { stdout: vrrp_listing(states), ..Response::default() },
        first => {
            let IpvsadmOutput { stdout, stderr, status } = run_ipvsadm(rt.director_mut(), now, &req.args, &req.stdin);
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
    fn update(&mut self, rt: &Runtime) {
        let changes = self.announcer.update(rt.director(), rt.health().map(HealthChecker::monitor));
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
    fn finish(mut self, rt: &Runtime) {
        self.announcer.leave();
        self.update(rt);
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

fn run(args: Args) -> Result<(), String> {
    let signals = Signals::register().map_err(|e| format!("signals: {e}"))?;
    let loaded = load(&args.source, args.config_id.as_deref())?;
    let mut cfg = DirectorConfig::default().with_random_seeds();
    for p in port_configs(&args.ports)? {
        cfg = cfg.port(p);
    }
    let health = !matches!(loaded, Loaded::Rules(_));
    // A health-checked director lets a removed server's connections go at their next packet,
    // so that a client port coming round is scheduled afresh (see the README).
    cfg.expire_nodest_conn = health;
    let mut d = lvs::director(cfg);
    for (ip, mac, ifname) in &args.neigh {
        d.set_neighbour(*ip, Neighbour { mac: *mac, port: port_of(&args.ports, ifname)? });
    }
    if let Some((mac, ifname)) = &args.gateway {
        let gw = Neighbour { mac: *mac, port: port_of(&args.ports, ifname)? };
        d.set_gateway(Af::V4, gw);
        d.set_gateway(Af::V6, gw);
    }
    let clock = MonotonicClock::default();
    let mut monitor = Monitor::new(rand_seed());
    let applied = apply_first(&loaded, &mut d, &mut monitor, &clock, &args.ports)?;
    if args.midflow_hash {
        set_midflow_hash(&mut d)?;
    }
    info!("configuration loaded from {}: {} services", args.source.path().display(), d.services().count());
    let ports = args.ports.iter().map(|p| open_port(args.backend, p)).collect::<Result<Vec<_>, String>>()?;
    // The ports receive only the services' frames: the kernel keeps ARP, its own traffic and
    // the DR servers' replies, and AF_XDP hands it back everything else.
    let mut rt = Runtime::new(d, ports).with_local_capacity(0).with_port_filter(Filter::default());
    if health {
        let checker = HealthChecker::new(monitor).map_err(|e| format!("health checker: {e}"))?;
        rt = rt.with_health(checker.on_event(|e| info!("health: {e}")));
    }
    let cluster = match applied {
        Some(a) => Some(start_cluster(&mut rt, a, &args.ports, &clock)?),
        None => None,
    };
    let states = cluster.as_ref().map(|c| c.states.clone()).unwrap_or_default();
    let mut metrics = match args.metrics {
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
    let stop = rt.stop_handle();
    let mut cluster = cluster;
    let mut follow = cluster.as_mut().and_then(|c| c.follow.take());
    let mut next_procfs = clock.now();
    let mut failed = None;
    let mut announce = Announce::new(args.announce_cmd.clone(), args.announce_file.clone());
    let (mut next_announce, mut leave_at) = (clock.now(), None);
    let ran = rt.run_with(&clock, |rt| {
        let now = clock.now();
        if signals.stop.load(Ordering::Relaxed) {
            stop.stop();
        }
        if signals.term.swap(false, Ordering::Relaxed) {
            match (args.drain, leave_at) {
                (Some(drain), None) => {
                    info!("leaving: every VIP withdrawn, forwarding for {drain:?} more");
                    announce.announcer.leave();
                    next_announce = now;
                    leave_at = Some(now + drain);
                }
                _ => stop.stop(),
            }
        }
        if leave_at.is_some_and(|t| now >= t) {
            stop.stop();
        }
        if now >= next_announce {
            announce.update(rt);
            next_announce = now + ANNOUNCE_EVERY;
        }
        if signals.show.swap(false, Ordering::Relaxed) {
            print!("{}", list(rt.director(), clock.now(), ListOptions::Stats));
        }
        if signals.reload.swap(false, Ordering::Relaxed) {
            let reloaded = reload(rt, &args.source, args.config_id.as_deref(), &clock).and_then(|n| {
                if args.midflow_hash {
                    set_midflow_hash(rt.director_mut()).map(|()| n)
                } else {
                    Ok(n)
                }
            });
            match reloaded {
                Ok(n) => info!("configuration reloaded from {}: {n} changes", args.source.path().display()),
                Err(e) => error!("reload refused, the running configuration stays: {e}"),
            }
        }
        while let Ok((req, reply)) = requests.try_recv() {
            let _ = reply.send(answer(rt, &req, &states, &clock));
        }
        if let Some(f) = follow.as_mut() {
            match f.apply(rt) {
                Ok(true) => info!("sync: daemon now {}", f.wanted().map_or("none", Role::name)),
                Ok(false) => {}
                Err(e) => {
                    failed = Some(format!("sync daemons: {e}"));
                    stop.stop();
                }
            }
        }
        if let Some(m) = metrics.as_mut() {
            if let Err(e) = m.poll(clock.now(), || exposition(rt, &states)) {
                warn!("metrics: {e}");
            }
        }
        if let Some(dir) = &args.procfs {
            let now = clock.now();
            if now >= next_procfs {
                if let Err(e) = lvs::procfs::write(dir, rt.director(), now) {
                    warn!("procfs {}: {e}", dir.display());
                }
                next_procfs = now + args.refresh;
            }
        }
    });
    stop.stop();
    announce.finish(&rt);
    if let Some(t) = cluster.and_then(|c| c.vrrp) {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!("vrrp: {e}"),
            Err(_) => error!("vrrp: the thread panicked"),
        }
    }
    let _ = std::fs::remove_file(&args.control);
    print!("{}", list(rt.director(), clock.now(), ListOptions::Stats));
    ran.map_err(|e| format!("packet loop: {e}"))?;
    info!("stopped");
    failed.map_or(Ok(()), Err)
}

/// The Prometheus exposition of the director, its health checks and its VRRP instances.
fn exposition(rt: &Runtime, states: &VrrpStates) -> String {
    let mut snap = Snapshot::of(rt.director());
    if let Some(h) = rt.health() {
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
