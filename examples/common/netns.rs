//! Network namespaces for the tests, labs and tools: created with `ip netns`, entered per
//! thread, and removed when the guard drops — also on panic — after the processes still in them
//! are killed (`ip netns del` alone would leave them running).

use std::io;
use std::process::Command;

/// Runs a command; an error carries its stderr.
///
/// # Errors
/// When the command cannot start or exits non-zero.
fn run(cmd: &str, args: &[&str]) -> io::Result<String> {
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
pub(crate) struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `<name>-<process id>` (deleting a stale one of that name first) with
    /// `lo` up. Namespace names are global: the process id keeps concurrent runs apart, such as
    /// the tests of two checkouts on one machine.
    ///
    /// # Errors
    /// When `ip netns add` fails (not root, no iproute2).
    pub(crate) fn create(name: &str) -> io::Result<Netns> {
        let name = format!("{name}-{}", std::process::id());
        let _ = run("ip", &["netns", "del", &name]);
        run("ip", &["netns", "add", &name])?;
        let ns = Netns { name };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Starts a long-running command inside the namespace (killed when the namespace goes).
    ///
    /// # Errors
    /// When the command cannot start.
    pub(crate) fn spawn(&self, cmd: &str, args: &[&str]) -> io::Result<std::process::Child> {
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
    pub(crate) fn exec(&self, cmd: &str, args: &[&str]) -> io::Result<String> {
        let mut a = vec!["netns", "exec", self.name.as_str(), cmd];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Moves the calling thread into the namespace (sockets it opens then live there).
    ///
    /// # Errors
    /// When `setns` fails.
    pub(crate) fn enter(&self) -> io::Result<()> {
        lvs::dataplane::netns::enter(&self.name)
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

/// Whether a test that needs root and the given programs can run here. When it cannot, under CI
/// (`CI=true`) the test fails, so that a runner without root cannot pass it by accident;
/// elsewhere it prints that it was skipped and the caller returns.
///
/// # Panics
/// Under CI, when the test cannot run.
#[cfg(test)]
pub(crate) fn can_run_as_root(programs: &[&str]) -> bool {
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;

    // /proc/self belongs to the process's effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let on_path = |p: &&str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(p).is_file()))
    };
    let mut missing: Vec<String> = programs.iter().filter(|p| !on_path(p)).map(|p| format!("`{p}`")).collect();
    if !root {
        missing.insert(0, "root".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("this test").to_string();
    let why = format!("{test} needs {}", missing.join(", "));
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}, and CI (CI=true) must run every test");
    // Straight to stderr: the test harness captures `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    false
}
