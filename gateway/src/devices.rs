//! The device registry: the stored devices with the indexes the data plane looks them up by (name, tunnel address,
//! public key). Every change is written to the store before the index changes, so the two never disagree after a
//! crash.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use simpul_core::device::{AddressError, AddressPlan, Device, DeviceError, DeviceStatus, Name, StatusChange};
use simpul_tunnel::{PrivateKey, PublicKey};

use crate::store::{AdminEvent, Store, StoreError, Write};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no device named {0}")]
    NotFound(Name),
    #[error("a device named {0} already exists (names are never reused, even after a device is revoked)")]
    NameTaken(Name),
    #[error("the public key is already device {0}'s")]
    KeyTaken(Name),
    #[error("the public key was device {0}'s, which is revoked; the device needs a new key pair")]
    KeyRevoked(Name),
    #[error("the public key is a weak (low-order) point, with which no handshake can succeed")]
    WeakKey,
    #[error("the public key is the gateway's own")]
    GatewayKey,
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Status(#[from] DeviceError),
    #[error(
        "device {0} was added with its own public key, so the gateway does not hold its private key; \
         its owner writes the exported file's PrivateKey"
    )]
    NoPrivateKey(Name),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an admin gives `device add`.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub name: Name,
    pub user: Name,
    pub address: Option<Ipv4Addr>,
    /// The device's own public key; without it the gateway generates the key pair.
    pub public_key: Option<PublicKey>,
}

#[derive(Debug)]
pub struct Registry {
    store: Store,
    plan: AddressPlan,
    gateway_key: PublicKey,
    devices: BTreeMap<Name, Device>,
    by_address: HashMap<Ipv4Addr, Name>,
    by_key: HashMap<PublicKey, Name>,
    /// Every address ever handed out, revoked devices' included.
    taken: BTreeSet<Ipv4Addr>,
    /// Keys of revoked devices: a revoked (perhaps stolen) laptop's key must not come back under a new name.
    revoked_keys: HashMap<PublicKey, Name>,
}

/// A device that passed every check, with the key pair generated for it, not yet stored.
#[derive(Debug)]
pub struct Prepared {
    pub device: Device,
    private_key: Option<PrivateKey>,
}

impl Registry {
    pub fn load(store: Store, plan: AddressPlan, gateway_key: PublicKey) -> Result<Self, RegistryError> {
        let mut registry = Self {
            store,
            plan,
            gateway_key,
            devices: BTreeMap::new(),
            by_address: HashMap::new(),
            by_key: HashMap::new(),
            taken: BTreeSet::new(),
            revoked_keys: HashMap::new(),
        };
        for device in registry.store.devices()? {
            registry.index(device);
        }
        Ok(registry)
    }

    fn index(&mut self, device: Device) {
        self.taken.insert(device.address);
        let key = device.public_key.parse().ok();
        if device.status == DeviceStatus::Revoked {
            self.by_address.remove(&device.address);
            if let Some(key) = key {
                self.by_key.remove(&key);
                self.revoked_keys.insert(key, device.name.clone());
            }
        } else {
            self.by_address.insert(device.address, device.name.clone());
            if let Some(key) = key {
                self.by_key.insert(key, device.name.clone());
            }
        }
        self.devices.insert(device.name.clone(), device);
    }

    /// Checks a new device against everything that exists and generates its key pair; nothing is stored until
    /// [`Registry::commit`], so the caller can bring the device into the tunnel first.
    pub fn prepare(&self, new: NewDevice, now: DateTime<Utc>) -> Result<Prepared, RegistryError> {
        if self.devices.contains_key(&new.name) {
            return Err(RegistryError::NameTaken(new.name));
        }
        let address = match new.address {
            Some(address) => self.plan.check(address, &self.taken)?,
            None => self.plan.allocate(&self.taken)?,
        };
        let (public_key, private_key) = match new.public_key {
            Some(key) => (key, None),
            None => {
                let key = PrivateKey::generate();
                (key.public_key(), Some(key))
            }
        };
        if public_key == self.gateway_key {
            return Err(RegistryError::GatewayKey);
        }
        if public_key.is_weak() {
            return Err(RegistryError::WeakKey);
        }
        if let Some(owner) = self.by_key.get(&public_key) {
            return Err(RegistryError::KeyTaken(owner.clone()));
        }
        if let Some(owner) = self.revoked_keys.get(&public_key) {
            return Err(RegistryError::KeyRevoked(owner.clone()));
        }
        let device = Device {
            name: new.name,
            user: new.user,
            address,
            public_key: public_key.to_string(),
            status: DeviceStatus::Active,
            created_at: now,
            changed_at: now,
            generated_key: private_key.is_some(),
        };
        Ok(Prepared { device, private_key })
    }

    pub fn commit(&mut self, prepared: Prepared, event: &AdminEvent) -> Result<Device, RegistryError> {
        let Prepared { device, private_key } = prepared;
        let mut writes = vec![Write::Device(device.clone())];
        if let Some(key) = private_key {
            writes.push(Write::DeviceKey(device.name.clone(), key.to_base64()));
        }
        self.store.commit(&writes, Some(event))?;
        self.index(device.clone());
        Ok(device)
    }

    /// Applies a status change; returns the device before and after.
    pub fn change(
        &mut self,
        name: &Name,
        change: StatusChange,
        event: &AdminEvent,
    ) -> Result<(Device, Device), RegistryError> {
        let before = self.get(name)?.clone();
        let mut after = before.clone();
        if !after.apply(change, event.at)? {
            return Ok((before, after));
        }
        self.store.commit(&[Write::Device(after.clone())], Some(event))?;
        self.index(after.clone());
        Ok((before, after))
    }

    /// Puts a device back as it was, after the data plane refused a change that the store had already taken.
    pub fn restore(&mut self, device: Device, event: &AdminEvent) -> Result<(), RegistryError> {
        self.store.commit(&[Write::Device(device.clone())], Some(event))?;
        if device.status != DeviceStatus::Revoked {
            if let Ok(key) = device.public_key.parse() {
                self.revoked_keys.remove(&key);
            }
        }
        self.index(device);
        Ok(())
    }

    /// Forgets a revoked device's private key, once the tunnel no longer knows the device: nobody may export a
    /// revoked tunnel again.
    pub fn forget_private_key(&mut self, name: &Name) -> Result<(), RegistryError> {
        self.store.commit(&[Write::ForgetDeviceKey(name.clone())], None)?;
        Ok(())
    }

    pub fn get(&self, name: &Name) -> Result<&Device, RegistryError> {
        self.devices.get(name).ok_or_else(|| RegistryError::NotFound(name.clone()))
    }

    pub fn list(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// The device holding a tunnel address (revoked devices hold none).
    pub fn by_address(&self, address: Ipv4Addr) -> Option<&Device> {
        self.by_address.get(&address).and_then(|n| self.devices.get(n))
    }

    pub fn by_key(&self, key: &PublicKey) -> Option<&Device> {
        self.by_key.get(key).and_then(|n| self.devices.get(n))
    }

    pub fn private_key(&self, name: &Name) -> Result<String, RegistryError> {
        let device = self.get(name)?;
        if device.status == DeviceStatus::Revoked {
            return Err(DeviceError::Revoked(name.clone()).into());
        }
        self.store.device_key(name)?.ok_or_else(|| RegistryError::NoPrivateKey(name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn new(name: &str) -> NewDevice {
        NewDevice { name: name.parse().unwrap(), user: "budi".parse().unwrap(), address: None, public_key: None }
    }

    fn event() -> AdminEvent {
        AdminEvent {
            at: now(),
            actor: crate::store::Actor::System { task: "test".into() },
            action: "test".into(),
            target: String::new(),
            detail: serde_json::Value::Null,
            subjects: Vec::new(),
        }
    }

    impl Registry {
        fn add(&mut self, new: NewDevice, now: DateTime<Utc>) -> Result<Device, RegistryError> {
            let prepared = self.prepare(new, now)?;
            self.commit(prepared, &event())
        }
    }

    fn registry(path: &std::path::Path, gateway: PublicKey) -> Registry {
        let plan = AddressPlan {
            network: "10.77.0.0".parse().unwrap(),
            prefix_len: 16,
            gateway: "10.77.0.1".parse().unwrap(),
        };
        Registry::load(Store::open(path, crate::seal::Sealer::new([1; 32])).unwrap(), plan, gateway).unwrap()
    }

    #[test]
    fn devices_get_addresses_keys_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = PrivateKey::generate().public_key();
        let mut r = registry(dir.path(), gateway);
        let a = r.add(new("a"), now()).unwrap();
        assert_eq!(a.address.to_string(), "10.77.0.2");
        assert!(a.generated_key);
        let private: PrivateKey = r.private_key(&a.name).unwrap().parse().unwrap();
        assert_eq!(private.public_key().to_string(), a.public_key);

        let own = PrivateKey::generate().public_key();
        let b = r
            .add(NewDevice { address: Some("10.77.1.9".parse().unwrap()), public_key: Some(own), ..new("b") }, now())
            .unwrap();
        assert_eq!(
            (b.address.to_string(), b.public_key.clone(), b.generated_key),
            ("10.77.1.9".into(), own.to_string(), false)
        );
        assert!(matches!(r.private_key(&b.name), Err(RegistryError::NoPrivateKey(_))));
        assert_eq!(r.by_key(&own).unwrap().name, b.name);
        assert_eq!(r.by_address("10.77.0.2".parse().unwrap()).unwrap().name, a.name);

        assert!(matches!(r.add(new("a"), now()), Err(RegistryError::NameTaken(_))));
        assert!(matches!(
            r.add(NewDevice { public_key: Some(own), ..new("c") }, now()),
            Err(RegistryError::KeyTaken(_))
        ));
        assert!(matches!(
            r.add(NewDevice { public_key: Some(gateway), ..new("c") }, now()),
            Err(RegistryError::GatewayKey)
        ));
        let taken = NewDevice { address: Some("10.77.1.9".parse().unwrap()), ..new("c") };
        assert!(matches!(r.add(taken, now()), Err(RegistryError::Address(AddressError::Taken(_)))));
        // Nothing refused left a trace.
        assert_eq!(r.list().count(), 2);
    }

    #[test]
    fn revocation_frees_nothing_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let gateway = PrivateKey::generate().public_key();
        let name: Name = "a".parse().unwrap();
        {
            let mut r = registry(dir.path(), gateway);
            let a = r.add(new("a"), now()).unwrap();
            let (_, suspended) = r.change(&name, StatusChange::Suspend, &event()).unwrap();
            assert_eq!(suspended.status, DeviceStatus::Suspended);
            let (_, revoked) = r.change(&name, StatusChange::Revoke, &event()).unwrap();
            assert_eq!(revoked.status, DeviceStatus::Revoked);
            assert!(r.by_address(a.address).is_none());
            assert!(r.by_key(&a.public_key.parse().unwrap()).is_none());
            assert!(matches!(r.private_key(&name), Err(RegistryError::Status(_))));
            r.forget_private_key(&name).unwrap();
            // The revoked key cannot come back under another name.
            let again = NewDevice { public_key: Some(a.public_key.parse().unwrap()), ..new("a2") };
            assert!(matches!(r.add(again, now()), Err(RegistryError::KeyRevoked(_))));
            let zero = NewDevice { public_key: Some(PublicKey::from_bytes([0; 32])), ..new("z") };
            assert!(matches!(r.add(zero, now()), Err(RegistryError::WeakKey)));
        }
        let mut r = registry(dir.path(), gateway);
        assert_eq!(r.get(&name).unwrap().status, DeviceStatus::Revoked);
        assert!(matches!(r.change(&name, StatusChange::Resume, &event()), Err(RegistryError::Status(_))));
        let revoked_key = r.get(&name).unwrap().public_key.parse().unwrap();
        let again = NewDevice { public_key: Some(revoked_key), ..new("a3") };
        assert!(
            matches!(r.add(again, now()), Err(RegistryError::KeyRevoked(_))),
            "revoked keys are known after a restart"
        );
        // The revoked device's address is not handed out again.
        assert_eq!(r.add(new("b"), now()).unwrap().address.to_string(), "10.77.0.3");
        assert!(matches!(r.get(&"zzz".parse().unwrap()), Err(RegistryError::NotFound(_))));
    }
}
