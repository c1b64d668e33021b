//! The hand-off of bytes from the broker task to one connection's writer.
//!
//! A server holds one per device, so it is a single small shared slot (about 80 bytes), not a
//! channel: an unbounded `async_channel` costs over a kilobyte per connection once used (its
//! queue keeps a block of 31 slots, beside two cache-padded indices). One writer waits on it,
//! and the broker hands over at most one chunk at a time (plus the last bytes at close), so
//! bytes handed over while the writer has not taken the previous ones are simply appended.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
struct Slot {
    bytes: Vec<u8>,
    /// The broker admitted the connection: the task may start reading.
    admitted: bool,
    /// The broker let go: the writer finishes what it has and closes.
    closed: bool,
    /// The connection task is gone: nothing handed over would be written.
    gone: bool,
    waker: Option<Waker>,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // Every change under the lock is complete, so a panic elsewhere leaves a usable slot.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The broker's end. Dropping it closes the connection once its bytes are written.
#[derive(Debug)]
pub(crate) struct Outlet(Arc<Mutex<Slot>>);

/// The writer's end.
#[derive(Debug)]
pub(crate) struct Inlet(Arc<Mutex<Slot>>);

/// A connected pair.
pub(crate) fn outlet() -> (Outlet, Inlet) {
    let slot = Arc::new(Mutex::new(Slot::default()));
    (Outlet(Arc::clone(&slot)), Inlet(slot))
}

impl Outlet {
    /// Hands `bytes` to the writer, after whatever it has not taken yet; `false` if the
    /// connection task is gone.
    pub(crate) fn send(&self, bytes: Vec<u8>) -> bool {
        let mut slot = lock(&self.0);
        if slot.gone {
            return false;
        }
        if slot.bytes.is_empty() {
            slot.bytes = bytes;
        } else {
            slot.bytes.extend_from_slice(&bytes);
        }
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
        true
    }
}

impl Outlet {
    /// Lets the connection in: [`Inlet::admitted`] resolves to `true`.
    pub(crate) fn admit(&self) {
        let mut slot = lock(&self.0);
        slot.admitted = true;
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        let mut slot = lock(&self.0);
        slot.closed = true;
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

impl Inlet {
    /// The next bytes to write; `None` once the broker let go and everything was taken.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let mut slot = lock(&self.0);
        if !slot.bytes.is_empty() {
            return Poll::Ready(Some(std::mem::take(&mut slot.bytes)));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.wait(cx)
    }

    /// The broker's admission decision: `true` once admitted, `false` when the broker let go
    /// first (refused, or shutting down).
    pub(crate) fn poll_admitted(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut slot = lock(&self.0);
        if slot.admitted {
            return Poll::Ready(true);
        }
        if slot.closed {
            return Poll::Ready(false);
        }
        slot.wait(cx)
    }

    /// Ready once the broker let go (used before anything is ever written: during the TLS
    /// handshake).
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = lock(&self.0);
        if slot.closed {
            return Poll::Ready(());
        }
        slot.wait(cx)
    }
}

impl Slot {
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        // One task polls the inlet: keep its waker, replacing it only when it changed.
        match &mut self.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Inlet {
    fn drop(&mut self) {
        let mut slot = lock(&self.0);
        slot.gone = true;
        slot.bytes = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    async fn recv(inlet: &Inlet) -> Option<Vec<u8>> {
        poll_fn(|cx| inlet.poll_recv(cx)).await
    }

    #[test]
    fn bytes_come_in_order_then_the_close() {
        let (outlet, inlet) = outlet();
        assert!(outlet.send(b"ab".to_vec()));
        assert!(outlet.send(b"cd".to_vec()));
        drop(outlet);
        let got = async_io::block_on(async { (recv(&inlet).await, recv(&inlet).await) });
        assert_eq!(got, (Some(b"abcd".to_vec()), None));
    }

    #[test]
    fn a_waiting_writer_is_woken() {
        let (outlet, inlet) = outlet();
        let writer = std::thread::spawn(move || async_io::block_on(recv(&inlet)));
        assert!(outlet.send(b"x".to_vec()));
        assert_eq!(writer.join().ok().flatten(), Some(b"x".to_vec()));
        // The writer is gone: the broker learns that nothing more would be written.
        assert!(!outlet.send(b"y".to_vec()));
    }

    #[test]
    fn admission_is_told_apart_from_refusal() {
        let (admitted, inlet) = outlet();
        admitted.admit();
        assert!(async_io::block_on(poll_fn(|cx| inlet.poll_admitted(cx))));
        let (refused, inlet) = outlet();
        drop(refused);
        assert!(!async_io::block_on(poll_fn(|cx| inlet.poll_admitted(cx))));
    }

    #[test]
    fn closed_resolves_when_the_broker_lets_go() {
        let (outlet, inlet) = outlet();
        let waiter =
            std::thread::spawn(move || async_io::block_on(poll_fn(|cx| inlet.poll_closed(cx))));
        drop(outlet);
        assert!(waiter.join().is_ok());
    }
}
