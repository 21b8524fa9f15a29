//! The upstream client against the real warehouse stand-in, started in-process on 127.0.0.1:0 with its dev consumer
//! (`DEV`, user `dev`, password `dev`), a small population and fault injection; plus a few hand-made servers for what
//! the stand-in never does (a silent peer, a malformed or oversized answer).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};
use simpul_core::clock::SystemClock;
use simpul_core::wire::envelope;
use simpul_core::wire::method::Method;
use simpul_gateway::upstream::{Failure, Reply, Upstream, UpstreamConfig, UpstreamError};
use simpul_warehouse::config::WarehouseConfig;
use simpul_warehouse::dev::{dev_config, DEV_CONSUMER, DEV_PASSWORD, DEV_USER};
use simpul_warehouse::faults::{Fault, FaultConfig};
use simpul_warehouse::population::SampleKind;
use simpul_warehouse::server::{run, Warehouse};
use simpul_warehouse::tls::Identity;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The dev config, hashed once (argon2 is slow on purpose).
fn base_config() -> WarehouseConfig {
    static CONFIG: OnceLock<WarehouseConfig> = OnceLock::new();
    CONFIG.get_or_init(|| dev_config("127.0.0.1:0".parse().unwrap())).clone()
}

/// A NIK of a living resident, as the wire writes it.
fn alive_nik() -> u64 {
    common::population().sample(SampleKind::Alive, 1, 7).next().expect("a living resident").nik.as_u64()
}

fn call_nik_body(nik: u64) -> Vec<u8> {
    json!({"user_id": DEV_USER, "password": DEV_PASSWORD, "NIK": nik.to_string()}).to_string().into_bytes()
}

/// The stand-in, with its generated certificate saved under a temporary state directory.
struct StandIn {
    addr: SocketAddr,
    cert_path: PathBuf,
    fingerprint: String,
    stop: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl StandIn {
    async fn start(faults: FaultConfig) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config();
        config.faults = faults;
        config.state_dir = Some(dir.path().to_owned());
        let (identity, cert_path) = simpul_warehouse::tls::load(&config.tls, dir.path()).expect("certificate");
        let warehouse =
            Warehouse::new(&config, common::population(), &identity, Arc::new(SystemClock)).expect("valid config");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(run(listener, Arc::new(warehouse), async {
            let _ = stopped.await;
        }));
        StandIn { addr, cert_path, fingerprint: identity.fingerprint().to_string(), stop: Some(stop), _dir: dir }
    }

    async fn healthy() -> StandIn {
        StandIn::start(FaultConfig::default()).await
    }

    fn pinned(&self) -> UpstreamConfig {
        UpstreamConfig {
            url: format!("https://{}", self.addr),
            fingerprint: Some(self.fingerprint.clone()),
            ..UpstreamConfig::default()
        }
    }

    fn with_ca(&self) -> UpstreamConfig {
        UpstreamConfig {
            url: format!("https://{}", self.addr),
            ca: Some(self.cert_path.clone()),
            ..UpstreamConfig::default()
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn call(upstream: &Upstream, nik: u64) -> Result<Reply, Failure> {
    upstream.call(DEV_CONSUMER, Method::CallNik, call_nik_body(nik)).await
}

#[track_caller]
fn assert_record_of(reply: &Reply, nik: u64) {
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
    let envelope = envelope::parse(&reply.body).expect("an envelope");
    assert_eq!(envelope.content.len(), 1);
    assert_eq!(envelope.content[0].get("NIK"), Some(&Value::from(nik)), "{:?}", envelope.content[0]);
    assert!(envelope.content[0].contains_key("NAMA_LGKP"));
}

#[track_caller]
fn assert_failure(result: Result<Reply, Failure>, status: StatusCode, words: &str) -> Failure {
    let failure = match result {
        Ok(reply) => panic!("expected {status}, got an answer {}", reply.status),
        Err(failure) => failure,
    };
    assert_eq!(failure.status, status, "{}", failure.message);
    assert!(failure.message.contains(words), "{:?} should say {words:?}", failure.message);
    assert!(!failure.message.contains("password"), "{}", failure.message);
    failure
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_fingerprint_or_the_ca_reaches_the_stand_in() {
    let stand = StandIn::healthy().await;
    let nik = alive_nik();

    // The fingerprint as the stand-in prints it, and as bare lower-case hex.
    let bare = stand.fingerprint.replace(':', "").to_lowercase();
    for fingerprint in [stand.fingerprint.clone(), bare] {
        let upstream = Upstream::new(&UpstreamConfig { fingerprint: Some(fingerprint), ..stand.pinned() }).unwrap();
        assert_record_of(&call(&upstream, nik).await.unwrap(), nik);
        // A second call on the kept-alive connection.
        assert_record_of(&call(&upstream, nik).await.unwrap(), nik);
        assert_eq!(upstream.in_flight(), 0);
    }

    let upstream = Upstream::new(&stand.with_ca()).unwrap();
    assert_record_of(&call(&upstream, nik).await.unwrap(), nik);

    // With the CA the name counts: the certificate names localhost, not dwh.example.
    let named = Upstream::new(&UpstreamConfig { server_name: Some("localhost".into()), ..stand.with_ca() }).unwrap();
    assert_record_of(&call(&named, nik).await.unwrap(), nik);
    let misnamed =
        Upstream::new(&UpstreamConfig { server_name: Some("dwh.example".into()), ..stand.with_ca() }).unwrap();
    let failure =
        assert_failure(call(&misnamed, nik).await, StatusCode::BAD_GATEWAY, "certificate verification failed");
    assert!(failure.message.contains("not valid for name \"dwh.example\""), "{}", failure.message);

    // Other methods go by their wire name; the answer is the stand-in's as it is.
    let family = upstream.call(DEV_CONSUMER, Method::CallNikGetKk, call_nik_body(nik)).await.unwrap();
    let members = envelope::parse(&family.body).unwrap().content;
    assert!(members.iter().any(|m| m.get("NIK") == Some(&Value::from(nik))), "{members:?}");

    // 4xx answers are replies too: an unknown consumer is the stand-in's 404.
    let unknown = upstream.call("NOBODY", Method::CallNik, call_nik_body(nik)).await.unwrap();
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(envelope::parse(&unknown.body).is_ok(), "{}", String::from_utf8_lossy(&unknown.body));

    // A business error is a 200 reply whose envelope says so.
    let wrong = json!({"user_id": DEV_USER, "password": "not-dev", "NIK": nik.to_string()}).to_string().into_bytes();
    let refused = upstream.call(DEV_CONSUMER, Method::CallNik, wrong).await.unwrap();
    assert_eq!(refused.status, StatusCode::OK);
    assert_eq!(envelope::parse(&refused.body).unwrap().content[0].get("RESPONSE_CODE"), Some(&Value::from("03")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_or_a_foreign_ca_is_refused() {
    let stand = StandIn::healthy().await;
    let nik = alive_nik();

    let mut wrong = stand.fingerprint.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    let upstream = Upstream::new(&UpstreamConfig { fingerprint: Some(wrong), ..stand.pinned() }).unwrap();
    assert_failure(
        call(&upstream, nik).await,
        StatusCode::BAD_GATEWAY,
        "upstream certificate fingerprint does not match the pinned one",
    );

    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign.pem");
    std::fs::write(&foreign, Identity::self_signed(&[]).unwrap().cert_pem()).unwrap();
    let upstream = Upstream::new(&UpstreamConfig { ca: Some(foreign), ..stand.with_ca() }).unwrap();
    // rcgen gives every self-signed certificate the same subject, so webpki takes the foreign one for the issuer and
    // reports a bad signature rather than an unknown issuer; either way the chain does not verify.
    assert_failure(call(&upstream, nik).await, StatusCode::BAD_GATEWAY, "certificate verification failed");
}

// The timing tests run on tokio's paused clock: the stand-in, the client and their timers share one thread, and the
// clock moves only when every task waits, straight to the next timer, so the time they measure is the timers' alone.
// (The stand-in's password checks on blocking threads hold the clock while they run.)

#[tokio::test(start_paused = true)]
async fn latency_beyond_the_request_timeout_is_504() {
    let stand = StandIn::start(FaultConfig { latency_ms: 3_000, ..FaultConfig::default() }).await;
    let upstream = Upstream::new(&UpstreamConfig { request_timeout_ms: 300, ..stand.pinned() }).unwrap();
    let started = Instant::now();
    let failure =
        assert_failure(call(&upstream, alive_nik()).await, StatusCode::GATEWAY_TIMEOUT, "did not answer within 0.3 s");
    assert!(!failure.message.contains("connecting"), "the connection was made: {}", failure.message);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(3_000), "{waited:?}");
    assert_eq!(upstream.in_flight(), 0, "the slot is given back");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_is_never_answered_is_504() {
    let stand = StandIn::start(FaultConfig { hang_rate: 1.0, ..FaultConfig::default() }).await;
    let upstream = Upstream::new(&UpstreamConfig { request_timeout_ms: 300, ..stand.pinned() }).unwrap();
    assert_failure(call(&upstream, alive_nik()).await, StatusCode::GATEWAY_TIMEOUT, "did not answer within 0.3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_502() {
    let stand = StandIn::start(FaultConfig { reset_rate: 1.0, ..FaultConfig::default() }).await;
    let upstream = Upstream::new(&stand.pinned()).unwrap();
    for _ in 0..3 {
        assert_failure(call(&upstream, alive_nik()).await, StatusCode::BAD_GATEWAY, "reset the connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_ins_502_and_503_are_passed_on() {
    let faults = FaultConfig { error_rate: 1.0, ..FaultConfig::default() };
    // Enough requests for both statuses to occur, as the seeded sequence says.
    let expected: Vec<u16> = (0..64)
        .map(|n| match faults.fault_for(n) {
            Fault::Error(status) => status,
            other => panic!("rate 1.0 gives only errors, got {other:?}"),
        })
        .collect();
    let both = (1..=expected.len())
        .find(|&n| expected[..n].contains(&502) && expected[..n].contains(&503))
        .expect("both statuses within 64 requests");
    let stand = StandIn::start(faults).await;
    let upstream = Upstream::new(&stand.pinned()).unwrap();
    for &status in &expected[..both] {
        let status = StatusCode::from_u16(status).unwrap();
        let want = format!("the warehouse is unavailable ({})", status.as_u16());
        let failure = assert_failure(call(&upstream, alive_nik()).await, status, &want);
        assert_eq!(failure.message, want);
    }
}

#[tokio::test]
async fn nothing_listening_is_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = UpstreamConfig {
        url: format!("https://{addr}"),
        fingerprint: Some("00".repeat(32)),
        ..UpstreamConfig::default()
    };
    let upstream = Upstream::new(&config).unwrap();
    let failure = assert_failure(call(&upstream, alive_nik()).await, StatusCode::BAD_GATEWAY, "could not connect");
    assert!(failure.message.contains(&addr.to_string()), "{}", failure.message);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_accepts_tcp_but_never_speaks_tls_is_504_within_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = UpstreamConfig {
        url: format!("https://{addr}"),
        fingerprint: Some("00".repeat(32)),
        connect_timeout_ms: 300,
        request_timeout_ms: 3_000,
        ..UpstreamConfig::default()
    };
    let upstream = Upstream::new(&config).unwrap();
    let started = Instant::now();
    assert_failure(call(&upstream, alive_nik()).await, StatusCode::GATEWAY_TIMEOUT, "within 0.3 s (connecting)");
    // The connect timeout fired, not the request timeout.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(3_000), "{waited:?}");
    holder.abort();
}

#[tokio::test(start_paused = true)]
async fn the_pool_is_bounded_and_a_full_pool_refuses_with_503() {
    let stand = StandIn::start(FaultConfig { latency_ms: 1_500, ..FaultConfig::default() }).await;
    let config = UpstreamConfig { max_connections: 2, queue_timeout_ms: 100, ..stand.pinned() };
    let upstream = Upstream::new(&config).unwrap();
    let nik = alive_nik();

    let slow: Vec<_> = (0..2)
        .map(|_| {
            let upstream = upstream.clone();
            tokio::spawn(async move { call(&upstream, nik).await })
        })
        .collect();
    // A call takes its slot when first polled, before any I/O: a few turns of the scheduler let both take theirs
    // (they then wait 1.5 s at the stand-in, longer than the queue timeout).
    for _ in 0..10 {
        if upstream.in_flight() == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(upstream.in_flight(), 2, "the two slow calls took their slots");
    assert_failure(call(&upstream, nik).await, StatusCode::SERVICE_UNAVAILABLE, "too many requests in flight");
    assert_eq!(upstream.in_flight(), 2, "the refused call took no slot");

    for task in slow {
        assert_record_of(&task.await.unwrap().unwrap(), nik);
    }
    assert_eq!(upstream.in_flight(), 0);
    assert_record_of(&call(&upstream, nik).await.unwrap(), nik);
}

/// A TLS server with the stand-in's kind of certificate that reads one request and writes `answer` as it is.
async fn raw_server(answer: Vec<u8>) -> (SocketAddr, String) {
    let identity = Identity::self_signed(&[]).unwrap();
    let fingerprint = identity.fingerprint().to_string();
    let acceptor = tokio_rustls::TlsAcceptor::from(simpul_warehouse::tls::server_config(&identity, None).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, answer) = (acceptor.clone(), answer.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then as much body as Content-Length says.
                loop {
                    let Ok(n) = tls.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let _ = tls.write_all(&answer).await;
                let _ = tls.flush().await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, fingerprint)
}

async fn raw_upstream(answer: Vec<u8>) -> Upstream {
    let (addr, fingerprint) = raw_server(answer).await;
    Upstream::new(&UpstreamConfig {
        url: format!("https://{addr}"),
        fingerprint: Some(fingerprint),
        ..UpstreamConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_other_5xx_answers_are_502() {
    let nik = alive_nik();

    let upstream = raw_upstream(b"HTTP/1.1 two hundred\r\nnonsense\r\n\r\n".to_vec()).await;
    assert_failure(call(&upstream, nik).await, StatusCode::BAD_GATEWAY, "malformed HTTP answer");

    let nine_mib = 9 * 1024 * 1024;
    let mut big =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {nine_mib}\r\n\r\n").into_bytes();
    big.resize(big.len() + nine_mib, b' ');
    let upstream = raw_upstream(big).await;
    assert_failure(call(&upstream, nik).await, StatusCode::BAD_GATEWAY, "larger than 8 MiB");

    let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..9 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1024 * 1024).as_bytes());
        chunked.resize(chunked.len() + 1024 * 1024, b' ');
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let upstream = raw_upstream(chunked).await;
    assert_failure(call(&upstream, nik).await, StatusCode::BAD_GATEWAY, "larger than 8 MiB");

    let upstream = raw_upstream(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}".to_vec()).await;
    let failure = assert_failure(call(&upstream, nik).await, StatusCode::BAD_GATEWAY, "the warehouse failed (500)");
    assert!(!failure.message.contains("unavailable"));

    let upstream = raw_upstream(b"HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\n\r\n".to_vec()).await;
    assert_failure(call(&upstream, nik).await, StatusCode::GATEWAY_TIMEOUT, "the warehouse is unavailable (504)");

    // The answer is cut before its end.
    let upstream = raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"content\":".to_vec()).await;
    assert_failure(call(&upstream, nik).await, StatusCode::BAD_GATEWAY, "closed the connection before its answer");

    // Exactly what the upstream sent, for an answer within the limit.
    let body = envelope::render(&[], 7);
    let mut ok = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    ok.extend_from_slice(&body);
    let upstream = raw_upstream(ok).await;
    let reply = call(&upstream, nik).await.unwrap();
    assert_eq!((reply.status, &reply.body[..]), (StatusCode::OK, &body[..]));
}

#[tokio::test]
async fn consumer_ids_that_cannot_go_into_the_path_are_refused_without_a_request() {
    // Nothing listens: a request would fail with "could not connect", not with the id's message.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let upstream = Upstream::new(&UpstreamConfig {
        url: format!("https://{addr}"),
        fingerprint: Some("00".repeat(32)),
        ..UpstreamConfig::default()
    })
    .unwrap();
    for id in ["", "..", "DEV/CALL_NIK", "DEV?x=1", "D EV", "DEV%2F"] {
        let failure = upstream.call(id, Method::CallNik, b"{}".to_vec()).await.unwrap_err();
        assert_eq!(failure.status, StatusCode::BAD_GATEWAY, "{id:?}");
        assert!(failure.message.contains("consumer id"), "{id:?}: {}", failure.message);
    }
}

#[test]
fn validation() {
    let good = UpstreamConfig {
        url: "https://127.0.0.1:8100".into(),
        fingerprint: Some("AB:".repeat(31) + "AB"),
        ..UpstreamConfig::default()
    };
    good.validate().unwrap();

    let refused = |config: UpstreamConfig| config.validate().unwrap_err();

    let err = refused(UpstreamConfig { url: "http://127.0.0.1:8100".into(), ..good.clone() });
    assert!(matches!(err, UpstreamError::Url(_)) && err.to_string().contains("https"), "{err}");
    for url in ["", "127.0.0.1:8100", "https://127.0.0.1:8100/dukcapil/get_json", "https://user:pw@127.0.0.1"] {
        assert!(matches!(refused(UpstreamConfig { url: url.into(), ..good.clone() }), UpstreamError::Url(_)), "{url}");
    }

    let both = UpstreamConfig { ca: Some("/etc/simpul/upstream.pem".into()), ..good.clone() };
    assert!(matches!(refused(both), UpstreamError::Trust(_)));
    let neither = UpstreamConfig { fingerprint: None, ..good.clone() };
    let err = refused(neither);
    assert!(matches!(err, UpstreamError::Trust(_)) && err.to_string().contains("exactly one"), "{err}");

    for bad in ["zz".repeat(32), "ab".repeat(31), "ab".repeat(33), "AB:".repeat(32), "A:BB".repeat(16), "".into()] {
        let err = refused(UpstreamConfig { fingerprint: Some(bad.clone()), ..good.clone() });
        assert!(matches!(err, UpstreamError::Fingerprint(_)), "{bad:?}: {err}");
    }
    assert!(UpstreamConfig { fingerprint: Some("Ab".repeat(32)), ..good.clone() }.validate().is_ok());

    let zeroes: [(&str, UpstreamConfig); 5] = [
        ("connect_timeout_ms", UpstreamConfig { connect_timeout_ms: 0, ..good.clone() }),
        ("request_timeout_ms", UpstreamConfig { request_timeout_ms: 0, ..good.clone() }),
        ("queue_timeout_ms", UpstreamConfig { queue_timeout_ms: 0, ..good.clone() }),
        ("pool_idle_timeout_ms", UpstreamConfig { pool_idle_timeout_ms: 0, ..good.clone() }),
        ("max_connections", UpstreamConfig { max_connections: 0, ..good.clone() }),
    ];
    for (name, config) in zeroes {
        let err = refused(config);
        assert!(matches!(err, UpstreamError::Zero(n) if n == name), "{name}: {err}");
    }

    let err = refused(UpstreamConfig { server_name: Some("not a name!".into()), ..good.clone() });
    assert!(matches!(err, UpstreamError::ServerName(_)), "{err}");

    // From TOML: defaults filled in, unknown keys refused.
    let parsed: UpstreamConfig =
        toml::from_str(&format!("url = \"https://127.0.0.1:8100\"\nfingerprint = \"{}\"", "ab".repeat(32))).unwrap();
    assert_eq!(
        (parsed.connect_timeout_ms, parsed.request_timeout_ms, parsed.max_connections, parsed.queue_timeout_ms),
        (3_000, 10_000, 32, 2_000)
    );
    assert_eq!(parsed.pool_idle_timeout_ms, 5_000);
    let err = toml::from_str::<UpstreamConfig>("url = \"https://h\"\ntimeout = 1").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");

    // A CA file that is not there is found at construction.
    let dir = tempfile::tempdir().unwrap();
    let missing = UpstreamConfig { fingerprint: None, ca: Some(dir.path().join("absent.pem")), ..good.clone() };
    missing.validate().unwrap();
    assert!(matches!(Upstream::new(&missing), Err(UpstreamError::ReadCa(..))));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = UpstreamConfig { ca: Some(junk), ..missing };
    assert!(matches!(Upstream::new(&junk), Err(UpstreamError::NoCa(_))));
}
