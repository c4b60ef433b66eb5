//! The VRRP thread of a director process: a [`VrrpIo`] beside the packet loop, with the
//! carrier of tracked interfaces reported to its group, as keepalived tracks an instance's
//! interface (FAULT while it has no carrier). The failover lab's director and
//! `examples/director` both run it.

use std::time::Duration;

use lvs::core::vrrp::TrackerId;
use lvs::dataplane::runtime::{MonotonicClock, StopHandle};
use lvs::dataplane::vrrp::{link_up, Hooks, VrrpIo};

/// How often the thread looks at the tracked interfaces' carrier.
const LINK_CHECK: Duration = Duration::from_millis(10);

/// Starts the instances, keeps each `(tracker, interface)` of `links` current, and shuts the
/// instances down (priority 0 first) when `stop` is asked. A wait error ends the thread early,
/// with the error.
///
/// # Errors
/// The wait's error; the instances were shut down.
pub(crate) fn run<H: Hooks>(
    mut vrrp: VrrpIo<H>,
    links: &[(TrackerId, String)],
    clock: &MonotonicClock,
    stop: &StopHandle,
) -> std::io::Result<()> {
    vrrp.start(clock.now());
    let mut result = Ok(());
    while !stop.is_stopped() {
        let now = clock.now();
        for (id, ifname) in links {
            // The handles are the group's own: this cannot fail.
            let _ = vrrp.group_mut().set_tracker(now, *id, link_up(ifname).unwrap_or(false));
        }
        vrrp.poll(now);
        if let Err(e) = vrrp.wait(now, LINK_CHECK) {
            result = Err(e);
            break;
        }
    }
    vrrp.shutdown(clock.now());
    result
}
