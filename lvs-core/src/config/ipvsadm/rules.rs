//! `ipvsadm` rule files: `ipvsadm -R` reads them ([`parse_rules`], [`restore`]) and
//! `ipvsadm -S -n` writes them ([`save`]). A line is split into words as ipvsadm's
//! `config_stream_read` splits it (blanks, tabs and carriage returns; the word `ipvsadm`
//! dropped wherever it stands) and read as one command line; this library's reader also skips
//! `#` comments, which ipvsadm would take as words.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use super::command::parse_command;
use super::format::{netmask_text, proxy_word, sched_flag_names, sorted_dests, sorted_services, svc_arg};
use crate::dest::{FwdMethod, TunConfig, TunCsum, TunType};
use crate::director::{Command, Director};
use crate::error::Error;
use crate::laddr::ClientAddr;

/// The words of one rule line, as ipvsadm's `config_stream_read` makes them.
pub(super) fn line_words(line: &str) -> Vec<&str> {
    line.split([' ', '\t', '\r']).filter(|w| !w.is_empty() && *w != "ipvsadm").collect()
}

/// The tunnel options `print_tunnel_rule` writes after a tunnelling server's weight: the type,
/// GUE's port, and the checksum flag of GUE and GRE (`tun_flags_opts`).
fn tunnel_options(out: &mut String, tun: TunConfig) {
    let _ = write!(out, " --tun-type {}", tun.kind.name());
    if tun.kind == TunType::Gue {
        let _ = write!(out, " --tun-port {}", tun.port);
    }
    if tun.kind != TunType::Ipip {
        out.push_str(match tun.csum {
            TunCsum::NoCsum => " --tun-nocsum",
            TunCsum::Csum => " --tun-csum",
            TunCsum::RemCsum => " --tun-remcsum",
        });
    }
}

/// Parses a rule file (`ipvsadm -S` output; blank lines and `#` comments allowed).
///
/// # Errors
/// [`Error::Parse`] naming the first bad line, with ipvsadm's message.
pub fn parse_rules(text: &str) -> Result<Vec<Command>, Error> {
    Ok(parse_numbered(text)?.into_iter().map(|(_, c)| c).collect())
}

/// Parses a rule file into commands with their 1-based line numbers.
fn parse_numbered(text: &str) -> Result<Vec<(usize, Command)>, Error> {
    let mut out = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let words = line_words(line.split('#').next().unwrap_or(""));
        if words.is_empty() {
            continue;
        }
        out.push((n + 1, parse_command(&words).map_err(|msg| Error::Parse { line: n + 1, msg })?));
    }
    Ok(out)
}

/// `ipvsadm -R`: parses a rule file and applies it to `d` all or nothing
/// ([`Director::execute_all`]): when any line is bad, or would fail against the current
/// configuration (a missing service, a duplicate server, a threshold out of order), nothing is
/// applied. (ipvsadm itself applies line by line; [`run`](super::cli::run) does that.)
///
/// # Errors
/// [`Error::Parse`] with the line number and what is wrong.
pub fn restore(d: &mut Director, text: &str) -> Result<(), Error> {
    let numbered = parse_numbered(text)?;
    let cmds: Vec<Command> = numbered.iter().map(|(_, c)| c.clone()).collect();
    d.execute_all(&cmds).map_err(|e| Error::Parse {
        line: e.index.and_then(|i| numbered.get(i)).map_or(0, |(n, _)| *n),
        msg: e.error.to_string(),
    })
}

/// `ipvsadm -S -n`: the configuration as rules, services and servers sorted as ipvsadm sorts
/// them (`print_service_entry` with `FMT_RULE`). Thresholds are not saved, as in ipvsadm.
pub fn save(d: &Director) -> String {
    let mut out = String::new();
    for s in sorted_services(d) {
        let c = s.config;
        let svc = svc_arg(&c.key);
        let _ = write!(out, "-A {svc} -s {}", c.scheduler);
        if let Some(t) = c.persistent {
            let _ = write!(out, " -p {t}");
            if !c.netmask.is_full() {
                let _ = write!(out, " -M {}", netmask_text(c.netmask));
            }
        }
        if let Some(pe) = c.pe {
            let _ = write!(out, " --pe {}", pe.name());
        }
        if c.one_packet {
            out.push_str(" -o");
        }
        if c.sched_flags.0 != 0 {
            let _ = write!(out, " -b {}", sched_flag_names(&c.scheduler, c.sched_flags));
        }
        if c.synproxy {
            out.push_str(" -j enable");
        }
        if let ClientAddr::Proxy(v) = c.client_addr {
            out.push_str(proxy_word(v, " --proxy-protocol v1", " --proxy-protocol v2"));
        }
        // lvs's own switch, last.
        if c.midflow_hash {
            out.push_str(" --midflow-hash");
        }
        out.push('\n');
        for dv in sorted_dests(&s.dests) {
            let m = match dv.fwd() {
                FwdMethod::Masq => "-m",
                FwdMethod::Tunnel => "-i",
                FwdMethod::Route | FwdMethod::Local => "-g",
                FwdMethod::FullNat => "-b",
            };
            let _ = write!(out, "-a {svc} -r {} {m} -w {}", dv.endpoint(), dv.weight());
            if dv.fwd() == FwdMethod::Tunnel {
                tunnel_options(&mut out, dv.tun());
            }
            out.push('\n');
        }
        // DPVS's ipvsadm verb for a FullNAT service's local addresses.
        for l in d.laddrs(&c.key).unwrap_or_default() {
            let _ = writeln!(out, "-P {} -z {}", svc_arg(&c.key), l.addr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use core::net::IpAddr;

    use super::super::format::{netmask_text, svc_arg};
    use super::*;
    use crate::addr::{Af, ServiceKey};
    use crate::testkit::factory;
    use crate::DirectorConfig;

    fn d() -> Director {
        Director::new(DirectorConfig::default(), factory)
    }

    #[test]
    fn a_bad_file_names_its_line_and_applies_nothing() {
        let mut d = d();
        let text = "-A -t 10.0.0.1:80 -s first\n\n# comment\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1\n-a -t 10.0.0.9:80 -r 10.0.0.3:80\n";
        let err = restore(&mut d, text).unwrap_err();
        assert_eq!(err, Error::Parse { line: 5, msg: "no such service".into() });
        assert_eq!(d.services().count(), 0);
        let err = restore(&mut d, "-A -t 10.0.0.1:80 -s first\n-A -t 10.0.0.1:80 -s first\n").unwrap_err();
        assert_eq!(err, Error::Parse { line: 2, msg: "service already exists".into() });
        // Found by the ipvsadm_rules fuzz target (bug001): a line that parses but fails when
        // applied must not leave the lines before it applied.
        let err = restore(&mut d, "-A -u 10.0.0.1:53 -s first\n-a -u 10.0.0.1:53 -r 10.0.0.2:53 -y 3\n").unwrap_err();
        assert_eq!(err, Error::Parse { line: 2, msg: "lower threshold 3 is above upper threshold 0".into() });
        assert_eq!(d.services().count(), 0);
        let err = restore(&mut d, "-A -t 10.0.0.1:80 -s first\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -w x\n").unwrap_err();
        assert_eq!(err, Error::Parse { line: 2, msg: "illegal weight specified".into() });
        assert_eq!(d.services().count(), 0);
    }

    #[test]
    fn daemon_lines_restore_like_any_other() {
        use crate::sync::Role;
        // ipvsadm -R runs every line as a command, the daemon verbs included.
        let mut d = d();
        restore(&mut d, "-A -t 10.0.0.1:80 -s first\n--start-daemon master --mcast-interface sync0 --syncid 3\n")
            .unwrap();
        assert_eq!(d.sync_daemon(Role::Master).map(|c| c.syncid), Some(3));
        // A second start of a running daemon fails the file, and nothing of it is applied.
        let err = restore(&mut d, "-A -t 10.0.0.2:80 -s first\n--start-daemon master\n").unwrap_err();
        assert_eq!(err, Error::Parse { line: 2, msg: "sync daemon already running as master".into() });
        assert_eq!(d.services().count(), 1);
        restore(&mut d, "--stop-daemon master\n--start-daemon master --syncid 4\n--start-daemon backup\n").unwrap();
        assert_eq!(d.sync_daemon(Role::Master).map(|c| c.syncid), Some(4));
        assert_eq!(d.sync_daemon(Role::Backup).map(|c| c.syncid), Some(0));
        // -S writes no daemon lines, as ipvsadm's does not.
        assert!(!save(&d).contains("daemon"));
    }

    #[test]
    fn save_round_trips() {
        let mut d = d();
        let text = "\
-A -t 10.0.0.1:80 -s first -p 600 -M 255.255.255.0
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 2
-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -i -w 0 --tun-type ipip
-A -u [2001:db8::1]:53 -s first -o
-a -u [2001:db8::1]:53 -r [2001:db8::2]:53 -g -w 1
-A -f 7 -s first -p 300
-a -f 7 -r 10.0.0.4:0 -g -w 5
";
        restore(&mut d, text).unwrap();
        // ipvsadm's order: fwmark 0 (address services) first, then IPv4 before IPv6, TCP before
        // UDP; servers by address. The tunnelled server took the service's port (80), as
        // ipvsadm gives it.
        let saved = save(&d);
        assert_eq!(
            saved,
            "\
-A -t 10.0.0.1:80 -s first -p 600 -M 255.255.255.0
-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i -w 0 --tun-type ipip
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 2
-A -u [2001:db8::1]:53 -s first -o
-a -u [2001:db8::1]:53 -r [2001:db8::2]:53 -g -w 1
-A -f 7 -s first -p 300
-a -f 7 -r 10.0.0.4:0 -g -w 5
"
        );
        let mut e = Director::new(DirectorConfig::default(), factory);
        restore(&mut e, &saved).unwrap();
        assert_eq!(save(&e), saved);
    }

    proptest::proptest! {
        #[test]
        fn rules_round_trip_parse_print_parse(
            svcs in proptest::collection::vec(
                (any_key(), proptest::option::of(1u32..100_000), 8u8..32, proptest::collection::vec((1u8..250, 0u16..3, 0u32..1000, 0usize..3), 0..5)),
                1..5,
            )
        ) {
            let mut text = String::new();
            for (k, p, mask, dests) in &svcs {
                let mut line = format!("-A {} -s first", svc_arg(k));
                if let Some(p) = p {
                    let _ = write!(line, " -p {p} -M {}", netmask_text(crate::service::Netmask::prefix(k.af(), *mask)));
                }
                text.push_str(&line);
                text.push('\n');
                for (host, port, w, m) in dests {
                    let rs = match k.af() {
                        Af::V4 => format!("10.1.1.{host}:{port}"),
                        Af::V6 => format!("[2001:db8::{host:x}]:{port}"),
                    };
                    let _ = writeln!(text, "-a {} -r {rs} {} -w {w}", svc_arg(k), ["-g", "-m", "-i"][*m]);
                }
            }
            let mut d = d();
            if restore(&mut d, &text).is_ok() {
                let saved = save(&d);
                let mut e = Director::new(DirectorConfig::default(), factory);
                restore(&mut e, &saved).unwrap();
                let sorted = |t: &str| { let mut v: Vec<String> = t.lines().map(String::from).collect(); v.sort(); v };
                proptest::prop_assert_eq!(sorted(&save(&e)), sorted(&saved));
                proptest::prop_assert_eq!(e.services().count(), d.services().count());
            }
        }
    }

    fn any_key() -> impl proptest::strategy::Strategy<Value = ServiceKey> {
        use proptest::prelude::*;
        prop_oneof![
            (1u8..250, 1u16..1000).prop_map(|(h, p)| ServiceKey::tcp(IpAddr::from([203, 0, 113, h]), p)),
            (1u8..250, 1u16..1000).prop_map(|(h, p)| ServiceKey::udp(IpAddr::from([203, 0, 113, h]), p)),
            (1u32..100, any::<bool>())
                .prop_map(|(m, v6)| ServiceKey::Fwmark { mark: m, af: if v6 { Af::V6 } else { Af::V4 } }),
        ]
    }
}
