//! lvs: the Linux Virtual Server (kernel IPVS, driven by `ipvsadm`) as an embeddable library.
//!
//! The application owns the packet loop; lvs decides what happens to each frame. A tour:
//!
//! - [`core`] (`lvs-core`, `no_std`): the sans-IO [`Director`] — services and real servers,
//!   the connection table, the TCP half-connection state machine, persistence, statistics, the
//!   DR / NAT / TUN rewrites and the `ipvsadm` text formats.
//! - [`sched`] (`lvs-sched`, `no_std`): the schedulers, with the kernel's exact choices.
//! - `dataplane` (`lvs-dataplane`, std, feature `dataplane`): packet I/O backends, capture
//!   replay, the runtime loop, the sync daemons' multicast sockets, and VRRP's sockets with
//!   what ties a director pair to it (sync following the master, as keepalived's
//!   `lvs_sync_daemon`).
//! - `files` (std, feature `keepalived`): `FsSource`, the filesystem for keepalived.conf and
//!   its `include`s (`core::config::keepalived`, `core::config::ldirectord`).
//! - `procfs` (std): the `/proc/net/ip_vs*` files (`core::config::ProcFile`) written into a
//!   directory for node_exporter's `--path.procfs`.
//!
//! ```
//! use lvs::core::{config::ListOptions, Instant};
//!
//! let mut d = lvs::director(lvs::core::DirectorConfig::default());
//! lvs::core::config::restore(&mut d, "-A -t 10.0.0.1:80 -s wrr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 2\n")?;
//! let table = lvs::core::config::list(&d, Instant::ZERO, ListOptions::Plain);
//! assert!(table.contains("TCP  10.0.0.1:80 wrr"));
//! # Ok::<(), lvs::core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use lvs_core as core;
#[cfg(all(feature = "std", feature = "keepalived"))]
pub mod files;
#[cfg(feature = "dataplane")]
pub use lvs_dataplane as dataplane;
#[cfg(feature = "std")]
pub mod procfs;
pub use lvs_sched as sched;

pub use lvs_core::{Director, DirectorConfig, Error, Instant, Reason, Verdict};

/// A director whose schedulers come from [`sched::by_name`].
pub fn director(cfg: DirectorConfig) -> Director {
    Director::new(cfg, lvs_sched::by_name)
}
