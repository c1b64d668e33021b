//! What the driver adapters share: bounded waits, bounded joins, and the trait impls over a
//! driver's `Server` / `DeviceDriver`, which have the same API in every driver crate.

use std::future::Future;
use std::time::Duration;

use smol::future::FutureExt as _;

/// How long a shutdown may take before the test fails.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Blocks the test thread on `wait` for at most `timeout`.
pub(crate) fn within<T>(timeout: Duration, wait: impl Future<Output = Option<T>>) -> Option<T> {
    smol::block_on(wait.or(async {
        smol::Timer::after(timeout).await;
        None
    }))
}

/// Joins a driver on a helper thread, so that a driver that never stops fails the test instead
/// of hanging it.
pub(crate) fn join_bounded(
    what: &str,
    join: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(join());
    });
    match rx.recv_timeout(STOP_TIMEOUT) {
        Ok(result) => result.unwrap_or_else(|e| panic!("{what} driver failed: {e}")),
        Err(_) => panic!("{what} driver did not stop within {STOP_TIMEOUT:?}"),
    }
}

/// `TestServer` and `TestDevice` for a driver crate's `Server` and `DeviceDriver`, wrapped in
/// the named newtypes.
macro_rules! driver_adapters {
    ($driver:ident, $server:ident, $device:ident) => {
        pub(crate) struct $server(pub(crate) $driver::Server);

        impl $crate::drivers::TestServer for $server {
            fn tcp_addr(&self) -> std::net::SocketAddr {
                self.0.tcp_addr().expect("TCP listener")
            }

            fn tls_addr(&self) -> Option<std::net::SocketAddr> {
                self.0.tls_addr()
            }

            fn next_event(
                &self,
                timeout: std::time::Duration,
            ) -> Option<iotmp_proto::broker::BrokerEvent> {
                $crate::drivers::adapters::within(timeout, async {
                    self.0.events.recv().await.ok()
                })
            }

            fn accept(&self, conn: iotmp_proto::broker::ConnId, device: &str) {
                self.0.handle.accept(conn, device);
            }

            fn reject(&self, conn: iotmp_proto::broker::ConnId) {
                self.0.handle.reject(conn);
            }

            fn run(
                &self,
                device: &str,
                resource: &str,
                input: Option<iotmp_proto::Value>,
                timeout: std::time::Duration,
            ) -> Option<iotmp_proto::control::RequestResult> {
                self.0
                    .handle
                    .run(device, resource, input)
                    .wait_timeout(timeout)
            }

            fn describe(
                &self,
                device: &str,
                resource: Option<&str>,
                timeout: std::time::Duration,
            ) -> Option<iotmp_proto::control::RequestResult> {
                self.0
                    .handle
                    .describe(device, resource)
                    .wait_timeout(timeout)
            }

            fn subscribe(
                &self,
                device: &str,
                resource: &str,
                sink: iotmp_proto::fanout::SinkId,
                interval_s: u32,
                timeout: std::time::Duration,
            ) -> Option<iotmp_proto::control::SubscribeResult> {
                self.0
                    .handle
                    .subscribe(device, resource, sink, interval_s)
                    .wait_timeout(timeout)
            }

            fn unsubscribe(&self, device: &str, resource: &str, sink: iotmp_proto::fanout::SinkId) {
                self.0.handle.unsubscribe(device, resource, sink);
            }

            fn shutdown_and_join(self: Box<Self>) {
                self.0.handle.shutdown();
                $crate::drivers::adapters::join_bounded("server", move || self.0.join());
            }
        }

        pub(crate) struct $device(pub(crate) $driver::DeviceDriver);

        impl $crate::drivers::TestDevice for $device {
            fn next_event(&self, timeout: std::time::Duration) -> Option<iotmp_proto::DriverEvent> {
                $crate::drivers::adapters::within(timeout, async {
                    self.0.events.recv().await.ok()
                })
            }

            fn stream(&self, resource: &str) {
                self.0.handle.stream(resource);
            }

            fn shutdown_and_join(self: Box<Self>) {
                self.0.handle.shutdown();
                $crate::drivers::adapters::join_bounded("device", move || self.0.join());
            }
        }
    };
}
pub(crate) use driver_adapters;
