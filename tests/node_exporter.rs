//! Monitoring with software nobody here wrote: Prometheus' node_exporter (Debian's
//! `prometheus-node-exporter`) reads the `/proc/net/ip_vs*` files [`lvs::procfs::write`] wrote
//! for a director that forwarded traffic (NAT and DR over TCP, UDP, a persistent fwmark service,
//! IPv6), and the `node_ipvs_*` metrics it serves on loopback equal the library's counters: the
//! five global totals, and per real server its active and inactive connections and its weight,
//! with the collector's labels. The library's own exposition (`config::prometheus`) writes
//! those families exactly as node_exporter does, HELP and TYPE lines included; and node_exporter's
//! textfile collector, which reads files with Prometheus' own parser (`expfmt`), takes the whole
//! exposition, the `lvs_*` families too. No root needed.

#[path = "../examples/common/root.rs"]
mod root;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use lvs::core::addr::ServiceKey;
use lvs::core::config::prometheus::Snapshot;
use lvs::core::config::restore;
use lvs::core::proto::tcp::flags::{ACK, FIN, SYN};
use lvs::core::testkit::{udp, Tcp, DIRECTOR_MAC, GW_MAC};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{Af, MacAddr, Neighbour, PortConfig};
use lvs::{Director, DirectorConfig, Instant, Verdict};

const EXPORTER: &str = "prometheus-node-exporter";

const RULES: &str = "\
-A -t 203.0.113.100:80 -s rr
-a -t 203.0.113.100:80 -r 192.0.2.11:80 -m -w 1
-a -t 203.0.113.100:80 -r 192.0.2.12:80 -g -w 2
-A -u 203.0.113.100:53 -s rr
-a -u 203.0.113.100:53 -r 192.0.2.13:53 -g -w 3
-A -f 7 -s rr -p 60
-a -f 7 -r 192.0.2.13:0 -g -w 4
-A -t [2001:db8:113::100]:443 -s rr
-a -t [2001:db8:113::100]:443 -r [2001:db8:2::11]:443 -g -w 5
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rs_mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 1, i]
}

/// A one-armed director with [`RULES`]; the classifier marks TCP to the VIP's port 8080 with 7.
fn director() -> Director {
    let mut d = lvs::director(DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC))));
    let gw = Neighbour { mac: MacAddr(GW_MAC), port: 0 };
    d.set_gateway(Af::V4, gw);
    d.set_gateway(Af::V6, gw);
    for i in 1..=3u8 {
        let n = Neighbour { mac: MacAddr(rs_mac(i)), port: 0 };
        d.set_neighbour(ip(&format!("192.0.2.1{i}")), n);
        d.set_neighbour(ip(&format!("2001:db8:2::1{i}")), n);
    }
    d.set_classifier(Box::new(|m| if m.proto == 6 && m.dport == 8080 { 7 } else { 0 }));
    restore(&mut d, RULES).unwrap();
    d
}

/// Sends one frame and insists that it was forwarded.
fn forward(d: &mut Director, now: Instant, bytes: &[u8]) {
    let mut f = Frame::new(DEFAULT_HEADROOM, bytes);
    let v = d.process(now, &mut f);
    assert!(matches!(v, Verdict::Transmit { .. }), "not forwarded: {v:?}");
}

/// Traffic of every kind the files show: TCP connections to NAT and DR servers left in several
/// states (the NAT server answering, so packets go out too), UDP flows, connections to the
/// persistent fwmark service, and IPv6.
fn drive(d: &mut Director) -> Instant {
    let mut now = Instant::from_secs(1);
    let vip = ip("203.0.113.100");
    for i in 0..8u16 {
        let client = (ip("198.51.100.2"), 40000 + i);
        forward(d, now, &Tcp::new(client, (vip, 80), SYN).build());
        // rr alternates, newest server first: even connections go to .12 (DR), odd to .11 (NAT).
        if i % 2 == 1 {
            let reply = Tcp { src_mac: rs_mac(1), ..Tcp::new((ip("192.0.2.11"), 80), client, SYN | ACK) };
            forward(d, now, &reply.build());
        }
        if i < 6 {
            forward(d, now, &Tcp { payload: b"GET / HTTP/1.0\r\n\r\n", ..Tcp::new(client, (vip, 80), ACK) }.build());
        }
        if i < 2 {
            forward(d, now, &Tcp::new(client, (vip, 80), FIN | ACK).build());
        }
    }
    for i in 0..3u16 {
        forward(d, now, &udp((ip("198.51.100.3"), 5000 + i), (vip, 53), b"query"));
    }
    for i in 0..2u16 {
        forward(d, now, &Tcp::new((ip("198.51.100.4"), 41000 + i), (vip, 8080), SYN).build());
    }
    let vip6 = ip("2001:db8:113::100");
    for i in 0..2u16 {
        let client = (ip("2001:db8:51::2"), 42000 + i);
        forward(d, now, &Tcp::new(client, (vip6, 443), SYN).build());
        forward(d, now, &Tcp::new(client, (vip6, 443), ACK).build());
    }
    // Let the rate estimator run once.
    now = Instant::from_secs(4);
    d.tick(now);
    now
}

/// The exporter, stopped (by its own handle) when dropped.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// node_exporter reading `procfs` with only the ipvs collector, on a free loopback port.
fn start_exporter(procfs: &Path) -> (Exporter, u16) {
    start_exporter_with(&[format!("--path.procfs={}", procfs.display()), "--collector.ipvs".into()])
}

/// node_exporter with no collector but those `args` enable, on a free loopback port.
///
/// The tests of this file start exporters at once: one at a time picks a free port and waits
/// until its exporter listens there, or two could pick the same port and one test scrape the
/// other's exporter (reset when that test ends it).
fn start_exporter_with(args: &[String]) -> (Exporter, u16) {
    static STARTING: Mutex<()> = Mutex::new(());
    let _one = STARTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(EXPORTER)
            .arg("--collector.disable-defaults")
            .args(args)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{EXPORTER}: {e}"));
        let mut ex = Exporter(child);
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (ex, port);
            }
            if ex.0.try_wait().unwrap().is_some() {
                break; // the port was taken meanwhile: try another
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{EXPORTER} did not come up on loopback");
}

/// `GET /metrics` over HTTP/1.0: the body.
fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// A sample's labels, in name order.
type Labels = BTreeMap<String, String>;

/// The samples of the `node_ipvs_*` metrics: (name, labels) → value.
fn samples(body: &str) -> BTreeMap<(String, Labels), f64> {
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| l.starts_with("node_ipvs_")) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (n, labels)
            }
            None => (series, Labels::new()),
        };
        out.insert((name.to_string(), labels), value.parse::<f64>().unwrap());
    }
    out
}

/// What node_exporter should say about `d`, from the library's own counters: the collector's
/// labels for each real server (`local_mark` is the mark as `/proc/net/ip_vs` prints it, in hex).
fn expected(d: &Director) -> BTreeMap<(String, Labels), f64> {
    let c = d.stats().counters();
    let mut out = BTreeMap::new();
    for (name, v) in [
        ("connections_total", c.conns),
        ("incoming_packets_total", c.inpkts),
        ("outgoing_packets_total", c.outpkts),
        ("incoming_bytes_total", c.inbytes),
        ("outgoing_bytes_total", c.outbytes),
    ] {
        out.insert((format!("node_ipvs_{name}"), Labels::new()), v as f64);
    }
    for s in d.services() {
        let (local_address, local_port, proto, local_mark) = match s.config.key {
            ServiceKey::Inet { proto, addr, port } => (addr.to_string(), port, proto.name(), String::new()),
            ServiceKey::Fwmark { mark, .. } => (String::new(), 0, "FWM", format!("{mark:08X}")),
        };
        for dv in s.dests.dests() {
            let labels: Labels = [
                ("local_address", local_address.clone()),
                ("local_port", local_port.to_string()),
                ("remote_address", dv.addr().to_string()),
                ("remote_port", dv.port().to_string()),
                ("proto", proto.to_string()),
                ("local_mark", local_mark.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            for (name, v) in [
                ("backend_connections_active", dv.active()),
                ("backend_connections_inactive", dv.inactive()),
                ("backend_weight", dv.weight()),
            ] {
                out.insert((format!("node_ipvs_{name}"), labels.clone()), f64::from(v));
            }
        }
    }
    out
}

/// A fresh directory of this process for `test` (the tests run side by side).
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lvs-node-exporter-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn node_exporter_reads_the_library_counters() {
    if !root::can_run(false, &[EXPORTER]) {
        return;
    }
    let mut d = director();
    let now = drive(&mut d);
    let c = d.stats().counters();
    assert!(c.conns > 0 && c.outpkts > 0, "traffic both ways: {c:?}");
    let busy = d.services().flat_map(|s| s.dests.dests().collect::<Vec<_>>()).filter(|v| v.active() > 0).count();
    let idle = d.services().flat_map(|s| s.dests.dests().collect::<Vec<_>>()).filter(|v| v.inactive() > 0).count();
    assert!(busy > 0 && idle > 0, "servers with active and with inactive connections");

    let dir = scratch_dir("counters");
    lvs::procfs::write(&dir, &d, now).unwrap();
    let (exporter, port) = start_exporter(&dir);
    let body = scrape(port);
    drop(exporter);
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(body.contains("node_scrape_collector_success{collector=\"ipvs\"} 1"), "the ipvs collector failed:\n{body}");
    let theirs = samples(&body);
    let ours = expected(&d);
    assert_eq!(ours.len(), 5 + 3 * 5, "five totals and three metrics for each of five servers");
    let show =
        |m: &BTreeMap<(String, Labels), f64>| m.iter().map(|((n, l), v)| format!("{n}{l:?} {v}\n")).collect::<String>();
    assert_eq!(theirs, ours, "node_exporter saw:\n{}\nthe library holds:\n{}", show(&theirs), show(&ours));
}

/// The `node_ipvs_*` lines of an exposition, comments included, in their order.
fn node_ipvs_part(body: &str) -> String {
    body.lines()
        .filter(|l| {
            l.starts_with("node_ipvs_") || l.starts_with("# HELP node_ipvs_") || l.starts_with("# TYPE node_ipvs_")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_native_exposition_says_what_node_exporter_says() {
    if !root::can_run(false, &[EXPORTER]) {
        return;
    }
    let mut d = director();
    let now = drive(&mut d);
    let dir = scratch_dir("native");
    lvs::procfs::write(&dir, &d, now).unwrap();
    let (exporter, port) = start_exporter(&dir);
    let body = scrape(port);
    drop(exporter);
    std::fs::remove_dir_all(&dir).unwrap();

    let theirs = node_ipvs_part(&body);
    assert_eq!(theirs.matches("# TYPE").count(), 8, "node_exporter's eight families:\n{body}");
    let ours = Snapshot::of(&d).render();
    assert_eq!(node_ipvs_part(&ours), theirs, "the library's node_ipvs_* part differs from node_exporter's");
    assert!(ours.starts_with(&theirs), "the node_ipvs_* families come first, whole");
}

/// A sample line's name and value: `name{labels} value` or `name value`.
fn name_and_value(line: &str) -> (&str, &str) {
    let (series, value) = line.rsplit_once(' ').unwrap();
    (series.split('{').next().unwrap(), value)
}

#[test]
fn prometheus_own_parser_reads_the_whole_exposition() {
    use lvs::core::health::{Check, CheckPlan, Monitor, ServicePolicy, TcpCheck};
    use lvs::core::vrrp::{Config, Group};

    if !root::can_run(false, &[EXPORTER]) {
        return;
    }
    let mut d = director();
    let now = drive(&mut d);
    let mut f = Frame::new(DEFAULT_HEADROOM, &[0u8; 10]);
    assert!(matches!(d.process(now, &mut f), Verdict::Drop(_)));
    let mut m = Monitor::new(1);
    let key = ServiceKey::Inet { proto: lvs::core::addr::Proto::Tcp, addr: ip("203.0.113.100"), port: 80 };
    let plan = CheckPlan::new(Check::Tcp(TcpCheck));
    let rs = lvs::core::dest::RealServer::new(ip("192.0.2.14"), 80, lvs::core::dest::FwdMethod::Route, 1);
    m.add_service(&mut d, now, key, ServicePolicy::default(), [(rs, plan)]).unwrap();
    let mut g = Group::new();
    g.add_instance(Config::new(51, ip("192.0.2.2"), vec![ip("192.0.2.100")])).unwrap();
    let ours = Snapshot::of(&d).with_health(&m).with_vrrp(&g, &["eth0"]).render();

    // The textfile collector parses *.prom files with Prometheus' text parser and re-exports
    // them; a file it cannot parse sets node_textfile_scrape_error to 1.
    let dir = scratch_dir("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lvs.prom"), &ours).unwrap();
    let (exporter, port) = start_exporter_with(&[
        "--collector.textfile".into(),
        format!("--collector.textfile.directory={}", dir.display()),
    ]);
    let body = scrape(port);
    drop(exporter);
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(body.contains("\nnode_textfile_scrape_error 0\n"), "Prometheus' parser refused the exposition:\n{body}");
    // Every sample came through with its value (the parser re-sorts, so compare as sets).
    let samples = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && (l.starts_with("lvs_") || l.starts_with("node_ipvs_")))
            .map(String::from)
            .collect()
    };
    let (mine, exported) = (samples(&ours), samples(&body));
    assert_eq!(exported, mine, "what node_exporter re-exported differs from the file");
    for family in ["lvs_drops_total", "lvs_health_server_state", "lvs_vrrp_state", "lvs_sync_dropped_total"] {
        assert!(mine.iter().any(|l| name_and_value(l).0 == family), "{family} missing");
    }
}
