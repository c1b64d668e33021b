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

/// When a device driver should (re)connect: the reconnect schedule of spec §6.1 as pure state.
///
/// A driver asks [`Reconnect::due`] before opening a transport, reports [`Reconnect::up`] when
/// the transport is open, [`Reconnect::authenticated`] on `ClientEvent::Connected` (which resets
/// the backoff), and [`Reconnect::lost`] when the transport or the session ended (or a connect
/// attempt failed), passing a random number for the jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    backoff: Backoff,
    next_attempt: Option<crate::time::Instant>,
    stopped: bool,
}

impl Reconnect {
    /// Connect at once, then back off per `backoff`.
    pub const fn new(backoff: Backoff) -> Self {
        Reconnect {
            backoff,
            next_attempt: Some(crate::time::Instant::ZERO),
            stopped: false,
        }
    }

    /// Is it time to open a transport?
    pub fn due(&self, now: crate::time::Instant) -> bool {
        !self.stopped && self.next_attempt.is_some_and(|t| now >= t)
    }

    /// When the next attempt is due (`None` while connected or stopped).
    pub fn poll_timeout(&self) -> Option<crate::time::Instant> {
        if self.stopped {
            None
        } else {
            self.next_attempt
        }
    }

    /// A transport is open (the session's CONNECT is on its way).
    pub fn up(&mut self) {
        self.next_attempt = None;
    }

    /// The server accepted the CONNECT: the next failure backs off from the start again.
    pub fn authenticated(&mut self) {
        self.backoff.reset();
    }

    /// The transport or session ended, or a connect attempt failed; returns when to try again.
    pub fn lost(&mut self, now: crate::time::Instant, jitter: u32) -> crate::time::Instant {
        let at = now + self.backoff.next_delay(jitter);
        self.next_attempt = Some(at);
        at
    }

    /// Sorts a session event for a device driver: the event to report to the application, or,
    /// when the session closed, why (close the transport, then call [`Reconnect::lost`]).
    /// The server accepting the CONNECT also resets the backoff.
    pub fn observe(
        &mut self,
        event: crate::client::ClientEvent,
    ) -> Result<crate::device::DriverEvent, crate::session::CloseReason> {
        use crate::client::ClientEvent;
        use crate::device::DriverEvent;
        match event {
            ClientEvent::Connected => {
                self.authenticated();
                Ok(DriverEvent::Connected)
            }
            ClientEvent::Closed(reason) => Err(reason),
            other => Ok(DriverEvent::Session(other)),
        }
    }

    /// No more attempts (the application is shutting down).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// True after [`Reconnect::stop`].
    pub fn is_stopped(&self) -> bool {
        self.stopped
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
    fn reconnect_schedule() {
        use crate::time::Instant;
        let mut r = Reconnect::new(Backoff::default());
        assert!(r.due(Instant::ZERO));
        r.up();
        assert!(!r.due(Instant::from_secs(100)));
        let at = r.lost(Instant::from_secs(100), u32::MAX);
        assert_eq!(at, Instant::from_secs(105));
        assert!(!r.due(Instant::from_secs(104)) && r.due(at));
        r.up();
        assert_eq!(
            r.lost(at, u32::MAX),
            at + Duration::from_secs(10),
            "doubles while failing"
        );
        r.up();
        r.authenticated();
        assert_eq!(
            r.lost(at, u32::MAX),
            at + Duration::from_secs(5),
            "reset after a CONNECT succeeded"
        );
        r.stop();
        assert!(!r.due(Instant::from_secs(10_000)) && r.poll_timeout().is_none());
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        for _ in 0..100 {
            let _ = b.next_delay(u32::MAX);
        }
    }
}
