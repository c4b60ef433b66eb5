//! The lab's processes (directors and real servers): this executable started again inside a
//! namespace, talking in lines over its standard input and output. Each is killed and reaped
//! when its handle drops, also when the lab fails or unwinds.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::{err, PATIENCE};
use crate::netns::Netns;

/// A running lab process.
pub(super) struct LabProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// `event …` lines that arrived while the lab waited for something else.
    events: Vec<String>,
}

impl LabProc {
    /// Starts this executable in `ns` with `args` and waits until it prints `ready`.
    ///
    /// # Errors
    /// When it cannot start, or exits or stays silent for five seconds instead.
    pub(super) fn start(ns: &Netns, args: &[&str]) -> Result<LabProc, String> {
        let exe = std::env::current_exe().map_err(err)?;
        let mut child = ns
            .command(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", args.join(" ")))?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let (tx, lines) = mpsc::channel();
        if let Some(out) = stdout {
            // Ends when the process's output closes (it exited or was killed).
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut p = LabProc { child, stdin, lines, events: Vec::new() };
        p.wait_line(|l| l == "ready", PATIENCE).map_err(|e| format!("{} did not start: {e}", args.join(" ")))?;
        Ok(p)
    }

    /// Waits for a line that `want` accepts, keeping events that pass by.
    fn wait_line(&mut self, mut want: impl FnMut(&str) -> bool, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if want(&l) => return Ok(l),
                Ok(l) if l.starts_with("event ") => self.events.push(l),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Err("timed out".into()),
                Err(RecvTimeoutError::Disconnected) => return Err("the process ended".into()),
            }
        }
    }

    /// Waits for the next event line `event <name> [<value>]` (at most `timeout`) and returns
    /// its value. Events are taken in order: those that came before it are dropped, so a later
    /// call waits for a later event.
    ///
    /// # Errors
    /// When it does not come.
    pub(super) fn expect_event(&mut self, name: &str, timeout: Duration) -> Result<String, String> {
        let value = |l: &str| {
            let rest = l.strip_prefix("event ")?.strip_prefix(name)?;
            (rest.is_empty() || rest.starts_with(' ')).then(|| rest.trim().to_string())
        };
        if let Some(i) = self.events.iter().position(|e| value(e).is_some()) {
            let seen: Vec<String> = self.events.drain(..=i).collect();
            return Ok(seen.last().and_then(|e| value(e)).unwrap_or_default());
        }
        let line = self.wait_line(|l| value(l).is_some(), timeout).map_err(|e| format!("waiting for {name}: {e}"))?;
        self.events.clear();
        Ok(value(&line).unwrap_or_default())
    }

    /// Sends `list <what>` and returns the listing the process prints between `begin` and
    /// `end`.
    ///
    /// # Errors
    /// When the process has gone or does not answer within five seconds.
    pub(super) fn listing(&mut self, what: &str) -> Result<String, String> {
        let stdin = self.stdin.as_mut().ok_or("no input")?;
        writeln!(stdin, "list {what}").map_err(err)?;
        self.wait_line(|l| l == "begin", PATIENCE).map_err(|e| format!("list {what}: {e}"))?;
        let mut out = String::new();
        loop {
            let l = self.wait_line(|_| true, PATIENCE)?;
            if l == "end" {
                return Ok(out);
            }
            out.push_str(&l);
            out.push('\n');
        }
    }

    /// SIGKILL. The process is reaped when the handle drops: its exit (closing a packet
    /// socket waits for the network's readers) takes longer than the signal does to stop it.
    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Closes the process's input, which ends it, and reaps it (killing it after a second).
    pub(super) fn stop(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LabProc {
    fn drop(&mut self) {
        self.stop();
    }
}
