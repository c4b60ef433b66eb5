//! A frame buffer with headroom, so encapsulation and generated ICMP errors can grow the frame
//! at the front without copying the payload.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use alloc::vec;
use alloc::vec::Vec;

/// Headroom a frame gets by default: enough for an IPv6 outer header plus an ICMPv6 error's
/// headers in front of a VLAN-tagged frame.
pub const DEFAULT_HEADROOM: usize = 128;

/// One Ethernet frame in a buffer with room in front of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    buf: Vec<u8>,
    head: usize,
    len: usize,
    /// The firewall mark the application's classifier gave the frame (0 = none).
    pub mark: u32,
    /// The port (interface) the frame arrived on.
    pub port: u16,
}

impl Frame {
    /// A frame holding a copy of `data` with `headroom` free bytes in front.
    pub fn new(headroom: usize, data: &[u8]) -> Self {
        let mut buf = vec![0u8; headroom + data.len()];
        if let Some(dst) = buf.get_mut(headroom..) {
            dst.copy_from_slice(data);
        }
        Frame { buf, head: headroom, len: data.len(), mark: 0, port: 0 }
    }

    /// An empty frame whose buffer holds `capacity` bytes (pools reuse these with [`Frame::load`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Frame { buf: vec![0u8; capacity], head: 0, len: 0, mark: 0, port: 0 }
    }

    /// Replaces the contents with `data`, keeping `headroom` in front, reusing the buffer when
    /// it is big enough.
    pub fn load(&mut self, headroom: usize, data: &[u8]) {
        if self.buf.len() < headroom + data.len() {
            self.buf.resize(headroom + data.len(), 0);
        }
        if let Some(dst) = self.buf.get_mut(headroom..headroom + data.len()) {
            dst.copy_from_slice(data);
        }
        self.head = headroom;
        self.len = data.len();
        self.mark = 0;
        self.port = 0;
    }

    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        self.buf.get(self.head..self.head + self.len).unwrap_or_default()
    }

    /// The frame's bytes, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.head..self.head + self.len).unwrap_or_default()
    }

    /// Length of the frame.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the frame holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes in front of the frame.
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Grows the frame by `n` bytes at the front; `false` (and no change) without the headroom.
    pub(crate) fn push_front(&mut self, n: usize) -> bool {
        if n > self.head {
            return false;
        }
        self.head -= n;
        self.len += n;
        true
    }

    /// Shrinks the frame by `n` bytes at the front, giving them to the headroom; `false` (and
    /// no change) when the frame is shorter.
    pub(crate) fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.head += n;
        self.len -= n;
        true
    }

    /// Inserts `bytes` at offset `at` of the frame, moving what follows toward the end (the
    /// buffer grows when its tail room is short). `false`, and no change, when `at` is beyond
    /// the frame.
    pub(crate) fn insert(&mut self, at: usize, bytes: &[u8]) -> bool {
        if at > self.len {
            return false;
        }
        let end = self.head + self.len;
        let n = bytes.len();
        if self.buf.len() < end + n {
            self.buf.resize(end + n, 0);
        }
        let start = self.head + at;
        self.buf.copy_within(start..end, start + n);
        match self.buf.get_mut(start..start + n) {
            Some(dst) => dst.copy_from_slice(bytes),
            None => return false,
        }
        self.len += n;
        true
    }

    /// Shortens the frame to `len` bytes.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_grows_front() {
        let mut f = Frame::new(4, &[1, 2, 3]);
        assert!(f.push_front(2));
        assert_eq!(f.data(), &[0, 0, 1, 2, 3]);
        assert!(!f.push_front(3));
        f.truncate(2);
        assert_eq!(f.data(), &[0, 0]);
        f.load(8, &[9; 20]);
        assert_eq!((f.headroom(), f.len()), (8, 20));
        let mut g = Frame::new(0, &[1, 2, 3]);
        assert!(g.insert(1, &[7, 8]));
        assert_eq!(g.data(), &[1, 7, 8, 2, 3]);
        assert!(g.insert(5, &[9]));
        assert_eq!(g.data(), &[1, 7, 8, 2, 3, 9]);
        assert!(!g.insert(7, &[0]));
        f.load(8, &[9; 20]);
        assert_eq!((f.headroom(), f.len()), (8, 20));
    }
}
