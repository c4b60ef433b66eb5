//! The ECMP lab (root; CI runs as root): directors that scale out as Maglev and Katran do,
//! behind a router that learns the VIP from them by BGP.
//!
//! Namespaces: a client; a router running BIRD 2, with an eBGP session and BFD to each
//! director, which installs the VIP's route in the kernel as one multipath route (`merge paths
//! on`; L4 hashing with `fib_multipath_hash_policy=1`); three `examples/director` processes
//! (DR) on the router's LAN, each beside a BIRD of its own that announces what the director's
//! `--announce-cmd` tells it (the command rebuilds a `protocol static` include from the
//! director's `--announce-file` and runs `birdc configure`); four real servers on the same LAN
//! running `python3 -m http.server` (HTTP/1.1 keep-alive) with the VIP on `lo`.
//!
//! Clients hold [`HELD`] keep-alive connections, each asking every [`ASK_EVERY`] which server
//! answers, and open new connections one at a time. Phases: all three directors; D3 taken out
//! of the route (`birdc disable d3` on the router); D3 back (`enable d3`); D2 failing (its
//! link cut, then it and its BIRD killed: BFD drops the session); D1 leaving gracefully
//! (SIGTERM with `--drain`: it withdraws first, through its BIRD, and keeps forwarding while
//! the route moves). Each phase starts when the router's kernel route has changed and lasts
//! [`PHASE`]. A held connection is broken when a request fails or a different server answers.
//! Run twice: `mh` with `--midflow-hash` in its rule file and no sync (a moved flow is
//! scheduled by the hash to the same server), and `wlc` with every director running a sync
//! master and backup from its rule file (a moved flow finds the synced entry). Both must break
//! no connection; each prints its figures for the README.

#[path = "../examples/common/built.rs"]
mod built;
#[path = "../examples/common/ecmp.rs"]
#[allow(dead_code)]
mod ecmp;
#[path = "../examples/common/netns.rs"]
#[allow(dead_code)]
mod netns;
#[path = "../examples/common/root.rs"]
mod root;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecmp::{server_ip, Bgp, Director, Lab, SERVERS, VIP};

const DIRECTORS: usize = 3;
/// Keep-alive connections held through every phase.
const HELD: usize = 24;
/// How often each held connection asks which server answers.
const ASK_EVERY: Duration = Duration::from_millis(200);
/// How long a request may take before its connection counts as broken (TCP retransmits
/// within it when a route changes under a segment).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// A new connection is opened every this long.
const NEW_EVERY: Duration = Duration::from_millis(40);
/// How long each phase runs.
const PHASE: Duration = Duration::from_secs(3);

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Held connections broken, by phase.
    broken: BTreeMap<usize, usize>,
    /// New connections answered, by phase and server.
    new: BTreeMap<(usize, String), usize>,
    /// New connections that failed, by phase.
    new_failed: BTreeMap<usize, usize>,
    /// Requests answered on held connections.
    asked: usize,
    /// Connection entries each director created in each phase, from the moment the route
    /// was in place (new connections and, with `--midflow-hash`, moved flows), from its
    /// `--stats` Conns.
    created: Vec<[u64; DIRECTORS]>,
}

/// One HTTP/1.1 keep-alive request on `s`: the body (the server's name).
fn ask(s: &mut TcpStream) -> std::io::Result<String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Ok(body[..len].to_string());
            }
        }
    }
}

fn connect() -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&SocketAddr::from((VIP, 80)), ANSWER_WITHIN)?;
    s.set_read_timeout(Some(ANSWER_WITHIN))?;
    s.set_write_timeout(Some(ANSWER_WITHIN))?;
    Ok(s)
}

/// The clients, in the client namespace: [`HELD`] held connections and one opener of new
/// ones, until `stop`; the phase they count in is `phase`.
fn clients(
    lab: &Lab,
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    for _ in 0..HELD {
        let (ns, phase, stop, seen) = (lab.client.name().to_string(), phase.clone(), stop.clone(), seen.clone());
        threads.push(std::thread::spawn(move || {
            lvs::dataplane::netns::enter(&ns).unwrap();
            let mut s = connect().expect("a held connection");
            let first = ask(&mut s).expect("a held connection's first answer");
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(ASK_EVERY);
                let p = phase.load(Ordering::Relaxed);
                match ask(&mut s) {
                    Ok(name) if name == first => seen.lock().unwrap().asked += 1,
                    other => {
                        eprintln!("phase {p}: a held connection on {first} broke: {other:?}");
                        *seen.lock().unwrap().broken.entry(p).or_default() += 1;
                        return;
                    }
                }
            }
        }));
    }
    let (ns, phase, stop, seen) = (lab.client.name().to_string(), phase.clone(), stop.clone(), seen.clone());
    threads.push(std::thread::spawn(move || {
        lvs::dataplane::netns::enter(&ns).unwrap();
        while !stop.load(Ordering::Relaxed) {
            let p = phase.load(Ordering::Relaxed);
            match connect().and_then(|mut s| ask(&mut s)) {
                Ok(name) => *seen.lock().unwrap().new.entry((p, name)).or_default() += 1,
                Err(_) => *seen.lock().unwrap().new_failed.entry(p).or_default() += 1,
            }
            std::thread::sleep(NEW_EVERY);
        }
    }));
    threads
}

/// The phases: what happens, and the directors the route goes through after it.
const PHASES: [(&str, &[usize]); 5] = [
    ("all three directors", &[0, 1, 2]),
    ("D3 out of the route", &[0, 1]),
    ("D3 back", &[0, 1, 2]),
    ("D2 failing (link cut, killed)", &[0, 2]),
    ("D1 leaving (SIGTERM, --drain)", &[2]),
];

/// Programs the lab runs.
const NEEDS: [&str; 6] = ["ip", "sysctl", "python3", "curl", "bird", "birdc"];

fn run_lab(tag: &str, rules: &str) -> Seen {
    // One lab at a time: the machine is small, and the load must stay bounded.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let lab = Lab::build(tag, DIRECTORS);
    let router = lab.bgp_router(DIRECTORS);
    let mut directors: Vec<Director> =
        (0..DIRECTORS).map(|i| Director::start(&lab, i, rules, &[], Bgp::Bird)).collect();
    let up = lab.wait_for_route(PHASES[0].1);
    println!("{tag}: the route via all three directors {} ms after they announced", up.as_millis());
    let (phase, stop, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)), Arc::default());
    let threads = clients(&lab, phase.clone(), stop.clone(), Arc::clone(&seen));
    let mut created = Vec::new();
    for (p, (name, via)) in PHASES.iter().enumerate() {
        phase.store(p, Ordering::Relaxed);
        match p {
            1 => drop(router.birdc(&["disable", "d3"]).unwrap()),
            2 => drop(router.birdc(&["enable", "d3"]).unwrap()),
            3 => directors[1].fail(),
            4 => directors[0].signal("-TERM"),
            _ => {}
        }
        let moved = lab.wait_for_route(via);
        // Entries are counted from the moment the route is in place.
        let before: [u64; DIRECTORS] = std::array::from_fn(|i| directors[i].stats().0);
        std::thread::sleep(PHASE);
        let after: [u64; DIRECTORS] = std::array::from_fn(|i| directors[i].stats().0);
        // A director that is gone reads zero: it created nothing more.
        created.push(std::array::from_fn(|d| after[d].saturating_sub(before[d])));
        println!(
            "{tag}: phase {p} ({name}): the route via {:?} after {} ms",
            via.iter().map(|i| format!("D{}", i + 1)).collect::<Vec<_>>(),
            moved.as_millis()
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    // D1 left on its own after its drain, and told its command both changes.
    assert!(directors[0].exited(), "D1 still runs after its drain");
    let log = std::fs::read_to_string(&directors[0].announce_log).unwrap_or_default();
    assert_eq!(log, format!("announce {VIP}/32\nwithdraw {VIP}/32\n"), "D1's --announce-cmd");
    let mut seen: Seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    seen.created = created;
    println!("{tag}: {} answers on {HELD} held connections", seen.asked);
    for (p, (name, _)) in PHASES.iter().enumerate() {
        let per_server: Vec<String> = (1..=SERVERS)
            .map(|s| format!("rs{s} {}", seen.new.get(&(p, format!("rs{s}"))).copied().unwrap_or(0)))
            .collect();
        let per_director: Vec<String> = (0..DIRECTORS).map(|d| format!("D{} {}", d + 1, seen.created[p][d])).collect();
        println!(
            "{tag}: phase {p} ({name}): held broken {}, new failed {}, new by server [{}], entries created by director [{}]",
            seen.broken.get(&p).copied().unwrap_or(0),
            seen.new_failed.get(&p).copied().unwrap_or(0),
            per_server.join(", "),
            per_director.join(", ")
        );
    }
    seen
}

/// No held connection broken; every director in the route took connections, and D3 none
/// while out of it. With `hashed` (`mh` and `--midflow-hash`): no new connection refused
/// either, and every phase spread its new connections over every server. With sync instead
/// (`wlc`), a connection opened in the last moments before its director left may not have
/// reached the others yet — the master sends a connection once it has seen `sync_threshold`
/// packets and flushes its buffer at the latest every 2 s, as the kernel's does — so new
/// connections failing there are reported, not refused (and `wlc` rightly sends short
/// connections to the server with the fewest held ones, so they do not spread).
fn check(seen: &Seen, hashed: bool) {
    assert_eq!(seen.broken.values().sum::<usize>(), 0, "held connections broken: {:?}", seen.broken);
    if hashed {
        assert_eq!(seen.new_failed.values().sum::<usize>(), 0, "new connections failed: {:?}", seen.new_failed);
    }
    for (p, (_, via)) in PHASES.iter().enumerate() {
        for d in *via {
            assert!(seen.created[p][*d] > 0, "phase {p}: D{} in the route took nothing", d + 1);
        }
    }
    assert_eq!(seen.created[1][2], 0, "D3 took connections while out of the route");
    for p in 0..PHASES.len() {
        for s in (1..=SERVERS).filter(|_| hashed) {
            assert!(seen.new.get(&(p, format!("rs{s}"))).is_some_and(|n| *n > 0), "phase {p}: nothing on rs{s}");
        }
    }
}

/// The rule file of every director: `sched` with `options` on the service line.
fn rules(sched: &str, options: &str, sync: bool) -> String {
    let mut r = format!("-A -t {VIP}:80 -s {sched}{options}\n");
    for s in 0..SERVERS {
        r += &format!("-a -t {VIP}:80 -r {}:80 -g -w 1\n", server_ip(s));
    }
    if sync {
        r += "--start-daemon master --mcast-interface eth0 --syncid 18\n";
        r += "--start-daemon backup --mcast-interface eth0 --syncid 18\n";
    }
    r
}

/// `mh` hashes the client's address alone unless `mh-port` (flag-2) adds its port: the lab's
/// clients share one address.
const MH: &str = " -b mh-port";
/// [`MH`] with lvs's rule-file spelling of `ServiceConfig::midflow_hash`.
const MH_MIDFLOW: &str = " -b mh-port --midflow-hash";

#[test]
fn mh_dr_without_sync_keeps_every_connection() {
    if !root::can_run(true, &NEEDS) {
        return;
    }
    check(&run_lab("mh", &rules("mh", MH_MIDFLOW, false)), true);
}

#[test]
fn wlc_dr_with_sync_keeps_every_connection() {
    if !root::can_run(true, &NEEDS) {
        return;
    }
    check(&run_lab("wlc", &rules("wlc", "", true)), false);
}

/// The lab sees what it is there to see: without `--midflow-hash` or sync, the flows that the
/// route moves to another director are answered with resets (the kernel's behaviour without
/// `sloppy_tcp`), and the held connections among them break.
#[test]
fn mh_dr_without_the_option_breaks_moved_connections() {
    if !root::can_run(true, &NEEDS) {
        return;
    }
    let seen = run_lab("plain", &rules("mh", MH, false));
    assert!(seen.broken.get(&1).is_some_and(|n| *n > 0), "no connection broke when D3 left: {:?}", seen.broken);
}
