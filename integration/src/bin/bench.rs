//! Simpul's benchmarks. Each one runs its named anchor in the same run, on the same machine, through the same path,
//! and prints one JSON line per figure (medians of the runs) so results compare across machines by ratio.
//!
//! Build first: `cargo build --release --workspace`, then `target/release/bench all` (or a bench's name).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use simpul_integration::bench::{median, BenchLine};
use simpul_integration::gateway_bench;
use simpul_integration::tunnel_bench::{self, Direction};
use simpul_integration::{anchor, wrk};

#[derive(Parser, Debug)]
#[command(about = "Simpul benchmarks against named anchors; prints one JSON line per figure")]
struct Args {
    /// Which benchmark: all, warehouse, tunnel (tunnel-throughput: its throughput figures only), gateway,
    /// gateway-flood (the gateway's peak extra memory, and a valid request's time from another device, during a
    /// 200-connection wrong-password flood), gateway-cache (a warm cache against nginx proxy_cache, the health page
    /// and, cache off, the stand-in directly; TUN face; needs nginx), gateway-audit (audit on against off; not in
    /// `all`, as it needs a second gateway build).
    /// (`tunnel-load` and `tunnel-idle-peers` are the tunnel benchmark's helpers, which it runs as separate
    /// processes.)
    #[arg(default_value = "all")]
    which: String,
    /// Runs per side; medians are printed.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Idle peers for the tunnel memory figure.
    #[arg(long, default_value_t = 10_000)]
    peers: usize,
    /// Initiations per run for the tunnel handshake figure.
    #[arg(long, default_value_t = 2_000)]
    handshakes: usize,
    /// tunnel: offload (IFF_VNET_HDR) on Simpul's TUN device.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tun_offload: bool,
    /// gateway: the data planes to measure, comma-separated (tun, userspace).
    #[arg(long, default_value = "tun,userspace")]
    gateway_faces: String,
    /// gateway: distinct NIKs the load cycles through.
    #[arg(long, default_value_t = 1000)]
    gateway_niks: usize,
    /// gateway: unmeasured seconds of load on both paths before each data plane's runs.
    #[arg(long, default_value_t = 3)]
    gateway_warmup: u64,
    /// gateway-cache: concurrent connections of every load.
    #[arg(long, default_value_t = 64)]
    cache_connections: usize,
    /// gateway-cache: record the warm gateway with `perf record` during one more run, into this file.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// gateway-audit: concurrent connections for requests/s with audit on against off.
    #[arg(long, default_value_t = 64)]
    audit_connections: usize,
    /// gateway-audit: the concurrencies of the disk-syncs-per-request figures, comma-separated.
    #[arg(long, default_value = "1,16,64")]
    sync_connections: String,
    /// gateway-audit: the gateway built with `--features unaudited-benchmark` [default: target/unaudited/release/
    /// simpul-gateway beside this binary's target directory].
    #[arg(long)]
    unaudited_gateway: Option<PathBuf>,
    /// tunnel-load: the load server's address.
    #[arg(long)]
    to: Option<SocketAddr>,
    /// tunnel-load: up (client to gateway) or down.
    #[arg(long, default_value = "up")]
    direction: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.which.as_str() {
        "all" => {
            warehouse(&args)?;
            tunnel(&args, false)?;
            gateway(&args)?;
            gateway_flood(&args)?;
            gateway_cache(&args)
        }
        "warehouse" => warehouse(&args),
        "tunnel" => tunnel(&args, false),
        "tunnel-throughput" => tunnel(&args, true),
        "gateway" => gateway(&args),
        "gateway-flood" => gateway_flood(&args),
        "gateway-cache" => gateway_cache(&args),
        "gateway-audit" => gateway_audit(&args),
        "tunnel-load" => {
            let to = args.to.context("tunnel-load needs --to")?;
            let mbps = tunnel_bench::load_client(to, Direction::parse(&args.direction)?, args.seconds)?;
            println!("{mbps:.1}");
            Ok(())
        }
        "tunnel-idle-peers" => {
            println!("{}", tunnel_bench::idle_peers_rss_kib(args.peers)?);
            Ok(())
        }
        other => bail!(
            "unknown benchmark {other:?}; known: all, warehouse, tunnel, tunnel-throughput, gateway, gateway-flood, \
             gateway-cache, gateway-audit"
        ),
    }
}

/// Throughput through the tunnel in TUN and userspace mode against wireguard-go, handshakes per second, memory with
/// idle peers: see `simpul_integration::tunnel_bench`. Needs root.
fn tunnel(args: &Args, throughput_only: bool) -> Result<()> {
    let options = tunnel_bench::Options {
        runs: args.runs,
        seconds: args.seconds,
        peers: args.peers,
        handshakes: args.handshakes,
        tun_offload: args.tun_offload,
        throughput_only,
    };
    tunnel_bench::run(&std::env::current_exe()?, &options)
}

/// `CALL_NIK` through the gateway (a stock wireguard-go client, the gateway in TUN and userspace mode, the stand-in
/// upstream) against the same wrk straight to the stand-in: see `simpul_integration::gateway_bench`. Needs root.
fn gateway(args: &Args) -> Result<()> {
    gateway_bench::run(&gateway_binaries()?, &gateway_options(args, args.connections, gateway_faces(args)?))
}

/// The gateway's peak extra memory during a flood of wrong passwords (200 connections) against the 256 MB target,
/// and a valid request's time from another device during it against the same requests idle, in each of
/// `--gateway-faces`; `--runs` fresh gateways each, the flood lasting `--seconds`: see
/// `simpul_integration::gateway_bench::run_flood`. Needs root.
fn gateway_flood(args: &Args) -> Result<()> {
    gateway_bench::run_flood(&gateway_binaries()?, &gateway_options(args, args.connections, gateway_faces(args)?))
}

/// `CALL_NIK` answered from the gateway's warm cache against Debian's nginx with proxy_cache, against the health
/// page, at half of nginx's peak rate, and with the cache off against the stand-in directly, TUN face, at
/// `--cache-connections`: see `simpul_integration::gateway_bench::run_cache`. Needs root and nginx.
fn gateway_cache(args: &Args) -> Result<()> {
    let options = gateway_options(args, args.cache_connections, vec![gateway_bench::Face::Tun]);
    let cache = gateway_bench::CacheOptions { perf: args.perf.clone() };
    gateway_bench::run_cache(&gateway_binaries()?, &options, &cache)
}

fn gateway_faces(args: &Args) -> Result<Vec<gateway_bench::Face>> {
    args.gateway_faces.split(',').map(|f| gateway_bench::Face::parse(f.trim())).collect()
}

/// `CALL_NIK` through the gateway with audit records against the same gateway built with the `unaudited-benchmark`
/// feature and told to answer without them, userspace face, then disk syncs per request: see
/// `simpul_integration::gateway_bench::run_audit`. Needs root and the second build.
fn gateway_audit(args: &Args) -> Result<()> {
    let build = "cargo build --release -p simpul-gateway --features unaudited-benchmark --target-dir target/unaudited";
    let unaudited = match &args.unaudited_gateway {
        Some(path) => path.clone(),
        None => {
            let exe = std::env::current_exe()?;
            let target = exe.parent().and_then(|p| p.parent()).context("bench lies in a target directory")?;
            target.join("unaudited/release/simpul-gateway")
        }
    };
    if !unaudited.exists() {
        bail!("{} not found: build the unaudited gateway first with `{build}`", unaudited.display());
    }
    let sync_connections =
        args.sync_connections.split(',').map(|c| c.trim().parse()).collect::<Result<Vec<usize>, _>>()?;
    let options = gateway_options(args, args.audit_connections, vec![gateway_bench::Face::Userspace]);
    gateway_bench::run_audit(&gateway_binaries()?, &unaudited, &options, &sync_connections)
}

fn gateway_options(args: &Args, connections: usize, faces: Vec<gateway_bench::Face>) -> gateway_bench::Options {
    gateway_bench::Options {
        runs: args.runs,
        seconds: args.seconds,
        connections,
        niks: args.gateway_niks,
        warmup_seconds: args.gateway_warmup,
        faces,
    }
}

fn gateway_binaries() -> Result<gateway_bench::Binaries> {
    Ok(gateway_bench::Binaries {
        warehouse: sibling_binary("simpul-warehouse")?,
        gateway: sibling_binary("simpul-gateway")?,
    })
}

/// A sibling binary of this one in the same target profile directory.
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("bench has a directory")?.join(name);
    if !path.exists() {
        bail!("{} not found: build it first with `cargo build --release --workspace`", path.display());
    }
    Ok(path)
}

/// `CALL_NIK` against the warehouse stand-in, anchored on a bare hyper + rustls responder that returns a
/// same-sized answer without doing any work: the ratio is how much of the HTTP/TLS stack's ceiling the warehouse keeps.
fn warehouse(args: &Args) -> Result<()> {
    let bin = sibling_binary("simpul-warehouse")?;
    let wrk_version = wrk::version()?;
    let server = simpul_integration::warehouse_process::WarehouseProcess::start_dev(&bin)?;
    let niks = server.sample_niks(1000)?;
    let body_example = server.call_nik_body(&niks[0])?;
    let anchor = anchor::StaticResponder::start(body_example)?;
    let script = wrk::call_nik_script(&niks, simpul_warehouse::dev::DEV_USER, simpul_warehouse::dev::DEV_PASSWORD)?;

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..args.runs {
        ours.push(wrk::run(&server.call_nik_url(), script.path(), args.connections, args.seconds)?);
        theirs.push(wrk::run(&anchor.url(), script.path(), args.connections, args.seconds)?);
    }
    let notes = format!(
        "wrk {wrk_version} -t1 -c{} -d{}s --latency, TLS 1.3, keep-alive, {} distinct NIKs, population seed 1 / 10M residents",
        args.connections,
        args.seconds,
        niks.len()
    );
    let anchor_name = "bare hyper+rustls static responder (same body)";
    for (metric, pick) in [
        ("requests/s", (|r: &wrk::Result| r.requests_per_second) as fn(&wrk::Result) -> f64),
        ("p50 ms", |r: &wrk::Result| r.p50_ms),
        ("p99 ms", |r: &wrk::Result| r.p99_ms),
    ] {
        let simpul = median(ours.iter().map(pick).collect());
        let anchor_value = median(theirs.iter().map(pick).collect());
        BenchLine::new("warehouse-call-nik", metric, simpul, anchor_name, anchor_value, args.runs, &notes).print();
    }
    let errors: u64 = ours.iter().map(|r| r.errors).sum();
    if errors > 0 {
        eprintln!("warning: {errors} socket errors or non-2xx answers from the warehouse during the runs");
    }
    let (_, peak_after_load) = server.memory_kib()?;
    drop(server);

    // Start-up has no independent implementation to race, so its anchor is the budget issue 3 sets (under 1 s and
    // 100 MB with 10 million residents): the ratio is the share of that budget used.
    let mut ready_ms = Vec::new();
    let mut rss_ready = Vec::new();
    for _ in 0..args.runs {
        let fresh = simpul_integration::warehouse_process::WarehouseProcess::start_dev(&bin)?;
        ready_ms.push(fresh.ready_after().as_secs_f64() * 1000.0);
        rss_ready.push(fresh.memory_kib()?.0 as f64 / 1024.0);
    }
    let notes = "serve --dev, 10M residents, release build; time from spawn to the first accepted TCP connection \
                 (includes the dev password hash and loading or making the certificate)";
    let budget = "issue 3 budget";
    BenchLine::new("warehouse-start", "ms to ready", median(ready_ms), budget, 1000.0, args.runs, notes).print();
    BenchLine::new("warehouse-start", "MiB resident when ready", median(rss_ready), budget, 100.0, args.runs, notes)
        .print();
    let peak = peak_after_load as f64 / 1024.0;
    let notes = format!("peak resident memory (VmHWM) after the CALL_NIK runs above, {} connections", args.connections);
    BenchLine::new("warehouse-start", "MiB peak after load", peak, budget, 100.0, 1, &notes).print();
    Ok(())
}
