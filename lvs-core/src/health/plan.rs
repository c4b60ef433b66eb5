//! How a server is checked and how its service reacts: [`CheckPlan`] (what to probe, where
//! from and to, how often, rise and fall) and [`ServicePolicy`] (remove or quiesce, sorry
//! server, quorum, alpha and omega, slow start, passive detection), with the settings of
//! keepalived, ldirectord and HAProxy each mapped onto one field.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;

use super::check::Check;
use super::rules::{Health, Streak};
use crate::addr::Endpoint;
use crate::dest::RealServer;

/// How one real server is checked.
///
/// | field | keepalived | ldirectord | HAProxy |
/// |---|---|---|---|
/// | `interval` | `delay_loop` | `checkinterval` | `inter` |
/// | `timeout` | `connect_timeout`, `misc_timeout` | `checktimeout` | `timeout check` |
/// | `rise` | 1 | 1 | `rise` |
/// | `fall` | `retry` + 1 | `failurecount` | `fall` |
/// | `fastinter` | `delay_before_retry` | — | `fastinter` |
/// | `downinter` | — | — | `downinter` |
/// | `warmup` | `warmup` | — | `spread-checks` |
/// | `connect_ip`, `connect_port`, `bindto`, `bind_port` | the same | — | `addr`, `port`, `source` |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckPlan {
    /// What to probe.
    pub check: Arc<Check>,
    /// Address to probe instead of the real server's (`connect_ip`).
    pub connect_ip: Option<IpAddr>,
    /// Port to probe instead of the real server's (`connect_port`).
    pub connect_port: Option<u16>,
    /// Source address of the probe (`bindto`).
    pub bindto: Option<IpAddr>,
    /// Source port of the probe (`bind_port`).
    pub bind_port: Option<u16>,
    /// Time between checks of a server in a steady state.
    pub interval: Duration,
    /// How long a probe may take; the core fails it then.
    pub timeout: Duration,
    /// Consecutive passes that bring a down server up (at least 1).
    pub rise: u32,
    /// Consecutive failures that bring an up server down (at least 1).
    pub fall: u32,
    /// Time between checks while a server is on its way up or down (a pass while down, a
    /// failure while up); `interval` when unset.
    pub fastinter: Option<Duration>,
    /// Time between checks of a server that is down; `interval` when unset.
    pub downinter: Option<Duration>,
    /// The first check comes at a random time up to this long after the server is added, so
    /// that many servers are not checked at once; keepalived's default is `interval`, taken
    /// when this is `None`.
    pub warmup: Option<Duration>,
    /// The check starts failing, so its server is out until it passes `rise` times
    /// (keepalived's `alpha`, which a checker may give for itself); `None`: the service's
    /// [`ServicePolicy::alpha`].
    pub alpha: Option<bool>,
}

impl CheckPlan {
    /// A plan for `check` with keepalived's defaults: every 60 s, a 5 s timeout, up at the first
    /// pass, down at the second failure in a row (`retry 1`) retried after 1 s — 3 s for HTTP;
    /// for DNS 3 retries at the interval (`retry 3`); for MISC no retry (`retry 0`).
    pub fn new(check: Check) -> Self {
        let (retry, delay_before_retry) = match &check {
            Check::Http(_) => (1, Some(Duration::from_secs(3))),
            Check::Dns(_) => (3, None),
            Check::Misc(_) => (0, Some(Duration::from_secs(1))),
            _ => (1, Some(Duration::from_secs(1))),
        };
        CheckPlan {
            check: Arc::new(check),
            connect_ip: None,
            connect_port: None,
            bindto: None,
            bind_port: None,
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            rise: 1,
            fall: retry + 1,
            fastinter: delay_before_retry,
            downinter: None,
            warmup: None,
            alpha: None,
        }
    }

    /// The same plan checking every `interval`.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The same plan with probes timing out after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same plan with HAProxy's `rise` and `fall`.
    pub fn with_rise_fall(mut self, rise: u32, fall: u32) -> Self {
        self.rise = rise;
        self.fall = fall;
        self
    }

    /// The same plan with keepalived's `retry` and `delay_before_retry`: down after `retry + 1`
    /// failures in a row, checked again `delay` after each failure.
    pub fn with_retry(mut self, retry: u32, delay: Duration) -> Self {
        self.fall = retry.saturating_add(1);
        self.fastinter = Some(delay);
        self
    }

    /// The same plan with HAProxy's `fastinter` and `downinter`.
    pub fn with_fast_down_inter(mut self, fastinter: Option<Duration>, downinter: Option<Duration>) -> Self {
        self.fastinter = fastinter;
        self.downinter = downinter;
        self
    }

    /// The same plan spreading the first check over `warmup` (zero: check at once).
    pub fn with_warmup(mut self, warmup: Duration) -> Self {
        self.warmup = Some(warmup);
        self
    }

    /// The same plan probing `addr` (and `port`, if given) instead of the real server.
    pub fn with_connect(mut self, addr: Option<IpAddr>, port: Option<u16>) -> Self {
        self.connect_ip = addr;
        self.connect_port = port;
        self
    }

    /// The same plan probing from `addr` (and `port`, if given).
    pub fn with_bind(mut self, addr: Option<IpAddr>, port: Option<u16>) -> Self {
        self.bindto = addr;
        self.bind_port = port;
        self
    }

    /// The same plan starting failing (`true`) or passing (`false`) whatever the service's
    /// `alpha`.
    pub fn with_alpha(mut self, alpha: bool) -> Self {
        self.alpha = Some(alpha);
        self
    }

    /// How the status listing and the events name this check: its kind and what it asks
    /// for ([`Check::describe`]), and where it connects when not to the server itself.
    pub fn label(&self) -> String {
        let mut s = self.check.describe();
        match (self.connect_ip, self.connect_port) {
            (Some(a), Some(p)) => s.push_str(&alloc::format!(" to {}", Endpoint::new(a, p))),
            (Some(a), None) => s.push_str(&alloc::format!(" to {a}")),
            (None, Some(p)) => s.push_str(&alloc::format!(" to port {p}")),
            (None, None) => {}
        }
        s
    }

    /// Why the plan cannot be used, if it cannot: zero rise, fall, interval or timeout, or a
    /// check that does not validate.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.rise == 0 || self.fall == 0 {
            return Err("rise and fall must be at least 1");
        }
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err("interval and timeout must be non-zero");
        }
        if [self.fastinter, self.downinter].into_iter().flatten().any(|d| d.is_zero()) {
            return Err("fastinter and downinter must be non-zero");
        }
        self.check.validate()
    }

    /// Where the probe of `server` goes.
    pub fn target(&self, server: &RealServer) -> Endpoint {
        Endpoint::new(
            self.connect_ip.unwrap_or(server.endpoint.addr),
            self.connect_port.unwrap_or(server.endpoint.port),
        )
    }

    /// The time to the next check after a result: `fastinter` while the streak runs against
    /// the health, `downinter` while down, `interval` otherwise.
    pub(crate) fn next_interval(&self, health: Health, streak: Streak) -> Duration {
        let changing = match health {
            Health::Up => streak.failures > 0,
            Health::Down => streak.passes > 0,
        };
        match (changing, health) {
            (true, _) => self.fastinter.unwrap_or(self.interval),
            (false, Health::Down) => self.downinter.unwrap_or(self.interval),
            (false, Health::Up) => self.interval,
        }
    }

    /// The longest the first check may wait.
    pub(crate) fn warmup(&self) -> Duration {
        self.warmup.unwrap_or(self.interval)
    }
}

/// The most checks one server may have.
pub const MAX_CHECKS: usize = 64;

/// A real server with every check it must pass: it is in service only while all of them
/// pass (keepalived counts a server's failed checkers, `num_failed_checkers` in
/// `ipwrapper.c`, and takes it out at the first), each check with its own rise and fall,
/// timers and probes. Its own `inhibit_on_failure` overrides the service's, as keepalived
/// allows at `real_server` level.
///
/// A `(RealServer, CheckPlan)` pair is a server with one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedServer {
    /// The server as it goes in the table (the weight is its full weight).
    pub server: RealServer,
    /// Its checks, at least one.
    pub checks: Vec<CheckPlan>,
    /// Stays in the table with weight 0 while down; `None`: the service's
    /// [`ServicePolicy::inhibit_on_failure`].
    pub inhibit_on_failure: Option<bool>,
}

impl CheckedServer {
    /// `server` checked by every plan of `checks`.
    pub fn new(server: RealServer, checks: Vec<CheckPlan>) -> Self {
        CheckedServer { server, checks, inhibit_on_failure: None }
    }

    /// The same server with its own `inhibit_on_failure`.
    pub fn with_inhibit_on_failure(mut self, inhibit: bool) -> Self {
        self.inhibit_on_failure = Some(inhibit);
        self
    }

    /// Why it cannot be checked, if it cannot: no check, more than [`MAX_CHECKS`], or a plan
    /// that does not validate.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.checks.is_empty() {
            return Err("a checked server needs at least one check");
        }
        if self.checks.len() > MAX_CHECKS {
            return Err("more than 64 checks on one server");
        }
        self.checks.iter().try_for_each(CheckPlan::validate)
    }
}

impl From<(RealServer, CheckPlan)> for CheckedServer {
    fn from((server, plan): (RealServer, CheckPlan)) -> Self {
        CheckedServer::new(server, alloc::vec![plan])
    }
}

/// Passive detection (beyond keepalived and ldirectord): what the data path sees of a server —
/// a reset in answer to a SYN, SYNs left unanswered — brings its next check forward. Off by
/// default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passive {
    /// Suspicions are heeded.
    pub enabled: bool,
    /// Unanswered SYNs, counted since the server's last check result, that make it suspect.
    pub unanswered_syns: u32,
    /// The least time between the start of two checks of a server that suspicion brings
    /// forward, so a storm of resets cannot turn into a storm of probes.
    pub min_gap: Duration,
}

impl Default for Passive {
    fn default() -> Self {
        Passive { enabled: false, unanswered_syns: 3, min_gap: Duration::from_secs(1) }
    }
}

/// How a virtual service reacts to its servers' health.
///
/// | field | keepalived | ldirectord | HAProxy |
/// |---|---|---|---|
/// | `inhibit_on_failure` | `inhibit_on_failure` | `quiescent = yes` | — |
/// | `sorry_server` | `sorry_server` | `fallback` | `backup` server |
/// | `sorry_server_inhibit` | `sorry_server_inhibit` | — | — |
/// | `quorum`, `hysteresis` | the same | — | — |
/// | `alpha`, `omega` | the same | — | — |
/// | `slow_start` | — | — | `slowstart` |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePolicy {
    /// A down server stays in the table with weight 0, so its connections drain, instead of
    /// being removed (keepalived removes by default).
    pub inhibit_on_failure: bool,
    /// The server put in the table when the service loses its quorum (with the default quorum
    /// of 1: when no server is up), taken out when it regains it.
    pub sorry_server: Option<RealServer>,
    /// The sorry server, when not in use, stays in the table with weight 0 instead of being
    /// removed.
    pub sorry_server_inhibit: bool,
    /// The least sum of the weights of the servers in service for the service to have quorum.
    pub quorum: u32,
    /// How far above the quorum the live weight must rise to regain it, and below it fall to
    /// lose it.
    pub hysteresis: u32,
    /// Servers start down and need `rise` passes to come up; without it they start up.
    pub alpha: bool,
    /// When the service stops being checked, report its servers down and its quorum lost.
    pub omega: bool,
    /// A server coming up takes this long to ramp from weight 1 to its full weight (zero: at
    /// once).
    pub slow_start: Duration,
    /// Passive detection settings.
    pub passive: Passive,
}

impl Default for ServicePolicy {
    fn default() -> Self {
        ServicePolicy {
            inhibit_on_failure: false,
            sorry_server: None,
            sorry_server_inhibit: false,
            quorum: 1,
            hysteresis: 0,
            alpha: false,
            omega: false,
            slow_start: Duration::ZERO,
            passive: Passive::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{DnsCheck, HttpCheck, MiscCheck, TcpCheck};

    #[test]
    fn keepalived_defaults_per_kind() {
        let tcp = CheckPlan::new(Check::Tcp(TcpCheck));
        assert_eq!((tcp.rise, tcp.fall, tcp.fastinter), (1, 2, Some(Duration::from_secs(1))));
        assert_eq!(
            (tcp.interval, tcp.timeout, tcp.warmup()),
            (Duration::from_secs(60), Duration::from_secs(5), tcp.interval)
        );
        assert_eq!(CheckPlan::new(Check::Http(HttpCheck::get("/"))).fastinter, Some(Duration::from_secs(3)));
        let dns = CheckPlan::new(Check::Dns(DnsCheck::default()));
        assert_eq!((dns.fall, dns.fastinter), (4, None));
        assert_eq!(CheckPlan::new(Check::Misc(MiscCheck::new("/bin/true", &[]))).fall, 1);
        let p = tcp.with_retry(3, Duration::from_secs(2));
        assert_eq!((p.fall, p.fastinter), (4, Some(Duration::from_secs(2))));
    }

    #[test]
    fn intervals_follow_the_state() {
        let p = CheckPlan::new(Check::Tcp(TcpCheck))
            .with_interval(Duration::from_secs(10))
            .with_fast_down_inter(Some(Duration::from_secs(1)), Some(Duration::from_secs(30)));
        let s = |passes, failures| Streak { passes, failures };
        assert_eq!(p.next_interval(Health::Up, s(4, 0)), Duration::from_secs(10));
        assert_eq!(p.next_interval(Health::Up, s(0, 1)), Duration::from_secs(1));
        assert_eq!(p.next_interval(Health::Down, s(0, 7)), Duration::from_secs(30));
        assert_eq!(p.next_interval(Health::Down, s(1, 0)), Duration::from_secs(1));
        let plain = p.with_fast_down_inter(None, None);
        assert_eq!(plain.next_interval(Health::Down, s(1, 0)), Duration::from_secs(10));
    }

    #[test]
    fn validation_and_target() {
        let p = CheckPlan::new(Check::Tcp(TcpCheck));
        assert!(p.validate().is_ok());
        assert!(p.clone().with_rise_fall(0, 1).validate().is_err());
        assert!(p.clone().with_timeout(Duration::ZERO).validate().is_err());
        assert!(p.clone().with_fast_down_inter(Some(Duration::ZERO), None).validate().is_err());
        assert!(CheckPlan::new(Check::Http(HttpCheck::get("x"))).validate().is_err());
        let rs = RealServer::new(IpAddr::from([192, 0, 2, 11]), 80, crate::dest::FwdMethod::Route, 1);
        assert_eq!(p.target(&rs), rs.endpoint);
        let moved = p.with_connect(Some(IpAddr::from([192, 0, 2, 99])), Some(8080));
        assert_eq!(moved.target(&rs), Endpoint::new(IpAddr::from([192, 0, 2, 99]), 8080));
    }
}
