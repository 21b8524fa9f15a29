//! The `simpul-warehouse` binary: `serve --dev` end to end, `sample`, `hash-password`, `check-config`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use argon2::PasswordVerifier;
use common::Client;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};
use sha2::Digest;
use simpul_core::element::Element;
use simpul_warehouse::population::{Population, PopulationConfig, SampleKind};

const BIN: &str = env!("CARGO_BIN_EXE_simpul-warehouse");

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Kills the server if a test fails before stopping it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` and returns its stdout lines up to and including the ready line.
fn serve(args: &[&str]) -> (Guard, Vec<String>) {
    serve_to(args, Stdio::null())
}

/// `serve`, with its standard error going to `stderr`.
fn serve_to(args: &[&str], stderr: Stdio) -> (Guard, Vec<String>) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let guard = Guard(child);
    let mut lines = Vec::new();
    // Generous: a debug build generating the population and a key on a busy machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            let ready = line.starts_with("ready: ");
            lines.push(line);
            if ready {
                return (guard, lines);
            }
        }
    }
    panic!("no ready line; got {lines:?}");
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines.iter().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no {prefix:?} line in {lines:?}"))
}

#[tokio::test]
async fn serve_dev_prints_what_a_client_needs_and_serves_it() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let (mut server, lines) =
        serve(&["--dev", "--listen", "127.0.0.1:0", "--residents", "5000", "--state-dir", state_dir]);

    let cert_path = PathBuf::from(line(&lines, "certificate: "));
    assert!(cert_path.starts_with(state.path()), "{cert_path:?}");
    let cert = CertificateDer::from_pem_file(&cert_path).unwrap();
    let fingerprint: Vec<String> = sha2::Sha256::digest(&cert).iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(line(&lines, "fingerprint (SHA-256): "), fingerprint.join(":"));
    let addr: std::net::SocketAddr = line(&lines, "ready: listening on https://").parse().unwrap();

    // The printed curl command names the certificate, the address and a NIK of the population.
    let curl = line(&lines, "try: ");
    assert!(
        curl.starts_with(&format!(
            "curl --cacert {} -X POST https://{addr}/dukcapil/get_json/DEV/CALL_NIK -d '",
            cert_path.display()
        )),
        "{curl}"
    );
    let body: Value = serde_json::from_str(curl.rsplit_once(" -d '").unwrap().1.trim_end_matches('\'')).unwrap();
    assert_eq!((body["user_id"].as_str(), body["password"].as_str()), (Some("dev"), Some("dev")));

    let client = Client::new(addr, &cert, None);
    let reply = client.post_json("/dukcapil/get_json/DEV/CALL_NIK", &body).await;
    let record = &reply.content()[0];
    assert_eq!(record.len(), Element::COUNT, "DEV is granted every element: {}", reply.text());
    assert_eq!(record["NIK"].as_u64().unwrap().to_string(), body["NIK"].as_str().unwrap());
    assert_eq!(reply.quota(), simpul_warehouse::dev::DEV_QUOTA - 1);
    let regional = client
        .post_json(
            "/dukcapil/get_json/33-74/dev/agregat",
            &json!({"user_id": "dev", "password": "dev", "NO_PROP": record["NO_PROP"]}),
        )
        .await;
    assert_eq!(regional.content().len(), 32, "{}", regional.text());

    // SIGTERM stops it cleanly.
    let status = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            break exit;
        }
        assert!(std::time::Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");

    // A restart reuses the certificate, so a pinned fingerprint stays valid.
    let (_again, lines) = serve(&["--dev", "--listen", "127.0.0.1:0", "--residents", "5000", "--state-dir", state_dir]);
    assert_eq!(line(&lines, "fingerprint (SHA-256): "), fingerprint.join(":"));
}

/// Runs a printed command line as an operator pasting it would: through a shell, in another directory.
fn pasted(command: &str) -> std::process::Output {
    let out = Command::new("sh").args(["-c", command]).current_dir("/").output();
    let out = out.expect("sh runs");
    if out.status.code() == Some(127) {
        panic!("this test needs curl (the line the stand-in prints is a curl command): {out:?}");
    }
    out
}

#[test]
fn the_printed_try_line_works_pasted_as_it_is_on_any_address() {
    let dir = tempfile::tempdir().unwrap();
    // A relative state directory, as the demo gives it: the printed paths must not depend on where they are pasted.
    let start = |listen: &str| {
        let mut child = Command::new(BIN)
            .args(["serve", "--dev", "--listen", listen, "--residents", "1000", "--state-dir", "state"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = Vec::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let guard = Guard(child);
        while let Some(line) = stdout.next().map(Result::unwrap) {
            let ready = line.starts_with("ready: ");
            lines.push(line);
            if ready {
                return (guard, lines);
            }
        }
        panic!("no ready line: {lines:?}");
    };
    let try_it = |lines: &[String]| {
        let out = pasted(line(lines, "try: "));
        assert!(out.status.success(), "{lines:?}: {}", String::from_utf8_lossy(&out.stderr));
        let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(reply["content"][0]["NIK"].to_string().len(), 16, "{reply}");
    };

    let (server, loopback) = start("127.0.0.1:0");
    try_it(&loopback);
    drop(server);
    // Another address, which the certificate made for 127.0.0.1 does not name (curl would say "no alternative
    // certificate subject name matches"): a certificate that names it is made, and the line works.
    let (server, other) = start("127.0.0.2:0");
    assert!(line(&other, "ready: listening on https://").starts_with("127.0.0.2:"), "{other:?}");
    assert!(line(&other, "try: ").contains("https://127.0.0.2:"), "{other:?}");
    try_it(&other);
    let fingerprint = line(&other, "fingerprint (SHA-256): ").to_owned();
    assert_ne!(fingerprint, line(&loopback, "fingerprint (SHA-256): "));
    drop(server);
    // Kept from then on, on either address.
    for listen in ["127.0.0.2:0", "127.0.0.1:0"] {
        let (_server, again) = start(listen);
        assert_eq!(line(&again, "fingerprint (SHA-256): "), fingerprint, "{listen}");
        try_it(&again);
    }
}

#[test]
fn serve_refuses_bad_arguments_and_configs_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"nowhere\"\n").unwrap();
    let table: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--dev", "--config", "x.toml"],
        vec!["--config", bad.to_str().unwrap()],
        vec!["--dev", "--fault-error-rate", "1.5", "--residents", "10"],
        vec!["--dev", "--residents", "0"],
    ];
    for args in table {
        let out = Command::new(BIN).arg("serve").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The README's exit 1: a valid config that cannot be served (its address is taken) is not the operator's typo (2).
#[test]
fn serve_exits_1_when_it_cannot_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = Command::new(BIN)
        .args(["serve", "--dev", "--residents", "10", "--listen", &at, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&at), "the message names the address: {stderr}");
}

#[test]
fn serve_dev_warns_loudly_when_reachable_from_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let state_dir = state_dir.to_str().unwrap();
    for (listen, loud) in [("0.0.0.0:0", true), ("127.0.0.1:0", false)] {
        let log = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let (server, _) =
            serve_to(&["--dev", "--listen", listen, "--residents", "1000", "--state-dir", state_dir], stderr.into());
        drop(server);
        let stderr = std::fs::read_to_string(&log).unwrap();
        let warned = stderr.contains("WARNING") && stderr.contains("password \"dev\"");
        assert_eq!(warned, loud, "{listen}: {stderr}");
    }
}

#[test]
fn a_private_key_others_may_read_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    simpul_warehouse::tls::load(&Default::default(), &state).unwrap();
    let (cert, key) =
        (state.join(simpul_warehouse::tls::GENERATED_CERT), state.join(simpul_warehouse::tls::GENERATED_KEY));
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let config = dir.path().join("warehouse.toml");
    std::fs::write(&config, format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", cert.display(), key.display())).unwrap();
    let state = state.to_str().unwrap();
    let config = config.to_str().unwrap();
    for args in [&["--dev"][..], &["--config", config]] {
        let out = Command::new(BIN)
            .arg("serve")
            .args(args)
            .args(["--state-dir", state, "--listen", "127.0.0.1:0", "--residents", "1000"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("chmod 600 {}", key.display())), "{args:?}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("ready: "));
    }
}

#[test]
fn sample_prints_json_lines_of_real_residents() {
    let population = Population::new(PopulationConfig { residents: 5000, ..PopulationConfig::default() }).unwrap();
    for kind in SampleKind::ALL {
        let out = Command::new(BIN)
            .args(["sample", "--seed", "1", "--count", "4", "--kind", kind.as_str(), "--residents", "5000"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<Value> =
            String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4, "{kind}");
        let expected: Vec<Value> = population.sample(kind, 4, 1).map(|s| s.to_json()).collect();
        assert_eq!(lines, expected, "{kind}");
        for line in &lines {
            assert_eq!(line["kind"], kind.as_str());
            let nik =
                simpul_core::nik::Nik::parse(&line["NIK"].to_string(), common::monday_morning().date_naive()).unwrap();
            let found = population.find_nik(&nik);
            if kind == SampleKind::Unknown {
                assert!(found.is_none());
            } else {
                assert_eq!(line.as_object().unwrap().len(), 1 + Element::COUNT, "every element");
                assert_eq!(SampleKind::from(found.unwrap().status), kind);
            }
        }
    }
}

#[test]
fn hash_password_reads_stdin_only() {
    let mut child = Command::new(BIN)
        .args(["hash-password", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"kata sandi rahasia\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    let hash = argon2::PasswordHash::new(phc.trim()).unwrap();
    assert_eq!(hash.algorithm.as_str(), "argon2id");
    let argon = argon2::Argon2::default();
    assert!(argon.verify_password(b"kata sandi rahasia", &hash).is_ok(), "one trailing newline dropped, spaces kept");
    assert!(argon.verify_password(b"kata sandi rahasia\n", &hash).is_err());

    // Without --password-stdin it wants a terminal, and there is none here.
    let out = Command::new(BIN).arg("hash-password").stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // An empty password is refused.
    let out = Command::new(BIN).args(["hash-password", "--password-stdin"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_example_config_gives_each_consumer_its_own_documented_password() {
    let config =
        simpul_warehouse::config::WarehouseConfig::from_file(&workspace_root().join("configs/warehouse.toml")).unwrap();
    let argon = argon2::Argon2::default();
    let verifies = |consumer: usize, password: &str| {
        let hash = argon2::PasswordHash::new(config.consumers[consumer].password_hash.as_phc()).unwrap();
        argon.verify_password(password.as_bytes(), &hash).is_ok()
    };
    assert!(verifies(0, "contoh-bps") && verifies(1, "contoh-rsud"));
    assert!(!verifies(0, "contoh-rsud") && !verifies(1, "contoh-bps"));
    let salt = |consumer: usize| {
        argon2::PasswordHash::new(config.consumers[consumer].password_hash.as_phc()).unwrap().salt.unwrap().to_string()
    };
    assert_ne!(salt(0), salt(1));
}

#[test]
fn check_config_validates_the_example_and_refuses_mistakes() {
    let example = workspace_root().join("configs/warehouse.toml");
    let out = Command::new(BIN).arg("check-config").arg(&example).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The gateway's shape: what was checked and the verdict, nothing else.
    assert_eq!(report, json!({ "file": example, "valid": true }));
    let out = Command::new(BIN).arg("check-config").arg(&example).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}: valid\n", example.display()));

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&example).unwrap();
    let table = [
        (text.replace("daily_quota = 2000", "daily_quota = 2000\nquota_harian = 1"), "unknown field"),
        (text.replace("require_client_cert = false", "require_client_cert = true"), "client_ca"),
        (text.replace("\"CALL_AGREGAT\"", "\"CALL_SEMUA\""), "unknown method"),
        (text.replace("\"10.77.0.0/16\"", "\"10.77.0.0/33\""), "CIDR"),
        (text.replace("timezone = \"Asia/Jakarta\"", "timezone = \"WIB\""), "time zone"),
        // A file the config names is read as `serve` reads it.
        (
            text.replace("# client_ca = \"/etc/simpul/relay-ca.pem\"", "client_ca = \"/nonexistent/relay-ca.pem\""),
            "relay-ca.pem",
        ),
        (
            text.replace("# cert = \"/etc/simpul/warehouse-cert.pem\"", "cert = \"/nonexistent/warehouse-cert.pem\"")
                .replace("# key = \"/etc/simpul/warehouse-key.pem\"", "key = \"/nonexistent/warehouse-key.pem\""),
            "warehouse-cert.pem",
        ),
    ];
    for (i, (text, want)) in table.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(BIN).arg("check-config").arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{want}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{want}: {stderr}");
        let out = Command::new(BIN).arg("check-config").arg(&file).arg("--json").output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["valid"], false);
        assert!(report["error"].as_str().unwrap().contains(want));
        // `serve` refuses the same config, with the same words, before it binds (or builds the population).
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{want}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(want), "{want}");
    }
}
