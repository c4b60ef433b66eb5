//! ICMP in both directions (`ip_vs_in_icmp`, `ip_vs_out_icmp`, `ip_vs_nat_icmp`), and what the
//! director itself sends back: ICMP errors for refused packets (`ip_vs_leave`, the tunnel's PMTU
//! branch, `decrement_ttl`) and the reset its own TCP stack answers a stray segment with.

use core::net::IpAddr;

use super::input::in_key;
use super::{Director, Verdict};
use crate::addr::{raw, Af};
use crate::conn::table::{InKey, OutKey};
use crate::conn::ConnId;
use crate::dest::{DestId, FwdMethod};
use crate::error::Reason;
use crate::proto::tcp::flags;
use crate::wire::{ipproto, Frame, IcmpError, PacketMeta};
use crate::xmit::icmp::{self, IcmpKind};
use crate::xmit::{nat, rst, XmitError};

/// Where an ICMP error about a NAT connection goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Toward {
    /// From beyond the client to the real server: the outer destination and the quoted source
    /// become the real server.
    Server(DestId),
    /// From the real server to the client: the outer source and the quoted destination become
    /// the virtual service.
    Client,
}

impl Director {
    /// An ICMP error quoting a packet of a known connection goes where that connection goes
    /// (translated for NAT); anything else is not ours.
    pub(super) fn icmp_in(&mut self, frame: &mut Frame, meta: &PacketMeta, e: &IcmpError) -> Verdict {
        let v6 = meta.af == Af::V6;
        let (qs, qd) = (raw(&e.src), raw(&e.dst));
        // An error from beyond the client about a packet we sent it (quoted VIP/RIP → client).
        let key = InKey { v6, tmpl: false, proto: e.proto, caddr: qd, cport: e.dport, vaddr: qs, vport: e.sport };
        if let Some(id) = self.conns.find_in(&key) {
            let Some(c) = self.conns.get(id) else { return Verdict::NotMine };
            let Some(dest) = c.dest_id() else { return Verdict::NotMine };
            let (fwd, daddr, dport) = (c.fwd(), self.conns.daddr(c), c.dport);
            if !self.dest_available(dest) {
                return self.drop(Reason::DestUnavailable);
            }
            self.count(dest, u32::from(meta.ip_len), false);
            if fwd == FwdMethod::Masq {
                return self.icmp_nat(frame, meta, e, &daddr, dport, Toward::Server(dest));
            }
            if fwd == FwdMethod::FullNat {
                return self.fnat_icmp(frame, meta, e, id, true);
            }
            return self.transmit(frame, meta, Some(dest), fwd, &daddr, dport);
        }
        // An error from a NAT real server about a packet from the client (quoted client → RIP),
        // or from a FullNAT server's side about one from a local address (quoted LIP → RIP).
        let ok = OutKey { v6, proto: e.proto, daddr: qd, dport: e.dport, caddr: qs, cport: e.sport };
        if self.nat_conns > 0 {
            if let Some(id) = self.conns.find_out(&ok) {
                let Some(c) = self.conns.get(id) else { return Verdict::NotMine };
                let (vaddr, vport, dest) = (self.conns.vaddr(c), c.vport, c.dest_id());
                let Some(dest) = dest else { return Verdict::NotMine };
                self.count(dest, u32::from(meta.ip_len), true);
                return self.icmp_nat(frame, meta, e, &vaddr, vport, Toward::Client);
            }
        }
        if let Some(id) = self.fnat.find_reply(&ok) {
            return self.fnat_icmp(frame, meta, e, id, false);
        }
        Verdict::NotMine
    }

    /// Translates an ICMP error for a NAT connection, outer and quoted headers alike
    /// (`ip_vs_nat_icmp`), rewriting to `addr:port`.
    fn icmp_nat(
        &mut self,
        frame: &mut Frame,
        meta: &PacketMeta,
        e: &IcmpError,
        addr: &IpAddr,
        port: u16,
        toward: Toward,
    ) -> Verdict {
        let (nh, dest) = match toward {
            Toward::Server(d) => (self.dests.get(d).and_then(|d| d.nh), Some(d)),
            Toward::Client => (self.neigh.route(&meta.dst), None),
        };
        let Some(nh) = nh else { return self.drop(Reason::UnknownNeighbour) };
        let Some(me) = self.port_mac(nh.port) else { return self.drop(Reason::UnknownPort) };
        let inbound = dest.is_some();
        match nat::xmit_icmp(frame, meta, e, addr, port, inbound, nh.mac, me) {
            Ok(()) => Verdict::Transmit { port: nh.port, dest },
            Err(XmitError::TtlExpired) => self.drop(Reason::TtlExpired),
            Err(XmitError::Bounds) => self.drop(Reason::Malformed),
            Err(XmitError::Fragment) => self.drop(Reason::Unsupported),
        }
    }

    /// Drops the packet with `reason` and, when enabled, turns the frame into the ICMP error
    /// that tells the client; the error is booked on the connection the packet belongs to, if
    /// any (see [`Director::refuse_for`]).
    pub(super) fn refuse(&mut self, frame: &mut Frame, meta: &PacketMeta, reason: Reason, kind: IcmpKind) -> Verdict {
        let conn = if self.answers_with_icmp(meta) { self.conns.find_in(&in_key(meta)) } else { None };
        self.refuse_for(frame, meta, reason, kind, conn)
    }

    /// Whether a refused packet is answered with an ICMP error: when they are enabled, and
    /// never for an ICMP packet.
    fn answers_with_icmp(&self, meta: &PacketMeta) -> bool {
        self.cfg.icmp_errors && meta.icmp.is_none() && meta.proto != ipproto::ICMP && meta.proto != ipproto::ICMPV6
    }

    /// [`Director::refuse`] for a packet of connection `conn`.
    ///
    /// The kernel's error leaves through LOCAL_OUT, where `ip_vs_out_icmp` reads the quoted
    /// packet backwards and `ip_vs_conn_out_get` matches a DR, TUN or local connection by its
    /// virtual address and port (a NAT one by its real server's, which the quoted packet does
    /// not carry); `handle_response_icmp` then counts the error in `ip_vs_out_stats` (5.10+,
    /// "ipvs: inspect reply packets from DR/TUN real servers"). So the error is one more
    /// OutPkts on that connection's server, while the server is available.
    pub(super) fn refuse_for(
        &mut self,
        frame: &mut Frame,
        meta: &PacketMeta,
        reason: Reason,
        kind: IcmpKind,
        conn: Option<ConnId>,
    ) -> Verdict {
        let v = self.drop(reason);
        if !self.answers_with_icmp(meta) {
            return v;
        }
        let Some(nh) = self.neigh.route(&meta.src) else { return v };
        let Some(me) = self.port_mac(nh.port) else { return self.unanswered(v) };
        self.ip_id = self.ip_id.wrapping_add(1);
        if icmp::error(frame, meta, kind, nh.mac, me, self.ip_id).is_err() {
            return v;
        }
        let booked = conn
            .and_then(|id| self.conns.get(id))
            .filter(|c| matches!(c.fwd(), FwdMethod::Route | FwdMethod::Tunnel | FwdMethod::Local));
        if let Some(dest) = booked.and_then(|c| c.dest_id()) {
            let len = frame.len().saturating_sub(usize::from(meta.l3));
            self.count(dest, u32::try_from(len).unwrap_or(u32::MAX), true);
        }
        Verdict::Transmit { port: nh.port, dest: None }
    }

    /// Drops a stray TCP segment and, unless it is itself a reset, answers it with one.
    pub(super) fn reset(&mut self, frame: &mut Frame, meta: &PacketMeta) -> Verdict {
        let v = self.drop(Reason::NotSyn);
        if !self.cfg.tcp_resets || meta.tcp_flags & flags::RST != 0 {
            return v;
        }
        let Some(nh) = self.neigh.route(&meta.src) else { return v };
        let Some(me) = self.port_mac(nh.port) else { return self.unanswered(v) };
        match rst::reset(frame, meta, nh.mac, me) {
            Ok(()) => Verdict::Transmit { port: nh.port, dest: None },
            Err(_) => v,
        }
    }

    /// The answer to a dropped packet cannot leave: its port is missing from the
    /// configuration. That is counted too; the packet stays dropped for its own reason.
    fn unanswered(&mut self, v: Verdict) -> Verdict {
        let _ = self.drop(Reason::UnknownPort);
        v
    }
}
