//! What the failover lab measured, and its printed report.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::client::{Kind, StreamLog, CHUNK};
use super::{rules, Mode, Rejoin, OTHER_CLIENT_IP, PERSIST_PORT, SERVERS, STREAM_PORT, VIP};

/// A fail-over's window opens this long before its kill: what stalled then was lost to it.
const LEAD: Duration = Duration::from_millis(500);

/// What the lab did and saw at one fail-over, besides the streams.
pub(super) struct Step {
    /// The director killed, and the one that took over.
    pub(super) from: &'static str,
    pub(super) to: &'static str,
    /// When the one was killed, and how long until the next hops named the other.
    pub(super) kill: Instant,
    pub(super) moved: Duration,
    /// Stream entries the new director held at the kill, of how many, and whether it held the
    /// persistence template.
    pub(super) held: (usize, usize, bool),
    /// The real server of three new connections to the persistent service afterwards.
    pub(super) persistence: Vec<Option<usize>>,
    /// For a director restarted before this fail-over: how, and how long after it was up its
    /// full resync had arrived.
    pub(super) rejoin: Option<(Rejoin, Option<Duration>)>,
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

/// Measured around one fail-over.
pub(crate) struct Failover {
    /// The director killed.
    pub(crate) from: &'static str,
    /// The director that took over.
    pub(crate) to: &'static str,
    /// For a director restarted before this fail-over: how, and how long after it was up its
    /// full resync had arrived.
    pub(crate) rejoin: Option<(Rejoin, Option<Duration>)>,
    /// Stream entries the new director held when the old one was killed, of how many, and
    /// whether it held the persistence template.
    pub(crate) held: (usize, usize, bool),
    /// From the kill until the next hops named the new director.
    pub(crate) moved: Duration,
    /// TCP connections, and those lost here.
    pub(crate) tcp: usize,
    pub(crate) tcp_lost: usize,
    /// Bytes the lost connections had sent and never got back.
    pub(crate) bytes_lost: u64,
    /// How the lost connections ended, and how many each way.
    pub(crate) endings: BTreeMap<String, usize>,
    /// UDP datagrams sent around this fail-over, and those never echoed.
    pub(crate) udp_sent: usize,
    pub(crate) udp_lost: usize,
    /// The longest wait between two echoes on one surviving stream, TCP and UDP (`None`: no
    /// such stream).
    pub(crate) gap_tcp: Option<Duration>,
    pub(crate) gap_udp: Option<Duration>,
    /// From the kill until the first echo of a chunk sent after it, on any stream.
    pub(crate) first: Option<Duration>,
    /// From the kill until every surviving stream had such an echo.
    pub(crate) resumed: Option<Duration>,
    /// The real server of three new connections to the persistent service afterwards.
    pub(crate) persistence: Vec<Option<usize>>,
}

/// When a stream stalled: its last echo, or its start.
fn stall(log: &StreamLog) -> Option<Instant> {
    log.last_echo().or_else(|| log.sent.first().copied())
}

impl Failover {
    /// Fail-over `step` with what the streams recorded from its kill up to the next one's
    /// (`next`, or the end).
    fn measure(logs: &[StreamLog], step: Step, next: Option<Instant>) -> Failover {
        let kill = step.kill;
        let lo = kill - LEAD;
        let inside = |t: Instant| t >= lo && next.is_none_or(|n| t < n - LEAD);
        let mut f = Failover {
            from: step.from,
            to: step.to,
            rejoin: step.rejoin,
            held: step.held,
            moved: step.moved,
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
    /// The two fail-overs: A to B, then B back to the restarted A.
    pub(crate) failovers: [Failover; 2],
    /// `ipvsadm -Ln` and `-Lcn` of the surviving director at the end.
    pub(crate) survivor: (String, String),
}

impl Report {
    /// The report of a run in `mode`: what the streams recorded, what the lab saw around the
    /// fail-overs, and the two fail-over `steps`.
    pub(super) fn new(mode: Mode, logs: &[StreamLog], around: Around, steps: [Step; 2]) -> Report {
        let mut spread = [0; SERVERS];
        let mut persistent = None;
        for log in logs {
            match (log.kind, log.server) {
                (Kind::Tcp(STREAM_PORT), Some(s)) => spread[s] += 1,
                (Kind::Tcp(PERSIST_PORT), s) => persistent = s,
                _ => {}
            }
        }
        let first = steps[0].kill;
        let early = |log: &&StreamLog| log.lost() && stall(log).is_none_or(|t| t < first - LEAD);
        let lost_before = logs.iter().filter(early).count();
        let [one, two] = steps;
        let next = two.kill;
        Report {
            mode,
            rules: rules(mode),
            spread,
            other_client: around.other_client,
            persistent,
            persistence_before: around.persistence_before,
            lost_before,
            failovers: [Failover::measure(logs, one, Some(next)), Failover::measure(logs, two, None)],
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
        match self.rejoin {
            Some((Rejoin::Resync, done)) => {
                let done = done.map_or("never".into(), ms);
                writeln!(f, "  {} restarted as a backup with full resync (table in {done})", self.to)?
            }
            Some((Rejoin::KernelBackup, _)) => {
                writeln!(f, "  {} restarted as a kernel-style backup (no resync)", self.to)?
            }
            None => {}
        }
        writeln!(f, "  {} held {held} of {of} stream connections, {template}", self.to)?;
        writeln!(f, "  {} killed (SIGKILL); next hop moved to {} in {}", self.from, self.to, ms(self.moved))?;
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
        writeln!(f, "  kill to first echo           {first} (every surviving stream back after {resumed})")?;
        writeln!(f, "  persistent service after     {}", servers(&self.persistence))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tcp = self.failovers[0].tcp;
        writeln!(
            f,
            "# {} failover lab: two library directors on AF_PACKET, kernel-format sync on 224.0.0.81:8848",
            self.mode.name()
        )?;
        writeln!(f, "{}", self.rules)?;
        writeln!(
            f,
            "{} TCP connections to {VIP}:{STREAM_PORT}, one to :{PERSIST_PORT} (persistent) and a UDP flow to :{STREAM_PORT}; \
             a numbered {CHUNK}-byte chunk every 20 ms on each, every echo checked",
            tcp - 1
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
        writeln!(f, "\n# ipvsadm -Ln on {} at the end\n{}", self.failovers[1].to, self.survivor.0)?;
        write!(f, "# ipvsadm -Lcn on {} at the end\n{}", self.failovers[1].to, self.survivor.1)
    }
}
