//! The SYN proxy through the director, packet by packet, with checksums checked by etherparse:
//! the cookie SYN-ACK and its options (Linux's cookie rules: no window scaling or SACK without
//! timestamps), no entry for a SYN, the cookie checked on the ACK (flow, time window, forged),
//! the SYN to the server with the client's options, the splice of sequence numbers,
//! timestamps and window scales both ways, held data, a refusing server, FullNAT's TOA on
//! the director's ACK, and the refusal of DR.

use alloc::vec::Vec;
use core::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::director::segs::{seen, Seen, Tcp};
use crate::proto::tcp::flags::{ACK, RST, SYN};
use crate::testkit::{self, DIRECTOR_MAC, GW_MAC};
use crate::{DirectorConfig, FwdMethod, MacAddr, Neighbour, PortConfig, RealServer, ServiceConfig, ServiceKey};

const RS_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const T0: Instant = Instant::from_secs(600);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn client() -> (IpAddr, u16) {
    (ip("198.51.100.2"), 40000)
}

fn vip() -> (IpAddr, u16) {
    (ip("203.0.113.100"), 80)
}

fn rs() -> (IpAddr, u16) {
    (ip("192.0.2.11"), 8080)
}

/// A director with one SYN-proxied service `vip:80` → `rs:8080` by `fwd`.
fn director(fwd: FwdMethod, defer: bool) -> Director {
    let cfg = DirectorConfig { synproxy_defer: defer, ..DirectorConfig::default() }
        .port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
    let mut d = Director::new(cfg, testkit::factory);
    d.set_gateway(crate::Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
    d.set_neighbour(rs().0, Neighbour { mac: MacAddr(RS_MAC), port: 0 });
    let key = ServiceKey::tcp(vip().0, 80);
    d.add_service(ServiceConfig { synproxy: true, ..ServiceConfig::new(key, "first") }).unwrap();
    d.add_dest(&key, RealServer::new(rs().0, 8080, fwd, 1)).unwrap();
    if fwd == FwdMethod::FullNat {
        d.add_laddr(&key, ip("192.0.2.200")).unwrap();
    }
    d
}

fn at(d: &mut Director, now: Instant, t: &Tcp<'_>) -> (Verdict, Frame) {
    let mut f = t.frame();
    let v = d.process(now, &mut f);
    (v, f)
}

fn pass(d: &mut Director, now: Instant, t: &Tcp<'_>) -> Seen {
    let (v, f) = at(d, now, t);
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    seen(&f)
}

/// Linux's SYN options: mss 1460, sackOK, TS, nop, wscale 7.
fn linux_syn_opts(tsval: u32) -> Vec<u8> {
    let mut b = [0u8; 24];
    let n = sx::TcpOpts { mss: Some(1460), wscale: Some(7), sack: true, ts: Some((tsval, 0)) }.emit(&mut b);
    b[..n].to_vec()
}

fn ts_opt(tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut b = [0u8; 24];
    let n = sx::TcpOpts { ts: Some((tsval, tsecr)), ..sx::TcpOpts::default() }.emit(&mut b);
    b[..n].to_vec()
}

fn syn<'a>(opts: &'a [u8]) -> Tcp<'a> {
    Tcp { src: client(), dst: vip(), fl: SYN, seq: 1000, ack: 0, win: 64240, opts, payload: b"" }
}

#[test]
fn a_syn_gets_a_cookie_and_leaves_nothing() {
    let mut d = director(FwdMethod::Masq, false);
    let o = linux_syn_opts(100);
    let sa = pass(&mut d, T0, &syn(&o));
    assert_eq!((sa.src, sa.dst, sa.fl, sa.ack), (vip(), client(), SYN | ACK, 1001));
    // The director's MSS, SACK and window scale offered back, the timestamp echoed with the
    // cookie's option bits in the value's low six bits (wscale 7, SACK).
    let (tsval, tsecr) = sa.opts.ts.unwrap();
    assert_eq!((sa.opts.mss, sa.opts.wscale, sa.opts.sack, tsecr), (Some(1452), Some(7), true, 100));
    assert_eq!(tsval & 0x3f, 7 | 1 << 4);
    assert!(d.connections(T0).is_empty());
    // Without timestamps there is nowhere to keep window scaling and SACK: only the MSS.
    let sa = pass(&mut d, T0, &syn(&[2, 4, 5, 0xb4, 4, 2, 1, 3, 3, 7]));
    assert_eq!(sa.opts, sx::TcpOpts { mss: Some(1452), ..sx::TcpOpts::default() });
    assert_eq!(d.synproxy_stats().cookies_sent, 2);
}

/// The client's half of a handshake: returns the cookie and what the server got.
fn handshake(d: &mut Director, ack_payload: &[u8]) -> (u32, Seen) {
    let o = linux_syn_opts(100);
    let sa = pass(d, T0, &syn(&o));
    let (cookie, tsd) = (sa.seq, sa.opts.ts.unwrap().0);
    let ack_opts = ts_opt(101, tsd);
    let ack = Tcp { fl: ACK, seq: 1001, ack: cookie + 1, win: 502, opts: &ack_opts, payload: ack_payload, ..syn(&o) };
    let s = pass(d, T0, &ack);
    (cookie, s)
}

#[test]
fn a_good_ack_opens_the_connection_and_the_halves_are_spliced() {
    let mut d = director(FwdMethod::Masq, false);
    let (cookie, s) = handshake(&mut d, b"");
    // The server gets the client's SYN: its sequence number and its options, as the cookie
    // proved them (MSS from the table, wscale and SACK from the timestamp bits).
    assert_eq!((s.src, s.dst, s.fl, s.seq), (client(), rs(), SYN, 1000));
    assert_eq!(s.opts, sx::TcpOpts { mss: Some(1460), wscale: Some(7), sack: true, ts: Some((101, 0)) });
    assert_eq!(d.connections(T0).len(), 1);
    // The server answers with its own numbers, timestamps and a window scale of 5.
    let mut b = [0u8; 24];
    let n = sx::TcpOpts { mss: Some(1400), wscale: Some(5), sack: true, ts: Some((9000, 101)) }.emit(&mut b);
    let sa =
        Tcp { src: rs(), dst: client(), fl: SYN | ACK, seq: 5000, ack: 1001, win: 65535, opts: &b[..n], payload: b"" };
    // The director completes the server's handshake for the client.
    let a = pass(&mut d, T0, &sa);
    assert_eq!((a.src, a.dst, a.fl, a.seq, a.ack, a.win), (client(), rs(), ACK, 1001, 5001, 502));
    assert_eq!(a.opts.ts, Some((101, 9000)));
    // Server data reaches the client in the director's numbers: sequence moved to the cookie,
    // timestamp into the clock the cookie started, window from scale 5 into scale 7.
    let t = ts_opt(9001, 101);
    let data = Tcp { src: rs(), dst: client(), fl: ACK, seq: 5001, ack: 1001, win: 100, opts: &t, payload: b"hello" };
    let c = pass(&mut d, T0, &data);
    assert_eq!(
        (c.src, c.dst, c.seq, c.ack, c.win, c.payload.as_slice()),
        (vip(), client(), cookie + 1, 1001, 25, &b"hello"[..])
    );
    let (ctsval, ctsecr) = c.opts.ts.unwrap();
    assert_eq!(ctsecr, 101);
    // The client's ack and echo go back into the server's numbers; its window (scale 7 both
    // ways) stays.
    let t = ts_opt(102, ctsval);
    let ca = Tcp { fl: ACK, seq: 1001, ack: cookie + 6, win: 10, opts: &t, payload: b"", ..syn(&[]) };
    let s = pass(&mut d, T0, &ca);
    assert_eq!((s.dst, s.ack, s.win, s.opts.ts), (rs(), 5006, 10, Some((102, 9001))));
    assert_eq!(d.synproxy_stats().cookies_good, 1);
}

#[test]
fn forged_late_and_misdirected_acks_create_nothing() {
    let mut d = director(FwdMethod::Masq, false);
    let o = linux_syn_opts(100);
    let sa = pass(&mut d, T0, &syn(&o));
    let t = ts_opt(101, sa.opts.ts.unwrap().0);
    let ack = |seq, ack, src| Tcp { src, fl: ACK, seq, ack, win: 502, opts: &t, payload: b"", ..syn(&[]) };
    for (now, a) in [
        (T0, ack(1001, 0xdead_beef, client())),
        (T0, ack(1001, sa.seq + 1, (client().0, 40001))),
        (T0, ack(1001, sa.seq + 1, (ip("198.51.100.3"), 40000))),
        (Instant::from_secs(600 + 180), ack(1001, sa.seq + 1, client())),
    ] {
        let (v, _) = at(&mut d, now, &a);
        assert_eq!(v, Verdict::Drop(Reason::BadCookie));
    }
    assert!(d.connections(T0).is_empty());
    assert_eq!(d.synproxy_stats().cookies_bad, 4);
    // The same ACK a minute later is still good.
    let (v, _) = at(&mut d, Instant::from_secs(600 + 61), &ack(1001, sa.seq + 1, client()));
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
}

#[test]
fn data_with_the_ack_is_held_until_the_server_answers() {
    let mut d = director(FwdMethod::Masq, false);
    let (_, s) = handshake(&mut d, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((s.fl, s.payload.len()), (SYN, 0));
    let mut b = [0u8; 24];
    let n = sx::TcpOpts { mss: Some(1460), wscale: Some(7), sack: true, ts: Some((9000, 101)) }.emit(&mut b);
    let sa =
        Tcp { src: rs(), dst: client(), fl: SYN | ACK, seq: 5000, ack: 1001, win: 65535, opts: &b[..n], payload: b"" };
    let g = pass(&mut d, T0, &sa);
    assert_eq!(
        (g.dst, g.fl, g.seq, g.ack, g.payload.as_slice()),
        (rs(), ACK, 1001, 5001, &b"GET / HTTP/1.0\r\n\r\n"[..])
    );
    assert_eq!(g.opts.ts, Some((101, 9000)));
    assert_eq!(d.synproxy_stats().held, 1);
}

#[test]
fn deferred_connections_wait_for_data() {
    let mut d = director(FwdMethod::Masq, true);
    let o = linux_syn_opts(100);
    let sa = pass(&mut d, T0, &syn(&o));
    let t = ts_opt(101, sa.opts.ts.unwrap().0);
    let ack = Tcp { fl: ACK, seq: 1001, ack: sa.seq + 1, win: 502, opts: &t, payload: b"", ..syn(&[]) };
    assert_eq!(at(&mut d, T0, &ack).0, Verdict::Drop(Reason::SynproxyHeld));
    assert_eq!(d.connections(T0).len(), 1);
    let data = Tcp { payload: b"x", ..ack };
    let s = pass(&mut d, T0, &data);
    assert_eq!((s.dst, s.fl, s.seq), (rs(), SYN, 1000));
    // Its retransmission, while the server is silent, sends the SYN again.
    let s = pass(&mut d, T0, &data);
    assert_eq!((s.dst, s.fl, s.seq), (rs(), SYN, 1000));
}

#[test]
fn data_after_the_syn_is_held_once() {
    let mut d = director(FwdMethod::Masq, false);
    let (cookie, _) = handshake(&mut d, b"");
    let data = Tcp { fl: ACK, seq: 1001, ack: cookie + 1, win: 502, opts: &[], payload: b"GET /", ..syn(&[]) };
    assert_eq!(at(&mut d, T0, &data).0, Verdict::Drop(Reason::SynproxyHeld));
    let sa = Tcp {
        src: rs(),
        dst: client(),
        fl: SYN | ACK,
        seq: 5000,
        ack: 1001,
        win: 65535,
        opts: &[2, 4, 5, 0xb4],
        payload: b"",
    };
    let g = pass(&mut d, T0, &sa);
    assert_eq!((g.dst, g.seq, g.ack, g.payload.as_slice()), (rs(), 1001, 5001, &b"GET /"[..]));
}

#[test]
fn a_refusing_server_resets_the_client() {
    let mut d = director(FwdMethod::Masq, false);
    let (cookie, _) = handshake(&mut d, b"");
    let rst = Tcp { src: rs(), dst: client(), fl: RST | ACK, seq: 0, ack: 1001, win: 0, opts: &[], payload: b"" };
    let r = pass(&mut d, T0, &rst);
    assert_eq!((r.src, r.dst, r.fl, r.seq), (vip(), client(), RST, cookie + 1));
    assert!(d.connections(T0).is_empty());
    assert_eq!(d.synproxy_stats().server_resets, 1);
}

#[test]
fn fullnat_sends_the_toa_on_the_directors_ack() {
    let mut d = director(FwdMethod::FullNat, false);
    let (_, s) = handshake(&mut d, b"");
    assert_eq!((s.src.0, s.dst, s.fl), (ip("192.0.2.200"), rs(), SYN));
    let sa = Tcp {
        src: rs(),
        dst: s.src,
        fl: SYN | ACK,
        seq: 5000,
        ack: 1001,
        win: 65535,
        opts: &[2, 4, 5, 0xb4],
        payload: b"",
    };
    let a = pass(&mut d, T0, &sa);
    assert_eq!((a.src, a.dst, a.fl, a.ack), (s.src, rs(), ACK, 5001));
    assert_eq!(&a.raw_opts[..8], &[254, 8, 0x9c, 0x40, 198, 51, 100, 2]);
}

#[test]
fn dr_and_tun_cannot_splice() {
    let mut d = director(FwdMethod::Masq, false);
    let key = ServiceKey::tcp(vip().0, 80);
    for fwd in [FwdMethod::Route, FwdMethod::Tunnel, FwdMethod::Local] {
        let e = d.add_dest(&key, RealServer::new(ip("192.0.2.12"), 80, fwd, 1)).unwrap_err();
        assert!(matches!(e, crate::Error::Unsupported(_)), "{fwd:?}");
    }
    let dr = ServiceKey::tcp(vip().0, 81);
    d.add_service(ServiceConfig::new(dr, "first")).unwrap();
    d.add_dest(&dr, RealServer::new(ip("192.0.2.12"), 81, FwdMethod::Route, 1)).unwrap();
    let e = d.edit_service(ServiceConfig { synproxy: true, ..ServiceConfig::new(dr, "first") }).unwrap_err();
    assert!(matches!(e, crate::Error::Unsupported(_)));
}

proptest! {
    /// Whatever the client offers, the server's SYN carries it as Linux's cookies keep it:
    /// the MSS cut to the table; window scale and SACK only with timestamps, then exactly.
    #[test]
    fn any_offer_reaches_the_server(
        mss in proptest::option::of(1u16..=9000),
        ws in proptest::option::of(0u8..=14),
        sack in any::<bool>(),
        ts in proptest::option::of(any::<u32>()),
        isn in any::<u32>(),
    ) {
        let mut d = director(FwdMethod::Masq, false);
        let mut b = [0u8; 24];
        let n = sx::TcpOpts { mss, wscale: ws, sack, ts: ts.map(|v| (v, 0)) }.emit(&mut b);
        let s = Tcp { seq: isn, ..syn(&b[..n]) };
        let sa = pass(&mut d, T0, &s);
        let t = sa.opts.ts.map(|(v, e)| ts_opt(e.wrapping_add(1), v)).unwrap_or_default();
        let ack = Tcp { fl: ACK, seq: isn.wrapping_add(1), ack: sa.seq.wrapping_add(1), win: 1, opts: &t, payload: b"", ..syn(&[]) };
        let out = pass(&mut d, T0, &ack);
        let table = crate::synproxy::MSSTAB_V4;
        let want_mss = table.iter().rev().copied().find(|m| *m <= mss.unwrap_or(536)).unwrap_or(536);
        prop_assert_eq!(out.seq, isn);
        prop_assert_eq!(out.opts.mss, Some(want_mss));
        prop_assert_eq!(out.opts.wscale, ts.and(ws));
        prop_assert_eq!(out.opts.sack, ts.is_some() && sack);
        prop_assert_eq!(out.opts.ts.map(|t| t.1), ts.map(|_| 0));
    }
}
