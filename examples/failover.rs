//! The failover lab (root): two directors — this library on AF_PACKET, each its own process —
//! sync their connections in the kernel's format over a link of their own; a client keeps 20
//! TCP connections, one to a persistent service and a UDP flow busy through the active one.
//!
//! By hand (the default), the lab SIGKILLs the active director and moves the next hop to the
//! other; then restarts the killed one as a backup (with the library's full resync, or as a
//! kernel-style backup with `--kernel-backup`), kills the second and moves back. With `--vrrp`,
//! VRRPv3 chooses the active director and sync follows it (keepalived's `lvs_sync_daemon`):
//! A is SIGKILLed and B takes over, A restarts and preempts once resynced, A's link is pulled
//! and B takes over, the link comes back and A preempts again.
//!
//! It prints connections and bytes lost, the longest gap in the streams, the time from each
//! change to the new director's first advertisement, gratuitous ARP and first frame forwarded
//! to a real server (captured on the bridge), to the first echo after it, whether persistence
//! held, and the survivor's `ipvsadm -Ln` and `-Lcn`.
//!
//! ```text
//! sudo cargo run --release --example failover -- dr      # or nat; [--streams N] [--kernel-backup]
//! sudo cargo run --release --example failover -- nat --vrrp --advert-int 1000   # default 100 ms
//! ```
//!
//! See `common/failover/mod.rs` for the topology. Namespaces, links and processes are removed
//! on exit, on failure and on Ctrl-C. Exits non-zero if a connection was lost or persistence
//! broke (with `--kernel-backup`, only the first fail-over counts).

#[path = "common/failover/mod.rs"]
mod failover;
#[path = "common/netns.rs"]
#[allow(dead_code)]
mod netns;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use failover::{FailoverConfig, How, Mode, Rejoin};

fn usage() -> ExitCode {
    eprintln!("usage: failover dr|nat [--streams N] [--kernel-backup | --vrrp [--advert-int MS]]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    if let Some(code) = failover::sub_process() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first().and_then(|m| Mode::parse(m)) else { return usage() };
    let (mut streams, mut kernel_backup, mut vrrp, mut advert_ms) = (20, false, false, None);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kernel-backup" => kernel_backup = true,
            "--vrrp" => vrrp = true,
            // VRRPv3 carries centiseconds, up to 40.95 s.
            "--advert-int" => match it.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(ms) if ms % 10 == 0 && (10..=40_950).contains(&ms) => advert_ms = Some(ms),
                _ => return usage(),
            },
            "--streams" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) if (1..=500).contains(&n) => streams = n,
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
    let how = match (vrrp, kernel_backup, advert_ms) {
        (true, false, ms) => How::Vrrp { advert_int: Duration::from_millis(ms.unwrap_or(100)) },
        (false, kernel, None) => How::Manual(if kernel { Rejoin::KernelBackup } else { Rejoin::Resync }),
        _ => return usage(),
    };
    let cfg = FailoverConfig { mode, streams, how };
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("failover: cannot catch Ctrl-C: {e}");
    }
    let report = match failover::run(&cfg, &interrupt) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("failover: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{report}");
    // A kernel-style backup is expected to lose connections at the second fail-over.
    let counted = match how {
        How::Manual(Rejoin::KernelBackup) => 1,
        _ => report.failovers.len(),
    };
    let lost: usize = report.lost_before + report.failovers.iter().take(counted).map(|f| f.tcp_lost).sum::<usize>();
    let persisted = report.persistence_held(counted - 1);
    println!("\npersistence held: {}", if persisted { "yes" } else { "no" });
    if lost > 0 || !persisted {
        eprintln!("failover: {lost} connections lost{}", if persisted { "" } else { ", persistence broke" });
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
