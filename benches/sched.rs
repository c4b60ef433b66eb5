//! `sched/<name>/<n>`: ns per scheduling decision for every scheduler over 4, 64 and 1024 real
//! servers with realistic, uneven counters. `sched_bind/<name>/<n>`: a decision and then the
//! binding of the new connection to the pick (its InActConn up by one, told to the scheduler
//! through `counts_moved` as the director tells it), what a flood of new connections costs.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::sched::{SchedCx, SeededRng};
use lvs::core::service::SchedFlags;
use lvs::core::testkit::syn_meta;
use lvs::core::testkit::ServerList;
use lvs::core::wire::PacketMeta;
use lvs::core::Instant;

fn servers(n: usize) -> ServerList {
    let mut list = ServerList::new(SchedFlags::default());
    let mut rng = SeededRng::new(7);
    for i in 0..n {
        let addr = IpAddr::from((0x0a00_0000u32 + i as u32).to_be_bytes());
        let w = 1 + rng.next_u32() % 10;
        let id = list.link(RealServer::new(addr, 80, FwdMethod::Route, w));
        list.set_counts(id, rng.next_u32() % 200, rng.next_u32() % 2000);
    }
    list
}

fn packet(i: u32) -> PacketMeta {
    let client = IpAddr::from((0xc633_0000u32 + i).to_be_bytes());
    let vip = IpAddr::from((0xcb00_7100u32 + (i & 0xff)).to_be_bytes());
    syn_meta((client, 1024 + (i as u16)), (vip, 80))
}

fn bench(c: &mut Criterion) {
    let pkts: Vec<PacketMeta> = (0..1024).map(packet).collect();
    for name in lvs::sched::NAMES {
        let mut g = c.benchmark_group(format!("sched/{name}"));
        for n in [4usize, 64, 1024] {
            let list = servers(n);
            let mut s = lvs::sched::by_name(name).unwrap();
            let view = list.view();
            s.init_service(&view).unwrap();
            let mut rng = SeededRng::new(1);
            let mut i = 0usize;
            g.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let mut cx = SchedCx { now: Instant::from_secs(1), rng: &mut rng };
                    black_box(s.schedule(&mut cx, &view, &pkts[i]))
                })
            });
        }
        g.finish();
    }
    for name in lvs::sched::NAMES {
        let mut g = c.benchmark_group(format!("sched_bind/{name}"));
        for n in [64usize, 1024] {
            let mut list = servers(n);
            let mut s = lvs::sched::by_name(name).unwrap();
            s.init_service(&list.view()).unwrap();
            let mut rng = SeededRng::new(1);
            let mut i = 0usize;
            g.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let mut cx = SchedCx { now: Instant::from_secs(1), rng: &mut rng };
                    let pick = s.schedule(&mut cx, &list.view(), &pkts[i]);
                    if let Some(d) = pick.and_then(|id| list.view().get(id)).map(|d| (d.id(), d.active(), d.inactive()))
                    {
                        list.set_counts(d.0, d.1, d.2 + 1);
                        s.counts_moved(&list.view(), d.0);
                    }
                    black_box(pick)
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
