//! Health checking of real servers, as keepalived's checkers, ldirectord and mon do it, sans-IO.
//!
//! - [`check`] — [`Check`], one variant per kind, and the prober's uniform face
//!   ([`Transport`], [`Exchange`]); one file per kind: [`tcp`], [`http`] (with `md5` for
//!   `digest`), [`udp`], [`dns`], [`smtp`], [`icmp`], [`misc`].
//! - [`outcome`] — what a probe found.

pub mod check;
pub mod dns;
pub mod http;
pub mod icmp;
mod md5;
pub mod misc;
pub mod outcome;
pub mod smtp;
pub mod tcp;
pub mod udp;

pub use check::{Check, Exchange, Transport};
pub use dns::DnsCheck;
pub use http::HttpCheck;
pub use icmp::PingCheck;
pub use misc::{Exit, MiscCheck};
pub use outcome::{Detail, Outcome, Step};
pub use smtp::SmtpCheck;
pub use tcp::TcpCheck;
pub use udp::UdpCheck;
