//! keepalived's VRRP sections: `vrrp_script`, `vrrp_instance` and `vrrp_sync_group`, into the
//! model. What the VRRP room does not do (VMAC interfaces of their own, routes and rules,
//! excluded addresses, address options, AH authentication, mail) is warned about.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;

use super::global::{garp, version};
use super::model::{GarpSettings, Notify, SyncDaemon, Tracked, VrrpInstance, VrrpScript, VrrpSyncGroup};
use super::tree::{Cx, Node};
use crate::config::source::{ConfigError, ErrorKind};
use crate::vrrp::Auth;

/// A `vrrp_script NAME { … }` block.
pub(crate) fn vrrp_script(cx: &mut Cx, n: &Node) -> Result<VrrpScript, ConfigError> {
    let mut v = VrrpScript {
        origin: n.origin,
        name: cx.need(n, 0)?.to_string(),
        script: String::new(),
        interval: Duration::from_secs(1),
        timeout: None,
        weight: 0,
        reverse: false,
        rise: 1,
        fall: 1,
        init_fail: false,
    };
    for s in cx.block(n)? {
        match s.key.as_str() {
            "script" => v.script = cx.command(s)?,
            "interval" => v.interval = nonzero(cx, s)?,
            "timeout" => v.timeout = Some(nonzero(cx, s)?),
            "weight" => (v.weight, v.reverse) = weight(cx, s, 0)?,
            "rise" => v.rise = cx.num_in(s, 0, 1, i64::from(u32::MAX))?,
            "fall" => v.fall = cx.num_in(s, 0, 1, i64::from(u32::MAX))?,
            "init_fail" => v.init_fail = true,
            "user" => cx.warn(s, "scripts run as the application's user; ignored"),
            _ => cx.ignored(s),
        }
    }
    if v.script.is_empty() {
        return Err(cx.fault(n, ErrorKind::Syntax, "needs a script"));
    }
    Ok(v)
}

fn nonzero(cx: &Cx, n: &Node) -> Result<Duration, ConfigError> {
    let d = cx.timer(n, 0)?;
    if d.is_zero() {
        return Err(cx.err(n, "must be more than 0"));
    }
    Ok(d)
}

/// `weight N [reverse|noreverse|no_reverse]` from argument `i`.
fn weight(cx: &Cx, n: &Node, i: usize) -> Result<(i16, bool), ConfigError> {
    let w = cx.num_in(n, i, -254, 254)?;
    let reverse = match n.arg(i + 1) {
        None | Some("noreverse" | "no_reverse") => false,
        Some("reverse") => true,
        Some(x) => return Err(cx.fault(n, ErrorKind::Syntax, format!("unexpected '{x}'"))),
    };
    Ok((w, reverse))
}

/// A `track_interface` or `track_script` block: `NAME [weight N [reverse]]` per line.
fn tracked(cx: &Cx, n: &Node) -> Result<Vec<Tracked>, ConfigError> {
    let mut out = Vec::new();
    for e in cx.block(n)? {
        let (weight, reverse) = match e.arg(0) {
            None => (None, false),
            Some("weight") => {
                let (w, r) = self::weight(cx, e, 1)?;
                (Some(w), r)
            }
            Some("reverse") if e.args.len() == 1 => (None, true),
            Some(x) => return Err(cx.fault(e, ErrorKind::Syntax, format!("unexpected '{x}'"))),
        };
        out.push(Tracked { origin: e.origin, name: e.key.clone(), weight, reverse });
    }
    Ok(out)
}

/// A `notify*` statement into `notify`; `Ok(false)` when `n` is not one.
fn notify(cx: &mut Cx, n: &Node, notify: &mut Notify) -> Result<bool, ConfigError> {
    let slot = match n.key.as_str() {
        "notify_master" => &mut notify.master,
        "notify_backup" => &mut notify.backup,
        "notify_fault" => &mut notify.fault,
        "notify_stop" => &mut notify.stop,
        "notify" => &mut notify.any,
        _ => return Ok(false),
    };
    *slot = Some(cx.script(n)?);
    Ok(true)
}

/// An address of `virtual_ipaddress`, `unicast_peer`: `ADDR[/PREFIX]`.
fn address(cx: &Cx, n: &Node) -> Result<IpAddr, ConfigError> {
    let (a, p) = n.key.split_once('/').unwrap_or((&n.key, ""));
    let addr: IpAddr = a.parse().map_err(|_| cx.err(n, "bad address"))?;
    if !p.is_empty() {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if p.parse::<u8>().ok().filter(|p| *p <= max).is_none() {
            return Err(cx.err(n, format!("bad prefix length '{p}'")));
        }
    }
    Ok(addr)
}

/// A `vrrp_instance NAME { … }` block, and the sync daemon its deprecated
/// `lvs_sync_daemon_interface` asks for.
pub(crate) fn vrrp_instance(cx: &mut Cx, n: &Node) -> Result<(VrrpInstance, Option<SyncDaemon>), ConfigError> {
    let mut v = VrrpInstance {
        origin: n.origin,
        name: cx.need(n, 0)?.to_string(),
        interface: None,
        state_master: false,
        vrid: 0,
        priority: 100,
        advert_int: Duration::from_secs(1),
        version: None,
        preempt: true,
        preempt_delay: Duration::ZERO,
        accept: None,
        auth: Auth::None,
        vips: Vec::new(),
        src_ip: None,
        unicast_peers: Vec::new(),
        use_vmac: false,
        garp: GarpSettings::default(),
        lower_prio_no_advert: None,
        dont_track_primary: false,
        track_interfaces: Vec::new(),
        track_scripts: Vec::new(),
        notify: Notify::default(),
    };
    let mut sync = None;
    for s in cx.block(n)? {
        if garp(cx, s, "", &mut v.garp)? || notify(cx, s, &mut v.notify)? {
            continue;
        }
        match s.key.as_str() {
            "state" => {
                v.state_master = match cx.need(s, 0)?.to_ascii_uppercase().as_str() {
                    "MASTER" => true,
                    "BACKUP" => false,
                    x => return Err(cx.err(s, format!("unknown state '{x}'"))),
                }
            }
            "interface" => v.interface = Some(cx.need(s, 0)?.to_string()),
            "virtual_router_id" => v.vrid = cx.num_in(s, 0, 1, 255)?,
            "priority" => v.priority = cx.num_in(s, 0, 1, 255)?,
            "advert_int" => v.advert_int = nonzero(cx, s)?,
            "version" => v.version = Some(version(cx, s)?),
            "nopreempt" => v.preempt = false,
            "preempt" => v.preempt = true,
            "preempt_delay" => v.preempt_delay = cx.timer(s, 0)?,
            "accept" => v.accept = Some(true),
            "no_accept" => v.accept = Some(false),
            "authentication" => v.auth = authentication(cx, s)?,
            "virtual_ipaddress" => {
                for e in cx.block(s)? {
                    let a = address(cx, e)?;
                    if !e.args.is_empty() {
                        let msg = format!(
                            "{}: address options ({}) are not implemented; the address alone is used",
                            e.key,
                            e.args.join(" ")
                        );
                        cx.warn_entry(e, &s.key, msg);
                    }
                    if v.vips.contains(&a) {
                        cx.warn_entry(e, &s.key, format!("{} is listed twice; taken once", e.key));
                    } else {
                        v.vips.push(a);
                    }
                }
            }
            "mcast_src_ip" | "unicast_src_ip" => v.src_ip = Some(cx.ip(s, 0)?),
            "unicast_peer" => {
                for e in cx.block(s)? {
                    v.unicast_peers.push(address(cx, e)?);
                    if !e.args.is_empty() {
                        cx.warn_entry(e, &s.key, "min_ttl and max_ttl are not implemented; ignored");
                    }
                }
            }
            "use_vmac" => {
                v.use_vmac = true;
                if !s.args.is_empty() {
                    cx.warn(s, "no macvlan interface is made; the virtual MAC is used as the source only");
                }
            }
            "lower_prio_no_advert" => v.lower_prio_no_advert = Some(cx.flag(s)?),
            "dont_track_primary" => v.dont_track_primary = true,
            "track_interface" => v.track_interfaces = tracked(cx, s)?,
            "track_script" => v.track_scripts = tracked(cx, s)?,
            "lvs_sync_daemon_interface" => {
                sync = Some(SyncDaemon {
                    origin: s.origin,
                    interface: cx.need(s, 0)?.to_string(),
                    instance: Some(v.name.clone()),
                    syncid: None,
                    maxlen: 0,
                    port: 0,
                    ttl: 0,
                    group: None,
                })
            }
            _ => cx.ignored(s),
        }
    }
    if v.vrid == 0 {
        return Err(cx.fault(n, ErrorKind::Syntax, "needs a virtual_router_id"));
    }
    Ok((v, sync))
}

/// `authentication { auth_type PASS|AH auth_pass … }`.
fn authentication(cx: &mut Cx, n: &Node) -> Result<Auth, ConfigError> {
    let (mut kind, mut pass) = (None, None);
    for s in cx.block(n)? {
        match s.key.as_str() {
            "auth_type" => kind = Some((s.clone(), cx.need(s, 0)?.to_ascii_uppercase())),
            "auth_pass" => pass = Some(cx.need(s, 0)?.to_string()),
            _ => cx.ignored(s),
        }
    }
    match (kind, pass) {
        (Some((_, k)), Some(p)) if k == "PASS" => Ok(Auth::password(&p)),
        (Some((s, k)), _) if k == "AH" => {
            cx.warn(&s, "IPsec AH authentication is not implemented; the instance runs without authentication");
            Ok(Auth::None)
        }
        (Some((s, k)), _) if k != "PASS" => Err(cx.err(&s, format!("unknown auth_type '{k}'"))),
        _ => Err(cx.fault(n, ErrorKind::Syntax, "needs auth_type PASS and auth_pass")),
    }
}

/// A `vrrp_sync_group NAME { … }` block.
pub(crate) fn vrrp_sync_group(cx: &mut Cx, n: &Node) -> Result<VrrpSyncGroup, ConfigError> {
    let mut g = VrrpSyncGroup {
        origin: n.origin,
        name: cx.need(n, 0)?.to_string(),
        members: Vec::new(),
        track_interfaces: Vec::new(),
        track_scripts: Vec::new(),
        notify: Notify::default(),
        tracking_weight: false,
    };
    for s in cx.block(n)? {
        if notify(cx, s, &mut g.notify)? {
            continue;
        }
        match s.key.as_str() {
            "group" => g.members.extend(cx.block(s)?.iter().flat_map(|e| e.words().map(String::from))),
            "track_interface" => g.track_interfaces = tracked(cx, s)?,
            "track_script" => g.track_scripts = tracked(cx, s)?,
            "sync_group_tracking_weight" | "global_tracking" => g.tracking_weight = true,
            "smtp_alert"
            | "notify_priority_changes"
            | "notify_deleted"
            | "track_file"
            | "track_process"
            | "track_bfd" => cx.ignored(s),
            // Older files list the members directly, one bare name a line.
            _ if s.args.is_empty() && s.block.is_none() => g.members.push(s.key.clone()),
            _ => cx.ignored(s),
        }
    }
    Ok(g)
}
