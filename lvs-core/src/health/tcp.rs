//! `TCP_CHECK` (keepalived), ldirectord's `checktype = connect`: the server is up when a TCP
//! connection to it completes within the timeout.
//!
//! Nothing is sent. The prober connects (non-blocking) from the plan's `bindto` address to its
//! `connect_ip:connect_port`, closes at once, and reports [`Detail::Passed`](super::Detail) on
//! success, [`Refused`](super::Detail::Refused) for a reset to the SYN,
//! [`Unreachable`](super::Detail::Unreachable) for an ICMP error, and lets the core fail the probe
//! at its deadline when nothing answers.

/// A TCP connect check. It has no settings of its own: the target, source and timeout are the
/// plan's ([`CheckPlan`](super::CheckPlan)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCheck;
