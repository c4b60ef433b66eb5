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
