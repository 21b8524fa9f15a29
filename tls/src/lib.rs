//! TLS for every Simpul binary: the gateway's client to its upstream, the warehouse stand-in's server, and the relay
//! (which speaks mutual TLS both ways). One place decides what the project's TLS is:
//!
//! - TLS 1.3 only, with ring's algorithms, for servers and clients alike ([`server_config`](Identity::server_config),
//!   [`client_config`]);
//! - one certificate [`Fingerprint`] (SHA-256 of the DER), printed one way and read in two spellings;
//! - a server is trusted through CA certificates (names checked) or a pinned fingerprint (names ignored, the
//!   handshake signature still checked): [`ServerTrust`]; a client certificate likewise: [`ClientTrust`], optional or
//!   required ([`ClientAuth`]);
//! - an [`Identity`] (certificate chain and key) from PEM files, the key refused when others may read it, or
//!   self-signed and kept in two private files, made again when it does not name what it must;
//! - the HTTPS connector for hyper's client ([`HttpsConnector`], hyper-rustls under a connect timeout).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

mod config;
mod connector;
mod fingerprint;
mod identity;
mod verify;

pub use config::{client_config, ClientAuth, ClientTrust, ServerTrust};
pub use connector::{ConnectError, HttpsConnector, HttpsStream};
pub use fingerprint::{Fingerprint, FingerprintError};
pub use identity::{check_names, Identity, DEFAULT_NAMES};
pub use verify::{is_fingerprint_mismatch, FingerprintMismatch};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, io::Error),
    #[error("{0} holds no usable PEM {1}")]
    Pem(PathBuf, &'static str),
    /// A private key others may read (with the `chmod` that fixes it), or a private file that could not be written.
    #[error(transparent)]
    File(#[from] simpul_files::FileError),
    #[error("{0:?} is not a DNS name or an IP address")]
    Name(String),
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("CA certificates: {0}")]
    Verifier(String),
}

impl TlsError {
    /// Whether the operator has to fix a file or a setting, as opposed to the system failing.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            TlsError::Pem(..)
                | TlsError::File(simpul_files::FileError::Permissions { .. })
                | TlsError::Name(_)
                | TlsError::KeyMismatch { .. }
        )
    }
}

/// The certificates in a PEM file, and its text; a file without any is refused.
pub fn read_certs(path: &Path) -> Result<(String, Vec<CertificateDer<'static>>), TlsError> {
    let pem = std::fs::read_to_string(path).map_err(|e| TlsError::Read(path.to_owned(), e))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem(path.to_owned(), "certificate"))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(path.to_owned(), "certificate"));
    }
    Ok((pem, certs))
}

/// ring's algorithms, for every config and verifier here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
