//! `sync/*`: connection sync on one core.
//!
//! - `sync/encode`: records put into messages (`MessageBuilder`), 40 per 1448-byte message.
//! - `sync/apply/{create,update}`: a backup applying a 40-record message whose entries are new,
//!   or which it already has.
//! - `sync/resync/1m`: a full resync of a master holding 1 M connections into an empty backup
//!   (stream, encode, decode, apply); the bytes per synced connection on the backup are printed.

use std::hint::black_box;
use std::time::{Duration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lvs::core::addr::Af;
use lvs::core::sync::wire::{flags, MessageBuilder, Record, Version};
use lvs::core::sync::{DaemonConfig, Role, SyncParams};
use lvs::core::Instant;

#[path = "../examples/common/traffic.rs"]
#[allow(dead_code)]
mod traffic;

fn record(i: u32) -> Record<'static> {
    let (caddr, cport) = traffic::client(Af::V4, i);
    Record {
        proto: 6,
        flags: flags::DROUTE | flags::NOOUTPUT,
        state: 1,
        caddr,
        vaddr: traffic::vip(Af::V4),
        daddr: format!("192.0.2.1{}", 1 + i % 4).parse().unwrap(),
        cport,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

/// 40-record messages for flows `from..from + 40 * n`.
fn messages(from: u32, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|m| {
            let mut b = MessageBuilder::new(Version::V1, 255, 1472);
            for i in 0..40 {
                b.push(&record(from + m * 40 + i));
            }
            b.finish()
        })
        .collect()
}

fn backup(params: SyncParams) -> lvs::Director {
    let mut d = traffic::director(Af::V4, "dr", 0..0, 1);
    d.set_sync_params(params).unwrap();
    d.start_sync(Role::Backup, &DaemonConfig::new("sync0"), 1500).unwrap();
    d
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync");
    g.throughput(Throughput::Elements(40));
    let recs: Vec<Record<'static>> = (0..40).map(record).collect();
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut m = MessageBuilder::new(Version::V1, 255, 1472);
            for r in &recs {
                m.push(r);
            }
            black_box(m.finish())
        })
    });
    // Apply: fresh entries each time (the backup is emptied between measured chunks).
    let msgs = messages(0, 2_500);
    g.bench_function(BenchmarkId::new("apply", "create"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let mut d = backup(SyncParams::default());
                let chunk = (iters - done).min(msgs.len() as u64);
                let t0 = StdInstant::now();
                for m in &msgs[..chunk as usize] {
                    black_box(d.handle_sync(Instant::from_secs(1), m).unwrap());
                }
                spent += t0.elapsed();
                done += chunk;
            }
            spent
        })
    });
    let mut d = backup(SyncParams::default());
    for m in &msgs {
        d.handle_sync(Instant::from_secs(1), m).unwrap();
    }
    let mut k = 0;
    g.bench_function(BenchmarkId::new("apply", "update"), |b| {
        b.iter(|| {
            k = (k + 1) % msgs.len();
            black_box(d.handle_sync(Instant::from_secs(2), &msgs[k]).unwrap())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sync/resync");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    let params = SyncParams { resync_rate: u32::MAX, ..SyncParams::default() };
    let mut master = traffic::director(Af::V4, "dr", 0..1_000_000, 1);
    master.set_sync_params(params).unwrap();
    master.start_sync(Role::Master, &DaemonConfig::new("sync0"), 1500).unwrap();
    let mut printed = false;
    g.bench_function("1m", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let mut b = backup(params);
                b.reserve(1_000_000);
                let t0 = StdInstant::now();
                let mut now = Instant::from_secs(10);
                let req = b.poll_sync(now).unwrap();
                master.handle_sync(now, &req.bytes).unwrap();
                loop {
                    let mut moved = 0;
                    while let Some(m) = master.poll_sync(now) {
                        b.handle_sync(now, &m.bytes).unwrap();
                        moved += 1;
                    }
                    if moved == 0 && b.sync_stats().resyncs_done > 0 {
                        break;
                    }
                    now = Instant::from_nanos(now.as_nanos() + 100_000_000);
                }
                spent += t0.elapsed();
                assert_eq!(b.conn_count(), 1_000_000);
                if !printed {
                    let t = b.table_stats();
                    eprintln!(
                        "sync/resync/1m: backup holds {} entries in {} bytes, {:.1} bytes per connection",
                        t.entries,
                        t.bytes,
                        t.bytes as f64 / t.entries as f64
                    );
                    printed = true;
                }
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
