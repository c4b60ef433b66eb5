//! One `ipvsadm` command line (`ipvsadm.c`'s option parsing): its words, short, long and
//! attached forms alike, read into a [`Command`]. The daemon verbs follow ipvsadm 1.31 to the
//! letter: its value ranges, its table of options each verb takes, and its messages.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::{Af, Proto, ServiceKey};
use crate::dest::{FwdMethod, RealServer};
use crate::director::Command;
use crate::laddr::ClientAddr;
use crate::service::{SchedFlags, ServiceConfig, DEFAULT_PERSIST_TIMEOUT};
use crate::sync::{DaemonConfig, Role};
use crate::wire::proxy::ProxyVersion;

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
    StartDaemon(Role),
    StopDaemon(Role),
    AddLaddr,
    DelLaddr,
}

impl Cmd {
    /// ipvsadm's name for the command (`cmdnames`), as its messages spell it.
    fn name(self) -> &'static str {
        match self {
            Cmd::AddSvc => "add-service",
            Cmd::EditSvc => "edit-service",
            Cmd::DelSvc => "delete-service",
            Cmd::AddDest => "add-server",
            Cmd::EditDest => "edit-server",
            Cmd::DelDest => "delete-server",
            Cmd::Clear => "flush",
            Cmd::Zero => "zero",
            Cmd::Set => "set",
            Cmd::StartDaemon(_) => "start-daemon",
            Cmd::StopDaemon(_) => "stop-daemon",
            Cmd::AddLaddr => "add-laddr",
            Cmd::DelLaddr => "del-laddr",
        }
    }

    /// The options the command takes (a blank in ipvsadm's `commands_v_options` table), for
    /// the daemon verbs, whose rows this parser follows whole.
    fn daemon_options(self) -> Option<&'static [Opt]> {
        match self {
            Cmd::StartDaemon(_) => Some(&Opt::DAEMON),
            Cmd::StopDaemon(_) => Some(&[Opt::Syncid]),
            _ => None,
        }
    }
}

/// An option, numbered as ipvsadm numbers its option bits (`OPTC_*`): its combination check
/// names the first offending option in this order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric = 0,
    Service = 2,
    Scheduler = 3,
    Persistent = 4,
    Netmask = 5,
    Server = 6,
    Forward = 7,
    Weight = 8,
    UThreshold = 9,
    LThreshold = 10,
    McastInterface = 11,
    Syncid = 19,
    Ops = 21,
    SchedFlags = 23,
    McastGroup = 24,
    McastPort = 25,
    McastTtl = 26,
    SyncMaxlen = 27,
    TunType = 29,
}

impl Opt {
    /// Every option this parser knows, in ipvsadm's order.
    const ALL: [Opt; 19] = [
        Opt::Numeric,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::Server,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::McastInterface,
        Opt::Syncid,
        Opt::Ops,
        Opt::SchedFlags,
        Opt::McastGroup,
        Opt::McastPort,
        Opt::McastTtl,
        Opt::SyncMaxlen,
        Opt::TunType,
    ];

    /// The daemon options, in ipvsadm's order: `--start-daemon` takes all of them, every other
    /// command none.
    const DAEMON: [Opt; 6] =
        [Opt::McastInterface, Opt::Syncid, Opt::McastGroup, Opt::McastPort, Opt::McastTtl, Opt::SyncMaxlen];

    /// ipvsadm's name for the option (`optnames`).
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::McastInterface => "mcast-interface",
            Opt::Syncid => "syncid",
            Opt::Ops => "ops",
            Opt::SchedFlags => "sched-flags",
            Opt::McastGroup => "mcast-group",
            Opt::McastPort => "mcast-port",
            Opt::McastTtl => "mcast-ttl",
            Opt::SyncMaxlen => "sync-maxlen",
            Opt::TunType => "tun-type",
        }
    }

    fn bit(self) -> u64 {
        1u64 << self as u8
    }
}

/// The options given so far, as ipvsadm's option bits.
#[derive(Clone, Copy, Default)]
struct Seen(u64);

impl Seen {
    fn set(&mut self, o: Opt) {
        self.0 |= o.bit();
    }

    /// Sets a daemon option, refusing it twice as ipvsadm's `set_option` does.
    fn once(&mut self, o: Opt) -> Result<(), String> {
        if self.has(o) {
            return Err(format!("multiple '{}' options specified", o.name()));
        }
        self.set(o);
        Ok(())
    }

    fn has(self, o: Opt) -> bool {
        self.0 & o.bit() != 0
    }

    /// ipvsadm's `generic_opt_check` for what this parser mirrors of it: a daemon verb takes
    /// only its own options, and no other command takes a daemon option.
    fn check(self, cmd: Cmd) -> Result<(), String> {
        let illegal = match cmd.daemon_options() {
            Some(allowed) => Opt::ALL.into_iter().find(|o| self.has(*o) && !allowed.contains(o)),
            None => Opt::DAEMON.into_iter().find(|o| self.has(*o)),
        };
        match illegal {
            Some(o) => Err(format!("Illegal '{}' option with the '{}' command", o.name(), cmd.name())),
            None => Ok(()),
        }
    }
}

/// The interface a daemon started without `--mcast-interface` uses (ipvsadm's `DEF_MCAST_IFN`).
const DEFAULT_MCAST_IFN: &str = "eth0";
/// The longest interface name ipvsadm passes on (`IP_VS_IFNAME_MAXLEN - 1` bytes); it cuts
/// longer ones.
const IFNAME_MAX: usize = 15;

/// A number as ipvsadm's `string_to_number` reads it (`strtol` in base 10: leading blanks and
/// a sign allowed, nothing after the digits) when it lies in `min..=max`.
fn number_in(s: &str, min: i64, max: i64) -> Option<i64> {
    let n: i64 = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']).parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

/// `master` or `backup`, the value of `--start-daemon` and `--stop-daemon`.
fn daemon_role(v: &str, bad: &str) -> Result<Role, String> {
    match v {
        "master" => Ok(Role::Master),
        "backup" => Ok(Role::Backup),
        _ => Err(bad.to_string()),
    }
}

/// `--mcast-group`: an IPv6 group when the text has a colon, IPv4 otherwise; multicast either way.
fn mcast_group(v: &str) -> Result<IpAddr, String> {
    if v.contains(':') {
        match v.parse::<Ipv6Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V6(a)),
            _ => Err(format!("invalid IPv6 mcast-group `{v}'")),
        }
    } else {
        match v.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V4(a)),
            _ => Err(format!("invalid IPv4 mcast-group `{v}'")),
        }
    }
}

/// `--mcast-interface`, cut to the length ipvsadm passes on.
fn ifname(v: &str) -> String {
    let mut end = v.len().min(IFNAME_MAX);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v.get(..end).unwrap_or_default().to_string()
}

pub(crate) fn parse_host(s: &str, default_port: u16) -> Result<(IpAddr, u16), String> {
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

/// DPVS's `--proxy-protocol` values (`proxy_protocol_type`): `disable` keeps the TOA.
fn proxy_protocol(v: &str) -> Result<ClientAddr, String> {
    match v.to_ascii_lowercase().as_str() {
        "disable" => Ok(ClientAddr::Toa),
        "v1" => Ok(ClientAddr::Proxy(ProxyVersion::V1)),
        "v2" => Ok(ClientAddr::Proxy(ProxyVersion::V2)),
        "v1-insecure" | "v2-insecure" => Err(format!("proxy protocol '{v}' not supported (disable, v1, v2)")),
        _ => Err(format!("invalid proxy protocol '{v}' (disable, v1, v2)")),
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
/// `ipvsadm -A -t 10.0.0.1:80 -s wlc -p 600` or `ipvsadm --start-daemon master
/// --mcast-interface eth1 --syncid 7`.
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
    let mut laddr: Option<String> = None;
    let mut client_addr = ClientAddr::Toa;
    let (mut upper, mut lower) = (0u32, 0u32);
    let mut set: Vec<u32> = Vec::new();
    let mut seen = Seen::default();
    // ipvsadm zeroes its command entry: without --syncid the kernel gets 0, which a backup
    // reads as "every syncid" (the man page's default; its usage text's 255 is not sent).
    let mut daemon = DaemonConfig { syncid: 0, ..DaemonConfig::new("") };

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
            && a.as_bytes().get(1).is_some_and(|c| b"tufsMbrwxyz".contains(c))
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
            // DPVS's ipvsadm: a FullNAT service's local addresses.
            "-P" | "--add-laddr" => set_cmd(&mut cmd, Cmd::AddLaddr)?,
            "-Q" | "--del-laddr" => set_cmd(&mut cmd, Cmd::DelLaddr)?,
            "-z" | "--laddr" => laddr = Some(value(t)?),
            "--proxy-protocol" => client_addr = proxy_protocol(&value(t)?)?,
            // DPVS's ipvsadm: `-b` on a real-server command is `--fullnat`; elsewhere it is
            // ipvsadm's `--sched-flags`.
            "-b" if matches!(cmd, Some(Cmd::AddDest | Cmd::EditDest)) => {
                seen.set(Opt::Forward);
                fwd = Some(FwdMethod::FullNat);
            }
            "--fullnat" => {
                seen.set(Opt::Forward);
                fwd = Some(FwdMethod::FullNat);
            }
            "--set" => {
                set_cmd(&mut cmd, Cmd::Set)?;
                for w in ["tcp", "tcpfin", "udp"] {
                    set.push(parse_num(&value("--set")?, w)?);
                }
            }
            "--start-daemon" => {
                let role = daemon_role(&value(t)?, "illegal start-daemon parameter specified")?;
                set_cmd(&mut cmd, Cmd::StartDaemon(role))?;
            }
            "--stop-daemon" => {
                // ipvsadm's words for a bad --stop-daemon value, underscore and all.
                let role = daemon_role(&value(t)?, "illegal start_daemon specified")?;
                set_cmd(&mut cmd, Cmd::StopDaemon(role))?;
            }
            "-t" | "--tcp-service" => {
                seen.set(Opt::Service);
                svc = Some((Some(Proto::Tcp), value(t)?));
            }
            "-u" | "--udp-service" => {
                seen.set(Opt::Service);
                svc = Some((Some(Proto::Udp), value(t)?));
            }
            "--sctp-service" => {
                seen.set(Opt::Service);
                svc = Some((Some(Proto::Sctp), value(t)?));
            }
            "-f" | "--fwmark-service" => {
                seen.set(Opt::Service);
                fwmark = Some(parse_num(&value(t)?, "firewall mark")?);
            }
            "-6" | "--ipv6" => v6 = true,
            "-s" | "--scheduler" => {
                seen.set(Opt::Scheduler);
                sched = Some(value(t)?);
            }
            "-p" | "--persistent" => {
                seen.set(Opt::Persistent);
                persistent =
                    Some(if next_is_num { parse_num(&value(t)?, "timeout")? } else { DEFAULT_PERSIST_TIMEOUT });
            }
            "-M" | "--netmask" => {
                seen.set(Opt::Netmask);
                netmask = Some(value(t)?);
            }
            "-b" | "--sched-flags" => {
                seen.set(Opt::SchedFlags);
                bflags = Some(value(t)?);
            }
            "-o" | "--ops" => {
                seen.set(Opt::Ops);
                ops = true;
            }
            "-r" | "--real-server" => {
                seen.set(Opt::Server);
                rs = Some(value(t)?);
            }
            "-g" | "--gatewaying" | "-i" | "--ipip" | "-m" | "--masquerading" => {
                seen.set(Opt::Forward);
                fwd = Some(match t {
                    "-i" | "--ipip" => FwdMethod::Tunnel,
                    "-m" | "--masquerading" => FwdMethod::Masq,
                    _ => FwdMethod::Route,
                });
            }
            "-w" | "--weight" => {
                seen.set(Opt::Weight);
                weight = Some(parse_num(&value(t)?, "weight")?);
            }
            "-x" | "--u-threshold" => {
                seen.set(Opt::UThreshold);
                upper = parse_num(&value(t)?, "upper threshold")?;
            }
            "-y" | "--l-threshold" => {
                seen.set(Opt::LThreshold);
                lower = parse_num(&value(t)?, "lower threshold")?;
            }
            "--tun-type" => {
                seen.set(Opt::TunType);
                let v = value(t)?;
                if v != "ipip" {
                    return Err(format!("tunnel type '{v}' not supported (ipip only)"));
                }
            }
            "-n" | "--numeric" => seen.set(Opt::Numeric),
            "--pe" => return Err("persistence engines (--pe) are not supported".to_string()),
            "--mcast-interface" => {
                seen.once(Opt::McastInterface)?;
                daemon.ifname = ifname(&value(t)?);
            }
            "--syncid" => {
                seen.once(Opt::Syncid)?;
                let n = number_in(&value(t)?, 0, 255).ok_or("illegal syncid specified")?;
                daemon.syncid = n as u8;
            }
            "--mcast-group" => {
                seen.once(Opt::McastGroup)?;
                daemon.group = Some(mcast_group(&value(t)?)?);
            }
            "--mcast-port" => {
                seen.once(Opt::McastPort)?;
                let n = number_in(&value(t)?, 1, 65535).ok_or("illegal mcast-port specified")?;
                daemon.port = n as u16;
            }
            "--mcast-ttl" => {
                seen.once(Opt::McastTtl)?;
                let n = number_in(&value(t)?, 1, 255).ok_or("illegal mcast-ttl specified")?;
                daemon.ttl = n as u8;
            }
            "--sync-maxlen" => {
                seen.once(Opt::SyncMaxlen)?;
                let n = number_in(&value(t)?, 1, 65535 - 20 - 8).ok_or("illegal sync-maxlen specified")?;
                daemon.maxlen = n as u16;
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    let cmd = cmd.ok_or("no command given")?;
    seen.check(cmd)?;
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
        c.client_addr = client_addr;
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
        Cmd::StartDaemon(role) => {
            if daemon.ifname.is_empty() {
                daemon.ifname = DEFAULT_MCAST_IFN.to_string();
            }
            Command::StartDaemon(role, daemon)
        }
        Cmd::StopDaemon(role) => Command::StopDaemon(role),
        Cmd::AddLaddr | Cmd::DelLaddr => {
            let k = need_key()?;
            let a = laddr.as_deref().ok_or("no local address given (-z)")?;
            let a: IpAddr = a.parse().map_err(|_| format!("illegal local address '{a}'"))?;
            if cmd == Cmd::AddLaddr {
                Command::AddLaddr(k, a)
            } else {
                Command::DelLaddr(k, a)
            }
        }
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
    fn dpvs_fullnat_verbs() {
        // DPVS's ipvsadm: `-b` is --fullnat on -a/-e and --sched-flags on -A/-E.
        let Command::AddDest(_, r) = parse_command(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080", "-b"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.fwd, r.endpoint.port), (FwdMethod::FullNat, 8080));
        let Command::EditDest(_, r) =
            parse_command(&["-e", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "--fullnat"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.fwd, FwdMethod::FullNat);
        let Command::AddService(s) = parse_command(&["-A", "-t", "10.0.0.1:80", "-s", "sh", "-b", "sh-port"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((s.sched_flags.port(), s.client_addr), (true, ClientAddr::Toa));
        let Command::AddService(s) = parse_command(&["-A", "-t", "10.0.0.1:80", "--proxy-protocol", "v2"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.client_addr, ClientAddr::Proxy(ProxyVersion::V2));
        let k = ServiceKey::tcp(IpAddr::from([10, 0, 0, 1]), 80);
        let a = IpAddr::from([192, 168, 0, 200]);
        assert_eq!(
            parse_command(&["-P", "-t", "10.0.0.1:80", "-z", "192.168.0.200"]).unwrap(),
            Command::AddLaddr(k, a)
        );
        assert_eq!(
            parse_command(&["--del-laddr", "-t", "10.0.0.1:80", "--laddr=192.168.0.200"]).unwrap(),
            Command::DelLaddr(k, a)
        );
        assert!(parse_command(&["-P", "-t", "10.0.0.1:80"]).unwrap_err().contains("-z"));
        assert!(parse_command(&["-A", "-t", "10.0.0.1:80", "--proxy-protocol", "v3"]).is_err());
    }

    #[test]
    fn bad_commands_say_why() {
        let e = |a: &[&str]| parse_command(a).unwrap_err();
        assert!(e(&["-A", "-t", "10.0.0.1:80", "-Y"]).contains("unknown option '-Y'"));
        assert!(e(&["-A", "-t", "host.example:80"]).contains("numeric"));
        assert!(e(&["-A", "-t", "10.0.0.1:99999"]).contains("bad port"));
        assert!(e(&["-A", "-t", "10.0.0.1:80", "-M", "255.0.255.0", "-p"]).contains("netmask"));
        assert!(e(&["-A", "-t", "10.0.0.1:80", "-s", "rr", "-b", "sh-port"]).contains("sh-port"));
        assert!(e(&["-A", "-a", "-t", "10.0.0.1:80"]).contains("more than one command"));
        assert!(e(&["-a", "-t", "10.0.0.1:80"]).contains("no real server"));
        assert!(e(&["-t", "10.0.0.1:80"]).contains("no command"));
        assert!(e(&["-A", "-t", "10.0.0.1:80", "--pe", "sip"]).contains("--pe"));
    }

    fn daemon(args: &[&str]) -> (Role, DaemonConfig) {
        match parse_command(args) {
            Ok(Command::StartDaemon(role, cfg)) => (role, cfg),
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
        assert_eq!(parse_command(&["--stop-daemon", "backup"]).unwrap(), Command::StopDaemon(Role::Backup));
        // ipvsadm lets --stop-daemon carry a syncid; the kernel does not use it.
        assert_eq!(
            parse_command(&["--stop-daemon", "master", "--syncid", "7"]).unwrap(),
            Command::StopDaemon(Role::Master)
        );
    }

    #[test]
    fn bad_daemon_lines_get_ipvsadm_messages() {
        let e = |a: &[&str]| parse_command(a).unwrap_err();
        let start = |extra: &[&str]| {
            let mut v = alloc::vec!["--start-daemon", "master"];
            v.extend_from_slice(extra);
            e(&v)
        };
        assert_eq!(e(&["--start-daemon", "primary"]), "illegal start-daemon parameter specified");
        assert_eq!(e(&["--stop-daemon", "Master"]), "illegal start_daemon specified");
        assert_eq!(e(&["--start-daemon"]), "option --start-daemon needs a value");
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
        assert_eq!(start(&["--stop-daemon", "master"]), "more than one command given");
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
}
