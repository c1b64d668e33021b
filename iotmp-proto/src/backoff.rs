//! Reconnect delays (spec §6.1): exponential backoff with jitter, as a pure calculation.
//!
//! The core holds no randomness, so the caller passes a random number for each delay; the
//! same inputs always give the same delays.

use core::time::Duration;

/// Exponential backoff: `first`, doubling up to `max`, each delay spread by jitter over
/// `[d/2, d]` ("equal jitter") so that many clients that lost the same server do not come back
/// in the same instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 5 s first, at most 60 s (spec §6.1).
    fn default() -> Self {
        Backoff::new(Duration::from_secs(5), Duration::from_secs(60))
    }
}

impl Backoff {
    /// Backoff starting at `first`, never above `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, given a uniformly random `jitter`; advances the backoff.
    pub fn next_delay(&mut self, jitter: u32) -> Duration {
        let base = self
            .first
            .saturating_mul(1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = base / 2;
        let spread = half.as_nanos().saturating_mul(u128::from(jitter)) / u128::from(u32::MAX);
        half + Duration::from_nanos(u64::try_from(spread).unwrap_or(u64::MAX))
    }

    /// The delay without jitter that the next attempt is based on.
    pub fn current_base(&self) -> Duration {
        self.first
            .saturating_mul(1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max)
    }

    /// After a successful CONNECT: the next failure starts from `first` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let full: Vec<u64> = (0..6).map(|_| b.next_delay(u32::MAX).as_secs()).collect();
        assert_eq!(full, [5, 10, 20, 40, 60, 60]);
        b.reset();
        assert_eq!(
            b.next_delay(0),
            Duration::from_millis(2500),
            "no jitter draw = half the base"
        );
        assert_eq!(
            b.next_delay(u32::MAX / 2).as_millis(),
            7499,
            "half-way draw"
        );
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        for _ in 0..100 {
            let _ = b.next_delay(u32::MAX);
        }
    }
}
