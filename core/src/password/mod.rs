//! Passwords: argon2 hashes in PHC form, and what keeps checking them affordable under load.
//!
//! Every service that logs users in (the warehouse for its consumers, the gateway for its users) checks passwords
//! the same way, so that a hash made by one is accepted by the others and the timing rules hold everywhere:
//!
//! - [`PasswordHash::parse`] accepts only what a verification can succeed against, so a bad hash in a config file or
//!   a database is an error when it is loaded, not a user who can never log in.
//! - An unknown user id is verified too, against [`PasswordHash::dummy_like`] the hash a known user would have been
//!   checked against, so that the time of the answer does not tell which user ids exist.
//! - Verifying costs tens of milliseconds of CPU and about 19 MiB by design. Callers run it off their async threads,
//!   a fixed number at once, each in a [`Memory`] they keep and reuse ([`PasswordHash::verify_in`]; size a pool with
//!   [`Memory::bytes_for`]), so that the memory checks hold is bounded by design: a flood of checks that each
//!   allocated their own areas once left gigabytes with the allocator after it was over.
//! - Before hashing, a [`LoginBackoff`] says whether the key (a user id as sent, or a device and a user id) is
//!   waiting after repeated failures; if so the answer is a wrong password's, without argon2. Unknown user ids back
//!   off exactly like known ones.
//! - Successes are remembered for a few minutes in a [`VerifiedCache`], so a busy client pays argon2 once rather than
//!   per request. It keeps keyed digests of (user id, password, stored hash), never passwords, and a bounded number.
//!
//! Nothing here spawns, sleeps or reads a clock: time is an [`Instant`](std::time::Instant) argument, so tests (and
//! a paused async clock) drive it.

mod backoff;
pub(crate) mod keyed;
mod memory;
mod verified;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use backoff::{BackoffPolicy, LoginBackoff, DEFAULT_BACKOFF};
pub use memory::Memory;
pub use verified::VerifiedCache;

/// argon2's cost parameters (memory in KiB, iterations, lanes), for [`PasswordHash::hash_with`].
pub use argon2::Params;

/// The password of the dummy hashes. No login succeeds with it, since a dummy is only verified for unknown user ids,
/// which are refused whatever the outcome.
pub const DUMMY_PASSWORD: &str = "simpul: no user has this password";

/// The salt of the dummy hashes: fixed, so that equal parameters make equal dummies.
const DUMMY_SALT: &[u8] = b"simpul-dummy-salt";

/// Why a string is not a usable password hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("not a PHC password hash: {0}")]
    NotPhc(String),
    #[error("password hash algorithm {0} is not argon2")]
    NotArgon2(String),
    #[error("argon2 version {0}: {1}")]
    Version(u32, String),
    #[error("argon2 parameters: {0}")]
    Params(String),
    #[error("the password hash has no salt or no hash")]
    NoSaltOrHash,
}

/// An argon2 hash in PHC form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
///
/// Only [`parse`](Self::parse) and the hashing constructors make one, so every value can be verified against. Its
/// Debug form is masked, so that a config or record dumped into a log never carries it; it serializes as the PHC
/// string, and deserializes through [`parse`](Self::parse).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Accepts what a verification can succeed against: a PHC string of argon2 (any variant) with a known version,
    /// valid parameters, a salt and a hash.
    pub fn parse(phc: &str) -> Result<Self, PasswordError> {
        let parsed = argon2::PasswordHash::new(phc).map_err(|e| PasswordError::NotPhc(e.to_string()))?;
        argon2::Algorithm::try_from(parsed.algorithm)
            .map_err(|_| PasswordError::NotArgon2(parsed.algorithm.to_string()))?;
        if let Some(version) = parsed.version {
            argon2::Version::try_from(version).map_err(|e| PasswordError::Version(version, e.to_string()))?;
        }
        argon2::Params::try_from(&parsed).map_err(|e| PasswordError::Params(e.to_string()))?;
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(PasswordError::NoSaltOrHash);
        }
        Ok(PasswordHash(phc.to_owned()))
    }

    /// Hashes a password with argon2id and the crate's default (OWASP-recommended) parameters and a fresh salt.
    pub fn hash(password: &str) -> Self {
        Self::hash_with(password, Params::default())
    }

    /// Hashes a password with argon2id, version 0x13, the given parameters and a fresh salt.
    ///
    /// For tests and for benchmarks that must not measure argon2: e.g. `Params::new(256, 1, 1, None)` verifies in
    /// well under a millisecond. Stored credentials should come from [`hash`](Self::hash).
    pub fn hash_with(password: &str, params: Params) -> Self {
        let salt = SaltString::generate(&mut OsRng);
        let phc = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 with valid parameters and a fresh salt does not fail")
            .to_string();
        PasswordHash(phc)
    }

    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// Whether `password` is the one hashed. Costs what the hash's parameters say (tens of milliseconds with the
    /// defaults): call it off async threads.
    pub fn verify(&self, password: &str) -> bool {
        // Every value was parsed or made here, so a parse failure cannot happen; it would only refuse the login.
        argon2::PasswordHash::new(&self.0)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
    }

    /// What the cost of verifying against this hash depends on: algorithm, version, parameters, output length.
    /// Hashes with equal costs take equally long to verify, so callers can share one dummy among them.
    pub fn cost(&self) -> String {
        let parsed = self.parsed();
        let output = parsed.hash.map_or(0, |h| h.len());
        format!("{}${:?}${}${output}", parsed.algorithm, parsed.version, parsed.params)
    }

    /// A hash of [`DUMMY_PASSWORD`] that costs what this one costs to verify: verify an unknown user id's password
    /// against it, so that the unknown user takes as long to refuse as a wrong password. Making one costs a
    /// verification; make them up front, one per [`cost`](Self::cost).
    pub fn dummy_like(&self) -> PasswordHash {
        let parsed = self.parsed();
        let params = Params::try_from(&parsed).expect("checked by parse");
        let salt = SaltString::encode_b64(DUMMY_SALT).expect("a salt of valid length");
        let phc = Argon2::default()
            .hash_password_customized(DUMMY_PASSWORD.as_bytes(), Some(parsed.algorithm), parsed.version, params, &salt)
            .expect("parameters that verify also hash")
            .to_string();
        PasswordHash(phc)
    }

    fn parsed(&self) -> argon2::PasswordHash<'_> {
        argon2::PasswordHash::new(&self.0).expect("checked by parse")
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

impl Serialize for PasswordHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PasswordHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PasswordHash::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The tables of this module are valid after any panic (an insert or removal either happened or not).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes room for `key` in a table holding at most `capacity` entries, each last touched at `at(entry)`: nothing when
/// the key is there or there is room; else the entries `stale` at `now` go, then, if still full, the least recently
/// touched one. Both remembered-success and failure tables are bounded this way, so a flood of new keys costs memory
/// only up to the bound.
fn make_room<V>(
    table: &mut HashMap<[u8; 32], V>,
    key: &[u8; 32],
    capacity: usize,
    at: impl Fn(&V) -> Instant,
    stale: impl Fn(&V) -> bool,
) {
    if table.len() < capacity || table.contains_key(key) {
        return;
    }
    table.retain(|_, v| !stale(v));
    if table.len() >= capacity {
        let least_recent = table.iter().min_by_key(|(_, v)| at(v)).map(|(k, _)| *k);
        table.remove(&least_recent.expect("a full table has a least recent entry"));
    }
}

/// Cheap argon2 parameters: the tests are about the logic, not the cost.
#[cfg(test)]
fn cheap_hash(password: &str) -> PasswordHash {
    PasswordHash::hash_with(password, Params::new(256, 1, 1, None).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_masked_and_serde_is_the_phc_string() {
        let hash = cheap_hash("secret");
        assert_eq!(format!("{hash:?}"), "PasswordHash(***)");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, serde_json::to_string(hash.as_phc()).unwrap());
        assert_eq!(serde_json::from_str::<PasswordHash>(&json).unwrap(), hash);
        let err = serde_json::from_str::<PasswordHash>("\"plain\"").unwrap_err().to_string();
        assert!(err.contains("not a PHC password hash"), "{err}");
    }

    #[test]
    fn only_verifiable_argon2_hashes_parse() {
        let hash = cheap_hash("secret");
        assert_eq!(PasswordHash::parse(hash.as_phc()), Ok(hash.clone()));
        assert!(matches!(PasswordHash::parse("plain"), Err(PasswordError::NotPhc(_))));
        assert!(matches!(
            PasswordHash::parse("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
            Err(PasswordError::NotArgon2(_))
        ));
        // Well-formed PHC strings that no password could ever match.
        for never in [
            "$argon2id$v=19$m=256,t=1,p=1",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$R0bU0bEJbXfBgoDXXNMUCaPkcgGIgeLxUb7U4aJfJq8",
            "$argon2id$v=18$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$R0bU0bEJbXfBgoDXXNMUCaPkcgGIgeLxUb7U4aJfJq8",
            "$argon2x$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$R0bU0bEJbXfBgoDXXNMUCaPkcgGIgeLxUb7U4aJfJq8",
        ] {
            assert!(PasswordHash::parse(never).is_err(), "{never}");
        }
        let messages: Vec<String> = [
            "$argon2id$v=19$m=256,t=1,p=1",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$R0bU0bEJbXfBgoDXXNMUCaPkcgGIgeLxUb7U4aJfJq8",
            "$argon2id$v=18$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$R0bU0bEJbXfBgoDXXNMUCaPkcgGIgeLxUb7U4aJfJq8",
        ]
        .iter()
        .map(|s| PasswordHash::parse(s).unwrap_err().to_string())
        .collect();
        assert_eq!(messages[0], "the password hash has no salt or no hash");
        assert!(messages[1].starts_with("argon2 parameters: "), "{}", messages[1]);
        assert!(messages[2].starts_with("argon2 version 18: "), "{}", messages[2]);
    }

    #[test]
    fn verify_hash_and_hash_with() {
        let cheap = cheap_hash("pw");
        assert!(cheap.as_phc().starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{}", cheap.as_phc());
        assert!(cheap.verify("pw"));
        assert!(!cheap.verify("pw "));
        assert!(!cheap.verify(""));
        // Fresh salts: the same password hashes differently, and both verify.
        let again = cheap_hash("pw");
        assert_ne!(cheap, again);
        assert!(again.verify("pw"));
        let default = PasswordHash::hash("pw");
        assert!(default.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", default.as_phc());
        assert!(default.verify("pw"));
    }

    #[test]
    fn dummies_cost_the_same_and_only_match_the_dummy_password() {
        let cheap = cheap_hash("pw");
        let default = PasswordHash::hash("pw");
        assert_ne!(cheap.cost(), default.cost());
        assert_eq!(cheap.cost(), cheap_hash("other").cost(), "the salt and the password do not change the cost");
        for stored in [&cheap, &default] {
            let dummy = stored.dummy_like();
            assert_eq!(dummy.cost(), stored.cost());
            assert_ne!(&dummy, stored);
            assert!(dummy.verify(DUMMY_PASSWORD));
            assert!(!dummy.verify("pw"));
            assert_eq!(PasswordHash::parse(dummy.as_phc()), Ok(dummy.clone()));
        }
        // A fixed salt: equal parameters make equal dummies, so callers can share one per cost.
        assert_eq!(cheap.dummy_like(), cheap_hash("other").dummy_like());
        // Other argon2 variants and lengths are kept, not replaced by argon2id's.
        let argon2i =
            Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x10, Params::new(64, 2, 1, Some(16)).unwrap())
                .hash_password(b"pw", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
        let argon2i = PasswordHash::parse(&argon2i).unwrap();
        assert!(argon2i.verify("pw"));
        let dummy = argon2i.dummy_like();
        assert_eq!(dummy.cost(), argon2i.cost());
        assert!(dummy.as_phc().starts_with("$argon2i$v=16$m=64,t=2,p=1$"), "{}", dummy.as_phc());
        assert!(dummy.verify(DUMMY_PASSWORD));
    }
}
