//! Operator devices: each holds one WireGuard tunnel.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use simpul_core::device::{Device, Name};

/// Adds a device for a user; allocates its tunnel address and, unless `public_key` is given, its key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAdd {
    pub name: Name,
    pub user: Name,
    pub address: Option<Ipv4Addr>,
    pub public_key: Option<String>,
}

/// Every device, revoked ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceList {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceShow {
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSuspend {
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceResume {
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRevoke {
    pub name: Name,
}

/// The device's wg-quick file; `endpoint` overrides the config's `tunnel.endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceExport {
    pub name: Name,
    pub endpoint: Option<String>,
}

/// A device as an admin sees it: the stored record, and what the tunnel knows of it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    #[serde(flatten)]
    pub device: Device,
    /// `None` when the tunnel holds no peer for it (revoked, or not loaded).
    pub tunnel: Option<TunnelView>,
    /// For suspend, resume and revoke: whether the status changed (repeating one is a no-op).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

/// A device's tunnel, live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelView {
    pub endpoint: Option<SocketAddr>,
    pub last_handshake_seconds: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub spoofed: u64,
    pub handshakes: u64,
    pub initiations_capped: u64,
}

/// A device's tunnel config for a stock WireGuard client. It holds the device's private key: the CLI writes it to a
/// 0600 file or to its own standard output, nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportView {
    pub name: Name,
    pub wg_quick: String,
}
