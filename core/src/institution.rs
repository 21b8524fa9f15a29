//! Institutions (lembaga pengguna) and their access agreements (PKS), and the users the SOP on access rights registers
//! for them. A tunnel belongs to a device of a user of an institution whose agreement is in force: these records are
//! that chain's upper links, as the gateway stores them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::device::Name;
use crate::element::ElementSet;
use crate::nik::Nik;
use crate::period::{Inverted, Period, Phase};
use crate::region::catalogue;
use crate::wire::code::Dialect;
use crate::wire::method::Method;
use crate::wire::route::{ConsumerAliases, MethodMap, Route};

/// A daily window of local time in which an institution may call: `start` inclusive, `end` exclusive; a window whose
/// end is before its start runs overnight. Written `"HH:MM-HH:MM"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl AccessHours {
    pub fn allows(&self, local: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

impl FromStr for AccessHours {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("access hours {s:?} are not \"HH:MM-HH:MM\" with two different times");
        let (start, end) = s.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let hours = AccessHours { start: time(start)?, end: time(end)? };
        if hours.start == hours.end {
            return Err(bad());
        }
        Ok(hours)
    }
}

impl fmt::Display for AccessHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start.format("%H:%M"), self.end.format("%H:%M"))
    }
}

impl Serialize for AccessHours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AccessHours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A secret the gateway must keep in order to use it (the upstream consumer's password): stored, never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The credentials the gateway presents upstream (the warehouse or a relay) on the institution's behalf: the
/// consumer the ministry registered for this agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamCredentials {
    pub consumer_id: String,
    pub user_id: String,
    pub password: Secret,
}

/// The access agreement (PKS): what the institution may ask, how much, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    /// The PKS number, as on the signed document.
    pub number: String,
    pub valid_from: NaiveDate,
    /// The last day the agreement is in force; access ends with it unless it is renewed.
    pub valid_until: NaiveDate,
    pub methods: BTreeSet<Method>,
    pub elements: ElementSet,
    /// Requests a day for the whole institution.
    pub daily_quota: u64,
    pub access_hours: Option<AccessHours>,
    /// How the institution's applications expect refusals to be written.
    pub dialect: Dialect,
}

impl Agreement {
    pub fn period(&self) -> Period {
        Period { from: self.valid_from, until: self.valid_until }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase", deny_unknown_fields)]
pub enum InstitutionStatus {
    Active,
    /// Stopped by the population office, with the reason it gave (monev findings, a missing return-data report…).
    Suspended {
        reason: String,
        since: DateTime<Utc>,
    },
}

/// An institution's standing on a day: its status and its agreement's period together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstitutionState {
    Active,
    Suspended,
    /// Its agreement is not in force yet.
    NotYetValid,
    /// Its agreement has ended.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Institution {
    /// The short handle admins and the CLI use (`DINSOS-3374`).
    pub id: Name,
    /// The full name (`Dinas Sosial Kota Semarang`).
    pub name: String,
    /// The region code of the institution's office, down to the district at most (`33`, `33.74`, `33.74.01`).
    pub region: RegionCode,
    pub agreement: Agreement,
    /// The institution's applications' own names for methods in the last path segment (`cek_pasien` → CALL_NIK),
    /// besides the built-in names and aliases.
    #[serde(default, skip_serializing_if = "MethodMap::is_empty")]
    pub method_names: MethodMap,
    /// Other names its applications give their consumer in the path (a central id, or `PP-KK/userset` for the
    /// regional route), besides `upstream.consumer_id`; a path naming any other consumer is refused.
    #[serde(default, skip_serializing_if = "ConsumerAliases::is_empty")]
    pub consumer_aliases: ConsumerAliases,
    pub upstream: UpstreamCredentials,
    pub status: InstitutionStatus,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

impl Institution {
    /// Whether its users may be served today: active and within the agreement's period.
    pub fn active(&self, today: NaiveDate) -> bool {
        self.state(today) == InstitutionState::Active
    }

    /// Whether its users may be served today, and if not, why: what an admin is shown.
    pub fn state(&self, today: NaiveDate) -> InstitutionState {
        match (&self.status, self.agreement.period().phase(today)) {
            (InstitutionStatus::Suspended { .. }, _) => InstitutionState::Suspended,
            (InstitutionStatus::Active, Phase::Before) => InstitutionState::NotYetValid,
            (InstitutionStatus::Active, Phase::Within) => InstitutionState::Active,
            (InstitutionStatus::Active, Phase::After) => InstitutionState::Expired,
        }
    }

    /// Whether a request path names this institution's consumer: its upstream consumer id or one of its aliases.
    pub fn is_named_by(&self, route: &Route) -> bool {
        self.consumer_aliases.admit(route, &self.upstream.consumer_id)
    }
}

/// A region code of one to three levels (province, regency, district), written with dots, that exists in the
/// Kepmendagri catalogue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

impl RegionCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RegionCode {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, RecordError> {
        let bad = || RecordError::Region(s.to_string());
        let parts: Vec<u8> = s
            .split('.')
            .map(|p| if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) { p.parse().ok() } else { None })
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let regions = catalogue();
        let known = match parts[..] {
            [p] => regions.province(p).is_some(),
            [p, r] => regions.regency(p, r).is_some(),
            [p, r, d] => regions.district(p, r, d).is_some(),
            _ => false,
        };
        if !known {
            return Err(bad());
        }
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for RegionCode {
    type Error = RecordError;

    fn try_from(s: String) -> Result<Self, RecordError> {
        s.parse()
    }
}

impl From<RegionCode> for String {
    fn from(code: RegionCode) -> String {
        code.0
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What makes an institution or user record unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0:?} is not a region code in the Kepmendagri catalogue (PP, PP.RR or PP.RR.DD)")]
    Region(String),
    #[error("{0} may not be empty")]
    Empty(&'static str),
    #[error("{0} is longer than {1} characters")]
    TooLong(&'static str, usize),
    #[error("the agreement {0}")]
    Period(#[from] Inverted),
    #[error("the agreement grants no method")]
    NoMethod,
    #[error("the agreement grants no data element, but a method that returns data")]
    NoElement,
    #[error("a daily quota must be at least 1")]
    ZeroQuota,
    #[error("the upstream consumer id {0:?} may hold only letters, digits, '.', '_' and '-'")]
    ConsumerId(String),
    #[error("the user's NIK: {0}")]
    Nik(String),
    #[error("a NIP is 18 digits (found {0:?})")]
    Nip(String),
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), RecordError> {
    if value.trim().is_empty() {
        return Err(RecordError::Empty(field));
    }
    if value.chars().count() > max {
        return Err(RecordError::TooLong(field, max));
    }
    Ok(())
}

impl Institution {
    /// Checks what serde cannot: texts, the agreement's period, grants and quota, the upstream consumer.
    pub fn validate(&self) -> Result<(), RecordError> {
        text("name", &self.name, 200)?;
        let a = &self.agreement;
        text("agreement number", &a.number, 100)?;
        a.period().check()?;
        if a.methods.is_empty() {
            return Err(RecordError::NoMethod);
        }
        let returns_data = a.methods.iter().any(|m| matches!(m, Method::CallNik | Method::CallNikGetKk));
        if returns_data && a.elements.is_empty() {
            return Err(RecordError::NoElement);
        }
        if a.daily_quota == 0 {
            return Err(RecordError::ZeroQuota);
        }
        let id = &self.upstream.consumer_id;
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(RecordError::ConsumerId(id.clone()));
        }
        text("upstream user id", &self.upstream.user_id, 100)?;
        text("upstream password", self.upstream.password.expose(), 200)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}

/// A user as the SOP registers one: who they are in the civil service and in their office's application. The `id`
/// is the user id their application sends (`user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: Name,
    pub institution: Name,
    pub name: String,
    /// The user's own NIK, 16 digits.
    pub nik: String,
    /// Employee number (Nomor Induk Pegawai), 18 digits.
    pub nip: String,
    pub position: String,
    /// The region code of the user's office, down to the district.
    pub office_region: RegionCode,
    /// The user id of the institution's own application, as the SOP asks for it.
    pub application_user: String,
    /// Stored and exchanged as its argon2 PHC string; a record with a hash no password could match does not load.
    pub password_hash: crate::password::PasswordHash,
    pub status: UserStatus,
    /// The user's own requests a day; without it only the institution's quota applies.
    pub daily_quota: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

impl User {
    /// `today` dates the NIK check (a NIK does not encode its century).
    pub fn validate(&self, today: NaiveDate) -> Result<(), RecordError> {
        text("name", &self.name, 200)?;
        Nik::parse(&self.nik, today).map_err(|e| RecordError::Nik(e.to_string()))?;
        text("position", &self.position, 200)?;
        text("application user id", &self.application_user, 100)?;
        if self.nip.len() != 18 || !self.nip.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RecordError::Nip(self.nip.clone()));
        }
        if self.daily_quota == Some(0) {
            return Err(RecordError::ZeroQuota);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn time(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    use crate::fixtures::institution;

    #[test]
    fn access_hours_parse_print_and_wrap_midnight() {
        let day: AccessHours = "07:00-16:00".parse().unwrap();
        assert_eq!(day.to_string(), "07:00-16:00");
        assert!(day.allows(time("07:00")) && day.allows(time("15:59")));
        assert!(!day.allows(time("16:00")) && !day.allows(time("06:59")));
        let night: AccessHours = "22:00-06:00".parse().unwrap();
        assert!(night.allows(time("23:00")) && night.allows(time("05:59")));
        assert!(!night.allows(time("06:00")) && !night.allows(time("12:00")));
        for bad in ["07:00", "07:00-07:00", "7-16", "25:00-26:00"] {
            assert!(bad.parse::<AccessHours>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&day).unwrap(), r#""07:00-16:00""#);
    }

    #[test]
    fn region_codes_must_exist() {
        for good in ["33", "33.74", "33.74.01", "11.01.01"] {
            assert_eq!(good.parse::<RegionCode>().unwrap().as_str(), good);
        }
        for bad in ["", "3", "33.", "33.74.01.2001", "99", "33.70", "33.74.99", "33-74", "3374"] {
            assert!(bad.parse::<RegionCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_agreement_is_in_force_on_its_first_and_last_day_only() {
        let i = institution();
        let mut suspended = i.clone();
        suspended.status = InstitutionStatus::Suspended { reason: "monev".into(), since: i.created_at };
        let table = [
            (&i, "2025-12-31", InstitutionState::NotYetValid),
            (&i, "2026-01-01", InstitutionState::Active),
            (&i, "2026-12-31", InstitutionState::Active),
            (&i, "2027-01-01", InstitutionState::Expired),
            (&suspended, "2025-12-31", InstitutionState::Suspended),
            (&suspended, "2026-06-01", InstitutionState::Suspended),
            (&suspended, "2027-01-01", InstitutionState::Suspended),
        ];
        for (institution, day, state) in table {
            assert_eq!(institution.state(date(day)), state, "{day}");
            assert_eq!(institution.active(date(day)), state == InstitutionState::Active, "{day}");
        }
        assert_eq!(serde_json::to_value(InstitutionState::NotYetValid).unwrap(), "not_yet_valid");
    }

    #[test]
    fn institutions_are_validated() {
        assert_eq!(institution().validate(), Ok(()));
        type Change = fn(&mut Institution);
        let cases: Vec<(Change, RecordError)> = vec![
            (|i| i.name = " ".into(), RecordError::Empty("name")),
            (|i| i.agreement.number = String::new(), RecordError::Empty("agreement number")),
            (
                |i| i.agreement.valid_until = "2025-01-01".parse().unwrap(),
                RecordError::Period(Inverted { from: date("2026-01-01"), until: date("2025-01-01") }),
            ),
            (|i| i.agreement.methods.clear(), RecordError::NoMethod),
            (|i| i.agreement.elements = ElementSet::default(), RecordError::NoElement),
            (|i| i.agreement.daily_quota = 0, RecordError::ZeroQuota),
            (|i| i.upstream.consumer_id = "a/b".into(), RecordError::ConsumerId("a/b".into())),
        ];
        for (change, error) in cases {
            let mut i = institution();
            change(&mut i);
            assert_eq!(i.validate(), Err(error));
        }
        // Verification alone returns no data, so it needs no element.
        let mut verify_only = institution();
        verify_only.agreement.methods = [Method::CallVerifyByElemen].into_iter().collect();
        verify_only.agreement.elements = ElementSet::default();
        assert_eq!(verify_only.validate(), Ok(()));
    }

    #[test]
    fn secrets_do_not_print_but_are_stored() {
        let i = institution();
        assert!(!format!("{i:?}").contains("rahasia"));
        let stored = serde_json::to_string(&i).unwrap();
        assert!(stored.contains("rahasia"));
        assert_eq!(serde_json::from_str::<Institution>(&stored).unwrap(), i);
    }

    #[test]
    fn users_are_validated() {
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let user = User {
            id: "budi".parse().unwrap(),
            institution: "DINSOS-3374".parse().unwrap(),
            name: "Budi Santoso".into(),
            nik: "3374041003870006".into(),
            nip: "198703102010011002".into(),
            position: "Analis Data".into(),
            office_region: "33.74.04".parse().unwrap(),
            application_user: "budi.s".into(),
            password_hash: crate::password::PasswordHash::hash_with(
                "rahasia-budi",
                crate::password::Params::new(256, 1, 1, None).unwrap(),
            ),
            status: UserStatus::Active,
            daily_quota: Some(100),
            created_at: now,
            changed_at: now,
        };
        let today = date("2026-06-30");
        assert_eq!(user.validate(today), Ok(()));
        let json = serde_json::to_string(&user).unwrap();
        assert!(json.contains(&format!("\"password_hash\":\"{}\"", user.password_hash.as_phc())), "{json}");
        assert_eq!(serde_json::from_str::<User>(&json).unwrap(), user);
        assert!(user.password_hash.verify("rahasia-budi"));
        assert!(!format!("{user:?}").contains("argon2"));
        let unusable = json.replace(user.password_hash.as_phc(), "$argon2id$v=19$m=19456,t=2,p=1");
        assert!(serde_json::from_str::<User>(&unusable).unwrap_err().to_string().contains("no salt or no hash"));
        let mut bad = user.clone();
        bad.nip = "1987".into();
        assert!(matches!(bad.validate(today), Err(RecordError::Nip(_))));
        let mut bad = user.clone();
        bad.nik = "3374041013870006".into();
        assert!(matches!(bad.validate(today), Err(RecordError::Nik(_))), "month 13");
        let mut bad = user.clone();
        bad.daily_quota = Some(0);
        assert_eq!(bad.validate(today), Err(RecordError::ZeroQuota));
    }
}
