//! The gateway's policy decision: who may ask what, and what may leave.
//!
//! It is two pure steps around the daily quota, because spending quota is an atomic database operation the gateway
//! does between them:
//!
//! 1. [`admit`] decides from what the gateway knows about the caller. The first failing check answers:
//!    empty credentials (09) → unknown user or wrong password (03) → device not the user's or not active (04)
//!    → institution missing, suspended or outside its agreement's period (16) → user disabled (17)
//!    → outside the agreement's access hours (06) → method not granted (07) → daily quota of the institution or
//!    the user used up (05). This is the warehouse stand-in's order, with the device check where the stand-in checks
//!    the client address.
//! 2. The gateway spends one unit of quota. Refusals before this point spend nothing; every request past it spends
//!    one, whatever it finds, so that a client probing for valid NIKs pays for each probe.
//! 3. [`prepare`] reads the method's parameters (07 when missing or invalid, 15 for a NIK or KK not in Dukcapil's
//!    format) into the [`Query`] that goes upstream.
//!
//! Upstream answers pass through [`cut`] (records) or [`cut_verdicts`] (verification) before they reach the caller:
//! the upstream consumer's grant may be wider than the institution's agreement, and only the agreement counts.
//!
//! The client's `ip_user` claim is never consulted here: the tunnel proves which device is calling, and a claim in
//! the body proves nothing. The gateway records it in the audit log.
//!
//! Codes 11–14 and data come from upstream; every other code in the wire table is decided here.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

use crate::device::{Device, DeviceStatus};
use crate::element::{Element, ElementSet};
use crate::institution::{Agreement, Institution, InstitutionStatus, User, UserStatus};
use crate::kk::KkNumber;
use crate::nik::Nik;
use crate::period::Phase;
use crate::verify::{Verdict, DEFAULT_THRESHOLD};
use crate::wire::code::ResponseCode;
use crate::wire::method::Method;
use crate::wire::request::{normalise_code, Request, RequestError};

/// Requests already counted today, before this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub institution_used: u64,
    pub user_used: u64,
}

/// What the gateway knows when a request arrives.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub method: Method,
    pub request: &'a Request,
    /// The device the tunnel authenticated: the source of truth for where the request comes from.
    pub device: &'a Device,
    /// The user the request's user id names; `None` when there is no such user.
    pub user: Option<&'a User>,
    /// The user's institution, looked up by `User::institution`.
    pub institution: Option<&'a Institution>,
    /// Whether the request's password matches the user's hash; `false` for an unknown user. Verifying is slow, so
    /// the caller does it (see [`crate::password`]: unknown user ids are verified against a dummy hash too, so that
    /// timing does not tell which user ids exist).
    pub password_ok: bool,
    /// Now in the gateway's zone (Asia/Jakarta by default): agreements are dated and access hours written in it.
    pub local_now: NaiveDateTime,
    pub usage: Usage,
}

/// A request that may go on to spend quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission<'a> {
    pub institution: &'a Institution,
    pub user: &'a User,
    /// The agreement's grant: what may leave.
    pub elements: ElementSet,
    /// The caller's remaining quota before this request spends: the institution's, or the user's when the user has
    /// a quota of their own and less of it is left. Always at least 1.
    pub remaining: u64,
}

/// A request answered with a code instead of data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Refusal {
    pub code: ResponseCode,
    /// What exactly went wrong, for the audit log; the wire carries only the code's text. Never a password.
    pub detail: String,
    /// `quotaLimiter` in the answer: 0 until the caller is authenticated (strangers learn nothing), else the
    /// caller's remaining quota.
    pub quota_remaining: u64,
}

impl Refusal {
    fn new(code: ResponseCode, detail: impl Into<String>, quota_remaining: u64) -> Self {
        Refusal { code, detail: detail.into(), quota_remaining }
    }

    /// A request body or query string that could not be read (07, before authentication). The one variant that
    /// quotes raw query text is named without it, since that text may be the password.
    pub fn unreadable(error: &RequestError) -> Self {
        let detail = match error {
            RequestError::QueryNotUtf8(_) => "a query string parameter is not UTF-8 after percent-decoding".to_owned(),
            other => other.to_string(),
        };
        Refusal::new(error.response_code(), detail, 0)
    }
}

/// The caller's remaining quota today: the institution's, capped by the user's own quota if the user has one.
pub fn remaining(agreement: &Agreement, user: &User, usage: Usage) -> u64 {
    let institution = agreement.daily_quota.saturating_sub(usage.institution_used);
    match user.daily_quota {
        Some(quota) => institution.min(quota.saturating_sub(usage.user_used)),
        None => institution,
    }
}

/// Decides whether a request may spend quota, in the order the module documentation gives.
///
/// "Authenticated" means the credentials are right *and* the device is the user's: until both hold, a refusal
/// reports no quota, as the stand-in does for a client address it does not know.
pub fn admit<'a>(facts: &Facts<'a>) -> Result<Admission<'a>, Refusal> {
    let request = facts.request;
    // An absent `ip_user` is not an empty credential: the claim is never trusted, and many clients leave it out.
    let missing = match (&request.user_id, &request.password) {
        (Some(_), Some(_)) => None,
        (None, Some(_)) => Some("no user id"),
        (Some(_), None) => Some("no password"),
        (None, None) => Some("no user id and no password"),
    };
    if let Some(missing) = missing {
        return Err(Refusal::new(ResponseCode::EmptyCredentials, missing, 0));
    }

    // One refusal for both, word for word, so that nothing downstream can tell a caller which user ids exist.
    let user = match facts.user {
        Some(user) if facts.password_ok => user,
        _ => return Err(Refusal::new(ResponseCode::LoginFailed, "unknown user id or wrong password", 0)),
    };

    let device = facts.device;
    // Checked before the status: credentials used from another user's laptop is the finding the audit needs.
    if device.user != user.id {
        let detail = format!("device {} belongs to user {}, not to {}", device.name, device.user, user.id);
        return Err(Refusal::new(ResponseCode::DeviceMismatch, detail, 0));
    }
    // The tunnel and the firewall already stop such devices; this holds if either is misconfigured.
    if device.status != DeviceStatus::Active {
        let detail = format!("device {} is {}", device.name, device.status);
        return Err(Refusal::new(ResponseCode::DeviceMismatch, detail, 0));
    }

    let Some(institution) = facts.institution.filter(|i| i.id == user.institution) else {
        let detail = format!("institution {} of user {} is not on record", user.institution, user.id);
        // Without an agreement there is no quota to tell.
        return Err(Refusal::new(ResponseCode::InstitutionInactive, detail, 0));
    };
    let agreement = &institution.agreement;
    let left = remaining(agreement, user, facts.usage);
    let today = facts.local_now.date();
    let inactive = |detail: String| Err(Refusal::new(ResponseCode::InstitutionInactive, detail, left));
    if let InstitutionStatus::Suspended { reason, since } = &institution.status {
        return inactive(format!("institution {} suspended since {since}: {reason}", institution.id));
    }
    let period = agreement.period();
    match period.phase(today) {
        Phase::Before => {
            let (number, id, from) = (&agreement.number, &institution.id, period.from);
            return inactive(format!("agreement {number} of {id} is in force from {from}"));
        }
        Phase::After => {
            let (number, id, until) = (&agreement.number, &institution.id, period.until);
            return inactive(format!("agreement {number} of {id} ended on {until}"));
        }
        Phase::Within => {}
    }

    if user.status == UserStatus::Disabled {
        return Err(Refusal::new(ResponseCode::UserInactive, format!("user {} is disabled", user.id), left));
    }

    if let Some(hours) = agreement.access_hours {
        let time = facts.local_now.time();
        if !hours.allows(time) {
            let detail = format!("{} is outside the access hours {hours}", time.format("%H:%M:%S"));
            return Err(Refusal::new(ResponseCode::OutsideAccessHours, detail, left));
        }
    }

    if !agreement.methods.contains(&facts.method) {
        let detail = format!("method {} is not granted by agreement {}", facts.method, agreement.number);
        return Err(Refusal::new(ResponseCode::InvalidParameters, detail, left));
    }

    let mut spent = Vec::new();
    if facts.usage.institution_used >= agreement.daily_quota {
        spent.push(format!(
            "institution {} has used {} of its daily quota of {}",
            institution.id, facts.usage.institution_used, agreement.daily_quota
        ));
    }
    if let Some(quota) = user.daily_quota.filter(|q| facts.usage.user_used >= *q) {
        spent.push(format!("user {} has used {} of their daily quota of {quota}", user.id, facts.usage.user_used));
    }
    if !spent.is_empty() {
        return Err(Refusal::new(ResponseCode::QuotaExhausted, spent.join("; "), 0));
    }

    Ok(Admission { institution, user, elements: agreement.elements, remaining: left })
}

/// What identifies a family for `CALL_NIK_GET_KK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyKey {
    Nik(Nik),
    Kk(KkNumber),
}

/// What goes upstream for an admitted request, its parameters checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `CALL_NIK`.
    ByNik(Nik),
    /// `CALL_NIK_GET_KK`.
    Family(FamilyKey),
    /// `CALL_VERIFY_BY_ELEMEN`: only granted elements, as the client sent them; the answer is verdicts only.
    Verify { nik: Nik, claims: BTreeMap<Element, String>, threshold: u8 },
    /// `CALL_AGREGAT`: a province, optionally narrowed to a regency and a district.
    Aggregate { province: u8, regency: Option<u8>, district: Option<u8> },
}

impl Query {
    pub fn method(&self) -> Method {
        match self {
            Query::ByNik(_) => Method::CallNik,
            Query::Family(_) => Method::CallNikGetKk,
            Query::Verify { .. } => Method::CallVerifyByElemen,
            Query::Aggregate { .. } => Method::CallAgregat,
        }
    }

    /// The upstream request body, without credentials (the gateway adds the institution's upstream ones). Built
    /// from the checked parameters only, so nothing else the client sent (its `ip_user`, elements it may not
    /// claim) travels on.
    pub fn upstream_request(&self) -> Request {
        let mut request = Request::default();
        let mut put = |e: Element, v: String| {
            request.fields.insert(e, v);
        };
        match self {
            Query::ByNik(nik) | Query::Family(FamilyKey::Nik(nik)) => put(Element::Nik, nik.to_string()),
            Query::Family(FamilyKey::Kk(kk)) => put(Element::NoKk, kk.to_string()),
            Query::Verify { nik, claims, .. } => {
                for (e, v) in claims {
                    put(*e, v.clone());
                }
                put(Element::Nik, nik.to_string());
            }
            Query::Aggregate { province, regency, district } => {
                put(Element::NoProp, province.to_string());
                for (e, code) in [(Element::NoKab, regency), (Element::NoKec, district)] {
                    if let Some(code) = code {
                        put(e, code.to_string());
                    }
                }
            }
        }
        if let Query::Verify { threshold, .. } = self {
            request.threshold = Some(*threshold);
        }
        request
    }
}

/// Reads an admitted request's parameters, after its unit of quota is spent (so `quota_remaining` is what is left
/// after this request). `granted` is [`Admission::elements`]; `today` dates the NIK and KK checks.
///
/// - `CALL_NIK`: `NIK` (07 when missing, 15 when malformed). Other elements sent are ignored.
/// - `CALL_NIK_GET_KK`: `NO_KK` when sent, else `NIK` (07 when neither).
/// - `CALL_VERIFY_BY_ELEMEN`: claiming an element the agreement does not grant refuses the whole request (07).
///   Silently dropping it would let a client read the missing verdict as an answer, and an institution's
///   misconfigured application would never learn why; a probe for data it may not read gets nothing either way,
///   and pays a unit for trying. The NIK is the lookup key and may always be sent; it is a claim (and gets a
///   verdict) only when granted. No claim left is 07; a threshold above 100 is 07; without one, the
///   [`DEFAULT_THRESHOLD`].
/// - `CALL_AGREGAT`: `NO_PROP` (required), `NO_KAB`, `NO_KEC` (each needing the one before), region codes 1–99 with
///   or without zero padding. It returns counts, not people, so it needs no element grant.
///
/// These are the warehouse stand-in's rules, in its order, so that both answer a request alike.
pub fn prepare(
    method: Method,
    request: &Request,
    granted: ElementSet,
    today: NaiveDate,
    quota_remaining: u64,
) -> Result<Query, Refusal> {
    let invalid = |detail: String| Refusal::new(ResponseCode::InvalidParameters, detail, quota_remaining);
    let malformed =
        |e: &dyn std::fmt::Display| Refusal::new(ResponseCode::MalformedNik, e.to_string(), quota_remaining);
    let not_whole = |element: Element, text: &str| {
        let detail =
            format!("{} sent as the JSON number {text}, which is not a whole non-negative number", element.wire_name());
        Refusal::new(ResponseCode::MalformedNik, detail, quota_remaining)
    };
    let nik = || -> Result<Nik, Refusal> {
        let nik = request.nik().ok_or_else(|| invalid("NIK missing".into()))?;
        if request.not_whole.contains(Element::Nik) {
            return Err(not_whole(Element::Nik, nik));
        }
        Nik::parse(nik, today).map_err(|e| malformed(&e))
    };
    match method {
        Method::CallNik => nik().map(Query::ByNik),
        Method::CallNikGetKk => match request.kk() {
            Some(kk) if request.not_whole.contains(Element::NoKk) => Err(not_whole(Element::NoKk, kk)),
            Some(kk) => {
                KkNumber::parse(kk, today).map(|kk| Query::Family(FamilyKey::Kk(kk))).map_err(|e| malformed(&e))
            }
            None if request.nik().is_none() => Err(invalid("neither NIK nor NO_KK sent".into())),
            None => nik().map(|nik| Query::Family(FamilyKey::Nik(nik))),
        },
        Method::CallVerifyByElemen => {
            let not_granted: Vec<&str> = request
                .fields
                .keys()
                .filter(|e| **e != Element::Nik && !granted.contains(**e))
                .map(|e| e.wire_name())
                .collect();
            if !not_granted.is_empty() {
                return Err(invalid(format!("elements not granted: {}", not_granted.join(", "))));
            }
            let claims: BTreeMap<Element, String> =
                request.fields.iter().filter(|(e, _)| granted.contains(**e)).map(|(e, v)| (*e, v.clone())).collect();
            if claims.is_empty() {
                return Err(invalid("no element to verify".into()));
            }
            // The parser already refuses such a threshold; a request built in code may still carry one.
            let threshold = request.threshold.unwrap_or(DEFAULT_THRESHOLD);
            if threshold > 100 {
                return Err(invalid(format!("TRESHOLD {threshold} is above 100")));
            }
            Ok(Query::Verify { nik: nik()?, claims, threshold })
        }
        Method::CallAgregat => {
            let code = |e: Element| -> Result<Option<u8>, Refusal> {
                let Some(v) = request.fields.get(&e) else { return Ok(None) };
                let code = normalise_code(v).parse::<u8>().ok().filter(|c| (1..100).contains(c));
                code.map(Some).ok_or_else(|| invalid(format!("{e} is not a region code: {v:?}")))
            };
            let (province, regency, district) = (code(Element::NoProp)?, code(Element::NoKab)?, code(Element::NoKec)?);
            let Some(province) = province else { return Err(invalid("NO_PROP missing".into())) };
            if district.is_some() && regency.is_none() {
                return Err(invalid("NO_KEC needs NO_KAB".into()));
            }
            Ok(Query::Aggregate { province, regency, district })
        }
    }
}

/// Whether an upstream refusal reaches the caller as it is: what the warehouse found about the person (11–15).
/// Any other refusal (03, 04, 05, 06, 07, 09, 16, 17) is of the gateway's own upstream consumer (its credentials,
/// address, quota or agreement): the caller did nothing wrong, so the gateway answers it as its own failure.
pub fn passes_through(code: ResponseCode) -> bool {
    matches!(
        code,
        ResponseCode::Deceased
            | ResponseCode::Duplicate
            | ResponseCode::NotFound
            | ResponseCode::Inactive
            | ResponseCode::MalformedNik
    )
}

/// Removes from a record every key that does not name a granted element (keys in any case, `NOMOR_PROP` for
/// `NO_PROP`), including keys that name no element at all: the upstream may add fields, and what the agreement does
/// not name does not leave. For `CALL_NIK` and `CALL_NIK_GET_KK` answers; aggregate rows carry counts under their
/// own keys and are not records.
pub fn cut(record: &mut Map<String, Value>, granted: ElementSet) {
    record.retain(|key, _| Element::from_wire_name(key).is_some_and(|e| granted.contains(e)));
}

/// Keeps in a verification answer only the verdicts on `claimed` elements (the keys of [`Query::Verify`]'s
/// claims), and only values that read as verdicts: whatever else an upstream returns for verification could be the
/// record's data.
pub fn cut_verdicts(answer: &mut Map<String, Value>, claimed: ElementSet) {
    answer.retain(|key, value| {
        Element::from_wire_name(key).is_some_and(|e| claimed.contains(e))
            && value.as_str().is_some_and(|v| v.parse::<Verdict>().is_ok())
    });
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveTime};
    use proptest::prelude::*;

    use super::*;
    use crate::institution::AccessHours;
    use crate::password::{Params, PasswordHash};
    use crate::wire::request::parse_request;

    const NIK: &str = "3374041003870006";
    const KK: &str = "3374042005150003";

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn at(day: &str, time: &str) -> NaiveDateTime {
        date(day).and_time(NaiveTime::parse_from_str(time, "%H:%M").unwrap())
    }

    fn hours(s: &str) -> Option<AccessHours> {
        Some(s.parse().unwrap())
    }

    fn grant() -> ElementSet {
        [Element::Nik, Element::NoKk, Element::NamaLgkp, Element::TglLhr, Element::TmptLhr].into_iter().collect()
    }

    /// Everything `Facts` borrows, owned, so that each table row can change one thing.
    #[derive(Clone)]
    struct World {
        method: Method,
        request: Request,
        device: Device,
        user: Option<User>,
        institution: Option<Institution>,
        password_ok: bool,
        local_now: NaiveDateTime,
        usage: Usage,
    }

    impl World {
        fn facts(&self) -> Facts<'_> {
            Facts {
                method: self.method,
                request: &self.request,
                device: &self.device,
                user: self.user.as_ref(),
                institution: self.institution.as_ref(),
                password_ok: self.password_ok,
                local_now: self.local_now,
                usage: self.usage,
            }
        }

        fn user(&mut self) -> &mut User {
            self.user.as_mut().unwrap()
        }

        fn agreement(&mut self) -> &mut Agreement {
            &mut self.institution.as_mut().unwrap().agreement
        }

        /// What `admit` answers, reduced to what the tables compare.
        fn outcome(&self) -> Result<(ElementSet, u64), (&'static str, u64, String)> {
            admit(&self.facts())
                .map(|a| (a.elements, a.remaining))
                .map_err(|r| (r.code.code(), r.quota_remaining, r.detail))
        }
    }

    fn world() -> World {
        let then = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let mut institution = crate::fixtures::institution();
        institution.agreement.methods.insert(Method::CallNikGetKk);
        institution.agreement.elements = grant();
        institution.agreement.access_hours = Some("07:00-16:00".parse().unwrap());
        let user = User {
            id: "budi".parse().unwrap(),
            institution: institution.id.clone(),
            name: "Budi Santoso".into(),
            nik: NIK.into(),
            nip: "198703102010011002".into(),
            position: "Analis Data".into(),
            office_region: "33.74.04".parse().unwrap(),
            application_user: "budi.s".into(),
            password_hash: PasswordHash::hash_with("rahasia-budi", Params::new(256, 1, 1, None).unwrap()),
            status: UserStatus::Active,
            daily_quota: Some(100),
            created_at: then,
            changed_at: then,
        };
        let device = Device {
            name: "laptop-1".parse().unwrap(),
            user: user.id.clone(),
            address: "10.77.0.2".parse().unwrap(),
            public_key: "k".into(),
            status: DeviceStatus::Active,
            created_at: then,
            changed_at: then,
            generated_key: true,
        };
        let request = Request {
            user_id: Some("budi".into()),
            password: Some("rahasia-budi".into()),
            ip_claim: Some("10.77.0.2".into()),
            fields: [(Element::Nik, NIK.to_owned())].into_iter().collect(),
            threshold: None,
            ..Request::default()
        };
        World {
            method: Method::CallNik,
            request,
            device,
            user: Some(user),
            institution: Some(institution),
            password_ok: true,
            local_now: at("2026-07-06", "10:00"),
            usage: Usage { institution_used: 400, user_used: 30 },
        }
    }

    type Change = fn(&mut World);

    #[test]
    fn admission_answers_every_gateway_code_in_order() {
        // (what changes, code, quota told, a piece of the detail)
        let table: Vec<(&str, Change, &str, u64, &str)> = vec![
            ("no user id", |w| w.request.user_id = None, "09", 0, "no user id"),
            ("no password", |w| w.request.password = None, "09", 0, "no password"),
            (
                "no credentials at all",
                |w| (w.request.user_id, w.request.password) = (None, None),
                "09",
                0,
                "no user id and no password",
            ),
            ("unknown user", |w| (w.user, w.password_ok) = (None, false), "03", 0, "unknown user id or wrong password"),
            ("wrong password", |w| w.password_ok = false, "03", 0, "unknown user id or wrong password"),
            (
                "someone else's device",
                |w| w.device.user = "siti".parse().unwrap(),
                "04",
                0,
                "belongs to user siti, not to budi",
            ),
            ("suspended device", |w| w.device.status = DeviceStatus::Suspended, "04", 0, "is suspended"),
            ("revoked device", |w| w.device.status = DeviceStatus::Revoked, "04", 0, "is revoked"),
            ("institution missing", |w| w.institution = None, "16", 0, "DINSOS-3374 of user budi is not on record"),
            (
                "another institution's record",
                |w| w.institution.as_mut().unwrap().id = "BPS".parse().unwrap(),
                "16",
                0,
                "not on record",
            ),
            (
                "institution suspended",
                |w| {
                    let since = w.device.created_at;
                    w.institution.as_mut().unwrap().status =
                        InstitutionStatus::Suspended { reason: "laporan data balikan belum masuk".into(), since };
                },
                "16",
                70,
                "suspended since 2026-01-01 00:00:00 UTC: laporan data balikan belum masuk",
            ),
            (
                "the day after the agreement's end",
                |w| w.local_now = at("2027-01-01", "10:00"),
                "16",
                70,
                "ended on 2026-12-31",
            ),
            (
                "just after midnight after the last day",
                |w| w.local_now = at("2027-01-01", "00:00"),
                "16",
                70,
                "ended on 2026-12-31",
            ),
            (
                "the day before the agreement starts",
                |w| w.local_now = at("2025-12-31", "10:00"),
                "16",
                70,
                "in force from 2026-01-01",
            ),
            ("user disabled", |w| w.user().status = UserStatus::Disabled, "17", 70, "user budi is disabled"),
            ("before the access hours", |w| w.local_now = at("2026-07-06", "06:59"), "06", 70, "06:59:00 is outside"),
            ("at the end of the access hours", |w| w.local_now = at("2026-07-06", "16:00"), "06", 70, "07:00-16:00"),
            (
                "outside an overnight window",
                |w| {
                    w.agreement().access_hours = hours("22:00-06:00");
                    w.local_now = at("2026-07-06", "12:00");
                },
                "06",
                70,
                "outside the access hours 22:00-06:00",
            ),
            (
                "method not granted",
                |w| w.method = Method::CallAgregat,
                "07",
                70,
                "method CALL_AGREGAT is not granted by agreement 470/1234/PKS/2026",
            ),
            (
                "institution quota used up",
                |w| w.usage.institution_used = 1000,
                "05",
                0,
                "institution DINSOS-3374 has used 1000 of its daily quota of 1000",
            ),
            (
                "user quota used up",
                |w| w.usage.user_used = 100,
                "05",
                0,
                "user budi has used 100 of their daily quota of 100",
            ),
            (
                "both quotas used up, both named",
                |w| w.usage = Usage { institution_used: 1200, user_used: 100 },
                "05",
                0,
                "of 1000; user budi",
            ),
            // Several faults at once: the earlier check answers.
            (
                "empty credentials before an unknown user",
                |w| (w.request.password, w.user, w.password_ok) = (None, None, false),
                "09",
                0,
                "no password",
            ),
            (
                "a stranger learns nothing of a suspended institution",
                |w| {
                    w.password_ok = false;
                    w.institution.as_mut().unwrap().status =
                        InstitutionStatus::Suspended { reason: "monev".into(), since: w.device.created_at };
                },
                "03",
                0,
                "unknown user id or wrong password",
            ),
            (
                "wrong password from someone else's device",
                |w| (w.password_ok, w.device.user) = (false, "siti".parse().unwrap()),
                "03",
                0,
                "wrong password",
            ),
            (
                "the device before the agreement",
                |w| (w.device.status, w.local_now) = (DeviceStatus::Suspended, at("2027-06-01", "10:00")),
                "04",
                0,
                "suspended",
            ),
            (
                "expired and user disabled",
                |w| {
                    w.local_now = at("2027-06-01", "10:00");
                    w.user().status = UserStatus::Disabled;
                },
                "16",
                70,
                "ended",
            ),
            (
                "user disabled outside the hours",
                |w| {
                    w.user().status = UserStatus::Disabled;
                    w.local_now = at("2026-07-06", "20:00");
                },
                "17",
                70,
                "disabled",
            ),
            (
                "outside the hours with a method not granted",
                |w| (w.method, w.local_now) = (Method::CallAgregat, at("2026-07-06", "20:00")),
                "06",
                70,
                "outside",
            ),
            (
                "a method not granted spends nothing, even with the quota used up",
                |w| (w.method, w.usage.user_used) = (Method::CallAgregat, 100),
                "07",
                0,
                "not granted",
            ),
        ];
        for (name, change, code, quota, detail) in table {
            let mut w = world();
            change(&mut w);
            let (got_code, got_quota, got_detail) = w.outcome().expect_err(name);
            assert_eq!((got_code, got_quota), (code, quota), "{name}: {got_detail}");
            assert!(got_detail.contains(detail), "{name}: {got_detail:?} lacks {detail:?}");
            assert!(!got_detail.contains("rahasia"), "{name}: {got_detail}");
        }
    }

    #[test]
    fn login_failures_look_the_same_whoever_asks() {
        let mut unknown = world();
        (unknown.user, unknown.password_ok) = (None, false);
        let mut wrong = world();
        wrong.password_ok = false;
        // A user the caller could not find cannot be authenticated by a stray `password_ok`.
        let mut confused = world();
        confused.user = None;
        let refusals: Vec<Refusal> =
            [unknown, wrong, confused].iter().map(|w| admit(&w.facts()).unwrap_err()).collect();
        assert_eq!(refusals[0], refusals[1]);
        assert_eq!(refusals[0], refusals[2]);
        assert_eq!(refusals[0].quota_remaining, 0);
    }

    #[test]
    fn admission_grants_the_agreements_elements_and_the_smaller_remaining_quota() {
        let table: Vec<(&str, Change, u64)> = vec![
            ("the user's quota is the smaller", |_| {}, 70),
            ("the institution's is the smaller", |w| w.usage.institution_used = 990, 10),
            ("a user without a quota of their own", |w| w.user().daily_quota = None, 600),
            ("one request left", |w| w.usage.user_used = 99, 1),
            ("the first minute of the hours", |w| w.local_now = at("2026-07-06", "07:00"), 70),
            (
                "the last second of the hours",
                |w| w.local_now = at("2026-07-06", "15:59") + chrono::Duration::seconds(59),
                70,
            ),
            ("the agreement's first day", |w| w.local_now = at("2026-01-01", "10:00"), 70),
            ("the agreement's last day", |w| w.local_now = at("2026-12-31", "15:59"), 70),
            ("no access hours", |w| (w.agreement().access_hours, w.local_now) = (None, at("2026-07-06", "03:00")), 70),
            (
                "late inside an overnight window",
                |w| (w.agreement().access_hours, w.local_now) = (hours("22:00-06:00"), at("2026-07-06", "23:30")),
                70,
            ),
            (
                "early inside an overnight window",
                |w| (w.agreement().access_hours, w.local_now) = (hours("22:00-06:00"), at("2026-07-07", "05:59")),
                70,
            ),
            ("verification", |w| w.method = Method::CallVerifyByElemen, 70),
            ("no ip_user claim", |w| w.request.ip_claim = None, 70),
        ];
        for (name, change, remaining) in table {
            let mut w = world();
            change(&mut w);
            assert_eq!(w.outcome(), Ok((grant(), remaining)), "{name}");
            let facts = w.facts();
            let admission = admit(&facts).unwrap();
            assert!(std::ptr::eq(admission.user, w.user.as_ref().unwrap()), "{name}");
            assert!(std::ptr::eq(admission.institution, w.institution.as_ref().unwrap()), "{name}");
        }
    }

    #[test]
    fn the_ip_user_claim_changes_nothing() {
        let variants: [Change; 3] = [|_| {}, |w| w.password_ok = false, |w| w.device.user = "siti".parse().unwrap()];
        for change in variants {
            let mut honest = world();
            change(&mut honest);
            let expected = honest.outcome();
            for claim in [None, Some("10.77.0.99"), Some("203.0.113.7"), Some("not an address")] {
                let mut lying = honest.clone();
                lying.request.ip_claim = claim.map(str::to_owned);
                assert_eq!(lying.outcome(), expected, "{claim:?}");
            }
        }
    }

    #[test]
    fn suspension_and_expiry_stop_the_next_request() {
        let w = world();
        assert!(admit(&w.facts()).is_ok());
        let mut later = w.clone();
        later.institution.as_mut().unwrap().status =
            InstitutionStatus::Suspended { reason: "penyalahgunaan".into(), since: w.device.created_at };
        assert_eq!(admit(&later.facts()).unwrap_err().code, ResponseCode::InstitutionInactive);
        let mut later = w.clone();
        later.agreement().valid_until = date("2026-07-05");
        assert_eq!(admit(&later.facts()).unwrap_err().code, ResponseCode::InstitutionInactive);
    }

    fn request(fields: &[(Element, &str)], threshold: Option<u8>) -> Request {
        Request {
            user_id: Some("budi".into()),
            password: Some("rahasia-budi".into()),
            ip_claim: Some("10.9.9.9".into()),
            fields: fields.iter().map(|(e, v)| (*e, (*v).to_owned())).collect(),
            threshold,
            not_whole: ElementSet::empty(),
        }
    }

    fn claims(fields: &[(Element, &str)]) -> BTreeMap<Element, String> {
        fields.iter().map(|(e, v)| (*e, (*v).to_owned())).collect()
    }

    #[test]
    fn a_nik_or_kk_in_another_form_than_digits_is_15_and_never_read() {
        use crate::wire::request::parse_request;
        let today = date("2026-07-06");
        let nik = crate::nik::Nik::parse(NIK, today).unwrap();
        let ok = |method, body: &str| {
            let request = parse_request(body.as_bytes(), None).unwrap();
            prepare(method, &request, ElementSet::all(), today, 7)
        };
        // The same NIK, in every form a request may give it.
        for body in [
            format!(r#"{{"NIK":{NIK}}}"#),
            format!(r#"{{"NIK":"{NIK}"}}"#),
            format!(r#"{{"NIK":" {NIK} "}}"#),
            r#"{"NIK":"3374 0410 0387 0006"}"#.to_owned(),
            r#"{"NIK":"33.74.04-100387-0006"}"#.to_owned(),
        ] {
            assert_eq!(ok(Method::CallNik, &body), Ok(Query::ByNik(nik)), "{body}");
        }
        // Signs, fractions, exponents, stray separators and other characters: 15, naming what is wrong.
        let table = [
            (Method::CallNik, format!(r#"{{"NIK":-{NIK}}}"#), "not a whole non-negative number"),
            (Method::CallNik, format!(r#"{{"NIK":"-{NIK}"}}"#), "a sign"),
            (Method::CallNik, format!(r#"{{"NIK":"+{NIK}"}}"#), "a sign"),
            (Method::CallNik, format!(r#"{{"NIK":" -{NIK}"}}"#), "a sign"),
            (Method::CallNik, format!(r#"{{"NIK":{NIK}.0}}"#), "not a whole non-negative number"),
            (Method::CallNik, r#"{"NIK":337404100387000.6}"#.to_owned(), "not a whole non-negative number"),
            (Method::CallNik, r#"{"NIK":3.374041003870006e15}"#.to_owned(), "not a whole non-negative number"),
            (Method::CallNik, r#"{"NIK":"3.374041003870006e15"}"#.to_owned(), "'e' is not a digit"),
            (Method::CallNik, r#"{"NIK":"3374--0410-0387-0006"}"#.to_owned(), "two in a row"),
            (Method::CallNik, r#"{"NIK":"3374-0410-0387-0006-"}"#.to_owned(), "at the start or the end"),
            (Method::CallNik, r#"{"NIK":".3374041003870006"}"#.to_owned(), "at the start or the end"),
            (Method::CallNik, r#"{"NIK":"3374\t0410\t0387\t0006"}"#.to_owned(), "'\\t' is not a digit"),
            (Method::CallNik, r#"{"NIK":"３３74041003870006"}"#.to_owned(), "'３' is not a digit"),
            (Method::CallNik, r#"{"NIK":"337404100387000"}"#.to_owned(), "15 digits"),
            (Method::CallNik, r#"{"NIK":33740410038700061}"#.to_owned(), "17 digits"),
            (Method::CallNikGetKk, format!(r#"{{"NO_KK":-{KK}}}"#), "NO_KK sent as the JSON number"),
            (Method::CallNikGetKk, format!(r#"{{"NO_KK":{KK}.0}}"#), "NO_KK sent as the JSON number"),
            (Method::CallNikGetKk, format!(r#"{{"NO_KK":"-{KK}"}}"#), "a sign"),
        ];
        for (method, body, says) in table {
            let refusal = ok(method, &body).unwrap_err();
            assert_eq!((refusal.code, refusal.quota_remaining), (ResponseCode::MalformedNik, 7), "{body}");
            assert!(refusal.detail.contains(says), "{body}: {}", refusal.detail);
        }
        // A later blank value does not undo what the number was.
        let body = r#"{"NIK":337404100387000.6,"nik":"  "}"#;
        assert_eq!(ok(Method::CallNik, body).unwrap_err().code, ResponseCode::MalformedNik);
        // A later string replaces the number, and is read as any string is.
        let body = format!(r#"{{"NIK":-1,"nik":"{NIK}"}}"#);
        assert_eq!(ok(Method::CallNik, &body), Ok(Query::ByNik(nik)));
    }

    #[test]
    fn parameters_become_the_upstream_query() {
        use Element::*;
        let today = date("2026-07-06");
        let nik = crate::nik::Nik::parse(NIK, today).unwrap();
        let kk = KkNumber::parse(KK, today).unwrap();
        let table: Vec<(&str, Method, Request, Query)> = vec![
            ("CALL_NIK", Method::CallNik, request(&[(Nik, NIK), (NamaLgkp, "X")], None), Query::ByNik(nik)),
            (
                "CALL_NIK, NIK spaced",
                Method::CallNik,
                request(&[(Nik, "3374 0410 0387 0006")], None),
                Query::ByNik(nik),
            ),
            ("family by NIK", Method::CallNikGetKk, request(&[(Nik, NIK)], None), Query::Family(FamilyKey::Nik(nik))),
            ("family by KK", Method::CallNikGetKk, request(&[(NoKk, KK)], None), Query::Family(FamilyKey::Kk(kk))),
            (
                "family: the KK wins over the NIK",
                Method::CallNikGetKk,
                request(&[(Nik, NIK), (NoKk, KK)], None),
                Query::Family(FamilyKey::Kk(kk)),
            ),
            (
                "verification of granted elements, default threshold",
                Method::CallVerifyByElemen,
                request(&[(Nik, NIK), (NamaLgkp, "BUDI"), (TglLhr, "10-03-1987")], None),
                Query::Verify {
                    nik,
                    claims: claims(&[(Nik, NIK), (NamaLgkp, "BUDI"), (TglLhr, "10-03-1987")]),
                    threshold: DEFAULT_THRESHOLD,
                },
            ),
            (
                "verification with a threshold",
                Method::CallVerifyByElemen,
                request(&[(Nik, NIK), (TmptLhr, "SEMARANG")], Some(100)),
                Query::Verify { nik, claims: claims(&[(Nik, NIK), (TmptLhr, "SEMARANG")]), threshold: 100 },
            ),
            (
                "aggregate of a province",
                Method::CallAgregat,
                request(&[(NoProp, "33")], None),
                Query::Aggregate { province: 33, regency: None, district: None },
            ),
            (
                "aggregate of a district, padded codes",
                Method::CallAgregat,
                request(&[(NoProp, "33"), (NoKab, "074"), (NoKec, "04")], None),
                Query::Aggregate { province: 33, regency: Some(74), district: Some(4) },
            ),
        ];
        for (name, method, request, want) in table {
            let query = prepare(method, &request, grant(), today, 69).unwrap_or_else(|r| panic!("{name}: {r}"));
            assert_eq!(query, want, "{name}");
            assert_eq!(query.method(), method, "{name}");
            let upstream = query.upstream_request();
            assert_eq!((upstream.user_id, upstream.password, upstream.ip_claim), (None, None, None), "{name}");
        }
    }

    #[test]
    fn parameter_faults_are_07_or_15_and_tell_the_quota_left() {
        use Element::*;
        let today = date("2026-07-06");
        // A grant without NIK: verification may still send it as the lookup key.
        let without_nik: ElementSet = [NamaLgkp, TglLhr].into_iter().collect();
        let table: Vec<(&str, Method, Request, ElementSet, &str, &str)> = vec![
            ("CALL_NIK without NIK", Method::CallNik, request(&[(NamaLgkp, "X")], None), grant(), "07", "NIK missing"),
            ("NIK month 13", Method::CallNik, request(&[(Nik, "3374041013870006")], None), grant(), "15", "month 13"),
            ("NIK too short", Method::CallNik, request(&[(Nik, "337404")], None), grant(), "15", "6 digits"),
            ("family without a key", Method::CallNikGetKk, request(&[], None), grant(), "07", "neither NIK nor NO_KK"),
            ("family by a bad KK", Method::CallNikGetKk, request(&[(NoKk, "12")], None), grant(), "15", "KK"),
            ("family by a bad NIK", Method::CallNikGetKk, request(&[(Nik, "x")], None), grant(), "15", "NIK"),
            (
                "verification of an element not granted",
                Method::CallVerifyByElemen,
                request(&[(Nik, NIK), (NamaLgkp, "BUDI"), (Alamat, "JL. X"), (NamaLgkpIbu, "SITI")], None),
                grant(),
                "07",
                "elements not granted: ALAMAT, NAMA_LGKP_IBU",
            ),
            (
                "verification of the NIK alone when the NIK is not granted",
                Method::CallVerifyByElemen,
                request(&[(Nik, NIK)], None),
                without_nik,
                "07",
                "no element to verify",
            ),
            (
                "verification without a NIK",
                Method::CallVerifyByElemen,
                request(&[(NamaLgkp, "BUDI")], None),
                grant(),
                "07",
                "NIK missing",
            ),
            (
                "verification by a malformed NIK",
                Method::CallVerifyByElemen,
                request(&[(Nik, "3374049903870006"), (NamaLgkp, "BUDI")], None),
                grant(),
                "15",
                "day 99",
            ),
            (
                "a threshold above 100",
                Method::CallVerifyByElemen,
                request(&[(Nik, NIK), (NamaLgkp, "BUDI")], Some(101)),
                grant(),
                "07",
                "TRESHOLD 101",
            ),
            (
                "aggregate without a province",
                Method::CallAgregat,
                request(&[(NoKab, "74")], None),
                grant(),
                "07",
                "NO_PROP missing",
            ),
            (
                "aggregate district without regency",
                Method::CallAgregat,
                request(&[(NoProp, "33"), (NoKec, "4")], None),
                grant(),
                "07",
                "NO_KEC needs NO_KAB",
            ),
            (
                "aggregate, not a code",
                Method::CallAgregat,
                request(&[(NoProp, "xx")], None),
                grant(),
                "07",
                "NO_PROP is not a region code",
            ),
            (
                "aggregate, code 0",
                Method::CallAgregat,
                request(&[(NoProp, "00")], None),
                grant(),
                "07",
                "not a region code",
            ),
            (
                "aggregate, code 100",
                Method::CallAgregat,
                request(&[(NoProp, "100")], None),
                grant(),
                "07",
                "not a region code",
            ),
        ];
        for (name, method, request, granted, code, detail) in table {
            let refusal = prepare(method, &request, granted, today, 69).expect_err(name);
            assert_eq!((refusal.code.code(), refusal.quota_remaining), (code, 69), "{name}: {refusal}");
            assert!(refusal.detail.contains(detail), "{name}: {:?} lacks {detail:?}", refusal.detail);
        }
    }

    #[test]
    fn verification_claims_only_granted_elements_and_the_nik_only_when_granted() {
        use Element::*;
        let today = date("2026-07-06");
        let without_nik: ElementSet = [NamaLgkp, TglLhr].into_iter().collect();
        let request = request(&[(Nik, NIK), (NamaLgkp, "BUDI")], Some(90));
        let query = prepare(Method::CallVerifyByElemen, &request, without_nik, today, 5).unwrap();
        let Query::Verify { claims: sent, threshold, .. } = &query else { panic!("{query:?}") };
        assert_eq!((sent, *threshold), (&claims(&[(NamaLgkp, "BUDI")]), 90));
        // The NIK still goes upstream as the key, the threshold with it, nothing else the client sent.
        let upstream = query.upstream_request();
        assert_eq!(upstream.fields, claims(&[(Nik, NIK), (NamaLgkp, "BUDI")]));
        assert_eq!(upstream.threshold, Some(90));
    }

    #[test]
    fn upstream_requests_carry_the_normalised_parameters() {
        use Element::*;
        let today = date("2026-07-06");
        type Fields = &'static [(Element, &'static str)];
        let table: Vec<(Method, Request, Fields)> = vec![
            (Method::CallNik, request(&[(Nik, "3374.0410.0387.0006"), (Alamat, "X")], None), &[(Nik, NIK)]),
            (Method::CallNikGetKk, request(&[(Nik, NIK), (NoKk, "3374-04-200515-0003")], None), &[(NoKk, KK)]),
            (Method::CallAgregat, request(&[(NoProp, "033"), (NoKab, "74")], None), &[(NoProp, "33"), (NoKab, "74")]),
        ];
        for (method, request, fields) in table {
            let upstream = prepare(method, &request, grant(), today, 1).unwrap().upstream_request();
            assert_eq!(upstream.fields, claims(fields), "{method}");
            assert_eq!(upstream.threshold, None, "{method}");
            assert_eq!(parse_request(&upstream.to_body(), None), Ok(upstream), "{method}");
        }
    }

    #[test]
    fn unreadable_requests_are_07_before_authentication_without_the_query_text() {
        let threshold = parse_request(br#"{"USER_ID":"budi","PASSWORD":"p","TRESHOLD":"101"}"#, None).unwrap_err();
        let refusal = Refusal::unreadable(&threshold);
        assert_eq!((refusal.code, refusal.quota_remaining), (ResponseCode::InvalidParameters, 0));
        assert!(refusal.detail.contains("TRESHOLD"), "{}", refusal.detail);
        let query = parse_request(b"", Some("USER_ID=budi&PASSWORD=rahasia%FF")).unwrap_err();
        let refusal = Refusal::unreadable(&query);
        assert_eq!(refusal.code, ResponseCode::InvalidParameters);
        assert!(!refusal.detail.contains("rahasia") && !refusal.to_string().contains("rahasia"), "{refusal}");
    }

    #[test]
    fn records_are_cut_to_the_grant() {
        let mut record: Map<String, Value> = serde_json::from_str(
            r#"{"NIK":3374041003870006,"nama_lgkp":"BUDI","NOMOR_PROP":33,"ALAMAT":"JL. X","NIK_IBU":1,"transactionId":"t"}"#,
        )
        .unwrap();
        let granted: ElementSet = [Element::Nik, Element::NamaLgkp, Element::NoProp].into_iter().collect();
        cut(&mut record, granted);
        assert_eq!(Value::Object(record).to_string(), r#"{"NIK":3374041003870006,"nama_lgkp":"BUDI","NOMOR_PROP":33}"#);
    }

    #[test]
    fn verification_answers_keep_only_verdicts_on_claimed_elements() {
        let mut answer: Map<String, Value> = serde_json::from_str(
            r#"{"NIK":"Sesuai","NAMA_LGKP":"Sesuai (100)","TGL_LHR":"1987-03-10","TMPT_LHR":"Tidak Sesuai (59)","ALAMAT":"Sesuai","NO_KK":3374040101090001}"#,
        )
        .unwrap();
        let claimed: ElementSet =
            [Element::NamaLgkp, Element::TglLhr, Element::TmptLhr, Element::NoKk].into_iter().collect();
        cut_verdicts(&mut answer, claimed);
        assert_eq!(Value::Object(answer).to_string(), r#"{"NAMA_LGKP":"Sesuai (100)","TMPT_LHR":"Tidak Sesuai (59)"}"#);
    }

    fn any_key() -> impl Strategy<Value = String> {
        let element = (0..Element::COUNT, any::<bool>()).prop_map(|(i, lower)| {
            let name = Element::ALL[i].wire_name();
            if lower {
                name.to_ascii_lowercase()
            } else {
                name.to_owned()
            }
        });
        prop_oneof![element, Just("NOMOR_PROP".to_owned()), "[A-Za-z_]{0,12}"]
    }

    proptest! {
        #[test]
        fn cut_leaves_exactly_the_granted_keys(
            keys in proptest::collection::vec(any_key(), 0..40),
            bits in any::<u64>(),
        ) {
            let granted: ElementSet = Element::ALL.iter().copied().filter(|e| bits & (1 << e.index()) != 0).collect();
            let mut record: Map<String, Value> = keys.iter().map(|k| (k.clone(), Value::from(1))).collect();
            let before = record.clone();
            cut(&mut record, granted);
            for key in before.keys() {
                let granted_key = Element::from_wire_name(key).is_some_and(|e| granted.contains(e));
                prop_assert_eq!(record.contains_key(key), granted_key, "{}", key);
            }
        }
    }

    #[test]
    fn only_what_the_warehouse_found_passes_through() {
        for &code in ResponseCode::ALL {
            let found = ["11", "12", "13", "14", "15"].contains(&code.code());
            assert_eq!(passes_through(code), found, "{}", code.code());
        }
    }
}
