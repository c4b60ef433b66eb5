//! VRRP on a real segment, against keepalived (root; CI runs as root). Each test builds its own
//! network namespaces — a switch (a bridge without multicast snooping) and one namespace per
//! router, joined to it by a veth pair whose router end is `vrrp0` — and puts lvs routers
//! (`VrrpIo` in a thread of this process, owning the virtual address on `vrrp0` through
//! `KernelAddresses`) and keepalived 2.2 (`--vrrp`, one process per namespace) in one virtual
//! router. A capture on the switch's ports sees what each router sends, with the time it
//! arrived there.
//!
//! Who is master is read three ways: the lvs routers' notifications, keepalived's own log
//! ("Entering MASTER STATE"), and which namespace holds the virtual address. Takeover times
//! are measured on the wire, from the moment the master is killed (its sockets closed without
//! a priority-0 advertisement, or keepalived's VRRP process sent SIGKILL) to the first
//! advertisement and the first gratuitous ARP / neighbour advertisement of the new master,
//! and must be within the RFC's Master_Down_Interval + 50 ms.
//!
//! With `LVS_VRRP_RECORD=DIR` the keepalived tests also write keepalived's advertisements to
//! `DIR/keepalived-*.pcap`; that is how `tests/data/vrrp/` was made (see its README).
//!
//! Namespaces, processes and files are removed when a test ends, also on failure. Without root
//! or keepalived these tests fail under CI and say they were skipped elsewhere.

#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/root.rs"]
mod root;

use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use lvs::core::vrrp::{virtual_mac, AddressChange, Config, Event, Group, Repr, Version, PROTO};
use lvs::core::wire::{self, Frame, DEFAULT_HEADROOM};
use lvs::core::{Af, Instant};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::io::PacketIo;
use lvs::dataplane::pcap::CaptureWriter;
use lvs::dataplane::runtime::{MonotonicClock, StopHandle};
use lvs::dataplane::vrrp::{interface_addr, Hooks, KernelAddresses, Origin, VrrpIo, VrrpIoStats};
use netns::Netns;

fn can_run() -> bool {
    root::can_run(true, &["ip", "sysctl", "keepalived", "kill"])
}

/// The router end of each veth pair.
const IF: &str = "vrrp0";
const VRID: u8 = 51;
const VIP4: &str = "10.112.0.100";
const VIP6: &str = "fd00:112::100";

/// Writes a line the test harness does not capture.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Polls `f` every 5 ms until it holds or `limit` passes; whether it held.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = StdInstant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How the virtual router runs: version, family, interval, multicast or unicast.
#[derive(Clone, Copy, Debug)]
struct Mode {
    version: Version,
    v6: bool,
    /// Advertisement interval in centiseconds.
    advert_cs: u16,
    unicast: bool,
}

impl Mode {
    const V2: Mode = Mode { version: Version::V2, v6: false, advert_cs: 100, unicast: false };
    const V3: Mode = Mode { version: Version::V3, v6: false, advert_cs: 10, unicast: false };
    const V3_6: Mode = Mode { version: Version::V3, v6: true, advert_cs: 10, unicast: false };

    fn name(&self) -> String {
        let v = if self.version == Version::V2 { 2 } else { 3 };
        let fam = if self.v6 { "ipv6" } else { "ipv4" };
        let cast = if self.unicast { " unicast" } else { "" };
        format!("v{v} {fam}{cast}, advert_int {} ms", self.advert().as_millis())
    }

    fn advert(&self) -> Duration {
        Duration::from_millis(u64::from(self.advert_cs) * 10)
    }

    fn vip(&self) -> IpAddr {
        if self.v6 { VIP6 } else { VIP4 }.parse().unwrap()
    }

    /// Skew_Time of a router of priority `prio` (RFC 5798 §6.1; RFC 3768: (256 − Priority) /
    /// 256 seconds).
    fn skew(&self, prio: u8) -> Duration {
        let unit = if self.version == Version::V2 { Duration::from_secs(1) } else { self.advert() };
        unit * (256 - u32::from(prio)) / 256
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
    fn mdi(&self, prio: u8) -> Duration {
        self.advert() * 3 + self.skew(prio)
    }
}

/// The IPv4 address of router `i` on the segment.
fn router_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 112, 0, 10 + i as u8)
}

/// Frames captured on the switch: when, from which router, what.
#[derive(Clone, Debug)]
struct Seen {
    at: StdInstant,
    router: usize,
    data: Vec<u8>,
}

/// What a captured frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A VRRP advertisement with this priority.
    Advert(u8),
    /// A gratuitous ARP or unsolicited neighbour advertisement for this address.
    Announce(IpAddr),
    Other,
}

fn kind(f: &[u8]) -> Kind {
    if f.get(12..14) == Some(&[0x08, 0x06]) && f.len() >= 42 {
        // Gratuitous: the sender names its own address as the target. A host's kernel asking
        // for a neighbour (its own MAC, another address) announces nothing.
        let (spa, tpa): ([u8; 4], [u8; 4]) = (f[28..32].try_into().unwrap(), f[38..42].try_into().unwrap());
        return if spa == tpa { Kind::Announce(IpAddr::from(spa)) } else { Kind::Other };
    }
    let Ok(m) = wire::parse(f) else { return Kind::Other };
    let l4 = usize::from(m.l4);
    match m.proto {
        PROTO => f.get(l4 + 2).map_or(Kind::Other, |p| Kind::Advert(*p)),
        58 if f.get(l4) == Some(&136) && f.len() >= l4 + 24 => {
            let target: [u8; 16] = f[l4 + 8..l4 + 24].try_into().unwrap();
            Kind::Announce(IpAddr::from(target))
        }
        _ => Kind::Other,
    }
}

/// A capture on each port of the switch, in a thread of its own.
struct Capture {
    frames: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(sw: &str, ports: usize) -> Capture {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (sw, out, done) = (sw.to_string(), frames.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            lvs::dataplane::netns::enter(&sw).unwrap();
            // Promiscuous: unicast advertisements are for another MAC than the switch port's.
            let cfg = AfPacketConfig { promisc: true, block_size: 1 << 16, block_nr: 8, ..AfPacketConfig::default() };
            let mut socks: Vec<AfPacket> = (0..ports).map(|i| AfPacket::open(&format!("p{i}"), cfg).unwrap()).collect();
            let mut pool: Vec<Frame> = (0..64).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 2048)).collect();
            ready_tx.send(()).unwrap();
            while !done.load(Ordering::Relaxed) {
                let mut got = 0;
                for (router, s) in socks.iter_mut().enumerate() {
                    let n = s.recv(Instant::ZERO, &mut pool).unwrap();
                    let at = StdInstant::now();
                    let mut out = out.lock().unwrap();
                    for f in &pool[..n] {
                        if kind(f.data()) != Kind::Other {
                            out.push(Seen { at, router, data: f.data().to_vec() });
                        }
                    }
                    got += n;
                }
                if got == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("capture started");
        Capture { frames, stop, thread: Some(thread) }
    }

    fn frames(&self) -> Vec<Seen> {
        self.frames.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A switch and `n` routers, each with `10.112.0.(10 + i)/24` and an IPv6 link-local address
/// on `vrrp0`, and the capture on the switch's ports. Fields drop in order: the capture first.
struct Segment {
    capture: Capture,
    routers: Vec<Netns>,
    /// The switch, kept until the segment goes.
    _sw: Netns,
}

impl Segment {
    fn new(tag: &str, n: usize) -> Segment {
        let sw = Netns::create(&format!("lvsvr-{tag}-sw")).unwrap();
        sw.exec("ip", &["link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]).unwrap();
        sw.exec("ip", &["link", "set", "br0", "up"]).unwrap();
        let mut routers = Vec::new();
        for i in 0..n {
            let r = Netns::create(&format!("lvsvr-{tag}-{i}")).unwrap();
            for key in ["all", "default"] {
                r.exec("sysctl", &["-qw", &format!("net.ipv6.conf.{key}.accept_dad=0")]).unwrap();
            }
            let port = format!("p{i}");
            r.exec("ip", &["link", "add", IF, "type", "veth", "peer", "name", &port, "netns", sw.name()]).unwrap();
            sw.exec("ip", &["link", "set", &port, "master", "br0", "up"]).unwrap();
            r.exec("ip", &["addr", "add", &format!("{}/24", router_v4(i)), "dev", IF]).unwrap();
            r.exec("ip", &["link", "set", IF, "up"]).unwrap();
            routers.push(r);
        }
        for r in &routers {
            let up = wait_until(Duration::from_secs(5), || {
                r.exec("ip", &["-6", "addr", "show", "dev", IF, "scope", "link"]).unwrap().contains("fe80::")
            });
            assert!(up, "no link-local address in {}", r.name());
        }
        let capture = Capture::start(sw.name(), n);
        Segment { capture, routers, _sw: sw }
    }

    /// Whether router `i` holds the virtual address.
    fn has_vip(&self, i: usize, vip: IpAddr) -> bool {
        let out = self.routers[i].exec("ip", &["-o", "addr", "show", "dev", IF]).unwrap();
        out.split_whitespace().any(|w| w.split('/').next() == Some(vip.to_string().as_str()))
    }

    /// Waits until router `i`, and no other, holds the virtual address.
    fn wait_vip(&self, i: usize, vip: IpAddr, limit: Duration) {
        let held = wait_until(limit, || (0..self.routers.len()).all(|k| self.has_vip(k, vip) == (k == i)));
        let who: Vec<usize> = (0..self.routers.len()).filter(|&k| self.has_vip(k, vip)).collect();
        assert!(held, "{vip} should be on router {i} alone, is on {who:?}");
    }
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("lvs-vrrp-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One router's part in the virtual router.
#[derive(Clone, Debug)]
struct Spec {
    mode: Mode,
    /// Router index on the segment.
    me: usize,
    priority: u8,
    /// The other routers (their IPv4 addresses are the unicast peers).
    others: Vec<usize>,
    nopreempt: bool,
    /// lvs only: send from the virtual router MAC.
    vmac: bool,
}

impl Spec {
    fn new(mode: Mode, me: usize, priority: u8, routers: usize) -> Spec {
        Spec { mode, me, priority, others: (0..routers).filter(|&k| k != me).collect(), nopreempt: false, vmac: false }
    }

    fn peers(&self) -> Vec<IpAddr> {
        if self.mode.unicast {
            self.others.iter().map(|&k| IpAddr::V4(router_v4(k))).collect()
        } else {
            Vec::new()
        }
    }

    /// The lvs instance, its primary address that of the interface.
    fn config(&self, primary: IpAddr) -> Config {
        let mut c = Config::new(VRID, primary, vec![self.mode.vip()]);
        c.version = self.mode.version;
        c.priority = self.priority;
        c.advert_int = self.mode.advert();
        c.unicast_peers = self.peers();
        c.preempt = !self.nopreempt;
        c.use_vmac = self.vmac;
        c
    }

    /// The same as keepalived.conf.
    fn keepalived_conf(&self) -> String {
        let m = &self.mode;
        let advert = if m.advert_cs % 100 == 0 {
            (m.advert_cs / 100).to_string()
        } else {
            format!("{}.{:02}", m.advert_cs / 100, m.advert_cs % 100).trim_end_matches('0').to_string()
        };
        let version = if m.version == Version::V2 { 2 } else { 3 };
        let mut extra = String::new();
        if self.nopreempt {
            extra.push_str("    nopreempt\n");
        }
        if m.unicast {
            extra.push_str(&format!("    unicast_src_ip {}\n    unicast_peer {{\n", router_v4(self.me)));
            for p in self.peers() {
                extra.push_str(&format!("        {p}\n"));
            }
            extra.push_str("    }\n");
        }
        let prefix = if m.v6 { 128 } else { 32 };
        format!(
            "global_defs {{\n    router_id lvs-test-{me}\n}}\n\
             vrrp_instance VI_1 {{\n    state BACKUP\n    interface {IF}\n    virtual_router_id {VRID}\n    \
             priority {prio}\n    advert_int {advert}\n    version {version}\n{extra}    \
             virtual_ipaddress {{\n        {vip}/{prefix}\n    }}\n}}\n",
            me = self.me,
            prio = self.priority,
            vip = m.vip(),
        )
    }
}

/// The lvs side's hooks: the address on the kernel interface, every notification logged.
struct Recorder {
    kernel: KernelAddresses,
    log: Arc<Mutex<Vec<(StdInstant, Event)>>>,
}

impl Hooks for Recorder {
    fn add_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> std::io::Result<()> {
        self.kernel.add_addresses(at, change)
    }

    fn remove_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> std::io::Result<()> {
        self.kernel.remove_addresses(at, change)
    }

    fn notify(&mut self, _at: &Origin<'_>, event: Event, _priority: u8) {
        self.log.lock().unwrap().push((StdInstant::now(), event));
    }
}

/// How an lvs router ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// `VrrpIo::shutdown`: priority 0, addresses given up.
    Shutdown,
    /// Dropped: sockets closed, nothing sent (a crash, as peers see it).
    Kill,
}

/// What an lvs router did.
#[derive(Clone, Copy, Debug)]
struct Ended {
    /// When it was told to end.
    at: StdInstant,
    io: VrrpIoStats,
}

/// An lvs router: a `VrrpIo` with one instance in a thread inside its namespace.
struct Lvs {
    stop: StopHandle,
    end: Option<mpsc::Sender<End>>,
    thread: Option<JoinHandle<Ended>>,
    log: Arc<Mutex<Vec<(StdInstant, Event)>>>,
}

impl Lvs {
    fn start(seg: &Segment, spec: &Spec) -> Lvs {
        let ns = seg.routers[spec.me].name().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (end_tx, end_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (spec, hooks_log, stop) = (spec.clone(), log.clone(), StopHandle::default());
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let opened = (|| -> Result<VrrpIo<Recorder>, Box<dyn std::error::Error>> {
                lvs::dataplane::netns::enter(&ns)?;
                let af = if spec.mode.v6 { Af::V6 } else { Af::V4 };
                let primary = interface_addr(IF, af)?.ok_or("no address on the interface")?;
                let mut group = Group::new();
                group.add_instance(spec.config(primary))?;
                Ok(VrrpIo::open(group, &[IF], Recorder { kernel: KernelAddresses, log: hooks_log })?)
            })();
            let mut io = match opened {
                Ok(io) => io,
                Err(e) => {
                    ready_tx.send(Err(e.to_string())).unwrap();
                    panic!("lvs router in {ns}: {e}");
                }
            };
            ready_tx.send(Ok(())).unwrap();
            let clock = MonotonicClock::default();
            io.start(clock.now());
            io.run(&clock, &stopped).unwrap();
            let at = StdInstant::now();
            if end_rx.recv() != Ok(End::Kill) {
                io.shutdown(clock.now());
            }
            Ended { at, io: io.stats() }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("lvs router started").unwrap();
        Lvs { stop, end: Some(end_tx), thread: Some(thread), log }
    }

    /// The last state the router entered.
    fn state(&self) -> Option<Event> {
        self.log.lock().unwrap().last().map(|(_, e)| *e)
    }

    fn entered(&self, e: Event) -> usize {
        self.log.lock().unwrap().iter().filter(|(_, x)| *x == e).count()
    }

    fn wait_state(&self, e: Event, limit: Duration) {
        let ok = wait_until(limit, || self.state() == Some(e));
        assert!(ok, "lvs router did not enter {e:?} within {limit:?}: {:?}", self.log.lock().unwrap());
    }

    fn stop(mut self, how: End) -> Ended {
        self.end.take().unwrap().send(how).unwrap();
        self.stop.stop();
        let ended = self.thread.take().unwrap().join().unwrap();
        let io = ended.io;
        assert_eq!(
            (io.refused, io.malformed, io.recv_errors, io.send_errors, io.announce_errors, io.hook_errors),
            (0, 0, 0, 0, 0, 0),
            "{io:?}"
        );
        assert!(io.sent > 0 || io.received > 0, "{io:?}");
        ended
    }
}

impl Drop for Lvs {
    fn drop(&mut self) {
        drop(self.end.take());
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A keepalived VRRP daemon in a namespace, logging to a file.
struct Keepalived {
    child: Option<Child>,
    vrrp_pid: PathBuf,
    log: PathBuf,
}

impl Keepalived {
    fn start(seg: &Segment, dir: &Path, spec: &Spec) -> Keepalived {
        let name = format!("ka{}", spec.me);
        let conf = dir.join(format!("{name}.conf"));
        fs::write(&conf, spec.keepalived_conf()).unwrap();
        let (pid, vrrp_pid, log) =
            (dir.join(format!("{name}.pid")), dir.join(format!("{name}-vrrp.pid")), dir.join(format!("{name}.log")));
        let out = fs::File::create(&log).unwrap();
        let child = seg.routers[spec.me]
            .command("keepalived")
            .args(["--vrrp", "--dont-fork", "--dont-respawn", "--log-console", "--log-detail", "--no-syslog"])
            .arg("--use-file")
            .arg(&conf)
            .arg("--pid")
            .arg(&pid)
            .arg("--vrrp_pid")
            .arg(&vrrp_pid)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let k = Keepalived { child: Some(child), vrrp_pid, log };
        let up = wait_until(Duration::from_secs(5), || !k.states().is_empty());
        assert!(up, "keepalived did not start:\n{}", k.log_text());
        k
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The states entered, in order, as its log says.
    fn states(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter_map(|l| l.split("Entering ").nth(1))
            .filter_map(|s| s.split(" STATE").next())
            .map(str::to_string)
            .collect()
    }

    fn state(&self) -> Option<String> {
        self.states().pop()
    }

    fn entered(&self, s: &str) -> usize {
        self.states().iter().filter(|x| *x == s).count()
    }

    fn wait_state(&self, s: &str, limit: Duration) {
        let ok = wait_until(limit, || self.state().as_deref() == Some(s));
        assert!(ok, "keepalived did not enter {s} within {limit:?}:\n{}", self.log_text());
    }

    fn signal(sig: &str, pid: &str) {
        let out = Command::new("kill").args([sig, pid.trim()]).output().unwrap();
        assert!(out.status.success(), "kill {sig} {pid}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Waits (at most 5 s) for the daemon to exit.
    fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let gone = wait_until(Duration::from_secs(5), || c.try_wait().unwrap().is_some());
            if !gone {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// SIGTERM: keepalived sends priority 0 and removes its addresses.
    fn stop(&mut self) -> StdInstant {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let at = StdInstant::now();
        Keepalived::signal("-TERM", &pid);
        self.reap();
        at
    }

    /// SIGKILL to the VRRP process: nothing more is sent (with `--dont-respawn` the parent then
    /// exits too).
    fn kill(&mut self) -> StdInstant {
        let pid = fs::read_to_string(&self.vrrp_pid).unwrap();
        let at = StdInstant::now();
        Keepalived::signal("-KILL", &pid);
        self.reap();
        at
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            if let Ok(pid) = fs::read_to_string(&self.vrrp_pid) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).output();
            }
            let _ = Command::new("kill").args(["-KILL", &c.id().to_string()]).output();
        }
        self.reap();
    }
}

/// How long a takeover took, on the wire.
#[derive(Clone, Copy, Debug)]
struct Takeover {
    /// From the kill to the new master's first advertisement.
    advert: Duration,
    /// From the dead master's last advertisement to the new master's first.
    since_last: Duration,
    /// From the kill to the new master's first announcement of the virtual address.
    announce: Duration,
}

/// Finds, in what the switch saw, how router `to` took over from router `from` killed at `t0`.
fn takeover(seg: &Segment, from: usize, to: usize, t0: StdInstant, vip: IpAddr) -> Takeover {
    let mut found = None;
    wait_until(Duration::from_secs(5), || {
        let frames = seg.capture.frames();
        let last = frames
            .iter()
            .rev()
            .find(|s| s.router == from && s.at <= t0 && matches!(kind(&s.data), Kind::Advert(p) if p > 0))
            .map(|s| s.at);
        let after = |k: &dyn Fn(Kind) -> bool| {
            frames.iter().find(|s| s.router == to && s.at > t0 && k(kind(&s.data))).map(|s| s.at)
        };
        let advert = after(&|k| matches!(k, Kind::Advert(p) if p > 0));
        let announce = after(&|k| k == Kind::Announce(vip));
        if let (Some(last), Some(advert), Some(announce)) = (last, advert, announce) {
            found = Some(Takeover { advert: advert - t0, since_last: advert - last, announce: announce - t0 });
        }
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no takeover from router {from} to {to} seen on the switch"))
}

/// Reports how long after router `from` was stopped at `t0` (a priority-0 advertisement)
/// router `to` sent its first advertisement, and checks it against Skew_Time + 50 ms.
fn check_handover(seg: &Segment, what: &str, mode: Mode, prio: u8, from: usize, to: usize, t0: StdInstant) {
    let mut first = None;
    wait_until(Duration::from_secs(2), || {
        let frames = seg.capture.frames();
        let zero = frames.iter().find(|s| s.router == from && s.at > t0 && kind(&s.data) == Kind::Advert(0));
        first = zero.and_then(|z| {
            frames
                .iter()
                .find(|s| s.router == to && s.at > z.at && matches!(kind(&s.data), Kind::Advert(p) if p > 0))
                .map(|s| s.at)
        });
        first.is_some()
    });
    let at =
        first.unwrap_or_else(|| panic!("{what}: no priority 0 from router {from}, then an advertisement from {to}"));
    let skew = mode.skew(prio);
    say(&format!(
        "handover ({}) {what}: first advertisement {:.1} ms after the stop; Skew_Time {:.1} ms",
        mode.name(),
        (at - t0).as_secs_f64() * 1000.0,
        skew.as_secs_f64() * 1000.0
    ));
    assert!(at - t0 <= skew + Duration::from_millis(50), "{what}: {:?} over {skew:?}", at - t0);
}

/// Reports a takeover and checks it against Master_Down_Interval + 50 ms.
fn check_takeover(what: &str, mode: Mode, prio: u8, t: Takeover) {
    let mdi = mode.mdi(prio);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    say(&format!(
        "takeover ({}) {what}: first advertisement {:.1} ms after the kill, {:.1} ms after the master's last \
         one; first announcement {:.1} ms; Master_Down_Interval {:.1} ms",
        mode.name(),
        ms(t.advert),
        ms(t.since_last),
        ms(t.announce),
        ms(mdi)
    ));
    let bound = mdi + Duration::from_millis(50);
    assert!(t.advert <= bound, "{what}: {t:?} over {bound:?}");
    assert!(t.announce <= bound, "{what}: {t:?} over {bound:?}");
    // Not early either: the backup waited for the whole interval after the last advertisement,
    // less the capture's imprecision (its ring hands frames up within 2 ms, and a capture
    // thread the scheduler holds back reads the last advertisement late).
    assert!(t.since_last + Duration::from_millis(20) >= mdi, "{what}: {t:?} before {mdi:?}");
    assert!(t.since_last <= bound, "{what}: {t:?} over {bound:?}");
}

/// With `LVS_VRRP_RECORD=DIR`, writes router `k`'s advertisements (at most `max`) to
/// `DIR/keepalived-<name>.pcap`.
fn record(seg: &Segment, k: usize, name: &str, max: usize) {
    let Some(dir) = std::env::var_os("LVS_VRRP_RECORD") else { return };
    let path = Path::new(&dir).join(format!("keepalived-{name}.pcap"));
    let frames = seg.capture.frames();
    let mine: Vec<&Seen> =
        frames.iter().filter(|s| s.router == k && matches!(kind(&s.data), Kind::Advert(_))).collect();
    let mut pick: Vec<&Seen> = mine.iter().filter(|s| kind(&s.data) != Kind::Advert(0)).take(max).copied().collect();
    pick.extend(mine.iter().find(|s| kind(&s.data) == Kind::Advert(0)));
    let Some(first) = pick.first().map(|s| s.at) else { return };
    let mut w = CaptureWriter::create(&path).unwrap();
    for s in pick {
        w.write((s.at - first).as_nanos() as u64, &s.data).unwrap();
    }
    say(&format!("recorded {}", path.display()));
}

/// Every advertisement router `k` sent decodes as lvs reads it, with the expected version,
/// VRID and address (keepalived's as much as ours).
fn check_adverts(seg: &Segment, k: usize, mode: Mode) {
    let frames = seg.capture.frames();
    let mut n = 0;
    for s in frames.iter().filter(|s| s.router == k && matches!(kind(&s.data), Kind::Advert(_))) {
        let m = wire::parse(&s.data).unwrap();
        let payload = &s.data[usize::from(m.l4)..usize::from(m.l3) + usize::from(m.ip_len)];
        let r = Repr::parse(payload, m.src, m.dst).unwrap_or_else(|e| panic!("router {k}: {}", e.as_str()));
        assert_eq!((r.version, r.vrid), (mode.version, VRID));
        assert_eq!(r.addrs.iter().collect::<Vec<_>>(), [mode.vip()]);
        let interval = if mode.version == Version::V2 { mode.advert_cs / 100 } else { mode.advert_cs };
        assert_eq!(r.interval, interval);
        n += 1;
    }
    assert!(n > 0, "router {k} sent no advertisement");
}

/// Generous waits: an election takes Master_Down_Interval; the rest is slack for a busy machine.
fn election(mode: Mode, prio: u8) -> Duration {
    mode.mdi(prio) + Duration::from_secs(2)
}

/// lvs (priority 150) against keepalived (100): lvs becomes master; stopped, keepalived takes
/// over after its Skew_Time; restarted, lvs preempts; killed, keepalived takes over after
/// Master_Down_Interval; restarted with `nopreempt`, lvs stays backup.
fn lvs_over_keepalived(tag: &str, mode: Mode) {
    if !can_run() {
        return;
    }
    let seg = Segment::new(tag, 2);
    let dir = TempDir::new(tag);
    let vip = mode.vip();
    let (lvs, ka) = (Spec::new(mode, 0, 150, 2), Spec::new(mode, 1, 100, 2));
    // lvs starts first, so that it is not keepalived's shorter wait that elects a master.
    let r = Lvs::start(&seg, &lvs);
    let k = Keepalived::start(&seg, &dir.0, &ka);
    r.wait_state(Event::Master, election(mode, 150));
    seg.wait_vip(0, vip, Duration::from_secs(2));
    assert_eq!(k.state().as_deref(), Some("BACKUP"));
    assert_eq!(k.entered("MASTER"), 0, "{}", k.log_text());

    // Stopped: priority 0, and keepalived takes over after Skew_Time.
    let t0 = r.stop(End::Shutdown).at;
    k.wait_state("MASTER", mode.skew(100) + Duration::from_secs(1));
    check_handover(&seg, "keepalived from a stopped lvs", mode, 100, 0, 1, t0);
    seg.wait_vip(1, vip, Duration::from_secs(1));

    // Restarted: lvs preempts keepalived.
    let r = Lvs::start(&seg, &lvs);
    r.wait_state(Event::Master, election(mode, 150));
    k.wait_state("BACKUP", Duration::from_secs(1));
    seg.wait_vip(0, vip, Duration::from_secs(1));

    // Killed: keepalived takes over after Master_Down_Interval. The dead router's address
    // stays where a crash leaves it.
    let t0 = r.stop(End::Kill).at;
    k.wait_state("MASTER", election(mode, 100));
    assert!(t0.elapsed() + Duration::from_millis(50) >= mode.mdi(100), "keepalived took over early");
    assert!(seg.has_vip(1, vip));

    // Restarted with nopreempt: lvs stays backup (and gives up what the crash left).
    let r = Lvs::start(&seg, &Spec { nopreempt: true, ..lvs.clone() });
    std::thread::sleep(mode.mdi(150) + mode.advert() * 3);
    assert_eq!(r.state(), Some(Event::Backup));
    assert_eq!(r.entered(Event::Master), 0);
    assert_eq!(k.state().as_deref(), Some("MASTER"));
    seg.wait_vip(1, vip, Duration::from_secs(1));
    r.stop(End::Shutdown);
    check_adverts(&seg, 0, mode);
    check_adverts(&seg, 1, mode);
    drop(k);
}

/// keepalived (150) against lvs (100): keepalived is master, lvs backup; keepalived stopped,
/// lvs takes over after its Skew_Time; restarted, keepalived preempts; keepalived killed, lvs
/// takes over (the takeover is timed).
fn keepalived_over_lvs(tag: &str, mode: Mode) {
    if !can_run() {
        return;
    }
    let seg = Segment::new(tag, 2);
    let dir = TempDir::new(tag);
    let vip = mode.vip();
    let (ka, lvs) = (Spec::new(mode, 0, 150, 2), Spec::new(mode, 1, 100, 2));
    let mut k = Keepalived::start(&seg, &dir.0, &ka);
    k.wait_state("MASTER", election(mode, 150));
    let r = Lvs::start(&seg, &lvs);
    r.wait_state(Event::Backup, Duration::from_secs(1));
    seg.wait_vip(0, vip, Duration::from_secs(1));
    std::thread::sleep(mode.mdi(100) + mode.advert());
    assert_eq!(r.entered(Event::Master), 0, "lvs took over from a live master");

    // keepalived stopped: priority 0, lvs takes over after Skew_Time.
    let t0 = k.stop();
    r.wait_state(Event::Master, mode.skew(100) + Duration::from_secs(1));
    check_handover(&seg, "lvs from a stopped keepalived", mode, 100, 0, 1, t0);
    seg.wait_vip(1, vip, Duration::from_secs(1));

    // keepalived restarted: it preempts lvs.
    let mut k = Keepalived::start(&seg, &dir.0, &ka);
    k.wait_state("MASTER", election(mode, 150));
    r.wait_state(Event::Backup, Duration::from_secs(1));
    seg.wait_vip(0, vip, Duration::from_secs(1));

    // keepalived killed: lvs takes over after Master_Down_Interval.
    let t0 = k.kill();
    r.wait_state(Event::Master, election(mode, 100));
    check_takeover("lvs from a killed keepalived", mode, 100, takeover(&seg, 0, 1, t0, vip));
    assert!(seg.has_vip(1, vip));
    r.stop(End::Shutdown);
    check_adverts(&seg, 0, mode);
    check_adverts(&seg, 1, mode);
    let fam = if mode.v6 { "ipv6" } else { "ipv4" };
    let cast = if mode.unicast { "-unicast" } else { "" };
    record(&seg, 0, &format!("v{}-{fam}{cast}-{}ms", mode.version.number(), mode.advert().as_millis()), 4);
}

#[test]
fn lvs_over_keepalived_v2_ipv4() {
    lvs_over_keepalived("lk2", Mode::V2);
}

#[test]
fn lvs_over_keepalived_v3_ipv4() {
    lvs_over_keepalived("lk3", Mode::V3);
}

#[test]
fn lvs_over_keepalived_v3_ipv6() {
    lvs_over_keepalived("lk6", Mode::V3_6);
}

#[test]
fn lvs_over_keepalived_v3_ipv4_unicast() {
    lvs_over_keepalived("lku", Mode { unicast: true, ..Mode::V3 });
}

#[test]
fn keepalived_over_lvs_v2_ipv4() {
    keepalived_over_lvs("kl2", Mode::V2);
}

#[test]
fn keepalived_over_lvs_v3_ipv4() {
    keepalived_over_lvs("kl3", Mode::V3);
}

#[test]
fn keepalived_over_lvs_v3_ipv6() {
    keepalived_over_lvs("kl6", Mode::V3_6);
}

#[test]
fn keepalived_over_lvs_v2_ipv4_unicast() {
    keepalived_over_lvs("klu", Mode { unicast: true, ..Mode::V2 });
}

/// Two lvs routers (150 and 100): the first is master; killed, the second takes over (timed);
/// restarted, the first preempts; stopped, the second takes over after its Skew_Time. With
/// `vmac`, both send their advertisements and announcements from the virtual router MAC.
fn two_lvs(tag: &str, mode: Mode, vmac: bool) {
    if !can_run() {
        return;
    }
    let seg = Segment::new(tag, 2);
    let vip = mode.vip();
    let (a, b) = (Spec { vmac, ..Spec::new(mode, 0, 150, 2) }, Spec { vmac, ..Spec::new(mode, 1, 100, 2) });
    let ra = Lvs::start(&seg, &a);
    let rb = Lvs::start(&seg, &b);
    ra.wait_state(Event::Master, election(mode, 150));
    rb.wait_state(Event::Backup, Duration::from_secs(1));
    seg.wait_vip(0, vip, Duration::from_secs(1));

    let t0 = ra.stop(End::Kill).at;
    rb.wait_state(Event::Master, election(mode, 100));
    check_takeover("lvs from a killed lvs", mode, 100, takeover(&seg, 0, 1, t0, vip));

    let ra = Lvs::start(&seg, &a);
    ra.wait_state(Event::Master, election(mode, 150));
    rb.wait_state(Event::Backup, Duration::from_secs(1));
    seg.wait_vip(0, vip, Duration::from_secs(1));

    let t0 = ra.stop(End::Shutdown).at;
    rb.wait_state(Event::Master, mode.skew(100) + Duration::from_secs(1));
    check_handover(&seg, "lvs from a stopped lvs", mode, 100, 0, 1, t0);
    seg.wait_vip(1, vip, Duration::from_secs(1));
    rb.stop(End::Shutdown);
    if vmac {
        check_vmac(&seg, mode);
    }
}

/// Every advertisement and announcement left from the virtual router MAC, and the
/// announcements name it.
fn check_vmac(seg: &Segment, mode: Mode) {
    let vmac = virtual_mac(if mode.v6 { Af::V6 } else { Af::V4 }, VRID).0;
    let (mut adverts, mut announces) = (0, 0);
    for s in seg.capture.frames() {
        match kind(&s.data) {
            Kind::Advert(_) => adverts += 1,
            Kind::Announce(_) => {
                // ARP's sender hardware address; the NA's target link-layer address option.
                let named = if mode.v6 { &s.data[s.data.len() - 6..] } else { &s.data[22..28] };
                assert_eq!(named, vmac);
                announces += 1;
            }
            Kind::Other => continue,
        }
        assert_eq!(&s.data[6..12], vmac, "from router {}", s.router);
    }
    assert!(adverts > 0 && announces > 0);
}

#[test]
fn two_lvs_v3_ipv4_1s() {
    two_lvs("ll1", Mode { advert_cs: 100, ..Mode::V3 }, false);
}

#[test]
fn two_lvs_v3_ipv6_100ms() {
    two_lvs("ll6", Mode::V3_6, false);
}

#[test]
fn two_lvs_vmac_v3_ipv4() {
    two_lvs("llm", Mode::V3, true);
}

#[test]
fn two_lvs_vmac_v3_ipv6() {
    two_lvs("llw", Mode::V3_6, true);
}

/// Two lvs routers (150 and 100) and keepalived (120): the first lvs is master; killed,
/// keepalived wins the election (its skew is shorter) and the other lvs stays backup;
/// restarted, the first lvs preempts keepalived; stopped, keepalived takes over again.
#[test]
fn three_way_election() {
    if !can_run() {
        return;
    }
    let mode = Mode::V3;
    let seg = Segment::new("l3w", 3);
    let dir = TempDir::new("l3w");
    let vip = mode.vip();
    let (a, ka, c) = (Spec::new(mode, 0, 150, 3), Spec::new(mode, 1, 120, 3), Spec::new(mode, 2, 100, 3));
    let ra = Lvs::start(&seg, &a);
    let rc = Lvs::start(&seg, &c);
    let mut k = Keepalived::start(&seg, &dir.0, &ka);
    ra.wait_state(Event::Master, election(mode, 150));
    seg.wait_vip(0, vip, Duration::from_secs(1));
    assert_eq!(k.state().as_deref(), Some("BACKUP"));
    assert_eq!(rc.state(), Some(Event::Backup));

    let t0 = ra.stop(End::Kill).at;
    k.wait_state("MASTER", election(mode, 120));
    check_takeover("keepalived from a killed lvs", mode, 120, takeover(&seg, 0, 1, t0, vip));
    std::thread::sleep(mode.advert() * 5);
    assert_eq!(rc.entered(Event::Master), 0, "the lowest priority never leads");

    let ra = Lvs::start(&seg, &a);
    ra.wait_state(Event::Master, election(mode, 150));
    k.wait_state("BACKUP", Duration::from_secs(1));

    let t0 = ra.stop(End::Shutdown).at;
    k.wait_state("MASTER", mode.skew(120) + Duration::from_secs(1));
    check_handover(&seg, "keepalived from a stopped lvs", mode, 120, 0, 1, t0);
    std::thread::sleep(mode.advert() * 5);
    assert_eq!(rc.entered(Event::Master), 0);
    assert_eq!(rc.state(), Some(Event::Backup));
    seg.wait_vip(1, vip, Duration::from_secs(1));
    rc.stop(End::Shutdown);
    k.stop();
}
