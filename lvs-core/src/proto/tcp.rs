//! The TCP half-connection state machine (`ip_vs_proto_tcp.c`, `tcp_states[]` and
//! `set_tcp_state`): three tables — INPUT (client → director), OUTPUT (real server → director,
//! NAT only) and INPUT-ONLY (DR, TUN and local connections, which never see the server's side).
//! A packet's event is chosen RST > SYN > FIN > ACK; a packet with none of them moves to CLOSE.
//! `secure_tcp` swaps in the kernel's second set, `tcp_states_dos` (`tcp_timeout_change`): a
//! DR/TUN SYN waits in SYNACK, and a NAT connection is established only once the server's side
//! answered.

/// TCP connection states, numbered as the kernel's `IP_VS_TCP_S_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    /// No state yet.
    None = 0,
    /// Handshake complete.
    Established,
    /// SYN seen from the server side.
    SynSent,
    /// SYN seen from the client.
    SynRecv,
    /// A FIN seen.
    FinWait,
    /// Both FINs seen.
    TimeWait,
    /// Closed (RST, or a packet without flags).
    Close,
    /// The client closed first (NAT).
    CloseWait,
    /// Waiting for the last ACK.
    LastAck,
    /// Listening.
    Listen,
    /// SYN+ACK seen.
    SynAck,
}

/// Which table a packet uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpDir {
    /// Client → director on a connection that also sees the server's side (NAT).
    Input = 0,
    /// Real server → director (NAT replies).
    Output = 1,
    /// Client → director on a connection that never sees the server (DR, TUN, local).
    InputOnly = 2,
}

impl TcpState {
    /// Number of states.
    pub const COUNT: usize = 11;

    const ALL: [TcpState; TcpState::COUNT] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state with the kernel's number `n`.
    pub fn from_u8(n: u8) -> Option<TcpState> {
        Self::ALL.get(usize::from(n)).copied()
    }

    /// The name `ipvsadm -Lc` prints.
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// Whether a connection in this state counts as ActiveConn (`tcp_state_active_table`):
    /// SYN_SENT, SYN_RECV, ESTABLISHED and SYNACK.
    pub const fn is_active(self) -> bool {
        matches!(self, TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck)
    }
}

/// The kernel's default timeouts per state, in seconds (`tcp_timeouts`).
pub const DEFAULT_TIMEOUTS: [u32; TcpState::COUNT] = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];

/// TCP flag bits as they sit in byte 13 of the header.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI, SynAck as SA,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// One set of the three tables: `[table][event][current state] -> next state`.
type Tables = [[[TcpState; TcpState::COUNT]; 4]; 3];

/// `tcp_states`: `[table][event][current state] -> next state`; events are syn, fin, ack, rst.
#[rustfmt::skip]
const TABLES: Tables = [
    // INPUT                 NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
    [/* syn */              [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
     /* fin */              [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
     /* ack */              [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
     /* rst */              [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR]],
    // OUTPUT
    [/* syn */              [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
     /* fin */              [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
     /* ack */              [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
     /* rst */              [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL]],
    // INPUT-ONLY
    [/* syn */              [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
     /* fin */              [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
     /* ack */              [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
     /* rst */              [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL]],
];

/// `tcp_states_dos`, the tables `secure_tcp` puts in force; events are syn, fin, ack, rst.
#[rustfmt::skip]
const TABLES_DOS: Tables = [
    // INPUT                 NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
    [/* syn */              [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
     /* fin */              [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
     /* ack */              [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
     /* rst */              [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL]],
    // OUTPUT
    [/* syn */              [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
     /* fin */              [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
     /* ack */              [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
     /* rst */              [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL]],
    // INPUT-ONLY
    [/* syn */              [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
     /* fin */              [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
     /* ack */              [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
     /* rst */              [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL]],
];

/// The next state for a packet with TCP `flags` in direction `dir` (`set_tcp_state`'s lookup).
pub fn next_state(dir: TcpDir, cur: TcpState, tcp_flags: u8) -> TcpState {
    step(&TABLES, dir, cur, tcp_flags)
}

/// The same lookup in the `secure_tcp` tables (`tcp_states_dos`).
pub fn next_state_secure(dir: TcpDir, cur: TcpState, tcp_flags: u8) -> TcpState {
    step(&TABLES_DOS, dir, cur, tcp_flags)
}

fn step(tables: &Tables, dir: TcpDir, cur: TcpState, tcp_flags: u8) -> TcpState {
    let event = if tcp_flags & flags::RST != 0 {
        3
    } else if tcp_flags & flags::SYN != 0 {
        0
    } else if tcp_flags & flags::FIN != 0 {
        1
    } else if tcp_flags & flags::ACK != 0 {
        2
    } else {
        return TcpState::Close;
    };
    tables[dir as usize][event][cur as usize]
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;
    use TcpState::None as NO;

    fn short(s: TcpState) -> &'static str {
        match s {
            NO => "NO",
            ES => "ES",
            SS => "SS",
            SR => "SR",
            FW => "FW",
            TW => "TW",
            CL => "CL",
            CW => "CW",
            LA => "LA",
            LI => "LI",
            SA => "SA",
        }
    }

    /// Every cell of one set of tables against rows of text: (table, event) in the kernel's
    /// order, states in the kernel's column order.
    fn check_grid(step: fn(TcpDir, TcpState, u8) -> TcpState, expect: [&str; 12]) {
        let events = [SYN, FIN, ACK, RST];
        let dirs = [TcpDir::Input, TcpDir::Output, TcpDir::InputOnly];
        for (d, dir) in dirs.iter().enumerate() {
            for (e, ev) in events.iter().enumerate() {
                let row: alloc::vec::Vec<&str> = TcpState::ALL.iter().map(|s| short(step(*dir, *s, *ev))).collect();
                assert_eq!(row.join(" "), expect[d * 4 + e], "{dir:?} event {ev:#x}");
            }
        }
    }

    /// One case per cell of the kernel grid `tcp_states`.
    #[test]
    fn every_cell_of_the_grid() {
        check_grid(
            next_state,
            [
                "SR ES ES SR SR SR SR SR SR SR SR",
                "CL CW SS TW TW TW CL CW LA LI TW",
                "ES ES SS ES FW TW CL CW CL LI ES",
                "CL CL CL SR CL CL CL CL LA LI SR",
                "SS ES SS SR SS SS SS SS SS LI SR",
                "TW FW SS TW FW TW CL TW LA LI TW",
                "ES ES SS ES FW TW CL CW LA ES ES",
                "CL CL SS CL CL TW CL CL CL CL CL",
                "SR ES ES SR SR SR SR SR SR SR SR",
                "CL FW SS TW FW TW CL CW LA LI TW",
                "ES ES SS ES FW TW CL CW CL LI ES",
                "CL CL CL SR CL CL CL CL LA LI CL",
            ],
        );
    }

    /// One case per cell of `tcp_states_dos` (Linux 6.12 `ip_vs_proto_tcp.c`), the tables of
    /// `secure_tcp`.
    #[test]
    fn every_cell_of_the_secure_grid() {
        check_grid(
            next_state_secure,
            [
                "SR ES ES SR SR SR SR SR SR SR SA",
                "CL CW SS TW TW TW CL CW LA LI SA",
                "ES ES SS SR FW TW CL CW CL LI SA",
                "CL CL CL SR CL CL CL CL LA LI CL",
                "SS ES SS SA SS SS SS SS SS LI SA",
                "TW FW SS TW FW TW CL TW LA LI TW",
                "ES ES SS ES FW TW CL CW LA ES ES",
                "CL CL SS CL CL TW CL CL CL CL CL",
                "SA ES ES SR SA SA SA SA SA SA SA",
                "CL FW SS TW FW TW CL CW LA LI TW",
                "ES ES SS ES FW TW CL CW CL LI ES",
                "CL CL CL SR CL CL CL CL LA LI CL",
            ],
        );
    }

    #[test]
    fn flag_precedence_and_flagless_packets() {
        assert_eq!(next_state(TcpDir::InputOnly, ES, RST | SYN | FIN | ACK), CL);
        assert_eq!(next_state(TcpDir::InputOnly, NO, SYN | ACK), SR);
        assert_eq!(next_state(TcpDir::InputOnly, ES, FIN | ACK), FW);
        assert_eq!(next_state(TcpDir::Input, ES, 0x08), CL, "PSH alone closes");
    }

    #[test]
    fn active_states_and_names() {
        let active: alloc::vec::Vec<_> = TcpState::ALL.iter().filter(|s| s.is_active()).map(|s| s.name()).collect();
        assert_eq!(active, ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"]);
        assert_eq!(TcpState::from_u8(10), Some(SA));
        assert_eq!(TcpState::from_u8(11), None);
        assert_eq!(DEFAULT_TIMEOUTS[TcpState::Close as usize], 10);
    }
}
