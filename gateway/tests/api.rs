//! The Dukcapil web service end to end, through a real WireGuard tunnel, as an OPD application would call
//! `http://10.77.0.1:8000/dukcapil/…`; the gateway forwards to the warehouse stand-in (in-process, TLS, pinned by
//! fingerprint) with the institution's upstream credentials.
//!
//! Most tests need no root (mini-redis's `tests/server.rs` is the model): the gateway runs in-process through
//! `run::run_with_rate_clock`, in userspace mode on a free loopback port, with a [`ManualClock`] (access hours,
//! agreement ends and midnight come when a test says) and a hand-moved rate-limit clock (a `Retry-After` is waited out
//! without waiting); each device is Simpul's own WireGuard client (`simpul_tunnel::client`) configured from the
//! wg-quick file the gateway exports, in this process, and requests are made by a small HTTP/1.1 client over its
//! connections, so the assertions see exact bytes.
//!
//! The tests that need root say why: real applications (Python `requests`, integration/tests/python/
//! gateway_client.py, and `curl`) through a stock `wireguard-go` client in a network namespace of their own; the
//! real binary in TUN mode, where nftables drops a suspended institution's device; a full disk (a tmpfs mount).
//! Every namespace, process and in-process gateway is removed when a test ends, passing or not.

mod common;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use governor::clock::FakeRelativeClock;
use serde_json::{json, Map, Value};
use simpul_core::cache::Validity;
use simpul_core::clock::{Clock, ManualClock, SystemClock};
use simpul_core::device::Name;
use simpul_core::element::{Element, ElementSet};
use simpul_core::institution::Secret;
use simpul_core::nik::Nik;
use simpul_core::policy::Query;
use simpul_core::wire::code::Dialect;
use simpul_core::wire::method::Method;
use simpul_gateway::admin::audit::AuditVerify;
use simpul_gateway::admin::cache::{CachePurge, CacheStats, PurgeTarget};
use simpul_gateway::admin::device::{DeviceAdd, DeviceExport, DeviceResume, DeviceShow, DeviceSuspend};
use simpul_gateway::admin::gateway::AdminLog;
use simpul_gateway::admin::institution::{
    InstitutionAdd, InstitutionFields, InstitutionResume, InstitutionSuspend, InstitutionUpdate,
};
use simpul_gateway::admin::user::{UserAdd, UserDisable, UserEnable, UserFields, UserUpdate};
use simpul_gateway::admin::Operation;
use simpul_gateway::cache::{Asked, Cache};
use simpul_gateway::config::{GatewayConfig, Mode, TunnelConfig};
use simpul_gateway::control::{Client, ClientError};
use simpul_gateway::limits::rate::RateClock;
use simpul_gateway::limits::RateConfig;
use simpul_gateway::run::{run_with_rate_clock, Ready};
use simpul_gateway::upstream::UpstreamConfig;
use simpul_integration::netns::{self, missing_prerequisite, wireguard_go_with_config, Netns};
use simpul_tunnel::client::Client as TunnelClient;
use simpul_tunnel::wg_quick::{self, ClientConfig};
use simpul_warehouse::consumer::ConsumerConfig;
use simpul_warehouse::dev::{dev_config, DEV_CONSUMER, DEV_PASSWORD, DEV_USER};
use simpul_warehouse::faults::{Fault, FaultConfig};
use simpul_warehouse::population::{Sample, SampleKind};
use simpul_warehouse::server::Warehouse;
use simpul_warehouse::tls::Identity;
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

/// What the root tests' `wireguard-go` clients need.
const TOOLS: &[&str] = &["wireguard-go", "wg", "wg-quick", "ip", "curl"];
const BIN: &str = env!("CARGO_BIN_EXE_simpul-gateway");

const INSTITUTION: &str = "DINSOS-3374";
/// What applications put in the path; the gateway uses the institution's own upstream consumer whatever it is.
const CONSUMER: &str = "DINSOS_3374";
const BUDI: &str = "budi";
/// A user of the same institution with no device of her own.
const SITI: &str = "siti";
const PASSWORD: &str = "kata-sandi-rahasia";
const API: &str = "10.77.0.1:8000";
/// The users' own NIK (the SOP registers it), and their NIPs.
const OPERATOR_NIK: &str = "3374041003870006";
/// Longer than any exchange takes: a request that has not been answered by then never will be.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

fn operator_nip(i: usize) -> String {
    format!("1987031020100110{i:02}")
}

fn api_addr() -> SocketAddr {
    API.parse().unwrap()
}

/// 10:00 in Jakarta on a Wednesday, inside the agreement and after the population's reference date.
fn start_time() -> DateTime<Utc> {
    "2026-07-15T03:00:00Z".parse().unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

// ----------------------------------------------------------------------------------------------------------------
// The wire table, read from the repository's copy of the wire specification (docs/WIRE.md), not from simpul-core, so
// that a wrong text in the code under test fails a test.

/// The rows of the first Markdown table whose header line is `header`: the first cell to the last.
fn table_after(doc: &str, header: &str) -> HashMap<String, String> {
    let rows: HashMap<String, String> = doc
        .lines()
        .skip_while(|line| *line != header)
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            (cells[0].to_owned(), cells[cells.len() - 1].to_owned())
        })
        .collect();
    assert!(!rows.is_empty(), "no table {header:?} in docs/WIRE.md");
    rows
}

/// A code's coded and legacy texts, as docs/WIRE.md gives them.
fn texts(code: &str) -> (&'static str, &'static str) {
    static TABLE: OnceLock<HashMap<String, (String, String)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let path = simpul_integration::workspace_root().join("docs/WIRE.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let coded = table_after(&doc, "| code | meaning | text |");
        let mut legacy = table_after(&doc, "| code | legacy text |");
        assert_eq!(coded.len(), legacy.len(), "every code has a legacy text");
        coded
            .into_iter()
            .map(|(code, text)| {
                let old = legacy.remove(&code).unwrap_or_else(|| panic!("no legacy text for {code}"));
                // Either one of the texts the specification lists for the legacy dialect, or the coded one.
                assert!(old == text || doc.contains(&format!("`{old}`")), "{code}: {old:?} is not a legacy text");
                (code, (text, old))
            })
            .collect()
    });
    let (coded, legacy) = table.get(code).unwrap_or_else(|| panic!("code {code} is not in docs/WIRE.md"));
    (coded.as_str(), legacy.as_str())
}

/// The envelope around `content`, byte for byte as WIRE.md writes it.
fn envelope(content: &str, n: usize, quota: u64) -> String {
    format!(
        r#"{{"content":[{content}],"lastPage":true,"numberOfElements":{n},"sort":null,"totalElements":{n},"firstPage":true,"number":0,"size":{n},"quotaLimiter":{quota}}}"#
    )
}

fn coded_body(code: &str, quota: u64) -> String {
    let text = texts(code).0;
    envelope(&format!(r#"{{"RESPONSE_CODE":"{code}","RESPONSE_DESC":"{text}","RESPONSE":"{text}"}}"#), 1, quota)
}

fn legacy_body(text: &str, quota: u64) -> String {
    envelope(&format!(r#"{{"RESPON":"{text}"}}"#), 1, quota)
}

// ----------------------------------------------------------------------------------------------------------------
// HTTP/1.1 over any connection: through the in-process client's tunnel, or a socket made in a client namespace.

#[derive(Debug)]
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?} {}", self.text()))
    }
}

/// A TCP connection to the API from inside namespace `ns`: the socket is made on a thread that entered it.
async fn connect_in(ns: &str, timeout: Duration) -> io::Result<tokio::net::TcpStream> {
    let ns = ns.to_owned();
    let stream = tokio::task::spawn_blocking(move || {
        netns::enter(&ns, || std::net::TcpStream::connect_timeout(&api_addr(), timeout))
    })
    .await
    .expect("the connecting thread does not panic")?;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

/// Reads one response: the head, then `Content-Length` bytes (or up to the end without one).
async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Http> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("closed after {} bytes", buf.len())));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("status line {status_line:?}")))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = buf[head_end + 4..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
        }
        None => {
            stream.read_to_end(&mut body).await?;
        }
    }
    Ok(Http { status, headers, body })
}

/// Sends `raw` on `stream` and reads the answer. A write error is not final: a server that refuses a large body
/// may answer and close before the client has sent it all.
async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, raw: &[u8]) -> io::Result<Http> {
    let exchange = async {
        let written = stream.write_all(raw).await;
        match read_reply(stream).await {
            Ok(reply) => Ok(reply),
            Err(e) => Err(written.err().unwrap_or(e)),
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {API}\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    if method != "GET" || !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn post_bytes(path: &str, body: &[u8]) -> Vec<u8> {
    request_bytes("POST", path, &[("Content-Type", "application/json"), ("Connection", "close")], body)
}

fn path_of(method: &str) -> String {
    format!("/dukcapil/get_json/{CONSUMER}/{method}")
}

/// A new connection to the API through `client`'s tunnel.
async fn open(client: &TunnelClient) -> io::Result<simpul_tunnel::netstack::TcpStream> {
    tokio::time::timeout(Duration::from_secs(10), client.connect(api_addr()))
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// One request on a new connection through `client`.
async fn send(client: &TunnelClient, raw: Vec<u8>) -> io::Result<Http> {
    exchange_on(&mut open(client).await?, &raw).await
}

/// POSTs `body` (JSON) to the web service's `method` through `client`; the exchange must succeed at the HTTP level.
async fn call_on(client: &TunnelClient, method: &str, body: &Value) -> Http {
    let raw = post_bytes(&path_of(method), body.to_string().as_bytes());
    send(client, raw).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// As [`call_on`], from a socket made in namespace `ns` (a `wireguard-go` client's).
async fn call_from(ns: &Netns, method: &str, body: &Value) -> Http {
    let raw = post_bytes(&path_of(method), body.to_string().as_bytes());
    let mut stream = connect_in(&ns.name, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{method}: {e}"));
    exchange_on(&mut stream, &raw).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn creds(user: &str, password: &str, nik: &str) -> Value {
    json!({"user_id": user, "password": password, "NIK": nik})
}

fn budi(nik: &str) -> Value {
    creds(BUDI, PASSWORD, nik)
}

const ENVELOPE_KEYS: [&str; 9] =
    ["content", "lastPage", "numberOfElements", "sort", "totalElements", "firstPage", "number", "size", "quotaLimiter"];

#[track_caller]
fn assert_json_type(reply: &Http) {
    assert_eq!(reply.header("content-type"), Some("application/json"), "{reply:?}");
}

/// A business answer in the coded dialect, byte for byte.
#[track_caller]
fn assert_code(reply: &Http, code: &str, quota: u64) {
    assert_eq!((reply.status, reply.text()), (200, coded_body(code, quota)), "expected code {code}");
    assert_json_type(reply);
}

/// A business answer in the legacy dialect, byte for byte.
#[track_caller]
fn assert_legacy(reply: &Http, text: &str, quota: u64) {
    assert_eq!((reply.status, reply.text()), (200, legacy_body(text, quota)));
    assert_json_type(reply);
}

/// An answer with data in the envelope's exact shape, the first element about `nik`: its content and quota.
#[track_caller]
fn assert_data(reply: &Http, nik: &str) -> (Vec<Map<String, Value>>, u64) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_json_type(reply);
    let value = reply.json();
    let object = value.as_object().unwrap();
    assert_eq!(object.keys().map(String::as_str).collect::<Vec<_>>(), ENVELOPE_KEYS, "{value}");
    let content: Vec<Map<String, Value>> =
        object["content"].as_array().unwrap().iter().map(|v| v.as_object().unwrap().clone()).collect();
    assert!(!content.is_empty(), "{value}");
    assert!(
        !content[0].contains_key("RESPONSE_CODE") && !content[0].contains_key("RESPON"),
        "data, not a refusal: {value}"
    );
    let n = content.len();
    assert_eq!(
        (&value["numberOfElements"], &value["totalElements"], &value["size"]),
        (&json!(n), &json!(n), &json!(n))
    );
    assert_eq!(
        (&value["lastPage"], &value["firstPage"], &value["sort"], &value["number"]),
        (&json!(true), &json!(true), &Value::Null, &json!(0))
    );
    if !nik.is_empty() {
        let want = Value::from(nik.parse::<u64>().unwrap());
        assert!(content.iter().any(|c| c.get("NIK") == Some(&want)), "{nik} not in {value}");
    }
    (content, value["quotaLimiter"].as_u64().unwrap())
}

/// A transport-level failure: `status`, JSON in the coded dialect with the status as its code; its message and quota.
#[track_caller]
fn assert_transport(reply: &Http, status: u16) -> (String, u64) {
    assert_eq!(reply.status, status, "{reply:?} {}", reply.text());
    assert_json_type(reply);
    let value = reply.json();
    let object = value.as_object().unwrap();
    assert_eq!(object.keys().map(String::as_str).collect::<Vec<_>>(), ENVELOPE_KEYS, "{value}");
    let item = value["content"][0].as_object().unwrap();
    assert_eq!(item.keys().map(String::as_str).collect::<Vec<_>>(), ["RESPONSE_CODE", "RESPONSE_DESC", "RESPONSE"]);
    assert_eq!(item["RESPONSE_CODE"], status.to_string(), "{value}");
    assert_eq!(item["RESPONSE_DESC"], item["RESPONSE"]);
    let message = item["RESPONSE"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    (message, value["quotaLimiter"].as_u64().unwrap())
}

// ----------------------------------------------------------------------------------------------------------------
// The warehouse stand-in and its population.

fn sample(kind: SampleKind, seed: u64) -> Sample {
    common::population().sample(kind, 1, seed).next().unwrap_or_else(|| panic!("a {kind} resident"))
}

fn nik(kind: SampleKind) -> String {
    sample(kind, 17).nik.to_string()
}

/// The record the stand-in holds for a sampled resident: every element, in wire order.
fn record(sample: &Sample) -> Map<String, Value> {
    let mut record = sample.to_json().as_object().unwrap().clone();
    record.shift_remove("kind");
    record
}

/// A second consumer at the stand-in, with the dev consumer's credentials but granted only NIK and NAMA_LGKP: another
/// agreement's grant.
const NARROW_CONSUMER: &str = "DEV_NARROW";

/// The stand-in with its dev consumer (DEV/dev/dev) and [`NARROW_CONSUMER`], serving on `listener` from the current
/// runtime.
struct StandIn {
    addr: SocketAddr,
    fingerprint: String,
    /// Counts the requests that reach it.
    warehouse: Arc<Warehouse>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl StandIn {
    async fn start(listener: tokio::net::TcpListener, identity: &Identity) -> StandIn {
        StandIn::with_faults(listener, identity, FaultConfig::default()).await
    }

    async fn with_faults(listener: tokio::net::TcpListener, identity: &Identity, faults: FaultConfig) -> StandIn {
        let addr = listener.local_addr().unwrap();
        let mut config = dev_config(addr);
        let narrow = ConsumerConfig {
            id: NARROW_CONSUMER.into(),
            elements: [Element::Nik, Element::NamaLgkp].into_iter().collect(),
            userset: Some("narrow".into()),
            ..config.consumers[0].clone()
        };
        config.consumers.push(narrow);
        config.faults = faults;
        let warehouse = Arc::new(
            Warehouse::new(&config, common::population(), identity, Arc::new(SystemClock)).expect("valid config"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(simpul_warehouse::server::run(listener, warehouse.clone(), async {
            let _ = stopped.await;
        }));
        StandIn { addr, fingerprint: identity.fingerprint().to_string(), warehouse, stop: Some(stop), task: Some(task) }
    }

    async fn on_loopback(identity: &Identity) -> StandIn {
        StandIn::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), identity).await
    }

    fn upstream(&self) -> UpstreamConfig {
        upstream_config(self.addr, &self.fingerprint)
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("the stand-in does not panic").expect("the stand-in stops cleanly");
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

fn upstream_config(addr: SocketAddr, fingerprint: &str) -> UpstreamConfig {
    UpstreamConfig {
        url: format!("https://{addr}"),
        fingerprint: Some(fingerprint.to_owned()),
        ..UpstreamConfig::default()
    }
}

/// One stand-in on 127.0.0.1 shared by the tests that do not stop theirs, served by a runtime of its own so that it
/// outlives each test's runtime.
fn shared_upstream() -> UpstreamConfig {
    static SHARED: OnceLock<UpstreamConfig> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
                runtime.block_on(async move {
                    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
                    tx.send(stand.upstream()).unwrap();
                    std::future::pending::<()>().await;
                });
            });
            rx.recv().expect("the shared stand-in starts")
        })
        .clone()
}

// ----------------------------------------------------------------------------------------------------------------
// ----------------------------------------------------------------------------------------------------------------
// The gateway in-process, and its management socket.

/// `run::run_with_rate_clock` on a thread and runtime of its own, so that stopping it drops everything it held (the
/// database among them) before a restart opens the same state directory again.
struct InProcess {
    ready: Ready,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl InProcess {
    async fn start(config: GatewayConfig, clock: Arc<ManualClock>, rate_clock: FakeRelativeClock) -> InProcess {
        let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let clock: Arc<dyn Clock> = clock;
            let ready = move |ready: &Ready| {
                let _ = ready_tx.send(ready.clone());
            };
            let stopped = async {
                let _ = stopped.await;
            };
            let result =
                runtime.block_on(run_with_rate_clock(config, clock, RateClock::Manual(rate_clock), ready, stopped));
            runtime.shutdown_timeout(Duration::from_secs(5));
            result.map_err(|e| e.to_string())
        });
        match ready_rx.await {
            Ok(ready) => InProcess { ready, stop: Some(stop), thread: Some(thread) },
            Err(_) => panic!("the gateway did not start: {:?}", thread.join()),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the gateway thread does not panic").expect("the gateway stops cleanly");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The management socket, one connection per request.
struct Admin(PathBuf);

impl Admin {
    /// The operation's answer as JSON, as the socket carries it.
    async fn call<O: Operation + std::fmt::Debug>(&self, op: O) -> Result<Value, ClientError> {
        let answer = Client::connect(&self.0).await?.call(op).await?;
        Ok(serde_json::to_value(answer).expect("an answer serializes"))
    }

    async fn ok<O: Operation + std::fmt::Debug + Clone>(&self, op: O) -> Value {
        self.call(op.clone()).await.unwrap_or_else(|e| panic!("{op:?}: {e}"))
    }

    async fn update(&self, fields: InstitutionFields) -> Value {
        self.ok(InstitutionUpdate { id: name(INSTITUTION), fields }).await
    }

    async fn update_user(&self, user: &str, fields: UserFields) -> Value {
        self.ok(UserUpdate { id: name(user), fields }).await
    }

    /// Registers `INSTITUTION` with `fields` and `users` (each with `PASSWORD`).
    async fn register(&self, fields: InstitutionFields, users: &[&str]) {
        self.ok(InstitutionAdd { id: name(INSTITUTION), fields }).await;
        for (i, user) in users.iter().enumerate() {
            self.add_user(user, i).await;
        }
    }

    async fn add_user(&self, user: &str, i: usize) {
        let fields = UserFields {
            institution: Some(name(INSTITUTION)),
            name: Some(format!("Pengguna {user}")),
            nik: Some(OPERATOR_NIK.into()),
            nip: Some(operator_nip(i)),
            position: Some("Analis Data".into()),
            office_region: Some("33.74.04".parse().unwrap()),
            application_user: Some(user.into()),
            daily_quota: None,
        };
        self.ok(UserAdd { id: name(user), fields, password: Secret::new(PASSWORD) }).await;
    }
}

/// An agreement in force through 2026 for CALL_NIK, CALL_NIK_GET_KK and verification, every element, the coded
/// dialect, upstream consumer DEV of the stand-in.
fn agreement(daily_quota: u64) -> InstitutionFields {
    InstitutionFields {
        name: Some("Dinas Sosial Kota Semarang".into()),
        region: Some("33.74".parse().unwrap()),
        agreement_number: Some("470/1234/PKS/2026".into()),
        valid_from: Some(date("2026-01-01")),
        valid_until: Some(date("2026-12-31")),
        methods: Some([Method::CallNik, Method::CallNikGetKk, Method::CallVerifyByElemen].into_iter().collect()),
        elements: Some(ElementSet::all()),
        daily_quota: Some(daily_quota),
        access_hours: None,
        dialect: Some(Dialect::Coded),
        consumer_aliases: Some(format!("{CONSUMER},33-74/dinsos_3374").parse().unwrap()),
        upstream_consumer: Some(DEV_CONSUMER.into()),
        upstream_user: Some(DEV_USER.into()),
        upstream_password: Some(Secret::new(DEV_PASSWORD)),
        ..InstitutionFields::default()
    }
}

fn generous() -> RateConfig {
    RateConfig {
        device_per_second: 1000,
        device_burst: 1000,
        user_per_second: 1000,
        user_burst: 1000,
        institution_per_second: 1000,
        institution_burst: 1000,
    }
}

/// Adds `device` for `user` and exports its wg-quick file for `endpoint`; returns the file and what Simpul's own client
/// reads from it, after checking that it routes only the gateway and gives the device its address.
async fn export(admin: &Admin, device: &str, user: &str, endpoint: &str) -> (String, ClientConfig) {
    let added = admin.ok(DeviceAdd { name: name(device), user: name(user), address: None, public_key: None }).await;
    let exported = admin.ok(DeviceExport { name: name(device), endpoint: Some(endpoint.to_owned()) }).await;
    let text = exported["wg_quick"].as_str().expect("a wg-quick file").to_owned();
    let config = wg_quick::parse(&text).unwrap_or_else(|e| panic!("the exported file does not read back: {e}"));
    assert_eq!(config.address.to_string(), added["address"].as_str().unwrap());
    assert_eq!(config.allowed_ips, vec!["10.77.0.1/32".parse().unwrap()]);
    assert_eq!(config.endpoint, endpoint);
    (text, config)
}

/// Simpul's client for a new `device` of `user`, configured from its exported file, reaching the gateway on loopback.
async fn device_client(admin: &Admin, device: &str, user: &str, port: u16) -> (TunnelClient, ClientConfig) {
    let (_, config) = export(admin, device, user, &format!("127.0.0.1:{port}")).await;
    let client = TunnelClient::start(&config).await.expect("the client starts");
    (client, config)
}

/// A `wireguard-go` client in `ns` for a new `device` of `user`, configured from the exported file (keys and peer
/// through `wg-quick strip`, the file's address and route set by hand as system.rs does).
async fn connect(admin: &Admin, ns: &mut Netns, dir: &Path, device: &str, user: &str, endpoint: &str) {
    let (text, config) = export(admin, device, user, endpoint).await;
    let quick = dir.join(format!("wq{}.conf", ns.tag));
    std::fs::write(&quick, text.as_bytes()).unwrap();
    let stripped = dir.join(format!("wg{}.conf", ns.tag));
    std::fs::write(&stripped, netns::run("wg-quick", &["strip", quick.to_str().unwrap()]).stdout).unwrap();
    let iface = wireguard_go_with_config(ns, &stripped).await;
    ns.exec(&["ip", "addr", "add", &format!("{}/32", config.address), "dev", &iface]);
    ns.exec(&["ip", "route", "add", "10.77.0.1/32", "dev", &iface]);
}

/// What the audit log must hold about one answer: its record's sequence number and request id when the test saw the
/// answer's headers (Python and curl do not show them), and its outcome.
#[derive(Debug, Clone)]
struct Answer {
    seq: Option<u64>,
    id: Option<String>,
    outcome: Value,
}

/// What the audit record of `reply` must give as its outcome, read from the reply alone: `{"http": status}`, a
/// coded refusal's code, `"legacy"` (a legacy text, checked against the record's code later) or `"data"`.
fn outcome_of(reply: &Http) -> Value {
    if reply.status != 200 {
        return json!({ "http": reply.status });
    }
    outcome_of_body(&reply.json())
}

fn outcome_of_body(body: &Value) -> Value {
    let first = &body["content"][0];
    match (&first["RESPONSE_CODE"], &first["RESPON"]) {
        (Value::String(code), _) => json!({ "code": code }),
        (_, Value::String(text)) => json!({ "legacy": text }),
        _ => json!("data"),
    }
}

/// The audit log of the gateway whose management socket `admin` is holds exactly one request record per answer in
/// `answered`, plus a number in `untracked` for requests the test could not follow (refused by a full disk); each
/// with the answer's request id (where the test saw it) and outcome. Every admin change is in it too, and the log
/// verifies.
async fn assert_audited(admin: &Admin, answered: &[Answer], untracked: std::ops::RangeInclusive<usize>) {
    let records = common::audit_records(&admin.0).await;
    let requests: Vec<&Value> = records.iter().filter(|r| r.get("request").is_some()).collect();
    let others = requests.len().checked_sub(answered.len());
    assert!(
        others.is_some_and(|n| untracked.contains(&n)),
        "one record per request: {} for {}",
        requests.len(),
        answered.len()
    );
    let outcome_matches = |record: &Value, outcome: &Value| match outcome.get("legacy") {
        Some(text) => request_code(record).is_some_and(|code| texts(code).1 == text.as_str().unwrap()),
        None => record["request"]["outcome"] == *outcome,
    };
    let mut unmatched: Vec<&Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for answer in answered {
        match answer.seq {
            Some(seq) => {
                let record = &records[seq as usize];
                assert_eq!(record["seq"], seq);
                seen.insert(seq);
                let id = answer.id.as_deref().expect("an answer with a record number has a request id");
                assert_eq!(record["request"]["request_id"], id, "{record}");
                assert!(outcome_matches(record, &answer.outcome), "{record} is not {}", answer.outcome);
            }
            None => unmatched.push(&answer.outcome),
        }
    }
    // The answers seen without headers: each takes one record nobody else claimed, with its outcome.
    let mut free: Vec<&Value> =
        requests.iter().copied().filter(|r| !seen.contains(&r["seq"].as_u64().unwrap())).collect();
    for outcome in unmatched {
        let i = free.iter().position(|r| outcome_matches(r, outcome));
        let i = i.unwrap_or_else(|| panic!("no record with outcome {outcome} among {free:?}"));
        free.swap_remove(i);
    }
    let admin_changes = admin.ok(AdminLog { after: 0, limit: 10_000 }).await;
    let admin_records = records.iter().filter(|r| r.get("admin").is_some()).count();
    assert_eq!(admin_records, admin_changes.as_array().unwrap().len(), "every admin change is in the log");
    let verified = admin.ok(AuditVerify { checkpoint: None }).await;
    assert_eq!(verified["problem"], Value::Null, "{verified}");
    assert_eq!(verified["records"], records.len() as u64);
}

fn request_code(record: &Value) -> Option<&str> {
    record["request"]["outcome"]["code"].as_str()
}

/// Remembers what the audit log must hold about `reply`.
fn note(answered: &Mutex<Vec<Answer>>, reply: &Http) {
    let seq = reply.header("x-simpul-audit-seq").and_then(|s| s.parse().ok());
    let seq = seq.unwrap_or_else(|| panic!("every answer names its audit record: {reply:?}"));
    let id = reply.header("x-request-id").expect("every answer has a request id").to_owned();
    answered.lock().unwrap().push(Answer { seq: Some(seq), id: Some(id), outcome: outcome_of(reply) });
}

/// A userspace gateway in-process with `INSTITUTION`, users `budi` and `siti`, and `budi`'s device `laptop-1`, whose
/// client is Simpul's own, in this process.
struct World {
    client: TunnelClient,
    /// laptop-1's file, read back, to start its client again after a restart.
    device: ClientConfig,
    gateway: InProcess,
    admin: Admin,
    clock: Arc<ManualClock>,
    /// The rate limiters' clock, moved by hand.
    rate_clock: FakeRelativeClock,
    config: GatewayConfig,
    dir: TempDir,
    /// Each answer the test saw, and what its record must say.
    answered: Mutex<Vec<Answer>>,
}

impl World {
    async fn start(institution: InstitutionFields, rate: RateConfig) -> World {
        World::start_with(institution, rate, shared_upstream()).await
    }

    async fn start_with(institution: InstitutionFields, rate: RateConfig, upstream: UpstreamConfig) -> World {
        World::start_prepared(institution, rate, upstream, |_, _| {}).await
    }

    /// A world whose gateway also listens on every address, so that `wireguard-go` clients in namespaces
    /// ([`World::add_netns_client`]) reach it through the root end of their veth.
    async fn start_for_namespaces(institution: InstitutionFields) -> World {
        World::start_prepared(institution, generous(), shared_upstream(), |_, config| {
            config.tunnel.listen = "0.0.0.0:0".parse().unwrap();
        })
        .await
    }

    /// As [`World::start_with`], with `prepare` run on the state directory's path and the configuration before the
    /// gateway starts.
    async fn start_prepared(
        institution: InstitutionFields,
        rate: RateConfig,
        upstream: UpstreamConfig,
        prepare: impl FnOnce(&Path, &mut GatewayConfig),
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(start_time()));
        let rate_clock = FakeRelativeClock::default();
        let mut config = GatewayConfig {
            state_dir: Some(dir.path().join("state")),
            tunnel: TunnelConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                mode: Mode::Userspace,
                ..TunnelConfig::default()
            },
            upstream: Some(upstream),
            rate,
            ..GatewayConfig::default()
        };
        prepare(&dir.path().join("state"), &mut config);
        config.validate().expect("a valid config");
        let gateway = InProcess::start(config.clone(), clock.clone(), rate_clock.clone()).await;
        let admin = Admin(gateway.ready.control_socket.clone());
        admin.register(institution, &[BUDI, SITI]).await;
        let (client, device) = device_client(&admin, "laptop-1", BUDI, gateway.ready.listen.port()).await;
        World { client, device, gateway, admin, clock, rate_clock, config, dir, answered: Default::default() }
    }

    /// One request on a new connection from laptop-1, not noted.
    async fn send(&self, raw: Vec<u8>) -> io::Result<Http> {
        send(&self.client, raw).await
    }

    async fn call(&self, method: &str, body: &Value) -> Http {
        let reply = call_on(&self.client, method, body).await;
        self.note(&reply);
        reply
    }

    /// Remembers what the audit log must hold about `reply`.
    fn note(&self, reply: &Http) {
        note(&self.answered, reply);
    }

    /// Remembers an answer seen without its headers (by Python or curl): only its outcome.
    fn note_outcome(&self, outcome: Value) {
        self.answered.lock().unwrap().push(Answer { seq: None, id: None, outcome });
    }

    /// See [`assert_audited`].
    async fn assert_audited(&self, untracked: std::ops::RangeInclusive<usize>) {
        let answered = self.answered.lock().unwrap().clone();
        assert_audited(&self.admin, &answered, untracked).await;
    }

    /// Simpul's client for another device, of `user`.
    async fn add_device(&self, device: &str, user: &str) -> TunnelClient {
        device_client(&self.admin, device, user, self.gateway.ready.listen.port()).await.0
    }

    /// A client namespace with a `wireguard-go` client for a new device of `user` (root; the world must have been
    /// started with [`World::start_for_namespaces`]).
    async fn add_netns_client(&self, device: &str, user: &str) -> Netns {
        let mut ns = Netns::new_named("simpul-api");
        let endpoint = format!("{}:{}", ns.host_ip, self.gateway.ready.listen.port());
        connect(&self.admin, &mut ns, self.dir.path(), device, user, &endpoint).await;
        ns
    }

    /// Stops the gateway and starts it again on the same state directory and UDP port; laptop-1's client starts
    /// again too, so that it shakes hands at once rather than after WireGuard's timeout.
    async fn restart(&mut self) {
        self.gateway.stop();
        let port = self.gateway.ready.listen.port();
        self.config.tunnel.listen = SocketAddr::new(self.config.tunnel.listen.ip(), port);
        self.gateway = InProcess::start(self.config.clone(), self.clock.clone(), self.rate_clock.clone()).await;
        let client = TunnelClient::start(&self.device).await.expect("the client starts again");
        std::mem::replace(&mut self.client, client).shutdown().await;
    }
}

/// Runs a program in `ns` as an application would be run there: no proxy settings from this environment.
async fn run_in(ns: &Netns, args: &[&str]) -> Output {
    let mut command = ns.command(args);
    for proxy in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
        command.env_remove(proxy);
    }
    tokio::process::Command::from(command).kill_on_drop(true).output().await.expect("ip netns exec runs")
}

fn python_script() -> PathBuf {
    simpul_integration::workspace_root().join("integration/tests/python/gateway_client.py")
}

/// The test venv's Python (with `requests`), or a skip (a failure under CI).
fn python(test: &str) -> Option<PathBuf> {
    let python = simpul_integration::python();
    if python.is_none() {
        simpul_integration::skip(test, "no test venv (scripts/test creates target/venv)");
    }
    python
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// The tests.

/// Every code of the wire table through the tunnel, in the coded dialect and byte for byte: the gateway's own
/// refusals (03 04 05 06 07 09 15 16 17) and the warehouse's findings (11 12 13 14); which of them spend quota; that
/// suspension and the agreement's end stop the very next request; then a few in the legacy dialect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_code_through_the_tunnel() {
    let w = World::start(agreement(1000), generous()).await;
    let alive = nik(SampleKind::Alive);

    let (content, quota) = assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!((content.len(), quota), (1, 999));
    let mut left = quota;

    // Refused before the quota gate: nothing is spent, and strangers learn no quota.
    for body in
        [json!({}), creds("", "", &alive), json!({"user_id": BUDI, "NIK": alive}), json!({"password": PASSWORD})]
    {
        assert_code(&w.call("CALL_NIK", &body).await, "09", 0);
    }
    assert_code(&w.call("CALL_NIK", &creds(BUDI, "salah-sandi-rahasia", &alive)).await, "03", 0);
    assert_code(&w.call("CALL_NIK", &creds("nobody", PASSWORD, &alive)).await, "03", 0);
    // Siti's right credentials from Budi's laptop.
    assert_code(&w.call("CALL_NIK", &creds(SITI, PASSWORD, &alive)).await, "04", 0);
    // A body that is not JSON, and a method no one knows: unreadable before anyone is known.
    let garbage = post_bytes(&path_of("CALL_NIK"), b"{\"user_id\": ");
    let unreadable = w.send(garbage).await.unwrap();
    assert_code(&unreadable, "07", 0);
    w.note(&unreadable);
    assert_code(&w.call("CALL_EVERYTHING", &budi(&alive)).await, "07", 0);
    // A method the agreement does not grant: refused with the caller's quota, unspent.
    assert_code(
        &w.call("CALL_AGREGAT", &json!({"user_id": BUDI, "password": PASSWORD, "NO_PROP": "33"})).await,
        "07",
        left,
    );

    // Past the gate every request spends a unit, whatever it finds.
    left -= 1;
    assert_code(&w.call("CALL_NIK", &json!({"user_id": BUDI, "password": PASSWORD})).await, "07", left);
    for malformed in ["12345", "3374041399870006", "33740410038700XX"] {
        left -= 1;
        assert_code(&w.call("CALL_NIK", &budi(malformed)).await, "15", left);
    }
    for (kind, code) in [
        (SampleKind::Deceased, "11"),
        (SampleKind::Duplicate, "12"),
        (SampleKind::Unknown, "13"),
        (SampleKind::Inactive, "14"),
    ] {
        left -= 1;
        assert_code(&w.call("CALL_NIK", &budi(&nik(kind))).await, code, left);
    }

    // Access hours 07:00-16:00 in Jakarta: 10:00 is inside, 16:30 outside.
    w.admin
        .update(InstitutionFields { access_hours: Some(Some("07:00-16:00".parse().unwrap())), ..Default::default() })
        .await;
    left -= 1;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, left);
    w.clock.set(utc("2026-07-15T09:30:00Z"));
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "06", left);
    w.clock.set(utc("2026-07-15T23:30:00Z")); // 06:30 the next day: still outside, and a new quota day.
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "06", 1000);
    w.clock.set(start_time());
    w.admin.update(InstitutionFields { access_hours: Some(None), ..Default::default() }).await;

    // Suspension stops the next request, once the command has returned; resumption restores it.
    let suspended = w.admin.ok(InstitutionSuspend { id: name(INSTITUTION), reason: "monev".into() }).await;
    assert_eq!(suspended["state"], "suspended");
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "16", left);
    w.admin.ok(InstitutionResume { id: name(INSTITUTION) }).await;
    left -= 1;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, left);

    // The agreement's last day is today: in force until local midnight, then 16 with nothing more to do.
    w.admin.update(InstitutionFields { valid_until: Some(date("2026-07-15")), ..Default::default() }).await;
    w.clock.set(utc("2026-07-15T16:59:59Z"));
    left -= 1;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, left);
    w.clock.set(utc("2026-07-15T17:00:00Z"));
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "16", 1000);
    // Not yet in force is inactive too.
    w.clock.set(utc("2025-12-31T12:00:00Z"));
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "16", 1000);
    w.clock.set(start_time());
    w.admin.update(InstitutionFields { valid_until: Some(date("2026-12-31")), ..Default::default() }).await;

    // A disabled user.
    w.admin.ok(UserDisable { id: name(BUDI) }).await;
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "17", left);
    w.admin.ok(UserEnable { id: name(BUDI) }).await;
    left -= 1;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, left);

    // The institution's quota lowered to what it has used: 05, and it stays 05.
    w.admin.update(InstitutionFields { daily_quota: Some(1000 - left), ..Default::default() }).await;
    for _ in 0..2 {
        assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "05", 0);
    }

    // The legacy dialect, with the texts clients compare as strings.
    w.admin.update(InstitutionFields { dialect: Some(Dialect::Legacy), ..Default::default() }).await;
    assert_legacy(&w.call("CALL_NIK", &budi(&alive)).await, "Kuota Akses Hari ini telah Habis", 0);
    assert_legacy(&w.call("CALL_NIK", &creds(SITI, PASSWORD, &alive)).await, "IP Address Tidak Sesuai", 0);
    assert_legacy(&w.call("CALL_NIK", &creds(BUDI, "salah-sandi-rahasia", &alive)).await, "Login Gagal", 0);
    assert_legacy(&w.call("CALL_NIK", &json!({"user_id": BUDI, "NIK": alive})).await, "Login Gagal", 0);
    w.admin.update(InstitutionFields { daily_quota: Some(1000), ..Default::default() }).await;
    left -= 1;
    assert_legacy(&w.call("CALL_NIK", &budi(&nik(SampleKind::Unknown))).await, "Data Tidak Ditemukan", left);
    left -= 1;
    assert_legacy(&w.call("CALL_NIK", &budi("12345")).await, "Data Tidak Ditemukan", left);
    left -= 1;
    assert_legacy(&w.call("CALL_NIK", &budi(&nik(SampleKind::Deceased))).await, texts("11").1, left);
    w.admin.ok(UserDisable { id: name(BUDI) }).await;
    assert_legacy(&w.call("CALL_NIK", &budi(&alive)).await, texts("17").1, left);
    w.admin.ok(UserEnable { id: name(BUDI) }).await;
    w.admin.ok(InstitutionSuspend { id: name(INSTITUTION), reason: "monev".into() }).await;
    assert_legacy(&w.call("CALL_NIK", &budi(&alive)).await, texts("16").1, left);
    w.admin.ok(InstitutionResume { id: name(INSTITUTION) }).await;
    // Data looks the same in both dialects.
    left -= 1;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, left);

    // Every one of those answers is exactly one record in the audit log, saying what the caller got.
    w.assert_audited(0..=0).await;
}

/// What leaves is what the agreement grants: CALL_NIK and CALL_NIK_GET_KK cut to NIK and NAMA_LGKP although the
/// stand-in sends every element; verification answers verdicts only; claiming an element not granted is 07 (and
/// spends, since the lookup was asked for). With every element granted, the record arrives whole and unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_only_the_granted_elements() {
    let granted: ElementSet = [Element::Nik, Element::NamaLgkp].into_iter().collect();
    let w = World::start(InstitutionFields { elements: Some(granted), ..agreement(100) }, generous()).await;
    let resident = sample(SampleKind::Alive, 23);
    let full = record(&resident);
    let nik = resident.nik.to_string();

    let (content, quota) = assert_data(&w.call("CALL_NIK", &budi(&nik)).await, &nik);
    let mut want = Map::new();
    want.insert("NIK".into(), full["NIK"].clone());
    want.insert("NAMA_LGKP".into(), full["NAMA_LGKP"].clone());
    assert_eq!(content, vec![want.clone()]);
    assert_eq!(content[0].keys().collect::<Vec<_>>(), ["NIK", "NAMA_LGKP"]);
    assert_eq!(quota, 99);

    let (members, quota) = assert_data(&w.call("CALL_NIK_GET_KK", &budi(&nik)).await, &nik);
    assert_eq!(quota, 98);
    for member in &members {
        assert_eq!(member.keys().collect::<Vec<_>>(), ["NIK", "NAMA_LGKP"], "{member:?}");
    }
    assert!(members.contains(&want), "{members:?}");

    let name_lower = full["NAMA_LGKP"].as_str().unwrap().to_lowercase();
    let verify = json!({"user_id": BUDI, "password": PASSWORD, "NIK": nik, "NAMA_LGKP": name_lower});
    let (verdicts, quota) = assert_data(&w.call("CALL_VERIFY_BY_ELEMEN", &verify).await, "");
    assert_eq!(
        Value::Array(verdicts.into_iter().map(Value::Object).collect()),
        json!([{"NIK": "Sesuai", "NAMA_LGKP": "Sesuai (100)"}])
    );
    assert_eq!(quota, 97);
    let wrong =
        json!({"user_id": BUDI, "password": PASSWORD, "NIK": nik, "NAMA_LGKP": "ZZZ QQQ XXXXXX", "TRESHOLD": 90});
    let (verdicts, _) = assert_data(&w.call("CALL_VERIFY_BY_ELEMEN", &wrong).await, "");
    let verdict = verdicts[0]["NAMA_LGKP"].as_str().unwrap();
    assert!(verdict.starts_with("Tidak Sesuai (") && verdict.ends_with(')'), "{verdicts:?}");
    assert_eq!(verdicts[0].keys().collect::<Vec<_>>(), ["NIK", "NAMA_LGKP"]);
    // A claim on an element not granted refuses the whole request, and pays for it.
    let probe =
        json!({"user_id": BUDI, "password": PASSWORD, "NIK": nik, "NAMA_LGKP": name_lower, "TGL_LHR": full["TGL_LHR"]});
    assert_code(&w.call("CALL_VERIFY_BY_ELEMEN", &probe).await, "07", 95);

    // Every element granted: the stand-in's record, all of it, in wire order.
    w.admin.update(InstitutionFields { elements: Some(ElementSet::all()), ..Default::default() }).await;
    let (content, quota) = assert_data(&w.call("CALL_NIK", &budi(&nik)).await, &nik);
    assert_eq!(content, vec![full.clone()]);
    assert_eq!(content[0].len(), Element::COUNT);
    assert_eq!(quota, 94);
    w.assert_audited(0..=0).await;
}

/// Daily quotas: three answers count down 2, 1, 0 and then 05; refusals before the gate spend nothing; a user's own
/// smaller quota binds; the counts survive a restart of the gateway; local midnight in Jakarta gives the quota back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_count_down_survive_a_restart_and_come_back_at_midnight() {
    let mut w = World::start(agreement(3), generous()).await;
    let alive = nik(SampleKind::Alive);

    // Refusals before the gate: wrong password, empty credentials, outside the access hours.
    assert_code(&w.call("CALL_NIK", &creds(BUDI, "salah-sandi-rahasia", &alive)).await, "03", 0);
    assert_code(&w.call("CALL_NIK", &creds("", "", &alive)).await, "09", 0);
    w.admin
        .update(InstitutionFields { access_hours: Some(Some("07:00-09:00".parse().unwrap())), ..Default::default() })
        .await;
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "06", 3);
    w.admin.update(InstitutionFields { access_hours: Some(None), ..Default::default() }).await;

    for want in [2, 1, 0] {
        assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, want);
    }
    for _ in 0..2 {
        assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "05", 0);
    }

    // The institution's quota raised to 100 (97 left), Budi's own set to 5 (2 left): Budi's binds.
    w.admin.update(InstitutionFields { daily_quota: Some(100), ..Default::default() }).await;
    w.admin.update_user(BUDI, UserFields { daily_quota: Some(Some(5)), ..Default::default() }).await;
    for want in [1, 0] {
        assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, want);
    }
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "05", 0);

    // A restart keeps the counts: Budi's 5 of 5, the institution's 5 of 100.
    w.restart().await;
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "05", 0);
    w.admin.update_user(BUDI, UserFields { daily_quota: Some(None), ..Default::default() }).await;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 94);

    // Used up again (6 of 6), until local midnight: 17:00 UTC.
    w.admin.update(InstitutionFields { daily_quota: Some(6), ..Default::default() }).await;
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "05", 0);
    w.clock.set(utc("2026-07-15T16:59:59Z"));
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "05", 0);
    w.clock.set(utc("2026-07-15T17:00:00Z"));
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 5);
    w.assert_audited(0..=0).await;
}

/// The rate limit (1 a second, bursts of 2 per user), on the limiters' clock, which stands still unless the test moves
/// it: of six requests exactly two are answered and four meet 429 with `Retry-After` and a JSON body that names the
/// limit; the refused requests spend no quota; just short of the wait the user is still refused, after it served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_rate_gets_429_with_retry_after() {
    let rate = RateConfig { user_per_second: 1, user_burst: 2, ..generous() };
    let w = World::start(agreement(100), rate).await;
    let alive = nik(SampleKind::Alive);

    let (mut answered, mut limited, mut retry_after) = (0u64, 0u64, 0u64);
    for _ in 0..6 {
        let reply = w.call("CALL_NIK", &budi(&alive)).await;
        if reply.status == 429 {
            limited += 1;
            let (message, quota) = assert_transport(&reply, 429);
            assert!(message.contains("budi"), "{message}");
            assert_eq!(quota, 100 - answered, "a 429 tells the remaining quota and spends none");
            let after: u64 = reply.header("retry-after").expect("Retry-After").parse().unwrap();
            retry_after = after;
        } else {
            answered += 1;
            assert_eq!(assert_data(&reply, &alive).1, 100 - answered);
        }
    }
    assert_eq!((answered, limited), (2, 4), "the burst, then refusals");
    assert_eq!(retry_after, 1, "one request a second: the next in a second");

    w.rate_clock.advance(Duration::from_secs(retry_after) - Duration::from_millis(1));
    assert_transport(&w.call("CALL_NIK", &budi(&alive)).await, 429);
    w.rate_clock.advance(Duration::from_millis(1));
    let (_, quota) = assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(quota, 100 - answered - 1, "only answered requests were counted");
    w.assert_audited(0..=0).await;
}

/// Suspension and resumption take effect live: an institution's suspension answers 16 on the next request (on a
/// kept-alive connection too) and its resumption serves again; a suspended device's open connection is refused
/// and its new connections are closed unanswered, until it is resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_and_resumption_take_effect_on_the_next_request() {
    let w = World::start(agreement(100), generous()).await;
    let alive = nik(SampleKind::Alive);
    let keep_alive = |body: &Value| {
        let body = body.to_string();
        request_bytes("POST", &path_of("CALL_NIK"), &[("Content-Type", "application/json")], body.as_bytes())
    };
    let mut kept_open = open(&w.client).await.unwrap();
    let kept = exchange_on(&mut kept_open, &keep_alive(&budi(&alive))).await.unwrap();
    assert_eq!(assert_data(&kept, &alive).1, 99);
    w.note(&kept);

    w.admin.ok(InstitutionSuspend { id: name(INSTITUTION), reason: "laporan data balikan".into() }).await;
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "16", 99);
    let kept = exchange_on(&mut kept_open, &keep_alive(&budi(&alive))).await.unwrap();
    assert_code(&kept, "16", 99);
    w.note(&kept);
    w.admin.ok(InstitutionResume { id: name(INSTITUTION) }).await;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 98);
    let kept = exchange_on(&mut kept_open, &keep_alive(&budi(&alive))).await.unwrap();
    assert_eq!(assert_data(&kept, &alive).1, 97);
    w.note(&kept);

    let suspended = w.admin.ok(DeviceSuspend { name: name("laptop-1") }).await;
    assert_eq!(suspended["status"], "suspended");
    let refused = exchange_on(&mut kept_open, &keep_alive(&budi(&alive))).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    // Refused for its device, yet recorded: a suspended device still knocking is what an auditor wants to see.
    w.note(&refused);
    let fresh = w.send(post_bytes(&path_of("CALL_NIK"), budi(&alive).to_string().as_bytes())).await;
    match fresh {
        Ok(reply) => panic!("a suspended device was answered: {reply:?} {}", reply.text()),
        Err(e) => assert!(
            !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
            "the connection is closed, not left hanging: {e}"
        ),
    }
    w.admin.ok(DeviceResume { name: name("laptop-1") }).await;
    assert_eq!(
        assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1,
        96,
        "nothing was spent while suspended"
    );
    w.assert_audited(0..=0).await;
}

/// The request exactly as field applications send it: Python `requests` with upper-case keys and string values, the
/// NIK as a JSON number, credentials in the query string with an empty body, the regional route, the malformed
/// Content-Type; and curl with `-d` (which says form-urlencoded). All answered with data; a large body is 413 and a
/// GET 405, as `requests` sees them. Each of those requests is one audit record with the outcome its client saw.
///
/// Root: the applications are real programs, which reach the tunnel only through a kernel interface (`wireguard-go`
/// in a network namespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_unchanged_python_requests_and_curl() {
    const NAME: &str = "real_clients_unchanged_python_requests_and_curl";
    if missing_prerequisite(NAME, TOOLS) {
        return;
    }
    let Some(python) = python(NAME) else { return };
    let w = World::start_for_namespaces(agreement(100)).await;
    let ns = w.add_netns_client("laptop-ns", BUDI).await;
    let resident = sample(SampleKind::Alive, 29);
    let full = record(&resident);
    let nik = resident.nik.to_string();
    let cases = json!({
        "consumer": CONSUMER, "user": BUDI, "password": PASSWORD, "nik": nik,
        "nama": full["NAMA_LGKP"], "tgl_lhr": full["TGL_LHR"],
    });
    let script = python_script();
    let out = run_in(
        &ns,
        &[python.to_str().unwrap(), script.to_str().unwrap(), "clients", "http://10.77.0.1:8000", &cases.to_string()],
    )
    .await;
    let replies: Vec<Value> = stdout_of(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for reply in &replies {
        w.note_outcome(match reply["status"].as_u64() {
            Some(200) => outcome_of_body(&reply["body"]),
            status => json!({ "http": status }),
        });
    }
    let reply = |case: &str| {
        replies.iter().find(|r| r["case"] == case).unwrap_or_else(|| panic!("no reply for {case}: {replies:?}"))
    };
    let mut left = 100;
    for case in ["upper_case_strings", "nik_as_number", "query_string", "regional_route"] {
        let r = reply(case);
        assert_eq!((r["status"].as_u64(), r["content_type"].as_str()), (Some(200), Some("application/json")), "{r}");
        left -= 1;
        assert_eq!(r["body"]["content"], json!([full]), "{case}");
        assert_eq!(r["body"]["quotaLimiter"], left, "{case}");
    }
    let verify = reply("verify");
    left -= 1;
    assert_eq!(
        verify["body"]["content"],
        json!([{"NIK": "Sesuai", "NAMA_LGKP": "Sesuai (100)", "TGL_LHR": "Sesuai"}]),
        "{verify}"
    );
    assert_eq!(verify["body"]["quotaLimiter"], left);
    let too_large = reply("too_large");
    assert_eq!(
        (too_large["status"].as_u64(), too_large["content_type"].as_str()),
        (Some(413), Some("application/json")),
        "{too_large}"
    );
    assert_eq!(too_large["body"]["content"][0]["RESPONSE_CODE"], "413", "{too_large}");
    let get = reply("get");
    assert_eq!((get["status"].as_u64(), get["allow"].as_str()), (Some(405), Some("POST")), "{get}");
    assert_eq!(get["body"]["content"][0]["RESPONSE_CODE"], "405", "{get}");

    // curl: `-d` alone (application/x-www-form-urlencoded), the NIK as a number, the odd Content-Type, the query
    // string with an empty body.
    let url = format!("http://{API}{}", path_of("CALL_NIK"));
    let string_body = budi(&nik).to_string();
    let number_body = format!(r#"{{"USER_ID":"{BUDI}","PASSWORD":"{PASSWORD}","NIK":{nik}}}"#);
    let query = format!("{url}?USER_ID={BUDI}&PASSWORD={PASSWORD}&NIK={nik}");
    let odd = "Content-Type: application/json,Accept: application/json";
    let runs: [&[&str]; 4] = [
        &["-d", &string_body, &url],
        &["-d", &number_body, &url],
        &["-H", odd, "-d", &string_body, &url],
        &["-X", "POST", "-d", "", &query],
    ];
    for args in runs {
        let out = run_in(&ns, &[&["curl", "-sS", "--max-time", "20"], args].concat()).await;
        let body = stdout_of(&out);
        let value: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{args:?}: {e}: {body}"));
        w.note_outcome(outcome_of_body(&value));
        left -= 1;
        assert_eq!(value["content"], json!([full]), "{args:?}");
        assert_eq!(value["quotaLimiter"], left, "{args:?}");
        assert!(
            body.starts_with(r#"{"content":[{"NIK":"#) && body.ends_with(&format!(r#""quotaLimiter":{left}}}"#)),
            "{body}"
        );
    }
    w.assert_audited(0..=0).await;
}

/// Four devices of four users of one institution with a quota of 25 fire 60 requests at once (Python threads, 15 in
/// each client namespace, one connection each, opened beforehand): exactly 25 answers with data, each remaining count
/// from 24 down to 0 exactly once, and 35 times 05; the ledger agrees afterwards, and the audit log holds one record
/// per request with the outcome its client saw.
///
/// Root: the burst comes from real programs (Python threads), which reach the tunnel only through kernel interfaces
/// (`wireguard-go` in network namespaces).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_never_overspend_a_quota() {
    concurrent_clients("concurrent_clients_never_overspend_a_quota", true).await;
}

/// The same burst on 60 new connections at once, as applications open them: every one is answered (none refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_new_connections_are_all_answered() {
    concurrent_clients("concurrent_new_connections_are_all_answered", false).await;
}

async fn concurrent_clients(test: &str, warm: bool) {
    if missing_prerequisite(test, TOOLS) {
        return;
    }
    let Some(python) = python(test) else { return };
    const QUOTA: u64 = 25;
    const EACH: usize = 15;
    let w = World::start_for_namespaces(agreement(QUOTA)).await;
    let mut clients = vec![(w.add_netns_client("laptop-ns", BUDI).await, BUDI)];
    for (i, user) in ["andi", "citra", "dewi"].into_iter().enumerate() {
        w.admin.add_user(user, 10 + i).await;
        clients.push((w.add_netns_client(&format!("laptop-{user}"), user).await, user));
    }
    let everyone: Vec<(&Netns, &str)> = clients.iter().map(|(ns, u)| (ns, *u)).collect();
    let alive = nik(SampleKind::Alive);
    // Each tunnel up and each password verified before the burst, by a request refused before the quota gate (a
    // method not granted).
    for (ns, user) in &everyone {
        let body = json!({"user_id": user, "password": PASSWORD, "NO_PROP": "33"});
        let reply = call_from(ns, "CALL_AGREGAT", &body).await;
        assert_code(&reply, "07", QUOTA);
        w.note(&reply);
    }

    let script = python_script();
    let runs = everyone.iter().map(|(ns, user)| {
        let cases = json!({
            "consumer": CONSUMER, "user": user, "password": PASSWORD, "nik": alive, "requests": EACH, "warm": warm,
        });
        let (python, script) = (python.clone(), script.clone());
        async move {
            let args = [
                python.to_str().unwrap(),
                script.to_str().unwrap(),
                "concurrent",
                "http://10.77.0.1:8000",
                &cases.to_string(),
            ];
            run_in(ns, &args).await
        }
    });
    let [a, b, c, d]: [_; 4] = runs.collect::<Vec<_>>().try_into().unwrap_or_else(|_| panic!("four clients"));
    let (a, b, c, d) = tokio::join!(a, b, c, d);
    let mut results = Vec::new();
    for out in [a, b, c, d] {
        let list: Vec<Value> = serde_json::from_str(stdout_of(&out).trim()).unwrap();
        assert_eq!(list.len(), EACH);
        results.extend(list);
    }
    if warm {
        // Each thread opened its connection with a `GET /`, answered 200 and recorded like any request.
        for _ in &results {
            w.note_outcome(json!({ "http": 200 }));
        }
    }
    let mut remaining = Vec::new();
    let mut exhausted = 0;
    for r in &results {
        assert_eq!(r["status"], 200, "{r}");
        let body = &r["body"];
        w.note_outcome(outcome_of_body(body));
        if body["content"][0]["RESPONSE_CODE"] == "05" {
            assert_eq!(body.to_string(), coded_body("05", 0), "{r}");
            exhausted += 1;
        } else {
            assert_eq!(body["content"][0]["NIK"].as_u64(), Some(alive.parse().unwrap()), "{r}");
            remaining.push(body["quotaLimiter"].as_u64().unwrap());
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..QUOTA).collect::<Vec<_>>(), "each unit spent exactly once");
    assert_eq!(exhausted, 4 * EACH - QUOTA as usize);

    // The ledger agrees: nothing left; one more unit gives exactly one more answer.
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "05", 0);
    w.admin.update(InstitutionFields { daily_quota: Some(QUOTA + 1), ..Default::default() }).await;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 0);
    w.assert_audited(0..=0).await;
}

/// HTTP edges: GET on a web-service route is 405 with `Allow: POST` and JSON; a 100 KB body 413; an unknown route
/// 404 (JSON under /dukcapil/); a client that sends half a request head is disconnected and one that sends half a
/// body gets 408, both after the gateway's 10 s read timeouts (asserted only within a generous 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_edges_405_413_404_and_slow_clients() {
    let w = World::start(agreement(100), generous()).await;
    let alive = nik(SampleKind::Alive);
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 99);

    // The slow clients first, so their wait overlaps the rest.
    let mut stream = open(&w.client).await.unwrap();
    let half_head = tokio::spawn(async move {
        stream
            .write_all(b"POST /dukcapil/get_json/DINSOS_3374/CALL_NIK HTTP/1.1\r\nHost: 10.77.0.1\r\nContent-")
            .await
            .unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let outcome = tokio::time::timeout(EXCHANGE_TIMEOUT, stream.read_to_end(&mut rest)).await;
        (outcome.expect("the connection ends").map_err(|e| e.kind()), rest, started.elapsed())
    });
    let mut stream = open(&w.client).await.unwrap();
    let half_body = tokio::spawn(async move {
        let head = request_bytes("POST", &path_of("CALL_NIK"), &[("Content-Type", "application/json")], &[]);
        let head = String::from_utf8(head).unwrap().replace("Content-Length: 0", "Content-Length: 100");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(br#"{"user_id":"#).await.unwrap();
        let started = Instant::now();
        (exchange_on(&mut stream, b"").await, started.elapsed())
    });

    let get = w.send(request_bytes("GET", &path_of("CALL_NIK"), &[("Connection", "close")], &[])).await.unwrap();
    assert_transport(&get, 405);
    assert_eq!(get.header("allow"), Some("POST"));
    w.note(&get);
    let mut big = br#"{"user_id":"budi","password":"kata-sandi-rahasia","NIK":""#.to_vec();
    big.extend(std::iter::repeat_n(b'1', 100 * 1024));
    big.extend_from_slice(b"\"}");
    let too_big = w.send(post_bytes(&path_of("CALL_NIK"), &big)).await.unwrap();
    let (message, _) = assert_transport(&too_big, 413);
    assert!(message.contains("65536"), "{message}");
    w.note(&too_big);
    for path in ["/dukcapil/get_json", "/dukcapil/get_json/DINSOS_3374/CALL_NIK/more/segments", "/dukcapil/nothing"] {
        let reply = w.send(post_bytes(path, budi(&alive).to_string().as_bytes())).await.unwrap();
        let (message, quota) = assert_transport(&reply, 404);
        assert_eq!(quota, 0, "{message}");
        w.note(&reply);
    }
    let elsewhere = w.send(request_bytes("GET", "/elsewhere", &[("Connection", "close")], &[])).await.unwrap();
    assert_eq!(elsewhere.status, 404);
    w.note(&elsewhere);

    let (outcome, rest, waited) = half_head.await.unwrap();
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    match outcome {
        Ok(_) => assert!(rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&rest)),
        Err(kind) => assert!(!matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{kind:?}"),
    }
    let (reply, waited) = half_body.await.unwrap();
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    let slow = reply.expect("an answer to the slow body");
    assert_transport(&slow, 408);
    w.note(&slow);

    // None of this spent quota.
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 98);
    // Each of those answers is one record; the client that never sent its head made no request, so no record.
    w.assert_audited(0..=0).await;
}

/// What an answer must be, in whichever dialect.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A business code with this `quotaLimiter`.
    Code(&'static str, u64),
    /// An HTTP failure with a JSON body whose message contains this.
    Transport(u16, &'static str),
    Data,
}

/// `reply` is `want`, written in `dialect`, byte for byte where the wire fixes the bytes.
#[track_caller]
fn assert_answer(reply: &Http, dialect: Dialect, want: Expect) {
    assert_json_type(reply);
    match (want, dialect) {
        (Expect::Code(code, quota), Dialect::Coded) => assert_code(reply, code, quota),
        (Expect::Code(code, quota), Dialect::Legacy) => assert_legacy(reply, texts(code).1, quota),
        (Expect::Transport(status, says), Dialect::Coded) => {
            let (message, _) = assert_transport(reply, status);
            assert!(message.contains(says), "{message}");
        }
        (Expect::Transport(status, says), Dialect::Legacy) => {
            assert_eq!(reply.status, status, "{}", reply.text());
            let value = reply.json();
            let object = value.as_object().unwrap();
            assert_eq!(object.keys().map(String::as_str).collect::<Vec<_>>(), ENVELOPE_KEYS, "{value}");
            let item = value["content"][0].as_object().unwrap();
            assert_eq!(item.keys().collect::<Vec<_>>(), ["RESPON"], "the legacy dialect: {value}");
            assert!(item["RESPON"].as_str().unwrap().contains(says), "{value}");
        }
        (Expect::Data, _) => {
            assert_eq!(reply.status, 200, "{}", reply.text());
            let first = &reply.json()["content"][0];
            assert!(first.get("RESPON").is_none() && first.get("RESPONSE_CODE").is_none(), "{}", reply.text());
        }
    }
}

/// A request with a chunked body whose chunk size is not hexadecimal.
fn broken_chunk(path: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {API}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\nZZ\r\n{{}}\r\n0\r\n\r\n"
    )
    .into_bytes()
}

/// Hostile input, in both dialects: every answer is JSON in the dialect of the device's institution (transport
/// errors too, and whatever user the body names, another institution's included), precise, and one audit record.
/// An unknown user id and a wrong password get the same bytes. A NIK with a sign, a fraction or an exponent is 15
/// (and pays its unit, as every looked-up NIK does); a path naming another consumer is 404 as the warehouse answers
/// it; doubled slashes are routed; a request followed by a half-close is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_answered_in_the_devices_dialect() {
    let w = World::start(agreement(1000), generous()).await;
    // Another institution and its user, always in the other dialect: were a body's user to choose the dialect, it
    // would show.
    let lain = InstitutionFields {
        region: Some("33.75".parse().unwrap()),
        consumer_aliases: None,
        upstream_consumer: Some("LAIN_3375".into()),
        ..agreement(10)
    };
    w.admin.ok(InstitutionAdd { id: name("LAIN-3375"), fields: lain }).await;
    let fields = UserFields {
        institution: Some(name("LAIN-3375")),
        name: Some("Pengguna lain".into()),
        nik: Some(OPERATOR_NIK.into()),
        nip: Some(operator_nip(9)),
        position: Some("Analis Data".into()),
        office_region: Some("33.75.01".parse().unwrap()),
        application_user: Some("lain".into()),
        daily_quota: None,
    };
    w.admin.ok(UserAdd { id: name("lain"), fields, password: Secret::new(PASSWORD) }).await;
    let alive = nik(SampleKind::Alive);
    let call_nik = path_of("CALL_NIK");
    let mut remaining = 1000;

    for dialect in [Dialect::Coded, Dialect::Legacy] {
        let other = if dialect == Dialect::Coded { Dialect::Legacy } else { Dialect::Coded };
        w.admin.update(InstitutionFields { dialect: Some(dialect), ..InstitutionFields::default() }).await;
        let other_fields = InstitutionFields { dialect: Some(other), ..InstitutionFields::default() };
        w.admin.ok(InstitutionUpdate { id: name("LAIN-3375"), fields: other_fields }).await;
        let exchange = async |raw: Vec<u8>, want: Expect| {
            let reply = w.send(raw).await.unwrap_or_else(|e| panic!("{dialect:?} {want:?}: {e}"));
            assert_answer(&reply, dialect, want);
            w.note(&reply);
            reply
        };
        let post = |path: &str, body: Value| post_bytes(path, body.to_string().as_bytes());

        // Who: an unknown user id and a wrong password, byte for byte alike; another institution's user.
        let unknown = exchange(post(&call_nik, creds("nobody", PASSWORD, &alive)), Expect::Code("03", 0)).await;
        let wrong = exchange(post(&call_nik, creds(BUDI, "salah-sekali-123", &alive)), Expect::Code("03", 0)).await;
        assert_eq!(unknown.body, wrong.body, "an unknown id and a wrong password are indistinguishable");
        exchange(post(&call_nik, creds("lain", PASSWORD, &alive)), Expect::Code("04", 0)).await;

        // What: unreadable, deeply nested and empty bodies.
        exchange(post_bytes(&call_nik, br#"{"user_id":"#), Expect::Code("07", 0)).await;
        let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        exchange(post_bytes(&call_nik, nested.as_bytes()), Expect::Code("07", 0)).await;
        exchange(post_bytes(&call_nik, b""), Expect::Code("09", 0)).await;

        // NIKs in forms that are not NIKs: refused as malformed (15), each paying its unit.
        for bad in [
            format!(r#"{{"user_id":"budi","password":"{PASSWORD}","NIK":-{alive}}}"#),
            format!(r#"{{"user_id":"budi","password":"{PASSWORD}","NIK":"-{alive}"}}"#),
            format!(r#"{{"user_id":"budi","password":"{PASSWORD}","NIK":{alive}.0}}"#),
            format!(r#"{{"user_id":"budi","password":"{PASSWORD}","NIK":{}.{}e15}}"#, &alive[..1], &alive[1..]),
        ] {
            remaining -= 1;
            exchange(post_bytes(&call_nik, bad.as_bytes()), Expect::Code("15", remaining)).await;
        }

        // Where: another institution's consumer, names that are no one's, and doubled slashes (routed).
        for consumer in ["LAIN_3375", "BPS", "DEV%00", &"D".repeat(300)] {
            let path = format!("/dukcapil/get_json/{consumer}/CALL_NIK");
            exchange(post(&path, budi(&alive)), Expect::Transport(404, "Konsumen tidak terdaftar")).await;
        }
        for path in ["//dukcapil//get_json//DINSOS_3374//CALL_NIK", "//dukcapil//get_json//DEV//CALL_NIK"] {
            remaining -= 1;
            exchange(post(path, budi(&alive)), Expect::Data).await;
        }
        for path in ["/dukcapil/get_json/DINSOS_3374/%FF", "/elsewhere", "//", "/dukcapil/get_json"] {
            exchange(post(path, budi(&alive)), Expect::Transport(404, "")).await;
        }

        // How: a wrong method, a body too large, a broken chunk.
        let get =
            exchange(request_bytes("GET", &call_nik, &[("Connection", "close")], &[]), Expect::Transport(405, "POST"))
                .await;
        assert_eq!(get.header("allow"), Some("POST"));
        let mut big = budi(&alive).to_string().into_bytes();
        big.extend(std::iter::repeat_n(b' ', 70 * 1024));
        exchange(post_bytes(&call_nik, &big), Expect::Transport(413, "65536")).await;
        exchange(broken_chunk(&call_nik), Expect::Transport(408, "")).await;

        // A complete request, then the client shuts its sending side: answered all the same.
        let raw = post(&call_nik, budi(&alive));
        let mut stream = open(&w.client).await.unwrap();
        stream.write_all(&raw).await.unwrap();
        stream.shutdown().await.unwrap();
        let reply = exchange_on(&mut stream, b"").await.expect("an answer after a half-close");
        remaining -= 1;
        assert_answer(&reply, dialect, Expect::Data);
        assert_eq!(reply.json()["quotaLimiter"], remaining);
        w.note(&reply);
    }
    w.assert_audited(0..=0).await;
}

/// Password checks are bounded before they cost argon2. After five wrong passwords for one user id from one device,
/// that device's checks of that id are refused without hashing until the wait is over (here an hour, so that no
/// machine is slow enough to outlast it), even with the right password, answered exactly as a wrong one: siti's right
/// password from budi's laptop is 03, where checked it would be 04 (not her device). The owner's own laptop and
/// other ids from the same laptop are untouched. The device's rate, counted before any of this, answers 429 in the
/// dialect, naming the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_back_off_per_device_and_the_device_rate_comes_first() {
    let rate = RateConfig { device_per_second: 1, device_burst: 14, ..generous() };
    let w = World::start_prepared(agreement(100), rate, shared_upstream(), |_, config| {
        (config.api.backoff_first_seconds, config.api.backoff_max_seconds) = (3600, 3600);
    })
    .await;
    let alive = nik(SampleKind::Alive);
    let siti_laptop = w.add_device("laptop-siti", SITI).await;

    // Unchecked, siti's right password from budi's laptop is a device mismatch.
    assert_code(&w.call("CALL_NIK", &creds(SITI, PASSWORD, &alive)).await, "04", 0);
    for _ in 0..5 {
        assert_code(&w.call("CALL_NIK", &creds(SITI, "salah-sekali-123", &alive)).await, "03", 0);
    }
    let backing_off = w.call("CALL_NIK", &creds(SITI, PASSWORD, &alive)).await;
    assert_code(&backing_off, "03", 0);
    // Unknown ids back off alike: no sign of which ids exist.
    for _ in 0..5 {
        assert_code(&w.call("CALL_NIK", &creds("nobody", "salah-sekali-123", &alive)).await, "03", 0);
    }
    assert_eq!(w.call("CALL_NIK", &creds("nobody", PASSWORD, &alive)).await.body, backing_off.body);
    // Budi's own id from his laptop, and siti's from hers, are served.
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 99);
    let hers = call_on(&siti_laptop, "CALL_NIK", &creds(SITI, PASSWORD, &alive)).await;
    assert_eq!(assert_data(&hers, &alive).1, 98);
    w.note(&hers);

    // 14 requests so far from budi's laptop, its whole burst, and the rate clock stands still: the next one is refused
    // before its password is looked at.
    let limited = w.call("CALL_NIK", &creds("nobody", PASSWORD, &alive)).await;
    let (message, quota) = assert_transport(&limited, 429);
    assert!(message.contains("perangkat laptop-1"), "{message}");
    assert_eq!(quota, 0, "nothing about the user is known before the password");
    assert!(limited.header("retry-after").is_some());
    w.assert_audited(0..=0).await;
}

/// With the warehouse down, a request is 502 with a JSON body in the caller's dialect and its unit goes back, while
/// what is in the cache is still answered; when the warehouse is back, so are the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_in_the_dialect_and_refunded() {
    let identity = Identity::self_signed(&[]).unwrap();
    let mut stand = StandIn::on_loopback(&identity).await;
    let addr = stand.addr;
    let w = World::start_with(agreement(10), generous(), stand.upstream()).await;
    let (alive, other) = (nik(SampleKind::Alive), sample(SampleKind::Alive, 18).nik.to_string());
    assert_ne!(alive, other);
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 9);

    stand.stop().await;
    // What was asked before is still answered, from the cache, and paid for like any answer.
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 8);
    for _ in 0..2 {
        let (message, quota) = assert_transport(&w.call("CALL_NIK", &budi(&other)).await, 502);
        assert_eq!(quota, 8, "refunded: {message}");
    }
    w.admin.update(InstitutionFields { dialect: Some(Dialect::Legacy), ..Default::default() }).await;
    let reply = w.call("CALL_NIK", &budi(&other)).await;
    assert_eq!(reply.status, 502);
    assert_json_type(&reply);
    let value = reply.json();
    let item = value["content"][0].as_object().unwrap();
    assert_eq!(item.keys().collect::<Vec<_>>(), ["RESPON"], "{value}");
    assert!(!item["RESPON"].as_str().unwrap().is_empty());
    assert_eq!(value["quotaLimiter"], 8, "{value}");

    // The warehouse back on its address: answers again (the failures were not kept), and the count shows they cost
    // nothing.
    let mut stand = StandIn::start(tokio::net::TcpListener::bind(addr).await.unwrap(), &identity).await;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&other)).await, &other).1, 7);
    assert_eq!(stand.warehouse.requests(), 1, "asked upstream");
    w.assert_audited(0..=0).await;
    drop(w);
    stand.stop().await;
}

// ----------------------------------------------------------------------------------------------------------------
// TUN mode.

/// The addresses in the nftables `suspended` set in `ns`.
fn suspended_set(ns: &Netns) -> Vec<String> {
    let output = ns.command(&["nft", "-j", "list", "set", "inet", "simpul", "suspended"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let set = parsed["nftables"].as_array().unwrap().iter().find_map(|o| o.get("set")).expect("the set").clone();
    set["elem"].as_array().map(|e| e.iter().map(|v| v.as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

/// TUN mode, as production runs it: the binary in its namespace with the stand-in reachable there (its listener made
/// inside that namespace, served by this test), a CALL_NIK answered through the kernel's TUN device, and an
/// institution's suspension putting its device into nftables' drop set, so that its requests never arrive. Every
/// answer is one audit record.
///
/// Root: a TUN device, nftables and network namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tun_mode_answers_and_nftables_drops_a_suspended_institution() {
    const NAME: &str = "tun_mode_answers_and_nftables_drops_a_suspended_institution";
    if missing_prerequisite(NAME, &[TOOLS, &["nft"]].concat()) {
        return;
    }
    let (gw, mut client) = Netns::pair_named("simpul-apt");
    gw.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
    let listener = gw.enter(|| std::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    listener.set_nonblocking(true).unwrap();
    let stand =
        StandIn::start(tokio::net::TcpListener::from_std(listener).unwrap(), &Identity::self_signed(&[]).unwrap())
            .await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let text = format!(
        "state_dir = \"{state}\"\n[tunnel]\nlisten = \"{ip}:51820\"\nmode = \"tun\"\n[upstream]\nurl = \"https://{addr}\"\n\
         fingerprint = \"{fingerprint}\"\n[rate]\nuser_per_second = 1000\nuser_burst = 1000\n",
        state = dir.path().join("state").display(),
        ip = gw.ns_ip,
        addr = stand.addr,
        fingerprint = stand.fingerprint,
    );
    std::fs::write(&config, text).unwrap();
    let mut gateway = common::Process::start(&gw, &config);
    let admin = Admin(dir.path().join("state/control.sock"));
    // The binary runs on the system clock: an agreement in force for years.
    let fields = InstitutionFields {
        valid_from: Some(date("2020-01-01")),
        valid_until: Some(date("2099-12-31")),
        ..agreement(100)
    };
    admin.register(fields, &[BUDI]).await;
    let endpoint = format!("{}:51820", gw.ns_ip);
    connect(&admin, &mut client, dir.path(), "laptop-1", BUDI, &endpoint).await;
    let device = admin.ok(DeviceShow { name: name("laptop-1") }).await;
    let address = device["address"].as_str().unwrap().to_owned();

    let resident = sample(SampleKind::Alive, 31);
    let nik = resident.nik.to_string();
    let answered = Mutex::new(Vec::new());
    let reply = call_from(&client, "CALL_NIK", &budi(&nik)).await;
    note(&answered, &reply);
    let (content, quota) = assert_data(&reply, &nik);
    assert_eq!((content, quota), (vec![record(&resident)], 99));
    assert!(suspended_set(&gw).is_empty());

    admin.ok(InstitutionSuspend { id: name(INSTITUTION), reason: "monev".into() }).await;
    assert_eq!(suspended_set(&gw), vec![address.clone()], "the institution's device is in the drop set");
    let dropped = connect_in(&client.name, Duration::from_secs(2)).await;
    assert!(dropped.is_err(), "a suspended institution's device reaches nothing");

    admin.ok(InstitutionResume { id: name(INSTITUTION) }).await;
    assert!(suspended_set(&gw).is_empty());
    let reply = call_from(&client, "CALL_NIK", &budi(&nik)).await;
    note(&answered, &reply);
    assert_eq!(assert_data(&reply, &nik).1, 98);
    // Two answers, two records; the dropped attempt never reached the web service, so it has none.
    assert_audited(&admin, &answered.into_inner().unwrap(), 0..=0).await;
    gateway.stop();
    let table = gw.command(&["nft", "list", "table", "inet", "simpul"]).output().unwrap();
    assert!(!table.status.success(), "a clean stop removes the table");
    drop(stand);
}

/// Runs the admin CLI against the world's gateway (found through its state directory).
fn cli(w: &World, args: &[&str]) -> Output {
    cli_in(w, args, "")
}

/// [`cli`] with `stdin` as its standard input.
fn cli_in(w: &World, args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let state = w.config.state_dir();
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .arg("--state-dir")
        .arg(&state)
        .env_remove("SIMPUL_GATEWAY_CONFIG")
        .env_remove("SIMPUL_GATEWAY_STATE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI runs");
    child.stdin.take().expect("piped").write_all(stdin.as_bytes()).expect("the CLI takes its input");
    child.wait_with_output().expect("the CLI runs")
}

fn cli_json(w: &World, args: &[&str]) -> Value {
    let output = cli(w, &[args, &["--json"]].concat());
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// What an auditor and the population office do with the log, through the CLI: verify it against a checkpoint kept
/// outside, hand over a proof that checks offline with the pinned key (and fails when altered), find one person's
/// trail, export it, and produce the semester report, whose every figure an independent script recomputes from the
/// export. Retention then destroys the person's link: the log still verifies and the trail is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_verify_prove_search_export_and_report_through_the_cli() {
    const NAME: &str = "auditors_verify_prove_search_export_and_report_through_the_cli";
    let Some(python) = python(NAME) else { return };
    let w = World::start(agreement(1000), generous()).await;
    let out = w.dir.path();
    let path = |name: &str| out.join(name).to_str().unwrap().to_owned();
    let (alive, other) = (nik(SampleKind::Alive), nik(SampleKind::Deceased));
    // Once in groups, as some applications write it: the same person for the trail below.
    let dotted = format!("{}.{}.{}", &alive[..6], &alive[6..12], &alive[12..]);
    for written in [&alive, &dotted, &alive] {
        assert_data(&w.call("CALL_NIK", &budi(written)).await, &alive);
    }
    assert_code(&w.call("CALL_NIK", &budi(&other)).await, "11", 996);
    assert_code(&w.call("CALL_NIK", &creds(BUDI, "salah-sandi-rahasia", &alive)).await, "03", 0);

    // The checkpoint an auditor takes home; later the log must still extend it.
    let checkpoint = cli(&w, &["audit", "checkpoint", "--out", &path("checkpoint.txt")]);
    assert!(checkpoint.status.success(), "{}", String::from_utf8_lossy(&checkpoint.stderr));
    let siti = creds(SITI, PASSWORD, &alive);
    assert_code(&w.call("CALL_NIK", &siti).await, "04", 0);
    let verified = cli_json(&w, &["audit", "verify", "--from-checkpoint", &path("checkpoint.txt")]);
    assert_eq!(verified["problem"], Value::Null, "{verified}");
    assert!(verified["consistent_with"].as_u64().unwrap() < verified["records"].as_u64().unwrap());

    // A consistency proof from the kept checkpoint to now, checked offline by the CLI with the pinned key and by
    // the independent Python checker; a checkpoint of another history is refused.
    let consistency = cli(
        &w,
        &["audit", "consistency", "--from-checkpoint", &path("checkpoint.txt"), "--out", &path("consistency.txt")],
    );
    assert!(consistency.status.success(), "{}", String::from_utf8_lossy(&consistency.stderr));
    let vkey = cli_json(&w, &["audit", "key"])["vkey"].as_str().unwrap().to_owned();
    let checked = cli_json(&w, &["audit", "check-consistency", &path("consistency.txt"), "--key", &vkey]);
    assert_eq!(checked["valid"], true, "{checked}");
    assert_eq!(checked["old_size"], verified["consistent_with"], "{checked}");
    let python_check = |files: &[String]| -> Vec<Value> {
        let output = std::process::Command::new(&python)
            .arg(simpul_integration::workspace_root().join("integration/tests/python/tlog_proof_check.py"))
            .args(files)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    assert_eq!(python_check(&[path("consistency.txt")])[0]["valid"], true);
    let text = std::fs::read_to_string(path("consistency.txt")).unwrap();
    let hash_line = text.lines().nth(3).unwrap().to_owned();
    let mut flipped = BASE64.decode(&hash_line).unwrap();
    flipped[0] ^= 1;
    std::fs::write(path("consistency-bad.txt"), text.replacen(&hash_line, &BASE64.encode(flipped), 1)).unwrap();
    assert_eq!(
        cli(&w, &["audit", "check-consistency", &path("consistency-bad.txt"), "--key", &vkey]).status.code(),
        Some(6)
    );
    assert_eq!(python_check(&[path("consistency-bad.txt")])[0]["valid"], false);

    // A proof of the first data answer, checked with the key the auditor pinned, and refused once altered.
    let first = w.answered.lock().unwrap()[0].seq.expect("seen with its headers").to_string();
    let proved = cli(&w, &["audit", "prove", &first, "--out", &path("proof.tlog-proof")]);
    assert!(proved.status.success(), "{}", String::from_utf8_lossy(&proved.stderr));
    let vkey = cli_json(&w, &["audit", "key"])["vkey"].as_str().unwrap().to_owned();
    let checked = cli_json(&w, &["audit", "check-proof", &path("proof.tlog-proof"), "--key", &vkey]);
    assert_eq!((checked["valid"].as_bool(), checked["key_pinned"].as_bool()), (Some(true), Some(true)), "{checked}");
    // The record is in the `extra` line (C2SP tlog-proof): decode it, change the method, encode it again.
    let proof = std::fs::read_to_string(path("proof.tlog-proof")).unwrap();
    let extra = proof.lines().nth(1).unwrap().strip_prefix("extra ").unwrap();
    let record = String::from_utf8(BASE64.decode(extra).unwrap()).unwrap();
    let altered = BASE64.encode(record.replacen("CALL_NIK", "CALL_AGREGAT", 1));
    std::fs::write(path("altered.tlog-proof"), proof.replacen(extra, &altered, 1)).unwrap();
    assert_eq!(cli(&w, &["audit", "check-proof", &path("altered.tlog-proof"), "--key", &vkey]).status.code(), Some(6));
    // Another gateway's key under the same origin name: well formed, and the proof must not check against it.
    let origin = vkey.split('+').next().unwrap();
    let stranger = simpul_core::audit::checkpoint::Signer::new(origin, [9; 32]).unwrap().verifier().vkey();
    // Without a key the Merkle arithmetic is checked, and the answer says no signature was.
    let unpinned = cli(&w, &["audit", "check-proof", &path("proof.tlog-proof"), "--json"]);
    assert!(unpinned.status.success());
    let said: Value = serde_json::from_slice(&unpinned.stdout).unwrap();
    assert_eq!((said["valid"].as_bool(), said["key_pinned"].as_bool()), (Some(true), Some(false)), "{said}");
    assert!(String::from_utf8_lossy(&unpinned.stderr).contains("no signature was checked"));
    let forged = cli(&w, &["audit", "check-proof", &path("proof.tlog-proof"), "--key", &stranger]);
    assert_eq!(forged.status.code(), Some(6), "a proof does not check against another key");

    // One person's trail: the five lookups of `alive` (the dotted one, the 03 and 04 ones too), each with a proof.
    let trail = cli_json(&w, &["audit", "subject", "--nik", &alive, "--out", &path("trail")]);
    let proofs = trail["proofs"].as_array().unwrap();
    assert_eq!(proofs.len(), 5, "{trail}");
    let files = std::fs::read_dir(path("trail")).unwrap().count();
    assert_eq!(files, 5 + 1, "a proof file per record and the trail summary");
    let trail_files: Vec<String> = std::fs::read_dir(path("trail"))
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .filter(|p| p.ends_with(".tlog-proof"))
        .collect();
    assert_eq!(trail_files.len(), 5);
    // The same person written in groups is the same person; a NIK no request named is not found; a malformed one
    // is an invalid argument.
    let spaced = format!("{} {} {} {}", &alive[..4], &alive[4..8], &alive[8..12], &alive[12..]);
    let again = cli_json(&w, &["audit", "subject", "--nik", &spaced]);
    assert_eq!(again["proofs"].as_array().unwrap().len(), 5, "{again}");
    let none = cli(&w, &["audit", "subject", "--nik", "3374041003870007"]);
    assert_eq!(none.status.code(), Some(3), "an unknown person is not found");
    let malformed = cli(&w, &["audit", "subject", "--nik", "123"]);
    assert_eq!(malformed.status.code(), Some(2), "{}", String::from_utf8_lossy(&malformed.stderr));

    // Search and export agree with each other and with what was answered.
    let found = cli_json(&w, &["audit", "search", "--user", BUDI]);
    let admin: Vec<&str> = found.as_array().unwrap().iter().filter_map(|r| r["admin"]["action"].as_str()).collect();
    assert_eq!(admin, ["user.add", "device.add"], "the changes to user budi and to budi's device: {found}");
    assert_eq!(found.as_array().unwrap().len(), 5 + 2, "budi's five requests and the two changes");
    let export = cli(&w, &["audit", "export", "--format", "jsonl", "--out", &path("log.jsonl")]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let lines = std::fs::read_to_string(path("log.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, verified["records"].as_u64().unwrap());
    assert!(!lines.contains(&alive), "the export names people only by commitments");
    let csv = cli(&w, &["audit", "export", "--format", "csv", "--out", &path("log.csv")]);
    assert!(csv.status.success(), "{}", String::from_utf8_lossy(&csv.stderr));

    // The monev report, recomputed figure by figure from the JSONL export by an independent script.
    let report = cli(&w, &["audit", "report", "--semester", "2026-2", "--out", &path("report")]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let html = std::fs::read_to_string(out.join("report/report.html")).unwrap();
    assert!(html.contains(INSTITUTION) && html.contains("<svg"), "a self-contained page with charts");
    let quotas = json!({ INSTITUTION: 1000 }).to_string();
    let oracle = std::process::Command::new(&python)
        .arg(simpul_integration::workspace_root().join("integration/tests/python/report_check.py"))
        .args([&path("log.jsonl"), &path("report"), "2026-2", "Asia/Jakarta", &quotas, "--export", &path("log.csv")])
        .output()
        .unwrap();
    assert!(oracle.status.success(), "report_check.py: {}", String::from_utf8_lossy(&oracle.stderr));

    // Retention: 731 days on, the link from the NIK to its records is destroyed; the records and proofs stay.
    w.clock.set(start_time() + chrono::Duration::days(731));
    let retained = cli_json(&w, &["audit", "retain"]);
    // Both residents' salts, and those of the operators' NIK (one, shared here) and their two NIPs.
    assert_eq!(retained["destroyed"], 2 + 1 + 2, "{retained}");
    assert_eq!(cli(&w, &["audit", "subject", "--nik", &alive]).status.code(), Some(3));
    let after = cli_json(&w, &["audit", "verify", "--from-checkpoint", &path("checkpoint.txt")]);
    assert_eq!(after["problem"], Value::Null, "{after}");
    let checked = cli_json(&w, &["audit", "check-proof", &path("proof.tlog-proof"), "--key", &vkey]);
    assert_eq!(checked["valid"], true, "a proof made before retention still checks");
    let mut files = trail_files.clone();
    files.push(path("proof.tlog-proof"));
    files.push(path("altered.tlog-proof"));
    let verdicts: Vec<bool> = python_check(&files).iter().map(|v| v["valid"].as_bool().unwrap()).collect();
    assert_eq!(verdicts, [true, true, true, true, true, true, false], "the Python checker agrees");
    w.assert_audited(0..=0).await;

    // No NIK or NIP this test used is in any file of the state directory, nor in any export or proof: residents'
    // NIKs are commitments, operators' NIK and NIP commitments in the log and sealed in the store.
    let mut identifiers = vec![alive.clone(), other.clone(), OPERATOR_NIK.to_owned()];
    identifiers.extend((0..2).map(operator_nip));
    let scanned = [w.dir.path().join("state"), out.to_path_buf()];
    for identifier in &identifiers {
        for dir in &scanned {
            let found = files_containing(dir, identifier.as_bytes());
            assert!(found.is_empty(), "{identifier} in clear in {found:?}");
        }
    }
    // The scan does find what is there in clear (a user id in the export), so its silence means something.
    assert!(!files_containing(out, BUDI.as_bytes()).is_empty());
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)) {
            found.push(path);
        }
    }
    found
}

/// Unmounts a filesystem mounted for a test when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A disk that fills up is the likeliest way for the audit log to fail: requests are then refused (503, no data, no
/// record number), never served unaudited, and after the space is back and the gateway restarts, it serves again
/// and its log verifies with every answered request in it.
///
/// Root: the small disk is a tmpfs mounted for the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_requests_rather_than_serve_them_unaudited() {
    const NAME: &str = "a_full_disk_refuses_requests_rather_than_serve_them_unaudited";
    if missing_prerequisite(NAME, &["mount", "umount"]) {
        return;
    }
    let mut mounted = None;
    let mut w = World::start_prepared(agreement(1000), generous(), shared_upstream(), |state, _| {
        std::fs::create_dir_all(state).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs"])
            .arg(state)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        mounted = Some(Mounted(state.to_owned()));
    })
    .await;
    let alive = nik(SampleKind::Alive);
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);

    // The refusal must speak the institution's dialect: the legacy one here.
    w.admin.update(InstitutionFields { dialect: Some(Dialect::Legacy), ..Default::default() }).await;

    // Fill the disk. (Records then only name people already seen: the personal data is in place.)
    let filler = w.config.state_dir().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    while std::io::Write::write_all(&mut file, &chunk).and_then(|()| file.sync_all()).is_ok() {}
    // sled writes into room it already holds until it needs more: requests are served (and recorded) until then,
    // and refused from the first write that finds no room on.
    let mut refused = 0;
    for _ in 0..2000 {
        let reply = call_on(&w.client, "CALL_NIK", &budi(&alive)).await;
        if reply.status == 200 {
            assert_eq!(refused, 0, "served again after a refusal, before the restart: {}", reply.text());
            assert_data(&reply, &alive);
            w.note(&reply);
            continue;
        }
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert!(reply.header("x-simpul-audit-seq").is_none(), "a refused request names no record: {reply:?}");
        let body = reply.json();
        assert!(body["content"][0].get("NAMA_LGKP").is_none(), "no data leaves unaudited: {body}");
        let said = body["content"][0]["RESPON"].as_str().unwrap_or_default();
        assert!(said.contains("audit log unavailable"), "a legacy-dialect refusal: {}", reply.text());
        refused += 1;
        if refused == 5 {
            break;
        }
    }
    assert_eq!(refused, 5, "the full disk was noticed");

    // Space back, gateway restarted: served again, and the log holds every answer that was given.
    drop(file);
    std::fs::remove_file(&filler).unwrap();
    // sled does not write again after a failed write until it is reopened: the gateway must restart.
    w.restart().await;
    let again = netns::eventually(Duration::from_secs(30), async || {
        let reply =
            send(&w.client, post_bytes(&path_of("CALL_NIK"), budi(&alive).to_string().as_bytes())).await.ok()?;
        (reply.status == 200).then_some(reply)
    });
    let reply = again.await.expect("served again after the restart");
    assert_data(&reply, &alive);
    w.note(&reply);
    // The refused requests' records may have reached the disk after all (sled retries what it could not write
    // once there is room): at most one each, never one in place of an answered request's.
    w.assert_audited(0..=refused).await;
    w.gateway.stop();
    drop(mounted);
}

// ----------------------------------------------------------------------------------------------------------------
// The cache.

/// The sources (`gateway`, `cache`, `upstream`) of the last `n` request records, oldest first.
async fn last_sources(w: &World, n: usize) -> Vec<String> {
    let records = common::audit_records(&w.admin.0).await;
    let sources: Vec<String> =
        records.iter().filter_map(|r| r.get("request")).map(|r| r["source"].as_str().unwrap().to_owned()).collect();
    sources[sources.len() - n..].to_vec()
}

/// `record` with only NIK and NAMA_LGKP.
fn nik_and_name(record: &Map<String, Value>) -> Map<String, Value> {
    record.iter().filter(|(k, _)| *k == "NIK" || *k == "NAMA_LGKP").map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A repeat request is answered from the cache: the stand-in sees no request, the quota is spent like any answer's,
/// the record says `cache`. A hit is cut to the agreement exactly as a miss is. An answer fetched under one upstream
/// consumer is never served to a request under another, even for the same NIK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_requests_are_answered_from_the_cache_of_their_own_upstream_consumer() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let w = World::start_with(agreement(100), generous(), stand.upstream()).await;
    let asked = || stand.warehouse.requests();
    let resident = sample(SampleKind::Alive, 17);
    let (alive, whole) = (resident.nik.to_string(), record(&resident));

    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive), (vec![whole.clone()], 99));
    assert_eq!(asked(), 1);
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive), (vec![whole.clone()], 98));
    assert_eq!(asked(), 1, "answered from the cache");

    // The agreement narrowed: the kept answer is cut as a fresh one is.
    let narrow: ElementSet = [Element::Nik, Element::NamaLgkp].into_iter().collect();
    w.admin.update(InstitutionFields { elements: Some(narrow), ..Default::default() }).await;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).0, vec![nik_and_name(&whole)]);
    assert_eq!(asked(), 1);
    let other = sample(SampleKind::Alive, 18);
    let other_nik = other.nik.to_string();
    for _ in 0..2 {
        assert_eq!(
            assert_data(&w.call("CALL_NIK", &budi(&other_nik)).await, &other_nik).0,
            vec![nik_and_name(&record(&other))]
        );
        assert_eq!(asked(), 2, "a miss, then a hit");
    }

    // The institution's upstream consumer changed to one the warehouse grants only NIK and NAMA_LGKP: the same NIK
    // is asked again, under that consumer, and answered with what its grant gives, although the gateway's agreement
    // grants every element and the first consumer's whole record is in the cache.
    let fields = InstitutionFields {
        elements: Some(ElementSet::all()),
        upstream_consumer: Some(NARROW_CONSUMER.into()),
        ..Default::default()
    };
    w.admin.update(fields).await;
    for _ in 0..2 {
        assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).0, vec![nik_and_name(&whole)]);
        assert_eq!(asked(), 3, "a miss under the new consumer, then its own hit");
    }
    // Back to the first consumer: its own answer, whole, from the cache.
    w.admin.update(InstitutionFields { upstream_consumer: Some(DEV_CONSUMER.into()), ..Default::default() }).await;
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive), (vec![whole], 92));
    assert_eq!(asked(), 3);

    let sources = ["upstream", "cache", "cache", "upstream", "cache", "upstream", "cache", "cache"];
    assert_eq!(last_sources(&w, 8).await, sources);
    w.assert_audited(0..=0).await;
}

/// "Not found" is kept for `not_found_ttl_seconds` (an hour), data until 00:00 of the next consolidation date in the
/// gateway's zone (Jakarta), and nothing is kept on a consolidation date: on the gateway's injected clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_kept_an_hour_and_data_until_the_consolidation() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let w = World::start_with(agreement(1000), generous(), stand.upstream()).await;
    let asked = || stand.warehouse.requests();
    let unknown = nik(SampleKind::Unknown);
    assert_code(&w.call("CALL_NIK", &budi(&unknown)).await, "13", 999);
    w.clock.advance(chrono::Duration::seconds(3599));
    assert_code(&w.call("CALL_NIK", &budi(&unknown)).await, "13", 998);
    assert_eq!(asked(), 1, "kept for the hour");
    w.clock.advance(chrono::Duration::seconds(1));
    assert_code(&w.call("CALL_NIK", &budi(&unknown)).await, "13", 997);
    assert_eq!(asked(), 2, "asked again after the hour");

    let alive = nik(SampleKind::Alive);
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(asked(), 3);
    // The last second of 12-30 in Jakarta: still the answer fetched in July.
    w.clock.set(utc("2026-12-30T16:59:59Z"));
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(asked(), 3);
    // 00:00 on 12-31, the consolidation date: asked again, and all that day not kept.
    w.clock.set(utc("2026-12-30T17:00:00Z"));
    for n in [4, 5] {
        assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
        assert_eq!(asked(), n);
    }
    w.assert_audited(0..=0).await;
}

/// The warehouse's failures (502 and 503 from its fault injection) and its findings other than data and "not found"
/// (11) are never kept: the same request goes upstream again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_other_findings_are_never_kept() {
    // A fault sequence whose first two requests fail and the next three do not (data, then 11 twice).
    let faults = (1..)
        .map(|seed| FaultConfig { seed, error_rate: 0.5, ..FaultConfig::default() })
        .find(|f| {
            matches!((f.fault_for(0), f.fault_for(1)), (Fault::Error(_), Fault::Error(_)))
                && (2..5).all(|n| f.fault_for(n) == Fault::None)
        })
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stand = StandIn::with_faults(listener, &Identity::self_signed(&[]).unwrap(), faults.clone()).await;
    let w = World::start_with(agreement(100), generous(), stand.upstream()).await;
    let asked = || stand.warehouse.requests();
    let alive = nik(SampleKind::Alive);
    for n in [0, 1] {
        let Fault::Error(status) = faults.fault_for(n) else { unreachable!() };
        let (message, quota) = assert_transport(&w.call("CALL_NIK", &budi(&alive)).await, status);
        assert_eq!(quota, 100, "refunded: {message}");
    }
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(asked(), 3, "each failure was asked upstream again");
    let deceased = nik(SampleKind::Deceased);
    let before = asked();
    assert_code(&w.call("CALL_NIK", &budi(&deceased)).await, "11", 98);
    assert_code(&w.call("CALL_NIK", &budi(&deceased)).await, "11", 97);
    assert_eq!(asked(), before + 2, "11 is asked upstream each time");
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(asked(), before + 2, "data is kept");
    w.assert_audited(0..=0).await;
}

/// After the cache is filled, no NIK or name of the residents asked about is in any file of the state directory;
/// an entry damaged at rest (a flipped byte, written while the gateway was stopped) is never served: it is a miss,
/// asked upstream, and kept again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_sealed_and_a_damaged_entry_is_never_served() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let mut w = World::start_with(agreement(100), generous(), stand.upstream()).await;
    let asked = || stand.warehouse.requests();
    let residents: Vec<Sample> = (30..40).map(|seed| sample(SampleKind::Alive, seed)).collect();
    for resident in &residents {
        let nik = resident.nik.to_string();
        assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&nik)).await, &nik).0, vec![record(resident)]);
    }
    assert_eq!(asked(), 10);

    w.gateway.stop();
    let state = w.dir.path().join("state");
    let key_mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(state.join("cache.key")).unwrap().permissions());
    assert_eq!(key_mode & 0o777, 0o600, "the cache's key is the gateway's alone");
    for resident in &residents {
        let whole = record(resident);
        for clear in [resident.nik.to_string(), whole["NAMA_LGKP"].as_str().unwrap().to_owned()] {
            let found = files_containing(&state, clear.as_bytes());
            assert!(found.is_empty(), "{clear} in clear in {found:?}");
        }
    }
    {
        let db = sled::open(state.join("db")).unwrap();
        let tree = db.open_tree("cache").unwrap();
        assert_eq!(tree.len(), 10, "every answer was kept");
        for entry in tree.iter() {
            let (key, value) = entry.unwrap();
            let mut value = value.to_vec();
            let middle = value.len() / 2;
            value[middle] ^= 1;
            tree.insert(key, value).unwrap();
        }
        db.flush().unwrap();
    }
    w.restart().await;
    for resident in &residents {
        let nik = resident.nik.to_string();
        assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&nik)).await, &nik).0, vec![record(resident)]);
    }
    assert_eq!(asked(), 20, "every damaged entry was a miss");
    let nik = residents[0].nik.to_string();
    assert_data(&w.call("CALL_NIK", &budi(&nik)).await, &nik);
    assert_eq!(asked(), 20, "kept again");
    w.assert_audited(0..=0).await;
}

/// A relay in front of the stand-in whose gateway-to-stand-in direction forwards only while its gate is open, so that
/// a test holds the upstream call until every request it wants waiting is waiting.
struct Gate {
    addr: SocketAddr,
    open: tokio::sync::watch::Sender<bool>,
}

impl Gate {
    async fn start(to: SocketAddr) -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(to).await else { return };
                    let ((mut from_gateway, mut to_gateway), (mut from_stand, mut to_stand)) =
                        (inbound.into_split(), outbound.into_split());
                    let up = async {
                        let mut chunk = vec![0u8; 16 * 1024];
                        loop {
                            let n = from_gateway.read(&mut chunk).await?;
                            if n == 0 {
                                return to_stand.shutdown().await;
                            }
                            let _ = watch.wait_for(|open| *open).await;
                            to_stand.write_all(&chunk[..n]).await?;
                        }
                    };
                    let down = tokio::io::copy(&mut from_stand, &mut to_gateway);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Gate { addr, open }
    }
}

/// 100 concurrent misses for one NIK make one upstream call: the call is held at a gate until all 100 are counted
/// as misses (each is then waiting for the one call, which it joined in the same step). When it fails, every one of
/// them gets its failure (and its unit back); when it answers, every one gets the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_request_make_one_upstream_call() {
    // A fault sequence whose first request fails and the second does not.
    let faults = (1..)
        .map(|seed| FaultConfig { seed, error_rate: 0.5, ..FaultConfig::default() })
        .find(|f| matches!((f.fault_for(0), f.fault_for(1)), (Fault::Error(_), Fault::None)))
        .unwrap();
    let Fault::Error(status) = faults.fault_for(0) else { unreachable!() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stand = StandIn::with_faults(listener, &Identity::self_signed(&[]).unwrap(), faults).await;
    let gate = Gate::start(stand.addr).await;
    let upstream = upstream_config(gate.addr, &stand.fingerprint);
    let w = Arc::new(World::start_with(agreement(1000), generous(), upstream).await);
    // The password verified once, by a request refused before the quota gate (a method not granted).
    let warm = json!({"user_id": BUDI, "password": PASSWORD, "NO_PROP": "33"});
    assert_code(&w.call("CALL_AGREGAT", &warm).await, "07", 1000);
    let alive = nik(SampleKind::Alive);
    let burst = |misses_before: u64| {
        gate.open.send_replace(false);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let (w, alive) = (w.clone(), alive.clone());
            set.spawn(async move { w.call("CALL_NIK", &budi(&alive)).await });
        }
        let (w, gate) = (w.clone(), &gate);
        async move {
            while w.admin.ok(CacheStats {}).await["today"]["misses"] != misses_before + 100 {
                tokio::task::yield_now().await;
            }
            gate.open.send_replace(true);
            set.join_all().await
        }
    };
    for reply in burst(0).await {
        assert_transport(&reply, status);
    }
    assert_eq!(stand.warehouse.requests(), 1, "one upstream call, its failure shared");
    for reply in burst(100).await {
        assert_data(&reply, &alive);
    }
    assert_eq!(stand.warehouse.requests(), 2, "one upstream call, its answer shared");
    let (_, quota) = assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(quota, 1000 - 101, "the failures were refunded, the answers paid");
    w.assert_audited(0..=0).await;
}

/// An answer asked of the warehouse before `cache purge --nik` began is not kept when it lands: the upstream call is
/// held at a gate while the purge runs, then released; the same request asks the warehouse again, and its answer is
/// kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_under_way_across_a_purge_is_not_kept() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let gate = Gate::start(stand.addr).await;
    let w =
        Arc::new(World::start_with(agreement(1000), generous(), upstream_config(gate.addr, &stand.fingerprint)).await);
    let alive = nik(SampleKind::Alive);
    gate.open.send_replace(false);
    let held = tokio::spawn({
        let (w, alive) = (w.clone(), alive.clone());
        async move { w.call("CALL_NIK", &budi(&alive)).await }
    });
    while w.admin.ok(CacheStats {}).await["today"]["misses"] != 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(cli_json(&w, &["cache", "purge", "--nik", &alive]), json!({"target": "nik", "removed": 0}));
    gate.open.send_replace(true);
    assert_data(&held.await.unwrap(), &alive);
    for _ in 0..2 {
        assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    }
    assert_eq!(stand.warehouse.requests(), 2, "asked again after the purge, then kept");
    assert_eq!(last_sources(&w, 3).await, ["upstream", "upstream", "cache"]);
    w.assert_audited(0..=0).await;
}

/// A cache that cannot be opened (here its key file is readable by others) is left off: requests are still answered,
/// every one from the warehouse, the key file is left as it was, and `status` says why. Once the file is mended,
/// `cache on` opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_cannot_be_opened_is_left_off_and_requests_go_upstream() {
    use std::os::unix::fs::PermissionsExt;
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let loose = |state: &Path, _: &mut GatewayConfig| {
        std::fs::create_dir_all(state).unwrap();
        std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let key = state.join("cache.key");
        std::fs::write(&key, format!("{}\n", BASE64.encode([7u8; 32]))).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    let w = World::start_prepared(agreement(100), generous(), stand.upstream(), loose).await;
    let alive = nik(SampleKind::Alive);
    for asked in [1, 2] {
        assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
        assert_eq!(stand.warehouse.requests(), asked);
    }
    assert_eq!(last_sources(&w, 2).await, ["upstream", "upstream"]);
    let key = w.dir.path().join("state/cache.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o644);
    let status = cli_json(&w, &["status"]);
    assert_eq!((&status["cache"]["on"], &status["cache"]["off_reason"]), (&json!(false), &json!("error")));
    assert!(status["cache"]["open_error"].as_str().unwrap().contains("cache.key"), "{status}");
    // Mended, and turned on again without a restart: the next answer is kept and repeated from the cache.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(cli_json(&w, &["cache", "on"])["on"], true);
    for _ in 0..2 {
        assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    }
    assert_eq!(stand.warehouse.requests(), 3);
    assert_eq!(last_sources(&w, 2).await, ["upstream", "cache"]);
    w.assert_audited(0..=0).await;
}

/// A hit spends the user's daily quota as a miss does: with a quota of 2, a miss and a hit spend it, and the third
/// request is refused (05) before the cache is looked at; the stand-in was asked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_spends_the_users_quota_like_any_answer() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let w = World::start_with(agreement(100), generous(), stand.upstream()).await;
    w.admin.update_user(BUDI, UserFields { daily_quota: Some(Some(2)), ..Default::default() }).await;
    let alive = nik(SampleKind::Alive);
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 1);
    assert_eq!(assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive).1, 0);
    assert_code(&w.call("CALL_NIK", &budi(&alive)).await, "05", 0);
    assert_eq!(stand.warehouse.requests(), 1);
    assert_eq!(last_sources(&w, 3).await, ["upstream", "cache", "gateway"]);
    w.assert_audited(0..=0).await;
}

/// A timeout is never kept: the stand-in hangs on the first request until the gateway gives up (504, refunded), and
/// the same request then goes upstream again and is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_never_cached() {
    let faults = (1..)
        .map(|seed| FaultConfig { seed, hang_rate: 0.5, ..FaultConfig::default() })
        .find(|f| f.fault_for(0) == Fault::Hang && f.fault_for(1) == Fault::None)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stand = StandIn::with_faults(listener, &Identity::self_signed(&[]).unwrap(), faults).await;
    let upstream = UpstreamConfig { request_timeout_ms: 300, ..stand.upstream() };
    let w = World::start_with(agreement(100), generous(), upstream).await;
    let alive = nik(SampleKind::Alive);
    let (_, quota) = assert_transport(&w.call("CALL_NIK", &budi(&alive)).await, 504);
    assert_eq!(quota, 100, "refunded");
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(stand.warehouse.requests(), 2, "asked again after the timeout, then answered from the cache");
    assert_eq!(last_sources(&w, 3).await, ["upstream", "upstream", "cache"]);
    let stats = w.admin.ok(CacheStats {}).await;
    assert_eq!(
        (&stats["today"]["hits"], &stats["today"]["misses"], &stats["entries"]),
        (&json!(1), &json!(2), &json!(1))
    );
    w.assert_audited(0..=0).await;
}

/// The NIK of a parent of `resident` living in the same household (named by the resident's NIK_AYAH or NIK_IBU),
/// found by asking CALL_NIK_GET_KK (through the tunnel, so the family's answer is in the cache afterwards), with the
/// family's KK number.
async fn parent_at_home(w: &World, resident: &str) -> Option<(String, String)> {
    let (members, _) = assert_data(&w.call("CALL_NIK_GET_KK", &budi(resident)).await, resident);
    let text = |value: &Value| value.to_string().trim_matches('"').to_owned();
    let kk = text(&members[0]["NO_KK"]);
    let record = members.iter().find(|m| text(&m["NIK"]) == resident)?;
    let parent = ["NIK_AYAH", "NIK_IBU"].iter().map(|e| &record[*e]).find(|v| !v.is_null())?;
    Some((text(parent), kk))
}

/// `cache purge --nik` removes every answer about the person: their own, the family answer that lists them although
/// it was asked by another member's NIK, and their child's own answer, which names them as a parent; the others stay.
/// The erasure is an admin change in the audit log, found by `audit subject --nik`, with no clear NIK in the log.
/// `--kk` removes every answer naming the family card, `--institution` what that institution's requests filled,
/// `--all` the rest; an unknown institution is exit 3, a malformed NIK exit 2. Through the real CLI, `--json` and
/// text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_remove_every_answer_about_a_person_and_are_audited() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let w = World::start_with(agreement(1000), generous(), stand.upstream()).await;
    let asked = || stand.warehouse.requests();
    // Residents without a parent at home are passed over; their family answers stay in the cache.
    let (mut found, mut alone) = (None, 0);
    for seed in 40.. {
        let resident = sample(SampleKind::Alive, seed).nik.to_string();
        if let Some((parent, kk)) = parent_at_home(&w, &resident).await {
            found = Some((resident, parent, kk));
            break;
        }
        alone += 1;
    }
    // A is B's child; C is someone else.
    let (a, b, kk) = found.unwrap();
    let c = sample(SampleKind::Alive, 17).nik.to_string();
    // Kept: A's family (naming B in its answer), B, A (naming B as a parent) and C.
    for nik in [&b, &a, &c] {
        assert_data(&w.call("CALL_NIK", &budi(nik)).await, nik);
    }
    let before = asked();
    let key_file = w.config.state_dir().join("cache.key");
    let key_before = std::fs::read(&key_file).unwrap();
    // B's NIK read from standard input: it is in no command line.
    let purged = cli_in(&w, &["cache", "purge", "--nik", "-", "--json"], &format!("{b}\n"));
    assert!(purged.status.success(), "{}", String::from_utf8_lossy(&purged.stderr));
    let purged: Value = serde_json::from_slice(&purged.stdout).unwrap();
    assert_eq!(purged, json!({"target": "nik", "removed": 3}));
    assert_ne!(std::fs::read(&key_file).unwrap(), key_before, "the purge ended under a new key");
    assert_data(&w.call("CALL_NIK_GET_KK", &budi(&a)).await, &a);
    assert_data(&w.call("CALL_NIK", &budi(&b)).await, &b);
    assert_data(&w.call("CALL_NIK", &budi(&a)).await, &a);
    assert_eq!(asked(), before + 3, "the family answer, B's own and B's child's were gone");
    assert_data(&w.call("CALL_NIK", &budi(&c)).await, &c);
    assert_eq!(asked(), before + 3, "C's stayed");

    // The audit log holds the erasure under B's commitment, and nowhere B's NIK in clear.
    let records = common::audit_records(&w.admin.0).await;
    let purge = records.iter().rev().find(|r| r["admin"]["action"] == "cache.purge").expect("the purge is audited");
    assert_eq!(
        (&purge["admin"]["target"], &purge["admin"]["detail"]["change"]),
        (&json!("nik"), &json!({"removed": 3}))
    );
    assert!(!serde_json::to_string(&records).unwrap().contains(&b), "no clear NIK in the log");
    let trail = cli_json(&w, &["audit", "subject", "--nik", &b]);
    let erasure = trail["proofs"].as_array().unwrap().iter().any(|proof| {
        let extra = proof.as_str().unwrap().lines().nth(1).unwrap().strip_prefix("extra ").unwrap();
        String::from_utf8(BASE64.decode(extra).unwrap()).unwrap().contains("cache.purge")
    });
    assert!(erasure, "audit subject finds the erasure: {trail}");

    // The family card: the family answer and both members' records name it.
    assert_data(&w.call("CALL_NIK", &budi(&b)).await, &b);
    let purged = cli_in(&w, &["cache", "purge", "--kk", "-"], &kk);
    assert!(purged.status.success(), "{}", String::from_utf8_lossy(&purged.stderr));
    assert_eq!(String::from_utf8_lossy(&purged.stdout), "target   kk\nremoved  3\n");
    let before = asked();
    assert_data(&w.call("CALL_NIK", &budi(&c)).await, &c);
    assert_eq!(asked(), before, "C's family is another");

    assert_eq!(cli(&w, &["cache", "purge", "--institution", "NO-SUCH"]).status.code(), Some(3));
    assert_eq!(cli(&w, &["cache", "purge", "--nik", "123"]).status.code(), Some(2));
    assert_eq!(cli(&w, &["cache", "purge", "--nik", &a, "--all"]).status.code(), Some(2), "one target at a time");
    let purged = cli_json(&w, &["cache", "purge", "--institution", INSTITUTION]);
    assert_eq!(purged, json!({"target": format!("institution {INSTITUTION}"), "removed": 1 + alone}));
    assert_data(&w.call("CALL_NIK", &budi(&a)).await, &a);
    assert_data(&w.call("CALL_NIK", &budi(&c)).await, &c);
    assert_eq!(cli_json(&w, &["cache", "purge", "--all"]), json!({"target": "all", "removed": 2}));
    assert_eq!(w.admin.ok(CacheStats {}).await["entries"], 0);
    w.assert_audited(0..=0).await;
}

/// Every request made while `cache rekey` runs is answered rightly, and at least one is made and answered while a
/// rekey runs (after its new key file was written, before it answered: the test rekeys again, up to 100 times, until
/// one was); afterwards the entries are hits under the new key (the stand-in is not asked), the key file is new and
/// 0600, and the old key opens none of the entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rekey_keeps_serving_and_reseals_every_entry() {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let w = World::start_with(agreement(100_000), generous(), stand.upstream()).await;
    let asked = || stand.warehouse.requests();
    // Enough entries that moving them takes a while next to one request.
    let residents: Vec<String> = (50..250).map(|seed| sample(SampleKind::Alive, seed).nik.to_string()).collect();
    for nik in &residents {
        assert_data(&w.call("CALL_NIK", &budi(nik)).await, nik);
    }
    let kept = w.admin.ok(CacheStats {}).await["entries"].as_u64().unwrap();
    assert_eq!(asked(), kept, "one entry per resident");
    let key_file = w.config.state_dir().join("cache.key");
    let old_key = w.dir.path().join("old-cache.key");
    std::fs::copy(&key_file, &old_key).unwrap();

    let w = Arc::new(w);
    // While a rekey runs: the key file before it.
    let rekeying: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let (stop, overlapped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let load = tokio::spawn({
        let (w, residents, key_file) = (w.clone(), residents.clone(), key_file.clone());
        let (rekeying, stop, overlapped) = (rekeying.clone(), stop.clone(), overlapped.clone());
        async move {
            // A rekey runs and has written its new key file.
            let under_way = || {
                let before = rekeying.lock().unwrap().clone();
                before.is_some_and(|before| std::fs::read(&key_file).unwrap() != before)
            };
            while !stop.load(Ordering::SeqCst) {
                for nik in &residents {
                    let sent_during = under_way();
                    assert_data(&w.call("CALL_NIK", &budi(nik)).await, nik);
                    if sent_during && under_way() {
                        overlapped.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
    });
    let mut rekeys = 0;
    while overlapped.load(Ordering::SeqCst) == 0 {
        // A rekey that held every request off would never overlap one: a bound, not a timing.
        rekeys += 1;
        assert!(rekeys <= 100, "no request was answered during any of 100 rekeys");
        *rekeying.lock().unwrap() = Some(std::fs::read(&key_file).unwrap());
        let rekeyed = tokio::task::spawn_blocking({
            let w = w.clone();
            move || cli_json(&w, &["cache", "rekey"])
        })
        .await
        .unwrap();
        *rekeying.lock().unwrap() = None;
        assert_eq!(rekeyed, json!({"resealed": kept, "dropped": 0}));
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let before = asked();
    for nik in &residents {
        assert_data(&w.call("CALL_NIK", &budi(nik)).await, nik);
    }
    assert_eq!(asked(), before, "every entry is a hit under the new key");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_ne!(std::fs::read(&key_file).unwrap(), std::fs::read(&old_key).unwrap());
    w.assert_audited(0..=0).await;

    let mut w = Arc::into_inner(w).expect("the load is over");
    w.gateway.stop();
    {
        let db = sled::open(w.config.state_dir().join("db")).unwrap();
        let validity = Validity {
            consolidation: w.config.cache.consolidation.clone(),
            not_found_ttl: w.config.cache.not_found_ttl(),
            zone: w.config.timezone.0,
        };
        let today = start_time().date_naive();
        for (file, opens) in [(&old_key, false), (&key_file, true)] {
            let cache = Cache::open(&db, file, validity.clone(), 1 << 30).unwrap();
            for nik in &residents {
                let key =
                    cache.key(&Asked::new(INSTITUTION, DEV_CONSUMER, &Query::ByNik(Nik::parse(nik, today).unwrap())));
                assert_eq!(cache.get(&key, start_time()).is_some(), opens, "{}", file.display());
            }
        }
    }
    w.restart().await;
    let before = asked();
    assert_data(&w.call("CALL_NIK", &budi(&residents[0])).await, &residents[0]);
    assert_eq!(asked(), before, "the new key is the one read at start");
}

/// `cache off` at runtime sends every request upstream (records say `upstream`), and so it stays after a restart;
/// `status` says it is off and why; `cache on` answers from what is kept again. Both are admin changes in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_switched_off_and_on_at_runtime_and_stays_so() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let mut w = World::start_with(agreement(100), generous(), stand.upstream()).await;
    let asked = || stand.warehouse.requests();
    let alive = nik(SampleKind::Alive);
    for _ in 0..2 {
        assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    }
    assert_eq!(asked(), 1);
    let off = cli_json(&w, &["cache", "off"]);
    assert_eq!((&off["on"], &off["off_reason"], &off["entries"]), (&json!(false), &json!("admin"), &json!(1)));
    for n in [2, 3] {
        assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
        assert_eq!(asked(), n);
    }
    let status = cli_json(&w, &["status"]);
    assert_eq!((&status["cache"]["on"], &status["cache"]["off_reason"]), (&json!(false), &json!("admin")));
    let text = String::from_utf8(cli(&w, &["status"]).stdout).unwrap();
    assert!(text.contains("cache       off (cache off), 1 entries"), "{text}");
    w.restart().await;
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(asked(), 4, "still off after the restart");
    let on = cli(&w, &["cache", "on"]);
    assert!(on.status.success());
    assert!(String::from_utf8_lossy(&on.stdout).starts_with("cache  on, 1 entries"), "{on:?}");
    assert_data(&w.call("CALL_NIK", &budi(&alive)).await, &alive);
    assert_eq!(asked(), 4, "answered from what was kept before");
    assert_eq!(last_sources(&w, 6).await, ["upstream", "cache", "upstream", "upstream", "upstream", "cache"]);
    let records = common::audit_records(&w.admin.0).await;
    let actions: Vec<&str> = records.iter().filter_map(|r| r["admin"]["action"].as_str()).collect();
    assert_eq!(actions[actions.len() - 2..], ["cache.off", "cache.on"]);
    w.assert_audited(0..=0).await;
}

/// `cache stats` counts exactly: for a scripted sequence, the entries, their sealed bytes (the sum of the values in
/// the database's `cache` tree), hits and misses in all and per institution; a request while the cache is off is
/// neither. After a restart today's counts are the same and those since the start begin again; the next day starts
/// at nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_stats_are_exact_and_today_outlasts_a_restart() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let mut w = World::start_with(agreement(100), generous(), stand.upstream()).await;
    let (a, b) = (sample(SampleKind::Alive, 61).nik.to_string(), sample(SampleKind::Alive, 62).nik.to_string());
    let unknown = nik(SampleKind::Unknown);
    for nik in [&a, &a, &a, &b, &b] {
        assert_data(&w.call("CALL_NIK", &budi(nik)).await, nik);
    }
    for quota in [94, 93] {
        assert_code(&w.call("CALL_NIK", &budi(&unknown)).await, "13", quota);
    }
    cli_json(&w, &["cache", "off"]);
    assert_data(&w.call("CALL_NIK", &budi(&a)).await, &a);
    cli_json(&w, &["cache", "on"]);
    let stats = cli_json(&w, &["cache", "stats"]);
    let ratio = json!({"hits": 4, "misses": 3, "ratio": 4.0 / 7.0});
    assert_eq!(
        (&stats["on"], &stats["entries"], &stats["today"], &stats["since_start"]),
        (&json!(true), &json!(3), &ratio, &ratio)
    );
    assert_eq!(stats["institutions"], json!({ INSTITUTION: {"today": ratio, "since_start": ratio} }));
    assert_eq!(stats["max_bytes"], 1u64 << 30);
    let status = cli_json(&w, &["status"]);
    assert_eq!((&status["cache"]["bytes"], &status["cache"]["today"]), (&stats["bytes"], &ratio));
    let text = String::from_utf8(cli(&w, &["cache", "stats"]).stdout).unwrap();
    assert!(text.contains("hits today 57.1% (4 of 7)"), "{text}");
    assert!(text.contains(&format!("{INSTITUTION}  4/3")), "{text}");

    w.gateway.stop();
    {
        let db = sled::open(w.config.state_dir().join("db")).unwrap();
        let sealed: u64 = db.open_tree("cache").unwrap().iter().values().map(|v| v.unwrap().len() as u64).sum();
        assert_eq!(stats["bytes"], sealed);
    }
    w.restart().await;
    let after = cli_json(&w, &["cache", "stats"]);
    let nothing = json!({"hits": 0, "misses": 0, "ratio": null});
    assert_eq!((&after["today"], &after["since_start"], &after["bytes"]), (&ratio, &nothing, &stats["bytes"]));
    w.clock.advance(chrono::Duration::days(1));
    assert_eq!(cli_json(&w, &["cache", "stats"])["today"], nothing, "a new day");
    w.assert_audited(0..=0).await;
}

/// Past `[cache] max_bytes` new answers are not kept (asked upstream each time) while those kept are still
/// answered; `stats` shows the bound; a purge makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_bytes_new_answers_are_not_kept() {
    let stand = StandIn::on_loopback(&Identity::self_signed(&[]).unwrap()).await;
    let mut w = World::start_with(agreement(100), generous(), stand.upstream()).await;
    let asked = || stand.warehouse.requests();
    let (a, b) = (sample(SampleKind::Alive, 63).nik.to_string(), sample(SampleKind::Alive, 64).nik.to_string());
    assert_data(&w.call("CALL_NIK", &budi(&a)).await, &a);
    let one = w.admin.ok(CacheStats {}).await["bytes"].as_u64().unwrap();
    // Room for A's entry and less than another whole one.
    w.config.cache.max_bytes = one + one / 2;
    w.restart().await;
    for n in [2, 3] {
        assert_data(&w.call("CALL_NIK", &budi(&b)).await, &b);
        assert_eq!(asked(), n, "not kept");
    }
    assert_data(&w.call("CALL_NIK", &budi(&a)).await, &a);
    assert_eq!(asked(), 3, "what was kept is answered");
    let stats = w.admin.ok(CacheStats {}).await;
    assert_eq!(
        (&stats["entries"], &stats["bytes"], &stats["max_bytes"]),
        (&json!(1), &json!(one), &json!(one + one / 2))
    );
    w.admin.ok(CachePurge { target: PurgeTarget::Nik(a.clone()) }).await;
    for _ in 0..2 {
        assert_data(&w.call("CALL_NIK", &budi(&b)).await, &b);
    }
    assert_eq!(asked(), 4, "room again");
    w.assert_audited(0..=0).await;
}
