//! # iotmp-mio
//!
//! The `mio` driver of IOTMP: one thread per server or device, each running one readiness loop
//! over `mio::Poll`, moving bytes and time between sockets (plain TCP or rustls) and the sans-IO
//! core [`iotmp_proto`]. Every protocol rule lives in the core; this crate only does I/O.
//!
//! * [`serve`] binds a TCP listener (spec §9: port 25204) and optionally a TLS one (25206) and
//!   runs a [`Broker`](proto::broker::Broker) behind a
//!   [`Controller`](proto::control::Controller). The application reads
//!   [`BrokerEvent`](proto::broker::BrokerEvent)s from [`Server::events`] and answers through
//!   the cloneable [`ServerHandle`]: `accept` or `reject` for each `Authenticate` (the
//!   application owns the device registry), then `run`, `describe`, `subscribe`, `shutdown`.
//! * [`connect`] runs a [`Device`](proto::Device): it connects, remakes the session on each new
//!   transport, and reconnects with the backoff and jitter of spec §6.1
//!   ([`Reconnect`](proto::backoff::Reconnect), reset after each accepted CONNECT) until
//!   [`DeviceHandle::shutdown`]. It reports [`DriverEvent`](proto::DriverEvent)s on
//!   [`DeviceDriver::events`].
//!
//! Answers come back as a [`Pending`], which a thread can [`wait`](Pending::wait) on and async
//! code can [`recv`](Pending::recv). Event channels are unbounded, so that a slow reader never
//! stalls the sockets: read them, or drop them. Dropping every handle of a driver shuts it
//! down gracefully, like `shutdown`.

//! ## The loop
//!
//! Each driver thread repeats: wait for readiness, a command (a channel plus a `mio::Waker`) or
//! the core's deadline → apply them (read every ready socket until it is drained, into one
//! buffer shared by all connections — a plain TCP read shorter than the buffer counts as
//! drained, since registrations are edge-triggered; feed the bytes, end of stream, commands and
//! `handle_timeout`) →
//! drain the core: `poll_transmit` output is written at once, and only what the socket did not
//! take is kept, with WRITABLE interest registered just while such leftovers exist; closed
//! connections get their last bytes, a TLS close_notify and a half-close, then linger until
//! the peer's end of stream (at most 5 s); events go to the application's channel → sleep
//! until `poll_timeout`. Spurious wakeups are harmless: reads just hit `WouldBlock`, and the
//! core ignores early `handle_timeout` calls.
//!
//! TLS connections are plain TCP to the core until rustls finishes the handshake; then the
//! broker learns the verified client certificate (`set_transport`) before the first plaintext,
//! which enables certificate auth (spec §6.2).
//!
//! Outgoing connections that take longer than 10 s to establish are given up and retried; once
//! connected, the session's own CONNECT timeout applies.
//!
//! ```no_run
//! use iotmp_mio::proto::broker::BrokerEvent;
//! use iotmp_mio::proto::{ClientConfig, DeviceResources, Dialect, Value};
//! use iotmp_mio::{DeviceOptions, ServerOptions, connect, serve};
//!
//! let server = serve(ServerOptions::default())?;
//! let config = ClientConfig::new(Dialect::Draft2026, "alice", "dev01", "secret");
//! let resources = DeviceResources::new().output("temp", || Ok(Value::F32(21.5)));
//! let device = connect(DeviceOptions::default(), config, resources)?;
//!
//! while let Ok(event) = server.events.recv_blocking() {
//!     match event {
//!         // Check the credentials against your registry first!
//!         BrokerEvent::Authenticate { conn, .. } => server.handle.accept(conn, "dev01"),
//!         BrokerEvent::DeviceOnline { device: name, .. } => {
//!             println!("{:?}", server.handle.run(&name, "temp", None).wait());
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! device.handle.shutdown();
//! server.handle.shutdown();
//! device.join()?;
//! server.join()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Runnable programs: `examples/server.rs` and `examples/device.rs` (`cargo run -p iotmp-mio
//! --example mio-server`, `--example mio-device`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

pub use iotmp_proto as proto;

mod device;
mod link;
#[cfg(test)]
mod link_tests;
mod server;

pub use device::{DeviceDriver, DeviceHandle, DeviceOptions, connect};
pub use server::{Server, ServerHandle, ServerOptions, serve};

/// One answer from a driver thread. `None` when the driver stopped before answering.
#[derive(Debug)]
pub struct Pending<T>(async_channel::Receiver<T>);

impl<T: Send + 'static> Pending<T> {
    /// A pending answer and the callback that gives it.
    fn new() -> (Self, proto::control::Reply<T>) {
        let (tx, rx) = async_channel::bounded(1);
        let reply = Box::new(move |value| {
            // The receiver may be gone: nobody waits any more.
            let _ = tx.try_send(value);
        });
        (Pending(rx), reply)
    }

    /// Blocks the calling thread until the answer comes.
    pub fn wait(self) -> Option<T> {
        self.0.recv_blocking().ok()
    }

    /// Blocks the calling thread at most `timeout`.
    pub fn wait_timeout(self, timeout: Duration) -> Option<T> {
        let deadline = std::time::Instant::now().checked_add(timeout);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut recv = std::pin::pin!(self.0.recv());
        loop {
            if let Poll::Ready(answer) = recv.as_mut().poll(&mut cx) {
                return answer.ok();
            }
            match deadline {
                // Parking may end early (spuriously, or by the waker): poll again and see.
                Some(at) => std::thread::park_timeout(
                    at.checked_duration_since(std::time::Instant::now())
                        .filter(|left| !left.is_zero())?,
                ),
                None => std::thread::park(),
            }
        }
    }

    /// Waits for the answer in async code (any executor).
    pub async fn recv(self) -> Option<T> {
        self.0.recv().await.ok()
    }
}

/// Wakes a thread parked in [`Pending::wait_timeout`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The sending side of a driver's commands: a channel, and the alarm that interrupts its poll.
#[derive(Debug)]
struct Mailbox<C> {
    commands: async_channel::Sender<C>,
    /// Shared with the driver: mio drops a wake whose `Waker` is gone before the poll saw it,
    /// and the last wake comes from `drop`.
    alarm: Arc<Alarm>,
}

impl<C> Mailbox<C> {
    fn send(&self, command: C) {
        // A stopped driver drops the command, and with it any reply callback: `Pending` → None.
        if self.commands.try_send(command).is_ok() {
            self.alarm.ring();
        }
    }
}

impl<C> Drop for Mailbox<C> {
    /// The last handle is gone: the channel closes, and the driver must notice at once.
    fn drop(&mut self) {
        self.commands.close();
        self.alarm.ring();
    }
}

/// A driver's `mio::Waker`, rung at most once between two drains of its commands.
///
/// Under load many commands arrive while the driver is awake or already woken (100 HTTP RUNs
/// in flight): each wake is a write to an eventfd and one more `epoll_wait` return, and one
/// pending wake already makes the driver drain every command queued. The driver
/// [`resets`](Alarm::reset) the alarm right before it takes the queued commands, so a command
/// queued after that rings again. Both sides put a full fence between the channel and the flag
/// (a store-buffer pattern): either the driver's drain sees the command, or the sender sees the
/// reset flag and wakes the driver.
#[derive(Debug)]
pub(crate) struct Alarm {
    waker: mio::Waker,
    rung: AtomicBool,
}

impl Alarm {
    pub(crate) fn new(waker: mio::Waker) -> Self {
        Alarm {
            waker,
            rung: AtomicBool::new(false),
        }
    }

    /// Wakes the driver, unless a wake is already on its way.
    fn ring(&self) {
        fence(Ordering::SeqCst);
        if !self.rung.swap(true, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }

    /// The driver is about to take every queued command: the next command must wake it again.
    pub(crate) fn reset(&self) {
        self.rung.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }
}

/// Spawns a named driver thread.
fn spawn(
    name: &str,
    run: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<std::io::Result<()>>> {
    std::thread::Builder::new().name(name.into()).spawn(run)
}

/// Waits for a driver thread.
fn join(thread: std::thread::JoinHandle<std::io::Result<()>>) -> std::io::Result<()> {
    thread
        .join()
        .map_err(|_| std::io::Error::other("the driver thread panicked"))?
}

/// Wall-clock milliseconds for trace file names. A clock before 1970 only makes a name less
/// informative, not wrong: the connection number is what keeps the names apart.
pub(crate) fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Writes the complete trace of one connection to `dir/<role>-<number>-<unix ms>.trace`
/// (creating `dir`); returns the file's path. Files are the driver's business: the core only
/// produces the text.
pub(crate) fn write_trace(
    dir: &std::path::Path,
    role: &str,
    number: u64,
    text: &str,
) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{role}-{number}-{}.trace", unix_ms()));
    std::fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mio::{Events, Poll, Token, Waker};

    use super::{Alarm, Arc, Mailbox};

    /// Four senders race a driver that resets the alarm and drains: no command is left behind
    /// by a wake that was skipped because the alarm looked rung.
    #[test]
    fn a_skipped_wake_never_strands_a_command() {
        const SENDERS: usize = 4;
        const EACH: usize = 5_000;
        let mut poll = Poll::new().unwrap();
        let alarm = Arc::new(Alarm::new(Waker::new(poll.registry(), Token(0)).unwrap()));
        let (tx, rx) = async_channel::unbounded::<usize>();
        let mailbox = Arc::new(Mailbox {
            commands: tx,
            alarm: Arc::clone(&alarm),
        });
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let mailbox = Arc::clone(&mailbox);
                std::thread::spawn(move || (0..EACH).for_each(|n| mailbox.send(n)))
            })
            .collect();
        drop(mailbox);
        let mut events = Events::with_capacity(4);
        let mut received = 0;
        let mut closed = false;
        while !closed {
            // Generous: only reached if a wake was lost, which is what fails the test.
            poll.poll(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            assert!(
                !events.is_empty(),
                "no wake after {received} commands: one was stranded"
            );
            alarm.reset();
            loop {
                match rx.try_recv() {
                    Ok(_) => received += 1,
                    Err(async_channel::TryRecvError::Closed) => {
                        closed = true;
                        break;
                    }
                    Err(async_channel::TryRecvError::Empty) => break,
                }
            }
        }
        senders.into_iter().for_each(|s| s.join().unwrap());
        assert_eq!(received, SENDERS * EACH);
    }
}
