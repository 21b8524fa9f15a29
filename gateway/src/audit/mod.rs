//! The audit log: every request and admin change as a record in an RFC 9162 Merkle tree in sled ([`log`]), written
//! by one thread that commits whole batches with one flush ([`writer`]), signed as checkpoints every half second
//! ([`notary`]), and read for verification, proofs, search and the semester report ([`queries`]).
//!
//! A request is answered only after the flush that covers its record; if the record cannot be written, the request
//! is refused instead (fail closed).

pub mod log;
pub mod notary;
pub mod personal;
pub mod queries;
pub mod writer;
