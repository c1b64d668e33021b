//! One scenario suite for every runtime: the drivers (mio, smol, async-std) are wrapped behind
//! the same small traits, so `tests/tests/drivers.rs` is written once and run over each runtime,
//! each transport (TCP, TLS) and cross-runtime pairs.
//!
//! Everything here is loopback-only and bounded: every wait has a timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iotmp_proto::backoff::Backoff;
use iotmp_proto::broker::{BrokerEvent, ConnId};
use iotmp_proto::control::{RequestResult, SubscribeResult};
use iotmp_proto::fanout::SinkId;
use iotmp_proto::server::ServerConfig;
use iotmp_proto::{ClientConfig, DeviceResources, DriverEvent, Value};

mod adapters;
pub mod certs;
pub mod mio;
pub mod smol;

/// What to start a server with: TCP on 127.0.0.1 (an OS-chosen port), and TLS on another
/// 127.0.0.1 port when a TLS config is given.
pub struct ServerSpec {
    /// The TCP listen address; `None` = 127.0.0.1 with a port the OS picks. (A restart test
    /// binds the same port again.)
    pub tcp: Option<SocketAddr>,
    /// TLS listener config, if any.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Session settings.
    pub session: ServerConfig,
}

/// What to start a device with.
pub struct DeviceSpec {
    /// The server's address.
    pub addr: SocketAddr,
    /// TLS client config and the server name to verify (SNI), if TLS.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Reconnect schedule.
    pub backoff: Backoff,
    /// Session settings.
    pub config: ClientConfig,
    /// Resources and their handlers.
    pub resources: DeviceResources,
}

/// A running server, driven from the test thread.
pub trait TestServer: Send {
    /// The TCP listener's address.
    fn tcp_addr(&self) -> SocketAddr;
    /// The TLS listener's address, if TLS is on.
    fn tls_addr(&self) -> Option<SocketAddr>;
    /// The next broker event, waiting at most `timeout`.
    fn next_event(&self, timeout: Duration) -> Option<BrokerEvent>;
    /// Accepts a connection as `device`.
    fn accept(&self, conn: ConnId, device: &str);
    /// Refuses a connection.
    fn reject(&self, conn: ConnId);
    /// RUN and wait (at most `timeout`) for the outcome.
    fn run(
        &self,
        device: &str,
        resource: &str,
        input: Option<Value>,
        timeout: Duration,
    ) -> Option<RequestResult>;
    /// DESCRIBE and wait.
    fn describe(
        &self,
        device: &str,
        resource: Option<&str>,
        timeout: Duration,
    ) -> Option<RequestResult>;
    /// Subscribe and wait for the outcome.
    fn subscribe(
        &self,
        device: &str,
        resource: &str,
        sink: SinkId,
        interval_s: u32,
        timeout: Duration,
    ) -> Option<SubscribeResult>;
    /// Unsubscribe.
    fn unsubscribe(&self, device: &str, resource: &str, sink: SinkId);
    /// Graceful shutdown (DISCONNECT to every device), then wait for the driver to stop.
    fn shutdown_and_join(self: Box<Self>);
}

/// A running device, driven from the test thread.
pub trait TestDevice: Send {
    /// The next driver event, waiting at most `timeout`.
    fn next_event(&self, timeout: Duration) -> Option<DriverEvent>;
    /// `stream(resource)`: send the current value on its event stream, if one listens.
    fn stream(&self, resource: &str);
    /// Graceful shutdown (DISCONNECT), then wait for the driver to stop.
    fn shutdown_and_join(self: Box<Self>);
}

/// A runtime the drivers run on.
pub trait Runtime: Sync {
    /// `mio`, `smol` or `async-std`.
    fn name(&self) -> &'static str;
    /// Starts a server.
    fn serve(&self, spec: ServerSpec) -> Box<dyn TestServer>;
    /// Starts a device (it connects, and reconnects, in the background).
    fn connect(&self, spec: DeviceSpec) -> Box<dyn TestDevice>;
}
