//! Smoke test of the smol driver on both of its executors (smol, async-std), over real loopback
//! sockets: connect and authenticate over TCP (credentials) and TLS (certificate auth), RUN,
//! graceful shutdown from either side, and a refused device backing off. The full cross-runtime
//! suite lives in `drivers.rs`.
//!
//! Servers listen on OS-chosen ports, which a device of another test may still be retrying
//! against: the waits below pick their own events and are bounded in total.

use std::time::{Duration, Instant};

use iotmp_proto::backoff::Backoff;
use iotmp_proto::broker::{BrokerEvent, ConnId};
use iotmp_proto::client::ClientAuth;
use iotmp_proto::server::{Credentials, ServerConfig};
use iotmp_proto::{Answer, ClientConfig, DeviceResources, Dialect, DriverEvent, Value};
use iotmp_tests::drivers::certs::TestPki;
use iotmp_tests::drivers::smol::{AsyncStd, Smol};
use iotmp_tests::drivers::{DeviceSpec, Runtime, ServerSpec, TestDevice, TestServer};

const WAIT: Duration = Duration::from_secs(10);

fn resources() -> DeviceResources {
    DeviceResources::new()
        .output("temp", || Ok(Value::F32(21.5)))
        .input_output("echo", |input| Ok(input.unwrap_or_default()))
}

fn fast_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(200))
}

/// The first server event `want` accepts, within `WAIT` in all: a stream of other events (a
/// stray device retrying against a port the OS reused, say) cannot keep the test waiting.
fn server_event(server: &dyn TestServer, want: impl Fn(&BrokerEvent) -> bool) -> BrokerEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = server.next_event(left).expect("server event in time");
        if want(&event) {
            return event;
        }
    }
}

/// The first device event `want` accepts, within `WAIT` in all.
fn device_event(device: &dyn TestDevice, want: impl Fn(&DriverEvent) -> bool) -> DriverEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = device.next_event(left).expect("device event in time");
        if want(&event) {
            return event;
        }
    }
}

/// The connection of the next CONNECT whose credentials are `ours`; any other CONNECT (a stray
/// device's) stays unanswered and ends at the authentication deadline.
fn connect_request(server: &dyn TestServer, ours: impl Fn(&Credentials) -> bool) -> ConnId {
    let event = server_event(
        server,
        |e| matches!(e, BrokerEvent::Authenticate { request, .. } if ours(&request.credentials)),
    );
    let BrokerEvent::Authenticate { conn, .. } = event else {
        unreachable!()
    };
    conn
}

fn dev01(credentials: &Credentials) -> bool {
    matches!(credentials, Credentials::Password { device, .. } if device == "dev01")
}

fn run_temp(server: &dyn TestServer, device: &str) {
    match server
        .run(device, "temp", None, WAIT)
        .expect("answer in time")
    {
        Ok(Answer::Ok { payload, .. }) => assert_eq!(payload, Some(Value::F32(21.5))),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Larger than a socket buffer takes at once: the writers must finish writes across wakeups.
fn run_big_echo(server: &dyn TestServer, device: &str) {
    let big = Value::from("x".repeat(200_000).as_str());
    match server.run(device, "echo", Some(big.clone()), WAIT) {
        Some(Ok(Answer::Ok { payload, .. })) => assert!(payload == Some(big), "echo differs"),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn tcp_session(rt: &dyn Runtime) {
    let server = rt.serve(ServerSpec {
        tcp: None,
        tls: None,
        session: ServerConfig::default(),
    });
    assert!(server.tls_addr().is_none());
    let device = rt.connect(DeviceSpec {
        addr: server.tcp_addr(),
        tls: None,
        backoff: fast_backoff(),
        config: ClientConfig::new(Dialect::Draft2026, "alice", "dev01", "secret"),
        resources: resources(),
    });
    device_event(&*device, |e| *e == DriverEvent::TransportUp);
    server.accept(connect_request(&*server, dev01), "dev01");
    server_event(&*server, |e| matches!(e, BrokerEvent::DeviceOnline { .. }));
    device_event(&*device, |e| *e == DriverEvent::Connected);
    run_temp(&*server, "dev01");
    run_big_echo(&*server, "dev01");

    // The device leaves first: the server sees it go, then stops.
    device.shutdown_and_join();
    server_event(&*server, |e| matches!(e, BrokerEvent::DeviceOffline { .. }));
    server.shutdown_and_join();
}

fn tls_certificate_session(rt: &dyn Runtime) {
    let pki = TestPki::new();
    let server = rt.serve(ServerSpec {
        tcp: None,
        tls: Some(pki.server_config()),
        session: ServerConfig::default(),
    });
    let mut config = ClientConfig::new(Dialect::Draft2026, "", "", "");
    config.auth = ClientAuth::Certificate {
        pem: pki.device.cert_pem.clone(),
    };
    let device = rt.connect(DeviceSpec {
        addr: server.tls_addr().expect("TLS listener"),
        tls: Some((pki.client_config(Some(&pki.device)), "localhost".into())),
        backoff: fast_backoff(),
        config,
        resources: resources(),
    });
    // Certificate auth only works if the handshake's certificate reached the session before
    // the CONNECT did.
    let der = &pki.device.der;
    let ours = |c: &Credentials| matches!(c, Credentials::Certificate { der: d } if d == der);
    server.accept(connect_request(&*server, ours), "dev-cert");
    device_event(&*device, |e| *e == DriverEvent::Connected);
    run_temp(&*server, "dev-cert");
    run_big_echo(&*server, "dev-cert");

    // The server leaves first: its DISCONNECT reaches the device, which would reconnect.
    server.shutdown_and_join();
    let gone = device_event(&*device, |e| matches!(e, DriverEvent::Disconnected { .. }));
    assert!(
        matches!(&gone, DriverEvent::Disconnected { reason } if reason.contains("shutdown")),
        "{gone:?}"
    );
    device.shutdown_and_join();
}

fn refused_then_retry(rt: &dyn Runtime) {
    let server = rt.serve(ServerSpec {
        tcp: None,
        tls: None,
        session: ServerConfig::default(),
    });
    let device = rt.connect(DeviceSpec {
        addr: server.tcp_addr(),
        tls: None,
        backoff: fast_backoff(),
        config: ClientConfig::new(Dialect::Draft2020, "alice", "dev01", "wrong"),
        resources: resources(),
    });
    server.reject(connect_request(&*server, dev01));
    let retry = device_event(&*device, |e| matches!(e, DriverEvent::Retrying { .. }));
    assert!(
        matches!(retry, DriverEvent::Retrying { after } if after <= Duration::from_millis(50)),
        "{retry:?}"
    );
    // It comes back after the delay; this time the server lets it in anyway.
    server.accept(connect_request(&*server, dev01), "dev01");
    device_event(&*device, |e| *e == DriverEvent::Connected);
    device.shutdown_and_join();
    server.shutdown_and_join();
}

#[test]
fn smol_tcp() {
    tcp_session(&Smol);
}

#[test]
fn smol_tls_certificate() {
    tls_certificate_session(&Smol);
}

#[test]
fn smol_refused_then_retry() {
    refused_then_retry(&Smol);
}

#[test]
fn async_std_tcp() {
    tcp_session(&AsyncStd);
}

#[test]
fn async_std_tls_certificate() {
    tls_certificate_session(&AsyncStd);
}

#[test]
fn async_std_refused_then_retry() {
    refused_then_retry(&AsyncStd);
}

/// The executor is a run-time choice: a device on one talks to a server on the other.
#[test]
fn smol_server_async_std_device() {
    let server = Smol.serve(ServerSpec {
        tcp: None,
        tls: None,
        session: ServerConfig::default(),
    });
    let device = AsyncStd.connect(DeviceSpec {
        addr: server.tcp_addr(),
        tls: None,
        backoff: fast_backoff(),
        config: ClientConfig::new(Dialect::Draft2020, "alice", "dev01", "secret"),
        resources: resources(),
    });
    server.accept(connect_request(&*server, dev01), "dev01");
    device_event(&*device, |e| *e == DriverEvent::Connected);
    run_temp(&*server, "dev01");
    device.shutdown_and_join();
    server.shutdown_and_join();
}
