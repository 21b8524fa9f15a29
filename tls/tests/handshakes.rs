//! Real rustls handshakes over loopback TCP with the configs and verifiers of `simpul_tls`: a server trusted by CA
//! (names checked) or by pin (handshake signature checked), mutual TLS both ways (client certificates by CA or by
//! pin, optional or required), TLS 1.3 only; and the HTTPS connector under hyper's client.

use std::io;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use simpul_tls::{
    client_config, ClientAuth, ClientTrust, ConnectError, Fingerprint, HttpsConnector, Identity, ServerTrust,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A private CA that issues client certificates.
struct Pki {
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        Pki { ca: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// A client certificate for `name`, written to `dir` and loaded from there.
    fn client(&self, name: &str, dir: &Path) -> Identity {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        simpul_files::create_private(&key_path, key.serialize_pem().as_bytes()).unwrap();
        Identity::from_pem_files(&cert_path, &key_path).unwrap()
    }
}

/// What each side of one handshake saw: the server, the fingerprint of the client's certificate (if any); the client,
/// the bytes the server wrote once the handshake was done.
#[derive(Debug)]
struct Outcome {
    server: io::Result<Option<Fingerprint>>,
    client: io::Result<Vec<u8>>,
}

/// One TLS connection over loopback TCP, the client asking for `name`. The client reads what the server writes after
/// its handshake, so a client certificate the server refuses (checked after the client thinks it is done, in TLS
/// 1.3) shows on the client's side as well.
async fn handshake(server: ServerConfig, client: ClientConfig, name: &str) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let seen = tls.get_ref().1.peer_certificates().and_then(|certs| certs.first()).map(Fingerprint::of);
        tls.write_all(b"welcome").await?;
        tls.shutdown().await?;
        Ok(seen)
    });
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await?;
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await?;
        Ok(got)
    }
    .await;
    Outcome { server: serving.await.unwrap(), client }
}

/// The TLS error inside an I/O error of tokio-rustls.
fn tls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
}

fn self_signed() -> Identity {
    Identity::self_signed(&[]).unwrap()
}

fn pinned(server: &Identity, client: Option<&Identity>) -> ClientConfig {
    client_config(&ServerTrust::Pinned(server.fingerprint()), client).unwrap()
}

#[track_caller]
fn assert_welcomed(outcome: &Outcome) {
    match &outcome.client {
        Ok(got) => assert_eq!(got, b"welcome"),
        Err(e) => panic!("the client failed: {e} (server: {:?})", outcome.server),
    }
}

#[track_caller]
fn client_refused(outcome: Outcome) -> rustls::Error {
    let error = outcome.client.expect_err("the client should refuse");
    assert!(outcome.server.is_err(), "the server saw no failure");
    tls_error(&error).unwrap_or_else(|| panic!("not a TLS error: {error}")).clone()
}

/// The server's refusal, and that the client, too, failed (with the server's alert).
#[track_caller]
fn server_refused(outcome: Outcome) -> rustls::Error {
    let error = outcome.server.expect_err("the server should refuse");
    let client = outcome.client.expect_err("the client should fail too");
    assert!(matches!(tls_error(&client), Some(rustls::Error::AlertReceived(_))), "{client}");
    tls_error(&error).unwrap_or_else(|| panic!("not a TLS error: {error}")).clone()
}

#[tokio::test]
async fn a_pinned_server_is_reached_and_another_certificate_refused() {
    let server = self_signed();
    let outcome = handshake(server.server_config(ClientAuth::None).unwrap(), pinned(&server, None), "any.name").await;
    assert_welcomed(&outcome);
    assert_eq!(outcome.server.unwrap(), None, "no client certificate was asked for");

    // Names are not checked against a pin: the pin is the whole trust decision.
    let outcome = handshake(server.server_config(ClientAuth::None).unwrap(), pinned(&server, None), "10.9.8.7").await;
    assert_welcomed(&outcome);

    let impostor = self_signed();
    let outcome =
        handshake(impostor.server_config(ClientAuth::None).unwrap(), pinned(&server, None), "localhost").await;
    let error = client_refused(outcome);
    assert!(simpul_tls::is_fingerprint_mismatch(&error), "{error:?}");
}

/// A server presenting the pinned certificate without its key: the certificate passes the pin, the handshake
/// signature (made with another key) does not.
#[derive(Debug)]
struct StolenCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for StolenCertificate {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn a_pinned_certificate_without_its_key_is_refused() {
    let real = self_signed();
    let other_key = rustls::pki_types::PrivateKeyDer::Pkcs8(rcgen::KeyPair::generate().unwrap().serialize_der().into());
    let key = rustls::crypto::ring::default_provider().key_provider.load_private_key(other_key).unwrap();
    let stolen = rustls::sign::CertifiedKey::new(vec![real.cert_der().clone()], key);
    let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(StolenCertificate(Arc::new(stolen))));
    let error = client_refused(handshake(config, pinned(&real, None), "localhost").await);
    assert!(!simpul_tls::is_fingerprint_mismatch(&error), "the pin matched: {error:?}");
    assert!(matches!(error, rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)), "{error:?}");
}

#[tokio::test]
async fn a_server_trusted_by_ca_must_carry_the_name_asked_for() {
    let server = Identity::self_signed(&["dwh.example".to_owned(), "198.51.100.1".to_owned()]).unwrap();
    let trust = ServerTrust::Ca(vec![server.cert_der().clone()]);
    for name in ["localhost", "127.0.0.1", "::1", "dwh.example", "198.51.100.1"] {
        let outcome =
            handshake(server.server_config(ClientAuth::None).unwrap(), client_config(&trust, None).unwrap(), name)
                .await;
        assert_welcomed(&outcome);
    }
    for name in ["other.example", "198.51.100.2"] {
        let outcome =
            handshake(server.server_config(ClientAuth::None).unwrap(), client_config(&trust, None).unwrap(), name)
                .await;
        let error = client_refused(outcome);
        assert!(
            matches!(error, rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })),
            "{name}: {error:?}"
        );
    }
    // Another certificate is not trusted at all.
    let stranger = self_signed();
    let outcome =
        handshake(stranger.server_config(ClientAuth::None).unwrap(), client_config(&trust, None).unwrap(), "localhost")
            .await;
    assert!(matches!(client_refused(outcome), rustls::Error::InvalidCertificate(_)));
}

#[tokio::test]
async fn mutual_tls_with_a_pinned_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = self_signed();
    let pki = Pki::new("relay");
    let (gateway, other) = (pki.client("gateway-3374", dir.path()), pki.client("gateway-3276", dir.path()));
    let required = || server.server_config(ClientAuth::Required(ClientTrust::Pinned(vec![gateway.fingerprint()])));

    // The pinned client, which pins the server too: both ways.
    let outcome = handshake(required().unwrap(), pinned(&server, Some(&gateway)), "relay").await;
    assert_welcomed(&outcome);
    assert_eq!(outcome.server.unwrap(), Some(gateway.fingerprint()));

    // Without a certificate.
    let error = server_refused(handshake(required().unwrap(), pinned(&server, None), "relay").await);
    assert!(matches!(error, rustls::Error::NoCertificatesPresented), "{error:?}");

    // Another certificate, even from the same CA.
    let error = server_refused(handshake(required().unwrap(), pinned(&server, Some(&other)), "relay").await);
    assert!(simpul_tls::is_fingerprint_mismatch(&error), "{error:?}");

    // A server may pin several clients.
    let both = server
        .server_config(ClientAuth::Required(ClientTrust::Pinned(vec![other.fingerprint(), gateway.fingerprint()])))
        .unwrap();
    let outcome = handshake(both, pinned(&server, Some(&gateway)), "relay").await;
    assert_eq!(outcome.server.unwrap(), Some(gateway.fingerprint()));

    // The client's pin of the server holds with a client certificate as without.
    let impostor = self_signed();
    let config = impostor.server_config(ClientAuth::Required(ClientTrust::Pinned(vec![gateway.fingerprint()])));
    let error = client_refused(handshake(config.unwrap(), pinned(&server, Some(&gateway)), "relay").await);
    assert!(simpul_tls::is_fingerprint_mismatch(&error), "{error:?}");
}

#[tokio::test]
async fn mutual_tls_with_client_certificates_from_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server = self_signed();
    let (pki, stranger) = (Pki::new("relay"), Pki::new("stranger"));
    let gateway = pki.client("gateway-3374", dir.path());
    let foreign = stranger.client("gateway-9999", dir.path());
    let trust = ClientTrust::Ca(vec![pki.ca.clone()]);

    let required = || server.server_config(ClientAuth::Required(trust.clone())).unwrap();
    let outcome = handshake(required(), pinned(&server, Some(&gateway)), "relay").await;
    assert_welcomed(&outcome);
    assert_eq!(outcome.server.unwrap(), Some(gateway.fingerprint()));
    let error = server_refused(handshake(required(), pinned(&server, None), "relay").await);
    assert!(matches!(error, rustls::Error::NoCertificatesPresented), "{error:?}");
    let error = server_refused(handshake(required(), pinned(&server, Some(&foreign)), "relay").await);
    assert!(matches!(error, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)), "{error:?}");

    // Optional: a client without a certificate is let through (the application decides), one with a certificate
    // is still verified.
    let optional = || server.server_config(ClientAuth::Optional(trust.clone())).unwrap();
    let outcome = handshake(optional(), pinned(&server, None), "relay").await;
    assert_welcomed(&outcome);
    assert_eq!(outcome.server.unwrap(), None);
    let outcome = handshake(optional(), pinned(&server, Some(&gateway)), "relay").await;
    assert_eq!(outcome.server.unwrap(), Some(gateway.fingerprint()));
    let error = server_refused(handshake(optional(), pinned(&server, Some(&foreign)), "relay").await);
    assert!(matches!(error, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)), "{error:?}");
}

#[tokio::test]
async fn only_tls_1_3_is_spoken() {
    let server = self_signed();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert_der().clone()).unwrap();
    let tls12_client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let outcome = handshake(server.server_config(ClientAuth::None).unwrap(), tls12_client, "localhost").await;
    let error = outcome.server.expect_err("a TLS 1.2 client is refused");
    assert!(matches!(tls_error(&error), Some(rustls::Error::PeerIncompatible(_))), "{error}");

    // A TLS 1.2-only server, with a certificate the client pins: refused all the same.
    let old = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(old.signing_key.serialize_der().into());
    let tls12_server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![old.cert.der().clone()], key)
        .unwrap();
    let client = client_config(&ServerTrust::Pinned(Fingerprint::of(old.cert.der())), None).unwrap();
    let outcome = handshake(tls12_server, client, "localhost").await;
    let error = outcome.client.expect_err("a TLS 1.2 server is refused");
    assert!(
        matches!(tls_error(&error), Some(rustls::Error::AlertReceived(_) | rustls::Error::PeerIncompatible(_))),
        "{error}"
    );
}

// ----------------------------------------------------------------------------------------------------------------
// The HTTPS connector under hyper-util's client.

/// An HTTP/1.1 server over TLS answering every request with the fingerprint of the client's certificate.
async fn https_server(config: ServerConfig) -> std::net::SocketAddr {
    use hyper::service::service_fn;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let client = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(Fingerprint::of);
                let answer = client.map_or("none".to_owned(), |f| f.to_string());
                let service = service_fn(move |_request| {
                    let answer = answer.clone();
                    async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(answer)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

type HttpsClient = hyper_util::client::legacy::Client<HttpsConnector, Full<Bytes>>;

fn https_client(tls: ClientConfig, server_name: Option<&str>, connect_timeout: Duration) -> HttpsClient {
    let name = server_name.map(|n| ServerName::try_from(n.to_owned()).unwrap());
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpsConnector::new(
        tls,
        name,
        connect_timeout,
    ))
}

async fn get(client: &HttpsClient, url: &str) -> Result<String, hyper_util::client::legacy::Error> {
    let response = client.get(url.parse().unwrap()).await?;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8(body.to_vec()).unwrap())
}

/// The connector's error in the client's error.
#[track_caller]
fn connect_error(error: &hyper_util::client::legacy::Error) -> &ConnectError {
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        if let Some(connect) = e.downcast_ref::<ConnectError>() {
            return connect;
        }
        cause = e.source();
    }
    panic!("no ConnectError in {error:?}")
}

const SECONDS: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_connector_speaks_mutual_tls_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = self_signed();
    let pki = Pki::new("relay");
    let (gateway, other) = (pki.client("gateway-3374", dir.path()), pki.client("gateway-3276", dir.path()));
    let config = server.server_config(ClientAuth::Required(ClientTrust::Pinned(vec![gateway.fingerprint()])));
    let addr = https_server(config.unwrap()).await;
    let url = format!("https://{addr}/");

    let client = https_client(pinned(&server, Some(&gateway)), None, SECONDS);
    assert_eq!(get(&client, &url).await.unwrap(), gateway.fingerprint().to_string());
    assert_eq!(get(&client, &url).await.unwrap(), gateway.fingerprint().to_string(), "on the kept connection");

    // The server refuses a client without a certificate, or with another one: the client's handshake ends in the
    // server's alert, on the connection or on its first request.
    for client in
        [https_client(pinned(&server, None), None, SECONDS), https_client(pinned(&server, Some(&other)), None, SECONDS)]
    {
        let error = get(&client, &url).await.expect_err("refused");
        let text = format!("{error:?}");
        assert!(text.contains("AlertReceived"), "{text}");
    }

    // The client refuses a server that is not the pinned one, naming the mismatch.
    let impostor = https_server(self_signed().server_config(ClientAuth::None).unwrap()).await;
    let error = get(&client, &format!("https://{impostor}/")).await.unwrap_err();
    let connect = connect_error(&error);
    assert!(matches!(connect, ConnectError::Tls(_)), "{connect:?}");
    assert!(connect.tls().is_some_and(simpul_tls::is_fingerprint_mismatch), "{connect:?}");

    // Plain http is refused without a connection.
    let error = get(&client, &format!("http://{addr}/")).await.unwrap_err();
    assert!(format!("{error:?}").contains("unsupported scheme"), "{error:?}");
}

#[tokio::test]
async fn the_connector_checks_the_configured_server_name() {
    let server = Identity::self_signed(&["dwh.example".to_owned()]).unwrap();
    let addr = https_server(server.server_config(ClientAuth::None).unwrap()).await;
    let trust = ServerTrust::Ca(vec![server.cert_der().clone()]);
    let url = format!("https://{addr}/");
    for name in [None, Some("dwh.example"), Some("localhost")] {
        let client = https_client(client_config(&trust, None).unwrap(), name, SECONDS);
        assert_eq!(get(&client, &url).await.unwrap(), "none", "{name:?}");
    }
    let client = https_client(client_config(&trust, None).unwrap(), Some("other.example"), SECONDS);
    let error = get(&client, &url).await.unwrap_err();
    let tls = connect_error(&error).tls().cloned();
    assert!(
        matches!(tls, Some(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. }))),
        "{tls:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_tcp_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = https_client(pinned(&self_signed(), None), None, SECONDS);
    let error = get(&client, &format!("https://{addr}/")).await.unwrap_err();
    match connect_error(&error) {
        ConnectError::Tcp(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A peer that accepts TCP but never speaks TLS: the connect timeout covers the handshake. On tokio's paused clock,
/// which moves to the timer once every task waits.
#[tokio::test(start_paused = true)]
async fn the_connect_timeout_covers_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // One connection is accepted and held open, silent.
    let holder = tokio::spawn(async move {
        let _held = listener.accept().await;
        std::future::pending::<()>().await
    });
    let client = https_client(pinned(&self_signed(), None), None, Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    let error = get(&client, &format!("https://{addr}/")).await.unwrap_err();
    assert!(matches!(connect_error(&error), ConnectError::Timeout), "{error:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    holder.abort();
}
