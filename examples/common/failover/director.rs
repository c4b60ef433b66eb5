//! A director of the failover lab, as its own process in its namespace so that the lab can
//! SIGKILL it: this library on AF_PACKET on `eth0`, with the lab's rules and neighbours, and the
//! kernel's sync daemons on `sync0` (224.0.0.81:8848) through `Runtime::start_sync`.
//!
//! With VRRP, a thread beside the runtime runs the lab's virtual router on `eth0` (`VrrpIo`,
//! VRRPv3): the floating next hop (and, for NAT, the servers' gateway) goes on `eth0` while it
//! is master (`KernelAddresses`), so this namespace answers ARP for it, and the new master's
//! gratuitous ARP moves the neighbours to it. The sync daemons follow the instance
//! (`LvsSyncDaemon`, keepalived's `lvs_sync_daemon`, syncid = VRID), and `eth0` is tracked: FAULT
//! while it has no carrier, as keepalived tracks an instance's interface.
//!
//! It prints `ready` once its sockets are open; `event resynced <ms>` when a full resync has
//! arrived; with VRRP `event master|backup|fault|stop <ms>` as the instance changes state and
//! `event sync master|backup|none <ms>` when the daemons follow (each that many milliseconds
//! after `ready`). It answers `list plain|conns` with `ipvsadm -Ln` or `-Lcn` between `begin`
//! and `end`, and stops when its standard input closes (VRRP sends priority 0 first).

use std::io::{self, BufRead};
use std::process::ExitCode;
use std::sync::mpsc::{self, TryRecvError};
use std::time::Duration;

use lvs::core::addr::Af;
use lvs::core::config::{list, restore, ListOptions};
use lvs::core::neigh::Neighbour;
use lvs::core::sync::{DaemonConfig, Role, SyncParams};
use lvs::core::vrrp::{AddressChange, Config, Event, Group, Target, Track, TrackerId, Version};
use lvs::core::{DirectorConfig, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::runtime::{MonotonicClock, Runtime};
use lvs::dataplane::vrrp::{link_up, Hooks, KernelAddresses, LvsSyncDaemon, Origin, VrrpIo};

use super::{
    err, rules, server_ip, server_mac, Mode, Side, CLIENT_IP, CLIENT_MAC, LAN_IF, NAT_GATEWAY, NEXT_HOP,
    OTHER_CLIENT_IP, SERVERS, SYNC_IF, VRID,
};

/// Runs a director; `args` as [`super::DIRECTOR_FLAG`] describes.
pub(super) fn main(args: &[String]) -> ExitCode {
    match direct(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover lab director: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The VRRP settings of a director.
struct VrrpArgs {
    priority: u8,
    advert_int: Duration,
    preempt_delay: Duration,
}

/// How the sync daemons run: as the lab starts them, or following VRRP.
enum Sync {
    Roles(Vec<Role>),
    Vrrp(VrrpArgs),
}

fn parse(args: &[String]) -> Result<(Mode, Side, Sync, u32), String> {
    let usage =
        "usage: dr|nat a|b ROLE[,ROLE] RESYNC_RATE, or dr|nat a|b vrrp RESYNC_RATE PRIORITY ADVERT_MS PREEMPT_MS";
    let (mode, side, roles, rate, vrrp) = match args {
        [mode, side, roles, rate, vrrp @ ..] => (mode, side, roles, rate, vrrp),
        _ => return Err(usage.into()),
    };
    let mode = Mode::parse(mode).ok_or("mode: dr or nat")?;
    let side = Side::parse(side).ok_or("side: a or b")?;
    let rate: u32 = rate.parse().map_err(|_| "resync rate: a number")?;
    let ms = |v: &String| v.parse().map(Duration::from_millis).map_err(|_| format!("{v:?}: milliseconds"));
    let sync = match (roles.as_str(), vrrp) {
        ("vrrp", [priority, advert, preempt]) => Sync::Vrrp(VrrpArgs {
            priority: priority.parse().map_err(|_| "priority: 1..=254")?,
            advert_int: ms(advert)?,
            preempt_delay: ms(preempt)?,
        }),
        (roles, []) => Sync::Roles(
            roles
                .split(',')
                .map(|r| match r {
                    "master" => Ok(Role::Master),
                    "backup" => Ok(Role::Backup),
                    _ => Err(format!("role {r:?}")),
                })
                .collect::<Result<Vec<Role>, String>>()?,
        ),
        _ => return Err(usage.into()),
    };
    Ok((mode, side, sync, rate))
}

/// Milliseconds since `ready`, as the event lines give them.
fn since(ready: std::time::Instant) -> String {
    format!("{:.1}", ready.elapsed().as_secs_f64() * 1e3)
}

/// The lab's hooks: the addresses on `eth0`, and every state change printed as an event.
struct LabHooks {
    ready: std::time::Instant,
}

impl Hooks for LabHooks {
    fn add_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        KernelAddresses.add_addresses(at, change)
    }

    fn remove_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        KernelAddresses.remove_addresses(at, change)
    }

    fn notify(&mut self, _at: &Origin<'_>, event: Event, _priority: u8) {
        let name = match event {
            Event::Master => "master",
            Event::Backup => "backup",
            Event::Fault => "fault",
            Event::Stop => "stop",
            Event::MasterRxLowerPri => "lower-priority-heard",
        };
        println!("event {name} {}", since(self.ready));
    }
}

/// The lab's virtual router: VRID [`VRID`], VRRPv3 from the director's LAN address, the
/// floating next hop (and the NAT servers' gateway), `eth0` tracked (weight 0: FAULT while it
/// is down).
fn virtual_router(mode: Mode, side: Side, v: &VrrpArgs) -> Result<(Group, TrackerId, LvsSyncDaemon), String> {
    let mut vips = vec![NEXT_HOP.into()];
    if mode == Mode::Nat {
        vips.push(NAT_GATEWAY.into());
    }
    let mut cfg = Config::new(VRID, side.lan_ip().into(), vips);
    cfg.version = Version::V3;
    cfg.priority = v.priority;
    cfg.advert_int = v.advert_int;
    cfg.preempt_delay = v.preempt_delay;
    let mut group = Group::new();
    let vr = group.add_instance(cfg).map_err(err)?;
    let track = [Track { target: Target::Instance(vr), weight: 0, reverse: false }];
    let up = link_up(LAN_IF).map_err(err)?;
    let link = group.add_tracker(lvs::core::Instant::ZERO, up, &track).map_err(err)?;
    let lvs_syncd = LvsSyncDaemon::new(&group, vr, SYNC_IF).map_err(err)?;
    Ok((group, link, lvs_syncd))
}

fn direct(args: &[String]) -> Result<(), String> {
    let (mode, side, sync, resync_rate) = parse(args)?;
    let port = PortConfig::new(side.mac()).with_addr(side.lan_ip().into());
    let mut d = lvs::director(DirectorConfig::default().port(port).with_random_seeds());
    for i in 0..SERVERS {
        d.set_neighbour(server_ip(mode, i).into(), Neighbour { mac: server_mac(i), port: 0 });
    }
    let client = Neighbour { mac: CLIENT_MAC, port: 0 };
    d.set_neighbour(CLIENT_IP.into(), client);
    d.set_neighbour(OTHER_CLIENT_IP.into(), client);
    d.set_gateway(Af::V4, client);
    restore(&mut d, &rules(mode)).map_err(err)?;
    d.set_sync_params(SyncParams { resync_rate, ..SyncParams::default() }).map_err(err)?;
    let eth0 = AfPacket::open(LAN_IF, AfPacketConfig::default()).map_err(err)?;
    let mut rt = Runtime::new(d, vec![Box::new(eth0)]);
    let (clock, stop, ready) = (MonotonicClock::default(), rt.stop_handle(), std::time::Instant::now());
    let (mut lvs_syncd, vrrp) = match &sync {
        Sync::Roles(roles) => {
            for role in roles {
                rt.start_sync(*role, &DaemonConfig::new(SYNC_IF))
                    .map_err(|e| format!("{} daemon: {e}", role.name()))?;
            }
            (None, None)
        }
        Sync::Vrrp(v) => {
            let (group, link, lvs_syncd) = virtual_router(mode, side, v)?;
            let io = VrrpIo::open(group, &[LAN_IF], lvs_syncd.hooks(LabHooks { ready })).map_err(err)?;
            (Some(lvs_syncd), Some((io, link)))
        }
    };

    let (tx, commands) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    println!("ready");
    let vrrp = vrrp.map(|(io, link)| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Err(e) = super::vrrp_loop::run(io, &[(link, LAN_IF.to_string())], &clock, &stop) {
                eprintln!("failover lab director: vrrp: {e}");
            }
        })
    });
    let (mut resyncs, mut failed) = (0, None);
    let ran = rt.run_with(&clock, |rt| {
        let done = rt.director().sync_stats().resyncs_done;
        if done > resyncs {
            resyncs = done;
            println!("event resynced {}", since(ready));
        }
        if let Some(s) = lvs_syncd.as_mut() {
            match s.apply(rt) {
                Ok(true) => println!("event sync {} {}", s.wanted().map_or("none", Role::name), since(ready)),
                Ok(false) => {}
                Err(e) => {
                    failed = Some(format!("sync daemons: {e}"));
                    stop.stop();
                }
            }
        }
        loop {
            match commands.try_recv() {
                Ok(cmd) => {
                    let what = match cmd.as_str() {
                        "list plain" => ListOptions::Plain,
                        "list conns" => ListOptions::Connections,
                        _ => continue,
                    };
                    println!("begin\n{}end", list(rt.director(), clock.now(), what));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    stop.stop();
                    break;
                }
            }
        }
    });
    // The runtime stopped: so does VRRP (priority 0 first).
    stop.stop();
    if let Some(t) = vrrp {
        t.join().map_err(|_| "the VRRP thread panicked")?;
    }
    ran.map_err(err)?;
    failed.map_or(Ok(()), Err)
}
