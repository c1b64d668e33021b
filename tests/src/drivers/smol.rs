//! The smol driver behind the runtime-neutral test traits, on both of its executors: smol's and
//! async-std's. One test binary runs both, since the executor is a run-time option.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use iotmp_proto::broker::{BrokerEvent, ConnId};
use iotmp_proto::control::{RequestResult, SubscribeResult};
use iotmp_proto::fanout::SinkId;
use iotmp_proto::{DriverEvent, Value};
use iotmp_smol::{DeviceDriver, DeviceOptions, Server, ServerOptions};
use smol::future::FutureExt;

use super::{DeviceSpec, Runtime, ServerSpec, TestDevice, TestServer};

/// How long a shutdown may take before the test fails.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The smol driver on smol's global executor.
pub struct Smol;

/// The smol driver on async-std's global executor.
pub struct AsyncStd;

impl Runtime for Smol {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn serve(&self, spec: ServerSpec) -> Box<dyn TestServer> {
        serve(spec, iotmp_smol::Runtime::Smol)
    }

    fn connect(&self, spec: DeviceSpec) -> Box<dyn TestDevice> {
        connect(spec, iotmp_smol::Runtime::Smol)
    }
}

impl Runtime for AsyncStd {
    fn name(&self) -> &'static str {
        "async-std"
    }

    fn serve(&self, spec: ServerSpec) -> Box<dyn TestServer> {
        serve(spec, iotmp_smol::Runtime::AsyncStd)
    }

    fn connect(&self, spec: DeviceSpec) -> Box<dyn TestDevice> {
        connect(spec, iotmp_smol::Runtime::AsyncStd)
    }
}

fn serve(spec: ServerSpec, runtime: iotmp_smol::Runtime) -> Box<dyn TestServer> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let options = ServerOptions {
        tcp: Some(spec.tcp.unwrap_or(loopback)),
        tls: spec.tls.map(|config| (loopback, config)),
        session: spec.session,
        record: None,
        runtime,
    };
    Box::new(SmolServer(
        iotmp_smol::serve(options).expect("smol server starts"),
    ))
}

fn connect(spec: DeviceSpec, runtime: iotmp_smol::Runtime) -> Box<dyn TestDevice> {
    let options = DeviceOptions {
        address: spec.addr.to_string(),
        tls: spec.tls,
        backoff: spec.backoff,
        record: None,
        runtime,
    };
    let driver = iotmp_smol::connect(options, spec.config, spec.resources);
    Box::new(SmolDevice(driver.expect("smol device starts")))
}

/// Blocks the test thread on `wait` for at most `timeout`.
fn within<T>(timeout: Duration, wait: impl Future<Output = Option<T>>) -> Option<T> {
    smol::block_on(wait.or(async {
        smol::Timer::after(timeout).await;
        None
    }))
}

/// Joins a driver on a helper thread, so that a driver that never stops fails the test instead
/// of hanging it.
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

struct SmolServer(Server);

impl TestServer for SmolServer {
    fn tcp_addr(&self) -> SocketAddr {
        self.0.tcp_addr().expect("TCP listener")
    }

    fn tls_addr(&self) -> Option<SocketAddr> {
        self.0.tls_addr()
    }

    fn next_event(&self, timeout: Duration) -> Option<BrokerEvent> {
        within(timeout, async { self.0.events.recv().await.ok() })
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

struct SmolDevice(DeviceDriver);

impl TestDevice for SmolDevice {
    fn next_event(&self, timeout: Duration) -> Option<DriverEvent> {
        within(timeout, async { self.0.events.recv().await.ok() })
    }

    fn stream(&self, resource: &str) {
        self.0.handle.stream(resource);
    }

    fn shutdown_and_join(self: Box<Self>) {
        self.0.handle.shutdown();
        join_bounded("device", move || self.0.join());
    }
}
