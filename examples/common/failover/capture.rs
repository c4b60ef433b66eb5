//! What the directors put on the LAN, as the bridge sees it: a packet socket on each director's
//! port of the bridge (in the bridges' namespace), read in a thread of its own, keeps when each
//! VRRP advertisement, gratuitous ARP and frame forwarded to a real server arrived from which
//! director. The times are taken as the frames are read: the ring hands a block over within
//! 2 ms and the thread reads every 0.2 ms, so they run at most a few milliseconds late.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lvs::core::vrrp::PROTO;
use lvs::core::wire::{self, Frame, DEFAULT_HEADROOM};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::io::PacketIo;

use super::{err, server_mac, Side, PATIENCE, SERVERS};

/// What a director sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum What {
    /// A VRRP advertisement with this priority.
    Advert(u8),
    /// A gratuitous ARP.
    Garp,
    /// A TCP or UDP frame to a real server's MAC: forwarded.
    Forwarded,
}

/// One frame a director sent, when it reached the bridge.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seen {
    pub(super) at: Instant,
    pub(super) side: Side,
    pub(super) what: What,
}

/// What frame `f`, sent by `side`, is; `None` for anything else (or a frame from another MAC).
fn what(side: Side, f: &[u8]) -> Option<What> {
    if f.get(6..12) != Some(&side.mac().0[..]) {
        return None;
    }
    if f.get(12..14) == Some(&[0x08, 0x06]) {
        // An ARP request whose sender and target addresses are the same.
        return (f.len() >= 42 && f[28..32] == f[38..42]).then_some(What::Garp);
    }
    let m = wire::parse(f).ok()?;
    match m.proto {
        PROTO => f.get(usize::from(m.l4) + 2).map(|p| What::Advert(*p)),
        6 | 17 if (0..SERVERS).any(|i| f.get(0..6) == Some(&server_mac(i).0[..])) => Some(What::Forwarded),
        _ => None,
    }
}

/// The capture, running until dropped.
pub(super) struct Capture {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing on the directors' bridge ports (`v-a`, `v-b`) in namespace `lan`.
    ///
    /// # Errors
    /// When the namespace or the sockets cannot be opened.
    pub(super) fn start(lan: &str) -> Result<Capture, String> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (lan, out, done) = (lan.to_string(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Promiscuous: the frames a director forwards are for the servers' MACs.
            let cfg = AfPacketConfig { promisc: true, block_size: 1 << 16, block_nr: 16, ..AfPacketConfig::default() };
            let opened = lvs::dataplane::netns::enter(&lan).and_then(|()| {
                [Side::A, Side::B]
                    .into_iter()
                    .map(|side| AfPacket::open(&format!("v-{}", side.tag()), cfg).map(|s| (side, s)))
                    .collect::<std::io::Result<Vec<_>>>()
            });
            let mut socks = match opened {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(err(e)));
                    return;
                }
            };
            let mut pool: Vec<Frame> = (0..64).map(|_| Frame::with_capacity(DEFAULT_HEADROOM + 2048)).collect();
            let mut batch = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let mut got = 0;
                for (side, s) in &mut socks {
                    // A port set down reports it once; its socket carries on when it is up again.
                    let n = s.recv(lvs::core::Instant::ZERO, &mut pool).unwrap_or(0);
                    let at = Instant::now();
                    batch.extend(pool[..n].iter().filter_map(|f| what(*side, f.data())).map(|what| Seen {
                        at,
                        side: *side,
                        what,
                    }));
                    got += n;
                }
                if !batch.is_empty() {
                    if let Ok(mut out) = out.lock() {
                        out.append(&mut batch);
                    }
                }
                if got == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        match ready_rx.recv_timeout(PATIENCE) {
            Ok(Ok(())) => Ok(Capture { seen, stop, thread: Some(thread) }),
            Ok(Err(e)) => Err(format!("capture: {e}")),
            Err(_) => Err("capture: did not start".into()),
        }
    }

    /// Everything seen so far, in order.
    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits (at most a second) for the first advertisement of a master (priority above 0)
    /// from `side` at or after `from`.
    pub(super) fn first_advert(&self, side: Side, from: Instant) -> Option<Instant> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let master = |w| matches!(w, What::Advert(p) if p > 0);
            let found = self.seen.lock().ok().and_then(|s| first(&s, side, from, master));
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The first frame from `side` at or after `from` that `want` accepts.
pub(super) fn first(seen: &[Seen], side: Side, from: Instant, want: impl Fn(What) -> bool) -> Option<Instant> {
    seen.iter().find(|s| s.side == side && s.at >= from && want(s.what)).map(|s| s.at)
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
