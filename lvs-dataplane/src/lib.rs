//! Moving frames between the world and an lvs [`Director`](lvs_core::Director): capture files,
//! and the runner for recorded cases in the format of the kernel traces.
//!
//! - [`pcap`] — read pcap / pcapng captures, write pcap (feature `pcap`).
//! - [`case`] — run a recorded case folder (topology, ipvsadm steps, input captures) through a
//!   director and write what it transmitted and reported, in the case's own file formats.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "pcap")]
pub mod case;
#[cfg(feature = "pcap")]
pub mod pcap;
