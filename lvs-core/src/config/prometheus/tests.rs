//! The exposition written out by hand: node_exporter's families as its collector names them
//! (HELP, TYPE, labels), Go's number format, lvs's families, shards summed, health and VRRP.

use alloc::vec;
use core::time::Duration;

use super::*;
use crate::addr::Proto;
use crate::config::restore;
use crate::dest::{FwdMethod, RealServer};
use crate::health::{Check, CheckPlan, ServicePolicy, TcpCheck};
use crate::time::Instant;
use crate::vrrp::Config;
use crate::wire::{Frame, DEFAULT_HEADROOM};
use crate::{testkit, DirectorConfig};

fn ep(s: &str) -> Endpoint {
    let (a, p) = s.rsplit_once(':').unwrap();
    Endpoint::new(a.trim_matches(['[', ']']).parse().unwrap(), p.parse().unwrap())
}

fn tcp(s: &str) -> ServiceKey {
    let e = ep(s);
    ServiceKey::Inet { proto: Proto::Tcp, addr: e.addr, port: e.port }
}

fn text(v: u64) -> String {
    let mut s = String::new();
    go_float(&mut s, v);
    s
}

#[test]
fn numbers_as_go_formats_float64_with_g() {
    // strconv.FormatFloat(f, 'g', -1, 64): %e from an exponent of 6 (the shortest-precision
    // rule), a sign and at least two exponent digits.
    assert_eq!(text(0), "0");
    assert_eq!(text(1), "1");
    assert_eq!(text(999_999), "999999");
    assert_eq!(text(1_000_000), "1e+06");
    assert_eq!(text(1_234_567), "1.234567e+06");
    assert_eq!(text(123_456_789_012), "1.23456789012e+11");
    // float64(2^64 - 1) rounds up to 2^64.
    assert_eq!(text(u64::MAX), "1.8446744073709552e+19");
    // Beyond 2^53 the float64 is the nearest one: 2^53 + 1 reads as 2^53.
    assert_eq!(text((1 << 53) + 1), "9.007199254740992e+15");
}

/// Three servers of two services, one of them by firewall mark, and an IPv6 one.
fn snapshot() -> Snapshot {
    let b = |service, server: &str, active, inactive, weight| Backend {
        service,
        server: ep(server),
        active,
        inactive,
        weight,
    };
    let fwm = ServiceKey::Fwmark { mark: 10, af: Af::V4 };
    let mut s = Snapshot {
        totals: Counters { conns: 12, inpkts: 1_500_000, outpkts: 7, inbytes: 2_000_000_000, outbytes: 0 },
        backends: vec![
            b(tcp("10.0.0.1:80"), "10.0.1.2:80", 3, 4, 1),
            b(tcp("10.0.0.1:80"), "10.0.1.1:8080", 0, 1, 2),
            b(fwm, "10.0.1.3:0", 5, 0, 3),
            b(tcp("[2001:db8::1]:443"), "[2001:db8:1::1]:443", 1, 0, 1),
        ],
        table_entries: 9,
        table_bytes: 4096,
        ..Snapshot::default()
    };
    s.drops[Reason::NoDest.index()] = 2;
    s.sync.sent_records = 5;
    s.sync.created = 3;
    s.sync.refused = 1;
    s
}

#[test]
fn node_ipvs_families_as_node_exporter_writes_them() {
    let out = snapshot().render();
    let (ours, _) = out.split_once("# HELP lvs_").unwrap();
    // Families by name; samples by their label values in label-name order (client_golang's
    // sort: strings, so "2001:db8::1" < "10.0.0.1" is false and "" comes first).
    let labels = [
        r#"local_address="",local_mark="0000000A",local_port="0",proto="FWM",remote_address="10.0.1.3",remote_port="0""#,
        r#"local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.0.1.1",remote_port="8080""#,
        r#"local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP",remote_address="10.0.1.2",remote_port="80""#,
        r#"local_address="2001:db8::1",local_mark="",local_port="443",proto="TCP",remote_address="2001:db8:1::1",remote_port="443""#,
    ];
    let rows = |name: &str, v: [u64; 4]| {
        labels.iter().zip(v).map(|(l, v)| alloc::format!("{name}{{{l}}} {v}\n")).collect::<String>()
    };
    let expected = [
        "# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.\n",
        "# TYPE node_ipvs_backend_connections_active gauge\n",
        &rows("node_ipvs_backend_connections_active", [5, 0, 3, 1]),
        "# HELP node_ipvs_backend_connections_inactive The current inactive connections by local and remote address.\n",
        "# TYPE node_ipvs_backend_connections_inactive gauge\n",
        &rows("node_ipvs_backend_connections_inactive", [0, 1, 4, 0]),
        "# HELP node_ipvs_backend_weight The current backend weight by local and remote address.\n",
        "# TYPE node_ipvs_backend_weight gauge\n",
        &rows("node_ipvs_backend_weight", [3, 2, 1, 1]),
        "# HELP node_ipvs_connections_total The total number of connections made.\n",
        "# TYPE node_ipvs_connections_total counter\n",
        "node_ipvs_connections_total 12\n",
        "# HELP node_ipvs_incoming_bytes_total The total amount of incoming data.\n",
        "# TYPE node_ipvs_incoming_bytes_total counter\n",
        "node_ipvs_incoming_bytes_total 2e+09\n",
        "# HELP node_ipvs_incoming_packets_total The total number of incoming packets.\n",
        "# TYPE node_ipvs_incoming_packets_total counter\n",
        "node_ipvs_incoming_packets_total 1.5e+06\n",
        "# HELP node_ipvs_outgoing_bytes_total The total amount of outgoing data.\n",
        "# TYPE node_ipvs_outgoing_bytes_total counter\n",
        "node_ipvs_outgoing_bytes_total 0\n",
        "# HELP node_ipvs_outgoing_packets_total The total number of outgoing packets.\n",
        "# TYPE node_ipvs_outgoing_packets_total counter\n",
        "node_ipvs_outgoing_packets_total 7\n",
    ]
    .concat();
    assert_eq!(ours, expected);
}

#[test]
fn servers_with_the_same_labels_are_summed_as_the_collector_sums_them() {
    // An IPv4 and an IPv6 service by the same mark: /proc/net/ip_vs prints both as `FWM 0000000A`,
    // and node_exporter adds up what it reads under equal labels.
    let mut s = Snapshot::default();
    for af in [Af::V4, Af::V6] {
        let server = if af == Af::V4 { ep("10.0.1.3:0") } else { ep("[2001:db8:1::3]:0") };
        s.backends.push(Backend {
            service: ServiceKey::Fwmark { mark: 10, af },
            server,
            active: 1,
            inactive: 2,
            weight: 3,
        });
    }
    s.backends.push(s.backends[0]);
    let out = s.render();
    assert!(out.contains("proto=\"FWM\",remote_address=\"10.0.1.3\",remote_port=\"0\"} 2\n"), "{out}");
    assert!(out.contains("node_ipvs_backend_weight{local_address=\"\",local_mark=\"0000000A\",local_port=\"0\",proto=\"FWM\",remote_address=\"10.0.1.3\",remote_port=\"0\"} 6\n"));
    assert_eq!(out.matches("node_ipvs_backend_weight{").count(), 2);
}

#[test]
fn no_servers_no_backend_families() {
    // client_golang leaves out a family nothing was collected for.
    let out = Snapshot::default().render();
    assert!(!out.contains("node_ipvs_backend"));
    assert!(out.starts_with("# HELP node_ipvs_connections_total "));
    assert!(!out.contains("lvs_health") && !out.contains("lvs_vrrp"));
}

#[test]
fn lvs_families_drops_table_and_sync() {
    let out = snapshot().render();
    let (_, lvs) = out.split_once("node_ipvs_outgoing_packets_total 7\n").unwrap();
    let drops = "# HELP lvs_drops_total Frames the data path dropped, by reason.\n\
        # TYPE lvs_drops_total counter\n\
        lvs_drops_total{reason=\"malformed\"} 0\n\
        lvs_drops_total{reason=\"not-syn\"} 0\n\
        lvs_drops_total{reason=\"no-dest\"} 2\n\
        lvs_drops_total{reason=\"table-full\"} 0\n\
        lvs_drops_total{reason=\"mtu-exceeded\"} 0\n\
        lvs_drops_total{reason=\"unknown-neighbour\"} 0\n\
        lvs_drops_total{reason=\"stray-fragment\"} 0\n\
        lvs_drops_total{reason=\"dest-unavailable\"} 0\n\
        lvs_drops_total{reason=\"ttl-expired\"} 0\n\
        lvs_drops_total{reason=\"port-mismatch\"} 0\n\
        lvs_drops_total{reason=\"no-headroom\"} 0\n\
        lvs_drops_total{reason=\"unsupported\"} 0\n\
        lvs_drops_total{reason=\"unknown-port\"} 0\n\
        lvs_drops_total{reason=\"no-local-port\"} 0\n\
        lvs_drops_total{reason=\"bad-cookie\"} 0\n\
        lvs_drops_total{reason=\"synproxy-held\"} 0\n\
        lvs_drops_total{reason=\"drop-packet\"} 0\n\
        lvs_drops_total{reason=\"service-conn-limit\"} 0\n\
        lvs_drops_total{reason=\"dest-conn-limit\"} 0\n\
        lvs_drops_total{reason=\"no-call-id\"} 0\n\
        # HELP lvs_connection_table_entries Connections and templates in the connection table.\n\
        # TYPE lvs_connection_table_entries gauge\n\
        lvs_connection_table_entries 9\n\
        # HELP lvs_connection_table_bytes Memory the connection table holds, in bytes.\n\
        # TYPE lvs_connection_table_bytes gauge\n\
        lvs_connection_table_bytes 4096\n";
    assert!(lvs.starts_with(drops), "{lvs}");
    for line in [
        "# TYPE lvs_sync_sent_records_total counter\nlvs_sync_sent_records_total 5\n",
        "lvs_sync_received_records_total{result=\"created\"} 3\n\
         lvs_sync_received_records_total{result=\"updated\"} 0\n\
         lvs_sync_received_records_total{result=\"skipped\"} 0\n",
        "lvs_sync_dropped_total{reason=\"queue_full\"} 0\n\
         lvs_sync_dropped_total{reason=\"not_v0\"} 0\n\
         lvs_sync_dropped_total{reason=\"aborted\"} 0\n\
         lvs_sync_dropped_total{reason=\"refused\"} 1\n",
        "# TYPE lvs_sync_resyncs_done_total counter\nlvs_sync_resyncs_done_total 0\n",
    ] {
        assert!(lvs.contains(line), "missing {line:?} in\n{lvs}");
    }
}

#[test]
fn a_director_snapshot_and_two_shards_summed() {
    let mut d = Director::new(DirectorConfig::default(), testkit::factory);
    restore(&mut d, "-A -t 10.0.0.1:80 -s first\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 4\n").unwrap();
    let mut f = Frame::new(DEFAULT_HEADROOM, &[0u8; 10]);
    assert_eq!(d.process(Instant::ZERO, &mut f), crate::Verdict::Drop(Reason::Malformed));
    let one = Snapshot::of(&d);
    let server = Backend { service: tcp("10.0.0.1:80"), server: ep("10.0.1.1:80"), active: 0, inactive: 0, weight: 4 };
    assert_eq!(one.backends, [server]);
    assert_eq!(one.drops[Reason::Malformed.index()], 1);
    assert_eq!(one.table_entries, 0);

    let mut other = one.clone();
    other.backends[0].active = 2;
    other.backends.push(Backend { server: ep("10.0.1.9:80"), ..server });
    other.totals.conns = 5;
    other.sync.created = 4;
    let mut sum = one.clone();
    sum.add(&other);
    // Counts add up, the weight (the shards' shared configuration) does not.
    assert_eq!(sum.backends[0], Backend { active: 2, ..server });
    assert_eq!(sum.backends[1].server, ep("10.0.1.9:80"));
    assert_eq!(sum.drops[Reason::Malformed.index()], 2);
    assert_eq!((sum.totals.conns, sum.sync.created), (5, 4));
}

#[test]
fn health_states_and_quorum() {
    let mut d = Director::new(DirectorConfig::default(), testkit::factory);
    restore(&mut d, "-A -t 10.0.0.1:80 -s first\n").unwrap();
    let mut m = Monitor::new(1);
    let plan = CheckPlan::new(Check::Tcp(TcpCheck)).with_interval(Duration::from_secs(5));
    let servers = [10u8, 11].map(|i| (RealServer::new([10, 0, 1, i].into(), 80, FwdMethod::Route, 2), plan.clone()));
    let policy = ServicePolicy { quorum: 3, ..ServicePolicy::default() };
    m.add_service(&mut d, Instant::ZERO, tcp("10.0.0.1:80"), policy, servers).unwrap();
    let out = Snapshot::default().with_health(&m).render();
    let (_, health) = out.split_once("# HELP lvs_health_server_state").unwrap();
    let svc = r#"local_address="10.0.0.1",local_mark="",local_port="80",proto="TCP""#;
    let mut expected = String::from(
        " Health state of a checked real server: 1 for the state it is in.\n# TYPE lvs_health_server_state gauge\n",
    );
    // Without alpha a server starts in service (keepalived); both count toward the quorum.
    for i in [10, 11] {
        for (state, v) in [("UP", 1), ("DOWN", 0), ("DRAIN", 0)] {
            expected += &alloc::format!(
                "lvs_health_server_state{{{svc},remote_address=\"10.0.1.{i}\",remote_port=\"80\",state=\"{state}\"}} {v}\n"
            );
        }
    }
    expected += "# HELP lvs_health_quorum_up Whether a checked service has quorum (1) or not (0).\n\
                 # TYPE lvs_health_quorum_up gauge\n";
    expected += &alloc::format!("lvs_health_quorum_up{{{svc}}} 1\n");
    expected += "# HELP lvs_health_live_weight Sum of the weights of a checked service's servers in service.\n\
                 # TYPE lvs_health_live_weight gauge\n";
    expected += &alloc::format!("lvs_health_live_weight{{{svc}}} 4\n");
    assert_eq!(health, expected);
}

#[test]
fn vrrp_instances_by_interface_vrid_and_family() {
    let mut g = Group::new();
    let owner =
        Config { priority: 255, ..Config::new(51, "192.0.2.2".parse().unwrap(), vec!["192.0.2.100".parse().unwrap()]) };
    g.add_instance(owner).unwrap();
    let v6 = Config { port: 1, ..Config::new(52, "fe80::2".parse().unwrap(), vec!["2001:db8::100".parse().unwrap()]) };
    g.add_instance(v6).unwrap();
    g.start(Instant::ZERO);
    // The address owner takes over at once (RFC 5798 §6.4.1); the other waits as backup.
    let out = Snapshot::default().with_vrrp(&g, &["eth0"]).render();
    let (_, vrrp) = out.split_once("# HELP lvs_vrrp_state").unwrap();
    let (a, sa) = (r#"family="ipv4",interface="eth0",vrid="51""#, r#"family="ipv4",interface="eth0""#);
    let (b, sb) = (r#"family="ipv6",interface="1",vrid="52""#, r#"family="ipv6",interface="1""#);
    let expected = alloc::format!(
        " VRRP instance state: 1 for the state it is in.\n# TYPE lvs_vrrp_state gauge\n\
         lvs_vrrp_state{{{sa},state=\"INIT\",vrid=\"51\"}} 0\nlvs_vrrp_state{{{sa},state=\"BACKUP\",vrid=\"51\"}} 0\n\
         lvs_vrrp_state{{{sa},state=\"MASTER\",vrid=\"51\"}} 1\nlvs_vrrp_state{{{sa},state=\"FAULT\",vrid=\"51\"}} 0\n\
         lvs_vrrp_state{{{sb},state=\"INIT\",vrid=\"52\"}} 0\nlvs_vrrp_state{{{sb},state=\"BACKUP\",vrid=\"52\"}} 1\n\
         lvs_vrrp_state{{{sb},state=\"MASTER\",vrid=\"52\"}} 0\nlvs_vrrp_state{{{sb},state=\"FAULT\",vrid=\"52\"}} 0\n\
         # HELP lvs_vrrp_priority VRRP instance priority in force.\n# TYPE lvs_vrrp_priority gauge\n\
         lvs_vrrp_priority{{{a}}} 255\nlvs_vrrp_priority{{{b}}} 100\n\
         # HELP lvs_vrrp_became_master_total VRRP instance transitions to MASTER.\n\
         # TYPE lvs_vrrp_became_master_total counter\n\
         lvs_vrrp_became_master_total{{{a}}} 1\nlvs_vrrp_became_master_total{{{b}}} 0\n"
    );
    assert_eq!(vrrp, expected);
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut w = Writer(String::new());
    w.family("x", "a \\ b\nc \"q\"", "gauge");
    w.sample("x", &[("interface", "we\"ird\\\n")], 1);
    assert_eq!(w.0, "# HELP x a \\\\ b\\nc \"q\"\n# TYPE x gauge\nx{interface=\"we\\\"ird\\\\\\n\"} 1\n");
}
