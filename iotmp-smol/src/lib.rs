//! # iotmp-smol
//!
//! The async driver of IOTMP: it moves bytes and time between sockets and the sans-IO core
//! [`iotmp_proto`], and holds no protocol logic of its own. It is written once against
//! `futures-io` streams and `async-io` timers; the runtimes differ only in how its tasks are
//! spawned. It runs on smol's global executor, or on async-std's when the crate feature
//! `async-std` is on and the options say [`Runtime::AsyncStd`].
//!
//! * [`serve`] starts a server: TCP and/or TLS listeners in front of one
//!   [`Broker`](proto::broker::Broker). The application answers
//!   [`BrokerEvent::Authenticate`](proto::broker::BrokerEvent::Authenticate) with
//!   [`ServerHandle::accept`] or [`ServerHandle::reject`] and talks to devices through the
//!   [`ServerHandle`]; answers come back as [`Pending`] values.
//! * [`connect`] starts a device: a [`Device`](proto::Device) that connects, runs its resource
//!   handlers and reconnects with backoff and jitter (spec §6.1) until [`DeviceHandle::shutdown`].
//!
//! Both functions are synchronous: they bind or validate what they can, spawn their tasks and
//! return at once. The tasks run until `shutdown`; dropping the handles does not stop them.
//!
//! ## Tasks and what they hold
//!
//! * Server: one broker task owns the [`Controller`](proto::control::Controller) and every
//!   session (a single owner, so nothing is locked). It waits for the next of: input from the
//!   connections, an application command, or the core's deadline; applies it; drains the core.
//!   One task per listener accepts. Each connection is one task that reads and writes
//!   concurrently, and lives as long as the broker keeps its end of the connection's output
//!   slot. Idle, it holds no read or write buffer: the socket (for TLS, with rustls's own
//!   record buffers), the task's state and that slot; bytes are read into a buffer lent to one
//!   read only. Output is never queued per connection ahead of the socket:
//!   the broker hands a connection its pending bytes only when the previous write finished, so
//!   unsent bytes wait in the session, and at most one chunk is in flight.
//! * Shutdown: every session is closed with DISCONNECT, the listeners close, and the broker task
//!   ends once every connection task has flushed and closed its socket; then `join` returns,
//!   and commands sent after that yield `None`.
//! * Device: one task runs the connection, the session and the reconnect schedule.
//!
//! A connect or TLS handshake that takes longer than 10 s, or a write that makes no progress for
//! 10 s, fails the connection: a peer that stops reading cannot hold a task forever.
//!
//! ## Example
//!
//! ```no_run
//! use iotmp_smol::proto::broker::BrokerEvent;
//! use iotmp_smol::proto::{ClientConfig, DeviceResources, Dialect, Value};
//! use iotmp_smol::{DeviceOptions, ServerOptions};
//!
//! let server = iotmp_smol::serve(ServerOptions::default())?;
//! let resources = DeviceResources::new().output("temp", || Ok(Value::F32(21.5)));
//! let config = ClientConfig::new(Dialect::Draft2026, "alice", "dev01", "secret");
//! let device = iotmp_smol::connect(DeviceOptions::default(), config, resources)?;
//!
//! while let Ok(event) = server.events.recv_blocking() {
//!     match event {
//!         // A real server checks the credentials here.
//!         BrokerEvent::Authenticate { conn, .. } => server.handle.accept(conn, "dev01"),
//!         BrokerEvent::DeviceOnline { device, .. } => {
//!             let answer = server.handle.run(&device, "temp", None).wait();
//!             println!("temp: {answer:?}");
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! device.handle.shutdown();
//! device.join()?;
//! server.handle.shutdown();
//! server.join()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod connection;
mod device;
mod outlet;
mod server;

use std::future::Future;
use std::io;
use std::time::Duration;

use async_channel::Receiver;
use async_io::Timer;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt, FutureExt, future};
use iotmp_proto::Instant;
use iotmp_proto::control::Reply;

pub use device::{DeviceDriver, DeviceHandle, DeviceOptions, connect};
pub use iotmp_proto as proto;
pub use server::{Server, ServerHandle, ServerOptions, serve};

/// Bytes read from a socket at a time. A device holds this buffer while it waits for input; the
/// server lends it to each read only.
const READ_BUFFER: usize = 4096;

/// How long a connect, a TLS handshake, a close or one write call (progress, not the whole
/// buffer) may take before the transport counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The executor that runs the driver's tasks. Everything else is the same on both: I/O and
/// timers come from `async-io`, which works under any executor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Runtime {
    /// smol's global executor.
    #[default]
    Smol,
    /// async-std's global executor.
    #[cfg(feature = "async-std")]
    AsyncStd,
}

impl Runtime {
    fn spawn(self, task: impl Future<Output = ()> + Send + 'static) {
        match self {
            Runtime::Smol => smol::spawn(task).detach(),
            // Dropping async-std's handle detaches the task.
            #[cfg(feature = "async-std")]
            Runtime::AsyncStd => drop(async_std::task::spawn(task)),
        }
    }
}

/// The one answer to a command, once the driver has it.
#[derive(Debug)]
pub struct Pending<T> {
    answer: Receiver<T>,
}

impl<T: Send + 'static> Pending<T> {
    /// The reply callback the core calls, and the value the application waits on.
    fn new() -> (Reply<T>, Self) {
        let (tx, rx) = async_channel::bounded(1);
        // The application may have dropped its `Pending`: then nobody wants the answer.
        let reply: Reply<T> = Box::new(move |answer| drop(tx.try_send(answer)));
        (reply, Pending { answer: rx })
    }
}

impl<T> Pending<T> {
    /// Blocks until the answer comes; `None` if the driver stopped first. Do not call this on
    /// an executor thread (it would block that thread): use [`Pending::recv`] there.
    pub fn wait(self) -> Option<T> {
        async_io::block_on(self.recv())
    }

    /// Like [`Pending::wait`], giving up after `timeout`.
    pub fn wait_timeout(self, timeout: Duration) -> Option<T> {
        async_io::block_on(self.recv().or(async {
            Timer::after(timeout).await;
            None
        }))
    }

    /// Waits for the answer; `None` if the driver stopped first.
    pub async fn recv(self) -> Option<T> {
        self.answer.recv().await.ok()
    }
}

/// The driver's clock: core [`Instant`]s are microseconds since the driver started.
#[derive(Debug, Clone, Copy)]
struct Clock(std::time::Instant);

impl Clock {
    fn start() -> Self {
        Clock(std::time::Instant::now())
    }

    fn now(self) -> Instant {
        Instant::from_elapsed(self.0.elapsed())
    }

    /// A timer for a core deadline; none (never fires) without one or beyond the clock's range.
    fn timer(self, deadline: Option<Instant>) -> Timer {
        deadline
            .and_then(|at| self.0.checked_add(at.since_epoch()))
            .map_or_else(Timer::never, Timer::at)
    }
}

/// The next message of a channel; a closed channel never yields, so that dropping the
/// application's handles leaves the driver running until it is told to stop.
async fn next<T>(rx: &Receiver<T>) -> T {
    match rx.recv().await {
        Ok(message) => message,
        Err(_) => future::pending().await,
    }
}

/// Waits until every sender of `rx` is gone, discarding messages. Channels of `()` are never
/// sent on: they signal by closing (also when their owner panicked).
async fn closed<T>(rx: &Receiver<T>) {
    while rx.recv().await.is_ok() {}
}

/// `work`'s output, or `None` if `stop` completes first (dropping `work`).
async fn or_none<T>(work: impl Future<Output = T>, stop: impl Future<Output = ()>) -> Option<T> {
    async { Some(work.await) }
        .or(async {
            stop.await;
            None
        })
        .await
}

/// A connected transport: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// `io` bounded by [`IO_TIMEOUT`].
async fn timed<T>(io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    io.or(async {
        Timer::after(IO_TIMEOUT).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await
}

/// Writes and flushes all of `bytes`; each write must make progress within [`IO_TIMEOUT`].
async fn write_all<W: AsyncWrite + Unpin + ?Sized>(w: &mut W, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match timed(w.write(bytes)).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => bytes = bytes.get(n..).unwrap_or_default(),
        }
    }
    timed(w.flush()).await
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
