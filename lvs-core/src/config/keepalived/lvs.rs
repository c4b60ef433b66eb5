//! keepalived's LVS sections: `virtual_server_group` (addresses, ranges, prefixes, fwmarks),
//! `virtual_server` (by address and port, fwmark or group) and its `real_server`s, into the
//! model's [`VirtualServer`]s.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::check::{checker, Defaults, KINDS};
use super::model::{RealServerConf, VirtualServer};
use super::tree::{Cx, Node};
use crate::addr::{Af, Proto, ServiceKey};
use crate::config::source::{ConfigError, ErrorKind};
use crate::dest::{FwdMethod, RealServer, TunConfig, TunCsum, TunType};
use crate::health::{ServicePolicy, MAX_CHECKS};
use crate::service::{PersistEngine, SchedFlags};

/// The most services one `virtual_server_group` may stand for (its ranges expanded).
pub const MAX_GROUP_MEMBERS: usize = 4096;

/// `persistence_timeout` without a value: 6 minutes.
const DEFAULT_PERSISTENCE: u32 = 360;

/// One member of a `virtual_server_group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Member {
    /// An address (one of a range or prefix) and its port, if given.
    Addr(IpAddr, Option<u16>),
    /// `fwmark N [inet|inet6]`.
    Fwmark(u32, Option<Af>),
}

/// A `virtual_server_group NAME { … }` block: its name and members, ranges expanded.
pub(crate) fn vs_group(cx: &mut Cx, n: &Node) -> Result<(String, Vec<Member>), ConfigError> {
    let name = cx.need(n, 0)?.to_string();
    let mut members = Vec::new();
    for e in cx.block(n)? {
        if e.key == "fwmark" {
            let mark = cx.num_in(e, 0, 1, i64::from(u32::MAX))?;
            let af = match e.arg(1) {
                None => None,
                Some(f) => Some(family(cx, e, f)?),
            };
            members.push(Member::Fwmark(mark, af));
            continue;
        }
        let port = match e.arg(0) {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| cx.err(e, format!("bad port '{p}'")))?),
        };
        if e.args.len() > 1 || e.block.is_some() {
            return Err(cx.fault(e, ErrorKind::Syntax, "expected ADDRESS[-LAST|/PREFIX] [PORT] or fwmark N"));
        }
        for a in range(&e.key).ok_or_else(|| cx.err(e, "bad address or range"))? {
            members.push(Member::Addr(a, port));
            if members.len() > MAX_GROUP_MEMBERS {
                return Err(cx.fault(
                    e,
                    ErrorKind::Limit,
                    format!("group stands for more than {MAX_GROUP_MEMBERS} services"),
                ));
            }
        }
    }
    Ok((name, members))
}

/// `inet` or `inet6`.
fn family(cx: &Cx, n: &Node, f: &str) -> Result<Af, ConfigError> {
    match f {
        "inet" => Ok(Af::V4),
        "inet6" => Ok(Af::V6),
        _ => Err(cx.err(n, format!("bad address family '{f}'"))),
    }
}

/// The addresses of `A`, `A-N` (the last part of `A` up to `N`: a decimal octet for IPv4, a
/// hex group for IPv6), `A-B` and `A/P` (the whole prefix), at most [`MAX_GROUP_MEMBERS`] + 1
/// of them so that an oversized range is seen without being built.
fn range(s: &str) -> Option<Vec<IpAddr>> {
    let (first, last) = if let Some((a, p)) = s.split_once('/') {
        let a: IpAddr = a.parse().ok()?;
        let p: u8 = p.parse().ok()?;
        let bits = u32::from(Af::of(&a).max_prefix());
        if u32::from(p) > bits {
            return None;
        }
        let size = if bits - u32::from(p) >= 128 { u128::MAX } else { (1u128 << (bits - u32::from(p))) - 1 };
        let base = to_int(&a) & !size;
        (from_int(&a, base), from_int(&a, base.saturating_add(size)))
    } else if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a.parse().ok()?;
        let b = match b.parse::<IpAddr>() {
            Ok(b) => b,
            Err(_) => {
                let (mask, v) = match a {
                    IpAddr::V4(_) => (0xffu128, u128::from(b.parse::<u8>().ok()?)),
                    IpAddr::V6(_) => (0xffffu128, u128::from(u16::from_str_radix(b, 16).ok()?)),
                };
                from_int(&a, (to_int(&a) & !mask) | v)
            }
        };
        (a, b)
    } else {
        let a: IpAddr = s.parse().ok()?;
        (a, a)
    };
    if first.is_ipv4() != last.is_ipv4() || to_int(&first) > to_int(&last) {
        return None;
    }
    let count = (to_int(&last) - to_int(&first)).min(MAX_GROUP_MEMBERS as u128);
    Some((0..=count).map(|i| from_int(&first, to_int(&first) + i)).collect())
}

fn to_int(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(*v)),
        IpAddr::V6(v) => u128::from(*v),
    }
}

fn from_int(like: &IpAddr, v: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// `lvs_method` / `lb_kind` (`svr_forwarding_handler`): `NAT`, `DR` or `TUN`, then in any
/// order `type ipip|gue|gre`, `port N` (GUE's UDP port, 1 to 65535) and `nocsum`, `csum` or
/// `remcsum`, a later word overriding an earlier one. A GUE tunnel needs the port and no other
/// may have one; ipip takes no checksum option and GRE no `remcsum` (keepalived's messages).
fn method(cx: &Cx, n: &Node) -> Result<(FwdMethod, TunConfig), ConfigError> {
    let m = cx.need(n, 0)?;
    let fwd = match m.to_ascii_uppercase().as_str() {
        "NAT" => FwdMethod::Masq,
        "DR" => FwdMethod::Route,
        "TUN" => FwdMethod::Tunnel,
        _ => return Err(cx.err(n, format!("unknown forwarding method '{m}'"))),
    };
    let mut tun = TunConfig::IPIP;
    let mut i = 1;
    while let Some(word) = n.arg(i) {
        match word {
            "type" => {
                tun.kind = match n.arg(i + 1) {
                    Some("ipip") => TunType::Ipip,
                    Some("gue") => TunType::Gue,
                    Some("gre") => TunType::Gre,
                    Some(t) => return Err(cx.err(n, format!("Unknown tunnel type {t}"))),
                    None => return Err(cx.fault(n, ErrorKind::Syntax, "Missing tunnel type")),
                };
                i += 1;
            }
            "port" => {
                if n.arg(i + 1).is_none() {
                    return Err(cx.fault(n, ErrorKind::Syntax, "Missing port for gue tunnel"));
                }
                tun.port = cx.num_in(n, i + 1, 1, 65535)?;
                i += 1;
            }
            "nocsum" => tun.csum = TunCsum::NoCsum,
            "csum" => tun.csum = TunCsum::Csum,
            "remcsum" => tun.csum = TunCsum::RemCsum,
            w => return Err(cx.err(n, format!("Invalid tunnel option {w}"))),
        }
        i += 1;
    }
    if (tun.kind == TunType::Gue) != (tun.port != 0) {
        return Err(cx.err(n, "gue tunnels require port, otherwise cannot have port."));
    }
    if tun.kind == TunType::Ipip && tun.csum != TunCsum::NoCsum {
        return Err(cx.err(n, "ipip tunnels do not support checksum option."));
    }
    if tun.kind == TunType::Gre && tun.csum == TunCsum::RemCsum {
        return Err(cx.err(n, "gre tunnels do not support remote checksum option."));
    }
    Ok((fwd, tun))
}

/// A persistence granularity as a prefix length: a dotted IPv4 netmask or a prefix length.
fn granularity(cx: &Cx, n: &Node) -> Result<u8, ConfigError> {
    let s = cx.need(n, 0)?;
    if let Ok(p) = s.parse::<u8>() {
        if p <= 128 {
            return Ok(p);
        }
    }
    let m: Ipv4Addr = s.parse().map_err(|_| cx.err(n, format!("bad netmask '{s}'")))?;
    let m = u32::from(m);
    if m.leading_ones() + m.trailing_zeros() != 32 {
        return Err(cx.err(n, format!("netmask '{s}' is not contiguous")));
    }
    Ok(m.leading_ones() as u8)
}

/// The address and optional port of a `real_server` or `sorry_server` statement.
fn endpoint(cx: &Cx, n: &Node) -> Result<(IpAddr, u16), ConfigError> {
    let addr = cx.ip(n, 0)?;
    let port = match n.arg(1) {
        None => 0,
        Some(_) => cx.num(n, 1)?,
    };
    if n.args.len() > 2 {
        return Err(cx.fault(n, ErrorKind::Syntax, "expected ADDRESS [PORT]"));
    }
    Ok((addr, port))
}

/// A `virtual_server` block. `groups` holds every `virtual_server_group` of the file.
pub(crate) fn virtual_server(
    cx: &mut Cx,
    n: &Node,
    groups: &BTreeMap<String, Vec<Member>>,
) -> Result<VirtualServer, ConfigError> {
    enum Head {
        Addr(IpAddr, u16),
        Fwmark(u32),
        Group(String),
    }
    let head = match n.arg(0) {
        Some("fwmark") => Head::Fwmark(cx.num_in(n, 1, 1, i64::from(u32::MAX))?),
        Some("group") => Head::Group(cx.need(n, 1)?.to_string()),
        _ => {
            let (a, p) = endpoint(cx, n)?;
            Head::Addr(a, p)
        }
    };
    let mut vs = VirtualServer {
        origin: n.origin,
        keys: Vec::new(),
        group: None,
        scheduler: String::from("wlc"),
        fwd: FwdMethod::Masq,
        tun: TunConfig::IPIP,
        persistence: None,
        granularity: None,
        pe: None,
        one_packet: false,
        sched_flags: SchedFlags::default(),
        midflow_hash: false,
        policy: ServicePolicy::default(),
        quorum_up: None,
        quorum_down: None,
        real_servers: Vec::new(),
    };
    let mut proto = Proto::Tcp;
    let mut ip_family = None;
    let mut defaults = Defaults::default();
    let mut inhibit = None;
    let mut sorry: Option<(IpAddr, u16)> = None;
    let mut sorry_fwd = None;
    let body = cx.block(n)?;
    for s in body.iter().filter(|s| s.key != "real_server") {
        if defaults.take(cx, s)? {
            continue;
        }
        match s.key.as_str() {
            "lvs_sched" | "lb_algo" => vs.scheduler = cx.need(s, 0)?.to_string(),
            "lvs_method" | "lb_kind" => (vs.fwd, vs.tun) = method(cx, s)?,
            "flag-1" | "sh-fallback" | "mh-fallback" => vs.sched_flags.0 |= SchedFlags::FLAG1,
            "flag-2" | "sh-port" | "mh-port" => vs.sched_flags.0 |= SchedFlags::FLAG2,
            "flag-3" => vs.sched_flags.0 |= SchedFlags::FLAG3,
            "ops" => vs.one_packet = true,
            // lvs's own, beside the scheduler flags it goes with.
            "midflow-hash" => vs.midflow_hash = true,
            "persistence_timeout" => {
                vs.persistence = Some(match s.arg(0) {
                    None => DEFAULT_PERSISTENCE,
                    Some(_) => cx.num(s, 0)?,
                })
            }
            "persistence_granularity" => vs.granularity = Some(granularity(cx, s)?),
            // `pengine_handler` copies the name; the kernel then looks it up (`ENOENT` for an
            // engine it has no module for), which would fail the virtual server.
            "persistence_engine" => {
                let name = cx.need(s, 0)?;
                let pe = PersistEngine::by_name(name);
                vs.pe = Some(pe.ok_or_else(|| cx.err(s, format!("persistence engine '{name}' not found")))?);
            }
            "protocol" => {
                proto = match cx.need(s, 0)?.to_ascii_uppercase().as_str() {
                    "TCP" => Proto::Tcp,
                    "UDP" => Proto::Udp,
                    "SCTP" => Proto::Sctp,
                    p => return Err(cx.err(s, format!("unknown protocol '{p}'"))),
                }
            }
            "ip_family" => ip_family = Some(family(cx, s, cx.need(s, 0)?)?),
            "omega" => vs.policy.omega = true,
            "quorum" => vs.policy.quorum = cx.num(s, 0)?,
            "hysteresis" => vs.policy.hysteresis = cx.num(s, 0)?,
            "quorum_up" => vs.quorum_up = Some(cx.script(s)?),
            "quorum_down" => vs.quorum_down = Some(cx.script(s)?),
            "sorry_server" => sorry = Some(endpoint(cx, s)?),
            "sorry_server_inhibit" => vs.policy.sorry_server_inhibit = cx.flag(s)?,
            "sorry_server_lvs_method" => sorry_fwd = Some(method(cx, s)?),
            "inhibit_on_failure" => inhibit = Some(cx.flag(s)?),
            _ => cx.ignored(s),
        }
    }
    for s in body.iter().filter(|s| s.key == "real_server") {
        let rs = real_server(cx, s, (vs.fwd, vs.tun), &defaults)?;
        vs.real_servers.push(rs);
    }
    let checked = vs.real_servers.iter().filter(|r| !r.checks.is_empty()).count();
    let quorum_used = sorry.is_some()
        || vs.policy.quorum != 1
        || vs.policy.hysteresis != 0
        || vs.quorum_up.is_some()
        || vs.quorum_down.is_some();
    if checked > 0 && checked < vs.real_servers.len() && quorum_used {
        cx.warn(n, "its real servers without a checker stay in service and do not count toward the quorum here");
    }
    vs.policy.alpha = defaults.alpha.unwrap_or(false);
    vs.policy.inhibit_on_failure = inhibit.unwrap_or(false);
    vs.policy.sorry_server = sorry.map(|(a, p)| {
        let (fwd, tun) = sorry_fwd.unwrap_or((vs.fwd, vs.tun));
        RealServer::new(a, p, fwd, 1).with_tunnel(tun)
    });
    // A fwmark's family: ip_family, else the real (or sorry) servers', else IPv4.
    let servers_af = vs.real_servers.first().map(|r| Af::of(&r.server.endpoint.addr));
    let sorry_af = vs.policy.sorry_server.map(|s| Af::of(&s.endpoint.addr));
    let fw_af = |given: Option<Af>| given.or(ip_family).or(servers_af).or(sorry_af).unwrap_or(Af::V4);
    vs.keys = match head {
        Head::Addr(addr, port) => alloc::vec![ServiceKey::Inet { proto, addr, port }],
        Head::Fwmark(mark) => alloc::vec![ServiceKey::Fwmark { mark, af: fw_af(None) }],
        Head::Group(name) => {
            let members = groups
                .get(&name)
                .ok_or_else(|| cx.fault(n, ErrorKind::Reference, format!("no virtual_server_group '{name}'")))?;
            vs.group = Some(name);
            members
                .iter()
                .map(|m| match *m {
                    Member::Addr(addr, port) => ServiceKey::Inet { proto, addr, port: port.unwrap_or(0) },
                    Member::Fwmark(mark, af) => ServiceKey::Fwmark { mark, af: fw_af(af) },
                })
                .collect()
        }
    };
    Ok(vs)
}

/// A `real_server` block: the server, every checker of it, its own `inhibit_on_failure` and
/// (through its checks) `alpha`, as keepalived keeps them per real server (`check_data.c`
/// takes the virtual server's only where the real server gives none).
fn real_server(
    cx: &mut Cx,
    n: &Node,
    (vs_fwd, vs_tun): (FwdMethod, TunConfig),
    vs_defaults: &Defaults,
) -> Result<RealServerConf, ConfigError> {
    let (addr, port) = endpoint(cx, n)?;
    let mut rs = RealServer::new(addr, port, vs_fwd, 1).with_tunnel(vs_tun);
    let mut conf = RealServerConf {
        origin: n.origin,
        server: rs,
        checks: Vec::new(),
        inhibit_on_failure: None,
        notify_up: None,
        notify_down: None,
    };
    let mut own = Defaults::default();
    let body = cx.block(n)?;
    for s in body.iter().filter(|s| !KINDS.contains(&s.key.as_str())) {
        if own.take(cx, s)? {
            continue;
        }
        match s.key.as_str() {
            "weight" => rs.weight = cx.num(s, 0)?,
            "lvs_method" | "lb_kind" => (rs.fwd, rs.tun) = method(cx, s)?,
            "uthreshold" => rs.u_threshold = cx.num(s, 0)?,
            "lthreshold" => rs.l_threshold = cx.num(s, 0)?,
            "notify_up" => conf.notify_up = Some(cx.script(s)?),
            "notify_down" => conf.notify_down = Some(cx.script(s)?),
            "inhibit_on_failure" => conf.inhibit_on_failure = Some(cx.flag(s)?),
            _ => cx.ignored(s),
        }
    }
    let outer = own.over(vs_defaults);
    for c in body.iter().filter(|s| KINDS.contains(&s.key.as_str())) {
        let plans = checker(cx, c, &outer)?;
        if conf.checks.len() + plans.len() > MAX_CHECKS {
            return Err(cx.fault(c, ErrorKind::Limit, format!("more than {MAX_CHECKS} checks on one real server")));
        }
        conf.checks.extend(plans);
    }
    conf.server = rs;
    Ok(conf)
}
