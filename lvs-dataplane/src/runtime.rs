//! The loop that drives a [`Director`] over one or more [`PacketIo`] ports (quinn's driver):
//! receive a burst, `process_burst`, transmit each verdict on its port, hand the frames that are
//! the application's (`Local`, `NotMine`) back to it, `tick` on time, move the sync daemons'
//! datagrams, run the health checks, and stop cleanly when asked; and [`Shards`], one such loop
//! per core. Frames move between the receive pool, the
//! transmit queues and the application's queue by swapping buffers, so nothing is copied or
//! allocated per packet after warm-up.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use lvs_core::addr::{Endpoint, ServiceKey};
use lvs_core::config::prometheus::Snapshot;
use lvs_core::config::{render_stats, stats_rows, sum_rows, StatsRow};
use lvs_core::dest::RealServer;
use lvs_core::health::Control;
use lvs_core::sync::{DaemonConfig, Role};
use lvs_core::wire::Frame;
use lvs_core::{Command, Director, Instant, Verdict};

use crate::filter::Filter;
use crate::handoff::Handoff;
use crate::health::{timeout_ms, HealthChecker};
use crate::io::{fresh_frame, PacketIo};
use crate::steer::{Owner, Steer};
use crate::sync::SyncSockets;

/// A monotonic clock turned into the director's [`Instant`]s.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: std::time::Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock { origin: std::time::Instant::now() }
    }
}

impl MonotonicClock {
    /// The current time.
    pub fn now(&self) -> Instant {
        Instant::from_std(std::time::Instant::now(), self.origin)
    }
}

/// Asks a running loop to stop; cheap to clone and to keep in another thread.
#[derive(Clone, Debug, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the loop to stop after its current pass.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the loop did. Every frame received, from a port or from another shard, is counted once
/// more in exactly one other field: `rx + from_shards + fragments == tx + tx_lost + dropped +
/// local + not_mine + local_lost + handed_off + handoff_lost` once the transmit queues are
/// flushed, which [`Runtime::poll_once`] does before it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Frames received.
    pub rx: u64,
    /// Frames transmitted (each fragment of a fragmented tunnel packet counts).
    pub tx: u64,
    /// Frames the director dropped (the director counts them by reason).
    pub dropped: u64,
    /// Frames for a `Local` real server, queued for the application.
    pub local: u64,
    /// Frames for no virtual service, queued for the application.
    pub not_mine: u64,
    /// Frames a port would not take (its queue was full) or a verdict named no such port.
    pub tx_lost: u64,
    /// Frames the director added: the fragments beyond the first of tunnelled packets too long
    /// for the tunnel MTU (each is in `tx` or `tx_lost` too, so `rx + fragments` is what the
    /// other counters share).
    pub fragments: u64,
    /// Frames for the application (`Local`, `NotMine`) lost because its queue was full.
    pub local_lost: u64,
    /// Frames received here that another shard owns, handed to it ([`Runtime::with_handoff`]).
    pub handed_off: u64,
    /// Frames another shard owns that were dropped because its inbox was full.
    pub handoff_lost: u64,
    /// Frames other shards handed to this one (each is in their `rx`, not in this one's).
    pub from_shards: u64,
}

impl std::ops::AddAssign for RuntimeStats {
    /// Adds another loop's counters field by field (shards are summed this way).
    fn add_assign(&mut self, o: RuntimeStats) {
        self.rx += o.rx;
        self.tx += o.tx;
        self.dropped += o.dropped;
        self.local += o.local;
        self.not_mine += o.not_mine;
        self.tx_lost += o.tx_lost;
        self.fragments += o.fragments;
        self.local_lost += o.local_lost;
        self.handed_off += o.handed_off;
        self.handoff_lost += o.handoff_lost;
        self.from_shards += o.from_shards;
    }
}

/// Why the director handed a frame back to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryKind {
    /// For a real server forwarded `Local` (`Verdict::Local`): the application's own stack
    /// serves it.
    Local,
    /// For no virtual service (`Verdict::NotMine`): ARP, neighbour discovery, traffic to the
    /// director itself. Untouched.
    NotMine,
}

/// A frame the director handed back to the application, as [`Runtime::drain_local`] gives it.
#[derive(Clone, Copy, Debug)]
pub struct Delivery<'a> {
    /// Why it is the application's.
    pub kind: DeliveryKind,
    /// The frame; [`Frame::port`] is the port it arrived on.
    pub frame: &'a Frame,
}

/// Handles the frames a runtime hands back (see [`Runtime::on_local`]).
pub type LocalHandler = dyn FnMut(Delivery<'_>) + Send;

/// How many frames wait for the application by default before further ones are counted lost.
pub const DEFAULT_LOCAL_CAPACITY: usize = 256;

/// Takes the frame out of `slot`, putting a spare buffer (or, while the pools warm up, a new
/// one) in its place.
fn take(slot: &mut Frame, spare: &mut Vec<Frame>) -> Frame {
    std::mem::replace(slot, spare.pop().unwrap_or_else(fresh_frame))
}

/// Frames waiting for the application, at most `capacity` of them.
struct LocalQueue {
    frames: Vec<(DeliveryKind, Frame)>,
    capacity: usize,
}

impl LocalQueue {
    /// Queues the frame in `slot` (a spare buffer takes its place), or counts it lost when full.
    fn offer(&mut self, kind: DeliveryKind, slot: &mut Frame, spare: &mut Vec<Frame>, stats: &mut RuntimeStats) {
        if self.frames.len() >= self.capacity {
            stats.local_lost += 1;
            return;
        }
        match kind {
            DeliveryKind::Local => stats.local += 1,
            DeliveryKind::NotMine => stats.not_mine += 1,
        }
        self.frames.push((kind, take(slot, spare)));
    }
}

/// A director, its ports and its sync daemons' sockets.
///
/// The sockets follow the sync daemons the director runs, whether started with
/// [`Runtime::start_sync`] or on the director itself: every pass gives the director the sync
/// datagrams that arrived and sends those it hands out (see [`SyncSockets`]).
///
/// Frames the director leaves to the application — for a `Local` real server or for no
/// virtual service — wait in a bounded queue, with the port they came from, until the
/// application takes them with [`Runtime::drain_local`] or a handler set with
/// [`Runtime::on_local`]; when the queue is full they are counted in
/// [`RuntimeStats::local_lost`].
///
/// ```
/// # use lvs_core::neigh::{MacAddr, Neighbour};
/// # use lvs_core::testkit::{factory, Tcp, DIRECTOR_MAC};
/// # use lvs_core::{config::restore, Director, DirectorConfig, PortConfig};
/// use lvs_core::Instant;
/// use lvs_dataplane::pcap::Captured;
/// use lvs_dataplane::replay::PcapReplay;
/// use lvs_dataplane::runtime::{DeliveryKind, Runtime};
///
/// # let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
/// # let mut director = Director::new(cfg, factory);
/// # let rs = Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 };
/// # director.set_neighbour("192.0.2.11".parse().unwrap(), rs);
/// // A DR service (an application takes its schedulers from lvs-sched; `first` is the core's
/// // test scheduler).
/// restore(&mut director, "-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n")?;
/// # let client = ("198.51.100.2".parse().unwrap(), 1024);
/// # let syn = Tcp::new(client, ("203.0.113.100".parse().unwrap(), 80), 2).build();
/// # let other = Tcp::new(client, ("198.51.100.1".parse().unwrap(), 22), 2).build();
/// // A SYN for the service and one for an address the director does not balance.
/// let capture = vec![Captured { ts_ns: 0, data: syn }, Captured { ts_ns: 0, data: other }];
/// let mut rt = Runtime::new(director, vec![Box::new(PcapReplay::new(capture))]);
/// assert_eq!(rt.poll_once(Instant::ZERO)?, 2);
/// assert_eq!(rt.stats().tx, 1, "the SYN went to the real server");
/// // The other frame is for no virtual service: the application gets it.
/// let mut mine = Vec::new();
/// rt.drain_local(|d| mine.push((d.kind, d.frame.port)));
/// assert_eq!(mine, [(DeliveryKind::NotMine, 0)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runtime {
    director: Director,
    ports: Vec<Box<dyn PacketIo + Send>>,
    rx: Vec<Frame>,
    verdicts: Vec<Verdict>,
    tx: Vec<Vec<Frame>>,
    spare: Vec<Frame>,
    local: LocalQueue,
    on_local: Option<Box<LocalHandler>>,
    stats: RuntimeStats,
    stop: StopHandle,
    sync: SyncSockets,
    health: Option<HealthChecker>,
    /// The descriptors `run` waits on, refilled before each wait.
    wait_fds: Vec<RawFd>,
    /// Ports receive only the director's frames ([`Runtime::with_port_filter`]).
    port_filter: Option<PortFilter>,
    /// This shard's place among shards that hand frames to their owners
    /// ([`Runtime::with_handoff`]).
    peers: Option<Peers>,
    /// The pause after a pass that took a few frames ([`Runtime::with_coalescing`]).
    coalesce: Option<std::time::Duration>,
}

/// A shard that hands the frames it receives for others to them, and takes theirs.
struct Peers {
    handoff: Arc<Handoff>,
    /// This shard's number.
    me: usize,
    steer: Steer,
    /// Who owns a frame, from the ports' filter; `None` while every frame stays (before the
    /// first filter, or with [`Steer::FlowHash`]).
    owner: Option<Owner>,
}

/// The filter the ports were given, and when to look at the director's services again.
struct PortFilter {
    /// The application's own classes (fwmark services), added to the director's.
    extra: Filter,
    /// What the ports have now; `None` until the first pass, or after a control change.
    applied: Option<Filter>,
    /// Health checks add and remove servers on their own: the services are read again by then.
    recheck: Instant,
}

/// How often the services are read again for the port filter when no control call said so.
const FILTER_RECHECK: Duration = Duration::from_secs(1);

impl Runtime {
    /// A loop over `ports`; port `i` is what `Verdict::Transmit { port: i, .. }` names and what
    /// the frames received from it carry in [`Frame::port`]. A verdict names ports by `u16`, so
    /// ports beyond the first 65 536 are never polled. Up to [`DEFAULT_LOCAL_CAPACITY`] frames
    /// wait for the application. A director without a prefetch hook gets this processor's
    /// ([`prefetch::hook`](crate::prefetch::hook)).
    pub fn new(mut director: Director, ports: Vec<Box<dyn PacketIo + Send>>) -> Self {
        if director.config().prefetch.is_none() {
            director.set_prefetch(crate::prefetch::hook());
        }
        let burst = ports.iter().map(|p| p.caps().max_burst).max().unwrap_or(32).clamp(1, 256);
        let n = ports.len();
        Runtime {
            director,
            rx: (0..burst).map(|_| fresh_frame()).collect(),
            verdicts: vec![Verdict::NotMine; burst],
            tx: (0..n).map(|_| Vec::with_capacity(burst)).collect(),
            spare: (0..burst).map(|_| fresh_frame()).collect(),
            local: LocalQueue { frames: Vec::new(), capacity: DEFAULT_LOCAL_CAPACITY },
            on_local: None,
            ports,
            stats: RuntimeStats::default(),
            stop: StopHandle::default(),
            sync: SyncSockets::new(),
            health: None,
            wait_fds: Vec::new(),
            port_filter: None,
            peers: None,
            coalesce: None,
        }
    }

    /// Coalesces wake-ups as a NIC coalesces interrupts (`ethtool -C rx-usecs`): after a pass
    /// that took some frames but less than a quarter of a burst, [`Runtime::run`] sleeps
    /// `pause` before the next pass instead of waiting in `poll`, which wakes the loop for
    /// every frame, so that what arrives meanwhile is taken in one pass; a pass that then finds
    /// nothing goes back to `poll`, and one that finds more goes on at once (a flood is never
    /// paused for). Under steady traffic the loop wakes once per `pause` instead of once per
    /// frame, for up to `pause` (plus the timer's slack) of added latency; at idle nothing
    /// changes.
    pub fn with_coalescing(mut self, pause: std::time::Duration) -> Self {
        self.coalesce = Some(pause).filter(|p| !p.is_zero());
        self
    }

    /// Makes this loop shard `shard` of the shards that share `handoff`: each frame its ports
    /// receive goes through the fanout program `steer` writes for the ports' filter
    /// ([`Steer::owner`]: [`Steer::program`] run as the kernel runs a `PACKET_FANOUT_CBPF`
    /// program, its value modulo the number of shards), and a frame another shard owns goes to
    /// that shard's inbox (see [`crate::handoff`]); every pass takes this shard's inbox as a
    /// burst of its own. This is how shards that each take one receive queue (AF_XDP) keep the
    /// ownership rule of shards that share a fanout group: a NAT reply, and with
    /// [`Steer::Client`] every template of a client, on the shard of its connection. Turns the
    /// port filter on ([`Runtime::with_port_filter`]) if it is not; [`Steer::FlowHash`] hands
    /// nothing over (each frame stays on the queue the NIC's hash chose).
    pub fn with_handoff(mut self, handoff: Arc<Handoff>, shard: usize, steer: Steer) -> Self {
        if self.port_filter.is_none() {
            self = self.with_port_filter(Filter::default());
        }
        self.peers = Some(Peers { handoff, me: shard, steer, owner: None });
        self
    }

    /// Has every port receive only what the director handles ([`Filter::from_director`], plus
    /// `extra` for the application's fwmark classes) where its backend can filter: a classic
    /// BPF program on AF_PACKET, the XDP program's map on AF_XDP, so that the kernel stops
    /// copying ARP, management traffic and DR replies to the director. The filter follows the
    /// services: it is rebuilt on the pass after a call to [`Runtime::director_mut`] or
    /// [`Runtime::health_mut`], and once a second for the health checks' own changes. Frames
    /// it keeps out never reach [`Runtime::on_local`].
    pub fn with_port_filter(mut self, extra: Filter) -> Self {
        self.port_filter = Some(PortFilter { extra, applied: None, recheck: Instant::ZERO });
        self
    }

    /// Gives the ports the filter of the director's services as they are now, if it changed.
    fn refresh_port_filter(&mut self, now: Instant) -> io::Result<()> {
        let Some(pf) = self.port_filter.as_mut() else { return Ok(()) };
        if pf.applied.is_some() && now < pf.recheck {
            return Ok(());
        }
        pf.recheck = now + FILTER_RECHECK;
        let mut f = Filter::from_director(&self.director);
        for m in pf.extra.matches() {
            f.add(*m);
        }
        if pf.applied.as_ref() == Some(&f) {
            return Ok(());
        }
        if let Some(peers) = self.peers.as_mut() {
            peers.owner = peers.steer.owner(&f, peers.handoff.shards());
        }
        for (p, port) in self.ports.iter_mut().enumerate() {
            port.set_filter(&f).inspect_err(|e| {
                log::error!(target: "lvs::runtime", "port {p}: filter not set: {e}");
            })?;
        }
        log::debug!(target: "lvs::runtime", "ports filtered to {} classes of frames", f.matches().count());
        pf.applied = Some(f);
        Ok(())
    }

    /// Marks the port filter for a rebuild on the next pass.
    fn filter_stale(&mut self) {
        if let Some(pf) = self.port_filter.as_mut() {
            pf.applied = None;
        }
    }

    /// Runs health checks in this loop: every pass moves the checker on (results in, timeouts,
    /// the probes that came due started), its reactions go straight to the director, and the
    /// loop's waits end for the prober's sockets and the monitor's deadlines. The monitor's
    /// services were added with this director as their [`Control`], on the clock the loop
    /// runs with.
    ///
    /// One loop for packets, sync and health keeps the director on one thread without locks:
    /// a check's reaction is applied between two bursts, never in the middle of one.
    pub fn with_health(mut self, checker: HealthChecker) -> Self {
        self.health = Some(checker);
        self
    }

    /// The health checker, for its monitor's status and its events.
    pub fn health(&self) -> Option<&HealthChecker> {
        self.health.as_ref()
    }

    /// The health checker and the director it changes, for control calls on the monitor
    /// (adding a server, forcing a state) between passes.
    pub fn health_mut(&mut self) -> Option<(&mut HealthChecker, &mut Director)> {
        self.filter_stale();
        Some((self.health.as_mut()?, &mut self.director))
    }

    /// How many frames may wait for the application; 0 hands none back (an application whose
    /// ports give it copies anyway, as AF_PACKET does, need not keep them twice).
    pub fn with_local_capacity(mut self, frames: usize) -> Self {
        self.local.capacity = frames;
        self
    }

    /// Gives every frame handed back to `handler`, at the end of each pass. This is how
    /// [`Runtime::run`] and [`Shards`] hand frames back; a handler typically writes them to a
    /// TAP or the application's own stack, or sends them to another thread.
    pub fn on_local(mut self, handler: impl FnMut(Delivery<'_>) + Send + 'static) -> Self {
        self.on_local = Some(Box::new(handler));
        self
    }

    /// Hands every frame waiting for the application to `f`, oldest first, then takes the
    /// buffers back into the pool. Returns how many there were. Without a handler set with
    /// [`Runtime::on_local`], an application that steps [`Runtime::poll_once`] itself calls
    /// this between passes.
    pub fn drain_local(&mut self, mut f: impl FnMut(Delivery<'_>)) -> usize {
        let n = self.local.frames.len();
        for (kind, frame) in self.local.frames.drain(..) {
            f(Delivery { kind, frame: &frame });
            self.spare.push(frame);
        }
        n
    }

    /// A handle that stops [`Runtime::run`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The director.
    pub fn director(&self) -> &Director {
        &self.director
    }

    /// The director, for control-plane changes between passes.
    pub fn director_mut(&mut self) -> &mut Director {
        self.filter_stale();
        &mut self.director
    }

    /// The loop's counters.
    pub fn stats(&self) -> RuntimeStats {
        self.stats
    }

    /// The ports, for inspection after a run.
    pub fn ports(&self) -> &[Box<dyn PacketIo + Send>] {
        &self.ports
    }

    /// Starts sync daemon `role` on the director and opens its sockets
    /// (`ipvsadm --start-daemon`); see [`SyncSockets::start`].
    ///
    /// # Errors
    /// As [`SyncSockets::start`]; the daemon then does not run.
    pub fn start_sync(&mut self, role: Role, cfg: &DaemonConfig) -> io::Result<()> {
        self.sync.start(&mut self.director, role, cfg).inspect_err(|e| {
            log::error!(target: "lvs::sync", "sync {} daemon on {} not started: {e}", role.name(), cfg.ifname);
        })
    }

    /// Stops sync daemon `role` and closes its sockets (`ipvsadm --stop-daemon`).
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] when that daemon does not run.
    pub fn stop_sync(&mut self, role: Role) -> io::Result<()> {
        self.sync.stop(&mut self.director, role)
    }

    /// The sync daemons' sockets, for their counters ([`SyncSockets::stats`]).
    pub fn sync(&self) -> &SyncSockets {
        &self.sync
    }

    /// One pass: a burst from every port through the director, then transmit, queue what is
    /// the application's (and give it to the handler, if there is one), tick, a pass of the
    /// sync sockets ([`SyncSockets::poll`]) and one of the health checker
    /// ([`HealthChecker::poll`]). Returns how many frames were received.
    ///
    /// # Errors
    /// A port's system error; a sync daemon's socket that cannot be opened; an error of the
    /// health prober's epoll set.
    pub fn poll_once(&mut self, now: Instant) -> io::Result<usize> {
        self.refresh_port_filter(now)?;
        let mut total = 0;
        for (p, arrival) in (0..self.ports.len()).zip(0..=u16::MAX) {
            let Some(port) = self.ports.get_mut(p) else { continue };
            let n = port.recv(now, &mut self.rx).inspect_err(|e| {
                log::error!(target: "lvs::runtime", "port {p}: receive failed: {e}");
            })?;
            if n == 0 {
                continue;
            }
            total += n;
            self.stats.rx += n as u64;
            for f in &mut self.rx[..n] {
                f.port = arrival;
            }
            let own = self.hand_off(n);
            self.forward(now, own)?;
        }
        if let Some(peers) = &self.peers {
            let n = peers.handoff.take(peers.me, &mut self.rx);
            if n > 0 {
                total += n;
                self.stats.from_shards += n as u64;
                self.forward(now, n)?;
            }
        }
        if self.director.next_deadline().is_some_and(|t| t <= now) {
            self.director.tick(now);
        }
        self.sync.poll(now, &mut self.director)?;
        if let Some(h) = self.health.as_mut() {
            while let Some(s) = self.director.poll_suspect() {
                h.suspect(now, &s);
            }
            h.poll(now, &mut self.director)?;
        }
        Ok(total)
    }

    /// Hands the frames of `rx[..n]` that other shards own to their inboxes (or counts them
    /// lost when full) and moves this shard's own to the front, in arrival order; returns how
    /// many are this shard's.
    fn hand_off(&mut self, n: usize) -> usize {
        let Some(Peers { handoff, me, owner: Some(owner), .. }) = &self.peers else { return n };
        let mut own = 0;
        for i in 0..n {
            let Some(frame) = self.rx.get_mut(i) else { break };
            let owner = owner.of(frame.data());
            if owner == *me {
                self.rx.swap(own, i);
                own += 1;
            } else if handoff.offer(owner, frame) {
                self.stats.handed_off += 1;
            } else {
                self.stats.handoff_lost += 1;
            }
        }
        if own < n {
            handoff.wake();
        }
        own
    }

    /// `rx[..n]` through the director as one burst: each frame to its port's transmit queue,
    /// the application's queue or the drop count; then transmit, and hand the application's
    /// frames to its handler.
    fn forward(&mut self, now: Instant, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let (frames, verdicts) = (&mut self.rx[..n], &mut self.verdicts[..n]);
        self.director.process_burst(now, frames, verdicts);
        // The fragments beyond the first of each fragmented frame, in verdict order.
        let mut fragments = self.director.fragments_mut().iter_mut();
        for (slot, verdict) in self.rx.iter_mut().zip(&self.verdicts[..n]) {
            let (spare, stats) = (&mut self.spare, &mut self.stats);
            match *verdict {
                Verdict::Transmit { port, .. } => match self.tx.get_mut(usize::from(port)) {
                    // Move the rewritten frame to its port's queue.
                    Some(q) => q.push(take(slot, spare)),
                    None => stats.tx_lost += 1,
                },
                Verdict::Fragmented { port, more, .. } => {
                    stats.fragments += u64::from(more);
                    let rest = fragments.by_ref().take(usize::from(more));
                    match self.tx.get_mut(usize::from(port)) {
                        // The first fragment, then the others, each buffer swapped for a
                        // spare one that the director reuses.
                        Some(q) => {
                            q.push(take(slot, spare));
                            q.extend(rest.map(|f| take(f, spare)));
                        }
                        None => {
                            // Past them all the same, or the next fragmented frame would take
                            // these as its own.
                            rest.for_each(drop);
                            stats.tx_lost += 1 + u64::from(more);
                        }
                    }
                }
                Verdict::Drop(_) => stats.dropped += 1,
                Verdict::Local => self.local.offer(DeliveryKind::Local, slot, spare, stats),
                Verdict::NotMine => self.local.offer(DeliveryKind::NotMine, slot, spare, stats),
            }
        }
        self.flush(now)?;
        // Each burst is handed over before the next one can fill the queue.
        if let Some(mut handler) = self.on_local.take() {
            self.drain_local(&mut handler);
            self.on_local = Some(handler);
        }
        Ok(())
    }

    fn flush(&mut self, now: Instant) -> io::Result<()> {
        for (p, q) in self.tx.iter_mut().enumerate() {
            if q.is_empty() {
                continue;
            }
            let sent = match self.ports.get_mut(p) {
                Some(port) => port.send(now, q),
                None => Ok(0),
            };
            // On an error nothing of the queue counts as sent; its buffers go back either way.
            let n = *sent.as_ref().unwrap_or(&0);
            self.stats.tx += n as u64;
            self.stats.tx_lost += (q.len() - n) as u64;
            self.spare.append(q);
            if let Err(e) = sent {
                log::error!(target: "lvs::runtime", "port {p}: send failed: {e}");
                return Err(e);
            }
        }
        Ok(())
    }

    /// Runs until the stop handle is used, sleeping in `poll` while there is nothing to do:
    /// until a port or a sync socket is readable, at most until the director's next deadline,
    /// and never more than 10 ms (1 ms while a sync datagram waits for room). Frames for the
    /// application go to the handler set with [`Runtime::on_local`]; without one nobody can
    /// take them while the loop runs, so they are released after each pass (counted in
    /// `local` and `not_mine`; with AF_PACKET the kernel keeps its own copy).
    ///
    /// # Errors
    /// A port's system error; a sync daemon's socket that cannot be opened.
    pub fn run(&mut self, clock: &MonotonicClock) -> io::Result<()> {
        self.run_with(clock, |_| {})
    }

    /// [`Runtime::run`], calling `between` after every pass: for an application that reads
    /// counters, applies control-plane changes or answers requests while the loop runs (its
    /// own thread then keeps the director without locks). `between` should return quickly;
    /// the loop waits for traffic only after it.
    ///
    /// ```no_run
    /// # use lvs_core::neigh::MacAddr;
    /// # use lvs_core::testkit::{factory, DIRECTOR_MAC};
    /// # use lvs_core::{Director, DirectorConfig, PortConfig};
    /// use lvs_dataplane::runtime::{MonotonicClock, Runtime};
    ///
    /// # let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
    /// # let director = Director::new(cfg, factory);
    /// let mut rt = Runtime::new(director, Vec::new());
    /// let (mut shown, stop) = (0, rt.stop_handle());
    /// rt.run_with(&MonotonicClock::default(), |rt| {
    ///     // Report each resync a backup completes, then stop after the first.
    ///     let done = rt.director().sync_stats().resyncs_done;
    ///     if done > shown {
    ///         shown = done;
    ///         println!("resynced");
    ///         stop.stop();
    ///     }
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Runtime::run`].
    pub fn run_with(&mut self, clock: &MonotonicClock, mut between: impl FnMut(&mut Runtime)) -> io::Result<()> {
        let release = self.on_local.is_none();
        while !self.stop.is_stopped() {
            let now = clock.now();
            let got = self.poll_once(now)?;
            if release {
                self.drain_local(|_| {});
            }
            between(self);
            if got == 0 {
                self.idle(now)?;
            } else if let Some(pause) = self.coalesce.filter(|_| got * 4 < self.rx.len()) {
                std::thread::sleep(pause);
            }
        }
        Ok(())
    }

    /// Waits for traffic: until a port, sync socket or health probe is readable, the
    /// director's or the health checker's next deadline, or 10 ms (1 ms while a sync datagram
    /// waits for room in a send buffer).
    fn idle(&mut self, now: Instant) -> io::Result<()> {
        // The director keeps its sync datagrams while one is held, so its deadline may have
        // passed: wait a little for room rather than spin.
        let health = self.health.as_ref().and_then(|h| h.next_deadline(now));
        let wait = if self.sync.is_blocked() {
            1
        } else {
            // Rounded up: waking just before a deadline would only spin until it.
            self.director
                .next_deadline()
                .into_iter()
                .chain(health)
                .min()
                .map_or(10, |t| timeout_ms(t.saturating_since(now)).clamp(0, 10))
        };
        self.wait_fds.clear();
        self.wait_fds.extend(self.ports.iter().filter_map(|p| p.raw_fd()));
        self.wait_fds.extend(self.sync.raw_fds());
        self.wait_fds.extend(self.health.as_ref().map(HealthChecker::raw_fd));
        if let Some(peers) = &self.peers {
            // Frames handed over meanwhile: no waiting. Otherwise the first one wakes us.
            if !peers.handoff.may_sleep(peers.me) {
                return Ok(());
            }
            self.wait_fds.extend(peers.handoff.wake_fd(peers.me));
        }
        let waited = if self.wait_fds.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(wait as u64));
            Ok(())
        } else {
            crate::sys::linux::poll_readable(&self.wait_fds, wait)
        };
        if let Some(peers) = &self.peers {
            peers.handoff.awake(peers.me);
        }
        waited
    }
}

/// Work for one shard, run on its thread between two passes (see [`Shards::each`]).
type Job = Box<dyn FnOnce(&mut Runtime) + Send>;

/// Builds one shard's loop — its director, its ports and, to get frames handed back, a handler
/// set with [`Runtime::on_local`] — called on the shard's own thread (so it can enter a
/// namespace or open per-core sockets there).
pub type ShardFactory = dyn Fn(usize) -> io::Result<Runtime> + Send + Sync;

/// Share-nothing scale-out: one [`Director`] per thread, frames steered to shards by the ports
/// (an AF_PACKET fanout group, by the kernel's flow hash or by the client's side as
/// [`crate::steer::Steer`] says, so that a NAT reply reaches the shard of its request) or,
/// where each shard takes one receive queue (AF_XDP), by the shards themselves, which hand a
/// frame that arrived on the wrong queue to its owner ([`Runtime::with_handoff`]);
/// control-plane changes go to every shard and statistics are summed for listing. Scheduler
/// state, ActiveConn/InActConn and the `-x/-y` thresholds are each shard's own. Each shard hands frames back through its runtime's handler
/// ([`Runtime::on_local`]), on its own thread.
pub struct Shards {
    ctl: Vec<mpsc::Sender<Job>>,
    stop: StopHandle,
    threads: Vec<std::thread::JoinHandle<io::Result<()>>>,
}

impl Shards {
    /// Starts `n` shards, each built by `make(i)` on its own thread, one after another: shard
    /// `i` is built once shard `i - 1` is, so its sockets are the `i`-th of their fanout
    /// groups (the kernel numbers a group's sockets in the order they join). A shard sharing
    /// FullNAT local addresses takes `DirectorConfig::fnat_port_share` `i` of `n`.
    ///
    /// # Errors
    /// The first shard's setup error.
    pub fn spawn(n: usize, make: Arc<ShardFactory>) -> io::Result<Shards> {
        let stop = StopHandle::default();
        let (mut ctl, mut threads) = (Vec::new(), Vec::new());
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        for i in 0..n {
            let (tx, rx) = mpsc::channel::<Job>();
            let (make, shard_stop, ready) = (make.clone(), stop.clone(), ready_tx.clone());
            threads.push(std::thread::spawn(move || -> io::Result<()> {
                // The ports get their filter (and a steered fanout group its program, which
                // this shard's sockets just reset on joining) before the next shard starts.
                let clock = MonotonicClock::default();
                let mut rt = match make(i).and_then(|mut rt| rt.refresh_port_filter(clock.now()).map(|()| rt)) {
                    Ok(rt) => rt,
                    Err(e) => {
                        log::error!(target: "lvs::runtime", "shard {i} cannot start: {e}");
                        let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                let _ = ready.send(Ok(()));
                rt.stop = shard_stop;
                log::info!(target: "lvs::runtime", "shard {i} running");
                let result = rt.run_with(&clock, |rt| {
                    while let Ok(job) = rx.try_recv() {
                        job(rt);
                    }
                });
                match &result {
                    Ok(()) => log::info!(target: "lvs::runtime", "shard {i} stopped"),
                    Err(e) => log::error!(target: "lvs::runtime", "shard {i} stopped: {e}"),
                }
                result
            }));
            ctl.push(tx);
            // One shard at a time, so that shard i is the i-th socket of every fanout group
            // its ports join (the FullNAT local port shares count on it).
            if let Ok(Err(e)) = ready_rx.recv() {
                stop.stop();
                return Err(e);
            }
        }
        Ok(Shards { ctl, stop, threads })
    }

    /// Runs `f` on every running shard's loop between two of its passes, all shards at once,
    /// and returns what each gave, in shard order (a shard that has stopped on an error is
    /// left out). This is how an application reaches the shards' directors: control calls,
    /// listings, counters.
    pub fn each<R: Send + 'static>(&self, f: impl Fn(&mut Runtime) -> R + Send + Sync + 'static) -> Vec<R> {
        let f = Arc::new(f);
        let asked: Vec<mpsc::Receiver<R>> = self
            .ctl
            .iter()
            .filter_map(|tx| {
                let (rtx, rrx) = mpsc::channel();
                let f = f.clone();
                let job: Job = Box::new(move |rt| {
                    let _ = rtx.send(f(rt));
                });
                tx.send(job).ok().map(|()| rrx)
            })
            .collect();
        asked.into_iter().filter_map(|r| r.recv().ok()).collect()
    }

    /// Runs `f` on the first running shard's loop between two of its passes and returns what
    /// it gave; `None` when no shard runs. For what one shard answers alone (a listing).
    pub fn first<R: Send + 'static>(&self, f: impl FnOnce(&mut Runtime) -> R + Send + 'static) -> Option<R> {
        let (rtx, rrx) = mpsc::channel();
        let job: Job = Box::new(move |rt| {
            let _ = rtx.send(f(rt));
        });
        let mut job = Some(job);
        for tx in &self.ctl {
            match tx.send(job.take()?) {
                Ok(()) => return rrx.recv().ok(),
                // A stopped shard hands the job back: try the next.
                Err(mpsc::SendError(back)) => job = Some(back),
            }
        }
        None
    }

    /// Applies a control-plane command to every shard.
    ///
    /// # Errors
    /// The first shard's error (shards share one configuration, so they fail alike).
    pub fn apply(&self, c: &Command) -> Result<(), lvs_core::Error> {
        let cmd = c.clone();
        let result = self.each(move |rt| rt.director_mut().execute(&cmd)).into_iter().collect::<Result<(), _>>();
        match &result {
            Ok(()) => log::debug!(target: "lvs::config", "applied on {} shards: {c:?}", self.ctl.len()),
            Err(e) => log::warn!(target: "lvs::config", "refused: {c:?}: {e}"),
        }
        result
    }

    /// Each running shard's listing rows and loop counters, in shard order.
    fn collect(&self) -> Vec<(Vec<StatsRow>, RuntimeStats)> {
        self.each(|rt| (stats_rows(&rt.director), rt.stats))
    }

    /// `ipvsadm -Ln --stats` summed over the shards, and the loops' counters summed.
    pub fn stats(&self) -> (String, RuntimeStats) {
        let mut parts = Vec::new();
        let mut total = RuntimeStats::default();
        for (rows, s) in self.collect() {
            parts.push(rows);
            total += s;
        }
        (render_stats(&sum_rows(&parts)), total)
    }

    /// What the Prometheus exposition shows, summed over the running shards
    /// ([`Snapshot::add`]); add health and VRRP states to it, then render it.
    pub fn snapshot(&self) -> Snapshot {
        let mut sum = Snapshot::default();
        for s in self.each(|rt| Snapshot::of(&rt.director)) {
            sum.add(&s);
        }
        sum
    }

    /// Each running shard's loop counters, in shard order (a shard that has stopped on an
    /// error is left out).
    pub fn shard_stats(&self) -> Vec<RuntimeStats> {
        self.collect().into_iter().map(|(_, s)| s).collect()
    }

    /// Stops every shard and waits for them.
    ///
    /// # Errors
    /// The first shard's error.
    pub fn stop(self) -> io::Result<()> {
        self.stop.stop();
        let mut r = Ok(());
        for t in self.threads {
            let e = t.join().unwrap_or_else(|_| Err(io::Error::other("shard panicked")));
            r = r.and(e);
        }
        r
    }
}

/// A health checker on its own thread changes every shard ([`HealthChecker::run`] with the
/// shards as its `Control`).
impl Control for Shards {
    fn add_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), lvs_core::Error> {
        self.apply(&Command::AddDest(*key, rs))
    }

    fn edit_dest(&mut self, key: &ServiceKey, rs: RealServer) -> Result<(), lvs_core::Error> {
        self.apply(&Command::EditDest(*key, rs))
    }

    fn del_dest(&mut self, key: &ServiceKey, endpoint: &Endpoint) -> Result<(), lvs_core::Error> {
        self.apply(&Command::DelDest(*key, *endpoint))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};

    use lvs_core::addr::{Proto, ServiceKey};
    use lvs_core::config::restore;
    use lvs_core::dest::{FwdMethod, RealServer};
    use lvs_core::neigh::{MacAddr, Neighbour};
    use lvs_core::proto::tcp::flags;
    use lvs_core::testkit::{factory, Tcp, DIRECTOR_MAC};
    use lvs_core::wire::DEFAULT_HEADROOM;
    use lvs_core::{DirectorConfig, PortConfig};

    use super::*;
    use crate::io::IoCaps;

    /// Frames a port sent, each with the arrival port it carried.
    type Sent = Arc<Mutex<Vec<(u16, Vec<u8>)>>>;

    /// Frames a port hands out, which a test may add to between passes.
    type Feed = Arc<Mutex<Vec<Vec<u8>>>>;

    /// A port in memory: hands out what `inbox` holds, and records what is sent.
    struct Mem {
        inbox: Feed,
        sent: Sent,
    }

    impl PacketIo for Mem {
        fn caps(&self) -> IoCaps {
            IoCaps { mtu: 1514, headroom: DEFAULT_HEADROOM, max_burst: 8 }
        }

        fn recv(&mut self, _now: Instant, frames: &mut [Frame]) -> io::Result<usize> {
            let mut inbox = self.inbox.lock().unwrap();
            let n = inbox.len().min(frames.len());
            for (f, data) in frames.iter_mut().zip(inbox.drain(..n)) {
                f.load(DEFAULT_HEADROOM, &data);
            }
            Ok(n)
        }

        fn send(&mut self, _now: Instant, frames: &[Frame]) -> io::Result<usize> {
            let mut sent = self.sent.lock().unwrap();
            sent.extend(frames.iter().map(|f| (f.port, f.data().to_vec())));
            Ok(frames.len())
        }
    }

    const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);

    /// A DR service at 203.0.113.100:80 whose real server is behind port 0, and a service at
    /// 203.0.113.200:80 served by the application itself (a `Local` real server).
    fn director() -> Director {
        let mut d = Director::new(DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC))), factory);
        d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: RS_MAC, port: 0 });
        restore(&mut d, "-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n").unwrap();
        restore(&mut d, "-A -t 203.0.113.200:80 -s first\n").unwrap();
        let local = ServiceKey::Inet { proto: Proto::Tcp, addr: "203.0.113.200".parse().unwrap(), port: 80 };
        d.add_dest(&local, RealServer::new("203.0.113.200".parse().unwrap(), 80, FwdMethod::Local, 1)).unwrap();
        d
    }

    /// A SYN from client port `sport` to the DR service.
    fn syn(sport: u16) -> Vec<u8> {
        syn_to("203.0.113.100", sport)
    }

    fn syn_to(vip: &str, sport: u16) -> Vec<u8> {
        Tcp::new(("198.51.100.2".parse().unwrap(), sport), (vip.parse().unwrap(), 80), flags::SYN).build()
    }

    /// A broadcast ARP request: who has 192.0.2.1, from 192.0.2.2.
    fn arp_request() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 2, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 0, 2, 1, 192, 0, 2, 2]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 192, 0, 2, 1]);
        f
    }

    /// Every received frame, from a port or another shard, and every fragment the director
    /// added, is in exactly one other counter.
    fn assert_accounted(s: RuntimeStats) {
        let out = s.tx + s.tx_lost + s.dropped + s.local + s.not_mine + s.local_lost + s.handed_off + s.handoff_lost;
        assert_eq!(s.rx + s.from_shards + s.fragments, out, "{s:?}");
    }

    /// Everything the application was handed: kind, arrival port, bytes.
    fn drain(rt: &mut Runtime) -> Vec<(DeliveryKind, u16, Vec<u8>)> {
        let mut got = Vec::new();
        rt.drain_local(|d| got.push((d.kind, d.frame.port, d.frame.data().to_vec())));
        got
    }

    /// Ports whose inboxes are `inboxes`, and what each sends.
    fn ports(inboxes: Vec<Vec<Vec<u8>>>) -> (Vec<Box<dyn PacketIo + Send>>, Vec<Sent>) {
        inboxes
            .into_iter()
            .map(|inbox| {
                let sent = Arc::new(Mutex::new(Vec::new()));
                let port: Box<dyn PacketIo + Send> =
                    Box::new(Mem { inbox: Arc::new(Mutex::new(inbox)), sent: sent.clone() });
                (port, sent)
            })
            .unzip()
    }

    #[test]
    fn frames_carry_the_port_they_arrived_on() {
        let (ports, sent) = ports(vec![vec![syn(1000)], vec![syn(1001), syn(1002)], vec![syn(1003)]]);
        let mut rt = Runtime::new(director(), ports);
        assert_eq!(rt.poll_once(Instant::ZERO).unwrap(), 4);
        let out = sent[0].lock().unwrap();
        let arrivals: Vec<u16> = out.iter().map(|(p, _)| *p).collect();
        assert_eq!(arrivals, [0, 1, 1, 2], "forwarded to port 0, each marked with where it came from");
        assert!(out.iter().all(|(_, d)| d.get(0..6) == Some(&RS_MAC.0[..])));
    }

    /// A non-DF segment of `len` IP bytes from client port `sport` to `vip:80`.
    fn big_segment(vip: &str, sport: u16, len: usize) -> Vec<u8> {
        let body = vec![7u8; len - 40];
        let (client, vip) = ("198.51.100.2".parse().unwrap(), vip.parse().unwrap());
        let mut t = Tcp::new((client, sport), (vip, 80), flags::ACK);
        t.payload = &body;
        let mut f = t.build();
        // Clear DF and fix the header checksum (one's complement of the sum, RFC 1071).
        f[20] &= !0x40;
        f[24..26].fill(0);
        let sum = f[14..34].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        f[24..26].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
        f
    }

    #[test]
    fn every_fragment_of_a_tunnelled_packet_is_sent_in_order() {
        let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr("192.0.2.1".parse().unwrap());
        let mut d = Director::new(DirectorConfig { tun_mtu: 1500, ..DirectorConfig::default() }.port(port), factory);
        d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: RS_MAC, port: 0 });
        restore(&mut d, "-A -t 203.0.113.150:80 -s first\n-a -t 203.0.113.150:80 -r 192.0.2.11:80 -i\n").unwrap();
        restore(&mut d, "-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n").unwrap();
        // Outer packets of 60 bytes (the SYN), 3020 (payload 1480 + 1480 + 40: fragments of
        // 1500, 1500 and 60 bytes), 40 (a DR SYN, not tunnelled) and 1520 (1500 + 40).
        let tun = "203.0.113.150";
        let inbox = vec![syn_to(tun, 1000), big_segment(tun, 1000, 3000), syn(1001), big_segment(tun, 1000, 1500)];
        let (ports, sent) = ports(vec![inbox.clone(), inbox]);
        let mut rt = Runtime::new(d, ports);
        assert_eq!(rt.poll_once(Instant::ZERO).unwrap(), 8);
        let out = sent[0].lock().unwrap();
        let sizes: Vec<usize> = out.iter().map(|(_, f)| f.len() - 14).collect();
        let one = [60usize, 1500, 1500, 60, 40, 1500, 40];
        assert_eq!(sizes, [&one[..], &one[..]].concat(), "each port's burst in order, fragments after their first");
        let s = rt.stats();
        assert_eq!((s.rx, s.fragments, s.tx), (8, 6, 14));
        assert_accounted(s);
    }

    #[test]
    fn fragments_for_a_missing_port_are_lost_with_their_first() {
        // Two tunnel services, the first's server behind port 1, which this runtime lacks.
        let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr("192.0.2.1".parse().unwrap());
        let cfg = DirectorConfig { tun_mtu: 1500, ..DirectorConfig::default() }.port(port).port(port);
        let mut d = Director::new(cfg, factory);
        d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: RS_MAC, port: 0 });
        d.set_neighbour("192.0.2.12".parse().unwrap(), Neighbour { mac: RS_MAC, port: 1 });
        restore(&mut d, "-A -t 203.0.113.150:80 -s first\n-a -t 203.0.113.150:80 -r 192.0.2.12:80 -i\n").unwrap();
        restore(&mut d, "-A -t 203.0.113.151:80 -s first\n-a -t 203.0.113.151:80 -r 192.0.2.11:80 -i\n").unwrap();
        let (lost, kept) = ("203.0.113.150", "203.0.113.151");
        let inbox =
            vec![syn_to(lost, 1000), syn_to(kept, 1000), big_segment(lost, 1000, 3000), big_segment(kept, 1000, 1500)];
        let (ports, sent) = ports(vec![inbox]);
        let mut rt = Runtime::new(d, ports);
        assert_eq!(rt.poll_once(Instant::ZERO).unwrap(), 4);
        let sizes: Vec<usize> = sent[0].lock().unwrap().iter().map(|(_, f)| f.len() - 14).collect();
        assert_eq!(sizes, [60, 1500, 40], "the kept service's SYN, then its own two fragments");
        let s = rt.stats();
        assert_eq!((s.rx, s.fragments, s.tx, s.tx_lost), (4, 3, 3, 4));
        assert_accounted(s);
    }

    #[test]
    fn local_and_not_mine_frames_reach_the_application_with_their_port() {
        let local_syn = syn_to("203.0.113.200", 2000);
        let (ports, sent) = ports(vec![vec![syn(1000)], vec![arp_request()], vec![local_syn.clone()]]);
        let mut rt = Runtime::new(director(), ports);
        assert_eq!(rt.poll_once(Instant::ZERO).unwrap(), 3);
        assert_eq!(sent[0].lock().unwrap().len(), 1, "the DR service's SYN was forwarded");
        assert_eq!(
            drain(&mut rt),
            [(DeliveryKind::NotMine, 1, arp_request()), (DeliveryKind::Local, 2, local_syn)],
            "untouched, in arrival order"
        );
        assert!(drain(&mut rt).is_empty(), "each frame is handed over once");
        let s = rt.stats();
        assert_eq!((s.rx, s.tx, s.local, s.not_mine, s.local_lost), (3, 1, 1, 1, 0));
        assert_accounted(s);
    }

    #[test]
    fn a_full_queue_counts_losses_and_buffers_are_reused() {
        // Bursts of 8: the first pass takes 8 ARP requests, the second the other 4.
        let (ports, _) = ports(vec![vec![arp_request(); 12]]);
        let mut rt = Runtime::new(director(), ports).with_local_capacity(2);
        let buffers = |rt: &Runtime| rt.rx.len() + rt.spare.len() + rt.local.frames.len();
        rt.poll_once(Instant::ZERO).unwrap();
        assert_eq!((rt.stats().not_mine, rt.stats().local_lost), (2, 6));
        assert_eq!(drain(&mut rt).len(), 2);
        let warm = buffers(&rt);
        rt.poll_once(Instant::ZERO).unwrap();
        assert_eq!((rt.stats().not_mine, rt.stats().local_lost), (4, 8), "draining made room again");
        assert_eq!(drain(&mut rt).len(), 2);
        assert_eq!(buffers(&rt), warm, "no buffer allocated once the pools are warm");
        assert_accounted(rt.stats());
    }

    #[test]
    fn the_handler_gets_the_frames_of_every_pass() {
        let (ports, _) = ports(vec![vec![], vec![arp_request(), syn_to("203.0.113.200", 2000)]]);
        let (tx, rx) = mpsc::channel();
        let mut rt = Runtime::new(director(), ports).on_local(move |d| {
            let _ = tx.send((d.kind, d.frame.port));
        });
        rt.poll_once(Instant::ZERO).unwrap();
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got, [(DeliveryKind::NotMine, 1), (DeliveryKind::Local, 1)]);
        assert_eq!(rt.drain_local(|_| {}), 0, "the handler took them all");
    }

    #[test]
    fn with_a_handler_no_port_crowds_out_another() {
        // Two ports each bring as many frames as the queue holds; the handler takes each
        // port's burst before the next port's arrives.
        let (ports, _) = ports(vec![vec![arp_request(); 3], vec![arp_request(); 3]]);
        let (tx, rx) = mpsc::channel();
        let mut rt = Runtime::new(director(), ports).with_local_capacity(3).on_local(move |d| {
            let _ = tx.send(d.frame.port);
        });
        rt.poll_once(Instant::ZERO).unwrap();
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 0, 0, 1, 1, 1]);
        assert_eq!((rt.stats().not_mine, rt.stats().local_lost), (6, 0));
        assert_accounted(rt.stats());
    }

    #[test]
    fn a_runtime_with_health_takes_a_dead_server_out_and_back() {
        use std::net::{Ipv4Addr, TcpListener};
        use std::time::Duration;

        use lvs_core::health::{Check, CheckPlan, Event, Monitor, ServicePolicy, TcpCheck};

        use crate::health::HealthChecker;

        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let clock = MonotonicClock::default();
        let key = ServiceKey::Inet { proto: Proto::Tcp, addr: "203.0.113.100".parse().unwrap(), port: 80 };
        let mut d = Director::new(DirectorConfig::default(), factory);
        restore(&mut d, "-A -t 203.0.113.100:80 -s first\n").unwrap();
        let rs = RealServer::new(Ipv4Addr::LOCALHOST.into(), port, FwdMethod::Route, 1);
        let plan = CheckPlan::new(Check::Tcp(TcpCheck))
            .with_interval(Duration::from_millis(50))
            .with_timeout(Duration::from_millis(200))
            .with_rise_fall(2, 2)
            .with_fast_down_inter(None, None)
            .with_warmup(Duration::ZERO);
        let mut m = Monitor::new(5);
        m.add_service(&mut d, clock.now(), key, ServicePolicy::default(), [(rs, plan)]).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let checker = HealthChecker::new(m).unwrap().on_event(move |e| {
            let _ = tx.send(e);
        });
        let mut rt = Runtime::new(d, Vec::new()).with_health(checker);
        let stop = rt.stop_handle();
        let start = std::time::Instant::now();
        let (mut listener, mut killed) = (Some(l), false);
        let mut log = Vec::new();
        rt.run_with(&clock, |rt| {
            let in_table = rt.director().service(&key).is_some_and(|s| s.dests.len() == 1);
            let elapsed = start.elapsed();
            // Up for 300 ms, then the listener closes; once the server is out, it opens again.
            if elapsed > Duration::from_millis(300) && !killed {
                (listener, killed) = (None, true);
            }
            if listener.is_none() && !in_table && log.len() == 1 {
                listener = Some(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap());
            }
            let servers = rx.try_iter().filter(|e| matches!(e, Event::ServerUp { .. } | Event::ServerDown { .. }));
            log.extend(servers.map(|e| (e.to_string(), in_table)));
            if log.len() == 2 || elapsed > Duration::from_secs(5) {
                stop.stop();
            }
        })
        .unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log[0].0.ends_with("down (connection refused)"), "{log:?}");
        assert!(log[1].0.ends_with("up (passed)"), "{log:?}");
        assert_eq!(rt.director().service(&key).unwrap().dests.len(), 1);
        let (h, _) = rt.health_mut().unwrap();
        assert!(h.prober().stats().started >= 8);
    }

    #[test]
    fn shards_snapshot_sums_the_shards() {
        // Two shards of one configuration, each handed three SYNs of its own.
        let make: Arc<ShardFactory> = Arc::new(|i: usize| {
            let base = 1000 * (i as u16 + 1);
            let (ports, _) = ports(vec![(0..3).map(|p| syn(base + p)).collect()]);
            Ok(Runtime::new(director(), ports))
        });
        let shards = Shards::spawn(2, make).unwrap();
        let mut snap = shards.snapshot();
        for _ in 0..1000 {
            if snap.totals.conns == 6 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            snap = shards.snapshot();
        }
        shards.stop().unwrap();
        assert_eq!(snap.totals.conns, 6);
        let rs_addr: std::net::IpAddr = "192.0.2.11".parse().unwrap();
        let rs = snap.backends.iter().find(|b| b.server.addr == rs_addr).unwrap();
        // Each shard's connections count once, the weight of the one configuration once.
        assert_eq!((rs.active + rs.inactive, rs.weight), (6, 1));
        assert_eq!(snap.backends.len(), 2);
        assert_eq!(snap.table_entries, 6);
    }

    const VIP: &str = "203.0.113.100";
    const NAT_RS: &str = "192.0.2.12";

    /// Shard `i` of two sharing `handoff`: a NAT director for `VIP:80` served by
    /// `NAT_RS:8080`, on one port fed by `feed`.
    fn nat_shard(handoff: &Arc<Handoff>, i: usize, feed: &Feed, sent: &Sent) -> Runtime {
        let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr("192.0.2.1".parse().unwrap());
        let mut d = Director::new(DirectorConfig::default().port(port), factory);
        d.set_neighbour(NAT_RS.parse().unwrap(), Neighbour { mac: RS_MAC, port: 0 });
        d.set_gateway(lvs_core::addr::Af::V4, Neighbour { mac: MacAddr([2, 0, 0, 0, 9, 9]), port: 0 });
        restore(&mut d, &format!("-A -t {VIP}:80 -s first\n-a -t {VIP}:80 -r {NAT_RS}:8080 -m\n")).unwrap();
        let port: Box<dyn PacketIo + Send> = Box::new(Mem { inbox: feed.clone(), sent: sent.clone() });
        Runtime::new(d, vec![port]).with_handoff(handoff.clone(), i, Steer::ClientFlow)
    }

    /// Two NAT shards sharing inboxes of `inbox` frames: each one's feed, what they sent, and
    /// the shards.
    fn nat_shards(inbox: usize) -> (Vec<Feed>, Sent, Vec<Runtime>) {
        let handoff = Arc::new(Handoff::new(2, inbox).unwrap());
        let feeds: Vec<Feed> = (0..2).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let sent: Sent = Arc::new(Mutex::new(Vec::new()));
        let shards = (0..2).map(|i| nat_shard(&handoff, i, &feeds[i], &sent)).collect();
        (feeds, sent, shards)
    }

    /// The IPv4 source and destination of an Ethernet frame.
    fn addrs(f: &[u8]) -> (std::net::Ipv4Addr, std::net::Ipv4Addr) {
        let a = |at: usize| std::net::Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
        (a(26), a(30))
    }

    #[test]
    fn shards_on_queues_hand_requests_and_nat_replies_to_their_owner() {
        let (feeds, sent, mut shards) = nat_shards(64);
        let clients: Vec<(IpAddr, u16)> = (0..16u8).map(|i| (IpAddr::from([198, 51, 100, 10 + i]), 40000)).collect();
        // Rounds of one pass per shard until none receives anything (bursts are of 8 frames).
        let pass = |shards: &mut Vec<Runtime>| {
            for _ in 0..10 {
                let got: usize = shards.iter_mut().map(|rt| rt.poll_once(Instant::ZERO).unwrap()).sum();
                if got == 0 {
                    break;
                }
            }
        };
        // Every request arrives on queue 0, as if the NIC's hash sent them all there.
        feeds[0]
            .lock()
            .unwrap()
            .extend(clients.iter().map(|c| Tcp::new(*c, (VIP.parse().unwrap(), 80), flags::SYN).build()));
        pass(&mut shards);
        // Every reply arrives on queue 1.
        let rs = (NAT_RS.parse().unwrap(), 8080);
        feeds[1].lock().unwrap().extend(clients.iter().map(|c| Tcp::new(rs, *c, flags::SYN | flags::ACK).build()));
        pass(&mut shards);
        let stats: Vec<RuntimeStats> = shards.iter().map(Runtime::stats).collect();
        let out = sent.lock().unwrap();
        let to_rs = out.iter().filter(|(_, f)| addrs(f).1.to_string() == NAT_RS).count();
        let from_vip: Vec<_> =
            out.iter().filter(|(_, f)| addrs(f).0.to_string() == VIP).map(|(_, f)| addrs(f).1).collect();
        assert_eq!(to_rs, 16, "every request forwarded once: {stats:?}");
        assert_eq!(from_vip.len(), 16, "every reply masqueraded as the VIP's, none NotMine: {stats:?}");
        assert!(stats.iter().all(|s| s.not_mine == 0 && s.handoff_lost == 0), "{stats:?}");
        // Requests went from queue 0 to shard 1, replies from queue 1 to shard 0.
        assert!(stats[0].handed_off > 0 && stats[1].handed_off > 0, "{stats:?}");
        assert_eq!(stats[0].handed_off, stats[1].from_shards);
        assert_eq!(stats[1].handed_off, stats[0].from_shards);
        // Shard 0 took as many replies from shard 1 as it kept requests of its own (that the
        // replies reached their connections is the masquerading checked above).
        assert_eq!(stats[0].handed_off + stats[0].from_shards, 16, "{stats:?}");
        stats.into_iter().for_each(assert_accounted);
    }

    #[test]
    fn a_full_inbox_is_a_counted_drop() {
        let (feeds, _, mut shards) = nat_shards(1);
        let syns = (0..16u8)
            .map(|i| Tcp::new((IpAddr::from([198, 51, 100, 10 + i]), 40000), (VIP.parse().unwrap(), 80), flags::SYN));
        feeds[0].lock().unwrap().extend(syns.map(|t| t.build()));
        // Two bursts of 8 on shard 0 before shard 1 takes anything.
        shards[0].poll_once(Instant::ZERO).unwrap();
        shards[0].poll_once(Instant::ZERO).unwrap();
        shards[1].poll_once(Instant::ZERO).unwrap();
        let (s0, s1) = (shards[0].stats(), shards[1].stats());
        assert_eq!((s0.handed_off, s1.from_shards), (1, 1), "one fits in the inbox: {s0:?}");
        assert!(s0.handoff_lost > 0, "the others are counted: {s0:?}");
        assert_eq!(s0.tx + s1.tx, 16 - s0.handoff_lost, "the rest forwarded");
        [s0, s1].into_iter().for_each(assert_accounted);
    }
}
