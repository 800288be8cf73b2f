//! The one retry policy of every retry loop: worker attempts, bulk requests, SQS sends,
//! Valkey reconnects.

use std::time::Duration;

/// Exponential backoff with jitter for retrying transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// Upper bound for any delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Delays from `base`, doubling per attempt, never above `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The backoff a config section sets with `retry_base_ms` and `retry_max_ms`; an
    /// error names `<section>.retry_max_ms` when it is below the base.
    pub fn from_config(section: &str, base_ms: u64, max_ms: u64) -> pf_error::Result<Self> {
        if max_ms < base_ms {
            return Err(pf_error::PfError::config(
                format!("{section}.retry_max_ms"),
                format!("must be at least {section}.retry_base_ms ({base_ms}), got {max_ms}"),
            ));
        }
        Ok(Backoff::new(
            Duration::from_millis(base_ms),
            Duration::from_millis(max_ms),
        ))
    }

    /// The delay before retry number `attempt` (1-based): `base · 2^(attempt-1)`, capped
    /// at `max`, scaled by a random factor in [0.5, 1.0) so that workers that failed
    /// together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max);
        raw.mul_f64(0.5 + 0.5 * jitter_unit())
    }
}

/// A value in [0, 1) that differs between calls and threads; quality hardly matters.
fn jitter_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A value that differs between processes, threads and calls (the clock hashed by a
/// randomly seeded hasher), for jitter and unique names; not for cryptography.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_bounds() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 1..40 {
            let want = (100u64 << (attempt - 1).min(10)).min(1000);
            let d = b.delay(attempt).as_millis() as u64;
            assert!(
                d >= want / 2 && d <= want,
                "attempt {attempt}: {d} vs {want}"
            );
        }
    }
}
