//! Consumers: the institutions registered with the warehouse, what each may call, from where and when, and the
//! check of their credentials.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use simpul_core::element::ElementSet;
use simpul_core::password::{PasswordHash, VerifiedCache};
use simpul_core::period::{Inverted, Period};
use simpul_core::wire::code::Dialect;
use simpul_core::wire::method::Method;
use simpul_core::wire::route::{parse_region, MethodMap};

use crate::tls::Fingerprint;

/// A consumer as written in the config file (`[[consumer]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// The CONSUMER_ID path segment of the central route style (`BPS`, `IDINSOS_3374`, or a 15-digit number).
    pub id: String,
    pub user_id: String,
    pub password_hash: PasswordHash,
    /// Client addresses or networks (`"10.1.2.3"`, `"10.1.0.0/16"`) the consumer may call from.
    pub allowed_addresses: Vec<AllowedAddress>,
    pub methods: BTreeSet<Method>,
    #[serde(default)]
    pub elements: ElementSet,
    /// Requests per local day, reported as `quotaLimiter`.
    pub daily_quota: u64,
    /// Local time window (`"07:00-17:00"`, or overnight `"22:00-06:00"`); absent means at any hour.
    #[serde(default)]
    pub access_hours: Option<AccessHours>,
    #[serde(default)]
    pub dialect: Dialect,
    /// Refuse requests that did not come with a client certificate verified against the server's `client_ca`.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Pins the client certificate: only a verified certificate with this SHA-256 is let in, so that another
    /// certificate from the same CA (another institution's) is not. Written `"AA:BB:…"` or as 64 hex digits, in any
    /// case (`simpul_tls::Fingerprint`). Implies `require_client_cert`.
    #[serde(default)]
    pub client_cert_sha256: Option<Fingerprint>,
    /// The older regional route style `/dukcapil/get_json/{region}/{userset}/{method}`: both or neither.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub userset: Option<String>,
    /// Institution-chosen last path segments, e.g. `{ cek_pasien = "CALL_NIK" }`.
    #[serde(default)]
    pub method_names: BTreeMap<String, Method>,
    /// The agreement (PKS) period, inclusive, in local days; outside it every request answers 16.
    #[serde(default, with = "crate::toml_date::option")]
    pub valid_from: Option<NaiveDate>,
    #[serde(default, with = "crate::toml_date::option")]
    pub valid_until: Option<NaiveDate>,
    /// Access suspended by the ministry (misuse): every request answers 16.
    #[serde(default)]
    pub suspended: bool,
    /// The consumer's user ID has been deactivated: every request answers 17.
    #[serde(default)]
    pub user_disabled: bool,
}

/// Why a consumer entry cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsumerError {
    #[error("consumer id {0:?} must be non-empty letters, digits, '_' or '-'")]
    BadId(String),
    #[error("consumer {0}: user_id must not be empty")]
    EmptyUser(String),
    #[error("consumer {0}: allowed_addresses is empty, so no client could call; use \"0.0.0.0/0\" to allow any")]
    NoAddresses(String),
    #[error("consumer {0}: methods is empty")]
    NoMethods(String),
    #[error("consumer {0}: region and userset go together (the regional route needs both)")]
    HalfRegional(String),
    #[error("consumer {0}: region {1:?} is not \"PP\" or \"PP-KK\"")]
    BadRegion(String, String),
    #[error("consumer {0}: method name {1:?} must be a non-empty path segment")]
    BadMethodName(String, String),
    #[error("consumer {0}: method name {1:?} maps to {2}, which is not in methods")]
    MethodNameNotGranted(String, String, Method),
    #[error("consumer id {0:?} is used twice (ids are matched case-insensitively)")]
    DuplicateId(String),
    #[error("region {0:?} with userset {1:?} is used by two consumers")]
    DuplicateRegional(String, String),
    #[error("consumer {0}: the agreement {1}")]
    EmptyValidity(String, Inverted),
}

impl ConsumerConfig {
    /// Whether requests must come with a verified client certificate.
    pub fn needs_client_cert(&self) -> bool {
        self.require_client_cert || self.client_cert_sha256.is_some()
    }

    /// Whether the agreement lets the consumer in on local day `today` (16 when not).
    pub fn agreement_active(&self, today: NaiveDate) -> bool {
        !self.suspended && self.period().contains(today)
    }

    /// The agreement's period; open where `valid_from` or `valid_until` is not given.
    pub fn period(&self) -> Period {
        Period::open(self.valid_from, self.valid_until)
    }

    pub fn validate(&self) -> Result<(), ConsumerError> {
        let id = &self.id;
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(ConsumerError::BadId(id.clone()));
        }
        if self.user_id.trim().is_empty() {
            return Err(ConsumerError::EmptyUser(id.clone()));
        }
        if self.allowed_addresses.is_empty() {
            return Err(ConsumerError::NoAddresses(id.clone()));
        }
        if self.methods.is_empty() {
            return Err(ConsumerError::NoMethods(id.clone()));
        }
        match (&self.region, &self.userset) {
            (None, None) => {}
            (Some(region), Some(userset)) => {
                if parse_region(region).is_none() {
                    return Err(ConsumerError::BadRegion(id.clone(), region.clone()));
                }
                if !is_segment(userset) {
                    return Err(ConsumerError::HalfRegional(id.clone()));
                }
            }
            _ => return Err(ConsumerError::HalfRegional(id.clone())),
        }
        self.period().check().map_err(|inverted| ConsumerError::EmptyValidity(id.clone(), inverted))?;
        for (name, method) in &self.method_names {
            if !is_segment(name) {
                return Err(ConsumerError::BadMethodName(id.clone(), name.clone()));
            }
            if !self.methods.contains(method) {
                return Err(ConsumerError::MethodNameNotGranted(id.clone(), name.clone(), *method));
            }
        }
        Ok(())
    }
}

fn is_segment(s: &str) -> bool {
    !s.trim().is_empty() && !s.contains('/')
}

/// One allowed client address or network; a bare address means just that host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedAddress(pub IpNet);

impl AllowedAddress {
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&canonical(addr))
    }
}

/// IPv4 peers arrive as `::ffff:a.b.c.d` on a dual-stack listener; compare them as the IPv4 they are.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for AllowedAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(AllowedAddress(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|addr| AllowedAddress(IpNet::from(addr)))
            .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))
    }
}

impl<'de> Deserialize<'de> for AllowedAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

pub use simpul_core::institution::AccessHours;

/// A registered consumer, its position (which keys per-consumer tables such as the quota ledger) and its method
/// names.
#[derive(Debug)]
pub struct Consumer {
    pub index: usize,
    pub config: ConsumerConfig,
    pub methods: MethodMap,
}

/// The registered consumers, looked up by either route style.
#[derive(Debug)]
pub struct Consumers {
    consumers: Vec<Consumer>,
}

impl Consumers {
    /// Checks every entry and that ids and regional routes are unique.
    pub fn new(configs: Vec<ConsumerConfig>) -> Result<Self, ConsumerError> {
        let mut ids = HashSet::new();
        let mut regional = HashSet::new();
        for c in &configs {
            c.validate()?;
            if !ids.insert(c.id.to_ascii_uppercase()) {
                return Err(ConsumerError::DuplicateId(c.id.clone()));
            }
            if let (Some(region), Some(userset)) = (&c.region, &c.userset) {
                if !regional.insert((parse_region(region), userset.to_ascii_lowercase())) {
                    return Err(ConsumerError::DuplicateRegional(region.clone(), userset.clone()));
                }
            }
        }
        let consumers = configs
            .into_iter()
            .enumerate()
            .map(|(index, config)| {
                let methods = MethodMap::new(config.method_names.clone());
                Consumer { index, config, methods }
            })
            .collect();
        Ok(Consumers { consumers })
    }

    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }

    /// The consumer of a central-style path; ids compare case-insensitively, as method names do.
    pub fn by_id(&self, id: &str) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.config.id.eq_ignore_ascii_case(id))
    }

    /// The consumer of a regional-style path; usersets compare case-insensitively.
    pub fn by_region(&self, region: &str, userset: &str) -> Option<&Consumer> {
        let region = parse_region(region)?;
        self.consumers.iter().find(|c| {
            c.config.region.as_deref().and_then(parse_region) == Some(region)
                && c.config.userset.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(userset))
        })
    }

    /// Whether any consumer lists the address: the legacy dialect tells "not registered at all" apart from
    /// "registered, but for another consumer".
    pub fn address_registered(&self, addr: IpAddr) -> bool {
        self.consumers.iter().any(|c| c.config.allowed_addresses.iter().any(|a| a.contains(addr)))
    }
}

/// How long a verified consumer password is taken as verified: the warehouse's consumers are machines calling all
/// day, so this only bounds how long a changed password keeps working in memory.
const VERIFIED_FOR: Duration = Duration::from_secs(5 * 60);

/// Checks consumers' passwords against their argon2 hashes, remembering successes in a [`VerifiedCache`] (see there
/// why, and why that is safe).
///
/// An unknown user ID is verified too, against a dummy hash with the consumer's argon2 parameters
/// ([`PasswordHash::dummy_like`]), so that it costs what a wrong password costs: otherwise the time of the answer
/// would tell which user IDs exist.
#[derive(Debug)]
pub struct CredentialCache {
    verified: VerifiedCache,
    /// Per consumer index; consumers with the same parameters share one (hashing it costs as much as a login).
    dummies: Vec<PasswordHash>,
}

impl CredentialCache {
    /// Makes the dummy hashes up front, one per set of parameters in use, so that no request pays for one.
    pub fn new(consumers: &Consumers) -> Self {
        let mut by_cost = HashMap::new();
        let dummies = consumers
            .consumers
            .iter()
            .map(|c| {
                let stored = &c.config.password_hash;
                by_cost.entry(stored.cost()).or_insert_with(|| stored.dummy_like()).clone()
            })
            .collect();
        CredentialCache { verified: VerifiedCache::new(VERIFIED_FOR, consumers.consumers.len().max(1) * 16), dummies }
    }

    /// Whether `password` is right for `consumer`'s `user_id`; runs argon2 on a blocking thread when not cached.
    pub async fn check(&self, consumer: &Consumer, user_id: &str, password: &str) -> bool {
        let stored = &consumer.config.password_hash;
        let known = user_id == consumer.config.user_id;
        if known && self.verified.is_verified(user_id, password, stored, Instant::now()) {
            return true;
        }
        let hash = self.hash_to_verify(consumer, user_id).clone();
        let owned = password.to_owned();
        let verified = tokio::task::spawn_blocking(move || hash.verify(&owned)).await.unwrap_or(false);
        let ok = known && verified;
        if ok {
            self.verified.remember(user_id, password, stored, Instant::now());
        }
        ok
    }

    /// The consumer's hash for its user ID, the dummy for any other.
    fn hash_to_verify<'a>(&'a self, consumer: &'a Consumer, user_id: &str) -> &'a PasswordHash {
        if user_id == consumer.config.user_id {
            &consumer.config.password_hash
        } else {
            &self.dummies[consumer.index]
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use simpul_core::password::{Params, DUMMY_PASSWORD};

    /// Cheap argon2 parameters: these tests are about the logic, not the cost.
    pub(crate) fn cheap_hash(password: &str) -> PasswordHash {
        PasswordHash::hash_with(password, Params::new(256, 1, 1, None).unwrap())
    }

    fn consumer(id: &str) -> ConsumerConfig {
        toml::from_str(&format!(
            r#"
            id = "{id}"
            user_id = "u_{id}"
            password_hash = "{}"
            allowed_addresses = ["10.1.0.0/16", "192.168.1.7"]
            methods = ["CALL_NIK"]
            elements = ["NIK", "NAMA_LGKP"]
            daily_quota = 10
            "#,
            cheap_hash("pw").as_phc()
        ))
        .unwrap()
    }

    #[test]
    fn password_hash_is_masked_in_the_config_and_checked_at_load() {
        assert!(!format!("{:?}", consumer("A")).contains("argon2"));
        let config = |hash: &str| {
            toml::from_str::<ConsumerConfig>(&format!(
                "id = \"A\"\nuser_id = \"a\"\npassword_hash = \"{hash}\"\nallowed_addresses = [\"10.0.0.1\"]\n\
                 methods = [\"CALL_NIK\"]\ndaily_quota = 1"
            ))
        };
        let hash = cheap_hash("secret");
        assert_eq!(config(hash.as_phc()).unwrap().password_hash, hash);
        let err = config("$argon2id$v=19$m=256,t=1,p=1").unwrap_err().to_string();
        assert!(err.contains("no salt or no hash"), "{err}");
    }

    #[test]
    fn allowed_addresses_take_hosts_and_networks_and_mapped_ipv4() {
        let table = [
            ("10.1.0.0/16", "10.1.200.3", true),
            ("10.1.0.0/16", "10.2.0.1", false),
            ("10.1.2.3/16", "10.1.9.9", true),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("::1", "::1", true),
            ("0.0.0.0/0", "203.0.113.9", true),
        ];
        for (allowed, peer, want) in table {
            let a: AllowedAddress = allowed.parse().unwrap();
            assert_eq!(a.contains(peer.parse().unwrap()), want, "{allowed} ∋ {peer}");
        }
        assert!("10.1.0.0/33".parse::<AllowedAddress>().is_err());
        assert!("localhost".parse::<AllowedAddress>().is_err());
    }

    #[test]
    fn regional_routes_match_whatever_form_config_and_path_use() {
        let regional = |id: &str, region: &str| {
            let mut c = consumer(id);
            c.region = Some(region.into());
            c.userset = Some("rsud".into());
            c
        };
        let consumers = Consumers::new(vec![regional("KAB", "32.76"), regional("PROV", "33")]).unwrap();
        let found = |region: &str, userset: &str| consumers.by_region(region, userset).map(|c| c.config.id.as_str());
        for (region, userset, want) in [
            ("32-76", "rsud", Some("KAB")),
            ("3276", "RSUD", Some("KAB")),
            ("32.76", "rsud", Some("KAB")),
            ("33", "rsud", Some("PROV")),
            ("33-01", "rsud", None),
            ("32-76", "other", None),
            ("32-7", "rsud", None),
        ] {
            assert_eq!(found(region, userset), want, "{region}/{userset}");
        }
        // The same rules as the router: a code the path could never carry is refused at load, not silently unused.
        assert!(matches!(regional("X", "32-7").validate(), Err(ConsumerError::BadRegion(..))));
        assert!(matches!(
            Consumers::new(vec![regional("A", "32-76"), regional("B", "3276")]),
            Err(ConsumerError::DuplicateRegional(..))
        ));
    }

    #[test]
    fn validation_catches_each_mistake() {
        let ok = consumer("BPS");
        assert_eq!(ok.validate(), Ok(()));
        type Spoil = fn(&mut ConsumerConfig);
        let cases: Vec<(Spoil, &str)> = vec![
            (|c| c.id = "B P S".into(), "consumer id"),
            (|c| c.user_id = " ".into(), "user_id"),
            (|c| c.allowed_addresses.clear(), "allowed_addresses"),
            (|c| c.methods.clear(), "methods is empty"),
            (|c| c.region = Some("32-76".into()), "go together"),
            (
                |c| {
                    c.region = Some("3x".into());
                    c.userset = Some("rs".into());
                },
                "region",
            ),
            (
                |c| {
                    c.method_names.insert("".into(), Method::CallNik);
                },
                "method name",
            ),
            (
                |c| {
                    c.method_names.insert("agg".into(), Method::CallAgregat);
                },
                "not in methods",
            ),
            (
                |c| {
                    c.valid_from = Some("2026-07-01".parse().unwrap());
                    c.valid_until = Some("2026-06-30".parse().unwrap());
                },
                "the agreement ends (2026-06-30) before it starts (2026-07-01)",
            ),
        ];
        for (spoil, want) in cases {
            let mut c = ok.clone();
            spoil(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<ConsumerConfig>("id = \"A\"\nquota = 3").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn lookup_by_id_and_region_and_uniqueness() {
        let mut rs = consumer("RSUD");
        rs.region = Some("32-76".into());
        rs.userset = Some("rsud_3276".into());
        let consumers = Consumers::new(vec![consumer("BPS"), rs.clone()]).unwrap();
        assert_eq!(consumers.by_id("bps").unwrap().config.id, "BPS");
        assert_eq!(consumers.by_id("RSUD").unwrap().index, 1);
        assert!(consumers.by_id("BPSX").is_none());
        assert_eq!(consumers.by_region("32-76", "RSUD_3276").unwrap().config.id, "RSUD");
        assert!(consumers.by_region("32-77", "rsud_3276").is_none());
        assert!(consumers.by_region("32", "rsud_3276").is_none());
        assert!(consumers.address_registered("192.168.1.7".parse().unwrap()));
        assert!(!consumers.address_registered("192.168.1.8".parse().unwrap()));

        let dup_id = Consumers::new(vec![consumer("BPS"), consumer("bps")]).unwrap_err();
        assert_eq!(dup_id, ConsumerError::DuplicateId("bps".into()));
        let mut rs2 = rs.clone();
        rs2.id = "RS2".into();
        rs2.region = Some("32-76".into());
        assert!(matches!(Consumers::new(vec![rs, rs2]), Err(ConsumerError::DuplicateRegional(..))));
    }

    #[tokio::test]
    async fn credentials_are_checked_and_only_successes_cached() {
        let consumers = Consumers::new(vec![consumer("BPS")]).unwrap();
        let c = consumers.by_id("BPS").unwrap();
        let cache = CredentialCache::new(&consumers);
        assert!(!cache.check(c, "u_BPS", "wrong").await);
        assert!(!cache.check(c, "someone", "pw").await);
        assert!(cache.verified.is_empty());
        assert!(cache.check(c, "u_BPS", "pw").await);
        assert_eq!(cache.verified.len(), 1);
        assert!(cache.verified.is_verified("u_BPS", "pw", &c.config.password_hash, Instant::now()));
        assert!(cache.check(c, "u_BPS", "pw").await);
        assert!(!cache.check(c, "u_BPS", "pw ").await);
        assert_eq!(cache.verified.len(), 1);
    }

    #[tokio::test]
    async fn an_unknown_user_costs_a_verification_like_a_wrong_password() {
        let mut costly = consumer("B");
        costly.password_hash = PasswordHash::hash("pw");
        let consumers = Consumers::new(vec![consumer("A"), costly, consumer("C")]).unwrap();
        let cache = CredentialCache::new(&consumers);
        for id in ["A", "B", "C"] {
            let c = consumers.by_id(id).unwrap();
            let stored = &c.config.password_hash;
            assert!(std::ptr::eq(cache.hash_to_verify(c, &c.config.user_id), stored));
            let dummy = cache.hash_to_verify(c, "someone");
            assert_ne!(dummy, stored);
            assert_eq!(dummy.cost(), stored.cost(), "{id}: the same algorithm, version, parameters and length");
            // The dummy's own password verifies against it, yet the unknown user is refused.
            assert!(dummy.verify(DUMMY_PASSWORD));
            assert!(!cache.check(c, "someone", DUMMY_PASSWORD).await);
        }
        // Cheap and default parameters differ, and the three consumers share two dummies.
        let a = cache.hash_to_verify(consumers.by_id("A").unwrap(), "x");
        assert_ne!(a.cost(), cache.hash_to_verify(consumers.by_id("B").unwrap(), "x").cost());
        assert_eq!(a, cache.hash_to_verify(consumers.by_id("C").unwrap(), "x"));
        assert!(cache.verified.is_empty());
    }
}
