//! The parser never panics, and what it reports lies inside the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_core::wire::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse(data) {
        assert!(usize::from(m.l3) <= data.len());
        assert!(usize::from(m.l4) <= data.len());
        assert!(usize::from(m.l3) + usize::from(m.ip_len) <= data.len());
        if let Some(e) = m.icmp {
            assert!(usize::from(e.inner_l4) + 4 <= data.len());
        }
    }
});
