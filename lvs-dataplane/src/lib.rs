//! Moving frames between the world and an lvs [`Director`](lvs_core::Director).
//!
//! - [`io`] — the [`PacketIo`](io::PacketIo) trait: batched, non-blocking frames with headroom.
//! - [`afpacket`] — raw AF_PACKET sockets with TPACKET_V3 rings and fanout (Linux).
//! - [`tap`] — TAP devices (Linux).
//! - [`replay`] — captures as a packet source, and a pcap-writing middleware.
//! - [`runtime`] — the loop that drives a director over backends, one shard per core.
//! - [`pcap`] — read pcap / pcapng captures, write pcap.
//! - [`case`] — run a recorded case folder in the format of the kernel traces.
//! - [`netns`] — network namespaces for tests and labs.
//!
//! `unsafe` lives only in the private `sys` module, each block with a `// SAFETY:` line.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(all(feature = "afpacket", target_os = "linux"))]
pub mod afpacket;
#[cfg(feature = "pcap")]
pub mod case;
pub mod io;
#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(feature = "pcap")]
pub mod pcap;
#[cfg(feature = "pcap")]
pub mod replay;
pub mod runtime;
mod sys;
#[cfg(all(feature = "tap", target_os = "linux"))]
pub mod tap;
