//! The Prometheus text exposition (format 0.0.4) of a director: the `node_ipvs_*` families
//! exactly as Prometheus' node_exporter exports a kernel director's (its `ipvs` collector,
//! `collector/ipvs_linux.go`, reading `/proc/net/ip_vs` and `ip_vs_stats`), so dashboards built
//! on node_exporter read a library director unchanged, and `lvs_*` families for what the kernel
//! files do not show: drops by reason, the connection table, the sync daemons' counters, and —
//! when the application has them — health states with quorum, and VRRP instance states.
//!
//! A [`Snapshot`] is taken from a director ([`Snapshot::of`]), summed over shards
//! ([`Snapshot::add`]), completed with a health monitor ([`Snapshot::with_health`]) and a VRRP
//! group ([`Snapshot::with_vrrp`]), and rendered ([`Snapshot::render`]). Nothing here reads a
//! clock or does I/O; serving the text is the application's (or `lvs-dataplane`'s) business.
//!
//! ```
//! # fn factory(_: &str) -> Result<Box<dyn lvs_core::Scheduler>, lvs_core::SchedError> {
//! #     Err(lvs_core::SchedError::Unknown)
//! # }
//! use lvs_core::config::prometheus::Snapshot;
//! use lvs_core::{Director, DirectorConfig};
//!
//! let d = Director::new(DirectorConfig::default(), factory);
//! let text = Snapshot::of(&d).render();
//! assert!(text.contains("# TYPE node_ipvs_connections_total counter\nnode_ipvs_connections_total 0\n"));
//! assert!(text.contains("lvs_drops_total{reason=\"malformed\"} 0\n"));
//! ```

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::IpAddr;

use crate::addr::{Af, Endpoint, ServiceKey};
use crate::director::{Director, SyncStats};
use crate::error::Reason;
use crate::health::{Monitor, State as HealthState};
use crate::stats::Counters;
use crate::vrrp::{Group, State as VrrpState};

/// The Content-Type of the exposition, as a scraper expects it for format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One real server of one service, as `/proc/net/ip_vs` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The virtual service.
    pub service: ServiceKey,
    /// The real server.
    pub server: Endpoint,
    /// ActiveConn.
    pub active: u64,
    /// InActConn.
    pub inactive: u64,
    /// The weight in force.
    pub weight: u64,
}

/// A monitored service: its quorum and its servers' states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthService {
    /// The service.
    pub service: ServiceKey,
    /// Whether it has quorum.
    pub quorum_up: bool,
    /// The sum of the weights of its servers in service.
    pub live_weight: u64,
    /// Each checked server and its state, in the order they were added.
    pub servers: Vec<(Endpoint, HealthState)>,
}

/// One VRRP instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpInstance {
    /// The interface it runs on.
    pub interface: String,
    /// Its virtual router id.
    pub vrid: u8,
    /// The family of its addresses.
    pub family: Af,
    /// Where it stands.
    pub state: VrrpState,
    /// Its priority in force.
    pub priority: u8,
    /// Transitions to MASTER.
    pub became_master: u64,
}

/// What the exposition shows, taken at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The global counters since the last zeroing (`/proc/net/ip_vs_stats`).
    pub totals: Counters,
    /// Every real server of every service.
    pub backends: Vec<Backend>,
    /// Drops by [`Reason::index`].
    pub drops: [u64; Reason::COUNT],
    /// Live connections and templates.
    pub table_entries: u64,
    /// Bytes the connection table holds.
    pub table_bytes: u64,
    /// The sync daemons' counters.
    pub sync: SyncStats,
    /// Monitored services ([`Snapshot::with_health`]); none leaves the health families out.
    pub health: Vec<HealthService>,
    /// VRRP instances ([`Snapshot::with_vrrp`]); none leaves the VRRP families out.
    pub vrrp: Vec<VrrpInstance>,
}

impl Snapshot {
    /// What `d` holds now.
    pub fn of(d: &Director) -> Snapshot {
        let backends = d
            .services()
            .flat_map(|s| {
                let service = s.config.key;
                s.dests.dests().map(move |v| Backend {
                    service,
                    server: v.endpoint(),
                    active: u64::from(v.active()),
                    inactive: u64::from(v.inactive()),
                    weight: u64::from(v.weight()),
                })
            })
            .collect();
        let table = d.table_stats();
        Snapshot {
            totals: d.stats().counters(),
            backends,
            drops: *d.drops(),
            table_entries: table.entries as u64,
            table_bytes: table.bytes as u64,
            sync: d.sync_stats(),
            health: Vec::new(),
            vrrp: Vec::new(),
        }
    }

    /// Adds another shard of the same configuration: counters, connection counts and table
    /// sizes are summed, and a server's weight (the same in every shard) is kept, as
    /// [`sum_rows`](super::sum_rows) sums `--stats`. A server only `other` has is added.
    pub fn add(&mut self, other: &Snapshot) {
        self.totals = self.totals.plus(&other.totals);
        for b in &other.backends {
            match self.backends.iter_mut().find(|m| m.service == b.service && m.server == b.server) {
                Some(m) => {
                    m.active += b.active;
                    m.inactive += b.inactive;
                }
                None => self.backends.push(*b),
            }
        }
        for (m, o) in self.drops.iter_mut().zip(other.drops) {
            *m += o;
        }
        self.table_entries += other.table_entries;
        self.table_bytes += other.table_bytes;
        self.sync = sync_plus(&self.sync, &other.sync);
    }

    /// With the health states of `m`'s services and servers (keepalived's checkers' view).
    pub fn with_health(mut self, m: &Monitor) -> Snapshot {
        self.health = m
            .services()
            .map(|s| HealthService {
                service: s.key(),
                quorum_up: s.quorum_up(),
                live_weight: s.live_weight(),
                servers: s.servers().map(|r| (r.real_server().endpoint, r.state())).collect(),
            })
            .collect();
        self
    }

    /// With the states of `g`'s instances; `interfaces[port]` names the interface of an
    /// instance's [`port`](crate::vrrp::Config::port) (the port number stands in for a missing
    /// name).
    pub fn with_vrrp(mut self, g: &Group, interfaces: &[&str]) -> Snapshot {
        self.vrrp = g
            .instances()
            .map(|(_, i)| {
                let c = i.config();
                let interface =
                    interfaces.get(usize::from(c.port)).map_or_else(|| c.port.to_string(), |n| n.to_string());
                VrrpInstance {
                    interface,
                    vrid: c.vrid,
                    family: Af::of(&c.primary),
                    state: i.state(),
                    priority: i.priority(),
                    became_master: i.stats().became_master,
                }
            })
            .collect();
        self
    }

    /// The exposition: the `node_ipvs_*` families as node_exporter 1.5 writes them (families
    /// by name, samples by label values, values as Go's `%g`), then the `lvs_*` families.
    ///
    /// DoS warning: the text grows with the number of real servers (about 900 bytes each).
    pub fn render(&self) -> String {
        let mut w = Writer(String::new());
        self.node_ipvs(&mut w);
        self.lvs(&mut w);
        w.0
    }

    /// node_exporter's `ipvsCollector.Update`: servers that share every label are summed, as
    /// it sums them.
    fn node_ipvs(&self, w: &mut Writer) {
        let mut backends: BTreeMap<[String; 6], [u64; 3]> = BTreeMap::new();
        for b in &self.backends {
            let (local_address, local_mark, local_port, proto) = service_labels(&b.service);
            let key = [local_address, local_mark, local_port, proto, go_ip(&b.server.addr), b.server.port.to_string()];
            let sum = backends.entry(key).or_default();
            for (s, v) in sum.iter_mut().zip([b.active, b.inactive, b.weight]) {
                *s += v;
            }
        }
        let per_backend = [
            ("node_ipvs_backend_connections_active", "The current active connections by local and remote address."),
            ("node_ipvs_backend_connections_inactive", "The current inactive connections by local and remote address."),
            ("node_ipvs_backend_weight", "The current backend weight by local and remote address."),
        ];
        if !backends.is_empty() {
            for (i, (name, help)) in per_backend.into_iter().enumerate() {
                w.family(name, help, "gauge");
                for (labels, values) in &backends {
                    let names = ["local_address", "local_mark", "local_port", "proto", "remote_address", "remote_port"];
                    let pairs: Vec<(&str, &str)> = names.into_iter().zip(labels.iter().map(String::as_str)).collect();
                    w.sample(name, &pairs, values[i]);
                }
            }
        }
        let t = &self.totals;
        for (name, help, v) in [
            ("node_ipvs_connections_total", "The total number of connections made.", t.conns),
            ("node_ipvs_incoming_bytes_total", "The total amount of incoming data.", t.inbytes),
            ("node_ipvs_incoming_packets_total", "The total number of incoming packets.", t.inpkts),
            ("node_ipvs_outgoing_bytes_total", "The total amount of outgoing data.", t.outbytes),
            ("node_ipvs_outgoing_packets_total", "The total number of outgoing packets.", t.outpkts),
        ] {
            w.family(name, help, "counter");
            w.sample(name, &[], v);
        }
    }

    fn lvs(&self, w: &mut Writer) {
        w.family("lvs_drops_total", "Frames the data path dropped, by reason.", "counter");
        for r in Reason::ALL {
            w.sample("lvs_drops_total", &[("reason", r.as_str())], self.drops[r.index()]);
        }
        let gauges = [
            ("lvs_connection_table_entries", "Connections and templates in the connection table.", self.table_entries),
            ("lvs_connection_table_bytes", "Memory the connection table holds, in bytes.", self.table_bytes),
        ];
        for (name, help, v) in gauges {
            w.family(name, help, "gauge");
            w.sample(name, &[], v);
        }
        self.sync_families(w);
        self.health_families(w);
        self.vrrp_families(w);
    }

    fn sync_families(&self, w: &mut Writer) {
        let s = &self.sync;
        let plain = [
            ("lvs_sync_sent_records_total", "Sync master: connection records queued to send.", s.sent_records),
            ("lvs_sync_sent_messages_total", "Sync master: datagrams sent.", s.sent_messages),
            ("lvs_sync_received_messages_total", "Sync backup: datagrams taken.", s.messages),
            ("lvs_sync_unbound_entries_total", "Sync backup: entries made for no local real server.", s.unbound),
            ("lvs_sync_resync_requests_total", "Sync master: full resync requests answered.", s.resync_requests),
            ("lvs_sync_resync_records_total", "Sync master: entries streamed by full resyncs.", s.resync_records),
            ("lvs_sync_resyncs_done_total", "Sync backup: full resyncs completed.", s.resyncs_done),
        ];
        for (name, help, v) in plain {
            w.family(name, help, "counter");
            w.sample(name, &[], v);
        }
        let results = [("created", s.created), ("updated", s.updated), ("skipped", s.skipped)];
        let drops =
            [("queue_full", s.queue_full), ("not_v0", s.not_v0), ("aborted", s.aborted), ("refused", s.refused)];
        let labelled = [
            (
                "lvs_sync_received_records_total",
                "Sync backup: connection records received, by what became of them.",
                "result",
                results.as_slice(),
            ),
            (
                "lvs_sync_dropped_total",
                "Sync messages and records dropped: queue_full (master, messages over sync_qlen_max), \
                 not_v0 (master, entries version 0 cannot carry), aborted (backup, messages cut short), \
                 refused (backup, datagrams refused whole).",
                "reason",
                drops.as_slice(),
            ),
        ];
        for (name, help, label, values) in labelled {
            w.family(name, help, "counter");
            for (value, v) in values {
                w.sample(name, &[(label, value)], *v);
            }
        }
    }

    fn health_families(&self, w: &mut Writer) {
        if self.health.is_empty() {
            return;
        }
        let name = "lvs_health_server_state";
        w.family(name, "Health state of a checked real server: 1 for the state it is in.", "gauge");
        for h in &self.health {
            let (local_address, local_mark, local_port, proto) = service_labels(&h.service);
            for (ep, state) in &h.servers {
                let (remote_address, remote_port) = (go_ip(&ep.addr), ep.port.to_string());
                for s in [HealthState::Up, HealthState::Down, HealthState::Drain] {
                    let labels = [
                        ("local_address", local_address.as_str()),
                        ("local_mark", local_mark.as_str()),
                        ("local_port", local_port.as_str()),
                        ("proto", proto.as_str()),
                        ("remote_address", remote_address.as_str()),
                        ("remote_port", remote_port.as_str()),
                        ("state", s.name()),
                    ];
                    w.sample(name, &labels, u64::from(s == *state));
                }
            }
        }
        let per_service = [
            ("lvs_health_quorum_up", "Whether a checked service has quorum (1) or not (0).", "gauge"),
            ("lvs_health_live_weight", "Sum of the weights of a checked service's servers in service.", "gauge"),
        ];
        for (i, (name, help, kind)) in per_service.into_iter().enumerate() {
            w.family(name, help, kind);
            for h in &self.health {
                let (local_address, local_mark, local_port, proto) = service_labels(&h.service);
                let labels = [
                    ("local_address", local_address.as_str()),
                    ("local_mark", local_mark.as_str()),
                    ("local_port", local_port.as_str()),
                    ("proto", proto.as_str()),
                ];
                w.sample(name, &labels, if i == 0 { u64::from(h.quorum_up) } else { h.live_weight });
            }
        }
    }

    fn vrrp_families(&self, w: &mut Writer) {
        if self.vrrp.is_empty() {
            return;
        }
        let states = [VrrpState::Init, VrrpState::Backup, VrrpState::Master, VrrpState::Fault];
        let families = [
            ("lvs_vrrp_state", "VRRP instance state: 1 for the state it is in.", "gauge"),
            ("lvs_vrrp_priority", "VRRP instance priority in force.", "gauge"),
            ("lvs_vrrp_became_master_total", "VRRP instance transitions to MASTER.", "counter"),
        ];
        for (i, (name, help, kind)) in families.into_iter().enumerate() {
            w.family(name, help, kind);
            for v in &self.vrrp {
                let vrid = v.vrid.to_string();
                let family = if v.family == Af::V4 { "ipv4" } else { "ipv6" };
                let base = [("family", family), ("interface", v.interface.as_str()), ("vrid", vrid.as_str())];
                match i {
                    0 => {
                        for s in states {
                            // Labels in name order, as Prometheus' own clients write them.
                            let labels = [base[0], base[1], ("state", s.name()), base[2]];
                            w.sample(name, &labels, u64::from(s == v.state));
                        }
                    }
                    1 => w.sample(name, &base, u64::from(v.priority)),
                    _ => w.sample(name, &base, v.became_master),
                }
            }
        }
    }
}

/// Two shards' sync counters added.
fn sync_plus(a: &SyncStats, b: &SyncStats) -> SyncStats {
    SyncStats {
        sent_records: a.sent_records + b.sent_records,
        sent_messages: a.sent_messages + b.sent_messages,
        queue_full: a.queue_full + b.queue_full,
        not_v0: a.not_v0 + b.not_v0,
        messages: a.messages + b.messages,
        created: a.created + b.created,
        updated: a.updated + b.updated,
        unbound: a.unbound + b.unbound,
        skipped: a.skipped + b.skipped,
        aborted: a.aborted + b.aborted,
        refused: a.refused + b.refused,
        resync_requests: a.resync_requests + b.resync_requests,
        resync_records: a.resync_records + b.resync_records,
        resyncs_done: a.resyncs_done + b.resyncs_done,
    }
}

/// A service's labels as node_exporter derives them from `/proc/net/ip_vs` (procfs'
/// `parseIPVSBackendStatus`): `local_address`, `local_mark`, `local_port`, `proto`. A service by
/// address has no mark; one by firewall mark has the mark as the file prints it (`%08X`), no
/// address, port 0 and protocol `FWM`.
fn service_labels(key: &ServiceKey) -> (String, String, String, String) {
    match key {
        ServiceKey::Inet { proto, addr, port } => (go_ip(addr), String::new(), port.to_string(), proto.name().into()),
        ServiceKey::Fwmark { mark, .. } => (String::new(), alloc::format!("{mark:08X}"), "0".into(), "FWM".into()),
    }
}

/// An address as Go's `net.IP.String` writes it: IPv4-mapped IPv6 addresses as IPv4.
fn go_ip(a: &IpAddr) -> String {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The text being written.
struct Writer(String);

impl Writer {
    /// A family's `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = write!(self.0, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        let _ = writeln!(self.0, "\n# TYPE {name} {kind}");
    }

    /// One sample: `name{label="value",...} value`, label values escaped.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                let _ = write!(self.0, "{}{k}=\"", if i == 0 { "" } else { "," });
                for c in v.chars() {
                    match c {
                        '\\' => self.0.push_str("\\\\"),
                        '"' => self.0.push_str("\\\""),
                        '\n' => self.0.push_str("\\n"),
                        c => self.0.push(c),
                    }
                }
                self.0.push('"');
            }
            self.0.push('}');
        }
        self.0.push(' ');
        go_float(&mut self.0, value);
        self.0.push('\n');
    }
}

/// A counter as Prometheus' Go client writes it (`strconv.AppendFloat(f, 'g', -1, 64)` of the
/// value as a float64): whole numbers below a million as they are, larger ones with the
/// shortest mantissa that reads back and a two-digit exponent (`1.234567e+06`).
fn go_float(out: &mut String, v: u64) {
    if v < 1_000_000 {
        let _ = write!(out, "{v}");
        return;
    }
    // u64 → f64 rounds to nearest, as Go's float64(uint64) does.
    let e = alloc::format!("{:e}", v as f64);
    let (mantissa, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let _ = write!(out, "{mantissa}e+{exp:0>2}");
}

#[cfg(test)]
mod tests;
