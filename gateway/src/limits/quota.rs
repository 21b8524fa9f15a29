//! Daily quotas per institution and per user, kept in the sled tree `quota`.
//!
//! Each count lives under `<day>/<kind>/<name>` (`2026-11-25/i/DINSOS`, `2026-11-25/u/budi`) as a big-endian u64 of
//! the units used that day. The day is the local date in the appliance's zone ([`simpul_core::day::quota_day`]), so a
//! new day starts at zero by having new keys, and nothing has to run at midnight; old days stay in the tree until
//! [`QuotaLedger::prune`] removes them.
//!
//! The counts are decided in memory: every count this process has read or changed is kept there (read from the tree
//! the first time it is needed), and a spend takes one unit from every charge (the institution's and the user's)
//! under one lock, all or nothing, so concurrent spenders never overspend. The process owns the database (sled's
//! lock), so nothing else changes the tree behind the memory's back. Readers ([`QuotaLedger::used`] for the API,
//! [`QuotaLedger::usage`]) read the same memory, so they see every spend at once, durable or not yet. A count is read
//! from the tree under the lock, on the thread that asks, the first time it is needed (once per subject and day).
//!
//! # Which requests spend quota
//!
//! The ledger only provides the operations; the API applies this rule, the same one the warehouse stand-in follows
//! (see `simpul_warehouse::handler`):
//! * refusals before the quota gate spend nothing: login failed (03), device not the user's (04), empty credentials
//!   (09), institution inactive (16), user inactive (17), outside access hours (06), method not granted (07), and a
//!   rate limit (HTTP 429);
//! * every request that passes the gate spends one unit of the institution's quota and one of the user's, whatever
//!   the lookup then finds (data, 07 for bad parameters, 11–15): the lookup was done, and a client probing for valid
//!   NIKs pays for each probe;
//! * a request the upstream failed (HTTP 502, 503, 504) is given its units back with
//!   [`QuotaLedger::refund_pending`]: the institution should not pay for the warehouse's outage.
//!
//! `quotaLimiter` in an envelope is what the caller can still spend today: the least of the institution's and the
//! user's remaining quota ([`Spent::least`], [`QuotaLedger::least_remaining`]).
//!
//! # Durability: in the audit log's batches
//!
//! A spend must be durable before its request is answered, not before the upstream is asked, and every answer waits
//! for its audit record's batch. So the API spends with [`QuotaLedger::spend_pending`] (memory only), and the ledger
//! hands the audit writer the counts changed since they were last written ([`BatchWrites`]): the writer puts them in
//! the transaction of its next batch, with the value each has when that batch is built. A request's spend is made
//! before its record is submitted, so it is durable in its record's batch or an earlier one: an acknowledged answer's
//! unit survives a crash or kill -9, and a request costs no sled transaction of its own (many requests of one
//! institution share one write of its count per batch). A crash may keep a spend whose request was never answered
//! (it was in an earlier batch than its record), never lose one that was. Refunds ([`QuotaLedger::refund_pending`])
//! go the same way.
//!
//! Without an audit writer (tests, tools) [`QuotaLedger::spend`] and [`QuotaLedger::refund`] write the changed counts
//! themselves and flush; an owner uses one way or the other, never both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use serde::Serialize;

use simpul_ledger::{BatchWrites, Flusher, Write};

/// The name of the sled tree holding the counts.
pub const TREE: &str = "quota";

/// Whose quota a charge draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Institution,
    User,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Institution => "i",
            Kind::User => "u",
        }
    }

    fn from_tag(tag: &str) -> Option<Kind> {
        match tag {
            "i" => Some(Kind::Institution),
            "u" => Some(Kind::User),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Institution => "institution",
            Kind::User => "user",
        })
    }
}

/// An institution (by its code) or a user (by name) whose daily count is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject<'a> {
    Institution(&'a str),
    User(&'a str),
}

impl<'a> Subject<'a> {
    pub fn of(kind: Kind, name: &'a str) -> Self {
        match kind {
            Kind::Institution => Subject::Institution(name),
            Kind::User => Subject::User(name),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Subject::Institution(_) => Kind::Institution,
            Subject::User(_) => Kind::User,
        }
    }

    pub fn name(&self) -> &'a str {
        match self {
            Subject::Institution(name) | Subject::User(name) => name,
        }
    }

    fn key(&self, day: NaiveDate) -> String {
        format!("{}/{}/{}", day_prefix(day), self.kind().tag(), self.name())
    }
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// One unit to take from a subject whose daily quota is `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge<'a> {
    pub subject: Subject<'a>,
    pub limit: u64,
}

/// What a successful spend left: the remaining quota of each charge, in the order the charges were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spent {
    pub remaining: Vec<u64>,
}

impl Spent {
    /// What the caller can still spend today: the tightest of its quotas (for `quotaLimiter`).
    pub fn least(&self) -> u64 {
        self.remaining.iter().copied().min().unwrap_or(u64::MAX)
    }
}

/// One subject's count on a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub kind: Kind,
    pub subject: String,
    pub used: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The charge at `index` had nothing left; nothing was spent from any charge.
    #[error("the daily quota of {kind} {name} is spent")]
    Exhausted { index: usize, kind: Kind, name: String },
    #[error("quota database: {0}")]
    Store(#[from] sled::Error),
    #[error("quota database: the count at {key:?} is damaged")]
    Corrupt { key: String },
}

/// The counts in memory (see the module docs): every one read or changed so far, by key, and the keys changed since
/// they were last written.
#[derive(Debug, Default)]
struct Counts {
    used: HashMap<String, u64>,
    unwritten: HashSet<String>,
}

/// The quota ledger over one sled tree. Cheap to clone; all clones see the same counts.
#[derive(Debug, Clone)]
pub struct QuotaLedger {
    tree: sled::Tree,
    flusher: Arc<Flusher>,
    counts: Arc<Mutex<Counts>>,
}

impl QuotaLedger {
    /// Opens (or creates) the `quota` tree in the gateway's database; [`QuotaLedger::spend`] and the other writes of
    /// its own are made durable through `flusher`, the database's one.
    pub fn new(db: &sled::Db, flusher: Arc<Flusher>) -> Result<Self, QuotaError> {
        Ok(QuotaLedger { tree: db.open_tree(TREE)?, flusher, counts: Arc::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The count under `key`, read from the tree the first time.
    fn count(&self, counts: &mut Counts, key: &str) -> Result<u64, QuotaError> {
        if let Some(used) = counts.used.get(key) {
            return Ok(*used);
        }
        let used = match self.tree.get(key.as_bytes())? {
            None => 0,
            Some(value) => decode(&value).ok_or_else(|| QuotaError::Corrupt { key: key.to_owned() })?,
        };
        counts.used.insert(key.to_owned(), used);
        Ok(used)
    }

    fn set(counts: &mut Counts, key: String, used: u64) {
        counts.unwritten.insert(key.clone());
        counts.used.insert(key, used);
    }

    /// Spends one unit from every charge on `day`, all or nothing, and writes and flushes the changed counts before
    /// returning (for an owner without an audit writer). The remaining quota of each charge after the spend, or
    /// [`QuotaError::Exhausted`] naming the first charge that had none left.
    pub fn spend(&self, day: NaiveDate, charges: &[Charge<'_>]) -> Result<Spent, QuotaError> {
        let spent = self.spend_in_memory(day, charges)?;
        self.write_and_flush()?;
        Ok(spent)
    }

    /// As [`QuotaLedger::spend`] but durable only with the audit batch that takes the changed counts, which the
    /// caller must wait for before it acknowledges the spend (see "Durability").
    pub async fn spend_pending(&self, day: NaiveDate, charges: &[Charge<'_>]) -> Result<Spent, QuotaError> {
        self.spend_in_memory(day, charges)
    }

    fn spend_in_memory(&self, day: NaiveDate, charges: &[Charge<'_>]) -> Result<Spent, QuotaError> {
        let mut counts = self.lock();
        let mut taken: Vec<(String, u64)> = Vec::with_capacity(charges.len());
        let mut remaining = Vec::with_capacity(charges.len());
        for (index, charge) in charges.iter().enumerate() {
            let key = charge.subject.key(day);
            // The same subject charged twice in one call spends two units, as the caller asked.
            let used = match taken.iter().rev().find(|(k, _)| *k == key) {
                Some((_, used)) => *used,
                None => self.count(&mut counts, &key)?,
            };
            if used >= charge.limit {
                return Err(QuotaError::Exhausted {
                    index,
                    kind: charge.subject.kind(),
                    name: charge.subject.name().to_owned(),
                });
            }
            taken.push((key, used + 1));
            remaining.push(charge.limit - used - 1);
        }
        for (key, used) in taken {
            Self::set(&mut counts, key, used);
        }
        Ok(Spent { remaining })
    }

    /// Gives one unit back to each charge's subject on `day` (never below zero), and writes and flushes.
    pub fn refund(&self, day: NaiveDate, charges: &[Charge<'_>]) -> Result<(), QuotaError> {
        self.refund_in_memory(day, charges)?;
        self.write_and_flush()
    }

    /// As [`QuotaLedger::refund`], durable only with the audit batch that takes it (as [`QuotaLedger::spend_pending`]).
    pub async fn refund_pending(&self, day: NaiveDate, charges: &[Charge<'_>]) -> Result<(), QuotaError> {
        self.refund_in_memory(day, charges)
    }

    fn refund_in_memory(&self, day: NaiveDate, charges: &[Charge<'_>]) -> Result<(), QuotaError> {
        let mut counts = self.lock();
        for charge in charges {
            let key = charge.subject.key(day);
            let used = self.count(&mut counts, &key)?;
            if used > 0 {
                Self::set(&mut counts, key, used - 1);
            }
        }
        Ok(())
    }

    /// Writes the counts changed since they were last written, in one batch, and flushes: the way to durability of
    /// an owner without an audit writer.
    fn write_and_flush(&self) -> Result<(), QuotaError> {
        let written = {
            let counts = self.lock();
            let written = self.writes(&counts);
            let mut batch = sled::Batch::default();
            for write in &written {
                match &write.value {
                    Some(value) => batch.insert(write.key.clone(), value.clone()),
                    None => batch.remove(write.key.clone()),
                }
            }
            // Under the lock, so that two writers never put an older count over a newer one.
            self.tree.apply_batch(batch)?;
            written
        };
        self.flusher.flush()?;
        // Only once durable: a failed write or flush leaves the counts pending, to be written again.
        self.durable(&written);
        Ok(())
    }

    /// The changed counts as writes of their values now; an absent key reads as zero, so a count back at zero is
    /// removed rather than kept.
    fn writes(&self, counts: &Counts) -> Vec<Write> {
        counts
            .unwritten
            .iter()
            .map(|key| {
                let used = counts.used.get(key).copied().unwrap_or(0);
                Write {
                    tree: self.tree.clone(),
                    key: key.as_bytes().into(),
                    value: (used > 0).then(|| used.to_be_bytes().as_slice().into()),
                }
            })
            .collect()
    }

    /// How many units each charge's subject has used on `day`.
    pub async fn used_async(&self, day: NaiveDate, charges: &[Charge<'_>]) -> Result<Vec<u64>, QuotaError> {
        charges.iter().map(|c| self.used(day, c.subject)).collect()
    }

    /// How many units `subject` has used on `day`.
    pub fn used(&self, day: NaiveDate, subject: Subject<'_>) -> Result<u64, QuotaError> {
        self.count(&mut self.lock(), &subject.key(day))
    }

    /// What is left of a charge's quota on `day`, without spending any.
    pub fn remaining(&self, day: NaiveDate, charge: Charge<'_>) -> Result<u64, QuotaError> {
        Ok(charge.limit.saturating_sub(self.used(day, charge.subject)?))
    }

    /// The least that is left of any of the charges' quotas on `day`: `quotaLimiter` for a refusal that did not reach
    /// the quota gate.
    pub fn least_remaining(&self, day: NaiveDate, charges: &[Charge<'_>]) -> Result<u64, QuotaError> {
        charges.iter().try_fold(u64::MAX, |least, charge| Ok(least.min(self.remaining(day, *charge)?)))
    }

    /// Every count kept for `day` (the memory's over the tree's), institutions first, each kind in name order; counts
    /// at zero are not listed.
    pub fn usage(&self, day: NaiveDate) -> Result<Vec<Usage>, QuotaError> {
        let prefix = format!("{}/", day_prefix(day));
        let mut keys: BTreeMap<String, u64> = BTreeMap::new();
        // Read before the lock is taken, so the tree's scan holds no spender up: a count the tree has and the memory
        // lacks was never changed by this process, so it cannot change while it is read.
        for entry in self.tree.scan_prefix(prefix.as_bytes()) {
            let (key, value) = entry?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let used = decode(&value).ok_or_else(|| QuotaError::Corrupt { key: key.clone() })?;
            keys.insert(key, used);
        }
        let counts = self.lock();
        for (key, used) in counts.used.iter().filter(|(key, _)| key.starts_with(&prefix)) {
            keys.insert(key.clone(), *used);
        }
        keys.into_iter()
            .filter(|(_, used)| *used > 0)
            .map(|(key, used)| {
                // The name is everything after the kind, so a name holding '/' still reads back whole.
                let parsed = key[prefix.len()..]
                    .split_once('/')
                    .and_then(|(tag, name)| Some(Usage { kind: Kind::from_tag(tag)?, subject: name.to_owned(), used }));
                parsed.ok_or(QuotaError::Corrupt { key })
            })
            .collect()
    }

    /// Deletes the counts of every day before `before`, in memory and in the tree, and flushes; how many counts were
    /// deleted from the tree. Housekeeping: the gateway keeps about a month.
    ///
    /// The tree is read and written after the lock is let go, so spenders are not held up. An audit batch built just
    /// before may still write an old day's count back (only after a large jump of the clock, as old days are not
    /// spent from): the next prune removes it.
    pub fn prune(&self, before: NaiveDate) -> Result<usize, QuotaError> {
        let bound = day_prefix(before);
        {
            let mut counts = self.lock();
            // Keys start with a zero-padded ISO date, so byte order is date order and old days form one leading range.
            counts.used.retain(|key, _| key.as_str() >= bound.as_str());
            counts.unwritten.retain(|key| key.as_str() >= bound.as_str());
        }
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for key in self.tree.range(..bound.as_bytes()).keys() {
            batch.remove(key?);
            removed += 1;
        }
        if removed > 0 {
            self.tree.apply_batch(batch)?;
            self.flusher.flush()?;
        }
        Ok(removed)
    }
}

/// The audit writer's side (see "Durability"): the changed counts with their values now, and, once durable, those
/// still at the value written are no longer pending.
impl BatchWrites for QuotaLedger {
    fn pending(&self) -> Vec<Write> {
        self.writes(&self.lock())
    }

    fn durable(&self, written: &[Write]) {
        let mut counts = self.lock();
        for write in written {
            let key = String::from_utf8_lossy(&write.key);
            let now = counts.used.get(key.as_ref()).copied().unwrap_or(0);
            let value = write.value.as_deref().and_then(decode).unwrap_or(0);
            if now == value {
                counts.unwritten.remove(key.as_ref());
            }
        }
    }
}

fn day_prefix(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn decode(value: &[u8]) -> Option<u64> {
    value.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn ledger() -> (QuotaLedger, sled::Db) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        (QuotaLedger::new(&db, Flusher::new(&db)).unwrap(), db)
    }

    const DINSOS: Subject<'static> = Subject::Institution("DINSOS");
    const BUDI: Subject<'static> = Subject::User("budi");

    fn charges(institution_limit: u64, user_limit: u64) -> [Charge<'static>; 2] {
        [Charge { subject: DINSOS, limit: institution_limit }, Charge { subject: BUDI, limit: user_limit }]
    }

    #[test]
    fn spends_to_exactly_zero_then_refuses_without_spending() {
        let (ledger, _db) = ledger();
        let user_only = [Charge { subject: BUDI, limit: 3 }];
        assert_eq!(ledger.remaining(day(25), user_only[0]).unwrap(), 3);
        assert_eq!(ledger.spend(day(25), &user_only).unwrap().remaining, [2]);
        assert_eq!(ledger.spend(day(25), &user_only).unwrap().remaining, [1]);
        assert_eq!(ledger.spend(day(25), &user_only).unwrap().remaining, [0]);
        let refused = ledger.spend(day(25), &user_only).unwrap_err();
        assert!(matches!(refused, QuotaError::Exhausted { index: 0, kind: Kind::User, ref name } if name == "budi"));
        assert_eq!(ledger.used(day(25), BUDI).unwrap(), 3);
        assert_eq!(ledger.remaining(day(25), user_only[0]).unwrap(), 0);
    }

    #[test]
    fn an_exhausted_user_spends_nothing_from_the_institution() {
        let (ledger, _db) = ledger();
        let both = charges(100, 2);
        assert_eq!(ledger.spend(day(25), &both).unwrap(), Spent { remaining: vec![99, 1] });
        let spent = ledger.spend(day(25), &both).unwrap();
        assert_eq!(spent.remaining, [98, 0]);
        assert_eq!(spent.least(), 0);
        let refused = ledger.spend(day(25), &both).unwrap_err();
        assert!(matches!(refused, QuotaError::Exhausted { index: 1, kind: Kind::User, .. }), "{refused:?}");
        assert_eq!(refused.to_string(), "the daily quota of user budi is spent");
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 2, "all or nothing: the institution paid nothing");
        assert_eq!(ledger.used(day(25), BUDI).unwrap(), 2);
    }

    #[test]
    fn an_exhausted_institution_spends_nothing_from_the_user() {
        let (ledger, _db) = ledger();
        let siti = [Charge { subject: DINSOS, limit: 2 }, Charge { subject: Subject::User("siti"), limit: 50 }];
        ledger.spend(day(25), &siti).unwrap();
        ledger.spend(day(25), &siti).unwrap();
        let refused = ledger.spend(day(25), &charges(2, 50)).unwrap_err();
        assert!(
            matches!(refused, QuotaError::Exhausted { index: 0, kind: Kind::Institution, ref name } if name == "DINSOS")
        );
        assert_eq!(refused.to_string(), "the daily quota of institution DINSOS is spent");
        assert_eq!(ledger.used(day(25), BUDI).unwrap(), 0, "budi had quota left but the institution had none");
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 2);
    }

    #[test]
    fn a_zero_quota_never_spends() {
        let (ledger, _db) = ledger();
        assert!(matches!(ledger.spend(day(25), &charges(0, 10)), Err(QuotaError::Exhausted { index: 0, .. })));
        assert_eq!(ledger.usage(day(25)).unwrap(), []);
    }

    #[test]
    fn each_day_starts_at_zero() {
        let (ledger, _db) = ledger();
        let both = charges(1, 1);
        ledger.spend(day(25), &both).unwrap();
        assert!(ledger.spend(day(25), &both).is_err());
        assert_eq!(ledger.spend(day(26), &both).unwrap().remaining, [0, 0]);
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 1);
        assert_eq!(ledger.used(day(26), DINSOS).unwrap(), 1);
        assert_eq!(ledger.used(day(27), DINSOS).unwrap(), 0);
    }

    #[test]
    fn refund_gives_one_back_and_stops_at_zero() {
        let (ledger, _db) = ledger();
        let both = charges(5, 5);
        ledger.spend(day(25), &both).unwrap();
        ledger.spend(day(25), &both).unwrap();
        ledger.refund(day(25), &both).unwrap();
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 1);
        assert_eq!(ledger.used(day(25), BUDI).unwrap(), 1);
        assert_eq!(ledger.least_remaining(day(25), &both).unwrap(), 4);
        ledger.refund(day(25), &both).unwrap();
        ledger.refund(day(25), &both).unwrap();
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 0);
        assert_eq!(ledger.usage(day(25)).unwrap(), [], "counts back at zero leave no key");
        // A refund for another day touches only that day.
        ledger.spend(day(25), &both).unwrap();
        ledger.refund(day(24), &both).unwrap();
        assert_eq!(ledger.used(day(25), BUDI).unwrap(), 1);
    }

    #[test]
    fn the_same_subject_charged_twice_spends_twice() {
        let (ledger, _db) = ledger();
        let twice = [Charge { subject: BUDI, limit: 3 }, Charge { subject: BUDI, limit: 3 }];
        assert_eq!(ledger.spend(day(25), &twice).unwrap().remaining, [2, 1]);
        assert!(matches!(ledger.spend(day(25), &twice), Err(QuotaError::Exhausted { index: 1, .. })));
        assert_eq!(ledger.used(day(25), BUDI).unwrap(), 2);
    }

    #[test]
    fn usage_lists_a_day_and_prune_drops_older_days() {
        let (ledger, _db) = ledger();
        for d in [3, 24, 25] {
            ledger.spend(day(d), &charges(10, 10)).unwrap();
        }
        let siti = [Charge { subject: DINSOS, limit: 10 }, Charge { subject: Subject::User("siti/2"), limit: 10 }];
        ledger.spend(day(25), &siti).unwrap();
        let usage = ledger.usage(day(25)).unwrap();
        let usage: Vec<_> = usage.iter().map(|u| (u.kind, u.subject.as_str(), u.used)).collect();
        assert_eq!(usage, [(Kind::Institution, "DINSOS", 2), (Kind::User, "budi", 1), (Kind::User, "siti/2", 1)]);
        assert_eq!(
            serde_json::to_string(&ledger.usage(day(24)).unwrap()[0]).unwrap(),
            r#"{"kind":"institution","subject":"DINSOS","used":1}"#
        );

        assert_eq!(ledger.prune(day(24)).unwrap(), 2, "the 3rd's two counts");
        assert_eq!(ledger.used(day(3), DINSOS).unwrap(), 0);
        assert_eq!(ledger.used(day(24), DINSOS).unwrap(), 1);
        assert_eq!(ledger.prune(day(24)).unwrap(), 0);
        assert_eq!(ledger.prune(day(26)).unwrap(), 5);
        assert_eq!(ledger.usage(day(25)).unwrap(), []);
    }

    #[test]
    fn a_damaged_count_is_reported_not_reset() {
        let (ledger, db) = ledger();
        db.open_tree(TREE).unwrap().insert("2026-11-25/u/budi", &b"xx"[..]).unwrap();
        assert!(matches!(ledger.used(day(25), BUDI), Err(QuotaError::Corrupt { .. })));
        assert!(
            matches!(ledger.spend(day(25), &charges(10, 10)), Err(QuotaError::Corrupt { ref key }) if key == "2026-11-25/u/budi")
        );
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 0);
        assert!(matches!(ledger.usage(day(25)), Err(QuotaError::Corrupt { .. })));
    }

    #[test]
    fn concurrent_spenders_never_overspend() {
        let (ledger, _db) = ledger();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    let user = format!("user{}", t % 2);
                    let charges =
                        [Charge { subject: DINSOS, limit: 61 }, Charge { subject: Subject::User(&user), limit: 1000 }];
                    (0..20).filter(|_| ledger.spend(day(25), &charges).is_ok()).count()
                })
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 61);
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 61);
        let users = ledger.used(day(25), Subject::User("user0")).unwrap()
            + ledger.used(day(25), Subject::User("user1")).unwrap();
        assert_eq!(users, 61, "users paid exactly for the granted spends");
    }

    #[test]
    fn pending_counts_are_written_only_as_the_writes_a_batch_takes() {
        let (ledger, db) = ledger();
        let tree = db.open_tree(TREE).unwrap();
        let both = charges(10, 10);
        ledger.spend(day(24), &both).unwrap();
        runtime().block_on(async {
            ledger.spend_pending(day(25), &both).await.unwrap();
            ledger.spend_pending(day(25), &both).await.unwrap();
        });
        assert_eq!(tree.get("2026-11-25/i/DINSOS").unwrap(), None, "nothing written yet");
        // Readers see the counts at once.
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 2);
        let usage: Vec<_> = ledger.usage(day(25)).unwrap().into_iter().map(|u| (u.subject, u.used)).collect();
        assert_eq!(usage, [("DINSOS".to_owned(), 2), ("budi".to_owned(), 2)]);

        let mut pending = ledger.pending();
        pending.sort_by(|a, b| a.key.cmp(&b.key));
        let written: Vec<_> = pending.iter().map(|w| (w.key.to_vec(), w.value.as_deref().and_then(decode))).collect();
        assert_eq!(written, [(b"2026-11-25/i/DINSOS".to_vec(), Some(2)), (b"2026-11-25/u/budi".to_vec(), Some(2))]);
        // A spend after the batch took its writes: the batch wrote an older count, so it stays pending.
        runtime().block_on(ledger.spend_pending(day(25), &both)).unwrap();
        ledger.durable(&pending);
        let again = ledger.pending();
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|w| w.value.as_deref().and_then(decode) == Some(3)));
        // As the audit writer does: the writes in its transaction, then durable.
        for write in &again {
            write.tree.insert(&write.key, write.value.clone().unwrap()).unwrap();
        }
        ledger.durable(&again);
        assert!(ledger.pending().is_empty());
        assert_eq!(tree.get("2026-11-25/i/DINSOS").unwrap().as_deref().and_then(decode), Some(3));
        // A count refunded to zero is removed from the tree, not written as zero.
        runtime().block_on(async {
            for _ in 0..3 {
                ledger.refund_pending(day(25), &both).await.unwrap();
            }
        });
        assert!(ledger.pending().iter().all(|w| w.value.is_none()));
        assert_eq!(ledger.usage(day(25)).unwrap(), []);
        // The owner's own write (here a refund of another day) writes what is pending: the keys go from the tree.
        ledger.refund(day(26), &both).unwrap();
        assert_eq!(tree.get("2026-11-25/i/DINSOS").unwrap(), None);
        assert_eq!(tree.get("2026-11-25/u/budi").unwrap(), None);
        assert!(ledger.pending().is_empty());
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    /// No admin changes in the crash helper's log.
    struct NoAdmin;

    impl simpul_ledger::AdminOutbox for NoAdmin {
        fn events_after(&self, _: u64) -> Result<Vec<(u64, simpul_ledger::AdminEvent)>, String> {
            Ok(Vec::new())
        }
    }

    /// Set in the child process to the database it spends from; see `crash_helper_spends_pending_then_commits`.
    const CRASH_DB_ENV: &str = "SIMPUL_QUOTA_PENDING_CRASH_DB";

    /// Not a test on its own: the child process of
    /// `pending_spends_and_refunds_count_at_once_and_are_durable_with_the_next_audit_batch`.
    #[test]
    #[ignore = "run by pending_spends_and_refunds_count_at_once_and_are_durable_with_the_next_audit_batch in a child \
                process"]
    fn crash_helper_spends_pending_then_commits() {
        let Some(path) = std::env::var_os(CRASH_DB_ENV) else { return };
        let path = std::path::PathBuf::from(path);
        // sled's background flush is off: only the audit batch's flush can make the pending spends durable.
        let db = sled::Config::new().path(path.join("db")).flush_every_ms(None).open().unwrap();
        let flusher = Flusher::new(&db);
        let ledger = QuotaLedger::new(&db, flusher.clone()).unwrap();
        let audit = simpul_ledger::Ledger::open(&db, flusher, &simpul_ledger::Files::new(&path), None).unwrap();
        let writes: Arc<dyn BatchWrites> = Arc::new(ledger.clone());
        let zone = chrono_tz::Asia::Jakarta;
        let auditor =
            simpul_ledger::Auditor::start_with(audit.log, NoAdmin, audit.personal, zone, Some(writes)).unwrap();
        runtime().block_on(async {
            assert_eq!(ledger.spend_pending(day(25), &charges(2, 2)).await.unwrap().remaining, [1, 1]);
            assert_eq!(ledger.spend_pending(day(25), &charges(2, 2)).await.unwrap().remaining, [0, 0]);
            assert!(ledger.spend_pending(day(25), &charges(2, 2)).await.is_err());
            ledger.refund_pending(day(25), &charges(2, 2)).await.unwrap();
            assert_eq!(ledger.used(day(25), BUDI).unwrap(), 1);
            // The audit writer's next batch (a request's record, in the gateway) makes them durable.
            auditor.commit_writes().await.unwrap();
        });
        simpul_integration::crash::acknowledge_and_wait("committed");
    }

    #[test]
    fn pending_spends_and_refunds_count_at_once_and_are_durable_with_the_next_audit_batch() {
        let dir = tempfile::tempdir().unwrap();
        let helper = "limits::quota::tests::crash_helper_spends_pending_then_commits";
        simpul_integration::crash::kill_once_acknowledged(helper, (CRASH_DB_ENV, dir.path().as_os_str()), "committed");
        let db = simpul_ledger::database::open(dir.path().join("db")).unwrap();
        let ledger = QuotaLedger::new(&db, Flusher::new(&db)).unwrap();
        assert_eq!(ledger.used(day(25), BUDI).unwrap(), 1);
        assert_eq!(ledger.used(day(25), DINSOS).unwrap(), 1);
    }
}
