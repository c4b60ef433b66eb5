//! Connections as the director makes and ends them (`ip_vs_conn.c`): creation with the
//! server's forwarding flags, binding to and unbinding from the server's counters
//! (`ip_vs_bind_dest`, `ip_vs_unbind_dest`), the state step, and expiry.

use super::{defense, Director};
use crate::addr::{raw, Af};
use crate::conn::{cf, Addrs, Conn, ConnId, NIL};
use crate::dest::{DestId, FwdMethod};
use crate::error::Reason;
use crate::proto::{self, sctp, tcp::TcpState};
use crate::service::ServiceView;
use crate::time::Instant;
use crate::wire::{ipproto, PacketMeta};

/// The timeout `ip_vs_conn_expire` gives an entry that still controls connections (`60*HZ`).
const EXPIRE_LATER_MS: u32 = 60_000;

impl Director {
    /// The flags a connection of family `af` to `dest` starts with (`dest->conn_flags`, and the
    /// server's own family, `cp->daf`).
    pub(super) fn conn_flags(&self, dest: DestId, af: Af) -> u16 {
        let d = self.dests.get(dest);
        let fwd = d.map_or(FwdMethod::Route, |d| d.cfg.fwd);
        let mut f = Conn::fwd_bits(fwd) | cf::INACTIVE;
        if d.is_some_and(|d| Af::of(&d.cfg.endpoint.addr) == Af::V6) {
            f |= cf::DEST_V6;
        }
        if !matches!(fwd, FwdMethod::Masq | FwdMethod::FullNat) {
            f |= cf::NOOUTPUT;
        }
        if af == Af::V6 {
            f |= cf::V6;
        }
        f
    }

    /// Stores an entry with addresses `a` and binds it to its server; a full table first makes
    /// room if the defences allow.
    pub(super) fn insert(&mut self, c: Conn, a: &Addrs) -> Option<ConnId> {
        self.make_room();
        let id = self.conns.insert(c.clone(), a)?;
        if defense::half_open(&c) {
            self.half_open += 1;
        }
        if c.flags & cf::OUT_HASHED != 0 {
            self.nat_conns += 1;
        }
        self.bind_dest(&c);
        Some(id)
    }

    /// `ip_vs_conn_new` + `ip_vs_conn_stats`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_conn(
        &mut self,
        now: Instant,
        meta: &PacketMeta,
        si: u32,
        dest: DestId,
        dport: u16,
        control: u32,
        one_packet: bool,
    ) -> Result<ConnId, Reason> {
        let d = self.dests.get(dest).ok_or(Reason::NoDest)?;
        if d.cfg.max_conn != 0 && d.active.saturating_add(d.inactive) >= d.cfg.max_conn {
            return Err(Reason::DestConnLimit);
        }
        let mut flags = self.conn_flags(dest, meta.af);
        if one_packet {
            flags |= cf::ONE_PACKET;
        } else {
            flags |= cf::IN_HASHED;
            if d.cfg.fwd == FwdMethod::Masq {
                flags |= cf::OUT_HASHED;
            }
        }
        let a = Addrs { caddr: raw(&meta.src), vaddr: raw(&meta.dst), daddr: raw(&d.cfg.endpoint.addr) };
        let mut c = Conn {
            cport: meta.sport,
            vport: meta.dport,
            dport,
            proto: meta.proto,
            state: TcpState::None as u8,
            flags,
            dest: dest.0,
            timeout_ms: 3000,
            expires: crate::time::after_ms(now, 3000),
            ..Conn::BLANK
        };
        c.set_control(control);
        let id = self.insert(c, &a).ok_or(Reason::TableFull)?;
        if flags & cf::FULLNAT != 0 && !one_packet && !self.fnat_attach(si, id) {
            self.expire_now(id);
            return Err(Reason::NoLocalPort);
        }
        self.stats.conn();
        if let Some(s) = self.svc_mut(si) {
            s.stats.conn();
        }
        if let Some(d) = self.dests.get_mut(dest) {
            d.stats.conn();
        }
        Ok(id)
    }

    /// The state step of packet `pkt` on connection `id` ([`proto::set_state`]); a connection
    /// that becomes established (TCP, SCTP) or is answered (UDP) assures its template
    /// (`ip_vs_control_assure_ct`). Returns the entry's new timeout in milliseconds, so the
    /// caller re-arms its timer without fetching the entry again.
    pub(super) fn set_state(&mut self, id: ConnId, output: bool, pkt: &PacketMeta) -> u32 {
        let Some(c) = self.conns.get_mut(id) else { return 0 };
        let before = c.state;
        let dest_id = c.dest_id();
        let dest = dest_id.and_then(|d| self.dests.get_mut(d));
        let was_half_open = defense::half_open(c);
        let was_inactive = c.flags & cf::INACTIVE;
        proto::set_state(c, dest, &self.timeouts, self.defense.secure(), output, pkt);
        // The counters moved exactly when the connection crossed between active and inactive.
        let moved = (c.flags & cf::INACTIVE != was_inactive).then_some(dest_id).flatten();
        let is_half_open = defense::half_open(c);
        let established = match c.proto {
            ipproto::TCP => Some(TcpState::Established as u8),
            ipproto::SCTP => Some(sctp::state::ESTABLISHED),
            _ => None,
        };
        let assure = match established {
            Some(e) => c.state != before && c.state == e,
            None => output,
        };
        let (timeout_ms, control) = (c.timeout_ms, c.control());
        if assure && control != NIL {
            if let Some(t) = self.conns.get_mut(ConnId(control)).filter(|t| t.is_template()) {
                t.state = proto::tpl::ASSURED;
            }
        }
        self.count_half_open(was_half_open, is_half_open);
        if let Some(d) = moved {
            self.counts_moved(d);
        }
        timeout_ms
    }

    /// `ip_vs_conn_expire`: an entry that still controls connections goes the `expire_later`
    /// way — its timeout becomes 60 s, so this wait and every later use of the template
    /// (`ip_vs_conn_put` re-arms with `cp->timeout`) count 60 s, not the service's `-p`;
    /// anything else is freed.
    pub(super) fn expire(&mut self, now: Instant, id: ConnId) {
        let Some(c) = self.conns.get_mut(id) else { return };
        if c.n_control() > 0 {
            c.timeout_ms = EXPIRE_LATER_MS;
            c.expires = crate::time::after_ms(now, EXPIRE_LATER_MS);
            self.conns.relink(id);
            if self.sync.is_master() {
                let threshold = self.sync.params().threshold;
                self.sync_conn(now, id, threshold);
            }
            return;
        }
        if let Some((c, a)) = self.conns.remove_unarmed(id) {
            self.release(id, &c, &a);
        }
    }

    /// Takes an entry out of both indexes, so a new flow with its tuple can be made while it
    /// waits to be freed.
    pub(super) fn unhash_conn(&mut self, id: ConnId) {
        if self.conns.get(id).is_some_and(|c| c.flags & cf::OUT_HASHED != 0) {
            self.nat_conns = self.nat_conns.saturating_sub(1);
        }
        self.conns.unhash(id);
    }

    /// Frees an entry that is still armed (expire-now).
    pub(super) fn expire_now(&mut self, id: ConnId) {
        if let Some((c, a)) = self.conns.remove_armed(id) {
            self.release(id, &c, &a);
        }
    }

    /// Keeps the half-open count as an entry's state moves.
    pub(super) fn count_half_open(&mut self, was: bool, is: bool) {
        match (was, is) {
            (false, true) => self.half_open += 1,
            (true, false) => self.half_open = self.half_open.saturating_sub(1),
            _ => {}
        }
    }

    /// What freeing an entry undoes: the controller's count, the server binding, the half-open
    /// count, a FullNAT connection's local port, a SYN-proxied one's splice and a SIP
    /// template's Call-ID (`c` had addresses `a`).
    fn release(&mut self, id: ConnId, c: &Conn, a: &Addrs) {
        if defense::half_open(c) {
            self.half_open = self.half_open.saturating_sub(1);
        }
        if c.flags & cf::FULLNAT != 0 {
            self.fnat_detach(id, &a.daddr, c.dport, c.proto, c.flags & cf::DEST_V6 != 0);
        }
        if c.flags & cf::SYNPROXY != 0 {
            self.synproxy.forget(id);
        }
        if c.flags & cf::PE_SIP != 0 {
            self.sip.remove(id);
        }
        if c.flags & cf::OUT_HASHED != 0 {
            self.nat_conns = self.nat_conns.saturating_sub(1);
        }
        if c.control() != NIL {
            if let Some(t) = self.conns.get_mut(ConnId(c.control())) {
                t.drop_controlled();
            }
        }
        self.unbind_dest(c);
    }

    /// `ip_vs_bind_dest`.
    pub(super) fn bind_dest(&mut self, c: &Conn) {
        let Some(id) = c.dest_id() else { return };
        let Some(d) = self.dests.get_mut(id) else { return };
        if c.is_template() {
            d.persist += 1;
        } else if c.flags & cf::INACTIVE != 0 {
            d.inactive += 1;
        } else {
            d.active += 1;
        }
        d.refcnt += 1;
        d.check_overload_on_bind();
        self.counts_moved(id);
    }

    /// `ip_vs_unbind_dest`.
    fn unbind_dest(&mut self, c: &Conn) {
        let Some(id) = c.dest_id() else { return };
        let Some(d) = self.dests.get_mut(id) else { return };
        if c.is_template() {
            d.persist = d.persist.saturating_sub(1);
        } else if c.flags & cf::INACTIVE != 0 {
            d.inactive = d.inactive.saturating_sub(1);
        } else {
            d.active = d.active.saturating_sub(1);
        }
        d.check_overload_on_unbind();
        d.refcnt = d.refcnt.saturating_sub(1);
        self.counts_moved(id);
    }

    /// Tells the scheduler of server `id`'s service that the server's counters or overload flag
    /// moved ([`Scheduler::counts_moved`]); nothing for a server whose service is gone.
    ///
    /// [`Scheduler::counts_moved`]: crate::sched::Scheduler::counts_moved
    pub(super) fn counts_moved(&mut self, id: DestId) {
        let Some(si) = self.dests.get(id).map(|d| d.svc) else { return };
        let Some(svc) = self.svcs.get_mut(si as usize).and_then(Option::as_mut) else { return };
        svc.sched.counts_moved(&ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags), id);
    }
}
