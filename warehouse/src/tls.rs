//! The warehouse's `[tls]`: a certificate from PEM files or a self-signed one kept in the state directory, and
//! optional client certificates (mTLS) for consumers that require them. What TLS is (1.3 only, fingerprints,
//! verifiers, private files) is `simpul_tls`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use serde::Deserialize;
use simpul_tls::{ClientAuth, ClientTrust};

pub use simpul_tls::{Fingerprint, Identity};

/// `[tls]` in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`. Without both, a self-signed certificate is made and kept in the state dir.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Names and addresses for the generated certificate, besides `localhost`, `127.0.0.1`, `::1` and the address
    /// the server listens on.
    pub names: Vec<String>,
    /// PEM CA certificates; when set, clients may present a certificate issued by one of them, and consumers with
    /// `require_client_cert` must.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: cert and key go together")]
    HalfPair,
    #[error("tls: {0}")]
    Tls(#[from] simpul_tls::TlsError),
}

impl TlsError {
    /// Whether the operator has to fix the config or a file, as opposed to the system failing.
    pub fn is_invalid(&self) -> bool {
        match self {
            TlsError::HalfPair => true,
            TlsError::Tls(e) => e.is_invalid(),
        }
    }
}

impl TlsConfig {
    pub fn validate(&self) -> Result<(), TlsError> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(TlsError::HalfPair);
        }
        Ok(simpul_tls::check_names(&self.names)?)
    }
}

/// Where the generated certificate and key are kept, under the state directory.
pub const GENERATED_CERT: &str = "tls/cert.pem";
pub const GENERATED_KEY: &str = "tls/key.pem";

/// The configured PEM files, or the self-signed certificate kept in `state_dir/tls/` (made there, key 0600 in a
/// directory 0700, when missing or when it does not name every one of `names`; kept otherwise, so that its
/// fingerprint stays the same across restarts). Returns the identity and its certificate file, for clients to trust
/// (`curl --cacert`).
pub fn load(config: &TlsConfig, state_dir: &Path) -> Result<(Identity, PathBuf), TlsError> {
    config.validate()?;
    if let (Some(cert), Some(key)) = (&config.cert, &config.key) {
        return Ok((Identity::from_pem_files(cert, key)?, cert.clone()));
    }
    let (cert, key) = (state_dir.join(GENERATED_CERT), state_dir.join(GENERATED_KEY));
    Ok((Identity::load_or_generate(&cert, &key, &config.names)?, cert))
}

/// A TLS 1.3-only server configuration speaking HTTP/1.1. With `client_ca`, a client certificate is verified when
/// one is presented, but connections without one are let through: whether a consumer needs one is decided per
/// request, where the refusal can be answered in the consumer's dialect.
pub fn server_config(identity: &Identity, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let clients = match client_ca {
        None => ClientAuth::None,
        Some(path) => ClientAuth::Optional(ClientTrust::Ca(simpul_tls::read_certs(path)?.1)),
    };
    let mut config = identity.server_config(clients)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generated_into_the_state_dir_or_configured() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = TlsConfig { names: vec!["dwh.example".into()], ..TlsConfig::default() };
        let (generated, cert) = load(&config, &state).unwrap();
        assert_eq!(cert, state.join(GENERATED_CERT));
        assert!(generated.covers("dwh.example") && generated.covers("localhost"));
        assert_eq!(fs::read_to_string(&cert).unwrap(), generated.cert_pem());
        assert_eq!(load(&config, &state).unwrap().0.fingerprint(), generated.fingerprint());

        let key = state.join(GENERATED_KEY);
        let configured = TlsConfig { cert: Some(cert.clone()), key: Some(key.clone()), ..TlsConfig::default() };
        let (loaded, path) = load(&configured, &dir.path().join("elsewhere")).unwrap();
        assert_eq!((loaded.fingerprint(), path), (generated.fingerprint(), cert.clone()));
        assert!(server_config(&loaded, None).unwrap().alpn_protocols == [b"http/1.1".to_vec()]);

        // A configured key others may read is refused as the operator's to fix, with the fix.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let error = load(&configured, &state).unwrap_err();
        assert!(error.is_invalid());
        assert!(error.to_string().contains(&format!("chmod 600 {}", key.display())), "{error}");
    }

    #[test]
    fn half_a_pair_bad_names_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig { cert: Some(dir.path().join("c.pem")), ..TlsConfig::default() };
        assert!(matches!(config.validate(), Err(TlsError::HalfPair)));
        let config = TlsConfig { names: vec!["not a name!".into()], ..TlsConfig::default() };
        assert!(matches!(config.validate(), Err(TlsError::Tls(simpul_tls::TlsError::Name(_)))));
        let junk = dir.path().join("junk.pem");
        fs::write(&junk, "not pem").unwrap();
        let id = Identity::self_signed(&[]).unwrap();
        let error = server_config(&id, Some(&junk)).unwrap_err();
        assert!(matches!(error, TlsError::Tls(simpul_tls::TlsError::Pem(..))) && error.is_invalid(), "{error}");
        let error = server_config(&id, Some(&dir.path().join("absent.pem"))).unwrap_err();
        assert!(matches!(error, TlsError::Tls(simpul_tls::TlsError::Read(..))) && !error.is_invalid(), "{error}");
    }
}
