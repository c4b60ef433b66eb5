//! `pipeline/{dr,nat,tun}/{established,new}/{1,10k,1m}` and `pipeline/nat/reply/{10k,1m}`: ns
//! per packet through
//! `Director::process_burst` in bursts of 32 frames, with that many live connections.
//!
//! `established` sends data segments of live connections (parse, one index probe, state step,
//! rewrite). Each burst's 32 flows are drawn from a precomputed pseudo-random sequence of flow
//! indices spread over the whole table (2^20 draws, cycled), so with 1 M flows every packet
//! meets cold entries as a real director's do, rather than the same 32 warm ones. A frame is
//! made by copying one prebuilt segment into the burst's buffer (as a receive would) and
//! writing its flow's client address and port, with both checksums updated (RFC 1624).
//!
//! `reply` (NAT only) sends the real servers' data segments back to the clients of those flows,
//! spread the same way: a reply's client-side lookup misses (its home group names no candidate),
//! so the burst also hashes its reply key and prefetches the reply index's home group. The frame
//! is the prebuilt segment of the flow's server with the flow's client address and port written
//! in as its destination.
//!
//! `new` sends SYNs of fresh flows (schedule + insert); between measured bursts the clock jumps
//! past the SYN_RECV timeout so they expire, while the live connections (with a long
//! ESTABLISHED timeout) stay.
//!
//! The director takes the processor's prefetch instruction (`lvs::dataplane::prefetch::hook`),
//! as `Runtime` gives it, so a burst's index lines and entries are prefetched before it reads
//! any.
//!
//! Setting up also prints the connection table's bytes per connection (`table_stats()`) for
//! each method and size, and for one million IPv6 DR connections.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lvs::core::addr::Af;
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::Tcp;
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{Instant, Verdict};

#[path = "../examples/common/traffic.rs"]
mod traffic;

use traffic::{client, data, director};

const BURST: usize = 32;

/// How many flow indices the established sequence holds before it repeats.
const DRAWS: usize = 1 << 20;

/// Offsets in an untagged IPv4/TCP segment: header checksum, source and destination address,
/// TCP source and destination port, TCP checksum.
const IP_CSUM: usize = 24;
const IP_SRC: usize = 26;
const IP_DST: usize = 30;
const TCP_SPORT: usize = 34;
const TCP_DPORT: usize = 36;
const TCP_CSUM: usize = 50;

/// `count` flow indices below `live`, pseudo-random (splitmix64) and fixed from run to run.
fn spread(live: u32, count: usize) -> Vec<u32> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % u64::from(live)) as u32
        })
        .collect()
}

/// The 16-bit words a flow's client end contributes to both checksums (address, then port).
fn words(i: u32) -> [u16; 3] {
    match client(Af::V4, i) {
        (IpAddr::V4(a), port) => {
            let o = a.octets();
            [u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]]), port]
        }
        (IpAddr::V6(_), _) => unreachable!("IPv4 flows"),
    }
}

/// RFC 1624 eqn. 3 over several words: the checksum at `at` after `old` became `new`.
fn update(buf: &mut [u8], at: usize, old: &[u16], new: &[u16]) {
    let mut sum = u32::from(!u16::from_be_bytes([buf[at], buf[at + 1]]));
    for (o, n) in old.iter().zip(new) {
        sum += u32::from(!o) + u32::from(*n);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    buf[at..at + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Turns `frame`, a copy of flow 0's segment, into flow `i`'s.
fn aim(frame: &mut [u8], i: u32) {
    aim_at(frame, i, IP_SRC, TCP_SPORT);
}

/// Turns `frame`, a copy of a segment of flow 0 (a request, or a server's reply), into flow
/// `i`'s: the client's address and port at `addr` and `port`.
fn aim_at(frame: &mut [u8], i: u32, addr: usize, port: usize) {
    let (old, new) = (words(0), words(i));
    frame[addr..addr + 2].copy_from_slice(&new[0].to_be_bytes());
    frame[addr + 2..addr + 4].copy_from_slice(&new[1].to_be_bytes());
    frame[port..port + 2].copy_from_slice(&new[2].to_be_bytes());
    update(frame, IP_CSUM, &old[..2], &new[..2]);
    update(frame, TCP_CSUM, &old, &new);
}

/// The real server (1 to 4, as `traffic::director` numbers them) of each of the first `live`
/// flows, read from the director's connection list.
fn servers(d: &lvs::Director, live: u32) -> Vec<u8> {
    let mut of = vec![0u8; live as usize];
    for c in d.connections(Instant::from_secs(2)) {
        let (IpAddr::V4(a), IpAddr::V4(rs)) = (c.client.addr, c.dest.addr) else { continue };
        let i = (u32::from(a) - 0x0a00_0000) << 14 | u32::from(c.client.port - 1024);
        if let Some(s) = of.get_mut(i as usize) {
            *s = rs.octets()[3] - 10;
        }
    }
    of
}

/// A data segment of real server `s` (1 to 4) of the NAT director answering flow 0.
fn reply(s: u8) -> Vec<u8> {
    let server = (IpAddr::from([192, 0, 2, 10 + s]), 80);
    let mut t = Tcp::new(server, client(Af::V4, 0), flags::ACK);
    t.payload = &[0x55; 64];
    t.src_mac = [2, 0, 0, 0, 1, s];
    t.build()
}

fn report(what: &str, d: &lvs::Director, live: u32) {
    let t = d.table_stats();
    eprintln!(
        "{what}: {} entries, {} bytes held, {:.1} bytes per connection",
        t.entries,
        t.bytes,
        t.bytes as f64 / f64::from(live)
    );
}

fn bench(c: &mut Criterion) {
    let vip = traffic::vip(Af::V4);
    let template = data(Af::V4, 0);
    for i in [1, 16_383, 16_384, 999_999] {
        let mut f = template.clone();
        aim(&mut f, i);
        assert_eq!(f, data(Af::V4, i), "the benchmark's frame of flow {i}");
        let mut r = reply(2);
        aim_at(&mut r, i, IP_DST, TCP_DPORT);
        let mut t = Tcp::new((IpAddr::from([192, 0, 2, 12]), 80), client(Af::V4, i), flags::ACK);
        t.payload = &[0x55; 64];
        t.src_mac = [2, 0, 0, 0, 1, 2];
        assert_eq!(r, t.build(), "the benchmark's reply of flow {i}");
    }
    for method in ["dr", "nat", "tun"] {
        let mut g = c.benchmark_group(format!("pipeline/{method}"));
        g.throughput(Throughput::Elements(BURST as u64));
        for (label, live) in [("1", 1u32), ("10k", 10_000), ("1m", 1_000_000)] {
            let mut d = director(Af::V4, method, 0..live, 1);
            d.set_prefetch(lvs::dataplane::prefetch::hook());
            report(&format!("pipeline/{method}/{label}"), &d, live);
            // Established: data segments of flows drawn over the whole table.
            let order = spread(live, DRAWS);
            let mut frames: Vec<Frame> = (0..BURST).map(|_| Frame::new(DEFAULT_HEADROOM, &template)).collect();
            let mut verdicts = [Verdict::NotMine; BURST];
            let mut cursor = order.chunks_exact(BURST).cycle();
            g.bench_function(BenchmarkId::new("established", label), |b| {
                b.iter(|| {
                    let flows = cursor.next().unwrap_or_default();
                    for (f, i) in frames.iter_mut().zip(flows) {
                        f.load(DEFAULT_HEADROOM, &template);
                        aim(f.data_mut(), *i);
                    }
                    d.process_burst(Instant::from_secs(2), &mut frames, &mut verdicts);
                    black_box(&verdicts);
                })
            });
            // Reply: the servers' segments of the same spread of flows, back through NAT.
            if method == "nat" && live > 1 {
                let server = servers(&d, live);
                assert!(server.iter().all(|s| (1..=4).contains(s)), "every flow has its server");
                let replies: Vec<Vec<u8>> = (1..=4).map(reply).collect();
                let load = |frames: &mut [Frame], flows: &[u32]| {
                    for (f, i) in frames.iter_mut().zip(flows) {
                        f.load(DEFAULT_HEADROOM, &replies[usize::from(server[*i as usize] - 1)]);
                        aim_at(f.data_mut(), *i, IP_DST, TCP_DPORT);
                    }
                };
                load(&mut frames, &order[..BURST]);
                d.process_burst(Instant::from_secs(2), &mut frames, &mut verdicts);
                for v in verdicts {
                    assert_eq!(v, Verdict::Transmit { port: 0, dest: None }, "a reply goes back to the client");
                }
                g.bench_function(BenchmarkId::new("reply", label), |b| {
                    b.iter(|| {
                        load(&mut frames, cursor.next().unwrap_or_default());
                        d.process_burst(Instant::from_secs(2), &mut frames, &mut verdicts);
                        black_box(&verdicts);
                    })
                });
            }
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
                                        Tcp::new(client(Af::V4, next), (vip, 80), flags::SYN).frame()
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
    report("table/v6/dr/1m", &director(Af::V6, "dr", 0..1_000_000, 1), 1_000_000);
}

criterion_group!(benches, bench);
criterion_main!(benches);
