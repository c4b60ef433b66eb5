//! `pipeline/{dr,nat,tun}/{established,new}/{1,10k,1m}`: ns per packet through
//! `Director::process_burst` in bursts of 32 frames, with that many live connections.
//!
//! `established` sends data segments of live connections (parse, one index probe, state step,
//! rewrite). `new` sends SYNs of fresh flows (schedule + insert); between measured bursts the
//! clock jumps past the SYN_RECV timeout so they expire, while the live connections (with a long
//! ESTABLISHED timeout) stay.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lvs::core::addr::Af;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::Tcp;
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, Instant, Verdict};

const BURST: usize = 32;

fn client(i: u32) -> (IpAddr, u16) {
    (IpAddr::from((0x0a00_0000u32 + (i >> 14)).to_be_bytes()), 1024 + (i & 0x3fff) as u16)
}

fn director(method: &str, live: u32) -> lvs::Director {
    let mut d = lvs::director(DirectorConfig {
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        addr4: Some("192.0.2.1".parse().unwrap()),
        max_conns: 4 << 20,
        ..DirectorConfig::default()
    });
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 });
    let flag = match method {
        "dr" => "-g",
        "nat" => "-m",
        _ => "-i",
    };
    let mut rules = String::from("-A -t 203.0.113.100:80 -s wlc\n");
    for i in 1..=4 {
        let rs: IpAddr = format!("192.0.2.1{i}").parse().unwrap();
        d.set_neighbour(rs, Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i]), port: 1 });
        rules.push_str(&format!("-a -t 203.0.113.100:80 -r {rs}:80 {flag} -w 1\n"));
    }
    d.restore(&rules).unwrap();
    d.set_timeouts(86_400, 0, 0);
    d.reserve(live as usize + (1 << 16));
    let vip: IpAddr = "203.0.113.100".parse().unwrap();
    for i in 0..live {
        for f in [flags::SYN, flags::ACK] {
            let mut fr = Tcp::new(client(i), (vip, 80), f).frame();
            let _ = d.process(Instant::from_secs(1), &mut fr);
        }
    }
    d
}

fn bench(c: &mut Criterion) {
    let vip: IpAddr = "203.0.113.100".parse().unwrap();
    let payload = [0x55u8; 64];
    for method in ["dr", "nat", "tun"] {
        let mut g = c.benchmark_group(format!("pipeline/{method}"));
        g.throughput(Throughput::Elements(BURST as u64));
        for (label, live) in [("1", 1u32), ("10k", 10_000), ("1m", 1_000_000)] {
            let mut d = director(method, live);
            let t = d.table_stats();
            eprintln!(
                "pipeline/{method}/{label}: {} entries, {} bytes held, {:.1} bytes per connection",
                t.entries,
                t.bytes,
                t.bytes as f64 / f64::from(live)
            );
            // Established: data segments spread over the live connections.
            let templates: Vec<Frame> = (0..BURST as u32)
                .map(|k| {
                    let mut t = Tcp::new(client(k.wrapping_mul(7919) % live), (vip, 80), flags::ACK);
                    t.payload = &payload;
                    t.frame()
                })
                .collect();
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
