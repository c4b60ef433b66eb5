//! The `/proc/net/ip_vs*` files on disk, for monitoring that reads a kernel director's:
//! [`write()`] puts a director's files ([`ProcFile`]) into a directory laid out like procfs, so
//! that Prometheus' node_exporter with `--path.procfs=DIR --collector.ipvs` (or a script that
//! reads `/proc/net/ip_vs`) sees the library's services, servers and counters.
//!
//! ```
//! let d = lvs::director(lvs::DirectorConfig::default());
//! let dir = std::env::temp_dir().join(format!("lvs-procfs-doc-{}", std::process::id()));
//! lvs::procfs::write(&dir, &d, lvs::Instant::ZERO)?;   // again every few seconds
//! assert!(std::fs::read_to_string(dir.join("net/ip_vs_stats"))?.starts_with("   Total Incoming"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io;
use std::path::Path;

use lvs_core::config::ProcFile;
use lvs_core::{Director, Instant};

/// Writes every [`ProcFile`] of `d` at `now` as `dir/net/NAME` (`dir/net/ip_vs`,
/// `dir/net/ip_vs_stats`, ...), creating `dir/net` if needed. Each file is written beside its
/// place (`dir/net/.NAME.tmp`) and renamed over it, so a reader sees the old file or the new
/// one, never a part.
///
/// DoS warning: the connection files grow with the connection table.
///
/// # Errors
/// The first error creating the directory, writing or renaming a file.
pub fn write(dir: &Path, d: &Director, now: Instant) -> io::Result<()> {
    let net = dir.join("net");
    fs::create_dir_all(&net)?;
    for f in ProcFile::ALL {
        let tmp = net.join(format!(".{}.tmp", f.name()));
        fs::write(&tmp, f.render(d, now))?;
        fs::rename(&tmp, net.join(f.name()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_replaced_whole_and_no_temporary_left() {
        let dir = std::env::temp_dir().join(format!("lvs-procfs-unit-{}", std::process::id()));
        let mut d = crate::director(lvs_core::DirectorConfig::default());
        write(&dir, &d, Instant::ZERO).unwrap();
        lvs_core::config::restore(&mut d, "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 2\n")
            .unwrap();
        write(&dir, &d, Instant::ZERO).unwrap();
        let mut names: Vec<String> =
            fs::read_dir(dir.join("net")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["ip_vs", "ip_vs_conn", "ip_vs_conn_sync", "ip_vs_stats", "ip_vs_stats_percpu"]);
        for f in ProcFile::ALL {
            assert_eq!(fs::read_to_string(dir.join("net").join(f.name())).unwrap(), f.render(&d, Instant::ZERO));
        }
        assert!(fs::read_to_string(dir.join("net/ip_vs")).unwrap().contains("TCP  0A000001:0050 rr  \n"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
