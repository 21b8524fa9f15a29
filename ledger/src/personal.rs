//! The personal data behind the audit log: which salt turns a person's NIK or KK into the commitments their records
//! carry, and until when it is kept.
//!
//! An entry lives in the `audit_personal` tree under a lookup key `SHA-256(subject key || kind || number)`, so the
//! number itself is never stored and, without the subject key (`subject.key`, 0600), cannot be found by hashing
//! every possible NIK. The entry is `last use (i32 BE days from CE) || salt XOR pad`, the pad being
//! `SHA-256(domain || day key || lookup key)` under the key of the entry's last-use day (`audit-days/DAY.key`).
//!
//! # Why the day keys
//!
//! sled keeps superseded and removed values in its files until it happens to rewrite them, so removing an entry
//! does not remove the salt from the disk. Day keys make removal real: retention deletes the key files of the days
//! it destroys, and every copy of a salt sealed under them, wherever sled left it, is noise from then on (crypto-
//! shredding). An entry is sealed again under the current day's key each time it is used, so keys of past days only
//! cover people not seen since.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{Datelike, NaiveDate};
use sha2::{Digest, Sha256};
use simpul_core::audit::record::{commit, Commitment};

use simpul_files::FileError;

use crate::log::{AuditLog, AuditLogError};

const DOMAIN: &[u8] = b"simpul audit personal data v1\0";
const KEY_SUFFIX: &str = ".key";

#[derive(Debug, thiserror::Error)]
pub enum PersonalError {
    #[error(transparent)]
    Key(#[from] FileError),
    #[error("audit day keys in {0}: {1}")]
    Dir(PathBuf, std::io::Error),
}

/// A person's identifier as a request or an admin change carried it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Identifier {
    /// A resident's or an operator's national identity number.
    Nik(String),
    /// A family card number.
    Kk(String),
    /// An operator's civil-servant number.
    Nip(String),
}

impl Identifier {
    pub fn number(&self) -> &str {
        match self {
            Identifier::Nik(n) | Identifier::Kk(n) | Identifier::Nip(n) => n,
        }
    }

    fn kind(&self) -> &'static [u8] {
        match self {
            Identifier::Nik(_) => b"nik\0",
            Identifier::Kk(_) => b"kk\0",
            Identifier::Nip(_) => b"nip\0",
        }
    }
}

pub struct PersonalData {
    secret: [u8; 32],
    days_dir: PathBuf,
    /// Day keys that exist; a day missing here has no key (never made, or destroyed).
    days: Mutex<BTreeMap<NaiveDate, [u8; 32]>>,
}

impl std::fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalData").field("days_dir", &self.days_dir).finish_non_exhaustive()
    }
}

fn day_of(name: &str) -> Option<NaiveDate> {
    name.strip_suffix(KEY_SUFFIX)?.parse().ok()
}

impl PersonalData {
    /// `secret` makes lookup keys; `days_dir` (made 0700 if missing) holds the day keys.
    pub fn open(secret: [u8; 32], days_dir: PathBuf) -> Result<Self, PersonalError> {
        simpul_files::prepare_dir(&days_dir)?;
        let mut days = BTreeMap::new();
        let listing = std::fs::read_dir(&days_dir).map_err(|e| PersonalError::Dir(days_dir.clone(), e))?;
        for entry in listing {
            let name = entry.map_err(|e| PersonalError::Dir(days_dir.clone(), e))?.file_name();
            if let Some(day) = name.to_str().and_then(day_of) {
                days.insert(day, simpul_files::load_or_generate_secret(&days_dir.join(format!("{day}{KEY_SUFFIX}")))?);
            }
        }
        Ok(PersonalData { secret, days_dir, days: Mutex::new(days) })
    }

    pub(crate) fn lookup(&self, id: &Identifier) -> [u8; 32] {
        Sha256::new().chain_update(self.secret).chain_update(id.kind()).chain_update(id.number()).finalize().into()
    }

    fn pad(day_key: &[u8; 32], lookup: &[u8; 32]) -> [u8; 32] {
        Sha256::new().chain_update(DOMAIN).chain_update(day_key).chain_update(lookup).finalize().into()
    }

    /// The entry for `lookup` with `salt`, last used on `day`, sealed under that day's key (made, durably, if it is
    /// the day's first).
    pub(crate) fn seal(&self, lookup: &[u8; 32], salt: &[u8; 32], day: NaiveDate) -> Result<Vec<u8>, PersonalError> {
        let mut days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        let key = match days.get(&day) {
            Some(key) => *key,
            None => {
                // Made durably, name included, before any entry sealed under it is.
                let key = simpul_files::load_or_generate_secret(&self.days_dir.join(format!("{day}{KEY_SUFFIX}")))?;
                days.insert(day, key);
                key
            }
        };
        let pad = Self::pad(&key, lookup);
        let mut entry = day.num_days_from_ce().to_be_bytes().to_vec();
        entry.extend(salt.iter().zip(pad).map(|(s, p)| s ^ p));
        Ok(entry)
    }

    /// The salt and last-use day in an entry; `None` when its day key is destroyed (or the entry is malformed).
    pub(crate) fn unseal(&self, lookup: &[u8; 32], entry: &[u8]) -> Option<([u8; 32], NaiveDate)> {
        let day = last_use(entry)?;
        let sealed: [u8; 32] = entry.get(4..36)?.try_into().ok()?;
        let key = *self.days.lock().unwrap_or_else(|e| e.into_inner()).get(&day)?;
        let pad = Self::pad(&key, lookup);
        let mut salt = [0u8; 32];
        for (i, byte) in salt.iter_mut().enumerate() {
            *byte = sealed[i] ^ pad[i];
        }
        Some((salt, day))
    }

    /// The commitment records use for `id`, while its personal data is kept; `None` once destroyed (or never seen).
    pub fn commitment(&self, log: &AuditLog, id: &Identifier) -> Result<Option<Commitment>, AuditLogError> {
        let lookup = self.lookup(id);
        let entry = log.personal(&lookup)?;
        Ok(entry.and_then(|e| self.unseal(&lookup, &e)).map(|(salt, _)| commit(&salt, id.number())))
    }

    /// Deletes the key files of every day before `before`; returns how many went.
    pub(crate) fn destroy_days_before(&self, before: NaiveDate) -> Result<u64, PersonalError> {
        let mut days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        let old: Vec<NaiveDate> = days.range(..before).map(|(day, _)| *day).collect();
        for day in &old {
            let path = self.days_dir.join(format!("{day}{KEY_SUFFIX}"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PersonalError::Dir(path, e)),
            }
            days.remove(day);
        }
        simpul_files::sync_dir(&self.days_dir)?;
        Ok(old.len() as u64)
    }
}

/// The last-use day an entry carries in the clear, so retention can pick entries without any key.
pub(crate) fn last_use(entry: &[u8]) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(i32::from_be_bytes(entry.get(..4)?.try_into().ok()?))
}
