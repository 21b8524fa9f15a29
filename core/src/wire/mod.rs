//! The Dukcapil web-service formats that existing OPD applications speak (see `design/WIRE.md`).
//! Indonesian wire names live here and only here.

pub mod aggregate;
pub mod code;
pub mod envelope;
pub mod method;
pub mod request;
pub mod route;
