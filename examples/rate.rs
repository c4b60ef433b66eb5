//! Measures packets per second.
//!
//! ```text
//! cargo run --release --example rate -- replay      # pipeline alone: DR/NAT/TUN, 10 K flows, 1 and 2 cores
//! cargo run --release --example rate -- afpacket    # as root: DR through AF_PACKET across veth pairs
//! ```
//!
//! `replay` feeds each shard data segments of its share of 10 000 established flows from a
//! looping in-memory capture (each frame copied into its buffer as a receive would) and counts
//! what the shards transmit for three seconds. `afpacket` builds a namespace with two veth
//! pairs: a generator thread sends the same traffic through one with `sendmmsg`, the director
//! (one shard) forwards it by DR to the other, and the director's transmissions are counted.

#[path = "common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "common/traffic.rs"]
mod traffic;

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

fn afpacket() -> Result<f64, String> {
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
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rate = std::thread::scope(|s| {
        let gen_stop = stop.clone();
        let ns = &ns;
        s.spawn(move || {
            ns.enter().unwrap();
            let mut tx = AfPacket::open("lvsr1", AfPacketConfig::default()).unwrap();
            let frames: Vec<Frame> = (0..FLOWS).map(|i| Frame::new(DEFAULT_HEADROOM, &data(Af::V4, i))).collect();
            while !gen_stop.load(std::sync::atomic::Ordering::Relaxed) {
                for chunk in frames.chunks(64) {
                    let _ = tx.send(Instant::ZERO, chunk);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        let (_, a) = set.stats();
        let t0 = StdInstant::now();
        std::thread::sleep(Duration::from_secs(3));
        let (_, b) = set.stats();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (b.tx - a.tx) as f64 / t0.elapsed().as_secs_f64() / 1e6
    });
    set.stop().map_err(|e| e.to_string())?;
    Ok(rate)
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
            Ok(r) => println!("AF_PACKET DR across veth, 10K flows, 1 shard: {r:.2} Mpps forwarded"),
            Err(e) => {
                eprintln!("rate: {e} (needs root)");
                std::process::exit(1);
            }
        },
        _ => {
            eprintln!("usage: rate replay|afpacket");
            std::process::exit(2);
        }
    }
}
