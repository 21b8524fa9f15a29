//! Prerequisites and network namespaces for the tunnel's system tests. A local copy of the few helpers needed, so
//! that simpul-tunnel does not depend on simpul-integration.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True under CI, where a missing prerequisite fails the test instead of skipping it.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Returns why `test` cannot run here, after saying so loudly; panics instead under CI.
pub fn missing_prerequisite(test: &str, tools: &[&str]) -> bool {
    let why = if !is_root() {
        Some("needs root".to_string())
    } else {
        tools.iter().find(|t| which(t).is_none()).map(|t| format!("needs {t}"))
    };
    let Some(why) = why else { return false };
    if in_ci() {
        panic!("{test}: prerequisite missing under CI: {why}");
    }
    // Straight to the file descriptor: libtest captures `eprintln!` of passing tests, and a skip must be seen.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("SKIPPED ({why}): {test}\n").as_bytes());
    true
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| PathBuf::from(dir).join(tool))
        .find(|p| p.is_file())
}

/// Runs a command to completion and fails the test if it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T>(timeout: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace joined to the root namespace by a veth pair on a private /24, removed on drop with everything
/// started in it.
pub struct Netns {
    pub name: String,
    /// A name unique to this namespace and process, short enough for an interface.
    pub tag: String,
    host_veth: String,
    /// The root namespace's end of the veth.
    pub host_ip: String,
    pub ns_ip: String,
    children: Vec<Child>,
}

impl Netns {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id());
        let name = format!("simpul-tun-{tag}");
        let host_veth = format!("vh{tag}");
        let ns_veth = format!("vn{tag}");
        let subnet = free_subnet(std::process::id() + n * 7);
        let ns = Self {
            name,
            tag,
            host_veth,
            host_ip: format!("{subnet}.1"),
            ns_ip: format!("{subnet}.2"),
            children: Vec::new(),
        };
        run("ip", &["netns", "add", &ns.name]);
        run("ip", &["link", "add", &ns.host_veth, "type", "veth", "peer", "name", &ns_veth, "netns", &ns.name]);
        run("ip", &["addr", "add", &format!("{}/24", ns.host_ip), "dev", &ns.host_veth]);
        run("ip", &["link", "set", &ns.host_veth, "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{}/24", ns.ns_ip), "dev", &ns_veth]);
        ns.exec(&["ip", "link", "set", &ns_veth, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        command
    }

    /// Runs a command in the namespace; the test fails if it fails.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs a command in the namespace and returns its output, successful or not.
    pub async fn output(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::from(self.command(args));
        command.kill_on_drop(true).output().await.expect("ip netns exec runs")
    }

    /// Starts a long-running process in the namespace; it is stopped when the namespace is dropped.
    pub fn spawn(&mut self, args: &[&str], envs: &[(&str, &str)]) {
        let child = self
            .command(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        self.children.push(child);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            // SIGTERM first so that wireguard-go removes its UAPI socket; SIGKILL if it lingers.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = Command::new("ip").args(["link", "del", &self.host_veth]).stderr(Stdio::null()).status();
    }
}

/// A 10.213.x.0/24 with no address on this machine yet.
fn free_subnet(seed: u32) -> String {
    (0..250)
        .map(|i| format!("10.213.{}", (seed + i) % 250 + 1))
        .find(|s| {
            let out = run("ip", &["-o", "addr", "show", "to", &format!("{s}.0/24")]);
            out.stdout.is_empty()
        })
        .expect("a free /24 in 10.213.0.0/16")
}
