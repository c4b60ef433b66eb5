//! ipvsadm's words for what the kernel refuses (`ipvs_strerror` in libipvs.c): a message per
//! libipvs call and errno, then messages for any call, then the C library's `strerror`. The
//! library's own [`Error`] Display stays the richer text for API users; this is what a script
//! written for ipvsadm reads on standard error.

use alloc::string::{String, ToString};

use crate::director::Command;
use crate::error::Error;

/// The libipvs call a command goes through, as `ipvs_strerror` tells them apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    AddService,
    UpdateService,
    DelService,
    ZeroService,
    AddDest,
    UpdateDest,
    DelDest,
    StartDaemon,
    StopDaemon,
    AddLaddr,
    DelLaddr,
    Other,
}

const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EEXIST: i32 = 17;

/// The message ipvsadm prints when the kernel refuses `cmd` with `e`.
pub fn ipvs_strerror(cmd: &Command, e: &Error) -> String {
    let call = match cmd {
        Command::AddService(_) => Call::AddService,
        Command::EditService(_) => Call::UpdateService,
        Command::DelService(_) => Call::DelService,
        Command::Zero(_) => Call::ZeroService,
        Command::AddDest(..) => Call::AddDest,
        Command::EditDest(..) => Call::UpdateDest,
        Command::DelDest(..) => Call::DelDest,
        Command::StartDaemon(..) => Call::StartDaemon,
        Command::StopDaemon(_) => Call::StopDaemon,
        Command::AddLaddr(..) => Call::AddLaddr,
        Command::DelLaddr(..) => Call::DelLaddr,
        Command::Clear | Command::SetTimeouts(..) => Call::Other,
    };
    // What a kernel would not refuse at all has no ipvsadm words: say what this library lacks.
    if let Error::Unsupported(_) = e {
        return e.to_string();
    }
    let errno = e.errno();
    let by_call = match (call, errno) {
        (Call::AddService, EEXIST) => Some("Service already exists"),
        (Call::AddService | Call::UpdateService, ENOENT) => Some("Scheduler or persistence engine not found"),
        (Call::UpdateService | Call::DelService | Call::ZeroService, ESRCH) => Some("No such service"),
        (Call::AddDest | Call::UpdateDest | Call::DelDest, ESRCH) => Some("Service not defined"),
        (Call::AddDest, EEXIST) => Some("Destination already exists"),
        (Call::UpdateDest | Call::DelDest, ENOENT) => Some("No such destination"),
        (Call::StartDaemon, EEXIST) => Some("Daemon has already run"),
        (Call::StopDaemon, ESRCH) => Some("No daemon is running"),
        // DPVS's libipvs words for its local-address calls.
        (Call::AddLaddr | Call::DelLaddr, ESRCH) => Some("Service not defined"),
        (Call::AddLaddr, EEXIST) => Some("Local address already exists"),
        (Call::DelLaddr, ENOENT) => Some("No such Local address"),
        _ => None,
    };
    by_call
        .unwrap_or(match errno {
            1 => "Permission denied (you must be root)",
            22 => "Invalid operation.  Possibly wrong module version, address not unicast, ...",
            92 => "Protocol not available",
            12 => "Memory allocation problem",
            95 => "Operation not supported with IPv6",
            97 => "Operation not supported with specified address family",
            90 => "Module is wrong version",
            // glibc's strerror for the rest.
            ENOENT => "No such file or directory",
            ESRCH => "No such process",
            EEXIST => "File exists",
            34 => "Numerical result out of range",
            _ => "Unknown error",
        })
        .to_string()
}
