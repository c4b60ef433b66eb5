//! The network-namespace lab (root): kernel TCP end to end. Namespaces for a client, the
//! director and the real servers hang off a bridge; the servers run `python3 -m http.server`
//! serving a page that names them; the client fetches pages with `curl`; the director is this
//! library on the `AfPacket` backend.
//!
//! - DR: the VIP on the servers' `lo` with `arp_ignore=1` / `arp_announce=2`.
//! - NAT: the servers' default gateway is the director.
//! - TUN: the kernel's `ipip` device when the kernel has one; otherwise a user-space
//!   decapsulator on each server (AF_PACKET in, TAP out to the server's own stack).
//!
//! The director's namespace does not forward (`ip_forward=0`) and does not own the VIP, so its
//! kernel stays out of the way; it answers ARP for the director's own addresses. Everything
//! created is removed on return, on failure and (through the caller's stop flag) on Ctrl-C.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use lvs::core::addr::Af;
use lvs::core::config::{list, ListOptions};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, Instant, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::io::PacketIo;
use lvs::dataplane::runtime::{MonotonicClock, Runtime};
use lvs::dataplane::tap::Tap;

use crate::lab::{rules_for, Answer, LabConfig, LabRun, Mode, VIP};
use crate::netns::Netns;

/// How the TUN servers decapsulated.
pub(crate) const KERNEL_IPIP: &str = "kernel ipip device";
/// How the TUN servers decapsulated without the kernel's ipip.
pub(crate) const USER_DECAP: &str = "user-space decapsulator (this kernel has no ipip)";

const DIRECTOR_IP: [u8; 4] = [192, 0, 2, 1];
const CLIENT_IP: [u8; 4] = [192, 0, 2, 2];
const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];

fn server_ip(mode: Mode, i: usize) -> Ipv4Addr {
    match mode {
        Mode::Nat => Ipv4Addr::new(10, 0, 0, 11 + i as u8),
        _ => Ipv4Addr::new(192, 0, 2, 11 + i as u8),
    }
}

fn server_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 1, 1 + i as u8]
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Plugs `ns` into the lab's bridge as `eth0` with `mac`.
fn attach(lan: &Netns, ns: &Netns, port: &str, mac: [u8; 6]) -> Result<(), String> {
    lan.plug("br0", port, ns, "eth0", MacAddr(mac)).map_err(err)
}

/// The user-space decapsulator of one TUN server: IP-in-IP frames for `own` arrive on `eth0`;
/// their inner packets go to the server's stack through the TAP `decap0`.
fn decapsulate(ns: &Netns, own: Ipv4Addr, stop: &AtomicBool) -> Result<(), String> {
    ns.enter().map_err(err)?;
    let mut tap = Tap::open("decap0", false).map_err(err)?;
    ns.exec("ip", &["link", "set", "decap0", "up"]).map_err(err)?;
    ns.exec("sysctl", &["-qw", "net.ipv4.conf.decap0.rp_filter=0"]).map_err(err)?;
    let tap_mac: MacAddr =
        ns.exec("cat", &["/sys/class/net/decap0/address"]).map_err(err)?.trim().parse().map_err(|_| "decap0 MAC")?;
    let mut wire = AfPacket::open("eth0", AfPacketConfig::default()).map_err(err)?;
    let mut rx: Vec<Frame> = (0..32).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 2048)).collect();
    let mut drain: Vec<Frame> = (0..32).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 2048)).collect();
    let own = own.octets();
    while !stop.load(Ordering::Relaxed) {
        let n = wire.recv(Instant::ZERO, &mut rx).map_err(err)?;
        let mut out = Vec::new();
        for f in &rx[..n] {
            let d = f.data();
            let ipip = d.len() > 34 && d[12..14] == [0x08, 0x00] && d[23] == 4 && d[30..34] == own;
            if ipip {
                let ihl = usize::from(d[14] & 0xf) * 4;
                let mut inner = tap_mac.0.to_vec();
                inner.extend_from_slice(&[2, 0, 0, 0, 0x0f, 0x0f, 0x08, 0x00]);
                inner.extend_from_slice(&d[14 + ihl..]);
                out.push(Frame::new(DEFAULT_HEADROOM, &inner));
            }
        }
        if !out.is_empty() {
            tap.send(Instant::ZERO, &out).map_err(err)?;
        }
        let _ = tap.recv(Instant::ZERO, &mut drain);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

/// The director: this library on AF_PACKET in its namespace, until `stop`.
fn direct(ns: &Netns, cfg: &LabConfig, rules: &str, stop: &AtomicBool) -> Result<(String, String), String> {
    ns.enter().map_err(err)?;
    let mut d = lvs::director(
        DirectorConfig::default()
            .port(PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(Ipv4Addr::from(DIRECTOR_IP).into()))
            .with_random_seeds(),
    );
    for i in 0..cfg.weights.len() {
        d.set_neighbour(server_ip(cfg.mode, i).into(), Neighbour { mac: MacAddr(server_mac(i)), port: 0 });
    }
    let client = Neighbour { mac: MacAddr(CLIENT_MAC), port: 0 };
    d.set_neighbour(Ipv4Addr::from(CLIENT_IP).into(), client);
    d.set_gateway(Af::V4, client);
    lvs::core::config::restore(&mut d, rules).map_err(err)?;
    let port = AfPacket::open("eth0", AfPacketConfig::default()).map_err(err)?;
    let mut rt = Runtime::new(d, vec![Box::new(port)]);
    let handle = rt.stop_handle();
    let clock = MonotonicClock::default();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            handle.stop();
        });
        rt.run(&clock)
    });
    result.map_err(err)?;
    let now = clock.now();
    Ok((list(rt.director(), now, ListOptions::Plain), list(rt.director(), now, ListOptions::Stats)))
}

/// Runs the lab. `interrupt` (set by a Ctrl-C handler) ends it early; everything is removed
/// either way.
///
/// # Errors
/// A message when a namespace, link, process or the director cannot be set up.
pub(crate) fn run(cfg: &LabConfig, interrupt: &AtomicBool) -> Result<(LabRun, Option<&'static str>), String> {
    let tag = match cfg.mode {
        Mode::Dr => "dr",
        Mode::Nat => "nat",
        Mode::Tun => "tun",
    };
    let n = cfg.weights.len();
    let lan = Netns::create(&format!("lvs{tag}-lan")).map_err(err)?;
    lan.bridge("br0").map_err(err)?;
    let director = Netns::create(&format!("lvs{tag}-dir")).map_err(err)?;
    attach(&lan, &director, "v-d", DIRECTOR_MAC)?;
    director.exec("ip", &["addr", "add", "192.0.2.1/24", "dev", "eth0"]).map_err(err)?;
    director.exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"]).map_err(err)?;
    if cfg.mode == Mode::Nat {
        director.exec("ip", &["addr", "add", "10.0.0.1/24", "dev", "eth0"]).map_err(err)?;
    }
    let client = Netns::create(&format!("lvs{tag}-cli")).map_err(err)?;
    attach(&lan, &client, "v-c", CLIENT_MAC)?;
    client.exec("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth0"]).map_err(err)?;
    client.exec("ip", &["route", "add", "203.0.113.100/32", "via", "192.0.2.1"]).map_err(err)?;
    let vip = Ipv4Addr::from(VIP).to_string();
    let docroot = std::env::temp_dir().join(format!("lvs-lab-{tag}-{}", std::process::id()));
    let mut servers = Vec::new();
    let mut decap = None;
    for i in 0..n {
        let ns = Netns::create(&format!("lvs{tag}-rs{}", i + 1)).map_err(err)?;
        attach(&lan, &ns, &format!("v-r{}", i + 1), server_mac(i))?;
        let own = server_ip(cfg.mode, i);
        ns.exec("ip", &["addr", "add", &format!("{own}/24"), "dev", "eth0"]).map_err(err)?;
        for k in ["all", "default", "eth0", "lo"] {
            ns.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")]).map_err(err)?;
        }
        match cfg.mode {
            Mode::Nat => {
                ns.exec("ip", &["route", "add", "default", "via", "10.0.0.1"]).map_err(err)?;
            }
            Mode::Dr | Mode::Tun => {
                for (k, v) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                    for dev in ["all", "eth0"] {
                        ns.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{dev}.{k}={v}")]).map_err(err)?;
                    }
                }
                let kernel_ipip =
                    cfg.mode == Mode::Tun && ns.exec("ip", &["link", "add", "tunl0", "type", "ipip"]).is_ok();
                if kernel_ipip {
                    ns.exec("ip", &["link", "set", "tunl0", "up"]).map_err(err)?;
                    ns.exec("ip", &["addr", "add", &format!("{vip}/32"), "dev", "tunl0"]).map_err(err)?;
                    ns.exec("sysctl", &["-qw", "net.ipv4.conf.tunl0.rp_filter=0"]).map_err(err)?;
                    decap = Some(KERNEL_IPIP);
                } else {
                    ns.exec("ip", &["addr", "add", &format!("{vip}/32"), "dev", "lo"]).map_err(err)?;
                    if cfg.mode == Mode::Tun {
                        decap = Some(USER_DECAP);
                    }
                }
            }
        }
        let dir = docroot.join(format!("rs{}", i + 1));
        std::fs::create_dir_all(&dir).map_err(err)?;
        std::fs::write(dir.join("index.html"), format!("rs{}\n", i + 1)).map_err(err)?;
        let d = dir.to_string_lossy().into_owned();
        ns.spawn("python3", &["-m", "http.server", "80", "--bind", "0.0.0.0", "--directory", &d]).map_err(err)?;
        servers.push((ns, own));
    }
    // Wait for every server to answer locally.
    for (ns, own) in &servers {
        let url = format!("http://{own}/");
        let start = StdInstant::now();
        while ns.exec("curl", &["-s", "--max-time", "1", &url]).is_err() {
            if start.elapsed() > Duration::from_secs(10) || interrupt.load(Ordering::Relaxed) {
                let _ = std::fs::remove_dir_all(&docroot);
                return Err(format!("real server {own} did not start"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let server_ips: Vec<Ipv4Addr> = servers.iter().map(|(_, ip)| *ip).collect();
    let rules = rules_for(cfg, &server_ips);
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = std::thread::scope(|s| {
        let dir = s.spawn(|| direct(&director, cfg, &rules, &stop));
        let decaps: Vec<_> = if decap == Some(USER_DECAP) {
            servers.iter().map(|(ns, own)| s.spawn(|| decapsulate(ns, *own, &stop))).collect()
        } else {
            Vec::new()
        };
        std::thread::sleep(Duration::from_millis(200));
        let mut answers = Vec::new();
        for _ in 0..cfg.requests {
            if interrupt.load(Ordering::Relaxed) {
                break;
            }
            let body = client.exec("curl", &["-s", "--max-time", "3", &format!("http://{vip}/")]).unwrap_or_default();
            let server = body.trim().strip_prefix("rs").and_then(|x| x.parse::<usize>().ok()).map(|x| x - 1);
            answers.push(Answer { client: Ipv4Addr::from(CLIENT_IP).into(), port: 0, server });
        }
        stop.store(true, Ordering::Relaxed);
        for t in decaps {
            t.join().map_err(|_| "decapsulator panicked".to_string())??;
        }
        let (listing, stats) = dir.join().map_err(|_| "director panicked".to_string())??;
        Ok::<_, String>(LabRun { answers, listing, stats, rules: rules.clone() })
    });
    let _ = std::fs::remove_dir_all(&docroot);
    drop(servers);
    drop((client, director, lan));
    outcome.map(|r| (r, decap))
}
