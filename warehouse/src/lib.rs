//! The national population-data warehouse stand-in (DWH): what Simpul's relays and gateways talk to in the demo,
//! in tests and in benchmarks, since the real warehouse is only reachable over the ministry's closed network.

pub mod config;
pub mod consumer;
pub mod dev;
pub mod faults;
pub mod handler;
pub mod population;
pub mod quota;
pub mod serve;
pub mod server;
pub mod tls;
mod toml_date;
