//! Per-protocol state machines and timeouts (`ip_vs_proto.c`): TCP and SCTP as the kernel's
//! transition tables, UDP as a single state.

pub mod sctp;
pub mod tcp;
pub mod udp;

pub use tcp::{TcpDir, TcpState};

use crate::conn::{cf, Conn};
use crate::dest::Dest;
use crate::wire::{ipproto, PacketMeta};

/// Timeouts per protocol state, in seconds, settable like `ipvsadm --set tcp tcpfin udp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// One timeout per [`TcpState`], indexed by the state's number.
    pub tcp: [u32; TcpState::COUNT],
    /// The UDP timeout.
    pub udp: u32,
}

impl Default for Timeouts {
    /// The kernel's `tcp_timeouts` and `udp_timeouts`.
    fn default() -> Self {
        Timeouts { tcp: tcp::DEFAULT_TIMEOUTS, udp: udp::DEFAULT_TIMEOUT }
    }
}

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT and UDP; 0 leaves a value unchanged.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }

    /// The three values `ipvsadm --timeout` lists: `(tcp, tcpfin, udp)`.
    pub fn listed(&self) -> (u32, u32, u32) {
        (self.tcp[TcpState::Established as usize], self.tcp[TcpState::FinWait as usize], self.udp)
    }
}

/// `set_tcp_state`, `set_sctp_state` and the UDP transition: the one place a connection's
/// state, its server's ActiveConn/InActConn counters and its timeout change. TCP and SCTP step
/// through the kernel's tables ([`tcp::next_state`] on the packet's flags, or
/// [`tcp::next_state_secure`] while the `secure_tcp` defence is on; [`sctp::next_state`] on its
/// chunk), choosing INPUT-ONLY while the connection has never seen its server's side; moving
/// between an active and an inactive state moves the connection between the counters. The new
/// timeout is the state's (UDP has one).
pub(crate) fn set_state(
    c: &mut Conn,
    dest: Option<&mut Dest>,
    timeouts: &Timeouts,
    secure: bool,
    output: bool,
    pkt: &PacketMeta,
) {
    let stepped = c.proto == ipproto::TCP || c.proto == ipproto::SCTP;
    if !stepped {
        c.timeout_ms = timeouts.udp.saturating_mul(1000);
        return;
    }
    let mut dir = if output { TcpDir::Output } else { TcpDir::Input };
    if c.flags & cf::NOOUTPUT != 0 {
        if output {
            c.flags &= !cf::NOOUTPUT;
        } else {
            dir = TcpDir::InputOnly;
        }
    }
    let (new, active, timeout_s) = if c.proto == ipproto::TCP {
        let cur = TcpState::from_u8(c.state).unwrap_or(TcpState::None);
        let new = if secure {
            tcp::next_state_secure(dir, cur, pkt.tcp_flags)
        } else {
            tcp::next_state(dir, cur, pkt.tcp_flags)
        };
        (new as u8, new.is_active(), timeouts.tcp[new as usize])
    } else {
        let new = sctp::next_state(dir, c.state, pkt.sctp_chunk);
        (new, sctp::is_active(new), sctp::timeout(new))
    };
    // `set_sctp_state` moves the counters only when the state changes.
    let inactive = c.flags & cf::INACTIVE != 0;
    if let Some(d) = dest.filter(|_| new != c.state || c.proto == ipproto::TCP) {
        if !inactive && !active {
            d.active = d.active.saturating_sub(1);
            d.inactive += 1;
            c.flags |= cf::INACTIVE;
        } else if inactive && active {
            d.inactive = d.inactive.saturating_sub(1);
            d.active += 1;
            c.flags &= !cf::INACTIVE;
        }
    }
    c.state = new;
    c.timeout_ms = timeout_s.saturating_mul(1000);
}

/// Template states (`IP_VS_CTPL_S_*`): a template is `NONE` until one of its connections is
/// established (TCP) or answered (UDP), then `ASSURED`.
pub(crate) mod tpl {
    /// Not yet assured.
    pub(crate) const NONE: u8 = 0;
    /// A connection it controls got through.
    pub(crate) const ASSURED: u8 = 1;
}

/// A connection's state as `ipvsadm -Lc` names it (`ERR!` for a number the protocol does not
/// have, as a backup may be sent).
pub(crate) fn state_name(c: &Conn) -> &'static str {
    if c.is_template() {
        match c.state {
            tpl::NONE => "NONE",
            tpl::ASSURED => "ASSURED",
            _ => "ERR!",
        }
    } else if c.proto == ipproto::TCP {
        TcpState::from_u8(c.state).map_or("ERR!", TcpState::name)
    } else if c.proto == ipproto::SCTP {
        sctp::state_name(c.state)
    } else if c.state == 0 {
        udp::STATE_NAME
    } else {
        "ERR!"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_leaves_zeros_unchanged() {
        let mut t = Timeouts::default();
        assert_eq!(t.listed(), (900, 120, 300));
        t.set(0, 2, 0);
        assert_eq!(t.listed(), (900, 2, 300));
        t.set(60, 0, 30);
        assert_eq!(t.listed(), (60, 2, 30));
    }
}
