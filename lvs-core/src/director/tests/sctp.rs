//! SCTP services, each expectation read from `ip_vs_proto_sctp.c` and `ip_vs_core.c` (named at
//! each test): scheduling on INIT only, the state tables and timeouts as `-Lcn` lists them,
//! ActiveConn only in ESTABLISHED, the CRC32c recomputed only when NAT changes a port, and an
//! INIT on a CLOSED association scheduled afresh.

use super::*;
use crate::proto::sctp::chunk;
use crate::testkit::sctp;

fn sctp_svc() -> ServiceKey {
    ServiceKey::Inet { proto: crate::addr::Proto::Sctp, addr: vip(), port: 80 }
}

fn with_server(cfg: DirectorConfig, fwd: FwdMethod, rport: u16) -> Director {
    let mut d = director_with(cfg);
    d.add_service(ServiceConfig::new(sctp_svc(), "first")).unwrap();
    d.add_dest(&sctp_svc(), RealServer::new(ip("192.0.2.11"), rport, fwd, 1)).unwrap();
    d
}

fn process(d: &mut Director, now: u64, bytes: &[u8]) -> (Verdict, Frame) {
    let mut f = Frame::new(DEFAULT_HEADROOM, bytes);
    (d.process(Instant::from_secs(now), &mut f), f)
}

/// A chunk from the client to the VIP.
fn from_client(kind: u8) -> Vec<u8> {
    sctp(client(1000), (vip(), 80), &[(kind, &[1, 2, 3, 4])])
}

/// A chunk from real server `.11:port` to the client.
fn from_server(port: u16, kind: u8) -> Vec<u8> {
    let mut b = sctp((ip("192.0.2.11"), port), client(1000), &[(kind, &[1, 2, 3, 4])]);
    b[6..12].copy_from_slice(&rs_mac(1).0);
    b
}

fn only(d: &Director, now: u64) -> ConnInfo {
    let rows = d.connections(Instant::from_secs(now));
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]
}

/// `sctp_states` INPUT and OUTPUT over NAT, `sctp_timeouts`, and `set_sctp_state`'s counters:
/// only ESTABLISHED is active. `sctp_dnat_handler`/`sctp_snat_handler` write the new port and
/// a fresh CRC32c both ways.
#[test]
fn a_nat_association_steps_through_the_kernels_states() {
    let mut d = with_server(DirectorConfig::default(), FwdMethod::Masq, 8080);
    let steps = [
        (false, chunk::INIT, "INIT1", 4, (0, 1)),
        (true, chunk::INIT_ACK, "C-SENT", 61, (0, 1)),
        (false, chunk::COOKIE_ECHO, "C-REPLIED", 61, (0, 1)),
        (true, chunk::COOKIE_ACK, "ESTABLISHED", 900, (1, 0)),
        (false, chunk::SHUTDOWN, "S-RECEIVED", 61, (0, 1)),
        (true, chunk::SHUTDOWN_ACK, "S-ACK-SENT", 61, (0, 1)),
        (false, chunk::SHUTDOWN_COMPLETE, "CLOSED", 61, (0, 1)),
    ];
    for (i, (reply, kind, state, secs, (active, inactive))) in steps.into_iter().enumerate() {
        let now = i as u64 + 1;
        let bytes = if reply { from_server(8080, kind) } else { from_client(kind) };
        let (v, f) = process(&mut d, now, &bytes);
        assert!(matches!(v, Verdict::Transmit { .. }), "{state}: {v:?}");
        verify_checksums(f.data()).unwrap_or_else(|e| panic!("{state}: {e}"));
        let out = f.data();
        if reply {
            assert_eq!(&out[26..30], &[203, 0, 113, 100], "from the VIP");
            assert_eq!(&out[34..36], &80u16.to_be_bytes());
        } else {
            assert_eq!(&out[30..34], &[192, 0, 2, 11], "to the server");
            assert_eq!(&out[36..38], &8080u16.to_be_bytes());
        }
        let c = only(&d, now);
        assert_eq!((c.state, c.expires_ms), (state, secs * 1000), "after chunk {kind}");
        assert_eq!(counts(&d, &sctp_svc()), [(active, inactive, 0)], "{state}");
    }
    let listing = list(&d, Instant::from_secs(7), ListOptions::Connections);
    assert!(listing.contains("SCTP 01:01  CLOSED      198.51.100.2:1000"), "{listing}");
    // `is_new_conn` + `is_new_conn_expected`: an INIT on a CLOSED entry is scheduled afresh.
    let (v, _) = process(&mut d, 8, &from_client(chunk::INIT));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(d.stats().counters().conns, 2);
}

/// INPUT-ONLY (DR): the client's INIT, then its COOKIE ECHO establishes; SHUTDOWN and
/// SHUTDOWN COMPLETE close. DR changes only the MACs: the checksum is the client's.
#[test]
fn a_dr_association_is_established_by_the_cookie_echo() {
    let mut d = with_server(DirectorConfig::default(), FwdMethod::Route, 80);
    for (now, kind, state, active) in [
        (1, chunk::INIT, "INIT1", 0),
        (2, chunk::COOKIE_ECHO, "ESTABLISHED", 1),
        (3, chunk::DATA, "ESTABLISHED", 1),
        (4, chunk::SHUTDOWN, "S-RECEIVED", 0),
        (5, chunk::SHUTDOWN_COMPLETE, "CLOSED", 0),
    ] {
        let bytes = from_client(kind);
        let (v, f) = process(&mut d, now, &bytes);
        assert!(matches!(v, Verdict::Transmit { port: 1, .. }), "{v:?}");
        assert_eq!(&f.data()[34..], &bytes[34..], "SCTP header and chunks untouched");
        assert_eq!(only(&d, now).state, state);
        assert_eq!(counts(&d, &sctp_svc())[0].0, active);
    }
}

/// `sctp_conn_schedule` (5.x+): a packet without a connection is scheduled only when its first
/// chunk is an INIT — with `sloppy_sctp`, any chunk but ABORT; anything else is accepted to the
/// director's own stack without a connection. A packet with no chunk header is dropped.
#[test]
fn only_an_init_starts_an_association() {
    let mut d = with_server(DirectorConfig::default(), FwdMethod::Route, 80);
    for kind in [chunk::DATA, chunk::COOKIE_ECHO, chunk::ABORT, chunk::SHUTDOWN] {
        assert_eq!(process(&mut d, 1, &from_client(kind)).0, Verdict::NotMine, "chunk {kind}");
    }
    assert_eq!(d.conn_count(), 0);
    let bare = sctp(client(1000), (vip(), 80), &[]);
    assert_eq!(process(&mut d, 1, &bare).0, Verdict::Drop(Reason::Malformed));
    let mut d = with_server(DirectorConfig { sloppy_sctp: true, ..DirectorConfig::default() }, FwdMethod::Route, 80);
    assert_eq!(process(&mut d, 1, &from_client(chunk::ABORT)).0, Verdict::NotMine);
    assert!(matches!(process(&mut d, 1, &from_client(chunk::DATA)).0, Verdict::Transmit { .. }));
    assert_eq!(only(&d, 1).state, "ESTABLISHED", "INPUT-ONLY: data from NONE");
}

/// `set_sctp_state`: an ABORT after a leading COOKIE ECHO in the same packet is the event; an
/// ABORT from the server to the client's first INIT (OUTPUT, INIT1) rejects it for 4 s.
#[test]
fn aborts_reject_and_close() {
    let mut d = with_server(DirectorConfig::default(), FwdMethod::Masq, 80);
    let _ = process(&mut d, 1, &from_client(chunk::INIT));
    let (v, _) = process(&mut d, 2, &from_server(80, chunk::ABORT));
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!((only(&d, 2).state, only(&d, 2).expires_ms), ("REJECTED", 4000));
    let mut d = with_server(DirectorConfig::default(), FwdMethod::Route, 80);
    let _ = process(&mut d, 1, &from_client(chunk::INIT));
    let bundle = sctp(client(1000), (vip(), 80), &[(chunk::COOKIE_ECHO, &[9; 6]), (chunk::ABORT, &[])]);
    let _ = process(&mut d, 2, &bundle);
    assert_eq!(only(&d, 2).state, "CLOSED", "INPUT-ONLY abort from INIT1");
}

/// `sctp_dnat_handler` recomputes the checksum only when the port changes, and never checks the
/// old one (no application helper): a bad checksum passes unchanged to a server on the same
/// port, and is replaced by a correct one when the port changes.
#[test]
fn the_checksum_is_recomputed_only_when_the_port_changes() {
    let mut bad = from_client(chunk::INIT);
    bad[42] ^= 0xff;
    let mut d = with_server(DirectorConfig::default(), FwdMethod::Masq, 80);
    let (v, f) = process(&mut d, 1, &bad);
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert_eq!(&f.data()[42..46], &bad[42..46], "left alone");
    assert_eq!(&f.data()[30..34], &[192, 0, 2, 11]);
    let mut d = with_server(DirectorConfig::default(), FwdMethod::Masq, 8080);
    let (_, f) = process(&mut d, 1, &bad);
    verify_checksums(f.data()).unwrap();
}

/// `ipvsadm --sctp-service` rules restore and list as ipvsadm prints them.
#[test]
fn sctp_services_restore_and_list() {
    let mut d = director();
    crate::config::restore(
        &mut d,
        "-A --sctp-service 203.0.113.100:80 -s first\n-a --sctp-service 203.0.113.100:80 -r 192.0.2.11:80 -m -w 1\n",
    )
    .unwrap();
    let _ = process(&mut d, 1, &from_client(chunk::INIT));
    let listing = list(&d, Instant::from_secs(1), ListOptions::Plain);
    assert!(listing.contains("SCTP 203.0.113.100:80 first"), "{listing}");
    assert!(listing.contains("-> 192.0.2.11:80                Masq    1      0          1"), "{listing}");
}
