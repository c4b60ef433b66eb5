//! What a probe found: [`Outcome`] (up or down, why, and a weight a `MISC_CHECK` may set), the
//! [`Detail`] that says why, and the [`Step`] a stream conversation takes next — keepalived's
//! checker results (`update_svr_checker_state`), as values the I/O side hands back.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Why a check passed or failed, as the status listing and the events print it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detail {
    /// The check passed (a TCP connect, an ICMP echo reply, a DNS answer, a UDP reply).
    Passed,
    /// A protocol status: the HTTP status, or the SMTP reply code, that decided the check.
    Status(u16),
    /// No result by the probe's deadline.
    Timeout,
    /// No error within the timeout: a `UDP_CHECK` that needs no reply and got no ICMP error.
    Silence,
    /// Connection refused, or ICMP port unreachable to a UDP probe.
    Refused,
    /// Host or network unreachable.
    Unreachable,
    /// The server reset the connection.
    Reset,
    /// The server closed the connection before the check was complete.
    Closed,
    /// A reply that does not parse, or is larger than a header may be.
    Malformed,
    /// The HTTP body's MD5 is not the configured `digest`.
    DigestMismatch,
    /// The expected text (ldirectord `receive`) or reply bytes (`require_reply`) are missing.
    NoMatch,
    /// The reply matched what it must not (keepalived's `regex_no_match`).
    UnwantedMatch,
    /// A DNS reply with a non-zero RCODE.
    Rcode(u8),
    /// A DNS reply with no answer where one is required.
    NoAnswer,
    /// A `MISC_CHECK` program's exit status.
    Exit(i32),
    /// A `MISC_CHECK` program killed by this signal.
    Signal(i32),
    /// Any other I/O failure, in the prober's words (a program that cannot be run, a socket
    /// error).
    Io(String),
    /// Not a probe: the operator forced the state.
    Operator,
    /// Not a probe: the service stopped being checked (keepalived `omega`).
    Shutdown,
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Passed => f.write_str("passed"),
            Detail::Status(s) => write!(f, "status {s}"),
            Detail::Timeout => f.write_str("timeout"),
            Detail::Silence => f.write_str("no error within timeout"),
            Detail::Refused => f.write_str("connection refused"),
            Detail::Unreachable => f.write_str("unreachable"),
            Detail::Reset => f.write_str("connection reset"),
            Detail::Closed => f.write_str("closed early"),
            Detail::Malformed => f.write_str("malformed reply"),
            Detail::DigestMismatch => f.write_str("digest mismatch"),
            Detail::NoMatch => f.write_str("expected reply not found"),
            Detail::UnwantedMatch => f.write_str("reply matched regex_no_match"),
            Detail::Rcode(r) => write!(f, "dns rcode {r}"),
            Detail::NoAnswer => f.write_str("dns reply without answer"),
            Detail::Exit(c) => write!(f, "exit {c}"),
            Detail::Signal(s) => write!(f, "killed by signal {s}"),
            Detail::Io(m) => f.write_str(m),
            Detail::Operator => f.write_str("operator"),
            Detail::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// The result of one probe, handed to [`Monitor::report`](super::Monitor::report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The check passed.
    pub up: bool,
    /// Why.
    pub reason: Detail,
    /// A new weight for the server (`misc_dynamic`: exit status − 2); `None` leaves it as it is.
    pub weight: Option<u32>,
}

impl Outcome {
    /// A passed check.
    pub fn up(reason: Detail) -> Self {
        Outcome { up: true, reason, weight: None }
    }

    /// A failed check.
    pub fn down(reason: Detail) -> Self {
        Outcome { up: false, reason, weight: None }
    }

    /// The same outcome setting the server's weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }
}

/// What a stream conversation (HTTP, SMTP) wants next from the prober.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes, then wait for more from the server.
    Send(Vec<u8>),
    /// Wait for more bytes from the server.
    Wait,
    /// The check is decided: close the connection and report this.
    Done(Outcome),
}
