//! `ipvsadm` for a director run by `examples/director`: the same command line, sent over the
//! director's control socket; what comes back is printed and returned exactly as ipvsadm
//! prints and returns it, so a script written for ipvsadm runs unchanged.
//!
//! ```text
//! lvsadm [--socket PATH] IPVSADM-ARGS...     e.g. lvsadm -A -t 10.0.0.1:80 -s wlc
//! lvsadm [--socket PATH] --health | --vrrp   the health checks' and VRRP instances' states
//! ```
//!
//! The socket is `--socket PATH`, else `$LVSADM_SOCKET`, else `/run/lvs/director.sock`.
//! `-R` and `--restore` send standard input along.

#[path = "common/control.rs"]
#[allow(dead_code)] // the client half: requests out, responses in
mod control;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use control::{Request, Response};

/// Exit status when there is no director to ask (ipvsadm's for a kernel without IPVS).
const NO_DIRECTOR: u8 = 1;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = std::env::var("LVSADM_SOCKET").unwrap_or_else(|_| control::DEFAULT_SOCKET.into());
    if args.first().map(String::as_str) == Some("--socket") {
        if args.len() < 2 {
            eprintln!("lvsadm: --socket needs a path");
            return ExitCode::from(2);
        }
        socket = args.remove(1);
        args.remove(0);
    }
    let mut stdin = String::new();
    if matches!(args.first().map(String::as_str), Some("-R" | "--restore")) {
        if let Err(e) = std::io::stdin().read_to_string(&mut stdin) {
            eprintln!("lvsadm: standard input: {e}");
            return ExitCode::from(2);
        }
    }
    let answer = UnixStream::connect(&socket).and_then(|mut s| {
        Request { args, stdin }.write(&mut s)?;
        Response::read(&mut s)
    });
    match answer {
        Ok(r) => {
            let _ = std::io::stdout().write_all(r.stdout.as_bytes());
            let _ = std::io::stderr().write_all(r.stderr.as_bytes());
            ExitCode::from(r.status)
        }
        Err(e) => {
            eprintln!("lvsadm: cannot reach the director at {socket}: {e} (is examples/director running?)");
            ExitCode::from(NO_DIRECTOR)
        }
    }
}
