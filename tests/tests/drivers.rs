//! The driver scenario suite, written once and run over every runtime (mio, smol, async-std),
//! both transports (TCP, TLS) and across runtimes (a device on one, the server on another).
//!
//! Real sockets on 127.0.0.1 and real time, so intervals are small and counts are checked with
//! tolerance; every wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant as Clock};

use iotmp_proto::backoff::Backoff;
use iotmp_proto::broker::{BrokerEvent, ConnId};
use iotmp_proto::client::{ClientAuth, ClientEvent};
use iotmp_proto::server::{Credentials, ServerConfig};
use iotmp_proto::session::Answer;
use iotmp_proto::{
    ClientConfig, CloseReason, DeviceResources, Dialect, DriverEvent, Flavour, Message,
    MessageType, Value,
};
use iotmp_tests::drivers::certs::{Leaf, TestPki};
use iotmp_tests::drivers::{DeviceSpec, Runtime, ServerSpec, TestDevice, TestServer};

const WAIT: Duration = Duration::from_secs(5);

fn runtimes() -> Vec<Box<dyn Runtime>> {
    vec![
        Box::new(iotmp_tests::drivers::mio::Mio),
        Box::new(iotmp_tests::drivers::smol::Smol),
        Box::new(iotmp_tests::drivers::smol::AsyncStd),
    ]
}

fn runtime(name: &str) -> Box<dyn Runtime> {
    runtimes()
        .into_iter()
        .find(|r| r.name() == name)
        .unwrap_or_else(|| panic!("no runtime {name}"))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Tcp,
    Tls,
}

/// Server settings that let tests use short keep-alives.
fn session_config() -> ServerConfig {
    ServerConfig {
        keep_alive_min: 1,
        ..ServerConfig::default()
    }
}

fn resources() -> DeviceResources {
    let mut level = 0u64;
    DeviceResources::new()
        .output("temp", || Ok(Value::F32(21.5)))
        .input("led", Value::Bool(false), |_| Ok(()))
        .input_output("echo", |input| Ok(input.unwrap_or(Value::from("nothing"))))
        .output("level", move || {
            level += 1;
            Ok(Value::from(level))
        })
}

fn device_config(dialect: Dialect, device: &str, credential: &str) -> ClientConfig {
    ClientConfig::new(dialect, "alice", device, credential).with_keep_alive(5)
}

struct Setup {
    pki: TestPki,
    server: Box<dyn TestServer>,
}

impl Setup {
    fn new(rt: &dyn Runtime) -> Self {
        let pki = TestPki::new();
        let server = rt.serve(ServerSpec {
            tcp: None,
            tls: Some(pki.server_config()),
            session: session_config(),
        });
        Setup { pki, server }
    }

    fn device_spec(
        &self,
        transport: Transport,
        config: ClientConfig,
        identity: Option<&Leaf>,
    ) -> DeviceSpec {
        let (addr, tls) = match transport {
            Transport::Tcp => (self.server.tcp_addr(), None),
            Transport::Tls => {
                let addr = self.server.tls_addr().expect("the server listens for TLS");
                (
                    addr,
                    Some((self.pki.client_config(identity), "localhost".to_owned())),
                )
            }
        };
        DeviceSpec {
            addr,
            tls,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(1)),
            config,
            resources: resources(),
        }
    }

    /// Answers authentication as a server application would: password "good" for any device,
    /// or a certificate whose DER is `pki.device` (device "dev-cert"). Only the connection of
    /// `expected` counts: a stray device (another test's, retrying towards a reused port) is
    /// refused and skipped.
    fn authenticate(&self, expected: &str) -> (ConnId, Result<String, ()>) {
        loop {
            let Some(BrokerEvent::Authenticate { conn, request }) = self.server.next_event(WAIT)
            else {
                continue;
            };
            let name = match &request.credentials {
                Credentials::Password { device, .. } => device.clone(),
                Credentials::Certificate { der } if *der == self.pki.device.der => {
                    "dev-cert".to_owned()
                }
                Credentials::Certificate { der } if *der == self.pki.other_device.der => {
                    "dev-other".to_owned()
                }
                Credentials::Certificate { .. } => "?".to_owned(),
            };
            let decision = match &request.credentials {
                Credentials::Password {
                    user,
                    device,
                    credential,
                } if credential == "good" => Ok(format!("{user}/{device}")),
                Credentials::Certificate { der } if *der == self.pki.device.der => {
                    Ok("alice/dev-cert".to_owned())
                }
                _ => Err(()),
            };
            match (&decision, name == expected) {
                (Ok(device), true) => self.server.accept(conn, device),
                _ => self.server.reject(conn),
            }
            if name == expected {
                return (conn, decision);
            }
        }
    }

    fn wait_event(&self, what: &str, f: impl Fn(&BrokerEvent) -> bool) -> BrokerEvent {
        let deadline = Clock::now() + WAIT;
        while Clock::now() < deadline {
            if let Some(event) = self
                .server
                .next_event(deadline.saturating_duration_since(Clock::now()))
            {
                if f(&event) {
                    return event;
                }
            }
        }
        panic!("server: no {what} within {WAIT:?}");
    }
}

fn wait_device(
    device: &dyn TestDevice,
    what: &str,
    f: impl Fn(&DriverEvent) -> bool,
) -> DriverEvent {
    let deadline = Clock::now() + WAIT;
    while Clock::now() < deadline {
        if let Some(event) = device.next_event(deadline.saturating_duration_since(Clock::now())) {
            if f(&event) {
                return event;
            }
        }
    }
    panic!("device: no {what} within {WAIT:?}");
}

fn ok_payload(result: Option<iotmp_proto::control::RequestResult>) -> Option<Value> {
    match result.expect("an answer in time") {
        Ok(Answer::Ok { payload, .. }) => payload,
        other => panic!("expected OK, got {other:?}"),
    }
}

/// Connect, authenticate, DESCRIBE, RUN with and without input, two sampling sinks, an event
/// stream, and graceful shutdown of the device.
fn application_exchange(
    server_rt: &dyn Runtime,
    device_rt: &dyn Runtime,
    transport: Transport,
    dialect: Dialect,
) {
    let setup = Setup::new(server_rt);
    let device =
        device_rt.connect(setup.device_spec(transport, device_config(dialect, "d1", "good"), None));
    let (_, decision) = setup.authenticate("d1");
    assert_eq!(decision, Ok("alice/d1".to_owned()));
    setup.wait_event("DeviceOnline", |e| {
        matches!(e, BrokerEvent::DeviceOnline { .. })
    });
    wait_device(&*device, "Connected", |e| {
        matches!(e, DriverEvent::Connected)
    });

    let described =
        ok_payload(setup.server.describe("alice/d1", None, WAIT)).expect("a description");
    let names: Vec<&str> = described
        .as_map()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(names, ["temp", "led", "echo", "level"]);
    assert_eq!(
        ok_payload(setup.server.run("alice/d1", "temp", None, WAIT)),
        Some(Value::F32(21.5))
    );
    assert_eq!(
        ok_payload(
            setup
                .server
                .run("alice/d1", "led", Some(Value::Bool(true)), WAIT)
        ),
        None
    );
    assert_eq!(
        ok_payload(
            setup
                .server
                .run("alice/d1", "echo", Some(Value::from("hi")), WAIT)
        ),
        Some(Value::from("hi"))
    );

    // Two sinks at 1 s and 2 s: the device samples every second.
    assert_eq!(
        setup.server.subscribe("alice/d1", "level", 1, 1, WAIT),
        Some(Ok(()))
    );
    assert_eq!(
        setup.server.subscribe("alice/d1", "level", 2, 2, WAIT),
        Some(Ok(()))
    );
    let start = Clock::now();
    let mut counts = [0usize; 3];
    while start.elapsed() < Duration::from_millis(4_500) {
        if let Some(BrokerEvent::Delivery { sink, .. }) =
            setup.server.next_event(Duration::from_millis(100))
        {
            counts[sink as usize] += 1;
        }
    }
    assert!(
        (4..=6).contains(&counts[1]),
        "sink 1 (1 s) got {} values in 4.5 s",
        counts[1]
    );
    assert!(
        (2..=4).contains(&counts[2]),
        "sink 2 (2 s) got {} values in 4.5 s",
        counts[2]
    );
    setup.server.unsubscribe("alice/d1", "level", 1);
    setup.server.unsubscribe("alice/d1", "level", 2);

    // An event stream: the application streams, the sink receives.
    assert_eq!(
        setup.server.subscribe("alice/d1", "temp", 3, 0, WAIT),
        Some(Ok(()))
    );
    setup.wait_event("the first event value", |e| {
        matches!(e, BrokerEvent::Delivery { sink: 3, .. })
    });
    device.stream("temp");
    setup.wait_event("a streamed event", |e| {
        matches!(
            e,
            BrokerEvent::Delivery {
                sink: 3,
                value: Value::F32(_),
                ..
            }
        )
    });

    // Graceful device shutdown: the server sees a DISCONNECT, not a dropped transport.
    device.shutdown_and_join();
    match setup.wait_event("DeviceOffline", |e| {
        matches!(e, BrokerEvent::DeviceOffline { .. })
    }) {
        BrokerEvent::DeviceOffline { reason, .. } => {
            assert!(
                matches!(reason, CloseReason::PeerDisconnect { .. }),
                "{reason:?}"
            )
        }
        _ => unreachable!(),
    }
    setup.server.shutdown_and_join();
}

/// A raw peer that sends a valid CONNECT with keep-alive 1 s and then stays silent: the server
/// closes it at 1.15 s after its last frame.
fn keep_alive_expiry(rt: &dyn Runtime) {
    let setup = Setup::new(rt);
    let mut raw = TcpStream::connect(setup.server.tcp_addr()).expect("connect");
    let mut connect = Message::new(MessageType::Connect).with_stream_id(1);
    connect.keep_alive = Some(1);
    connect.payload = Some(Value::Array(vec![
        "alice".into(),
        "silent".into(),
        "good".into(),
    ]));
    let mut bytes = Vec::new();
    Dialect::Draft2026
        .encode(&connect, Flavour::V2, &mut bytes)
        .unwrap();
    raw.write_all(&bytes).unwrap();
    assert!(setup.authenticate("silent").1.is_ok());
    let accepted = Clock::now();
    let offline = setup.wait_event("expiry", |e| matches!(e, BrokerEvent::DeviceOffline { .. }));
    let waited = accepted.elapsed();
    assert!(
        matches!(
            offline,
            BrokerEvent::DeviceOffline {
                reason: CloseReason::KeepAliveExpired,
                ..
            }
        ),
        "{offline:?}"
    );
    assert!(
        waited >= Duration::from_millis(1_000) && waited < Duration::from_secs(4),
        "expired after {waited:?}"
    );
    // The server closed the socket: reading ends (after the OK it sent).
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest);
    assert_eq!(
        rest,
        [0x01, 0x02, 0x08, 0x01],
        "only the OK to CONNECT, then EOF"
    );
    setup.server.shutdown_and_join();
}

/// The server shuts down (devices get DISCONNECT "shutdown") and comes back on the same port;
/// the device retries with backoff and connects again.
fn server_restart(rt: &dyn Runtime, device_rt: &dyn Runtime) {
    let setup = Setup::new(rt);
    let port = setup.server.tcp_addr();
    let device = device_rt.connect(setup.device_spec(
        Transport::Tcp,
        device_config(Dialect::Draft2020, "d2", "good"),
        None,
    ));
    assert!(setup.authenticate("d2").1.is_ok());
    wait_device(&*device, "Connected", |e| {
        matches!(e, DriverEvent::Connected)
    });
    let Setup { pki, server } = setup;
    server.shutdown_and_join();
    match wait_device(&*device, "Disconnected", |e| {
        matches!(e, DriverEvent::Disconnected { .. })
    }) {
        DriverEvent::Disconnected { reason } => assert!(reason.contains("shutdown"), "{reason}"),
        _ => unreachable!(),
    }
    let retry = wait_device(&*device, "Retrying", |e| {
        matches!(e, DriverEvent::Retrying { .. })
    });
    assert!(
        matches!(retry, DriverEvent::Retrying { after } if after <= Duration::from_secs(1)),
        "{retry:?}"
    );
    // Back on the same port.
    let server = rt.serve(ServerSpec {
        tcp: Some(port),
        tls: None,
        session: session_config(),
    });
    let setup = Setup { pki, server };
    assert!(setup.authenticate("d2").1.is_ok());
    wait_device(&*device, "Connected again", |e| {
        matches!(e, DriverEvent::Connected)
    });
    device.shutdown_and_join();
    setup.server.shutdown_and_join();
}

/// Certificate auth: accepted over TLS with the registered certificate, refused with another
/// one, refused over TCP whatever is presented.
fn certificate_auth(rt: &dyn Runtime) {
    let setup = Setup::new(rt);
    let cert_config = |leaf: &Leaf| {
        let mut c = device_config(Dialect::Draft2026, "ignored", "ignored");
        c.auth = ClientAuth::Certificate {
            pem: leaf.cert_pem.clone(),
        };
        c
    };
    let good = rt.connect(setup.device_spec(
        Transport::Tls,
        cert_config(&setup.pki.device),
        Some(&setup.pki.device),
    ));
    assert_eq!(
        setup.authenticate("dev-cert").1,
        Ok("alice/dev-cert".to_owned())
    );
    wait_device(&*good, "Connected", |e| matches!(e, DriverEvent::Connected));
    good.shutdown_and_join();

    let other = rt.connect(setup.device_spec(
        Transport::Tls,
        cert_config(&setup.pki.other_device),
        Some(&setup.pki.other_device),
    ));
    assert_eq!(setup.authenticate("dev-other").1, Err(()));
    let refused = wait_device(&*other, "refusal", |e| {
        matches!(
            e,
            DriverEvent::Session(ClientEvent::Closed(_)) | DriverEvent::Disconnected { .. }
        )
    });
    assert!(
        format!("{refused:?}").contains("code 2")
            || format!("{refused:?}").contains("ConnectRejected"),
        "{refused:?}"
    );
    other.shutdown_and_join();

    // Over TCP the session refuses certificate auth itself: the application is never asked.
    let tcp = rt.connect(setup.device_spec(Transport::Tcp, cert_config(&setup.pki.device), None));
    wait_device(&*tcp, "refusal over TCP", |e| {
        matches!(e, DriverEvent::Disconnected { .. })
    });
    assert!(
        !std::iter::from_fn(|| setup.server.next_event(Duration::from_millis(200)))
            .any(|e| matches!(e, BrokerEvent::Authenticate { .. })),
        "certificate auth over TCP must not reach the application"
    );
    tcp.shutdown_and_join();
    setup.server.shutdown_and_join();
}

fn all_scenarios(name: &str) {
    let rt = runtime(name);
    for transport in [Transport::Tcp, Transport::Tls] {
        for dialect in [Dialect::Draft2020, Dialect::Draft2026] {
            application_exchange(&*rt, &*rt, transport, dialect);
        }
    }
    keep_alive_expiry(&*rt);
    server_restart(&*rt, &*rt);
    certificate_auth(&*rt);
}

#[test]
fn mio_scenarios() {
    all_scenarios("mio");
}

#[test]
fn smol_scenarios() {
    all_scenarios("smol");
}

#[test]
fn async_std_scenarios() {
    all_scenarios("async-std");
}

#[test]
fn mio_device_smol_server() {
    application_exchange(
        &*runtime("smol"),
        &*runtime("mio"),
        Transport::Tls,
        Dialect::Draft2026,
    );
    server_restart(&*runtime("smol"), &*runtime("mio"));
}

#[test]
fn smol_device_mio_server() {
    application_exchange(
        &*runtime("mio"),
        &*runtime("smol"),
        Transport::Tcp,
        Dialect::Draft2020,
    );
    server_restart(&*runtime("mio"), &*runtime("smol"));
}
