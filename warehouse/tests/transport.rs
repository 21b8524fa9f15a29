//! Transport: injected faults (counted against the seeded sequence), client certificates, shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{consumer, nik_of, samples, Client, Server};
use http::StatusCode;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use simpul_warehouse::config::WarehouseConfig;
use simpul_warehouse::faults::{Fault, FaultConfig};
use simpul_warehouse::population::SampleKind;
use simpul_warehouse::tls::{Fingerprint, Identity};

const CODED: &str = "/dukcapil/get_json/BPS/CALL_NIK";
const LEGACY: &str = "/dukcapil/get_json/LEG/CALL_NIK";

fn consumers() -> String {
    [
        consumer("BPS", "bps", "pw", "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 1000"),
        consumer("LEG", "leg", "pw", "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 1000\ndialect = \"legacy\""),
    ]
    .concat()
}

fn body(user: &str) -> Value {
    json!({"user_id": user, "password": "pw", "NIK": nik_of(&samples(SampleKind::Alive, 1)[0])})
}

fn with_faults(faults: &str) -> String {
    format!("[faults]\n{faults}\n{}", consumers())
}

/// Whether an error's chain holds an I/O error of this kind.
fn has_io_kind(err: &anyhow::Error, kind: std::io::ErrorKind) -> bool {
    err.chain().any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == kind))
}

#[tokio::test]
async fn error_rate_one_answers_every_request_502_or_503_in_the_dialect() {
    let server = Server::start(&with_faults("seed = 3\nerror_rate = 1.0")).await;
    let client = server.client();
    let config = FaultConfig { seed: 3, error_rate: 1.0, ..FaultConfig::default() };
    let mut seen = std::collections::HashSet::new();
    for i in 0..20u64 {
        let (path, user) = if i % 2 == 0 { (CODED, "bps") } else { (LEGACY, "leg") };
        let reply = client.post_json(path, &body(user)).await;
        let Fault::Error(want) = config.fault_for(i) else { panic!("rate 1.0 is all errors") };
        assert_eq!(reply.status.as_u16(), want, "request {i}");
        seen.insert(want);
        if user == "bps" {
            assert_eq!(reply.code(), Some(want.to_string()), "{}", reply.text());
        } else {
            assert!(reply.respon().unwrap().contains(&want.to_string()), "{}", reply.text());
        }
        assert_eq!(reply.quota(), 0);
    }
    assert_eq!(seen.len(), 2, "both 502 and 503 occur");
    // The faults spent nothing: the first real request finds the whole quota.
    drop(server);
    let server = Server::start(&consumers()).await;
    assert_eq!(server.client().post_json(CODED, &body("bps")).await.quota(), 999);
}

#[tokio::test]
async fn a_seeded_mix_of_faults_is_counted_exactly() {
    let server = Server::start(&with_faults("seed = 11\nerror_rate = 0.3\nreset_rate = 0.3")).await;
    let client = server.client();
    let config = FaultConfig { seed: 11, error_rate: 0.3, reset_rate: 0.3, ..FaultConfig::default() };
    let mut counts = [0usize; 3];
    for i in 0..40 {
        let result = client.post(CODED, body("bps").to_string()).await;
        match config.fault_for(i) {
            Fault::None => {
                assert_eq!(result.unwrap().status, StatusCode::OK, "request {i}");
                counts[0] += 1;
            }
            Fault::Error(status) => {
                assert_eq!(result.unwrap().status.as_u16(), status, "request {i}");
                counts[1] += 1;
            }
            Fault::Reset => {
                let err = result.expect_err("a reset connection gives no answer");
                assert!(has_io_kind(&err, std::io::ErrorKind::ConnectionReset), "request {i}: {err:#}");
                counts[2] += 1;
            }
            Fault::Hang => unreachable!("hang_rate is 0"),
        }
    }
    assert!(counts.iter().all(|c| *c > 0), "each outcome occurred: {counts:?}");
}

#[tokio::test]
async fn a_reset_breaks_a_keep_alive_connection_mid_stream() {
    // The requests before the first reset of the sequence share one connection; the reset kills it. The seed is the
    // first whose sequence answers a few requests before that reset, so the reset really falls mid-stream.
    let first_reset = |seed| {
        let config = FaultConfig { seed, reset_rate: 0.5, ..FaultConfig::default() };
        (0..64).find(|i| config.fault_for(*i) == Fault::Reset).unwrap()
    };
    let seed = (0..).find(|seed| first_reset(*seed) >= 3).unwrap();
    let first_reset = first_reset(seed);
    let server = Server::start(&with_faults(&format!("seed = {seed}\nreset_rate = 0.5"))).await;
    let mut connection = server.client().connect().await.unwrap();
    for i in 0..first_reset {
        let reply = connection.send(http::Method::POST, CODED, &[], body("bps").to_string()).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "request {i}");
    }
    let err = connection.send(http::Method::POST, CODED, &[], body("bps").to_string()).await.unwrap_err();
    assert!(has_io_kind(&err, std::io::ErrorKind::ConnectionReset), "{err:#}");
}

/// On tokio's paused clock, so the deadlines below are the server's time, not the machine's.
#[tokio::test(start_paused = true)]
async fn a_hang_outlasts_the_client_and_does_not_hold_up_shutdown() {
    // Hangs last 5 minutes and shutdown would wait a minute for them: only a hang that gives way to the shutdown
    // lets `run` return within the test's deadline.
    let config = format!("[http]\nshutdown_grace_ms = 60000\n{}", with_faults("hang_rate = 1.0\nhang_ms = 300000"));
    let server = Server::start(&config).await;
    let mut connection = server.client().connect().await.unwrap();
    let mut request = Box::pin(connection.send(http::Method::POST, CODED, &[], "{}"));
    // Waited on without being dropped, so the request stays in flight (a dropped hyper request closes its connection).
    let waited = tokio::time::timeout(Duration::from_millis(300), &mut request).await;
    assert!(waited.is_err(), "no answer while hanging");
    let stopped = tokio::time::timeout(Duration::from_secs(30), server.stop()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
    let outcome = tokio::time::timeout(Duration::from_secs(30), request).await.expect("the request ends");
    assert!(outcome.is_err(), "the hung request gets no answer, its connection closes");
}

/// On tokio's paused clock, which moves only when everything waits: each answer takes the injected 200 ms, neither
/// less nor a whole second more.
#[tokio::test(start_paused = true)]
async fn latency_is_added_to_every_request() {
    let server = Server::start(&with_faults("latency_ms = 200")).await;
    let client = server.client();
    for _ in 0..2 {
        let started = tokio::time::Instant::now();
        let reply = client.post_json(CODED, &body("bps")).await;
        assert_eq!(reply.status, StatusCode::OK);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1200), "{took:?}");
    }
}

#[tokio::test]
async fn after_shutdown_no_connection_is_accepted() {
    let server = Server::start(&consumers()).await;
    let client = server.client();
    assert_eq!(client.post_json(CODED, &body("bps")).await.status, StatusCode::OK);
    let addr = server.addr;
    server.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// A client certificate chain and its key.
type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A private CA that issues client certificates.
struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        Pki { ca_pem: ca_cert.pem(), issuer: Issuer::new(ca, ca_key) }
    }

    fn client(&self, name: &str) -> ClientIdentity {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into()))
    }
}

/// A server whose `client_ca` is `pki`'s, with the consumers of [`consumers`] and `extra`.
async fn mtls_server(pki: &Pki, dir: &std::path::Path, extra: &str) -> Server {
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &pki.ca_pem).unwrap();
    let config = format!("[tls]\nclient_ca = \"{}\"\n{}{extra}", ca_path.display(), consumers());
    let config: WarehouseConfig = toml::from_str(&config).unwrap();
    Server::start_with(config, Identity::self_signed(&[]).unwrap()).await
}

#[tokio::test]
async fn client_certificates_are_required_where_configured() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = Pki::new("relay");
    let stranger = Pki::new("stranger");
    let mtls_consumer = consumer("MTLS", "mtls", "pw", "allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 10\nrequire_client_cert = true");
    let server = mtls_server(&trusted, dir.path(), &mtls_consumer).await;
    let mtls = "/dukcapil/get_json/MTLS/CALL_NIK";

    // Without a certificate: the TLS layer lets the client in, the consumer refuses it (04).
    let anonymous = server.client();
    anonymous.post_json(mtls, &body("mtls")).await.assert_code("04");
    assert_eq!(anonymous.post_json(CODED, &body("bps")).await.status, StatusCode::OK, "others need none");

    // With a certificate from the configured CA: served.
    let with_cert = Client::new(server.addr, &server.cert, Some(trusted.client("relay-gateway")));
    let reply = with_cert.post_json(mtls, &body("mtls")).await;
    assert_eq!((reply.code(), reply.quota()), (None, 9), "{}", reply.text());

    // A certificate from another CA fails the handshake itself: the server alerts "unknown CA".
    let wrong = Client::new(server.addr, &server.cert, Some(stranger.client("stranger-gateway")));
    let err = wrong.post(mtls, body("mtls").to_string()).await.unwrap_err();
    assert!(format!("{err:#}").contains("UnknownCA"), "{err:#}");
}

#[tokio::test]
async fn a_pinned_client_certificate_lets_in_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Pki::new("relay");
    let (pinned, other) = (ca.client("rsud-gateway"), ca.client("puskesmas-gateway"));
    let fingerprint = Fingerprint::of(&pinned.0[0]);
    let pin = consumer(
        "PIN",
        "pin",
        "pw",
        &format!("allowed_addresses = [\"127.0.0.1\"]\nmethods = [\"CALL_NIK\"]\nelements = [\"NIK\"]\ndaily_quota = 10\nclient_cert_sha256 = \"{fingerprint}\""),
    );
    let server = mtls_server(&ca, dir.path(), &pin).await;
    let path = "/dukcapil/get_json/PIN/CALL_NIK";

    let pinned = Client::new(server.addr, &server.cert, Some(pinned));
    let reply = pinned.post_json(path, &body("pin")).await;
    assert_eq!((reply.code(), reply.quota()), (None, 9), "{}", reply.text());
    // The same CA verified it, so the handshake succeeds; the consumer refuses it, spending nothing.
    let other = Client::new(server.addr, &server.cert, Some(other));
    other.post_json(path, &body("pin")).await.assert_code("04");
    // The pin implies a certificate is required.
    server.client().post_json(path, &body("pin")).await.assert_code("04");
    // The other certificate is still good for consumers that pin none.
    assert_eq!(other.post_json(CODED, &body("bps")).await.status, StatusCode::OK);
    let reply =
        Client::new(server.addr, &server.cert, Some(ca.client("rsud-gateway"))).post_json(path, &body("pin")).await;
    assert_eq!(reply.code().as_deref(), Some("04"), "a new certificate for the same name is another certificate");
    assert_eq!(pinned.post_json(path, &body("pin")).await.quota(), 8, "the refusals spent nothing");
}

/// On tokio's paused clock: the 10 s deadline is ten seconds of the server's time, which only the read timeout ends.
#[tokio::test(start_paused = true)]
async fn slow_clients_are_disconnected_after_the_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(&format!("[http]\nread_timeout_ms = 300\n{}", consumers())).await;
    let deadline = Duration::from_secs(10);

    // Connected, but never starts the TLS handshake.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let read = tokio::time::timeout(deadline, silent.read(&mut [0u8; 16])).await.expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // After the handshake: headers that never end, and a body that stops short of its Content-Length.
    let partial: [&[u8]; 2] = [
        b"POST /dukcapil/get_json/BPS/CALL_NIK HTTP/1.1\r\nHost: localhost\r\n",
        b"POST /dukcapil/get_json/BPS/CALL_NIK HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"user_id\"",
    ];
    let config = Arc::new(common::client_config(&server.cert, None, &[&rustls::version::TLS13]));
    for request in partial {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await.unwrap();
        tls.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(deadline, tls.read_to_end(&mut answer)).await.expect("closed by the server");
        let answer = String::from_utf8_lossy(&answer);
        assert!(read.is_err() || !answer.contains("200 OK"), "{answer}");
    }
    assert_eq!(server.client().post_json(CODED, &body("bps")).await.status, StatusCode::OK, "others are unaffected");
}
