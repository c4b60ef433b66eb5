//! `lblc` and `lblcr` hold the servers their cache entries name, as the kernel's do
//! (`ip_vs_lblc_new`, `ip_vs_dest_set_insert` take a reference; `ip_vs_dest_trash_expire` frees
//! only unreferenced servers): a deleted server stays in the trash while an entry names it, and
//! added back it is the same server — its counters kept — that those entries find again.

use std::net::IpAddr;

use lvs::core::addr::{Af, Endpoint, ServiceKey};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::{Tcp, DIRECTOR_MAC, GW_MAC};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{Director, DirectorConfig, Instant, PortConfig, ServiceConfig, Verdict};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key() -> ServiceKey {
    ServiceKey::tcp(ip("203.0.113.100"), 80)
}

/// A director with service `sched` on the VIP and servers .11 then .12 (so .12 heads the list).
fn director(sched: &str) -> Director {
    let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(ip("192.0.2.1"));
    let mut d = Director::new(DirectorConfig::default().port(port).port(port), lvs::sched::by_name);
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
    d.add_service(ServiceConfig::new(key(), sched)).unwrap();
    for (i, a) in ["192.0.2.11", "192.0.2.12"].iter().enumerate() {
        d.set_neighbour(ip(a), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i as u8]), port: 1 });
        d.add_dest(&key(), RealServer::new(ip(a), 80, FwdMethod::Route, 1)).unwrap();
    }
    d
}

/// Sends a client segment at `secs`; returns the server it went to.
fn send(d: &mut Director, secs: u64, cport: u16, f: u8) -> Option<IpAddr> {
    let t = Tcp::new((ip("198.51.100.2"), cport), (ip("203.0.113.100"), 80), f);
    let mut frame = Frame::new(DEFAULT_HEADROOM, &t.build());
    match d.process(Instant::from_secs(secs), &mut frame) {
        Verdict::Transmit { dest: Some(_), .. } => {
            d.connections(Instant::from_secs(secs)).iter().find(|c| c.client.port == cport).map(|c| c.dest.addr)
        }
        _ => None,
    }
}

/// Runs every timer due up to `secs`.
fn run_until(d: &mut Director, secs: u64) {
    let end = Instant::from_secs(secs);
    for _ in 0..100_000 {
        match d.next_deadline().filter(|t| *t <= end) {
            Some(t) => d.tick(t),
            None => break,
        }
    }
}

fn conns_of(d: &Director, a: &str) -> u64 {
    let s = d.service(&key()).unwrap();
    s.dests.dests().find(|x| x.addr() == ip(a)).map_or(0, |x| x.stats().counters().conns)
}

/// `ip_vs_lblc_schedule`: the entry for the VIP still names the deleted server; added back
/// (available, weight 1, not overloaded) it serves the VIP again, although the weighted
/// least-connection pick — the other, idle server — would differ.
#[test]
fn lblc_finds_a_re_added_server_through_its_old_entry() {
    let mut d = director("lblc");
    assert_eq!(send(&mut d, 0, 1000, flags::SYN), Some(ip("192.0.2.12")));
    let _ = send(&mut d, 0, 1000, flags::ACK); // ESTABLISHED: .12 has one active connection.
    d.del_dest(&key(), &Endpoint::new(ip("192.0.2.12"), 80)).unwrap();
    d.add_dest(&key(), RealServer::new(ip("192.0.2.12"), 80, FwdMethod::Route, 1)).unwrap();
    assert_eq!(send(&mut d, 2, 1001, flags::SYN), Some(ip("192.0.2.12")), "the cache entry, not wlc's .11");
}

/// `ip_vs_dest_trash_expire` skips a server whose reference count an entry raised: long after
/// its last connection is gone the deleted server is still in the trash, and re-added it keeps
/// its counters. Without an entry naming it (`rr`) it is freed and comes back new.
#[test]
fn a_server_an_entry_names_outlives_the_trash_timer() {
    for (sched, kept) in [("lblc", 1), ("lblcr", 1), ("rr", 0)] {
        let mut d = director(sched);
        assert_eq!(send(&mut d, 0, 1000, flags::SYN), Some(ip("192.0.2.12")), "{sched}");
        run_until(&mut d, 62); // SYN_RECV times out after 60 s.
        assert_eq!(d.conn_count(), 0);
        d.del_dest(&key(), &Endpoint::new(ip("192.0.2.12"), 80)).unwrap();
        run_until(&mut d, 1000); // The trash frees an idle server within 180 s.
        d.add_dest(&key(), RealServer::new(ip("192.0.2.12"), 80, FwdMethod::Route, 1)).unwrap();
        assert_eq!(conns_of(&d, "192.0.2.12"), kept, "{sched}");
    }
}
