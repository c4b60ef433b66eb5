//! AF_XDP sockets (linux/if_xdp.h, Documentation/networking/af_xdp.rst): a UMEM of fixed-size
//! frames registered with the socket, its fill and completion rings, and the socket's receive
//! and transmit rings, all mapped from the kernel and driven with acquire/release indexes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::linux::{cvt, setsockopt};

/// Sizes of an AF_XDP socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct XskOpts {
    /// Bytes per UMEM frame (2048 or 4096).
    pub(crate) frame_size: u32,
    /// UMEM frames; half are lent to the kernel for receiving, half kept for sending.
    pub(crate) frames: u32,
    /// Bytes the kernel leaves free before each received frame.
    pub(crate) headroom: u32,
    /// Try zero-copy before copy mode.
    pub(crate) zero_copy: bool,
}

/// A shared mapping, unmapped on drop.
struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize, fd: Option<(RawFd, libc::off_t)>) -> io::Result<Mapping> {
        let (flags, fd, off) = match fd {
            Some((fd, off)) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd, off),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE, -1, 0),
        };
        // SAFETY: a fresh mapping of `len` bytes; the result is checked before use.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, fd, off) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { base: base.cast(), len })
    }

    /// A pointer `off` bytes in, which the caller keeps inside the mapping.
    fn at(&self, off: u64) -> *mut u8 {
        debug_assert!((off as usize) < self.len);
        // SAFETY: callers pass offsets the kernel gave for this mapping, or below its length.
        unsafe { self.base.add(off as usize) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are exactly what `mmap` returned and took.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// One of the four rings: a power-of-two array of `T` with a producer and a consumer index.
struct Ring<T> {
    map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut T,
    size: u32,
}

impl<T: Copy> Ring<T> {
    fn open(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64, size: u32) -> io::Result<Ring<T>> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mapping::new(len, Some((fd, pgoff as libc::off_t)))?;
        Ok(Ring {
            producer: map.at(off.producer).cast(),
            consumer: map.at(off.consumer).cast(),
            flags: map.at(off.flags).cast(),
            desc: map.at(off.desc).cast(),
            map,
            size,
        })
    }

    fn index(&self, which: *const AtomicU32, order: Ordering) -> u32 {
        let _ = &self.map;
        // SAFETY: the index is a 4-byte aligned word inside the mapping that the kernel
        // updates concurrently; it is only ever accessed atomically.
        unsafe { (*which).load(order) }
    }

    fn set_index(&self, which: *const AtomicU32, v: u32) {
        // SAFETY: as in `index`.
        unsafe { (*which).store(v, Ordering::Release) }
    }

    fn needs_wakeup(&self) -> bool {
        self.index(self.flags, Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    fn read(&self, i: u32) -> T {
        // SAFETY: `i & (size - 1)` is inside the descriptor array.
        unsafe { std::ptr::read_volatile(self.desc.add((i & (self.size - 1)) as usize)) }
    }

    fn write(&self, i: u32, v: T) {
        // SAFETY: as in `read`; the slot is ours until the producer index passes it.
        unsafe { std::ptr::write_volatile(self.desc.add((i & (self.size - 1)) as usize), v) }
    }

    /// Producer side: writes as many of `items` as there is room for; returns how many.
    fn produce(&self, items: impl ExactSizeIterator<Item = T>) -> usize {
        let prod = self.index(self.producer, Ordering::Relaxed);
        let cons = self.index(self.consumer, Ordering::Acquire);
        let room = self.size - prod.wrapping_sub(cons);
        let mut n = 0;
        for v in items.take(room as usize) {
            self.write(prod.wrapping_add(n), v);
            n += 1;
        }
        if n > 0 {
            self.set_index(self.producer, prod.wrapping_add(n));
        }
        n as usize
    }

    /// Consumer side: hands up to `max` entries to `f`; returns how many.
    fn consume(&self, max: usize, mut f: impl FnMut(T)) -> usize {
        let cons = self.index(self.consumer, Ordering::Relaxed);
        let prod = self.index(self.producer, Ordering::Acquire);
        let n = (prod.wrapping_sub(cons) as usize).min(max);
        for i in 0..n as u32 {
            f(self.read(cons.wrapping_add(i)));
        }
        if n > 0 {
            self.set_index(self.consumer, cons.wrapping_add(n as u32));
        }
        n
    }
}

// SAFETY: the mappings belong to this socket alone and move with it.
unsafe impl<T> Send for Ring<T> {}

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM.
pub(crate) struct XskSocket {
    // Field order is drop order: the rings and the UMEM are unmapped before the socket closes.
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    umem: Mapping,
    fd: OwnedFd,
    frame_size: u32,
    /// Received frames to lend back to the kernel, refilled in bursts.
    to_fill: Vec<u64>,
    /// Frames free for sending.
    free_tx: Vec<u64>,
    /// Descriptors of one send, kept to avoid an allocation per burst.
    descs: Vec<libc::xdp_desc>,
    zero_copy: bool,
    /// Busy polling is on: every receive asks the kernel to poll the queue.
    busy_poll: bool,
}

// SAFETY: the UMEM mapping belongs to this socket alone and moves with it.
unsafe impl Send for XskSocket {}

/// Receive and transmit counters of the socket (`struct xdp_statistics`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct XskStats {
    pub(crate) rx_dropped: u64,
    pub(crate) rx_ring_full: u64,
    pub(crate) rx_fill_ring_empty: u64,
}

impl XskSocket {
    pub(crate) fn open(ifindex: u32, queue: u32, o: XskOpts) -> io::Result<XskSocket> {
        // SAFETY: plain system call; the result is checked before use.
        let raw = cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        let umem = Mapping::new(o.frames as usize * o.frame_size as usize, None)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.base as u64,
            len: umem.len as u64,
            chunk_size: o.frame_size,
            headroom: o.headroom,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(s, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)?;
        let half = o.frames / 2;
        for ring in [libc::XDP_UMEM_FILL_RING, libc::XDP_UMEM_COMPLETION_RING, libc::XDP_RX_RING, libc::XDP_TX_RING] {
            setsockopt(s, libc::SOL_XDP, ring, &half)?;
        }
        // SAFETY: `xdp_mmap_offsets` is plain data; all-zero is a valid starting value.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` is a live buffer of `len` bytes that the kernel fills.
        cvt(unsafe {
            libc::getsockopt(s, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS, std::ptr::addr_of_mut!(off).cast(), &mut len)
        })?;
        let fill = Ring::open(s, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING, half)?;
        let comp = Ring::open(s, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, half)?;
        let rx = Ring::open(s, &off.rx, libc::XDP_PGOFF_RX_RING as u64, half)?;
        let tx = Ring::open(s, &off.tx, libc::XDP_PGOFF_TX_RING as u64, half)?;
        let bind = |flags: u16| {
            let sxdp = libc::sockaddr_xdp {
                sxdp_family: libc::AF_XDP as u16,
                sxdp_flags: flags | libc::XDP_USE_NEED_WAKEUP,
                sxdp_ifindex: ifindex,
                sxdp_queue_id: queue,
                sxdp_shared_umem_fd: 0,
            };
            let n = std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t;
            // SAFETY: `sxdp` is a valid `sockaddr_xdp` of the length passed.
            cvt(unsafe { libc::bind(s, std::ptr::addr_of!(sxdp).cast(), n) })
        };
        let zero_copy = o.zero_copy && bind(libc::XDP_ZEROCOPY).is_ok();
        if !zero_copy {
            bind(libc::XDP_COPY)?;
        }
        let fs = u64::from(o.frame_size);
        let mut sock = XskSocket {
            fill,
            comp,
            rx,
            tx,
            umem,
            fd,
            frame_size: o.frame_size,
            to_fill: (0..u64::from(half)).map(|i| i * fs).collect(),
            free_tx: (u64::from(half)..u64::from(o.frames)).map(|i| i * fs).collect(),
            descs: Vec::with_capacity(half as usize),
            zero_copy,
            busy_poll: false,
        };
        sock.refill();
        Ok(sock)
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(crate) fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Turns on busy polling of the socket's queue (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`
    /// of `usecs`, `SO_BUSY_POLL_BUDGET` of `budget` frames; Documentation/networking/
    /// napi.rst): from then on a receive that finds the ring empty asks the kernel to poll the
    /// queue, as xdpsock's `--busy-poll` does.
    pub(crate) fn set_busy_poll(&mut self, usecs: u32, budget: u16) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        let one: libc::c_int = 1;
        let usecs = libc::c_int::try_from(usecs).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_PREFER_BUSY_POLL, &one)?;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_BUSY_POLL, &usecs)?;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_BUSY_POLL_BUDGET, &libc::c_int::from(budget))?;
        self.busy_poll = true;
        Ok(())
    }

    /// A receive with no buffer: wakes the kernel to fill the receive ring, and with busy
    /// polling on polls the queue in this thread.
    fn wake_rx(&self) {
        // SAFETY: a wakeup with no buffer; the kernel reads nothing.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// Lends every received frame given back so far to the kernel again, in one burst.
    fn refill(&mut self) {
        let n = self.fill.produce(self.to_fill.iter().copied());
        self.to_fill.drain(..n);
        if n > 0 && self.fill.needs_wakeup() {
            self.wake_rx();
        }
    }

    /// Hands up to `max` received frames to `f` in order; returns how many. Their UMEM frames
    /// go back to the fill ring in one burst after.
    pub(crate) fn recv(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let (umem, size) = (&self.umem, u64::from(self.frame_size));
        let to_fill = &mut self.to_fill;
        let n = self.rx.consume(max, |d| {
            let base = d.addr - d.addr % size;
            if d.addr + u64::from(d.len) <= base + size && (base + size) as usize <= umem.len {
                // SAFETY: the descriptor lies inside one UMEM frame (checked above), which the
                // kernel filled and handed to us; it is not lent out again until refilled.
                f(unsafe { std::slice::from_raw_parts(umem.at(d.addr), d.len as usize) });
            }
            to_fill.push(base);
        });
        if n == 0 && self.busy_poll {
            self.wake_rx();
        }
        self.refill();
        n
    }

    /// Takes back the frames the kernel finished sending.
    fn reclaim(&mut self) {
        let free = &mut self.free_tx;
        self.comp.consume(usize::MAX, |addr| free.push(addr));
    }

    /// Copies frames into free UMEM frames and queues them for sending; returns how many were
    /// queued (frames larger than a UMEM frame count as sent and are left out: see
    /// `refused`). The kernel is woken when it asks to be.
    pub(crate) fn send<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>, refused: &mut u64) -> io::Result<usize> {
        self.reclaim();
        let mut descs = std::mem::take(&mut self.descs);
        descs.clear();
        let mut taken = 0;
        for data in frames {
            if data.len() > self.frame_size as usize {
                *refused += 1;
                taken += 1;
                continue;
            }
            let Some(addr) = self.free_tx.pop() else { break };
            // SAFETY: `addr` is a UMEM frame of `frame_size` bytes that nobody else holds; the
            // frame fits (checked above); the source is a separate buffer.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.umem.at(addr), data.len()) };
            descs.push(libc::xdp_desc { addr, len: data.len() as u32, options: 0 });
            taken += 1;
        }
        let queued = self.tx.produce(descs.iter().copied());
        // Frames the ring had no room for go back to the pool, and are not counted as sent.
        let unqueued = descs.len() - queued;
        self.free_tx.extend(descs.iter().skip(queued).map(|d| d.addr));
        taken -= unqueued;
        self.descs = descs;
        self.kick()?;
        Ok(taken)
    }

    /// Wakes the kernel to send while the transmit ring holds frames and it asks to be woken.
    /// In copy mode one wakeup sends at most 32 frames (`TX_BATCH_SIZE` in xsk.c), so a burst
    /// takes a few; the loop is bounded by the ring's size.
    fn kick(&mut self) -> io::Result<()> {
        for _ in 0..self.tx.size / 16 {
            let pending = self.tx.index(self.tx.producer, Ordering::Relaxed)
                != self.tx.index(self.tx.consumer, Ordering::Acquire);
            if !pending || !self.tx.needs_wakeup() {
                break;
            }
            // SAFETY: a wakeup with no buffer; the kernel reads nothing.
            let r = unsafe {
                libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    // The device is busy: the frames wait for the next send.
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) => break,
                    _ => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The kernel's counters for this socket.
    pub(crate) fn stats(&self) -> io::Result<XskStats> {
        // SAFETY: `xdp_statistics` is plain data; all-zero is a valid starting value.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `st` is a live buffer of `len` bytes that the kernel fills.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                std::ptr::addr_of_mut!(st).cast(),
                &mut len,
            )
        })?;
        Ok(XskStats {
            rx_dropped: st.rx_dropped,
            rx_ring_full: st.rx_ring_full,
            rx_fill_ring_empty: st.rx_fill_ring_empty_descs,
        })
    }
}
