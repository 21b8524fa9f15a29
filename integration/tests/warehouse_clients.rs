//! The warehouse stand-in against independent HTTP clients: a Python `requests` regional client posting exactly as
//! field applications do, and the `curl` binary. Both trust the server's self-signed certificate through a PEM file,
//! as an operator would after `serve --dev` printed its path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use simpul_core::clock::SystemClock;
use simpul_core::password::PasswordHash;
use simpul_integration::{python, skip, workspace_root};
use simpul_warehouse::config::WarehouseConfig;
use simpul_warehouse::population::{Population, SampleKind};
use simpul_warehouse::server::{run, Warehouse};
use simpul_warehouse::tls::Identity;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const RSUD_ELEMENTS: [&str; 5] = ["NIK", "NAMA_LGKP", "TMPT_LHR", "TGL_LHR", "ALAMAT"];

/// An in-process warehouse with a legacy regional consumer (RSUD) and a coded central one (BPS).
struct Running {
    addr: SocketAddr,
    cert: PathBuf,
    population: Arc<Population>,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Running {
    let config = format!(
        r#"
[population]
residents = 20000

[[consumer]]
id = "RSUD"
user_id = "rsud01"
password_hash = "{rsud}"
allowed_addresses = ["127.0.0.1"]
methods = ["CALL_NIK", "CALL_VERIFY_BY_ELEMEN"]
elements = ["NIK", "NAMA_LGKP", "TMPT_LHR", "TGL_LHR", "ALAMAT"]
daily_quota = 100
dialect = "legacy"
region = "32-76"
userset = "rsud_3276"
method_names = {{ cek_pasien = "CALL_NIK" }}

[[consumer]]
id = "BPS"
user_id = "bps"
password_hash = "{bps}"
allowed_addresses = ["127.0.0.1"]
methods = ["CALL_NIK"]
elements = ["NIK", "NAMA_LGKP", "NO_KEC"]
daily_quota = 100
"#,
        rsud = PasswordHash::hash("rahasia-rsud").as_phc(),
        bps = PasswordHash::hash("rahasia-bps").as_phc(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("warehouse.toml");
    std::fs::write(&config_path, config).unwrap();
    let config = WarehouseConfig::from_file(&config_path).unwrap();
    let population = Arc::new(Population::new(config.population.clone()).unwrap());
    let identity = Identity::self_signed(&[]).unwrap();
    let cert = dir.path().join("warehouse-cert.pem");
    std::fs::write(&cert, identity.cert_pem()).unwrap();
    let warehouse = Warehouse::new(&config, population.clone(), &identity, Arc::new(SystemClock)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(run(listener, Arc::new(warehouse), async {
        let _ = stopped.await;
    }));
    Running { addr, cert, population, _dir: dir, _stop: stop }
}

fn content(body: &Value) -> &Vec<Value> {
    body["content"].as_array().unwrap_or_else(|| panic!("not an envelope: {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn python_requests_regional_client() {
    let Some(python) = python() else {
        return skip("python_requests_regional_client", "no test venv (scripts/test creates target/venv)");
    };
    let server = start().await;
    let sample = server.population.sample(SampleKind::Alive, 1, 3).next().unwrap();
    let record = sample.to_json();
    let unknown = server.population.sample(SampleKind::Unknown, 1, 3).next().unwrap();
    let cases = json!({
        "alive": sample.nik.to_string(),
        "unknown": unknown.nik.to_string(),
        "nama": record["NAMA_LGKP"],
        "tgl_lhr": record["TGL_LHR"],
    });
    let script = workspace_root().join("integration/tests/python/regional_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("https://127.0.0.1:{}", server.addr.port()))
        .arg(&server.cert)
        .arg(cases.to_string())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replies: std::collections::HashMap<String, Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["case"].as_str().unwrap().to_owned(), v))
        .collect();
    let reply = |case: &str| replies.get(case).unwrap_or_else(|| panic!("no reply for {case}: {replies:?}"));
    let nik = sample.nik.as_u64();

    for (case, quota) in [("cek_pasien", 99), ("call_nik_lower", 98), ("query_string", 95)] {
        let r = reply(case);
        assert_eq!((r["status"].as_u64(), r["content_type"].as_str()), (Some(200), Some("application/json")), "{r}");
        let record = &content(&r["body"])[0];
        let keys: Vec<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, RSUD_ELEMENTS, "{case}");
        assert_eq!(record["NIK"].as_u64(), Some(nik), "{case}");
        assert_eq!(r["body"]["quotaLimiter"], quota, "{case}");
    }
    assert_eq!(content(&reply("not_found")["body"])[0], json!({"RESPON": "Data Tidak Ditemukan"}));
    assert_eq!(reply("not_found")["body"]["quotaLimiter"], 97);

    let verdicts = &content(&reply("verify")["body"])[0];
    assert_eq!(verdicts["NIK"], "Sesuai");
    assert_eq!(verdicts["NAMA_LGKP"], "Sesuai (100)");
    assert_eq!(verdicts["TGL_LHR"], "Sesuai");
    assert!(verdicts["TMPT_LHR"].as_str().unwrap().starts_with("Tidak Sesuai ("), "{verdicts}");

    let wrong = reply("wrong_password");
    assert_eq!(content(&wrong["body"])[0], json!({"RESPON": "Login Gagal"}));
    assert_eq!(wrong["body"]["quotaLimiter"], 0);

    let too_large = reply("too_large");
    assert_eq!(too_large["status"], 413, "{too_large}");
    assert!(content(&too_large["body"])[0]["RESPON"].as_str().unwrap().contains("1048576"), "{too_large}");
    let get = reply("get");
    assert_eq!((get["status"].as_u64(), get["allow"].as_str()), (Some(405), Some("POST")), "{get}");
}

/// Runs curl; returns (exit code, stdout).
async fn curl(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new("curl").args(["-sS"]).args(args).output().await.unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Splits `-w '\n%{http_code}'` output into the body and the status.
fn body_and_status(stdout: &str) -> (Value, u16) {
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    (serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")), status.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_with_cacert() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        return skip("curl_with_cacert", "no curl binary");
    }
    let server = start().await;
    let cert = server.cert.to_str().unwrap();
    let url = format!("https://127.0.0.1:{}/dukcapil/get_json/BPS/CALL_NIK", server.addr.port());
    let nik = server.population.sample(SampleKind::Alive, 1, 5).next().unwrap().nik;
    let body = format!(r#"{{"user_id":"bps","password":"rahasia-bps","NIK":"{nik}"}}"#);
    let odd_type = "Content-Type: application/json,Accept: application/json";

    let (code, out) =
        curl(&["--cacert", cert, "-X", "POST", &url, "-H", odd_type, "-d", &body, "-w", "\n%{http_code}"]).await;
    assert_eq!(code, 0, "{out}");
    let (reply, status) = body_and_status(&out);
    assert_eq!(status, 200);
    assert_eq!(
        content(&reply)[0],
        json!({"NIK": nik.as_u64(), "NAMA_LGKP": content(&reply)[0]["NAMA_LGKP"], "NO_KEC": nik.district()})
    );
    assert!(out.starts_with(r#"{"content":[{"NIK":"#) && out.contains(r#","quotaLimiter":99}"#), "{out}");

    // HTTP/1.1 over TLS 1.3, and nothing older.
    let (code, out) = curl(&["--cacert", cert, "-o", "/dev/null", "-w", "%{http_version}", "-d", &body, &url]).await;
    assert_eq!((code, out.as_str()), (0, "1.1"));
    let (code, out) = curl(&["--cacert", cert, "--tlsv1.2", "--tls-max", "1.2", "-d", &body, &url]).await;
    assert_ne!(code, 0, "a TLS 1.2-only client is refused: {out}");
    // Without the certificate, curl refuses the server (60: peer certificate cannot be authenticated).
    let (code, _) = curl(&["-d", &body, &url]).await;
    assert_eq!(code, 60);

    // GET: 405 with Allow; a 10 MB body: 413; an unknown method: a business error (200, 07).
    let (_, out) = curl(&["--cacert", cert, "-i", &url]).await;
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    assert!(out.to_lowercase().contains("\r\nallow: post\r\n"), "{out}");
    let big = Path::new(cert).with_file_name("big.json");
    std::fs::write(&big, vec![b' '; 10 * 1024 * 1024]).unwrap();
    let data = format!("@{}", big.display());
    let (code, out) = curl(&["--cacert", cert, "--data-binary", &data, "-w", "\n%{http_code}", &url]).await;
    assert_eq!(code, 0, "{out}");
    let (reply, status) = body_and_status(&out);
    assert_eq!((status, content(&reply)[0]["RESPONSE_CODE"].as_str()), (413, Some("413")));
    let unknown = url.replace("CALL_NIK", "CALL_SEMUA");
    let (_, out) = curl(&["--cacert", cert, "-d", &body, "-w", "\n%{http_code}", &unknown]).await;
    let (reply, status) = body_and_status(&out);
    assert_eq!((status, content(&reply)[0]["RESPONSE_CODE"].as_str()), (200, Some("07")));
}
