//! The health checker at scale: many real servers (10,000 by default), each with a TCP check
//! every second, against listeners on as many ports of 127.0.0.1 (the kernel completes the
//! handshakes; nothing leaves loopback). One thread runs the checker; the example reports the
//! checks per second it sustained, the CPU that thread used per 1,000 checks/s, and the worst
//! lateness of a check (how long after it was due it started).
//!
//! ```text
//! cargo run --release --example health_scale -- [-n SERVERS] [-t SECONDS] [-m MAX_IN_FLIGHT]
//! ```
//!
//! Each listener is a descriptor: with a low `ulimit -n` the example checks as many servers
//! as it could open listeners for, and says so.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::ExitCode;
use std::time::{Duration, Instant as StdInstant};

use lvs::core::addr::{Proto, ServiceKey};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::health::{Check, CheckPlan, Monitor, ServicePolicy, State, TcpCheck};
use lvs::core::service::ServiceConfig;
use lvs::core::DirectorConfig;
use lvs::dataplane::health::HealthChecker;
use lvs::dataplane::runtime::MonotonicClock;

/// CPU time this thread has used (user + system), from `/proc/thread-self/stat` in clock ticks
/// of 10 ms (`USER_HZ`, 100 on Linux).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, f)| f.split(' ').collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After the command name: state is field 0, utime 11, stime 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn usage() -> ExitCode {
    eprintln!("usage: health_scale [-n SERVERS] [-t SECONDS] [-m MAX_IN_FLIGHT]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let (mut servers, mut seconds, mut max_in_flight) = (10_000usize, 20u64, 256usize);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let Some(v) = pair.get(1).and_then(|v| v.parse::<u64>().ok()) else { return usage() };
        match pair[0].as_str() {
            "-n" => servers = v as usize,
            "-t" => seconds = v.max(3),
            "-m" => max_in_flight = v as usize,
            _ => return usage(),
        }
    }
    let mut listeners = Vec::with_capacity(servers);
    while listeners.len() < servers {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("health_scale: {} listeners opened ({e}); checking that many", listeners.len());
                break;
            }
        }
    }
    let ports: Vec<u16> = listeners.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.port()).collect();
    let mut d = lvs::director(DirectorConfig::default().with_random_seeds());
    let key =
        ServiceKey::Inet { proto: Proto::Tcp, addr: "203.0.113.100".parse().unwrap_or(IpAddr::from([0; 4])), port: 80 };
    if let Err(e) = d.add_service(ServiceConfig::new(key, "rr")) {
        eprintln!("health_scale: {e}");
        return ExitCode::FAILURE;
    }
    let plan =
        CheckPlan::new(Check::Tcp(TcpCheck)).with_interval(Duration::from_secs(1)).with_timeout(Duration::from_secs(1));
    let rs = ports.iter().map(|p| (RealServer::new(Ipv4Addr::LOCALHOST.into(), *p, FwdMethod::Route, 1), plan.clone()));
    let clock = MonotonicClock::default();
    let mut m = Monitor::new(42);
    if let Err(e) = m.add_service(&mut d, clock.now(), key, ServicePolicy::default(), rs) {
        eprintln!("health_scale: {e}");
        return ExitCode::FAILURE;
    }
    let mut h = match HealthChecker::with_max_in_flight(m, max_in_flight) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("health_scale: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Warm-up: the first checks are spread over one interval.
    let start = StdInstant::now();
    let run = |h: &mut HealthChecker, d: &mut lvs::core::Director, until: StdInstant| {
        h.run(d, || clock.now(), || StdInstant::now() < until)
    };
    if let Err(e) = run(&mut h, &mut d, start + Duration::from_secs(2)) {
        eprintln!("health_scale: {e}");
        return ExitCode::FAILURE;
    }
    let startup = h.take_stats();
    let (cpu0, t0) = (thread_cpu(), StdInstant::now());
    if let Err(e) = run(&mut h, &mut d, t0 + Duration::from_secs(seconds - 2)) {
        eprintln!("health_scale: {e}");
        return ExitCode::FAILURE;
    }
    let (cpu, elapsed) = (thread_cpu() - cpu0, t0.elapsed());
    let s = h.take_stats();
    let checks = s.started;
    let rate = checks as f64 / elapsed.as_secs_f64();
    let up = h.monitor().services().flat_map(|v| v.servers().map(|s| s.state())).filter(|s| *s == State::Up).count();
    println!("health_scale: {} servers, TCP check every 1 s, at most {max_in_flight} in flight", ports.len());
    println!("  measured over {:.1} s after a 2 s warm-up", elapsed.as_secs_f64());
    println!("  checks: {checks} ({rate:.0}/s), {} passed, {} failed, {} timed out", s.passed, s.failed, s.timed_out);
    println!(
        "  CPU of the checker thread: {:.3} s = {:.1}% of a core, {:.1}% of a core per 1,000 checks/s",
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64() / (rate / 1000.0)
    );
    println!(
        "  worst lateness of a check: {:.2} ms (in the warm-up: {:.2} ms); peak in flight {}",
        s.worst_lateness.as_secs_f64() * 1e3,
        startup.worst_lateness.as_secs_f64() * 1e3,
        s.peak_in_flight
    );
    println!("  servers up at the end: {up} of {}", ports.len());
    drop(listeners);
    ExitCode::SUCCESS
}
