//! Entering a network namespace (`setns`, as `ip netns exec` does) so that the sockets a thread
//! opens afterwards live there — for a shard factory whose ports are in a namespace.

use std::io;

/// Moves the calling thread (only it) into the network namespace `name`, as `ip netns add`
/// makes them (`/var/run/netns/<name>`).
///
/// # Errors
/// When the namespace does not exist or `setns` fails (it needs `CAP_SYS_ADMIN`).
pub fn enter(name: &str) -> io::Result<()> {
    crate::sys::linux::enter_netns(name)
}
