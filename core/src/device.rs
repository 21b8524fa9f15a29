//! Devices: the operator laptops that hold a WireGuard tunnel to the gateway. A device's tunnel address is its identity
//! on every connection (the tunnel drops inner packets from any other source), so addresses are handed out once and
//! never reused, and a device's life only moves forward: active ⇄ suspended → revoked.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A name an admin gives a device or a user: what the CLI, the health page and the audit log show.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

pub const NAME_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name may not be empty")]
    Empty,
    #[error("a name has at most {NAME_MAX} characters")]
    TooLong,
    #[error("a name starts with a letter or digit")]
    BadStart,
    #[error("a name holds only letters, digits, '.', '_' and '-' (found {0:?})")]
    BadCharacter(char),
}

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Names end up in file names (exported configs), shell scripts and log lines, so they are kept to a safe alphabet.
impl FromStr for Name {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        let first = s.chars().next().ok_or(NameError::Empty)?;
        if s.len() > NAME_MAX {
            return Err(NameError::TooLong);
        }
        if !first.is_ascii_alphanumeric() {
            return Err(NameError::BadStart);
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
            return Err(NameError::BadCharacter(c));
        }
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// Its tunnel carries requests.
    Active,
    /// Its tunnel stays up, but the firewall drops everything it sends until it is resumed.
    Suspended,
    /// Gone for good: its key no longer opens a tunnel. The record stays so the audit log can name it.
    Revoked,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an admin asks of a device's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Suspend,
    Resume,
    Revoke,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("device {0} is revoked; add a new device instead")]
    Revoked(Name),
}

/// A device as the gateway keeps it. The public key is WireGuard's base64 text; the gateway checks it before it gets
/// here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub name: Name,
    /// The user the device belongs to: requests from this device must carry that user's credentials.
    pub user: Name,
    pub address: Ipv4Addr,
    pub public_key: String,
    pub status: DeviceStatus,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    /// Whether the gateway generated the key pair (and so holds the private key an export needs).
    pub generated_key: bool,
}

impl Device {
    /// Applies `change` at `now`. Returns whether anything changed: suspending a suspended device or resuming an
    /// active one is a no-op an admin's script may safely repeat; nothing brings a revoked device back.
    pub fn apply(&mut self, change: StatusChange, now: DateTime<Utc>) -> Result<bool, DeviceError> {
        if self.status == DeviceStatus::Revoked {
            return Err(DeviceError::Revoked(self.name.clone()));
        }
        let next = match change {
            StatusChange::Suspend => DeviceStatus::Suspended,
            StatusChange::Resume => DeviceStatus::Active,
            StatusChange::Revoke => DeviceStatus::Revoked,
        };
        if next == self.status {
            return Ok(false);
        }
        self.status = next;
        self.changed_at = now;
        Ok(true)
    }

    /// Whether the tunnel engine should know the device's key: suspended devices keep their tunnel so that resuming
    /// them is instant and the firewall's counters show what they still send.
    pub fn in_tunnel(&self) -> bool {
        self.status != DeviceStatus::Revoked
    }
}

/// The tunnel network: where device addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPlan {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    /// The gateway's own address in the network.
    pub gateway: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0} is outside the tunnel network {1}/{2}")]
    OutsideNetwork(Ipv4Addr, Ipv4Addr, u8),
    #[error("{0} is the tunnel network's network or broadcast address")]
    Reserved(Ipv4Addr),
    #[error("{0} is the gateway's own address")]
    Gateway(Ipv4Addr),
    #[error("{0} is already taken (addresses are never reused, even after a device is revoked)")]
    Taken(Ipv4Addr),
    #[error("the tunnel network {0}/{1} has no free address left")]
    Exhausted(Ipv4Addr, u8),
}

impl AddressPlan {
    fn mask(&self) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0)
    }

    fn first(&self) -> u32 {
        u32::from(self.network) & self.mask()
    }

    fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == self.first()
    }

    /// Checks an address an admin chose for a device.
    pub fn check(&self, address: Ipv4Addr, taken: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr, AddressError> {
        if !self.contains(address) {
            return Err(AddressError::OutsideNetwork(address, Ipv4Addr::from(self.first()), self.prefix_len));
        }
        // A /31 or /32 has no network or broadcast address to reserve.
        let bits = u32::from(address);
        if self.prefix_len < 31 && (bits == self.first() || bits == self.last()) {
            return Err(AddressError::Reserved(address));
        }
        if address == self.gateway {
            return Err(AddressError::Gateway(address));
        }
        if taken.contains(&address) {
            return Err(AddressError::Taken(address));
        }
        Ok(address)
    }

    /// The lowest address that `check` accepts.
    pub fn allocate(&self, taken: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr, AddressError> {
        (self.first()..=self.last())
            .map(Ipv4Addr::from)
            .find(|&a| self.check(a, taken).is_ok())
            .ok_or(AddressError::Exhausted(Ipv4Addr::from(self.first()), self.prefix_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(network: &str, prefix_len: u8, gateway: &str) -> AddressPlan {
        AddressPlan { network: network.parse().unwrap(), prefix_len, gateway: gateway.parse().unwrap() }
    }

    fn set(addresses: &[&str]) -> BTreeSet<Ipv4Addr> {
        addresses.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn names_keep_to_a_safe_alphabet() {
        for good in ["laptop-1", "a", "OPD.dinkes_01", &"x".repeat(NAME_MAX)] {
            assert_eq!(good.parse::<Name>().unwrap().as_str(), good);
        }
        let cases: [(&str, NameError); 6] = [
            ("", NameError::Empty),
            (&"x".repeat(NAME_MAX + 1), NameError::TooLong),
            ("-laptop", NameError::BadStart),
            (".hidden", NameError::BadStart),
            ("laptop 1", NameError::BadCharacter(' ')),
            ("a/../b", NameError::BadCharacter('/')),
        ];
        for (input, error) in cases {
            assert_eq!(input.parse::<Name>(), Err(error), "{input:?}");
        }
        assert!(serde_json::from_str::<Name>("\"bad name\"").is_err());
    }

    #[test]
    fn allocation_takes_the_lowest_free_host_address() {
        let p = plan("10.77.0.0", 16, "10.77.0.1");
        assert_eq!(p.allocate(&set(&[])).unwrap().to_string(), "10.77.0.2");
        assert_eq!(p.allocate(&set(&["10.77.0.2", "10.77.0.3"])).unwrap().to_string(), "10.77.0.4");
        assert_eq!(p.allocate(&set(&["10.77.0.3"])).unwrap().to_string(), "10.77.0.2");
        // The gateway need not be the first address.
        let p = plan("192.168.5.0", 24, "192.168.5.254");
        assert_eq!(p.allocate(&set(&[])).unwrap().to_string(), "192.168.5.1");
    }

    #[test]
    fn a_full_network_is_exhausted() {
        let p = plan("10.9.0.0", 29, "10.9.0.1");
        let taken = set(&["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]);
        assert_eq!(p.allocate(&taken), Err(AddressError::Exhausted("10.9.0.0".parse().unwrap(), 29)));
        let p = plan("10.9.0.0", 30, "10.9.0.1");
        assert_eq!(p.allocate(&set(&[])).unwrap().to_string(), "10.9.0.2");
        assert!(p.allocate(&set(&["10.9.0.2"])).is_err());
    }

    #[test]
    fn chosen_addresses_are_checked() {
        let p = plan("10.77.0.0", 16, "10.77.0.1");
        let taken = set(&["10.77.3.4"]);
        let check = |a: &str| p.check(a.parse().unwrap(), &taken);
        assert_eq!(check("10.77.200.9").unwrap().to_string(), "10.77.200.9");
        assert!(matches!(check("10.78.0.2"), Err(AddressError::OutsideNetwork(..))));
        assert!(matches!(check("10.77.0.0"), Err(AddressError::Reserved(_))));
        assert!(matches!(check("10.77.255.255"), Err(AddressError::Reserved(_))));
        assert!(matches!(check("10.77.0.1"), Err(AddressError::Gateway(_))));
        assert!(matches!(check("10.77.3.4"), Err(AddressError::Taken(_))));
        // A network written with host bits still means the network.
        let p = plan("10.77.9.9", 16, "10.77.0.1");
        assert!(p.contains("10.77.255.1".parse().unwrap()));
        assert!(!p.contains("10.76.255.1".parse().unwrap()));
    }

    fn device(status: DeviceStatus) -> Device {
        let then = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Device {
            name: "laptop-1".parse().unwrap(),
            user: "budi".parse().unwrap(),
            address: "10.77.0.2".parse().unwrap(),
            public_key: "k".into(),
            status,
            created_at: then,
            changed_at: then,
            generated_key: true,
        }
    }

    #[test]
    fn status_changes_move_forward_only() {
        use DeviceStatus::*;
        use StatusChange::*;
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let cases = [
            (Active, Suspend, Ok(true), Suspended),
            (Active, Resume, Ok(false), Active),
            (Active, Revoke, Ok(true), Revoked),
            (Suspended, Suspend, Ok(false), Suspended),
            (Suspended, Resume, Ok(true), Active),
            (Suspended, Revoke, Ok(true), Revoked),
        ];
        for (from, change, result, to) in cases {
            let mut d = device(from);
            assert_eq!(d.apply(change, now), result, "{from:?} {change:?}");
            assert_eq!(d.status, to, "{from:?} {change:?}");
            assert_eq!(d.changed_at == now, result == Ok(true), "{from:?} {change:?}");
            assert_eq!(d.in_tunnel(), to != Revoked);
        }
        for change in [Suspend, Resume, Revoke] {
            let mut d = device(Revoked);
            assert!(matches!(d.apply(change, now), Err(DeviceError::Revoked(_))));
            assert_eq!(d.status, Revoked);
        }
    }

    #[test]
    fn a_device_survives_json() {
        let d = device(DeviceStatus::Suspended);
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.contains("\"status\":\"suspended\""), "{text}");
        assert_eq!(serde_json::from_str::<Device>(&text).unwrap(), d);
    }
}
