//! Daily quotas per consumer, reset at local midnight.
//!
//! The ledger lives in memory: the warehouse is a stand-in, and a restart giving everyone a fresh day is what a demo
//! or a test wants. The gateway and relay keep theirs on disk.

use std::sync::Mutex;

use chrono::NaiveDate;

/// The day's count of one consumer. A count from an earlier day is stale and reads as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DayCount {
    day: NaiveDate,
    used: u64,
}

impl DayCount {
    fn used_on(&self, today: NaiveDate) -> u64 {
        if self.day == today {
            self.used
        } else {
            0
        }
    }

    /// Spends one request of `limit` on `today`: the remaining quota after it, or `None` when none was left.
    fn spend(&mut self, today: NaiveDate, limit: u64) -> Option<u64> {
        let used = self.used_on(today);
        if used >= limit {
            return None;
        }
        *self = DayCount { day: today, used: used + 1 };
        Some(limit - used - 1)
    }
}

/// Quota ledger, one slot per consumer (by [`crate::consumer::Consumer::index`]).
#[derive(Debug)]
pub struct QuotaLedger {
    slots: Vec<Mutex<DayCount>>,
}

impl QuotaLedger {
    pub fn new(consumers: usize) -> Self {
        let fresh = DayCount { day: NaiveDate::MIN, used: 0 };
        QuotaLedger { slots: (0..consumers).map(|_| Mutex::new(fresh)).collect() }
    }

    /// Atomically takes one request from the consumer's quota for `today`; the remaining quota after it, or `None`
    /// when the day's quota was already spent.
    pub fn spend(&self, consumer: usize, limit: u64, today: NaiveDate) -> Option<u64> {
        self.slot(consumer).spend(today, limit)
    }

    /// What is left of the consumer's quota for `today`, without spending any.
    pub fn remaining(&self, consumer: usize, limit: u64, today: NaiveDate) -> u64 {
        limit.saturating_sub(self.slot(consumer).used_on(today))
    }

    fn slot(&self, consumer: usize) -> std::sync::MutexGuard<'_, DayCount> {
        self.slots[consumer].lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
    }

    #[test]
    fn spends_down_to_zero_then_refuses_until_the_next_day() {
        let ledger = QuotaLedger::new(2);
        assert_eq!(ledger.remaining(0, 3, day(1)), 3);
        assert_eq!(ledger.spend(0, 3, day(1)), Some(2));
        assert_eq!(ledger.spend(0, 3, day(1)), Some(1));
        assert_eq!(ledger.spend(0, 3, day(1)), Some(0));
        assert_eq!(ledger.spend(0, 3, day(1)), None);
        assert_eq!(ledger.remaining(0, 3, day(1)), 0);
        assert_eq!(ledger.remaining(1, 3, day(1)), 3, "consumers do not share a quota");
        assert_eq!(ledger.remaining(0, 3, day(2)), 3);
        assert_eq!(ledger.spend(0, 3, day(2)), Some(2));
    }

    #[test]
    fn zero_quota_never_spends() {
        let ledger = QuotaLedger::new(1);
        assert_eq!(ledger.spend(0, 0, day(1)), None);
        assert_eq!(ledger.remaining(0, 0, day(1)), 0);
    }

    #[test]
    fn concurrent_spending_never_oversells() {
        let ledger = std::sync::Arc::new(QuotaLedger::new(1));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let ledger = ledger.clone();
                std::thread::spawn(move || (0..100).filter(|_| ledger.spend(0, 500, day(1)).is_some()).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 500);
        assert_eq!(ledger.remaining(0, 500, day(1)), 0);
    }
}
