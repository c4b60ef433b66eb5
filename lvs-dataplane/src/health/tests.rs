//! The prober over loopback, one checker kind per test, against servers each test runs on its
//! own threads (nothing leaves 127.0.0.0/8): TCP up, refused, from a bound source, and timing
//! out against a full accept queue; HTTP status, digest and text; HTTPS; SMTP; UDP refused and
//! answered; DNS; ICMP echo; check programs' exits, kill at the deadline and a missing program;
//! and the concurrency bound.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use lvs_core::addr::{Endpoint, Proto, ServiceKey};
use lvs_core::dest::{FwdMethod, RealServer};
use lvs_core::health::{
    dns::qtype, CheckPlan, DnsCheck, HttpCheck, MiscCheck, PingCheck, ServerId, ServicePolicy, SmtpCheck, TcpCheck,
    UdpCheck,
};
use lvs_core::service::ServiceConfig;
use lvs_core::{Director, DirectorConfig};

use super::*;

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The monotonic clock as the monitor's time.
#[derive(Clone, Copy)]
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_std(std::time::Instant::now(), self.0)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock(std::time::Instant::now())
    }
}

/// A probe of `check` against `target`, due now, with `timeout`.
fn probe(clock: &Clock, check: Check, target: Endpoint, timeout: Duration) -> Probe {
    let now = clock.now();
    Probe {
        id: ProbeId(1),
        server: ServerId(0),
        check_index: 0,
        target,
        bindto: None,
        bind_port: None,
        due: now,
        deadline: now + timeout,
        nonce: 0x0123_4567_89ab_cdef,
        check: Arc::new(check),
    }
}

/// Runs one probe to its result (bounded: the probe's own deadline ends it).
fn run(clock: &Clock, p: Probe) -> Outcome {
    let mut prober = Prober::new(4).unwrap();
    prober.start(clock.now(), p);
    for _ in 0..10_000 {
        if let Some((id, o)) = prober.next_result() {
            assert_eq!(id, ProbeId(1));
            assert_eq!(prober.in_flight(), 0);
            return o;
        }
        let now = clock.now();
        let wait = prober.next_deadline(now).map_or(Duration::from_millis(50), |t| t.saturating_since(now));
        prober.wait(wait.min(Duration::from_millis(50))).unwrap();
        prober.poll(clock.now()).unwrap();
    }
    panic!("no result");
}

fn check(c: Check, port: u16) -> Outcome {
    let clock = Clock::default();
    run(&clock, probe(&clock, c, Endpoint::new(LO.into(), port), Duration::from_secs(3)))
}

/// A port on loopback that nothing listens on (bound, read, closed).
fn closed_tcp_port() -> u16 {
    TcpListener::bind((LO, 0)).unwrap().local_addr().unwrap().port()
}

/// An HTTP server answering `n` requests with `reply`, each after reading the request head.
fn http_server(reply: &'static [u8], n: usize) -> u16 {
    let l = TcpListener::bind((LO, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in l.incoming().take(n) {
            let mut c = conn.unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = c.write_all(reply);
        }
    });
    port
}

const PAGE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>served by rs1</html>";

#[test]
fn tcp_connect_up_and_refused() {
    let l = TcpListener::bind((LO, 0)).unwrap();
    assert_eq!(check(Check::Tcp(TcpCheck), l.local_addr().unwrap().port()), Outcome::up(Detail::Passed));
    assert_eq!(check(Check::Tcp(TcpCheck), closed_tcp_port()), Outcome::down(Detail::Refused));
}

#[test]
fn tcp_connect_from_bindto_and_bind_port() {
    let l = TcpListener::bind((LO, 0)).unwrap();
    let clock = Clock::default();
    let source_port = closed_tcp_port();
    let mut p = probe(
        &clock,
        Check::Tcp(TcpCheck),
        Endpoint::new(LO.into(), l.local_addr().unwrap().port()),
        Duration::from_secs(3),
    );
    p.bindto = Some(Ipv4Addr::new(127, 0, 0, 2).into());
    p.bind_port = Some(source_port);
    assert_eq!(run(&clock, p), Outcome::up(Detail::Passed));
    let (_, peer) = l.accept().unwrap();
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 2], source_port)));
}

#[test]
fn tcp_connect_times_out_against_a_full_accept_queue() {
    // A backlog of 0 takes one connection; the kernel drops the SYNs after it unanswered.
    let l = TcpListener::bind((LO, 0)).unwrap();
    sys::set_backlog(&l, 0).unwrap();
    let target = l.local_addr().unwrap();
    let fillers: Vec<TcpStream> = (0..4).map(|_| sys::tcp_connect(&target, None).unwrap()).collect();
    thread::sleep(Duration::from_millis(50));
    let clock = Clock::default();
    let start = std::time::Instant::now();
    let p = probe(&clock, Check::Tcp(TcpCheck), Endpoint::new(LO.into(), target.port()), Duration::from_millis(300));
    assert_eq!(run(&clock, p), Outcome::down(Detail::Timeout));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(900), "{took:?}");
    drop(fillers);
}

#[test]
fn http_status_digest_and_expected_text() {
    assert_eq!(check(Check::Http(HttpCheck::get("/")), http_server(PAGE, 1)), Outcome::up(Detail::Status(200)));
    let missing = b"HTTP/1.0 404 Not Found\r\n\r\n";
    assert_eq!(check(Check::Http(HttpCheck::get("/")), http_server(missing, 1)), Outcome::down(Detail::Status(404)));
    // md5("<html>served by rs1</html>"), as keepalived's genhash prints it.
    let digest = HttpCheck::parse_digest(&md5_hex(b"<html>served by rs1</html>")).unwrap();
    let good = HttpCheck::get("/").with_digest(digest);
    assert_eq!(check(Check::Http(good), http_server(PAGE, 1)), Outcome::up(Detail::Status(200)));
    let bad = HttpCheck::get("/").with_digest([0; 16]);
    assert_eq!(check(Check::Http(bad), http_server(PAGE, 1)), Outcome::down(Detail::DigestMismatch));
    let text = HttpCheck::get("/").with_expect(b"served by rs1");
    assert_eq!(check(Check::Http(text), http_server(PAGE, 1)), Outcome::up(Detail::Status(200)));
    let other = HttpCheck::get("/").with_expect(b"served by rs2");
    assert_eq!(check(Check::Http(other), http_server(PAGE, 1)), Outcome::down(Detail::NoMatch));
    assert_eq!(check(Check::Http(HttpCheck::get("/")), closed_tcp_port()), Outcome::down(Detail::Refused));
}

/// The MD5 of `data` in hex, from `md5sum` (coreutils), so the test does not trust the core's
/// own digest to check the core's own digest.
fn md5_hex(data: &[u8]) -> String {
    let mut child = Command::new("md5sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..32].to_string()
}

#[test]
fn http_reads_a_large_page_to_its_end() {
    let mut page = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    page.extend(std::iter::repeat_n(b'x', 1 << 20));
    page.extend_from_slice(b"THE END");
    let page: &'static [u8] = page.leak();
    let c = HttpCheck::get("/").with_expect(b"THE END");
    assert_eq!(check(Check::Http(c), http_server(page, 1)), Outcome::up(Detail::Status(200)));
}

#[cfg(feature = "tls")]
#[test]
fn https_through_rustls() {
    let cert = rcgen::generate_simple_self_signed(vec!["rs1.example".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let config = Arc::new(config);
    let l = TcpListener::bind((LO, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        tls.write_all(PAGE).unwrap();
        tls.conn.send_close_notify();
        let _ = tls.flush();
        let sni = tls.conn.server_name().map(str::to_string);
        (String::from_utf8(head).unwrap(), sni)
    });
    let c = HttpCheck::get("/secure").with_tls().with_virtualhost("rs1.example").with_expect(b"rs1");
    assert_eq!(check(Check::Http(c), port), Outcome::up(Detail::Status(200)));
    let (head, sni) = server.join().unwrap();
    assert!(head.starts_with("GET /secure HTTP/1.0\r\nHost: rs1.example\r\n"), "{head}");
    assert_eq!(sni.as_deref(), Some("rs1.example"));
    // TLS to a server speaking plain HTTP fails with the TLS error.
    let plain = check(Check::Http(HttpCheck::get("/").with_tls()), http_server(PAGE, 1));
    assert!(!plain.up && matches!(&plain.reason, Detail::Io(m) if m.starts_with("tls: ")), "{plain:?}");
}

#[test]
fn smtp_greeting_helo_quit() {
    let l = TcpListener::bind((LO, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut said = Vec::new();
        c.write_all(b"220 mx ESMTP\r\n").unwrap();
        for reply in [&b"250-mx hello\r\n250 SIZE 1000\r\n"[..], b"221 bye\r\n"] {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            said.push(line);
            c.write_all(reply).unwrap();
        }
        said
    });
    assert_eq!(check(Check::Smtp(SmtpCheck::new("director.example")), port), Outcome::up(Detail::Status(250)));
    assert_eq!(server.join().unwrap(), ["HELO director.example\r\n", "QUIT\r\n"]);
}

#[test]
fn udp_refused_by_icmp_and_answered() {
    let closed = UdpSocket::bind((LO, 0)).unwrap().local_addr().unwrap().port();
    assert_eq!(check(Check::Udp(UdpCheck::new(b"hello")), closed), Outcome::down(Detail::Refused));
    let echo = UdpSocket::bind((LO, 0)).unwrap();
    let port = echo.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..2 {
            let (n, from) = echo.recv_from(&mut buf).unwrap();
            let mut reply = b"PONG ".to_vec();
            reply.extend_from_slice(&buf[..n]);
            echo.send_to(&reply, from).unwrap();
        }
    });
    let strict = UdpCheck::new(b"ping").with_reply(b"PONG");
    assert_eq!(check(Check::Udp(strict), port), Outcome::up(Detail::Passed));
    let wrong = UdpCheck::new(b"ping").with_reply(b"OK");
    assert_eq!(check(Check::Udp(wrong), port), Outcome::down(Detail::NoMatch));
}

#[test]
fn udp_silence_passes_at_the_deadline() {
    let quiet = UdpSocket::bind((LO, 0)).unwrap();
    let clock = Clock::default();
    let c = Check::Udp(UdpCheck::new(b"hello"));
    let p = probe(&clock, c, Endpoint::new(LO.into(), quiet.local_addr().unwrap().port()), Duration::from_millis(100));
    assert_eq!(run(&clock, p), Outcome::up(Detail::Silence));
}

/// A DNS responder answering each query with `rcode` and one answer (or none for NXDOMAIN),
/// `n` times.
fn dns_responder(n: usize) -> u16 {
    let s = UdpSocket::bind((LO, 0)).unwrap();
    let port = s.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..n {
            let (len, from) = s.recv_from(&mut buf).unwrap();
            let q = &buf[..len];
            // The name decides: "missing." gets NXDOMAIN, anything else one A record.
            let nx = q.windows(7).any(|w| w == b"missing");
            let mut r = q.to_vec();
            r[2] = 0x81;
            r[3] = if nx { 0x83 } else { 0x80 };
            r[7] = u8::from(!nx);
            if !nx {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 11]);
            }
            // A stray reply with another ID first: the probe must keep waiting for its own.
            let mut stray = r.clone();
            stray[0] ^= 0xff;
            s.send_to(&stray, from).unwrap();
            s.send_to(&r, from).unwrap();
        }
    });
    port
}

#[test]
fn dns_query_answered_and_refused_by_rcode() {
    let port = dns_responder(3);
    let a = DnsCheck::new("www.example.org", qtype::A).with_answer_required();
    assert_eq!(check(Check::Dns(a), port), Outcome::up(Detail::Passed));
    assert_eq!(check(Check::Dns(DnsCheck::new("missing.example", qtype::A)), port), Outcome::down(Detail::Rcode(3)));
    assert_eq!(check(Check::Dns(DnsCheck::default()), port), Outcome::up(Detail::Passed));
}

#[test]
fn icmp_echo_to_loopback() {
    let o = check(Check::Ping(PingCheck), 0);
    match &o.reason {
        // Neither a ping socket nor a raw one is allowed here: the check says so.
        Detail::Io(m) if m.starts_with("no ICMP socket") => eprintln!("SKIPPED: {m}"),
        _ => assert_eq!(o, Outcome::up(Detail::Passed)),
    }
}

#[test]
fn echo_request_checksum() {
    let m = echo_request(false, 0x0102_0304_0506_0708, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!((&m[..2], &m[4..8]), (&[8, 0][..], &[0x05, 0x06, 0x07, 0x08][..]), "echo request, id and sequence");
    // The one's-complement sum of a message with its checksum is all ones.
    let sum: u32 = m.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
    assert_eq!(echo_request(true, 1, b"x")[..4], [128, 0, 0, 0]);
}

#[test]
fn misc_exit_codes_and_missing_program() {
    let sh = |script: &str| MiscCheck::new("/bin/sh", &["-c", script]);
    assert_eq!(check(Check::Misc(sh("exit 0")), 0), Outcome::up(Detail::Exit(0)));
    assert_eq!(check(Check::Misc(sh("exit 3")), 0), Outcome::down(Detail::Exit(3)));
    assert_eq!(check(Check::Misc(sh("exit 7").with_dynamic_weight()), 0), Outcome::up(Detail::Exit(7)).with_weight(5));
    assert_eq!(check(Check::Misc(sh("kill -TERM $$")), 0), Outcome::down(Detail::Signal(libc::SIGTERM)));
    let missing = check(Check::Misc(MiscCheck::new("/nonexistent/check-rs1", &[])), 0);
    assert!(!missing.up);
    assert_eq!(missing.reason.to_string(), "cannot run /nonexistent/check-rs1: No such file or directory (os error 2)");
}

#[test]
fn misc_hanging_program_is_killed_with_its_children_at_the_deadline() {
    let dir = std::env::temp_dir().join(format!("lvs-misc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("grandchild.pid");
    // The script starts a grandchild that would outlive it, then hangs.
    let script = format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display());
    let clock = Clock::default();
    let start = std::time::Instant::now();
    let c = Check::Misc(MiscCheck::new("/bin/sh", &["-c", &script]));
    let p = probe(&clock, c, Endpoint::new(LO.into(), 0), Duration::from_millis(400));
    assert_eq!(run(&clock, p), Outcome::down(Detail::Timeout));
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    // The grandchild was killed with its group (it may linger a moment as a zombie of init).
    let gone = (0..100).any(|_| {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = state.split(") ").nth(1).is_some_and(|s| !s.starts_with('Z'));
        if alive {
            thread::sleep(Duration::from_millis(10));
        }
        !alive
    });
    assert!(gone, "grandchild {pid} still running");
    let _ = std::fs::remove_dir_all(dir);
}

fn key() -> ServiceKey {
    ServiceKey::Inet { proto: Proto::Tcp, addr: "203.0.113.100".parse().unwrap(), port: 80 }
}

fn director() -> Director {
    let mut d = Director::new(DirectorConfig::default(), lvs_core::testkit::factory);
    d.add_service(ServiceConfig::new(key(), "first")).unwrap();
    d
}

#[test]
fn probes_in_flight_never_exceed_the_bound() {
    // 40 servers whose checks all hang (a full accept queue) until their timeout.
    let l = TcpListener::bind((LO, 0)).unwrap();
    sys::set_backlog(&l, 0).unwrap();
    let target = l.local_addr().unwrap();
    let _fillers: Vec<TcpStream> = (0..4).map(|_| sys::tcp_connect(&target, None).unwrap()).collect();
    thread::sleep(Duration::from_millis(50));
    let clock = Clock::default();
    let mut d = director();
    let mut m = Monitor::new(3);
    let plan = CheckPlan::new(Check::Tcp(TcpCheck))
        .with_interval(Duration::from_secs(10))
        .with_timeout(Duration::from_millis(100))
        .with_connect(Some(LO.into()), Some(target.port()))
        .with_warmup(Duration::ZERO);
    let servers = (0..40u8).map(|i| (RealServer::new([192, 0, 2, i].into(), 80, FwdMethod::Route, 1), plan.clone()));
    m.add_service(&mut d, clock.now(), key(), ServicePolicy::default(), servers).unwrap();
    let mut h = HealthChecker::with_max_in_flight(m, 8).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while h.prober().stats().started < 40 && std::time::Instant::now() < end {
        h.poll(clock.now(), &mut d).unwrap();
        assert!(h.prober().in_flight() <= 8);
        let now = clock.now();
        let wait = h.next_deadline(now).map_or(Duration::from_millis(10), |t| t.saturating_since(now));
        h.prober().wait(wait.min(Duration::from_millis(10))).unwrap();
    }
    let s = h.prober().stats();
    assert_eq!((s.started, s.peak_in_flight), (40, 8), "{s:?}");
    // Five waves of 8 at 100 ms each: the last wave started about 400 ms late.
    assert!(s.worst_lateness >= Duration::from_millis(350), "{s:?}");
}

#[test]
fn a_suspicion_from_the_data_path_brings_the_next_check_forward() {
    use lvs_core::director::{Suspicion, Symptom as Seen};
    use lvs_core::health::Passive;

    let clock = Clock::default();
    let now = clock.now();
    let mut d = director();
    let rs = RealServer::new([192, 0, 2, 11].into(), 80, FwdMethod::Route, 1);
    let plan = CheckPlan::new(Check::Tcp(TcpCheck)).with_interval(Duration::from_secs(60));
    let passive = Passive { enabled: true, unanswered_syns: 2, min_gap: Duration::ZERO };
    let policy = ServicePolicy { passive, ..ServicePolicy::default() };
    let mut m = Monitor::new(1);
    m.add_service(&mut d, now, key(), policy, [(rs, plan)]).unwrap();
    let mut h = HealthChecker::new(m).unwrap();
    let first = h.next_deadline(now).unwrap();
    let seen = |symptom| Suspicion { service: key(), server: Endpoint::new(rs.endpoint.addr, 80), symptom };
    assert!(!h.suspect(now, &seen(Seen::SynRetransmitted)), "one retransmitted SYN is not enough");
    assert!(h.suspect(now, &seen(Seen::SynRetransmitted)));
    assert!(h.next_deadline(now).unwrap() < first);
    let stranger = Suspicion { server: Endpoint::new([192, 0, 2, 99].into(), 80), ..seen(Seen::SynReset) };
    assert!(!h.suspect(now, &stranger));
}
