//! Replays every recorded Linux 6.12 IPVS case in `tests/data/oracle/` through the library and
//! compares, connection by connection and byte by byte, with what the kernel did: the
//! assignment of every connection, the connection table, the `ipvsadm -Ln` listings (sorted and
//! in list order), the `--stats` totals, and every frame the director transmitted. [`daemon`]
//! does the same for `ipvsadm -Ln --daemon` over the connection-sync cases.

#[path = "../examples/common/case.rs"]
#[allow(dead_code)]
mod case;
#[path = "oracle/daemon.rs"]
mod daemon;

use std::path::{Path, PathBuf};

use case::{run_case, CaseRun};
use lvs::dataplane::pcap::read_capture;

fn case_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oracle").join(name)
}

/// The expire column (`MM:SS`) of `-Lcn` depends on timer granularity; allow one second.
fn lcn_rows_match(ours: &str, theirs: &str) -> bool {
    let norm = |s: &str| -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = s
            .lines()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w.get(1).and_then(|e| e.split_once(':')) {
                    Some((m, s)) if m.len() == 2 => {
                        let secs = m.parse::<i64>().unwrap_or(0) * 60 + s.parse::<i64>().unwrap_or(0);
                        let mut rest = w.clone();
                        rest.remove(1);
                        (rest.join(" "), secs)
                    }
                    _ => (w.join(" "), 0),
                }
            })
            .collect();
        v.sort();
        v
    };
    let (a, b) = (norm(ours), norm(theirs));
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() <= 1)
}

/// ICMP errors the director makes itself carry an IP ID the kernel drew at random: blank it and
/// the header checksum that covers it before comparing.
fn normalise(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let is_v4_icmp = f.get(12..14) == Some(&[0x08, 0x00]) && f.get(23) == Some(&1) && f.get(15) == Some(&0xc0);
    if is_v4_icmp {
        for i in [18, 19, 24, 25] {
            if let Some(b) = f.get_mut(i) {
                *b = 0;
            }
        }
    }
    f
}

fn check_case(name: &str) {
    let dir = case_dir(name);
    let run: CaseRun = run_case(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut failures = Vec::new();
    for (k, files) in &run.snapshots {
        for (file, ours) in files {
            let path = dir.join(format!("expected-{k}/{file}"));
            let theirs = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let same = if file == "Lcn.txt" { lcn_rows_match(ours, &theirs) } else { *ours == theirs };
            if !same {
                failures.push(format!("--- expected-{k}/{file}\n{theirs}+++ ours\n{ours}"));
            }
        }
    }
    for (n, ours) in &run.outputs {
        let theirs = read_capture(&dir.join(format!("output-{n}.pcap"))).expect("output capture");
        if ours.len() != theirs.len() {
            failures.push(format!("output-{n}.pcap: {} frames, kernel sent {}", ours.len(), theirs.len()));
        }
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            if normalise(&a.data) != normalise(&b.data) {
                failures.push(format!(
                    "output-{n}.pcap frame {i} differs:\n ours   {:02x?}\n kernel {:02x?}",
                    a.data, b.data
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{name} differs from the kernel:\n{}", failures.join("\n"));
}

macro_rules! cases {
    ($($test:ident => $dir:literal),* $(,)?) => {
        $(#[test] fn $test() { check_case($dir); })*

        #[test]
        fn every_case_folder_has_a_test() {
            let listed = [$($dir),*];
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oracle");
            for e in std::fs::read_dir(root).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    let name = e.file_name().into_string().unwrap();
                    assert!(listed.contains(&name.as_str()), "case {name} has no test");
                }
            }
        }
    };
}

cases! {
    dh_fwmark_dr => "dh-fwmark-dr",
    dyn_add_wlc_dr => "dyn-add-wlc-dr",
    dyn_del_rr_dr => "dyn-del-rr-dr",
    dyn_weight_wrr_dr => "dyn-weight-wrr-dr",
    fo_dr => "fo-dr",
    lblc_fwmark_dr => "lblc-fwmark-dr",
    lblc_overload_dr => "lblc-overload-dr",
    lblcr_fwmark_dr => "lblcr-fwmark-dr",
    lblcr_overload_dr => "lblcr-overload-dr",
    lc_dr => "lc-dr",
    mh_dr => "mh-dr",
    mh_port_dr => "mh-port-dr",
    mode_dr_wrr => "mode-dr-wrr",
    mode_nat_wrr => "mode-nat-wrr",
    mode_tun_wrr => "mode-tun-wrr",
    nq_dr => "nq-dr",
    ovf_dr => "ovf-dr",
    persist_fwmark_dr => "persist-fwmark-dr",
    persist_netmask_dr => "persist-netmask-dr",
    rr_dr => "rr-dr",
    sed_dr => "sed-dr",
    sh_dr => "sh-dr",
    sh_fallback_dr => "sh-fallback-dr",
    sh_noflag_w0_dr => "sh-noflag-w0-dr",
    sh_port_dr => "sh-port-dr",
    thresholds_rr_dr => "thresholds-rr-dr",
    udp_ops_dr => "udp-ops-dr",
    udp_wrr_dr => "udp-wrr-dr",
    v6_nat_rr => "v6-nat-rr",
    v6_wrr_dr => "v6-wrr-dr",
    wlc_dr => "wlc-dr",
    wrr_dr => "wrr-dr",
}
