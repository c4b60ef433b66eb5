//! The sync daemons' sockets, as net/netfilter/ipvs/ip_vs_sync.c opens and drives them
//! (`make_send_sock`, `make_receive_sock`, `start_sync_thread`, the master and backup threads):
//! UDP multicast between directors, carrying the datagrams a [`Director`]'s sync room hands out
//! ([`Director::poll_sync`]) and handing it the ones that arrive ([`Director::handle_sync`]).
//!
//! For each daemon the director runs, [`SyncSockets`] holds these sockets, all on the daemon's
//! interface, group and port, socket `i` of `sync_ports` on `port + i`:
//!
//! | daemon | sends to | listens on |
//! |---|---|---|
//! | master | `group:port+i`, a socket per `sync_ports` | `group:port` if `resync_rate > 0` (requests) |
//! | backup | `group:port` if `resync_rate > 0` (its request) | `group:port+i`, a socket per `sync_ports` |
//!
//! A director that is master and backup at once listens once on a group and port both want.
//! The resync exchange is this library's, not the kernel's; a kernel backup ignores it.
//!
//! One thread, the caller's, does what the kernel's threads (one per socket and daemon) do: a
//! datagram that finds its socket's buffer full waits and goes first on the next pass, and until
//! it has gone the director keeps the rest (its queue is bounded by `sync_qlen_max`), as a
//! kernel master thread sleeps until its socket is writable.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use lvs_core::sync::{DaemonConfig, Datagram, Role, SyncParams, PORTS_MAX};
use lvs_core::{Director, Instant};

use crate::sys::{linux, mcast};

/// The most datagrams read from one socket in one pass, so that a flood on the sync group
/// cannot keep a runtime from its packet ports.
const RECV_BURST: usize = 64;

/// The index of each role in [`SyncSockets`]'s table.
const ROLES: [Role; 2] = [Role::Master, Role::Backup];

/// The MTU of interface `ifname` (`SIOCGIFMTU`), capped at 65 535: what
/// [`Director::start_sync`] takes to size a backup's messages.
///
/// # Errors
/// When there is no such interface.
pub fn interface_mtu(ifname: &str) -> io::Result<u16> {
    mcast::mtu(ifname).map(|m| u16::try_from(m).unwrap_or(u16::MAX))
}

/// What the sync sockets did. The director counts what its datagrams held
/// ([`Director::sync_stats`]); these count the datagrams themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncIoStats {
    /// Datagrams sent.
    pub sent: u64,
    /// Times a datagram found its socket's send buffer full; it was sent later.
    pub send_blocked: u64,
    /// Datagrams lost to a send error other than a full buffer (the kernel logs and drops
    /// them too), or handed out for a daemon or socket that has no socket open.
    pub send_errors: u64,
    /// Datagrams received and handed to the director.
    pub received: u64,
    /// Received datagrams longer than the daemon's `maxlen`: the director got their first
    /// `maxlen` bytes, as the kernel's receive buffer holds no more (and so refused them,
    /// unless their header claimed exactly that size).
    pub truncated: u64,
    /// Receive errors other than "nothing to read".
    pub recv_errors: u64,
}

/// A send socket, and the datagram waiting for room in its buffer.
struct Sender {
    sock: UdpSocket,
    held: Option<Vec<u8>>,
}

impl Sender {
    /// Sends `bytes`; `false` when the buffer is full and the datagram waits in `held`.
    fn send(&mut self, bytes: Vec<u8>, stats: &mut SyncIoStats) -> bool {
        match self.sock.send(&bytes) {
            Ok(_) => stats.sent += 1,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                stats.send_blocked += 1;
                self.held = Some(bytes);
                return false;
            }
            Err(_) => stats.send_errors += 1,
        }
        true
    }
}

/// A receive socket on one interface, group and port, with the daemon's `maxlen`.
struct Listener {
    ifname: String,
    group: SocketAddr,
    sock: UdpSocket,
    maxlen: usize,
}

/// The sockets of one daemon, and the settings in force when they were opened.
struct Daemon {
    cfg: DaemonConfig,
    ifindex: u32,
    senders: Vec<Sender>,
    /// How many receive sockets it wants, on `port`, `port + 1`, …
    listen: u16,
    sock_size: u32,
}

impl Daemon {
    /// Opens the send sockets of daemon `role` with settings `cfg` (as the director resolved
    /// them) under the sysctls `p`.
    fn open(role: Role, cfg: &DaemonConfig, p: &SyncParams) -> io::Result<Daemon> {
        let ifindex = linux::ifindex(&cfg.ifname)?;
        let ports = u16::from(p.ports.clamp(1, PORTS_MAX));
        let resync = u16::from(p.resync_rate > 0);
        let (send, listen) = match role {
            Role::Master => (ports, resync),
            Role::Backup => (resync, ports),
        };
        let o = mcast::SendOpts { ifname: &cfg.ifname, ifindex, ttl: cfg.ttl, sndbuf: p.sock_size };
        let senders = (0..send)
            .map(|i| {
                let to = SocketAddr::new(cfg.group(), cfg.port.wrapping_add(i));
                mcast::send_socket(to, &o).map(|sock| Sender { sock, held: None })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Daemon { cfg: cfg.clone(), ifindex, senders, listen, sock_size: p.sock_size })
    }
}

/// The sockets of a director's sync daemons: they follow the daemons the director runs,
/// send what it hands out and give it what arrives. A [`Runtime`](crate::runtime::Runtime)
/// holds one and drives it on every pass; an application with a loop of its own calls
/// [`SyncSockets::poll`] and waits on [`SyncSockets::raw_fds`].
///
/// ```no_run
/// # use lvs_core::neigh::MacAddr;
/// # use lvs_core::testkit::{factory, DIRECTOR_MAC};
/// # use lvs_core::{Director, DirectorConfig, PortConfig};
/// use lvs_core::sync::{DaemonConfig, Role};
/// use lvs_dataplane::runtime::MonotonicClock;
/// use lvs_dataplane::sync::SyncSockets;
///
/// # let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
/// # let mut director = Director::new(cfg, factory);
/// // ipvsadm --start-daemon master --mcast-interface eth1 --syncid 7
/// let mut sync = SyncSockets::new();
/// sync.start(&mut director, Role::Master, &DaemonConfig { syncid: 7, ..DaemonConfig::new("eth1") })?;
/// let clock = MonotonicClock::default();
/// loop {
///     // … the director's packets …
///     sync.poll(clock.now(), &mut director)?;
///     # break;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Default)]
pub struct SyncSockets {
    /// Master, backup (the order of [`ROLES`]).
    daemons: [Option<Daemon>; 2],
    listeners: Vec<Listener>,
    /// The receive buffer, as long as the longest `maxlen` of the listeners.
    buf: Vec<u8>,
    stats: SyncIoStats,
    /// Sources heard from, for the log ([`MAX_PEERS`] at most).
    peers: Vec<SocketAddr>,
    /// The last error opening a daemon's sockets, logged once.
    failing: Option<String>,
}

impl SyncSockets {
    /// No sockets yet; they open as the director's daemons start.
    pub fn new() -> Self {
        SyncSockets::default()
    }

    /// Starts daemon `role` on `director` and opens its sockets (`ipvsadm --start-daemon`):
    /// the interface's MTU sizes a backup's messages. When a socket cannot be opened, the
    /// daemon is stopped again and nothing has changed.
    ///
    /// # Errors
    /// [`io::ErrorKind::AlreadyExists`] when that daemon already runs; an unknown interface; a
    /// socket the system refuses (the group's address family not configured, an address or
    /// port in use, or, for binding to the interface, missing `CAP_NET_RAW` on kernels before
    /// 5.7).
    pub fn start(&mut self, director: &mut Director, role: Role, cfg: &DaemonConfig) -> io::Result<()> {
        let mtu = interface_mtu(&cfg.ifname)?;
        director.start_sync(role, cfg, mtu).map_err(control_error)?;
        if let Err(e) = self.follow(director) {
            // Stopping what was just started cannot fail, and closing sockets opens none.
            let _ = director.stop_sync(role);
            let _ = self.follow(director);
            return Err(e);
        }
        Ok(())
    }

    /// Stops daemon `role` on `director` and closes its sockets (`ipvsadm --stop-daemon`).
    /// What a master had not sent is dropped, as the kernel drops it.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] when that daemon does not run.
    pub fn stop(&mut self, director: &mut Director, role: Role) -> io::Result<()> {
        director.stop_sync(role).map_err(control_error)?;
        self.follow(director)
    }

    /// One pass at `now`: opens or closes sockets for daemons started or stopped on the
    /// director since the last pass, gives the director every datagram waiting (up to 64 per
    /// socket), then sends what it hands out until it has nothing more or a socket's buffer is
    /// full. Call it after every burst and tick, and when [`Director::next_deadline`] passes.
    ///
    /// # Errors
    /// A socket for a newly started daemon that cannot be opened (see
    /// [`SyncSockets::start`]); it is tried again on the next pass. Errors sending and
    /// receiving are counted in [`SyncIoStats`], not returned.
    pub fn poll(&mut self, now: Instant, director: &mut Director) -> io::Result<()> {
        self.follow(director)?;
        self.receive(now, director);
        self.transmit(now, director);
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> SyncIoStats {
        self.stats
    }

    /// The receive sockets' descriptors, to wait on for readability.
    pub fn raw_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.listeners.iter().map(|l| l.sock.as_raw_fd())
    }

    /// Whether a datagram waits for room in a send buffer (then [`SyncSockets::poll`] should
    /// come again soon, whatever the director's deadline).
    pub fn is_blocked(&self) -> bool {
        self.senders().any(|s| s.held.is_some())
    }

    fn senders(&self) -> impl Iterator<Item = &Sender> {
        self.daemons.iter().flatten().flat_map(|d| d.senders.iter())
    }

    /// Opens and closes sockets so that they are those of the daemons `director` runs. A
    /// daemon whose sockets cannot all be opened gets none, and is tried again next time.
    fn follow(&mut self, director: &Director) -> io::Result<()> {
        let mut changed = [false; 2];
        let mut result = Ok(());
        for ((slot, role), changed) in self.daemons.iter_mut().zip(ROLES).zip(&mut changed) {
            let running = director.sync_daemon(role);
            if slot.as_ref().map(|d| &d.cfg) == running {
                continue;
            }
            *changed = true;
            // A stopped (or restarted) daemon's sockets close, dropping what they held.
            if let Some(old) = slot.take() {
                log::info!(target: "lvs::sync", "sync {} daemon stopped ({})", role.name(), describe(&old.cfg));
            }
            if let Some(cfg) = running {
                match Daemon::open(role, cfg, director.sync_params()) {
                    Ok(d) => *slot = Some(d),
                    Err(e) => result = Err(e),
                }
            }
        }
        if changed == [false; 2] {
            return Ok(());
        }
        if result.is_ok() {
            result = self.relisten();
        }
        if let Err(e) = &result {
            for ((slot, changed), role) in self.daemons.iter_mut().zip(changed).zip(ROLES) {
                if changed && director.sync_daemon(role).is_some() {
                    *slot = None;
                    // Tried again every pass: said once until it works or the error changes.
                    let text = format!("sync {} daemon cannot open its sockets: {e}", role.name());
                    if self.failing.as_ref() != Some(&text) {
                        log::error!(target: "lvs::sync", "{text}");
                        self.failing = Some(text);
                    }
                }
            }
            // The daemons left had all their listeners: this only closes sockets.
            let _ = self.relisten();
        } else {
            self.failing = None;
            for ((slot, role), changed) in self.daemons.iter().zip(ROLES).zip(changed) {
                if let (true, Some(d)) = (changed, slot) {
                    log::info!(target: "lvs::sync", "sync {} daemon started ({})", role.name(), describe(&d.cfg));
                }
            }
        }
        result
    }

    /// Makes the receive sockets those the daemons want, keeping the ones already open. A
    /// backup's socket serves a master that wants the same one (the backup's `maxlen` rules).
    fn relisten(&mut self) -> io::Result<()> {
        let SyncSockets { daemons, listeners, buf, .. } = self;
        let mut old = std::mem::take(listeners);
        let mut result = Ok(());
        let [master, backup] = daemons;
        for d in [&*backup, &*master].into_iter().flatten() {
            for i in 0..d.listen {
                let group = SocketAddr::new(d.cfg.group(), d.cfg.port.wrapping_add(i));
                let is = |l: &Listener| l.group == group && l.ifname == d.cfg.ifname;
                if listeners.iter().any(is) {
                    continue;
                }
                let maxlen = usize::from(d.cfg.maxlen);
                if let Some(p) = old.iter().position(is) {
                    listeners.push(Listener { maxlen, ..old.swap_remove(p) });
                    continue;
                }
                let o = mcast::RecvOpts { ifname: &d.cfg.ifname, ifindex: d.ifindex, rcvbuf: d.sock_size };
                match mcast::recv_socket(group, &o) {
                    Ok(sock) => listeners.push(Listener { ifname: d.cfg.ifname.clone(), group, sock, maxlen }),
                    Err(e) => result = result.and(Err(e)),
                }
            }
        }
        buf.resize(listeners.iter().map(|l| l.maxlen).max().unwrap_or(0), 0);
        result
    }

    /// Gives the director what arrived (`sync_thread_backup`): each datagram in a buffer of
    /// the daemon's `maxlen` bytes, so a longer one is cut short as in the kernel.
    fn receive(&mut self, now: Instant, director: &mut Director) {
        let before = director.sync_stats();
        let SyncSockets { listeners, buf, stats, peers, .. } = self;
        for l in listeners.iter() {
            let Some(room) = buf.get_mut(..l.maxlen) else { continue };
            for _ in 0..RECV_BURST {
                // Who sent the next datagram: a look without taking it.
                if let Ok((_, from)) = l.sock.peek_from(&mut []) {
                    note_peer(peers, from, l);
                }
                match mcast::recv_trunc(&l.sock, room) {
                    Ok(len) => {
                        stats.received += 1;
                        stats.truncated += u64::from(len > l.maxlen);
                        let got = room.get(..len.min(l.maxlen)).unwrap_or_default();
                        // The director counts what it refuses.
                        let _ = director.handle_sync(now, got);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        stats.recv_errors += 1;
                        break;
                    }
                }
            }
        }
        let after = director.sync_stats();
        if after.resync_requests > before.resync_requests {
            log::info!(target: "lvs::sync", "sync master: a backup asked for a full resync; streaming the table");
        }
        if after.resyncs_done > before.resyncs_done {
            log::info!(target: "lvs::sync", "sync backup: full resync complete");
        }
    }

    /// Sends what the director hands out (`sync_thread_master`): first the datagrams that
    /// found a full buffer, then new ones until a buffer is full again.
    fn transmit(&mut self, now: Instant, director: &mut Director) {
        let SyncSockets { daemons, stats, .. } = self;
        let mut room = true;
        for s in daemons.iter_mut().flatten().flat_map(|d| d.senders.iter_mut()) {
            if let Some(bytes) = s.held.take() {
                room &= s.send(bytes, stats);
            }
        }
        while room {
            let Some(d) = director.poll_sync(now) else { break };
            match sender_for(daemons, &d) {
                Some(s) => room = s.send(d.bytes, stats),
                None => stats.send_errors += 1,
            }
        }
    }
}

/// The peers a director's sync sockets remember, to log each new one once.
const MAX_PEERS: usize = 64;

/// Logs a sync peer heard for the first time (up to [`MAX_PEERS`] are remembered; past that a
/// new one is logged at debug level only, so a flood of spoofed sources cannot grow memory or
/// the log).
fn note_peer(peers: &mut Vec<SocketAddr>, from: SocketAddr, l: &Listener) {
    if peers.contains(&from) {
        return;
    }
    if peers.len() < MAX_PEERS {
        peers.push(from);
        log::info!(target: "lvs::sync", "sync: new peer {from} on {} (group {})", l.ifname, l.group);
    } else {
        log::debug!(target: "lvs::sync", "sync: datagram from {from} on {} (peers no longer tracked)", l.ifname);
    }
}

/// A daemon's settings for the log: interface, syncid, group and port, maxlen.
fn describe(c: &DaemonConfig) -> String {
    format!("interface {}, syncid {}, group {}:{}, maxlen {}", c.ifname, c.syncid, c.group(), c.port, c.maxlen)
}

/// The socket datagram `d` leaves by: socket `d.socket` of the daemon that sent it.
fn sender_for<'a>(daemons: &'a mut [Option<Daemon>; 2], d: &Datagram) -> Option<&'a mut Sender> {
    let [master, backup] = daemons;
    let daemon = match d.from {
        Role::Master => master,
        Role::Backup => backup,
    };
    daemon.as_mut()?.senders.get_mut(usize::from(d.socket))
}

/// A refused control call as an I/O error of the matching kind.
fn control_error(e: lvs_core::Error) -> io::Error {
    let kind = match e {
        lvs_core::Error::DaemonRunning(_) => io::ErrorKind::AlreadyExists,
        lvs_core::Error::NoDaemon(_) => io::ErrorKind::NotFound,
        _ => io::ErrorKind::InvalidInput,
    };
    io::Error::new(kind, e)
}

#[cfg(test)]
mod tests {
    //! Over the loopback interface, which carries IPv4 multicast without root (IPv6 needs an
    //! interface with multicast routes: see the root tests). Each test has ports of its own,
    //! offset by the process id so that concurrent runs keep apart.

    use std::time::Duration;

    use lvs_core::config::restore;
    use lvs_core::director::ResyncMessage;
    use lvs_core::neigh::{MacAddr, Neighbour};
    use lvs_core::proto::tcp::flags::{ACK, SYN};
    use lvs_core::sync::SyncParams;
    use lvs_core::testkit::{factory, Tcp, DIRECTOR_MAC};
    use lvs_core::{DirectorConfig, PortConfig};

    use super::*;

    /// Port `k` (0..20) of this test process's own range; each test takes its own ports.
    fn port(k: u16) -> u16 {
        20_000 + (std::process::id() % 2000) as u16 * 20 + k
    }

    fn on_lo(port: u16) -> DaemonConfig {
        DaemonConfig { port, ..DaemonConfig::new("lo") }
    }

    /// A director with a DR service at 203.0.113.100:80 and sync sysctls `p`.
    fn director(p: SyncParams) -> Director {
        let mut d = Director::new(DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC))), factory);
        d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
        restore(&mut d, "-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n").unwrap();
        d.set_sync_params(p).unwrap();
        d
    }

    /// Client port `sport`'s handshake as a DR director sees it: SYN, ACK, ACK. The third
    /// packet of an established connection is the one a master syncs.
    fn establish(d: &mut Director, now: Instant, sport: u16) {
        for f in [SYN, ACK, ACK] {
            let mut frame =
                Tcp::new(("198.51.100.2".parse().unwrap(), sport), ("203.0.113.100".parse().unwrap(), 80), f).frame();
            let _ = d.process(now, &mut frame);
        }
    }

    /// The connections, as `ipvsadm -Lcn` would name them, sorted.
    fn listing(d: &Director) -> Vec<String> {
        let mut l: Vec<String> = d
            .connections(Instant::from_secs(1))
            .iter()
            .map(|c| format!("{} {} {} {} {}", c.proto, c.client, c.virt, c.dest, c.state))
            .collect();
        l.sort();
        l
    }

    /// Polls until `done` or two seconds pass.
    fn until(mut done: impl FnMut() -> bool) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn a_backup_gets_the_masters_connections() {
        let p = SyncParams { ports: 2, ..SyncParams::default() };
        let (mut master, mut backup) = (director(p), director(p));
        let (mut ms, mut bs) = (SyncSockets::new(), SyncSockets::new());
        ms.start(&mut master, Role::Master, &on_lo(port(0))).unwrap();
        bs.start(&mut backup, Role::Backup, &on_lo(port(0))).unwrap();
        assert_eq!((ms.senders().count(), ms.listeners.len()), (2, 0), "no resync: nothing to listen for");
        assert_eq!((bs.senders().count(), bs.listeners.len()), (0, 2));
        assert_eq!(bs.buf.len(), 65_507, "lo's MTU (65536, capped at 65535) less the IPv4 and UDP headers");
        for sport in 1000..1100 {
            establish(&mut master, Instant::from_secs(1), sport);
        }
        // 50 records of 36 bytes per socket: one full message (40 records) each at once, the
        // partly filled rest once it has waited 2 s.
        ms.poll(Instant::from_secs(1), &mut master).unwrap();
        assert_eq!(ms.stats().sent, 2);
        ms.poll(Instant::from_secs(2), &mut master).unwrap();
        assert_eq!(ms.stats().sent, 2);
        ms.poll(Instant::from_secs(3), &mut master).unwrap();
        let sent = ms.stats().sent;
        assert_eq!(sent, 4);
        assert_eq!(sent, master.sync_stats().sent_messages);
        let arrived = until(|| {
            bs.poll(Instant::from_secs(1), &mut backup).unwrap();
            backup.conn_count() == 100
        });
        assert!(arrived, "{:?} {:?}", bs.stats(), backup.sync_stats());
        assert_eq!(listing(&backup), listing(&master));
        assert_eq!(bs.stats().received, sent);
        assert_eq!((bs.stats().truncated, bs.stats().recv_errors, ms.stats().send_errors), (0, 0, 0));
    }

    #[test]
    fn a_late_backup_asks_for_the_whole_table() {
        let p = SyncParams { resync_rate: 100_000, ..SyncParams::default() };
        let (mut master, mut backup) = (director(p), director(p));
        let (mut ms, mut bs) = (SyncSockets::new(), SyncSockets::new());
        ms.start(&mut master, Role::Master, &on_lo(port(2))).unwrap();
        assert_eq!((ms.senders().count(), ms.listeners.len()), (1, 1), "a master with resync hears requests");
        for sport in 2000..2050 {
            establish(&mut master, Instant::from_secs(1), sport);
        }
        ms.poll(Instant::from_secs(4), &mut master).unwrap();
        // The backup starts after the master sent everything: only a resync brings it up to date.
        bs.start(&mut backup, Role::Backup, &on_lo(port(2))).unwrap();
        assert_eq!((bs.senders().count(), bs.listeners.len()), (1, 1), "a backup with resync asks");
        let mut t = Instant::from_secs(5);
        let done = until(|| {
            t = t + Duration::from_millis(10);
            bs.poll(t, &mut backup).unwrap();
            ms.poll(t, &mut master).unwrap();
            backup.sync_stats().resyncs_done == 1 && backup.conn_count() == 50
        });
        assert!(done, "{:?} {:?}", backup.sync_stats(), master.sync_stats());
        assert_eq!(master.sync_stats().resync_requests, 1);
        assert_eq!(listing(&backup), listing(&master));
    }

    #[test]
    fn master_and_backup_at_once_listen_once() {
        let p = SyncParams { ports: 3, resync_rate: 10, ..SyncParams::default() };
        let mut d = director(p);
        let mut s = SyncSockets::new();
        s.start(&mut d, Role::Backup, &on_lo(port(3))).unwrap();
        s.start(&mut d, Role::Master, &on_lo(port(3))).unwrap();
        assert_eq!(s.senders().count(), 3 + 1, "the master's three and the backup's request socket");
        assert_eq!(s.listeners.len(), 3, "the master's request listener is the backup's first socket");
        assert_eq!(s.raw_fds().count(), 3);
        s.stop(&mut d, Role::Backup).unwrap();
        assert_eq!(s.listeners.len(), 1, "the master listens on its own again");
        assert_eq!(s.listeners[0].maxlen, 1472, "with the master's maxlen");
        assert_eq!(s.stop(&mut d, Role::Backup).unwrap_err().kind(), io::ErrorKind::NotFound);
        s.stop(&mut d, Role::Master).unwrap();
        assert_eq!((s.senders().count(), s.listeners.len()), (0, 0));
    }

    #[test]
    fn sockets_follow_daemons_started_on_the_director() {
        let mut d = director(SyncParams::default());
        let mut s = SyncSockets::new();
        d.start_sync(Role::Backup, &on_lo(port(6)), 1500).unwrap();
        s.poll(Instant::ZERO, &mut d).unwrap();
        assert_eq!(s.listeners.len(), 1);
        d.stop_sync(Role::Backup).unwrap();
        s.poll(Instant::ZERO, &mut d).unwrap();
        assert_eq!(s.listeners.len(), 0);
        // A daemon whose interface does not exist gets no sockets, and says so on each pass.
        d.start_sync(Role::Master, &DaemonConfig::new("lvs-no-such-if"), 1500).unwrap();
        assert!(s.poll(Instant::ZERO, &mut d).is_err());
        assert!(s.poll(Instant::ZERO, &mut d).is_err());
        assert_eq!(s.senders().count(), 0);
    }

    #[test]
    fn a_failed_start_changes_nothing() {
        let mut d = director(SyncParams::default());
        let mut s = SyncSockets::new();
        assert!(s.start(&mut d, Role::Master, &DaemonConfig::new("lvs-no-such-if")).is_err());
        assert!(d.sync_daemon(Role::Master).is_none());
        // An IPv6 group on an interface without IPv6 multicast routes: the socket fails.
        let v6 = DaemonConfig { group: Some("ff02::81".parse().unwrap()), ..on_lo(port(7)) };
        if s.start(&mut d, Role::Master, &v6).is_err() {
            assert!(d.sync_daemon(Role::Master).is_none());
            assert_eq!(s.senders().count(), 0);
        }
        s.start(&mut d, Role::Backup, &on_lo(port(7))).unwrap();
        assert_eq!(s.start(&mut d, Role::Backup, &on_lo(port(8))).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(d.sync_daemon(Role::Backup).map(|c| c.port), Some(port(7)));
    }

    #[test]
    fn a_datagram_longer_than_maxlen_is_cut_short() {
        let mut backup = director(SyncParams::default());
        let mut bs = SyncSockets::new();
        bs.start(&mut backup, Role::Backup, &DaemonConfig { maxlen: 1024, ..on_lo(port(9)) }).unwrap();
        let to = SocketAddr::new(lvs_core::sync::DEFAULT_GROUP, port(9));
        let o = mcast::SendOpts { ifname: "lo", ifindex: linux::ifindex("lo").unwrap(), ttl: 1, sndbuf: 0 };
        let tx = mcast::send_socket(to, &o).unwrap();
        tx.send(&[0u8; 2000]).unwrap();
        assert!(until(|| {
            bs.poll(Instant::ZERO, &mut backup).unwrap();
            bs.stats().received == 1
        }));
        assert_eq!(bs.stats().truncated, 1);
        assert_eq!(backup.sync_stats().refused, 1, "its first 1024 bytes do not make a message");
    }

    #[test]
    fn resync_requests_leave_by_the_backup_and_the_rest_by_the_master() {
        let p = SyncParams { ports: 2, resync_rate: 10, ..SyncParams::default() };
        let mut d = director(p);
        let mut s = SyncSockets::new();
        s.start(&mut d, Role::Master, &on_lo(port(10))).unwrap();
        let record = Datagram { from: Role::Master, socket: 1, bytes: vec![0; 8] };
        let request = Datagram { from: Role::Backup, socket: 0, bytes: ResyncMessage::Request.encode(255) };
        let start = Datagram { from: Role::Master, socket: 0, bytes: ResyncMessage::Start.encode(255) };
        let addr = |s: &mut Sender| s.sock.peer_addr().unwrap().port();
        assert_eq!(sender_for(&mut s.daemons, &record).map(addr), Some(port(10) + 1));
        assert_eq!(sender_for(&mut s.daemons, &start).map(addr), Some(port(10)));
        assert!(sender_for(&mut s.daemons, &request).is_none(), "no backup runs");
        assert!(sender_for(&mut s.daemons, &Datagram { socket: 2, ..record }).is_none(), "no third socket");
        s.start(&mut d, Role::Backup, &on_lo(port(10))).unwrap();
        assert_eq!(sender_for(&mut s.daemons, &request).map(addr), Some(port(10)));
    }

    #[test]
    fn runtimes_move_sync_datagrams_on_every_pass() {
        use crate::runtime::{MonotonicClock, Runtime};

        let mut master = Runtime::new(director(SyncParams::default()), Vec::new());
        let mut backup = Runtime::new(director(SyncParams::default()), Vec::new());
        master.start_sync(Role::Master, &on_lo(port(12))).unwrap();
        backup.start_sync(Role::Backup, &on_lo(port(12))).unwrap();
        let stop = backup.stop_handle();
        let backup = std::thread::spawn(move || {
            backup.run(&MonotonicClock::default()).unwrap();
            backup
        });
        for sport in 3000..3010 {
            establish(master.director_mut(), Instant::from_secs(1), sport);
        }
        master.poll_once(Instant::from_secs(1)).unwrap();
        assert_eq!(master.sync().stats().sent, 0);
        master.poll_once(Instant::from_secs(3)).unwrap();
        assert_eq!(master.sync().stats().sent, 1, "the flush of the partly filled message");
        // The backup's loop sleeps in poll until the datagram wakes it.
        std::thread::sleep(Duration::from_millis(500));
        stop.stop();
        let mut backup = backup.join().unwrap();
        assert_eq!(backup.sync().stats().received, 1);
        assert_eq!(listing(backup.director()), listing(master.director()));
        backup.stop_sync(Role::Backup).unwrap();
        assert_eq!(backup.sync().raw_fds().count(), 0);
    }
}
