//! The local warehouse cache: how it is used, erasing what it holds about a person or an institution, its key, and
//! turning it off and on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use simpul_core::device::Name;

/// Entries, bytes and hit ratios, in all and per institution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheStats {}

/// Removes every entry about a person (by NIK or KK number), every entry an institution's requests filled, or all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePurge {
    pub target: PurgeTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeTarget {
    Nik(String),
    Kk(String),
    Institution(Name),
    All,
}

/// Replaces `cache.key`, re-sealing the entries under the new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRekey {}

/// Answers repeat requests from the cache again (the choice outlasts a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheOn {}

/// Sends every request upstream (the entries stay, sealed, and still expire; the choice outlasts a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheOff {}

/// Hits and misses: a hit is a request answered from the cache, a miss one that looked in it and asked the warehouse
/// (failures included). While the cache is off, requests are neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub hits: u64,
    pub misses: u64,
}

impl Tally {
    pub fn add(&mut self, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    /// Hits over hits and misses; `None` before any.
    pub fn ratio(&self) -> Option<f64> {
        let looked = self.hits + self.misses;
        (looked > 0).then(|| self.hits as f64 / looked as f64)
    }

    fn sum<'a>(tallies: impl Iterator<Item = &'a Tally>) -> Tally {
        tallies.fold(Tally::default(), |all, t| Tally { hits: all.hits + t.hits, misses: all.misses + t.misses })
    }
}

/// Hits, misses and their ratio.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HitRatio {
    pub hits: u64,
    pub misses: u64,
    /// Hits over hits and misses; `null` before any.
    pub ratio: Option<f64>,
}

impl From<Tally> for HitRatio {
    fn from(tally: Tally) -> Self {
        HitRatio { hits: tally.hits, misses: tally.misses, ratio: tally.ratio() }
    }
}

/// Why the cache is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffReason {
    /// `cache off`.
    Admin,
    /// `[cache] enabled = false`, and no `cache on` since.
    Config,
    /// It could not be opened (see `open_error`).
    Error,
}

/// The cache in `status`, and after `cache on|off`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStatusView {
    pub on: bool,
    pub off_reason: Option<OffReason>,
    /// Why it could not be opened (not `error`, which a `--json` answer uses only for a failed command).
    pub open_error: Option<String>,
    pub entries: u64,
    /// The entries' sealed size.
    pub bytes: u64,
    /// `[cache] max_bytes`: past it, new answers are not kept.
    pub max_bytes: u64,
    pub today: HitRatio,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstitutionStats {
    pub since_start: HitRatio,
    /// Today (local): counted across restarts.
    pub today: HitRatio,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStatsView {
    #[serde(flatten)]
    pub status: CacheStatusView,
    pub since_start: HitRatio,
    /// By institution id, those with a hit or a miss since the start or today.
    pub institutions: BTreeMap<String, InstitutionStats>,
}

impl CacheStatsView {
    /// The view of `status` with the counts since the start and today per institution.
    pub fn new(
        status: impl FnOnce(HitRatio) -> CacheStatusView,
        since_start: &BTreeMap<String, Tally>,
        today: &BTreeMap<String, Tally>,
    ) -> Self {
        let institutions = since_start
            .keys()
            .chain(today.keys())
            .map(|id| {
                let of =
                    |tallies: &BTreeMap<String, Tally>| HitRatio::from(tallies.get(id).copied().unwrap_or_default());
                (id.clone(), InstitutionStats { since_start: of(since_start), today: of(today) })
            })
            .collect();
        CacheStatsView {
            status: status(Tally::sum(today.values()).into()),
            since_start: Tally::sum(since_start.values()).into(),
            institutions,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeView {
    /// What was purged: `nik`, `kk`, `institution ID` or `all` (never the number itself).
    pub target: String,
    /// Entries removed.
    pub removed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyView {
    /// Entries re-sealed under the new key.
    pub resealed: u64,
    /// Entries that did not open (or did not fit) and were dropped.
    pub dropped: u64,
}
