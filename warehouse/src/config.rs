//! The warehouse's configuration file (see `configs/warehouse.toml` for a commented example).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
pub use simpul_core::clock::TimeZone;

use crate::consumer::{ConsumerConfig, ConsumerError, Consumers};
use crate::faults::{FaultConfig, FaultConfigError};
use crate::population::{PopulationConfig, PopulationError};
use crate::tls::{Identity, TlsConfig, TlsError};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the generated certificate is kept; default `$HOME/.local/state/simpul-warehouse`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The zone whose midnight resets quotas and whose clock access hours are read on.
    #[serde(default)]
    pub timezone: TimeZone,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub population: PopulationConfig,
    #[serde(default)]
    pub faults: FaultConfig,
    #[serde(default, rename = "consumer")]
    pub consumers: Vec<ConsumerConfig>,
}

/// The port relays are configured with by default (see ARCHITECTURE.md, "Listeners").
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8100";

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("a valid socket address")
}

/// `[http]`: limits that protect the server from clients.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted; larger ones are answered 413.
    pub body_limit: usize,
    /// Time a client has for each of: the TLS handshake, a request's headers, a request's body. Slow clients are
    /// disconnected rather than allowed to hold a connection open.
    pub read_timeout_ms: u64,
    /// On shutdown, how long requests in flight may take to finish before their connections are cut.
    pub shutdown_grace_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { body_limit: 1024 * 1024, read_timeout_ms: 10_000, shutdown_grace_ms: 5_000 }
    }
}

impl HttpConfig {
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error(transparent)]
    Faults(#[from] FaultConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("population: {0}")]
    Population(#[from] PopulationError),
    #[error("http: body_limit and read_timeout_ms must be more than 0")]
    Http,
    #[error(
        "consumer {0} requires a client certificate (require_client_cert or client_cert_sha256), but [tls] has no \
         client_ca to verify one against"
    )]
    ClientCertWithoutCa(String),
}

impl WarehouseConfig {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        let config: WarehouseConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.tls.validate()?;
        self.faults.validate()?;
        self.population.validate()?;
        if self.http.body_limit == 0 || self.http.read_timeout_ms == 0 {
            return Err(ConfigError::Http);
        }
        Consumers::new(self.consumers.clone())?;
        if self.tls.client_ca.is_none() {
            if let Some(c) = self.consumers.iter().find(|c| c.needs_client_cert()) {
                return Err(ConfigError::ClientCertWithoutCa(c.id.clone()));
            }
        }
        Ok(())
    }

    /// Everything `serve` refuses in a config before it binds, and all that `check-config` checks: the config's own
    /// rules ([`Self::validate`]), then the files it names, read and parsed as `serve` reads them: the certificate
    /// and key (a key others may read is refused) and the client CA. Without a configured certificate `serve` uses
    /// the one it generates into the state directory, which is not the config's to check; the client CA is then
    /// checked beside a throwaway one.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validate()?;
        let identity = match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Identity::from_pem_files(cert, key).map_err(TlsError::from)?,
            _ if self.tls.client_ca.is_some() => Identity::self_signed(&[]).map_err(TlsError::from)?,
            _ => return Ok(()),
        };
        crate::tls::server_config(&identity, self.tls.client_ca.as_deref())?;
        Ok(())
    }

    /// The configured state directory, else `$HOME/.local/state/simpul-warehouse`, else `./simpul-warehouse-state`.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".local/state/simpul-warehouse"),
            None => PathBuf::from("simpul-warehouse-state"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$R0bU0bEJbXfBgoDXXNMUCaPkcgGIgeLxUb7U4aJfJq8";

    fn parse(text: &str) -> Result<WarehouseConfig, String> {
        let config: WarehouseConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    fn consumer(extra: &str) -> String {
        format!(
            "[[consumer]]\nid = \"BPS\"\nuser_id = \"bps\"\npassword_hash = \"{HASH}\"\nallowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\ndaily_quota = 5\n{extra}\n"
        )
    }

    #[test]
    fn an_empty_file_is_a_valid_config_with_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(config.timezone, TimeZone(chrono_tz::Asia::Jakarta));
        assert_eq!(config.http, HttpConfig::default());
        assert!(config.consumers.is_empty());
    }

    #[test]
    fn a_full_config_parses() {
        let text = format!(
            "listen = \"0.0.0.0:9100\"\nstate_dir = \"/tmp/x\"\ntimezone = \"Asia/Makassar\"\n[http]\nbody_limit = 2048\n[tls]\nnames = [\"dwh.local\"]\nclient_ca = \"/tmp/ca.pem\"\n[population]\nresidents = 5000\n[faults]\nerror_rate = 0.5\n{}",
            consumer("require_client_cert = true\ndialect = \"legacy\"\naccess_hours = \"07:00-17:00\"")
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.timezone, TimeZone(chrono_tz::Asia::Makassar));
        assert_eq!(config.http.body_limit, 2048);
        assert_eq!(config.http.read_timeout_ms, 10_000);
        assert_eq!(config.faults.error_rate, 0.5);
        assert_eq!(config.population.residents, 5000);
        assert_eq!(config.state_dir(), PathBuf::from("/tmp/x"));
        assert!(config.consumers[0].require_client_cert);
    }

    #[test]
    fn mistakes_are_reported() {
        let table = [
            ("colour = \"blue\"", "unknown field"),
            ("timezone = \"Asia/Bandung\"", "unknown time zone"),
            ("[http]\nbody_limit = 0", "body_limit"),
            ("[faults]\nerror_rate = 2.0", "error_rate"),
            ("[population]\nresidents = 0", "residents"),
            ("[tls]\ncert = \"/tmp/c.pem\"", "cert and key"),
            (&consumer("require_client_cert = true"), "client_ca"),
            (&consumer(&format!("client_cert_sha256 = \"{}\"", ["AB"; 32].join(":"))), "client_ca"),
            (&consumer("client_cert_sha256 = \"AB:CD\""), "SHA-256"),
            (&format!("{}{}", consumer(""), consumer("")), "used twice"),
            (&consumer("methods = [\"CALL_SEMUA\"]"), "duplicate key"),
            (&consumer("password_hash2 = \"x\""), "unknown field"),
        ];
        for (text, want) in table {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
