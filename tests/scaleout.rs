//! Directors that scale out behind ECMP routing (issue 18): with `mh` or `sh` and the same
//! configuration, two directors choose the same real server for every flow whatever traffic
//! each has seen before — the kernel's `ip_vs_mh.c` and `ip_vs_sh.c` hash with fixed keys and
//! fill their tables from the configuration alone — including after the same server is added
//! or removed on both; and with `ServiceConfig::midflow_hash` a flow that the routers move to
//! the other director mid-way (its next segment an ACK that finds no connection) goes to that
//! same server. Without the option, or with a scheduler that counts connections, the other
//! director answers as the kernel's does without `sloppy_tcp`: with a reset
//! (`tcp_conn_schedule` schedules only a SYN).

use std::net::IpAddr;

use lvs::core::addr::{Af, ServiceKey};
use lvs::core::config::{list, restore, save, ListOptions};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::service::{SchedFlags, ServiceConfig};
use lvs::core::testkit::{Tcp, DIRECTOR_MAC, GW_MAC};
use lvs::core::wire::Frame;
use lvs::core::{Error, PortConfig, Reason};
use lvs::{Director, DirectorConfig, Instant, Verdict};
use proptest::prelude::*;

const VIP: [u8; 4] = [203, 0, 113, 100];
/// Servers the scenarios may add: at most this many.
const SERVERS: u8 = 8;

fn vip() -> IpAddr {
    IpAddr::from(VIP)
}

fn rip(i: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, 11 + i])
}

fn rs_mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 1, 11 + i]
}

fn client(c: u16) -> (IpAddr, u16) {
    let [hi, lo] = c.to_be_bytes();
    (IpAddr::from([198, 51, hi, lo]), 1024 + c)
}

/// The server a frame went to, by its destination MAC; `None` when it went elsewhere.
fn server_of(frame: &Frame) -> Option<u8> {
    let mac = frame.data().get(..6)?;
    (0..SERVERS).find(|i| rs_mac(*i) == mac)
}

/// One director with a service on `VIP:80` and seeds of its own (each director of a cluster
/// draws its own: the hashing schedulers do not use them).
fn director(sched: &str, sched_flags: u8, midflow: bool, seed: u64) -> Director {
    let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(IpAddr::from([192, 0, 2, 1]));
    let cfg =
        DirectorConfig { hash_seeds: [seed, !seed, seed ^ 1, seed ^ 2], rng_seed: seed, ..DirectorConfig::default() };
    let mut d = Director::new(cfg.port(port), lvs::sched::by_name);
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
    for i in 0..SERVERS {
        d.set_neighbour(rip(i), Neighbour { mac: MacAddr(rs_mac(i)), port: 0 });
    }
    let mut svc = ServiceConfig::new(ServiceKey::tcp(vip(), 80), sched);
    svc.sched_flags = SchedFlags(sched_flags);
    svc.midflow_hash = midflow;
    d.add_service(svc).unwrap();
    d
}

/// A client segment to the VIP through `d`: the verdict and the server it went to.
fn send(d: &mut Director, now: u64, c: u16, f: u8) -> (Verdict, Option<u8>) {
    let mut frame = Tcp::new(client(c), (vip(), 80), f).frame();
    let v = d.process(Instant::from_secs(now), &mut frame);
    let to = match v {
        Verdict::Transmit { dest: Some(_), .. } => server_of(&frame),
        _ => None,
    };
    (v, to)
}

/// A change made to both directors, in the same order (as one configuration file, or one
/// management system, drives them all).
#[derive(Clone, Debug)]
enum Change {
    Add(u8, u32),
    Remove(u8),
    Weight(u8, u32),
}

fn apply(d: &mut Director, c: &Change) {
    let key = ServiceKey::tcp(vip(), 80);
    // A change the director refuses (a server present already, or absent) is refused on both.
    let _ = match c {
        Change::Add(i, w) => d.add_dest(&key, RealServer::new(rip(*i), 80, FwdMethod::Route, *w)).map(drop),
        Change::Remove(i) => d.del_dest(&key, &lvs::core::addr::Endpoint::new(rip(*i), 80)),
        Change::Weight(i, w) => d.edit_dest(&key, RealServer::new(rip(*i), 80, FwdMethod::Route, *w)),
    };
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0..SERVERS, 0..4u32).prop_map(|(i, w)| Change::Add(i, w)),
        (0..SERVERS).prop_map(Change::Remove),
        (0..SERVERS, 0..4u32).prop_map(|(i, w)| Change::Weight(i, w)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two directors with the same rules, each after its own traffic, agree on every new flow:
    /// a SYN on one and the same flow's ACK on the other go to the same server, before and
    /// after each change made on both.
    #[test]
    fn two_directors_choose_the_same_server(
        mh in any::<bool>(),
        sched_flags in 0..4u8,
        setup in prop::collection::vec((0..SERVERS, 1..4u32), 1..6),
        changes in prop::collection::vec(change(), 0..6),
        history in prop::collection::vec((any::<bool>(), 0..2000u16), 0..40),
        seeds in (any::<u64>(), any::<u64>()),
    ) {
        let sched = if mh { "mh" } else { "sh" };
        let mut a = director(sched, sched_flags, true, seeds.0);
        let mut b = director(sched, sched_flags, true, seeds.1);
        for (i, w) in &setup {
            apply(&mut a, &Change::Add(*i, *w));
            apply(&mut b, &Change::Add(*i, *w));
        }
        // Each director sees other clients first: its counters differ from the other's.
        for (on_a, c) in &history {
            let d = if *on_a { &mut a } else { &mut b };
            let _ = send(d, 1, 10_000 + *c, flags::SYN);
        }
        let mut next = 0u16;
        for round in 0..=changes.len() {
            if let Some(c) = round.checked_sub(1).and_then(|r| changes.get(r)) {
                apply(&mut a, c);
                apply(&mut b, c);
            }
            for _ in 0..32 {
                next += 1;
                let (va, on_a) = send(&mut a, 2, next, flags::SYN);
                let (vb, on_b) = send(&mut b, 2, next, flags::ACK);
                prop_assert_eq!(on_a, on_b, "flow {} (round {}): {:?} on A, {:?} on B", next, round, va, vb);
                // And a flow that starts on B goes where A sends its ACK.
                next += 1;
                let (_, on_b) = send(&mut b, 2, next, flags::SYN);
                let (_, on_a) = send(&mut a, 2, next, flags::ACK);
                prop_assert_eq!(on_a, on_b);
            }
        }
    }
}

/// The established flow stays on its server on the director that scheduled it, and on the
/// other director the moved flow finds the connection its first segment made there.
#[test]
fn a_moved_flow_keeps_its_server_after_a_server_is_added() {
    let (mut a, mut b) = (director("mh", 0, true, 1), director("mh", 0, true, 2));
    for d in [&mut a, &mut b] {
        for i in 0..4 {
            apply(d, &Change::Add(i, 1));
        }
    }
    let flows: Vec<(u16, Option<u8>)> = (1..=200).map(|c| (c, send(&mut a, 1, c, flags::SYN).1)).collect();
    assert!(flows.iter().all(|(_, s)| s.is_some()));
    // The moved flows' first segment on B: the same server as on A.
    for (c, s) in &flows {
        assert_eq!(send(&mut b, 2, *c, flags::ACK).1, *s, "flow {c}");
    }
    // A server added on both: established flows stay where they are on either director.
    for d in [&mut a, &mut b] {
        apply(d, &Change::Add(4, 1));
    }
    for (c, s) in &flows {
        assert_eq!(send(&mut a, 3, *c, flags::ACK).1, *s, "flow {c} on A");
        assert_eq!(send(&mut b, 3, *c, flags::ACK).1, *s, "flow {c} on B");
    }
}

/// Without the option, or for a RST, the second director does what the kernel's does without
/// `sloppy_tcp`: no connection, a reset to the client.
#[test]
fn only_hashing_services_with_the_option_schedule_a_mid_flow_segment() {
    for sched in ["mh", "sh"] {
        let mut d = director(sched, 0, false, 1);
        apply(&mut d, &Change::Add(0, 1));
        let (v, to) = send(&mut d, 1, 1, flags::ACK);
        assert_eq!(to, None, "{sched}: {v:?}");
        assert_eq!(d.conn_count(), 0, "{sched}");
    }
    let mut d = director("mh", 0, true, 1);
    apply(&mut d, &Change::Add(0, 1));
    let (v, _) = send(&mut d, 1, 1, flags::RST | flags::ACK);
    assert!(!matches!(v, Verdict::Transmit { dest: Some(_), .. }), "{v:?}");
    assert_eq!(d.conn_count(), 0);
    // A FIN is mid-flow too.
    assert_eq!(send(&mut d, 1, 2, flags::FIN | flags::ACK).1, Some(0));
    assert_eq!(d.drops()[Reason::NoDest.index()], 0);
}

/// `midflow_hash` only where the directors can agree on a moved flow's server: with `mh` or
/// `sh` (a counting scheduler chooses by each director's own history) and DR or TUN servers
/// (a NAT or FullNAT server's replies, a local server's stack, stay with the director that
/// began the flow). Anything else is refused, whichever order the settings come in, and the
/// refused call changes nothing.
#[test]
fn midflow_hash_is_refused_where_directors_cannot_agree() {
    let key = ServiceKey::tcp(vip(), 80);
    let mut d = Director::new(DirectorConfig::default(), lvs::sched::by_name);
    for sched in ["wlc", "rr", "lc", "dh", "lblc"] {
        let err = d.add_service(ServiceConfig::new(key, sched).midflow_hash()).unwrap_err();
        assert!(matches!(err, Error::MidflowHash(_)), "{sched}: {err}");
        assert_eq!(err.errno(), 22, "EINVAL");
    }
    assert_eq!(d.services().count(), 0);
    d.add_service(ServiceConfig::new(key, "mh").midflow_hash()).unwrap();
    for fwd in [FwdMethod::Masq, FwdMethod::FullNat, FwdMethod::Local] {
        let err = d.add_dest(&key, RealServer::new(rip(0), 80, fwd, 1)).unwrap_err();
        assert!(matches!(err, Error::MidflowHash(_)), "{fwd:?}: {err}");
    }
    for (i, fwd) in [(1, FwdMethod::Route), (2, FwdMethod::Tunnel)] {
        d.add_dest(&key, RealServer::new(rip(i), 80, fwd, 1)).unwrap();
    }
    // A DR server edited into NAT is refused too.
    let err = d.edit_dest(&key, RealServer::new(rip(1), 80, FwdMethod::Masq, 1)).unwrap_err();
    assert!(matches!(err, Error::MidflowHash(_)), "{err}");
    // Switching the scheduler of the service to a counting one is refused, and so is turning
    // the option on for a service that has a NAT server.
    assert!(matches!(d.edit_service(ServiceConfig::new(key, "wlc").midflow_hash()), Err(Error::MidflowHash(_))));
    let nat = ServiceKey::tcp(vip(), 443);
    d.add_service(ServiceConfig::new(nat, "sh")).unwrap();
    d.add_dest(&nat, RealServer::new(rip(0), 443, FwdMethod::Masq, 1)).unwrap();
    assert!(matches!(d.edit_service(ServiceConfig::new(nat, "sh").midflow_hash()), Err(Error::MidflowHash(_))));
    let cfgs: Vec<_> = d.services().map(|s| (s.config.scheduler.clone(), s.config.midflow_hash)).collect();
    assert_eq!(cfgs, [("mh".to_string(), true), ("sh".to_string(), false)]);
    // A rule file saying the same is refused at its line, and applies nothing.
    let mut e = Director::new(DirectorConfig::default(), lvs::sched::by_name);
    let text = format!("-A -t {}:80 -s sh --midflow-hash\n-a -t {}:80 -r {}:80 -m -w 1\n", vip(), vip(), rip(0));
    let err = restore(&mut e, &text).unwrap_err();
    assert_eq!(err.to_string(), "line 2: midflow hash: needs DR or TUN real servers (-g, -i)");
    assert_eq!(e.services().count(), 0);
}

/// lvs's rule-file spelling of `midflow_hash`, `--midflow-hash` on `-A`/`-E`: restored,
/// saved last on the service's line (after `-b`), restored again to the same configuration,
/// and listed by `-Ln` as a word after the flags. A service without it lists as ipvsadm's
/// `print_service_entry` prints it.
#[test]
fn midflow_hash_in_rule_files() {
    let text = format!(
        "-A -t {v}:80 -s mh -b mh-port --midflow-hash\n-a -t {v}:80 -r {r}:80 -g -w 1\n\
         -A -t {v}:81 -s mh -b mh-port\n-a -t {v}:81 -r {r}:81 -g -w 1\n",
        v = vip(),
        r = rip(0)
    );
    let mut d = Director::new(DirectorConfig::default(), lvs::sched::by_name);
    restore(&mut d, &text).unwrap();
    let saved = save(&d);
    assert_eq!(saved, text);
    let mut e = Director::new(DirectorConfig::default(), lvs::sched::by_name);
    restore(&mut e, &saved).unwrap();
    assert_eq!(save(&e), saved);
    let listed = list(&d, Instant::from_secs(0), ListOptions::Plain);
    let lines: Vec<&str> = listed.lines().filter(|l| l.starts_with("TCP")).collect();
    assert_eq!(
        lines,
        [format!("TCP  {}:80 mh (mh-port) midflow-hash", vip()), format!("TCP  {}:81 mh (mh-port)", vip())]
    );
    // -E without the switch turns it off, as -E without -o turns one-packet scheduling off.
    restore(&mut e, &format!("-E -t {}:80 -s mh -b mh-port\n", vip())).unwrap();
    assert!(!save(&e).contains("--midflow-hash"));
}
