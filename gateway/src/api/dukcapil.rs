//! The Dukcapil web service inside the tunnel: the routes, lenient requests, envelope and both error dialects of
//! WIRE.md, enforced per agreement. One request, in order:
//!
//! route (404, see [`super`]) → the path's consumer is the caller's (404) → the device's rate (429) → request readable (07) →
//! method known (07) → password ([`super::login`]) → identity and policy (`core::policy::admit`: 09 03 04 16 17 06 07
//! 05) → the user's and institution's rates (429) → quota spent atomically (05 if a concurrent request took the last unit) → parameters
//! (`core::policy::prepare`: 07 15) → the cache ([`crate::cache`]: the upstream's kept answer to this very request
//! under the institution's upstream consumer) or upstream with the institution's credentials (502 503 504, refunded)
//! → the answer cut to the agreement's grant, `quotaLimiter` set to the caller's remaining quota.
//!
//! Every answer is in the dialect of the device's institution (`Caller::dialect`), whatever the body claims; the
//! request decides from one [`Snapshot`] of the directory, taken when it arrived.
//!
//! Refusals before the quota gate spend nothing; every request past it spends one unit of the institution's and the
//! user's quota, whatever the lookup finds (data, 07, 11–15), since the lookup was done and a client probing for
//! NIKs pays per probe; an upstream failure is refunded, since the institution should not pay for an outage. An
//! answer from the cache is paid like any other: the quota meters the gateway's answers, not the warehouse's work.

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, StatusCode};
use simpul_core::audit::record::{Outcome as Recorded, Source};
use simpul_core::element::{Element, ElementSet};
use simpul_core::institution::{Institution, User};
use simpul_core::kk::KkNumber;
use simpul_core::nik::Nik;
use simpul_core::policy::{self, Facts, Query, Refusal, Usage};
use simpul_core::wire::code::{Dialect, ResponseCode};
use simpul_core::wire::envelope::{self, render, render_code, render_transport_error, Envelope, Outcome};
use simpul_core::wire::method::Method;
use simpul_core::wire::request::parse_request;
use simpul_core::wire::route::Route;

use super::login::Logins;
use crate::cache::{Asked, Cache, CacheError, Fetched};
use crate::limits::quota::{Charge, QuotaError, QuotaLedger, Subject};
use crate::limits::rate::{RateLimits, Scope};
use crate::service::Gateway;
use crate::snapshot::Snapshot;
use crate::upstream::Upstream;
use simpul_ledger::Identifier;

/// An HTTP answer: status, JSON body, and a `Retry-After` when the caller should wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub retry_after: Option<u64>,
    /// For 405: say which method is allowed.
    pub allow_post: bool,
    /// What the audit record says the caller got; set by the constructor that made the body, so they agree.
    pub outcome: Recorded,
}

impl Reply {
    fn data(body: Vec<u8>) -> Self {
        Reply { status: StatusCode::OK, body, retry_after: None, allow_post: false, outcome: Recorded::Data }
    }

    /// A web-service answer with a response code instead of data (HTTP 200, as Dukcapil answers them).
    fn code(dialect: Dialect, code: ResponseCode, quota: u64) -> Self {
        Reply { outcome: Recorded::Code(code), ..Reply::data(render_code(dialect, code, quota)) }
    }

    /// An HTTP-level failure with a JSON body in `dialect`, so clients that only read JSON learn what happened.
    pub fn transport(dialect: Dialect, status: StatusCode, message: &str, quota: u64) -> Self {
        Reply {
            status,
            body: render_transport_error(dialect, status.as_u16(), message, quota),
            retry_after: None,
            allow_post: false,
            outcome: Recorded::Http(status.as_u16()),
        }
    }

    pub fn headers(&self, headers: &mut http::HeaderMap) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.allow_post {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
    }
}

/// What a request's audit record holds beyond what the listener knows (device, route, timing, sizes): filled in as
/// the request goes, so a request refused early still says what was known by then.
#[derive(Debug)]
pub struct Trail {
    pub institution: Option<String>,
    /// The user's id when the user exists, else the id the request claimed.
    pub user: Option<String>,
    pub ip_claim: Option<String>,
    pub method: Option<Method>,
    /// Elements the request carried (parameters and claims to verify).
    pub requested: ElementSet,
    /// Elements the answer carries.
    pub returned: ElementSet,
    pub source: Source,
    /// The quota day the request's unit was spent on, while it stands (a refund gives it back to that day, even
    /// after midnight).
    pub charged_on: Option<chrono::NaiveDate>,
    /// The people the request looked up.
    pub subjects: Vec<Identifier>,
}

impl Default for Trail {
    fn default() -> Self {
        Trail {
            institution: None,
            user: None,
            ip_claim: None,
            method: None,
            requested: ElementSet::empty(),
            returned: ElementSet::empty(),
            source: Source::Gateway,
            charged_on: None,
            subjects: Vec::new(),
        }
    }
}

/// Everything the web service needs besides the request.
#[derive(Debug)]
pub struct Dukcapil {
    gateway: Arc<Gateway>,
    ledger: QuotaLedger,
    rates: RateLimits,
    upstream: Option<Upstream>,
    logins: Logins,
}

impl Dukcapil {
    pub fn new(gateway: Arc<Gateway>, ledger: QuotaLedger, rates: RateLimits, upstream: Option<Upstream>) -> Self {
        let api = &gateway.config().api;
        let logins = Logins::new(api.password_checks(), api.backoff());
        Dukcapil { gateway, ledger, rates, upstream, logins }
    }

    /// Removes the cache's expired and unopenable entries (whether it is on or off).
    pub fn sweep_cache(&self) {
        match self.gateway.cache().sweep(self.gateway.now()) {
            Ok(removed) => tracing::debug!(removed, "cache swept"),
            // Said once, when it could not be opened.
            Err(CacheError::NotOpen(_)) => {}
            Err(e) => tracing::error!("sweeping the cache: {e}"),
        }
    }

    pub fn rates(&self) -> &RateLimits {
        &self.rates
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Answers one web-service request in `dialect`, deciding from `snapshot` alone (the caller, whose device the
    /// tunnel authenticated, and the user the body names), noting in `trail` what its audit record needs.
    pub async fn handle(
        &self,
        snapshot: &Snapshot,
        dialect: Dialect,
        route: &Route,
        query: Option<&str>,
        body: &[u8],
        trail: &mut Trail,
    ) -> Reply {
        let caller = &snapshot.caller;
        let device = &caller.device;
        // As the warehouse answers a consumer that is not the caller's: applications send the name they were given.
        if !caller.owns(route) {
            tracing::debug!(device = %device.name, route = %route, "the path names another consumer");
            return Reply::transport(dialect, StatusCode::NOT_FOUND, &format!("Konsumen tidak terdaftar: {route}"), 0);
        }
        if let Err(limited) = self.rates.check_device(device.name.as_str()) {
            return rate_limited(dialect, &format!("perangkat {}", device.name), limited.retry_after_secs(), 0);
        }
        let parsed = parse_request(body, query);
        // Per-request lines are debug: every request is a record in the audit log, which is where to look (`audit
        // search`); an appliance answering thousands of requests a second must not flood its journal.
        let refuse = |refusal: Refusal| {
            tracing::debug!(device = %device.name, code = refusal.code.code(), detail = %refusal.detail, "refused");
            Reply::code(dialect, refusal.code, refusal.quota_remaining)
        };
        let request = match parsed {
            Ok(request) => request,
            Err(e) => return refuse(Refusal::unreadable(&e)),
        };
        trail.user = request.user_id.clone();
        trail.ip_claim = request.ip_claim.clone();
        trail.requested = request.fields.keys().copied().collect();
        // A person is named by the number's 16 digits whatever form the request wrote it in (`3374 0410 …`), so
        // that `audit subject` finds every request about them; a number that is not one is kept as sent.
        let today = self.gateway.today();
        let nik = |n: &str| Nik::parse(n, today).map_or_else(|_| n.to_owned(), |nik| nik.to_string());
        let kk = |n: &str| KkNumber::parse(n, today).map_or_else(|_| n.to_owned(), |kk| kk.to_string());
        trail.subjects.extend(request.nik().map(|n| Identifier::Nik(nik(n))));
        trail.subjects.extend(request.kk().map(|n| Identifier::Kk(kk(n))));
        // The client's own claim of its address is recorded, never trusted: the tunnel named the device.
        tracing::debug!(
            device = %device.name,
            user = request.user_id.as_deref().unwrap_or("-"),
            ip_claim = request.ip_claim.as_deref().unwrap_or("-"),
            route = %route,
            "request"
        );
        let Some(method) = caller.method_names().resolve(route.method_segment()) else {
            let detail = format!("unknown method {:?}", route.method_segment());
            return refuse(Refusal { code: ResponseCode::InvalidParameters, detail, quota_remaining: 0 });
        };
        trail.method = Some(method);
        let (user, institution) = request.user_id.as_deref().map_or((None, None), |id| snapshot.named(id));
        let password_ok = match (&request.user_id, &request.password) {
            (Some(id), Some(password)) => {
                self.logins.check(device.name.as_str(), id, password, user.map(|u| &u.password_hash)).await
            }
            _ => false,
        };
        if let Some(user) = user {
            trail.user = Some(user.id.to_string());
        }
        let usage = self.usage(today, user, institution).await;
        let facts = Facts {
            method,
            request: &request,
            device,
            user,
            institution,
            password_ok,
            local_now: self.gateway.local_now(),
            usage,
        };
        let admission = match policy::admit(&facts) {
            Ok(admission) => admission,
            Err(refusal) => return refuse(refusal),
        };
        let (user, institution) = (admission.user, admission.institution);
        if let Err(limited) = self.rates.check(user.id.as_str(), institution.id.as_str()) {
            let whose = match limited.scope {
                Scope::Device => format!("perangkat {}", device.name),
                Scope::User => format!("pengguna {}", user.id),
                Scope::Institution => format!("instansi {}", institution.id),
            };
            tracing::debug!(device = %device.name, "rate limited: {whose}");
            return rate_limited(dialect, &whose, limited.retry_after_secs(), admission.remaining);
        }
        let charges = charges(institution, user);
        let remaining = match self.ledger.spend_pending(today, &charges).await {
            Ok(spent) => {
                trail.charged_on = Some(today);
                spent.least()
            }
            Err(QuotaError::Exhausted { kind, name, .. }) => {
                let detail = format!("the daily quota of {kind} {name} was spent by a concurrent request");
                return refuse(Refusal { code: ResponseCode::QuotaExhausted, detail, quota_remaining: 0 });
            }
            Err(e) => {
                tracing::error!("quota: {e}");
                let message = "Kuota tidak dapat dicatat; permintaan tidak diproses";
                return Reply::transport(dialect, StatusCode::SERVICE_UNAVAILABLE, message, admission.remaining);
            }
        };
        let query = match policy::prepare(method, &request, admission.elements, today, remaining) {
            Ok(query) => query,
            Err(refusal) => return refuse(refusal),
        };
        match self.forward(institution, &query, admission.elements, dialect, (today, remaining), trail).await {
            Ok(reply) => {
                tracing::debug!(device = %device.name, user = %user.id, method = %method, "answered");
                reply
            }
            Err((status, message)) => {
                // The warehouse failed, not the caller: the unit goes back.
                tracing::warn!(institution = %institution.id, "upstream: {message} ({status})");
                let refunded = match self.ledger.refund_pending(today, &charges).await {
                    Ok(()) => {
                        trail.charged_on = None;
                        remaining + 1
                    }
                    Err(e) => {
                        tracing::error!("quota refund: {e}");
                        remaining
                    }
                };
                Reply::transport(dialect, status, &message, refunded)
            }
        }
    }

    async fn usage(&self, today: chrono::NaiveDate, user: Option<&User>, institution: Option<&Institution>) -> Usage {
        let mut subjects = Vec::new();
        if let Some(i) = institution {
            subjects.push(Charge { subject: Subject::Institution(i.id.as_str()), limit: 0 });
        }
        if let Some(u) = user {
            subjects.push(Charge { subject: Subject::User(u.id.as_str()), limit: 0 });
        }
        // A count that cannot be read counts as spent: the request is refused (05) rather than served unmetered.
        let used = self.ledger.used_async(today, &subjects).await.unwrap_or_else(|_| vec![u64::MAX; subjects.len()]);
        let mut used = used.into_iter();
        Usage {
            institution_used: if institution.is_some() { used.next().unwrap_or(u64::MAX) } else { 0 },
            user_used: if user.is_some() { used.next().unwrap_or(u64::MAX) } else { 0 },
        }
    }

    /// Answers from the cache when it holds the upstream's answer to this very request under the institution's
    /// upstream consumer, else calls upstream with the institution's credentials (keeping a cacheable answer), or
    /// waits for the call a concurrent identical request is making; either way the answer is shaped for the caller
    /// alike, with `remaining` (after this request) as its quota; the lookup is counted on `today`. `Err` is the
    /// upstream's failure (status and message), which the caller does not pay for.
    async fn forward(
        &self,
        institution: &Institution,
        query: &Query,
        granted: ElementSet,
        dialect: Dialect,
        (today, remaining): (chrono::NaiveDate, u64),
        trail: &mut Trail,
    ) -> Result<Reply, (StatusCode, String)> {
        let consumer = &institution.upstream.consumer_id;
        // Taken once: a switch or a rekey meanwhile reaches the next request, not this one.
        let store = self.gateway.cache().serving();
        let cache = store.as_deref().map(|cache| {
            let asked = Asked::new(institution.id.as_str(), consumer, query);
            (cache, cache.key(&asked), asked)
        });
        let fetched = self.gateway.now();
        let hit = cache.as_ref().and_then(|(cache, key, _)| cache.get(key, fetched));
        // What was stored was parsed before it was kept; one that no longer parses is a miss like any other.
        if let Some(parsed) = hit.and_then(|answer| envelope::parse(&answer).ok()) {
            trail.source = Source::Cache;
            self.gateway.cache().record(institution.id.as_str(), true, today);
            return shape(parsed, query, granted, dialect, remaining, trail);
        }
        trail.source = Source::Upstream;
        let flight = cache.as_ref().map(|(cache, key, _)| (*cache, *key));
        let fetch = self.fetch(institution, query, cache, fetched);
        let parsed = match flight {
            Some((cache, key)) => {
                self.gateway.cache().record(institution.id.as_str(), false, today);
                cache.once(&key, fetch).await
            }
            None => fetch.await,
        }?;
        shape(parsed, query, granted, dialect, remaining, trail)
    }

    /// Asks upstream with the institution's credentials and keeps a cacheable answer under `keep`, dated `fetched`.
    async fn fetch(
        &self,
        institution: &Institution,
        query: &Query,
        keep: Option<(&Cache, [u8; 32], Asked<'_>)>,
        fetched: chrono::DateTime<chrono::Utc>,
    ) -> Fetched {
        let Some(upstream) = &self.upstream else {
            let message = "Gateway belum dihubungkan ke gudang data (upstream tidak dikonfigurasi)";
            return Err((StatusCode::SERVICE_UNAVAILABLE, message.into()));
        };
        let mut body = query.upstream_request();
        body.user_id = Some(institution.upstream.user_id.clone());
        body.password = Some(institution.upstream.password.expose().to_string());
        let ticket = keep.as_ref().map(|(cache, ..)| cache.ticket(fetched));
        let reply = upstream
            .call(&institution.upstream.consumer_id, query.method(), body.to_body())
            .await
            .map_err(|failure| (failure.status, failure.message))?;
        let unreadable = || {
            (
                StatusCode::BAD_GATEWAY,
                format!("Jawaban gudang data tidak dapat dibaca (HTTP {})", reply.status.as_u16()),
            )
        };
        if reply.status != StatusCode::OK {
            return Err(unreadable());
        }
        let parsed = envelope::parse(&reply.body).map_err(|_| unreadable())?;
        if let (Some((cache, key, asked)), Some(ticket)) = (keep, ticket) {
            // Dated when it was asked for: the warehouse may have changed while the answer travelled, never before.
            cache.put(&key, &asked, &parsed, &reply.body, ticket);
        }
        Ok(parsed)
    }
}

/// The upstream's answer (fresh or cached) as the caller gets it: data cut to the agreement's grant, the outcomes
/// about a person passed through; `Err` when the upstream refused the gateway's own consumer.
fn shape(
    parsed: Envelope,
    query: &Query,
    granted: ElementSet,
    dialect: Dialect,
    remaining: u64,
    trail: &mut Trail,
) -> Result<Reply, (StatusCode, String)> {
    match parsed.outcome() {
        Outcome::Data => {
            let mut content = parsed.content;
            for item in &mut content {
                match query {
                    Query::Verify { claims, .. } => {
                        policy::cut_verdicts(item, claims.keys().copied().collect::<ElementSet>().intersection(granted))
                    }
                    Query::Aggregate { .. } => {}
                    Query::ByNik(_) | Query::Family(_) => policy::cut(item, granted),
                }
            }
            trail.returned =
                content.iter().flat_map(|item| item.keys()).filter_map(|name| Element::from_wire_name(name)).collect();
            Ok(Reply::data(render(&content, remaining)))
        }
        Outcome::Code(code) if policy::passes_through(code) => Ok(Reply::code(dialect, code, remaining)),
        Outcome::Code(code) => Err((
            StatusCode::BAD_GATEWAY,
            format!("Gudang data menolak konsumen gateway: {} {}", code.code(), code.description()),
        )),
        Outcome::Text(text) => Err((StatusCode::BAD_GATEWAY, format!("Gudang data menolak konsumen gateway: {text}"))),
    }
}

impl Dukcapil {
    /// Gives back the unit a request spent when its answer could not be delivered (its record could not be
    /// written, so it was never served).
    pub async fn withdraw(&self, trail: &Trail) {
        let (Some(institution), Some(user), Some(day)) = (&trail.institution, &trail.user, trail.charged_on) else {
            return;
        };
        let charges = [
            Charge { subject: Subject::Institution(institution), limit: u64::MAX },
            Charge { subject: Subject::User(user), limit: u64::MAX },
        ];
        if let Err(e) = self.ledger.refund_pending(day, &charges).await {
            tracing::error!("quota refund of an unserved request: {e}");
        }
    }
}

/// HTTP 429 with `Retry-After`, saying whose rate was exceeded (`whose`, in the wire's language).
fn rate_limited(dialect: Dialect, whose: &str, retry_after: u64, quota: u64) -> Reply {
    let message = format!("Terlalu banyak permintaan ({whose}); coba lagi dalam {retry_after} detik");
    let mut reply = Reply::transport(dialect, StatusCode::TOO_MANY_REQUESTS, &message, quota);
    reply.retry_after = Some(retry_after);
    reply
}

fn charges<'a>(institution: &'a Institution, user: &'a User) -> Vec<Charge<'a>> {
    let mut charges = vec![Charge {
        subject: Subject::Institution(institution.id.as_str()),
        limit: institution.agreement.daily_quota,
    }];
    if let Some(limit) = user.daily_quota {
        charges.push(Charge { subject: Subject::User(user.id.as_str()), limit });
    } else {
        // Counted even without a limit of its own, for the population office's view of who uses what.
        charges.push(Charge { subject: Subject::User(user.id.as_str()), limit: u64::MAX });
    }
    charges
}

/// How long a client may take to send its request before it is disconnected.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
