//! TCP segments for the director's unit tests (FullNAT and the SYN proxy): one way to build a
//! segment as a client or a server sends it to the director, and one view of a transmitted
//! segment as its receiver sees it, checksums verified by etherparse.

use alloc::vec::Vec;
use core::net::IpAddr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpHeader, TransportSlice};

use crate::proto::tcp::flags::{ACK, FIN, RST, SYN};
use crate::testkit::{verify_checksums, DIRECTOR_MAC, GW_MAC};
use crate::wire::{self, Frame, DEFAULT_HEADROOM};
use crate::xmit::synproxy::{self as sx, TcpOpts};

/// A TCP segment from the gateway's MAC to the director's, with raw options; both addresses
/// of one family.
pub(super) struct Tcp<'a> {
    pub(super) src: (IpAddr, u16),
    pub(super) dst: (IpAddr, u16),
    /// `SYN`, `ACK`, `RST` and `FIN` bits (`proto::tcp::flags`).
    pub(super) fl: u8,
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) win: u16,
    pub(super) opts: &'a [u8],
    pub(super) payload: &'a [u8],
}

impl Tcp<'_> {
    pub(super) fn frame(&self) -> Frame {
        let mut h = TcpHeader::new(self.src.1, self.dst.1, self.seq, self.win);
        h.syn = self.fl & SYN != 0;
        h.ack = self.fl & ACK != 0;
        h.rst = self.fl & RST != 0;
        h.fin = self.fl & FIN != 0;
        h.acknowledgment_number = self.ack;
        h.set_options_raw(self.opts).unwrap();
        let eth = PacketBuilder::ethernet2(GW_MAC, DIRECTOR_MAC);
        let mut out = Vec::new();
        match (self.src.0, self.dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                eth.ipv4(s.octets(), d.octets(), 64).tcp_header(h).write(&mut out, self.payload)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                eth.ipv6(s.octets(), d.octets(), 64).tcp_header(h).write(&mut out, self.payload)
            }
            _ => unreachable!("one family"),
        }
        .unwrap();
        Frame::new(DEFAULT_HEADROOM, &out)
    }
}

/// The frame of a segment with the window Linux opens with (64,240).
pub(super) fn seg(
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    fl: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
) -> Frame {
    Tcp { src, dst, fl, seq, ack, win: 64240, opts, payload }.frame()
}

/// A transmitted segment as its receiver sees it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) src: (IpAddr, u16),
    pub(super) dst: (IpAddr, u16),
    pub(super) fl: u8,
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) win: u16,
    /// The options the SYN proxy reads (MSS, window scale, SACK permitted, timestamps).
    pub(super) opts: TcpOpts,
    pub(super) raw_opts: Vec<u8>,
    pub(super) payload: Vec<u8>,
}

/// Parses a transmitted TCP frame, IPv4 or IPv6, after checking its checksums.
pub(super) fn seen(f: &Frame) -> Seen {
    verify_checksums(f.data()).unwrap();
    let p = SlicedPacket::from_ethernet(f.data()).unwrap();
    let (s, d) = match p.net.as_ref() {
        Some(NetSlice::Ipv4(v4)) => (IpAddr::V4(v4.header().source_addr()), IpAddr::V4(v4.header().destination_addr())),
        Some(NetSlice::Ipv6(v6)) => (IpAddr::V6(v6.header().source_addr()), IpAddr::V6(v6.header().destination_addr())),
        _ => panic!("not IP"),
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else { panic!("not tcp") };
    let fl =
        (u8::from(t.syn()) * SYN) | (u8::from(t.ack()) * ACK) | (u8::from(t.rst()) * RST) | (u8::from(t.fin()) * FIN);
    Seen {
        src: (s, t.source_port()),
        dst: (d, t.destination_port()),
        fl,
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        win: t.window_size(),
        opts: sx::parse_opts(f.data(), &wire::parse(f.data()).unwrap()),
        raw_opts: t.options().to_vec(),
        payload: t.payload().to_vec(),
    }
}
