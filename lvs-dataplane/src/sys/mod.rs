//! The only place in the workspace with `unsafe`: system calls for raw sockets, the mmap'd
//! receive ring, AF_XDP sockets and their UMEM, TAP devices, network namespaces, the sync daemons' multicast sockets, VRRP's
//! raw IP sockets and interface addresses, the prefetch instruction, and the health prober's sockets and child processes,
//! each block a few lines with a `// SAFETY:` line.
//! Everything above this module is safe wrappers (smoltcp's `phy/sys`).
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub(crate) mod linux;
#[cfg(target_os = "linux")]
pub(crate) mod mcast;
#[cfg(target_os = "linux")]
pub(crate) mod netlink;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod prefetch;
#[cfg(target_os = "linux")]
pub(crate) mod probe;
#[cfg(target_os = "linux")]
pub(crate) mod rawip;
#[cfg(target_os = "linux")]
pub(crate) mod tun;
#[cfg(all(feature = "afxdp", target_os = "linux"))]
pub(crate) mod xsk;
