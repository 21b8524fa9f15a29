//! The audit log's side of the management socket: reading, proving, verifying, and destroying personal data past
//! retention. The reads run on blocking threads: a full verification reads the whole log.

use serde_json::{json, Value};
use simpul_core::audit::report::Semester;

use super::{internal, Gateway};
use crate::control::{Failure, FailureKind, Request};
use crate::store::Actor;
use simpul_ledger::queries::{self, QueryError};
use simpul_ledger::Identifier;

/// The most records one page of `audit search`/`export` carries, and the most it looks at to find them.
const PAGE_LIMIT: usize = 5_000;
const PAGE_SCAN: u64 = 100_000;

fn to_value(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("audit answers serialize")
}

fn query_failure(error: QueryError) -> Failure {
    let kind = match error {
        QueryError::NoRecord { .. } | QueryError::Empty => FailureKind::NotFound,
        QueryError::OldCheckpoint(_) => FailureKind::Invalid,
        _ => FailureKind::Internal,
    };
    Failure::new(kind, error)
}

impl Gateway {
    pub(super) async fn audit_request(&self, request: Request) -> Result<Value, Failure> {
        let notary = self.notary.clone();
        let personal = self.auditor.personal().clone();
        let zone = self.zone;
        let today = self.today();
        let quotas: std::collections::BTreeMap<String, u64> =
            self.directory().institutions().map(|i| (i.id.to_string(), i.agreement.daily_quota)).collect();
        let work = move || -> Result<Value, Failure> {
            let log = notary.log();
            match request {
                Request::AuditKey => Ok(json!({
                    "origin": notary.origin(),
                    "vkey": notary.verifier().vkey(),
                    "size": log.size(),
                })),
                Request::AuditCheckpoint => {
                    let signed = notary.sign_now().map_err(|e| internal("audit checkpoint", e))?;
                    let (size, note) = signed.ok_or_else(|| query_failure(QueryError::Empty))?;
                    Ok(json!({ "size": size, "checkpoint": note }))
                }
                Request::AuditVerify { checkpoint } => {
                    Ok(to_value(&queries::verify(log, &notary.verifier(), checkpoint.as_deref())))
                }
                Request::AuditProve { seq } => {
                    let mut proofs = queries::prove(&notary, &[seq]).map_err(query_failure)?;
                    Ok(json!({ "seq": seq, "proof": proofs.remove(0).to_text() }))
                }
                Request::AuditConsistency { checkpoint } => {
                    let (proof, new_size) = queries::consistency(&notary, &checkpoint).map_err(query_failure)?;
                    Ok(json!({ "old_size": proof.old_size, "new_size": new_size, "proof": proof.to_text() }))
                }
                Request::AuditReport { semester, institution } => {
                    let semester: Semester = semester.parse().map_err(|e| Failure::new(FailureKind::Invalid, e))?;
                    let report =
                        queries::report(log, semester, zone, &quotas, institution.as_deref()).map_err(query_failure)?;
                    let mut files: serde_json::Map<String, Value> =
                        report.csv_files().into_iter().map(|(name, text)| (name.to_owned(), text.into())).collect();
                    files.insert("report.html".into(), report.html().into());
                    Ok(json!({ "semester": semester.to_string(), "files": files }))
                }
                Request::AuditRecords { from, limit, filter } => {
                    let page = queries::page(log, &filter, from, limit.clamp(1, PAGE_LIMIT), PAGE_SCAN);
                    Ok(to_value(&page.map_err(query_failure)?))
                }
                Request::AuditSubject { nik } => {
                    // Requests name a person by the NIK's 16 digits (see the web service): so does the search.
                    let nik = simpul_core::nik::Nik::parse(&nik, today)
                        .map_err(|e| Failure::new(FailureKind::Invalid, format!("--nik: {e}")))?;
                    let id = Identifier::Nik(nik.to_string());
                    let trail = queries::subject(&notary, &personal, &id).map_err(query_failure)?;
                    let proofs: Vec<String> = trail.entries.iter().map(|(_, proof)| proof.to_text()).collect();
                    Ok(json!({ "proofs": proofs }))
                }
                other => Err(internal("audit", format!("{other:?} is not an audit request"))),
            }
        };
        tokio::task::spawn_blocking(work).await.map_err(|e| internal("audit", e))?
    }

    /// Destroys personal data last used more than `[audit] personal_data_days` ago, and records that it did (by
    /// `actor`, or by the gateway itself on its hourly round).
    pub async fn retain_personal_data(&self, actor: Option<Actor>) -> Result<Value, Failure> {
        let days = self.config.audit.personal_data_days;
        let before = self.today() - chrono::Duration::days(i64::from(days));
        let destroyed = self.auditor.destroy_personal_data(before).await.map_err(|e| internal("audit", e))?;
        let detail = json!({ "destroyed": destroyed, "last_used_before": before.to_string(), "days": days });
        if destroyed > 0 || actor.is_some() {
            let own = Actor::System { task: "retention".into() };
            let event = self.event(actor.unwrap_or(own), "audit.retention", "personal-data", detail.clone());
            self.store.commit(&[], Some(&event)).map_err(|e| internal("database", e))?;
            return self.audited(Ok(detail)).await;
        }
        Ok(detail)
    }
}
