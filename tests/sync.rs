//! Connection sync between two library directors under simulated time, through the public API
//! only: incremental sync, fail-over for DR and NAT, the full resync a joining backup asks for
//! (rate-limited, and ignored by kernel backups), and a property that after a resync the
//! backup holds exactly the master's table.

use std::net::IpAddr;

use lvs::core::config::{list, ListOptions};
use lvs::core::director::{ResyncMessage, SyncRefused};
use lvs::core::proto::tcp::flags::{ACK, FIN, SYN};
use lvs::core::sync::wire::{self, Version};
use lvs::core::sync::{DaemonConfig, Role, SyncParams};
use lvs::core::testkit::{udp, Tcp, DIRECTOR_MAC, GW_MAC};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{
    Af, Director, DirectorConfig, FwdMethod, Instant, MacAddr, Neighbour, PortConfig, RealServer, ServiceConfig,
    ServiceKey, TunConfig, TunCsum, Verdict,
};
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const VIP: &str = "203.0.113.100";

/// A director with a DR service on :80 (persistent on :443) and a NAT service on :8080, each
/// with three real servers.
fn director(params: SyncParams) -> Director {
    let mut d = lvs::director(DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC))));
    let gw = Neighbour { mac: MacAddr(GW_MAC), port: 0 };
    d.set_gateway(Af::V4, gw);
    for (port, fwd, persistent) in
        [(80, FwdMethod::Route, false), (443, FwdMethod::Route, true), (8080, FwdMethod::Masq, false)]
    {
        let key = ServiceKey::tcp(ip(VIP), port);
        let mut cfg = ServiceConfig::new(key, "rr");
        if persistent {
            cfg = cfg.persistent(120);
        }
        d.add_service(cfg).unwrap();
        for i in 1..=3u8 {
            let rip = ip(&format!("192.0.2.1{i}"));
            d.add_dest(&key, RealServer::new(rip, port, fwd, 1)).unwrap();
            d.set_neighbour(rip, Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i]), port: 0 });
        }
    }
    let udp_key = ServiceKey::udp(ip(VIP), 53);
    d.add_service(ServiceConfig::new(udp_key, "rr")).unwrap();
    d.add_dest(&udp_key, RealServer::new(ip("192.0.2.11"), 53, FwdMethod::Route, 1)).unwrap();
    d.set_sync_params(params).unwrap();
    d
}

fn t(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn client(i: u16) -> (IpAddr, u16) {
    (ip(&format!("198.51.100.{}", 1 + i % 200)), 10_000 + i)
}

fn send(d: &mut Director, now: Instant, frame: Vec<u8>) -> (Verdict, Vec<u8>) {
    let mut f = Frame::new(DEFAULT_HEADROOM, &frame);
    let v = d.process(now, &mut f);
    (v, f.data().to_vec())
}

fn tcp(c: (IpAddr, u16), port: u16, flags: u8) -> Vec<u8> {
    Tcp::new(c, (ip(VIP), port), flags).build()
}

/// Moves every datagram `from` has at `now` into `to`.
fn pump(from: &mut Director, to: &mut Director, now: Instant) -> usize {
    let mut n = 0;
    while let Some(g) = from.poll_sync(now) {
        let _ = to.handle_sync(now, &g.bytes);
        n += 1;
    }
    n
}

/// Runs both directors' timers and sync traffic (both ways) up to `until` in 100 ms steps.
fn run(a: &mut Director, b: &mut Director, from: u64, until: u64) {
    let mut ms = from;
    while ms <= until {
        let now = t(ms);
        a.tick(now);
        b.tick(now);
        pump(a, b, now);
        pump(b, a, now);
        ms += 100;
    }
}

fn pair(params: SyncParams) -> (Director, Director) {
    let mut a = director(params);
    let mut b = director(params);
    a.start_sync(Role::Master, &DaemonConfig::new("sync0"), 1500).unwrap();
    b.start_sync(Role::Backup, &DaemonConfig::new("sync0"), 1500).unwrap();
    (a, b)
}

/// The `-Lcn` rows without the expire column, sorted.
fn table(d: &Director, now: Instant) -> Vec<String> {
    let mut rows: Vec<String> = list(d, now, ListOptions::Connections)
        .lines()
        .skip(2)
        .map(|l| {
            let mut w: Vec<&str> = l.split_whitespace().collect();
            w.remove(1);
            w.join(" ")
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn dr_connections_survive_fail_over_to_the_same_server() {
    let (mut a, mut b) = pair(SyncParams::default());
    let mut first = Vec::new();
    for i in 0..20 {
        let c = client(i);
        let (_, f) = send(&mut a, t(10), tcp(c, 80, SYN));
        first.push(f[..6].to_vec());
        let _ = send(&mut a, t(20), tcp(c, 80, ACK));
        let _ = send(&mut a, t(30), tcp(c, 80, ACK));
    }
    run(&mut a, &mut b, 100, 3_000);
    assert_eq!(table(&b, t(3_000)), table(&a, t(3_000)));
    // Fail-over: mid-stream segments reach the backup, which sends each to the same server.
    for i in 0..20 {
        let (v, f) = send(&mut b, t(4_000), tcp(client(i), 80, ACK));
        assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
        assert_eq!(f[..6], first[usize::from(i)], "connection {i} moved to another server");
    }
}

#[test]
fn nat_replies_are_translated_by_the_backup() {
    let (mut a, mut b) = pair(SyncParams::default());
    let c = client(1);
    let (_, f) = send(&mut a, t(10), tcp(c, 8080, SYN));
    let rip = IpAddr::from([f[30], f[31], f[32], f[33]]);
    let _ = send(&mut a, t(20), tcp(c, 8080, ACK));
    let _ = send(&mut a, t(30), tcp(c, 8080, ACK));
    run(&mut a, &mut b, 100, 3_000);
    // The server's reply now reaches the backup: it leaves with the VIP as its source.
    let mut reply = Tcp::new((rip, 8080), c, ACK);
    reply.src_mac = [2, 0, 0, 0, 1, 1];
    let (v, f) = send(&mut b, t(4_000), reply.build());
    assert!(matches!(v, Verdict::Transmit { dest: None, .. }), "{v:?}");
    assert_eq!(IpAddr::from([f[26], f[27], f[28], f[29]]), ip(VIP));
}

#[test]
fn an_entry_for_a_server_the_backup_lacks_is_kept_and_still_forwarded() {
    let (mut a, mut b) = pair(SyncParams::default());
    // The backup does not have 192.0.2.13 in its service (it still knows its MAC).
    let key = ServiceKey::tcp(ip(VIP), 80);
    b.del_dest(&key, &lvs::core::Endpoint::new(ip("192.0.2.13"), 80)).unwrap();
    let c = client(3);
    let mut to_13 = None;
    for i in 0..3 {
        let c = client(i);
        let (_, f) = send(&mut a, t(10), tcp(c, 80, SYN));
        if f[..6] == [2, 0, 0, 0, 1, 3] {
            to_13 = Some(c);
        }
        let _ = send(&mut a, t(20), tcp(c, 80, ACK));
        let _ = send(&mut a, t(30), tcp(c, 80, ACK));
    }
    let c13 = to_13.unwrap_or(c);
    run(&mut a, &mut b, 100, 3_000);
    assert_eq!(table(&b, t(3_000)), table(&a, t(3_000)));
    assert_eq!(b.sync_stats().unbound, 1);
    let (v, f) = send(&mut b, t(4_000), tcp(c13, 80, ACK));
    assert_eq!((v, &f[..6]), (Verdict::Transmit { port: 0, dest: None }, &[2, 0, 0, 0, 1, 3][..]));
}

#[test]
fn persistence_holds_across_fail_over() {
    let (mut a, mut b) = pair(SyncParams::default());
    let c = client(7);
    let (_, f) = send(&mut a, t(10), tcp(c, 443, SYN));
    let _ = send(&mut a, t(20), tcp(c, 443, ACK));
    let _ = send(&mut a, t(30), tcp(c, 443, ACK | FIN));
    run(&mut a, &mut b, 100, 3_000);
    // A new connection of the same client on the backup lands on the same server.
    let (_, g) = send(&mut b, t(4_000), tcp((c.0, c.1 + 1), 443, SYN));
    assert_eq!(f[..6], g[..6]);
}

#[test]
fn a_joining_backup_gets_the_whole_table_at_the_rate_asked() {
    let params = SyncParams { resync_rate: 2_000, ..SyncParams::default() };
    let mut a = director(params);
    a.start_sync(Role::Master, &DaemonConfig::new("sync0"), 1500).unwrap();
    // 3000 connections the master made before the backup existed; SYN only, never sent.
    for i in 0..3_000 {
        let _ = send(&mut a, t(0), tcp(client(i), 80, SYN));
        let _ = send(&mut a, t(0), udp(client(i), (ip(VIP), 53), b"q"));
    }
    let _ = send(&mut a, t(0), tcp(client(5_000), 443, SYN));
    while a.poll_sync(t(0)).is_some() {}
    let mut b = director(params);
    b.start_sync(Role::Backup, &DaemonConfig::new("sync0"), 1500).unwrap();
    run(&mut a, &mut b, 100, 1_000);
    let part = b.conn_count();
    assert!((1_500..=2_100).contains(&part), "{part} entries after 0.9 s at 2000 records/s");
    run(&mut a, &mut b, 1_100, 5_000);
    assert_eq!(table(&b, t(5_000)), table(&a, t(5_000)));
    let (sa, sb) = (a.sync_stats(), b.sync_stats());
    assert_eq!((sa.resync_requests, sa.resync_records, sb.resyncs_done), (1, 6_002, 1));
}

#[test]
fn kernel_backups_ignore_the_resync_messages() {
    for m in [ResyncMessage::Request, ResyncMessage::Start, ResyncMessage::Done] {
        let bytes = m.encode(7);
        // The kernel's reading: not version 1 (spare ≠ 0), so version 0 with zero records.
        let p = wire::parse(&bytes).unwrap();
        assert_eq!((p.version, p.count, p.entries().count()), (Version::V0, 0, 0));
        // And a library backup without resync takes it as nothing.
        let (_, mut b) = pair(SyncParams::default());
        assert!(b.handle_sync(t(0), &bytes).is_ok());
        assert_eq!(b.conn_count(), 0);
    }
}

#[test]
fn refusals_are_counted_and_change_nothing() {
    let mut d = director(SyncParams::default());
    assert_eq!(d.handle_sync(t(0), &[0; 8]), Err(SyncRefused::NotBackup));
    d.start_sync(Role::Backup, &DaemonConfig { syncid: 3, ..DaemonConfig::new("sync0") }, 1500).unwrap();
    let (mut a, _) = pair(SyncParams::default());
    let _ = send(&mut a, t(0), tcp(client(1), 80, SYN));
    let _ = send(&mut a, t(0), tcp(client(1), 80, ACK));
    let _ = send(&mut a, t(0), tcp(client(1), 80, ACK));
    let g = a.poll_sync(t(5_000)).unwrap();
    assert_eq!(d.handle_sync(t(0), &g.bytes), Err(SyncRefused::Syncid(0)));
    assert_eq!(d.handle_sync(t(0), &g.bytes[..10]).unwrap_err().to_string(), "header size does not match the datagram");
    assert_eq!((d.conn_count(), d.sync_stats().refused), (0, 3));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever traffic the master saw, after a resync the backup lists the same entries with
    /// the same servers and states.
    #[test]
    fn after_a_resync_the_backup_equals_the_master(
        flows in proptest::collection::vec((0u16..400, 0usize..3, 1usize..6), 1..120),
        version in prop_oneof![Just(Version::V0), Just(Version::V1)],
    ) {
        let params = SyncParams { resync_rate: 100_000, version, ..SyncParams::default() };
        let mut a = director(params);
        a.start_sync(Role::Master, &DaemonConfig::new("sync0"), 1500).unwrap();
        let mut ms = 0;
        for (c, svc, pkts) in flows {
            let port = [80, 443, 8080][svc];
            let seq = [SYN, ACK, ACK, ACK | FIN, ACK];
            for f in seq.iter().take(pkts) {
                ms += 1;
                let _ = send(&mut a, t(ms), tcp(client(c), port, *f));
            }
        }
        let mut b = director(params);
        b.start_sync(Role::Backup, &DaemonConfig::new("sync0"), 1500).unwrap();
        run(&mut a, &mut b, ms, ms + 3_000);
        prop_assert_eq!(table(&b, t(ms + 3_000)), table(&a, t(ms + 3_000)));
    }
}

/// The sync protocol carries the forwarding method but no tunnel type (`ip_vs_sync.c`'s
/// records have no field for it): a backup tunnels a synced connection as its own server's
/// settings say — here IP-in-IP on the master and GRE with a checksum on the backup.
#[test]
fn a_synced_tunnel_connection_uses_the_backups_own_tunnel_type() {
    let tunnel_director = |tun: TunConfig| {
        let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(ip("192.0.2.1"));
        let mut d = lvs::director(DirectorConfig::default().port(port));
        d.set_gateway(Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
        let key = ServiceKey::tcp(ip(VIP), 9000);
        d.add_service(ServiceConfig::new(key, "rr")).unwrap();
        let rip = ip("192.0.2.11");
        d.add_dest(&key, RealServer::new(rip, 9000, FwdMethod::Tunnel, 1).with_tunnel(tun)).unwrap();
        d.set_neighbour(rip, Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
        d
    };
    let mut a = tunnel_director(TunConfig::IPIP);
    let mut b = tunnel_director(TunConfig::gre(TunCsum::Csum));
    a.start_sync(Role::Master, &DaemonConfig::new("sync0"), 1500).unwrap();
    b.start_sync(Role::Backup, &DaemonConfig::new("sync0"), 1500).unwrap();
    let c = client(1);
    let (v, f) = send(&mut a, t(10), tcp(c, 9000, SYN));
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    assert_eq!(f[14 + 9], 4, "the master's server: IP-in-IP");
    let _ = send(&mut a, t(20), tcp(c, 9000, ACK));
    let _ = send(&mut a, t(30), tcp(c, 9000, ACK));
    run(&mut a, &mut b, 100, 3_000);
    assert_eq!(table(&b, t(3_000)), table(&a, t(3_000)));
    let (v, f) = send(&mut b, t(4_000), tcp(c, 9000, ACK));
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    assert_eq!(f[14 + 9], 47, "the backup's server: GRE");
    assert_eq!(&f[34..38], &[0x80, 0x00, 0x08, 0x00], "with its checksum");
}

/// A synced tunnel connection whose server the backup does not have stays in its table unbound
/// (`ip_vs_proc_conn`), but `__ip_vs_get_out_rt` in tunnel mode (since GUE and GRE made the
/// tunnel type the server's) drops its packets once the TTL is checked: no server, no type. A
/// packet whose TTL runs out still gets "time exceeded" first.
#[test]
fn a_synced_tunnel_connection_without_its_server_on_the_backup_is_dropped() {
    let tunnel_director = |rip: &str| {
        let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(ip("192.0.2.1"));
        let mut d = lvs::director(DirectorConfig::default().port(port));
        d.set_gateway(Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
        let key = ServiceKey::tcp(ip(VIP), 9000);
        d.add_service(ServiceConfig::new(key, "rr")).unwrap();
        d.add_dest(&key, RealServer::new(ip(rip), 9000, FwdMethod::Tunnel, 1)).unwrap();
        d.set_neighbour(ip(rip), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
        d
    };
    let mut a = tunnel_director("192.0.2.11");
    let mut b = tunnel_director("192.0.2.12");
    a.start_sync(Role::Master, &DaemonConfig::new("sync0"), 1500).unwrap();
    b.start_sync(Role::Backup, &DaemonConfig::new("sync0"), 1500).unwrap();
    let c = client(1);
    for (ms, flags) in [(10, SYN), (20, ACK), (30, ACK)] {
        let (v, _) = send(&mut a, t(ms), tcp(c, 9000, flags));
        assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    }
    run(&mut a, &mut b, 100, 3_000);
    assert_eq!(table(&b, t(3_000)), table(&a, t(3_000)), "kept, unbound");
    let unavailable = lvs::core::Reason::DestUnavailable as usize;
    let before = b.drops()[unavailable];
    let (v, _) = send(&mut b, t(4_000), tcp(c, 9000, ACK));
    assert!(matches!(v, Verdict::Drop(lvs::core::Reason::DestUnavailable)), "{v:?}");
    assert_eq!(b.drops()[unavailable], before + 1);
    // TTL 1: the time-exceeded error goes back to the client before the missing server counts.
    let mut last_hop = tcp(c, 9000, ACK);
    last_hop[14 + 8] = 1;
    last_hop[24..26].copy_from_slice(&[0, 0]);
    let sum = last_hop[14..34].chunks(2).fold(0u32, |s, w| s + u32::from(u16::from_be_bytes([w[0], w[1]])));
    let sum = (sum & 0xffff) + (sum >> 16);
    last_hop[24..26].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
    let (v, f) = send(&mut b, t(4_010), last_hop);
    assert!(!matches!(v, Verdict::Drop(_)), "{v:?}");
    assert_eq!((f[14 + 9], f[34]), (1, 11), "ICMP time exceeded");
}
