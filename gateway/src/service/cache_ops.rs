//! The warehouse cache's operations: its figures, erasure, a new key, on and off. Each change is an admin event
//! (mirrored into the audit log); an erasure names the person as the audit log names people, by commitment.

use serde_json::json;
use simpul_core::kk::KkNumber;
use simpul_core::nik::Nik;
use simpul_ledger::Identifier;

use super::{directory_failure, internal, Gateway};
use crate::admin::cache::{CachePurge, CacheStatsView, CacheStatusView, PurgeTarget, PurgeView, RekeyView};
use crate::admin::{Failure, FailureKind};
use crate::cache::{CacheError, CacheHandle, Purge};
use crate::store::{Actor, AdminEvent};

fn cache_failure(error: CacheError) -> Failure {
    let kind = match error {
        CacheError::NoConsolidation => FailureKind::Invalid,
        CacheError::NotOpen(_) => FailureKind::Conflict,
        CacheError::Key(_) | CacheError::Sled(_) => FailureKind::Internal,
    };
    Failure::new(kind, error)
}

impl Gateway {
    pub(super) fn cache_stats(&self) -> CacheStatsView {
        let (since_start, today) = self.cache.counts(self.today());
        let (entries, bytes) = self.cache.store().map_or((0, 0), |store| store.size());
        let condition = self.cache.condition();
        let status = |today| CacheStatusView {
            on: condition.on,
            off_reason: condition.off_reason,
            open_error: condition.error,
            entries,
            bytes,
            max_bytes: self.cache.max_bytes(),
            today,
        };
        CacheStatsView::new(status, &since_start, &today)
    }

    /// Removes what `op` names; a NIK or KK number is checked as requests check it (and recorded only as the audit
    /// log's commitment), an institution must exist.
    pub(super) async fn cache_purge(&self, op: CachePurge, actor: Actor) -> Result<PurgeView, Failure> {
        let today = self.today();
        let invalid =
            |what: &str, e: &dyn std::fmt::Display| Failure::new(FailureKind::Invalid, format!("--{what}: {e}"));
        let (purge, target, subjects) = match op.target {
            PurgeTarget::Nik(nik) => {
                let nik = Nik::parse(&nik, today).map_err(|e| invalid("nik", &e))?.to_string();
                (Purge::Nik(nik.clone()), "nik".to_owned(), vec![Identifier::Nik(nik)])
            }
            PurgeTarget::Kk(kk) => {
                let kk = KkNumber::parse(&kk, today).map_err(|e| invalid("kk", &e))?.to_string();
                (Purge::Kk(kk.clone()), "kk".to_owned(), vec![Identifier::Kk(kk)])
            }
            PurgeTarget::Institution(id) => {
                self.directory().institution(&id).map_err(directory_failure)?;
                (Purge::Institution(id.to_string()), format!("institution {id}"), vec![])
            }
            PurgeTarget::All => (Purge::All, "all".to_owned(), vec![]),
        };
        let _admin = self.admin.lock().await;
        let removed = self.cache_work(move |cache| cache.purge(&purge)).await? as u64;
        let view = PurgeView { target: target.clone(), removed };
        let event = AdminEvent { subjects, ..self.event(actor, "cache.purge", target, json!({ "removed": removed })) };
        self.store.commit(&[], Some(&event)).map_err(|e| internal("database", e))?;
        tracing::info!(target = %view.target, removed, "cache purged");
        Ok(view)
    }

    pub(super) async fn cache_rekey(&self, actor: Actor) -> Result<RekeyView, Failure> {
        let _admin = self.admin.lock().await;
        let (resealed, dropped) = self.cache_work(CacheHandle::rekey).await?;
        let view = RekeyView { resealed: resealed as u64, dropped: dropped as u64 };
        let detail = serde_json::to_value(&view).expect("a view serializes");
        self.store
            .commit(&[], Some(&self.event(actor, "cache.rekey", "cache.key", detail)))
            .map_err(|e| internal("database", e))?;
        tracing::info!(resealed, dropped, "cache key replaced");
        Ok(view)
    }

    pub(super) async fn cache_switch(&self, on: bool, actor: Actor) -> Result<CacheStatusView, Failure> {
        let _admin = self.admin.lock().await;
        self.cache.switch(on).map_err(cache_failure)?;
        let action = if on { "cache.on" } else { "cache.off" };
        self.store
            .commit(&[], Some(&self.event(actor, action, "cache", json!({}))))
            .map_err(|e| internal("database", e))?;
        tracing::info!("{action}");
        Ok(self.cache_stats().status)
    }

    /// Runs `work` on the cache on a blocking thread: it goes through every entry.
    async fn cache_work<T: Send + 'static>(
        &self,
        work: impl FnOnce(&CacheHandle) -> Result<T, CacheError> + Send + 'static,
    ) -> Result<T, Failure> {
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || work(&cache))
            .await
            .map_err(|e| internal("cache", e))?
            .map_err(cache_failure)
    }
}
