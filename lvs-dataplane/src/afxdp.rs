//! `AfXdp`: an AF_XDP socket on one queue of a named interface, behind an XDP program
//! (`bpf/lvs_xdp.c`, built by `build.rs` with clang and loaded with aya) that redirects to it
//! only the frames a [`Filter`] wants — to a virtual address, from a NAT real server — and passes
//! everything else to the kernel untouched: ARP, neighbour discovery, the host's own traffic,
//! the replies of DR and TUN servers. Copy mode where the driver has no zero-copy (veth),
//! zero-copy where it has; [`open_or_afpacket`] falls back to AF_PACKET when AF_XDP cannot
//! start.
//!
//! Frames are copied between the UMEM and the runtime's [`Frame`] buffers (the runtime's
//! buffers carry the director's headroom); the UMEM frames keep a headroom of their own for the
//! day frames are rewritten in place.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;

use aya::maps::{HashMap as BpfHashMap, MapData, XskMap};
use aya::programs::{Xdp, XdpFlags};
use aya::Ebpf;
use lvs_core::wire::{Frame, DEFAULT_HEADROOM};
use lvs_core::Instant;

use crate::afpacket::{AfPacket, AfPacketConfig};
use crate::filter::Filter;
use crate::io::{IoCaps, PacketIo};
use crate::sys::linux::ifindex;
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
    /// Where the program runs.
    pub mode: XdpMode,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig { queue: 0, frames: 4096, zero_copy: true, mode: XdpMode::Auto }
    }
}

/// Bytes per UMEM frame: a page holds two, each room for a 1514-byte frame, the UMEM headroom
/// and tunnel headers.
const FRAME_SIZE: u32 = 2048;
/// Headroom the kernel leaves before each received frame: room for an outer IPv6 header and
/// more (`DEFAULT_HEADROOM` bytes, as the runtime's buffers have).
const UMEM_HEADROOM: u32 = 256;
/// Most frames one receive or send moves.
const MAX_BURST: usize = 64;

/// An AF_XDP port: the XDP program attached to the interface and the socket of one queue.
pub struct AfXdp {
    // Field order is drop order: the socket closes before the program is detached.
    sock: XskSocket,
    matches: BpfHashMap<MapData, [u8; 20], u8>,
    installed: BTreeSet<[u8; 20]>,
    _xsks: XskMap<MapData>,
    _bpf: Ebpf,
    driver_mode: bool,
    refused: u64,
}

/// An aya error as an I/O error that says what failed.
fn other(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl AfXdp {
    /// Attaches the XDP program to `ifname` and binds a socket to queue `cfg.queue`. Until a
    /// filter is set ([`PacketIo::set_filter`]) the program passes every frame to the kernel.
    /// The program is detached when the port is dropped (or the process ends: it is held by a
    /// BPF link).
    ///
    /// # Errors
    /// This build has no XDP program (clang was missing: [`io::ErrorKind::Unsupported`]); no
    /// such interface; not permitted (`CAP_NET_ADMIN`, `CAP_BPF`); another XDP program is
    /// attached; the kernel or driver has no AF_XDP or no such queue.
    pub fn open(ifname: &str, cfg: AfXdpConfig) -> io::Result<AfXdp> {
        if PROGRAM.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no XDP program in this build: {NOT_BUILT}"),
            ));
        }
        let idx = ifindex(ifname)?;
        let mut bpf = Ebpf::load(PROGRAM).map_err(|e| other("loading the XDP program", e))?;
        let prog: &mut Xdp = bpf
            .program_mut("lvs_xdp")
            .ok_or_else(|| other("the XDP object", "no program lvs_xdp"))?
            .try_into()
            .map_err(|e| other("the XDP object", e))?;
        prog.load().map_err(|e| other("the kernel refused the XDP program", e))?;
        let driver_mode = match cfg.mode {
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
        let opts =
            XskOpts { frame_size: FRAME_SIZE, frames: cfg.frames, headroom: UMEM_HEADROOM, zero_copy: cfg.zero_copy };
        let sock = XskSocket::open(idx, cfg.queue, opts)?;
        let mut xsks: XskMap<MapData> = bpf
            .take_map("lvs_xsks")
            .ok_or_else(|| other("the XDP object", "no map lvs_xsks"))?
            .try_into()
            .map_err(|e| other("the XDP object", e))?;
        xsks.set(cfg.queue, sock.fd(), 0).map_err(|e| other("registering the socket", e))?;
        let matches = bpf
            .take_map("lvs_matches")
            .ok_or_else(|| other("the XDP object", "no map lvs_matches"))?
            .try_into()
            .map_err(|e| other("the XDP object", e))?;
        log::info!(
            target: "lvs::afxdp",
            "{ifname} queue {}: AF_XDP in {} mode, {}",
            cfg.queue,
            if sock.zero_copy() { "zero-copy" } else { "copy" },
            if driver_mode { "XDP in the driver" } else { "generic XDP" }
        );
        Ok(AfXdp { sock, matches, installed: BTreeSet::new(), _xsks: xsks, _bpf: bpf, driver_mode, refused: 0 })
    }

    /// Whether the socket runs zero-copy (the driver's own rings) rather than copy mode.
    pub fn zero_copy(&self) -> bool {
        self.sock.zero_copy()
    }

    /// Whether the program runs in the driver (native XDP) rather than the generic path.
    pub fn driver_mode(&self) -> bool {
        self.driver_mode
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
    fn set_filter(&mut self, filter: &Filter) -> io::Result<()> {
        let want: BTreeSet<[u8; 20]> = filter.matches().map(|m| m.key()).collect();
        for k in self.installed.difference(&want) {
            self.matches.remove(k).map_err(|e| other("updating the XDP map", e))?;
        }
        for k in want.difference(&self.installed) {
            self.matches.insert(k, 1, 0).map_err(|e| other("updating the XDP map", e))?;
        }
        self.installed = want;
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.sock.fd())
    }
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
