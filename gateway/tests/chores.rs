//! The gateway's periodic chores (`chores.rs`) on tokio's paused clock, over a real gateway: the sled store, the
//! directory and registry, the audit writer, the quota ledger, the rate limiters and a userspace tunnel, assembled as
//! `run` assembles them, with a [`ManualClock`] for the date. Admin changes are made before a chore starts (the audit
//! writer is a thread, and tokio moves a paused clock while a task waits on one), and a chore's wait on the writer is
//! waited out with the clock held ([`writer_done`]); otherwise the test looks only between the ticks, a second or
//! more from them, as the notary's test does (ledger/tests/notary.rs). The periods are written out here, not read
//! from the code under test: a changed period fails these tests.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use governor::clock::FakeRelativeClock;
use simpul_core::audit::record::{Outcome, RequestRecord, Source};
use simpul_core::clock::ManualClock;
use simpul_core::element::ElementSet;
use simpul_core::institution::Secret;
use simpul_core::wire::method::Method;
use simpul_gateway::admin::cache::Tally;
use simpul_gateway::admin::device::DeviceAdd;
use simpul_gateway::admin::gateway::Status;
use simpul_gateway::admin::institution::{InstitutionAdd, InstitutionFields};
use simpul_gateway::admin::user::{UserAdd, UserFields};
use simpul_gateway::admin::{Answer, Request};
use simpul_gateway::api::dukcapil::Dukcapil;
use simpul_gateway::cache::{CacheHandle, CACHE_KEY};
use simpul_gateway::chores;
use simpul_gateway::config::{AuditConfig, GatewayConfig, Mode, TunnelConfig};
use simpul_gateway::devices::Registry;
use simpul_gateway::directory::Directory;
use simpul_gateway::limits::quota::{Charge, QuotaLedger, Subject};
use simpul_gateway::limits::rate::{RateClock, RateLimits};
use simpul_gateway::seal::Sealer;
use simpul_gateway::service::{Face, Gateway, Parts};
use simpul_gateway::state_dir::{self, DATABASE, STORE_KEY};
use simpul_gateway::store::{Actor, Store};
use simpul_ledger::{AuditLog, Auditor, Files, Identifier, Ledger};
use simpul_tunnel::netstack::{self, NetstackConfig};
use simpul_tunnel::{Engine, EngineConfig, TunnelHandle};
use tempfile::TempDir;
use tokio::time::{sleep_until, Instant};

/// The day the tests start on, at 10:00 in Jakarta.
const TODAY: &str = "2026-07-15";

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Just past local midnight (UTC+7) at the start of `day`.
fn just_past_midnight(day: &str) -> DateTime<Utc> {
    date(day).and_hms_opt(0, 0, 1).unwrap().and_local_timezone(chrono_tz::Asia::Jakarta).unwrap().to_utc()
}

/// The gateway's userspace tunnel, its driver spawned on the current runtime.
fn start_tunnel(t: &TunnelConfig, key: simpul_tunnel::PrivateKey) -> TunnelHandle {
    let socket = std::net::UdpSocket::bind(t.listen).unwrap();
    let (face, _stack) = netstack::new(NetstackConfig {
        address: IpAddr::V4(t.address),
        prefix_len: t.network.prefix_len(),
        mtu: usize::from(t.mtu),
        ..NetstackConfig::default()
    })
    .unwrap();
    TunnelHandle::spawn(socket, Engine::new(key, EngineConfig::default()), face).unwrap().0
}

/// A gateway assembled from its real parts in a fresh state directory, as `run` assembles it (userspace face, no
/// nftables: the drop set is still kept, and `status` counts it).
struct World {
    gateway: Arc<Gateway>,
    api: Arc<Dukcapil>,
    ledger: QuotaLedger,
    log: Arc<AuditLog>,
    clock: Arc<ManualClock>,
    rate_clock: FakeRelativeClock,
    _dir: TempDir,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let config = GatewayConfig {
            state_dir: Some(dir.path().join("state")),
            tunnel: TunnelConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                mode: Mode::Userspace,
                ..Default::default()
            },
            audit: AuditConfig { personal_data_days: 30, ..Default::default() },
            ..GatewayConfig::default()
        };
        config.validate().expect("a valid config");
        let clock = Arc::new(ManualClock::new(utc("2026-07-15T03:00:00Z")));
        let rate_clock = FakeRelativeClock::default();

        let state = config.state_dir();
        state_dir::prepare(&state).unwrap();
        let key = state_dir::load_or_generate_key(&state).unwrap();
        let sealer = Sealer::new(simpul_files::load_or_generate_secret(&state.join(STORE_KEY)).unwrap());
        let store = Store::open(&state.join(DATABASE), sealer).unwrap();
        let Ledger { log, notary, personal } =
            Ledger::open(store.db(), store.flusher(), &Files::new(&state), None).unwrap();
        let auditor = Auditor::start(log.clone(), store.clone(), personal, config.timezone.0).unwrap();
        let ledger = QuotaLedger::new(store.db(), store.flusher()).unwrap();
        let rates = RateLimits::with_clock(&config.rate, RateClock::Manual(rate_clock.clone())).unwrap();
        let registry = Registry::load(store.clone(), config.address_plan(), key.public_key()).unwrap();
        let directory = Directory::load(store.clone()).unwrap();

        let tunnel = start_tunnel(&config.tunnel, key);
        let parts = Parts {
            config,
            face: Face::Userspace,
            clock: clock.clone(),
            store,
            registry,
            directory,
            tunnel,
            firewall: None,
            blocked: Default::default(),
            auditor,
            notary,
        };
        let gateway = Arc::new(Gateway::new(parts));
        let api = Arc::new(Dukcapil::new(gateway.clone(), ledger.clone(), rates, None));
        World { gateway, api, ledger, log, clock, rate_clock, _dir: dir }
    }

    async fn admin(&self, op: impl Into<Request>) -> Answer {
        let actor = Actor::System { task: "test".into() };
        self.gateway.handle(op.into(), actor).await.unwrap_or_else(|e| panic!("{}", e.message))
    }

    /// An institution in force from `from` through `until`, its user and that user's device.
    async fn institution_with_device(&self, id: &str, from: &str, until: &str, nik: &str) {
        let fields = InstitutionFields {
            name: Some(format!("Dinas {id}")),
            region: Some("33.74".parse().unwrap()),
            agreement_number: Some(format!("470/{id}/PKS/2026")),
            valid_from: Some(date(from)),
            valid_until: Some(date(until)),
            methods: Some([Method::CallNik].into_iter().collect()),
            elements: Some(ElementSet::all()),
            daily_quota: Some(100),
            upstream_consumer: Some(id.into()),
            upstream_user: Some(format!("{id}-gateway")),
            upstream_password: Some(Secret::new("sandi-hulu")),
            ..InstitutionFields::default()
        };
        self.admin(InstitutionAdd { id: id.parse().unwrap(), fields }).await;
        let user = format!("op-{}", id.to_lowercase());
        let fields = UserFields {
            institution: Some(id.parse().unwrap()),
            name: Some(format!("Operator {id}")),
            nik: Some(nik.into()),
            nip: Some("198703102010011001".into()),
            position: Some("Analis Data".into()),
            office_region: Some("33.74.04".parse().unwrap()),
            application_user: Some(user.clone()),
            daily_quota: None,
        };
        self.admin(UserAdd { id: user.parse().unwrap(), fields, password: Secret::new("kata-sandi-rahasia") }).await;
        let device = format!("laptop-{}", id.to_lowercase());
        self.admin(DeviceAdd {
            name: device.parse().unwrap(),
            user: user.parse().unwrap(),
            address: None,
            public_key: None,
        })
        .await;
    }

    /// How many addresses the firewall's drop set holds, as `status` tells it.
    async fn blocked(&self) -> usize {
        match self.admin(Status {}).await {
            Answer::Status(status) => status.devices.blocked,
            other => panic!("status answered {other:?}"),
        }
    }

    /// Whether the audit log still links `nik` to its records (its personal data is kept).
    fn linked(&self, nik: &str) -> bool {
        let id = Identifier::Nik(nik.into());
        self.gateway.auditor().personal().commitment(&self.log, &id).unwrap().is_some()
    }

    fn used(&self, day: NaiveDate) -> u64 {
        self.ledger.used(day, Subject::Institution("DINSOS")).unwrap()
    }
}

/// Waits until the audit writer has done every job queued so far, with tokio's clock held still: tokio does not move
/// a paused clock while a blocking task runs, and the writer takes jobs in order.
async fn writer_done(w: &World) {
    let (auditor, runtime) = (w.gateway.auditor().clone(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || runtime.block_on(auditor.mirror_admin())).await.unwrap().unwrap();
}

/// Waits for housekeeping's first round, which runs at once and waits on the audit writer for retention.
async fn first_round(w: &World, start: Instant) {
    tokio::task::yield_now().await;
    writer_done(w).await;
    assert_eq!(Instant::now(), start, "the clock stood still while the first round ran");
}

/// A request that looked `nik` up.
fn lookup(nik: &str) -> RequestRecord {
    RequestRecord {
        request_id: format!("req-{nik}"),
        institution: Some("DINSOS".into()),
        user: Some("budi".into()),
        device: "laptop-1".into(),
        tunnel_source: "10.77.0.2".into(),
        ip_claim: None,
        route: "/dukcapil/get_json/DINSOS/CALL_NIK".into(),
        method: Some(Method::CallNik),
        elements_requested: ElementSet::all(),
        elements_returned: ElementSet::all(),
        outcome: Outcome::Data,
        source: Source::Upstream,
        quota_charged: true,
        latency_us: 900,
        bytes_in: 200,
        bytes_out: 1_000,
        subjects: Vec::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_drop_set_follows_the_date_within_thirty_seconds_of_local_midnight() {
    let w = World::new().await;
    // DINSOS's agreement runs through tomorrow; BAPPEDA's starts tomorrow, so its device is dropped today.
    w.institution_with_device("DINSOS", "2026-01-01", "2026-07-16", "3374041003870006").await;
    w.institution_with_device("BAPPEDA", "2026-07-16", "2026-12-31", "3374041003870014").await;
    assert_eq!(w.blocked().await, 1, "the admin change itself dropped BAPPEDA's device");

    // The sync ticks at 0, 30, 60... s; the test looks a second either side of the ticks.
    let start = Instant::now();
    let at = |secs| start + Duration::from_secs(secs);
    let running = tokio::spawn(chores::sync_firewall(w.gateway.clone()));
    sleep_until(at(15)).await;
    assert_eq!(w.blocked().await, 1);

    // Midnight: BAPPEDA's agreement begins, and nobody acts.
    w.clock.set(just_past_midnight("2026-07-16"));
    sleep_until(at(29)).await;
    assert_eq!(w.blocked().await, 1, "nothing changes before the next tick");
    sleep_until(at(31)).await;
    assert_eq!(w.blocked().await, 0, "the tick at 30 s let BAPPEDA's device through");

    // The next midnight: DINSOS's agreement has ended, and its device is dropped at the next tick.
    w.clock.set(just_past_midnight("2026-07-17"));
    sleep_until(at(59)).await;
    assert_eq!(w.blocked().await, 0, "nothing changes before the next tick");
    sleep_until(at(61)).await;
    assert_eq!(w.blocked().await, 1, "the tick at 60 s dropped DINSOS's device");
    running.abort();
}

#[tokio::test(start_paused = true)]
async fn housekeeping_forgets_idle_rate_limit_keys_every_minute() {
    let w = World::new().await;
    let limits = w.api.rates();
    let start = Instant::now();
    let at = |secs| start + Duration::from_secs(secs);
    let running = tokio::spawn(chores::housekeep(w.api.clone(), w.ledger.clone()));
    first_round(&w, start).await;
    for minute in 0..3 {
        // Active at half past the minute, idle a moment later (the rate clock moves apart from tokio's).
        sleep_until(at(minute * 60 + 30)).await;
        limits.check("budi", "DINSOS").unwrap();
        assert_eq!(limits.tracked(), (0, 1, 1));
        w.rate_clock.advance(Duration::from_secs(60));
        sleep_until(at(minute * 60 + 59)).await;
        assert_eq!(limits.tracked(), (0, 1, 1), "kept until the next minute's tick");
        sleep_until(at(minute * 60 + 61)).await;
        assert_eq!(limits.tracked(), (0, 0, 0), "forgotten at the tick of minute {}", minute + 1);
    }
    running.abort();
}

/// Today's cache counts are kept in the database every minute while the gateway runs, not only when it stops: what a
/// gateway started on the same database would count (the running one never stops here) follows at each tick.
#[tokio::test(start_paused = true)]
async fn housekeeping_keeps_todays_cache_counts_every_minute() {
    let w = World::new().await;
    let today = w.gateway.today();
    let kept = || {
        let config = w.gateway.config();
        let validity = simpul_core::cache::Validity {
            consolidation: config.cache.consolidation.clone(),
            not_found_ttl: config.cache.not_found_ttl(),
            zone: config.timezone.0,
        };
        let key_file = config.state_dir().join(CACHE_KEY);
        let db = w.gateway.store().db();
        CacheHandle::open(db, key_file, validity, config.cache.max_bytes, true, today).counts(today).1
    };
    let start = Instant::now();
    let at = |secs| start + Duration::from_secs(secs);
    let running = tokio::spawn(chores::housekeep(w.api.clone(), w.ledger.clone()));
    first_round(&w, start).await;
    for minute in 1..3 {
        sleep_until(at(minute * 60 - 30)).await;
        w.gateway.cache().record("DINSOS", true, today);
        sleep_until(at(minute * 60 - 1)).await;
        assert_eq!(kept().get("DINSOS").map_or(0, |t| t.hits), minute - 1, "not before the tick");
        sleep_until(at(minute * 60 + 1)).await;
        assert_eq!(kept()["DINSOS"], Tally { hits: minute, misses: 0 }, "kept at the tick of minute {minute}");
    }
    running.abort();
}

#[tokio::test(start_paused = true)]
async fn housekeeping_prunes_old_quota_days_and_destroys_personal_data_every_hour() {
    let w = World::new().await;
    // Looked up today, and (as the writer is told) a month from now.
    let (old, fresh) = ("3374040101800001", "3374040101800002");
    let auditor = w.gateway.auditor();
    auditor.record(utc("2026-07-15T03:00:00Z"), lookup(old), vec![Identifier::Nik(old.into())]).await.unwrap();
    auditor.record(utc("2026-08-15T03:00:00Z"), lookup(fresh), vec![Identifier::Nik(fresh.into())]).await.unwrap();

    let start = Instant::now();
    let at = |secs| start + Duration::from_secs(secs);
    let running = tokio::spawn(chores::housekeep(w.api.clone(), w.ledger.clone()));
    first_round(&w, start).await;
    sleep_until(at(30)).await;
    assert!(w.linked(old) && w.linked(fresh), "nothing is past retention (30 days) today, {TODAY}");

    // A month later: `old` was last used 31 days ago; of two quota days, one is 63 days old, past the 62 kept.
    w.clock.set(utc("2026-08-15T03:00:00Z"));
    let (pruned, kept) = (date("2026-06-13"), date("2026-06-14"));
    for day in [pruned, kept] {
        w.ledger.spend(day, &[Charge { subject: Subject::Institution("DINSOS"), limit: 100 }]).unwrap();
    }
    for minute in [1, 30, 59] {
        sleep_until(at(minute * 60 + 30)).await;
        assert_eq!((w.used(pruned), w.used(kept)), (1, 1), "minute {minute}: nothing goes before the hour");
        assert!(w.linked(old), "minute {minute}: nothing goes before the hour");
    }
    sleep_until(at(60 * 60 + 30)).await;
    // The hour's retention waits on the audit writer.
    writer_done(&w).await;
    assert_eq!((w.used(pruned), w.used(kept)), (0, 1), "the hour's tick pruned the day past keeping");
    assert!(!w.linked(old), "the hour's tick destroyed the personal data past retention");
    assert!(w.linked(fresh), "and kept what is within it");
    running.abort();
}
