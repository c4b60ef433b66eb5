//! keepalived.conf against keepalived's own samples (`tests/data/keepalived-samples/`, from
//! the Debian package): every one parses; its LVS part, set up on a director and a health
//! monitor at time zero, gives the `ipvsadm -Sn` keepalived would program at startup (the
//! `.rules` files, written by hand from keepalived's documentation and the sample); its VRRP
//! part builds a group; and a broken copy of each is refused with the file and line.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use lvs::core::config::keepalived::{self, Interface, Options, TrackKind};
use lvs::core::config::save;
use lvs::core::config::source::{ConfigError, MemSource};
use lvs::core::health::Monitor;
use lvs::core::sync::Role;
use lvs::core::vrrp::{Auth, State};
use lvs::{DirectorConfig, Instant};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/keepalived-samples")
}

/// The samples, by file name: each `keepalived.conf.*`, its expected rules in
/// `expected/NAME.rules` (a folder of their own: one sample is `keepalived.conf.vrrp.rules`).
fn samples() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("keepalived.conf."))
        .map(|n| {
            let text = fs::read_to_string(dir().join(&n)).unwrap();
            (n, text)
        })
        .collect();
    out.sort();
    out
}

/// The sample's options: conditional_conf says to run keepalived with `-i high` or `-i low`.
fn options(name: &str) -> Options {
    let config_id = name.ends_with("conditional_conf").then(|| "high".to_string());
    Options { config_id, ..Options::default() }
}

fn parse(name: &str, text: &str) -> Result<keepalived::Parsed, ConfigError> {
    keepalived::parse(&mut MemSource::new().with(name, text), name, &options(name))
}

/// The interfaces the samples run on, as an application would describe them.
fn interfaces(name: &str) -> Option<Interface> {
    let (port, addr): (u16, [u8; 4]) = match name {
        "eth0" => (0, [192, 168, 200, 2]),
        "eth1" => (1, [192, 168, 201, 2]),
        "eth0.1" => (2, [192, 168, 200, 3]),
        _ => return None,
    };
    Some(Interface { port, v4: Some(addr.into()), v6: None })
}

#[test]
fn every_sample_parses_and_programs_what_keepalived_would() {
    let all = samples();
    assert_eq!(all.len(), 25, "the 25 samples of keepalived 2.2.7");
    for (name, text) in &all {
        let parsed = parse(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut d = lvs::director(DirectorConfig::default());
        let mut m = Monitor::new(1);
        let applied =
            parsed.config.apply(&mut d, &mut m, Instant::ZERO, &interfaces).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = fs::read_to_string(dir().join("expected").join(format!("{name}.rules"))).unwrap();
        assert_eq!(save(&d), expected, "{name}: ipvsadm -Sn");
        assert_eq!(applied.vrrp.instances.len(), parsed.config.vrrp_instances.len(), "{name}");
        for w in &parsed.warnings {
            assert!(w.file == *name && w.line > 0 && !w.keyword.is_empty(), "{name}: {w}");
        }
    }
}

#[test]
fn what_the_samples_say_beyond_the_table() {
    let by_name: BTreeMap<String, String> = samples().into_iter().collect();
    let get = |n: &str| parse(n, &by_name[n]).unwrap();

    // keepalived.conf.SSL_GET: both urls are checked (keepalived's checker passes only when
    // every url does), each with TLS, its digest and keepalived's timing; AH authentication
    // is warned about.
    let p = get("keepalived.conf.SSL_GET");
    let checks = &p.config.virtual_servers[0].real_servers[0].checks;
    let urls: Vec<(String, u8)> = checks
        .iter()
        .map(|plan| match &*plan.check {
            lvs::core::health::Check::Http(h) => {
                assert!(h.tls);
                (h.path.clone(), h.digest.map_or(0, |d| d[0]))
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(urls, [("/".to_string(), 0xff), ("/mrtg/".to_string(), 0x9b)]);
    for plan in checks {
        assert_eq!(plan.interval, std::time::Duration::from_secs(6));
        assert_eq!(plan.timeout, std::time::Duration::from_secs(3));
        assert_eq!((plan.fall, plan.fastinter), (4, Some(std::time::Duration::from_secs(3))));
    }
    let lines: Vec<(u32, &str)> = p.warnings.iter().map(|w| (w.line, w.keyword.as_str())).collect();
    assert!(lines.contains(&(20, "auth_type")) && !lines.iter().any(|(_, k)| *k == "url"), "{lines:?}");
    assert_eq!(p.config.vrrp_instances[0].auth, Auth::None);

    // keepalived.conf.quorum: alpha, quorum 7, hysteresis 2, omega, the scripts kept.
    let q = &get("keepalived.conf.quorum").config.virtual_servers[0];
    assert!(q.policy.alpha && q.policy.omega);
    assert_eq!((q.policy.quorum, q.policy.hysteresis), (7, 2));
    assert_eq!(q.quorum_up.as_deref(), Some("/usr/local/sbin/quorum-up.sh"));
    assert_eq!(q.real_servers[0].checks[0].connect_port, Some(80));

    // keepalived.conf.sample: the sorry server waits until quorum is lost.
    let s = &get("keepalived.conf.sample").config;
    assert_eq!(s.virtual_servers[0].policy.sorry_server.unwrap().endpoint.to_string(), "192.168.200.200:1358");
    assert!(!s.vrrp_instances[0].preempt);

    // keepalived.conf.misc_check_arg: the quoted path is a program and its arguments.
    let m = get("keepalived.conf.misc_check_arg");
    match &*m.config.virtual_servers[0].real_servers[0].checks[0].check {
        lvs::core::health::Check::Misc(c) => {
            assert_eq!((c.program.as_str(), c.args.len()), ("/usr/local/bin/script.sh", 2))
        }
        other => panic!("{other:?}"),
    }

    // keepalived.conf.conditional_conf: -i high and -i low read different lines.
    let text = &by_name["keepalived.conf.conditional_conf"];
    let high = parse("keepalived.conf.conditional_conf", text).unwrap().config;
    let low =
        keepalived::parse_str(text, &Options { config_id: Some("low".into()), ..Options::default() }).unwrap().config;
    assert_eq!((high.vrrp_instances[0].priority, low.vrrp_instances[0].priority), (170, 85));
    assert_eq!(low.vrrp_scripts[0].script, "/etc/keepalived/scripts/check_low_VI_0.sh");
    assert!(keepalived::parse_str(text, &Options::default()).is_err(), "no -i: the script has no command");

    // keepalived.conf.vrrp.localcheck: scripts and interfaces become trackers.
    let lc = get("keepalived.conf.vrrp.localcheck").config;
    let mut d = lvs::director(DirectorConfig::default());
    let a = lc.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &|n: &str| {
        Some(Interface { port: n.as_bytes()[3].into(), v4: Some([192, 168, 200, 2].into()), v6: None })
    });
    let a = a.unwrap();
    let kinds: Vec<&TrackKind> = a.vrrp.trackers.iter().map(|t| &t.kind).collect();
    for want in ["eth0", "eth1", "eth2", "eth3"] {
        assert!(kinds.contains(&&TrackKind::Interface(want.into())), "{want}");
    }
    assert!(kinds.contains(&&TrackKind::Script("chk_sshd".into())));

    // keepalived.conf.vrrp.lvs_syncd: the sync daemon follows VI_1, syncid its VRID; the
    // backup daemon runs until the instance is master.
    let ls = get("keepalived.conf.vrrp.lvs_syncd").config;
    let mut d = lvs::director(DirectorConfig::default());
    let a = ls.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &interfaces).unwrap();
    assert_eq!(d.sync_daemon(Role::Backup).map(|c| (c.ifname.clone(), c.syncid)), Some(("eth1".into(), 51)));
    assert!(d.sync_daemon(Role::Master).is_none());
    let follow = a.sync.unwrap();
    assert_eq!(follow.instance, a.vrrp.instance("VI_1"));
    d.execute_all(&follow.commands(&d, true)).unwrap();
    assert!(d.sync_daemon(Role::Master).is_some() && d.sync_daemon(Role::Backup).is_none());
    assert_eq!(a.vrrp.sync_groups.len(), 1);

    // keepalived.conf.vrrp.sync: the group runs, and a sync group moves together.
    let sy = get("keepalived.conf.vrrp.sync").config;
    let mut d = lvs::director(DirectorConfig::default());
    let mut a = sy.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &interfaces).unwrap();
    a.vrrp.group.start(Instant::ZERO);
    let states: Vec<State> = a.vrrp.group.instances().map(|(_, i)| i.state()).collect();
    assert!(states.iter().all(|s| *s == State::Backup), "{states:?}");
}

/// The line of the last block opened at the left margin: where the parser must point when that
/// block's closing brace is missing.
fn last_top_block(text: &str) -> u32 {
    let line =
        text.lines().enumerate().filter(|(_, l)| l.contains('{') && !l.starts_with([' ', '\t', '#', '!'])).last();
    line.map(|(i, _)| i as u32 + 1).unwrap()
}

#[test]
fn a_broken_copy_of_each_sample_names_its_file_and_line() {
    for (name, text) in samples() {
        // The last closing brace removed: the block it closed is reported where it opens.
        let cut = text.rfind('}').unwrap();
        let broken = format!("{}{}", &text[..cut], &text[cut + 1..]);
        let e = parse(&name, &broken).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), (name.as_str(), last_top_block(&text)), "{name}: {e}");
        assert!(e.to_string().starts_with(&format!("{name}:{}: block of '", e.line)), "{e}");

        // A bad value after the last line: reported at that line, and nothing is applied.
        let lines = text.lines().count() as u32;
        let broken = format!("{text}\nvirtual_server 192.0.2.1 eighty {{\n}}\n");
        let e = parse(&name, &broken).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), (name.as_str(), lines + 2), "{name}: {e}");
        assert!(e.message.contains("bad number 'eighty'"), "{e}");
    }
}

#[test]
fn a_configuration_the_director_refuses_changes_nothing() {
    // The second service names a scheduler the director does not have: the first is not added.
    let text = "virtual_server 192.0.2.1 80 {\n  lb_algo rr\n  real_server 10.0.0.1 80 {\n  }\n}\n\
                virtual_server 192.0.2.2 80 {\n  lb_algo nosuch\n}\n";
    let parsed = keepalived::parse_str(text, &Options::default()).unwrap();
    let mut d = lvs::director(DirectorConfig::default());
    let e = parsed.config.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &interfaces).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("keepalived.conf", 6), "{e}");
    assert_eq!(d.services().count(), 0);
}

#[test]
fn files_and_includes_come_from_the_filesystem() {
    use lvs::files::FsSource;
    let root = std::env::temp_dir().join(format!("lvs-keepalived-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("conf.d")).unwrap();
    fs::create_dir_all(root.join("vs")).unwrap();
    let main = root.join("keepalived.conf");
    fs::write(&main, "global_defs {\n router_id lab\n}\ninclude conf.d/*.conf\ninclude vs/{web,dns}.inc\n").unwrap();
    fs::write(root.join("conf.d/20-b.conf"), "vrrp_script b {\n script /bin/true\n}\n").unwrap();
    fs::write(root.join("conf.d/10-a.conf"), "vrrp_script a {\n script /bin/true\n}\n").unwrap();
    fs::write(root.join("conf.d/.hidden.conf"), "garbage {\n").unwrap();
    fs::write(root.join("vs/web.inc"), "virtual_server 192.0.2.1 80 {\n}\n").unwrap();
    fs::write(root.join("vs/dns.inc"), "virtual_server 192.0.2.1 53 {\n protocol UDP\n bad keyword\n}\n").unwrap();
    let p = keepalived::parse(&mut FsSource, main.to_str().unwrap(), &Options::default()).unwrap();
    let scripts: Vec<&str> = p.config.vrrp_scripts.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(scripts, ["a", "b"], "sorted, the hidden file left out");
    let ports: Vec<u16> = p.config.virtual_servers.iter().map(|v| v.keys[0].port()).collect();
    assert_eq!(ports, [80, 53], "brace alternatives in order");
    let w = &p.warnings[0];
    assert_eq!((w.file.as_str(), w.line, w.keyword.as_str()), (root.join("vs/dns.inc").to_str().unwrap(), 3, "bad"));
    // An include of the including file is a cycle.
    fs::write(root.join("vs/web.inc"), "include ../keepalived.conf\n").unwrap();
    let e = keepalived::parse(&mut FsSource, main.to_str().unwrap(), &Options::default()).unwrap_err();
    assert!(e.message.starts_with("include cycle: "), "{e}");
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn every_truncation_of_every_sample_reads_or_errs() {
    for (name, text) in samples() {
        for cut in (0..=text.len()).filter(|c| text.is_char_boundary(*c)) {
            if let Ok(p) = parse(&name, &text[..cut]) {
                let mut d = lvs::director(DirectorConfig::default());
                let _ = p.config.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &interfaces);
            }
        }
    }
}

/// The servers behind `tests/data/keepalived-checkers/keepalived.conf`, as a prober would find
/// them: which accept TCP, and what each HTTP path answers.
struct World {
    tcp_up: Vec<std::net::IpAddr>,
    pages: BTreeMap<(std::net::IpAddr, String), &'static [u8]>,
}

impl World {
    fn healthy() -> World {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let mut pages = BTreeMap::new();
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n";
        pages.insert((ip("192.0.2.11"), "/health".into()), ok);
        pages.insert((ip("192.0.2.11"), "/ready".into()), &b"HTTP/1.1 200 OK\r\n\r\nReady: YES\n"[..]);
        pages.insert((ip("192.0.2.13"), "/".into()), &b"HTTP/1.1 200 OK\r\n\r\n<h1>shop</h1>"[..]);
        World { tcp_up: vec![ip("192.0.2.11"), ip("192.0.2.12"), ip("192.0.2.13")], pages }
    }

    /// A probe's outcome: TCP by the address, HTTP by running the check's own exchange over
    /// the page (so the status, digest and regex are judged as the prober would).
    fn answer(&self, p: &lvs::core::health::Probe) -> lvs::core::health::Outcome {
        use lvs::core::health::{Check, Detail, Outcome, Step};
        let up = self.tcp_up.contains(&p.target.addr);
        match &*p.check {
            Check::Tcp(_) if up => Outcome::up(Detail::Passed),
            Check::Http(h) if up => {
                let Some(page) = self.pages.get(&(p.target.addr, h.path.clone())) else {
                    return Outcome::down(Detail::Status(404));
                };
                let mut x = p.exchange().unwrap();
                assert!(matches!(x.start(), Step::Send(_)));
                match x.received(page) {
                    Step::Done(o) => o,
                    _ => x.closed(),
                }
            }
            _ => Outcome::down(Detail::Refused),
        }
    }
}

/// Runs the monitor's loop for `secs` seconds of simulated time, probes answered by `world`.
fn run_for(d: &mut lvs::Director, m: &mut Monitor, now: &mut Instant, secs: u64, world: &World) {
    let until = *now + std::time::Duration::from_secs(secs);
    while let Some(t) = m.next_deadline().filter(|t| *t <= until) {
        *now = t;
        m.tick(d, t);
        while let Some(p) = m.poll(t) {
            let o = world.answer(&p);
            m.report(d, t, p.id, o).unwrap();
        }
    }
    *now = until;
}

#[test]
fn several_checkers_urls_a_regex_and_per_server_settings() {
    use lvs::core::health::{Detail, Event};
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/keepalived-checkers/keepalived.conf");
    let text = fs::read_to_string(&path).unwrap();
    let parsed = keepalived::parse_str(&text, &Options::default()).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let mut d = lvs::director(DirectorConfig::default());
    let mut m = Monitor::new(7);
    let mut now = Instant::ZERO;
    parsed.config.apply(&mut d, &mut m, now, &interfaces).unwrap();
    // At startup keepalived adds the servers whose checkers have no alpha: .13 waits.
    let head = "-A -t 203.0.113.100:80 -s rr\n";
    let rs11 = "-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g -w 2\n";
    let rs12 = "-a -t 203.0.113.100:80 -r 192.0.2.12:80 -g -w 3\n";
    let rs13 = "-a -t 203.0.113.100:80 -r 192.0.2.13:80 -g -w 1\n";
    assert_eq!(save(&d), format!("{head}{rs11}{rs12}"));
    let listing = lvs::core::health::status(&m, now);
    assert!(listing.contains("  -> 192.0.2.11:80                UP     3 chk  2 "), "{listing}");

    // Everything healthy: .13's page has no "maintenance", so its check passes and it joins.
    let mut world = World::healthy();
    run_for(&mut d, &mut m, &mut now, 3, &world);
    assert_eq!(save(&d), format!("{head}{rs11}{rs12}{rs13}"));
    let events: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
    assert!(matches!(&events[..], [Event::ServerUp { reason: Detail::Status(200), .. }]), "{events:?}");

    // /ready stops saying yes (its TCP check and /health still pass): .11 goes. .12 refuses
    // connections: left at weight 0 (its own inhibit_on_failure). .13 says maintenance: goes.
    world.pages.insert(("192.0.2.11".parse().unwrap(), "/ready".into()), b"HTTP/1.1 200 OK\r\n\r\nready: no\n");
    world.pages.insert(("192.0.2.13".parse().unwrap(), "/".into()), b"HTTP/1.1 200 OK\r\n\r\nmaintenance");
    world.tcp_up.retain(|a| *a != "192.0.2.12".parse::<std::net::IpAddr>().unwrap());
    run_for(&mut d, &mut m, &mut now, 3, &world);
    assert_eq!(save(&d), format!("{head}-a -t 203.0.113.100:80 -r 192.0.2.12:80 -g -w 0\n"));
    let lines: Vec<String> = std::iter::from_fn(|| m.poll_event()).map(|e| e.to_string()).collect();
    for want in [
        "TCP 203.0.113.100:80: real server 192.0.2.11:80 down (HTTP GET /ready: expected reply not found)",
        "TCP 203.0.113.100:80: real server 192.0.2.12:80 down (connection refused)",
        "TCP 203.0.113.100:80: real server 192.0.2.13:80 down (reply matched regex_no_match)",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want} in {lines:?}");
    }
    let listing = lvs::core::health::status(&m, now);
    assert!(listing.contains("HTTP GET /ready            down   HTTP"), "{listing}");
    assert!(listing.contains("HTTP GET /health           up     HTTP"), "{listing}");

    // All healthy again: every server back at its weight.
    let world = World::healthy();
    run_for(&mut d, &mut m, &mut now, 3, &world);
    assert_eq!(save(&d), format!("{head}{rs11}{rs12}{rs13}"));
}
