//! What every gateway test that adds devices needs first: an institution with an agreement in force and the users
//! devices belong to, registered through the real CLI as an admin would.

// Each test file compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_simpul-gateway");
pub const INSTITUTION: &str = "DINSOS-3374";
/// Users `register` creates, each with the password `PASSWORD`.
pub const USERS: [&str; 4] = ["budi", "siti", "siti-rahayu", "bulk"];
pub const PASSWORD: &str = "kata-sandi-rahasia";
pub const UPSTREAM_PASSWORD: &str = "dev";

/// Runs the CLI against the gateway of `config` with `stdin` as its standard input.
pub fn cli_with_stdin(config: &Path, args: &[&str], stdin: &str) -> Output {
    simpul_integration::gateway_cli(Path::new(BIN), config, args, stdin).expect("the CLI runs")
}

fn succeed(output: Output, what: &str) {
    assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Registers `INSTITUTION` (every method and element, an agreement in force from 2020 to 2099, upstream consumer
/// DEV/dev of the warehouse stand-in's `--dev` mode) and the `USERS`, unless they exist already (a restarted gateway).
pub fn register(config: &Path) {
    let shown = cli_with_stdin(config, &["institution", "show", INSTITUTION], "");
    if shown.status.success() {
        return;
    }
    #[rustfmt::skip]
    let institution = [
        "institution", "add", "--id", INSTITUTION, "--name", "Dinas Sosial Kota Semarang", "--region", "33.74",
        "--agreement", "470/1234/PKS/2026", "--valid-from", "2020-01-01", "--valid-until", "2099-12-31",
        "--methods", "CALL_NIK,CALL_NIK_GET_KK,CALL_VERIFY_BY_ELEMEN,CALL_AGREGAT", "--elements", "all",
        "--daily-quota", "100000", "--upstream-consumer", "DEV", "--upstream-user", "dev", "--upstream-password-stdin",
        "--consumer-aliases", "DINSOS_3374",
    ];
    succeed(cli_with_stdin(config, &institution, UPSTREAM_PASSWORD), "institution add");
    for (i, user) in USERS.iter().enumerate() {
        let nip = format!("19870310201001100{i}");
        #[rustfmt::skip]
        let args = [
            "user", "add", "--id", user, "--institution", INSTITUTION, "--name", "Budi Santoso",
            "--nik", "3374041003870006", "--nip", &nip, "--position", "Analis Data", "--office-region", "33.74.04",
            "--application-user", user, "--password-stdin",
        ];
        succeed(cli_with_stdin(config, &args, PASSWORD), "user add");
    }
}

/// One synthetic population per test binary for the in-process warehouse stand-ins: enough residents for real NIKs of
/// every kind, quick to build.
pub fn population() -> std::sync::Arc<simpul_warehouse::population::Population> {
    use simpul_warehouse::population::{Population, PopulationConfig};
    static POPULATION: std::sync::OnceLock<std::sync::Arc<Population>> = std::sync::OnceLock::new();
    POPULATION
        .get_or_init(|| {
            let config = PopulationConfig { residents: 20_000, ..PopulationConfig::default() };
            std::sync::Arc::new(Population::new(config).expect("test population"))
        })
        .clone()
}

/// Every record in the audit log of the gateway listening on `socket`, oldest first, as JSON.
pub async fn audit_records(socket: &Path) -> Vec<serde_json::Value> {
    use simpul_gateway::admin::audit::AuditRecords;
    use simpul_gateway::control::Client;
    let mut client = Client::connect(socket).await.expect("the management socket");
    let mut records = Vec::new();
    let mut from = 0;
    loop {
        let request = AuditRecords { from, limit: 5000, filter: Default::default() };
        let page = client.call(request).await.expect("a page of records");
        for text in &page.records {
            records.push(serde_json::from_str(text).expect("a JSON record"));
        }
        match page.next {
            Some(next) => from = next,
            None => return records,
        }
    }
}

/// The gateway binary running with `config` in a network namespace, stopped with SIGTERM when dropped.
pub struct Process {
    /// Taken by a test that kills it itself.
    pub child: Option<std::process::Child>,
    /// What the gateway announced as its WireGuard key.
    pub public_key: String,
}

impl Process {
    /// Starts `simpul-gateway run --config CONFIG` in `ns` and waits for its `ready:` line.
    pub fn start(ns: &simpul_integration::netns::Netns, config: &Path) -> Process {
        use std::io::{BufRead, BufReader};
        let mut child = ns
            .command(&[BIN, "run", "--config", config.to_str().expect("a UTF-8 path")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("simpul-gateway starts");
        let mut public_key = String::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(key) = line.strip_prefix("gateway public key: ") {
                public_key = key.to_string();
            }
            if line.starts_with("ready:") {
                break;
            }
        }
        assert_eq!(public_key.len(), 44, "the gateway announced its key and became ready");
        Process { child: Some(child), public_key }
    }

    /// SIGTERM, as systemd stops it; the gateway must exit successfully.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            simpul_integration::netns::run("kill", &["-TERM", &child.id().to_string()]);
            let status = child.wait().unwrap();
            assert!(status.success(), "the gateway stops cleanly on SIGTERM: {status}");
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            simpul_integration::netns::terminate(child);
        }
    }
}
