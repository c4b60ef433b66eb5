//! TAP devices (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`), non-blocking reads and writes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `struct ifreq` as `TUNSETIFF` reads it: the name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    pad: [u8; 22],
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Opens (creating if needed) the TAP device `name`; returns its descriptor and actual name.
pub(crate) fn open_tap(name: &str, multi_queue: bool) -> io::Result<(OwnedFd, String)> {
    if name.len() >= 16 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let path = c"/dev/net/tun";
    // SAFETY: plain system call on a NUL-terminated path; the result is checked.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq { name: [0; 16], flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short, pad: [0; 22] };
    if multi_queue {
        req.flags |= libc::IFF_MULTI_QUEUE as libc::c_short;
    }
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `req` is a valid `ifreq` layout for TUNSETIFF and lives across the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, std::ptr::addr_of_mut!(req)) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = req.name.iter().position(|b| *b == 0).unwrap_or(16);
    Ok((fd, String::from_utf8_lossy(&req.name[..end]).into_owned()))
}

/// One non-blocking read; `Ok(None)` when nothing is waiting.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is a live, writable buffer of the length passed.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
    }
    Ok(Some(r as usize))
}

/// One non-blocking write; `Ok(false)` when the device queue is full.
pub(crate) fn write(fd: RawFd, frame: &[u8]) -> io::Result<bool> {
    // SAFETY: `frame` is a live buffer of the length passed; the kernel only reads it.
    let r = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock { Ok(false) } else { Err(e) };
    }
    Ok(true)
}
