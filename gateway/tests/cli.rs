//! The `simpul-gateway` binary as an admin's script drives it: a real `run --userspace` gateway (no root, no TUN, no
//! nftables) in a temporary state directory, and every admin command as its own process, checked on its standard
//! output, standard error and exit code (see `simpul_gateway::cli::exit`).

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use simpul_tunnel::{PrivateKey, PublicKey};

mod common;

use common::BIN;
const ENDPOINT: &str = "gateway.example.go.id:51820";
/// How long any one command, or a gateway's start or stop, may take on a busy machine with a debug build.
const PATIENCE: Duration = Duration::from_secs(30);

/// The exit codes of `simpul_gateway::cli::exit`, spelled out so that a change to them fails here.
const OK: i32 = 0;
const CONFLICT: i32 = 1;
const INVALID: i32 = 2;
const NOT_FOUND: i32 = 3;
const UNREACHABLE: i32 = 4;

// ---------------------------------------------------------------------------------------------------------------------
// Harness

/// What one command did.
#[derive(Clone)]
struct Out {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` exited {:?}\n--- stdout:\n{}--- stderr:\n{}---", self.what, self.code, self.stdout, self.stderr)
    }
}

impl Out {
    fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "unexpected exit code: {self}");
        self
    }

    fn ok(self) -> Self {
        self.expect(OK)
    }

    /// The gateway (or the CLI before asking it) refused: `code`, a message naming the problem, and nothing else;
    /// with `--json` the message is `{"error", "exit"}` on standard output, else one line on standard error.
    fn refused(self, code: i32, message: &str) -> Self {
        let out = self.expect(code);
        if out.what.split(' ').any(|a| a == "--json") {
            let error = out.json();
            assert_eq!(error["exit"], code, "the JSON error's exit code is not the process's: {out}");
            assert!(error["error"].as_str().is_some_and(|e| e.contains(message)), "it does not say {message:?}: {out}");
            assert_eq!(error.as_object().map(|o| o.len()), Some(2), "more than the error and its code: {out}");
            assert!(out.stderr.is_empty(), "a JSON error also went to stderr: {out}");
            return out;
        }
        assert!(out.stderr.starts_with("simpul-gateway: "), "stderr is not the CLI's one-line message: {out}");
        assert!(out.stderr.contains(message), "stderr does not say {message:?}: {out}");
        assert!(out.stdout.is_empty(), "a refused command printed something: {out}");
        out
    }

    /// clap refused the command line: exit 2 with its usage message.
    fn usage_error(self, message: &str) -> Self {
        let out = self.expect(INVALID);
        assert!(out.stderr.starts_with("error: "), "not clap's usage error: {out}");
        assert!(out.stderr.contains(message), "stderr does not say {message:?}: {out}");
        assert!(out.stdout.is_empty(), "{out}");
        out
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child process") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_all(mut file: File) -> String {
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).expect("the output is UTF-8");
    text
}

/// The binary with an environment that cannot point it at another gateway (or at /var/lib as root).
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("SIMPUL_GATEWAY_CONFIG").env_remove("SIMPUL_GATEWAY_STATE_DIR").stdin(Stdio::null());
    command
}

/// Runs a command to completion (killing it after `PATIENCE`), with its output captured.
fn execute(mut command: Command) -> Out {
    let what = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let stdout = tempfile::tempfile().unwrap();
    let stderr = tempfile::tempfile().unwrap();
    command.stdout(stdout.try_clone().unwrap()).stderr(stderr.try_clone().unwrap());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let Some(status) = wait_for(&mut child, PATIENCE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`{what}` did not finish within {PATIENCE:?}; stderr: {}", read_all(stderr));
    };
    Out { what, code: status.code(), stdout: read_all(stdout), stderr: read_all(stderr) }
}

fn signal(child: &Child, name: &str) {
    // The child is not reaped yet, so its pid cannot have been reused.
    let status = Command::new("kill").args(["-s", name, &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -s {name} {} failed", child.id());
}

/// A temporary state directory and a config file that points at it.
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
}

impl Site {
    /// The config of the brief: a free loopback port and an endpoint for exports.
    fn new() -> Self {
        Self::with_config(&format!("[tunnel]\nlisten = \"127.0.0.1:0\"\nendpoint = \"{ENDPOINT}\"\n"))
    }

    /// `state_dir` and then `rest`.
    fn with_config(rest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = dir.path().join("gw.toml");
        let state_dir = toml::Value::String(state.to_str().unwrap().to_owned());
        fs::write(&config, format!("state_dir = {state_dir}\n{rest}")).unwrap();
        Self { dir, config, state }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn socket(&self) -> PathBuf {
        self.state.join("control.sock")
    }

    /// `simpul-gateway ARGS --config <site>/gw.toml`.
    fn cli(&self, args: &[&str]) -> Out {
        let mut command = command(args);
        command.arg("--config").arg(&self.config);
        execute(command)
    }

    /// Starts `run --userspace` and waits for its ready line.
    fn start(&self) -> Gateway {
        let stderr_path = self.path("gateway.stderr");
        let stderr = OpenOptions::new().create(true).append(true).open(&stderr_path).unwrap();
        let mut child = command(&["run", "--userspace", "--config"])
            .arg(&self.config)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the gateway starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Drains stdout to the end, so that the gateway never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut gateway = Gateway {
            child: Some(child),
            public_key: String::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            socket: PathBuf::new(),
            stderr: stderr_path,
        };
        let deadline = Instant::now() + PATIENCE;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("ready: ");
                    lines.push(line);
                    if ready {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = wait_for(gateway.child.as_mut().unwrap(), PATIENCE);
                    gateway.child = None;
                    panic!("the gateway exited ({status:?}) before it was ready: {lines:?}\n{}", gateway.stderr());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no ready line within {PATIENCE:?}: {lines:?}\n{}", gateway.stderr())
                }
            }
        }
        let line = |prefix: &str| -> String {
            let found = lines.iter().find_map(|l| l.strip_prefix(prefix));
            found.unwrap_or_else(|| panic!("no {prefix:?} line in {lines:?}")).to_owned()
        };
        gateway.public_key = line("gateway public key: ");
        gateway.socket = PathBuf::from(line("management socket: "));
        let ready = line("ready: WireGuard on udp ");
        let (listen, rest) = ready.split_once(", ").unwrap_or_else(|| panic!("ready line: {ready:?}"));
        gateway.listen = listen.parse().unwrap_or_else(|e| panic!("ready line {ready:?}: {e}"));
        assert_eq!(rest, "API http://10.77.0.1:8000/ inside the tunnel (userspace mode)", "{lines:?}");
        assert_eq!(lines.last().map(|l| l.starts_with("ready: ")), Some(true), "the ready line comes last: {lines:?}");
        assert_eq!(gateway.socket, self.socket(), "{lines:?}");
        assert_eq!(gateway.public_key.parse::<PublicKey>().map(|k| k.to_string()).as_ref(), Ok(&gateway.public_key));
        common::register(&self.config);
        gateway
    }
}

/// A running `simpul-gateway run`; stopped with SIGTERM when dropped, which must end it with success.
struct Gateway {
    child: Option<Child>,
    public_key: String,
    listen: SocketAddr,
    socket: PathBuf,
    stderr: PathBuf,
}

impl Gateway {
    fn stderr(&self) -> String {
        format!("--- gateway stderr:\n{}---", fs::read_to_string(&self.stderr).unwrap_or_default())
    }

    /// SIGTERM, as systemd stops it; returns how it exited.
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the gateway runs");
        signal(&child, "TERM");
        match wait_for(&mut child, PATIENCE) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the gateway did not stop within {PATIENCE:?} of SIGTERM\n{}", self.stderr());
            }
        }
    }

    /// SIGKILL: a crash, or the OOM killer. Nothing is cleaned up.
    fn crash(&mut self) {
        let mut child = self.child.take().expect("the gateway runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let status = self.stop();
        if !std::thread::panicking() {
            assert!(status.success(), "the gateway exited {status} on SIGTERM\n{}", self.stderr());
        }
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

fn public_of(private: &str) -> String {
    let key: PrivateKey = private.parse().unwrap_or_else(|e| panic!("{private:?} is not a private key: {e}"));
    key.public_key().to_string()
}

/// `wg pubkey`: an implementation that shares no code with the gateway's. Without `wg` installed the check is
/// skipped loudly on a developer machine and fails under CI (which installs wireguard-tools), like every other
/// missing prerequisite; a `wg` that runs but fails is a failure anywhere.
fn wg_pubkey(test: &str, private: &str) -> Option<String> {
    let spawned = Command::new("wg").arg("pubkey").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            simpul_integration::skip(test, "`wg` (wireguard-tools) is not installed: no independent key check");
            return None;
        }
        Err(e) => panic!("{test}: wg pubkey: {e}"),
    };
    child.stdin.take().unwrap().write_all(format!("{private}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{test}: wg pubkey failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A key pair of the device's own, as `wg genkey | wg pubkey` would make: (private, public).
fn own_key_pair() -> (String, String) {
    let key = PrivateKey::generate();
    (key.to_base64(), key.public_key().to_string())
}

/// `device add --json`, which must succeed.
fn add(site: &Site, name: &str, user: &str, extra: &[&str]) -> Value {
    let mut args = vec!["device", "add", "--name", name, "--user", user, "--json"];
    args.extend_from_slice(extra);
    let device = site.cli(&args).ok().json();
    assert_eq!((device["name"].as_str(), device["user"].as_str()), (Some(name), Some(user)), "{device}");
    device
}

fn list(site: &Site) -> Vec<Value> {
    let out = site.cli(&["device", "list", "--json"]).ok();
    out.json().as_array().unwrap_or_else(|| panic!("not an array: {out}")).clone()
}

/// The stored record of a device, without what the tunnel reports of it now.
fn record(device: &Value) -> Value {
    let mut device = device.clone();
    device.as_object_mut().unwrap().remove("tunnel");
    device
}

fn by_name<'a>(devices: &'a [Value], name: &str) -> &'a Value {
    devices.iter().find(|d| d["name"] == name).unwrap_or_else(|| panic!("no {name} in {devices:?}"))
}

/// A wg-quick file as (section, key, value) triples, comments and blank lines left out.
struct WgQuick(Vec<(String, String, String)>);

impl WgQuick {
    fn parse(text: &str) -> Self {
        let mut section = String::new();
        let mut entries = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                continue;
            }
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not key = value: {line:?} in {text}"));
            assert!(!section.is_empty(), "{line:?} comes before any section: {text}");
            entries.push((section.clone(), key.trim().to_owned(), value.trim().to_owned()));
        }
        Self(entries)
    }

    fn sections(&self) -> Vec<&str> {
        let mut sections: Vec<&str> = self.0.iter().map(|(s, _, _)| s.as_str()).collect();
        sections.dedup();
        sections
    }

    /// The one value of `key` in `section`.
    fn get(&self, section: &str, key: &str) -> &str {
        let values: Vec<&str> =
            self.0.iter().filter(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str()).collect();
        assert_eq!(values.len(), 1, "[{section}] {key}: {:?}", self.0);
        values[0]
    }

    fn keys(&self, section: &str) -> BTreeSet<&str> {
        self.0.iter().filter(|(s, _, _)| s == section).map(|(_, k, _)| k.as_str()).collect()
    }
}

/// The text of the one QR code in a PNG, read with rqrr, a decoder that shares no code with the encoder.
fn decode_qr_png(bytes: &[u8]) -> String {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a readable PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut pixels).expect("a decodable PNG");
    assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Grayscale, png::BitDepth::Eight));
    let (width, height, stride) = (info.width as usize, info.height as usize, info.line_size);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * stride + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "expected one QR code in the PNG");
    grids[0].decode().expect("the QR code decodes").1
}

// ---------------------------------------------------------------------------------------------------------------------
// device add

#[test]
fn device_add_hands_out_the_lowest_free_address_and_a_key_pair() {
    let site = Site::new();
    let gateway = site.start();

    let first = add(&site, "laptop-1", "budi", &[]);
    assert_eq!(first["address"], "10.77.0.2", "{first}");
    assert_eq!(first["status"], "active", "{first}");
    assert_eq!(first["generated_key"], true, "{first}");
    let key = first["public_key"].as_str().unwrap();
    assert_eq!(key.len(), 44, "{first}");
    assert_eq!(key.parse::<PublicKey>().unwrap().to_string(), key);
    assert_ne!(key, gateway.public_key);
    assert_eq!(first["created_at"], first["changed_at"], "{first}");

    let second = add(&site, "laptop-2", "budi", &[]);
    assert_eq!(second["address"], "10.77.0.3", "{second}");
    assert_ne!(second["public_key"], first["public_key"], "every device gets its own key pair");

    let chosen = add(&site, "laptop-3", "siti", &["--address", "10.77.5.5"]);
    assert_eq!(chosen["address"], "10.77.5.5", "{chosen}");
    // A chosen address leaves the lowest free one where it was.
    assert_eq!(add(&site, "laptop-4", "siti", &[])["address"], "10.77.0.4");

    // Without --json: the details an admin reads.
    let out = site.cli(&["device", "add", "--name", "laptop-5", "--user", "budi"]).ok();
    let field = |label: &str| -> String {
        let line = out.stdout.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label}: {out}"));
        line[label.len()..].trim().to_owned()
    };
    assert_eq!(field("name"), "laptop-5", "{out}");
    assert_eq!(field("address"), "10.77.0.5", "{out}");
    assert_eq!(field("status"), "active", "{out}");
    assert_eq!(field("key pair"), "generated by the gateway", "{out}");
    assert_eq!(list(&site).len(), 5);
}

#[test]
fn device_add_refuses_addresses_it_cannot_hand_out_and_adds_nothing() {
    let site = Site::new();
    let _gateway = site.start();
    add(&site, "laptop-1", "budi", &[]);
    let before = list(&site);

    let cases = [
        ("10.78.0.5", "10.78.0.5 is outside the tunnel network 10.77.0.0/16"),
        ("192.168.1.10", "outside the tunnel network"),
        ("10.77.0.1", "10.77.0.1 is the gateway's own address"),
        ("10.77.0.0", "10.77.0.0 is the tunnel network's network or broadcast address"),
        ("10.77.255.255", "network or broadcast address"),
    ];
    for (address, message) in cases {
        site.cli(&["device", "add", "--name", "laptop-2", "--user", "budi", "--address", address])
            .refused(INVALID, message);
    }
    site.cli(&["device", "add", "--name", "laptop-2", "--user", "budi", "--address", "10.77.0.2"])
        .refused(CONFLICT, "10.77.0.2 is already taken");
    site.cli(&["device", "add", "--name", "laptop-2", "--user", "budi", "--address", "10.77.0"])
        .usage_error("invalid value '10.77.0' for '--address <ADDRESS>'");
    site.cli(&["device", "add", "--name", "laptop-1", "--user", "siti"])
        .refused(CONFLICT, "a device named laptop-1 already exists");
    assert_eq!(list(&site), before, "a refused add left a trace");

    // Nothing was reserved by the refusals: the name and the lowest free address are still there to take.
    assert_eq!(add(&site, "laptop-2", "budi", &[])["address"], "10.77.0.3");
}

#[test]
fn the_last_free_address_runs_out_cleanly() {
    // A /30 has room for the gateway and one device.
    let site = Site::with_config("[tunnel]\nlisten = \"127.0.0.1:0\"\nnetwork = \"10.77.0.0/30\"\n");
    let _gateway = site.start();
    assert_eq!(add(&site, "laptop-1", "budi", &[])["address"], "10.77.0.2");
    site.cli(&["device", "add", "--name", "laptop-2", "--user", "budi"])
        .refused(CONFLICT, "the tunnel network 10.77.0.0/30 has no free address left");
    site.cli(&["device", "add", "--name", "laptop-2", "--user", "budi", "--address", "10.77.0.3"])
        .refused(INVALID, "network or broadcast");
    assert_eq!(list(&site).len(), 1);
}

#[test]
fn device_add_checks_names_and_public_keys() {
    let site = Site::new();
    let gateway = site.start();

    let add_as = |name: &str, user: &str| site.cli(&["device", "add", "--name", name, "--user", user]);
    add_as("bad name", "budi").usage_error("invalid value 'bad name' for '--name <NAME>'");
    add_as("-x", "budi").usage_error("unexpected argument '-x'");
    site.cli(&["device", "add", "--name=-x", "--user", "budi"]).usage_error("a name starts with a letter or digit");
    add_as("laptop-1", "../etc").usage_error("invalid value '../etc' for '--user <USER>'");
    add_as("laptop-1\nPostUp = rm -rf /", "budi").usage_error("invalid value");
    add_as(&"a".repeat(65), "budi").usage_error("a name has at most 64 characters");
    add_as("", "budi").usage_error("a name may not be empty");
    site.cli(&["device", "show", "bad name"]).usage_error("invalid value 'bad name'");

    let with_key = |name: &str, key: &str| {
        site.cli(&["device", "add", "--name", name, "--user", "budi", "--public-key", key, "--json"])
    };
    with_key("laptop-1", "not-a-key").refused(INVALID, "public key");
    with_key("laptop-1", "AAAA").refused(INVALID, "public key");
    // Base64 of the right alphabet and length, but 33 and 31 bytes.
    with_key("laptop-1", &"A".repeat(44)).refused(INVALID, "public key");
    with_key("laptop-1", &format!("{}==", "A".repeat(42))).refused(INVALID, "public key");
    with_key("laptop-1", &gateway.public_key).refused(INVALID, "the public key is the gateway's own");

    let (_, public) = own_key_pair();
    let own = with_key("laptop-1", &public).ok().json();
    assert_eq!(own["public_key"], public.as_str(), "{own}");
    assert_eq!(own["generated_key"], false, "{own}");
    assert_eq!(own["address"], "10.77.0.2", "{own}");
    with_key("laptop-2", &public).refused(CONFLICT, "the public key is already device laptop-1's");

    // Only the one device exists, and the refusals took no address.
    let devices = list(&site);
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(add(&site, "laptop-2", "budi", &[])["address"], "10.77.0.3");
}

#[test]
fn concurrent_admins_get_distinct_addresses_and_one_winner_per_name() {
    let site = Site::new();
    let _gateway = site.start();
    let outs: Vec<Out> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let site = &site;
                scope.spawn(move || {
                    let name = format!("laptop-{i}");
                    site.cli(&["device", "add", "--name", &name, "--user", "budi", "--json"])
                })
            })
            .chain((0..4).map(|_| {
                let site = &site;
                scope.spawn(move || site.cli(&["device", "add", "--name", "shared", "--user", "budi", "--json"]))
            }))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (distinct, shared) = outs.split_at(8);
    let addresses: BTreeSet<String> = distinct
        .iter()
        .map(|o| {
            assert_eq!(o.code, Some(OK), "{o}");
            o.json()["address"].to_string()
        })
        .collect();
    assert_eq!(addresses.len(), 8, "{addresses:?}");
    let winners = shared.iter().filter(|o| o.code == Some(OK)).count();
    assert_eq!(winners, 1, "exactly one `shared` add succeeds");
    for out in shared.iter().filter(|o| o.code != Some(OK)) {
        out.clone().refused(CONFLICT, "a device named shared already exists");
    }
    let devices = list(&site);
    assert_eq!(devices.len(), 9);
    let all: BTreeSet<&str> = devices.iter().map(|d| d["address"].as_str().unwrap()).collect();
    let expected: BTreeSet<String> = (2..=10).map(|i| format!("10.77.0.{i}")).collect();
    assert_eq!(all, expected.iter().map(String::as_str).collect());
}

// ---------------------------------------------------------------------------------------------------------------------
// device list, show

#[test]
fn device_list_and_show_agree_on_every_device() {
    let site = Site::new();
    let _gateway = site.start();

    assert_eq!(site.cli(&["device", "list", "--json"]).ok().json(), json!([]));
    let empty = site.cli(&["device", "list"]).ok();
    assert_eq!(empty.stdout, "NAME  USER  ADDRESS  STATUS  HANDSHAKE  ENDPOINT\n", "{empty}");

    add(&site, "laptop-2", "siti-rahayu", &[]);
    add(&site, "laptop-1", "budi", &[]);
    let (_, public) = own_key_pair();
    add(&site, "tablet-1", "budi", &["--public-key", &public]);
    site.cli(&["device", "suspend", "laptop-1"]).ok();

    let devices = list(&site);
    let names: Vec<&str> = devices.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["laptop-1", "laptop-2", "tablet-1"], "sorted by name");
    let rows: Vec<(&str, &str, &str, &str)> = devices
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_else(|| panic!("{k} in {d}"));
            (s("name"), s("user"), s("address"), s("status"))
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("laptop-1", "budi", "10.77.0.3", "suspended"),
            ("laptop-2", "siti-rahayu", "10.77.0.2", "active"),
            ("tablet-1", "budi", "10.77.0.4", "active"),
        ]
    );
    for device in &devices {
        // Every device but a revoked one holds a tunnel; none has shaken hands yet.
        assert_eq!(device["tunnel"]["last_handshake_seconds"], Value::Null, "{device}");
        assert_eq!(device["tunnel"]["rx_bytes"], 0, "{device}");
    }
    assert_eq!(by_name(&devices, "tablet-1")["public_key"], public.as_str());

    let table = site.cli(&["device", "list"]).ok();
    let lines: Vec<Vec<&str>> = table.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(table.stdout.starts_with("NAME      USER         ADDRESS    STATUS     HANDSHAKE  ENDPOINT\n"), "{table}");
    assert_eq!(lines[1], ["laptop-1", "budi", "10.77.0.3", "suspended", "never", "-"], "{table}");
    assert_eq!(lines[2], ["laptop-2", "siti-rahayu", "10.77.0.2", "active", "never", "-"], "{table}");
    assert_eq!(lines[3], ["tablet-1", "budi", "10.77.0.4", "active", "never", "-"], "{table}");

    for device in &devices {
        let name = device["name"].as_str().unwrap();
        assert_eq!(&site.cli(&["device", "show", name, "--json"]).ok().json(), device, "show {name}");
    }
    let shown = site.cli(&["device", "show", "tablet-1"]).ok();
    assert!(shown.stdout.lines().any(|l| l.starts_with("key pair") && l.ends_with("the device's own")), "{shown}");
    assert!(shown.stdout.lines().any(|l| l.starts_with("public key") && l.ends_with(&public)), "{shown}");

    for command in ["show", "suspend", "resume", "revoke", "export"] {
        site.cli(&["device", command, "laptop-9"]).refused(NOT_FOUND, "no device named laptop-9");
    }
    assert_eq!(list(&site), devices, "looking for a missing device changed nothing");
}

// ---------------------------------------------------------------------------------------------------------------------
// suspend, resume, revoke

#[test]
fn a_device_goes_from_active_to_suspended_and_back_and_is_revoked_for_good() {
    let site = Site::new();
    let _gateway = site.start();
    let added = add(&site, "laptop-1", "budi", &[]);
    let change = |command: &str| site.cli(&["device", command, "laptop-1", "--json"]).ok().json();

    let suspended = change("suspend");
    assert_eq!((suspended["status"].as_str(), suspended["changed"].as_bool()), (Some("suspended"), Some(true)));
    assert_ne!(suspended["changed_at"], added["changed_at"], "{suspended}");
    assert_eq!(suspended["created_at"], added["created_at"], "{suspended}");
    assert!(suspended["tunnel"].is_object(), "a suspended device keeps its tunnel: {suspended}");
    let again = change("suspend");
    assert_eq!((again["status"].as_str(), again["changed"].as_bool()), (Some("suspended"), Some(false)));
    assert_eq!(again["changed_at"], suspended["changed_at"], "a no-op changes nothing: {again}");
    assert_eq!(by_name(&list(&site), "laptop-1")["status"], "suspended");

    let resumed = change("resume");
    assert_eq!((resumed["status"].as_str(), resumed["changed"].as_bool()), (Some("active"), Some(true)));
    let again = change("resume");
    assert_eq!((again["status"].as_str(), again["changed"].as_bool()), (Some("active"), Some(false)));

    // Without --json, the details.
    let out = site.cli(&["device", "suspend", "laptop-1"]).ok();
    assert!(out.stdout.lines().any(|l| l.starts_with("status") && l.ends_with("suspended")), "{out}");

    let revoked = change("revoke");
    assert_eq!((revoked["status"].as_str(), revoked["changed"].as_bool()), (Some("revoked"), Some(true)));
    assert_eq!(revoked["tunnel"], Value::Null, "a revoked device's key left the tunnel: {revoked}");
    for command in ["suspend", "resume", "revoke"] {
        site.cli(&["device", command, "laptop-1"]).refused(CONFLICT, "device laptop-1 is revoked");
    }
    site.cli(&["device", "export", "laptop-1"]).refused(CONFLICT, "device laptop-1 is revoked");

    let devices = list(&site);
    assert_eq!(devices.len(), 1);
    let mut expected = record(&revoked);
    expected.as_object_mut().unwrap().remove("changed");
    assert_eq!(record(&devices[0]), expected);
    assert_eq!(devices[0]["status"], "revoked");

    // Neither its name nor its address comes back.
    site.cli(&["device", "add", "--name", "laptop-1", "--user", "budi"]).refused(CONFLICT, "already exists");
    site.cli(&["device", "add", "--name", "laptop-2", "--user", "budi", "--address", "10.77.0.2"])
        .refused(CONFLICT, "10.77.0.2 is already taken");
    assert_eq!(add(&site, "laptop-2", "budi", &[])["address"], "10.77.0.3");
}

// ---------------------------------------------------------------------------------------------------------------------
// device export

#[test]
fn export_prints_a_wg_quick_file_that_matches_the_device_and_the_gateway() {
    let site = Site::new();
    let gateway = site.start();
    let device = add(&site, "laptop-1", "budi", &[]);

    let out = site.cli(&["device", "export", "laptop-1"]).ok();
    assert!(out.stderr.is_empty(), "{out}");
    assert!(out.stdout.starts_with("# Simpul device: laptop-1\n"), "{out}");
    let file = WgQuick::parse(&out.stdout);
    assert_eq!(file.sections(), ["Interface", "Peer"], "{out}");
    let private = file.get("Interface", "PrivateKey");
    assert_eq!(public_of(private), device["public_key"].as_str().unwrap(), "the exported key is the device's");
    if let Some(public) = wg_pubkey("export_prints_a_wg_quick_file_that_matches_the_device_and_the_gateway", private) {
        assert_eq!(public, device["public_key"].as_str().unwrap(), "wg pubkey disagrees");
    }
    assert_eq!(file.get("Interface", "Address"), "10.77.0.2/32");
    assert_eq!(file.get("Interface", "MTU"), "1420");
    assert_eq!(file.get("Peer", "PublicKey"), gateway.public_key);
    assert_eq!(file.get("Peer", "Endpoint"), ENDPOINT);
    assert_eq!(file.get("Peer", "AllowedIPs"), "10.77.0.1/32");
    assert_eq!(file.get("Peer", "PersistentKeepalive"), "25");
    // Nothing that would route more than the gateway, or the laptop's DNS, into the tunnel.
    assert_eq!(file.keys("Interface"), BTreeSet::from(["PrivateKey", "Address", "MTU"]), "{out}");
    assert_eq!(file.keys("Peer"), BTreeSet::from(["PublicKey", "Endpoint", "AllowedIPs", "PersistentKeepalive"]));

    // The gateway keeps the key: exporting again gives the same file.
    assert_eq!(site.cli(&["device", "export", "laptop-1"]).ok().stdout, out.stdout);

    let other = site.cli(&["device", "export", "laptop-1", "--endpoint", "other.example:1234"]).ok();
    let other_file = WgQuick::parse(&other.stdout);
    assert_eq!(other_file.get("Peer", "Endpoint"), "other.example:1234");
    assert_eq!(other.stdout.replace("other.example:1234", ENDPOINT), out.stdout, "only the endpoint differs");
    site.cli(&["device", "export", "laptop-1", "--endpoint", "bad host:1"]).refused(INVALID, "must be host:port");
    site.cli(&["device", "export", "laptop-1", "--endpoint", "other.example"]).refused(INVALID, "must be host:port");

    // --output: a private file and nothing on stdout, even over a file that was readable by others.
    let path = site.path("x.conf");
    let written = site.cli(&["device", "export", "laptop-1", "--output", path.to_str().unwrap()]).ok();
    assert!(written.stdout.is_empty(), "{written}");
    assert!(written.stderr.contains("x.conf"), "{written}");
    assert_eq!(fs::read_to_string(&path).unwrap(), out.stdout);
    assert_eq!(mode(&path), 0o600);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    site.cli(&["device", "export", "laptop-1", "--output", path.to_str().unwrap()]).ok();
    assert_eq!(mode(&path), 0o600, "an existing file is made private too");

    // A suspended device may still be exported: resuming it must not need a new file.
    site.cli(&["device", "suspend", "laptop-1"]).ok();
    assert_eq!(site.cli(&["device", "export", "laptop-1"]).ok().stdout, out.stdout);
}

#[test]
fn export_as_a_qr_code_for_the_mobile_apps() {
    let site = Site::new();
    let _gateway = site.start();
    add(&site, "laptop-1", "budi", &[]);
    let text = site.cli(&["device", "export", "laptop-1"]).ok().stdout;

    let png_path = site.path("x.png");
    let out =
        site.cli(&["device", "export", "laptop-1", "--format", "qr", "--output", png_path.to_str().unwrap()]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.len() > 10, "{out}");
    assert!(out.stdout.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' ' | '\n')), "not a block-character QR: {out}");
    let width = lines[0].chars().count();
    assert!(lines.iter().all(|l| l.chars().count() == width), "ragged lines: {out}");
    assert_eq!(lines.len(), width.div_ceil(2), "two module rows per line of a square symbol: {out}");
    assert!(width <= 80, "fits an 80-column terminal: {width}");
    assert!(out.stderr.contains("x.png"), "{out}");

    let png = fs::read(&png_path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(mode(&png_path), 0o600);
    assert_eq!(decode_qr_png(&png), text, "the QR code holds the wg-quick file byte for byte");

    // Without --output the image is NAME.png in the working directory.
    let mut command = command(&["device", "export", "laptop-1", "--format", "qr", "--config"]);
    command.arg(&site.config).current_dir(site.dir.path());
    execute(command).ok();
    assert_eq!(decode_qr_png(&fs::read(site.path("laptop-1.png")).unwrap()), text);
    assert_eq!(mode(&site.path("laptop-1.png")), 0o600);
}

#[test]
fn export_refuses_what_it_cannot_write() {
    let site = Site::new();
    let _gateway = site.start();
    let (_, public) = own_key_pair();
    add(&site, "laptop-1", "budi", &["--public-key", &public]);
    site.cli(&["device", "export", "laptop-1"]).refused(CONFLICT, "the gateway does not hold its private key");
    let png = site.path("own.png");
    site.cli(&["device", "export", "laptop-1", "--format", "qr", "--output", png.to_str().unwrap()])
        .refused(CONFLICT, "does not hold its private key");
    assert!(!png.exists(), "a refused export wrote a file");

    // A config without tunnel.endpoint: the admin is told to set it, or to pass --endpoint.
    let bare = Site::with_config("[tunnel]\nlisten = \"127.0.0.1:0\"\n");
    let bare_gateway = bare.start();
    add(&bare, "laptop-1", "budi", &[]);
    let out = bare.cli(&["device", "export", "laptop-1"]).refused(INVALID, "set tunnel.endpoint");
    assert!(out.stderr.contains("--endpoint"), "{out}");
    let conf = bare.cli(&["device", "export", "laptop-1", "--endpoint", "203.0.113.7:51820"]).ok();
    let file = WgQuick::parse(&conf.stdout);
    assert_eq!(file.get("Peer", "Endpoint"), "203.0.113.7:51820");
    assert_eq!(file.get("Peer", "PublicKey"), bare_gateway.public_key);
    assert_eq!(bare.cli(&["status", "--json"]).ok().json()["endpoint"], Value::Null);
}

// ---------------------------------------------------------------------------------------------------------------------
// status

#[test]
fn status_reports_the_running_gateway() {
    let site = Site::new();
    let gateway = site.start();
    // SIMPUL_GATEWAY_CONFIG instead of --config, as in a systemd unit's environment or an admin's profile.
    let status = |json: bool| {
        let mut command = command(if json { &["status", "--json"][..] } else { &["status"] });
        command.env("SIMPUL_GATEWAY_CONFIG", &site.config);
        execute(command).ok()
    };
    let s = status(true).json();
    assert_eq!(s["mode"], "userspace", "{s}");
    assert_eq!(s["public_key"], gateway.public_key.as_str(), "{s}");
    assert_eq!(s["listen"], gateway.listen.to_string(), "{s}");
    assert_eq!((s["network"].as_str(), s["address"].as_str()), (Some("10.77.0.0/16"), Some("10.77.0.1")), "{s}");
    assert_eq!(s["api"], "http://10.77.0.1:8000/", "{s}");
    assert_eq!(s["endpoint"], ENDPOINT, "{s}");
    assert_eq!((&s["firewall"], &s["interface"]), (&json!(false), &Value::Null), "userspace: no nftables, no TUN");
    assert_eq!(s["devices"], json!({"active": 0, "suspended": 0, "revoked": 0, "blocked": 0}), "{s}");
    assert_eq!((&s["institutions"], &s["users"]), (&json!({"total": 1, "active": 1}), &json!(4)), "{s}");
    assert_eq!(s["tunnel"]["peers"], 0, "{s}");
    let nothing = json!({"hits": 0, "misses": 0, "ratio": null});
    let cache = json!({"on": true, "off_reason": null, "open_error": null, "entries": 0, "bytes": 0,
                       "max_bytes": 1u64 << 30, "today": nothing});
    assert_eq!(s["cache"], cache, "{s}");
    let stats = site.cli(&["cache", "stats", "--json"]).ok().json();
    assert_eq!(
        stats,
        json!({"on": true, "off_reason": null, "open_error": null, "entries": 0, "bytes": 0,
                             "max_bytes": 1u64 << 30, "today": nothing, "since_start": nothing, "institutions": {}})
    );
    assert_eq!(
        site.cli(&["cache", "stats"]).ok().stdout,
        "cache       on, 0 entries, 0 of 1073741824 bytes, hits today -\nsince start -\n\
         INSTITUTION  TODAY HIT/MISS  TODAY  SINCE START HIT/MISS  SINCE START\n"
    );
    // The port it reports is the one it holds.
    assert_ne!(gateway.listen.port(), 0);
    let taken = UdpSocket::bind(gateway.listen).expect_err("the gateway holds its UDP port");
    assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);

    for name in ["a", "b", "c", "d", "e"] {
        add(&site, name, "budi", &[]);
    }
    site.cli(&["device", "suspend", "b"]).ok();
    site.cli(&["device", "revoke", "c"]).ok();
    site.cli(&["device", "suspend", "d"]).ok();
    site.cli(&["device", "revoke", "d"]).ok();
    let s = status(true).json();
    assert_eq!(s["devices"], json!({"active": 2, "suspended": 1, "revoked": 2, "blocked": 1}), "{s}");
    assert_eq!(s["tunnel"]["peers"], 3, "revoked devices hold no tunnel: {s}");

    let human = status(false);
    let field = |key: &str| -> String {
        let line = human.stdout.lines().find(|l| l.split_whitespace().next() == Some(key));
        line.unwrap_or_else(|| panic!("no {key}: {human}"))[key.len()..].trim().to_owned()
    };
    assert_eq!(field("public_key"), gateway.public_key);
    assert_eq!(field("mode"), "userspace");
    assert_eq!(field("listen"), gateway.listen.to_string());
    assert_eq!(field("devices"), "2 active, 1 suspended, 2 revoked");
    assert_eq!(field("cache"), "on, 0 entries, 0 of 1073741824 bytes, hits today -");

    // --state-dir alone finds the socket too (SIMPUL_GATEWAY_STATE_DIR likewise).
    let mut by_dir = command(&["device", "list", "--json", "--state-dir"]);
    by_dir.arg(&site.state);
    assert_eq!(execute(by_dir).ok().json().as_array().map(Vec::len), Some(5));
    let mut by_env = command(&["status", "--json"]);
    by_env.env("SIMPUL_GATEWAY_STATE_DIR", &site.state);
    assert_eq!(execute(by_env).ok().json()["public_key"], gateway.public_key.as_str());
}

// ---------------------------------------------------------------------------------------------------------------------
// Stopping, restarting, crashing, and a second gateway

#[test]
fn devices_survive_a_restart() {
    let site = Site::new();
    let mut gateway = site.start();
    add(&site, "laptop-1", "budi", &[]);
    let (_, public) = own_key_pair();
    add(&site, "laptop-2", "siti", &["--public-key", &public]);
    add(&site, "laptop-3", "budi", &["--address", "10.77.9.9"]);
    site.cli(&["device", "revoke", "laptop-2"]).ok();
    site.cli(&["device", "suspend", "laptop-3"]).ok();
    let export = site.cli(&["device", "export", "laptop-1"]).ok().stdout;
    let before: Vec<Value> = list(&site).iter().map(record).collect();

    let status = gateway.stop();
    assert!(status.success(), "SIGTERM ends the gateway with success: {status}\n{}", gateway.stderr());
    assert!(!site.socket().exists(), "the gateway removed its socket when it stopped");
    for args in [&["device", "list"][..], &["status"], &["device", "add", "--name", "x", "--user", "budi"]] {
        let out = site.cli(args).refused(UNREACHABLE, "cannot reach the gateway");
        assert!(out.stderr.contains(site.socket().to_str().unwrap()), "names the socket: {out}");
        assert!(out.stderr.contains("is `simpul-gateway run` running"), "tells the admin what to check: {out}");
    }

    let again = site.start();
    assert_eq!(again.public_key, gateway.public_key, "the gateway's identity survives a restart");
    let after = list(&site);
    assert_eq!(after.iter().map(record).collect::<Vec<_>>(), before, "every device as it was");
    assert!(by_name(&after, "laptop-3")["tunnel"].is_object(), "the suspended device is back in the tunnel");
    assert_eq!(by_name(&after, "laptop-2")["tunnel"], Value::Null, "the revoked one is not");
    assert_eq!(site.cli(&["device", "export", "laptop-1"]).ok().stdout, export, "the device's private key was kept");
    // Taken addresses stay taken, the revoked device's included.
    assert_eq!(add(&site, "laptop-4", "budi", &[])["address"], "10.77.0.4");
    let s = site.cli(&["status", "--json"]).ok().json();
    assert_eq!(s["devices"], json!({"active": 2, "suspended": 1, "revoked": 1, "blocked": 1}), "{s}");
    assert_eq!(s["tunnel"]["peers"], 3, "{s}");
}

#[test]
fn a_crashed_gateway_restarts_over_its_stale_socket() {
    let site = Site::new();
    let mut gateway = site.start();
    let device = add(&site, "laptop-1", "budi", &[]);
    gateway.crash();
    assert!(site.socket().exists(), "SIGKILL leaves the socket behind");
    site.cli(&["device", "list"]).refused(UNREACHABLE, "cannot reach the gateway");

    let again = site.start();
    assert_eq!(again.public_key, gateway.public_key);
    let devices = list(&site);
    assert_eq!(devices.iter().map(record).collect::<Vec<_>>(), [record(&device)], "the acknowledged add survived");
}

/// A SIGTERM the moment the gateway says it is ready is a clean stop, not the default fatal action: the signal
/// handlers are in place before the ready line, so the gateway exits with success and removes its socket. Five times
/// over, the signal sent as soon as the line is read.
#[test]
fn a_sigterm_right_after_ready_stops_cleanly() {
    let site = Site::new();
    for round in 0..5 {
        let mut child = command(&["run", "--userspace", "--config"])
            .arg(&site.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gateway starts");
        // Kept open until the gateway has exited, so that nothing it prints meets a closed pipe.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.by_ref().map_while(Result::ok).any(|line| line.starts_with("ready: "));
        assert!(ready, "round {round}: the gateway became ready");
        signal(&child, "TERM");
        let status = wait_for(&mut child, PATIENCE).expect("the gateway stops");
        assert!(status.success(), "round {round}: SIGTERM right after ready ended it with {status}");
        assert!(!site.socket().exists(), "round {round}: a clean stop removes the management socket");
        drop(lines);
    }
}

#[test]
fn a_second_gateway_on_the_same_state_dir_is_refused() {
    let site = Site::new();
    let gateway = site.start();
    add(&site, "laptop-1", "budi", &[]);

    let second = site.cli(&["run", "--userspace"]).expect(1);
    assert!(!second.stdout.contains("ready:"), "{second}");
    assert!(second.stderr.contains("in use by another process"), "says why: {second}");

    // The first one never noticed.
    assert!(site.socket().exists(), "the refused gateway left the running one's socket alone");
    assert_eq!(site.cli(&["status", "--json"]).ok().json()["public_key"], gateway.public_key.as_str());
    assert_eq!(add(&site, "laptop-2", "budi", &[])["address"], "10.77.0.3");
    assert_eq!(list(&site).len(), 2);
}

// ---------------------------------------------------------------------------------------------------------------------
// Files and permissions

#[test]
fn the_state_directory_and_everything_secret_in_it_are_private() {
    let site = Site::new();
    let gateway = site.start();
    assert_eq!(mode(&site.state), 0o700);
    let key_file = site.state.join("private.key");
    assert_eq!(mode(&key_file), 0o600);
    let key = fs::read_to_string(&key_file).unwrap();
    assert_eq!(public_of(key.trim()), gateway.public_key, "private.key is the key the gateway announced");
    if let Some(public) = wg_pubkey("the_state_directory_and_everything_secret_in_it_are_private", key.trim()) {
        assert_eq!(public, gateway.public_key, "wg reads private.key too");
    }
    let socket = site.socket();
    assert!(fs::metadata(&socket).unwrap().file_type().is_socket());
    assert_eq!(mode(&socket), 0o600);
}

#[test]
fn loose_permissions_stop_the_gateway_from_starting() {
    let site = Site::new();
    drop(site.start());
    fs::set_permissions(&site.state, fs::Permissions::from_mode(0o755)).unwrap();
    let out = site.cli(&["run", "--userspace"]).refused(1, "chmod 700");
    assert!(out.stderr.contains("0755"), "{out}");

    fs::set_permissions(&site.state, fs::Permissions::from_mode(0o700)).unwrap();
    let key_file = site.state.join("private.key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).unwrap();
    site.cli(&["run", "--userspace"]).refused(1, "chmod 600");
}

// ---------------------------------------------------------------------------------------------------------------------
// The management socket's protocol

/// A connection to the management socket for writing raw bytes and reading reply lines.
fn raw_socket(gateway: &Gateway) -> (UnixStream, BufReader<UnixStream>) {
    let stream = UnixStream::connect(&gateway.socket).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    (stream.try_clone().unwrap(), BufReader::new(stream))
}

#[test]
fn a_malformed_request_gets_an_invalid_reply_and_the_connection_goes_on() {
    let site = Site::new();
    let gateway = site.start();
    let (mut writer, mut reader) = raw_socket(&gateway);
    let mut reply = || -> Value {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the gateway closed the connection");
        assert!(line.ends_with('\n'), "{line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    };

    // Two requests in one write: one reply per line, in order.
    writer.write_all(b"this is not json\n{\"op\":\"status\"}\n").unwrap();
    let refused = reply();
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["kind"], "invalid", "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("not a request"), "{refused}");
    assert!(refused.get("result").is_none(), "{refused}");
    let status = reply();
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["result"]["public_key"], gateway.public_key.as_str(), "{status}");

    for (line, kind) in [
        (r#"{"op":"reboot"}"#, "invalid"),
        (r#"{"op":"device_show","name":"laptop-1","extra":1}"#, "invalid"),
        (r#"{"op":"device_show","name":"../etc/passwd"}"#, "invalid"),
        (r#"{"op":"device_add","name":"x","user":"y","address":null,"public_key":"nonsense"}"#, "invalid"),
        (r#"{"op":"device_show","name":"laptop-9"}"#, "not_found"),
        ("[]", "invalid"),
        ("", "invalid"),
    ] {
        writer.write_all(format!("{line}\n").as_bytes()).unwrap();
        let answer = reply();
        assert_eq!((&answer["ok"], &answer["error"]["kind"]), (&json!(false), &json!(kind)), "{line}: {answer}");
    }
    writer.write_all(b"{\"op\":\"device_add\",\"name\":\"laptop-1\",\"user\":\"budi\"}\n").unwrap();
    let added = reply();
    assert_eq!(added["result"]["address"], "10.77.0.2", "missing optional fields are null: {added}");
    writer.write_all(b"{\"op\":\"device_list\"}\n").unwrap();
    assert_eq!(reply()["result"].as_array().map(Vec::len), Some(1));

    // A line beyond the limit is refused, and that connection ends; the next one is served.
    let mut long = vec![b' '; 70 * 1024];
    long.push(b'\n');
    writer.write_all(&long).unwrap();
    let too_long = reply();
    assert_eq!(too_long["error"]["kind"], "invalid", "{too_long}");
    assert!(too_long["error"]["message"].as_str().unwrap().contains("at most"), "{too_long}");
    let mut rest = String::new();
    let closed = reader.read_line(&mut rest);
    // Linux reports the unread rest of the line as a reset once the data before it is read.
    let reset = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionReset;
    assert!(
        matches!(&closed, Ok(0)) || closed.as_ref().is_err_and(reset),
        "the connection is closed after an oversized line: {closed:?} {rest:?}"
    );
    assert_eq!(site.cli(&["status", "--json"]).ok().json()["devices"]["active"], 1);
}

// ---------------------------------------------------------------------------------------------------------------------
// Commands that need no gateway

#[test]
fn check_config_accepts_the_example_and_names_mistakes() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/gateway.toml");
    let example = example.to_str().unwrap();
    let out = execute(command(&["check-config", example])).ok();
    assert_eq!(out.stdout, format!("{example}: valid\n"), "{out}");
    let out = execute(command(&["check-config", example, "--json"])).ok();
    assert_eq!(out.json(), json!({"file": example, "valid": true}), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.toml");
    fs::write(&unknown, "[tunnel]\nlisten = \"0.0.0.0:51820\"\ncolour = \"red\"\n").unwrap();
    let unknown = unknown.to_str().unwrap();
    execute(command(&["check-config", unknown])).refused(INVALID, "unknown field `colour`");
    let out = execute(command(&["check-config", unknown, "--json"])).expect(INVALID);
    let verdict = out.json();
    assert_eq!(verdict["valid"], false, "{out}");
    assert_eq!(verdict["file"], unknown, "{out}");
    assert!(verdict["error"].as_str().unwrap().contains("unknown field `colour`"), "{out}");

    let outside = dir.path().join("outside.toml");
    fs::write(&outside, "[tunnel]\naddress = \"10.78.0.1\"\n").unwrap();
    execute(command(&["check-config", outside.to_str().unwrap()])).refused(INVALID, "not inside tunnel.network");
    let missing = dir.path().join("missing.toml");
    execute(command(&["check-config", missing.to_str().unwrap()])).refused(INVALID, "missing.toml");

    // The same checks stop `run` before it binds anything, and the admin commands before they connect.
    let bad = Site::with_config("[tunnel]\nlisten = \"127.0.0.1:0\"\ncolour = \"red\"\n");
    bad.cli(&["run", "--userspace"]).refused(INVALID, "unknown field `colour`");
    assert!(!bad.state.exists(), "a bad config created no state");
    bad.cli(&["device", "list"]).refused(INVALID, "unknown field `colour`");
}

#[test]
fn check_config_reads_the_files_the_config_names_as_run_does() {
    // The example's [upstream], uncommented as an admin would, with a CA file that is not there (yet).
    let site = Site::with_config("[tunnel]\nlisten = \"127.0.0.1:0\"\n");
    let ca = site.path("upstream-ca.pem");
    let upstream = format!("[upstream]\nurl = \"https://127.0.0.1:8100\"\nca = {:?}\n", ca.to_str().unwrap());
    fs::OpenOptions::new().append(true).open(&site.config).unwrap().write_all(upstream.as_bytes()).unwrap();
    let config = site.config.to_str().unwrap();
    let want = format!("upstream: reading ca {}", ca.display());
    execute(command(&["check-config", config])).refused(INVALID, &want);
    let verdict = execute(command(&["check-config", config, "--json"])).expect(INVALID).json();
    assert!(verdict["error"].as_str().unwrap().starts_with(&want), "{verdict}");
    // `run` refuses it with the same words, before it makes any state.
    let run = site.cli(&["run", "--userspace"]);
    assert!(run.code != Some(0) && run.stderr.contains(&want), "{run}");
    assert!(!site.state.exists(), "a config refused created no state");
}

#[test]
fn nft_print_ruleset_prints_the_tun_mode_table_without_root() {
    let out = execute(command(&["nft", "--print-ruleset"])).ok();
    let ruleset = out.json();
    let objects = ruleset["nftables"].as_array().unwrap_or_else(|| panic!("no nftables array: {out}"));
    let added = |kind: &str| -> Vec<&Value> { objects.iter().filter_map(|o| o["add"].get(kind)).collect() };
    let tables = added("table");
    assert!(tables.iter().any(|t| t["family"] == "inet" && t["name"] == "simpul"), "{out}");
    let rules = added("rule");
    assert!(!rules.is_empty(), "{out}");
    assert!(rules.iter().all(|r| r["table"] == "simpul" && r["family"] == "inet"), "{out}");
    let matches_port = |rule: &Value, port: u16| {
        rule["expr"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["match"]["left"]["payload"]["field"] == "dport" && e["match"]["right"] == port)
    };
    let api_rule =
        rules.iter().find(|r| matches_port(r, 8000)).unwrap_or_else(|| panic!("no rule for port 8000: {out}"));
    assert!(api_rule.to_string().contains("\"10.77.0.1\""), "{api_rule}");
    assert!(api_rule["expr"].as_array().unwrap().iter().any(|e| e.get("accept").is_some()), "{api_rule}");
    assert!(out.stdout.contains("\"simpul0\""), "{out}");

    // The config's port and interface.
    let site =
        Site::with_config("[tunnel]\ninterface = \"wg-kominfo\"\naddress = \"10.77.0.254\"\n[api]\nport = 8123\n");
    let out = site.cli(&["nft", "--print-ruleset"]).ok();
    let ruleset = out.json();
    let rules: Vec<&Value> =
        ruleset["nftables"].as_array().unwrap().iter().filter_map(|o| o["add"].get("rule")).collect();
    assert!(rules.iter().any(|r| matches_port(r, 8123)), "{out}");
    assert!(!rules.iter().any(|r| matches_port(r, 8000)), "{out}");
    assert!(out.stdout.contains("\"wg-kominfo\"") && !out.stdout.contains("simpul0"), "{out}");
    assert!(out.stdout.contains("\"10.77.0.254\""), "{out}");
    assert!(!site.state.exists(), "printing the ruleset touched no state");

    execute(command(&["nft"])).usage_error("--print-ruleset");
}

#[test]
fn help_lists_the_exit_codes() {
    let out = execute(command(&["--help"])).ok();
    for code in [
        "0 success",
        "1 conflict",
        "2 invalid",
        "3 not found (no such device, user, institution or record)",
        "4 cannot reach the gateway",
        "5 the gateway (or the CLI) failed",
    ] {
        assert!(out.stdout.contains(code), "--help does not list {code:?}: {out}");
    }
    execute(command(&["device", "frobnicate"])).usage_error("unrecognized subcommand");
}

#[test]
fn a_request_line_that_is_not_utf8_gets_an_invalid_reply_and_the_connection_goes_on() {
    let site = Site::new();
    let gateway = site.start();
    let (mut writer, mut reader) = raw_socket(&gateway);
    writer.write_all(b"\xff\xfe\n{\"op\":\"status\"}\n").unwrap();
    let mut replies = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap_or(0);
        assert!(n > 0, "the gateway hung up after a non-UTF-8 line; replies so far: {replies:?}");
        replies.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(replies[0]["error"]["kind"], "invalid", "{replies:?}");
    assert_eq!(replies[1]["result"]["public_key"], gateway.public_key.as_str(), "{replies:?}");
}

#[test]
fn a_failing_stdout_is_an_error_not_a_panic() {
    let mut nft = command(&["nft", "--print-ruleset"]);
    nft.stdout(File::create("/dev/full").expect("/dev/full")).stderr(Stdio::piped());
    let out = nft.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "writing to a full device succeeded");
    assert_ne!(out.status.code(), Some(101), "it panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The root of the tree is made from the node of the largest perfect subtree at its start: change it, and the log no
/// longer hashes to what its checkpoints signed.
fn flip_top_node(state: &Path) {
    let db = simpul_ledger::database::open(state.join("db")).unwrap();
    let size = db.open_tree("audit_records").unwrap().len() as u64;
    let level = 63 - size.leading_zeros() as u8;
    let nodes = db.open_tree("audit_nodes").unwrap();
    let mut key = [0u8; 9];
    key[0] = level;
    let mut hash = nodes.get(key).unwrap().expect("the top node").to_vec();
    hash[0] ^= 1;
    nodes.insert(key, hash).unwrap();
    db.flush().unwrap();
}

/// `audit verify` works on a stopped gateway's database (a gateway refuses to start over a log that no longer
/// extends its newest checkpoint, and the admin must still be able to see why), and a damaged log is named there
/// and refused at start, with the exit codes the help gives.
#[test]
fn audit_verify_reads_a_stopped_gateway_and_a_damaged_log_is_refused_at_start() {
    let site = Site::new();
    let mut gateway = site.start();
    add(&site, "laptop-1", "budi", &[]);
    site.cli(&["audit", "checkpoint", "--out", site.path("kept.txt").to_str().unwrap()]).ok();
    let running = site.cli(&["audit", "verify", "--json"]).ok().json();
    assert_eq!(running["problem"], Value::Null, "{running}");
    let records = running["records"].as_u64().unwrap();
    assert!(records >= 6, "registering and adding a device are admin records: {running}");
    assert!(gateway.stop().success());

    let stopped =
        site.cli(&["audit", "verify", "--json", "--from-checkpoint", site.path("kept.txt").to_str().unwrap()]);
    let stopped = stopped.ok();
    assert!(stopped.stderr.contains("does not answer"), "{stopped}");
    let verification = stopped.json();
    assert_eq!(verification["problem"], Value::Null, "{verification}");
    assert_eq!(verification["records"], records);
    assert!(verification["checkpoints"].as_u64().unwrap() >= 1);

    flip_top_node(&site.state);
    let bad = site.cli(&["audit", "verify"]);
    assert_eq!(bad.code, Some(6), "{bad}");
    assert!(bad.stderr.contains("FAILED") && bad.stderr.contains("tree node"), "{bad}");
    let refused = command(&["run", "--userspace", "--config"]).arg(&site.config).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("audit verify"), "the refusal says what to run: {message}");
}

// ---------------------------------------------------------------------------------------------------------------------
// Tampering with a stopped gateway's files, as someone with the disk would.

/// Every place `needle` occurs in the files under `dir`, by file and offset, in file order.
fn occurrences(dir: &Path, needle: &[u8]) -> Vec<(PathBuf, usize)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = fs::read(&path).unwrap();
            found.extend(
                bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| (path.clone(), i)),
            );
        }
    }
    found.sort();
    found
}

/// Every file under `dir` with its bytes, by path.
fn every_file(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.insert(path.clone(), fs::read(&path).unwrap());
        }
    }
    files
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

/// A gateway's state directory, stopped, with `changes` admin records after registration (each its own batch),
/// and a checkpoint an auditor kept after the first few.
struct Stopped {
    site: Site,
    records: u64,
}

fn stopped_gateway(changes: usize) -> Stopped {
    use simpul_gateway::admin::user::{UserDisable, UserEnable};
    use simpul_gateway::control::Client;
    let site = Site::new();
    let mut gateway = site.start();
    site.cli(&["audit", "checkpoint", "--out", site.path("kept.txt").to_str().unwrap()]).ok();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = Client::connect(&site.socket()).await.unwrap();
        for i in 0..changes {
            let id = "budi".parse().unwrap();
            if i % 2 == 0 {
                client.call(UserDisable { id }).await.unwrap();
            } else {
                client.call(UserEnable { id }).await.unwrap();
            }
        }
    });
    let records = site.cli(&["audit", "verify", "--json"]).ok().json()["records"].as_u64().unwrap();
    assert!(gateway.stop().success());
    Stopped { site, records }
}

/// What `audit verify --json` on a copy of `stopped`'s state directory, damaged by `damage`, says, and whether
/// `run` refuses that copy (with its message).
fn tampered(stopped: &Stopped, name: &str, damage: impl FnOnce(&Path)) -> (Out, Option<String>) {
    let copy = Site::with_config(&format!("[tunnel]\nlisten = \"127.0.0.1:0\"\nendpoint = \"{ENDPOINT}\"\n"));
    fs::remove_dir_all(copy.dir.path().join("state")).ok();
    copy_tree(&stopped.site.state, &copy.state);
    damage(&copy.state);
    let before = every_file(&copy.state);
    let verified = copy.cli(&["audit", "verify", "--json"]);
    if verified.code != Some(OK) {
        // A failed verification is a JSON error too, with its exit code.
        assert_eq!(json_of(&verified)["problem"], json_of(&verified)["error"], "{name}: {verified}");
    }
    assert!(every_file(&copy.state) == before, "{name}: verifying a stopped gateway changed its files");
    let stderr = tempfile::tempfile().unwrap();
    let mut run = command(&["run", "--userspace", "--config"])
        .arg(&copy.config)
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .unwrap();
    // A gateway that starts runs until stopped: a refusal is an exit within PATIENCE.
    let Some(status) = wait_for(&mut run, PATIENCE) else {
        let _ = run.kill();
        let _ = run.wait();
        panic!("{name}: the gateway started on a damaged copy (it should have refused); verify said {verified}");
    };
    let refusal = (!status.success()).then(|| read_all(stderr));
    (verified, refusal)
}

/// Flips one byte inside every copy sled's files hold of the text `needle` (a page is written again each time sled
/// consolidates it, so a record or note can stand in several places, most of them superseded): damage to a
/// superseded copy alone changes nothing sled reads, so it is not damage to the log.
fn flip_every_copy(state: &Path, needle: &str, into: usize) {
    let found = occurrences(&state.join("db"), needle.as_bytes());
    assert!(!found.is_empty(), "{needle:?} is not in the files");
    for (path, at) in found {
        flip_byte(&path, at + into);
    }
}

/// The text each record of sequence number `seq` begins with.
fn record_marker(seq: u64) -> String {
    format!("{{\"v\":2,\"seq\":{seq},\"at\":\"")
}

/// Where sled first wrote record `seq` (the message that inserted it).
fn first_copy_of_record(state: &Path, seq: u64) -> (PathBuf, usize) {
    let found = occurrences(&state.join("db"), record_marker(seq).as_bytes());
    found.into_iter().next().unwrap_or_else(|| panic!("record {seq} is not in the files"))
}

#[test]
fn a_damaged_or_shortened_log_is_named_by_verify_and_refused_at_start_small_and_large() {
    for changes in [30usize, 1500] {
        let stopped = stopped_gateway(changes);
        let n = stopped.records;
        assert!(n as usize >= changes + 5, "registration (an institution, four users) and changes are records: {n}");

        // An untouched copy verifies and starts.
        let copy = Site::new();
        fs::remove_dir_all(&copy.state).ok();
        copy_tree(&stopped.site.state, &copy.state);
        let clean = copy
            .cli(&["audit", "verify", "--json", "--from-checkpoint", stopped.site.path("kept.txt").to_str().unwrap()])
            .ok()
            .json();
        assert_eq!(
            (clean["problem"].clone(), clean["records"].as_u64(), clean["acknowledged"].as_u64()),
            (Value::Null, Some(n), Some(n)),
            "{clean}"
        );
        drop(copy.start());

        for (what, seq) in [("the newest record", n - 1), ("a middle record", n / 2)] {
            let (verified, refusal) = tampered(&stopped, what, |state| {
                // Inside the record's time, past the marker.
                flip_every_copy(state, &record_marker(seq), record_marker(seq).len() + 3);
            });
            assert_eq!(verified.code, Some(6), "{what} ({changes}): {verified}");
            let v = verified.json();
            let refusal = refusal.unwrap();
            assert_eq!(v["bad_record"].as_u64(), Some(seq), "{what} ({changes}): {v}");
            if v["records"] == 0 {
                // Damage in an older part of sled's log, which sled then will not open at all (or panics on): the
                // record is named from the raw files against the leaf hashes the tip keeps.
                let problem = v["problem"].as_str().unwrap();
                assert!(
                    problem.contains(&format!("record {seq} is the first acknowledged record with no intact copy")),
                    "{v}"
                );
                assert!(refusal.contains("cannot be opened") && refusal.contains("backup"), "{refusal}");
                continue;
            }
            assert_eq!(v["acknowledged"].as_u64(), Some(n), "{v}");
            let problem = v["problem"].as_str().unwrap();
            assert!(problem.contains(&format!("records {seq}..={}", n - 1)), "{what}: {problem}");
            assert!(!problem.contains("offset"), "records are named, not file offsets: {problem}");
            for part in [format!("holds {seq} records but acknowledged {n}"), "backup".into(), "evidence".into()] {
                assert!(refusal.contains(&part), "{what}: the refusal says {part:?}: {refusal}");
            }
        }

        // The tip deleted, or emptied: a log that has kept one is not checked without it.
        for (what, damage) in [("deleted", true), ("emptied", false)] {
            let (verified, refusal) = tampered(&stopped, what, |state| {
                let tip = state.join("audit.tip");
                if damage {
                    fs::remove_file(tip).unwrap();
                } else {
                    OpenOptions::new().write(true).open(tip).unwrap().set_len(0).unwrap();
                }
            });
            assert_eq!(verified.code, Some(6), "tip {what} ({changes}): {verified}");
            assert!(verified.json()["problem"].as_str().unwrap().contains("audit.tip"), "{verified}");
            assert!(refusal.unwrap().contains("tip file"), "tip {what} ({changes})");
        }

        // The newest signed checkpoint (written at the clean stop, after every record).
        let (verified, refusal) = tampered(&stopped, "the newest checkpoint", |state| {
            let tip = simpul_ledger::tip::Tip::read(&state.join("audit.tip")).unwrap().unwrap();
            let note = tip.checkpoint.unwrap();
            let signature = note.lines().last().unwrap().rsplit(' ').next().unwrap();
            flip_every_copy(state, signature, 10);
        });
        assert_eq!(verified.code, Some(6), "checkpoint ({changes}): {verified}");
        let problem = verified.json()["problem"].as_str().unwrap().to_owned();
        assert!(problem.contains(&format!("checkpoint at size {n}")), "{problem}");
        assert!(refusal.unwrap().contains(&format!("checkpoint at size {n}")));

        // The last records cut off the end of the database file, from where the third newest was written.
        let (verified, refusal) = tampered(&stopped, "the cut end", |state| {
            let (path, at) = first_copy_of_record(state, n - 3);
            OpenOptions::new().write(true).open(&path).unwrap().set_len(at as u64 - 64).unwrap();
        });
        assert_eq!(verified.code, Some(6), "cut ({changes}): {verified}");
        let v = verified.json();
        let refusal = refusal.unwrap();
        let named = v["bad_record"].as_u64().unwrap_or_else(|| panic!("cut ({changes}): a record is named: {v}"));
        if changes > 100 {
            // sled reuses the space of older segments, so in a large database the cut also takes the only copies of
            // some older records (file order is not time order): the first of those is named, from the raw files.
            assert!(named <= n - 3, "cut ({changes}): {v}");
            assert!(
                v["problem"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("record {named} is the first acknowledged record with no intact copy")),
                "{v}"
            );
            assert!(refusal.contains("backup"), "cut ({changes}): {refusal}");
            continue;
        }
        assert_eq!(named, n - 3, "cut ({changes}): {v}");
        assert!(refusal.contains(&format!("holds {} records but acknowledged {n}", n - 3)), "cut ({changes})");
    }
}

/// A state directory written by the gateway before record format 2 and the tip (committed under tests/fixtures,
/// made by commit 089f208's code: institution, users, a device, requests through a tunnel, a kept checkpoint): it
/// verifies as it is, the gateway upgrades it in place (store sealed, tip made) and extends the old log with new
/// records, and the checkpoint kept before the upgrade is still extended by the log.
#[test]
fn a_log_written_in_format_1_still_verifies_and_is_extended() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let site = Site::new();
    copy_tree(&fixture.join("audit-v1"), &site.state);
    // git keeps no modes: give the state directory and its keys theirs.
    for (path, mode) in [(site.state.clone(), 0o700), (site.state.join("audit-days"), 0o700)] {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
    for key in ["audit.key", "subject.key", "private.key", "audit-days/2026-07-15.key"] {
        fs::set_permissions(site.state.join(key), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let kept = fixture.join("audit-v1.checkpoint");
    let kept = kept.to_str().unwrap();
    let operator_nik = "3374041003870006";
    assert!(!occurrences(&site.state, operator_nik.as_bytes()).is_empty(), "format 1 kept the operator's NIK in clear");

    let before = site.cli(&["audit", "verify", "--json", "--from-checkpoint", kept]).ok().json();
    assert_eq!(
        (before["problem"].clone(), before["records"].as_u64(), before["acknowledged"].clone()),
        (Value::Null, Some(54), Value::Null),
        "{before}"
    );

    let mut gateway = site.start();
    add(&site, "laptop-after", "budi", &[]);
    let after = site.cli(&["audit", "verify", "--json", "--from-checkpoint", kept]).ok().json();
    assert_eq!(after["problem"], Value::Null, "{after}");
    assert_eq!(after["consistent_with"].as_u64(), Some(54), "{after}");
    let records = site.cli(&["audit", "search", "--json"]).ok().json();
    let records = records.as_array().unwrap();
    assert_eq!(records.len() as u64, after["records"].as_u64().unwrap());
    assert!(records[..54].iter().all(|r| r["v"] == 1), "the old records are as they were");
    let new: Vec<&Value> = records[54..].iter().collect();
    assert!(!new.is_empty() && new.iter().all(|r| r["v"] == 2), "{new:?}");
    assert_eq!(new.last().unwrap()["admin"]["actor"]["kind"], "cli");
    // The old users still log in (the store's upgrade sealed them, keeping what they were).
    let budi = site.cli(&["user", "show", "budi", "--json"]).ok().json();
    assert_eq!(budi["nik"], operator_nik);
    assert!(gateway.stop().success());
    // Started again over its own tip.
    let restarted = site.start();
    drop(restarted);
    let last = site.cli(&["audit", "verify", "--json", "--from-checkpoint", kept]).ok().json();
    assert_eq!(
        (last["problem"].clone(), last["acknowledged"].clone()),
        (Value::Null, last["records"].clone()),
        "{last}"
    );
}

// ---------------------------------------------------------------------------------------------------------------------
// What an admin's script relies on: help, JSON, exit codes, the default config, status, search

impl Site {
    /// `simpul-gateway ARGS --config <site>/gw.toml` with `stdin` (and a newline) as its standard input.
    fn cli_with(&self, args: &[&str], stdin: &str) -> Out {
        let output = common::cli_with_stdin(&self.config, args, stdin);
        Out {
            what: format!("{BIN} {} --config {}", args.join(" "), self.config.display()),
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8"),
        }
    }
}

/// The entries of one section (`Commands:`, `Arguments:`, `Options:`) of clap's help output: (name, help text).
/// An entry starts at most 6 columns in (`  -h, --help`, `      --json`, `  <FILE>`, `  device`); its text follows on
/// its line, or on the more indented lines below it (clap's next-line layout, and `[env: …]`, `[default: …]`).
fn help_entries(help: &str, section: &str) -> Vec<(String, String)> {
    let lines = help.lines().skip_while(|l| *l != section).skip(1).take_while(|l| l.is_empty() || l.starts_with(' '));
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let body = line.trim_start();
        if line.len() - body.len() <= 6 {
            let (name, text) = body.split_once("  ").unwrap_or((body, ""));
            entries.push((name.trim().to_owned(), text.trim().to_owned()));
        } else if let Some((_, text)) = entries.last_mut() {
            // Notes clap adds are not help text.
            if !(body.starts_with("[env: ") || body.starts_with("[default: ") || body.starts_with("[possible values: "))
            {
                text.push_str(body);
            }
        }
    }
    entries
}

#[test]
fn every_command_and_every_flag_has_help() {
    let mut stack = vec![Vec::<String>::new()];
    let mut commands = 0;
    while let Some(path) = stack.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = execute(command(&args)).ok();
        let about = out.stdout.lines().next().unwrap_or_default();
        assert!(
            !about.trim().is_empty() && !about.starts_with("Usage:"),
            "`{}` has no description: {out}",
            path.join(" ")
        );
        for section in ["Arguments:", "Options:"] {
            for (name, text) in help_entries(&out.stdout, section) {
                assert!(!text.is_empty(), "`{} {name}` has no help text: {out}", path.join(" "));
            }
        }
        for (name, text) in help_entries(&out.stdout, "Commands:") {
            assert!(!text.is_empty(), "`{} {name}` has no help text: {out}", path.join(" "));
            if name != "help" {
                stack.push(path.iter().cloned().chain([name]).collect());
            }
        }
        commands += 1;
    }
    // The tree was walked, not just the top: run, check-config, nft, status, admin-log, and every group's commands.
    assert!(commands > 40, "only {commands} commands were walked");
    // The walk can fail: an entry without text is found.
    let bare = "Options:\n      --json\n  -h, --help  Print help\n";
    assert_eq!(
        help_entries(bare, "Options:"),
        [("--json".into(), String::new()), ("-h, --help".into(), "Print help".into())]
    );
}

/// Parses a `--json` answer or error and checks that an error's `exit` is the process's exit code.
fn json_of(out: &Out) -> Value {
    let value = out.json();
    match out.code {
        Some(OK) => assert!(value.get("error").is_none(), "a success reported an error: {out}"),
        code => {
            assert_eq!(
                value["exit"].as_i64().map(|c| c as i32),
                code,
                "the JSON exit code is not the process's: {out}"
            );
            assert!(value["error"].as_str().is_some_and(|e| !e.is_empty()), "no error text: {out}");
        }
    }
    value
}

#[test]
fn every_admin_command_answers_json_and_every_error_is_json() {
    let site = Site::new();
    // `run --json` announces readiness as one JSON line.
    let stderr = File::create(site.path("json-run.stderr")).unwrap();
    let mut run = command(&["run", "--userspace", "--json", "--config"])
        .arg(&site.config)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(run.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready is not JSON ({e}): {line:?}"));
    assert_eq!((ready["ready"].as_bool(), ready["mode"].as_str()), (Some(true), Some("userspace")), "{ready}");
    assert_eq!(ready["control_socket"].as_str().map(PathBuf::from), Some(site.socket()), "{ready}");
    signal(&run, "TERM");
    assert!(wait_for(&mut run, PATIENCE).is_some_and(|s| s.success()), "run --json did not stop cleanly");

    let _gateway = site.start();
    let kept = site.path("kept.txt");
    let proof = site.path("record-0.tlog-proof");
    let consistency = site.path("consistency.txt");
    let report = site.path("report");
    let export = site.path("export.jsonl");
    let wg = site.path("laptop-1.conf");
    let [kept, proof, consistency, report, export, wg] =
        [&kept, &proof, &consistency, &report, &export, &wg].map(|p| p.to_str().unwrap().to_owned());
    let pw = common::PASSWORD;
    #[rustfmt::skip]
    let answers: Vec<(Vec<&str>, &str)> = vec![
        (vec!["status"], ""),
        (vec!["admin-log"], ""),
        (vec!["nft", "--print-ruleset"], ""),
        (vec!["institution", "list"], ""),
        (vec!["institution", "show", common::INSTITUTION], ""),
        (vec!["institution", "update", common::INSTITUTION, "--daily-quota", "5000"], ""),
        (vec!["institution", "suspend", common::INSTITUTION, "--reason", "monev"], ""),
        (vec!["institution", "resume", common::INSTITUTION], ""),
        (vec!["institution", "add", "--id", "LAIN-3375", "--name", "Dinas Lain", "--region", "33.75", "--agreement",
              "1/PKS", "--valid-from", "2020-01-01", "--valid-until", "2099-12-31", "--methods", "CALL_NIK", "--elements", "NIK",
              "--daily-quota", "10", "--upstream-consumer", "LAIN", "--upstream-user", "lain",
              "--upstream-password-stdin"], "rahasia-hulu"),
        (vec!["user", "list"], ""),
        (vec!["user", "show", "budi"], ""),
        (vec!["user", "update", "budi", "--position", "Kepala Seksi"], ""),
        (vec!["user", "disable", "budi"], ""),
        (vec!["user", "enable", "budi"], ""),
        (vec!["user", "passwd", "budi", "--password-stdin"], pw),
        (vec!["user", "add", "--id", "ani", "--institution", "LAIN-3375", "--name", "Ani", "--nik",
              "3374041003870006", "--nip", "198703102010011001", "--position", "Staf", "--office-region", "33.75",
              "--application-user", "ani", "--password-stdin"], pw),
        (vec!["device", "add", "--name", "laptop-1", "--user", "budi"], ""),
        (vec!["device", "list"], ""),
        (vec!["device", "show", "laptop-1"], ""),
        (vec!["device", "suspend", "laptop-1"], ""),
        (vec!["device", "resume", "laptop-1"], ""),
        (vec!["device", "export", "laptop-1"], ""),
        (vec!["device", "export", "laptop-1", "--output", &wg], ""),
        (vec!["audit", "key"], ""),
        (vec!["audit", "checkpoint", "--out", &kept], ""),
        (vec!["audit", "verify"], ""),
        (vec!["audit", "prove", "0", "--out", &proof], ""),
        (vec!["audit", "check-proof", &proof], ""),
        (vec!["device", "revoke", "laptop-1"], ""),
        (vec!["audit", "consistency", "--from-checkpoint", &kept, "--out", &consistency], ""),
        (vec!["audit", "check-consistency", &consistency], ""),
        (vec!["audit", "search", "--institution", common::INSTITUTION], ""),
        (vec!["audit", "export", "--format", "jsonl", "--out", &export], ""),
        (vec!["audit", "report", "--semester", "2026-2", "--out", &report], ""),
        (vec!["audit", "retain"], ""),
        (vec!["cache", "stats"], ""),
        (vec!["cache", "off"], ""),
        (vec!["cache", "on"], ""),
        (vec!["cache", "rekey"], ""),
        (vec!["cache", "purge", "--nik", "3374041003870006"], ""),
        (vec!["cache", "purge", "--nik", "-"], "3374041003870006"),
        (vec!["cache", "purge", "--kk", "3374040101200001"], ""),
        (vec!["cache", "purge", "--institution", common::INSTITUTION], ""),
        (vec!["cache", "purge", "--all"], ""),
    ];
    for (args, stdin) in &answers {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let out = site.cli_with(&args, stdin).ok();
        json_of(&out);
    }
    json_of(&execute(command(&["check-config", site.config.to_str().unwrap(), "--json"])).ok());
    // What the JSON answers say, read as the API's own types.
    use simpul_gateway::admin::device::{DeviceView, ExportView};
    use simpul_gateway::admin::institution::InstitutionView;
    let shown: InstitutionView =
        serde_json::from_value(site.cli(&["institution", "show", "LAIN-3375", "--json"]).ok().json()).unwrap();
    assert_eq!(shown.upstream.user_id, "lain");
    let text = site.cli(&["institution", "show", "LAIN-3375", "--json"]).ok().stdout;
    assert!(!text.contains("rahasia-hulu") && text.contains("\"***\""), "the upstream password shows: {text}");
    let device: DeviceView =
        serde_json::from_value(site.cli(&["device", "show", "laptop-1", "--json"]).ok().json()).unwrap();
    assert_eq!(device.device.status.to_string(), "revoked");
    let exported: Vec<Value> =
        fs::read_to_string(&export).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!exported.is_empty());
    site.cli(&["device", "add", "--name", "laptop-2", "--user", "budi"]).ok();
    let exported: ExportView =
        serde_json::from_value(site.cli(&["device", "export", "laptop-2", "--json"]).ok().json()).unwrap();
    assert!(exported.wg_quick.contains("[Interface]"), "{exported:?}");

    // Every kind of error, as JSON with its exit code.
    #[rustfmt::skip]
    let errors: Vec<(Vec<&str>, &str, i32)> = vec![
        (vec!["device", "show", "laptop-9"], "", NOT_FOUND),
        (vec!["device", "add", "--name", "laptop-2", "--user", "budi"], "", CONFLICT),
        (vec!["device", "add", "--name", "x", "--user", "budi", "--public-key", "nope"], "", INVALID),
        (vec!["device", "export", "laptop-9"], "", NOT_FOUND),
        (vec!["user", "show", "nobody"], "", NOT_FOUND),
        (vec!["user", "passwd", "budi", "--password-stdin"], "short", INVALID),
        (vec!["institution", "show", "NOPE"], "", NOT_FOUND),
        (vec!["institution", "suspend", common::INSTITUTION, "--reason", " "], "", INVALID),
        (vec!["audit", "prove", "999999", "--out", &proof], "", NOT_FOUND),
        (vec!["audit", "subject", "--nik", "123"], "", INVALID),
        (vec!["cache", "purge", "--nik", "123"], "", INVALID),
        (vec!["cache", "purge", "--kk", "-"], "12", INVALID),
        (vec!["cache", "purge", "--institution", "NOPE"], "", NOT_FOUND),
        (vec!["cache", "purge"], "", INVALID),
        (vec!["audit", "search", "--since", "yesterday"], "", INVALID),
        (vec!["audit", "report", "--semester", "2026-3", "--out", &report], "", INVALID),
        (vec!["device", "frobnicate"], "", INVALID),
        (vec!["user", "add", "--id", "x"], "", INVALID),
    ];
    for (args, stdin, code) in &errors {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let out = site.cli_with(&args, stdin).expect(*code);
        json_of(&out);
    }
    let bare = Site::new();
    let out = bare.cli(&["status", "--json"]).expect(UNREACHABLE);
    json_of(&out);
    let broken = site.path("broken.toml");
    fs::write(&broken, "[tunnel]\nnetwork = \"nonsense\"\n").unwrap();
    let out = execute({
        let mut c = command(&["status", "--json", "--config"]);
        c.arg(&broken);
        c
    })
    .expect(INVALID);
    json_of(&out);
}

#[test]
fn a_missing_user_is_not_a_missing_device_and_input_errors_come_most_basic_first() {
    let site = Site::new();
    let _gateway = site.start();
    site.cli(&["user", "show", "nobody"]).refused(NOT_FOUND, "no user nobody");
    site.cli(&["device", "add", "--name", "x", "--user", "nobody"]).refused(NOT_FOUND, "no user nobody");
    site.cli(&["institution", "show", "NOPE"]).refused(NOT_FOUND, "no institution NOPE");
    site.cli(&["audit", "subject", "--nik", "123"]).refused(INVALID, "--nik");
    site.cli(&["cache", "purge", "--nik", "123"]).refused(INVALID, "--nik");
    site.cli(&["cache", "purge", "--institution", "NOPE"]).refused(NOT_FOUND, "no institution NOPE");
    site.cli(&["cache", "purge", "--kk", "12"]).refused(INVALID, "--kk");
    #[rustfmt::skip]
    let user = |nik: &'static str| vec![
        "user", "add", "--id", "ani", "--institution", common::INSTITUTION, "--name", "Ani", "--nik", nik,
        "--nip", "198703102010011001", "--position", "Staf", "--office-region", "33.74",
        "--application-user", "ani", "--password-stdin",
    ];
    // A short password hides neither a wrong NIK nor a missing field; a good NIK with a short password names the
    // password; then comes an unknown institution.
    site.cli_with(&user("123"), "short").refused(INVALID, "NIK");
    let missing: Vec<&str> =
        user("3374041003870006").into_iter().filter(|a| *a != "--position" && *a != "Staf").collect();
    site.cli_with(&missing, "short").refused(INVALID, "--position is required");
    site.cli_with(&user("3374041003870006"), "short").refused(INVALID, "at least 10 characters");
    let elsewhere: Vec<&str> =
        user("3374041003870006").into_iter().map(|a| if a == common::INSTITUTION { "NOPE" } else { a }).collect();
    site.cli_with(&elsewhere, common::PASSWORD).refused(NOT_FOUND, "NOPE");
    site.cli_with(&["user", "passwd", "nobody", "--password-stdin"], "short").refused(NOT_FOUND, "no user nobody");
    // The help says what the codes mean, JSON errors included.
    let help = execute(command(&["--help"])).ok();
    assert!(help.stdout.contains("{\"error\": \"…\", \"exit\": N}"), "{help}");
    assert!(help.stdout.contains("/etc/simpul/gateway.toml"), "{help}");
}

#[test]
fn without_config_the_cli_reads_the_default_file_and_says_which() {
    let site = Site::new();
    let _gateway = site.start();
    let without = |default: Option<&Path>| {
        let mut c = command(&["status", "--json"]);
        if let Some(path) = default {
            c.env("SIMPUL_GATEWAY_DEFAULT_CONFIG", path);
        }
        execute(c)
    };
    let found = without(Some(&site.config)).ok();
    assert_eq!(found.json()["public_key"], _gateway.public_key.as_str(), "{found}");
    assert!(found.stderr.contains(&format!("config {} (the default", site.config.display())), "{found}");
    let missing = site.path("absent.toml");
    let out = without(Some(&missing));
    assert!(out.stderr.contains(&format!("no --config and no {}", missing.display())), "{out}");
    // The real default, whether this machine has the file or not.
    let real = without(None);
    let said = ["config /etc/simpul/gateway.toml (the default", "no --config and no /etc/simpul/gateway.toml"];
    assert!(said.iter().any(|s| real.stderr.contains(s)), "{real}");
    // An explicit --config is used without a word.
    let explicit = site.cli(&["status", "--json"]).ok();
    assert!(explicit.stderr.is_empty(), "{explicit}");
}

/// A TLS 1.3 server on loopback that completes handshakes and says nothing: what `status` probes. Returns its
/// address and its certificate's fingerprint.
fn tls_listener() -> (SocketAddr, String) {
    let identity = simpul_tls::Identity::self_signed(&[]).unwrap();
    let fingerprint = identity.fingerprint().to_string();
    let config = simpul_warehouse::tls::server_config(&identity, None).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move { acceptor.accept(tcp).await });
            }
        })
    });
    (addr, fingerprint)
}

#[test]
fn status_shows_whether_the_upstream_answers_and_the_audit_log() {
    use simpul_gateway::admin::gateway::StatusView;
    let (listening, fingerprint) = tls_listener();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let upstream = |at: SocketAddr, pin: &str| {
        format!("[tunnel]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"https://{at}\"\nfingerprint = \"{pin}\"\n")
    };
    let status_of =
        |site: &Site| -> StatusView { serde_json::from_value(site.cli(&["status", "--json"]).ok().json()).unwrap() };
    let up = Site::with_config(&upstream(listening, &fingerprint));
    let _gateway = up.start();
    up.cli(&["audit", "checkpoint"]).ok();
    let status = status_of(&up);
    let reached = status.upstream.expect("an upstream is configured");
    assert!(reached.reachable && reached.error.is_none(), "{reached:?}");
    assert!(status.audit.size > 0, "registration is in the log: {:?}", status.audit);
    assert!(status.audit.checkpoint_size.is_some_and(|n| n > 0 && n <= status.audit.size), "{:?}", status.audit);
    assert!(status.audit.checkpoint_age_seconds.is_some_and(|age| (0..60).contains(&age)), "{:?}", status.audit);
    let text = up.cli(&["status"]).ok().stdout;
    assert!(text.lines().any(|l| l.starts_with("upstream") && l.ends_with("reachable")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("audit") && l.contains("records, newest checkpoint covers")), "{text}");

    // The same server under another pin: the TCP connection is taken, but the certificate is not the one pinned,
    // so requests would fail, and status says why.
    let pinned_otherwise = Site::with_config(&upstream(listening, &"ab".repeat(32)));
    let _gateway = pinned_otherwise.start();
    let mismatch = status_of(&pinned_otherwise).upstream.expect("an upstream is configured");
    assert!(!mismatch.reachable, "{mismatch:?}");
    let said = mismatch.error.as_deref().unwrap_or_default();
    assert!(said.contains("fingerprint does not match the pinned one"), "{mismatch:?}");

    let down = Site::with_config(&upstream(closed, &fingerprint));
    let _gateway = down.start();
    let refused = status_of(&down).upstream.expect("an upstream is configured");
    assert!(!refused.reachable, "{refused:?}");
    assert!(refused.error.as_deref().is_some_and(|e| e.contains(&closed.to_string())), "{refused:?}");
    let text = down.cli(&["status"]).ok().stdout;
    assert!(text.lines().any(|l| l.starts_with("upstream") && l.contains("UNREACHABLE")), "{text}");
    // Without an upstream, status says so.
    let none = Site::new();
    let _gateway = none.start();
    assert_eq!(status_of(&none).upstream, None);
}

#[test]
fn audit_search_by_institution_finds_everything_done_to_it() {
    let site = Site::new();
    let _gateway = site.start();
    add(&site, "laptop-1", "budi", &[]);
    site.cli(&["device", "suspend", "laptop-1"]).ok();
    site.cli(&["user", "disable", "siti"]).ok();
    let actions = |args: &[&str]| -> Vec<(String, String)> {
        let mut args = args.to_vec();
        args.extend(["--json"]);
        let found = site.cli(&args).ok().json();
        let records = found.as_array().unwrap_or_else(|| panic!("{found}")).clone();
        records
            .iter()
            .filter_map(|r| {
                Some((r["admin"]["action"].as_str()?.to_owned(), r["admin"]["target"].as_str()?.to_owned()))
            })
            .collect()
    };
    let ours = actions(&["audit", "search", "--institution", common::INSTITUTION]);
    let has =
        |list: &[(String, String)], action: &str, target: &str| list.iter().any(|(a, t)| a == action && t == target);
    assert!(has(&ours, "institution.add", common::INSTITUTION), "{ours:?}");
    for user in common::USERS {
        assert!(has(&ours, "user.add", user), "{user}: {ours:?}");
    }
    for (action, target) in [("device.add", "laptop-1"), ("device.suspend", "laptop-1"), ("user.disable", "siti")] {
        assert!(has(&ours, action, target), "{action} {target}: {ours:?}");
    }
    let budi = actions(&["audit", "search", "--user", "budi"]);
    assert!(has(&budi, "user.add", "budi") && has(&budi, "device.add", "laptop-1"), "{budi:?}");
    assert!(!has(&budi, "user.add", "siti") && !has(&budi, "institution.add", common::INSTITUTION), "{budi:?}");
    let other = actions(&["audit", "search", "--institution", "LAIN-3375"]);
    assert!(other.is_empty(), "another institution's search finds these: {other:?}");
}
