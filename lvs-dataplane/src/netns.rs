//! Network namespaces for tests and labs: created with `ip netns`, entered per thread, and
//! removed when the guard drops — also on panic — after the processes still in them are killed
//! (`ip netns del` alone would leave them running).

use std::io;
use std::process::Command;

/// Runs a command; an error carries its stderr.
///
/// # Errors
/// When the command cannot start or exits non-zero.
pub fn run(cmd: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace that is deleted when dropped.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (deleting a stale one of that name first) with `lo` up.
    ///
    /// # Errors
    /// When `ip netns add` fails (not root, no iproute2).
    pub fn create(name: &str) -> io::Result<Netns> {
        let _ = run("ip", &["netns", "del", name]);
        run("ip", &["netns", "add", name])?;
        let ns = Netns { name: name.to_string() };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts a long-running command inside the namespace (killed when the namespace goes).
    ///
    /// # Errors
    /// When the command cannot start.
    pub fn spawn(&self, cmd: &str, args: &[&str]) -> io::Result<std::process::Child> {
        Command::new("ip")
            .args(["netns", "exec", self.name.as_str(), cmd])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    }

    /// Runs a command inside the namespace.
    ///
    /// # Errors
    /// When the command fails.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> io::Result<String> {
        let mut a = vec!["netns", "exec", self.name.as_str(), cmd];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Moves the calling thread into the existing namespace `name`.
    ///
    /// # Errors
    /// When `setns` fails.
    pub fn enter_existing(name: &str) -> io::Result<()> {
        crate::sys::linux::enter_netns(name)
    }

    /// Moves the calling thread into the namespace (sockets it opens then live there).
    ///
    /// # Errors
    /// When `setns` fails.
    pub fn enter(&self) -> io::Result<()> {
        crate::sys::linux::enter_netns(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(pids) = run("ip", &["netns", "pids", &self.name]) {
            for pid in pids.split_whitespace() {
                let _ = run("kill", &["-9", pid]);
            }
        }
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
