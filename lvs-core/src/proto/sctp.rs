//! SCTP as far as this library knows it: state names and timeouts (`ip_vs_proto_sctp.c`), so
//! that SCTP entries a sync master sends are kept and listed as the kernel lists them. SCTP
//! services themselves are not balanced yet.

/// Number of SCTP states (`IP_VS_SCTP_S_LAST`).
pub const STATES: u16 = 14;

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
