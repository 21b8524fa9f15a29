//! Failed checks make the next ones for the same key wait, without argon2.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::keyed::Keyed;
use super::{lock, make_room};

/// How failed password checks slow down the next ones for the same key (a user id, or a device and a user id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Failures in a row after which the next check waits (0 is taken as 1), so `failures_before_wait - 1` failures
    /// are free: a user mistyping once or twice does not wait.
    pub failures_before_wait: u32,
    /// The wait after that many; each further failure doubles it.
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// A key with no failure for this long is forgotten: it starts again from no failures.
    pub forget_after: Duration,
    /// Keys tracked at most; when full, the one quiet longest goes.
    pub capacity: usize,
}

/// After five failures in a row, 1 s, doubling to at most a minute: after 11 failures a guesser tries once a
/// minute, while an operator who mistyped waits seconds. Forgotten after 15 quiet minutes; 10,000 keys is far
/// more than an appliance's users (or its devices × users) and costs under a megabyte (a 32-byte digest, a count
/// and an instant each).
pub const DEFAULT_BACKOFF: BackoffPolicy = BackoffPolicy {
    failures_before_wait: 5,
    first_wait: Duration::from_secs(1),
    max_wait: Duration::from_secs(60),
    forget_after: Duration::from_secs(15 * 60),
    capacity: 10_000,
};

/// Failed password checks per key (the caller chooses: a user id as sent, or a device and a user id), so repeated
/// failures make the next checks wait without costing argon2. Keys are kept as keyed digests, never as the text a
/// client typed; unknown user ids are tracked exactly like known ones, so waiting tells nothing about which exist.
pub struct LoginBackoff {
    key: Keyed,
    policy: BackoffPolicy,
    failures: Mutex<HashMap<[u8; 32], Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl LoginBackoff {
    /// Tracks failures as `policy` says (a `capacity` of 0 is taken as 1).
    pub fn new(policy: BackoffPolicy) -> Self {
        let policy = BackoffPolicy { capacity: policy.capacity.max(1), ..policy };
        LoginBackoff { key: Keyed::new(), policy, failures: Mutex::default() }
    }

    /// Whether a check for `key` may run at `now`; `Err` is how long until one may (a check may run again at exactly
    /// the last failure + the wait). While it is `Err` the caller answers as for a wrong password, without checking
    /// and without counting a failure, so requests made while waiting do not lengthen the wait.
    pub fn admit(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let digest = self.key.digest(&[key]);
        let mut failures = lock(&self.failures);
        let Some(f) = failures.get(&digest).copied() else { return Ok(()) };
        let quiet = now.saturating_duration_since(f.last);
        if quiet >= self.policy.forget_after {
            failures.remove(&digest);
            return Ok(());
        }
        match self.wait(f.count) {
            Some(wait) if quiet < wait => Err(wait - quiet),
            _ => Ok(()),
        }
    }

    /// Counts a failed check for `key` at `now`.
    pub fn failed(&self, key: &str, now: Instant) {
        let digest = self.key.digest(&[key]);
        let forget_after = self.policy.forget_after;
        let mut failures = lock(&self.failures);
        let stale = |f: &Failures| now.saturating_duration_since(f.last) >= forget_after;
        make_room(&mut failures, &digest, self.policy.capacity, |f| f.last, stale);
        let entry = failures.entry(digest).or_insert(Failures { count: 0, last: now });
        if now.saturating_duration_since(entry.last) >= forget_after {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        // Checks finish out of order: a late report of an earlier failure does not move the last one back.
        entry.last = entry.last.max(now);
    }

    /// A successful check: `key` starts again from no failures.
    pub fn succeeded(&self, key: &str) {
        let digest = self.key.digest(&[key]);
        lock(&self.failures).remove(&digest);
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        lock(&self.failures).len()
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.failures).is_empty()
    }

    /// The wait after `count` failures in a row: none before `failures_before_wait` (taken as 1 if 0), then
    /// `first_wait`, doubled for each failure beyond, at most `max_wait`.
    fn wait(&self, count: u32) -> Option<Duration> {
        let doublings = count.checked_sub(self.policy.failures_before_wait.max(1))?;
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        Some(self.policy.first_wait.saturating_mul(factor).min(self.policy.max_wait))
    }
}

impl fmt::Debug for LoginBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginBackoff").field("keys", &self.len()).field("policy", &self.policy).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            failures_before_wait: 3,
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(5),
            forget_after: Duration::from_secs(60),
            capacity: 100,
        }
    }

    #[test]
    fn failures_wait_longer_and_longer_up_to_the_cap() {
        let backoff = LoginBackoff::new(policy());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // (failure at ms, the wait it starts) for one key, each failure made as soon as admitted.
        let table = [
            (0, None),
            (1, None),
            (2, Some(1000)),
            (1002, Some(2000)),
            (3002, Some(4000)),
            (7002, Some(5000)),
            (12_002, Some(5000)),
        ];
        for (ms, wait) in table {
            assert_eq!(backoff.admit("budi", at(ms)), Ok(()), "admitted at {ms}");
            backoff.failed("budi", at(ms));
            match wait {
                None => assert_eq!(backoff.admit("budi", at(ms)), Ok(())),
                Some(wait) => {
                    assert_eq!(backoff.admit("budi", at(ms)), Err(Duration::from_millis(wait)), "at {ms}");
                    assert_eq!(backoff.admit("budi", at(ms + wait - 1)), Err(Duration::from_millis(1)));
                    assert_eq!(backoff.admit("budi", at(ms + wait)), Ok(()), "admitted again at {ms} + {wait}");
                }
            }
        }
        // Other keys are untouched; unknown or known is not the backoff's business: every key is alike.
        assert_eq!(backoff.admit("siti", at(12_002)), Ok(()));
        // A success starts over; so does a minute without failures.
        backoff.succeeded("budi");
        assert_eq!(backoff.admit("budi", at(12_002)), Ok(()));
        for ms in [0, 1, 2] {
            backoff.failed("siti", at(ms));
        }
        assert!(backoff.admit("siti", at(3)).is_err());
        assert_eq!(backoff.len(), 1, "budi's success dropped its record");
        assert_eq!(backoff.admit("siti", at(60_002)), Ok(()), "forgotten after a quiet minute");
        assert!(backoff.is_empty(), "and its record dropped");
        backoff.failed("siti", at(60_002));
        assert_eq!(backoff.admit("siti", at(60_002)), Ok(()), "counting starts again from one");
        assert_eq!(format!("{backoff:?}").split(',').next(), Some("LoginBackoff { keys: 1"));
    }

    #[test]
    fn a_full_backoff_table_drops_forgotten_keys_then_the_stalest() {
        let backoff = LoginBackoff::new(BackoffPolicy { capacity: 2, failures_before_wait: 1, ..policy() });
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        backoff.failed("a", at(0));
        backoff.failed("b", at(30));
        backoff.failed("c", at(65));
        assert_eq!(backoff.len(), 2, "a, quiet for over a minute, went");
        assert!(backoff.admit("b", at(70)).is_ok(), "b's one-second wait is over");
        backoff.failed("b", at(70));
        backoff.failed("d", at(71));
        assert_eq!(backoff.len(), 2);
        assert!(backoff.admit("c", at(71)).is_ok(), "c, the stalest, went to make room");
        assert!(backoff.admit("b", at(71)).is_err() && backoff.admit("d", at(71)).is_err());
    }

    #[test]
    fn unknown_and_known_user_ids_back_off_alike() {
        // The backoff never learns which ids exist: the same failures at the same times give the same answers.
        let backoff = LoginBackoff::new(policy());
        let t0 = Instant::now();
        let script = |id: &str| -> Vec<Result<(), Duration>> {
            let mut answers = Vec::new();
            for ms in [0u64, 10, 20, 500, 1020, 1021, 3020, 3500, 7020] {
                let now = t0 + Duration::from_millis(ms);
                let answer = backoff.admit(id, now);
                if answer.is_ok() {
                    backoff.failed(id, now);
                }
                answers.push(answer);
            }
            answers
        };
        let known = script("budi.santoso");
        assert_eq!(script("tidak.ada.9f3a"), known);
        assert_eq!(script(""), known);
        assert_eq!(known.iter().filter(|a| a.is_err()).count(), 3, "{known:?}");
        assert_eq!(known[3], Err(Duration::from_millis(520)), "1 s after the third failure at 20 ms");
    }

    #[test]
    fn a_record_is_forgotten_exactly_after_its_quiet_time_even_mid_wait() {
        // A wait longer than the quiet time: forgetting ends it.
        let backoff = LoginBackoff::new(BackoffPolicy {
            failures_before_wait: 1,
            first_wait: Duration::from_secs(120),
            max_wait: Duration::from_secs(120),
            ..policy()
        });
        let t0 = Instant::now();
        backoff.failed("u", t0);
        let table = [
            (Duration::ZERO, Err(Duration::from_secs(120))),
            (Duration::from_secs(60) - Duration::from_nanos(1), Err(Duration::from_secs(60) + Duration::from_nanos(1))),
            (Duration::from_secs(60), Ok(())),
            (Duration::from_secs(59), Ok(())),
        ];
        for (after, want) in table {
            assert_eq!(backoff.admit("u", t0 + after), want, "{after:?}");
        }
        assert!(backoff.is_empty(), "dropped at 60 s, so earlier instants find nothing either");
    }

    #[test]
    fn degenerate_policies_and_out_of_order_times_do_not_panic() {
        let t0 = Instant::now();
        // No capacity and no free failures are taken as one of each.
        let backoff = LoginBackoff::new(BackoffPolicy { failures_before_wait: 0, capacity: 0, ..policy() });
        backoff.failed("a", t0);
        assert_eq!(backoff.admit("a", t0), Err(Duration::from_secs(1)));
        backoff.failed("b", t0);
        assert_eq!((backoff.len(), backoff.admit("a", t0)), (1, Ok(())));
        // Waits that would overflow an instant saturate instead.
        let forever = LoginBackoff::new(BackoffPolicy {
            failures_before_wait: 1,
            first_wait: Duration::MAX,
            max_wait: Duration::MAX,
            forget_after: Duration::MAX,
            capacity: 1,
        });
        for _ in 0..40 {
            forever.failed("a", t0);
        }
        assert_eq!(forever.admit("a", t0 + Duration::from_secs(1)), Err(Duration::MAX - Duration::from_secs(1)));
        // A failure reported late does not move the last one back, and an instant before it waits the whole wait.
        let backoff = LoginBackoff::new(BackoffPolicy { failures_before_wait: 1, ..policy() });
        backoff.failed("a", t0 + Duration::from_secs(5));
        backoff.failed("a", t0);
        assert_eq!(backoff.admit("a", t0 + Duration::from_secs(5)), Err(Duration::from_secs(2)));
        assert_eq!(backoff.admit("a", t0), Err(Duration::from_secs(2)));
    }

    #[test]
    fn the_default_policy_is_as_documented() {
        let backoff = LoginBackoff::new(DEFAULT_BACKOFF);
        let t0 = Instant::now();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            backoff.failed("u", now);
            let wait = backoff.admit("u", now).err().unwrap_or_default();
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
