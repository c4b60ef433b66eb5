//! The reply path of NAT connections (`ip_vs_out`, `handle_response` in `ip_vs_core.c`): a real
//! server's packet to a client leaves with the virtual service as its source. FullNAT replies
//! share the bookkeeping (`reply_seen`) and have their own rewrite (`fnat`).

use super::{Director, Symptom, Verdict};
use crate::conn::ConnId;
use crate::error::Reason;
use crate::proto::tcp::{flags, TcpState};
use crate::time::Instant;
use crate::wire::ipproto;
use crate::wire::{Frame, PacketMeta};
use crate::xmit::{nat, XmitError};

impl Director {
    /// Real server → client on NAT connection `id`.
    pub(super) fn out_path(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, id: ConnId) -> Verdict {
        let Some(c) = self.conns.get(id) else { return Verdict::NotMine };
        let (vaddr, vport) = (self.conns.vaddr(c), c.vport);
        self.reply_seen(now, meta, id);
        let Some(nh) = self.neigh.route(&meta.dst) else { return self.drop(Reason::UnknownNeighbour) };
        let Some(me) = self.port_mac(nh.port) else { return self.drop(Reason::UnknownPort) };
        match nat::xmit_out(frame, meta, &vaddr, vport, nh.mac, me) {
            Ok(()) => Verdict::Transmit { port: nh.port, dest: None },
            Err(XmitError::TtlExpired) => self.drop(Reason::TtlExpired),
            Err(XmitError::Bounds) => self.drop(Reason::Malformed),
            Err(XmitError::Fragment) => self.drop(Reason::Unsupported),
        }
    }

    /// What a server's reply does to its connection, whatever the rewrite (NAT or FullNAT):
    /// counted out, a refused SYN noted, the OUTPUT state step, the timer re-armed.
    pub(super) fn reply_seen(&mut self, now: Instant, meta: &PacketMeta, id: ConnId) {
        let Some(c) = self.conns.get(id) else { return };
        let dest = c.dest_id();
        let refused = c.proto == ipproto::TCP && c.state == TcpState::SynRecv as u8 && meta.tcp_flags & flags::RST != 0;
        if let Some(d) = dest {
            self.count(d, u32::from(meta.ip_len), true);
            if refused {
                self.suspect(d, Symptom::SynReset);
            }
        }
        let ms = self.set_state(id, true, meta);
        self.conns.arm(id, crate::time::after_ms(now, ms));
    }
}
