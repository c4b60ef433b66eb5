//! A director of the failover lab, as its own process in its namespace so that the lab can
//! SIGKILL it: this library on AF_PACKET on `eth0`, with the lab's rules and neighbours, and the
//! kernel's sync daemons on `sync0` (224.0.0.81:8848) through `Runtime::start_sync`. It prints
//! `ready` once its sockets are open and `event resynced <ms>` when a full resync has arrived,
//! that many milliseconds after `ready`; it
//! answers `list plain|conns` with `ipvsadm -Ln` or `-Lcn` between `begin` and `end`, and
//! stops when its standard input closes.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::mpsc::{self, TryRecvError};

use lvs::core::addr::Af;
use lvs::core::config::{list, restore, ListOptions};
use lvs::core::neigh::Neighbour;
use lvs::core::sync::{DaemonConfig, Role, SyncParams};
use lvs::core::{DirectorConfig, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::runtime::{MonotonicClock, Runtime};

use super::{err, rules, server_ip, server_mac, Mode, Side, CLIENT_IP, CLIENT_MAC, OTHER_CLIENT_IP, SERVERS, SYNC_IF};

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

fn direct(args: &[String]) -> Result<(), String> {
    let [mode, side, roles, rate] = args else { return Err("usage: dr|nat a|b ROLE[,ROLE] RESYNC_RATE".into()) };
    let mode = Mode::parse(mode).ok_or("mode: dr or nat")?;
    let side = Side::parse(side).ok_or("side: a or b")?;
    let roles = roles
        .split(',')
        .map(|r| match r {
            "master" => Ok(Role::Master),
            "backup" => Ok(Role::Backup),
            _ => Err(format!("role {r:?}")),
        })
        .collect::<Result<Vec<Role>, String>>()?;
    let resync_rate: u32 = rate.parse().map_err(|_| "resync rate: a number")?;

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
    let eth0 = AfPacket::open("eth0", AfPacketConfig::default()).map_err(err)?;
    let mut rt = Runtime::new(d, vec![Box::new(eth0)]);
    for role in roles {
        rt.start_sync(role, &DaemonConfig::new(SYNC_IF)).map_err(|e| format!("{} daemon: {e}", role.name()))?;
    }

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
    let (clock, stop, ready) = (MonotonicClock::default(), rt.stop_handle(), std::time::Instant::now());
    let mut resyncs = 0;
    rt.run_with(&clock, |rt| {
        let done = rt.director().sync_stats().resyncs_done;
        if done > resyncs {
            resyncs = done;
            println!("event resynced {:.1}", ready.elapsed().as_secs_f64() * 1e3);
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
    })
    .map_err(err)
}
