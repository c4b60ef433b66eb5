//! Measures packets per second.
//!
//! ```text
//! cargo run --release --example rate -- replay      # pipeline alone: DR/NAT/TUN, 10 K flows, 1 and 2 cores
//! cargo run --release --example rate -- afpacket    # as root: DR through AF_PACKET across veth pairs
//! cargo run --release --example rate -- txloop      # as root: one thread only sending across a veth
//! ```
//!
//! `replay` feeds each shard data segments of its share of 10 000 established flows from a
//! looping in-memory capture (each frame copied into its buffer as a receive would) and counts
//! what the shards transmit for three seconds. `afpacket` builds a namespace with two veth
//! pairs: a generator thread sends the same traffic through one with `sendmmsg`, the director
//! (one shard) forwards it by DR to the other, and the director's transmissions are counted.
//! It prints the rate, the share of the generator's frames the director did not forward, and the director thread's CPU time per forwarded frame (from
//! `/proc/self/task/*/stat`: every thread but the main one and the generator's). `txloop`
//! measures the transmit path alone: one thread sends the 10 000 frames over and over through
//! an `AfPacket` (`sendmmsg`) for three seconds, and the peer's `rx_packets` counts what arrived.

#[path = "common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "common/traffic.rs"]
mod traffic;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use lvs::core::addr::Af;
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::Instant;
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::io::PacketIo;
use lvs::dataplane::pcap::Captured;
use lvs::dataplane::replay::PcapReplay;
use lvs::dataplane::runtime::{Runtime, Shards};
use netns::Netns;
use traffic::{data, director};

const FLOWS: u32 = 10_000;

fn replay(method: &'static str, shards: usize) -> f64 {
    let make = Arc::new(move |s: usize| {
        let mine: Vec<u32> = (0..FLOWS).filter(|i| *i as usize % shards == s).collect();
        let frames = mine.iter().map(|i| Captured { ts_ns: 0, data: data(Af::V4, *i) }).collect();
        let port: Box<dyn PacketIo + Send> = Box::new(PcapReplay::looping(frames));
        Ok(Runtime::new(director(Af::V4, method, mine.into_iter(), 0), vec![port]))
    });
    let set = Shards::spawn(shards, make).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (_, a) = set.stats();
    let t0 = StdInstant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (_, b) = set.stats();
    let secs = t0.elapsed().as_secs_f64();
    set.stop().unwrap();
    (b.tx - a.tx) as f64 / secs / 1e6
}

/// What one `afpacket` run measured.
struct Measured {
    /// Frames the director forwarded, millions per second.
    mpps: f64,
    /// Share of the generator's frames not forwarded.
    loss: f64,
    /// The director thread's CPU time per forwarded frame, µs.
    us_per_pkt: f64,
    /// Frames the director's ports would not take (`tx_lost`: a full ring or send buffer).
    tx_lost: u64,
}

/// CPU seconds (user + system) of this process's thread `tid`, from `/proc/self/task/<tid>/stat`.
fn thread_cpu(tid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at its closing ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// CPU seconds of every thread but `skip`.
fn cpu_except(skip: &[String]) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|t| !skip.contains(t))
        .map(|t| thread_cpu(&t))
        .sum()
}

/// This thread's id.
fn own_tid() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

fn afpacket() -> Result<Measured, String> {
    let ns = Netns::create("lvs-rate").map_err(|e| e.to_string())?;
    for (a, b) in [("lvsr1", "lvsr2"), ("lvsr3", "lvsr4")] {
        ns.exec("ip", &["link", "add", a, "type", "veth", "peer", "name", b]).map_err(|e| e.to_string())?;
        ns.exec("ip", &["link", "set", a, "up"]).map_err(|e| e.to_string())?;
        ns.exec("ip", &["link", "set", b, "up"]).map_err(|e| e.to_string())?;
    }
    let name = ns.name().to_string();
    let make = Arc::new(move |_: usize| {
        lvs::dataplane::netns::enter(&name)?;
        let d = director(Af::V4, "dr", 0..FLOWS, 1);
        let cfg = AfPacketConfig { promisc: true, ..AfPacketConfig::default() };
        let input: Box<dyn PacketIo + Send> = Box::new(AfPacket::open("lvsr2", cfg)?);
        let output: Box<dyn PacketIo + Send> = Box::new(AfPacket::open("lvsr3", AfPacketConfig::default())?);
        Ok(Runtime::new(d, vec![input, output]))
    });
    let set = Shards::spawn(1, make).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let generated = Arc::new(AtomicU64::new(0));
    let main_tid = own_tid();
    let m = std::thread::scope(|s| {
        let (gen_stop, gen_count) = (stop.clone(), generated.clone());
        let ns = &ns;
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        s.spawn(move || {
            ns.enter().unwrap();
            let _ = tid_tx.send(own_tid());
            let mut tx = AfPacket::open("lvsr1", AfPacketConfig::default()).unwrap();
            let frames: Vec<Frame> = (0..FLOWS).map(|i| Frame::new(DEFAULT_HEADROOM, &data(Af::V4, i))).collect();
            while !gen_stop.load(Ordering::Relaxed) {
                for chunk in frames.chunks(64) {
                    let n = tx.send(Instant::ZERO, chunk).unwrap_or(0);
                    gen_count.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        });
        let skip = vec![main_tid.clone(), tid_rx.recv().unwrap_or_default()];
        std::thread::sleep(Duration::from_millis(500));
        let (_, a) = set.stats();
        let (g0, c0) = (generated.load(Ordering::Relaxed), cpu_except(&skip));
        let t0 = StdInstant::now();
        std::thread::sleep(Duration::from_secs(3));
        let (_, b) = set.stats();
        let (g1, c1) = (generated.load(Ordering::Relaxed), cpu_except(&skip));
        let secs = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let fwd = (b.tx - a.tx) as f64;
        Measured {
            mpps: fwd / secs / 1e6,
            loss: 1.0 - fwd / ((g1 - g0) as f64).max(1.0),
            us_per_pkt: (c1 - c0) * 1e6 / fwd.max(1.0),
            tx_lost: b.tx_lost - a.tx_lost,
        }
    });
    set.stop().map_err(|e| e.to_string())?;
    Ok(m)
}

/// Sends for three seconds on one end of a veth pair; returns the rate the
/// peer received, its share of the frames taken, and the sending thread's µs per frame.
fn txloop() -> Result<(f64, f64, f64), String> {
    let ns = Netns::create("lvs-txloop").map_err(|e| e.to_string())?;
    // No IPv6: the peer's counter then holds only the frames sent here.
    for k in ["all", "default"] {
        ns.exec("sysctl", &["-qw", &format!("net.ipv6.conf.{k}.disable_ipv6=1")]).map_err(|e| e.to_string())?;
    }
    ns.exec("ip", &["link", "add", "lvst1", "type", "veth", "peer", "name", "lvst2"]).map_err(|e| e.to_string())?;
    for l in ["lvst1", "lvst2"] {
        ns.exec("ip", &["link", "set", l, "up"]).map_err(|e| e.to_string())?;
    }
    let rx = || -> u64 {
        ns.exec("cat", &["/sys/class/net/lvst2/statistics/rx_packets"])
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let (sent, cpu, secs, received) = std::thread::scope(|s| {
        s.spawn(|| -> Result<_, String> {
            ns.enter().map_err(|e| e.to_string())?;
            let mut tx = AfPacket::open("lvst1", AfPacketConfig::default()).map_err(|e| e.to_string())?;
            let frames: Vec<Frame> = (0..FLOWS).map(|i| Frame::new(DEFAULT_HEADROOM, &data(Af::V4, i))).collect();
            let (r0, c0, t0) = (rx(), thread_cpu(&own_tid()), StdInstant::now());
            let mut sent = 0u64;
            while t0.elapsed() < Duration::from_secs(3) {
                for chunk in frames.chunks(64) {
                    sent += tx.send(Instant::ZERO, chunk).map_err(|e| e.to_string())? as u64;
                }
            }
            let (c1, secs) = (thread_cpu(&own_tid()), t0.elapsed().as_secs_f64());
            // Frames still in flight arrive within a moment.
            std::thread::sleep(Duration::from_millis(100));
            Ok((sent, c1 - c0, secs, rx() - r0))
        })
        .join()
        .map_err(|_| "sender panicked".to_string())?
    })?;
    Ok((
        received as f64 / secs / 1e6,
        1.0 - received as f64 / (sent as f64).max(1.0),
        cpu * 1e6 / (sent as f64).max(1.0),
    ))
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("replay") => {
            for method in ["dr", "nat", "tun"] {
                let one = replay(method, 1);
                let two = replay(method, 2);
                println!("pipeline {method:<3} 10K flows: {one:.2} Mpps on 1 core, {two:.2} Mpps on 2 cores");
            }
        }
        Some("afpacket") => match afpacket() {
            Ok(m) => println!(
                "AF_PACKET DR across veth, 10K flows, 1 shard: {:.3} Mpps forwarded, {:.1} % of the generator's frames not forwarded, {:.2} us director CPU per frame, {} frames a port would not take",
                m.mpps,
                m.loss * 100.0,
                m.us_per_pkt,
                m.tx_lost
            ),
            Err(e) => {
                eprintln!("rate: {e} (needs root)");
                std::process::exit(1);
            }
        },
        Some("txloop") => match txloop() {
            Ok((mpps, loss, us)) => println!(
                "AF_PACKET transmit alone across veth: {mpps:.3} Mpps received by the peer, {:.1} % of the frames sent not received, {us:.2} us sender CPU per frame",
                loss * 100.0
            ),
            Err(e) => {
                eprintln!("rate: {e} (needs root)");
                std::process::exit(1);
            }
        },
        _ => {
            eprintln!("usage: rate replay|afpacket|txloop");
            std::process::exit(2);
        }
    }
}
