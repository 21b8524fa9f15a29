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
//! rate limits, the quota spend, made durable with the request's audit record, the element cut) → HTTPS to the
//! stand-in. The anchor is the same wrk with the same Lua script, connections, thread and duration, from the same
//! namespace across the same veth, straight to the stand-in's HTTPS endpoint. Runs alternate between the two so that
//! background load falls on both alike.
//!
//! Both paths get the same Lua script but for the credentials: the gateway user's (`bench`, a password of 16
//! characters, as the gateway asks at least 10) on the gateway path, the stand-in's dev consumer's (`dev`/`dev`) on
//! the direct path. Rates and quotas are set far above what the load can reach: the benchmark measures the path, not
//! the limiter.
//!
//! The audit benchmark ([`run_audit`]) uses the same stage for what the audit record costs: the gateway path as above
//! against the same gateway built with the `unaudited-benchmark` feature and run with [`UNAUDITED_ENV`]`=1`, which
//! answers without recording. Each run starts a fresh gateway of each kind in turn (the two cannot share the tunnel's
//! port and address), warms it up and measures it. Then it counts the disk syncs (`fsync`, `fdatasync`,
//! `sync_file_range`, which is how sled makes its log durable) per request at several concurrencies, with each kind
//! started under `strace --seccomp-bpf`, which stops the process on those calls only.
//!
//! The flood benchmark ([`run_flood`], in [`flood`]) uses the same stage for what a flood of wrong passwords costs:
//! the gateway's peak extra memory, and how long a valid request from another device waits meanwhile.
//!
//! The warm-cache benchmark ([`run_cache`], in [`cache`]) uses the same stage for the gateway's cache: its hits
//! against Debian's nginx with `proxy_cache` in front of the same stand-in and against the health page, and with the
//! cache off against the stand-in directly. The other benchmarks run the gateway with its cache off, so that every
//! request takes the whole path upstream.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::bench::{median, BenchLine};
use crate::netns::{self, Netns};
use crate::wrk;

mod cache;
mod flood;
pub use cache::{run_cache, CacheOptions};
pub use flood::run_flood;

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
/// Tells a gateway built with the `unaudited-benchmark` feature to answer without audit records.
pub const UNAUDITED_ENV: &str = "SIMPUL_UNAUDITED_BENCHMARK";
/// The header that carries an answer's audit sequence number: present exactly when the request was recorded.
const AUDIT_SEQ_HEADER: &str = "x-simpul-audit-seq";
/// The system calls that make writes durable, counted as the gateway's disk syncs.
const SYNC_CALLS: &[&str] = &["fsync", "fdatasync", "sync_file_range"];

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

    fn path(self) -> &'static str {
        match self {
            Face::Tun => "TUN mode (kernel TCP on the gateway's TUN device, nftables guarding it)",
            Face::Userspace => "userspace mode (TCP terminated in the gateway process by smoltcp)",
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
    /// CPU seconds of the processes named `name` (nginx has several workers).
    fn cpu_of(&self, name: &str) -> f64 {
        self.cpu.iter().filter(|(n, _)| *n == name).map(|(_, s)| s).sum()
    }

    /// CPU microseconds of process `name` per request in a run of `seconds`.
    fn cpu_per_request(&self, name: &str, seconds: u64) -> f64 {
        self.cpu_of(name) * 1e6 / (self.wrk.requests_per_second * seconds as f64).max(1.0)
    }
}

/// Runs the benchmark for every face in `options` and prints its JSON lines. Fails (the binary exits non-zero) when
/// not root or a tool is missing.
pub fn run(bins: &Binaries, options: &Options) -> Result<()> {
    let (stage, mut client) = Stage::set_up(bins, &[], options)?;
    let direct_url = &stage.direct_url;
    expect_resident(&client, direct_url, DEV_USER, DEV_PASSWORD, &stage.niks[0])
        .context("a direct CALL_NIK to the stand-in")?;
    let bench = Bench { bins, options, stage: &stage, sessions: Cell::new(0) };
    for &face in &options.faces {
        let (ours, theirs) = bench.measure(&mut client, face)?;
        report(face, options, &stage, &ours, &theirs);
    }
    Ok(())
}

/// Measures what the audit record costs, for every face in `options`, and prints its JSON lines: requests per second,
/// p50 and p99 with audit records (the gateway in `bins`) against without (`unaudited`, built with the
/// `unaudited-benchmark` feature), alternating, at `options.connections`; then disk syncs per request at each of
/// `flush_connections` for both, if strace is installed (if not, it says so and prints no such line).
pub fn run_audit(bins: &Binaries, unaudited: &Path, options: &Options, flush_connections: &[usize]) -> Result<()> {
    let (stage, mut client) = Stage::set_up(bins, &[unaudited], options)?;
    let bench = Bench { bins, options, stage: &stage, sessions: Cell::new(0) };
    let sides = [Side { audited: true, bin: &bins.gateway }, Side { audited: false, bin: unaudited }];
    for &face in &options.faces {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for run in 1..=options.runs {
            // Which kind goes first alternates too, so that neither always follows the other.
            let order = if run % 2 == 1 { [&sides[0], &sides[1]] } else { [&sides[1], &sides[0]] };
            for side in order {
                let launch = side.launch(face, &format!("run{run}"), None);
                let sample = bench.session(&mut client, &launch, |client, gateway, wg_pid| {
                    bench.warm_up(client, face, side, &[options.connections])?;
                    let pids = [("gateway", gateway.pid()), ("wireguard-go", wg_pid)];
                    let what = format!("{} run {run} audit {}", face.name(), side.word());
                    let url = format!("{API}{CALL_NIK}");
                    bench.sample(client, &what, &url, stage.scripts.gateway.path(), options.connections, &pids)
                })?;
                if side.audited { &mut on } else { &mut off }.push(sample);
            }
        }
        report_audit(face, options, &stage, &on, &off);
        if netns::which("strace").is_none() {
            eprintln!("gateway {}: disk syncs per request not measured: strace is not installed", face.name());
            continue;
        }
        let on = bench.syncs_per_request(&mut client, face, &sides[0], flush_connections)?;
        let off = bench.syncs_per_request(&mut client, face, &sides[1], flush_connections)?;
        report_syncs(face, options, &stage, flush_connections, &on, &off);
    }
    Ok(())
}

/// What every gateway benchmark sets up once: the gateway's namespace (the client's is returned beside it), the
/// stand-in, the NIKs and the wrk scripts. Fields drop in order: the stand-in before the namespace, the directory last.
struct Stage {
    scripts: Scripts,
    niks: Vec<String>,
    warehouse: Warehouse,
    direct_url: String,
    wrk_version: String,
    gw: Netns,
    dir: tempfile::TempDir,
}

impl Stage {
    /// Checks root, the tools and the binaries (`bins` and `more`), then starts the stand-in.
    fn set_up(bins: &Binaries, more: &[&Path], options: &Options) -> Result<(Self, Netns)> {
        if !crate::is_root() {
            bail!("the gateway benchmark needs root (network namespaces, a TUN device, nftables)");
        }
        for tool in TOOLS {
            if netns::which(tool).is_none() {
                bail!(
                    "the gateway benchmark needs {tool}: apt-get install wrk wireguard-go wireguard-tools nftables curl"
                );
            }
        }
        for bin in [&bins.warehouse, &bins.gateway] {
            if !bin.exists() {
                bail!("{} not found: build it first with `cargo build --release --workspace`", bin.display());
            }
        }
        if let Some(bin) = more.iter().find(|b| !b.exists()) {
            bail!("{} not found", bin.display());
        }
        let wrk_version = wrk::version()?;
        let dir = tempfile::Builder::new().prefix("simpul-gateway-bench-").tempdir()?;
        let (gw, client) = Netns::pair_named("simpul-gwb");
        // No IPv6 on the tunnel, so the kernel sends nothing of its own into it.
        check(gw.command(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]))?;

        let warehouse = Warehouse::start(&gw, &bins.warehouse, dir.path())?;
        let niks = sample_niks(&bins.warehouse, options.niks)?;
        let mut health = tempfile::Builder::new().suffix(".lua").tempfile()?;
        writeln!(health, "-- GET with wrk's defaults")?;
        let scripts = Scripts {
            gateway: wrk::call_nik_script(&niks, USER, PASSWORD)?,
            direct: wrk::call_nik_script(&niks, DEV_USER, DEV_PASSWORD)?,
            health,
        };
        let direct_url = format!("https://{}:{WAREHOUSE_PORT}{CALL_NIK}", gw.ns_ip);
        Ok((Stage { scripts, niks, warehouse, direct_url, wrk_version, gw, dir }, client))
    }

    /// The notes' common start: the load, the tunnel and what the gateway does per request.
    fn notes(&self, face: Face, connections: &str, seconds: u64) -> String {
        format!(
            "wrk {} -t1 -c{connections} -d{seconds}s --latency from a client netns, keep-alive, {} distinct NIKs (seed \
             1, alive); gateway path: PLAIN HTTP/1.1 over a stock wireguard-go tunnel to simpul-gateway in {}, which \
             checks device, password (argon2 cached after the first success), policy, rate (limits 1e6/s) and spends \
             quota (written with the audit record in the audit writer's batch: sled flush, ext4), then, with its \
             cache off ([cache] enabled = false) unless said otherwise, calls the stand-in over HTTPS (TLS 1.3, \
             pooled keep-alive) in its own netns; one machine, {} cores shared by wrk, wireguard-go, the gateway and \
             the stand-in",
            self.wrk_version,
            self.niks.len(),
            face.path(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )
    }
}

/// One kind of gateway in the audit benchmark.
struct Side<'a> {
    audited: bool,
    bin: &'a Path,
}

impl Side<'_> {
    fn word(&self) -> &'static str {
        if self.audited {
            "on"
        } else {
            "off"
        }
    }

    fn launch(&self, face: Face, session: &str, trace: Option<PathBuf>) -> Launch<'_> {
        Launch {
            name: format!("gateway-{}-audit-{}-{session}", face.name(), self.word()),
            face,
            bin: self.bin,
            audited: self.audited,
            cache: false,
            trace,
        }
    }
}

/// How to start one gateway.
struct Launch<'a> {
    /// Names its state directory, configuration and log: one per session.
    name: String,
    face: Face,
    bin: &'a Path,
    /// Without [`UNAUDITED_ENV`] when true; with it set to 1 when false.
    audited: bool,
    /// `[cache] enabled`: off, every request goes upstream, as the benchmarks of the request path want.
    cache: bool,
    /// Start it under strace, counting [`SYNC_CALLS`] into this file.
    trace: Option<PathBuf>,
}

/// What every face's measurement shares.
struct Bench<'a> {
    bins: &'a Binaries,
    options: &'a Options,
    stage: &'a Stage,
    /// Sessions started so far, which names each client's interface and device.
    sessions: Cell<usize>,
}

impl Bench<'_> {
    /// Starts a fresh gateway with `face`, connects a fresh client, warms up, and alternates the runs. Returns the
    /// gateway path's samples and the direct path's.
    fn measure(&self, client: &mut Netns, face: Face) -> Result<(Vec<Sample>, Vec<Sample>)> {
        let launch = Launch {
            name: format!("gateway-{}", face.name()),
            face,
            bin: &self.bins.gateway,
            audited: true,
            cache: false,
            trace: None,
        };
        self.session(client, &launch, |client, gateway, wg_pid| self.runs(client, face, gateway, wg_pid))
    }

    /// Starts a fresh gateway as `launch` says, registers the institution and user, connects a fresh client through a
    /// new device, runs `f` with the client's namespace, the gateway and the client's pid, then stops both.
    fn session<T>(
        &self,
        client: &mut Netns,
        launch: &Launch,
        f: impl FnOnce(&Netns, &Gateway, u32) -> Result<T>,
    ) -> Result<T> {
        let dir = self.stage.dir.path();
        let state = dir.join(&launch.name);
        let config = self.write_config(&state, launch)?;
        let mut gateway = Gateway::start(&self.stage.gw, launch, &config, &state)?;
        eprintln!("{}: public key {}", launch.name, gateway.public_key);
        gateway.register()?;
        let index = self.sessions.replace(self.sessions.get() + 1);
        let wg = connect(&gateway, client, dir, index)?;
        let measured = f(client, &gateway, wg.pid);
        let stopped = client.stop(wg.pid);
        let clean = gateway.stop();
        let result = measured.with_context(|| format!("the gateway's log ends: {}", gateway.log_tail()))?;
        if !stopped {
            bail!("the client's wireguard-go was gone before the end of the runs");
        }
        clean?;
        Ok(result)
    }

    fn write_config(&self, state: &Path, launch: &Launch) -> Result<PathBuf> {
        let ip = &self.stage.gw.ns_ip;
        // At least as many upstream connections as the load has, so that the pool is not the queue.
        let pool = self.options.connections.max(32);
        // Every rate far above the load, the device's too (10/s by default), which is checked before the password.
        let text = format!(
            "state_dir = \"{state}\"\n\
             [tunnel]\nlisten = \"{ip}:{WG_PORT}\"\nendpoint = \"{ip}:{WG_PORT}\"\nmode = \"{mode}\"\n\
             [upstream]\nurl = \"https://{ip}:{WAREHOUSE_PORT}\"\nfingerprint = \"{fingerprint}\"\n\
             max_connections = {pool}\n\
             [rate]\ndevice_per_second = {RATE}\ndevice_burst = {RATE}\nuser_per_second = {RATE}\n\
             user_burst = {RATE}\ninstitution_per_second = {RATE}\ninstitution_burst = {RATE}\n\
             [cache]\nenabled = {cache}\n",
            state = state.display(),
            mode = launch.face.name(),
            fingerprint = self.stage.warehouse.fingerprint,
            cache = launch.cache,
        );
        let path = self.stage.dir.path().join(format!("{}.toml", launch.name));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Checks that the gateway answers with data and records (or not) as `side` says, then loads it unmeasured for
    /// the warm-up at each of `connections`.
    fn warm_up(&self, client: &Netns, face: Face, side: &Side, connections: &[usize]) -> Result<()> {
        let url = format!("{API}{CALL_NIK}");
        let (headers, _) = expect_resident(client, &url, USER, PASSWORD, &self.stage.niks[0])
            .context("a CALL_NIK through the gateway")?;
        let recorded = headers.lines().any(|l| l.to_ascii_lowercase().starts_with(AUDIT_SEQ_HEADER));
        if recorded != side.audited {
            bail!(
                "the gateway with audit {} answered {} {AUDIT_SEQ_HEADER} header: {headers}",
                side.word(),
                if recorded { "with an" } else { "without the" }
            );
        }
        for &c in connections.iter().filter(|_| self.options.warmup_seconds > 0) {
            let r = load(client, &url, self.stage.scripts.gateway.path(), c, self.options.warmup_seconds)?;
            eprintln!(
                "gateway {} audit {} warm-up -c{c}: {:.0} req/s",
                face.name(),
                side.word(),
                r.requests_per_second
            );
        }
        Ok(())
    }

    /// One measured wrk run, with the CPU seconds each of `pids` spent meanwhile; `what` names it in the log.
    fn sample(
        &self,
        client: &Netns,
        what: &str,
        url: &str,
        script: &Path,
        connections: usize,
        pids: &[(&'static str, u32)],
    ) -> Result<Sample> {
        let before = cpu_seconds(pids)?;
        let result = load(client, url, script, connections, self.options.seconds)?;
        let after = cpu_seconds(pids)?;
        let cpu: Vec<(&'static str, f64)> =
            pids.iter().zip(before.iter().zip(&after)).map(|((name, _), (b, a))| (*name, a - b)).collect();
        let spent: Vec<String> = cpu.iter().map(|(n, s)| format!("{n} {s:.1}")).collect();
        eprintln!(
            "gateway {what}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; CPU s: {}",
            result.requests_per_second,
            result.p50_ms,
            result.p99_ms,
            result.errors,
            spent.join(", ")
        );
        if result.errors > 0 {
            eprintln!("warning: {} socket errors or non-2xx answers in {what}", result.errors);
        }
        Ok(Sample { wrk: result, cpu })
    }

    fn runs(&self, client: &Netns, face: Face, gateway: &Gateway, wg_pid: u32) -> Result<(Vec<Sample>, Vec<Sample>)> {
        let gateway_url = format!("{API}{CALL_NIK}");
        expect_resident(client, &gateway_url, USER, PASSWORD, &self.stage.niks[0])
            .context("a CALL_NIK through the gateway")?;
        let (c, warmup) = (self.options.connections, self.options.warmup_seconds);
        let (gateway_script, direct_script) = (self.stage.scripts.gateway.path(), self.stage.scripts.direct.path());
        let direct_url = self.stage.direct_url.as_str();
        if warmup > 0 {
            for (url, script) in [(gateway_url.as_str(), gateway_script), (direct_url, direct_script)] {
                let r = load(client, url, script, c, warmup)?;
                eprintln!(
                    "gateway {} warm-up {url}: {:.0} req/s, {} errors",
                    face.name(),
                    r.requests_per_second,
                    r.errors
                );
            }
        }
        let stand_in = self.stage.warehouse.pid();
        let gateway_pids = [("gateway", gateway.pid()), ("wireguard-go", wg_pid), ("stand-in", stand_in)];
        let direct_pids = [("stand-in", stand_in)];
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for run in 1..=self.options.runs {
            for (path, url, script, pids) in [
                ("gateway", gateway_url.as_str(), gateway_script, &gateway_pids[..]),
                ("direct", direct_url, direct_script, &direct_pids[..]),
            ] {
                let sample = self.sample(client, &format!("{} run {run} {path}", face.name()), url, script, c, pids)?;
                if path == "gateway" {
                    ours.push(sample);
                } else {
                    theirs.push(sample);
                }
            }
        }
        // Still answering with data after the load: not refused for quota or rate, not wedged.
        let nik = &self.stage.niks[1 % self.stage.niks.len()];
        expect_resident(client, &gateway_url, USER, PASSWORD, nik)
            .context("a CALL_NIK through the gateway after the runs")?;
        // A diagnosis, not a figure: the health page (no password, quota or upstream) through the same tunnel, which
        // shows what the tunnel and the HTTP server alone allow.
        let health = load(client, &format!("{API}/"), self.stage.scripts.health.path(), c, self.options.seconds)?;
        eprintln!(
            "gateway {} health page (GET /, tunnel and HTTP only): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            face.name(),
            health.requests_per_second,
            health.p50_ms,
            health.p99_ms
        );
        Ok((ours, theirs))
    }

    /// Disk syncs per request of `side`'s gateway, started under strace, at each of `connections`: the medians of
    /// the runs, in the same order.
    fn syncs_per_request(
        &self,
        client: &mut Netns,
        face: Face,
        side: &Side,
        connections: &[usize],
    ) -> Result<Vec<f64>> {
        let launch =
            side.launch(face, "syncs", Some(self.stage.dir.path().join(format!("syncs-{}.strace", side.word()))));
        let url = format!("{API}{CALL_NIK}");
        // (connections, start, end, requests) of each measured run, in seconds since the epoch as strace stamps.
        let windows = self.session(client, &launch, |client, _, _| {
            self.warm_up(client, face, side, connections)?;
            let mut windows = Vec::new();
            for &c in connections {
                for _ in 0..self.options.runs {
                    let start = epoch_seconds();
                    let r = load(client, &url, self.stage.scripts.gateway.path(), c, self.options.seconds)?;
                    windows.push((c, start, epoch_seconds(), r.requests_per_second * self.options.seconds as f64));
                }
            }
            Ok(windows)
        })?;
        let trace = launch.trace.as_deref().context("a traced launch")?;
        let calls = sync_calls(&std::fs::read_to_string(trace).with_context(|| format!("{}", trace.display()))?);
        let per_run = |c: usize| -> Vec<f64> {
            let runs = windows.iter().filter(|w| w.0 == c);
            runs.map(|&(_, start, end, requests)| {
                let syncs = calls.iter().filter(|(at, _)| (start..=end).contains(at)).count();
                let kinds: Vec<String> = SYNC_CALLS
                    .iter()
                    .map(|k| {
                        let n = calls.iter().filter(|(at, name)| name == k && (start..=end).contains(at)).count();
                        format!("{k} {n}")
                    })
                    .collect();
                eprintln!(
                    "gateway {} audit {} -c{c}: {:.0} requests, {syncs} syncs ({})",
                    face.name(),
                    side.word(),
                    requests,
                    kinds.join(", ")
                );
                syncs as f64 / requests.max(1.0)
            })
            .collect()
        };
        Ok(connections.iter().map(|&c| median(per_run(c))).collect())
    }
}

/// Prints requests per second, p50 and p99 of `ours` against `theirs`, medians of the runs, as `bench`'s lines.
fn print_lines(bench: &str, anchor: &str, runs: usize, notes: &str, ours: &[Sample], theirs: &[Sample]) {
    for (metric, pick) in [
        ("requests/s", (|r: &Sample| r.wrk.requests_per_second) as fn(&Sample) -> f64),
        ("p50 ms", |r: &Sample| r.wrk.p50_ms),
        ("p99 ms", |r: &Sample| r.wrk.p99_ms),
    ] {
        let simpul = median(ours.iter().map(pick).collect());
        let anchor_value = median(theirs.iter().map(pick).collect());
        BenchLine::new(bench, metric, simpul, anchor, anchor_value, runs, notes).print();
    }
}

fn report(face: Face, options: &Options, stage: &Stage, ours: &[Sample], theirs: &[Sample]) {
    let notes = format!(
        "{}; anchor: the same wrk, with the same Lua script but for the credentials, straight to the stand-in over \
         HTTPS (TLS 1.3) across the same veth, no tunnel; runs alternate",
        stage.notes(face, &options.connections.to_string(), options.seconds)
    );
    let anchor = "simpul-warehouse serve --dev called directly over HTTPS (same wrk, same client netns)";
    print_lines(&format!("gateway-call-nik-{}", face.name()), anchor, options.runs, &notes, ours, theirs);
    // Where the CPU went, per request: the diagnosis behind the ratio (not a figure with an anchor of its own).
    let per_request = |samples: &[Sample], name: &str| {
        median(samples.iter().map(|r| r.cpu_per_request(name, options.seconds)).collect())
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

/// The anchor of the audit benchmark's lines.
const UNAUDITED_ANCHOR: &str = "audit off: the same gateway built with --features unaudited-benchmark and run with \
                                SIMPUL_UNAUDITED_BENCHMARK=1, which answers without an audit record";

fn report_audit(face: Face, options: &Options, stage: &Stage, on: &[Sample], off: &[Sample]) {
    let notes = format!(
        "{}; audit on: each answer waits for its audit record's durable batch (group commit); anchor: the same \
         requests, answered without a record; a fresh gateway of each kind per run, in alternating order, each warmed \
         up {} s first",
        stage.notes(face, &options.connections.to_string(), options.seconds),
        options.warmup_seconds
    );
    print_lines(&format!("gateway-audit-{}", face.name()), UNAUDITED_ANCHOR, options.runs, &notes, on, off);
    let per_request =
        |samples: &[Sample]| median(samples.iter().map(|r| r.cpu_per_request("gateway", options.seconds)).collect());
    eprintln!(
        "gateway {}: gateway CPU µs per request (median): audit on {:.0}, audit off {:.0}",
        face.name(),
        per_request(on),
        per_request(off)
    );
}

fn report_syncs(face: Face, options: &Options, stage: &Stage, connections: &[usize], on: &[f64], off: &[f64]) {
    for ((c, on), off) in connections.iter().zip(on).zip(off) {
        let notes = format!(
            "{}; disk syncs = fsync + fdatasync + sync_file_range calls of the gateway process (sled makes its log \
             durable with sync_file_range; one sled flush may issue several), counted by strace -f --seccomp-bpf \
             during each measured run, divided by the requests wrk completed; quota spends are written in the audit \
             records' batches (group commit)",
            stage.notes(face, &c.to_string(), options.seconds)
        );
        let metric = format!("disk syncs per request at {c} connections");
        BenchLine::new(
            &format!("gateway-audit-syncs-{}", face.name()),
            &metric,
            *on,
            UNAUDITED_ANCHOR,
            *off,
            options.runs,
            &notes,
        )
        .print();
    }
}

/// Seconds since the epoch, as `strace -ttt` stamps its lines.
fn epoch_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The [`SYNC_CALLS`] in a `strace -f -ttt` log: when each started, and which call. A call another thread interrupted
/// is counted at its `<unfinished ...>` line, not again at its `<... resumed>` one.
fn sync_calls(log: &str) -> Vec<(f64, String)> {
    log.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            // The pid comes first (as a number, or `[pid N]`), then the time with its fraction, then the call.
            let at = words.iter().position(|w| w.contains('.') && w.parse::<f64>().is_ok())?;
            let (name, _) = words.get(at + 1)?.split_once('(')?;
            SYNC_CALLS.contains(&name).then(|| (words[at].parse().unwrap_or(0.0), name.to_owned()))
        })
        .collect()
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
/// would count a refusal, which comes as HTTP 200 with a code, as a success). Returns the answer's headers and body.
fn expect_resident(
    ns: &Netns,
    url: &str,
    user: &str,
    password: &str,
    nik: &str,
) -> Result<(String, serde_json::Value)> {
    expect_resident_from(ns, None, url, user, password, nik)
}

/// [`expect_resident`] from the local address `from` (curl's `--interface`), when given.
fn expect_resident_from(
    ns: &Netns,
    from: Option<&str>,
    url: &str,
    user: &str,
    password: &str,
    nik: &str,
) -> Result<(String, serde_json::Value)> {
    let body = format!(r#"{{"user_id":"{user}","password":"{password}","NIK":"{nik}"}}"#);
    // -k: the stand-in's dev certificate names localhost, not the veth address; the gateway pins it by fingerprint.
    // -D -: the headers first, then a blank line, then the body.
    let mut args = vec!["curl", "-sS", "-k", "-D", "-", "--max-time", "20"];
    if let Some(from) = from {
        args.extend(["--interface", from]);
    }
    args.extend(["-X", "POST", url, "-d", &body]);
    let out = check(ns.command(&args))?;
    let whole = String::from_utf8_lossy(&out.stdout);
    let (headers, text) = whole.split_once("\r\n\r\n").unwrap_or(("", &whole));
    let answer: serde_json::Value = serde_json::from_str(text).with_context(|| format!("{url} answered {text}"))?;
    let found = answer["content"].as_array().and_then(|c| c.first()).map(|r| r["NIK"].to_string());
    if found.as_deref().map(|n| n.trim_matches('"')) != Some(nik) {
        bail!("{url} did not answer with resident {nik}: {text}");
    }
    Ok((headers.to_owned(), answer))
}

/// The wrk scripts of the two paths, alike but for the credentials, and the health page's.
struct Scripts {
    gateway: tempfile::NamedTempFile,
    direct: tempfile::NamedTempFile,
    /// A GET of the URL given, with wrk's default headers.
    health: tempfile::NamedTempFile,
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

    /// SIGTERM (to `target`, a process the child waits for, such as strace's tracee, or else the child) and up to
    /// `grace` for the child's clean exit; SIGKILL after that.
    fn stop(&mut self, target: Option<u32>, grace: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = Command::new("kill").arg(target.unwrap_or(child.id()).to_string()).status();
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
    /// The gateway's own pid when `process` is strace running it.
    traced: Option<u32>,
    bin: PathBuf,
    config: PathBuf,
    public_key: String,
}

impl Gateway {
    fn start(ns: &Netns, launch: &Launch, config: &Path, state: &Path) -> Result<Self> {
        let bin = launch.bin;
        let calls = format!("trace={}", SYNC_CALLS.join(","));
        let mut args = Vec::new();
        if let Some(trace) = &launch.trace {
            // --seccomp-bpf: only the traced calls stop the process, so the rest runs at full speed.
            let trace = trace.to_str().context("a UTF-8 path")?;
            args.extend(["strace", "-f", "--seccomp-bpf", "-qq", "-ttt", "-e", "signal=none", "-e", &calls]);
            args.extend(["-o", trace, "--"]);
        }
        args.extend([bin.to_str().context("a UTF-8 path")?, "run", "--config", config.to_str().context("UTF-8")?]);
        let mut command = ns.command(&args);
        command.env_remove("SIMPUL_GATEWAY_CONFIG").env_remove("SIMPUL_GATEWAY_STATE_DIR").env_remove("RUST_LOG");
        if launch.audited {
            command.env_remove(UNAUDITED_ENV);
        } else {
            command.env(UNAUDITED_ENV, "1");
        }
        let log = state.with_extension("log");
        let mut process = Process::spawn("simpul-gateway", command, log)?;
        let lines = process.wait_ready(Duration::from_secs(30))?;
        let traced = match launch.trace {
            None => None,
            Some(_) => {
                let strace = process.pid();
                let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children"))?;
                Some(children.split_whitespace().next().context("strace has no child")?.parse()?)
            }
        };
        let public_key = lines
            .iter()
            .find_map(|l| l.strip_prefix("gateway public key: "))
            .context("the gateway announced no public key")?
            .trim()
            .to_owned();
        Ok(Gateway { process, traced, bin: bin.to_path_buf(), config: config.to_path_buf(), public_key })
    }

    fn pid(&self) -> u32 {
        self.traced.unwrap_or_else(|| self.process.pid())
    }

    /// Runs the admin CLI with `stdin`; fails unless it succeeds.
    fn cli(&self, args: &[&str], stdin: &str) -> Result<Output> {
        let out = crate::gateway_cli(&self.bin, &self.config, args, stdin).context("the gateway CLI")?;
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
        self.process.stop(self.traced, Duration::from_secs(10))
    }

    fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// The client's wireguard-go.
struct Client {
    pid: u32,
    /// The device's tunnel address, without its prefix length.
    address: String,
}

/// Adds a device, exports its wg-quick file, and brings up a stock wireguard-go client from it in `client`: `wg-quick
/// strip` for keys and peer, the file's Address and AllowedIPs by hand. The process stops with the namespace or
/// with `client.stop(pid)`.
fn connect(gateway: &Gateway, client: &mut Netns, dir: &Path, index: usize) -> Result<Client> {
    connect_routed(gateway, client, dir, index, None)
}

/// [`connect`], with the AllowedIPs routed in the main table (`table` `None`), or else only for traffic from the
/// device's own address: `ip rule add from ADDRESS table TABLE` and the route in that table, so that a second device
/// in the same namespace carries only what is sent from its address (`curl --interface ADDRESS`) while the main
/// table keeps routing the gateway through the first. The rule is the caller's to remove ([`unroute`]) once the
/// device is done; it is removed here if connecting fails.
fn connect_routed(
    gateway: &Gateway,
    client: &mut Netns,
    dir: &Path,
    index: usize,
    table: Option<u32>,
) -> Result<Client> {
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
    let host = address.split('/').next().unwrap_or(&address).to_owned();
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
        let mut curl = vec!["curl", "-sS", "--max-time", "2"];
        match table {
            None => {
                check(client.command(&["ip", "route", "add", &allowed, "dev", &iface]))?;
            }
            Some(table) => {
                let table = table.to_string();
                check(client.command(&["ip", "rule", "add", "from", &host, "table", &table]))?;
                check(client.command(&["ip", "route", "add", &allowed, "dev", &iface, "table", &table]))?;
                curl.extend(["--interface", &host]);
            }
        }
        // The first request waits for the handshake: poll the health page until the tunnel carries it. It names the
        // device the gateway saw, so this device's own name shows that the routing took its traffic there.
        let health = format!("{API}/");
        curl.push(&health);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = client.command(&curl).output()?;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&format!("device: {name}\n")) {
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
        if let Some(table) = table {
            unroute(client, &host, table);
        }
        return Err(e);
    }
    Ok(Client { pid, address: host })
}

/// Removes the rule [`connect_routed`] added for `address` and `table`, if it is there.
fn unroute(client: &Netns, address: &str, table: u32) {
    let table = table.to_string();
    let _ = client.command(&["ip", "rule", "del", "from", address, "table", &table]).stderr(Stdio::null()).status();
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
    fn sync_calls_are_read_from_strace() {
        let log = "4242  1764100000.250000 sync_file_range(9, 4096, 512, SYNC_FILE_RANGE_WAIT_BEFORE) = 0\n\
                   4243  1764100000.500000 fsync(10 <unfinished ...>\n\
                   4242  1764100000.600000 fdatasync(11) = 0\n\
                   4243  1764100000.700000 <... fsync resumed>) = 0\n\
                   4244  1764100000.800000 +++ exited with 0 +++\n";
        let calls = sync_calls(log);
        let names: Vec<&str> = calls.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["sync_file_range", "fsync", "fdatasync"]);
        assert_eq!(calls[1].0, 1_764_100_000.5);
    }

    #[test]
    fn cpu_of_a_process_is_read() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        // A shell that burns 0.2 s of CPU by the scheduler's own count (schedstat: nanoseconds run, an account apart
        // from stat's ticks), says so and then sleeps reading its stdin, so that both counts stand still while read.
        let burn =
            "while read ran rest < /proc/$$/schedstat; [ $ran -lt 200000000 ]; do :; done; echo burnt; read x || :";
        let mut child =
            Command::new("sh").args(["-c", burn]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "burnt\n");
        let pid = child.id();
        let schedstat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
        let ran = schedstat.split_whitespace().next().unwrap().parse::<u64>().unwrap() as f64 / 1e9;
        let spent = cpu_seconds(&[("sh", pid)]).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert_eq!(spent.len(), 1);
        // User and system time are whole ticks of 10 ms each, rounded down.
        assert!((ran - 0.02..=ran).contains(&spent[0]), "stat says {} s, schedstat {ran} s", spent[0]);
    }
}
