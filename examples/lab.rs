//! Load-balances real TCP through the director in memory: smoltcp clients fetch a page over HTTP
//! from three smoltcp real servers behind a VIP, by DR, NAT or TUN, and the lab prints who
//! answered each request and the `ipvsadm -Ln --stats` table.
//!
//! ```text
//! cargo run --release --example lab -- dr [-s SCHED] [-w 1,2,3] [-p SECS] [-n REQUESTS] [-c CLIENTS]
//! cargo run --release --example lab -- dr --netns     # as root: kernel clients and servers
//! cargo run --release --example lab -- dr -n 24 --kill rs2@6 --revive rs2@14   # health checks
//! ```
//!
//! `--kill rsN@REQ` closes server N's listener before request REQ (counted from 1) and
//! `--revive rsN@REQ` opens it again; either turns on HTTP health checks from the director's
//! own stack (every 200 ms of simulated time, down after two failures, up after two passes),
//! and the output shows the failure detected, the server leaving rotation and rejoining.
//! Requests may fail only between a kill and the server leaving rotation.
//!
//! In-process by default (smoltcp hosts, no root). With `--netns`, network namespaces with
//! kernel HTTP servers and `curl` as the client, the director on AF_PACKET (see
//! `common/netns_lab.rs`). Exits non-zero if any request failed.

#[path = "common/lab.rs"]
mod lab;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/netns_lab.rs"]
mod netns_lab;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn usage() -> ExitCode {
    eprintln!(
        "usage: lab dr|nat|tun [--netns] [-s SCHEDULER] [-w W1,W2,W3] [-p PERSIST_SECS] [-n REQUESTS] [-c CLIENTS]\n       \
         [--kill rsN@REQ] [--revive rsN@REQ] (in process only)"
    );
    ExitCode::from(2)
}

/// `rsN@REQ` as (server index, request index), both from 0.
fn server_at(v: &str, servers: usize) -> Option<(usize, usize)> {
    let (rs, req) = v.split_once('@')?;
    let n: usize = rs.strip_prefix("rs")?.parse().ok()?;
    let req: usize = req.parse().ok()?;
    (1..=servers).contains(&n).then_some(())?;
    Some((n - 1, req.checked_sub(1)?))
}

/// The client end of a request (curl picks its own port).
fn from(a: &lab::Answer) -> String {
    if a.port == 0 {
        a.client.to_string()
    } else {
        format!("{}:{}", a.client, a.port)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first().and_then(|m| lab::Mode::parse(m)) else { return usage() };
    let mut cfg = lab::LabConfig { mode, scheduler: "rr".into(), ..lab::LabConfig::default() };
    let mut netns = false;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--netns" {
            netns = true;
            continue;
        }
        let Some(v) = it.next() else { return usage() };
        match a.as_str() {
            "-s" => cfg.scheduler = v.clone(),
            "-w" => match v.split(',').map(str::parse).collect::<Result<Vec<u32>, _>>() {
                Ok(w) if !w.is_empty() => cfg.weights = w,
                _ => return usage(),
            },
            "-p" => match v.parse() {
                Ok(p) => cfg.persist = Some(p),
                Err(_) => return usage(),
            },
            "-n" => match v.parse() {
                Ok(n) => cfg.requests = n,
                Err(_) => return usage(),
            },
            "-c" => match v.parse() {
                Ok(n) if n > 0 && n < 200 => cfg.clients = n,
                _ => return usage(),
            },
            "--kill" | "--revive" => match server_at(v, cfg.weights.len()) {
                Some(k) if a == "--kill" => cfg.kill.push(k),
                Some(k) => cfg.revive.push(k),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    if netns && !(cfg.kill.is_empty() && cfg.revive.is_empty()) {
        return usage();
    }
    let outcome = if netns {
        let interrupt = Arc::new(AtomicBool::new(false));
        let flag = interrupt.clone();
        if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
            eprintln!("lab: cannot catch Ctrl-C: {e}");
        }
        netns_lab::run(&cfg, &interrupt)
    } else {
        lab::run(&cfg).map(|r| (r, None))
    };
    let (run, decap) = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lab: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = match cfg.mode {
        lab::Mode::Dr => "DR",
        lab::Mode::Nat => "NAT",
        lab::Mode::Tun => "TUN",
    };
    let place = if netns { "network namespaces, kernel TCP" } else { "in process, smoltcp" };
    println!("# {name} lab ({place}): ipvsadm rules\n{}", run.rules);
    if let Some(d) = decap {
        println!("# real servers decapsulate with the {d}\n");
    }
    let (mut failed, mut unexpected) = (0, 0);
    // Servers killed and not yet out of rotation: a request may fail while one is.
    let mut dying = 0usize;
    for (i, a) in run.answers.iter().enumerate() {
        for (_, note) in run.notes.iter().filter(|(at, _)| *at == i) {
            println!("          {note}");
            dying += usize::from(note.contains(" killed:"));
            dying = dying.saturating_sub(usize::from(note.contains(" down (")));
        }
        match a.server {
            Some(s) => {
                println!("request {:>3}  {} -> 203.0.113.100:80  answered by rs{}", i + 1, from(a), s + 1)
            }
            None => {
                failed += 1;
                unexpected += usize::from(dying == 0);
                println!("request {:>3}  {} -> 203.0.113.100:80  FAILED", i + 1, from(a));
            }
        }
    }
    println!();
    print!("{}", run.listing);
    println!();
    print!("{}", run.stats);
    if let Some(h) = &run.health {
        println!();
        print!("{h}");
        println!("\n{failed} requests failed, all between a kill and the server leaving rotation");
    }
    if unexpected > 0 {
        eprintln!("lab: {unexpected} of {} requests failed", run.answers.len());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
