//! Adding and removing an interface address over rtnetlink (`RTM_NEWADDR`, `RTM_DELADDR`), as
//! `ip addr add|del ADDR/PREFIX dev IF` asks the kernel, waiting for its answer.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::linux::{cvt, setsockopt};

/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct ifaddrmsg)`.
const IFADDRMSG_LEN: usize = 8;
/// `sizeof(struct rtattr)`.
const RTA_HDRLEN: usize = 4;

/// One request: the message header, the `ifaddrmsg`, `IFA_LOCAL` and `IFA_ADDRESS`.
fn request(add: bool, ifindex: u32, addr: IpAddr, prefix: u8) -> Vec<u8> {
    let (family, octets): (u8, Vec<u8>) = match addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let attr_len = RTA_HDRLEN + octets.len();
    let len = NLMSG_HDRLEN + IFADDRMSG_LEN + 2 * attr_len;
    let (kind, mut flags) =
        if add { (libc::RTM_NEWADDR, libc::NLM_F_CREATE | libc::NLM_F_EXCL) } else { (libc::RTM_DELADDR, 0) };
    flags |= libc::NLM_F_REQUEST | libc::NLM_F_ACK;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(flags as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // to the kernel
                                              // An IPv6 address is usable at once (no duplicate detection), as a moving address must be.
    let ifa_flags = if add && family == libc::AF_INET6 as u8 { libc::IFA_F_NODAD as u8 } else { 0 };
    m.extend_from_slice(&[family, prefix, ifa_flags, libc::RT_SCOPE_UNIVERSE]);
    m.extend_from_slice(&ifindex.to_ne_bytes());
    for attr in [libc::IFA_LOCAL, libc::IFA_ADDRESS] {
        m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        m.extend_from_slice(&attr.to_ne_bytes());
        m.extend_from_slice(&octets);
    }
    m
}

/// Adds (`add`) or removes address `addr/prefix` on interface `ifindex` of the calling thread's
/// network namespace. Adding an address that is there and removing one that is not succeed.
pub(crate) fn change_addr(add: bool, ifindex: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    // SAFETY: plain system call; the result is checked before use.
    let raw = cvt(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let s = fd.as_raw_fd();
    let timeout = libc::timeval { tv_sec: 1, tv_usec: 0 };
    setsockopt(s, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
    let req = request(add, ifindex, addr, prefix);
    // SAFETY: `sockaddr_nl` is plain data; all-zero (then the family) addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: `req` and `kernel` are live buffers of the lengths passed; the kernel reads them.
    let sent = unsafe { libc::sendto(s, req.as_ptr().cast(), req.len(), 0, std::ptr::addr_of!(kernel).cast(), len) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1024];
    // SAFETY: `buf` is a live, writable buffer of the length passed.
    let n = unsafe { libc::recv(s, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let answer = &buf[..n as usize];
    let field = |at: usize| answer.get(at..at + 4).map(|b| [b[0], b[1], b[2], b[3]]);
    let kind = answer.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let (Some(kind), Some(error)) = (kind, field(NLMSG_HDRLEN).map(i32::from_ne_bytes)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    };
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    }
    match -error {
        0 => Ok(()),
        libc::EEXIST if add => Ok(()),
        libc::EADDRNOTAVAIL if !add => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_laid_out_as_iproute2_lays_it_out() {
        let m = request(true, 7, "192.0.2.100".parse().unwrap(), 32);
        assert_eq!(m.len(), 16 + 8 + 2 * 8);
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize, m.len());
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), libc::RTM_NEWADDR);
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 32, 0, 0]);
        assert_eq!(u32::from_ne_bytes([m[20], m[21], m[22], m[23]]), 7);
        assert_eq!(&m[28..32], &[192, 0, 2, 100]);
        assert_eq!(&m[36..40], &[192, 0, 2, 100]);
        let m = request(false, 7, "2001:db8::1".parse().unwrap(), 128);
        assert_eq!(m.len(), 16 + 8 + 2 * 20);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), libc::RTM_DELADDR);
        assert_eq!(&m[16..18], &[libc::AF_INET6 as u8, 128]);
    }
}
