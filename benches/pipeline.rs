//! `pipeline/{dr,nat,tun}/{established,new}/{1,10k,1m}`: ns per packet through
//! `Director::process_burst` in bursts of 32 frames, with that many live connections.
//!
//! `established` sends data segments of live connections (parse, one index probe, state step,
//! rewrite). `new` sends SYNs of fresh flows (schedule + insert); between measured bursts the
//! clock jumps past the SYN_RECV timeout so they expire, while the live connections (with a long
//! ESTABLISHED timeout) stay.

use std::hint::black_box;
use std::time::{Duration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::Tcp;
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{Instant, Verdict};

#[path = "../examples/common/traffic.rs"]
mod traffic;

use traffic::{client, data, director};

const BURST: usize = 32;

fn bench(c: &mut Criterion) {
    let vip = traffic::vip();
    for method in ["dr", "nat", "tun"] {
        let mut g = c.benchmark_group(format!("pipeline/{method}"));
        g.throughput(Throughput::Elements(BURST as u64));
        for (label, live) in [("1", 1u32), ("10k", 10_000), ("1m", 1_000_000)] {
            let mut d = director(method, 0..live, 1);
            let t = d.table_stats();
            eprintln!(
                "pipeline/{method}/{label}: {} entries, {} bytes held, {:.1} bytes per connection",
                t.entries,
                t.bytes,
                t.bytes as f64 / f64::from(live)
            );
            // Established: data segments spread over the live connections.
            let templates: Vec<Frame> =
                (0..BURST as u32).map(|k| Frame::new(DEFAULT_HEADROOM, &data(k.wrapping_mul(7919) % live))).collect();
            let mut frames = templates.clone();
            let mut verdicts = [Verdict::NotMine; BURST];
            g.bench_function(BenchmarkId::new("established", label), |b| {
                b.iter(|| {
                    for (f, t) in frames.iter_mut().zip(&templates) {
                        f.load(DEFAULT_HEADROOM, t.data());
                    }
                    d.process_burst(Instant::from_secs(2), &mut frames, &mut verdicts);
                    black_box(&verdicts);
                })
            });
            // New: SYNs of flows never seen, expired between measured chunks.
            let mut next = 2_000_000u32;
            let mut now = 2u64;
            g.bench_function(BenchmarkId::new("new", label), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let chunk = (iters - done).min(128);
                        let bursts: Vec<Vec<Frame>> = (0..chunk)
                            .map(|_| {
                                (0..BURST)
                                    .map(|_| {
                                        next = next.wrapping_add(1);
                                        Tcp::new(client(next), (vip, 80), flags::SYN).frame()
                                    })
                                    .collect()
                            })
                            .collect();
                        let start = StdInstant::now();
                        for mut burst in bursts {
                            d.process_burst(Instant::from_secs(now), &mut burst, &mut verdicts);
                            black_box(&verdicts);
                        }
                        spent += start.elapsed();
                        now += 61;
                        d.tick(Instant::from_secs(now));
                        done += chunk;
                    }
                    spent
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
