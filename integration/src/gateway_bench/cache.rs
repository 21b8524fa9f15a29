//! The warm-cache benchmark (root): `CALL_NIK` answered from the gateway's cache against Debian's nginx with
//! `proxy_cache` in front of the same stand-in, on the stage of the gateway benchmark ([`super::Stage`]), TUN face.
//!
//! One session with the cache on (`[cache] enabled = true`): once the gateway runs (its TUN device holds the tunnel
//! address), nginx starts in the gateway's namespace, listening on the gateway's tunnel address on [`NGINX_PORT`],
//! from a configuration written into the benchmark's temporary directory (master as root, workers as `nobody`),
//! caching POST by body (`proxy_cache_methods POST`, the key with `$request_body`, the body kept in one memory
//! buffer so that the variable is set) and passing misses to the stand-in over HTTPS (TLS 1.3, pooled keep-alive).
//! The gateway's nftables table lets the tunnel reach only the API port, so one rule accepting nginx's port is
//! inserted into it (after the suspended-device drop) for the session. Both caches are primed with every NIK of the
//! load asked once, one request after the other; the stand-in's quota count for its dev consumer (`quotaLimiter`
//! in a direct answer, before and after) shows that each NIK went upstream exactly once. Then, through the same
//! tunnel with the same wrk and Lua script (but for the credentials: nginx passes the stand-in's own on):
//! - the gateway with its warm cache against nginx, at `--connections`, alternating, each run checked by the same
//!   count to have made no upstream call at all;
//! - the gateway's health page (tunnel and HTTP only) the same way;
//! - both at half of nginx's median peak rate, paced by wrk's `delay()`: each connection waits a random time
//!   (exponential, mean connections / rate) before each request, so the connections offer that rate with Poisson
//!   arrivals, less what the answers' own latency takes from it (the rate reached is printed);
//! - with `--perf FILE`, one more warm run with `perf record` on the gateway (cpu-clock, DWARF call graphs).
//!
//! Then a fresh session with the cache off, measured as the gateway benchmark does ([`Bench::measure`]): every
//! request upstream, against wrk straight to the stand-in: the added p50 and the CPU per miss.

use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{
    check, expect_resident, load, print_lines, Bench, Binaries, Face, Gateway, Launch, Options, Process, Sample, Stage,
    API, CALL_NIK, DEV_PASSWORD, DEV_USER, PASSWORD, USER,
};
use crate::bench::{median, BenchLine};
use crate::netns::{self, Netns};
use crate::wrk::{self, Pacing};

/// nginx's port on the gateway's tunnel address, beside the API's.
const NGINX_PORT: u16 = 8080;
/// perf's sampling frequency (Hz): enough samples in a run of seconds, DWARF stacks of a manageable size.
const PERF_HZ: &str = "499";

/// What the warm-cache benchmark adds to the gateway benchmark's options.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// Record the gateway with `perf record` during one more warm run, into this file.
    pub perf: Option<PathBuf>,
}

/// Runs the warm-cache benchmark (TUN face) and prints its JSON lines. Fails (the binary exits non-zero) when not
/// root or a tool is missing: nginx (and perf with `--perf`) besides the gateway benchmark's.
pub fn run_cache(bins: &Binaries, options: &Options, cache: &CacheOptions) -> Result<()> {
    let nginx = netns::which("nginx").context(
        "the warm-cache benchmark needs nginx with proxy_cache (Debian's): apt-get install nginx-light (or nginx)",
    )?;
    let version = nginx_version(&nginx)?;
    if cache.perf.is_some() && netns::which("perf").is_none() {
        bail!("--perf needs perf: apt-get install linux-perf");
    }
    let (stage, mut client) = Stage::set_up(bins, &[], options)?;
    let bench = Bench { bins, options, stage: &stage, sessions: Cell::new(0) };
    let face = Face::Tun;
    let launch = Launch {
        name: format!("gateway-cache-{}", face.name()),
        face,
        bin: &bins.gateway,
        audited: true,
        cache: true,
        trace: None,
    };
    let warm = bench.session(&mut client, &launch, |client, gateway, wg_pid| {
        let mut server = Nginx::start(&stage, client, &nginx)?;
        let measured = warm_runs(&bench, client, gateway, wg_pid, &server, cache);
        let stopped = server.stop();
        let measured = measured.with_context(|| format!("nginx's error log ends: {}", server.error_log_tail()))?;
        stopped?;
        Ok(measured)
    })?;
    let (cold, direct) = bench.measure(&mut client, face)?;
    report(options, &stage, &version, &warm, &cold, &direct);
    Ok(())
}

/// What the warm session measured.
struct Warm {
    gateway: Vec<Sample>,
    nginx: Vec<Sample>,
    health: Vec<Sample>,
    /// The paced load's target, requests per second (half of nginx's median peak), and its samples.
    rate: f64,
    paced_gateway: Vec<Sample>,
    paced_nginx: Vec<Sample>,
}

/// One path of the warm session: a name for the log, its URL and script, and the processes whose CPU is counted.
struct Route<'a> {
    name: &'static str,
    url: String,
    script: &'a Path,
    pids: Vec<(&'static str, u32)>,
}

fn warm_runs(
    bench: &Bench,
    client: &Netns,
    gateway: &Gateway,
    wg_pid: u32,
    nginx: &Nginx,
    cache: &CacheOptions,
) -> Result<Warm> {
    let (stage, options) = (bench.stage, bench.options);
    let c = options.connections;
    let stand_in = stage.warehouse.pid();
    let mut nginx_pids: Vec<(&'static str, u32)> = nginx.workers.iter().map(|&w| ("nginx", w)).collect();
    nginx_pids.extend([("wireguard-go", wg_pid), ("stand-in", stand_in)]);
    let gateway_pids = vec![("gateway", gateway.pid()), ("wireguard-go", wg_pid), ("stand-in", stand_in)];
    let scripts = &stage.scripts;
    let ours = Route {
        name: "warm gateway",
        url: format!("{API}{CALL_NIK}"),
        script: scripts.gateway.path(),
        pids: gateway_pids.clone(),
    };
    let theirs = Route { name: "nginx", url: nginx.url(), script: scripts.direct.path(), pids: nginx_pids };
    let health = Route { name: "health", url: format!("{API}/"), script: scripts.health.path(), pids: gateway_pids };

    // Priming: every NIK once, so that every one is a miss, exactly once.
    let niks = &stage.niks;
    for (path, user, password) in [(&ours, USER, PASSWORD), (&theirs, DEV_USER, DEV_PASSWORD)] {
        let (asked, ()) = upstream_calls(client, stage, || ask_each_once(client, stage, &path.url, user, password))?;
        eprintln!("{} primed: {} NIKs, {asked} upstream calls", path.name, niks.len());
        if asked != niks.len() as u64 {
            bail!(
                "priming {}: {} NIKs asked once each made {asked} upstream calls, not one each",
                path.name,
                niks.len()
            );
        }
    }
    if options.warmup_seconds > 0 {
        for path in [&ours, &theirs, &health] {
            let (asked, r) =
                upstream_calls(client, stage, || load(client, &path.url, path.script, c, options.warmup_seconds))?;
            expect_no_upstream_calls(&format!("the {} warm-up", path.name), asked)?;
            eprintln!("{} warm-up: {:.0} req/s, {} errors", path.name, r.requests_per_second, r.errors);
        }
    }
    let measured = |path: &Route, script: &Path, what: &str| -> Result<Sample> {
        let what = format!("tun {what} {}", path.name);
        let (asked, sample) =
            upstream_calls(client, stage, || bench.sample(client, &what, &path.url, script, c, &path.pids))?;
        expect_no_upstream_calls(&what, asked)?;
        Ok(sample)
    };

    let (mut gateway_runs, mut nginx_runs, mut health_runs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=options.runs {
        // Which goes first alternates, so that neither always follows the other.
        let mut order = [(&ours, &mut gateway_runs), (&theirs, &mut nginx_runs), (&health, &mut health_runs)];
        if run % 2 == 0 {
            order.reverse();
        }
        for (path, samples) in order {
            samples.push(measured(path, path.script, &format!("run {run}"))?);
        }
    }

    let rate = median(nginx_runs.iter().map(|s| s.wrk.requests_per_second).collect()) / 2.0;
    let pacing = Pacing::MeanDelayMs(c as f64 * 1000.0 / rate.max(1.0));
    let paced_ours = wrk::call_nik_script_paced(niks, USER, PASSWORD, pacing)?;
    let paced_theirs = wrk::call_nik_script_paced(niks, DEV_USER, DEV_PASSWORD, pacing)?;
    let (mut paced_gateway, mut paced_nginx) = (Vec::new(), Vec::new());
    for run in 1..=options.runs {
        let what = format!("run {run} paced at {rate:.0}/s");
        let mut order =
            [(&ours, paced_ours.path(), &mut paced_gateway), (&theirs, paced_theirs.path(), &mut paced_nginx)];
        if run % 2 == 0 {
            order.reverse();
        }
        for (path, script, samples) in order {
            samples.push(measured(path, script, &what)?);
        }
    }

    if let Some(file) = &cache.perf {
        let mut perf = Command::new("perf");
        #[rustfmt::skip]
        perf.args([
            "record", "-e", "cpu-clock", "-F", PERF_HZ, "--call-graph", "dwarf", "-p", &gateway.pid().to_string(),
            "-o",
        ]);
        perf.arg(file).args(["--", "sleep", &options.seconds.to_string()]);
        let log = stage.dir.path().join("perf.log");
        let mut perf = perf.stdout(Stdio::null()).stderr(std::fs::File::create(&log)?).spawn().context("perf")?;
        let profiled = measured(&ours, ours.script, "profiled");
        let status = perf.wait()?;
        profiled?;
        if !status.success() {
            bail!("perf record failed ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        eprintln!("perf profile of the warm gateway written to {}", file.display());
    }
    Ok(Warm { gateway: gateway_runs, nginx: nginx_runs, health: health_runs, rate, paced_gateway, paced_nginx })
}

/// POSTs `CALL_NIK` once for each of the stage's NIKs to `url` from `client`, one after the other on one keep-alive
/// connection (one curl, its requests separated by `next` in a config file); fails unless each is answered 200.
fn ask_each_once(client: &Netns, stage: &Stage, url: &str, user: &str, password: &str) -> Result<()> {
    let requests: Vec<String> = stage
        .niks
        .iter()
        .map(|nik| {
            let body = format!(r#"{{"user_id":"{user}","password":"{password}","NIK":"{nik}"}}"#).replace('"', "\\\"");
            format!(
                "url = \"{url}\"\nheader = \"Content-Type: application/json\"\ndata = \"{body}\"\n\
                 output = \"/dev/null\"\nwrite-out = \"%{{http_code}}\\n\"\n"
            )
        })
        .collect();
    let config = requests.join("next\n");
    let file = stage.dir.path().join("ask-each-once.curl");
    std::fs::write(&file, config)?;
    let out = check(client.command(&["curl", "-sS", "--max-time", "600", "-K", file.to_str().context("UTF-8")?]))?;
    let statuses = String::from_utf8_lossy(&out.stdout);
    let ok = statuses.lines().filter(|s| *s == "200").count();
    if ok != stage.niks.len() {
        bail!("{url}: {ok} of {} requests answered 200", stage.niks.len());
    }
    Ok(())
}

/// Runs `f` between two direct `CALL_NIK`s to the stand-in as its dev consumer, whose answers carry the quota left
/// to that consumer today (`quotaLimiter`), which the gateway and nginx spend too: returns how many requests the
/// stand-in answered for them while `f` ran, and `f`'s result. Nothing else may call the stand-in meanwhile.
fn upstream_calls<T>(client: &Netns, stage: &Stage, f: impl FnOnce() -> Result<T>) -> Result<(u64, T)> {
    let remaining = || -> Result<u64> {
        let (_, answer) = expect_resident(client, &stage.direct_url, DEV_USER, DEV_PASSWORD, &stage.niks[0])
            .context("a direct CALL_NIK to the stand-in, for its quota count")?;
        answer["quotaLimiter"].as_u64().with_context(|| format!("no quotaLimiter in the stand-in's answer {answer}"))
    };
    let before = remaining()?;
    let result = f()?;
    let after = remaining()?;
    // The second count's own request is one of the difference.
    let calls = before.checked_sub(after).and_then(|d| d.checked_sub(1));
    let calls = calls.with_context(|| format!("the stand-in's quota went from {before} to {after}"))?;
    Ok((calls, result))
}

fn expect_no_upstream_calls(what: &str, calls: u64) -> Result<()> {
    if calls > 0 {
        bail!("{what}: {calls} requests reached the stand-in, so the load did not come all from the cache");
    }
    Ok(())
}

/// Debian's nginx in the gateway's namespace, from a configuration in the benchmark's directory.
struct Nginx {
    process: Process,
    /// The worker processes' pids, whose CPU is nginx's.
    workers: Vec<u32>,
    dir: PathBuf,
}

impl Nginx {
    /// Writes the configuration, opens nginx's port in the gateway's table, starts nginx and waits until it answers
    /// through the tunnel from `client`.
    fn start(stage: &Stage, client: &Netns, bin: &Path) -> Result<Self> {
        // The workers run as nobody: they must pass through the directory (not list it) to reach their own.
        std::fs::set_permissions(stage.dir.path(), std::fs::Permissions::from_mode(0o711))?;
        let dir = stage.dir.path().join("nginx");
        let owned = ["cache", "client_body", "proxy"].map(|d| dir.join(d));
        for d in &owned {
            std::fs::create_dir_all(d)?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let mut chown = Command::new("chown");
        chown.arg("nobody:nogroup").args(&owned);
        check(chown)?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(&dir, stage))?;
        let path = |p: &Path| p.to_str().context("a UTF-8 path").map(str::to_owned);
        let bin = path(bin)?;
        let (conf, error_log) = (path(&conf)?, path(&dir.join("error.log"))?);
        let args = [bin.as_str(), "-c", &conf, "-e", &error_log];
        check(stage.gw.command(&[&args[..], &["-t"]].concat())).context("nginx's configuration")?;
        #[rustfmt::skip]
        check(stage.gw.command(&[
            "nft", "insert", "rule", "inet", "simpul", "input", "index", "1", "ip", "daddr", tunnel_address(), "tcp",
            "dport", &NGINX_PORT.to_string(), "accept", "comment", "\"bench gateway-cache: nginx\"",
        ]))
        .context("letting the tunnel reach nginx through the gateway's table")?;
        let process = Process::spawn("nginx", stage.gw.command(&args), dir.join("stderr.log"))?;
        let mut nginx = Nginx { process, workers: Vec::new(), dir };
        // Any answer shows nginx listening and the tunnel reaching it; a GET is not one of the load's cache keys.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = client.command(&["curl", "-sS", "-o", "/dev/null", "--max-time", "2", &nginx.url()]).output()?;
            if out.status.success() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not answer through the tunnel: {}{}",
                    String::from_utf8_lossy(&out.stderr),
                    nginx.error_log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let master = nginx.process.pid();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))?;
        for pid in children.split_whitespace() {
            let pid: u32 = pid.parse()?;
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.contains("worker process") {
                nginx.workers.push(pid);
            }
        }
        if nginx.workers.is_empty() {
            bail!("nginx has no worker process");
        }
        Ok(nginx)
    }

    fn url(&self) -> String {
        format!("http://{}:{NGINX_PORT}{CALL_NIK}", tunnel_address())
    }

    fn stop(&mut self) -> Result<()> {
        self.process.stop(None, Duration::from_secs(10))
    }

    fn error_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

/// The gateway's tunnel address, where its API listens.
fn tunnel_address() -> &'static str {
    let host = API.trim_start_matches("http://");
    host.split(':').next().unwrap_or(host)
}

/// nginx's configuration: a worker per CPU (as Debian's own), keep-alive on both sides without a request limit, the
/// body read into one memory buffer so that `$request_body` (in the cache key) is set, and the stand-in's answers
/// cached whatever headers they carry. The stand-in's dev certificate names localhost, not its veth address, so
/// nginx does not verify it (the gateway pins it instead; the handshake is once per pooled connection either way).
fn config(dir: &Path, stage: &Stage) -> String {
    let dir = dir.display();
    let upstream = stage.direct_url.trim_start_matches("https://");
    let upstream = upstream.split('/').next().unwrap_or(upstream);
    let listen = format!("{}:{NGINX_PORT}", tunnel_address());
    format!(
        "daemon off;
master_process on;
worker_processes auto;
user nobody nogroup;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=simpul:32m max_size=1g inactive=1d use_temp_path=off;
    upstream stand_in {{
        server {upstream};
        keepalive 128;
    }}
    server {{
        listen {listen};
        keepalive_requests 100000000;
        keepalive_timeout 300s;
        client_max_body_size 16k;
        client_body_buffer_size 16k;
        client_body_in_single_buffer on;
        location / {{
            proxy_pass https://stand_in;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_session_reuse on;
            proxy_ssl_verify off;
            proxy_cache simpul;
            proxy_cache_methods POST;
            proxy_cache_key \"$request_method $request_uri $request_body\";
            proxy_cache_valid 200 1d;
            proxy_cache_lock on;
            proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"
    )
}

/// `nginx -v`'s version, as `nginx/1.22.1`.
fn nginx_version(bin: &Path) -> Result<String> {
    let out = Command::new(bin).arg("-v").output().context("nginx -v")?;
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().find(|w| w.starts_with("nginx/")).map(str::to_owned).context("nginx -v printed no version")
}

fn report(options: &Options, stage: &Stage, nginx: &str, warm: &Warm, cold: &[Sample], direct: &[Sample]) {
    let face = Face::Tun;
    let (runs, seconds) = (options.runs, options.seconds);
    let base = stage.notes(face, &options.connections.to_string(), seconds);
    let warm_notes = format!(
        "{base}; here with the cache ON and warm (every NIK asked once first, each one upstream call by the stand-in's \
         quota count, which also shows no upstream call during any measured run): a hit is still checked, spent and \
         recorded durably; runs alternate"
    );
    let nginx_anchor = format!(
        "Debian {nginx} proxy_cache (POST cached by body, 1 worker per CPU, keep-alive) in front of the stand-in, on \
         the gateway's tunnel address, warm, through the same tunnel and wrk"
    );
    print_lines(
        &format!("gateway-cache-{}", face.name()),
        &nginx_anchor,
        runs,
        &warm_notes,
        &warm.gateway,
        &warm.nginx,
    );
    let health_anchor = "the gateway's health page (GET /, tunnel and HTTP only) through the same tunnel and wrk";
    print_lines(
        &format!("gateway-cache-health-{}", face.name()),
        health_anchor,
        runs,
        &warm_notes,
        &warm.gateway,
        &warm.health,
    );

    let cpu =
        |samples: &[Sample], name: &str| median(samples.iter().map(|s| s.cpu_per_request(name, seconds)).collect());
    let cpu_notes = format!(
        "{base}; user+system CPU of the process from /proc/PID/stat during each measured run, divided by the \
         requests wrk completed"
    );
    BenchLine::new(
        &format!("gateway-cache-{}", face.name()),
        "CPU µs per request, hit",
        cpu(&warm.gateway, "gateway"),
        &format!("{nginx} workers per cached answer"),
        cpu(&warm.nginx, "nginx"),
        runs,
        &format!("{cpu_notes}; the gateway with a warm cache against all of nginx's workers"),
    )
    .print();
    BenchLine::new(
        &format!("gateway-cold-{}", face.name()),
        "CPU µs per request, miss",
        cpu(cold, "gateway"),
        "the stand-in's CPU per request called directly (what the answer itself costs)",
        cpu(direct, "stand-in"),
        runs,
        &format!("{cpu_notes}; the gateway with its cache off (every request upstream)"),
    )
    .print();

    let cold_notes = format!(
        "{base}; cache OFF: every request goes upstream; anchor: the same wrk, with the same Lua script but for the \
         credentials, straight to the stand-in over HTTPS (TLS 1.3) across the same veth, no tunnel; runs alternate"
    );
    let direct_anchor = "simpul-warehouse serve --dev called directly over HTTPS (same wrk, same client netns)";
    print_lines(&format!("gateway-cold-{}", face.name()), direct_anchor, runs, &cold_notes, cold, direct);
    let p50 = |samples: &[Sample]| median(samples.iter().map(|s| s.wrk.p50_ms).collect());
    BenchLine::new(
        &format!("gateway-cold-{}", face.name()),
        "added p50 ms",
        p50(cold) - p50(direct),
        "p50 ms of the stand-in called directly",
        p50(direct),
        runs,
        &format!("{cold_notes}; the added p50 is the medians' difference (tunnel, gateway, its upstream hop)"),
    )
    .print();

    let reached = |samples: &[Sample]| median(samples.iter().map(|s| s.wrk.requests_per_second).collect());
    let paced_notes = format!(
        "{base}; cache ON and warm; both paced at half of nginx's median peak rate, {:.0} requests/s, by wrk's delay() \
         per connection: an exponential wait of mean {} connections / rate before each request (Poisson arrivals), \
         less what the answers' latency takes; rates reached (medians): gateway {:.0}/s, nginx {:.0}/s; target: p99 at \
         most 2 ms",
        warm.rate,
        options.connections,
        reached(&warm.paced_gateway),
        reached(&warm.paced_nginx),
    );
    // The pacing only caps the rate: a path slower than the target runs at its own peak, where its p99 means less.
    for (path, samples) in [("gateway", &warm.paced_gateway), ("nginx", &warm.paced_nginx)] {
        if reached(samples) < 0.9 * warm.rate {
            eprintln!(
                "warning: {path} reached {:.0} of the paced {:.0} requests/s: its p99 at that load is its p99 at its \
                 own peak",
                reached(samples),
                warm.rate
            );
        }
    }
    let p99 = |samples: &[Sample]| median(samples.iter().map(|s| s.wrk.p99_ms).collect());
    BenchLine::new(
        &format!("gateway-cache-paced-{}", face.name()),
        "p99 ms at half of nginx's peak rate",
        p99(&warm.paced_gateway),
        &format!("Debian {nginx} proxy_cache at the same rate"),
        p99(&warm.paced_nginx),
        runs,
        &paced_notes,
    )
    .print();
}
