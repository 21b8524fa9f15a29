//! The exit codes of every Simpul binary, so that a script treats the gateway, the stand-in and the binaries still to
//! come alike: the same number means the same kind of trouble whichever command returned it.

pub const OK: u8 = 0;
/// The request conflicts with what exists (a taken name, key or address, a full network, a revoked device); for a
/// service (`run`, `serve`), that it could not start.
pub const CONFLICT: u8 = 1;
/// Invalid arguments, config or request: the caller's to fix (clap's own usage errors are 2 as well).
pub const INVALID: u8 = 2;
/// No such thing (device, user, institution, record).
pub const NOT_FOUND: u8 = 3;
/// The running service cannot be reached (not running, or this user may not use its socket).
pub const UNREACHABLE: u8 = 4;
/// The service failed to carry the request out (database, tunnel, firewall).
pub const INTERNAL: u8 = 5;
/// What was checked is bad: a log that fails verification, a proof that does not check.
pub const BAD: u8 = 6;
/// A service that could not start (the same number as [`CONFLICT`], as systemd reads any non-zero status).
pub const NOT_STARTED: u8 = 1;
