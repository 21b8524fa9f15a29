//! The HTTPS server: TLS 1.3 and HTTP/1.1 with keep-alive, read timeouts, the body limit, injected faults and a
//! graceful shutdown. What a request means is the [`Handler`]'s business.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method as HttpMethod, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use simpul_core::wire::code::Dialect;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, HttpConfig, WarehouseConfig};
use crate::consumer::{canonical, Consumers};
use crate::faults::{Fault, Faults};
use crate::handler::{transport_reply, Caller, Handler, Reply};
use crate::population::Population;
use crate::tls::{Fingerprint, Identity, TlsError};
use simpul_core::clock::Clock;

/// How much of an oversized body is read and thrown away before the 413 is sent. Clients such as Python `requests`
/// send the whole body before reading the answer; cutting them off mid-body makes the kernel reset the connection,
/// and the client then sees a reset instead of the 413. Past this much, the connection is closed anyway.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// A server ready to run: the request handler, TLS and the transport-level settings.
#[derive(Debug)]
pub struct Warehouse {
    handler: Handler,
    tls: Arc<rustls::ServerConfig>,
    http: HttpConfig,
    faults: Faults,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl Warehouse {
    /// Builds a server from a validated config, a population (shared, since building one can take a while) and the
    /// clock that access hours and quota days are read from.
    pub fn new(
        config: &WarehouseConfig,
        population: Arc<Population>,
        identity: &Identity,
        clock: Arc<dyn Clock>,
    ) -> Result<Warehouse, StartError> {
        config.validate()?;
        let consumers = Consumers::new(config.consumers.clone()).map_err(ConfigError::from)?;
        let tls = crate::tls::server_config(identity, config.tls.client_ca.as_deref())?;
        Ok(Warehouse {
            handler: Handler::new(consumers, population, clock, config.timezone.0),
            tls,
            http: config.http.clone(),
            faults: Faults::new(config.faults.clone()),
        })
    }

    /// The HTTP requests that have arrived so far, answered or not: what a client's cache saves shows here.
    pub fn requests(&self) -> u64 {
        self.faults.drawn()
    }

    /// One HTTP request: faults first, then method, body limit and the handler.
    async fn serve(
        &self,
        request: Request<Incoming>,
        caller: Caller,
        connection: &Connection,
    ) -> Result<Response<Full<Bytes>>, Dropped> {
        let latency = self.faults.config().latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let path = request.uri().path().to_owned();
        let dialect = || self.handler.consumer_of(&path).map_or(Dialect::Coded, |c| c.config.dialect);
        match self.faults.draw() {
            Fault::None => {}
            Fault::Error(status) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                let message = format!("Gangguan layanan (simulasi {})", status.as_u16());
                return Ok(response(transport_reply(dialect(), status, &message), false));
            }
            Fault::Hang => {
                tokio::select! {
                    _ = tokio::time::sleep(self.faults.config().hang_limit()) => {}
                    _ = stopped(connection.stopping.clone()) => {}
                }
                return Err(Dropped);
            }
            Fault::Reset => {
                connection.reset();
                return Err(Dropped);
            }
        }
        if request.method() != HttpMethod::POST {
            let message = format!("Metode HTTP {} tidak didukung; gunakan POST", request.method());
            let mut reply = response(transport_reply(dialect(), StatusCode::METHOD_NOT_ALLOWED, &message), false);
            reply.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return Ok(reply);
        }
        let query = request.uri().query().map(str::to_owned);
        let body = match read_body(request.into_body(), self.http.body_limit, self.http.read_timeout()).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                let message = format!("Badan permintaan melebihi {} bita", self.http.body_limit);
                return Ok(response(transport_reply(dialect(), StatusCode::PAYLOAD_TOO_LARGE, &message), true));
            }
            Err(BodyError::Broken) => return Err(Dropped),
        };
        let reply = self.handler.handle(caller, &path, query.as_deref(), &body).await;
        Ok(response(reply, false))
    }
}

fn response(reply: Reply, close: bool) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(reply.status).header(header::CONTENT_TYPE, "application/json");
    if close {
        builder = builder.header(header::CONNECTION, "close");
    }
    builder.body(Full::new(Bytes::from(reply.body))).expect("static headers are valid")
}

enum BodyError {
    /// Over the limit; what was sent has been read and dropped, up to [`DRAIN_LIMIT`].
    TooLarge,
    /// The client went away, sent a malformed body, or was too slow.
    Broken,
}

/// Reads a body of at most `limit` bytes without ever holding more than that.
async fn read_body(mut body: Incoming, limit: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    let read = async {
        let mut buf = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(|_| BodyError::Broken)?.into_data() else { continue };
            seen += data.len();
            if seen > DRAIN_LIMIT {
                return Err(BodyError::TooLarge);
            }
            if seen <= limit {
                buf.extend_from_slice(&data);
            }
        }
        if seen > limit {
            return Err(BodyError::TooLarge);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(BodyError::Broken))
}

/// A request the server chose not to answer (a hang or reset fault, or a broken body): hyper closes the connection.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request dropped")
    }
}

impl std::error::Error for Dropped {}

/// Per-connection state the request path needs.
struct Connection {
    /// A duplicate of the socket's descriptor, to set SO_LINGER 0 for a reset fault while hyper owns the stream.
    socket: Mutex<Option<OwnedFd>>,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    /// Makes the coming close of the connection a TCP reset rather than an orderly FIN.
    fn reset(&self) {
        // Dropping the duplicate here matters: the socket only closes once every descriptor of it is closed.
        if let Some(fd) = self.socket.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Serves HTTPS on `listener` until `shutdown` completes, then lets open requests finish (up to `[http]
/// shutdown_grace_ms`) and returns. Tests run it in-process on `127.0.0.1:0`.
pub async fn run(
    listener: TcpListener,
    warehouse: Arc<Warehouse>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(warehouse.clone(), stream, peer, stopping.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let grace = warehouse.http.shutdown_grace();
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!(open = connections.len(), "connections still open after the grace period; closing them");
        connections.shutdown().await;
    }
    Ok(())
}

async fn serve_connection(
    warehouse: Arc<Warehouse>,
    stream: TcpStream,
    peer: SocketAddr,
    stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let connection = Arc::new(Connection {
        socket: Mutex::new(stream.as_fd().try_clone_to_owned().ok()),
        stopping: stopping.clone(),
    });
    let read_timeout = warehouse.http.read_timeout();
    let tls = match tokio::time::timeout(read_timeout, TlsAcceptor::from(warehouse.tls.clone()).accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    // rustls has verified the chain against client_ca; its leaf is what a consumer may pin.
    let client_cert = tls.get_ref().1.peer_certificates().and_then(|certs| certs.first()).map(Fingerprint::of);
    let caller = Caller { peer: canonical(peer.ip()), client_cert };
    let service = {
        let (warehouse, connection) = (warehouse.clone(), connection.clone());
        service_fn(move |request| {
            let (warehouse, connection) = (warehouse.clone(), connection.clone());
            async move { warehouse.serve(request, caller, &connection).await }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(stopping) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Completes once the server is stopping.
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}
