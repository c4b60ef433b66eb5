//! `PacketIo`: batched, non-blocking movement of frames with headroom (smoltcp's `phy::Device`,
//! in bursts).

use std::io;
use std::os::fd::RawFd;

use lvs_core::wire::Frame;
use lvs_core::Instant;

/// What a backend offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoCaps {
    /// Largest frame it carries (Ethernet header included).
    pub mtu: usize,
    /// Headroom received frames get (for tunnel headers and ICMP errors).
    pub headroom: usize,
    /// Most frames one `recv` or `send` handles.
    pub max_burst: usize,
}

/// A source and sink of Ethernet frames.
pub trait PacketIo {
    /// What the backend offers.
    fn caps(&self) -> IoCaps;

    /// Receives up to `frames.len()` frames into the given buffers (each loaded with the
    /// backend's headroom); returns how many. `Ok(0)` means nothing is ready.
    ///
    /// # Errors
    /// The system error of the backend.
    fn recv(&mut self, now: Instant, frames: &mut [Frame]) -> io::Result<usize>;

    /// Sends frames in order; returns how many went out (the rest may be retried).
    ///
    /// # Errors
    /// The system error of the backend.
    fn send(&mut self, now: Instant, frames: &[Frame]) -> io::Result<usize>;

    /// The descriptor to poll for readability, where there is one.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}
