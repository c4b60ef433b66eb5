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

/// One connection or template: 48 bytes, no pointers, no heap (the kernel's `ip_vs_conn` is
/// about 300).
///
/// The first 16 bytes hold what an index probe compares (addresses, ports, protocol, state,
/// flags); with a 48-byte stride they never cross a cache line. The next 16 hold what an
/// established packet also reads (server, timeout, expiry, packet count); the real server's
/// address and port follow (every client packet reads them, a NAT rewrite uses them), and only
/// control paths read the last 10 bytes (timer links, the controller or controlled count, the
/// sync state). An entry that straddles two lines is
/// prefetched as two ([`ConnTable::entry_lines`]).
///
/// An IPv4 entry keeps its three addresses in place. An entry with an IPv6 side ([`cf::V6`] or
/// [`cf::DEST_V6`]) keeps them in the table's side slab, and `caddr` is its slot there, so
/// only IPv6 connections pay for 16-byte addresses. The sync end time lives beside the slab
/// too (only a sync master writes it).
#[derive(Clone, Debug)]
#[repr(C, align(16))]
pub(crate) struct Conn {
    /// Client and virtual IPv4 addresses (network order), or the side slot in `caddr`; set by
    /// the table's `insert`.
    pub(crate) caddr: u32,
    pub(crate) vaddr: u32,
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    /// IP protocol number (0 for fwmark templates).
    pub(crate) proto: u8,
    /// The state's number (`proto::TcpState` for TCP, `proto::sctp::state` for SCTP,
    /// `proto::tpl` for templates); 0 otherwise.
    pub(crate) state: u8,
    pub(crate) flags: u16,
    /// Bound real server.
    pub(crate) dest: u32,
    /// Current timeout in milliseconds.
    pub(crate) timeout_ms: u32,
    /// When the entry expires: the caller's clock in milliseconds, wrapping
    /// ([`time::after_ms`](crate::time::after_ms)); compared as `wrapping_sub(..) as i32`,
    /// which is why a timeout is at most [`MAX_TIMEOUT_MS`].
    pub(crate) expires: u32,
    /// Packets from the client side (`in_pkts`; a template counts its connections' packets).
    pub(crate) in_pkts: u32,
    /// The real server's IPv4 address (network order); unused in a wide entry.
    pub(crate) daddr: u32,
    pub(crate) dport: u16,
    /// Timer wheel links, 24 bits each: `tprev` in word 0 and the low byte of word 2, `tnext`
    /// in word 1 and the high byte of word 2 (see [`Conn::tprev`]).
    pub(crate) tlink: [u16; 3],
    /// The sync state last sent (`cp->old_state`) in the top byte; below it, for a template
    /// the connections it controls (`cp->n_control`), for a connection its controller's handle
    /// plus one (`cp->control`; 0 for none). Only templates control connections and templates
    /// have no controller, so one word serves both.
    pub(crate) ctl: u32,
}

const _: () = assert!(core::mem::size_of::<Conn>() == 48 && core::mem::align_of::<Conn>() == 16);

/// The longest timeout an entry keeps (2^31 − 1 ms, about 24.8 days): `expires` wraps at 2^32
/// ms and is compared by the sign of a difference. Longer timeouts count as this.
pub(crate) const MAX_TIMEOUT_MS: u32 = i32::MAX as u32;

/// "No entry" in the 24-bit link fields of [`Conn`].
const NIL24: u32 = 0x00ff_ffff;

/// The 24 bits the low bits of `ctl` hold.
const CTL_MASK: u32 = NIL24;

impl Conn {
    /// An entry with no server, no links and no timer: constructions fill in what they know
    /// (`Conn { cport, .., ..Conn::BLANK }`); the addresses come with it to the table's
    /// `insert`.
    pub(crate) const BLANK: Conn = Conn {
        caddr: 0,
        vaddr: 0,
        cport: 0,
        vport: 0,
        proto: 0,
        state: 0,
        flags: 0,
        dest: NIL,
        timeout_ms: 0,
        expires: 0,
        in_pkts: 0,
        daddr: 0,
        dport: 0,
        tlink: [0xffff; 3],
        ctl: 0,
    };

    /// The previous entry in the entry's timer list, [`NIL`], or (at a list's head) a mark
    /// naming the wheel slot (see the wheel's `HEAD`).
    #[inline]
    pub(crate) fn tprev(&self) -> u32 {
        unnil(u32::from(self.tlink[0]) | u32::from(self.tlink[2] & 0xff) << 16)
    }

    /// The next entry in the entry's timer list (or in the table's free list), or [`NIL`].
    #[inline]
    pub(crate) fn tnext(&self) -> u32 {
        unnil(u32::from(self.tlink[1]) | u32::from(self.tlink[2] >> 8) << 16)
    }

    /// Sets [`tprev`](Self::tprev) (a value below 2^24, or [`NIL`]).
    #[inline]
    pub(crate) fn set_tprev(&mut self, v: u32) {
        let v = v & NIL24;
        self.tlink[0] = v as u16;
        self.tlink[2] = (self.tlink[2] & 0xff00) | (v >> 16) as u16;
    }

    /// Sets [`tnext`](Self::tnext) (a value below 2^24, or [`NIL`]).
    #[inline]
    pub(crate) fn set_tnext(&mut self, v: u32) {
        let v = v & NIL24;
        self.tlink[1] = v as u16;
        self.tlink[2] = (self.tlink[2] & 0x00ff) | ((v >> 16) as u16) << 8;
    }

    /// The template that controls this connection (`cp->control`), or [`NIL`]; always
    /// [`NIL`] for a template.
    pub(crate) fn control(&self) -> u32 {
        if self.is_template() {
            return NIL;
        }
        (self.ctl & CTL_MASK).wrapping_sub(1)
    }

    /// Names the template that controls this connection (`ip_vs_control_add`), or none with
    /// [`NIL`]; a template has no controller, so nothing changes for one.
    pub(crate) fn set_control(&mut self, t: u32) {
        if !self.is_template() {
            self.ctl = (self.ctl & !CTL_MASK) | (t.wrapping_add(1) & CTL_MASK);
        }
    }

    /// Connections this template controls (`cp->n_control`); 0 for a connection.
    pub(crate) fn n_control(&self) -> u32 {
        if self.is_template() {
            self.ctl & CTL_MASK
        } else {
            0
        }
    }

    /// Counts one more connection under this template (a table holds fewer than 2^24 entries,
    /// so the count fits its 24 bits).
    pub(crate) fn add_controlled(&mut self) {
        if self.is_template() && self.ctl & CTL_MASK < CTL_MASK {
            self.ctl += 1;
        }
    }

    /// Counts one connection fewer under this template.
    pub(crate) fn drop_controlled(&mut self) {
        if self.n_control() > 0 {
            self.ctl -= 1;
        }
    }

    /// The state the sync master last sent for this entry (`cp->old_state`).
    pub(crate) fn old_state(&self) -> u8 {
        (self.ctl >> 24) as u8
    }

    /// Records the state last sent.
    pub(crate) fn set_old_state(&mut self, s: u8) {
        self.ctl = (self.ctl & CTL_MASK) | u32::from(s) << 24;
    }

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

/// A 24-bit link as a `u32`: [`NIL`] for none.
#[inline]
fn unnil(v: u32) -> u32 {
    if v == NIL24 {
        NIL
    } else {
        v
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
    /// `now` (wrapping milliseconds, [`time::now_ms`](crate::time::now_ms)).
    pub(crate) fn of(id: ConnId, c: &Conn, a: &Addrs, state: &'static str, now: u32) -> ConnInfo {
        let af = c.af();
        let ep = |a: &[u8; 16], p: u16| Endpoint::new(from_raw(af, a), p);
        ConnInfo {
            proto: c.proto,
            client: ep(&a.caddr, c.cport),
            virt: ep(&a.vaddr, c.vport),
            dest: Endpoint::new(from_raw(c.daf(), &a.daddr), c.dport),
            state,
            expires_ms: u64::from((c.expires.wrapping_sub(now) as i32).max(0).unsigned_abs()),
            template: c.is_template(),
            synced: c.flags & cf::SYNC != 0,
            pe: (c.flags & cf::PE_SIP != 0).then_some(PeRef(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's key and flags are the first 16 bytes, so they never straddle a line.
    #[test]
    fn key_comes_first() {
        assert_eq!(core::mem::offset_of!(Conn, flags), 14);
        assert_eq!(core::mem::offset_of!(Conn, in_pkts), 28, "server, timeout, expiry and packet count end at 32");
    }

    /// Timer links keep 24 bits each apart, [`NIL`] round-trips, and the controller word keeps
    /// a connection's controller, a template's count and the sync state apart.
    #[test]
    fn packed_fields_round_trip() {
        let mut c = Conn::BLANK;
        assert_eq!((c.tprev(), c.tnext(), c.control(), c.old_state()), (NIL, NIL, NIL, 0));
        c.set_tprev(0x00ab_cdef);
        c.set_tnext(0x0012_3456);
        assert_eq!((c.tprev(), c.tnext()), (0x00ab_cdef, 0x0012_3456));
        c.set_tprev(NIL);
        assert_eq!((c.tprev(), c.tnext()), (NIL, 0x0012_3456));
        c.set_control(7);
        c.set_old_state(11);
        assert_eq!((c.control(), c.n_control(), c.old_state()), (7, 0, 11));
        c.set_control(NIL);
        assert_eq!((c.control(), c.old_state()), (NIL, 11));
        let mut t = Conn { flags: cf::TEMPLATE, ..Conn::BLANK };
        t.add_controlled();
        t.add_controlled();
        t.set_old_state(3);
        t.drop_controlled();
        assert_eq!((t.control(), t.n_control(), t.old_state()), (NIL, 1, 3));
        t.drop_controlled();
        t.drop_controlled();
        assert_eq!(t.n_control(), 0, "the count does not go below 0");
    }

    #[test]
    fn fwd_bits_round_trip() {
        for m in [FwdMethod::Masq, FwdMethod::Route, FwdMethod::Tunnel, FwdMethod::Local, FwdMethod::FullNat] {
            let c = Conn { proto: 6, flags: Conn::fwd_bits(m), ..Conn::BLANK };
            assert_eq!(c.fwd(), m);
        }
    }
}
