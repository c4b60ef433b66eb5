//! keepalived's `global_defs`: `router_id`, `lvs_sync_daemon`, the `vrrp_garp_*` defaults,
//! `vrrp_version`, `vrrp_lower_prio_no_advert`, `lvs_timeouts` and `lvs_flush`; everything else
//! there (mail, SNMP, D-Bus, process tuning, firewall integration, …) is warned about.

use alloc::format;
use alloc::string::ToString;
use core::time::Duration;

use super::model::{GarpSettings, GlobalDefs, SyncDaemon};
use super::tree::{Cx, Node};
use crate::config::source::{ConfigError, ErrorKind};
use crate::vrrp::Version;

/// A `global_defs` block into `g`.
pub(crate) fn global_defs(cx: &mut Cx, n: &Node, g: &mut GlobalDefs) -> Result<(), ConfigError> {
    for s in cx.block(n)? {
        if garp(cx, s, "vrrp_", &mut g.garp)? {
            continue;
        }
        match s.key.as_str() {
            "router_id" => g.router_id = Some(cx.need(s, 0)?.to_string()),
            "lvs_sync_daemon" => g.sync_daemon = Some(sync_daemon(cx, s)?),
            "vrrp_min_garp" => {
                if cx.flag(s)? {
                    g.garp.master_repeat = Some(1);
                    g.garp.master_delay = Some(Duration::ZERO);
                }
            }
            "vrrp_version" => g.vrrp_version = Some(version(cx, s)?),
            "vrrp_lower_prio_no_advert" => g.lower_prio_no_advert = Some(cx.flag(s)?),
            "lvs_timeouts" => g.lvs_timeouts = Some((s.origin, lvs_timeouts(cx, s)?)),
            "lvs_flush" => g.lvs_flush = Some(s.origin),
            _ => cx.ignored(s),
        }
    }
    Ok(())
}

/// `version 2|3`.
pub(crate) fn version(cx: &Cx, n: &Node) -> Result<Version, ConfigError> {
    match cx.num_in::<u8>(n, 0, 2, 3)? {
        2 => Ok(Version::V2),
        _ => Ok(Version::V3),
    }
}

/// A `garp_*` setting (with `prefix`, `vrrp_` in `global_defs`) into `g`; `Ok(false)` when
/// `n` is not one.
pub(crate) fn garp(cx: &Cx, n: &Node, prefix: &str, g: &mut GarpSettings) -> Result<bool, ConfigError> {
    let Some(key) = n.key.strip_prefix(prefix).and_then(|k| k.strip_prefix("garp_")) else { return Ok(false) };
    match key {
        "master_delay" => g.master_delay = Some(cx.timer(n, 0)?),
        "master_repeat" => g.master_repeat = Some(cx.num(n, 0)?),
        "master_refresh" => g.master_refresh = Some(cx.timer(n, 0)?),
        "master_refresh_repeat" => g.master_refresh_repeat = Some(cx.num(n, 0)?),
        "lower_prio_delay" => g.lower_prio_delay = Some(cx.timer(n, 0)?),
        "lower_prio_repeat" => g.lower_prio_repeat = Some(cx.num(n, 0)?),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]`, at least one.
fn lvs_timeouts(cx: &Cx, n: &Node) -> Result<[u32; 3], ConfigError> {
    let mut t = [0u32; 3];
    if n.args.is_empty() || n.args.len() % 2 != 0 {
        return Err(cx.fault(n, ErrorKind::Syntax, "expected [tcp SECS] [tcpfin SECS] [udp SECS]"));
    }
    for i in (0..n.args.len()).step_by(2) {
        let slot = match n.args[i].as_str() {
            "tcp" => 0,
            "tcpfin" => 1,
            "udp" => 2,
            w => return Err(cx.fault(n, ErrorKind::Syntax, format!("unknown timeout '{w}'"))),
        };
        t[slot] = cx.num_in(n, i + 1, 1, i64::from(i32::MAX))?;
    }
    Ok(t)
}

/// `lvs_sync_daemon <INTERFACE> [[inst] <VRRP_INSTANCE>] [id <SYNC_ID>] [maxlen <LEN>]
/// [port <PORT>] [ttl <TTL>] [group <IP ADDR>]`.
fn sync_daemon(cx: &Cx, n: &Node) -> Result<SyncDaemon, ConfigError> {
    let mut d = SyncDaemon {
        origin: n.origin,
        interface: cx.need(n, 0)?.to_string(),
        instance: None,
        syncid: None,
        maxlen: 0,
        port: 0,
        ttl: 0,
        group: None,
    };
    let mut i = 1;
    while let Some(w) = n.arg(i) {
        match w {
            "inst" => d.instance = Some(cx.need(n, i + 1)?.to_string()),
            "id" => d.syncid = Some(cx.num(n, i + 1)?),
            "maxlen" => d.maxlen = cx.num_in(n, i + 1, 1, 65507)?,
            "port" => d.port = cx.num_in(n, i + 1, 1, 65535)?,
            "ttl" => d.ttl = cx.num_in(n, i + 1, 1, 255)?,
            "group" => d.group = Some(cx.ip(n, i + 1)?),
            name if i == 1 => {
                d.instance = Some(name.to_string());
                i += 1;
                continue;
            }
            other => return Err(cx.fault(n, ErrorKind::Syntax, format!("unexpected '{other}'"))),
        }
        i += 2;
    }
    Ok(d)
}
