//! The failover lab (root): two directors — this library on AF_PACKET, each its own process —
//! sync their connections in the kernel's format over a link of their own; a client keeps 20
//! TCP connections, one to a persistent service and a UDP flow busy through the active one. The
//! lab SIGKILLs it and moves the next hop to the other; then restarts the killed one as a backup
//! (with the library's full resync, or as a kernel-style backup with `--kernel-backup`), kills
//! the second and moves back. It prints connections and bytes lost, the longest gap in the
//! streams, the time from each kill to the first echo after it, whether persistence held, and
//! the survivor's `ipvsadm -Ln` and `-Lcn`.
//!
//! ```text
//! sudo cargo run --release --example failover -- dr      # or nat; [--streams N] [--kernel-backup]
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

use failover::{FailoverConfig, Mode, Rejoin};

fn usage() -> ExitCode {
    eprintln!("usage: failover dr|nat [--streams N] [--kernel-backup]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    if let Some(code) = failover::sub_process() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first().and_then(|m| Mode::parse(m)) else { return usage() };
    let mut cfg = FailoverConfig { mode, streams: 20, rejoin: Rejoin::Resync };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kernel-backup" => cfg.rejoin = Rejoin::KernelBackup,
            "--streams" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) if (1..=500).contains(&n) => cfg.streams = n,
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
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
    let counted = match cfg.rejoin {
        Rejoin::Resync => 2,
        Rejoin::KernelBackup => 1,
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
