//! A hashed timer wheel for connection expiry (the kernel gives each connection a `timer_list`).
//!
//! Slots are 2^26 ns (about 67 ms) wide; 8192 slots cover about 9 minutes, and an entry due
//! later simply waits in its slot for another turn. Each entry is linked through its own
//! `tprev`/`tnext`, so linking and unlinking are O(1), and a bitmap of non-empty slots lets an
//! idle wheel skip ahead without visiting empty slots. Re-arming is lazy: a packet only moves
//! `expires` forward, and the entry is re-filed when its slot comes up.

use alloc::vec;
use alloc::vec::Vec;

use super::{Conn, ConnId, NIL};

pub(crate) const SLOT_SHIFT: u32 = 26;
const SLOTS: usize = 8192;
const MASK: u32 = SLOTS as u32 - 1;

/// The absolute wheel tick of a time.
pub(crate) fn tick_of(ns: u64) -> u64 {
    ns >> SLOT_SHIFT
}

/// Entries keep the low 32 bits of their tick; ticks of live entries lie within 2^31 ticks
/// (about 4.5 years) of each other, so wrapping comparison orders them.
fn before(a: u64, b: u32) -> bool {
    ((a as u32).wrapping_sub(b) as i32) < 0
}

pub(crate) struct Wheel {
    heads: Vec<u32>,
    bitmap: Vec<u64>,
    /// The next tick to process.
    cursor: u64,
    pub(crate) count: u32,
}

impl Wheel {
    pub(crate) fn new() -> Self {
        Wheel { heads: vec![NIL; SLOTS], bitmap: vec![0; SLOTS / 64], cursor: 0, count: 0 }
    }

    /// Starts the wheel at `now` (the first time the table sees a clock).
    pub(crate) fn start(&mut self, now: u64) {
        if self.count == 0 {
            self.cursor = tick_of(now);
        }
    }

    /// Links entry `id` at the slot of its `expires` (or the next slot to process if that is
    /// already past).
    pub(crate) fn link(&mut self, slab: &mut [Conn], id: u32) {
        let Some(c) = slab.get_mut(id as usize) else { return };
        let tick = tick_of(c.expires).max(self.cursor);
        let slot = (tick & u64::from(MASK)) as usize;
        c.tick = tick as u32;
        c.tprev = NIL;
        let head = self.heads[slot];
        c.tnext = head;
        if let Some(h) = slab.get_mut(head as usize) {
            h.tprev = id;
        }
        self.heads[slot] = id;
        self.bitmap[slot / 64] |= 1 << (slot % 64);
        self.count += 1;
    }

    pub(crate) fn unlink(&mut self, slab: &mut [Conn], id: u32) {
        let Some(c) = slab.get(id as usize) else { return };
        let (prev, next, slot) = (c.tprev, c.tnext, (c.tick & MASK) as usize);
        if let Some(n) = slab.get_mut(next as usize) {
            n.tprev = prev;
        }
        match slab.get_mut(prev as usize) {
            Some(p) => p.tnext = next,
            None => {
                self.heads[slot] = next;
                if next == NIL {
                    self.bitmap[slot / 64] &= !(1 << (slot % 64));
                }
            }
        }
        self.count -= 1;
    }

    /// Re-files an entry whose `expires` moved earlier than the slot it waits in.
    pub(crate) fn rearm(&mut self, slab: &mut [Conn], id: u32) {
        let Some(c) = slab.get(id as usize) else { return };
        if before(tick_of(c.expires).max(self.cursor), c.tick) {
            self.unlink(slab, id);
            self.link(slab, id);
        }
    }

    /// Moves every entry whose time has come out of the wheel into `due` (unlinked), re-filing
    /// those whose `expires` moved on. Processes only slots that lie wholly before `now`.
    pub(crate) fn pop_due(&mut self, slab: &mut [Conn], now: u64, due: &mut Vec<ConnId>) {
        let target = tick_of(now);
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
            let slot = (self.cursor & u64::from(MASK)) as usize;
            let mut id = self.heads[slot];
            self.heads[slot] = NIL;
            self.bitmap[slot / 64] &= !(1 << (slot % 64));
            self.cursor += 1;
            while let Some(c) = slab.get(id as usize) {
                let next = c.tnext;
                self.count -= 1;
                if c.expires <= now {
                    if let Some(c) = slab.get_mut(id as usize) {
                        c.tprev = NIL;
                        c.tnext = NIL;
                    }
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
            let slot = ((self.cursor + u64::from(dist)) & u64::from(MASK)) as usize;
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
        Some((self.cursor + u64::from(dist) + 1) << SLOT_SHIFT)
    }

    pub(crate) fn allocation_size(&self) -> usize {
        self.heads.capacity() * 4 + self.bitmap.capacity() * 8
    }
}
