//! The sync room alone: both formats round-trip every field, the decoder's refusals follow
//! the kernel's order, the when-to-send rule, and the master's queue.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::master::Master;
use super::wire::{self, flags, Abort, Entry, MessageBuilder, MessageError, Record, Seq, SeqOptions, Version};
use super::*;

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn rec(i: u32) -> Record<'static> {
    Record {
        proto: 6,
        flags: flags::DROUTE | flags::NOOUTPUT,
        state: 1,
        caddr: v4(0xc633_6400 + i),
        vaddr: v4(0xcb00_7164),
        daddr: v4(0xc000_020b),
        cport: 1000 + i as u16,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

fn one(version: Version, r: &Record<'_>) -> Vec<u8> {
    let mut b = MessageBuilder::new(version, 7, 1472);
    assert!(b.push(r));
    b.finish()
}

fn decode_all(buf: &[u8]) -> Vec<Result<Entry<'_>, Abort>> {
    wire::parse(buf).unwrap().entries().collect()
}

fn addr(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))).boxed()
    } else {
        any::<u32>().prop_map(v4).boxed()
    }
}

fn seqs() -> impl Strategy<Value = SeqOptions> {
    let seq = (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| Seq {
        init_seq: a,
        delta: b,
        previous_delta: c,
    });
    (seq.clone(), seq).prop_map(|(i, o)| SeqOptions { in_seq: i, out_seq: o })
}

prop_compose! {
    fn v1_record(pe: &'static [u8])(
        v6 in any::<bool>(),
        proto in any::<u8>(),
        fl in any::<u32>(),
        state in any::<u16>(),
        ports in any::<[u16; 3]>(),
        fwmark in any::<u32>(),
        timeout in any::<u32>(),
        seq in proptest::option::of(seqs()),
        pe_len in 0..=wire::PE_DATA_MAX.min(pe.len()),
        name_len in 0..=wire::PE_NAME_MAX,
        a in addr(false), b in addr(false), c in addr(false),
        a6 in addr(true), b6 in addr(true), c6 in addr(true),
    ) -> Record<'static> {
        let (caddr, vaddr, daddr) = if v6 { (a6, b6, c6) } else { (a, b, c) };
        Record {
            proto, flags: fl & !flags::HASHED, state, caddr, vaddr, daddr,
            cport: ports[0], vport: ports[1], dport: ports[2], fwmark, timeout, seq,
            pe_data: (pe_len > 0).then(|| &pe[..pe_len]),
            pe_name: (name_len > 0).then(|| &b"sipsipsipsipsipsip"[..name_len]),
        }
    }
}

static PE: [u8; 255] = [0xa5; 255];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn v1_round_trips_every_field(recs in proptest::collection::vec(v1_record(&PE), 1..12)) {
        let mut b = MessageBuilder::new(Version::V1, 9, 65_000);
        for r in &recs {
            prop_assert!(b.fits(r));
            prop_assert!(b.push(r));
        }
        let bytes = b.finish();
        let m = wire::parse(&bytes).unwrap();
        prop_assert_eq!((m.version, m.syncid, usize::from(m.count)), (Version::V1, 9, recs.len()));
        let back: Vec<Record<'_>> = m.entries().map(|e| match e { Ok(Entry::Record(r)) => r, e => panic!("{e:?}") }).collect();
        prop_assert_eq!(back, recs);
    }

    #[test]
    fn v0_round_trips_what_it_carries(
        ips in any::<[u32; 3]>(), ports in any::<[u16; 3]>(), proto in any::<u8>(),
        fl in any::<u16>(), state in any::<u16>(), seq in seqs(),
    ) {
        let fl = u32::from(fl) & !flags::HASHED;
        let r = Record {
            proto, flags: fl, state, caddr: v4(ips[0]), vaddr: v4(ips[1]), daddr: v4(ips[2]),
            cport: ports[0], vport: ports[1], dport: ports[2], fwmark: 0, timeout: 0,
            seq: (fl & flags::SEQ_MASK != 0).then_some(seq), pe_data: None, pe_name: None,
        };
        let bytes = one(Version::V0, &r);
        prop_assert_eq!(bytes.len(), 4 + r.v0_len());
        match &decode_all(&bytes)[..] {
            [Ok(Entry::Record(back))] => prop_assert_eq!(*back, r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decoding_never_panics_and_never_reads_past_the_count(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = wire::parse(&buf) {
            prop_assert!(m.entries().count() <= usize::from(m.count));
        }
    }

    #[test]
    fn a_message_never_exceeds_maxlen_once_it_has_a_record(n in 1usize..120, maxlen in 100usize..1500) {
        let mut b = MessageBuilder::new(Version::V1, 1, maxlen);
        let mut sizes = Vec::new();
        for i in 0..n {
            let r = rec(i as u32);
            if !b.fits(&r) {
                sizes.push(core::mem::replace(&mut b, MessageBuilder::new(Version::V1, 1, maxlen)).finish().len());
            }
            b.push(&r);
        }
        sizes.push(b.finish().len());
        prop_assert!(sizes.iter().all(|s| *s <= maxlen.max(8 + 36)));
    }
}

#[test]
fn kernel_layout_of_an_ipv4_record() {
    // `tcp-established` of the b-v1-inject trace, byte for byte.
    let r = Record {
        caddr: "198.51.100.114".parse().unwrap(),
        vaddr: "203.0.113.100".parse().unwrap(),
        daddr: "192.0.2.11".parse().unwrap(),
        cport: 29311,
        ..rec(0)
    };
    let hex: alloc::string::String = one(Version::V1, &r).iter().map(|b| alloc::format!("{b:02x}")).collect();
    assert_eq!(hex, "0007002c0101000000060024000000830001727f005000500000000000000384c6336472cb007164c000020b");
}

#[test]
fn header_refusals() {
    assert_eq!(wire::parse(&[0, 7, 0]).unwrap_err(), MessageError::TooShort);
    let mut m = one(Version::V1, &rec(1));
    m.push(0);
    assert_eq!(wire::parse(&m).unwrap_err(), MessageError::BadSize);
    // A version-1 header with a non-zero spare field reads as an empty version-0 message.
    let mut m = one(Version::V1, &rec(1));
    m[7] = 1;
    let p = wire::parse(&m).unwrap();
    assert_eq!((p.version, p.count), (Version::V0, 0));
}

#[test]
fn record_aborts_in_the_kernels_order() {
    // The outcome of the record after `f` edits its message (Ok(true) = a record, Ok(false) =
    // skipped).
    let fix = |f: &dyn Fn(&mut Vec<u8>)| -> Result<bool, Abort> {
        let mut m = one(Version::V1, &rec(1));
        f(&mut m);
        let n = m.len() as u16;
        m[2..4].copy_from_slice(&n.to_be_bytes());
        decode_all(&m).pop().unwrap().map(|e| matches!(e, Entry::Record(_)))
    };
    assert_eq!(fix(&|m| m[8] = 2), Err(Abort::RecordType));
    assert_eq!(fix(&|m| m[10] |= 0x10), Err(Abort::RecordVersion));
    assert_eq!(fix(&|m| m[11] = 30), Err(Abort::RecordSize));
    assert_eq!(fix(&|m| m[11] = 80), Err(Abort::Truncated));
    // An unknown mandatory option skips the record; an optional one is ignored.
    let opt = |ty: u8| {
        fix(&|m| {
            m.extend_from_slice(&[ty, 2, 0, 0]);
            m[11] += 4;
        })
    };
    assert_eq!(opt(5), Ok(false));
    assert_eq!(opt(0x45), Ok(true));
    assert_eq!(opt(1), Err(Abort::BadSeqOption));
    assert_eq!(
        fix(&|m| {
            m.extend_from_slice(&[0x45, 0]);
            m[11] += 2;
        }),
        Err(Abort::OptionBounds)
    );
}

fn params() -> SyncParams {
    SyncParams::default()
}

fn tcp(state: TcpState) -> Candidate {
    Candidate { template: false, persistent: false, proto: 6, state: state as u8, timeout_ms: 900_000 }
}

#[test]
fn tcp_is_sent_on_the_third_packet_then_every_fiftieth() {
    let mut m = Mark::default();
    let sent: Vec<u32> =
        (1..=110).filter(|&p| needed(&params(), &tcp(TcpState::Established), &mut m, p, p * 10)).collect();
    assert_eq!(sent, [3, 53, 103]);
}

#[test]
fn a_change_to_a_closing_state_is_sent_at_once_but_not_twice() {
    let mut m = Mark { old_state: TcpState::Established as u8, endtime: 0 };
    let fin = Candidate { timeout_ms: 120_000, ..tcp(TcpState::FinWait) };
    assert!(needed(&params(), &fin, &mut m, 4, 100));
    assert!(!needed(&params(), &fin, &mut m, 5, 200));
    assert!(!needed(&params(), &tcp(TcpState::SynRecv), &mut Mark::default(), 3, 0));
}

#[test]
fn templates_go_on_every_packet_and_persist_mode_sends_only_them() {
    let t = Candidate { template: true, persistent: false, proto: 6, state: 0, timeout_ms: 120_000 };
    let mut m = Mark::default();
    assert!((1..10).all(|p| needed(&params(), &t, &mut m, p, p)));
    let p = SyncParams { persist_mode: true, ..params() };
    let c = Candidate { persistent: true, ..tcp(TcpState::FinWait) };
    assert!(!needed(&p, &c, &mut Mark::default(), 3, 0));
}

#[test]
fn period_zero_sends_once_at_the_threshold() {
    let p = SyncParams { period: 0, ..params() };
    let udp = Candidate { template: false, persistent: false, proto: 17, state: 0, timeout_ms: 300_000 };
    let mut m = Mark::default();
    let sent: Vec<u32> = (1..60).filter(|&n| needed(&p, &udp, &mut m, n, n)).collect();
    assert_eq!(sent, [3]);
}

#[test]
fn a_refresh_period_holds_back_resends_and_retries_them() {
    let p = SyncParams { period: 0, refresh_period: 4, retries: 1, ..params() };
    let udp = Candidate { template: false, persistent: false, proto: 17, state: 0, timeout_ms: 300_000 };
    let mut m = Mark::default();
    // First send: at the threshold... and with a refresh period any packet may refresh.
    assert!(needed(&p, &udp, &mut m, 1, 1_000));
    assert!(!needed(&p, &udp, &mut m, 2, 1_300), "within refresh_period/8 of the last send");
    assert!(needed(&p, &udp, &mut m, 3, 1_600), "one retry after refresh_period/8");
    assert!(!needed(&p, &udp, &mut m, 4, 2_500), "retries spent");
    assert!(needed(&p, &udp, &mut m, 5, 6_000), "the timer moved by the refresh period");
}

#[test]
fn resolved_daemon_settings_follow_start_sync_thread() {
    let c = DaemonConfig::new("sync0");
    let m = c.resolved(Role::Master, 9000);
    assert_eq!((m.maxlen, m.port, m.ttl, m.group()), (1472, 8848, 1, DEFAULT_GROUP));
    assert_eq!(c.resolved(Role::Backup, 9000).maxlen, 9000 - 28);
    let v6 = DaemonConfig { group: Some("ff02::81".parse().unwrap()), maxlen: 10, ..c };
    assert_eq!(v6.resolved(Role::Master, 1500).maxlen, 10);
    assert_eq!(v6.resolved(Role::Backup, 1500).maxlen, 1024);
    assert_eq!(DaemonConfig { maxlen: 0, ..v6 }.resolved(Role::Master, 1500).maxlen, 1452);
}

#[test]
fn sysctl_ranges() {
    assert!(SyncParams { threshold: 50, ..params() }.validate().is_err());
    assert!(SyncParams { threshold: 50, period: 0, ..params() }.validate().is_ok());
    assert!(SyncParams { retries: 4, ..params() }.validate().is_err());
    assert!(SyncParams { ports: 0, ..params() }.validate().is_err());
}

#[test]
fn a_full_message_leaves_at_once_a_partial_one_after_two_seconds() {
    let mut m = Master::new(7, 1472, 1, 8);
    for i in 0..41 {
        m.add(1_000, 0, Version::V1, &rec(i));
    }
    let full = m.poll(1_000).unwrap();
    assert_eq!((full.bytes.len(), full.bytes[4]), (1448, 40));
    assert!(m.poll(1_000).is_none());
    assert_eq!(m.next_deadline(), Some(1_000 + FLUSH_NS));
    let rest = m.poll(1_000 + FLUSH_NS).unwrap();
    assert_eq!(rest.bytes[4], 1);
}

#[test]
fn the_queue_is_bounded_by_qlen_max() {
    // Two records per 100-byte message: ten records fill four messages and start a fifth;
    // two of the four find the queue full.
    let mut m = Master::new(7, 100, 1, 2);
    for i in 0..10 {
        m.add(0, 0, Version::V1, &rec(i));
    }
    assert_eq!(m.stats().queue_full, 2);
    assert!(m.poll(0).is_some() && m.poll(0).is_some() && m.poll(0).is_none());
}

#[test]
fn a_version_change_closes_the_current_message() {
    let mut m = Master::new(7, 1472, 1, 8);
    m.add(0, 0, Version::V1, &rec(1));
    m.add(0, 0, Version::V0, &rec(2));
    let a = m.poll(0).unwrap();
    assert_eq!(wire::parse(&a.bytes).unwrap().version, Version::V1);
    let b = m.poll(FLUSH_NS).unwrap();
    assert_eq!(wire::parse(&b.bytes).unwrap().version, Version::V0);
}
