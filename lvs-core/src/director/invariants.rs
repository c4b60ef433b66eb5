//! What must hold of a director's state after any sequence of packets, expiries and control
//! calls, whatever the kernel would have done: the checks the randomized tests run after every
//! step (feature `testkit`).

use alloc::format;
use alloc::string::String;

use super::{ctl::DEST_TRASH_PERIOD_NS, Director};
use crate::conn::{cf, ConnId, NIL};
use crate::dest::F_AVAILABLE;
use crate::proto::sctp;
use crate::time::Instant;
use crate::wire::ipproto;

impl Director {
    /// Checks the director's bookkeeping against its tables at `now`:
    ///
    /// - every server's ActiveConn, InActConn, PersistConn and references equal the entries
    ///   bound to it (`ip_vs_bind_dest`/`ip_vs_unbind_dest` are the only movers);
    /// - a deleted server with nothing bound (and that no scheduler holds) waits in the trash no
    ///   longer than the trash timer allows (`ip_vs_dest_trash_expire`: found idle within 60 s,
    ///   freed 120 s later);
    /// - every template controls exactly the connections that name it, every controlled
    ///   connection names a live template, and no entry is armed beyond its own timeout;
    /// - an SCTP connection counts as active exactly while it is ESTABLISHED (`set_sctp_state`);
    /// - the NAT reply index and half-open counts and the service lists agree with the entries
    ///   and servers;
    /// - the SIP table holds a Call-ID for exactly the SIP templates in the table.
    ///
    /// # Errors
    /// A sentence naming the first broken rule.
    pub fn check_invariants(&self, now: Instant) -> Result<(), String> {
        let now = now.as_nanos();
        for (id, d) in self.dests.iter() {
            let (mut act, mut inact, mut pers, mut refs) = (0u32, 0u32, 0u32, 0u32);
            for (_, c) in self.conns.iter().filter(|(_, c)| c.dest_id() == Some(id)) {
                refs += 1;
                match (c.is_template(), c.flags & cf::INACTIVE != 0) {
                    (true, _) => pers += 1,
                    (false, true) => inact += 1,
                    (false, false) => act += 1,
                }
            }
            let have = (d.active, d.inactive, d.persist, d.refcnt);
            if have != (act, inact, pers, refs) {
                return Err(format!("server {id:?} counts {have:?}, table holds {:?}", (act, inact, pers, refs)));
            }
            let linked = self.svc(d.svc).is_some_and(|s| s.order.contains(&id));
            if (d.flags & F_AVAILABLE != 0) != linked {
                return Err(format!("server {id:?} available {} but linked {linked}", d.flags & F_AVAILABLE != 0));
            }
            if d.flags & F_AVAILABLE == 0 && refs == 0 && !self.held_by_scheduler(id, d.svc) {
                if self.trash_next.is_none() {
                    return Err(format!("server {id:?} is in the trash but the trash timer is off"));
                }
                if d.idle_since.is_some_and(|t| now >= t.saturating_add(DEST_TRASH_PERIOD_NS * 3 / 2)) {
                    return Err(format!("server {id:?} idle in the trash for over 180 s"));
                }
            }
        }
        let (mut nat, mut half_open, mut sip) = (0, 0, 0);
        for (id, c) in self.conns.iter() {
            if c.flags & cf::OUT_HASHED != 0 {
                nat += 1;
            }
            if c.proto == ipproto::SCTP && !c.is_template() && c.flags & cf::SYNC == 0 {
                let listed_active = c.flags & cf::INACTIVE == 0;
                if listed_active != sctp::is_active(c.state) {
                    return Err(format!(
                        "SCTP entry {id:?} in {} counted active {listed_active}",
                        sctp::state_name(c.state)
                    ));
                }
            }
            if super::defense::half_open(c) {
                half_open += 1;
            }
            if c.flags & cf::PE_SIP != 0 {
                if self.sip.get(id).is_none() || c.flags & cf::IN_HASHED != 0 {
                    return Err(format!("SIP template {id:?} has no Call-ID or is in the plain index"));
                }
                sip += 1;
            }
            let left = c.expires.wrapping_sub(crate::time::now_ms(Instant(now))) as i32;
            if i64::from(left) > i64::from(c.timeout_ms) {
                return Err(format!("entry {id:?} armed beyond its {} ms timeout", c.timeout_ms));
            }
            if c.control() != NIL && !self.conns.get(ConnId(c.control())).is_some_and(|t| t.is_template()) {
                return Err(format!("entry {id:?} names a controller that is no live template"));
            }
            if c.is_template() {
                let controlled = self.conns.iter().filter(|(_, x)| x.control() == id.0).count();
                if c.n_control() as usize != controlled {
                    return Err(format!("template {id:?} counts {} controlled, {controlled} name it", c.n_control()));
                }
            }
        }
        if nat != self.nat_conns {
            return Err(format!("{} NAT entries counted, {nat} in the reply index", self.nat_conns));
        }
        if sip != self.sip.len() {
            return Err(format!("{} Call-IDs held for {sip} SIP templates", self.sip.len()));
        }
        if half_open != self.half_open {
            return Err(format!("{} half-open entries counted, {half_open} in the table", self.half_open));
        }
        for s in self.svcs.iter().flatten() {
            if s.order.iter().any(|id| !self.dest_available(*id)) {
                return Err(format!("service {:?} lists a server that is not available", s.cfg.key));
            }
        }
        Ok(())
    }
}
