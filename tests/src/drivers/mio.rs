//! The mio driver behind the runtime-neutral test traits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use iotmp_mio::{DeviceDriver, DeviceOptions, Server, ServerOptions};
use iotmp_proto::broker::{BrokerEvent, ConnId};
use iotmp_proto::control::{RequestResult, SubscribeResult};
use iotmp_proto::fanout::SinkId;
use iotmp_proto::{DriverEvent, Value};

use super::{DeviceSpec, Runtime, ServerSpec, TestDevice, TestServer};

/// How long a shutdown may take before the test fails.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The mio runtime: one driver thread per server or device.
pub struct Mio;

impl Runtime for Mio {
    fn name(&self) -> &'static str {
        "mio"
    }

    fn serve(&self, spec: ServerSpec) -> Box<dyn TestServer> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let options = ServerOptions {
            tcp: Some(spec.tcp.unwrap_or(loopback)),
            tls: spec.tls.map(|config| (loopback, config)),
            session: spec.session,
            record: None,
        };
        Box::new(MioServer(
            iotmp_mio::serve(options).expect("mio server starts"),
        ))
    }

    fn connect(&self, spec: DeviceSpec) -> Box<dyn TestDevice> {
        let options = DeviceOptions {
            address: spec.addr.to_string(),
            tls: spec.tls,
            backoff: spec.backoff,
            record: None,
        };
        let driver = iotmp_mio::connect(options, spec.config, spec.resources);
        Box::new(MioDevice(driver.expect("mio device starts")))
    }
}

/// Receives from a driver's event channel (`try_recv` gives `Err(true)` once it is closed),
/// waiting at most `timeout`.
fn recv_timeout<T>(timeout: Duration, mut try_recv: impl FnMut() -> Result<T, bool>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match try_recv() {
            Ok(event) => return Some(event),
            Err(true) => return None,
            Err(_) if Instant::now() >= deadline => return None,
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Joins a driver thread on a helper thread, so that a driver that never stops fails the test
/// instead of hanging it.
fn join_bounded(what: &str, join: impl FnOnce() -> std::io::Result<()> + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(join());
    });
    match rx.recv_timeout(STOP_TIMEOUT) {
        Ok(result) => result.unwrap_or_else(|e| panic!("{what} driver failed: {e}")),
        Err(_) => panic!("{what} driver did not stop within {STOP_TIMEOUT:?}"),
    }
}

struct MioServer(Server);

impl TestServer for MioServer {
    fn tcp_addr(&self) -> SocketAddr {
        self.0.tcp_addr().expect("TCP listener")
    }

    fn tls_addr(&self) -> Option<SocketAddr> {
        self.0.tls_addr()
    }

    fn next_event(&self, timeout: Duration) -> Option<BrokerEvent> {
        recv_timeout(timeout, || {
            self.0.events.try_recv().map_err(|e| e.is_closed())
        })
    }

    fn accept(&self, conn: ConnId, device: &str) {
        self.0.handle.accept(conn, device);
    }

    fn reject(&self, conn: ConnId) {
        self.0.handle.reject(conn);
    }

    fn run(
        &self,
        device: &str,
        resource: &str,
        input: Option<Value>,
        timeout: Duration,
    ) -> Option<RequestResult> {
        self.0
            .handle
            .run(device, resource, input)
            .wait_timeout(timeout)
    }

    fn describe(
        &self,
        device: &str,
        resource: Option<&str>,
        timeout: Duration,
    ) -> Option<RequestResult> {
        self.0
            .handle
            .describe(device, resource)
            .wait_timeout(timeout)
    }

    fn subscribe(
        &self,
        device: &str,
        resource: &str,
        sink: SinkId,
        interval_s: u32,
        timeout: Duration,
    ) -> Option<SubscribeResult> {
        self.0
            .handle
            .subscribe(device, resource, sink, interval_s)
            .wait_timeout(timeout)
    }

    fn unsubscribe(&self, device: &str, resource: &str, sink: SinkId) {
        self.0.handle.unsubscribe(device, resource, sink);
    }

    fn shutdown_and_join(self: Box<Self>) {
        self.0.handle.shutdown();
        join_bounded("server", move || self.0.join());
    }
}

struct MioDevice(DeviceDriver);

impl TestDevice for MioDevice {
    fn next_event(&self, timeout: Duration) -> Option<DriverEvent> {
        recv_timeout(timeout, || {
            self.0.events.try_recv().map_err(|e| e.is_closed())
        })
    }

    fn stream(&self, resource: &str) {
        self.0.handle.stream(resource);
    }

    fn shutdown_and_join(self: Box<Self>) {
        self.0.handle.shutdown();
        join_bounded("device", move || self.0.join());
    }
}
