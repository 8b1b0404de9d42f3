//! The one retry delay every loop here uses: exponential, capped, with full jitter.
//!
//! Full jitter (a uniform draw between zero and the current cap) spreads a crowd of
//! retriers over the whole window instead of waking them together, which is what makes a
//! hot lock or row recover instead of thundering (see the AWS architecture blog's
//! "Exponential Backoff And Jitter").

use std::time::Duration;

/// Delays that double from `base` up to `cap`, each drawn uniformly from `0..=current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First cap.
    pub base: Duration,
    /// Largest cap.
    pub cap: Duration,
}

impl Backoff {
    /// From milliseconds (how the settings spell them).
    pub const fn from_millis(base_ms: u64, cap_ms: u64) -> Self {
        Self { base: Duration::from_millis(base_ms), cap: Duration::from_millis(cap_ms) }
    }

    /// The delay before retry number `attempt` (0 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let grown = self.base.saturating_mul(1u32 << attempt.min(16));
        let cap = grown.min(self.cap).max(Duration::from_micros(1));
        let micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::random_range(0..=micros))
    }

    /// Sleeps for [`Backoff::delay`].
    pub async fn sleep(&self, attempt: u32) {
        tokio::time::sleep(self.delay(attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_up_to_the_cap_and_never_exceed_it() {
        let backoff = Backoff::from_millis(1, 32);
        for attempt in 0..40 {
            let bound = Duration::from_millis(1u64 << attempt.min(5));
            for _ in 0..50 {
                assert!(backoff.delay(attempt) <= bound, "attempt {attempt}");
            }
        }
        // jitter: not every draw is the same
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff.delay(10)).collect();
        assert!(draws.len() > 1);
    }
}
