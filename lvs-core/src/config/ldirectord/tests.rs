//! ldirectord.cf: defaults, real server lines, checks, errors, the setup.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;

use super::*;
use crate::addr::{Af, ServiceKey};
use crate::config::save;
use crate::config::source::ErrorKind;
use crate::dest::FwdMethod;
use crate::health::{Check, Transport};
use crate::testkit::factory;
use crate::DirectorConfig;

fn ok(text: &str) -> Parsed {
    parse(text, "ldirectord.cf").unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn defaults_are_ldirectord_s() {
    let p = ok("virtual=192.0.2.1:53\n    real=10.0.0.1 gate\n    real=10.0.0.2:5353 masq 3\nvirtual=7\n\treal=10.0.0.3 gate\n");
    let v = &p.config.virtuals[0];
    assert_eq!(v.key, ServiceKey::udp(ip("192.0.2.1"), 53), "port 53 is UDP");
    assert_eq!(
        (v.scheduler.as_str(), v.quiescent, v.checktype, v.service.as_str()),
        ("wrr", true, CheckType::Negotiate, "dns")
    );
    assert_eq!(
        (v.checkinterval, v.checktimeout, v.negotiatetimeout),
        (Duration::from_secs(10), Duration::from_secs(5), Duration::from_secs(30))
    );
    // Gate takes the virtual port; masq keeps its own.
    assert_eq!(
        (v.reals[0].server.endpoint.port, v.reals[0].server.fwd, v.reals[0].server.weight),
        (53, FwdMethod::Route, 1)
    );
    assert_eq!(
        (v.reals[1].server.endpoint.port, v.reals[1].server.fwd, v.reals[1].server.weight),
        (5353, FwdMethod::Masq, 3)
    );
    let f = &p.config.virtuals[1];
    assert_eq!((f.key, f.service.as_str()), (ServiceKey::Fwmark { mark: 7, af: Af::V4 }, "none"));
    assert_eq!(f.reals[0].server.endpoint.port, 0);
    assert!(f.reals[0].check.is_none(), "service none: not monitored");
}

#[test]
fn real_lines_take_ranges_weights_checks_and_thresholds() {
    let p = ok("virtual=192.0.2.1:80\n\treal=10.0.0.1->10.0.0.3:80 masq 5 \"alive.html\", \"OK\" l:2 u:10\n");
    let reals = &p.config.virtuals[0].reals;
    assert_eq!(reals.len(), 3);
    assert_eq!(reals[2].server.endpoint.addr, ip("10.0.0.3"));
    let s = reals[1].server;
    assert_eq!((s.weight, s.l_threshold, s.u_threshold), (5, 2, 10));
    match &*reals[0].check.as_ref().unwrap().check {
        Check::Http(h) => assert_eq!((h.path.as_str(), h.expect.as_deref()), ("/alive.html", Some(&b"OK"[..]))),
        other => panic!("{other:?}"),
    }
    let p = ok("virtual6=[2001:db8::1]:443\n\treal6=[2001:db8::10]:443 ipip\n\tfallback6=[::1]:443\n");
    let v = &p.config.virtuals[0];
    assert_eq!((v.reals[0].server.fwd, v.service.as_str()), (FwdMethod::Tunnel, "https"));
    assert_eq!(v.fallback.map(|f| (f.endpoint.addr, f.fwd)), Some((ip("::1"), FwdMethod::Route)));
}

#[test]
fn globals_apply_wherever_they_stand() {
    let p = ok("virtual=192.0.2.1:25\n\treal=10.0.0.1 gate\n\tnegotiatetimeout=4\nquiescent=no\nchecktimeout=2\n\
                failurecount=3\nfallback=127.0.0.1:25\ncheckinterval=7\n");
    let v = &p.config.virtuals[0];
    assert!(!v.quiescent);
    assert_eq!(
        (v.checktimeout, v.negotiatetimeout, v.failurecount),
        (Duration::from_secs(2), Duration::from_secs(4), 3)
    );
    assert_eq!(v.fallback.map(|f| f.endpoint.to_string()), Some("127.0.0.1:25".into()));
    let plan = v.reals[0].check.as_ref().unwrap();
    assert!(matches!(&*plan.check, Check::Smtp(_)));
    assert_eq!(
        (plan.interval, plan.timeout, plan.fall, plan.rise),
        (Duration::from_secs(7), Duration::from_secs(4), 3, 1)
    );
    assert_eq!((plan.fastinter, plan.warmup), (None, Some(Duration::ZERO)));
}

#[test]
fn checktypes_map_to_checks() {
    let kind = |extra: &str, port: u16| {
        let p = ok(&alloc::format!("virtual=192.0.2.1:{port}\n\treal=10.0.0.1 gate\n{extra}"));
        let v = p.config.virtuals.into_iter().next().unwrap();
        let w: Vec<String> = p.warnings.iter().map(|w| w.keyword.clone()).collect();
        (v.reals[0].check.as_ref().map(|c| c.check.transport()), w, v)
    };
    assert_eq!(kind("\tchecktype=connect\n", 80).0, Some(Transport::Tcp { tls: false }));
    assert_eq!(kind("\tchecktype=connect\n\tprotocol=udp\n", 80).0, Some(Transport::Icmp), "connect on UDP pings");
    assert_eq!(kind("\tchecktype=ping\n", 80).0, Some(Transport::Icmp));
    assert_eq!(kind("", 443).0, Some(Transport::Tcp { tls: true }));
    assert_eq!(kind("\tchecktype=on\n", 80).0, None);
    let (t, w, _) = kind("", 3306);
    assert_eq!((t, w), (Some(Transport::Tcp { tls: false }), alloc::vec!["service".to_string()]), "mysql: connect");
    let (t, w, _) = kind("\tchecktype=5\n", 80);
    assert_eq!((t, w), (Some(Transport::Tcp { tls: false }), alloc::vec!["checktype".to_string()]));
    let (t, _, v) = kind("\tchecktype=external\n\tcheckcommand=\"/usr/lib/check -v\"\n", 80);
    assert_eq!(t, Some(Transport::Process));
    match &*v.reals[0].check.as_ref().unwrap().check {
        Check::Misc(m) => {
            assert_eq!((m.program.as_str(), m.args.join(" ")), ("/usr/lib/check", "-v 192.0.2.1 80 10.0.0.1 80".into()))
        }
        other => panic!("{other:?}"),
    }
    let (_, w, _) = kind("\treceive=\"Up.*\"\n", 80);
    assert_eq!(w, ["receive".to_string()], "a regular expression is matched as text");
    let p = ok("virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n\tchecktype=ping\n\tcheckcount=3\n\tfailurecount=2\n");
    assert_eq!(p.config.virtuals[0].reals[0].check.as_ref().unwrap().fall, 6);
    let p = ok("fork=yes\nvirtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n\tcheckinterval=3\n");
    assert_eq!(p.config.virtuals[0].checkinterval, Duration::from_secs(3));
    let p = ok("virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n\tcheckinterval=3\n");
    assert_eq!((p.config.virtuals[0].checkinterval, p.warnings[0].line), (Duration::from_secs(10), 3));
}

#[test]
fn errors_name_their_line() {
    use ErrorKind::*;
    for (text, line, kind, msg) in [
        (
            "virtual=web.example:80\n",
            1,
            Unsupported,
            "virtual: 'web.example' is not an address (host names are not resolved)",
        ),
        ("virtual=192.0.2.1\n", 1, Syntax, "virtual: needs a port"),
        ("virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n\tscheduler=wlc\n\tfoo=1\n", 4, Syntax, "foo: unknown directive"),
        ("    real=10.0.0.1 gate\n", 1, Syntax, "real: indented line outside a virtual section"),
        (
            "virtual=192.0.2.1:80\n\treal6=[::1]:80 gate\n",
            2,
            Value,
            "real6: virtual= takes real= and fallback=, virtual6= takes real6= and fallback6=",
        ),
        (
            "virtual=192.0.2.1:80\n\treal=10.0.0.9->10.0.0.1 gate\n",
            2,
            Value,
            "real: a range runs from a lower to a higher IPv4 address",
        ),
        ("virtual=192.0.2.1:80\n\treal=10.0.0.1 gate x:1\n", 2, Syntax, "real: unexpected 'x:1'"),
        ("virtual=192.0.2.1:80\n\tnetmask=255.0.255.0\n", 2, Value, "netmask: not a contiguous netmask"),
        (
            "virtual=7\n\tprotocol=tcp\n",
            2,
            Value,
            "protocol: must be tcp or udp for an address, fwm for a firewall mark",
        ),
        ("checktimeout=0\n", 1, Value, "checktimeout: must be more than 0"),
        ("quiescent=maybe\n", 1, Value, "quiescent: must be 'yes' or 'no'"),
        ("virtual=192.0.2.1:80\nvirtual=192.0.2.1:80\n", 2, Duplicate, "virtual: TCP 192.0.2.1:80 is configured twice"),
        (
            "virtual=192.0.2.1:80\n\treal=10.0.0.0->10.0.255.255 gate\n",
            2,
            Limit,
            "real: a virtual service may have at most 4096 real servers",
        ),
    ] {
        let e = parse(text, "ld.cf").unwrap_err();
        assert_eq!((e.file.as_str(), e.line, e.kind, e.message.as_str()), ("ld.cf", line, kind, msg), "{text}");
    }
}

#[test]
fn the_setup_follows_checktype() {
    let p = ok("virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n\tchecktype=off\n\tscheduler=first\n\tfallback=10.0.0.9\n\
                virtual=192.0.2.2:80\n\treal=10.0.0.2 gate 2\n\tchecktype=on\n\tscheduler=first\n\
                virtual=192.0.2.3:80\n\treal=10.0.0.3 masq\n\tchecktype=connect\n\tscheduler=first\n\tpersistent=300\n\tnetmask=255.255.255.0\n\
                \tfallback=10.0.0.9:8080 masq\n");
    let mut d = crate::Director::new(DirectorConfig::default(), factory);
    let mut m = crate::health::Monitor::new(1);
    let deployed = p.config.apply(&mut d, &mut m, crate::Instant::ZERO).unwrap();
    assert_eq!(deployed.servers.len(), 1);
    assert_eq!(
        save(&d),
        "-A -t 192.0.2.1:80 -s first\n\
         -A -t 192.0.2.2:80 -s first\n-a -t 192.0.2.2:80 -r 10.0.0.2:80 -g -w 2\n\
         -A -t 192.0.2.3:80 -s first -p 300 -M 255.255.255.0\n-a -t 192.0.2.3:80 -r 10.0.0.3:80 -m -w 0\n\
         -a -t 192.0.2.3:80 -r 10.0.0.9:8080 -m -w 1\n"
    );
}

#[test]
fn a_reload_keeps_what_stays_and_refuses_a_bad_file_whole() {
    use crate::health::{Detail, Outcome, State};
    let first = ok("virtual=192.0.2.2:80\n\treal=10.0.0.2 gate 2\n\tchecktype=on\n\tscheduler=first\n\
                    virtual=192.0.2.3:80\n\treal=10.0.0.3 masq\n\treal=10.0.0.4 masq\n\tchecktype=connect\n\tscheduler=first\n");
    let mut d = crate::Director::new(DirectorConfig::default(), factory);
    let mut m = crate::health::Monitor::new(1);
    let t0 = crate::Instant::ZERO;
    first.config.apply(&mut d, &mut m, t0).unwrap();
    let key = ServiceKey::tcp(ip("192.0.2.3"), 80);
    let rs3 = m.find(&key, &crate::Endpoint::new(ip("10.0.0.3"), 80)).unwrap();
    // 10.0.0.3 passes its check (ldirectord: one pass is enough) and goes in at weight 1.
    while let Some(p) = m.poll(t0) {
        let outcome = if p.server == rs3 { Outcome::up(Detail::Passed) } else { Outcome::down(Detail::Refused) };
        m.report(&mut d, t0, p.id, outcome).unwrap();
    }
    assert_eq!(m.server(rs3).unwrap().state(), State::Up);

    // The new file: 10.0.0.2 re-weighted, 10.0.0.4 gone, 10.0.0.5 new, a new service.
    let second = ok("virtual=192.0.2.2:80\n\treal=10.0.0.2 gate 5\n\tchecktype=on\n\tscheduler=first\n\
                     virtual=192.0.2.3:80\n\treal=10.0.0.3 masq\n\treal=10.0.0.5 masq\n\tchecktype=connect\n\tscheduler=first\n\
                     virtual=192.0.2.4:80\n\treal=10.0.0.6 gate\n\tchecktype=on\n\tscheduler=first\n");
    let t1 = t0 + Duration::from_secs(1);
    let r = second.config.deployment().reload(&mut d, &mut m, t1).unwrap();
    assert!(!r.commands.iter().any(|c| matches!(c, Command::Clear | Command::DelService(_))));
    let e = |a: &str| (key, crate::Endpoint::new(ip(a), 80));
    assert_eq!((r.checks_stopped, r.checks_started), (alloc::vec![e("10.0.0.4")], alloc::vec![e("10.0.0.5")]));
    // The unchanged checked server kept its check state, its handle and its place.
    let s3 = m.server(rs3).unwrap();
    assert_eq!((s3.state(), s3.since()), (State::Up, t0));
    let mut table: Vec<String> = save(&d).lines().map(String::from).collect();
    table.sort();
    // What ipvsadm -Sn shows once ldirectord has done the same: the new server starts down
    // (quiescent: in at weight 0), the unchecked ones at their weights.
    assert_eq!(
        table,
        [
            "-A -t 192.0.2.2:80 -s first",
            "-A -t 192.0.2.3:80 -s first",
            "-A -t 192.0.2.4:80 -s first",
            "-a -t 192.0.2.2:80 -r 10.0.0.2:80 -g -w 5",
            "-a -t 192.0.2.3:80 -r 10.0.0.3:80 -m -w 1",
            "-a -t 192.0.2.3:80 -r 10.0.0.5:80 -m -w 0",
            "-a -t 192.0.2.4:80 -r 10.0.0.6:80 -g -w 1",
        ]
    );

    // A file with a server given twice is refused at its line, and nothing changes.
    let before = save(&d);
    let bad = ok(
        "virtual=192.0.2.3:80\n\treal=10.0.0.3 masq\n\treal=10.0.0.3 masq\n\tchecktype=connect\n\tscheduler=first\n",
    );
    let err = bad.config.deployment().reload(&mut d, &mut m, t1).unwrap_err();
    assert_eq!((err.line, err.kind), (3, ErrorKind::Duplicate));
    assert_eq!(save(&d), before);
    assert_eq!(m.server(rs3).unwrap().state(), State::Up);
}
