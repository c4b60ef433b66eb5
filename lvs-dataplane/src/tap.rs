//! `Tap`: a TAP device from `/dev/net/tun` (`IFF_TAP | IFF_NO_PI`), created or attached by name,
//! non-blocking, multi-queue when asked (open it once per queue).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use lvs_core::wire::{Frame, DEFAULT_HEADROOM};
use lvs_core::Instant;

use crate::io::{IoCaps, PacketIo};
use crate::sys::tun;

/// A TAP device queue.
pub struct Tap {
    fd: OwnedFd,
    name: String,
    buf: Vec<u8>,
}

impl Tap {
    /// Creates the TAP device `name` (or attaches to it if it exists and we own it).
    ///
    /// # Errors
    /// The system error (no `/dev/net/tun`, not permitted, name too long, ...).
    pub fn open(name: &str, multi_queue: bool) -> io::Result<Tap> {
        let (fd, name) = tun::open_tap(name, multi_queue)?;
        Ok(Tap { fd, name, buf: vec![0; 65_536] })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PacketIo for Tap {
    fn caps(&self) -> IoCaps {
        IoCaps { mtu: 1514, headroom: DEFAULT_HEADROOM, max_burst: 64 }
    }

    fn recv(&mut self, _now: Instant, frames: &mut [Frame]) -> io::Result<usize> {
        let mut n = 0;
        for f in frames.iter_mut() {
            match tun::read(self.fd.as_raw_fd(), &mut self.buf)? {
                Some(len) => {
                    f.load(DEFAULT_HEADROOM, self.buf.get(..len).unwrap_or_default());
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }

    fn send(&mut self, _now: Instant, frames: &[Frame]) -> io::Result<usize> {
        let mut n = 0;
        for f in frames {
            if !tun::write(self.fd.as_raw_fd(), f.data())? {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }
}
