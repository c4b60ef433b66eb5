//! AF_PACKET sockets with a TPACKET_V3 receive ring and `sendmmsg` transmit, `poll`, and
//! `setns` for network namespaces.

use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, Ordering};

use crate::filter::SockFilter;

/// `struct tpacket_req3` (linux/if_packet.h).
#[repr(C)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

/// `struct tpacket_block_desc` with its `tpacket_hdr_v1`, up to the fields we read.
#[repr(C)]
struct BlockDesc {
    version: u32,
    offset_to_priv: u32,
    block_status: u32,
    num_pkts: u32,
    offset_to_first_pkt: u32,
    blk_len: u32,
}

/// `struct tpacket3_hdr`, up to the fields we read.
#[repr(C)]
struct Tpacket3Hdr {
    next_offset: u32,
    sec: u32,
    nsec: u32,
    snaplen: u32,
    len: u32,
    status: u32,
    mac: u16,
    net: u16,
}

/// Where a frame's `sockaddr_ll` follows its header in the ring:
/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`, the header being 48 bytes.
const TPACKET3_SLL: usize = 48;
/// `sll_pkttype` of a frame addressed to another host's MAC (linux/if_packet.h).
const PACKET_OTHERHOST: u8 = 3;
const TPACKET_V3: libc::c_int = 2;
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

/// The receive ring: `block_nr` blocks of `block_size` bytes mapped from the socket.
struct Ring {
    base: *mut u8,
    block_size: usize,
    block_nr: usize,
    cur: usize,
    /// Packets left in the current block and the offset of the next one.
    pending: Option<(u32, usize)>,
}

// SAFETY: the mapping belongs to this ring alone and moves with it; nothing else aliases it.
unsafe impl Send for Ring {}

impl Ring {
    fn block(&self, i: usize) -> *mut u8 {
        // SAFETY: `i < block_nr`, so the offset stays inside the mapping.
        unsafe { self.base.add(i * self.block_size) }
    }

    fn status(&self, i: usize) -> *mut u32 {
        // SAFETY: the block starts with a `BlockDesc` written by the kernel; we take the address
        // of one field without creating a reference.
        unsafe { std::ptr::addr_of_mut!((*self.block(i).cast::<BlockDesc>()).block_status) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are exactly what `mmap` returned and took.
        unsafe { libc::munmap(self.base.cast(), self.block_size * self.block_nr) };
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

/// A raw AF_PACKET socket bound to one interface, with a TPACKET_V3 receive ring.
pub(crate) struct PacketSocket {
    fd: OwnedFd,
    ring: Ring,
    /// Hand on frames addressed to other hosts' MACs (promiscuous mode).
    other_hosts: bool,
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
        setsockopt(s, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V3)?;
        let frame_size = 2048u32;
        let req = TpacketReq3 {
            block_size: o.block_size,
            block_nr: o.block_nr,
            frame_size,
            frame_nr: o.block_size / frame_size * o.block_nr,
            retire_blk_tov: 2,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        setsockopt(s, libc::SOL_PACKET, PACKET_RX_RING, &req)?;
        let len = o.block_size as usize * o.block_nr as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, s, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = Ring {
            base: base.cast(),
            block_size: o.block_size as usize,
            block_nr: o.block_nr as usize,
            cur: 0,
            pending: None,
        };
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
        Ok(PacketSocket { fd, ring, other_hosts: o.promisc })
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
    /// them.
    pub(crate) fn recv(&mut self, max: usize, mut f: impl FnMut(&[u8], bool)) -> usize {
        let mut n = 0;
        while n < max {
            let (left, off) = match self.ring.pending {
                Some(p) => p,
                None => {
                    let st = self.ring.status(self.ring.cur);
                    // SAFETY: `st` points into the mapping; the kernel writes it concurrently,
                    // hence the volatile read and the acquire fence before the block's data.
                    let status = unsafe { std::ptr::read_volatile(st) };
                    if status & TP_STATUS_USER == 0 {
                        break;
                    }
                    fence(Ordering::Acquire);
                    let bd = self.ring.block(self.ring.cur).cast::<BlockDesc>();
                    // SAFETY: the block is ours (status USER) until we hand it back.
                    let (num, first) = unsafe { ((*bd).num_pkts, (*bd).offset_to_first_pkt as usize) };
                    (num, first)
                }
            };
            if left == 0 {
                self.release_block();
                continue;
            }
            let block = self.ring.block(self.ring.cur);
            // SAFETY: `off` comes from the kernel's block descriptor or packet headers and
            // stays inside this block; the header is read in place.
            let h = unsafe { &*block.add(off).cast::<Tpacket3Hdr>() };
            let (mac, snap, next) = (usize::from(h.mac), h.snaplen as usize, h.next_offset as usize);
            let csum_not_ready = h.status & TP_STATUS_CSUMNOTREADY != 0;
            let sll = off + TPACKET3_SLL;
            let other_host = !self.other_hosts
                && sll + std::mem::size_of::<libc::sockaddr_ll>() <= self.ring.block_size
                // SAFETY: the kernel writes the frame's `sockaddr_ll` right after its header,
                // inside this block (bounds checked just above); it is read in place.
                && unsafe { (*block.add(sll).cast::<libc::sockaddr_ll>()).sll_pkttype } == PACKET_OTHERHOST;
            if !other_host && off + mac + snap <= self.ring.block_size {
                // SAFETY: bounds checked against the block just above.
                let data = unsafe { std::slice::from_raw_parts(block.add(off + mac), snap) };
                f(data, csum_not_ready);
                n += 1;
            }
            if left == 1 || next == 0 {
                self.release_block();
            } else {
                self.ring.pending = Some((left - 1, off + next));
            }
        }
        n
    }

    fn release_block(&mut self) {
        fence(Ordering::Release);
        // SAFETY: hands the current block back to the kernel; `status` points into the mapping.
        unsafe { std::ptr::write_volatile(self.ring.status(self.ring.cur), TP_STATUS_KERNEL) };
        self.ring.cur = (self.ring.cur + 1) % self.ring.block_nr;
        self.ring.pending = None;
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
