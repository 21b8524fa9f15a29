//! Simpul's domain core: everything that decides, nothing that does I/O.
//!
//! Callers pass in what the outside world knows (the current date, bytes read from a socket) and get back
//! values and verdicts; sockets, disks and clocks live in the crates around this one.

pub mod audit;
pub mod cache;
pub mod caller;
pub mod clock;
pub mod day;
pub mod device;
pub mod element;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod institution;
pub mod kk;
pub mod nik;
pub mod password;
pub mod period;
pub mod policy;
pub mod record;
pub mod region;
pub mod similarity;
mod sixteen;
pub mod verify;
pub mod wire;
