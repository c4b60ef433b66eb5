//! `ipvsadm -Ln --daemon` against Linux 6.12 and ipvsadm 1.31 (`tests/data/oracle-sync/`, of
//! which only each case's `steps.txt` and `daemon.txt` are kept): the `--start-daemon` and
//! `--stop-daemon` lines of `steps.txt` go through the ipvsadm parser and `Director::execute`
//! on one director per role prefix (`master:`, `backup:`), and `daemon.txt` — a `#` title per
//! director, then what ipvsadm printed — must come out byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lvs::core::config::{list, parse_command, ListOptions};
use lvs::{Director, DirectorConfig, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oracle-sync")
}

/// Runs the daemon verbs of `steps.txt` in order, each on the director its prefix names.
fn directors(steps: &str) -> BTreeMap<String, Director> {
    let mut out = BTreeMap::new();
    for line in steps.lines().filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace().skip(1);
        let (Some(who), Some("ipvsadm")) = (words.next(), words.next()) else { continue };
        let args: Vec<&str> = words.collect();
        if !args.iter().any(|a| *a == "--start-daemon" || *a == "--stop-daemon") {
            continue;
        }
        let cmd = parse_command(&args).unwrap_or_else(|e| panic!("{line}: {e}"));
        let d = out
            .entry(who.trim_end_matches(':').to_string())
            .or_insert_with(|| lvs::director(DirectorConfig::default()));
        d.execute(&cmd).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    out
}

/// `daemon.txt` rebuilt with our listings under its titles: a `# ROLE director, …` line, the
/// listing of the director that ran the `ROLE:` steps, and a blank line between directors.
fn rebuild(expected: &str, ds: &BTreeMap<String, Director>) -> String {
    let titles: Vec<&str> = expected.lines().filter(|l| l.starts_with('#')).collect();
    let sections: Vec<String> = titles
        .iter()
        .map(|title| {
            let role = title.trim_start_matches("# ").split_whitespace().next().unwrap_or_default();
            let d = ds.get(role).unwrap_or_else(|| panic!("no steps for the {role} director"));
            format!("{title}\n{}", list(d, Instant::ZERO, ListOptions::Daemon))
        })
        .collect();
    sections.join("\n")
}

fn check(case: &str) {
    let dir = root().join(case);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{case}/{f}: {e}"));
    let expected = read("daemon.txt");
    let ours = rebuild(&expected, &directors(&read("steps.txt")));
    assert_eq!(ours, expected, "{case}: -Ln --daemon differs from ipvsadm 1.31");
}

macro_rules! daemon_cases {
    ($($test:ident => $dir:literal),* $(,)?) => {
        $(#[test] fn $test() { check($dir); })*

        #[test]
        fn every_sync_case_folder_has_a_daemon_test() {
            let listed = [$($dir),*];
            for e in std::fs::read_dir(root()).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    let name = e.file_name().into_string().unwrap();
                    assert!(listed.contains(&name.as_str()), "sync case {name} has no daemon test");
                }
            }
        }
    };
}

daemon_cases! {
    daemon_b_custom_syncid0 => "b-custom-syncid0",
    daemon_b_v0_inject => "b-v0-inject",
    daemon_b_v1_inject => "b-v1-inject",
    daemon_b_v6_transport => "b-v6-transport",
    daemon_m_mcast_custom => "m-mcast-custom",
    daemon_m_thresholds => "m-thresholds",
    daemon_m_v0 => "m-v0",
    daemon_m_v1_default => "m-v1-default",
    daemon_m_v6_mcast6 => "m-v6-mcast6",
    daemon_pair_v0 => "pair-v0",
    daemon_pair_v1 => "pair-v1",
}
