//! The connection table (`ip_vs_conn.c`): fixed-size entries in a slab addressed by `u32`
//! handles, a tagged hash index for the client → virtual direction and one for replies (NAT),
//! and a timer wheel for expiry. Persistence templates live in the same table.

mod index;
pub(crate) mod table;
mod timer;

pub(crate) use index::MAX_ENTRIES;
pub(crate) use table::ConnTable;
pub use table::TableStats;

use crate::addr::{from_raw, Af, Endpoint};
use crate::dest::{DestId, FwdMethod};

/// Handle of a connection entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u32);

/// "No entry" in `u32` link fields.
pub(crate) const NIL: u32 = u32::MAX;

/// Connection flags (our own bit layout; names follow `IP_VS_CONN_F_*`).
pub(crate) mod cf {
    /// IPv6 connection.
    pub(crate) const V6: u16 = 1 << 0;
    /// Persistence template.
    pub(crate) const TEMPLATE: u16 = 1 << 1;
    /// Counted in InActConn.
    pub(crate) const INACTIVE: u16 = 1 << 2;
    /// Never saw the server's side (DR, TUN, local): uses the INPUT-ONLY table.
    pub(crate) const NOOUTPUT: u16 = 1 << 3;
    /// One-packet scheduling: not kept after its packet.
    pub(crate) const ONE_PACKET: u16 = 1 << 4;
    /// Linked in the client → virtual index.
    pub(crate) const IN_HASHED: u16 = 1 << 5;
    /// Linked in the reply index.
    pub(crate) const OUT_HASHED: u16 = 1 << 6;
    /// Made from a sync message (`IP_VS_CONN_F_SYNC`).
    pub(crate) const SYNC: u16 = 1 << 7;
    /// The real server's address is IPv6 (`cp->daf`; differs from [`V6`] only for a tunnelled
    /// server of the other family).
    pub(crate) const DEST_V6: u16 = 1 << 11;
    /// A free slab slot, not an entry.
    pub(crate) const FREE: u16 = 1 << 10;
    /// FullNAT: the forwarding bits are unused and the director's FullNAT side table holds the
    /// local address, port and sequence offsets of the entry.
    pub(crate) const FULLNAT: u16 = 1 << 12;
    /// Opened by the SYN proxy: the director's side table holds the splice of its two
    /// handshakes.
    pub(crate) const SYNPROXY: u16 = 1 << 13;
    /// A template of the SIP persistence engine: the director's SIP table holds its Call-ID
    /// and files it; it is never in the client → virtual index.
    pub(crate) const PE_SIP: u16 = 1 << 14;
    /// Forwarding method, two bits.
    pub(crate) const FWD_SHIFT: u16 = 8;
    pub(crate) const FWD_MASK: u16 = 0x3 << FWD_SHIFT;
}

/// The three addresses of an entry, each in the 16-byte form of [`raw`](crate::addr::raw):
/// what a new entry is stored with and what [`ConnTable::addrs`] gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Addrs {
    /// Client address (the masked one for templates).
    pub(crate) caddr: [u8; 16],
    /// Virtual address (`0.0.0.MARK` for fwmark templates).
    pub(crate) vaddr: [u8; 16],
    /// Real server address.
    pub(crate) daddr: [u8; 16],
}

/// One connection or template: 64 bytes, one cache line, no pointers, no heap.
///
/// An IPv4 entry keeps its three addresses in place. An entry with an IPv6 side ([`cf::V6`] or
/// [`cf::DEST_V6`]) keeps them in the table's side slab, and `addr[0]` is its slot there, so
/// only IPv6 connections pay for 16-byte addresses. The sync end time lives beside the slab
/// too (only a sync master writes it). Everything one established packet reads — key,
/// server, flags, timeout, expiry, timer slot, packet count — lies in the entry's one line.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub(crate) struct Conn {
    /// When the entry expires (ns).
    pub(crate) expires: u64,
    /// Client, virtual and real server IPv4 addresses (network order), or the side slot; set
    /// by the table's `insert`.
    pub(crate) addr: [u32; 3],
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    pub(crate) dport: u16,
    /// IP protocol number (0 for fwmark templates).
    pub(crate) proto: u8,
    /// The TCP state's number (`proto::TcpState`) for TCP; 0 otherwise.
    pub(crate) state: u8,
    pub(crate) flags: u16,
    /// Sync bookkeeping: the state last sent (`old_state`).
    pub(crate) old_state: u8,
    /// Bound real server.
    pub(crate) dest: u32,
    /// The template that controls this connection, or [`NIL`].
    pub(crate) control: u32,
    /// Connections this template controls.
    pub(crate) n_control: u32,
    /// Current timeout in milliseconds.
    pub(crate) timeout_ms: u32,
    /// Packets from the client side (`in_pkts`; a template counts its connections' packets).
    pub(crate) in_pkts: u32,
    /// Timer wheel links and the absolute wheel tick the entry is linked at; a free slot's
    /// `tnext` links the table's free list.
    pub(crate) tprev: u32,
    pub(crate) tnext: u32,
    pub(crate) tick: u32,
}

impl Conn {
    /// An entry with no server, no links and no timer: constructions fill in what they know
    /// (`Conn { cport, .., ..Conn::BLANK }`); the addresses come with it to the table's
    /// `insert`.
    pub(crate) const BLANK: Conn = Conn {
        expires: 0,
        addr: [0; 3],
        cport: 0,
        vport: 0,
        dport: 0,
        proto: 0,
        state: 0,
        flags: 0,
        old_state: 0,
        dest: NIL,
        control: NIL,
        n_control: 0,
        timeout_ms: 0,
        in_pkts: 0,
        tprev: NIL,
        tnext: NIL,
        tick: 0,
    };

    /// Whether the addresses live in the side slab (either side is IPv6).
    fn wide(&self) -> bool {
        self.flags & (cf::V6 | cf::DEST_V6) != 0
    }

    pub(crate) fn af(&self) -> Af {
        if self.flags & cf::V6 != 0 {
            Af::V6
        } else {
            Af::V4
        }
    }

    /// The family of the real server's address (`cp->daf`).
    pub(crate) fn daf(&self) -> Af {
        if self.flags & cf::DEST_V6 != 0 {
            Af::V6
        } else {
            Af::V4
        }
    }

    pub(crate) fn is_template(&self) -> bool {
        self.flags & cf::TEMPLATE != 0
    }

    pub(crate) fn fwd(&self) -> FwdMethod {
        if self.flags & cf::FULLNAT != 0 {
            return FwdMethod::FullNat;
        }
        match (self.flags & cf::FWD_MASK) >> cf::FWD_SHIFT {
            0 => FwdMethod::Masq,
            1 => FwdMethod::Local,
            2 => FwdMethod::Tunnel,
            _ => FwdMethod::Route,
        }
    }

    pub(crate) fn fwd_bits(m: FwdMethod) -> u16 {
        let v = match m {
            FwdMethod::Masq => 0,
            FwdMethod::Local => 1,
            FwdMethod::Tunnel => 2,
            FwdMethod::Route => 3,
            FwdMethod::FullNat => return cf::FULLNAT,
        };
        v << cf::FWD_SHIFT
    }

    pub(crate) fn dest_id(&self) -> Option<DestId> {
        (self.dest != NIL).then_some(DestId(self.dest))
    }
}

/// Where a listed template's persistence-engine data is ([`ConnInfo::pe`]), read with
/// [`Director::pe_data`](crate::Director::pe_data) while the table is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeRef(pub(crate) ConnId);

/// A read-only view of a connection entry, for listings (`ipvsadm -Lc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// IP protocol number (6, 17; 0 for fwmark templates).
    pub proto: u8,
    /// Client address and port (masked address and port 0 for templates).
    pub client: Endpoint,
    /// Virtual address and port (`0.0.0.MARK:0` for fwmark templates).
    pub virt: Endpoint,
    /// Real server address and port.
    pub dest: Endpoint,
    /// State name as `ipvsadm -Lc` prints it.
    pub state: &'static str,
    /// Milliseconds until expiry.
    pub expires_ms: u64,
    /// Whether this is a persistence template.
    pub template: bool,
    /// Whether the entry was made from a sync message (`IP_VS_CONN_F_SYNC`): the `Origin`
    /// column of `/proc/net/ip_vs_conn_sync` says `SYNC` for it and `LOCAL` otherwise.
    pub synced: bool,
    /// A template of a persistence engine (`--pe sip`): where its engine name and data (the
    /// Call-ID) are, for [`Director::pe_data`](crate::Director::pe_data).
    pub pe: Option<PeRef>,
}

impl ConnInfo {
    /// The listing of entry `id` (`c`, with addresses `a`), whose state is named `state`, at
    /// `now_ns`.
    pub(crate) fn of(id: ConnId, c: &Conn, a: &Addrs, state: &'static str, now_ns: u64) -> ConnInfo {
        let af = c.af();
        let ep = |a: &[u8; 16], p: u16| Endpoint::new(from_raw(af, a), p);
        ConnInfo {
            proto: c.proto,
            client: ep(&a.caddr, c.cport),
            virt: ep(&a.vaddr, c.vport),
            dest: Endpoint::new(from_raw(c.daf(), &a.daddr), c.dport),
            state,
            expires_ms: c.expires.saturating_sub(now_ns) / 1_000_000,
            template: c.is_template(),
            synced: c.flags & cf::SYNC != 0,
            pe: (c.flags & cf::PE_SIP != 0).then_some(PeRef(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_one_cache_line() {
        assert_eq!((core::mem::size_of::<Conn>(), core::mem::align_of::<Conn>()), (64, 64));
    }

    #[test]
    fn fwd_bits_round_trip() {
        for m in [FwdMethod::Masq, FwdMethod::Route, FwdMethod::Tunnel, FwdMethod::Local, FwdMethod::FullNat] {
            let c = Conn { proto: 6, flags: Conn::fwd_bits(m), ..Conn::BLANK };
            assert_eq!(c.fwd(), m);
        }
    }
}
