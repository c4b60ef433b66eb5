//! The loop that drives a [`Director`] over one or more [`PacketIo`] ports (quinn's driver):
//! receive a burst, `process_burst`, transmit each verdict on its port, `tick` on time, and stop
//! cleanly when asked; and [`Shards`], one such loop per core. Frames move between the receive pool and the transmit queues by swapping
//! buffers, so nothing is copied or allocated per packet after warm-up.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use lvs_core::config::{render_stats, stats_rows, sum_rows, Command, StatsRow};
use lvs_core::wire::{Frame, DEFAULT_HEADROOM};
use lvs_core::{Director, Instant, Verdict};

use crate::io::PacketIo;

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

/// What the loop did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Frames received.
    pub rx: u64,
    /// Frames transmitted.
    pub tx: u64,
    /// Frames the director dropped (the director counts them by reason).
    pub dropped: u64,
    /// Frames for the application's own stack (`Local`, `NotMine`).
    pub passed: u64,
    /// Frames a port would not take (its queue was full) or a verdict named no such port.
    pub tx_lost: u64,
}

/// A director and its ports.
pub struct Runtime {
    director: Director,
    ports: Vec<Box<dyn PacketIo + Send>>,
    rx: Vec<Frame>,
    verdicts: Vec<Verdict>,
    tx: Vec<Vec<Frame>>,
    spare: Vec<Frame>,
    stats: RuntimeStats,
    stop: StopHandle,
}

impl Runtime {
    /// A loop over `ports`; port `i` is what `Verdict::Transmit { port: i, .. }` names and what
    /// the frames received from it carry in [`Frame::port`]. A verdict names ports by `u16`, so
    /// ports beyond the first 65 536 are never polled.
    pub fn new(director: Director, ports: Vec<Box<dyn PacketIo + Send>>) -> Self {
        let burst = ports.iter().map(|p| p.caps().max_burst).max().unwrap_or(32).clamp(1, 256);
        let frame = || Frame::with_capacity(DEFAULT_HEADROOM + 2048);
        let n = ports.len();
        Runtime {
            director,
            rx: (0..burst).map(|_| frame()).collect(),
            verdicts: vec![Verdict::NotMine; burst],
            tx: (0..n).map(|_| Vec::with_capacity(burst)).collect(),
            spare: (0..burst).map(|_| frame()).collect(),
            ports,
            stats: RuntimeStats::default(),
            stop: StopHandle::default(),
        }
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

    /// One pass: a burst from every port through the director, then transmit and tick.
    /// Returns how many frames were received.
    ///
    /// # Errors
    /// A port's system error.
    pub fn poll_once(&mut self, now: Instant) -> io::Result<usize> {
        let mut total = 0;
        for (p, arrival) in (0..self.ports.len()).zip(0..=u16::MAX) {
            let Some(port) = self.ports.get_mut(p) else { continue };
            let n = port.recv(now, &mut self.rx)?;
            if n == 0 {
                continue;
            }
            total += n;
            self.stats.rx += n as u64;
            for f in &mut self.rx[..n] {
                f.port = arrival;
            }
            let (frames, verdicts) = (&mut self.rx[..n], &mut self.verdicts[..n]);
            self.director.process_burst(now, frames, verdicts);
            for i in 0..n {
                match self.verdicts[i] {
                    Verdict::Transmit { port, .. } => match self.tx.get_mut(usize::from(port)) {
                        Some(q) => {
                            // Move the rewritten frame to its port's queue; a spare buffer
                            // takes its place in the receive pool.
                            let spare =
                                self.spare.pop().unwrap_or_else(|| Frame::with_capacity(DEFAULT_HEADROOM + 2048));
                            q.push(std::mem::replace(&mut self.rx[i], spare));
                        }
                        None => self.stats.tx_lost += 1,
                    },
                    Verdict::Drop(_) => self.stats.dropped += 1,
                    Verdict::Local | Verdict::NotMine => self.stats.passed += 1,
                }
            }
            self.flush(now)?;
        }
        if self.director.next_deadline().is_some_and(|t| t <= now) {
            self.director.tick(now);
        }
        Ok(total)
    }

    fn flush(&mut self, now: Instant) -> io::Result<()> {
        for (p, q) in self.tx.iter_mut().enumerate() {
            if q.is_empty() {
                continue;
            }
            let sent = match self.ports.get_mut(p) {
                Some(port) => port.send(now, q)?,
                None => 0,
            };
            self.stats.tx += sent as u64;
            self.stats.tx_lost += (q.len() - sent) as u64;
            self.spare.append(q);
        }
        Ok(())
    }

    /// Runs until the stop handle is used, sleeping in `poll` while there is nothing to do
    /// (at most until the director's next deadline, and never more than 10 ms).
    ///
    /// # Errors
    /// A port's system error.
    pub fn run(&mut self, clock: &MonotonicClock) -> io::Result<()> {
        let fds: Vec<_> = self.ports.iter().filter_map(|p| p.raw_fd()).collect();
        while !self.stop.is_stopped() {
            let now = clock.now();
            if self.poll_once(now)? == 0 {
                self.idle(now, &fds)?;
            }
        }
        Ok(())
    }

    /// Waits for traffic: until a port is readable, the director's next deadline, or 10 ms.
    fn idle(&self, now: Instant, fds: &[RawFd]) -> io::Result<()> {
        let wait =
            self.director.next_deadline().map_or(10, |t| (t.saturating_since(now).as_millis() as i32).clamp(0, 10));
        if fds.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(wait as u64));
            Ok(())
        } else {
            crate::sys::linux::poll_readable(fds, wait)
        }
    }
}

/// A control-plane message to one shard.
enum Ctl {
    Apply(Command, mpsc::Sender<Result<(), lvs_core::Error>>),
    Stats(mpsc::Sender<(Vec<StatsRow>, RuntimeStats)>),
}

/// Builds one shard: its director and ports, called on the shard's own thread (so it can enter
/// a namespace or open per-core sockets there).
pub type ShardFactory = dyn Fn(usize) -> io::Result<(Director, Vec<Box<dyn PacketIo + Send>>)> + Send + Sync;

/// Share-nothing scale-out: one [`Director`] per thread, frames steered to shards by the ports
/// (AF_PACKET fanout by flow hash); control-plane changes go to every shard and statistics are
/// summed for listing.
pub struct Shards {
    ctl: Vec<mpsc::Sender<Ctl>>,
    stop: StopHandle,
    threads: Vec<std::thread::JoinHandle<io::Result<()>>>,
}

impl Shards {
    /// Starts `n` shards, each built by `make(i)` on its own thread.
    ///
    /// # Errors
    /// The first shard's setup error.
    pub fn spawn(n: usize, make: Arc<ShardFactory>) -> io::Result<Shards> {
        let stop = StopHandle::default();
        let (mut ctl, mut threads) = (Vec::new(), Vec::new());
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        for i in 0..n {
            let (tx, rx) = mpsc::channel::<Ctl>();
            let (make, stop, ready) = (make.clone(), stop.clone(), ready_tx.clone());
            threads.push(std::thread::spawn(move || -> io::Result<()> {
                let (d, ports) = match make(i) {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                let _ = ready.send(Ok(()));
                let mut rt = Runtime::new(d, ports);
                rt.stop = stop;
                let clock = MonotonicClock::default();
                let fds: Vec<_> = rt.ports.iter().filter_map(|p| p.raw_fd()).collect();
                while !rt.stop.is_stopped() {
                    let now = clock.now();
                    let got = rt.poll_once(now)?;
                    while let Ok(msg) = rx.try_recv() {
                        match msg {
                            Ctl::Apply(c, reply) => {
                                let _ = reply.send(rt.director.execute(&c));
                            }
                            Ctl::Stats(reply) => {
                                let _ = reply.send((stats_rows(&rt.director), rt.stats));
                            }
                        }
                    }
                    if got == 0 {
                        rt.idle(now, &fds)?;
                    }
                }
                Ok(())
            }));
            ctl.push(tx);
        }
        for _ in 0..n {
            if let Ok(Err(e)) = ready_rx.recv() {
                stop.stop();
                return Err(e);
            }
        }
        Ok(Shards { ctl, stop, threads })
    }

    /// Applies a control-plane command to every shard.
    ///
    /// # Errors
    /// The first shard's error (shards share one configuration, so they fail alike).
    pub fn apply(&self, c: &Command) -> Result<(), lvs_core::Error> {
        let mut result = Ok(());
        for tx in &self.ctl {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(Ctl::Apply(c.clone(), rtx)).is_ok() {
                if let Ok(Err(e)) = rrx.recv() {
                    result = result.and(Err(e));
                }
            }
        }
        result
    }

    /// `ipvsadm -Ln --stats` summed over the shards, and the loops' counters summed.
    pub fn stats(&self) -> (String, RuntimeStats) {
        let mut parts = Vec::new();
        let mut total = RuntimeStats::default();
        for tx in &self.ctl {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(Ctl::Stats(rtx)).is_ok() {
                if let Ok((rows, s)) = rrx.recv() {
                    parts.push(rows);
                    total.rx += s.rx;
                    total.tx += s.tx;
                    total.dropped += s.dropped;
                    total.passed += s.passed;
                    total.tx_lost += s.tx_lost;
                }
            }
        }
        (render_stats(&sum_rows(&parts)), total)
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use lvs_core::neigh::{MacAddr, Neighbour};
    use lvs_core::proto::tcp::flags;
    use lvs_core::testkit::{factory, Tcp, DIRECTOR_MAC};
    use lvs_core::DirectorConfig;

    use super::*;
    use crate::io::IoCaps;

    /// Frames a port sent, each with the arrival port it carried.
    type Sent = Arc<Mutex<Vec<(u16, Vec<u8>)>>>;

    /// A port in memory: hands out `inbox` once, and records what is sent.
    struct Mem {
        inbox: Vec<Vec<u8>>,
        sent: Sent,
    }

    impl PacketIo for Mem {
        fn caps(&self) -> IoCaps {
            IoCaps { mtu: 1514, headroom: DEFAULT_HEADROOM, max_burst: 8 }
        }

        fn recv(&mut self, _now: Instant, frames: &mut [Frame]) -> io::Result<usize> {
            let n = self.inbox.len().min(frames.len());
            for (f, data) in frames.iter_mut().zip(self.inbox.drain(..n)) {
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

    /// A DR service at 203.0.113.100:80 whose real server is behind port 0.
    fn director() -> Director {
        let mut d = Director::new(DirectorConfig { mac: MacAddr(DIRECTOR_MAC), ..DirectorConfig::default() }, factory);
        d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: RS_MAC, port: 0 });
        d.restore("-A -t 203.0.113.100:80 -s first\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -g\n").unwrap();
        d
    }

    fn syn(sport: u16) -> Vec<u8> {
        Tcp::new(("198.51.100.2".parse().unwrap(), sport), ("203.0.113.100".parse().unwrap(), 80), flags::SYN).build()
    }

    /// Ports whose inboxes are `inboxes`, and what each sends.
    fn ports(inboxes: Vec<Vec<Vec<u8>>>) -> (Vec<Box<dyn PacketIo + Send>>, Vec<Sent>) {
        inboxes
            .into_iter()
            .map(|inbox| {
                let sent = Arc::new(Mutex::new(Vec::new()));
                let port: Box<dyn PacketIo + Send> = Box::new(Mem { inbox, sent: sent.clone() });
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
}
