//! What the failover lab measured, and its printed report.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::capture::{first, Seen, What};
use super::client::{Kind, StreamLog, CHUNK};
use super::{
    rules, How, Mode, Rejoin, Side, OTHER_CLIENT_IP, PERSIST_PORT, PREEMPT_DELAY, SERVERS, STREAM_PORT, VIP, VRID,
};

/// A change's window opens this long before it: what stalled then was lost to it.
const LEAD: Duration = Duration::from_millis(500);

/// What made the active director change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The active director was SIGKILLed.
    Kill,
    /// The active director's link was pulled: its port on the bridge set down.
    LinkDown,
    /// The preferred director restarted as a backup and preempted (VRRP).
    Restarted,
    /// The preferred director's link came back; it preempted (VRRP).
    LinkUp,
}

impl Cause {
    /// Whether the director of higher priority took over again, rather than after a failure.
    pub(crate) fn is_preempt(self) -> bool {
        matches!(self, Cause::Restarted | Cause::LinkUp)
    }
}

/// What the lab did and saw at one change of director, besides the streams and the capture.
pub(super) struct Step {
    /// The director that was active, and the one that took over.
    pub(super) from: Side,
    pub(super) to: Side,
    pub(super) cause: Cause,
    /// The kill, the link pulled, or (a preempt) the new master's first advertisement.
    pub(super) at: Instant,
    /// Stream entries the new director held just before, of how many, and whether it held the
    /// persistence template.
    pub(super) held: (usize, usize, bool),
    /// By hand: how long until the next hops named the new director.
    pub(super) moved: Option<Duration>,
    /// VRRP, a failure: the new master's Master_Down_Interval, which bounds its takeover.
    pub(super) bound: Option<Duration>,
    /// A preempt: from the director's return (up again, or its link back) to its first
    /// advertisement as master.
    pub(super) back: Option<Duration>,
    /// The real server of three new connections to the persistent service afterwards.
    pub(super) persistence: Vec<Option<usize>>,
    /// For a director restarted before this change: how, and how long after it was up its
    /// full resync had arrived.
    pub(super) rejoin: Option<(Rejoin, Option<Duration>)>,
}

impl Step {
    /// A change of `cause` from `from` to `to` at `at`, the new director holding `held`.
    pub(super) fn new(cause: Cause, from: Side, to: Side, at: Instant, held: (usize, usize, bool)) -> Step {
        Step { from, to, cause, at, held, moved: None, bound: None, back: None, persistence: Vec::new(), rejoin: None }
    }
}

/// What the lab saw before the first fail-over and at the end.
pub(super) struct Around {
    /// The real server the other client got from the persistent service first.
    pub(super) other_client: Option<usize>,
    /// The real server of three new connections to it before the first fail-over.
    pub(super) persistence_before: Vec<Option<usize>>,
    /// `ipvsadm -Ln` and `-Lcn` of the surviving director at the end.
    pub(super) survivor: (String, String),
}

/// Measured around one change of director.
pub(crate) struct Failover {
    /// The director that was active.
    pub(crate) from: &'static str,
    /// The director that took over.
    pub(crate) to: &'static str,
    /// What made it change.
    pub(crate) cause: Cause,
    /// For a director restarted before this change: how, and how long after it was up its
    /// full resync had arrived.
    pub(crate) rejoin: Option<(Rejoin, Option<Duration>)>,
    /// Stream entries the new director held just before, of how many, and whether it held
    /// the persistence template.
    pub(crate) held: (usize, usize, bool),
    /// By hand: from the kill until the next hops named the new director.
    pub(crate) moved: Option<Duration>,
    /// VRRP, a failure: the new master's Master_Down_Interval.
    pub(crate) bound: Option<Duration>,
    /// A preempt: from the director's return to its first advertisement as master.
    pub(crate) back: Option<Duration>,
    /// On the wire, from the change: the new master's first advertisement, its first
    /// gratuitous ARP, and the first frame it forwarded to a real server — the takeover time.
    pub(crate) master: Option<Duration>,
    pub(crate) announced: Option<Duration>,
    pub(crate) forwarded: Option<Duration>,
    /// TCP connections, and those lost here.
    pub(crate) tcp: usize,
    pub(crate) tcp_lost: usize,
    /// Bytes the lost connections had sent and never got back.
    pub(crate) bytes_lost: u64,
    /// How the lost connections ended, and how many each way.
    pub(crate) endings: BTreeMap<String, usize>,
    /// UDP datagrams sent around this change, and those never echoed.
    pub(crate) udp_sent: usize,
    pub(crate) udp_lost: usize,
    /// The longest wait between two echoes on one surviving stream, TCP and UDP (`None`: no
    /// such stream).
    pub(crate) gap_tcp: Option<Duration>,
    pub(crate) gap_udp: Option<Duration>,
    /// From the change until the first echo of a chunk sent after it, on any stream.
    pub(crate) first: Option<Duration>,
    /// From the change until every surviving stream had such an echo.
    pub(crate) resumed: Option<Duration>,
    /// The real server of three new connections to the persistent service afterwards.
    pub(crate) persistence: Vec<Option<usize>>,
}

/// When a stream stalled: its last echo, or its start.
fn stall(log: &StreamLog) -> Option<Instant> {
    log.last_echo().or_else(|| log.sent.first().copied())
}

impl Failover {
    /// Change `step` with what the streams recorded from it up to the next one (`next`, or
    /// the end), and what the capture `seen` of the new director after it.
    fn measure(logs: &[StreamLog], step: Step, next: Option<Instant>, seen: &[Seen]) -> Failover {
        let kill = step.at;
        let lo = kill - LEAD;
        let inside = |t: Instant| t >= lo && next.is_none_or(|n| t < n - LEAD);
        let wire = |want: fn(What) -> bool| first(seen, step.to, kill, want).map(|t| t - kill);
        let mut f = Failover {
            from: step.from.name(),
            to: step.to.name(),
            cause: step.cause,
            rejoin: step.rejoin,
            held: step.held,
            moved: step.moved,
            bound: step.bound,
            back: step.back,
            master: wire(|w| matches!(w, What::Advert(p) if p > 0)),
            announced: wire(|w| w == What::Garp),
            forwarded: wire(|w| w == What::Forwarded),
            tcp: 0,
            tcp_lost: 0,
            bytes_lost: 0,
            endings: BTreeMap::new(),
            udp_sent: 0,
            udp_lost: 0,
            gap_tcp: None,
            gap_udp: None,
            first: None,
            resumed: Some(Duration::ZERO),
            persistence: step.persistence,
        };
        for log in logs {
            let udp = log.kind == Kind::Udp;
            if udp {
                for (s, e) in log.sent.iter().zip(&log.echoed) {
                    if inside(*s) {
                        f.udp_sent += 1;
                        f.udp_lost += usize::from(e.is_none());
                    }
                }
            } else {
                f.tcp += 1;
                if log.lost() {
                    let at = stall(log);
                    if at.is_some_and(inside) {
                        f.tcp_lost += 1;
                        f.bytes_lost += (log.echoed.iter().filter(|e| e.is_none()).count() * CHUNK) as u64;
                        let how = log.error.clone().unwrap_or_else(|| "stalled".into());
                        *f.endings.entry(how).or_default() += 1;
                        continue;
                    }
                    if at.is_none_or(|t| t < lo) {
                        // Lost earlier: nothing to measure here.
                        continue;
                    }
                }
            }
            let arrivals = log.arrivals();
            let gap = arrivals.windows(2).filter(|w| inside(w[1])).map(|w| w[1] - w[0]).max().unwrap_or_default();
            let slot = if udp { &mut f.gap_udp } else { &mut f.gap_tcp };
            *slot = Some(slot.unwrap_or_default().max(gap));
            let back = log.sent.iter().zip(&log.echoed).filter(|(s, _)| **s >= kill).filter_map(|(_, e)| *e).min();
            let back = back.map(|t| t - kill);
            f.first = match (f.first, back) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            f.resumed = f.resumed.zip(back).map(|(a, b)| a.max(b));
        }
        f
    }

    /// Whether every new connection to the persistent service went to `server`.
    fn persistence_held(&self, server: Option<usize>) -> bool {
        server.is_some() && !self.persistence.is_empty() && self.persistence.iter().all(|s| *s == server)
    }
}

/// A lab run's results.
pub(crate) struct Report {
    /// Forwarding method.
    pub(crate) mode: Mode,
    /// Who moved the active director.
    pub(crate) how: How,
    /// The directors' rules.
    pub(crate) rules: String,
    /// TCP streams on the stream port per real server.
    pub(crate) spread: [usize; SERVERS],
    /// The real server the other client got from the persistent service first.
    pub(crate) other_client: Option<usize>,
    /// The real server of the long-lived connection to the persistent service.
    pub(crate) persistent: Option<usize>,
    /// The real server of three new connections to it before the first fail-over.
    pub(crate) persistence_before: Vec<Option<usize>>,
    /// TCP connections lost before the first fail-over.
    pub(crate) lost_before: usize,
    /// Every change of director, in order: by hand A to B, then B back to the restarted A;
    /// with VRRP also A's link pulled and restored.
    pub(crate) failovers: Vec<Failover>,
    /// `ipvsadm -Ln` and `-Lcn` of the surviving director at the end.
    pub(crate) survivor: (String, String),
}

impl Report {
    /// The report of a run in `mode`, `how`: what the streams recorded, what the lab saw
    /// around the changes, the changes (`steps`) and what the capture `seen`.
    pub(super) fn new(
        mode: Mode,
        how: How,
        logs: &[StreamLog],
        around: Around,
        steps: Vec<Step>,
        seen: &[Seen],
    ) -> Report {
        let mut spread = [0; SERVERS];
        let mut persistent = None;
        for log in logs {
            match (log.kind, log.server) {
                (Kind::Tcp(STREAM_PORT), Some(s)) => spread[s] += 1,
                (Kind::Tcp(PERSIST_PORT), s) => persistent = s,
                _ => {}
            }
        }
        let first = steps.first().map(|s| s.at);
        let early =
            |log: &&StreamLog| log.lost() && first.is_some_and(|first| stall(log).is_none_or(|t| t < first - LEAD));
        let lost_before = logs.iter().filter(early).count();
        let nexts: Vec<Option<Instant>> = steps.iter().skip(1).map(|s| Some(s.at)).chain([None]).collect();
        let failovers =
            steps.into_iter().zip(nexts).map(|(step, next)| Failover::measure(logs, step, next, seen)).collect();
        Report {
            mode,
            how,
            rules: rules(mode),
            spread,
            other_client: around.other_client,
            persistent,
            persistence_before: around.persistence_before,
            lost_before,
            failovers,
            survivor: around.survivor,
        }
    }

    /// Whether persistence held before the first fail-over and up to fail-over `upto` (0 or
    /// 1): every new connection went to the persistent stream's server — not the one the other
    /// client took first, which a director without the templates would choose.
    pub(crate) fn persistence_held(&self, upto: usize) -> bool {
        let p = self.persistent;
        p.is_some()
            && self.other_client.is_some()
            && p != self.other_client
            && !self.persistence_before.is_empty()
            && self.persistence_before.iter().all(|s| *s == p)
            && self.failovers.iter().take(upto + 1).all(|f| f.persistence_held(p))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn servers(s: &[Option<usize>]) -> String {
    let names: Vec<String> = s.iter().map(|s| s.map_or("failed".into(), |i| format!("rs{}", i + 1))).collect();
    names.join(" ")
}

impl fmt::Display for Failover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (held, of, template) = self.held;
        let template = if template { "and the persistence template" } else { "no persistence template" };
        let after = |d: Option<Duration>| d.map_or("never".into(), ms);
        match self.rejoin {
            Some((Rejoin::Resync, done)) => {
                writeln!(f, "  {} restarted as a backup with full resync (table in {})", self.to, after(done))?
            }
            Some((Rejoin::KernelBackup, _)) => {
                writeln!(f, "  {} restarted as a kernel-style backup (no resync)", self.to)?
            }
            None => {}
        }
        if self.cause == Cause::LinkUp {
            writeln!(f, "  {}'s link back up: BACKUP again, resynced over the sync link while in FAULT", self.to)?;
        }
        writeln!(f, "  {} held {held} of {of} stream connections, {template}", self.to)?;
        let (from, to) = (self.from, self.to);
        match self.cause {
            Cause::Kill => writeln!(f, "  {from} killed (SIGKILL)")?,
            Cause::LinkDown => writeln!(f, "  {from}'s link pulled (its port on the bridge set down)")?,
            Cause::Restarted | Cause::LinkUp => writeln!(
                f,
                "  {to} preempted {} after it was back (preempt_delay {}); times below from its first advertisement",
                after(self.back),
                ms(PREEMPT_DELAY)
            )?,
        }
        if let Some(moved) = self.moved {
            writeln!(f, "  next hop moved to {to} by hand in {}", ms(moved))?;
        }
        if self.bound.is_some() {
            writeln!(f, "  {to}'s first advertisement         +{}", after(self.master))?;
        }
        if self.bound.is_some() || self.cause.is_preempt() {
            writeln!(f, "  {to}'s first gratuitous ARP         +{}", after(self.announced))?;
        }
        let bound = self.bound.map_or(String::new(), |b| format!(" (Master_Down_Interval {})", ms(b)));
        writeln!(f, "  {to}'s first frame to a real server  +{}{bound}", after(self.forwarded))?;
        writeln!(
            f,
            "  TCP connections lost         {} of {} ({} bytes lost)",
            self.tcp_lost, self.tcp, self.bytes_lost
        )?;
        for (how, n) in &self.endings {
            writeln!(f, "    {n} × {how}")?;
        }
        writeln!(f, "  UDP datagrams lost           {} of {}", self.udp_lost, self.udp_sent)?;
        let gap = |g: Option<Duration>| g.map_or("no stream left".into(), ms);
        writeln!(f, "  longest gap, TCP / UDP       {} / {}", gap(self.gap_tcp), gap(self.gap_udp))?;
        let first = self.first.map_or("none".into(), ms);
        let resumed = self.resumed.map_or("not every one".into(), ms);
        writeln!(f, "  to first echo                {first} (every surviving stream back after {resumed})")?;
        writeln!(f, "  persistent service after     {}", servers(&self.persistence))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tcp = self.failovers.first().map_or(0, |f| f.tcp);
        match self.how {
            How::Manual(_) => writeln!(
                f,
                "# {} failover lab: two library directors on AF_PACKET, kernel-format sync on 224.0.0.81:8848, \
                 next hops moved by hand",
                self.mode.name()
            )?,
            How::Vrrp { advert_int } => writeln!(
                f,
                "# {} failover lab: two library directors on AF_PACKET, VRRPv3 every {} (A {}, B {}, \
                 preempt_delay {}), kernel-format sync on 224.0.0.81:8848 following VRRP (syncid {VRID})",
                self.mode.name(),
                ms(advert_int),
                Side::A.priority(),
                Side::B.priority(),
                ms(PREEMPT_DELAY)
            )?,
        }
        writeln!(f, "{}", self.rules)?;
        writeln!(
            f,
            "{} TCP connections to {VIP}:{STREAM_PORT}, one to :{PERSIST_PORT} (persistent) and a UDP flow to :{STREAM_PORT}; \
             a numbered {CHUNK}-byte chunk every 20 ms on each, every echo checked",
            tcp.saturating_sub(1)
        )?;
        let spread: Vec<String> = self.spread.iter().enumerate().map(|(i, n)| format!("rs{} {n}", i + 1)).collect();
        writeln!(f, "stream connections per server: {}", spread.join(", "))?;
        let (other, p) = (servers(&[self.other_client]), servers(&[self.persistent]));
        writeln!(
            f,
            "persistent service: another client ({OTHER_CLIENT_IP}) came first and got {other} (a director without the"
        )?;
        writeln!(f, "templates would choose it again); the long-lived connection is on {p}")?;
        writeln!(f, "new connections before fail-over 1: {}", servers(&self.persistence_before))?;
        if self.lost_before > 0 {
            writeln!(f, "TCP connections lost before any fail-over: {}", self.lost_before)?;
        }
        for (i, fo) in self.failovers.iter().enumerate() {
            writeln!(f, "\nfail-over {}: {} -> {}", i + 1, fo.from, fo.to)?;
            write!(f, "{fo}")?;
        }
        let last = self.failovers.last().map_or("?", |f| f.to);
        writeln!(f, "\n# ipvsadm -Ln on {last} at the end\n{}", self.survivor.0)?;
        write!(f, "# ipvsadm -Lcn on {last} at the end\n{}", self.survivor.1)
    }
}
