//! Director behaviour, one rule per test: control-plane validation, each forwarding method
//! byte by byte, the state machine's counters, timers, persistence, thresholds, fragments and
//! ICMP errors.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;

use super::*;
use crate::addr::Endpoint;
use crate::config::{list, ListOptions};
use crate::error::Error;
use crate::proto::tcp::flags;
use crate::testkit::{self, udp, verify_checksums, Tcp, DIRECTOR_MAC, GW_MAC};
use crate::wire;
use crate::wire::Frame;
use crate::wire::DEFAULT_HEADROOM;

const SYN: u8 = flags::SYN;
const ACK: u8 = flags::ACK;
const FIN: u8 = flags::FIN;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rs_mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, i])
}

/// The director's port: one MAC and address pair on both links.
fn port() -> PortConfig {
    PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(ip("192.0.2.1")).with_addr(ip("2001:db8:2::1"))
}

/// A director with `cfg` (two [`port`]s unless it names its own), the gateway behind port 0 and
/// three real servers behind port 1.
fn director_with(mut cfg: DirectorConfig) -> Director {
    if cfg.ports.is_empty() {
        cfg.ports = alloc::vec![port(); 2];
    }
    let mut d = Director::new(cfg, testkit::factory);
    let gw = Neighbour { mac: MacAddr(GW_MAC), port: 0 };
    d.set_gateway(Af::V4, gw);
    d.set_gateway(Af::V6, gw);
    for i in 1..=3u8 {
        d.set_neighbour(ip(&alloc::format!("192.0.2.1{i}")), Neighbour { mac: rs_mac(i), port: 1 });
        d.set_neighbour(ip(&alloc::format!("2001:db8:2::1{i}")), Neighbour { mac: rs_mac(i), port: 1 });
    }
    d
}

fn director() -> Director {
    director_with(DirectorConfig::default())
}

fn vip() -> IpAddr {
    ip("203.0.113.100")
}

fn svc() -> ServiceKey {
    ServiceKey::tcp(vip(), 80)
}

fn add(d: &mut Director, key: ServiceKey, fwd: FwdMethod, rport: u16) {
    d.add_service(ServiceConfig::new(key, "first")).unwrap();
    d.add_dest(&key, RealServer::new(ip("192.0.2.11"), rport, fwd, 1)).unwrap();
}

fn client(port: u16) -> (IpAddr, u16) {
    (ip("198.51.100.2"), port)
}

fn send(d: &mut Director, now: u64, t: Tcp<'_>) -> (Verdict, Frame) {
    let mut f = t.frame();
    let v = d.process(Instant::from_secs(now), &mut f);
    (v, f)
}

fn counts(d: &Director, key: &ServiceKey) -> Vec<(u32, u32, u32)> {
    d.service(key).unwrap().dests.dests().map(|x| (x.active(), x.inactive(), x.persist())).collect()
}

#[test]
fn control_errors_are_typed_and_change_nothing() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let before = list(&d, Instant::ZERO, ListOptions::Plain);
    let s = |k: ServiceKey, sched: &str| ServiceConfig::new(k, sched);
    assert_eq!(d.add_service(s(svc(), "first")), Err(Error::ServiceExists));
    assert_eq!(d.add_service(s(ServiceKey::tcp(vip(), 81), "nope")), Err(Error::UnknownScheduler("nope".into())));
    assert_eq!(d.add_service(s(ServiceKey::tcp(vip(), 0), "first")), Err(Error::PortZeroNotPersistent));
    assert_eq!(d.add_service(s(ServiceKey::Fwmark { mark: 0, af: Af::V4 }, "first")), Err(Error::ZeroFwmark));
    let mut v6_mask = s(ServiceKey::tcp(vip(), 81), "first");
    v6_mask.netmask = crate::service::Netmask::V6(24);
    assert_eq!(d.add_service(v6_mask), Err(Error::BadNetmask));
    assert_eq!(d.add_service(s(ServiceKey::tcp(vip(), 81), "first").persistent(0)), Err(Error::BadTimeout(0)));
    let rs = |a: &str, w| RealServer::new(ip(a), 80, FwdMethod::Route, w);
    assert_eq!(d.add_dest(&ServiceKey::tcp(vip(), 81), rs("192.0.2.12", 1)), Err(Error::NoSuchService));
    assert_eq!(d.add_dest(&svc(), rs("192.0.2.11", 1)), Err(Error::DestExists));
    assert_eq!(d.add_dest(&svc(), rs("192.0.2.12", 65536)), Err(Error::WeightOutOfRange(65536)));
    assert_eq!(d.add_dest(&svc(), rs("2001:db8::1", 1)), Err(Error::FamilyMismatch));
    assert_eq!(
        d.add_dest(&svc(), rs("192.0.2.12", 1).with_thresholds(2, 3)),
        Err(Error::BadThreshold { upper: 2, lower: 3 })
    );
    assert_eq!(d.edit_dest(&svc(), rs("192.0.2.12", 1)), Err(Error::NoSuchDest));
    assert_eq!(d.del_dest(&svc(), &Endpoint::new(ip("192.0.2.12"), 80)), Err(Error::NoSuchDest));
    assert_eq!(d.del_service(&ServiceKey::tcp(vip(), 81)), Err(Error::NoSuchService));
    assert_eq!(list(&d, Instant::ZERO, ListOptions::Plain), before);
    // A tunnelled server may be of the other family.
    assert!(d.add_dest(&svc(), RealServer::new(ip("2001:db8::1"), 80, FwdMethod::Tunnel, 1)).is_ok());
}

#[test]
fn daemon_commands_run_singly_and_in_batches() {
    use crate::sync::{DaemonConfig, Role};
    let mut d = director();
    let cfg = DaemonConfig::new("sync0");
    d.execute(&Command::StartDaemon(Role::Backup, cfg.clone())).unwrap();
    // execute gives a 1500-byte MTU: the backup's default limit is 1500 - 28.
    assert_eq!(d.sync_daemon(Role::Backup).map(|c| c.maxlen), Some(1472));
    assert_eq!(d.execute(&Command::StartDaemon(Role::Backup, cfg.clone())), Err(Error::DaemonRunning("backup")));
    // A batch is tried against the daemons that run: it may restart one...
    let other = DaemonConfig { syncid: 9, ..cfg.clone() };
    d.execute_all(&[Command::StopDaemon(Role::Backup), Command::StartDaemon(Role::Backup, other)]).unwrap();
    assert_eq!(d.sync_daemon(Role::Backup).map(|c| c.syncid), Some(9));
    // ...and one that fails anywhere changes nothing.
    let err = d
        .execute_all(&[
            Command::StartDaemon(Role::Master, cfg.clone()),
            Command::StopDaemon(Role::Master),
            Command::StopDaemon(Role::Master),
        ])
        .unwrap_err();
    assert_eq!(err, BatchError { index: Some(2), error: Error::NoDaemon("master") });
    assert!(d.sync_daemon(Role::Master).is_none());
    let err = d.execute_all(&[Command::Clear, Command::StartDaemon(Role::Backup, cfg)]).unwrap_err();
    assert_eq!(err, BatchError { index: Some(1), error: Error::DaemonRunning("backup") });
    assert_eq!(d.sync_daemon(Role::Backup).map(|c| c.syncid), Some(9));
    d.execute(&Command::StopDaemon(Role::Backup)).unwrap();
    assert_eq!(d.execute(&Command::StopDaemon(Role::Backup)), Err(Error::NoDaemon("backup")));
}

#[test]
fn dr_changes_only_the_macs_and_ttl() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let t = Tcp::new(client(1000), (vip(), 80), SYN);
    let input = t.build();
    let (v, f) = send(&mut d, 1, t);
    assert!(matches!(v, Verdict::Transmit { port: 1, dest: Some(_) }), "{v:?}");
    let out = f.data();
    assert_eq!(out.len(), input.len());
    assert_eq!(&out[0..6], &rs_mac(1).0);
    assert_eq!(&out[6..12], &DIRECTOR_MAC);
    assert_eq!(out[14 + 8], input[14 + 8] - 1, "TTL decremented");
    for (i, (a, b)) in out.iter().zip(&input).enumerate().skip(12) {
        if i != 22 && i != 24 && i != 25 {
            assert_eq!(a, b, "byte {i} must not change");
        }
    }
    verify_checksums(out).unwrap();
    assert_eq!(d.stats().counters().inpkts, 1);
}

#[test]
fn vlan_tags_are_kept() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let mut t = Tcp::new(client(1000), (vip(), 80), SYN);
    t.vlan = Some(42);
    let input = t.build();
    let (v, f) = send(&mut d, 1, t);
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(&f.data()[12..18], &input[12..18], "802.1Q tag untouched");
    verify_checksums(f.data()).unwrap();
}

#[test]
fn nat_rewrites_both_ways_and_restores_the_tuple() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Masq, 8080);
    let (v, f) = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    assert!(matches!(v, Verdict::Transmit { .. }));
    let m = wire::parse(f.data()).unwrap();
    assert_eq!((m.dst, m.dport, m.src, m.sport), (ip("192.0.2.11"), 8080, ip("198.51.100.2"), 1000));
    verify_checksums(f.data()).unwrap();
    // The server's reply comes back through us and leaves as VIP:80.
    let mut reply = Tcp::new((ip("192.0.2.11"), 8080), client(1000), SYN | ACK);
    reply.src_mac = rs_mac(1).0;
    reply.payload = b"hello";
    let (v, f) = send(&mut d, 1, reply);
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    let m = wire::parse(f.data()).unwrap();
    assert_eq!((m.src, m.sport, m.dst, m.dport), (vip(), 80, ip("198.51.100.2"), 1000));
    assert_eq!(&f.data()[0..6], &GW_MAC);
    verify_checksums(f.data()).unwrap();
    assert_eq!(d.stats().counters().outpkts, 1);
    // A reply that matches nothing is not ours.
    let mut stray = Tcp::new((ip("192.0.2.11"), 8080), client(999), ACK);
    stray.src_mac = rs_mac(1).0;
    assert_eq!(send(&mut d, 1, stray).0, Verdict::NotMine);
}

#[test]
fn nat_udp_zero_checksum_stays_zero() {
    let mut d = director();
    let key = ServiceKey::udp(vip(), 53);
    add(&mut d, key, FwdMethod::Masq, 5353);
    let mut bytes = udp(client(4000), (vip(), 53), b"query");
    let l4 = 14 + 20;
    bytes[l4 + 6] = 0;
    bytes[l4 + 7] = 0;
    let mut f = Frame::new(DEFAULT_HEADROOM, &bytes);
    assert!(matches!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { .. }));
    assert_eq!(&f.data()[l4 + 6..l4 + 8], &[0, 0]);
    assert_eq!(wire::parse(f.data()).unwrap().dport, 5353);
    verify_checksums(f.data()).unwrap();
    // With a checksum it is updated.
    let mut f = Frame::new(DEFAULT_HEADROOM, &udp(client(4001), (vip(), 53), b"query"));
    assert!(matches!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { .. }));
    verify_checksums(f.data()).unwrap();
}

#[test]
fn tun_encapsulates_and_enforces_the_mtu() {
    let mut d = director_with(DirectorConfig { tun_mtu: 1500, ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Tunnel, 80);
    let t = Tcp::new(client(1000), (vip(), 80), SYN);
    let input = t.build();
    let (v, f) = send(&mut d, 1, t);
    assert!(matches!(v, Verdict::Transmit { port: 1, .. }));
    let out = f.data();
    assert_eq!(out.len(), input.len() + 20);
    assert_eq!(&out[0..6], &rs_mac(1).0);
    let outer = &out[14..34];
    assert_eq!(outer[9], 4, "IP-in-IP");
    assert_eq!(&outer[12..16], &[192, 0, 2, 1]);
    assert_eq!(&outer[16..20], &[192, 0, 2, 11]);
    assert_eq!(&outer[4..6], &[0, 0], "ID 0 with DF");
    assert_eq!(outer[6] & 0x40, 0x40, "DF copied");
    assert_eq!(outer[8], input[22] - 1, "outer TTL = decremented inner TTL");
    assert_eq!(out[34 + 8], input[22] - 1);
    assert_eq!(&out[34 + 12..34 + 20], &input[26..34], "inner addresses untouched");
    verify_checksums(out).unwrap();
    // Too big with DF: the client learns the MTU less the tunnel header.
    let mut big = Tcp::new(client(1001), (vip(), 80), SYN);
    let payload = [0u8; 1460];
    big.payload = &payload;
    let (v, f) = send(&mut d, 1, big);
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    let icmp = &f.data()[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1480);
    verify_checksums(f.data()).unwrap();
    assert_eq!(d.drops()[Reason::MtuExceeded.index()], 1);
}

#[test]
fn unknown_neighbour_is_a_counted_drop() {
    let mut d = director();
    let key = svc();
    d.add_service(ServiceConfig::new(key, "first")).unwrap();
    d.add_dest(&key, RealServer::new(ip("192.0.2.99"), 80, FwdMethod::Route, 1)).unwrap();
    let (v, _) = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(v, Verdict::Drop(Reason::UnknownNeighbour));
    assert_eq!(d.drops()[Reason::UnknownNeighbour.index()], 1);
    // Once the application learns the neighbour, the same connection flows.
    d.set_neighbour(ip("192.0.2.99"), Neighbour { mac: rs_mac(9), port: 1 });
    let (v, _) = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), ACK));
    assert!(matches!(v, Verdict::Transmit { port: 1, .. }));
}

#[test]
fn each_port_sends_with_its_own_mac() {
    // A two-armed director: clients behind port 0, servers behind port 1, each with its MAC.
    let (client_side, server_side) = (MacAddr([2, 0, 0, 0, 0, 0xa0]), MacAddr([2, 0, 0, 0, 0, 0xb0]));
    let ports = alloc::vec![PortConfig::new(client_side), PortConfig::new(server_side).with_addr(ip("192.0.2.1"))];
    let mut d = director_with(DirectorConfig { ports, ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Masq, 8080);
    let (v, f) = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(v, Verdict::Transmit { port: 1, dest: d.service(&svc()).unwrap().dests.ids().first().copied() });
    assert_eq!((&f.data()[0..6], &f.data()[6..12]), (&rs_mac(1).0[..], &server_side.0[..]));
    let mut reply = Tcp::new((ip("192.0.2.11"), 8080), client(1000), SYN | ACK);
    reply.src_mac = rs_mac(1).0;
    let (v, f) = send(&mut d, 1, reply);
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    assert_eq!((&f.data()[0..6], &f.data()[6..12]), (&GW_MAC[..], &client_side.0[..]));
    // What the director answers itself leaves toward the client with the client side's MAC.
    let (v, f) = send(&mut d, 1, Tcp::new(client(1001), (vip(), 80), ACK));
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    assert_eq!(&f.data()[6..12], &client_side.0[..]);
}

#[test]
fn replies_and_answers_toward_a_missing_port_are_counted() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Masq, 8080);
    assert!(matches!(send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN)).0, Verdict::Transmit { port: 1, .. }));
    // The clients' gateway now sits behind a port the configuration does not have.
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 7 });
    let mut reply = Tcp::new((ip("192.0.2.11"), 8080), client(1000), SYN | ACK);
    reply.src_mac = rs_mac(1).0;
    assert_eq!(send(&mut d, 1, reply).0, Verdict::Drop(Reason::UnknownPort));
    // A stray segment stays dropped as such; the reset that cannot leave is counted too.
    assert_eq!(send(&mut d, 1, Tcp::new(client(1001), (vip(), 80), ACK)).0, Verdict::Drop(Reason::NotSyn));
    assert_eq!(d.drops()[Reason::UnknownPort.index()], 2);
    assert_eq!(d.drops()[Reason::NotSyn.index()], 1);
}

#[test]
fn a_frame_for_a_missing_port_is_a_counted_drop() {
    let mut d = director_with(DirectorConfig { ports: alloc::vec![port()], ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Route, 80);
    // 192.0.2.11 sits behind port 1, which this one-port director does not have.
    let (v, _) = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(v, Verdict::Drop(Reason::UnknownPort));
    assert_eq!(d.drops()[Reason::UnknownPort.index()], 1);
}

#[test]
fn stray_segments_are_reset_and_counted() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let (v, f) = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), ACK));
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    let m = wire::parse(f.data()).unwrap();
    assert_eq!((m.src, m.sport, m.dst, m.dport), (vip(), 80, ip("198.51.100.2"), 1000));
    assert_eq!(m.tcp_flags, flags::RST);
    verify_checksums(f.data()).unwrap();
    // A reset is never answered.
    let (v, _) = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), flags::RST));
    assert_eq!(v, Verdict::Drop(Reason::NotSyn));
    assert_eq!(d.drops()[Reason::NotSyn.index()], 2);
    assert_eq!(d.conn_count(), 0);
    // Not for a service at all: not ours.
    assert_eq!(send(&mut d, 1, Tcp::new(client(1000), (vip(), 81), SYN)).0, Verdict::NotMine);
}

#[test]
fn counters_follow_the_half_connection_state_machine() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(counts(&d, &svc()), [(1, 0, 0)], "SYN_RECV is active");
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), ACK));
    assert_eq!(counts(&d, &svc()), [(1, 0, 0)]);
    let _ = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), FIN | ACK));
    assert_eq!(counts(&d, &svc()), [(0, 1, 0)], "FIN_WAIT is inactive");
    let c = &d.connections(Instant::from_secs(2))[0];
    assert_eq!((c.state, c.expires_ms / 1000), ("FIN_WAIT", 120));
    d.tick(Instant::from_secs(100));
    assert_eq!(d.conn_count(), 1);
    d.tick(Instant::from_secs(123));
    assert_eq!(d.conn_count(), 0);
    assert_eq!(counts(&d, &svc()), [(0, 0, 0)]);
    assert_eq!(d.next_deadline().map(|t| t > Instant::from_secs(123)), Some(true), "estimator still runs");
}

/// A NAT handshake and close that leaves the connection of `c` in TIME_WAIT.
fn to_time_wait(d: &mut Director, c: (IpAddr, u16), now: u64) {
    let s = (ip("192.0.2.11"), 80);
    let from_rs = |flags| {
        let mut t = Tcp::new(s, c, flags);
        t.src_mac = rs_mac(1).0;
        t
    };
    for t in [
        Tcp::new(c, (vip(), 80), SYN),
        from_rs(SYN | ACK),
        Tcp::new(c, (vip(), 80), ACK),
        Tcp::new(c, (vip(), 80), FIN | ACK),
        from_rs(FIN | ACK),
        Tcp::new(c, (vip(), 80), ACK),
    ] {
        assert!(matches!(send(d, now, t).0, Verdict::Transmit { .. }));
    }
}

#[test]
fn a_syn_on_time_wait_is_rescheduled() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Masq, 80);
    let c = client(1000);
    to_time_wait(&mut d, c, 1);
    assert_eq!(d.connections(Instant::from_secs(1))[0].state, "TIME_WAIT");
    let _ = send(&mut d, 2, Tcp::new(c, (vip(), 80), SYN));
    assert_eq!(d.connections(Instant::from_secs(2))[0].state, "SYN_RECV");
    assert_eq!(d.stats().counters().conns, 2);
    assert_eq!(counts(&d, &svc()), [(1, 0, 0)]);
}

#[test]
fn deleted_server_lingers_until_its_connections_expire() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    d.del_dest(&svc(), &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    assert_eq!(d.service(&svc()).unwrap().dests.len(), 0);
    let (v, _) = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), ACK));
    assert_eq!(v, Verdict::Drop(Reason::DestUnavailable));
    assert_eq!(d.conn_count(), 1);
    // Taken back from the trash, with its connection.
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    assert_eq!(counts(&d, &svc()), [(1, 0, 0)]);
    assert!(matches!(send(&mut d, 3, Tcp::new(client(1000), (vip(), 80), ACK)).0, Verdict::Transmit { .. }));

    // With expire_nodest_conn the connection goes at once and the packet is scheduled afresh
    // (`ip_vs_in_hook`, 5.9+): a mid-stream ACK meets the director's reset, a retransmitted SYN
    // goes to a server that is still there.
    let mut d = director_with(DirectorConfig { expire_nodest_conn: true, ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    d.del_dest(&svc(), &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    let (v, f) = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), ACK));
    assert_eq!((v, f.data()[47] & flags::RST), (Verdict::Transmit { port: 0, dest: None }, flags::RST));
    assert_eq!(d.conn_count(), 0, "expire_nodest_conn drops the connection at once");
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    let (_, f) = send(&mut d, 3, Tcp::new(client(1001), (vip(), 80), SYN));
    assert_eq!(&f.data()[..6], &rs_mac(1).0);
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.12"), 80, FwdMethod::Route, 1)).unwrap();
    d.del_dest(&svc(), &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    let (v, f) = send(&mut d, 4, Tcp::new(client(1001), (vip(), 80), SYN));
    assert!(matches!(v, Verdict::Transmit { dest: Some(_), .. }), "{v:?}");
    assert_eq!(&f.data()[..6], &rs_mac(2).0, "the same SYN, scheduled to the server that is left");
}

fn persistent(d: &mut Director, timeout: u32) -> ServiceKey {
    let key = svc();
    d.add_service(ServiceConfig::new(key, "first").persistent(timeout).netmask(24)).unwrap();
    d.add_dest(&key, RealServer::new(ip("192.0.2.12"), 80, FwdMethod::Route, 1)).unwrap();
    d.add_dest(&key, RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    key
}

#[test]
fn templates_stick_and_outlive_their_connections_by_the_timeout() {
    let mut d = director();
    let key = persistent(&mut d, 300);
    let _ = send(&mut d, 0, Tcp::new((ip("198.51.100.7"), 1000), (vip(), 80), SYN));
    // Make the first server look better to the scheduler: the template still decides.
    d.edit_dest(&key, RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 0)).unwrap();
    let (v, f) = send(&mut d, 1, Tcp::new((ip("198.51.100.9"), 2000), (vip(), 80), SYN));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(&f.data()[0..6], &rs_mac(1).0, "same /24, same server, though it is quiesced");
    let rows = d.connections(Instant::from_secs(1));
    let t = rows.iter().find(|c| c.template).unwrap();
    // Only SYNs so far: no connection established, so the template is not assured yet.
    assert_eq!((t.client.addr, t.client.port, t.state), (ip("198.51.100.0"), 0, "NONE"));
    assert_eq!(counts(&d, &key), [(2, 0, 1), (0, 0, 0)]);
    // The connections expire after 60 s (SYN_RECV); the template waits for them, then 300 s.
    d.tick(Instant::from_secs(62));
    assert_eq!(d.conn_count(), 1);
    d.tick(Instant::from_secs(300));
    assert_eq!(d.conn_count(), 1, "re-armed when last used at t=1");
    d.tick(Instant::from_secs(302));
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn expire_quiescent_template_sends_clients_elsewhere() {
    let mut d = director_with(DirectorConfig { expire_quiescent_template: true, ..DirectorConfig::default() });
    let key = persistent(&mut d, 300);
    let _ = send(&mut d, 0, Tcp::new((ip("198.51.100.7"), 1000), (vip(), 80), SYN));
    d.edit_dest(&key, RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 0)).unwrap();
    let (_, f) = send(&mut d, 1, Tcp::new((ip("198.51.100.9"), 2000), (vip(), 80), SYN));
    assert_eq!(&f.data()[0..6], &rs_mac(2).0);
}

#[test]
fn thresholds_overload_and_recover_on_expiry() {
    let mut d = director();
    let key = svc();
    d.add_service(ServiceConfig::new(key, "first")).unwrap();
    d.add_dest(&key, RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1).with_thresholds(2, 1)).unwrap();
    for p in [1000, 1001] {
        assert!(matches!(send(&mut d, 1, Tcp::new(client(p), (vip(), 80), SYN)).0, Verdict::Transmit { .. }));
    }
    assert!(d.service(&key).unwrap().dests.at(0).unwrap().is_overloaded());
    let (v, f) = send(&mut d, 1, Tcp::new(client(1002), (vip(), 80), SYN));
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    assert_eq!((f.data()[34], f.data()[35]), (3, 3), "ICMP port unreachable");
    assert_eq!(&f.data()[26..30], &[203, 0, 113, 100], "from the address the client spoke to");
    verify_checksums(f.data()).unwrap();
    d.tick(Instant::from_secs(62));
    assert!(!d.service(&key).unwrap().dests.at(0).unwrap().is_overloaded());
}

#[test]
fn a_full_table_drops_new_flows_but_not_old_ones() {
    let mut d = director_with(DirectorConfig { max_conns: 2, ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Route, 80);
    for p in [1000, 1001] {
        assert!(matches!(send(&mut d, 1, Tcp::new(client(p), (vip(), 80), SYN)).0, Verdict::Transmit { .. }));
    }
    assert_eq!(send(&mut d, 1, Tcp::new(client(1002), (vip(), 80), SYN)).0, Verdict::Drop(Reason::TableFull));
    assert!(matches!(send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), ACK)).0, Verdict::Transmit { .. }));
    assert_eq!(counts(&d, &svc()), [(2, 0, 0)]);
}

/// A UDP datagram cut into a first fragment (with ports) and a later one.
fn fragments(src: (IpAddr, u16)) -> (Vec<u8>, Vec<u8>) {
    let whole = udp(src, (vip(), 53), &[7u8; 64]);
    let fix = |mut f: Vec<u8>, flags_off: u16, len: usize| {
        f.truncate(14 + len);
        f[16..18].copy_from_slice(&(len as u16).to_be_bytes());
        f[20..22].copy_from_slice(&flags_off.to_be_bytes());
        f[24] = 0;
        f[25] = 0;
        let c = wire::csum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    };
    let first = fix(whole.clone(), 0x2000, 20 + 8 + 32);
    let mut later = fix(whole.clone(), 5, 20 + 32);
    later[34..].copy_from_slice(&whole[14 + 28 + 8 + 24..14 + 28 + 8 + 56]);
    (first, later)
}

#[test]
fn later_fragments_follow_their_first() {
    let mut d = director();
    let key = ServiceKey::udp(vip(), 53);
    add(&mut d, key, FwdMethod::Route, 53);
    let (first, later) = fragments(client(4000));
    let mut f = Frame::new(DEFAULT_HEADROOM, &later);
    assert_eq!(d.process(Instant::from_secs(1), &mut f), Verdict::Drop(Reason::StrayFragment));
    let mut f = Frame::new(DEFAULT_HEADROOM, &first);
    assert!(matches!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { .. }));
    let mut f = Frame::new(DEFAULT_HEADROOM, &later);
    assert!(matches!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { port: 1, .. }));
    assert_eq!(&f.data()[0..6], &rs_mac(1).0);
    assert_eq!(wire::csum::checksum(&f.data()[14..34]), 0, "IPv4 header checksum still valid");
    assert_eq!(d.stats().counters().inpkts, 2);
}

#[test]
fn icmp_errors_follow_their_connection() {
    use etherparse::{icmpv4, Icmpv4Type, PacketBuilder};
    for fwd in [FwdMethod::Route, FwdMethod::Masq] {
        let mut d = director();
        add(&mut d, svc(), fwd, 8080);
        let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
        // A router near the client says our VIP:80 → client:1000 packet could not be delivered.
        let quoted = Tcp::new((vip(), 80), client(1000), SYN | ACK).build();
        let mut out = Vec::new();
        PacketBuilder::ethernet2(GW_MAC, DIRECTOR_MAC)
            .ipv4([198, 51, 100, 1], [203, 0, 113, 100], 60)
            .icmpv4(Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Host))
            .write(&mut out, &quoted[14..])
            .unwrap();
        let mut f = Frame::new(DEFAULT_HEADROOM, &out);
        let v = d.process(Instant::from_secs(2), &mut f);
        assert!(matches!(v, Verdict::Transmit { port: 1, dest: Some(_) }), "{fwd:?}: {v:?}");
        assert_eq!(&f.data()[0..6], &rs_mac(1).0);
        verify_checksums(f.data()).unwrap();
        if fwd == FwdMethod::Masq {
            let m = wire::parse(f.data()).unwrap();
            let e = m.icmp.unwrap();
            assert_eq!(m.dst, ip("192.0.2.11"));
            assert_eq!((e.src, e.sport), (ip("192.0.2.11"), 8080), "quoted packet translated");
        }
    }
}

#[test]
fn ipv6_dr_and_nat() {
    let v6vip = ip("2001:db8:113::100");
    for (fwd, rport) in [(FwdMethod::Route, 80), (FwdMethod::Masq, 8080)] {
        let mut d = director();
        let key = ServiceKey::tcp(v6vip, 80);
        d.add_service(ServiceConfig::new(key, "first")).unwrap();
        d.add_dest(&key, RealServer::new(ip("2001:db8:2::11"), rport, fwd, 1)).unwrap();
        let t = Tcp::new((ip("2001:db8:51::2"), 1000), (v6vip, 80), SYN);
        let input = t.build();
        let (v, f) = send(&mut d, 1, t);
        assert!(matches!(v, Verdict::Transmit { .. }), "{fwd:?}");
        assert_eq!(f.data()[14 + 7], input[14 + 7] - 1, "hop limit decremented");
        let m = wire::parse(f.data()).unwrap();
        let want = if fwd == FwdMethod::Masq { (ip("2001:db8:2::11"), 8080) } else { (v6vip, 80) };
        assert_eq!((m.dst, m.dport), want);
        verify_checksums(f.data()).unwrap();
    }
}

#[test]
fn ipv6_tunnel_wraps_in_ipv6() {
    let v6vip = ip("2001:db8:113::100");
    let mut d = director();
    let key = ServiceKey::tcp(v6vip, 80);
    d.add_service(ServiceConfig::new(key, "first")).unwrap();
    d.add_dest(&key, RealServer::new(ip("2001:db8:2::11"), 80, FwdMethod::Tunnel, 1)).unwrap();
    let t = Tcp::new((ip("2001:db8:51::2"), 1000), (v6vip, 80), SYN);
    let input = t.build();
    let (v, f) = send(&mut d, 1, t);
    assert!(matches!(v, Verdict::Transmit { port: 1, .. }), "{v:?}");
    let out = f.data();
    assert_eq!(out.len(), input.len() + 40);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    let outer = &out[14..54];
    assert_eq!(outer[6], 41, "IPv6-in-IPv6");
    assert_eq!(outer[7], input[14 + 7] - 1, "outer hop limit = decremented inner");
    assert_eq!(u16::from_be_bytes([outer[4], outer[5]]) as usize, input.len() - 14);
    assert_eq!(&outer[8..24], &ip_bytes("2001:db8:2::1"));
    assert_eq!(&outer[24..40], &ip_bytes("2001:db8:2::11"));
    assert_eq!(&out[54 + 8..54 + 40], &input[14 + 8..14 + 40], "inner addresses untouched");
}

fn ip_bytes(s: &str) -> [u8; 16] {
    s.parse::<core::net::Ipv6Addr>().unwrap().octets()
}

#[test]
fn nat_keeps_vlan_tags_both_ways() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Masq, 8080);
    let mut t = Tcp::new(client(1000), (vip(), 80), SYN);
    t.vlan = Some(7);
    let (v, f) = send(&mut d, 1, t);
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(&f.data()[12..16], &[0x81, 0x00, 0x00, 0x07]);
    let m = wire::parse(f.data()).unwrap();
    assert_eq!((m.l3, m.dst, m.dport), (18, ip("192.0.2.11"), 8080));
    verify_checksums(f.data()).unwrap();
    let mut r = Tcp::new((ip("192.0.2.11"), 8080), client(1000), SYN | ACK);
    r.src_mac = rs_mac(1).0;
    r.vlan = Some(7);
    let (v, f) = send(&mut d, 1, r);
    assert!(matches!(v, Verdict::Transmit { .. }));
    let m = wire::parse(f.data()).unwrap();
    assert_eq!((m.l3, m.src, m.sport), (18, vip(), 80));
    verify_checksums(f.data()).unwrap();
}

#[test]
fn one_packet_udp_keeps_no_entry_but_counts_connections() {
    let mut d = director();
    let key = ServiceKey::udp(vip(), 53);
    let mut c = ServiceConfig::new(key, "first");
    c.one_packet = true;
    d.add_service(c).unwrap();
    d.add_dest(&key, RealServer::new(ip("192.0.2.11"), 53, FwdMethod::Route, 1)).unwrap();
    for _ in 0..3 {
        let mut f = Frame::new(DEFAULT_HEADROOM, &udp(client(4000), (vip(), 53), b"q"));
        assert!(matches!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { .. }));
    }
    assert_eq!(d.conn_count(), 0);
    assert_eq!(d.stats().counters().conns, 3);
    assert_eq!(counts(&d, &key), [(0, 0, 0)]);
}

#[test]
fn zero_resets_counters_of_one_service_or_all() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    d.zero(Some(&svc())).unwrap();
    assert_eq!(d.service(&svc()).unwrap().stats.counters(), crate::stats::Counters::default());
    assert_eq!(d.stats().counters().conns, 1, "global counters untouched by a per-service zero");
    d.zero(None).unwrap();
    assert_eq!(d.stats().counters().conns, 0);
    assert_eq!(d.zero(Some(&ServiceKey::tcp(vip(), 9))), Err(Error::NoSuchService));
}

#[test]
fn malformed_and_foreign_frames() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let mut arp = Tcp::new(client(1000), (vip(), 80), SYN).build();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let mut f = Frame::new(DEFAULT_HEADROOM, &arp);
    assert_eq!(d.process(Instant::ZERO, &mut f), Verdict::NotMine);
    let mut short = Tcp::new(client(1000), (vip(), 80), SYN).build();
    short.truncate(30);
    let mut f = Frame::new(DEFAULT_HEADROOM, &short);
    assert_eq!(d.process(Instant::ZERO, &mut f), Verdict::Drop(Reason::Malformed));
    let msg: String = Reason::Malformed.as_str().into();
    assert_eq!(msg, "malformed");
}

mod properties {
    use alloc::vec;

    use proptest::prelude::*;

    use super::*;

    /// One step of a random run.
    #[derive(Clone, Debug)]
    enum Step {
        /// A client packet: client index, source port index, TCP flags.
        Client(u8, u8, u8),
        /// A real server's reply (NAT): server index, client index, port index, flags.
        Server(u8, u8, u8, u8),
        /// Time passes (seconds).
        Sleep(u16),
        /// `ipvsadm -e` of a server's weight.
        Weight(u8, u8),
        /// `ipvsadm -d` then, on the next such step, `-a` again.
        Toggle(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        let fl = prop::sample::select(vec![SYN, ACK, FIN | ACK, flags::RST, SYN | ACK, 0x18]);
        prop_oneof![
            4 => (0..4u8, 0..4u8, fl.clone()).prop_map(|(c, p, f)| Step::Client(c, p, f)),
            2 => (0..3u8, 0..4u8, 0..4u8, fl).prop_map(|(s, c, p, f)| Step::Server(s, c, p, f)),
            1 => prop::sample::select(vec![1u16, 5, 30, 70, 130, 400]).prop_map(Step::Sleep),
            1 => (0..3u8, 0..3u8).prop_map(|(s, w)| Step::Weight(s, w)),
            1 => (0..3u8).prop_map(Step::Toggle),
        ]
    }

    fn rs(i: u8, fwd: FwdMethod, w: u32) -> RealServer {
        RealServer::new(ip(&alloc::format!("192.0.2.1{}", i + 1)), 80, fwd, w).with_thresholds(3, 0)
    }

    /// [`Director::check_invariants`] as a property failure.
    fn check(d: &Director, now: Instant) -> Result<(), TestCaseError> {
        d.check_invariants(now).map_err(TestCaseError::fail)
    }

    fn run(fwd: FwdMethod, persist: bool, steps: &[Step]) -> Result<(), TestCaseError> {
        let mut d = director();
        let key = svc();
        let mut cfg = ServiceConfig::new(key, "first");
        if persist {
            cfg = cfg.persistent(60).netmask(24);
        }
        d.add_service(cfg).unwrap();
        for i in 0..3 {
            d.add_dest(&key, rs(i, fwd, 1)).unwrap();
        }
        let mut now = 1u64;
        let mut deleted = [false; 3];
        let mut flows: Vec<((u8, u8), [u8; 6])> = Vec::new();
        for s in steps {
            match *s {
                Step::Client(c, p, f) => {
                    let t =
                        Tcp::new((ip(&alloc::format!("198.51.100.{}", c + 2)), 1000 + u16::from(p)), (vip(), 80), f);
                    let (v, fr) = send(&mut d, now, t);
                    // While its connection lives, a flow keeps its server.
                    if let Verdict::Transmit { dest: Some(_), .. } = v {
                        let mac: [u8; 6] = fr.data()[0..6].try_into().unwrap();
                        let alive = d.conns.iter().any(|(_, x)| {
                            x.cport == 1000 + u16::from(p) && !x.is_template() && d.conns.addrs(x).caddr[3] == c + 2
                        });
                        if let Some((_, m)) = flows.iter().find(|(k, _)| *k == (c, p)) {
                            if f & SYN == 0 {
                                prop_assert_eq!(*m, mac);
                            }
                        }
                        flows.retain(|(k, _)| *k != (c, p));
                        if alive {
                            flows.push(((c, p), mac));
                        }
                    }
                }
                Step::Server(srv, c, p, f) => {
                    let mut t = Tcp::new(
                        (ip(&alloc::format!("192.0.2.1{}", srv + 1)), 80),
                        (ip(&alloc::format!("198.51.100.{}", c + 2)), 1000 + u16::from(p)),
                        f,
                    );
                    t.src_mac = rs_mac(srv + 1).0;
                    let _ = send(&mut d, now, t);
                }
                Step::Sleep(secs) => {
                    now += u64::from(secs);
                    let t = Instant::from_secs(now);
                    while let Some(dl) = d.next_deadline().filter(|dl| *dl <= t) {
                        d.tick(dl);
                    }
                    d.tick(t);
                    flows.retain(|((c, p), _)| {
                        d.conns.iter().any(|(_, x)| {
                            x.cport == 1000 + u16::from(*p) && !x.is_template() && d.conns.addrs(x).caddr[3] == c + 2
                        })
                    });
                }
                Step::Weight(i, w) if !deleted[i as usize] => d.edit_dest(&key, rs(i, fwd, u32::from(w))).unwrap(),
                Step::Weight(..) => {}
                Step::Toggle(i) => {
                    let r = rs(i, fwd, 1);
                    if deleted[i as usize] {
                        d.add_dest(&key, r).unwrap();
                    } else {
                        d.del_dest(&key, &r.endpoint).unwrap();
                    }
                    deleted[i as usize] = !deleted[i as usize];
                }
            }
            check(&d, Instant::from_secs(now))?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn counters_match_the_table_dr(steps in prop::collection::vec(step(), 1..80)) {
            run(FwdMethod::Route, false, &steps)?;
        }

        #[test]
        fn counters_match_the_table_nat(steps in prop::collection::vec(step(), 1..80)) {
            run(FwdMethod::Masq, false, &steps)?;
        }

        #[test]
        fn templates_agree_with_what_they_control(steps in prop::collection::vec(step(), 1..80)) {
            run(FwdMethod::Route, true, &steps)?;
        }

        #[test]
        fn nat_in_then_out_restores_the_clients_view(
            c in any::<[u8; 4]>(), cport in 1u16.., vport in 1u16.., rport in 1u16.., flags in any::<u8>(),
            payload in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let caddr = IpAddr::from(c);
            prop_assume!(caddr != vip() && !matches!(c, [192, 0, 2, _]));
            let mut d = director();
            let key = ServiceKey::tcp(vip(), vport);
            d.add_service(ServiceConfig::new(key, "first")).unwrap();
            d.add_dest(&key, RealServer::new(ip("192.0.2.11"), rport, FwdMethod::Masq, 1)).unwrap();
            let (v, f) = send(&mut d, 1, Tcp::new((caddr, cport), (vip(), vport), SYN));
            prop_assert!(matches!(v, Verdict::Transmit { .. }), "{:?}", v);
            let inb = wire::parse(f.data()).unwrap();
            prop_assert_eq!((inb.src, inb.sport, inb.dst, inb.dport), (caddr, cport, ip("192.0.2.11"), rport));
            verify_checksums(f.data()).map_err(TestCaseError::fail)?;
            let mut r = Tcp::new((inb.dst, inb.dport), (inb.src, inb.sport), flags & !flags::RST);
            r.src_mac = rs_mac(1).0;
            r.payload = &payload;
            let (v, f) = send(&mut d, 1, r);
            prop_assert!(matches!(v, Verdict::Transmit { .. }), "{:?}", v);
            let out = wire::parse(f.data()).unwrap();
            prop_assert_eq!((out.src, out.sport, out.dst, out.dport), (vip(), vport, caddr, cport));
            verify_checksums(f.data()).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), mark in 0u32..3) {
            let mut d = director();
            add(&mut d, svc(), FwdMethod::Masq, 8080);
            let mut f = Frame::new(DEFAULT_HEADROOM, &bytes);
            f.mark = mark;
            let v = d.process(Instant::from_secs(1), &mut f);
            if let Verdict::Drop(r) = v {
                prop_assert!(d.drops()[r.index()] > 0);
            }
        }

        #[test]
        fn mutated_frames_never_panic(
            t in prop::sample::select(vec![SYN, ACK, FIN]),
            flips in prop::collection::vec((0usize..80, any::<u8>()), 1..6),
            cut in 0usize..90,
            fwd in prop::sample::select(vec![FwdMethod::Route, FwdMethod::Masq, FwdMethod::Tunnel]),
        ) {
            let mut d = director();
            add(&mut d, svc(), fwd, 8080);
            let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
            let mut b = Tcp::new(client(1000), (vip(), 80), t).build();
            for (i, x) in flips {
                if let Some(v) = b.get_mut(i) {
                    *v ^= x;
                }
            }
            b.truncate(cut.max(1));
            let mut f = Frame::new(DEFAULT_HEADROOM, &b);
            let _ = d.process(Instant::from_secs(2), &mut f);
        }
    }
}

#[test]
fn passive_checks_note_a_refusing_server_and_a_retransmitted_syn() {
    let suspicions = |d: &mut Director| core::iter::from_fn(|| d.poll_suspect()).collect::<Vec<_>>();
    let rs11 = Endpoint::new(ip("192.0.2.11"), 80);
    // Off by default.
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    let _ = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), SYN));
    assert!(suspicions(&mut d).is_empty());
    // DR: the client sends its SYN again.
    let mut d = director_with(DirectorConfig { passive_checks: true, ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    assert!(suspicions(&mut d).is_empty(), "a first SYN says nothing");
    let _ = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(suspicions(&mut d), [Suspicion { service: svc(), server: rs11, symptom: Symptom::SynRetransmitted }]);
    // NAT: the server answers the SYN with a reset.
    let mut d = director_with(DirectorConfig { passive_checks: true, ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Masq, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    let mut rst = Tcp::new((ip("192.0.2.11"), 80), client(1000), flags::RST | ACK);
    rst.src_mac = rs_mac(1).0;
    let _ = send(&mut d, 1, rst);
    assert_eq!(suspicions(&mut d), [Suspicion { service: svc(), server: rs11, symptom: Symptom::SynReset }]);
}

mod defense;
mod parity;
mod sctp;
mod sip;
mod tun_mtu;
mod tunnel;

/// A burst answers exactly as its frames would one at a time, the kernel's one skb after
/// another, though `process_burst` probes every frame's tuple before processing any: here
/// frames in one burst create a NAT connection, answer it from the server, use it, close it,
/// and carry a stray reply and a frame that is no IP, over more frames than one probe pass holds.
#[test]
fn a_burst_answers_as_its_frames_one_by_one() {
    let build = || {
        let mut d = director();
        add(&mut d, svc(), FwdMethod::Masq, 8080);
        d
    };
    let (mut one, mut burst) = (build(), build());
    let reply = |port: u16, fl: u8| {
        let mut t = Tcp::new((ip("192.0.2.11"), 8080), client(port), fl);
        t.src_mac = rs_mac(1).0;
        t.frame()
    };
    let request = |port: u16, fl: u8| Tcp::new(client(port), (vip(), 80), fl).frame();
    let mut frames = Vec::new();
    for p in 1000..1020u16 {
        frames.extend([request(p, SYN), reply(p, SYN | ACK), request(p, ACK)]);
    }
    frames.push(Frame::new(DEFAULT_HEADROOM, &[0xff; 60]));
    frames.push(reply(999, ACK));
    for p in 1000..1010u16 {
        frames.extend([request(p, FIN | ACK), reply(p, FIN | ACK), request(p, ACK)]);
    }
    for round in 1..=2u64 {
        let now = Instant::from_secs(round);
        let mut singles = frames.clone();
        let expected: Vec<Verdict> = singles.iter_mut().map(|f| one.process(now, f)).collect();
        let mut burst_frames = frames.clone();
        let mut verdicts = alloc::vec![Verdict::NotMine; frames.len()];
        burst.process_burst(now, &mut burst_frames, &mut verdicts);
        assert_eq!(verdicts, expected, "round {round}");
        assert_eq!(burst_frames, singles, "round {round}");
        assert_eq!(burst.connections(now), one.connections(now), "round {round}");
        assert_eq!(burst.stats().counters(), one.stats().counters(), "round {round}");
    }
    assert!(one.connections(Instant::from_secs(2)).len() == 20);
}
