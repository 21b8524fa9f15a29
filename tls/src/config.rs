//! Who is trusted: the server a client talks to, and the client certificates a server takes.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::verify::PinnedServerVerifier;
use crate::{provider, Fingerprint, Identity, TlsError};

/// How a client trusts the server it connects to.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// The chain must lead to one of these CA certificates (a self-signed certificate is its own CA), and the leaf
    /// must name the server name the client asks for.
    Ca(Vec<CertificateDer<'static>>),
    /// The leaf's SHA-256 must be this one. Names, chain and dates are not checked: the pin is the whole trust
    /// decision. The handshake signature is, so only the holder of the pinned certificate's key gets through.
    Pinned(Fingerprint),
}

/// How a server trusts client certificates.
#[derive(Debug, Clone)]
pub enum ClientTrust {
    /// Issued by one of these CA certificates (names are not checked: a client has none to ask for).
    Ca(Vec<CertificateDer<'static>>),
    /// Exactly one of these leaf certificates, by fingerprint (the handshake signature still checked).
    Pinned(Vec<Fingerprint>),
}

/// Whether a server asks for a client certificate.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A certificate is verified when one is presented; a client without one is let through, and the application
    /// decides (the warehouse refuses such a request in the consumer's dialect).
    Optional(ClientTrust),
    /// A client without a trusted certificate fails the handshake.
    Required(ClientTrust),
}

/// A TLS 1.3-only client configuration trusting the server as `trust` says, presenting `identity` when the server
/// asks for a client certificate (mutual TLS). No ALPN protocol is set ([`crate::HttpsConnector`] sets its own).
pub fn client_config(trust: &ServerTrust, identity: Option<&Identity>) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        ServerTrust::Ca(cas) => WebPkiServerVerifier::builder_with_provider(roots(cas.clone())?, provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?,
        ServerTrust::Pinned(pin) => Arc::new(PinnedServerVerifier { pin: *pin, provider: provider.clone() }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => builder.with_client_auth_cert(identity.chain(), identity.key())?,
    })
}

pub(crate) fn roots(cas: Vec<CertificateDer<'static>>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca)?;
    }
    Ok(Arc::new(roots))
}
