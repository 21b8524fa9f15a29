//! One web-service request, from path and body to the answer, without sockets: the order of the checks, which
//! outcomes spend quota, and what each method answers.
//!
//! The checks run in this order, and the first that fails answers:
//! route → consumer → method name → client address (and client certificate) → request readable → credentials
//! → agreement in force (16) and user active (17) → access hours → method granted → daily quota → parameters
//! → population lookup.
//!
//! `quotaLimiter` is 0 until the caller has authenticated (the warehouse tells strangers nothing), the remaining
//! quota for refusals between authentication and the quota gate (16, 17, 06, 07 for a method not granted), and the quota
//! left after this request for everything past the gate. Every request that passes the gate spends one, whatever
//! it finds (data, 07 for bad parameters, 11, 12, 13, 14, 15): the lookup work was done, and a client probing for
//! valid NIKs pays for each probe. Refusals before the gate spend nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use http::StatusCode;
use serde_json::{Map, Value as Json};
use simpul_core::element::{Element, ElementSet};
use simpul_core::nik::Nik;
use simpul_core::policy::{prepare, FamilyKey, Query, Refusal};
use simpul_core::verify::{render_verdicts, verify};
use simpul_core::wire::aggregate::render_row;
use simpul_core::wire::code::{Dialect, ResponseCode, LEGACY_CLIENT_NOT_REGISTERED};
use simpul_core::wire::envelope::{render, render_code, render_legacy_text, render_transport_error};
use simpul_core::wire::request::parse_request;
use simpul_core::wire::route::{parse_path, Route};

use crate::consumer::{Consumer, Consumers, CredentialCache};
use crate::population::{Population, PopulationError, Resident, ResidentStatus};
use crate::quota::QuotaLedger;
use crate::tls::Fingerprint;
use simpul_core::clock::Clock;

/// What the connection knows about the caller, as opposed to what the request claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The TCP peer address; the body's `ip_user` claim is logged but never trusted.
    pub peer: IpAddr,
    /// The fingerprint of the client certificate the server verified against `client_ca`, if one was presented.
    pub client_cert: Option<Fingerprint>,
}

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Where a request ended, before it is written in the caller's dialect.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Data(Vec<Map<String, Json>>),
    /// A business outcome, with what exactly went wrong (which element is missing, which part of the NIK is wrong,
    /// which method name is unknown). Clients compare the texts of both dialects as strings, so the wire carries only
    /// the code's one text; the detail goes to the debug log for the operator.
    Code(ResponseCode, Option<String>),
    /// A client address that no consumer lists: code 04, but its own legacy text.
    ClientNotRegistered,
    /// An HTTP-level failure, with a message for the body.
    Transport(StatusCode, String),
}

impl Answer {
    fn detail(&self) -> Option<&str> {
        match self {
            Answer::Code(_, detail) => detail.as_deref(),
            Answer::Transport(_, message) => Some(message),
            Answer::Data(_) | Answer::ClientNotRegistered => None,
        }
    }
}

/// Answers that are the same in any request; the server uses them before the handler sees the request.
pub fn transport_reply(dialect: Dialect, status: StatusCode, message: &str) -> Reply {
    Reply { status, body: render_transport_error(dialect, status.as_u16(), message, 0) }
}

fn render_answer(answer: Answer, dialect: Dialect, quota: u64) -> Reply {
    let ok = |body| Reply { status: StatusCode::OK, body };
    match answer {
        Answer::Data(content) => ok(render(&content, quota)),
        Answer::Code(code, _) => ok(render_code(dialect, code, quota)),
        Answer::ClientNotRegistered => match dialect {
            Dialect::Legacy => ok(render_legacy_text(LEGACY_CLIENT_NOT_REGISTERED, quota)),
            Dialect::Coded => ok(render_code(dialect, ResponseCode::DeviceMismatch, quota)),
        },
        Answer::Transport(status, message) => {
            Reply { status, body: render_transport_error(dialect, status.as_u16(), &message, quota) }
        }
    }
}

fn code(code: ResponseCode) -> Answer {
    Answer::Code(code, None)
}

fn invalid(detail: impl Into<String>) -> Answer {
    Answer::Code(ResponseCode::InvalidParameters, Some(detail.into()))
}

/// A request core's policy refuses (unreadable, or parameters missing or invalid): its code, its detail for the log,
/// and the quota it tells.
fn refused(refusal: Refusal) -> (Answer, u64) {
    (Answer::Code(refusal.code, Some(refusal.detail)), refusal.quota_remaining)
}

/// Everything a request needs besides the request itself.
#[derive(Debug)]
pub struct Handler {
    consumers: Consumers,
    credentials: CredentialCache,
    quota: QuotaLedger,
    population: Arc<Population>,
    clock: Arc<dyn Clock>,
    timezone: Tz,
}

impl Handler {
    pub fn new(consumers: Consumers, population: Arc<Population>, clock: Arc<dyn Clock>, timezone: Tz) -> Self {
        Handler {
            quota: QuotaLedger::new(consumers.len()),
            credentials: CredentialCache::new(&consumers),
            consumers,
            population,
            clock,
            timezone,
        }
    }

    /// The consumer a path names, if any: the server uses it to answer transport-level faults in its dialect.
    pub fn consumer_of(&self, path: &str) -> Option<&Consumer> {
        self.consumer_for(&parse_path(path).ok()?)
    }

    fn consumer_for(&self, route: &Route) -> Option<&Consumer> {
        match route {
            Route::Central { consumer_id, .. } => self.consumers.by_id(consumer_id),
            Route::Regional { region, userset, .. } => self.consumers.by_region(region, userset),
        }
    }

    /// Answers one POST to `path` with its query string and body.
    pub async fn handle(&self, caller: Caller, path: &str, query: Option<&str>, body: &[u8]) -> Reply {
        let route = match parse_path(path) {
            Ok(route) => route,
            Err(e) => return transport_reply(Dialect::Coded, StatusCode::NOT_FOUND, &e.to_string()),
        };
        let Some(consumer) = self.consumer_for(&route) else {
            let message = format!("Konsumen tidak terdaftar: {route}");
            return transport_reply(Dialect::Coded, StatusCode::NOT_FOUND, &message);
        };
        let dialect = consumer.config.dialect;
        let now = self.clock.now().with_timezone(&self.timezone);
        let (answer, quota) = self.decide(consumer, &route, caller, query, body, now).await;
        // Debug, not info: one line per request would make a load test measure the terminal.
        tracing::debug!(
            consumer = %consumer.config.id,
            peer = %caller.peer,
            path,
            answer = answer_label(&answer),
            detail = answer.detail(),
            quota,
            "request"
        );
        render_answer(answer, dialect, quota)
    }

    async fn decide(
        &self,
        consumer: &Consumer,
        route: &Route,
        caller: Caller,
        query: Option<&str>,
        body: &[u8],
        now: DateTime<Tz>,
    ) -> (Answer, u64) {
        let config = &consumer.config;
        // A business error like any other (HTTP 200, 07): the consumer exists, so clients get its dialect.
        let Some(method) = consumer.methods.resolve(route.method_segment()) else {
            return (invalid(format!("method name {:?} unknown to the consumer", route.method_segment())), 0);
        };
        if !config.allowed_addresses.iter().any(|a| a.contains(caller.peer)) {
            if self.consumers.address_registered(caller.peer) {
                return (code(ResponseCode::DeviceMismatch), 0);
            }
            return (Answer::ClientNotRegistered, 0);
        }
        // A missing or another certificate is a device that is not as registered, like a wrong address: code 04.
        if config.needs_client_cert() {
            let Some(presented) = caller.client_cert else {
                return (Answer::Code(ResponseCode::DeviceMismatch, Some("no client certificate".into())), 0);
            };
            if config.client_cert_sha256.is_some_and(|pinned| pinned != presented) {
                let detail = format!("client certificate {presented} is not the pinned one");
                return (Answer::Code(ResponseCode::DeviceMismatch, Some(detail)), 0);
            }
        }
        // A body that cannot be read cannot be authenticated either; it is refused before the credentials.
        let request = match parse_request(body, query) {
            Ok(request) => request,
            Err(e) => return refused(Refusal::unreadable(&e)),
        };
        if let Some(claim) = &request.ip_claim {
            tracing::debug!(consumer = %config.id, peer = %caller.peer, claim, "client address claim (not trusted)");
        }
        let (Some(user_id), Some(password)) = (&request.user_id, &request.password) else {
            return (code(ResponseCode::EmptyCredentials), 0);
        };
        if !self.credentials.check(consumer, user_id, password).await {
            return (code(ResponseCode::LoginFailed), 0);
        }
        let today = now.date_naive();
        let remaining = self.quota.remaining(consumer.index, config.daily_quota, today);
        if !config.agreement_active(today) {
            return (code(ResponseCode::InstitutionInactive), remaining);
        }
        if config.user_disabled {
            return (code(ResponseCode::UserInactive), remaining);
        }
        if config.access_hours.is_some_and(|hours| !hours.allows(now.time())) {
            return (code(ResponseCode::OutsideAccessHours), remaining);
        }
        if !config.methods.contains(&method) {
            return (invalid(format!("method {method} not granted")), remaining);
        }
        let Some(remaining) = self.quota.spend(consumer.index, config.daily_quota, today) else {
            return (code(ResponseCode::QuotaExhausted), 0);
        };
        // The parameter rules are core's, shared with the gateway, so that both answer a request alike.
        let query = match prepare(method, &request, config.elements, today, remaining) {
            Ok(query) => query,
            Err(refusal) => return refused(refusal),
        };
        let answer = match query {
            Query::ByNik(nik) => self.call_nik(&nik, config.elements),
            Query::Family(key) => self.call_nik_get_kk(key, config.elements),
            Query::Verify { nik, claims, threshold } => self.call_verify(&nik, &claims, threshold),
            Query::Aggregate { province, regency, district } => {
                self.call_agregat(province, regency, district, today).await
            }
        };
        (answer, remaining)
    }

    /// The resident a NIK names, or the answer that ends the request: 13 when absent, 11/12/14 for a record that is
    /// not active.
    fn resident_by_nik(&self, nik: &Nik) -> Result<Resident, Answer> {
        let resident = self.population.find_nik(nik).ok_or(code(ResponseCode::NotFound))?;
        match resident.status.response_code() {
            Some(c) => Err(code(c)),
            None => Ok(resident),
        }
    }

    fn call_nik(&self, nik: &Nik, granted: ElementSet) -> Answer {
        match self.resident_by_nik(nik) {
            Ok(resident) => Answer::Data(vec![resident.record.to_json(granted)]),
            Err(answer) => answer,
        }
    }

    /// The family by `NO_KK` when sent, else by the `NIK`'s family (the NIK's own record must be active). Members
    /// whose record is deceased, duplicate or inactive are left out, as a reissued family card would leave them out;
    /// a card with nobody left answers 13.
    fn call_nik_get_kk(&self, key: FamilyKey, granted: ElementSet) -> Answer {
        let kk = match key {
            FamilyKey::Kk(kk) => kk,
            FamilyKey::Nik(nik) => match self.resident_by_nik(&nik) {
                Ok(resident) => resident.kk,
                Err(answer) => return answer,
            },
        };
        let members: Vec<_> = self
            .population
            .family(&kk)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.status == ResidentStatus::Alive)
            .map(|m| m.record.to_json(granted))
            .collect();
        if members.is_empty() {
            return code(ResponseCode::NotFound);
        }
        Answer::Data(members)
    }

    /// One verdict per claimed element. Core's policy has already refused claims of elements the agreement does not
    /// grant, so that verification cannot be used to probe data the consumer may not read; the NIK is the lookup key
    /// and is among the claims only when granted.
    fn call_verify(&self, nik: &Nik, claims: &BTreeMap<Element, String>, threshold: u8) -> Answer {
        match self.resident_by_nik(nik) {
            Ok(resident) => Answer::Data(vec![render_verdicts(&verify(&resident.record, claims, threshold))]),
            Err(answer) => answer,
        }
    }

    /// `CALL_AGREGAT`: counts of living residents of a province, regency or district by sex and age band. It returns
    /// no personal data, so it needs the method but no element grant.
    async fn call_agregat(&self, province: u8, regency: Option<u8>, district: Option<u8>, today: NaiveDate) -> Answer {
        let population = self.population.clone();
        // Counting a province walks many residents: off the async workers.
        let rows = tokio::task::spawn_blocking(move || population.aggregate(province, regency, district, today)).await;
        match rows {
            Ok(Ok(rows)) => Answer::Data(
                rows.into_iter()
                    .map(|r| render_row(r.province, r.regency, r.district, r.sex, r.age_band.label(), r.count))
                    .collect(),
            ),
            Ok(Err(e @ PopulationError::UnknownRegion(_))) => Answer::Code(ResponseCode::NotFound, Some(e.to_string())),
            Ok(Err(e)) => invalid(e.to_string()),
            Err(e) => Answer::Transport(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

fn answer_label(answer: &Answer) -> &'static str {
    match answer {
        Answer::Data(_) => "data",
        Answer::Code(c, _) => c.code(),
        Answer::ClientNotRegistered => "04",
        Answer::Transport(..) => "transport",
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::consumer::tests::cheap_hash;
    use crate::population::PopulationConfig;
    use simpul_core::clock::ManualClock;

    /// What `tracing` wrote while a test ran.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn handler() -> Handler {
        let consumer = toml::from_str(&format!(
            r#"
            id = "BPS"
            user_id = "bps"
            password_hash = "{}"
            allowed_addresses = ["127.0.0.1"]
            methods = ["CALL_NIK", "CALL_VERIFY_BY_ELEMEN"]
            elements = ["NIK", "NAMA_LGKP"]
            daily_quota = 10
            "#,
            cheap_hash("rahasia-bps").as_phc()
        ))
        .unwrap();
        let population = Population::new(PopulationConfig { residents: 1000, ..PopulationConfig::default() }).unwrap();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 7, 6, 3, 0, 0).unwrap());
        Handler::new(
            Consumers::new(vec![consumer]).unwrap(),
            Arc::new(population),
            Arc::new(clock),
            chrono_tz::Asia::Jakarta,
        )
    }

    #[tokio::test]
    async fn details_go_to_the_debug_log_and_the_wire_carries_the_table_text() {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let handler = handler();
        let caller = Caller { peer: "127.0.0.1".parse().unwrap(), client_cert: None };
        let table: [(&str, Option<&str>, &str, &str); 3] = [
            ("CALL_SEMUA", None, r#"{"user_id":"bps","password":"rahasia-bps"}"#, "CALL_SEMUA"),
            ("CALL_NIK", Some("USER_ID=bps&PASSWORD=rahasia-bps%FF"), "", "not UTF-8"),
            (
                "CALL_VERIFY_BY_ELEMEN",
                None,
                r#"{"user_id":"bps","password":"rahasia-bps","NIK":"3374041003870006","ALAMAT":"JL. X"}"#,
                "elements not granted: ALAMAT",
            ),
        ];
        for (method, query, body, detail) in table {
            let path = format!("/dukcapil/get_json/BPS/{method}");
            let reply = handler.handle(caller, &path, query, body.as_bytes()).await;
            assert_eq!(reply.status, StatusCode::OK, "{method}");
            let quota = simpul_core::wire::envelope::parse(&reply.body).unwrap().quota_remaining;
            assert_eq!(reply.body, render_code(Dialect::Coded, ResponseCode::InvalidParameters, quota), "{method}");
            let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
            assert!(log.lines().any(|l| l.contains("DEBUG") && l.contains(detail)), "{detail}: {log}");
        }
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(!log.contains("rahasia"), "no password in the log: {log}");
    }
}
