//! The password-flood benchmark (root): what a flood of wrong passwords costs the gateway, on the stage of the
//! gateway benchmark ([`super::Stage`]).
//!
//! A fresh gateway per run, two devices of the user `bench` in the client namespace, each its own stock wireguard-go:
//! A, routed in the main table, and B, routed by a policy rule for its own address only (so `curl --interface B`
//! goes through B and everything else through A). Then:
//! 1. [`VALID_REQUESTS`] valid `CALL_NIK` requests from B, one after the other (idle);
//! 2. the gateway's resident memory (`VmRSS`), and its peak reset (`clear_refs` 5);
//! 3. the flood: [`FLOOD_CONNECTIONS`] keep-alive connections from A, each posting `CALL_NIK` in a loop with a user
//!    id never used before and a wrong password, so that every request reaches a full argon2 check (against the
//!    dummy hash of unknown ids) and no backoff applies; every answer must be HTTP 200 with code 03;
//! 4. a second for the flood to saturate, then the same valid requests from B again, and the flood goes on until
//!    `--seconds` have passed since it started;
//! 5. the peak (`VmHWM`) once the flood has stopped.
//!
//! Figures, medians of the runs: the peak minus the idle resident memory against the 256 MB target, and the median
//! time of the valid requests during the flood against the same requests idle (the target is at most twice).
//! The gateway's rates are all set far above the load, the device's too: the worst case, where nothing stops a
//! flood before the password check but the check's own bound (`[api] password_checks`, left at its default).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{
    connect, connect_routed, expect_resident_from, unroute, Bench, Binaries, Client, Face, Gateway, Launch, Options,
    Stage, API, CALL_NIK, PASSWORD, USER,
};
use crate::bench::{median, BenchLine};
use crate::netns::{self, Netns};

/// Concurrent connections of the flood.
const FLOOD_CONNECTIONS: usize = 200;
/// Valid requests from device B, idle and again during the flood, per run.
const VALID_REQUESTS: usize = 30;
/// How long the flood runs before the valid requests during it start.
const SATURATE: Duration = Duration::from_secs(1);
/// The NIK the flood asks for (the bench user's own; it is never looked up, as the password is wrong).
const FLOOD_NIK: &str = "3374041003870006";
/// The target of the peak extra memory, in MB.
const TARGET_MB: f64 = 256.0;
/// Device B's routing table is this plus the session's first device index, so that no two sessions share one.
const TABLE_BASE: u32 = 100;
/// Flood errors printed one by one; the rest are only counted.
const ERRORS_PRINTED: u64 = 20;

/// Runs the flood benchmark for every face in `options` and prints its JSON lines.
pub fn run_flood(bins: &Binaries, options: &Options) -> Result<()> {
    let (stage, mut client) = Stage::set_up(bins, &[], options)?;
    let bench = Bench { bins, options, stage: &stage, sessions: std::cell::Cell::new(0) };
    for &face in &options.faces {
        let mut runs = Vec::new();
        for run in 1..=options.runs {
            let launch = Launch {
                name: format!("gateway-flood-{}-run{run}", face.name()),
                face,
                bin: &bins.gateway,
                audited: true,
                cache: false,
                trace: None,
            };
            let what = format!("{} run {run}", face.name());
            let measured = session(&bench, &mut client, &launch, |client, gateway, a, b| {
                measure(&bench, client, gateway, a, b, &what)
            })?;
            runs.push(measured);
        }
        report(face, options, &stage, &runs);
    }
    Ok(())
}

/// Like [`Bench::session`], with two devices of the bench user: A routed in the main table, B only for its own
/// address ([`connect_routed`]). Runs `f` with the client's namespace, the gateway, A and B, then stops them all.
fn session<T>(
    bench: &Bench,
    client: &mut Netns,
    launch: &Launch,
    f: impl FnOnce(&Netns, &Gateway, &Client, &Client) -> Result<T>,
) -> Result<T> {
    let dir = bench.stage.dir.path();
    let state = dir.join(&launch.name);
    let config = bench.write_config(&state, launch)?;
    let mut gateway = Gateway::start(&bench.stage.gw, launch, &config, &state)?;
    eprintln!("{}: public key {}", launch.name, gateway.public_key);
    gateway.register()?;
    let first = bench.sessions.replace(bench.sessions.get() + 2);
    let a = connect(&gateway, client, dir, first)?;
    let table = TABLE_BASE + u32::try_from(first)?;
    let b = match connect_routed(&gateway, client, dir, first + 1, Some(table)) {
        Ok(b) => b,
        Err(e) => {
            client.stop(a.pid);
            return Err(e.context("device B"));
        }
    };
    let measured = f(client, &gateway, &a, &b);
    let stopped = client.stop(a.pid) & client.stop(b.pid);
    unroute(client, &b.address, table);
    let clean = gateway.stop();
    let result = measured.with_context(|| format!("the gateway's log ends: {}", gateway.log_tail()))?;
    if !stopped {
        bail!("a client's wireguard-go was gone before the end of the run");
    }
    clean?;
    Ok(result)
}

/// What one run measured.
#[derive(Debug)]
struct Run {
    /// Milliseconds of each valid request from B, idle and during the flood.
    idle_ms: Vec<f64>,
    flood_ms: Vec<f64>,
    /// The gateway's resident memory just before the flood, and its peak from then to the flood's end, in KiB.
    idle_kib: u64,
    peak_kib: u64,
    tally: Tally,
    /// How long the flood ran.
    flood_seconds: f64,
}

impl Run {
    fn extra_mib(&self) -> f64 {
        self.peak_kib.saturating_sub(self.idle_kib) as f64 / 1024.0
    }

    fn answers_per_second(&self) -> f64 {
        self.tally.answers() as f64 / self.flood_seconds.max(1e-9)
    }
}

/// One run in a fresh session: the valid requests idle, the memory, the flood with the valid requests during it.
fn measure(bench: &Bench, client: &Netns, gateway: &Gateway, a: &Client, b: &Client, what: &str) -> Result<Run> {
    let url = format!("{API}{CALL_NIK}");
    let niks = &bench.stage.niks;
    // The first request from B verifies the password (argon2), which the gateway then remembers: the valid requests
    // measured are the served path, idle and flooded alike.
    expect_resident_from(client, Some(&b.address), &url, USER, PASSWORD, &niks[0])
        .context("a CALL_NIK from device B")?;
    let idle_ms = valid_requests(client, &b.address, &url, niks)?;

    let pid = gateway.pid();
    let idle_kib = status_kib(pid, "VmRSS")?;
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("resetting the gateway's peak memory")?;
    let flood = Flood::start(&client.name, &a.address, FLOOD_CONNECTIONS)?;
    let started = Instant::now();
    std::thread::sleep(SATURATE);
    let flooded = valid_requests(client, &b.address, &url, niks);
    let window = Duration::from_secs(bench.options.seconds);
    std::thread::sleep(window.saturating_sub(started.elapsed()));
    let tally = flood.stop();
    let flood_seconds = started.elapsed().as_secs_f64();
    let peak_kib = status_kib(pid, "VmHWM")?;
    let after_kib = status_kib(pid, "VmRSS")?;
    let flood_ms = flooded.context("the valid requests from device B during the flood")?;

    let run = Run { idle_ms, flood_ms, idle_kib, peak_kib, tally, flood_seconds };
    eprintln!(
        "gateway-flood {what}: valid requests from B median {:.2} ms idle, {:.2} ms flooded (p90 {:.2} / {:.2}); \
         gateway resident {:.1} MiB idle, peak {:.1} MiB (+{:.1}), {:.1} MiB after; flood {:.1} s, {} answers \
         ({:.1}/s; by status {:?}), {} with code 03, {} errors, {} connections opened",
        median(run.idle_ms.clone()),
        median(run.flood_ms.clone()),
        percentile(&run.idle_ms, 0.9),
        percentile(&run.flood_ms, 0.9),
        run.idle_kib as f64 / 1024.0,
        run.peak_kib as f64 / 1024.0,
        run.extra_mib(),
        after_kib as f64 / 1024.0,
        run.flood_seconds,
        run.tally.answers(),
        run.answers_per_second(),
        run.tally.statuses,
        run.tally.refused,
        run.tally.errors,
        run.tally.connections,
    );
    if run.tally.refused == 0 {
        bail!("the flood got no answer with code 03 in {:.1} s ({} errors)", run.flood_seconds, run.tally.errors);
    }
    Ok(run)
}

/// [`VALID_REQUESTS`] valid `CALL_NIK` requests from `from` (device B's address), one after the other, each its own
/// curl (a new connection each): curl's `time_total` of each, in milliseconds. Fails unless each answer is the
/// resident asked for.
fn valid_requests(client: &Netns, from: &str, url: &str, niks: &[String]) -> Result<Vec<f64>> {
    (0..VALID_REQUESTS)
        .map(|i| {
            let nik = &niks[(i + 1) % niks.len()];
            let body = format!(r#"{{"user_id":"{USER}","password":"{PASSWORD}","NIK":"{nik}"}}"#);
            #[rustfmt::skip]
            let args = [
                "curl", "-sS", "--max-time", "60", "--interface", from, "-X", "POST", url, "-d", &body,
                "-w", "\n%{http_code} %{time_total}",
            ];
            let out = client.command(&args).output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let (answer, timing) = text.rsplit_once('\n').unwrap_or(("", &text));
            if !out.status.success() {
                bail!("a valid request from device B failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let (status, seconds) = timing.split_once(' ').context("curl's timing line")?;
            let found = serde_json::from_str::<serde_json::Value>(answer).ok().and_then(|v| {
                v["content"]
                    .as_array()
                    .and_then(|c| c.first())
                    .map(|r| r["NIK"].to_string().trim_matches('"').to_owned())
            });
            if status != "200" || found.as_deref() != Some(nik.as_str()) {
                bail!("a valid request from device B for {nik} was answered HTTP {status}: {answer}");
            }
            Ok(seconds.parse::<f64>().context("curl's time_total")? * 1000.0)
        })
        .collect()
}

/// A field of `/proc/PID/status` given in kB (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("the gateway {pid}"))?;
    parse_status_kib(&status, field).with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The nearest-rank percentile `p` (0 to 1) of `xs`.
fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let rank = (p * xs.len() as f64).ceil() as usize;
    xs.get(rank.saturating_sub(1)).copied().unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------------------------------
// The flood

/// What the flood's connections got.
#[derive(Debug, Default)]
struct Tally {
    /// Answers by HTTP status.
    statuses: BTreeMap<u16, u64>,
    /// Answers that were HTTP 200 with code 03, as a wrong password is answered.
    refused: u64,
    /// Anything else: other answers, broken connections, timeouts.
    errors: u64,
    /// Connections opened.
    connections: u64,
}

impl Tally {
    fn answers(&self) -> u64 {
        self.statuses.values().sum()
    }

    fn add(&mut self, other: Tally) {
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.refused += other.refused;
        self.errors += other.errors;
        self.connections += other.connections;
    }
}

/// The flood's threads, one per connection, made in the client's namespace and looping until stopped.
struct Flood {
    stop: Arc<AtomicBool>,
    /// Each thread's current connection, for [`Flood::stop`] to shut down whatever a thread is waiting on.
    sockets: Arc<Mutex<Vec<Option<TcpStream>>>>,
    threads: Vec<JoinHandle<Tally>>,
}

impl Flood {
    /// Starts `connections` threads flooding the gateway from the namespace `ns`. Checks first that a connection
    /// from there leaves from `expected` (device A's address), as the main table routes it.
    fn start(ns: &str, expected: &str, connections: usize) -> Result<Self> {
        let gateway: SocketAddr = API.trim_start_matches("http://").parse().context("the gateway's API address")?;
        let probe = open(ns, gateway).context("a connection to the gateway from the client's namespace")?;
        let from = probe.local_addr()?.ip().to_string();
        if from != expected {
            bail!("the flood would leave from {from}, not from device A's address {expected}");
        }
        drop(probe);
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new((0..connections).map(|_| None).collect::<Vec<_>>()));
        let printed = Arc::new(AtomicU64::new(0));
        let threads = (0..connections)
            .map(|i| {
                let (ns, stop, sockets, printed) = (ns.to_owned(), stop.clone(), sockets.clone(), printed.clone());
                std::thread::Builder::new()
                    .name(format!("flood-{i}"))
                    .spawn(move || flood(&ns, gateway, i, &stop, &sockets, &printed))
                    .context("starting a flood thread")
            })
            .collect::<Result<_>>()?;
        Ok(Flood { stop, sockets, threads })
    }

    /// Stops the threads (shutting down their connections, which ends any wait for an answer) and adds up what they
    /// got.
    fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for socket in lock(&self.sockets).iter().flatten() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let mut tally = Tally::default();
        for thread in self.threads {
            match thread.join() {
                Ok(t) => tally.add(t),
                Err(_) => {
                    eprintln!("flood: a thread panicked");
                    tally.errors += 1;
                }
            }
        }
        tally
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TCP connection to `to`, made in the namespace `ns` (where it stays, whichever thread uses it).
fn open(ns: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let stream = netns::enter(ns, || TcpStream::connect_timeout(&to, Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// One flood connection's loop: `CALL_NIK` with user id `flood-I-N` and password `salah-N`, N counting the
/// connection's requests, over a keep-alive connection that is opened again if it breaks.
fn flood(
    ns: &str,
    gateway: SocketAddr,
    i: usize,
    stop: &AtomicBool,
    sockets: &Mutex<Vec<Option<TcpStream>>>,
    printed: &AtomicU64,
) -> Tally {
    let mut tally = Tally::default();
    let error = |tally: &mut Tally, what: String| {
        tally.errors += 1;
        if printed.fetch_add(1, Ordering::Relaxed) < ERRORS_PRINTED {
            eprintln!("flood error (connection {i}): {what}");
        }
    };
    let mut connection: Option<BufReader<TcpStream>> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if connection.is_none() {
            let (clone, stream) = match open(ns, gateway).and_then(|s| Ok((s.try_clone()?, s))) {
                Ok(pair) => pair,
                Err(e) => {
                    if !stop.load(Ordering::SeqCst) {
                        error(&mut tally, format!("connecting: {e}"));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    continue;
                }
            };
            tally.connections += 1;
            {
                // Under the lock, so that a stop either sees this socket or is seen here.
                let mut sockets = lock(sockets);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                sockets[i] = Some(clone);
            }
            connection = Some(BufReader::new(stream));
        }
        let Some(reader) = connection.as_mut() else { continue };
        let body = format!(r#"{{"user_id":"flood-{i}-{n}","password":"salah-{n}","NIK":"{FLOOD_NIK}"}}"#);
        n += 1;
        match exchange(reader, &body) {
            Ok(answer) => {
                *tally.statuses.entry(answer.status).or_default() += 1;
                if answer.status == 200 && answer.body.contains(r#""RESPONSE_CODE":"03""#) {
                    tally.refused += 1;
                } else {
                    error(&mut tally, format!("HTTP {}: {}", answer.status, answer.body));
                }
                if answer.close {
                    connection = None;
                }
            }
            Err(e) => {
                connection = None;
                if !stop.load(Ordering::SeqCst) {
                    error(&mut tally, format!("request {n}: {e}"));
                }
            }
        }
    }
    tally
}

/// An HTTP/1.1 answer.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: String,
    /// The server closes the connection after it.
    close: bool,
}

/// POSTs `body` to [`CALL_NIK`] on the connection and reads the whole answer.
fn exchange(reader: &mut BufReader<TcpStream>, body: &str) -> io::Result<Answer> {
    let host = API.trim_start_matches("http://");
    let request = format!(
        "POST {CALL_NIK} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n\
         {body}",
        body.len()
    );
    reader.get_mut().write_all(request.as_bytes())?;
    read_answer(reader)
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one HTTP/1.1 answer: status line, headers, and a body by `Content-Length`, chunked, or to the end.
fn read_answer(reader: &mut impl BufRead) -> io::Result<Answer> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the gateway closed the connection"));
    }
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| invalid(format!("status line {line:?}")))?;
    let (mut length, mut chunked, mut close) = (None, false, line.starts_with("HTTP/1.0"));
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the answer's headers were cut"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse::<usize>().map_err(|e| invalid(format!("{header}: {e}")))?),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(|e| invalid(format!("chunk size {line:?}: {e}")))?;
            if size == 0 {
                // Trailers, up to a blank line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
        close = true;
    }
    Ok(Answer { status, body: String::from_utf8_lossy(&body).into_owned(), close })
}

// ---------------------------------------------------------------------------------------------------------------------
// The report

fn report(face: Face, options: &Options, stage: &Stage, runs: &[Run]) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let of = |pick: &dyn Fn(&Run) -> f64| median(runs.iter().map(pick).collect());
    let idle_kib = of(&|r| r.idle_kib as f64);
    let peak_kib = of(&|r| r.peak_kib as f64);
    let extra = of(&|r| r.extra_mib());
    let answers = of(&|r| r.answers_per_second());
    let seconds = of(&|r| r.flood_seconds);
    let errors: u64 = runs.iter().map(|r| r.tally.errors).sum();
    let refused: u64 = runs.iter().map(|r| r.tally.refused).sum();
    let idle_ms = of(&|r| median(r.idle_ms.clone()));
    let flood_ms = of(&|r| median(r.flood_ms.clone()));
    let idle_p90 = of(&|r| percentile(&r.idle_ms, 0.9));
    let flood_p90 = of(&|r| percentile(&r.flood_ms, 0.9));
    let flood = format!(
        "{FLOOD_CONNECTIONS} concurrent keep-alive connections from device A (a stock wireguard-go in the client \
         netns) to simpul-gateway in {}, each posting CALL_NIK in a loop with a user id never used before and a \
         wrong password (a full argon2 check against the dummy hash each, no backoff), every answer read and checked \
         (HTTP 200, code 03), for {seconds:.1} s per run: {answers:.1} answers/s (median of the runs), {refused} \
         answers with code 03 and {errors} errors in all runs; [rate] device, user and institution limits 1e6/s, so \
         that every request reaches the password check (the worst case); [api] password_checks unset: the default, \
         the CPUs up to 4, here {} on {cpus} CPUs shared by the clients, the gateway and the stand-in; a fresh \
         gateway per run",
        face.path(),
        cpus.min(4),
    );
    let notes = format!(
        "{flood}; memory: the gateway process's VmHWM at the end of the flood, reset (echo 5 > clear_refs) just \
         before it, minus its VmRSS then, in MiB (kB / 1024); medians: idle {:.1} MiB, peak {:.1} MiB; idle after \
         {VALID_REQUESTS} valid requests (one password check done); target: under 256 MB",
        idle_kib / 1024.0,
        peak_kib / 1024.0,
    );
    let bench = format!("gateway-flood-{}", face.name());
    let metric = format!("MB peak extra resident memory during a {FLOOD_CONNECTIONS}-connection wrong-password flood");
    BenchLine::new(&bench, &metric, extra, "the 256 MB target", TARGET_MB, options.runs, &notes).print();
    let notes = format!(
        "{flood}; {VALID_REQUESTS} valid CALL_NIK requests per run from device B (user bench, its own wireguard-go \
         in the same netns, policy-routed from its address; password verified before, so remembered), one after \
         the other, curl --interface time_total, each a new connection, {} distinct NIKs: idle, then during the \
         flood from {:.0} s after it starts; medians of the runs' medians; p90 idle {idle_p90:.2} ms, flooded \
         {flood_p90:.2} ms; target: at most 2x idle",
        VALID_REQUESTS.min(stage.niks.len()),
        SATURATE.as_secs_f64(),
    );
    let metric = format!(
        "ms to serve a valid request from another device during a {FLOOD_CONNECTIONS}-connection wrong-password flood"
    );
    BenchLine::new(&bench, &metric, flood_ms, "the same requests idle", idle_ms, options.runs, &notes).print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_length_chunks_or_to_the_end() {
        let mut keep =
            &b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1"[..];
        let answer = read_answer(&mut keep).unwrap();
        assert_eq!(answer, Answer { status: 200, body: "hello".into(), close: false });
        assert_eq!(keep, b"HTTP/1.1");

        let mut chunked = &b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                             3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n"[..];
        let answer = read_answer(&mut chunked).unwrap();
        assert_eq!(answer, Answer { status: 429, body: "abcde".into(), close: true });
        assert!(chunked.is_empty());

        let mut unbounded = &b"HTTP/1.1 200 OK\r\n\r\nall of it"[..];
        assert_eq!(read_answer(&mut unbounded).unwrap(), Answer { status: 200, body: "all of it".into(), close: true });

        assert_eq!(read_answer(&mut &b""[..]).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(read_answer(&mut &b"garbage\r\n\r\n"[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn status_fields_and_percentiles() {
        let status = "Name:\tsimpul-gateway\nVmHWM:\t  524288 kB\nVmRSS:\t  262144 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(262_144));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(524_288));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        let xs: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(percentile(&xs, 0.9), 27.0);
        assert_eq!(percentile(&[5.0], 0.9), 5.0);
    }
}
