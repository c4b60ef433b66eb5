//! The segments a SYN proxy writes and the rewrites that splice its two handshakes (Alibaba
//! LVS `ip_vs_synproxy.c`, DPVS `ipvs/ip_vs_synproxy.c`): reading a SYN's options, turning a
//! frame in place into a segment of the director's own (the cookie SYN-ACK, the SYN and the
//! ACK toward the real server, the reset toward the client), and moving timestamps and
//! window fields between the two halves. Sequence numbers move through [`super::seqadj`].

use core::net::IpAddr;

use super::icmp::{addr_bytes, write_v4_header, write_v6_header};
use super::seqadj::rewrite32;
use super::tcpopt::{
    self, walk, MSS as OPT_MSS, NOP as OPT_NOP, SACK_PERM as OPT_SACK_PERM, TS as OPT_TS, WS as OPT_WS,
};
use super::{ok, XmitError};
use crate::addr::Af;
use crate::wire::{csum, field, ipproto, Frame, PacketMeta};

/// Offset of the window field in the TCP header.
const TCP_WINDOW: usize = 14;

/// The options of a SYN or SYN-ACK that a SYN proxy reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpOpts {
    /// MSS.
    pub(crate) mss: Option<u16>,
    /// Window scale.
    pub(crate) wscale: Option<u8>,
    /// SACK permitted.
    pub(crate) sack: bool,
    /// Timestamps: value and echo reply.
    pub(crate) ts: Option<(u32, u32)>,
}

impl TcpOpts {
    /// The options as Linux lays them out in a SYN or SYN-ACK (`tcp_options_write`): MSS, SACK
    /// permitted with timestamps (or NOPs in its place), NOP and window scale. At most 24 bytes.
    pub(crate) fn emit(&self, out: &mut [u8; 24]) -> usize {
        let mut n = 0;
        let mut put = |b: &[u8]| {
            for (d, s) in out.iter_mut().skip(n).zip(b) {
                *d = *s;
            }
            n += b.len();
        };
        if let Some(m) = self.mss {
            let [a, b] = m.to_be_bytes();
            put(&[OPT_MSS, 4, a, b]);
        }
        match (self.ts, self.sack) {
            (Some((v, e)), sack) => {
                put(if sack { &[OPT_SACK_PERM, 2] } else { &[OPT_NOP, OPT_NOP] });
                put(&[OPT_TS, 10]);
                put(&v.to_be_bytes());
                put(&e.to_be_bytes());
            }
            (None, true) => put(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2]),
            (None, false) => {}
        }
        if let Some(w) = self.wscale {
            put(&[OPT_NOP, OPT_WS, 3, w]);
        }
        n
    }
}

/// The options of the TCP segment `meta` describes.
pub(crate) fn parse_opts(data: &[u8], meta: &PacketMeta) -> TcpOpts {
    let mut o = TcpOpts::default();
    let _ = walk(data, usize::from(meta.l4), |kind, i, len| match (kind, len) {
        (OPT_MSS, 4) => o.mss = field::be16(data, i + 2),
        (OPT_WS, 3) => o.wscale = field::byte(data, i + 2),
        (OPT_SACK_PERM, 2) => o.sack = true,
        (OPT_TS, 10) => o.ts = field::be32(data, i + 2).zip(field::be32(data, i + 6)),
        _ => {}
    });
    o
}

/// The window field of the TCP segment `meta` describes.
pub(crate) fn window(data: &[u8], meta: &PacketMeta) -> u16 {
    field::be16(data, usize::from(meta.l4) + TCP_WINDOW).unwrap_or(0)
}

/// A TCP segment the director writes over a frame: no payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment<'a> {
    pub(crate) src: (IpAddr, u16),
    pub(crate) dst: (IpAddr, u16),
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u8,
    pub(crate) window: u16,
    pub(crate) opts: &'a [u8],
}

impl Segment<'_> {
    /// Turns the frame (a TCP segment `meta` describes, whose link header stays) into this
    /// segment: a fresh IP header (TTL / hop limit 64, DF, ID 0, the incoming TOS without its ECN
    /// bits, as `tcp_v4_send_reset` writes), the TCP header with its options, a checksum over
    /// both.
    ///
    /// # Errors
    /// [`XmitError::Bounds`] when the frame does not hold the segment `meta` describes.
    pub(crate) fn emit(&self, frame: &mut Frame, meta: &PacketMeta) -> Result<(), XmitError> {
        let l3 = usize::from(meta.l3);
        let data = frame.data();
        let tos = match meta.af {
            Af::V4 => field::byte(data, l3 + 1).ok_or(XmitError::Bounds)?,
            Af::V6 => (field::be16(data, l3).ok_or(XmitError::Bounds)? >> 4) as u8,
        } & !3;
        let ip_hdr = if meta.af == Af::V4 { 20 } else { 40 };
        let optlen = self.opts.len().min(40) & !3;
        let tcp_len = 20 + optlen;
        let t = l3 + ip_hdr;
        frame.truncate(t);
        let zeros = [0u8; field::TCP_MAX_LEN];
        if frame.len() < t || !frame.insert(t, zeros.get(..tcp_len).ok_or(XmitError::Bounds)?) {
            return Err(XmitError::Bounds);
        }
        let (src, n) = addr_bytes(&self.src.0);
        let (dst, _) = addr_bytes(&self.dst.0);
        let (src, dst) = (src.get(..n).ok_or(XmitError::Bounds)?, dst.get(..n).ok_or(XmitError::Bounds)?);
        let data = frame.data_mut();
        match meta.af {
            Af::V4 => write_v4_header(data, l3, tos, (ip_hdr + tcp_len) as u16, 0, true, 64, ipproto::TCP, src, dst)?,
            Af::V6 => write_v6_header(data, l3, tos, tcp_len as u16, ipproto::TCP, 64, src, dst)?,
        }
        let tcp = data.get_mut(t..t + tcp_len).ok_or(XmitError::Bounds)?;
        ok(field::set_be16(tcp, field::L4_SPORT, self.src.1))?;
        ok(field::set_be16(tcp, field::L4_DPORT, self.dst.1))?;
        ok(field::set_be32(tcp, field::TCP_SEQ, self.seq))?;
        ok(field::set_be32(tcp, field::TCP_ACK, self.ack))?;
        ok(field::set_byte(tcp, field::TCP_DOFF, ((tcp_len / 4) as u8) << 4))?;
        ok(field::set_byte(tcp, field::TCP_DOFF + 1, self.flags))?;
        ok(field::set_be16(tcp, TCP_WINDOW, self.window))?;
        ok(field::set_bytes(tcp, 20..tcp_len, self.opts.get(..optlen).ok_or(XmitError::Bounds)?))?;
        let mut s = csum::add(0, src);
        s = csum::add(s, dst);
        s = csum::add(s, &[0, ipproto::TCP]);
        s = csum::add(s, &(tcp_len as u16).to_be_bytes());
        let c = csum::finish(csum::add(s, tcp));
        ok(field::set_be16(tcp, field::TCP_CSUM, c))
    }
}

/// What the other half of a spliced connection needs changed in a segment besides sequence
/// numbers: timestamps moved into its clock, the window field into its scale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OptAdj {
    /// Added to the timestamp value.
    pub(crate) tsval: u32,
    /// Taken from the timestamp echo reply.
    pub(crate) tsecr: u32,
    /// The shift the sender applies to its window field.
    pub(crate) win_from: u8,
    /// The shift the receiver applies to the window field it reads.
    pub(crate) win_to: u8,
}

impl OptAdj {
    /// Whether it changes nothing.
    pub(crate) fn is_none(&self) -> bool {
        self.tsval == 0 && self.tsecr == 0 && self.win_from == self.win_to
    }
}

/// Applies `adj` to the TCP segment `meta` describes, keeping its checksum right. A SYN's
/// window is never scaled (RFC 7323), so it is left alone.
///
/// # Errors
/// [`XmitError::Bounds`] when the frame does not hold the segment `meta` describes.
pub(crate) fn adjust(data: &mut [u8], meta: &PacketMeta, adj: &OptAdj) -> Result<(), XmitError> {
    if adj.is_none() {
        return Ok(());
    }
    let l4 = usize::from(meta.l4);
    let mut sum = field::be16(data, l4 + field::TCP_CSUM).ok_or(XmitError::Bounds)?;
    if adj.tsval != 0 || adj.tsecr != 0 {
        if let Some(i) = tcpopt::find(data, l4, OPT_TS, 10)? {
            sum = rewrite32(data, l4, i + 2, |v| v.wrapping_add(adj.tsval), sum)?;
            sum = rewrite32(data, l4, i + 6, |v| v.wrapping_sub(adj.tsecr), sum)?;
        }
    }
    if adj.win_from != adj.win_to && meta.tcp_flags & crate::proto::tcp::flags::SYN == 0 {
        let old = field::be16(data, l4 + TCP_WINDOW).ok_or(XmitError::Bounds)?;
        let bytes = u64::from(old) << adj.win_from.min(14);
        let new = (bytes >> adj.win_to.min(14)).min(0xffff) as u16;
        ok(field::set_be16(data, l4 + TCP_WINDOW, new))?;
        sum = csum::update16(sum, old, new);
    }
    ok(field::set_be16(data, l4 + field::TCP_CSUM, sum))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn options_as_linux_writes_them() {
        let mut b = [0u8; 24];
        let o = TcpOpts { mss: Some(1460), wscale: Some(7), sack: true, ts: Some((0x01020304, 0x05060708)) };
        let n = o.emit(&mut b);
        // A Linux SYN-ACK: mss 1460, sackOK + TS, nop, wscale 7.
        assert_eq!(&b[..n], &[2, 4, 5, 180, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7]);
        let n = TcpOpts { mss: Some(536), sack: true, ..TcpOpts::default() }.emit(&mut b);
        assert_eq!(&b[..n], &[2, 4, 2, 24, 1, 1, 4, 2]);
    }
}
