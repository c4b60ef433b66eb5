//! `PacketIo`: batched, non-blocking movement of frames with headroom (smoltcp's `phy::Device`,
//! in bursts).

use std::io;
use std::os::fd::RawFd;

use lvs_core::wire::{Frame, DEFAULT_HEADROOM};

use crate::filter::Filter;
use lvs_core::Instant;

/// A buffer for a receive pool (the runtime's, the shards' hand-off): the director's headroom
/// and room for any frame a backend receives.
pub(crate) fn fresh_frame() -> Frame {
    Frame::with_capacity(DEFAULT_HEADROOM + 2048)
}

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
///
/// A backend fills the buffers it is given (so the caller's pool is reused) and takes frames to
/// send by reference. Here, a wire in memory whose far end is a queue of frames:
///
/// ```
/// use std::collections::VecDeque;
/// use std::io;
///
/// use lvs_core::wire::{Frame, DEFAULT_HEADROOM};
/// use lvs_core::Instant;
/// use lvs_dataplane::io::{IoCaps, PacketIo};
///
/// #[derive(Default)]
/// struct Wire {
///     inbound: VecDeque<Vec<u8>>,
///     outbound: Vec<Vec<u8>>,
/// }
///
/// impl PacketIo for Wire {
///     fn caps(&self) -> IoCaps {
///         IoCaps { mtu: 1514, headroom: DEFAULT_HEADROOM, max_burst: 32 }
///     }
///
///     fn recv(&mut self, _now: Instant, frames: &mut [Frame]) -> io::Result<usize> {
///         let mut n = 0;
///         for f in frames.iter_mut() {
///             let Some(data) = self.inbound.pop_front() else { break };
///             f.load(DEFAULT_HEADROOM, &data);
///             n += 1;
///         }
///         Ok(n)
///     }
///
///     fn send(&mut self, _now: Instant, frames: &[Frame]) -> io::Result<usize> {
///         self.outbound.extend(frames.iter().map(|f| f.data().to_vec()));
///         Ok(frames.len())
///     }
/// }
///
/// let mut wire = Wire::default();
/// wire.inbound.extend([vec![0xff; 60], vec![0xee; 60]]);
/// let mut pool: Vec<Frame> = (0..32).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 1514)).collect();
/// let n = wire.recv(Instant::ZERO, &mut pool)?;
/// assert_eq!(n, 2);
/// assert_eq!(wire.send(Instant::ZERO, &pool[..n])?, 2);
/// assert_eq!(wire.outbound[1], [0xee; 60]);
/// # Ok::<(), io::Error>(())
/// ```
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

    /// Receives only the frames `filter` wants from now on, where the backend can filter in the
    /// kernel (AF_PACKET, AF_XDP). Backends that cannot receive everything, as they did.
    ///
    /// # Errors
    /// The system error of installing the filter.
    fn set_filter(&mut self, _filter: &Filter) -> io::Result<()> {
        Ok(())
    }

    /// The descriptor to poll for readability, where there is one.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}
