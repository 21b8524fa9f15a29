//! The local warehouse cache's store: the sled tree `cache` in the gateway's database, under the rules of
//! `simpul_core::cache` (what is kept, until when, under which key), and the handle the running gateway changes it
//! through (`cache on|off|rekey|purge|stats`).
//!
//! An entry's key is the keyed digest of its request (never a NIK); its value is `until || what was asked || answer`,
//! sealed with ChaCha20-Poly1305 under `cache.key` (0600, beside the database, apart from `store.key` so that the
//! cache can be dropped or its key replaced without touching anything else), with the entry's key as associated data,
//! so a value moved to another key does not open. An entry that does not open (damaged, or sealed under another key)
//! is a miss: it is never served, it is logged once, and it is removed with the expired ones or overwritten by the
//! next answer. The cache is a copy of the warehouse, so its writes are not flushed: an entry lost in a crash is
//! asked again.
//!
//! Beside it, the tree `cache_index` lists every entry under each person it is about (every NIK the request names,
//! every NIK and KK number in the answer, a parent's NIK included, the KK number a family request names) and under
//! the institution whose request filled it: `subject digest || entry key`, the digest keyed under another key derived
//! from `cache.key`, so that a person's entries are found without a clear NIK at rest. An entry and its index lines
//! are written and removed in one transaction; the sweep removes index lines left without their entry (an entry that
//! did not open). A purge ends by replacing the key: sled keeps removed values in its files until it rewrites them,
//! and those then no longer open.
//! The tree `cache_state` keeps the admin's on/off choice and today's hit and miss counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use simpul_core::cache::{CacheKeys, Named, Validity};
use simpul_core::policy::Query;
use simpul_core::wire::envelope::Envelope;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::OnceCell;

use crate::admin::cache::{OffReason, Tally};
use crate::seal::Sealer;

/// The cache's key file in the state directory.
pub const CACHE_KEY: &str = "cache.key";
const TREE: &str = "cache";
const INDEX: &str = "cache_index";
const STATE: &str = "cache_state";
/// `cache_state`: the admin's choice (`1` on, `0` off), absent while the config decides.
const CHOICE: &[u8] = b"serving";
/// `cache_state`: `counts/` and a local date: that day's hits and misses per institution (JSON).
const COUNTS: &[u8] = b"counts/";
const UNTIL: usize = 8;
const ASKED_LEN: usize = 4;
const DIGEST: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache key: {0}")]
    Key(#[from] simpul_files::FileError),
    #[error("cache tree: {0}")]
    Sled(#[from] sled::Error),
    #[error("the cache is not open: {0}")]
    NotOpen(String),
    #[error("cache.consolidation names no day: nothing could be kept")]
    NoConsolidation,
}

fn storage(error: TransactionError<()>) -> CacheError {
    match error {
        TransactionError::Storage(e) => CacheError::Sled(e),
        TransactionError::Abort(()) => unreachable!("the cache's transactions never abort"),
    }
}

/// The upstream's answer to one request, parsed, or its failure (status and message): what the requests that wait for
/// one upstream call share.
pub type Fetched = Result<Envelope, (http::StatusCode, String)>;

/// The request an answer is kept for: who asked (the institution, for `cache purge --institution`), under which
/// upstream consumer, and what.
#[derive(Debug, Clone)]
pub struct Asked<'a> {
    institution: &'a str,
    consumer: &'a str,
    query: &'a Query,
    /// The canonical upstream body (`Query::upstream_request`): written once, for the entry's key and its record.
    body: String,
}

impl<'a> Asked<'a> {
    pub fn new(institution: &'a str, consumer: &'a str, query: &'a Query) -> Asked<'a> {
        let body = String::from_utf8(query.upstream_request().to_body()).expect("a JSON body is UTF-8");
        Asked { institution, consumer, query, body }
    }
}

/// Whose entries `purge` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// Every entry whose request or answer names this NIK (16 digits).
    Nik(String),
    /// Every entry whose request or answer names this KK number.
    Kk(String),
    /// Every entry filled by this institution's requests.
    Institution(String),
    All,
}

/// What a kept entry remembers of its request, sealed with the answer: enough to key it again under a new secret
/// (`rekey`) and to list it under everyone it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Filled {
    institution: String,
    consumer: String,
    method: String,
    /// The canonical upstream body (`Query::upstream_request`).
    body: String,
    niks: BTreeSet<String>,
    kks: BTreeSet<String>,
}

impl Filled {
    fn new(asked: &Asked<'_>, answer: &Envelope) -> Filled {
        let Named { niks, kks } = Named::of(asked.query, answer);
        Filled {
            institution: asked.institution.to_owned(),
            consumer: asked.consumer.to_owned(),
            method: asked.query.method().wire_name().to_owned(),
            body: asked.body.clone(),
            niks,
            kks,
        }
    }

    /// Everyone the entry is listed under: (kind, identifier).
    fn subjects(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let niks = self.niks.iter().map(|n| ("nik", n.as_str()));
        let kks = self.kks.iter().map(|k| ("kk", k.as_str()));
        niks.chain(kks).chain(std::iter::once(("institution", self.institution.as_str())))
    }
}

/// One entry, opened.
#[derive(Debug)]
struct Entry {
    until: DateTime<Utc>,
    filled: Filled,
    answer: Vec<u8>,
}

/// The trees a cache lives in, shared by the caches keyed under successive keys while `rekey` moves entries from one
/// to the next, with the sealed size of every entry (kept under `max_bytes`).
#[derive(Debug)]
struct Trees {
    entries: sled::Tree,
    index: sled::Tree,
    /// How many entries there are (sled counts a tree by walking it).
    count: AtomicU64,
    bytes: AtomicU64,
    max_bytes: u64,
    /// Bumped when a purge begins and when a rekey (which ends every purge too) switches to a new store, whose
    /// [`Cache::epoch`] it is. An answer is kept only through the store of the current epoch (see [`Ticket`]); the
    /// check and the write happen under the read side, so no bump comes between them, and once a bump is made no
    /// answer asked for before it is being written.
    epoch: RwLock<u64>,
}

/// Taken before an upstream call: when the answer was asked for, and the epoch of the store it was asked through. An
/// answer fetched across a purge or a rekey is not kept, so that once `cache purge` has answered no call already
/// under way puts the erased person's answer back, and no call puts an entry under a key a rekey has let go.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    fetched: DateTime<Utc>,
    epoch: u64,
}

impl Trees {
    fn open(db: &sled::Db, max_bytes: u64) -> Result<Arc<Trees>, CacheError> {
        let entries = db.open_tree(TREE)?;
        let (mut count, mut bytes) = (0, 0);
        for value in entries.iter().values() {
            count += 1;
            bytes += value?.len() as u64;
        }
        let (count, bytes) = (AtomicU64::new(count), AtomicU64::new(bytes));
        Ok(Arc::new(Trees { entries, index: db.open_tree(INDEX)?, count, bytes, max_bytes, epoch: RwLock::new(0) }))
    }
}

/// The sealed answers, by keyed request digest, and the upstream calls under way, by the same key.
#[derive(Debug)]
pub struct Cache {
    trees: Arc<Trees>,
    sealer: Sealer,
    keys: CacheKeys,
    /// Keys the index's subject digests, apart from the entries' keys.
    subjects: CacheKeys,
    validity: Validity,
    /// Whether an entry that did not open was logged already: a wrong key makes every entry fail, once is enough.
    unopenable_logged: AtomicBool,
    /// One cell per key being fetched; it holds only requests in flight, so it is bounded by them.
    flights: Mutex<HashMap<[u8; 32], Arc<OnceCell<Fetched>>>>,
    /// The epoch this store was made for ([`Trees::epoch`]): past it, nothing more is kept through it.
    epoch: u64,
}

/// Takes a flight off the map once it has landed, or when the last request taking part in it goes away before, so
/// that the next miss (after an answer that was not kept, or a failure) asks again and the map holds only flights
/// under way. A flight whose caller went away while others wait stays: one of them carries it on.
struct Landing<'a> {
    cache: &'a Cache,
    key: &'a [u8; 32],
    cell: &'a Arc<OnceCell<Fetched>>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut flights = self.cache.flights();
        let ours = flights.get(self.key).is_some_and(|current| Arc::ptr_eq(current, self.cell));
        // The map's reference and this request's: no one else takes part (new ones join under the lock held here).
        let alone = Arc::strong_count(self.cell) == 2;
        if ours && (self.cell.initialized() || alone) {
            flights.remove(self.key);
        }
    }
}

impl Cache {
    /// Opens the trees in `db`, with `key_file` (made on first use) sealing their values and keying their keys,
    /// keeping answers as long as `validity` says and while they take at most `max_bytes` sealed.
    pub fn open(db: &sled::Db, key_file: &Path, validity: Validity, max_bytes: u64) -> Result<Cache, CacheError> {
        let secret = simpul_files::load_or_generate_secret(key_file)?;
        Ok(Cache::keyed(Trees::open(db, max_bytes)?, secret, validity, 0))
    }

    fn keyed(trees: Arc<Trees>, secret: [u8; 32], validity: Validity, epoch: u64) -> Cache {
        // One secret, three uses kept apart: entry keys and index digests are HMACs under derived keys, the seal
        // ChaCha20 under another.
        let derive = |label: &[u8]| -> [u8; 32] {
            use sha2::Digest;
            sha2::Sha256::new().chain_update(label).chain_update(secret).finalize().into()
        };
        Cache {
            trees,
            sealer: Sealer::new(derive(b"simpul cache seal")),
            keys: CacheKeys::new(derive(b"simpul cache key")),
            subjects: CacheKeys::new(derive(b"simpul cache index")),
            validity,
            unopenable_logged: AtomicBool::new(false),
            flights: Mutex::default(),
            epoch,
        }
    }

    /// Runs `fetch` for `key` unless a call for the same key is under way, in which case its result is awaited
    /// instead: concurrent misses for one request make one upstream call, and all of them get its answer or its
    /// failure. If the request running the call goes away before it ends, a waiting one runs it.
    pub async fn once(&self, key: &[u8; 32], fetch: impl Future<Output = Fetched>) -> Fetched {
        let cell = self.flights().entry(*key).or_default().clone();
        let _landing = Landing { cache: self, key, cell: &cell };
        cell.get_or_init(|| fetch).await.clone()
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<OnceCell<Fetched>>>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry key of the answer to `asked` (its upstream consumer and request; not who asked).
    pub fn key(&self, asked: &Asked<'_>) -> [u8; 32] {
        self.keys.key_of(asked.consumer, asked.query.method().wire_name(), &asked.body)
    }

    /// The answer stored under `key` if it is still valid at `now`; anything else (absent, expired, unopenable,
    /// unreadable) is a miss.
    pub fn get(&self, key: &[u8; 32], now: DateTime<Utc>) -> Option<Vec<u8>> {
        let value = match self.trees.entries.get(key) {
            Ok(value) => value?,
            Err(e) => {
                tracing::error!("reading the cache: {e}");
                return None;
            }
        };
        let entry = self.open_entry(key, &value)?;
        (now < entry.until).then(|| entry.into_answer())
    }

    /// What an upstream call asked for at `fetched` must show to have its answer kept.
    pub fn ticket(&self, fetched: DateTime<Utc>) -> Ticket {
        Ticket { fetched, epoch: self.epoch }
    }

    /// Keeps the upstream's `answer` (`raw` as it came) to `asked`, asked for with `ticket`, if the rules allow it,
    /// no purge or rekey began since, and it fits under `max_bytes`; says whether it was kept.
    pub fn put(&self, key: &[u8; 32], asked: &Asked<'_>, answer: &Envelope, raw: &[u8], ticket: Ticket) -> bool {
        let Some(until) = self.validity.until(&answer.outcome(), ticket.fetched) else { return false };
        let epoch = self.trees.epoch.read().unwrap_or_else(|e| e.into_inner());
        if *epoch != ticket.epoch {
            return false;
        }
        let entry = Entry { until, filled: Filled::new(asked, answer), answer: raw.to_vec() };
        self.write(key, &entry).unwrap_or_else(|e| {
            tracing::error!("writing the cache: {e}");
            false
        })
    }

    /// How many entries there are, and their sealed size.
    pub fn size(&self) -> (u64, u64) {
        (self.trees.count.load(Ordering::Relaxed), self.trees.bytes.load(Ordering::Relaxed))
    }

    fn index_keys(&self, key: &[u8], filled: &Filled) -> Vec<Vec<u8>> {
        filled.subjects().map(|(kind, id)| [&self.subjects.subject(kind, id)[..], key].concat()).collect()
    }

    /// Writes `entry` under `key` with its index lines, unless it would take the cache past `max_bytes` (then
    /// `false`: new answers are not kept until expired or purged entries make room). An entry it replaces (expired
    /// and not swept yet, or filled by another institution under the same consumer) leaves its room and the index
    /// lines the new one lacks.
    fn write(&self, key: &[u8], entry: &Entry) -> Result<bool, CacheError> {
        let asked = serde_json::to_vec(&entry.filled).expect("a request serializes");
        let mut plain = Vec::with_capacity(UNTIL + ASKED_LEN + asked.len() + entry.answer.len());
        plain.extend_from_slice(&entry.until.timestamp().to_be_bytes());
        plain.extend_from_slice(&(asked.len() as u32).to_be_bytes());
        plain.extend_from_slice(&asked);
        plain.extend_from_slice(&entry.answer);
        let sealed = self.sealer.seal(TREE, key, &plain);
        let size = sealed.len() as u64;
        let replaced = self.trees.entries.get(key)?.map_or(0, |old| old.len() as u64);
        // Reserved before the write, so that concurrent writes cannot all pass one check; given back if it fails.
        let room = |bytes: u64| (bytes + size <= self.trees.max_bytes + replaced).then_some(bytes + size);
        if self.trees.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, room).is_err() {
            return Ok(false);
        }
        let index = self.index_keys(key, &entry.filled);
        let written = (&self.trees.entries, &self.trees.index).transaction(|(entries, lines)| {
            for line in &index {
                lines.insert(line.as_slice(), &[][..])?;
            }
            let old = entries.insert(key, sealed.as_slice())?;
            if let Some(replaced) = old.as_ref().and_then(|old| self.unseal(key, old)) {
                for line in self.index_keys(key, &replaced.filled) {
                    if !index.contains(&line) {
                        lines.remove(line)?;
                    }
                }
            }
            Ok::<_, ConflictableTransactionError<()>>(old)
        });
        let old = written.map_err(|e| {
            self.trees.bytes.fetch_sub(size, Ordering::Relaxed);
            storage(e)
        })?;
        match old {
            Some(old) => self.trees.bytes.fetch_sub(old.len() as u64, Ordering::Relaxed),
            None => self.trees.count.fetch_add(1, Ordering::Relaxed),
        };
        Ok(true)
    }

    /// Removes the entry under `key` if its sealed value is still `value` (a fresh answer written since stays), with
    /// the index lines it opens to; says whether it went.
    fn remove(&self, key: &[u8], value: &[u8]) -> Result<bool, CacheError> {
        let index = self.unseal(key, value).map(|entry| self.index_keys(key, &entry.filled)).unwrap_or_default();
        let removed = (&self.trees.entries, &self.trees.index)
            .transaction(|(entries, lines)| {
                if entries.get(key)?.as_deref() != Some(value) {
                    return Ok(false);
                }
                for line in &index {
                    lines.remove(line.as_slice())?;
                }
                entries.remove(key)?;
                Ok::<_, ConflictableTransactionError<()>>(true)
            })
            .map_err(storage)?;
        if removed {
            self.trees.bytes.fetch_sub(value.len() as u64, Ordering::Relaxed);
            self.trees.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Removes the entries expired at `now` and those that do not open; returns how many went.
    fn sweep(&self, now: DateTime<Utc>) -> Result<usize, CacheError> {
        self.remove_where(|key, value| self.open_entry(key, value).is_none_or(|entry| entry.until <= now))
    }

    /// Removes every entry `doomed` picks (by key and sealed value), then the index lines left without an entry;
    /// returns how many entries went.
    fn remove_where(&self, doomed: impl Fn(&[u8], &[u8]) -> bool) -> Result<usize, CacheError> {
        let mut removed = 0;
        for entry in self.trees.entries.iter() {
            let (key, value) = entry?;
            if doomed(&key, &value) && self.remove(&key, &value)? {
                removed += 1;
            }
        }
        self.prune_index()?;
        Ok(removed)
    }

    /// Removes the index lines whose entry is gone (it did not open when it was removed, or a rekey moved it).
    fn prune_index(&self) -> Result<(), CacheError> {
        for line in self.trees.index.iter().keys() {
            self.remove_orphan(&line?)?;
        }
        Ok(())
    }

    /// Removes the index line `line` if its entry is absent, checked in the same transaction: an entry written since
    /// the line was read keeps it.
    fn remove_orphan(&self, line: &[u8]) -> Result<(), CacheError> {
        (&self.trees.entries, &self.trees.index)
            .transaction(|(entries, lines)| {
                if entries.get(&line[DIGEST..])?.is_none() {
                    lines.remove(line)?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(storage)
    }

    /// Removes every entry `target` names, with its index lines; returns how many went.
    fn purge(&self, target: &Purge) -> Result<usize, CacheError> {
        let (kind, id) = match target {
            Purge::Nik(nik) => ("nik", nik),
            Purge::Kk(kk) => ("kk", kk),
            Purge::Institution(institution) => ("institution", institution),
            Purge::All => return self.remove_where(|_, _| true),
        };
        let prefix = self.subjects.subject(kind, id);
        let mut removed = 0;
        for line in self.trees.index.scan_prefix(prefix).keys() {
            let line = line?;
            let key = &line[DIGEST..];
            if let Some(value) = self.trees.entries.get(key)? {
                removed += usize::from(self.remove(key, &value)?);
            }
            // An entry that did not open left its lines: this one goes now, the others with the next sweep.
            self.remove_orphan(&line)?;
        }
        Ok(removed)
    }

    /// Moves every entry `old` (the cache under the previous key) opens to this cache's key, re-sealed, and drops
    /// what neither opens; entries this cache opens already (written by requests since the switch) stay. Returns how
    /// many were re-sealed and how many dropped.
    fn take_over(&self, old: Option<&Cache>) -> Result<(usize, usize), CacheError> {
        let (mut resealed, mut dropped) = (0, 0);
        for entry in self.trees.entries.iter() {
            let (key, value) = entry?;
            if self.unseal(&key, &value).is_some() {
                continue;
            }
            match old.and_then(|old| Some((old, old.unseal(&key, &value)?))) {
                Some((old, entry)) => {
                    old.remove(&key, &value)?;
                    let filled = &entry.filled;
                    let new_key = self.keys.key_of(&filled.consumer, &filled.method, &filled.body);
                    if self.write(&new_key, &entry)? {
                        resealed += 1;
                    } else {
                        dropped += 1;
                    }
                }
                None => dropped += usize::from(self.remove(&key, &value)?),
            }
        }
        self.prune_index()?;
        Ok((resealed, dropped))
    }

    /// The entry's validity and answer, or `None` (logged once) when it does not open. What it was asked for is
    /// left unread: a hit does not need it.
    fn open_entry(&self, key: &[u8], value: &[u8]) -> Option<Opened> {
        let opened = self.open_raw(key, value);
        if opened.is_none() && !self.unopenable_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "a cache entry does not open with cache.key (damaged, or sealed under another key); such entries are \
                 not served, and are removed by the next sweep"
            );
        }
        opened
    }

    fn open_raw(&self, key: &[u8], value: &[u8]) -> Option<Opened> {
        let plain = self.sealer.open(TREE, key, value).ok()?;
        let until = DateTime::from_timestamp(i64::from_be_bytes(plain.get(..UNTIL)?.try_into().ok()?), 0)?;
        let asked_len = u32::from_be_bytes(plain.get(UNTIL..UNTIL + ASKED_LEN)?.try_into().ok()?) as usize;
        let answer_at = (UNTIL + ASKED_LEN).checked_add(asked_len).filter(|at| *at <= plain.len())?;
        Some(Opened { until, plain, answer_at })
    }

    /// The whole entry, quietly `None` when it does not open.
    fn unseal(&self, key: &[u8], value: &[u8]) -> Option<Entry> {
        let opened = self.open_raw(key, value)?;
        let filled = serde_json::from_slice(&opened.plain[UNTIL + ASKED_LEN..opened.answer_at]).ok()?;
        Some(Entry { until: opened.until, filled, answer: opened.plain[opened.answer_at..].to_vec() })
    }
}

/// An entry's plain text: `until || asked length || asked || answer`.
struct Opened {
    until: DateTime<Utc>,
    plain: Vec<u8>,
    answer_at: usize,
}

impl Opened {
    fn into_answer(mut self) -> Vec<u8> {
        self.plain.drain(..self.answer_at);
        self.plain
    }
}

/// How the cache stands: whether requests are answered from it, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub on: bool,
    pub off_reason: Option<OffReason>,
    /// Why the cache could not be opened.
    pub error: Option<String>,
}

/// Hits and misses per institution: since the gateway started, and on `day` (local).
#[derive(Debug, Default)]
struct Counts {
    since_start: BTreeMap<String, Tally>,
    day: NaiveDate,
    today: BTreeMap<String, Tally>,
}

/// The cache as the running gateway holds it: the store (opened at start, or again by `cache on` and `cache rekey`),
/// whether requests are answered from it, and its hit counts. A request takes the store once
/// ([`CacheHandle::serving`]) and keeps it to its end, so a switch or a rekey reaches the next request whole.
#[derive(Debug)]
pub struct CacheHandle {
    db: sled::Db,
    key_file: PathBuf,
    validity: Validity,
    max_bytes: u64,
    /// `[cache] enabled`: what decides while the admin has made no choice.
    configured: bool,
    /// `cache_state`; `None` when it could not be opened (then the cache is not open either).
    state: Option<sled::Tree>,
    current: RwLock<Current>,
    counts: Mutex<Counts>,
    /// Held by whatever removes or moves entries (sweep, purge, rekey), so that none of them works with a store a
    /// rekey has replaced: an old key would take every re-sealed entry for a damaged one.
    maintenance: Mutex<()>,
}

#[derive(Debug, Clone)]
struct Current {
    store: Result<Arc<Cache>, String>,
    /// The admin's choice, if any.
    chosen: Option<bool>,
}

impl CacheHandle {
    /// Opens the cache in `db` with `key_file`, whatever `configured` says (so that a cache turned on later, and
    /// `cache purge` while it is off, find it); today's counts as last kept. A cache that cannot be opened is logged
    /// and left off: requests are answered from upstream.
    pub fn open(
        db: &sled::Db,
        key_file: PathBuf,
        validity: Validity,
        max_bytes: u64,
        configured: bool,
        today: NaiveDate,
    ) -> CacheHandle {
        let state = db.open_tree(STATE).map_err(|e| e.to_string());
        let read = |key: &[u8]| state.as_ref().ok().and_then(|tree| tree.get(key).ok().flatten());
        let chosen = read(CHOICE).map(|v| v.as_ref() == [1]);
        let today_counts = read(&counts_key(today)).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let store = state
            .clone()
            .and_then(|_| Cache::open(db, &key_file, validity.clone(), max_bytes).map_err(|e| e.to_string()))
            .map(Arc::new);
        if let Err(e) = &store {
            if chosen.unwrap_or(configured) {
                tracing::error!("the cache is off, every request goes upstream: {e}");
            }
        }
        let counts = Counts { since_start: BTreeMap::new(), day: today, today: today_counts };
        CacheHandle {
            db: db.clone(),
            key_file,
            validity,
            max_bytes,
            configured,
            state: state.ok(),
            current: RwLock::new(Current { store, chosen }),
            counts: Mutex::new(counts),
            maintenance: Mutex::new(()),
        }
    }

    fn state(&self) -> Result<&sled::Tree, CacheError> {
        self.state.as_ref().ok_or_else(|| CacheError::NotOpen("its state tree could not be opened".into()))
    }

    fn current(&self) -> Current {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_current(&self, current: Current) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = current;
    }

    /// The store requests are answered from, or `None` while the cache is off.
    pub fn serving(&self) -> Option<Arc<Cache>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        match &current.store {
            Ok(cache) if current.chosen.unwrap_or(self.configured) => Some(cache.clone()),
            _ => None,
        }
    }

    /// The store whatever the switch says (what `purge`, `stats` and the sweep work on).
    pub fn store(&self) -> Result<Arc<Cache>, CacheError> {
        self.current().store.map_err(CacheError::NotOpen)
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn condition(&self) -> Condition {
        let current = self.current();
        let wanted = current.chosen.unwrap_or(self.configured);
        let error = current.store.as_ref().err().cloned();
        let off_reason = match (wanted, &error, current.chosen) {
            (true, None, _) => None,
            (true, Some(_), _) => Some(OffReason::Error),
            (false, _, Some(_)) => Some(OffReason::Admin),
            (false, _, None) => Some(OffReason::Config),
        };
        Condition { on: off_reason.is_none(), off_reason, error }
    }

    /// Turns the cache on or off and keeps that choice (it outlasts a restart and overrides `[cache] enabled`).
    /// Turning it on opens the store again if it could not be opened (say `cache.key` was mended meanwhile); if it
    /// still cannot be, nothing changes.
    pub fn switch(&self, on: bool) -> Result<(), CacheError> {
        let mut current = self.current();
        if on {
            if self.validity.consolidation.is_empty() {
                return Err(CacheError::NoConsolidation);
            }
            if current.store.is_err() {
                let validity = self.validity.clone();
                current.store = Ok(Arc::new(Cache::open(&self.db, &self.key_file, validity, self.max_bytes)?));
            }
        }
        self.state()?.insert(CHOICE, &[u8::from(on)])?;
        current.chosen = Some(on);
        self.set_current(current);
        Ok(())
    }

    fn maintenance(&self) -> std::sync::MutexGuard<'_, ()> {
        self.maintenance.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the expired entries and those that do not open (whether the cache is on or off); returns how many
    /// went.
    pub fn sweep(&self, now: DateTime<Utc>) -> Result<usize, CacheError> {
        let _maintenance = self.maintenance();
        self.store()?.sweep(now)
    }

    /// Removes every entry `target` names (whether the cache is on or off), then replaces the key as `rekey` does:
    /// sled keeps a removed value in its files until it rewrites them, and what it keeps no longer opens. Returns how
    /// many entries went. From its start no answer asked for earlier is kept; a purge cut short by an error keeps
    /// nothing new until a rekey.
    pub fn purge(&self, target: &Purge) -> Result<usize, CacheError> {
        let _maintenance = self.maintenance();
        let store = self.store()?;
        *store.trees.epoch.write().unwrap_or_else(|e| e.into_inner()) += 1;
        let removed = store.purge(target)?;
        self.rotate()?;
        Ok(removed)
    }

    /// Replaces `cache.key` with a new secret (written whole, 0600, before anything is sealed under it), switches to
    /// it, then re-seals every entry the old key opens under the new one and drops the rest; returns how many were
    /// re-sealed and how many dropped. Requests go on meanwhile: one that took the new store may miss an entry not
    /// moved yet, and asks upstream; none is served an entry that does not open, and an answer asked for through the
    /// old store is not kept (it would be sealed under a key let go). A crash midway leaves entries under the old key,
    /// which are misses and are swept.
    pub fn rekey(&self) -> Result<(usize, usize), CacheError> {
        let _maintenance = self.maintenance();
        self.rotate()
    }

    /// [`Self::rekey`], under the maintenance lock its caller holds.
    fn rotate(&self) -> Result<(usize, usize), CacheError> {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        simpul_files::replace_private(&self.key_file, format!("{}\n", BASE64.encode(secret)).as_bytes())?;
        let mut current = self.current();
        let old = current.store.clone().ok();
        let trees = match &old {
            Some(old) => old.trees.clone(),
            None => Trees::open(&self.db, self.max_bytes)?,
        };
        let new = {
            // Taken once the answers being written are written; none is written through the old store from now.
            let mut epoch = trees.epoch.write().unwrap_or_else(|e| e.into_inner());
            let new = Arc::new(Cache::keyed(trees.clone(), secret, self.validity.clone(), *epoch + 1));
            current.store = Ok(new.clone());
            self.set_current(current);
            *epoch += 1;
            new
        };
        new.take_over(old.as_deref())
    }

    /// Counts a request of `today` that looked in the cache for `institution`'s answer: a hit, or a miss that went
    /// upstream. A request of the day before, counted after one of the new day (it began before midnight), counts
    /// only since the start: it neither starts its day again nor is the new day's.
    pub fn record(&self, institution: &str, hit: bool, today: NaiveDate) {
        let mut guard = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let counts = &mut *guard;
        if today > counts.day {
            counts.day = today;
            counts.today.clear();
        }
        let of_the_day = (today == counts.day).then_some(&mut counts.today);
        for tallies in std::iter::once(&mut counts.since_start).chain(of_the_day) {
            match tallies.get_mut(institution) {
                Some(tally) => tally.add(hit),
                None => {
                    let mut fresh = Tally::default();
                    fresh.add(hit);
                    tallies.insert(institution.to_owned(), fresh);
                }
            }
        }
    }

    /// Hits and misses per institution, since the gateway started and today.
    pub fn counts(&self, today: NaiveDate) -> (BTreeMap<String, Tally>, BTreeMap<String, Tally>) {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let current = if counts.day == today { counts.today.clone() } else { BTreeMap::new() };
        (counts.since_start.clone(), current)
    }

    /// Keeps today's counts in the database, so that "today" outlasts a restart; earlier days' are let go.
    pub fn keep_counts(&self) -> Result<(), CacheError> {
        let (day, today) = {
            let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            (counts.day, serde_json::to_vec(&counts.today).expect("counts serialize"))
        };
        let (key, state) = (counts_key(day), self.state()?);
        state.insert(&key, today)?;
        for old in state.scan_prefix(COUNTS).keys() {
            let old = old?;
            if old != key {
                state.remove(old)?;
            }
        }
        Ok(())
    }
}

impl Drop for CacheHandle {
    /// The counts since the last minute's round are kept when the gateway stops.
    fn drop(&mut self) {
        if let Err(e) = self.keep_counts().and_then(|()| Ok(self.state()?.flush().map(drop)?)) {
            tracing::error!("keeping the cache's counts: {e}");
        }
    }
}

fn counts_key(day: NaiveDate) -> Vec<u8> {
    [COUNTS, day.to_string().as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use chrono_tz::Asia::Jakarta;
    use simpul_core::kk::KkNumber;
    use simpul_core::nik::Nik;
    use simpul_core::policy::FamilyKey;
    use simpul_core::wire::envelope;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn validity() -> Validity {
        let consolidation = vec!["06-30".parse().unwrap(), "12-31".parse().unwrap()];
        Validity { consolidation, not_found_ttl: chrono::Duration::hours(1), zone: Jakarta }
    }

    fn open(dir: &Path, db: &sled::Db) -> Cache {
        Cache::open(db, &dir.join(CACHE_KEY), validity(), 1 << 20).unwrap()
    }

    /// One fetch for concurrent misses, its failure shared; a fetch whose request goes away is carried on by one that
    /// waits; and the map is empty whenever no flight is under way.
    #[tokio::test]
    async fn concurrent_misses_share_one_fetch_and_only_flights_under_way_are_kept() {
        use std::sync::atomic::AtomicU64;
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let cache = Arc::new(open(tmp.path(), &db));
        let calls = Arc::new(AtomicU64::new(0));
        let key = [9u8; 32];
        let down = || Err((http::StatusCode::BAD_GATEWAY, "down".to_owned()));
        let gate = tokio::sync::Notify::new();
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
            down()
        };
        let land = async {
            tokio::task::yield_now().await;
            gate.notify_waiters();
        };
        let (a, b, c, ()) =
            tokio::join!(cache.once(&key, fetch()), cache.once(&key, fetch()), cache.once(&key, fetch()), land);
        assert_eq!([a, b, c], [down(), down(), down()]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(cache.flights().is_empty());

        // The request running the fetch goes away while another waits: that one runs it.
        let stuck = |cache: Arc<Cache>, calls: Arc<AtomicU64>| async move {
            let fetch = async {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending().await
            };
            cache.once(&key, fetch).await
        };
        let leader = tokio::spawn(stuck(cache.clone(), calls.clone()));
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let follower = tokio::spawn({
            let (cache, calls) = (cache.clone(), calls.clone());
            async move {
                let fetch = async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    down()
                };
                cache.once(&key, fetch).await
            }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the follower waits");
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        assert_eq!(follower.await.unwrap(), down());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(cache.flights().is_empty());

        // The only request of a flight goes away: nothing is left behind.
        let alone = tokio::spawn(stuck(cache.clone(), calls.clone()));
        while calls.load(Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
        alone.abort();
        assert!(alone.await.unwrap_err().is_cancelled());
        assert!(cache.flights().is_empty());
    }

    const ANSWER: &[u8] =
        br#"{"content":[{"NIK":3374041003870006,"NAMA_LGKP":"BUDI SANTOSO","NO_KK":3374040101200001}],"quotaLimiter":9}"#;
    const NOT_FOUND: &[u8] =
        br#"{"content":[{"RESPONSE_CODE":"13","RESPONSE_DESC":"Data Tidak Ditemukan","RESPONSE":"x"}],"quotaLimiter":9}"#;

    fn by_nik(nik: &str) -> Query {
        Query::ByNik(Nik::parse(nik, utc("2026-03-01T10:00:00Z").date_naive()).unwrap())
    }

    /// Keeps `raw` as the answer to `query` for `institution` under consumer DEV; returns its key.
    fn keep(cache: &Cache, institution: &str, query: &Query, raw: &[u8], fetched: DateTime<Utc>) -> [u8; 32] {
        let asked = Asked::new(institution, "DEV", query);
        let key = cache.key(&asked);
        cache.put(&key, &asked, &envelope::parse(raw).unwrap(), raw, cache.ticket(fetched));
        key
    }

    /// The index lines are exactly those of the entries (each under everyone it is about), and the size is counted
    /// exactly.
    fn assert_index_consistent(cache: &Cache) {
        let lines: BTreeSet<Vec<u8>> = cache.trees.index.iter().keys().map(|line| line.unwrap().to_vec()).collect();
        let expected: BTreeSet<Vec<u8>> = (cache.trees.entries.iter().map(Result::unwrap))
            .flat_map(|(key, value)| {
                let entry = cache.unseal(&key, &value).expect("every entry opens");
                cache.index_keys(&key, &entry.filled)
            })
            .collect();
        assert_eq!(lines, expected, "index lines");
        let sealed: u64 = cache.trees.entries.iter().values().map(|v| v.unwrap().len() as u64).sum();
        assert_eq!(cache.size(), (cache.trees.entries.len() as u64, sealed), "bytes counted exactly");
    }

    #[test]
    fn entries_are_sealed_expire_and_a_damaged_one_is_a_miss_then_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let cache = open(tmp.path(), &db);
        let nik = "3374041003870006";
        let fetched = utc("2026-03-01T10:00:00Z");
        let found = keep(&cache, "DINSOS", &by_nik(nik), ANSWER, fetched);
        let missing = keep(&cache, "DINSOS", &by_nik("3374044107900002"), NOT_FOUND, fetched);
        // Not kept: any other outcome.
        let deceased_answer = NOT_FOUND.to_vec().iter().map(|b| if *b == b'3' { b'1' } else { *b }).collect::<Vec<_>>();
        let deceased = keep(&cache, "DINSOS", &by_nik("3374041003870007"), &deceased_answer, fetched);
        assert_eq!(cache.trees.entries.len(), 2);
        for tree in [&cache.trees.entries, &cache.trees.index] {
            for (key, value) in tree.iter().map(Result::unwrap) {
                for clear in [nik.as_bytes(), b"BUDI", b"3374040101200001", b"DINSOS"] {
                    let inside = |bytes: &[u8]| bytes.windows(clear.len()).any(|w| w == clear);
                    assert!(!inside(&key) && !inside(&value));
                }
            }
        }
        assert_index_consistent(&cache);
        assert_eq!(cache.get(&found, fetched).as_deref(), Some(ANSWER));
        assert_eq!(cache.get(&missing, fetched + chrono::Duration::minutes(59)).as_deref(), Some(NOT_FOUND));
        assert_eq!(cache.get(&missing, fetched + chrono::Duration::hours(1)), None);
        assert_eq!(cache.get(&found, utc("2026-06-29T16:59:59Z")).as_deref(), Some(ANSWER));
        assert_eq!(cache.get(&found, utc("2026-06-29T17:00:00Z")), None, "00:00 Jakarta on 06-30");
        assert_eq!(cache.get(&deceased, fetched), None);

        // The same key file after a restart opens the same entries; another key opens none of them.
        drop(cache);
        let cache = open(tmp.path(), &db);
        assert_eq!(cache.get(&found, fetched).as_deref(), Some(ANSWER));
        let other = tempfile::tempdir().unwrap();
        let stranger = open(other.path(), &db);
        assert_eq!(stranger.get(&found, fetched), None);
        assert_ne!(
            stranger.key(&Asked::new("DINSOS", "DEV", &by_nik(nik))),
            found,
            "keys are keyed by the key file too"
        );

        // A flipped byte, or a value moved under another key, is a miss, never served.
        let value = cache.trees.entries.get(found).unwrap().unwrap();
        let mut flipped = value.to_vec();
        flipped[20] ^= 1;
        cache.trees.entries.insert(found, flipped).unwrap();
        assert_eq!(cache.get(&found, fetched), None);
        cache.trees.entries.insert(missing, value).unwrap();
        assert_eq!(cache.get(&missing, fetched), None);
        // Damaged at rest: what the cache holds is counted when it is opened.
        drop(cache);
        let cache = open(tmp.path(), &db);

        // The sweep removes what expired and what does not open, with their index lines, and keeps the rest.
        let fresh = keep(&cache, "DINSOS", &by_nik("3374041003870008"), ANSWER, utc("2026-06-01T00:00:00Z"));
        assert_eq!(cache.sweep(utc("2026-06-01T00:00:00Z")).unwrap(), 2);
        assert_eq!(cache.trees.entries.iter().keys().map(Result::unwrap).collect::<Vec<_>>(), [fresh.to_vec()]);
        assert_index_consistent(&cache);
        assert_eq!(cache.sweep(utc("2026-06-29T17:00:00Z")).unwrap(), 1);
        assert!(cache.trees.entries.is_empty() && cache.trees.index.is_empty());
        assert_eq!(cache.size(), (0, 0));
    }

    /// A purge by NIK removes every entry naming it in its request or its answer, by KK every entry naming the KK,
    /// by institution what that institution's requests filled; the index stays consistent.
    #[test]
    fn purges_find_every_entry_about_a_person_or_an_institution() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let cache = open(tmp.path(), &db);
        let fetched = utc("2026-03-01T10:00:00Z");
        let today = fetched.date_naive();
        let budi = "3374041003870006";
        // Budi's own answer, a family answer that lists him (asked by his wife's NIK), and someone else's.
        keep(&cache, "DINSOS", &by_nik(budi), ANSWER, fetched);
        let family = Query::Family(FamilyKey::Nik(Nik::parse("3374044107900002", today).unwrap()));
        let members = br#"{"content":[{"NIK":"3374044107900002"},{"NIK":"3374041003870006"}],"quotaLimiter":1}"#;
        keep(&cache, "DINKES", &family, members, fetched);
        let other = keep(&cache, "DINKES", &by_nik("3374041003870008"), NOT_FOUND, fetched);
        // Answers naming him as a parent only, by number or by string.
        let child =
            br#"{"content":[{"NIK":3374041509100003,"NIK_AYAH":3374041003870006,"NIK_IBU":null}],"quotaLimiter":1}"#;
        keep(&cache, "DINKES", &by_nik("3374041509100003"), child, fetched);
        let child = br#"{"content":[{"NIK":"3374041509120004","NIK_IBU":"3374041003870006"}],"quotaLimiter":1}"#;
        keep(&cache, "DINKES", &by_nik("3374041509120004"), child, fetched);
        assert_eq!(cache.purge(&Purge::Nik(budi.into())).unwrap(), 4);
        assert_eq!(cache.trees.entries.iter().keys().map(Result::unwrap).collect::<Vec<_>>(), [other.to_vec()]);
        assert_index_consistent(&cache);
        assert_eq!(cache.purge(&Purge::Nik(budi.into())).unwrap(), 0);

        // An entry overwritten by another institution's request, whose answer names someone else now, is listed
        // under neither the first institution nor the person the first answer named.
        let overwritten = keep(&cache, "DINSOS", &by_nik("3374041003870008"), ANSWER, fetched);
        assert_eq!(overwritten, other);
        assert_index_consistent(&cache);
        keep(&cache, "DINKES", &by_nik("3374041003870008"), NOT_FOUND, fetched);
        assert_index_consistent(&cache);
        assert_eq!(cache.purge(&Purge::Institution("DINSOS".into())).unwrap(), 0);
        assert_eq!(cache.purge(&Purge::Nik(budi.into())).unwrap(), 0);
        assert_eq!(cache.get(&other, fetched).as_deref(), Some(NOT_FOUND));

        // The KK number in an answer, and a family asked by KK.
        keep(&cache, "DINSOS", &by_nik(budi), ANSWER, fetched);
        let kk = KkNumber::parse("3374040101200001", today).unwrap();
        keep(&cache, "DINSOS", &Query::Family(FamilyKey::Kk(kk)), members, fetched);
        assert_eq!(cache.purge(&Purge::Kk(kk.to_string())).unwrap(), 2);
        assert_index_consistent(&cache);

        keep(&cache, "DINSOS", &by_nik(budi), ANSWER, fetched);
        assert_eq!(cache.purge(&Purge::Institution("DINKES".into())).unwrap(), 1, "only what DINKES filled");
        assert_eq!(cache.purge(&Purge::Institution("DINKES".into())).unwrap(), 0);
        keep(&cache, "DINKES", &family, members, fetched);
        assert_eq!(cache.purge(&Purge::All).unwrap(), 2);
        assert!(cache.trees.entries.is_empty() && cache.trees.index.is_empty());
        assert_eq!(cache.size(), (0, 0));
    }

    /// A purge ends under a new key file: the entries left are hits under it, and the old key (which opens what sled
    /// may keep of the removed values) opens none of them. An answer asked for before a purge or a rekey began is not
    /// kept, nor one asked for through the store a rekey replaced; one asked for through the new store is.
    #[test]
    fn a_purge_replaces_the_key_and_answers_asked_before_a_purge_or_rekey_are_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let fetched = utc("2026-03-01T10:00:00Z");
        let handle =
            CacheHandle::open(&db, tmp.path().join(CACHE_KEY), validity(), 1 << 20, true, fetched.date_naive());
        let old = handle.serving().unwrap();
        let niks = ["3374041003870006", "3374041003870007", "3374041003870008"];
        for nik in niks {
            keep(&old, "DINSOS", &by_nik(nik), ANSWER, fetched);
        }
        let key_before = std::fs::read(tmp.path().join(CACHE_KEY)).unwrap();
        let before = old.ticket(fetched);

        // ANSWER names niks[0]: niks[1] is named by its request alone.
        assert_eq!(handle.purge(&Purge::Nik(niks[1].into())).unwrap(), 1);
        assert_ne!(std::fs::read(tmp.path().join(CACHE_KEY)).unwrap(), key_before);
        let new = handle.serving().unwrap();
        assert_eq!(new.trees.entries.len(), 2);
        for (key, value) in new.trees.entries.iter().map(Result::unwrap) {
            assert!(old.unseal(&key, &value).is_none(), "the old key opens none of the entries left");
        }
        for nik in [niks[0], niks[2]] {
            assert_eq!(new.get(&new.key(&Asked::new("DINSOS", "DEV", &by_nik(nik))), fetched).as_deref(), Some(ANSWER));
        }
        assert_index_consistent(&new);

        // The purged person's answer, asked for before the purge began, through either store; or asked for through
        // the old store after it.
        let (query, parsed) = (by_nik(niks[1]), envelope::parse(ANSWER).unwrap());
        let asked = Asked::new("DINSOS", "DEV", &query);
        let put = |cache: &Cache, ticket| cache.put(&cache.key(&asked), &asked, &parsed, ANSWER, ticket);
        assert!(!put(&old, before));
        assert!(!put(&new, before));
        assert!(!put(&old, old.ticket(fetched)));
        assert_eq!(new.trees.entries.len(), 2);
        // Across a rekey alike.
        let before = new.ticket(fetched);
        handle.rekey().unwrap();
        assert!(!put(&new, before));
        assert!(!put(&new, new.ticket(fetched)), "the store the rekey replaced");
        let newest = handle.serving().unwrap();
        assert!(put(&newest, newest.ticket(fetched)));
        assert_eq!(newest.get(&newest.key(&Asked::new("DINSOS", "DEV", &query)), fetched).as_deref(), Some(ANSWER));
        assert_index_consistent(&newest);
    }

    /// Past `max_bytes` new answers are not kept; a purge makes room again.
    #[test]
    fn new_answers_are_not_kept_past_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let fetched = utc("2026-03-01T10:00:00Z");
        let probe = open(tmp.path(), &db);
        keep(&probe, "DINSOS", &by_nik("3374041003870007"), ANSWER, fetched);
        let one = probe.size().1;
        probe.purge(&Purge::All).unwrap();
        drop(probe);
        // Room for two entries of that size, not three.
        let cache = Cache::open(&db, &tmp.path().join(CACHE_KEY), validity(), 2 * one + one / 2).unwrap();
        let keys: Vec<_> = ["3374041003870007", "3374041003870008", "3374041003870009"]
            .iter()
            .map(|nik| keep(&cache, "DINSOS", &by_nik(nik), ANSWER, fetched))
            .collect();
        assert_eq!(cache.size(), (2, 2 * one));
        assert_eq!(cache.get(&keys[2], fetched), None, "not kept");
        // Overwriting an entry takes no more room than the entry it replaces (same size: DINKES for DINSOS).
        keep(&cache, "DINKES", &by_nik("3374041003870008"), ANSWER, fetched);
        assert_eq!(cache.size(), (2, 2 * one));
        assert_index_consistent(&cache);
        assert_eq!(cache.purge(&Purge::Institution("DINKES".into())).unwrap(), 1, "the overwrite was kept");
        cache.purge(&Purge::Nik("3374041003870007".into())).unwrap();
        keep(&cache, "DINSOS", &by_nik("3374041003870009"), ANSWER, fetched);
        assert_eq!(cache.get(&keys[2], fetched).as_deref(), Some(ANSWER));
    }

    /// A rekey writes a new key file and re-seals every entry under it: the same requests find them, the old key
    /// opens none, an entry that did not open is dropped, and no index line is left behind.
    #[test]
    fn a_rekey_reseals_every_entry_under_a_new_key() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let today = utc("2026-03-01T10:00:00Z").date_naive();
        let handle = CacheHandle::open(&db, tmp.path().join(CACHE_KEY), validity(), 1 << 20, true, today);
        let fetched = utc("2026-03-01T10:00:00Z");
        let old = handle.serving().unwrap();
        let niks = ["3374041003870006", "3374041003870007", "3374041003870008"];
        for nik in niks {
            keep(&old, "DINSOS", &by_nik(nik), ANSWER, fetched);
        }
        let damaged = old.key(&Asked::new("DINSOS", "DEV", &by_nik(niks[2])));
        let mut value = old.trees.entries.get(damaged).unwrap().unwrap().to_vec();
        value[20] ^= 1;
        old.trees.entries.insert(damaged, value).unwrap();
        let key_before = std::fs::read(tmp.path().join(CACHE_KEY)).unwrap();

        assert_eq!(handle.rekey().unwrap(), (2, 1));
        let new = handle.serving().unwrap();
        assert!(!Arc::ptr_eq(&new, &old), "the next request takes the new key");
        assert_ne!(std::fs::read(tmp.path().join(CACHE_KEY)).unwrap(), key_before);
        for nik in &niks[..2] {
            assert_eq!(new.get(&new.key(&Asked::new("DINSOS", "DEV", &by_nik(nik))), fetched).as_deref(), Some(ANSWER));
            assert_eq!(old.get(&old.key(&Asked::new("DINSOS", "DEV", &by_nik(nik))), fetched), None);
        }
        for (key, value) in new.trees.entries.iter().map(Result::unwrap) {
            assert!(old.unseal(&key, &value).is_none(), "the old key opens nothing");
        }
        assert_index_consistent(&new);
        assert_eq!(handle.purge(&Purge::Nik(niks[1].into())).unwrap(), 1, "the index is keyed under the new key");
        // The new key is the one a restart reads.
        drop(handle);
        let reopened = Cache::open(&db, &tmp.path().join(CACHE_KEY), validity(), 1 << 20).unwrap();
        assert_eq!(
            reopened.get(&reopened.key(&Asked::new("DINSOS", "DEV", &by_nik(niks[0]))), fetched).as_deref(),
            Some(ANSWER)
        );
    }

    /// A rekey cut short after its new key file was written (a crash before the entries moved): at the next start
    /// every old entry is a miss, never served, and the sweep removes it with its index lines.
    #[test]
    fn a_rekey_cut_short_leaves_only_misses() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let today = utc("2026-03-01T10:00:00Z").date_naive();
        let fetched = utc("2026-03-01T10:00:00Z");
        let open_handle = || CacheHandle::open(&db, tmp.path().join(CACHE_KEY), validity(), 1 << 20, true, today);
        let handle = open_handle();
        for nik in ["3374041003870006", "3374041003870007"] {
            keep(&handle.serving().unwrap(), "DINSOS", &by_nik(nik), ANSWER, fetched);
        }
        drop(handle);
        simpul_files::replace_private(
            &tmp.path().join(CACHE_KEY),
            format!("{}\n", BASE64.encode([5u8; 32])).as_bytes(),
        )
        .unwrap();
        let handle = open_handle();
        let cache = handle.serving().unwrap();
        for nik in ["3374041003870006", "3374041003870007"] {
            assert_eq!(cache.get(&cache.key(&Asked::new("DINSOS", "DEV", &by_nik(nik))), fetched), None);
        }
        assert_eq!(handle.sweep(fetched).unwrap(), 2);
        assert!(cache.trees.entries.is_empty() && cache.trees.index.is_empty());
    }

    /// The admin's choice outlasts a reopening and overrides the config; today's counts outlast it too, the counts
    /// since the start do not.
    #[test]
    fn the_switch_and_todays_counts_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let today = utc("2026-03-01T10:00:00Z").date_naive();
        let open_handle =
            |configured| CacheHandle::open(&db, tmp.path().join(CACHE_KEY), validity(), 1 << 20, configured, today);
        let handle = open_handle(false);
        assert_eq!(handle.condition(), Condition { on: false, off_reason: Some(OffReason::Config), error: None });
        assert!(handle.serving().is_none());
        handle.switch(true).unwrap();
        assert!(handle.serving().is_some());
        for hit in [true, true, false] {
            handle.record("DINSOS", hit, today);
        }
        handle.record("DINKES", false, today);
        drop(handle);
        let handle = open_handle(false);
        assert!(handle.condition().on, "the admin's choice outlasts the config");
        let (since_start, counts) = handle.counts(today);
        assert!(since_start.is_empty());
        assert_eq!(counts["DINSOS"], Tally { hits: 2, misses: 1 });
        assert_eq!(counts["DINKES"], Tally { hits: 0, misses: 1 });
        assert!(handle.counts(today.succ_opt().unwrap()).1.is_empty(), "another day starts at nothing");

        // Around midnight: a request of the day before, counted after one of the new day, is not the new day's and
        // does not clear it.
        let tomorrow = today.succ_opt().unwrap();
        handle.record("DINSOS", true, tomorrow);
        handle.record("DINSOS", false, today);
        let (since_start, counts) = handle.counts(tomorrow);
        assert_eq!(counts["DINSOS"], Tally { hits: 1, misses: 0 });
        assert_eq!(since_start["DINSOS"], Tally { hits: 1, misses: 1 });
        assert!(handle.counts(today).1.is_empty(), "the day before is let go");
        handle.switch(false).unwrap();
        drop(handle);
        let handle = open_handle(true);
        assert_eq!(handle.condition(), Condition { on: false, off_reason: Some(OffReason::Admin), error: None });
    }
}
