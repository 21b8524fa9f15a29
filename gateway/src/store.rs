//! The gateway's sled database. One process owns it (sled locks the directory); the CLI reaches it through the
//! management socket. Every write is flushed before the caller answers anyone, so an acknowledged change survives a
//! crash.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
pub use simpul_core::audit::record::Actor;
use simpul_core::device::{Device, Name};
use simpul_core::institution::{Institution, User};
pub use simpul_ledger::AdminEvent;
use simpul_ledger::{AdminOutbox, Flusher, Identifier};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::seal::Sealer;

/// Bumped when a tree's layout changes, so an old binary never misreads a newer database. 2: users and admin events
/// sealed (see [`crate::seal`]), admin events with a typed actor and their personal identifiers apart.
const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    #[error("database: a {tree} record is damaged: {error}")]
    Corrupt { tree: &'static str, error: serde_json::Error },
    #[error(
        "database: a sealed {tree} record does not open with store.key (damaged, or the key is not this database's)"
    )]
    Sealed { tree: &'static str },
    #[error(transparent)]
    Database(#[from] simpul_ledger::database::DatabaseError),
    #[error("database schema {found} is newer than this simpul-gateway understands ({SCHEMA_VERSION}); upgrade it")]
    Schema { found: u32 },
}

/// One change to the database; a commit applies several at once.
#[derive(Debug, Clone)]
pub enum Write {
    Device(Device),
    /// A device's generated private key (base64).
    DeviceKey(Name, String),
    ForgetDeviceKey(Name),
    Institution(Institution),
    User(User),
}

const TREES: [&str; 6] = ["devices", "device_keys", "institutions", "users", "admin_log", "meta"];
/// Trees whose values hold personal identifiers, sealed at rest.
const SEALED: [&str; 2] = ["users", "admin_log"];
const ADMIN_SEQ: &str = "admin_seq";

/// The gateway's database. Each admin change is recorded (who, what, when) in the `admin_log` outbox in the same
/// transaction as the change itself, so no change goes unrecorded and no record describes a change that did not
/// happen; the audit log copies the outbox ([`AdminOutbox`]).
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    flusher: Arc<Flusher>,
    sealer: Sealer,
    /// In `TREES` order. `device_keys` holds the private keys of devices whose key pair the gateway generated, apart
    /// from the records so that listing devices never reads a secret.
    trees: Vec<sled::Tree>,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("a record serializes")
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt { tree, error })
}

/// An admin event as schema 1 kept it: the CLI's uid and pid, and the operator's NIK and NIP inside the detail.
#[derive(Deserialize)]
struct EventV1 {
    at: DateTime<Utc>,
    actor: ActorV1,
    action: String,
    target: String,
    detail: serde_json::Value,
}

#[derive(Deserialize)]
struct ActorV1 {
    uid: u32,
    pid: Option<i32>,
}

/// Takes an operator's NIK and NIP (the `nik` and `nip` fields of user fields) out of an admin event's detail, as
/// the identifiers the audit log keeps only as commitments.
pub fn identifiers_out_of(detail: &mut serde_json::Value) -> Vec<Identifier> {
    let mut found = Vec::new();
    if let Some(fields) = detail.as_object_mut() {
        for (name, make) in [("nik", Identifier::Nik as fn(String) -> Identifier), ("nip", Identifier::Nip)] {
            if let Some(serde_json::Value::String(number)) = fields.remove(name) {
                found.push(make(number));
            }
        }
    }
    found
}

impl EventV1 {
    /// The event as schema 2 keeps it: identifiers out of the detail, into `subjects`.
    fn upgrade(self) -> AdminEvent {
        let mut detail = self.detail;
        let subjects = identifiers_out_of(&mut detail);
        AdminEvent {
            at: self.at,
            actor: Actor::Cli { uid: self.actor.uid, pid: self.actor.pid },
            action: self.action,
            target: self.target,
            detail,
            subjects,
        }
    }
}

impl Store {
    /// Opens the database at `path`, sealing with `sealer`; a schema-1 database is upgraded in place (its users and
    /// admin events sealed, in one transaction) before anything reads it.
    pub fn open(path: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        let db = simpul_ledger::database::open(path)?;
        let meta = db.open_tree("meta")?;
        let found = match meta.get("schema")? {
            Some(v) => v.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX),
            None => 0,
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::Schema { found });
        }
        let trees = TREES.iter().map(|name| db.open_tree(name)).collect::<Result<_, _>>()?;
        let store = Self { flusher: Flusher::new(&db), db, sealer, trees };
        if found < SCHEMA_VERSION {
            store.upgrade(found)?;
        } else {
            store.check_key()?;
        }
        Ok(store)
    }

    /// Refuses a key that does not open what this database sealed (another database's key, or a new one made after
    /// the right one was lost), before anything reads or writes with it.
    fn check_key(&self) -> Result<(), StoreError> {
        for tree in SEALED {
            if let Some((key, value)) = self.tree(tree).first()? {
                self.plain(tree, &key, &value)?;
            }
        }
        Ok(())
    }

    /// From schema 1 (or a new database, 0): seal users and admin events, upgrading the events' shape.
    fn upgrade(&self, from: u32) -> Result<(), StoreError> {
        let mut rewrites: Vec<(usize, sled::IVec, Vec<u8>)> = Vec::new();
        if from == 1 {
            for (index, tree) in TREES.iter().enumerate().filter(|(_, t)| SEALED.contains(t)) {
                for entry in self.trees[index].iter() {
                    let (key, value) = entry?;
                    let plain = match *tree {
                        "admin_log" => json(&decode::<EventV1>("admin_log", &value)?.upgrade()),
                        _ => value.to_vec(),
                    };
                    let sealed = self.sealer.seal(tree, &key, &plain);
                    rewrites.push((index, key, sealed));
                }
            }
        }
        let meta = self.trees.len() - 1;
        self.trees
            .as_slice()
            .transaction(|trees| {
                for (index, key, value) in &rewrites {
                    trees[*index].insert(key, value.as_slice())?;
                }
                trees[meta].insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
            })?;
        self.flusher.flush()?;
        Ok(())
    }

    /// The database, for components that keep trees of their own (the quota ledger, the audit log).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The database's one flusher, which every durable write must go through (see [`simpul_ledger::flush`]).
    pub fn flusher(&self) -> Arc<Flusher> {
        self.flusher.clone()
    }

    fn tree(&self, name: &str) -> &sled::Tree {
        &self.trees[TREES.iter().position(|t| *t == name).expect("a known tree")]
    }

    /// A stored value as the record's JSON: opened first where the tree is sealed.
    fn plain(&self, tree: &'static str, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if SEALED.contains(&tree) {
            return self.sealer.open(tree, key, value).map_err(|_| StoreError::Sealed { tree });
        }
        Ok(value.to_vec())
    }

    fn encode(&self, tree: &str, key: &[u8], plain: Vec<u8>) -> Vec<u8> {
        if SEALED.contains(&tree) {
            return self.sealer.seal(tree, key, &plain);
        }
        plain
    }

    fn all<T: DeserializeOwned>(&self, tree: &'static str) -> Result<Vec<T>, StoreError> {
        self.tree(tree)
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode(tree, &self.plain(tree, &key, &value)?)
            })
            .collect()
    }

    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.all("devices")
    }

    pub fn institutions(&self) -> Result<Vec<Institution>, StoreError> {
        self.all("institutions")
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.all("users")
    }

    pub fn device_key(&self, name: &Name) -> Result<Option<String>, StoreError> {
        Ok(self.tree("device_keys").get(name.as_str())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Applies `writes` and records `event` in one transaction, then flushes: once this returns, the change and its
    /// record survive a crash together. Returns the event's sequence number.
    pub fn commit(&self, writes: &[Write], event: Option<&AdminEvent>) -> Result<Option<u64>, StoreError> {
        let encoded: Vec<(usize, Vec<u8>, Option<Vec<u8>>)> = writes
            .iter()
            .map(|w| -> (usize, Vec<u8>, Option<Vec<u8>>) {
                match w {
                    Write::Device(d) => (0, d.name.as_str().into(), Some(json(d))),
                    Write::DeviceKey(name, key) => (1, name.as_str().into(), Some(key.as_bytes().to_vec())),
                    Write::ForgetDeviceKey(name) => (1, name.as_str().into(), None),
                    Write::Institution(i) => (2, i.id.as_str().into(), Some(json(i))),
                    Write::User(u) => (3, u.id.as_str().into(), Some(json(u))),
                }
            })
            .map(|(tree, key, value)| {
                let value = value.map(|plain| self.encode(TREES[tree], &key, plain));
                (tree, key, value)
            })
            .collect();
        let event = event.map(json);
        let seq = self
            .trees
            .as_slice()
            .transaction(|trees| {
                for (tree, key, value) in &encoded {
                    match value {
                        Some(value) => trees[*tree].insert(key.as_slice(), value.as_slice())?,
                        None => trees[*tree].remove(key.as_slice())?,
                    };
                }
                let Some(event) = &event else { return Ok(None) };
                let meta = &trees[5];
                let seq = meta.get(ADMIN_SEQ)?.and_then(|v| v.as_ref().try_into().ok()).map(u64::from_be_bytes);
                let seq = seq.unwrap_or(0) + 1;
                meta.insert(ADMIN_SEQ, &seq.to_be_bytes())?;
                let key = seq.to_be_bytes();
                trees[4].insert(&key, self.sealer.seal("admin_log", &key, event))?;
                Ok::<_, ConflictableTransactionError<()>>(Some(seq))
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
            })?;
        self.flusher.flush()?;
        Ok(seq)
    }

    /// Admin events after sequence number `after`, oldest first, at most `limit`.
    pub fn admin_log(&self, after: u64, limit: usize) -> Result<Vec<(u64, AdminEvent)>, StoreError> {
        self.tree("admin_log")
            .range((after + 1).to_be_bytes()..)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                let seq = key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                Ok((seq, decode("admin_log", &self.plain("admin_log", &key, &value)?)?))
            })
            .collect()
    }
}

impl AdminOutbox for Store {
    fn events_after(&self, after: u64) -> Result<Vec<(u64, AdminEvent)>, String> {
        self.admin_log(after, usize::MAX).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use simpul_core::device::DeviceStatus;

    use super::*;

    fn sealer() -> Sealer {
        Sealer::new([3; 32])
    }

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

    fn event(action: &str) -> AdminEvent {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        AdminEvent {
            at,
            actor: Actor::Cli { uid: 0, pid: Some(42) },
            action: action.into(),
            target: "a".into(),
            detail: serde_json::json!({}),
            subjects: vec![Identifier::Nik("3374041003870006".into())],
        }
    }

    #[test]
    fn devices_keys_and_their_admin_events_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let a: Name = "a".parse().unwrap();
        {
            let store = Store::open(&path, sealer()).unwrap();
            let writes = [Write::Device(device("a", "10.77.0.2")), Write::DeviceKey(a.clone(), "secret-a".into())];
            assert_eq!(store.commit(&writes, Some(&event("device.add"))).unwrap(), Some(1));
            assert_eq!(
                store.commit(&[Write::Device(device("b", "10.77.0.3"))], Some(&event("device.add"))).unwrap(),
                Some(2)
            );
            let mut changed = device("a", "10.77.0.2");
            changed.status = DeviceStatus::Suspended;
            // An update without a key leaves the stored key alone.
            store.commit(&[Write::Device(changed)], Some(&event("device.suspend"))).unwrap();
            // A write without an event records nothing.
            assert_eq!(store.commit(&[Write::Device(device("c", "10.77.0.4"))], None).unwrap(), None);
        }
        let store = Store::open(&path, sealer()).unwrap();
        let devices = store.devices().unwrap();
        assert_eq!(devices.len(), 3);
        assert_eq!(devices[0].status, DeviceStatus::Suspended);
        assert_eq!(devices[1].address.to_string(), "10.77.0.3");
        assert_eq!(store.device_key(&a).unwrap().as_deref(), Some("secret-a"));
        assert_eq!(store.device_key(&"b".parse().unwrap()).unwrap(), None);
        store.commit(&[Write::ForgetDeviceKey(a.clone())], Some(&event("device.revoke"))).unwrap();
        assert_eq!(store.device_key(&a).unwrap(), None);
        let log = store.admin_log(0, 100).unwrap();
        let actions: Vec<(u64, &str)> = log.iter().map(|(seq, e)| (*seq, e.action.as_str())).collect();
        assert_eq!(actions, [(1, "device.add"), (2, "device.add"), (3, "device.suspend"), (4, "device.revoke")]);
        assert_eq!(log[0].1, event("device.add"));
        assert_eq!(store.admin_log(2, 1).unwrap()[0].0, 3, "paging from a sequence number");
    }

    #[test]
    fn another_key_is_refused_before_anything_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        Store::open(&path, sealer()).unwrap().commit(&[], Some(&event("device.add"))).unwrap();
        assert!(matches!(Store::open(&path, Sealer::new([4; 32])), Err(StoreError::Sealed { tree: "admin_log" })));
        assert_eq!(Store::open(&path, sealer()).unwrap().admin_log(0, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = simpul_ledger::database::open(&path).unwrap();
            db.open_tree("meta").unwrap().insert("schema", &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        assert!(matches!(Store::open(&path, sealer()), Err(StoreError::Schema { .. })));
    }

    #[test]
    fn a_damaged_record_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Store::open(&path, sealer()).unwrap();
        store.tree("devices").insert("x", b"{not json".as_slice()).unwrap();
        assert!(matches!(store.devices(), Err(StoreError::Corrupt { tree: "devices", .. })));
    }
}
