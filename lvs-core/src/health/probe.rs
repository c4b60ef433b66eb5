//! A probe as the I/O side receives it: owned, `Send`, with everything needed to run it and
//! the id to report it by — so one thread can hold thousands in flight, each on its own
//! non-blocking socket or child process, and hand results back in any order.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::IpAddr;

use super::check::{Check, Exchange};
use super::outcome::Outcome;
use crate::addr::Endpoint;
use crate::time::Instant;

/// Handle of a checked real server in the [`Monitor`](super::Monitor). Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub u32);

/// Handle of one probe, unique for the monitor's life: a result is reported by it, and a
/// result for a probe the core already failed at its deadline is recognised as late.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(pub u64);

/// One check to run now.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The id to report the result by.
    pub id: ProbeId,
    /// The server checked.
    pub server: ServerId,
    /// Which of the server's checks this is: its index in
    /// [`CheckedServer::checks`](super::CheckedServer::checks).
    pub check_index: u32,
    /// Where to probe (the plan's `connect_ip:connect_port`, the real server by default).
    pub target: Endpoint,
    /// Source address (`bindto`).
    pub bindto: Option<IpAddr>,
    /// Source port (`bind_port`).
    pub bind_port: Option<u16>,
    /// When the check was due: the time it is started at, less this, is how late the prober
    /// is in starting it (it starts later when at its concurrency limit, or busy).
    pub due: Instant,
    /// The probe's hard deadline: the core fails it then if no result came, so the prober
    /// should give up (close the socket, kill the program) by this time.
    pub deadline: Instant,
    /// Random bits from the monitor's seed, different for each probe: the DNS transaction ID,
    /// the ICMP echo payload, the UDP payload when none is configured.
    pub nonce: u64,
    /// What to check.
    pub check: Arc<Check>,
}

impl Probe {
    /// The stream conversation, for HTTP and SMTP.
    pub fn exchange(&self) -> Option<Exchange> {
        self.check.exchange(self.target)
    }

    /// The datagram (or echo payload) to send, for UDP, DNS and PING.
    pub fn datagram(&self) -> Option<Vec<u8>> {
        self.check.datagram(self.nonce)
    }

    /// The verdict on a datagram that came back; `None` when it is not this probe's reply.
    pub fn judge_datagram(&self, reply: &[u8]) -> Option<Outcome> {
        self.check.judge_datagram(self.nonce, reply)
    }
}
