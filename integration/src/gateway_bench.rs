//! The gateway benchmark (root): `CALL_NIK` requests per second, p50 and p99 through the whole appliance, against the
//! same requests sent straight to the warehouse stand-in, in the same run, by the same load generator.
//!
//! Two network namespaces joined by a veth pair:
//! - the gateway namespace holds the stand-in (`simpul-warehouse serve --dev`, HTTPS with TLS 1.3, on the namespace's
//!   veth address) and `simpul-gateway run` (its own TUN device and nftables table in TUN mode, or the userspace
//!   data plane), whose `[upstream]` is that stand-in, pinned by the fingerprint it prints;
//! - the client namespace holds a stock `wireguard-go` configured from the wg-quick file the gateway exported for a
//!   device registered through the CLI, and `wrk`.
//!
//! The gateway path is wrk → plain HTTP/1.1 over the WireGuard tunnel → the gateway (device check, password, policy,
//! rate limits, a durable quota spend, the element cut) → HTTPS to the stand-in. The anchor is the same wrk with the
//! same Lua script, connections, thread and duration, from the same namespace across the same veth, straight to the
//! stand-in's HTTPS endpoint. Runs alternate between the two so that background load falls on both alike.
//!
//! Both paths get the same Lua script but for the credentials: the gateway user's (`bench`, a password of 16
//! characters, as the gateway asks at least 10) on the gateway path, the stand-in's dev consumer's (`dev`/`dev`) on
//! the direct path. Rates and quotas are set far above what the load can reach: the benchmark measures the path, not
//! the limiter.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::{median, BenchLine};
use crate::netns::{self, Netns};
use crate::wrk;

const WAREHOUSE_PORT: u16 = 8100;
const WG_PORT: u16 = 51820;
/// The gateway's API inside the tunnel, at its default address and port.
const API: &str = "http://10.77.0.1:8000";
const CALL_NIK: &str = "/dukcapil/get_json/DEV/CALL_NIK";
const INSTITUTION: &str = "BENCH-3374";
/// The gateway user the load generator calls as.
const USER: &str = "bench";
const PASSWORD: &str = "kata-sandi-bench";
/// The stand-in's dev consumer, which the direct path calls as.
const DEV_USER: &str = "dev";
const DEV_PASSWORD: &str = "dev";
/// The stand-in's dev consumer, whose credentials the gateway sends upstream for the institution.
const UPSTREAM_CONSUMER: &str = "DEV";
const UPSTREAM_PASSWORD: &str = "dev";
const DAILY_QUOTA: u64 = 1_000_000_000;
const RATE: u32 = 1_000_000;
const TOOLS: &[&str] = &["wrk", "wireguard-go", "wg", "wg-quick", "ip", "nft", "curl"];

#[derive(Debug, Clone)]
pub struct Options {
    pub runs: usize,
    pub seconds: u64,
    pub connections: usize,
    /// Distinct NIKs the load cycles through.
    pub niks: usize,
    /// Unmeasured load before the runs of each data plane, on both paths: fills the gateway's upstream pool and
    /// password cache and the stand-in's caches.
    pub warmup_seconds: u64,
    /// The data planes to measure, in order.
    pub faces: Vec<Face>,
}

/// The gateway's data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// A kernel TUN device guarded by nftables: the production path.
    Tun,
    /// TCP terminated in the gateway process (smoltcp).
    Userspace,
}

impl Face {
    pub fn name(self) -> &'static str {
        match self {
            Face::Tun => "tun",
            Face::Userspace => "userspace",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "tun" => Ok(Face::Tun),
            "userspace" => Ok(Face::Userspace),
            other => bail!("a gateway face is tun or userspace, not {other:?}"),
        }
    }
}

/// The binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub warehouse: PathBuf,
    pub gateway: PathBuf,
}

/// One wrk run and what the processes on the path spent meanwhile.
#[derive(Debug, Clone)]
struct Sample {
    wrk: wrk::Result,
    /// CPU seconds (user + system) per process during the run, by name.
    cpu: Vec<(&'static str, f64)>,
}

impl Sample {
    fn cpu_of(&self, name: &str) -> f64 {
        self.cpu.iter().find(|(n, _)| *n == name).map_or(0.0, |(_, s)| *s)
    }
}

/// Runs the benchmark for every face in `options` and prints its JSON lines. Fails (the binary exits non-zero) when
/// not root or a tool is missing.
pub fn run(bins: &Binaries, options: &Options) -> Result<()> {
    if !crate::is_root() {
        bail!("the gateway benchmark needs root (network namespaces, a TUN device, nftables)");
    }
    for tool in TOOLS {
        if netns::which(tool).is_none() {
            bail!("the gateway benchmark needs {tool}: apt-get install wrk wireguard-go wireguard-tools nftables curl");
        }
    }
    for bin in [&bins.warehouse, &bins.gateway] {
        if !bin.exists() {
            bail!("{} not found: build it first with `cargo build --release --workspace`", bin.display());
        }
    }
    let wrk_version = wrk::version()?;
    let dir = tempfile::Builder::new().prefix("simpul-gateway-bench-").tempdir()?;
    let (gw, mut client) = Netns::pair_named("simpul-gwb");
    // No IPv6 on the tunnel, so the kernel sends nothing of its own into it.
    check(gw.command(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]))?;

    let warehouse = Warehouse::start(&gw, &bins.warehouse, dir.path())?;
    let niks = sample_niks(&bins.warehouse, options.niks)?;
    let scripts = Scripts {
        gateway: wrk::call_nik_script(&niks, USER, PASSWORD)?,
        direct: wrk::call_nik_script(&niks, DEV_USER, DEV_PASSWORD)?,
    };
    let direct_url = format!("https://{}:{WAREHOUSE_PORT}{CALL_NIK}", gw.ns_ip);
    expect_resident(&client, &direct_url, DEV_USER, DEV_PASSWORD, &niks[0])
        .context("a direct CALL_NIK to the stand-in")?;

    let bench = Bench {
        bins,
        options,
        dir: dir.path(),
        gw: &gw,
        warehouse: &warehouse,
        scripts: &scripts,
        niks: &niks,
        direct_url: &direct_url,
    };
    for (i, &face) in options.faces.iter().enumerate() {
        let (ours, theirs) = bench.measure(&mut client, face, i)?;
        report(face, options, &wrk_version, niks.len(), &ours, &theirs);
    }
    Ok(())
}

/// What every face's measurement shares.
struct Bench<'a> {
    bins: &'a Binaries,
    options: &'a Options,
    dir: &'a Path,
    gw: &'a Netns,
    warehouse: &'a Warehouse,
    scripts: &'a Scripts,
    niks: &'a [String],
    direct_url: &'a str,
}

impl Bench<'_> {
    /// Starts a fresh gateway with `face`, connects a fresh client, warms up, and alternates the runs. Returns the
    /// gateway path's samples and the direct path's.
    fn measure(&self, client: &mut Netns, face: Face, index: usize) -> Result<(Vec<Sample>, Vec<Sample>)> {
        let state = self.dir.join(format!("gateway-{}", face.name()));
        let config = self.write_config(&state, face)?;
        let mut gateway = Gateway::start(self.gw, &self.bins.gateway, &config, &state)?;
        eprintln!("gateway {}: public key {}", face.name(), gateway.public_key);
        gateway.register()?;
        let wg = connect(&gateway, client, self.dir, index)?;
        let measured = self.runs(client, face, &gateway, wg.pid);
        let stopped = client.stop(wg.pid);
        let clean = gateway.stop();
        let (ours, theirs) = measured.with_context(|| format!("the gateway's log ends: {}", gateway.log_tail()))?;
        if !stopped {
            bail!("the client's wireguard-go was gone before the end of the runs");
        }
        clean?;
        Ok((ours, theirs))
    }

    fn write_config(&self, state: &Path, face: Face) -> Result<PathBuf> {
        let ip = &self.gw.ns_ip;
        // At least as many upstream connections as the load has, so that the pool is not the queue.
        let pool = self.options.connections.max(32);
        let text = format!(
            "state_dir = \"{state}\"\n\
             [tunnel]\nlisten = \"{ip}:{WG_PORT}\"\nendpoint = \"{ip}:{WG_PORT}\"\nmode = \"{mode}\"\n\
             [upstream]\nurl = \"https://{ip}:{WAREHOUSE_PORT}\"\nfingerprint = \"{fingerprint}\"\n\
             max_connections = {pool}\n\
             [rate]\nuser_per_second = {RATE}\nuser_burst = {RATE}\ninstitution_per_second = {RATE}\n\
             institution_burst = {RATE}\n",
            state = state.display(),
            mode = face.name(),
            fingerprint = self.warehouse.fingerprint,
        );
        let path = self.dir.join(format!("gateway-{}.toml", face.name()));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn runs(&self, client: &Netns, face: Face, gateway: &Gateway, wg_pid: u32) -> Result<(Vec<Sample>, Vec<Sample>)> {
        let gateway_url = format!("{API}{CALL_NIK}");
        expect_resident(client, &gateway_url, USER, PASSWORD, &self.niks[0])
            .context("a CALL_NIK through the gateway")?;
        let (c, warmup) = (self.options.connections, self.options.warmup_seconds);
        let (gateway_script, direct_script) = (self.scripts.gateway.path(), self.scripts.direct.path());
        if warmup > 0 {
            for (url, script) in [(gateway_url.as_str(), gateway_script), (self.direct_url, direct_script)] {
                let r = load(client, url, script, c, warmup)?;
                eprintln!(
                    "gateway {} warm-up {url}: {:.0} req/s, {} errors",
                    face.name(),
                    r.requests_per_second,
                    r.errors
                );
            }
        }
        let gateway_pids = [("gateway", gateway.pid()), ("wireguard-go", wg_pid), ("stand-in", self.warehouse.pid())];
        let direct_pids = [("stand-in", self.warehouse.pid())];
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for run in 1..=self.options.runs {
            for (path, url, script, pids) in [
                ("gateway", gateway_url.as_str(), gateway_script, &gateway_pids[..]),
                ("direct", self.direct_url, direct_script, &direct_pids[..]),
            ] {
                let before = cpu_seconds(pids)?;
                let result = load(client, url, script, c, self.options.seconds)?;
                let after = cpu_seconds(pids)?;
                let cpu: Vec<(&'static str, f64)> =
                    pids.iter().zip(before.iter().zip(&after)).map(|((name, _), (b, a))| (*name, a - b)).collect();
                let spent: Vec<String> = cpu.iter().map(|(n, s)| format!("{n} {s:.1}")).collect();
                eprintln!(
                    "gateway {} run {run} {path}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; CPU s: {}",
                    face.name(),
                    result.requests_per_second,
                    result.p50_ms,
                    result.p99_ms,
                    result.errors,
                    spent.join(", ")
                );
                if result.errors > 0 {
                    eprintln!("warning: {} socket errors or non-2xx answers on the {path} path", result.errors);
                }
                let sample = Sample { wrk: result, cpu };
                if path == "gateway" {
                    ours.push(sample);
                } else {
                    theirs.push(sample);
                }
            }
        }
        // Still answering with data after the load: not refused for quota or rate, not wedged.
        expect_resident(client, &gateway_url, USER, PASSWORD, &self.niks[1 % self.niks.len()])
            .context("a CALL_NIK through the gateway after the runs")?;
        // A diagnosis, not a figure: the health page (no password, quota or upstream) through the same tunnel, which
        // shows what the tunnel and the HTTP server alone allow.
        let mut get = tempfile::Builder::new().suffix(".lua").tempfile()?;
        writeln!(get, "-- GET with wrk's defaults")?;
        let health = load(client, &format!("{API}/"), get.path(), c, self.options.seconds)?;
        eprintln!(
            "gateway {} health page (GET /, tunnel and HTTP only): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            face.name(),
            health.requests_per_second,
            health.p50_ms,
            health.p99_ms
        );
        Ok((ours, theirs))
    }
}

fn report(face: Face, options: &Options, wrk_version: &str, niks: usize, ours: &[Sample], theirs: &[Sample]) {
    let (c, s) = (options.connections, options.seconds);
    let path = match face {
        Face::Tun => "TUN mode (kernel TCP on the gateway's TUN device, nftables guarding it)",
        Face::Userspace => "userspace mode (TCP terminated in the gateway process by smoltcp)",
    };
    let notes = format!(
        "wrk {wrk_version} -t1 -c{c} -d{s}s --latency from a client netns, keep-alive, {niks} distinct NIKs (seed 1, \
         alive), the same Lua script on both paths but for the credentials; gateway path: PLAIN HTTP/1.1 over a \
         stock wireguard-go tunnel to simpul-gateway in {path}, which checks device, password (argon2 cached after \
         the first success), policy, rate (limits 1e6/s) and spends quota durably (sled flush, ext4) per request, \
         then calls the stand-in over HTTPS (TLS 1.3, pooled keep-alive) in its own netns; anchor: the same wrk \
         straight to the stand-in over HTTPS (TLS 1.3) across the same veth, no tunnel; runs alternate; one machine, \
         {} cores shared by wrk, wireguard-go, the gateway and the stand-in",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let anchor = "simpul-warehouse serve --dev called directly over HTTPS (same wrk, same client netns)";
    let bench = format!("gateway-call-nik-{}", face.name());
    for (metric, pick) in [
        ("requests/s", (|r: &Sample| r.wrk.requests_per_second) as fn(&Sample) -> f64),
        ("p50 ms", |r: &Sample| r.wrk.p50_ms),
        ("p99 ms", |r: &Sample| r.wrk.p99_ms),
    ] {
        let simpul = median(ours.iter().map(pick).collect());
        let anchor_value = median(theirs.iter().map(pick).collect());
        BenchLine::new(&bench, metric, simpul, anchor, anchor_value, options.runs, &notes).print();
    }
    // Where the CPU went, per request: the diagnosis behind the ratio (not a figure with an anchor of its own).
    let per_request = |samples: &[Sample], name: &str| {
        median(
            samples
                .iter()
                .map(|r| r.cpu_of(name) * 1e6 / (r.wrk.requests_per_second * options.seconds as f64).max(1.0))
                .collect(),
        )
    };
    eprintln!(
        "gateway {}: CPU µs per request (median): gateway {:.0}, wireguard-go client {:.0}, stand-in {:.0}; direct \
         path: stand-in {:.0}",
        face.name(),
        per_request(ours, "gateway"),
        per_request(ours, "wireguard-go"),
        per_request(ours, "stand-in"),
        per_request(theirs, "stand-in"),
    );
}

/// wrk from inside `ns` (a thread enters the namespace and starts wrk, which inherits it). A run that completed no
/// request fails; a failed run through the gateway says whether the gateway still answers at all.
fn load(ns: &Netns, url: &str, script: &Path, connections: usize, seconds: u64) -> Result<wrk::Result> {
    let result = ns.enter(|| wrk::run(url, script, connections, seconds)).and_then(|r| {
        if r.requests_per_second < 1.0 {
            bail!("no request completed in {seconds} s ({} errors)", r.errors);
        }
        Ok(r)
    });
    let result = result.with_context(|| format!("wrk {url}"));
    if url.starts_with(API) {
        result.map_err(|e| wedged(ns, e))
    } else {
        result
    }
}

/// Adds to a failed run through the gateway whether the gateway still answers its health page at all: a gateway
/// that has stopped answering everything is wedged, not slow.
fn wedged(client: &Netns, error: anyhow::Error) -> anyhow::Error {
    let probe = client.command(&["curl", "-sS", "--max-time", "5", &format!("{API}/")]).output();
    match probe {
        Ok(out) if out.status.success() => error.context("the gateway still answers its health page"),
        _ => error.context(
            "the gateway no longer answers even its health page through the tunnel within 5 s: it is wedged, not \
             slow (see its threads with `gdb -p PID -batch -ex 'thread apply all bt'`)",
        ),
    }
}

/// POSTs one `CALL_NIK` with curl from `ns` and checks that the answer is the resident's data, not a refusal (wrk
/// would count a refusal, which comes as HTTP 200 with a code, as a success).
fn expect_resident(ns: &Netns, url: &str, user: &str, password: &str, nik: &str) -> Result<()> {
    let body = format!(r#"{{"user_id":"{user}","password":"{password}","NIK":"{nik}"}}"#);
    // -k: the stand-in's dev certificate names localhost, not the veth address; the gateway pins it by fingerprint.
    let out = check(ns.command(&["curl", "-sS", "-k", "--max-time", "20", "-X", "POST", url, "-d", &body]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let answer: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{url} answered {text}"))?;
    let found = answer["content"].as_array().and_then(|c| c.first()).map(|r| r["NIK"].to_string());
    if found.as_deref().map(|n| n.trim_matches('"')) != Some(nik) {
        bail!("{url} did not answer with resident {nik}: {text}");
    }
    Ok(())
}

/// The wrk scripts of the two paths, alike but for the credentials.
struct Scripts {
    gateway: tempfile::NamedTempFile,
    direct: tempfile::NamedTempFile,
}

/// NIKs of living residents of the dev population (seed 1), from `simpul-warehouse sample`.
fn sample_niks(bin: &Path, count: usize) -> Result<Vec<String>> {
    let mut command = Command::new(bin);
    command.args(["sample", "--seed", "1", "--count", &count.to_string(), "--kind", "alive"]);
    let out = check(command)?;
    let niks: Vec<String> = String::from_utf8(out.stdout)?
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)?;
            // A number in the sample (and in the answers), a string in requests.
            match &v["NIK"] {
                serde_json::Value::Number(n) => Ok(n.to_string()),
                serde_json::Value::String(s) => Ok(s.clone()),
                _ => bail!("a sample without NIK: {line}"),
            }
        })
        .collect::<Result<_>>()?;
    if niks.is_empty() {
        bail!("simpul-warehouse sample gave no NIKs");
    }
    Ok(niks)
}

// ---------------------------------------------------------------------------------------------------------------------
// Processes

/// A long-running child started in a namespace, stopped when dropped: SIGTERM, then SIGKILL if it lingers.
struct Process {
    child: Option<Child>,
    name: &'static str,
    /// Where its standard error goes, for the message when it fails.
    log: PathBuf,
    /// Its standard output, line by line, read by a thread that keeps draining it.
    lines: mpsc::Receiver<String>,
}

impl Process {
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Result<Self> {
        let stderr = std::fs::File::create(&log)?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("a piped stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
                let _ = send.send(line);
            }
        });
        Ok(Process { child: Some(child), name, log, lines })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Collects standard output lines until one starts with `ready:`; fails if the process ends or `limit` passes.
    fn wait_ready(&mut self, limit: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("ready:");
                    seen.push(line);
                    if ready {
                        return Ok(seen);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("{} was not ready within {limit:?}: {}", self.name, self.log_tail())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(|c| c.wait()).transpose()?;
                    bail!("{} exited before it was ready ({status:?}): {}", self.name, self.log_tail())
                }
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// SIGTERM and up to `grace` for a clean exit; SIGKILL after that. Returns whether it exited cleanly in time.
    fn stop(&mut self, grace: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("{} exited with {status} on SIGTERM: {}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("{} did not stop within {grace:?} of SIGTERM and was killed", self.name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            netns::terminate(child);
        }
    }
}

/// `simpul-warehouse serve --dev` in the gateway namespace, on its veth address.
struct Warehouse {
    process: Process,
    fingerprint: String,
}

impl Warehouse {
    fn start(ns: &Netns, bin: &Path, dir: &Path) -> Result<Self> {
        let listen = format!("{}:{WAREHOUSE_PORT}", ns.ns_ip);
        let state = dir.join("warehouse");
        let bin = bin.to_str().context("a UTF-8 path")?;
        let mut command =
            ns.command(&[bin, "serve", "--dev", "--listen", &listen, "--state-dir", state.to_str().context("UTF-8")?]);
        command.env_remove("RUST_LOG");
        let mut process = Process::spawn("simpul-warehouse", command, dir.join("warehouse.log"))?;
        // Building the 10 million residents takes seconds.
        let lines = process.wait_ready(Duration::from_secs(120))?;
        let fingerprint = lines
            .iter()
            .find_map(|l| l.strip_prefix("fingerprint (SHA-256): "))
            .context("the stand-in printed no fingerprint")?
            .trim()
            .to_owned();
        Ok(Warehouse { process, fingerprint })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// `simpul-gateway run` in the gateway namespace; the CLI reaches it through the management socket in its state
/// directory.
struct Gateway {
    process: Process,
    bin: PathBuf,
    config: PathBuf,
    public_key: String,
}

impl Gateway {
    fn start(ns: &Netns, bin: &Path, config: &Path, state: &Path) -> Result<Self> {
        let args = [bin.to_str().context("a UTF-8 path")?, "run", "--config", config.to_str().context("UTF-8")?];
        let mut command = ns.command(&args);
        command.env_remove("SIMPUL_GATEWAY_CONFIG").env_remove("SIMPUL_GATEWAY_STATE_DIR").env_remove("RUST_LOG");
        let log = state.with_extension("log");
        let mut process = Process::spawn("simpul-gateway", command, log)?;
        let lines = process.wait_ready(Duration::from_secs(30))?;
        let public_key = lines
            .iter()
            .find_map(|l| l.strip_prefix("gateway public key: "))
            .context("the gateway announced no public key")?
            .trim()
            .to_owned();
        Ok(Gateway { process, bin: bin.to_path_buf(), config: config.to_path_buf(), public_key })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Runs the admin CLI with `stdin`; fails unless it succeeds.
    fn cli(&self, args: &[&str], stdin: &str) -> Result<Output> {
        let mut child = Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("SIMPUL_GATEWAY_CONFIG")
            .env_remove("SIMPUL_GATEWAY_STATE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("the gateway CLI")?;
        child.stdin.take().context("a piped stdin")?.write_all(format!("{stdin}\n").as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("simpul-gateway {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(out)
    }

    /// The institution (an agreement in force, every method and element, a quota the load cannot spend, the stand-in's
    /// dev consumer upstream) and its user, as an admin registers them.
    fn register(&self) -> Result<()> {
        let quota = DAILY_QUOTA.to_string();
        #[rustfmt::skip]
        let institution = [
            "institution", "add", "--id", INSTITUTION, "--name", "Dinas Sosial Kota Semarang", "--region", "33.74",
            "--agreement", "470/1234/PKS/2026", "--valid-from", "2020-01-01", "--valid-until", "2099-12-31",
            "--methods", "CALL_NIK,CALL_NIK_GET_KK,CALL_VERIFY_BY_ELEMEN,CALL_AGREGAT", "--elements", "all",
            "--daily-quota", &quota, "--upstream-consumer", UPSTREAM_CONSUMER, "--upstream-user", "dev",
            "--upstream-password-stdin",
        ];
        self.cli(&institution, UPSTREAM_PASSWORD)?;
        #[rustfmt::skip]
        let user = [
            "user", "add", "--id", USER, "--institution", INSTITUTION, "--name", "Budi Santoso",
            "--nik", "3374041003870006", "--nip", "198703102010011001", "--position", "Analis Data",
            "--office-region", "33.74.04", "--application-user", USER, "--password-stdin",
        ];
        self.cli(&user, PASSWORD)?;
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.process.stop(Duration::from_secs(10))
    }

    fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// The client's wireguard-go.
struct Client {
    pid: u32,
}

/// Adds a device, exports its wg-quick file, and brings up a stock wireguard-go client from it in `client`: `wg-quick
/// strip` for keys and peer, the file's Address and AllowedIPs by hand. The process stops with the namespace or
/// with `client.stop(pid)`.
fn connect(gateway: &Gateway, client: &mut Netns, dir: &Path, index: usize) -> Result<Client> {
    let name = format!("bench-laptop-{index}");
    gateway.cli(&["device", "add", "--name", &name, "--user", USER, "--json"], "")?;
    let quick = dir.join(format!("{name}.conf"));
    gateway.cli(&["device", "export", &name, "--output", quick.to_str().context("UTF-8")?], "")?;
    let text = std::fs::read_to_string(&quick)?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .with_context(|| format!("no {key} in the exported file"))
    };
    let (address, allowed) = (field("Address = ")?, field("AllowedIPs = ")?);
    let mut strip = Command::new("wg-quick");
    strip.arg("strip").arg(&quick);
    let stripped = dir.join(format!("{name}.wg"));
    std::fs::write(&stripped, check(strip)?.stdout)?;

    // The UAPI socket's path is shared by all namespaces: the name must be this process's own.
    let iface = format!("wgb{}{index}", client.tag);
    let pid = client.spawn(&["wireguard-go", "-f", &iface], &[("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !netns::wireguard_go_listening(&iface) {
        if Instant::now() > deadline {
            client.stop(pid);
            bail!("wireguard-go did not create {iface}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let configured = (|| -> Result<()> {
        check(client.command(&["wg", "setconf", &iface, stripped.to_str().context("UTF-8")?]))?;
        check(client.command(&["ip", "addr", "add", &address, "dev", &iface]))?;
        check(client.command(&["ip", "link", "set", &iface, "up"]))?;
        check(client.command(&["ip", "route", "add", &allowed, "dev", &iface]))?;
        // The first request waits for the handshake: poll the health page until the tunnel carries it.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = client.command(&["curl", "-sS", "--max-time", "2", &format!("{API}/")]).output()?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&name) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the health page did not answer through the tunnel: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    if let Err(e) = configured {
        client.stop(pid);
        return Err(e);
    }
    Ok(Client { pid })
}

/// Runs a command to completion; fails with its stderr if it exits unsuccessfully.
fn check(mut command: Command) -> Result<Output> {
    let out = command.stdin(Stdio::null()).output().with_context(|| format!("{command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// User plus system CPU seconds of each process.
fn cpu_seconds(pids: &[(&str, u32)]) -> Result<Vec<f64>> {
    // /proc counts in USER_HZ, which Linux fixes at 100 for userspace.
    const USER_HZ: f64 = 100.0;
    pids.iter()
        .map(|(name, pid)| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("{name} {pid}"))?;
            // Fields after the command name, which may hold spaces, start at the state (field 3); utime is 14,
            // stime 15.
            let rest = &stat[stat.rfind(')').context("a stat line")? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Ok((fields[11].parse::<u64>()? + fields[12].parse::<u64>()?) as f64 / USER_HZ)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_parse_and_name_themselves() {
        for face in [Face::Tun, Face::Userspace] {
            assert_eq!(Face::parse(face.name()).unwrap(), face);
        }
        assert!(Face::parse("kernel").is_err());
    }

    #[test]
    fn cpu_of_this_process_is_read() {
        let spent = cpu_seconds(&[("self", std::process::id())]).unwrap();
        assert_eq!(spent.len(), 1);
        assert!(spent[0] >= 0.0);
    }
}
