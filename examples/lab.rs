//! Load-balances real TCP through the director in memory: smoltcp clients fetch a page over HTTP
//! from three smoltcp real servers behind a VIP, by DR, NAT or TUN, and the lab prints who
//! answered each request and the `ipvsadm -Ln --stats` table.
//!
//! ```text
//! cargo run --release --example lab -- dr [-s SCHED] [-w 1,2,3] [-p SECS] [-n REQUESTS] [-c CLIENTS]
//! ```
//!
//! Exits non-zero if any request failed.

#[path = "common/lab.rs"]
mod lab;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: lab dr|nat|tun [-s SCHEDULER] [-w W1,W2,W3] [-p PERSIST_SECS] [-n REQUESTS] [-c CLIENTS]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first().and_then(|m| lab::Mode::parse(m)) else { return usage() };
    let mut cfg = lab::LabConfig { mode, scheduler: "rr".into(), ..lab::LabConfig::default() };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
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
            _ => return usage(),
        }
    }
    let run = match lab::run(&cfg) {
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
    println!("# {name} lab: ipvsadm rules\n{}", run.rules);
    let mut failed = 0;
    for (i, a) in run.answers.iter().enumerate() {
        match a.server {
            Some(s) => {
                println!("request {:>3}  {}:{} -> 203.0.113.100:80  answered by rs{}", i + 1, a.client, a.port, s + 1)
            }
            None => {
                failed += 1;
                println!("request {:>3}  {}:{} -> 203.0.113.100:80  FAILED", i + 1, a.client, a.port);
            }
        }
    }
    println!();
    print!("{}", run.listing);
    println!();
    print!("{}", run.stats);
    if failed > 0 {
        eprintln!("lab: {failed} of {} requests failed", run.answers.len());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
