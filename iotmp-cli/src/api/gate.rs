//! A future that is polled again only once it asked to be.
//!
//! A socket task waits for its client and for its sink values at once, and wakes far more often
//! for values than for client frames. Polling the client's read on every wake-up costs a `recv`
//! that finds nothing (plus tungstenite preparing its read buffer and the reactor re-arming
//! interest) per delivered value. [`Gate`] hands the inner future a waker of its own and skips
//! the poll until that waker fired, so the read runs when the socket became readable and not
//! otherwise.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// The waker the gated future sees: it records the wake-up, then wakes the task.
#[derive(Debug)]
struct Flag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// Remembers whether the gated future may have progress to make. Starts open: the first poll
/// always happens.
#[derive(Debug)]
pub(crate) struct Gate {
    flag: Arc<Flag>,
    waker: Waker,
}

impl Gate {
    pub(crate) fn new() -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        let waker = Waker::from(Arc::clone(&flag));
        Gate { flag, waker }
    }

    /// Polls `poll` only if it was woken since it last returned `Pending` (or never ran):
    /// otherwise `Pending` at once, and the task is woken when the inner waker fires.
    pub(crate) fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        {
            let mut task = self
                .flag
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        // Cleared before polling: a wake-up during the poll sets it again.
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let result = poll(&mut Context::from_waker(&self.waker));
        if result.is_ready() {
            // The inner future may have more ready (a buffered frame) without a new wake-up.
            self.flag.woken.store(true, Ordering::Release);
        }
        result
    }

    /// A future that polls `inner` through this gate.
    pub(crate) fn wrap<'a, F: Future + Unpin + 'a>(
        &'a self,
        inner: F,
    ) -> impl Future<Output = F::Output> + 'a {
        let mut inner = inner;
        std::future::poll_fn(move |cx| self.poll(cx, |cx| Pin::new(&mut inner).poll(cx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `ready` is set, waking the last waker when set.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        ready: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    impl Probe {
        fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.ready.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }

        fn fire(&self) {
            self.ready.store(true, Ordering::SeqCst);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn polls_only_after_its_own_wakeup() {
        let gate = Gate::new();
        let probe = Probe::default();
        let task = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&task));
        let mut cx = Context::from_waker(&waker);
        // First poll goes through and registers.
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_pending());
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1);
        // The task woke for something else: the inner future is not polled.
        for _ in 0..5 {
            assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_pending());
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1);
        // Its own wake-up wakes the task and lets the next poll through.
        probe.fire();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_ready());
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);
        // After a ready result the next poll goes through again (more may be buffered).
        assert!(gate.poll(&mut cx, |cx| probe.poll(cx)).is_pending());
        assert_eq!(probe.polls.load(Ordering::SeqCst), 3);
    }
}
