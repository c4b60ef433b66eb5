//! Network namespaces for the tests, labs and tools: created with `ip netns`, entered per
//! thread, and removed when the guard drops — also on panic — after the processes still in them
//! are killed (`ip netns del` alone would leave them running).

use std::io;
use std::process::Command;

use lvs::core::neigh::MacAddr;

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

    /// Makes this namespace a lab real server on `eth0`: its own address `own`/24, reverse-path
    /// filtering off, and either `gateway` as its default route (NAT: the director) or, without
    /// one, silence about addresses it does not announce (DR, TUN: `arp_ignore=1`,
    /// `arp_announce=2`, so the VIP the caller puts on it stays the director's on the LAN).
    ///
    /// # Errors
    /// When `ip` or `sysctl` fails.
    pub(crate) fn real_server(&self, own: std::net::Ipv4Addr, gateway: Option<std::net::Ipv4Addr>) -> io::Result<()> {
        self.exec("ip", &["addr", "add", &format!("{own}/24"), "dev", "eth0"])?;
        for k in ["all", "default", "eth0", "lo"] {
            self.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")])?;
        }
        match gateway {
            Some(gw) => {
                self.exec("ip", &["route", "add", "default", "via", &gw.to_string()])?;
            }
            None => {
                for (k, v) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                    for dev in ["all", "eth0"] {
                        self.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{dev}.{k}={v}")])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The namespace's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `cmd` inside the namespace (`ip netns exec`, which execs it: the
    /// child's process id is the command's), for a caller that sets its arguments and pipes.
    pub(crate) fn command(&self, cmd: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.name.as_str()]).arg(cmd);
        c
    }

    /// Starts a long-running command inside the namespace (killed when the namespace goes).
    ///
    /// # Errors
    /// When the command cannot start.
    pub(crate) fn spawn(&self, cmd: &str, args: &[&str]) -> io::Result<std::process::Child> {
        self.command(cmd).args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn()
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

    /// Creates bridge `name` in this namespace, up.
    ///
    /// # Errors
    /// When `ip link` fails.
    pub(crate) fn bridge(&self, name: &str) -> io::Result<()> {
        self.exec("ip", &["link", "add", name, "type", "bridge"])?;
        self.exec("ip", &["link", "set", name, "up"])?;
        Ok(())
    }

    /// Plugs namespace `ns` into `bridge` of this one: a veth pair whose end `port` here joins
    /// the bridge and whose end `ifname` in `ns` gets `mac`, each end with `queues` receive and
    /// transmit queues (a sender's transmit queue is the receive queue its frame arrives on at
    /// the other end); both up, IPv6 off in `ns` (no neighbour-discovery noise).
    ///
    /// # Errors
    /// When `ip link` or `sysctl` fails.
    pub(crate) fn plug(
        &self,
        bridge: &str,
        port: &str,
        ns: &Netns,
        ifname: &str,
        mac: MacAddr,
        queues: u8,
    ) -> io::Result<()> {
        let q = queues.to_string();
        let (tx, rx) = (["numtxqueues", q.as_str()], ["numrxqueues", q.as_str()]);
        let peer = ["peer", "name", ifname, "netns", ns.name()];
        self.exec("ip", &[&["link", "add", port][..], &tx, &rx, &["type", "veth"], &peer, &tx, &rx].concat())?;
        self.exec("ip", &["link", "set", port, "master", bridge, "up"])?;
        ns.exec("ip", &["link", "set", ifname, "address", &mac.to_string(), "up"])?;
        for k in ["all", "default", ifname] {
            ns.exec("sysctl", &["-qw", &format!("net.ipv6.conf.{k}.disable_ipv6=1")])?;
        }
        Ok(())
    }

    /// Moves the calling thread into the namespace (sockets it opens then live there).
    ///
    /// # Errors
    /// When `setns` fails.
    pub(crate) fn enter(&self) -> io::Result<()> {
        lvs::dataplane::netns::enter(&self.name)
    }

    /// Kills every process in the namespace (`ip netns pids`), as a crash or an operator's
    /// `kill -9` would.
    pub(crate) fn kill_all(&self) {
        if let Ok(pids) = run("ip", &["netns", "pids", &self.name]) {
            for pid in pids.split_whitespace() {
                let _ = run("kill", &["-9", pid]);
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
