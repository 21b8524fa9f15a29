//! The audit log: reading, proving, verifying, and destroying personal data past retention.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The log's size, origin and public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditKey {}

/// The newest signed checkpoint (signed now if the log grew since), for an auditor to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpoint {}

/// Verifies the whole log; `checkpoint`, a note exported earlier, must still be extended by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditVerify {
    pub checkpoint: Option<String>,
}

/// Record `seq` with its inclusion proof (C2SP tlog-proof).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditProve {
    pub seq: u64,
}

/// A page of the records `filter` selects, from sequence number `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecords {
    pub from: u64,
    pub limit: usize,
    pub filter: simpul_ledger::queries::Filter,
}

/// Every record still tied to a person, with proofs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSubject {
    pub nik: String,
}

/// A proof that the log now extends `checkpoint`, a checkpoint note kept earlier (by an auditor or a witness).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConsistency {
    pub checkpoint: String,
}

/// The semester report (`2026-2`), for every institution or one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditReport {
    pub semester: String,
    pub institution: Option<String>,
}

/// Destroys personal data past `[audit] personal_data_days` now (it also runs every hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRetain {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub origin: String,
    /// The note verifier key auditors pin (`audit check-proof --key`).
    pub vkey: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointView {
    pub size: u64,
    /// The signed note.
    pub checkpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofView {
    pub seq: u64,
    /// The tlog-proof file's text.
    pub proof: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectView {
    /// One tlog-proof text per record, oldest first.
    pub proofs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyView {
    pub old_size: u64,
    pub new_size: u64,
    /// The consistency proof file's text.
    pub proof: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportView {
    pub semester: String,
    /// File name → contents: the CSV files and `report.html`.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionView {
    /// People whose personal data was destroyed.
    pub destroyed: u64,
    pub last_used_before: chrono::NaiveDate,
    pub days: u32,
}
