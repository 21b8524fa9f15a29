//! The gateway itself: what it is doing, and who changed what.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use simpul_core::audit::record::Actor;

/// What the running gateway is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {}

/// Admin changes recorded after sequence number `after`, at most `limit` of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminLog {
    pub after: u64,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub public_key: String,
    pub listen: String,
    /// `tun` or `userspace`.
    pub mode: String,
    /// The TUN interface, in TUN mode.
    pub interface: Option<String>,
    /// Whether nftables guards the tunnel interface.
    pub firewall: bool,
    pub network: String,
    pub address: String,
    pub api: String,
    pub endpoint: Option<String>,
    pub zone: String,
    pub local_time: String,
    pub devices: DeviceCounts,
    pub institutions: InstitutionCounts,
    pub users: usize,
    pub tunnel: TunnelCounts,
    /// `None` when no `[upstream]` is configured.
    pub upstream: Option<UpstreamStatus>,
    pub audit: AuditStatus,
    /// Boxed: the status is the largest answer, and this keeps it within reach of the others.
    pub cache: Box<crate::admin::cache::CacheStatusView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCounts {
    pub active: usize,
    pub suspended: usize,
    pub revoked: usize,
    /// Addresses the firewall drops now.
    pub blocked: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionCounts {
    pub total: usize,
    /// Those whose users may be served today.
    pub active: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelCounts {
    pub peers: usize,
    pub invalid: u64,
    pub unknown_key: u64,
    pub unknown_index: u64,
    pub rejected: u64,
    pub cookie_replies: u64,
    pub no_route: u64,
    pub send_errors: u64,
}

/// Whether the configured upstream answers a connection now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub url: String,
    pub reachable: bool,
    /// Why not, when it is not.
    pub error: Option<String>,
}

/// The audit log's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStatus {
    /// Records in the log.
    pub size: u64,
    /// Records the newest signed checkpoint covers; `None` before the first.
    pub checkpoint_size: Option<u64>,
    /// The checkpoint's age: seconds since the newest record it covers was written (the gateway signs within half a
    /// second of a record, and signs nothing while the log does not grow).
    pub checkpoint_age_seconds: Option<i64>,
}

/// One admin change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminLogEntry {
    pub seq: u64,
    pub event: AdminEventView,
}

/// An admin change as the log shows it: the personal identifiers it concerns are counted, not shown (the audit log
/// holds them as commitments, the user record in full).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEventView {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
    pub personal_identifiers: usize,
}
