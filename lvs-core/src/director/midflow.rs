//! Flows that reach this director in their middle: beyond the kernel (whose `tcp_conn_schedule`
//! takes a non-SYN only with `sloppy_tcp`), a service with [`ServiceConfig::midflow_hash`]
//! schedules them by its `mh` or `sh` hash, as Katran and Maglev do, so that directors behind
//! ECMP routing agree on the server of a flow the routers move between them.
//!
//! [`ServiceConfig::midflow_hash`]: crate::service::ServiceConfig::midflow_hash

use super::Director;

/// The schedulers whose choice depends only on the configuration and the packet: the same on
/// every director with the same rules, whatever traffic each has seen.
const STATELESS: [&str; 2] = ["mh", "sh"];

impl Director {
    /// Whether service `si` schedules a TCP segment that is neither a SYN nor a RST and finds
    /// no connection.
    pub(super) fn schedules_midflow(&self, si: u32) -> bool {
        self.svcs
            .get(si as usize)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.cfg.midflow_hash && STATELESS.contains(&s.sched.name()))
    }
}
