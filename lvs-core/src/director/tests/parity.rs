//! Kernel parity, one regression per divergence of issue 11: each expectation is read from the
//! kernel's source (the function is named at each test), never from this library's output.

use super::*;

fn tcp_svc_with(d: &mut Director, key: ServiceKey, cfg: ServiceConfig, servers: &[(&str, FwdMethod, u32)]) {
    d.add_service(cfg).unwrap();
    for (a, fwd, w) in servers {
        d.add_dest(&key, RealServer::new(ip(a), 80, *fwd, *w)).unwrap();
    }
}

/// Runs every timer due up to `secs`, at its own deadline.
fn run_until(d: &mut Director, secs: u64) {
    let end = Instant::from_secs(secs);
    while let Some(t) = d.next_deadline().filter(|t| *t <= end) {
        d.tick(t);
    }
}

fn template(d: &Director, now: u64) -> ConnInfo {
    d.connections(Instant::from_secs(now)).into_iter().find(|c| c.template).unwrap()
}

/// Item 1. `ip_vs_conn_new` keeps the server's own family (`cp->daf`), which the tunnel
/// transmitter and `ip_vs_conn_seq_show` use: an IPv6 server behind an IPv4 VIP is reached in
/// an IPv6 outer header and listed as itself.
#[test]
fn a_mixed_family_tunnel_goes_to_the_servers_own_address() {
    let mut d = director();
    let rip = ip("2001:db8:2::11");
    d.add_service(ServiceConfig::new(svc(), "first")).unwrap();
    d.add_dest(&svc(), RealServer::new(rip, 80, FwdMethod::Tunnel, 1)).unwrap();
    let (v, f) = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    assert!(matches!(v, Verdict::Transmit { port: 1, dest: Some(_) }), "{v:?}");
    let out = f.data();
    assert_eq!(&out[12..14], &[0x86, 0xdd], "an IPv6 outer header");
    assert_eq!(out[14 + 6], 4, "carrying IPv4 (IP-in-IP)");
    assert_eq!(&out[14 + 24..14 + 40], &ip_bytes("2001:db8:2::11"));
    assert_eq!(d.connections(Instant::from_secs(1))[0].dest.addr, rip);
    // `ip_vs_genl_set_cmd` refuses mixed families while a sync daemon runs.
    let mut d = director();
    d.add_service(ServiceConfig::new(svc(), "first")).unwrap();
    d.start_sync(crate::sync::Role::Master, &crate::sync::DaemonConfig::new("eth0"), 1500).unwrap();
    assert_eq!(d.add_dest(&svc(), RealServer::new(rip, 80, FwdMethod::Tunnel, 1)), Err(Error::FamilyMismatch));
}

/// Item 2. `is_new_conn_expected` returns false for a connection with `cp->control`: a SYN on a
/// persistent service's TIME_WAIT connection reuses the entry (no new connection is counted).
#[test]
fn a_syn_on_a_controlled_time_wait_connection_reuses_it() {
    let mut d = director();
    let key = svc();
    tcp_svc_with(&mut d, key, ServiceConfig::new(key, "first").persistent(300), &[("192.0.2.11", FwdMethod::Masq, 1)]);
    to_time_wait(&mut d, client(1000), 1);
    assert_eq!(d.stats().counters().conns, 1);
    let (v, _) = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), SYN));
    assert!(matches!(v, Verdict::Transmit { dest: Some(_), .. }));
    assert_eq!(d.stats().counters().conns, 1, "no new connection");
    assert_eq!(d.conn_count(), 2, "the connection and its template");
    // Without control (no persistence) the same SYN is rescheduled: a second connection.
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Masq, 80);
    to_time_wait(&mut d, client(1000), 1);
    let _ = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(d.stats().counters().conns, 2);
}

/// SYN reuse order. `ip_vs_in_hook` only calls `ip_vs_conn_expire_now` on the old entry: its
/// timer fires after the packet, so the old entry still counts on its server while the new flow
/// is scheduled. With `-x 1`, the server the old entry keeps overloaded is not available.
#[test]
fn a_rescheduled_syn_is_scheduled_while_the_old_entry_still_counts() {
    let mut d = director();
    d.add_service(ServiceConfig::new(svc(), "first")).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Masq, 1).with_thresholds(1, 0)).unwrap();
    to_time_wait(&mut d, client(1000), 1);
    let (v, f) = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    assert_eq!((f.data()[34], f.data()[35]), (3, 3), "ICMP port unreachable: the only server is overloaded");
    assert_eq!(d.conn_count(), 0, "the old entry is gone after the packet");
    assert_eq!(counts(&d, &svc()), [(0, 0, 0)]);
}

/// SYN reuse order, the refusal. The old entry is only expired-now, so it is still hashed when
/// `ip_vs_leave` answers the SYN with `icmp_send`: the error passes LOCAL_OUT, where
/// `ip_vs_out_icmp` finds the old DR entry by its virtual address and port
/// (`ip_vs_conn_out_get`, non-MASQ branch) and `handle_response_icmp` counts it with
/// `ip_vs_out_stats` (5.10+). `__icmp_send` quotes the whole 40-byte SYN (room 576), so the
/// error is 20 + 8 + 40 = 68 bytes.
#[test]
fn a_refusal_after_a_rescheduled_syn_is_booked_on_the_old_entry() {
    let mut d = director();
    d.add_service(ServiceConfig::new(svc(), "first")).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1).with_thresholds(1, 0)).unwrap();
    let c = client(1000);
    // The input-only table (`tcp_states`): SYN → SYN_RECV, then FIN → TIME_WAIT.
    for flags in [SYN, FIN | ACK] {
        assert!(matches!(send(&mut d, 1, Tcp::new(c, (vip(), 80), flags)).0, Verdict::Transmit { .. }));
    }
    assert_eq!(d.connections(Instant::from_secs(1))[0].state, "TIME_WAIT");
    let server = |d: &Director| d.service(&svc()).unwrap().dests.dests().next().unwrap().stats().counters();
    let before = server(&d);
    assert_eq!((before.outpkts, before.outbytes), (0, 0));
    let (v, f) = send(&mut d, 2, Tcp::new(c, (vip(), 80), SYN));
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    assert_eq!((f.data()[34], f.data()[35]), (3, 3), "port unreachable: the old entry keeps the server overloaded");
    let after = server(&d);
    assert_eq!((after.outpkts, after.outbytes), (1, 68), "the error booked on the old entry's server");
    assert_eq!(after.inpkts, before.inpkts, "the refused SYN itself is not counted");
    assert_eq!(d.stats().counters().outpkts, 1);
    assert_eq!(d.conn_count(), 0);
    // A NAT entry is matched by its real server's address, which the quoted SYN does not
    // carry: nothing is booked.
    let mut d = director();
    d.add_service(ServiceConfig::new(svc(), "first")).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Masq, 1).with_thresholds(1, 0)).unwrap();
    to_time_wait(&mut d, c, 1);
    let before = d.stats().counters().outpkts;
    let (v, _) = send(&mut d, 2, Tcp::new(c, (vip(), 80), SYN));
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    assert_eq!(d.stats().counters().outpkts, before);
}

/// Item 3. `ip_vs_conn_expire`'s `expire_later` path sets `cp->timeout = 60*HZ` for an entry
/// that still controls connections; every later `ip_vs_conn_put` of the template re-arms it with
/// that timeout, not `-p`.
#[test]
fn a_template_that_still_controls_waits_60_s_and_keeps_that_timeout() {
    let mut d = director();
    let key = svc();
    tcp_svc_with(&mut d, key, ServiceConfig::new(key, "first").persistent(10), &[("192.0.2.11", FwdMethod::Route, 1)]);
    let c = client(1000);
    let _ = send(&mut d, 0, Tcp::new(c, (vip(), 80), SYN));
    let _ = send(&mut d, 0, Tcp::new(c, (vip(), 80), ACK)); // ESTABLISHED: 900 s.
    assert_eq!(template(&d, 0).expires_ms, 10_000);
    run_until(&mut d, 11);
    let left = template(&d, 11).expires_ms;
    assert!((58_000..=60_000).contains(&left), "re-armed for 60 s at t=10, not for 10 s: {left}");
    let _ = send(&mut d, 20, Tcp::new(client(1001), (vip(), 80), SYN));
    assert_eq!(template(&d, 20).expires_ms, 60_000, "used again: re-armed with its 60 s timeout");
}

/// Item 4. `ip_vs_control_assure_ct` runs from `set_tcp_state` on ESTABLISHED and from the UDP
/// transition on the OUTPUT direction only: a UDP template over DR stays NONE, a TCP template is
/// ASSURED once a controlled connection is established.
#[test]
fn templates_are_assured_only_by_an_established_or_answered_connection() {
    let mut d = director();
    let key = ServiceKey::Inet { proto: crate::addr::Proto::Udp, addr: vip(), port: 53 };
    d.add_service(ServiceConfig::new(key, "first").persistent(300)).unwrap();
    d.add_dest(&key, RealServer::new(ip("192.0.2.11"), 53, FwdMethod::Route, 1)).unwrap();
    for _ in 0..3 {
        let mut f = Frame::new(DEFAULT_HEADROOM, &udp(client(1000), (vip(), 53), b"q"));
        assert!(matches!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { .. }));
    }
    assert_eq!(template(&d, 1).state, "NONE");
    let mut d = director();
    let key = svc();
    tcp_svc_with(&mut d, key, ServiceConfig::new(key, "first").persistent(300), &[("192.0.2.11", FwdMethod::Route, 1)]);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    assert_eq!(template(&d, 1).state, "NONE");
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), ACK));
    assert_eq!(template(&d, 1).state, "ASSURED");
}

/// Item 5. `ip_vs_out_stats` counts only while `dest->flags & IP_VS_DEST_F_AVAILABLE`: replies
/// of a deleted NAT server are counted nowhere.
#[test]
fn replies_of_a_deleted_server_are_not_counted() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Masq, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    d.del_dest(&svc(), &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    let before = d.stats().counters();
    let mut t = Tcp::new((ip("192.0.2.11"), 80), client(1000), SYN | ACK);
    t.src_mac = rs_mac(1).0;
    let _ = send(&mut d, 2, t);
    assert_eq!(d.stats().counters(), before);
}

/// Item 6 and the re-created service. `ip_vs_trash_get_dest` matches a deleted server by its
/// service's protocol, address and port (or fwmark); `__ip_vs_update_dest` zeroes the counters
/// of a server bound to a service other than its old one.
#[test]
fn a_trashed_server_returns_only_to_a_service_with_its_key_and_counts_afresh_there() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    d.del_service(&svc()).unwrap();
    // Another service takes the freed slot; the same server there is a new one.
    let other = ServiceKey::tcp(vip(), 81);
    d.add_service(ServiceConfig::new(other, "first")).unwrap();
    d.add_dest(&other, RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    assert_eq!(counts(&d, &other), [(0, 0, 0)]);
    // The same service again: the old server comes back with its connection, counters zeroed.
    d.add_service(ServiceConfig::new(svc(), "first")).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    let (active, inactive, _) = counts(&d, &svc())[0];
    assert_eq!(active + inactive, 1, "its connection is bound to it again");
    let info = d.service(&svc()).unwrap();
    assert_eq!(info.dests.at(0).unwrap().stats().counters().conns, 0);
}

/// Deleting an idle server. `__ip_vs_del_dest` puts every deleted server in the trash;
/// `ip_vs_dest_trash_expire` (every 60 s) marks it idle and frees it 120 s later. Re-added in
/// time, it comes back with its counters.
#[test]
fn an_idle_deleted_server_waits_in_the_trash() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let c = client(1000);
    let _ = send(&mut d, 1, Tcp::new(c, (vip(), 80), SYN));
    run_until(&mut d, 62); // the connection is gone (SYN_RECV: 60 s)
    assert_eq!(d.conn_count(), 0);
    d.del_dest(&svc(), &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    let conns = |d: &Director| d.service(&svc()).unwrap().dests.at(0).unwrap().stats().counters().conns;
    assert_eq!(conns(&d), 1, "taken back from the trash");
    // Deleted at t=62: the timer runs at 122 (marks it idle), 182, and frees it at 242.
    d.del_dest(&svc(), &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    run_until(&mut d, 241);
    assert_eq!(d.dests.iter().count(), 1, "still in the trash at 241 s");
    run_until(&mut d, 243);
    assert_eq!(d.dests.iter().count(), 0, "freed 120 s after it was found idle");
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    assert_eq!(conns(&d), 0);
}

/// Item 7. `__ip_vs_get_out_rt` decrements the TTL before `ensure_mtu_is_adequate`: a TTL-1
/// packet that would not fit gets "time exceeded", not "fragmentation needed".
#[test]
fn an_expiring_tunnelled_packet_is_time_exceeded_before_too_big() {
    let mut d = director_with(DirectorConfig { tun_mtu: 1000, ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Tunnel, 80);
    let payload = [0u8; 1200];
    let mut t = Tcp::new(client(1000), (vip(), 80), SYN);
    t.payload = &payload;
    let mut bytes = t.build();
    let sum = u16::from_be_bytes([bytes[24], bytes[25]]);
    let fixed = crate::wire::csum::update16(sum, u16::from_be_bytes([bytes[22], 6]), u16::from_be_bytes([1, 6]));
    bytes[22] = 1;
    bytes[24..26].copy_from_slice(&fixed.to_be_bytes());
    verify_checksums(&bytes).unwrap();
    let mut f = Frame::new(DEFAULT_HEADROOM, &bytes);
    assert_eq!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { port: 0, dest: None });
    assert_eq!((f.data()[34], f.data()[35]), (11, 0), "time exceeded");
}

/// Item 9. `__ip_vs_update_dest` sets `last_weight` from the new weight whenever the server is
/// added (`add || udest->weight != 0`): re-added with weight 0 it has `last_weight` 0.
#[test]
fn a_server_re_added_with_weight_0_has_last_weight_0() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    d.del_dest(&svc(), &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 0)).unwrap();
    assert_eq!(d.service(&svc()).unwrap().dests.at(0).unwrap().last_weight(), 0);
    // An edit to weight 0 keeps the latest non-zero one.
    d.edit_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 3)).unwrap();
    d.edit_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 0)).unwrap();
    assert_eq!(d.service(&svc()).unwrap().dests.at(0).unwrap().last_weight(), 3);
}

/// Item 10. `ip_vs_check_template` re-hashes an invalid template with `vport = dport = 0xffff`
/// and `cport = 0`, without touching its timer: `-Lc` lists it so until it expires.
#[test]
fn an_invalidated_template_lingers_with_ports_65535() {
    let mut d = director();
    let key = persistent(&mut d, 300);
    let c = (ip("198.51.100.7"), 1000);
    let _ = send(&mut d, 0, Tcp::new(c, (vip(), 80), SYN));
    d.del_dest(&key, &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    let _ = send(&mut d, 5, Tcp::new((ip("198.51.100.9"), 2000), (vip(), 80), SYN));
    let rows = d.connections(Instant::from_secs(5));
    let old = rows.iter().find(|r| r.template && r.dest.addr == ip("192.0.2.11")).unwrap();
    assert_eq!((old.client.port, old.virt.port, old.dest.port), (0, 65535, 65535));
    assert_eq!(old.expires_ms, 295_000, "its timer is not restarted");
    let new = rows.iter().find(|r| r.template && r.dest.addr == ip("192.0.2.12")).unwrap();
    assert_eq!((new.virt.port, new.dest.port), (80, 80));
}

/// No service left. Since 5.7 IPVS registers its hooks only while a service exists: after the
/// last `-D` a surviving connection's segment reaches the director's own stack, which resets it.
#[test]
fn with_no_service_left_a_surviving_connection_is_reset() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    d.del_service(&svc()).unwrap();
    let (v, f) = send(&mut d, 2, Tcp::new(client(1000), (vip(), 80), ACK));
    assert_eq!(v, Verdict::Transmit { port: 0, dest: None });
    assert_eq!(f.data()[47] & flags::RST, flags::RST);
    assert_eq!(&f.data()[26..30], &[203, 0, 113, 100], "from the VIP");
}

/// Item 14. Caller-supplied times near the end of the clock saturate instead of overflowing.
#[test]
fn times_near_the_end_of_the_clock_do_not_overflow() {
    let mut d = director();
    let key = persistent(&mut d, 300);
    let end = Instant(u64::MAX - 1);
    let mut f = Tcp::new(client(1000), (vip(), 80), SYN).frame();
    assert!(matches!(d.process(end, &mut f), Verdict::Transmit { .. }));
    d.tick(Instant(u64::MAX));
    d.del_dest(&key, &Endpoint::new(ip("192.0.2.11"), 80)).unwrap();
    d.tick(Instant(u64::MAX));
    assert!(d.next_deadline().is_some());
}

/// Item 11. `ip_vs_sched_persist` gives a service on the FTP control port (21) the template
/// `<proto, caddr, 0, vaddr, 0, daddr, 0>`, which is also what a persistent port-0 service on the
/// same address looks up: the passive data connection a client opens to another port follows its
/// control connection's server, whatever the port-0 service's scheduler would have chosen.
#[test]
fn ftp_control_and_data_connections_share_a_port_0_template() {
    let mut d = director();
    let ftp = ServiceKey::tcp(vip(), 21);
    let any = ServiceKey::tcp(vip(), 0);
    d.add_service(ServiceConfig::new(ftp, "first").persistent(300)).unwrap();
    d.add_dest(&ftp, RealServer::new(ip("192.0.2.11"), 21, FwdMethod::Route, 1)).unwrap();
    d.add_service(ServiceConfig::new(any, "first").persistent(300)).unwrap();
    d.add_dest(&any, RealServer::new(ip("192.0.2.11"), 0, FwdMethod::Route, 1)).unwrap();
    d.add_dest(&any, RealServer::new(ip("192.0.2.12"), 0, FwdMethod::Route, 1)).unwrap();
    let c = ip("198.51.100.7");
    let _ = send(&mut d, 1, Tcp::new((c, 1000), (vip(), 21), SYN));
    let rows = d.connections(Instant::from_secs(1));
    let t = rows.iter().find(|r| r.template).unwrap();
    assert_eq!((t.virt.port, t.dest.port), (0, 0), "an FTP template keeps no ports");
    assert_eq!(rows.iter().find(|r| !r.template).unwrap().dest.port, 21, "the connection keeps its own");
    let (v, _) = send(&mut d, 2, Tcp::new((c, 1001), (vip(), 40000), SYN));
    assert!(matches!(v, Verdict::Transmit { .. }));
    let rows = d.connections(Instant::from_secs(2));
    assert_eq!(rows.iter().filter(|r| r.template).count(), 1, "one template for both services");
    let data = rows.iter().find(|r| !r.template && r.virt.port == 40000).unwrap();
    assert_eq!(data.dest.addr, ip("192.0.2.11"), "the control connection's server, not the scheduler's .12");
    // Another persistent port keeps its ports: a template of its own.
    let web = ServiceKey::tcp(vip(), 80);
    d.add_service(ServiceConfig::new(web, "first").persistent(300)).unwrap();
    d.add_dest(&web, RealServer::new(ip("192.0.2.13"), 8080, FwdMethod::Route, 1)).unwrap();
    let _ = send(&mut d, 3, Tcp::new((c, 1002), (vip(), 80), SYN));
    let rows = d.connections(Instant::from_secs(3));
    let t = rows.iter().find(|r| r.template && r.virt.port == 80).unwrap();
    assert_eq!(t.dest.port, 8080);
}

/// Item 11. `ip_vs_schedule` returns before scheduling a packet whose client port is
/// `FTPDATA` (20), on any service, persistent or not, with `*ignored = 1`: the packet is
/// accepted to the director's own stack and no connection is made.
#[test]
fn a_client_on_port_20_is_never_scheduled() {
    let mut d = director();
    add(&mut d, svc(), FwdMethod::Route, 80);
    let (v, _) = send(&mut d, 1, Tcp::new((ip("198.51.100.7"), 20), (vip(), 80), SYN));
    assert_eq!(v, Verdict::NotMine);
    let key = ServiceKey::Inet { proto: crate::addr::Proto::Udp, addr: vip(), port: 53 };
    d.add_service(ServiceConfig::new(key, "first").persistent(60)).unwrap();
    d.add_dest(&key, RealServer::new(ip("192.0.2.11"), 53, FwdMethod::Route, 1)).unwrap();
    let mut f = Frame::new(DEFAULT_HEADROOM, &udp((ip("198.51.100.7"), 20), (vip(), 53), b"q"));
    assert_eq!(d.process(Instant::from_secs(1), &mut f), Verdict::NotMine);
    assert_eq!(d.conn_count(), 0);
    assert_eq!(d.stats().counters().conns, 0);
    // From any other port the same packets are scheduled.
    let (v, _) = send(&mut d, 1, Tcp::new((ip("198.51.100.7"), 21), (vip(), 80), SYN));
    assert!(matches!(v, Verdict::Transmit { .. }));
}

/// Thresholds on edit. `__ip_vs_update_dest` clears the overload flag when the new `-x` is 0
/// or higher than the old one, and otherwise leaves the flag as it is: lowering `-x` below the
/// server's connections does not mark it overloaded. `ip_vs_bind_dest` does, when the next
/// connection bound to it brings its total to the threshold.
#[test]
fn an_edit_lowering_the_upper_threshold_marks_the_server_at_its_next_connection() {
    let mut d = director();
    let key = svc();
    tcp_svc_with(
        &mut d,
        key,
        ServiceConfig::new(key, "first"),
        &[("192.0.2.11", FwdMethod::Masq, 1), ("192.0.2.12", FwdMethod::Masq, 1)],
    );
    let total = |d: &Director| counts(d, &key).iter().map(|(a, i, _)| a + i).collect::<Vec<_>>();
    for port in [1000, 1001] {
        let _ = send(&mut d, 1, Tcp::new(client(port), (vip(), 80), SYN));
    }
    // `ip_vs_add_dest` links a new server at the head of the list: 192.0.2.12 comes first.
    assert_eq!(total(&d), [2, 0], "`first` keeps to the first server");
    let first = |x: u32| RealServer::new(ip("192.0.2.12"), 80, FwdMethod::Masq, 1).with_thresholds(x, 0);
    d.edit_dest(&key, first(1)).unwrap();
    let _ = send(&mut d, 2, Tcp::new(client(1002), (vip(), 80), SYN));
    assert_eq!(total(&d), [3, 0], "not overloaded by the edit: the next connection still goes there");
    let _ = send(&mut d, 2, Tcp::new(client(1003), (vip(), 80), SYN));
    assert_eq!(total(&d), [3, 1], "overloaded once that connection was bound");
    d.edit_dest(&key, first(0)).unwrap();
    let _ = send(&mut d, 3, Tcp::new(client(1004), (vip(), 80), SYN));
    assert_eq!(total(&d), [4, 1], "`-x 0` clears the flag at once");
}
