//! The audit log, one implementation for the gateway and the relay: every request and admin change as a record in
//! an RFC 9162 Merkle tree in sled ([`log`]), written by one thread that commits whole batches with one flush
//! ([`writer`]), its acknowledged size remembered outside the database ([`tip`]), signed as checkpoints every half
//! second ([`notary`]), and read for verification, proofs, search, a person's trail and the semester report
//! ([`queries`]). People are named only through salted commitments whose salts are destroyed at retention
//! ([`personal`]).
//!
//! A record is acknowledged only after the flush that covers it and the tip that counts it are on disk; a log that
//! is then found shorter than what it acknowledged, or different from what it signed, is refused rather than
//! extended, so a sequence number an answer carried is never given to another record.
//!
//! The ledger knows no appliance: admin changes reach it as typed [`writer::AdminEvent`]s through the
//! [`writer::AdminOutbox`] its owner implements, and everything it keeps lives in the sled database it is handed and
//! in [`Files`] beside it.

pub mod database;
pub mod flush;
pub mod log;
pub mod notary;
pub mod personal;
pub mod queries;
pub mod tip;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use simpul_files::FileError;

pub use flush::Flusher;
pub use log::{AuditLog, AuditLogError, Write};
pub use notary::{Notary, NotaryError};
pub use personal::{Identifier, PersonalData, PersonalError};
pub use writer::{AdminEvent, AdminOutbox, AuditError, Auditor, BatchWrites};

/// Where the ledger keeps what must not live inside the database it protects, all in one directory (the owner's
/// state directory, 0700).
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    /// The Ed25519 seed that signs checkpoints.
    pub const AUDIT_KEY: &'static str = "audit.key";
    /// The secret behind the personal-data lookup keys (see [`personal`]).
    pub const SUBJECT_KEY: &'static str = "subject.key";
    /// One key per day of personal-data use, deleted at retention (see [`personal`]).
    pub const AUDIT_DAYS: &'static str = "audit-days";
    /// The acknowledged size and root and the newest signed checkpoint (see [`tip`]).
    pub const TIP: &'static str = "audit.tip";

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Files { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn audit_key(&self) -> PathBuf {
        self.dir.join(Self::AUDIT_KEY)
    }

    pub fn subject_key(&self) -> PathBuf {
        self.dir.join(Self::SUBJECT_KEY)
    }

    pub fn days(&self) -> PathBuf {
        self.dir.join(Self::AUDIT_DAYS)
    }

    pub fn tip(&self) -> PathBuf {
        self.dir.join(Self::TIP)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Log(#[from] AuditLogError),
    #[error(transparent)]
    Notary(#[from] NotaryError),
    #[error(transparent)]
    Personal(#[from] PersonalError),
    #[error("audit key: {0}")]
    Key(#[from] FileError),
    #[error("audit checkpoint origin: {0}")]
    Origin(#[from] simpul_core::audit::checkpoint::CheckpointError),
}

/// The log, its notary and its personal data, opened and checked as a running owner needs them (keys made on
/// first use). The writer is started separately ([`Auditor::start`]), since it needs the owner's admin outbox.
#[derive(Debug)]
pub struct Ledger {
    pub log: Arc<AuditLog>,
    pub notary: Arc<Notary>,
    pub personal: Arc<PersonalData>,
}

impl Ledger {
    /// Opens the ledger in `db`, refusing a log shorter than it acknowledged or different from what it signed.
    pub fn open(db: &sled::Db, flusher: Arc<Flusher>, files: &Files, origin: Option<&str>) -> Result<Self, OpenError> {
        let seed = simpul_files::load_or_generate_secret(&files.audit_key())?;
        let signer = notary::signer(seed, origin)?;
        let log = Arc::new(AuditLog::open(db, flusher, &files.tip(), Some(&signer.verifier()))?);
        let notary = Arc::new(Notary::open(signer, log.clone())?);
        let subject_key = simpul_files::load_or_generate_secret(&files.subject_key())?;
        let personal = Arc::new(PersonalData::open(subject_key, files.days())?);
        Ok(Ledger { log, notary, personal })
    }
}
