//! Limits on what an authenticated caller may do: request rates ([`rate`], in memory, HTTP 429) and daily quotas
//! ([`quota`], in sled, refused in the caller's dialect). The API checks the rate first, then the quota, so a request
//! refused for its rate spends no quota.

pub mod quota;
pub mod rate;

pub use quota::{Charge, Kind, QuotaError, QuotaLedger, Spent, Subject, Usage};
pub use rate::{Limited, RateConfig, RateError, RateLimits, Scope};
