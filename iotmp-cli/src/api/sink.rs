//! The queue between a sink's producer (the backend, on the server's event path) and its
//! consumer (one WebSocket or SSE connection).
//!
//! The producer must never wait for a client: a dashboard on a slow link would otherwise stall
//! the task that serves every device. So each sink has a small bounded queue, and a full queue
//! drops its **oldest** value to make room: a live view wants the newest data, not a backlog.
//! Drops are counted (the producer can read the count) and logged by the consumer, at most once
//! per [`DROP_LOG_INTERVAL`] per sink plus a total when the sink closes.
//!
//! The queues of one connection share one wake-up signal, so that a socket that serves several
//! sinks (the multi-resource WebSocket) waits on one thing. A raised signal covers every value
//! queued until the consumer takes it down. The signal is a flag and an `AtomicWaker`, not a
//! channel: waiting registers the task's waker in place, where a channel's wait allocates a
//! listener and takes a lock per value.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atomic_waker::AtomicWaker;
use iotmp_proto::Value;

/// How often a sink that keeps dropping values is logged again.
pub(crate) const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One value for a sink, stamped with the server time it arrived (spec §6.9, used by the
/// multi-resource WebSocket's `ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkValue {
    /// The value.
    pub value: Value,
    /// When the server received it, unix milliseconds.
    pub ts_unix_ms: u64,
}

impl SinkValue {
    /// `value`, stamped with the current system time.
    pub fn now(value: Value) -> Self {
        SinkValue {
            value,
            ts_unix_ms: unix_ms(SystemTime::now()),
        }
    }
}

/// Milliseconds since the unix epoch (0 for a clock set before 1970).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug)]
struct Queue {
    values: Mutex<VecDeque<SinkValue>>,
    capacity: usize,
    dropped: AtomicU64,
    /// Set when the consumer is gone: sends become no-ops.
    closed: AtomicBool,
    wake: Arc<Signal>,
}

impl Queue {
    fn values(&self) -> MutexGuard<'_, VecDeque<SinkValue>> {
        // The lock is never held across a call that can panic; a poisoned queue is still sound.
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The producer's end of a sink queue. Cheap to clone; [`SinkSender::send`] never blocks.
#[derive(Debug, Clone)]
pub struct SinkSender {
    queue: Arc<Queue>,
}

impl SinkSender {
    /// Queues a value; when the queue is full the oldest value is dropped (and counted). Returns
    /// false once the consumer is gone (the socket closed): the value is discarded and the
    /// producer may forget this sink (the API also calls `unsubscribe`).
    pub fn send(&self, value: SinkValue) -> bool {
        if self.is_closed() {
            return false;
        }
        {
            let mut values = self.queue.values();
            if values.len() >= self.queue.capacity {
                values.pop_front();
                self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            }
            values.push_back(value);
        }
        // Raised already = a wake-up is pending; nobody waiting = the consumer is gone.
        self.queue.wake.raise();
        true
    }

    /// True once the consumer is gone.
    pub fn is_closed(&self) -> bool {
        self.queue.closed.load(Ordering::Relaxed)
    }

    /// How many values were dropped because the consumer was too slow.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }
}

/// The consumer's end of one sink queue. Dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct SinkReceiver {
    queue: Arc<Queue>,
    /// What to call the sink in logs (`user/device/resource`).
    label: String,
    logged_drops: u64,
    last_log: Option<Instant>,
}

impl SinkReceiver {
    /// The oldest queued value.
    pub(crate) fn try_recv(&self) -> Option<SinkValue> {
        self.queue.values().pop_front()
    }

    /// Logs values dropped since the last log line, at most once per [`DROP_LOG_INTERVAL`].
    pub(crate) fn log_drops(&mut self) {
        let dropped = self.queue.dropped.load(Ordering::Relaxed);
        if dropped == self.logged_drops {
            return;
        }
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|at| now.duration_since(at) < DROP_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            sink = %self.label,
            dropped = dropped - self.logged_drops,
            total = dropped,
            "slow client: oldest values dropped"
        );
        self.logged_drops = dropped;
        self.last_log = Some(now);
    }
}

impl Drop for SinkReceiver {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Relaxed);
        self.queue.values().clear();
        let dropped = self.queue.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::info!(sink = %self.label, dropped, "sink closed; values dropped in total");
        }
    }
}

/// A flag raised by producers and taken down by the one consumer that waits for it.
#[derive(Debug, Default)]
struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    fn raise(&self) {
        // Already raised: whoever raised it wakes the consumer, or the consumer has yet to look.
        if !self.raised.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    fn poll_raised(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.raised.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A raise between the first look and the registration found no waker to wake.
        if self.raised.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The wake-up signal of one connection, and the factory of its sink queues.
#[derive(Debug)]
pub(crate) struct Wakeup {
    signal: Arc<Signal>,
}

impl Wakeup {
    pub(crate) fn new() -> Self {
        Wakeup {
            signal: Arc::default(),
        }
    }

    /// A new queue of `capacity` values (at least 1) that wakes this connection.
    pub(crate) fn queue(&self, capacity: usize, label: String) -> (SinkSender, SinkReceiver) {
        let queue = Arc::new(Queue {
            values: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            wake: Arc::clone(&self.signal),
        });
        let receiver = SinkReceiver {
            queue: Arc::clone(&queue),
            label,
            logged_drops: 0,
            last_log: None,
        };
        (SinkSender { queue }, receiver)
    }

    /// Makes the next [`Wakeup::wait`] return at once: the consumer stopped draining with values
    /// left (to serve its client in between) and must come back for them.
    pub(crate) fn poke(&self) {
        self.signal.raise();
    }

    /// Waits until some queue of this connection got a value since the last call (or spuriously).
    pub(crate) async fn wait(&self) {
        futures_lite::future::poll_fn(|cx| self.signal.poll_raised(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: u64) -> SinkValue {
        SinkValue {
            value: Value::UInt(n),
            ts_unix_ms: n,
        }
    }

    #[test]
    fn full_queue_drops_the_oldest() {
        let wakeup = Wakeup::new();
        let (tx, rx) = wakeup.queue(3, "alice/dev/temp".into());
        for n in 0..10 {
            assert!(tx.send(value(n)));
        }
        assert_eq!(tx.dropped(), 7);
        let got: Vec<u64> = std::iter::from_fn(|| rx.try_recv())
            .map(|v| v.ts_unix_ms)
            .collect();
        assert_eq!(got, [7, 8, 9]);
    }

    #[test]
    fn one_wakeup_covers_many_values_and_queues() {
        let wakeup = Wakeup::new();
        let (a, _ra) = wakeup.queue(4, "a".into());
        let (b, _rb) = wakeup.queue(4, "b".into());
        a.send(value(1));
        b.send(value(2));
        a.send(value(3));
        futures_lite::future::block_on(wakeup.wait());
        // Only one wake-up was pending.
        let again = futures_lite::future::block_on(futures_lite::future::poll_once(wakeup.wait()));
        assert!(again.is_none());
    }

    /// A producer on another thread races the consumer's wait: every value is seen, none is
    /// left in the queue without a wake-up to fetch it.
    #[test]
    fn no_value_waits_without_a_wakeup() {
        const VALUES: u64 = 20_000;
        let wakeup = Wakeup::new();
        let (tx, rx) = wakeup.queue(VALUES as usize, "a".into());
        let producer = std::thread::spawn(move || {
            for n in 1..=VALUES {
                tx.send(value(n));
            }
            tx
        });
        let mut last = 0;
        futures_lite::future::block_on(async {
            while last < VALUES {
                wakeup.wait().await;
                while let Some(v) = rx.try_recv() {
                    assert_eq!(v.ts_unix_ms, last + 1);
                    last = v.ts_unix_ms;
                }
            }
        });
        let tx = producer.join().unwrap();
        assert_eq!(tx.dropped(), 0);
    }

    #[test]
    fn sends_after_the_consumer_left_are_refused() {
        let wakeup = Wakeup::new();
        let (tx, rx) = wakeup.queue(4, "a".into());
        assert!(tx.send(value(1)));
        drop(rx);
        assert!(tx.is_closed());
        assert!(!tx.send(value(2)));
    }

    #[test]
    fn zero_capacity_still_keeps_the_newest() {
        let wakeup = Wakeup::new();
        let (tx, rx) = wakeup.queue(0, "a".into());
        tx.send(value(1));
        tx.send(value(2));
        assert_eq!(rx.try_recv().map(|v| v.ts_unix_ms), Some(2));
    }

    #[test]
    fn unix_ms_before_the_epoch_is_zero() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
    }
}
