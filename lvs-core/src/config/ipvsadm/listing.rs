//! The `ipvsadm -L` family, byte for byte as ipvsadm 1.31 prints it: `-Ln` (with `--stats`,
//! `--rate`, `--thresholds`, `--persistent-conn`, `--nosort`), `-Lcn`, `--timeout` and
//! `--daemon`, with services and servers in ipvsadm's order.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::format::{netmask_text, proxy_word, sched_flag_names, sorted_dests, sorted_services, CONN_TAB_SIZE};
use crate::addr::{Af, Endpoint, ServiceKey};
use crate::dest::DestView;
use crate::director::{Director, ServiceInfo};
use crate::laddr::ClientAddr;
use crate::stats::Counters;
use crate::sync::Role;
use crate::time::Instant;

/// What to list, as ipvsadm's `-L` options choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListOptions {
    /// `-Ln`: weights and connection counters.
    #[default]
    Plain,
    /// `-Ln --stats`.
    Stats,
    /// `-Ln --rate`.
    Rate,
    /// `-Ln --thresholds`.
    Thresholds,
    /// `-Ln --persistent-conn`.
    PersistentConn,
    /// `-Ln --nosort`: servers in the kernel's list order (the order schedulers walk).
    NoSort,
    /// `-Lcn`: the connection table.
    Connections,
    /// `--timeout`.
    Timeout,
    /// `--daemon`: the sync daemons that run, master first, with the settings in force.
    Daemon,
}

/// `print_largenum`.
fn largenum(out: &mut String, n: u64) {
    let _ = match n {
        0..100_000_000 => write!(out, "{n:9}"),
        100_000_000..1_000_000_000 => write!(out, "{:8}K", n / 1_000),
        1_000_000_000..100_000_000_000 => write!(out, "{:8}M", n / 1_000_000),
        100_000_000_000..100_000_000_000_000 => write!(out, "{:8}G", n / 1_000_000_000),
        _ => write!(out, "{:8}T", n / 1_000_000_000_000),
    };
}

/// The service column: `TCP  10.0.0.1:80`, `FWM  5`, `FWM  5 IPv6`.
fn svc_name(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Inet { proto, addr, port } => format!("{:<4} {}", proto.name(), Endpoint::new(*addr, *port)),
        ServiceKey::Fwmark { mark, af: Af::V4 } => format!("FWM  {mark}"),
        ServiceKey::Fwmark { mark, af: Af::V6 } => format!("FWM  {mark} IPv6"),
    }
}

/// ipvsadm cuts IPv4 names to their column; IPv6 ones run over.
fn cut(s: String, width: usize, af: Af) -> String {
    match af {
        Af::V4 => s.chars().take(width).collect(),
        Af::V6 => s,
    }
}

fn header(out: &mut String, opt: ListOptions) {
    let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={CONN_TAB_SIZE})");
    match opt {
        ListOptions::Stats => {
            let _ = writeln!(
                out,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
                "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
            );
        }
        ListOptions::Rate => {
            let _ = writeln!(
                out,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
                "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
            );
        }
        ListOptions::Thresholds => {
            let _ = writeln!(
                out,
                "Prot LocalAddress:Port\n  -> RemoteAddress:Port           {:<10} {:<10} {:<10} {:<10}",
                "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
            );
        }
        ListOptions::PersistentConn => {
            let _ = writeln!(
                out,
                "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  -> RemoteAddress:Port"
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
            );
        }
    }
}

fn service_line(out: &mut String, s: &ServiceInfo<'_>, opt: ListOptions) {
    let c = s.config;
    let af = c.key.af();
    let name = cut(svc_name(&c.key), 33, af);
    match opt {
        ListOptions::Rate => {
            let r = s.stats.rates();
            let _ = write!(out, "{name:<33}");
            for v in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
                largenum(out, v);
            }
        }
        _ => {
            let _ = write!(out, "{name} {}", c.scheduler);
            if c.sched_flags.0 != 0 {
                let _ = write!(out, " ({})", sched_flag_names(&c.scheduler, c.sched_flags));
            }
            if let Some(t) = c.persistent {
                let _ = write!(out, " persistent {t}");
                if c.netmask != af.max_prefix() {
                    let _ = write!(out, " mask {}", netmask_text(af, c.netmask));
                }
            }
            if c.one_packet {
                out.push_str(" ops");
            }
            // DPVS's ipvsadm: " ppv1" / " ppv2" for a service that sends a PROXY header.
            if let ClientAddr::Proxy(v) = c.client_addr {
                out.push_str(proxy_word(v, " ppv1", " ppv2"));
            }
        }
    }
    out.push('\n');
}

fn dest_line(out: &mut String, d: &DestView<'_>, opt: ListOptions) {
    let ep = d.endpoint();
    let name = cut(format!("{ep}"), 28, Af::of(&ep.addr));
    match opt {
        ListOptions::Rate => {
            let r = d.stats().rates();
            let _ = write!(out, "  -> {name:<28} {:8} {:8} {:8}", r.cps, r.inpps, r.outpps);
            largenum(out, r.inbps);
            largenum(out, r.outbps);
        }
        ListOptions::Thresholds => {
            let (u, l) = d.thresholds();
            let _ = write!(out, "  -> {name:<28} {u:<10} {l:<10} {:<10} {:<10}", d.active(), d.inactive());
        }
        ListOptions::PersistentConn => {
            let _ = write!(
                out,
                "  -> {name:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight(),
                d.persist(),
                d.active(),
                d.inactive()
            );
        }
        _ => {
            let _ = write!(
                out,
                "  -> {name:<28} {:<7} {:<6} {:<10} {:<10}",
                d.fwd().name(),
                d.weight(),
                d.active(),
                d.inactive()
            );
        }
    }
    out.push('\n');
}

/// One `-Lcn` row's address column: `a.b.c.d:port` or `[v6]:port`.
fn conn_rows(d: &Director, now: Instant, out: &mut String) {
    let _ = writeln!(out, "IPVS connection entries");
    let _ = writeln!(out, "pro expire {:<11} {:<18} {:<18} destination", "state", "source", "virtual");
    for c in d.connections(now) {
        let proto = match c.proto {
            6 => "TCP",
            17 => "UDP",
            132 => "SCTP",
            _ => "IP",
        };
        let secs = c.expires_ms / 1000;
        let expire = format!("{:02}:{:02}", secs / 60, secs % 60);
        let _ = writeln!(
            out,
            "{proto:<3} {expire:<6} {:<11} {:<18} {:<18} {}",
            c.state,
            format!("{}", c.client),
            format!("{}", c.virt),
            c.dest
        );
    }
}

/// One service's counters and its servers', for `--stats` listings that sum several directors
/// (one per core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsRow {
    /// The service.
    pub key: ServiceKey,
    /// Its counters.
    pub counters: Counters,
    /// Its servers' counters, in ipvsadm's order.
    pub dests: Vec<(Endpoint, Counters)>,
}

/// The `--stats` rows of a director, services and servers in ipvsadm's order.
pub fn stats_rows(d: &Director) -> Vec<StatsRow> {
    sorted_services(d)
        .iter()
        .map(|s| StatsRow {
            key: s.config.key,
            counters: s.stats.counters(),
            dests: sorted_dests(&s.dests).iter().map(|v| (v.endpoint(), v.stats().counters())).collect(),
        })
        .collect()
}

/// Adds the rows of several directors that share one configuration (shards), row by row.
pub fn sum_rows(parts: &[Vec<StatsRow>]) -> Vec<StatsRow> {
    let mut out: Vec<StatsRow> = parts.first().cloned().unwrap_or_default();
    for part in parts.iter().skip(1) {
        for row in part {
            let Some(mine) = out.iter_mut().find(|r| r.key == row.key) else {
                out.push(row.clone());
                continue;
            };
            mine.counters = mine.counters.plus(&row.counters);
            for (ep, c) in &row.dests {
                match mine.dests.iter_mut().find(|(e, _)| e == ep) {
                    Some((_, m)) => *m = m.plus(c),
                    None => mine.dests.push((*ep, *c)),
                }
            }
        }
    }
    out
}

/// `ipvsadm -Ln --stats` from rows.
pub fn render_stats(rows: &[StatsRow]) -> String {
    let mut out = String::new();
    header(&mut out, ListOptions::Stats);
    for r in rows {
        let name = cut(svc_name(&r.key), 33, r.key.af());
        let _ = write!(out, "{name:<33}");
        counters(&mut out, &r.counters);
        out.push('\n');
        for (ep, c) in &r.dests {
            let name = cut(format!("{ep}"), 28, Af::of(&ep.addr));
            let _ = write!(out, "  -> {name:<28}");
            counters(&mut out, c);
            out.push('\n');
        }
    }
    out
}

fn counters(out: &mut String, k: &Counters) {
    for v in [k.conns, k.inpkts, k.outpkts, k.inbytes, k.outbytes] {
        largenum(out, v);
    }
}

/// `--daemon` (`list_daemon`): a line per running daemon, master first as the kernel dumps
/// them. ipvsadm prints maxlen, group, port and TTL when the kernel reports them, and a kernel
/// that speaks netlink reports them all, resolved.
fn daemon_rows(d: &Director, out: &mut String) {
    for role in [Role::Master, Role::Backup] {
        let Some(c) = d.sync_daemon(role) else { continue };
        let _ = writeln!(
            out,
            "{} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})",
            role.name(),
            c.ifname,
            c.syncid,
            c.maxlen,
            c.group(),
            c.port,
            c.ttl
        );
    }
}

/// The listing ipvsadm prints for `opt`.
pub fn list(d: &Director, now: Instant, opt: ListOptions) -> String {
    let mut out = String::new();
    match opt {
        ListOptions::Connections => conn_rows(d, now, &mut out),
        ListOptions::Stats => out = render_stats(&stats_rows(d)),
        ListOptions::Timeout => {
            let (a, b, c) = d.timeouts().listed();
            let _ = writeln!(out, "Timeout (tcp tcpfin udp): {a} {b} {c}");
        }
        ListOptions::Daemon => daemon_rows(d, &mut out),
        _ => {
            header(&mut out, opt);
            for s in sorted_services(d) {
                service_line(&mut out, &s, opt);
                let dests = if opt == ListOptions::NoSort { s.dests.dests().collect() } else { sorted_dests(&s.dests) };
                for dv in dests {
                    dest_line(&mut out, &dv, opt);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::DaemonConfig;
    use crate::testkit::factory;
    use crate::DirectorConfig;

    #[test]
    fn daemons_list_master_first_with_the_settings_in_force() {
        let mut d = Director::new(DirectorConfig::default(), factory);
        assert_eq!(list(&d, Instant::ZERO, ListOptions::Daemon), "");
        let backup =
            DaemonConfig { syncid: 255, group: Some("ff02::81".parse().unwrap()), ..DaemonConfig::new("sync0") };
        d.start_sync(Role::Backup, &backup, 9000).unwrap();
        let master = DaemonConfig { syncid: 0, ttl: 8, ..DaemonConfig::new("eth1") };
        d.start_sync(Role::Master, &master, 9000).unwrap();
        assert_eq!(
            list(&d, Instant::ZERO, ListOptions::Daemon),
            "master sync daemon (mcast=eth1, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=8)\n\
             backup sync daemon (mcast=sync0, syncid=255, maxlen=8952, group=ff02::81, port=8848, ttl=1)\n"
        );
    }

    #[test]
    fn largenums_switch_units() {
        let f = |n| {
            let mut s = String::new();
            largenum(&mut s, n);
            s
        };
        assert_eq!(f(42), "       42");
        assert_eq!(f(99_999_999), " 99999999");
        assert_eq!(f(123_456_789), "  123456K");
        assert_eq!(f(12_345_678_901), "   12345M");
        assert_eq!(f(123_000_000_000_000), "     123T");
    }
}
