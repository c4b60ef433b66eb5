//! FullNAT with real software nobody here wrote (root; CI runs as root): nginx real servers
//! that take the PROXY protocol (`listen 80 proxy_protocol`) and log `$proxy_protocol_addr`,
//! curl as the client, and this library on AF_PACKET as the director in between. The real
//! servers have neither the VIP nor a route to the client — only the director's local address
//! on their link — so every answer must come back through FullNAT. The test asserts that every
//! body (0 bytes to 3 MiB) arrives intact through both PROXY versions, and that nginx logged
//! the client's real address for every request while the connection came from the local
//! address. A second run puts the same services behind the SYN proxy (`-j enable`): curl's
//! kernel handshakes are answered with cookies, spliced to nginx's, and the same bodies and
//! logs must come through. A third run is fnat64: an IPv6 client and an IPv6 VIP in front of
//! the same IPv4 nginx servers, whose logs must name the IPv6 client. The runs take turns (one
//! set of namespace names). Namespaces, links and processes are removed on return and on
//! failure.

#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/root.rs"]
mod root;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use lvs::core::addr::Af;
use lvs::core::config::{list, restore, ListOptions};
use lvs::core::director::{FnatStats, SynproxyStats};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::{DirectorConfig, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::runtime::{MonotonicClock, Runtime};
use netns::Netns;

const DIRECTOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
const CLIENT: &str = "192.0.2.2";
const VIP: &str = "203.0.113.100";
const LIP: &str = "10.0.0.200";
const SERVERS: [&str; 2] = ["10.0.0.11", "10.0.0.12"];
/// The fnat64 run: the client's and the VIP's IPv6 addresses, and the director kernel's.
const CLIENT6: &str = "2001:db8:c::2";
const VIP6: &str = "2001:db8:1::100";
const DIRECTOR6: &str = "2001:db8:c::1";
/// Body sizes fetched through each service: empty, tiny, one segment, many, several MiB.
const SIZES: [usize; 6] = [0, 1, 1400, 1460, 100_000, 3 << 20];

fn server_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 1, 1 + i as u8]
}

fn sh(ns: &Netns, cmd: &str, args: &[&str]) {
    ns.exec(cmd, args).unwrap_or_else(|e| panic!("{} {cmd} {args:?}: {e}", ns.name()));
}

/// Segmentation and checksum offloads off: AF_PACKET then sees wire-sized frames with their
/// checksums filled in, as a NIC would deliver them.
fn no_offloads(ns: &Netns) {
    sh(ns, "ethtool", &["-K", "eth0", "tso", "off", "gso", "off", "gro", "off", "tx", "off"]);
}

/// A body of `n` bytes that differs at every offset from its shifts (so a byte lost, doubled
/// or moved shows).
fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// nginx's configuration: PROXY protocol on port 80 (version 1 and 2 alike), the client's
/// address from the header and the connection's source logged per request.
fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  log_format pp '$proxy_protocol_addr $proxy_protocol_port $remote_addr $status $body_bytes_sent $request_uri';\n\
           access_log {d}/access.log pp;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n\
           fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
           server {{ listen 80 proxy_protocol; root {d}/www; }}\n}}\n"
    )
}

struct Lab {
    client: Netns,
    director: Netns,
    servers: Vec<Netns>,
    nginx: Vec<std::process::Child>,
    _lan: Netns,
    dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &self.servers {
            s.kill_all();
        }
        for c in &mut self.nginx {
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn build() -> Lab {
    let lan = Netns::create("lvsfn-lan").unwrap();
    lan.bridge("br0").unwrap();
    let director = Netns::create("lvsfn-dir").unwrap();
    lan.plug("br0", "v-d", &director, "eth0", MacAddr(DIRECTOR_MAC), 1).unwrap();
    // The director's kernel owns neither the VIP nor the local address and does not forward:
    // it stays out of the way of the library.
    sh(&director, "ip", &["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    // IPv6 back on (plug turns it off) for the fnat64 run's client side only.
    sh(&director, "sysctl", &["-qw", "net.ipv6.conf.eth0.disable_ipv6=0"]);
    sh(&director, "ip", &["-6", "addr", "add", &format!("{DIRECTOR6}/64"), "dev", "eth0", "nodad"]);
    // Unlike IPv4's, a non-forwarding IPv6 stack answers a packet it has no route for with
    // ICMPv6 "no route", which would refuse the client's connection: a blackhole route drops
    // the VIP's packets silently and leaves them to the library.
    sh(&director, "ip", &["-6", "route", "add", "blackhole", &format!("{VIP6}/128")]);
    sh(&director, "sysctl", &["-qw", "net.ipv4.ip_forward=0"]);
    sh(&director, "sysctl", &["-qw", "net.ipv6.conf.all.forwarding=0"]);
    no_offloads(&director);
    let client = Netns::create("lvsfn-cli").unwrap();
    lan.plug("br0", "v-c", &client, "eth0", MacAddr(CLIENT_MAC), 1).unwrap();
    sh(&client, "ip", &["addr", "add", &format!("{CLIENT}/24"), "dev", "eth0"]);
    sh(&client, "ip", &["route", "add", &format!("{VIP}/32"), "via", "192.0.2.1"]);
    sh(&client, "sysctl", &["-qw", "net.ipv6.conf.eth0.disable_ipv6=0"]);
    sh(&client, "ip", &["-6", "addr", "add", &format!("{CLIENT6}/64"), "dev", "eth0", "nodad"]);
    sh(&client, "ip", &["-6", "route", "add", &format!("{VIP6}/128"), "via", DIRECTOR6]);
    no_offloads(&client);
    let dir = std::env::temp_dir().join(format!("lvs-fullnat-lab-{}", std::process::id()));
    let (mut servers, mut nginx) = (Vec::new(), Vec::new());
    for (i, own) in SERVERS.iter().enumerate() {
        let ns = Netns::create(&format!("lvsfn-rs{}", i + 1)).unwrap();
        lan.plug("br0", &format!("v-r{}", i + 1), &ns, "eth0", MacAddr(server_mac(i)), 1).unwrap();
        // No default route, no VIP: the only way back is the local address on the link.
        ns.real_server(own.parse().unwrap(), None).unwrap();
        let mac = MacAddr(DIRECTOR_MAC).to_string();
        sh(&ns, "ip", &["neigh", "replace", LIP, "lladdr", &mac, "dev", "eth0", "nud", "permanent"]);
        no_offloads(&ns);
        let d = dir.join(format!("rs{}", i + 1));
        std::fs::create_dir_all(d.join("www")).unwrap();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        for n in SIZES {
            std::fs::write(d.join("www").join(format!("b{n}")), body(n)).unwrap();
        }
        std::fs::write(d.join("nginx.conf"), nginx_conf(&d)).unwrap();
        let conf = d.join("nginx.conf").display().to_string();
        nginx.push(ns.spawn("nginx", &["-c", &conf, "-p", &d.display().to_string()]).unwrap());
        servers.push(ns);
    }
    // nginx is up when its pid files are written.
    for i in 0..SERVERS.len() {
        let pid = dir.join(format!("rs{}", i + 1)).join("nginx.pid");
        for _ in 0..100 {
            if pid.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(pid.exists(), "nginx {} did not start", i + 1);
    }
    Lab { client, director, servers, nginx, _lan: lan, dir }
}

/// What the director said at the end of a run.
struct Said {
    listing: String,
    drops: Vec<(&'static str, u64)>,
    fnat: FnatStats,
    synproxy: SynproxyStats,
}

/// Runs the director in its namespace until `stop`; returns `-Ln`, the drop counters and what
/// FullNAT and the SYN proxy did.
fn direct(ns: &Netns, rules: &str, stop: &AtomicBool) -> Said {
    ns.enter().unwrap();
    let cfg = DirectorConfig::default()
        .port(PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr("192.0.2.1".parse().unwrap()))
        .with_random_seeds();
    let mut d = lvs::director(cfg);
    for (i, s) in SERVERS.iter().enumerate() {
        d.set_neighbour(s.parse().unwrap(), Neighbour { mac: MacAddr(server_mac(i)), port: 0 });
    }
    let client = Neighbour { mac: MacAddr(CLIENT_MAC), port: 0 };
    d.set_neighbour(CLIENT.parse().unwrap(), client);
    d.set_neighbour(CLIENT6.parse().unwrap(), client);
    d.set_gateway(Af::V4, client);
    d.set_gateway(Af::V6, client);
    restore(&mut d, rules).unwrap();
    let port = AfPacket::open("eth0", AfPacketConfig::default()).unwrap();
    let mut rt = Runtime::new(d, vec![Box::new(port)]);
    let handle = rt.stop_handle();
    let clock = MonotonicClock::default();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            handle.stop();
        });
        rt.run(&clock).unwrap();
    });
    let d = rt.director();
    let drops = lvs::core::Reason::ALL.iter().map(|r| (r.as_str(), d.drops()[r.index()])).filter(|x| x.1 > 0).collect();
    Said {
        listing: list(d, clock.now(), ListOptions::Plain),
        drops,
        fnat: *d.fnat_stats(),
        synproxy: *d.synproxy_stats(),
    }
}

/// The two runs use the same namespace names: one at a time.
static LAB: Mutex<()> = Mutex::new(());

/// Builds the lab, fetches every body through both services of `rules` (on `vip`) with curl
/// from `client`, and checks what every FullNAT run must show: every body intact, and nginx's
/// log naming the client (from the PROXY header) and the local address for every request.
/// Returns what the director said and how many bodies were fetched.
fn fetch_all(rules: &str, client: &str, vip: &str) -> (Said, usize) {
    let _one = LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let lab = build();
    let stop = AtomicBool::new(false);
    let out = lab.dir.join("out");
    let (said, fetched) = std::thread::scope(|s| {
        let dir = s.spawn(|| direct(&lab.director, rules, &stop));
        std::thread::sleep(Duration::from_millis(300));
        let mut fetched = Vec::new();
        for port in [80, 81] {
            for n in SIZES {
                let host = if vip.contains(':') { format!("[{vip}]") } else { vip.to_string() };
                let url = format!("http://{host}:{port}/b{n}");
                let o = out.display().to_string();
                let r = lab.client.exec("curl", &["-gsS", "--max-time", "30", "-o", &o, "-w", "%{http_code}", &url]);
                let got = std::fs::read(&out).unwrap_or_default();
                fetched.push((url, r.map_err(|e| e.to_string()), got == body(n), got.len()));
            }
        }
        stop.store(true, Ordering::Relaxed);
        (dir.join().unwrap(), fetched)
    });
    println!("{}", said.listing);
    println!("drops: {:?}\nFullNAT: {:?}\nSYN proxy: {:?}", said.drops, said.fnat, said.synproxy);
    for (url, r, intact, len) in &fetched {
        println!("{url}: {r:?}, {len} bytes, intact: {intact}");
    }
    for (url, r, intact, len) in &fetched {
        assert_eq!(r.as_deref(), Ok("200"), "{url}");
        assert!(intact, "{url}: body of {len} bytes differs");
    }
    assert!(said.listing.contains("FullNat"), "{}", said.listing);
    // nginx's logs: one line per request, each with the client's address from the PROXY
    // header and the director's local address as the connection's source.
    let mut lines = Vec::new();
    for i in 0..SERVERS.len() {
        let log = std::fs::read_to_string(lab.dir.join(format!("rs{}", i + 1)).join("access.log")).unwrap_or_default();
        lines.extend(log.lines().map(str::to_string));
    }
    println!("nginx access logs ($proxy_protocol_addr $proxy_protocol_port $remote_addr $status $body_bytes_sent $request_uri):");
    for l in &lines {
        println!("  {l}");
    }
    assert_eq!(lines.len(), fetched.len(), "{lines:#?}");
    for l in &lines {
        let w: Vec<&str> = l.split(' ').collect();
        assert_eq!((w[0], w[2], w[3]), (client, LIP, "200"), "{l}");
        assert!(w[1].parse::<u16>().is_ok_and(|p| p > 0), "{l}");
    }
    assert_eq!(said.fnat.proxy_no_room, 0);
    (said, fetched.len())
}

/// The lab's two FullNAT services on `vip` as `-t` writes it (PROXY v1 on :80, v2 on :81),
/// each with `extra` options.
fn rules(vip: &str, extra: &str) -> String {
    format!(
        "-A -t {vip}:80 -s rr --proxy-protocol v1{extra}\n-A -t {vip}:81 -s rr --proxy-protocol v2{extra}\n\
         -a -t {vip}:80 -r {s0}:80 -b\n-a -t {vip}:80 -r {s1}:80 -b\n\
         -a -t {vip}:81 -r {s0}:80 -b\n-a -t {vip}:81 -r {s1}:80 -b\n\
         -P -t {vip}:80 -z {LIP}\n-P -t {vip}:81 -z {LIP}\n",
        s0 = SERVERS[0],
        s1 = SERVERS[1]
    )
}

#[test]
fn nginx_sees_every_client_through_fullnat_with_the_proxy_protocol() {
    if !root::can_run(true, &["ip", "curl", "nginx", "ethtool", "sysctl"]) {
        return;
    }
    let (said, n) = fetch_all(&rules(VIP, ""), CLIENT, VIP);
    assert!(said.fnat.proxy_added >= n as u64);
}

#[test]
fn nginx_sees_the_ipv6_client_through_fnat64() {
    if !root::can_run(true, &["ip", "curl", "nginx", "ethtool", "sysctl"]) {
        return;
    }
    let (said, n) = fetch_all(&rules(&format!("[{VIP6}]"), ""), CLIENT6, VIP6);
    assert!(said.listing.contains(&format!("TCP  [{VIP6}]:80 rr ppv1")), "{}", said.listing);
    assert!(said.fnat.proxy_added >= n as u64);
}

#[test]
fn curl_and_nginx_handshake_through_the_syn_proxy() {
    if !root::can_run(true, &["ip", "curl", "nginx", "ethtool", "sysctl"]) {
        return;
    }
    let (said, n) = fetch_all(&rules(VIP, " -j enable"), CLIENT, VIP);
    assert!(said.listing.contains("rr synproxy ppv1"), "{}", said.listing);
    // Every connection began with a cookie and was opened by a good one; nothing forged.
    let sp = said.synproxy;
    assert!(sp.cookies_sent >= n as u64 && sp.cookies_good >= n as u64, "{sp:?}");
    assert_eq!((sp.cookies_bad, sp.server_resets), (0, 0), "{sp:?}");
    assert!(said.fnat.proxy_added >= n as u64);
}
