//! The network-namespace labs (root; CI runs as root): kernel HTTP servers and `curl` through
//! the director on AF_PACKET, for DR, NAT and TUN. Each asserts that every request succeeded
//! and that the spread is the scheduler's. Without root (or `ip`, `curl`, `python3`) they fail
//! under CI and say they were skipped elsewhere.

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

use std::sync::atomic::AtomicBool;

use lab::{LabConfig, Mode};

fn run(mode: Mode, scheduler: &str, weights: &[u32], persist: Option<u32>, requests: usize) -> Vec<usize> {
    let cfg = LabConfig {
        mode,
        scheduler: scheduler.into(),
        weights: weights.to_vec(),
        persist,
        requests,
        clients: 1,
        ..LabConfig::default()
    };
    let (r, _) = netns_lab::run(&cfg, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.answers.len(), requests);
    for (i, a) in r.answers.iter().enumerate() {
        assert!(a.server.is_some(), "{mode:?} {scheduler} request {i} failed");
    }
    r.answers.iter().map(|a| a.server.unwrap()).collect()
}

fn every_scheduler_shape(mode: Mode) {
    if !root::can_run(true, &["ip", "curl", "python3", "sysctl"]) {
        return;
    }
    assert_eq!(run(mode, "rr", &[1, 1, 1], None, 6), [2, 1, 0, 2, 1, 0], "rr rotates newest first");
    let wrr = run(mode, "wrr", &[1, 2, 3], None, 12);
    let counts: Vec<usize> = (0..3).map(|s| wrr.iter().filter(|x| **x == s).count()).collect();
    assert_eq!(counts, [2, 4, 6], "wrr 1:2:3 over two cycles: {wrr:?}");
    let sticky = run(mode, "rr", &[1, 1, 1], Some(300), 5);
    assert!(sticky.iter().all(|s| *s == sticky[0]), "persistence sticks: {sticky:?}");
}

#[test]
fn dr_over_network_namespaces() {
    every_scheduler_shape(Mode::Dr);
}

#[test]
fn nat_over_network_namespaces() {
    every_scheduler_shape(Mode::Nat);
}

#[test]
fn tun_over_network_namespaces() {
    every_scheduler_shape(Mode::Tun);
}
