//! The device driver `--runtime` picks: iotmp-mio, or iotmp-smol on smol or async-std. All
//! three have the same API; this enum only forwards to the one running.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use iotmp_proto::backoff::Backoff;
use iotmp_proto::{ClientConfig, DeviceResources, DriverEvent, Value};

use crate::values::RuntimeChoice;

/// Where and how to connect, whatever the runtime.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port`, resolved by the driver at each attempt.
    pub(crate) address: String,
    /// TLS: the client configuration and the name to verify and send as SNI.
    pub(crate) tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Reconnect delays.
    pub(crate) backoff: Backoff,
    /// Where to write replay traces, if anywhere.
    pub(crate) record: Option<PathBuf>,
}

/// A running device.
#[derive(Debug)]
pub(crate) enum Driver {
    /// iotmp-mio.
    Mio(iotmp_mio::DeviceDriver),
    /// iotmp-smol, on either executor.
    Smol(iotmp_smol::DeviceDriver),
}

/// Commands to the running device, from any thread.
#[derive(Debug, Clone)]
pub(crate) enum Handle {
    /// iotmp-mio.
    Mio(iotmp_mio::DeviceHandle),
    /// iotmp-smol.
    Smol(iotmp_smol::DeviceHandle),
}

impl Driver {
    /// Starts the device; it connects in the background.
    pub(crate) fn start(
        runtime: RuntimeChoice,
        target: Target,
        config: ClientConfig,
        resources: DeviceResources,
    ) -> io::Result<Driver> {
        let Target {
            address,
            tls,
            backoff,
            record,
        } = target;
        let smol_runtime = match runtime {
            RuntimeChoice::Mio => {
                let options = iotmp_mio::DeviceOptions {
                    address,
                    tls,
                    backoff,
                    record,
                };
                return iotmp_mio::connect(options, config, resources).map(Driver::Mio);
            }
            RuntimeChoice::Smol => iotmp_smol::Runtime::Smol,
            RuntimeChoice::AsyncStd => iotmp_smol::Runtime::AsyncStd,
        };
        let options = iotmp_smol::DeviceOptions {
            address,
            tls,
            backoff,
            runtime: smol_runtime,
            record,
        };
        iotmp_smol::connect(options, config, resources).map(Driver::Smol)
    }

    /// The command handle.
    pub(crate) fn handle(&self) -> Handle {
        match self {
            Driver::Mio(d) => Handle::Mio(d.handle.clone()),
            Driver::Smol(d) => Handle::Smol(d.handle.clone()),
        }
    }

    /// The connection's events (the channel closes once the driver stopped).
    pub(crate) fn events(&self) -> async_channel::Receiver<DriverEvent> {
        match self {
            Driver::Mio(d) => d.events.clone(),
            Driver::Smol(d) => d.events.clone(),
        }
    }

    /// Waits until the driver stopped (after [`Handle::shutdown`]).
    pub(crate) fn join(self) -> io::Result<()> {
        match self {
            Driver::Mio(d) => d.join(),
            Driver::Smol(d) => d.join(),
        }
    }
}

impl Handle {
    /// Sends `value` on the event stream of `resource`, if the server listens.
    pub(crate) fn stream_value(&self, resource: &str, value: Value) {
        match self {
            Handle::Mio(h) => h.stream_value(resource, value),
            Handle::Smol(h) => h.stream_value(resource, value),
        }
    }

    /// DISCONNECT, close, no more reconnects.
    pub(crate) fn shutdown(&self) {
        match self {
            Handle::Mio(h) => h.shutdown(),
            Handle::Smol(h) => h.shutdown(),
        }
    }
}
