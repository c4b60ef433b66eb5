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
    let cfg = LabConfig { mode, scheduler: scheduler.into(), weights: weights.to_vec(), persist, requests, clients };
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
