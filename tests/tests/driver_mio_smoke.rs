//! Smoke test of the mio driver over real loopback sockets: connect and authenticate over TCP
//! (credentials) and TLS (credentials and certificate auth), RUN, stream, reconnect after a
//! refusal, graceful shutdown. The full cross-runtime suite lives in `drivers.rs`.

use std::time::Duration;

use iotmp_proto::backoff::Backoff;
use iotmp_proto::broker::BrokerEvent;
use iotmp_proto::client::ClientAuth;
use iotmp_proto::server::{Credentials, ServerConfig};
use iotmp_proto::{Answer, ClientConfig, DeviceResources, Dialect, DriverEvent, Value};
use iotmp_tests::drivers::certs::TestPki;
use iotmp_tests::drivers::mio::Mio;
use iotmp_tests::drivers::{DeviceSpec, Runtime, ServerSpec, TestDevice, TestServer};

const WAIT: Duration = Duration::from_secs(10);

fn resources() -> DeviceResources {
    DeviceResources::new()
        .output("temp", || Ok(Value::F32(21.5)))
        .input("led", Value::Bool(false), |_| Ok(()))
        .input_output("echo", |input| Ok(input.unwrap_or_default()))
}

/// A RUN whose input and output are larger than a socket takes at once, so that both sides
/// keep leftovers and wait for WRITABLE.
fn run_big_echo(server: &dyn TestServer, device: &str) {
    let big = Value::from("x".repeat(200_000).as_str());
    let answer = server.run(device, "echo", Some(big.clone()), WAIT);
    match answer.expect("answer in time").expect("device answered") {
        Answer::Ok { payload, .. } => assert!(payload == Some(big), "echo differs"),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn fast_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(200))
}

/// The next server event that is not filtered out, failing the test after `WAIT`.
fn server_event(
    server: &dyn TestServer,
    mut want: impl FnMut(&BrokerEvent) -> bool,
) -> BrokerEvent {
    loop {
        let event = server.next_event(WAIT).expect("server event in time");
        if want(&event) {
            return event;
        }
    }
}

/// Waits for the device event `want`, failing the test after `WAIT`.
fn device_event(device: &dyn TestDevice, want: impl Fn(&DriverEvent) -> bool) -> DriverEvent {
    loop {
        let event = device.next_event(WAIT).expect("device event in time");
        if want(&event) {
            return event;
        }
    }
}

/// Accepts the next CONNECT if `check` likes its credentials, returning the device name.
fn authenticate(server: &dyn TestServer, check: impl Fn(&Credentials) -> Option<&'static str>) {
    let BrokerEvent::Authenticate { conn, request } =
        server_event(server, |e| matches!(e, BrokerEvent::Authenticate { .. }))
    else {
        unreachable!()
    };
    match check(&request.credentials) {
        Some(device) => server.accept(conn, device),
        None => server.reject(conn),
    }
}

fn run_temp(server: &dyn TestServer, device: &str) {
    let answer = server
        .run(device, "temp", None, WAIT)
        .expect("answer in time");
    match answer.expect("device answered") {
        Answer::Ok { payload, .. } => assert_eq!(payload, Some(Value::F32(21.5))),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn password(user_device: &'static str) -> impl Fn(&Credentials) -> Option<&'static str> {
    move |c| match c {
        Credentials::Password {
            device, credential, ..
        } if device == user_device && credential == "secret" => Some(user_device),
        _ => None,
    }
}

#[test]
fn tcp_connect_run_stream_and_shutdown() {
    let server = Mio.serve(ServerSpec {
        tcp: None,
        tls: None,
        session: ServerConfig::default(),
    });
    assert!(server.tls_addr().is_none());
    let device = Mio.connect(DeviceSpec {
        addr: server.tcp_addr(),
        tls: None,
        backoff: fast_backoff(),
        config: ClientConfig::new(Dialect::Draft2026, "alice", "dev01", "secret"),
        resources: resources(),
    });
    authenticate(&*server, password("dev01"));
    server_event(&*server, |e| matches!(e, BrokerEvent::DeviceOnline { .. }));
    device_event(&*device, |e| *e == DriverEvent::Connected);

    run_temp(&*server, "dev01");
    let led = server.run("dev01", "led", Some(Value::Bool(true)), WAIT);
    assert!(matches!(led, Some(Ok(Answer::Ok { .. }))), "{led:?}");
    run_big_echo(&*server, "dev01");

    // An event stream: subscribe, then the device streams on demand.
    let subscribed = server.subscribe("dev01", "temp", 7, 0, WAIT);
    assert_eq!(subscribed, Some(Ok(())));
    device.stream("temp");
    let delivery = server_event(&*server, |e| matches!(e, BrokerEvent::Delivery { .. }));
    assert!(
        matches!(&delivery, BrokerEvent::Delivery { sink: 7, value: Value::F32(v), .. } if *v == 21.5),
        "{delivery:?}"
    );

    device.shutdown_and_join();
    server_event(&*server, |e| matches!(e, BrokerEvent::DeviceOffline { .. }));
    server.shutdown_and_join();
}

#[test]
fn tls_credentials_and_certificate_auth() {
    let pki = TestPki::new();
    let server = Mio.serve(ServerSpec {
        tcp: None,
        tls: Some(pki.server_config()),
        session: ServerConfig::default(),
    });
    let tls_addr = server.tls_addr().expect("TLS listener");

    // Credentials over TLS.
    let by_password = Mio.connect(DeviceSpec {
        addr: tls_addr,
        tls: Some((pki.client_config(None), "localhost".into())),
        backoff: fast_backoff(),
        config: ClientConfig::new(Dialect::Draft2026, "alice", "dev01", "secret"),
        resources: resources(),
    });
    authenticate(&*server, password("dev01"));
    device_event(&*by_password, |e| *e == DriverEvent::Connected);
    run_temp(&*server, "dev01");
    run_big_echo(&*server, "dev01");

    // Certificate auth: the CONNECT's certificate is the one the handshake verified.
    let mut config = ClientConfig::new(Dialect::Draft2026, "", "", "");
    config.auth = ClientAuth::Certificate {
        pem: pki.device.cert_pem.clone(),
    };
    let by_certificate = Mio.connect(DeviceSpec {
        addr: tls_addr,
        tls: Some((pki.client_config(Some(&pki.device)), "localhost".into())),
        backoff: fast_backoff(),
        config,
        resources: resources(),
    });
    let der = pki.device.der.clone();
    authenticate(&*server, move |c| match c {
        Credentials::Certificate { der: presented } if *presented == der => Some("dev-cert"),
        _ => None,
    });
    device_event(&*by_certificate, |e| *e == DriverEvent::Connected);
    run_temp(&*server, "dev-cert");

    // Shutting the server down tells both devices; they would reconnect, so stop them too.
    server.shutdown_and_join();
    for device in [by_password, by_certificate] {
        device_event(&*device, |e| matches!(e, DriverEvent::Disconnected { .. }));
        device.shutdown_and_join();
    }
}

#[test]
fn refused_device_backs_off_and_retries() {
    let server = Mio.serve(ServerSpec {
        tcp: None,
        tls: None,
        session: ServerConfig::default(),
    });
    let device = Mio.connect(DeviceSpec {
        addr: server.tcp_addr(),
        tls: None,
        backoff: fast_backoff(),
        config: ClientConfig::new(Dialect::Draft2020, "alice", "dev02", "wrong"),
        resources: resources(),
    });
    authenticate(&*server, password("dev02"));
    let retry = device_event(&*device, |e| matches!(e, DriverEvent::Retrying { .. }));
    let DriverEvent::Retrying { after } = retry else {
        unreachable!()
    };
    assert!(
        after <= Duration::from_millis(50),
        "first delay is at most `first`: {after:?}"
    );
    // The next attempt comes: accept it this time.
    authenticate(&*server, |_| Some("dev02"));
    device_event(&*device, |e| *e == DriverEvent::Connected);
    run_temp(&*server, "dev02");
    device.shutdown_and_join();
    server.shutdown_and_join();
}

/// The device's handler stalls its thread, so the server's socket fills up: the server keeps
/// leftovers, waits for WRITABLE, and every answer still arrives intact and in order.
fn backpressure_with_many_large_requests(tls: bool) {
    use std::sync::atomic::{AtomicBool, Ordering};

    let pki = TestPki::new();
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = iotmp_mio::serve(iotmp_mio::ServerOptions {
        tcp: Some(loopback),
        tls: tls.then(|| (loopback, pki.server_config())),
        // 40 requests of 200 kB are queued at once: room for all of them (the default queue
        // refuses requests beyond 512 KiB with `OutputFull`).
        session: ServerConfig {
            max_outgoing: 16 << 20,
            ..ServerConfig::default()
        },
        ..Default::default()
    })
    .expect("server");
    let addr = if tls {
        server.tls_addr()
    } else {
        server.tcp_addr()
    };
    let stalled = AtomicBool::new(false);
    let resources = DeviceResources::new().input_output("echo", move |input| {
        if !stalled.swap(true, Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(input.unwrap_or_default())
    });
    let options = iotmp_mio::DeviceOptions {
        address: addr.expect("listener").to_string(),
        tls: tls.then(|| (pki.client_config(None), "localhost".to_owned())),
        ..Default::default()
    };
    let config = ClientConfig::new(Dialect::Draft2026, "alice", "dev03", "secret");
    let device = iotmp_mio::connect(options, config, resources).expect("device");
    let Ok(BrokerEvent::Authenticate { conn, .. }) = server.events.recv_blocking() else {
        panic!("expected Authenticate");
    };
    server.handle.accept(conn, "dev03");
    assert!(matches!(
        server.events.recv_blocking(),
        Ok(BrokerEvent::DeviceOnline { .. })
    ));

    let pending: Vec<_> = (0..40u8)
        .map(|i| {
            let big = Value::from(format!("{i:02}").repeat(100_000).as_str());
            (big.clone(), server.handle.run("dev03", "echo", Some(big)))
        })
        .collect();
    for (sent, answer) in pending {
        match answer.wait_timeout(WAIT).expect("answer in time") {
            Ok(Answer::Ok { payload, .. }) => assert!(payload == Some(sent), "echo differs"),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    device.handle.shutdown();
    device.join().expect("device stops");
    server.handle.shutdown();
    server.join().expect("server stops");
}

#[test]
fn backpressure_tcp() {
    backpressure_with_many_large_requests(false);
}

#[test]
fn backpressure_tls() {
    backpressure_with_many_large_requests(true);
}

/// Runs `f` on a helper thread and fails the test if it does not finish within `WAIT`.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what} did not finish in time"))
}

/// Without an explicit shutdown, joining with no other handle left stops a driver
/// gracefully; requests to a stopped driver resolve to `None` instead of hanging.
#[test]
fn dropping_the_last_handle_stops_the_drivers() {
    let server = iotmp_mio::serve(iotmp_mio::ServerOptions {
        tcp: Some(([127, 0, 0, 1], 0).into()),
        ..Default::default()
    })
    .expect("server");
    let options = iotmp_mio::DeviceOptions {
        address: server.tcp_addr().expect("TCP").to_string(),
        backoff: fast_backoff(),
        ..Default::default()
    };
    let config = ClientConfig::new(Dialect::Draft2026, "alice", "dev04", "secret");
    let device = iotmp_mio::connect(options, config, resources()).expect("device");
    let Ok(BrokerEvent::Authenticate { conn, .. }) = server.events.recv_blocking() else {
        panic!("expected Authenticate");
    };
    server.handle.accept(conn, "dev04");
    while device.events.recv_blocking() != Ok(DriverEvent::Connected) {}

    let events = device.events.clone();
    bounded("device join", move || device.join()).expect("device stops");
    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(
        matches!(
            seen.as_slice(),
            [DriverEvent::Disconnected { .. }, DriverEvent::Stopped]
        ),
        "{seen:?}"
    );
    let handle = server.handle.clone();
    server.handle.shutdown();
    bounded("server join", move || server.join()).expect("server stops");
    let late = handle.run("dev04", "temp", None);
    assert_eq!(bounded("late answer", move || late.wait()), None);
}
