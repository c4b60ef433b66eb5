//! ldirectord.cf's lines: `key = value` globals at the left margin, `virtual=` sections whose
//! lines are indented (four spaces or a tab), `#` comments. Globals apply wherever they stand,
//! as in ldirectord; each section is resolved into a [`Virtual`] once the file is read.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;

use super::check::check_plans;
use super::model::{CheckType, Ldirectord, Real, Virtual};
use crate::addr::{Af, Proto, ServiceKey};
use crate::config::deploy::{key_order, MAX_ENTRIES, MAX_SERVERS_PER_SERVICE};
use crate::config::source::{ConfigError, ErrorKind, Files, Origin, Warning};
use crate::dest::{FwdMethod, RealServer};
use crate::service::SchedFlags;

/// One `key = value` line.
struct Setting {
    origin: Origin,
    key: String,
    value: String,
}

/// A `virtual=` section as read.
struct Section {
    origin: Origin,
    v6: bool,
    head: String,
    settings: Vec<Setting>,
}

/// The global settings.
#[derive(Default)]
struct Globals {
    checktimeout: Option<u32>,
    negotiatetimeout: Option<u32>,
    checkinterval: Option<u32>,
    checkcount: Option<u32>,
    failurecount: Option<u32>,
    fallback: Option<Setting>,
    fallback6: Option<Setting>,
    quiescent: Option<bool>,
    fallbackcommand: Option<String>,
    fork: bool,
}

struct Cx {
    files: Files,
    warnings: Vec<Warning>,
}

impl Cx {
    fn err(&self, s: &Setting, msg: impl core::fmt::Display) -> ConfigError {
        self.fault(s, ErrorKind::Value, msg)
    }

    fn fault(&self, s: &Setting, kind: ErrorKind, msg: impl core::fmt::Display) -> ConfigError {
        self.files.error(s.origin, kind, format!("{}: {msg}", s.key))
    }

    fn ignored(&mut self, s: &Setting) {
        let w = self.files.warning(s.origin, &s.key, "not implemented by this library; ignored");
        self.warnings.push(w);
    }

    fn warn(&mut self, s: &Setting, msg: impl Into<String>) {
        let w = self.files.warning(s.origin, &s.key, msg);
        self.warnings.push(w);
    }

    fn num(&self, s: &Setting) -> Result<u32, ConfigError> {
        s.value.parse().map_err(|_| self.err(s, format!("bad number '{}'", s.value)))
    }

    fn positive(&self, s: &Setting) -> Result<u32, ConfigError> {
        match self.num(s)? {
            0 => Err(self.err(s, "must be more than 0")),
            n => Ok(n),
        }
    }

    fn yes_no(&self, s: &Setting) -> Result<bool, ConfigError> {
        match s.value.as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(self.err(s, "must be 'yes' or 'no'")),
        }
    }
}

/// Reads the text of the file `name`.
pub(crate) fn read(text: &str, name: &str) -> Result<(Ldirectord, Vec<Warning>), ConfigError> {
    let mut cx = Cx { files: Files(alloc::vec![name.to_string()]), warnings: Vec::new() };
    let mut g = Globals::default();
    let mut sections: Vec<Section> = Vec::new();
    let mut in_section = false;
    for (i, raw) in text.lines().enumerate() {
        let origin = Origin { file: 0, line: u32::try_from(i + 1).unwrap_or(u32::MAX) };
        if raw.trim_start().starts_with('#') {
            continue;
        }
        let line = raw.split('#').next().unwrap_or("").replace('\t', "    ");
        if line.trim().is_empty() {
            continue;
        }
        let indented = line.starts_with("    ");
        let (key, value) = match line.trim().split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (line.trim().to_string(), String::new()),
        };
        let s = Setting { origin, key, value };
        if indented {
            match sections.last_mut().filter(|_| in_section) {
                Some(sec) => sec.settings.push(s),
                None => return Err(cx.fault(&s, ErrorKind::Syntax, "indented line outside a virtual section")),
            }
            continue;
        }
        in_section = false;
        match s.key.as_str() {
            "virtual" | "virtual6" => {
                in_section = true;
                sections.push(Section { origin, v6: s.key == "virtual6", head: s.value, settings: Vec::new() });
            }
            "checktimeout" => g.checktimeout = Some(cx.positive(&s)?),
            "negotiatetimeout" => g.negotiatetimeout = Some(cx.positive(&s)?),
            "checkinterval" => g.checkinterval = Some(cx.positive(&s)?),
            "checkcount" => g.checkcount = Some(cx.positive(&s)?),
            "failurecount" => g.failurecount = Some(cx.positive(&s)?),
            "fallback" => g.fallback = Some(s),
            "fallback6" => g.fallback6 = Some(s),
            "quiescent" => g.quiescent = Some(cx.yes_no(&s)?),
            "fork" => g.fork = cx.yes_no(&s)?,
            "fallbackcommand" => g.fallbackcommand = Some(unquote(&s.value).to_string()),
            "autoreload" | "callback" | "logfile" | "emailalert" | "emailalertfreq" | "emailalertstatus"
            | "emailalertfrom" | "smtp" | "execute" | "supervised" | "readdquiescent" | "cleanstop"
            | "maintenancedir" => cx.ignored(&s),
            _ => return Err(cx.fault(&s, ErrorKind::Syntax, "unknown directive")),
        }
    }
    let mut out = Ldirectord { files: Files::default(), virtuals: Vec::new() };
    let (mut keys, mut entries) = (BTreeSet::new(), 0usize);
    for sec in &sections {
        let v = virtual_section(&mut cx, &g, sec)?;
        if !keys.insert(key_order(&v.key)) {
            return Err(cx.files.error(
                sec.origin,
                ErrorKind::Duplicate,
                format!("virtual: {} is configured twice", v.key),
            ));
        }
        entries = entries.saturating_add(v.reals.len() + 2);
        if entries > MAX_ENTRIES {
            return Err(cx.files.error(
                sec.origin,
                ErrorKind::Limit,
                format!("virtual: the configuration stands for more than {MAX_ENTRIES} table entries"),
            ));
        }
        out.virtuals.push(v);
    }
    out.files = cx.files;
    Ok((out, cx.warnings))
}

/// A value without one pair of surrounding double quotes.
fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(s)
}

/// A port: a number, or a name from the services ldirectord's checks know.
fn port(s: &str) -> Option<u16> {
    if let Ok(p) = s.parse() {
        return Some(p);
    }
    Some(match s {
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" => 53,
        "http" | "www" => 80,
        "pop3" => 110,
        "nntp" => 119,
        "imap" | "imap2" => 143,
        "ldap" => 389,
        "https" => 443,
        "submission" => 587,
        "ldaps" => 636,
        "imaps" => 993,
        "pop3s" => 995,
        "radius" => 1812,
        "mysql" => 3306,
        "sip" => 5060,
        "postgresql" => 5432,
        _ => return None,
    })
}

/// `service`'s default for a virtual port.
fn default_service(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        993 => "imaps",
        995 => "pops",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}

/// `ADDRESS[:PORT]` (`[v6]:PORT` for IPv6); a host name is an error, since the library
/// resolves no names.
fn host_port(s: &str, v6: bool) -> Result<(IpAddr, Option<u16>), (ErrorKind, String)> {
    let syntax = |m: &str| (ErrorKind::Syntax, m.to_string());
    let (host, p) = if v6 {
        let rest = s.strip_prefix('[').ok_or_else(|| syntax("IPv6 addresses go in brackets"))?;
        let (h, after) = rest.split_once(']').ok_or_else(|| syntax("unclosed bracket"))?;
        (h, after.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let addr: IpAddr = host
        .parse()
        .map_err(|_| (ErrorKind::Unsupported, format!("'{host}' is not an address (host names are not resolved)")))?;
    if addr.is_ipv6() != v6 {
        return Err((ErrorKind::Value, format!("'{host}' is not of the section's address family")));
    }
    let port = match p {
        None => None,
        Some(p) => Some(port(p).ok_or_else(|| (ErrorKind::Value, format!("unknown port '{p}'")))?),
    };
    Ok((addr, port))
}

/// `gate`, `masq` or `ipip`.
fn method(s: &str) -> Option<FwdMethod> {
    match s {
        "gate" => Some(FwdMethod::Route),
        "masq" => Some(FwdMethod::Masq),
        "ipip" => Some(FwdMethod::Tunnel),
        _ => None,
    }
}

/// A `virtual=` section resolved with the globals.
fn virtual_section(cx: &mut Cx, g: &Globals, sec: &Section) -> Result<Virtual, ConfigError> {
    let head = Setting { origin: sec.origin, key: "virtual".into(), value: sec.head.clone() };
    let (key_addr, vport) = if !sec.head.contains([':', '[', '.']) {
        let mark: u32 = cx.positive(&head)?;
        (None, mark)
    } else {
        let (a, p) = host_port(&sec.head, sec.v6).map_err(|(k, m)| cx.fault(&head, k, m))?;
        let p = p.ok_or_else(|| cx.fault(&head, ErrorKind::Syntax, "needs a port"))?;
        (Some(a), u32::from(p))
    };
    let af = if sec.v6 { Af::V6 } else { Af::V4 };
    let mut proto = match key_addr {
        Some(_) if vport == 53 => Some(Proto::Udp),
        Some(_) => Some(Proto::Tcp),
        None => None,
    };
    let mut v = Virtual {
        origin: sec.origin,
        key: ServiceKey::Fwmark { mark: vport, af },
        scheduler: "wrr".into(),
        persistent: None,
        netmask: None,
        one_packet: false,
        sched_flags: SchedFlags::default(),
        reals: Vec::new(),
        fallback: None,
        quiescent: g.quiescent.unwrap_or(true),
        checktype: CheckType::Negotiate,
        service: String::new(),
        checkport: None,
        request: "/".into(),
        receive: String::new(),
        virtualhost: None,
        checkcommand: "/bin/true".into(),
        checkinterval: Duration::from_secs(u64::from(g.checkinterval.unwrap_or(10))),
        checktimeout: Duration::ZERO,
        negotiatetimeout: Duration::ZERO,
        failurecount: g.failurecount.unwrap_or(1),
        checkcount: g.checkcount.unwrap_or(1),
        fallbackcommand: g.fallbackcommand.clone(),
        servicename: None,
        comment: None,
    };
    let (mut checktimeout, mut negotiatetimeout) = (g.checktimeout, g.negotiatetimeout);
    let mut fallback = if sec.v6 { g.fallback6.as_ref() } else { g.fallback.as_ref() };
    let mut reals = Vec::new();
    for s in &sec.settings {
        let value = unquote(&s.value);
        match s.key.as_str() {
            "real" | "real6" | "fallback" | "fallback6" if s.key.ends_with('6') != sec.v6 => {
                return Err(cx.err(s, "virtual= takes real= and fallback=, virtual6= takes real6= and fallback6="));
            }
            "real" | "real6" => reals.push(s),
            "fallback" | "fallback6" => fallback = Some(s),
            "request" => {
                let r = http_path(cx, s, value);
                v.request = r;
            }
            "receive" => v.receive = value.to_string(),
            "checktype" => v.checktype = checktype(cx, s)?,
            "checkcommand" => v.checkcommand = value.to_string(),
            "checktimeout" => checktimeout = Some(cx.positive(s)?),
            "negotiatetimeout" => negotiatetimeout = Some(cx.positive(s)?),
            "checkcount" => v.checkcount = cx.positive(s)?,
            "failurecount" => v.failurecount = cx.positive(s)?,
            "checkinterval" if g.fork => v.checkinterval = Duration::from_secs(u64::from(cx.positive(s)?)),
            "checkinterval" => {
                cx.warn(s, "a section's checkinterval needs fork = yes (as in ldirectord); the global one is used")
            }
            "checkport" => v.checkport = Some(port(value).filter(|p| *p > 0).ok_or_else(|| cx.err(s, "bad port"))?),
            "scheduler" => v.scheduler = value.to_string(),
            "persistent" => v.persistent = Some(cx.num(s)?),
            "netmask" => v.netmask = Some(netmask(cx, s, sec.v6)?),
            "protocol" => {
                proto = match (value, key_addr) {
                    ("tcp", Some(_)) => Some(Proto::Tcp),
                    ("udp", Some(_)) => Some(Proto::Udp),
                    ("fwm", None) => None,
                    _ => return Err(cx.err(s, "must be tcp or udp for an address, fwm for a firewall mark")),
                }
            }
            "ops" => v.one_packet = cx.yes_no(s)?,
            "schedflags" => v.sched_flags = sched_flags(cx, s)?,
            "service" => v.service = value.to_string(),
            "virtualhost" => v.virtualhost = Some(value.to_string()),
            "quiescent" => v.quiescent = cx.yes_no(s)?,
            "fallbackcommand" => v.fallbackcommand = Some(value.to_string()),
            "servicename" => v.servicename = Some(value.to_string()),
            "comment" => v.comment = Some(value.to_string()),
            "httpmethod" => {
                if !value.eq_ignore_ascii_case("GET") {
                    cx.warn(s, "only GET is implemented; GET is used");
                }
            }
            "login" | "passwd" | "database" | "secret" | "load" | "emailalert" | "emailalertfreq"
            | "emailalertstatus" | "monitorfile" | "cleanstop" | "smtp" => cx.ignored(s),
            _ => return Err(cx.fault(s, ErrorKind::Syntax, "unknown directive")),
        }
    }
    v.key = match (key_addr, proto) {
        (Some(addr), Some(proto)) => ServiceKey::Inet { proto, addr, port: vport as u16 },
        _ => ServiceKey::Fwmark { mark: vport, af },
    };
    v.checktimeout = secs(checktimeout.or(negotiatetimeout).unwrap_or(5));
    v.negotiatetimeout = secs(negotiatetimeout.or(checktimeout).unwrap_or(30));
    if v.service.is_empty() {
        v.service = String::from(if key_addr.is_some() { default_service(vport as u16) } else { "none" });
    }
    for s in reals {
        real(cx, s, &mut v, sec.v6)?;
    }
    if let Some(s) = fallback {
        v.fallback = Some(fallback_server(cx, s, &v, sec.v6)?);
    }
    for (keyword, msg) in check_plans(&mut v) {
        let w = cx.files.warning(sec.origin, keyword, msg);
        cx.warnings.push(w);
    }
    Ok(v)
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// `request`: a path, `/` put in front as ldirectord does; an absolute URL's path alone.
fn http_path(cx: &mut Cx, s: &Setting, value: &str) -> String {
    let rest = value.strip_prefix("http://").or_else(|| value.strip_prefix("https://"));
    let path = match rest {
        Some(r) => {
            cx.warn(s, "the URL's host is not used: the real server (or checkport) is asked for its path");
            r.find('/').map_or("/", |i| &r[i..])
        }
        None => value,
    };
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// `checktype`.
fn checktype(cx: &Cx, s: &Setting) -> Result<CheckType, ConfigError> {
    Ok(match s.value.as_str() {
        "connect" => CheckType::Connect,
        "negotiate" => CheckType::Negotiate,
        "ping" => CheckType::Ping,
        "external" => CheckType::External,
        "external-perl" => CheckType::ExternalPerl,
        "on" => CheckType::On,
        "off" => CheckType::Off,
        n => CheckType::Combined(n.parse().map_err(|_| cx.err(s, format!("unknown check type '{n}'")))?),
    })
}

/// `netmask`: dotted for IPv4, a prefix length for IPv6.
fn netmask(cx: &Cx, s: &Setting, v6: bool) -> Result<u8, ConfigError> {
    if v6 {
        return s
            .value
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=128).contains(p))
            .ok_or_else(|| cx.err(s, "needs a prefix length 1..=128"));
    }
    let m: Ipv4Addr = s.value.parse().map_err(|_| cx.err(s, "needs a dotted netmask"))?;
    let m = u32::from(m);
    if m.leading_ones() + m.trailing_zeros() != 32 || m == 0 {
        return Err(cx.err(s, "not a contiguous netmask"));
    }
    Ok(m.leading_ones() as u8)
}

/// `schedflags`: ipvsadm's `-b` words, comma-separated.
fn sched_flags(cx: &Cx, s: &Setting) -> Result<SchedFlags, ConfigError> {
    let mut f = SchedFlags::default();
    for w in s.value.split(',') {
        f.0 |= match w {
            "flag-1" | "sh-fallback" | "mh-fallback" => SchedFlags::FLAG1,
            "flag-2" | "sh-port" | "mh-port" => SchedFlags::FLAG2,
            "flag-3" => SchedFlags::FLAG3,
            _ => return Err(cx.err(s, format!("unknown flag '{w}'"))),
        };
    }
    Ok(f)
}

/// The port a real server takes: for an address service not forwarded by NAT, the virtual
/// port (ldirectord: only NAT can map ports); otherwise its own, 0 when not given.
fn real_port(v: &Virtual, fwd: FwdMethod, given: Option<u16>) -> u16 {
    match v.key {
        ServiceKey::Inet { port, .. } if fwd != FwdMethod::Masq || given.is_none() => port,
        _ => given.unwrap_or(0),
    }
}

/// `real = ADDR[->LAST][:PORT] gate|masq|ipip [WEIGHT] ["REQUEST", "RECEIVE"] [l:N] [u:N]`.
fn real(cx: &mut Cx, s: &Setting, v: &mut Virtual, v6: bool) -> Result<(), ConfigError> {
    let mut rest = s.value.trim();
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (target, after) = rest.split_at(end);
    rest = after.trim_start();
    let (first, last) = match target.split_once("->") {
        Some((a, b)) => (a, Some(b)),
        None => (target, None),
    };
    let (addr, first_port) = host_port(first, v6).map_err(|(k, m)| cx.fault(s, k, m))?;
    // In a range the port follows the last address.
    let (end_addr, port) = match last {
        Some(b) => host_port(b, v6).map_err(|(k, m)| cx.fault(s, k, m))?,
        None => (addr, first_port),
    };
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let fwd = method(&rest[..end]).ok_or_else(|| cx.err(s, "forward method must be gate, masq or ipip"))?;
    rest = rest[end..].trim_start();
    let mut rs = RealServer::new(addr, real_port(v, fwd, port), fwd, 1);
    if let Some(w) = rest.split_whitespace().next().filter(|w| w.bytes().all(|b| b.is_ascii_digit())) {
        rs.weight = w.parse().map_err(|_| cx.err(s, "bad weight"))?;
        rest = rest[w.len()..].trim_start();
    }
    let mut request = None;
    if rest.starts_with('"') {
        let quoted: Vec<&str> = rest.splitn(5, '"').collect();
        if quoted.len() < 5 || !matches!(quoted[2].trim(), "," | "") {
            return Err(cx.fault(s, ErrorKind::Syntax, "expected \"request\", \"receive\""));
        }
        let path = http_path(cx, s, quoted[1]);
        request = Some((path, quoted[3].to_string()));
        rest = quoted[4].trim_start();
    }
    for w in rest.split_whitespace() {
        let bad = || cx.fault(s, ErrorKind::Syntax, format!("unexpected '{w}'"));
        match w.split_once(':') {
            Some(("l", n)) => rs.l_threshold = n.parse().map_err(|_| bad())?,
            Some(("u", n)) => rs.u_threshold = n.parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        }
    }
    let (lo, hi) = (to_int(&addr), to_int(&end_addr));
    if hi < lo || (v6 && lo != hi) {
        return Err(cx.err(s, "a range runs from a lower to a higher IPv4 address"));
    }
    if v.reals.len() + (hi - lo) as usize >= MAX_SERVERS_PER_SERVICE {
        return Err(cx.fault(
            s,
            ErrorKind::Limit,
            format!("a virtual service may have at most {MAX_SERVERS_PER_SERVICE} real servers"),
        ));
    }
    for n in lo..=hi {
        let a = if v6 { addr } else { IpAddr::V4(Ipv4Addr::from(n)) };
        let server = RealServer { endpoint: crate::addr::Endpoint::new(a, rs.endpoint.port), ..rs };
        v.reals.push(Real { origin: s.origin, server, request: request.clone(), check: None });
    }
    Ok(())
}

fn to_int(a: &IpAddr) -> u32 {
    match a {
        IpAddr::V4(v) => u32::from(*v),
        IpAddr::V6(_) => 0,
    }
}

/// `fallback = ADDR[:PORT] [gate|masq|ipip]` (gate and the virtual port by default).
fn fallback_server(cx: &Cx, s: &Setting, v: &Virtual, v6: bool) -> Result<RealServer, ConfigError> {
    let mut words = s.value.split_whitespace();
    let target = words.next().ok_or_else(|| cx.fault(s, ErrorKind::Syntax, "needs an address"))?;
    let (addr, port) = host_port(target, v6).map_err(|(k, m)| cx.fault(s, k, m))?;
    let fwd = match words.next() {
        None => FwdMethod::Route,
        Some(m) => method(m).ok_or_else(|| cx.err(s, "forward method must be gate, masq or ipip"))?,
    };
    if words.next().is_some() {
        return Err(cx.fault(s, ErrorKind::Syntax, "expected ADDRESS[:PORT] [gate|masq|ipip]"));
    }
    let port = port.unwrap_or(match v.key {
        ServiceKey::Inet { port, .. } => port,
        ServiceKey::Fwmark { .. } => 0,
    });
    Ok(RealServer::new(addr, port, fwd, 1))
}
