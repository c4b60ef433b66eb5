//! Any bytes as a received advertisement: the VRRP decoder never panics and whatever it decodes
//! re-encodes to the same advertisement; a backup and a master fed it (with its checksum fixed
//! up half of the time, so the fuzzer reaches the state machine) count it exactly once — taken
//! or dropped with a reason — stay in BACKUP or MASTER, and send only advertisements that
//! decode.
//!
//! The first byte picks the setting: bit 0 IPv6, bit 1 unicast (a peer to this router), bit 2
//! a TTL other than 255, bit 3 fix the checksum, bits 4-7 the local priority.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use lvs_core::vrrp::{Action, Config, Instance, IpHeader, Repr, State, Version, GROUP_V4, GROUP_V6, PROTO, TTL};
use lvs_core::Instant;

/// The one's-complement sum of RFC 1071, folded.
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The checksum VRRPv3 (pseudo-header) or VRRPv2 (message only) expects.
fn fix_checksum(b: &mut [u8], src: IpAddr, dst: IpAddr) {
    if b.len() < 8 {
        return;
    }
    b[6] = 0;
    b[7] = 0;
    let mut acc = 0;
    if b[0] >> 4 != 2 {
        acc = sum(acc, &octets(src));
        acc = sum(acc, &octets(dst));
        acc = sum(acc, &(b.len() as u32).to_be_bytes());
        acc = sum(acc, &[0, PROTO]);
    }
    let c = !(sum(acc, b) as u16);
    b[6..8].copy_from_slice(&c.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else { return };
    let v6 = sel & 1 != 0;
    let unicast = sel & 2 != 0;
    let (me, peer): (IpAddr, IpAddr) = if v6 {
        ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap())
    } else {
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
    };
    let group = if v6 { IpAddr::V6(GROUP_V6) } else { IpAddr::V4(GROUP_V4) };
    let ip = IpHeader { src: peer, dst: if unicast { me } else { group }, ttl: if sel & 4 != 0 { sel } else { TTL } };
    let mut bytes = bytes.to_vec();
    if sel & 8 != 0 {
        fix_checksum(&mut bytes, ip.src, ip.dst);
    }

    if let Ok(r) = Repr::parse(&bytes, ip.src, ip.dst) {
        let again = r.to_bytes(ip.src, ip.dst);
        assert_eq!(Repr::parse(&again, ip.src, ip.dst), Ok(r));
    }

    // The instance speaks what the advertisement claims, so the fuzzer gets past version and
    // VRID to the state machine.
    let vip: IpAddr = if v6 { "2001:db8::100".parse().unwrap() } else { "198.51.100.1".parse().unwrap() };
    let mut cfg = Config::new(bytes.get(1).copied().unwrap_or(1).max(1), me, vec![vip]);
    cfg.version = if !v6 && bytes.first().is_some_and(|b| b >> 4 == 2) { Version::V2 } else { Version::V3 };
    cfg.priority = if sel >> 4 == 15 { 255 } else { (sel >> 4).max(1) * 16 - 1 };
    if unicast {
        cfg.unicast_peers = vec![peer];
    }
    let mut backup = Instance::new(cfg).unwrap();
    backup.start(Instant::ZERO);
    let mut master = backup.clone();
    let t = master.next_deadline().unwrap();
    while master.poll(t).is_some() {}
    assert_eq!(master.state(), State::Master);

    for vr in [&mut backup, &mut master] {
        let now = Instant::from_secs(10);
        let before = vr.stats().adverts_rx + vr.drops().iter().sum::<u64>();
        let _ = vr.handle(now, &ip, &bytes);
        assert_eq!(vr.stats().adverts_rx + vr.drops().iter().sum::<u64>(), before + 1);
        for step in [now, now + std::time::Duration::from_secs(60)] {
            while let Some(a) = vr.poll(step) {
                if let Action::Send(tx) = a {
                    assert!(Repr::parse(&tx.bytes, tx.src, tx.dst).is_ok());
                }
            }
        }
        assert!(matches!(vr.state(), State::Backup | State::Master));
    }
});
