//! What the monitor tells the application, in order, through
//! [`Monitor::poll_event`](super::Monitor::poll_event): servers up and down with the reason,
//! quorum gained and lost, the sorry server in and out (keepalived's `notify_up`,
//! `notify_down`, `quorum_up`, `quorum_down`), and control calls the director refused.

use alloc::string::String;
use core::fmt;

use super::outcome::Detail;
use super::probe::ServerId;
use crate::addr::{Endpoint, ServiceKey};
use crate::error::Error;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A server went into service.
    ServerUp {
        /// Its handle.
        server: ServerId,
        /// Its service.
        service: ServiceKey,
        /// Its address.
        endpoint: Endpoint,
        /// Why: the last check's detail, or [`Detail::Operator`].
        reason: Detail,
        /// The check whose result brought the change, as [`CheckPlan::label`] names it,
        /// when the server has several (`None` with one, or for the operator).
        ///
        /// [`CheckPlan::label`]: super::CheckPlan::label
        check: Option<String>,
    },
    /// A server went out of service (down, or drained by the operator).
    ServerDown {
        /// Its handle.
        server: ServerId,
        /// Its service.
        service: ServiceKey,
        /// Its address.
        endpoint: Endpoint,
        /// Why: the last check's detail, [`Detail::Operator`] or [`Detail::Shutdown`].
        reason: Detail,
        /// The check whose failure took it out, as [`CheckPlan::label`] names it, when the
        /// server has several (`None` with one, for the operator or at shutdown).
        ///
        /// [`CheckPlan::label`]: super::CheckPlan::label
        check: Option<String>,
    },
    /// The live weight reached the quorum plus the hysteresis.
    QuorumGained {
        /// The service.
        service: ServiceKey,
        /// The sum of the weights of the servers in service.
        live_weight: u64,
        /// The threshold that was crossed.
        threshold: u64,
    },
    /// The live weight fell below the quorum less the hysteresis, or to zero.
    QuorumLost {
        /// The service.
        service: ServiceKey,
        /// The sum of the weights of the servers in service.
        live_weight: u64,
        /// The threshold that was crossed.
        threshold: u64,
    },
    /// The sorry server was put in service.
    SorryServerIn {
        /// The service.
        service: ServiceKey,
        /// The sorry server.
        endpoint: Endpoint,
    },
    /// The sorry server was taken out of service.
    SorryServerOut {
        /// The service.
        service: ServiceKey,
        /// The sorry server.
        endpoint: Endpoint,
    },
    /// The director refused a change the monitor made; the monitor tries again at the
    /// server's next change.
    ControlFailed {
        /// The service.
        service: ServiceKey,
        /// The server the change was for.
        endpoint: Endpoint,
        /// What the director said.
        error: Error,
    },
}

impl fmt::Display for Event {
    /// One log line, in keepalived's words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::ServerUp { service, endpoint, reason, check: None, .. } => {
                write!(f, "{service}: real server {endpoint} up ({reason})")
            }
            Event::ServerUp { service, endpoint, reason, check: Some(c), .. } => {
                write!(f, "{service}: real server {endpoint} up (all checks pass, the last {c}: {reason})")
            }
            Event::ServerDown { service, endpoint, reason, check: None, .. } => {
                write!(f, "{service}: real server {endpoint} down ({reason})")
            }
            Event::ServerDown { service, endpoint, reason, check: Some(c), .. } => {
                write!(f, "{service}: real server {endpoint} down ({c}: {reason})")
            }
            Event::QuorumGained { service, live_weight, threshold } => {
                write!(f, "{service}: gained quorum, live weight {live_weight} >= {threshold}")
            }
            Event::QuorumLost { service, live_weight, threshold } => {
                write!(f, "{service}: lost quorum, live weight {live_weight} < {threshold}")
            }
            Event::SorryServerIn { service, endpoint } => write!(f, "{service}: sorry server {endpoint} in"),
            Event::SorryServerOut { service, endpoint } => write!(f, "{service}: sorry server {endpoint} out"),
            Event::ControlFailed { service, endpoint, error } => {
                write!(f, "{service}: cannot update real server {endpoint}: {error}")
            }
        }
    }
}
