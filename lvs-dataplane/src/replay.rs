//! `PcapReplay`: a capture file as a packet source (its timestamps can drive the director's
//! clock), and `PcapWriter<D>`, middleware that records everything a backend sends.

use std::io;
use std::io::Write;

use lvs_core::wire::{Frame, DEFAULT_HEADROOM};
use lvs_core::Instant;

use crate::io::{IoCaps, PacketIo};
use crate::pcap::{CaptureWriter, Captured};

/// Frames from a capture, handed out in bursts; what is sent is kept for inspection.
pub struct PcapReplay {
    frames: Vec<Captured>,
    next: usize,
    looping: bool,
    /// Everything sent through this backend, with the time it was sent (not kept when looping).
    pub sent: Vec<Captured>,
    /// How many frames were sent.
    pub sent_count: u64,
}

impl PcapReplay {
    /// A replay of captured frames.
    pub fn new(frames: Vec<Captured>) -> Self {
        PcapReplay { frames, next: 0, looping: false, sent: Vec::new(), sent_count: 0 }
    }

    /// A replay that starts over at the end and only counts what is sent: a packet source for
    /// measuring the pipeline alone.
    pub fn looping(frames: Vec<Captured>) -> Self {
        PcapReplay { looping: true, ..PcapReplay::new(frames) }
    }

    /// Whether every frame has been handed out.
    pub fn is_done(&self) -> bool {
        !self.looping && self.next >= self.frames.len()
    }
}

impl PacketIo for PcapReplay {
    fn caps(&self) -> IoCaps {
        IoCaps { mtu: 65_535, headroom: DEFAULT_HEADROOM, max_burst: 64 }
    }

    fn recv(&mut self, _now: Instant, frames: &mut [Frame]) -> io::Result<usize> {
        let mut n = 0;
        for f in frames.iter_mut() {
            if self.looping && self.next >= self.frames.len() {
                self.next = 0;
            }
            let Some(c) = self.frames.get(self.next) else { break };
            f.load(DEFAULT_HEADROOM, &c.data);
            self.next += 1;
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, now: Instant, frames: &[Frame]) -> io::Result<usize> {
        self.sent_count += frames.len() as u64;
        if !self.looping {
            self.sent.extend(frames.iter().map(|f| Captured { ts_ns: now.as_nanos(), data: f.data().to_vec() }));
        }
        Ok(frames.len())
    }
}

/// Wraps a backend and writes every frame it sends to a pcap file.
pub struct PcapWriter<D: PacketIo, W: Write> {
    inner: D,
    out: CaptureWriter<W>,
}

impl<D: PacketIo, W: Write> PcapWriter<D, W> {
    /// Records what `inner` sends into `out`.
    pub fn new(inner: D, out: CaptureWriter<W>) -> Self {
        PcapWriter { inner, out }
    }

    /// The wrapped backend and the writer.
    pub fn into_parts(self) -> (D, CaptureWriter<W>) {
        (self.inner, self.out)
    }
}

impl<D: PacketIo, W: Write> PacketIo for PcapWriter<D, W> {
    fn caps(&self) -> IoCaps {
        self.inner.caps()
    }

    fn recv(&mut self, now: Instant, frames: &mut [Frame]) -> io::Result<usize> {
        self.inner.recv(now, frames)
    }

    fn send(&mut self, now: Instant, frames: &[Frame]) -> io::Result<usize> {
        let n = self.inner.send(now, frames)?;
        for f in frames.iter().take(n) {
            self.out.write(now.as_nanos(), f.data()).map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(n)
    }

    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.raw_fd()
    }
}
