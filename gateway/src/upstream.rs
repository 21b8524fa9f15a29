//! The gateway's client for its upstream: the national warehouse (in the demo and the tests the stand-in
//! `simpul-warehouse`), later a relay. Data requests that the gateway does not answer itself are forwarded here as
//! `POST /dukcapil/get_json/{consumer_id}/{METHOD}` over HTTPS (TLS 1.3 only, HTTP/1.1 with keep-alive), with the
//! institution's upstream consumer credentials in the body the caller built.
//!
//! - **Trust**: either a PEM CA (or the upstream's self-signed certificate) verified the usual way, names included, or
//!   a pinned SHA-256 fingerprint of the upstream's leaf certificate (names ignored, handshake signatures still
//!   verified).
//! - **Bounded pool**: at most `max_connections` requests in flight; a request that finds no free slot within
//!   `queue_timeout_ms` is refused with 503 instead of piling up.
//! - **Failures** come back as a [`Failure`] with the HTTP status the gateway should answer (502, 503 or 504) and a
//!   message fit for the caller's JSON body and the audit log; the caller renders it in the institution's dialect with
//!   `simpul_core::wire::envelope::render_transport_error`. Answers with status 2xx and 4xx are returned as they are
//!   ([`Reply`]); the caller parses the envelope.
//!
//! | what happened | status |
//! | --- | --- |
//! | connection refused, unreachable or reset; TLS failure (certificate not trusted, fingerprint mismatch); a malformed HTTP answer; an answer over 8 MiB; a consumer id that cannot go into the path | 502 |
//! | the upstream answered 502, 503 or 504 | the same |
//! | the upstream answered another 5xx (or 1xx/3xx) | 502 |
//! | no free slot within `queue_timeout_ms` | 503 |
//! | no connection within `connect_timeout_ms`, or no whole answer within `request_timeout_ms` | 504 |

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::ServerName;
use serde::Deserialize;
use simpul_core::wire::method::Method;
use simpul_tls::{ConnectError, Fingerprint, FingerprintError, HttpsConnector, ServerTrust, TlsError};
use tokio::sync::Semaphore;

/// The largest upstream answer read; a larger one is a 502.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// `[upstream]` in the gateway's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `https://host[:port]`, without a path (the web-service path is added per request). `http://` is refused.
    pub url: String,
    /// A PEM file of the CA certificates (or the self-signed certificate) to trust, e.g. the stand-in's
    /// `state_dir/tls/cert.pem`. Exactly one of `ca` and `fingerprint`.
    pub ca: Option<PathBuf>,
    /// The SHA-256 of the upstream's leaf certificate (DER), as `simpul-warehouse serve` prints it (`AA:BB:…`) or as
    /// 64 hex digits, in any case (`simpul_tls::Fingerprint`). The certificate's names are not checked.
    pub fingerprint: Option<String>,
    /// The name sent as SNI and, with `ca`, verified against the certificate; default: the URL's host.
    pub server_name: Option<String>,
    /// Time for the TCP connection and the TLS handshake.
    pub connect_timeout_ms: u64,
    /// Time for the whole request once it has a slot: connecting (when no pooled connection is idle), sending, and
    /// reading the whole answer.
    pub request_timeout_ms: u64,
    /// Requests in flight at once (each holds one connection); the bound of the pool.
    pub max_connections: usize,
    /// How long a request waits for a free slot before it is refused (503).
    pub queue_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept for reuse: shorter than the upstream keeps it (the stand-in
    /// closes idle connections after 10 s), so a request never races the upstream's close of a pooled connection.
    pub pool_idle_timeout_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: String::new(),
            ca: None,
            fingerprint: None,
            server_name: None,
            connect_timeout_ms: 3_000,
            request_timeout_ms: 10_000,
            max_connections: 32,
            queue_timeout_ms: 2_000,
            pool_idle_timeout_ms: 5_000,
        }
    }
}

/// A config that cannot work, or a client that could not be built from it.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream: url {0}")]
    Url(String),
    #[error("upstream: set exactly one of `ca` (a PEM file to trust) and `fingerprint` (the SHA-256 of the certificate); {0}")]
    Trust(&'static str),
    #[error("upstream: fingerprint {0}")]
    Fingerprint(#[from] FingerprintError),
    #[error("upstream: server_name {0:?} is not a DNS name or an IP address")]
    ServerName(String),
    #[error("upstream: {0} must be more than 0")]
    Zero(&'static str),
    #[error("upstream: reading ca {0}: {1}")]
    ReadCa(PathBuf, io::Error),
    #[error("upstream: ca {0} holds no usable PEM certificate")]
    NoCa(PathBuf),
    #[error("upstream: ca {0}: {1}")]
    Ca(PathBuf, TlsError),
    #[error("upstream: TLS: {0}")]
    Tls(TlsError),
}

/// How the upstream's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trust {
    Ca(PathBuf),
    Pin(Fingerprint),
}

/// What `validate` reads out of a config.
#[derive(Debug, Clone)]
struct Target {
    /// `host:port` for the request URI (IPv6 in brackets).
    authority: String,
    server_name: ServerName<'static>,
    trust: Trust,
}

impl UpstreamConfig {
    pub fn validate(&self) -> Result<(), UpstreamError> {
        self.target().map(|_| ())
    }

    fn target(&self) -> Result<Target, UpstreamError> {
        for (name, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("queue_timeout_ms", self.queue_timeout_ms),
            ("pool_idle_timeout_ms", self.pool_idle_timeout_ms),
        ] {
            if value == 0 {
                return Err(UpstreamError::Zero(name));
            }
        }
        if self.max_connections == 0 {
            return Err(UpstreamError::Zero("max_connections"));
        }
        let (authority, host) = parse_url(&self.url)?;
        let server_name = match &self.server_name {
            Some(name) => parse_server_name(name.trim()).ok_or_else(|| UpstreamError::ServerName(name.clone()))?,
            None => parse_server_name(&host).ok_or_else(|| UpstreamError::ServerName(host.clone()))?,
        };
        let trust = match (&self.ca, &self.fingerprint) {
            (Some(ca), None) => Trust::Ca(ca.clone()),
            (None, Some(fp)) => Trust::Pin(fp.parse()?),
            (Some(_), Some(_)) => return Err(UpstreamError::Trust("both are set")),
            (None, None) => return Err(UpstreamError::Trust("neither is set")),
        };
        Ok(Target { authority, server_name, trust })
    }
}

/// `https://host[:port][/]` → (authority with the port, default 443; host, IPv6 without brackets).
fn parse_url(url: &str) -> Result<(String, String), UpstreamError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(UpstreamError::Url("is missing; write https://host:port".to_owned()));
    }
    let uri: Uri = url.parse().map_err(|e| UpstreamError::Url(format!("{url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => {}
        Some(s) if s.eq_ignore_ascii_case("http") => {
            return Err(UpstreamError::Url(format!(
                "{url:?} is plain http; the upstream carries personal data and credentials, so it must be https://"
            )))
        }
        _ => return Err(UpstreamError::Url(format!("{url:?} is not an https:// URL"))),
    }
    let authority = uri.authority().ok_or_else(|| UpstreamError::Url(format!("{url:?} has no host")))?;
    if authority.as_str().contains('@') {
        // Not echoed: whatever is before the '@' may be a password.
        return Err(UpstreamError::Url(
            "must not carry user or password (user@host); the credentials go in the body".into(),
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(UpstreamError::Url(format!(
            "{url:?} has a path or query; write only https://host:port (the web-service path is added per request)"
        )));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(UpstreamError::Url(format!("{url:?} has no host")));
    }
    let port = authority.port_u16().unwrap_or(443);
    if port == 0 {
        return Err(UpstreamError::Url(format!("{url:?} has port 0")));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let authority = if bare.contains(':') { format!("[{bare}]:{port}") } else { format!("{bare}:{port}") };
    Ok((authority, bare))
}

fn parse_server_name(name: &str) -> Option<ServerName<'static>> {
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_owned()).ok()
}

/// The upstream's answer as it came, for a status of 2xx or 4xx. The body is at most [`MAX_ANSWER_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Why there is no answer to pass on: the status the gateway answers (502, 503 or 504) and what happened, in words
/// fit for the caller's JSON body and the audit log (never credentials nor the request body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({status})")]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    fn bad_gateway(message: impl Into<String>) -> Failure {
        Failure { status: StatusCode::BAD_GATEWAY, message: message.into() }
    }

    fn timeout(message: impl Into<String>) -> Failure {
        Failure { status: StatusCode::GATEWAY_TIMEOUT, message: message.into() }
    }
}

/// The client. Cheap to clone: clones share the pool and its bound.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpsConnector, Full<Bytes>>,
    /// The client's connector, for [`Upstream::probe`].
    connector: HttpsConnector,
    authority: String,
    trust: Trust,
    slots: Arc<Semaphore>,
    max_connections: usize,
    queue_timeout: Duration,
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trust = match &self.inner.trust {
            Trust::Ca(path) => format!("ca {}", path.display()),
            Trust::Pin(pin) => format!("fingerprint {pin}"),
        };
        f.debug_struct("Upstream")
            .field("authority", &self.inner.authority)
            .field("trust", &trust)
            .field("max_connections", &self.inner.max_connections)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Upstream {
    /// Validates the config, reads the CA file if any, and builds the TLS configuration and the connection pool.
    /// Nothing is connected until the first call.
    pub fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let target = config.target()?;
        let trust = match &target.trust {
            Trust::Ca(path) => ServerTrust::Ca(simpul_tls::read_certs(path).map_err(|e| ca_error(path, e))?.1),
            Trust::Pin(pin) => ServerTrust::Pinned(*pin),
        };
        let tls = simpul_tls::client_config(&trust, None).map_err(|e| match &target.trust {
            Trust::Ca(path) => ca_error(path, e),
            Trust::Pin(_) => UpstreamError::Tls(e),
        })?;
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        // Every request goes to the configured host: the URI is built from the configured authority.
        let connector = HttpsConnector::new(tls, Some(target.server_name), connect_timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_millis(config.pool_idle_timeout_ms))
            .pool_max_idle_per_host(config.max_connections)
            .build(connector.clone());
        Ok(Upstream {
            inner: Arc::new(Inner {
                client,
                connector,
                authority: target.authority,
                trust: target.trust,
                slots: Arc::new(Semaphore::new(config.max_connections)),
                max_connections: config.max_connections,
                queue_timeout: Duration::from_millis(config.queue_timeout_ms),
                request_timeout: Duration::from_millis(config.request_timeout_ms),
                connect_timeout,
            }),
        })
    }

    /// Requests holding a slot right now (for metrics and tests).
    pub fn in_flight(&self) -> usize {
        self.inner.max_connections - self.inner.slots.available_permits()
    }

    /// `POST /dukcapil/get_json/{consumer_id}/{method}` with `body` (JSON the caller built, e.g. with
    /// `simpul_core::wire::request::Request::to_body`). The method goes by its canonical wire name.
    ///
    /// `consumer_id` must be 1 to 128 characters of `A-Z a-z 0-9 _ . -` (and not `.` or `..`): it is configured by
    /// an admin, so the config should have refused anything else; if one gets here anyway it is a 502 with a clear
    /// message and nothing is sent.
    pub async fn call(&self, consumer_id: &str, method: Method, body: Vec<u8>) -> Result<Reply, Failure> {
        check_consumer_id(consumer_id)?;
        let inner = &self.inner;
        let uri = format!("https://{}/dukcapil/get_json/{consumer_id}/{}", inner.authority, method.wire_name());
        let request = http::Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::bad_gateway(format!("could not build the request to the warehouse: {e}")))?;
        let permit = match tokio::time::timeout(inner.queue_timeout, inner.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; treat it like a full pool all the same.
            Ok(Err(_)) | Err(_) => {
                return Err(Failure {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: format!(
                        "too many requests in flight to the warehouse (all {} connections busy for {} s)",
                        inner.max_connections,
                        seconds(inner.queue_timeout)
                    ),
                })
            }
        };
        let result = tokio::time::timeout(inner.request_timeout, self.exchange(request)).await;
        drop(permit);
        match result {
            Ok(result) => result,
            Err(_) => Err(Failure::timeout(format!(
                "the warehouse at {} did not answer within {} s",
                inner.authority,
                seconds(inner.request_timeout)
            ))),
        }
    }

    /// One request and its whole answer, without the overall timeout.
    async fn exchange(&self, request: http::Request<Full<Bytes>>) -> Result<Reply, Failure> {
        let response = self.inner.client.request(request).await.map_err(|e| self.classify(&e))?;
        let (parts, body) = response.into_parts();
        let status = parts.status;
        let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await.map(|b| b.to_bytes());
        if status.is_server_error() {
            // The body (read so that the connection can be reused) is the upstream's own error text, which the
            // caller would not show anyway: the status says it.
            return Err(match status {
                StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
                    Failure { status, message: format!("the warehouse is unavailable ({})", status.as_u16()) }
                }
                _ => Failure::bad_gateway(format!("the warehouse failed ({})", status.as_u16())),
            });
        }
        if !(status.is_success() || status.is_client_error()) {
            return Err(Failure::bad_gateway(format!(
                "the warehouse answered an unexpected status {}",
                status.as_u16()
            )));
        }
        match body {
            Ok(body) => Ok(Reply { status, body }),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Failure::bad_gateway(format!(
                "the answer of the warehouse at {} is larger than {} MiB",
                self.inner.authority,
                MAX_ANSWER_BYTES / (1024 * 1024)
            ))),
            Err(e) => Err(self.classify(&*e)),
        }
    }

    /// Whether the warehouse takes a connection now, as a request would make one: TCP, then the TLS handshake with
    /// its certificate checked against the configured trust. Nothing is sent; the connection is closed at once. For
    /// `status`, so it gives up after `limit` if that is shorter than the connect timeout.
    pub async fn probe(&self, limit: Duration) -> Result<(), String> {
        let uri = format!("https://{}/", self.inner.authority);
        let uri: hyper::Uri = uri.parse().map_err(|e| format!("{uri}: {e}"))?;
        let mut connector = self.inner.connector.clone();
        match tokio::time::timeout(limit, tower_service::Service::call(&mut connector, uri)).await {
            Ok(Ok(_connection)) => Ok(()),
            Ok(Err(e)) => Err(self.connect_failure(&e).message),
            Err(_) => Err(format!(
                "the warehouse at {} did not answer within {} s (connecting)",
                self.inner.authority,
                seconds(limit)
            )),
        }
    }

    fn connect_failure(&self, error: &ConnectError) -> Failure {
        let at = &self.inner.authority;
        match error {
            ConnectError::Timeout => Failure::timeout(format!(
                "the warehouse at {at} did not answer within {} s (connecting)",
                seconds(self.inner.connect_timeout)
            )),
            ConnectError::Tcp(e) => Failure::bad_gateway(format!("could not connect to the warehouse at {at}: {e}")),
            ConnectError::Tls(e) => Failure::bad_gateway(tls_failure(at, e)),
        }
    }

    /// The failure behind an error of the client, of hyper or of the connector.
    fn classify(&self, error: &(dyn StdError + 'static)) -> Failure {
        let at = &self.inner.authority;
        let mut reset = false;
        let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(connect) = e.downcast_ref::<ConnectError>() {
                return self.connect_failure(connect);
            }
            if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
                if hyper.is_parse() || hyper.is_parse_status() {
                    return Failure::bad_gateway(format!("the warehouse at {at} sent a malformed HTTP answer"));
                }
                if hyper.is_incomplete_message() {
                    return Failure::bad_gateway(format!(
                        "the warehouse at {at} closed the connection before answering completely"
                    ));
                }
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                match io.kind() {
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
                        reset = true
                    }
                    io::ErrorKind::UnexpectedEof => {
                        return Failure::bad_gateway(format!(
                            "the warehouse at {at} closed the connection before its answer was complete"
                        ))
                    }
                    _ => {}
                }
            }
            cause = e.source();
        }
        if reset {
            return Failure::bad_gateway(format!("the warehouse at {at} reset the connection"));
        }
        Failure::bad_gateway(format!("the connection to the warehouse at {at} failed: {}", chain(error)))
    }
}

fn check_consumer_id(id: &str) -> Result<(), Failure> {
    let fine = (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && id != "."
        && id != "..";
    if fine {
        Ok(())
    } else {
        Err(Failure::bad_gateway(format!(
            "the upstream consumer id {id:?} cannot be sent: it must be 1 to 128 of A-Z a-z 0-9 _ . - (fix the \
             institution's upstream consumer in the config)"
        )))
    }
}

/// The message of a failed TLS handshake.
fn tls_failure(at: &str, error: &io::Error) -> String {
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof => {
                format!("the warehouse at {at} closed the connection during the TLS handshake")
            }
            _ => format!("TLS with the warehouse at {at} failed: {error}"),
        };
    };
    match tls {
        tls if simpul_tls::is_fingerprint_mismatch(tls) => {
            format!(
                "TLS with the warehouse at {at} failed: upstream certificate fingerprint does not match the pinned one"
            )
        }
        rustls::Error::InvalidCertificate(e) => {
            format!("TLS with the warehouse at {at} failed: upstream certificate verification failed ({e})")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("TLS with the warehouse at {at} failed: the warehouse refused the handshake ({alert:?})")
        }
        other => format!("TLS with the warehouse at {at} failed: {other}"),
    }
}

/// An error and its causes, `a: b: c`, without repeats (hyper's errors often repeat their cause in their text).
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(error);
    while let Some(e) = cause {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    parts.join(": ")
}

/// `1.5`, `10`, `0.3`.
fn seconds(d: Duration) -> String {
    format!("{}", d.as_millis() as f64 / 1000.0)
}

/// The error of reading `ca`, in the words of the config.
fn ca_error(path: &std::path::Path, error: TlsError) -> UpstreamError {
    match error {
        TlsError::Read(_, e) => UpstreamError::ReadCa(path.to_owned(), e),
        TlsError::Pem(..) => UpstreamError::NoCa(path.to_owned()),
        other => UpstreamError::Ca(path.to_owned(), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = [
            ("https://127.0.0.1:8100", "127.0.0.1:8100", "127.0.0.1"),
            ("https://dwh.example/", "dwh.example:443", "dwh.example"),
            ("HTTPS://[::1]:8100", "[::1]:8100", "::1"),
        ];
        for (url, authority, host) in ok {
            assert_eq!(parse_url(url).unwrap(), (authority.to_owned(), host.to_owned()), "{url}");
        }
        for bad in ["", "http://127.0.0.1:8100", "127.0.0.1:8100", "https://h/dukcapil", "https://h?x=1", "ftp://h"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let err = parse_url("https://user:secret@h").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn consumer_ids() {
        for ok in ["DEV", "BPS", "IDINSOS_3374", "123456789012345", "a.b-c"] {
            assert!(check_consumer_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a%2F", "é", &"x".repeat(129)] {
            let failure = check_consumer_id(bad).unwrap_err();
            assert_eq!(failure.status, StatusCode::BAD_GATEWAY, "{bad}");
        }
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(seconds(Duration::from_millis(3000)), "3");
        assert_eq!(seconds(Duration::from_millis(300)), "0.3");
        assert_eq!(seconds(Duration::from_millis(1250)), "1.25");
    }
}
