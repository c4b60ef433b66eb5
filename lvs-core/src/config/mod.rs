//! Text formats in and out of a [`Director`](crate::Director), one room per format. Each reads
//! into control [`Command`](crate::Command)s and the director's public API, and writes from what
//! the director lets anyone read; the director knows none of them.
//!
//! - [`ipvsadm`] — `ipvsadm` command lines, `-S`/`-R` rule files and the `-L` listings.
//! - [`keepalived`] — keepalived.conf's LVS and VRRP parts (feature `keepalived`).
//! - [`ldirectord`] — ldirectord.cf (feature `ldirectord`).
//! - [`diff`](mod@diff) — the commands a reload applies: a running table moved to a new configuration's.
//! - [`procfs`] — the `/proc/net/ip_vs*` files, for monitoring that reads a kernel director's.
//! - [`prometheus`] — the Prometheus text exposition: node_exporter's `node_ipvs_*` families and
//!   lvs's own (drops, connection table, sync, health, VRRP).
//! - [`source`], [`deploy`] — what the daemons' formats share: where files come from and how
//!   errors and warnings name them; the services, servers and checks a configuration becomes.

#[cfg(any(feature = "keepalived", feature = "ldirectord"))]
pub mod deploy;
pub mod diff;
pub mod ipvsadm;
#[cfg(feature = "keepalived")]
pub mod keepalived;
#[cfg(feature = "ldirectord")]
pub mod ldirectord;
pub mod procfs;
pub mod prometheus;
#[cfg(any(feature = "keepalived", feature = "ldirectord"))]
pub mod source;

pub use diff::diff;
pub use ipvsadm::cli::{run as run_ipvsadm, run_with as run_ipvsadm_with, Output as IpvsadmOutput, RunOptions};
pub use ipvsadm::command::{parse_command, parse_request, Failure, Request};
pub use ipvsadm::listing::{list, render, render_stats, stats_rows, sum_rows, Format, ListOptions, Listing, StatsRow};
pub use ipvsadm::rules::{parse_rules, restore, save};
pub use procfs::ProcFile;
