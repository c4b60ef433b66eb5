//! The PROXY protocol header (HAProxy's `doc/proxy-protocol.txt`, versions 1 and 2) that a
//! FullNAT director puts in front of a TCP stream so the real server learns the client's
//! address (DPVS `ip_vs_proxy_proto.c`). Emitted into a fixed buffer: no allocation.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use core::fmt::Write;
use core::net::IpAddr;

/// Which version of the header a service sends (`--proxy-protocol v1|v2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// Version 1: one human-readable line, `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// Version 2: the 12-byte signature, then binary addresses.
    V2,
}

/// The 12-byte signature that starts every version 2 header (section 2.2).
pub const V2_SIGNATURE: [u8; 12] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/// The longest header this module writes: a version 1 line is at most 107 bytes (section 2.1).
pub const MAX_LEN: usize = 107;

/// What a header says: the transport and the connection's two ends as the client saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyRepr {
    /// Version to write.
    pub version: ProxyVersion,
    /// `true` for TCP (`TCP4`/`TCP6`, `\x11`/`\x21`), `false` for UDP (version 2 only:
    /// `\x12`/`\x22`; version 1 cannot say UDP and writes `UNKNOWN`).
    pub stream: bool,
    /// The client's address and port.
    pub src: (IpAddr, u16),
    /// The address and port the client connected to (the virtual service).
    pub dst: (IpAddr, u16),
}

/// A header written out: its bytes live in a fixed buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    buf: [u8; MAX_LEN],
    len: u8,
}

impl ProxyHeader {
    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// A `fmt::Write` over the header buffer; text beyond it is refused.
struct Cursor<'a> {
    buf: &'a mut [u8; MAX_LEN],
    len: usize,
}

impl Cursor<'_> {
    fn put(&mut self, b: &[u8]) -> core::fmt::Result {
        let dst = self.buf.get_mut(self.len..self.len + b.len()).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(b);
        self.len += b.len();
        Ok(())
    }
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.put(s.as_bytes())
    }
}

impl ProxyRepr {
    /// Writes the header. Mixed families (an IPv6 client of an IPv4 service) cannot be said
    /// in one address block: version 1 writes `PROXY UNKNOWN\r\n`, version 2 the `UNSPEC`
    /// family with no addresses, which section 2.2 tells receivers to accept and ignore.
    pub fn emit(&self) -> ProxyHeader {
        let mut buf = [0u8; MAX_LEN];
        let mut c = Cursor { buf: &mut buf, len: 0 };
        // Every branch fits MAX_LEN (section 2.1 sizes the worst case), so writes cannot fail.
        let _ = match self.version {
            ProxyVersion::V1 => self.emit_v1(&mut c),
            ProxyVersion::V2 => self.emit_v2(&mut c),
        };
        let len = c.len as u8;
        ProxyHeader { buf, len }
    }

    /// Section 2.1: `PROXY TCP4|TCP6 src dst sport dport\r\n`, addresses as `inet_ntop` writes
    /// them; anything else is `PROXY UNKNOWN\r\n`.
    fn emit_v1(&self, c: &mut Cursor<'_>) -> core::fmt::Result {
        let fam = match (self.src.0, self.dst.0) {
            (IpAddr::V4(_), IpAddr::V4(_)) if self.stream => "TCP4",
            (IpAddr::V6(_), IpAddr::V6(_)) if self.stream => "TCP6",
            _ => return c.put(b"PROXY UNKNOWN\r\n"),
        };
        write!(c, "PROXY {fam} {} {} {} {}\r\n", self.src.0, self.dst.0, self.src.1, self.dst.1)
    }

    /// Section 2.2: signature, `\x21` (version 2, PROXY), family and transport, the length of
    /// the address block, then source and destination addresses and ports.
    fn emit_v2(&self, c: &mut Cursor<'_>) -> core::fmt::Result {
        c.put(&V2_SIGNATURE)?;
        let transport = if self.stream { 0x1 } else { 0x2 };
        match (self.src.0, self.dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                c.put(&[0x21, 0x10 | transport, 0, 12])?;
                c.put(&s.octets())?;
                c.put(&d.octets())?;
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                c.put(&[0x21, 0x20 | transport, 0, 36])?;
                c.put(&s.octets())?;
                c.put(&d.octets())?;
            }
            _ => return c.put(&[0x21, 0x00, 0, 0]),
        }
        c.put(&self.src.1.to_be_bytes())?;
        c.put(&self.dst.1.to_be_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_examples_of_the_specification() {
        // Section 2.1, "the worst case" lines and the example of a TCP4 header.
        let r = |src: &str, dst: &str, sp, dp| ProxyRepr {
            version: ProxyVersion::V1,
            stream: true,
            src: (ip(src), sp),
            dst: (ip(dst), dp),
        };
        let h = r("255.255.255.255", "255.255.255.255", 65535, 65535).emit();
        assert_eq!(h.as_bytes(), b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
        let h = r("192.168.0.1", "192.168.0.11", 56324, 443).emit();
        assert_eq!(h.as_bytes(), b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
        let all = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let h = r(all, all, 65535, 65535).emit();
        let want = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(h.as_bytes(), &want[..]);
        assert_eq!(h.as_bytes().len(), 104);
        let h = r("192.168.0.1", "2001:db8::1", 1, 2).emit();
        assert_eq!(h.as_bytes(), b"PROXY UNKNOWN\r\n");
    }

    #[test]
    fn v2_layout_of_the_specification() {
        // Section 2.2: signature, 0x21, 0x11 (TCP over IPv4), length 12, addresses, ports.
        let h = ProxyRepr {
            version: ProxyVersion::V2,
            stream: true,
            src: (ip("192.168.0.1"), 56324),
            dst: (ip("192.168.0.11"), 443),
        }
        .emit();
        let want = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c, 192, 168,
            0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb,
        ];
        assert_eq!(h.as_bytes(), &want[..]);
        // 0x21 0x21: TCP over IPv6, 36 bytes of addresses; 0x12: UDP over IPv4.
        let h = ProxyRepr {
            version: ProxyVersion::V2,
            stream: true,
            src: (ip("2001:db8::1"), 1),
            dst: (ip("2001:db8::2"), 2),
        }
        .emit();
        assert_eq!(h.as_bytes().len(), 16 + 36);
        assert_eq!(h.as_bytes().get(12..16), Some(&[0x21, 0x21, 0, 36][..]));
        let h =
            ProxyRepr { version: ProxyVersion::V2, stream: false, src: (ip("10.0.0.1"), 1), dst: (ip("10.0.0.2"), 2) }
                .emit();
        assert_eq!(h.as_bytes().get(13), Some(&0x12));
    }
}
