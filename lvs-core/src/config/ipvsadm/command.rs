//! One `ipvsadm` command line (`ipvsadm.c`'s option parsing): its words, short, long and
//! attached forms alike, read into a [`Command`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};

use crate::addr::{Af, Proto, ServiceKey};
use crate::dest::{FwdMethod, RealServer};
use crate::director::Command;
use crate::service::{SchedFlags, ServiceConfig, DEFAULT_PERSIST_TIMEOUT};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmd {
    AddSvc,
    EditSvc,
    DelSvc,
    AddDest,
    EditDest,
    DelDest,
    Clear,
    Zero,
    Set,
}

fn parse_host(s: &str, default_port: u16) -> Result<(IpAddr, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(|| format!("bad address '{s}'"))?;
        match tail.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if tail.is_empty() => (h, None),
            None => return Err(format!("bad address '{s}'")),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (s, None),
        }
    };
    let addr: IpAddr = host.parse().map_err(|_| format!("bad address '{host}' (numeric addresses only)"))?;
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port '{p}'"))?,
        None => default_port,
    };
    Ok((addr, port))
}

fn parse_num(v: &str, what: &str) -> Result<u32, String> {
    v.parse::<u32>().map_err(|_| format!("bad {what} '{v}'"))
}

/// A netmask as ipvsadm takes it: dotted for IPv4, a prefix length for IPv6.
fn parse_netmask(v: &str, af: Af) -> Result<u8, String> {
    let bad = || format!("bad netmask '{v}'");
    match af {
        Af::V4 => {
            let m: Ipv4Addr = v.parse().map_err(|_| bad())?;
            let m = u32::from(m);
            let ones = m.leading_ones();
            if m.checked_shl(ones).unwrap_or(0) != 0 || ones == 0 {
                return Err(bad());
            }
            Ok(ones as u8)
        }
        Af::V6 => {
            let p: u8 = v.parse().map_err(|_| bad())?;
            if p == 0 || p > 128 {
                return Err(bad());
            }
            Ok(p)
        }
    }
}

fn sched_flags(v: &str, sched: &str) -> Result<SchedFlags, String> {
    let mut f = 0;
    for name in v.split(',') {
        f |= match name {
            "flag-1" => SchedFlags::FLAG1,
            "flag-2" => SchedFlags::FLAG2,
            "flag-3" => SchedFlags::FLAG3,
            "sh-fallback" if sched == "sh" => SchedFlags::FLAG1,
            "sh-port" if sched == "sh" => SchedFlags::FLAG2,
            "mh-fallback" if sched == "mh" => SchedFlags::FLAG1,
            "mh-port" if sched == "mh" => SchedFlags::FLAG2,
            _ => return Err(format!("invalid scheduler flag '{name}' for scheduler '{sched}'")),
        };
    }
    Ok(SchedFlags(f))
}

/// Parses one ipvsadm command from its arguments (without the program name), as
/// `ipvsadm -A -t 10.0.0.1:80 -s wlc -p 600`.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_command<S: AsRef<str>>(args: &[S]) -> Result<Command, String> {
    let mut cmd = None;
    let mut svc: Option<(Option<Proto>, String)> = None;
    let mut fwmark: Option<u32> = None;
    let mut v6 = false;
    let mut sched: Option<String> = None;
    let mut persistent: Option<u32> = None;
    let mut netmask: Option<String> = None;
    let mut bflags: Option<String> = None;
    let mut ops = false;
    let mut rs: Option<String> = None;
    let mut fwd: Option<FwdMethod> = None;
    let mut weight: Option<u32> = None;
    let (mut upper, mut lower) = (0u32, 0u32);
    let mut set: Vec<u32> = Vec::new();

    // Split `--opt=value` and `-wVALUE` forms into option and value.
    let mut toks: Vec<String> = Vec::new();
    for a in args {
        let a = a.as_ref();
        if let Some((o, v)) = a.strip_prefix("--").and_then(|x| x.split_once('=')) {
            toks.push(format!("--{o}"));
            toks.push(v.to_string());
        } else if a.len() > 2
            && a.starts_with('-')
            && !a.starts_with("--")
            && a.as_bytes().get(1).is_some_and(|c| b"tufsMbrwxy".contains(c))
        {
            toks.push(a.get(..2).unwrap_or_default().to_string());
            toks.push(a.get(2..).unwrap_or_default().to_string());
        } else {
            toks.push(a.to_string());
        }
    }
    let mut i = 0;
    let set_cmd = |cmd: &mut Option<Cmd>, c: Cmd| -> Result<(), String> {
        if cmd.is_some() {
            return Err("more than one command given".to_string());
        }
        *cmd = Some(c);
        Ok(())
    };
    while let Some(t) = toks.get(i) {
        let t = t.as_str();
        i += 1;
        let next_is_num = toks.get(i).is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
        let mut value = |what: &str| -> Result<String, String> {
            let v = toks.get(i).cloned().ok_or_else(|| format!("option {what} needs a value"))?;
            i += 1;
            Ok(v)
        };
        match t {
            "-A" | "--add-service" => set_cmd(&mut cmd, Cmd::AddSvc)?,
            "-E" | "--edit-service" => set_cmd(&mut cmd, Cmd::EditSvc)?,
            "-D" | "--delete-service" => set_cmd(&mut cmd, Cmd::DelSvc)?,
            "-a" | "--add-server" => set_cmd(&mut cmd, Cmd::AddDest)?,
            "-e" | "--edit-server" => set_cmd(&mut cmd, Cmd::EditDest)?,
            "-d" | "--delete-server" => set_cmd(&mut cmd, Cmd::DelDest)?,
            "-C" | "--clear" => set_cmd(&mut cmd, Cmd::Clear)?,
            "-Z" | "--zero" => set_cmd(&mut cmd, Cmd::Zero)?,
            "--set" => {
                set_cmd(&mut cmd, Cmd::Set)?;
                for w in ["tcp", "tcpfin", "udp"] {
                    set.push(parse_num(&value("--set")?, w)?);
                }
            }
            "-t" | "--tcp-service" => svc = Some((Some(Proto::Tcp), value(t)?)),
            "-u" | "--udp-service" => svc = Some((Some(Proto::Udp), value(t)?)),
            "--sctp-service" => svc = Some((Some(Proto::Sctp), value(t)?)),
            "-f" | "--fwmark-service" => fwmark = Some(parse_num(&value(t)?, "firewall mark")?),
            "-6" | "--ipv6" => v6 = true,
            "-s" | "--scheduler" => sched = Some(value(t)?),
            "-p" | "--persistent" => {
                persistent =
                    Some(if next_is_num { parse_num(&value(t)?, "timeout")? } else { DEFAULT_PERSIST_TIMEOUT });
            }
            "-M" | "--netmask" => netmask = Some(value(t)?),
            "-b" | "--sched-flags" => bflags = Some(value(t)?),
            "-o" | "--ops" => ops = true,
            "-r" | "--real-server" => rs = Some(value(t)?),
            "-g" | "--gatewaying" => fwd = Some(FwdMethod::Route),
            "-i" | "--ipip" => fwd = Some(FwdMethod::Tunnel),
            "-m" | "--masquerading" => fwd = Some(FwdMethod::Masq),
            "-w" | "--weight" => weight = Some(parse_num(&value(t)?, "weight")?),
            "-x" | "--u-threshold" => upper = parse_num(&value(t)?, "upper threshold")?,
            "-y" | "--l-threshold" => lower = parse_num(&value(t)?, "lower threshold")?,
            "--tun-type" => {
                let v = value(t)?;
                if v != "ipip" {
                    return Err(format!("tunnel type '{v}' not supported (ipip only)"));
                }
            }
            "-n" | "--numeric" => {}
            "--pe" => return Err("persistence engines (--pe) are not supported".to_string()),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    let cmd = cmd.ok_or("no command given")?;
    let key = match (svc, fwmark) {
        (Some(_), Some(_)) => return Err("both a service address and a firewall mark given".to_string()),
        (Some((Some(proto), s)), None) => {
            let (addr, port) = parse_host(&s, 0)?;
            Some(ServiceKey::Inet { proto, addr, port })
        }
        (None, Some(mark)) => Some(ServiceKey::Fwmark { mark, af: if v6 { Af::V6 } else { Af::V4 } }),
        _ => None,
    };
    let need_key = || key.ok_or_else(|| "no service given".to_string());
    let svc_cfg = || -> Result<ServiceConfig, String> {
        let key = need_key()?;
        let scheduler = sched.clone().unwrap_or_else(|| "wlc".to_string());
        let mut c = ServiceConfig::new(key, &scheduler);
        c.persistent = persistent;
        if let Some(m) = &netmask {
            c.netmask = parse_netmask(m, key.af())?;
        }
        if let Some(b) = &bflags {
            c.sched_flags = sched_flags(b, &scheduler)?;
        }
        c.one_packet = ops;
        Ok(c)
    };
    let dest = |key: &ServiceKey| -> Result<RealServer, String> {
        let r = rs.as_ref().ok_or("no real server given (-r)")?;
        let (addr, port) = parse_host(r, key.port())?;
        let w = weight.unwrap_or(1);
        let mut d = RealServer::new(addr, port, fwd.unwrap_or(FwdMethod::Route), w);
        d.u_threshold = upper;
        d.l_threshold = lower;
        Ok(d)
    };
    Ok(match cmd {
        Cmd::AddSvc => Command::AddService(svc_cfg()?),
        Cmd::EditSvc => Command::EditService(svc_cfg()?),
        Cmd::DelSvc => Command::DelService(need_key()?),
        Cmd::AddDest => {
            let k = need_key()?;
            Command::AddDest(k, dest(&k)?)
        }
        Cmd::EditDest => {
            let k = need_key()?;
            Command::EditDest(k, dest(&k)?)
        }
        Cmd::DelDest => {
            let k = need_key()?;
            Command::DelDest(k, dest(&k)?.endpoint)
        }
        Cmd::Clear => Command::Clear,
        Cmd::Zero => Command::Zero(key),
        Cmd::Set => match set.as_slice() {
            [a, b, c] => Command::SetTimeouts(*a, *b, *c),
            _ => return Err("--set needs three values".to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_long_and_attached_forms() {
        let c =
            parse_command(&["-A", "-t", "192.168.1.100:80", "-s", "wlc", "-p", "600", "-M", "255.255.255.0"]).unwrap();
        let Command::AddService(s) = c else { panic!("{c:?}") };
        assert_eq!((s.scheduler.as_str(), s.persistent, s.netmask), ("wlc", Some(600), 24));
        let c = parse_command(&[
            "--add-service",
            "--udp-service=[2001:db8::1]:53",
            "--scheduler",
            "sh",
            "-b",
            "sh-port",
            "-o",
        ])
        .unwrap();
        let Command::AddService(s) = c else { panic!() };
        assert_eq!(s.key, ServiceKey::udp("2001:db8::1".parse().unwrap(), 53));
        assert!(s.sched_flags.port() && s.one_packet);
        let c =
            parse_command(&["-a", "-f", "5", "-6", "-r", "[2001:db8::2]", "-i", "-w3", "-x", "10", "-y", "5"]).unwrap();
        let Command::AddDest(k, r) = c else { panic!() };
        assert_eq!(k, ServiceKey::Fwmark { mark: 5, af: Af::V6 });
        assert_eq!((r.fwd, r.weight, r.u_threshold, r.l_threshold, r.endpoint.port), (FwdMethod::Tunnel, 3, 10, 5, 0));
        // -p without a value takes ipvsadm's default; -r without a port takes the service's.
        let Command::AddService(s) = parse_command(&["-A", "-t", "10.0.0.1:80", "-p"]).unwrap() else { panic!() };
        assert_eq!((s.persistent, s.scheduler.as_str()), (Some(300), "wlc"));
        let Command::AddDest(_, r) = parse_command(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2"]).unwrap() else {
            panic!()
        };
        assert_eq!((r.endpoint.port, r.fwd, r.weight), (80, FwdMethod::Route, 1));
        assert_eq!(parse_command(&["--set", "900", "2", "300"]).unwrap(), Command::SetTimeouts(900, 2, 300));
        assert_eq!(parse_command(&["-C"]).unwrap(), Command::Clear);
    }

    #[test]
    fn bad_commands_say_why() {
        let e = |a: &[&str]| parse_command(a).unwrap_err();
        assert!(e(&["-A", "-t", "10.0.0.1:80", "-Q"]).contains("unknown option '-Q'"));
        assert!(e(&["-A", "-t", "host.example:80"]).contains("numeric"));
        assert!(e(&["-A", "-t", "10.0.0.1:99999"]).contains("bad port"));
        assert!(e(&["-A", "-t", "10.0.0.1:80", "-M", "255.0.255.0", "-p"]).contains("netmask"));
        assert!(e(&["-A", "-t", "10.0.0.1:80", "-s", "rr", "-b", "sh-port"]).contains("sh-port"));
        assert!(e(&["-A", "-a", "-t", "10.0.0.1:80"]).contains("more than one command"));
        assert!(e(&["-a", "-t", "10.0.0.1:80"]).contains("no real server"));
        assert!(e(&["-t", "10.0.0.1:80"]).contains("no command"));
        assert!(e(&["-A", "-t", "10.0.0.1:80", "--pe", "sip"]).contains("--pe"));
    }
}
