//! Connection sync over real multicast (root; CI runs as root): two network namespaces joined
//! by a veth pair, a library master in one and a library backup in the other, each a runtime
//! with the same virtual service. The master's director forwards TCP handshakes and syncs the
//! connections; the backup must then list the same ones. Frames captured on the backup's side
//! show what the kernel's sync sockets would put on the wire. Namespaces and everything in them
//! are removed when a test ends, also on failure. Without root (or `ip`, `sysctl`, `tc`) these
//! tests fail under CI and say they were skipped elsewhere.
//!
//! The last test runs VRRP beside the two runtimes and checks that the daemons follow it as
//! keepalived's `lvs_sync_daemon` switches them.
//!
//! Interoperability with the kernel's own daemons (`ipvsadm --start-daemon`) is not tested
//! here: it needs a kernel built with IPVS, which the test machines do not have.

#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/root.rs"]
mod root;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use lvs::core::director::SyncStats;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags::{ACK, SYN};
use lvs::core::sync::{DaemonConfig, Role, SyncParams};
use lvs::core::testkit::{Tcp, DIRECTOR_MAC};
use lvs::core::vrrp::{Config as VrrpConfig, Group, State, Version};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{DirectorConfig, Instant, PortConfig};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::io::PacketIo;
use lvs::dataplane::pcap::Captured;
use lvs::dataplane::replay::PcapReplay;
use lvs::dataplane::runtime::{MonotonicClock, Runtime};
use lvs::dataplane::sync::SyncIoStats;
use lvs::dataplane::vrrp::{KernelAddresses, LvsSyncDaemon, VrrpIo};
use netns::Netns;

fn can_run() -> bool {
    root::can_run(true, &["ip", "sysctl", "tc"])
}

/// The master's end of the veth pair, and the backup's.
const MASTER_IF: &str = "lvssm0";
const BACKUP_IF: &str = "lvssb0";

/// Two namespaces joined by a veth pair: `10.81.0.1/24` on the master's end, `10.81.0.2/24` on
/// the backup's, and IPv6 link-local addresses usable at once (no duplicate detection).
fn pair(tag: &str) -> (Netns, Netns) {
    let m = Netns::create(&format!("lvs-t-{tag}m")).unwrap();
    let b = Netns::create(&format!("lvs-t-{tag}b")).unwrap();
    for ns in [&m, &b] {
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.accept_dad=0"]).unwrap();
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.accept_dad=0"]).unwrap();
    }
    m.exec("ip", &["link", "add", MASTER_IF, "type", "veth", "peer", "name", BACKUP_IF, "netns", b.name()]).unwrap();
    for (ns, dev, addr) in [(&m, MASTER_IF, "10.81.0.1/24"), (&b, BACKUP_IF, "10.81.0.2/24")] {
        ns.exec("ip", &["addr", "add", addr, "dev", dev]).unwrap();
        ns.exec("ip", &["link", "set", dev, "up"]).unwrap();
    }
    for (ns, dev) in [(&m, MASTER_IF), (&b, BACKUP_IF)] {
        let start = StdInstant::now();
        while !ns.exec("ip", &["-6", "addr", "show", "dev", dev, "scope", "link"]).unwrap().contains("fe80::") {
            assert!(start.elapsed() < Duration::from_secs(5), "no link-local address on {dev}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    (m, b)
}

/// A director with the DR service 203.0.113.100:80 → 192.0.2.11:80 and sync sysctls `p`.
fn director(p: SyncParams) -> lvs::Director {
    let mut d = lvs::director(DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC))));
    d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
    lvs::core::config::restore(&mut d, "-A -t 203.0.113.100:80 -s rr\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n")
        .unwrap();
    d.set_sync_params(p).unwrap();
    d
}

/// `flows` handshakes as a DR director sees them (SYN, ACK, ACK each): the third packet of an
/// established connection is the one a master syncs.
fn handshakes(flows: u16) -> Vec<Captured> {
    let vip = ("203.0.113.100".parse().unwrap(), 80);
    let mut frames = Vec::new();
    for flags in [SYN, ACK, ACK] {
        for p in 0..flows {
            let data = Tcp::new(("198.51.100.2".parse().unwrap(), 10_000 + p), vip, flags).build();
            frames.push(Captured { ts_ns: 0, data });
        }
    }
    frames
}

/// The connections as `ipvsadm -Lcn` names them, sorted.
fn listing(d: &lvs::Director) -> Vec<String> {
    let mut l: Vec<String> = d
        .connections(Instant::ZERO)
        .iter()
        .map(|c| format!("{} {} {} {} {}", c.proto, c.client, c.virt, c.dest, c.state))
        .collect();
    l.sort();
    l
}

/// What a side saw.
struct Seen {
    listing: Vec<String>,
    io: SyncIoStats,
    sync: SyncStats,
    /// Sync frames captured on the backup's interface.
    frames: Vec<Vec<u8>>,
}

/// A daemon's sysctls and settings.
type Side = (SyncParams, DaemonConfig);

/// Runs a master in `m` fed `flows` handshakes and a backup in `b` until the backup has every
/// connection (at most ten seconds), capturing the sync frames that reach the backup's
/// interface.
fn sync_pair(m: &Netns, b: &Netns, master: Side, backup: Side, flows: u16) -> (Seen, Seen) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let ((master_p, master_cfg), (backup_p, backup_cfg)) = (master, backup);
    std::thread::scope(|s| {
        let backup = s.spawn(move || {
            b.enter().unwrap();
            let mut capture = AfPacket::open(BACKUP_IF, AfPacketConfig::default()).unwrap();
            let mut pool: Vec<Frame> = (0..64).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 2048)).collect();
            let mut rt = Runtime::new(director(backup_p), Vec::new());
            rt.start_sync(Role::Backup, &backup_cfg).unwrap();
            let port = rt.director().sync_daemon(Role::Backup).unwrap().port;
            ready_tx.send(()).unwrap();
            let clock = MonotonicClock::default();
            let (start, mut frames) = (StdInstant::now(), Vec::new());
            let mut master_done = false;
            loop {
                rt.poll_once(clock.now()).unwrap();
                let n = capture.recv(Instant::ZERO, &mut pool).unwrap();
                frames.extend(pool[..n].iter().map(|f| f.data().to_vec()).filter(|f| is_sync(f, port)));
                master_done |= sent_rx.try_recv().is_ok();
                // Every connection, and every frame the master sent captured.
                let done = rt.director().conn_count() == usize::from(flows)
                    && master_done
                    && frames.len() as u64 == rt.sync().stats().received;
                if done || start.elapsed() > Duration::from_secs(10) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let d = rt.director();
            Seen { listing: listing(d), io: rt.sync().stats(), sync: d.sync_stats(), frames }
        });
        let master = s.spawn(move || {
            m.enter().unwrap();
            ready_rx.recv().unwrap();
            let replay = PcapReplay::new(handshakes(flows));
            let mut rt = Runtime::new(director(master_p), vec![Box::new(replay)]);
            rt.start_sync(Role::Master, &master_cfg).unwrap();
            let start = StdInstant::now();
            // The handshakes at 1 s, then passes at 4 s send what waited (2 s at most) and
            // whatever a full send buffer held back.
            while rt.stats().rx < u64::from(flows) * 3 {
                rt.poll_once(Instant::from_secs(1)).unwrap();
            }
            loop {
                rt.poll_once(Instant::from_secs(4)).unwrap();
                let all = rt.sync().stats().sent == rt.director().sync_stats().sent_messages;
                if (all && !rt.sync().is_blocked()) || start.elapsed() > Duration::from_secs(10) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            sent_tx.send(()).unwrap();
            let d = rt.director();
            Seen { listing: listing(d), io: rt.sync().stats(), sync: d.sync_stats(), frames: Vec::new() }
        });
        (master.join().unwrap(), backup.join().unwrap())
    })
}

/// Where the UDP header of an IPv4 or IPv6 frame starts.
fn udp_at(f: &[u8]) -> Option<usize> {
    match f.get(12..14)? {
        [0x08, 0x00] if f.get(23) == Some(&17) => Some(14 + usize::from(f.get(14)? & 0x0f) * 4),
        [0x86, 0xdd] if f.get(20) == Some(&17) => Some(14 + 40),
        _ => None,
    }
}

/// Whether `f` is a UDP frame to one of the sync ports from `port` on.
fn is_sync(f: &[u8], port: u16) -> bool {
    let Some(udp) = udp_at(f) else { return false };
    let Some(dst) = f.get(udp + 2..udp + 4) else { return false };
    let dst = u16::from_be_bytes([dst[0], dst[1]]);
    (port..port + 16).contains(&dst)
}

fn udp_dst(f: &[u8]) -> u16 {
    let udp = udp_at(f).unwrap();
    u16::from_be_bytes([f[udp + 2], f[udp + 3]])
}

/// The backup took every connection the master made, from every datagram the master sent.
fn assert_synced(master: &Seen, backup: &Seen, flows: usize) {
    let stats = format!("master {:?} {:?}, backup {:?} {:?}", master.io, master.sync, backup.io, backup.sync);
    assert_eq!(master.listing.len(), flows, "{stats}");
    assert!(master.listing.iter().all(|c| c.ends_with("192.0.2.11:80 ESTABLISHED")), "{:?}", master.listing.first());
    assert_eq!(backup.listing.len(), flows, "{stats}");
    assert!(backup.listing == master.listing, "the backup lists what the master does");
    assert_eq!(master.io.sent, master.sync.sent_messages, "{:?}", master.io);
    assert_eq!(master.io.send_errors, 0);
    assert_eq!(backup.io.received, master.io.sent, "{:?}", backup.io);
    assert_eq!(backup.frames.len() as u64, master.io.sent, "every datagram captured once");
    assert_eq!((backup.io.truncated, backup.sync.refused, backup.sync.created), (0, 0, flows as u64));
}

#[test]
fn ipv4_sync_reaches_the_backup_over_multicast() {
    if !can_run() {
        return;
    }
    let (m, b) = pair("s4");
    let cfg = |ifname| DaemonConfig { syncid: 7, ..DaemonConfig::new(ifname) };
    let p = SyncParams::default();
    let (master, backup) = sync_pair(&m, &b, (p, cfg(MASTER_IF)), (p, cfg(BACKUP_IF)), 100);
    assert_synced(&master, &backup, 100);
    for f in &backup.frames {
        assert_eq!(&f[0..6], &[0x01, 0x00, 0x5e, 0x00, 0x00, 0x51], "to 224.0.0.81's MAC");
        assert_eq!(&f[26..34], &[10, 81, 0, 1, 224, 0, 0, 81], "from the interface's address to the group");
        assert_eq!(f[22], 1, "TTL 1");
        assert_eq!(f[20] & 0x40, 0, "DF clear: fragments allowed (IP_PMTUDISC_DONT)");
        assert_eq!(udp_dst(f), 8848);
        assert_eq!(f[14 + 20 + 8 + 1], 7, "syncid 7 in the message header");
    }
}

#[test]
fn ipv6_sync_reaches_the_backup_over_link_local_multicast() {
    if !can_run() {
        return;
    }
    let (m, b) = pair("s6");
    let group: IpAddr = "ff02::81".parse().unwrap();
    let cfg = |ifname| DaemonConfig { group: Some(group), syncid: 7, ..DaemonConfig::new(ifname) };
    let p = SyncParams { ports: 2, ..SyncParams::default() };
    let (master, backup) = sync_pair(&m, &b, (p, cfg(MASTER_IF)), (p, cfg(BACKUP_IF)), 100);
    assert_synced(&master, &backup, 100);
    let mut ports = Vec::new();
    for f in &backup.frames {
        assert_eq!(&f[0..6], &[0x33, 0x33, 0x00, 0x00, 0x00, 0x81], "to ff02::81's MAC");
        assert_eq!(&f[22..24], &[0xfe, 0x80], "from a link-local address");
        assert_eq!(&f[38..54], &group_octets(group), "to the group");
        assert_eq!(f[21], 1, "hop limit 1");
        ports.push(udp_dst(f));
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports, [8848, 8849], "socket i sends to port + i");
}

fn group_octets(g: IpAddr) -> [u8; 16] {
    match g {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => unreachable!("an IPv6 group"),
    }
}

#[test]
fn a_full_send_buffer_delays_datagrams_but_loses_none() {
    if !can_run() {
        return;
    }
    let (m, b) = pair("sq");
    // A slow link (1 Mbit/s, queueing up to 200 kB) and the smallest send buffer: the socket is
    // full after a few datagrams, many times over for 2000 connections (50 messages).
    m.exec("tc", &["qdisc", "add", "dev", MASTER_IF, "root", "tbf", "rate", "1mbit", "burst", "4kb", "limit", "200kb"])
        .unwrap();
    // (The backup keeps the default receive buffer: the smallest holds one datagram, and a
    // second arriving before the first is read would be dropped.)
    let small = SyncParams { sock_size: 1, ..SyncParams::default() };
    let master = (small, DaemonConfig::new(MASTER_IF));
    let (master, backup) = sync_pair(&m, &b, master, (SyncParams::default(), DaemonConfig::new(BACKUP_IF)), 2000);
    assert_synced(&master, &backup, 2000);
    assert!(master.io.send_blocked > 0, "the buffer was never full: {:?}", master.io);
    assert_eq!(master.sync.queue_full, 0);
}

/// What a director of the VRRP test shows: its instance's state and the sync daemons it runs,
/// with their syncids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Shown {
    state: Option<State>,
    master: Option<u8>,
    backup: Option<u8>,
}

/// A director in `ns` whose sync daemons on `ifname` follow a VRRP instance (VRID 51, VRRPv3
/// every 100 ms, priority `prio`, primary address `primary`), VRRP and the runtime in one loop,
/// until `stop`; then VRRP shuts down and the loop runs on until the daemons are stopped.
fn vrrp_director(ns: &Netns, ifname: &str, primary: &str, prio: u8, shown: &Mutex<Shown>, stop: &AtomicBool) {
    ns.enter().unwrap();
    let mut cfg = VrrpConfig::new(51, primary.parse().unwrap(), vec!["10.81.0.100".parse().unwrap()]);
    (cfg.version, cfg.advert_int, cfg.priority) = (Version::V3, Duration::from_millis(100), prio);
    let mut group = Group::new();
    let vr = group.add_instance(cfg).unwrap();
    let mut lvs_syncd = LvsSyncDaemon::new(&group, vr, ifname).unwrap();
    let mut vrrp = VrrpIo::open(group, &[ifname], lvs_syncd.hooks(KernelAddresses)).unwrap();
    let mut rt = Runtime::new(director(SyncParams::default()), Vec::new());
    let clock = MonotonicClock::default();
    vrrp.start(clock.now());
    let start = StdInstant::now();
    let mut stopped = false;
    while start.elapsed() < Duration::from_secs(20) {
        let now = clock.now();
        if !stopped && stop.load(Ordering::Relaxed) {
            vrrp.shutdown(now);
            stopped = true;
        }
        rt.poll_once(now).unwrap();
        vrrp.poll(now);
        lvs_syncd.apply(&mut rt).unwrap();
        let d = rt.director();
        let now_shown = Shown {
            state: vrrp.group().instance(vr).map(|i| i.state()),
            master: d.sync_daemon(Role::Master).map(|c| c.syncid),
            backup: d.sync_daemon(Role::Backup).map(|c| c.syncid),
        };
        *shown.lock().unwrap() = now_shown;
        if stopped && now_shown.master.is_none() && now_shown.backup.is_none() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_sync_daemons_follow_vrrp_as_keepalived_switches_them() {
    if !can_run() {
        return;
    }
    let (m, b) = pair("sv");
    let (a_shown, b_shown) = (Mutex::new(Shown::default()), Mutex::new(Shown::default()));
    let (a_stop, b_stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let start = StdInstant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(5), "{what}: {:?} {:?}", a_shown, b_shown);
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let master =
        |s: &Mutex<Shown>| *s.lock().unwrap() == Shown { state: Some(State::Master), master: Some(51), backup: None };
    let backup =
        |s: &Mutex<Shown>| *s.lock().unwrap() == Shown { state: Some(State::Backup), master: None, backup: Some(51) };
    std::thread::scope(|s| {
        s.spawn(|| vrrp_director(&m, MASTER_IF, "10.81.0.1", 150, &a_shown, &a_stop));
        s.spawn(|| vrrp_director(&b, BACKUP_IF, "10.81.0.2", 100, &b_shown, &b_stop));
        // The master daemon where the instance is master, the backup daemon elsewhere, each
        // with the VRID as syncid.
        wait("150 master, 100 backup", &|| master(&a_shown) && backup(&b_shown));
        // The master stops (priority 0): the other takes over and switches its daemons; the
        // stopped one runs none.
        a_stop.store(true, Ordering::Relaxed);
        wait("the 100 takes over", &|| master(&b_shown));
        wait("the stopped one runs no daemon", &|| {
            *a_shown.lock().unwrap() == Shown { state: Some(State::Init), master: None, backup: None }
        });
        b_stop.store(true, Ordering::Relaxed);
    });
    // Both loops ended, which they do only with no daemon left.
    assert_eq!(b_shown.lock().unwrap().master, None);
}
