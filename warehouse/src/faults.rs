//! Fault injection, so that the relay's and gateway's failover, retries and timeouts can be tested against a
//! misbehaving upstream.
//!
//! Each request draws the next number of a seeded sequence, so the n-th request's fault is a pure function of
//! (seed, n): a test that sends N requests one after another knows exactly how many of each fault it will meet
//! ([`FaultConfig::fault_for`]). Faults are drawn before any consumer check and spend no quota.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::population::hash::Stream;

/// `[faults]` in the config, or the `--fault-*` flags of `serve`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    pub seed: u64,
    /// Added to every request before it is answered (faulty or not).
    pub latency_ms: u64,
    /// Fraction of requests answered 502 or 503 (about half each) with a JSON body in the consumer's dialect.
    pub error_rate: f64,
    /// Fraction of requests never answered until the client gives up, or `hang_ms` passes, or the server shuts down.
    pub hang_rate: f64,
    /// Fraction of requests whose connection is reset (RST) without an answer.
    pub reset_rate: f64,
    /// Upper bound of a hang, after which the connection is dropped.
    pub hang_ms: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig { seed: 1, latency_ms: 0, error_rate: 0.0, hang_rate: 0.0, reset_rate: 0.0, hang_ms: 300_000 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultConfigError {
    #[error("faults: {0} = {1} is not a fraction between 0 and 1")]
    NotAFraction(&'static str, f64),
    #[error("faults: error_rate + hang_rate + reset_rate = {0}, more than 1")]
    Over(f64),
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    None,
    /// Answer with this HTTP status (502 or 503).
    Error(u16),
    Hang,
    Reset,
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        for (name, rate) in
            [("error_rate", self.error_rate), ("hang_rate", self.hang_rate), ("reset_rate", self.reset_rate)]
        {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FaultConfigError::NotAFraction(name, rate));
            }
        }
        let total = self.error_rate + self.hang_rate + self.reset_rate;
        if total > 1.0 + f64::EPSILON {
            return Err(FaultConfigError::Over(total));
        }
        Ok(())
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    pub fn hang_limit(&self) -> Duration {
        Duration::from_millis(self.hang_ms)
    }

    /// The fault of the `n`-th request (from 0). The unit interval is cut into bands: reset, hang, error, none.
    pub fn fault_for(&self, n: u64) -> Fault {
        let draw = Stream::new(self.seed ^ Stream::new(n).next_u64()).next_u64();
        // The top 53 bits give a uniform f64 in [0, 1); the lowest bit picks 502 or 503.
        let u = (draw >> 11) as f64 / (1u64 << 53) as f64;
        if u < self.reset_rate {
            Fault::Reset
        } else if u < self.reset_rate + self.hang_rate {
            Fault::Hang
        } else if u < self.reset_rate + self.hang_rate + self.error_rate {
            Fault::Error(if draw & 1 == 0 { 502 } else { 503 })
        } else {
            Fault::None
        }
    }
}

/// The running fault sequence of a server.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    next: AtomicU64,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Faults { config, next: AtomicU64::new(0) }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// The fault of the next request to arrive.
    pub fn draw(&self) -> Fault {
        self.config.fault_for(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// How many requests have drawn their fault: every request that arrived.
    pub fn drawn(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(error: f64, hang: f64, reset: f64) -> FaultConfig {
        FaultConfig { seed: 7, error_rate: error, hang_rate: hang, reset_rate: reset, ..FaultConfig::default() }
    }

    fn counts(config: &FaultConfig, n: u64) -> [usize; 5] {
        let mut counts = [0; 5];
        for i in 0..n {
            let slot = match config.fault_for(i) {
                Fault::None => 0,
                Fault::Error(502) => 1,
                Fault::Error(503) => 2,
                Fault::Error(other) => panic!("status {other}"),
                Fault::Hang => 3,
                Fault::Reset => 4,
            };
            counts[slot] += 1;
        }
        counts
    }

    #[test]
    fn no_faults_by_default_and_all_at_rate_one() {
        assert_eq!(counts(&FaultConfig::default(), 1000), [1000, 0, 0, 0, 0]);
        let all_errors = counts(&config(1.0, 0.0, 0.0), 1000);
        assert_eq!(all_errors[0] + all_errors[3] + all_errors[4], 0);
        assert!(all_errors[1] > 400 && all_errors[2] > 400, "both 502 and 503 occur: {all_errors:?}");
        assert_eq!(counts(&config(0.0, 1.0, 0.0), 100), [0, 0, 0, 100, 0]);
        assert_eq!(counts(&config(0.0, 0.0, 1.0), 100), [0, 0, 0, 0, 100]);
    }

    #[test]
    fn rates_are_roughly_honoured_and_deterministic() {
        let c = config(0.2, 0.1, 0.05);
        let [none, e502, e503, hang, reset] = counts(&c, 20_000);
        let near = |got: usize, want: f64| (got as f64 / 20_000.0 - want).abs() < 0.02;
        assert!(near(e502 + e503, 0.2) && near(hang, 0.1) && near(reset, 0.05) && near(none, 0.65));
        assert_eq!(counts(&c, 500), counts(&c.clone(), 500));
        let other_seed = FaultConfig { seed: 8, ..c.clone() };
        assert_ne!(
            (0..500).map(|i| c.fault_for(i)).collect::<Vec<_>>(),
            (0..500).map(|i| other_seed.fault_for(i)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_running_sequence_follows_fault_for() {
        let c = config(0.3, 0.3, 0.3);
        let faults = Faults::new(c.clone());
        for i in 0..100 {
            assert_eq!(faults.draw(), c.fault_for(i));
        }
    }

    #[test]
    fn validation() {
        assert_eq!(FaultConfig::default().validate(), Ok(()));
        assert_eq!(config(1.0, 0.0, 0.0).validate(), Ok(()));
        assert!(matches!(config(1.5, 0.0, 0.0).validate(), Err(FaultConfigError::NotAFraction("error_rate", _))));
        assert!(matches!(config(0.0, f64::NAN, 0.0).validate(), Err(FaultConfigError::NotAFraction("hang_rate", _))));
        assert!(matches!(config(0.5, 0.5, 0.5).validate(), Err(FaultConfigError::Over(_))));
        let err = toml::from_str::<FaultConfig>("loss_rate = 0.1").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
