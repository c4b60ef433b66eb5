//! Flows that reach this director in their middle: beyond the kernel (whose `tcp_conn_schedule`
//! takes a non-SYN only with `sloppy_tcp`), a service with [`ServiceConfig::midflow_hash`]
//! schedules them by its `mh` or `sh` hash, as Katran and Maglev do, so that directors behind
//! ECMP routing agree on the server of a flow the routers move between them. The control
//! API refuses the option where that agreement cannot hold.
//!
//! [`ServiceConfig::midflow_hash`]: crate::service::ServiceConfig::midflow_hash

use super::Director;
use crate::dest::{FwdMethod, RealServer};
use crate::error::Error;
use crate::service::ServiceConfig;

/// The schedulers whose choice depends only on the configuration and the packet: the same on
/// every director with the same rules, whatever traffic each has seen.
const STATELESS: [&str; 2] = ["mh", "sh"];

/// Checks a service's scheduler against its `midflow_hash`: a counting scheduler (`wlc`,
/// `rr`, ...) chooses by each director's own history, so a moved flow would land elsewhere.
pub(super) fn check_scheduler(cfg: &ServiceConfig) -> Result<(), Error> {
    match cfg.midflow_hash && !STATELESS.contains(&cfg.scheduler.as_str()) {
        true => Err(Error::MidflowHash("needs the mh or sh scheduler (others need connection sync)")),
        false => Ok(()),
    }
}

/// Checks a real server of a service with `midflow_hash`: only DR and TUN servers answer the
/// client directly. A NAT or FullNAT server's replies come back through the director that
/// opened the flow, a local one is this director's own stack: neither can take the middle of
/// a flow another director began.
pub(super) fn check_dest(cfg: &ServiceConfig, rs: &RealServer) -> Result<(), Error> {
    match cfg.midflow_hash && !matches!(rs.fwd, FwdMethod::Route | FwdMethod::Tunnel) {
        true => Err(Error::MidflowHash("needs DR or TUN real servers (-g, -i)")),
        false => Ok(()),
    }
}

impl Director {
    /// Whether service `si` schedules a TCP segment that is neither a SYN nor a RST and finds
    /// no connection (its scheduler and servers were checked when it was configured).
    pub(super) fn schedules_midflow(&self, si: u32) -> bool {
        self.svcs.get(si as usize).and_then(Option::as_ref).is_some_and(|s| s.cfg.midflow_hash)
    }
}
