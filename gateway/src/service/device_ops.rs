//! Device operations: add, list, show, suspend, resume, revoke, export.

use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Value};
use simpul_core::device::{Device, DeviceStatus, Name, StatusChange};
use simpul_tunnel::{PeerStatus, PublicKey};

use super::{directory_failure, internal, peer_config, registry_failure, Gateway};
use crate::admin::device::{DeviceAdd, DeviceExport, DeviceView, ExportView, TunnelView};
use crate::admin::{Failure, FailureKind};
use crate::config;
use crate::devices::NewDevice;
use crate::export::{self, ClientConfig};
use crate::store::Actor;

impl Gateway {
    pub(super) async fn device_add(&self, op: DeviceAdd, actor: Actor) -> Result<DeviceView, Failure> {
        let public_key = op
            .public_key
            .map(|k| k.parse::<PublicKey>())
            .transpose()
            .map_err(|e| Failure::new(FailureKind::Invalid, format!("public key: {e}")))?;
        self.add_device(NewDevice { name: op.name, user: op.user, address: op.address, public_key }, actor).await
    }

    pub(super) async fn device_list(&self) -> Vec<DeviceView> {
        let peers = self.live_peers().await;
        let devices: Vec<Device> = self.registry().list().cloned().collect();
        devices.into_iter().map(|d| view(d, &peers)).collect()
    }

    pub(super) async fn device_show(&self, name: &Name) -> Result<DeviceView, Failure> {
        let device = self.registry().get(name).map_err(registry_failure)?.clone();
        Ok(view(device, &self.live_peers().await))
    }

    async fn add_device(&self, new: NewDevice, actor: Actor) -> Result<DeviceView, Failure> {
        let _admin = self.admin.lock().await;
        // A tunnel belongs to a device of a registered user; its changes name the user's institution, so that a
        // search by institution finds them.
        let institution = self.directory().user(&new.user).map_err(directory_failure)?.institution.clone();
        let prepared = self.registry().prepare(new, self.now()).map_err(registry_failure)?;
        let peer = peer_config(&prepared.device)?;
        let key = peer.public_key;
        let d = &prepared.device;
        let detail = json!({ "user": d.user, "institution": institution, "address": d.address,
                             "public_key": d.public_key });
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
        Ok(view(device, &[]))
    }

    pub(super) async fn change_device(
        &self,
        name: Name,
        change: StatusChange,
        actor: Actor,
    ) -> Result<DeviceView, Failure> {
        let _admin = self.admin.lock().await;
        let action = match change {
            StatusChange::Suspend => "device.suspend",
            StatusChange::Resume => "device.resume",
            StatusChange::Revoke => "device.revoke",
        };
        let event = self.event(actor.clone(), action, &name, self.owner_of(&name));
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
        Ok(DeviceView { changed: Some(changed), ..view(after, &self.live_peers().await) })
    }

    /// What a device's status change records: whose device it is (user and institution), for searches by either.
    fn owner_of(&self, name: &Name) -> Value {
        let Ok(device) = self.registry().get(name).cloned() else { return Value::Null };
        let institution = self.directory().user(&device.user).ok().map(|u| u.institution.clone());
        json!({ "user": device.user, "institution": institution })
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

    pub(super) fn device_export(&self, op: DeviceExport) -> Result<ExportView, Failure> {
        let name = &op.name;
        let endpoint = op.endpoint.or_else(|| self.config.tunnel.endpoint.clone()).ok_or_else(|| {
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
        Ok(ExportView { name: device.name.clone(), wg_quick: text })
    }
}

/// A device as an admin sees it: the stored record, and what the tunnel (`peers`, live) knows of it now.
fn view(device: Device, peers: &[PeerStatus]) -> DeviceView {
    let tunnel = peers.iter().find(|p| p.public_key.to_string() == device.public_key).map(|p| TunnelView {
        endpoint: p.endpoint,
        last_handshake_seconds: p.last_handshake.map(|d: Duration| d.as_secs()),
        rx_bytes: p.stats.rx_bytes,
        tx_bytes: p.stats.tx_bytes,
        spoofed: p.stats.spoofed,
        handshakes: p.stats.handshakes,
        initiations_capped: p.stats.initiations_capped,
    });
    DeviceView { device, tunnel, changed: None }
}
