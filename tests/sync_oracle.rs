//! Connection sync against the recorded Linux 6.12 traces in `tests/data/oracle-sync/`.
//!
//! - Backup cases (`b-*`): every recorded datagram goes to a library backup configured as the
//!   kernel backup was; after each, `ipvsadm -Lcn` and `-Ln --persistent-conn` must equal the
//!   kernel's (expiry within a few seconds: the kernel's listing was read about a second later).
//! - Master cases (`m-*`, and the master of `pair-*`): the frames that reached the kernel master
//!   are replayed into a library master with the same services, daemon options and sysctls,
//!   by their timestamps; the records it sends must equal the kernel's, in order (the SIP
//!   templates' `PE_DATA`/`PE_NAME` options included), and its messages must respect the same
//!   size limit; a master-only case's `-Lcn` and `-Ln --persistent-conn` must equal the kernel's
//!   at each snapshot.
//! - The kernel master's SIP template records go to a library backup, which must find each
//!   call's template by its Call-ID.
//! - Pair cases: the library master's datagrams feed a library backup, whose table after each
//!   phase must equal the kernel backup's.
//! - `/proc/net/ip_vs_conn_sync` at the last snapshot of a backup or master case: the library's
//!   rendering must have the kernel's rows, byte for byte but for the order (the kernel's is
//!   its hash table's) and the seconds left (within a few, as for `-Lcn`).

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use lvs::core::config::{list, parse_command, ListOptions, ProcFile};
use lvs::core::sync::wire::{self, Entry};
use lvs::core::sync::{Role, SyncParams, Version};
use lvs::core::wire::{Frame, PacketMeta, DEFAULT_HEADROOM};
use lvs::core::{Director, DirectorConfig, Instant, MacAddr, Neighbour, PortConfig};
use lvs::dataplane::pcap::read_capture;

fn case_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oracle-sync").join(name)
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

fn at(ts: &str) -> Instant {
    let (s, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let frac = format!("{frac:0<9}");
    Instant::from_nanos(s.parse::<u64>().unwrap() * 1_000_000_000 + frac[..9].parse::<u64>().unwrap())
}

/// `topology.txt` as key → values.
fn topology(dir: &Path) -> HashMap<String, Vec<String>> {
    let mut t: HashMap<String, Vec<String>> = HashMap::new();
    for l in read(dir, "topology.txt").lines() {
        if let Some((k, v)) = l.split_once('=') {
            t.entry(k.trim().into()).or_default().push(v.trim().into());
        }
    }
    t
}

/// A director with the LAN of the case: its port, the gateway, the real servers as neighbours
/// and, for fwmark services, a classifier marking TCP to the VIPs on the ports `case.md` names.
fn director(dir: &Path, role: &str) -> Director {
    let t = topology(dir);
    let one = |k: &str| t.get(k).and_then(|v| v.first()).unwrap_or_else(|| panic!("topology lacks {k}")).clone();
    let mac = |k: &str| one(k).parse::<MacAddr>().unwrap();
    let mut d = lvs::director(DirectorConfig::default().port(PortConfig::new(mac(&format!("{role}_lan_mac")))));
    let gw = Neighbour { mac: mac("gateway_mac"), port: 0 };
    for k in ["gateway_ipv4", "gateway_ipv6"] {
        let ip: IpAddr = one(k).parse().unwrap();
        d.set_neighbour(ip, gw);
        d.set_gateway(lvs::core::Af::of(&ip), gw);
    }
    for i in 1..=3 {
        let m = Neighbour { mac: mac(&format!("rs{i}_mac")), port: 0 };
        for fam in ["ipv4", "ipv6"] {
            d.set_neighbour(one(&format!("rs{i}_{fam}")).parse().unwrap(), m);
        }
    }
    let case = read(dir, "case.md");
    // The marks the cases' nft rules set: fwmark N for TCP to a VIP on a port range.
    let marks: Vec<(u32, u16, u16)> = [(1, 9000, 9009), (2, 7000, 7009), (3, 9100, 9109)]
        .into_iter()
        .filter(|(m, lo, hi)| case.contains(&format!("fwmark {m}")) && case.contains(&format!("{lo}-{hi}")))
        .collect();
    let vips: Vec<IpAddr> = t["vip"].iter().map(|v| v.parse().unwrap()).collect();
    if !marks.is_empty() {
        d.set_classifier(Box::new(move |m: &PacketMeta| {
            let hit = m.proto == 6 && vips.contains(&m.dst);
            marks.iter().find(|(_, lo, hi)| hit && (*lo..=*hi).contains(&m.dport)).map_or(0, |(mark, _, _)| *mark)
        }));
    }
    d
}

/// Applies one `sysctl -w net.ipv4.vs.KEY="VALUE"` of the case.
fn sysctl(d: &mut Director, kv: &str) {
    let (k, v) = kv.split_once('=').unwrap();
    let k = k.trim().trim_start_matches("net.ipv4.vs.");
    let v = v.trim().trim_matches('"');
    let mut p: SyncParams = *d.sync_params();
    let n = |s: &str| s.parse::<u32>().unwrap();
    match k {
        "sync_version" => p.version = if v == "0" { Version::V0 } else { Version::V1 },
        "sync_threshold" => {
            let (a, b) = v.split_once(' ').unwrap();
            (p.threshold, p.period) = (n(a), n(b.trim()));
        }
        "sync_refresh_period" => p.refresh_period = n(v),
        "sync_retries" => p.retries = n(v) as u8,
        "sync_persist_mode" => p.persist_mode = v == "1",
        "sync_ports" => p.ports = n(v) as u8,
        _ => panic!("sysctl {k} not handled"),
    }
    d.set_sync_params(p).unwrap();
}

/// Runs a control step (`ROLE: ipvsadm ...` or `ROLE: sysctl -w ...`) on `d`.
fn control(d: &mut Director, cmd: &str) {
    let w: Vec<&str> = cmd.split_whitespace().collect();
    match w.first() {
        Some(&"sysctl") => sysctl(d, cmd.trim_start_matches("sysctl -w ")),
        Some(&"ipvsadm") => match parse_command(&w[1..]) {
            Ok(c) => d.execute(&c).unwrap_or_else(|e| panic!("{cmd}: {e}")),
            Err(e) => panic!("{cmd}: {e}"),
        },
        _ => panic!("unknown step {cmd}"),
    }
}

/// One record as text, for comparing and for readable failures: with the persistence
/// engine's options (`PE_NAME`, `PE_DATA`) when it has them.
fn show(r: &wire::Record<'_>) -> String {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    format!(
        "proto={} flags={:#x} state={} {}:{} -> {}:{} -> {}:{} fwmark={} timeout={} seq={:?} pe={:?}/{:?}",
        r.proto,
        r.flags,
        r.state,
        r.caddr,
        r.cport,
        r.vaddr,
        r.vport,
        r.daddr,
        r.dport,
        r.fwmark,
        r.timeout,
        r.seq,
        text(r.pe_name),
        text(r.pe_data)
    )
}

fn records(datagram: &[u8]) -> Vec<String> {
    let m = wire::parse(datagram).expect("a well-formed message");
    m.entries()
        .map(|e| match e.expect("a whole record") {
            Entry::Record(r) => show(&r),
            Entry::Skip(s) => format!("skip {s}"),
        })
        .collect()
}

/// The UDP payload of a captured Ethernet frame.
fn udp_payload(frame: &[u8]) -> &[u8] {
    let l3 = 14;
    let l4 = match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => l3 + usize::from(frame[l3] & 0x0f) * 4,
        0x86dd => l3 + 40,
        t => panic!("ethertype {t:#x}"),
    };
    &frame[l4 + 8..]
}

/// `-Lcn` rows compared as sets, the expire column within `slack` seconds.
fn same_table(ours: &str, theirs: &str, slack: i64) -> bool {
    let norm = |s: &str| -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = s
            .lines()
            .skip(2)
            .map(|l| {
                let mut w: Vec<&str> = l.split_whitespace().collect();
                let e = w.remove(1);
                let (m, s) = e.split_once(':').unwrap();
                (w.join(" "), m.parse::<i64>().unwrap() * 60 + s.parse::<i64>().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let (a, b) = (norm(ours), norm(theirs));
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() <= slack)
}

/// `/proc/net/ip_vs_conn_sync` against the kernel's: the same header, the same rows as sets,
/// each row equal up to its last column (the seconds left, `%7lu`), which may differ by
/// `slack`. Returns what differs.
fn conn_sync_diff(ours: &str, theirs: &str, slack: u64) -> Option<String> {
    let split = |s: &str| -> (String, Vec<(String, u64)>) {
        let mut lines = s.lines();
        let header = lines.next().unwrap_or_default().to_string();
        let mut rows: Vec<(String, u64)> = lines
            .map(|l| {
                let (head, secs) = l.split_at(l.len().saturating_sub(7));
                (head.to_string(), secs.trim_start().parse().unwrap_or_else(|_| panic!("no seconds in {l:?}")))
            })
            .collect();
        rows.sort();
        (header, rows)
    };
    let ((h1, a), (h2, b)) = (split(ours), split(theirs));
    let same =
        h1 == h2 && a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && x.1.abs_diff(y.1) <= slack);
    (!same).then(|| format!("--- kernel\n{theirs}+++ ours\n{ours}"))
}

/// The `== TAG` section of `ln.txt`.
fn ln_section(dir: &Path, tag: &str) -> String {
    let text = read(dir, "ln.txt");
    let start = text.find(&format!("== {tag}\n")).unwrap_or_else(|| panic!("ln.txt lacks {tag}")) + tag.len() + 4;
    let rest = &text[start..];
    rest[..rest.find("\n== ").map_or(rest.len(), |i| i + 1)].to_string()
}

/// Whether a backup with this daemon would receive a datagram sent to `group:port` (the
/// transport's job: sockets bound to the group on `port .. port + sync_ports`).
fn reaches(d: &Director, group: &str, port: u16) -> bool {
    let cfg = d.sync_daemon(Role::Backup).expect("a backup");
    let ports = u16::from(d.sync_params().ports);
    group.parse::<IpAddr>().ok() == cfg.group && (cfg.port..cfg.port + ports).contains(&port)
}

fn check_backup(name: &str) {
    let dir = case_dir(name);
    let mut d = director(&dir, "backup");
    let payloads: HashMap<String, (String, u16, Vec<u8>)> = read(&dir, "payloads.hex")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let bytes = (0..w[3].len()).step_by(2).map(|i| u8::from_str_radix(&w[3][i..i + 2], 16).unwrap()).collect();
            (w[0].to_string(), (w[1].to_string(), w[2].parse().unwrap(), bytes))
        })
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut last = Instant::ZERO;
    for line in read(&dir, "steps.txt").lines().filter(|l| !l.trim_start().starts_with('#')) {
        let Some((ts, step)) = line.split_once(char::is_whitespace) else { continue };
        let now = at(ts);
        d.tick(now);
        let step = step.trim();
        if let Some(cmd) = step.strip_prefix("backup: ") {
            control(&mut d, cmd);
        } else if let Some(inj) = step.strip_prefix("inject ") {
            let tag = inj.rsplit("snapshot ").next().unwrap().trim();
            let (group, port, bytes) = &payloads[tag];
            if reaches(&d, group, *port) {
                let _ = d.handle_sync(now, bytes);
            }
            let later = Instant::from_nanos(now.as_nanos() + 1_000_000_000);
            d.tick(later);
            last = later;
            let ours = list(&d, later, ListOptions::Connections);
            let theirs = read(&dir, &format!("lcn-{tag}.txt"));
            if !same_table(&ours, &theirs, 3) {
                failures.push(format!("{name} after {tag}:\n--- kernel\n{theirs}+++ ours\n{ours}"));
            }
            // `-Ln` was read a moment after `-Lcn`: an entry at 00:00 there may be gone by then.
            let theirs = ln_section(&dir, tag);
            let mut ours = list(&d, later, ListOptions::PersistentConn);
            if ours.trim_end() != theirs.trim_end() {
                let moment = Instant::from_nanos(later.as_nanos() + 500_000_000);
                d.tick(moment);
                ours = list(&d, moment, ListOptions::PersistentConn);
            }
            // The recorder trimmed the end of each section.
            if ours.trim_end() != theirs.trim_end() {
                failures.push(format!("{name} -Ln after {tag}:\n--- kernel\n{theirs}+++ ours\n{ours}"));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "{name}: no injection replayed");
    // `conn-sync.txt` was read at the last snapshot, after `ln.txt`'s section.
    let ours = ProcFile::ConnSync.render(&d, last);
    if let Some(diff) = conn_sync_diff(&ours, &read(&dir, "conn-sync.txt"), 3) {
        failures.push(format!("{name} /proc/net/ip_vs_conn_sync at the end:\n{diff}"));
    }
    assert!(failures.is_empty(), "{} of {checked} snapshots differ:\n{}", failures.len(), failures.join("\n"));
}

/// What a replayed master sent: every record in order and the size of each message; and, for a
/// master-only case, how its tables differed from the kernel's at the snapshots.
struct MasterRun {
    records: Vec<String>,
    sizes: Vec<usize>,
    tables: Vec<String>,
    /// `/proc/net/ip_vs_conn_sync` at the last snapshot.
    conn_sync: String,
}

/// Collects every datagram the director has to send at `now`.
fn drain(d: &mut Director, now: Instant, out: &mut Vec<Vec<u8>>) {
    while let Some(g) = d.poll_sync(now) {
        out.push(g.bytes);
    }
}

/// The library backup of a pair case and what the comparison found.
struct Pair {
    backup: Director,
    failures: Vec<String>,
    forwarded: Vec<Vec<u8>>,
}

/// Replays a master case: control steps at their times, every frame of `input.pcap` at its
/// timestamp, and the sync datagrams the library master emits. In a pair case the datagrams
/// go to the library backup at once, both tables are compared with the kernel's at every
/// snapshot, and the fail-over frames of `failover.pcap` go to the backup.
fn run_master(dir: &Path, mut pair: Option<&mut Pair>) -> MasterRun {
    let mut d = director(dir, "master");
    let frames = read_capture(&dir.join("input.pcap")).expect("input.pcap");
    let steps: Vec<(Instant, String)> = read(dir, "steps.txt")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace).map(|(t, s)| (at(t), s.trim().to_string())))
        .collect();
    let mut sent = Vec::new();
    let mut delivered = 0;
    let mut conn_sync = String::new();
    let mut tables = Vec::new();
    let (mut fi, mut si) = (0, 0);
    loop {
        let next_frame = frames.get(fi).map(|f| Instant::from_nanos(f.ts_ns));
        let next_step = steps.get(si).map(|s| s.0);
        let now = match (next_frame, next_step) {
            (None, None) => break,
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap(),
        };
        // Time passes: flush deadlines that fell before `now`.
        while let Some(t) = d.next_deadline().filter(|t| *t <= now) {
            d.tick(t);
            drain(&mut d, t, &mut sent);
            deliver(&mut pair, t, &sent, &mut delivered);
        }
        if let Some(p) = pair.as_deref_mut() {
            p.backup.tick(now);
        }
        if next_step == Some(now) {
            let step = steps[si].1.clone();
            si += 1;
            if let Some(cmd) = step.strip_prefix("master: ").filter(|c| !c.starts_with("frames")) {
                control(&mut d, cmd);
            }
            if let Some(tag) = step.strip_prefix("snapshot ") {
                conn_sync = ProcFile::ConnSync.render(&d, now);
                if pair.is_none() {
                    let (ours, theirs) =
                        (list(&d, now, ListOptions::Connections), read(dir, &format!("lcn-{tag}.txt")));
                    if !same_table(&ours, &theirs, 3) {
                        tables.push(format!("{tag} -Lcn:\n--- kernel\n{theirs}+++ ours\n{ours}"));
                    }
                    let (ours, theirs) = (list(&d, now, ListOptions::PersistentConn), ln_section(dir, tag));
                    if ours.trim_end() != theirs.trim_end() {
                        tables.push(format!("{tag} -Ln --persistent-conn:\n--- kernel\n{theirs}\n+++ ours\n{ours}"));
                    }
                }
            }
            let Some(p) = pair.as_deref_mut() else { continue };
            if let Some(cmd) = step.strip_prefix("backup: ") {
                if cmd.starts_with("frames") {
                    p.forwarded = fail_over(dir, &mut p.backup);
                } else {
                    control(&mut p.backup, cmd);
                }
            } else if let Some(tag) = step.strip_prefix("snapshot ") {
                for (who, dd) in [("master", &d), ("backup", &p.backup)] {
                    let ours = list(dd, now, ListOptions::Connections);
                    let theirs = read(dir, &format!("lcn-{tag}-{who}.txt"));
                    if !same_table(&ours, &theirs, 3) {
                        p.failures.push(format!("{tag} {who}:\n--- kernel\n{theirs}+++ ours\n{ours}"));
                    }
                }
            }
        } else {
            let f = &frames[fi];
            let mut frame = Frame::new(DEFAULT_HEADROOM, &f.data);
            let _ = d.process(now, &mut frame);
            fi += 1;
        }
        drain(&mut d, now, &mut sent);
        deliver(&mut pair, now, &sent, &mut delivered);
    }
    // Let the last partly filled message go.
    let end = Instant::from_nanos(steps.last().map_or(0, |s| s.0.as_nanos()) + 10_000_000_000);
    d.tick(end);
    drain(&mut d, end, &mut sent);
    MasterRun {
        records: sent.iter().flat_map(|g| records(g)).collect(),
        sizes: sent.iter().map(Vec::len).collect(),
        tables,
        conn_sync,
    }
}

/// Hands the master's new datagrams to the pair's backup.
fn deliver(pair: &mut Option<&mut Pair>, now: Instant, sent: &[Vec<u8>], delivered: &mut usize) {
    if let Some(p) = pair.as_deref_mut() {
        for g in &sent[*delivered..] {
            p.backup.handle_sync(now, g).expect("the backup takes the master's messages");
        }
    }
    *delivered = sent.len();
}

/// Sends the frames that reached the kernel backup at fail-over (those from the gateway) to
/// the library backup; returns what it transmitted.
fn fail_over(dir: &Path, b: &mut Director) -> Vec<Vec<u8>> {
    let gw: MacAddr = topology(dir)["gateway_mac"][0].parse().unwrap();
    let mut out = Vec::new();
    for f in read_capture(&dir.join("failover.pcap")).expect("failover.pcap") {
        if f.data[6..12] != gw.0 {
            continue;
        }
        let now = Instant::from_nanos(f.ts_ns);
        b.tick(now);
        let mut frame = Frame::new(DEFAULT_HEADROOM, &f.data);
        if let lvs::core::Verdict::Transmit { .. } = b.process(now, &mut frame) {
            out.push(frame.data().to_vec());
        }
    }
    out
}

fn check_pair(name: &str) {
    let dir = case_dir(name);
    let mut pair = Pair { backup: director(&dir, "backup"), failures: Vec::new(), forwarded: Vec::new() };
    run_master(&dir, Some(&mut pair));
    let me: MacAddr = topology(&dir)["backup_lan_mac"][0].parse().unwrap();
    let kernel: Vec<Vec<u8>> = read_capture(&dir.join("failover.pcap"))
        .expect("failover.pcap")
        .into_iter()
        .filter(|f| f.data[6..12] == me.0)
        .map(|f| f.data)
        .collect();
    assert!(!kernel.is_empty(), "{name}: the kernel backup forwarded nothing at fail-over");
    if pair.forwarded != kernel {
        pair.failures.push(format!(
            "fail-over: the backup sent {} frames, the kernel backup {}; first difference at {:?}",
            pair.forwarded.len(),
            kernel.len(),
            pair.forwarded.iter().zip(&kernel).position(|(a, b)| a != b)
        ));
    }
    assert!(pair.failures.is_empty(), "{name}:\n{}", pair.failures.join("\n"));
}

fn check_master(name: &str, ordered: bool) {
    let dir = case_dir(name);
    let ours = run_master(&dir, None);
    let kernel = read_capture(&dir.join("sync.pcap")).expect("sync.pcap");
    let mut theirs: Vec<String> = Vec::new();
    let mut maxlen = 0;
    for f in &kernel {
        let p = udp_payload(&f.data);
        maxlen = maxlen.max(p.len());
        theirs.extend(records(p));
    }
    let (mut a, mut b) = (ours.records.clone(), theirs.clone());
    if !ordered {
        a.sort();
        b.sort();
    }
    if a != b {
        let mut diff = String::new();
        for i in 0..a.len().max(b.len()) {
            let (x, y) = (a.get(i).map_or("-", String::as_str), b.get(i).map_or("-", String::as_str));
            diff.push_str(&format!("{}{i:3} ours   {x}\n    kernel {y}\n", if x == y { "  " } else { "!!" }));
        }
        panic!("{name}: {} records sent, kernel sent {}\n{diff}", a.len(), b.len());
    }
    let limit = ours.sizes.iter().copied().max().unwrap_or(0);
    assert!(limit <= maxlen.max(1), "{name}: a message of {limit} bytes, kernel's largest {maxlen}");
    let theirs = read(&dir, "conn-sync.txt");
    if let Some(diff) = conn_sync_diff(&ours.conn_sync, &theirs, 3) {
        panic!("{name}: /proc/net/ip_vs_conn_sync at the last snapshot:\n{diff}");
    }
    assert!(ours.tables.is_empty(), "{name}: tables differ from the kernel's:\n{}", ours.tables.join("\n"));
}

macro_rules! backup_cases {
    ($($test:ident => $dir:literal),* $(,)?) => {
        $(#[test] fn $test() { check_backup($dir); })*
    };
}

backup_cases! {
    backup_v1_inject => "b-v1-inject",
    backup_v0_inject => "b-v0-inject",
    backup_custom_syncid0 => "b-custom-syncid0",
    backup_v6_transport => "b-v6-transport",
}

#[test]
fn master_v1_default() {
    check_master("m-v1-default", true);
}

#[test]
fn master_v0() {
    check_master("m-v0", true);
}

#[test]
fn master_mcast_custom() {
    check_master("m-mcast-custom", true);
}

#[test]
fn master_v6_mcast6() {
    check_master("m-v6-mcast6", true);
}

#[test]
fn master_thresholds() {
    // With sync_ports=2 the kernel spreads connections over two sockets by their address:
    // which record leaves first is not reproducible, only which records leave.
    check_master("m-thresholds", false);
}

#[test]
fn pair_v1() {
    check_pair("pair-v1");
}

#[test]
fn pair_v0() {
    check_pair("pair-v0");
}

#[test]
fn every_case_has_a_test() {
    let src = include_str!("sync_oracle.rs");
    for e in fs::read_dir(case_dir("")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            let name = e.file_name().into_string().unwrap();
            assert!(src.contains(&format!("\"{name}\"")), "no test replays {name}");
        }
    }
}

/// The kernel master's SIP template records of `m-mcast-custom` (`PE_DATA` = Call-ID,
/// `PE_NAME` = `sip`, padded to 4 bytes), fed to a library backup with the same services:
/// each call's template is filed by its Call-ID on the server the kernel chose (`decoded.txt`:
/// `a84b4c76e66710` on .13, `f81d4fae-7dec-11d0-a765-0` on .12), so after fail-over a new flow
/// of each call goes where the master sent the call, whatever the backup's scheduler says.
#[test]
fn kernel_sip_templates_are_found_by_call_id_on_a_backup() {
    let dir = case_dir("m-mcast-custom");
    let mut d = director(&dir, "master");
    for line in read(&dir, "steps.txt").lines() {
        let Some(cmd) = line.split_once("master: ipvsadm ").map(|(_, c)| c) else { continue };
        if !cmd.starts_with("--start-daemon") {
            control(&mut d, &format!("ipvsadm {cmd}"));
        }
    }
    d.start_sync(Role::Backup, &lvs::core::sync::DaemonConfig::new("sync0"), 1500).unwrap();
    let frames = read_capture(&dir.join("sync.pcap")).expect("sync.pcap");
    // The first two datagrams hold the SIP phase's records.
    for f in &frames[..2] {
        d.handle_sync(Instant::from_nanos(f.ts_ns), udp_payload(&f.data)).expect("applied");
    }
    let now = Instant::from_nanos(frames[1].ts_ns);
    let calls: HashMap<String, IpAddr> = d
        .connections(now)
        .into_iter()
        .filter_map(|c| {
            let (_, data) = d.pe_data(c.pe?)?;
            Some((String::from_utf8_lossy(data).into_owned(), c.dest.addr))
        })
        .collect();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls["a84b4c76e66710"], ip("192.0.2.13"));
    assert_eq!(calls["f81d4fae-7dec-11d0-a765-0"], ip("192.0.2.12"));
    // Fail-over: the client's next INVITE of each call, from a new port — in the other order,
    // where the backup's fresh `rr` alone would send the first of them to .13; no template is
    // added.
    for (port, call, server) in
        [(40000, "f81d4fae-7dec-11d0-a765-0", "192.0.2.12"), (40001, "a84b4c76e66710", "192.0.2.13")]
    {
        let msg = format!("INVITE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP x\r\nCall-ID: {call}\r\n\r\n");
        let src = (ip("198.51.100.185"), port);
        let mut f =
            Frame::new(DEFAULT_HEADROOM, &lvs::core::testkit::udp(src, (ip("203.0.113.100"), 5060), msg.as_bytes()));
        assert!(matches!(d.process(now, &mut f), lvs::core::Verdict::Transmit { .. }));
        let to = d.connections(now).into_iter().find(|c| !c.template && c.client.port == port).unwrap();
        assert_eq!(to.dest.addr, ip(server), "{call}");
    }
    assert_eq!(d.connections(now).iter().filter(|c| c.template).count(), 2);
}
