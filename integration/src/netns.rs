//! Helpers for network namespaces shared by the tunnel benchmark and simpul-tunnel's system tests.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

/// Runs `f` on a thread inside the network namespace `name` (as made by `ip netns add`): sockets and devices it
/// creates live there, whichever thread uses them later. Only that thread moves; the rest of the process stays put.
pub fn enter<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns into namespace {name}: {e}"));
                f()
            })
            .join()
            .expect("the thread in the namespace panicked")
    })
}

/// Stops a process started in a namespace: SIGTERM first, so that wireguard-go removes its interface and UAPI
/// socket; SIGKILL if it lingers for 2 s.
pub fn terminate(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
