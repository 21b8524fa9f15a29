//! Network namespaces for system tests and benchmarks (root): entering one from a thread, namespaces joined by veth
//! pairs that clean up after themselves, commands run in them, a `wireguard-go` peer started in one, and the small
//! helpers around those (prerequisite checks, polling). Shared by simpul-tunnel's system tests, the tunnel benchmark
//! and the gateway's system tests.
//!
//! The helpers that take no `Result` panic on failure: they are meant for tests, where a failed `ip` command is a
//! failed test.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use simpul_tunnel::PublicKey;

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

/// Where `tool` is, searching `PATH` and then `/usr/sbin` and `/sbin` (where `ip` lives, often outside a non-root
/// `PATH`).
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| PathBuf::from(dir).join(tool))
        .find(|p| p.is_file())
}

/// Whether `test` must be skipped because this process is not root or one of `tools` is missing. If so, it says so
/// loudly with [`crate::skip`] (which panics instead under CI, where nothing may be skipped) and returns true, so the
/// test can `return`.
pub fn missing_prerequisite(test: &str, tools: &[&str]) -> bool {
    missing(test, true, tools)
}

/// Like [`missing_prerequisite`] for a test that needs only `tools`, not root (`wg genkey`, `wg-quick strip`).
pub fn missing_tools(test: &str, tools: &[&str]) -> bool {
    missing(test, false, tools)
}

fn missing(test: &str, needs_root: bool, tools: &[&str]) -> bool {
    let why = if needs_root && !crate::is_root() {
        Some("needs root".to_string())
    } else {
        tools.iter().find(|t| which(t).is_none()).map(|t| format!("needs {t}"))
    };
    let Some(why) = why else { return false };
    crate::skip(test, &why);
    true
}

/// Runs a command to completion and panics (fails the test) if it cannot start or exits unsuccessfully, with its
/// output in the message.
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    succeeded(program, args, output)
}

/// Like [`run`], with `stdin` written to the command's standard input (`wg pubkey`, `wg-quick strip /dev/stdin`).
pub fn run_with_stdin(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    succeeded(program, args, output_with_stdin(program, args, stdin))
}

/// Runs a command to completion with `stdin` written to its standard input and returns its output, successful or
/// not: for a test that expects a refusal (`wg setconf` of a broken file) or reads the reason from stderr. Panics
/// only if the command cannot start or take its input. [`run_with_stdin`] is the same, asserting success.
pub fn output_with_stdin(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap_or_else(|e| panic!("{program}: stdin: {e}"));
    child.wait_with_output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `output`, after panicking with its stdout and stderr in the message if the command exited unsuccessfully.
fn succeeded(program: &str, args: &[&str], output: Output) -> Output {
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A command's standard output as text, trimmed.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Polls `check` every 50 ms until it returns `Some`, which it returns, or `timeout` passes (`None`). Needs a Tokio
/// runtime with the timer enabled.
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

/// Held while a /24 is looked for and taken (see [`Netns::new_named`]). An flock, which conflicts between any two
/// opens of the file, so it keeps apart the threads of one test process as well as parallel test processes.
const SUBNET_LOCK: &str = "/run/simpul-netns-subnet.lock";

/// A `10.213.x.0/24` that no interface of the current namespace has an address in yet, trying `x` from `seed` on.
/// Panics if all 250 are taken. Free only until someone takes it: look and take under [`SUBNET_LOCK`].
fn free_subnet(seed: u32) -> String {
    (0..250)
        .map(|i| format!("10.213.{}", (seed.wrapping_add(i)) % 250 + 1))
        .find(|s| {
            let out = run("ip", &["-o", "addr", "show", "to", &format!("{s}.0/24")]);
            out.stdout.is_empty()
        })
        .expect("a free /24 in 10.213.0.0/16")
}

/// The namespace name prefix of [`Netns::new`] and [`Netns::pair`]: the tunnel tests'.
pub const DEFAULT_PREFIX: &str = "simpul-tun";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace, `{prefix}-{tag}`, with `lo` up and a veth pair on a private /24 to the root namespace
/// ([`Netns::new`]) or to another namespace ([`Netns::pair`]). Dropping it stops everything started with
/// [`Netns::spawn`], deletes the namespace and its root-side veth.
#[derive(Debug)]
pub struct Netns {
    /// The namespace's name, for `ip netns exec` and [`enter`].
    pub name: String,
    /// A name unique to this namespace and process, short enough to go into an interface name (`vh{tag}`, `wgs{tag}`)
    /// or a file name.
    pub tag: String,
    /// The root namespace's end of the veth, if the other end is there.
    host_veth: Option<String>,
    /// The address of the veth's other end: in the root namespace, or in the paired namespace.
    pub host_ip: String,
    /// The address of the veth's end in this namespace.
    pub ns_ip: String,
    children: Vec<Child>,
}

impl Netns {
    /// The namespace, and the number this process gave it (one `fetch_add`, so no two namespaces share one).
    fn bare(prefix: &str) -> (Self, u32) {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // The separator keeps tags of different processes apart (pid 12 and n 34 against pid 123 and n 4).
        let tag = format!("{}x{n}", std::process::id());
        let ns = Self {
            name: format!("{prefix}-{tag}"),
            tag,
            host_veth: None,
            host_ip: String::new(),
            ns_ip: String::new(),
            children: Vec::new(),
        };
        run("ip", &["netns", "add", &ns.name]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        (ns, n)
    }

    fn veth_up(&self, veth: &str, ip: &str) {
        self.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", veth]);
        self.exec(&["ip", "link", "set", veth, "up"]);
    }

    /// A namespace named `{prefix}-{tag}` with only `lo` (up): joined to nothing, `host_ip` and `ns_ip` empty. For
    /// tests of what happens inside one namespace (nftables, devices).
    pub fn isolated(prefix: &str) -> Self {
        Self::bare(prefix).0
    }

    /// A namespace named with [`DEFAULT_PREFIX`], joined to the root namespace: see [`Netns::new_named`].
    #[allow(clippy::new_without_default)] // Creating a namespace is not a default value.
    pub fn new() -> Self {
        Self::new_named(DEFAULT_PREFIX)
    }

    /// A namespace named `{prefix}-{tag}`, joined to the root namespace by a veth pair on a free 10.213.x.0/24
    /// ([`free_subnet`]): `host_ip` (`.1`) on the root side, `ns_ip` (`.2`) inside. Namespaces made at once, in
    /// threads or in processes, get distinct subnets.
    pub fn new_named(prefix: &str) -> Self {
        let (mut ns, n) = Self::bare(prefix);
        let host_veth = format!("vh{}", ns.tag);
        let ns_veth = format!("vn{}", ns.tag);
        run("ip", &["link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth, "netns", &ns.name]);
        ns.host_veth = Some(host_veth);
        let host_veth = ns.host_veth.as_deref().unwrap();
        {
            // The root-side address is what marks the /24 taken for the next look, so it is added under the lock.
            let lock = std::fs::File::options().create(true).append(true).open(SUBNET_LOCK);
            let lock = lock.unwrap_or_else(|e| panic!("{SUBNET_LOCK}: {e}"));
            lock.lock().unwrap_or_else(|e| panic!("locking {SUBNET_LOCK}: {e}"));
            // Threads start their search apart; the lock, not the seed, keeps them from sharing a subnet.
            let subnet = free_subnet(std::process::id().wrapping_add(n.wrapping_mul(7)));
            (ns.host_ip, ns.ns_ip) = (format!("{subnet}.1"), format!("{subnet}.2"));
            run("ip", &["addr", "add", &format!("{}/24", ns.host_ip), "dev", host_veth]);
        }
        run("ip", &["link", "set", host_veth, "up"]);
        ns.veth_up(&ns_veth, &ns.ns_ip);
        ns
    }

    /// Two namespaces named with [`DEFAULT_PREFIX`], joined to each other: see [`Netns::pair_named`].
    pub fn pair() -> (Self, Self) {
        Self::pair_named(DEFAULT_PREFIX)
    }

    /// Two namespaces named `{prefix}-{tag}`, joined to each other and to nothing else, so that neither sees the root
    /// namespace's addresses. Each one's `ns_ip` is its own end of the veth and `host_ip` the other's.
    pub fn pair_named(prefix: &str) -> (Self, Self) {
        let ((mut a, _), (mut b, _)) = (Self::bare(prefix), Self::bare(prefix));
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
        enter(&self.name, f)
    }

    /// `ip netns exec {name} {args…}`, to configure and run as the caller likes.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        command
    }

    /// Runs a command in the namespace; panics (fails the test) if it fails.
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

    /// Starts a long-running process in the namespace, its standard output discarded and its standard error
    /// inherited, and returns its pid (of `ip netns exec`, which execs the program). It is stopped with [`terminate`]
    /// by [`Netns::stop`] or when the namespace is dropped.
    pub fn spawn(&mut self, args: &[&str], envs: &[(&str, &str)]) -> u32 {
        let child = self
            .command(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Stops the process `pid` started with [`Netns::spawn`]; false if there is none.
    pub fn stop(&mut self, pid: u32) -> bool {
        let Some(i) = self.children.iter().position(|c| c.id() == pid) else { return false };
        terminate(self.children.swap_remove(i));
        true
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in self.children.drain(..) {
            terminate(child);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        if let Some(veth) = &self.host_veth {
            let _ = Command::new("ip").args(["link", "del", veth]).stderr(Stdio::null()).status();
        }
    }
}

/// Whether the `wireguard-go` of interface `iface` listens for configuration. It creates the interface first and its
/// control socket after: `wg` run in between finds no socket, takes the interface for a kernel one and fails, so
/// wait for this, not for the interface. The socket's directory is shared by all network namespaces.
pub fn wireguard_go_listening(iface: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(format!("/var/run/wireguard/{iface}.sock")).is_ok_and(|m| m.file_type().is_socket())
}

/// Starts `wireguard-go` in `ns` and waits (up to 10 s) until it takes configuration for its interface, `wgs{tag}`,
/// whose name it returns. The interface is down and unconfigured; the process stops when `ns` is dropped. One per
/// namespace.
pub async fn start_wireguard_go(ns: &mut Netns) -> String {
    let iface = format!("wgs{}", ns.tag);
    ns.spawn(&["wireguard-go", "-f", &iface], &[("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")]);
    let up = eventually(Duration::from_secs(10), async || {
        (wireguard_go_listening(&iface) && ns.output(&["ip", "link", "show", &iface]).await.status.success())
            .then_some(())
    });
    assert!(up.await.is_some(), "wireguard-go created {iface}");
    iface
}

/// Starts `wireguard-go` in `ns` ([`start_wireguard_go`]), configures it with `wg setconf` from `config` (a
/// `wg(8)` configuration, such as `wg-quick strip` makes of a wg-quick file: keys, peers, endpoints, allowed IPs, no
/// addresses) and sets the interface up. Addresses and routes are the caller's (`ip addr add … dev {iface}`). Returns
/// the interface name.
pub async fn wireguard_go_with_config(ns: &mut Netns, config: &Path) -> String {
    let iface = start_wireguard_go(ns).await;
    ns.exec(&["wg", "setconf", &iface, config.to_str().expect("a UTF-8 path")]);
    ns.exec(&["ip", "link", "set", &iface, "up"]);
    iface
}

/// Starts a `wireguard-go` client in `ns` ([`start_wireguard_go`]) with keys from `wg genkey`/`wg pubkey` (so key
/// handling is checked against wireguard-tools too; the private key is written into `dir`), configures it with
/// `wg set` for one peer, the gateway `gateway` at `endpoint` owning Simpul's tunnel prefix 10.77.0.0/16, gives the
/// interface `addresses` (/16 each) and sets it up. Returns the interface name and the client's public key. For other
/// allowed IPs or several peers, see [`wireguard_go_with_config`].
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
    let public = stdout(&run_with_stdin("wg", &["pubkey"], &private.stdout)).parse().unwrap();

    let iface = start_wireguard_go(ns).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_tunnel::PrivateKey;

    #[test]
    fn namespaces_made_at_once_get_distinct_subnets() {
        if missing_prerequisite("namespaces_made_at_once_get_distinct_subnets", &["ip"]) {
            return;
        }
        let made: Vec<Netns> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..16).map(|_| scope.spawn(|| Netns::new_named("simpul-it"))).collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let subnets: std::collections::BTreeSet<&str> =
            made.iter().map(|ns| ns.host_ip.rsplit_once('.').unwrap().0).collect();
        assert_eq!(subnets.len(), made.len(), "{:?}", made.iter().map(|ns| &ns.host_ip).collect::<Vec<_>>());
    }

    #[test]
    fn an_isolated_namespace_has_only_loopback_and_goes_away_on_drop() {
        if missing_prerequisite("an_isolated_namespace_has_only_loopback_and_goes_away_on_drop", &["ip"]) {
            return;
        }
        let ns = Netns::isolated("simpul-it");
        let name = ns.name.clone();
        let links = stdout(&ns.exec(&["ip", "-o", "link", "show"]));
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(links.contains(": lo:") && links.contains(",UP"), "{links}");
        drop(ns);
        assert!(!stdout(&run("ip", &["netns", "list"])).lines().any(|l| l.split_whitespace().next() == Some(&name)));
    }

    /// Two wireguard-go peers in a pair of namespaces, each configured the way the gateway tests configure theirs:
    /// a wg-quick file, `wg-quick strip`, [`wireguard_go_with_config`], addresses by hand. Then a datagram through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wireguard_go_peers_configured_from_wg_quick_files_reach_each_other() {
        const NAME: &str = "wireguard_go_peers_configured_from_wg_quick_files_reach_each_other";
        if missing_prerequisite(NAME, &["wireguard-go", "wg", "wg-quick", "ip"]) {
            return;
        }
        let (mut a, mut b) = Netns::pair_named("simpul-it");
        assert!(a.name.starts_with("simpul-it-") && b.name.starts_with("simpul-it-"), "{}", a.name);
        let dir = tempfile::tempdir().unwrap();
        let (a_key, b_key) = (PrivateKey::generate(), PrivateKey::generate());
        let mut ifaces = Vec::new();
        // Each namespace's `host_ip` is the other's end of the veth.
        for (ns, key, peer, address) in [(&mut a, &a_key, &b_key, "10.99.0.1"), (&mut b, &b_key, &a_key, "10.99.0.2")] {
            let peer_ip = ns.host_ip.clone();
            let quick = dir.path().join(format!("wq{}.conf", ns.tag));
            let text = format!(
                "[Interface]\nPrivateKey = {}\nAddress = {address}/24\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\n\
                 Endpoint = {peer_ip}:51820\nAllowedIPs = 10.99.0.0/24\n",
                key.to_base64(),
                peer.public_key()
            );
            std::fs::write(&quick, text).unwrap();
            let stripped = dir.path().join(format!("wq{}.wg", ns.tag));
            std::fs::write(&stripped, run("wg-quick", &["strip", quick.to_str().unwrap()]).stdout).unwrap();
            let iface = wireguard_go_with_config(ns, &stripped).await;
            ns.exec(&["ip", "addr", "add", &format!("{address}/24"), "dev", &iface]);
            ifaces.push(iface);
        }
        let receiver = b.enter(|| std::net::UdpSocket::bind("10.99.0.2:9999")).unwrap();
        receiver.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let sender = a.enter(|| std::net::UdpSocket::bind("10.99.0.1:0")).unwrap();
        let mut buf = [0u8; 16];
        // The first datagram waits for the handshake; send again until one arrives.
        let received = (0..20).find_map(|_| {
            sender.send_to(b"through", "10.99.0.2:9999").unwrap();
            receiver.recv_from(&mut buf).ok()
        });
        let (n, from) = received.expect("a datagram crossed the tunnel");
        assert_eq!((&buf[..n], from.ip().to_string().as_str()), (&b"through"[..], "10.99.0.1"));
        let handshakes = stdout(&b.exec(&["wg", "show", &ifaces[1], "latest-handshakes"]));
        assert!(handshakes.starts_with(&a_key.public_key().to_string()), "{handshakes}");
    }
}
