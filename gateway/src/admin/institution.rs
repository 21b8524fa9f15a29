//! Institutions (lembaga pengguna) and their agreements (PKS).

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use simpul_core::device::Name;
use simpul_core::element::ElementSet;
use simpul_core::institution::{
    AccessHours, Agreement, Institution, InstitutionState, InstitutionStatus, RegionCode, Secret,
};
use simpul_core::wire::code::Dialect;
use simpul_core::wire::method::Method;
use simpul_core::wire::route::{ConsumerAliases, MethodMap};

use super::{present, Masked};

/// Registers an institution: every field of `fields` but `access_hours`, `elements`, `dialect`, `method_names` and
/// `consumer_aliases` is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionAdd {
    pub id: Name,
    pub fields: InstitutionFields,
}

/// Changes any of an institution's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionUpdate {
    pub id: Name,
    pub fields: InstitutionFields,
}

/// Stops every request of the institution's users and drops its devices at the firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionSuspend {
    pub id: Name,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionResume {
    pub id: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionList {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionShow {
    pub id: Name,
}

/// An institution's fields as an admin gives them: all the required ones to add one, any of them to update one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstitutionFields {
    pub name: Option<String>,
    pub region: Option<RegionCode>,
    pub agreement_number: Option<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub methods: Option<BTreeSet<Method>>,
    pub elements: Option<ElementSet>,
    pub daily_quota: Option<u64>,
    /// `Some(None)` removes the restriction.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub access_hours: Option<Option<AccessHours>>,
    pub dialect: Option<Dialect>,
    /// Replaces the institution's own method names.
    pub method_names: Option<MethodMap>,
    /// Replaces the other names its applications give their consumer in the path.
    pub consumer_aliases: Option<ConsumerAliases>,
    pub upstream_consumer: Option<String>,
    pub upstream_user: Option<String>,
    /// Sent to the gateway in full; an admin event records only that it changed (see [`InstitutionChange`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_password: Option<Secret>,
}

/// What an admin event records of the fields given: all of them, the upstream password masked.
#[derive(Debug, Clone, Serialize)]
pub struct InstitutionChange {
    #[serde(flatten)]
    fields: InstitutionFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_password: Option<Masked>,
}

impl From<&InstitutionFields> for InstitutionChange {
    fn from(fields: &InstitutionFields) -> Self {
        let mut fields = fields.clone();
        let upstream_password = fields.upstream_password.take().map(|_| Masked);
        Self { fields, upstream_password }
    }
}

/// The credentials presented upstream, the password masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamView {
    pub consumer_id: String,
    pub user_id: String,
    pub password: Masked,
}

/// An institution as an admin sees it: never the upstream password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionView {
    pub id: Name,
    pub name: String,
    pub region: RegionCode,
    pub agreement: Agreement,
    #[serde(default, skip_serializing_if = "MethodMap::is_empty")]
    pub method_names: MethodMap,
    #[serde(default, skip_serializing_if = "ConsumerAliases::is_empty")]
    pub consumer_aliases: ConsumerAliases,
    pub upstream: UpstreamView,
    pub status: InstitutionStatus,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    pub state: InstitutionState,
    /// For suspend and resume: whether the status changed (repeating one is a no-op).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

impl InstitutionView {
    pub fn new(institution: &Institution, today: NaiveDate) -> Self {
        let i = institution.clone();
        let state = i.state(today);
        Self {
            id: i.id,
            name: i.name,
            region: i.region,
            agreement: i.agreement,
            method_names: i.method_names,
            consumer_aliases: i.consumer_aliases,
            upstream: UpstreamView {
                consumer_id: i.upstream.consumer_id,
                user_id: i.upstream.user_id,
                password: Masked,
            },
            status: i.status,
            created_at: i.created_at,
            changed_at: i.changed_at,
            state,
            changed: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_records_that_the_password_changed_never_the_password() {
        let fields = InstitutionFields {
            upstream_password: Some(Secret::new("rahasia")),
            daily_quota: Some(5),
            ..Default::default()
        };
        let text = serde_json::to_string(&InstitutionChange::from(&fields)).unwrap();
        assert!(text.contains(r#""upstream_password":"***""#), "{text}");
        assert!(!text.contains("rahasia"), "{text}");
        // The request itself carries it, for the gateway to store.
        assert!(serde_json::to_string(&fields).unwrap().contains("rahasia"));
        let none = serde_json::to_value(InstitutionChange::from(&InstitutionFields::default())).unwrap();
        assert!(none.get("upstream_password").is_none(), "{none}");
    }
}
