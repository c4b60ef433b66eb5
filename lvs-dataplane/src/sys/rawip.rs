//! Raw IP sockets for one protocol number (VRRP's 112), a send-only packet socket for link-layer
//! announcements, and an interface's addresses (`getifaddrs`): what a VRRP router needs of the
//! kernel besides the addresses it adds and removes (`netlink.rs`).
//!
//! An IPv4 raw socket hands up the IP header with the payload; an IPv6 one the payload alone, so
//! the destination and hop limit come as ancillary data (`IPV6_PKTINFO`, `IPV6_HOPLIMIT`). Both
//! send with the source address and interface given per message (`IP_PKTINFO`,
//! `IPV6_PKTINFO`), the kernel writing the IP header.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::linux::{cvt, setsockopt};

/// Room for the ancillary data of one message: an `in6_pktinfo` and a hop limit, aligned.
type Control = [u64; 16];

/// A fresh non-blocking socket.
fn socket(family: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; the result is checked before use.
    let raw = cvt(unsafe { libc::socket(family, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Restricts `fd` to interface `ifname` (`SO_BINDTODEVICE`).
fn bind_to_device(fd: RawFd, ifname: &str) -> io::Result<()> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.as_bytes().contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut name = [0u8; libc::IFNAMSIZ];
    name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: `name` is a live NUL-terminated buffer of the length passed.
    cvt(unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, name.as_ptr().cast(), name.len() as _) })
        .map(|_| ())
}

/// What arrived with a datagram besides its bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Received {
    /// Its length as the kernel had it (more than the buffer when cut off).
    pub(crate) len: usize,
    /// Whether it was longer than the buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
    /// The sender's address.
    pub(crate) src: Option<IpAddr>,
    /// IPv6: the destination (`IPV6_PKTINFO`).
    pub(crate) dst: Option<Ipv6Addr>,
    /// IPv6: the hop limit it arrived with (`IPV6_HOPLIMIT`).
    pub(crate) hops: Option<u8>,
}

/// How a raw socket is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawOpts<'a> {
    /// The interface it sends by and hears on.
    pub(crate) ifname: &'a str,
    /// Its index.
    pub(crate) ifindex: u32,
    /// The IP protocol number.
    pub(crate) proto: u8,
    /// TTL / hop limit of everything sent, unicast and multicast.
    pub(crate) hops: u8,
    /// TOS / traffic class of everything sent.
    pub(crate) tos: u8,
}

/// A raw IP socket of one family and protocol, bound to one interface.
pub(crate) struct RawIp {
    fd: OwnedFd,
    v6: bool,
    ifindex: u32,
}

impl RawIp {
    /// Opens the socket: bound to the interface, outgoing multicasts by it and not looped back,
    /// TTL / hop limit and TOS / traffic class set; an IPv6 one reports destination and hop
    /// limit of what it receives.
    pub(crate) fn open(v6: bool, o: &RawOpts<'_>) -> io::Result<RawIp> {
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        let fd = socket(family, libc::SOCK_RAW, libc::c_int::from(o.proto))?;
        let s = fd.as_raw_fd();
        bind_to_device(s, o.ifname)?;
        let (hops, tos, off, on) =
            (libc::c_int::from(o.hops), libc::c_int::from(o.tos), 0 as libc::c_int, 1 as libc::c_int);
        let index = libc::c_int::try_from(o.ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if v6 {
            setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &hops)?;
            setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops)?;
            setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
            setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)?;
            setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &tos)?;
            setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &on)?;
            setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)?;
        } else {
            let mreq = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr { s_addr: 0 },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: index,
            };
            setsockopt(s, libc::IPPROTO_IP, libc::IP_TTL, &hops)?;
            setsockopt(s, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &hops)?;
            setsockopt(s, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &off)?;
            setsockopt(s, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq)?;
            setsockopt(s, libc::IPPROTO_IP, libc::IP_TOS, &tos)?;
        }
        Ok(RawIp { fd, v6, ifindex: o.ifindex })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Joins multicast group `group` on the interface.
    pub(crate) fn join(&self, group: IpAddr) -> io::Result<()> {
        let s = self.fd.as_raw_fd();
        match group {
            IpAddr::V4(g) => {
                let index =
                    libc::c_int::try_from(self.ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                let mreq = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: u32::from(g).to_be() },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: index,
                };
                setsockopt(s, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)
            }
            IpAddr::V6(g) => {
                let mreq = libc::ipv6_mreq {
                    ipv6mr_multiaddr: libc::in6_addr { s6_addr: g.octets() },
                    ipv6mr_interface: self.ifindex,
                };
                setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)
            }
        }
    }

    /// Sends `payload` from `src` to `dst` by the interface, without waiting.
    pub(crate) fn send(&self, src: IpAddr, dst: IpAddr, payload: &[u8]) -> io::Result<()> {
        let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
        let mut control: Control = [0; 16];
        // SAFETY: `sockaddr_in6` and `msghdr` are plain data; all-zero is a valid starting value.
        let mut name: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = std::ptr::addr_of_mut!(iov);
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) if !self.v6 => {
                // SAFETY: `sockaddr_in` is smaller than `sockaddr_in6` and has no stricter
                // alignment; we write it at the start of `name`.
                let sin = unsafe { &mut *std::ptr::addr_of_mut!(name).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_addr.s_addr = u32::from(dst).to_be();
                msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                let info = libc::in_pktinfo {
                    ipi_ifindex: self.ifindex as libc::c_int,
                    ipi_spec_dst: libc::in_addr { s_addr: u32::from(src).to_be() },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                put_cmsg(&mut msg, &mut control, libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) if self.v6 => {
                name.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                name.sin6_addr.s6_addr = dst.octets();
                // Link-local and multicast destinations are scoped to the interface.
                name.sin6_scope_id = self.ifindex;
                msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr { s6_addr: src.octets() },
                    ipi6_ifindex: self.ifindex,
                };
                put_cmsg(&mut msg, &mut control, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info);
            }
            _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
        msg.msg_name = std::ptr::addr_of_mut!(name).cast();
        // SAFETY: `msg` points at the live `name`, `iov` (over `payload`) and `control`, all of
        // the lengths given; the kernel only reads them.
        let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receives one datagram into `buf` without waiting: for IPv4 the IP header and payload,
    /// for IPv6 the payload, with its destination and hop limit.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control: Control = [0; 16];
        // SAFETY: `sockaddr_storage` and `msghdr` are plain data; all-zero is valid.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = std::ptr::addr_of_mut!(name).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = std::ptr::addr_of_mut!(iov);
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of::<Control>() as _;
        // SAFETY: `msg` points at live, writable buffers of the lengths given.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut r = Received {
            len: n as usize,
            truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
            src: sockaddr_ip(&name),
            ..Received::default()
        };
        // SAFETY: `msg` was filled in by `recvmsg`; the macros walk its control buffer within
        // `msg_controllen`, and each payload read is of the type its level and type promise.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let info = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>());
                        r.dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                        let hops = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                        r.hops = u8::try_from(hops).ok();
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(r)
    }
}

/// Puts one control message holding `val` into `msg`'s (empty) control buffer `control`.
fn put_cmsg<T: Copy>(msg: &mut libc::msghdr, control: &mut Control, level: libc::c_int, kind: libc::c_int, val: &T) {
    let len = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: CMSG_SPACE is pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE(len) } as usize;
    debug_assert!(space <= std::mem::size_of::<Control>());
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer is live, aligned and at least `space` bytes, so the first
    // header and its data (of `len` bytes) lie within it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(msg);
        (*c).cmsg_level = level;
        (*c).cmsg_type = kind;
        (*c).cmsg_len = libc::CMSG_LEN(len) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<T>(), *val);
    }
}

/// The address in a `sockaddr_storage` the kernel filled in.
fn sockaddr_ip(s: &libc::sockaddr_storage) -> Option<IpAddr> {
    let p = std::ptr::addr_of!(*s);
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`; storage is larger and
            // aligned for every socket address.
            let sin = unsafe { &*p.cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a `sockaddr_in6`.
            let sin6 = unsafe { &*p.cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// A packet socket that only sends whole Ethernet frames on one interface (protocol 0: it
/// receives nothing).
pub(crate) struct PacketTx {
    fd: OwnedFd,
}

impl PacketTx {
    pub(crate) fn open(ifindex: u32) -> io::Result<PacketTx> {
        let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `sll` is a valid `sockaddr_ll` of the length passed.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), std::ptr::addr_of!(sll).cast(), len) })?;
        Ok(PacketTx { fd })
    }

    /// Sends one frame without waiting.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is a live buffer of the length passed; the kernel only reads it.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// An interface's link-layer address and IP addresses, in the kernel's order (an IPv4 primary
/// address before the addresses added after it).
#[derive(Clone, Debug, Default)]
pub(crate) struct Interface {
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) addrs: Vec<IpAddr>,
}

/// What `getifaddrs` says of interface `ifname`.
pub(crate) fn interface(ifname: &str) -> io::Result<Interface> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a live out-pointer; the list is freed below.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut out = Interface::default();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list `getifaddrs` returned, alive until freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: `ifa_name` is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if ifa.ifa_addr.is_null() || name.to_bytes() != ifname.as_bytes() {
            continue;
        }
        // SAFETY: `ifa_addr` points at a socket address at least as long as its family says.
        let family = libc::c_int::from(unsafe { (*ifa.ifa_addr).sa_family });
        match family {
            libc::AF_INET | libc::AF_INET6 => {
                // SAFETY: the family says which `sockaddr_in*` it is; reading it into storage
                // copies no more than that type's size.
                let ip = unsafe {
                    let mut s: libc::sockaddr_storage = std::mem::zeroed();
                    let len = if family == libc::AF_INET {
                        std::mem::size_of::<libc::sockaddr_in>()
                    } else {
                        std::mem::size_of::<libc::sockaddr_in6>()
                    };
                    std::ptr::copy_nonoverlapping(ifa.ifa_addr.cast::<u8>(), std::ptr::addr_of_mut!(s).cast(), len);
                    sockaddr_ip(&s)
                };
                out.addrs.extend(ip);
            }
            libc::AF_PACKET => {
                // SAFETY: an AF_PACKET entry's address is a `sockaddr_ll`.
                let ll = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_ll>() };
                if ll.sll_halen == 6 {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&ll.sll_addr[..6]);
                    out.mac = Some(mac);
                }
            }
            _ => {}
        }
    }
    // SAFETY: `head` came from `getifaddrs` and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_its_addresses() {
        let lo = interface("lo").unwrap();
        assert!(lo.addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{lo:?}");
        assert!(interface("lvs-no-such-if").unwrap().addrs.is_empty());
    }
}
