//! `simpul-gateway device export`: the tunnel config an operator laptop imports into a stock WireGuard client, as a
//! wg-quick file or as a QR code of that same file.
//!
//! The file is the interoperability contract, so it only uses keys that every client understands: `wg-quick` on Linux
//! and the Windows and Android apps (whose parsers also read the QR code). It deliberately has no `DNS`: only the
//! gateway API is reachable through the tunnel, and a `DNS` line would send all of the laptop's lookups into it.
//!
//! Everything the caller passes in is validated before a byte is written, because a bad field does not fail here but
//! on the operator's laptop, far from anyone who can fix it, and because the device name is written into a file that
//! `wg-quick` runs as root (a newline in it could smuggle in a `PostUp` command).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ipnet::IpNet;
use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};

/// Error correction level L rather than M. The payload is a ~300-byte wg-quick file shown on a clean screen or a
/// fresh print-out, where the bigger modules of a smaller symbol help a phone camera more than redundancy does: such
/// a file needs version 11 (61 modules) at L but version 13 (69) at M, and at M a slightly longer endpoint already
/// reaches version 14, whose 81-column terminal rendering wraps in an 80-column terminal and no longer scans.
/// It is also what `qrencode`, the tool the WireGuard documentation uses for this, picks by default.
const EC_LEVEL: EcLevel = EcLevel::L;

/// The margin ISO/IEC 18004 requires around a QR symbol; scanners locate the finder patterns against it.
const QUIET_ZONE: usize = 4;

/// Big enough to print sharply at any size a phone can read, small enough to send over chat.
const PNG_MODULE_PX: usize = 8;

/// The WireGuard Windows client refuses anything below this, and it is the strictest of the clients.
const MIN_MTU: u16 = 576;

/// What a laptop needs to reach the gateway. Build one per export; nothing here is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Written as a comment at the top, so an operator with several files can tell which laptop one belongs to.
    pub device: String,
    /// The client's private key, base64.
    pub private_key: String,
    /// The device's tunnel address, exported as a /32 so the laptop routes nothing but the gateway into the tunnel.
    pub address: Ipv4Addr,
    /// The gateway's public key, base64.
    pub gateway_public_key: String,
    /// `host:port` the laptop dials: a DNS name, an IPv4 address, or an IPv6 address in brackets.
    pub endpoint: String,
    /// Normally only the gateway, 10.77.0.1/32: the API is all a device may reach.
    pub allowed_ips: Vec<IpNet>,
    /// Keeps the NAT mapping of a laptop behind a carrier or office NAT alive; 25 s is WireGuard's usual advice.
    pub persistent_keepalive: Option<u16>,
    /// For paths whose MTU is below the clients' default of 1420.
    pub mtu: Option<u16>,
}

/// By hand, so that a config that ends up in a log line or a panic message does not leak the device's private key.
impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("device", &self.device)
            .field("private_key", &"<redacted>")
            .field("address", &self.address)
            .field("gateway_public_key", &self.gateway_public_key)
            .field("endpoint", &self.endpoint)
            .field("allowed_ips", &self.allowed_ips)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .field("mtu", &self.mtu)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Names the field but never echoes the value, which may be a private key.
    #[error("{field} is not a WireGuard key: expected 44 characters of base64 encoding 32 bytes")]
    InvalidKey { field: &'static str },
    /// Printable ASCII only: control characters would break out of the comment line, and non-ASCII would leave the
    /// character set of the QR payload to each scanner's guess (byte mode carries no encoding).
    #[error("device name {0:?} must be non-empty printable ASCII")]
    InvalidDeviceName(String),
    #[error("endpoint {endpoint:?} is not usable: {reason}")]
    InvalidEndpoint { endpoint: String, reason: &'static str },
    #[error("AllowedIPs is empty, so the laptop would send nothing into the tunnel")]
    NoAllowedIps,
    /// Host bits usually mean a prefix length was mistyped, e.g. 10.77.0.1/16 for 10.77.0.1/32.
    #[error("AllowedIPs entry {0} has host bits set (the network would be {net})", net = .0.trunc())]
    AllowedIpsHostBits(IpNet),
    #[error("MTU {0} is below {MIN_MTU}, which the WireGuard Windows client rejects")]
    MtuTooSmall(u16),
    #[error("{len} bytes are too many for a QR code")]
    TooLongForQr { len: usize },
    #[error("cannot build the QR code")]
    Qr(#[source] QrError),
    #[error("cannot encode the PNG")]
    Png(#[from] png::EncodingError),
}

/// The wg-quick file. It holds the device's private key: the caller writes it with mode 0600 (wg-quick warns
/// otherwise) and names it `<ifname>.conf` with at most 15 characters of `[A-Za-z0-9_=+.-]`, which `wg-quick`
/// and the Windows client take as the tunnel name.
pub fn wg_quick(config: &ClientConfig) -> Result<String, ExportError> {
    validate(config)?;
    let mut lines = vec![
        format!("# Simpul device: {}", config.device),
        "[Interface]".to_owned(),
        format!("PrivateKey = {}", config.private_key),
        format!("Address = {}/32", config.address),
    ];
    if let Some(mtu) = config.mtu {
        lines.push(format!("MTU = {mtu}"));
    }
    let allowed_ips: Vec<String> = config.allowed_ips.iter().map(ToString::to_string).collect();
    lines.extend([
        String::new(),
        "[Peer]".to_owned(),
        format!("PublicKey = {}", config.gateway_public_key),
        format!("AllowedIPs = {}", allowed_ips.join(", ")),
        format!("Endpoint = {}", config.endpoint),
    ]);
    if let Some(keepalive) = config.persistent_keepalive {
        lines.push(format!("PersistentKeepalive = {keepalive}"));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

/// The QR code of `text` for a terminal, one character per module column and two module rows per line (▀ ▄ █ and
/// space), so a square module is about one character cell wide and half a cell tall, and a wg-quick file fits an
/// 80-column terminal.
///
/// Light modules, the quiet zone included, are the glyphs ("ink") and dark modules are blank cells. On the usual
/// light-on-dark terminal (and over SSH to the gateway that is what most admins see) the code then appears the way
/// scanners expect, dark on a light quiet zone; drawing dark modules as ink would show an inverted code there, which
/// many scanners never find. This is `qrencode -t utf8`'s choice. On a light-background terminal the code appears
/// inverted; export the PNG there. Plain text rather than ANSI colours, so the output survives being piped,
/// pasted or saved. Every line starts and ends with quiet-zone ink, so trimming trailing spaces changes nothing.
pub fn qr_terminal(text: &str) -> Result<String, ExportError> {
    let code = encode(text)?;
    let side = code.width() + 2 * QUIET_ZONE;
    let mut out = String::with_capacity((side + 1) * side.div_ceil(2) * '█'.len_utf8());
    for y in (0..side).step_by(2) {
        for x in 0..side {
            let top = is_light(&code, x, y);
            // The symbol plus quiet zone has an odd number of rows; the last line's lower half is background.
            let bottom = y + 1 < side && is_light(&code, x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// The QR code of `text` as an 8-bit grayscale PNG, black on white, for printing or sending.
pub fn qr_png(text: &str) -> Result<Vec<u8>, ExportError> {
    let code = encode(text)?;
    let modules = code.width() + 2 * QUIET_ZONE;
    let side = modules * PNG_MODULE_PX;
    let mut pixels = Vec::with_capacity(side * side);
    for y in 0..modules {
        let row: Vec<u8> =
            (0..modules).flat_map(|x| [if is_light(&code, x, y) { u8::MAX } else { 0 }; PNG_MODULE_PX]).collect();
        for _ in 0..PNG_MODULE_PX {
            pixels.extend_from_slice(&row);
        }
    }
    let side = u32::try_from(side).expect("a version 40 QR code is 1480 px wide");
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png_bytes)
}

fn validate(config: &ClientConfig) -> Result<(), ExportError> {
    if config.device.is_empty() || !config.device.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(ExportError::InvalidDeviceName(config.device.clone()));
    }
    check_key("private_key", &config.private_key)?;
    check_key("gateway_public_key", &config.gateway_public_key)?;
    check_endpoint(&config.endpoint)?;
    if config.allowed_ips.is_empty() {
        return Err(ExportError::NoAllowedIps);
    }
    if let Some(net) = config.allowed_ips.iter().find(|net| net.trunc() != **net) {
        return Err(ExportError::AllowedIpsHostBits(*net));
    }
    match config.mtu {
        Some(mtu) if mtu < MIN_MTU => Err(ExportError::MtuTooSmall(mtu)),
        _ => Ok(()),
    }
}

/// The canonical form `wg genkey` prints, which is the only one every client parses: a key read from a file with its
/// trailing newline, or a hex key, fails here instead of on the laptop.
fn check_key(field: &'static str, key: &str) -> Result<(), ExportError> {
    match BASE64.decode(key) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(ExportError::InvalidKey { field }),
    }
}

/// The forms that `wg`, wg-quick and the Windows and Android parsers all accept. IPv6 needs its brackets because
/// every one of them splits host from port at the last colon.
fn check_endpoint(endpoint: &str) -> Result<(), ExportError> {
    let invalid = |reason| ExportError::InvalidEndpoint { endpoint: endpoint.to_owned(), reason };
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(|| invalid("expected host:port"))?;
    if !port.bytes().all(|b| b.is_ascii_digit()) || !port.parse::<u16>().is_ok_and(|port| port != 0) {
        return Err(invalid("the port must be a number from 1 to 65535"));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|host| host.strip_suffix(']')) {
        inner.parse::<Ipv6Addr>().map_err(|_| invalid("brackets must hold an IPv6 address"))?;
    } else if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(invalid("the host must be a DNS name, an IPv4 address or an IPv6 address in brackets"));
    }
    Ok(())
}

fn encode(text: &str) -> Result<QrCode, ExportError> {
    QrCode::with_error_correction_level(text, EC_LEVEL).map_err(|e| match e {
        QrError::DataTooLong => ExportError::TooLongForQr { len: text.len() },
        other => ExportError::Qr(other),
    })
}

/// Coordinates count from the outer corner of the quiet zone, which is light like the light modules.
fn is_light(code: &QrCode, x: usize, y: usize) -> bool {
    match (x.checked_sub(QUIET_ZONE), y.checked_sub(QUIET_ZONE)) {
        (Some(x), Some(y)) if x < code.width() && y < code.width() => code[(x, y)] == Color::Light,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;
    use std::path::Path;

    use simpul_integration::netns::{
        missing_prerequisite, missing_tools, output_with_stdin, run, run_with_stdin, stdout,
    };

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

    /// Section name to its (key, value) pairs, in file order; comments and blank lines dropped as wg-quick does.
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
    fn wg_quick_round_trips_every_field() {
        let text = wg_quick(&sample()).unwrap();
        assert!(text.starts_with("# Simpul device: laptop-ops-01 (Bandung)\n"), "{text}");
        assert!(text.ends_with("PersistentKeepalive = 25\n") && !text.ends_with("\n\n"), "{text:?}");
        assert!(!text.contains('\r'));
        let expected: Ini = vec![
            (
                "Interface".to_owned(),
                pairs(&[("PrivateKey", PRIVATE_KEY), ("Address", "10.77.3.14/32"), ("MTU", "1380")]),
            ),
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
    fn wg_quick_leaves_out_unset_options_and_lists_every_network() {
        let config = ClientConfig {
            allowed_ips: vec!["10.77.0.1/32".parse().unwrap(), "fd77::1/128".parse().unwrap()],
            endpoint: "[2001:db8::7]:443".to_owned(),
            persistent_keepalive: None,
            mtu: None,
            ..sample()
        };
        let text = wg_quick(&config).unwrap();
        let ini: BTreeMap<String, BTreeMap<String, String>> =
            parse_ini(&text).into_iter().map(|(name, kv)| (name, kv.into_iter().collect())).collect();
        assert!(!ini["Interface"].contains_key("MTU"), "{text}");
        assert!(!ini["Peer"].contains_key("PersistentKeepalive"), "{text}");
        assert_eq!(ini["Peer"]["AllowedIPs"], "10.77.0.1/32, fd77::1/128");
        assert_eq!(ini["Peer"]["Endpoint"], "[2001:db8::7]:443");
        assert!(text.ends_with("Endpoint = [2001:db8::7]:443\n"), "{text:?}");
    }

    #[test]
    fn wg_quick_accepts_every_endpoint_form_the_clients_accept() {
        for endpoint in ["198.51.100.20:51820", "[2001:db8::7]:51820", "[::ffff:198.51.100.20]:1", "gw.example:65535"] {
            let config = ClientConfig { endpoint: endpoint.to_owned(), ..sample() };
            assert!(wg_quick(&config).is_ok(), "{endpoint}");
        }
    }

    /// The error `wg_quick` gives for `config`, after checking that it does not carry the private key.
    fn rejection(config: ClientConfig) -> ExportError {
        let error = wg_quick(&config).expect_err(&format!("{config:?} was accepted"));
        assert!(!error.to_string().contains(&config.private_key[..20]), "error leaks the private key: {error}");
        error
    }

    #[test]
    fn wg_quick_rejects_what_a_caller_may_get_wrong() {
        for device in ["", "x\nPostUp = touch /tmp/pwned", "laptop\r", "laptop-dinas-ñ"] {
            let error = rejection(ClientConfig { device: device.to_owned(), ..sample() });
            assert!(matches!(error, ExportError::InvalidDeviceName(_)), "{device:?}: {error:?}");
        }
        // A trailing newline as read from a file, one character short, valid base64 of 33 and 31 bytes, hex.
        let bad_keys =
            [format!("{PRIVATE_KEY}\n"), PRIVATE_KEY[..43].to_owned(), BASE64.encode([7; 33]), BASE64.encode([7; 31])];
        for key in bad_keys.iter().cloned().chain(["ab".repeat(32)]) {
            let error = rejection(ClientConfig { private_key: key.clone(), ..sample() });
            assert!(matches!(error, ExportError::InvalidKey { field: "private_key" }), "{key:?}: {error:?}");
            let error = rejection(ClientConfig { gateway_public_key: key.clone(), ..sample() });
            assert!(matches!(error, ExportError::InvalidKey { field: "gateway_public_key" }), "{key:?}: {error:?}");
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
            assert!(matches!(error, ExportError::InvalidEndpoint { .. }), "{endpoint:?}: {error:?}");
        }
        let error = rejection(ClientConfig { allowed_ips: Vec::new(), ..sample() });
        assert!(matches!(error, ExportError::NoAllowedIps), "{error:?}");
        let error = rejection(ClientConfig { allowed_ips: vec!["10.77.0.1/16".parse().unwrap()], ..sample() });
        assert!(matches!(error, ExportError::AllowedIpsHostBits(_)), "{error:?}");
        let error = rejection(ClientConfig { mtu: Some(MIN_MTU - 1), ..sample() });
        assert!(matches!(error, ExportError::MtuTooSmall(575)), "{error:?}");
        assert!(wg_quick(&ClientConfig { mtu: Some(MIN_MTU), ..sample() }).is_ok());
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains(PRIVATE_KEY) && shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains(GATEWAY_PUBLIC_KEY), "{shown}");
    }

    /// The grayscale pixels an image decoder sees, as rows of `width` bytes; 0 is black.
    struct Gray {
        width: usize,
        height: usize,
        pixels: Vec<u8>,
    }

    /// With rqrr, a decoder that shares no code with the qrcode encoder. Returns the payload and the raw error
    /// correction indicator (1 is L).
    fn decode_qr(image: &Gray) -> (Vec<u8>, u16) {
        let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(image.width, image.height, |x, y| {
            image.pixels[y * image.width + x]
        });
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1, "expected exactly one QR code in the image");
        let mut payload = Vec::new();
        let meta = grids[0].decode_to(&mut payload).expect("the QR code does not decode");
        (payload, meta.ecc_level)
    }

    /// Redraws the text as a terminal with light text on a dark background would show it, with `PX` pixels per
    /// character column and per half character row, inside a margin of plain background.
    fn paint_dark_terminal(rendering: &str) -> Gray {
        const PX: usize = 4;
        const MARGIN: usize = 3 * PX;
        let lines: Vec<Vec<char>> = rendering.lines().map(|line| line.chars().collect()).collect();
        let columns = lines.iter().map(Vec::len).max().unwrap();
        let width = columns * PX + 2 * MARGIN;
        let height = lines.len() * 2 * PX + 2 * MARGIN;
        let mut pixels = vec![0u8; width * height];
        for (row, line) in lines.iter().enumerate() {
            for (column, glyph) in line.iter().enumerate() {
                let (top, bottom) = match glyph {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected character {other:?} in the rendering"),
                };
                for (half, ink) in [(0, top), (1, bottom)] {
                    if !ink {
                        continue;
                    }
                    for dy in 0..PX {
                        let y = MARGIN + (row * 2 + half) * PX + dy;
                        let x = MARGIN + column * PX;
                        pixels[y * width + x..y * width + x + PX].fill(u8::MAX);
                    }
                }
            }
        }
        Gray { width, height, pixels }
    }

    #[test]
    fn qr_terminal_scans_back_to_the_file_byte_for_byte() {
        let file = wg_quick(&sample()).unwrap();
        let rendering = qr_terminal(&file).unwrap();
        let lines: Vec<Vec<char>> = rendering.lines().map(|line| line.chars().collect()).collect();
        let side = lines[0].len();
        assert!(side <= 80, "{side} columns do not fit an 80-column terminal");
        assert_eq!(lines.len(), side.div_ceil(2));
        assert!(rendering.ends_with('\n'));
        for line in &lines {
            assert_eq!(line.len(), side);
            // Four modules of quiet zone left and right, drawn as ink.
            assert!(line[..QUIET_ZONE].iter().chain(&line[side - QUIET_ZONE..]).all(|c| matches!(c, '█' | '▀')));
        }
        // Four rows of quiet zone on top; below, three and the odd last one as upper halves over the background.
        assert!(lines[..2].iter().flatten().all(|&c| c == '█'));
        assert!(lines[lines.len() - 1].iter().all(|&c| c == '▀'));
        // The top-left finder pattern's dark outer ring (rows 4 and 5, column 4) is blank: light modules are ink.
        assert_eq!(lines[2][QUIET_ZONE], ' ');

        let (payload, ecc_level) = decode_qr(&paint_dark_terminal(&rendering));
        assert_eq!(String::from_utf8(payload).unwrap(), file);
        assert_eq!(ecc_level, 1, "expected error correction level L");
    }

    #[test]
    fn qr_png_scans_back_to_the_file_byte_for_byte() {
        let file = wg_quick(&sample()).unwrap();
        let png_bytes = qr_png(&file).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((frame.color_type, frame.bit_depth), (png::ColorType::Grayscale, png::BitDepth::Eight));
        let (width, height) = (frame.width as usize, frame.height as usize);
        let modules = QrCode::with_error_correction_level(&file, EC_LEVEL).unwrap().width() + 2 * QUIET_ZONE;
        assert_eq!((width, height), (modules * PNG_MODULE_PX, modules * PNG_MODULE_PX));
        pixels.truncate(width * height);
        assert!(pixels.iter().all(|&p| p == 0 || p == u8::MAX));
        // White quiet zone up to the finder pattern, which starts black at module (4, 4).
        let at = |module_x: usize, module_y: usize| pixels[module_y * PNG_MODULE_PX * width + module_x * PNG_MODULE_PX];
        assert!((0..QUIET_ZONE).all(|m| at(m, m) == u8::MAX && at(modules - 1 - m, m) == u8::MAX));
        assert_eq!(at(QUIET_ZONE, QUIET_ZONE), 0);

        let (payload, ecc_level) = decode_qr(&Gray { width, height, pixels });
        assert_eq!(String::from_utf8(payload).unwrap(), file);
        assert_eq!(ecc_level, 1, "expected error correction level L");
    }

    #[test]
    fn qr_refuses_text_too_long_for_a_qr_code() {
        // 2953 bytes is the byte-mode capacity of version 40 at level L (at M it is 2331).
        assert!(qr_terminal(&"x".repeat(2953)).is_ok());
        let long = "x".repeat(2954);
        assert!(matches!(qr_terminal(&long), Err(ExportError::TooLongForQr { len: 2954 })));
        assert!(matches!(qr_png(&long), Err(ExportError::TooLongForQr { len: 2954 })));
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
        let file = wg_quick(&ClientConfig { private_key, ..sample() }).unwrap();
        let exported = value_of(&file, "PrivateKey").unwrap();
        assert_eq!(wg(&["pubkey"], exported), public_key);
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
            let file = wg_quick(&ClientConfig { endpoint: endpoint.to_owned(), ..sample() }).unwrap();
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
}
