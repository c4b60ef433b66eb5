//! What ldirectord.cf says, typed: each virtual service with its real servers and fallback,
//! and how its servers are checked, global settings already folded in.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::addr::ServiceKey;
use crate::config::source::{Files, Origin};
use crate::dest::RealServer;
use crate::health::CheckPlan;
use crate::service::{SchedFlags, ServiceConfig};

/// A whole ldirectord configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ldirectord {
    /// The file read ([`Origin::file`] 0).
    pub files: Files,
    /// `virtual=` / `virtual6=` sections, in order.
    pub virtuals: Vec<Virtual>,
}

/// `checktype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckType {
    /// A TCP connect (an ICMP echo for UDP services, as ldirectord does).
    Connect,
    /// The service's own exchange (`service`).
    Negotiate,
    /// `N`: ldirectord negotiates every Nth check and connects in between; here every check
    /// negotiates.
    Combined(u32),
    /// An ICMP echo.
    Ping,
    /// `checkcommand VIP VPORT RIP RPORT`.
    External,
    /// `external-perl`: the command is run as `external`.
    ExternalPerl,
    /// No checks; the real servers are always in service.
    On,
    /// No checks; neither the real servers nor the fallback are ever put in.
    Off,
}

/// One virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Virtual {
    /// The `virtual=` line.
    pub origin: Origin,
    /// The service.
    pub key: ServiceKey,
    /// `scheduler` (default `wrr`).
    pub scheduler: String,
    /// `persistent` seconds.
    pub persistent: Option<u32>,
    /// `netmask` as a prefix length.
    pub netmask: Option<u8>,
    /// `ops = yes`.
    pub one_packet: bool,
    /// `schedflags` (`-b`).
    pub sched_flags: SchedFlags,
    /// `real=` servers, ranges expanded, ports as ldirectord sets them (the virtual port
    /// unless forwarding by NAT).
    pub reals: Vec<Real>,
    /// `fallback` (the section's, else the global one of the family): put in when no real
    /// server is.
    pub fallback: Option<RealServer>,
    /// `quiescent` (default yes): a failed server stays in with weight 0.
    pub quiescent: bool,
    /// `checktype` (default negotiate).
    pub checktype: CheckType,
    /// `service` (default from the port).
    pub service: String,
    /// `checkport`.
    pub checkport: Option<u16>,
    /// `request` (default `/`).
    pub request: String,
    /// `receive`.
    pub receive: String,
    /// `virtualhost`.
    pub virtualhost: Option<String>,
    /// `checkcommand` (default `/bin/true`).
    pub checkcommand: String,
    /// `checkinterval` (default 10 s).
    pub checkinterval: Duration,
    /// The timeout of a connect, ping or external check: `checktimeout`, else
    /// `negotiatetimeout`, else 5 s.
    pub checktimeout: Duration,
    /// The timeout of a negotiate check: `negotiatetimeout`, else `checktimeout`, else 30 s.
    pub negotiatetimeout: Duration,
    /// `failurecount` (default 1).
    pub failurecount: u32,
    /// `checkcount` (default 1; ping checks only).
    pub checkcount: u32,
    /// `fallbackcommand`: run by the application with `start` / `stop` when the monitor
    /// reports the fallback going in / out.
    pub fallbackcommand: Option<String>,
    /// `servicename`.
    pub servicename: Option<String>,
    /// `comment`.
    pub comment: Option<String>,
}

impl Virtual {
    /// Its `ipvsadm -A`.
    pub fn service_config(&self) -> ServiceConfig {
        let mut s = ServiceConfig::new(self.key, &self.scheduler);
        s.persistent = self.persistent;
        if let Some(p) = self.netmask {
            s = s.netmask(p);
        }
        s.one_packet = self.one_packet;
        s.sched_flags = self.sched_flags;
        s
    }
}

/// One real server of a virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Real {
    /// Its `real=` line.
    pub origin: Origin,
    /// Address, port, method, weight, thresholds.
    pub server: RealServer,
    /// Its own `"request", "receive"` pair, overriding the section's.
    pub request: Option<(String, String)>,
    /// How it is checked; `None`: always in service (`checktype = on`, `service = none`), or
    /// never (`checktype = off`).
    pub check: Option<CheckPlan>,
}
