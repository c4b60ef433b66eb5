//! The failover lab (root): two directors — this library on AF_PACKET, each its own process so
//! that it can be SIGKILLed — keep each other's connections with the kernel's multicast sync,
//! and a client's long-lived TCP connections and UDP flow carry on through the fail-overs.
//!
//! ```text
//!              LAN: bridge br0                          sync link: bridge br1
//!   client ───┬── director A  eth0 192.0.2.3   sync0 10.81.0.1 ──┬── 224.0.0.81:8848
//!   192.0.2.2 ├── director B  eth0 192.0.2.4   sync0 10.81.0.2 ──┘
//!             └── rs1 rs2 rs3 (DR: 192.0.2.11-13, VIP on lo; NAT: 10.0.0.11-13)
//! ```
//!
//! The client reaches the VIP 203.0.113.100 through the next hop 192.0.2.1, and the NAT servers
//! route through 10.0.0.1: floating addresses of the active director. The directors'
//! namespaces do not forward, so their kernels stay out of the way of the packets the
//! directors take; each director is told its neighbours' MACs. Every namespace name carries the
//! lab's process id. Who is active is decided one of two ways ([`How`]):
//!
//! - **By hand** ([`How::Manual`]): no host owns the floating addresses; their permanent
//!   neighbour entries name the active director's MAC, and the lab re-points them (`ip neigh
//!   replace`, what a gratuitous ARP would do) right after it kills the active director. Both
//!   directors run master and backup daemons. A (forwarding) is killed and the next hops move
//!   to B (fail-over 1); then A restarts as a backup — with the library's full resync, or as a
//!   kernel backup without it — and B is killed 300 ms after A is up; the next hops move back
//!   to A (fail-over 2).
//! - **By VRRP** ([`How::Vrrp`]): each director runs a VRRPv3 virtual router beside its runtime
//!   (A priority 150, B 100, `preempt_delay` 500 ms), whose master puts the floating addresses
//!   on its `eth0`, so its namespace answers ARP for them, and announces them with gratuitous
//!   ARP; the sync daemons follow the VRRP state (keepalived's `lvs_sync_daemon`: master daemon
//!   on the master, backup daemon with full resync on the backup). Four changes: A is SIGKILLed
//!   and B takes over when A's advertisements stop (1); A restarts, takes B's whole table as
//!   a backup and preempts once its preempt delay is over (2); A's port on the bridge is set
//!   down, A goes to FAULT (its `eth0` is tracked) and B takes over (3); the port comes up, A
//!   returns to BACKUP, already resynced over the sync link, and preempts again (4).
//!
//! Throughout, the client sends a numbered 64-byte chunk every 20 ms on each stream and checks
//! every echo, and a capture on the directors' bridge ports times what they send: VRRP
//! advertisements, gratuitous ARP and the first frame each forwards to a real server.
//!
//! The lab's processes are this executable run again (`std::env::current_exe`) with
//! [`DIRECTOR_FLAG`] or [`SERVER_FLAG`]; a `main` calls [`sub_process`] first.

mod capture;
mod client;
mod director;
mod echo;
mod proc;
mod report;
#[path = "../vrrp_loop.rs"]
mod vrrp_loop;

use std::net::Ipv4Addr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lvs::core::neigh::MacAddr;

use crate::netns::Netns;
use capture::Capture;
use client::{Ctl, Kind};
use proc::LabProc;
use report::{Around, Step};
pub(crate) use report::{Cause, Report};

/// The first argument that makes this executable a director of the lab: then the mode (`dr`,
/// `nat`), the side (`a`, `b`), the sync roles (`master,backup`, `backup`, or `vrrp`: they
/// follow VRRP) and the resync rate (records per second, 0 for none); with `vrrp`, then the
/// priority, the advertisement interval and the preempt delay (milliseconds).
pub(crate) const DIRECTOR_FLAG: &str = "--lvs-failover-director";
/// The first argument that makes this executable a real server of the lab: then the server's
/// number (0, 1, 2) and the address its UDP echo binds.
pub(crate) const SERVER_FLAG: &str = "--lvs-failover-server";

/// The virtual address.
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
/// The port of the streams (TCP and UDP).
const STREAM_PORT: u16 = 80;
/// The port of the persistent service.
const PERSIST_PORT: u16 = 81;
/// The client's next hop to the VIP, floating: the active director's (VRRP), or owned by no
/// host and its neighbour entry re-pointed (by hand).
const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The NAT servers' default gateway, floating the same way.
const NAT_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A second address of the client's host: another client of the persistent service, there
/// first, so that the first choice of a director without the templates is not the client's
/// server.
const OTHER_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
/// The LAN interface in each director's namespace.
const LAN_IF: &str = "eth0";
/// The sync link's interface in each director's namespace.
const SYNC_IF: &str = "sync0";
/// The virtual router of the VRRP lab; also the sync daemons' syncid.
const VRID: u8 = 51;
/// How long a returning director accepts the lower-priority master before it preempts: its
/// full resync (a few milliseconds for the lab's table) arrives well within it.
const PREEMPT_DELAY: Duration = Duration::from_millis(500);
/// Real servers.
const SERVERS: usize = 3;
/// Records per second of a full resync.
const RESYNC_RATE: u32 = 10_000;

/// How long the streams run before a fail-over, and after one (at least: with VRRP, twice the
/// Master_Down_Interval and a second more, for TCP's retransmission back-off to bring every
/// stream back).
const STEADY: Duration = Duration::from_secs(1);
const AFTER: Duration = Duration::from_secs(2);
/// How long after the restarted director is up the other one is killed.
const REJOIN: Duration = Duration::from_millis(300);
/// The longest wait for anything the lab waits on (a process, a connection, the sync).
const PATIENCE: Duration = Duration::from_secs(5);

/// Forwarding method of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Direct routing.
    Dr,
    /// NAT.
    Nat,
}

impl Mode {
    /// Parses `dr` or `nat`.
    pub(crate) fn parse(s: &str) -> Option<Mode> {
        match s {
            "dr" => Some(Mode::Dr),
            "nat" => Some(Mode::Nat),
            _ => None,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Mode::Dr => "dr",
            Mode::Nat => "nat",
        }
    }

    /// `DR` or `NAT`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Dr => "DR",
            Mode::Nat => "NAT",
        }
    }
}

/// One of the two directors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

impl Side {
    fn parse(s: &str) -> Option<Side> {
        match s {
            "a" => Some(Side::A),
            "b" => Some(Side::B),
            _ => None,
        }
    }

    fn index(self) -> u8 {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Side::A => "A",
            Side::B => "B",
        }
    }

    fn mac(self) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, 0x0a + self.index()])
    }

    fn sync_mac(self) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0x81, 0x0a + self.index()])
    }

    /// The director's own address on the LAN.
    fn lan_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 3 + self.index())
    }

    /// The director's VRRP priority: A is the preferred master.
    fn priority(self) -> u8 {
        match self {
            Side::A => 150,
            Side::B => 100,
        }
    }
}

fn server_ip(mode: Mode, i: usize) -> Ipv4Addr {
    match mode {
        Mode::Dr => Ipv4Addr::new(192, 0, 2, 11 + i as u8),
        Mode::Nat => Ipv4Addr::new(10, 0, 0, 11 + i as u8),
    }
}

fn server_mac(i: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, 1 + i as u8])
}

/// The rules both directors load: the stream service over TCP and UDP, and a persistent one.
fn rules(mode: Mode) -> String {
    let flag = match mode {
        Mode::Dr => "-g",
        Mode::Nat => "-m",
    };
    let mut r = String::new();
    for (proto, port, extra) in [("-t", STREAM_PORT, ""), ("-u", STREAM_PORT, ""), ("-t", PERSIST_PORT, " -p 300")] {
        r.push_str(&format!("-A {proto} {VIP}:{port} -s rr{extra}\n"));
        for i in 0..SERVERS {
            r.push_str(&format!("-a {proto} {VIP}:{port} -r {}:{port} {flag} -w 1\n", server_ip(mode, i)));
        }
    }
    r
}

/// What the second fail-over's director starts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejoin {
    /// A backup that asks for the whole table (`SyncParams::resync_rate`).
    Resync,
    /// A backup as the kernel's: it learns only what the master sends from then on.
    KernelBackup,
}

/// Who decides which director is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    /// The lab, right after it kills the active director; the killed one comes back as
    /// `Rejoin` says before the second fail-over.
    Manual(Rejoin),
    /// VRRPv3 between the directors, advertising every `advert_int` (10 ms steps, at most
    /// 40.95 s); the sync daemons follow it.
    Vrrp {
        /// The advertisement interval.
        advert_int: Duration,
    },
}

impl How {
    /// Master_Down_Interval of director `side` (RFC 5798 §6.1: 3 × Advertisement_Interval +
    /// (256 − Priority) × Advertisement_Interval / 256), with VRRP.
    pub(crate) fn master_down_interval(self, side: Side) -> Option<Duration> {
        match self {
            How::Manual(_) => None,
            How::Vrrp { advert_int } => Some(advert_int * 3 + advert_int * (256 - u32::from(side.priority())) / 256),
        }
    }

    /// How long the streams run after a change.
    fn after(self) -> Duration {
        let mdi = self.master_down_interval(Side::B).unwrap_or_default();
        AFTER.max(mdi * 2 + Duration::from_secs(1))
    }
}

/// What a lab run does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FailoverConfig {
    /// Forwarding method.
    pub(crate) mode: Mode,
    /// Long-lived TCP connections to the stream port (one more goes to the persistent port).
    pub(crate) streams: usize,
    /// Who moves the active director.
    pub(crate) how: How,
}

/// If this process was started as one of the lab's processes, runs it and returns its exit
/// status.
pub(crate) fn sub_process() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(DIRECTOR_FLAG) => Some(director::main(&args[1..])),
        Some(SERVER_FLAG) => Some(echo::main(&args[1..])),
        _ => None,
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Sleeps `d`, in short steps so that an interrupt ends the lab soon.
fn pause(d: Duration, interrupt: &AtomicBool) -> Result<(), String> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if interrupt.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
    }
    Ok(())
}

/// The namespaces, links and real servers; dropping it removes them (processes first).
struct Lab {
    mode: Mode,
    servers: Vec<LabProc>,
    client: Netns,
    directors: [Netns; 2],
    server_ns: Vec<Netns>,
    /// The bridges' namespace, removed last.
    lan: Netns,
}

impl Lab {
    fn build(mode: Mode, how: How) -> Result<Lab, String> {
        let tag = format!("lvsfo{}", mode.tag());
        let lan = Netns::create(&format!("{tag}-lan")).map_err(err)?;
        lan.bridge("br0").map_err(err)?;
        lan.bridge("br1").map_err(err)?;
        let client = Netns::create(&format!("{tag}-cli")).map_err(err)?;
        lan.plug("br0", "v-c", &client, "eth0", CLIENT_MAC, 1).map_err(err)?;
        for ip in [CLIENT_IP, OTHER_CLIENT_IP] {
            client.exec("ip", &["addr", "add", &format!("{ip}/24"), "dev", "eth0"]).map_err(err)?;
        }
        let mut directors = Vec::new();
        for side in [Side::A, Side::B] {
            let ns = Netns::create(&format!("{tag}-{}", side.tag())).map_err(err)?;
            lan.plug("br0", &format!("v-{}", side.tag()), &ns, "eth0", side.mac(), 1).map_err(err)?;
            lan.plug("br1", &format!("s-{}", side.tag()), &ns, SYNC_IF, side.sync_mac(), 1).map_err(err)?;
            ns.exec("ip", &["addr", "add", &format!("{}/24", side.lan_ip()), "dev", "eth0"]).map_err(err)?;
            if mode == Mode::Nat {
                let own = format!("10.0.0.{}/24", 3 + side.index());
                ns.exec("ip", &["addr", "add", &own, "dev", "eth0"]).map_err(err)?;
            }
            let sync = format!("10.81.0.{}/24", 1 + side.index());
            ns.exec("ip", &["addr", "add", &sync, "dev", SYNC_IF]).map_err(err)?;
            ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"]).map_err(err)?;
            directors.push(ns);
        }
        let mut server_ns = Vec::new();
        for i in 0..SERVERS {
            let ns = Netns::create(&format!("{tag}-rs{}", i + 1)).map_err(err)?;
            lan.plug("br0", &format!("v-r{}", i + 1), &ns, "eth0", server_mac(i), 1).map_err(err)?;
            let gateway = (mode == Mode::Nat).then_some(NAT_GATEWAY);
            ns.real_server(server_ip(mode, i), gateway).map_err(err)?;
            if mode == Mode::Dr {
                ns.exec("ip", &["addr", "add", &format!("{VIP}/32"), "dev", "lo"]).map_err(err)?;
            }
            server_ns.push(ns);
        }
        let [a, b]: [Netns; 2] = directors.try_into().map_err(|_| "two directors")?;
        let mut lab = Lab { mode, servers: Vec::new(), client, directors: [a, b], server_ns, lan };
        if let How::Manual(_) = how {
            lab.point_to(Side::A)?;
        }
        for (i, ns) in lab.server_ns.iter().enumerate() {
            // DR servers answer from the VIP, NAT servers from their own address.
            let udp = match mode {
                Mode::Dr => VIP,
                Mode::Nat => server_ip(mode, i),
            };
            lab.servers.push(LabProc::start(ns, &[SERVER_FLAG, &i.to_string(), &udp.to_string()])?);
        }
        Ok(lab)
    }

    /// Routes the client's connections to the VIP from `src`.
    fn client_source(&self, src: Ipv4Addr) -> Result<(), String> {
        let (vip, hop, src) = (format!("{VIP}/32"), NEXT_HOP.to_string(), src.to_string());
        self.client.exec("ip", &["route", "replace", &vip, "via", &hop, "src", &src]).map(drop).map_err(err)
    }

    fn director_ns(&self, side: Side) -> &Netns {
        &self.directors[usize::from(side.index())]
    }

    /// Moves the VIP to `side`: the client's next hop and (NAT) the servers' gateway name its
    /// MAC from now on. The entries change in parallel, as one gratuitous ARP would reach
    /// every host at once.
    fn point_to(&self, side: Side) -> Result<(), String> {
        let mac = side.mac().to_string();
        let mut entries = vec![(&self.client, NEXT_HOP)];
        if self.mode == Mode::Nat {
            entries.extend(self.server_ns.iter().map(|ns| (ns, NAT_GATEWAY)));
        }
        let mut children = Vec::new();
        for (ns, addr) in entries {
            // `ip -n` switches only the network namespace: quicker than `ip netns exec`.
            let mut c = Command::new("ip");
            c.args(["-n", ns.name(), "neigh", "replace", &addr.to_string(), "lladdr", &mac, "dev", "eth0"]);
            c.args(["nud", "permanent"]).stdout(Stdio::null()).stderr(Stdio::piped());
            children.push(c.spawn().map_err(err)?);
        }
        for c in children {
            let out = c.wait_with_output().map_err(err)?;
            if !out.status.success() {
                return Err(format!("ip neigh replace: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        Ok(())
    }

    /// Starts director `side` with the sync `roles` (`master,backup` or `backup`) and resync
    /// `rate`, and waits until it is up.
    fn director(&self, side: Side, roles: &str, rate: u32) -> Result<LabProc, String> {
        let args = [DIRECTOR_FLAG, self.mode.tag(), side.tag(), roles, &rate.to_string()];
        LabProc::start(self.director_ns(side), &args)
    }

    /// Starts director `side` with VRRP advertising every `advert_int`, sync following it
    /// with the full resync, and waits until it is up.
    fn vrrp_director(&self, side: Side, advert_int: Duration) -> Result<LabProc, String> {
        let (prio, advert, preempt) =
            (side.priority().to_string(), advert_int.as_millis().to_string(), PREEMPT_DELAY.as_millis().to_string());
        let args =
            [DIRECTOR_FLAG, self.mode.tag(), side.tag(), "vrrp", &RESYNC_RATE.to_string(), &prio, &advert, &preempt];
        LabProc::start(self.director_ns(side), &args)
    }

    /// Sets director `side`'s port on the LAN bridge down or up: its link, as pulling the
    /// cable would.
    fn link(&self, side: Side, up: bool) -> Result<(), String> {
        let port = format!("v-{}", side.tag());
        let state = if up { "up" } else { "down" };
        // `ip -n` switches only the network namespace: quicker than `ip netns exec`.
        let out = Command::new("ip")
            .args(["-n", self.lan.name(), "link", "set", "dev", &port, state])
            .stdout(Stdio::null())
            .output()
            .map_err(err)?;
        if !out.status.success() {
            return Err(format!("ip link set {port} {state}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(())
    }
}

/// Which streams' entries a director's `ipvsadm -Lcn` holds: how many of how many streams, and
/// whether the persistence template is there.
fn held(listing: &str, logs: &[(Kind, u16)]) -> (usize, usize, bool) {
    let rows: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
    let has = |proto: &str, client_port: u16, vport: u16| {
        let (client, virt) = (format!("{CLIENT_IP}:{client_port}"), format!("{VIP}:{vport}"));
        rows.iter().any(|r| r.len() >= 6 && r[0] == proto && r[3] == client && r[4] == virt)
    };
    let streams = logs
        .iter()
        .filter(|(kind, port)| match kind {
            Kind::Tcp(vport) => has("TCP", *port, *vport),
            Kind::Udp => has("UDP", *port, STREAM_PORT),
        })
        .count();
    (streams, logs.len(), has("TCP", 0, PERSIST_PORT))
}

/// Sets `abort` when dropped — also when the lab unwinds — so the stream threads end.
struct AbortOnDrop<'a>(&'a AtomicBool);

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A run under way: the lab, its capture, the streams' ports and the changes so far.
struct Run<'a> {
    lab: &'a Lab,
    capture: &'a Capture,
    how: How,
    /// Each stream's kind and client port.
    ports: Vec<(Kind, u16)>,
    interrupt: &'a AtomicBool,
    steps: Vec<Step>,
}

impl Run<'_> {
    /// Which streams' entries director `p` holds now.
    fn held(&self, p: &mut LabProc) -> Result<(usize, usize, bool), String> {
        Ok(held(&p.listing("conns")?, &self.ports))
    }

    /// Waits until director `p` holds every stream's entry and the persistence template.
    fn wait_held(&self, p: &mut LabProc, what: &str) -> Result<(usize, usize, bool), String> {
        let deadline = Instant::now() + PATIENCE;
        let all = (self.ports.len(), self.ports.len(), true);
        loop {
            let h = self.held(p)?;
            if h == all {
                return Ok(h);
            }
            if Instant::now() > deadline {
                return Err(format!("{what} did not learn every connection in time: {h:?}"));
            }
            pause(Duration::from_millis(50), self.interrupt)?;
        }
    }

    /// Lets the streams run on after the last change, then sees where new connections to the
    /// persistent service go.
    fn settle(&mut self) -> Result<(), String> {
        pause(self.how.after(), self.interrupt)?;
        let persistence = client::probe(&self.lab.client, 3);
        if let Some(step) = self.steps.last_mut() {
            step.persistence = persistence;
        }
        Ok(())
    }

    /// Kills director `from` (process `active`), moves the next hops to `to`, which `held` the
    /// streams' entries, and notes when.
    fn kill_and_move(
        &mut self,
        from: Side,
        active: &mut LabProc,
        to: Side,
        held: (usize, usize, bool),
    ) -> Result<(), String> {
        let kill = Instant::now();
        active.kill();
        self.lab.point_to(to)?;
        let mut step = Step::new(Cause::Kill, from, to, kill, held);
        step.moved = Some(kill.elapsed());
        self.steps.push(step);
        Ok(())
    }

    /// The fail-overs by hand; returns the director active at the end.
    fn manual(&mut self, mut a: LabProc, mut b: LabProc, rejoin: Rejoin) -> Result<LabProc, String> {
        let held_b = self.held(&mut b)?;
        self.kill_and_move(Side::A, &mut a, Side::B, held_b)?;
        self.settle()?;
        // Reaped before it starts again in the same namespace.
        drop(a);

        let rate = match rejoin {
            Rejoin::Resync => RESYNC_RATE,
            Rejoin::KernelBackup => 0,
        };
        let mut a = self.lab.director(Side::A, "backup", rate)?;
        let up = Instant::now();
        let resynced = match rejoin {
            Rejoin::Resync => Some(event_ms(&mut a, "resynced", PATIENCE)?),
            Rejoin::KernelBackup => None,
        };
        pause((up + REJOIN).saturating_duration_since(Instant::now()), self.interrupt)?;
        let held_a = self.held(&mut a)?;
        self.kill_and_move(Side::B, &mut b, Side::A, held_a)?;
        if let Some(step) = self.steps.last_mut() {
            step.rejoin = Some((rejoin, resynced));
        }
        self.settle()?;
        Ok(a)
    }

    /// The four changes under VRRP; returns the director active at the end.
    fn vrrp(&mut self, mut a: LabProc, mut b: LabProc, advert_int: Duration) -> Result<LabProc, String> {
        let bound = self.how.master_down_interval(Side::B);
        // 1: A dies; B takes over when A's advertisements stop.
        let held_b = self.held(&mut b)?;
        let kill = Instant::now();
        a.kill();
        self.steps.push(Step { bound, ..Step::new(Cause::Kill, Side::A, Side::B, kill, held_b) });
        b.expect_event("master", PATIENCE)?;
        self.settle()?;
        drop(a);

        // 2: A comes back as a backup, takes B's table, and preempts after its delay.
        let restart = Instant::now();
        let mut a = self.lab.vrrp_director(Side::A, advert_int)?;
        let resynced = event_ms(&mut a, "resynced", PATIENCE)?;
        let held_a = self.held(&mut a)?;
        let takeover = PATIENCE + PREEMPT_DELAY + advert_int * 5;
        let master = event_ms(&mut a, "master", takeover)?;
        let at = self.capture.first_advert(Side::A, restart).ok_or("A's advertisement as master was not seen")?;
        let mut step = Step::new(Cause::Restarted, Side::B, Side::A, at, held_a);
        (step.rejoin, step.back) = (Some((Rejoin::Resync, Some(resynced))), Some(master));
        self.steps.push(step);
        b.expect_event("backup", PATIENCE)?;
        self.settle()?;

        // 3: A's link goes; A goes to FAULT, B takes over.
        let held_b = self.wait_held(&mut b, "B, back to backup,")?;
        pause(STEADY, self.interrupt)?;
        let pulled = Instant::now();
        self.lab.link(Side::A, false)?;
        self.steps.push(Step { bound, ..Step::new(Cause::LinkDown, Side::A, Side::B, pulled, held_b) });
        a.expect_event("fault", PATIENCE)?;
        b.expect_event("master", PATIENCE)?;
        self.settle()?;

        // 4: the link comes back; A returns to BACKUP, resynced over the sync link while in
        // FAULT, and preempts again.
        let restored = Instant::now();
        self.lab.link(Side::A, true)?;
        a.expect_event("backup", PATIENCE)?;
        let held_a = self.wait_held(&mut a, "A, back from FAULT,")?;
        a.expect_event("master", takeover)?;
        let at = self.capture.first_advert(Side::A, restored).ok_or("A's advertisement as master was not seen")?;
        let mut step = Step::new(Cause::LinkUp, Side::B, Side::A, at, held_a);
        step.back = Some(at - restored);
        self.steps.push(step);
        self.settle()?;
        Ok(a)
    }
}

/// Waits for event `name` of `p` and reads its value, milliseconds.
fn event_ms(p: &mut LabProc, name: &str, timeout: Duration) -> Result<Duration, String> {
    let ms: f64 = p.expect_event(name, timeout)?.parse().map_err(err)?;
    Ok(Duration::from_secs_f64(ms / 1e3))
}

/// Runs the lab. `interrupt` (set by a Ctrl-C handler) ends it early; everything is removed
/// either way.
///
/// # Errors
/// A message when a namespace, link, process or stream cannot be set up, or a wait runs out.
pub(crate) fn run(cfg: &FailoverConfig, interrupt: &AtomicBool) -> Result<Report, String> {
    let lab = Lab::build(cfg.mode, cfg.how)?;
    let capture = Capture::start(lab.lan.name())?;
    let (a, mut b) = match cfg.how {
        How::Manual(_) => {
            (lab.director(Side::A, "master,backup", RESYNC_RATE)?, lab.director(Side::B, "master,backup", RESYNC_RATE)?)
        }
        How::Vrrp { advert_int } => {
            // A first, master on its own; B then joins as its backup.
            let wait = PATIENCE + advert_int * 5;
            let mut a = lab.vrrp_director(Side::A, advert_int)?;
            a.expect_event("master", wait)?;
            let mut b = lab.vrrp_director(Side::B, advert_int)?;
            b.expect_event("backup", wait)?;
            (a, b)
        }
    };
    // The other client takes the persistent service's first choice (and keeps its template).
    lab.client_source(OTHER_CLIENT_IP)?;
    let other = client::probe(&lab.client, 1).first().copied().flatten();
    lab.client_source(CLIENT_IP)?;
    let ctl = Ctl::default();
    std::thread::scope(|s| {
        let _abort = AbortOnDrop(&ctl.abort);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (client, ctl) = (&lab.client, &ctl);
        let mut threads = Vec::new();
        for id in 0..=cfg.streams {
            let vport = if id == cfg.streams { PERSIST_PORT } else { STREAM_PORT };
            let tx = ready_tx.clone();
            threads.push(s.spawn(move || client::tcp(client, id as u16, vport, ctl, &tx)));
        }
        let (tx, udp_id) = (ready_tx, cfg.streams as u16 + 1);
        threads.push(s.spawn(move || client::udp(client, udp_id, ctl, &tx)));
        let mut ports = Vec::new();
        for _ in 0..threads.len() {
            let r = ready_rx.recv_timeout(PATIENCE).map_err(|_| "a stream did not start in time")?;
            ports.push((r.kind, r.port?));
        }
        let persistence_before = client::probe(client, 3);
        let mut run = Run { lab: &lab, capture: &capture, how: cfg.how, ports, interrupt, steps: Vec::new() };
        // B knows every stream (and the template) before A goes.
        run.wait_held(&mut b, "B")?;
        pause(STEADY, interrupt)?;
        let mut last = match cfg.how {
            How::Manual(rejoin) => run.manual(a, b, rejoin)?,
            How::Vrrp { advert_int } => run.vrrp(a, b, advert_int)?,
        };
        let survivor = (last.listing("plain")?, last.listing("conns")?);

        ctl.stop_sending.store(true, Ordering::Relaxed);
        let mut logs = Vec::new();
        for t in threads {
            logs.push(t.join().map_err(|_| "a stream thread panicked")?);
        }
        let around = Around { other_client: other, persistence_before, survivor };
        Ok(Report::new(cfg.mode, cfg.how, &logs, around, run.steps, &capture.seen()))
    })
}
