//! The SIP persistence engine (`--pe sip`), each expectation read from `ip_vs_pe_sip.c` and
//! `ip_vs_sched_persist` (the function is named at each test).

use super::*;
use crate::config::{run_ipvsadm, ProcFile};
use crate::persist::sip::PersistEngine;

const SIP: u16 = 5060;

fn sip_svc() -> ServiceKey {
    ServiceKey::udp(vip(), SIP)
}

/// A persistent UDP service on 5060 (`-p 60 --pe sip`, netmask `prefix`) with servers .11,
/// .12 and .13 (the scheduler `first` takes the newest available one first: .13).
fn sip_director(pe: bool, prefix: u8) -> Director {
    let mut d = director();
    let mut cfg = ServiceConfig::new(sip_svc(), "first").persistent(60).netmask(prefix);
    cfg.pe = pe.then_some(PersistEngine::Sip);
    d.add_service(cfg).unwrap();
    for i in 1..=3 {
        d.add_dest(&sip_svc(), RealServer::new(ip(&alloc::format!("192.0.2.1{i}")), SIP, FwdMethod::Route, 1)).unwrap();
    }
    d
}

/// An INVITE with Call-ID `call` (RFC 3261's example, shortened).
fn invite(call: &str) -> Vec<u8> {
    alloc::format!(
        "INVITE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
         To: Bob <sip:bob@biloxi.com>\r\nCall-ID: {call}\r\nCSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Sends `payload` from `src` to the SIP service at `now`; the server it went to, or the verdict.
fn sip_send(d: &mut Director, now: u64, src: (&str, u16), payload: &[u8]) -> Result<IpAddr, Verdict> {
    let mut f = Frame::new(DEFAULT_HEADROOM, &udp((ip(src.0), src.1), (vip(), SIP), payload));
    match d.process(Instant::from_secs(now), &mut f) {
        Verdict::Transmit { .. } => {
            let c = d.connections(Instant::from_secs(now));
            let conn = c.iter().find(|c| !c.template && c.client.addr == ip(src.0) && c.client.port == src.1);
            Ok(conn.unwrap().dest.addr)
        }
        v => Err(v),
    }
}

fn quiesce(d: &mut Director, server: IpAddr) {
    d.edit_dest(&sip_svc(), RealServer::new(server, SIP, FwdMethod::Route, 0)).unwrap();
}

/// `ip_vs_sip_ct_match`: one client's calls each get a template of their own, where plain
/// persistence keeps every call of the client on one server; a call's later flows find its
/// template (`ip_vs_check_template` keeps a quiesced server's template valid).
#[test]
fn calls_of_one_client_are_persistent_each_on_its_own() {
    for pe in [true, false] {
        let mut d = sip_director(pe, 32);
        let a = sip_send(&mut d, 1, ("198.51.100.2", 5070), &invite("a84b4c76e66710")).unwrap();
        assert_eq!(a, ip("192.0.2.13"));
        quiesce(&mut d, a);
        let b = sip_send(&mut d, 2, ("198.51.100.2", 5071), &invite("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")).unwrap();
        let again = sip_send(&mut d, 3, ("198.51.100.2", 5072), &invite("a84b4c76e66710")).unwrap();
        if pe {
            assert_eq!(b, ip("192.0.2.12"), "the second call has no template yet: scheduled");
            assert_eq!(again, a, "the first call's template");
            assert_eq!(d.connections(Instant::from_secs(3)).iter().filter(|c| c.template).count(), 2);
        } else {
            assert_eq!((b, again), (a, a), "plain persistence: one template for the client");
        }
        d.check_invariants(Instant::from_secs(3)).unwrap();
    }
}

/// `ip_vs_sip_ct_match` compares the masked client address too: two clients with the same
/// Call-ID have two templates unless the netmask makes them one client.
#[test]
fn the_same_call_id_from_two_clients_is_two_templates_unless_masked_together() {
    for (prefix, same) in [(32, false), (24, true)] {
        let mut d = sip_director(true, prefix);
        let a = sip_send(&mut d, 1, ("198.51.100.2", 5070), &invite("shared@example.com")).unwrap();
        quiesce(&mut d, a);
        let b = sip_send(&mut d, 2, ("198.51.100.3", 5070), &invite("shared@example.com")).unwrap();
        assert_eq!(a == b, same, "netmask /{prefix}");
        let templates = d.connections(Instant::from_secs(2)).iter().filter(|c| c.template).count();
        assert_eq!(templates, if same { 1 } else { 2 });
    }
}

/// `ip_vs_sip_fill_param` fails without a Call-ID (or for anything but UDP), and
/// `ip_vs_sched_persist` then sets `*ignored = -1`: the packet is dropped, nothing is made. A
/// flow that has its connection is never parsed again (`ip_vs_in` finds the connection first).
#[test]
fn a_first_packet_without_a_call_id_is_dropped() {
    let mut d = sip_director(true, 32);
    for payload in [&b""[..], b"OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", b"\x00\x01binary"] {
        assert_eq!(sip_send(&mut d, 1, ("198.51.100.2", 5070), payload), Err(Verdict::Drop(Reason::NoCallId)));
    }
    let long = "x".repeat(256);
    assert_eq!(sip_send(&mut d, 1, ("198.51.100.2", 5070), &invite(&long)), Err(Verdict::Drop(Reason::NoCallId)));
    assert_eq!(d.drops()[Reason::NoCallId.index()], 4);
    assert_eq!(d.conn_count(), 0);
    // TCP to a SIP service: `ip_vs_sip_fill_param` is only useful with UDP.
    let tcp = ServiceKey::tcp(vip(), SIP);
    let mut cfg = ServiceConfig::new(tcp, "first").persistent(60);
    cfg.pe = Some(PersistEngine::Sip);
    d.add_service(cfg).unwrap();
    d.add_dest(&tcp, RealServer::new(ip("192.0.2.11"), SIP, FwdMethod::Route, 1)).unwrap();
    let (v, _) = send(&mut d, 1, Tcp::new(client(1000), (vip(), SIP), SYN));
    assert_eq!(v, Verdict::Drop(Reason::NoCallId));
    // Established: later datagrams of a flow carry no Call-ID and still go through.
    let to = sip_send(&mut d, 2, ("198.51.100.2", 5070), &invite("abc")).unwrap();
    assert_eq!(sip_send(&mut d, 3, ("198.51.100.2", 5070), b"\r\n\r\n"), Ok(to));
    d.check_invariants(Instant::from_secs(3)).unwrap();
}

/// `ip_vs_check_template` on a SIP template whose server is deleted: ports 65535 in place, the
/// call scheduled afresh, the old template listed until it expires — and its Call-ID freed
/// with it.
#[test]
fn an_invalidated_sip_template_lingers_and_the_call_moves() {
    let mut d = sip_director(true, 32);
    let a = sip_send(&mut d, 1, ("198.51.100.2", 5070), &invite("moving")).unwrap();
    d.del_dest(&sip_svc(), &Endpoint::new(a, SIP)).unwrap();
    let b = sip_send(&mut d, 2, ("198.51.100.2", 5071), &invite("moving")).unwrap();
    assert_ne!(a, b);
    let t: Vec<_> = d.connections(Instant::from_secs(2)).into_iter().filter(|c| c.template).collect();
    assert_eq!(t.len(), 2);
    assert!(t.iter().any(|c| c.virt.port == 65535 && c.dest.port == 65535 && c.dest.addr == a));
    d.check_invariants(Instant::from_secs(2)).unwrap();
    // Everything expires: UDP connections after 300 s, their templates 60 s after that.
    let mut now = Instant::from_secs(2);
    while let Some(t) = d.next_deadline().filter(|t| *t <= Instant::from_secs(1000)) {
        d.tick(t);
        now = t;
    }
    assert_eq!(d.conn_count(), 0);
    d.check_invariants(now).unwrap();
}

/// `ip_vs_sip_show_pe_data` through `ip_vs_conn_seq_show` (` sip CALLID` after the expiry) and
/// ipvsadm 1.31's `print_conn` with `--persistent-conn` (the pe columns, destination 16 wide);
/// `print_service_entry`'s ` pe sip` in `-Ln` and ` --pe sip` in `-S`.
#[test]
fn listings_show_the_engine_and_the_call_id() {
    let mut d = sip_director(true, 32);
    let now = Instant::from_secs(1);
    sip_send(&mut d, 1, ("198.51.100.2", 5070), &invite("a84b4c76e66710")).unwrap();
    let lcn = run_ipvsadm(&mut d, now, &["-Lcn", "--persistent-conn"], "").stdout;
    let mut rows: Vec<&str> = lcn.lines().collect();
    rows[2..].sort();
    assert_eq!(
        rows,
        [
            "IPVS connection entries",
            "pro expire state       source             virtual            destination        pe name          pe_data",
            "UDP 01:00  NONE        198.51.100.2:0     203.0.113.100:5060 192.0.2.13:5060  sip                a84b4c76e66710",
            "UDP 05:00  UDP         198.51.100.2:5070  203.0.113.100:5060 192.0.2.13:5060",
        ]
    );
    let plain = run_ipvsadm(&mut d, now, &["-Lcn"], "").stdout;
    assert!(plain.contains("UDP 01:00  NONE        198.51.100.2:0     203.0.113.100:5060 192.0.2.13:5060\n"));
    let proc = ProcFile::Conn.render(&d, now);
    assert!(
        proc.contains("UDP C6336402 0000 CB007164 13C4 C000020D 13C4 NONE             60 sip a84b4c76e66710\n"),
        "{proc}"
    );
    let sync = ProcFile::ConnSync.render(&d, now);
    assert!(sync.contains("UDP C6336402 0000 CB007164 13C4 C000020D 13C4 NONE        LOCAL       60\n"), "{sync}");
    let ln = run_ipvsadm(&mut d, now, &["-Ln"], "").stdout;
    assert!(ln.contains("UDP  203.0.113.100:5060 first persistent 60 pe sip\n"), "{ln}");
    let sn = run_ipvsadm(&mut d, now, &["-Sn"], "").stdout;
    assert!(sn.starts_with("-A -u 203.0.113.100:5060 -s first -p 60 --pe sip\n"), "{sn}");
}

/// `ip_vs_sync_conn_v1` sends a SIP template with `PE_DATA` (the Call-ID) and `PE_NAME`
/// (`sip`); `ip_vs_proc_sync_conn` → `ip_vs_conn_fill_param_sync` → `ip_vs_ct_in_get` on the
/// backup files it by Call-ID, so after fail-over the call's next flow finds it there, where
/// the backup's own scheduler would have picked another server.
#[test]
fn a_synced_sip_template_is_found_by_its_call_id_on_the_backup() {
    use crate::sync::{DaemonConfig, Role};
    let (mut master, mut backup) = (sip_director(true, 32), sip_director(true, 32));
    master.start_sync(Role::Master, &DaemonConfig::new("sync0"), 1500).unwrap();
    backup.start_sync(Role::Backup, &DaemonConfig::new("sync0"), 1500).unwrap();
    quiesce(&mut master, ip("192.0.2.13"));
    let to = sip_send(&mut master, 1, ("198.51.100.2", 5070), &invite("a84b4c76e66710")).unwrap();
    assert_eq!(to, ip("192.0.2.12"));
    let mut sent = Vec::new();
    let mut now = Instant::from_secs(1);
    while sent.is_empty() {
        now = master.next_deadline().unwrap();
        master.tick(now);
        while let Some(g) = master.poll_sync(now) {
            sent.push(g.bytes);
        }
    }
    let recs: Vec<_> =
        sent.iter().flat_map(|g| crate::sync::wire::parse(g).unwrap().entries().collect::<Vec<_>>()).collect();
    let tmpl = recs.iter().find_map(|e| match e {
        Ok(crate::sync::wire::Entry::Record(r)) if r.flags & crate::sync::wire::flags::TEMPLATE != 0 => Some(*r),
        _ => None,
    });
    let tmpl = tmpl.expect("the template is sent with its connection's first packet");
    assert_eq!((tmpl.pe_name, tmpl.pe_data), (Some(&b"sip"[..]), Some(&b"a84b4c76e66710"[..])));
    for g in &sent {
        backup.handle_sync(now, g).unwrap();
    }
    let lcn = run_ipvsadm(&mut backup, now, &["-Lcn", "--persistent-conn"], "").stdout;
    assert!(lcn.contains(" 192.0.2.12:5060  sip                a84b4c76e66710\n"), "{lcn}");
    backup.check_invariants(now).unwrap();
    let t = now.as_nanos() / 1_000_000_000 + 1;
    assert_eq!(sip_send(&mut backup, t, ("198.51.100.2", 5080), &invite("a84b4c76e66710")), Ok(ip("192.0.2.12")));
    assert_eq!(sip_send(&mut backup, t, ("198.51.100.2", 5081), &invite("another-call")), Ok(ip("192.0.2.13")));
    // Another update of the same template finds it by Call-ID instead of making a second one.
    for g in &sent {
        backup.handle_sync(now, g).unwrap();
    }
    let templates = backup.connections(now).iter().filter(|c| c.template).count();
    assert_eq!(templates, 2, "the synced call's template and the backup's own new one");
}

/// `ip_vs_conn_fill_param_sync`: engine data with an unknown engine name ("no engine
/// found") or without a name ("Invalid PE parameters") makes the record skipped.
#[test]
fn sync_records_with_unknown_or_unnamed_engines_are_skipped() {
    use crate::sync::wire::{flags, MessageBuilder, Record, Version};
    use crate::sync::{DaemonConfig, Role};
    let mut d = sip_director(true, 32);
    d.start_sync(Role::Backup, &DaemonConfig::new("sync0"), 1500).unwrap();
    let rec = |name: Option<&'static [u8]>| Record {
        proto: 17,
        flags: flags::DROUTE | flags::NOOUTPUT | flags::INACTIVE | flags::TEMPLATE,
        state: 0,
        caddr: ip("198.51.100.2"),
        vaddr: vip(),
        daddr: ip("192.0.2.11"),
        cport: 0,
        vport: SIP,
        dport: SIP,
        fwmark: 0,
        timeout: 60,
        seq: None,
        pe_data: Some(b"call"),
        pe_name: name,
    };
    for (name, applied) in [(Some(&b"rtsp"[..]), 0), (None, 0), (Some(&b"sip"[..]), 1)] {
        let mut b = MessageBuilder::new(Version::V1, 0, 1472);
        assert!(b.push(&rec(name)));
        let out = d.handle_sync(Instant::from_secs(1), &b.finish()).unwrap();
        assert_eq!(out.applied, applied, "{name:?}");
    }
    let c = d.connections(Instant::from_secs(1));
    assert_eq!(c.len(), 1);
    assert_eq!(d.pe_data(c[0].pe.unwrap()), Some((PersistEngine::Sip, &b"call"[..])));
}
