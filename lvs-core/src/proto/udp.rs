//! UDP (`ip_vs_proto_udp.c`): one state, `UDP`, always inactive, timeout 300 s by default.

/// The kernel's default UDP timeout in seconds.
pub const DEFAULT_TIMEOUT: u32 = 300;

/// The state name `ipvsadm -Lc` prints for UDP connections.
pub const STATE_NAME: &str = "UDP";
