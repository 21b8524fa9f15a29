//! Helpers shared by Simpul's system tests and benchmarks.
