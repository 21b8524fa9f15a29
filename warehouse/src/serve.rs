//! `simpul-warehouse serve`: from the options to a running server, with the lines an operator or a script needs
//! printed before it accepts requests, until SIGINT or SIGTERM.
//!
//! What the binary prints is an interface: scripts wait for the `ready: ` line, which comes last and carries the bound
//! address, and read the certificate path and fingerprint before it.

use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;

use crate::config::{ConfigError, WarehouseConfig, DEFAULT_LISTEN};
use crate::consumer::canonical;
use crate::dev::{curl_command, dev_config, url_ip, DEV_PASSWORD, DEV_USER};
use crate::faults::FaultConfig;
use crate::population::{Population, PopulationError, SampleKind};
use crate::server::{run, StartError, Warehouse};
use crate::tls::TlsError;
use simpul_core::clock::SystemClock;

/// What `serve` was asked for; each `Some` overrides the config file (or the dev config).
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The config file; `None` is `serve --dev`.
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub residents: Option<u64>,
    pub faults: FaultOverrides,
}

/// Overrides of the config's `[faults]` (the `--fault-*` flags).
#[derive(Debug, Clone, Default)]
pub struct FaultOverrides {
    pub latency_ms: Option<u64>,
    pub error_rate: Option<f64>,
    pub hang_rate: Option<f64>,
    pub reset_rate: Option<f64>,
    pub seed: Option<u64>,
}

impl FaultOverrides {
    fn apply(&self, faults: &mut FaultConfig) {
        faults.latency_ms = self.latency_ms.unwrap_or(faults.latency_ms);
        faults.error_rate = self.error_rate.unwrap_or(faults.error_rate);
        faults.hang_rate = self.hang_rate.unwrap_or(faults.hang_rate);
        faults.reset_rate = self.reset_rate.unwrap_or(faults.reset_rate);
        faults.seed = self.seed.unwrap_or(faults.seed);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("population: {0}")]
    Population(#[from] PopulationError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("starting the runtime: {0}")]
    Runtime(io::Error),
    #[error("handling SIGINT and SIGTERM: {0}")]
    Signals(io::Error),
    #[error("binding {0}: {1}")]
    Bind(SocketAddr, io::Error),
    #[error("printing the start-up lines: {0}")]
    Output(io::Error),
    #[error("serving: {0}")]
    Serve(io::Error),
}

impl ServeError {
    /// Whether the operator has to fix the arguments or the config (exit 2), as opposed to the system failing
    /// (exit 1).
    pub fn is_invalid(&self) -> bool {
        matches!(self, ServeError::Config(_) | ServeError::Population(_) | ServeError::Start(StartError::Config(_)))
            || matches!(self, ServeError::Tls(e) if e.is_invalid())
    }
}

/// Serves until SIGINT or SIGTERM, on a runtime of its own: what the binary's `serve` does.
pub fn serve_until_signal(options: ServeOptions, out: impl Write) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Runtime::new().map_err(ServeError::Runtime)?;
    runtime.block_on(async {
        let shutdown = simpul_process::shutdown_signal().map_err(ServeError::Signals)?;
        serve(options, out, shutdown).await
    })
}

/// Builds the config (the file, or the dev config), the certificate and the population, binds, prints to `out`
/// the certificate's path, its fingerprint, for `--dev` a `try:` curl command, and `ready: listening on
/// https://ADDR` last, then serves until `shutdown` completes.
///
/// The population is built on the calling thread (seconds for 10 million residents), so call this from `block_on`
/// or from a test, not from a runtime with other work to do.
pub async fn serve(
    options: ServeOptions,
    mut out: impl Write,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let dev = options.config.is_none();
    let mut config = match &options.config {
        Some(path) => WarehouseConfig::from_file(path)?,
        None => dev_config(DEFAULT_LISTEN.parse().expect("a socket address")),
    };
    if let Some(listen) = options.listen {
        config.listen = listen;
    }
    if let Some(dir) = options.state_dir {
        config.state_dir = Some(dir);
    }
    if let Some(residents) = options.residents {
        config.population.residents = residents;
    }
    options.faults.apply(&mut config.faults);
    config.check()?;
    if dev {
        if let Some(warning) = dev_exposure_warning(config.listen.ip()) {
            eprintln!("{warning}");
        }
    }

    // The generated certificate names the address clients reach, so that the `try:` line works as printed.
    let reached = url_ip(config.listen.ip()).to_string();
    if !config.tls.names.contains(&reached) {
        config.tls.names.push(reached);
    }
    // Before the population, which takes a while: a key with loose permissions should not make the operator wait.
    let (identity, cert_path) = crate::tls::load(&config.tls, &config.state_dir())?;
    // Absolute, so that the printed lines work pasted in any directory.
    let cert_path = std::path::absolute(&cert_path).unwrap_or(cert_path);
    let started = Instant::now();
    let population = Arc::new(Population::new(config.population.clone())?);
    tracing::info!(
        residents = population.len(),
        seed = config.population.seed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "population ready"
    );
    let warehouse = Warehouse::new(&config, population.clone(), &identity, Arc::new(SystemClock))?;
    let listener = TcpListener::bind(config.listen).await.map_err(|e| ServeError::Bind(config.listen, e))?;
    let addr = listener.local_addr().map_err(|e| ServeError::Bind(config.listen, e))?;

    let mut lines = vec![
        format!("certificate: {}", cert_path.display()),
        format!("fingerprint (SHA-256): {}", identity.fingerprint()),
    ];
    if dev {
        if let Some(resident) = population.sample(SampleKind::Alive, 1, 1).next() {
            lines.push(format!("try: {}", curl_command(addr, &cert_path, &resident.nik.to_string())));
        }
    }
    lines.push(format!("ready: listening on https://{addr}"));
    for line in lines {
        writeln!(out, "{line}").map_err(ServeError::Output)?;
    }
    out.flush().map_err(ServeError::Output)?;

    run(listener, Arc::new(warehouse), shutdown).await.map_err(ServeError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

/// The warning `serve --dev` prints when it listens where other machines can reach it: the dev credentials are
/// public, and the dev consumer may read every element of every resident.
pub fn dev_exposure_warning(listen: IpAddr) -> Option<String> {
    if canonical(listen).is_loopback() {
        return None;
    }
    let rule = "!".repeat(100);
    Some(format!(
        "{rule}\n\
         WARNING: serve --dev listens on {listen}, which is not a loopback address. Anyone who can reach it from the\n\
         network can log in as user \"{DEV_USER}\" with password \"{DEV_PASSWORD}\" and read every element of every resident.\n\
         Listen on 127.0.0.1 or ::1, or serve --config with real credentials and allowed_addresses.\n\
         {rule}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_quiet_in_dev_mode() {
        for quiet in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(dev_exposure_warning(quiet.parse().unwrap()), None, "{quiet}");
        }
        for loud in ["0.0.0.0", "::", "10.77.0.5", "192.168.1.7", "fe80::1"] {
            let warning = dev_exposure_warning(loud.parse().unwrap()).unwrap_or_else(|| panic!("{loud} is reachable"));
            assert!(warning.contains(loud) && warning.contains("password \"dev\""), "{warning}");
        }
    }

    #[test]
    fn only_mistakes_of_the_operator_are_invalid() {
        let loose = simpul_files::FileError::Permissions { path: "/k.pem".into(), mode: 0o644, want: 0o600 };
        assert!(ServeError::Tls(TlsError::Tls(loose.into())).is_invalid());
        assert!(ServeError::Config(ConfigError::Http).is_invalid());
        let io = || io::Error::from(io::ErrorKind::AddrInUse);
        assert!(!ServeError::Bind(DEFAULT_LISTEN.parse().unwrap(), io()).is_invalid());
        assert!(!ServeError::Tls(TlsError::Tls(simpul_tls::TlsError::Read("/k.pem".into(), io()))).is_invalid());
    }

    #[tokio::test]
    async fn prints_the_lines_in_order_and_serves_until_shutdown() {
        let state = tempfile::tempdir().unwrap();
        let options = ServeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            state_dir: Some(state.path().to_owned()),
            residents: Some(1000),
            ..ServeOptions::default()
        };
        let mut out = Vec::new();
        serve(options, &mut out, async {}).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        let prefixes: Vec<&str> = out.lines().map(|l| l.split(": ").next().unwrap()).collect();
        assert_eq!(prefixes, ["certificate", "fingerprint (SHA-256)", "try", "ready"], "{out}");
        let cert = state.path().join(crate::tls::GENERATED_CERT);
        assert!(out.starts_with(&format!("certificate: {}\n", cert.display())), "{out}");
        assert!(out.lines().last().unwrap().starts_with("ready: listening on https://127.0.0.1:"), "{out}");
    }
}
