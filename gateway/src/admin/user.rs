//! The users the SOP registers for each institution.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use simpul_core::device::Name;
use simpul_core::institution::{RegionCode, Secret, User, UserStatus};

use super::present;

/// Registers a user: every field of `fields` but `daily_quota` is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAdd {
    pub id: Name,
    pub fields: UserFields,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub id: Name,
    pub fields: UserFields,
}

/// Refuses the user's requests (code 17) until enabled again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDisable {
    pub id: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEnable {
    pub id: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPasswd {
    pub id: Name,
    pub password: Secret,
}

/// Every user, or one institution's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserList {
    pub institution: Option<Name>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserShow {
    pub id: Name,
}

/// A user's fields as an admin gives them: all but `daily_quota` to add one, any of them to update one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserFields {
    pub institution: Option<Name>,
    pub name: Option<String>,
    pub nik: Option<String>,
    pub nip: Option<String>,
    pub position: Option<String>,
    pub office_region: Option<RegionCode>,
    pub application_user: Option<String>,
    /// `Some(None)` leaves only the institution's quota.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub daily_quota: Option<Option<u64>>,
}

/// A user as an admin sees it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: Name,
    pub institution: Name,
    pub name: String,
    pub nik: String,
    pub nip: String,
    pub position: String,
    pub office_region: RegionCode,
    pub application_user: String,
    pub status: UserStatus,
    pub daily_quota: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        let u = u.clone();
        Self {
            id: u.id,
            institution: u.institution,
            name: u.name,
            nik: u.nik,
            nip: u.nip,
            position: u.position,
            office_region: u.office_region,
            application_user: u.application_user,
            status: u.status,
            daily_quota: u.daily_quota,
            created_at: u.created_at,
            changed_at: u.changed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_removes_and_absence_keeps() {
        let keep: UserFields = serde_json::from_str("{}").unwrap();
        assert_eq!(keep.daily_quota, None);
        let remove: UserFields = serde_json::from_str(r#"{"daily_quota":null}"#).unwrap();
        assert_eq!(remove.daily_quota, Some(None));
        let set: UserFields = serde_json::from_str(r#"{"daily_quota":5}"#).unwrap();
        assert_eq!(set.daily_quota, Some(Some(5)));
        for fields in [keep, remove, set] {
            let text = serde_json::to_string(&fields).unwrap();
            assert_eq!(serde_json::from_str::<UserFields>(&text).unwrap(), fields, "{text}");
        }
    }
}
