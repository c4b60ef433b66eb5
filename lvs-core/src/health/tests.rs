//! The monitor against a real director, one rule per test: rise and fall, timeouts, intervals,
//! remove or quiesce, alpha, sorry server, quorum with hysteresis, slow start, dynamic weights,
//! operator overrides, passive detection, removal with omega, drift in the table, the listing;
//! then property tests under simulated time with random outcomes and timings.

use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;

use super::*;
use crate::addr::{Endpoint, Proto, ServiceKey};
use crate::dest::{FwdMethod, RealServer};
use crate::director::{Director, DirectorConfig};
use crate::error::Error;
use crate::service::ServiceConfig;
use crate::testkit;
use crate::time::Instant;

fn key() -> ServiceKey {
    ServiceKey::Inet { proto: Proto::Tcp, addr: IpAddr::from([203, 0, 113, 100]), port: 80 }
}

fn rs(i: u8, weight: u32) -> RealServer {
    RealServer::new(IpAddr::from([192, 0, 2, 10 + i]), 80, FwdMethod::Route, weight)
}

fn sorry() -> RealServer {
    RealServer::new(IpAddr::from([192, 0, 2, 99]), 80, FwdMethod::Route, 1)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A TCP check every second, 500 ms timeout, rise 2, fall 3, no warmup, no fast intervals.
fn plan() -> CheckPlan {
    CheckPlan::new(Check::Tcp(TcpCheck))
        .with_interval(secs(1))
        .with_timeout(ms(500))
        .with_rise_fall(2, 3)
        .with_fast_down_inter(None, None)
        .with_warmup(Duration::ZERO)
}

/// The director's table for the service: `(endpoint, weight)` sorted by address.
fn table(d: &Director) -> Vec<(Endpoint, u32)> {
    let mut t: Vec<_> =
        d.service(&key()).map(|s| s.dests.dests().map(|v| (v.endpoint(), v.weight())).collect()).unwrap_or_default();
    t.sort_by_key(|(e, _)| e.addr);
    t
}

fn entry(d: &Director, r: &RealServer) -> Option<u32> {
    table(d).into_iter().find(|(e, _)| *e == r.endpoint).map(|(_, w)| w)
}

/// A director with the service, a monitor, and simulated time.
struct Lab {
    d: Director,
    m: Monitor,
    now: Instant,
    ids: Vec<ServerId>,
}

impl Lab {
    fn new(policy: ServicePolicy, servers: &[RealServer], plan: CheckPlan) -> Self {
        Lab::with_checks(policy, servers.iter().map(|r| CheckedServer::new(*r, alloc::vec![plan.clone()])).collect())
    }

    /// A lab whose servers have their own checks and settings.
    fn with_checks(policy: ServicePolicy, servers: Vec<CheckedServer>) -> Self {
        let mut d = Director::new(DirectorConfig::default(), testkit::factory);
        d.add_service(ServiceConfig::new(key(), "first")).unwrap();
        let mut m = Monitor::new(1);
        let now = Instant::from_secs(100);
        let ids = m.add_service(&mut d, now, key(), policy, servers).unwrap();
        Lab { d, m, now, ids }
    }

    /// Runs the loop up to `until`: at each deadline tick, then answer every due probe at once
    /// with `answer(server)` (`None`: never answer).
    fn run(&mut self, until: Instant, mut answer: impl FnMut(ServerId) -> Option<Outcome>) {
        self.run_checks(until, |s, _| answer(s));
    }

    /// [`Lab::run`] answering each probe by its server and check index.
    fn run_checks(&mut self, until: Instant, mut answer: impl FnMut(ServerId, u32) -> Option<Outcome>) {
        while let Some(t) = self.m.next_deadline().filter(|t| *t <= until) {
            self.now = t;
            self.m.tick(&mut self.d, t);
            while let Some(p) = self.m.poll(t) {
                if let Some(o) = answer(p.server, p.check_index) {
                    self.m.report(&mut self.d, t, p.id, o).unwrap();
                }
            }
        }
        self.now = until;
    }

    fn events(&mut self) -> Vec<Event> {
        core::iter::from_fn(|| self.m.poll_event()).collect()
    }

    fn state(&self, i: usize) -> State {
        self.m.server(self.ids[i]).unwrap().state()
    }
}

fn pass(_: ServerId) -> Option<Outcome> {
    Some(Outcome::up(Detail::Passed))
}

fn refuse(_: ServerId) -> Option<Outcome> {
    Some(Outcome::down(Detail::Refused))
}

#[test]
fn down_after_fall_failures_removed_as_keepalived_does() {
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 5), rs(2, 1)], plan());
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 5), (rs(2, 1).endpoint, 1)]);
    let bad = lab.ids[0];
    let answer = |s: ServerId| if s == bad { refuse(s) } else { pass(s) };
    // Checks at 100, 101, 102: the third failure takes it down.
    lab.run(Instant::from_secs(101), answer);
    assert_eq!(lab.state(0), State::Up);
    assert_eq!(lab.m.server(bad).unwrap().checks().next().unwrap().streak().failures, 2);
    lab.run(Instant::from_secs(102), answer);
    assert_eq!(lab.state(0), State::Down);
    assert_eq!(table(&lab.d), [(rs(2, 1).endpoint, 1)]);
    let ev = lab.events();
    assert_eq!(
        ev,
        [Event::ServerDown {
            server: bad,
            service: key(),
            endpoint: rs(1, 5).endpoint,
            reason: Detail::Refused,
            check: None
        }]
    );
    assert_eq!(
        alloc::format!("{}", ev[0]),
        "TCP 203.0.113.100:80: real server 192.0.2.11:80 down (connection refused)"
    );
}

#[test]
fn up_after_rise_passes_at_the_configured_weight() {
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 5)], plan());
    lab.run(Instant::from_secs(102), refuse);
    assert_eq!(table(&lab.d), []);
    lab.events();
    lab.run(Instant::from_secs(103), pass);
    assert_eq!((lab.state(0), table(&lab.d)), (State::Down, alloc::vec![]), "one pass of rise 2");
    lab.run(Instant::from_secs(104), pass);
    assert_eq!(lab.state(0), State::Up);
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 5)]);
    assert!(matches!(lab.events()[..], [Event::ServerUp { reason: Detail::Passed, .. }, Event::QuorumGained { .. }]));
}

#[test]
fn inhibit_on_failure_quiesces_instead_of_removing() {
    let policy = ServicePolicy { inhibit_on_failure: true, ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 5)], plan());
    lab.run(Instant::from_secs(102), refuse);
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 0)]);
    lab.run(Instant::from_secs(104), pass);
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 5)]);
}

#[test]
fn alpha_starts_down_until_rise_passes() {
    let policy = ServicePolicy { alpha: true, ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 5)], plan());
    assert_eq!((lab.state(0), table(&lab.d)), (State::Down, alloc::vec![]));
    lab.run(Instant::from_secs(100), pass);
    assert_eq!(lab.state(0), State::Down);
    lab.run(Instant::from_secs(101), pass);
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 5)]);
}

#[test]
fn a_probe_that_never_answers_fails_at_its_deadline() {
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 5)], plan());
    let p = lab.m.poll(lab.now).unwrap();
    assert_eq!(p.deadline, lab.now + ms(500));
    assert_eq!(lab.m.next_deadline(), Some(p.deadline));
    assert!(lab.m.poll(lab.now).is_none(), "one probe in flight per server");
    lab.m.tick(&mut lab.d, p.deadline);
    let s = lab.m.server(lab.ids[0]).unwrap();
    assert_eq!(s.last_result(), Some((p.deadline, &Detail::Timeout)));
    assert_eq!(s.checks().next().unwrap().streak().failures, 1);
    // Its result, coming later, is stale.
    assert_eq!(
        lab.m.report(&mut lab.d, p.deadline + ms(1), p.id, Outcome::up(Detail::Passed)),
        Err(HealthError::UnknownProbe)
    );
    // The next check is an interval after the timeout.
    assert_eq!(lab.m.next_deadline(), Some(p.deadline + secs(1)));
}

#[test]
fn a_result_after_the_deadline_counts_as_the_timeout() {
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 5)], plan());
    let p = lab.m.poll(lab.now).unwrap();
    lab.m.report(&mut lab.d, p.deadline + ms(1), p.id, Outcome::up(Detail::Passed)).unwrap();
    assert_eq!(lab.m.server(lab.ids[0]).unwrap().last_result().unwrap().1, &Detail::Timeout);
}

#[test]
fn silence_passes_a_udp_check_without_required_reply() {
    let udp = plan().with_interval(secs(1));
    let udp = CheckPlan { check: alloc::sync::Arc::new(Check::Udp(UdpCheck::new(b"hello"))), ..udp };
    let policy = ServicePolicy { alpha: true, ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 1)], udp);
    lab.run(Instant::from_secs(102), |_| None);
    assert_eq!(lab.state(0), State::Up);
    assert_eq!(lab.m.server(lab.ids[0]).unwrap().last_result().unwrap().1, &Detail::Silence);
}

#[test]
fn fastinter_while_changing_downinter_while_down() {
    let p = plan().with_fast_down_inter(Some(ms(200)), Some(secs(5)));
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 1)], p);
    let mut answers = [false, false, false, false, true, true, true].into_iter();
    lab.run(Instant::from_secs(100) + ms(11_600), |_| {
        let up = answers.next()?;
        Some(if up { Outcome::up(Detail::Passed) } else { Outcome::down(Detail::Refused) })
    });
    // Failures at 100 (then fast), 100.2 (fast), 100.4 → down (then downinter 5 s), 105.4
    // (down, 5 s), 110.4 pass (fast), 110.6 pass → up, 111.6 at the interval.
    let s = lab.m.server(lab.ids[0]).unwrap();
    assert_eq!(s.state(), State::Up);
    assert_eq!(s.since(), Instant::from_secs(100) + ms(10_600));
    assert_eq!(s.last_result().unwrap().0, Instant::from_secs(100) + ms(11_600));
}

#[test]
fn warmup_spreads_first_checks_by_seed() {
    let p = plan().with_warmup(secs(10));
    let servers: Vec<RealServer> = (1..=20).map(|i| rs(i, 1)).collect();
    let first = |seed| {
        let mut d = Director::new(DirectorConfig::default(), testkit::factory);
        d.add_service(ServiceConfig::new(key(), "first")).unwrap();
        let mut m = Monitor::new(seed);
        m.add_service(&mut d, Instant::ZERO, key(), ServicePolicy::default(), servers.iter().map(|r| (*r, p.clone())))
            .unwrap();
        let mut t = Vec::new();
        while let Some(at) = m.next_deadline() {
            if at > Instant::from_secs(10) {
                break;
            }
            m.tick(&mut d, at);
            while m.poll(at).is_some() {
                t.push(at);
            }
            if t.len() == servers.len() {
                break;
            }
        }
        t
    };
    let a = first(1);
    assert_eq!(a.len(), 20);
    assert!(a.iter().all(|t| *t <= Instant::from_secs(10)));
    assert!(a.windows(2).filter(|w| w[0] != w[1]).count() > 10, "spread: {a:?}");
    assert_eq!(first(1), a, "deterministic by seed");
    assert_ne!(first(2), a);
}

#[test]
fn sorry_server_in_when_all_are_down_out_when_one_returns() {
    let policy = ServicePolicy { sorry_server: Some(sorry()), ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 1), rs(2, 1)], plan());
    assert_eq!(entry(&lab.d, &sorry()), None);
    let first = lab.ids[0];
    lab.run(Instant::from_secs(102), move |s| if s == first { refuse(s) } else { pass(s) });
    assert_eq!(entry(&lab.d, &sorry()), None, "one server is still up");
    lab.events();
    lab.run(Instant::from_secs(105), refuse);
    assert_eq!(table(&lab.d), [(sorry().endpoint, 1)]);
    let ev = lab.events();
    assert!(matches!(
        ev[..],
        [Event::ServerDown { .. }, Event::QuorumLost { live_weight: 0, threshold: 1, .. }, Event::SorryServerIn { .. }]
    ));
    lab.run(Instant::from_secs(107), move |s| if s == first { pass(s) } else { refuse(s) });
    assert_eq!(table(&lab.d), [(rs(1, 1).endpoint, 1)]);
    assert!(matches!(
        lab.events()[..],
        [Event::ServerUp { .. }, Event::QuorumGained { .. }, Event::SorryServerOut { .. }]
    ));
}

#[test]
fn sorry_server_inhibit_keeps_it_at_weight_zero() {
    let policy = ServicePolicy { sorry_server: Some(sorry()), sorry_server_inhibit: true, ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 1)], plan());
    assert_eq!(entry(&lab.d, &sorry()), Some(0));
    lab.run(Instant::from_secs(102), refuse);
    assert_eq!(table(&lab.d), [(sorry().endpoint, 1)]);
    lab.run(Instant::from_secs(104), pass);
    assert_eq!(table(&lab.d), [(rs(1, 1).endpoint, 1), (sorry().endpoint, 0)]);
}

#[test]
fn a_service_that_starts_without_quorum_starts_with_its_sorry_server() {
    let policy = ServicePolicy { sorry_server: Some(sorry()), alpha: true, ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 1)], plan());
    assert_eq!(table(&lab.d), [(sorry().endpoint, 1)]);
    assert!(matches!(lab.events()[..], [Event::SorryServerIn { .. }]));
    assert!(!lab.m.service(&key()).unwrap().quorum_up());
}

#[test]
fn quorum_with_hysteresis_and_the_sorry_server_taking_over() {
    // Weights 2, 2, 2; quorum 4, hysteresis 1: lost below 3, regained at 5.
    let policy = ServicePolicy { quorum: 4, hysteresis: 1, sorry_server: Some(sorry()), ..ServicePolicy::default() };
    let servers = [rs(1, 2), rs(2, 2), rs(3, 2)];
    let mut lab = Lab::new(policy, &servers, plan());
    assert!(lab.m.service(&key()).unwrap().quorum_up());
    let ids = lab.ids.clone();
    let (a, b) = (ids[0], ids[1]);
    // One down: live 4, still >= 3.
    lab.run(Instant::from_secs(102), move |s| if s == a { refuse(s) } else { pass(s) });
    assert!(lab.m.service(&key()).unwrap().quorum_up());
    assert!(!lab.events().iter().any(|e| matches!(e, Event::QuorumLost { .. })));
    // Two down: live 2 < 3 — lost; the sorry server replaces the one still up.
    lab.run(Instant::from_secs(105), move |s| if s == a || s == b { refuse(s) } else { pass(s) });
    assert!(lab.events().contains(&Event::QuorumLost { service: key(), live_weight: 2, threshold: 3 }));
    assert_eq!(table(&lab.d), [(sorry().endpoint, 1)]);
    assert_eq!(lab.state(2), State::Up);
    // One back: live 4 < 5 — not regained.
    lab.run(Instant::from_secs(107), move |s| if s == b { refuse(s) } else { pass(s) });
    assert!(!lab.m.service(&key()).unwrap().quorum_up());
    assert_eq!(table(&lab.d), [(sorry().endpoint, 1)]);
    // All back: live 6 >= 5 — regained, the sorry server out, the servers in.
    lab.run(Instant::from_secs(109), pass);
    assert!(lab.events().contains(&Event::QuorumGained { service: key(), live_weight: 6, threshold: 5 }));
    assert_eq!(table(&lab.d), [(rs(1, 2).endpoint, 2), (rs(2, 2).endpoint, 2), (rs(3, 2).endpoint, 2)]);
}

#[test]
fn slow_start_ramps_the_weight_to_the_configured_one() {
    let policy = ServicePolicy { slow_start: secs(20), ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 100)], plan());
    assert_eq!(table(&lab.d), [(rs(1, 100).endpoint, 100)], "a server present from the start does not ramp");
    lab.run(Instant::from_secs(102), refuse);
    lab.run(Instant::from_secs(104), pass);
    let up_at = Instant::from_secs(104);
    assert_eq!(lab.m.server(lab.ids[0]).unwrap().since(), up_at);
    assert_eq!(table(&lab.d), [(rs(1, 100).endpoint, 1)]);
    let mut seen = Vec::new();
    for t in 105..=126 {
        lab.run(Instant::from_secs(t), pass);
        seen.push(entry(&lab.d, &rs(1, 100)).unwrap());
    }
    // Steps of 1 s (a twentieth of 20 s): 5 % of the weight each.
    assert_eq!(&seen[..4], &[5, 10, 15, 20]);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen.iter().all(|w| *w <= 100));
    assert_eq!(seen[19..], [100, 100, 100]);
    assert!(!lab.m.server(lab.ids[0]).unwrap().ramping());
}

#[test]
fn misc_dynamic_weight_goes_to_the_table_and_the_quorum() {
    let misc = CheckPlan {
        check: alloc::sync::Arc::new(Check::Misc(MiscCheck::new("/bin/check", &[]).with_dynamic_weight())),
        ..plan()
    };
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 1)], misc);
    let check = MiscCheck::new("/bin/check", &[]).with_dynamic_weight();
    lab.run(Instant::from_secs(100), |_| Some(check.judge(Exit::Code(12))));
    assert_eq!(table(&lab.d), [(rs(1, 1).endpoint, 10)]);
    assert_eq!(lab.m.service(&key()).unwrap().live_weight(), 10);
    lab.run(Instant::from_secs(101), |_| Some(check.judge(Exit::Code(0))));
    assert_eq!(table(&lab.d), [(rs(1, 1).endpoint, 10)], "exit 0 leaves the weight");
    // Weight 0 from a passing check: in service, no live weight, quorum lost.
    lab.run(Instant::from_secs(102), |_| Some(check.judge(Exit::Code(2))));
    assert_eq!(table(&lab.d), [(rs(1, 1).endpoint, 0)]);
    assert!(!lab.m.service(&key()).unwrap().quorum_up());
}

#[test]
fn operator_overrides_win_and_are_listed() {
    let policy = ServicePolicy { inhibit_on_failure: false, ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 5), rs(2, 1)], plan());
    let a = lab.ids[0];
    let now = lab.now;
    lab.m.set_override(&mut lab.d, now, a, Some(Override::Drain)).unwrap();
    assert_eq!(entry(&lab.d, &rs(1, 5)), Some(0));
    assert!(matches!(lab.events()[..], [Event::ServerDown { reason: Detail::Operator, .. }]));
    assert!(status(&lab.m, now).contains("192.0.2.11:80                DRAIN  TCP    0/5"));
    lab.m.set_override(&mut lab.d, now, a, Some(Override::Down)).unwrap();
    assert_eq!(entry(&lab.d, &rs(1, 5)), None);
    assert_eq!(lab.events(), [], "drained to down: out of service both");
    // Forced up while failing: stays in, checks go on underneath.
    lab.m.set_override(&mut lab.d, now, a, Some(Override::Up)).unwrap();
    lab.run(Instant::from_secs(103), move |s| if s == a { refuse(s) } else { pass(s) });
    assert_eq!(entry(&lab.d, &rs(1, 5)), Some(5));
    assert_eq!(lab.m.server(a).unwrap().health(), Health::Down);
    lab.m.set_override(&mut lab.d, lab.now, a, None).unwrap();
    assert_eq!(entry(&lab.d, &rs(1, 5)), None);
    assert_eq!(lab.m.set_override(&mut lab.d, lab.now, ServerId(99), None), Err(HealthError::NoSuchServer));
}

#[test]
fn passive_suspicion_brings_the_next_check_forward() {
    let p = plan().with_interval(secs(30));
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 1)], p.clone());
    lab.run(Instant::from_secs(105), pass);
    let a = lab.ids[0];
    assert_eq!(lab.m.next_deadline(), Some(Instant::from_secs(130)));
    assert!(!lab.m.suspect(lab.now, a, Symptom::SynReset), "off by default");

    let policy = ServicePolicy { passive: Passive { enabled: true, ..Passive::default() }, ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 1)], p);
    lab.run(Instant::from_secs(105), pass);
    assert!(!lab.m.suspect(lab.now, a, Symptom::SynUnanswered));
    assert!(!lab.m.suspect(lab.now, a, Symptom::SynUnanswered));
    assert!(lab.m.suspect(lab.now, a, Symptom::SynUnanswered), "the third unanswered SYN");
    assert_eq!(lab.m.next_deadline(), Some(Instant::from_secs(105)));
    let probe = lab.m.poll(lab.now).unwrap();
    assert!(!lab.m.suspect(lab.now, a, Symptom::SynReset), "a probe is in flight already");
    lab.m.report(&mut lab.d, lab.now, probe.id, Outcome::down(Detail::Refused)).unwrap();
    // The next suspicion waits for min_gap after the last probe.
    assert!(lab.m.suspect(lab.now, a, Symptom::SynReset));
    assert_eq!(lab.m.next_deadline(), Some(Instant::from_secs(106)));
}

#[test]
fn removing_servers_and_services_cleans_the_table_and_omega_tells() {
    let policy = ServicePolicy {
        omega: true,
        sorry_server: Some(sorry()),
        sorry_server_inhibit: true,
        ..ServicePolicy::default()
    };
    let mut lab = Lab::new(policy, &[rs(1, 1), rs(2, 1)], plan());
    let now = lab.now;
    lab.m.remove_server(&mut lab.d, now, lab.ids[0]).unwrap();
    assert_eq!(table(&lab.d), [(rs(2, 1).endpoint, 1), (sorry().endpoint, 0)]);
    assert_eq!(lab.m.find(&key(), &rs(1, 1).endpoint), None);
    assert_eq!(lab.m.find(&key(), &rs(2, 1).endpoint), Some(lab.ids[1]));
    lab.m.remove_service(&mut lab.d, &key()).unwrap();
    assert_eq!(table(&lab.d), []);
    assert!(matches!(
        lab.events()[..],
        [Event::ServerDown { reason: Detail::Shutdown, .. }, Event::QuorumLost { live_weight: 0, .. }]
    ));
    assert_eq!(lab.m.next_deadline(), None);
    assert!(lab.m.poll(now + secs(10)).is_none());
    assert_eq!(lab.m.remove_service(&mut lab.d, &key()), Err(HealthError::NoSuchService));
}

#[test]
fn configuration_errors() {
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 1)], plan());
    let now = lab.now;
    let again = lab.m.add_service(&mut lab.d, now, key(), ServicePolicy::default(), [] as [CheckedServer; 0]);
    assert_eq!(again, Err(HealthError::ServiceExists));
    assert_eq!(lab.m.add_server(&mut lab.d, now, &key(), (rs(1, 1), plan())), Err(HealthError::ServerExists));
    let bad = plan().with_rise_fall(0, 1);
    assert!(matches!(lab.m.add_server(&mut lab.d, now, &key(), (rs(2, 1), bad)), Err(HealthError::BadPlan(_))));
    let other = ServiceKey::Inet { proto: Proto::Udp, addr: IpAddr::from([203, 0, 113, 100]), port: 53 };
    assert_eq!(lab.m.add_server(&mut lab.d, now, &other, (rs(2, 1), plan())), Err(HealthError::NoSuchService));
    let dup = [(rs(3, 1), plan()), (rs(3, 2), plan())];
    assert_eq!(
        lab.m.add_service(&mut lab.d, now, other, ServicePolicy::default(), dup),
        Err(HealthError::ServerExists)
    );
    assert!(lab.m.service(&other).is_none(), "a refused call changes nothing");
    let id = lab.m.add_server(&mut lab.d, now, &key(), (rs(2, 3), plan())).unwrap();
    assert_eq!(entry(&lab.d, &rs(2, 3)), Some(3));
    assert_eq!(lab.m.server(id).unwrap().service(), key());
}

#[test]
fn a_table_that_drifted_is_brought_back_and_refusals_are_told() {
    let mut lab = Lab::new(ServicePolicy { inhibit_on_failure: true, ..ServicePolicy::default() }, &[rs(1, 5)], plan());
    // Someone deletes the server behind the monitor's back; the next change adds it again.
    lab.d.del_dest(&key(), &rs(1, 5).endpoint).unwrap();
    lab.run(Instant::from_secs(102), refuse);
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 0)]);
    // The service is deleted from the director: the change is refused and told.
    lab.d.del_service(&key()).unwrap();
    lab.run(Instant::from_secs(104), pass);
    let ev = lab.events();
    assert!(
        ev.contains(&Event::ControlFailed { service: key(), endpoint: rs(1, 5).endpoint, error: Error::NoSuchService }),
        "{ev:?}"
    );
    assert_eq!(lab.m.server(lab.ids[0]).unwrap().weight_in_force(), Some(0), "what the table last held");
}

#[test]
fn status_listing() {
    let policy = ServicePolicy { sorry_server: Some(sorry()), slow_start: secs(10), ..ServicePolicy::default() };
    let mut lab = Lab::new(policy, &[rs(1, 1), rs(2, 4), rs(3, 10)], plan());
    let (b, c) = (lab.ids[1], lab.ids[2]);
    lab.run(Instant::from_secs(102), move |s| if s == b || s == c { refuse(s) } else { pass(s) });
    lab.run(Instant::from_secs(105), move |s| if s == b { refuse(s) } else { pass(s) });
    lab.run(Instant::from_secs(107), move |s| if s == b { refuse(s) } else { pass(s) });
    let text = status(&lab.m, Instant::from_secs(107) + ms(500));
    let want = "\
Prot LocalAddress:Port            Quorum
  -> RemoteAddress:Port           State  Check  Weight      Streak  Forced  InState   LastResult
TCP  203.0.113.100:80             up (live 11 >= 1)
  -> 192.0.2.11:80                UP     TCP    1           0/3     -       7s        passed (0s ago)
  -> 192.0.2.12:80                DOWN   TCP    -           0/2     -       5s        connection refused (0s ago)
  -> 192.0.2.13:80                UP     TCP    3/10 ramp   0/3     -       3s        passed (0s ago)
  -> 192.0.2.99:80                SORRY  -      -           -       -       -         standby
";
    assert_eq!(text, want, "\n{text}");
}

#[test]
fn probes_are_owned_and_send_for_a_prober_thread() {
    fn send<T: Send + 'static>() {}
    send::<Probe>();
    send::<Exchange>();
    send::<Event>();
    let http = CheckPlan { check: alloc::sync::Arc::new(Check::Http(HttpCheck::get("/health"))), ..plan() };
    let mut lab = Lab::new(ServicePolicy::default(), &[rs(1, 1)], http.with_connect(None, Some(8080)));
    let p = lab.m.poll(lab.now).unwrap();
    assert_eq!(
        (p.target, p.check.transport()),
        (Endpoint::new(rs(1, 1).endpoint.addr, 8080), Transport::Tcp { tls: false })
    );
    let mut x = p.exchange().unwrap();
    let Step::Send(req) = x.start() else { panic!("the request first") };
    assert!(req.starts_with(b"GET /health HTTP/1.0\r\nHost: 192.0.2.11:8080\r\n"));
    let Step::Done(o) = x.received(b"HTTP/1.1 503 Busy\r\n\r\n") else { panic!("decided by the status") };
    lab.m.report(&mut lab.d, lab.now, p.id, o).unwrap();
    assert_eq!(lab.m.server(lab.ids[0]).unwrap().last_result().unwrap().1, &Detail::Status(503));
}

#[test]
fn a_server_with_several_checks_is_up_only_while_every_one_passes() {
    // keepalived's num_failed_checkers (ipwrapper.c): the first checker to fail takes the
    // server out, the last failing one to pass brings it back; each checker keeps its own
    // retry count. Here: TCP with fall 3, HTTP with rise 1 and fall 1.
    let http = CheckPlan { check: alloc::sync::Arc::new(Check::Http(HttpCheck::get("/ready"))), ..plan() }
        .with_rise_fall(1, 1);
    let mut lab = Lab::with_checks(
        ServicePolicy::default(),
        alloc::vec![CheckedServer::new(rs(1, 5), alloc::vec![plan(), http]), (rs(2, 1), plan()).into()],
    );
    let (a, b) = (lab.ids[0], lab.ids[1]);
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 5), (rs(2, 1).endpoint, 1)]);
    lab.events();
    // The HTTP check fails once: a's fall 1 takes it out at once, its TCP check still passing.
    let http_fails = |s: ServerId, i: u32| {
        Some(if s == a && i == 1 { Outcome::down(Detail::Status(503)) } else { Outcome::up(Detail::Passed) })
    };
    lab.run_checks(lab.now + ms(100), http_fails);
    assert_eq!(table(&lab.d), [(rs(2, 1).endpoint, 1)]);
    let down = Event::ServerDown {
        server: a,
        service: key(),
        endpoint: rs(1, 5).endpoint,
        reason: Detail::Status(503),
        check: Some("HTTP GET /ready".into()),
    };
    assert_eq!(lab.events(), core::slice::from_ref(&down));
    assert_eq!(
        alloc::string::ToString::to_string(&down),
        "TCP 203.0.113.100:80: real server 192.0.2.11:80 down (HTTP GET /ready: status 503)"
    );
    let s = lab.m.server(a).unwrap();
    let healths: Vec<Health> = s.checks().map(|c| c.health()).collect();
    assert_eq!((s.health(), healths), (Health::Down, alloc::vec![Health::Up, Health::Down]));
    // Now TCP fails too (three times: its fall), then HTTP recovers: still down, TCP is.
    let both_fail =
        |s: ServerId, _| Some(if s == a { Outcome::down(Detail::Refused) } else { Outcome::up(Detail::Passed) });
    lab.run_checks(lab.now + secs(3), both_fail);
    let tcp_fails = |s: ServerId, i: u32| {
        Some(if s == a && i == 0 { Outcome::down(Detail::Refused) } else { Outcome::up(Detail::Passed) })
    };
    lab.run_checks(lab.now + secs(2), tcp_fails);
    let s = lab.m.server(a).unwrap();
    let healths: Vec<Health> = s.checks().map(|c| c.health()).collect();
    assert_eq!((s.state(), healths), (State::Down, alloc::vec![Health::Down, Health::Up]));
    assert!(lab.events().is_empty(), "no event while it stays out");
    // TCP passes twice (its rise): a is back, told with the check that brought it.
    lab.run_checks(lab.now + secs(2), |_, _| Some(Outcome::up(Detail::Passed)));
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 5), (rs(2, 1).endpoint, 1)]);
    let ev = lab.events();
    assert!(
        matches!(&ev[..], [Event::ServerUp { server, check: Some(c), .. }] if *server == a && c == "TCP"),
        "{ev:?}"
    );
    assert_eq!(lab.m.server(b).unwrap().state(), State::Up, "the one-check server never moved");
    // The listing shows the server and a line per check.
    let text = status(&lab.m, lab.now);
    assert!(text.contains("  -> 192.0.2.11:80                UP     2 chk  5 "), "{text}");
    assert!(text.contains("       TCP                        up     TCP"), "{text}");
    assert!(text.contains("       HTTP GET /ready            up     HTTP"), "{text}");
}

#[test]
fn inhibit_on_failure_and_alpha_are_per_server_and_per_check() {
    // keepalived takes a real server's inhibit_on_failure and alpha over the virtual
    // server's (check_data.c), and a checker's alpha over its real server's.
    let down_first = plan().with_rise_fall(1, 1).with_alpha(true);
    let mut lab = Lab::with_checks(
        ServicePolicy::default(),
        alloc::vec![
            CheckedServer::new(rs(1, 5), alloc::vec![plan().with_rise_fall(1, 1)]).with_inhibit_on_failure(true),
            (rs(2, 1), plan().with_rise_fall(1, 1)).into(),
            CheckedServer::new(rs(3, 2), alloc::vec![plan().with_rise_fall(1, 1), down_first]),
        ],
    );
    // rs3 starts out: one of its checks has alpha.
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 5), (rs(2, 1).endpoint, 1)]);
    assert_eq!(lab.m.server(lab.ids[0]).unwrap().inhibit_on_failure(), Some(true));
    // Everything fails: rs1 stays at weight 0 (its own inhibit), rs2 goes (the service's).
    lab.run(lab.now + ms(100), refuse);
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 0)]);
    // Everything passes: all three in.
    lab.run(lab.now + secs(1), pass);
    assert_eq!(table(&lab.d), [(rs(1, 5).endpoint, 5), (rs(2, 1).endpoint, 1), (rs(3, 2).endpoint, 2)]);
    // A checked server needs a check.
    let none = CheckedServer::new(rs(4, 1), alloc::vec![]);
    assert!(matches!(lab.m.add_server(&mut lab.d, lab.now, &key(), none), Err(HealthError::BadPlan(_))));
}

/// Property tests: the monitor and a director under simulated time, probes answered after
/// random delays (some never, some after their deadline) with random outcomes and dynamic
/// weights, random operator overrides and suspicions; every invariant checked after every
/// step.
mod props {
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    use super::*;

    /// How one probe goes: never answered (0), failed (1) or passed (2 and up), after
    /// `delay_ms`, maybe setting a weight.
    #[derive(Clone, Debug)]
    struct Fate {
        answer: u8,
        delay_ms: u16,
        weight: Option<u8>,
    }

    fn fate() -> impl Strategy<Value = Fate> {
        (0u8..5, 0u16..700, proptest::option::weighted(0.1, 0u8..6)).prop_map(|(answer, delay_ms, weight)| Fate {
            answer,
            delay_ms,
            weight,
        })
    }

    #[derive(Clone, Debug)]
    struct Setup {
        weights: Vec<u32>,
        rise: u32,
        fall: u32,
        fast: bool,
        policy: ServicePolicy,
        /// Per server (cycled): each of its checks with its own `alpha`, if any.
        checks: Vec<Vec<Option<bool>>>,
        /// Per server (cycled): its own `inhibit_on_failure`, if any.
        inhibits: Vec<Option<bool>>,
    }

    fn setup() -> impl Strategy<Value = Setup> {
        (
            proptest::collection::vec(1u32..6, 1..5),
            (1u32..4, 1u32..4, any::<bool>()),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), 0u64..5),
            (1u32..9, 0u32..3, any::<bool>()),
            (
                proptest::collection::vec(proptest::collection::vec(any::<Option<bool>>(), 1..4), 1..4),
                proptest::collection::vec(any::<Option<bool>>(), 1..4),
            ),
        )
            .prop_map(
                |(
                    weights,
                    (rise, fall, fast),
                    (inhibit, alpha, sorry, sorry_inhibit, slow),
                    (q, h, passive),
                    (checks, inhibits),
                )| {
                    let policy = ServicePolicy {
                        inhibit_on_failure: inhibit,
                        sorry_server: sorry.then(super::sorry),
                        sorry_server_inhibit: sorry_inhibit,
                        quorum: q,
                        hysteresis: h,
                        alpha,
                        slow_start: secs(slow),
                        passive: Passive { enabled: passive, ..Passive::default() },
                        ..ServicePolicy::default()
                    };
                    Setup { weights, rise, fall, fast, policy, checks, inhibits }
                },
            )
    }

    /// Passes at the end of a history, and failures.
    fn trailing(h: &[bool]) -> (u32, u32) {
        let run = |v: bool| h.iter().rev().take_while(|x| **x == v).count() as u32;
        (run(true), run(false))
    }

    struct Sim {
        lab: Lab,
        setup: Setup,
        servers: Vec<RealServer>,
        fates: Vec<Fate>,
        next_fate: usize,
        /// Answers on their way: when, to which probe, what.
        pending: Vec<(Instant, ProbeId, Outcome)>,
        /// Probes in flight: server, check and deadline.
        in_flight: BTreeMap<ProbeId, (Probed, Instant)>,
        /// The results the monitor applied, per check, in order.
        history: BTreeMap<Probed, Vec<bool>>,
        health: BTreeMap<Probed, Health>,
        quorum: bool,
    }

    /// One check of one server.
    type Probed = (ServerId, u32);

    impl Sim {
        fn new(setup: Setup, fates: Vec<Fate>) -> Self {
            let servers: Vec<RealServer> = setup.weights.iter().enumerate().map(|(i, w)| rs(i as u8 + 1, *w)).collect();
            let plan = plan()
                .with_rise_fall(setup.rise, setup.fall)
                .with_fast_down_inter(setup.fast.then(|| ms(300)), setup.fast.then(|| ms(2500)))
                .with_warmup(secs(1));
            let checked = servers
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let alphas = &setup.checks[i % setup.checks.len()];
                    let plans = alphas.iter().map(|a| CheckPlan { alpha: *a, ..plan.clone() }).collect();
                    let inhibit_on_failure = setup.inhibits[i % setup.inhibits.len()];
                    CheckedServer { inhibit_on_failure, ..CheckedServer::new(*r, plans) }
                })
                .collect();
            let mut lab = Lab::with_checks(setup.policy.clone(), checked);
            let mut health = BTreeMap::new();
            for id in &lab.ids {
                for (i, c) in lab.m.server(*id).unwrap().checks().enumerate() {
                    health.insert((*id, i as u32), c.health());
                }
            }
            let quorum = lab.m.service(&key()).unwrap().quorum_up();
            let history = health.keys().map(|k| (*k, Vec::new())).collect();
            lab.events();
            Sim {
                lab,
                setup,
                servers,
                fates,
                next_fate: 0,
                pending: Vec::new(),
                in_flight: BTreeMap::new(),
                history,
                health,
                quorum,
            }
        }

        /// One step at the next instant anything happens; false past `end`.
        fn step(&mut self, end: Instant, op: Option<(usize, u8)>) -> bool {
            let answer_at = self.pending.iter().map(|p| p.0).min();
            let Some(now) = [self.lab.m.next_deadline(), answer_at].into_iter().flatten().min() else { return false };
            if now > end {
                return false;
            }
            self.lab.now = now;
            let (due, later): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|p| p.0 <= now);
            self.pending = later;
            for (_, pid, outcome) in due {
                let up = outcome.up;
                match self.lab.m.report(&mut self.lab.d, now, pid, outcome) {
                    Ok(()) => {
                        let (server, _) = self.in_flight.remove(&pid).unwrap();
                        self.history.get_mut(&server).unwrap().push(up);
                    }
                    Err(e) => {
                        assert_eq!(e, HealthError::UnknownProbe);
                        assert!(!self.in_flight.contains_key(&pid), "a probe in flight was refused");
                    }
                }
            }
            self.lab.m.tick(&mut self.lab.d, now);
            let timed_out: Vec<ProbeId> =
                self.in_flight.iter().filter(|(_, (_, d))| *d <= now).map(|(p, _)| *p).collect();
            for pid in timed_out {
                let (server, _) = self.in_flight.remove(&pid).unwrap();
                self.history.get_mut(&server).unwrap().push(false);
            }
            while let Some(p) = self.lab.m.poll(now) {
                assert_eq!(p.deadline, now + ms(500));
                let f = self.fates[self.next_fate % self.fates.len()].clone();
                self.next_fate += 1;
                self.in_flight.insert(p.id, ((p.server, p.check_index), p.deadline));
                if f.answer > 0 {
                    let mut o =
                        if f.answer == 1 { Outcome::down(Detail::Refused) } else { Outcome::up(Detail::Passed) };
                    o.weight = f.weight.map(u32::from);
                    self.pending.push((now + ms(u64::from(f.delay_ms)), p.id, o));
                }
            }
            if let Some((i, kind)) = op {
                let id = self.lab.ids[i % self.lab.ids.len()];
                match kind {
                    0..4 => {
                        let over =
                            [None, Some(Override::Up), Some(Override::Down), Some(Override::Drain)][kind as usize];
                        self.lab.m.set_override(&mut self.lab.d, now, id, over).unwrap();
                    }
                    4 => {
                        self.lab.m.suspect(now, id, Symptom::SynReset);
                    }
                    _ => {
                        self.lab.m.suspect(now, id, Symptom::SynUnanswered);
                    }
                }
            }
            self.check(now);
            true
        }

        fn check(&mut self, now: Instant) {
            let (rise, fall) = (self.setup.rise, self.setup.fall);
            let p = &self.setup.policy;
            let svc = self.lab.m.service(&key()).unwrap();
            let sorry_active = svc.sorry_active();
            let live: u64 = svc.servers().filter(|s| s.state() == State::Up).map(|s| u64::from(s.weight())).sum();
            assert_eq!(svc.live_weight(), live);
            for (i, id) in self.lab.ids.iter().enumerate() {
                let s = self.lab.m.server(*id).unwrap();
                for (ci, c) in s.checks().enumerate() {
                    let k = (*id, ci as u32);
                    let h = c.health();
                    let (passes, failures) = trailing(&self.history[&k]);
                    // Rise and fall, per check: never up with fewer than `rise` passes in a
                    // row behind the change, never down with fewer than `fall` failures; and
                    // no change missed.
                    if h != self.health[&k] {
                        match h {
                            Health::Up => assert!(passes >= rise, "up after {passes} passes, rise {rise}"),
                            Health::Down => assert!(failures >= fall, "down after {failures} failures, fall {fall}"),
                        }
                    }
                    match h {
                        Health::Up => assert!(failures < fall, "still up after {failures} failures"),
                        Health::Down => assert!(passes < rise, "still down after {passes} passes"),
                    }
                    assert_eq!((c.streak().passes, c.streak().failures), (passes, failures));
                    self.health.insert(k, h);
                }
                // The server is up exactly while every check is: never up while any is down.
                let h = s.health();
                assert_eq!(h == Health::Up, s.checks().all(|c| c.health() == Health::Up));
                // The state in force follows the override, else the health.
                let want_state = match (s.override_state(), h) {
                    (Some(Override::Up), _) | (None, Health::Up) => State::Up,
                    (Some(Override::Drain), _) => State::Drain,
                    _ => State::Down,
                };
                assert_eq!(s.state(), want_state);
                // The table reflects the state: removed, weight 0, or the weight in force.
                let in_table = entry(&self.lab.d, &self.servers[i]);
                assert_eq!(in_table, s.weight_in_force(), "{:?} {:?}", s.state(), s.real_server());
                match s.state() {
                    State::Up if !sorry_active => {
                        let w = in_table.unwrap();
                        assert!(w <= s.weight(), "slow start over the weight: {w} > {}", s.weight());
                        if !s.ramping() {
                            assert_eq!(w, s.weight());
                        }
                        if now.saturating_since(s.since()) >= p.slow_start {
                            assert!(!s.ramping() && w == s.weight(), "ramp not over {:?} after", p.slow_start);
                        } else if s.weight() > 0 {
                            assert!(w >= 1);
                        }
                    }
                    State::Drain => assert_eq!(in_table, Some(0)),
                    _ => assert_eq!(in_table, s.inhibit_on_failure().unwrap_or(p.inhibit_on_failure).then_some(0)),
                }
            }
            // Quorum: every event crosses its threshold, the state they tell is the
            // monitor's, and the state is consistent with the live weight.
            let (q, h) = (u64::from(p.quorum), u64::from(p.hysteresis));
            for e in core::iter::from_fn(|| self.lab.m.poll_event()) {
                match e {
                    Event::QuorumGained { live_weight, threshold, .. } => {
                        assert!(!self.quorum && live_weight > 0 && live_weight >= q + h && threshold == q + h);
                        self.quorum = true;
                    }
                    Event::QuorumLost { live_weight, threshold, .. } => {
                        assert!(self.quorum && (live_weight == 0 || live_weight < q.saturating_sub(h)));
                        assert_eq!(threshold, q.saturating_sub(h));
                        self.quorum = false;
                    }
                    Event::ControlFailed { error, .. } => panic!("director refused: {error}"),
                    _ => {}
                }
            }
            let svc = self.lab.m.service(&key()).unwrap();
            assert_eq!(svc.quorum_up(), self.quorum);
            if self.quorum {
                assert!(live > 0 && live >= q.saturating_sub(h));
            } else {
                assert!(live == 0 || live < q + h);
            }
            // The sorry server is in the table (at its weight) exactly while quorum is lost;
            // with the default quorum, exactly while no server is up with a weight.
            if let Some(sorry) = p.sorry_server {
                let present = entry(&self.lab.d, &sorry);
                assert_eq!(present == Some(sorry.weight), !self.quorum);
                if !self.quorum {
                    for s in svc.servers() {
                        assert!(
                            matches!(entry(&self.lab.d, &s.real_server()), None | Some(0)),
                            "a server beside the sorry server"
                        );
                    }
                } else {
                    assert_eq!(present, p.sorry_server_inhibit.then_some(0));
                }
                if q == 1 && h == 0 {
                    assert_eq!(sorry_active, live == 0);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn health_reactions_hold_under_random_timing(
            setup in setup(),
            fates in proptest::collection::vec(fate(), 1..64),
            ops in proptest::collection::vec(proptest::option::weighted(0.05, (0usize..4, 0u8..6)), 1..200),
        ) {
            let mut sim = Sim::new(setup, fates);
            let end = sim.lab.now + secs(60);
            let mut n = 0;
            while sim.step(end, ops[n % ops.len()]) {
                n += 1;
            }
            prop_assert!(n > 0);
        }
    }
}
