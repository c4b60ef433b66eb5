use super::*;

fn apply(args: &[&str]) -> Command {
    match parse_request(args, false) {
        Ok(Request::Apply(c)) => c,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn fail(args: &[&str]) -> (u8, String) {
    match parse_request(args, false) {
        Err(f) => (f.status, f.message),
        other => panic!("{args:?}: {other:?}"),
    }
}

fn svc(args: &[&str]) -> ServiceConfig {
    match apply(args) {
        Command::AddService(s) | Command::EditService(s) => s,
        other => panic!("{other:?}"),
    }
}

fn dest(args: &[&str]) -> (ServiceKey, RealServer) {
    match apply(args) {
        Command::AddDest(k, r) | Command::EditDest(k, r) => (k, r),
        other => panic!("{other:?}"),
    }
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn options_read_as_popt_hands_them_out() {
    let s = svc(&["-A", "-t", "192.168.1.100:80", "-s", "wlc", "-p", "600", "-M", "255.255.255.0"]);
    assert_eq!((s.scheduler.as_str(), s.persistent), ("wlc", Some(600)));
    assert_eq!(s.netmask, Netmask::prefix(Af::V4, 24));
    let s = svc(&["--add-service", "--udp-service=[2001:db8::1]:53", "--scheduler", "sh", "-b", "sh-port", "-o"]);
    assert_eq!(s.key, ServiceKey::udp("2001:db8::1".parse().unwrap(), 53));
    assert!(s.sched_flags.port() && s.one_packet);
    // Bundled short options, a value glued on, the long form with '='.
    let (k, r) = dest(&["-a", "-f", "5", "-6", "-r", "[2001:db8::2]:0", "-iw3", "--u-threshold=10", "-y", "5"]);
    assert_eq!(k, ServiceKey::Fwmark { mark: 5, af: Af::V6 });
    assert_eq!((r.fwd, r.weight, r.u_threshold, r.l_threshold, r.endpoint.port), (FwdMethod::Tunnel, 3, 10, 5, 0));
    assert_eq!(apply(&["--set", "900", "2", "300"]), Command::SetTimeouts(900, 2, 300));
    assert_eq!(apply(&["-C"]), Command::Clear);
    assert_eq!(apply(&["-Z"]), Command::Zero(None));
    // The scheduler name is cut to IP_VS_SCHEDNAME_MAXLEN - 1 bytes; -E sends wlc when -s is absent.
    assert_eq!(svc(&["-E", "-t", "10.0.0.1:80", "-s", "a-very-long-scheduler"]).scheduler, "a-very-long-sch");
    assert_eq!(svc(&["-E", "-t", "10.0.0.1:80"]).scheduler, "wlc");
    // inet_aton's short forms.
    assert_eq!(svc(&["-A", "-t", "10.1:80"]).key, ServiceKey::tcp(v4("10.0.0.1"), 80));
    assert_eq!(svc(&["-A", "-t", "0x0a.0.0.012:80"]).key, ServiceKey::tcp(v4("10.0.0.10"), 80));
}

#[test]
fn the_five_causes_of_issue_19() {
    // -p without a value: IPVS_SVC_PERSISTENT_TIMEOUT, 360 s; popt leaves a following option alone.
    assert_eq!(svc(&["-A", "-t", "10.0.0.1:80", "-p"]).persistent, Some(360));
    assert_eq!(svc(&["-A", "-t", "10.0.0.1:80", "-p", "-s", "rr"]).persistent, Some(360));
    assert_eq!(fail(&["-A", "-t", "10.0.0.1:80", "-p", "rr"]), (2, "invalid timeout value `rr' specified".into()));
    // -g and -i servers of an address service take its port, for -a and -e; -m keeps its own.
    for verb in ["-a", "-e"] {
        for (m, port) in [("-g", 80), ("-i", 80), ("-m", 81)] {
            let (_, r) = dest(&[verb, "-t", "10.0.0.1:80", "-r", "10.0.0.3:81", m]);
            assert_eq!(r.endpoint.port, port, "{verb} {m}");
        }
    }
    // A fwmark service's servers keep theirs; -d does not rewrite.
    assert_eq!(dest(&["-a", "-f", "1", "-r", "10.0.0.3:81", "-g"]).1.endpoint.port, 81);
    let Command::DelDest(_, ep) = apply(&["-d", "-t", "10.0.0.1:80", "-r", "10.0.0.3:81"]) else { panic!() };
    assert_eq!(ep.port, 81);
    // No port: the service's, for every method.
    assert_eq!(dest(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.3", "-m"]).1.endpoint.port, 80);
    // Marks read with %d's sign, so what -S printed reads back.
    assert_eq!(svc(&["-A", "-f", "-1"]).key, ServiceKey::Fwmark { mark: u32::MAX, af: Af::V4 });
    assert_eq!(svc(&["-A", "-f", "4294967295"]).key, ServiceKey::Fwmark { mark: u32::MAX, af: Af::V4 });
    assert_eq!(svc(&["-A", "-f", "-2147483647", "-6"]).key, ServiceKey::Fwmark { mark: 0x8000_0001, af: Af::V6 });
    for bad in ["0", "4294967296", "5x", ""] {
        assert_eq!(fail(&["-A", "-f", bad]), (2, format!("invalid fwmark value `{bad}' specified")));
    }
    // Accepted: flag-N on any scheduler (the kernel keeps the bits), a non-contiguous mask.
    assert_eq!(svc(&["-A", "-t", "10.0.0.1:80", "-s", "rr", "-b", "flag-1,flag-3"]).sched_flags.0, 0b101);
    assert_eq!(svc(&["-A", "-t", "10.0.0.1:80", "-b", "flag-2"]).sched_flags.0, 0b10);
    let s = svc(&["-A", "-t", "10.0.0.1:80", "-p", "-M", "255.0.255.0"]);
    assert_eq!(s.netmask, Netmask::V4("255.0.255.0".parse().unwrap()));
    // Refused, with ipvsadm's words: -w above 65535 (string_to_number(optarg, 0, 65535)).
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-w", "65536"]),
        (2, "illegal weight specified".into())
    );
    assert_eq!(dest(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-w", "65535"]).1.weight, 65535);
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "-o"]),
        (2, "One-Packet Scheduling is only for UDP virtual services".into())
    );
    assert!(svc(&["-A", "-f", "3", "-o"]).one_packet, "a fwmark service may use -o");
    assert_eq!(
        fail(&["-a", "-u", "[2001:db8::1]:53", "-r", "[2001:db8::2]"]),
        (2, "illegal real server address[:port] specified".into())
    );
    assert_eq!(dest(&["-a", "-u", "[2001:db8::1]:53", "-r", "2001:db8::2", "-m"]).1.endpoint.port, 53);
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-x", "2147483648"]),
        (2, "illegal u_threshold specified".into())
    );
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-y", "-1"]),
        (2, "illegal l_threshold specified".into())
    );
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "-p", "-p", "60"]),
        (2, "multiple 'persistent' options specified".into())
    );
}

#[test]
fn bad_command_lines_get_ipvsadm_messages_and_statuses() {
    let try_help = (255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.".to_string());
    assert_eq!(fail(&["-t", "10.0.0.1:80", "-A"]), try_help, "the first option must be the command");
    assert_eq!(fail(&["foo"]), try_help);
    // -K is no option of ipvsadm's (nor DPVS's, whose -Q is --del-laddr).
    assert_eq!(fail(&["-K"]), try_help);
    assert_eq!(fail(&["-A", "-t", "10.0.0.1:80", "-K"]), (255, "-K: unknown option".into()));
    assert_eq!(fail(&["-A", "-t", "10.0.0.1:80", "--bogus"]), (255, "--bogus: unknown option".into()));
    assert_eq!(fail(&["-A", "-t"]), (255, "-t: missing argument".into()));
    assert_eq!(fail(&["-A", "-a", "-t", "10.0.0.1:80"]), (2, "invalid option `-a'".into()));
    assert_eq!(fail(&["-A", "-t", "host.example:80"]), (2, "illegal virtual server address[:port] specified".into()));
    assert_eq!(fail(&["-A", "-t", "10.0.0.1:99999"]), (2, "illegal virtual server address[:port] specified".into()));
    assert_eq!(fail(&["-A", "-t", "80"]), (2, "illegal virtual server address[:port] specified".into()));
    assert_eq!(fail(&["-A", "-t", "10.0.0.1"]), (2, "Zero port specified for non-persistent service".into()));
    assert!(svc(&["-A", "-t", "10.0.0.1", "-p", "60"]).persistent.is_some());
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "-M", "bad"]),
        (2, "illegal virtual server persistent mask specified".into())
    );
    assert_eq!(fail(&["-A", "-t", "[2001:db8::1]:80", "-M", "129"]), (2, "illegal ipv6 netmask specified".into()));
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "-s", "sh", "-b", "mh-port"]),
        (2, "incompatible scheduler flag `mh-port'".into())
    );
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "-b", "sh-port"]),
        (2, "incompatible scheduler flag `sh-port'".into())
    );
    assert_eq!(fail(&["-A", "-t", "10.0.0.1:80", "-b", "flag-4"]), (2, "invalid scheduler flag `flag-4'".into()));
    assert_eq!(fail(&["-A", "-6", "-f", "1"]), (2, "-6 used before -f\n".into()));
    assert_eq!(fail(&["-A", "-t", "10.0.0.1:80", "extra"]), (2, "unexpected argument extra".into()));
    assert_eq!(fail(&["--set", "900", "2"]), (2, "--set option requires 3 timeout values".into()));
    assert_eq!(fail(&["--set", "900", "2", "x"]), (2, "invalid timeout value `x' specified".into()));
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "-f", "1"]),
        (2, "multiple 'service-address' options specified".into())
    );
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80"]),
        (2, "You need to supply the 'real-server' option for the 'add-server' command".into())
    );
    assert_eq!(
        fail(&["-A", "-s", "rr"]),
        (2, "You need to supply the 'service-address' option for the 'add-service' command".into())
    );
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "-w", "2"]),
        (2, "Illegal 'weight' option with the 'add-service' command".into())
    );
    assert_eq!(
        fail(&["-L", "-c", "-t", "10.0.0.1:80"]),
        (2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command".into())
    );
    assert_eq!(fail(&["-L", "-c", "--stats"]), (2, "options conflicts in the list command".into()));
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "[2001:db8::2]:80", "-m"]),
        (2, "Different address family is allowed only for tunneling servers".into())
    );
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m", "--tun-type", "ipip"]),
        (2, "Tunnel options conflict with forward method".into())
    );
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i", "--tun-port", "6080"]),
        (2, "Illegal 'tun-port' option with the 'ipip' tunnel type".into())
    );
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "--pe", "rtsp"]),
        (255, "Scheduler or persistence engine not found".into())
    );
    assert_eq!(
        fail(&["-S", "-t", "10.0.0.1:80"]),
        (2, "Illegal 'service-address' option with the 'save' command".into())
    );
    assert_eq!(parse_request(&["-R"], true).unwrap_err().message, try_help.1, "no -R inside -R");
}

#[test]
fn listings_and_the_other_requests() {
    let f = Format::default();
    assert_eq!(parse_request(&["-Ln"], false), Ok(Request::List(Listing::Services(f))));
    assert_eq!(parse_request(&["-l", "--sort"], false), Ok(Request::List(Listing::Services(f))));
    assert_eq!(
        parse_request(&["-L", "-n", "--stats", "--exact", "--nosort"], false),
        Ok(Request::List(Listing::Services(Format { stats: true, exact: true, nosort: true, ..f })))
    );
    assert_eq!(
        parse_request(&["-L", "-n", "-f", "-1"], false),
        Ok(Request::List(Listing::Service(ServiceKey::Fwmark { mark: u32::MAX, af: Af::V4 }, f)))
    );
    assert_eq!(parse_request(&["-Lcn"], false), Ok(Request::List(Listing::Connections(f))));
    assert_eq!(parse_request(&["-L", "--timeout"], false), Ok(Request::List(Listing::Timeout)));
    assert_eq!(parse_request(&["-L", "--daemon"], false), Ok(Request::List(Listing::Daemon)));
    assert_eq!(parse_request(&["-Sn"], false), Ok(Request::Save));
    assert_eq!(parse_request(&["-R"], false), Ok(Request::Restore));
    assert_eq!(parse_request(&["-v"], false), Ok(Request::Version));
    assert_eq!(parse_command(&["-Ln"]), Err("not a configuration command".into()));
}

fn daemon(args: &[&str]) -> (Role, DaemonConfig) {
    match apply(args) {
        Command::StartDaemon(role, cfg) => (role, cfg),
        other => panic!("{args:?}: {other:?}"),
    }
}

#[test]
fn daemon_verbs_parse_as_ipvsadm_reads_them() {
    let (role, c) = daemon(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "sync0",
        "--syncid",
        "42",
        "--mcast-group",
        "239.81.0.7",
        "--mcast-port",
        "9848",
        "--mcast-ttl",
        "4",
        "--sync-maxlen",
        "300",
    ]);
    assert_eq!(role, Role::Master);
    assert_eq!(
        c,
        DaemonConfig {
            ifname: "sync0".into(),
            syncid: 42,
            maxlen: 300,
            group: Some("239.81.0.7".parse().unwrap()),
            port: 9848,
            ttl: 4
        }
    );
    // Nothing but the role: eth0, syncid 0 (every syncid), the rest left to the kernel.
    let (role, c) = daemon(&["--start-daemon=backup"]);
    assert_eq!(role, Role::Backup);
    assert_eq!(c, DaemonConfig { ifname: "eth0".into(), syncid: 0, maxlen: 0, group: None, port: 0, ttl: 0 });
    let (_, c) = daemon(&["--start-daemon", "backup", "--mcast-group=ff02::81", "--syncid", "+9"]);
    assert_eq!((c.group, c.syncid), (Some("ff02::81".parse().unwrap()), 9));
    // The bounds are in, and strtol takes leading blanks; a long name is cut to 15 bytes.
    let (_, c) = daemon(&["--start-daemon", "master", "--sync-maxlen", "65507", "--mcast-port", " 65535"]);
    assert_eq!((c.maxlen, c.port), (65507, 65535));
    let (_, c) = daemon(&["--start-daemon", "master", "--mcast-interface", "a-very-long-interface"]);
    assert_eq!(c.ifname, "a-very-long-int");
    let (_, c) = daemon(&["--start-daemon", "master", "--mcast-interface", ""]);
    assert_eq!(c.ifname, "eth0");
    assert_eq!(apply(&["--stop-daemon", "backup"]), Command::StopDaemon(Role::Backup));
    // ipvsadm lets --stop-daemon carry a syncid; the kernel does not use it.
    assert_eq!(apply(&["--stop-daemon", "master", "--syncid", "7"]), Command::StopDaemon(Role::Master));
}

#[test]
fn bad_daemon_lines_get_ipvsadm_messages() {
    let e = |a: &[&str]| fail(a).1;
    let start = |extra: &[&str]| {
        let mut v = alloc::vec!["--start-daemon", "master"];
        v.extend_from_slice(extra);
        e(&v)
    };
    assert_eq!(e(&["--start-daemon", "primary"]), "illegal start-daemon parameter specified");
    assert_eq!(e(&["--stop-daemon", "Master"]), "illegal start_daemon specified");
    assert_eq!(e(&["--start-daemon"]), "Try `ipvsadm -h' or 'ipvsadm --help' for more information.");
    for v in ["256", "-1", "7x", "", "0x10"] {
        assert_eq!(start(&["--syncid", v]), "illegal syncid specified", "{v:?}");
    }
    for v in ["0", "65536", "port"] {
        assert_eq!(start(&["--mcast-port", v]), "illegal mcast-port specified", "{v:?}");
    }
    for v in ["0", "256"] {
        assert_eq!(start(&["--mcast-ttl", v]), "illegal mcast-ttl specified", "{v:?}");
    }
    for v in ["0", "65508"] {
        assert_eq!(start(&["--sync-maxlen", v]), "illegal sync-maxlen specified", "{v:?}");
    }
    assert_eq!(start(&["--mcast-group", "10.0.0.1"]), "invalid IPv4 mcast-group `10.0.0.1'");
    assert_eq!(start(&["--mcast-group", "239.1"]), "invalid IPv4 mcast-group `239.1'");
    assert_eq!(start(&["--mcast-group", "2001:db8::1"]), "invalid IPv6 mcast-group `2001:db8::1'");
    assert_eq!(start(&["--mcast-group", "ff02::81%eth0"]), "invalid IPv6 mcast-group `ff02::81%eth0'");
    assert_eq!(start(&["--syncid", "1", "--syncid", "2"]), "multiple 'syncid' options specified");
    assert_eq!(start(&["--stop-daemon", "master"]), "invalid option `--stop-daemon'");
    // Options a verb does not take: the first in ipvsadm's order is named, wherever it stood.
    assert_eq!(
        start(&["-w", "3", "-t", "10.0.0.1:80"]),
        "Illegal 'service-address' option with the 'start-daemon' command"
    );
    assert_eq!(start(&["-n"]), "Illegal 'numeric' option with the 'start-daemon' command");
    assert_eq!(
        e(&["--stop-daemon", "master", "--mcast-interface", "sync0"]),
        "Illegal 'mcast-interface' option with the 'stop-daemon' command"
    );
    assert_eq!(
        e(&["-A", "-t", "10.0.0.1:80", "--mcast-ttl", "2", "--syncid", "1"]),
        "Illegal 'syncid' option with the 'add-service' command"
    );
    assert_eq!(e(&["-C", "--sync-maxlen", "100"]), "Illegal 'sync-maxlen' option with the 'flush' command");
}

#[test]
fn dpvs_fullnat_verbs() {
    // DPVS's ipvsadm: `-b` is --fullnat on -a/-e (bundled too) and --sched-flags on -A/-E.
    let (_, r) = dest(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080", "-b"]);
    assert_eq!((r.fwd, r.endpoint.port), (FwdMethod::FullNat, 8080));
    assert_eq!(dest(&["-e", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "--fullnat"]).1.fwd, FwdMethod::FullNat);
    assert_eq!(dest(&["-ab", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-w", "3"]).1.fwd, FwdMethod::FullNat);
    let s = svc(&["-A", "-t", "10.0.0.1:80", "-s", "sh", "-b", "sh-port"]);
    assert_eq!((s.sched_flags.port(), s.client_addr), (true, ClientAddr::Toa));
    let s = svc(&["-A", "-t", "10.0.0.1:80", "--proxy-protocol", "v2"]);
    assert_eq!(s.client_addr, ClientAddr::Proxy(ProxyVersion::V2));
    assert_eq!(svc(&["-E", "-t", "10.0.0.1:80", "--proxy-protocol=disable"]).client_addr, ClientAddr::Toa);
    let k = ServiceKey::tcp(v4("10.0.0.1"), 80);
    let a = v4("192.168.0.200");
    assert_eq!(apply(&["-P", "-t", "10.0.0.1:80", "-z", "192.168.0.200"]), Command::AddLaddr(k, a));
    assert_eq!(apply(&["--del-laddr", "-t", "10.0.0.1:80", "--laddr=192.168.0.200"]), Command::DelLaddr(k, a));
    assert_eq!(parse_request(&["-G", "-t", "10.0.0.1:80"], false), Ok(Request::Laddrs(Some(k))));
    assert_eq!(parse_request(&["--get-laddr"], false), Ok(Request::Laddrs(None)));
    // DPVS's commands_v_options rows for the laddr commands, and its messages.
    assert_eq!(
        fail(&["-P", "-t", "10.0.0.1:80"]),
        (2, "You need to supply the 'local-address' option for the 'add-laddr' command".into())
    );
    assert_eq!(
        fail(&["-Q", "-z", "192.168.0.200"]),
        (2, "You need to supply the 'service-address' option for the 'del-laddr' command".into())
    );
    assert_eq!(fail(&["-G", "-n"]), (2, "Illegal 'numeric' option with the 'get-laddr' command".into()));
    assert_eq!(fail(&["-P", "-t", "10.0.0.1:80", "-z", "nowhere"]), (2, "illegal local address".into()));
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "--fullnat"]),
        (2, "Illegal 'forwarding-method' option with the 'add-service' command".into())
    );
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "--proxy-protocol", "v1"]),
        (2, "Illegal 'proxy-protocol' option with the 'add-server' command".into())
    );
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "--proxy-protocol", "v3"]),
        (2, "invalid proxy protocol `v3' (disable, v1, v2)".into())
    );
    assert_eq!(fail(&["-A", "-t", "10.0.0.1:80", "--proxy-protocol", "v2-insecure"]).0, 255);
}

#[test]
fn dpvs_synproxy_switch() {
    assert!(svc(&["-A", "-t", "10.0.0.1:80", "-j", "enable"]).synproxy);
    assert!(!svc(&["-E", "-t", "10.0.0.1:80", "--synproxy=disable"]).synproxy);
    assert!(!svc(&["-A", "-t", "10.0.0.1:80"]).synproxy);
    assert_eq!(
        fail(&["-A", "-t", "10.0.0.1:80", "-j", "on"]),
        (2, "synproxy switch must be enable or disable\n".into())
    );
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m", "-j", "enable"]),
        (2, "Illegal 'synproxy' option with the 'add-server' command".into())
    );
}

#[test]
fn tunnel_types_and_their_options_as_tunnel_opt_check_reads_them() {
    let a = |extra: &[&'static str]| {
        let mut v = alloc::vec!["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-i"];
        v.extend_from_slice(extra);
        v
    };
    // What each line stores: the type, the port, and the one checksum flag given.
    let tun = |extra: &[&'static str]| dest(&a(extra)).1.tun;
    assert_eq!(tun(&[]), TunConfig::IPIP);
    assert_eq!(tun(&["--tun-type", "ipip"]), TunConfig::IPIP);
    assert_eq!(tun(&["--tun-type", "gue", "--tun-port", "6080"]), TunConfig::gue(6080, TunCsum::NoCsum));
    assert_eq!(tun(&["--tun-type=gue", "--tun-port=1", "--tun-csum"]), TunConfig::gue(1, TunCsum::Csum));
    assert_eq!(
        tun(&["--tun-remcsum", "--tun-port", "65535", "--tun-type", "gue"]),
        TunConfig::gue(65535, TunCsum::RemCsum)
    );
    assert_eq!(tun(&["--tun-type", "gre"]), TunConfig::gre(TunCsum::NoCsum));
    assert_eq!(tun(&["--tun-type", "gre", "--tun-nocsum"]), TunConfig::gre(TunCsum::NoCsum));
    assert_eq!(tun(&["--tun-type", "gre", "--tun-csum"]), TunConfig::gre(TunCsum::Csum));
    let mut e = a(&["--tun-type", "gre", "--tun-csum"]);
    e[0] = "-e";
    assert_eq!(dest(&e).1.tun, TunConfig::gre(TunCsum::Csum));
    // tunnel_types_v_options: ipip {x x x x}, gue {+ 1 1 1}, gre {x 1 1 x}, in the order
    // tun-port, tun-nocsum, tun-csum, tun-remcsum.
    for (extra, msg) in [
        (&["--tun-type", "gue"][..], "You need to supply the 'tun-port' option for the 'gue' tunnel type"),
        (
            &["--tun-type", "gue", "--tun-csum"][..],
            "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        ),
        (&["--tun-csum"][..], "Illegal 'tun-csum' option with the 'ipip' tunnel type"),
        (&["--tun-type", "ipip", "--tun-remcsum"][..], "Illegal 'tun-remcsum' option with the 'ipip' tunnel type"),
        (&["--tun-type", "gre", "--tun-port", "6080"][..], "Illegal 'tun-port' option with the 'gre' tunnel type"),
        (&["--tun-type", "gre", "--tun-remcsum"][..], "Illegal 'tun-remcsum' option with the 'gre' tunnel type"),
        (
            &["--tun-type", "gue", "--tun-port", "1", "--tun-csum", "--tun-nocsum"][..],
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
        ),
        (
            &["--tun-type", "gue", "--tun-port", "1", "--tun-remcsum", "--tun-csum"][..],
            "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type",
        ),
        (
            &["--tun-type", "gre", "--tun-csum", "--tun-nocsum"][..],
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type",
        ),
        (&["--tun-type", "vxlan"][..], "illegal tunnel type specified"),
        (&["--tun-type", "gue", "--tun-port", "0"][..], "illegal tunnel port specified"),
        (&["--tun-type", "gue", "--tun-port", "65536"][..], "illegal tunnel port specified"),
    ] {
        assert_eq!(fail(&a(extra)), (2, msg.into()), "{extra:?}");
    }
    // Only tunnelling servers take them, checked before the type's own table.
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-g", "--tun-type", "gue"]),
        (2, "Tunnel options conflict with forward method".into())
    );
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m", "--tun-nocsum"]),
        (2, "Tunnel options conflict with forward method".into())
    );
}

/// lvs's own `--midflow-hash`: a switch on `-A`/`-E` like `-o` (absent on `-E`, off), refused
/// by the server commands through the option table.
#[test]
fn lvs_midflow_hash_switch() {
    assert!(svc(&["-A", "-t", "10.0.0.1:80", "-s", "mh", "--midflow-hash"]).midflow_hash);
    assert!(!svc(&["-A", "-t", "10.0.0.1:80", "-s", "mh"]).midflow_hash);
    assert!(!svc(&["-E", "-t", "10.0.0.1:80", "-s", "mh"]).midflow_hash);
    assert_eq!(
        fail(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-g", "--midflow-hash"]),
        (2, "Illegal 'midflow-hash' option with the 'add-server' command".into())
    );
    assert_eq!(
        fail(&["-L", "-n", "--midflow-hash"]),
        (2, "Illegal 'midflow-hash' option with the 'list' command".into())
    );
    // A switch takes no value.
    assert_eq!(fail(&["-A", "-t", "10.0.0.1:80", "--midflow-hash=yes"]).0, 255);
}

#[test]
fn persistence_engine_sip() {
    // `--pe NAME` is copied into `svc.pe_name` whatever the other options (`parse_options`);
    // the kernel looks the name up (`ip_vs_pe_getbyname`) and keeps it even on a service that
    // is not persistent; an empty name is no engine.
    let s = svc(&["-A", "-u", "203.0.113.100:5060", "-s", "rr", "-p", "60", "--pe", "sip"]);
    assert_eq!((s.persistent, s.pe), (Some(60), Some(PersistEngine::Sip)));
    assert_eq!(svc(&["-E", "-u", "203.0.113.100:5060", "--pe=sip"]).pe, Some(PersistEngine::Sip));
    assert_eq!(svc(&["-A", "-u", "203.0.113.100:5060", "--pe", ""]).pe, None);
    assert_eq!(svc(&["-A", "-u", "203.0.113.100:5060", "-p"]).pe, None);
    // The table of options: `--pe` belongs to -A and -E only.
    assert_eq!(
        fail(&["-a", "-u", "203.0.113.100:5060", "-r", "192.0.2.11", "--pe", "sip"]),
        (2, "Illegal 'pe' option with the 'add-server' command".into())
    );
}
