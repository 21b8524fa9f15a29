//! Device commands: add, list, show, suspend, resume, revoke, export.

use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Value};
use simpul_core::device::{Device, DeviceStatus, Name, StatusChange};
use simpul_tunnel::{PeerStatus, PublicKey};

use super::{directory_failure, internal, peer_config, registry_failure, Gateway};
use crate::config;
use crate::control::{Failure, FailureKind, Request};
use crate::devices::NewDevice;
use crate::export::{self, ClientConfig};
use crate::store::Actor;

impl Gateway {
    pub(super) async fn device_request(&self, request: Request, actor: Actor) -> Result<Value, Failure> {
        match request {
            Request::DeviceAdd { name, user, address, public_key } => {
                let public_key = public_key
                    .map(|k| k.parse::<PublicKey>())
                    .transpose()
                    .map_err(|e| Failure::new(FailureKind::Invalid, format!("public key: {e}")))?;
                self.add_device(NewDevice { name, user, address, public_key }, actor).await
            }
            Request::DeviceList => {
                let peers = self.live_peers().await;
                let devices: Vec<Device> = self.registry().list().cloned().collect();
                Ok(Value::Array(devices.iter().map(|d| view(d, peer_of(&peers, d))).collect()))
            }
            Request::DeviceShow { name } => {
                let device = self.registry().get(&name).map_err(registry_failure)?.clone();
                let peers = self.live_peers().await;
                Ok(view(&device, peer_of(&peers, &device)))
            }
            Request::DeviceSuspend { name } => self.change_device(name, StatusChange::Suspend, actor).await,
            Request::DeviceResume { name } => self.change_device(name, StatusChange::Resume, actor).await,
            Request::DeviceRevoke { name } => self.change_device(name, StatusChange::Revoke, actor).await,
            Request::DeviceExport { name, endpoint } => self.export(&name, endpoint),
            _ => unreachable!("only device requests are routed here"),
        }
    }

    async fn add_device(&self, new: NewDevice, actor: Actor) -> Result<Value, Failure> {
        let _admin = self.admin.lock().await;
        // A tunnel belongs to a device of a registered user.
        self.directory().user(&new.user).map_err(directory_failure)?;
        let prepared = self.registry().prepare(new, self.now()).map_err(registry_failure)?;
        let peer = peer_config(&prepared.device)?;
        let key = peer.public_key;
        let d = &prepared.device;
        let detail = json!({ "user": d.user, "address": d.address, "public_key": d.public_key });
        let event = self.event(actor, "device.add", &d.name, detail);
        self.tunnel.set_peer(peer).await.map_err(|e| internal("tunnel", e))?;
        let committed = self.registry_mut().commit(prepared, &event);
        let device = match committed {
            Ok(device) => device,
            Err(e) => {
                // Not stored, so not in the tunnel either.
                let _ = self.tunnel.remove_peer(key).await;
                return Err(registry_failure(e));
            }
        };
        // A new device of an institution that may not be served today is dropped from the start.
        self.sync_firewall().await?;
        tracing::info!(device = %device.name, user = %device.user, address = %device.address, "device added");
        Ok(view(&device, None))
    }

    async fn change_device(&self, name: Name, change: StatusChange, actor: Actor) -> Result<Value, Failure> {
        let _admin = self.admin.lock().await;
        let action = match change {
            StatusChange::Suspend => "device.suspend",
            StatusChange::Resume => "device.resume",
            StatusChange::Revoke => "device.revoke",
        };
        let event = self.event(actor.clone(), action, &name, Value::Null);
        let (before, after) = self.registry_mut().change(&name, change, &event).map_err(registry_failure)?;
        let changed = before.status != after.status;
        if changed {
            if let Err(e) = self.apply(&after).await {
                // The data plane still has the old state; make the database say so too.
                let undo = self.event(actor, "device.rollback", &name, json!({ "error": e.message }));
                self.registry_mut().restore(before, &undo).map_err(registry_failure)?;
                let _ = self.sync_firewall().await;
                return Err(e);
            }
            if after.status == DeviceStatus::Revoked {
                self.registry_mut().forget_private_key(&name).map_err(registry_failure)?;
            }
            tracing::info!(device = %name, from = %before.status, to = %after.status, "device status changed");
        }
        let peers = self.live_peers().await;
        let mut value = view(&after, peer_of(&peers, &after));
        value["changed"] = changed.into();
        Ok(value)
    }

    /// Makes the tunnel and the firewall match a device's new status.
    async fn apply(&self, after: &Device) -> Result<(), Failure> {
        if after.status == DeviceStatus::Revoked {
            // Once the key is gone from the engine, no packet of the device is decrypted any more.
            let key = peer_config(after)?.public_key;
            self.tunnel.remove_peer(key).await.map_err(|e| internal("tunnel", e))?;
            // Only tidiness now: nothing from the address reaches the firewall any more, and the set is rebuilt
            // from the database on the next start.
            if let Err(e) = self.sync_firewall().await {
                tracing::warn!(device = %after.name, "revoked, but its address may stay in the drop set: {e}");
            }
            return Ok(());
        }
        self.sync_firewall().await
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
        let registry = self.registry();
        let private_key = registry.private_key(name).map_err(registry_failure)?;
        let device = registry.get(name).map_err(registry_failure)?;
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
