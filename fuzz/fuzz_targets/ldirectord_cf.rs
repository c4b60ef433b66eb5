//! Any text as an ldirectord.cf never panics the reader; what reads is set up all or nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_core::config::ldirectord;
use lvs_core::config::save;
use lvs_core::health::Monitor;
use lvs_core::{DirectorConfig, Instant};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(parsed) = ldirectord::parse(text, "ldirectord.cf") else { return };
    assert!(parsed.warnings.iter().all(|w| w.line > 0));
    let deployment = parsed.config.deployment();
    let entries: usize =
        deployment.commands.len() + deployment.health.iter().map(|h| h.servers.len() + 1).sum::<usize>();
    if entries > 2048 {
        return;
    }
    let mut d = lvs::director(DirectorConfig::default());
    match parsed.config.apply(&mut d, &mut Monitor::new(1), Instant::ZERO) {
        Ok(_) => {
            let _ = save(&d);
        }
        Err(_) => assert!(d.services().next().is_none(), "a refused configuration applied something"),
    }
});
