//! Certificate verifiers that trust a fingerprint rather than a CA: a server pinned by its client, client certificates
//! pinned by their server. Both check the handshake signature with the certificate's key, and refuse TLS 1.2 (the
//! configs offer TLS 1.3 only anyway).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::Fingerprint;

/// The error inside `CertificateError::Other` when a certificate is not the pinned one, so that a failure can say so.
#[derive(Debug, thiserror::Error)]
#[error("the certificate's fingerprint does not match the pinned one")]
pub struct FingerprintMismatch;

/// Whether a TLS error is a certificate that is not the pinned one (on either side of the handshake).
pub fn is_fingerprint_mismatch(error: &rustls::Error) -> bool {
    matches!(error, rustls::Error::InvalidCertificate(CertificateError::Other(other))
        if other.0.downcast_ref::<FingerprintMismatch>().is_some())
}

fn mismatch() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(FingerprintMismatch))))
}

/// The handshake-signature half of both verifiers, the same on either side: TLS 1.3 signatures checked with the
/// certificate's key by ring's algorithms, TLS 1.2 refused.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::General("TLS 1.2 is not accepted".to_owned()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider.signature_verification_algorithms.supported_schemes()
        }
    };
}

#[derive(Debug)]
pub(crate) struct PinnedServerVerifier {
    pub(crate) pin: Fingerprint,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin.matches(end_entity) {
            true => Ok(ServerCertVerified::assertion()),
            false => Err(mismatch()),
        }
    }

    handshake_signatures!();
}

#[derive(Debug)]
pub(crate) struct PinnedClientVerifier {
    pub(crate) pins: Vec<Fingerprint>,
    pub(crate) mandatory: bool,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    // No CA names to hint at: a client with a certificate sends it.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Every pin is compared, so the time taken does not say which one (if any) nearly matched.
        let matched = self.pins.iter().fold(false, |found, pin| pin.matches(end_entity) | found);
        match matched {
            true => Ok(ClientCertVerified::assertion()),
            false => Err(mismatch()),
        }
    }

    handshake_signatures!();
}
