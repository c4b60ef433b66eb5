//! The ECMP lab's topology, shared by `tests/ecmp_lab.rs` and `examples/ecmp_bench.rs`
//! (root): a client; a router with the kernel's multipath route to the VIP over the directors
//! (L4 hashing, `fib_multipath_hash_policy=1`); director namespaces running `examples/director`
//! (DR) on the router's LAN; four real servers on the same LAN running `python3 -m http.server`
//! (HTTP/1.1 keep-alive) with the VIP on `lo`, their replies going straight to the router.
//! The route is either set by the caller ([`Lab::route`]) or learnt by BGP: BIRD 2 in the
//! router ([`Lab::bgp_router`]) with an eBGP session and BFD to a BIRD in each director's
//! namespace, which announces what the director's `--announce-cmd` tells it ([`Bgp::Bird`]).
//! Namespaces, processes and files go when the [`Lab`], each [`Bird`] and each [`Director`]
//! drop.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lvs::core::neigh::MacAddr;

use super::built::binary;
use super::netns::Netns;

/// The virtual address the directors serve.
pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const ROUTER_OUT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const ROUTER_LAN: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
/// Real servers on the LAN.
pub(crate) const SERVERS: usize = 4;
/// How long a leaving director keeps forwarding after its withdrawal (`--drain`).
const DRAIN: &str = "2";

fn director_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 2, 0, 11 + i as u8)
}

fn director_mac(i: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, 11 + i as u8])
}

/// Real server `i`'s address.
pub(crate) fn server_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 2, 0, 21 + i as u8)
}

fn server_mac(i: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 2, 21 + i as u8])
}

/// The namespaces, the real servers' HTTP servers and the files; all removed when dropped.
pub(crate) struct Lab {
    /// The client's namespace.
    pub(crate) client: Netns,
    router: Netns,
    directors: Vec<Netns>,
    _servers: Vec<Netns>,
    http: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.http {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    /// Builds the lab with `directors` director namespaces; `tag` keeps labs apart.
    pub(crate) fn build(tag: &str, directors: usize) -> Lab {
        let dir = std::env::temp_dir().join(format!("lvs-ecmp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let client = Netns::create(&format!("ecmp-{tag}-cli")).unwrap();
        let router = Netns::create(&format!("ecmp-{tag}-rtr")).unwrap();
        // The client's link to the router.
        router
            .exec("ip", &["link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client.name()])
            .unwrap();
        router.exec("ip", &["addr", "add", &format!("{ROUTER_OUT}/24"), "dev", "eth0"]).unwrap();
        router.exec("ip", &["link", "set", "eth0", "up"]).unwrap();
        client.exec("ip", &["addr", "add", &format!("{CLIENT}/24"), "dev", "eth0"]).unwrap();
        client.exec("ip", &["link", "set", "eth0", "up"]).unwrap();
        client.exec("ip", &["route", "add", "default", "via", &ROUTER_OUT.to_string()]).unwrap();
        // The router's LAN: a bridge with its own address, the directors and the servers on it.
        router.bridge("br0").unwrap();
        router.exec("ip", &["link", "set", "br0", "address", &ROUTER_MAC.to_string()]).unwrap();
        router.exec("ip", &["addr", "add", &format!("{ROUTER_LAN}/24"), "dev", "br0"]).unwrap();
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.fib_multipath_hash_policy", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            router.exec("sysctl", &["-qw", &format!("{k}={v}")]).unwrap();
        }
        let count = directors;
        let mut directors = Vec::new();
        for i in 0..count {
            let ns = Netns::create(&format!("ecmp-{tag}-d{}", i + 1)).unwrap();
            router.plug("br0", &format!("d{}", i + 1), &ns, "eth0", director_mac(i), 1).unwrap();
            ns.exec("ip", &["addr", "add", &format!("{}/24", director_ip(i)), "dev", "eth0"]).unwrap();
            // The sync daemons' multicast leaves by the LAN.
            ns.exec("ip", &["route", "add", "default", "via", &ROUTER_LAN.to_string()]).unwrap();
            directors.push(ns);
        }
        let (mut servers, mut http) = (Vec::new(), Vec::new());
        for i in 0..SERVERS {
            let ns = Netns::create(&format!("ecmp-{tag}-rs{}", i + 1)).unwrap();
            router.plug("br0", &format!("rs{}", i + 1), &ns, "eth0", server_mac(i), 1).unwrap();
            ns.real_server(server_ip(i), None).unwrap();
            ns.exec("ip", &["addr", "add", &format!("{VIP}/32"), "dev", "lo"]).unwrap();
            ns.exec("ip", &["route", "add", "default", "via", &ROUTER_LAN.to_string()]).unwrap();
            let root = dir.join(format!("rs{}", i + 1));
            std::fs::create_dir_all(&root).unwrap();
            std::fs::write(root.join("index.html"), format!("rs{}", i + 1)).unwrap();
            let root = root.to_str().unwrap();
            let args = ["-m", "http.server", "80", "--bind", "0.0.0.0", "--directory", root, "--protocol", "HTTP/1.1"];
            http.push(ns.spawn("python3", &args).unwrap());
            servers.push(ns);
        }
        let lab = Lab { client, router, directors, _servers: servers, http, dir };
        lab.wait_for_servers();
        lab
    }

    /// Waits (at most 20 s) until every HTTP server answers on its own address.
    fn wait_for_servers(&self) {
        let start = Instant::now();
        for i in 0..SERVERS {
            let url = format!("http://{}/", server_ip(i));
            while self.router.exec("curl", &["-sf", "-m", "1", &url]).is_err() {
                assert!(start.elapsed() < Duration::from_secs(20), "real server {} does not answer", i + 1);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Starts BIRD in the router: an eBGP session (AS 65000) with BFD to each of `directors`
    /// (AS 65001, 65002, ...), protocols `d1`, `d2`, ..., whose routes it merges into one
    /// multipath route in the kernel's table (`merge paths on`).
    pub(crate) fn bgp_router(&self, directors: usize) -> Bird {
        let mut conf = format!(
            "router id {ROUTER_LAN};\n\
             protocol device {{}}\n\
             protocol bfd {{ interface \"*\" {{ {BFD} }}; }}\n\
             protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
             template bgp director {{\n  local {ROUTER_LAN} as 65000; {BGP_TIMERS}\n  \
             ipv4 {{ import all; export none; }};\n}}\n"
        );
        for i in 0..directors {
            conf +=
                &format!("protocol bgp d{} from director {{ neighbor {} as {}; }}\n", i + 1, director_ip(i), 65001 + i);
        }
        Bird::start(&self.router, &self.dir.join("router"), &conf)
    }

    /// The directors the router's route to the VIP goes through now, in order.
    pub(crate) fn via(&self) -> Vec<usize> {
        let shown = self.router.exec("ip", &["route", "show", &VIP.to_string()]).unwrap_or_default();
        (0..self.directors.len()).filter(|i| shown.contains(&format!("via {} ", director_ip(*i)))).collect()
    }

    /// Waits (at most 20 s) until the router's route to the VIP goes through `via`, and says
    /// how long that took.
    pub(crate) fn wait_for_route(&self, via: &[usize]) -> Duration {
        let start = Instant::now();
        while self.via() != via {
            assert!(start.elapsed() < Duration::from_secs(20), "the route stays via {:?}, not {via:?}", self.via());
            std::thread::sleep(Duration::from_millis(10));
        }
        start.elapsed()
    }

    /// Points the multipath route at `via` (or removes it when empty).
    pub(crate) fn route(&self, via: &[usize]) {
        let vip = VIP.to_string();
        if via.is_empty() {
            let _ = self.router.exec("ip", &["route", "del", &vip]);
            return;
        }
        let mut args = vec!["route".to_string(), "replace".into(), vip];
        for i in via {
            args.extend(["nexthop".into(), "via".into(), director_ip(*i).to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.router.exec("ip", &args).unwrap();
    }
}

/// The BGP timers of every session: BIRD's shortest hold time (3 s) and a keepalive each
/// second, a quick retry; BFD (100 ms, 3 missed) takes a failed peer's routes away sooner.
const BGP_TIMERS: &str = "hold time 3; keepalive time 1; connect retry time 1; bfd on;";
/// BFD's intervals (`protocol bfd`), on both ends.
const BFD: &str = "min rx interval 100 ms; min tx interval 100 ms; multiplier 3;";

/// One BIRD 2 daemon in a namespace, in the foreground so that it is this process's child;
/// killed when dropped.
pub(crate) struct Bird {
    child: Option<Child>,
    socket: PathBuf,
}

impl Bird {
    /// Writes `conf` to `base.conf` and starts `bird -f` in `ns` with its control socket at
    /// `base.ctl`; waits (at most 20 s) until `birdc` answers.
    fn start(ns: &Netns, base: &Path, conf: &str) -> Bird {
        let (path, socket, pid) = (base.with_extension("conf"), base.with_extension("ctl"), base.with_extension("pid"));
        std::fs::write(&path, conf).unwrap();
        let mut cmd = ns.command("bird");
        cmd.args(["-f", "-c", path.to_str().unwrap(), "-s", socket.to_str().unwrap(), "-P", pid.to_str().unwrap()]);
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
        let bird = Bird { child: Some(child), socket };
        let start = Instant::now();
        while bird.birdc(&["show", "status"]).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "bird ({}) does not answer", path.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        bird
    }

    /// Runs `birdc -s SOCKET args` (a command such as `disable d3`).
    ///
    /// # Errors
    /// When `birdc` cannot reach the daemon or exits non-zero.
    pub(crate) fn birdc(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("birdc").arg("-s").arg(&self.socket).args(args).output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match out.status.success() {
            true => Ok(text),
            false => Err(format!("birdc {}: {text}{}", args.join(" "), String::from_utf8_lossy(&out.stderr))),
        }
    }

    /// Kills it at once, as a machine failure would.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a director's `--announce-cmd` reaches the routing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bgp {
    /// Only logged: the caller sets the route ([`Lab::route`]).
    None,
    /// A BIRD in the director's namespace announces the prefixes of its `--announce-file`.
    Bird,
}

/// One `examples/director` process.
pub(crate) struct Director {
    child: Option<Child>,
    bird: Option<Bird>,
    ns: String,
    socket: PathBuf,
    announce_file: PathBuf,
    /// Where its `--announce-cmd` appends `ACTION PREFIX` lines.
    pub(crate) announce_log: PathBuf,
}

impl Director {
    /// Starts director `i` with `rules` and `extra` options (and, with [`Bgp::Bird`], a BIRD
    /// beside it in its namespace), and waits (at most 20 s) until it announces the VIP.
    pub(crate) fn start(lab: &Lab, i: usize, rules: &str, extra: &[&str], bgp: Bgp) -> Director {
        let base = lab.dir.join(format!("d{}", i + 1));
        let (config, socket) = (base.with_extension("rules"), base.with_extension("sock"));
        let (announce_file, announce_log) = (base.with_extension("announce"), base.with_extension("log"));
        std::fs::write(&config, rules).unwrap();
        let log = announce_log.to_str().unwrap();
        let mut announce_cmd = format!("echo \"$LVS_ACTION $LVS_PREFIX\" >> {log}");
        let bird = (bgp == Bgp::Bird).then(|| {
            // The static protocol's routes come from an include file that the announce
            // command rebuilds from the announce file, then `birdc configure` reloads.
            let vips = base.with_extension("vips");
            std::fs::write(&vips, "").unwrap();
            let conf = format!(
                "router id {ip};\n\
                 protocol device {{}}\n\
                 protocol bfd {{ interface \"*\" {{ {BFD} }}; }}\n\
                 protocol static vips {{\n  ipv4;\n  include \"{vips}\";\n}}\n\
                 protocol bgp uplink {{\n  local {ip} as {asn}; neighbor {ROUTER_LAN} as 65000; {BGP_TIMERS}\n  \
                 ipv4 {{ import none; export where proto = \"vips\"; }};\n}}\n",
                ip = director_ip(i),
                asn = 65001 + i,
                vips = vips.display(),
            );
            let bird = Bird::start(&lab.directors[i], &base.with_extension("bird"), &conf);
            announce_cmd += &format!(
                "; sed 's|.*|route & blackhole;|' {} > {} && birdc -s {} configure > /dev/null",
                announce_file.display(),
                vips.display(),
                bird.socket.display()
            );
            bird
        });
        let mut cmd = lab.directors[i].command(binary("director"));
        cmd.args(["--rules", config.to_str().unwrap(), "--port", "eth0"]);
        cmd.args(["--control", socket.to_str().unwrap(), "--gateway", &format!("{ROUTER_MAC}@eth0")]);
        for s in 0..SERVERS {
            cmd.args(["--neigh", &format!("{}={}@eth0", server_ip(s), server_mac(s))]);
        }
        cmd.args(["--announce-file", announce_file.to_str().unwrap(), "--drain", DRAIN]);
        cmd.args(["--announce-cmd", &announce_cmd]);
        cmd.args(extra);
        let child = cmd.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
        let ns = lab.directors[i].name().to_string();
        let d = Director { child: Some(child), bird, ns, socket, announce_file, announce_log };
        let start = Instant::now();
        while !d.announces() {
            assert!(start.elapsed() < Duration::from_secs(20), "director {} announced nothing", i + 1);
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// Whether its process runs and its announce file names the VIP.
    pub(crate) fn announces(&self) -> bool {
        let alive = self.child.as_ref().is_some_and(|c| Path::new(&format!("/proc/{}", c.id())).exists());
        let file = std::fs::read_to_string(&self.announce_file).unwrap_or_default();
        alive && file.lines().any(|l| l == format!("{VIP}/32"))
    }

    /// `lvsadm -L -n --stats` of this director: the first service's Conns and InPkts (zeros
    /// when it does not answer).
    pub(crate) fn stats(&self) -> (u64, u64) {
        let out = Command::new(binary("lvsadm"))
            .args(["--socket", self.socket.to_str().unwrap(), "-L", "-n", "--stats"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("TCP") || l.starts_with("UDP")).unwrap_or_default();
        let n = |i| line.split_whitespace().nth(i).and_then(|n| n.parse().ok()).unwrap_or(0);
        (n(2), n(3))
    }

    /// Sends it a signal (`-TERM`, `-KILL`).
    pub(crate) fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// Fails as a machine would: its link goes down (the router hears nothing more from it,
    /// and its BGP session drops when BFD or the hold timer says so), then it and its BIRD are
    /// killed.
    pub(crate) fn fail(&mut self) {
        let _ = Command::new("ip").args(["-n", &self.ns, "link", "set", "eth0", "down"]).status();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(b) = self.bird.as_mut() {
            b.kill();
        }
    }

    /// The CPU time its process has used so far (user and system, `/proc/PID/stat`).
    pub(crate) fn cpu(&self) -> Duration {
        let pid = self.child.as_ref().map_or(0, Child::id);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is field 3; utime 14, stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, f)| f).split_whitespace().collect();
        let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
        Duration::from_millis(ticks * 10)
    }

    /// Whether the process has exited (reaping it).
    pub(crate) fn exited(&mut self) -> bool {
        let gone = self.child.as_mut().is_none_or(|c| c.try_wait().unwrap().is_some());
        if gone {
            self.child = None;
        }
        gone
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
