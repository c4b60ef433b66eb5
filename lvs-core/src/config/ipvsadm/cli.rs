//! A whole `ipvsadm` invocation run against a director: the command line as a script passes
//! it, and what ipvsadm would print and return — its standard output, its standard error and
//! its exit status — so a control channel (`examples/lvsadm`) can answer scripts written for
//! ipvsadm unchanged.

use alloc::format;
use alloc::string::{String, ToString};

use super::command::parse_command;
use super::laddr::{laddr_service, list_laddrs};
use super::listing::{list, ListOptions};
use super::rules::{restore, save};
use crate::director::Director;
use crate::time::Instant;

/// What an `ipvsadm` invocation printed and returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit status: 0 on success, 2 for errors ipvsadm catches itself (a bad command
    /// line), 255 for errors the kernel returns (a missing service, a duplicate server).
    pub status: u8,
}

impl Output {
    fn ok(stdout: String) -> Output {
        Output { stdout, ..Output::default() }
    }

    fn fail(status: u8, message: &str) -> Output {
        Output { stderr: format!("{message}\n"), status, ..Output::default() }
    }
}

/// The exit status of an error ipvsadm catches before asking the kernel.
const USAGE: u8 = 2;
/// The exit status of an error the kernel returns.
const KERNEL: u8 = 255;

/// The listing `-L`/`-l` (or no command at all) asks for.
fn listing<S: AsRef<str>>(args: &[S]) -> Result<ListOptions, String> {
    let mut opt = ListOptions::Plain;
    for a in args {
        opt = match a.as_ref() {
            "-L" | "-l" | "--list" | "-n" | "--numeric" => opt,
            "--stats" => ListOptions::Stats,
            "--rate" => ListOptions::Rate,
            "--thresholds" => ListOptions::Thresholds,
            "--persistent-conn" => ListOptions::PersistentConn,
            "--nosort" => ListOptions::NoSort,
            "-c" | "--connection" => ListOptions::Connections,
            "--timeout" => ListOptions::Timeout,
            "--daemon" => ListOptions::Daemon,
            "-Ln" | "-ln" | "-nL" | "-nl" => opt,
            "-Lcn" | "-lcn" | "-Lnc" | "-lnc" | "-cLn" | "-cln" => ListOptions::Connections,
            other => return Err(format!("unknown option '{other}'")),
        };
    }
    Ok(opt)
}

/// Runs one `ipvsadm` invocation (`args` without the program name) against `d` at `now`;
/// `stdin` is what `-R` reads.
pub fn run<S: AsRef<str>>(d: &mut Director, now: Instant, args: &[S], stdin: &str) -> Output {
    let first = args.first().map(AsRef::as_ref);
    match first {
        None => Output::ok(list(d, now, ListOptions::Plain)),
        Some("-S" | "--save" | "-Sn" | "-nS") => Output::ok(save(d)),
        Some("-R" | "--restore") => match restore(d, stdin) {
            Ok(()) => Output::default(),
            Err(e) => Output::fail(KERNEL, &e.to_string()),
        },
        Some("-G" | "--get-laddr") => match laddr_service(args.get(1..).unwrap_or_default()) {
            Err(e) => Output::fail(USAGE, &e),
            Ok(k) => match list_laddrs(d, k.as_ref()) {
                Ok(text) => Output::ok(text),
                Err(e) => Output::fail(KERNEL, &e.to_string()),
            },
        },
        Some(a) if a.starts_with("-L") || a.starts_with("-l") || a == "--list" => match listing(args) {
            Ok(opt) => Output::ok(list(d, now, opt)),
            Err(e) => Output::fail(USAGE, &e),
        },
        Some(_) => match parse_command(args) {
            Err(e) => Output::fail(USAGE, &e),
            Ok(c) => match d.execute(&c) {
                Ok(()) => Output::default(),
                Err(e) => Output::fail(KERNEL, &e.to_string()),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::factory;
    use crate::DirectorConfig;

    #[test]
    fn a_script_adds_lists_and_fails_as_ipvsadm_does() {
        let mut d = Director::new(DirectorConfig::default(), factory);
        let now = Instant::ZERO;
        assert_eq!(run(&mut d, now, &["-A", "-t", "10.0.0.1:80", "-s", "first"], ""), Output::default());
        let again = run(&mut d, now, &["-A", "-t", "10.0.0.1:80", "-s", "first"], "");
        assert_eq!(again.status, KERNEL);
        assert_eq!(run(&mut d, now, &["-A", "-t"], "").status, USAGE);
        let out = run(&mut d, now, &["-Sn"], "");
        assert_eq!(out.stdout, "-A -t 10.0.0.1:80 -s first\n");
        assert!(run(&mut d, now, &["-L", "-n"], "").stdout.contains("TCP  10.0.0.1:80 first"));
    }
}
