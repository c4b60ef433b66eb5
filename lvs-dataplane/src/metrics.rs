//! A small HTTP endpoint for Prometheus: `GET /metrics` answered with the exposition
//! ([`lvs_core::config::prometheus`]), anything else with a 404 (or 405, 400, 431), one request
//! per connection. It never blocks: [`MetricsServer::poll`] accepts, reads and writes what the
//! sockets allow and returns, so it can sit in a packet loop ([`Runtime::run_with`]'s
//! `between`) or run on a thread of its own ([`MetricsServer::run`]). A slow or hostile client
//! is bounded: at most [`MAX_CLIENTS`] connections at once (more are closed on arrival), a
//! request head of at most [`MAX_REQUEST`] bytes, and [`CLIENT_TIMEOUT`] for the whole exchange.
//!
//! ```no_run
//! use lvs_core::config::prometheus::Snapshot;
//! use lvs_dataplane::metrics::MetricsServer;
//! use lvs_dataplane::runtime::{MonotonicClock, Runtime};
//!
//! # fn f(mut rt: Runtime) -> std::io::Result<()> {
//! let mut metrics = MetricsServer::bind("127.0.0.1:9110".parse().unwrap())?;
//! let clock = MonotonicClock::default();
//! rt.run_with(&clock, |rt| {
//!     let _ = metrics.poll(clock.now(), || Snapshot::of(rt.director()).render());
//! })
//! # }
//! ```
//!
//! [`Runtime::run_with`]: crate::runtime::Runtime::run_with

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use lvs_core::config::prometheus::CONTENT_TYPE;
use lvs_core::Instant;

use crate::runtime::{MonotonicClock, StopHandle};
use crate::sys::linux;

/// Connections served at once; one arriving beyond them is closed at once.
pub const MAX_CLIENTS: usize = 8;
/// The longest request head (request line and headers) read; a longer one gets a 431.
pub const MAX_REQUEST: usize = 4096;
/// How long a connection may take from its arrival to the last byte of the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoint has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsStats {
    /// `GET /metrics` answered with the exposition.
    pub scrapes: u64,
    /// Requests answered with an error status (404, 405, 400, 431).
    pub refused: u64,
    /// Connections closed on arrival because [`MAX_CLIENTS`] were open.
    pub turned_away: u64,
    /// Connections closed at [`CLIENT_TIMEOUT`] or on a socket error before their answer was out.
    pub timed_out: u64,
}

/// One client: its request head as it arrives, then the answer as it leaves.
struct Client {
    stream: TcpStream,
    request: Vec<u8>,
    answer: Option<Vec<u8>>,
    sent: usize,
    deadline: Instant,
}

/// What a complete request head asks for.
enum Ask {
    Metrics,
    Status(&'static str),
}

/// The endpoint: a non-blocking listener and its clients.
pub struct MetricsServer {
    listener: TcpListener,
    clients: Vec<Client>,
    stats: MetricsStats,
    fds: Vec<RawFd>,
}

impl MetricsServer {
    /// Listens on `addr` (`ADDR:PORT`; port 0 for any free port).
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer { listener, clients: Vec::new(), stats: MetricsStats::default(), fds: Vec::new() })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// What it has done so far.
    pub fn stats(&self) -> MetricsStats {
        self.stats
    }

    /// Connections open now.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// One pass at `now`: takes the connections waiting, reads requests, answers those that are
    /// complete and writes what the sockets take; never waits. `render` makes the exposition
    /// and is called at most once a pass, only when a `GET /metrics` is to be answered.
    ///
    /// # Errors
    /// The listener's own error (a client's error only closes that client).
    pub fn poll(&mut self, now: Instant, render: impl FnOnce() -> String) -> io::Result<()> {
        self.accept(now)?;
        let mut render = Some(render);
        let mut body: Option<String> = None;
        let stats = &mut self.stats;
        self.clients.retain_mut(|c| {
            if c.answer.is_none() {
                match read_request(c) {
                    Ok(Some(Ask::Metrics)) => {
                        let text = body.get_or_insert_with(|| render.take().map_or_else(String::new, |r| r()));
                        c.answer = Some(response("200 OK", CONTENT_TYPE, text));
                        stats.scrapes += 1;
                    }
                    Ok(Some(Ask::Status(status))) => {
                        c.answer = Some(response(status, "text/plain; charset=utf-8", status));
                        stats.refused += 1;
                    }
                    Ok(None) => {}
                    Err(_) => return false,
                }
            }
            let done = match write_answer(c) {
                Ok(done) => done,
                Err(_) => {
                    stats.timed_out += 1;
                    return false;
                }
            };
            if done {
                let _ = c.stream.shutdown(std::net::Shutdown::Write);
                return false;
            }
            if now >= c.deadline {
                stats.timed_out += 1;
                return false;
            }
            true
        });
        Ok(())
    }

    /// The descriptors to wait on for readability (the listener and the clients), for a loop
    /// of one's own.
    pub fn raw_fds(&mut self) -> &[RawFd] {
        self.fds.clear();
        self.fds.push(self.listener.as_raw_fd());
        self.fds.extend(self.clients.iter().map(|c| c.stream.as_raw_fd()));
        &self.fds
    }

    /// Serves on the calling thread until `stop` is asked, waking for a connection or a
    /// request, and at least every 100 ms (to see the handle and write what is left).
    ///
    /// # Errors
    /// The listener's error, or `poll(2)`'s.
    pub fn run(&mut self, stop: &StopHandle, mut render: impl FnMut() -> String) -> io::Result<()> {
        let clock = MonotonicClock::default();
        while !stop.is_stopped() {
            self.poll(clock.now(), &mut render)?;
            // Clients still writing want POLLOUT, not POLLIN: keep their waits short.
            let ms = if self.clients.iter().any(|c| c.answer.is_some()) { 1 } else { 100 };
            linux::poll_readable(self.raw_fds(), ms)?;
        }
        Ok(())
    }

    fn accept(&mut self, now: Instant) -> io::Result<()> {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                self.stats.turned_away += 1;
                continue; // dropped: closed
            }
            self.clients.push(Client {
                stream,
                request: Vec::new(),
                answer: None,
                sent: 0,
                deadline: now + CLIENT_TIMEOUT,
            });
        }
    }
}

/// Reads what the client sent; the request once its head is complete. An error closes the
/// client (the peer closed before a whole head, or the socket failed).
fn read_request(c: &mut Client) -> io::Result<Option<Ask>> {
    let mut buf = [0u8; 1024];
    loop {
        let room = MAX_REQUEST - c.request.len();
        if room == 0 {
            return Ok(Some(Ask::Status("431 Request Header Fields Too Large")));
        }
        let want = room.min(buf.len());
        match c.stream.read(&mut buf[..want]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                c.request.extend_from_slice(&buf[..n]);
                if let Some(end) = head_end(&c.request) {
                    return Ok(Some(ask(&c.request[..end])));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Where the head ends (after its empty line), if it has.
fn head_end(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    crlf.into_iter().chain(lf).min()
}

/// The request line judged (RFC 9112 §3): `GET /metrics` (a query string allowed) is the one
/// thing served.
fn ask(head: &[u8]) -> Ask {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else { return Ask::Status("400 Bad Request") };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ask::Status("400 Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Ask::Status("400 Bad Request");
    }
    if method != "GET" {
        return Ask::Status("405 Method Not Allowed");
    }
    match target.split('?').next() {
        Some("/metrics") => Ask::Metrics,
        _ => Ask::Status("404 Not Found"),
    }
}

/// An HTTP/1.1 answer that closes the connection.
fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    let allow = if status.starts_with("405") { "Allow: GET\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Writes what the socket takes of the answer; whether all of it is out.
fn write_answer(c: &mut Client) -> io::Result<bool> {
    let Some(answer) = &c.answer else { return Ok(false) };
    while c.sent < answer.len() {
        match c.stream.write(&answer[c.sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
