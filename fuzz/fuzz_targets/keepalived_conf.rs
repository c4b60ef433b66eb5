//! Any text as a keepalived.conf never panics the reader, and reading it stays bounded: every
//! file it includes is the input itself (so includes nest, repeat and cycle at will), blocks
//! nest as deep as the input likes, parameters expand without end — the limits stop all of
//! it with an error. What reads is set up all or nothing: a refusal leaves the director empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_core::config::keepalived::{self, Interface, Limits, Options};
use lvs_core::config::save;
use lvs_core::config::source::Source;
use lvs_core::health::Monitor;
use lvs_core::{DirectorConfig, Instant};

/// Every path is the input; a pattern matches itself alone.
struct Echo<'a>(&'a str);

impl Source for Echo<'_> {
    fn read(&mut self, _path: &str) -> Result<String, String> {
        Ok(self.0.to_string())
    }

    fn glob(&mut self, pattern: &str) -> Vec<String> {
        vec![pattern.to_string()]
    }
}

fn interface(name: &str) -> Option<Interface> {
    let n = name.len() as u8;
    Some(Interface {
        port: u16::from(n),
        v4: Some([192, 0, 2, n].into()),
        v6: Some([0xfe80, 0, 0, 0, 0, 0, 0, 1].into()),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits =
        Limits { max_bytes: 1 << 20, max_files: 64, max_include_depth: 8, max_nesting: 16, max_line: 16 << 10 };
    let opts = Options { config_id: Some("main".into()), limits };
    let Ok(parsed) = keepalived::parse(&mut Echo(text), "keepalived.conf", &opts) else { return };
    assert!(parsed.warnings.iter().all(|w| w.line > 0));
    let deployment = parsed.config.deployment();
    let entries: usize =
        deployment.commands.len() + deployment.health.iter().map(|h| h.servers.len() + 1).sum::<usize>();
    if entries > 2048 {
        return;
    }
    let mut d = lvs::director(DirectorConfig::default());
    let mut m = Monitor::new(1);
    match parsed.config.apply(&mut d, &mut m, Instant::ZERO, &interface) {
        Ok(mut applied) => {
            let _ = save(&d);
            applied.vrrp.group.start(Instant::ZERO);
            while applied.vrrp.group.poll(Instant::ZERO).is_some() {}
        }
        Err(_) => assert!(d.services().next().is_none(), "a refused configuration applied something"),
    }
});
