//! `AfXdp`: an AF_XDP socket on one queue of a named interface, behind an XDP program
//! (`bpf/lvs_xdp.c`, built by `build.rs` with clang and loaded with aya) that redirects to it
//! only the frames a [`Filter`] wants — to a virtual address, from a NAT real server — and passes
//! everything else to the kernel untouched: ARP, neighbour discovery, the host's own traffic,
//! the replies of DR and TUN servers. Copy mode where the driver has no zero-copy (veth),
//! zero-copy where it has; [`open_or_afpacket`] falls back to AF_PACKET when AF_XDP cannot
//! start. One program serves every queue of an interface: each queue's port registers its
//! socket in the program's socket map, which the program indexes by the receiving queue (the
//! shards of [`crate::runtime::Shards`] take one queue each).
//!
//! Frames are copied between the UMEM and the runtime's [`Frame`] buffers (the runtime's
//! buffers carry the director's headroom); the UMEM frames keep a headroom of their own for the
//! day frames are rewritten in place.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aya::maps::{HashMap as BpfHashMap, MapData, XskMap};
use aya::programs::{Xdp, XdpFlags};
use aya::Ebpf;
use lvs_core::wire::{Frame, DEFAULT_HEADROOM};
use lvs_core::Instant;

use crate::afpacket::{AfPacket, AfPacketConfig};
use crate::filter::Filter;
use crate::io::{IoCaps, PacketIo};
use crate::sys::linux::{ifindex, rx_queues};
use crate::sys::xsk::{XskOpts, XskSocket};

/// The XDP program, or nothing when the build had no clang (see `build.rs`).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lvs_xdp.o"));
/// Why [`PROGRAM`] is empty, when it is.
static NOT_BUILT: &str = include_str!(concat!(env!("OUT_DIR"), "/lvs_xdp.why"));

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver when it can (native XDP; veth has it), otherwise in the generic path.
    Auto,
    /// In the driver only.
    Driver,
    /// In the kernel's generic path (`XDP_FLAGS_SKB_MODE`), which every device has.
    Generic,
}

/// Options of an [`AfXdp`] port.
#[derive(Clone, Copy, Debug)]
pub struct AfXdpConfig {
    /// The receive queue the socket binds to; the program redirects that queue's frames to it.
    pub queue: u32,
    /// UMEM frames (a power of two); half receive, half send.
    pub frames: u32,
    /// Try zero-copy before copy mode.
    pub zero_copy: bool,
    /// Where the program runs (when this port is the first of its interface to attach it).
    pub mode: XdpMode,
    /// Busy polling: microseconds the kernel may poll the queue in the receiving thread
    /// (`SO_BUSY_POLL`, with `SO_PREFER_BUSY_POLL` and a budget of [`BUSY_POLL_BUDGET`]
    /// frames); `None` leaves it to interrupts. Where the kernel refuses (before Linux 5.11;
    /// `SO_BUSY_POLL` above `net.core.busy_read` without `CAP_NET_ADMIN`) the port opens
    /// without it and a warning says why ([`AfXdp::busy_poll`]).
    pub busy_poll: Option<u32>,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig { queue: 0, frames: 4096, zero_copy: true, mode: XdpMode::Auto, busy_poll: None }
    }
}

/// Frames one busy poll of the queue may take (`SO_BUSY_POLL_BUDGET`; the kernel's NAPI
/// weight is 64).
pub const BUSY_POLL_BUDGET: u16 = 64;

/// Bytes per UMEM frame: a page holds two, each room for a 1514-byte frame, the UMEM headroom
/// and tunnel headers.
const FRAME_SIZE: u32 = 2048;
/// Headroom the kernel leaves before each received frame: room for an outer IPv6 header and
/// more (`DEFAULT_HEADROOM` bytes, as the runtime's buffers have).
const UMEM_HEADROOM: u32 = 256;
/// Most frames one receive or send moves.
const MAX_BURST: usize = 64;

/// An AF_XDP port: the socket of one queue, behind the XDP program attached to its
/// interface. The ports of one interface's queues (in this process and network namespace)
/// share one attached program: the first attaches it, the others register their sockets in
/// its socket map, and the last one gone detaches it.
pub struct AfXdp {
    sock: XskSocket,
    iface: Iface,
    queue: u32,
    driver_mode: bool,
    busy_poll: bool,
    refused: u64,
}

/// An interface in a network namespace: the namespace's file (device and inode, as
/// `/proc/thread-self/ns/net` names it) and the interface's index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Iface {
    netns: (u64, u64),
    ifindex: u32,
}

impl Iface {
    /// `ifname` in the calling thread's network namespace.
    fn of(ifname: &str) -> io::Result<Iface> {
        let ns = std::fs::metadata("/proc/thread-self/ns/net")?;
        Ok(Iface { netns: (ns.dev(), ns.ino()), ifindex: ifindex(ifname)? })
    }
}

/// The XDP program attached to one interface, and its maps.
struct Attached {
    iface: Iface,
    /// The frames to redirect (filled from the filter).
    matches: BpfHashMap<MapData, [u8; 20], u8>,
    /// What `matches` holds.
    installed: BTreeSet<[u8; 20]>,
    /// Each queue's socket, which the program redirects that queue's frames to.
    xsks: XskMap<MapData>,
    /// The queues with a socket; the program is detached when none is left.
    queues: BTreeSet<u32>,
    driver_mode: bool,
    /// Dropped last: dropping it detaches the program (its BPF link).
    _bpf: Ebpf,
}

/// Every attached program of this process. One lock for all: attaching, detaching and map
/// updates are control-plane work, never per packet.
static ATTACHED: Mutex<Vec<Attached>> = Mutex::new(Vec::new());

/// The registry, even after a thread panicked while holding it (its entries stay whole:
/// every change to them is a single push, remove or map update).
fn attached() -> MutexGuard<'static, Vec<Attached>> {
    ATTACHED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An aya error as an I/O error that says what failed.
fn other(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl Attached {
    /// Loads the program and attaches it to `ifname` in `mode`.
    fn attach(ifname: &str, iface: Iface, mode: XdpMode) -> io::Result<Attached> {
        let mut bpf = Ebpf::load(PROGRAM).map_err(|e| other("loading the XDP program", e))?;
        let prog: &mut Xdp = bpf
            .program_mut("lvs_xdp")
            .ok_or_else(|| other("the XDP object", "no program lvs_xdp"))?
            .try_into()
            .map_err(|e| other("the XDP object", e))?;
        prog.load().map_err(|e| other("the kernel refused the XDP program", e))?;
        let driver_mode = match mode {
            XdpMode::Generic => false,
            XdpMode::Driver => {
                prog.attach(ifname, XdpFlags::DRV_MODE).map_err(|e| other("attaching in driver mode", e))?;
                true
            }
            XdpMode::Auto => prog.attach(ifname, XdpFlags::DRV_MODE).is_ok(),
        };
        if !driver_mode {
            prog.attach(ifname, XdpFlags::SKB_MODE).map_err(|e| other("attaching the XDP program", e))?;
        }
        let map = |bpf: &mut Ebpf, name: &str| {
            bpf.take_map(name).ok_or_else(|| other("the XDP object", format!("no map {name}")))
        };
        let xsks = map(&mut bpf, "lvs_xsks")?.try_into().map_err(|e| other("the XDP object", e))?;
        let matches = map(&mut bpf, "lvs_matches")?.try_into().map_err(|e| other("the XDP object", e))?;
        Ok(Attached {
            iface,
            matches,
            installed: BTreeSet::new(),
            xsks,
            queues: BTreeSet::new(),
            driver_mode,
            _bpf: bpf,
        })
    }
}

impl AfXdp {
    /// Binds a socket to queue `cfg.queue` of `ifname`, behind the XDP program: attached now
    /// if no other port of this process has it on that interface (in `cfg.mode`), shared
    /// otherwise. Until a filter is set ([`PacketIo::set_filter`]) the program passes every
    /// frame to the kernel. The program is detached when the last port of the interface is
    /// dropped (or the process ends: it is held by a BPF link).
    ///
    /// # Errors
    /// This build has no XDP program (clang was missing: [`io::ErrorKind::Unsupported`]); no
    /// such interface; no such queue ([`io::ErrorKind::InvalidInput`], naming how many the
    /// interface has); a socket of this process on that queue already
    /// ([`io::ErrorKind::AddrInUse`]); not permitted (`CAP_NET_ADMIN`, `CAP_BPF`); another
    /// XDP program is attached; the program is shared but runs in the generic path while
    /// `cfg.mode` asks for the driver; the kernel or driver has no AF_XDP.
    pub fn open(ifname: &str, cfg: AfXdpConfig) -> io::Result<AfXdp> {
        if PROGRAM.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no XDP program in this build: {NOT_BUILT}"),
            ));
        }
        let iface = Iface::of(ifname)?;
        if let Some(n) = rx_queues(ifname)?.filter(|n| cfg.queue >= *n) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ifname} has {n} receive queue(s), so no queue {}", cfg.queue),
            ));
        }
        let mut all = attached();
        let at = match all.iter().position(|a| a.iface == iface) {
            Some(i) => i,
            None => {
                all.push(Attached::attach(ifname, iface, cfg.mode)?);
                all.len() - 1
            }
        };
        let opened = Self::bind(ifname, iface, cfg, &mut all[at]);
        if all[at].queues.is_empty() {
            // The first socket failed: nothing else holds the program.
            all.swap_remove(at);
        }
        opened
    }

    /// Opens the socket of `cfg.queue` and registers it with the program `a`.
    fn bind(ifname: &str, iface: Iface, cfg: AfXdpConfig, a: &mut Attached) -> io::Result<AfXdp> {
        if cfg.mode == XdpMode::Driver && !a.driver_mode {
            return Err(other(
                ifname,
                "the XDP program this process attached runs in the generic path, not the driver",
            ));
        }
        if a.queues.contains(&cfg.queue) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{ifname} queue {}: this process has an AF_XDP socket there already", cfg.queue),
            ));
        }
        let opts =
            XskOpts { frame_size: FRAME_SIZE, frames: cfg.frames, headroom: UMEM_HEADROOM, zero_copy: cfg.zero_copy };
        let mut sock = XskSocket::open(iface.ifindex, cfg.queue, opts)?;
        let busy_poll = cfg.busy_poll.is_some_and(|usecs| {
            sock.set_busy_poll(usecs, BUSY_POLL_BUDGET)
                .inspect_err(|e| {
                    log::warn!(
                        target: "lvs::afxdp",
                        "{ifname} queue {}: no busy polling ({e}; SO_PREFER_BUSY_POLL needs Linux 5.11, and \
                         SO_BUSY_POLL above net.core.busy_read needs CAP_NET_ADMIN): the queue is served by \
                         interrupts",
                        cfg.queue
                    )
                })
                .is_ok()
        });
        a.xsks.set(cfg.queue, sock.fd(), 0).map_err(|e| other("registering the socket", e))?;
        a.queues.insert(cfg.queue);
        log::info!(
            target: "lvs::afxdp",
            "{ifname} queue {}: AF_XDP in {} mode, {}{}{}",
            cfg.queue,
            if sock.zero_copy() { "zero-copy" } else { "copy" },
            if a.driver_mode { "XDP in the driver" } else { "generic XDP" },
            if a.queues.len() > 1 { " (shared with the other queues)" } else { "" },
            if busy_poll { ", busy polling" } else { "" }
        );
        Ok(AfXdp { sock, iface, queue: cfg.queue, driver_mode: a.driver_mode, busy_poll, refused: 0 })
    }

    /// The receive queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the socket runs zero-copy (the driver's own rings) rather than copy mode.
    pub fn zero_copy(&self) -> bool {
        self.sock.zero_copy()
    }

    /// Whether the program runs in the driver (native XDP) rather than the generic path.
    pub fn driver_mode(&self) -> bool {
        self.driver_mode
    }

    /// Whether the socket busy-polls its queue ([`AfXdpConfig::busy_poll`], where the kernel
    /// allowed it).
    pub fn busy_poll(&self) -> bool {
        self.busy_poll
    }

    /// Frames too large for a UMEM frame, skipped on send.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Frames the kernel dropped for this socket: its receive ring full, no frame lent in the
    /// fill ring, or dropped otherwise (`XDP_STATISTICS`).
    ///
    /// # Errors
    /// The system error of reading the counters.
    pub fn kernel_drops(&self) -> io::Result<u64> {
        let s = self.sock.stats()?;
        Ok(s.rx_dropped + s.rx_ring_full + s.rx_fill_ring_empty)
    }
}

/// The socket leaves the program's map when it closes (the kernel's `xsk_delete_from_maps`);
/// the last port of an interface detaches the program, under the registry's lock, so that a
/// port opening meanwhile attaches afresh rather than finding it half gone.
impl Drop for AfXdp {
    fn drop(&mut self) {
        let mut all = attached();
        if let Some(i) = all.iter().position(|a| a.iface == self.iface) {
            all[i].queues.remove(&self.queue);
            if all[i].queues.is_empty() {
                all.swap_remove(i);
            }
        }
    }
}

impl PacketIo for AfXdp {
    fn caps(&self) -> IoCaps {
        IoCaps { mtu: 1514, headroom: DEFAULT_HEADROOM, max_burst: MAX_BURST }
    }

    fn recv(&mut self, _now: Instant, frames: &mut [Frame]) -> io::Result<usize> {
        let mut i = 0;
        self.sock.recv(frames.len(), |data| {
            if let Some(f) = frames.get_mut(i) {
                f.load(DEFAULT_HEADROOM, data);
                i += 1;
            }
        });
        Ok(i)
    }

    fn send(&mut self, _now: Instant, frames: &[Frame]) -> io::Result<usize> {
        self.sock.send(frames.iter().map(Frame::data), &mut self.refused)
    }

    /// Makes the map of the XDP program hold exactly the filter's classes: the ones gone are
    /// removed, the new ones added.
    ///
    /// The program's map is the interface's, shared by its queues' ports: each port's filter
    /// replaces what the last one set.
    fn set_filter(&mut self, filter: &Filter) -> io::Result<()> {
        let want: BTreeSet<[u8; 20]> = filter.matches().map(|m| m.key()).collect();
        let mut all = attached();
        let a = all.iter_mut().find(|a| a.iface == self.iface).ok_or_else(|| other("the XDP program", "detached"))?;
        for k in a.installed.difference(&want) {
            a.matches.remove(k).map_err(|e| other("updating the XDP map", e))?;
        }
        for k in want.difference(&a.installed) {
            a.matches.insert(k, 1, 0).map_err(|e| other("updating the XDP map", e))?;
        }
        a.installed = want;
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.sock.fd())
    }
}

/// How many receive queues `ifname` has in the calling thread's network namespace (ethtool's
/// `-l`: receive-only and combined channels), so that an application can give each shard one
/// before opening them; `None` when the driver does not say.
///
/// # Errors
/// No such interface; the system error of asking.
pub fn rx_queue_count(ifname: &str) -> io::Result<Option<u32>> {
    rx_queues(ifname)
}

/// Opens `ifname` with AF_XDP, or with AF_PACKET when AF_XDP cannot start (no XDP program in
/// this build, an old kernel, no permission, another program attached); the second value then
/// says why, and a warning is logged.
///
/// # Errors
/// AF_PACKET's own error when neither opens.
pub fn open_or_afpacket(
    ifname: &str,
    xdp: AfXdpConfig,
    packet: AfPacketConfig,
) -> io::Result<(Box<dyn PacketIo + Send>, Option<io::Error>)> {
    match AfXdp::open(ifname, xdp) {
        Ok(port) => Ok((Box::new(port), None)),
        Err(e) => {
            log::warn!(target: "lvs::afxdp", "{ifname}: AF_XDP cannot start ({e}); falling back to AF_PACKET");
            Ok((Box::new(AfPacket::open(ifname, packet)?), Some(e)))
        }
    }
}
