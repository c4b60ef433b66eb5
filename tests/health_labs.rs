//! The health lab (root; CI runs as root): the DR namespace lab of `examples/common/netns_lab.rs`
//! with the director — this library on AF_PACKET — checking its three real servers' HTTP
//! servers from its own loop (`Runtime::with_health`), and a fourth server as the sorry server.
//! A client fetches the VIP with `curl` in a loop while the lab:
//!
//! 1. stops a DNS responder (a Rust one, in rs1's namespace) and sets a flag a `MISC_CHECK`
//!    script reads: the DNS service's server and the MISC-checked one go down, and come back
//!    when the responder restarts and the flag goes;
//! 2. kills rs2's HTTP server: it must leave rotation within `interval × fall + timeout` (3 s
//!    here), and requests may fail only inside that detection window;
//! 3. restarts it: it rejoins after `rise` passes, and its weight ramps (slow start);
//! 4. kills all three: the sorry server answers.
//!
//! It prints the measured times, the failed requests and the weights over time. Without root
//! (or `ip`, `curl`, `python3`, `sysctl`) it fails under CI and says it was skipped elsewhere.

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

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use lvs::core::addr::{Endpoint, Proto, ServiceKey};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::health::{dns::qtype, Check, CheckPlan, DnsCheck, Event, HttpCheck, MiscCheck, Monitor, ServicePolicy};
use lvs::dataplane::afpacket::{AfPacket, AfPacketConfig};
use lvs::dataplane::health::HealthChecker;
use lvs::dataplane::runtime::{MonotonicClock, Runtime};

use lab::{Mode, VIP};
use netns::Netns;
use netns_lab::{lab_director, Topology};

/// The checks of the web service: every second, a 1 s timeout, down after two failures in a
/// row (the second 0.5 s after the first), up after two passes.
const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(1);
const FASTINTER: Duration = Duration::from_millis(500);
const RISE: u32 = 2;
const FALL: u32 = 2;
const SLOW_START: Duration = Duration::from_secs(4);
const WEIGHT: u32 = 10;

fn vip() -> IpAddr {
    Ipv4Addr::from(VIP).into()
}

fn svc(proto: Proto, port: u16) -> ServiceKey {
    ServiceKey::Inet { proto, addr: vip(), port }
}

fn rs(i: u8, port: u16) -> RealServer {
    RealServer::new(Ipv4Addr::new(192, 0, 2, 11 + i).into(), port, FwdMethod::Route, WEIGHT)
}

/// What the director's thread tells the lab.
enum Msg {
    Event(StdInstant, Event),
    /// The web service's table: (real server index, weight), every 250 ms.
    Weights(StdInstant, Vec<(usize, u32)>),
}

/// A DNS responder on `0.0.0.0:53` in `ns` until `stop`: each query gets one A record.
fn dns_responder(ns: &Netns, stop: &AtomicBool) -> Result<(), String> {
    ns.enter().map_err(|e| e.to_string())?;
    let s = UdpSocket::bind(("0.0.0.0", 53)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(50))).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = s.recv_from(&mut buf) else { continue };
        if len < 12 {
            continue;
        }
        let mut r = buf[..len].to_vec();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 11]);
        let _ = s.send_to(&r, from);
    }
    Ok(())
}

/// The director: this library on AF_PACKET with the health checker in its loop, until `stop`.
fn direct(ns: &Netns, misc_script: &str, tx: &mpsc::Sender<Msg>, stop: &AtomicBool) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    ns.enter().map_err(|e| err(&e))?;
    let clock = MonotonicClock::default();
    let mut d = lab_director(Mode::Dr, 4, true);
    let web = svc(Proto::Tcp, 80);
    lvs::core::config::restore(
        &mut d,
        &format!("-A -t {0}:80 -s wrr\n-A -u {0}:53 -s rr\n-A -t {0}:8080 -s rr\n", Ipv4Addr::from(VIP)),
    )
    .map_err(|e| err(&e))?;
    let mut m = Monitor::new(0x5eed);
    let http = CheckPlan::new(Check::Http(HttpCheck::get("/").with_expect(b"rs")))
        .with_interval(INTERVAL)
        .with_timeout(TIMEOUT)
        .with_retry(FALL - 1, FASTINTER)
        .with_rise_fall(RISE, FALL)
        .with_warmup(Duration::ZERO);
    let policy = ServicePolicy { sorry_server: Some(rs(3, 80)), slow_start: SLOW_START, ..ServicePolicy::default() };
    let now = clock.now();
    m.add_service(&mut d, now, web, policy, (0..3).map(|i| (rs(i, 80), http.clone()))).map_err(|e| err(&e))?;
    let fast = |c: Check| {
        CheckPlan::new(c)
            .with_interval(Duration::from_millis(500))
            .with_timeout(Duration::from_millis(500))
            .with_rise_fall(1, 1)
            .with_warmup(Duration::ZERO)
    };
    let dns = fast(Check::Dns(DnsCheck::new("www.example.org", qtype::A).with_answer_required()));
    m.add_service(&mut d, now, svc(Proto::Udp, 53), ServicePolicy::default(), [(rs(0, 53), dns)])
        .map_err(|e| err(&e))?;
    let misc = fast(Check::Misc(MiscCheck::new("/bin/sh", &[misc_script])));
    m.add_service(&mut d, now, svc(Proto::Tcp, 8080), ServicePolicy::default(), [(rs(2, 8080), misc)])
        .map_err(|e| err(&e))?;
    let events = Mutex::new(tx.clone());
    let checker = HealthChecker::new(m).map_err(|e| err(&e))?.on_event(move |e| {
        let _ = events.lock().map(|t| t.send(Msg::Event(StdInstant::now(), e)));
    });
    let port = AfPacket::open("eth0", AfPacketConfig::default()).map_err(|e| err(&e))?;
    let mut rt = Runtime::new(d, vec![Box::new(port)]).with_health(checker);
    let handle = rt.stop_handle();
    let mut sampled = StdInstant::now();
    rt.run_with(&clock, |rt| {
        if stop.load(Ordering::Relaxed) {
            handle.stop();
        }
        if sampled.elapsed() >= Duration::from_millis(250) {
            sampled = StdInstant::now();
            let weights = rt
                .director()
                .service(&web)
                .map(|s| {
                    let mut w: Vec<(usize, u32)> = s
                        .dests
                        .dests()
                        .filter_map(|v| match v.endpoint().addr {
                            IpAddr::V4(a) => Some((usize::from(a.octets()[3] - 11), v.weight())),
                            IpAddr::V6(_) => None,
                        })
                        .collect();
                    w.sort_unstable();
                    w
                })
                .unwrap_or_default();
            let _ = tx.send(Msg::Weights(sampled, weights));
        }
    })
    .map_err(|e| err(&e))?;
    Ok(())
}

/// One request of the client loop: when it started and ended, and who answered.
struct Request {
    start: StdInstant,
    end: StdInstant,
    body: Option<String>,
}

/// Fetches the VIP from the client until `stop`.
fn client_loop(client: &Netns, stop: &AtomicBool) -> Vec<Request> {
    let url = format!("http://{}/", Ipv4Addr::from(VIP));
    let mut out = Vec::new();
    // Bounded: the lab stops it within a minute; the count bounds it too.
    while !stop.load(Ordering::Relaxed) && out.len() < 20_000 {
        let start = StdInstant::now();
        let body = client.exec("curl", &["-s", "--max-time", "2", &url]).ok().map(|b| b.trim().to_string());
        out.push(Request { start, end: StdInstant::now(), body });
    }
    out
}

/// Waits for the first event `want` accepts, taking weight samples on the way.
fn wait_for(
    rx: &mpsc::Receiver<Msg>,
    log: &mut Vec<(StdInstant, Event)>,
    weights: &mut Vec<(StdInstant, Vec<(usize, u32)>)>,
    limit: Duration,
    want: impl Fn(&Event) -> bool,
) -> Option<StdInstant> {
    let end = StdInstant::now() + limit;
    while let Some(left) = end.checked_duration_since(StdInstant::now()) {
        match rx.recv_timeout(left) {
            Ok(Msg::Event(t, e)) => {
                let hit = want(&e);
                log.push((t, e));
                if hit {
                    return Some(t);
                }
            }
            Ok(Msg::Weights(t, w)) => weights.push((t, w)),
            Err(_) => return None,
        }
    }
    None
}

fn is_down(e: &Event, addr: [u8; 4], port: u16) -> bool {
    matches!(e, Event::ServerDown { endpoint, .. } if *endpoint == Endpoint::new(Ipv4Addr::from(addr).into(), port))
}

fn is_up(e: &Event, addr: [u8; 4], port: u16) -> bool {
    matches!(e, Event::ServerUp { endpoint, .. } if *endpoint == Endpoint::new(Ipv4Addr::from(addr).into(), port))
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[test]
fn health_checks_take_servers_out_and_back_with_sorry_server() {
    if !root::can_run(true, &["ip", "curl", "python3", "sysctl"]) {
        return;
    }
    let never = AtomicBool::new(false);
    let topo = Topology::build(Mode::Dr, 4, "hc").unwrap();
    for i in 0..3 {
        topo.serve(i, &format!("rs{}", i + 1), &never).unwrap();
    }
    topo.serve(3, "sorry", &never).unwrap();
    let scratch = std::env::temp_dir().join(format!("lvs-health-lab-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let flag = scratch.join("maintenance");
    let script = scratch.join("check-rs3.sh");
    // The MISC_CHECK: up while no maintenance flag is set and rs3 serves its page.
    std::fs::write(
        &script,
        format!("[ ! -e {} ] && curl -sf -o /dev/null --max-time 1 http://192.0.2.13/\n", flag.display()),
    )
    .unwrap();
    let script = script.to_string_lossy().into_owned();

    let (tx, rx) = mpsc::channel();
    let (stop_all, stop_dns, stop_client) = (AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false));
    let lab_start = StdInstant::now();
    let mut log: Vec<(StdInstant, Event)> = Vec::new();
    let mut weights = Vec::new();
    let mut report = Vec::new();
    let (requests, measured) = std::thread::scope(|s| {
        let rs1 = &topo.servers[0].0;
        let mut dns = Some(s.spawn(|| dns_responder(rs1, &stop_dns)));
        let director = s.spawn(|| direct(&topo.director, &script, &tx, &stop_all));
        std::thread::sleep(Duration::from_millis(1500));
        let client = s.spawn(|| client_loop(&topo.client, &stop_client));
        let mut m = Measured::default();

        // 1. DNS responder stopped and the maintenance flag set: both go down, then come back.
        std::thread::sleep(Duration::from_millis(500));
        stop_dns.store(true, Ordering::Relaxed);
        if let Some(t) = dns.take() {
            t.join().unwrap().unwrap();
        }
        std::fs::write(&flag, b"").unwrap();
        let t = StdInstant::now();
        m.dns_down = wait_for(&rx, &mut log, &mut weights, Duration::from_secs(3), |e| is_down(e, [192, 0, 2, 11], 53))
            .map(|x| x - t);
        m.misc_down = log.iter().any(|(_, e)| is_down(e, [192, 0, 2, 13], 8080))
            || wait_for(&rx, &mut log, &mut weights, Duration::from_secs(3), |e| is_down(e, [192, 0, 2, 13], 8080))
                .is_some();
        stop_dns.store(false, Ordering::Relaxed);
        let dns = s.spawn(|| dns_responder(rs1, &stop_dns));
        std::fs::remove_file(&flag).unwrap();
        m.dns_up =
            wait_for(&rx, &mut log, &mut weights, Duration::from_secs(3), |e| is_up(e, [192, 0, 2, 11], 53)).is_some();
        m.misc_up = log.iter().any(|(_, e)| is_up(e, [192, 0, 2, 13], 8080))
            || wait_for(&rx, &mut log, &mut weights, Duration::from_secs(3), |e| is_up(e, [192, 0, 2, 13], 8080))
                .is_some();

        // 2. rs2's HTTP server killed.
        std::thread::sleep(Duration::from_millis(500));
        // The window opens as the kill starts (`ip netns pids` and `kill` take a while).
        let killed = StdInstant::now();
        topo.servers[1].0.kill_all();
        let down = wait_for(&rx, &mut log, &mut weights, Duration::from_secs(6), |e| is_down(e, [192, 0, 2, 12], 80));
        m.kill = Some(killed);
        m.down = down;
        std::thread::sleep(Duration::from_secs(1));

        // 3. Restarted: back after `rise` passes, its weight ramping.
        topo.serve(1, "rs2", &never).unwrap();
        let restarted = StdInstant::now();
        m.restart = Some(restarted);
        m.up = wait_for(&rx, &mut log, &mut weights, Duration::from_secs(6), |e| is_up(e, [192, 0, 2, 12], 80));
        let ramp_end = StdInstant::now() + SLOW_START + Duration::from_millis(500);
        let _ = wait_for(&rx, &mut log, &mut weights, ramp_end - StdInstant::now(), |_| false);

        // 4. All three killed: the sorry server takes over.
        m.all_killed = Some(StdInstant::now());
        for (ns, _) in &topo.servers[..3] {
            ns.kill_all();
        }
        m.sorry_in =
            wait_for(&rx, &mut log, &mut weights, Duration::from_secs(6), |e| matches!(e, Event::SorryServerIn { .. }));
        std::thread::sleep(Duration::from_millis(1500));

        stop_client.store(true, Ordering::Relaxed);
        let requests = client.join().unwrap();
        stop_all.store(true, Ordering::Relaxed);
        stop_dns.store(true, Ordering::Relaxed);
        director.join().unwrap().unwrap();
        dns.join().unwrap().unwrap();
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Event(t, e) => log.push((t, e)),
                Msg::Weights(t, w) => weights.push((t, w)),
            }
        }
        (requests, m)
    });
    let _ = std::fs::remove_dir_all(&scratch);
    drop(topo);

    for (t, e) in &log {
        report.push(format!("  {:>7}  {e}", secs(*t - lab_start)));
    }
    let m = measured;
    let kill = m.kill.unwrap();
    let detection = m.down.map(|d| d - kill);
    let failed: Vec<&Request> =
        requests.iter().filter(|r| !r.body.as_deref().is_some_and(|b| b.starts_with("rs") || b == "sorry")).collect();
    let in_window = |r: &&Request, from: StdInstant, to: Option<StdInstant>| {
        r.end >= from && to.is_none_or(|t| r.start <= t + Duration::from_millis(50))
    };
    let rs2_window: Vec<&&Request> = failed.iter().filter(|r| in_window(r, kill, m.down)).collect();
    let all_window: Vec<&&Request> =
        failed.iter().filter(|r| in_window(r, m.all_killed.unwrap(), m.sorry_in)).collect();
    let outside = failed.len() - rs2_window.len() - all_window.len();
    let rejoin = m.up.map(|u| u - m.restart.unwrap());
    let sorry_answers = requests.iter().filter(|r| r.body.as_deref() == Some("sorry")).count();
    println!("health lab: events");
    for line in &report {
        println!("{line}");
    }
    println!("health lab: {} requests", requests.len());
    println!(
        "  rs2 killed: left rotation after {} (bound interval x fall + timeout = {}), {} requests failed inside that window",
        detection.map_or("never".into(), secs),
        secs(INTERVAL * FALL + TIMEOUT),
        rs2_window.len()
    );
    println!(
        "  rs2 restarted: back after {} (rise {RISE}, fastinter {})",
        rejoin.map_or("never".into(), secs),
        secs(FASTINTER)
    );
    if let Some(up) = m.up {
        println!("  rs2 weight after it rejoined (slow start {}):", secs(SLOW_START));
        let until = m.all_killed.unwrap_or_else(StdInstant::now);
        // One sample a second, with rs2's share of the requests that started in that second.
        for (t, w) in weights.iter().filter(|(t, _)| *t >= up && *t < until).step_by(4) {
            let rs2 = w.iter().find(|(i, _)| *i == 1).map_or("-".into(), |(_, w)| w.to_string());
            let second: Vec<&Request> =
                requests.iter().filter(|r| r.start >= *t && r.start < *t + Duration::from_secs(1)).collect();
            let by_rs2 = second.iter().filter(|r| r.body.as_deref() == Some("rs2")).count();
            println!(
                "    +{}  rs2 weight {rs2:>2} of {WEIGHT}, answered {by_rs2} of the next second's {} requests",
                secs(*t - up),
                second.len()
            );
        }
    }
    println!(
        "  all killed: sorry server in after {}, {} requests failed inside that window, {} answered by the sorry server",
        m.sorry_in.map_or("never".into(), |t| secs(t - m.all_killed.unwrap())),
        all_window.len(),
        sorry_answers
    );
    println!("  DNS check: down {} after its responder stopped", m.dns_down.map_or("never".into(), secs));

    for r in failed.iter().filter(|r| !in_window(r, kill, m.down) && !in_window(r, m.all_killed.unwrap(), m.sorry_in)) {
        println!(
            "  failed outside the windows: {} to {} ({:?})",
            secs(r.start - lab_start),
            secs(r.end - lab_start),
            r.body
        );
    }
    let detection = detection.expect("rs2 never left rotation");
    assert!(detection <= INTERVAL * FALL + TIMEOUT, "detection took {detection:?}");
    assert_eq!(outside, 0, "requests failed outside the detection windows");
    assert!(rejoin.is_some(), "rs2 never came back");
    let ramp: Vec<u32> = weights
        .iter()
        .filter(|(t, _)| m.up.is_some_and(|u| *t >= u) && m.all_killed.is_some_and(|k| *t < k))
        .filter_map(|(_, w)| w.iter().find(|(i, _)| *i == 1).map(|(_, w)| *w))
        .collect();
    assert!(ramp.first().is_some_and(|w| *w < WEIGHT), "no ramp: {ramp:?}");
    assert!(ramp.windows(2).all(|p| p[0] <= p[1]) && ramp.last() == Some(&WEIGHT), "ramp: {ramp:?}");
    assert!(m.sorry_in.is_some(), "the sorry server never went in");
    assert!(sorry_answers > 0, "the sorry server never answered");
    assert!(m.dns_down.is_some() && m.dns_up, "DNS check: down {:?} up {}", m.dns_down, m.dns_up);
    assert!(m.misc_down && m.misc_up, "MISC check: down {} up {}", m.misc_down, m.misc_up);
    assert!(lab_start.elapsed() < Duration::from_secs(60));
}

/// The lab's times.
#[derive(Default)]
struct Measured {
    dns_down: Option<Duration>,
    dns_up: bool,
    misc_down: bool,
    misc_up: bool,
    kill: Option<StdInstant>,
    down: Option<StdInstant>,
    restart: Option<StdInstant>,
    up: Option<StdInstant>,
    all_killed: Option<StdInstant>,
    sorry_in: Option<StdInstant>,
}
