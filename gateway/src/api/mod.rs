//! The listener on the tunnel address (10.77.0.1:8000 by default), fed by either face. Every connection is tied to
//! the device that opened it before a byte is read; connections from unknown, suspended or revoked devices are closed
//! at once, and each request checks again, since a device may be suspended while its connection stays open.
//! `GET /` is a health page naming the caller's device; every other path is the web service ([`dukcapil`]), and
//! every answer there, down to a malformed path, a wrong method or a body too large or too slow, is JSON in the
//! dialect of the device's institution.

pub mod dukcapil;
pub mod login;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use simpul_core::device::{Device, DeviceStatus};
use simpul_tunnel::netstack;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

use crate::service::{Gateway, Source};
use crate::snapshot::Snapshot;
use dukcapil::{Dukcapil, Reply, Trail};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body as _;
use simpul_core::audit::record::{Outcome as Recorded, RequestRecord};
use simpul_core::wire::code::Dialect;
use simpul_core::wire::route::parse_path;
use std::time::Instant;

/// A client that has not sent its request head by then is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where connections come from.
#[derive(Debug)]
pub enum Listener {
    /// A kernel socket on the TUN device's address: the source address names the device.
    Tun(tokio::net::TcpListener),
    /// The userspace stack: each stream carries the key of the peer that opened it.
    Userspace(netstack::TcpListener),
}

impl Listener {
    async fn accept(&self) -> io::Result<(Box<dyn Io>, Source)> {
        match self {
            Self::Tun(listener) => {
                let (stream, from) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((Box::new(stream), Source::Address(from.ip())))
            }
            Self::Userspace(listener) => {
                let stream = listener.accept().await?;
                let source = Source::Key(stream.peer());
                Ok((Box::new(stream), source))
            }
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Serves until `shutdown` completes, then closes open connections gracefully.
pub async fn serve(listener: Listener, api: Arc<Dukcapil>, shutdown: impl Future<Output = ()>) {
    let gateway = api.gateway().clone();
    let mut connections = JoinSet::new();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((io, source)) => {
                    if gateway.device_for(source).is_none() {
                        tracing::debug!(?source, "connection from no active device closed");
                        continue;
                    }
                    connections.spawn(connection(io, source, api.clone(), stopping.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "api: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop.send(true);
    let drained =
        tokio::time::timeout(Duration::from_secs(5), async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        connections.shutdown().await;
    }
}

async fn connection(
    io: Box<dyn Io>,
    source: Source,
    api: Arc<Dukcapil>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(route(request, source, &api).await) }
    });
    // Half-close: a client that sends its request and then shuts down its sending side (`shutdown(SHUT_WR)`, as
    // some batch tools do) still gets its answer, and the request its record.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .half_close(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(&mut stopping) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(?source, error = %e, "api connection ended with an error");
    }
}

/// A request body larger than this is refused (413): no web-service request comes near it.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Answers one request and records it in the audit log; the answer leaves only once its record is durable. A
/// request whose record cannot be written is refused instead (fail closed), and gives back any quota it spent (in
/// memory: once the log has failed, nothing more reaches the disk, so after a restart such a unit may stay spent).
async fn route(request: Request<Incoming>, source: Source, api: &Dukcapil) -> Response<Full<Bytes>> {
    let (at, started) = (api.gateway().now(), Instant::now());
    let path = request.uri().path().to_owned();
    let mut trail = Trail::default();
    let mut bytes_in = 0;
    // Taken on every request, once: the device may have been suspended while its connection stayed open, and its
    // institution's dialect changed; everything below decides from this one reading.
    let snapshot = api.gateway().snapshot(source);
    let caller = snapshot.as_ref().map(|s| &s.caller);
    let fallback = api.gateway().config().api.default_dialect;
    let dialect = caller.map_or(fallback, |c| c.dialect(fallback));
    trail.institution = caller.and_then(|c| c.institution.as_ref()).map(|i| i.id.to_string());
    let active = snapshot.as_ref().filter(|s| s.caller.device.status == DeviceStatus::Active);
    let (mut response, outcome) = match active {
        Some(snapshot) if path == "/" => (answer(&request, &snapshot.caller.device, api.gateway()), None),
        None if path == "/" => (text(StatusCode::FORBIDDEN, "this device may not use the gateway now\n".into()), None),
        None => {
            let message = "Perangkat ini tidak boleh memakai gateway saat ini (ditangguhkan atau dicabut)";
            let reply = Reply::transport(dialect, StatusCode::FORBIDDEN, message, 0);
            (json_response(&reply), Some(reply.outcome))
        }
        Some(snapshot) => {
            let reply = dukcapil_reply(request, snapshot, dialect, &path, api, &mut trail, &mut bytes_in).await;
            let outcome = reply.outcome;
            (json_response(&reply), Some(outcome))
        }
    };
    let device = snapshot.map(|s| s.caller.device);
    // Benchmarks only: `bench gateway-audit` measures what the audit record costs against this same gateway built
    // with the `unaudited-benchmark` cargo feature and run with SIMPUL_UNAUDITED_BENCHMARK=1, which answers here
    // without a record. Release and production builds never enable that feature, so they do not contain this check.
    #[cfg(feature = "unaudited-benchmark")]
    if unaudited_benchmark() {
        // The quota spend is still made durable before the answer, in a batch of its own (one transaction, one
        // flush, shared by whatever waits): the comparison is with a gateway that keeps every other promise.
        return match api.gateway().auditor().commit_writes().await {
            Ok(_) => response,
            Err(e) => {
                tracing::error!("quota not durable: {e}");
                let message = "Kuota tidak dapat dicatat; permintaan tidak dilayani";
                json_response(&Reply::transport(dialect, StatusCode::SERVICE_UNAVAILABLE, message, 0))
            }
        };
    }
    let request_id = format!("{:016x}", rand::random::<u64>());
    let record = RequestRecord {
        request_id: request_id.clone(),
        institution: trail.institution.clone(),
        user: trail.user.clone(),
        device: device.as_ref().map_or_else(|| "-".to_owned(), |d| d.name.to_string()),
        tunnel_source: match source {
            Source::Address(address) => address.to_string(),
            Source::Key(key) => key.to_string(),
        },
        ip_claim: trail.ip_claim.clone(),
        route: path,
        method: trail.method,
        elements_requested: trail.requested,
        elements_returned: trail.returned,
        outcome: outcome.unwrap_or(Recorded::Http(response.status().as_u16())),
        source: trail.source,
        quota_charged: trail.charged_on.is_some(),
        latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        bytes_in,
        bytes_out: response.body().size_hint().exact().unwrap_or(0),
        subjects: Vec::new(),
    };
    let subjects = std::mem::take(&mut trail.subjects);
    match api.gateway().auditor().record(at, record, subjects).await {
        Ok(seq) => {
            let headers = response.headers_mut();
            headers.insert("x-request-id", header::HeaderValue::from_str(&request_id).expect("hex is a valid header"));
            headers.insert("x-simpul-audit-seq", header::HeaderValue::from(seq));
            response
        }
        Err(e) => {
            tracing::error!(request_id, "refused unaudited: {e}");
            api.withdraw(&trail).await;
            let message = "Catatan audit tidak dapat ditulis; permintaan tidak dilayani (audit log unavailable)";
            json_response(&Reply::transport(dialect, StatusCode::SERVICE_UNAVAILABLE, message, 0))
        }
    }
}

/// Whether this benchmark build was told to answer without audit records (see [`route`]); read once, and said loudly.
#[cfg(feature = "unaudited-benchmark")]
fn unaudited_benchmark() -> bool {
    static UNAUDITED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNAUDITED.get_or_init(|| {
        let on = std::env::var_os("SIMPUL_UNAUDITED_BENCHMARK").is_some_and(|v| v == "1");
        if on {
            tracing::warn!("SIMPUL_UNAUDITED_BENCHMARK=1 in an unaudited-benchmark build: requests are NOT audited");
        }
        on
    })
}

fn json_response(reply: &Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body.clone())));
    *response.status_mut() = reply.status;
    reply.headers(response.headers_mut());
    response
}

/// The web service's answer to a request: method and body checks, then [`Dukcapil::handle`], all in `dialect`.
async fn dukcapil_reply(
    request: Request<Incoming>,
    snapshot: &Snapshot,
    dialect: Dialect,
    path: &str,
    api: &Dukcapil,
    trail: &mut Trail,
    bytes_in: &mut u64,
) -> Reply {
    // A path that is no route is 404 whatever the method; a route asked with another method than POST, 405.
    let route = match parse_path(path) {
        Ok(route) => route,
        Err(e) => return Reply::transport(dialect, StatusCode::NOT_FOUND, &e.to_string(), 0),
    };
    if request.method() != Method::POST {
        let message = format!("Metode HTTP {} tidak didukung; gunakan POST", request.method());
        let mut reply = Reply::transport(dialect, StatusCode::METHOD_NOT_ALLOWED, &message, 0);
        reply.allow_post = true;
        reply
    } else {
        let query = request.uri().query().map(str::to_owned);
        let body = Limited::new(request.into_body(), BODY_LIMIT).collect();
        match tokio::time::timeout(dukcapil::READ_TIMEOUT, body).await {
            Ok(Ok(body)) => {
                let body = body.to_bytes();
                *bytes_in = body.len() as u64;
                api.handle(snapshot, dialect, &route, query.as_deref(), &body, trail).await
            }
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                let message = format!("Badan permintaan melebihi {BODY_LIMIT} bita");
                Reply::transport(dialect, StatusCode::PAYLOAD_TOO_LARGE, &message, 0)
            }
            Ok(Err(_)) | Err(_) => {
                let message = "Badan permintaan tidak lengkap atau terlalu lambat";
                Reply::transport(dialect, StatusCode::REQUEST_TIMEOUT, message, 0)
            }
        }
    }
}

/// Completes once the server is stopping; the borrow of the flag ends inside, so the future stays `Send`.
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// The health page at `/`.
fn answer(request: &Request<Incoming>, device: &Device, gateway: &Gateway) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let config = gateway.config();
    text(
        StatusCode::OK,
        format!(
            "simpul-gateway {}\nstatus: ok\ngateway: {}\ndevice: {}\nuser: {}\naddress: {}\n",
            env!("CARGO_PKG_VERSION"),
            config.tunnel.address,
            device.name,
            device.user,
            device.address,
        ),
    )
}
