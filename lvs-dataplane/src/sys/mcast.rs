//! UDP multicast sockets set up as `ip_vs_sync.c` sets up its own (`make_send_sock`,
//! `make_receive_sock`), the interface lookups they need (`SIOCGIFMTU`, `SIOCGIFADDR`), and a
//! receive that reports a datagram's real length (`MSG_TRUNC`).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::linux::{bind, cvt, setsockopt};

/// `struct ifreq` with the `int` member of its union (`ifr_mtu`).
#[repr(C)]
struct IfReqInt {
    name: [u8; libc::IFNAMSIZ],
    value: libc::c_int,
    pad: [u8; 20],
}

/// `struct ifreq` with the `sockaddr` member of its union (`ifr_addr`).
#[repr(C)]
struct IfReqAddr {
    name: [u8; libc::IFNAMSIZ],
    addr: libc::sockaddr_in,
    pad: [u8; 8],
}

/// An interface name as `ifr_name` holds it (NUL-terminated).
fn ifr_name(ifname: &str) -> io::Result<[u8; libc::IFNAMSIZ]> {
    let mut name = [0u8; libc::IFNAMSIZ];
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.as_bytes().contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    Ok(name)
}

/// A fresh non-blocking UDP socket of the group's family.
fn udp_socket(v6: bool) -> io::Result<OwnedFd> {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain system call; the result is checked before use.
    let raw = cvt(unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The MTU of interface `ifname` (`SIOCGIFMTU`).
pub(crate) fn mtu(ifname: &str) -> io::Result<u32> {
    let fd = udp_socket(false)?;
    let mut req = IfReqInt { name: ifr_name(ifname)?, value: 0, pad: [0; 20] };
    // SAFETY: `req` is an `ifreq` layout SIOCGIFMTU fills in, live across the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU as _, std::ptr::addr_of_mut!(req)) })?;
    Ok(u32::try_from(req.value).unwrap_or(0))
}

/// The primary IPv4 address of interface `ifname` (`SIOCGIFADDR`), `None` when it has none.
fn ipv4_addr(fd: RawFd, ifname: &str) -> io::Result<Option<Ipv4Addr>> {
    // SAFETY: `sockaddr_in` is plain data; all-zero is a valid value.
    let addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut req = IfReqAddr { name: ifr_name(ifname)?, addr, pad: [0; 8] };
    // SAFETY: `req` is an `ifreq` layout SIOCGIFADDR fills in, live across the call.
    match cvt(unsafe { libc::ioctl(fd, libc::SIOCGIFADDR as _, std::ptr::addr_of_mut!(req)) }) {
        Ok(_) => Ok(Some(Ipv4Addr::from(u32::from_be(req.addr.sin_addr.s_addr)))),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How a send socket is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendOpts<'a> {
    /// The interface multicasts leave by.
    pub(crate) ifname: &'a str,
    /// Its index.
    pub(crate) ifindex: u32,
    /// TTL (IPv4) or hop limit (IPv6) of outgoing multicasts.
    pub(crate) ttl: u8,
    /// `SO_SNDBUF` in bytes; 0 leaves the system default.
    pub(crate) sndbuf: u32,
}

/// A socket sending to `group` (`make_send_sock`): outgoing multicasts by the interface, not
/// looped back, with the given TTL, fragmented when too big (`IP_PMTUDISC_DONT`), an IPv4
/// socket bound to the interface's address (port 0), connected to the group.
pub(crate) fn send_socket(group: SocketAddr, o: &SendOpts<'_>) -> io::Result<UdpSocket> {
    let owned = udp_socket(group.is_ipv6())?;
    let fd = owned.as_raw_fd();
    let (ttl, off) = (libc::c_int::from(o.ttl), 0 as libc::c_int);
    let index = libc::c_int::try_from(o.ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if group.is_ipv6() {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)?;
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &ttl)?;
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, &libc::IPV6_PMTUDISC_DONT)?;
    } else {
        let mreq = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr { s_addr: 0 },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: index,
        };
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq)?;
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &off)?;
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &ttl)?;
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, &libc::IP_PMTUDISC_DONT)?;
    }
    if o.sndbuf > 0 {
        let size = libc::c_int::try_from(o.sndbuf).unwrap_or(libc::c_int::MAX);
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &size)?;
    }
    if !group.is_ipv6() {
        // Without an address on the interface the kernel binds to 0.0.0.0 (and logs a hint).
        let local = ipv4_addr(fd, o.ifname)?.unwrap_or(Ipv4Addr::UNSPECIFIED);
        bind(fd, &SocketAddr::from((local, 0)))?;
    }
    let sock = UdpSocket::from(owned);
    sock.connect(group)?;
    Ok(sock)
}

/// How a receive socket is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecvOpts<'a> {
    /// The interface it listens on.
    pub(crate) ifname: &'a str,
    /// Its index.
    pub(crate) ifindex: u32,
    /// `SO_RCVBUF` in bytes; 0 leaves the system default.
    pub(crate) rcvbuf: u32,
}

/// A socket receiving what is sent to `group` on the interface (`make_receive_sock`): address
/// reuse, bound to the interface and to the group's address and port, member of the group on
/// that interface.
pub(crate) fn recv_socket(group: SocketAddr, o: &RecvOpts<'_>) -> io::Result<UdpSocket> {
    let owned = udp_socket(group.is_ipv6())?;
    let fd = owned.as_raw_fd();
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &(1 as libc::c_int))?;
    if o.rcvbuf > 0 {
        let size = libc::c_int::try_from(o.rcvbuf).unwrap_or(libc::c_int::MAX);
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &size)?;
    }
    let name = ifr_name(o.ifname)?;
    // SAFETY: `name` is a live NUL-terminated buffer of the length passed.
    cvt(unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, name.as_ptr().cast(), name.len() as _)
    })?;
    bind(fd, &group)?;
    let index = libc::c_int::try_from(o.ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match group {
        SocketAddr::V4(g) => {
            let mreq = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr { s_addr: u32::from(*g.ip()).to_be() },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: index,
            };
            setsockopt(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)?;
        }
        SocketAddr::V6(g) => {
            let mreq = libc::ipv6_mreq {
                ipv6mr_multiaddr: libc::in6_addr { s6_addr: g.ip().octets() },
                ipv6mr_interface: o.ifindex,
            };
            setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)?;
        }
    }
    Ok(UdpSocket::from(owned))
}

/// Receives one datagram into `buf` without waiting; returns its real length, which is more
/// than `buf.len()` when the rest was cut off (`MSG_TRUNC`).
pub(crate) fn recv_trunc(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
    // SAFETY: `buf` is a live, writable buffer of the length passed.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An integer socket option.
    fn getsockopt_int(sock: &UdpSocket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut v: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are live and of the sizes the kernel expects.
        let r = unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, std::ptr::addr_of_mut!(v).cast(), &mut len) };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        v
    }

    #[test]
    fn the_loopback_interface_is_found() {
        assert!(mtu("lo").unwrap() >= 1500);
        assert!(mtu("lvs-no-such-if").is_err());
        assert!(mtu("a-name-far-too-long-for-ifreq").is_err());
        let fd = udp_socket(false).unwrap();
        assert_eq!(ipv4_addr(fd.as_raw_fd(), "lo").unwrap(), Some(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn a_send_socket_is_set_up_as_the_kernel_sets_up_its_own() {
        let ifindex = super::super::linux::ifindex("lo").unwrap();
        let o = SendOpts { ifname: "lo", ifindex, ttl: 1, sndbuf: 65536 };
        let s = send_socket("224.0.0.81:8848".parse().unwrap(), &o).unwrap();
        assert_eq!(getsockopt_int(&s, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL), 1);
        assert_eq!(getsockopt_int(&s, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP), 0);
        assert_eq!(getsockopt_int(&s, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER), libc::IP_PMTUDISC_DONT);
        // The kernel doubles the size asked for, for its bookkeeping.
        assert!(getsockopt_int(&s, libc::SOL_SOCKET, libc::SO_SNDBUF) >= 65536);
        assert_eq!(s.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST, "bound to the interface's address");
        assert_eq!(s.peer_addr().unwrap(), "224.0.0.81:8848".parse().unwrap());
    }
}
