//! ldirectord.cf against the sample the Debian `ldirectord` package ships and the seed's Squid
//! cluster (`tests/data/ldirectord/`): each parses, sets up the `ipvsadm -Sn` ldirectord
//! programs at startup (the `.rules` files, written by hand from ldirectord's manual: servers
//! start down and are checked at once, quiescent ones stay in with weight 0, the fallback
//! stands in while no real server is up), then follows the checks; a broken copy of each is
//! refused with its file and line.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use lvs::core::config::ldirectord::{self, CheckType};
use lvs::core::config::save;
use lvs::core::health::{Check, Detail, Monitor, Outcome, Transport};
use lvs::{DirectorConfig, Instant};

fn read(name: &str) -> String {
    fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ldirectord").join(name)).unwrap()
}

/// Answers every due probe with `up(endpoint)` until none is due, then moves to the next
/// deadline; `rounds` times.
fn drive(
    d: &mut lvs::Director,
    m: &mut Monitor,
    now: &mut Instant,
    rounds: usize,
    up: impl Fn(&lvs::core::Endpoint) -> bool,
) {
    for _ in 0..rounds {
        while let Some(p) = m.poll(*now) {
            let o = if up(&p.target) { Outcome::up(Detail::Passed) } else { Outcome::down(Detail::Refused) };
            m.report(d, *now, p.id, o).unwrap();
        }
        *now = m.next_deadline().unwrap();
        m.tick(d, *now);
    }
}

#[test]
fn the_debian_sample_parses_and_starts_on_its_fallback() {
    let parsed = ldirectord::parse(&read("ldirectord.cf"), "ldirectord.cf").unwrap();
    let v = &parsed.config.virtuals[0];
    assert_eq!(parsed.config.virtuals.len(), 1, "the other sections are commented out");
    assert_eq!((v.scheduler.as_str(), v.checktype, v.service.as_str()), ("rr", CheckType::Negotiate, "http"));
    assert_eq!(
        (v.quiescent, v.checkinterval, v.negotiatetimeout),
        (false, Duration::from_secs(1), Duration::from_secs(3))
    );
    assert_eq!(v.reals.len(), 3);
    let plan = v.reals[0].check.as_ref().unwrap();
    match &*plan.check {
        Check::Http(h) => {
            assert_eq!((h.path.as_str(), h.expect.as_deref()), ("/index.html", Some(&b"Test Page"[..])));
            assert_eq!(h.virtualhost.as_deref(), Some("www.x.y.z"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((plan.connect_port, plan.fall, plan.timeout), (Some(80), 1, Duration::from_secs(3)));
    let warned: Vec<(u32, &str)> = parsed.warnings.iter().map(|w| (w.line, w.keyword.as_str())).collect();
    assert_eq!(warned, [(16, "autoreload")], "{:?}", parsed.warnings);

    let mut d = lvs::director(DirectorConfig::default());
    let mut m = Monitor::new(1);
    parsed.config.apply(&mut d, &mut m, Instant::ZERO).unwrap();
    assert_eq!(save(&d), read("ldirectord.cf.rules"));
    // Every server answers: they go in, the fallback goes out.
    let mut now = Instant::ZERO;
    drive(&mut d, &mut m, &mut now, 1, |_| true);
    assert_eq!(
        save(&d),
        "-A -t 192.168.6.240:80 -s rr\n\
         -a -t 192.168.6.240:80 -r 192.168.6.2:80 -g -w 1\n\
         -a -t 192.168.6.240:80 -r 192.168.6.3:80 -g -w 1\n\
         -a -t 192.168.6.240:80 -r 192.168.6.6:80 -g -w 1\n"
    );
}

#[test]
fn the_squid_cluster_parses_applies_and_quiesces_a_failed_cache() {
    let parsed = ldirectord::parse(&read("squid.cf"), "squid.cf").unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let v = &parsed.config.virtuals[0];
    assert_eq!((v.persistent, v.quiescent, v.checktype), (Some(600), true, CheckType::Connect));
    let plan = v.reals[0].check.as_ref().unwrap();
    assert_eq!(plan.check.transport(), Transport::Tcp { tls: false });
    assert_eq!((plan.interval, plan.timeout), (Duration::from_secs(5), Duration::from_secs(3)));

    let mut d = lvs::director(DirectorConfig::default());
    let mut m = Monitor::new(1);
    parsed.config.apply(&mut d, &mut m, Instant::ZERO).unwrap();
    assert_eq!(save(&d), read("squid.cf.rules"));
    let mut now = Instant::ZERO;
    drive(&mut d, &mut m, &mut now, 1, |_| true);
    assert!(
        save(&d).contains("-r 198.51.100.11:3128 -g -w 1\n") && save(&d).contains("-r 198.51.100.12:3128 -g -w 1\n")
    );
    // The first cache stops answering: one failure (failurecount 1) quiesces it.
    drive(&mut d, &mut m, &mut now, 2, |e| e.addr.to_string() != "198.51.100.11");
    assert!(save(&d).contains("-r 198.51.100.11:3128 -g -w 0\n"), "{}", save(&d));
    assert!(save(&d).contains("-r 198.51.100.12:3128 -g -w 1\n"));
}

#[test]
fn a_broken_copy_of_each_names_its_file_and_line() {
    for name in ["ldirectord.cf", "squid.cf"] {
        let text = read(name);
        let lines = text.lines().count() as u32;
        // An unknown forwarding method on a new real server at the end of the last section.
        let broken = format!("{text}\treal=192.0.2.7:80 bridge\n");
        let e = ldirectord::parse(&broken, name).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), (name, lines + 1), "{e}");
        assert_eq!(e.to_string(), format!("{name}:{}: real: forward method must be gate, masq or ipip", lines + 1));
        // A directive ldirectord does not know.
        let e = ldirectord::parse(&format!("{text}frobnicate=yes\n"), name).unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (lines + 1, "frobnicate: unknown directive"));
    }
}
