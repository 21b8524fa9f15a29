//! The audit log's pure parts: the Merkle tree over records (RFC 9162 hashing, inclusion and consistency proofs) and
//! signed checkpoints (C2SP `tlog-checkpoint` signed notes). The gateway stores records and tree nodes; anyone with
//! the gateway's public key can check a proof offline.

pub mod checkpoint;
pub mod export;
pub mod merkle;
pub mod proof;
pub mod record;
pub mod report;
