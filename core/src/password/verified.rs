//! The recent successes, so a busy client pays argon2 once rather than per request.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::keyed::Keyed;
use super::{lock, make_room, PasswordHash};

/// The successful password checks of the last few minutes, so that a correct password is verified with argon2 once
/// rather than on every request (which would make every load test measure argon2 rather than the path under test).
///
/// A success is remembered as a keyed digest of (user id, password, stored hash) with when it happened, so an entry
/// matches only the very same password of the very same user against the very same hash (a changed hash or a renamed
/// user starts over), and only until `ttl` has passed since it was verified. Only [`remember`](Self::remember)
/// successes; at most `capacity` are kept (the oldest go first). Nothing readable is kept, and Debug shows only the
/// count.
pub struct VerifiedCache {
    key: Keyed,
    ttl: Duration,
    capacity: usize,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl VerifiedCache {
    /// A success counts for `ttl` after it was verified (not at `ttl` itself); at most `capacity` are kept (0 is
    /// taken as 1). The key is made here, from the operating system's random source, and never leaves the value.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        VerifiedCache { key: Keyed::new(), ttl, capacity: capacity.max(1), verified: Mutex::default() }
    }

    /// Whether `password` of `user_id` verified against `hash` less than the cache's TTL before `now`: an entry
    /// remembered at `t` matches until just before `t + ttl` and is expired at `t + ttl` exactly.
    pub fn is_verified(&self, user_id: &str, password: &str, hash: &PasswordHash, now: Instant) -> bool {
        let key = self.digest(user_id, password, hash);
        lock(&self.verified).get(&key).is_some_and(|at| now.saturating_duration_since(*at) < self.ttl)
    }

    /// Remembers that `password` of `user_id` verified against `hash` at `now` (or keeps a later time already
    /// remembered). Call it only after a successful verification of a known user. When full, expired entries go
    /// first, then the oldest.
    pub fn remember(&self, user_id: &str, password: &str, hash: &PasswordHash, now: Instant) {
        let key = self.digest(user_id, password, hash);
        let mut verified = lock(&self.verified);
        make_room(&mut verified, &key, self.capacity, |at| *at, |at| now.saturating_duration_since(*at) >= self.ttl);
        let at = verified.entry(key).or_insert(now);
        *at = (*at).max(now);
    }

    /// The key of an entry: HMAC-SHA256 under this cache's key over the length-prefixed user id, password and PHC
    /// string.
    fn digest(&self, user_id: &str, password: &str, hash: &PasswordHash) -> [u8; 32] {
        self.key.digest(&[user_id, password, hash.as_phc()])
    }

    /// How many successes are remembered (expired ones included until they are pushed out).
    pub fn len(&self) -> usize {
        lock(&self.verified).len()
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.verified).is_empty()
    }
}

impl fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache").field("entries", &self.len()).field("ttl", &self.ttl).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::cheap_hash;
    use super::*;

    #[test]
    fn the_cache_matches_only_the_same_user_password_and_hash_until_its_ttl() {
        let (hash, other) = (cheap_hash("pw"), cheap_hash("pw"));
        let ttl = Duration::from_secs(300);
        let cache = VerifiedCache::new(ttl, 100);
        let t0 = Instant::now();
        assert!(cache.is_empty());
        assert!(!cache.is_verified("u", "pw", &hash, t0));
        cache.remember("u", "pw", &hash, t0);
        cache.remember("u", "pw", &hash, t0);
        assert_eq!(cache.len(), 1);
        let table = [
            ("the same, at once", "u", "pw", &hash, Duration::ZERO, true),
            ("the same, just before the TTL", "u", "pw", &hash, ttl - Duration::from_nanos(1), true),
            ("the same, at the TTL", "u", "pw", &hash, ttl, false),
            ("another password", "u", "pw ", &hash, Duration::ZERO, false),
            ("another user", "v", "pw", &hash, Duration::ZERO, false),
            ("a changed hash", "u", "pw", &other, Duration::ZERO, false),
        ];
        for (what, user, password, hash, after, want) in table {
            assert_eq!(cache.is_verified(user, password, hash, t0 + after), want, "{what}");
        }
        // Length prefixes: moving bytes between the parts makes another key.
        cache.remember("ab", "c", &hash, t0);
        assert!(!cache.is_verified("a", "bc", &hash, t0));
        assert!(!cache.is_verified("abc", "", &hash, t0));
        assert_eq!(format!("{cache:?}"), "VerifiedCache { entries: 2, ttl: 300s }");
        // A success remembered again later lasts from then.
        cache.remember("u", "pw", &hash, t0 + ttl);
        assert!(cache.is_verified("u", "pw", &hash, t0 + ttl + Duration::from_secs(1)));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_oldest() {
        let hash = cheap_hash("pw");
        let ttl = Duration::from_secs(10);
        let cache = VerifiedCache::new(ttl, 3);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        cache.remember("a", "pw", &hash, at(0));
        cache.remember("b", "pw", &hash, at(5));
        cache.remember("c", "pw", &hash, at(6));
        // Full: "a" has expired by 11 and goes first.
        cache.remember("d", "pw", &hash, at(11));
        assert_eq!(cache.len(), 3);
        assert!(!cache.is_verified("a", "pw", &hash, at(11)));
        assert!(cache.is_verified("b", "pw", &hash, at(11)) && cache.is_verified("d", "pw", &hash, at(11)));
        // Full of live entries: the oldest ("b") goes.
        cache.remember("e", "pw", &hash, at(12));
        assert_eq!(cache.len(), 3);
        let live: Vec<&str> =
            ["a", "b", "c", "d", "e"].into_iter().filter(|u| cache.is_verified(u, "pw", &hash, at(12))).collect();
        assert_eq!(live, ["c", "d", "e"]);
    }

    #[test]
    fn no_capacity_is_taken_as_one() {
        let t0 = Instant::now();
        let cache = VerifiedCache::new(Duration::from_secs(1), 0);
        let hash = cheap_hash("pw");
        cache.remember("a", "pw", &hash, t0);
        cache.remember("b", "pw", &hash, t0);
        assert_eq!(cache.len(), 1);
        assert!(cache.is_verified("b", "pw", &hash, t0) && !cache.is_verified("a", "pw", &hash, t0));
    }

    #[test]
    fn two_caches_have_different_keys() {
        let hash = cheap_hash("pw");
        let (one, two) =
            (VerifiedCache::new(Duration::from_secs(60), 10), VerifiedCache::new(Duration::from_secs(60), 10));
        assert_eq!(one.digest("u", "pw", &hash), one.digest("u", "pw", &hash));
        assert_ne!(one.digest("u", "pw", &hash), two.digest("u", "pw", &hash));
        let t0 = Instant::now();
        one.remember("u", "pw", &hash, t0);
        assert!(one.is_verified("u", "pw", &hash, t0) && !two.is_verified("u", "pw", &hash, t0));
        // Nothing of the key, the user or the password is in the Debug form.
        assert_eq!(format!("{one:?}"), "VerifiedCache { entries: 1, ttl: 60s }");
    }
}
