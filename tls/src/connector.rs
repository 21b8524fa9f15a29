//! The HTTPS connector for hyper-util's client: hyper-rustls over hyper-util's TCP connector, HTTP/1.1, https only,
//! the TCP connection and the TLS handshake together within one timeout, and failures that say which step failed.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn StdError + Send + Sync>;

/// A connection the connector made (always TLS: plain http is refused).
pub type HttpsStream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Why a connection could not be made; found again in the chain of the client's error.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting timed out")]
    Timeout,
    /// Resolving the name or the TCP connection failed: what the operating system said (rather than hyper-util's
    /// "tcp connect error"), with its kind.
    #[error("TCP: {0}")]
    Tcp(io::Error),
    /// The TLS handshake failed: the I/O error of tokio-rustls, holding the [`rustls::Error`] when TLS itself
    /// failed (see [`ConnectError::tls`]), or the peer's closing or resetting of the connection.
    #[error("TLS: {0}")]
    Tls(io::Error),
}

impl ConnectError {
    /// The TLS error of a failed handshake, if it was TLS that failed (a certificate refused, an alert).
    pub fn tls(&self) -> Option<&rustls::Error> {
        match self {
            ConnectError::Tls(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
            _ => None,
        }
    }
}

/// The last cause of the TCP connector's error, as an I/O error of the same kind.
fn innermost(error: &(dyn StdError + 'static)) -> io::Error {
    let mut last = error;
    while let Some(cause) = last.source() {
        last = cause;
    }
    let kind = last.downcast_ref::<io::Error>().map_or(io::ErrorKind::Other, io::Error::kind);
    io::Error::new(kind, last.to_string())
}

/// Connects to the URI's host and port, TCP then TLS (1.3, as `tls` says), both within `connect_timeout`.
#[derive(Clone, Debug)]
pub struct HttpsConnector {
    inner: hyper_rustls::HttpsConnector<Tcp>,
    connect_timeout: Duration,
}

impl HttpsConnector {
    /// `tls` must have no ALPN protocols (HTTP/1.1 goes without). The certificate is checked against `server_name`,
    /// or the URI's host when it is `None`.
    pub fn new(tls: ClientConfig, server_name: Option<ServerName<'static>>, connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        // The scheme is https, which the TCP connector would refuse by default.
        http.enforce_http(false);
        http.set_nodelay(true);
        let builder = HttpsConnectorBuilder::new().with_tls_config(tls).https_only();
        let builder = match server_name {
            Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
            None => builder,
        };
        HttpsConnector { inner: builder.enable_http1().wrap_connector(Tcp(http)), connect_timeout }
    }
}

impl Service<Uri> for HttpsConnector {
    type Response = HttpsStream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpsStream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(classify)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.connect_timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map_err(classify),
                Err(_) => Err(ConnectError::Timeout),
            }
        })
    }
}

/// hyper-rustls boxes the TCP connector's error as it is ([`TcpFailure`]) and the handshake's I/O error inside
/// another I/O error.
fn classify(error: BoxError) -> ConnectError {
    let error = match error.downcast::<TcpFailure>() {
        Ok(tcp) => return ConnectError::Tcp(innermost(&*tcp.0)),
        Err(other) => other,
    };
    match error.downcast::<io::Error>() {
        Ok(outer) => ConnectError::Tls((*outer).downcast::<io::Error>().unwrap_or_else(|outer| outer)),
        // A server name the URI's host cannot be.
        Err(other) => ConnectError::Tls(io::Error::other(other)),
    }
}

/// hyper-util's TCP connector with its failures marked as TCP's.
#[derive(Clone, Debug)]
struct Tcp(HttpConnector);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TcpFailure(BoxError);

impl Service<Uri> for Tcp {
    type Response = TokioIo<TcpStream>;
    type Error = TcpFailure;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, TcpFailure>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(|e| TcpFailure(e.into()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map_err(|e| TcpFailure(e.into())) })
    }
}
