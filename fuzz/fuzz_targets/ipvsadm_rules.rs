//! Rule files never panic the parser; whatever parses applies atomically, and what applied saves
//! to rules that read back to the same configuration. (The saved text itself may differ in
//! order: ipvsadm's address comparison is not transitive, so its sort depends on list order.
//! One save ipvsadm 1.31 cannot read back itself is left out: an `sh`/`mh` service whose only
//! flag is `flag-3` saves as a bare `-b `.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_core::config::{parse_rules, restore, save};
use lvs_core::DirectorConfig;

fn config(rules: &str) -> Vec<String> {
    let mut v: Vec<String> = parse_rules(rules).unwrap().iter().map(|c| format!("{c:?}")).collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut d = lvs::director(DirectorConfig::default());
    match restore(&mut d, text) {
        Ok(()) => {
            let saved = save(&d);
            if saved.lines().any(|l| l.ends_with(" -b ")) {
                return;
            }
            let mut e = lvs::director(DirectorConfig::default());
            restore(&mut e, &saved).expect("saved rules read back");
            assert_eq!(config(&save(&e)), config(&saved));
        }
        Err(_) => assert!(d.services().next().is_none(), "a bad file applied something"),
    }
});
