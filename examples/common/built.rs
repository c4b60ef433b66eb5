//! The built example binaries a root test runs as separate processes (`examples/director`,
//! `examples/lvsadm`), built on first use in the test's own profile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built example `name`, in this test's profile (`target/<profile>/examples/<name>`):
/// `cargo build --example director --example lvsadm` runs once per test process (a no-op when
/// `cargo test --workspace` built them already).
///
/// # Panics
/// When the build fails.
pub(crate) fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let profile_dir = BUILT.get_or_init(|| {
        // target/<profile>/deps/<test>-<hash>
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--example", "director", "--example", "lvsadm", "--manifest-path"]);
        cargo.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        assert!(cargo.status().unwrap().success(), "cargo build of the examples failed");
        dir
    });
    profile_dir.join("examples").join(name)
}
