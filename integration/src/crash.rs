//! Crashes for durability tests: a test runs one of its own binary's tests in a child process, which writes, flushes
//! and says so, and kills it with SIGKILL the moment it has said so. No destructor runs and sled gets no clean drop
//! (whose own flush would make a test pass with the flush under test deleted), so what the reopened database holds
//! is what the flush made durable.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Runs the test named exactly `test` (ignored, so that a plain `cargo test` skips it) of the running test binary
/// with `env` set, waits for a line of its output ending in `acknowledged`, then kills it with SIGKILL. Panics when
/// the child ends without acknowledging (it failed before its flush returned).
pub fn kill_once_acknowledged(test: &str, env: (&str, &OsStr), acknowledged: &str) {
    let mut child = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the test binary again");
    let stdout = BufReader::new(child.stdout.take().expect("a piped stdout"));
    // The harness prints "test NAME ... " without a line end before the test runs, so the child's line may share it.
    let seen = stdout.lines().map_while(Result::ok).any(|line| line.ends_with(acknowledged));
    // Child::kill is SIGKILL on Unix.
    let _ = child.kill();
    let status = child.wait().expect("reaping the child");
    assert!(seen, "{test} ended ({status}) without printing {acknowledged:?}");
}

/// The child's side: prints `acknowledged` on a line of its own and waits to be killed. Never returns.
pub fn acknowledge_and_wait(acknowledged: &str) -> ! {
    // Rust's stdout is line-buffered: the line is out before the wait begins.
    println!("\n{acknowledged}");
    loop {
        std::thread::park();
    }
}
