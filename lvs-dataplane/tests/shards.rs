//! Share-nothing shards: control-plane changes reach every shard, statistics are summed, and
//! each shard hands frames back to the application through its handler.

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use lvs_core::config::parse_command;
use lvs_core::neigh::{MacAddr, Neighbour};
use lvs_core::proto::tcp::flags;
use lvs_core::testkit::{factory, Tcp};
use lvs_core::{Director, DirectorConfig, PortConfig};
use lvs_dataplane::io::PacketIo;
use lvs_dataplane::pcap::Captured;
use lvs_dataplane::replay::PcapReplay;
use lvs_dataplane::runtime::DeliveryKind::NotMine;
use lvs_dataplane::runtime::{Runtime, Shards};

fn director() -> Director {
    // The core's test scheduler: the dataplane does not depend on lvs-sched.
    let mut d = Director::new(DirectorConfig::default().port(PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1]))), factory);
    for i in 1..=2u8 {
        d.set_neighbour(
            format!("192.0.2.1{i}").parse().unwrap(),
            Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i]), port: 0 },
        );
    }
    lvs_core::config::restore(&mut d, "-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n")
        .unwrap();
    d
}

#[test]
fn shards_share_configuration_and_sum_statistics() {
    let make = Arc::new(|i: usize| {
        // Each shard sees its own flows, as a flow-hash fanout would give them.
        let frames = (0..500u16)
            .map(|p| Captured {
                ts_ns: 0,
                data: Tcp::new(
                    ("198.51.100.2".parse().unwrap(), 1000 * (i as u16 + 1) + p),
                    ("203.0.113.100".parse().unwrap(), 80),
                    flags::SYN,
                )
                .build(),
            })
            .collect();
        let port: Box<dyn PacketIo + Send> = Box::new(PcapReplay::new(frames));
        Ok(Runtime::new(director(), vec![port]))
    });
    let shards = Shards::spawn(2, make).unwrap();
    let add = parse_command(&["-a", "-t", "203.0.113.100:80", "-r", "192.0.2.12:80", "-g", "-w", "2"]).unwrap();
    shards.apply(&add).unwrap();
    assert!(shards.apply(&add).is_err(), "the second add fails on every shard alike");
    let start = StdInstant::now();
    let (mut listing, mut totals) = shards.stats();
    while totals.tx < 1000 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
        (listing, totals) = shards.stats();
    }
    shards.stop().unwrap();
    assert_eq!((totals.rx, totals.tx), (1000, 1000));
    assert!(listing.contains("TCP  203.0.113.100:80                 1000     1000"), "{listing}");
    assert!(listing.contains("  -> 192.0.2.12:80"), "the server added through the shards is listed:\n{listing}");
}

#[test]
fn shards_hand_frames_back_through_their_handlers() {
    let (tx, rx) = std::sync::mpsc::channel();
    let make = Arc::new(move |i: usize| {
        // One SYN for the service and two frames for no service (an address the director
        // does not balance), per shard.
        let frames = ["203.0.113.100", "198.51.100.1", "198.51.100.1"]
            .iter()
            .map(|dst| Captured {
                ts_ns: 0,
                data: Tcp::new(
                    ("198.51.100.2".parse().unwrap(), 1000 + i as u16),
                    (dst.parse().unwrap(), 80),
                    flags::SYN,
                )
                .build(),
            })
            .collect();
        let port: Box<dyn PacketIo + Send> = Box::new(PcapReplay::new(frames));
        let tx = tx.clone();
        Ok(Runtime::new(director(), vec![port]).on_local(move |d| {
            let _ = tx.send((i, d.kind, d.frame.port));
        }))
    });
    let shards = Shards::spawn(2, make).unwrap();
    let mut got = Vec::new();
    let start = StdInstant::now();
    while got.len() < 4 && start.elapsed() < Duration::from_secs(5) {
        got.extend(rx.recv_timeout(Duration::from_millis(50)));
    }
    let per_shard = shards.shard_stats();
    shards.stop().unwrap();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, [(0, NotMine, 0), (0, NotMine, 0), (1, NotMine, 0), (1, NotMine, 0)]);
    assert_eq!(per_shard.len(), 2);
    for s in per_shard {
        assert_eq!((s.rx, s.tx, s.not_mine, s.local_lost), (3, 1, 2, 0), "{s:?}");
    }
}
