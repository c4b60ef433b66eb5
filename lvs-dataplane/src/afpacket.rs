//! `AfPacket`: a raw socket on a named interface with a TPACKET_V2 receive ring,
//! `sendmmsg` transmit, `PACKET_QDISC_BYPASS`, `PACKET_IGNORE_OUTGOING` (the director does not
//! see its own transmissions), optional promiscuous mode and `PACKET_FANOUT` — by the
//! kernel's flow hash or by a [`Steer`] program that keeps each client on one socket — so one
//! socket per core can share an interface.

use std::io;
use std::os::fd::RawFd;

use lvs_core::wire::{complete_l4_checksum, Frame, DEFAULT_HEADROOM};
use lvs_core::Instant;

use crate::filter::Filter;
use crate::io::{IoCaps, PacketIo};
use crate::steer::Steer;
use crate::sys::linux::{PacketOpts, PacketSocket, MAX_BATCH};

/// Options of an [`AfPacket`] socket.
#[derive(Clone, Copy, Debug)]
pub struct AfPacketConfig {
    /// Receive frames not addressed to the interface's MAC: promiscuous mode, and frames the
    /// link delivers for other hosts (a switch flooding unicast it has no port for) are handed
    /// on. Off, they are skipped, as the kernel's stack drops them; a director that takes a
    /// VRRP virtual MAC's traffic needs it on.
    pub promisc: bool,
    /// Join fanout group `id`: sockets of one group (one interface) share its traffic, spread
    /// as `steer` says. Socket `i` of a group is the `i`-th to join it.
    pub fanout: Option<u16>,
    /// How a fanout group spreads frames: the kernel's flow hash, or a program that hashes
    /// the client's side so that NAT replies reach the socket of their request. The program
    /// follows the services when the runtime sets the port's filter
    /// ([`PacketIo::set_filter`]); until then it steers by the source alone.
    pub steer: Steer,
    /// Receive ring: bytes per block (a multiple of the page size), each holding as many
    /// 2 KiB frame slots as fit.
    pub block_size: u32,
    /// Receive ring: number of blocks.
    pub block_nr: u32,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig { promisc: false, fanout: None, steer: Steer::FlowHash, block_size: 1 << 20, block_nr: 8 }
    }
}

/// A raw packet socket bound to one interface.
pub struct AfPacket {
    sock: PacketSocket,
    /// The fanout group's steering, when it has a program.
    steer: Option<Steer>,
    headroom: usize,
    refused: u64,
}

impl AfPacket {
    /// Opens a socket on interface `ifname`.
    ///
    /// # Errors
    /// The system error (no such device, not permitted without `CAP_NET_RAW`, ...).
    pub fn open(ifname: &str, cfg: AfPacketConfig) -> io::Result<AfPacket> {
        let steer = cfg.fanout.and(Some(cfg.steer)).filter(|s| *s != Steer::FlowHash);
        let o = PacketOpts {
            promisc: cfg.promisc,
            fanout: cfg.fanout,
            fanout_cbpf: steer.is_some(),
            block_size: cfg.block_size,
            block_nr: cfg.block_nr,
        };
        let sock = PacketSocket::open(ifname, o)?;
        // A group without a program gives everything to its first socket.
        if let Some(prog) = steer.and_then(|s| s.program(&Filter::default())) {
            sock.set_fanout_program(&prog)?;
        }
        Ok(AfPacket { sock, steer, headroom: DEFAULT_HEADROOM, refused: 0 })
    }

    /// Frames the kernel refused to send (and that were skipped).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Received frames longer than a 2 KiB ring slot holds (jumbo frames, a receive offload's
    /// merged segments), which were skipped: the director forwards frames of a 1,500-byte MTU.
    pub fn truncated(&self) -> u64 {
        self.sock.truncated()
    }
}

impl PacketIo for AfPacket {
    fn caps(&self) -> IoCaps {
        IoCaps { mtu: 1514, headroom: self.headroom, max_burst: MAX_BATCH }
    }

    fn recv(&mut self, _now: Instant, frames: &mut [Frame]) -> io::Result<usize> {
        let headroom = self.headroom;
        let mut i = 0;
        let n = self.sock.recv(frames.len(), |data, csum_not_ready| {
            if let Some(f) = frames.get_mut(i) {
                f.load(headroom, data);
                if csum_not_ready {
                    complete_l4_checksum(f.data_mut());
                }
                i += 1;
            }
        });
        Ok(n)
    }

    /// Sends in `sendmmsg` batches. A frame the kernel refuses (larger than the link, for
    /// instance) is skipped and counted in [`AfPacket::refused`] rather than stopping the port.
    fn send(&mut self, _now: Instant, frames: &[Frame]) -> io::Result<usize> {
        let mut done = 0;
        while done < frames.len() {
            match self.sock.send(frames[done..].iter().map(Frame::data)) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::EINVAL | libc::ENOBUFS)) => {
                    self.refused += 1;
                    done += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Attaches the filter's classic BPF program ([`Filter::classic_bpf`]) to the socket and,
    /// in a steered fanout group, gives the group the steering program of the same services
    /// ([`Steer::program`]: their NAT servers' replies go by their destination).
    fn set_filter(&mut self, filter: &Filter) -> io::Result<()> {
        self.sock.attach_filter(&filter.classic_bpf())?;
        match self.steer.and_then(|s| s.program(filter)) {
            Some(prog) => self.sock.set_fanout_program(&prog),
            None => Ok(()),
        }
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.sock.fd())
    }
}
