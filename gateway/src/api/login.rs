//! Password checks under load. argon2 costs about 19 MiB and tens of milliseconds of CPU per check by design;
//! unbounded, 200 concurrent wrong passwords took the gateway from 0.5 to 3.8 GB. So, in this order, a check:
//!
//! 1. is refused without hashing while its user id, from this device, is backing off after repeated failures
//!    (answered exactly as a wrong password, known or unknown id alike). Keyed by device and user id: a laptop
//!    guessing a colleague's password slows itself down, not the colleague's own laptop;
//! 2. is skipped when the same user, password and stored hash verified within [`VERIFIED_FOR`] (a keyed digest is
//!    remembered, never the password), so a busy operator does not pay argon2 per request;
//! 3. is queued for one of a fixed number of worker threads ([`crate::config::ApiConfig::password_checks`]), each
//!    with its own argon2 memory area, allocated once and reused: however many requests arrive, password checks
//!    hold at most that many areas. The workers run at a lower priority than the rest of the gateway, so a flood of
//!    checks takes the CPU nobody else wants, and a check whose request is gone by its turn is skipped.
//!
//! An unknown user id is checked against a dummy hash of the same cost, so its refusal takes as long as a wrong
//! password's. The device's rate limit is checked before any of this (see [`crate::limits::rate`]).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use simpul_core::password::{BackoffPolicy, LoginBackoff, Memory, PasswordHash, VerifiedCache};
use tokio::sync::oneshot;

/// How long a verified password is taken as verified for the same user and hash.
pub const VERIFIED_FOR: Duration = Duration::from_secs(5 * 60);

/// How many verified (user, password) pairs are remembered at most.
const VERIFIED_CAPACITY: usize = 10_000;

/// One argon2 verification waiting for a worker.
struct Check {
    hash: PasswordHash,
    password: String,
    answer: oneshot::Sender<bool>,
}

#[derive(Debug)]
pub struct Logins {
    verified: VerifiedCache,
    backoff: LoginBackoff,
    /// What unknown user ids are verified against.
    dummy: PasswordHash,
    /// The workers stop when this is dropped.
    checks: mpsc::Sender<Check>,
}

impl Logins {
    /// `workers` password checks at once (at least one); failures back off as `backoff` says.
    pub fn new(workers: usize, backoff: BackoffPolicy) -> Self {
        let (checks, queue) = mpsc::channel::<Check>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..workers.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || work(&queue))
                .expect("a password-check thread starts");
        }
        Logins {
            verified: VerifiedCache::new(VERIFIED_FOR, VERIFIED_CAPACITY),
            backoff: LoginBackoff::new(backoff),
            dummy: PasswordHash::hash("simpul").dummy_like(),
            checks,
        }
    }

    /// Whether `password`, sent from `device`, is the password of the user `user_id` names, whose stored hash is
    /// `stored` (`None`: no such user, always `false` after the same work as a wrong password).
    pub async fn check(&self, device: &str, user_id: &str, password: &str, stored: Option<&PasswordHash>) -> bool {
        let now = || tokio::time::Instant::now().into_std();
        // Device names have no NUL, so no two (device, id) pairs share a key.
        let attempts = format!("{device}\0{user_id}");
        if self.backoff.admit(&attempts, now()).is_err() {
            tracing::debug!(device, "password check skipped: backing off after failures");
            return false;
        }
        if let Some(hash) = stored {
            if self.verified.is_verified(user_id, password, hash, now()) {
                self.backoff.succeeded(&attempts);
                return true;
            }
        }
        let (answer, verified) = oneshot::channel();
        let check = Check { hash: stored.unwrap_or(&self.dummy).clone(), password: password.to_owned(), answer };
        let ok = self.checks.send(check).is_ok() && verified.await.unwrap_or(false);
        match stored {
            Some(hash) if ok => {
                self.backoff.succeeded(&attempts);
                self.verified.remember(user_id, password, hash, now());
                true
            }
            _ => {
                self.backoff.failed(&attempts, now());
                false
            }
        }
    }
}

/// A worker: one memory area for its whole life, checks one at a time until the gateway drops its queue.
fn work(queue: &Mutex<mpsc::Receiver<Check>>) {
    crate::platform::background_thread();
    let mut memory = Memory::new();
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(check) = next else { return };
        // The request went away (its client disconnected) while it waited: nobody needs the answer.
        if check.answer.is_closed() {
            continue;
        }
        let _ = check.answer.send(check.hash.verify_in(&check.password, &mut memory));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simpul_core::password::{Params, DEFAULT_BACKOFF};

    fn cheap(password: &str) -> PasswordHash {
        PasswordHash::hash_with(password, Params::new(64, 1, 1, None).unwrap())
    }

    /// On tokio's paused clock: the backoff's waits and the cache's five minutes pass when the test says.
    #[tokio::test(start_paused = true)]
    async fn failures_back_off_per_device_and_successes_are_remembered_for_a_while() {
        let logins = Logins::new(1, DEFAULT_BACKOFF);
        let siti = cheap("kata-sandi-siti");
        let check = |device, id, password, stored| logins.check(device, id, password, stored);
        assert!(check("laptop-1", "siti", "kata-sandi-siti", Some(&siti)).await);
        for _ in 0..5 {
            assert!(!check("laptop-1", "siti", "salah", Some(&siti)).await);
            assert!(!check("laptop-1", "ghost", "salah", None).await);
        }
        // Backing off on laptop-1: the right password is refused there, unchecked, and only there.
        assert!(!check("laptop-1", "siti", "kata-sandi-siti", Some(&siti)).await);
        assert!(check("laptop-siti", "siti", "kata-sandi-siti", Some(&siti)).await);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(check("laptop-1", "siti", "kata-sandi-siti", Some(&siti)).await, "the first wait is one second");

        // Remembered for five minutes from its first check (a second ago): after them the password is checked again,
        // and a changed hash misses at once.
        tokio::time::advance(VERIFIED_FOR - Duration::from_secs(2)).await;
        assert_eq!(logins.verified.len(), 1);
        assert!(logins.verified.is_verified("siti", "kata-sandi-siti", &siti, tokio::time::Instant::now().into_std()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!logins.verified.is_verified("siti", "kata-sandi-siti", &siti, tokio::time::Instant::now().into_std()));
        assert!(check("laptop-1", "siti", "kata-sandi-siti", Some(&siti)).await);
        assert!(!check("laptop-1", "siti", "kata-sandi-siti", Some(&cheap("another"))).await);
    }

    #[tokio::test]
    async fn one_worker_answers_many_concurrent_checks_and_outlives_abandoned_ones() {
        let logins = Arc::new(Logins::new(1, DEFAULT_BACKOFF));
        let hash = cheap("benar");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let (logins, hash) = (logins.clone(), hash.clone());
            tasks.spawn(async move {
                let password = if i % 2 == 0 { "benar" } else { "salah" };
                (i, logins.check(&format!("laptop-{i}"), "budi", password, Some(&hash)).await)
            });
        }
        // Abandoned, most likely before the worker answers it: whether it is skipped or answered into the void,
        // the worker goes on with the rest.
        let _ = tokio::time::timeout(Duration::ZERO, logins.check("laptop-x", "x", "salah", Some(&hash))).await;
        while let Some(done) = tasks.join_next().await {
            let (i, ok) = done.unwrap();
            assert_eq!(ok, i % 2 == 0, "check {i}");
        }
    }
}
