//! The health prober's system calls: an epoll set, a non-blocking TCP connect from a chosen
//! source address and port, a reset on close, ICMP echo sockets (unprivileged ping sockets, or
//! raw ones), and a check program's pidfd and process-group kill.

use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::linux::{cvt, setsockopt};

/// An epoll set whose events carry a `u64` token.
pub(crate) struct Epoll {
    fd: OwnedFd,
    buf: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A new set; `capacity` events are taken per wait.
    pub(crate) fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain system call; the result is checked before use.
        let raw = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Epoll { fd, buf: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)] })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live `epoll_event` for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    /// Watches `fd` for `events` (level-triggered), reporting `token`.
    pub(crate) fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Changes what `fd` is watched for.
    pub(crate) fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Hands each ready `(token, events)` to `f`, waiting at most `timeout_ms` (0: not at all).
    pub(crate) fn wait(&mut self, timeout_ms: i32, mut f: impl FnMut(u64, u32)) -> io::Result<usize> {
        let cap = libc::c_int::try_from(self.buf.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `buf` is a live array of at least `cap` events the kernel may fill.
        let n = match cvt(unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.buf.as_mut_ptr(), cap, timeout_ms) }) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        for ev in &self.buf[..n] {
            let (token, events) = (ev.u64, ev.events);
            f(token, events);
        }
        Ok(n)
    }
}

/// Readiness bits for [`Epoll`].
pub(crate) const EPOLLIN: u32 = libc::EPOLLIN as u32;
pub(crate) const EPOLLOUT: u32 = libc::EPOLLOUT as u32;

/// Calls `f` with `addr` as a `sockaddr` pointer and its length.
fn with_sockaddr<T>(addr: &SocketAddr, f: impl FnOnce(*const libc::sockaddr, libc::socklen_t) -> T) -> T {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: `sockaddr_in` is plain data; all-zero is a valid starting value.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            f(std::ptr::addr_of!(sin).cast(), std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            // SAFETY: `sockaddr_in6` is plain data; all-zero is a valid starting value.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            f(std::ptr::addr_of!(sin6).cast(), std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

/// A new non-blocking socket of `domain`, `kind` and `proto`.
fn socket(domain: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; the result is checked before use.
    let raw = cvt(unsafe { libc::socket(domain, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn domain(addr: &SocketAddr) -> libc::c_int {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

/// A non-blocking TCP connect to `target`, from `source` when given (a fixed source port is
/// bound with `SO_REUSEADDR`, so a check may reuse it while an old connection lingers). The
/// connection is usually still in progress on return: the socket becomes writable when it is
/// done, and `take_error` then says how it ended.
pub(crate) fn tcp_connect(target: &SocketAddr, source: Option<&SocketAddr>) -> io::Result<TcpStream> {
    let fd = socket(domain(target), libc::SOCK_STREAM, 0)?;
    if let Some(b) = source {
        if b.port() != 0 {
            setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, &(1 as libc::c_int))?;
        }
        bind(&fd, b)?;
    }
    // SAFETY: the address pointer and length come from `with_sockaddr` and live across the call.
    match cvt(with_sockaddr(target, |sa, len| unsafe { libc::connect(fd.as_raw_fd(), sa, len) })) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from(fd))
}

/// Binds socket `fd` to `addr`.
pub(crate) fn bind(fd: &impl AsRawFd, addr: &SocketAddr) -> io::Result<()> {
    // SAFETY: the address pointer and length come from `with_sockaddr` and live across the call.
    cvt(with_sockaddr(addr, |sa, len| unsafe { libc::bind(fd.as_raw_fd(), sa, len) })).map(|_| ())
}

/// Makes closing `sock` send a reset instead of a FIN, so a check leaves no TIME_WAIT behind
/// (HAProxy closes its checks the same way).
pub(crate) fn reset_on_close(sock: &TcpStream) -> io::Result<()> {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &linger)
}

/// Which kind of ICMP socket [`icmp_socket`] opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpKind {
    /// An unprivileged ping socket (`SOCK_DGRAM`, `net.ipv4.ping_group_range`): the kernel
    /// fills the identifier and checksum and hands back only replies, without an IP header.
    Ping,
    /// A raw socket (root or `CAP_NET_RAW`): every ICMP message, IPv4 ones with their header.
    Raw,
}

/// An ICMP (or ICMPv6) socket, a ping socket where the system allows one and a raw one
/// otherwise, wrapped as a [`UdpSocket`] for `connect`, `send` and `recv` (which are the same
/// system calls on it).
pub(crate) fn icmp_socket(v6: bool) -> io::Result<(UdpSocket, IcmpKind)> {
    let (domain, proto) = if v6 { (libc::AF_INET6, libc::IPPROTO_ICMPV6) } else { (libc::AF_INET, libc::IPPROTO_ICMP) };
    let fd = match socket(domain, libc::SOCK_DGRAM, proto) {
        Ok(fd) => return Ok((UdpSocket::from(fd), IcmpKind::Ping)),
        Err(ping) => socket(domain, libc::SOCK_RAW, proto).map_err(|raw| {
            io::Error::new(raw.kind(), format!("no ICMP socket: ping socket: {ping}; raw socket: {raw}"))
        })?,
    };
    Ok((UdpSocket::from(fd), IcmpKind::Raw))
}

/// A descriptor that becomes readable when process `pid` (a child of ours) exits (Linux 5.3).
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain system call with integer arguments; the result is checked before use.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let raw = cvt(libc::c_int::try_from(r).unwrap_or(-1))?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Kills process group `pgid` (a check program started as the leader of its own group, with
/// whatever it started) with `SIGKILL`.
pub(crate) fn kill_group(pgid: u32) -> io::Result<()> {
    // Never 0 or 1: `kill(0)` and `kill(-1)` would reach our own group or every process.
    let pgid = libc::pid_t::try_from(pgid).ok().filter(|p| *p > 1).ok_or(io::ErrorKind::InvalidInput)?;
    // SAFETY: plain system call with integer arguments.
    cvt(unsafe { libc::kill(-pgid, libc::SIGKILL) }).map(|_| ())
}

/// Sets a listening socket's accept backlog (`listen` again), so a test can fill it.
#[cfg(test)]
pub(crate) fn set_backlog(listener: &std::net::TcpListener, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call on a live descriptor.
    cvt(unsafe { libc::listen(listener.as_raw_fd(), backlog) }).map(|_| ())
}
