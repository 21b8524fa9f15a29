//! Request rates per device, per user and per institution, keyed by authenticated identity.
//!
//! Rates protect the appliance and the upstream from bursts (a script in a loop, a stuck retry); quotas
//! ([`super::quota`]) ration the day. A rate refusal answers HTTP 429 with `Retry-After` and spends no quota.
//!
//! Keys are the identities that were authenticated, never anything the request merely claims, so a client cannot
//! dodge its limit by varying a field, and strangers cannot fill the key tables with made-up names:
//! * the device's rate ([`RateLimits::check_device`]) is checked first on every request, before its password is
//!   verified: the tunnel authenticated the device (its address or key is its source), and argon2 is the most
//!   expensive thing a request can make the gateway do, so a laptop sending wrong passwords in a loop is slowed
//!   before it costs memory and CPU;
//! * the user's and the institution's ([`RateLimits::check`]) only after the credentials were verified.
//!
//! The user's and the institution's limiters
//! are not checked as one transaction (governor has no such operation, nor a way to give a cell
//! back). The order is chosen so that what leaks is harmless:
//! * the user's limiter is checked first, and a request it refuses never touches the institution's limiter, so one
//!   user hammering the gateway cannot use up the rate of the colleagues in the same institution;
//! * a request the user's limiter lets through and the institution's limiter then refuses has still used one of the
//!   user's cells. That user slows down a little sooner while the institution is saturated, which is what a rate
//!   limit is for; it is a rate, not a quota, so nothing is owed.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, FakeRelativeClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

/// Rates for the `[rate]` part of the gateway's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Sustained requests per second from one device (one laptop), counted before its password is checked.
    pub device_per_second: u32,
    /// How many requests one device may send at once after a quiet spell.
    pub device_burst: u32,
    /// Sustained requests per second for one user.
    pub user_per_second: u32,
    /// How many requests one user may send at once after a quiet spell.
    pub user_burst: u32,
    /// Sustained requests per second for all the users of one institution together.
    pub institution_per_second: u32,
    /// How many requests one institution may send at once after a quiet spell.
    pub institution_burst: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            device_per_second: 10,
            device_burst: 20,
            user_per_second: 5,
            user_burst: 10,
            institution_per_second: 50,
            institution_burst: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// A zero rate would refuse everyone forever; an operator who wants that suspends the agreement instead.
    #[error("rate.{field} must be at least 1")]
    Zero { field: &'static str },
}

impl RateConfig {
    pub fn validate(&self) -> Result<(), RateError> {
        self.quotas().map(|_| ())
    }

    /// The device's, the user's and the institution's quotas, in governor's terms.
    fn quotas(&self) -> Result<(Quota, Quota, Quota), RateError> {
        let non_zero = |value: u32, field| NonZeroU32::new(value).ok_or(RateError::Zero { field });
        let device = Quota::per_second(non_zero(self.device_per_second, "device_per_second")?)
            .allow_burst(non_zero(self.device_burst, "device_burst")?);
        let user = Quota::per_second(non_zero(self.user_per_second, "user_per_second")?)
            .allow_burst(non_zero(self.user_burst, "user_burst")?);
        let institution = Quota::per_second(non_zero(self.institution_per_second, "institution_per_second")?)
            .allow_burst(non_zero(self.institution_burst, "institution_burst")?);
        Ok((device, user, institution))
    }
}

/// Whose limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Device,
    User,
    Institution,
}

/// A refused request: whose limit, and how long until a request would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: Scope,
    /// Rounded up to whole seconds and at least one: `Retry-After` carries whole seconds, and a client told 0 would
    /// retry at once and be refused again.
    pub retry_after: Duration,
}

impl Limited {
    /// The value of the `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs()
    }
}

/// The limiters' clock: monotonic in production, or moved by hand where a test injects it into the running gateway
/// (`run::run_with_rate_clock`), so that waiting out a limit takes no real time.
#[derive(Debug, Clone)]
pub enum RateClock {
    /// Time since the limiters were made.
    Monotonic(std::time::Instant),
    Manual(FakeRelativeClock),
}

impl RateClock {
    pub fn monotonic() -> Self {
        RateClock::Monotonic(std::time::Instant::now())
    }
}

impl Clock for RateClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match self {
            RateClock::Monotonic(start) => Nanos::from(start.elapsed()),
            RateClock::Manual(clock) => clock.now(),
        }
    }
}

type Keyed<C> = RateLimiter<String, DefaultKeyedStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The gateway's three keyed limiters. Shared by all connections; checks take `&self`.
#[derive(Debug)]
pub struct RateLimits<C: Clock = RateClock> {
    clock: C,
    device: Keyed<C>,
    user: Keyed<C>,
    institution: Keyed<C>,
}

impl RateLimits {
    pub fn new(config: &RateConfig) -> Result<Self, RateError> {
        Self::with_clock(config, RateClock::monotonic())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// With a clock of the caller's choosing: tests pass governor's `FakeRelativeClock` and move time by hand.
    pub fn with_clock(config: &RateConfig, clock: C) -> Result<Self, RateError> {
        let (device, user, institution) = config.quotas()?;
        Ok(RateLimits {
            device: RateLimiter::dashmap_with_clock(device, clock.clone()),
            user: RateLimiter::dashmap_with_clock(user, clock.clone()),
            institution: RateLimiter::dashmap_with_clock(institution, clock.clone()),
            clock,
        })
    }

    /// Lets one request from `device` through, or says for how long its limit refuses it. Checked before the
    /// request's password is.
    pub fn check_device(&self, device: &str) -> Result<(), Limited> {
        self.device.check_key(&device.to_owned()).map_err(|not_until| Limited {
            scope: Scope::Device,
            retry_after: whole_seconds(not_until.wait_time_from(self.clock.now())),
        })
    }

    /// Lets one request of `user` in `institution` through, or says whose limit refused it and for how long. See
    /// the module documentation for why the user is checked first.
    pub fn check(&self, user: &str, institution: &str) -> Result<(), Limited> {
        self.user.check_key(&user.to_owned()).map_err(|not_until| Limited {
            scope: Scope::User,
            retry_after: whole_seconds(not_until.wait_time_from(self.clock.now())),
        })?;
        self.institution.check_key(&institution.to_owned()).map_err(|not_until| Limited {
            scope: Scope::Institution,
            retry_after: whole_seconds(not_until.wait_time_from(self.clock.now())),
        })
    }

    /// Forgets the keys whose state is no different from a fresh one (idle for at least a full burst's worth of
    /// time), so the tables hold only recently active users and institutions. The gateway calls this every minute.
    pub fn housekeep(&self) {
        for limiter in [&self.device, &self.user, &self.institution] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many devices, users and institutions the limiters currently hold state for.
    pub fn tracked(&self) -> (usize, usize, usize) {
        (self.device.len(), self.user.len(), self.institution.len())
    }
}

fn whole_seconds(wait: Duration) -> Duration {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn config(
        user_per_second: u32,
        user_burst: u32,
        institution_per_second: u32,
        institution_burst: u32,
    ) -> RateConfig {
        RateConfig {
            device_per_second: 10,
            device_burst: 20,
            user_per_second,
            user_burst,
            institution_per_second,
            institution_burst,
        }
    }

    fn limits(config: &RateConfig) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (RateLimits::with_clock(config, clock.clone()).unwrap(), clock)
    }

    #[test]
    fn defaults_and_zero_rates() {
        let defaults = RateConfig::default();
        assert_eq!(defaults, config(5, 10, 50, 100));
        defaults.validate().unwrap();
        assert_eq!(config(0, 10, 50, 100).validate(), Err(RateError::Zero { field: "user_per_second" }));
        assert_eq!(config(5, 0, 50, 100).validate(), Err(RateError::Zero { field: "user_burst" }));
        assert_eq!(config(5, 10, 0, 100).validate(), Err(RateError::Zero { field: "institution_per_second" }));
        assert_eq!(config(5, 10, 50, 0).validate(), Err(RateError::Zero { field: "institution_burst" }));
        assert!(RateLimits::new(&config(5, 10, 50, 0)).is_err());
        let no_device = RateConfig { device_per_second: 0, ..defaults.clone() };
        assert_eq!(no_device.validate(), Err(RateError::Zero { field: "device_per_second" }));
        let no_device_burst = RateConfig { device_burst: 0, ..defaults };
        assert_eq!(no_device_burst.validate(), Err(RateError::Zero { field: "device_burst" }));
    }

    #[test]
    fn devices_are_limited_separately_and_apart_from_users() {
        let (limits, clock) = limits(&RateConfig { device_per_second: 2, device_burst: 3, ..config(1, 1, 1, 1) });
        for i in 0..3 {
            assert_eq!(limits.check_device("laptop-1"), Ok(()), "request {i} of the burst");
        }
        let refused = limits.check_device("laptop-1").unwrap_err();
        assert_eq!(refused, Limited { scope: Scope::Device, retry_after: Duration::from_secs(1) });
        assert_eq!(limits.check_device("laptop-2"), Ok(()), "another device has its own");
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()), "a device's refusals cost its user nothing");
        clock.advance(Duration::from_millis(500));
        assert_eq!(limits.check_device("laptop-1"), Ok(()));
        assert!(limits.check_device("laptop-1").is_err());
    }

    #[test]
    fn config_reads_partial_toml_and_refuses_unknown_keys() {
        let partial: RateConfig = toml::from_str("user_burst = 3").unwrap();
        assert_eq!(partial, config(5, 3, 50, 100));
        assert!(toml::from_str::<RateConfig>("user_bursts = 3").is_err());
    }

    #[test]
    fn burst_then_refusal_then_recovery() {
        let (limits, clock) = limits(&config(2, 4, 1000, 1000));
        for i in 0..4 {
            assert_eq!(limits.check("budi", "DINSOS"), Ok(()), "request {i} of the burst");
        }
        let refused = limits.check("budi", "DINSOS").unwrap_err();
        assert_eq!(refused.scope, Scope::User);
        // One cell comes back every 500 ms; the header says whole seconds, rounded up.
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert_eq!(refused.retry_after_secs(), 1);

        clock.advance(Duration::from_millis(499));
        assert_eq!(limits.check("budi", "DINSOS").unwrap_err().scope, Scope::User);
        clock.advance(Duration::from_millis(1));
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        assert!(limits.check("budi", "DINSOS").is_err(), "only one cell came back");

        clock.advance(Duration::from_secs(2));
        for _ in 0..4 {
            assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        }
        assert!(limits.check("budi", "DINSOS").is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let (limits, clock) = limits(&config(1000, 1000, 1, 1));
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        let refused = limits.check("budi", "DINSOS").unwrap_err();
        assert_eq!(refused, Limited { scope: Scope::Institution, retry_after: Duration::from_secs(1) });
        clock.advance(Duration::from_millis(100));
        assert_eq!(limits.check("budi", "DINSOS").unwrap_err().retry_after, Duration::from_secs(1));
        clock.advance(Duration::from_millis(900));
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        assert_eq!(whole_seconds(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_millis(1)), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(whole_seconds(Duration::from_millis(2001)), Duration::from_secs(3));
    }

    #[test]
    fn users_are_limited_separately() {
        let (limits, _clock) = limits(&config(1, 2, 1000, 1000));
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        assert!(limits.check("budi", "DINSOS").is_err());
        assert_eq!(limits.check("siti", "DINSOS"), Ok(()), "another user of the same institution");
        assert_eq!(limits.check("siti", "DINSOS"), Ok(()));
        assert!(limits.check("siti", "DINSOS").is_err());
    }

    #[test]
    fn institution_limit_spans_its_users() {
        let (limits, clock) = limits(&config(100, 100, 1, 3));
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        assert_eq!(limits.check("siti", "DINSOS"), Ok(()));
        assert_eq!(limits.check("agus", "DINSOS"), Ok(()));
        let refused = limits.check("dewi", "DINSOS").unwrap_err();
        assert_eq!(refused, Limited { scope: Scope::Institution, retry_after: Duration::from_secs(1) });
        assert_eq!(limits.check("dewi", "BAPPEDA"), Ok(()), "other institutions have their own limit");
        clock.advance(Duration::from_secs(1));
        assert_eq!(limits.check("dewi", "DINSOS"), Ok(()));
    }

    #[test]
    fn a_user_refusal_leaves_the_institution_alone_but_an_institution_refusal_costs_the_user() {
        // The user may send 2 at once, the institution 3.
        let (limits, _clock) = limits(&config(1, 2, 1, 3));
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        assert_eq!(limits.check("budi", "DINSOS"), Ok(()));
        // budi's flood is refused by budi's own limit and does not eat into DINSOS's last cell...
        for _ in 0..10 {
            assert_eq!(limits.check("budi", "DINSOS").unwrap_err().scope, Scope::User);
        }
        assert_eq!(limits.check("siti", "DINSOS"), Ok(()), "siti gets the institution's third cell");
        // ...while a request refused by the institution has used one of the user's cells: agus had 2, now has 1.
        assert_eq!(limits.check("agus", "DINSOS").unwrap_err().scope, Scope::Institution);
        assert_eq!(limits.check("agus", "DINSOS").unwrap_err().scope, Scope::Institution);
        assert_eq!(limits.check("agus", "DINSOS").unwrap_err().scope, Scope::User);
    }

    #[test]
    fn housekeeping_forgets_idle_keys() {
        let (limits, clock) = limits(&config(1, 2, 1, 2));
        assert_eq!(limits.tracked(), (0, 0, 0));
        limits.check_device("laptop-1").unwrap();
        limits.check("budi", "DINSOS").unwrap();
        limits.check("siti", "DINSOS").unwrap();
        limits.check("agus", "BAPPEDA").unwrap();
        assert_eq!(limits.tracked(), (1, 3, 2));
        limits.housekeep();
        assert_eq!(limits.tracked(), (1, 3, 2), "recently active keys stay");

        // governor drops a key once its burst has been whole again for one emission interval (here 1 s).
        clock.advance(Duration::from_millis(1500));
        limits.check("budi", "DINSOS").unwrap();
        clock.advance(Duration::from_millis(600));
        limits.housekeep();
        assert_eq!(limits.tracked(), (0, 1, 1), "only budi and DINSOS were active recently");

        clock.advance(Duration::from_secs(60));
        limits.housekeep();
        assert_eq!(limits.tracked(), (0, 0, 0));
        // A forgotten key starts with a full burst, as if it had never been seen.
        limits.check("budi", "DINSOS").unwrap();
        limits.check("budi", "DINSOS").unwrap();
        assert!(limits.check("budi", "DINSOS").is_err());
    }
}
