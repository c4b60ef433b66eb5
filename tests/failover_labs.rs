//! The failover labs (root; CI runs as root): two library directors on AF_PACKET in their own
//! processes, kernel-format sync between them, 20 long-lived TCP connections, a persistent
//! one and a UDP flow from a client (see `examples/common/failover/mod.rs`).
//!
//! By hand, two fail-overs by SIGKILL, the lab moving the next hops: DR and NAT must lose no
//! connection at either — the second after the killed director came back as a backup with the
//! full resync — and keep persistence. A third run restarts the director as a kernel-style
//! backup instead and only prints what that loses.
//!
//! With VRRP (advertisements every 100 ms), four changes: the master killed, the restarted one
//! preempting, the master's link pulled, the link restored and the master preempting. DR and
//! NAT must lose no connection at any, keep persistence, and the new master must forward its
//! first frame to a real server within Master_Down_Interval + [`MARGIN`] of a failure (and
//! nothing before it is master), within [`MARGIN`] of its first advertisement when it
//! preempts; the restarted director must have taken the whole table before it preempts.
//!
//! Each run prints its measurements, for the README.
//!
//! This target has no libtest harness (`harness = false`): the binary is the lab, and runs
//! itself again (`std::env::current_exe`) as the director and real-server processes, so it
//! needs no other binary to have been built. It takes the usual test filters (`--exact`,
//! `--skip`, `--list`); without root (or `ip`, `sysctl`) it fails under CI and says it was
//! skipped elsewhere.

#[path = "../examples/common/failover/mod.rs"]
#[allow(dead_code)]
mod failover;
#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/root.rs"]
mod root;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use failover::{Cause, FailoverConfig, How, Mode, Rejoin, Report};

/// The long-lived TCP connections to the stream port.
const STREAMS: usize = 20;

/// How late the new master's first frame to a real server may come after it could take over:
/// the client's UDP flow sends every 20 ms, so one leaves at most 20 ms after the gratuitous
/// ARP, which follows the first advertisement within a millisecond; 30 ms more cover the
/// capture's resolution (a ring block is handed over within 2 ms), the `ip` command that pulls
/// the link, and scheduling on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(50);

/// A lab run and what must hold of it.
struct Case {
    name: &'static str,
    cfg: FailoverConfig,
    check: fn(&Report),
}

fn no_loss_and_persistence(r: &Report) {
    assert_eq!(r.lost_before, 0, "connections lost before any fail-over");
    for (i, f) in r.failovers.iter().enumerate() {
        assert_eq!(f.tcp, STREAMS + 1);
        assert_eq!(f.held, (STREAMS + 2, STREAMS + 2, true), "fail-over {}: the new director's table", i + 1);
        assert_eq!(f.tcp_lost, 0, "fail-over {}: TCP connections lost", i + 1);
        assert!(f.resumed.is_some(), "fail-over {}: a stream (the UDP flow?) never came back", i + 1);
    }
    assert!(r.persistence_held(1), "persistence: the returning client must keep its real server");
}

fn vrrp_no_loss_and_takeover_in_time(r: &Report) {
    assert_eq!(r.lost_before, 0, "connections lost before any change");
    let causes: Vec<Cause> = r.failovers.iter().map(|f| f.cause).collect();
    assert_eq!(causes, [Cause::Kill, Cause::Restarted, Cause::LinkDown, Cause::LinkUp]);
    for (i, f) in r.failovers.iter().enumerate() {
        let n = i + 1;
        assert_eq!(f.tcp, STREAMS + 1);
        assert_eq!(f.held, (STREAMS + 2, STREAMS + 2, true), "change {n}: the new master's table");
        assert_eq!(f.tcp_lost, 0, "change {n}: TCP connections lost");
        assert!(f.resumed.is_some(), "change {n}: a stream (the UDP flow?) never came back");
        let forwarded = f.forwarded.unwrap_or_else(|| panic!("change {n}: the new master forwarded nothing"));
        let master = f.master.unwrap_or_else(|| panic!("change {n}: no advertisement from the new master"));
        assert!(forwarded + Duration::from_millis(5) >= master, "change {n}: forwarded before it was master");
        let bound = if f.cause.is_preempt() { MARGIN } else { f.bound.unwrap_or_default() + MARGIN };
        assert!(forwarded <= bound, "change {n}: first frame forwarded after {forwarded:?}, more than {bound:?}");
    }
    let (rejoin, resynced) = r.failovers[1].rejoin.expect("A restarted");
    assert_eq!(rejoin, Rejoin::Resync);
    let (resynced, master) = (resynced.expect("A resynced"), r.failovers[1].back.expect("A preempted"));
    assert!(resynced < master, "A took over ({master:?} after it was up) before its resync ({resynced:?})");
    assert!(r.persistence_held(3), "persistence: the returning client must keep its real server");
}

fn first_failover_holds(r: &Report) {
    assert_eq!(r.lost_before, 0);
    assert_eq!(r.failovers[0].tcp_lost, 0, "fail-over 1 loses nothing whatever comes after");
    assert!(r.persistence_held(0));
}

fn cases() -> [Case; 5] {
    let cfg = |mode, rejoin| FailoverConfig { mode, streams: STREAMS, how: How::Manual(rejoin) };
    let vrrp =
        |mode| FailoverConfig { mode, streams: STREAMS, how: How::Vrrp { advert_int: Duration::from_millis(100) } };
    [
        Case {
            name: "dr_failover_and_back_after_resync",
            cfg: cfg(Mode::Dr, Rejoin::Resync),
            check: no_loss_and_persistence,
        },
        Case {
            name: "nat_failover_and_back_after_resync",
            cfg: cfg(Mode::Nat, Rejoin::Resync),
            check: no_loss_and_persistence,
        },
        Case {
            name: "dr_failover_and_back_to_a_kernel_style_backup",
            cfg: cfg(Mode::Dr, Rejoin::KernelBackup),
            check: first_failover_holds,
        },
        Case {
            name: "dr_vrrp_kill_link_down_and_preempt_back",
            cfg: vrrp(Mode::Dr),
            check: vrrp_no_loss_and_takeover_in_time,
        },
        Case {
            name: "nat_vrrp_kill_link_down_and_preempt_back",
            cfg: vrrp(Mode::Nat),
            check: vrrp_no_loss_and_takeover_in_time,
        },
    ]
}

/// The cases the command line selects, as libtest would: name filters (substrings, or whole
/// names with `--exact`), `--skip` filters; other flags, and the values of those that take
/// one, are ignored.
fn selected(args: &[String]) -> Vec<Case> {
    let (mut filters, mut skips, mut exact) = (Vec::new(), Vec::new(), false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--exact" => exact = true,
            "--skip" => skips.extend(it.next().cloned()),
            "--test-threads" | "--format" | "--logfile" | "--color" | "--shuffle-seed" | "-Z" => {
                it.next();
            }
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter.to_string()),
        }
    }
    let hit = |name: &str, f: &String| if exact { name == f } else { name.contains(f.as_str()) };
    cases()
        .into_iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| hit(c.name, f)))
        .filter(|c| !skips.iter().any(|f| hit(c.name, f)))
        .collect()
}

fn main() -> ExitCode {
    if let Some(code) = failover::sub_process() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases = selected(&args);
    if args.iter().any(|a| a == "--list") {
        for c in &cases {
            println!("{}: test", c.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--ignored") || cases.is_empty() {
        return ExitCode::SUCCESS;
    }
    // In a thread of the binary's name, which the skip message and a CI failure name.
    let check = std::thread::Builder::new()
        .name("failover_labs".into())
        .spawn(|| root::can_run(true, &["ip", "sysctl"]))
        .map(|t| t.join());
    match check {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return ExitCode::SUCCESS,
        _ => return ExitCode::FAILURE,
    }
    let (mut passed, mut failed) = (0, Vec::new());
    for case in cases {
        println!("\ntest {} ...", case.name);
        let ok = std::thread::Builder::new()
            .name(case.name.into())
            .spawn(move || {
                let report = failover::run(&case.cfg, &AtomicBool::new(false)).unwrap_or_else(|e| panic!("{e}"));
                println!("{report}");
                (case.check)(&report);
            })
            .is_ok_and(|t| t.join().is_ok());
        println!("test {} ... {}", case.name, if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed.push(case.name);
        }
    }
    // As libtest sums up, for whoever reads the log.
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed; 0 failed");
        ExitCode::SUCCESS
    } else {
        println!("\ntest result: FAILED. {passed} passed; {} failed: {}", failed.len(), failed.join(", "));
        ExitCode::FAILURE
    }
}
