//! Starting and stopping the gateway: state, tunnel, firewall, API listener and management socket, in an order that
//! never lets a tunnel packet through before the firewall guards the interface, and that removes what it installed
//! when it stops.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use simpul_core::clock::Clock;
use simpul_ledger::database::DatabaseError;
use simpul_ledger::{AuditError, AuditLogError, Auditor, BatchWrites, Files, Ledger, NotaryError, OpenError};
use simpul_tunnel::netstack::{self, NetstackConfig};
use simpul_tunnel::tun::{TunConfig, TunFace};
use simpul_tunnel::{Engine, EngineConfig, TunnelHandle};

use crate::api::dukcapil::Dukcapil;
use crate::api::{self, Listener};
use crate::config::{ConfigError, GatewayConfig, Mode};
use crate::devices::{Registry, RegistryError};
use crate::directory::{Directory, DirectoryError};
use crate::firewall::{Firewall, FirewallError, FirewallPlan};
use crate::limits::quota::{QuotaError, QuotaLedger};
use crate::limits::rate::{RateClock, RateError, RateLimits};
use crate::seal::Sealer;
use crate::service::{Face, Gateway, Parts};
use crate::state_dir::{self, StateDirError, CONTROL_SOCKET, DATABASE, STORE_KEY};
use crate::store::{Store, StoreError};
use crate::{chores, control};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("binding WireGuard's UDP socket {0}: {1}")]
    Udp(SocketAddr, io::Error),
    #[error("TUN mode: {0} (run as root, or choose the userspace data plane with --userspace)")]
    Tun(String),
    #[error("userspace network stack: {0}")]
    Netstack(String),
    #[error("nftables: {0}")]
    Firewall(#[from] FirewallError),
    #[error("the API listener on {0}: {1}")]
    Api(SocketAddr, io::Error),
    #[error("management socket {0}: {1}")]
    Control(PathBuf, io::Error),
    #[error("starting the tunnel: {0}")]
    Tunnel(io::Error),
    #[error(transparent)]
    Quota(#[from] QuotaError),
    #[error(transparent)]
    Rate(#[from] RateError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ledger(OpenError),
    #[error(
        "the audit log is damaged: {0}. The gateway will not extend it. Stop here: copy the whole state directory \
         aside as evidence (it is the damaged copy), run `simpul-gateway audit verify` for the details, and restore the \
         state directory from a backup"
    )]
    DamagedLog(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("store key: {0}")]
    StoreKey(#[from] simpul_files::FileError),
}

/// A database sled cannot open because of damage is a damaged log too (the log lives in it).
fn store_error(error: StoreError) -> RunError {
    match error {
        StoreError::Sled(e @ sled::Error::Corruption { .. }) => {
            RunError::DamagedLog(format!("the database cannot be opened: {}", simpul_ledger::log::Damage::Storage(e)))
        }
        StoreError::Database(e @ DatabaseError::Damaged { .. }) => {
            RunError::DamagedLog(format!("the database cannot be opened: {e}"))
        }
        other => RunError::Store(other),
    }
}

impl From<OpenError> for RunError {
    fn from(error: OpenError) -> Self {
        use simpul_ledger::log::Damage;
        match error {
            OpenError::Log(AuditLogError::Damaged(damage)) => RunError::DamagedLog(damage.to_string()),
            OpenError::Log(e @ AuditLogError::TipMissing(_)) => RunError::DamagedLog(e.to_string()),
            OpenError::Log(AuditLogError::Sled(e @ sled::Error::Corruption { .. })) => {
                RunError::DamagedLog(Damage::Storage(e).to_string())
            }
            OpenError::Notary(e @ (NotaryError::Shrunk { .. } | NotaryError::Rewritten { .. })) => {
                RunError::DamagedLog(e.to_string())
            }
            other => RunError::Ledger(other),
        }
    }
}

/// What `run` reports once it serves, for the CLI to print and tests to use.
#[derive(Debug, Clone)]
pub struct Ready {
    pub public_key: String,
    pub listen: SocketAddr,
    pub face: Face,
    pub api: SocketAddr,
    pub control_socket: PathBuf,
}

pub fn firewall_plan(config: &GatewayConfig) -> FirewallPlan {
    FirewallPlan {
        interface: config.tunnel.interface.clone(),
        gateway: config.tunnel.address,
        api_port: config.api.port,
    }
}

pub fn resolve_face(mode: Mode) -> Face {
    match mode {
        Mode::Tun => Face::Tun,
        Mode::Userspace => Face::Userspace,
        Mode::Auto if crate::running_as_root() => Face::Tun,
        Mode::Auto => Face::Userspace,
    }
}

/// Removes the nftables table when dropped, so that every way out of `run` after it is applied takes it away.
struct Installed(Option<Arc<Firewall>>);

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(firewall) = &self.0 {
            if let Err(e) = firewall.remove() {
                tracing::error!("removing the nftables table: {e}");
            }
        }
    }
}

/// Runs the gateway until `shutdown` completes, reading time from `clock`. `ready` hears once everything listens.
pub async fn run(
    config: GatewayConfig,
    clock: Arc<dyn Clock>,
    ready: impl FnOnce(&Ready),
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_rate_clock(config, clock, RateClock::monotonic(), ready, shutdown).await
}

/// As [`run`], with the rate limiters on `rate_clock`: a test moves it past a `Retry-After` instead of waiting.
pub async fn run_with_rate_clock(
    config: GatewayConfig,
    clock: Arc<dyn Clock>,
    rate_clock: RateClock,
    ready: impl FnOnce(&Ready),
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let upstream = config.check()?;
    let state = config.state_dir();
    state_dir::prepare(&state)?;
    let key = state_dir::load_or_generate_key(&state)?;
    // A database whose key is gone must not get a new one: everything sealed under the old key would stay shut, and
    // the wrong key would be left in its place.
    let key_path = state.join(STORE_KEY);
    let new_key = !key_path.exists();
    let sealer = Sealer::new(simpul_files::load_or_generate_secret(&key_path)?);
    let store = Store::open(&state.join(DATABASE), sealer).map_err(|e| {
        if new_key {
            let _ = std::fs::remove_file(&key_path);
        }
        store_error(e)
    })?;
    let files = Files::new(&state);
    let Ledger { log, notary, personal } =
        Ledger::open(store.db(), store.flusher(), &files, config.audit.origin.as_deref())?;
    let ledger = QuotaLedger::new(store.db(), store.flusher())?;
    // The quota counts become durable in the audit log's batches (see `limits::quota`, "Durability").
    let counts: Arc<dyn BatchWrites> = Arc::new(ledger.clone());
    let auditor = Auditor::start_with(log, store.clone(), personal, config.timezone.0, Some(counts))?;
    let rates = RateLimits::with_clock(&config.rate, rate_clock)?;
    let registry = Registry::load(store.clone(), config.address_plan(), key.public_key())?;
    let directory = Directory::load(store.clone())?;
    let today = clock.now().with_timezone(&config.timezone.0).date_naive();
    let blocked = Gateway::blocked(&registry, &directory, today);

    let t = &config.tunnel;
    let socket = std::net::UdpSocket::bind(t.listen).map_err(|e| RunError::Udp(t.listen, e))?;
    let listen = socket.local_addr().map_err(|e| RunError::Udp(t.listen, e))?;
    let mut engine = Engine::new(key.clone(), EngineConfig::default());
    for peer in Gateway::peers(&registry) {
        if let Err(e) = engine.set_peer(peer) {
            tracing::warn!("a stored device could not join the tunnel: {e}");
        }
    }
    let api_addr = SocketAddr::new(IpAddr::V4(t.address), config.api.port);
    let face = resolve_face(t.mode);
    let mut installed = Installed(None);
    let (tunnel, driver, listener) = match face {
        Face::Tun => {
            let tun = TunFace::new(&TunConfig {
                name: t.interface.clone(),
                address: IpAddr::V4(t.address),
                prefix_len: t.network.prefix_len(),
                mtu: t.mtu,
                offload: true,
            })
            .map_err(|e| RunError::Tun(e.to_string()))?;
            // The interface exists but no peer can reach it until the driver runs: guard it first.
            let firewall = Arc::new(Firewall::new(firewall_plan(&config)));
            let apply = firewall.clone();
            let drop: Vec<_> = blocked.iter().copied().collect();
            tokio::task::spawn_blocking(move || apply.apply(&drop)).await.expect("the firewall task does not panic")?;
            installed.0 = Some(firewall);
            let listener = tokio::net::TcpListener::bind(api_addr).await.map_err(|e| RunError::Api(api_addr, e))?;
            let (tunnel, driver) = TunnelHandle::spawn(socket, engine, tun).map_err(RunError::Tunnel)?;
            (tunnel, driver, Listener::Tun(listener))
        }
        Face::Userspace => {
            let (face, stack) = netstack::new(NetstackConfig {
                address: IpAddr::V4(t.address),
                prefix_len: t.network.prefix_len(),
                mtu: usize::from(t.mtu),
                ..NetstackConfig::default()
            })
            .map_err(|e| RunError::Netstack(e.to_string()))?;
            let listener = stack.listen(config.api.port).map_err(|e| RunError::Api(api_addr, e))?;
            let (tunnel, driver) = TunnelHandle::spawn(socket, engine, face).map_err(RunError::Tunnel)?;
            (tunnel, driver, Listener::Userspace(listener))
        }
    };

    let socket_path = state.join(CONTROL_SOCKET);
    let control = control::bind(&socket_path).await.map_err(|e| RunError::Control(socket_path.clone(), e))?;
    let public_key = tunnel.public_key().to_string();
    let firewall = installed.0.clone();
    let parts = Parts {
        config,
        face,
        clock,
        store,
        registry,
        directory,
        tunnel: tunnel.clone(),
        firewall,
        blocked,
        auditor: auditor.clone(),
        notary: notary.clone(),
    };
    let gateway = Arc::new(Gateway::new(parts));
    let control_task = tokio::spawn(control::serve(control, gateway.clone()));
    let notary_task = tokio::spawn(notary.clone().run());
    let sync_task = tokio::spawn(chores::sync_firewall(gateway.clone()));
    let (stop_api, api_stopping) = tokio::sync::oneshot::channel::<()>();
    let api = Arc::new(Dukcapil::new(gateway.clone(), ledger.clone(), rates, upstream));
    let housekeeping = tokio::spawn(chores::housekeep(api.clone(), ledger));
    let api_task = tokio::spawn(api::serve(listener, api, async {
        let _ = api_stopping.await;
    }));
    ready(&Ready { public_key, listen, face, api: api_addr, control_socket: socket_path.clone() });

    shutdown.await;
    tracing::info!("stopping");
    control_task.abort();
    sync_task.abort();
    housekeeping.abort();
    let _ = std::fs::remove_file(&socket_path);
    let _ = stop_api.send(());
    let _ = api_task.await;
    // No request can be waiting for a record any more: the last ones are written, then covered by a checkpoint.
    notary_task.abort();
    let closing = notary.clone();
    let last = tokio::task::spawn_blocking(move || {
        auditor.close();
        closing.sign_now()
    });
    match last.await {
        Ok(Ok(signed)) => tracing::info!(size = signed.map(|(size, _)| size), "audit log closed with a checkpoint"),
        Ok(Err(e)) => tracing::error!("signing the last audit checkpoint: {e}"),
        Err(e) => tracing::error!("closing the audit log: {e}"),
    }
    tunnel.shutdown().await;
    let _ = driver.await;
    // The table goes last, after no packet can arrive any more.
    drop(installed);
    Ok(())
}
