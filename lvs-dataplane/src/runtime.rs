//! The loop that drives a [`Director`] over one or more [`PacketIo`] ports (quinn's driver):
//! receive a burst, `process_burst`, transmit each verdict on its port, `tick` on time, and stop
//! cleanly when asked. Frames move between the receive pool and the transmit queues by swapping
//! buffers, so nothing is copied or allocated per packet after warm-up.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// A loop over `ports`; port `i` is what `Verdict::Transmit { port: i, .. }` names.
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
        for p in 0..self.ports.len() {
            let Some(port) = self.ports.get_mut(p) else { continue };
            let n = port.recv(now, &mut self.rx)?;
            if n == 0 {
                continue;
            }
            total += n;
            self.stats.rx += n as u64;
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
                Some(port) => {
                    let refs: Vec<&Frame> = q.iter().collect();
                    port.send(now, &refs)?
                }
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
                let wait = self
                    .director
                    .next_deadline()
                    .map_or(10, |t| (t.saturating_since(now).as_millis() as i32).clamp(0, 10));
                if fds.is_empty() {
                    std::thread::sleep(std::time::Duration::from_millis(wait as u64));
                } else {
                    crate::sys::linux::poll_readable(&fds, wait)?;
                }
            }
        }
        Ok(())
    }
}
