//! The warehouse's TLS: TLS 1.3 only, a certificate from PEM files or a self-signed one kept in the state directory,
//! and optional client certificates (mTLS) for consumers that require them.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// `[tls]` in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`. Without both, a self-signed certificate is made and kept in the state dir.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Names and addresses for the generated certificate, besides `localhost`, `127.0.0.1` and `::1`.
    pub names: Vec<String>,
    /// PEM CA certificates; when set, clients may present a certificate issued by one of them, and consumers with
    /// `require_client_cert` must.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: cert and key go together")]
    HalfPair,
    #[error("tls: reading {0}: {1}")]
    Read(PathBuf, io::Error),
    #[error("tls: {0} holds no usable PEM {1}")]
    Pem(PathBuf, &'static str),
    #[error(
        "tls: the private key {path} has mode {mode:04o}, which gives its group or other users access; \
         restrict it with `chmod 600 {path}`"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("tls: writing {0}: {1}")]
    Write(PathBuf, io::Error),
    #[error("tls: generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls: client CA: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

impl TlsConfig {
    pub fn validate(&self) -> Result<(), TlsError> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(TlsError::HalfPair);
        }
        Ok(())
    }
}

/// The server's certificate chain and key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The certificate file's text (the chain), or the generated certificate's PEM.
    cert_pem: String,
    key_pem: Option<String>,
    /// Where the certificate is on disk, for clients to trust (`curl --cacert`).
    pub cert_path: Option<PathBuf>,
}

// The key must never reach a log.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .field("cert_path", &self.cert_path)
            .field("key", &"***")
            .finish()
    }
}

/// Where the generated certificate and key are kept, under the state directory.
pub const GENERATED_CERT: &str = "tls/cert.pem";
pub const GENERATED_KEY: &str = "tls/key.pem";

impl Identity {
    /// A fresh self-signed certificate for `localhost`, `127.0.0.1`, `::1` and `names`, kept in memory only.
    pub fn self_signed(names: &[String]) -> Result<Identity, TlsError> {
        let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        sans.extend(names.iter().filter(|n| !sans.contains(n)).cloned().collect::<Vec<_>>());
        let certified = rcgen::generate_simple_self_signed(sans)?;
        Ok(Identity {
            chain: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
            cert_pem: certified.cert.pem(),
            key_pem: Some(certified.signing_key.serialize_pem()),
            cert_path: None,
        })
    }

    /// Loads a PEM certificate chain and key. A key that its group or other users may read is refused: whoever can
    /// read it can impersonate the warehouse.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let (cert_pem, chain) = read_certs(cert)?;
        let pem = read_private(key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem(key.to_owned(), "private key"))?;
        Ok(Identity { chain, key: key_der, cert_pem, key_pem: None, cert_path: Some(cert.to_owned()) })
    }

    /// The configured PEM files, or the certificate generated earlier into `state_dir/tls/`, or a new one saved
    /// there (mode 0600, directory 0700) so that its fingerprint stays the same across restarts. Delete the two files
    /// to get a new one (for instance after changing `names`).
    pub fn load_or_generate(config: &TlsConfig, state_dir: &Path) -> Result<Identity, TlsError> {
        config.validate()?;
        if let (Some(cert), Some(key)) = (&config.cert, &config.key) {
            return Identity::from_pem_files(cert, key);
        }
        let (cert, key) = (state_dir.join(GENERATED_CERT), state_dir.join(GENERATED_KEY));
        if cert.exists() && key.exists() {
            return Identity::from_pem_files(&cert, &key);
        }
        let identity = Identity::self_signed(&config.names)?;
        let dir = cert.parent().expect("a file under the state directory");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| TlsError::Write(dir.to_owned(), e))?;
        let key_pem = identity.key_pem.as_deref().expect("a generated identity has its key in PEM");
        write_private(&key, key_pem.as_bytes())?;
        write_private(&cert, identity.cert_pem.as_bytes())?;
        Ok(Identity { cert_path: Some(cert), ..identity })
    }

    /// The leaf certificate in DER form.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The certificate (chain) in PEM form, for clients to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the leaf certificate's DER, as `AA:BB:…`, for pinning.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.cert_der())
    }

    /// A TLS 1.3-only server configuration speaking HTTP/1.1. With `client_ca`, a client certificate is verified
    /// when one is presented, but connections without one are let through: whether a consumer needs one is decided
    /// per request, where the refusal can be answered in the consumer's dialect.
    pub fn server_config(&self, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder =
            ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&[&rustls::version::TLS13])?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for ca in read_certs(path)?.1 {
                    roots.add(ca)?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .allow_unauthenticated()
                    .build()?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The file's text and the certificates in it.
fn read_certs(path: &Path) -> Result<(String, Vec<CertificateDer<'static>>), TlsError> {
    let pem = fs::read_to_string(path).map_err(|e| TlsError::Read(path.to_owned(), e))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem(path.to_owned(), "certificate"))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(path.to_owned(), "certificate"));
    }
    Ok((pem, certs))
}

/// `AA:BB:…` SHA-256 of a certificate's DER.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    CertFingerprint::of(cert).to_string()
}

/// The SHA-256 of a certificate's DER: what the server prints for its own certificate, and what a consumer's
/// `client_cert_sha256` pins its client certificate to. Written `AA:BB:…`; read in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        CertFingerprint(Sha256::digest(cert.as_ref()).into())
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl FromStr for CertFingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a SHA-256 fingerprint written as 32 hex bytes \"AA:BB:…\"");
        let mut bytes = [0u8; 32];
        let mut parts = s.trim().split(':');
        for byte in &mut bytes {
            // from_str_radix alone would take "+A".
            let part = parts.next().filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
            let part = part.ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(CertFingerprint(bytes))
    }
}

impl<'de> Deserialize<'de> for CertFingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Reads a file that must be private to its owner. The mode is read from the open file, so it is the mode of what
/// is read even if the path is swapped in between.
fn read_private(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |e| TlsError::Read(path.to_owned(), e);
    let mut file = fs::File::open(path).map_err(read)?;
    let mode = file.metadata().map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyPermissions { path: path.to_owned(), mode });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read)?;
    Ok(bytes)
}

/// Writes a file readable by its owner only, replacing it whole (a temporary file renamed into place).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("pem.tmp");
    // A leftover of an interrupted start may have any mode, and opening an existing file keeps its mode: remove it,
    // then create the file anew, failing rather than writing into one that reappeared in between.
    let result = match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, path)),
    };
    result.map_err(|e| TlsError::Write(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_is_saved_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = TlsConfig { names: vec!["dwh.example".into()], ..TlsConfig::default() };
        let first = Identity::load_or_generate(&config, &state).unwrap();
        let cert_path = first.cert_path.clone().unwrap();
        assert_eq!(cert_path, state.join(GENERATED_CERT));
        for file in [GENERATED_CERT, GENERATED_KEY] {
            let mode = fs::metadata(state.join(file)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
        assert_eq!(fs::read_to_string(&cert_path).unwrap(), first.cert_pem());
        let again = Identity::load_or_generate(&config, &state).unwrap();
        assert_eq!(again.fingerprint(), first.fingerprint());
        assert!(first.server_config(None).is_ok());
    }

    #[test]
    fn fingerprint_is_colon_separated_upper_hex_of_the_der() {
        let id = Identity::self_signed(&[]).unwrap();
        let fp = id.fingerprint();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.split(':').all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit() && !c.is_lowercase())));
        let der_again = CertificateDer::from_pem_slice(id.cert_pem().as_bytes()).unwrap();
        assert_eq!(fingerprint(&der_again), fp);
    }

    #[test]
    fn fingerprints_read_back_what_they_print() {
        let id = Identity::self_signed(&[]).unwrap();
        let printed = id.fingerprint();
        let parsed: CertFingerprint = printed.parse().unwrap();
        assert_eq!(parsed, CertFingerprint::of(id.cert_der()));
        assert_eq!(printed.to_lowercase().parse::<CertFingerprint>(), Ok(parsed));
        let short = &printed[..printed.len() - 3];
        for bad in [
            short,
            &format!("{printed}:00"),
            &printed.replace(':', ""),
            &printed.replacen(':', "-", 1),
            "zz",
            &format!("+A{}", &printed[2..]),
        ] {
            assert!(bad.parse::<CertFingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn half_a_pair_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig { cert: Some(dir.path().join("c.pem")), ..TlsConfig::default() };
        assert!(matches!(config.validate(), Err(TlsError::HalfPair)));
        let junk = dir.path().join("junk.pem");
        fs::write(&junk, "not pem").unwrap();
        assert!(matches!(Identity::from_pem_files(&junk, &junk), Err(TlsError::Pem(..))));
        let id = Identity::self_signed(&[]).unwrap();
        assert!(matches!(id.server_config(Some(&junk)), Err(TlsError::Pem(..))));
        assert!(matches!(id.server_config(Some(&dir.path().join("absent.pem"))), Err(TlsError::Read(..))));
    }

    #[test]
    fn a_stale_temporary_file_does_not_leak_its_mode_into_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        fs::create_dir(&tls).unwrap();
        let stale = tls.join("key.pem.tmp");
        fs::write(&stale, "left over by an interrupted start").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
        let identity = Identity::load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(GENERATED_KEY)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!stale.exists());
        let again = Identity::load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        assert_eq!(again.fingerprint(), identity.fingerprint());
    }

    #[test]
    fn a_key_others_may_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let generated = Identity::load_or_generate(&TlsConfig::default(), dir.path()).unwrap();
        let (cert, key) = (dir.path().join(GENERATED_CERT), dir.path().join(GENERATED_KEY));
        let configured = TlsConfig { cert: Some(cert.clone()), key: Some(key.clone()), ..TlsConfig::default() };
        for mode in [0o640, 0o604, 0o644] {
            fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
            for (config, from) in [(&configured, "[tls] key"), (&TlsConfig::default(), "state dir")] {
                let err = Identity::load_or_generate(config, dir.path()).unwrap_err();
                assert!(
                    matches!(&err, TlsError::KeyPermissions { path, mode: m } if *path == key && *m == mode),
                    "{from}"
                );
                let message = err.to_string();
                assert!(message.contains(&format!("chmod 600 {}", key.display())), "{from}: {message}");
            }
        }
        // The certificate is public; only the key's mode matters.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
        fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = Identity::load_or_generate(&configured, dir.path()).unwrap();
        assert_eq!(loaded.fingerprint(), generated.fingerprint());
    }
}
