//! What the director fuzz targets share: one frame through a director with the data path's
//! contract checked (a forward parses, a drop is counted exactly once), and the replay of
//! mutated fixtures the FullNAT and SYN-proxy targets feed.

use lvs_core::wire::{parse, Frame, DEFAULT_HEADROOM};
use lvs_core::{Director, Instant, Verdict};

/// Processes `frame` at `now` (nanoseconds), checks the verdict, then ticks.
pub fn step(d: &mut Director, now: u64, frame: &mut Frame) {
    let before: u64 = d.drops().iter().sum();
    match d.process(Instant(now), frame) {
        Verdict::Transmit { .. } | Verdict::Fragmented { .. } => {
            assert!(parse(frame.data()).is_ok());
            assert!(d.fragments().iter().all(|f| parse(f.data()).is_ok()));
        }
        Verdict::Drop(r) => {
            assert!(d.drops()[r.index()] > 0);
            assert_eq!(d.drops().iter().sum::<u64>(), before + 1);
        }
        Verdict::Local | Verdict::NotMine => {}
    }
    d.tick(Instant(now));
}

/// Replays `data` as records of `pick: u8, clock: u8, n: u8` then `n` times `offset: u16
/// (big-endian), xor: u8`: `pick` chooses a fixture, `clock` moves time by tenths of a second,
/// and each pair flips bits at `offset` (modulo the frame's length) of the fixture's copy.
pub fn replay_mutated(d: &mut Director, fixtures: &[Vec<u8>], data: &[u8]) {
    let mut now = 1_000_000_000u64;
    let mut frame = Frame::with_capacity(DEFAULT_HEADROOM + 2048);
    let mut rest = data;
    while let [pick, clock, n, tail @ ..] = rest {
        let Some(base) = fixtures.get(usize::from(*pick) % fixtures.len()) else { return };
        let mut bytes = base.clone();
        let muts = (usize::from(*n) * 3).min(tail.len());
        let (m, next) = tail.split_at(muts);
        rest = next;
        for c in m.chunks_exact(3) {
            let off = usize::from(u16::from_be_bytes([c[0], c[1]])) % bytes.len();
            bytes[off] ^= c[2];
        }
        now += u64::from(*clock) * 100_000_000;
        frame.load(DEFAULT_HEADROOM, &bytes);
        step(d, now, &mut frame);
    }
}
