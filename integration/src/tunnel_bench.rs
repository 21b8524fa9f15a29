//! The tunnel benchmark (root): TCP throughput through Simpul's tunnel in TUN mode and in userspace mode against
//! `wireguard-go` ↔ `wireguard-go` through the same namespaces in the same run; handshakes per second of the engine
//! against boringtun's bare responder; resident memory with many idle peers against wireguard-go holding the same
//! peers.
//!
//! Two network namespaces joined by a veth pair hold everything: the gateway side (Simpul in this process, its UDP
//! socket and TUN device created from a thread that entered the namespace; or `wireguard-go`) and the client side
//! (always `wireguard-go`, configured with `wg`). The gateway key, the client key, the port, the addresses and the MTU
//! (1420) are the same for every contender, and each measurement gets a fresh client and gateway, run in turns so
//! that background load falls on all of them alike.
//!
//! Load generators: `iperf3` for TUN mode and its anchor (the server on 10.77.0.1 in the gateway namespace). In
//! userspace mode the TCP endpoint is inside the gateway process, where iperf3 cannot run, so both that mode and its
//! anchor use this crate's own pair: a sink/source server (in the process: on the netstack for Simpul, on a kernel
//! socket in the gateway namespace for wireguard-go) and a client (`bench tunnel-load`, run in the client namespace)
//! that streams for the given seconds and computes the rate from the byte count the receiving side reports.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519;
use simpul_tunnel::netstack::{self, NetstackConfig};
use simpul_tunnel::tun::{TunConfig, TunFace};
use simpul_tunnel::{Engine, EngineConfig, Output as EngineOutput, PeerConfig, PrivateKey, PublicKey, Transmit};
use simpul_tunnel::{Face, TunnelHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;

use crate::bench::{median, BenchLine};
use crate::netns::{terminate, wireguard_go_listening};

const PORT: u16 = 51820;
const LOAD_PORT: u16 = 5001;
const IPERF_PORT: u16 = 5201;
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const WAIT: Duration = Duration::from_secs(10);
const CHUNK: usize = 128 * 1024;
const WG_GO: &str = "wireguard-go 0.0.20220316 (Debian)";

#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    pub seconds: u64,
    /// Idle peers for the memory figure.
    pub peers: usize,
    /// Initiations per run for the handshake figure.
    pub handshakes: usize,
    /// `IFF_VNET_HDR` offload on Simpul's TUN device, to see what it is worth.
    pub tun_offload: bool,
    /// Only the throughput figures.
    pub throughput_only: bool,
}

/// Which way the bulk data flows, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to gateway: the gateway decrypts and delivers.
    Up,
    /// Gateway to client: the gateway encrypts.
    Down,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "up" => Ok(Direction::Up),
            "down" => Ok(Direction::Down),
            other => bail!("direction is up or down, not {other:?}"),
        }
    }
}

/// Runs every figure and prints one JSON line each. `exe` is this benchmark binary, run again as the load client and
/// as the process whose memory is measured.
pub fn run(exe: &Path, options: &Options) -> Result<()> {
    if !crate::is_root() {
        bail!("the tunnel benchmark needs root (network namespaces, TUN devices)");
    }
    for tool in ["wireguard-go", "wg", "iperf3", "ip", "ss"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output()?.stdout.is_empty() {
            bail!("the tunnel benchmark needs {tool}");
        }
    }
    throughput(exe, options)?;
    if !options.throughput_only {
        handshakes(options)?;
        memory(exe, options)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------------
// Throughput

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gateway {
    SimpulTun,
    SimpulUserspace,
    /// wireguard-go as the gateway, measured with iperf3 (the TUN-mode anchor) or the load pair (userspace anchor).
    WireguardGo {
        iperf: bool,
    },
}

/// One measurement: the rate, and the CPU time the gateway side spent per gigabit carried.
#[derive(Debug, Clone, Copy)]
struct Sample {
    mbps: f64,
    cpu_ms_per_gbit: f64,
}

fn throughput(exe: &Path, options: &Options) -> Result<()> {
    let mut bench = Testbed::new(exe, options)?;
    let contenders = [
        Gateway::SimpulTun,
        Gateway::WireguardGo { iperf: true },
        Gateway::SimpulUserspace,
        Gateway::WireguardGo { iperf: false },
    ];
    let offload = if options.tun_offload { "on" } else { "off" };
    for direction in [Direction::Up, Direction::Down] {
        let mut results: Vec<Vec<Sample>> = vec![Vec::new(); contenders.len()];
        for _ in 0..options.runs {
            for (i, gateway) in contenders.iter().enumerate() {
                let sample =
                    bench.measure(*gateway, direction).with_context(|| format!("{gateway:?} {direction:?}"))?;
                eprintln!(
                    "tunnel {gateway:?} {}: {:.0} Mbit/s, gateway {:.0} CPU ms/Gbit",
                    direction.name(),
                    sample.mbps,
                    sample.cpu_ms_per_gbit
                );
                results[i].push(sample);
            }
        }
        let mbps: Vec<f64> = results.iter().map(|r| median(r.iter().map(|s| s.mbps).collect())).collect();
        let cpu: Vec<f64> = results.iter().map(|r| median(r.iter().map(|s| s.cpu_ms_per_gbit).collect())).collect();
        let way = match direction {
            Direction::Up => "client to gateway (gateway decrypts)",
            Direction::Down => "gateway to client (gateway encrypts)",
        };
        let dir = direction.name();
        let tun_notes = format!(
            "TUN mode (offload {offload}, one queue), iperf3 -t {} one TCP stream {way}; client wireguard-go in its \
             own netns over veth, MTU 1420; 2 cores shared by both ends",
            options.seconds
        );
        let user_notes = format!(
            "userspace mode (smoltcp, default 64 KiB socket buffers), one TCP stream {way} for {} s to/from a \
             sink/source in the gateway process; load client: `bench tunnel-load` (Rust, kernel TCP via the \
             client's wireguard-go); MTU 1420; 2 cores shared by both ends",
            options.seconds
        );
        let cpu_notes = "user+system CPU of the gateway processes (Simpul: this process; anchor: wireguard-go, plus \
                         this process when it hosts the load server) per Gbit carried; kernel softirq work is not \
                         counted; lower is better";
        let tun_anchor = format!("{WG_GO} gateway, same client");
        let user_anchor = format!("{WG_GO} gateway + kernel TCP, same client");
        let runs = options.runs;
        BenchLine::new(
            &format!("tunnel-throughput-tun-{dir}"),
            "Mbit/s",
            mbps[0],
            &tun_anchor,
            mbps[1],
            runs,
            &tun_notes,
        )
        .print();
        BenchLine::new(
            &format!("tunnel-cpu-tun-{dir}"),
            "gateway CPU ms/Gbit",
            cpu[0],
            &tun_anchor,
            cpu[1],
            runs,
            &format!("{cpu_notes}; {tun_notes}"),
        )
        .print();
        BenchLine::new(
            &format!("tunnel-throughput-userspace-{dir}"),
            "Mbit/s",
            mbps[2],
            &user_anchor,
            mbps[3],
            runs,
            &user_notes,
        )
        .print();
        BenchLine::new(
            &format!("tunnel-cpu-userspace-{dir}"),
            "gateway CPU ms/Gbit",
            cpu[2],
            &user_anchor,
            cpu[3],
            runs,
            &format!("{cpu_notes}; {user_notes}"),
        )
        .print();
    }
    Ok(())
}

/// The two namespaces, the keys and the runtime that the Simpul gateway runs on.
struct Testbed {
    runtime: Runtime,
    gateway_ns: Netns,
    client_ns: Netns,
    gateway_ip: Ipv4Addr,
    gateway_key: PrivateKey,
    client_key: PrivateKey,
    dir: tempfile::TempDir,
    exe: PathBuf,
    seconds: u64,
    tun: TunConfig,
}

/// What runs on the gateway side during one measurement; stopped on drop.
enum Running {
    Simpul { tunnel: TunnelHandle, driver: tokio::task::JoinHandle<()>, server: tokio::task::JoinHandle<()> },
    WireguardGo { pid: u32, server: Option<tokio::task::JoinHandle<()>> },
}

impl Testbed {
    fn new(exe: &Path, options: &Options) -> Result<Self> {
        let (gateway_ns, client_ns, gateway_ip) = Netns::pair()?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        Ok(Self {
            runtime,
            gateway_ns,
            client_ns,
            gateway_ip,
            gateway_key: PrivateKey::generate(),
            client_key: PrivateKey::generate(),
            dir: tempfile::tempdir()?,
            exe: exe.to_path_buf(),
            seconds: options.seconds,
            tun: TunConfig { offload: options.tun_offload, ..TunConfig::default() },
        })
    }

    fn key_file(&self, name: &str, key: &PrivateKey) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, key.to_base64())?;
        Ok(path)
    }

    fn measure(&mut self, gateway: Gateway, direction: Direction) -> Result<Sample> {
        let running = self.start_gateway(gateway)?;
        let client = self.start_client()?;
        let pids = match running {
            Running::Simpul { .. } => vec![std::process::id()],
            Running::WireguardGo { pid, .. } => vec![std::process::id(), pid],
        };
        let cpu_before = cpu_seconds(&pids);
        let mbps = self.load(gateway, direction);
        let cpu = cpu_seconds(&pids).and_then(|after| Ok(after - cpu_before?));
        self.client_ns.stop(client);
        self.stop_gateway(running)?;
        let (mbps, cpu) = (mbps?, cpu?);
        let gbit = mbps * self.seconds as f64 / 1000.0;
        Ok(Sample { mbps, cpu_ms_per_gbit: cpu * 1000.0 / gbit })
    }

    fn start_gateway(&mut self, gateway: Gateway) -> Result<Running> {
        let client = self.client_key.public_key();
        match gateway {
            Gateway::SimpulTun | Gateway::SimpulUserspace => {
                let handle = self.runtime.handle().clone();
                let gateway_ip = self.gateway_ip;
                let tun = (gateway == Gateway::SimpulTun).then_some(&self.tun);
                let (socket, face, stack) = self.gateway_ns.enter(move || -> Result<_> {
                    let _runtime = handle.enter();
                    let socket = std::net::UdpSocket::bind((gateway_ip, PORT))?;
                    Ok(if let Some(tun) = tun {
                        (socket, Box::new(TunFace::new(tun)?) as Box<dyn Face>, None)
                    } else {
                        let (face, stack) = netstack::new(NetstackConfig::default())?;
                        (socket, Box::new(face) as Box<dyn Face>, Some(stack))
                    })
                })?;
                let _runtime = self.runtime.enter();
                let engine = Engine::new(self.gateway_key.clone(), EngineConfig::default());
                let (tunnel, driver) = TunnelHandle::spawn(socket, engine, face)?;
                self.runtime.block_on(tunnel.set_peer(PeerConfig::new(client, ["10.77.0.2/32".parse()?])))?;
                let server = match stack {
                    Some(stack) => {
                        let listener = stack.listen(LOAD_PORT)?;
                        self.runtime.spawn(async move {
                            while let Ok(stream) = listener.accept().await {
                                tokio::spawn(load_server(stream));
                            }
                        })
                    }
                    None => {
                        self.gateway_ns.spawn(&["iperf3", "-s", "-B", "10.77.0.1", "-p", &IPERF_PORT.to_string()])?;
                        self.runtime.spawn(async {})
                    }
                };
                Ok(Running::Simpul { tunnel, driver, server })
            }
            Gateway::WireguardGo { iperf } => {
                let key = self.key_file("gateway.key", &self.gateway_key)?;
                let pid = start_wireguard_go(
                    &mut self.gateway_ns,
                    "wgg",
                    &key,
                    &format!("listen-port {PORT} peer {client} allowed-ips 10.77.0.2/32"),
                    "10.77.0.1/16",
                )?;
                let server = if iperf {
                    self.gateway_ns.spawn(&["iperf3", "-s", "-B", "10.77.0.1", "-p", &IPERF_PORT.to_string()])?;
                    None
                } else {
                    let listener = self.gateway_ns.enter(|| std::net::TcpListener::bind((GATEWAY, LOAD_PORT)))?;
                    listener.set_nonblocking(true)?;
                    let _runtime = self.runtime.enter();
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    Some(self.runtime.spawn(async move {
                        while let Ok((stream, _)) = listener.accept().await {
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(load_server(stream));
                        }
                    }))
                };
                Ok(Running::WireguardGo { pid, server })
            }
        }
    }

    fn stop_gateway(&mut self, running: Running) -> Result<()> {
        self.gateway_ns.stop_all();
        match running {
            Running::Simpul { tunnel, driver, server } => {
                server.abort();
                self.runtime.block_on(async {
                    tunnel.shutdown().await;
                    driver.await
                })?;
            }
            Running::WireguardGo { server, .. } => {
                if let Some(server) = server {
                    server.abort();
                }
            }
        }
        // The next gateway takes the same address and port: wait until this one has let go of them.
        let gone = poll(WAIT, || {
            self.gateway_ns.run(&["ip", "-o", "addr", "show", "to", "10.77.0.1"]).is_ok_and(|o| o.stdout.is_empty())
        });
        if !gone {
            bail!("the gateway's tunnel address outlived it");
        }
        Ok(())
    }

    fn start_client(&mut self) -> Result<u32> {
        let key = self.key_file("client.key", &self.client_key)?;
        let endpoint = SocketAddr::from((self.gateway_ip, PORT));
        let gateway = self.gateway_key.public_key();
        let pid = start_wireguard_go(
            &mut self.client_ns,
            "wgc",
            &key,
            &format!("peer {gateway} endpoint {endpoint} allowed-ips 10.77.0.0/16"),
            "10.77.0.2/16",
        )?;
        // A connection to a closed port is refused once the tunnel carries packets both ways.
        let up = poll(WAIT, || {
            self.client_ns
                .run(&["timeout", "1", "bash", "-c", "exec 3<>/dev/tcp/10.77.0.1/9"])
                .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("refused"))
        });
        if !up {
            bail!("the tunnel did not come up");
        }
        Ok(pid)
    }

    fn load(&self, gateway: Gateway, direction: Direction) -> Result<f64> {
        let seconds = self.seconds.to_string();
        if matches!(gateway, Gateway::SimpulTun | Gateway::WireguardGo { iperf: true }) {
            let port = IPERF_PORT.to_string();
            let listening = poll(WAIT, || {
                self.gateway_ns.run(&["ss", "-Hltn", &format!("sport = :{port}")]).is_ok_and(|o| !o.stdout.is_empty())
            });
            if !listening {
                bail!("iperf3 did not start");
            }
            let mut args = vec!["iperf3", "-c", "10.77.0.1", "-p", &port, "-t", &seconds, "-J"];
            if direction == Direction::Down {
                args.push("-R");
            }
            let out = self.client_ns.run(&args)?;
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 -J output")?;
            if let Some(error) = report.get("error") {
                bail!("iperf3: {error}");
            }
            let bps = report["end"]["sum_received"]["bits_per_second"].as_f64().context("no sum_received in iperf3")?;
            // Retransmissions say whether the tunnel dropped packets or merely carried them slowly.
            eprintln!("iperf3 retransmits: {}", report["end"]["sum_sent"]["retransmits"]);
            Ok(bps / 1e6)
        } else {
            let exe = self.exe.to_str().context("a UTF-8 path")?;
            let to = format!("{GATEWAY}:{LOAD_PORT}");
            let out = self.client_ns.run(&[
                exe,
                "tunnel-load",
                "--to",
                &to,
                "--direction",
                direction.name(),
                "--seconds",
                &seconds,
            ])?;
            if !out.status.success() {
                bail!("tunnel-load: {}", String::from_utf8_lossy(&out.stderr));
            }
            String::from_utf8_lossy(&out.stdout).trim().parse().context("tunnel-load prints Mbit/s")
        }
    }
}

/// Starts `wireguard-go` with interface `iface` in `ns` and configures it with `wg set` and `ip`; returns its pid.
fn start_wireguard_go(ns: &mut Netns, iface: &str, key: &Path, peer: &str, address: &str) -> Result<u32> {
    let pid = ns.spawn_env(&["wireguard-go", "-f", iface], &[("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")])?;
    if !poll(WAIT, || wireguard_go_listening(iface)) {
        bail!("wireguard-go did not create {iface}");
    }
    let key = key.to_str().context("a UTF-8 path")?;
    let mut set = vec!["wg", "set", iface, "private-key", key];
    set.extend(peer.split_whitespace());
    ns.check(&set)?;
    ns.check(&["ip", "addr", "add", address, "dev", iface])?;
    ns.check(&["ip", "link", "set", iface, "up"])?;
    Ok(pid)
}

/// The in-process end of the userspace load pair. The client's first byte says what it wants: `U` to send until it
/// closes its half (answered with the byte count), `D` to receive until it goes away.
async fn load_server<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    match stream.read_u8().await? {
        b'U' => {
            let mut total = 0u64;
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            stream.write_u64(total).await?;
            stream.shutdown().await
        }
        b'D' => loop {
            stream.write_all(&buf).await?;
        },
        _ => Ok(()),
    }
}

/// The load client (`bench tunnel-load`): streams for `seconds` and returns Mbit/s as the receiving side counted it.
pub fn load_client(to: SocketAddr, direction: Direction, seconds: u64) -> Result<f64> {
    let mut stream = TcpStream::connect_timeout(&to, WAIT)?;
    stream.set_nodelay(true)?;
    let duration = Duration::from_secs(seconds);
    let mut buf = vec![0u8; CHUNK];
    match direction {
        Direction::Up => {
            stream.write_all(b"U")?;
            let start = Instant::now();
            while start.elapsed() < duration {
                stream.write_all(&buf)?;
            }
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut count = [0u8; 8];
            stream.read_exact(&mut count)?;
            Ok(u64::from_be_bytes(count) as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e6)
        }
        Direction::Down => {
            stream.write_all(b"D")?;
            let start = Instant::now();
            let mut total = 0u64;
            while start.elapsed() < duration {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    bail!("the server closed the stream early");
                }
                total += n as u64;
            }
            Ok(total as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e6)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Handshakes

/// Counts what the engine sends; delivers nothing during a handshake.
struct Count(usize);

impl Transmit for Count {
    fn send(&mut self, _to: SocketAddr, _datagram: &[u8]) {
        self.0 += 1;
    }
}

impl EngineOutput for Count {
    fn deliver(&mut self, _peer: &PublicKey, _packet: &[u8]) {}
}

/// Keeps what a client engine sends.
struct Sent(Vec<Vec<u8>>);

impl Transmit for Sent {
    fn send(&mut self, _to: SocketAddr, datagram: &[u8]) {
        self.0.push(datagram.to_vec());
    }
}

/// Responder handshakes per second on one core: the engine (limiter, `parse_handshake_anon` routing by static key,
/// then boringtun's `decapsulate`) against boringtun's `Tunn` answering the same initiations with none of that.
fn handshakes(options: &Options) -> Result<()> {
    let n = options.handshakes;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..options.runs {
        let gateway_secret: [u8; 32] = rand::random();
        let gateway = PrivateKey::from_bytes(gateway_secret);
        let clients: Vec<[u8; 32]> = (0..n).map(|_| rand::random()).collect();
        let from = SocketAddr::from(([192, 0, 2, 1], 40000));
        // Each initiation made by Simpul's own client side, as an agent starting up makes it.
        let mut initiations = Vec::with_capacity(n);
        for secret in &clients {
            let mut client = Engine::new(PrivateKey::from_bytes(*secret), EngineConfig::default());
            let server = PeerConfig { endpoint: Some(from), ..PeerConfig::new(gateway.public_key(), []) };
            client.set_peer(server)?;
            let mut sent = Sent(Vec::new());
            if !client.initiate(&gateway.public_key(), &mut sent) || sent.0.len() != 1 {
                bail!("the client engine made no initiation");
            }
            initiations.append(&mut sent.0);
        }
        let mut buf = vec![0u8; 2048];

        // Limits out of the way: this measures the work per handshake, not the flood defence.
        let config = EngineConfig { handshake_load_limit: u64::MAX / 4, initiations_per_peer: u32::MAX };
        let mut engine = Engine::new(gateway.clone(), config);
        for secret in &clients {
            engine.set_peer(PeerConfig::new(PrivateKey::from_bytes(*secret).public_key(), []))?;
        }
        let mut out = Count(0);
        let start = Instant::now();
        for init in &initiations {
            engine.handle_datagram(Instant::now(), from, init, &mut out);
        }
        let elapsed = start.elapsed().as_secs_f64();
        if out.0 != n {
            bail!("the engine answered {} of {n} initiations", out.0);
        }
        ours.push(n as f64 / elapsed);

        let mut responders: Vec<Tunn> = clients
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                let client_public = x25519::PublicKey::from(&x25519::StaticSecret::from(*secret));
                Tunn::new(x25519::StaticSecret::from(gateway_secret), client_public, None, None, i as u32, None)
            })
            .collect();
        let mut answered = 0;
        let start = Instant::now();
        for (tunn, init) in responders.iter_mut().zip(&initiations) {
            if let TunnResult::WriteToNetwork(_) = tunn.decapsulate(Some(from.ip()), init, &mut buf) {
                answered += 1;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        if answered != n {
            bail!("boringtun answered {answered} of {n} initiations");
        }
        theirs.push(n as f64 / elapsed);
    }
    BenchLine::new(
        "tunnel-handshakes",
        "handshakes/s",
        median(ours),
        "boringtun 0.7.1 Tunn responder alone (no routing, no limiter)",
        median(theirs),
        options.runs,
        &format!(
            "one thread, {n} fresh initiations from {n} peers per run; the engine also routes each by static key \
             (parse_handshake_anon, a second DH); boringtun documents ~5,000/s per core"
        ),
    )
    .print();
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------------
// Memory

fn memory(exe: &Path, options: &Options) -> Result<()> {
    let peers = options.peers;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..options.runs {
        let out = Command::new(exe).args(["tunnel-idle-peers", "--peers", &peers.to_string()]).output()?;
        if !out.status.success() {
            bail!("tunnel-idle-peers: {}", String::from_utf8_lossy(&out.stderr));
        }
        ours.push(String::from_utf8_lossy(&out.stdout).trim().parse::<f64>()? / 1024.0);
        theirs.push(wireguard_go_rss_kib(peers)? as f64 / 1024.0);
    }
    BenchLine::new(
        "tunnel-idle-peers-memory",
        "MiB resident",
        median(ours),
        &format!("{WG_GO} with the same peers (wg setconf)"),
        median(theirs),
        options.runs,
        &format!(
            "{peers} configured peers, one /32 each, no traffic; VmRSS of the whole process after 2 s of timers; \
             Simpul: the tunnel driver with the userspace face in the bench binary; lower is better"
        ),
    )
    .print();
    Ok(())
}

fn peer_configs(peers: usize) -> impl Iterator<Item = (PublicKey, String)> {
    (0..peers).map(|i| {
        let address = format!("10.77.{}.{}/32", 1 + i / 250, 2 + i % 250);
        (PrivateKey::generate().public_key(), address)
    })
}

/// The body of `bench tunnel-idle-peers`: a tunnel with `peers` idle peers; returns this process's VmRSS in KiB.
pub fn idle_peers_rss_kib(peers: usize) -> Result<u64> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let mut engine = Engine::new(PrivateKey::generate(), EngineConfig::default());
        for (key, address) in peer_configs(peers) {
            engine.set_peer(PeerConfig::new(key, [address.parse()?]))?;
        }
        let (face, _stack) = netstack::new(NetstackConfig::default())?;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let (tunnel, driver) = TunnelHandle::spawn(socket, engine, face)?;
        // Long enough for several rounds of every peer's timers.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let count = tunnel.peers().await?.len();
        if count != peers {
            bail!("{count} peers configured, not {peers}");
        }
        let rss = rss_kib(std::process::id())?;
        tunnel.shutdown().await;
        driver.await?;
        Ok(rss)
    })
}

fn wireguard_go_rss_kib(peers: usize) -> Result<u64> {
    let mut ns = Netns::bare()?;
    let dir = tempfile::tempdir()?;
    let mut config = format!("[Interface]\nPrivateKey = {}\nListenPort = {PORT}\n", PrivateKey::generate().to_base64());
    for (key, address) in peer_configs(peers) {
        config.push_str(&format!("\n[Peer]\nPublicKey = {key}\nAllowedIPs = {address}\n"));
    }
    let file = dir.path().join("wgm.conf");
    std::fs::write(&file, config)?;
    let pid = ns.spawn_env(&["wireguard-go", "-f", "wgm"], &[("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")])?;
    if !poll(WAIT, || wireguard_go_listening("wgm")) {
        bail!("wireguard-go did not create wgm");
    }
    ns.check(&["wg", "setconf", "wgm", file.to_str().context("a UTF-8 path")?])?;
    ns.check(&["ip", "link", "set", "wgm", "up"])?;
    std::thread::sleep(Duration::from_secs(2));
    let listed = ns.run(&["wg", "show", "wgm", "peers"])?;
    let count = String::from_utf8_lossy(&listed.stdout).lines().count();
    if count != peers {
        bail!("wireguard-go holds {count} peers, not {peers}");
    }
    rss_kib(pid)
}

/// User plus system CPU time of the processes, in seconds.
fn cpu_seconds(pids: &[u32]) -> Result<f64> {
    // /proc counts in USER_HZ, which Linux fixes at 100 for userspace.
    const USER_HZ: f64 = 100.0;
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name, which may hold spaces, start at the state (field 3); utime is 14, stime 15.
        let rest = &stat[stat.rfind(')').context("a stat line")? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    }
    Ok(ticks as f64 / USER_HZ)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    line.split_whitespace().nth(1).context("VmRSS value")?.parse().context("VmRSS in kB")
}

// ---------------------------------------------------------------------------------------------------------------------
// Namespaces

/// Polls `check` every 50 ms until it holds or `timeout` passes.
fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A network namespace of this process, removed on drop with everything started in it.
struct Netns {
    name: String,
    children: Vec<Child>,
}

impl Netns {
    fn bare() -> Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("simpul-bench-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        check(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name, children: Vec::new() };
        ns.check(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Two namespaces joined by a veth pair on a /24 that exists only inside them; returns the first one's address.
    fn pair() -> Result<(Self, Self, Ipv4Addr)> {
        let (a, b) = (Self::bare()?, Self::bare()?);
        let tag = std::process::id();
        let (a_veth, b_veth) = (format!("vga{tag}"), format!("vgb{tag}"));
        a.check(&["ip", "link", "add", &a_veth, "type", "veth", "peer", "name", &b_veth, "netns", &b.name])?;
        for (ns, veth, ip) in [(&a, &a_veth, "10.215.0.1/24"), (&b, &b_veth, "10.215.0.2/24")] {
            ns.check(&["ip", "addr", "add", ip, "dev", veth])?;
            ns.check(&["ip", "link", "set", veth, "up"])?;
        }
        Ok((a, b, Ipv4Addr::new(10, 215, 0, 1)))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        self.command(args).stdin(Stdio::null()).output().with_context(|| format!("{args:?}"))
    }

    fn check(&self, args: &[&str]) -> Result<Output> {
        check(&mut self.command(args))
    }

    fn spawn(&mut self, args: &[&str]) -> Result<u32> {
        self.spawn_env(args, &[])
    }

    fn spawn_env(&mut self, args: &[&str], envs: &[(&str, &str)]) -> Result<u32> {
        let child = self
            .command(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("{args:?}"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    fn stop(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            terminate(self.children.swap_remove(i));
        }
    }

    fn stop_all(&mut self) {
        for child in self.children.drain(..) {
            terminate(child);
        }
    }

    /// Runs `f` on a thread inside the namespace: sockets and devices it creates live there.
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        crate::netns::enter(&self.name, f)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.stop_all();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn check(command: &mut Command) -> Result<Output> {
    let out = command.stdin(Stdio::null()).output().with_context(|| format!("{command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}
