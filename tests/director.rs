//! `examples/director` and `examples/lvsadm` as an operator runs them (root; CI runs as root):
//! the built binaries, started in the namespace lab's director namespace with a rule file or a
//! keepalived.conf, kernel HTTP servers behind them and `curl` in front; `lvsadm` drives the
//! director as ipvsadm would; SIGHUP reloads an edited file while a connection stays open;
//! SIGTERM stops it. Also, without root, the control protocol's codec (`common/control.rs`).
//!
//! The binaries are built by `cargo build --example director --example lvsadm` from here (a
//! no-op when `cargo test --workspace` built them already), in this test's profile.

#[path = "../examples/common/built.rs"]
mod built;
#[path = "../examples/common/control.rs"]
#[allow(dead_code)]
mod control;
#[path = "../examples/common/lab.rs"]
#[allow(dead_code)]
mod lab;
#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/netns_lab.rs"]
#[allow(dead_code)]
mod netns_lab;
#[path = "../examples/common/root.rs"]
mod root;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use built::binary;
use lab::{Mode, VIP};
use lvs::core::neigh::MacAddr;
use netns_lab::{server_ip, server_mac, Topology, CLIENT_IP, CLIENT_MAC};

/// Where the director serves its metrics, inside its namespace.
const METRICS: &str = "127.0.0.1:9100";

/// A director process in the lab's director namespace, with its socket and files; killed and
/// its files removed when dropped.
struct Director {
    child: Option<Child>,
    socket: PathBuf,
    dir: PathBuf,
}

impl Director {
    /// Starts `examples/director` with `config` (`--rules FILE` or `--keepalived FILE`, the
    /// file written from `text`) for `servers` real servers of `mode`, and waits until `lvsadm`
    /// gets an answer.
    fn start(topo: &Topology, mode: Mode, servers: usize, flag: &str, text: &str, tag: &str) -> Director {
        Director::start_on(topo, mode, servers, (flag, text), &["--backend", "afpacket"], tag)
    }

    /// [`Director::start`] with `extra` options (`--backend`, `--shards`); procfs files too
    /// unless `--shards` is among them (several shards refuse `--procfs`).
    fn start_on(
        topo: &Topology,
        mode: Mode,
        servers: usize,
        config: (&str, &str),
        extra: &[&str],
        tag: &str,
    ) -> Director {
        let (flag, text) = config;
        let dir = std::env::temp_dir().join(format!("lvs-director-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config");
        std::fs::write(&config, text).unwrap();
        let socket = dir.join("director.sock");
        let mut cmd = topo.director.command(binary("director"));
        cmd.args([flag, config.to_str().unwrap(), "--port", "eth0"]);
        cmd.args(["--control", socket.to_str().unwrap()]);
        if !extra.contains(&"--shards") {
            cmd.args(["--procfs", dir.join("proc").to_str().unwrap()]);
        }
        cmd.args(["--refresh", "0.2", "--gateway", &format!("{}@eth0", MacAddr(CLIENT_MAC))]);
        cmd.args(["--metrics", METRICS]).args(extra);
        for i in 0..servers {
            cmd.args(["--neigh", &format!("{}={}@eth0", server_ip(mode, i), MacAddr(server_mac(i)))]);
        }
        cmd.args(["--neigh", &format!("{}={}@eth0", Ipv4Addr::from(CLIENT_IP), MacAddr(CLIENT_MAC))]);
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut d = Director { child: Some(child), socket, dir };
        let start = Instant::now();
        while d.lvsadm(&["-L", "-n"], "").status.code() != Some(0) {
            assert!(start.elapsed() < Duration::from_secs(20), "the director did not answer: {}", d.stop().1);
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// Runs the built `lvsadm` against this director.
    fn lvsadm(&self, args: &[&str], stdin: &str) -> Output {
        let mut c = Command::new(binary("lvsadm"))
            .args(["--socket", self.socket.to_str().unwrap()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }

    /// `lvsadm` that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.lvsadm(args, "");
        assert_eq!(out.status.code(), Some(0), "lvsadm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The rule lines of `lvsadm -S -n`, sorted.
    fn rules(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.ok(&["-S", "-n"]).lines().map(String::from).collect();
        lines.sort();
        lines
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// SIGTERM, then waits (at most 10 s) for the exit: its status, standard output and error.
    fn stop(&mut self) -> (Option<i32>, String, String) {
        let Some(mut child) = self.child.take() else { return (None, String::new(), String::new()) };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s.code();
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (mut out, mut err) = (String::new(), String::new());
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (status, out, err)
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `curl` from the client: the number of the server that answered (1-based), if any.
fn fetch(topo: &Topology) -> Option<usize> {
    let url = format!("http://{}/", Ipv4Addr::from(VIP));
    let body = topo.client.exec("curl", &["-s", "--max-time", "3", &url]).ok()?;
    body.trim().strip_prefix("rs")?.parse().ok()
}

/// Twelve more client addresses on the client's link, 192.0.2.100 to .111: steered by the
/// client's address, they spread over the shards.
fn add_clients(topo: &Topology) -> Vec<Ipv4Addr> {
    let clients: Vec<Ipv4Addr> = (100..112).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    for c in &clients {
        topo.client.exec("ip", &["addr", "add", &format!("{c}/24"), "dev", "eth0"]).unwrap();
    }
    clients
}

/// One `curl` from each of `clients`: the page's server (`rs1`, ...), if any.
fn fetch_from(topo: &Topology, clients: &[Ipv4Addr]) -> Vec<Option<String>> {
    let url = format!("http://{}/", Ipv4Addr::from(VIP));
    let fetch = |c: &Ipv4Addr| {
        let body = topo.client.exec("curl", &["-s", "--max-time", "3", "--interface", &c.to_string(), &url]);
        body.ok().map(|b| b.trim().to_string()).filter(|b| b.starts_with("rs"))
    };
    clients.iter().map(fetch).collect()
}

/// A TCP connection from the client's namespace to the VIP, opened and left idle.
fn hold_open(topo: &Topology) -> TcpStream {
    std::thread::scope(|s| {
        s.spawn(|| {
            topo.client.enter().unwrap();
            let to = SocketAddr::from((VIP, 80));
            TcpStream::connect_timeout(&to, Duration::from_secs(3)).unwrap()
        })
        .join()
        .unwrap()
    })
}

/// An HTTP request on a held connection: the page's server.
fn request(mut c: TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    c.read_to_string(&mut page).unwrap();
    page.lines().last().unwrap_or_default().trim().to_string()
}

/// Waits (at most 10 s) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A frame redirected to an AF_XDP socket loses the skb's note that its transport checksum is
/// left to the device (veth's checksum offload), so the hosts that send through the director
/// fill in their checksums themselves; the receivers check them.
fn checksums_in_software(topo: &Topology) {
    for ns in topo.servers.iter().map(|(ns, _)| ns).chain([&topo.client]) {
        ns.exec("ethtool", &["-K", "eth0", "tx", "off"]).unwrap();
    }
}

fn netns_names() -> String {
    Command::new("ip").args(["netns", "list"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into()).unwrap()
}

fn operate(mode: Mode) {
    if !root::can_run(true, &["ip", "curl", "python3", "sysctl", "kill"]) {
        return;
    }
    let tag = match mode {
        Mode::Nat => "dnat",
        _ => "ddr",
    };
    let (method, fwd) = match mode {
        Mode::Nat => ("-m", "Masq"),
        _ => ("-g", "Route"),
    };
    let topo = Topology::build(mode, 3, tag).unwrap();
    for i in 0..3 {
        topo.serve(i, &format!("rs{}", i + 1), &AtomicBool::new(false)).unwrap();
    }
    let rs: Vec<String> = (0..3).map(|i| server_ip(mode, i).to_string()).collect();
    let vip = format!("{}:80", Ipv4Addr::from(VIP));
    let rules = format!(
        "-A -t {vip} -s rr\n-a -t {vip} -r {}:80 {method} -w 1\n-a -t {vip} -r {}:80 {method} -w 1\n",
        rs[0], rs[1]
    );
    let mut d = Director::start(&topo, mode, 3, "--rules", &rules, tag);

    // ipvsadm 1.31's listing of that table, byte for byte (as in the oracle traces).
    let listing = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  {vip} rr\n  \
         -> {:<28} {fwd:<7} 1      0          0         \n  \
         -> {:<28} {fwd:<7} 1      0          0         \n",
        format!("{}:80", rs[0]),
        format!("{}:80", rs[1])
    );
    assert_eq!(d.ok(&["-L", "-n"]), listing);
    // rr takes the newest server first, then goes round.
    let answers: Vec<Option<usize>> = (0..4).map(|_| fetch(&topo)).collect();
    assert_eq!(answers, [Some(2), Some(1), Some(2), Some(1)]);

    // Driven as with ipvsadm: add rs3, quiesce rs1, delete rs2.
    assert_eq!(d.ok(&["-a", "-t", &vip, "-r", &format!("{}:80", rs[2]), method, "-w", "1"]), "");
    assert_eq!(d.ok(&["-e", "-t", &vip, "-r", &format!("{}:80", rs[0]), method, "-w", "0"]), "");
    assert_eq!(d.ok(&["-d", "-t", &vip, "-r", &format!("{}:80", rs[1])]), "");
    let mut want = vec![
        format!("-A -t {vip} -s rr"),
        format!("-a -t {vip} -r {}:80 {method} -w 0", rs[0]),
        format!("-a -t {vip} -r {}:80 {method} -w 1", rs[2]),
    ];
    want.sort();
    assert_eq!(d.rules(), want);
    // ipvsadm's exit statuses and messages: 255 for what the kernel refuses (and for what popt
    // refuses), 2 for what ipvsadm's own checks refuse.
    let missing = d.lvsadm(&["-d", "-t", &vip, "-r", "192.0.2.99:80"], "");
    assert_eq!((missing.status.code(), &missing.stdout[..]), (Some(255), &b""[..]));
    assert_eq!(String::from_utf8_lossy(&missing.stderr), "No such destination\n");
    let ops = d.lvsadm(&["-A", "-t", "203.0.113.100:81", "-o"], "");
    assert_eq!(ops.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&ops.stderr), "One-Packet Scheduling is only for UDP virtual services\n");
    assert_eq!(d.lvsadm(&["-A", "-t"], "").status.code(), Some(255));
    let answers: Vec<Option<usize>> = (0..3).map(|_| fetch(&topo)).collect();
    assert_eq!(answers, [Some(3), Some(3), Some(3)], "rs1 quiesced, rs2 gone");

    // The procfs files, as the kernel writes /proc/net/ip_vs (addresses and ports in hex).
    let procfs = d.dir.join("proc/net/ip_vs");
    wait_for("the procfs files", || {
        std::fs::read_to_string(&procfs).is_ok_and(|t| t.contains("TCP  CB007164:0050 rr"))
    });

    // The Prometheus exposition, with node_exporter's names and labels: rs1 quiesced, rs3 in.
    let weight = |i: usize, w: u32| {
        format!(
            "node_ipvs_backend_weight{{local_address=\"{}\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",\
             remote_address=\"{}\",remote_port=\"80\"}} {w}\n",
            Ipv4Addr::from(VIP),
            rs[i]
        )
    };
    let url = format!("http://{METRICS}/metrics");
    let scrape = topo.director.exec("curl", &["-sf", &url]).unwrap();
    assert!(scrape.contains(&weight(0, 0)) && scrape.contains(&weight(2, 1)), "{scrape}");
    assert!(scrape.contains("# TYPE lvs_drops_total counter\n"), "{scrape}");

    // SIGHUP after an edit, with a connection open to rs3: wrr, rs3 re-weighted, rs2 back, rs1
    // gone, a new service.
    let held = hold_open(&topo);
    let edited = format!(
        "-A -t {vip} -s wrr\n-a -t {vip} -r {}:80 {method} -w 2\n-a -t {vip} -r {}:80 {method} -w 1\n\
         -A -t {}:8080 -s rr\n-a -t {}:8080 -r {}:8080 {method} -w 1\n",
        rs[2],
        rs[1],
        Ipv4Addr::from(VIP),
        Ipv4Addr::from(VIP),
        rs[0]
    );
    std::fs::write(d.dir.join("config"), &edited).unwrap();
    d.signal("-HUP");
    let mut want: Vec<String> = edited.lines().map(String::from).collect();
    want.sort();
    wait_for("the reloaded table", || d.rules() == want);
    assert_eq!(request(held), "rs3", "the open connection survived the reload");
    // A file that does not parse is refused whole: the table stays.
    std::fs::write(d.dir.join("config"), "-A -t nowhere -s rr\n").unwrap();
    d.signal("-HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.rules(), want);

    let (status, out, err) = d.stop();
    assert_eq!(status, Some(0), "clean exit on SIGTERM: {err}");
    assert!(out.starts_with("IP Virtual Server version 1.2.1"), "the --stats table on exit: {out}");
    assert!(err.contains("config:1:") && err.contains("reload refused"), "the bad file named: {err}");
    let names: Vec<String> = [&topo.director, &topo.client].iter().map(|n| n.name().to_string()).collect();
    drop(topo);
    let left = netns_names();
    assert!(names.iter().all(|n| !left.contains(n.as_str())), "namespaces left: {left}");
}

#[test]
fn dr_director_driven_by_lvsadm() {
    operate(Mode::Dr);
}

#[test]
fn nat_director_driven_by_lvsadm() {
    operate(Mode::Nat);
}

/// ipvsadm's forwarding flag for `mode`'s servers.
fn method(mode: Mode) -> &'static str {
    if mode == Mode::Nat {
        "-m"
    } else {
        "-g"
    }
}

/// The lab, with `queues` queues on every link, its two servers answering `rs1` and `rs2`, the
/// VIP's `ADDR:80`, and a rule file that balances over them by rr with `mode`'s forwarding
/// method.
fn rr_lab(mode: Mode, tag: &str, queues: u8) -> (Topology, String, String) {
    let method = method(mode);
    let topo = Topology::build_with_queues(mode, 2, tag, queues).unwrap();
    for i in 0..2 {
        topo.serve(i, &format!("rs{}", i + 1), &AtomicBool::new(false)).unwrap();
    }
    let vip = format!("{}:80", Ipv4Addr::from(VIP));
    let (rs1, rs2) = (server_ip(mode, 0), server_ip(mode, 1));
    let rules =
        format!("-A -t {vip} -s rr\n-a -t {vip} -r {rs1}:80 {method} -w 1\n-a -t {vip} -r {rs2}:80 {method} -w 1\n");
    (topo, vip, rules)
}

/// `examples/director --backend afxdp` in the lab: curl through it in rr's order (the kernel
/// TCP stacks at both ends verify every checksum the director rewrote or passed on), the log
/// saying AF_XDP started (no fallback), the table on SIGTERM and a clean exit.
fn afxdp_forwards(mode: Mode) {
    if !root::can_run(true, &["ip", "curl", "python3", "sysctl", "kill", "ethtool"]) {
        return;
    }
    let tag = if mode == Mode::Nat { "xnat" } else { "xdr" };
    let (topo, vip, rules) = rr_lab(mode, tag, 1);
    checksums_in_software(&topo);
    let mut d = Director::start_on(&topo, mode, 2, ("--rules", &rules), &["--backend", "afxdp"], tag);
    let answers: Vec<Option<usize>> = (0..4).map(|_| fetch(&topo)).collect();
    let (status, out, err) = d.stop();
    assert_eq!(answers, [Some(2), Some(1), Some(2), Some(1)], "rr through AF_XDP: {out}{err}");
    assert_eq!(status, Some(0), "clean exit on SIGTERM: {err}");
    assert!(err.contains("AF_XDP in copy mode") && !err.contains("falling back"), "AF_XDP started: {err}");
    let row = |l: &&str| l.split_whitespace().take(3).collect::<Vec<_>>() == ["TCP", vip.as_str(), "4"];
    assert!(out.lines().any(|l| row(&l)), "four connections in the --stats table: {out}");
}

/// Without `--neigh` for the real servers, the director learns their MACs from the kernel's
/// tables (the kernel resolving them by ARP) and balances over both.
fn kernel_next_hops(mode: Mode) {
    if !root::can_run(true, &["ip", "curl", "python3", "sysctl", "kill"]) {
        return;
    }
    let tag = if mode == Mode::Nat { "knat" } else { "kdr" };
    let (topo, _, rules) = rr_lab(mode, tag, 1);
    let (rs1, rs2) = (server_ip(mode, 0), server_ip(mode, 1));
    // No servers given by hand: only the client and the gateway.
    let mut d = Director::start_on(&topo, mode, 0, ("--rules", &rules), &["--backend", "afpacket"], tag);
    let mut answers: Vec<Option<usize>> = Vec::new();
    wait_for("a first answer", || {
        answers = (0..4).map(|_| fetch(&topo)).collect();
        answers.iter().all(Option::is_some)
    });
    let (status, _, err) = d.stop();
    let mut got: Vec<usize> = answers.into_iter().flatten().collect();
    got.sort_unstable();
    assert_eq!(got, [1, 1, 2, 2], "rr over both servers: {err}");
    assert_eq!(status, Some(0), "clean exit on SIGTERM: {err}");
    for (i, rs) in [rs1, rs2].iter().enumerate() {
        let mac = MacAddr(server_mac(i));
        assert!(err.contains(&format!("next hop of {rs}: {mac} on eth0")), "{rs} learned from the kernel: {err}");
    }
}

#[test]
fn dr_director_learns_next_hops_from_the_kernel() {
    kernel_next_hops(Mode::Dr);
}

#[test]
fn nat_director_learns_next_hops_from_the_kernel() {
    kernel_next_hops(Mode::Nat);
}

#[test]
fn dr_director_on_afxdp() {
    afxdp_forwards(Mode::Dr);
}

#[test]
fn nat_director_on_afxdp() {
    afxdp_forwards(Mode::Nat);
}

#[test]
fn keepalived_health_checks_drop_a_killed_server() {
    health_drops_a_killed_server(&["--backend", "afpacket"], "dka");
}

#[test]
fn keepalived_health_checks_drop_a_killed_server_from_every_shard() {
    health_drops_a_killed_server(&["--shards", "2"], "ska");
}

/// A keepalived.conf with TCP checks: the killed server leaves the table (of every shard:
/// none of twelve clients, spread over the shards, reaches it) and the others answer.
fn health_drops_a_killed_server(extra: &[&str], tag: &str) {
    if !root::can_run(true, &["ip", "curl", "python3", "sysctl", "kill"]) {
        return;
    }
    let topo = Topology::build(Mode::Dr, 3, tag).unwrap();
    let clients = add_clients(&topo);
    for i in 0..3 {
        topo.serve(i, &format!("rs{}", i + 1), &AtomicBool::new(false)).unwrap();
    }
    let real = |i: usize| {
        format!(
            "    real_server {} 80 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n",
            server_ip(Mode::Dr, i)
        )
    };
    let conf = format!(
        "virtual_server {} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n{}{}{}}}\n",
        Ipv4Addr::from(VIP),
        real(0),
        real(1),
        real(2)
    );
    let mut d = Director::start_on(&topo, Mode::Dr, 3, ("--keepalived", &conf), extra, tag);
    let rs2 = format!("{}:80", server_ip(Mode::Dr, 1));
    assert!(d.ok(&["-L", "-n"]).contains(&rs2), "keepalived puts checked servers in at start");
    wait_for("three servers up", || d.ok(&["--health"]).matches(" UP ").count() == 3);
    // rs2's HTTP server dies: its TCP check fails and keepalived's reaction takes it out.
    topo.servers[1].0.kill_all();
    wait_for("rs2 out of the table", || !d.ok(&["-L", "-n"]).contains(&rs2));
    assert!(d.ok(&["--health"]).lines().any(|l| l.contains(&rs2) && l.contains("DOWN")));
    let answers = fetch_from(&topo, &clients);
    let others = |a: &Option<String>| matches!(a.as_deref(), Some("rs1" | "rs3"));
    assert!(answers.iter().all(others), "the others still answer: {answers:?}");
    let (status, _, err) = d.stop();
    assert_eq!(status, Some(0), "{err}");
    assert!(err.contains("down"), "the health event is logged: {err}");
}

/// `examples/director --shards 2` in the lab: twelve clients, each fetching three times, all
/// answered through two shards — over one steered fanout group (AF_PACKET), or (AF_XDP) on
/// receive queues 0 and 1 of links with two queues each way, a frame that arrives on the
/// other shard's queue handed to its owner — (in NAT every reply reaches the shard that owns
/// its connection, or the fetch would time out); `lvsadm -Ln --stats` sums the shards'
/// counters, while `-L -n` shows shard 0's connections alone; `lvsadm -d` and a SIGHUP reload
/// reach every shard; SIGTERM prints the summed table and exits cleanly.
fn sharded_forwards(mode: Mode, backend: &str) {
    if !root::can_run(true, &["ip", "curl", "python3", "sysctl", "kill", "ethtool"]) {
        return;
    }
    let afxdp = backend == "afxdp";
    let tag = match (mode, afxdp) {
        (Mode::Nat, false) => "snat",
        (Mode::Nat, true) => "sxnat",
        (_, false) => "sdr",
        (_, true) => "sxdr",
    };
    let (topo, vip, rules) = rr_lab(mode, tag, if afxdp { 2 } else { 1 });
    if afxdp {
        checksums_in_software(&topo);
    }
    let clients = add_clients(&topo);
    let (rs1, rs2) = (server_ip(mode, 0), server_ip(mode, 1));
    let mut extra = vec!["--shards", "2", "--backend", backend];
    // Busy polling on AF_XDP in NAT (SO_PREFER_BUSY_POLL: Linux 5.11 and later).
    let busy = afxdp && mode == Mode::Nat;
    if busy {
        extra.extend(["--busy-poll", "50"]);
    }
    let mut d = Director::start_on(&topo, mode, 2, ("--rules", &rules), &extra, tag);
    let answers: Vec<Option<String>> = (0..3).flat_map(|_| fetch_from(&topo, &clients)).collect();
    // ipvsadm's --stats columns: Conns InPkts OutPkts InBytes OutBytes.
    let row = |table: &str, name: &str| -> Vec<u64> {
        let line = table.lines().find(|l| l.split_whitespace().nth(1) == Some(name)).unwrap_or_default();
        line.split_whitespace().skip(2).filter_map(|w| w.parse().ok()).collect()
    };
    let stats = d.ok(&["-L", "-n", "--stats"]);
    let plain = d.ok(&["-L", "-n"]);
    // lvsadm -d runs on every shard: no client reaches rs2 any more.
    assert_eq!(d.ok(&["-d", "-t", &vip, "-r", &format!("{rs2}:80")]), "");
    let after_delete = fetch_from(&topo, &clients);
    // SIGHUP to a file with rs2 alone: every shard is brought to it.
    let edited = format!("-A -t {vip} -s rr\n-a -t {vip} -r {rs2}:80 {} -w 1\n", method(mode));
    std::fs::write(d.dir.join("config"), &edited).unwrap();
    d.signal("-HUP");
    let mut want: Vec<String> = edited.lines().map(String::from).collect();
    want.sort();
    wait_for("the reloaded table", || d.rules() == want);
    let after_reload = fetch_from(&topo, &clients);
    let (status, out, err) = d.stop();
    assert!(after_delete.iter().all(|a| a.as_deref() == Some("rs1")), "rs2 deleted: {after_delete:?}");
    assert!(after_reload.iter().all(|a| a.as_deref() == Some("rs2")), "rs2 alone: {after_reload:?}");
    assert!(answers.iter().all(Option::is_some), "every fetch answered: {answers:?}\n{err}");
    assert_eq!(status, Some(0), "clean exit on SIGTERM: {err}");
    assert!(err.contains("2 shards"), "{err}");
    if afxdp {
        for q in ["queue 0: AF_XDP", "queue 1: AF_XDP"] {
            assert!(err.contains(q) && !err.contains("falling back"), "{q} started: {err}");
        }
        assert_eq!(err.matches(", busy polling").count(), if busy { 2 } else { 0 }, "{err}");
        // Frames do arrive on the other shard's queue (each host's flows spread over its
        // link's two queues), and every one was handed over: none lost.
        let handed =
            err.lines().find_map(|l| l.split_once(" handed to the shard that owns them")?.0.rsplit(", ").next());
        let handed: u64 = handed.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("hand-off counts: {err}"));
        assert!(handed > 0 && err.contains("(0 lost to a full inbox)"), "{err}");
    }
    let total = row(&stats, &vip).into_iter().next();
    assert_eq!(total, Some(36), "36 connections summed over the shards:\n{stats}");
    let per_server: u64 = [rs1, rs2].iter().filter_map(|r| row(&stats, &format!("{r}:80")).first().copied()).sum();
    assert_eq!(per_server, 36, "{stats}");
    // In NAT the director sees both directions, in DR the requests alone.
    let (inpkts, outpkts) = (row(&stats, &vip)[1], row(&stats, &vip)[2]);
    assert!(inpkts >= 36 * 4, "SYN, ACK, request, FIN at least: {stats}");
    assert_eq!(outpkts > 0, mode == Mode::Nat, "{stats}");
    // Shard 0's own connections, closed and waiting out TIME_WAIT (ActiveConn 0, InActConn):
    // fewer than all, as shard 1 took the other clients'.
    let inact: u64 = plain
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .filter_map(|l| l.split_whitespace().nth(5)?.parse::<u64>().ok())
        .sum();
    assert!(0 < inact && inact < 36, "shard 0 held some, not all: {plain}");
    assert_eq!(row(&out, &vip).first(), Some(&60), "the summed table on exit, 36 + 12 + 12: {out}");
}

#[test]
fn nat_director_on_two_shards() {
    sharded_forwards(Mode::Nat, "afpacket");
}

#[test]
fn dr_director_on_two_shards() {
    sharded_forwards(Mode::Dr, "afpacket");
}

#[test]
fn nat_director_on_two_afxdp_queues() {
    sharded_forwards(Mode::Nat, "afxdp");
}

#[test]
fn dr_director_on_two_afxdp_queues() {
    sharded_forwards(Mode::Dr, "afxdp");
}

#[test]
fn shards_refuse_what_one_runtime_owns() {
    if !root::can_run(true, &["ip"]) {
        return;
    }
    let topo = Topology::build(Mode::Dr, 0, "sref").unwrap();
    let dir = std::env::temp_dir().join(format!("lvs-director-sref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules");
    std::fs::write(&rules, "-A -t 203.0.113.100:80 -s rr\n--start-daemon master --mcast-interface eth0\n").unwrap();
    let vrrp = dir.join("keepalived.conf");
    std::fs::write(
        &vrrp,
        "vrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    priority 100\n    \
         virtual_ipaddress {\n        203.0.113.100\n    }\n}\n",
    )
    .unwrap();
    let plain = dir.join("plain");
    std::fs::write(&plain, "-A -t 203.0.113.100:80 -s rr\n").unwrap();
    let cases: [(&std::path::Path, &str, &[&str], &str); 4] = [
        (&plain, "--rules", &["--backend", "afxdp"], "AF_XDP takes one receive queue per shard and eth0 has 1"),
        (&plain, "--rules", &["--procfs", "/nonexistent"], "--procfs"),
        (&rules, "--rules", &[], "sync daemons"),
        (&vrrp, "--keepalived", &[], "VRRP"),
    ];
    for (file, flag, extra, says) in cases {
        let socket = dir.join("sock");
        let out = topo
            .director
            .command(binary("director"))
            .args([flag, file.to_str().unwrap(), "--port", "eth0", "--shards", "2"])
            .args(["--control", socket.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{says}: {err}");
        assert!(err.contains("--shards 2") && err.contains(says), "{says}: {err}");
        assert!(!err.contains("shard 0 running"), "refused before any shard started: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
