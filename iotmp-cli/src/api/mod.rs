//! The HTTP API of `iotmp server` (spec chapter 8): device list, RUN and DESCRIBE over HTTP,
//! resource streams over WebSocket and Server-Sent Events.
//!
//! It runs on smol: hyper's HTTP/1.1 server (through the `smol-hyper` adapter), WebSockets
//! with `async-tungstenite` on hyper's upgraded connection, TLS with `futures-rustls`. It talks
//! to the rest of the server only through the [`Backend`] trait, so it is tested without
//! devices and wired to the registry and the drivers by the server command.
//!
//! * [`serve`] accepts connections on a listener until a [`Shutdown`] is triggered (`server`);
//! * `routes` parses paths (`/v3/users/{user}/devices/...`, §8.1) and dispatches; `auth` checks
//!   tokens; `errors` builds the JSON errors and maps device answers onto statuses (§8.5);
//!   `json` converts bodies (§8.3);
//! * `websocket` and `sse` serve the streaming endpoints (§8.4) after the subscription
//!   handshake of `subscribe`; each value goes through a bounded per-sink queue (`sink`,
//!   [`SinkSender`]) that drops the oldest value when a client is slow.
//! * `data` serves recorded data and recorders (`/v3/users/{user}/buckets/{bucket}/data`,
//!   `/v3/users/{user}/recorders`), an addition to the spec's endpoints with the same rules.
//!
//! Everything is bounded ([`ApiLimits`]): request bodies, WebSocket control frames and
//! messages, request heads, per-sink queues, sinks per socket, connections, the wait for a
//! device, and the time a write may stall.
//!
//! * `transport` serves the device transport over WebSocket (`/iotmp`, spec §9) when
//!   [`serve_with_bridge`] is given the server's TCP device listener: it pipes each socket to a
//!   TCP connection to that listener. Without one, `/iotmp` answers 404 like any path outside
//!   `/v3`.
//!
//! Errors that hyper produces itself before a
//! request reaches the API (a request head above 64 KiB, an unparsable request) have hyper's
//! empty bodies.

mod auth;
mod backend;
mod data;
mod errors;
mod gate;
mod hyper_io;
mod json;
mod routes;
mod server;
mod sink;
mod sse;
mod subscribe;
mod transport;
mod websocket;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_channel::{Receiver, Sender};

pub use backend::{
    Backend, BoxFuture, BucketRecord, DataFailure, DeviceInfo, DeviceStatus, NewRecorder,
    RecordQuery, RecorderInfo, SubscribeFailure, SubscribeOutcome, Subscription,
};
pub use data::{DEFAULT_RECORD_LIMIT, UNKNOWN_BUCKET, UNKNOWN_RECORDER};
pub use server::{serve, serve_with_bridge};
pub use sink::{SinkSender, SinkValue, unix_ms};

/// Limits and timeouts of the API; the defaults follow spec §7.1 where it names one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiLimits {
    /// Largest request body (a RUN input), bytes. Default 256 KiB (§7.1).
    pub max_body: usize,
    /// Largest multi-resource WebSocket control frame, bytes. Default 4 KiB (§7.1).
    pub max_control_frame: usize,
    /// Largest sink interval, seconds. Default 86400 (§7.1).
    pub max_interval_s: u32,
    /// How long the API waits for a device answer before answering 504. The drivers' own
    /// request timeout (10 s, §6.4) normally answers first; this is the backstop for a backend
    /// that never does. Default 15 s.
    pub answer_timeout: Duration,
    /// Values queued per sink before the oldest is dropped. Default 64.
    pub sink_queue: usize,
    /// Sinks one multi-resource WebSocket may hold (mirrors the 64 streams of §7.1). Default 64.
    pub max_sinks_per_socket: usize,
    /// Open connections (HTTP, WebSocket, SSE together); beyond, new ones are closed at once.
    /// Default 16384: a dashboard holds one WebSocket per resource it shows, so thousands of
    /// sinks are ordinary (5,000 devices with one sink each is the scale benchmark), and the
    /// process's open-file limit still bounds the total.
    pub max_connections: usize,
    /// Idle time after which an SSE stream sends a `:` comment (§8.4). Default 30 s.
    pub sse_keepalive: Duration,
    /// How long a write may make no progress before the connection is dropped, so that a client
    /// that stops reading cannot hold a task forever. Default 30 s.
    pub write_timeout: Duration,
    /// How long a client may take to send a request head (and a TLS handshake). Default 30 s.
    pub header_timeout: Duration,
    /// After a shutdown, how long open requests and streams get to finish. Default 5 s.
    pub shutdown_grace: Duration,
    /// Largest `limit` of a bucket data query (records per response). Default 10000.
    pub max_records: u32,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body: 256 * 1024,
            max_control_frame: 4 * 1024,
            max_interval_s: 86_400,
            answer_timeout: Duration::from_secs(15),
            sink_queue: 64,
            max_sinks_per_socket: 64,
            max_connections: 16_384,
            sse_keepalive: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            max_records: 10_000,
        }
    }
}

/// Stops a running [`serve`]: it stops accepting, closes WebSockets (1001) and SSE streams,
/// lets open requests finish within [`ApiLimits::shutdown_grace`], then returns. Cheap to clone;
/// triggering twice is harmless.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug)]
struct ShutdownInner {
    /// Dropped (taken) to trigger: every waiter sees the channel close.
    trigger: Mutex<Option<Sender<()>>>,
    signal: Receiver<()>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A shutdown that has not been triggered.
    pub fn new() -> Self {
        let (tx, rx) = async_channel::bounded(1);
        Shutdown {
            inner: Arc::new(ShutdownInner {
                trigger: Mutex::new(Some(tx)),
                signal: rx,
            }),
        }
    }

    /// Asks the server to stop.
    pub fn trigger(&self) {
        drop(
            self.inner
                .trigger
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// True once [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.signal.is_closed()
    }

    /// Completes once [`Shutdown::trigger`] was called.
    pub async fn wait(&self) {
        // Nothing is ever sent: the channel only closes.
        while self.inner.signal.recv().await.is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_wakes_every_waiter() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_triggered());
        let clone = shutdown.clone();
        let waiter = std::thread::spawn(move || futures_lite::future::block_on(clone.wait()));
        shutdown.trigger();
        shutdown.trigger();
        waiter.join().unwrap();
        assert!(shutdown.is_triggered());
        futures_lite::future::block_on(shutdown.wait());
    }
}
