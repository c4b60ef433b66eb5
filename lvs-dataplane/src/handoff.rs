//! Frames a shard received for another shard, handed to their owner (DPVS's per-lcore
//! "redirect" rings, `dp_vs_redirect_ring`). When each shard takes one receive queue of a port
//! (AF_XDP, one socket per queue), the NIC's hash — on veth the sender's transmit queue —
//! picks where a frame arrives, not the shard that owns its connection. The owner is the one
//! the AF_PACKET shards' fanout program names ([`crate::steer::Steer`]: the client's side of
//! the frame, so that a request and its NAT reply, and with [`Steer::Client`] every template
//! of a client, meet on one shard); a frame that arrives elsewhere goes to its owner's inbox.
//!
//! Each shard has one bounded inbox (`crossbeam_queue::ArrayQueue`, lock-free, written by the
//! other shards). A frame moves without a copy: the sender swaps its receive slot for a spare
//! buffer from a shared pool and the owner swaps the frame into its own receive slot, giving
//! its old buffer back to the pool, so that after warm-up nothing is allocated. A full inbox
//! is a counted drop ([`crate::runtime::RuntimeStats::handoff_lost`]). An owner that waits for
//! traffic is woken by the first burst put in its inbox.
//!
//! [`Steer::Client`]: crate::steer::Steer::Client

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{fence, AtomicBool, Ordering};

use crossbeam_queue::ArrayQueue;
use lvs_core::wire::Frame;

use crate::io::fresh_frame;

/// Frames one inbox holds by default: 16 bursts of 64.
pub const DEFAULT_INBOX: usize = 1024;

/// The inboxes of a set of shards, shared by all of them (in an `Arc`).
pub struct Handoff {
    inboxes: Vec<Inbox>,
    /// Spare buffers: a sender takes one for each frame it hands over, an owner gives one back
    /// for each frame it takes.
    pool: ArrayQueue<Frame>,
}

/// One shard's inbox and the means to wake it.
struct Inbox {
    frames: ArrayQueue<Frame>,
    /// The owner is about to wait, or waits, for its descriptors: a sender must wake it.
    asleep: AtomicBool,
    /// A byte written here makes `wake_rx` readable, ending the owner's wait.
    wake_tx: UnixDatagram,
    wake_rx: UnixDatagram,
}

impl Handoff {
    /// Inboxes for `shards` shards, each holding up to `capacity` frames.
    ///
    /// # Errors
    /// `shards` or `capacity` is 0 ([`io::ErrorKind::InvalidInput`]); the wake-up sockets
    /// cannot be made.
    pub fn new(shards: usize, capacity: usize) -> io::Result<Handoff> {
        if shards == 0 || capacity == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a hand-off needs shards and room"));
        }
        let inboxes = (0..shards)
            .map(|_| {
                let (wake_tx, wake_rx) = UnixDatagram::pair()?;
                wake_tx.set_nonblocking(true)?;
                wake_rx.set_nonblocking(true)?;
                Ok(Inbox { frames: ArrayQueue::new(capacity), asleep: AtomicBool::new(false), wake_tx, wake_rx })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Handoff { inboxes, pool: ArrayQueue::new(shards * capacity) })
    }

    /// How many shards hand frames to each other.
    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// Puts the frame in `slot` into `shard`'s inbox, leaving a spare buffer in the slot;
    /// `false`, with the slot untouched, when the inbox is full (or there is no such shard).
    /// Any thread may offer; [`Runtime`](crate::runtime::Runtime) does it for the frames its
    /// ports receive for other shards, and calls [`Handoff::wake`] after each burst.
    pub fn offer(&self, shard: usize, slot: &mut Frame) -> bool {
        let Some(inbox) = self.inboxes.get(shard) else { return false };
        if inbox.frames.is_full() {
            return false;
        }
        let frame = std::mem::replace(slot, self.pool.pop().unwrap_or_else(fresh_frame));
        if let Err(frame) = inbox.frames.push(frame) {
            // Another sender filled it meanwhile.
            let _ = self.pool.push(std::mem::replace(slot, frame));
            return false;
        }
        true
    }

    /// Wakes every shard that waits while frames are in its inbox: a sender calls it after
    /// offering a burst (once per burst, not per frame: the fence costs more than an offer).
    pub fn wake(&self) {
        // Pairs with the fence in `may_sleep`: either the owner sees the frames before it
        // waits, or this sees it asleep and wakes it.
        fence(Ordering::SeqCst);
        for inbox in &self.inboxes {
            if inbox.asleep.load(Ordering::Relaxed)
                && !inbox.frames.is_empty()
                && inbox.asleep.swap(false, Ordering::SeqCst)
            {
                // A full socket buffer means a wake-up is pending already.
                let _ = inbox.wake_tx.send(&[1]);
            }
        }
    }

    /// Takes up to `slots.len()` frames from `shard`'s inbox into `slots`, oldest first, giving
    /// the slots' buffers to the pool; returns how many. Only the shard's own thread should
    /// take (frames of one sender then keep their order).
    pub fn take(&self, shard: usize, slots: &mut [Frame]) -> usize {
        let Some(inbox) = self.inboxes.get(shard) else { return 0 };
        let mut n = 0;
        for slot in slots.iter_mut() {
            let Some(frame) = inbox.frames.pop() else { break };
            // A full pool frees the buffer: the senders allocate again if they run short.
            let _ = self.pool.push(std::mem::replace(slot, frame));
            n += 1;
        }
        n
    }

    /// The descriptor that becomes readable when a frame comes for `shard` while it waits.
    pub(crate) fn wake_fd(&self, shard: usize) -> Option<RawFd> {
        self.inboxes.get(shard).map(|i| i.wake_rx.as_raw_fd())
    }

    /// Marks `shard` as about to wait; `false` (and not marked) when its inbox holds frames,
    /// so it should not wait at all.
    pub(crate) fn may_sleep(&self, shard: usize) -> bool {
        let Some(inbox) = self.inboxes.get(shard) else { return true };
        inbox.asleep.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if inbox.frames.is_empty() {
            return true;
        }
        inbox.asleep.store(false, Ordering::SeqCst);
        false
    }

    /// After `shard`'s wait: no longer asleep, and the wake-up bytes read (a bounded loop:
    /// each sender writes at most one byte per time it finds the shard asleep).
    pub(crate) fn awake(&self, shard: usize) {
        let Some(inbox) = self.inboxes.get(shard) else { return };
        inbox.asleep.store(false, Ordering::SeqCst);
        let mut byte = [0u8; 1];
        for _ in 0..self.inboxes.len() * 4 {
            if inbox.wake_rx.recv(&mut byte).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use lvs_core::wire::DEFAULT_HEADROOM;

    use super::*;

    fn frame(tag: u8) -> Frame {
        Frame::new(DEFAULT_HEADROOM, &[tag; 60])
    }

    #[test]
    fn frames_reach_their_owner_in_order_and_a_full_inbox_refuses() {
        let h = Handoff::new(2, 3).unwrap();
        for tag in 0..3 {
            let mut slot = frame(tag);
            assert!(h.offer(1, &mut slot));
            assert!(slot.data().is_empty(), "the slot holds a spare buffer");
        }
        let mut slot = frame(9);
        assert!(!h.offer(1, &mut slot), "three fit");
        assert_eq!(slot.data(), [9; 60], "a refused frame stays where it was");
        assert!(!h.offer(2, &mut slot), "no shard 2");
        let mut slots: Vec<Frame> = (0..4).map(|_| fresh_frame()).collect();
        assert_eq!(h.take(0, &mut slots), 0, "shard 0 got nothing");
        assert_eq!(h.take(1, &mut slots), 3);
        let tags: Vec<u8> = slots[..3].iter().map(|f| f.data()[0]).collect();
        assert_eq!(tags, [0, 1, 2]);
        assert_eq!(h.take(1, &mut slots), 0);
    }

    #[test]
    fn buffers_circulate_through_the_pool() {
        let h = Handoff::new(2, 8).unwrap();
        let mut slots: Vec<Frame> = (0..8).map(|_| fresh_frame()).collect();
        for round in 0..4u8 {
            for _ in 0..8 {
                assert!(h.offer(0, &mut frame(round)));
            }
            assert_eq!(h.take(0, &mut slots), 8);
            // Each frame taken gave a buffer back, each offered took one: the pool holds
            // what the first round allocated, no more.
            assert_eq!(h.pool.len(), 8, "round {round}");
        }
    }

    #[test]
    fn a_sleeping_owner_is_woken_once_and_a_busy_one_does_not_sleep() {
        let h = Handoff::new(2, 4).unwrap();
        // The wake-up bytes waiting for shard 1, read.
        let wakeups = |h: &Handoff| (0..8).take_while(|_| h.inboxes[1].wake_rx.recv(&mut [0u8; 1]).is_ok()).count();
        assert!(h.wake_fd(1).is_some() && h.wake_fd(2).is_none());
        assert!(h.may_sleep(0) && h.may_sleep(1));
        assert!(h.offer(1, &mut frame(1)));
        assert!(h.offer(1, &mut frame(2)));
        h.wake();
        h.wake();
        assert_eq!(wakeups(&h), 1, "the burst woke it, once");
        assert!(h.inboxes[0].wake_rx.recv(&mut [0u8; 1]).is_err(), "shard 0 has nothing: left asleep");
        h.awake(1);
        assert!(!h.may_sleep(1), "frames wait: no sleeping");
        assert!(h.offer(1, &mut frame(3)));
        h.wake();
        assert_eq!(wakeups(&h), 0, "an owner that is awake is not woken");
        // Emptied, it sleeps again; `awake` reads the wake-up a burst left.
        assert_eq!(h.take(1, &mut [fresh_frame(), fresh_frame(), fresh_frame()]), 3);
        assert!(h.may_sleep(1));
        assert!(h.offer(1, &mut frame(4)));
        h.wake();
        h.awake(1);
        assert_eq!(wakeups(&h), 0);
    }
}
