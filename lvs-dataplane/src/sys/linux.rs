//! AF_PACKET sockets with a TPACKET_V2 receive ring and `sendmmsg` transmit, `poll`, and
//! `setns` for network namespaces.
//!
//! The ring is TPACKET_V2, one fixed slot per frame, each handed to user space the moment the
//! kernel fills it. TPACKET_V3 packs frames into blocks and hands a block over only when it is
//! full or its retire timer expires (2 ms as this module set it): at the rates of interactive
//! traffic every frame waited for the timer, which added about a millisecond to each request
//! through the director.

use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, Ordering};

use crate::filter::SockFilter;

/// `struct tpacket_req` (linux/if_packet.h).
#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// `struct tpacket2_hdr`, up to the fields we read.
#[repr(C)]
struct Tpacket2Hdr {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
}

/// Where a frame's `sockaddr_ll` follows its header in its slot:
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`, the header being 32 bytes.
const TPACKET2_SLL: usize = 32;
/// Bytes per ring slot: header, `sockaddr_ll` and a 1,518-byte frame at the kernel's offset.
const FRAME_SIZE: usize = 2048;
/// `sll_pkttype` of a frame addressed to another host's MAC (linux/if_packet.h).
const PACKET_OTHERHOST: u8 = 3;
const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_FANOUT_DATA: libc::c_int = 22;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_CBPF: u32 = 6;
const ETH_P_ALL: u16 = 0x0003;

/// The most frames one `sendmmsg` carries.
pub(crate) const MAX_BATCH: usize = 64;

/// A system call's result: the value, or the error in `errno`.
pub(super) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Sets socket option `name` at `level` to `val`.
pub(super) fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live reference to a `T` of exactly the length passed.
    cvt(unsafe {
        libc::setsockopt(fd, level, name, (val as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    })
    .map(|_| ())
}

/// The interface index of a device name.
pub(crate) fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

/// The receive ring: `slots` frames of [`FRAME_SIZE`] bytes mapped from the socket.
struct Ring {
    base: *mut u8,
    slots: usize,
    /// The next slot to read.
    cur: usize,
}

// SAFETY: the mapping belongs to this ring alone and moves with it; nothing else aliases it.
unsafe impl Send for Ring {}

impl Ring {
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: `i < slots`, so the offset stays inside the mapping.
        unsafe { self.base.add(i * FRAME_SIZE) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are exactly what `mmap` returned and took.
        unsafe { libc::munmap(self.base.cast(), self.slots * FRAME_SIZE) };
    }
}

/// Options of a packet socket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PacketOpts {
    pub(crate) promisc: bool,
    pub(crate) fanout: Option<u16>,
    /// The group spreads frames by a classic BPF program (set with
    /// [`PacketSocket::set_fanout_program`]) rather than by the kernel's flow hash.
    pub(crate) fanout_cbpf: bool,
    pub(crate) block_size: u32,
    pub(crate) block_nr: u32,
}

/// A raw AF_PACKET socket bound to one interface, with a TPACKET_V2 receive ring.
pub(crate) struct PacketSocket {
    fd: OwnedFd,
    ring: Ring,
    /// Hand on frames addressed to other hosts' MACs (promiscuous mode).
    other_hosts: bool,
    truncated: u64,
}

impl PacketSocket {
    pub(crate) fn open(ifname: &str, o: PacketOpts) -> io::Result<PacketSocket> {
        let idx = ifindex(ifname)?;
        // SAFETY: plain system call; the result is checked before use.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        setsockopt(s, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        let per_block = (o.block_size as usize / FRAME_SIZE).max(1);
        let block_size = per_block * FRAME_SIZE;
        let slots = per_block * o.block_nr as usize;
        let req = TpacketReq {
            block_size: block_size as u32,
            block_nr: o.block_nr,
            frame_size: FRAME_SIZE as u32,
            frame_nr: slots as u32,
        };
        setsockopt(s, libc::SOL_PACKET, PACKET_RX_RING, &req)?;
        let len = slots * FRAME_SIZE;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, s, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = Ring { base: base.cast(), slots, cur: 0 };
        let one: libc::c_int = 1;
        // Best effort: older kernels lack these; the socket works without them.
        let _ = setsockopt(s, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &one);
        let _ = setsockopt(s, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one);
        // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = idx as i32;
        // SAFETY: `sll` is a valid `sockaddr_ll` of the length passed.
        cvt(unsafe {
            libc::bind(s, std::ptr::addr_of!(sll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t)
        })?;
        if o.promisc {
            // SAFETY: `packet_mreq` is plain data; all-zero is a valid starting value.
            let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mr.mr_ifindex = idx as i32;
            mr.mr_type = PACKET_MR_PROMISC;
            setsockopt(s, libc::SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr)?;
        }
        if let Some(group) = o.fanout {
            let mode = if o.fanout_cbpf { PACKET_FANOUT_CBPF } else { PACKET_FANOUT_HASH };
            let v: u32 = u32::from(group) | (mode << 16);
            setsockopt(s, libc::SOL_PACKET, PACKET_FANOUT, &v)?;
        }
        Ok(PacketSocket { fd, ring, other_hosts: o.promisc, truncated: 0 })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Replaces the socket's classic BPF filter (`SO_ATTACH_FILTER`); the kernel then copies
    /// only the frames it accepts into the ring.
    pub(crate) fn attach_filter(&self, prog: &[SockFilter]) -> io::Result<()> {
        let len = u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // `struct sock_filter` and `SockFilter` have the same C layout, instruction for
        // instruction; the kernel copies the program during the call and only reads it.
        let fprog = libc::sock_fprog { len, filter: prog.as_ptr().cast_mut().cast() };
        setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
    }

    /// Replaces the program that spreads the fanout group's frames over its sockets
    /// (`PACKET_FANOUT_DATA` on a `PACKET_FANOUT_CBPF` group): the kernel hands each frame to
    /// socket number `program's value % sockets`, the sockets numbered in the order they
    /// joined. One member sets it for the whole group.
    pub(crate) fn set_fanout_program(&self, prog: &[SockFilter]) -> io::Result<()> {
        let len = u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // As in `attach_filter`: the kernel copies the program during the call.
        let fprog = libc::sock_fprog { len, filter: prog.as_ptr().cast_mut().cast() };
        setsockopt(self.fd.as_raw_fd(), libc::SOL_PACKET, PACKET_FANOUT_DATA, &fprog)
    }

    /// Hands up to `max` received frames to `f` in order, each with whether its transport
    /// checksum was left unfinished (`TP_STATUS_CSUMNOTREADY`); returns how many. Without
    /// promiscuous mode, frames addressed to another host's MAC are skipped: a packet socket
    /// sees them whenever the link delivers them (a bridge or switch flooding a unicast frame
    /// it has no port for, a veth's peer sending anything), where the kernel's own stack drops
    /// them. A frame larger than a slot, which the kernel cut short, is skipped and counted
    /// ([`truncated`](Self::truncated)).
    pub(crate) fn recv(&mut self, max: usize, mut f: impl FnMut(&[u8], bool)) -> usize {
        let mut n = 0;
        while n < max {
            let slot = self.ring.slot(self.ring.cur);
            let st = slot.cast::<u32>();
            // SAFETY: the slot starts with its header's status word, which the kernel writes
            // concurrently: hence the volatile read and the acquire fence before the frame.
            let status = unsafe { std::ptr::read_volatile(st) };
            if status & TP_STATUS_USER == 0 {
                break;
            }
            fence(Ordering::Acquire);
            // SAFETY: the slot is ours (status USER) until we hand it back; the header is read
            // in place.
            let h = unsafe { &*slot.cast::<Tpacket2Hdr>() };
            let (mac, snap) = (usize::from(h.mac), h.snaplen as usize);
            let csum_not_ready = h.status & TP_STATUS_CSUMNOTREADY != 0;
            // SAFETY: the kernel writes the frame's `sockaddr_ll` right after its header, inside
            // the slot; it is read in place.
            let pkttype = unsafe { (*slot.add(TPACKET2_SLL).cast::<libc::sockaddr_ll>()).sll_pkttype };
            let other_host = !self.other_hosts && pkttype == PACKET_OTHERHOST;
            if h.len as usize != snap || mac + snap > FRAME_SIZE {
                self.truncated += 1;
            } else if !other_host {
                // SAFETY: bounds checked against the slot just above.
                let data = unsafe { std::slice::from_raw_parts(slot.add(mac), snap) };
                f(data, csum_not_ready);
                n += 1;
            }
            fence(Ordering::Release);
            // SAFETY: hands the slot back to the kernel; `st` points into the mapping.
            unsafe { std::ptr::write_volatile(st, TP_STATUS_KERNEL) };
            self.ring.cur = (self.ring.cur + 1) % self.ring.slots;
        }
        n
    }

    /// Frames larger than a ring slot, which the kernel cut short and `recv` skipped.
    pub(crate) fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Sends a batch with one `sendmmsg`; returns how many frames went out. A frame the kernel
    /// refuses outright (too big for the link, say) comes back as an error of its own.
    pub(crate) fn send<'a>(&self, frames: impl Iterator<Item = &'a [u8]>) -> io::Result<usize> {
        // SAFETY: `iovec` and `mmsghdr` are plain data; all-zero is a valid starting value.
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        for (i, f) in frames.take(MAX_BATCH).enumerate() {
            iov[i] = libc::iovec { iov_base: f.as_ptr() as *mut libc::c_void, iov_len: f.len() };
            msgs[i].msg_hdr.msg_iov = std::ptr::addr_of_mut!(iov[i]);
            msgs[i].msg_hdr.msg_iovlen = 1;
            n = i + 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: every `msg_iov` points at a live frame that outlives the call; the kernel only
        // reads them.
        let r = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        match cvt(r) {
            Ok(k) => Ok(k as usize),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes.
pub(crate) fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<()> {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `p` is a live array of `pollfd` of the length passed.
    match cvt(unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) }) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves the calling thread into the network namespace `/var/run/netns/<name>` (`ip netns`).
pub(crate) fn enter_netns(name: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: `f` is an open namespace file; `setns` affects only this thread.
    cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }).map(|_| ())
}

/// Calls `f` with `addr` as a `sockaddr` pointer and its length.
pub(crate) fn with_sockaddr<T>(addr: &SocketAddr, f: impl FnOnce(*const libc::sockaddr, libc::socklen_t) -> T) -> T {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: `sockaddr_in` is plain data; all-zero is a valid starting value.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            f(std::ptr::addr_of!(sin).cast(), std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            // SAFETY: `sockaddr_in6` is plain data; all-zero is a valid starting value.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            f(std::ptr::addr_of!(sin6).cast(), std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

/// Binds socket `fd` to `addr`.
pub(crate) fn bind(fd: RawFd, addr: &SocketAddr) -> io::Result<()> {
    // SAFETY: the address pointer and length come from `with_sockaddr` and live across the call.
    cvt(with_sockaddr(addr, |sa, len| unsafe { libc::bind(fd, sa, len) })).map(|_| ())
}

/// `ETHTOOL_GCHANNELS` (linux/ethtool.h): read a device's channel counts.
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// How many receive queues `ifname` has in the calling thread's namespace, as ethtool's
/// `-l` reports them (receive-only plus combined channels); `None` when the driver does not
/// say (`EOPNOTSUPP`), so that the caller lets the kernel judge.
pub(crate) fn rx_queues(ifname: &str) -> io::Result<Option<u32>> {
    let name = ifname.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{ifname:?}: interface name too long")));
    }
    // SAFETY: plain system call; the result is checked before use.
    let raw = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..EthtoolChannels::default() };
    // SAFETY: `ifreq` is plain data; all-zero is a valid starting value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = std::ptr::addr_of_mut!(ch).cast();
    // SAFETY: `req` names the device and points at `ch`, a live `ethtool_channels` that the
    // kernel fills; both outlive the call.
    match cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, std::ptr::addr_of_mut!(req)) }) {
        Ok(_) => Ok(Some(ch.rx_count + ch.combined_count)),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}
