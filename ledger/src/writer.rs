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
//! The owner records each admin change in an outbox in the same transaction as the change (so neither exists
//! without the other); the writer copies those events into this log in order ([`AdminOutbox`]) and remembers, in
//! the same transaction, how far it got. An event a crash kept from being copied is copied at the next start. The
//! personal identifiers an event concerns become commitments exactly as a request's do.
//!
//! # The owner's writes
//!
//! An owner may hand the writer [`BatchWrites`]: writes of its own (the gateway's quota counts) that then go into the
//! transaction of the next batch, so they are durable exactly when that batch's records are, without a transaction
//! of their own. Whatever is pending when a batch is built goes in it, so a write made before a record was submitted
//! is durable no later than that record.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use simpul_core::audit::record::{commit, Actor, AdminRecord, AuditRecord, Commitment, Entry, RequestRecord};
use tokio::sync::oneshot;

use crate::log::{AuditLog, AuditLogError, Batch, Write};
use crate::personal::{last_use, Identifier, PersonalData, PersonalError};

/// An admin change as its owner hands it to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminEvent {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// `device.add`, `institution.suspend`, …
    pub action: String,
    pub target: String,
    /// What changed, without secrets and without personal identifiers (those go in `subjects`).
    pub detail: serde_json::Value,
    /// The personal identifiers the change concerns (an operator's NIK and NIP): the record holds only their
    /// commitments.
    #[serde(default)]
    pub subjects: Vec<Identifier>,
}

/// Where the writer finds the admin changes to copy: the owner's durable outbox.
pub trait AdminOutbox: Send + 'static {
    /// Every event committed after outbox sequence number `after`, in order, each with its number.
    fn events_after(&self, after: u64) -> Result<Vec<(u64, AdminEvent)>, String>;
}

/// The owner's writes that ride in the audit log's batches (see "The owner's writes").
pub trait BatchWrites: Send + Sync + 'static {
    /// The writes waiting now, each with the value to be durable; asked while each batch is built.
    fn pending(&self) -> Vec<Write>;
    /// `written` (what [`BatchWrites::pending`] gave) is durable: the batch's flush returned.
    fn durable(&self, written: &[Write]);
}

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
    Writes { done: Done },
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
        outbox: impl AdminOutbox,
        personal: Arc<PersonalData>,
        zone: Tz,
    ) -> Result<Arc<Self>, AuditError> {
        Self::start_with(log, outbox, personal, zone, None)
    }

    /// [`Auditor::start`], with the owner's `writes` put into every batch (see "The owner's writes").
    pub fn start_with(
        log: Arc<AuditLog>,
        outbox: impl AdminOutbox,
        personal: Arc<PersonalData>,
        zone: Tz,
        writes: Option<Arc<dyn BatchWrites>>,
    ) -> Result<Arc<Self>, AuditError> {
        let worker = Worker { log, outbox: Box::new(outbox), personal: personal.clone(), zone, writes };
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

    /// Makes the owner's pending writes durable in a batch of their own, without a record (a benchmark's audit-off
    /// side, which still keeps the quota durable).
    pub async fn commit_writes(&self) -> Result<u64, AuditError> {
        self.submit(|done| Job::Writes { done }).await
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
    outbox: Box<dyn AdminOutbox>,
    personal: Arc<PersonalData>,
    zone: Tz,
    writes: Option<Arc<dyn BatchWrites>>,
}

/// Per person in one batch: the salt, the latest day of use, and the day already stored (an entry is written only
/// when that moves: most lookups repeat people seen earlier the same day).
type People = HashMap<[u8; 32], ([u8; 32], NaiveDate, Option<NaiveDate>)>;

struct PendingRequest {
    at: DateTime<Utc>,
    record: RequestRecord,
    subjects: Vec<Identifier>,
}

impl Worker {
    fn run(self, jobs: Receiver<Job>) {
        self.serve(jobs);
        // Closed: the owner's writes made since the last batch (a refund, say) go in one last batch rather than
        // waiting for a crash to lose them.
        if self.writes.as_ref().is_some_and(|writes| !writes.pending().is_empty()) {
            if let Err(e) = self.append(Vec::new(), false) {
                tracing::error!("audit log: the owner's last writes: {e}");
            }
        }
    }

    fn serve(&self, jobs: Receiver<Job>) {
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
            let mut others = Vec::new();
            for job in batch {
                match job {
                    Job::Request(request, done) => {
                        requests.push(*request);
                        waiting.push(done);
                    }
                    Job::MirrorAdmin { done } => mirror.push(done),
                    Job::Writes { done } => others.push(done),
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
            if requests.is_empty() && mirror.is_empty() && others.is_empty() {
                continue;
            }
            match self.append(requests, !mirror.is_empty()) {
                Ok(range) => {
                    for (seq, done) in (range.end - waiting.len() as u64..range.end).zip(waiting) {
                        let _ = done.send(Ok(seq));
                    }
                    for done in mirror.into_iter().chain(others) {
                        let _ = done.send(Ok(range.end));
                    }
                }
                Err(e) => {
                    tracing::error!("audit log: {e}");
                    for done in waiting.into_iter().chain(mirror).chain(others) {
                        let _ = done.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One append: the admin events not yet copied (when `mirror`), then `requests`; the requests' records are the
    /// last `requests.len()` of the returned range.
    fn append(&self, requests: Vec<PendingRequest>, mirror: bool) -> Result<std::ops::Range<u64>, AuditError> {
        let mut admin = if mirror {
            let after = self.log.admin_mirrored()?;
            self.outbox.events_after(after).map_err(AuditError::Failed)?
        } else {
            Vec::new()
        };
        // A long outbox (after a long outage of the writer) goes in appends of at most MAX_BATCH events.
        while admin.len() > MAX_BATCH {
            let rest = admin.split_off(MAX_BATCH);
            self.append_batch(std::mem::replace(&mut admin, rest), Vec::new())?;
        }
        self.append_batch(admin, requests)
    }

    /// One append: `admin` events, then `requests` (at most MAX_BATCH of each, within the log's MAX_APPEND).
    fn append_batch(
        &self,
        admin: Vec<(u64, AdminEvent)>,
        requests: Vec<PendingRequest>,
    ) -> Result<std::ops::Range<u64>, AuditError> {
        let mut written = Vec::new();
        let range = self.log.append_with(|first| {
            let mut batch = Batch::default();
            if let Some(writes) = &self.writes {
                batch.writes = writes.pending();
                written.clone_from(&batch.writes);
            }
            let mut people = People::new();
            let mut seq = first;
            for (admin_seq, event) in admin {
                let day = self.day(event.at);
                let subjects = self.commit_all(&event.subjects, day, seq, &mut people, &mut batch)?;
                let detail = serde_json::json!({ "admin_seq": admin_seq, "change": event.detail });
                let (action, target) = (event.action.clone(), event.target.clone());
                let mut record = AdminRecord::new(event.actor.clone(), action.clone(), target.clone(), detail)
                    .or_else(|_| {
                        // Only floats are refused; keep the change as text rather than lose the record.
                        let text =
                            serde_json::json!({ "admin_seq": admin_seq, "change_text": event.detail.to_string() });
                        AdminRecord::new(event.actor.clone(), action, target, text)
                    })
                    .expect("text details hold no floats");
                record.subjects = subjects;
                batch.records.push(AuditRecord::new(seq, event.at, Entry::Admin(record)).canonical());
                batch.admin_mirrored = Some(admin_seq);
                seq += 1;
            }
            for PendingRequest { at, mut record, subjects } in requests {
                let day = self.day(at);
                record.subjects = self.commit_all(&subjects, day, seq, &mut people, &mut batch)?;
                batch.records.push(AuditRecord::new(seq, at, Entry::Request(record)).canonical());
                seq += 1;
            }
            for (key, (salt, day, stored)) in people {
                if stored != Some(day) {
                    batch.personal.push((key, self.personal.seal(&key, &salt, day)?));
                }
            }
            Ok::<_, AuditError>(batch)
        })?;
        if let (Some(writes), false) = (&self.writes, written.is_empty()) {
            writes.durable(&written);
        }
        Ok(range)
    }

    fn day(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone).date_naive()
    }

    /// The commitments record `seq` carries for `ids`, used on `day`: each person's salt (made on first sight), their
    /// last use moved forward (records may arrive out of time order, so it only ever moves forward), and the subject
    /// index entry.
    fn commit_all(
        &self,
        ids: &[Identifier],
        day: NaiveDate,
        seq: u64,
        people: &mut People,
        batch: &mut Batch,
    ) -> Result<Vec<Commitment>, AuditError> {
        let mut commitments = Vec::with_capacity(ids.len());
        for id in ids {
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
            batch.subjects.push((commitment.0, seq));
            commitments.push(commitment);
        }
        Ok(commitments)
    }
}
