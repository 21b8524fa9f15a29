//! The local warehouse cache's rules, without I/O: which upstream answers may be kept, until when, and under which
//! key. The gateway's store (`gateway/src/cache.rs`) holds the entries; these functions decide about them.
//!
//! - **What**: an upstream answer with data, and "not found" (13). Nothing else: not the other codes about a person
//!   (11, 12, 14, 15, rare and cheap to ask again), not the upstream's refusals of the gateway's own consumer, not
//!   HTTP failures or timeouts (those never reach [`Validity::until`]: they are not answers), not the gateway's
//!   own refusals (those are decided before the upstream is asked).
//! - **How long**: the warehouse changes only at its consolidation dates (`06-30` and `12-31` by default), so an
//!   answer fetched on any other day stays right until the next one. The warehouse may change at any moment of that
//!   day, so the safe reading is taken: an entry expires at 00:00 of the next consolidation date in the gateway's
//!   zone, and an answer fetched on a consolidation date is not kept at all. "Not found" is kept only for
//!   `not_found_ttl` (a person may be registered any day), and never past the consolidation either.
//! - **Key**: the upstream consumer, the method and the request's canonical upstream body (the parameters
//!   `policy::prepare` checked and normalised: the NIK, the KK number, a verification's claims and threshold, an
//!   aggregate's region codes; never credentials). An answer is therefore served only for exactly the request it
//!   answered under exactly the consumer whose grant it was fetched with. The key is an HMAC-SHA256 under the cache's
//!   own secret, so the stored keys are not NIKs and cannot be found by hashing NIKs without that secret.
//! - **About whom** ([`Named`]): the people an answer names, under whom the store lists it so that a person's erasure
//!   removes every answer about them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

use crate::element::Element;
use crate::password::keyed::Keyed;
use crate::policy::{FamilyKey, Query};
use crate::wire::code::ResponseCode;
use crate::wire::envelope::{Envelope, Outcome};

/// A day of the year on which the warehouse consolidates (`"06-30"`): month and day, the same every year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Consolidation {
    month: u32,
    day: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a day of every year written MM-DD (\"06-30\")")]
pub struct NotADay(String);

impl FromStr for Consolidation {
    type Err = NotADay;

    fn from_str(s: &str) -> Result<Self, NotADay> {
        let error = || NotADay(s.to_owned());
        let (month, day) = s.split_once('-').ok_or_else(error)?;
        let two_digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(month) || !two_digits(day) {
            return Err(error());
        }
        let (month, day) = (month.parse().map_err(|_| error())?, day.parse().map_err(|_| error())?);
        // A day that a common year lacks (02-29) would leave three years in four without that consolidation.
        NaiveDate::from_ymd_opt(2001, month, day).ok_or_else(error)?;
        Ok(Consolidation { month, day })
    }
}

impl fmt::Display for Consolidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

impl<'de> Deserialize<'de> for Consolidation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Consolidation {
    fn in_year(self, year: i32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, self.month, self.day).expect("checked against a common year when read")
    }
}

/// How long answers stay valid: the consolidation dates, counted in `zone`, and the "not found" lifetime.
#[derive(Debug, Clone, PartialEq)]
pub struct Validity {
    pub consolidation: Vec<Consolidation>,
    pub not_found_ttl: chrono::Duration,
    pub zone: Tz,
}

impl Validity {
    /// Until when an upstream answer with `outcome`, fetched at `fetched`, may be served; `None` when it must not be
    /// kept (see the module's rules).
    pub fn until(&self, outcome: &Outcome, fetched: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let consolidation = self.next_consolidation(fetched)?;
        match outcome {
            Outcome::Data => Some(consolidation),
            Outcome::Code(ResponseCode::NotFound) if self.not_found_ttl > chrono::Duration::zero() => {
                Some(consolidation.min(fetched + self.not_found_ttl))
            }
            Outcome::Code(_) | Outcome::Text(_) => None,
        }
    }

    /// 00:00 local of the first consolidation date after `fetched`'s local date; `None` on a consolidation date
    /// itself, or without any date (nothing would ever end an entry's validity).
    fn next_consolidation(&self, fetched: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = fetched.with_timezone(&self.zone).date_naive();
        let on = |year: i32| self.consolidation.iter().map(move |c| c.in_year(year));
        if on(today.year()).any(|date| date == today) {
            return None;
        }
        let next = on(today.year()).chain(on(today.year() + 1)).filter(|date| *date > today).min()?;
        Some(crate::day::start_of(next, self.zone))
    }
}

/// Makes the cache's keys: keyed digests of what identifies an upstream answer.
pub struct CacheKeys(Keyed);

impl fmt::Debug for CacheKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheKeys(<key>)")
    }
}

impl CacheKeys {
    pub fn new(secret: [u8; 32]) -> Self {
        CacheKeys(Keyed::with_key(secret))
    }

    /// The key of the upstream's answer to `query` asked under upstream consumer `consumer`.
    pub fn key(&self, consumer: &str, query: &Query) -> [u8; 32] {
        let body = query.upstream_request().to_body();
        let body = std::str::from_utf8(&body).expect("a JSON body is UTF-8");
        self.key_of(consumer, query.method().wire_name(), body)
    }

    /// [`Self::key`] from what a kept entry remembers of its request (the method's wire name and the canonical
    /// body), so that the entry can be keyed again under another secret.
    pub fn key_of(&self, consumer: &str, method: &str, body: &str) -> [u8; 32] {
        self.0.digest(&["simpul cache 1", consumer, method, body])
    }

    /// The keyed digest under which the entries about `id` (a NIK, a KK number, an institution: `kind`) are listed,
    /// so that they can be found and removed without any clear identifier at rest.
    pub fn subject(&self, kind: &str, id: &str) -> [u8; 32] {
        self.0.digest(&["simpul cache subject 1", kind, id])
    }
}

/// The people a kept answer is about, so that a person's erasure finds every answer that names them: the NIK or KK
/// number the request names, and every NIK ([`Element::names_a_person`]: the person's own, a family member's, a
/// parent's) and KK number in the answer's content.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Named {
    pub niks: BTreeSet<String>,
    pub kks: BTreeSet<String>,
}

impl Named {
    pub fn of(query: &Query, answer: &Envelope) -> Named {
        let mut named = Named::default();
        match query {
            Query::ByNik(nik) | Query::Family(FamilyKey::Nik(nik)) | Query::Verify { nik, .. } => {
                named.niks.insert(nik.to_string());
            }
            Query::Family(FamilyKey::Kk(kk)) => {
                named.kks.insert(kk.to_string());
            }
            Query::Aggregate { .. } => {}
        }
        // Only numbers: a verification's answer holds verdicts ("Sesuai") under the same names.
        let number = |value: &serde_json::Value| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
        };
        for item in &answer.content {
            let persons = Element::ALL.iter().filter(|e| e.names_a_person());
            named.niks.extend(persons.filter_map(|e| item.get(e.wire_name()).and_then(number)));
            named.kks.extend(item.get(Element::NoKk.wire_name()).and_then(number));
        }
        named
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::kk::KkNumber;
    use crate::nik::Nik;

    fn validity() -> Validity {
        Validity {
            consolidation: vec!["06-30".parse().unwrap(), "12-31".parse().unwrap()],
            not_found_ttl: chrono::Duration::hours(1),
            zone: chrono_tz::Asia::Jakarta,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// Who an answer names: the request's NIK or KK, every NIK, NIK_AYAH, NIK_IBU and NO_KK in the content as a
    /// string or a number, never a verdict or another element's number.
    #[test]
    fn an_answer_names_the_request_and_every_person_in_its_content() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let nik = Nik::parse("3374041003870006", today).unwrap();
        let kk = KkNumber::parse("3374040101200001", today).unwrap();
        let envelope = |json: &str| crate::wire::envelope::parse(json.as_bytes()).unwrap();
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let child = r#"{"content":[{"NIK":"3374041003870006","NIK_AYAH":3374040101600001,"NIK_IBU":"3374044101650002",
            "NO_KK":"3374040101200001","NO_PROP":33}],"quotaLimiter":1}"#;
        let verdicts = r#"{"content":[{"NIK":"Sesuai","NAMA_LGKP":"Tidak Sesuai"}],"quotaLimiter":1}"#;
        let members =
            r#"{"content":[{"NIK":"3374044107900002"},{"NIK":"3374041003870007","NO_KK":""}],"quotaLimiter":1}"#;
        let table = [
            (
                Query::ByNik(nik),
                child,
                &["3374040101600001", "3374041003870006", "3374044101650002"][..],
                &["3374040101200001"][..],
            ),
            (Query::Verify { nik, claims: BTreeMap::new(), threshold: 90 }, verdicts, &["3374041003870006"], &[]),
            (
                Query::Family(FamilyKey::Kk(kk)),
                members,
                &["3374041003870007", "3374044107900002"],
                &["3374040101200001"],
            ),
        ];
        for (query, answer, niks, kks) in table {
            let named = Named::of(&query, &envelope(answer));
            assert_eq!((named.niks, named.kks), (set(niks), set(kks)), "{answer}");
        }
    }

    #[test]
    fn consolidation_days_read_as_mm_dd_of_every_year() {
        assert_eq!("06-30".parse::<Consolidation>().unwrap().to_string(), "06-30");
        assert_eq!("12-31".parse::<Consolidation>().unwrap(), Consolidation { month: 12, day: 31 });
        for bad in ["6-30", "06/30", "13-01", "06-31", "02-29", "00-10", "06-00", "0630", "", "06-3a", "+6-30"] {
            assert!(bad.parse::<Consolidation>().is_err(), "{bad}");
        }
    }

    #[test]
    fn what_may_be_kept_and_until_when() {
        let v = validity();
        let june = utc("2026-06-30T00:00:00+07:00");
        let december = utc("2026-12-31T00:00:00+07:00");
        let next_june = utc("2027-06-30T00:00:00+07:00");
        let found = Outcome::Data;
        let not_found = Outcome::Code(ResponseCode::NotFound);
        #[rustfmt::skip]
        let table: &[(&str, &Outcome, Option<DateTime<Utc>>)] = &[
            // Data: until 00:00 Jakarta of the next consolidation date.
            ("2026-03-01T10:00:00+07:00", &found, Some(june)),
            ("2026-06-29T23:59:59+07:00", &found, Some(june)),
            // On a consolidation date the warehouse may change at any moment: not kept.
            ("2026-06-30T00:00:00+07:00", &found, None),
            ("2026-06-30T23:59:59+07:00", &found, None),
            ("2026-07-01T00:00:00+07:00", &found, Some(december)),
            // The zone decides the day: 17:30 UTC on 06-29 is already 06-30 in Jakarta.
            ("2026-06-29T17:30:00Z", &found, None),
            ("2026-06-29T16:59:59Z", &found, Some(june)),
            // Across the new year.
            ("2027-01-01T00:00:00+07:00", &found, Some(next_june)),
            // Not found: for the TTL, never past the consolidation, never on its date.
            ("2026-03-01T10:00:00+07:00", &not_found, Some(utc("2026-03-01T11:00:00+07:00"))),
            ("2026-06-29T23:30:00+07:00", &not_found, Some(june)),
            ("2026-06-30T10:00:00+07:00", &not_found, None),
        ];
        for (fetched, outcome, until) in table {
            assert_eq!(v.until(outcome, utc(fetched)), *until, "{fetched} {outcome:?}");
        }
        // Every other outcome about a person, and the upstream's refusals of the gateway's consumer, are not kept.
        for code in ResponseCode::ALL.iter().filter(|c| **c != ResponseCode::NotFound) {
            assert_eq!(v.until(&Outcome::Code(*code), utc("2026-03-01T10:00:00Z")), None, "{code:?}");
        }
        assert_eq!(v.until(&Outcome::Text("Akses ditolak".into()), utc("2026-03-01T10:00:00Z")), None);
        // Without a TTL, not found is not kept; without a date, nothing is.
        let no_ttl = Validity { not_found_ttl: chrono::Duration::zero(), ..validity() };
        assert_eq!(no_ttl.until(&not_found, utc("2026-03-01T10:00:00Z")), None);
        assert_eq!(no_ttl.until(&found, utc("2026-03-01T10:00:00Z")), Some(june));
        let no_dates = Validity { consolidation: Vec::new(), ..validity() };
        assert_eq!(no_dates.until(&found, utc("2026-03-01T10:00:00Z")), None);
        // Another zone moves the instant.
        let papua = Validity { zone: chrono_tz::Asia::Jayapura, ..validity() };
        assert_eq!(papua.until(&found, utc("2026-03-01T10:00:00Z")), Some(utc("2026-06-30T00:00:00+09:00")));
    }

    #[test]
    fn keys_differ_by_consumer_method_and_every_parameter_and_are_keyed() {
        let today = NaiveDate::from_ymd_opt(2026, 7, 15).unwrap();
        let nik = |s: &str| Nik::parse(s, today).unwrap();
        let claims = |name: &str| BTreeMap::from([(Element::NamaLgkp, name.to_owned())]);
        let queries = [
            Query::ByNik(nik("3374041003870006")),
            Query::ByNik(nik("3374044107900002")),
            Query::Family(FamilyKey::Nik(nik("3374041003870006"))),
            Query::Family(FamilyKey::Kk(KkNumber::parse("3374040101200001", today).unwrap())),
            Query::Verify { nik: nik("3374041003870006"), claims: claims("BUDI SANTOSO"), threshold: 80 },
            Query::Verify { nik: nik("3374041003870006"), claims: claims("BUDI SANTOSO"), threshold: 90 },
            Query::Verify { nik: nik("3374041003870006"), claims: claims("BUDI SANTOS"), threshold: 80 },
            Query::Aggregate { province: 33, regency: Some(74), district: None },
            Query::Aggregate { province: 33, regency: None, district: None },
        ];
        let keys = CacheKeys::new([1; 32]);
        let mut seen = std::collections::HashSet::new();
        for consumer in ["DEV", "DINKES"] {
            for query in &queries {
                assert!(seen.insert(keys.key(consumer, query)), "{consumer} {query:?}");
            }
        }
        // The same request gives the same key (the same NIK in another written form is the same `Nik`)...
        assert_eq!(keys.key("DEV", &queries[0]), keys.key("DEV", &Query::ByNik(nik("3374 0410 0387 0006"))));
        // ...and another secret another one.
        assert_ne!(keys.key("DEV", &queries[0]), CacheKeys::new([2; 32]).key("DEV", &queries[0]));
    }
}
