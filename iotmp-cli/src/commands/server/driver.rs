//! The device-side driver `--runtime` picks: iotmp-mio, or iotmp-smol on smol or async-std.
//! Both crates have the same server API; these enums only forward to the one running, and turn
//! their `Pending` answers into the boxed futures the HTTP API awaits.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use iotmp_cli::api::BoxFuture;
use iotmp_proto::admission::AdmissionConfig;
use iotmp_proto::broker::{BrokerEvent, ConnId};
use iotmp_proto::control::{RequestResult, SubscribeResult};
use iotmp_proto::fanout::SinkId;
use iotmp_proto::{ServerConfig as SessionConfig, Value};

use crate::values::RuntimeChoice;

/// What the driver serves.
#[derive(Debug, Clone)]
pub(crate) struct Listeners {
    /// Plain TCP.
    pub(crate) tcp: Option<SocketAddr>,
    /// TLS, with its configuration.
    pub(crate) tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// Where to write replay traces, if anywhere.
    pub(crate) record: Option<PathBuf>,
}

/// A running server driver.
#[derive(Debug)]
pub(crate) enum Driver {
    /// iotmp-mio.
    Mio(iotmp_mio::Server),
    /// iotmp-smol, on either executor.
    Smol(iotmp_smol::Server),
}

/// Commands to the running driver, from any thread.
#[derive(Debug, Clone)]
pub(crate) enum Handle {
    /// iotmp-mio.
    Mio(iotmp_mio::ServerHandle),
    /// iotmp-smol.
    Smol(iotmp_smol::ServerHandle),
}

impl Driver {
    /// Binds the listeners and starts the driver.
    pub(crate) fn start(
        runtime: RuntimeChoice,
        listeners: Listeners,
        session: SessionConfig,
        admission: AdmissionConfig,
    ) -> io::Result<Driver> {
        let Listeners { tcp, tls, record } = listeners;
        let runtime = match runtime {
            RuntimeChoice::Mio => {
                let options = iotmp_mio::ServerOptions {
                    tcp,
                    tls,
                    session,
                    record,
                    admission,
                };
                return iotmp_mio::serve(options).map(Driver::Mio);
            }
            RuntimeChoice::Smol => iotmp_smol::Runtime::Smol,
            RuntimeChoice::AsyncStd => iotmp_smol::Runtime::AsyncStd,
        };
        let options = iotmp_smol::ServerOptions {
            tcp,
            tls,
            session,
            runtime,
            record,
            admission,
        };
        iotmp_smol::serve(options).map(Driver::Smol)
    }

    /// The command handle.
    pub(crate) fn handle(&self) -> Handle {
        match self {
            Driver::Mio(s) => Handle::Mio(s.handle.clone()),
            Driver::Smol(s) => Handle::Smol(s.handle.clone()),
        }
    }

    /// The events (the channel closes once the driver stopped).
    pub(crate) fn events(&self) -> async_channel::Receiver<BrokerEvent> {
        match self {
            Driver::Mio(s) => s.events.clone(),
            Driver::Smol(s) => s.events.clone(),
        }
    }

    /// The bound TCP and TLS addresses (port 0 asks the OS for one).
    pub(crate) fn addresses(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        match self {
            Driver::Mio(s) => (s.tcp_addr(), s.tls_addr()),
            Driver::Smol(s) => (s.tcp_addr(), s.tls_addr()),
        }
    }

    /// Waits until the driver stopped (after [`Handle::shutdown`]).
    pub(crate) fn join(self) -> io::Result<()> {
        match self {
            Driver::Mio(s) => s.join(),
            Driver::Smol(s) => s.join(),
        }
    }
}

impl Handle {
    /// Accepts the CONNECT of `conn` as `device` (`user/device`).
    pub(crate) fn accept(&self, conn: ConnId, device: &str) {
        match self {
            Handle::Mio(h) => h.accept(conn, device),
            Handle::Smol(h) => h.accept(conn, device),
        }
    }

    /// Refuses the CONNECT of `conn` (ERROR code 2).
    pub(crate) fn reject(&self, conn: ConnId) {
        match self {
            Handle::Mio(h) => h.reject(conn),
            Handle::Smol(h) => h.reject(conn),
        }
    }

    /// RUN; the future yields `None` if the driver stopped first.
    pub(crate) fn run(
        &self,
        device: &str,
        resource: &str,
        input: Option<Value>,
    ) -> BoxFuture<Option<RequestResult>> {
        match self {
            Handle::Mio(h) => Box::pin(h.run(device, resource, input).recv()),
            Handle::Smol(h) => Box::pin(h.run(device, resource, input).recv()),
        }
    }

    /// DESCRIBE one resource or all of them.
    pub(crate) fn describe(
        &self,
        device: &str,
        resource: Option<&str>,
    ) -> BoxFuture<Option<RequestResult>> {
        match self {
            Handle::Mio(h) => Box::pin(h.describe(device, resource).recv()),
            Handle::Smol(h) => Box::pin(h.describe(device, resource).recv()),
        }
    }

    /// Registers a sink; values come as `BrokerEvent::Delivery`.
    pub(crate) fn subscribe(
        &self,
        device: &str,
        resource: &str,
        sink: SinkId,
        interval_s: u32,
    ) -> BoxFuture<Option<SubscribeResult>> {
        match self {
            Handle::Mio(h) => Box::pin(h.subscribe(device, resource, sink, interval_s).recv()),
            Handle::Smol(h) => Box::pin(h.subscribe(device, resource, sink, interval_s).recv()),
        }
    }

    /// Removes a sink.
    pub(crate) fn unsubscribe(&self, device: &str, resource: &str, sink: SinkId) {
        match self {
            Handle::Mio(h) => h.unsubscribe(device, resource, sink),
            Handle::Smol(h) => h.unsubscribe(device, resource, sink),
        }
    }

    /// DISCONNECT every device, close the listeners, stop.
    pub(crate) fn shutdown(&self) {
        match self {
            Handle::Mio(h) => h.shutdown(),
            Handle::Smol(h) => h.shutdown(),
        }
    }
}
