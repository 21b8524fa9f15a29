//! The local warehouse cache's store: the sled tree `cache` in the gateway's database, under the rules of
//! `simpul_core::cache` (what is kept, until when, under which key).
//!
//! An entry's key is the keyed digest of its request (never a NIK); its value is `until || answer`, sealed with
//! ChaCha20-Poly1305 under `cache.key` (0600, beside the database, apart from `store.key` so that the cache can be
//! dropped or its key replaced without touching anything else), with the entry's key as associated data, so a value
//! moved to another key does not open. An entry that does not open (damaged, or sealed under another key) is a miss:
//! it is never served, it is logged once, and it is removed with the expired ones or overwritten by the next answer.
//! The cache is a copy of the warehouse, so its writes are not flushed: an entry lost in a crash is asked again.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use simpul_core::cache::{CacheKeys, Validity};
use simpul_core::policy::Query;
use simpul_core::wire::envelope::{Envelope, Outcome};
use tokio::sync::OnceCell;

use crate::seal::Sealer;

/// The cache's key file in the state directory.
pub const CACHE_KEY: &str = "cache.key";
const TREE: &str = "cache";
const UNTIL: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache key: {0}")]
    Key(#[from] simpul_files::FileError),
    #[error("cache tree: {0}")]
    Sled(#[from] sled::Error),
}

/// The upstream's answer to one request, parsed, or its failure (status and message): what the requests that wait for
/// one upstream call share.
pub type Fetched = Result<Envelope, (http::StatusCode, String)>;

/// The sealed answers, by keyed request digest, and the upstream calls under way, by the same key.
#[derive(Debug)]
pub struct Cache {
    tree: sled::Tree,
    sealer: Sealer,
    keys: CacheKeys,
    validity: Validity,
    /// Whether an entry that did not open was logged already: a wrong key makes every entry fail, once is enough.
    unopenable_logged: AtomicBool,
    /// One cell per key being fetched; it holds only requests in flight, so it is bounded by them.
    flights: Mutex<HashMap<[u8; 32], Arc<OnceCell<Fetched>>>>,
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
    /// Opens the tree in `db`, with `key_file` (made on first use) sealing its values and keying its keys, keeping
    /// answers as long as `validity` says.
    pub fn open(db: &sled::Db, key_file: &Path, validity: Validity) -> Result<Cache, CacheError> {
        let secret = simpul_files::load_or_generate_secret(key_file)?;
        // One secret, two uses kept apart: the digest is HMAC under a derived key, the seal ChaCha20 under another.
        let derive = |label: &[u8]| -> [u8; 32] {
            use sha2::Digest;
            sha2::Sha256::new().chain_update(label).chain_update(secret).finalize().into()
        };
        Ok(Cache {
            tree: db.open_tree(TREE)?,
            sealer: Sealer::new(derive(b"simpul cache seal")),
            keys: CacheKeys::new(derive(b"simpul cache key")),
            validity,
            unopenable_logged: AtomicBool::new(false),
            flights: Mutex::default(),
        })
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

    /// The entry key of the answer to `query` under upstream consumer `consumer`.
    pub fn key(&self, consumer: &str, query: &Query) -> [u8; 32] {
        self.keys.key(consumer, query)
    }

    /// The answer stored under `key` if it is still valid at `now`; anything else (absent, expired, unopenable,
    /// unreadable) is a miss.
    pub fn get(&self, key: &[u8; 32], now: DateTime<Utc>) -> Option<Vec<u8>> {
        let value = match self.tree.get(key) {
            Ok(value) => value?,
            Err(e) => {
                tracing::error!("reading the cache: {e}");
                return None;
            }
        };
        let (until, answer) = self.open_entry(key, &value)?;
        (now < until).then_some(answer)
    }

    /// Keeps the upstream's `answer` (whose outcome is `outcome`), fetched at `fetched`, if the rules allow it.
    pub fn put(&self, key: &[u8; 32], outcome: &Outcome, answer: &[u8], fetched: DateTime<Utc>) {
        let Some(until) = self.validity.until(outcome, fetched) else { return };
        let mut plain = Vec::with_capacity(UNTIL + answer.len());
        plain.extend_from_slice(&until.timestamp().to_be_bytes());
        plain.extend_from_slice(answer);
        if let Err(e) = self.tree.insert(key, self.sealer.seal(TREE, key, &plain)) {
            tracing::error!("writing the cache: {e}");
        }
    }

    /// Removes the entries expired at `now` and those that do not open; returns how many went.
    pub fn sweep(&self, now: DateTime<Utc>) -> Result<usize, CacheError> {
        let mut removed = 0;
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            if self.open_entry(&key, &value).is_none_or(|(until, _)| until <= now) {
                self.tree.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn open_entry(&self, key: &[u8], value: &[u8]) -> Option<(DateTime<Utc>, Vec<u8>)> {
        let opened = self.sealer.open(TREE, key, value).ok().and_then(|mut plain| {
            let until = i64::from_be_bytes(plain.get(..UNTIL)?.try_into().ok()?);
            plain.drain(..UNTIL);
            Some((DateTime::from_timestamp(until, 0)?, plain))
        });
        if opened.is_none() && !self.unopenable_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "a cache entry does not open with cache.key (damaged, or sealed under another key); such entries are \
                 not served, and are removed by the next sweep"
            );
        }
        opened
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::Asia::Jakarta;
    use simpul_core::nik::Nik;
    use simpul_core::wire::code::ResponseCode;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn open(dir: &Path, db: &sled::Db) -> Cache {
        let consolidation = vec!["06-30".parse().unwrap(), "12-31".parse().unwrap()];
        let validity = Validity { consolidation, not_found_ttl: chrono::Duration::hours(1), zone: Jakarta };
        Cache::open(db, &dir.join(CACHE_KEY), validity).unwrap()
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

    #[test]
    fn entries_are_sealed_expire_and_a_damaged_one_is_a_miss_then_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(tmp.path().join("db")).open().unwrap();
        let cache = open(tmp.path(), &db);
        let today = utc("2026-03-01T10:00:00Z").date_naive();
        let nik = "3374041003870006";
        let query = |nik: &str| Query::ByNik(Nik::parse(nik, today).unwrap());
        let (found, missing) = (cache.key("DEV", &query(nik)), cache.key("DEV", &query("3374044107900002")));
        let fetched = utc("2026-03-01T10:00:00Z");
        let answer = br#"{"content":[{"NIK":"3374041003870006","NAMA_LGKP":"BUDI SANTOSO"}]}"#;
        cache.put(&found, &Outcome::Data, answer, fetched);
        cache.put(&missing, &Outcome::Code(ResponseCode::NotFound), b"not found", fetched);
        // Not kept: any other outcome.
        let deceased = cache.key("DEV", &query("3374041003870007"));
        cache.put(&deceased, &Outcome::Code(ResponseCode::Deceased), b"11", fetched);
        assert_eq!(cache.tree.len(), 2);
        for (key, value) in cache.tree.iter().map(Result::unwrap) {
            for clear in [nik.as_bytes(), b"BUDI"] {
                assert!(
                    !key.windows(clear.len()).any(|w| w == clear) && !value.windows(clear.len()).any(|w| w == clear)
                );
            }
        }
        assert_eq!(cache.get(&found, fetched).as_deref(), Some(&answer[..]));
        assert_eq!(cache.get(&missing, fetched + chrono::Duration::minutes(59)).as_deref(), Some(&b"not found"[..]));
        assert_eq!(cache.get(&missing, fetched + chrono::Duration::hours(1)), None);
        assert_eq!(cache.get(&found, utc("2026-06-29T16:59:59Z")).as_deref(), Some(&answer[..]));
        assert_eq!(cache.get(&found, utc("2026-06-29T17:00:00Z")), None, "00:00 Jakarta on 06-30");
        assert_eq!(cache.get(&deceased, fetched), None);

        // The same key file after a restart opens the same entries; another key opens none of them.
        drop(cache);
        let cache = open(tmp.path(), &db);
        assert_eq!(cache.get(&found, fetched).as_deref(), Some(&answer[..]));
        let other = tempfile::tempdir().unwrap();
        let stranger = open(other.path(), &db);
        assert_eq!(stranger.get(&found, fetched), None);
        assert_ne!(stranger.key("DEV", &query(nik)), found, "keys are keyed by the key file too");

        // A flipped byte, or a value moved under another key, is a miss, never served.
        let value = cache.tree.get(found).unwrap().unwrap();
        let mut flipped = value.to_vec();
        flipped[20] ^= 1;
        cache.tree.insert(found, flipped).unwrap();
        assert_eq!(cache.get(&found, fetched), None);
        cache.tree.insert(missing, value).unwrap();
        assert_eq!(cache.get(&missing, fetched), None);

        // The sweep removes what expired and what does not open, and keeps the rest.
        let fresh = cache.key("DEV", &query("3374041003870008"));
        cache.put(&fresh, &Outcome::Data, answer, utc("2026-06-01T00:00:00Z"));
        assert_eq!(cache.sweep(utc("2026-06-01T00:00:00Z")).unwrap(), 2);
        assert_eq!(cache.tree.iter().keys().map(Result::unwrap).collect::<Vec<_>>(), [fresh.to_vec()]);
        assert_eq!(cache.sweep(utc("2026-06-29T17:00:00Z")).unwrap(), 1);
        assert!(cache.tree.is_empty());
    }
}
