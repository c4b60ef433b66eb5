//! keepalived.conf: the reader (files, comments, conditionals, parameters, limits), the
//! grammar, each section's defaults and errors, and what the model sets up.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;

use super::*;
use crate::addr::{Af, ServiceKey};
use crate::config::save;
use crate::config::source::ErrorKind;
use crate::dest::{FwdMethod, TunConfig, TunCsum};
use crate::health::{Check, Monitor};
use crate::sync::Role;
use crate::testkit::factory;
use crate::vrrp::Auth;
use crate::{Command, Director, DirectorConfig, Instant};

fn ok(text: &str) -> Parsed {
    parse_str(text, &Options::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ConfigError {
    parse_str(text, &Options::default()).unwrap_err()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lines(src: &mut MemSource, path: &str, opts: &Options) -> Result<Vec<String>, ConfigError> {
    read::read(src, path, opts).map(|(l, _, _)| l.into_iter().map(|l| l.text).collect())
}

// ----- reading -----

#[test]
fn comments_start_anywhere_outside_quotes() {
    let mut m = MemSource::new().with("k", "a b # c\n! d\ne \"f # g\" ! h\ni 'j!k'\n   \n");
    assert_eq!(lines(&mut m, "k", &Options::default()).unwrap(), ["a b", "e \"f # g\"", "i 'j!k'"]);
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let text = "@main router_id main\n@backup router_id backup\n@^main peer 1\n@^backup peer 2\nplain\n";
    let read = |id: Option<&str>| {
        let opts = Options { config_id: id.map(String::from), ..Options::default() };
        lines(&mut MemSource::new().with("k", text), "k", &opts).unwrap()
    };
    assert_eq!(read(Some("main")), ["router_id main", "peer 2", "plain"]);
    assert_eq!(read(Some("backup")), ["router_id backup", "peer 1", "plain"]);
    assert_eq!(read(None), ["peer 1", "peer 2", "plain"]);
}

#[test]
fn parameters_are_substituted_where_they_are_used() {
    // The man page's examples: substitution at use, braces where no whitespace follows,
    // conditionals inside values, undefined names left alone.
    let text = "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n${ADDRESS_BASE}.100/32\n\
                $ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n$IF_MAIN=@main\n$IF_MAIN priority 240\n\
                $X=1\n$Xy ${UNDEF} $X\n";
    let opts = Options { config_id: Some("main".into()), ..Options::default() };
    assert_eq!(
        lines(&mut MemSource::new().with("k", text), "k", &opts).unwrap(),
        ["10.2.0.100/32", "10.2.10.100/32", "priority 240", "$Xy ${UNDEF} 1"]
    );
}

#[test]
fn multi_line_parameters_expand_in_order() {
    // After the man page: a block defined over several lines, with definitions inside it that
    // take effect line by line as it is expanded.
    let text = "$RS= \\\n  real_server 192.168.${VS_NUM}.${RS_NUM} 80 { \\\n  weight 1 \\\n  }\n\
                $VS= \\\nvirtual_server 10.0.${VS_NUM}.4 80 { \\\n $RS_NUM=1 \\\n $RS \\\n $RS_NUM=2 \\\n $RS \\\n}\n\
                $VS_NUM=0\n$VS\n";
    let got = lines(&mut MemSource::new().with("k", text), "k", &Options::default()).unwrap();
    assert_eq!(
        got,
        [
            "virtual_server 10.0.0.4 80 {",
            "real_server 192.168.0.1 80 {",
            "weight 1",
            "}",
            "real_server 192.168.0.2 80 {",
            "weight 1",
            "}",
            "}"
        ]
    );
}

#[test]
fn runaway_substitution_is_bounded() {
    let opts = Options { limits: Limits { max_bytes: 1 << 16, ..Limits::default() }, ..Options::default() };
    let e = lines(&mut MemSource::new().with("k", "$A=x$A $A\n$A\n"), "k", &opts).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("larger than"), "{e}");
    let e = lines(&mut MemSource::new().with("k", "$A=${A}${A}\n$A\n"), "k", &opts).unwrap_err();
    assert!(e.message.contains("larger than") || e.message.contains("longer than"), "{e}");
    let e = lines(&mut MemSource::new().with("k", "~SEQ(N, 1, 3) ip 10.0.0.${N}\n"), "k", &Options::default());
    assert!(e.unwrap_err().message.contains("not supported"));
}

#[test]
fn includes_are_relative_globbed_and_in_order() {
    let mut m = MemSource::new()
        .with("/etc/k/keepalived.conf", "a\ninclude conf.d/*.conf\nz\n")
        .with("/etc/k/conf.d/1.conf", "b\ninclude ../more/{x,y}.inc\n")
        .with("/etc/k/conf.d/2.conf", "c\n")
        .with("/etc/k/more/x.inc", "x\n")
        .with("/etc/k/more/y.inc", "y\n");
    let (got, files, warnings) = read::read(&mut m, "/etc/k/keepalived.conf", &Options::default()).unwrap();
    let text: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(text, ["a", "b", "x", "y", "c", "z"]);
    assert_eq!(files.name(got[2].origin), "/etc/k/more/x.inc");
    assert_eq!(got[5].origin.line, 3);
    assert!(warnings.is_empty());
    // An include matching nothing warns; includea makes it an error.
    let mut m = MemSource::new().with("k", "include none*\n");
    let (_, _, w) = read::read(&mut m, "k", &Options::default()).unwrap();
    assert_eq!((w[0].line, w[0].keyword.as_str()), (1, "include"));
    let e = read::read(&mut MemSource::new().with("k", "\nincludea none*\n"), "k", &Options::default()).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("k", 2));
}

#[test]
fn include_cycles_depth_and_size_are_refused() {
    let mut m = MemSource::new().with("a", "include b\n").with("b", "x\ninclude a\n");
    let e = read::read(&mut m, "a", &Options::default()).unwrap_err();
    assert_eq!((e.file.as_str(), e.line, e.kind), ("b", 2, ErrorKind::Reference));
    assert_eq!(e.message, "include cycle: a -> b -> a");
    let mut deep = MemSource::new();
    for i in 0..40 {
        deep = deep.with(&alloc::format!("f{i}"), &alloc::format!("include f{}\n", i + 1));
    }
    let e = read::read(&mut deep, "f0", &Options::default()).unwrap_err();
    assert!(e.message.contains("nested deeper than 16") && e.kind == ErrorKind::Limit, "{e}");
    let big = "x\n".repeat(1000);
    let opts = Options { limits: Limits { max_bytes: 1500, ..Limits::default() }, ..Options::default() };
    let e = read::read(&mut MemSource::new().with("k", &big), "k", &opts).unwrap_err();
    assert_eq!((e.file.as_str(), e.line, e.message.as_str()), ("k", 0, "configuration larger than 1500 bytes"));
    let e = read::read(&mut MemSource::new(), "missing.conf", &Options::default()).unwrap_err();
    assert_eq!(e.to_string(), "missing.conf:0: cannot read missing.conf: no such file");
    assert_eq!(e.kind, ErrorKind::Read);
}

// ----- grammar -----

#[test]
fn words_quotes_escapes_and_braces() {
    let p = ok("vrrp_script s {\n script \"a b\"'c d'e \"\\x41\\t\\101\\\"\"\n}\n");
    assert_eq!(p.config.vrrp_scripts[0].script, "a bc de A\tA\"");
    assert!(err("a \"open\n").message.contains("unterminated"));
}

#[test]
fn blocks_open_on_the_line_or_the_next_and_must_close() {
    let p = ok("virtual_server 10.0.0.1 80\n{\n  real_server 10.0.0.2 80\n  {\n  }\n}\n");
    assert_eq!(p.config.virtual_servers[0].real_servers.len(), 1);
    let e = err("global_defs {\n  router_id x\n\nvirtual_server 10.0.0.1 80 {\n}\n");
    assert_eq!((e.line, e.message.as_str()), (1, "block of 'global_defs' is not closed"));
    assert_eq!(err("}\n").message, "'}' without a block to close");
    assert_eq!(err("{\n}\n").message, "'{' without a keyword");
    let nested = "a {\n".repeat(17) + &"}\n".repeat(17);
    assert_eq!(err(&nested).message, "blocks nested deeper than 16");
}

// ----- sections -----

#[test]
fn virtual_server_defaults_are_keepalived_s() {
    let p = ok("virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 {\n }\n persistence_timeout\n}\n");
    let vs = &p.config.virtual_servers[0];
    assert_eq!(vs.keys, [ServiceKey::tcp(ip("192.0.2.1"), 80)]);
    assert_eq!((vs.scheduler.as_str(), vs.fwd, vs.persistence), ("wlc", FwdMethod::Masq, Some(360)));
    let rs = &vs.real_servers[0];
    assert_eq!((rs.server.weight, rs.server.fwd, rs.checks.is_empty()), (1, FwdMethod::Masq, true));
    let d = p.config.deployment();
    assert_eq!(d.commands.len(), 2);
    assert_eq!(
        d.commands[1].1,
        Command::AddDest(vs.keys[0], crate::RealServer::new(ip("10.0.0.1"), 80, FwdMethod::Masq, 1))
    );
}

#[test]
fn service_settings_are_read() {
    let p = ok("virtual_server fwmark 7 {\n lvs_sched sh\n sh-port\n ops\n lvs_method TUN type ipip\n\
                persistence_granularity 255.255.255.0\n protocol UDP\n quorum 3\n hysteresis 1\n omega\n\
                sorry_server 10.0.0.9 8080\n sorry_server_lvs_method DR\n sorry_server_inhibit\n\
                real_server 2001:db8::1 80 { weight 0\n uthreshold 10\n lthreshold 2\n lvs_method DR\n }\n}\n");
    let vs = &p.config.virtual_servers[0];
    assert_eq!(vs.keys, [ServiceKey::Fwmark { mark: 7, af: Af::V6 }], "the real servers' family");
    assert_eq!((vs.scheduler.as_str(), vs.sched_flags.0, vs.one_packet, vs.fwd), ("sh", 2, true, FwdMethod::Tunnel));
    assert_eq!(vs.granularity, Some(24));
    assert_eq!(
        (vs.policy.quorum, vs.policy.hysteresis, vs.policy.omega, vs.policy.sorry_server_inhibit),
        (3, 1, true, true)
    );
    let sorry = vs.policy.sorry_server.unwrap();
    assert_eq!((sorry.endpoint.port, sorry.fwd), (8080, FwdMethod::Route));
    let rs = vs.real_servers[0].server;
    assert_eq!((rs.weight, rs.u_threshold, rs.l_threshold, rs.fwd), (0, 10, 2, FwdMethod::Route));
    assert_eq!(err("virtual_server 1.2.3.4 80 {\n persistence_granularity 255.0.255.0\n}\n").line, 2);
    assert_eq!(err("virtual_server 1.2.3.4 80 {\n protocol ICMP\n}\n").line, 2);
}

#[test]
fn tunnel_types_are_read_as_svr_forwarding_handler_reads_them() {
    // The virtual server's method and tunnel are its real servers' default (and its sorry
    // server's); a real server's own `lvs_method` replaces both.
    let text = "virtual_server 192.0.2.1 80 {\n lvs_sched first\n lvs_method TUN type gue port 6080 csum\n\
                sorry_server 10.0.0.9 80\n\
                real_server 10.0.0.1 80 {\n }\n\
                real_server 10.0.0.2 80 {\n lb_kind TUN remcsum port 6081 type gue\n }\n\
                real_server 10.0.0.3 80 {\n lvs_method TUN type gre csum nocsum\n }\n\
                real_server 10.0.0.4 80 {\n lvs_method TUN type gre csum\n }\n\
                real_server 10.0.0.5 80 {\n lvs_method TUN\n }\n}\n";
    let p = ok(text);
    let vs = &p.config.virtual_servers[0];
    assert_eq!((vs.fwd, vs.tun), (FwdMethod::Tunnel, TunConfig::gue(6080, TunCsum::Csum)));
    let tuns: Vec<TunConfig> = vs.real_servers.iter().map(|r| r.server.tun).collect();
    assert_eq!(
        tuns,
        [
            TunConfig::gue(6080, TunCsum::Csum),
            TunConfig::gue(6081, TunCsum::RemCsum),
            TunConfig::gre(TunCsum::NoCsum),
            TunConfig::gre(TunCsum::Csum),
            TunConfig::IPIP,
        ]
    );
    assert_eq!(vs.policy.sorry_server.unwrap().tun, TunConfig::gue(6080, TunCsum::Csum));
    // Applied, the table saves as ipvsadm 1.31's print_tunnel_rule writes it.
    let mut d = Director::new(DirectorConfig::default(), factory);
    p.config.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &|_| None).unwrap();
    assert_eq!(
        save(&d),
        "-A -t 192.0.2.1:80 -s first\n\
         -a -t 192.0.2.1:80 -r 10.0.0.1:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n\
         -a -t 192.0.2.1:80 -r 10.0.0.2:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum\n\
         -a -t 192.0.2.1:80 -r 10.0.0.3:80 -i -w 1 --tun-type gre --tun-nocsum\n\
         -a -t 192.0.2.1:80 -r 10.0.0.4:80 -i -w 1 --tun-type gre --tun-csum\n\
         -a -t 192.0.2.1:80 -r 10.0.0.5:80 -i -w 1 --tun-type ipip\n"
    );
    // keepalived's refusals, each at its line.
    for (method, msg) in [
        ("TUN type gue", "gue tunnels require port, otherwise cannot have port."),
        ("TUN type gre port 6080", "gue tunnels require port, otherwise cannot have port."),
        ("TUN port 6080", "gue tunnels require port, otherwise cannot have port."),
        ("TUN csum", "ipip tunnels do not support checksum option."),
        ("TUN type gre remcsum", "gre tunnels do not support remote checksum option."),
        ("TUN type vxlan", "Unknown tunnel type vxlan"),
        ("TUN type gue port 6080 fast", "Invalid tunnel option fast"),
        ("TUN type gue port 0", "0 is outside 1..=65535"),
        ("TUN type gue port", "Missing port for gue tunnel"),
        ("TUN type", "Missing tunnel type"),
    ] {
        let e = err(&alloc::format!("virtual_server 1.2.3.4 80 {{\n lb_kind {method}\n}}\n"));
        assert_eq!(e.line, 2, "{method}");
        assert!(e.to_string().contains(msg), "{method}: {e}");
    }
}

#[test]
fn groups_expand_ranges_prefixes_and_fwmarks() {
    let p = ok("virtual_server_group g {\n 10.0.0.1-3 80\n 10.0.1.8/30\n fd00::1-ae 53\n fwmark 9 inet6\n\
                192.168.0.250-192.168.1.1 443\n}\nvirtual_server group g {\n protocol UDP\n persistence_timeout 60\n}\n");
    let vs = &p.config.virtual_servers[0];
    let keys: Vec<String> = vs.keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(keys.len(), 3 + 4 + 0xae + 1 + 8, "{keys:?}");
    assert_eq!(vs.keys[0], ServiceKey::udp(ip("10.0.0.1"), 80));
    assert_eq!(vs.keys[3], ServiceKey::udp(ip("10.0.1.8"), 0));
    assert_eq!(vs.keys[6], ServiceKey::udp(ip("10.0.1.11"), 0));
    assert_eq!(vs.keys[7 + 0xad], ServiceKey::udp(ip("fd00::ae"), 53));
    assert!(vs.keys.contains(&ServiceKey::Fwmark { mark: 9, af: Af::V6 }));
    assert_eq!(vs.keys.last(), Some(&ServiceKey::udp(ip("192.168.1.1"), 443)));
    assert_eq!(vs.group.as_deref(), Some("g"));
    let e = err("virtual_server_group g {\n 10.0.0.0/8 80\n}\n");
    assert_eq!((e.line, e.message.contains("more than 4096")), (2, true), "{e}");
    assert_eq!(err("virtual_server group nope {\n}\n").message, "virtual_server: no virtual_server_group 'nope'");
    assert_eq!(err("virtual_server_group g {\n 10.0.0.5-1 80\n}\n").line, 2);
}

#[test]
fn checker_settings_take_the_nearest_level() {
    let p = ok("virtual_server 192.0.2.1 80 {\n delay_loop 10\n connect_timeout 7\n retry 2\n virtualhost vs.example\n\
                real_server 10.0.0.1 80 {\n  delay_before_retry 0.5\n  HTTP_GET {\n   url { path /health\n status_code 200-299 503\n }\n\
                   connect_timeout 2.25\n   connect_port 8080\n   bindto 10.0.0.100\n  }\n }\n\
                real_server 10.0.0.2 80 {\n  DNS_CHECK { type AAAA\n name example.org\n }\n }\n\
                real_server 10.0.0.3 80 {\n  UDP_CHECK { payload 0102\n require_reply 01\n max_reply_length 10\n }\n  PING_CHECK {\n  }\n }\n}\n");
    let rs = &p.config.virtual_servers[0].real_servers;
    let http = &rs[0].checks[0];
    assert_eq!((http.interval, http.timeout, http.fall), (Duration::from_secs(10), Duration::from_millis(2250), 3));
    assert_eq!(
        (http.fastinter, http.connect_port, http.bindto),
        (Some(Duration::from_millis(500)), Some(8080), Some(ip("10.0.0.100")))
    );
    match &*http.check {
        Check::Http(h) => {
            assert_eq!((h.path.as_str(), h.virtualhost.as_deref(), h.status.len()), ("/health", Some("vs.example"), 2));
        }
        other => panic!("{other:?}"),
    }
    let dns = &rs[1].checks[0];
    match &*dns.check {
        Check::Dns(d) => assert_eq!((d.name.as_str(), d.qtype), ("example.org", crate::health::dns::qtype::AAAA)),
        other => panic!("{other:?}"),
    }
    assert_eq!((dns.fall, dns.timeout), (3, Duration::from_secs(7)), "the virtual server's retry 2");
    match &*rs[2].checks[0].check {
        Check::Udp(u) => {
            assert_eq!((u.payload.as_slice(), u.expect.as_deref(), u.max_reply), (&[1u8, 2][..], Some(&[1u8][..]), 10))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&*rs[2].checks[1].check, Check::Ping(_)), "every checker runs");
    assert_eq!(rs[2].checks.len(), 2);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn what_is_not_implemented_is_warned_about_with_file_line_and_keyword() {
    let p = ok("global_defs {\n notification_email {\n a@b\n }\n enable_snmp_vrrp\n}\nstatic_routes {\n}\n\
                virtual_server 192.0.2.1 80 {\n ha_suspend\n real_server 10.0.0.1 80 {\n  BFD_CHECK {\n  }\n  HTTP_GET {\n\
                   url { path /\n regex ok\n }\n   http_protocol 1.1\n  }\n }\n}\n");
    let w: Vec<String> = p.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "keepalived.conf:2: notification_email: not implemented by this library; ignored",
            "keepalived.conf:5: enable_snmp_vrrp: not implemented by this library; ignored",
            "keepalived.conf:7: static_routes: not implemented by this library; ignored",
            "keepalived.conf:10: ha_suspend: not implemented by this library; ignored",
            "keepalived.conf:12: BFD_CHECK: not implemented by this library; ignored",
            "keepalived.conf:18: http_protocol: not implemented by this library; ignored",
        ]
    );
}

#[test]
fn bad_values_name_their_line() {
    for (text, line, kind, msg) in [
        ("virtual_server 192.0.2.300 80 {\n}\n", 1, ErrorKind::Value, "virtual_server: bad address '192.0.2.300'"),
        ("virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  weight heavy\n }\n}\n", 3, ErrorKind::Value, "weight: bad number 'heavy'"),
        ("virtual_server 192.0.2.1 80 {\n delay_loop 0\n}\n", 2, ErrorKind::Value, "delay_loop: must be more than 0"),
        ("virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  HTTP_GET {\n   url { digest 00 }\n  }\n }\n}\n", 4, ErrorKind::Value, "digest: bad digest '00'"),
        ("virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  HTTP_GET {\n  }\n }\n}\n", 3, ErrorKind::Syntax, "HTTP_GET: needs a url block"),
        ("virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  MISC_CHECK {\n  }\n }\n}\n", 3, ErrorKind::Syntax, "MISC_CHECK: needs misc_path"),
        ("vrrp_instance v {\n virtual_router_id 256\n}\n", 2, ErrorKind::Value, "virtual_router_id: 256 is outside 1..=255"),
        ("vrrp_instance v {\n interface eth0\n}\n", 1, ErrorKind::Syntax, "vrrp_instance: needs a virtual_router_id"),
        ("vrrp_instance v {\n virtual_router_id 1\n authentication {\n  auth_type PASS\n }\n}\n", 3, ErrorKind::Syntax, "authentication: needs auth_type PASS and auth_pass"),
        ("vrrp_sync_group g {\n group {\n  nope\n }\n}\n", 1, ErrorKind::Reference, "vrrp_sync_group 'g': no vrrp_instance 'nope'"),
        ("vrrp_instance v {\n virtual_router_id 1\n track_script {\n  s\n }\n}\n", 4, ErrorKind::Reference, "track_script: no vrrp_script 's'"),
        ("vrrp_instance v {\n virtual_router_id 1\n}\nvrrp_instance v {\n virtual_router_id 2\n}\n", 4, ErrorKind::Duplicate, "vrrp_instance 'v' is defined twice"),
        ("virtual_server 192.0.2.1 80 {\n}\nvirtual_server 192.0.2.1 80 {\n}\n", 3, ErrorKind::Duplicate, "virtual_server: service TCP 192.0.2.1:80 is configured twice"),
        ("global_defs {\n lvs_sync_daemon eth1 VI_9\n}\n", 2, ErrorKind::Reference, "lvs_sync_daemon: no vrrp_instance 'VI_9'"),
        ("global_defs {\n lvs_timeouts tcp\n}\n", 2, ErrorKind::Syntax, "lvs_timeouts: expected [tcp SECS] [tcpfin SECS] [udp SECS]"),
    ] {
        let e = err(text);
        assert_eq!((e.line, e.kind, e.message.as_str()), (line, kind, msg), "{text}");
    }
}

#[test]
fn vrrp_sections_are_read() {
    let p = ok("global_defs {\n vrrp_garp_master_delay 2\n vrrp_version 2\n lvs_sync_daemon eth1 id 7 port 9000\n}\n\
                vrrp_script chk {\n script \"/bin/check arg\"\n interval 2\n weight -20 reverse\n fall 3\n init_fail\n}\n\
                vrrp_instance VI {\n state MASTER\n interface eth0\n virtual_router_id 9\n priority 150\n advert_int 2\n\
                nopreempt\n preempt_delay 3\n no_accept\n authentication {\n auth_type pass\n auth_pass 123456789\n }\n\
                virtual_ipaddress {\n 192.0.2.1/24 dev eth0\n 192.0.2.2\n }\n unicast_src_ip 192.0.2.9\n unicast_peer {\n 192.0.2.10\n }\n\
                garp_master_repeat 2\n track_interface {\n eth1 weight 10\n eth2\n }\n track_script {\n chk weight 5\n }\n\
                notify_master \"/bin/up x\" root\n}\nvrrp_sync_group G {\n VI\n sync_group_tracking_weight\n}\n");
    let g = &p.config.global;
    let sd = g.sync_daemon.as_ref().unwrap();
    assert_eq!((sd.interface.as_str(), sd.syncid, sd.port, sd.instance.as_deref()), ("eth1", Some(7), 9000, None));
    let s = &p.config.vrrp_scripts[0];
    assert_eq!(
        (s.script.as_str(), s.interval, s.weight, s.reverse, s.fall, s.init_fail),
        ("/bin/check arg", Duration::from_secs(2), -20, true, 3, true)
    );
    let i = &p.config.vrrp_instances[0];
    assert!(i.state_master && !i.preempt);
    assert_eq!(
        (i.vrid, i.priority, i.advert_int, i.preempt_delay),
        (9, 150, Duration::from_secs(2), Duration::from_secs(3))
    );
    assert_eq!((i.accept, i.auth), (Some(false), Auth::password("12345678")));
    assert_eq!(
        (i.vips.clone(), i.src_ip, i.unicast_peers.clone()),
        (vec![ip("192.0.2.1"), ip("192.0.2.2")], Some(ip("192.0.2.9")), vec![ip("192.0.2.10")])
    );
    assert_eq!(i.garp.over(&g.garp).resolve().master_delay, Duration::from_secs(2));
    assert_eq!(i.garp.over(&g.garp).resolve().lower_prio_repeat, 2, "follows the master repeat");
    assert_eq!(
        (i.track_interfaces.len(), i.track_interfaces[0].weight, i.track_scripts[0].weight),
        (2, Some(10), Some(5))
    );
    assert_eq!(i.notify.master.as_deref(), Some("/bin/up x"));
    let sg = &p.config.vrrp_sync_groups[0];
    assert_eq!((sg.members.clone(), sg.tracking_weight), (vec![String::from("VI")], true));
    let w: Vec<(u32, &str)> = p.warnings.iter().map(|w| (w.line, w.keyword.as_str())).collect();
    assert_eq!(w, [(27, "virtual_ipaddress"), (42, "notify_master")]);

    // Set up: the instance on eth0 (from the source address given), trackers for eth0 (its own
    // interface), eth1, eth2 and the script; the sync daemons both run, following no instance.
    let mut d = Director::new(DirectorConfig::default(), factory);
    let mut m = Monitor::new(1);
    let eth = |n: &str| n.starts_with("eth").then_some(Interface { port: 3, v4: None, v6: None });
    let a = p.config.apply(&mut d, &mut m, Instant::ZERO, &eth).unwrap();
    let inst = a.vrrp.group.instance(a.vrrp.instance("VI").unwrap()).unwrap();
    let cfg = inst.config();
    assert_eq!((cfg.version, cfg.port, cfg.primary, cfg.accept), (crate::vrrp::Version::V2, 3, ip("192.0.2.9"), false));
    let kinds: Vec<TrackKind> = a.vrrp.trackers.iter().map(|t| t.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            TrackKind::Interface("eth0".into()),
            TrackKind::Interface("eth1".into()),
            TrackKind::Interface("eth2".into()),
            TrackKind::Script("chk".into())
        ]
    );
    assert!(d.sync_daemon(Role::Master).is_some() && d.sync_daemon(Role::Backup).is_some());
    assert_eq!(a.sync.unwrap().commands(&d, true), []);
    // Without an address of its family the instance cannot send.
    let p = ok("vrrp_instance v {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 192.0.2.1\n }\n}\n");
    let e = p.config.vrrp(Instant::ZERO, &eth).unwrap_err();
    assert_eq!((e.line, e.message.contains("no IPv4 address")), (1, true), "{e}");
    assert_eq!(p.config.vrrp(Instant::ZERO, &|_| None).unwrap_err().message, "unknown interface 'eth0'");
    // What the VRRP room refuses, at the instance.
    let p = ok("vrrp_instance v {\n version 3\n virtual_router_id 1\n unicast_src_ip 192.0.2.9\n\
                authentication {\n auth_type PASS\n auth_pass x\n }\n virtual_ipaddress {\n 192.0.2.1\n }\n}\n");
    let e = p.config.vrrp(Instant::ZERO, &|_| None).unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (1, "vrrp: authentication needs vrrp version 2"));
}

// ----- setting up -----

#[test]
fn the_table_at_startup_follows_alpha_sorry_servers_and_unchecked_servers() {
    let text = "global_defs {\n lvs_flush\n lvs_timeouts tcp 900 udp 60\n}\n\
                virtual_server 192.0.2.1 80 {\n lb_algo first\n alpha\n sorry_server 10.0.0.9\n\
                real_server 10.0.0.1 80 {\n  TCP_CHECK {\n  }\n }\n real_server 10.0.0.2 80 {\n }\n}\n\
                virtual_server 192.0.2.2 80 {\n lb_algo first\n sorry_server 10.0.0.9 80\n}\n\
                virtual_server 192.0.2.3 80 {\n lb_algo first\n sorry_server 10.0.0.9 80\n quorum 5\n inhibit_on_failure\n\
                real_server 10.0.0.3 80 {\n  weight 4\n }\n}\n\
                virtual_server 192.0.2.4 80 {\n lb_algo first\n sorry_server 10.0.0.9 80\n sorry_server_inhibit\n\
                real_server 10.0.0.4 80 {\n }\n}\n";
    let p = ok(text);
    assert_eq!(p.warnings.len(), 1, "an unchecked server does not count toward the quorum: {:?}", p.warnings);
    let mut d = Director::new(DirectorConfig::default(), factory);
    let mut m = Monitor::new(1);
    d.add_service(crate::ServiceConfig::new(ServiceKey::tcp(ip("198.51.100.1"), 1), "first")).unwrap();
    p.config.apply(&mut d, &mut m, Instant::ZERO, &|_| None).unwrap();
    // The old service was flushed; with alpha the checked server is out and, without quorum,
    // the sorry server in (on the service's port); the unchecked one is in regardless. A
    // service without servers, or whose servers miss the quorum, has its sorry server (its
    // servers at weight 0 with inhibit_on_failure); with sorry_server_inhibit the sorry server
    // waits at weight 0.
    assert_eq!(
        save(&d),
        "-A -t 192.0.2.1:80 -s first\n-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1\n-a -t 192.0.2.1:80 -r 10.0.0.9:80 -m -w 1\n\
         -A -t 192.0.2.2:80 -s first\n-a -t 192.0.2.2:80 -r 10.0.0.9:80 -m -w 1\n\
         -A -t 192.0.2.3:80 -s first\n-a -t 192.0.2.3:80 -r 10.0.0.3:80 -m -w 0\n-a -t 192.0.2.3:80 -r 10.0.0.9:80 -m -w 1\n\
         -A -t 192.0.2.4:80 -s first\n-a -t 192.0.2.4:80 -r 10.0.0.4:80 -m -w 1\n-a -t 192.0.2.4:80 -r 10.0.0.9:80 -m -w 0\n"
    );
    assert_eq!(d.timeouts().listed(), (900, 120, 60));
    // Applying again: the services are there and the monitor has them: refused, unchanged.
    let before = save(&d);
    let e = p.config.apply(&mut d, &mut m, Instant::ZERO, &|_| None).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert_eq!(save(&d), before);
}

#[test]
fn a_server_the_director_would_refuse_fails_before_anything_is_applied() {
    let p =
        ok("virtual_server 192.0.2.1 80 {\n lb_algo first\n real_server 2001:db8::1 80 {\n  TCP_CHECK {\n  }\n }\n}\n");
    let mut d = Director::new(DirectorConfig::default(), factory);
    let e = p.config.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &|_| None).unwrap_err();
    assert_eq!(
        (e.line, e.message.as_str()),
        (3, "real server [2001:db8::1]:80 is not of the service's address family")
    );
    assert_eq!(d.services().count(), 0);
    let p = ok("virtual_server 192.0.2.1 80 {\n lb_algo first\n real_server 10.0.0.1 80 {\n TCP_CHECK {\n }\n }\n\
                real_server 10.0.0.1 80 {\n TCP_CHECK {\n }\n }\n}\n");
    let e = p.config.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &|_| None).unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (7, "real server 10.0.0.1:80 given twice"));
    assert_eq!(d.services().count(), 0);
}

#[test]
fn every_truncation_of_a_configuration_reads_or_errs() {
    let text = "global_defs {\n router_id \"a b\"\n}\n$P=80\n@x virtual_server 1.2.3.4 $P {\n\
                virtual_server 192.0.2.1 ${P} {\n real_server 10.0.0.1 {\n  HTTP_GET { url { path / } }\n }\n}\n\
                vrrp_instance v {\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.100\n }\n}\n";
    for cut in 0..=text.len() {
        let _ = parse_str(&text[..cut], &Options::default());
    }
    assert_eq!(ok(text).config.virtual_servers[0].keys[0].port(), 80);
}

#[test]
fn the_table_a_configuration_stands_for_is_bounded() {
    let mut many = String::from("virtual_server 192.0.2.1 80 {\n");
    for i in 0..=crate::config::deploy::MAX_SERVERS_PER_SERVICE {
        many.push_str(&alloc::format!(" real_server 10.{}.{}.{} 80 {{\n }}\n", i >> 16, (i >> 8) & 0xff, i & 0xff));
    }
    many.push_str("}\n");
    assert_eq!(err(&many).message, "virtual_server: more than 4096 real servers");
    let mut wide = String::from("virtual_server_group g {\n 10.0.0.0/20 80\n}\nvirtual_server group g {\n");
    for i in 0..64 {
        wide.push_str(&alloc::format!(" real_server 10.1.0.{i} 80 {{\n }}\n"));
    }
    wide.push_str("}\n");
    let e = err(&wide);
    assert_eq!(
        (e.line, e.message.as_str()),
        (4, "virtual_server: the configuration stands for more than 262144 table entries")
    );
}

#[test]
fn urls_hosts_and_regexes_are_all_checked() {
    // keepalived 2.x: every url of an HTTP_GET must pass, each judged by its status, digest
    // and regex; every host of an SMTP_CHECK must answer.
    let p = ok("virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  HTTP_GET {\n\
                   url {\n    path /health\n    regex \"status: (OK|DEGRADED)\"\n    regex_options caseless multiline firstline\n\
                       regex_min_offset 10\n    regex_max_offset 200\n   }\n\
                   url {\n    path /errors\n    regex \"[1-9][0-9]* errors\"\n    regex_no_match\n   }\n  }\n\
                  SMTP_CHECK {\n   host {\n    connect_ip 10.0.0.25\n   }\n   host {\n    connect_ip 10.0.0.26\n    connect_port 587\n   }\n\
                   connect_port 25\n  }\n }\n}\n");
    let checks = &p.config.virtual_servers[0].real_servers[0].checks;
    assert_eq!(checks.len(), 4, "two urls and two hosts");
    let regexes: Vec<(&str, bool, usize, Option<usize>, bool)> = checks[..2]
        .iter()
        .map(|c| match &*c.check {
            Check::Http(h) => {
                let r = h.regex.as_ref().unwrap();
                (h.path.as_str(), r.no_match, r.min_offset, r.max_offset, r.options().caseless)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(regexes, [("/health", false, 10, Some(200), true), ("/errors", true, 0, None, false)]);
    let Check::Http(h) = &*checks[0].check else { unreachable!() };
    let re = h.regex.as_ref().unwrap();
    assert!(re.passes(b"0123456789\nStatus: ok\n") && !re.passes(b"status: ok"), "caseless, from byte 10");
    let targets: Vec<String> =
        checks[2..].iter().map(|c| c.target(&p.config.virtual_servers[0].real_servers[0].server).to_string()).collect();
    assert_eq!(targets, ["10.0.0.25:25", "10.0.0.26:587"], "each host, the checker's port by default");
    assert!(checks[2..].iter().all(|c| matches!(&*c.check, Check::Smtp(_))));
    let w: Vec<String> = p.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w, ["keepalived.conf:7: regex_options: regex option 'firstline' is not supported; ignored"]);
    // A pattern the engine cannot compile is an error at its line.
    let e = err("virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  HTTP_GET {\n   url {\n    path /\n\
                 regex \"(a)\\\\1\"\n   }\n  }\n }\n}\n");
    assert_eq!(e.line, 6, "{e}");
    assert!(e.message.starts_with("regex: bad regex: "), "{e}");
    // min above max: both dropped, as keepalived does.
    let p = ok("virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  HTTP_GET {\n   url {\n    path /\n\
                regex ok\n    regex_min_offset 9\n    regex_max_offset 3\n   }\n  }\n }\n}\n");
    let Check::Http(h) = &*p.config.virtual_servers[0].real_servers[0].checks[0].check else { unreachable!() };
    assert_eq!(h.regex.as_ref().map(|r| (r.min_offset, r.max_offset)), Some((0, None)));
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn inhibit_on_failure_and_alpha_stay_with_their_real_server() {
    // keepalived keeps both per real server (check_data.c: the virtual server's only where the
    // real server gives none), and a checker's alpha over its real server's.
    let p = ok("virtual_server 192.0.2.1 80 {\n inhibit_on_failure\n alpha\n\
                real_server 10.0.0.1 80 {\n  TCP_CHECK {\n  }\n }\n\
                real_server 10.0.0.2 80 {\n  inhibit_on_failure false\n  alpha false\n  TCP_CHECK {\n  }\n  PING_CHECK {\n   alpha\n  }\n }\n}\n");
    let vs = &p.config.virtual_servers[0];
    assert!(vs.policy.inhibit_on_failure && vs.policy.alpha);
    let rs = &vs.real_servers;
    assert_eq!((rs[0].inhibit_on_failure, rs[1].inhibit_on_failure), (None, Some(false)));
    let alphas: Vec<Vec<Option<bool>>> = rs.iter().map(|r| r.checks.iter().map(|c| c.alpha).collect()).collect();
    assert_eq!(alphas, [vec![Some(true)], vec![Some(false), Some(true)]]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

/// lvs's own `midflow-hash` keyword in a `virtual_server` (keepalived knows none: it would
/// warn and skip it) reaches the service's configuration.
#[test]
fn lvs_midflow_hash_keyword() {
    let text = "virtual_server 10.0.0.100 80 {\n lvs_sched mh\n mh-port\n midflow-hash\n lvs_method DR\n\
                protocol TCP\n real_server 10.0.0.1 80 {\n }\n}\n";
    let vs = &ok(text).config.virtual_servers[0];
    assert!(vs.midflow_hash);
    let cfg = vs.service_config(vs.keys[0]);
    assert!(cfg.midflow_hash);
    assert_eq!(cfg.sched_flags.0, 2);
    let plain = &ok(&text.replace(" midflow-hash\n", "")).config.virtual_servers[0];
    assert!(!plain.service_config(plain.keys[0]).midflow_hash);
}

#[test]
fn persistence_engine_sip_is_set_up() {
    // keepalived's `pengine_handler` copies the name into `vs->pe_name`, which
    // `ipvs_set_srule` hands to the kernel with the service.
    let p = ok("virtual_server 203.0.113.100 5060 {\n lb_algo first\n lb_kind DR\n protocol UDP\n\
                persistence_timeout 60\n persistence_engine sip\n real_server 192.0.2.11 5060 {\n }\n}\n");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.config.virtual_servers[0].pe, Some(crate::service::PersistEngine::Sip));
    let mut d = Director::new(DirectorConfig::default(), factory);
    p.config.apply(&mut d, &mut Monitor::new(1), Instant::ZERO, &|_| None).unwrap();
    assert_eq!(
        save(&d),
        "-A -u 203.0.113.100:5060 -s first -p 60 --pe sip\n-a -u 203.0.113.100:5060 -r 192.0.2.11:5060 -g -w 1\n"
    );
    // An engine the kernel has no module for fails the virtual server: an error at its line.
    let e = err("virtual_server 203.0.113.100 5060 {\n persistence_engine rtsp\n}\n");
    assert_eq!((e.line, e.to_string().contains("persistence engine 'rtsp' not found")), (2, true), "{e}");
}
