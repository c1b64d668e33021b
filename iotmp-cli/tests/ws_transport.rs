//! The device transport over WebSocket (spec §9) of the real `iotmp server`: a device speaking
//! 2026 frames over `ws://127.0.0.1:<http>/iotmp` (subprotocol `iotmp`) authenticates, and the
//! HTTP API reaches it (a RUN answered over the WebSocket). Also the refusals: no subprotocol
//! is 400, a text message closes with 1003.
//!
//! Loopback only, OS-picked ports, every read bounded by [`WAIT`]; the server is killed when a
//! test ends, also when it fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotmp_proto::frame::Deframer;
use iotmp_proto::{Dialect, Flavour, Message, MessageType, Value};
use serde_json::Value as Json;
use tungstenite::client::IntoClientRequest as _;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message as WsMessage, WebSocket};

const WAIT: Duration = Duration::from_secs(15);

fn command() -> Command {
    common::iotmp_command()
}

/// `iotmp args… --db DB`, expected to succeed; its trimmed stdout.
fn secret(db: &str, args: &[&str]) -> String {
    let output = command()
        .args(args)
        .args(["--db", db])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A running `iotmp server`; killed on drop.
struct Server {
    child: Child,
    stderr: Arc<Mutex<String>>,
    http: SocketAddr,
    _dir: tempfile::TempDir,
    token: String,
    credential: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// A registry with alice and her device `alice/dev1`, served on loopback.
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db: PathBuf = dir.path().join("iotmp.db");
        let db = db.to_str().unwrap().to_owned();
        let token = secret(&db, &["user", "add", "alice"]);
        let credential = secret(&db, &["device", "add", "alice/dev1"]);
        let mut child = command()
            .args(["-v", "server", "--db", &db])
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let prefix = "HTTP API listening on http://";
        let deadline = Instant::now() + WAIT;
        let http = loop {
            let log = stderr.lock().unwrap().clone();
            // The bridge is logged after the API's address: wait for both.
            if let (Some(at), true) = (log.find(prefix), log.contains("/iotmp")) {
                let text: String = log[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                break text.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "server did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Server {
            child,
            stderr,
            http,
            _dir: dir,
            token,
            credential,
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `GET path` with alice's token: (status, body).
    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        Server::probe(self.http, &self.token).get(path)
    }

    /// True once alice's dev1 is listed as connected.
    fn online(&self) -> bool {
        let (status, body) = self.get("/v3/users/alice/devices");
        assert_eq!(status, 200);
        let json: Json = serde_json::from_slice(&body).unwrap();
        json.to_string().contains("\"dev1\"") && json.to_string().contains("true")
    }
}

type Client = WebSocket<TcpStream>;

/// Opens `/iotmp`, offering `protocol`: the socket, or the refusal's status and JSON body.
fn open(addr: SocketAddr, protocol: Option<&str>) -> Result<Client, (u16, Json)> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!("ws://{addr}/iotmp").into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    }
    match tungstenite::client(request, stream) {
        Ok((ws, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            assert_eq!(
                response.headers().get("Sec-WebSocket-Protocol").unwrap(),
                "iotmp"
            );
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Json::Null),
            ))
        }
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

fn encode(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    Dialect::Draft2026
        .encode(message, Flavour::V2, &mut out)
        .unwrap();
    out
}

/// Sends `message` split over two binary WebSocket messages: receivers must treat them as one
/// byte stream (§9), so the bridge must not rely on message boundaries.
fn send_split(ws: &mut Client, message: &Message) {
    let bytes = encode(message);
    let (a, b) = bytes.split_at(bytes.len() / 2);
    ws.send(WsMessage::binary(a.to_vec())).unwrap();
    ws.send(WsMessage::binary(b.to_vec())).unwrap();
}

/// The next IOTMP message from the socket (binary payloads as one stream).
fn next_message(ws: &mut Client, deframer: &mut Deframer, pending: &mut Vec<u8>) -> Message {
    loop {
        let mut input = pending.as_slice();
        if let Some(frame) = deframer.next_frame(&mut input).unwrap() {
            let message = Dialect::Draft2026
                .decode(frame.type_code, frame.body)
                .unwrap();
            *pending = input.to_vec();
            return message;
        }
        pending.clear();
        match ws.read().unwrap() {
            WsMessage::Binary(data) => pending.extend_from_slice(&data),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_device_is_served_over_websocket() {
    let server = Server::start();
    let mut ws = open(server.http, Some("iotmp")).unwrap();
    let mut connect = Message::new(MessageType::Connect);
    connect.stream_id = Some(1);
    connect.payload = Some(Value::Array(vec![
        Value::from("alice"),
        Value::from("dev1"),
        Value::from(server.credential.as_str()),
    ]));
    send_split(&mut ws, &connect);
    let (mut deframer, mut pending) = (Deframer::default(), Vec::new());
    let ok = next_message(&mut ws, &mut deframer, &mut pending);
    assert_eq!(ok.kind, MessageType::Ok, "{ok:?}\n{}", server.log());
    let deadline = Instant::now() + WAIT;
    while !server.online() {
        assert!(Instant::now() < deadline, "dev1 never online");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The RUN is asked through the HTTP API while this thread plays the device.
    let api = {
        let http = server.http;
        let token = server.token.clone();
        std::thread::spawn(move || {
            let probe = Server::probe(http, &token);
            probe.get("/v3/users/alice/devices/dev1/resources/x")
        })
    };
    let run = loop {
        let message = next_message(&mut ws, &mut deframer, &mut pending);
        if message.kind == MessageType::Run {
            break message;
        }
    };
    assert_eq!(run.resource, Some(Value::from("x")), "{run:?}");
    let mut answer = Message::new(MessageType::Ok);
    answer.stream_id = run.stream_id;
    answer.payload = Some(Value::from(42i64));
    ws.send(WsMessage::binary(encode(&answer))).unwrap();
    let (status, body) = api.join().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Json>(&body).unwrap(), 42);

    // Closing the socket ends the session.
    ws.close(None).unwrap();
    let deadline = Instant::now() + WAIT;
    while server.online() {
        assert!(
            Instant::now() < deadline,
            "dev1 still online after the close"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Server {
    /// A view of a running server for another thread: only its address and token.
    fn probe(http: SocketAddr, token: &str) -> Probe {
        Probe {
            http,
            token: token.to_owned(),
        }
    }
}

/// [`Server::get`] without owning the process.
struct Probe {
    http: SocketAddr,
    token: String,
}

impl Probe {
    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(self.http).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Authorization: Bearer {}\r\n\r\n",
            self.token
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = raw[end + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            let text = String::from_utf8(body).unwrap();
            let (size, rest) = text.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            body = rest.as_bytes()[..size].to_vec();
        }
        (status, body)
    }
}

#[test]
fn an_upgrade_without_the_subprotocol_is_400() {
    let server = Server::start();
    let (status, json) = open(server.http, None).err().unwrap();
    assert_eq!(status, 400, "{json}");
    assert!(json["error"].as_str().unwrap().contains("iotmp"), "{json}");
    let (status, _) = open(server.http, Some("mqtt")).err().unwrap();
    assert_eq!(status, 400);
    // Other paths are unchanged: still the API's 404 outside /v3.
    assert_eq!(server.get("/iotmpx").0, 404);
}

#[test]
fn a_text_message_closes_with_1003() {
    let server = Server::start();
    let mut ws = open(server.http, Some("iotmp")).unwrap();
    ws.send(WsMessage::text("hello")).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline);
        match ws.read() {
            Ok(WsMessage::Close(frame)) => {
                assert_eq!(frame.unwrap().code, CloseCode::Unsupported);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}
