//! Rule files never panic the parser; whatever parses applies atomically, and what applied saves
//! to rules that read back to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_core::config::save;
use lvs_core::DirectorConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut d = lvs::director(DirectorConfig::default());
    match d.restore(text) {
        Ok(()) => {
            let saved = save(&d);
            let mut e = lvs::director(DirectorConfig::default());
            e.restore(&saved).expect("saved rules read back");
            assert_eq!(save(&e), saved);
        }
        Err(_) => assert!(d.services().next().is_none(), "a bad file applied something"),
    }
});
