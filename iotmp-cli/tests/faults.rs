//! Fault and abuse tests of `iotmp server` (issue 7), against the real binary on loopback:
//! invalid frames over live sockets, a device dropped mid-frame, a half-open connection, a slow
//! WebSocket next to a fast one, silent sockets and the server's memory, and a hard kill while
//! recorders run.
//!
//! Every wait is bounded; no check depends on how fast the machine is (the only time bounds
//! are lower bounds the server cannot beat, however loaded the machine).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use iotmp_proto::frame::{Deframer, write_header};
use iotmp_proto::{Dialect, Flavour, Message, MessageType, Value};
use serde_json::Value as Json;

use common::server::*;
use common::{hex_bytes, load_json, name_of, str_member};

// ----- a raw device: bytes on a socket, no session --------------------------------------------------

/// Starts the server without the per-address rate limit and ban: these tests open many
/// connections from 127.0.0.1 on purpose (admission has its own tests).
fn start_server(registry: &Registry, extra: &[&str]) -> Server {
    let mut args = vec!["--rate-limit", "0", "--ban-after", "0"];
    args.extend_from_slice(extra);
    Server::start(registry, &args)
}

/// A device connection driven byte by byte, to send what no well-behaved device would.
struct RawDevice {
    stream: TcpStream,
    dialect: Dialect,
    deframer: Deframer,
    pending: Vec<u8>,
}

impl RawDevice {
    /// Connects and authenticates `user/device` with keep-alive `keep_alive` s; panics unless the
    /// server answers OK.
    fn connect(
        addr: SocketAddr,
        dialect: Dialect,
        path: &str,
        credential: &str,
        keep_alive: u32,
    ) -> RawDevice {
        let (user, device) = path.split_once('/').unwrap();
        let mut connect = Message::new(MessageType::Connect).with_stream_id(1);
        connect.keep_alive = Some(keep_alive);
        connect.payload = Some(Value::Array(vec![
            user.into(),
            device.into(),
            credential.into(),
        ]));
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut raw = RawDevice {
            stream,
            dialect,
            deframer: Deframer::default(),
            pending: Vec::new(),
        };
        raw.send_message(&connect);
        let (_, ok) = raw.next_frame().expect("an answer to CONNECT");
        assert_eq!(ok.kind, MessageType::Ok, "{ok:?}");
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn send_message(&mut self, message: &Message) {
        let mut bytes = Vec::new();
        let flavour = match self.dialect {
            Dialect::Draft2020 => Flavour::V1,
            _ => Flavour::V2,
        };
        self.dialect.encode(message, flavour, &mut bytes).unwrap();
        self.send(&bytes);
    }

    /// The next frame the server sent (its bytes and its message), `None` at EOF.
    fn next_frame(&mut self) -> Option<(Vec<u8>, Message)> {
        loop {
            let mut input = &self.pending[..];
            let frame = self.deframer.next_frame(&mut input).unwrap();
            let used = self.pending.len() - input.len();
            if let Some(frame) = frame {
                let mut raw = Vec::new();
                write_header(&mut raw, frame.type_code, frame.body.len() as u32);
                raw.extend_from_slice(frame.body);
                let message = self.dialect.decode(frame.type_code, frame.body).unwrap();
                self.pending.drain(..used);
                return Some((raw, message));
            }
            self.pending.drain(..used);
            let mut buf = [0; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading from the server: {e}"),
            }
        }
    }

    /// Sends a request the server always answers (a device START_STREAM: ERROR 501) and
    /// returns every byte the server sent before that answer.
    fn bytes_before_probe(&mut self) -> Vec<u8> {
        const PROBE: u16 = 4242;
        let mut probe = Message::new(MessageType::StartStream)
            .with_stream_id(PROBE)
            .with_resource("probe");
        if self.dialect == Dialect::Draft2020 {
            probe.interval_ms = Some(1000);
        }
        self.send_message(&probe);
        let mut before = Vec::new();
        loop {
            let (raw, message) = self.next_frame().expect("the connection stays open");
            if message.stream_id == Some(PROBE) {
                assert_eq!(message.kind, MessageType::Error, "{message:?}");
                return before;
            }
            before.extend(raw);
        }
    }

    /// Waits for the server to close the connection; returns what it sent first.
    fn rest_until_closed(mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.pending);
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => rest,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => rest,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

fn is_connected(server: &Server, token: &str, device: &str) -> bool {
    server
        .devices("alice", token)
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["device"] == device && d["connected"] == true)
}

fn wait_offline(server: &Server, token: &str, device: &str) {
    eventually(&format!("{device} offline"), || {
        !is_connected(server, token, device)
    });
}

/// A WebSocket on `alice/streamer`'s `alarm` events, and the device pushing them: `check(i)`
/// pushes `i` and waits for it on the socket.
struct Stream {
    device: TestDevice,
    ws: Client,
}

impl Stream {
    fn open(server: &Server, registry: &Registry) -> Stream {
        let device = device(server, registry, "alice/streamer", Dialect::Draft2026);
        server.wait_online("alice", "streamer", &registry.alice);
        let ws = websocket(
            server.http(),
            "/v3/users/alice/devices/streamer/resources/alarm",
            &registry.alice,
        );
        Stream { device, ws }
    }

    /// Pushes `i`; the sink receives exactly the values pushed, in order (the device's current
    /// value may come first, when the stream opens).
    fn check(&mut self, i: u64) {
        self.device.stream_value("alarm", Value::UInt(i));
        let deadline = Instant::now() + WAIT;
        loop {
            let text = next_text(&mut self.ws, deadline)
                .unwrap_or_else(|| panic!("value {i} did not reach the sink"));
            if text == "\"quiet\"" {
                continue;
            }
            assert_eq!(text, i.to_string(), "values arrive in order");
            return;
        }
    }
}

// ----- invalid frames ------------------------------------------------------------------------------

fn dialect_of(name: &str) -> Dialect {
    match name {
        "2020" => Dialect::Draft2020,
        _ => Dialect::Draft2026,
    }
}

/// True when `bytes` end inside a frame: the server can only see the problem at end of stream.
fn ends_inside_a_frame(bytes: &[u8]) -> bool {
    let mut deframer = Deframer::default();
    let mut input = bytes;
    loop {
        match deframer.next_frame(&mut input) {
            Ok(Some(_)) => {}
            Ok(None) => return !deframer.is_between_frames() || !input.is_empty(),
            Err(_) => return false,
        }
    }
}

/// Every frame entry of `invalid.json` (§7.2), sent over its own live TCP connection to the
/// real server, gets the vector's outcome: `ignore` and `drop` send nothing and keep the
/// connection (a request sent next is answered, with nothing before its answer),
/// `drop_and_error` sends exactly `reply_hex` and keeps the connection, `close` closes it
/// without a byte (for bytes that end inside a frame, once the peer ended the stream, as the
/// vector says). Meanwhile a well-behaved device streams to a WebSocket: after every entry its
/// next value arrives, in order.
#[test]
fn invalid_frames_get_their_outcome_while_devices_stream() {
    let registry = Registry::new(&["alice/streamer", "alice/abuser"]);
    let server = start_server(&registry, &["--auth-deadline", "60s"]);
    let addr = server.tcp.unwrap();
    let credential = registry.credential("alice/abuser").to_owned();
    let mut stream = Stream::open(&server, &registry);

    let entries: Vec<Json> = load_json("invalid.json")
        .into_iter()
        .filter(|e| e.get("state").is_some())
        .collect();
    assert!(entries.len() > 40, "the frame entries of invalid.json");
    for (i, entry) in entries.iter().enumerate() {
        let name = format!("{} ({})", name_of(entry), str_member(entry, "dialect"));
        let bytes = hex_bytes(str_member(entry, "hex"));
        let expect = str_member(entry, "expect");
        if str_member(entry, "state") == "new" {
            assert_eq!(expect, "close", "{name}");
            let mut socket = TcpStream::connect(addr).unwrap();
            socket.set_read_timeout(Some(WAIT)).unwrap();
            socket.write_all(&bytes).unwrap();
            let mut rest = Vec::new();
            if let Err(e) = socket.read_to_end(&mut rest) {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{name}: {e}");
            }
            assert!(rest.is_empty(), "{name}: sent {rest:02X?} before closing");
        } else {
            let dialect = dialect_of(str_member(entry, "dialect"));
            let mut raw = RawDevice::connect(addr, dialect, "alice/abuser", &credential, 30);
            raw.send(&bytes);
            match expect {
                "ignore" | "drop" => {
                    assert_eq!(raw.bytes_before_probe(), Vec::<u8>::new(), "{name}");
                }
                "drop_and_error" => {
                    let reply = hex_bytes(str_member(entry, "reply_hex"));
                    assert_eq!(raw.bytes_before_probe(), reply, "{name}");
                }
                "close" => {
                    if ends_inside_a_frame(&bytes) {
                        raw.stream.shutdown(Shutdown::Write).unwrap();
                    }
                    assert_eq!(raw.rest_until_closed(), Vec::<u8>::new(), "{name}");
                    wait_offline(&server, &registry.alice, "abuser");
                }
                other => panic!("{name}: unknown outcome {other}"),
            }
        }
        stream.check(i as u64);
    }
    server.wait_online("alice", "streamer", &registry.alice);
    stream.check(u64::MAX);
    server.stop();
}

// ----- a device that dies mid-frame ------------------------------------------------------------------

/// A device sends half a STREAM_DATA frame and its socket is dropped: the server marks it
/// offline and frees the connection, a streaming device next to it is unaffected, and the same
/// device connecting again is accepted and served.
#[test]
fn a_device_dropped_mid_frame_goes_offline_and_comes_back() {
    let registry = Registry::new(&["alice/streamer", "alice/victim"]);
    let server = start_server(&registry, &[]);
    let addr = server.tcp.unwrap();
    let credential = registry.credential("alice/victim").to_owned();
    let mut stream = Stream::open(&server, &registry);
    stream.check(1);

    let mut raw = RawDevice::connect(addr, Dialect::Draft2026, "alice/victim", &credential, 30);
    server.wait_online("alice", "victim", &registry.alice);
    let mut frame = Vec::new();
    Dialect::Draft2026
        .encode(
            &Message::new(MessageType::StreamData)
                .with_stream_id(9)
                .with_payload("a value that never arrives in full"),
            Flavour::V2,
            &mut frame,
        )
        .unwrap();
    raw.send(&frame[..frame.len() / 2]);
    stream.check(2);
    drop(raw);
    wait_offline(&server, &registry.alice, "victim");
    stream.check(3);

    let mut again = RawDevice::connect(addr, Dialect::Draft2026, "alice/victim", &credential, 30);
    server.wait_online("alice", "victim", &registry.alice);
    assert_eq!(again.bytes_before_probe(), Vec::<u8>::new());
    stream.check(4);
    drop(again);
    server.stop();
}

// ----- a half-open connection ------------------------------------------------------------------------

/// A device authenticates with keep-alive 1 s, then goes silent with its socket open (what a
/// peer behind a dead link looks like): the server closes the connection after keep-alive ×
/// 1.15 with nothing sent after the OK, and lists the device offline. The close cannot come
/// before 1.15 s after the CONNECT was sent, whatever the load; that lower bound is checked.
#[test]
fn a_silent_device_expires_at_its_keep_alive() {
    let registry = Registry::new(&["alice/silent"]);
    let server = start_server(&registry, &["--keep-alive-min", "1"]);
    let sent = Instant::now();
    let raw = RawDevice::connect(
        server.tcp.unwrap(),
        Dialect::Draft2026,
        "alice/silent",
        registry.credential("alice/silent"),
        1,
    );
    server.wait_online("alice", "silent", &registry.alice);
    assert_eq!(raw.rest_until_closed(), Vec::<u8>::new());
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(1150),
        "closed {waited:?} after CONNECT"
    );
    wait_offline(&server, &registry.alice, "silent");
    server.stop();
}

// ----- a slow WebSocket next to a fast one -----------------------------------------------------------

/// A socket to `addr` with a 4 KiB receive buffer, set before connecting so that the window
/// the server sees stays small.
fn small_window_socket(addr: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, connect, socket, sockopt};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
    connect(&fd, &addr).unwrap();
    TcpStream::from(fd)
}

/// Two WebSockets on the same device resource: one never reads (a 4 KiB receive buffer, so
/// TCP pushes back at once), the other reads. The device pushes 300 values of 32 KiB (9.6 MB,
/// more than the slow socket's queue, the server's send buffer and the client's receive buffer
/// can hold together), each only after the fast socket got the previous one: the fast socket
/// receives every value in order, the device is never stalled (a RUN is answered meanwhile),
/// and the slow sink's loss is counted (logged when its socket closes).
#[test]
fn a_slow_websocket_loses_its_oldest_values_and_stalls_nothing() {
    const VALUES: u64 = 300;
    let registry = Registry::new(&["alice/streamer"]);
    let mut server = start_server(&registry, &[]);
    let path = "/v3/users/alice/devices/streamer/resources/alarm";
    let mut fast = Stream::open(&server, &registry);
    let slow = websocket_over(
        small_window_socket(server.http()),
        server.http(),
        path,
        &registry.alice,
    );
    let padding = "x".repeat(32 * 1024);
    for i in 0..VALUES {
        let value = format!("{i}:{padding}");
        fast.device
            .stream_value("alarm", Value::from(value.as_str()));
        let deadline = Instant::now() + WAIT;
        loop {
            let text = next_text(&mut fast.ws, deadline)
                .unwrap_or_else(|| panic!("value {i} did not reach the fast socket"));
            if text == "\"quiet\"" {
                continue;
            }
            assert_eq!(text, format!("\"{value}\""), "value {i} in order");
            break;
        }
        if i == VALUES / 2 {
            let reply = server.get(
                "/v3/users/alice/devices/streamer/resources/temp",
                Some(&registry.alice),
            );
            assert_eq!(reply.ok(), serde_json::json!(21.5));
        }
    }
    fast.check(VALUES);
    drop(slow);
    server.wait_for_log("values dropped in total");
    let log = server.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("values dropped in total"))
        .unwrap();
    assert!(line.contains("alice/streamer"), "{line}");
    server.stop();
}

// ----- a hard kill while recorders run ---------------------------------------------------------------

/// A recorder stores every value of a device that keeps streaming; the server is killed with
/// SIGKILL mid-run and started again on the same registry. Every row the buckets API returned
/// before the kill (those are committed: the API reads the registry connection, which the
/// writer holds for a whole transaction) is still there afterwards, unchanged and in order, and
/// recording goes on. See "Durability of recorded data" in DECISIONS.md.
#[test]
fn rows_acknowledged_before_a_kill_survive_it() {
    let registry = Registry::new(&["alice/streamer"]);
    let (code, _, err) = registry.run(&[
        "recorder",
        "add",
        "alice/streamer",
        "alarm",
        "--every",
        "0",
        "--bucket",
        "alarms",
    ]);
    assert_eq!(code, 0, "{err}");
    let data = "/v3/users/alice/buckets/alarms/data?limit=10000";
    let mut server = start_server(&registry, &[]);
    let tcp = server.tcp.unwrap().to_string();
    let device = device(&server, &registry, "alice/streamer", Dialect::Draft2026);
    server.wait_online("alice", "streamer", &registry.alice);
    server.wait_for_log("recorder 1:");

    // The device streams from another thread throughout, kill included.
    let pushing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pusher = {
        let pushing = pushing.clone();
        let device = std::sync::Arc::new(device);
        let handle = device.clone();
        let thread = std::thread::spawn(move || {
            let mut i = 0u64;
            while pushing.load(std::sync::atomic::Ordering::Relaxed) {
                handle.stream_value("alarm", Value::UInt(i));
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        (thread, device)
    };

    let mut acknowledged = Vec::new();
    eventually("200 recorded rows", || {
        acknowledged = server
            .get(data, Some(&registry.alice))
            .ok()
            .as_array()
            .unwrap()
            .clone();
        acknowledged.len() >= 200
    });
    {
        use rustix::process::{Pid, Signal, kill_process};
        kill_process(Pid::from_child(&server.child), Signal::KILL).unwrap();
    }
    assert_eq!(server.wait(), -1, "killed by the signal");
    drop(server);

    let server = start_server(&registry, &["--listen", &tcp]);
    server.wait_online("alice", "streamer", &registry.alice);
    let mut after = Vec::new();
    eventually("recording again after the restart", || {
        after = server
            .get(data, Some(&registry.alice))
            .ok()
            .as_array()
            .unwrap()
            .clone();
        after.len() > acknowledged.len() + 10
    });
    assert_eq!(
        &after[..acknowledged.len()],
        &acknowledged[..],
        "every acknowledged row, unchanged and first"
    );
    pushing.store(false, std::sync::atomic::Ordering::Relaxed);
    pusher.0.join().unwrap();
    drop(pusher.1);
    server.stop();
}

// ----- silent sockets and the server's memory --------------------------------------------------------

/// The server's resident memory, KiB (`VmRSS` of /proc/PID/status).
fn resident_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

const SILENT: usize = 1_000;

/// Opens [`SILENT`] sockets that never send CONNECT and waits until the server closed every
/// one (EOF or reset, nothing sent); returns the server's memory while they were open.
fn silent_round(server: &Server) -> u64 {
    let addr = server.tcp.unwrap();
    let sockets: Vec<TcpStream> = (0..SILENT)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("socket {i}: {e}")))
        .collect();
    let open = resident_kib(server);
    for (i, mut socket) in sockets.into_iter().enumerate() {
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let mut rest = Vec::new();
        match socket.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "socket {i} was sent {rest:02X?}"),
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "socket {i} not closed: {e}"
            ),
        }
    }
    open
}

/// 1,000 sockets that never send CONNECT are all closed at the authentication deadline (1 s)
/// by the real server, which keeps serving a streaming device meanwhile, and the memory they
/// cost is not kept.
///
/// The memory criterion allows for the allocator: freed memory is reused but not always handed
/// back to the OS, and the first rounds warm up per-thread arenas (measured on a quiet machine:
/// +4 MiB, then +3 MiB, then flat within 20 KiB; under parallel load the warm-up can spread over
/// a third round, up to +2 MiB), so "after" is not compared with the first baseline. Instead
/// the test runs four rounds of 1,000 sockets and checks that the last two add less than 6 MiB
/// to what the second left: a server that kept 3 KiB per closed connection would add 6 MiB over
/// those 2,000 connections, and one that kept its connections' buffers far more.
#[test]
fn silent_sockets_are_closed_at_the_deadline_and_their_memory_reused() {
    let registry = Registry::new(&["alice/streamer"]);
    let server = start_server(&registry, &["--auth-deadline", "1s"]);
    let mut stream = Stream::open(&server, &registry);
    stream.check(0);
    let baseline = resident_kib(&server);
    let mut rounds = Vec::new();
    for round in 1..=4 {
        let open = silent_round(&server);
        rounds.push((open, resident_kib(&server)));
        stream.check(round);
    }
    let figures = format!("resident KiB: baseline {baseline}, (open, after) per round {rounds:?}");
    eprintln!("{figures}");
    assert!(rounds[3].1 < rounds[1].1 + 6 * 1024, "{figures}");
    server.stop();
}
