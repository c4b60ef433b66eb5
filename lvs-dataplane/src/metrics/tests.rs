//! The endpoint over loopback (nothing leaves 127.0.0.1): the exposition with its headers, the
//! error statuses, the client bound, the timeout on simulated time, and an answer larger than
//! the socket buffers to a client that does not read.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use super::*;

fn server() -> (MetricsServer, SocketAddr) {
    let s = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

/// Sends `request` and polls the server (at `now`, rendering `body`) until the client has the
/// whole answer; a bounded number of passes.
fn exchange(s: &mut MetricsServer, addr: SocketAddr, request: &[u8], body: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    c.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    for _ in 0..2000 {
        s.poll(Instant::ZERO, || body.to_string()).unwrap();
        match c.read(&mut buf) {
            Ok(0) => return String::from_utf8(got).unwrap(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no whole answer: {:?}", String::from_utf8_lossy(&got));
}

#[test]
fn get_metrics_answers_the_exposition_with_prometheus_headers() {
    let (mut s, addr) = server();
    let body = "# HELP x y\n# TYPE x gauge\nx 1\n";
    let got = exchange(&mut s, addr, b"GET /metrics HTTP/1.1\r\nHost: lb\r\nAccept: */*\r\n\r\n", body);
    let expected = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(got, expected);
    // A query string is allowed; HTTP/1.0 and a bare LF are read too.
    let got = exchange(&mut s, addr, b"GET /metrics?name[]=x HTTP/1.0\n\n", body);
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with(body), "{got}");
    assert_eq!(s.stats(), MetricsStats { scrapes: 2, ..MetricsStats::default() });
    assert_eq!(s.clients(), 0);
}

#[test]
fn other_paths_methods_and_garbage_are_refused() {
    let (mut s, addr) = server();
    let status = |s: &mut MetricsServer, req: &[u8]| {
        let got = exchange(s, addr, req, "never");
        assert!(!got.contains("never"), "{got}");
        got.lines().next().unwrap().to_string()
    };
    assert_eq!(status(&mut s, b"GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
    assert_eq!(status(&mut s, b"GET /metricsx HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
    assert_eq!(
        status(&mut s, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(status(&mut s, b"HELLO\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    assert_eq!(status(&mut s, b"GET /metrics SPDY/3\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    assert_eq!(status(&mut s, b"GET /metrics HTTP/1.1 extra\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    assert_eq!(status(&mut s, b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    let mut long = b"GET /metrics HTTP/1.1\r\n".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_REQUEST));
    assert_eq!(status(&mut s, &long), "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(s.stats(), MetricsStats { refused: 8, ..MetricsStats::default() });
}

#[test]
fn clients_beyond_the_bound_are_closed_and_idle_ones_time_out() {
    let (mut s, addr) = server();
    let idle: Vec<TcpStream> = (0..MAX_CLIENTS).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Half a request from each: never complete.
    for mut c in &idle {
        c.write_all(b"GET /met").unwrap();
    }
    let mut extra = TcpStream::connect(addr).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rendered = 0;
    for _ in 0..200 {
        s.poll(Instant::ZERO, || {
            rendered += 1;
            String::new()
        })
        .unwrap();
        if s.stats().turned_away == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!((s.clients(), s.stats().turned_away, rendered), (MAX_CLIENTS, 1, 0));
    // The one turned away sees its connection closed.
    let mut buf = [0u8; 16];
    assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)));
    // Just before the timeout they are kept; at it they go.
    let at = Instant::ZERO + CLIENT_TIMEOUT;
    s.poll(Instant::from_nanos(at.as_nanos() - 1), String::new).unwrap();
    assert_eq!(s.clients(), MAX_CLIENTS);
    s.poll(at, String::new).unwrap();
    assert_eq!((s.clients(), s.stats().timed_out), (0, MAX_CLIENTS as u64));
    for c in idle {
        let _ = c.shutdown(Shutdown::Both);
    }
}

#[test]
fn a_client_that_does_not_read_a_large_answer_holds_nothing_up() {
    let (mut s, addr) = server();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    // Far more than loopback's socket buffers take.
    let big = "x".repeat(64 << 20);
    for _ in 0..50 {
        s.poll(Instant::ZERO, || big.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!((s.clients(), s.stats().scrapes), (1, 1));
    // Meanwhile another client is served.
    let got = exchange(&mut s, addr, b"GET /metrics HTTP/1.1\r\n\r\n", "small\n");
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(s.clients(), 1);
    // The slow one goes at its deadline.
    s.poll(Instant::ZERO + CLIENT_TIMEOUT, String::new).unwrap();
    assert_eq!((s.clients(), s.stats().timed_out), (0, 1));
    drop(slow);
}
