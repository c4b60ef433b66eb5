//! Health checking of real servers, as keepalived's checkers, ldirectord and mon do it, sans-IO:
//! check plans, rise and fall, the reactions on the director (remove or quiesce, sorry server,
//! quorum, slow start), events for the application, passive detection and a status listing.
//!
//! The [`Monitor`] is driven like the [`Director`](crate::Director): told the time, it hands
//! out the [`Probe`]s that are due ([`Monitor::poll`]), takes their [`Outcome`]s
//! ([`Monitor::report`]), fails the ones whose result never comes at their deadline
//! ([`Monitor::tick`]), and says when to come back ([`Monitor::next_deadline`]). Its reactions
//! go through the director's control calls ([`Control`]: `add_dest`, `edit_dest`, `del_dest`);
//! the director knows nothing of this room. The probes themselves — sockets, TLS, child
//! processes — belong to the I/O side, which only opens what [`Check::transport`] says, sends
//! and judges with the sans-IO pieces here, and reports.
//!
//! - [`check`] — [`Check`], one variant per kind, and the prober's uniform face
//!   ([`Transport`], [`Exchange`]); one file per kind: [`tcp`], [`http`] (with `md5` for
//!   `digest`), [`udp`], [`dns`], [`smtp`], [`icmp`], [`misc`].
//! - [`plan`] — [`CheckPlan`] per server and [`ServicePolicy`] per service, with the settings
//!   of keepalived, ldirectord and HAProxy mapped onto them.
//! - [`rules`] — rise/fall, quorum with hysteresis, the slow-start ramp, as pure functions.
//! - [`monitor`] — the [`Monitor`]: state per server, probes in flight, reactions.
//! - [`probe`], [`outcome`], [`event`], [`control`] — what crosses the room's edges.
//! - [`status`](mod@status) — the listing beside `ipvsadm -Ln` ([`status()`]).
//! - [`announce`] — which VIPs the director should announce to ECMP routers ([`Announcer`]).

pub mod announce;
pub mod check;
pub mod control;
pub mod dns;
pub mod event;
pub mod http;
pub mod icmp;
mod md5;
pub mod misc;
pub mod monitor;
pub mod outcome;
pub mod plan;
pub mod probe;
pub mod rules;
pub mod smtp;
pub mod status;
pub mod tcp;
pub mod udp;

pub use announce::{Announcer, Change};
pub use check::{Check, Exchange, Transport};
pub use control::Control;
pub use dns::DnsCheck;
pub use event::Event;
pub use http::HttpCheck;
pub use icmp::PingCheck;
pub use misc::{Exit, MiscCheck};
pub use monitor::{CheckStatus, Monitor, Override, ServerStatus, ServiceStatus, State, Symptom};
pub use outcome::{Detail, Outcome, Step};
pub use plan::{CheckPlan, CheckedServer, Passive, ServicePolicy, MAX_CHECKS};
pub use probe::{Probe, ProbeId, ServerId};
pub use rules::{Health, Streak};
pub use smtp::SmtpCheck;
pub use status::status;
pub use tcp::TcpCheck;
pub use udp::UdpCheck;

/// A refused call to the [`Monitor`]; a call that returns one has changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The service is monitored already.
    #[error("service already monitored")]
    ServiceExists,
    /// The service is not monitored.
    #[error("service not monitored")]
    NoSuchService,
    /// The service already has a server (or sorry server) at that address.
    #[error("real server already monitored")]
    ServerExists,
    /// No monitored server has that handle.
    #[error("no such monitored server")]
    NoSuchServer,
    /// No probe with that id is in flight (it timed out, or its server was removed).
    #[error("no such probe in flight")]
    UnknownProbe,
    /// A check plan that cannot be used.
    #[error("bad check plan: {0}")]
    BadPlan(&'static str),
    /// A service policy that cannot be used.
    #[error("bad service policy: {0}")]
    BadPolicy(&'static str),
}

#[cfg(test)]
mod tests;
