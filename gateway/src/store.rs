//! The gateway's sled database. One process owns it (sled locks the directory); the CLI reaches it through the
//! management socket. Every write is flushed before the caller answers anyone, so an acknowledged change survives a
//! crash.

use std::path::Path;

use simpul_core::device::{Device, Name};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

/// Bumped when a tree's layout changes, so an old binary never misreads a newer database.
const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    #[error("database: a {tree} record is damaged: {error}")]
    Corrupt { tree: &'static str, error: serde_json::Error },
    #[error("database schema {found} is newer than this simpul-gateway understands ({SCHEMA_VERSION}); upgrade it")]
    Schema { found: u32 },
}

#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    devices: sled::Tree,
    /// Private keys of devices whose key pair the gateway generated, apart from the records so that listing devices
    /// never reads a secret.
    device_keys: sled::Tree,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::open(path)?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema")? {
            Some(v) => {
                let found = v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::Schema { found });
                }
            }
            None => {
                meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        Ok(Self { devices: db.open_tree("devices")?, device_keys: db.open_tree("device_keys")?, db })
    }

    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.devices
            .iter()
            .values()
            .map(|v| serde_json::from_slice(&v?).map_err(|error| StoreError::Corrupt { tree: "devices", error }))
            .collect()
    }

    /// Writes a device and, when given, its private key, in one transaction, and flushes.
    pub fn put_device(&self, device: &Device, private_key: Option<&str>) -> Result<(), StoreError> {
        let record = serde_json::to_vec(device).expect("a device serializes");
        let name = device.name.as_str().as_bytes();
        (&self.devices, &self.device_keys)
            .transaction(|(devices, keys)| {
                devices.insert(name, record.as_slice())?;
                if let Some(key) = private_key {
                    keys.insert(name, key.as_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
            })?;
        self.db.flush()?;
        Ok(())
    }

    /// Forgets a revoked device's private key: nobody should be able to export a revoked tunnel again.
    pub fn forget_device_key(&self, name: &Name) -> Result<(), StoreError> {
        self.device_keys.remove(name.as_str())?;
        self.db.flush()?;
        Ok(())
    }

    pub fn device_key(&self, name: &Name) -> Result<Option<String>, StoreError> {
        Ok(self.device_keys.get(name.as_str())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use simpul_core::device::DeviceStatus;

    use super::*;

    fn device(name: &str, address: &str) -> Device {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Device {
            name: name.parse().unwrap(),
            user: "budi".parse().unwrap(),
            address: address.parse().unwrap(),
            public_key: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=".into(),
            status: DeviceStatus::Active,
            created_at: now,
            changed_at: now,
            generated_key: true,
        }
    }

    #[test]
    fn devices_and_keys_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).unwrap();
            store.put_device(&device("a", "10.77.0.2"), Some("secret-a")).unwrap();
            store.put_device(&device("b", "10.77.0.3"), None).unwrap();
            let mut changed = device("a", "10.77.0.2");
            changed.status = DeviceStatus::Suspended;
            // An update without a key leaves the stored key alone.
            store.put_device(&changed, None).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let devices = store.devices().unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].status, DeviceStatus::Suspended);
        assert_eq!(devices[1].address.to_string(), "10.77.0.3");
        let a: Name = "a".parse().unwrap();
        assert_eq!(store.device_key(&a).unwrap().as_deref(), Some("secret-a"));
        assert_eq!(store.device_key(&"b".parse().unwrap()).unwrap(), None);
        store.forget_device_key(&a).unwrap();
        assert_eq!(store.device_key(&a).unwrap(), None);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::open(&path).unwrap();
            db.open_tree("meta").unwrap().insert("schema", &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        assert!(matches!(Store::open(&path), Err(StoreError::Schema { .. })));
    }

    #[test]
    fn a_damaged_record_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Store::open(&path).unwrap();
        store.devices.insert("x", b"{not json".as_slice()).unwrap();
        assert!(matches!(store.devices(), Err(StoreError::Corrupt { tree: "devices", .. })));
    }
}
