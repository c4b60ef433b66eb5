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
        let mut d = Director::new(DirectorConfig::default(), testkit::factory);
        d.add_service(ServiceConfig::new(key(), "first")).unwrap();
        let mut m = Monitor::new(1);
        let now = Instant::from_secs(100);
        let ids = m.add_service(&mut d, now, key(), policy, servers.iter().map(|r| (*r, plan.clone()))).unwrap();
        Lab { d, m, now, ids }
    }

    /// Runs the loop up to `until`: at each deadline tick, then answer every due probe at once
    /// with `answer(server)` (`None`: never answer).
    fn run(&mut self, until: Instant, mut answer: impl FnMut(ServerId) -> Option<Outcome>) {
        while let Some(t) = self.m.next_deadline().filter(|t| *t <= until) {
            self.now = t;
            self.m.tick(&mut self.d, t);
            while let Some(p) = self.m.poll(t) {
                if let Some(o) = answer(p.server) {
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
    assert_eq!(lab.m.server(bad).unwrap().streak().failures, 2);
    lab.run(Instant::from_secs(102), answer);
    assert_eq!(lab.state(0), State::Down);
    assert_eq!(table(&lab.d), [(rs(2, 1).endpoint, 1)]);
    let ev = lab.events();
    assert_eq!(
        ev,
        [Event::ServerDown { server: bad, service: key(), endpoint: rs(1, 5).endpoint, reason: Detail::Refused }]
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
    assert_eq!(s.streak().failures, 1);
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
    let again = lab.m.add_service(&mut lab.d, now, key(), ServicePolicy::default(), []);
    assert_eq!(again, Err(HealthError::ServiceExists));
    assert_eq!(lab.m.add_server(&mut lab.d, now, &key(), rs(1, 1), plan()), Err(HealthError::ServerExists));
    let bad = plan().with_rise_fall(0, 1);
    assert!(matches!(lab.m.add_server(&mut lab.d, now, &key(), rs(2, 1), bad), Err(HealthError::BadPlan(_))));
    let other = ServiceKey::Inet { proto: Proto::Udp, addr: IpAddr::from([203, 0, 113, 100]), port: 53 };
    assert_eq!(lab.m.add_server(&mut lab.d, now, &other, rs(2, 1), plan()), Err(HealthError::NoSuchService));
    let dup = [(rs(3, 1), plan()), (rs(3, 2), plan())];
    assert_eq!(
        lab.m.add_service(&mut lab.d, now, other, ServicePolicy::default(), dup),
        Err(HealthError::ServerExists)
    );
    assert!(lab.m.service(&other).is_none(), "a refused call changes nothing");
    let id = lab.m.add_server(&mut lab.d, now, &key(), rs(2, 3), plan()).unwrap();
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
