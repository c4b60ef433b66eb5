//! The AF_PACKET transmit ring: a send-only packet socket with a TPACKET_V2 `PACKET_TX_RING`,
//! as net/packet/af_packet.c's `tpacket_snd` reads it. Frames are copied into mmap'd slots
//! marked `TP_STATUS_SEND_REQUEST`, and one `send(fd, NULL, 0, 0)` per burst hands them all
//! to the driver.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};

use super::linux::{cvt, ifindex, setsockopt};

/// Bytes per slot: a `tpacket2_hdr` and a frame of up to [`MAX_FRAME`] bytes.
const SLOT: usize = 2048;
/// Where the frame starts in its slot. Without `PACKET_TX_HAS_OFF`, `tpacket_parse_header`
/// takes the data at `tp_hdrlen - sizeof(struct sockaddr_ll)`: the 32-byte `tpacket2_hdr`
/// (`TPACKET2_HDRLEN` is that, aligned, plus the 20-byte `sockaddr_ll`).
const DATA: usize = 32;
/// The longest frame a slot holds.
pub(crate) const MAX_FRAME: usize = SLOT - DATA;
/// Slots per block: the ring is allocated in 64 KiB blocks (a multiple of the page size).
const SLOTS_PER_BLOCK: usize = (1 << 16) / SLOT;
/// `tpacket2_hdr.tp_len`'s offset (after the 32-bit `tp_status`).
const TP_LEN: usize = 4;
const TPACKET_V2: libc::c_int = 1;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_WRONG_FORMAT: u32 = 4;

/// `struct tpacket_req` (linux/if_packet.h).
#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// What one [`TxRing::send`] did with the frames it was given.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TxDone {
    /// Frames taken from the front of the burst: placed in the ring or refused. The rest
    /// found the ring full.
    pub(crate) taken: usize,
    /// Frames dropped because the kernel (or the slot size) refuses them: longer than a slot,
    /// or marked `TP_STATUS_WRONG_FORMAT` by `tpacket_snd` (longer than the link's MTU, say),
    /// this burst's or an earlier one's.
    pub(crate) refused: u64,
}

/// A send-only AF_PACKET socket bound to one interface, with its mapped transmit ring.
pub(crate) struct TxRing {
    fd: OwnedFd,
    base: *mut u8,
    slots: usize,
    /// The next slot to fill.
    cur: usize,
    /// Frames wait in the ring for a kick that the kernel did not finish (no send buffer, the
    /// link down).
    waiting: bool,
}

// SAFETY: the mapping belongs to this ring alone and moves with it; nothing else aliases it.
unsafe impl Send for TxRing {}

impl TxRing {
    /// Opens a socket that only sends (protocol 0: the kernel hands it nothing) on `ifname`,
    /// with a ring of at least `frames` slots (rounded up to whole 64 KiB blocks) and
    /// `PACKET_QDISC_BYPASS`, as the receiving socket has.
    pub(crate) fn open(ifname: &str, frames: u32) -> io::Result<TxRing> {
        let idx = ifindex(ifname)?;
        // SAFETY: plain system call; the result is checked before use.
        let raw = cvt(unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        setsockopt(s, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        let block_nr = (frames as usize).div_ceil(SLOTS_PER_BLOCK).max(1);
        let slots = block_nr * SLOTS_PER_BLOCK;
        let req = TpacketReq {
            block_size: (SLOTS_PER_BLOCK * SLOT) as u32,
            block_nr: u32::try_from(block_nr).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            frame_size: SLOT as u32,
            frame_nr: u32::try_from(slots).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        };
        setsockopt(s, libc::SOL_PACKET, PACKET_TX_RING, &req)?;
        let len = slots * SLOT;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, s, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = TxRing { fd, base: base.cast(), slots, cur: 0, waiting: false };
        let one: libc::c_int = 1;
        // Best effort, as on the receiving socket: older kernels lack it.
        let _ = setsockopt(s, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &one);
        // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = idx as i32;
        // SAFETY: `sll` is a valid `sockaddr_ll` of the length passed.
        cvt(unsafe {
            libc::bind(s, std::ptr::addr_of!(sll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t)
        })?;
        Ok(ring)
    }

    /// Slot `i`'s first byte.
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: callers pass `i < slots`, so the offset stays inside the mapping.
        unsafe { self.base.add(i * SLOT) }
    }

    fn status(&self, i: usize) -> u32 {
        // SAFETY: a slot starts with its 32-bit `tp_status` (slots are 2 KiB-aligned); the
        // kernel writes it concurrently, hence the volatile read.
        unsafe { std::ptr::read_volatile(self.slot(i).cast::<u32>()) }
    }

    /// Hands slot `i` to the kernel (or back to us) after its contents are written.
    fn set_status(&self, i: usize, status: u32) {
        fence(Ordering::Release);
        // SAFETY: as in `status`; the slot is ours (not SEND_REQUEST or SENDING) or being
        // handed back by us.
        unsafe { std::ptr::write_volatile(self.slot(i).cast::<u32>(), status) };
    }

    /// Copies `data` (at most [`MAX_FRAME`] bytes) into slot `i` and sets its `tp_len`.
    fn fill(&self, i: usize, data: &[u8]) {
        // SAFETY: the slot is ours (status AVAILABLE, read with an acquire fence after it);
        // `DATA + data.len() <= SLOT` as the caller checked, and `data` lies outside the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.slot(i).add(DATA), data.len());
            std::ptr::write_volatile(self.slot(i).add(TP_LEN).cast::<u32>(), data.len() as u32);
        }
    }

    /// Moves the frame of slot `from` into slot `to` (both ours: refused or still waiting).
    fn move_slot(&self, from: usize, to: usize) {
        // SAFETY: distinct slots inside the mapping; `tp_len` was written by us and is at most
        // `MAX_FRAME`, checked again here.
        unsafe {
            let len = (std::ptr::read_volatile(self.slot(from).add(TP_LEN).cast::<u32>()) as usize).min(MAX_FRAME);
            std::ptr::copy_nonoverlapping(self.slot(from).add(DATA), self.slot(to).add(DATA), len);
            std::ptr::write_volatile(self.slot(to).add(TP_LEN).cast::<u32>(), len as u32);
        }
    }

    /// One `send(fd, NULL, 0, 0)`: the kernel sends every waiting slot from its head on.
    fn kick(&self) -> io::Result<()> {
        // SAFETY: a zero-length send with no buffer; the kernel reads only the mapped ring.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Places frames in free slots, in order, until one does not fit (the ring is full: the
    /// rest are left to the caller) and kicks the kernel once.
    ///
    /// `tpacket_snd` stops at a frame it refuses, marks it `TP_STATUS_WRONG_FORMAT` and keeps
    /// its head there, so nothing behind it would ever go: that frame is counted as refused and
    /// the frames behind it move up one slot, into the refused one, and the kick is repeated.
    /// Frames the kernel leaves waiting (no send buffer left, `EAGAIN`/`ENOBUFS`; the link
    /// down, `ENETDOWN`) stay in the ring and go with the next kick ([`TxRing::flush`]).
    ///
    /// # Errors
    /// Any other system error of the kick.
    pub(crate) fn send<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>) -> io::Result<TxDone> {
        let mut done = TxDone::default();
        for f in frames {
            if f.len() > MAX_FRAME {
                done.refused += 1;
            } else if self.status(self.cur) == TP_STATUS_AVAILABLE {
                fence(Ordering::Acquire);
                self.fill(self.cur, f);
                self.set_status(self.cur, TP_STATUS_SEND_REQUEST);
                self.cur = (self.cur + 1) % self.slots;
                self.waiting = true;
            } else {
                break;
            }
            done.taken += 1;
        }
        done.refused += self.flush()?;
        Ok(done)
    }

    /// Kicks the kernel if frames wait in the ring; returns how many it refused.
    ///
    /// # Errors
    /// A system error of the kick other than those [`TxRing::send`] lists.
    pub(crate) fn flush(&mut self) -> io::Result<u64> {
        let mut refused = 0;
        // Each failed round drops one frame, so the ring's size bounds the rounds.
        for _ in 0..=self.slots {
            if !self.waiting {
                break;
            }
            match self.kick() {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS | libc::ENETDOWN)) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if !self.drop_wrong_format() {
                        return Err(e);
                    }
                    refused += 1;
                    continue;
                }
            }
            // The kernel takes slots in order: the last one filled tells whether any wait.
            let last = (self.cur + self.slots - 1) % self.slots;
            self.waiting = self.status(last) == TP_STATUS_SEND_REQUEST;
            break;
        }
        Ok(refused)
    }

    /// Drops the frame `tpacket_snd` marked `TP_STATUS_WRONG_FORMAT` (there is at most one:
    /// the kernel stops there) by moving each waiting frame behind it up one slot; returns
    /// whether there was one.
    fn drop_wrong_format(&mut self) -> bool {
        let Some(bad) = (0..self.slots).find(|i| self.status(*i) == TP_STATUS_WRONG_FORMAT) else {
            return false;
        };
        let mut to = bad;
        loop {
            let from = (to + 1) % self.slots;
            if from == self.cur || self.status(from) != TP_STATUS_SEND_REQUEST {
                break;
            }
            self.move_slot(from, to);
            self.set_status(to, TP_STATUS_SEND_REQUEST);
            to = from;
        }
        self.set_status(to, TP_STATUS_AVAILABLE);
        self.cur = to;
        true
    }
}

impl Drop for TxRing {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are exactly what `mmap` returned and took.
        unsafe { libc::munmap(self.base.cast(), self.slots * SLOT) };
    }
}
