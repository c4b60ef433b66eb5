//! Any datagram: the sync decoder never panics, never yields more records than the header
//! counts, and whatever it decodes re-encodes to records that decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_core::sync::wire::{self, Entry, MessageBuilder};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = wire::parse(data) else { return };
    let mut b = MessageBuilder::new(m.version, m.syncid, 65_000);
    let mut decoded = Vec::new();
    for e in m.entries() {
        match e {
            Ok(Entry::Record(r)) => {
                // Version 0 carries neither a timeout nor a fwmark nor IPv6: it reads 0 / v4.
                if b.push(&r) {
                    decoded.push(r);
                }
            }
            Ok(Entry::Skip(_)) => {}
            Err(_) => break,
        }
    }
    assert!(decoded.len() <= usize::from(m.count));
    if decoded.is_empty() {
        return;
    }
    let bytes = b.finish();
    let again = wire::parse(&bytes).expect("our own message");
    let back: Vec<_> = again
        .entries()
        .map(|e| match e {
            Ok(Entry::Record(r)) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    for (x, y) in decoded.iter().zip(&back) {
        // The kernel never sends HASHED; the encoder drops it.
        let mut x = *x;
        x.flags &= !wire::flags::HASHED;
        if m.version == wire::Version::V0 {
            x.flags &= 0xffff;
        }
        assert_eq!(x, *y);
    }
});
