//! The flood defences, each expectation read from the kernel function the test names
//! (`update_defense_level`, `ip_vs_todrop`, `ip_vs_random_dropentry`, `todrop_entry`,
//! `tcp_timeout_change`), with pressure measured in free table entries.

use super::*;
use crate::director::defense::DefenseMode::{self, Always, Auto, Engaged, Off};

/// A DR director whose table holds `max` entries and is under pressure below `thresh` free
/// ones, with every strategy in `mode`.
fn defended(max: usize, thresh: usize, mode: DefenseMode) -> Director {
    let defense =
        Defense { amemthresh: thresh, drop_entry: mode, drop_packet: mode, secure_tcp: mode, ..Defense::default() };
    let mut d = director_with(DirectorConfig { max_conns: max, defense, ..DirectorConfig::default() });
    add(&mut d, svc(), FwdMethod::Route, 80);
    d
}

/// Client `i`'s address: one per connection, so ports never collide.
fn peer(i: u32) -> (IpAddr, u16) {
    (IpAddr::V4(core::net::Ipv4Addr::from(0x0a00_0000 + i)), 40_000)
}

/// `n` established connections (SYN, then ACKs until each has `pkts` incoming packets) from
/// clients `from..`, at second `now`.
fn establish(d: &mut Director, from: u32, n: u32, pkts: u32, now: u64) {
    for i in from..from + n {
        assert!(matches!(send(d, now, Tcp::new(peer(i), (vip(), 80), SYN)).0, Verdict::Transmit { .. }));
        for _ in 1..pkts {
            assert!(matches!(send(d, now, Tcp::new(peer(i), (vip(), 80), ACK)).0, Verdict::Transmit { .. }));
        }
    }
}

/// `n` half-open connections (a SYN each) from clients `from..`.
fn half_open(d: &mut Director, from: u32, n: u32, now: u64) -> usize {
    (from..from + n)
        .filter(|i| matches!(send(d, now, Tcp::new(peer(*i), (vip(), 80), SYN)).0, Verdict::Transmit { .. }))
        .count()
}

fn states(d: &Director, now: u64) -> Vec<&'static str> {
    d.connections(Instant::from_secs(now)).into_iter().map(|c| c.state).collect()
}

/// `update_defense_level`: each mode 0–3 with and without pressure, for all three strategies —
/// 0 stays off; 1 turns to 2 and acts under pressure, else stays 1 and idle; 2 acts under
/// pressure, else falls back to 1; 3 always acts. `drop_rate` is `amemthresh / (amemthresh -
/// availmem)` (3: `am_droprate`); the `secure_tcp` tables follow `sysctl_secure_tcp > 1`.
#[test]
fn levels_switch_at_the_threshold_as_update_defense_level_does() {
    // (mode, pressure) -> (mode after, acting)
    let cases = [
        (Off, false, Off, false),
        (Off, true, Off, false),
        (Auto, false, Auto, false),
        (Auto, true, Engaged, true),
        (Engaged, false, Auto, false),
        (Engaged, true, Engaged, true),
        (Always, false, Always, true),
        (Always, true, Always, true),
    ];
    for (mode, pressure, after, acting) in cases {
        // 100 entries, pressure below 40 free: 70 established (free 30) or 10 (free 90).
        let mut d = defended(100, 40, mode);
        establish(&mut d, 0, if pressure { 70 } else { 10 }, 9, 1);
        d.tick(Instant::from_secs(2));
        let s = d.defense();
        let what = alloc::format!("{mode:?} under pressure {pressure}");
        assert_eq!((s.drop_entry, s.dropping_entries), (after, acting), "drop_entry {what}");
        assert_eq!((s.secure_tcp, s.secure_tables), (after, acting), "secure_tcp {what}");
        let rate = match (mode, acting) {
            (Always, _) => 10,
            (_, true) => 40 / (40 - 30),
            _ => 0,
        };
        assert_eq!((s.drop_packet, s.drop_rate), (after, rate), "drop_packet {what}");
    }
}

/// The levels are evaluated every second (`DEFENSE_TIMER_PERIOD`), not on every packet, and
/// `next_deadline` asks for it while services exist.
#[test]
fn defense_work_runs_every_second() {
    let mut d = defended(100, 40, Auto);
    establish(&mut d, 0, 70, 9, 1);
    assert!(!d.defense().dropping_entries, "not before the first second");
    assert!(d.next_deadline().is_some_and(|t| t <= Instant::from_secs(2)));
    d.tick(Instant::from_nanos(1_999_999_999));
    assert!(!d.defense().dropping_entries);
    d.tick(Instant::from_secs(2));
    assert!(d.defense().dropping_entries);
}

/// `ip_vs_todrop`: one new connection in `drop_rate` is dropped — the counter starts at the
/// rate and the packet that brings it to zero is the one dropped.
#[test]
fn drop_packet_sheds_one_new_connection_in_drop_rate() {
    let mut d = defended(100, 40, Auto);
    d.set_defense(Defense { drop_entry: Off, secure_tcp: Off, ..d.config().defense });
    establish(&mut d, 0, 70, 9, 1);
    d.tick(Instant::from_secs(2));
    assert_eq!(d.defense().drop_rate, 4);
    let verdicts: Vec<bool> = (100..108)
        .map(|i| send(&mut d, 2, Tcp::new(peer(i), (vip(), 80), SYN)).0 == Verdict::Drop(Reason::DropPacket))
        .collect();
    assert_eq!(verdicts, [false, false, false, true, false, false, false, true]);
    assert_eq!(d.drops()[Reason::DropPacket.index()], 2);
    // Segments of established connections are never shed.
    assert!(matches!(send(&mut d, 2, Tcp::new(peer(0), (vip(), 80), ACK)).0, Verdict::Transmit { .. }));
}

/// `drop_packet` at 3 drops one in `am_droprate` whatever the pressure.
#[test]
fn drop_packet_always_uses_am_droprate() {
    let mut d = defended(100, 40, Off);
    d.set_defense(Defense { drop_packet: Always, am_droprate: 3, ..d.config().defense });
    let dropped = (0..9)
        .filter(|i| send(&mut d, 1, Tcp::new(peer(*i), (vip(), 80), SYN)).0 == Verdict::Drop(Reason::DropPacket))
        .count();
    assert_eq!(dropped, 3);
}

/// `ip_vs_random_dropentry` drops SYN_RECV (and SYNACK) entries on sight; `todrop_entry`
/// spares established entries that saw a packet in the last 60 s or carry more than 8 incoming
/// packets, and drops idle ones with fewer, once in as many visits as they have packets.
#[test]
fn drop_entry_drops_half_open_and_spares_live_established_entries() {
    let mut d = defended(64, 40, Auto);
    d.set_defense(Defense { secure_tcp: Off, drop_packet: Off, ..d.config().defense });
    establish(&mut d, 0, 30, 9, 1); // busy: more than 8 packets, never idle-dropped
    establish(&mut d, 100, 8, 2, 1); // live: 2 packets, but one every 10 s
    establish(&mut d, 200, 8, 2, 1); // idle: 2 packets, then silence
    assert_eq!(half_open(&mut d, 300, 10, 1), 10);
    let live_ack = |d: &mut Director, now| {
        for i in 100..108 {
            assert!(matches!(send(d, now, Tcp::new(peer(i), (vip(), 80), ACK)).0, Verdict::Transmit { .. }));
        }
    };
    for now in 2..=59 {
        if now % 10 == 0 {
            live_ack(&mut d, now);
        }
        d.tick(Instant::from_secs(now));
    }
    assert!(d.defense().dropping_entries);
    let left = states(&d, 59);
    let syn_recv = left.iter().filter(|s| **s == "SYN_RECV").count();
    assert!(syn_recv < 10, "half-open entries dropped before their 60 s");
    assert_eq!(left.len() - syn_recv, 46, "no established entry dropped before 60 s idle");
    assert_eq!(d.defense().entries_dropped, 10 - syn_recv as u64);
    for now in 60..=400 {
        if now % 10 == 0 {
            live_ack(&mut d, now);
        }
        d.tick(Instant::from_secs(now));
    }
    let alive = |d: &Director, range: core::ops::Range<u32>| {
        let conns = d.connections(Instant::from_secs(400));
        range.filter(|i| conns.iter().any(|c| c.client.addr == peer(*i).0)).count()
    };
    assert_eq!(alive(&d, 0..30), 30, "busy entries spared");
    assert_eq!(alive(&d, 100..108), 8, "live entries spared");
    assert_eq!(alive(&d, 200..208), 0, "idle lightly used entries dropped");
    assert_eq!(d.defense().entries_dropped, 18 - syn_recv as u64, "the rest of the half-open ones expired");
    d.check_invariants(Instant::from_secs(400)).unwrap();
}

/// Entries that control others and assured templates are spared; a template that controls
/// nothing and never saw its connection established goes (`ip_vs_random_dropentry`), and so
/// does the one a dropped half-open connection leaves controlling nothing
/// (`ip_vs_conn_expire`).
#[test]
fn drop_entry_takes_unassured_templates_with_their_connections() {
    let defense = Defense { amemthresh: 1 << 10, secure_tcp: Off, ..Defense::default() };
    let mut d = director_with(DirectorConfig { max_conns: 64, defense, ..DirectorConfig::default() });
    d.add_service(ServiceConfig::new(svc(), "first").persistent(300)).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    establish(&mut d, 0, 4, 9, 1); // four assured templates, each with its connection
    assert_eq!(half_open(&mut d, 100, 4, 1), 4); // four templates still NONE
    for now in 2..=59 {
        d.tick(Instant::from_secs(now));
    }
    let conns = d.connections(Instant::from_secs(59));
    let count =
        |template: bool, state: &str| conns.iter().filter(|c| c.template == template && c.state == state).count();
    assert_eq!((count(true, "ASSURED"), count(false, "ESTABLISHED")), (4, 4), "{conns:?}");
    assert_eq!(count(true, "NONE"), count(false, "SYN_RECV"), "a template goes with its last connection: {conns:?}");
    assert!(count(false, "SYN_RECV") < 4, "{conns:?}");
    d.check_invariants(Instant::from_secs(59)).unwrap();
}

/// Beyond the kernel (whose table has no fixed size): while `drop_entry` acts, a new
/// connection that finds the table full replaces a half-open entry; a table full of
/// established entries still refuses it.
#[test]
fn a_full_table_makes_room_from_half_open_entries_while_drop_entry_acts() {
    let mut d = defended(8, 4, Auto);
    establish(&mut d, 0, 4, 9, 1);
    assert_eq!(half_open(&mut d, 100, 4, 1), 4);
    assert_eq!(send(&mut d, 1, Tcp::new(peer(200), (vip(), 80), SYN)).0, Verdict::Drop(Reason::TableFull));
    d.tick(Instant::from_secs(2));
    assert!(d.defense().dropping_entries);
    let room = d.conn_count() < 8;
    assert!(matches!(send(&mut d, 2, Tcp::new(peer(201), (vip(), 80), SYN)).0, Verdict::Transmit { .. }));
    assert!(room || d.defense().entries_replaced == 1);
    let est = d.connections(Instant::from_secs(2)).into_iter().filter(|c| c.state == "ESTABLISHED").count();
    assert_eq!(est, 4, "established entries are never replaced");
    let mut d = defended(8, 4, Auto);
    d.set_defense(Defense { drop_packet: Off, ..d.config().defense });
    establish(&mut d, 0, 8, 2, 1);
    d.tick(Instant::from_secs(2));
    assert_eq!(send(&mut d, 2, Tcp::new(peer(200), (vip(), 80), SYN)).0, Verdict::Drop(Reason::TableFull));
    d.check_invariants(Instant::from_secs(2)).unwrap();
}

/// `tcp_timeout_change` puts `tcp_states_dos` in force: a DR SYN waits in SYNACK (the
/// INPUT-ONLY row), a NAT client's ACK leaves SYN_RECV only once the server answered (INPUT and
/// OUTPUT rows); the timeouts stay `tcp_timeouts` (SYNACK 120 s, SYN_RECV 60 s).
#[test]
fn secure_tcp_steps_through_the_dos_tables_with_the_same_timeouts() {
    let mut d = defended(100, 40, Off);
    d.set_defense(Defense { secure_tcp: Always, ..d.config().defense });
    assert!(d.defense().secure_tables);
    let _ = send(&mut d, 1, Tcp::new(peer(1), (vip(), 80), SYN));
    let c = d.connections(Instant::from_secs(1));
    assert_eq!((c[0].state, c[0].expires_ms), ("SYNACK", 120_000));
    let _ = send(&mut d, 1, Tcp::new(peer(1), (vip(), 80), ACK));
    assert_eq!(states(&d, 1), ["ESTABLISHED"]);

    let mut d = director_with(DirectorConfig {
        defense: Defense { secure_tcp: Always, drop_entry: Off, drop_packet: Off, ..Defense::default() },
        ..DirectorConfig::default()
    });
    d.set_defense(d.config().defense);
    add(&mut d, svc(), FwdMethod::Masq, 80);
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), SYN));
    let _ = send(&mut d, 1, Tcp::new(client(1000), (vip(), 80), ACK));
    let c = d.connections(Instant::from_secs(1));
    assert_eq!((c[0].state, c[0].expires_ms), ("SYN_RECV", 60_000), "INPUT ack from SYN_RECV stays");
    let mut synack = Tcp::new((ip("192.0.2.11"), 80), client(1000), SYN | ACK);
    synack.src_mac = rs_mac(1).0;
    let _ = send(&mut d, 1, synack);
    assert_eq!(states(&d, 1), ["SYNACK"], "OUTPUT syn from SYN_RECV");
    let mut ack = Tcp::new((ip("192.0.2.11"), 80), client(1000), ACK);
    ack.src_mac = rs_mac(1).0;
    let _ = send(&mut d, 1, ack);
    assert_eq!(states(&d, 1), ["ESTABLISHED"], "OUTPUT ack from SYNACK");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever the modes and however the flood comes, established flows that keep
        /// talking are forwarded to their server throughout, and the bookkeeping holds.
        #[test]
        fn established_flows_survive_any_flood(
            modes in proptest::collection::vec(0u8..4, 3),
            bursts in proptest::collection::vec((0u32..400, 1u64..5), 1..12),
            thresh in 8usize..200,
        ) {
            let mode = |i: usize| DefenseMode::from_u8(modes[i]).unwrap();
            let defense = Defense {
                amemthresh: thresh,
                drop_entry: mode(0),
                drop_packet: mode(1),
                secure_tcp: mode(2),
                ..Defense::default()
            };
            let mut d = director_with(DirectorConfig { max_conns: 256, defense, ..DirectorConfig::default() });
            add(&mut d, svc(), FwdMethod::Route, 80);
            establish(&mut d, 0, 16, 3, 1);
            let mut now = 1;
            let mut spoof = 1_000u32;
            for (n, gap) in bursts {
                for _ in 0..n {
                    let _ = send(&mut d, now, Tcp::new(peer(spoof), (vip(), 80), SYN));
                    spoof += 1;
                }
                for _ in 0..gap {
                    now += 1;
                    d.tick(Instant::from_secs(now));
                    for i in 0..16 {
                        let (v, _) = send(&mut d, now, Tcp::new(peer(i), (vip(), 80), ACK));
                        prop_assert!(matches!(v, Verdict::Transmit { dest: Some(_), .. }), "flow {} at {}: {:?}", i, now, v);
                    }
                }
                d.check_invariants(Instant::from_secs(now)).map_err(TestCaseError::fail)?;
            }
        }
    }
}

/// A service's `max_conn` counts the connections its servers hold; beyond it new connections
/// are dropped and counted, and room comes back as connections end.
#[test]
fn service_max_conn_drops_and_counts_new_connections() {
    let mut d = director();
    d.add_service(ServiceConfig::new(svc(), "first").max_conn(3)).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1)).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.12"), 80, FwdMethod::Route, 1)).unwrap();
    assert_eq!(half_open(&mut d, 0, 3, 1), 3);
    assert_eq!(send(&mut d, 1, Tcp::new(peer(3), (vip(), 80), SYN)).0, Verdict::Drop(Reason::ServiceConnLimit));
    assert!(matches!(send(&mut d, 1, Tcp::new(peer(0), (vip(), 80), ACK)).0, Verdict::Transmit { .. }));
    assert_eq!(d.drops()[Reason::ServiceConnLimit.index()], 1);
    d.tick(Instant::from_secs(62)); // SYN_RECV lasts 60 s
    assert!(matches!(send(&mut d, 62, Tcp::new(peer(3), (vip(), 80), SYN)).0, Verdict::Transmit { .. }));
}

/// A real server's `max_conn` refuses a new connection once its active and inactive ones reach
/// it (DPVS's `dp_vs_conn_bind_dest`), persistent clients included, where `-x` would only make
/// the scheduler pass it by.
#[test]
fn server_max_conn_refuses_even_persistent_clients() {
    let mut d = director();
    d.add_service(ServiceConfig::new(svc(), "first").persistent(300)).unwrap();
    d.add_dest(&svc(), RealServer::new(ip("192.0.2.11"), 80, FwdMethod::Route, 1).with_max_conn(2)).unwrap();
    let c = |port| (ip("198.51.100.2"), port);
    for port in [1000, 1001] {
        assert!(matches!(send(&mut d, 1, Tcp::new(c(port), (vip(), 80), SYN)).0, Verdict::Transmit { .. }));
    }
    assert_eq!(send(&mut d, 1, Tcp::new(c(1002), (vip(), 80), SYN)).0, Verdict::Drop(Reason::DestConnLimit));
    assert_eq!(d.drops()[Reason::DestConnLimit.index()], 1);
    assert_eq!(counts(&d, &svc()), [(2, 0, 1)]);
    d.check_invariants(Instant::from_secs(1)).unwrap();
}
