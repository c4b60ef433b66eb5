//! Shards over AF_PACKET fanout with real TCP (root; CI runs as root): the NAT lab's
//! namespaces — a client, the director, real servers running `python3 -m http.server` — with
//! two shards of the director sharing its port through a fanout group whose program steers by
//! the client's side (`steer::Steer`). Without root (or `ip`, `curl`, `python3`) the tests fail
//! under CI and say they were skipped elsewhere; everything they create is removed on return.

#[path = "../examples/common/lab.rs"]
#[allow(dead_code)]
mod lab;
#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/netns_lab.rs"]
#[allow(dead_code)]
mod netns_lab;
#[path = "../examples/common/root.rs"]
mod root;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use lab::{Mode, VIP};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::filter::Filter;
use lvs::dataplane::runtime::{Runtime, RuntimeStats, Shards};
use lvs::dataplane::steer::Steer;
use netns_lab::Topology;

fn can_run() -> bool {
    root::can_run(true, &["ip", "curl", "python3"])
}

/// A NAT lab with `servers` real servers, each serving a page that names it (`rs1`, ...).
fn lab(servers: usize, tag: &str) -> Topology {
    let topo = Topology::build(Mode::Nat, servers, tag).unwrap();
    for i in 0..servers {
        topo.serve(i, &format!("rs{}", i + 1), &AtomicBool::new(false)).unwrap();
    }
    topo
}

/// Two shards of the lab's director on its `eth0`, one fanout group steered by `steer` (or,
/// with `None`, by [`Steer::client_of`] the rules), each port filtered to the services.
fn shards(topo: &Topology, servers: usize, rules: &str, steer: Option<Steer>) -> (Shards, Strays) {
    shards_of(topo, rules, steer, move |_| netns_lab::lab_director(Mode::Nat, servers, false))
}

/// IPv4 frames a shard handed back as not its own (`NotMine`), counted by the shards' handlers.
/// The port filter lets in every IPv4 frame of a service's connections and no other (IPv6
/// with extension headers, such as the bridge's MLD reports, it lets in unjudged), so one here
/// is a reply that reached a shard without its connection.
type Strays = Arc<AtomicU64>;

/// [`shards`] with each shard's director (before the rules) made by `director(i)`.
fn shards_of(
    topo: &Topology,
    rules: &str,
    steer: Option<Steer>,
    director: impl Fn(u16) -> lvs::Director + Send + Sync + 'static,
) -> (Shards, Strays) {
    let strays = Strays::default();
    let counted = strays.clone();
    let (name, rules) = (topo.director.name().to_string(), rules.to_string());
    let group = (std::process::id() & 0xffff) as u16;
    let make = Arc::new(move |i: usize| {
        lvs::dataplane::netns::enter(&name)?;
        let mut d = director(i as u16);
        lvs::core::config::restore(&mut d, &rules).map_err(std::io::Error::other)?;
        let steer = steer.unwrap_or_else(|| Steer::client_of(&d));
        let cfg = AfPacketConfig { fanout: Some(group), steer, ..AfPacketConfig::default() };
        let port = AfPacket::open("eth0", cfg)?;
        let counted = counted.clone();
        let rt = Runtime::new(d, vec![Box::new(port)]).on_local(move |got| {
            if got.frame.data().get(12..14) == Some(&[0x08, 0x00]) {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(rt.with_port_filter(Filter::default()))
    });
    (Shards::spawn(2, make).unwrap(), strays)
}

/// `curl` from the client namespace, from `source`: the server named by the page, if any.
fn fetch(topo: &Topology, source: Ipv4Addr) -> Option<String> {
    let url = format!("http://{}/", Ipv4Addr::from(VIP));
    let src = source.to_string();
    let body = topo.client.exec("curl", &["-s", "--max-time", "3", "--interface", &src, &url]).ok()?;
    Some(body.trim().to_string()).filter(|b| b.starts_with("rs"))
}

/// No shard was handed an IPv4 frame it did not own, and both forwarded.
fn assert_all_owned(per_shard: &[RuntimeStats], strays: &Strays) {
    assert_eq!(per_shard.len(), 2);
    assert_eq!(strays.load(Ordering::Relaxed), 0, "replies reached shards without their connection: {per_shard:?}");
    for (i, s) in per_shard.iter().enumerate() {
        assert_eq!(s.local_lost, 0, "shard {i}: {per_shard:?}");
        assert!(s.tx > 0, "shard {i} forwarded nothing, the steering did not spread: {per_shard:?}");
    }
}

#[test]
fn nat_replies_return_through_the_shard_that_owns_the_connection() {
    if !can_run() {
        return;
    }
    let topo = lab(2, "shn");
    let rules = "-A -t 203.0.113.100:80 -s rr\n-a -t 203.0.113.100:80 -r 10.0.0.11:80 -m\n\
                 -a -t 203.0.113.100:80 -r 10.0.0.12:80 -m\n";
    let (shards, strays) = shards(&topo, 2, rules, Some(Steer::ClientFlow));
    // One client, a new source port each time: the kernel's flow hash would send about half
    // of the replies to the other shard, and those connections would never complete.
    let client = Ipv4Addr::from(netns_lab::CLIENT_IP);
    let answers: Vec<Option<String>> = (0..40).map(|_| fetch(&topo, client)).collect();
    let per_shard = shards.shard_stats();
    let conns = shards.snapshot().totals.conns;
    shards.stop().unwrap();
    assert!(answers.iter().all(Option::is_some), "{answers:?} {per_shard:?}");
    assert_eq!(conns, 40);
    assert_all_owned(&per_shard, &strays);
}

#[test]
fn persistent_clients_keep_their_server_across_shards() {
    if !can_run() {
        return;
    }
    let topo = lab(3, "shp");
    // Twelve clients on the client's link; each opens four connections from four ports.
    let clients: Vec<Ipv4Addr> = (100..112).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    for c in &clients {
        topo.client.exec("ip", &["addr", "add", &format!("{c}/24"), "dev", "eth0"]).unwrap();
    }
    let rules = "-A -t 203.0.113.100:80 -s rr -p 300\n-a -t 203.0.113.100:80 -r 10.0.0.11:80 -m\n\
                 -a -t 203.0.113.100:80 -r 10.0.0.12:80 -m\n-a -t 203.0.113.100:80 -r 10.0.0.13:80 -m\n";
    let (shards, strays) = shards(&topo, 3, rules, None);
    let mut servers: BTreeMap<Ipv4Addr, Vec<Option<String>>> = BTreeMap::new();
    for _ in 0..4 {
        for c in &clients {
            servers.entry(*c).or_default().push(fetch(&topo, *c));
        }
    }
    let per_shard = shards.shard_stats();
    let (listing, _) = shards.stats();
    shards.stop().unwrap();
    for (c, got) in &servers {
        assert!(got.iter().all(Option::is_some), "{c}: {got:?}");
        // ip_vs_sched_persist: the template made by a client's first connection picks the
        // server of every later one while it lives.
        assert!(got.iter().all(|g| g == &got[0]), "{c} changed servers: {got:?}\n{listing}");
    }
    assert_all_owned(&per_shard, &strays);
}

#[test]
fn fullnat_replies_return_through_the_shard_whose_local_ports_they_use() {
    use lvs::core::addr::Af;
    use lvs::core::laddr::PortShare;
    use lvs::core::neigh::{MacAddr, Neighbour};
    use lvs::core::{DirectorConfig, PortConfig};

    if !can_run() {
        return;
    }
    let topo = lab(2, "shf");
    // The servers answer the local address 10.0.0.200 on their link, at the director's MAC
    // (the director's kernel does not own it, so it neither answers ARP nor resets).
    for (ns, _) in &topo.servers {
        ns.exec("ip", &["neigh", "add", "10.0.0.200", "lladdr", "02:00:00:00:00:01", "dev", "eth0"]).unwrap();
    }
    let rules = "-A -t 203.0.113.100:80 -s rr\n-a -t 203.0.113.100:80 -r 10.0.0.11:80 -b\n\
                 -a -t 203.0.113.100:80 -r 10.0.0.12:80 -b\n-P -t 203.0.113.100:80 -z 10.0.0.200\n";
    let (shards, strays) = shards_of(&topo, rules, Some(Steer::ClientFlow), |i| {
        let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1])).with_addr("192.0.2.1".parse().unwrap());
        let mut cfg = DirectorConfig::default().port(port).with_random_seeds();
        cfg.fnat_port_share = PortShare::new(i, 2).unwrap();
        let mut d = lvs::director(cfg);
        for s in 0..2 {
            let mac = MacAddr(netns_lab::server_mac(s));
            d.set_neighbour(netns_lab::server_ip(Mode::Nat, s).into(), Neighbour { mac, port: 0 });
        }
        d.set_gateway(Af::V4, Neighbour { mac: MacAddr(netns_lab::CLIENT_MAC), port: 0 });
        d
    });
    let client = Ipv4Addr::from(netns_lab::CLIENT_IP);
    let answers: Vec<Option<String>> = (0..40).map(|_| fetch(&topo, client)).collect();
    let per_shard = shards.shard_stats();
    shards.stop().unwrap();
    assert!(answers.iter().all(Option::is_some), "{answers:?} {per_shard:?}");
    assert_all_owned(&per_shard, &strays);
}
