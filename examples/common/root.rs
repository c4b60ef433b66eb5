//! Whether a test that needs root or someone else's programs can run here: the tests and
//! test-lab binaries that build network namespaces, and the tests that run programs from the
//! `PATH`, ask first.

/// Whether a test that needs the given programs on the `PATH` (and root, with `as_root`) can run
/// here. When it cannot, under CI (`CI=true`) the test fails, so that a runner without them
/// cannot pass it by accident; elsewhere it prints that it was skipped and the caller returns.
///
/// # Panics
/// Under CI, when the test cannot run.
pub(crate) fn can_run(as_root: bool, programs: &[&str]) -> bool {
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;

    let on_path = |p: &&str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(p).is_file()))
    };
    let mut missing: Vec<String> = programs.iter().filter(|p| !on_path(p)).map(|p| format!("`{p}`")).collect();
    // /proc/self belongs to the process's effective user.
    if as_root && !std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        missing.insert(0, "root".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("this test").to_string();
    let why = format!("{test} needs {}", missing.join(", "));
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}, and CI (CI=true) must run every test");
    // Straight to stderr: the test harness captures `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    false
}
