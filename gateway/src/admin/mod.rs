//! The gateway's admin API: one typed operation per command, grouped by what it manages (devices, institutions,
//! users, the audit log, the warehouse cache, the gateway itself), each with the typed view it answers. The service (`crate::service`)
//! carries the operations out; listeners are adapters over it: the management socket (`crate::control`) speaks them
//! as JSON lines, and the console and enrollment listeners will be others. This module knows neither.

pub mod audit;
pub mod cache;
pub mod device;
pub mod gateway;
pub mod institution;
pub mod user;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One admin operation and the view it answers with.
pub trait Operation: Serialize + DeserializeOwned + Into<Request> {
    type Answer: Serialize + DeserializeOwned;
}

/// Declares every operation once: the `Request` enum (its wire form is `{"op": "snake_case_name", …fields}`), its
/// answers, and each operation's `Operation` impl, so that an operation cannot exist without an answer type and a
/// route (`Gateway::handle` matches `Request` exhaustively).
macro_rules! operations {
    ($($variant:ident($op:ty) -> $answer:ty;)*) => {
        /// Every admin operation, as a listener receives it.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Request {
            $($variant($op),)*
        }

        /// What an operation answers, for an adapter that serializes whatever came.
        #[derive(Debug, Clone, Serialize)]
        #[serde(untagged)]
        pub enum Answer {
            $($variant($answer),)*
        }

        $(
            impl Operation for $op {
                type Answer = $answer;
            }

            impl From<$op> for Request {
                fn from(op: $op) -> Self {
                    Request::$variant(op)
                }
            }
        )*
    };
}

operations! {
    Status(gateway::Status) -> gateway::StatusView;
    AdminLog(gateway::AdminLog) -> Vec<gateway::AdminLogEntry>;
    DeviceAdd(device::DeviceAdd) -> device::DeviceView;
    DeviceList(device::DeviceList) -> Vec<device::DeviceView>;
    DeviceShow(device::DeviceShow) -> device::DeviceView;
    DeviceSuspend(device::DeviceSuspend) -> device::DeviceView;
    DeviceResume(device::DeviceResume) -> device::DeviceView;
    DeviceRevoke(device::DeviceRevoke) -> device::DeviceView;
    DeviceExport(device::DeviceExport) -> device::ExportView;
    InstitutionAdd(institution::InstitutionAdd) -> institution::InstitutionView;
    InstitutionUpdate(institution::InstitutionUpdate) -> institution::InstitutionView;
    InstitutionSuspend(institution::InstitutionSuspend) -> institution::InstitutionView;
    InstitutionResume(institution::InstitutionResume) -> institution::InstitutionView;
    InstitutionList(institution::InstitutionList) -> Vec<institution::InstitutionView>;
    InstitutionShow(institution::InstitutionShow) -> institution::InstitutionView;
    UserAdd(user::UserAdd) -> user::UserView;
    UserUpdate(user::UserUpdate) -> user::UserView;
    UserDisable(user::UserDisable) -> user::UserView;
    UserEnable(user::UserEnable) -> user::UserView;
    UserPasswd(user::UserPasswd) -> user::UserView;
    UserList(user::UserList) -> Vec<user::UserView>;
    UserShow(user::UserShow) -> user::UserView;
    AuditKey(audit::AuditKey) -> audit::KeyView;
    AuditCheckpoint(audit::AuditCheckpoint) -> audit::CheckpointView;
    AuditVerify(audit::AuditVerify) -> simpul_ledger::queries::Verification;
    AuditProve(audit::AuditProve) -> audit::ProofView;
    AuditRecords(audit::AuditRecords) -> simpul_ledger::queries::Page;
    AuditSubject(audit::AuditSubject) -> audit::SubjectView;
    AuditConsistency(audit::AuditConsistency) -> audit::ConsistencyView;
    AuditReport(audit::AuditReport) -> audit::ReportView;
    AuditRetain(audit::AuditRetain) -> audit::RetentionView;
    CacheStats(cache::CacheStats) -> cache::CacheStatsView;
    CachePurge(cache::CachePurge) -> cache::PurgeView;
    CacheRekey(cache::CacheRekey) -> cache::RekeyView;
    CacheOn(cache::CacheOn) -> cache::CacheStatusView;
    CacheOff(cache::CacheOff) -> cache::CacheStatusView;
}

/// Why the gateway refused an operation; the CLI turns it into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request itself is wrong (a malformed key, an address outside the network).
    Invalid,
    NotFound,
    /// The request conflicts with what exists (a taken name, a revoked device).
    Conflict,
    /// The gateway could not carry it out (database, tunnel or firewall failure).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl ToString) -> Self {
        Self { kind, message: message.to_string() }
    }
}

/// A secret a view mentions but never shows: it serializes as `***` whatever it was, so no view can leak one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Masked;

impl Masked {
    const TEXT: &'static str = "***";
}

impl Serialize for Masked {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Self::TEXT)
    }
}

impl<'de> Deserialize<'de> for Masked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text != Self::TEXT {
            return Err(serde::de::Error::custom("a masked secret reads ***"));
        }
        Ok(Masked)
    }
}

/// A field that is present, even as `null`, is `Some`: so `null` can mean "remove" while absence means "keep".
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let cases: [(Request, &str); 6] = [
            (gateway::Status {}.into(), r#"{"op":"status"}"#),
            (
                device::DeviceAdd {
                    name: "laptop-1".parse().unwrap(),
                    user: "budi".parse().unwrap(),
                    address: None,
                    public_key: None,
                }
                .into(),
                r#"{"op":"device_add","name":"laptop-1","user":"budi","address":null,"public_key":null}"#,
            ),
            (device::DeviceRevoke { name: "x".parse().unwrap() }.into(), r#"{"op":"device_revoke","name":"x"}"#),
            (audit::AuditRetain {}.into(), r#"{"op":"audit_retain"}"#),
            (
                cache::CachePurge { target: cache::PurgeTarget::Nik("3374041003870006".into()) }.into(),
                r#"{"op":"cache_purge","target":{"nik":"3374041003870006"}}"#,
            ),
            (cache::CachePurge { target: cache::PurgeTarget::All }.into(), r#"{"op":"cache_purge","target":"all"}"#),
        ];
        for (request, text) in cases {
            assert_eq!(serde_json::to_string(&request).unwrap(), text);
            assert_eq!(serde_json::from_str::<Request>(text).unwrap(), request);
        }
        // Names are checked at the boundary, so a bad one never reaches the gateway's logic.
        assert!(serde_json::from_str::<Request>(r#"{"op":"device_show","name":"../x"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"device_show","name":"x","extra":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"status","extra":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
    }

    #[test]
    fn masked_secrets_never_show() {
        assert_eq!(serde_json::to_string(&Masked).unwrap(), r#""***""#);
        assert_eq!(serde_json::from_str::<Masked>(r#""***""#).unwrap(), Masked);
        assert!(serde_json::from_str::<Masked>(r#""hunter2""#).is_err());
    }
}
