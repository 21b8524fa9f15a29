//! The real warehouse server in-process on 127.0.0.1:0, and a hyper + rustls client that trusts its certificate.

#![allow(dead_code)] // each test file uses its own part of these helpers

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use argon2::PasswordHasher;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Map, Value};
use simpul_core::clock::ManualClock;
use simpul_core::wire::code::ResponseCode;
use simpul_core::wire::envelope;
use simpul_warehouse::config::WarehouseConfig;
use simpul_warehouse::population::{Population, PopulationConfig, Sample, SampleKind};
use simpul_warehouse::server::{run, Warehouse};
use simpul_warehouse::tls::Identity;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// Residents in the test population: enough for every kind of record, small enough to build in a blink.
pub const RESIDENTS: u64 = 20_000;

/// One population for all the servers of a test binary.
pub fn population() -> Arc<Population> {
    static POPULATION: OnceLock<Arc<Population>> = OnceLock::new();
    POPULATION
        .get_or_init(|| {
            let config = PopulationConfig { residents: RESIDENTS, ..PopulationConfig::default() };
            Arc::new(Population::new(config).expect("test population"))
        })
        .clone()
}

/// Real residents of the test population.
pub fn samples(kind: SampleKind, count: usize) -> Vec<Sample> {
    population().sample(kind, count, 7).collect()
}

/// A resident's NIK as the wire writes it.
pub fn nik_of(sample: &Sample) -> String {
    sample.nik.to_string()
}

/// The test clock's start: Monday 6 July 2026, 10:00 in Jakarta (03:00 UTC), a week after the population's
/// consolidation date.
pub fn monday_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 6, 3, 0, 0).unwrap()
}

/// A PHC argon2id hash with cheap parameters: these tests are about the server, not about argon2's cost.
pub fn cheap_hash(password: &str) -> String {
    let params = argon2::Params::new(256, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = argon2::password_hash::SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon.hash_password(password.as_bytes(), &salt).unwrap().to_string()
}

/// A consumer table for a config; `{extra}` lines are appended inside it.
pub fn consumer(id: &str, user: &str, password: &str, extra: &str) -> String {
    format!(
        "[[consumer]]\nid = \"{id}\"\nuser_id = \"{user}\"\npassword_hash = \"{}\"\n{extra}\n",
        cheap_hash(password)
    )
}

/// The server under test.
pub struct Server {
    pub addr: SocketAddr,
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
    pub clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Starts a server from a TOML config with a fresh self-signed certificate.
    pub async fn start(config: &str) -> Server {
        let config: WarehouseConfig = toml::from_str(config).expect("test config parses");
        Server::start_with(config, Identity::self_signed(&[]).unwrap()).await
    }

    pub async fn start_with(config: WarehouseConfig, identity: Identity) -> Server {
        let clock = Arc::new(ManualClock::new(monday_morning()));
        let warehouse = Warehouse::new(&config, population(), &identity, clock.clone()).expect("test config is valid");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, Arc::new(warehouse), async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            cert: identity.cert_der().clone(),
            cert_pem: identity.cert_pem().to_owned(),
            clock,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr, &self.cert, None)
    }

    /// Asks the server to stop and waits for `run` to return.
    pub async fn stop(mut self) -> io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.expect("server task")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A TLS 1.3 client trusting exactly the server's certificate.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

/// A rustls client configuration trusting `ca`, optionally presenting a client certificate.
pub fn client_config(
    ca: &CertificateDer<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    }
}

impl Client {
    pub fn new(
        addr: SocketAddr,
        ca: &CertificateDer<'static>,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Client {
        let config = client_config(ca, identity, &[&rustls::version::TLS13, &rustls::version::TLS12]);
        Client { addr, tls: Arc::new(config) }
    }

    pub fn with_config(addr: SocketAddr, config: rustls::ClientConfig) -> Client {
        Client { addr, tls: Arc::new(config) }
    }

    /// One keep-alive connection.
    pub async fn connect(&self) -> Result<Connection> {
        let tcp = TcpStream::connect(self.addr).await?;
        let tls =
            TlsConnector::from(self.tls.clone()).connect(ServerName::try_from("localhost")?.to_owned(), tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection { sender, driver })
    }

    /// A request on a fresh connection.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply> {
        self.connect().await?.send(method, path, headers, body).await
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Result<Reply> {
        self.send(Method::POST, path, &[("content-type", "application/json")], body).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, body.to_string()).await.expect("request answered")
    }
}

pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Connection {
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply> {
        self.sender.ready().await?;
        let mut request = Request::builder().method(method).uri(path).header("host", "localhost");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.sender.send_request(request.body(Full::new(body.into()))?).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.context("reading the answer")?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn envelope(&self) -> envelope::Envelope {
        envelope::parse(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    pub fn content(&self) -> Vec<Map<String, Value>> {
        self.envelope().content
    }

    pub fn quota(&self) -> u64 {
        self.envelope().quota_remaining
    }

    /// `RESPONSE_CODE` of the coded dialect.
    pub fn code(&self) -> Option<String> {
        self.content().first()?.get("RESPONSE_CODE")?.as_str().map(str::to_owned)
    }

    /// `RESPON` of the legacy dialect.
    pub fn respon(&self) -> Option<String> {
        self.content().first()?.get("RESPON")?.as_str().map(str::to_owned)
    }

    /// Asserts a 200 coded answer with `code` and exactly the table's text in both `RESPONSE_DESC` and `RESPONSE`.
    #[track_caller]
    pub fn assert_code(&self, code: &str) {
        let text = ResponseCode::from_code(code).expect("a table code").description();
        let want = serde_json::json!({"RESPONSE_CODE": code, "RESPONSE_DESC": text, "RESPONSE": text});
        assert_eq!((self.status, Value::Object(self.content()[0].clone())), (StatusCode::OK, want), "{}", self.text());
    }
}
