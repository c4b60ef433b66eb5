//! A hashed timer wheel for connection expiry (the kernel gives each connection a `timer_list`).
//!
//! Slots are 64 ms wide; 8192 slots cover about 9 minutes, and an entry due later simply
//! waits in its slot for another turn. Each entry is linked through its own 24-bit
//! `tprev`/`tnext`, so linking and unlinking are O(1); the first entry of a slot's list names
//! its slot in `tprev`, so an entry keeps no tick of its own. A bitmap of non-empty slots lets
//! an idle wheel skip ahead without visiting empty slots. Re-arming is lazy: a packet only
//! moves `expires` forward, and the entry is re-filed when its slot comes up.
//!
//! Entries keep `expires` in wrapping milliseconds (`u32`), so the wheel must be driven
//! (`pop_due`) at least once in 2^31 ms (24.8 days) and no timeout may be longer than that;
//! [`next_deadline`](Wheel::next_deadline) asks for much less.

use alloc::vec;
use alloc::vec::Vec;

use super::{Conn, ConnId, MAX_ENTRIES, NIL};

/// Slots are 2^6 ms wide.
const SLOT_SHIFT: u32 = 6;
const SLOTS: usize = 8192;
const MASK: u64 = SLOTS as u64 - 1;

/// The `tprev` of the first entry of slot `s`'s list is `HEAD + s`: the slot is found from
/// the entry alone, so an entry keeps no tick. Handles stay below it ([`MAX_ENTRIES`]), and
/// `HEAD + s` stays below the 24-bit "none".
const HEAD: u32 = (1 << 24) - 1 - SLOTS as u32;
const _: () = assert!(MAX_ENTRIES <= HEAD as usize);

/// Milliseconds on the caller's clock of nanoseconds.
fn ms_of(ns: u64) -> u64 {
    ns / 1_000_000
}

/// Ticks from the tick that starts at wrapping millisecond `base` (a multiple of the slot
/// width) to the tick of wrapping millisecond `at`: negative when `at` is earlier. Times of
/// live entries lie within 2^31 ms of the cursor, so the wrapping difference orders them.
fn ticks_from(base: u32, at: u32) -> i32 {
    (at.wrapping_sub(base) as i32) >> SLOT_SHIFT
}

pub(crate) struct Wheel {
    heads: Vec<u32>,
    bitmap: Vec<u64>,
    /// The next tick to process (absolute: milliseconds >> [`SLOT_SHIFT`]).
    cursor: u64,
    pub(crate) count: u32,
}

impl Wheel {
    pub(crate) fn new() -> Self {
        Wheel { heads: vec![NIL; SLOTS], bitmap: vec![0; SLOTS / 64], cursor: 0, count: 0 }
    }

    /// Starts the wheel at `now` (ns; the first time the table sees a clock).
    pub(crate) fn start(&mut self, now: u64) {
        if self.count == 0 {
            self.cursor = ms_of(now) >> SLOT_SHIFT;
        }
    }

    /// The wrapping millisecond at which the cursor's tick starts.
    fn cursor_ms(&self) -> u32 {
        (self.cursor << SLOT_SHIFT) as u32
    }

    /// Links entry `id` at the slot of its `expires` (or the next slot to process if that is
    /// already past).
    pub(crate) fn link(&mut self, slab: &mut [Conn], id: u32) {
        let cursor_ms = self.cursor_ms();
        let Some(c) = slab.get_mut(id as usize) else { return };
        let ahead = ticks_from(cursor_ms, c.expires).max(0).unsigned_abs();
        let slot = ((self.cursor + u64::from(ahead)) & MASK) as usize;
        let head = self.heads[slot];
        c.set_tprev(HEAD + slot as u32);
        c.set_tnext(head);
        if let Some(h) = slab.get_mut(head as usize) {
            h.set_tprev(id);
        }
        self.heads[slot] = id;
        self.bitmap[slot / 64] |= 1 << (slot % 64);
        self.count += 1;
    }

    pub(crate) fn unlink(&mut self, slab: &mut [Conn], id: u32) {
        let Some(c) = slab.get(id as usize) else { return };
        let (prev, next) = (c.tprev(), c.tnext());
        if let Some(n) = slab.get_mut(next as usize) {
            n.set_tprev(prev);
        }
        if prev < HEAD {
            if let Some(p) = slab.get_mut(prev as usize) {
                p.set_tnext(next);
            }
        } else if let Some(head) = self.heads.get_mut(prev.wrapping_sub(HEAD) as usize) {
            let slot = (prev - HEAD) as usize;
            *head = next;
            if next == NIL {
                self.bitmap[slot / 64] &= !(1 << (slot % 64));
            }
        }
        self.count -= 1;
    }

    /// Keeps entry `id` findable after its `expires` changed from `old`: an entry waits in a
    /// slot no later than its expiry's, so only an expiry moved to an earlier tick (still to
    /// come) re-files it; a later one (what packets do) touches nothing but the entry.
    #[inline]
    pub(crate) fn rearm(&mut self, slab: &mut [Conn], id: u32, old: u32) {
        let Some(c) = slab.get(id as usize) else { return };
        let base = self.cursor_ms();
        let (was, now) = (ticks_from(base, old), ticks_from(base, c.expires));
        if now < was && was > 0 {
            self.unlink(slab, id);
            self.link(slab, id);
        }
    }

    /// Moves every entry whose time has come out of the wheel into `due` (unlinked), re-filing
    /// those whose `expires` moved on. Processes only slots that lie wholly before `now` (ns).
    pub(crate) fn pop_due(&mut self, slab: &mut [Conn], now: u64, due: &mut Vec<ConnId>) {
        let now_ms = ms_of(now);
        let target = now_ms >> SLOT_SHIFT;
        let now_ms = now_ms as u32;
        while self.cursor < target {
            if self.count == 0 {
                self.cursor = target;
                break;
            }
            match self.next_busy(target - self.cursor) {
                None => {
                    self.cursor = target;
                    break;
                }
                Some(dist) => self.cursor += u64::from(dist),
            }
            let slot = (self.cursor & MASK) as usize;
            let mut id = self.heads[slot];
            self.heads[slot] = NIL;
            self.bitmap[slot / 64] &= !(1 << (slot % 64));
            self.cursor += 1;
            while let Some(c) = slab.get_mut(id as usize) {
                let next = c.tnext();
                self.count -= 1;
                if now_ms.wrapping_sub(c.expires) as i32 >= 0 {
                    c.set_tprev(NIL);
                    c.set_tnext(NIL);
                    due.push(ConnId(id));
                } else {
                    self.link(slab, id);
                }
                id = next;
            }
        }
    }

    /// Distance from the cursor to the first non-empty slot, if it is below `limit`.
    fn next_busy(&self, limit: u64) -> Option<u32> {
        let limit = limit.min(SLOTS as u64) as u32;
        let mut dist = 0u32;
        while dist < limit {
            let slot = ((self.cursor + u64::from(dist)) & MASK) as usize;
            let word = self.bitmap[slot / 64] >> (slot % 64);
            if word != 0 {
                let d = dist + word.trailing_zeros();
                return (d < limit).then_some(d);
            }
            dist += 64 - (slot % 64) as u32;
        }
        None
    }

    /// When `pop_due` should next be called, or `None` when the wheel is empty.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let dist = self.next_busy(SLOTS as u64).unwrap_or(0);
        Some(((self.cursor + u64::from(dist) + 1) << SLOT_SHIFT).saturating_mul(1_000_000))
    }

    pub(crate) fn allocation_size(&self) -> usize {
        self.heads.capacity() * 4 + self.bitmap.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries due at `ms` each, linked in order from a wheel started at 0.
    fn wheel_with(due_ms: &[u32]) -> (Wheel, Vec<Conn>) {
        let mut w = Wheel::new();
        w.start(0);
        let mut slab: Vec<Conn> = due_ms.iter().map(|&expires| Conn { expires, ..Conn::BLANK }).collect();
        for id in 0..slab.len() as u32 {
            w.link(&mut slab, id);
        }
        (w, slab)
    }

    fn pop(w: &mut Wheel, slab: &mut [Conn], now_ms: u64) -> Vec<u32> {
        let mut due = Vec::new();
        w.pop_due(slab, now_ms * 1_000_000, &mut due);
        due.iter().map(|c| c.0).collect()
    }

    /// Unlinking the head, the middle and the tail of one slot's list leaves the others to
    /// expire (a timer fires once its time has passed and its slot lies wholly before `now`),
    /// and the wheel's count follows.
    #[test]
    fn unlink_anywhere_in_a_slot() {
        let (mut w, mut slab) = wheel_with(&[1000, 1001, 1002, 1003, 5000]);
        // Linked at the head: 3 heads slot 1000/64, then 2, 1, 0.
        assert_eq!(slab[3].tprev(), HEAD + 1000 / 64);
        w.unlink(&mut slab, 3);
        w.unlink(&mut slab, 1);
        assert_eq!(w.count, 3);
        assert_eq!(pop(&mut w, &mut slab, 999), Vec::<u32>::new());
        let mut got = pop(&mut w, &mut slab, 1100);
        got.sort_unstable();
        assert_eq!(got, [0, 2]);
        w.unlink(&mut slab, 4);
        assert_eq!((w.count, w.next_deadline()), (0, None));
    }

    /// An expiry moved later leaves the entry where it is, to be re-filed when its slot comes
    /// up; one moved earlier is re-filed at once, so it expires on time.
    #[test]
    fn rearm_earlier_refiles() {
        let (mut w, mut slab) = wheel_with(&[10_000, 10_000]);
        slab[0].expires = 2000;
        w.rearm(&mut slab, 0, 10_000);
        slab[1].expires = 20_000;
        w.rearm(&mut slab, 1, 10_000);
        assert_eq!(slab[1].tprev(), HEAD + 10_000 / 64, "a later expiry stays in its slot");
        assert_eq!(pop(&mut w, &mut slab, 2100), [0]);
        assert_eq!(pop(&mut w, &mut slab, 15_000), Vec::<u32>::new());
        assert_eq!(w.count, 1);
        assert_eq!(pop(&mut w, &mut slab, 20_100), [1]);
    }

    /// Expiry times wrap at 2^32 ms: an entry armed just before the wrap for a time just
    /// after it expires after the wrap, not at once.
    #[test]
    fn expiry_wraps() {
        let start = u64::from(u32::MAX) - 500;
        let mut w = Wheel::new();
        w.start(start * 1_000_000);
        let mut slab = vec![Conn { expires: (start as u32).wrapping_add(1000), ..Conn::BLANK }];
        w.link(&mut slab, 0);
        assert_eq!(pop(&mut w, &mut slab, start + 900), Vec::<u32>::new());
        assert_eq!(pop(&mut w, &mut slab, start + 1100), [0]);
    }
}
