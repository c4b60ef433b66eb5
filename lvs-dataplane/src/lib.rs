//! Moving frames between the world and an lvs [`Director`](lvs_core::Director).
//!
//! - [`io`] — the [`PacketIo`](io::PacketIo) trait: batched, non-blocking frames with headroom.
//! - [`afpacket`] — raw AF_PACKET sockets with TPACKET_V2 rings and fanout (Linux).
//! - [`afxdp`] — AF_XDP sockets behind an XDP program that redirects only the director's
//!   frames and passes the rest to the kernel (Linux).
//! - [`filter`] — what a port must receive for a director, as classic BPF or XDP map entries.
//! - [`tap`] — TAP devices (Linux).
//! - [`replay`] — captures as a packet source, and a pcap-writing middleware.
//! - [`runtime`] — the loop that drives a director over backends, one shard per core.
//! - [`handoff`] — the inboxes through which shards that take one receive queue each hand a
//!   frame to the shard that owns it.
//! - [`steer`] — which shard a frame goes to when shards share a port: a fanout program that
//!   keeps NAT replies, and optionally each client, on the shard that owns them.
//! - [`pcap`] — read pcap / pcapng captures, write pcap.
//! - [`prefetch`] — the processor's prefetch instruction, as the hook a director's bursts take.
//! - [`neigh`] — real servers' and gateways' MACs from the kernel's routes and neighbour
//!   table, resolved by the kernel when it lacks them (Linux).
//! - [`netns`] — enter a network namespace before opening ports (Linux).
//! - [`sync`] — the sync daemons' multicast sockets, driven with the director (Linux).
//! - [`vrrp`] — VRRP's raw sockets, announcements and address hooks around a sans-IO group
//!   of virtual routers (Linux).
//! - [`health`] — the health checks' prober and the checker that drives a monitor with it
//!   (Linux).
//! - [`metrics`] — a small HTTP endpoint answering `GET /metrics` with the Prometheus
//!   exposition, bounded against slow and hostile clients (Linux).
//!
//! Logs go through the [`log`](https://docs.rs/log) facade: port errors, health and VRRP
//! transitions, sync daemons and their peers, configuration applied; nothing per packet.
//!
//! Test and lab tooling — the runner for recorded kernel cases and the namespace builders — is
//! not part of this crate; it lives with the facade's examples (`examples/common/`).
//!
//! `unsafe` lives only in the private `sys` module, each block with a `// SAFETY:` line.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(all(feature = "afpacket", target_os = "linux"))]
pub mod afpacket;
#[cfg(all(feature = "afxdp", target_os = "linux"))]
pub mod afxdp;
mod bpf;
pub mod filter;
pub mod handoff;
#[cfg(target_os = "linux")]
pub mod health;
pub mod io;
#[cfg(target_os = "linux")]
pub mod metrics;
#[cfg(target_os = "linux")]
pub mod neigh;
#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(feature = "pcap")]
pub mod pcap;
pub mod prefetch;
#[cfg(feature = "pcap")]
pub mod replay;
pub mod runtime;
pub mod steer;
#[cfg(target_os = "linux")]
pub mod sync;
mod sys;
#[cfg(all(feature = "tap", target_os = "linux"))]
pub mod tap;
#[cfg(target_os = "linux")]
pub mod vrrp;
