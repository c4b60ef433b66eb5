//! Every frame of the 479 public captures in `tests/data/corpus/` (tcpdump's test suite, many
//! of them malformed on purpose) goes through directors of every forwarding method whose
//! classifier marks all traffic for a fwmark service, so real and hostile packets reach the
//! scheduler, the connection table and the rewrites. Each frame must get a verdict — a
//! forward, `NotMine`, `Local` or a counted drop — and never a panic.

use std::path::Path;

use lvs::core::addr::Af;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::wire::{self, Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, Instant, PortConfig, Verdict};
use lvs::dataplane::pcap::read_capture;

fn director(fwd: &str, persistent: bool) -> lvs::Director {
    let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1]))
        .with_addr("192.0.2.1".parse().unwrap())
        .with_addr("2001:db8::1".parse().unwrap());
    let mut d = lvs::director(DirectorConfig { ports: vec![port; 2], ..DirectorConfig::default() });
    let n = Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 };
    d.set_gateway(Af::V4, n);
    d.set_gateway(Af::V6, n);
    d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 1 });
    d.set_neighbour("2001:db8::11".parse().unwrap(), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 1 });
    let p = if persistent { " -p 60" } else { "" };
    let rules = format!(
        "-A -f 1 -s wlc{p}\n-a -f 1 -r 192.0.2.11:0 {fwd} -w 1\n-A -f 1 -6 -s sh{p}\n-a -f 1 -6 -r [2001:db8::11]:0 {fwd} -w 1\n"
    );
    lvs::core::config::restore(&mut d, &rules).unwrap();
    d.set_classifier(Box::new(|_| 1));
    d
}

#[test]
fn every_frame_gets_a_verdict() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus/tcpdump-tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut directors = [director("-g", false), director("-m", false), director("-i", false), director("-m", true)];
    let (mut frames, mut unreadable, mut forwarded, mut dropped) = (0usize, 0usize, 0usize, 0usize);
    let mut frame = Frame::with_capacity(DEFAULT_HEADROOM + 70_000);
    for path in &files {
        let Ok(captured) = read_capture(path) else {
            unreadable += 1;
            continue;
        };
        for (i, c) in captured.iter().enumerate() {
            frames += 1;
            let now = Instant::from_secs(1 + i as u64);
            let _ = wire::parse(&c.data);
            for d in directors.iter_mut() {
                let before: u64 = d.drops().iter().sum();
                frame.load(DEFAULT_HEADROOM, &c.data);
                match d.process(now, &mut frame) {
                    Verdict::Transmit { .. } | Verdict::Fragmented { .. } => {
                        forwarded += 1;
                        for f in std::iter::once(&frame).chain(d.fragments()) {
                            assert!(
                                wire::parse(f.data()).is_ok(),
                                "{}: frame {i} forwarded unparsable",
                                path.display()
                            );
                        }
                    }
                    Verdict::Drop(r) => {
                        dropped += 1;
                        assert!(d.drops()[r.index()] > 0);
                        assert_eq!(d.drops().iter().sum::<u64>(), before + 1, "one drop, one count");
                    }
                    Verdict::Local | Verdict::NotMine => {}
                }
                d.tick(now);
            }
        }
    }
    assert!(files.len() >= 479, "corpus present: {}", files.len());
    // The LICENSE file, and two pcapng files whose options pcap-file rejects.
    assert!(unreadable <= 3, "{unreadable} files could not be read");
    assert!(frames > 7_000, "read {frames} frames");
    println!("forwarded {forwarded}, dropped {dropped}");
    println!(
        "{} files ({unreadable} not pcap/pcapng), {frames} frames, {forwarded} forwards, {dropped} drops",
        files.len()
    );
}
