//! The I/O side of health checking, as keepalived's checker threads, ldirectord and mon run
//! their checks: a [`Prober`] that runs the probes a [`Monitor`] hands out — TCP connects, the
//! HTTP, HTTPS and SMTP conversations, UDP and DNS datagrams, ICMP echoes, check programs — all
//! non-blocking on one thread, at most a set number at once, each ended at its deadline; and a
//! [`HealthChecker`] that drives a monitor with it and hands the monitor's events to the
//! application.
//!
//! The checker runs inside the runtime's loop (`Runtime::with_health`): the loop owns the
//! director, so the monitor's reactions are plain calls on it, and its waits include the
//! prober's descriptor and the monitor's deadline. An application with its own loop calls
//! [`HealthChecker::poll`] there; one that wants checks on their own thread calls
//! [`HealthChecker::run`] with any [`Control`] (such as the runtime's `Shards`, which applies
//! each change to every shard).
//!
//! | check | what the prober does | fails with |
//! |---|---|---|
//! | TCP | non-blocking connect from `bindto:bind_port`, closed with a reset | `Refused`, `Unreachable`, timeout |
//! | HTTP, SMTP | the connect, then the core's conversation ([`Exchange`]) | its verdict, `Closed`, `Reset` |
//! | HTTPS | the same through rustls, any certificate taken (keepalived's `SSL_GET`) | a TLS error as `Io` |
//! | UDP, DNS | a connected UDP socket: one datagram, replies judged by the core | `Refused` (ICMP port unreachable) |
//! | PING | an ICMP echo on a ping socket, or a raw one | timeout |
//! | MISC | the program in its own process group, killed with the group at the deadline | exit status, signal, `Io` when it cannot run |

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lvs_core::director::{Suspicion, Symptom as Seen};
use lvs_core::health::{
    Check, Control, Detail, Event, Exchange, Exit, Monitor, Outcome, Probe, ProbeId, Step, Symptom, Transport,
};
use lvs_core::Instant;

use crate::sys::linux::poll_readable;
use crate::sys::probe::{self as sys, Epoll, IcmpKind, EPOLLIN, EPOLLOUT};

#[cfg(feature = "tls")]
mod tls;

/// How many probes may be in flight at once by default: each holds a descriptor (a socket, or
/// a child's pidfd).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// The most reads one probe gets per readiness event, so that a server streaming a large page
/// cannot hold the thread from the other probes (the rest is read on the next pass).
const READS_PER_EVENT: usize = 16;

/// How often a check program is looked at when the system has no pidfd for it.
const CHILD_POLL: Duration = Duration::from_millis(10);

/// What the prober did, for its user's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProberStats {
    /// Probes started.
    pub started: u64,
    /// Probes that passed.
    pub passed: u64,
    /// Probes that failed, at their deadline included.
    pub failed: u64,
    /// Probes ended at their deadline (passed or failed as the check says of silence).
    pub timed_out: u64,
    /// The most probes in flight at once.
    pub peak_in_flight: usize,
    /// The latest a probe was started after it was due ([`Probe::due`]).
    pub worst_lateness: Duration,
}

/// What a probe waits for next.
enum Next {
    /// Readiness: these epoll bits.
    Wait(u32),
    /// The verdict.
    Done(Outcome),
}

/// The verdict for a system error, in the check's words where it has them.
fn io_outcome(e: &io::Error) -> Outcome {
    Outcome::down(match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Detail::Refused,
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN) => Detail::Unreachable,
        Some(libc::ECONNRESET | libc::EPIPE) => Detail::Reset,
        Some(libc::ETIMEDOUT) => Detail::Timeout,
        _ => Detail::Io(e.to_string()),
    })
}

/// A stream check: the connect, then the conversation, in the clear or through TLS.
struct Stream {
    sock: TcpStream,
    connected: bool,
    exchange: Option<Exchange>,
    /// Bytes the conversation said to send that the socket has not taken yet.
    out: Vec<u8>,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
}

/// The conversation's next step after `data` from the server (end of stream when empty); a
/// check without a conversation passed when it connected.
fn converse(x: &mut Option<Exchange>, data: &[u8]) -> Step {
    match x {
        Some(x) if data.is_empty() => Step::Done(x.closed()),
        Some(x) => x.received(data),
        None => Step::Done(Outcome::up(Detail::Passed)),
    }
}

impl Stream {
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    fn ready(&mut self, probe: &Probe, p: &mut Shared) -> Next {
        if !self.connected {
            match self.sock.take_error() {
                Ok(Some(e)) | Err(e) => return Next::Done(io_outcome(&e)),
                Ok(None) => {}
            }
            match self.sock.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Next::Wait(EPOLLOUT),
                Err(e) => return Next::Done(io_outcome(&e)),
            }
            let Some(x) = self.exchange.as_mut() else { return Next::Done(Outcome::up(Detail::Passed)) };
            let first = x.start();
            #[cfg(feature = "tls")]
            if matches!(probe.check.transport(), Transport::Tcp { tls: true }) {
                match tls::connect(p, probe) {
                    Ok(c) => self.tls = Some(Box::new(c)),
                    Err(o) => return Next::Done(o),
                }
            }
            if let Some(done) = self.take(first) {
                return Next::Done(done);
            }
        }
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.pump_tls(p);
        }
        self.pump(p)
    }

    /// Follows a step of the conversation: bytes to send are queued; `Some` is the verdict.
    fn take(&mut self, step: Step) -> Option<Outcome> {
        match step {
            Step::Send(bytes) => {
                #[cfg(feature = "tls")]
                if let Some(c) = self.tls.as_mut() {
                    return c.writer().write_all(&bytes).err().map(|e| io_outcome(&e));
                }
                self.out.extend_from_slice(&bytes);
                None
            }
            Step::Wait => None,
            Step::Done(o) => Some(o),
        }
    }

    /// Writes what is queued and reads what came, in the clear.
    fn pump(&mut self, p: &mut Shared) -> Next {
        for _ in 0..READS_PER_EVENT {
            while !self.out.is_empty() {
                match self.sock.write(&self.out) {
                    Ok(0) => return Next::Done(Outcome::down(Detail::Closed)),
                    Ok(n) => drop(self.out.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Next::Done(io_outcome(&e)),
                }
            }
            let n = match self.sock.read(&mut p.buf[..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Next::Done(io_outcome(&e)),
            };
            let step = converse(&mut self.exchange, &p.buf[..n]);
            if let Some(o) = self.take(step) {
                return Next::Done(o);
            }
        }
        Next::Wait(if self.out.is_empty() { EPOLLIN } else { EPOLLIN | EPOLLOUT })
    }

    /// Writes TLS records, reads them, and feeds the plaintext to the conversation.
    #[cfg(feature = "tls")]
    fn pump_tls(&mut self, p: &mut Shared) -> Next {
        let wants = |c: &rustls::ClientConnection| if c.wants_write() { EPOLLIN | EPOLLOUT } else { EPOLLIN };
        for _ in 0..READS_PER_EVENT {
            let Some(c) = self.tls.as_deref_mut() else { break };
            while c.wants_write() {
                match c.write_tls(&mut self.sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Next::Done(io_outcome(&e)),
                }
            }
            let eof = match c.read_tls(&mut self.sock) {
                Ok(n) => n == 0,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait(wants(c)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Next::Done(io_outcome(&e)),
            };
            if let Err(e) = c.process_new_packets() {
                return Next::Done(tls::failure(&e));
            }
            while let Some(c) = self.tls.as_deref_mut() {
                let n = match c.reader().read(&mut p.buf[..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // The server closed without close_notify: the end of the page all the same.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                    Err(e) => return Next::Done(io_outcome(&e)),
                };
                let step = converse(&mut self.exchange, &p.buf[..n]);
                if let Some(o) = self.take(step) {
                    return Next::Done(o);
                }
            }
            if eof {
                return match converse(&mut self.exchange, &[]) {
                    Step::Done(o) => Next::Done(o),
                    _ => Next::Done(Outcome::down(Detail::Closed)),
                };
            }
        }
        self.tls.as_deref().map_or(Next::Wait(EPOLLIN), |c| Next::Wait(wants(c)))
    }
}

/// A datagram check (UDP, DNS, PING) on its connected socket.
struct Datagram {
    sock: UdpSocket,
    icmp: Option<IcmpKind>,
    v6: bool,
}

impl Datagram {
    fn ready(&mut self, probe: &Probe, p: &mut Shared) -> Next {
        for _ in 0..READS_PER_EVENT {
            match self.sock.recv(&mut p.buf[..]) {
                Ok(n) => {
                    let Some(payload) = self.payload(&p.buf[..n]) else { continue };
                    if let Some(o) = probe.judge_datagram(payload) {
                        return Next::Done(o);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Next::Done(io_outcome(&e)),
            }
        }
        Next::Wait(EPOLLIN)
    }

    /// What the check judges of a received datagram: all of it for UDP, the echo reply's
    /// payload for ICMP (`None` for any other ICMP message a raw socket sees).
    fn payload<'a>(&self, d: &'a [u8]) -> Option<&'a [u8]> {
        let Some(kind) = self.icmp else { return Some(d) };
        let icmp = match (kind, self.v6) {
            (IcmpKind::Raw, false) => d.get(usize::from(d.first()? & 0x0f) * 4..)?,
            _ => d,
        };
        let reply = if self.v6 { ICMPV6_ECHO_REPLY } else { ICMP_ECHO_REPLY };
        (icmp.first() == Some(&reply)).then(|| icmp.get(8..)).flatten()
    }
}

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// An ICMP (or ICMPv6) echo request carrying `payload`: type, code, checksum, identifier and
/// sequence number from the nonce, then the payload. The checksum is left to the kernel for
/// ICMPv6 (and for ping sockets, which also set the identifier).
fn echo_request(v6: bool, nonce: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![if v6 { ICMPV6_ECHO_REQUEST } else { ICMP_ECHO_REQUEST }, 0, 0, 0];
    m.extend_from_slice(&((nonce >> 16) as u16).to_be_bytes());
    m.extend_from_slice(&(nonce as u16).to_be_bytes());
    m.extend_from_slice(payload);
    if !v6 {
        let mut sum: u32 = m.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        m[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
    m
}

/// A check program and, where the system has one, the descriptor that says it exited.
struct Program {
    child: Child,
    pidfd: Option<OwnedFd>,
}

impl Program {
    fn ready(&mut self, probe: &Probe) -> Next {
        let Check::Misc(m) = &*probe.check else { return Next::Done(Outcome::down(Detail::Malformed)) };
        match self.child.try_wait() {
            Ok(Some(status)) => Next::Done(m.judge(match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                (None, None) => Exit::Failed(format!("{status}")),
            })),
            Ok(None) => Next::Wait(EPOLLIN),
            Err(e) => Next::Done(m.judge(Exit::Failed(e.to_string()))),
        }
    }
}

/// What a probe in flight holds.
enum Io {
    Stream(Box<Stream>),
    Datagram(Datagram),
    Program(Program),
}

impl Io {
    fn fd(&self) -> Option<RawFd> {
        match self {
            Io::Stream(s) => Some(s.sock.as_raw_fd()),
            Io::Datagram(d) => Some(d.sock.as_raw_fd()),
            Io::Program(c) => c.pidfd.as_ref().map(AsRawFd::as_raw_fd),
        }
    }
}

/// A probe in flight.
struct Task {
    probe: Probe,
    io: Io,
    interest: u32,
}

/// What every probe shares: the read buffer and the TLS configuration.
struct Shared {
    buf: Box<[u8; 16 * 1024]>,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Runs probes: many in flight on one thread, each on its own non-blocking socket or child
/// process, none past its deadline, at most `max_in_flight` at once. Every probe started gives
/// exactly one result ([`Prober::next_result`]): its verdict, or at its deadline what the check
/// makes of silence ([`Check::on_timeout`]).
///
/// ```
/// use lvs_core::health::{Check, CheckPlan, Monitor, ServicePolicy, TcpCheck};
/// # use lvs_core::{Director, DirectorConfig, FwdMethod, Proto, RealServer, ServiceConfig, ServiceKey};
/// use lvs_core::Instant;
/// use lvs_dataplane::health::Prober;
/// use lvs_dataplane::runtime::MonotonicClock;
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let mut d = Director::new(DirectorConfig::default(), lvs_core::testkit::factory);
/// # let key = ServiceKey::Inet { proto: Proto::Tcp, addr: "203.0.113.100".parse()?, port: 80 };
/// # d.add_service(ServiceConfig::new(key, "first"))?;
/// let rs = RealServer::new("127.0.0.1".parse()?, listener.local_addr()?.port(), FwdMethod::Route, 1);
/// let clock = MonotonicClock::default();
/// let mut m = Monitor::new(1);
/// let plan = CheckPlan::new(Check::Tcp(TcpCheck)).with_warmup(std::time::Duration::ZERO);
/// m.add_service(&mut d, clock.now(), key, ServicePolicy::default(), [(rs, plan)])?;
///
/// let mut prober = Prober::new(16)?;
/// prober.start(clock.now(), m.poll(clock.now()).unwrap());
/// let (id, outcome) = loop {
///     prober.wait(std::time::Duration::from_millis(100))?;
///     prober.poll(clock.now())?;
///     if let Some(r) = prober.next_result() {
///         break r;
///     }
/// };
/// assert!(outcome.up);
/// m.report(&mut d, clock.now(), id, outcome)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Prober {
    epoll: Epoll,
    tasks: Vec<Option<Task>>,
    free: Vec<usize>,
    deadlines: BTreeSet<(Instant, usize)>,
    /// Programs whose exit no pidfd reports: looked at every [`CHILD_POLL`].
    polled: usize,
    /// Programs killed at their deadline and not yet reaped.
    reaping: Vec<Child>,
    results: VecDeque<(ProbeId, Outcome)>,
    max_in_flight: usize,
    in_flight: usize,
    ready: Vec<(u64, u32)>,
    shared: Shared,
    stats: ProberStats,
}

impl Prober {
    /// A prober running at most `max_in_flight` probes at once (at least one).
    ///
    /// # Errors
    /// When the epoll set cannot be made (out of descriptors), or the TLS client cannot be set
    /// up.
    pub fn new(max_in_flight: usize) -> io::Result<Prober> {
        let max_in_flight = max_in_flight.max(1);
        Ok(Prober {
            epoll: Epoll::new(max_in_flight.min(1024))?,
            tasks: Vec::new(),
            free: Vec::new(),
            deadlines: BTreeSet::new(),
            polled: 0,
            reaping: Vec::new(),
            results: VecDeque::new(),
            max_in_flight,
            in_flight: 0,
            ready: Vec::new(),
            shared: Shared {
                buf: Box::new([0; 16 * 1024]),
                #[cfg(feature = "tls")]
                tls: None,
            },
            stats: ProberStats::default(),
        })
    }

    /// Whether another probe may start.
    pub fn has_room(&self) -> bool {
        self.in_flight < self.max_in_flight
    }

    /// Probes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// What the prober did.
    pub fn stats(&self) -> ProberStats {
        self.stats
    }

    /// What the prober did since the last call (or since it was made), the counters then
    /// starting again from zero: for a periodic export, or to measure a steady state apart
    /// from a start-up.
    pub fn take_stats(&mut self) -> ProberStats {
        let s = self.stats;
        self.stats = ProberStats { peak_in_flight: self.in_flight, ..ProberStats::default() };
        s
    }

    /// The descriptor that is readable when a probe has something to do: for an application's
    /// own `poll` set.
    pub fn raw_fd(&self) -> RawFd {
        self.epoll.fd()
    }

    /// Starts a probe. A probe that cannot start (no socket, a program that cannot run) has
    /// its result at once; a prober over its limit still starts it (callers check
    /// [`Prober::has_room`] first).
    pub fn start(&mut self, now: Instant, probe: Probe) {
        self.stats.started += 1;
        self.stats.worst_lateness = self.stats.worst_lateness.max(now.saturating_since(probe.due));
        let opened = match probe.check.transport() {
            Transport::Tcp { .. } => self.open_stream(&probe),
            Transport::Udp => open_udp(&probe),
            Transport::Icmp => open_icmp(&probe),
            Transport::Process => open_program(&probe),
        };
        let io = match opened {
            Ok(io) => io,
            Err(o) => return self.finish_result(probe.id, o),
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.tasks.push(None);
            self.tasks.len() - 1
        });
        let interest = match &io {
            Io::Stream(_) => EPOLLOUT,
            _ => EPOLLIN,
        };
        if let Some(fd) = io.fd() {
            if let Err(e) = self.epoll.add(fd, interest, slot as u64) {
                self.free.push(slot);
                return self.finish_result(probe.id, io_outcome(&e));
            }
        } else {
            self.polled += 1;
        }
        self.deadlines.insert((probe.deadline, slot));
        self.tasks[slot] = Some(Task { probe, io, interest });
        self.in_flight += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight);
    }

    fn open_stream(&mut self, probe: &Probe) -> Result<Io, Outcome> {
        #[cfg(feature = "tls")]
        if matches!(probe.check.transport(), Transport::Tcp { tls: true }) {
            tls::ensure_config(&mut self.shared)?;
        }
        #[cfg(not(feature = "tls"))]
        if matches!(probe.check.transport(), Transport::Tcp { tls: true }) {
            return Err(Outcome::down(Detail::Io("built without TLS (feature `tls`)".into())));
        }
        let target = SocketAddr::new(probe.target.addr, probe.target.port);
        let sock = sys::tcp_connect(&target, bind_addr(probe).as_ref()).map_err(|e| io_outcome(&e))?;
        // Best effort: without it the check leaves a TIME_WAIT, nothing worse.
        let _ = sys::reset_on_close(&sock);
        Ok(Io::Stream(Box::new(Stream {
            sock,
            connected: false,
            exchange: probe.exchange(),
            out: Vec::new(),
            #[cfg(feature = "tls")]
            tls: None,
        })))
    }

    /// Handles whatever is ready without waiting: finished connects, replies, exited programs,
    /// and probes at their deadline (ended with what the check makes of silence).
    ///
    /// DoS warning: the work grows with the number of probes in flight that are ready at once.
    ///
    /// # Errors
    /// An error of the epoll set itself; the probes' own errors are their results.
    pub fn poll(&mut self, now: Instant) -> io::Result<()> {
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        self.epoll.wait(0, |token, events| ready.push((token, events)))?;
        for &(token, _) in &ready {
            self.advance(token as usize);
        }
        self.ready = ready;
        if self.polled > 0 {
            let programs: Vec<usize> = self
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.as_ref().is_some_and(|t| matches!(&t.io, Io::Program(c) if c.pidfd.is_none())))
                .map(|(i, _)| i)
                .collect();
            for slot in programs {
                self.advance(slot);
            }
        }
        while let Some(&(deadline, slot)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let Some(task) = self.tasks.get(slot).and_then(Option::as_ref) else {
                self.deadlines.pop_first();
                continue;
            };
            let outcome = task.probe.check.on_timeout();
            self.stats.timed_out += 1;
            self.finish(slot, outcome);
        }
        self.reaping.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        Ok(())
    }

    /// Moves one probe on after its descriptor became ready.
    fn advance(&mut self, slot: usize) {
        let Some(task) = self.tasks.get_mut(slot).and_then(Option::as_mut) else { return };
        let next = match &mut task.io {
            Io::Stream(s) => s.ready(&task.probe, &mut self.shared),
            Io::Datagram(d) => d.ready(&task.probe, &mut self.shared),
            Io::Program(c) => c.ready(&task.probe),
        };
        match next {
            Next::Done(o) => self.finish(slot, o),
            Next::Wait(interest) if interest != task.interest => {
                task.interest = interest;
                if let Some(fd) = task.io.fd() {
                    if let Err(e) = self.epoll.modify(fd, interest, slot as u64) {
                        self.finish(slot, io_outcome(&e));
                    }
                }
            }
            Next::Wait(_) => {}
        }
    }

    /// Ends a probe in flight with `outcome`: its socket closed, its program killed.
    fn finish(&mut self, slot: usize, outcome: Outcome) {
        let Some(task) = self.tasks.get_mut(slot).and_then(Option::take) else { return };
        self.deadlines.remove(&(task.probe.deadline, slot));
        self.free.push(slot);
        self.in_flight -= 1;
        if let Io::Program(mut p) = task.io {
            if p.pidfd.is_none() {
                self.polled -= 1;
            }
            if matches!(p.child.try_wait(), Ok(None)) {
                let _ = sys::kill_group(p.child.id());
                if matches!(p.child.try_wait(), Ok(None)) {
                    self.reaping.push(p.child);
                }
            }
        }
        self.finish_result(task.probe.id, outcome);
    }

    fn finish_result(&mut self, id: ProbeId, outcome: Outcome) {
        if outcome.up {
            self.stats.passed += 1;
        } else {
            self.stats.failed += 1;
        }
        self.results.push_back((id, outcome));
    }

    /// The next result, oldest first.
    pub fn next_result(&mut self) -> Option<(ProbeId, Outcome)> {
        self.results.pop_front()
    }

    /// When [`Prober::poll`] must run next at the latest: the first deadline of a probe in
    /// flight, or soon while a program's exit must be looked for.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let first = self.deadlines.first().map(|(t, _)| *t);
        let programs = (self.polled > 0 || !self.reaping.is_empty()).then(|| now + CHILD_POLL);
        first.into_iter().chain(programs).min()
    }

    /// Waits until a probe has something to do or `timeout` passes (then call
    /// [`Prober::poll`]).
    ///
    /// # Errors
    /// An error of `poll(2)`.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        poll_readable(&[self.epoll.fd()], timeout_ms(timeout))
    }
}

impl Drop for Prober {
    /// Kills the check programs still running.
    fn drop(&mut self) {
        for task in self.tasks.iter_mut().filter_map(Option::take) {
            if let Io::Program(mut p) = task.io {
                let _ = sys::kill_group(p.child.id());
                let _ = p.child.wait();
            }
        }
        for mut c in self.reaping.drain(..) {
            let _ = c.wait();
        }
    }
}

/// Milliseconds for `poll(2)`, rounded up so a wait never ends just before a deadline.
pub(crate) fn timeout_ms(d: Duration) -> i32 {
    i32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
}

/// The source address a probe binds to, if its plan has one (a `bind_port` alone binds the
/// unspecified address of the target's family).
fn bind_addr(probe: &Probe) -> Option<SocketAddr> {
    let unspecified = |target: IpAddr| match target {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    };
    match (probe.bindto, probe.bind_port) {
        (None, None) => None,
        (addr, port) => {
            Some(SocketAddr::new(addr.unwrap_or_else(|| unspecified(probe.target.addr)), port.unwrap_or(0)))
        }
    }
}

fn open_udp(probe: &Probe) -> Result<Io, Outcome> {
    let target = SocketAddr::new(probe.target.addr, probe.target.port);
    let local = bind_addr(probe).unwrap_or_else(|| match target {
        SocketAddr::V4(_) => SocketAddr::from(([0u8; 4], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    });
    let io = |e: io::Error| io_outcome(&e);
    let sock = UdpSocket::bind(local).map_err(io)?;
    sock.set_nonblocking(true).map_err(io)?;
    sock.connect(target).map_err(io)?;
    sock.send(&probe.datagram().unwrap_or_default()).map_err(io)?;
    Ok(Io::Datagram(Datagram { sock, icmp: None, v6: target.is_ipv6() }))
}

fn open_icmp(probe: &Probe) -> Result<Io, Outcome> {
    let io = |e: io::Error| io_outcome(&e);
    let v6 = probe.target.addr.is_ipv6();
    let (sock, kind) = sys::icmp_socket(v6).map_err(io)?;
    if let Some(b) = probe.bindto {
        sys::bind(&sock, &SocketAddr::new(b, 0)).map_err(io)?;
    }
    sock.connect(SocketAddr::new(probe.target.addr, 0)).map_err(io)?;
    sock.send(&echo_request(v6, probe.nonce, &probe.datagram().unwrap_or_default())).map_err(io)?;
    Ok(Io::Datagram(Datagram { sock, icmp: Some(kind), v6 }))
}

fn open_program(probe: &Probe) -> Result<Io, Outcome> {
    let Check::Misc(m) = &*probe.check else { return Err(Outcome::down(Detail::Malformed)) };
    let child = Command::new(&m.program)
        .args(&m.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| m.judge(Exit::Failed(format!("cannot run {}: {e}", m.program))))?;
    let pidfd = sys::pidfd_open(child.id()).ok();
    Ok(Io::Program(Program { child, pidfd }))
}

/// An event of the monitor as a log line, at the level an operator wants it: a server or a
/// quorum lost and the sorry server in are warnings, a refused change an error, recoveries
/// information (keepalived logs the same transitions).
fn log_event(e: &Event) {
    let level = match e {
        Event::ServerUp { .. } | Event::QuorumGained { .. } | Event::SorryServerOut { .. } => log::Level::Info,
        Event::ServerDown { .. } | Event::QuorumLost { .. } | Event::SorryServerIn { .. } => log::Level::Warn,
        Event::ControlFailed { .. } => log::Level::Error,
    };
    log::log!(target: "lvs::health", level, "{e}");
}

/// Handles the events a [`HealthChecker`] hands over (see [`HealthChecker::on_event`]).
pub type EventHandler = dyn FnMut(Event) + Send;

/// A [`Monitor`] driven with a [`Prober`]: each pass hands the results in, fails what timed
/// out, starts the probes that came due (as many as the prober has room for), logs the
/// monitor's events (target `lvs::health`) and hands them to the handler, if one is set
/// (otherwise they wait in [`HealthChecker::poll_event`]).
pub struct HealthChecker {
    monitor: Monitor,
    prober: Prober,
    on_event: Option<Box<EventHandler>>,
    /// Events taken from the monitor (and logged) for [`HealthChecker::poll_event`].
    waiting: VecDeque<Event>,
}

impl HealthChecker {
    /// A checker for `monitor`, at most [`DEFAULT_MAX_IN_FLIGHT`] probes at once.
    ///
    /// # Errors
    /// As [`Prober::new`].
    pub fn new(monitor: Monitor) -> io::Result<HealthChecker> {
        Self::with_max_in_flight(monitor, DEFAULT_MAX_IN_FLIGHT)
    }

    /// A checker for `monitor`, at most `max_in_flight` probes at once.
    ///
    /// # Errors
    /// As [`Prober::new`].
    pub fn with_max_in_flight(monitor: Monitor, max_in_flight: usize) -> io::Result<HealthChecker> {
        Ok(HealthChecker { monitor, prober: Prober::new(max_in_flight)?, on_event: None, waiting: VecDeque::new() })
    }

    /// Gives every event to `handler`, at the end of each pass (keepalived's `notify_up` and
    /// `notify_down`, a log line, an alert).
    pub fn on_event(mut self, handler: impl FnMut(Event) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(handler));
        self
    }

    /// The monitor, for its status ([`lvs_core::health::status()`]).
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The monitor, to add or remove services and servers or force a state (with the director
    /// as its [`Control`]).
    pub fn monitor_mut(&mut self) -> &mut Monitor {
        &mut self.monitor
    }

    /// Hands the monitor a server the director's data path suspects
    /// ([`lvs_core::Director::poll_suspect`]): with passive detection on for its service, its
    /// next check comes at once. Returns whether it did.
    pub fn suspect(&mut self, now: Instant, s: &Suspicion) -> bool {
        let Some(id) = self.monitor.find(&s.service, &s.server) else { return false };
        let symptom = match s.symptom {
            Seen::SynReset => Symptom::SynReset,
            Seen::SynRetransmitted => Symptom::SynUnanswered,
        };
        self.monitor.suspect(now, id, symptom)
    }

    /// The prober, for its statistics.
    pub fn prober(&self) -> &Prober {
        &self.prober
    }

    /// The prober's statistics since the last call ([`Prober::take_stats`]).
    pub fn take_stats(&mut self) -> ProberStats {
        self.prober.take_stats()
    }

    /// The next event, when no handler takes them.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.take_events();
        self.waiting.pop_front()
    }

    /// Moves the monitor's events to the handler, or to the queue [`HealthChecker::poll_event`]
    /// serves, logging each.
    fn take_events(&mut self) {
        while let Some(e) = self.monitor.poll_event() {
            log_event(&e);
            match self.on_event.as_mut() {
                Some(handler) => handler(e),
                None => self.waiting.push_back(e),
            }
        }
    }

    /// One pass at `now`, changing the director through `ctl`.
    ///
    /// # Errors
    /// An error of the prober's epoll set.
    pub fn poll(&mut self, now: Instant, ctl: &mut dyn Control) -> io::Result<()> {
        self.prober.poll(now)?;
        self.report(now, ctl);
        self.monitor.tick(ctl, now);
        while self.prober.has_room() {
            let Some(p) = self.monitor.poll(now) else { break };
            self.prober.start(now, p);
        }
        // Probes that could not start have their results already.
        self.report(now, ctl);
        self.take_events();
        Ok(())
    }

    fn report(&mut self, now: Instant, ctl: &mut dyn Control) {
        while let Some((id, outcome)) = self.prober.next_result() {
            // A probe the monitor already failed at its deadline, or whose server was removed,
            // is no longer its concern.
            let _ = self.monitor.report(ctl, now, id, outcome);
        }
    }

    /// When [`HealthChecker::poll`] has work at the latest, I/O aside: a check due, a
    /// deadline, a slow-start step.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let due = if self.prober.has_room() {
            self.monitor.next_deadline()
        } else {
            // Due checks wait for room, which only a result or a deadline makes.
            self.prober.next_deadline(now)
        };
        due.into_iter().chain(self.prober.next_deadline(now)).min()
    }

    /// The descriptor that is readable when a probe has something to do.
    pub fn raw_fd(&self) -> RawFd {
        self.prober.raw_fd()
    }

    /// Runs the checks on the calling thread while `running()` says so, with the time from
    /// `now()` (a runtime's `MonotonicClock`), changing the director(s) through `ctl`: for an
    /// application that wants them beside its packet loop rather than in it.
    ///
    /// ```no_run
    /// # use lvs_core::health::Monitor;
    /// # use lvs_dataplane::health::HealthChecker;
    /// # use lvs_dataplane::runtime::{MonotonicClock, Shards, StopHandle};
    /// # fn f(mut shards: Shards, monitor: Monitor, stop: StopHandle) -> std::io::Result<()> {
    /// let clock = MonotonicClock::default();
    /// let mut checker = HealthChecker::new(monitor)?.on_event(|e| eprintln!("{e}"));
    /// checker.run(&mut shards, || clock.now(), || !stop.is_stopped())
    /// # }
    /// ```
    ///
    /// # Errors
    /// An error of the prober's epoll set or of `poll(2)`.
    pub fn run(
        &mut self,
        ctl: &mut dyn Control,
        now: impl Fn() -> Instant,
        running: impl Fn() -> bool,
    ) -> io::Result<()> {
        while running() {
            let now = now();
            self.poll(now, ctl)?;
            // Wake at least every 100 ms to see the stop handle.
            let wait = self.next_deadline(now).map_or(Duration::from_millis(100), |t| t.saturating_since(now));
            self.prober.wait(wait.min(Duration::from_millis(100)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
