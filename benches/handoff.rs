//! `handoff/*`: what it costs shards on receive queues (AF_XDP) to find each frame's owner and
//! hand it over (`lvs_dataplane::handoff`).
//!
//! - `handoff/owner/{request,reply}`: `Steer::owner`'s verdict on one frame of a NAT director
//!   (the fanout program, interpreted), paid on every frame a shard receives.
//! - `handoff/inbox/same_thread`: one frame offered to an inbox and taken out again, in bursts
//!   of 64, on one thread: the queue's own cost.
//! - `handoff/inbox/cross_thread`: frames offered on this thread (each slot refilled with the
//!   frame's 60 bytes after, as a receive would) and taken on another (the owner's), bursts of
//!   64, until all arrived: the hand-off between two cores, cache-line transfers included. On a machine with one free core the two threads share it, and the
//!   number says little.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::{Tcp, DIRECTOR_MAC};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, PortConfig};
use lvs::dataplane::filter::Filter;
use lvs::dataplane::handoff::Handoff;
use lvs::dataplane::steer::Steer;

const BURST: usize = 64;

fn owner(c: &mut Criterion) {
    let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr("192.0.2.1".parse().unwrap());
    let mut d = lvs::director(DirectorConfig::default().port(port));
    d.set_neighbour("192.0.2.12".parse().unwrap(), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 2]), port: 0 });
    let rules = "-A -t 203.0.113.100:80 -s rr\n-a -t 203.0.113.100:80 -r 192.0.2.12:8080 -m\n\
                 -a -t 203.0.113.100:80 -r 192.0.2.13:8080 -m\n";
    lvs::core::config::restore(&mut d, rules).unwrap();
    let owner = Steer::client_of(&d).owner(&Filter::from_director(&d), 2).unwrap();
    let client = ("198.51.100.2".parse().unwrap(), 40000);
    let request = Tcp::new(client, ("203.0.113.100".parse().unwrap(), 80), flags::ACK).build();
    let reply = Tcp::new(("192.0.2.13".parse().unwrap(), 8080), client, flags::ACK).build();
    let mut g = c.benchmark_group("handoff/owner");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in [("request", request), ("reply", reply)] {
        g.bench_function(name, |b| b.iter(|| owner.of(black_box(&frame))));
    }
    g.finish();
}

fn inbox(c: &mut Criterion) {
    let frame =
        Tcp::new(("198.51.100.2".parse().unwrap(), 40000), ("203.0.113.100".parse().unwrap(), 80), flags::ACK).build();
    let slots = || -> Vec<Frame> { (0..BURST).map(|_| Frame::new(DEFAULT_HEADROOM, &frame)).collect() };
    let mut g = c.benchmark_group("handoff/inbox");
    g.throughput(Throughput::Elements(BURST as u64));
    let h = Handoff::new(2, 1024).unwrap();
    let (mut out, mut into) = (slots(), slots());
    g.bench_function("same_thread", |b| {
        b.iter(|| {
            for slot in out.iter_mut() {
                assert!(h.offer(1, slot));
            }
            h.wake();
            assert_eq!(h.take(1, &mut into), BURST);
            // The frames go back to the sender's slots, so that each round offers frames.
            std::mem::swap(&mut out, &mut into);
        })
    });
    g.bench_function("cross_thread", |b| {
        b.iter_custom(|iters| {
            let h = Arc::new(Handoff::new(2, 1024).unwrap());
            let total = iters as usize * BURST;
            let owner = {
                let h = h.clone();
                let into = slots();
                std::thread::spawn(move || {
                    let (mut got, mut into, start) = (0, into, StdInstant::now());
                    while got < total && start.elapsed() < Duration::from_secs(60) {
                        match h.take(1, &mut into) {
                            // Nothing yet: let the sender run if the two share a core.
                            0 => std::thread::yield_now(),
                            n => got += n,
                        }
                    }
                    got
                })
            };
            let mut out = slots();
            let start = StdInstant::now();
            let mut sent = 0;
            while sent < total && start.elapsed() < Duration::from_secs(60) {
                let before = sent;
                for slot in out.iter_mut().take(total - sent) {
                    if h.offer(1, slot) {
                        slot.load(DEFAULT_HEADROOM, &frame);
                        sent += 1;
                    }
                }
                h.wake();
                if sent == before {
                    // The inbox is full: let the owner run if the two share a core.
                    std::thread::yield_now();
                }
            }
            assert_eq!(owner.join().unwrap(), total);
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, owner, inbox);
criterion_main!(benches);
