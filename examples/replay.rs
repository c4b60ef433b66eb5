//! Replays captures through a director.
//!
//! ```text
//! cargo run --release --example replay -- --case tests/data/oracle/rr-dr --out /tmp/rr-dr
//! cargo run --release --example replay -- --rules RULES.txt --topology topology.txt --in IN.pcap --out OUT.pcap
//! ```
//!
//! `--case DIR --out OUTDIR` runs a recorded case folder (topology, ipvsadm steps, captures) and
//! writes `OUTDIR/expected-K/` and `OUTDIR/output-N.pcap` in the case's own formats, so
//! `diff -r DIR/expected-1 OUTDIR/expected-1` shows where the library and the kernel differ.
//!
//! `--rules --in --out` applies an `ipvsadm -S` rule file, runs the capture through the director
//! (capture timestamps as its clock), writes what it sent, and prints the `ipvsadm -Lcn` and
//! `-Ln --stats` listings and the packet rate of the pipeline alone. Neighbours come from a
//! `--topology` file in the case format, or from `--mac MAC --gateway IP=MAC --neigh IP=MAC...`.

#[path = "common/case.rs"]
mod case;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant as StdInstant;

use lvs::core::addr::Af;
use lvs::core::config::{list, ListOptions};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, Instant, PortConfig, Reason, Verdict};
use lvs::dataplane::pcap::{read_capture, CaptureWriter};

use case::{director_for, run_case, write_run, Topology};

fn usage() -> ExitCode {
    eprintln!(
        "usage: replay --case DIR --out OUTDIR\n       replay --rules RULES --in IN.pcap --out OUT.pcap \
         (--topology FILE | --mac MAC [--addr IP] [--gateway IP=MAC] [--neigh IP=MAC]...)"
    );
    ExitCode::from(2)
}

fn neighbour(s: &str) -> Option<(IpAddr, Neighbour)> {
    let (ip, mac) = s.split_once('=')?;
    Some((ip.parse().ok()?, Neighbour { mac: mac.parse().ok()?, port: 0 }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let all = |k: &str| args.windows(2).filter(|w| w[0] == k).map(|w| w[1].clone()).collect::<Vec<_>>();
    let Some(out) = get("--out").map(PathBuf::from) else { return usage() };
    if let Some(case) = get("--case") {
        let run = match run_case(case.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("replay: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = write_run(&run, &out) {
            eprintln!("replay: {e}");
            return ExitCode::FAILURE;
        }
        for (k, _) in &run.snapshots {
            println!("wrote {}/expected-{k}/", out.display());
        }
        for (n, frames) in &run.outputs {
            println!("wrote {}/output-{n}.pcap ({} frames)", out.display(), frames.len());
        }
        return ExitCode::SUCCESS;
    }
    let (Some(rules), Some(input)) = (get("--rules"), get("--in")) else { return usage() };
    let mut d = match get("--topology") {
        Some(t) => match std::fs::read_to_string(&t)
            .map_err(|e| e.to_string())
            .and_then(|text| director_for(&Topology::parse(&text)).map_err(|e| e.to_string()))
        {
            Ok(d) => d,
            Err(e) => {
                eprintln!("replay: {t}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            let Some(mac) = get("--mac").and_then(|m| m.parse::<MacAddr>().ok()) else { return usage() };
            let mut port = PortConfig::new(mac);
            if let Some(a) = get("--addr").and_then(|a| a.parse::<IpAddr>().ok()) {
                port = port.with_addr(a);
            }
            let mut d = lvs::director(DirectorConfig::default().port(port).with_random_seeds());
            for g in all("--gateway") {
                let Some((ip, n)) = neighbour(&g) else { return usage() };
                d.set_neighbour(ip, n);
                d.set_gateway(Af::of(&ip), n);
            }
            for g in all("--neigh") {
                let Some((ip, n)) = neighbour(&g) else { return usage() };
                d.set_neighbour(ip, n);
            }
            d
        }
    };
    let text = match std::fs::read_to_string(&rules) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("replay: {rules}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = lvs::core::config::restore(&mut d, &text) {
        eprintln!("replay: {rules}: {e}");
        return ExitCode::FAILURE;
    }
    let frames = match read_capture(input.as_ref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("replay: {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut w = match CaptureWriter::create(&out) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("replay: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    };
    let mut frame = Frame::with_capacity(DEFAULT_HEADROOM + 65_536);
    let (mut sent, mut now) = (0usize, Instant::ZERO);
    let mut busy = std::time::Duration::ZERO;
    for f in &frames {
        now = Instant::from_nanos(f.ts_ns);
        frame.load(DEFAULT_HEADROOM, &f.data);
        let t0 = StdInstant::now();
        while let Some(dl) = d.next_deadline().filter(|dl| *dl <= now) {
            d.tick(dl);
        }
        let v = d.process(now, &mut frame);
        busy += t0.elapsed();
        if let Verdict::Transmit { .. } | Verdict::Fragmented { .. } = v {
            // A fragmented tunnel packet: the frame holds the first fragment, the director the rest.
            for g in std::iter::once(&frame).chain(d.fragments()) {
                sent += 1;
                if let Err(e) = w.write(f.ts_ns, g.data()) {
                    eprintln!("replay: {}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    w.into_inner();
    print!("{}", list(&d, now, ListOptions::Connections));
    print!("{}", list(&d, now, ListOptions::Stats));
    let drops: Vec<String> = Reason::ALL
        .iter()
        .filter(|r| d.drops()[r.index()] > 0)
        .map(|r| format!("{}={}", r.as_str(), d.drops()[r.index()]))
        .collect();
    let mpps = frames.len() as f64 / busy.as_secs_f64().max(1e-9) / 1e6;
    println!(
        "{} frames in, {sent} sent, drops: {}; pipeline {mpps:.2} Mpps ({:.0} ns/frame)",
        frames.len(),
        if drops.is_empty() { "none".to_string() } else { drops.join(" ") },
        busy.as_nanos() as f64 / frames.len().max(1) as f64
    );
    ExitCode::SUCCESS
}
