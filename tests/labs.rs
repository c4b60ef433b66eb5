//! The in-process labs: real TCP (smoltcp clients and servers) load-balanced through the
//! director by DR, NAT and TUN. Every request must succeed and the spread must be the
//! scheduler's: rr rotates exactly, wrr gives 1:2:3 over whole cycles, persistence sticks.

#[path = "../examples/common/lab.rs"]
#[allow(dead_code)]
mod lab;

use lab::{LabConfig, Mode};

fn run(
    mode: Mode,
    scheduler: &str,
    weights: &[u32],
    persist: Option<u32>,
    requests: usize,
    clients: usize,
) -> Vec<usize> {
    let cfg = LabConfig {
        mode,
        scheduler: scheduler.into(),
        weights: weights.to_vec(),
        persist,
        requests,
        clients,
        ..LabConfig::default()
    };
    let r = lab::run(&cfg).unwrap();
    assert_eq!(r.answers.len(), requests);
    for (i, a) in r.answers.iter().enumerate() {
        assert!(a.server.is_some(), "{mode:?} request {i} failed: {a:?}");
    }
    assert!(r.stats.contains("TCP  203.0.113.100:80"), "{}", r.stats);
    r.answers.iter().map(|a| a.server.unwrap()).collect()
}

fn rr_rotates(mode: Mode) {
    let got = run(mode, "rr", &[1, 1, 1], None, 9, 1);
    // Servers are added rs1, rs2, rs3 and the kernel lists the newest first: rs3, rs2, rs1, ...
    assert_eq!(got, [2, 1, 0, 2, 1, 0, 2, 1, 0]);
}

fn wrr_one_two_three(mode: Mode) {
    let got = run(mode, "wrr", &[1, 2, 3], None, 12, 1);
    let counts: Vec<usize> = (0..3).map(|s| got.iter().filter(|x| **x == s).count()).collect();
    assert_eq!(counts, [2, 4, 6], "{got:?}");
}

fn persistence_sticks(mode: Mode) {
    let got = run(mode, "rr", &[1, 1, 1], Some(300), 9, 3);
    for c in 0..3 {
        let mine: Vec<usize> = got.iter().skip(c).step_by(3).copied().collect();
        assert!(mine.iter().all(|s| *s == mine[0]), "client {c} moved: {mine:?}");
    }
    let distinct: std::collections::BTreeSet<usize> = got.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "three clients spread over three servers: {got:?}");
}

#[test]
fn dr_rr_rotates() {
    rr_rotates(Mode::Dr);
}

#[test]
fn nat_rr_rotates() {
    rr_rotates(Mode::Nat);
}

#[test]
fn tun_rr_rotates() {
    rr_rotates(Mode::Tun);
}

#[test]
fn dr_wrr_one_two_three() {
    wrr_one_two_three(Mode::Dr);
}

#[test]
fn nat_wrr_one_two_three() {
    wrr_one_two_three(Mode::Nat);
}

#[test]
fn tun_wrr_one_two_three() {
    wrr_one_two_three(Mode::Tun);
}

#[test]
fn dr_persistence_sticks() {
    persistence_sticks(Mode::Dr);
}

#[test]
fn nat_persistence_sticks() {
    persistence_sticks(Mode::Nat);
}

#[test]
fn tun_persistence_sticks() {
    persistence_sticks(Mode::Tun);
}

/// `--kill rs2@6 --revive rs2@14`: health checks from the director's own stack take rs2 out
/// of rotation after its listener closes and back after it opens again; requests fail only in
/// between the kill and the server leaving rotation.
fn kill_and_revive(mode: Mode) {
    let cfg = LabConfig {
        mode,
        scheduler: "rr".into(),
        requests: 24,
        kill: vec![(1, 5)],
        revive: vec![(1, 13)],
        ..LabConfig::default()
    };
    let r = lab::run(&cfg).unwrap();
    let at = |text: &str| r.notes.iter().find(|(_, n)| n.contains(text)).map(|(i, _)| *i);
    let (killed, down) = (at("rs2 killed").unwrap(), at(":80 down (").expect("rs2 never left rotation"));
    let (revived, up) = (at("rs2 revived").unwrap(), at(":80 up (").expect("rs2 never rejoined"));
    assert!(killed <= down && down < revived && revived <= up, "{:?}", r.notes);
    for (i, a) in r.answers.iter().enumerate() {
        assert!(a.server.is_some() || (killed..down).contains(&i), "request {i} failed outside the window");
        assert!(a.server != Some(1) || !(down..up).contains(&i), "request {i} went to rs2 while out");
    }
    assert!(r.answers[up..].iter().any(|a| a.server == Some(1)), "rs2 back in rotation");
    assert!(r.health.is_some_and(|h| h.contains("UP     HTTP")));
}

#[test]
fn dr_kill_and_revive() {
    kill_and_revive(Mode::Dr);
}

#[test]
fn nat_kill_and_revive() {
    kill_and_revive(Mode::Nat);
}

#[test]
fn tun_kill_and_revive() {
    kill_and_revive(Mode::Tun);
}
