//! The gateway's TOML config (`configs/gateway.toml`): unknown keys are errors, `validate` catches what serde cannot,
//! and `check` (what `run` and `check-config` both run) reads the files the config names, before anything binds.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Deserialize;
use simpul_core::cache::Consolidation;
use simpul_core::clock::TimeZone;
use simpul_core::password::{BackoffPolicy, DEFAULT_BACKOFF};
use simpul_core::wire::code::Dialect;

use crate::limits::rate::{RateConfig, RateError};
use crate::upstream::{Upstream, UpstreamConfig, UpstreamError};
use simpul_core::device::AddressPlan;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Private key, device database and management socket [default: /var/lib/simpul-gateway as root, else
    /// ~/.local/state/simpul-gateway].
    pub state_dir: Option<PathBuf>,
    /// The zone access hours, agreement dates and daily quotas are counted in [default: Asia/Jakarta].
    pub timezone: TimeZone,
    pub tunnel: TunnelConfig,
    pub api: ApiConfig,
    /// The warehouse (or a relay) data requests go to; without it they are answered 503.
    pub upstream: Option<UpstreamConfig>,
    /// Requests per second per user and per institution.
    pub rate: RateConfig,
    pub audit: AuditConfig,
    pub cache: CacheConfig,
}

/// The local warehouse cache (`crate::cache`; the rules are `simpul_core::cache`'s).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Whether repeat requests are answered from the cache; off, every request goes upstream.
    pub enabled: bool,
    /// The days (MM-DD, in `timezone`) the warehouse consolidates: an answer is kept until 00:00 of the next one.
    pub consolidation: Vec<Consolidation>,
    /// How long a "not found" (13) answer is kept, in seconds (0: not kept).
    pub not_found_ttl_seconds: u64,
    /// The most the entries may take, sealed, in bytes: past it new answers are not kept (those kept stay until they
    /// expire or are purged).
    pub max_bytes: u64,
}

/// 1 GiB: some two million answers about one person each.
const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// The longest "not found" lifetime `[cache]` accepts: a year (entries end at the next consolidation anyway).
const MAX_NOT_FOUND_TTL_SECONDS: u64 = 366 * 24 * 3600;

impl CacheConfig {
    pub fn not_found_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.not_found_ttl_seconds.min(MAX_NOT_FOUND_TTL_SECONDS) as i64)
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        let day = |s: &str| s.parse().expect("a valid day");
        Self {
            enabled: true,
            consolidation: vec![day("06-30"), day("12-31")],
            not_found_ttl_seconds: 3600,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// The audit log: its checkpoints' name and how long personal data behind its records is kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The first line of every checkpoint and the signing key's name, e.g. "simpul.kominfo.semarangkota.go.id/audit"
    /// [default: "simpul.gateway/" and the key's ID].
    pub origin: Option<String>,
    /// Days a person's NIK-to-record link (salt) is kept after its last use; then it is destroyed and the records,
    /// which stay, no longer lead to the person.
    pub personal_data_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        // Two semesters of monev plus the months an objection or audit may take.
        Self { origin: None, personal_data_days: 730 }
    }
}

/// How inner packets reach the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A kernel TUN device when running as root (with nftables guarding it), else the userspace network stack.
    #[default]
    Auto,
    /// The kernel TUN device; needs CAP_NET_ADMIN.
    Tun,
    /// TCP terminated inside the process: no TUN, no root, no nftables needed.
    Userspace,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TunnelConfig {
    /// The UDP address WireGuard listens on.
    pub listen: SocketAddr,
    /// The tunnel network device addresses come from.
    pub network: Ipv4Net,
    /// The gateway's own address in that network, where the API listens.
    pub address: Ipv4Addr,
    /// The TUN device's name.
    pub interface: String,
    pub mtu: u16,
    /// The host:port operator laptops dial, written into exported configs.
    pub endpoint: Option<String>,
    /// Seconds between keepalives the exported configs ask clients to send (0 = none); keeps NAT mappings open.
    pub persistent_keepalive: u16,
    pub mode: Mode,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 51820)),
            network: Ipv4Net::new(Ipv4Addr::new(10, 77, 0, 0), 16).expect("a valid prefix"),
            address: Ipv4Addr::new(10, 77, 0, 1),
            interface: "simpul0".into(),
            mtu: 1420,
            endpoint: None,
            persistent_keepalive: 25,
            mode: Mode::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// The TCP port on the tunnel address (OPD applications already use 8000).
    pub port: u16,
    /// The dialect of answers to a device whose user or institution is no longer on record. Every other answer is
    /// in the dialect of the device's institution.
    pub default_dialect: Dialect,
    /// How many password checks (argon2, about 19 MiB and tens of milliseconds each) run at once; others wait.
    /// Unset: the number of CPUs, at most 4.
    pub password_checks: Option<usize>,
    /// Wrong passwords for one user id from one device before its next checks wait.
    pub backoff_after_failures: u32,
    /// The first wait after them, in seconds; each further failure doubles it, up to `backoff_max_seconds`.
    pub backoff_first_seconds: u64,
    pub backoff_max_seconds: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            port: 8000,
            default_dialect: Dialect::Coded,
            password_checks: None,
            backoff_after_failures: DEFAULT_BACKOFF.failures_before_wait,
            backoff_first_seconds: DEFAULT_BACKOFF.first_wait.as_secs(),
            backoff_max_seconds: DEFAULT_BACKOFF.max_wait.as_secs(),
        }
    }
}

impl ApiConfig {
    /// The password checks that may run at once.
    pub fn password_checks(&self) -> usize {
        self.password_checks.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
    }

    /// How failed password checks slow down the next ones (the rest of [`DEFAULT_BACKOFF`] is not configurable).
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy {
            failures_before_wait: self.backoff_after_failures,
            first_wait: Duration::from_secs(self.backoff_first_seconds),
            max_wait: Duration::from_secs(self.backoff_max_seconds),
            ..DEFAULT_BACKOFF
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("tunnel.address {address} is not inside tunnel.network {network}")]
    AddressOutsideNetwork { address: Ipv4Addr, network: Ipv4Net },
    #[error("tunnel.address {0} is the network's network or broadcast address")]
    AddressReserved(Ipv4Addr),
    #[error("tunnel.network {0} leaves no room for devices (use a prefix of /30 or shorter)")]
    NetworkTooSmall(Ipv4Net),
    #[error("tunnel.interface {0:?} must be 1 to 15 letters, digits, '_' or '-'")]
    Interface(String),
    #[error("tunnel.mtu {0} is outside 1280..=9000")]
    Mtu(u16),
    #[error("tunnel.endpoint {0:?} must be host:port")]
    Endpoint(String),
    #[error("api.port must not be 0")]
    ApiPort,
    #[error("api.password_checks must be 1 to 64")]
    PasswordChecks,
    #[error(
        "api.backoff_after_failures and api.backoff_first_seconds must be at least 1, and the first wait at most \
         api.backoff_max_seconds"
    )]
    Backoff,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Rate(#[from] RateError),
    #[error("audit.origin {0:?} must be non-empty, without spaces or '+'")]
    AuditOrigin(String),
    #[error("audit.personal_data_days must be at least 1")]
    PersonalDataDays,
    #[error("cache.consolidation must name at least one day while the cache is enabled")]
    NoConsolidation,
    #[error("cache.max_bytes must be more than 0 (to keep nothing, set cache.enabled = false)")]
    CacheMaxBytes,
    #[error("cache.not_found_ttl_seconds must be at most {MAX_NOT_FOUND_TTL_SECONDS} (a year)")]
    NotFoundTtl,
}

impl GatewayConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.tunnel;
        if !t.network.contains(&t.address) {
            return Err(ConfigError::AddressOutsideNetwork { address: t.address, network: t.network });
        }
        if t.network.prefix_len() > 30 {
            return Err(ConfigError::NetworkTooSmall(t.network));
        }
        if t.address == t.network.network() || t.address == t.network.broadcast() {
            return Err(ConfigError::AddressReserved(t.address));
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if t.interface.is_empty() || t.interface.len() > 15 || !t.interface.chars().all(name_ok) {
            return Err(ConfigError::Interface(t.interface.clone()));
        }
        if !(1280..=9000).contains(&t.mtu) {
            return Err(ConfigError::Mtu(t.mtu));
        }
        if let Some(endpoint) = &t.endpoint {
            check_endpoint(endpoint)?;
        }
        if self.api.port == 0 {
            return Err(ConfigError::ApiPort);
        }
        if self.api.password_checks.is_some_and(|n| !(1..=64).contains(&n)) {
            return Err(ConfigError::PasswordChecks);
        }
        let api = &self.api;
        if api.backoff_after_failures == 0
            || api.backoff_first_seconds == 0
            || api.backoff_first_seconds > api.backoff_max_seconds
        {
            return Err(ConfigError::Backoff);
        }
        if let Some(upstream) = &self.upstream {
            upstream.validate()?;
        }
        self.rate.validate()?;
        if let Some(origin) = &self.audit.origin {
            if origin.is_empty() || origin.contains('+') || origin.chars().any(char::is_whitespace) {
                return Err(ConfigError::AuditOrigin(origin.clone()));
            }
        }
        if self.audit.personal_data_days == 0 {
            return Err(ConfigError::PersonalDataDays);
        }
        if self.cache.enabled && self.cache.consolidation.is_empty() {
            return Err(ConfigError::NoConsolidation);
        }
        if self.cache.not_found_ttl_seconds > MAX_NOT_FOUND_TTL_SECONDS {
            return Err(ConfigError::NotFoundTtl);
        }
        if self.cache.max_bytes == 0 {
            return Err(ConfigError::CacheMaxBytes);
        }
        Ok(())
    }

    /// Everything `run` refuses in a config before it binds anything, and all that `check-config` checks: the
    /// config's own rules ([`Self::validate`]), then the files it names (the upstream's CA, read and parsed into the
    /// client that `run` goes on to use). What `run` refuses beyond this is the state directory's, not the config's.
    pub fn check(&self) -> Result<Option<Upstream>, ConfigError> {
        self.validate()?;
        Ok(self.upstream.as_ref().map(Upstream::new).transpose()?)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(default_state_dir)
    }

    pub fn address_plan(&self) -> AddressPlan {
        AddressPlan {
            network: self.tunnel.network.network(),
            prefix_len: self.tunnel.network.prefix_len(),
            gateway: self.tunnel.address,
        }
    }
}

/// Checks that `endpoint` is `host:port` with a port a client can dial; the host may be a name, an IPv4 address or a
/// bracketed IPv6 address: the forms the exported wg-quick file may carry.
pub fn check_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    simpul_tunnel::wg_quick::check_endpoint(endpoint).map_err(|_| ConfigError::Endpoint(endpoint.to_string()))
}

/// Root keeps state where system services do; anyone else (the demo, a developer) under their home directory.
pub fn default_state_dir() -> PathBuf {
    if crate::running_as_root() {
        return PathBuf::from("/var/lib/simpul-gateway");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/simpul-gateway"),
        None => PathBuf::from("simpul-gateway-state"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, String> {
        let config: GatewayConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/gateway.toml");
        let config = GatewayConfig::load(&path).unwrap();
        assert!(config.check().unwrap().is_none(), "no upstream until the admin names one");
        assert_eq!(config.tunnel.address, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(config.api.port, 8000);
    }

    /// A self-signed certificate (`openssl req -x509`, P-256, CN upstream.example) to trust as an upstream CA.
    const CA: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBjjCCATOgAwIBAgIUV9mu+StOylfArY77/nljiAD8wgYwCgYIKoZIzj0EAwIw\n\
GzEZMBcGA1UEAwwQdXBzdHJlYW0uZXhhbXBsZTAgFw0yNjEyMDYxNTQ0MDZaGA8y\n\
MTI2MTExMjE1NDQwNlowGzEZMBcGA1UEAwwQdXBzdHJlYW0uZXhhbXBsZTBZMBMG\n\
ByqGSM49AgEGCCqGSM49AwEHA0IABJLw88J6BXfsO7082VEi/mklRKyonGrPmwxG\n\
+b+BHfB9XFEPH/ixrWOu5w3W7a/Ioryi6b0E1OvacqGAW5z52PejUzBRMB0GA1Ud\n\
DgQWBBSccZODwtZoqZ7PItKTOeDAcFkGJDAfBgNVHSMEGDAWgBSccZODwtZoqZ7P\n\
ItKTOeDAcFkGJDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCT\n\
iUT9zoqDMKkm6pE+7NEAqIjrCZytPP90DLE27eyB2QIhAIsoGJP8/R260atyyuEb\n\
Vd3zCs5YNNoyaSOj6kb78Q1Q\n\
-----END CERTIFICATE-----\n";

    #[test]
    fn the_upstream_in_the_example_is_checked_with_the_file_it_names() {
        let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/gateway.toml"));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("upstream-ca.pem");
        let uncommented = example.unwrap().replace("# [upstream]", "[upstream]").replace("# url = ", "url = ").replace(
            "# ca = \"/var/lib/simpul-warehouse/tls/cert.pem\"",
            &format!("ca = {:?}", ca.display().to_string()),
        );
        let config: GatewayConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(config.validate().map_err(|e| e.to_string()), Ok(()), "the rules alone do not read the file");
        let missing = config.check().unwrap_err().to_string();
        assert!(missing.starts_with(&format!("upstream: reading ca {}", ca.display())), "{missing}");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let unusable = config.check().unwrap_err().to_string();
        assert_eq!(unusable, format!("upstream: ca {} holds no usable PEM certificate", ca.display()));
        std::fs::write(&ca, CA).unwrap();
        assert!(config.check().unwrap().is_some(), "an upstream client, as `run` uses it");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = parse("").unwrap();
        assert_eq!(config.tunnel.listen.to_string(), "0.0.0.0:51820");
        assert_eq!(config.tunnel.network.to_string(), "10.77.0.0/16");
        assert_eq!(config.tunnel.address.to_string(), "10.77.0.1");
        assert_eq!(config.tunnel.mode, Mode::Auto);
        assert_eq!(config.api.port, 8000);
        assert_eq!(config.api.default_dialect, Dialect::Coded);
        let checks = config.api.password_checks();
        assert!((1..=4).contains(&checks), "{checks}");
        let set = parse("[api]\npassword_checks = 7\ndefault_dialect = \"legacy\"").unwrap();
        assert_eq!((set.api.password_checks(), set.api.default_dialect), (7, Dialect::Legacy));
        let plan = config.address_plan();
        assert_eq!((plan.network.to_string(), plan.prefix_len), ("10.77.0.0".into(), 16));
        assert_eq!(config.cache, CacheConfig::default());
        let days: Vec<String> = config.cache.consolidation.iter().map(ToString::to_string).collect();
        assert_eq!(
            (config.cache.enabled, days, config.cache.not_found_ttl_seconds, config.cache.max_bytes),
            (true, vec!["06-30".into(), "12-31".into()], 3600, 1 << 30)
        );
        assert_eq!(parse("[cache]\nmax_bytes = 4096").unwrap().cache.max_bytes, 4096);
        let off = parse("[cache]\nenabled = false\nconsolidation = []").unwrap();
        assert!(!off.cache.enabled && off.cache.consolidation.is_empty());
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("[tunnel]\nlisten_port = 1", "unknown field `listen_port`"),
            ("stat_dir = \"/x\"", "unknown field `stat_dir`"),
            ("[tunnel]\naddress = \"10.78.0.1\"", "not inside tunnel.network"),
            ("[tunnel]\naddress = \"10.77.0.0\"", "network or broadcast"),
            ("[tunnel]\nnetwork = \"10.77.0.0/31\"\naddress = \"10.77.0.1\"", "leaves no room"),
            ("[tunnel]\ninterface = \"a-very-long-interface\"", "tunnel.interface"),
            ("[tunnel]\ninterface = \"wg 0\"", "tunnel.interface"),
            ("[tunnel]\nmtu = 576", "tunnel.mtu"),
            ("[tunnel]\nendpoint = \"gateway.example\"", "must be host:port"),
            ("[tunnel]\nendpoint = \"gateway.example:0\"", "must be host:port"),
            ("[tunnel]\nendpoint = \"bad host:51820\"", "must be host:port"),
            ("[tunnel]\nmode = \"kernel\"", "unknown variant `kernel`"),
            ("[api]\nport = 0", "api.port"),
            ("[api]\npassword_checks = 0", "api.password_checks"),
            ("[api]\npassword_checks = 65", "api.password_checks"),
            ("[api]\nbackoff_first_seconds = 0", "api.backoff_first_seconds"),
            ("[api]\nbackoff_first_seconds = 61", "api.backoff_first_seconds"),
            ("[api]\nbackoff_after_failures = 0", "api.backoff_after_failures"),
            ("[api]\ndefault_dialect = \"json\"", "unknown variant `json`"),
            ("[rate]\ndevice_burst = 0", "rate.device_burst"),
            ("[cache]\nconsolidation = []", "cache.consolidation must name at least one day"),
            ("[cache]\nconsolidation = [\"06-31\"]", "\"06-31\" is not a day of every year"),
            ("[cache]\nnot_found_ttl = 60", "unknown field `not_found_ttl`"),
            ("[cache]\nmax_bytes = 0", "cache.max_bytes must be more than 0"),
            ("[cache]\nnot_found_ttl_seconds = 31622401", "cache.not_found_ttl_seconds must be at most 31622400"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn endpoints_may_be_names_or_addresses() {
        for good in ["gw.kominfo.example.go.id:51820", "203.0.113.7:51820", "[2001:db8::1]:51820"] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        for bad in ["", ":51820", "[2001:db8::1]", "[nonsense]:1", "host:65536"] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
