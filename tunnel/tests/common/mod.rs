//! Prerequisites, network namespaces, a wireguard-go client and a small HTTP responder for the tunnel's system tests.
//! Entering a namespace and stopping what runs in it come from simpul-integration's `netns` module (a
//! dev-dependency), shared with the tunnel benchmark.

// Each test file compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use simpul_integration::netns;
use simpul_tunnel::PublicKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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

/// A network namespace joined by a veth pair on a private /24 to the root namespace or to another namespace, removed
/// on drop with everything started in it.
pub struct Netns {
    pub name: String,
    /// A name unique to this namespace and process, short enough for an interface.
    pub tag: String,
    /// The root namespace's end of the veth, if the other end is there.
    host_veth: Option<String>,
    /// The other end of the veth: in the root namespace, or in the paired namespace.
    pub host_ip: String,
    pub ns_ip: String,
    children: Vec<Child>,
}

impl Netns {
    fn bare() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id());
        let ns = Self {
            name: format!("simpul-tun-{tag}"),
            tag,
            host_veth: None,
            host_ip: String::new(),
            ns_ip: String::new(),
            children: Vec::new(),
        };
        run("ip", &["netns", "add", &ns.name]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn veth_up(&self, veth: &str, ip: &str) {
        self.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", veth]);
        self.exec(&["ip", "link", "set", veth, "up"]);
    }

    /// A namespace joined to the root namespace.
    pub fn new() -> Self {
        let mut ns = Self::bare();
        let host_veth = format!("vh{}", ns.tag);
        let ns_veth = format!("vn{}", ns.tag);
        let subnet = free_subnet(std::process::id() + COUNTER.load(Ordering::Relaxed) * 7);
        (ns.host_ip, ns.ns_ip) = (format!("{subnet}.1"), format!("{subnet}.2"));
        run("ip", &["link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth, "netns", &ns.name]);
        ns.host_veth = Some(host_veth);
        let host_veth = ns.host_veth.as_deref().unwrap();
        run("ip", &["addr", "add", &format!("{}/24", ns.host_ip), "dev", host_veth]);
        run("ip", &["link", "set", host_veth, "up"]);
        ns.veth_up(&ns_veth, &ns.ns_ip);
        ns
    }

    /// Two namespaces joined to each other and to nothing else, so that neither sees the root namespace's addresses.
    pub fn pair() -> (Self, Self) {
        let (mut a, mut b) = (Self::bare(), Self::bare());
        // The /24 exists only inside the two namespaces, so it cannot collide with anything outside them.
        let subnet = format!("10.214.{}", std::process::id() % 250 + 1);
        (a.ns_ip, a.host_ip) = (format!("{subnet}.1"), format!("{subnet}.2"));
        (b.ns_ip, b.host_ip) = (a.host_ip.clone(), a.ns_ip.clone());
        let (a_veth, b_veth) = (format!("va{}", a.tag), format!("vb{}", b.tag));
        a.exec(&["ip", "link", "add", &a_veth, "type", "veth", "peer", "name", &b_veth, "netns", &b.name]);
        a.veth_up(&a_veth, &a.ns_ip);
        b.veth_up(&b_veth, &b.ns_ip);
        (a, b)
    }

    /// Runs `f` on a thread inside the namespace: sockets and devices it creates live there, whichever thread uses
    /// them later.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::enter(&self.name, f)
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
        for child in self.children.drain(..) {
            netns::terminate(child);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        if let Some(veth) = &self.host_veth {
            let _ = Command::new("ip").args(["link", "del", veth]).stderr(Stdio::null()).status();
        }
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

/// Starts `wireguard-go` in `ns` with keys from `wg genkey`/`wg pubkey` (so key handling is checked against
/// wireguard-tools too), configures it with `wg set` for one peer, the gateway at `endpoint` owning 10.77.0.0/16, and
/// gives the interface `addresses` (/16 each). Returns the interface name and the client's public key.
pub async fn wireguard_go(
    ns: &mut Netns,
    dir: &Path,
    gateway: PublicKey,
    endpoint: SocketAddr,
    addresses: &[&str],
) -> (String, PublicKey) {
    let private = run("wg", &["genkey"]);
    let key_file = dir.join(format!("client-{}.key", ns.tag));
    std::fs::write(&key_file, &private.stdout).unwrap();
    let mut pubkey = Command::new("wg").arg("pubkey").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    io::Write::write_all(pubkey.stdin.as_mut().unwrap(), &private.stdout).unwrap();
    let public = stdout(&pubkey.wait_with_output().unwrap()).parse().unwrap();

    let iface = format!("wgs{}", ns.tag);
    ns.spawn(&["wireguard-go", "-f", &iface], &[("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")]);
    let up = eventually(Duration::from_secs(10), async || {
        ns.output(&["ip", "link", "show", &iface]).await.status.success().then_some(())
    });
    assert!(up.await.is_some(), "wireguard-go created {iface}");
    let (gateway, endpoint) = (gateway.to_string(), endpoint.to_string());
    let key_path = key_file.to_str().unwrap();
    ns.exec(&[
        "wg",
        "set",
        &iface,
        "private-key",
        key_path,
        "peer",
        &gateway,
        "endpoint",
        &endpoint,
        "allowed-ips",
        "10.77.0.0/16",
    ]);
    for address in addresses {
        ns.exec(&["ip", "addr", "add", &format!("{address}/16"), "dev", &iface]);
    }
    ns.exec(&["ip", "link", "set", &iface, "up"]);
    (iface, public)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The body size of `/big` and the largest `/upload` the responder takes.
pub const BIG: usize = 4 << 20;

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A tiny HTTP/1.1 responder: `/` answers `greeting` (who the server thinks the caller is), `/big` sends a known
/// pattern, `/upload` counts and sums what it receives.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, greeting: String) -> io::Result<()> {
    let mut request = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(pos) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if request.len() > 16 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = match path.as_str() {
        "/big" => pattern(BIG),
        "/upload" => {
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
                .min(BIG);
            let mut received = request[head_end..].to_vec();
            while received.len() < length {
                let mut chunk = vec![0u8; 64 * 1024];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&chunk[..n]);
            }
            let sum: u64 = received.iter().map(|&b| u64::from(b)).sum();
            format!("received={} sum={sum}\n", received.len()).into_bytes()
        }
        _ => format!("{greeting}\n").into_bytes(),
    };
    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// Downloads `/big` and uploads `BIG` random bytes through the tunnel with curl from `ns`, and checks both arrived
/// intact: many segments, windows filling and draining.
pub async fn bulk_both_ways(ns: &Netns, dir: &Path) {
    let big = ns.output(&["curl", "-sS", "--max-time", "30", "http://10.77.0.1:8000/big"]).await;
    assert!(big.status.success(), "curl /big: {}", String::from_utf8_lossy(&big.stderr));
    assert!(big.stdout == pattern(BIG), "downloaded {} bytes, not the pattern", big.stdout.len());
    let upload: Vec<u8> = (0..BIG).map(|_| rand::random()).collect();
    let upload_file = dir.join(format!("upload-{}.bin", ns.tag));
    std::fs::write(&upload_file, &upload).unwrap();
    let sum: u64 = upload.iter().map(|&b| u64::from(b)).sum();
    let data = format!("@{}", upload_file.display());
    let up =
        ns.output(&["curl", "-sS", "--max-time", "30", "--data-binary", &data, "http://10.77.0.1:8000/upload"]).await;
    assert!(up.status.success(), "curl /upload: {}", String::from_utf8_lossy(&up.stderr));
    assert_eq!(stdout(&up), format!("received={BIG} sum={sum}"));
}
