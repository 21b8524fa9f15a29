//! The gateway's periodic chores on tokio's clock, each a loop over methods of the real objects (the gateway, the web
//! service, the quota ledger) that `run` spawns and a test can run on tokio's paused clock: the firewall's drop set
//! follows the date, and what is kept only for a while is let go.

use std::sync::Arc;
use std::time::Duration;

use crate::api::dukcapil::Dukcapil;
use crate::limits::quota::QuotaLedger;
use crate::service::Gateway;

/// How often the firewall's drop set is brought in line with the date: an agreement ends at local midnight.
const SYNC_EVERY: Duration = Duration::from_secs(30);

/// How often idle rate-limit keys are forgotten; every `ROUNDS_PER_HOUR`th round also lets old data go.
const HOUSEKEEP_EVERY: Duration = Duration::from_secs(60);
const ROUNDS_PER_HOUR: u64 = 60;

/// Days of quota counts kept for the population office's view.
const QUOTA_DAYS_KEPT: i64 = 62;

/// Brings the firewall's drop set in line with the devices, institutions and today's date at once and every
/// [`SYNC_EVERY`], so that an agreement's end (or start) at local midnight takes effect without anyone acting.
pub async fn sync_firewall(gateway: Arc<Gateway>) {
    let mut every = tokio::time::interval(SYNC_EVERY);
    loop {
        every.tick().await;
        if let Err(e) = gateway.sync_firewall().await {
            tracing::error!("bringing the firewall's drop set up to date: {e}");
        }
    }
}

/// Forgets idle rate-limit keys and keeps the cache's counts of today at once and every minute, and lets quota days
/// past keeping, personal data past retention and expired cache entries go at once and every hour.
pub async fn housekeep(api: Arc<Dukcapil>, ledger: QuotaLedger) {
    let mut every = tokio::time::interval(HOUSEKEEP_EVERY);
    for round in 0u64.. {
        every.tick().await;
        api.rates().housekeep();
        if let Err(e) = api.gateway().cache().keep_counts() {
            tracing::warn!("keeping the cache's counts: {e}");
        }
        if round % ROUNDS_PER_HOUR == 0 {
            api.sweep_cache();
            let before = api.gateway().today() - chrono::Duration::days(QUOTA_DAYS_KEPT);
            if let Err(e) = ledger.prune(before) {
                tracing::warn!("pruning old quota days: {e}");
            }
            if let Err(e) = api.gateway().retain_personal_data(None).await {
                tracing::error!("destroying personal data past retention: {}", e.message);
            }
        }
    }
}
