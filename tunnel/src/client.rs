//! The tunnel's client side: one process reaching the gateway through WireGuard entirely in userspace, no root and no
//! TUN device. It is the same engine, driver and netstack as the gateway's userspace face, arranged the other way: the
//! engine's one peer is the gateway (whose AllowedIPs are what the client may reach, so the gateway's inner source
//! address is checked like any peer's), the stack sits on the device's /32, and connections are opened with
//! [`Netstack::connect`]. The handshake starts at once rather than with the first packet, and the persistent keepalive
//! keeps a NAT mapping open, as `wg-quick` would with the same file.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::task::JoinHandle;

use crate::driver::{TunnelError, TunnelHandle};
use crate::engine::{Engine, EngineConfig, EngineError, PeerConfig};
use crate::keys::{PrivateKey, PublicKey};
use crate::netstack::{self, Netstack, NetstackConfig, NetstackError, TcpStream};
use crate::wg_quick::{self, ClientConfig, WgQuickError};

/// WireGuard's default tunnel MTU, what wg-quick uses when the file names none.
const DEFAULT_MTU: u16 = 1420;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Config(#[from] WgQuickError),
    #[error("resolving the endpoint {0}: {1}")]
    Resolve(String, io::Error),
    #[error("the endpoint {0} resolves to no address")]
    NoAddress(String),
    #[error("binding the client's UDP socket: {0}")]
    Udp(io::Error),
    #[error(transparent)]
    Netstack(#[from] NetstackError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
}

/// A running client: its tunnel (to read the gateway peer's status) and the stack to open connections on. Stops on
/// [`Client::shutdown`] or when dropped.
#[derive(Debug)]
pub struct Client {
    tunnel: TunnelHandle,
    driver: JoinHandle<()>,
    stack: Netstack,
    gateway: PublicKey,
}

impl Client {
    /// Starts the client described by a wg-quick file's content (see [`wg_quick::parse`]); the endpoint is resolved
    /// once, now.
    pub async fn start(config: &ClientConfig) -> Result<Client, ClientError> {
        wg_quick::validate(config)?;
        let private_key: PrivateKey = config.private_key.parse().map_err(|_| invalid_key("private_key"))?;
        let gateway: PublicKey = config.gateway_public_key.parse().map_err(|_| invalid_key("gateway_public_key"))?;
        let endpoint = tokio::net::lookup_host(&config.endpoint)
            .await
            .map_err(|e| ClientError::Resolve(config.endpoint.clone(), e))?
            .next()
            .ok_or_else(|| ClientError::NoAddress(config.endpoint.clone()))?;
        let any = match endpoint {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = std::net::UdpSocket::bind((any, 0)).map_err(ClientError::Udp)?;
        let (face, stack) = netstack::new(NetstackConfig {
            address: IpAddr::V4(config.address),
            prefix_len: 32,
            mtu: usize::from(config.mtu.unwrap_or(DEFAULT_MTU)),
            ..NetstackConfig::default()
        })?;
        let mut engine = Engine::new(private_key, EngineConfig::default());
        engine.set_peer(PeerConfig {
            public_key: gateway,
            preshared_key: None,
            allowed_ips: config.allowed_ips.clone(),
            endpoint: Some(endpoint),
            // wg-quick reads 0 as off, as boringtun does not.
            persistent_keepalive: config.persistent_keepalive.filter(|&seconds| seconds > 0),
        })?;
        let (tunnel, driver) = TunnelHandle::spawn(socket, engine, face).map_err(ClientError::Udp)?;
        tunnel.initiate(gateway).await?;
        Ok(Client { tunnel, driver, stack, gateway })
    }

    /// Opens a TCP connection to `remote` (the gateway's API, say) through the tunnel.
    pub async fn connect(&self, remote: SocketAddr) -> io::Result<TcpStream> {
        self.stack.connect(remote).await
    }

    /// The tunnel, for the gateway peer's status and counters.
    pub fn tunnel(&self) -> &TunnelHandle {
        &self.tunnel
    }

    pub fn gateway(&self) -> PublicKey {
        self.gateway
    }

    /// Stops the client and waits until its driver has; open connections end.
    pub async fn shutdown(self) {
        self.tunnel.shutdown().await;
        // The driver only returns; a panic in it has been reported by tokio already.
        let _ = self.driver.await;
    }
}

fn invalid_key(field: &'static str) -> ClientError {
    ClientError::Config(WgQuickError::InvalidKey { field })
}
