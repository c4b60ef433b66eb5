//! The client's side of the failover lab: long-lived streams through the VIP, each sending a
//! numbered chunk every 20 ms and checking every byte that comes back, with the time each chunk
//! left and returned; and short connections to the persistent service that ask which real
//! server answers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::{PATIENCE, PERSIST_PORT, STREAM_PORT, VIP};
use crate::netns::Netns;

/// Bytes per chunk.
pub(super) const CHUNK: usize = 64;
/// A chunk leaves every this often on each stream.
const INTERVAL: Duration = Duration::from_millis(20);
/// A TCP stream sends no more while this many chunks wait for their echo (a second's worth),
/// so a stalled connection never blocks in `write`.
const IN_FLIGHT: usize = 50;
/// How long a stream waits for the last echoes once sending stops.
const DRAIN: Duration = Duration::from_secs(3);

/// What the lab tells the streams.
#[derive(Default)]
pub(super) struct Ctl {
    /// Stop sending, collect the last echoes and end.
    pub(super) stop_sending: AtomicBool,
    /// The lab failed: end at once.
    pub(super) abort: AtomicBool,
}

/// What a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A TCP connection to this virtual port.
    Tcp(u16),
    /// The UDP flow to the stream port.
    Udp,
}

/// A stream's start: its kind and client port, or why it could not start.
pub(super) struct Ready {
    pub(super) kind: Kind,
    pub(super) port: Result<u16, String>,
}

/// One stream's record.
pub(super) struct StreamLog {
    pub(super) kind: Kind,
    /// The real server that greeted a TCP stream.
    pub(super) server: Option<usize>,
    /// When each chunk left.
    pub(super) sent: Vec<Instant>,
    /// When each chunk's echo arrived, if it did.
    pub(super) echoed: Vec<Option<Instant>>,
    /// What ended a TCP stream early (reset, closed, wrong bytes).
    pub(super) error: Option<String>,
}

impl StreamLog {
    fn new(kind: Kind) -> StreamLog {
        StreamLog { kind, server: None, sent: Vec::new(), echoed: Vec::new(), error: None }
    }

    /// A TCP stream is lost when it broke or some chunk never came back.
    pub(super) fn lost(&self) -> bool {
        self.kind != Kind::Udp && (self.error.is_some() || self.echoed.iter().any(Option::is_none))
    }

    /// When the last echo arrived.
    pub(super) fn last_echo(&self) -> Option<Instant> {
        self.echoed.iter().flatten().max().copied()
    }

    /// Echo arrival times, in order.
    pub(super) fn arrivals(&self) -> Vec<Instant> {
        let mut a: Vec<Instant> = self.echoed.iter().flatten().copied().collect();
        a.sort();
        a
    }

    fn send_due(&mut self, next: &mut Instant, now: Instant) -> Option<u32> {
        if now < *next {
            return None;
        }
        while *next <= now {
            *next += INTERVAL;
        }
        self.sent.push(now);
        self.echoed.push(None);
        Some(self.sent.len() as u32 - 1)
    }
}

/// The bytes of chunk `seq` of stream `id`.
fn chunk(id: u16, seq: u32) -> [u8; CHUNK] {
    let mut c = [0u8; CHUNK];
    c[..2].copy_from_slice(&id.to_be_bytes());
    c[2..6].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in c.iter_mut().enumerate().skip(6) {
        *b = (u32::from(id) * 7 + seq * 13 + i as u32) as u8;
    }
    c
}

/// Reads a real server's greeting (`rs2\n`) and returns its index.
fn greeting(s: &mut TcpStream) -> io::Result<usize> {
    s.set_read_timeout(Some(PATIENCE))?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") && line.len() < 8 {
        if s.read(&mut b)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.push(b[0]);
    }
    let text = String::from_utf8_lossy(&line);
    text.trim()
        .strip_prefix("rs")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n - 1)
        .ok_or_else(|| io::Error::other(format!("greeting {text:?}")))
}

fn connect(client: &Netns, vport: u16) -> io::Result<TcpStream> {
    client.enter()?;
    let s = TcpStream::connect_timeout(&SocketAddr::from((VIP, vport)), PATIENCE)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// How long to wait for data before the next chunk is due (at least a millisecond).
fn until(next: Instant, now: Instant, sending: bool) -> Duration {
    if sending {
        next.saturating_duration_since(now).max(Duration::from_millis(1))
    } else {
        INTERVAL
    }
}

/// A TCP stream to `vport`, from the client's namespace, until told to stop.
pub(super) fn tcp(client: &Netns, id: u16, vport: u16, ctl: &Ctl, ready: &Sender<Ready>) -> StreamLog {
    let mut log = StreamLog::new(Kind::Tcp(vport));
    let opened = connect(client, vport).and_then(|mut s| {
        let server = greeting(&mut s)?;
        s.set_write_timeout(Some(Duration::from_secs(1)))?;
        Ok((s.local_addr()?.port(), server, s))
    });
    let mut s = match opened {
        Ok((port, server, s)) => {
            log.server = Some(server);
            let _ = ready.send(Ready { kind: log.kind, port: Ok(port) });
            s
        }
        Err(e) => {
            let _ = ready.send(Ready { kind: log.kind, port: Err(format!("TCP to port {vport}: {e}")) });
            log.error = Some(e.to_string());
            return log;
        }
    };
    let (mut next, mut drain_end) = (Instant::now(), None);
    let (mut inbuf, mut buf, mut acked) = (Vec::new(), [0u8; 2048], 0usize);
    while !ctl.abort.load(Ordering::Relaxed) {
        let now = Instant::now();
        let sending = !ctl.stop_sending.load(Ordering::Relaxed);
        if !sending {
            let end = *drain_end.get_or_insert(now + DRAIN);
            if acked == log.sent.len() || now > end {
                break;
            }
        } else if log.sent.len() - acked < IN_FLIGHT {
            if let Some(seq) = log.send_due(&mut next, now) {
                if let Err(e) = s.write_all(&chunk(id, seq)) {
                    log.error = Some(format!("send: {e}"));
                    break;
                }
            }
        }
        if let Err(e) = s.set_read_timeout(Some(until(next, Instant::now(), sending))) {
            log.error = Some(e.to_string());
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => {
                log.error = Some("closed by the server".into());
                break;
            }
            Ok(n) => {
                let at = Instant::now();
                inbuf.extend_from_slice(&buf[..n]);
                while inbuf.len() >= CHUNK && acked < log.sent.len() {
                    if inbuf[..CHUNK] != chunk(id, acked as u32) {
                        log.error = Some(format!("echo of chunk {acked} differs"));
                        break;
                    }
                    inbuf.drain(..CHUNK);
                    log.echoed[acked] = Some(at);
                    acked += 1;
                }
                if log.error.is_some() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => {
                log.error = Some(e.to_string());
                break;
            }
        }
    }
    log
}

/// The UDP flow to the stream port, from the client's namespace, until told to stop. A lost
/// datagram is not retried; an echo counts once.
pub(super) fn udp(client: &Netns, id: u16, ctl: &Ctl, ready: &Sender<Ready>) -> StreamLog {
    let mut log = StreamLog::new(Kind::Udp);
    let opened = client.enter().and_then(|()| {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(SocketAddr::from((VIP, STREAM_PORT)))?;
        Ok((s.local_addr()?.port(), s))
    });
    let s = match opened {
        Ok((port, s)) => {
            let _ = ready.send(Ready { kind: Kind::Udp, port: Ok(port) });
            s
        }
        Err(e) => {
            let _ = ready.send(Ready { kind: Kind::Udp, port: Err(format!("UDP: {e}")) });
            log.error = Some(e.to_string());
            return log;
        }
    };
    let (mut next, mut drain_end, mut buf) = (Instant::now(), None, [0u8; 2048]);
    while !ctl.abort.load(Ordering::Relaxed) {
        let now = Instant::now();
        let sending = !ctl.stop_sending.load(Ordering::Relaxed);
        if !sending {
            let end = *drain_end.get_or_insert(now + Duration::from_millis(500));
            if log.echoed.iter().all(Option::is_some) || now > end {
                break;
            }
        } else if let Some(seq) = log.send_due(&mut next, now) {
            // A send refused (an ICMP error of an earlier datagram) loses just this one.
            let _ = s.send(&chunk(id, seq));
        }
        if s.set_read_timeout(Some(until(next, Instant::now(), sending))).is_err() {
            break;
        }
        if let Ok(n) = s.recv(&mut buf) {
            let at = Instant::now();
            let seq = buf.get(2..6).map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let slot = log.echoed.get_mut(seq as usize);
            if let Some(slot @ None) = slot {
                if buf[..n] == chunk(id, seq) {
                    *slot = Some(at);
                }
            }
        }
    }
    log
}

/// `n` short connections to the persistent service, one after another: the real server that
/// greeted each (`None` for a connection that failed).
pub(super) fn probe(client: &Netns, n: usize) -> Vec<Option<usize>> {
    std::thread::scope(|s| {
        s.spawn(|| (0..n).map(|_| connect(client, PERSIST_PORT).and_then(|mut c| greeting(&mut c)).ok()).collect())
            .join()
            .unwrap_or_default()
    })
}
