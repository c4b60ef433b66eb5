//! Which virtual addresses a director should announce to its routers, for directors that
//! scale out behind ECMP routing (Maglev, Katran, DPVS with OSPF or BGP): a VIP is announced
//! while the director is up — not leaving — and every checked service on it holds its quorum,
//! and withdrawn otherwise, so that the routers stop sending it flows it cannot serve. The
//! routing protocol itself is an existing daemon's (FRR, BIRD), told of each [`Change`] by the
//! application; this room only decides, as keepalived's `quorum_up`/`quorum_down` scripts let
//! an operator do by hand.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::net::IpAddr;

use crate::addr::ServiceKey;
use crate::director::Director;
use crate::health::Monitor;

/// A change of what the director announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Start announcing the route to this VIP.
    Announce(IpAddr),
    /// Stop announcing it.
    Withdraw(IpAddr),
}

/// What a director announces, changed by [`Announcer::update`].
#[derive(Clone, Debug, Default)]
pub struct Announcer {
    leaving: bool,
    announced: BTreeSet<IpAddr>,
}

impl Announcer {
    /// Nothing announced yet, not leaving.
    pub fn new() -> Self {
        Announcer::default()
    }

    /// The director is about to stop (a graceful leave): from the next [`Announcer::update`]
    /// on, every VIP is withdrawn, while the director keeps forwarding what still comes.
    pub fn leave(&mut self) {
        self.leaving = true;
    }

    /// Whether [`Announcer::leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// The VIPs announced now, in address order.
    pub fn announced(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.announced.iter().copied()
    }

    /// Brings the announcements in line with the director's services and the monitor's
    /// quorums, and returns what changed (withdrawals first, then announcements, each in
    /// address order). A VIP is every address a service listens on (firewall-mark services
    /// have none); it is wanted unless the director is leaving or one of its services is
    /// checked by `monitor` and has lost its quorum. A service the monitor does not check
    /// counts as holding one.
    pub fn update(&mut self, d: &Director, monitor: Option<&Monitor>) -> Vec<Change> {
        let mut vips = BTreeSet::new();
        let mut failing = BTreeSet::new();
        for s in d.services() {
            let ServiceKey::Inet { addr, .. } = s.config.key else { continue };
            vips.insert(addr);
            let lost = monitor.and_then(|m| m.service(&s.config.key)).is_some_and(|st| !st.quorum_up());
            if lost {
                failing.insert(addr);
            }
        }
        let wanted: BTreeSet<IpAddr> =
            if self.leaving { BTreeSet::new() } else { vips.difference(&failing).copied().collect() };
        let mut changes: Vec<Change> = self.announced.difference(&wanted).map(|a| Change::Withdraw(*a)).collect();
        changes.extend(wanted.difference(&self.announced).map(|a| Change::Announce(*a)));
        self.announced = wanted;
        changes
    }

    /// The announced routes as host prefixes, one a line (`203.0.113.100/32`,
    /// `2001:db8::1/128`), for a file a routing daemon reads.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for a in &self.announced {
            let len = if a.is_ipv4() { 32 } else { 128 };
            let _ = writeln!(out, "{a}/{len}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use core::time::Duration;

    use super::*;
    use crate::addr::Proto;
    use crate::dest::{FwdMethod, RealServer};
    use crate::director::DirectorConfig;
    use crate::health::{Check, CheckPlan, CheckedServer, Detail, Outcome, ServicePolicy, TcpCheck};
    use crate::service::ServiceConfig;
    use crate::testkit;
    use crate::time::Instant;

    const VIP: [u8; 4] = [203, 0, 113, 100];
    const VIP2: [u8; 4] = [203, 0, 113, 101];

    fn key(vip: [u8; 4], port: u16) -> ServiceKey {
        ServiceKey::Inet { proto: Proto::Tcp, addr: IpAddr::from(vip), port }
    }

    fn ip(vip: [u8; 4]) -> IpAddr {
        IpAddr::from(vip)
    }

    /// A director with services on two VIPs (two ports on the first) and a fwmark service; the
    /// monitor checks `VIP:80` (one server, fall 1) and `VIP2:80` (one server, fall 1).
    fn setup(now: Instant) -> (Director, Monitor) {
        let mut d = Director::new(DirectorConfig::default(), testkit::factory);
        let mut m = Monitor::new(1);
        let plan = CheckPlan::new(Check::Tcp(TcpCheck))
            .with_interval(Duration::from_secs(1))
            .with_rise_fall(1, 1)
            .with_fast_down_inter(None, None)
            .with_warmup(Duration::ZERO);
        for k in [key(VIP, 80), key(VIP, 443), key(VIP2, 80), ServiceKey::Fwmark { mark: 1, af: crate::addr::Af::V4 }] {
            d.add_service(ServiceConfig::new(k, "first")).unwrap();
        }
        for (k, rip) in [(key(VIP, 80), [192, 0, 2, 11]), (key(VIP2, 80), [192, 0, 2, 12])] {
            let rs = RealServer::new(IpAddr::from(rip), 80, FwdMethod::Route, 1);
            m.add_service(&mut d, now, k, ServicePolicy::default(), [CheckedServer::new(rs, vec![plan.clone()])])
                .unwrap();
        }
        (d, m)
    }

    /// Answers every probe due by `until`: VIP2's server passes, VIP's passes when `up`.
    fn run(d: &mut Director, m: &mut Monitor, until: Instant, up: bool) {
        while let Some(t) = m.next_deadline().filter(|t| *t <= until) {
            m.tick(d, t);
            while let Some(p) = m.poll(t) {
                let first = m.server(p.server).is_some_and(|s| s.service() == key(VIP, 80));
                let o = if up || !first { Outcome::up(Detail::Passed) } else { Outcome::down(Detail::Refused) };
                m.report(d, t, p.id, o).unwrap();
            }
        }
    }

    #[test]
    fn a_vip_follows_the_quorum_of_every_service_on_it() {
        let t0 = Instant::from_secs(10);
        let (mut d, mut m) = setup(t0);
        let mut a = Announcer::new();
        assert_eq!(a.update(&d, Some(&m)), [Change::Announce(ip(VIP)), Change::Announce(ip(VIP2))]);
        assert_eq!(a.update(&d, Some(&m)), []);
        // VIP:80's only server fails: its quorum (1) is lost, and VIP goes though VIP:443 has
        // no checks.
        run(&mut d, &mut m, Instant::from_secs(12), false);
        assert!(!m.service(&key(VIP, 80)).unwrap().quorum_up());
        assert_eq!(a.update(&d, Some(&m)), [Change::Withdraw(ip(VIP))]);
        assert_eq!(a.render(), "203.0.113.101/32\n");
        run(&mut d, &mut m, Instant::from_secs(14), true);
        assert_eq!(a.update(&d, Some(&m)), [Change::Announce(ip(VIP))]);
        assert_eq!(a.announced().collect::<Vec<_>>(), [ip(VIP), ip(VIP2)]);
    }

    #[test]
    fn leaving_withdraws_everything_and_no_monitor_means_quorum() {
        let (mut d, _) = setup(Instant::from_secs(10));
        let mut a = Announcer::new();
        assert_eq!(a.update(&d, None), [Change::Announce(ip(VIP)), Change::Announce(ip(VIP2))]);
        d.del_service(&key(VIP2, 80)).unwrap();
        assert_eq!(a.update(&d, None), [Change::Withdraw(ip(VIP2))]);
        a.leave();
        assert!(a.is_leaving());
        assert_eq!(a.update(&d, None), [Change::Withdraw(ip(VIP))]);
        assert_eq!(a.render(), "");
        d.add_service(ServiceConfig::new(key(VIP2, 80), "first")).unwrap();
        assert_eq!(a.update(&d, None), []);
    }
}
