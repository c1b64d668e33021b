//! The admission rules through the real drivers (mio, smol, async-std) over loopback: the cap on
//! open connections, the connection rate per source, and the ban after repeated failed
//! authentications. A refused connection is closed at once, before the server reads a byte;
//! other sources keep being served.
//!
//! Peers are raw sockets (`std::net`) bound to chosen addresses of 127.0.0.0/8, so that one test
//! plays several hosts. Every wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use iotmp_proto::admission::{AdmissionConfig, Refusal};
use iotmp_proto::broker::BrokerEvent;
use iotmp_proto::server::Credentials;
use iotmp_proto::{Dialect, Flavour, Message, MessageType, ServerConfig, Value};
use iotmp_tests::net::connect_from;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Driver {
    Mio,
    Smol,
    AsyncStd,
}

const DRIVERS: [Driver; 3] = [Driver::Mio, Driver::Smol, Driver::AsyncStd];

/// A server that accepts the credential "good" and rejects any other, and hands every other
/// event to the test.
struct Server {
    addr: SocketAddr,
    events: std::sync::mpsc::Receiver<BrokerEvent>,
    stop: Box<dyn FnOnce()>,
}

impl Server {
    fn start(driver: Driver, admission: AdmissionConfig) -> Server {
        let tcp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let session = ServerConfig::default();
        let (tx, events) = std::sync::mpsc::channel();
        match driver {
            Driver::Mio => {
                let server = iotmp_mio::serve(iotmp_mio::ServerOptions {
                    tcp,
                    session,
                    admission,
                    ..Default::default()
                })
                .expect("mio server");
                let (handle, rx) = (server.handle.clone(), server.events.clone());
                std::thread::spawn(move || {
                    while let Ok(event) = rx.recv_blocking() {
                        match authenticate(&event) {
                            Some((conn, Some(device))) => handle.accept(conn, &device),
                            Some((conn, None)) => handle.reject(conn),
                            None => drop(tx.send(event)),
                        }
                    }
                });
                Server {
                    addr: server.tcp_addr().expect("tcp"),
                    events,
                    stop: Box::new(move || {
                        server.handle.shutdown();
                        server.join().expect("mio stops");
                    }),
                }
            }
            Driver::Smol | Driver::AsyncStd => {
                let runtime = match driver {
                    Driver::Smol => iotmp_smol::Runtime::Smol,
                    _ => iotmp_smol::Runtime::AsyncStd,
                };
                let server = iotmp_smol::serve(iotmp_smol::ServerOptions {
                    tcp,
                    session,
                    admission,
                    runtime,
                    ..Default::default()
                })
                .expect("smol server");
                let (handle, rx) = (server.handle.clone(), server.events.clone());
                std::thread::spawn(move || {
                    while let Ok(event) = rx.recv_blocking() {
                        match authenticate(&event) {
                            Some((conn, Some(device))) => handle.accept(conn, &device),
                            Some((conn, None)) => handle.reject(conn),
                            None => drop(tx.send(event)),
                        }
                    }
                });
                Server {
                    addr: server.tcp_addr().expect("tcp"),
                    events,
                    stop: Box::new(move || {
                        server.handle.shutdown();
                        server.join().expect("smol stops");
                    }),
                }
            }
        }
    }

    /// The first event `want` picks, within [`WAIT`].
    fn event(&self, what: &str, want: impl Fn(&BrokerEvent) -> bool) -> BrokerEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if want(&event) => return event,
                Ok(_) => {}
                Err(_) => panic!("no {what} event in time"),
            }
        }
    }

    fn stop(self) {
        (self.stop)();
    }
}

/// `(conn, the device if the credential is "good")` for an authentication request.
fn authenticate(event: &BrokerEvent) -> Option<(u64, Option<String>)> {
    let BrokerEvent::Authenticate { conn, request } = event else {
        return None;
    };
    let device = match &request.credentials {
        Credentials::Password {
            device, credential, ..
        } if credential == "good" => Some(device.clone()),
        _ => None,
    };
    Some((*conn, device))
}

fn connect_frame(credential: &str) -> Vec<u8> {
    connect_as("dev", credential)
}

fn connect_as(device: &str, credential: &str) -> Vec<u8> {
    let connect = Message::new(MessageType::Connect)
        .with_stream_id(1)
        .with_payload(Value::Array(vec![
            "alice".into(),
            device.into(),
            credential.into(),
        ]));
    let mut bytes = Vec::new();
    Dialect::Draft2026
        .encode(&connect, Flavour::V2, &mut bytes)
        .expect("CONNECT encodes");
    bytes
}

/// What the server did with a connection.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// It answered: the first bytes it sent (OK or ERROR to the CONNECT).
    Answered(Vec<u8>),
    /// It closed the connection without a byte.
    Closed,
}

/// The server's first reaction on `stream` (after an optional CONNECT), within [`WAIT`].
fn reaction(mut stream: TcpStream, connect: Option<&str>) -> Outcome {
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    if let Some(credential) = connect {
        // A refused socket may already be reset: the read below tells.
        let _ = stream.write_all(&connect_frame(credential));
    }
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => Outcome::Closed,
        Ok(n) => Outcome::Answered(buf[..n].to_vec()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the server neither answered nor closed within {WAIT:?}")
        }
        Err(_) => Outcome::Closed, // reset
    }
}

/// The first frame type of an answer: 0x01 OK, 0x02 ERROR (2026).
fn frame_type(outcome: &Outcome) -> Option<u8> {
    match outcome {
        Outcome::Answered(bytes) => bytes.first().copied(),
        Outcome::Closed => None,
    }
}

const OK: Option<u8> = Some(0x01);
const ERROR: Option<u8> = Some(0x02);

fn host(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn no_rate_limit() -> AdmissionConfig {
    AdmissionConfig {
        rate_per_sec: 0,
        max_failures: 0,
        ..AdmissionConfig::default()
    }
}

/// With the cap reached, a new connection is closed at once (and reported); once one of the
/// open connections ends, a new one is served again.
fn connection_cap(driver: Driver) {
    let server = Server::start(
        driver,
        AdmissionConfig {
            max_connections: 3,
            ..no_rate_limit()
        },
    );
    // Three devices, known to the broker for sure once they got their OK.
    let mut open = Vec::new();
    for i in 0..3 {
        let mut s = TcpStream::connect(server.addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.write_all(&connect_as(&format!("dev{i}"), "good"))
            .expect("write");
        let mut ok = [0u8; 1];
        s.read_exact(&mut ok).expect("OK in time");
        assert_eq!(Some(ok[0]), OK, "{driver:?}");
        open.push(s);
    }
    let stream = TcpStream::connect(server.addr).expect("connect");
    assert_eq!(
        reaction(stream, Some("good")),
        Outcome::Closed,
        "{driver:?}"
    );
    let event = server.event("refused", |e| matches!(e, BrokerEvent::Refused { .. }));
    assert!(
        matches!(
            event,
            BrokerEvent::Refused {
                reason: Refusal::TooManyConnections,
                peer: Some(ip),
                ..
            } if ip == host(1)
        ),
        "{driver:?}: {event:?}"
    );
    // One of the three leaves: its slot is free again.
    drop(open.pop());
    server.event("a device offline", |e| {
        matches!(e, BrokerEvent::DeviceOffline { .. })
    });
    let stream = TcpStream::connect(server.addr).expect("connect");
    assert_eq!(
        frame_type(&reaction(stream, Some("good"))),
        OK,
        "{driver:?}"
    );
    drop(open);
    server.event("a device offline", |e| {
        matches!(e, BrokerEvent::DeviceOffline { .. })
    });
    server.stop();
}

/// A source that keeps failing to authenticate is banned: its next connections are closed at
/// once while another source still gets in; the ban ends after its window.
fn ban_after_failures(driver: Driver) {
    let ban = Duration::from_millis(1500);
    let server = Server::start(
        driver,
        AdmissionConfig {
            max_failures: 3,
            failure_window: Duration::from_secs(60),
            ban,
            ..no_rate_limit()
        },
    );
    let attacker = host(1);
    for i in 0..3 {
        let stream = connect_from(attacker, server.addr).expect("connect");
        let outcome = reaction(stream, Some("wrong"));
        assert_eq!(frame_type(&outcome), ERROR, "{driver:?}: attempt {i}");
    }
    let event = server.event("ban", |e| matches!(e, BrokerEvent::Banned { .. }));
    assert!(
        matches!(event, BrokerEvent::Banned { source, duration } if source == attacker && duration == ban),
        "{driver:?}: {event:?}"
    );
    let banned_at = Instant::now();
    let stream = connect_from(attacker, server.addr).expect("connect");
    let outcome = reaction(stream, Some("good"));
    if banned_at.elapsed() < ban {
        assert_eq!(outcome, Outcome::Closed, "{driver:?}: banned source got in");
    }
    let stream = connect_from(host(2), server.addr).expect("connect");
    assert_eq!(
        frame_type(&reaction(stream, Some("good"))),
        OK,
        "{driver:?}: another source is still served"
    );
    // The ban ends: the attacker's address gets in again, within a bounded wait.
    let deadline = Instant::now() + WAIT;
    loop {
        let stream = connect_from(attacker, server.addr).expect("connect");
        if frame_type(&reaction(stream, Some("good"))) == OK {
            break;
        }
        assert!(Instant::now() < deadline, "{driver:?}: the ban never ended");
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop();
}

/// A source over its connection rate is closed at once; the count admitted never exceeds the
/// burst plus the rate over the time the test took, and another source is unaffected.
fn rate_limit(driver: Driver) {
    let server = Server::start(
        driver,
        AdmissionConfig {
            rate_per_sec: 1,
            burst: 2,
            ..no_rate_limit()
        },
    );
    let started = Instant::now();
    let mut admitted = 0u64;
    let mut closed = 0u64;
    for _ in 0..6 {
        let stream = connect_from(host(3), server.addr).expect("connect");
        match frame_type(&reaction(stream, Some("good"))) {
            OK => admitted += 1,
            None => closed += 1,
            other => panic!("{driver:?}: unexpected answer {other:?}"),
        }
    }
    let bound = 2 + started.elapsed().as_secs() + 1;
    assert!(admitted >= 2, "{driver:?}: the burst is admitted");
    assert!(
        admitted <= bound,
        "{driver:?}: {admitted} admitted, at most {bound}"
    );
    assert_eq!(admitted + closed, 6);
    let stream = connect_from(host(4), server.addr).expect("connect");
    assert_eq!(
        frame_type(&reaction(stream, Some("good"))),
        OK,
        "{driver:?}"
    );
    if closed > 0 {
        let event = server.event("refused", |e| matches!(e, BrokerEvent::Refused { .. }));
        assert!(
            matches!(
                event,
                BrokerEvent::Refused {
                    reason: Refusal::RateLimited,
                    ..
                }
            ),
            "{driver:?}: {event:?}"
        );
    }
    server.stop();
}

#[test]
fn the_connection_cap_closes_newcomers_at_once() {
    for driver in DRIVERS {
        connection_cap(driver);
    }
}

#[test]
fn repeated_failed_authentication_bans_the_source() {
    for driver in DRIVERS {
        ban_after_failures(driver);
    }
}

#[test]
fn a_source_over_its_rate_is_closed_at_once() {
    for driver in DRIVERS {
        rate_limit(driver);
    }
}
