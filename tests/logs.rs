//! lvs-dataplane's log lines, caught by a logger of the test's own through the `log` facade: a
//! health check taking a real server down (over loopback, no root) and a VRRP instance entering
//! MASTER and stopping (root: a veth pair in a namespace the test creates).

#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/root.rs"]
mod root;

use std::io;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use log::{Level, Log, Metadata, Record};
use lvs::core::addr::{Proto, ServiceKey};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::health::{Check, CheckPlan, Monitor, ServicePolicy, TcpCheck};
use lvs::core::vrrp::{AddressChange, Config, Group};
use lvs::dataplane::health::HealthChecker;
use lvs::dataplane::runtime::MonotonicClock;
use lvs::dataplane::vrrp::{Hooks, Origin, VrrpIo};
use lvs::DirectorConfig;
use netns::Netns;

/// Every record logged in this process: level, target, message.
static RECORDS: Mutex<Vec<(Level, String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, r: &Record<'_>) {
        RECORDS.lock().unwrap().push((r.level(), r.target().to_string(), r.args().to_string()));
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

fn install() {
    // The first test to get here installs it; the others find it there.
    if log::set_logger(&CAPTURE).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// The records of `target` logged so far.
fn logged(target: &str) -> Vec<(Level, String)> {
    RECORDS.lock().unwrap().iter().filter(|(_, t, _)| t == target).map(|(l, _, m)| (*l, m.clone())).collect()
}

#[test]
fn a_real_server_going_down_is_a_warning() {
    install();
    // A port nothing listens on: the check is refused.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let key = ServiceKey::Inet { proto: Proto::Tcp, addr: "203.0.113.100".parse().unwrap(), port: 80 };
    let mut d = lvs::director(DirectorConfig::default());
    lvs::core::config::restore(&mut d, "-A -t 203.0.113.100:80 -s rr\n").unwrap();
    let clock = MonotonicClock::default();
    let plan = CheckPlan::new(Check::Tcp(TcpCheck))
        .with_interval(Duration::from_millis(50))
        .with_timeout(Duration::from_secs(1))
        .with_rise_fall(1, 1)
        .with_warmup(Duration::ZERO)
        .with_connect(Some("127.0.0.1".parse().unwrap()), Some(port));
    let rs = RealServer::new("192.0.2.11".parse().unwrap(), 80, FwdMethod::Route, 1);
    let mut m = Monitor::new(1);
    m.add_service(&mut d, clock.now(), key, ServicePolicy::default(), [(rs, plan)]).unwrap();
    let mut h = HealthChecker::new(m).unwrap();
    let mut events = Vec::new();
    for _ in 0..500 {
        h.poll(clock.now(), &mut d).unwrap();
        events.extend(std::iter::from_fn(|| h.poll_event()));
        if !events.is_empty() {
            break;
        }
        h.prober().wait(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(events.len(), 2, "server down, then quorum lost: {events:?}");
    // keepalived's words, from the event's Display, at the levels an operator wants.
    let lines = logged("lvs::health");
    let want = [
        (Level::Warn, "TCP 203.0.113.100:80: real server 192.0.2.11:80 down (connection refused)".to_string()),
        (Level::Warn, "TCP 203.0.113.100:80: lost quorum, live weight 0 < 1".to_string()),
    ];
    assert_eq!(lines, want);
    assert_eq!(events.iter().map(ToString::to_string).collect::<Vec<_>>(), want.map(|(_, m)| m));
}

/// Hooks that do nothing: the test watches the log, not the addresses.
struct Quiet;

impl Hooks for Quiet {
    fn add_addresses(&mut self, _: &Origin<'_>, _: &AddressChange) -> io::Result<()> {
        Ok(())
    }

    fn remove_addresses(&mut self, _: &Origin<'_>, _: &AddressChange) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_vrrp_instance_entering_master_and_stopping_is_logged() {
    if !root::can_run(true, &["ip"]) {
        return;
    }
    install();
    let ns = Netns::create("lvs-logs").unwrap();
    ns.exec("ip", &["link", "add", "vrrp0", "type", "veth", "peer", "name", "vrrp1"]).unwrap();
    ns.exec("ip", &["addr", "add", "10.112.0.2/24", "dev", "vrrp0"]).unwrap();
    for dev in ["vrrp0", "vrrp1"] {
        ns.exec("ip", &["link", "set", dev, "up"]).unwrap();
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            let mut g = Group::new();
            // The address owner (priority 255) takes over at once (RFC 5798 §6.4.1).
            let owner = Config {
                priority: 255,
                ..Config::new(51, "10.112.0.2".parse().unwrap(), vec!["10.112.0.100".parse().unwrap()])
            };
            g.add_instance(owner).unwrap();
            let mut io = VrrpIo::open(g, &["vrrp0"], Quiet).unwrap();
            let clock = MonotonicClock::default();
            io.start(clock.now());
            io.shutdown(clock.now());
        })
        .join()
        .unwrap();
    });
    drop(ns);
    let lines = logged("lvs::vrrp");
    assert_eq!(
        lines,
        [
            (Level::Info, "VRRP_Instance(vrid 51 on vrrp0) Entering MASTER STATE (priority 255)".to_string()),
            (Level::Info, "VRRP_Instance(vrid 51 on vrrp0) Stopped (priority 255)".to_string()),
        ]
    );
}
