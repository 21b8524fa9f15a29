//! The running gateway as the management socket and the API see it: the device registry joined to the tunnel and the
//! firewall. Admin changes are serialized (one at a time, in order), written to the database first, then applied to
//! the data plane; when the data plane refuses, the database is put back, so the two agree.

use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::Utc;
use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Value};
use simpul_core::device::{AddressError, Device, DeviceStatus, Name, StatusChange};
use simpul_tunnel::{PeerConfig, PeerStatus, PublicKey, TunnelHandle};

use crate::config::{self, GatewayConfig};
use crate::control::{Failure, FailureKind, Request};
use crate::devices::{NewDevice, Registry, RegistryError};
use crate::export::{self, ClientConfig};
use crate::firewall::Firewall;

/// Which face carries the tunnel's inner packets, once `Mode::Auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Tun,
    Userspace,
}

impl Face {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tun => "tun",
            Self::Userspace => "userspace",
        }
    }
}

/// Who opened a connection to the API, as the face tells it: TUN mode knows the inner source address (which the
/// tunnel's AllowedIPs check made trustworthy), userspace mode the peer's key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Address(IpAddr),
    Key(PublicKey),
}

#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    face: Face,
    registry: RwLock<Registry>,
    /// Serializes admin changes, which span the registry, the tunnel and the firewall.
    admin: tokio::sync::Mutex<()>,
    tunnel: TunnelHandle,
    firewall: Option<Arc<Firewall>>,
}

fn peer_config(device: &Device) -> Result<PeerConfig, Failure> {
    let key: PublicKey = device.public_key.parse().map_err(|e| Failure::new(FailureKind::Internal, e))?;
    let address = IpNet::V4(Ipv4Net::new(device.address, 32).expect("/32 is a valid prefix"));
    Ok(PeerConfig::new(key, [address]))
}

fn failure(error: RegistryError) -> Failure {
    let kind = match &error {
        RegistryError::NotFound(_) => FailureKind::NotFound,
        RegistryError::NameTaken(_)
        | RegistryError::KeyTaken(_)
        | RegistryError::KeyRevoked(_)
        | RegistryError::Status(_)
        | RegistryError::NoPrivateKey(_)
        | RegistryError::Address(AddressError::Taken(_) | AddressError::Exhausted(..)) => FailureKind::Conflict,
        RegistryError::GatewayKey | RegistryError::WeakKey | RegistryError::Address(_) => FailureKind::Invalid,
        RegistryError::Store(_) => FailureKind::Internal,
    };
    Failure::new(kind, error)
}

fn internal(what: &str, error: impl std::fmt::Display) -> Failure {
    Failure::new(FailureKind::Internal, format!("{what}: {error}"))
}

impl Gateway {
    pub fn new(
        config: GatewayConfig,
        face: Face,
        registry: Registry,
        tunnel: TunnelHandle,
        firewall: Option<Arc<Firewall>>,
    ) -> Self {
        Self { config, face, registry: RwLock::new(registry), admin: Default::default(), tunnel, firewall }
    }

    /// Peers for every device that may hold a tunnel, to load the engine with at start.
    pub fn peers(registry: &Registry) -> Vec<PeerConfig> {
        registry.list().filter(|d| d.in_tunnel()).filter_map(|d| peer_config(d).ok()).collect()
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The active device behind a connection, or `None` if it must not be served: unknown, suspended or revoked.
    pub fn device_for(&self, caller: Caller) -> Option<Device> {
        let registry = self.read();
        let device = match caller {
            Caller::Address(IpAddr::V4(address)) => registry.by_address(address),
            Caller::Address(IpAddr::V6(_)) => None,
            Caller::Key(key) => registry.by_key(&key),
        }?;
        (device.status == DeviceStatus::Active).then(|| device.clone())
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    pub async fn handle(&self, request: Request) -> Result<Value, Failure> {
        match request {
            Request::Status => self.status().await,
            Request::DeviceAdd { name, user, address, public_key } => {
                let public_key = public_key
                    .map(|k| k.parse::<PublicKey>())
                    .transpose()
                    .map_err(|e| Failure::new(FailureKind::Invalid, format!("public key: {e}")))?;
                self.add(NewDevice { name, user, address, public_key }).await
            }
            Request::DeviceList => {
                let peers = self.live_peers().await;
                let devices: Vec<Device> = self.read().list().cloned().collect();
                Ok(Value::Array(devices.iter().map(|d| view(d, peer_of(&peers, d))).collect()))
            }
            Request::DeviceShow { name } => {
                let device = self.read().get(&name).map_err(failure)?.clone();
                let peers = self.live_peers().await;
                Ok(view(&device, peer_of(&peers, &device)))
            }
            Request::DeviceSuspend { name } => self.change(name, StatusChange::Suspend).await,
            Request::DeviceResume { name } => self.change(name, StatusChange::Resume).await,
            Request::DeviceRevoke { name } => self.change(name, StatusChange::Revoke).await,
            Request::DeviceExport { name, endpoint } => self.export(&name, endpoint),
        }
    }

    async fn live_peers(&self) -> Vec<PeerStatus> {
        self.tunnel.peers().await.unwrap_or_default()
    }

    async fn status(&self) -> Result<Value, Failure> {
        let stats = self.tunnel.stats().await.map_err(|e| internal("tunnel", e))?;
        let peers = self.live_peers().await.len();
        let registry = self.read();
        let count = |s: DeviceStatus| registry.list().filter(|d| d.status == s).count();
        let t = &self.config.tunnel;
        Ok(json!({
            "public_key": self.tunnel.public_key().to_string(),
            "listen": self.tunnel.local_addr().to_string(),
            "mode": self.face.as_str(),
            "interface": (self.face == Face::Tun).then_some(&t.interface),
            "firewall": self.firewall.is_some(),
            "network": t.network.to_string(),
            "address": t.address.to_string(),
            "api": format!("http://{}:{}/", t.address, self.config.api.port),
            "endpoint": t.endpoint,
            "devices": {
                "active": count(DeviceStatus::Active),
                "suspended": count(DeviceStatus::Suspended),
                "revoked": count(DeviceStatus::Revoked),
            },
            "tunnel": {
                "peers": peers,
                "invalid": stats.engine.invalid,
                "unknown_key": stats.engine.unknown_key,
                "unknown_index": stats.engine.unknown_index,
                "rejected": stats.engine.rejected,
                "cookie_replies": stats.engine.cookie_replies,
                "no_route": stats.engine.no_route,
                "send_errors": stats.send_errors,
            },
        }))
    }

    async fn add(&self, new: NewDevice) -> Result<Value, Failure> {
        let _admin = self.admin.lock().await;
        let prepared = self.read().prepare(new, Utc::now()).map_err(failure)?;
        let peer = peer_config(&prepared.device)?;
        let key = peer.public_key;
        self.tunnel.set_peer(peer).await.map_err(|e| internal("tunnel", e))?;
        let committed = self.write().commit(prepared);
        let device = match committed {
            Ok(device) => device,
            Err(e) => {
                // Not stored, so not in the tunnel either.
                let _ = self.tunnel.remove_peer(key).await;
                return Err(failure(e));
            }
        };
        tracing::info!(device = %device.name, user = %device.user, address = %device.address, "device added");
        Ok(view(&device, None))
    }

    async fn change(&self, name: Name, change: StatusChange) -> Result<Value, Failure> {
        let _admin = self.admin.lock().await;
        let (before, after) = self.write().change(&name, change, Utc::now()).map_err(failure)?;
        let changed = before.status != after.status;
        if changed {
            if let Err(e) = self.apply(&before, &after).await {
                // The data plane still has the old state; make the database say so too.
                self.write().restore(before).map_err(failure)?;
                return Err(e);
            }
            if after.status == DeviceStatus::Revoked {
                self.write().forget_private_key(&name).map_err(failure)?;
            }
            tracing::info!(device = %name, from = %before.status, to = %after.status, "device status changed");
        }
        let peers = self.live_peers().await;
        let mut value = view(&after, peer_of(&peers, &after));
        value["changed"] = changed.into();
        Ok(value)
    }

    /// Makes the tunnel and the firewall match a status change.
    async fn apply(&self, before: &Device, after: &Device) -> Result<(), Failure> {
        let address = after.address;
        match (before.status, after.status) {
            (_, DeviceStatus::Revoked) => {
                // Once the key is gone from the engine, no packet of the device is decrypted any more.
                let key = peer_config(after)?.public_key;
                self.tunnel.remove_peer(key).await.map_err(|e| internal("tunnel", e))?;
                if before.status == DeviceStatus::Suspended {
                    // Only tidiness now: nothing from the address reaches the firewall any more, and the set is
                    // rebuilt from the database on the next start.
                    if let Err(e) = self.firewall(move |f| f.resume(address)).await {
                        tracing::warn!(device = %after.name, "revoked, but its address stays in the drop set: {e}");
                    }
                }
                Ok(())
            }
            (_, DeviceStatus::Suspended) => self.firewall(move |f| f.suspend(address)).await,
            (DeviceStatus::Suspended, _) => self.firewall(move |f| f.resume(address)).await,
            _ => Ok(()),
        }
    }

    async fn firewall(
        &self,
        op: impl FnOnce(&Firewall) -> Result<(), crate::firewall::FirewallError> + Send + 'static,
    ) -> Result<(), Failure> {
        let Some(firewall) = self.firewall.clone() else { return Ok(()) };
        tokio::task::spawn_blocking(move || op(&firewall))
            .await
            .map_err(|e| internal("firewall", e))?
            .map_err(|e| internal("firewall", e))
    }

    fn export(&self, name: &Name, endpoint: Option<String>) -> Result<Value, Failure> {
        let endpoint = endpoint.or_else(|| self.config.tunnel.endpoint.clone()).ok_or_else(|| {
            Failure::new(
                FailureKind::Invalid,
                "no endpoint: set tunnel.endpoint in the config or pass --endpoint HOST:PORT",
            )
        })?;
        config::check_endpoint(&endpoint).map_err(|_| {
            Failure::new(FailureKind::Invalid, format!("endpoint {endpoint:?} must be host:port (a name or address)"))
        })?;
        let registry = self.read();
        let private_key = registry.private_key(name).map_err(failure)?;
        let device = registry.get(name).map_err(failure)?;
        let t = &self.config.tunnel;
        let client = ClientConfig {
            device: device.name.to_string(),
            private_key,
            address: device.address,
            gateway_public_key: self.tunnel.public_key().to_string(),
            endpoint,
            allowed_ips: vec![IpNet::V4(Ipv4Net::new(t.address, 32).expect("/32 is a valid prefix"))],
            persistent_keepalive: (t.persistent_keepalive > 0).then_some(t.persistent_keepalive),
            mtu: Some(t.mtu),
        };
        let text = export::wg_quick(&client).map_err(|e| internal("export", e))?;
        Ok(json!({ "name": device.name, "wg_quick": text }))
    }
}

fn peer_of<'a>(peers: &'a [PeerStatus], device: &Device) -> Option<&'a PeerStatus> {
    peers.iter().find(|p| p.public_key.to_string() == device.public_key)
}

/// A device as the CLI shows it: the stored record, and what the tunnel knows of it now.
fn view(device: &Device, peer: Option<&PeerStatus>) -> Value {
    let mut value = serde_json::to_value(device).expect("a device serializes");
    value["tunnel"] = match peer {
        Some(p) => json!({
            "endpoint": p.endpoint.map(|e| e.to_string()),
            "last_handshake_seconds": p.last_handshake.map(|d: Duration| d.as_secs()),
            "rx_bytes": p.stats.rx_bytes,
            "tx_bytes": p.stats.tx_bytes,
            "spoofed": p.stats.spoofed,
            "handshakes": p.stats.handshakes,
            "initiations_capped": p.stats.initiations_capped,
        }),
        None => Value::Null,
    };
    value
}
