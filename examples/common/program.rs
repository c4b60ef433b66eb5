//! Whether a test that runs someone else's program can run here: tests that need no root, only
//! programs on the `PATH`, ask first (`root.rs` is the same question with root).

/// Whether every program of `programs` is on the `PATH`. When one is missing, under CI
/// (`CI=true`) the test fails, so that a runner without it cannot pass by accident; elsewhere it
/// prints that it was skipped and the caller returns.
///
/// # Panics
/// Under CI, when a program is missing.
pub(crate) fn can_run(programs: &[&str]) -> bool {
    use std::io::Write as _;

    let on_path = |p: &&str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(p).is_file()))
    };
    let missing: Vec<String> = programs.iter().filter(|p| !on_path(p)).map(|p| format!("`{p}`")).collect();
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
