//! What every gateway test that adds devices needs first: an institution with an agreement in force and the users
//! devices belong to, registered through the real CLI as an admin would.

// Each test file compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_simpul-gateway");
pub const INSTITUTION: &str = "DINSOS-3374";
/// Users `register` creates, each with the password `PASSWORD`.
pub const USERS: [&str; 4] = ["budi", "siti", "siti-rahayu", "bulk"];
pub const PASSWORD: &str = "kata-sandi-rahasia";
pub const UPSTREAM_PASSWORD: &str = "dev";

/// Runs the CLI against the gateway of `config` with `stdin` as its standard input.
pub fn cli_with_stdin(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SIMPUL_GATEWAY_CONFIG")
        .env_remove("SIMPUL_GATEWAY_STATE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI runs");
    child.stdin.take().unwrap().write_all(format!("{stdin}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
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
    use simpul_gateway::control::{Client, Request};
    let mut client = Client::connect(socket).await.expect("the management socket");
    let mut records = Vec::new();
    let mut from = 0;
    loop {
        let request = Request::AuditRecords { from, limit: 5000, filter: Default::default() };
        let page = client.call(&request).await.expect("a page of records");
        for text in page["records"].as_array().expect("records") {
            records.push(serde_json::from_str(text.as_str().expect("canonical text")).expect("a JSON record"));
        }
        match page["next"].as_u64() {
            Some(next) => from = next,
            None => return records,
        }
    }
}
