//! Issue 16's flood goals for the SYN proxy (NAT), at a tenth of a million spoofed SYNs:
//! at least 99.9 % of legitimate clients connect, spoofed SYNs create no entry, every
//! established flow survives. `examples/synflood` runs the full ten million.

#[path = "../examples/common/synflood.rs"]
mod synflood;

#[test]
fn a_syn_flood_leaves_no_entries_and_locks_nobody_out() {
    let r = synflood::run(1_000, 100_000, 1_000);
    assert_eq!(r.spoofed, 100_000);
    assert_eq!(r.cookies_sent, 100_000 + r.legit_tried + 1_000, "every SYN got a cookie");
    assert_eq!(r.established, 1_000);
    assert!(r.legit_ok * 1000 >= r.legit_tried * 999, "{r:?}");
    assert_eq!(r.spoofed_entries, 0, "{r:?}");
    assert_eq!(r.survived, r.established, "{r:?}");
}
