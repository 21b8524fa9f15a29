//! The audit log's one writer: a thread that takes whatever records are waiting, appends them as one batch (one
//! transaction, one flush) and then tells each waiting request its sequence number. Under load a batch holds many
//! requests, so the flush a request waits for is shared (group commit); alone, a request waits for one flush.
//!
//! # Personal data
//!
//! Records name people only by commitments `SHA-256(salt || NIK)` (see `simpul_core::audit::record`); the salt is
//! per person and kept apart (see [`super::personal`]). Each use moves the person's last-use day forward; retention
//! destroys people unused for `[audit] personal_data_days`, after which the commitments in old records lead
//! nowhere, while the records, and so every proof, stay as they were. A person seen again later gets a new salt.
//!
//! # Admin changes
//!
//! The store records each admin change in its `admin_log` in the same transaction as the change (so neither exists
//! without the other); the writer copies those events into this log in order and remembers, in the same
//! transaction, how far it got. An event a crash kept from being copied is copied at the next start.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rand::RngCore;
use simpul_core::audit::record::{commit, AdminRecord, AuditRecord, Entry, RequestRecord};
use tokio::sync::oneshot;

use super::log::{AuditLog, AuditLogError, Batch};
pub use super::personal::Identifier;
use super::personal::{last_use, PersonalData, PersonalError};
use crate::store::Store;

/// Records waiting beyond this make callers wait for room (back-pressure rather than unbounded memory).
const QUEUE: usize = 16 * 1024;
/// The most records one transaction takes; more wait for the next.
const MAX_BATCH: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("personal data: {0}")]
    Personal(String),
    #[error("the audit log could not be written: {0}")]
    Failed(String),
    #[error("the audit log is closed")]
    Closed,
}

impl From<PersonalError> for AuditError {
    fn from(e: PersonalError) -> Self {
        AuditError::Personal(e.to_string())
    }
}

impl From<AuditLogError> for AuditError {
    fn from(e: AuditLogError) -> Self {
        AuditError::Failed(e.to_string())
    }
}

enum Job {
    Request(Box<PendingRequest>, Done),
    MirrorAdmin { done: Done },
    Destroy { before: NaiveDate, done: Done },
}

type Done = oneshot::Sender<Result<u64, AuditError>>;

/// The handle requests and admin operations record through.
#[derive(Debug)]
pub struct Auditor {
    queue: Mutex<Option<SyncSender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    personal: Arc<PersonalData>,
}

impl Auditor {
    /// Starts the writer thread, which first copies admin events a crash left uncopied.
    pub fn start(
        log: Arc<AuditLog>,
        store: Store,
        personal: Arc<PersonalData>,
        zone: Tz,
    ) -> Result<Arc<Self>, AuditError> {
        let worker = Worker { log, store, personal: personal.clone(), zone };
        worker.append(Vec::new(), true)?;
        let (queue, jobs) = mpsc::sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || worker.run(jobs))
            .map_err(|e| AuditError::Failed(format!("starting the writer thread: {e}")))?;
        Ok(Arc::new(Auditor { queue: Mutex::new(Some(queue)), worker: Mutex::new(Some(thread)), personal }))
    }

    pub fn personal(&self) -> &Arc<PersonalData> {
        &self.personal
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, AuditError>>) -> Job,
    ) -> Result<T, AuditError> {
        let (done, answer) = oneshot::channel();
        let Some(queue) = self.queue.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Err(AuditError::Closed);
        };
        let mut job = make(done);
        loop {
            match queue.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    job = back;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(AuditError::Closed),
            }
        }
        answer.await.unwrap_or(Err(AuditError::Closed))
    }

    /// Records one request; returns its sequence number once it is durable. The record's `subjects` are filled in
    /// here from `subjects`.
    pub async fn record(
        &self,
        at: DateTime<Utc>,
        record: RequestRecord,
        subjects: Vec<Identifier>,
    ) -> Result<u64, AuditError> {
        self.submit(|done| Job::Request(Box::new(PendingRequest { at, record, subjects }), done)).await
    }

    /// Copies the admin events committed so far into the log; returns once they are durable in it.
    pub async fn mirror_admin(&self) -> Result<u64, AuditError> {
        self.submit(|done| Job::MirrorAdmin { done }).await
    }

    /// Destroys personal data last used before `before`; returns how many people's data went.
    pub async fn destroy_personal_data(&self, before: NaiveDate) -> Result<u64, AuditError> {
        self.submit(|done| Job::Destroy { before, done }).await
    }

    /// Stops the writer after the records already queued; later calls fail with [`AuditError::Closed`].
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = worker.join();
        }
    }
}

struct Worker {
    log: Arc<AuditLog>,
    store: Store,
    personal: Arc<PersonalData>,
    zone: Tz,
}

struct PendingRequest {
    at: DateTime<Utc>,
    record: RequestRecord,
    subjects: Vec<Identifier>,
}

impl Worker {
    fn run(self, jobs: Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut requests = Vec::new();
            let mut waiting = Vec::new();
            let mut mirror = Vec::new();
            for job in batch {
                match job {
                    Job::Request(request, done) => {
                        requests.push(*request);
                        waiting.push(done);
                    }
                    Job::MirrorAdmin { done } => mirror.push(done),
                    Job::Destroy { before, done } => {
                        // Entries first, then the day keys: a crash in between leaves keys that the next round
                        // deletes, never entries that could be read after their keys were meant to be gone.
                        let destroyed = self
                            .log
                            .destroy_personal(|v| last_use(v).is_none_or(|day| day < before))
                            .map_err(AuditError::from)
                            .and_then(|n| Ok(self.personal.destroy_days_before(before).map(|_| n)?));
                        let _ = done.send(destroyed);
                    }
                }
            }
            if requests.is_empty() && mirror.is_empty() {
                continue;
            }
            match self.append(requests, !mirror.is_empty()) {
                Ok(range) => {
                    for (seq, done) in (range.end - waiting.len() as u64..range.end).zip(waiting) {
                        let _ = done.send(Ok(seq));
                    }
                    for done in mirror {
                        let _ = done.send(Ok(range.end));
                    }
                }
                Err(e) => {
                    tracing::error!("audit log: {e}");
                    for done in waiting.into_iter().chain(mirror) {
                        let _ = done.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One append: the admin events not yet copied (when `mirror`), then `requests`; the requests' records are the
    /// last `requests.len()` of the returned range.
    fn append(&self, requests: Vec<PendingRequest>, mirror: bool) -> Result<std::ops::Range<u64>, AuditError> {
        let admin = if mirror {
            let after = self.log.admin_mirrored()?;
            self.store.admin_log(after, usize::MAX).map_err(|e| AuditError::Failed(e.to_string()))?
        } else {
            Vec::new()
        };
        let range = self.log.append_with(|first| {
            let mut batch = Batch::default();
            let mut seq = first;
            for (admin_seq, event) in admin {
                let detail =
                    serde_json::json!({ "admin_seq": admin_seq, "pid": event.actor.pid, "change": event.detail });
                let record = AdminRecord::new(event.actor.uid, event.action.clone(), event.target.clone(), detail)
                    .or_else(|_| {
                        // Only floats are refused; keep the change as text rather than lose the record.
                        let text =
                            serde_json::json!({ "admin_seq": admin_seq, "change_text": event.detail.to_string() });
                        AdminRecord::new(event.actor.uid, event.action.clone(), event.target.clone(), text)
                    })
                    .expect("text details hold no floats");
                batch.records.push(AuditRecord { seq, at: event.at, entry: Entry::Admin(record) }.canonical());
                batch.admin_mirrored = Some(admin_seq);
                seq += 1;
            }
            // Per person in this batch: the salt and the latest day of use. Records may arrive out of time order
            // (a long request finishing after a short later one), so the day only ever moves forward.
            // Per person in this batch: the salt, the latest day of use, and the day already stored (an entry is
            // written only when that moves: most lookups repeat people seen earlier the same day).
            let mut people: HashMap<[u8; 32], ([u8; 32], NaiveDate, Option<NaiveDate>)> = HashMap::new();
            for PendingRequest { at, mut record, subjects } in requests {
                let day = at.with_timezone(&self.zone).date_naive();
                for id in &subjects {
                    let key = self.personal.lookup(id);
                    let (salt, last, stored) = match people.get(&key) {
                        Some(known) => *known,
                        None => {
                            let entry = self.log.personal(&key)?;
                            match entry.and_then(|entry| self.personal.unseal(&key, &entry)) {
                                Some((salt, last)) => (salt, last, Some(last)),
                                None => {
                                    let mut fresh = [0u8; 32];
                                    rand::rngs::OsRng.fill_bytes(&mut fresh);
                                    (fresh, day, None)
                                }
                            }
                        }
                    };
                    people.insert(key, (salt, last.max(day), stored));
                    let commitment = commit(&salt, id.number());
                    record.subjects.push(commitment);
                    batch.subjects.push((commitment.0, seq));
                }
                batch.records.push(AuditRecord { seq, at, entry: Entry::Request(record) }.canonical());
                seq += 1;
            }
            for (key, (salt, day, stored)) in people {
                if stored != Some(day) {
                    batch.personal.push((key, self.personal.seal(&key, &salt, day)?));
                }
            }
            Ok::<_, AuditError>(batch)
        })?;
        Ok(range)
    }
}
