//! The CI entry `.ci/run` turns on the guard "a missing prerequisite fails under CI" by itself: `sudo .ci/run`, as the
//! README says to run it, drops the caller's `CI`. Run here with every tool it checks for stubbed (so it installs
//! nothing) and a stand-in `scripts/test` that reports the environment it was given.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use simpul_integration::workspace_root;

fn executable(path: &Path, script: &str) {
    fs::write(path, script).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn ci_run_sets_ci_for_the_tests_even_when_sudo_dropped_it() {
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("checkout");
    fs::create_dir_all(checkout.join(".ci")).unwrap();
    fs::create_dir_all(checkout.join("scripts")).unwrap();
    fs::copy(workspace_root().join(".ci/run"), checkout.join(".ci/run")).unwrap();
    executable(&checkout.join("scripts/test"), "#!/bin/sh\necho \"CI=${CI-unset}\"\n");

    // Every tool `.ci/run` looks for, present; apt-get must not be reached.
    let stubs = dir.path().join("bin");
    fs::create_dir(&stubs).unwrap();
    for tool in ["nft", "wg", "wireguard-go", "ip", "iperf3", "curl", "openssl", "python3"] {
        executable(&stubs.join(tool), "#!/bin/sh\nexit 0\n");
    }
    executable(&stubs.join("apt-get"), "#!/bin/sh\necho apt-get reached >&2\nexit 1\n");

    let output = Command::new("bash")
        .arg(checkout.join(".ci/run"))
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", stubs.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout.trim(), "CI=true", "{output:?}");
}
