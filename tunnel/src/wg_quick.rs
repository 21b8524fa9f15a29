//! The wg-quick file: the tunnel config an operator laptop imports into a stock WireGuard client, written by the
//! gateway (`device export`) and read back by Simpul's own client (the agent, the tests).
//!
//! The file is the interoperability contract, so it only uses keys that every client understands: `wg-quick` on Linux
//! and the Windows and Android apps (whose parsers also read the QR code). It deliberately has no `DNS`: only the
//! gateway API is reachable through the tunnel, and a `DNS` line would send all of the laptop's lookups into it.
//!
//! Everything is validated before a byte is written, because a bad field does not fail here but on the operator's
//! laptop, far from anyone who can fix it, and because the device name is written into a file that `wg-quick` runs as
//! root (a newline in it could smuggle in a `PostUp` command). Reading is as strict: exactly the keys the gateway
//! writes, each once, so that a file someone edited to run commands or to route more than the gateway is refused
//! rather than half understood.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::keys::{PrivateKey, PublicKey};

/// The WireGuard Windows client refuses anything below this, and it is the strictest of the clients.
pub const MIN_MTU: u16 = 576;

/// The comment that names the device, the file's first line.
const DEVICE_COMMENT: &str = "# Simpul device: ";

/// What a laptop needs to reach the gateway: the whole content of a wg-quick file.
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

/// Errors never echo a value, which may be a private key; they name the field or the line instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WgQuickError {
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
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: &'static str },
    /// Anything the gateway does not write: `PostUp`, `DNS`, `Table`, a preshared key, a second peer's fields.
    #[error("line {line}: {key:?} is not a key the gateway writes in [{section}]")]
    UnsupportedKey { line: usize, section: &'static str, key: String },
    #[error("line {line}: {key} appears twice")]
    Duplicate { line: usize, key: &'static str },
    #[error("line {line}: the value of {key} is not valid")]
    InvalidValue { line: usize, key: &'static str },
    #[error("the file has no {0}")]
    Missing(&'static str),
}

/// Renders the wg-quick file. It holds the device's private key: the caller writes it with mode 0600 (wg-quick warns
/// otherwise) and names it `<ifname>.conf` with at most 15 characters of `[A-Za-z0-9_=+.-]`, which `wg-quick` and the
/// Windows client take as the tunnel name.
pub fn render(config: &ClientConfig) -> Result<String, WgQuickError> {
    validate(config)?;
    let mut lines = vec![
        format!("{DEVICE_COMMENT}{}", config.device),
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Interface,
    Peer,
}

/// Reads a wg-quick file the gateway exported: one `[Interface]`, then one `[Peer]`, each key the gateway writes at
/// most once, nothing else; then the same checks as [`render`].
pub fn parse(text: &str) -> Result<ClientConfig, WgQuickError> {
    let mut device = None;
    let mut section = None;
    let mut seen_peer = false;
    let mut private_key = None;
    let mut address = None;
    let mut mtu = None;
    let mut public_key = None;
    let mut allowed_ips = None;
    let mut endpoint = None;
    let mut keepalive = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.contains('\r') || !raw.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            return Err(WgQuickError::Syntax { line, reason: "only printable ASCII" });
        }
        if let Some(name) = raw.strip_prefix(DEVICE_COMMENT) {
            if line == 1 {
                device = Some(name.to_owned());
            }
            continue;
        }
        // As wg-quick reads it: a comment runs to the end of the line. No key or value the gateway writes holds a '#'.
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        if content.starts_with('[') {
            section = match (content, section) {
                ("[Interface]", None) => Some(Section::Interface),
                ("[Peer]", Some(Section::Interface)) if !seen_peer => {
                    seen_peer = true;
                    Some(Section::Peer)
                }
                ("[Interface]" | "[Peer]", _) => {
                    return Err(WgQuickError::Syntax { line, reason: "one [Interface] then one [Peer]" })
                }
                _ => return Err(WgQuickError::Syntax { line, reason: "an unknown section" }),
            };
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            return Err(WgQuickError::Syntax { line, reason: "expected Key = Value" });
        };
        let (key, value) = (key.trim(), value.trim());
        let unsupported = |section: &'static str| WgQuickError::UnsupportedKey { line, section, key: key.to_owned() };
        let invalid = |key| WgQuickError::InvalidValue { line, key };
        match section {
            None => return Err(WgQuickError::Syntax { line, reason: "a key outside a section" }),
            Some(Section::Interface) => match key {
                "PrivateKey" => set(&mut private_key, value.to_owned(), line, "PrivateKey")?,
                "Address" => {
                    let net: Ipv4Net = value.parse().map_err(|_| invalid("Address"))?;
                    if net.prefix_len() != 32 {
                        return Err(invalid("Address"));
                    }
                    set(&mut address, net.addr(), line, "Address")?;
                }
                "MTU" => set(&mut mtu, value.parse().map_err(|_| invalid("MTU"))?, line, "MTU")?,
                _ => return Err(unsupported("Interface")),
            },
            Some(Section::Peer) => match key {
                "PublicKey" => set(&mut public_key, value.to_owned(), line, "PublicKey")?,
                "AllowedIPs" => {
                    let nets: Result<Vec<IpNet>, _> = value.split(',').map(|n| n.trim().parse()).collect();
                    set(&mut allowed_ips, nets.map_err(|_| invalid("AllowedIPs"))?, line, "AllowedIPs")?;
                }
                "Endpoint" => set(&mut endpoint, value.to_owned(), line, "Endpoint")?,
                "PersistentKeepalive" => {
                    let seconds = value.parse().map_err(|_| invalid("PersistentKeepalive"))?;
                    set(&mut keepalive, seconds, line, "PersistentKeepalive")?;
                }
                _ => return Err(unsupported("Peer")),
            },
        }
    }
    let config = ClientConfig {
        device: device.ok_or(WgQuickError::Missing("device comment on its first line"))?,
        private_key: private_key.ok_or(WgQuickError::Missing("PrivateKey"))?,
        address: address.ok_or(WgQuickError::Missing("Address"))?,
        gateway_public_key: public_key.ok_or(WgQuickError::Missing("[Peer] PublicKey"))?,
        endpoint: endpoint.ok_or(WgQuickError::Missing("Endpoint"))?,
        allowed_ips: allowed_ips.ok_or(WgQuickError::Missing("AllowedIPs"))?,
        persistent_keepalive: keepalive,
        mtu,
    };
    validate(&config)?;
    Ok(config)
}

fn set<T>(slot: &mut Option<T>, value: T, line: usize, key: &'static str) -> Result<(), WgQuickError> {
    if slot.replace(value).is_some() {
        return Err(WgQuickError::Duplicate { line, key });
    }
    Ok(())
}

/// The checks [`render`] and [`parse`] run, for a config built in code.
pub fn validate(config: &ClientConfig) -> Result<(), WgQuickError> {
    if config.device.is_empty() || !config.device.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(WgQuickError::InvalidDeviceName(config.device.clone()));
    }
    // The canonical form `wg genkey` prints, which is the only one every client parses: a key read from a file with
    // its trailing newline, or a hex key, fails here instead of on the laptop. (Base64 of 32 bytes is 44 characters.)
    if config.private_key.len() != 44 || config.private_key.parse::<PrivateKey>().is_err() {
        return Err(WgQuickError::InvalidKey { field: "private_key" });
    }
    if config.gateway_public_key.len() != 44 || config.gateway_public_key.parse::<PublicKey>().is_err() {
        return Err(WgQuickError::InvalidKey { field: "gateway_public_key" });
    }
    check_endpoint(&config.endpoint)?;
    if config.allowed_ips.is_empty() {
        return Err(WgQuickError::NoAllowedIps);
    }
    if let Some(net) = config.allowed_ips.iter().find(|net| net.trunc() != **net) {
        return Err(WgQuickError::AllowedIpsHostBits(*net));
    }
    match config.mtu {
        Some(mtu) if mtu < MIN_MTU => Err(WgQuickError::MtuTooSmall(mtu)),
        _ => Ok(()),
    }
}

/// The endpoint forms that `wg`, wg-quick and the Windows and Android parsers all accept. IPv6 needs its brackets
/// because every one of them splits host from port at the last colon.
pub fn check_endpoint(endpoint: &str) -> Result<(), WgQuickError> {
    let invalid = |reason| WgQuickError::InvalidEndpoint { endpoint: endpoint.to_owned(), reason };
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

#[cfg(test)]
mod tests;
