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
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use lvs::core::addr::Af;
use lvs::core::config::{list, ListOptions};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{Director, DirectorConfig, Instant, PortConfig};
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
/// The client's address.
pub(crate) const CLIENT_IP: [u8; 4] = [192, 0, 2, 2];
const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// The client's MAC: the director's next hop for it (and, in NAT, its gateway).
pub(crate) const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];

/// Real server `i`'s address in `mode`.
pub(crate) fn server_ip(mode: Mode, i: usize) -> Ipv4Addr {
    match mode {
        Mode::Nat => Ipv4Addr::new(10, 0, 0, 11 + i as u8),
        _ => Ipv4Addr::new(192, 0, 2, 11 + i as u8),
    }
}

/// Real server `i`'s MAC.
pub(crate) fn server_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 1, 1 + i as u8]
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Plugs `ns` into the lab's bridge as `eth0` with `mac`, `queues` queues each way.
fn attach(lan: &Netns, ns: &Netns, port: &str, mac: [u8; 6], queues: u8) -> Result<(), String> {
    lan.plug("br0", port, ns, "eth0", MacAddr(mac), queues).map_err(err)
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

/// The lab's director for `servers` real servers, with its neighbours and gateway and no
/// services yet. With `expire_nodest_conn` (as a health-checked director wants, its servers
/// removed when they fail) a connection to a removed server ends at its next packet, so a
/// client port that comes round again is scheduled afresh after its retransmission.
pub(crate) fn lab_director(mode: Mode, servers: usize, expire_nodest_conn: bool) -> Director {
    let mut cfg = DirectorConfig::default()
        .port(PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(Ipv4Addr::from(DIRECTOR_IP).into()))
        .with_random_seeds();
    cfg.expire_nodest_conn = expire_nodest_conn;
    let mut d = lvs::director(cfg);
    for i in 0..servers {
        d.set_neighbour(server_ip(mode, i).into(), Neighbour { mac: MacAddr(server_mac(i)), port: 0 });
    }
    let client = Neighbour { mac: MacAddr(CLIENT_MAC), port: 0 };
    d.set_neighbour(Ipv4Addr::from(CLIENT_IP).into(), client);
    d.set_gateway(Af::V4, client);
    d
}

/// The director: this library on AF_PACKET in its namespace, until `stop`.
fn direct(ns: &Netns, cfg: &LabConfig, rules: &str, stop: &AtomicBool) -> Result<(String, String), String> {
    ns.enter().map_err(err)?;
    let mut d = lab_director(cfg.mode, cfg.weights.len(), false);
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

/// The lab's namespaces: a bridge, the director, a client and the real servers, each server
/// with its address (`servers[i].1`) and its page under `docroot`. Dropping it kills what runs
/// in them and removes them and the pages.
pub(crate) struct Topology {
    /// The real servers' namespaces and addresses.
    pub(crate) servers: Vec<(Netns, Ipv4Addr)>,
    /// The client's namespace (192.0.2.2, routing the VIP through the director).
    pub(crate) client: Netns,
    /// The director's namespace (192.0.2.1 on `eth0`, not forwarding).
    pub(crate) director: Netns,
    /// How TUN servers decapsulate (`None` for DR and NAT).
    pub(crate) decap: Option<&'static str>,
    lan: Netns,
    docroot: PathBuf,
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.docroot);
    }
}

impl Topology {
    /// Builds the namespaces for `servers` real servers in `mode`, named after `tag`.
    ///
    /// # Errors
    /// A message when a namespace, link or address cannot be set up.
    pub(crate) fn build(mode: Mode, servers: usize, tag: &str) -> Result<Topology, String> {
        Topology::build_with_queues(mode, servers, tag, 1)
    }

    /// [`Topology::build`] with `queues` receive and transmit queues on every link, so that
    /// the director can take one per shard (AF_XDP) and the hosts' flows spread over them.
    ///
    /// # Errors
    /// As [`Topology::build`].
    pub(crate) fn build_with_queues(mode: Mode, servers: usize, tag: &str, queues: u8) -> Result<Topology, String> {
        let lan = Netns::create(&format!("lvs{tag}-lan")).map_err(err)?;
        lan.bridge("br0").map_err(err)?;
        let director = Netns::create(&format!("lvs{tag}-dir")).map_err(err)?;
        attach(&lan, &director, "v-d", DIRECTOR_MAC, queues)?;
        director.exec("ip", &["addr", "add", "192.0.2.1/24", "dev", "eth0"]).map_err(err)?;
        director.exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"]).map_err(err)?;
        if mode == Mode::Nat {
            director.exec("ip", &["addr", "add", "10.0.0.1/24", "dev", "eth0"]).map_err(err)?;
        }
        let client = Netns::create(&format!("lvs{tag}-cli")).map_err(err)?;
        attach(&lan, &client, "v-c", CLIENT_MAC, queues)?;
        client.exec("ip", &["addr", "add", "192.0.2.2/24", "dev", "eth0"]).map_err(err)?;
        client.exec("ip", &["route", "add", "203.0.113.100/32", "via", "192.0.2.1"]).map_err(err)?;
        let vip = Ipv4Addr::from(VIP).to_string();
        let docroot = std::env::temp_dir().join(format!("lvs-lab-{tag}-{}", std::process::id()));
        let mut topo = Topology { servers: Vec::new(), client, director, decap: None, lan, docroot };
        for i in 0..servers {
            let ns = Netns::create(&format!("lvs{tag}-rs{}", i + 1)).map_err(err)?;
            attach(&topo.lan, &ns, &format!("v-r{}", i + 1), server_mac(i), queues)?;
            let own = server_ip(mode, i);
            let gateway = (mode == Mode::Nat).then_some(Ipv4Addr::new(10, 0, 0, 1));
            ns.real_server(own, gateway).map_err(err)?;
            if mode != Mode::Nat {
                let kernel_ipip = mode == Mode::Tun && ns.exec("ip", &["link", "add", "tunl0", "type", "ipip"]).is_ok();
                if kernel_ipip {
                    ns.exec("ip", &["link", "set", "tunl0", "up"]).map_err(err)?;
                    ns.exec("ip", &["addr", "add", &format!("{vip}/32"), "dev", "tunl0"]).map_err(err)?;
                    ns.exec("sysctl", &["-qw", "net.ipv4.conf.tunl0.rp_filter=0"]).map_err(err)?;
                    topo.decap = Some(KERNEL_IPIP);
                } else {
                    ns.exec("ip", &["addr", "add", &format!("{vip}/32"), "dev", "lo"]).map_err(err)?;
                    if mode == Mode::Tun {
                        topo.decap = Some(USER_DECAP);
                    }
                }
            }
            topo.servers.push((ns, own));
        }
        Ok(topo)
    }

    /// Starts real server `i`'s HTTP server (`python3 -m http.server`) with a page saying
    /// `page`, and waits until it answers locally.
    ///
    /// # Errors
    /// A message when it cannot start, or does not answer within 10 s (or `interrupt` is set).
    pub(crate) fn serve(&self, i: usize, page: &str, interrupt: &AtomicBool) -> Result<(), String> {
        let (ns, own) = self.servers.get(i).ok_or("no such server")?;
        let dir = self.docroot.join(format!("rs{}", i + 1));
        std::fs::create_dir_all(&dir).map_err(err)?;
        std::fs::write(dir.join("index.html"), format!("{page}\n")).map_err(err)?;
        let d = dir.to_string_lossy().into_owned();
        ns.spawn("python3", &["-m", "http.server", "80", "--bind", "0.0.0.0", "--directory", &d]).map_err(err)?;
        let url = format!("http://{own}/");
        let start = StdInstant::now();
        while ns.exec("curl", &["-s", "--max-time", "1", &url]).is_err() {
            if start.elapsed() > Duration::from_secs(10) || interrupt.load(Ordering::Relaxed) {
                return Err(format!("real server {own} did not start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
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
    let topo = Topology::build(cfg.mode, cfg.weights.len(), tag)?;
    for i in 0..cfg.weights.len() {
        topo.serve(i, &format!("rs{}", i + 1), interrupt)?;
    }
    let vip = Ipv4Addr::from(VIP).to_string();
    let server_ips: Vec<Ipv4Addr> = topo.servers.iter().map(|(_, ip)| *ip).collect();
    let rules = rules_for(cfg, &server_ips);
    let stop = Arc::new(AtomicBool::new(false));
    let (servers, client, director, decap) = (&topo.servers, &topo.client, &topo.director, topo.decap);
    let outcome = std::thread::scope(|s| {
        let dir = s.spawn(|| direct(director, cfg, &rules, &stop));
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
        Ok::<_, String>(LabRun { answers, listing, stats, rules: rules.clone(), notes: Vec::new(), health: None })
    });
    drop(topo);
    outcome.map(|r| (r, decap))
}
