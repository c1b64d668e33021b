//! One monotonic epoch for every role of the bench process, and the measured window.
//!
//! Devices put `Clock::now_us` in the values they send and sinks subtract it from their own
//! `now_us` at arrival: both read the same `std::time::Instant` origin, so the difference is
//! the end-to-end latency with no clock skew. A sample counts when its *send* time falls in
//! the window, on both sides, so sent and received counts compare without coordination.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bench's time origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting now.
    pub(crate) fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Microseconds since the origin.
    pub(crate) fn now_us(self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The same time for the core's sessions.
    pub(crate) fn proto_now(self) -> iotmp_proto::Instant {
        iotmp_proto::Instant::from_elapsed(self.origin.elapsed())
    }

    /// Sleeps until `at_us` (returns at once if it is past) or until `stop` is set, looking
    /// every 50 ms; true if `at_us` was reached.
    pub(crate) fn sleep_until(self, at_us: u64, stop: &dyn Fn() -> bool) -> bool {
        loop {
            let now = self.now_us();
            if now >= at_us {
                return true;
            }
            if stop() {
                return false;
            }
            std::thread::sleep(Duration::from_micros((at_us - now).min(50_000)));
        }
    }
}

/// The measured window, `[start, end)` in clock microseconds; empty until [`Window::set`].
#[derive(Debug)]
pub(crate) struct Window {
    start_us: AtomicU64,
    end_us: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            start_us: AtomicU64::new(u64::MAX),
            end_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl Window {
    /// Opens the window.
    pub(crate) fn set(&self, start_us: u64, end_us: u64) {
        self.end_us.store(end_us, Ordering::Relaxed);
        self.start_us.store(start_us, Ordering::Relaxed);
    }

    /// Whether a sample sent at `ts_us` is measured.
    pub(crate) fn contains(&self, ts_us: u64) -> bool {
        ts_us >= self.start_us.load(Ordering::Relaxed)
            && ts_us < self.end_us.load(Ordering::Relaxed)
    }

    /// The window's end (`u64::MAX` while unset).
    pub(crate) fn end_us(&self) -> u64 {
        self.end_us.load(Ordering::Relaxed)
    }
}

/// A flag one thread sets and a loop polls.
#[derive(Debug, Default)]
pub(crate) struct Flag(AtomicBool);

impl Flag {
    /// Sets it.
    pub(crate) fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    /// Reads it.
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter one loop bumps and the progress bar reads.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads it.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
