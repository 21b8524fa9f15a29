//! A certificate chain and its private key: what a server presents, and what a client presents for mutual TLS.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::{roots, ClientAuth, ClientTrust};
use crate::verify::PinnedClientVerifier;
use crate::{provider, read_certs, Fingerprint, TlsError};

/// The names every self-signed certificate carries besides those asked for: a client on the same machine reaches the
/// server by any of them.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate chain (leaf first) and the leaf's private key, checked to belong together.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The chain in PEM, for clients to trust (`curl --cacert`).
    cert_pem: String,
}

// The key must never reach a log.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("fingerprint", &self.fingerprint()).field("key", &"***").finish()
    }
}

impl Identity {
    /// A fresh self-signed certificate for [`DEFAULT_NAMES`] and `names` (DNS names or IP addresses), in memory only.
    pub fn self_signed(names: &[String]) -> Result<Identity, TlsError> {
        Ok(generate(names)?.0)
    }

    /// Loads a PEM certificate chain and its key. A key that its group or other users may read is refused: whoever
    /// can read it can impersonate its owner, and the admin should know it may have leaked.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let (cert_pem, chain) = read_certs(cert)?;
        let pem = simpul_files::read_private(key)?
            .ok_or_else(|| TlsError::Read(key.to_owned(), std::io::ErrorKind::NotFound.into()))?;
        let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem(key.to_owned(), "private key"))?;
        CertifiedKey::from_der(chain.clone(), key_der.clone_key(), &provider())
            .map_err(|_| TlsError::KeyMismatch { cert: cert.to_owned(), key: key.to_owned() })?;
        Ok(Identity { chain, key: key_der, cert_pem })
    }

    /// The self-signed identity kept in `cert` and `key`, as long as it names [`DEFAULT_NAMES`] and every one of
    /// `names`, so that its fingerprint stays the same across restarts; otherwise (missing, a key that does not
    /// belong to the certificate, a name added) a new one made for them and saved, both files replacing the old ones
    /// 0600 (see [`simpul_files::replace_private`]) in a directory 0700 (made if missing, refused if others may
    /// enter it). A key others may read is refused, not replaced.
    pub fn load_or_generate(cert: &Path, key: &Path, names: &[String]) -> Result<Identity, TlsError> {
        check_names(names)?;
        if cert.exists() && key.exists() {
            match Identity::from_pem_files(cert, key) {
                Ok(kept)
                    if DEFAULT_NAMES
                        .iter()
                        .copied()
                        .chain(names.iter().map(String::as_str))
                        .all(|n| kept.covers(n)) =>
                {
                    return Ok(kept)
                }
                Ok(_) | Err(TlsError::KeyMismatch { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let (identity, key_pem) = generate(names)?;
        for dir in [cert, key].iter().filter_map(|p| p.parent()).filter(|d| !d.as_os_str().is_empty()) {
            simpul_files::prepare_dir(dir)?;
        }
        simpul_files::replace_private(key, key_pem.as_bytes())?;
        simpul_files::replace_private(cert, identity.cert_pem.as_bytes())?;
        Ok(identity)
    }

    /// Whether the leaf certificate is valid for `name` (a DNS name or an IP address) as a client checking names
    /// would decide.
    pub fn covers(&self, name: &str) -> bool {
        let Ok(name) = ServerName::try_from(name) else { return false };
        webpki::EndEntityCert::try_from(self.cert_der())
            .is_ok_and(|leaf| leaf.verify_is_valid_for_subject_name(&name).is_ok())
    }

    /// The leaf certificate in DER form.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The certificate chain in PEM form, for clients to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The leaf certificate's fingerprint, for clients to pin.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.cert_der())
    }

    /// A TLS 1.3-only server configuration presenting this identity, with client certificates as `clients` says.
    /// No ALPN protocol is set; a server speaking HTTP/1.1 sets `alpn_protocols` itself.
    pub fn server_config(&self, clients: ClientAuth) -> Result<ServerConfig, TlsError> {
        let provider = provider();
        let builder =
            ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&[&rustls::version::TLS13])?;
        let (trust, mandatory) = match clients {
            ClientAuth::None => return Ok(builder.with_no_client_auth().with_single_cert(self.chain(), self.key())?),
            ClientAuth::Optional(trust) => (trust, false),
            ClientAuth::Required(trust) => (trust, true),
        };
        let verifier: Arc<dyn ClientCertVerifier> = match trust {
            ClientTrust::Ca(cas) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots(cas)?, provider.clone());
                let verifier = if mandatory { verifier } else { verifier.allow_unauthenticated() };
                verifier.build().map_err(|e| TlsError::Verifier(e.to_string()))?
            }
            ClientTrust::Pinned(pins) => Arc::new(PinnedClientVerifier { pins, mandatory, provider }),
        };
        let builder = builder.with_client_cert_verifier(verifier);
        Ok(builder.with_single_cert(self.chain(), self.key())?)
    }

    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.clone()
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

/// A new self-signed identity and its key in PEM.
fn generate(names: &[String]) -> Result<(Identity, String), TlsError> {
    check_names(names)?;
    let mut sans: Vec<String> = DEFAULT_NAMES.iter().map(|n| n.to_string()).collect();
    for name in names {
        if !sans.contains(name) {
            sans.push(name.clone());
        }
    }
    let certified = rcgen::generate_simple_self_signed(sans)?;
    let identity = Identity {
        chain: vec![certified.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
        cert_pem: certified.cert.pem(),
    };
    Ok((identity, certified.signing_key.serialize_pem()))
}

/// Refuses a name a certificate could not carry or a client could not ask for: one that would never be covered.
pub fn check_names(names: &[String]) -> Result<(), TlsError> {
    match names.iter().find(|n| ServerName::try_from(n.as_str()).is_err()) {
        Some(bad) => Err(TlsError::Name(bad.clone())),
        None => Ok(()),
    }
}
