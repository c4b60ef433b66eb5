//! The `/proc/net/ip_vs*` files, as net/netfilter/ipvs/ip_vs_ctl.c (`ip_vs`, `ip_vs_stats`,
//! `ip_vs_stats_percpu`) and ip_vs_conn.c (`ip_vs_conn`, `ip_vs_conn_sync`) print them in
//! Linux 6.12: addresses, ports and counters in hexadecimal, IPv6 addresses written out in full
//! (`%pI6`). Whatever reads a kernel director's files (Prometheus' node_exporter, `ipvsadm -Lc`,
//! scripts) reads a library director's the same way.
//!
//! Two things cannot be the kernel's. The kernel lists services and connections in the order
//! of its hash tables, whose keys differ on every boot; here services come in ipvsadm's order,
//! those keyed by address before those keyed by firewall mark (the kernel walks its two tables
//! in that order), and connections in the order of the library's table. And the kernel keeps
//! counters per CPU: a director is one shard, so `ip_vs_stats_percpu` has one CPU row.
//!
//! ```
//! # fn factory(_: &str) -> Result<Box<dyn lvs_core::Scheduler>, lvs_core::SchedError> {
//! #     Err(lvs_core::SchedError::Unknown)
//! # }
//! use lvs_core::config::ProcFile;
//! use lvs_core::{Director, DirectorConfig, Instant};
//!
//! let d = Director::new(DirectorConfig::default(), factory);
//! assert_eq!(ProcFile::Stats.name(), "ip_vs_stats");
//! assert!(ProcFile::Stats.render(&d, Instant::ZERO).starts_with("   Total Incoming Outgoing"));
//! ```

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use core::net::{IpAddr, Ipv6Addr};

use super::ipvsadm::format::{sorted_services, CONN_TAB_SIZE};
use crate::addr::ServiceKey;
use crate::conn::ConnInfo;
use crate::director::Director;
use crate::persist::sip::PersistEngine;
use crate::service::Netmask;
use crate::stats::Counters;
use crate::time::Instant;

/// The kernel's clock rate (`CONFIG_HZ`) on Debian's amd64 kernels, the recorded one among them:
/// `ip_vs` prints a persistence timeout as the kernel holds it, in jiffies.
const HZ: u64 = 250;

/// One of the files IPVS puts under `/proc/net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcFile {
    /// `ip_vs`: services and their real servers, with weights and connection counts.
    Services,
    /// `ip_vs_stats`: the global counters and rates.
    Stats,
    /// `ip_vs_stats_percpu`: the global counters per CPU (one row: this director), their sum
    /// and the rates.
    StatsPercpu,
    /// `ip_vs_conn`: the connection table (what `ipvsadm -Lc` reads).
    Conn,
    /// `ip_vs_conn_sync`: the connection table with each entry's origin, `LOCAL` or `SYNC`
    /// (made from a sync message).
    ConnSync,
}

impl ProcFile {
    /// Every file, in the order the kernel creates them.
    pub const ALL: [ProcFile; 5] =
        [ProcFile::Services, ProcFile::Stats, ProcFile::StatsPercpu, ProcFile::Conn, ProcFile::ConnSync];

    /// The file's name under `/proc/net`.
    pub const fn name(self) -> &'static str {
        match self {
            ProcFile::Services => "ip_vs",
            ProcFile::Stats => "ip_vs_stats",
            ProcFile::StatsPercpu => "ip_vs_stats_percpu",
            ProcFile::Conn => "ip_vs_conn",
            ProcFile::ConnSync => "ip_vs_conn_sync",
        }
    }

    /// The file's content for `d` at `now` (the connection files count down to expiry from it).
    ///
    /// DoS warning: the connection files grow with the connection table (about 80 bytes per
    /// IPv4 entry, 160 per IPv6 one).
    pub fn render(self, d: &Director, now: Instant) -> String {
        let mut out = String::new();
        match self {
            ProcFile::Services => services(d, &mut out),
            ProcFile::Stats => stats(d, &mut out),
            ProcFile::StatsPercpu => stats_percpu(d, &mut out),
            ProcFile::Conn => conns(d, now, false, &mut out),
            ProcFile::ConnSync => conns(d, now, true, &mut out),
        }
        out
    }
}

/// `ip_vs_proto_name`.
fn proto_name(p: u8) -> Cow<'static, str> {
    match p {
        0 => "IP".into(),
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        n => format!("IP_{n}").into(),
    }
}

/// `%pI6`: eight groups of four lowercase hex digits, nothing left out.
fn full_v6(out: &mut String, a: &Ipv6Addr) {
    for (i, g) in a.segments().iter().enumerate() {
        let _ = write!(out, "{}{g:04x}", if i == 0 { "" } else { ":" });
    }
}

/// An address as the connection files print it: `%08X` of the host-order IPv4 address, `%pI6`.
fn hex_addr(out: &mut String, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => {
            let _ = write!(out, "{:08X}", u32::from(*a));
        }
        IpAddr::V6(a) => full_v6(out, a),
    }
}

/// An address as `ip_vs` prints it: IPv6 in brackets.
fn bracketed_addr(out: &mut String, a: &IpAddr) {
    match a {
        IpAddr::V4(_) => hex_addr(out, a),
        IpAddr::V6(a) => {
            out.push('[');
            full_v6(out, a);
            out.push(']');
        }
    }
}

/// The persistence netmask as `ip_vs` prints it, `%08X` of `ntohl(svc->netmask)`. An IPv4 mask
/// is held in network order; an IPv6 prefix length is held as a plain number in the same
/// field, so a little-endian kernel prints it byte-swapped (`/128` as `80000000`).
fn netmask_word(m: Netmask) -> u32 {
    match m {
        Netmask::V4(m) => u32::from(m),
        Netmask::V6(p) => u32::from(p).swap_bytes(),
    }
}

/// `ip_vs_info_seq_show`.
fn services(d: &Director, out: &mut String) {
    let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={CONN_TAB_SIZE})");
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n");
    let sorted = sorted_services(d);
    let by_addr = sorted.iter().filter(|s| matches!(s.config.key, ServiceKey::Inet { .. }));
    let by_mark = sorted.iter().filter(|s| matches!(s.config.key, ServiceKey::Fwmark { .. }));
    for s in by_addr.chain(by_mark) {
        let c = s.config;
        let ops = if c.one_packet { "ops " } else { "" };
        match c.key {
            ServiceKey::Inet { proto, addr: addr @ IpAddr::V4(_), port } => {
                let _ = write!(out, "{}  ", proto.name());
                hex_addr(out, &addr);
                let _ = write!(out, ":{port:04X} {} {ops} ", c.scheduler);
            }
            // The kernel leaves `ops` out of IPv6 lines.
            ServiceKey::Inet { proto, addr, port } => {
                let _ = write!(out, "{}  ", proto.name());
                bracketed_addr(out, &addr);
                let _ = write!(out, ":{port:04X} {} ", c.scheduler);
            }
            ServiceKey::Fwmark { mark, .. } => {
                let _ = write!(out, "FWM  {mark:08X} {} {ops}", c.scheduler);
            }
        }
        match c.persistent {
            Some(t) => {
                let _ = writeln!(out, "persistent {} {:08X}", u64::from(t) * HZ, netmask_word(c.netmask));
            }
            None => out.push('\n'),
        }
        // Servers in the kernel's list order, newest first.
        for dv in s.dests.dests() {
            out.push_str("  -> ");
            bracketed_addr(out, &dv.addr());
            let _ = writeln!(
                out,
                ":{:04X}      {:<7} {:<6} {:<10} {:<10}",
                dv.port(),
                dv.fwd().name(),
                dv.weight(),
                dv.active(),
                dv.inactive()
            );
        }
    }
}

/// One row of five counters: `%8LX %8LX %8LX %16LX %16LX`.
fn counter_row(out: &mut String, v: [u64; 5]) {
    let _ = writeln!(out, "{:8X} {:8X} {:8X} {:16X} {:16X}", v[0], v[1], v[2], v[3], v[4]);
}

fn counters(c: &Counters) -> [u64; 5] {
    [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes]
}

/// The estimated rates, as five counters.
fn rates(d: &Director) -> [u64; 5] {
    let r = d.stats().rates();
    [r.cps, r.inpps, r.outpps, r.inbps, r.outbps]
}

/// `ip_vs_stats_show`.
fn stats(d: &Director, out: &mut String) {
    out.push_str("   Total Incoming Outgoing         Incoming         Outgoing\n");
    out.push_str("   Conns  Packets  Packets            Bytes            Bytes\n");
    counter_row(out, counters(&d.stats().counters()));
    out.push('\n');
    out.push_str(" Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n");
    counter_row(out, rates(d));
}

/// `ip_vs_stats_percpu_show`: a CPU's row counts from the start (zeroing leaves the kernel's
/// per-CPU counters alone), the `~` row since the last zeroing.
fn stats_percpu(d: &Director, out: &mut String) {
    out.push_str("       Total Incoming Outgoing         Incoming         Outgoing\n");
    out.push_str("CPU    Conns  Packets  Packets            Bytes            Bytes\n");
    let _ = write!(out, "{:3X} ", 0);
    counter_row(out, counters(&d.stats().raw()));
    out.push_str("  ~ ");
    counter_row(out, counters(&d.stats().counters()));
    out.push('\n');
    out.push_str("     Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n");
    out.push_str("    ");
    counter_row(out, rates(d));
}

/// `ip_vs_conn_seq_show` (`origin` false) and `ip_vs_conn_sync_seq_show` (true).
fn conns(d: &Director, now: Instant, origin: bool, out: &mut String) {
    out.push_str("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       ");
    out.push_str(if origin { "Origin Expires\n" } else { "Expires PEName PEData\n" });
    for c in d.connections(now) {
        let pe = if origin { None } else { c.pe.and_then(|r| d.pe_data(r)) };
        conn_row(out, &c, origin, pe);
    }
}

/// One connection's row; `pe` is a template's engine and data, which only `ip_vs_conn` shows.
fn conn_row(out: &mut String, c: &ConnInfo, origin: bool, pe: Option<(PersistEngine, &[u8])>) {
    let _ = write!(out, "{:<3} ", proto_name(c.proto));
    for ep in [c.client, c.virt, c.dest] {
        hex_addr(out, &ep.addr);
        let _ = write!(out, " {:04X} ", ep.port);
    }
    let _ = write!(out, "{:<11} ", c.state);
    if origin {
        let _ = write!(out, "{:<6} ", if c.synced { "SYNC" } else { "LOCAL" });
    }
    // `(timer.expires - jiffies) / HZ`: whole seconds left; then, for a template of a
    // persistence engine, ` NAME DATA` (`show_pe_data`: the SIP Call-ID as it came).
    let _ = write!(out, "{:7}", c.expires_ms / 1000);
    if let Some((engine, data)) = pe {
        let _ = write!(out, " {} {}", engine.name(), String::from_utf8_lossy(data));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Endpoint;
    use crate::config::restore;
    use crate::neigh::{MacAddr, Neighbour};
    use crate::testkit::{self, Tcp, DIRECTOR_MAC};
    use crate::{DirectorConfig, PortConfig};

    /// A director with the services of `rules` (scheduler `first`) and every real server of
    /// 192.0.2.0/24 and 2001:db8:2::/64 up to .13 / ::13 reachable.
    fn director(rules: &str) -> Director {
        let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
        let mut d = Director::new(cfg, testkit::factory);
        for i in 1..=3u8 {
            let n = Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i]), port: 0 };
            d.set_neighbour(format!("192.0.2.1{i}").parse().unwrap(), n);
            d.set_neighbour(format!("2001:db8:2::1{i}").parse().unwrap(), n);
        }
        restore(&mut d, rules).unwrap();
        d
    }

    #[test]
    fn services_as_ip_vs_ctl_prints_them() {
        let mut d = director(
            "-A -t 203.0.113.100:80 -s first\n\
             -a -t 203.0.113.100:80 -r 192.0.2.11:80 -g -w 1\n\
             -a -t 203.0.113.100:80 -r 192.0.2.12:8080 -m -w 3\n\
             -A -u 203.0.113.100:53 -s first -o -p 60 -M 255.255.255.0\n\
             -a -u 203.0.113.100:53 -r 192.0.2.13:53 -i -w 0\n\
             -A -f 7 -s first -p\n\
             -a -f 7 -r 192.0.2.11:0 -g -w 2\n\
             -A -t [2001:db8:113::100]:443 -s first -p 300\n\
             -a -t [2001:db8:113::100]:443 -r [2001:db8:2::11]:443 -g -w 5\n",
        );
        let now = Instant::from_secs(1);
        for port in [40000, 40001] {
            let mut f =
                Tcp::new(("198.51.100.2".parse().unwrap(), port), ("203.0.113.100".parse().unwrap(), 80), 2).frame();
            let _ = d.process(now, &mut f);
        }
        assert_eq!(
            ProcFile::Services.render(&d, now),
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
             TCP  CB007164:0050 first  \n  \
             -> C000020C:1F90      Masq    3      2          0         \n  \
             -> C000020B:0050      Route   1      0          0         \n\
             UDP  CB007164:0035 first ops  persistent 15000 FFFFFF00\n  \
             -> C000020D:0035      Tunnel  0      0          0         \n\
             TCP  [2001:0db8:0113:0000:0000:0000:0000:0100]:01BB first persistent 75000 80000000\n  \
             -> [2001:0db8:0002:0000:0000:0000:0000:0011]:01BB      Route   5      0          0         \n\
             FWM  00000007 first persistent 90000 FFFFFFFF\n  \
             -> C000020B:0000      Route   2      0          0         \n"
        );
    }

    #[test]
    fn stats_in_hex_with_rates() {
        let mut d = director("-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g -w 1\n");
        let mut now = Instant::from_secs(1);
        for port in 0..300u16 {
            let mut f =
                Tcp::new(("198.51.100.2".parse().unwrap(), 1024 + port), ("203.0.113.100".parse().unwrap(), 80), 2)
                    .frame();
            let _ = d.process(now, &mut f);
        }
        now = Instant::from_secs(3);
        d.tick(now);
        let r = d.stats().rates();
        assert!(r.cps > 0, "the estimator ran");
        let c = d.stats().counters();
        assert_eq!((c.conns, c.inpkts, c.inbytes), (300, 300, 300 * 40));
        let totals = "     12C      12C        0             2EE0                0\n";
        let rates = format!("{:8X} {:8X} {:8X} {:16X} {:16X}\n", r.cps, r.inpps, r.outpps, r.inbps, r.outbps);
        assert_eq!(
            ProcFile::Stats.render(&d, now),
            format!(
                "   Total Incoming Outgoing         Incoming         Outgoing\n   \
                 Conns  Packets  Packets            Bytes            Bytes\n\
                 {totals}\n Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n{rates}"
            )
        );
        d.zero(None).unwrap();
        assert_eq!(
            ProcFile::StatsPercpu.render(&d, now),
            format!(
                "       Total Incoming Outgoing         Incoming         Outgoing\n\
                 CPU    Conns  Packets  Packets            Bytes            Bytes\n  \
                 0 {totals}  \
                 ~        0        0        0                0                0\n\n     \
                 Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n           \
                 0        0        0                0                0\n"
            )
        );
    }

    fn row(c: &ConnInfo, origin: bool) -> String {
        let mut s = String::new();
        conn_row(&mut s, c, origin, None);
        s
    }

    fn info(client: &str, virt: &str, dest: &str) -> ConnInfo {
        let ep = |s: &str| {
            let a = s.parse::<core::net::SocketAddr>().unwrap();
            Endpoint::new(a.ip(), a.port())
        };
        ConnInfo {
            proto: 6,
            client: ep(client),
            virt: ep(virt),
            dest: ep(dest),
            state: "ESTABLISHED",
            expires_ms: 883_999,
            template: false,
            synced: true,
            pe: None,
        }
    }

    #[test]
    fn conn_rows_print_hex_as_the_kernel() {
        // A row of tests/data/oracle-sync/b-custom-syncid0/conn-sync.txt.
        let c = info("198.51.100.52:32854", "203.0.113.100:80", "192.0.2.11:80");
        assert_eq!(row(&c, true), "TCP C6336434 8056 CB007164 0050 C000020B 0050 ESTABLISHED SYNC       883\n");
        assert_eq!(row(&c, false), "TCP C6336434 8056 CB007164 0050 C000020B 0050 ESTABLISHED     883\n");
    }

    #[test]
    fn ipv6_rows_write_every_group() {
        // A row of tests/data/oracle-sync/b-v6-transport/conn-sync.txt.
        let c = ConnInfo {
            proto: 17,
            state: "UDP",
            expires_ms: 297_400,
            ..info("[2001:db8:51::ae42:62bb]:53726", "[2001:db8:113::100]:53", "[2001:db8:2::12]:53")
        };
        assert_eq!(
            row(&c, true),
            "UDP 2001:0db8:0051:0000:0000:0000:ae42:62bb D1DE 2001:0db8:0113:0000:0000:0000:0000:0100 0035 \
             2001:0db8:0002:0000:0000:0000:0000:0012 0035 UDP         SYNC       297\n"
        );
    }

    #[test]
    fn templates_and_other_protocols_are_named_as_the_kernel_names_them() {
        assert_eq!(proto_name(0), "IP");
        assert_eq!(proto_name(132), "SCTP");
        assert_eq!(proto_name(47), "IP_47");
    }

    #[test]
    fn netmasks_print_as_a_little_endian_kernel_prints_them() {
        let v4 = |s: &str| Netmask::V4(s.parse().unwrap());
        assert_eq!(netmask_word(v4("255.255.255.255")), 0xFFFF_FFFF);
        assert_eq!(netmask_word(v4("255.255.255.0")), 0xFFFF_FF00);
        assert_eq!(netmask_word(v4("255.0.255.0")), 0xFF00_FF00);
        assert_eq!(netmask_word(v4("0.0.0.0")), 0);
        assert_eq!(netmask_word(Netmask::V6(128)), 0x8000_0000);
        assert_eq!(netmask_word(Netmask::V6(64)), 0x4000_0000);
    }
}
