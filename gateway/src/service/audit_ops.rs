//! The audit log's operations: reading, proving, verifying, and destroying personal data past retention. The reads
//! run on blocking threads (a full verification reads the whole log), over an [`AuditView`] of what they need.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use simpul_core::audit::report::Semester;
use simpul_ledger::queries::{self, Page, QueryError, Verification};
use simpul_ledger::{Identifier, Notary, PersonalData};

use super::{internal, Gateway};
use crate::admin::audit::{
    AuditConsistency, AuditProve, AuditRecords, AuditReport, AuditSubject, AuditVerify, CheckpointView,
    ConsistencyView, KeyView, ProofView, ReportView, RetentionView, SubjectView,
};
use crate::admin::gateway::AuditStatus;
use crate::admin::{Failure, FailureKind};
use crate::store::Actor;

/// The most records one page of `audit search`/`export` carries, and the most it looks at to find them.
const PAGE_LIMIT: usize = 5_000;
const PAGE_SCAN: u64 = 100_000;

fn query_failure(error: QueryError) -> Failure {
    let kind = match error {
        QueryError::NoRecord { .. } | QueryError::Empty => FailureKind::NotFound,
        QueryError::OldCheckpoint(_) => FailureKind::Invalid,
        _ => FailureKind::Internal,
    };
    Failure::new(kind, error)
}

/// What the audit operations read, taken from the gateway so that they can run on a blocking thread.
pub(super) struct AuditView {
    notary: Arc<Notary>,
    personal: Arc<PersonalData>,
    zone: Tz,
    now: DateTime<Utc>,
    today: NaiveDate,
    /// Each institution's daily quota, for the report.
    quotas: BTreeMap<String, u64>,
}

impl Gateway {
    /// Runs `work` on a blocking thread over the audit log.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&AuditView) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let view = AuditView {
            notary: self.notary.clone(),
            personal: self.auditor.personal().clone(),
            zone: self.zone,
            now: self.now(),
            today: self.today(),
            quotas: self.directory().institutions().map(|i| (i.id.to_string(), i.agreement.daily_quota)).collect(),
        };
        tokio::task::spawn_blocking(move || work(&view)).await.map_err(|e| internal("audit", e))?
    }

    pub(super) fn audit_key(&self) -> KeyView {
        KeyView {
            origin: self.notary.origin().to_owned(),
            vkey: self.notary.verifier().vkey(),
            size: self.notary.log().size(),
        }
    }

    /// Destroys personal data last used more than `[audit] personal_data_days` ago, and records that it did (by
    /// `actor`, or by the gateway itself on its hourly round).
    pub async fn retain_personal_data(&self, actor: Option<Actor>) -> Result<RetentionView, Failure> {
        let days = self.config.audit.personal_data_days;
        let before = self.today() - chrono::Duration::days(i64::from(days));
        let destroyed = self.auditor.destroy_personal_data(before).await.map_err(|e| internal("audit", e))?;
        let view = RetentionView { destroyed, last_used_before: before, days };
        if destroyed > 0 || actor.is_some() {
            let own = Actor::System { task: "retention".into() };
            let detail = serde_json::to_value(&view).expect("a view serializes");
            let event = self.event(actor.unwrap_or(own), "audit.retention", "personal-data", detail);
            self.store.commit(&[], Some(&event)).map_err(|e| internal("database", e))?;
            return self.audited(Ok(view)).await;
        }
        Ok(view)
    }
}

impl AuditView {
    pub(super) fn audit_status(&self) -> Result<AuditStatus, Failure> {
        let state = queries::state(self.notary.log()).map_err(query_failure)?;
        Ok(AuditStatus {
            size: state.size,
            checkpoint_size: state.checkpoint_size,
            checkpoint_age_seconds: state.checkpoint_covers_until.map(|at| (self.now - at).num_seconds().max(0)),
        })
    }

    pub(super) fn audit_checkpoint(&self) -> Result<CheckpointView, Failure> {
        let signed = self.notary.sign_now().map_err(|e| internal("audit checkpoint", e))?;
        let (size, checkpoint) = signed.ok_or_else(|| query_failure(QueryError::Empty))?;
        Ok(CheckpointView { size, checkpoint })
    }

    pub(super) fn audit_verify(&self, op: AuditVerify) -> Verification {
        queries::verify(self.notary.log(), &self.notary.verifier(), op.checkpoint.as_deref())
    }

    pub(super) fn audit_prove(&self, op: AuditProve) -> Result<ProofView, Failure> {
        let mut proofs = queries::prove(&self.notary, &[op.seq]).map_err(query_failure)?;
        Ok(ProofView { seq: op.seq, proof: proofs.remove(0).to_text() })
    }

    pub(super) fn audit_consistency(&self, op: AuditConsistency) -> Result<ConsistencyView, Failure> {
        let (proof, new_size) = queries::consistency(&self.notary, &op.checkpoint).map_err(query_failure)?;
        Ok(ConsistencyView { old_size: proof.old_size, new_size, proof: proof.to_text() })
    }

    pub(super) fn audit_report(&self, op: AuditReport) -> Result<ReportView, Failure> {
        let semester: Semester = op.semester.parse().map_err(|e| Failure::new(FailureKind::Invalid, e))?;
        let log = self.notary.log();
        let report = queries::report(log, semester, self.zone, &self.quotas, op.institution.as_deref())
            .map_err(query_failure)?;
        let mut files: BTreeMap<String, String> =
            report.csv_files().into_iter().map(|(name, text)| (name.to_owned(), text)).collect();
        files.insert("report.html".into(), report.html());
        Ok(ReportView { semester: semester.to_string(), files })
    }

    pub(super) fn audit_records(&self, op: AuditRecords) -> Result<Page, Failure> {
        let limit = op.limit.clamp(1, PAGE_LIMIT);
        queries::page(self.notary.log(), &op.filter, op.from, limit, PAGE_SCAN).map_err(query_failure)
    }

    pub(super) fn audit_subject(&self, op: AuditSubject) -> Result<SubjectView, Failure> {
        // Requests name a person by the NIK's 16 digits (see the web service): so does the search.
        let nik = simpul_core::nik::Nik::parse(&op.nik, self.today)
            .map_err(|e| Failure::new(FailureKind::Invalid, format!("--nik: {e}")))?;
        let id = Identifier::Nik(nik.to_string());
        let trail = queries::subject(&self.notary, &self.personal, &id).map_err(query_failure)?;
        Ok(SubjectView { proofs: trail.entries.iter().map(|(_, proof)| proof.to_text()).collect() })
    }
}
