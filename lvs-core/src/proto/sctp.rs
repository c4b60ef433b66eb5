//! The SCTP state machine (`ip_vs_proto_sctp.c`, `sctp_states[]` and `set_sctp_state`): states
//! as the real server's end of the association sees them, three tables like TCP's — INPUT
//! (client → director), OUTPUT (real server → director, NAT only) and INPUT-ONLY (DR, TUN and
//! local connections) — indexed by the event of the packet's first chunk, and a timeout per state.

use super::tcp::TcpDir;
pub use crate::wire::chunk;

/// Number of SCTP states (`IP_VS_SCTP_S_LAST`).
pub const STATES: u16 = 14;

/// SCTP states, numbered as the kernel's `IP_VS_SCTP_S_*`.
pub mod state {
    /// No state yet.
    pub const NONE: u8 = 0;
    /// The client's first INIT seen, waiting for the server's INIT ACK (short timeout).
    pub const INIT1: u8 = 1;
    /// A further INIT from the client.
    pub const INIT: u8 = 2;
    /// The server's INIT ACK sent, waiting for the client's COOKIE ECHO.
    pub const COOKIE_SENT: u8 = 3;
    /// The client's COOKIE ECHO sent, waiting for the server's COOKIE ACK.
    pub const COOKIE_REPLIED: u8 = 4;
    /// The server's own INIT sent, waiting for the client's INIT ACK.
    pub const COOKIE_WAIT: u8 = 5;
    /// The client's INIT ACK sent, waiting for the server's COOKIE ECHO.
    pub const COOKIE: u8 = 6;
    /// The server's COOKIE ECHO sent, waiting for the client's COOKIE ACK.
    pub const COOKIE_ECHOED: u8 = 7;
    /// The association is up: the only active state.
    pub const ESTABLISHED: u8 = 8;
    /// The server sent SHUTDOWN.
    pub const SHUTDOWN_SENT: u8 = 9;
    /// The client sent SHUTDOWN.
    pub const SHUTDOWN_RECEIVED: u8 = 10;
    /// SHUTDOWN ACK sent.
    pub const SHUTDOWN_ACK_SENT: u8 = 11;
    /// An INIT answered with ABORT (short timeout).
    pub const REJECTED: u8 = 12;
    /// Closed.
    pub const CLOSED: u8 = 13;
}

const NAMES: [&str; STATES as usize] = [
    "NONE",
    "INIT1",
    "INIT",
    "C-SENT",
    "C-REPLIED",
    "C-WAIT",
    "COOKIE",
    "C-ECHOED",
    "ESTABLISHED",
    "S-SENT",
    "S-RECEIVED",
    "S-ACK-SENT",
    "REJECTED",
    "CLOSED",
];

/// The kernel's `sctp_timeouts`, seconds: 2 s unconnected, 4 s for INIT1 and REJECTED, 15 min
/// established, 61 s (`IP_VS_SCTP_MAX_RTO`) otherwise.
const TIMEOUTS: [u32; STATES as usize] = [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61];

/// The name `ipvsadm -Lc` shows for state `s`.
pub fn state_name(s: u8) -> &'static str {
    NAMES.get(usize::from(s)).copied().unwrap_or("ERR!")
}

/// The timeout of state `s` in seconds.
pub fn timeout(s: u8) -> u32 {
    TIMEOUTS.get(usize::from(s)).copied().unwrap_or(2)
}

/// Whether state `s` counts in ActiveConn (only ESTABLISHED does).
pub const fn is_active(s: u8) -> bool {
    s == state::ESTABLISHED
}

/// The event a chunk type is (`sctp_events`): DATA, SACK, HEARTBEAT (ACK), ECNE and CWR — and
/// any type the table does not know — are "data"; the others are their own event.
fn event(c: u8) -> usize {
    match c {
        chunk::INIT => 1,
        chunk::INIT_ACK => 2,
        chunk::COOKIE_ECHO => 3,
        chunk::COOKIE_ACK => 4,
        chunk::SHUTDOWN => 5,
        chunk::SHUTDOWN_ACK => 6,
        chunk::SHUTDOWN_COMPLETE => 7,
        chunk::ERROR => 8,
        chunk::ABORT => 9,
        _ => 0,
    }
}

const I1: u8 = state::INIT1;
const IN: u8 = state::INIT;
const CS: u8 = state::COOKIE_SENT;
const CR: u8 = state::COOKIE_REPLIED;
const CW: u8 = state::COOKIE_WAIT;
const CO: u8 = state::COOKIE;
const CE: u8 = state::COOKIE_ECHOED;
const ES: u8 = state::ESTABLISHED;
const SS: u8 = state::SHUTDOWN_SENT;
const SR: u8 = state::SHUTDOWN_RECEIVED;
const SA: u8 = state::SHUTDOWN_ACK_SENT;
const RJ: u8 = state::REJECTED;
const CL: u8 = state::CLOSED;

type Table = [[u8; STATES as usize]; 10];

/// `sctp_states[direction][event][state]`: one row per event (data, INIT, INIT ACK, COOKIE
/// ECHO, COOKIE ACK, SHUTDOWN, SHUTDOWN ACK, SHUTDOWN COMPLETE, ERROR, ABORT), one column per
/// current state in [`state`] order.
const TABLES: [Table; 3] = [
    // INPUT: a packet from the client on a connection that sees both sides.
    [
        [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN],
        [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL],
        [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL],
        [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
    // OUTPUT: a packet from the real server (NAT).
    [
        [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
        [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
        [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
        [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
        [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY: a packet from the client on a connection that never sees the server (DR, TUN).
    [
        [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
        [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
        [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
        [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
        [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
];

/// The state after a packet whose driving chunk is `chunk_type` (see
/// [`PacketMeta::sctp_chunk`](crate::wire::PacketMeta::sctp_chunk)) in direction `dir` on a
/// connection in state `cur` (`set_sctp_state`). A state number beyond the table (as a sync
/// master may send) stays as it is.
pub fn next_state(dir: TcpDir, cur: u8, chunk_type: u8) -> u8 {
    TABLES
        .get(dir as usize)
        .and_then(|t| t.get(event(chunk_type)))
        .and_then(|row| row.get(usize::from(cur)))
        .copied()
        .unwrap_or(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO: u8 = state::NONE;

    /// A whole association over NAT, each step read off the kernel's table: the client's INIT
    /// (INPUT) → INIT1; the server's INIT ACK (OUTPUT) → C-SENT; COOKIE ECHO (INPUT) →
    /// C-REPLIED; COOKIE ACK (OUTPUT) → ESTABLISHED; the client's SHUTDOWN → S-RECEIVED; the
    /// server's SHUTDOWN ACK → S-ACK-SENT; SHUTDOWN COMPLETE → CLOSED.
    #[test]
    fn a_nat_association_from_init_to_closed() {
        let steps = [
            (TcpDir::Input, chunk::INIT, "INIT1"),
            (TcpDir::Output, chunk::INIT_ACK, "C-SENT"),
            (TcpDir::Input, chunk::COOKIE_ECHO, "C-REPLIED"),
            (TcpDir::Output, chunk::COOKIE_ACK, "ESTABLISHED"),
            (TcpDir::Input, chunk::DATA, "ESTABLISHED"),
            (TcpDir::Input, chunk::SHUTDOWN, "S-RECEIVED"),
            (TcpDir::Output, chunk::SHUTDOWN_ACK, "S-ACK-SENT"),
            (TcpDir::Input, chunk::SHUTDOWN_COMPLETE, "CLOSED"),
        ];
        let mut s = state::NONE;
        for (dir, c, want) in steps {
            s = next_state(dir, s, c);
            assert_eq!(state_name(s), want, "{dir:?} chunk {c}");
        }
    }

    /// The half association a DR director sees (INPUT-ONLY): INIT → INIT1, a second INIT →
    /// INIT, COOKIE ECHO → ESTABLISHED, SHUTDOWN → S-RECEIVED, SHUTDOWN COMPLETE → CLOSED, and
    /// an INIT on CLOSED starts again (INIT).
    #[test]
    fn a_dr_association_seen_from_the_client_only() {
        let d = TcpDir::InputOnly;
        assert_eq!(next_state(d, NO, chunk::INIT), I1);
        assert_eq!(next_state(d, I1, chunk::INIT), IN);
        assert_eq!(next_state(d, I1, chunk::COOKIE_ECHO), ES);
        assert_eq!(next_state(d, ES, 3), ES, "SACK is data");
        assert_eq!(next_state(d, ES, chunk::SHUTDOWN), SR);
        assert_eq!(next_state(d, SR, chunk::SHUTDOWN_COMPLETE), CL);
        assert_eq!(next_state(d, CL, chunk::INIT), IN);
    }

    /// ABORT: an INIT the server aborts is REJECTED (OUTPUT, from INIT1) for 4 s; an ABORT from
    /// the client closes an established association in every direction; unknown chunk types
    /// are data.
    #[test]
    fn aborts_and_unknown_chunks() {
        assert_eq!(next_state(TcpDir::Output, I1, chunk::ABORT), RJ);
        assert_eq!(timeout(RJ), 4);
        for d in [TcpDir::Input, TcpDir::Output, TcpDir::InputOnly] {
            assert_eq!(next_state(d, ES, chunk::ABORT), CL);
            assert_eq!(next_state(d, NO, 0xc0), ES, "an unknown chunk is data");
        }
        assert_eq!(next_state(TcpDir::Input, 14, chunk::INIT), 14, "a state out of range stays");
        assert_eq!(timeout(ES), 900);
        assert_eq!(timeout(I1), 4);
        assert_eq!(timeout(CL), 61);
        assert!(is_active(ES) && !is_active(SR) && !is_active(CE));
    }
}
