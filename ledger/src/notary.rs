//! Signed checkpoints of the audit log: a C2SP signed note over (origin, size, root), made every half second
//! while records arrive and once more at shutdown, and stored beside the log so `audit verify` can check that each
//! is consistent with the next. The signing key (`audit.key`, 0600) is made on first start; its public half, in
//! signed-note verifier form, is what auditors pin (`audit key`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use simpul_core::audit::checkpoint::{self, Checkpoint, CheckpointError, Signer, Verifier};

use super::log::{AuditLog, AuditLogError};

/// How often a new checkpoint is signed while the log grows. Half the promised second, so that an answer is covered
/// by a signature within a second even when a flush is slow; a checkpoint is ~200 bytes, a record ~900.
pub const EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    #[error(transparent)]
    Log(#[from] AuditLogError),
    #[error("audit checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "the audit log holds {size} records but its latest signed checkpoint covers {signed}: records were removed \
         (run `audit verify`)"
    )]
    Shrunk { size: u64, signed: u64 },
    #[error(
        "the audit log's first {size} records do not hash to the root its checkpoint signed: the log was altered \
         (run `audit verify`)"
    )]
    Rewritten { size: u64 },
}

#[derive(Debug)]
pub struct Notary {
    signer: Signer,
    log: Arc<AuditLog>,
    /// The size of the newest stored checkpoint.
    signed: Mutex<u64>,
}

/// The checkpoint signer of the key `seed` under `origin` (checkpoint first line and key name). Without one the
/// origin is `simpul.gateway/` and the key's ID: unique per key, so two gateways' checkpoints can never be mistaken
/// for one another's.
pub fn signer(seed: [u8; 32], origin: Option<&str>) -> Result<Signer, CheckpointError> {
    let origin = match origin {
        Some(origin) => origin.to_owned(),
        None => {
            let hash = Signer::new("simpul.gateway", seed)?.verifier().key_hash();
            format!("simpul.gateway/{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
    };
    Signer::new(origin, seed)
}

impl Notary {
    /// Checks, before anything is appended, that the log still extends its newest stored checkpoint: a log cut
    /// short, or whose tree no longer hashes to the signed root, is refused at start rather than signed over. (This
    /// reads tree nodes only; a record altered beneath an intact node is what `audit verify` finds. A log cut
    /// together with its checkpoints is what the tip catches, in [`AuditLog::open`].)
    pub fn open(signer: Signer, log: Arc<AuditLog>) -> Result<Self, NotaryError> {
        let mut signed = 0;
        if let Some((size, note)) = log.latest_checkpoint()? {
            let (checkpoint, _) = checkpoint::open(&note, &signer.verifier())?;
            if log.size() < checkpoint.size {
                return Err(NotaryError::Shrunk { size: log.size(), signed: checkpoint.size });
            }
            if log.root(checkpoint.size)? != checkpoint.root {
                return Err(NotaryError::Rewritten { size: checkpoint.size });
            }
            signed = size;
        }
        Ok(Notary { signer, log, signed: Mutex::new(signed) })
    }

    pub fn verifier(&self) -> Verifier {
        self.signer.verifier()
    }

    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    pub fn log(&self) -> &Arc<AuditLog> {
        &self.log
    }

    /// Signs and stores a checkpoint for the current size if the log grew since the last one; returns the newest
    /// checkpoint (size and note), `None` while the log is empty. Blocking (a flush).
    pub fn sign_now(&self) -> Result<Option<(u64, String)>, NotaryError> {
        let mut signed = self.signed.lock().unwrap_or_else(|e| e.into_inner());
        let size = self.log.size();
        if size > *signed {
            let root = self.log.root(size)?;
            let note =
                self.signer.sign(&Checkpoint { origin: self.origin().to_owned(), size, root, extensions: vec![] })?;
            self.log.store_checkpoint(size, &note)?;
            *signed = size;
            return Ok(Some((size, note)));
        }
        Ok(self.log.latest_checkpoint()?)
    }

    /// Signs every [`EVERY`] until dropped (the task is aborted at shutdown, after which the caller signs once more).
    pub async fn run(self: Arc<Self>) {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let notary = self.clone();
            match tokio::task::spawn_blocking(move || notary.sign_now()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("signing an audit checkpoint: {e}"),
                Err(e) => tracing::error!("signing an audit checkpoint: {e}"),
            }
        }
    }
}
