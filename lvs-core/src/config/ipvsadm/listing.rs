//! The `ipvsadm -L` family, byte for byte as ipvsadm 1.31 prints it (`list_all`,
//! `list_service`, `print_title`, `print_service_entry`, `list_conn`, `list_timeout`,
//! `list_daemon`): every service or one (`-L -t|-u|-f SERVICE`), with `--stats`, `--rate`,
//! `--exact`, `--thresholds`, `--persistent-conn`, `--tun-info`, `--nosort`; the connection
//! table (`-c`); `--timeout`; `--daemon`. Services and servers come in ipvsadm's order.
//! Addresses and ports are always numeric, as `-n` prints them.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::format::{netmask_text, proxy_word, sched_flag_names, sorted_dests, sorted_services, CONN_TAB_SIZE};
use crate::addr::{Af, Endpoint, ServiceKey};
use crate::dest::{DestView, FwdMethod, TunConfig, TunCsum, TunType};
use crate::director::{Director, ServiceInfo};
use crate::error::Error;
use crate::laddr::ClientAddr;
use crate::stats::Counters;
use crate::sync::Role;
use crate::time::Instant;

/// What to list, as ipvsadm's `-L` options choose (a shorthand for the common [`Listing`]s).
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

/// ipvsadm's printing flags (`FMT_*`) for a listing: which columns, and how numbers look.
/// When several column sets are asked for, ipvsadm prints the first of stats, rate,
/// thresholds, persistent-conn, tun-info.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// `--stats`: the counters.
    pub stats: bool,
    /// `--rate`: the rate estimates.
    pub rate: bool,
    /// `--thresholds`: upper and lower connection thresholds.
    pub thresholds: bool,
    /// `--persistent-conn`: persistent connection counts (with `-c`: the pe columns).
    pub persistent_conn: bool,
    /// `--tun-info`: the tunnel type of each server.
    pub tun_info: bool,
    /// `--nosort`: services and servers unsorted (see the crate README for services).
    pub nosort: bool,
    /// `--exact`: counters and rates in full instead of with K/M/G/T.
    pub exact: bool,
}

/// One `ipvsadm -L` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// `-L`: the version line and every service.
    Services(Format),
    /// `-L -t|-u|-f SERVICE`: that service alone, without the version line.
    Service(ServiceKey, Format),
    /// `-Lc`: the connection table.
    Connections(Format),
    /// `--timeout`.
    Timeout,
    /// `--daemon`.
    Daemon,
}

impl From<ListOptions> for Listing {
    fn from(o: ListOptions) -> Listing {
        let f = Format::default();
        match o {
            ListOptions::Plain => Listing::Services(f),
            ListOptions::Stats => Listing::Services(Format { stats: true, ..f }),
            ListOptions::Rate => Listing::Services(Format { rate: true, ..f }),
            ListOptions::Thresholds => Listing::Services(Format { thresholds: true, ..f }),
            ListOptions::PersistentConn => Listing::Services(Format { persistent_conn: true, ..f }),
            ListOptions::NoSort => Listing::Services(Format { nosort: true, ..f }),
            ListOptions::Connections => Listing::Connections(f),
            ListOptions::Timeout => Listing::Timeout,
            ListOptions::Daemon => Listing::Daemon,
        }
    }
}

/// `print_largenum`: a counter in a 9-character column, with `K`, `M`, `G` or `T` once it no
/// longer fits in 8 digits; `--exact` prints it whole, one blank before it.
fn largenum(out: &mut String, n: u64, exact: bool) {
    let _ = if exact {
        let width = n.checked_ilog10().map_or(1, |l| l as usize + 1).max(8) + 1;
        write!(out, "{n:width$}")
    } else {
        match n {
            0..100_000_000 => write!(out, "{n:9}"),
            100_000_000..1_000_000_000 => write!(out, "{:8}K", n / 1_000),
            1_000_000_000..100_000_000_000 => write!(out, "{:8}M", n / 1_000_000),
            100_000_000_000..100_000_000_000_000 => write!(out, "{:8}G", n / 1_000_000_000),
            _ => write!(out, "{:8}T", n / 1_000_000_000_000),
        }
    };
}

/// The service column: `TCP  10.0.0.1:80`, `FWM  5`, `FWM  5 IPv6` (the mark with `%d`).
fn svc_name(k: &ServiceKey) -> String {
    let name = match k {
        ServiceKey::Inet { proto, addr, port } => format!("{:<4} {}", proto.name(), Endpoint::new(*addr, *port)),
        ServiceKey::Fwmark { mark, af: Af::V4 } => format!("FWM  {}", *mark as i32),
        ServiceKey::Fwmark { mark, af: Af::V6 } => format!("FWM  {} IPv6", *mark as i32),
    };
    // ipvsadm cuts an IPv4 address service to its 33-character column.
    match k {
        ServiceKey::Inet { addr: core::net::IpAddr::V4(_), .. } => name.chars().take(33).collect(),
        _ => name,
    }
}

/// A server's column: cut to 28 characters unless it is IPv6.
fn dest_name(ep: &Endpoint) -> String {
    let s = format!("{ep}");
    match Af::of(&ep.addr) {
        Af::V4 => s.chars().take(28).collect(),
        Af::V6 => s,
    }
}

/// `print_title`.
fn title(out: &mut String, f: Format) {
    let cols = |out: &mut String, fmt: &str, names: [&str; 5]| {
        let _ = match fmt {
            "right" => writeln!(
                out,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "Prot LocalAddress:Port", names[0], names[1], names[2], names[3], names[4]
            ),
            _ => writeln!(
                out,
                "{:<33} {:<10} {:<10} {:<10} {:<10}",
                "Prot LocalAddress:Port", names[0], names[1], names[2], names[3]
            ),
        };
        out.push_str("  -> RemoteAddress:Port\n");
    };
    if f.stats {
        cols(out, "right", ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]);
    } else if f.rate {
        cols(out, "right", ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]);
    } else if f.thresholds {
        cols(out, "left", ["Uthreshold", "Lthreshold", "ActiveConn", "InActConn", ""]);
    } else if f.persistent_conn {
        let _ = writeln!(
            out,
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        );
    } else if f.tun_info {
        out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
        );
    } else {
        out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        );
    }
}

/// `print_service_entry` for a listing: the service's line and its servers'.
fn service_entry(out: &mut String, s: &ServiceInfo<'_>, f: Format) {
    let c = s.config;
    let name = svc_name(&c.key);
    if f.stats {
        let _ = write!(out, "{name:<33}");
        counters(out, &s.stats.counters(), f.exact);
    } else if f.rate {
        let r = s.stats.rates();
        let _ = write!(out, "{name:<33}");
        for v in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
            largenum(out, v, f.exact);
        }
    } else {
        let _ = write!(out, "{name} {}", c.scheduler);
        if c.sched_flags.0 != 0 {
            let _ = write!(out, " ({})", sched_flag_names(&c.scheduler, c.sched_flags));
        }
        if let Some(t) = c.persistent {
            let _ = write!(out, " persistent {t}");
            if !c.netmask.is_full() {
                let _ = write!(out, " mask {}", netmask_text(c.netmask));
            }
            if let Some(pe) = c.pe {
                let _ = write!(out, " pe {}", pe.name());
            }
        }
        if c.one_packet {
            out.push_str(" ops");
        }
        // DPVS's ipvsadm: " synproxy" after " ops".
        if c.synproxy {
            out.push_str(" synproxy");
        }
        // DPVS's ipvsadm: " ppv1" / " ppv2" for a service that sends a PROXY header.
        if let ClientAddr::Proxy(v) = c.client_addr {
            out.push_str(proxy_word(v, " ppv1", " ppv2"));
        }
        // lvs's own: " midflow-hash", last; a service without it lists as ipvsadm's does.
        if c.midflow_hash {
            out.push_str(" midflow-hash");
        }
    }
    out.push('\n');
    let dests = if f.nosort { s.dests.dests().collect() } else { sorted_dests(&s.dests) };
    for d in dests {
        dest_line(out, &d, f);
    }
}

fn dest_line(out: &mut String, d: &DestView<'_>, f: Format) {
    let name = dest_name(&d.endpoint());
    if f.stats {
        let _ = write!(out, "  -> {name:<28}");
        counters(out, &d.stats().counters(), f.exact);
    } else if f.rate {
        let r = d.stats().rates();
        let _ = write!(out, "  -> {name:<28} {:8} {:8} {:8}", r.cps, r.inpps, r.outpps);
        largenum(out, r.inbps, f.exact);
        largenum(out, r.outbps, f.exact);
    } else if f.thresholds {
        let (u, l) = d.thresholds();
        let _ = write!(out, "  -> {name:<28} {u:<10} {l:<10} {:<10} {:<10}", d.active(), d.inactive());
    } else if f.persistent_conn {
        let _ = write!(
            out,
            "  -> {name:<28} {:<9} {:<11} {:<10} {:<10}",
            d.weight(),
            d.persist(),
            d.active(),
            d.inactive()
        );
    } else if f.tun_info {
        let info = tun_info(d.fwd(), d.tun());
        let _ = write!(
            out,
            "  -> {name:<28} {:<7} {info:<13} {:<6} {:<10} {:<10}",
            d.fwd().name(),
            d.weight(),
            d.active(),
            d.inactive()
        );
    } else {
        let _ = write!(
            out,
            "  -> {name:<28} {:<7} {:<6} {:<10} {:<10}",
            d.fwd().name(),
            d.weight(),
            d.active(),
            d.inactive()
        );
    }
    out.push('\n');
}

/// `list_conn`: the connection table as `/proc/net/ip_vs_conn` gives it to ipvsadm. With
/// `--persistent-conn`, a template of a persistence engine (`--pe sip`) also shows the engine's
/// name and its data (the Call-ID) — in `print_conn`'s columns for that case, where the
/// destination is 16 wide.
fn conn_rows(d: &Director, now: Instant, out: &mut String, f: Format) {
    let _ = writeln!(out, "IPVS connection entries");
    if f.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(out, "pro expire {:<11} {:<18} {:<18} destination", "state", "source", "virtual");
    }
    for c in d.connections(now) {
        let proto = match c.proto {
            6 => "TCP",
            17 => "UDP",
            132 => "SCTP",
            _ => "IP",
        };
        let secs = c.expires_ms / 1000;
        let expire = format!("{:02}:{:02}", secs / 60, secs % 60);
        let (client, virt) = (format!("{}", c.client), format!("{}", c.virt));
        match c.pe.and_then(|r| d.pe_data(r)).filter(|_| f.persistent_conn) {
            Some((engine, data)) => {
                let dest = format!("{}", c.dest);
                let _ = writeln!(
                    out,
                    "{proto:<3} {expire:<6} {:<11} {client:<18} {virt:<18} {dest:<16} {:<18} {}",
                    c.state,
                    engine.name(),
                    String::from_utf8_lossy(data)
                );
            }
            None => {
                let _ = writeln!(out, "{proto:<3} {expire:<6} {:<11} {client:<18} {virt:<18} {}", c.state, c.dest);
            }
        }
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
    let mut out = version_line();
    let f = Format { stats: true, ..Format::default() };
    title(&mut out, f);
    for r in rows {
        let _ = write!(out, "{:<33}", svc_name(&r.key));
        counters(&mut out, &r.counters, false);
        out.push('\n');
        for (ep, c) in &r.dests {
            let _ = write!(out, "  -> {:<28}", dest_name(ep));
            counters(&mut out, c, false);
            out.push('\n');
        }
    }
    out
}

fn counters(out: &mut String, k: &Counters, exact: bool) {
    for v in [k.conns, k.inpkts, k.outpkts, k.inbytes, k.outbytes] {
        largenum(out, v, exact);
    }
}

/// The first line of `list_all`.
fn version_line() -> String {
    format!("IP Virtual Server version 1.2.1 (size={CONN_TAB_SIZE})\n")
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
    render(d, now, &Listing::from(opt)).unwrap_or_default()
}

/// The listing ipvsadm prints for `l`.
///
/// # Errors
/// [`Error::NoSuchService`] for a single-service listing of a service that does not exist
/// (ipvsadm prints "No such service" and exits 1).
pub fn render(d: &Director, now: Instant, l: &Listing) -> Result<String, Error> {
    let mut out = String::new();
    match l {
        Listing::Connections(f) => conn_rows(d, now, &mut out, *f),
        Listing::Timeout => {
            let (a, b, c) = d.timeouts().listed();
            let _ = writeln!(out, "Timeout (tcp tcpfin udp): {a} {b} {c}");
        }
        Listing::Daemon => daemon_rows(d, &mut out),
        Listing::Service(key, f) => {
            let s = d.service(key).ok_or(Error::NoSuchService)?;
            title(&mut out, *f);
            service_entry(&mut out, &s, *f);
        }
        Listing::Services(f) => {
            out = version_line();
            title(&mut out, *f);
            // The kernel's hash order cannot be had here: --nosort keeps ipvsadm's sorted
            // order for services (their servers come unsorted).
            for s in sorted_services(d) {
                service_entry(&mut out, &s, *f);
            }
        }
    }
    Ok(out)
}

/// `--tun-info`'s column (`fwd_tun_info`): `ipip`, `gue:PORT:FLAGS` or `gre:FLAGS` for a
/// tunnelling server, with the checksum flag as `-c`, `+c` or `r+c` (`tunflags`); `n/a` for
/// the other methods.
fn tun_info(fwd: FwdMethod, tun: TunConfig) -> String {
    let flags = match tun.csum {
        TunCsum::NoCsum => "-c",
        TunCsum::Csum => "+c",
        TunCsum::RemCsum => "r+c",
    };
    match (fwd, tun.kind) {
        (FwdMethod::Tunnel, TunType::Ipip) => String::from("ipip"),
        (FwdMethod::Tunnel, TunType::Gue) => format!("gue:{}:{flags}", tun.port),
        (FwdMethod::Tunnel, TunType::Gre) => format!("gre:{flags}"),
        _ => String::from("n/a"),
    }
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
    fn largenums_follow_print_largenum() {
        let f = |n, exact| {
            let mut s = String::new();
            largenum(&mut s, n, exact);
            s
        };
        // Below 10^8 in full, then thousands (K) below 10^9, millions (M) below 10^11,
        // billions (G) below 10^14, trillions (T) beyond, each in %8llu plus the letter.
        assert_eq!(f(0, false), "        0");
        assert_eq!(f(42, false), "       42");
        assert_eq!(f(99_999_999, false), " 99999999");
        assert_eq!(f(100_000_000, false), "  100000K");
        assert_eq!(f(999_999_999, false), "  999999K");
        assert_eq!(f(1_000_000_000, false), "    1000M");
        assert_eq!(f(99_999_999_999, false), "   99999M");
        assert_eq!(f(100_000_000_000, false), "     100G");
        assert_eq!(f(99_999_999_999_999, false), "   99999G");
        assert_eq!(f(100_000_000_000_000, false), "     100T");
        assert_eq!(f(u64::MAX, false), "18446744T");
        // --exact: %llu in a field one wider than the number, at least 9.
        assert_eq!(f(0, true), "        0");
        assert_eq!(f(12_345_678, true), " 12345678");
        assert_eq!(f(123_456_789, true), " 123456789");
        assert_eq!(f(u64::MAX, true), " 18446744073709551615");
    }
}
