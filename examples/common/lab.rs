//! An in-process lab: a virtual Ethernet segment in memory joining smoltcp client hosts, the
//! director (this library, configured through ipvsadm rules) and three smoltcp real servers
//! that answer a small HTTP request with a page naming themselves. No root, no kernel stack.
//!
//! - DR: the servers hold the VIP as an extra address and answer the client directly; the
//!   director rewrites only MACs.
//! - NAT: the servers have private addresses and the director as their gateway.
//! - TUN: the director sends IP-in-IP; each server strips the outer header before its stack.
//!
//! The clients reach the VIP through the director (their gateway), so the servers never see an
//! ARP request for it: the lab's switch answers ARP for the director's own addresses.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use lvs::core::addr::{Af, Proto, ServiceKey};
use lvs::core::config::{list, ListOptions};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::health::{Check, CheckPlan, Detail, Exchange, HttpCheck, Monitor, Outcome, Probe, ServicePolicy, Step};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{Director, DirectorConfig, Instant, PortConfig, Verdict};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

/// Forwarding method of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Direct routing.
    Dr,
    /// NAT.
    Nat,
    /// IP-in-IP tunnelling.
    Tun,
}

impl Mode {
    /// Parses `dr`, `nat` or `tun`.
    pub(crate) fn parse(s: &str) -> Option<Mode> {
        match s {
            "dr" => Some(Mode::Dr),
            "nat" => Some(Mode::Nat),
            "tun" => Some(Mode::Tun),
            _ => None,
        }
    }
}

/// What the lab runs.
#[derive(Clone, Debug)]
pub(crate) struct LabConfig {
    /// Forwarding method.
    pub(crate) mode: Mode,
    /// Scheduler name.
    pub(crate) scheduler: String,
    /// One weight per real server (three by default).
    pub(crate) weights: Vec<u32>,
    /// Persistence timeout, if any.
    pub(crate) persist: Option<u32>,
    /// Number of requests, each a full TCP connection.
    pub(crate) requests: usize,
    /// Number of client hosts the requests rotate over.
    pub(crate) clients: usize,
    /// Real servers whose listener closes before a request: `(server, request)`, both from 0.
    /// Any kill or revive turns health checking on.
    pub(crate) kill: Vec<(usize, usize)>,
    /// Real servers whose listener opens again before a request.
    pub(crate) revive: Vec<(usize, usize)>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            mode: Mode::Dr,
            scheduler: "wlc".into(),
            weights: vec![1, 1, 1],
            persist: None,
            requests: 12,
            clients: 1,
            kill: Vec::new(),
            revive: Vec::new(),
        }
    }
}

/// One request's outcome.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    /// Which client host sent it.
    pub(crate) client: IpAddr,
    /// The client's port.
    pub(crate) port: u16,
    /// The real server whose page came back (`None` if the request failed).
    pub(crate) server: Option<usize>,
}

/// The outcome of a lab run.
pub(crate) struct LabRun {
    /// One entry per request, in order.
    pub(crate) answers: Vec<Answer>,
    /// `ipvsadm -Ln` after the run.
    pub(crate) listing: String,
    /// `ipvsadm -Ln --stats` after the run.
    pub(crate) stats: String,
    /// The rules the director was configured with.
    pub(crate) rules: String,
    /// What happened between requests (kills, revivals, health events): printed before request
    /// `.0`.
    pub(crate) notes: Vec<(usize, String)>,
    /// The health listing at the end, when checks ran.
    pub(crate) health: Option<String>,
}

/// An in-memory NIC: frames in, frames out.
#[derive(Default)]
struct Nic {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

struct RxT(Vec<u8>);
struct TxT<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for RxT {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxT<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl Device for Nic {
    type RxToken<'a> = RxT;
    type TxToken<'a> = TxT<'a>;

    fn receive(&mut self, _t: SInstant) -> Option<(RxT, TxT<'_>)> {
        let f = self.rx.pop_front()?;
        Some((RxT(f), TxT(&mut self.tx)))
    }

    fn transmit(&mut self, _t: SInstant) -> Option<TxT<'_>> {
        Some(TxT(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// A smoltcp host on the segment.
struct Host {
    mac: [u8; 6],
    iface: Interface,
    nic: Nic,
    sockets: SocketSet<'static>,
    /// Servers: strip IP-in-IP before the stack.
    decap: bool,
}

fn v4(a: [u8; 4]) -> Ipv4Address {
    Ipv4Address::new(a[0], a[1], a[2], a[3])
}

impl Host {
    fn new(mac: [u8; 6], addrs: &[([u8; 4], u8)], gateway: [u8; 4], decap: bool) -> Host {
        let mut nic = Nic::default();
        let cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = Interface::new(cfg, &mut nic, SInstant::from_millis(0));
        iface.update_ip_addrs(|ips| {
            for (a, p) in addrs {
                let _ = ips.push(IpCidr::new(IpAddress::Ipv4(v4(*a)), *p));
            }
        });
        let _ = iface.routes_mut().add_default_ipv4_route(v4(gateway));
        Host { mac, iface, nic, sockets: SocketSet::new(Vec::new()), decap }
    }

    fn tcp_socket(&mut self) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; 4096]);
        let tx = tcp::SocketBuffer::new(vec![0; 4096]);
        self.sockets.add(tcp::Socket::new(rx, tx))
    }

    fn poll(&mut self, now: SInstant) {
        self.iface.poll(now, &mut self.nic, &mut self.sockets);
    }

    fn deliver(&mut self, mut f: Vec<u8>) {
        // A tunnel endpoint: IPv4 proto 4 → the inner datagram under the same Ethernet header.
        if self.decap && f.len() > 34 && f[12..14] == [0x08, 0x00] && f[23] == 4 {
            let ihl = usize::from(f[14] & 0xf) * 4;
            f.drain(14..14 + ihl);
        }
        self.nic.rx.push_back(f);
    }
}

const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The virtual address of every lab.
pub(crate) const VIP: [u8; 4] = [203, 0, 113, 100];

fn server_ip(mode: Mode, i: usize) -> [u8; 4] {
    match mode {
        Mode::Nat => [10, 0, 0, 11 + i as u8],
        _ => [198, 51, 100, 11 + i as u8],
    }
}

/// An ARP request from `mac`/`ip` for `target`.
fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// The director's ARP answers: the lab's stand-in for the director host's own stack.
fn arp_reply(frame: &[u8], mine: &[[u8; 4]]) -> Option<Vec<u8>> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[20..22] != [0, 1] {
        return None;
    }
    let tpa: [u8; 4] = frame[38..42].try_into().ok()?;
    if !mine.contains(&tpa) {
        return None;
    }
    let mut r = frame[..42].to_vec();
    r[0..6].copy_from_slice(&frame[6..12]);
    r[6..12].copy_from_slice(&DIRECTOR_MAC);
    r[21] = 2;
    r[22..28].copy_from_slice(&DIRECTOR_MAC);
    r[28..32].copy_from_slice(&tpa);
    r[32..38].copy_from_slice(&frame[22..28]);
    r[38..42].copy_from_slice(&frame[28..32]);
    Some(r)
}

/// The ipvsadm rules of a lab configuration.
pub(crate) fn rules(cfg: &LabConfig) -> String {
    let servers: Vec<Ipv4Addr> = (0..cfg.weights.len()).map(|i| Ipv4Addr::from(server_ip(cfg.mode, i))).collect();
    rules_for(cfg, &servers)
}

/// The ipvsadm rules of a lab configuration for servers at `servers`.
pub(crate) fn rules_for(cfg: &LabConfig, servers: &[Ipv4Addr]) -> String {
    let flag = match cfg.mode {
        Mode::Dr => "-g",
        Mode::Nat => "-m",
        Mode::Tun => "-i",
    };
    let vip = Ipv4Addr::from(VIP);
    let mut r = format!("-A -t {vip}:80 -s {}", cfg.scheduler);
    if let Some(p) = cfg.persist {
        r.push_str(&format!(" -p {p}"));
    }
    r.push('\n');
    for (rs, w) in servers.iter().zip(&cfg.weights) {
        r.push_str(&format!("-a -t {vip}:80 -r {rs}:80 {flag} -w {w}\n"));
    }
    r
}

/// How often the in-process lab checks its servers (simulated time), and how far apart its
/// requests are when it does.
const CHECK_INTERVAL_MS: u64 = 200;
const REQUEST_SPACING_MS: i64 = 100;

/// One health probe in flight on the director's own stack.
struct LabProbe {
    probe: Probe,
    socket: SocketHandle,
    exchange: Option<Exchange>,
    connected: bool,
}

/// Health checking in the in-process lab: the monitor (the core's, on simulated time) and the
/// director's own smoltcp stack, from which each probe opens a real TCP connection to a
/// server's address and holds the core's HTTP conversation over it.
struct LabHealth {
    monitor: Monitor,
    host: Host,
    probes: Vec<LabProbe>,
    next_port: u16,
}

fn lab_now(t_ms: i64) -> Instant {
    Instant::from_nanos(t_ms as u64 * 1_000_000)
}

impl LabHealth {
    /// HTTP checks of every server: every 200 ms, a 100 ms timeout, down after two failures
    /// (the second 100 ms after the first), up after two passes.
    fn new(d: &mut Director, cfg: &LabConfig, director_ips: &[[u8; 4]]) -> Result<LabHealth, String> {
        let key = ServiceKey::Inet { proto: Proto::Tcp, addr: IpAddr::from(VIP), port: 80 };
        let method = match cfg.mode {
            Mode::Dr => FwdMethod::Route,
            Mode::Nat => FwdMethod::Masq,
            Mode::Tun => FwdMethod::Tunnel,
        };
        let plan = CheckPlan::new(Check::Http(HttpCheck::get("/").with_expect(b"rs")))
            .with_interval(std::time::Duration::from_millis(CHECK_INTERVAL_MS))
            .with_timeout(std::time::Duration::from_millis(100))
            .with_retry(1, std::time::Duration::from_millis(100))
            .with_rise_fall(2, 2)
            .with_warmup(std::time::Duration::ZERO);
        let servers = cfg
            .weights
            .iter()
            .enumerate()
            .map(|(i, w)| (RealServer::new(IpAddr::from(server_ip(cfg.mode, i)), 80, method, *w), plan.clone()));
        let mut monitor = Monitor::new(1);
        monitor.add_service(d, lab_now(0), key, ServicePolicy::default(), servers).map_err(|e| e.to_string())?;
        let addrs: Vec<([u8; 4], u8)> = director_ips.iter().filter(|a| **a != VIP).map(|a| (*a, 24)).collect();
        let mut host = Host::new(DIRECTOR_MAC, &addrs, [198, 51, 100, 254], false);
        // The director's stack knows its servers' MACs, as its director does (set_neighbour):
        // smoltcp learns them from an ARP request addressed to it, and asks for one address a
        // second at most, so three probes at once would otherwise wait for ARP.
        for i in 0..cfg.weights.len() {
            let own = server_ip(cfg.mode, i);
            let gateway = if cfg.mode == Mode::Nat { [10, 0, 0, 1] } else { [198, 51, 100, 1] };
            host.deliver(arp_request([2, 0, 0, 0, 1, 1 + i as u8], own, gateway));
        }
        Ok(LabHealth { monitor, host, probes: Vec::new(), next_port: 50_000 })
    }

    /// One millisecond of the checks: start the probes that are due, move those in flight,
    /// report what they found; returns the monitor's events.
    fn step(&mut self, d: &mut Director, t_ms: i64) -> Vec<String> {
        let now = lab_now(t_ms);
        self.monitor.tick(d, now);
        while let Some(probe) = self.monitor.poll(now) {
            let socket = self.host.tcp_socket();
            let target = match probe.target.addr {
                IpAddr::V4(a) => IpAddress::Ipv4(v4(a.octets())),
                IpAddr::V6(_) => continue,
            };
            self.next_port = self.next_port.checked_add(1).unwrap_or(50_000);
            let sock = self.host.sockets.get_mut::<tcp::Socket>(socket);
            if sock.connect(self.host.iface.context(), (target, probe.target.port), self.next_port).is_err() {
                continue;
            }
            let exchange = probe.exchange();
            self.probes.push(LabProbe { probe, socket, exchange, connected: false });
        }
        self.host.poll(SInstant::from_millis(t_ms));
        let mut i = 0;
        while i < self.probes.len() {
            let p = &mut self.probes[i];
            let sock = self.host.sockets.get_mut::<tcp::Socket>(p.socket);
            let mut verdict = None;
            if !p.connected && sock.state() == tcp::State::Established {
                p.connected = true;
                if let Some(Step::Send(b)) = p.exchange.as_mut().map(Exchange::start) {
                    let _ = sock.send_slice(&b);
                }
            }
            if sock.can_recv() {
                let mut buf = Vec::new();
                let _ = sock.recv(|b| {
                    buf.extend_from_slice(b);
                    (b.len(), ())
                });
                if let Some(Step::Done(o)) = p.exchange.as_mut().map(|x| x.received(&buf)) {
                    verdict = Some(o);
                }
            }
            if verdict.is_none() && matches!(sock.state(), tcp::State::Closed | tcp::State::CloseWait) {
                verdict = Some(match p.exchange.as_mut() {
                    // A reset to the SYN: nothing listens.
                    _ if !p.connected => Outcome::down(Detail::Refused),
                    Some(x) => x.closed(),
                    None => Outcome::up(Detail::Passed),
                });
            }
            let expired = now > p.probe.deadline;
            if verdict.is_some() || expired {
                if let Some(o) = verdict {
                    // A probe the monitor failed at its deadline already is no longer its concern.
                    let _ = self.monitor.report(d, now, p.probe.id, o);
                }
                sock.abort();
                let socket = p.socket;
                self.probes.swap_remove(i);
                self.host.poll(SInstant::from_millis(t_ms));
                self.host.sockets.remove(socket);
                continue;
            }
            i += 1;
        }
        std::iter::from_fn(|| self.monitor.poll_event())
            .map(|e| format!("t={:.3}s  health: {e}", t_ms as f64 / 1000.0))
            .collect()
    }
}

/// Runs the lab.
///
/// # Errors
/// A message when the director rejects the configuration.
pub(crate) fn run(cfg: &LabConfig) -> Result<LabRun, String> {
    let n = cfg.weights.len();
    let director_ips: Vec<[u8; 4]> = match cfg.mode {
        Mode::Nat => vec![[198, 51, 100, 1], [10, 0, 0, 1], VIP],
        _ => vec![[198, 51, 100, 1], VIP],
    };
    let mut d = lvs::director(
        DirectorConfig::default()
            .port(PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(Ipv4Addr::new(198, 51, 100, 1).into()))
            .with_random_seeds(),
    );
    let rules = rules(cfg);
    lvs::core::config::restore(&mut d, &rules).map_err(|e| e.to_string())?;

    let mut clients: Vec<Host> = (0..cfg.clients.max(1))
        .map(|i| Host::new([2, 0, 0, 0, 2, i as u8], &[([198, 51, 100, 2 + i as u8], 24)], [198, 51, 100, 1], false))
        .collect();
    let mut servers: Vec<Host> = (0..n)
        .map(|i| {
            let own = server_ip(cfg.mode, i);
            let mac = [2, 0, 0, 0, 1, 1 + i as u8];
            match cfg.mode {
                Mode::Nat => Host::new(mac, &[(own, 24)], [10, 0, 0, 1], false),
                Mode::Dr => Host::new(mac, &[(own, 24), (VIP, 32)], [198, 51, 100, 1], false),
                Mode::Tun => Host::new(mac, &[(own, 24), (VIP, 32)], [198, 51, 100, 1], true),
            }
        })
        .collect();
    for (i, s) in servers.iter().enumerate() {
        d.set_neighbour(IpAddr::from(server_ip(cfg.mode, i)), Neighbour { mac: MacAddr(s.mac), port: 0 });
    }
    for (i, c) in clients.iter().enumerate() {
        d.set_neighbour(IpAddr::from([198, 51, 100, 2 + i as u8]), Neighbour { mac: MacAddr(c.mac), port: 0 });
    }
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr(clients[0].mac), port: 0 });
    let mut health = if cfg.kill.is_empty() && cfg.revive.is_empty() {
        None
    } else {
        Some(LabHealth::new(&mut d, cfg, &director_ips)?)
    };
    let mut notes = Vec::new();
    let mut killed = vec![false; n];

    // Each server keeps a few listening sockets and answers one request per connection.
    let listeners: Vec<Vec<SocketHandle>> = servers
        .iter_mut()
        .map(|s| {
            (0..4)
                .map(|_| {
                    let h = s.tcp_socket();
                    let _ = s.sockets.get_mut::<tcp::Socket>(h).listen(80);
                    h
                })
                .collect()
        })
        .collect();
    let mut served = vec![vec![Vec::<u8>::new(); 4]; n];

    let mut answers = Vec::new();
    let mut t_ms: i64 = 0;
    let mut frame = Frame::with_capacity(DEFAULT_HEADROOM + 2048);
    for req in 0..cfg.requests {
        for &(si, _) in cfg.kill.iter().filter(|(_, r)| *r == req) {
            if let Some(k) = killed.get_mut(si) {
                *k = true;
                notes.push((req, format!("t={:.3}s  rs{} killed: its listener closed", t_ms as f64 / 1000.0, si + 1)));
                for lh in &listeners[si] {
                    servers[si].sockets.get_mut::<tcp::Socket>(*lh).abort();
                }
            }
        }
        for &(si, _) in cfg.revive.iter().filter(|(_, r)| *r == req) {
            if let Some(k) = killed.get_mut(si) {
                *k = false;
                notes.push((req, format!("t={:.3}s  rs{} revived: listening again", t_ms as f64 / 1000.0, si + 1)));
            }
        }
        let ci = req % clients.len();
        let port = 40_000 + req as u16;
        let h = clients[ci].tcp_socket();
        {
            let c = &mut clients[ci];
            let sock = c.sockets.get_mut::<tcp::Socket>(h);
            sock.connect(c.iface.context(), (IpAddress::Ipv4(v4(VIP)), 80), port).map_err(|e| e.to_string())?;
        }
        let (mut sent, mut got, mut done) = (false, Vec::new(), false);
        let (started, deadline) = (t_ms, t_ms + 10_000);
        // With health checks on, requests start every 100 ms so that checks happen between them.
        let spacing = if health.is_some() { REQUEST_SPACING_MS } else { 0 };
        while (!done || t_ms < started + spacing) && t_ms < deadline {
            t_ms += 1;
            let now = SInstant::from_millis(t_ms);
            for c in clients.iter_mut() {
                c.poll(now);
            }
            for (si, s) in servers.iter_mut().enumerate() {
                s.poll(now);
                for (k, lh) in listeners[si].iter().enumerate() {
                    let sock = s.sockets.get_mut::<tcp::Socket>(*lh);
                    if sock.can_recv() {
                        let _ = sock.recv(|b| {
                            served[si][k].extend_from_slice(b);
                            (b.len(), ())
                        });
                    }
                    if served[si][k].ends_with(b"\r\n\r\n") && sock.can_send() {
                        let body = format!("rs{}\n", si + 1);
                        let resp = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        let _ = sock.send_slice(resp.as_bytes());
                        served[si][k].clear();
                    }
                    if sock.state() == tcp::State::CloseWait {
                        sock.close();
                    }
                    if !sock.is_open() && !killed[si] {
                        let _ = sock.listen(80);
                    }
                }
                s.poll(now);
            }
            {
                let c = &mut clients[ci];
                let sock = c.sockets.get_mut::<tcp::Socket>(h);
                if !sent && sock.can_send() {
                    let _ = sock.send_slice(b"GET / HTTP/1.0\r\n\r\n");
                    sent = true;
                }
                if sock.can_recv() {
                    let _ = sock.recv(|b| {
                        got.extend_from_slice(b);
                        (b.len(), ())
                    });
                }
                let text = String::from_utf8_lossy(&got);
                if let Some((_, body)) = text.split_once("\r\n\r\n") {
                    if body.ends_with('\n') && sock.state() != tcp::State::Closed {
                        sock.close();
                    }
                }
                // Answered and closed, or refused (a reset to the SYN).
                if matches!(sock.state(), tcp::State::Closed) || sent && sock.state() == tcp::State::TimeWait {
                    done = true;
                }
            }
            if let Some(h) = health.as_mut() {
                notes.extend(h.step(&mut d, t_ms).into_iter().map(|e| (req + 1, e)));
            }
            // The switch: move every frame to its destination MAC; the director's go through lvs.
            let mut wire: VecDeque<Vec<u8>> = VecDeque::new();
            for host in clients.iter_mut().chain(servers.iter_mut()).chain(health.as_mut().map(|h| &mut h.host)) {
                wire.extend(host.nic.tx.drain(..));
            }
            let mut hops = 0;
            while let Some(f) = wire.pop_front() {
                hops += 1;
                if hops > 10_000 {
                    break;
                }
                let dst: [u8; 6] = f[0..6].try_into().unwrap_or_default();
                let src: [u8; 6] = f[6..12].try_into().unwrap_or_default();
                if dst == DIRECTOR_MAC || dst == [0xff; 6] {
                    if let Some(r) = arp_reply(&f, &director_ips) {
                        wire.push_back(r);
                    } else if dst == DIRECTOR_MAC {
                        frame.load(DEFAULT_HEADROOM, &f);
                        match d.process(Instant::from_nanos(t_ms as u64 * 1_000_000), &mut frame) {
                            Verdict::Transmit { .. } | Verdict::Fragmented { .. } => {
                                wire.push_back(frame.data().to_vec());
                                wire.extend(d.fragments().iter().map(|g| g.data().to_vec()));
                            }
                            // Not for a service: the director's own stack (the health probes).
                            Verdict::NotMine => {
                                if let Some(h) = health.as_mut() {
                                    h.host.deliver(f.clone());
                                }
                            }
                            _ => {}
                        }
                    }
                }
                for host in clients.iter_mut().chain(servers.iter_mut()) {
                    if host.mac != src && (host.mac == dst || dst == [0xff; 6]) {
                        host.deliver(f.clone());
                    }
                }
            }
            d.tick(Instant::from_nanos(t_ms as u64 * 1_000_000));
        }
        let body = String::from_utf8_lossy(&got).split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        let server = body.trim().strip_prefix("rs").and_then(|s| s.parse::<usize>().ok()).map(|s| s - 1);
        answers.push(Answer { client: IpAddr::from([198, 51, 100, 2 + ci as u8]), port, server });
        clients[ci].sockets.remove(h);
    }
    let now = Instant::from_nanos(t_ms as u64 * 1_000_000);
    Ok(LabRun {
        answers,
        listing: list(&d, now, ListOptions::Plain),
        stats: list(&d, now, ListOptions::Stats),
        rules,
        notes,
        health: health.map(|h| lvs::core::health::status(&h.monitor, now)),
    })
}
