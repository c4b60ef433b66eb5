//! Sans-IO IPVS engine: the director of the Linux Virtual Server as a library that never does I/O.
//!
//! The caller owns the packet loop and the clock. It hands frames to [`Director::process`] (or
//! [`Director::process_burst`]) with the current [`Instant`], transmits what the returned
//! [`Verdict`] says, and calls [`Director::tick`] by [`Director::next_deadline`]. Nothing in this
//! crate reads a clock, opens a socket, spawns a thread or draws from an OS random source; hash
//! seeds come from [`DirectorConfig`].
//!
//! The rooms, top to bottom, each named after the kernel file it mirrors
//! (`net/netfilter/ipvs/`):
//!
//! - [`time`] — our own monotonic [`Instant`] (jiffies).
//! - [`addr`] — protocols, endpoints and service keys.
//! - [`service`], [`dest`] — virtual services and real servers (`ip_vs_ctl.c`).
//! - [`sched`] — the [`Scheduler`] trait; the ten-plus schedulers live in `lvs-sched`.
//! - [`conn`] — the connection table: slab, hash indexes, timer wheel (`ip_vs_conn.c`).
//! - [`proto`] — TCP and UDP state machines and timeouts (`ip_vs_proto_*.c`).
//! - [`persist`] — persistence templates (`ip_vs_sched_persist`).
//! - [`laddr`] — FullNAT local addresses and their ports (DPVS `laddr.c`, `sa_pool.c`).
//! - [`stats`] — counters and the rate estimator (`ip_vs_est.c`).
//! - [`wire`] — parsing and in-place rewriting with incremental checksums.
//! - `xmit` (private) — one function per forwarding method (`ip_vs_xmit.c`).
//! - `synproxy` (private) — the SYN proxy's cookies (Linux `syncookies.c`); the proxy itself
//!   is the director's (Alibaba LVS `ip_vs_synproxy.c`).
//! - [`sync`] — connection sync between directors: formats, the master's queue (`ip_vs_sync.c`).
//! - [`vrrp`] — director failover: keepalived's VRRP (RFC 5798 / RFC 3768) — advertisements,
//!   the state machine of each virtual router, sync groups and tracking.
//! - [`director`] — the [`Director`]: control API and packet path (`ip_vs_core.c`).
//! - [`config`] — `ipvsadm -S/-R` rules and `-L` listings, and the `/proc/net/ip_vs*` files
//!   (feature `ipvsadm`); keepalived.conf and ldirectord.cf read and set up on the director,
//!   the monitor and VRRP (features `keepalived`, `ldirectord`).
//! - [`health`] — health checking of real servers (keepalived's checkers, ldirectord, mon):
//!   check plans, rise/fall, remove or quiesce, sorry server, quorum, slow start, events and a
//!   status listing; the probes' I/O is the caller's.
//! - [`error`] — control-plane [`Error`]s and data-plane drop [`Reason`]s.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(fuzzing), warn(missing_docs))]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod addr;

#[cfg(feature = "ipvsadm")]
pub mod config;
pub mod conn;
pub mod dest;
pub mod director;
pub mod error;
pub mod health;
pub mod laddr;
pub mod neigh;
pub mod persist;
pub mod proto;
pub mod sched;
pub mod service;
pub mod stats;
pub mod sync;
pub(crate) mod synproxy;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod time;
pub mod vrrp;
pub mod wire;
pub(crate) mod xmit;

pub use addr::{Af, Endpoint, Proto, ServiceKey};
pub use dest::{DestId, DestView, FwdMethod, RealServer, TunConfig, TunCsum, TunType};
pub use director::{
    BatchError, Command, Defense, DefenseMode, DefenseStatus, Director, DirectorConfig, PortConfig, Prefetch, Verdict,
};
pub use error::{Error, Reason};
pub use neigh::{MacAddr, Neighbour};
pub use proto::Timeouts;
pub use sched::{SchedCx, SchedError, SchedFactory, Scheduler};
pub use service::{SchedFlags, ServiceConfig, ServiceView};
pub use time::Instant;
pub use wire::{Frame, PacketMeta};
