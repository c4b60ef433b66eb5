//! A whole `ipvsadm` invocation run against a director (ipvsadm.c's `main`,
//! `process_options`, `restore_table`): the command line as a script passes it, and what
//! ipvsadm 1.31 would print and return — its standard output, its standard error and its exit
//! status — so a control channel (`examples/lvsadm`) can answer scripts written for ipvsadm
//! unchanged.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::command::{parse_request, Failure, Request};
use super::laddr::list_laddrs;
use super::listing::{render, Format, Listing};
use super::rules::{line_words, save};
use super::strerror::ipvs_strerror;
use crate::director::{Command, Director};
use crate::time::Instant;

/// What an `ipvsadm` invocation printed and returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit status: 0 on success, 2 for errors ipvsadm catches itself (a bad command
    /// line), 255 for errors the kernel returns (a missing service, a duplicate server) and
    /// for popt's, 1 for a single-service listing of a missing service.
    pub status: u8,
}

/// How [`run_with`] departs from ipvsadm, for callers that want to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `-R` all or nothing: every line is read first and the whole file applied only when
    /// every command passes (see [`restore`](super::rules::restore)); a failure names its line
    /// (`line 3: Service not defined`). ipvsadm's own `-R` applies line by line.
    pub atomic_restore: bool,
}

/// ipvsadm's `version()` line.
const VERSION: &str = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n";

/// Where an invocation stands: what it printed so far and the status it would exit with.
#[derive(Default)]
struct Run {
    out: Output,
    /// Set when ipvsadm has exited (`exit`, `fail`): nothing after runs.
    exited: bool,
}

impl Run {
    fn fail(&mut self, f: &Failure) {
        self.out.stderr.push_str(&f.message);
        self.out.stderr.push('\n');
        self.out.status = f.status;
        self.exited |= f.exits;
    }

    /// One command line, as `process_options` runs it.
    fn line<S: AsRef<str>>(&mut self, d: &mut Director, now: Instant, args: &[S], stdin: &str, in_restore: bool) {
        self.out.status = 0;
        match parse_request(args, in_restore) {
            Err(f) => self.fail(&f),
            Ok(Request::Version | Request::Help) => {
                // The usage text of -h is not reproduced: the version line stands for it.
                self.out.stdout.push_str(VERSION);
                self.exited = true;
            }
            Ok(Request::List(l)) => self.list(d, now, &l),
            Ok(Request::Laddrs(key)) => match list_laddrs(d, key.as_ref()) {
                Ok(text) => self.out.stdout.push_str(&text),
                // DPVS's ipvs_strerror for dpvs_get_laddrs and ESRCH.
                Err(_) => self.fail(&Failure::returned("Service not defined")),
            },
            Ok(Request::Save) => self.out.stdout.push_str(&save(d)),
            Ok(Request::Restore) => {
                for line in stdin.split('\n') {
                    let words = line_words(line);
                    if !words.is_empty() {
                        self.line(d, now, &words, "", true);
                    }
                    if self.exited {
                        break;
                    }
                }
            }
            Ok(Request::Apply(c)) => {
                if let Err(e) = d.execute(&c) {
                    self.fail(&Failure::returned(ipvs_strerror(&c, &e)));
                }
            }
        }
    }

    fn list(&mut self, d: &Director, now: Instant, l: &Listing) {
        match render(d, now, l) {
            Ok(text) => self.out.stdout.push_str(&text),
            Err(_) => {
                // list_service: ipvs_get_service's words, then exit(1).
                self.out.stderr.push_str("No such service\n");
                self.out.status = 1;
                self.exited = true;
            }
        }
    }
}

/// Runs one `ipvsadm` invocation (`args` without the program name) against `d` at `now` as
/// ipvsadm 1.31 runs it; `stdin` is what `-R` reads. No arguments at all list every service.
///
/// `-R` goes line by line as ipvsadm's does: a line the kernel refuses prints its error and
/// the next line runs; a line ipvsadm itself refuses ends the restore with its status; the
/// exit status is the last line's. Names are never resolved: listings and `-S` print
/// addresses and ports as with `-n`.
pub fn run<S: AsRef<str>>(d: &mut Director, now: Instant, args: &[S], stdin: &str) -> Output {
    run_with(d, now, args, stdin, RunOptions::default())
}

/// [`run`] with options (an all-or-nothing `-R`).
pub fn run_with<S: AsRef<str>>(d: &mut Director, now: Instant, args: &[S], stdin: &str, opt: RunOptions) -> Output {
    let mut run = Run::default();
    if args.is_empty() {
        run.list(d, now, &Listing::Services(Format::default()));
        return run.out;
    }
    match parse_request(args, false) {
        Ok(Request::Restore) if opt.atomic_restore => atomic_restore(d, stdin),
        _ => {
            run.line(d, now, args, stdin, false);
            run.out
        }
    }
}

/// `-R` all or nothing.
fn atomic_restore(d: &mut Director, stdin: &str) -> Output {
    let mut cmds: Vec<(usize, Command)> = Vec::new();
    let fail = |line: usize, f: &Failure| Output {
        stderr: format!("line {line}: {}\n", f.message),
        status: f.status,
        ..Output::default()
    };
    for (n, line) in stdin.split('\n').enumerate() {
        let words = line_words(line);
        if words.is_empty() {
            continue;
        }
        match parse_request(&words, true) {
            Ok(Request::Apply(c)) => cmds.push((n + 1, c)),
            Ok(_) => {
                let f = Failure { status: 2, message: "not a configuration command".into(), exits: true };
                return fail(n + 1, &f);
            }
            Err(f) => return fail(n + 1, &f),
        }
    }
    let list: Vec<Command> = cmds.iter().map(|(_, c)| c.clone()).collect();
    match d.execute_all(&list) {
        Ok(()) => Output::default(),
        Err(e) => {
            let (line, msg) = match e.index.and_then(|i| cmds.get(i)) {
                Some((n, c)) => (*n, ipvs_strerror(c, &e.error)),
                None => (0, ipvs_strerror(&Command::Clear, &e.error)),
            };
            fail(line, &Failure::returned(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::factory;
    use crate::DirectorConfig;

    fn d() -> Director {
        Director::new(DirectorConfig::default(), factory)
    }

    fn err(stderr: &str, status: u8) -> Output {
        Output { stderr: stderr.into(), status, ..Output::default() }
    }

    #[test]
    fn a_script_adds_lists_and_fails_as_ipvsadm_does() {
        let mut d = d();
        let now = Instant::ZERO;
        assert_eq!(run(&mut d, now, &["-A", "-t", "10.0.0.1:80", "-s", "first"], ""), Output::default());
        let again = run(&mut d, now, &["-A", "-t", "10.0.0.1:80", "-s", "first"], "");
        assert_eq!(again, err("Service already exists\n", 255));
        assert_eq!(run(&mut d, now, &["-A", "-t"], ""), err("-t: missing argument\n", 255));
        let out = run(&mut d, now, &["-Sn"], "");
        assert_eq!(out.stdout, "-A -t 10.0.0.1:80 -s first\n");
        assert!(run(&mut d, now, &["-L", "-n"], "").stdout.contains("TCP  10.0.0.1:80 first"));
    }

    #[test]
    fn restore_goes_on_after_a_kernel_error_and_stops_at_a_usage_error() {
        let now = Instant::ZERO;
        // ipvsadm's restore_table: the status is the last line's.
        let mut a = d();
        let text = "-A -t 10.0.0.1:80 -s first\n-a -t 10.0.0.9:80 -r 10.0.0.2\n-a -t 10.0.0.1:80 -r 10.0.0.3\n";
        assert_eq!(run(&mut a, now, &["-R"], text), err("Service not defined\n", 0));
        assert_eq!(
            a.service(&crate::addr::ServiceKey::tcp([10, 0, 0, 1].into(), 80)).unwrap().dests.dests().count(),
            1
        );
        let mut b = d();
        let text = "-A -t 10.0.0.1:80 -s first\n-a -t 10.0.0.1:80 -r 10.0.0.3 -w x\n-A -t 10.0.0.2:80\n";
        assert_eq!(run(&mut b, now, &["-R"], text), err("illegal weight specified\n", 2));
        assert_eq!(b.services().count(), 1);
        let mut c = d();
        let atomic = RunOptions { atomic_restore: true };
        let text = "-A -t 10.0.0.1:80 -s first\n-a -t 10.0.0.9:80 -r 10.0.0.2\n";
        assert_eq!(run_with(&mut c, now, &["-R"], text, atomic), err("line 2: Service not defined\n", 255));
        assert_eq!(c.services().count(), 0);
    }
}
